//! Prometheus metrics: one recorder per process (the `metrics` facade with
//! `metrics-exporter-prometheus`, rendering only: no listener or push gateway of its own), served
//! at `/metrics` by the master and UI listeners and by `metrics_bind` for workers and the
//! scheduler. Names and units follow Prometheus conventions (`_total` counters, `_seconds`
//! histograms in base units). Every name is listed, with its help text, in [`describe`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets for latencies, from a millisecond to ten minutes.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 600.0,
];
/// Buckets for job durations, from a tenth of a second to a day.
const JOB_SECONDS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];
/// Buckets for the rows of one commit.
const ROWS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use (before any component records).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets(SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), JOB_SECONDS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_ROWS.into()), ROWS))
            .and_then(|b| b.install_recorder())
            .expect("the metrics recorder is installed once, with valid buckets");
        describe();
        // Histograms are kept in buckets that are drained on render; drain them between
        // scrapes too, so a process nobody scrapes does not grow.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("start the metrics upkeep thread");
        metrics::gauge!("pinball_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

pub const HTTP_REQUESTS: &str = "pinball_http_requests_total";
pub const HTTP_DURATION: &str = "pinball_http_request_duration_seconds";
pub const COMMITS: &str = "pinball_commits_total";
pub const REPLAYS: &str = "pinball_master_replayed_writes_total";
pub const COMMIT_DURATION: &str = "pinball_commit_duration_seconds";
pub const COMMIT_ROWS: &str = "pinball_commit_rows";
pub const TOKENS: &str = "pinball_master_tokens";
pub const PARKED: &str = "pinball_master_parked_claims";
pub const IS_LEADER: &str = "pinball_master_is_leader";
pub const EPOCH: &str = "pinball_master_epoch";
pub const TAKEOVERS: &str = "pinball_master_takeovers_total";
pub const CLAIM_WAIT: &str = "pinball_claim_wait_seconds";
pub const JOBS_RUNNING: &str = "pinball_jobs_running";
pub const JOBS_RUNNABLE: &str = "pinball_jobs_runnable";
pub const JOB_TO_JOB: &str = "pinball_job_to_job_latency_seconds";
pub const JOB_DURATION: &str = "pinball_job_duration_seconds";
pub const JOBS_FINISHED: &str = "pinball_jobs_finished_total";
pub const SCHEDULE_SKEW: &str = "pinball_schedule_skew_seconds";
pub const BACKFILL_RUNS: &str = "pinball_backfill_runs_total";
pub const POOL_SLOTS: &str = "pinball_pool_slots";
pub const POOL_SLOTS_USED: &str = "pinball_pool_slots_used";
pub const POOL_WAITING: &str = "pinball_pool_waiting_jobs";
pub const QUEUED_RUNS: &str = "pinball_queued_runs";
pub const QUEUED_RUNS_ENDED: &str = "pinball_queued_runs_total";
pub const DEADLINES_MISSED: &str = "pinball_deadlines_missed_total";
pub const WEBHOOK_NOTICES: &str = "pinball_webhook_notices_total";
pub const EMAILS_SENT: &str = "pinball_emails_sent_total";
pub const EMAIL_RETRIES: &str = "pinball_email_retries_total";
pub const EMAILS_FAILED: &str = "pinball_emails_failed_total";
pub const UI_LOGIN_FAILURES: &str = "pinball_ui_login_failures_total";
pub const RETENTION_DELETED: &str = "pinball_retention_deleted_instances_total";

fn describe() {
    describe_serving();
    describe_work();
}

/// The metrics of HTTP, the master's commits and its claims.
fn describe_serving() {
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by listener, endpoint, method and status code"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time to answer a request, by listener and endpoint"
    );
    describe_counter!(
        COMMITS,
        "Database transactions of the master's writer, by result (ok, failed, unknown)"
    );
    describe_counter!(
        REPLAYS,
        "Writes answered with the outcome of an earlier request of the same Idempotency-Key (their first answer was lost)"
    );
    describe_histogram!(
        COMMIT_DURATION,
        Unit::Seconds,
        "Time of one commit of the master's writer (a batch of changes)"
    );
    describe_histogram!(
        COMMIT_ROWS,
        Unit::Count,
        "Rows (tokens written or deleted, archived, audited) in one commit"
    );
    describe_gauge!(TOKENS, Unit::Count, "Tokens in the master's memory");
    describe_gauge!(
        PARKED,
        Unit::Count,
        "Claims waiting in the master for a token"
    );
    describe_histogram!(
        CLAIM_WAIT,
        Unit::Seconds,
        "How long a waiting claim waited, by outcome (granted, empty)"
    );
    describe_gauge!(
        IS_LEADER,
        "1 while this master process holds its lease and serves, 0 while it stands by"
    );
    describe_gauge!(
        EPOCH,
        "The epoch of the lease this master holds (or last saw held)"
    );
    describe_counter!(
        TAKEOVERS,
        "Times this process took the lease over from another master (not its first lease)"
    );
}

