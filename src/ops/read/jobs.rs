//! The read model's jobs, executions, schedules, signals and raw tokens.

use super::*;

impl DataLayer {
    pub async fn jobs(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
    ) -> Result<Option<Vec<JobRow>>, StorageError> {
        Ok(self
            .instance(w, i)
            .await?
            .map(|inst| inst.jobs.iter().map(job_row).collect()))
    }

    /// The job's token, live or archived: its own names only (waiting, then runnable, which
    /// wins), not the whole instance.
    pub async fn job(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        job: &JobName,
    ) -> Result<Option<JobToken>, StorageError> {
        let mut found = None;
        for state in [JobState::Waiting, JobState::Runnable] {
            let token_name = name::job_token(w, i, state, job);
            for (t, _) in self.tokens(&token_name, true).await? {
                if t.name == token_name
                    && let Ok(jt) = JobToken::parse(t)
                {
                    found = Some(jt);
                }
            }
        }
        Ok(found)
    }

    pub async fn executions(
        &self,
        w: &WorkflowName,
        i: &InstanceId,
        job: &JobName,
    ) -> Result<Option<Vec<ExecutionRow>>, StorageError> {
        Ok(self.job(w, i, job).await?.map(|jt| execution_rows(&jt)))
    }

    /// A job's executions across the workflow's newest `limit` instances (after `offset`),
    /// sorted by start and de-duplicated on (instance, execution): retried instances carry
    /// copies of earlier histories.
    pub async fn job_executions(
        &self,
        w: &WorkflowName,
        job: &JobName,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ExecutionRow>, StorageError> {
        let Some(page) = self.instances(w, offset, limit).await? else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        for inst in page.rows {
            if let Some(jt) = self.job(w, &inst.instance, job).await? {
                rows.extend(execution_rows(&jt));
            }
        }
        rows.sort_by(|a, b| {
            a.start_time
                .total_cmp(&b.start_time)
                .then_with(|| a.instance.cmp(&b.instance))
                .then(a.execution.cmp(&b.execution))
        });
        let mut seen = BTreeSet::new();
        rows.retain(|r| seen.insert((r.instance.clone(), r.start_time.to_bits())));
        Ok(rows)
    }

    /// The last delivery of `w`'s notices to each webhook target, by target.
    pub async fn deliveries(
        &self,
        w: &WorkflowName,
    ) -> Result<BTreeMap<String, crate::email::webhook::LastDelivery>, StorageError> {
        let prefix = format!("{}{w}/", name::DELIVERY_PREFIX);
        let tokens = self
            .store
            .read(&self.master, Table::Active, &prefix)
            .await?;
        Ok(tokens
            .into_iter()
            .filter_map(|t| {
                let target = t.name.strip_prefix(&prefix)?.to_owned();
                Some((target, serde_json::from_str(t.data.as_deref()?).ok()?))
            })
            .collect())
    }

    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, StorageError> {
        let tokens = self
            .store
            .read(&self.master, Table::Active, name::SCHEDULE_PREFIX)
            .await?;
        Ok(tokens
            .iter()
            .filter_map(ScheduleData::from_token)
            .map(|d| ScheduleRow {
                workflow: d.workflow.clone(),
                next_run_time: d.next_run_time,
                recurrence: d.schedule.recurrence.clone(),
                cron: d.schedule.cron.clone(),
                overrun_policy: d
                    .schedule
                    .overrun_policy
                    .clone()
                    .unwrap_or_else(|| "SKIP".into()),
                max_running_instances: d
                    .schedule
                    .max_running_instances
                    .unwrap_or(self.default_max_running),
                emails: d.emails.clone(),
                missed_runs: d.missed_runs,
                paused: d.paused,
                catchup: d.schedule.catchup,
                timezone: d.schedule.timezone.clone(),
            })
            .collect())
    }

    /// The signals visible at `level`, from the database (live tokens).
    pub async fn signals(&self, level: &Level) -> Result<Signals, StorageError> {
        let mut tokens = Vec::new();
        for prefix in level.visible_signal_prefixes() {
            tokens.extend(
                self.store
                    .read(&self.master, Table::Active, &prefix)
                    .await?,
            );
        }
        Ok(Signals::from_tokens(tokens))
    }

    /// The token explorer: the children of `path` (the name up to and including the next `/`
    /// after it, or the whole name) with how many tokens each holds, in both tables.
    pub async fn token_paths(&self, path: &str) -> Result<Vec<PathCount>, StorageError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for table in [Table::Active, Table::Archived] {
            for n in self.store.names(&self.master, table, path).await? {
                *counts
                    .entry(name::path_child(path, &n).to_owned())
                    .or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(path, count)| PathCount { path, count })
            .collect())
    }

    /// One token by exact name: the live one, else its latest archived copy (`true`).
    pub async fn token(&self, token_name: &str) -> Result<Option<(Token, bool)>, StorageError> {
        Ok(self
            .tokens(token_name, true)
            .await?
            .into_iter()
            .find(|(t, _)| t.name == token_name))
    }
}
