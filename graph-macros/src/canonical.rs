//! The versioned canonical text of a graph's structure, which `hash` turns into
//! `GRAPH_HASH`, and the type printer it uses.
//!
//! The text is line-based and each kind of fact has its own line prefix, so later additions
//! (error edges: `error-edge charge->refund`) add lines only to graphs that use them and leave
//! every existing hash unchanged. Every line is written here, from the graph alone, with no
//! printer but our own: [`type_text`], frozen like the text itself.
//!
//! Two versions of the text exist:
//!
//! - **v1** (the first release) spelled the state type (`state Order`) and each interrupt
//!   input type (`node review interrupt Approval`) into the text, so `crate::Order` gave
//!   another hash than `Order`. Its hash is still computed: it goes into `ACCEPTED_GRAPHS`, so
//!   checkpoints saved by that release keep opening.
//! - **v2** (today's `GRAPH_HASH`) has no `state` line (the state has its own fingerprint,
//!   `STATE_SCHEMA`, stored in every checkpoint) and interrupt lines without a type
//!   (`node review interrupt`): the types enter `GRAPH_HASH` through their `StateSchema`
//!   fingerprints, which `hash` combines with this text's hash.
//!
//! Parallel regions add lines of their own, only to graphs that have them (so every other
//! graph keeps its hash): `fan-out intake->fraud&coverage&adjuster` (the branches in the order
//! written, which is the order of the frontier's slots, so reordering them changes the hash),
//! `join fraud&coverage&adjuster->decide`, `map plan->assess` and `join each assess->total`. A
//! branch's edge to its join appears in its `join` line only. The branch output types and the
//! map item types enter through their `StateSchema` fingerprints, like the interrupt inputs
//! (`output fraud`, `item assess`, in node-name order). Whether a join collects failures
//! (`Result<O, Failure>`) and a map's `concurrency` are not structure and stay out.
//!
//! An interrupt node with a deadline (`#[node(interrupt, wait_ms = N)]`) adds a line
//! `deadline review`, only to graphs that have one: its input parameter is `Option<I>` and a
//! worker may run it without an input, which a graph without the deadline never does (and a
//! worker of that graph must not claim a session whose deadline passed). The `Input` variant
//! and its fingerprint stay those of `I`; the number of milliseconds is not structure.
//!
//! A subgraph node (`#[node(subgraph = research_agent)]`) adds a line `subgraph research`,
//! only to graphs that have one; the child workflow's `NAME` and `INPUT_SCHEMA` enter
//! through a fingerprint (`subgraph research`, in node-name order), not its whole graph.
//!
//! Node renames (`#[node(renamed_from = "review")]`) describe older graphs: the same texts with
//! renamed nodes under their old names. Their hashes go into `ACCEPTED_GRAPHS` too.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Type;

use crate::model::{END, EdgeKind, Endpoint, Graph, Role, START};
use crate::parse::Fan;

/// The first line of the canonical text of the first release.
pub(crate) const VERSION_1: &str = "graph-runtime/v1";
/// The first line of today's canonical text. Bump it only for a deliberate, documented break
/// (and keep computing the older versions for `ACCEPTED_GRAPHS`).
pub(crate) const VERSION_2: &str = "graph-runtime/v2";

/// Which canonical text to write.
#[derive(Clone, Copy)]
pub(crate) enum Version<'a> {
    /// The first release's text, with the state type as written.
    V1 { state: &'a Type },
    /// Today's text: no types.
    V2,
}

/// One version of the graph: the name each node has in it (`names[i]` for node `i`).
pub(crate) struct Names(pub(crate) Vec<String>);

impl Names {
    /// The graph as declared: every node under its own name.
    pub(crate) fn current(graph: &Graph) -> Self {
        Names(graph.nodes().iter().map(|node| node.name.clone()).collect())
    }

    /// The older graphs `renamed_from` describes: every combination of a renamed node's
    /// current and old names, except all current ones, in a deterministic order (the first
    /// renamed node's names vary slowest, its old names in the listed order). `graph` has
    /// passed every check, which bounds the number of combinations.
    pub(crate) fn older(graph: &Graph) -> Vec<Self> {
        let current = Names::current(graph);
        let mut out = vec![current.0.clone()];
        for (i, node) in graph.nodes().iter().enumerate() {
            if node.args.renamed_from.is_empty() {
                continue;
            }
            let mut next = Vec::new();
            for names in &out {
                next.push(names.clone());
                for lit in &node.args.renamed_from {
                    let mut renamed = names.clone();
                    if let Some(name) = renamed.get_mut(i) {
                        *name = lit.value();
                    }
                    next.push(renamed);
                }
            }
            out = next;
        }
        out.into_iter()
            .filter(|names| *names != current.0)
            .map(Names)
            .collect()
    }

