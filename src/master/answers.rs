//! What a master's answer says when a call failed: the contract's error (CONTRACT §2), with the
//! leader a standby names, for the client to follow.

use crate::token::MasterError;

/// A call that failed: the error, and the leader a standby named (empty: none leads now).
pub(super) struct Failure {
    pub(super) error: MasterError,
    pub(super) standby: Option<String>,
    /// When the standby that answered may lead (its `retry_after_ms`).
    pub(super) retry_after: Option<std::time::Duration>,
}

impl Failure {
    /// Whether another master may serve the call: this one did not answer, or stands by (or
    /// lost its lease's renewal) and named the leader, or none.
    pub(super) fn elsewhere(&self) -> bool {
        self.standby.is_some() || matches!(self.error, MasterError::Unreachable(_))
    }
}

impl From<MasterError> for Failure {
    fn from(error: MasterError) -> Self {
        Failure {
            error,
            standby: None,
            retry_after: None,
        }
    }
}

/// The error an answer's body says (`{"error": {...}}`), or its status when it says none.
pub(super) fn error_of(url: &str, status: reqwest::StatusCode, bytes: &[u8]) -> Failure {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
        #[serde(default)]
        leases_held: bool,
        conflict: Option<crate::token::Conflict>,
        leader: Option<String>,
        retry_after_ms: Option<u64>,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) if b.error.leases_held && b.error.code == "UNAVAILABLE" => Failure {
            error: MasterError::Held(b.error.message),
            standby: b.error.leader,
            retry_after: None,
        },
        Ok(Body {
            error:
                Detail {
                    conflict: Some(conflict),
                    message,
                    ..
                },
        }) => MasterError::VersionConflict(crate::token::Conflict {
            message,
            ..conflict
        })
        .into(),
        Ok(b) => Failure {
            error: MasterError::from_code(&b.error.code, b.error.message),
            standby: b.error.leader,
            retry_after: b.error.retry_after_ms.map(std::time::Duration::from_millis),
        },
        Err(_) => MasterError::Unavailable(format!("{url} answered HTTP {status}")).into(),
    }
}
