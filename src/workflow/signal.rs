//! Signals (PINBALL_SPEC §4): DRAIN, ABORT, ARCHIVE and EXIT tokens at global, workflow and
//! instance level; the data inside them; what a reader at one level sees (the most specific
//! level wins); and the generation rule of EXIT. Setting and removing them is `ops`'.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::master::MasterClient;
pub use crate::token::name::Action;
use crate::token::name::{Level, signal_token};
use crate::token::{MasterError, Query, QueryRequest, Token};

/// `{"action": "ABORT", "attributes": {"TIMESTAMP": 1700000000.5}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub action: Action,
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Attributes {
    /// ABORT: when it was set. ARCHIVE: when the finished instance may be archived.
    #[serde(rename = "TIMESTAMP", default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<f64>,
    /// EXIT: the generation of the process that set it.
    #[serde(
        rename = "GENERATION",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub generation: Option<u32>,
    /// ARCHIVE: the job whose final failure was the instance's first, once one failed. The
    /// workflow's `notify_emails` hear of that failure only, whichever job ends last.
    #[serde(rename = "FAILED", default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// ABORT: when the aborted instance's end email was recorded (by the worker about to
    /// archive it), so no other worker records it again.
    #[serde(rename = "NOTIFIED", default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<f64>,
}

impl Signal {
    pub fn new(action: Action, attributes: Attributes) -> Signal {
        Signal { action, attributes }
    }

    pub fn to_data(&self) -> String {
        serde_json::to_string(self).expect("signals serialize")
    }

    /// The signal a token holds; `None` when its data is not a signal.
    pub fn from_token(t: &Token) -> Option<Signal> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }

    /// The token that sets this signal at `level` (an insert).
    pub fn token(&self, level: &Level) -> Token {
        Token::new(signal_token(level, self.action), Some(self.to_data()))
    }
}

/// The signals visible at one level, merged: per action, the most specific token.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    by_action: BTreeMap<Action, (Token, Signal)>,
}

impl Signals {
    /// Merges signal tokens given least specific first.
    pub fn from_tokens(tokens: impl IntoIterator<Item = Token>) -> Signals {
        let mut by_action = BTreeMap::new();
        for t in tokens {
            if let Some(signal) = Signal::from_token(&t) {
                by_action.insert(signal.action, (t, signal));
            }
        }
        Signals { by_action }
    }

    /// The signals visible at `level` among `tokens` (in name order, as a read answers them;
    /// names outside its levels' prefixes are ignored), merged as [`Signals::read`] merges.
    pub fn of_levels(level: &Level, tokens: Vec<Token>) -> Signals {
        let prefixes = level.visible_signal_prefixes();
        let mut at_level: Vec<(usize, Token)> = tokens
            .into_iter()
            .filter_map(|t| Some((prefixes.iter().position(|p| t.name.starts_with(p))?, t)))
            .collect();
        at_level.sort_by_key(|(at, _)| *at);
        Signals::from_tokens(at_level.into_iter().map(|(_, t)| t))
    }

    /// Reads the signals visible at `level` in one request.
    pub async fn read(client: &dyn MasterClient, level: &Level) -> Result<Signals, MasterError> {
        let response = client.query(QueryRequest::new(queries(level))).await?;
        Ok(Signals::from_tokens(response.tokens.into_iter().flatten()))
    }

    /// The signals `level` sees, once `after` (a version from an earlier answer) is passed by
    /// a write to one of them, or `wait` has gone by; at once without `after`. Returns them
    /// with the version to watch from next. One parked request at the master, woken only by
    /// writes to these signal tokens.
    pub async fn watch(
        client: &dyn MasterClient,
        level: &Level,
        after: Option<i64>,
        wait: std::time::Duration,
    ) -> Result<(Signals, i64), MasterError> {
        let req = QueryRequest {
            queries: queries(level),
            wait_ms: after.map(|_| wait.as_millis() as u64),
            after_version: after,
        };
        let response = client.query(req).await?;
        let version = response.version;
        Ok((
            Signals::from_tokens(response.tokens.into_iter().flatten()),
            version,
        ))
    }

    pub fn get(&self, action: Action) -> Option<&Signal> {
        self.by_action.get(&action).map(|(_, s)| s)
    }

    pub fn token(&self, action: Action) -> Option<&Token> {
        self.by_action.get(&action).map(|(t, _)| t)
    }

