//! A `%(key)s` placeholder: read, and refused or recorded by the context it sits in.

use super::{Ctx, Piece, Scanner, TemplateError, is_word};

impl<'a> Scanner<'a> {
    /// Reads `%(key)s` at `self.i`; returns the key and moves past it.
    fn placeholder(&mut self) -> Result<&'a str, TemplateError> {
        let start = self.i;
        let close = self.t[start + 2..]
            .find(")s")
            .ok_or(TemplateError::Unterminated { at: start })?;
        let key = &self.t[start + 2..start + 2 + close];
        if !is_word(key) {
            return Err(TemplateError::BadKey { key: key.into() });
        }
        self.push_text(start);
        self.pieces.push(Piece::Placeholder(key));
        self.i = start + 2 + close + 2;
        self.text_from = self.i;
        Ok(key)
    }

    pub(super) fn on_placeholder(&mut self) -> Result<(), TemplateError> {
        let ctx = self.ctx();
        let before = self.i.checked_sub(1).map(|p| self.b[p]);
        let escaped = std::mem::take(&mut self.escaped);
        let key = self.placeholder()?.to_owned();
        let refused = match ctx {
            Ctx::Single => Some(TemplateError::Quoted {
                key,
                quotes: "single quotes",
            }),
            Ctx::Double => Some(TemplateError::Quoted {
                key,
                quotes: "double quotes",
            }),
            Ctx::Arith { .. } => Some(TemplateError::Evaluated {
                key,
                context: "arithmetic",
            }),
            Ctx::Test => Some(TemplateError::Evaluated {
                key,
                context: "a [[ ]] test",
            }),
            Ctx::Brace { .. } => Some(TemplateError::Evaluated {
                key,
                context: "a ${...} expansion",
            }),
            Ctx::Plain { .. } | Ctx::Backquote if escaped => Some(TemplateError::Escaped { key }),
            Ctx::Plain { .. } | Ctx::Backquote => {
                let after = self.at(0);
                let word = &self.command().current.text;
                if matches!(before, Some(b'\'' | b'"')) || matches!(after, Some(b'\'' | b'"')) {
                    Some(TemplateError::NextToQuote { key })
                } else if word.contains('[') && !word.contains(']') {
                    Some(TemplateError::Evaluated {
                        key,
                        context: "an array subscript",
                    })
                } else {
                    self.command().current.keys.push(key);
                    None
                }
            }
        };
        refused.map_or(Ok(()), Err)
    }
}
