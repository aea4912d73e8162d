//! Name patterns for `query` and `query_and_own`: a raw string prefix (CONTRACT §2), or a prefix
//! in which a `*` segment matches any one non-empty path segment, so a worker can claim the
//! best runnable job of every instance with `/workflow/*/*/job/runnable/` in one call.

use crate::token::MasterError;
use crate::token::is_name_char;

/// A parsed `name_prefix`. Without `*` it is a plain string prefix; with `*` it is split into
/// `/`-separated segments, where every segment but the last must match exactly (or be `*`) and
/// the last must be a string prefix of the name's segment at that position (or `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: String,
    /// `None` for a plain prefix.
    segments: Option<Vec<Segment>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    Any,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, MasterError> {
        if text.len() > crate::token::MAX_NAME_BYTES {
            return Err(MasterError::input(format!(
                "name_prefix is {} bytes long; the limit is {}",
                text.len(),
                crate::token::MAX_NAME_BYTES
            )));
        }
        if let Some(c) = text.chars().find(|c| !is_name_char(*c) && *c != '*') {
            return Err(MasterError::input(format!(
                "name_prefix {text:?} contains {c:?}; prefixes use A-Z a-z 0-9 _ . / : - and * segments"
            )));
        }
        if !text.contains('*') {
            return Ok(Pattern {
                text: text.to_owned(),
                segments: None,
            });
        }
        let segments = text
            .split('/')
            .map(|s| match s {
                "*" => Ok(Segment::Any),
                s if s.contains('*') => Err(MasterError::input(format!(
                    "name_prefix {text:?}: * must stand for a whole path segment, as in /workflow/*/*/job/runnable/"
                ))),
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pattern {
            text: text.to_owned(),
            segments: Some(segments),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn has_wildcard(&self) -> bool {
        self.segments.is_some()
    }

    /// The longest plain prefix every matching name starts with: where a range scan begins.
    pub fn literal_prefix(&self) -> &str {
        match self.text.find('*') {
            Some(i) => &self.text[..i],
            None => &self.text,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        let Some(segments) = &self.segments else {
            return name.starts_with(&self.text);
        };
        let mut parts = name.split('/');
        let last = segments.len() - 1;
        for (i, segment) in segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match segment {
                Segment::Any => !part.is_empty(),
                Segment::Literal(s) if i == last => part.starts_with(s.as_str()),
                Segment::Literal(s) => part == s,
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_prefix_is_a_raw_string_prefix() {
        let p = Pattern::parse("/some_dir/some_token_0").unwrap();
        assert!(p.matches("/some_dir/some_token_0"));
        assert!(p.matches("/some_dir/some_token_0/child"));
        assert!(p.matches("/some_dir/some_token_01"));
        assert!(!p.matches("/some_dir/some_token_1"));
        assert!(Pattern::parse("").unwrap().matches("anything"));
    }

    #[test]
    fn a_star_matches_exactly_one_non_empty_segment() {
        let p = Pattern::parse("/workflow/*/*/job/runnable/").unwrap();
        assert!(p.matches("/workflow/wf/1/job/runnable/a"));
        assert!(!p.matches("/workflow/wf/1/job/waiting/a"));
        assert!(!p.matches("/workflow/wf/job/runnable/a"));
        assert!(!p.matches("/workflow/wf//job/runnable/a"));
        assert!(!p.matches("/workflow/wf/1/job/runnable"));
        assert_eq!(p.literal_prefix(), "/workflow/");
    }

    #[test]
    fn the_last_literal_segment_is_a_prefix() {
        let p = Pattern::parse("/schedule/*/wf").unwrap();
        assert!(p.matches("/schedule/workflow/wf"));
        assert!(p.matches("/schedule/workflow/wf_2"));
        assert!(!p.matches("/schedule/workflow/other"));
    }

    #[test]
    fn a_star_inside_a_segment_or_a_bad_character_is_rejected() {
        assert!(Pattern::parse("/workflow/a*/").is_err());
        assert!(Pattern::parse("/workflow/ a").is_err());
    }
}
