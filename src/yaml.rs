//! YAML read with bounds, for the configuration and the workflow definitions alike. serde_yaml
//! limits how often aliases are followed, not what they expand to: a 100 KB file whose aliases
//! name a large anchored list thousands of times expands to gigabytes. Before serde_yaml sees
//! a text, it is scanned once (saphyr's event parser) and refused when it is larger than
//! [`MAX_BYTES`] or stands for more than [`MAX_NODES`] nodes with every alias expanded.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Largest YAML text read: 16 MiB.
pub const MAX_BYTES: usize = 16 << 20;
/// Most nodes (scalars, lists, maps) a text may stand for with its aliases expanded.
pub const MAX_NODES: u64 = 2_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    #[error("is larger than the limit of {MAX_BYTES} bytes")]
    TooLarge,
    #[error(
        "stands for more than {MAX_NODES} values once its aliases (*name) are expanded; use fewer aliases"
    )]
    Expands,
    #[error("{0}")]
    Syntax(String),
}

/// The number of nodes `text` stands for with its aliases expanded, stopping at `limit`.
fn expanded_nodes(text: &str, limit: u64) -> Result<u64, YamlError> {
    use saphyr_parser::{Event, Parser};
    let mut count: u64 = 0;
    // Open collections: their anchor and the count when they opened.
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    for event in Parser::new_from_str(text) {
        let (event, _) = event.map_err(|e| YamlError::Syntax(e.to_string()))?;
        match event {
            Event::Scalar(_, _, anchor, _) => {
                count += 1;
                if anchor > 0 {
                    sizes.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                count += 1;
                open.push((anchor, count - 1));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, from)) = open.pop()
                    && anchor > 0
                {
                    sizes.insert(anchor, count - from);
                }
            }
            Event::Alias(anchor) => {
                count = count.saturating_add(sizes.get(&anchor).copied().unwrap_or(1));
            }
            _ => {}
        }
        if count > limit {
            return Err(YamlError::Expands);
        }
    }
    Ok(count)
}

/// Checks `text` against the bounds.
pub fn check(text: &str) -> Result<(), YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError::TooLarge);
    }
    expanded_nodes(text, MAX_NODES).map(|_| ())
}

/// Parses `text` into `T` once it passes the bounds.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    check(text)?;
    serde_yaml::from_str(text).map_err(|e| YamlError::Syntax(e.to_string()))
}

/// Reads a file of at most [`MAX_BYTES`]: a larger one (or a device that never ends) is refused
/// without reading past the limit.
pub fn read_file(path: &Path) -> std::io::Result<Result<String, YamlError>> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_BYTES as u64 + 1).read_to_string(&mut text)?;
    Ok(if text.len() > MAX_BYTES {
        Err(YamlError::TooLarge)
    } else {
        Ok(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quadratic alias bomb: one anchored list of `n` scalars, named `n` times.
    fn bomb(n: usize) -> String {
        let list: Vec<String> = (0..n).map(|i| format!("e{i}@example.com")).collect();
        let mut text = format!("list: &l [{}]\nuses:\n", list.join(", "));
        for _ in 0..n {
            text.push_str("  - *l\n");
        }
        text
    }

    #[test]
    fn aliases_count_as_what_they_stand_for() {
        assert_eq!(expanded_nodes("a: 1", 100).unwrap(), 3);
        assert_eq!(expanded_nodes("a: &x [1, 2]\nb: *x", 100).unwrap(), 9);
        let text = bomb(5000);
        assert!(text.len() < 200_000, "{} bytes", text.len());
        assert_eq!(check(&text), Err(YamlError::Expands));
        assert!(check(&bomb(100)).is_ok(), "modest reuse is fine");
    }

    #[test]
    fn nested_aliases_are_counted_without_expanding_them() {
        let mut text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n".to_string();
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert_eq!(check(&text), Err(YamlError::Expands));
    }

    #[test]
    fn a_file_larger_than_the_limit_is_not_read_whole() {
        let refused = read_file(Path::new("/dev/zero")).unwrap();
        assert_eq!(refused, Err(YamlError::TooLarge));
    }
}
