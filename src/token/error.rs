//! The API's errors, as callers match on them: one variant per CONTRACT §2 code, plus the
//! client-side "could not reach the master".

/// A version conflict: the token, and the versions on each side where they are known (the
/// version the request named, the one the master holds). Sent as `"conflict": {"name",
/// "expected", "found"}` beside the code.
#[derive(
    Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Conflict {
    /// The token the write named.
    pub name: String,
    /// The version the write named (none: it inserted a new token).
    pub expected: Option<i64>,
    /// The version the master holds.
    pub found: Option<i64>,
    #[serde(skip)]
    pub message: String,
}

impl Conflict {
    /// A conflict known only by its message (as an older master sends it).
    pub fn said(message: impl Into<String>) -> Self {
        Conflict {
            message: message.into(),
            ..Conflict::default()
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The master's errors, as callers match on them (CONTRACT §2 codes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MasterError {
    #[error("{0}")]
    VersionConflict(Conflict),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InputError(String),
    #[error("{0}")]
    Unavailable(String),
    /// UNAVAILABLE from a master that is alive but cannot commit now (its database is away or
    /// failing, or it is reloading): it grants nothing meanwhile, and gives every lease its
    /// full length again at its next commit. A worker may count the answer as a renewal for
    /// the fence of its job. Sent as `"leases_held": true` beside the code.
    #[error("{0}")]
    Held(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Client side only: the master could not be reached (after retries).
    #[error("cannot reach the master: {0}")]
    Unreachable(String),
}

impl MasterError {
    pub fn input(message: impl Into<String>) -> Self {
        MasterError::InputError(message.into())
    }

    /// The contract's error code.
    pub fn code(&self) -> &'static str {
        match self {
            MasterError::VersionConflict(_) => "VERSION_CONFLICT",
            MasterError::NotFound(_) => "NOT_FOUND",
            MasterError::InputError(_) => "INPUT_ERROR",
            MasterError::Unavailable(_) | MasterError::Held(_) | MasterError::Unreachable(_) => {
                "UNAVAILABLE"
            }
            MasterError::Unauthorized(_) => "UNAUTHORIZED",
            MasterError::Forbidden(_) => "FORBIDDEN",
        }
    }

    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "VERSION_CONFLICT" => MasterError::VersionConflict(Conflict::said(message)),
            "NOT_FOUND" => MasterError::NotFound(message),
            "INPUT_ERROR" => MasterError::InputError(message),
            "UNAUTHORIZED" => MasterError::Unauthorized(message),
            "FORBIDDEN" => MasterError::Forbidden(message),
            _ => MasterError::Unavailable(message),
        }
    }

    /// Worth retrying unchanged: the request was not applied, or the master was not reached.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MasterError::Unavailable(_) | MasterError::Held(_) | MasterError::Unreachable(_)
        )
    }
}
