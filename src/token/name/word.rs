//! The names inside token names: `\w+` newtypes, parsed once where they enter and carried as
//! types from there (serde, `FromStr` for clap, query strings).

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::WORKFLOW_START_INPUT;

/// Whether `s` is a valid name component: `\w+` (ASCII letters, digits, underscore).
pub fn is_word(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `s` made a `\w` run: every other character becomes `_` (an owner name from a host name, an
/// event name from its creator).
pub fn to_word(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Longest name of a workflow, instance or job: three of them and the rest fit in a token name.
pub const MAX_WORD_BYTES: usize = 128;

/// A name that is not a valid one, with what it was meant to name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
}

impl NameError {
    fn describe(&self) -> String {
        let (what, value) = (self.what, &self.value);
        if value.len() > MAX_WORD_BYTES {
            format!(
                "{what} name of {} bytes is too long: the limit is {MAX_WORD_BYTES}",
                value.len()
            )
        } else if is_word(value) {
            format!("{what} name {value:?} is reserved for Pinball's own tokens")
        } else {
            format!("{what} name {value:?} is invalid: use letters, digits and _ only")
        }
    }
}

macro_rules! word_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $reserved:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub(super) String);

        impl $name {
            /// What this kind of name names, as errors say it.
            pub const WHAT: &'static str = $what;

            pub fn parse(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                let reserved: &[&str] = $reserved;
                if is_word(&s) && s.len() <= MAX_WORD_BYTES && !reserved.contains(&s.as_str()) {
                    Ok($name(s))
                } else {
                    Err(NameError { what: $what, value: s })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $name::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, Type};
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!("A ", $what, " name: letters, digits and _")))
                    .pattern(Some("^[A-Za-z0-9_]+$"))
                    .min_length(Some(1))
                    .max_length(Some(MAX_WORD_BYTES))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

word_name!(
    /// A workflow's name: `\w+`.
    WorkflowName,
    "workflow",
    &[super::SIGNAL_SEGMENT]
);
word_name!(
    /// An instance's id: `\w+` (a millisecond stamp for instances Pinball starts).
    InstanceId,
    "instance",
    &[super::SIGNAL_SEGMENT]
);
word_name!(
    /// A job's name inside its workflow: `\w+`. Inputs are named by their upstream job, or
    /// [`WORKFLOW_START_INPUT`].
    JobName,
    "job",
    &[]
);

impl JobName {
    /// The input of a job that has no upstream job.
    pub fn workflow_start() -> JobName {
        JobName(WORKFLOW_START_INPUT.to_owned())
    }

    /// The job a workflow's `final_job:` becomes.
    pub fn final_job() -> JobName {
        JobName("final".to_owned())
    }
}
