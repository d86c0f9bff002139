//! The map's layout: a layered drawing of the dependency graph on a grid (after Sugiyama).
//!
//! 1. Cycles are broken by distance from the entry applications: an edge that does not lead
//!    further from them (in a fixed order) is drawn reversed, so the entries stay in the first
//!    column and the same input gives the same drawing.
//! 2. Each application's column is its longest path from an entry (dependencies to the right).
//! 3. An edge spanning several columns gets a waypoint in every column between, which takes a
//!    row there like a box, so no edge ever passes through a box.
//! 4. Rows within a column are ordered by barycentre sweeps, keeping the order with the fewest
//!    crossings.
//! 5. Boxes sit on grid cells; an edge leaves its box on the right, crosses the gaps between
//!    columns and its waypoints' empty cells, and enters its target on the left.
//!
//! Boxes never overlap (one per cell) and edges never cross a box: [`check`] proves both on
//! the layout's own geometry.

use std::collections::HashMap;

use petgraph::graph::{DiGraph, NodeIndex};

/// A box's width and height, and the gaps between columns and rows, in SVG units.
pub const BOX_W: f64 = 200.0;
pub const BOX_H: f64 = 64.0;
pub const GAP_X: f64 = 96.0;
pub const GAP_Y: f64 = 28.0;
/// The slot of an edge's waypoint in a column, and the gap after it.
pub const WAYPOINT_H: f64 = 8.0;
pub const WAYPOINT_GAP: f64 = 6.0;
/// Space around the drawing.
pub const MARGIN: f64 = 40.0;
/// Barycentre sweeps made (each down and up).
const SWEEPS: usize = 12;

/// An edge of the acyclic graph: its ends, the input edge it stands for, and whether it is that
/// edge reversed (to break a cycle).
type Acyclic = ((usize, usize), (usize, usize), bool);

/// Most waypoints a map may need (each a slot on the drawing and a few points of an edge).
pub const WAYPOINTS_MAX: usize = 50_000;

/// A map that would need more than [`WAYPOINTS_MAX`] waypoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the map is too large to draw readably: its dependencies would cross {waypoints} columns of other applications (at most {WAYPOINTS_MAX})"
)]
pub struct TooLarge {
    pub waypoints: usize,
}

/// An axis-aligned rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// One drawn edge: `from` depends on `to` (indices of the input's nodes), through `points`
/// (from `from`'s box to `to`'s). `reversed` marks an edge of a cycle, drawn against the flow.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePath {
    pub from: usize,
    pub to: usize,
    pub points: Vec<(f64, f64)>,
    pub reversed: bool,
}

/// Where everything is.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One box per input node, in input order.
    pub boxes: Vec<Rect>,
    /// Each input node's grid cell (column, row).
    pub cells: Vec<(usize, usize)>,
    pub edges: Vec<EdgePath>,
    /// Real boxes per column.
    pub columns: Vec<usize>,
    pub width: f64,
    pub height: f64,
}

