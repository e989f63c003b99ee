//! The graph of a workflow drawn server-side as inline SVG: its `MERMAID` text parsed back into
//! nodes and edges, laid out in layers from `START` down, its current node(s) marked.
//!
//! The Mermaid text is what graph-macros writes (`graph-macros/src/mermaid.rs`): a header
//! line, one line per node (`START([START])`, `review{{review}}`, `charge[charge]`; a node
//! whose name is a Mermaid keyword has the id `__name`), then one line per edge
//! (`a --> b`, `a ==> b`, `a ==>|each| b`, `a -. on error .-> b`). The parser also takes the
//! other common Mermaid forms (`a -- text --> b`, chains `a --> b --> c`, shapes on an edge
//! line) and skips any line it does not understand, so a later change of the generator
//! draws a less complete graph, never an error.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::html::Escape;

/// How a node is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// `id[label]`: an ordinary node.
    Box,
    /// `id([label])`: `START` and `END`.
    Stadium,
    /// `id{{label}}`: an interrupt node.
    Hexagon,
    /// `id[[label]]`: a subgraph node.
    Subroutine,
    /// Any other bracket.
    Round,
}

/// How an edge is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// `-->`.
    Solid,
    /// `==>`: a fan-out, a branch to its join, a map.
    Thick,
    /// `-.->`: an error edge.
    Dotted,
}

/// A node of a parsed flowchart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlowNode {
    /// Its Mermaid id.
    pub id: String,
    /// Its label: the node's name.
    pub label: String,
    /// What its box says: the label, or for a subgraph node `research[[research: agent]]`
    /// the whole `research: agent` (its name, then the child workflow it runs).
    pub text: String,
    /// Its shape.
    pub shape: Shape,
}

/// An edge of a parsed flowchart, between node indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FlowEdge {
    pub from: usize,
    pub to: usize,
    pub line: Line,
    pub label: Option<String>,
}

/// A flowchart: nodes in order of first appearance, edges in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Flowchart {
    pub nodes: Vec<FlowNode>,
    pub edges: Vec<FlowEdge>,
}

impl Flowchart {
    /// Parses Mermaid flowchart text; what it does not understand is skipped.
    pub fn parse(text: &str) -> Flowchart {
        let mut chart = Flowchart::default();
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim().trim_end_matches(';');
            if skipped(line) {
                continue;
            }
            let chars: Vec<char> = line.chars().collect();
            let Some(parsed) = parse_statement(&chars) else {
                continue;
            };
            let mut previous = None;
            for (node, link) in parsed {
                let index = chart.node(&mut ids, node);
                if let (Some(from), Some((line, label))) = (previous, link) {
                    chart.edges.push(FlowEdge {
                        from,
                        to: index,
                        line,
                        label,
                    });
                }
                previous = Some(index);
            }
        }
        chart
    }

    /// The index of the node `reference` names, adding it or completing its label and shape.
    fn node(&mut self, ids: &mut BTreeMap<String, usize>, reference: NodeRef) -> usize {
        if let Some(&index) = ids.get(&reference.id) {
            if let Some((text, shape)) = reference.shape {
                self.nodes[index].label = node_name(&text, shape);
                self.nodes[index].text = text;
                self.nodes[index].shape = shape;
            }
            return index;
        }
        let (text, shape) = reference.shape.unwrap_or_else(|| {
            // A node first named on an edge line: its id is its name, unless the generator
            // prefixed a Mermaid keyword (`__end`).
            let name = reference.id.strip_prefix("__").unwrap_or(&reference.id);
            (name.to_owned(), Shape::Box)
        });
        let index = self.nodes.len();
        self.nodes.push(FlowNode {
            id: reference.id.clone(),
            label: node_name(&text, shape),
            text,
            shape,
        });
        ids.insert(reference.id, index);
        index
    }
}

/// The node name in a node's text: all of it, except in a subgraph node's
/// `research: research_agent`, where the child workflow follows the name.
fn node_name(text: &str, shape: Shape) -> String {
    match text.split_once(": ") {
        Some((name, _)) if shape == Shape::Subroutine => name.to_owned(),
        _ => text.to_owned(),
    }
}

