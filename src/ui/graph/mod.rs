//! The job graph as SVG, laid out in Rust (`layout`): nodes filled with their status colour,
//! condition jobs as octagons, edges as curves from parent to child through the waypoints of
//! the layers they cross. Linear in jobs and edges, so 10,000 jobs draw quickly.

mod layout;

use std::collections::HashMap;
use std::fmt::Write;

pub use layout::{Layout, layout};

use crate::workflow::status::Look;

pub struct GraphNode {
    pub name: String,
    pub depends_on: Vec<String>,
    pub status: Look,
    pub condition: bool,
}

const NODE_H: f64 = 34.0;
/// Up to this many edges each is its own `<path id="PARENT/CHILD">`; above, all edges are one
/// path (thousands of elements are what makes a browser slow, not thousands of segments).
const SEPARATE_EDGES: usize = 500;
/// Above this many jobs the graph is `large`: its labels show only once zoomed in far enough to
/// read them (laying out thousands of labels is most of what a browser spends on such a graph,
/// and at the scale that shows them all they are too small to read).
const LARGE: usize = 300;

/// Escapes text for SVG and HTML with askama's escaper, the one the templates use.
pub fn escape(s: &str) -> String {
    askama::filters::escape(s, askama::filters::Html)
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// The graph's edges as (parent, child) indexes; unknown parents are left out.
fn edges(nodes: &[GraphNode]) -> Vec<(usize, usize)> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut edges = Vec::new();
    for (c, node) in nodes.iter().enumerate() {
        for d in &node.depends_on {
            if let Some(&p) = index.get(d.as_str()) {
                edges.push((p, c));
            }
        }
    }
    edges
}

