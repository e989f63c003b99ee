//! The graph IR: nodes in source order, a name → index map, and the edges resolved against it.
//!
//! Names are resolved leniently — an `edge!` may name something that is not a node — so that
//! `check` can report every problem; `expand` only ever sees a graph that passed every check.

use std::collections::BTreeMap;

use proc_macro2::Span;
use syn::Ident;

use crate::parse::{Fan, Module, NodeFn};

/// The reserved name of the graph's entry.
pub(crate) const START: &str = "START";
/// The reserved name of the graph's exit.
pub(crate) const END: &str = "END";

/// One end of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Endpoint {
    Start,
    End,
    /// A node, by its index in [`Module::nodes`].
    Node(usize),
    /// A name that is not a node (reported by `check`).
    Unknown,
}

/// What an edge means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeKind {
    /// The node's return value chooses this successor (its only one, or a `Next` variant).
    Route,
    /// `edge!(a -> b on error)`: taken when `a` fails after its retries; `b` then reads the
    /// failure from `NodeCtx::failure`. Not a successor: `a::Next` does not list it.
    Error,
}

/// One `from -> to` pair of an `edge!` (a branch declares several).
pub(crate) struct Edge {
    pub(crate) kind: EdgeKind,
    /// `All` for an edge of a fan-out (`a -> b & c`), `Each` for a map's (`plan -> each
    /// assess`), `One` otherwise (a branch's edge to its join is `One`).
    pub(crate) fan: Fan,
    pub(crate) from: Endpoint,
    pub(crate) to: Endpoint,
    /// The names as written, for spans.
    pub(crate) from_ident: Ident,
    pub(crate) to_ident: Ident,
    /// The index of the `edge!` in [`Module::edges`].
    pub(crate) decl: usize,
}

/// A fan-out (`edge!(a -> b & c)`) or a map (`edge!(plan -> each assess)`), as declared: the
/// node before it and its branches. Its join is the branches' successor
/// ([`Graph::join_of`]).
pub(crate) struct Region {
    pub(crate) source: Endpoint,
    /// The source as written.
    pub(crate) source_ident: Ident,
    /// The branches in the order written (one for a map: the map node).
    pub(crate) branches: Vec<Endpoint>,
    /// The branch names as written.
    pub(crate) branch_idents: Vec<Ident>,
    /// A map (`each`), not a fan-out.
    pub(crate) each: bool,
    /// The index of the `edge!` in [`Module::edges`].
    pub(crate) decl: usize,
}

/// What a node is in a parallel region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A branch of region `region` (a target of `&`, or the map node), its slot `slot`.
    Branch { region: usize, slot: usize },
    /// The join of region `region`: the successor of its branches.
    Join { region: usize },
}

/// The workflow graph.
pub(crate) struct Graph<'m> {
    pub(crate) module: &'m Module,
    /// Node name → index of the first node with that name.
    pub(crate) index: BTreeMap<String, usize>,
    /// Every edge, in declaration order.
    pub(crate) edges: Vec<Edge>,
    /// Every fan-out and map, in declaration order.
    pub(crate) regions: Vec<Region>,
}

impl<'m> Graph<'m> {
    pub(crate) fn build(module: &'m Module) -> Self {
        let mut index = BTreeMap::new();
        for (i, node) in module.nodes.iter().enumerate() {
            index.entry(node.name.clone()).or_insert(i);
        }
        let mut graph = Graph {
            module,
            index,
            edges: Vec::new(),
            regions: Vec::new(),
        };
        for (decl, edge) in module.edges.iter().enumerate() {
            let kind = if edge.on_error.is_some() {
                EdgeKind::Error
            } else {
                EdgeKind::Route
            };
            // A join `b & c -> j` is an edge from each branch.
            for source in edge.sources() {
                let from = graph.resolve_recovering(source, false);
                for target in &edge.targets {
                    graph.edges.push(Edge {
                        kind,
                        fan: edge.fan,
                        from,
                        to: graph.resolve_recovering(target, kind == EdgeKind::Error),
                        from_ident: source.clone(),
                        to_ident: target.clone(),
                        decl,
                    });
                }
            }
            if edge.fan != Fan::One {
                let region = Region {
                    source: graph.resolve_recovering(&edge.from, false),
                    source_ident: edge.from.clone(),
                    branches: edge
                        .targets
                        .iter()
                        .map(|target| graph.resolve_recovering(target, false))
                        .collect(),
                    branch_idents: edge.targets.clone(),
                    each: edge.fan == Fan::Each,
                    decl,
                };
                graph.regions.push(region);
            }
        }
        graph
    }