    /// The branch nodes with their names in this version, sorted by name: each with its index
    /// among the branch nodes in declaration order (the order of the generated output
    /// fingerprints).
    pub(crate) fn outputs(&self, graph: &Graph) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = branch_nodes(graph)
            .into_iter()
            .enumerate()
            .map(|(k, i)| (format!("output {}", self.of(i)), k))
            .collect();
        out.sort();
        out
    }

    /// The map nodes, like [`Names::outputs`] (the order of the item fingerprints).
    pub(crate) fn items(&self, graph: &Graph) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = map_nodes(graph)
            .into_iter()
            .enumerate()
            .map(|(k, i)| (format!("item {}", self.of(i)), k))
            .collect();
        out.sort();
        out
    }

    /// The subgraph nodes, like [`Names::outputs`] (the order of the child fingerprints).
    pub(crate) fn subgraphs(&self, graph: &Graph) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = subgraph_nodes(graph)
            .into_iter()
            .enumerate()
            .map(|(k, i)| (format!("subgraph {}", self.of(i)), k))
            .collect();
        out.sort();
        out
    }

    fn of(&self, i: usize) -> &str {
        self.0.get(i).map_or("", String::as_str)
    }

    /// The interrupt nodes with their names in this version, sorted by name: each with its
    /// index among the interrupt nodes in declaration order (the order of the `Input` enum's
    /// variants and of the generated input fingerprints).
    pub(crate) fn interrupts(&self, graph: &Graph) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = graph
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, node)| node.args.interrupt && node.input().is_some())
            .enumerate()
            .map(|(k, (i, _))| (self.of(i).to_owned(), k))
            .collect();
        out.sort();
        out
    }
}

/// The branch nodes (of fan-outs and maps), in declaration order.
pub(crate) fn branch_nodes(graph: &Graph) -> Vec<usize> {
    (0..graph.nodes().len())
        .filter(|&i| graph.is_branch(i))
        .collect()
}

/// The subgraph nodes (`#[node(subgraph = m)]`), in declaration order.
pub(crate) fn subgraph_nodes(graph: &Graph) -> Vec<usize> {
    (0..graph.nodes().len())
        .filter(|&i| {
            graph
                .nodes()
                .get(i)
                .is_some_and(|n| n.args.subgraph.is_some())
        })
        .collect()
}

/// The map nodes (the targets of `each`), in declaration order.
pub(crate) fn map_nodes(graph: &Graph) -> Vec<usize> {
    (0..graph.nodes().len())
        .filter(|&i| {
            matches!(graph.role(i), Some(Role::Branch { region, .. })
                if graph.regions.get(region).is_some_and(|r| r.each))
        })
        .collect()
}

