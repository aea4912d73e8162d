//! Laying the job graph out: layers by longest path from the roots (parents above children),
//! waypoints for edges that cross layers (so they go around the jobs between, not behind
//! them), the order inside each layer by barycentre sweeps to cut crossings, and positions.

use std::collections::HashMap;

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use super::{GraphNode, NODE_H};

const LAYER_GAP: f64 = 70.0;
const NODE_GAP: f64 = 22.0;
const SWEEPS: usize = 4;

fn node_width(name: &str) -> f64 {
    (name.len() as f64 * 7.4 + 26.0).clamp(70.0, 280.0)
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

/// The layered graph: the jobs (the first `n` vertices), then the waypoints of long edges.
struct Layered {
    layer: Vec<usize>,
    widths: Vec<f64>,
    parents: Vec<Vec<usize>>,
    /// Each long edge (parent, child) with its waypoints, top to bottom.
    chains: Vec<((usize, usize), Vec<usize>)>,
}

/// Inserts a waypoint into every layer a long edge crosses, unless there would be too many.
fn layered(nodes: &[GraphNode], index: &HashMap<&str, usize>) -> Layered {
    let n = nodes.len();
    let real_layer = layers(nodes, index);
    let real_parents: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            n.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut g = Layered {
        layer: real_layer.clone(),
        widths: nodes.iter().map(|n| node_width(&n.name)).collect(),
        parents: real_parents.clone(),
        chains: Vec::new(),
    };
    let crossings: usize = real_parents
        .iter()
        .enumerate()
        .flat_map(|(c, ps)| ps.iter().map(move |&p| (p, c)))
        .map(|(p, c)| real_layer[c].saturating_sub(real_layer[p] + 1))
        .sum();
    if crossings > MAX_WAYPOINTS_PER_JOB * n.max(50) {
        return g;
    }
    for c in 0..n {
        for k in 0..g.parents[c].len() {
            let p = g.parents[c][k];
            if real_layer[c] <= real_layer[p] + 1 {
                continue;
            }
            let mut prev = p;
            let mut chain = Vec::new();
            for l in real_layer[p] + 1..real_layer[c] {
                let v = g.layer.len();
                g.layer.push(l);
                g.widths.push(WAYPOINT_W);
                g.parents.push(vec![prev]);
                chain.push(v);
                prev = v;
            }
            g.parents[c][k] = prev;
            g.chains.push(((p, c), chain));
        }
    }
    g
}

/// The vertices of each layer, ordered by barycentre sweeps (down from the parents, up from
/// the children) from a start in name order, waypoints last.
fn ordered_rows(g: &Layered, nodes: &[GraphNode]) -> Vec<Vec<usize>> {
    let (n, total) = (nodes.len(), g.layer.len());
    let depth = g.layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (v, &l) in g.layer.iter().enumerate() {
        rows[l].push(v);
    }
    for row in &mut rows {
        row.sort_by(|a, b| {
            let name = |v: usize| nodes.get(v).map_or("", |x| x.name.as_str());
            (*a >= n, name(*a)).cmp(&(*b >= n, name(*b)))
        });
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (c, ps) in g.parents.iter().enumerate() {
        for &p in ps {
            children[p].push(c);
        }
    }
    // Relative position (0..1) of each vertex in its layer.
    let mut pos = vec![0.0f64; total];
    for row in &rows {
        for (k, &v) in row.iter().enumerate() {
            pos[v] = (k as f64 + 0.5) / row.len() as f64;
        }
    }
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
                    let near = if down { &g.parents[v] } else { &children[v] };
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
    rows
}

pub fn layout(nodes: &[GraphNode]) -> Layout {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let g = layered(nodes, &index);
    let rows = ordered_rows(&g, nodes);
    let widths = &g.widths;
    let row_width = |row: &Vec<usize>| -> f64 {
        row.iter().map(|&v| widths[v]).sum::<f64>() + NODE_GAP * row.len().saturating_sub(1) as f64
    };
    let width = rows.iter().map(row_width).fold(0.0, f64::max) + 2.0 * NODE_GAP;
    let mut boxes = vec![(0.0, 0.0, 0.0); g.layer.len()];
    for (l, row) in rows.iter().enumerate() {
        let mut x = (width - row_width(row)) / 2.0;
        let y = NODE_GAP + l as f64 * (NODE_H + LAYER_GAP);
        for &v in row {
            boxes[v] = (x + widths[v] / 2.0, y, widths[v]);
            x += widths[v] + NODE_GAP;
        }
    }
    let routes = g
        .chains
        .into_iter()
        .map(|(edge, chain)| {
            let points = chain.iter().map(|&v| (boxes[v].0, boxes[v].1)).collect();
            (edge, points)
        })
        .collect();
    boxes.truncate(nodes.len());
    Layout {
        boxes,
        routes,
        width: width.max(200.0),
        height: NODE_GAP * 2.0 + rows.len() as f64 * (NODE_H + LAYER_GAP) - LAYER_GAP,
    }
}