/// Lays out `n` nodes and `edges` (`(from, to)`: from depends on to). `order` ranks the nodes
/// for every tie (their names, say); `roots` are the entry applications, drawn first.
pub fn layout(
    n: usize,
    edges: &[(usize, usize)],
    roots: &[usize],
    order: &[usize],
) -> Result<Layout, TooLarge> {
    // Rank of each node in the caller's order, for deterministic ties.
    let mut rank = vec![0usize; n];
    for (r, &v) in order.iter().enumerate() {
        if v < n {
            rank[v] = r;
        }
    }
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(n, edges.len());
    let ix: Vec<NodeIndex> = (0..n).map(|i| g.add_node(i)).collect();
    let mut unique: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a < n && b < n)
        .collect();
    unique.sort_unstable_by_key(|&(a, b)| (rank[a], rank[b]));
    unique.dedup();
    // Add edges in reverse rank order: petgraph walks a node's edges newest first, so the
    // search visits dependencies in rank order.
    for &(a, b) in unique.iter().rev() {
        if a != b {
            g.add_edge(ix[a], ix[b], ());
        }
    }
    // 1. Each node's distance from the entries (breadth first, in rank order; a part of the
    //    graph no entry reaches starts from its best-ranked node). An edge that does not lead
    //    further from the entries, in the order (distance, rank), is reversed: what remains is
    //    acyclic, and the entries start the drawing (one that depends on another entry sits
    //    right of it).
    let mut starts: Vec<usize> = roots.iter().copied().filter(|&r| r < n).collect();
    starts.sort_unstable_by_key(|&r| rank[r]);
    let mut rest: Vec<usize> = (0..n).collect();
    rest.sort_unstable_by_key(|&v| rank[v]);
    let mut distance = vec![usize::MAX; n];
    let mut discovered: Vec<usize> = Vec::with_capacity(n);
    let mut queue = std::collections::VecDeque::new();
    let mut seed = |start: &[usize], distance: &mut Vec<usize>, discovered: &mut Vec<usize>| {
        for &s in start {
            if distance[s] == usize::MAX {
                distance[s] = 0;
                discovered.push(s);
                queue.push_back(s);
            }
        }
        while let Some(v) = queue.pop_front() {
            let mut next: Vec<usize> = g.neighbors(ix[v]).map(|w| w.index()).collect();
            next.sort_unstable_by_key(|&w| rank[w]);
            for w in next {
                if distance[w] == usize::MAX {
                    distance[w] = distance[v] + 1;
                    discovered.push(w);
                    queue.push_back(w);
                }
            }
        }
    };
    seed(&starts, &mut distance, &mut discovered);
    for v in rest {
        seed(&[v], &mut distance, &mut discovered);
    }
    let forward = |a: usize, b: usize| (distance[a], rank[a]) < (distance[b], rank[b]);
    // The acyclic edges, each with the original it stands for.
    let dag: Vec<Acyclic> = unique
        .iter()
        .filter(|(a, b)| a != b)
        .map(|&(a, b)| {
            if forward(a, b) {
                ((a, b), (a, b), false)
            } else {
                ((b, a), (a, b), true)
            }
        })
        .collect();

    // 2. Longest path from the sources, over a topological order.
    let mut dag_graph: DiGraph<usize, ()> = DiGraph::with_capacity(n, dag.len());
    let dix: Vec<NodeIndex> = (0..n).map(|i| dag_graph.add_node(i)).collect();
    for ((a, b), _, _) in &dag {
        dag_graph.update_edge(dix[*a], dix[*b], ());
    }
    let topo = petgraph::algo::toposort(&dag_graph, None).unwrap_or_else(|_| dix.clone());
    let mut layer = vec![0usize; n];
    for v in topo {
        let l = layer[v.index()];
        for w in dag_graph.neighbors(v) {
            layer[w.index()] = layer[w.index()].max(l + 1);
        }
    }

    // A map whose long edges would need more waypoints than it is worth drawing is refused
    // before any is made (one node depending on a chain of 2,000 would need two million).
    let waypoints: usize = dag
        .iter()
        .map(|((a, b), _, _)| layer[*b].saturating_sub(layer[*a] + 1))
        .sum();
    if waypoints > WAYPOINTS_MAX {
        return Err(TooLarge { waypoints });
    }

    // 3. Waypoints: every edge becomes a chain of one-column steps.
    // Vertices: 0..n the nodes, then waypoints; `vlayer` is each vertex's column.
    let mut vlayer = layer.clone();
    let mut chains: Vec<(Vec<usize>, (usize, usize), bool)> = Vec::with_capacity(dag.len());
    for &((a, b), original, reversed) in &dag {
        let mut chain = vec![a];
        for l in (layer[a] + 1)..layer[b] {
            vlayer.push(l);
            chain.push(vlayer.len() - 1);
        }
        chain.push(b);
        chains.push((chain, original, reversed));
    }
    let vertices = vlayer.len();
    let mut up: Vec<Vec<usize>> = vec![Vec::new(); vertices];
    let mut down: Vec<Vec<usize>> = vec![Vec::new(); vertices];
    for (chain, _, _) in &chains {
        for w in chain.windows(2) {
            down[w[0]].push(w[1]);
            up[w[1]].push(w[0]);
        }
    }

    // 4. Rows: first in discovery order (nodes) and creation order (waypoints), then sweeps.
    let columns_n = vlayer.iter().max().map_or(0, |m| m + 1);
    let mut first_seen = vec![usize::MAX; vertices];
    for (i, &v) in discovered.iter().enumerate() {
        first_seen[v] = i;
    }
    for (v, seen) in first_seen.iter_mut().enumerate().skip(n) {
        *seen = n + v;
    }
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); columns_n];
    let mut by_seen: Vec<usize> = (0..vertices).collect();
    by_seen.sort_unstable_by_key(|&v| first_seen[v]);
    for v in by_seen {
        rows[vlayer[v]].push(v);
    }
    let mut pos = vec![0.0f64; vertices];
    let place = |rows: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for col in rows {
            for (i, &v) in col.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    place(&rows, &mut pos);
    let mut best = rows.clone();
    let mut best_crossings = crossings(&rows, &down, &pos);
    for sweep in 0..SWEEPS * 2 {
        let downward = sweep % 2 == 0;
        let order: Vec<usize> = if downward {
            (1..columns_n).collect()
        } else {
            (0..columns_n.saturating_sub(1)).rev().collect()
        };
        for c in order {
            let neighbours = if downward { &up } else { &down };
            let mut keyed: Vec<(f64, f64, usize)> = rows[c]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let bary = if ns.is_empty() {
                        pos[v]
                    } else {
                        ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                    };
                    (bary, pos[v], v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            rows[c] = keyed.into_iter().map(|(_, _, v)| v).collect();
            for (i, &v) in rows[c].iter().enumerate() {
                pos[v] = i as f64;
            }
        }
        let now = crossings(&rows, &down, &pos);
        if now < best_crossings {
            best_crossings = now;
            best = rows.clone();
        }
    }
    let rows = best;
    place(&rows, &mut pos);

    // 5. Geometry: each column stacks its boxes, and its waypoints in thin slots (an edge
    // passing through needs no more room than a line).
    let column_x = |c: usize| MARGIN + c as f64 * (BOX_W + GAP_X);
    let mut vcell = vec![(0usize, 0usize); vertices];
    let mut vrect = vec![
        Rect {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: 0.0
        };
        vertices
    ];
    let mut tallest: f64 = 0.0;
    for (c, col) in rows.iter().enumerate() {
        let mut y = MARGIN;
        for (r, &v) in col.iter().enumerate() {
            vcell[v] = (c, r);
            let h = if v < n { BOX_H } else { WAYPOINT_H };
            vrect[v] = Rect {
                x: column_x(c),
                y,
                w: BOX_W,
                h,
            };
            y += h + if v < n { GAP_Y } else { WAYPOINT_GAP };
        }
        tallest = tallest.max(y);
    }
    let cell = |v: usize| vrect[v];
    let boxes: Vec<Rect> = (0..n).map(cell).collect();
    // Where each edge leaves and enters its box: spread over the side, in row order.
    let mut outs: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    let mut ins: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for (i, (chain, _, _)) in chains.iter().enumerate() {
        let (first, second) = (chain[0], chain[1]);
        let (last, before) = (chain[chain.len() - 1], chain[chain.len() - 2]);
        outs.entry(first).or_default().push((vcell[second].1, i));
        ins.entry(last).or_default().push((vcell[before].1, i));
    }
    let slot = |list: &mut Vec<(usize, usize)>, edge: usize| {
        list.sort_unstable();
        let k = list.iter().position(|&(_, e)| e == edge).unwrap_or(0);
        (k + 1) as f64 / (list.len() + 1) as f64
    };
    let mut edges_out = Vec::with_capacity(chains.len() + n);
    for (i, (chain, (from, to), reversed)) in chains.iter().enumerate() {
        let a = cell(chain[0]);
        let b_v = chain[chain.len() - 1];
        let b = cell(b_v);
        let fa = outs.get_mut(&chain[0]).map_or(0.5, |l| slot(l, i));
        let fb = ins.get_mut(&b_v).map_or(0.5, |l| slot(l, i));
        let mut points = vec![(a.x + a.w, a.y + a.h * fa)];
        for &w in &chain[1..chain.len() - 1] {
            let r = cell(w);
            let y = r.y + r.h / 2.0;
            points.push((r.x, y));
            points.push((r.x + r.w, y));
        }
        points.push((b.x, b.y + b.h * fb));
        if *reversed {
            points.reverse();
        }
        edges_out.push(EdgePath {
            from: *from,
            to: *to,
            points,
            reversed: *reversed,
        });
    }
    // A node that depends on itself: a loop in the gap to its right.
    for &(a, b) in &unique {
        if a == b {
            let r = boxes[a];
            let out = r.x + r.w + GAP_X * 0.35;
            edges_out.push(EdgePath {
                from: a,
                to: a,
                points: vec![
                    (r.x + r.w, r.y + r.h * 0.2),
                    (out, r.y + r.h * 0.2),
                    (out, r.y + r.h * 0.8),
                    (r.x + r.w, r.y + r.h * 0.8),
                ],
                reversed: true,
            });
        }
    }
    let mut columns = vec![0usize; columns_n];
    for v in 0..n {
        columns[vcell[v].0] += 1;
    }
    let width = MARGIN * 2.0
        + columns_n as f64 * BOX_W
        + columns_n.saturating_sub(1) as f64 * GAP_X
        + GAP_X * 0.5;
    let height = tallest - GAP_Y.min(tallest - MARGIN) + MARGIN;
    Ok(Layout {
        boxes,
        cells: vcell[..n].to_vec(),
        edges: edges_out,
        columns,
        width: width.max(MARGIN * 2.0),
        height: height.max(MARGIN * 2.0),
    })
}

/// Crossings between each pair of neighbouring columns (two edges cross when their ends are
/// in opposite orders).
fn crossings(rows: &[Vec<usize>], down: &[Vec<usize>], pos: &[f64]) -> usize {
    let mut total = 0;
    for col in rows {
        let mut pairs: Vec<(f64, f64)> = col
            .iter()
            .flat_map(|&v| down[v].iter().map(move |&w| (pos[v], pos[w])))
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut ends: Vec<f64> = pairs.into_iter().map(|(_, b)| b).collect();
        total += inversions(&mut ends);
    }
    total
}

/// Pairs `i < j` with `v[i] > v[j]`, by merge sort (`v` ends sorted).
fn inversions(v: &mut [f64]) -> usize {
    if v.len() < 2 {
        return 0;
    }
    let mid = v.len() / 2;
    let mut count = inversions(&mut v[..mid]) + inversions(&mut v[mid..]);
    let mut merged = Vec::with_capacity(v.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < v.len() {
        if v[j] < v[i] {
            count += mid - i;
            merged.push(v[j]);
            j += 1;
        } else {
            merged.push(v[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

/// Why a layout is not readable: two boxes overlapping, or an edge through a box other than
/// its own two. `None` when neither happens.
pub fn check(l: &Layout) -> Option<String> {
    let mut order: Vec<usize> = (0..l.boxes.len()).collect();
    order.sort_by(|&a, &b| {
        l.boxes[a]
            .x
            .total_cmp(&l.boxes[b].x)
            .then(l.boxes[a].y.total_cmp(&l.boxes[b].y))
    });
    for w in order.windows(2) {
        let (a, b) = (l.boxes[w[0]], l.boxes[w[1]]);
        if a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h {
            return Some(format!("boxes {} and {} overlap", w[0], w[1]));
        }
    }
    // Boxes by column, so each segment is checked against the boxes it could reach.
    let mut by_x: Vec<usize> = (0..l.boxes.len()).collect();
    by_x.sort_by(|&a, &b| l.boxes[a].x.total_cmp(&l.boxes[b].x));
    for e in &l.edges {
        for s in e.points.windows(2) {
            let (x0, x1) = (s[0].0.min(s[1].0), s[0].0.max(s[1].0));
            let from = by_x.partition_point(|&i| l.boxes[i].x + l.boxes[i].w < x0);
            for &i in &by_x[from..] {
                let r = l.boxes[i];
                if r.x > x1 {
                    break;
                }
                // Inside strictly: touching a box's side (where an edge starts or ends) is not
                // crossing it.
                let inner = Rect {
                    x: r.x + 0.5,
                    y: r.y + 0.5,
                    w: r.w - 1.0,
                    h: r.h - 1.0,
                };
                if segment_hits(s[0], s[1], inner) {
                    return Some(format!("the edge {} -> {} crosses box {i}", e.from, e.to));
                }
            }
        }
    }
    None
}

/// Whether the segment p-q meets the rectangle (Liang-Barsky clipping).
fn segment_hits(p: (f64, f64), q: (f64, f64), r: Rect) -> bool {
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (pk, qk) in [
        (-dx, p.0 - r.x),
        (dx, r.x + r.w - p.0),
        (-dy, p.1 - r.y),
        (dy, r.y + r.h - p.1),
    ] {
        if pk == 0.0 {
            if qk < 0.0 {
                return false;
            }
        } else {
            let t = qk / pk;
            if pk < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random graph of `n` nodes (a fixed linear congruential sequence): each node
    /// depends on up to three later ones, and every tenth on an earlier one (cycles).
    pub(crate) fn tangled(n: usize) -> Vec<(usize, usize)> {
        let mut seed: u64 = 42;
        let mut next = |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m.max(1)
        };
        let mut edges = Vec::new();
        for a in 0..n {
            for _ in 0..(1 + next(3)) {
                if a + 1 < n {
                    edges.push((a, a + 1 + next((n - a - 1).min(20))));
                }
            }
            if a % 10 == 9 {
                edges.push((a, next(a)));
            }
        }
        edges.push((3, 3));
        edges
    }

    #[test]
    fn a_chain_goes_left_to_right() {
        let l = layout(3, &[(0, 1), (1, 2)], &[0], &[0, 1, 2]).expect("layout");
        assert_eq!(l.cells, vec![(0, 0), (1, 0), (2, 0)]);
        assert_eq!(l.columns, vec![1, 1, 1]);
        assert_eq!(check(&l), None);
        assert!(l.edges.iter().all(|e| !e.reversed));
    }

    #[test]
    fn long_edges_go_around_boxes_and_cycles_are_drawn_back() {
        // 0 -> 1 -> 2 -> 3 and 0 -> 3 (through waypoints), 3 -> 1 (a cycle).
        let l = layout(
            4,
            &[(0, 1), (1, 2), (2, 3), (0, 3), (3, 1)],
            &[0],
            &[0, 1, 2, 3],
        )
        .expect("layout");
        assert_eq!(check(&l), None);
        let long = l
            .edges
            .iter()
            .find(|e| (e.from, e.to) == (0, 3))
            .expect("0 -> 3");
        let span = l.cells[3].0 - l.cells[0].0;
        assert!(span >= 2, "a long edge");
        assert_eq!(
            long.points.len(),
            2 + 2 * (span - 1),
            "a waypoint per column between, each entered and left"
        );
        assert!(
            l.height < 2.0 * (BOX_H + GAP_Y) + 2.0 * MARGIN,
            "waypoints are thin"
        );
        let back = l
            .edges
            .iter()
            .find(|e| (e.from, e.to) == (3, 1))
            .expect("3 -> 1");
        assert!(back.reversed);
        // It ends at 1's right side (drawn against the flow), starting at 3's left side.
        assert_eq!(back.points.last().map(|p| p.0), Some(l.boxes[1].x + BOX_W));
    }

    #[test]
    fn five_hundred_tangled_applications_stay_readable_and_stable() {
        let n = 500;
        let edges = tangled(n);
        let order: Vec<usize> = (0..n).collect();
        let a = layout(n, &edges, &[0, 1, 2], &order).expect("layout");
        assert_eq!(check(&a), None);
        assert_eq!(a.boxes.len(), n);
        assert_eq!(a.columns.iter().sum::<usize>(), n);
        assert!(a.edges.iter().any(|e| e.reversed), "the cycles are there");
        assert!(
            [0, 1, 2].iter().all(|&r| a.cells[r].0 == 0),
            "the entries are in the first column"
        );
        let b = layout(n, &edges, &[0, 1, 2], &order).expect("layout");
        assert_eq!(a, b, "the same input gives the same drawing");
    }

    #[test]
    fn a_hub_over_a_long_chain_is_refused_before_its_waypoints_are_made() {
        // 0 depends on every other node, and each on the next: the chain makes 2,000
        // columns, and 0's edges would need about two million waypoints.
        let n = 2000;
        let mut edges: Vec<(usize, usize)> = (1..n).map(|b| (0, b)).collect();
        edges.extend((1..n - 1).map(|a| (a, a + 1)));
        let order: Vec<usize> = (0..n).collect();
        let refused = layout(n, &edges, &[0], &order).expect_err("too large");
        assert!(refused.waypoints > WAYPOINTS_MAX);
    }

    #[test]
    fn the_check_sees_what_it_must() {
        let mut l = layout(3, &[(0, 2)], &[0], &[0, 1, 2]).expect("layout");
        assert_eq!(check(&l), None);
        // Move box 1 onto the edge's way, then onto box 0.
        let e = &l.edges[0];
        let mid = (
            (e.points[0].0 + e.points[1].0) / 2.0,
            (e.points[0].1 + e.points[1].1) / 2.0,
        );
        l.boxes[1] = Rect {
            x: mid.0 - 5.0,
            y: mid.1 - 5.0,
            w: 10.0,
            h: 10.0,
        };
        assert!(check(&l).is_some_and(|m| m.contains("crosses box 1")));
        l.boxes[1] = l.boxes[0];
        assert!(check(&l).is_some_and(|m| m.contains("overlap")));
    }
}
