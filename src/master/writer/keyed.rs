//! Writes with an idempotency key: which to apply, replay, defer or refuse, and what the
//! writer remembers of those it applied.

use super::*;

/// The keyed writes of the batch being built: their keys, and the outcomes its commit keeps.
#[derive(Default)]
pub(super) struct Keyed {
    pub(super) keys: std::collections::HashSet<String>,
    pub(super) outcomes: Vec<RequestOutcome>,
    pub(super) answers: Vec<(RequestKey, Answer)>,
}

impl Keyed {
    pub(super) fn clear(&mut self) {
        self.keys.clear();
        self.outcomes.clear();
        self.answers.clear();
    }

    /// A keyed write applied: its outcome is committed with the batch.
    pub(super) fn applied(&mut self, key: &Key, answer: Answer, now: i64) {
        if let Some(key) = key {
            self.keys.insert(key.key.clone());
            self.outcomes.push(requests::outcome(key, &answer, now));
            self.answers.push((key.clone(), answer));
        }
    }
}

/// What the writer does with a keyed write.
pub(super) enum Check {
    Apply,
    /// The original is in this batch: answer the replay after its commit.
    Defer,
    Replay(Answer),
    Refuse(MasterError),
}

/// Answers every write in `cmds` with `err`; returns what needs no database (watches, close).
pub(super) fn reject_writes(cmds: Vec<Command>, err: &MasterError) -> Vec<Command> {
    cmds.into_iter()
        .filter_map(|cmd| match cmd {
            Command::Watch(..) | Command::Close => Some(cmd),
            cmd => {
                reject(cmd, err);
                None
            }
        })
        .collect()
}

pub(super) fn reject(cmd: Command, err: &MasterError) {
    // A caller that went away does not care about its reply.
    match cmd {
        Command::Modify(_, _, _, r) => drop(r.send(Err(err.clone()))),
        Command::Archive(_, _, r) => drop(r.send(Err(err.clone()))),
        Command::Claim(_, _, r) => drop(r.send(Err(err.clone()))),
        Command::Audit(_, _, r) => drop(r.send(Err(err.clone()))),
        Command::Watch(_, r) => drop(r.send(Err(err.clone()))),
        Command::Close => {}
    }
}

/// The answer to a replay of a committed keyed write: the original answer, rebuilt.
pub(super) fn replay(cmd: Command, answer: &Answer, state: &State) -> Outcome {
    let mismatch = || {
        MasterError::InputError(
            "this Idempotency-Key was sent before with another kind of request".into(),
        )
    };
    match cmd {
        Command::Modify(req, _, _, reply) => {
            let result = answer.modify_response(&req).ok_or_else(mismatch);
            Outcome::Modify(reply, result)
        }
        Command::Claim(_, _, reply) => {
            Outcome::Claim(reply, answer.claim_response(state).ok_or_else(mismatch))
        }
        Command::Archive(_, _, reply) => Outcome::Archive(reply, Ok(ArchiveResponse {})),
        Command::Audit(_, _, reply) => Outcome::Audit(reply),
        Command::Watch(..) | Command::Close => unreachable!("only writes carry keys"),
    }
}

impl Writer {
    /// What to do with a write of key `key`.
    pub(super) fn check(&self, key: &Key) -> Check {
        let Some(key) = key else {
            return Check::Apply;
        };
        if self.keyed.keys.contains(&key.key) {
            return Check::Defer;
        }
        match self.requests.seen(key) {
            Seen::New => Check::Apply,
            Seen::Replay(answer) => {
                metrics::counter!(crate::metrics::REPLAYS).increment(1);
                Check::Replay(answer.clone())
            }
            Seen::Different => Check::Refuse(MasterError::InputError(
                "this Idempotency-Key was sent before with another request; a retry must send the same request, a new write a new key".into(),
            )),
        }
    }

    /// A keyed claim answered: one that took tokens is kept for its replay.
    pub(super) fn claimed(
        &mut self,
        key: &Key,
        result: &Result<QueryAndOwnResponse, MasterError>,
        now: i64,
    ) {
        if let Ok(r) = result
            && !r.tokens.is_empty()
        {
            self.keyed.applied(key, Answer::of_claim(r), now);
        }
    }

    /// After a commit: the outcomes it kept answer replays from now on.
    pub(super) fn keep_outcomes(&mut self, now: i64) {
        for (key, answer) in self.keyed.answers.drain(..) {
            self.requests.insert(key.key, key.hash, answer, now);
        }
        self.keyed.clear();
        self.requests.expire(now - requests::WINDOW_SEC);
    }
}
