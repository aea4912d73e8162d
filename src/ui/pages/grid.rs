//! The runs grid on a workflow's page (like Airflow's grid view): its recent instances (columns,
//! oldest left) × its jobs (rows), each cell the job's last run in that instance, coloured and
//! marked by how it looks, with its duration, opening that execution; and a chart of one job's
//! durations over those runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::execution_href;
use crate::ops::read::{Instance, InstanceRow};
use crate::token::name::{InstanceId, JobName, WorkflowName};
use crate::ui::graph::escape;
use crate::workflow::links;
use crate::workflow::status::{Look, job_look};

/// Instances the grid shows unless asked, and at most.
pub const DEFAULT_RUNS: usize = 25;
pub const MAX_RUNS: usize = 100;

pub struct Column {
    pub instance: String,
    pub href: String,
    pub look: Look,
}

pub struct Cell {
    pub look: Look,
    /// `2m`, `45s`: the last run's duration (so far, while it runs).
    pub text: String,
    pub href: String,
    /// The execution it opens (none: it never ran there).
    pub execution: Option<usize>,
    pub seconds: Option<f64>,
}

pub struct Row {
    pub job: String,
    pub cells: Vec<Option<Cell>>,
}

pub struct Grid {
    pub columns: Vec<Column>,
    pub rows: Vec<Row>,
    /// The chart of one job's durations (SVG), and its job.
    pub chart: String,
    pub chart_job: String,
}

impl Grid {
    /// The cells as compact JSON for the page's script, which draws the rows as they scroll
    /// into view (a browser lays out 25,000 table cells for seconds): `{"workflow", "looks":
    /// [[name, fill, icon, words]], "columns": [instance], "rows": [[job, [[look, text,
    /// execution|-1] | null]]]}`. Safe inside `<script type="application/json">`.
    pub fn json(&self, w: &WorkflowName) -> String {
        let index = |l: Look| Look::ALL.iter().position(|x| *x == l).unwrap_or(0);
        let value = serde_json::json!({
            "workflow": w,
            "looks": Look::ALL.iter().map(|l| [l.as_str(), l.colour(), l.icon(), l.label()]).collect::<Vec<_>>(),
            "columns": self.columns.iter().map(|c| &c.instance).collect::<Vec<_>>(),
            "rows": self.rows.iter().map(|r| serde_json::json!([
                r.job,
                r.cells.iter().map(|c| c.as_ref().map(|c| serde_json::json!([
                    index(c.look),
                    c.text,
                    c.execution.map_or(-1, |n| n as i64),
                ]))).collect::<Vec<_>>(),
            ])).collect::<Vec<_>>(),
        });
        value.to_string().replace("</", "<\\/")
    }
}

/// `45s`, `12m`, `3h`, `2d`: short enough for a cell.
fn short(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn cell(
    w: &WorkflowName,
    i: &InstanceId,
    jt: &crate::workflow::instance::JobToken,
    now: f64,
) -> Cell {
    let look = job_look(jt);
    // Its last run in this instance (a retried instance carries copies of older ones).
    let last = jt
        .job
        .history
        .iter()
        .enumerate()
        .rev()
        .find(|(_, r)| &r.instance == i);
    match last {
        Some((n, r)) => {
            let secs = r.end_time.unwrap_or(now) - r.start_time;
            Cell {
                look,
                text: short(secs),
                href: execution_href(w, i, &jt.job.name, n),
                execution: Some(n),
                seconds: Some(secs),
            }
        }
        None => Cell {
            look,
            text: String::new(),
            href: links::job_href(w, i, &jt.job.name),
            execution: None,
            seconds: None,
        },
    }
}

pub fn grid(
    w: &WorkflowName,
    recent: &[(InstanceRow, Instance)],
    chart: Option<&JobName>,
    now: f64,
) -> Grid {
    let jobs: BTreeSet<&JobName> = recent
        .iter()
        .flat_map(|(_, inst)| inst.jobs.iter().map(|jt| &jt.job.name))
        .collect();
    let index: BTreeMap<&JobName, usize> = jobs.iter().enumerate().map(|(k, j)| (*j, k)).collect();
    let mut cells: Vec<Vec<Option<Cell>>> = (0..jobs.len())
        .map(|_| (0..recent.len()).map(|_| None).collect())
        .collect();
    for (c, (row, inst)) in recent.iter().enumerate() {
        for jt in &inst.jobs {
            cells[index[&jt.job.name]][c] = Some(cell(w, &row.instance, jt, now));
        }
    }
    let columns = recent
        .iter()
        .map(|(row, _)| Column {
            instance: row.instance.to_string(),
            href: links::jobs_href(w, &row.instance),
            look: Look::from(row.status),
        })
        .collect::<Vec<_>>();
    let rows: Vec<Row> = jobs
        .iter()
        .zip(cells)
        .map(|(j, cells)| Row {
            job: j.to_string(),
            cells,
        })
        .collect();
    // The chart: the job asked for, else the one with the longest last run.
    let charted = chart
        .and_then(|j| rows.iter().position(|r| r.job == j.as_str()))
        .or_else(|| {
            rows.iter()
                .enumerate()
                .max_by(|a, b| {
                    let last = |r: &Row| {
                        r.cells
                            .iter()
                            .rev()
                            .flatten()
                            .find_map(|c| c.seconds)
                            .unwrap_or(0.0)
                    };
                    last(a.1).total_cmp(&last(b.1))
                })
                .map(|(k, _)| k)
        });
    let (chart, chart_job) = match charted {
        Some(k) => (durations_svg(&rows[k], &columns), rows[k].job.clone()),
        None => (String::new(), String::new()),
    };
    Grid {
        columns,
        rows,
        chart,
        chart_job,
    }
}

/// One bar per run, its height the duration, its colour and mark how it ended; the tallest
/// bar's duration labels the axis.
fn durations_svg(row: &Row, columns: &[Column]) -> String {
    const H: f64 = 120.0;
    const BAR: f64 = 22.0;
    let max = row
        .cells
        .iter()
        .flatten()
        .filter_map(|c| c.seconds)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let width = 60.0 + BAR * columns.len() as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="durations-chart" viewBox="0 0 {width} {}" width="{width}" height="{}" role="group" aria-label="durations of {} over the last {} runs, longest {}">"#,
        H + 24.0,
        H + 24.0,
        escape(&row.job),
        columns.len(),
        crate::clock::duration(max)
    );
    let _ = write!(
        out,
        r##"<text x="0" y="12" class="axis">{}</text><line x1="56" y1="{H}" x2="{width}" y2="{H}" stroke="#8c959f"/>"##,
        short(max)
    );
    for (k, c) in row.cells.iter().enumerate() {
        let Some(c) = c else { continue };
        let Some(secs) = c.seconds else { continue };
        let h = (secs / max * (H - 16.0)).max(2.0);
        let x = 60.0 + BAR * k as f64;
        let _ = write!(
            out,
            r#"<a href="{}"><rect class="bar" x="{x}" y="{}" width="{}" height="{h}" fill="{}"><title>{}: {} ({})</title></rect><text x="{}" y="{}" class="mark">{}</text></a>"#,
            escape(&c.href),
            H - h,
            BAR - 4.0,
            c.look.colour(),
            escape(&columns[k].instance),
            crate::clock::duration(secs),
            c.look.label(),
            x + (BAR - 4.0) / 2.0,
            H + 16.0,
            c.look.icon()
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_short() {
        assert_eq!(short(4.2), "4s");
        assert_eq!(short(125.0), "2m");
        assert_eq!(short(7200.0), "2h");
        assert_eq!(short(200_000.0), "2d");
    }
}