    pub(crate) fn nodes(&self) -> &'m [NodeFn] {
        &self.module.nodes
    }

    /// What a name in `edge!` refers to.
    pub(crate) fn resolve(&self, ident: &Ident) -> Endpoint {
        let name = ident_name(ident);
        match name.as_str() {
            START => Endpoint::Start,
            END => Endpoint::End,
            _ => self
                .index
                .get(&name)
                .map_or(Endpoint::Unknown, |&i| Endpoint::Node(i)),
        }
    }

    /// Like [`Graph::resolve`], but a likely typo (reported by `check`) stands for the name it
    /// is close to, as rustc does after a typo: the shape checks then see the graph the user
    /// meant, and one typo gives one error rather than a trail of unreachable nodes. The target
    /// of an error edge (`nodes_only`) is never read as `START` or `END`.
    fn resolve_recovering(&self, ident: &Ident, nodes_only: bool) -> Endpoint {
        match self.resolve(ident) {
            Endpoint::Unknown => {
                let name = ident_name(ident);
                if self.module.plain_fns.contains_key(&name) {
                    return Endpoint::Unknown;
                }
                let reserved: &[&str] = if nodes_only { &[] } else { &[START, END] };
                let candidates = self
                    .module
                    .nodes
                    .iter()
                    .map(|node| node.name.as_str())
                    .chain(reserved.iter().copied());
                match crate::suggest::did_you_mean(&name, candidates) {
                    Some(START) => Endpoint::Start,
                    Some(END) => Endpoint::End,
                    Some(close) => self
                        .index
                        .get(close)
                        .map_or(Endpoint::Unknown, |&i| Endpoint::Node(i)),
                    None => Endpoint::Unknown,
                }
            }
            known => known,
        }
    }

    /// Whether node `i` is a real node of the graph: not a repeated name (reported), and not
    /// named `START` or `END` (reported; no edge can name it).
    pub(crate) fn is_usable(&self, i: usize) -> bool {
        !self.is_duplicate(i)
            && self
                .nodes()
                .get(i)
                .is_some_and(|node| node.name != START && node.name != END)
    }

    /// The position in the module of the `edge!` at index `decl`.
    pub(crate) fn decl_position(&self, decl: usize) -> usize {
        self.module.edges.get(decl).map_or(0, |edge| edge.position)
    }

    /// Whether node `i` repeats the name of an earlier node.
    pub(crate) fn is_duplicate(&self, i: usize) -> bool {
        self.nodes()
            .get(i)
            .is_some_and(|node| self.index.get(&node.name) != Some(&i))
    }

    /// The routes leaving `from` (not its error edge), in declaration order.
    pub(crate) fn outgoing(&self, from: Endpoint) -> impl Iterator<Item = &Edge> {
        self.edges
            .iter()
            .filter(move |edge| edge.from == from && edge.kind == EdgeKind::Route)
    }

    /// The edges entering `to`, routes and error edges, in declaration order.
    pub(crate) fn incoming(&self, to: Endpoint) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |edge| edge.to == to)
    }

    /// The error edges leaving `from`, in declaration order (one, once the checks pass).
    pub(crate) fn error_edges(&self, from: Endpoint) -> impl Iterator<Item = &Edge> {
        self.edges
            .iter()
            .filter(move |edge| edge.from == from && edge.kind == EdgeKind::Error)
    }

    /// Where node `i` goes when it fails, if it has an error edge to a node.
    pub(crate) fn error_target(&self, i: usize) -> Option<usize> {
        self.error_edges(Endpoint::Node(i))
            .find_map(|edge| match edge.to {
                Endpoint::Node(j) => Some(j),
                _ => None,
            })
    }

    /// Whether any node has an error edge.
    pub(crate) fn has_error_edges(&self) -> bool {
        self.edges.iter().any(|edge| edge.kind == EdgeKind::Error)
    }

    /// The successors of node `i`, in the order its `edge!` lists them, without repeats.
    pub(crate) fn successors(&self, i: usize) -> Vec<&Edge> {
        let mut out: Vec<&Edge> = Vec::new();
        for edge in self.outgoing(Endpoint::Node(i)) {
            if !out
                .iter()
                .any(|seen| seen.to == edge.to && edge.to != Endpoint::Unknown)
            {
                out.push(edge);
            }
        }
        out
    }

    /// The node `START` leads to, when there is exactly one such edge.
    pub(crate) fn entry(&self) -> Option<usize> {
        let mut starts = self.outgoing(Endpoint::Start);
        match (starts.next(), starts.next()) {
            (
                Some(Edge {
                    to: Endpoint::Node(i),
                    ..
                }),
                None,
            ) => Some(*i),
            _ => None,
        }
    }
}

