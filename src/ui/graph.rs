//! The job graph as SVG, laid out in Rust: layers by longest path from the roots (parents
//! above children), the order inside each layer by barycentre sweeps to cut crossings, edges as
//! curves from parent to child. Nodes are filled with their status colour; condition jobs are
//! octagons. Linear in jobs and edges (plus a sort per layer), so 10,000 jobs lay out quickly.

use std::collections::HashMap;
use std::fmt::Write;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::workflow::status::Status;

pub struct GraphNode {
    pub name: String,
    pub depends_on: Vec<String>,
    pub status: Status,
    pub condition: bool,
}

const NODE_H: f64 = 34.0;
const LAYER_GAP: f64 = 70.0;
const NODE_GAP: f64 = 22.0;
const SWEEPS: usize = 4;
/// Up to this many edges each is its own `<path id="PARENT/CHILD">`; above, all edges are one
/// path (thousands of elements are what makes a browser slow, not thousands of segments).
const SEPARATE_EDGES: usize = 500;
/// Above this many jobs the graph is `large`: its labels show only once zoomed in far enough to
/// read them (laying out thousands of labels is most of what a browser spends on such a graph,
/// and at the scale that shows them all they are too small to read).
const LARGE: usize = 300;

fn node_width(name: &str) -> f64 {
    (name.len() as f64 * 7.4 + 26.0).clamp(70.0, 280.0)
}

