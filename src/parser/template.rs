//! Job command templates: `%(key)s` stands for the value of event attribute `key`, `%%` for a
//! `%`. A value never becomes shell syntax: every attribute is passed to the command in the
//! environment as `PINBALL_ATTR_<key>`, and a placeholder becomes a reference to that variable
//! (`${PINBALL_ATTR_key:+"$PINBALL_ATTR_key"}`: the value as one word, nothing when it is
//! absent or empty), which the shell expands without parsing what it expands to.
//!
//! The rule a user can check: a value reaches the job's own shell as one word, and nowhere
//! else. Wherever an expanded word would be parsed again (quotes, here-documents, arithmetic,
//! `sh -c`, `eval`, `ssh`, ... : `shell_scan` lists them) a placeholder is refused, at import
//! with the job's name, and by the worker for definitions stored before the rule.

use std::collections::BTreeMap;

use super::shell_scan::{Piece, scan};
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
        "the placeholder %({key})s is inside {quotes} in the command; a value substituted there could be run as shell code. Write it outside quotes, as a word of its own (echo Z= %({key})s), or use the variable \"$PINBALL_ATTR_{key}\" inside double quotes"
    )]
    Quoted { key: String, quotes: &'static str },
    #[error("the placeholder %({key})s follows a backslash in the command; remove the backslash")]
    Escaped { key: String },
    #[error(
        "the placeholder %({key})s is glued to a quote in the command, so its value would join quoted text into one string that may be parsed again; make it a word of its own, or use \"$PINBALL_ATTR_{key}\" inside the quotes"
    )]
    NextToQuote { key: String },
    #[error(
        "the placeholder %({key})s is in a here-document's body, which a shell reads as a script; use \"$PINBALL_ATTR_{key}\" in a here-document whose delimiter is quoted (<<'EOF'), or in a script file"
    )]
    HereDocument { key: String },
    #[error(
        "the placeholder %({key})s is an argument of `{command}`, which parses it again as code; pass the value as \"$PINBALL_ATTR_{key}\" in a script or a quoted here-document instead"
    )]
    Reparsed { key: String, command: String },
    #[error(
        "the placeholder %({key})s is inside {context}, which evaluates its text as an expression; check the value first, in a script that reads \"$PINBALL_ATTR_{key}\""
    )]
    Evaluated { key: String, context: &'static str },
    #[error(
        "the placeholder %({key})s stands where a command name goes, so its value would be run as a program; name the command in the template and pass the value as an argument"
    )]
    CommandName { key: String },
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
            run("echo \"Z=\" %(x)s", &[("x", "a  b")]),
            "Z= a  b\n",
            "a word of its own after quoted text"
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

    /// Every form the security review ran as code, each refused with what to write instead.
    const REPARSED: &[&str] = &[
        "sh <<EOF\necho %(h)s\nEOF",
        "cat <<-END\n\tvalue %(h)s\n\tEND",
        "sh -c \"echo \"%(d)s",
        "sh -c 'echo '%(s)s",
        "echo $(( %(rows)s * 2 ))",
        "(( %(x)s > 1 ))",
        "[[ %(x)s -eq 1 ]]",
        "let n=%(x)s",
        "declare -i n=%(x)s",
        "typeset -i n=%(x)s",
        "echo $[ %(x)s + 1 ]",
        "echo ${x:-%(y)s}",
        "a[%(x)s]=1",
        "bash -c %(x)s",
        "sh -c 'echo $1' _ %(x)s",
        "dash -ec %(x)s",
        "eval %(x)s",
        "su -c %(x)s",
        "su root -c %(x)s",
        "ssh host %(x)s",
        "xargs %(x)s",
        "env FOO=1 sh -c %(x)s",
        "env -S %(x)s",
        "sudo -u bob bash -c %(x)s",
        "nice -n 5 timeout 10 bash -c %(x)s",
        "/usr/bin/python3 -c %(x)s",
        "perl -e %(x)s",
        "%(x)s arg",
        "true; %(x)s",
        "echo ok && eval \"$(echo %(x)s)\"",
        "echo $(eval %(x)s)",
    ];

    #[test]
    fn a_placeholder_that_would_be_parsed_again_is_refused_with_the_way_out() {
        for template in REPARSED {
            let err = check(template).expect_err(template);
            let message = err.to_string();
            assert!(
                message.contains("%(")
                    && (message.contains("PINBALL_ATTR_")
                        || matches!(err, TemplateError::CommandName { .. })),
                "{template}: {message}"
            );
        }
    }

    #[test]
    fn a_placeholder_as_a_word_of_the_job_s_own_shell_is_accepted() {
        for fine in [
            "echo %(x)s",
            "X=%(v)s mycmd",
            "env X=%(v)s mycmd",
            "bash script.sh %(x)s",
            "python3 script.py %(x)s",
            "cat <<'EOF'\nhello 100%%\nEOF\necho %(x)s",
            "cat <<EOF\n100%%(not a placeholder)s%\nEOF",
            "mycmd > %(f)s",
            "cat <<< %(x)s",
            "for i in %(x)s; do echo $i; done",
            "if true; then echo %(x)s; fi",
            "timeout 10 myprog %(x)s",
            "sudo -u bob myprog %(x)s",
            "test %(x)s -eq 1",
            "echo a # %(x)s is only a comment",
        ] {
            assert!(check(fine).is_ok(), "{fine}: {:?}", check(fine));
        }
        assert_eq!(
            run("cat <<EOF\n100%%\nEOF\necho %(x)s", &[("x", "v")]),
            "100%\nv\n"
        );
    }

    /// Without the rule, the forms above run a value as code under bash (what /bin/sh is on
    /// RHEL, Fedora and Arch): the refusal is what stops it.
    #[test]
    fn under_bash_the_refused_forms_would_run_the_value() {
        if !std::path::Path::new("/bin/bash").exists() {
            eprintln!("SKIPPED (template::under_bash): no /bin/bash");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let proof = dir.path().join("ran");
        let value = format!("a[$(touch {})]", proof.display());
        for template in [
            "echo $(( %(x)s * 2 ))",
            "let n=%(x)s",
            "[[ %(x)s -eq 1 ]]",
            "bash -c %(x)s",
        ] {
            assert!(check(template).is_err(), "{template}");
            // What the old substitution would have run.
            let command = template.replace("%(x)s", "${PINBALL_ATTR_x:+\"$PINBALL_ATTR_x\"}");
            let _ = std::fs::remove_file(&proof);
            let _ = std::process::Command::new("/bin/bash")
                .args(["-c", &command])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env(
                    "PINBALL_ATTR_x",
                    if template.starts_with("bash") {
                        format!("touch {}", proof.display())
                    } else {
                        value.clone()
                    },
                )
                .output()
                .unwrap();
            assert!(
                proof.exists(),
                "{template} would not have run the value: the test proves nothing"
            );
        }
    }
}
