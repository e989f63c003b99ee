//! `GRAPH_HASH`: a stable 64-bit hash of a versioned, canonical text of the graph's structure.
//!
//! Checkpoints store the hash, and a runner refuses to resume a checkpoint of another graph, so
//! the hash must (a) change whenever the structure changes — a renamed node, an added or
//! removed edge, another interrupt input type, another state type — and (b) never change for
//! anything else: declaration order, the order of branch targets, node bodies, retry and
//! timeout settings, the compiler version. Hence our own canonical text (sorted, with our own
//! token printer rather than rustc's, whose spacing may change between releases) and FNV-1a 64
//! written out here rather than `DefaultHasher`, whose algorithm is not guaranteed stable.
//!
//! The text is line-based and each kind of fact has its own line prefix, so later additions
//! (error edges: `error-edge charge->refund`) add lines only to graphs that use them and leave
//! every existing hash unchanged.

use syn::Type;

use crate::model::{END, EdgeKind, Endpoint, Graph, START};
use crate::parse::tokens_to_string;

/// The first line of the canonical text. Bump it only for a deliberate, documented break.
pub(crate) const VERSION: &str = "graph-runtime/v1";

/// The canonical text of the graph (`workflow`, `state`, `entry`, sorted `node`, `edge` and
/// `error-edge` lines). `graph` has passed every check.
pub(crate) fn canonical_text(graph: &Graph, state: &Type) -> String {
    let mut text = String::new();
    text.push_str(VERSION);
    text.push('\n');
    text.push_str(&format!("workflow {}\n", graph.module.name));
    text.push_str(&format!("state {}\n", tokens_to_string(state)));
    let entry = graph
        .entry()
        .and_then(|i| graph.nodes().get(i))
        .map_or("", |node| node.name.as_str());
    text.push_str(&format!("entry {entry}\n"));

    let mut nodes: Vec<String> = graph
        .nodes()
        .iter()
        .map(|node| match node.input() {
            Some(input) if node.args.interrupt => {
                format!("node {} interrupt {}", node.name, tokens_to_string(input))
            }
            _ => format!("node {}", node.name),
        })
        .collect();
    nodes.sort();
    nodes.dedup();

    let name = |endpoint: Endpoint| -> String {
        match endpoint {
            Endpoint::Start => START.to_owned(),
            Endpoint::End => END.to_owned(),
            Endpoint::Node(i) => graph
                .nodes()
                .get(i)
                .map_or_else(String::new, |node| node.name.clone()),
            Endpoint::Unknown => String::new(),
        }
    };
    let lines = |kind: EdgeKind, prefix: &str| -> Vec<String> {
        let mut lines: Vec<String> = graph
            .edges
            .iter()
            .filter(|edge| edge.kind == kind)
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

    for line in nodes.iter().chain(&edges).chain(&error_edges) {
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

/// The hash and the canonical text it was computed from.
pub(crate) fn graph_hash(graph: &Graph, state: &Type) -> (u64, String) {
    let text = canonical_text(graph, state);
    (fnv1a64(text.as_bytes()), text)
}

#[cfg(test)]
mod tests {
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
        graph_hash(&graph, input.args.state.as_ref().expect("state"))
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
            hash_of(quote!(state = Order), reordered).0
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
