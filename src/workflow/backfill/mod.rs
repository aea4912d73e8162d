//! A backfill (CONTRACT §4.3): one run per fire time of a workflow's schedule (or of
//! `--every`) in a range, as a durable token `/backfill/<id>` that holds every date's state and
//! the runs in progress. Its limit (`max_active`) is the count of runs the token itself holds,
//! changed only by version-checked writes that also start or end runs, so it holds across any
//! restart. A run that ends writes an end mark `/backfill/<id>/end/<instance>` in the commit
//! that ends it; the scheduler's claim on `/backfill/` wakes on the mark (no polling) and
//! starts the next dates in the commit that consumes it. Pure: the reading and writing is the
//! scheduler's (`scheduler::backfill`) and the operator's (`ops::backfill`).

mod plan;
mod spans;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::token::Token;
use crate::token::name;

pub use plan::{Decision, ExistingRun, decide, fire_times, schedule_of};

/// The most fire times one backfill may have (and a dry run may list).
pub const MAX_DATES: usize = 10_000;

/// How much lower a backfill run's jobs stand than the workflow's own priorities: a worker
/// claims every runnable scheduled or manual job before any backfill job.
pub const PRIORITY_DROP: f64 = 1_000_000.0;

/// Which dates that have runs already run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reprocess {
    /// Only dates without any run.
    #[default]
    Missing,
    /// Also dates whose newest run failed or was aborted.
    Failed,
    /// Every date (except one whose run is in progress).
    All,
}

impl Reprocess {
    pub fn as_str(self) -> &'static str {
        match self {
            Reprocess::Missing => "missing",
            Reprocess::Failed => "failed",
            Reprocess::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Reprocess> {
        match s {
            "missing" => Some(Reprocess::Missing),
            "failed" => Some(Reprocess::Failed),
            "all" => Some(Reprocess::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackfillState {
    Running,
    Paused,
    Cancelled,
    Done,
}

impl BackfillState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillState::Running => "running",
            BackfillState::Paused => "paused",
            BackfillState::Cancelled => "cancelled",
            BackfillState::Done => "done",
        }
    }
}

/// One date's state, stored as one letter per date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateState {
    Pending,
    Running,
    Done,
    Failed,
    /// Skipped: the date has a run (`--reprocess missing`).
    HasRun,
    /// Skipped: the date's newest run succeeded (`--reprocess failed`).
    Succeeded,
    /// Skipped: a run of the date is in progress.
    InProgress,
    /// Never started: the backfill was cancelled.
    Cancelled,
}

impl DateState {
    const ALL: [(DateState, char); 8] = [
        (DateState::Pending, 'p'),
        (DateState::Running, 'r'),
        (DateState::Done, 'd'),
        (DateState::Failed, 'f'),
        (DateState::HasRun, 'h'),
        (DateState::Succeeded, 's'),
        (DateState::InProgress, 'i'),
        (DateState::Cancelled, 'x'),
    ];

    fn letter(self) -> char {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or('p', |x| x.1)
    }

    fn of(letter: char) -> DateState {
        Self::ALL
            .iter()
            .find(|(_, l)| *l == letter)
            .map_or(DateState::Pending, |x| x.0)
    }

    /// The state's word on the backfills page and in `backfill show`.
    pub fn word(self) -> &'static str {
        match self {
            DateState::Pending => "pending",
            DateState::Running => "running",
            DateState::Done => "done",
            DateState::Failed => "failed",
            DateState::HasRun | DateState::Succeeded | DateState::InProgress => "skipped",
            DateState::Cancelled => "cancelled",
        }
    }

    /// Why a date is what it is, in a few words.
    pub fn why(self) -> &'static str {
        match self {
            DateState::Pending => "waits for a free run",
            DateState::Running => "runs",
            DateState::Done => "succeeded",
            DateState::Failed => "failed or was aborted",
            DateState::HasRun => "has a run already (--reprocess failed or all runs it again)",
            DateState::Succeeded => "its newest run succeeded",
            DateState::InProgress => "a run of it is in progress",
            DateState::Cancelled => "the backfill was cancelled",
        }
    }
}

/// How many dates are in each state (skipped ones together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: usize,
    pub running: usize,
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

