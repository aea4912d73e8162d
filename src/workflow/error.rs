//! Layer 2's errors: the master's, and what the workflow logic itself finds (a write that kept
//! losing races, a call that got no answer in time), so no layer-2 failure poses as an error
//! the master sent.

use crate::token::MasterError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// What the master answered (or that it could not be reached).
    #[error(transparent)]
    Master(#[from] MasterError),
    /// A write of an instance's tokens kept conflicting with other writes to the instance.
    #[error("gave up committing {name} after {tries} conflicts with other writes to its instance")]
    KeptConflicting { name: String, tries: u32 },
    /// A call to the master got no answer within its bound; whether it landed is unknown.
    #[error("no answer from the master within {ms} ms")]
    NoAnswer { ms: u128 },
    /// A definition that cannot be stored as it is (its schedule, most often).
    #[error("workflow {workflow}: {message}")]
    Definition { workflow: String, message: String },
    /// The worker is stopping and its grace ran out before the call was answered.
    #[error("the worker is stopping and its grace ran out")]
    Stopping,
}

impl Error {
    /// Worth trying again unchanged: the master did not apply it, was not reached, or did not
    /// answer in time.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Master(e) => e.is_transient(),
            Error::NoAnswer { .. } => true,
            Error::KeptConflicting { .. } | Error::Definition { .. } | Error::Stopping => false,
        }
    }

    /// The master's own error, when this is one.
    pub fn master(&self) -> Option<&MasterError> {
        match self {
            Error::Master(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_pass_is_retried() {
        assert!(Error::from(MasterError::Unavailable("db away".into())).is_transient());
        assert!(Error::NoAnswer { ms: 1500 }.is_transient());
        assert!(!Error::from(MasterError::input("bad")).is_transient());
        assert!(!Error::Stopping.is_transient());
        let races = Error::KeptConflicting {
            name: "/workflow/w/1/job/runnable/a".into(),
            tries: 20,
        };
        assert!(!races.is_transient());
        assert_eq!(
            races.to_string(),
            "gave up committing /workflow/w/1/job/runnable/a after 20 conflicts with other writes to its instance"
        );
        assert_eq!(races.master(), None);
    }
}
