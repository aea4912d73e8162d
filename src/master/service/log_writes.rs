//! A job's log as the master takes it from the worker running it: a chunk at a time while
//! the job runs (`/logs`, the log sink's own transactions), and the last bytes with the run's
//! end (`/modify`'s `logs`, in the end's own commit).

use super::Master;
use crate::storage::LogChunk;
use crate::token::*;

impl Master {
    /// Stores a piece of a job's log (`/logs`), beside the tokens, not through their writer.
    /// Only the worker holding the job's lease may send it: a log for a job nobody runs, or
    /// that another worker holds, is refused (so no one can pre-empt or forge a job's output,
    /// nor fill the database with logs of executions that do not exist).
    pub async fn append_log(&self, req: LogRequest) -> Result<LogResponse, MasterError> {
        let log = (self.shared.options.naming.job_log)(&req.workflow, &req.instance, &req.job)?;
        self.held_by(&req, &log.job_token).await?;
        self.logs.append(req, log.key).await
    }

    async fn held_by(&self, req: &LogRequest, job_token: &str) -> Result<(), MasterError> {
        let refused = || {
            MasterError::Forbidden(format!(
                "no worker named {:?} holds job {} of workflow {} instance {}; a job's log is taken only from the worker running it",
                req.owner, req.job, req.workflow, req.instance
            ))
        };
        if req.owner.is_empty() || req.owner.len() > 255 {
            return Err(refused());
        }
        let state = self.shared.state.read().await;
        let held = state
            .get(job_token)
            .is_some_and(|e| e.owner.as_deref() == Some(req.owner.as_str()));
        if held { Ok(()) } else { Err(refused()) }
    }

    /// The chunks of the logs a run's end carries (taken out of `req`), checked as `/logs`
    /// checks a chunk: each of a job this write updates or deletes at its version (the write
    /// fails, and stores none of them, when the job moved on), sent by the worker holding it.
    /// Bytes stored already are not read here: the commit's insert leaves such a chunk out.
    pub(super) async fn end_logs(
        &self,
        req: &mut ModifyRequest,
    ) -> Result<Vec<LogChunk>, MasterError> {
        let mut chunks = Vec::with_capacity(req.logs.len());
        for l in std::mem::take(&mut req.logs) {
            let log = (self.shared.options.naming.job_log)(&l.workflow, &l.instance, &l.job)?;
            let ended = |t: &Token| t.name == log.job_token && t.version.is_some();
            if !req.updates.iter().chain(&req.deletes).any(ended) {
                return Err(MasterError::input(format!(
                    "logs name job {} of workflow {} instance {}, which this request neither updates nor deletes at its version; a run's log goes with its own end",
                    l.job, l.workflow, l.instance
                )));
            }
            self.held_by(&l, &log.job_token).await?;
            // The commit's insert skips bytes stored already: no read on the end's path.
            chunks.extend(self.logs.prepare(l, log.key, false).await?.0);
        }
        Ok(chunks)
    }
}
