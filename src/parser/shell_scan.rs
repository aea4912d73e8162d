//! Where each `%(key)s` placeholder of a job command sits in the shell's syntax, so that a
//! value reaches the job's own shell as one word, and nowhere else. Called by `template`.
//!
//! This is a scanner of our own, on purpose: it does not need to understand a whole script,
//! only to find every context in which an expanded word would be parsed again, and to refuse
//! a placeholder there. The parsers we looked at do not fit: yash-syntax is GPL-3.0 (this
//! binary is Apache-2.0), conch-parser has not been maintained since 2019, and brush-parser
//! brings a snapshot-testing library and a cache among its run-time dependencies.
//!
//! A placeholder is refused
//! - inside quotes or after a backslash (the string may go to a shell again);
//! - next to a quote (`"a"%(x)s`, `%(x)s'b'`: one word glued from quoted pieces, as handed
//!   to `sh -c` and the like);
//! - in a here-document's body;
//! - in arithmetic (`$(( ))`, `(( ))`, `$[ ]`), a `[[ ]]` test, a `${...}` expansion, or an
//!   array subscript, all of which bash evaluates as expressions;
//! - as the command itself, or as any argument of a command that parses its arguments as
//!   code: a shell or an interpreter given `-c`/`-e`, `eval`, `ssh`, `xargs`, `su`, `source`,
//!   `.`, `trap`, `alias`, `let`, `declare -i`/`typeset -i` (after wrappers such as `env`,
//!   `sudo`, `nice`, `timeout`, `nohup`, `exec`, `command`, which run the next word).

use super::template::TemplateError;
use crate::token::name::is_word;
use judge::Command;

mod heredoc;
mod judge;
mod placeholder;

use heredoc::HereDoc;

/// One piece of a template.
pub enum Piece<'a> {
    Text(&'a str),
    Percent,
    Placeholder(&'a str),
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Commands: the script itself, or inside `$(...)` (its open parentheses counted).
    Plain {
        parens: u32,
    },
    Backquote,
    Single,
    Double,
    /// `$((`, `((` or `$[`: until its parentheses (or bracket) close.
    Arith {
        parens: u32,
        bracket: bool,
    },
    /// `[[ ... ]]`.
    Test,
    /// `${ ... }`: until its braces close.
    Brace {
        depth: u32,
    },
}

/// Splits `template` into text and placeholders, checking each placeholder's context.
pub fn scan(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    Scanner {
        t: template,
        b: template.as_bytes(),
        i: 0,
        pieces: Vec::new(),
        text_from: 0,
        stack: vec![Ctx::Plain { parens: 0 }],
        commands: vec![Command::default()],
        heredocs: Vec::new(),
        escaped: false,
    }
    .run()
}

struct Scanner<'a> {
    t: &'a str,
    b: &'a [u8],
    i: usize,
    pieces: Vec<Piece<'a>>,
    text_from: usize,
    stack: Vec<Ctx>,
    /// One simple command per command level (the script, each `$(...)` and backquote).
    commands: Vec<Command>,
    heredocs: Vec<HereDoc>,
    escaped: bool,
}

impl<'a> Scanner<'a> {
    fn ctx(&self) -> Ctx {
        *self.stack.last().expect("the stack keeps its bottom")
    }

    fn at(&self, offset: usize) -> Option<u8> {
        self.b.get(self.i + offset).copied()
    }

    fn command(&mut self) -> &mut Command {
        self.commands.last_mut().expect("one command per level")
    }

    fn push_text(&mut self, upto: usize) {
        self.pieces.push(Piece::Text(&self.t[self.text_from..upto]));
    }

    /// `%%` at byte `at`: the text before it, then a percent sign; the text goes on after it.
    fn percent(&mut self, at: usize) {
        self.push_text(at);
        self.pieces.push(Piece::Percent);
        self.text_from = at + 2;
    }

