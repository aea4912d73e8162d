//! Workflow definitions as written in YAML (CONTRACT §4), and as they travel through the master
//! as JSON: names are typed, so a definition read back from a token is valid by construction.
//! Unknown keys are refused; a name given twice in one mapping is an error, not a silent drop.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleDef;
use crate::token::name::{JobName, WorkflowName};

/// One job as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDef {
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<JobName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_timeout_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_timeout_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub condition: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_template: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The workers that may run it: those serving this pool (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The slots of its pool it holds while it runs (default 1; `pinball pool set` limits them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_slots: Option<u32>,
    /// Who is told of this job's events (CONTRACT §4.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<super::notify::NotifyRule>,
}

/// One workflow as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleDef>,
    #[serde(deserialize_with = "unique_keys")]
    pub jobs: BTreeMap<JobName, JobDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_job: Option<JobDef>,
    /// The run parameters (CONTRACT §4.1): name -> type, default, choices.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, super::params::ParamDef>,
    /// Who is told of the workflow's runs (CONTRACT §4.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<super::notify::NotifyRule>,
    /// When a scheduled run must have succeeded (`deadline_missed` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<super::deadline::DeadlineDef>,
    /// How long any run may run (`deadline_missed` past it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration_sec: Option<u64>,
}

/// A file of definitions: `workflows:` and nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    #[serde(deserialize_with = "unique_keys")]
    pub workflows: BTreeMap<WorkflowName, WorkflowDef>,
}

/// A mapping whose keys must be unique and parse as `K`: serde_yaml would otherwise keep the
/// last of two jobs with one name and silently drop the other.
fn unique_keys<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Ord + FromStr,
    K::Err: Display,
    V: Deserialize<'de>,
{
    struct Unique<K, V>(std::marker::PhantomData<(K, V)>);
    impl<'de, K, V> serde::de::Visitor<'de> for Unique<K, V>
    where
        K: Ord + FromStr,
        K::Err: Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping of names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let name = K::from_str(&key).map_err(serde::de::Error::custom)?;
                let value = map.next_value::<V>()?;
                if out.insert(name, value).is_some() {
                    return Err(serde::de::Error::custom(format!("duplicate name `{key}`")));
                }
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}