/// The graph as an SVG element. Node groups carry `id="job-NAME"`, `data-job` and
/// `data-status`; edges carry `id="PARENT/CHILD"` (small graphs), and the SVG lists every edge
/// in `data-edges` as `PARENT>CHILD;...` for the page's scripts.
pub fn svg(nodes: &[GraphNode]) -> String {
    let l = layout(nodes);
    let edges = edges(nodes);
    let listed: Vec<String> = edges
        .iter()
        .map(|&(p, c)| format!("{}>{}", escape(&nodes[p].name), escape(&nodes[c].name)))
        .collect();
    let mut out = String::with_capacity(nodes.len() * 300 + edges.len() * 90 + 1024);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="graph" class="graph{}" viewBox="0 0 {w} {h}" data-width="{w}" data-height="{h}" data-edges="{}" role="group" aria-label="job graph: Enter on a job opens its details, Space selects it"><g id="viewport"><g class="edges">"#,
        if nodes.len() > LARGE { " large" } else { "" },
        listed.join(";"),
        w = px(l.width),
        h = px(l.height)
    );
    if edges.len() <= SEPARATE_EDGES {
        for &(p, c) in &edges {
            let _ = write!(
                out,
                r#"<path class="edge" id="{}/{}" d=""#,
                escape(&nodes[p].name),
                escape(&nodes[c].name)
            );
            curve(&mut out, &l, p, c);
            out.push_str(r#""/>"#);
        }
    } else {
        out.push_str(r#"<path class="edge" d=""#);
        for &(p, c) in &edges {
            curve(&mut out, &l, p, c);
        }
        out.push_str(r#""/>"#);
    }
    out.push_str(r#"</g><g class="nodes">"#);
    for (v, node) in nodes.iter().enumerate() {
        write_node(&mut out, l.boxes[v], node);
    }
    out.push_str("</g></g></svg>");
    out
}

/// A curve from the parent's bottom through the waypoints of its layers to the child's top,
/// with an arrowhead drawn in the same path (SVG markers cost a render each).
fn curve(out: &mut String, l: &Layout, p: usize, c: usize) {
    let (x1, py, _) = l.boxes[p];
    let (x2, cy, _) = l.boxes[c];
    let mut from = (px(x1), px(py + NODE_H));
    let _ = write!(out, "M{},{}", from.0, from.1);
    let waypoints = l.routes.get(&(p, c)).map_or(&[][..], Vec::as_slice);
    for &(wx, wy) in waypoints.iter().chain([(x2, cy)].iter()) {
        let to = (px(wx), px(wy));
        let mid = (from.1 + to.1) / 2;
        let _ = write!(out, "C{},{mid} {},{mid} {},{}", from.0, to.0, to.0, to.1);
        from = (to.0, to.1 + NODE_H as i64);
        if (wx, wy) != (x2, cy) {
            let _ = write!(out, "L{},{}", from.0, from.1);
        }
    }
    let (x2, y2) = (px(x2), px(cy));
    let _ = write!(
        out,
        "M{},{}L{x2},{y2}L{},{}",
        x2 - 4,
        y2 - 7,
        x2 + 4,
        y2 - 7
    );
}

/// One node: a rectangle (an octagon for a condition) in its status colour, its label and
/// its tooltip. `(cx, y, w)`: centre x, top y, width.
fn write_node(out: &mut String, (cx, y, w): (f64, f64, f64), node: &GraphNode) {
    let name = escape(&node.name);
    let fill = node.status.colour();
    let _ = write!(
        out,
        r#"<g class="node{}" id="job-{name}" data-job="{name}" data-status="{}" tabindex="0" role="button" aria-label="{name}: {}">"#,
        if node.condition { " condition" } else { "" },
        node.status.as_str(),
        node.status.label()
    );
    let (x, cx, y, w) = (px(cx - w / 2.0), px(cx), px(y), px(w));
    if node.condition {
        let c = 10;
        let (x2, y2) = (x + w, y + NODE_H as i64);
        let _ = write!(
            out,
            r#"<polygon class="shape" fill="{fill}" points="{},{y} {},{y} {x2},{} {x2},{} {},{y2} {},{y2} {x},{} {x},{}"/>"#,
            x + c,
            x2 - c,
            y + c,
            y2 - c,
            x2 - c,
            x + c,
            y2 - c,
            y + c
        );
    } else {
        let _ = write!(
            out,
            r#"<rect class="shape" fill="{fill}" x="{x}" y="{y}" width="{w}" height="{NODE_H}" rx="6"/>"#
        );
    }
    let _ = write!(
        out,
        r#"<text x="{cx}" y="{}"><tspan class="icon">{}</tspan> {name}</text><title>{name}: {}</title></g>"#,
        y + NODE_H as i64 / 2 + 5,
        node.status.icon(),
        node.status.label()
    );
}

/// SVG coordinates are whole pixels: integers print several times faster than floats.
fn px(v: f64) -> i64 {
    v.round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, deps: &[&str]) -> GraphNode {
        GraphNode {
            name: name.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            status: Look::NEVER_RUN,
            condition: false,
        }
    }

    #[test]
    fn parents_sit_above_children_and_nothing_overlaps() {
        let nodes = vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
            node("e", &["a", "d"]),
        ];
        let l = layout(&nodes);
        let y = |i: usize| l.boxes[i].1;
        assert!(y(0) < y(1) && y(1) == y(2) && y(2) < y(3) && y(3) < y(4));
        let (b, c) = (l.boxes[1], l.boxes[2]);
        assert!((b.0 - c.0).abs() >= (b.2 + c.2) / 2.0, "b and c overlap");
    }

    #[test]
    fn the_svg_names_every_node_and_edge_and_colours_by_status() {
        let mut nodes = vec![node("a", &[]), node("b<x>", &["a"])];
        nodes[0].status = Look::FAILURE;
        nodes[1].condition = true;
        let s = svg(&nodes);
        assert!(s.contains(
            r##"id="job-a" data-job="a" data-status="FAILURE" tabindex="0" role="button" aria-label="a: failure"><rect class="shape" fill="#d55e00""##
        ));
        assert!(s.contains(r#"id="a/b&#60;x&#62;""#));
        assert!(s.contains(r#"class="node condition" id="job-b&#60;x&#62;""#));
        assert!(s.contains("<polygon"));
        assert!(s.contains(r#"data-edges="a>b&#60;x&#62;""#));
    }

    #[test]
    fn a_large_graph_draws_its_edges_as_one_path_and_still_lists_them() {
        let mut nodes = vec![node("root", &[])];
        for k in 0..600 {
            nodes.push(node(&format!("c{k}"), &["root"]));
        }
        let s = svg(&nodes);
        assert_eq!(s.matches("<path").count(), 1);
        let at = s.find("data-edges=\"").unwrap() + "data-edges=\"".len();
        let listed = &s[at..at + s[at..].find('"').unwrap()];
        assert_eq!(listed.split(';').count(), 600, "every edge listed");
        assert!(s.contains(r#"class="graph large""#), "labels wait for zoom");
    }

    #[test]
    fn a_long_edge_goes_around_the_jobs_between() {
        // a -> b -> c -> d, and a -> d crossing the layers of b and c.
        let nodes = vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &["c", "a"]),
        ];
        let l = layout(&nodes);
        let route = &l.routes[&(0, 3)];
        assert_eq!(route.len(), 2, "one waypoint per layer crossed");
        for (k, &(x, y)) in route.iter().enumerate() {
            let job = l.boxes[k + 1];
            assert_eq!(y, job.1, "in the layer of {}", nodes[k + 1].name);
            assert!(
                (x - job.0).abs() >= job.2 / 2.0,
                "the waypoint is beside {}, not behind it",
                nodes[k + 1].name
            );
        }
    }

    #[test]
    fn a_fan_out_keeps_its_children_in_one_wide_layer() {
        let mut nodes = vec![node("root", &[])];
        for k in 0..50 {
            nodes.push(node(&format!("c{k:02}"), &["root"]));
        }
        nodes.push(node("join", &[]));
        nodes.last_mut().unwrap().depends_on = (0..50).map(|k| format!("c{k:02}")).collect();
        let l = layout(&nodes);
        assert_eq!(l.boxes[1].1, l.boxes[50].1);
        assert!(l.boxes[51].1 > l.boxes[1].1);
        assert!(l.width > 50.0 * 70.0);
    }
}

#[cfg(test)]
mod palette_tests {
    use crate::workflow::status::Look;

    #[test]
    fn the_pages_script_knows_every_look_as_the_server_draws_it() {
        let js = include_str!("../../../static/pinball.js");
        for l in Look::ALL {
            let entry = format!(
                "{}: [\"{}\", \"{}\", \"{}\"]",
                l.as_str(),
                l.colour(),
                l.icon(),
                l.label()
            );
            assert!(js.contains(&entry), "pinball.js lacks {entry}");
        }
    }
}
