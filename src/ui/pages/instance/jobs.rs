//! The instance page's jobs table: each job's row, its progress bar, and the search across it.

use super::*;

pub struct Segment {
    pub percent: u32,
    pub colour: &'static str,
}

pub struct JobView {
    pub job: String,
    pub info: Vec<String>,
    pub status: &'static str,
    pub label: &'static str,
    pub icon: &'static str,
    pub colour: &'static str,
    pub progress: Vec<Segment>,
    pub last_start: When,
    pub last_end: When,
    pub run_time: String,
    /// The run time in seconds: what the column sorts by.
    pub run_secs: String,
    /// Attempts of this try (since the last manual retry).
    pub attempts: usize,
    /// Attempts in all, when a manual retry started a new try.
    pub in_all: Option<usize>,
    /// A condition's polls (its executions).
    pub polls: Option<usize>,
    pub depends_on: Vec<String>,
    /// The jobs that wait for it.
    pub downstream: Vec<String>,
    /// A pending job's pool when it is limited, and the slots it needs: see [`waiting_for_slots`].
    pub pool: Option<(String, u32)>,
    /// "waiting for a slot in pool P (4 of 4 used)", for a pending job its pool has no room for.
    pub waiting: String,
}

/// Says, on each pending job whose pool has no room for it now, that it waits for a slot
/// (rather than a bare PENDING): `rows` are the pools as the master sees them.
pub(super) fn waiting_for_slots(jobs: &mut [JobView], rows: &[crate::ops::pools::PoolRow]) {
    for j in jobs.iter_mut() {
        let Some((pool, need)) = &j.pool else {
            continue;
        };
        let Some(row) = rows.iter().find(|r| &r.pool == pool) else {
            continue;
        };
        if let Some(slots) = row.slots
            && row.used + u64::from(*need) > u64::from(slots)
        {
            j.waiting = format!(
                "waiting for a slot in pool {pool} ({} of {slots} used)",
                row.used
            );
        }
    }
}

/// Failed first, then running, waiting, and the rest; by name within each.
pub(super) fn table_rank(s: Look) -> u8 {
    match s {
        Look::FAILURE | Look::KILLED | Look::ABORTED => 0,
        Look::RUNNING => 1,
        Look::WAITING_RETRY | Look::POLLING | Look::PENDING => 2,
        _ => 3,
    }
}

pub(super) fn job_info(jt: &JobToken) -> Vec<String> {
    let j = &jt.job;
    let mut info = vec![j.command.clone()];
    if j.is_condition() {
        info.push("condition".into());
    }
    if jt.token.priority != 0.0 {
        info.push(format!("priority {}", jt.token.priority));
    }
    if !j.emails.is_empty() {
        info.push(format!("emails {}", j.emails.join(", ")));
    }
    if j.max_attempts > 1 {
        info.push(format!("max_attempts {}", j.max_attempts));
    }
    if j.retry_delay_sec > 0 {
        info.push(format!("retry_delay_sec {}", j.retry_delay_sec));
    }
    if let Some(t) = j.warn_timeout_sec {
        info.push(format!("warn_timeout_sec {t}"));
    }
    if let Some(t) = j.abort_timeout_sec {
        info.push(format!("abort_timeout_sec {t}"));
    }
    if j.disabled {
        info.push("disabled".into());
    }
    if let Some(p) = &j.pool {
        info.push(match j.pool_slots {
            Some(k) if k > 1 => format!("pool {p} ({k} slots)"),
            _ => format!("pool {p}"),
        });
    }
    info
}

/// PINBALL_SPEC §8.3: the share of the instance's duration before the job's first start, then
/// one segment per execution (at least 1%), coloured by how it ended.
pub fn progress(jt: &JobToken, inst_start: f64, inst_end: f64) -> Vec<(u32, Look)> {
    let total = (inst_end - inst_start).max(1.0);
    let Some(first) = jt.job.history.first() else {
        return Vec::new();
    };
    let mut out = vec![(
        (100.0 * (first.start_time - inst_start) / total) as u32,
        Look::UNKNOWN,
    )];
    for (n, r) in jt.job.history.iter().enumerate() {
        let status = match execution_look(jt, n) {
            l @ (Look::RUNNING | Look::SUCCESS | Look::KILLED) => l,
            _ => Look::FAILURE,
        };
        let d = r.end_time.unwrap_or(inst_end) - r.start_time;
        out.push((((100.0 * d / total) as u32).max(1), status));
    }
    out
}

/// One jobs table row.
pub(super) fn job_view(jt: &JobToken, span: (f64, f64), now: f64) -> JobView {
    let look = job_look(jt);
    let last = jt.job.history.last();
    let progress = progress(jt, span.0, span.1)
        .into_iter()
        .enumerate()
        .map(|(k, (percent, status))| Segment {
            percent,
            colour: if k == 0 {
                "transparent"
            } else {
                status.colour()
            },
        })
        .collect();
    JobView {
        job: jt.job.name.to_string(),
        info: job_info(jt),
        status: look.as_str(),
        label: look.label(),
        icon: look.icon(),
        colour: look.colour(),
        progress,
        last_start: when(last.map(|r| r.start_time), now),
        last_end: when(last.and_then(|r| r.end_time), now),
        run_time: last.map_or_else(String::new, |r| {
            run_time(Some(r.start_time), r.end_time, now)
        }),
        run_secs: last.map_or_else(String::new, |r| {
            run_secs(Some(r.start_time), r.end_time, now)
        }),
        attempts: attempts_this_try(jt),
        in_all: (jt.job.attempts_from > 0).then(|| attempts(jt)),
        polls: jt.job.is_condition().then_some(jt.job.history.len()),
        depends_on: depends_on(jt).iter().map(|d| d.to_string()).collect(),
        downstream: jt.job.outputs.iter().map(|d| d.to_string()).collect(),
        pool: jt
            .job
            .pool
            .clone()
            .filter(|_| look == Look::PENDING)
            .map(|p| (p, jt.job.pool_slots.unwrap_or(1))),
        waiting: String::new(),
    }
}

/// The jobs that match the table's search (a name part, or a status), across all pages.
pub(super) fn matching<'a>(inst: &'a Instance, q: &str) -> Vec<&'a JobToken> {
    let mut found: Vec<&JobToken> = inst
        .jobs
        .iter()
        .filter(|jt| {
            q.is_empty()
                || jt.job.name.contains(q)
                || job_status(jt).as_str().eq_ignore_ascii_case(q)
                || job_look(jt).as_str().eq_ignore_ascii_case(q)
        })
        .collect();
    found.sort_by_cached_key(|jt| (table_rank(job_look(jt)), jt.job.name.as_str()));
    found
}
