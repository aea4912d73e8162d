//! Workflow definitions (CONTRACT §4): YAML files (or a folder of them) parsed into validated
//! [`WorkflowDef`]s, and the tokens of a fresh instance. Errors name the file, the workflow and
//! the job. Used by `import`, `util` and the scheduler; the definitions themselves travel to
//! every component through the master (see `workflow::definition`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleDef;
use crate::token::name::{check_word, is_word};

/// The name of the job a `final_job:` entry becomes.
pub const FINAL_JOB: &str = "final";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct ParseError(pub String);

/// One job as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDef {
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
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
    pub jobs: BTreeMap<String, JobDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_job: Option<JobDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(deserialize_with = "unique_keys")]
    workflows: BTreeMap<String, WorkflowDef>,
}

/// A mapping whose keys must be unique: serde_yaml would otherwise keep the last of two jobs
/// with one name and silently drop the other.
fn unique_keys<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a mapping of names")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, V>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate name `{key}`")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Unique(std::marker::PhantomData))
}

/// Reads every workflow from a YAML file or a folder of `.yaml`/`.yml` files.
pub fn load_path(path: &Path) -> Result<BTreeMap<String, WorkflowDef>, ParseError> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| ParseError(format!("cannot read folder {}: {e}", path.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ParseError(format!("cannot read {}: {e}", file.display())))?;
        for (name, def) in parse_yaml(&text, &file.display().to_string())? {
            if all.contains_key(&name) {
                return Err(ParseError(format!(
                    "{}: workflow {name} is defined twice",
                    file.display()
                )));
            }
            all.insert(name, def);
        }
    }
    Ok(all)
}

/// Parses and validates one YAML document; `origin` names it in errors.
pub fn parse_yaml(text: &str, origin: &str) -> Result<BTreeMap<String, WorkflowDef>, ParseError> {
    let file: File =
        serde_yaml::from_str(text).map_err(|e| ParseError(format!("{origin}: {e}")))?;
    for (name, def) in &file.workflows {
        validate(name, def).map_err(|e| ParseError(format!("{origin}: workflow {name}: {e}")))?;
    }
    Ok(file.workflows)
}

/// Parses definitions given as JSON (the `exec` parser's output).
pub fn parse_json(text: &str, origin: &str) -> Result<BTreeMap<String, WorkflowDef>, ParseError> {
    let file: File =
        serde_json::from_str(text).map_err(|e| ParseError(format!("{origin}: {e}")))?;
    for (name, def) in &file.workflows {
        validate(name, def).map_err(|e| ParseError(format!("{origin}: workflow {name}: {e}")))?;
    }
    Ok(file.workflows)
}