    fn run(mut self) -> Result<Vec<Piece<'a>>, TemplateError> {
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if c == b'%' && self.at(1) == Some(b'%') {
                self.percent(self.i);
                self.i += 2;
                self.escaped = false;
                if self.in_commands() {
                    self.command().current.text.push('%');
                }
                continue;
            }
            if c == b'%' && self.at(1) == Some(b'(') {
                self.on_placeholder()?;
                continue;
            }
            if self.escaped {
                self.escaped = false;
                self.word_char(c);
                self.i += 1;
                continue;
            }
            self.step(c)?;
        }
        while self.commands.len() > 1 {
            self.commands.pop();
        }
        self.command().end()?;
        self.push_text(self.b.len());
        Ok(self.pieces)
    }

    fn in_commands(&self) -> bool {
        matches!(self.ctx(), Ctx::Plain { .. } | Ctx::Backquote)
    }

    fn word_char(&mut self, c: u8) {
        if self.in_commands() || matches!(self.ctx(), Ctx::Single | Ctx::Double) {
            self.command().current.text.push(c as char);
        }
    }

    /// One byte outside a placeholder.
    fn step(&mut self, c: u8) -> Result<(), TemplateError> {
        let ctx = self.ctx();
        let mut advance = 1;
        match (ctx, c) {
            (Ctx::Single, b'\'') => {
                self.stack.pop();
                self.word_char(c);
            }
            (Ctx::Single, _) => self.word_char(c),
            (_, b'\\') => {
                self.escaped = true;
                self.word_char(c);
            }
            (Ctx::Double, b'"') => {
                self.stack.pop();
                self.word_char(c);
            }
            (Ctx::Double, b'$') if self.at(1) == Some(b'(') && self.at(2) != Some(b'(') => {
                self.open_commands();
                advance = 2;
            }
            (Ctx::Double, b'`') => {
                self.stack.push(Ctx::Backquote);
                self.commands.push(Command::default());
            }
            (Ctx::Double, _) => self.word_char(c),
            (Ctx::Arith { parens, bracket }, _) => {
                let close = if bracket { b']' } else { b')' };
                match c {
                    b'(' if !bracket => self.set(Ctx::Arith {
                        parens: parens + 1,
                        bracket,
                    }),
                    _ if c == close && parens == 0 => {
                        self.stack.pop();
                        // `))`: the second parenthesis closes the expression too.
                        if !bracket && self.at(1) == Some(b')') {
                            advance = 2;
                        }
                    }
                    b')' => self.set(Ctx::Arith {
                        parens: parens.saturating_sub(1),
                        bracket,
                    }),
                    _ => {}
                }
            }
            (Ctx::Brace { depth }, b'}') => {
                if depth == 0 {
                    self.stack.pop();
                } else {
                    self.set(Ctx::Brace { depth: depth - 1 });
                }
            }
            (Ctx::Brace { depth }, b'{') => self.set(Ctx::Brace { depth: depth + 1 }),
            (Ctx::Brace { .. }, _) => {}
            (Ctx::Test, b']') if self.at(1) == Some(b']') => {
                self.stack.pop();
                advance = 2;
            }
            (Ctx::Test, b'\'') => self.stack.push(Ctx::Single),
            (Ctx::Test, b'"') => self.stack.push(Ctx::Double),
            (Ctx::Test, _) => {}
            (Ctx::Plain { .. } | Ctx::Backquote, _) => advance = self.command_byte(c)?,
        }
        self.i += advance;
        Ok(())
    }

    fn set(&mut self, ctx: Ctx) {
        *self.stack.last_mut().expect("not empty") = ctx;
    }

    fn open_commands(&mut self) {
        self.stack.push(Ctx::Plain { parens: 0 });
        self.commands.push(Command::default());
    }

    fn close_commands(&mut self) -> Result<(), TemplateError> {
        self.stack.pop();
        let mut inner = self.commands.pop().unwrap_or_default();
        let keys: Vec<String> = inner
            .words
            .iter()
            .chain([&inner.current])
            .flat_map(|w| w.keys.iter().cloned())
            .collect();
        inner.end()?;
        // The substitution is part of the enclosing word, and so is what it prints, values
        // included: `eval "$(echo %(x)s)"` is refused like `eval %(x)s`.
        if self.in_commands() || matches!(self.ctx(), Ctx::Double) {
            let word = &mut self.command().current;
            word.text.push('$');
            word.keys.extend(keys);
        }
        Ok(())
    }

    /// A byte where commands are read; returns how far to move.
    fn command_byte(&mut self, c: u8) -> Result<usize, TemplateError> {
        let ctx = self.ctx();
        let at_start = {
            let cmd = self.command();
            cmd.words.is_empty() && cmd.current.text.is_empty() && cmd.current.keys.is_empty()
        };
        match c {
            b'\'' => {
                self.stack.push(Ctx::Single);
                self.word_char(c);
            }
            b'"' => {
                self.stack.push(Ctx::Double);
                self.word_char(c);
            }
            b'$' if let Some(skip) = self.dollar() => return Ok(skip),
            b'`' if ctx == Ctx::Backquote => self.close_commands()?,
            b'`' => {
                self.stack.push(Ctx::Backquote);
                self.commands.push(Command::default());
            }
            b'(' if at_start && self.at(1) == Some(b'(') => {
                self.stack.push(Ctx::Arith {
                    parens: 0,
                    bracket: false,
                });
                return Ok(2);
            }
            b'[' if at_start && self.at(1) == Some(b'[') && self.blank_or_end(2) => {
                self.stack.push(Ctx::Test);
                return Ok(2);
            }
            b'(' => {
                self.command().end()?;
                if let Ctx::Plain { parens } = ctx
                    && self.stack.len() > 1
                {
                    self.set(Ctx::Plain { parens: parens + 1 });
                }
            }
            b')' => match ctx {
                Ctx::Plain { parens: 0 } if self.stack.len() > 1 => self.close_commands()?,
                Ctx::Plain { parens } if self.stack.len() > 1 => {
                    self.command().end()?;
                    self.set(Ctx::Plain { parens: parens - 1 });
                }
                _ => self.command().end()?,
            },
            b' ' | b'\t' => self.command().end_word(),
            b'\n' => {
                self.command().end()?;
                self.here_documents()?;
            }
            b';' | b'&' | b'|' => self.command().end()?,
            b'<' if self.at(1) == Some(b'<') && self.at(2) != Some(b'<') => {
                self.here_document_opened();
                return Ok(0);
            }
            b'<' | b'>' => {
                self.command().end_word();
                self.command().redirect = true;
                while matches!(self.at(1), Some(b'<' | b'>' | b'&' | b'|')) {
                    self.i += 1;
                }
            }
            b'#' if self.command().current.text.is_empty() => {
                // A comment, to the end of the line.
                while self.i < self.b.len() && self.b[self.i] != b'\n' {
                    self.i += 1;
                }
                return Ok(0);
            }
            _ => self.word_char(c),
        }
        Ok(1)
    }

    /// A `$` that opens arithmetic, a command substitution or a `${...}` expansion: enters
    /// it and returns how far to move; `None` for any other `$`.
    fn dollar(&mut self) -> Option<usize> {
        let arith = |bracket| Ctx::Arith { parens: 0, bracket };
        match (self.at(1), self.at(2)) {
            (Some(b'('), Some(b'(')) => {
                self.stack.push(arith(false));
                self.word_char(b'$');
                Some(3)
            }
            (Some(b'['), _) => {
                self.stack.push(arith(true));
                self.word_char(b'$');
                Some(2)
            }
            (Some(b'('), _) => {
                self.open_commands();
                Some(2)
            }
            (Some(b'{'), _) => {
                self.stack.push(Ctx::Brace { depth: 0 });
                self.word_char(b'$');
                Some(2)
            }
            _ => None,
        }
    }
}
