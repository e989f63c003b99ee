//! `GRAPH_HASH`: a stable 64-bit hash of a versioned, canonical text of the graph's structure,
//! combined with the state schema fingerprints of the interrupt input types.
//!
//! Checkpoints store the hash, and a runner refuses to resume a checkpoint of another graph, so
//! the hash must (a) change whenever the structure changes — a renamed node, an added or
//! removed edge, another interrupt input type — and (b) never change for anything else:
//! declaration order, the order of branch targets, node bodies, retry and timeout settings,
//! the compiler version, or how a type is spelled (`Approval`, `crate::Approval` and
//! `super::Approval` are one type). Hence our own canonical text (sorted, with our own token
//! printer rather than rustc's, whose spacing may change between releases) and FNV-1a 64
//! written out here rather than `DefaultHasher`, whose algorithm is not guaranteed stable.
//!
//! The text is line-based and each kind of fact has its own line prefix, so later additions
//! (error edges: `error-edge charge->refund`) add lines only to graphs that use them and leave
//! every existing hash unchanged.
//!
//! Two versions of the text exist:
//!
//! - **v1** (the first release) spelled the state type (`state Order`) and each interrupt
//!   input type (`node review interrupt Approval`) into the text, so `crate::Order` gave
//!   another hash than `Order`. Its hash is still computed: it goes into `ACCEPTED_GRAPHS`, so
//!   checkpoints saved by that release keep opening.
//! - **v2** (today's `GRAPH_HASH`) has no `state` line (the state has its own fingerprint,
//!   `STATE_SCHEMA`, stored in every checkpoint) and interrupt lines without a type
//!   (`node review interrupt`). A macro only sees tokens, never types, so the input types
//!   enter the hash through their `StateSchema` fingerprints, which only the compiler knows:
//!   `GRAPH_HASH` is a `const` expression that combines the text's hash with each interrupt
//!   node's name and its input's fingerprint (in node-name order), with the runtime's
//!   `Fingerprint`. Changing an input type's data model still changes the hash; renaming or
//!   moving the type does not.
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
//! Node renames (`#[node(renamed_from = "review")]`) describe older graphs: the same texts with
//! renamed nodes under their old names. Their hashes go into `ACCEPTED_GRAPHS` too.

use syn::Type;

use crate::model::{END, EdgeKind, Endpoint, Graph, Role, START};
use crate::parse::Fan;
use crate::parse::tokens_to_string;

/// The first line of the canonical text of the first release.
pub(crate) const VERSION_1: &str = "graph-runtime/v1";
/// The first line of today's canonical text. Bump it only for a deliberate, documented break
/// (and keep computing the older versions for `ACCEPTED_GRAPHS`).
pub(crate) const VERSION_2: &str = "graph-runtime/v2";