impl<'m> Graph<'m> {
    /// The join of region `r`: the successor of its first branch that has one, when it is a
    /// node.
    pub(crate) fn join_of(&self, r: usize) -> Option<usize> {
        let region = self.regions.get(r)?;
        region.branches.iter().find_map(|&branch| {
            self.outgoing(branch)
                .filter(|edge| edge.fan == Fan::One)
                .find_map(|edge| match edge.to {
                    Endpoint::Node(j) => Some(j),
                    _ => None,
                })
        })
    }

    /// What node `i` is in a parallel region, if anything: the first region that names it.
    pub(crate) fn role(&self, i: usize) -> Option<Role> {
        let node = Endpoint::Node(i);
        for (r, region) in self.regions.iter().enumerate() {
            if let Some(slot) = region.branches.iter().position(|&b| b == node) {
                return Some(Role::Branch { region: r, slot });
            }
        }
        (0..self.regions.len())
            .find(|&r| self.join_of(r) == Some(i))
            .map(|region| Role::Join { region })
    }

    /// Whether node `i` is the join of some region.
    pub(crate) fn is_join(&self, i: usize) -> bool {
        matches!(self.role(i), Some(Role::Join { .. }))
    }

    /// Whether node `i` is the branch of some region.
    pub(crate) fn is_branch(&self, i: usize) -> bool {
        matches!(self.role(i), Some(Role::Branch { .. }))
    }

    /// The region node `i` is the source of, if any.
    pub(crate) fn region_from(&self, i: usize) -> Option<usize> {
        self.regions
            .iter()
            .position(|region| region.source == Endpoint::Node(i))
    }

    /// What `#[node(migrate_from = [...])]` on node `i` migrates: `Some` for a branch node
    /// (its output) or the node before `each` (the map's items), with what it is called in
    /// messages and the current type when the tokens say it; `None` for any other node.
    pub(crate) fn migrated_type(&self, i: usize) -> Option<Option<(&'static str, &'m syn::Type)>> {
        let node = self.nodes().get(i)?;
        if self.is_branch(i) {
            return Some(node.produced_type().map(|ty| ("output", ty)));
        }
        let region = self.region_from(i)?;
        let region = self.regions.get(region).filter(|region| region.each)?;
        let item = region.branches.first().and_then(|&map| match map {
            Endpoint::Node(m) => self.nodes().get(m)?.extras().next().map(|p| &p.ty),
            _ => None,
        });
        Some(item.map(|ty| ("item", ty)))
    }
}

/// A name as the graph knows it: the identifier without `r#`.
pub(crate) fn ident_name(ident: &Ident) -> String {
    syn::ext::IdentExt::unraw(ident).to_string()
}

/// `send_email` → `SendEmail`: the variant naming node `send_email` in generated enums.
pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|part| !part.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The variant for the target `name` (`END` → `End`), as an identifier with `span`.
pub(crate) fn variant_ident(name: &str, span: Span) -> Ident {
    let camel = if name == END {
        "End".to_owned()
    } else {
        upper_camel(name)
    };
    // `Self` and other odd results are not valid variant names; never panic on them.
    syn::parse_str::<Ident>(&camel)
        .or_else(|_| syn::parse_str::<Ident>(&format!("{camel}_")))
        .map_or_else(
            |_| Ident::new("__GraphNode", span),
            |mut ident| {
                ident.set_span(span);
                ident
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_names() {
        assert_eq!(upper_camel("validate"), "Validate");
        assert_eq!(upper_camel("send_email"), "SendEmail");
        assert_eq!(upper_camel("step2"), "Step2");
        assert_eq!(upper_camel("_private"), "Private");
        assert_eq!(upper_camel("a__b"), "AB");
        assert_eq!(upper_camel("_1"), "_1");
        assert_eq!(upper_camel("type"), "Type");
        assert_eq!(variant_ident("END", Span::call_site()).to_string(), "End");
        assert_eq!(
            variant_ident("self_", Span::call_site()).to_string(),
            "Self_"
        );
        assert_eq!(
            variant_ident("charge", Span::call_site()).to_string(),
            "Charge"
        );
    }
}