/// The metrics of jobs, schedules, emails, sign-ins and retention.
fn describe_work() {
    describe_gauge!(JOBS_RUNNING, Unit::Count, "Runnable jobs a worker holds");
    describe_gauge!(
        JOBS_RUNNABLE,
        Unit::Count,
        "Runnable jobs no worker holds yet"
    );
    describe_histogram!(
        JOB_TO_JOB,
        Unit::Seconds,
        "From the commit that made a job runnable (its upstream's end) to the commit that gave it to a worker"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Run time of a job's command, by workflow"
    );
    describe_counter!(
        JOBS_FINISHED,
        "Executions ended, by workflow and outcome (success, failure, killed, aborted, handed_back, lost_lease)"
    );
    describe_histogram!(
        SCHEDULE_SKEW,
        Unit::Seconds,
        "How late the scheduler started a scheduled run, after its due time"
    );
    describe_gauge!(
        POOL_SLOTS,
        Unit::Count,
        "A pool's slots (pinball pool set), by pool"
    );
    describe_gauge!(
        POOL_SLOTS_USED,
        Unit::Count,
        "Slots a pool's running jobs hold (their claims' leases), by pool"
    );
    describe_gauge!(
        POOL_WAITING,
        Unit::Count,
        "Runnable jobs of a pool no worker holds yet, by pool"
    );
    describe_gauge!(
        QUEUED_RUNS,
        Unit::Count,
        "Runs waiting in a queue for room under their workflow's max_running_instances (util start --queue)"
    );
    describe_counter!(
        QUEUED_RUNS_ENDED,
        "Queued runs that left the queue by the scheduler, by outcome: started, dropped (their workflow was retired)"
    );
    describe_counter!(
        BACKFILL_RUNS,
        "Backfill runs, by state: started, succeeded, failed (or aborted), not_started (the definition or a param did not allow it)"
    );
    describe_counter!(EMAILS_SENT, "Emails a recipient's server accepted");
    describe_counter!(
        DEADLINES_MISSED,
        "Runs that missed their deadline or ran past max_duration_sec (each once)"
    );
    describe_counter!(
        WEBHOOK_NOTICES,
        "Webhook notice tries, by outcome: sent (the target took it), retried (it is tried again), failed (given up)"
    );
    describe_counter!(
        EMAIL_RETRIES,
        "Deliveries that failed for now and will be tried again"
    );
    describe_counter!(
        EMAILS_FAILED,
        "Recipients given up (refused, or still failing after email_give_up_sec)"
    );
    describe_counter!(
        UI_LOGIN_FAILURES,
        "UI sign-ins refused, by reason (wrong_password, locked, busy)"
    );
    describe_counter!(
        RETENTION_DELETED,
        "Archived instances deleted by retention_days"
    );
}

/// The Prometheus text of this process's metrics.
pub fn render() -> String {
    handle().render()
}

/// `GET /metrics`: the text format with its content type.
pub fn answer() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(),
    )
        .into_response()
}