/// The kind that starts the `Fingerprint` combining a v2 text hash with the interrupt inputs.
pub(crate) const GRAPH_KIND: &str = "graph-runtime/v2 graph";
/// The kind that starts `INPUT_SCHEMA`'s `Fingerprint`.
pub(crate) const INPUT_KIND: &str = "graph-runtime/v2 input";

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
        text.push_str(&format!("state {}\n", tokens_to_string(state)));
    }
    let entry = graph.entry().map_or("", |i| names.of(i));
    text.push_str(&format!("entry {entry}\n"));

    let mut nodes: Vec<String> = graph
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, node)| match (node.input(), version) {
            (Some(input), Version::V1 { .. }) if node.args.interrupt => {
                format!("node {} interrupt {}", names.of(i), tokens_to_string(input))
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

    for line in nodes
        .iter()
        .chain(&edges)
        .chain(&error_edges)
        .chain(&fan_outs)
        .chain(&joins)
        .chain(&maps)
        .chain(&deadlines)
    {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// FNV-1a, 64-bit: tiny, fast, and fixed forever by its specification.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET_BASIS;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The hash of `version` of the graph and the canonical text it was computed from (for v2,
/// the hash of the text alone, before the input fingerprints are combined in).
pub(crate) fn text_hash(graph: &Graph, version: Version, names: &Names) -> (u64, String) {
    let text = canonical_text(graph, version, names);
    (fnv1a64(text.as_bytes()), text)
}

#[cfg(test)]
pub(crate) mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;
    use crate::ctxt::Ctxt;
    use crate::parse;

    fn hash_of(args: TokenStream, item: TokenStream) -> (u64, String) {
        let cx = Ctxt::new();
        let input = parse::workflow(&cx, args, item);
        let module = input.module.expect("module");
        let graph = Graph::build(&module);
        crate::check::check(&cx, &graph);
        if let Err(error) = cx.check() {
            panic!("unexpected errors: {error}");
        }
        let state = input.args.state.as_ref().expect("state");
        text_hash(&graph, Version::V1 { state }, &Names::current(&graph))
    }

    /// The v2 text hash (before the input fingerprints are combined in) and text.
    fn v2_of(args: TokenStream, item: TokenStream) -> (u64, String) {
        let cx = Ctxt::new();
        let input = parse::workflow(&cx, args, item);
        let module = input.module.expect("module");
        let graph = Graph::build(&module);
        crate::check::check(&cx, &graph);
        if let Err(error) = cx.check() {
            panic!("unexpected errors: {error}");
        }
        text_hash(&graph, Version::V2, &Names::current(&graph))
    }

    fn checkout() -> TokenStream {
        quote! {
            pub mod checkout {
                use super::*;
                edge!(START -> validate);
                edge!(validate -> review | charge);
                edge!(review -> charge | cancel);
                edge!(charge -> ship);
                edge!(ship -> END);
                edge!(cancel -> END);
                #[node] async fn validate(order: &mut Order) -> validate::Next { validate::Next::Charge }
                #[node(interrupt)] async fn review(order: &mut Order, decision: Approval) -> review::Next { review::Next::Cancel }
                #[node(retry = 3, timeout_ms = 5_000)] async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> { Ok(()) }
                #[node] async fn ship(order: &mut Order) {}
                #[node] async fn cancel(order: &mut Order) {}
            }
        }
    }

    #[test]
    fn fnv_reference_values() {
        // From the FNV specification's test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn canonical_text_of_checkout() {
        let (_, text) = hash_of(quote!(state = Order), checkout());
        assert_eq!(
            text,
            "graph-runtime/v1\n\
             workflow checkout\n\
             state Order\n\
             entry validate\n\
             node cancel\n\
             node charge\n\
             node review interrupt Approval\n\
             node ship\n\
             node validate\n\
             edge START->validate\n\
             edge cancel->END\n\
             edge charge->ship\n\
             edge review->cancel\n\
             edge review->charge\n\
             edge ship->END\n\
             edge validate->charge\n\
             edge validate->review\n"
        );
    }

    /// Pinned: if this fails, the canonical form changed and every stored checkpoint of every
    /// user would be refused as "another graph". Change it only with a new `VERSION`.
    #[test]
    fn pinned_hash_of_checkout() {
        let (hash, _) = hash_of(quote!(state = Order), checkout());
        assert_eq!(hash, PINNED_CHECKOUT_HASH, "got {hash:#018x}");
    }

    pub(crate) const PINNED_CHECKOUT_HASH: u64 = 0x2204_5b7d_596d_b6de;

    #[test]
    fn canonical_text_v2_of_checkout() {
        let (_, text) = v2_of(quote!(state = Order), checkout());
        assert_eq!(
            text,
            "graph-runtime/v2\n\
             workflow checkout\n\
             entry validate\n\
             node cancel\n\
             node charge\n\
             node review interrupt\n\
             node ship\n\
             node validate\n\
             edge START->validate\n\
             edge cancel->END\n\
             edge charge->ship\n\
             edge review->cancel\n\
             edge review->charge\n\
             edge ship->END\n\
             edge validate->charge\n\
             edge validate->review\n"
        );
    }

    /// Pinned like the v1 hash: `GRAPH_HASH` combines this value with the input types'
    /// fingerprints (tests/dsl.rs pins the combination).
    #[test]
    fn pinned_v2_text_hash_of_checkout() {
        let (hash, _) = v2_of(quote!(state = Order), checkout());
        assert_eq!(hash, PINNED_CHECKOUT_V2_TEXT_HASH, "got {hash:#018x}");
    }

    pub(crate) const PINNED_CHECKOUT_V2_TEXT_HASH: u64 = 0x12ba_e420_3155_f20d;

    fn with_review(review: TokenStream) -> TokenStream {
        quote! {
            pub mod checkout {
                use super::*;
                edge!(START -> review);
                edge!(review -> END);
                #review
            }
        }
    }

    /// `wait_ms` adds a `deadline` line (its value does not enter the text); a graph without
    /// one keeps its text, so every existing hash stays.
    #[test]
    fn a_deadline_adds_a_line_and_its_value_does_not() {
        let plain = v2_of(
            quote!(state = Order),
            with_review(quote!(
                #[node(interrupt)]
                async fn review(o: &mut Order, d: Approval) {}
            )),
        );
        let day = v2_of(
            quote!(state = Order),
            with_review(quote!(
                #[node(interrupt, wait_ms = 86_400_000)]
                async fn review(o: &mut Order, d: Option<Approval>) {}
            )),
        );
        let hour = v2_of(
            quote!(state = Order),
            with_review(quote!(
                #[node(interrupt, wait_ms = 3_600_000)]
                async fn review(o: &mut Order, d: Option<Approval>) {}
            )),
        );
        assert!(!plain.1.contains("deadline"), "{}", plain.1);
        assert_eq!(day.1, format!("{}deadline review\n", plain.1));
        assert_ne!(day.0, plain.0);
        assert_eq!(day, hour);
    }

    #[test]
    fn v2_ignores_how_types_are_spelled() {
        let base = v2_of(quote!(state = Order), checkout());
        for state in [
            quote!(state = crate::Order),
            quote!(state = self::Order),
            quote!(state = super::Order),
            quote!(state = Basket),
        ] {
            assert_eq!(v2_of(state, checkout()), base);
        }
        let spelled = rename(
            checkout(),
            "decision: Approval",
            "decision: crate::Approval",
        );
        assert_eq!(v2_of(quote!(state = Order), spelled.clone()), base);
        // Version 1 spelled them out.
        assert_ne!(
            hash_of(quote!(state = crate::Order), checkout()).0,
            hash_of(quote!(state = Order), checkout()).0
        );
        assert_ne!(
            hash_of(quote!(state = Order), spelled).0,
            hash_of(quote!(state = Order), checkout()).0
        );
    }

    fn graph_of(item: TokenStream, test: impl FnOnce(&Graph)) {
        let cx = Ctxt::new();
        let input = parse::workflow(&cx, quote!(state = Order), item);
        let module = input.module.expect("module");
        let graph = Graph::build(&module);
        crate::check::check(&cx, &graph);
        if let Err(error) = cx.check() {
            panic!("unexpected errors: {error}");
        }
        test(&graph);
    }

    #[test]
    fn renamed_nodes_describe_the_older_graphs() {
        // `review` was `approve`, then `approval`; `ship` was `deliver`.
        let item = rename(
            rename(
                checkout(),
                "#[node(interrupt)]",
                "#[node(interrupt, renamed_from = [\"approve\", \"approval\"])]",
            ),
            "#[node] async fn ship",
            "#[node(renamed_from = \"deliver\")] async fn ship",
        );
        graph_of(item, |graph| {
            let older: Vec<Vec<String>> = Names::older(graph).into_iter().map(|n| n.0).collect();
            let names = |review: &str, ship: &str| -> Vec<String> {
                ["validate", review, "charge", ship, "cancel"]
                    .map(str::to_owned)
                    .to_vec()
            };
            assert_eq!(
                older,
                [
                    names("review", "deliver"),
                    names("approve", "ship"),
                    names("approve", "deliver"),
                    names("approval", "ship"),
                    names("approval", "deliver"),
                ]
            );
            // The older graph's text is the graph as that release declared it.
            let before = Names(names("approve", "ship"));
            let (_, text) = text_hash(graph, Version::V2, &before);
            assert!(text.contains("node approve interrupt\n"), "{text}");
            assert!(text.contains("edge approve->cancel\n"), "{text}");
            assert!(text.contains("edge validate->approve\n"), "{text}");
            assert!(!text.contains("review"), "{text}");
            assert_eq!(before.interrupts(graph), [("approve".to_owned(), 0)]);
        });
        // Without renames, no older graph.
        graph_of(checkout(), |graph| assert!(Names::older(graph).is_empty()));
    }

    #[test]
    fn reordering_does_not_change_the_hash() {
        let reordered = quote! {
            pub mod checkout {
                #[node] async fn cancel(order: &mut Order) {}
                edge!(cancel -> END);
                edge!(ship -> END);
                #[node] async fn ship(order: &mut Order) { let _ = 1; }
                edge!(charge -> ship);
                edge!(review -> cancel | charge);
                edge!(validate -> charge | review);
                #[node(interrupt)] async fn review(o: &mut Order, d: Approval) -> review::Next { review::Next::Charge }
                #[node(retry = 9)] async fn charge(order: &mut Order) -> Result<(), E> { Ok(()) }
                #[node] async fn validate(order: &Order) -> validate::Next { validate::Next::Review }
                edge!(START -> validate);
                use super::*;
            }
        };
        assert_eq!(
            hash_of(quote!(state = Order), checkout()).0,
            hash_of(quote!(state = Order), reordered.clone()).0
        );
        assert_eq!(
            v2_of(quote!(state = Order), checkout()),
            v2_of(quote!(state = Order), reordered)
        );
        // Spacing in the state type does not matter either.
        assert_eq!(
            hash_of(quote!(state = Vec<u8>), checkout()).0,
            hash_of(syn::parse_str("state = Vec < u8 >").unwrap(), checkout()).0,
        );
    }

    #[test]
    fn structural_changes_change_the_hash() {
        let base = hash_of(quote!(state = Order), checkout()).0;
        let variants: Vec<(&str, TokenStream, TokenStream)> = vec![
            ("state type", quote!(state = Order2), checkout()),
            (
                "renamed node",
                quote!(state = Order),
                rename(checkout(), "ship", "deliver"),
            ),
            (
                "module name",
                quote!(state = Order),
                rename(checkout(), "checkout", "checkout2"),
            ),
            (
                "input type",
                quote!(state = Order),
                rename(checkout(), "Approval", "Decision"),
            ),
            (
                "removed edge",
                quote!(state = Order),
                rename(checkout(), "review -> charge | cancel", "review -> cancel"),
            ),
            (
                "added edge",
                quote!(state = Order),
                rename(checkout(), "ship -> END", "ship -> cancel | END"),
            ),
        ];
        for (what, args, item) in variants {
            let (hash, text) = hash_of(args, item);
            assert_ne!(hash, base, "{what} should change the hash:\n{text}");
        }
    }

    /// `checkout` with `refund` and an error edge from `charge` to it.
    fn checkout_with_error_edge() -> TokenStream {
        rename(
            checkout(),
            "edge!(cancel -> END);",
            "edge!(cancel -> END); edge!(charge -> refund on error); edge!(refund -> END); \
             #[node] async fn refund(order: &mut Order, ctx: &NodeCtx) {}",
        )
    }

    #[test]
    fn error_edges_have_their_own_lines() {
        let (_, text) = hash_of(quote!(state = Order), checkout_with_error_edge());
        assert!(
            text.ends_with(
                "edge validate->review\n\
                 error-edge charge->refund\n"
            ),
            "{text}"
        );
        // Without error edges, no such line: the pinned hash above stays as it was.
        let (_, text) = hash_of(quote!(state = Order), checkout());
        assert!(!text.contains("error-edge"), "{text}");
    }

    #[test]
    fn error_edges_change_the_hash() {
        // `cancel` is reachable without the error edge, so each variant is a valid graph.
        let with = rename(
            checkout(),
            "edge!(cancel -> END);",
            "edge!(cancel -> END); edge!(charge -> cancel on error);",
        );
        let edit = |from: &str, to: &str| rename(with.clone(), from, to);
        let base = hash_of(quote!(state = Order), with.clone()).0;
        let mut hashes = vec![("with", base)];
        for (what, item) in [
            ("removed", checkout()),
            (
                "retargeted",
                edit("charge -> cancel on error", "charge -> ship on error"),
            ),
            (
                "from another node",
                edit("charge -> cancel on error", "validate -> cancel on error"),
            ),
            (
                "added",
                edit(
                    "edge!(ship -> END);",
                    "edge!(ship -> END); edge!(ship -> cancel on error);",
                ),
            ),
            (
                "as a route",
                rename(checkout(), "charge -> ship", "charge -> ship | cancel"),
            ),
        ] {
            let (hash, text) = hash_of(quote!(state = Order), item);
            for (other, other_hash) in &hashes {
                assert_ne!(hash, *other_hash, "{what} vs {other}:\n{text}");
            }
            hashes.push((what, hash));
        }
        // Where the error edge is declared does not matter.
        let moved = edit("edge!(charge -> cancel on error);", "");
        let moved = rename(
            moved,
            "edge!(START -> validate);",
            "edge!(charge -> cancel on error); edge!(START -> validate);",
        );
        assert_eq!(hash_of(quote!(state = Order), moved).0, base);
    }

    /// The claims graph of the design: a fan-out with an interrupt branch, its join, a map
    /// and the map's join.
    pub(crate) fn claims() -> TokenStream {
        quote! {
            pub mod claims {
                use super::*;
                edge!(START -> intake);
                edge!(intake -> fraud & coverage & adjuster);
                edge!(fraud & coverage & adjuster -> decide);
                edge!(decide -> plan | END);
                edge!(plan -> each assess);
                edge!(assess -> total);
                edge!(total -> END);
                #[node] async fn intake(c: &mut Claim) {}
                #[node(retry = 3)] async fn fraud(c: &Claim, ctx: &NodeCtx) -> Result<FraudScore, ApiError> { unreachable!() }
                #[node] async fn coverage(c: &Claim) -> Coverage { unreachable!() }
                #[node(interrupt)] async fn adjuster(c: &Claim, note: AdjusterNote) -> AdjusterNote { note }
                #[node] async fn decide(c: &mut Claim, fraud: FraudScore, coverage: Coverage, adjuster: AdjusterNote) -> decide::Next { unreachable!() }
                #[node] async fn plan(c: &mut Claim) -> Vec<LineItem> { unreachable!() }
                #[node(concurrency = 8)] async fn assess(c: &Claim, item: LineItem) -> Result<Assessed, ApiError> { unreachable!() }
                #[node] async fn total(c: &mut Claim, assess: Vec<Assessed>) {}
            }
        }
    }

    #[test]
    fn canonical_text_of_a_parallel_graph() {
        let (_, text) = v2_of(quote!(state = Claim), claims());
        assert_eq!(
            text,
            "graph-runtime/v2\n\
             workflow claims\n\
             entry intake\n\
             node adjuster interrupt\n\
             node assess\n\
             node coverage\n\
             node decide\n\
             node fraud\n\
             node intake\n\
             node plan\n\
             node total\n\
             edge START->intake\n\
             edge decide->END\n\
             edge decide->plan\n\
             edge total->END\n\
             fan-out intake->fraud&coverage&adjuster\n\
             join each assess->total\n\
             join fraud&coverage&adjuster->decide\n\
             map plan->assess\n"
        );
    }

    /// Pinned like the checkout graph's: `GRAPH_HASH` combines it with the fingerprints of the
    /// interrupt input, the branch outputs and the map item (tests/parallel_dsl.rs pins that).
    #[test]
    fn pinned_v2_text_hash_of_claims() {
        let (hash, _) = v2_of(quote!(state = Claim), claims());
        assert_eq!(hash, PINNED_CLAIMS_V2_TEXT_HASH, "got {hash:#018x}");
    }

    pub(crate) const PINNED_CLAIMS_V2_TEXT_HASH: u64 = 0x24a9_620e_5c7a_944a;

    #[test]
    fn parallel_structure_changes_the_hash() {
        let base = v2_of(quote!(state = Claim), claims()).0;
        let same = [
            // Where the edges are declared, and how the join is spelled, do not matter.
            rename(
                claims(),
                "edge!(fraud & coverage & adjuster -> decide);",
                "edge!(fraud -> decide); edge!(coverage -> decide); edge!(adjuster -> decide);",
            ),
            rename(
                claims(),
                "#[node(concurrency = 8)]",
                "#[node(concurrency = 2)]",
            ),
        ];
        for item in same {
            assert_eq!(v2_of(quote!(state = Claim), item).0, base);
        }
        let changed = [
            // The slots' order is the branches' order.
            rename(
                claims(),
                "intake -> fraud & coverage & adjuster",
                "intake -> coverage & fraud & adjuster",
            ),
            rename(claims(), "plan -> each assess", "plan -> assess"),
        ];
        for item in changed {
            let cx = Ctxt::new();
            let input = parse::workflow(&cx, quote!(state = Claim), item);
            let module = input.module.expect("module");
            let graph = Graph::build(&module);
            let _ = cx.check();
            let (hash, text) = text_hash(&graph, Version::V2, &Names::current(&graph));
            assert_ne!(hash, base, "{text}");
        }
    }

    /// Textual replacement on a token stream's string form, re-parsed.
    fn rename(tokens: TokenStream, from: &str, to: &str) -> TokenStream {
        let text = tokens.to_string();
        let from: TokenStream = syn::parse_str(from).unwrap();
        let to: TokenStream = syn::parse_str(to).unwrap();
        let replaced = text.replace(&from.to_string(), &to.to_string());
        assert_ne!(replaced, text, "fixture did not contain {from}");
        syn::parse_str(&replaced).unwrap()
    }
}
