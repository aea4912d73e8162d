//! `/schedules/` and `/schedule/?workflow=W`: next runs, recurrences, policies, limits and
//! emails; a workflow's graph and jobs from its definition.

use askama::Template;
use axum::extract::State;

use super::{Head, PageResult, Params, When, respond, when};
use crate::ops::read::ScheduleRow;
use crate::schedule::OverrunPolicy;
use crate::token::name::Level;
use crate::ui::Ui;
use crate::ui::error::{PageError, PageQuery, QueryIn, UiError};
use crate::ui::graph;
use crate::workflow::status::Look;

pub struct ScheduleView {
    pub workflow: String,
    pub next_run: When,
    pub recurrence: String,
    pub policy: String,
    pub policy_help: &'static str,
    pub max_running: u32,
    pub emails: String,
    pub missed_runs: u64,
    pub paused: bool,
}

fn schedule_view(s: ScheduleRow, now: f64) -> ScheduleView {
    let mut recurrence = match (&s.recurrence, &s.cron) {
        (Some(r), _) => crate::schedule::recurrence::Recurrence::parse(r)
            .map(|r| r.describe())
            .unwrap_or_else(|_| format!("every {r}")),
        (None, Some(c)) => format!("cron {c}"),
        _ => String::new(),
    };
    if let Some(tz) = &s.timezone {
        recurrence.push_str(&format!(" ({tz})"));
    }
    if s.catchup {
        recurrence.push_str(", catch up missed runs");
    }
    ScheduleView {
        next_run: when(Some(s.next_run_time as f64), now),
        policy_help: OverrunPolicy::parse(&s.overrun_policy).map_or("", OverrunPolicy::help),
        policy: s.overrun_policy,
        max_running: s.max_running_instances,
        emails: s.emails.join(", "),
        missed_runs: s.missed_runs,
        paused: s.paused,
        recurrence,
        workflow: s.workflow.into(),
    }
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    head: Head,
    rows: Vec<ScheduleView>,
}

pub(super) async fn schedules(State(ui): State<Ui>) -> PageResult {
    let now = crate::clock::now_f64();
    let rows = ui.data.schedules().await.map_err(PageError::from)?;
    respond(&SchedulesPage {
        head: Head::new(&ui, "Schedules", &Level::Global),
        rows: rows.into_iter().map(|s| schedule_view(s, now)).collect(),
    })
}

pub struct DefJobView {
    pub job: String,
    pub info: Vec<String>,
    pub depends_on: String,
    pub downstream: String,
}

#[derive(Template)]
#[template(path = "schedule.html")]
struct SchedulePage {
    head: Head,
    workflow: String,
    schedule: Option<ScheduleView>,
    graph: String,
    jobs: Vec<DefJobView>,
    /// The Start form's fields: one per declared param.
    params: Vec<ParamField>,
    /// The `notify` rules: of (the workflow or a job), on, to.
    rules: Vec<(String, String, String)>,
    /// Each webhook the rules name, with its last delivery.
    deliveries: Vec<DeliveryView>,
}

/// A webhook target and its last delivery.
pub struct DeliveryView {
    pub target: String,
    pub when: When,
    pub event: String,
    pub taken: bool,
    pub answer: String,
}

/// The rules of `def` (the workflow's, then each job's) as rows, and the webhooks they name.
fn rules_of(def: &crate::parser::WorkflowDef) -> (Vec<(String, String, String)>, Vec<String>) {
    let mut rows = Vec::new();
    let mut hooks: Vec<String> = Vec::new();
    let all = std::iter::once(("the workflow".to_owned(), &def.notify)).chain(
        def.jobs
            .iter()
            .map(|(j, jd)| (format!("job {j}"), &jd.notify)),
    );
    for (of, rules) in all {
        for r in rules {
            let on: Vec<&str> = r.on.iter().map(|e| e.as_str()).collect();
            rows.push((of.clone(), on.join(", "), r.to.join(", ")));
            for t in
                r.to.iter()
                    .filter(|t| !crate::parser::notify::is_address(t))
            {
                if !hooks.contains(t) {
                    hooks.push(t.clone());
                }
            }
        }
    }
    (rows, hooks)
}