/// The `method` label: a closed set, whatever method a client invents (hyper accepts any
/// extension method, of any length).
pub fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Answers not counted: refused before any handler ran (no credentials, another host name, a
/// method the route does not take), so a stranger cannot move the request series at all.
fn refused_unheard(status: axum::http::StatusCode) -> bool {
    use axum::http::StatusCode;
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::METHOD_NOT_ALLOWED | StatusCode::MISDIRECTED_REQUEST
    )
}

/// Counts and times every request of the routes it is layered on (`route_layer`, so the
/// endpoint is the matched route, never a caller's arbitrary path). Every label comes from a
/// closed set: the listener, the route table, [`method_label`], and the status codes Pinball
/// itself answers with.
pub async fn track(listener: &'static str, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(req.method());
    let started = Instant::now();
    let response = next.run(req).await;
    if refused_unheard(response.status()) {
        return response;
    }
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "listener" => listener, "endpoint" => endpoint.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "listener" => listener, "endpoint" => endpoint, "method" => method, "status" => status)
        .increment(1);
    response
}

/// Label values admitted one at a time once a caller has checked them (a workflow whose
/// definition exists), at most `cap` of them; every other value is reported as `other`. A value
/// found wanting is not asked about again for [`RECHECK`] (at most `cap` such are remembered).
pub struct Admitted {
    names: std::sync::Mutex<Names>,
    cap: usize,
}

#[derive(Default)]
struct Names {
    admitted: std::collections::HashSet<String>,
    refused: std::collections::HashMap<String, Instant>,
}

/// How long a value found wanting stays `other` before it is checked again.
pub const RECHECK: Duration = Duration::from_secs(60);

impl Admitted {
    pub fn new(cap: usize) -> Admitted {
        Admitted {
            names: Default::default(),
            cap,
        }
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Some(label)` when `value` is known (admitted, or refused lately); `None` when it
    /// should be checked.
    pub fn known(&self, value: &str) -> Option<String> {
        let names = self.names();
        if names.admitted.contains(value) {
            return Some(value.to_owned());
        }
        let refused = names.refused.get(value)?;
        (refused.elapsed() < RECHECK).then(|| "other".to_owned())
    }

    /// Records a check's verdict and answers the label: `value` if admitted (there is room),
    /// `other` otherwise.
    pub fn checked(&self, value: &str, passed: bool) -> String {
        let mut names = self.names();
        if passed {
            names.refused.remove(value);
            if names.admitted.len() < self.cap {
                names.admitted.insert(value.to_owned());
            }
            if names.admitted.contains(value) {
                return value.to_owned();
            }
        } else {
            if names.refused.len() >= self.cap {
                names.refused.retain(|_, at| at.elapsed() < RECHECK);
            }
            if names.refused.len() < self.cap {
                names.refused.insert(value.to_owned(), Instant::now());
            }
        }
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_text_carries_help_and_types_of_what_was_recorded() {
        super::handle();
        metrics::counter!(super::EMAILS_SENT).increment(1);
        let text = super::render();
        assert!(
            text.contains("# TYPE pinball_emails_sent_total counter"),
            "{text}"
        );
        assert!(text.contains("pinball_build_info{version="), "{text}");
    }

    #[test]
    fn a_method_label_is_one_of_four_whatever_the_client_sends() {
        let invented = axum::http::Method::from_bytes(&[b'X'; 1000]).unwrap();
        assert_eq!(super::method_label(&invented), "other");
        assert_eq!(super::method_label(&axum::http::Method::DELETE), "other");
        assert_eq!(super::method_label(&axum::http::Method::GET), "GET");
    }

    #[test]
    fn admitted_labels_stop_at_their_cap() {
        let a = super::Admitted::new(2);
        assert_eq!(a.known("a"), None);
        assert_eq!(a.checked("a", true), "a");
        assert_eq!(a.checked("b", true), "b");
        assert_eq!(a.checked("c", true), "other", "beyond the cap");
        assert_eq!(a.known("a").as_deref(), Some("a"));
        assert_eq!(a.checked("d", false), "other");
        assert_eq!(
            a.known("d").as_deref(),
            Some("other"),
            "not asked again at once"
        );
    }
}