/// Escapes text for SVG and HTML with askama's escaper, the one the templates use.
pub fn escape(s: &str) -> String {
    askama::filters::escape(s, askama::filters::Html)
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// Each node's layer: 0 for roots, else one below its deepest parent (the longest path from a
/// root, in topological order). Unknown parents are ignored; a graph with a cycle (never
/// produced by the parser) is drawn in one layer.
fn layers(nodes: &[GraphNode], index: &HashMap<&str, usize>) -> Vec<usize> {
    let mut g = DiGraph::<(), ()>::with_capacity(nodes.len(), nodes.len());
    let ids: Vec<NodeIndex> = nodes.iter().map(|_| g.add_node(())).collect();
    for (c, node) in nodes.iter().enumerate() {
        for d in &node.depends_on {
            if let Some(&p) = index.get(d.as_str()) {
                g.add_edge(ids[p], ids[c], ());
            }
        }
    }
    let mut layer = vec![0usize; nodes.len()];
    let Ok(order) = toposort(&g, None) else {
        return layer;
    };
    for v in order {
        for c in g.neighbors(v) {
            layer[c.index()] = layer[c.index()].max(layer[v.index()] + 1);
        }
    }
    layer
}

pub struct Layout {
    /// Per node: centre x, top y, width.
    pub boxes: Vec<(f64, f64, f64)>,
    /// An edge that crosses layers passes through one waypoint per layer it crosses (centre x,
    /// top y), laid out like a narrow node so that it goes around the jobs, not behind them.
    pub routes: HashMap<(usize, usize), Vec<(f64, f64)>>,
    pub width: f64,
    pub height: f64,
}

/// The room a waypoint takes in its layer.
const WAYPOINT_W: f64 = 8.0;
/// Waypoints are laid out while there are at most this many per job (a fan-in from every
/// depth could otherwise multiply the graph's size); beyond, long edges cross directly.
const MAX_WAYPOINTS_PER_JOB: usize = 4;

pub fn layout(nodes: &[GraphNode]) -> Layout {
    let n = nodes.len();
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let real_layer = layers(nodes, &index);
    let real_parents: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    // The layered graph: the jobs, then the waypoints of long edges.
    let mut layer = real_layer.clone();
    let mut widths: Vec<f64> = nodes.iter().map(|n| node_width(&n.name)).collect();
    let mut parents = real_parents.clone();
    let mut chains: Vec<((usize, usize), Vec<usize>)> = Vec::new();
    let crossings: usize = real_parents
        .iter()
        .enumerate()
        .flat_map(|(c, ps)| ps.iter().map(move |&p| (p, c)))
        .map(|(p, c)| real_layer[c].saturating_sub(real_layer[p] + 1))
        .sum();
    if crossings <= MAX_WAYPOINTS_PER_JOB * n.max(50) {
        for c in 0..n {
            for k in 0..parents[c].len() {
                let p = parents[c][k];
                if real_layer[c] <= real_layer[p] + 1 {
                    continue;
                }
                let mut prev = p;
                let mut chain = Vec::new();
                for l in real_layer[p] + 1..real_layer[c] {
                    let v = layer.len();
                    layer.push(l);
                    widths.push(WAYPOINT_W);
                    parents.push(vec![prev]);
                    chain.push(v);
                    prev = v;
                }
                parents[c][k] = prev;
                chains.push(((p, c), chain));
            }
        }
    }
    let total = layer.len();
    let depth = layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (v, &l) in layer.iter().enumerate() {
        rows[l].push(v);
    }
    for row in &mut rows {
        row.sort_by(|a, b| {
            let name = |v: usize| nodes.get(v).map_or("", |x| x.name.as_str());
            (*a >= n, name(*a)).cmp(&(*b >= n, name(*b)))
        });
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (c, ps) in parents.iter().enumerate() {
        for &p in ps {
            children[p].push(c);
        }
    }
    // Relative position (0..1) of each node in its layer.
    let mut pos = vec![0.0f64; total];
    let place = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for row in rows {
            for (k, &v) in row.iter().enumerate() {
                pos[v] = (k as f64 + 0.5) / row.len() as f64;
            }
        }
    };
    place(&rows, &mut pos);
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let order: Vec<usize> = if down {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for l in order {
            let keys: HashMap<usize, f64> = rows[l]
                .iter()
                .map(|&v| {
                    let near = if down { &parents[v] } else { &children[v] };
                    let key = if near.is_empty() {
                        pos[v]
                    } else {
                        near.iter().map(|&u| pos[u]).sum::<f64>() / near.len() as f64
                    };
                    (v, key)
                })
                .collect();
            rows[l].sort_by(|a, b| keys[a].total_cmp(&keys[b]));
            let len = rows[l].len() as f64;
            for (k, &v) in rows[l].iter().enumerate() {
                pos[v] = (k as f64 + 0.5) / len;
            }
        }
    }
    let row_width = |row: &Vec<usize>| -> f64 {
        row.iter().map(|&v| widths[v]).sum::<f64>() + NODE_GAP * row.len().saturating_sub(1) as f64
    };
    let width = rows.iter().map(row_width).fold(0.0, f64::max) + 2.0 * NODE_GAP;
    let mut boxes = vec![(0.0, 0.0, 0.0); total];
    for (l, row) in rows.iter().enumerate() {
        let mut x = (width - row_width(row)) / 2.0;
        let y = NODE_GAP + l as f64 * (NODE_H + LAYER_GAP);
        for &v in row {
            boxes[v] = (x + widths[v] / 2.0, y, widths[v]);
            x += widths[v] + NODE_GAP;
        }
    }
    let routes = chains
        .into_iter()
        .map(|(edge, chain)| {
            let points = chain.iter().map(|&v| (boxes[v].0, boxes[v].1)).collect();
            (edge, points)
        })
        .collect();
    boxes.truncate(n);
    Layout {
        boxes,
        routes,
        width: width.max(200.0),
        height: NODE_GAP * 2.0 + depth as f64 * (NODE_H + LAYER_GAP) - LAYER_GAP,
    }
}

/// The graph as an SVG element. Node groups carry `id="job-NAME"`, `data-job` and
/// `data-status`; edges carry `id="PARENT/CHILD"` (small graphs), and the SVG lists every edge
/// in `data-edges` as `PARENT>CHILD;...` for the page's scripts.
pub fn svg(nodes: &[GraphNode]) -> String {
    let l = layout(nodes);
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (c, node) in nodes.iter().enumerate() {
        for d in &node.depends_on {
            if let Some(&p) = index.get(d.as_str()) {
                edges.push((p, c));
            }
        }
    }
    let listed: Vec<String> = edges
        .iter()
        .map(|&(p, c)| format!("{}>{}", escape(&nodes[p].name), escape(&nodes[c].name)))
        .collect();
    let mut out = String::with_capacity(nodes.len() * 300 + edges.len() * 90 + 1024);
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="graph" class="graph{}" viewBox="0 0 {w} {h}" data-width="{w}" data-height="{h}" data-edges="{}" role="img" aria-label="job graph"><g id="viewport"><g class="edges">"#,
        if nodes.len() > LARGE { " large" } else { "" },
        listed.join(";"),
        w = px(l.width),
        h = px(l.height)
    );
    // Curves from the parent's bottom through the waypoints of its layers to the child's top,
    // with an arrowhead drawn in the same path (SVG markers cost a render each).
    let curve = |out: &mut String, p: usize, c: usize| {
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
    };
    if edges.len() <= SEPARATE_EDGES {
        for &(p, c) in &edges {
            let _ = write!(
                out,
                r#"<path class="edge" id="{}/{}" d=""#,
                escape(&nodes[p].name),
                escape(&nodes[c].name)
            );
            curve(&mut out, p, c);
            out.push_str(r#""/>"#);
        }
    } else {
        out.push_str(r#"<path class="edge" d=""#);
        for &(p, c) in &edges {
            curve(&mut out, p, c);
        }
        out.push_str(r#""/>"#);
    }
    out.push_str(r#"</g><g class="nodes">"#);
    for (v, node) in nodes.iter().enumerate() {
        let (cx, y, w) = l.boxes[v];
        let name = escape(&node.name);
        let fill = node.status.colour();
        let _ = write!(
            out,
            r#"<g class="node{}" id="job-{name}" data-job="{name}" data-status="{}">"#,
            if node.condition { " condition" } else { "" },
            node.status.as_str()
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
            r#"<text x="{cx}" y="{}">{name}</text><title>{name}: {}</title></g>"#,
            y + NODE_H as i64 / 2 + 5,
            node.status.as_str()
        );
    }
    out.push_str("</g></g></svg>");
    out
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
            status: Status::NEVER_RUN,
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
        nodes[0].status = Status::FAILURE;
        nodes[1].condition = true;
        let s = svg(&nodes);
        assert!(s.contains(
            r##"id="job-a" data-job="a" data-status="FAILURE"><rect class="shape" fill="#ff3333""##
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
