//! Job command templates: `%(key)s` stands for the value of event attribute `key`, `%%` for a
//! `%`. A value never becomes shell syntax: every attribute is passed to the command in the
//! environment as `PINBALL_ATTR_<key>`, and a placeholder becomes a reference to that variable
//! (`${PINBALL_ATTR_key:+"$PINBALL_ATTR_key"}`: the value as one word, nothing when it is
//! absent or empty), which the shell expands without parsing what it expands to.
//!
//! That holds only where the shell expands the reference once: outside quotes, including inside
//! `$(...)` and backquotes. Inside `'...'` a reference would not expand; inside `"..."` it would,
//! but the string may be handed to a shell again (`sh -c "echo %(x)s"`, `ssh host "..."`), which
//! would parse the value. So a placeholder inside quotes, or after a backslash, is refused, at
//! import with the job's name, and by the worker for definitions stored before this rule.

use std::collections::BTreeMap;

use crate::token::name::is_word;

/// The environment variable that carries attribute `key`.
pub fn env_name(key: &str) -> String {
    format!("PINBALL_ATTR_{key}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("command template has an unterminated %( at byte {at}")]
    Unterminated { at: usize },
    #[error(
        "the placeholder %({key})s is not a name: write %(key)s with a key of letters, digits and _"
    )]
    BadKey { key: String },
    #[error(
        "the placeholder %({key})s is inside {quotes} in the command; a value substituted there could be run as shell code. Write it outside quotes (Pinball passes it as one word: echo \"Z=\"%({key})s), or use the variable \"$PINBALL_ATTR_{key}\" inside double quotes"
    )]
    Quoted { key: String, quotes: &'static str },
    #[error("the placeholder %({key})s follows a backslash in the command; remove the backslash")]
    Escaped { key: String },
}

/// Where the scanner is in the shell's syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Unquoted: the command itself, or inside `$(...)` (with its open parentheses counted).
    Plain {
        parens: u32,
    },
    Backquote,
    Single,
    Double,
}

