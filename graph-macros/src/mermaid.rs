//! `MERMAID`: the graph as a Mermaid flowchart. `START`/`END` are stadiums, interrupt nodes
//! hexagons; error edges are dotted (`charge -. on error .-> refund`), the edges of a fan-out
//! and of its branches to the join thick (`intake ==> fraud`, `fraud ==> decide`), and a map
//! is a thick link labelled `each` (`plan ==>|each| assess`). A subgraph node is a subroutine
//! naming the child workflow's module (`research[["research: research_agent"]]`).

use syn::Ident;

use crate::model::{END, EdgeKind, Endpoint, Graph, START};
use crate::parse::Fan;

/// The Mermaid flowchart: `START`/`END` as stadiums, interrupt nodes as hexagons, then every
/// edge in declaration order, error edges dotted and labelled (`charge -. on error .-> refund`).
/// Deterministic: only source order is used.
pub(crate) fn mermaid(graph: &Graph) -> String {
    let mut text = String::from("flowchart TD\n");
    text.push_str(&format!("    {START}([{START}])\n"));
    for node in graph.nodes() {
        let id = mermaid_id(&node.name);
        if let Some((path, _)) = &node.args.subgraph {
            // A subroutine shape naming the child workflow's module: `research[["research: agent"]]`.
            let child = crate::parse::tokens_to_string(path);
            text.push_str(&format!("    {id}[[\"{}: {child}\"]]\n", node.name));
        } else if node.args.interrupt {
            text.push_str(&format!("    {id}{{{{{}}}}}\n", node.name));
        } else {
            text.push_str(&format!("    {id}[{}]\n", node.name));
        }
    }
    text.push_str(&format!("    {END}([{END}])\n"));
    for edge in &graph.edges {
        let end = |endpoint: Endpoint, ident: &Ident| match endpoint {
            Endpoint::Start => START.to_owned(),
            Endpoint::End => END.to_owned(),
            _ => mermaid_id(&crate::model::ident_name(ident)),
        };
        // "All of": a fan-out's edges and its branches' edges to the join are thick links.
        let from_branch = matches!(edge.from, Endpoint::Node(i) if graph.is_branch(i));
        let link = match (edge.kind, edge.fan) {
            (EdgeKind::Error, _) => "-. on error .->",
            (EdgeKind::Route, Fan::All) => "==>",
            (EdgeKind::Route, Fan::Each) => "==>|each|",
            (EdgeKind::Route, Fan::One) if from_branch => "==>",
            (EdgeKind::Route, Fan::One) => "-->",
        };
        text.push_str(&format!(
            "    {} {link} {}\n",
            end(edge.from, &edge.from_ident),
            end(edge.to, &edge.to_ident)
        ));
    }
    text
}

/// A Mermaid node id: the node's name, unless Mermaid reads that word as a keyword.
pub(crate) fn mermaid_id(name: &str) -> String {
    const KEYWORDS: [&str; 12] = [
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "style",
        "class",
        "classDef",
        "click",
        "linkStyle",
        "direction",
        "default",
        "call",
    ];
    if KEYWORDS.contains(&name) {
        format!("__{name}")
    } else {
        name.to_owned()
    }
}
