//! Webhook notices of a run's and a job's events (CONTRACT §4.5), as outbox tokens
//! (`email::webhook::Notice`) put in the write of the event that causes them, like the
//! emails: a crash between the event and the post loses nothing, and one event records one
//! notice per target however many workers notice it (the name is the event's). The facts are
//! fixed here; each target's format (JSON or Slack) is its sender's to render.

use serde_json::json;

use super::links;
use super::run_info::RunInfo;
use crate::email::webhook::Notice;
use crate::parser::notify::{NotifyEvent, NotifyRule, is_address};
use crate::token::Token;
use crate::token::name::{self, InstanceId, JobName, WorkflowName};

/// An event and what a notice of it says.
pub struct Event<'a> {
    pub kind: NotifyEvent,
    pub workflow: &'a WorkflowName,
    /// The run; none for a workflow's event (`too_many_runs`).
    pub instance: Option<&'a InstanceId>,
    /// The job, for a job's event.
    pub job: Option<&'a JobName>,
    /// `SUCCESS`, `FAILURE`, `ABORTED`, `RUNNING`...
    pub status: &'a str,
    pub exit_code: Option<i32>,
    /// The job's attempt (1-based).
    pub attempt: Option<u32>,
    /// The execution whose log the notice links to.
    pub execution: Option<usize>,
    pub run: Option<&'a RunInfo>,
    /// What tells this event from another of the same kind (an execution, a moment).
    pub seq: i64,
    /// Why, in words, where the event has a reason of its own (a missed deadline).
    pub reason: Option<&'a str>,
}

/// Whether `rules` tell of `kind`: the events `failure` and `success` are also a `finish`.
fn hears(rule: &NotifyRule, kind: NotifyEvent) -> bool {
    rule.on.contains(&kind)
        || (rule.on.contains(&NotifyEvent::Finish)
            && matches!(kind, NotifyEvent::Failure | NotifyEvent::Success))
}

/// The webhook names and the email addresses `rules` send `kind` to, each once.
pub fn targets(rules: &[NotifyRule], kind: NotifyEvent) -> (Vec<String>, Vec<String>) {
    let (mut hooks, mut addresses): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for t in rules.iter().filter(|r| hears(r, kind)).flat_map(|r| &r.to) {
        let list = match is_address(t) {
            true => &mut addresses,
            false => &mut hooks,
        };
        if !list.contains(t) {
            list.push(t.clone());
        }
    }
    (hooks, addresses)
}

/// The facts of `e` (the JSON document without its delivery id), links into the UI at
/// `ui_link`.
pub fn facts(e: &Event, ui_link: &str) -> serde_json::Value {
    let w = e.workflow;
    let Some(i) = e.instance else {
        return json!({
            "reason": e.reason,
            "event": e.kind.as_str(),
            "workflow": w,
            "instance": null,
            "status": e.status,
            "logical_time": e.run.map(|r| r.logical_time),
            "params": {},
            "links": {"workflow": format!("{ui_link}{}", links::instances_href(w))},
        });
    };
    let mut links = json!({"instance": format!("{ui_link}{}", links::jobs_href(w, i))});
    if let Some(j) = e.job {
        links["job"] = format!("{ui_link}{}", links::job_href(w, i, j)).into();
        if let Some(n) = e.execution {
            links["log"] = format!("{ui_link}{}", links::file_href(w, i, j, n, "stderr")).into();
        }
    }
    let mut doc = json!({
        "event": e.kind.as_str(),
        "workflow": w,
        "instance": i,
        "status": e.status,
        "logical_time": e.run.map(|r| r.logical_time),
        "params": e.run.map(|r| r.params.clone()).unwrap_or_default(),
        "links": links,
    });
    if let Some(j) = e.job {
        doc["job"] = j.as_str().into();
    }
    if let Some(code) = e.exit_code {
        doc["exit_code"] = code.into();
    }
    if let Some(a) = e.attempt {
        doc["attempt"] = a.into();
    }
    if let Some(r) = e.reason {
        doc["reason"] = r.into();
    }
    doc
}

/// The outbox tokens telling `hooks` of `e`.
pub fn tokens(e: &Event, hooks: &[String], ui_link: &str) -> Vec<Token> {
    if hooks.is_empty() {
        return Vec::new();
    }
    let facts = facts(e, ui_link);
    hooks
        .iter()
        .map(|target| {
            let mut id = [0u8; 16];
            getrandom::fill(&mut id).expect("the OS has a secure random source");
            let notice = Notice {
                target: target.clone(),
                event: facts.clone(),
                delivery: crate::token::hex(&id),
                created: crate::clock::now(),
                attempts: 0,
                last_error: None,
            };
            notice.token(name::webhook_notice(
                e.workflow,
                e.instance,
                e.kind.as_str(),
                e.job,
                e.seq,
                target,
            ))
        })
        .collect()
}

/// `tokens` for the webhooks of `rules` that hear of `e`.
pub fn of_rules(e: &Event, rules: &[NotifyRule], ui_link: &str) -> Vec<Token> {
    tokens(e, &targets(rules, e.kind).0, ui_link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_hears_its_events_and_finish_hears_both_ends() {
        let rules: Vec<NotifyRule> = serde_yaml::from_str(
            "[{on: [failure], to: [pager, 'ops@example.com']}, {on: [finish], to: [slack, pager]}]",
        )
        .unwrap();
        assert_eq!(
            targets(&rules, NotifyEvent::Failure),
            (
                vec!["pager".into(), "slack".into()],
                vec!["ops@example.com".into()]
            )
        );
        assert_eq!(
            targets(&rules, NotifyEvent::Success),
            (vec!["slack".into(), "pager".into()], vec![])
        );
        assert_eq!(targets(&rules, NotifyEvent::Retry), (vec![], vec![]));
    }

    #[test]
    fn a_job_s_notice_carries_its_facts_and_links() {
        let (w, i, j) = (
            WorkflowName::parse("daily").unwrap(),
            InstanceId::parse("17").unwrap(),
            JobName::parse("load").unwrap(),
        );
        let run = RunInfo {
            logical_time: 1_767_225_600,
            params: [("region".to_string(), "eu".to_string())].into(),
            ..RunInfo::default()
        };
        let e = Event {
            kind: NotifyEvent::Failure,
            workflow: &w,
            instance: Some(&i),
            job: Some(&j),
            status: "FAILURE",
            exit_code: Some(2),
            attempt: Some(3),
            execution: Some(2),
            run: Some(&run),
            seq: 2,
            reason: None,
        };
        let tokens = tokens(&e, &["pager".into()], "http://ui:8080");
        assert_eq!(tokens[0].name, "/webhook/daily/17/failure/load/2/pager");
        let n = Notice::from_token(&tokens[0]).unwrap();
        assert_eq!(n.delivery.len(), 32);
        assert_eq!(
            n.event,
            json!({
                "event": "failure", "workflow": "daily", "instance": "17", "job": "load",
                "status": "FAILURE", "exit_code": 2, "attempt": 3,
                "logical_time": 1_767_225_600, "params": {"region": "eu"},
                "links": {
                    "instance": "http://ui:8080/jobs/?workflow=daily&instance=17",
                    "job": "http://ui:8080/executions/?workflow=daily&instance=17&job=load",
                    "log": "http://ui:8080/file/?workflow=daily&instance=17&job=load&execution=2&log_type=stderr",
                },
            })
        );
    }
}