/// One field of the Start form, built from a declared param.
pub struct ParamField {
    pub name: String,
    /// `text`, `number`, `date`, or `select` (choices, and bool).
    pub input: &'static str,
    pub choices: Vec<String>,
    pub value: String,
    pub required: bool,
    /// `int`, `float`...: shown beside the name.
    pub kind: &'static str,
    pub description: String,
}

fn param_fields(def: &crate::parser::WorkflowDef) -> Vec<ParamField> {
    use crate::parser::params::ParamType;
    def.params
        .iter()
        .map(|(name, p)| {
            let mut choices: Vec<String> = p.choices.iter().map(|c| c.0.clone()).collect();
            if p.kind == ParamType::Bool && choices.is_empty() {
                choices = vec!["false".into(), "true".into()];
            }
            ParamField {
                name: name.clone(),
                input: match p.kind {
                    _ if !choices.is_empty() => "select",
                    ParamType::Int | ParamType::Float => "number",
                    ParamType::Date => "date",
                    _ => "text",
                },
                choices,
                value: p.default.as_ref().map(|d| d.0.clone()).unwrap_or_default(),
                required: p.required,
                kind: p.kind.as_str(),
                description: p.description.clone().unwrap_or_default(),
            }
        })
        .collect()
}

pub(super) async fn schedule(State(ui): State<Ui>, QueryIn(p, _): PageQuery<Params>) -> PageResult {
    let now = crate::clock::now_f64();
    let w = p.workflow()?;
    let def = ui.data.definition(w).await.map_err(PageError::from)?;
    let def = def.ok_or_else(|| UiError::NotFound(format!("workflow {w} has no definition")))?;
    let schedule = ui
        .data
        .schedules()
        .await
        .map_err(PageError::from)?
        .into_iter()
        .find(|s| s.workflow == *w)
        .map(|s| schedule_view(s, now));
    let g = def.graph();
    let nodes: Vec<graph::GraphNode> = g
        .jobs
        .iter()
        .map(|(name, j)| graph::GraphNode {
            name: name.to_string(),
            depends_on: j.depends_on.iter().map(|d| d.to_string()).collect(),
            status: Look::NEVER_RUN,
            condition: j.def.condition,
        })
        .collect();
    let jobs = g
        .jobs
        .iter()
        .map(|(name, j)| {
            let mut info = vec![j.def.command.clone()];
            if j.def.condition {
                info.push("condition".into());
            }
            if let Some(m) = j.def.max_attempts.filter(|m| *m > 1) {
                info.push(format!("max_attempts {m}"));
            }
            if j.def.disabled {
                info.push("disabled".into());
            }
            DefJobView {
                job: name.to_string(),
                info,
                depends_on: j.depends_on.join(", "),
                downstream: j.outputs.join(", "),
            }
        })
        .collect();
    let (rules, hooks) = rules_of(&def);
    let mut last = ui.data.deliveries(w).await.map_err(PageError::from)?;
    let deliveries = hooks
        .into_iter()
        .map(|target| match last.remove(&target) {
            Some(l) => DeliveryView {
                target,
                when: when(Some(l.at as f64), now),
                event: l.event,
                taken: l.taken,
                answer: l.answer,
            },
            None => DeliveryView {
                target,
                when: when(None, now),
                event: String::new(),
                taken: false,
                answer: "nothing sent yet".into(),
            },
        })
        .collect();
    respond(&SchedulePage {
        head: Head::new(&ui, format!("{w} schedule"), &Level::Workflow(w.clone())),
        workflow: w.to_string(),
        schedule,
        graph: graph::svg(&nodes),
        jobs,
        params: param_fields(&def),
        rules,
        deliveries,
    })
}