fn validate_job(name: &str, job: &JobDef) -> Result<(), String> {
    let at = |m: String| format!("job {name}: {m}");
    check_word("job", name).map_err(at)?;
    if job.command.trim().is_empty() {
        return Err(at("command is empty".into()));
    }
    if job.max_attempts == Some(0) {
        return Err(at("max_attempts must be at least 1".into()));
    }
    if let Some(p) = job.priority
        && !p.is_finite()
    {
        return Err(at("priority must be a finite number".into()));
    }
    if let (Some(w), Some(a)) = (job.warn_timeout_sec, job.abort_timeout_sec)
        && w >= a
    {
        return Err(at(format!(
            "warn_timeout_sec {w} must be below abort_timeout_sec {a}"
        )));
    }
    if job.condition && !job.depends_on.is_empty() {
        return Err(at(
            "a condition job polls an external condition and cannot depend on other jobs".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for dep in &job.depends_on {
        if !seen.insert(dep) {
            return Err(at(format!("depends on {dep} twice")));
        }
        if dep == name {
            return Err(at("depends on itself".into()));
        }
    }
    Ok(())
}

fn validate(name: &str, def: &WorkflowDef) -> Result<(), String> {
    check_word("workflow", name)?;
    if def.jobs.is_empty() {
        return Err("has no jobs".into());
    }
    for (job, jd) in &def.jobs {
        validate_job(job, jd)?;
        for dep in &jd.depends_on {
            if !def.jobs.contains_key(dep) {
                return Err(format!("job {job}: depends on unknown job {dep}"));
            }
        }
    }
    if let Some(f) = &def.final_job {
        if def.jobs.contains_key(FINAL_JOB) {
            return Err(format!(
                "job {FINAL_JOB} already exists; it is the name of final_job"
            ));
        }
        if !f.depends_on.is_empty() {
            return Err("final_job: depends on every leaf job by itself; remove depends_on".into());
        }
        validate_job(FINAL_JOB, f)?;
    }
    if let Some(schedule) = &def.schedule {
        crate::schedule::Schedule::from_def(schedule)?;
    }
    if let Some(cycle) = find_cycle(&def.jobs) {
        return Err(format!("job {cycle} is part of a cycle"));
    }
    for email in def
        .notify_emails
        .iter()
        .chain(def.jobs.values().flat_map(|j| &j.emails))
    {
        if !email.contains('@') {
            return Err(format!("{email:?} is not an email address"));
        }
    }
    Ok(())
}

/// A job on a dependency cycle, if there is one (depth-first search with colours).
fn find_cycle(jobs: &BTreeMap<String, JobDef>) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    fn visit<'a>(
        job: &'a str,
        jobs: &'a BTreeMap<String, JobDef>,
        colour: &mut BTreeMap<&'a str, Colour>,
    ) -> Option<String> {
        colour.insert(job, Colour::Grey);
        for dep in &jobs[job].depends_on {
            match colour.get(dep.as_str()).copied().unwrap_or(Colour::White) {
                Colour::Grey => return Some(dep.clone()),
                Colour::White => {
                    if let Some(c) = visit(dep, jobs, colour) {
                        return Some(c);
                    }
                }
                Colour::Black => {}
            }
        }
        colour.insert(job, Colour::Black);
        None
    }
    let mut colour = BTreeMap::new();
    for job in jobs.keys() {
        if colour.get(job.as_str()).copied().unwrap_or(Colour::White) == Colour::White
            && let Some(c) = visit(job, jobs, &mut colour)
        {
            return Some(c);
        }
    }
    None
}

/// The resolved graph of a workflow: every job (the final one included) with its inputs,
/// outputs and priority score.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub jobs: BTreeMap<String, GraphJob>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphJob {
    pub def: JobDef,
    /// Upstream job names (empty for a top-level job).
    pub depends_on: Vec<String>,
    pub outputs: Vec<String>,
    /// Own priority (default 1) plus that of everything downstream; 0 for conditions.
    pub priority: f64,
}

impl WorkflowDef {
    pub fn graph(&self) -> Graph {
        let mut jobs: BTreeMap<String, GraphJob> = self
            .jobs
            .iter()
            .map(|(n, d)| {
                (
                    n.clone(),
                    GraphJob {
                        def: d.clone(),
                        depends_on: d.depends_on.clone(),
                        outputs: vec![],
                        priority: 0.0,
                    },
                )
            })
            .collect();
        if let Some(f) = &self.final_job {
            let leaves: Vec<String> = self
                .jobs
                .keys()
                .filter(|j| !self.jobs.values().any(|other| other.depends_on.contains(j)))
                .cloned()
                .collect();
            jobs.insert(
                FINAL_JOB.into(),
                GraphJob {
                    def: f.clone(),
                    depends_on: leaves,
                    outputs: vec![],
                    priority: 0.0,
                },
            );
        }
        let edges: Vec<(String, String)> = jobs
            .iter()
            .flat_map(|(n, j)| j.depends_on.iter().map(move |d| (d.clone(), n.clone())))
            .collect();
        for (from, to) in edges {
            jobs.get_mut(&from)
                .expect("dependencies are validated")
                .outputs
                .push(to);
        }
        let names: Vec<String> = jobs.keys().cloned().collect();
        for name in names {
            let score = if jobs[&name].def.condition {
                0.0
            } else {
                downstream_score(&name, &jobs)
            };
            jobs.get_mut(&name).expect("exists").priority = score;
        }
        Graph { jobs }
    }
}

