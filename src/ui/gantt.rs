//! The instance timeline (a Gantt chart the original lacked): one bar per execution, from its
//! start to its end (or now while it runs), coloured by its status, in start order.

use std::fmt::Write;

use super::format::duration;
use super::graph::escape;
use crate::workflow::status::Status;

pub struct Bar {
    pub job: String,
    pub execution: usize,
    pub start: f64,
    pub end: Option<f64>,
    pub status: Status,
    pub href: String,
}

/// At most this many bars are drawn, the earliest first (the chart says how many it left out).
pub const MAX_BARS: usize = 500;
const LABEL_W: f64 = 220.0;
const CHART_W: f64 = 900.0;
const ROW_H: f64 = 18.0;
const AXIS_H: f64 = 22.0;

pub fn svg(mut bars: Vec<Bar>, now: f64) -> String {
    if bars.is_empty() {
        return r#"<p class="muted">No execution yet.</p>"#.to_owned();
    }
    bars.sort_by(|a, b| a.start.total_cmp(&b.start).then_with(|| a.job.cmp(&b.job)));
    let left_out = bars.len().saturating_sub(MAX_BARS);
    bars.truncate(MAX_BARS);
    let t0 = bars.iter().map(|b| b.start).fold(f64::INFINITY, f64::min);
    let t1 = bars
        .iter()
        .map(|b| b.end.unwrap_or(now))
        .fold(t0 + 1.0, f64::max);
    let scale = CHART_W / (t1 - t0);
    let height = AXIS_H + bars.len() as f64 * ROW_H + 4.0;
    let mut out = String::with_capacity(bars.len() * 300 + 1024);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {w} {height}" width="{w}" height="{height}">"#,
        w = (LABEL_W + CHART_W) as i64 + 10,
        height = height as i64
    );
    for k in 0..=4 {
        let x = (LABEL_W + CHART_W * k as f64 / 4.0) as i64;
        let height = height as i64;
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x}" y1="{AXIS_H}" x2="{x}" y2="{height}"/><text class="axis" x="{x}" y="14">+{}</text>"#,
            duration((t1 - t0) * k as f64 / 4.0)
        );
    }
    for (row, b) in bars.iter().enumerate() {
        let y = AXIS_H + row as f64 * ROW_H;
        let end = b.end.unwrap_or(now);
        let x = LABEL_W + (b.start - t0) * scale;
        let w = ((end - b.start) * scale).max(2.0);
        let _ = write!(
            out,
            r#"<a href="{href}"><text class="label" x="{lx}" y="{ty}">{job} #{n}</text><rect fill="{fill}" x="{x}" y="{by}" width="{w}" height="{bh}" rx="2"><title>{job} #{n}: {status}, {dur}</title></rect></a>"#,
            href = escape(&b.href),
            lx = LABEL_W as i64 - 6,
            ty = (y + ROW_H) as i64 - 5,
            job = escape(&b.job),
            n = b.execution,
            fill = b.status.colour(),
            x = x.round() as i64,
            w = w.round() as i64,
            by = y as i64 + 2,
            bh = ROW_H as i64 - 4,
            status = b.status.as_str(),
            dur = duration(end - b.start),
        );
    }
    out.push_str("</svg>");
    if left_out > 0 {
        let _ = write!(
            out,
            r#"<p class="muted">{left_out} later executions are not drawn.</p>"#
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_placed_by_time_and_coloured_by_status() {
        let bars = vec![
            Bar {
                job: "late".into(),
                execution: 0,
                start: 150.0,
                end: Some(200.0),
                status: Status::FAILURE,
                href: "/x".into(),
            },
            Bar {
                job: "early".into(),
                execution: 1,
                start: 100.0,
                end: None,
                status: Status::RUNNING,
                href: "/y".into(),
            },
        ];
        let s = svg(bars, 200.0);
        let early = s.find("early #1").unwrap();
        let late = s.find("late #0").unwrap();
        assert!(early < late, "rows are in start order");
        // The running bar spans the whole chart (until now), the failed one its second half.
        assert!(s.contains(r##"fill="#56b4e9" x="220" y="24" width="900""##));
        assert!(s.contains(r##"fill="#d55e00" x="670" y="42" width="450""##));
    }
}