/// Lines that declare nothing we draw: the header, comments, styling, subgraph blocks.
fn skipped(line: &str) -> bool {
    const KEYWORDS: [&str; 10] = [
        "flowchart",
        "graph",
        "classDef",
        "class",
        "style",
        "linkStyle",
        "click",
        "subgraph",
        "direction",
        "end",
    ];
    let first = line.split_whitespace().next().unwrap_or("");
    line.is_empty() || line.starts_with("%%") || KEYWORDS.contains(&first)
}

/// A node as a statement names it: its id, and its label and shape if the statement gives them.
struct NodeRef {
    id: String,
    shape: Option<(String, Shape)>,
}

/// A link between two nodes: its line and label.
type Link = (Line, Option<String>);

/// `a`, `a[x]`, `a --> b`, `a -- text --> b[y] ==> c`: each node with the link that leads to it.
fn parse_statement(chars: &[char]) -> Option<Vec<(NodeRef, Option<Link>)>> {
    let mut at = 0;
    let mut out = Vec::new();
    let first = parse_node(chars, &mut at)?;
    out.push((first, None));
    loop {
        skip_space(chars, &mut at);
        if at >= chars.len() {
            return Some(out);
        }
        let link = parse_link(chars, &mut at)?;
        skip_space(chars, &mut at);
        let node = parse_node(chars, &mut at)?;
        out.push((node, Some(link)));
    }
}

fn skip_space(chars: &[char], at: &mut usize) {
    while chars.get(*at).is_some_and(|c| c.is_whitespace()) {
        *at += 1;
    }
}

fn is_id_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// An id and an optional shape: `review{{review}}`, `START([START])`, `charge`.
fn parse_node(chars: &[char], at: &mut usize) -> Option<NodeRef> {
    let start = *at;
    while chars.get(*at).copied().is_some_and(is_id_char) {
        *at += 1;
    }
    if *at == start {
        return None;
    }
    let id: String = chars[start..*at].iter().collect();
    // Longest openers first: `([` before `(`, `{{` before `{`.
    const SHAPES: [(&str, &str, Shape); 8] = [
        ("([", "])", Shape::Stadium),
        ("{{", "}}", Shape::Hexagon),
        ("[[", "]]", Shape::Subroutine),
        ("[(", ")]", Shape::Round),
        ("((", "))", Shape::Round),
        ("[", "]", Shape::Box),
        ("(", ")", Shape::Round),
        ("{", "}", Shape::Round),
    ];
    for (open, close, shape) in SHAPES {
        if !starts_with(chars, *at, open) {
            continue;
        }
        let inner = *at + open.chars().count();
        let end = find(chars, inner, close)?;
        let label: String = chars[inner..end].iter().collect();
        let label = label.trim().trim_matches('"').to_owned();
        *at = end + close.chars().count();
        return Some(NodeRef {
            id,
            shape: Some((label, shape)),
        });
    }
    Some(NodeRef { id, shape: None })
}

/// A link: `-->`, `---`, `==>`, `-.->`, `-. text .->`, `-- text -->`, then maybe `|label|`.
fn parse_link(chars: &[char], at: &mut usize) -> Option<Link> {
    let is_link_char = |c: char| matches!(c, '-' | '=' | '.' | '<' | '>');
    let start = *at;
    while chars.get(*at).copied().is_some_and(is_link_char) {
        *at += 1;
    }
    if *at == start {
        return None;
    }
    let mut arrow: String = chars[start..*at].iter().collect();
    let mut label = None;
    let complete = arrow.ends_with('>') || arrow.len() >= 3;
    if !complete {
        // `-- text -->` / `-. text .->`: the text runs to the next run of link characters.
        let text_start = *at;
        while chars.get(*at).is_some_and(|&c| !is_link_char(c)) {
            *at += 1;
        }
        let text: String = chars[text_start..*at].iter().collect();
        let closing = *at;
        while chars.get(*at).copied().is_some_and(is_link_char) {
            *at += 1;
        }
        if closing == *at {
            return None;
        }
        arrow.extend(&chars[closing..*at]);
        label = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    }
    if chars.get(*at) == Some(&'|') {
        let end = find(chars, *at + 1, "|")?;
        let text: String = chars[*at + 1..end].iter().collect();
        label = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
        *at = end + 1;
    }
    let line = if arrow.contains('.') {
        Line::Dotted
    } else if arrow.contains('=') {
        Line::Thick
    } else {
        Line::Solid
    };
    Some((line, label))
}