    /// Whether `action` applies to a process of `generation`: EXIT applies only when it has no
    /// generation or a newer one (PINBALL_SPEC §4.3); other actions apply when present.
    pub fn is_set(&self, action: Action, generation: u32) -> bool {
        match (action, self.get(action)) {
            (_, None) => false,
            (Action::EXIT, Some(s)) => s.attributes.generation.is_none_or(|g| g > generation),
            _ => true,
        }
    }
}

/// The signal tokens `level` sees: its own and those of every level above it.
fn queries(level: &Level) -> Vec<Query> {
    level
        .visible_signal_prefixes()
        .into_iter()
        .map(|name_prefix| Query {
            name_prefix,
            max_tokens: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::name::{InstanceId, WorkflowName};

    fn signal_token_at(level: &Level, action: Action, attributes: Attributes) -> Token {
        Signal::new(action, attributes).token(level)
    }

    #[test]
    fn the_most_specific_level_wins_and_each_reader_sees_its_levels() {
        let wf = WorkflowName::parse("some_workflow").unwrap();
        let w = Level::Workflow(wf.clone());
        let i = Level::Instance(wf, InstanceId::parse("123").unwrap());
        let global_exit = signal_token_at(&Level::Global, Action::EXIT, Attributes::default());
        let wf_drain = signal_token_at(&w, Action::DRAIN, Attributes::default());
        let inst_drain = signal_token_at(
            &i,
            Action::DRAIN,
            Attributes {
                timestamp: Some(5.0),
                ..Attributes::default()
            },
        );
        let inst_abort = signal_token_at(&i, Action::ABORT, Attributes::default());
        let global = Signals::from_tokens([global_exit.clone()]);
        assert!(global.get(Action::EXIT).is_some() && global.get(Action::DRAIN).is_none());
        let workflow = Signals::from_tokens([global_exit.clone(), wf_drain.clone()]);
        assert!(workflow.get(Action::DRAIN).is_some() && workflow.get(Action::ABORT).is_none());
        let instance = Signals::from_tokens([global_exit, wf_drain, inst_drain, inst_abort]);
        assert_eq!(
            instance.get(Action::DRAIN).unwrap().attributes.timestamp,
            Some(5.0),
            "instance level wins"
        );
        assert!(instance.get(Action::ABORT).is_some());
    }

    #[test]
    fn signals_given_in_any_order_merge_as_a_read_of_their_levels_does() {
        let wf = WorkflowName::parse("wf").unwrap();
        let i = Level::Instance(wf.clone(), InstanceId::parse("7").unwrap());
        let at = |level: &Level, ts| {
            signal_token_at(
                level,
                Action::DRAIN,
                Attributes {
                    timestamp: Some(ts),
                    ..Attributes::default()
                },
            )
        };
        let other = Level::Instance(wf.clone(), InstanceId::parse("8").unwrap());
        // Most specific first, and another instance's: the instance's own DRAIN wins, the
        // other instance's is not seen.
        let tokens = vec![
            at(&i, 3.0),
            at(&Level::Workflow(wf), 2.0),
            at(&Level::Global, 1.0),
            signal_token_at(&other, Action::ABORT, Attributes::default()),
        ];
        let signals = Signals::of_levels(&i, tokens);
        assert_eq!(
            signals.get(Action::DRAIN).unwrap().attributes.timestamp,
            Some(3.0)
        );
        assert!(signals.get(Action::ABORT).is_none());
    }

    #[test]
    fn exit_applies_only_to_older_generations() {
        let exit = |g| {
            Signals::from_tokens([signal_token_at(
                &Level::Global,
                Action::EXIT,
                Attributes {
                    generation: g,
                    ..Attributes::default()
                },
            )])
        };
        assert!(!exit(Some(1)).is_set(Action::EXIT, 1));
        assert!(exit(Some(1)).is_set(Action::EXIT, 0));
        assert!(exit(None).is_set(Action::EXIT, 7));
    }

    #[test]
    fn signal_data_is_readable_json() {
        let s = Signal {
            action: Action::ABORT,
            attributes: Attributes {
                timestamp: Some(1.5),
                ..Attributes::default()
            },
        };
        assert_eq!(
            s.to_data(),
            r#"{"action":"ABORT","attributes":{"TIMESTAMP":1.5}}"#
        );
    }
}
