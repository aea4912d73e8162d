//! Judging a finished command: which of its words hold placeholders, and whether the command
//! parses any of them again as code.

use super::TemplateError;
use crate::token::name::is_word;

/// Shells: a placeholder in any argument of one given `-c` is refused.
pub(super) const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "yash", "busybox", "fish", "csh", "tcsh",
];
/// Interpreters, and their options that take code: a placeholder in any argument of one
/// given such an option is refused.
pub(super) const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["c"]),
    ("python2", &["c"]),
    ("python3", &["c"]),
    ("perl", &["e", "E"]),
    ("ruby", &["e"]),
    ("node", &["e", "p"]),
    ("nodejs", &["e", "p"]),
    ("php", &["r"]),
    ("lua", &["e"]),
    ("Rscript", &["e"]),
    ("osascript", &["e"]),
];
/// Commands whose arguments are code, a command line, or a file of code: always refused.
pub(super) const REPARSERS: &[&str] = &[
    "eval", "ssh", "xargs", "su", "source", ".", "trap", "alias", "let", "runuser", "watch",
    "parallel",
];
/// Commands that declare variables: refused with an option holding `i` (integer: arithmetic).
pub(super) const DECLARERS: &[&str] = &["declare", "typeset", "local", "readonly", "export"];
/// Commands that run the next word as a command, and their options that take an argument.
pub(super) const WRAPPERS: &[(&str, &str)] = &[
    ("env", "uCP"),
    ("sudo", "ugCDhprtUT"),
    ("doas", "uC"),
    ("nice", "n"),
    ("ionice", "cnp"),
    ("timeout", "sk"),
    ("nohup", ""),
    ("exec", "a"),
    ("command", ""),
    ("builtin", ""),
    ("time", "fo"),
    ("stdbuf", "ioe"),
    ("setsid", ""),
    ("chrt", ""),
    ("taskset", ""),
    ("flock", "wEs"),
    ("unbuffer", ""),
];
/// Words that open or close a compound command, skipped where a command name would stand.
pub(super) const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "in",
];

/// A word of the current simple command: its raw text, and the placeholders in it.
#[derive(Debug, Default, Clone)]
pub(super) struct Word {
    pub(super) text: String,
    pub(super) keys: Vec<String>,
}

/// The simple command being read at one command level.
#[derive(Debug, Default)]
pub(super) struct Command {
    pub(super) words: Vec<Word>,
    pub(super) current: Word,
    /// The next word is a redirection's target, not part of the command.
    pub(super) redirect: bool,
}

impl Command {
    pub(super) fn end_word(&mut self) {
        if self.current.text.is_empty() && self.current.keys.is_empty() {
            return;
        }
        let w = std::mem::take(&mut self.current);
        if std::mem::take(&mut self.redirect) {
            return;
        }
        if self.words.is_empty() && w.keys.is_empty() && RESERVED.contains(&w.text.as_str()) {
            return;
        }
        self.words.push(w);
    }

    /// Ends the command: refuses a placeholder in a word its command would parse again.
    pub(super) fn end(&mut self) -> Result<(), TemplateError> {
        self.end_word();
        let words = std::mem::take(&mut self.words);
        judge(&words)
    }
}

/// The last path segment of a command word.
pub(super) fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

pub(super) fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| is_word(name) && !name.starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether an option word names one of `letters` (`-u`, `-nu`), or `--long` is given.
pub(super) fn takes_argument(word: &str, letters: &str) -> bool {
    word.strip_prefix('-')
        .filter(|o| !o.starts_with('-') && !o.contains('='))
        .and_then(|o| o.chars().last())
        .is_some_and(|c| letters.contains(c))
}

/// The rules of the module's header for one simple command.
pub(super) fn judge(words: &[Word]) -> Result<(), TemplateError> {
    if words.iter().all(|w| w.keys.is_empty()) {
        return Ok(());
    }
    // Assignments before the command (their values stay data).
    let mut i = 0;
    while i < words.len() && is_assignment(&words[i].text) {
        i += 1;
    }
    // Through the wrappers to the command they run.
    loop {
        let Some(w) = words.get(i) else {
            return Ok(());
        };
        if let Some(key) = w.keys.first() {
            return Err(TemplateError::CommandName { key: key.clone() });
        }
        let Some((name, letters)) = WRAPPERS.iter().find(|(n, _)| *n == base(&w.text)) else {
            break;
        };
        if *name == "env"
            && words[i + 1..]
                .iter()
                .take_while(|w| w.text.starts_with('-'))
                .any(|w| w.text == "-S" || w.text.starts_with("--split-string"))
        {
            return refuse(&words[i + 1..], "env -S");
        }
        i += 1;
        while let Some(w) = words.get(i) {
            let t = w.text.as_str();
            if *name == "env" && is_assignment(t) {
                i += 1;
                continue;
            }
            if !w.keys.is_empty() {
                break;
            }
            if t == "--" {
                i += 1;
                break;
            }
            if t.starts_with('-') {
                i += if takes_argument(t, letters) { 2 } else { 1 };
            } else if *name == "timeout" && t.starts_with(|c: char| c.is_ascii_digit()) {
                i += 1;
            } else {
                break;
            }
        }
    }
    let command = base(&words[i].text);
    let args = &words[i + 1..];
    let option = |letters: &[&str]| {
        args.iter().any(|w| {
            w.keys.is_empty()
                && w.text.starts_with('-')
                && !w.text.starts_with("--")
                && letters.iter().any(|l| w.text[1..].contains(l))
        })
    };
    if SHELLS.contains(&command) && option(&["c"]) {
        return refuse(args, &format!("{command} -c"));
    }
    let interpreter = INTERPRETERS.iter().find(|(p, _)| {
        command == *p || (command.starts_with(p) && command[p.len()..].starts_with(['.', '3']))
    });
    if let Some((_, code)) = interpreter
        && (option(code) || args.iter().any(|w| w.text == "--eval"))
    {
        return refuse(args, &format!("{command} -{}", code[0]));
    }
    if REPARSERS.contains(&command) {
        return refuse(args, command);
    }
    if DECLARERS.contains(&command) && option(&["i"]) {
        return refuse(args, &format!("{command} -i"));
    }
    Ok(())
}

pub(super) fn refuse(args: &[Word], command: &str) -> Result<(), TemplateError> {
    match args.iter().find_map(|w| w.keys.first()) {
        Some(key) => Err(TemplateError::Reparsed {
            key: key.clone(),
            command: command.to_owned(),
        }),
        None => Ok(()),
    }
}