fn starts_with(chars: &[char], at: usize, pattern: &str) -> bool {
    (at..)
        .zip(pattern.chars())
        .all(|(i, p)| chars.get(i) == Some(&p))
}

fn find(chars: &[char], from: usize, pattern: &str) -> Option<usize> {
    (from..chars.len()).find(|&i| starts_with(chars, i, pattern))
}

/// Where each node sits. Vertices `0..nodes` are the chart's nodes; the others are waypoints
/// of edges that span several layers (so such an edge gets a lane of its own rather than
/// running through the nodes between).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    /// The layer (row, from the top) of each vertex.
    pub layer: Vec<usize>,
    /// Each layer's vertices, left to right.
    pub rows: Vec<Vec<usize>>,
    /// Whether each edge runs back up (or within its row): a loop, drawn around the side.
    pub back: Vec<bool>,
    /// The waypoints of each edge, top to bottom (none for a back edge or a short one).
    pub waypoints: Vec<Vec<usize>>,
}

impl Layout {
    /// Layers by longest path from the start over the graph without its loops' back edges;
    /// `END` on the last layer; within a layer, vertices ordered by where their neighbours
    /// sit (a few barycentre sweeps down and up, to uncross edges).
    pub fn of(chart: &Flowchart) -> Layout {
        let n = chart.nodes.len();
        let back_edge = back_edges(chart);
        let is_forward = |i: usize| !back_edge[i] && chart.edges[i].from != chart.edges[i].to;

        // Longest path by Kahn's order: the forward edges form a DAG.
        let mut incoming = vec![0usize; n];
        for (i, e) in chart.edges.iter().enumerate() {
            if is_forward(i) {
                incoming[e.to] += 1;
            }
        }
        let mut layer = vec![0usize; n];
        let mut ready: Vec<usize> = (0..n).filter(|&v| incoming[v] == 0).rev().collect();
        while let Some(v) = ready.pop() {
            for (i, e) in chart.edges.iter().enumerate() {
                if e.from == v && is_forward(i) {
                    layer[e.to] = layer[e.to].max(layer[v] + 1);
                    incoming[e.to] -= 1;
                    if incoming[e.to] == 0 {
                        ready.push(e.to);
                    }
                }
            }
        }
        if let Some(end) = chart.nodes.iter().position(|node| node.label == "END") {
            let deepest = (0..n).filter(|&v| v != end).map(|v| layer[v]).max();
            if let Some(deepest) = deepest {
                layer[end] = layer[end].max(deepest + 1);
            }
        }

        // Waypoints on every layer a forward edge crosses; `links` are the one-layer steps.
        let mut waypoints = vec![Vec::new(); chart.edges.len()];
        let mut links: Vec<(usize, usize)> = Vec::new();
        for (i, e) in chart.edges.iter().enumerate() {
            if !is_forward(i) {
                continue;
            }
            let mut from = e.from;
            for l in layer[e.from] + 1..layer[e.to] {
                let waypoint = layer.len();
                layer.push(l);
                waypoints[i].push(waypoint);
                links.push((from, waypoint));
                from = waypoint;
            }
            links.push((from, e.to));
        }

        let depth = layer.iter().max().map_or(0, |d| d + 1);
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); depth];
        for (v, &l) in layer.iter().enumerate() {
            rows[l].push(v);
        }
        // Barycentre sweeps: each vertex under (or over) the mean place of its neighbours in
        // the row before; one without keeps its place. Stable sorts: ties keep source order.
        for sweep in 0..4 {
            let down = sweep % 2 == 0;
            let order: Vec<usize> = if down {
                (1..depth).collect()
            } else {
                (0..depth.saturating_sub(1)).rev().collect()
            };
            for l in order {
                let reference = if down { &rows[l - 1] } else { &rows[l + 1] };
                let place = |v: usize, own: usize| -> f64 {
                    let places: Vec<f64> = links
                        .iter()
                        .filter_map(|&(a, b)| match (down, a == v, b == v) {
                            (true, _, true) => Some(a),
                            (false, true, _) => Some(b),
                            _ => None,
                        })
                        .filter_map(|u| reference.iter().position(|&r| r == u))
                        .map(|p| p as f64)
                        .collect();
                    if places.is_empty() {
                        own as f64
                    } else {
                        places.iter().sum::<f64>() / places.len() as f64
                    }
                };
                let mut keyed: Vec<(f64, usize)> = rows[l]
                    .iter()
                    .enumerate()
                    .map(|(own, &v)| (place(v, own), v))
                    .collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                rows[l] = keyed.into_iter().map(|(_, v)| v).collect();
            }
        }
        let back = chart
            .edges
            .iter()
            .map(|e| layer[e.to] <= layer[e.from])
            .collect();
        Layout {
            layer,
            rows,
            back,
            waypoints,
        }
    }
}

