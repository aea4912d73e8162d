//! Here-documents: the delimiter after `<<`, and the bodies read after the line that opened
//! them, where a placeholder is refused.

use super::{Scanner, TemplateError};

impl Scanner<'_> {
    /// `<<` or `<<-`: reads the delimiter; the body is read after the line ends.
    pub(super) fn here_document_opened(&mut self) {
        self.command().end_word();
        let strip_tabs = self.at(2) == Some(b'-');
        let skip = if strip_tabs { 3 } else { 2 };
        self.i += skip;
        let delimiter = self.delimiter();
        self.heredocs.push(HereDoc {
            delimiter,
            strip_tabs,
        });
    }

    pub(super) fn blank_or_end(&self, offset: usize) -> bool {
        self.at(offset).is_none_or(|c| c.is_ascii_whitespace())
    }

    /// Reads a here-document's delimiter word (quotes removed) after `<<`.
    pub(super) fn delimiter(&mut self) -> String {
        while matches!(self.at(0), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        let mut d = String::new();
        while let Some(c) = self.at(0) {
            if c.is_ascii_whitespace() || matches!(c, b';' | b'&' | b'|' | b'<' | b'>' | b')') {
                break;
            }
            if !matches!(c, b'\'' | b'"' | b'\\') {
                d.push(c as char);
            }
            self.i += 1;
        }
        d
    }

    /// After a newline: the bodies of the here-documents the line opened, each up to its
    /// delimiter line. A placeholder there is refused; `%%` is still a percent sign.
    pub(super) fn here_documents(&mut self) -> Result<(), TemplateError> {
        let docs = std::mem::take(&mut self.heredocs);
        let mut pos = self.i + 1;
        for doc in docs {
            loop {
                if pos >= self.b.len() {
                    break;
                }
                let end = self.t[pos..].find('\n').map_or(self.b.len(), |n| pos + n);
                let line = &self.t[pos..end];
                let shown = if doc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    line
                };
                if shown == doc.delimiter {
                    pos = end;
                    break;
                }
                // Each `%` in order: `%%` is a percent sign, `%(` a refused placeholder.
                let mut from = pos;
                while let Some(p) = self.t[from..end].find('%').map(|p| from + p) {
                    match self.b.get(p + 1) {
                        Some(b'%') => self.percent(p),
                        Some(b'(') => {
                            let key = self.t[p + 2..end].split(")s").next().unwrap_or("");
                            return Err(TemplateError::HereDocument {
                                key: key.to_owned(),
                            });
                        }
                        _ => {}
                    }
                    from = (p + 2).min(end);
                }
                pos = end + 1;
            }
        }
        // Continue after the last body (at its delimiter's newline, read as a command end).
        if pos > self.i + 1 {
            self.i = pos.min(self.b.len()).saturating_sub(1);
        }
        Ok(())
    }
}

/// A here-document waiting for its body: its delimiter, and whether tabs are stripped.
pub(super) struct HereDoc {
    pub(super) delimiter: String,
    pub(super) strip_tabs: bool,
}
