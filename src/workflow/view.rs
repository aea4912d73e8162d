//! One instance as its tokens show it (live or archived): its jobs, its signals, and its
//! status, for the dashboard's read model and the summaries of archived instances.

use crate::token::Token;
use crate::token::name::{Level, Name};
use crate::workflow::instance::JobToken;
use crate::workflow::signal::{Action, Signal};
use crate::workflow::status::{InstanceStatus, instance_status};

/// One instance's tokens and where they live.
#[derive(Debug, Default)]
pub struct Instance {
    pub jobs: Vec<JobToken>,
    pub live: bool,
    pub aborted: bool,
    pub finished: bool,
    pub signals: Vec<Token>,
}

impl Instance {
    pub fn status(&self) -> InstanceStatus {
        instance_status(&self.jobs, !self.live, self.aborted, self.finished)
    }

    pub fn add(&mut self, t: Token, archived: bool) {
        self.live |= !archived;
        match Name::parse(&t.name) {
            Some(Name::Job { .. }) => {
                if let Ok(jt) = JobToken::parse(t) {
                    self.jobs.push(jt);
                }
            }
            Some(Name::Signal {
                level: Level::Instance(..),
                action,
            }) => {
                if action == Action::ABORT.as_str() {
                    self.aborted = true;
                }
                if action == Action::ARCHIVE.as_str() {
                    let signal = Signal::from_token(&t);
                    self.finished |= signal.is_some_and(|s| s.attributes.timestamp.is_some());
                }
                self.signals.push(t);
            }
            _ => {}
        }
    }
}