/// The edges that close a loop: those a depth-first walk from the start finds pointing at a
/// node still on its path.
fn back_edges(chart: &Flowchart) -> Vec<bool> {
    let n = chart.nodes.len();
    let mut back = vec![false; chart.edges.len()];
    // 0: unseen, 1: on the current path, 2: done.
    let mut mark = vec![0u8; n];
    let start = chart.nodes.iter().position(|node| node.label == "START");
    let roots = start.into_iter().chain(0..n);
    for root in roots {
        if mark[root] != 0 {
            continue;
        }
        // Iterative DFS: (node, index of the next outgoing edge to look at).
        let mut stack = vec![(root, 0usize)];
        mark[root] = 1;
        while let Some((v, next)) = stack.last().copied() {
            let outgoing = (next..chart.edges.len()).find(|&i| chart.edges[i].from == v);
            match outgoing {
                Some(i) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 = i + 1;
                    }
                    let to = chart.edges[i].to;
                    match mark[to] {
                        0 => {
                            mark[to] = 1;
                            stack.push((to, 0));
                        }
                        1 => back[i] = true,
                        _ => {}
                    }
                }
                None => {
                    mark[v] = 2;
                    stack.pop();
                }
            }
        }
    }
    back
}

const NODE_HEIGHT: f64 = 36.0;
const LAYER_GAP: f64 = 56.0;
const NODE_GAP: f64 = 32.0;
/// The width a waypoint of a long edge takes in its row.
const WAYPOINT_WIDTH: f64 = 8.0;
const MARGIN: f64 = 16.0;
/// The width of a character of the node labels' monospace font at 14px.
const CHAR_WIDTH: f64 = 8.5;

fn node_width(label: &str) -> f64 {
    (label.chars().count() as f64 * CHAR_WIDTH + 32.0).max(72.0)
}

/// A smooth path through `points`, leaving and entering each one vertically.
fn vertical_curve(points: &[(f64, f64)]) -> String {
    let mut d = String::new();
    for (i, &(x, y)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(d, "M{x:.1},{y:.1}");
            continue;
        }
        let (px, py) = points[i - 1];
        if (px - x).abs() < 0.05 {
            let _ = write!(d, " L{x:.1},{y:.1}");
        } else {
            let bend = (y - py) / 2.0;
            let _ = write!(
                d,
                " C{px:.1},{:.1} {x:.1},{:.1} {x:.1},{y:.1}",
                py + bend,
                y - bend
            );
        }
    }
    d
}