/// The canonical text of `version` of the graph, with node `i` named `names[i]` (`workflow`,
/// v1's `state`, `entry`, sorted `node`, `edge` and `error-edge` lines). `graph` has passed
/// every check.
pub(crate) fn canonical_text(graph: &Graph, version: Version, names: &Names) -> String {
    let mut text = String::new();
    text.push_str(match version {
        Version::V1 { .. } => VERSION_1,
        Version::V2 => VERSION_2,
    });
    text.push('\n');
    text.push_str(&format!("workflow {}\n", graph.module.name));
    if let Version::V1 { state } = version {
        text.push_str(&format!("state {}\n", type_text(state)));
    }
    let entry = graph.entry().map_or("", |i| names.of(i));
    text.push_str(&format!("entry {entry}\n"));

    let mut nodes: Vec<String> = graph
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| match (node.input(), version) {
            (Some(input), Version::V1 { .. }) if node.args.interrupt => {
                format!("node {} interrupt {}", names.of(i), type_text(input))
            }
            (Some(_), Version::V2) if node.args.interrupt => {
                format!("node {} interrupt", names.of(i))
            }
            _ => format!("node {}", names.of(i)),
        })
        .collect();
    nodes.sort();
    nodes.dedup();

    let name = |endpoint: Endpoint| -> String {
        match endpoint {
            Endpoint::Start => START.to_owned(),
            Endpoint::End => END.to_owned(),
            Endpoint::Node(i) => names.of(i).to_owned(),
            Endpoint::Unknown => String::new(),
        }
    };
    // A branch's edge to its join is in the join's line.
    let from_branch = |edge: &&crate::model::Edge| match edge.from {
        Endpoint::Node(i) => graph.is_branch(i),
        _ => false,
    };
    let lines = |kind: EdgeKind, prefix: &str| -> Vec<String> {
        let mut lines: Vec<String> = graph
            .edges
            .iter()
            .filter(|edge| edge.kind == kind && edge.fan == Fan::One && !from_branch(edge))
            .map(|edge| format!("{prefix} {}->{}", name(edge.from), name(edge.to)))
            .collect();
        lines.sort();
        lines.dedup();
        lines
    };
    let edges = lines(EdgeKind::Route, "edge");
    // After the routes, and only when there are some: a graph without error edges keeps the
    // hash it had before error edges existed.
    let error_edges = lines(EdgeKind::Error, "error-edge");

    // After those, and only when there are some: a graph without parallel regions keeps the
    // hash it had before they existed.
    let mut fan_outs = Vec::new();
    let mut joins = Vec::new();
    let mut maps = Vec::new();
    for (r, region) in graph.regions.iter().enumerate() {
        let branches: Vec<String> = region.branches.iter().map(|&b| name(b)).collect();
        let join = graph
            .join_of(r)
            .map_or_else(String::new, |j| names.of(j).to_owned());
        let source = name(region.source);
        if region.each {
            maps.push(format!("map {source}->{}", branches.join("")));
            joins.push(format!("join each {}->{join}", branches.join("")));
        } else {
            fan_outs.push(format!("fan-out {source}->{}", branches.join("&")));
            joins.push(format!("join {}->{join}", branches.join("&")));
        }
    }
    for lines in [&mut fan_outs, &mut joins, &mut maps] {
        lines.sort();
        lines.dedup();
    }
    // Last, and only for nodes that have one: a node with `wait_ms` takes `Option<I>` and
    // runs without its input, a change of the node's shape (its value is not: like
    // `timeout_ms`, it may change freely). Every graph without one keeps its hash.
    let mut deadlines: Vec<String> = graph
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, node)| node.args.interrupt && node.args.wait_ms.is_some())
        .map(|(i, _)| format!("deadline {}", names.of(i)))
        .collect();
    deadlines.sort();
    deadlines.dedup();
    // Last, and only for graphs that have them: a subgraph node (`subgraph research`). The
    // child workflow's name and input schema enter through its fingerprint, like a type's;
    // its own graph does not (a child's graph changes are checked on the child's sessions).
    let subgraphs: Vec<String> = names
        .subgraphs(graph)
        .into_iter()
        .map(|(line, _)| line)
        .collect();

    for line in nodes
        .iter()
        .chain(&edges)
        .chain(&error_edges)
        .chain(&fan_outs)
        .chain(&joins)
        .chain(&maps)
        .chain(&deadlines)
        .chain(&subgraphs)
    {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The type printer of the canonical text (v1 spells the state and input types): a short
/// rendering of tokens that depends only on the tokens, never on the user's spacing or on
/// rustc's printer (whose output may change between releases): no space except between two
/// words, after `,` and a lone `:`, and around `+`, `=` and `->`. So `Vec < u8 >` and
/// `Vec<u8>` read the same, and `HashMap<String,u32>` reads `HashMap<String, u32>`.
///
/// Frozen: a change here changes the v1 hash of every graph, which `ACCEPTED_GRAPHS` keeps
/// for checkpoints of the first release. (Messages use `parse::tokens_to_string`, which may
/// change freely.)
pub(crate) fn type_text<T: ToTokens + ?Sized>(tokens: &T) -> String {
    let mut out = String::new();
    write_tokens(&mut out, tokens.to_token_stream());
    out.trim().to_owned()
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize| match tokens.get(i) {
        Some(TokenTree::Punct(p)) => Some(p.as_char()),
        _ => None,
    };
    let mut last_was_word = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                if last_was_word {
                    out.push(' ');
                }
                out.push_str(&token.to_string());
                last_was_word = true;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                let prev = i.checked_sub(1).and_then(punct);
                let next = punct(i + 1);
                match c {
                    ',' => out.push_str(", "),
                    ':' if prev != Some(':') && next != Some(':') => out.push_str(": "),
                    '+' => push_spaced(out, "+"),
                    '=' if prev.is_none() && next.is_none() => push_spaced(out, "="),
                    '-' if next == Some('>') => push_spaced(out, "->"),
                    '>' if prev == Some('-') => {}
                    _ => out.push(c),
                }
                // `'a`: the apostrophe and the lifetime's name are one word.
                last_was_word = false;
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                if group.delimiter() == Delimiter::None {
                    // An invisible group (from `macro_rules!`) is printed as its contents.
                    let mut inner = String::new();
                    write_tokens(&mut inner, group.stream());
                    if last_was_word && !inner.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(inner.trim());
                    last_was_word = !inner.is_empty();
                    continue;
                }
                out.push_str(open);
                let mut inner = String::new();
                write_tokens(&mut inner, group.stream());
                out.push_str(inner.trim());
                out.push_str(close);
                last_was_word = false;
            }
        }
    }
}

/// Appends ` op ` without doubling a space already there.
fn push_spaced(out: &mut String, op: &str) {
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out.push_str(op);
    out.push(' ');
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;

    use super::*;

    fn text(source: &str) -> String {
        let tokens: TokenStream = syn::parse_str(source).expect("tokens");
        type_text(&tokens)
    }

    /// Pinned: the v1 text spells types with this printer, so its output is part of every
    /// v1 hash.
    #[test]
    fn the_type_printer_is_pinned() {
        assert_eq!(text("Vec < u8 >"), "Vec<u8>");
        assert_eq!(text("HashMap<String,u32>"), "HashMap<String, u32>");
        assert_eq!(text("crate :: Order"), "crate::Order");
        assert_eq!(
            text("Box<dyn Fn(u8) -> u8 + Send>"),
            "Box<dyn Fn(u8) -> u8 + Send>"
        );
        // Spacing is only what the rules above add: the text is frozen, not pretty.
        assert_eq!(text("&'a mut [u8; 4]"), "&'a mut[u8;4]");
        assert_eq!(text("(u8, String)"), "(u8, String)");
    }
}
