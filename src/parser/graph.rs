//! A workflow's job graph: every job (the final job included) with its upstream and
//! downstream jobs and its priority score, built on petgraph, which also finds cycles.

use std::collections::BTreeMap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;

use super::def::{JobDef, WorkflowDef};
use crate::token::name::JobName;

/// The resolved graph of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub jobs: BTreeMap<JobName, GraphJob>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphJob {
    pub def: JobDef,
    /// Upstream job names (empty for a top-level job).
    pub depends_on: Vec<JobName>,
    pub outputs: Vec<JobName>,
    /// Own priority (default 1) plus that of everything downstream; 0 for conditions.
    pub priority: f64,
}

/// Jobs as nodes, an edge from each job to every job that depends on it. Dependencies on jobs
/// that are not there are left out (the parser rejects them; a definition edited in the master
/// must not crash anyone).
fn dag(jobs: &BTreeMap<JobName, JobDef>) -> (DiGraph<&JobName, ()>, BTreeMap<&JobName, NodeIndex>) {
    let mut g = DiGraph::with_capacity(jobs.len(), jobs.len());
    let index: BTreeMap<&JobName, NodeIndex> = jobs.keys().map(|j| (j, g.add_node(j))).collect();
    for (job, def) in jobs {
        for dep in &def.depends_on {
            if let Some(&from) = index.get(dep) {
                g.add_edge(from, index[job], ());
            }
        }
    }
    (g, index)
}

/// The jobs of one dependency cycle, in name order, if there is a cycle.
pub(super) fn find_cycle(jobs: &BTreeMap<JobName, JobDef>) -> Option<Vec<JobName>> {
    let (g, _) = dag(jobs);
    tarjan_scc(&g)
        .into_iter()
        .find(|scc| scc.len() > 1 || g.contains_edge(scc[0], scc[0]))
        .map(|scc| {
            let mut names: Vec<JobName> = scc.iter().map(|n| g[*n].clone()).collect();
            names.sort();
            names
        })
}

impl WorkflowDef {
    /// Every job with its inputs, outputs and priority; `final_job` depends on every leaf.
    pub fn graph(&self) -> Graph {
        let mut all = self.jobs.clone();
        if let Some(f) = &self.final_job {
            let leaves = self
                .jobs
                .keys()
                .filter(|j| !self.jobs.values().any(|other| other.depends_on.contains(j)))
                .cloned()
                .collect();
            all.insert(
                JobName::final_job(),
                JobDef {
                    depends_on: leaves,
                    ..f.clone()
                },
            );
        }
        let (g, index) = dag(&all);
        let jobs = all
            .iter()
            .map(|(name, def)| {
                let node = index[name];
                let outputs = g.neighbors(node).map(|n| g[n].clone()).collect::<Vec<_>>();
                let priority = if def.condition {
                    0.0
                } else {
                    downstream_score(&g, node, &all)
                };
                let depends_on = def
                    .depends_on
                    .iter()
                    .filter(|d| index.contains_key(d))
                    .cloned()
                    .collect();
                let mut outputs = outputs;
                outputs.sort();
                let job = GraphJob {
                    def: def.clone(),
                    depends_on,
                    outputs,
                    priority,
                };
                (name.clone(), job)
            })
            .collect();
        Graph { jobs }
    }
}

/// The job's own priority plus every transitive dependent's, each counted once.
fn downstream_score(
    g: &DiGraph<&JobName, ()>,
    from: NodeIndex,
    jobs: &BTreeMap<JobName, JobDef>,
) -> f64 {
    let mut dfs = Dfs::new(g, from);
    let mut score = 0.0;
    while let Some(n) = dfs.next(g) {
        score += jobs[g[n]].priority.unwrap_or(1.0);
    }
    score
}