/// The SVG of `mermaid`, the nodes named in `current` marked (`class="node current"`).
/// Every node is a `<g class="node" data-node="name">`; every edge a `<path class="edge">`
/// (`thick`, `error`) with `data-from` and `data-to`.
pub(super) fn svg(workflow: &str, mermaid: &str, current: &[String]) -> String {
    let chart = Flowchart::parse(mermaid);
    let layout = Layout::of(&chart);
    let real = chart.nodes.len();
    let widths: Vec<f64> = (0..layout.layer.len())
        .map(|v| match chart.nodes.get(v) {
            Some(node) => node_width(&node.text),
            None => WAYPOINT_WIDTH,
        })
        .collect();
    let row_width = |row: &[usize]| -> f64 {
        row.iter().map(|&v| widths[v]).sum::<f64>() + NODE_GAP * row.len().saturating_sub(1) as f64
    };
    let inner = layout
        .rows
        .iter()
        .map(|r| row_width(r))
        .fold(0.0f64, f64::max);
    // Room on the right for the loops drawn around the side.
    let loops = layout.back.iter().filter(|b| **b).count() as f64;
    let side = if loops > 0.0 {
        24.0 + 18.0 * loops
    } else {
        0.0
    };
    let width = inner + 2.0 * MARGIN + side;
    let height =
        (layout.rows.len() as f64 * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP).max(0.0) + 2.0 * MARGIN;

    // Top-left corner of each vertex.
    let mut at = vec![(0.0f64, 0.0f64); layout.layer.len()];
    for (l, row) in layout.rows.iter().enumerate() {
        let mut x = MARGIN + (inner - row_width(row)) / 2.0;
        let y = MARGIN + l as f64 * (NODE_HEIGHT + LAYER_GAP);
        for &v in row {
            at[v] = (x, y);
            x += widths[v] + NODE_GAP;
        }
    }

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="graph" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="the graph of workflow {name}">"#,
        name = Escape(workflow)
    );
    out.push_str(
        r#"<defs><marker id="graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrow"/></marker></defs>"#,
    );

    let mut labels = String::new();
    let mut loop_index = 0.0;
    for (i, edge) in chart.edges.iter().enumerate() {
        let (fx, fy) = at[edge.from];
        let (tx, ty) = at[edge.to];
        let (fw, tw) = (widths[edge.from], widths[edge.to]);
        let (path, mid) = if layout.back[i] {
            // Around the right side: out of the source's right, into the target's right.
            loop_index += 1.0;
            let x1 = fx + fw;
            let y1 = fy + NODE_HEIGHT / 2.0;
            let x2 = tx + tw + 6.0;
            let y2 = ty + NODE_HEIGHT / 2.0 - if edge.from == edge.to { 8.0 } else { 0.0 };
            let out_x = MARGIN + inner + 6.0 + 18.0 * loop_index;
            let path =
                format!("M{x1:.1},{y1:.1} C{out_x:.1},{y1:.1} {out_x:.1},{y2:.1} {x2:.1},{y2:.1}");
            let mid = ((x1 + 6.0 * out_x + x2) / 8.0, (y1 + y2) / 2.0);
            (path, mid)
        } else {
            // Down through the edge's waypoints, each crossed as a straight vertical lane.
            let mut points = vec![(fx + fw / 2.0, fy + NODE_HEIGHT)];
            for &w in &layout.waypoints[i] {
                let (wx, wy) = at[w];
                points.push((wx + WAYPOINT_WIDTH / 2.0, wy));
                points.push((wx + WAYPOINT_WIDTH / 2.0, wy + NODE_HEIGHT));
            }
            points.push((tx + tw / 2.0, ty - 2.0));
            // The label sits halfway along the first step.
            let mid = (
                (points[0].0 + points[1].0) / 2.0,
                (points[0].1 + points[1].1) / 2.0,
            );
            (vertical_curve(&points), mid)
        };
        let class = match edge.line {
            Line::Solid => "edge",
            Line::Thick => "edge thick",
            Line::Dotted => "edge error",
        };
        let _ = write!(
            out,
            r#"<path class="{class}" d="{path}" marker-end="url(#graph-arrow)" data-from="{}" data-to="{}"/>"#,
            Escape(&chart.nodes[edge.from].label),
            Escape(&chart.nodes[edge.to].label)
        );
        if let Some(label) = &edge.label {
            let w = label.chars().count() as f64 * 6.6 + 8.0;
            let _ = write!(
                labels,
                r#"<g class="edge-label"><rect x="{:.1}" y="{:.1}" width="{w:.1}" height="16" rx="3"/><text x="{:.1}" y="{:.1}">{}</text></g>"#,
                mid.0 - w / 2.0,
                mid.1 - 8.0,
                mid.0,
                mid.1 + 4.0,
                Escape(label)
            );
        }
    }
    out.push_str(&labels);

    for (v, node) in chart.nodes.iter().enumerate().take(real) {
        let (x, y) = at[v];
        let w = widths[v];
        let is_current = current.contains(&node.label);
        let mut class = String::from("node");
        match node.shape {
            Shape::Hexagon => class.push_str(" interrupt"),
            Shape::Stadium => class.push_str(" terminal"),
            _ => {}
        }
        if is_current {
            class.push_str(" current");
        }
        let _ = write!(
            out,
            r#"<g class="{class}" data-node="{name}"><title>{name}{suffix}</title>"#,
            name = Escape(&node.label),
            suffix = if is_current { " (current)" } else { "" }
        );
        let h = NODE_HEIGHT;
        match node.shape {
            Shape::Hexagon => {
                let d = 12.0;
                let _ = write!(
                    out,
                    r#"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}"/>"#,
                    x + d,
                    y,
                    x + w - d,
                    y,
                    x + w,
                    y + h / 2.0,
                    x + w - d,
                    y + h,
                    x + d,
                    y + h,
                    x,
                    y + h / 2.0
                );
            }
            shape => {
                let rx = match shape {
                    Shape::Stadium => h / 2.0,
                    Shape::Round => 10.0,
                    _ => 4.0,
                };
                let _ = write!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{rx:.1}"/>"#
                );
                if shape == Shape::Subroutine {
                    let _ = write!(
                        out,
                        r#"<path class="inner" d="M{:.1},{y:.1} v{h:.1} M{:.1},{y:.1} v{h:.1}"/>"#,
                        x + 6.0,
                        x + w - 6.0
                    );
                }
            }
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text></g>"#,
            x + w / 2.0,
            y + h / 2.0 + 5.0,
            Escape(&node.text)
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What graph-macros writes for the checkout example.
    const CHECKOUT: &str = "flowchart TD
    START([START])
    validate[validate]
    review{{review}}
    charge[charge]
    refund[refund]
    ship[ship]
    cancel[cancel]
    END([END])
    START --> validate
    validate --> review
    validate --> charge
    review --> charge
    review --> cancel
    charge --> ship
    charge -. on error .-> refund
    ship --> END
    cancel --> END
    refund --> END
";

    fn names(chart: &Flowchart, edge: &FlowEdge) -> (String, String) {
        (
            chart.nodes[edge.from].label.clone(),
            chart.nodes[edge.to].label.clone(),
        )
    }

    #[test]
    fn parses_what_graph_macros_writes() {
        let chart = Flowchart::parse(CHECKOUT);
        let labels: Vec<&str> = chart.nodes.iter().map(|n| n.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "START", "validate", "review", "charge", "refund", "ship", "cancel", "END"
            ]
        );
        assert_eq!(chart.nodes[0].shape, Shape::Stadium);
        assert_eq!(chart.nodes[2].shape, Shape::Hexagon);
        assert_eq!(chart.nodes[3].shape, Shape::Box);
        assert_eq!(chart.edges.len(), 10);
        let error = &chart.edges[6];
        assert_eq!(names(&chart, error), ("charge".into(), "refund".into()));
        assert_eq!(error.line, Line::Dotted);
        assert_eq!(error.label.as_deref(), Some("on error"));
    }

    #[test]
    fn parses_thick_maps_keywords_chains_and_text_links() {
        let chart = Flowchart::parse(
            "flowchart TD
            %% a comment
            __end[end]
            plan ==>|each| assess
            a ==> b
            a -- maybe --> __end --> c[[child]]
            classDef x fill:#fff
            this is not mermaid ]]] {{
            d -->
            ",
        );
        let edge = |from: &str, to: &str| {
            chart
                .edges
                .iter()
                .find(|e| names(&chart, e) == (from.to_owned(), to.to_owned()))
                .cloned()
        };
        let each = edge("plan", "assess").expect("the map edge");
        assert_eq!(
            (each.line, each.label.as_deref()),
            (Line::Thick, Some("each"))
        );
        assert_eq!(edge("a", "b").map(|e| e.line), Some(Line::Thick));
        let maybe = edge("a", "end").expect("a keyword node, by its label");
        assert_eq!(
            (maybe.line, maybe.label.as_deref()),
            (Line::Solid, Some("maybe"))
        );
        assert!(edge("end", "child").is_some(), "labels name nodes");
        let child = chart.nodes.iter().find(|n| n.id == "c").expect("c");
        assert_eq!(
            (child.label.as_str(), child.shape),
            ("child", Shape::Subroutine)
        );
    }

    #[test]
    fn a_subgraph_node_is_named_by_its_name_and_shows_its_child() {
        let text = "flowchart TD\n    START([START])\n    research[[\"research: research_agent\"]]\n    END([END])\n    START --> research\n    research --> END\n";
        let chart = Flowchart::parse(text);
        let node = chart
            .nodes
            .iter()
            .find(|n| n.id == "research")
            .expect("research");
        assert_eq!(
            (node.label.as_str(), node.text.as_str(), node.shape),
            ("research", "research: research_agent", Shape::Subroutine)
        );
        assert_eq!(chart.edges.len(), 2);
        let svg = svg("support", text, &["research".to_owned()]);
        assert!(
            svg.contains(r#"<g class="node current" data-node="research">"#),
            "{svg}"
        );
        assert!(svg.contains(">research: research_agent</text>"), "{svg}");
    }

    #[test]
    fn never_panics_on_odd_text() {
        for text in [
            "",
            "flowchart TD",
            "a[",
            "a{{b",
            "a -",
            "a --",
            "a -- x",
            "a |x| b",
            "é[ü] --> ß",
            "a -->|x b",
            "[[[",
            "\u{0}",
        ] {
            let chart = Flowchart::parse(text);
            let _ = Layout::of(&chart);
            let _ = svg("w", text, &[]);
        }
    }

    #[test]
    fn layers_run_down_from_start_with_end_last() {
        let chart = Flowchart::parse(CHECKOUT);
        let layout = Layout::of(&chart);
        let layer = |name: &str| {
            let v = chart
                .nodes
                .iter()
                .position(|n| n.label == name)
                .expect(name);
            layout.layer[v]
        };
        assert_eq!(layer("START"), 0);
        assert_eq!(layer("validate"), 1);
        assert_eq!(layer("review"), 2);
        assert_eq!(layer("charge"), 3);
        assert!(layer("ship") > layer("charge"));
        assert!(layer("END") > layer("ship") && layer("END") > layer("refund"));
        assert!(layout.back.iter().all(|b| !b));
        // `validate -> charge` skips `review`'s layer: it gets a waypoint there.
        let skip = chart
            .edges
            .iter()
            .position(|e| names(&chart, e) == ("validate".into(), "charge".into()))
            .expect("validate -> charge");
        assert_eq!(layout.waypoints[skip].len(), 1);
        assert_eq!(layout.layer[layout.waypoints[skip][0]], layer("review"));
        assert!(layout.rows[layer("review")].len() == 2);
    }

    #[test]
    fn a_loop_is_a_back_edge_and_still_terminates() {
        let chart = Flowchart::parse(
            "flowchart TD
            START --> a
            a ==> b1
            a ==> b2
            b1 ==> j
            b2 ==> j
            j --> a
            j --> END
            j --> j",
        );
        let layout = Layout::of(&chart);
        let backs: Vec<(String, String)> = chart
            .edges
            .iter()
            .zip(&layout.back)
            .filter(|(_, b)| **b)
            .map(|(e, _)| names(&chart, e))
            .collect();
        assert_eq!(backs, [("j".into(), "a".into()), ("j".into(), "j".into())]);
        let svg = svg("loop", "flowchart TD\nSTART --> a\na --> a\na --> END", &[]);
        assert!(svg.contains(r#"data-from="a" data-to="a""#));
    }

    #[test]
    fn marks_the_current_node_and_escapes_names() {
        let svg = svg("checkout", CHECKOUT, &["review".to_owned()]);
        assert!(svg.contains(r#"<g class="node interrupt current" data-node="review">"#));
        assert!(svg.contains(r#"<g class="node" data-node="charge">"#));
        assert_eq!(svg.matches("current").count(), 2, "the class and the title");
        let odd = super::svg("<w>", "flowchart TD\na[<script>x</script>] --> b", &[]);
        assert!(!odd.contains("<script>"));
        assert!(odd.contains("&lt;script&gt;"));
    }
}