/// The job's own priority plus every transitive dependent's, each counted once.
fn downstream_score(job: &str, jobs: &BTreeMap<String, GraphJob>) -> f64 {
    let mut seen = BTreeSet::new();
    let mut stack = vec![job.to_owned()];
    let mut score = 0.0;
    while let Some(j) = stack.pop() {
        if !seen.insert(j.clone()) {
            continue;
        }
        score += jobs[&j].def.priority.unwrap_or(1.0);
        stack.extend(jobs[&j].outputs.iter().cloned());
    }
    score
}

/// Whether `name` is usable as a workflow name.
pub fn is_valid_workflow_name(name: &str) -> bool {
    is_word(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BTreeMap<String, WorkflowDef>, ParseError> {
        parse_yaml(text, "test.yaml")
    }

    #[test]
    fn a_workflow_with_a_final_job_gets_a_final_job_depending_on_every_leaf() {
        let wfs = parse(
            "workflows:\n  wf:\n    jobs:\n      a: {command: 'true'}\n      b: {command: 'true', depends_on: [a]}\n      c: {command: 'true'}\n    final_job: {command: echo done}\n",
        )
        .unwrap();
        let g = wfs["wf"].graph();
        assert_eq!(g.jobs.len(), 4);
        assert_eq!(
            g.jobs[FINAL_JOB].depends_on,
            vec!["b".to_string(), "c".to_string()]
        );
        assert_eq!(g.jobs["a"].outputs, vec!["b".to_string()]);
    }

    #[test]
    fn priority_is_own_plus_everything_downstream() {
        let wfs = parse("workflows:\n  wf:\n    jobs:\n      parent: {command: x}\n      child: {command: x, depends_on: [parent], priority: 30}\n").unwrap();
        let g = wfs["wf"].graph();
        assert_eq!(g.jobs["child"].priority, 30.0);
        assert_eq!(g.jobs["parent"].priority, 31.0);
    }

    #[test]
    fn errors_name_the_file_the_workflow_and_the_job() {
        let cases = [
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, depends_on: [nope]}\n",
                "test.yaml: workflow wf: job a: depends on unknown job nope",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, colour: red}\n",
                "colour",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, depends_on: [b]}\n      b: {command: x, depends_on: [a]}\n",
                "part of a cycle",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x, max_attempts: 0}\n",
                "job a: max_attempts must be at least 1",
            ),
            (
                "workflows:\n  wf-1:\n    jobs:\n      a: {command: x}\n",
                "workflow name \"wf-1\" is invalid",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a b: {command: x}\n",
                "job name \"a b\" is invalid",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      a: {command: x}\n      a: {command: y}\n",
                "duplicate",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      c: {command: x, condition: true, depends_on: [a]}\n      a: {command: x}\n",
                "condition",
            ),
            ("workflows:\n  wf:\n    jobs: {}\n", "has no jobs"),
            (
                "workflows:\n  wf:\n    schedule: {recurrence: 5X}\n    jobs:\n      a: {command: x}\n",
                "test.yaml: workflow wf: schedule.recurrence `5X`",
            ),
            (
                "workflows:\n  wf:\n    schedule: {cron: '99 * * * *'}\n    jobs:\n      a: {command: x}\n",
                "workflow wf: schedule.cron: minute value 99",
            ),
            (
                "workflows:\n  wf:\n    jobs:\n      final: {command: x}\n    final_job: {command: y}\n",
                "job final already exists",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().0;
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn a_folder_of_files_is_read_whole_and_a_workflow_defined_twice_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "workflows:\n  one:\n    jobs:\n      j: {command: x}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "workflows:\n  two:\n    jobs:\n      j: {command: x}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        let wfs = load_path(dir.path()).unwrap();
        assert_eq!(wfs.keys().collect::<Vec<_>>(), vec!["one", "two"]);
        std::fs::write(
            dir.path().join("c.yaml"),
            "workflows:\n  one:\n    jobs:\n      k: {command: x}\n",
        )
        .unwrap();
        let err = load_path(dir.path()).unwrap_err().0;
        assert!(
            err.contains("c.yaml") && err.contains("workflow one is defined twice"),
            "{err}"
        );
    }

    #[test]
    fn the_example_workflows_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/workflows.yaml");
        let wfs = load_path(&path).unwrap();
        assert!(!wfs.is_empty());
    }
}