/// The backfill token's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backfill {
    pub id: String,
    pub workflow: String,
    pub state: BackfillState,
    pub from: i64,
    pub to: i64,
    pub reprocess: Reprocess,
    pub max_active: u32,
    /// `--every`, when the dates are not the schedule's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// The time zone its dates are written in (the schedule's; UTC without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The fire times, in the order they run (`--order`); stored as spans of equal steps, so
    /// the token stays small however many dates it has.
    #[serde(with = "spans")]
    pub times: Vec<i64>,
    /// One letter per time ([`DateState`]); stored as runs of a letter.
    #[serde(with = "spans::letters")]
    pub states: String,
    /// The runs in progress: instance id -> index into `times`.
    pub running: BTreeMap<String, usize>,
    pub created_by: String,
    pub created_at: i64,
    /// Why the last start failed, if it did (the definition went away, a param no longer
    /// resolves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Backfill {
    pub fn state_of(&self, index: usize) -> DateState {
        self.states
            .as_bytes()
            .get(index)
            .map_or(DateState::Pending, |b| DateState::of(*b as char))
    }

    fn set(&mut self, index: usize, state: DateState) {
        // One ASCII letter per date: replaced in place.
        let mut letters = std::mem::take(&mut self.states).into_bytes();
        if let Some(l) = letters.get_mut(index) {
            *l = state.letter() as u8;
        }
        self.states = String::from_utf8(letters).unwrap_or_default();
    }

    /// The letters of `decisions`, for a new backfill.
    pub fn letters(decisions: &[Decision]) -> String {
        decisions.iter().map(|d| d.state.letter()).collect()
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for i in 0..self.times.len() {
            match self.state_of(i) {
                DateState::Pending => c.pending += 1,
                DateState::Running => c.running += 1,
                DateState::Done => c.done += 1,
                DateState::Failed => c.failed += 1,
                DateState::Cancelled => c.cancelled += 1,
                _ => c.skipped += 1,
            }
        }
        c
    }

    /// The dates to start now (marked running), within `max_active` and `room` (what the
    /// workflow's `max_running_instances` leaves), in order; none unless the backfill runs. The caller records each one's instance with [`Backfill::started`].
    pub fn next_starts(&mut self, room: usize) -> Vec<usize> {
        if self.state != BackfillState::Running {
            return Vec::new();
        }
        let free = (self.max_active as usize)
            .saturating_sub(self.running.len())
            .min(room);
        let starts: Vec<usize> = (0..self.times.len())
            .filter(|&i| self.state_of(i) == DateState::Pending)
            .take(free)
            .collect();
        for &i in &starts {
            self.set(i, DateState::Running);
        }
        starts
    }

    pub fn started(&mut self, index: usize, instance: &str) {
        self.running.insert(instance.to_owned(), index);
    }

    /// Date `index`'s run: the one in progress, else the newest of `finished` (the workflow's
    /// runs of this backfill by logical time, from the read model).
    pub fn run_of<'a>(
        &'a self,
        index: usize,
        finished: &'a BTreeMap<i64, crate::token::name::InstanceId>,
    ) -> Option<&'a str> {
        self.running
            .iter()
            .find(|(_, i)| **i == index)
            .map(|(r, _)| r.as_str())
            .or_else(|| finished.get(self.times.get(index)?).map(|i| i.as_str()))
    }

    /// A date that could not start: failed, with why.
    pub fn not_started(&mut self, index: usize, why: String) {
        self.set(index, DateState::Failed);
        self.error = Some(why);
    }

    /// The run `instance` ended; false when it is not one of this backfill's runs.
    pub fn ended(&mut self, instance: &str, succeeded: bool) -> bool {
        let Some(index) = self.running.remove(instance) else {
            return false;
        };
        self.set(
            index,
            if succeeded {
                DateState::Done
            } else {
                DateState::Failed
            },
        );
        true
    }

    /// Done once nothing is pending or running (a running backfill only).
    pub fn finish_if_done(&mut self) {
        let c = self.counts();
        if self.state == BackfillState::Running && c.pending == 0 && c.running == 0 {
            self.state = BackfillState::Done;
        }
    }

    /// Cancels: nothing pending starts; returns the runs in progress (to abort).
    pub fn cancel(&mut self) -> Vec<String> {
        self.state = BackfillState::Cancelled;
        for i in 0..self.times.len() {
            if self.state_of(i) == DateState::Pending {
                self.set(i, DateState::Cancelled);
            }
        }
        self.running.keys().cloned().collect()
    }

    /// Whether the scheduler may have anything to do for it: a mark to come (runs in
    /// progress) or dates to start.
    pub fn is_active(&self) -> bool {
        !self.running.is_empty()
            || (self.state == BackfillState::Running && self.counts().pending > 0)
    }

    pub fn to_data(&self) -> String {
        serde_json::to_string(self).expect("a backfill serialises")
    }

    /// The backfills among `tokens` (those under `/backfill/`, their end marks left out),
    /// newest first.
    pub fn all_in<'a>(tokens: impl IntoIterator<Item = &'a Token>) -> Vec<Backfill> {
        let mut all: Vec<Backfill> = tokens
            .into_iter()
            .filter(|t| name::backfill_of(&t.name).is_some_and(|(_, mark)| !mark))
            .filter_map(Backfill::from_token)
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all
    }

    /// Whether `id` can name a backfill: digits (its creation in milliseconds), at most 20.
    pub fn is_id(id: &str) -> bool {
        (1..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
    }

    pub fn from_token(t: &Token) -> Option<Backfill> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }

    /// A new token for it (no owner: the scheduler claims it at once).
    pub fn new_token(&self) -> Token {
        Token::new(name::backfill_token(&self.id), Some(self.to_data()))
    }
}

/// What the commit that ends a backfill run writes for the backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndMark {
    pub instance: String,
    pub succeeded: bool,
}

impl EndMark {
    pub fn token(backfill: &str, instance: &str, succeeded: bool) -> Token {
        let mark = EndMark {
            instance: instance.to_owned(),
            succeeded,
        };
        Token::new(
            name::backfill_end_mark(backfill, instance),
            Some(serde_json::to_string(&mark).expect("a mark serialises")),
        )
    }

    pub fn from_token(t: &Token) -> Option<EndMark> {
        serde_json::from_str(t.data.as_deref()?).ok()
    }
}

#[cfg(test)]
mod tests;