/// One piece of a template.
enum Piece<'a> {
    Text(&'a str),
    Percent,
    Placeholder(&'a str),
}

/// Splits `template` into text and placeholders, checking each placeholder's context.
fn scan(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let bytes = template.as_bytes();
    let mut pieces = Vec::new();
    let mut stack = vec![Ctx::Plain { parens: 0 }];
    let mut text_from = 0;
    let mut i = 0;
    let mut escaped = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && bytes.get(i + 1) == Some(&b'%') {
            pieces.push(Piece::Text(&template[text_from..i]));
            pieces.push(Piece::Percent);
            i += 2;
            text_from = i;
            escaped = false;
            continue;
        }
        if b == b'%' && bytes.get(i + 1) == Some(&b'(') {
            let close = template[i + 2..]
                .find(")s")
                .ok_or(TemplateError::Unterminated { at: i })?;
            let key = &template[i + 2..i + 2 + close];
            if !is_word(key) {
                return Err(TemplateError::BadKey { key: key.into() });
            }
            let quotes = match stack.last() {
                Some(Ctx::Single) => Some("single quotes"),
                Some(Ctx::Double) => Some("double quotes"),
                _ => None,
            };
            if let Some(quotes) = quotes {
                return Err(TemplateError::Quoted {
                    key: key.into(),
                    quotes,
                });
            }
            if escaped {
                return Err(TemplateError::Escaped { key: key.into() });
            }
            pieces.push(Piece::Text(&template[text_from..i]));
            pieces.push(Piece::Placeholder(key));
            i += 2 + close + 2;
            text_from = i;
            continue;
        }
        let ctx = *stack.last().expect("the stack keeps its bottom");
        if escaped {
            escaped = false;
            i += 1;
            continue;
        }
        match (ctx, b) {
            (Ctx::Single, b'\'') => {
                stack.pop();
            }
            (Ctx::Single, _) => {}
            (_, b'\\') => escaped = true,
            (Ctx::Double, b'"') => {
                stack.pop();
            }
            (Ctx::Plain { .. } | Ctx::Backquote, b'\'') => stack.push(Ctx::Single),
            (Ctx::Plain { .. } | Ctx::Backquote, b'"') => stack.push(Ctx::Double),
            (_, b'$') if bytes.get(i + 1) == Some(&b'(') => {
                stack.push(Ctx::Plain { parens: 0 });
                i += 1;
            }
            (Ctx::Backquote, b'`') => {
                stack.pop();
            }
            (_, b'`') => stack.push(Ctx::Backquote),
            (Ctx::Plain { parens }, b'(') if stack.len() > 1 => {
                *stack.last_mut().expect("not empty") = Ctx::Plain { parens: parens + 1 };
            }
            (Ctx::Plain { parens }, b')') if stack.len() > 1 => {
                if parens == 0 {
                    stack.pop();
                } else {
                    *stack.last_mut().expect("not empty") = Ctx::Plain { parens: parens - 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    pieces.push(Piece::Text(&template[text_from..]));
    Ok(pieces)
}

/// Checks that every placeholder of `template` is where its value stays data.
pub fn check(template: &str) -> Result<(), TemplateError> {
    scan(template).map(|_| ())
}

/// A command ready to run: its text, and the variables that carry its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituted {
    pub command: String,
    pub env: Vec<(String, String)>,
}

/// Fills in `template` with `attributes` (see the module's rule). Every attribute whose key is
/// a name goes into the environment, so commands may also use `"$PINBALL_ATTR_key"` directly;
/// a NUL byte, which no environment can carry, is dropped from a value.
pub fn substitute(
    template: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<Substituted, TemplateError> {
    let mut command = String::with_capacity(template.len());
    for piece in scan(template)? {
        match piece {
            Piece::Text(t) => command.push_str(t),
            Piece::Percent => command.push('%'),
            Piece::Placeholder(key) => {
                let var = env_name(key);
                command.push_str(&format!("${{{var}:+\"${var}\"}}"));
            }
        }
    }
    let env = attributes
        .iter()
        .filter(|(k, _)| is_word(k))
        .map(|(k, v)| (env_name(k), v.replace('\0', "")))
        .collect();
    Ok(Substituted { command, env })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What `/bin/sh` prints running the substituted template.
    fn run(template: &str, values: &[(&str, &str)]) -> String {
        let s = substitute(template, &attrs(values)).unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&s.command)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(s.env)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_value_reaches_the_command_as_one_word_of_data() {
        let dir = tempfile::tempdir().unwrap();
        let proof = dir.path().join("proof");
        let p = proof.display();
        for value in [
            format!("$(touch {p})"),
            format!("`touch {p}`"),
            format!("; touch {p}"),
            format!("' ; touch {p}; '"),
            format!("\" ; touch {p}; \""),
            "two  spaces * and a glob".to_string(),
        ] {
            for template in [
                "printf '%%s\\n' %(v)s",
                "printf '%%s\\n' $(printf '%%s' %(v)s)",
                "printf '%%s\\n' \"$(printf '%%s' %(v)s)\"",
                "printf '%%s\\n' `printf '%%s' %(v)s`",
                "printf '%%s\\n' \"$PINBALL_ATTR_v\"",
            ] {
                let out = run(template, &[("v", &value)]);
                assert!(!proof.exists(), "{template} ran {value}");
                if !template.contains('`') && !template.contains("$(printf '%%s' %(v)s)") {
                    assert_eq!(out, format!("{value}\n"), "{template}");
                }
            }
        }
    }

    #[test]
    fn an_absent_or_empty_value_is_no_word_at_all() {
        assert_eq!(run("printf '[%%s]' a %(x)s b", &[]), "[a][b]");
        assert_eq!(run("printf '[%%s]' a %(x)s b", &[("x", "")]), "[a][b]");
        assert_eq!(run("echo 100%%", &[]), "100%\n");
        assert_eq!(run("echo Z=%(x)s", &[("x", "v")]), "Z=v\n");
        assert_eq!(
            run("echo \"Z=\"%(x)s", &[("x", "a  b")]),
            "Z=a  b\n",
            "quotes closed before the placeholder"
        );
    }

    #[test]
    fn placeholders_inside_quotes_are_refused_with_the_way_out() {
        for (template, quotes) in [
            ("echo \"Z=%(x)s\"", "double quotes"),
            ("sh -c \"echo %(x)s\"", "double quotes"),
            ("echo 'Z=%(x)s'", "single quotes"),
            ("echo $(echo \"%(x)s\")", "double quotes"),
            ("echo `echo '%(x)s'`", "single quotes"),
        ] {
            let err = check(template).unwrap_err();
            assert_eq!(
                err,
                TemplateError::Quoted {
                    key: "x".into(),
                    quotes
                },
                "{template}"
            );
            let message = err.to_string();
            assert!(message.contains("$PINBALL_ATTR_x"), "{message}");
        }
        assert!(matches!(
            check("echo \\%(x)s"),
            Err(TemplateError::Escaped { .. })
        ));
        assert!(matches!(
            check("echo %(a b)s"),
            Err(TemplateError::BadKey { .. })
        ));
        assert!(matches!(
            check("echo %(broken"),
            Err(TemplateError::Unterminated { at: 5 })
        ));
        for fine in [
            "echo \"a\" %(x)s 'b'",
            "echo \"$(echo %(x)s)\"",
            "echo \\\" %(x)s",
            "echo it\\'s %(x)s",
            "echo $( (echo a) ; echo %(x)s )",
        ] {
            assert!(check(fine).is_ok(), "{fine}");
        }
    }
}
