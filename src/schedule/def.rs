//! A schedule as written in a workflow's YAML (CONTRACT §4); [`super::Schedule::from_def`]
//! validates and interprets it. Kept as written in the definition and the schedule token.

use serde::{Deserialize, Serialize};

/// A schedule as written in YAML; the scheduler validates and interprets it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrun_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running_instances: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub catchup: bool,
}
