//! The expansion as a whole: generated items, error messages, and inputs that must never
//! panic.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::Ident;

use super::routes::SIMILAR_NAMES;
use super::*;
use crate::mermaid::mermaid_id;
use crate::parse;
use crate::pipeline::workflow;

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

/// The expansion of `item`, parsed back as a module.
fn expand_module(args: TokenStream, item: TokenStream) -> syn::ItemMod {
    let out = workflow(args, item);
    assert!(
        !out.to_string().contains("compile_error"),
        "unexpected errors: {out}"
    );
    syn::parse2(out).expect("the expansion is one module")
}

/// Every error message of an expansion that failed.
fn errors(args: TokenStream, item: TokenStream) -> Vec<String> {
    let out = workflow(args, item);
    let file: syn::File = syn::parse2(out).expect("the fallback parses");
    let mut messages = Vec::new();
    for item in file.items {
        if let Item::Macro(mac) = item
            && mac
                .mac
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "compile_error")
        {
            let lit: syn::LitStr = syn::parse2(mac.mac.tokens).expect("a message");
            messages.push(lit.value());
        }
    }
    messages
}

fn find<'a>(module: &'a syn::ItemMod, name: &str) -> Option<&'a Item> {
    let (_, items) = module.content.as_ref()?;
    items.iter().find(|item| match item {
        Item::Enum(e) => e.ident == name,
        Item::Struct(s) => s.ident == name,
        Item::Const(c) => c.ident == name,
        Item::Mod(m) => m.ident == name,
        _ => false,
    })
}

fn find_fn<'a>(module: &'a syn::ItemMod, name: &str) -> Option<&'a syn::ItemFn> {
    let (_, items) = module.content.as_ref()?;
    items.iter().find_map(|item| match item {
        Item::Fn(f) if f.sig.ident == name => Some(f),
        _ => None,
    })
}

fn variants(item: Option<&Item>) -> Vec<String> {
    match item {
        Some(Item::Enum(e)) => e.variants.iter().map(|v| v.ident.to_string()).collect(),
        Some(Item::Mod(m)) => m
            .content
            .as_ref()
            .and_then(|(_, items)| {
                items
                    .iter()
                    .find_map(|i| if let Item::Enum(e) = i { Some(e) } else { None })
            })
            .map(|e| e.variants.iter().map(|v| v.ident.to_string()).collect())
            .unwrap_or_default(),
        _ => panic!("not an enum or module: {item:?}"),
    }
}

#[test]
fn generates_the_contract_items() {
    let expanded = workflow(quote!(state = Order), checkout());
    let module: syn::ItemMod = syn::parse2(expanded.clone()).unwrap();
    assert_eq!(variants(find(&module, "validate")), ["Review", "Charge"]);
    assert_eq!(variants(find(&module, "review")), ["Charge", "Cancel"]);
    assert_eq!(variants(find(&module, "Input")), ["Review"]);
    assert_eq!(
        variants(find(&module, "__GraphCursor")),
        ["Validate", "Review", "Charge", "Ship", "Cancel"]
    );
    for name in ["GRAPH_HASH", "MERMAID", "NODES", "Workflow"] {
        assert!(find(&module, name).is_some(), "missing {name}");
    }
    // The node functions are kept, without `#[node]`; the edges are gone; no `use` added.
    let validate = find_fn(&module, "validate").expect("the node function is kept");
    assert!(validate.attrs.is_empty());
    let text = expanded.to_string();
    assert!(!text.contains("edge !"), "{text}");
    let (_, items) = module.content.as_ref().unwrap();
    assert_eq!(
        items.iter().filter(|i| matches!(i, Item::Use(_))).count(),
        1
    );
    // Runtime names go through `__private`.
    assert!(text.contains(":: graph_runtime :: __private :: Workflow for Workflow"));
    assert!(
        text.contains(". retry (3u32) . timeout_ms (5000u64)"),
        "{text}"
    );
    assert!(text.contains(". interrupt ()"));
}

/// The probes whose names rustc shows in its messages name the node, and the internal
/// `__graph_send` is gone.
#[test]
fn probes_are_named_for_the_messages() {
    let text = workflow(quote!(state = Order), checkout()).to_string();
    for name in [
        "trait NodeChargeReturnsItsRoute",
        "trait NodeChargeFailsWithAnError",
        "trait NodeChargeTakesTheState",
        "struct RunnerMayMoveNodesBetweenThreads",
        "RunnerMayMoveNodesBetweenThreads :: charge (charge (",
        "NodeChargeFailsWithAnError :: __graph_boxed",
        "NodeChargeTakesTheState :: __graph_state (& mut * state)",
    ] {
        assert!(text.contains(name), "missing `{name}` in {text}");
    }
    assert!(!text.contains("__graph_send"), "{text}");
    // Each message is attached where rustc reads it.
    assert!(text.contains(
        "the first parameter of node `charge` must be `&mut Order` or `&Order`, the workflow's state type (`state = Order`)"
    ));
    assert!(text.contains("cannot be the error type of node `charge`"));
}

/// A branching node's `Next` gets a second function of each name its derives and std's
/// blanket impls give it, in a module nothing can name: rustc then offers no `ne` for a
/// misspelt variant.
#[test]
fn next_enums_quiet_similar_method_names() {
    let module = expand_module(quote!(state = Order), checkout());
    let Some(Item::Mod(validate)) = find(&module, "validate") else {
        panic!("no `validate` module");
    };
    let Some(Item::Mod(quiet)) = find(validate, "__graph_similar_names") else {
        panic!("no similar-names module in {}", validate.to_token_stream());
    };
    let text = quiet.to_token_stream().to_string();
    for name in SIMILAR_NAMES {
        assert!(text.contains(&format!("fn {name} ()")), "{name}: {text}");
    }
    assert!(text.contains("impl NoSimilarNames for super :: Next"));
    // A node with one successor has an empty `Next`: nothing to misspell.
    let Some(Item::Mod(ship)) = find(&module, "ship") else {
        panic!("no `ship` module");
    };
    assert!(find(ship, "__graph_similar_names").is_none());
}

#[test]
fn no_interrupt_gives_an_empty_input() {
    let module = expand_module(
        quote!(state = S),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node]
                async fn a(s: &S) {}
            }
        ),
    );
    assert!(variants(find(&module, "Input")).is_empty());
    // A node with one successor gets no routes.
    assert!(variants(find(&module, "a")).is_empty());
}

/// The serde attributes on each `Input` variant, as text.
fn input_serde_attrs(module: &syn::ItemMod) -> Vec<(String, Vec<String>)> {
    let Some(Item::Enum(input)) = find(module, "Input") else {
        panic!("no `Input`");
    };
    input
        .variants
        .iter()
        .map(|v| {
            let serde = v
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("serde"))
                .map(|a| a.meta.to_token_stream().to_string())
                .collect();
            (v.ident.to_string(), serde)
        })
        .collect()
}

#[test]
fn input_variants_also_read_by_node_name() {
    let module = expand_module(quote!(state = Order), checkout());
    assert_eq!(
        input_serde_attrs(&module),
        [(
            "Review".to_owned(),
            vec!["serde (alias = \"review\")".to_owned()]
        )]
    );
    let text = module.to_token_stream().to_string();
    assert!(
        text.contains("pub const NODES : & 'static [& 'static str] = & [\"review\"]"),
        "{text}"
    );
    assert!(
        text.contains("Input :: Review (..) => \"review\""),
        "{text}"
    );
    assert!(text.contains("const INPUT_NODES : & 'static [& 'static str] = Input :: NODES"));
}

#[test]
fn a_node_named_like_its_variant_gets_no_alias() {
    // serde refuses an alias equal to the variant's own name.
    let module = expand_module(
        quote!(state = S),
        quote!(
            mod m {
                edge!(START -> Ask);
                edge!(Ask -> END);
                #[node(interrupt)]
                async fn Ask(s: &mut S, answer: String) {}
            }
        ),
    );
    assert_eq!(input_serde_attrs(&module), [("Ask".to_owned(), vec![])]);
}

#[test]
fn crate_override() {
    let out = workflow(
        quote!(state = S, crate = ::my_rt),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
    )
    .to_string();
    assert!(out.contains(":: my_rt :: __private :: Workflow"));
    assert!(!out.contains(":: graph_runtime ::"), "{out}");
    assert!(out.contains("\"::my_rt::__private::serde\""));
    // Serde style, as a string.
    let out = workflow(
        quote!(state = S, crate = "my_rt"),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
    )
    .to_string();
    assert!(out.contains("my_rt :: __private :: Workflow"));
}

#[test]
fn nested_paths_reach_the_runtime() {
    let path = |args: TokenStream| {
        let cx = crate::ctxt::Ctxt::new();
        let args = parse::workflow_args(&cx, args);
        cx.check().unwrap();
        paths::nested_private(&args.krate).to_string()
    };
    assert_eq!(path(quote!(state = S)), ":: graph_runtime :: __private");
    assert_eq!(
        path(quote!(state = S, crate = crate::rt)),
        "crate :: rt :: __private"
    );
    assert_eq!(
        path(quote!(state = S, crate = rt)),
        "super :: rt :: __private"
    );
    assert_eq!(
        path(quote!(state = S, crate = self::rt)),
        "super :: rt :: __private"
    );
    assert_eq!(
        path(quote!(state = S, crate = super::rt)),
        "super :: super :: rt :: __private"
    );
}

#[test]
fn mermaid_text() {
    let cx = crate::ctxt::Ctxt::new();
    let input = parse::workflow(&cx, quote!(state = Order), checkout());
    cx.check().unwrap();
    let module = input.module.unwrap();
    let graph = Graph::build(&module);
    assert_eq!(
        mermaid(&graph),
        "flowchart TD\n    START([START])\n    validate[validate]\n    review{{review}}\n    charge[charge]\n    \
         ship[ship]\n    cancel[cancel]\n    END([END])\n    START --> validate\n    validate --> review\n    \
         validate --> charge\n    review --> charge\n    review --> cancel\n    charge --> ship\n    \
         ship --> END\n    cancel --> END\n"
    );
}

/// A module with nodes `charge` (plain), `ship`, `refund` and `review` (interrupt), the
/// edges `edges`, and no other edge.
fn with_edges(edges: TokenStream) -> TokenStream {
    quote! {
        mod shop {
            #edges
            #[node]
            async fn charge(o: &mut Order) -> Result<(), E> { Ok(()) }
            #[node]
            async fn ship(o: &mut Order) {}
            #[node]
            async fn refund(o: &mut Order, ctx: &NodeCtx) {}
            #[node(interrupt)]
            async fn review(o: &mut Order, d: Approval) {}
            fn helper() {}
        }
    }
}

/// The edges every case shares: everything reachable, everything finishes.
fn base_edges() -> TokenStream {
    quote! {
        edge!(START -> charge);
        edge!(charge -> ship);
        edge!(ship -> review);
        edge!(review -> refund);
        edge!(refund -> END);
    }
}

#[test]
fn error_edges_expand() {
    let base = base_edges();
    let out = workflow(
        quote!(state = Order),
        with_edges(quote!(#base edge!(charge -> refund on error);)),
    );
    let text = out.to_string();
    assert!(!text.contains("compile_error"), "{text}");
    assert!(
        text.contains(
            "fn error_route (cursor : __GraphCursor) -> :: core :: option :: Option < __GraphCursor > { match cursor { __GraphCursor :: Charge => :: core :: option :: Option :: Some (__GraphCursor :: Refund) ,"
        ),
        "{text}"
    );
    // The run loop hands back to the runner after an error node.
    assert!(text.contains(". failure () . is_none ()"), "{text}");
    // The error target is not a route of `charge`: it has one successor, so no `Next`.
    let module: syn::ItemMod = syn::parse2(out).unwrap();
    assert!(variants(find(&module, "charge")).is_empty());

    // Without error edges, neither is generated.
    let text = workflow(quote!(state = Order), with_edges(base_edges())).to_string();
    assert!(!text.contains("error_route"), "{text}");
    assert!(!text.contains("failure"), "{text}");
}

#[test]
fn mermaid_draws_error_edges_dotted() {
    let base = base_edges();
    let item = with_edges(quote!(#base edge!(charge -> refund on error);));
    let cx = crate::ctxt::Ctxt::new();
    let input = parse::workflow(&cx, quote!(state = Order), item);
    cx.check().unwrap();
    let module = input.module.unwrap();
    let graph = Graph::build(&module);
    let text = mermaid(&graph);
    assert!(
        text.ends_with("    refund --> END\n    charge -. on error .-> refund\n"),
        "{text}"
    );
    assert_eq!(text.matches("on error").count(), 1, "{text}");
}

/// Each misuse of an error edge gives exactly its own error.
#[test]
fn error_edge_mistakes() {
    let base = base_edges();
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(edge!(charge -> refund | ship on error);),
            "`on error` follows a single target, in an `edge!` of its own: write `edge!(charge -> refund);` and `edge!(charge -> ship on error);`",
        ),
        (
            quote!(edge!(charge -> END on error);),
            "`END` cannot be the target of an error edge: an error edge must lead to a node that can read `ctx.failure()`; to end the run when `charge` fails, declare no error edge (the run then ends with `Error::Node`)",
        ),
        (
            quote!(edge!(charge -> START on error);),
            "`START` cannot be the target of an error edge: an error edge must lead to a node that can read `ctx.failure()`; to end the run when `charge` fails, declare no error edge (the run then ends with `Error::Node`)",
        ),
        (
            quote!(edge!(charge -> refund on error); edge!(charge -> ship on error);),
            "node `charge` already has an error edge, to `refund`: a failure goes to one place; remove one of them, and branch inside the error node if failures need different handling",
        ),
        (
            quote!(edge!(charge -> refund on error); edge!(charge -> refund on error);),
            "duplicate error edge: `charge` already leads to `refund` on error; remove this `edge!`",
        ),
        (
            quote!(edge!(charge -> refnud on error);),
            "unknown node `refnud` in `edge!`; did you mean `refund`?",
        ),
        (
            // `end` is close to `END`, but an error edge only leads to nodes.
            quote!(edge!(charge -> end on error);),
            "unknown node `end` in `edge!`: declare `#[node] async fn end(…)` in this module, or fix the name",
        ),
        (
            quote!(edge!(charge -> refund on failure);),
            "expected `on error`, found `on failure`: an error edge reads `edge!(charge -> refund on error)`",
        ),
        (
            quote!(edge!(charge -> refund on);),
            "expected `on error`: an error edge reads `edge!(charge -> refund on error)`",
        ),
        (
            quote!(edge!(charge -> refund on error | ship);),
            "unexpected `|` after `on error`: an error edge has one target and ends there, as in `edge!(charge -> refund on error)`",
        ),
        (
            quote!(edge!(charge -> refund or error);),
            "unexpected `or` in `edge!`; expected `|` and another target, `on error`, or the end of the edge",
        ),
        (
            quote!(edge!(START -> refund on error);),
            "`START` cannot fail, so it has no error edge: an error edge leaves a node, as in `edge!(charge -> refund on error)`",
        ),
        (
            quote!(edge!(END -> refund on error);),
            "`END` cannot fail, so it has no error edge: an error edge leaves a node, as in `edge!(charge -> refund on error)`",
        ),
        (
            quote!(edge!(helper -> refund on error);),
            "`helper` is a function but not a node: mark it `#[node]` (as an `async fn` taking the state) to use it in `edge!`",
        ),
        (
            quote!(edge!(chrage -> refund on error);),
            "unknown node `chrage` in `edge!`; did you mean `charge`?",
        ),
        (
            quote!(edge!(charge -> charge on error);),
            "node `charge` cannot be its own error node: that would retry it without end; to retry it, use `#[node(retry = 3)]`, and lead the error edge to a node that handles the failure",
        ),
    ];
    for (edge, want) in cases {
        let messages = errors(quote!(state = Order), with_edges(quote!(#base #edge)));
        assert_eq!(messages, [want], "for {edge}");
    }
    // Fine: an error edge from or to an interrupt node, or back to an earlier node.
    for edge in [
        quote!(edge!(review -> refund on error);),
        quote!(edge!(charge -> review on error);),
        quote!(edge!(refund -> ship on error);),
    ] {
        let messages = errors(quote!(state = Order), with_edges(quote!(#base #edge)));
        assert!(messages.is_empty(), "{messages:#?}");
    }
}

#[test]
fn error_edges_in_the_graph_rules() {
    let nodes = |edges: TokenStream| {
        quote! {
            mod m {
                #edges
                #[node] async fn a(s: &mut S) -> Result<(), E> { Ok(()) }
                #[node] async fn b(s: &mut S) {}
                #[node] async fn c(s: &mut S) {}
            }
        }
    };
    let check = |edges: TokenStream| errors(quote!(state = S), nodes(edges));
    // A node reached only through an error edge is reachable.
    assert_eq!(
        check(quote! {
            edge!(START -> a); edge!(a -> END); edge!(a -> b on error);
            edge!(b -> c); edge!(c -> END);
        }),
        Vec::<String>::new()
    );
    // An error node must itself lead to `END`.
    assert_eq!(
        check(quote! {
            edge!(START -> a); edge!(a -> END); edge!(a -> b on error);
            edge!(b -> c); edge!(c -> b);
        }),
        [
            "`END` cannot be reached from node `b` (entered by `edge!(a -> b on error)`): every path from it stays among `b`, `c`; add a way out, e.g. `edge!(c -> b | END)`"
        ]
    );
    // Success must finish too: an error edge is no way out of a loop.
    assert_eq!(
        check(quote! {
            edge!(START -> a); edge!(a -> a); edge!(a -> b on error);
            edge!(b -> END); edge!(c -> END);
        }),
        [
            "`END` cannot be reached from node `a` (entered by `edge!(START -> a)`): its only edge loops back to `a`; add a way out, e.g. `edge!(a -> a | END)`",
            "node `c` cannot be reached from `START`: no edge leads to it; add it as a target of a reachable node's `edge!`, or remove it",
        ]
    );
    // A node whose only outgoing edge is an error edge has no way out on success.
    assert_eq!(
        check(quote! {
            edge!(START -> a); edge!(a -> b on error); edge!(b -> c); edge!(c -> END);
        }),
        [
            "node `a` has only an error edge (`edge!(a -> b on error)`, taken when it fails), so the run would not know where to go when it succeeds: add `edge!(a -> END)` or `edge!(a -> next_node)`"
        ]
    );
    // Every graph error in one build, error edges included.
    let messages = check(quote! {
        edge!(START -> a);
        edge!(a -> b on error);
        edge!(a -> c on error);
        edge!(b -> END on error);
        edge!(b -> END);
        edge!(c -> nowhere);
    });
    assert_eq!(
        messages,
        [
            "node `a` already has an error edge, to `b`: a failure goes to one place; remove one of them, and branch inside the error node if failures need different handling",
            "`END` cannot be the target of an error edge: an error edge must lead to a node that can read `ctx.failure()`; to end the run when `b` fails, declare no error edge (the run then ends with `Error::Node`)",
            "unknown node `nowhere` in `edge!`: declare `#[node] async fn nowhere(…)` in this module, or fix the name",
            "node `a` has only an error edge (`edge!(a -> b on error)`, taken when it fails), so the run would not know where to go when it succeeds: add `edge!(a -> END)` or `edge!(a -> next_node)`",
        ],
    );
}

/// A module whose node `b` carries `node_args`.
fn two_nodes(node_args: TokenStream) -> TokenStream {
    quote! {
        mod m {
            edge!(START -> a);
            edge!(a -> b);
            edge!(b -> END);
            #[node]
            async fn a(s: &mut S) {}
            #[node(#node_args)]
            async fn b(s: &mut S) {}
        }
    }
}

#[test]
fn durable_items_expand() {
    let text = workflow(
        quote!(
            state = S,
            migrate_from = [S1, old::S2],
            accept_graphs = [0x2204_5b7d_596d_b6de, 7u64]
        ),
        two_nodes(quote!(checkpoint = always, renamed_from = ["c", "d"])),
    )
    .to_string();
    assert!(!text.contains("compile_error"), "{text}");
    assert!(
        text.contains("pub const STATE_SCHEMA : u64 = < S as :: graph_runtime :: __private :: StateSchema > :: SCHEMA ;"),
        "{text}"
    );
    assert!(
        text.contains(". checkpoint (:: graph_runtime :: __private :: NodeCheckpoint :: Always) . renamed_from (& [\"c\" , \"d\"])"),
        "{text}"
    );
    assert!(
        text.contains(
            "\"b\" | \"c\" | \"d\" => :: core :: option :: Option :: Some (__GraphCursor :: B)"
        ),
        "{text}"
    );
    assert!(text.contains("const __GRAPH_MIGRATES_FROM : [u64 ; 2usize] = [< S1 as :: graph_runtime :: __private :: StateSchema > :: SCHEMA , < old :: S2 as"), "{text}");
    assert!(
        text.contains(":: graph_runtime :: __private :: decode_prefix :: < old :: S2 >"),
        "{text}"
    );
    assert!(
        text.contains(
            "< S as __graph_probes :: StateMigratesFrom < old :: S2 >> :: __graph_migrate (__graph_old)"
        ),
        "{text}"
    );
    // One assertion against the state per type, one per pair.
    assert_eq!(text.matches(":: core :: assert !").count(), 3, "{text}");
    // The listed hash once, with the first release's hash and the two older graphs' hashes.
    assert_eq!(text.matches("0x2204_5b7d_596d_b6de").count(), 1, "{text}");
    assert!(
        text.contains(", 7u64") || text.contains(", 0x0000_0000_0000_0007"),
        "{text}"
    );
    let accepted = text.split("const ACCEPTED_GRAPHS").nth(1).unwrap();
    let accepted = accepted.split(';').next().unwrap();
    assert_eq!(
        accepted.matches("Fingerprint :: new").count(),
        2,
        "{accepted}"
    );
    // The first release's, each older graph's first-release text, and the listed ones.
    assert_eq!(accepted.matches("= & [0x").count(), 1, "{accepted}");
    assert_eq!(accepted.matches(" , 0x").count(), 2 + 2, "{accepted}");

    // `never`; no migration: the trait's default `migrate_state`.
    let text = workflow(quote!(state = S), two_nodes(quote!(checkpoint = never))).to_string();
    assert!(text.contains("NodeCheckpoint :: Never"), "{text}");
    assert!(!text.contains("fn migrate_state"), "{text}");
    assert!(
        text.contains("const __GRAPH_MIGRATES_FROM : [u64 ; 0usize] = [] ;"),
        "{text}"
    );
}

#[test]
fn durable_argument_mistakes() {
    let node_cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(checkpoint = sometimes),
            "unknown checkpoint setting `sometimes`; expected `checkpoint = always` (save after this node whatever the runner's policy) or `checkpoint = never` (do not save after it)",
        ),
        (
            quote!(renamed_from = "a"),
            "`a` is a node of this graph, so it cannot be an old name of `b`: checkpoints saved at `a` resume at `a`; remove `a` from `renamed_from`, or rename node `a`",
        ),
        (
            quote!(renamed_from = ["c", "c"]),
            "`c` is listed twice in `renamed_from` of node `b`; remove this one",
        ),
        (
            quote!(renamed_from = "not a name"),
            "`renamed_from` takes the node's old name, which must be a plain identifier other than `START` or `END`, not `not a name`: write the name of the old `#[node]` function, e.g. `renamed_from = \"review\"`",
        ),
        (
            quote!(renamed_from = "END"),
            "`renamed_from` takes the node's old name, which must be a plain identifier other than `START` or `END`, not `END`: write the name of the old `#[node]` function, e.g. `renamed_from = \"review\"`",
        ),
        (
            quote!(renamed_from = review),
            "`renamed_from` takes the old node name as a string: `renamed_from = \"old_name\"` or `renamed_from = [\"a\", \"b\"]`",
        ),
        (
            quote!(renamed),
            "unknown key `renamed` in `#[node]`; did you mean `renamed_from`?",
        ),
    ];
    for (args, want) in node_cases {
        assert_eq!(
            errors(quote!(state = S), two_nodes(args.clone())),
            [want],
            "for {args}"
        );
    }
    // One old name on two nodes.
    let item = quote! {
        mod m {
            edge!(START -> a);
            edge!(a -> b);
            edge!(b -> END);
            #[node(renamed_from = "old")]
            async fn a(s: &mut S) {}
            #[node(renamed_from = "old")]
            async fn b(s: &mut S) {}
        }
    };
    assert_eq!(
        errors(quote!(state = S), item),
        [
            "`old` is already an old name of node `a`: a checkpoint saved at `old` can resume at one node only; remove it from one of them"
        ]
    );

    let arg_cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(state = S, migrate_from = [A, B, A]),
            "`A` is listed twice in `migrate_from`; remove this one",
        ),
        (
            quote!(state = S, migrate_from = [S]),
            "`S` is the state type itself: its checkpoints open without a migration; remove it from `migrate_from`",
        ),
        (
            quote!(state = S, migrate_from = A),
            "`migrate_from` takes a list in brackets: `migrate_from = [OrderV1, OrderV2]`",
        ),
        (
            quote!(state = S, accept_graphs = [OLD_HASH]),
            "`accept_graphs` lists graph hashes as integer literals, not `OLD_HASH`: copy the value of the older build's `GRAPH_HASH` (its rustdoc shows it), e.g. `accept_graphs = [0x2204_5b7d_596d_b6de]`",
        ),
        (
            quote!(state = S, accept_graphs = [1u8]),
            "`accept_graphs` lists graph hashes as integer literals, not `1u8`: copy the value of the older build's `GRAPH_HASH` (its rustdoc shows it), e.g. `accept_graphs = [0x2204_5b7d_596d_b6de]`",
        ),
        (
            quote!(state = S, from = [A]),
            "unknown key `from` in `#[workflow]`; expected `state = YourState`, `migrate_from = [OldState]`, `accept_graphs = [0x…]` or `crate = path`",
        ),
        (
            quote!(state = S, accept_graph = [1]),
            "unknown key `accept_graph` in `#[workflow]`; did you mean `accept_graphs`?",
        ),
    ];
    for (args, want) in arg_cases {
        assert_eq!(
            errors(args.clone(), two_nodes(quote!())),
            [want],
            "for {args}"
        );
    }
    // Every combination of old names is an older graph: their number is bounded.
    let chain = |count: usize| -> TokenStream {
        let names: Vec<Ident> = (0..count).map(|i| format_ident!("n{i}")).collect();
        let olds: Vec<String> = (0..count).map(|i| format!("old{i}")).collect();
        let (first, last) = (&names[0], &names[count - 1]);
        let pairs = names.windows(2).map(|w| {
            let (a, b) = (&w[0], &w[1]);
            quote!(edge!(#a -> #b);)
        });
        quote! {
            mod m {
                edge!(START -> #first);
                #(#pairs)*
                edge!(#last -> END);
                #(#[node(renamed_from = #olds)] async fn #names(s: &mut S) {})*
            }
        }
    };
    assert!(errors(quote!(state = S), chain(6)).is_empty());
    assert_eq!(
        errors(quote!(state = S), chain(7)),
        [format!(
            "the old names in `renamed_from` describe more than {} older graphs (one per combination); keep the names of the releases whose sessions may still wait, and list older graph hashes in `#[workflow(accept_graphs = [...])]`",
            crate::check::MAX_RENAMED_GRAPHS
        )]
    );
    // Every such error in one build, with the graph's.
    let messages = errors(
        quote!(state = S, migrate_from = [A, A], accept_graphs = [x]),
        quote! {
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node(checkpoint = maybe, renamed_from = "a")]
                async fn a(s: &mut S) {}
                #[node]
                async fn lost(s: &mut S) {}
            }
        },
    );
    assert_eq!(messages.len(), 5, "{messages:#?}");
}

#[test]
fn mermaid_keywords_are_escaped() {
    assert_eq!(mermaid_id("end"), "__end");
    assert_eq!(mermaid_id("subgraph"), "__subgraph");
    assert_eq!(mermaid_id("charge"), "charge");
}

#[test]
fn all_graph_errors_in_one_build() {
    let messages = errors(
        quote!(state = Order),
        quote!(
            mod checkout {
                edge!(START -> validate);
                edge!(validate -> chrage | END);
                edge!(refund -> END);
                #[node]
                async fn validate(o: &mut Order) -> validate::Next {
                    validate::Next::End
                }
                #[node]
                async fn charge(o: &mut Order) {}
                #[node]
                async fn refund(o: &mut Order) {}
                #[node]
                async fn audit(o: &mut Order) {}
                #[node]
                fn sync(o: &mut Order) {}
            }
        ),
    );
    let expected = [
        "node `sync` must be an `async fn`",
        "unknown node `chrage` in `edge!`; did you mean `charge`?",
        "node `charge` has no outgoing edge",
        "node `refund` cannot be reached from `START`",
        "node `audit` is not connected to the graph",
        "node `sync` is not connected to the graph",
    ];
    for want in expected {
        assert!(
            messages.iter().any(|m| m.starts_with(want)),
            "missing {want:?} in {messages:#?}"
        );
    }
    assert_eq!(messages.len(), expected.len(), "{messages:#?}");
}

#[test]
fn error_messages_follow_the_style() {
    // Lowercase, no trailing period, code in backticks.
    let cases = [
        quote!(
            mod m {
                edge!(START -> a);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(a -> END);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(START -> b);
                edge!(a -> END);
                edge!(b -> END);
                #[node]
                async fn a(s: &mut S) {}
                #[node]
                async fn b(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> a);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node(bogus)]
                async fn a(s: S, x: u8) {}
            }
        ),
        quote!(
            mod m {
                edge!(START => a, b -> c);
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                edge!(a -> END);
                #[node]
                async fn a(s: &mut S) {}
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
    ];
    for item in cases {
        let messages = errors(quote!(state = S), item.clone());
        assert!(!messages.is_empty(), "no error for {item}");
        for message in messages {
            let first = message.chars().next().unwrap();
            assert!(
                !first.is_uppercase() || message.starts_with("`END`"),
                "{message}"
            );
            assert!(!message.ends_with('.'), "{message}");
            assert!(message.contains('`'), "{message}");
        }
    }
}

#[test]
fn dead_end_names_the_trap() {
    let messages = errors(
        quote!(state = S),
        quote!(
            mod m {
                edge!(START -> plan);
                edge!(plan -> ask | END);
                edge!(ask -> answer);
                edge!(answer -> ask);
                #[node]
                async fn plan(s: &mut S) -> plan::Next {
                    plan::Next::Ask
                }
                #[node]
                async fn ask(s: &mut S) {}
                #[node]
                async fn answer(s: &mut S) {}
            }
        ),
    );
    assert_eq!(
        messages,
        [
            "`END` cannot be reached from node `ask` (entered by `edge!(plan -> ask)`): every path from it stays among `ask`, `answer`; add a way out, e.g. `edge!(answer -> ask | END)`"
        ]
    );
}

#[test]
fn node_outside_a_workflow_keeps_the_function() {
    let out = node_outside_workflow(
        quote!(),
        quote!(
            async fn a(s: &mut S) {}
        ),
    )
    .to_string();
    assert!(out.contains("compile_error"));
    assert!(out.contains("async fn a"));
}

/// Garbage in, spanned errors out: never a panic, whatever the token streams.
#[test]
fn garbage_never_panics() {
    let args = [
        quote!(),
        quote!(state),
        quote!(state =),
        quote!(state = ,),
        quote!(= Order),
        quote!(state = Order state = Order),
        quote!(state = Order, state = Other, crate = , crate = 1),
        quote!(Order),
        quote!("Order"),
        quote!(state = Vec < u8, crate = x),
        quote!(,,,),
        quote!(state = Order, crate = "not a path!"),
        quote!(state = [u8; 3], crate = ::a::b,),
        quote!(state = fn() -> !),
        quote!(state = impl Trait),
        quote!(state = S, migrate_from = [], accept_graphs = []),
        quote!(state = S, migrate_from = [A, , B], accept_graphs = [1, "x", 0x1_u32]),
        quote!(
            state = S,
            migrate_from = [S, S, S],
            accept_graphs = [18446744073709551616]
        ),
        quote!(state = S, migrate_from, accept_graphs =),
        quote!(state = S, migrate_from = A, accept_graphs = 1),
    ];
    let items = [
        // Parallel edges, broken every way.
        quote!(
            mod m {
                edge!(& a -> b);
                edge!(a & -> b);
                edge!(a -> & b);
                edge!(a -> b &);
                edge!(a -> each);
                edge!(a -> each each);
                edge!(-> each b);
                edge!(a & b & -> c);
                edge!(a -> b & c & d -> e -> f);
                edge!(a && b -> c | d);
                edge!(START & END -> START & END);
                edge!(END -> each START);
                edge!(a -> each b on error);
                edge!(a -> b & START | END);
                #[node(concurrency)]
                async fn a(s: &S, x: u8, y: u8) -> Vec<u8> {}
                #[node(concurrency = -1, interrupt)]
                async fn b(s: &mut S, (p, q): (u8, u8)) {}
                #[node(concurrency = 0)]
                async fn c(s: &S, ctx: &NodeCtx, b: Result<u8, Failure>) {}
                #[node]
                async fn d(s: &S, _: Vec<u8>, d: Vec<Result<u8>>) {}
            }
        ),
        quote!(),
        quote!(mod),
        quote!(mod m),
        quote!(
            mod m;
        ),
        quote!(
            mod m {}
        ),
        quote!(
            fn f() {}
        ),
        quote!(
            struct S;
        ),
        quote!(
            mod m {
                edge!();
                edge!(->);
                edge!(| |);
                edge!(START);
                edge!(START ->);
                edge!(START -> |);
            }
        ),
        quote!(
            mod m {
                edge!(a -> b ->);
                edge!(a -> b -> -> c);
                edge!(a => => b);
                edge!(a -> b,);
                edge!(a -> b, ,);
            }
        ),
        quote!(
            mod m {
                edge!(1 -> 2);
                edge!("a" -> "b");
                edge!(a::b -> ::c);
                edge!(a -> b on);
                edge!(a -> b on error);
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                edge!(a -> on error);
                edge!(a -> b on error on error);
                edge!(a -> b | on error);
                edge!(a -> b on 1);
                edge!(a -> b on error,);
                edge!(a -> b -> c on error);
                edge!(a on error);
                edge!(on error);
                edge!(END -> START on error);
                edge!(START -> END on error);
                edge!(a -> a on error);
                edge!(a -> r#type on r#error);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> b on error);
                edge!(b -> a on error);
                #[node]
                async fn a(s: &mut S) {}
                #[node(interrupt)]
                async fn b(s: &mut S, i: u8) {}
            }
        ),
        quote!(
            mod m {
                edge![START -> a];
                edge! {a -> END}
                #[node]
                async fn a() {}
            }
        ),
        quote!(
            mod m {
                #[node(interrupt = 1, retry, retry = x, timeout_ms = 0, timeout_ms = -1, jitter = 3, backoff_ms = 9, backoff_max_ms = 1, = , 7)]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> b | END);
                edge!(b -> END);
                #[node(checkpoint, checkpoint = , checkpoint = 1, checkpoint = "always", renamed_from = ["b", "", "a", 1], renamed_from)]
                async fn a(s: &mut S) -> a::Next {}
                #[node(renamed_from = ["x", "x", "r#y", "START"], checkpoint = always always)]
                async fn b(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                #[node = "x"]
                async fn a(self) {}
                #[node]
                #[node]
                async fn b(&self, x: u8) {}
            }
        ),
        quote!(
            mod m {
                #[node]
                struct S;
                #[node]
                const C: u8 = 0;
                #[node]
                impl S {
                    #[node]
                    fn f() {}
                }
            }
        ),
        quote!(
            mod m {
                #[node(interrupt)]
                async fn a(s: &mut S, ctx: NodeCtx, ctx2: &mut NodeCtx, i: &str, j: impl T, k: _) {}
            }
        ),
        quote!(
            mod m {
                #[node]
                async unsafe extern "C" fn a<T, const N: usize>(s: &mut S, ...)
                where
                    T: Copy,
                {
                }
            }
        ),
        quote!(
            mod m {
                #[node]
                const async fn START(s: &mut S) {}
                #[node]
                async fn END() {}
                #[node]
                async fn r#type(s: &S) {}
            }
        ),
        quote!(
            mod m {
                edge!(START -> a | b | END);
                edge!(END -> START);
                edge!(a -> a | a);
                #[node]
                async fn a(s: &mut S) {}
            }
        ),
        quote!(
            mod m {
                struct Input;
                const GRAPH_HASH: u8 = 0;
                mod a {}
                #[node]
                async fn a(s: &mut S) {}
                edge!(START -> a);
                edge!(a -> END);
            }
        ),
        quote!(
            mod m {
                #[node]
                async fn a_b(s: &mut S) -> a_b::Next {}
                #[node]
                async fn a__b(s: &mut S) {}
                #[node]
                async fn end(s: &mut S) {}
                edge!(START -> a_b);
                edge!(a_b -> a__b | end | END);
                edge!(a__b -> END);
                edge!(end -> END);
            }
        ),
        quote!(
            mod m {
                #[cfg(x)]
                #[node]
                async fn a(s: &mut S) {}
                #[cfg(y)]
                edge!(START -> a);
                #[doc = "x"]
                #[allow(x)]
                edge!(a -> END);
            }
        ),
    ];
    for args in &args {
        for item in &items {
            let out = workflow(args.clone(), item.clone());
            // The output is well-formed Rust tokens (a fallback or an expansion).
            let _: syn::File = syn::parse2(out.clone()).unwrap_or_else(|e| panic!("{e}: {out}"));
        }
    }
    for args in &args {
        let _ = node_outside_workflow(
            args.clone(),
            quote!(
                fn f() {}
            ),
        );
    }
}

/// Random token soup, inside and outside `edge!` and `#[node(…)]`.
#[test]
fn random_tokens_never_panic() {
    const WORDS: [&str; 26] = [
        "on",
        "error",
        "START",
        "END",
        "a",
        "b",
        "->",
        "=>",
        "|",
        ",",
        ";",
        "::",
        "=",
        "mod",
        "fn",
        "async",
        "#",
        "[node]",
        "(interrupt)",
        "edge!",
        "&mut",
        "S",
        "1",
        "\"x\"",
        "{}",
        "()",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |bound: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % bound as u64) as usize
    };
    for _ in 0..2_000 {
        let len = next(12);
        let soup: Vec<&str> = (0..len).map(|_| WORDS[next(WORDS.len())]).collect();
        let soup = soup.join(" ");
        let Ok(tokens) = soup.parse::<TokenStream>() else {
            continue;
        };
        let edge: TokenStream =
            format!("mod m {{ edge!({soup}); #[node] async fn a(s: &mut S) {{}} }}")
                .parse()
                .unwrap_or_default();
        let node: TokenStream = format!("mod m {{ #[node({soup})] async fn a(s: &mut S) {{}} }}")
            .parse()
            .unwrap_or_default();
        let body: TokenStream = format!("mod m {{ {soup} }}").parse().unwrap_or_default();
        for (args, item) in [
            (
                tokens.clone(),
                quote!(
                    mod m {}
                ),
            ),
            (quote!(state = S), edge),
            (quote!(state = S), node),
            (quote!(state = S), body),
            (quote!(state = S), tokens),
        ] {
            let _ = workflow(args, item);
        }
    }
}

/// The claims graph, with `from` replaced by `to` in its tokens.
fn claims_with(from: &str, to: &str) -> TokenStream {
    let text = crate::hash::tests::claims().to_string();
    let from: TokenStream = syn::parse_str(from).unwrap();
    let to: TokenStream = syn::parse_str(to).unwrap();
    let replaced = text.replace(&from.to_string(), &to.to_string());
    assert_ne!(replaced, text, "fixture did not contain {from}");
    syn::parse_str(&replaced).unwrap()
}

#[test]
fn parallel_graphs_expand() {
    let text = workflow(quote!(state = Claim), crate::hash::tests::claims()).to_string();
    assert!(!text.contains("compile_error"), "{text}");
    for item in [
        "const PARALLEL : bool = true",
        "fn region (join : __GraphCursor)",
        "fn branch < 'a >",
        "fn join < 'a >",
        "RegionKind :: FanOut",
        "RegionKind :: Map",
        "encode_output",
        "decode_item",
        "Transition :: Map",
        "ParallelBranchesShareTheState :: state_must_be_sync :: < Claim >",
        "__GRAPH_OUTPUT_SCHEMAS",
        "__GRAPH_ITEM_SCHEMAS",
    ] {
        assert!(text.contains(item), "{item}");
    }
    // A graph without regions gets none of it.
    let text = workflow(quote!(state = Order), checkout()).to_string();
    for item in [
        "PARALLEL",
        "fn region",
        "fn branch",
        "fn join",
        "ParallelBranchesShareTheState",
        "OUTPUT_SCHEMAS",
    ] {
        assert!(!text.contains(item), "{item}");
    }
}

#[test]
fn parallel_graph_rules() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            claims_with("fraud: FraudScore,", "fruad: FraudScore,"),
            "parameter `fruad` of join `decide` names no branch; did you mean `fraud`?",
        ),
        (
            claims_with(
                "coverage: Coverage, adjuster: AdjusterNote",
                "coverage: Coverage",
            ),
            "join `decide` has no parameter for branch `adjuster`: add `adjuster: AdjusterNote` (or `adjuster: Result<AdjusterNote, Failure>` to handle its failure here)",
        ),
        (
            claims_with(
                "async fn coverage(c: &Claim)",
                "async fn coverage(c: &mut Claim)",
            ),
            "branch `coverage` takes `&Claim`, not `&mut Claim`",
        ),
        (
            claims_with(
                "edge!(intake -> fraud & coverage & adjuster);",
                "edge!(intake -> fraud & coverage | adjuster);",
            ),
            "an `edge!` cannot mix `&` and `|`",
        ),
        (
            claims_with(
                "edge!(total -> END);",
                "edge!(total -> END); edge!(fraud -> total on error);",
            ),
            "branch `fraud` cannot have an error edge: its failure goes to its region; to handle it, take `fraud: Result<FraudScore, Failure>` in the join `decide`",
        ),
        (
            claims_with("#[node(concurrency = 8)]", "#[node(concurrency = 0)]"),
            "`concurrency = 0` would never run an item",
        ),
        (
            claims_with(
                "#[node] async fn plan",
                "#[node(concurrency = 2)] async fn plan",
            ),
            "`concurrency` limits how many items of a map run at once, and `plan` is not a map node",
        ),
        (
            claims_with("#[node(concurrency = 8)]", "#[node(interrupt)]"),
            "map node `assess` cannot be an interrupt node",
        ),
        (
            claims_with(
                "edge!(decide -> plan | END);",
                "edge!(decide -> plan | END | coverage);",
            ),
            "node `coverage` is a branch of `edge!(intake -> fraud & coverage & adjuster)`, so only that edge runs it",
        ),
        (
            claims_with(
                "edge!(decide -> plan | END);",
                "edge!(decide -> plan | END | total);",
            ),
            "node `total` is the join of `edge!(plan -> each assess)`",
        ),
        (
            claims_with(
                "edge!(START -> intake);",
                "edge!(START -> intake & other); #[node] async fn other(c: &Claim) -> u8 { 1 }",
            ),
            "`START` cannot fan out",
        ),
        (
            claims_with(
                "edge!(fraud & coverage & adjuster -> decide);",
                "edge!(fraud -> decide | END); edge!(coverage & adjuster -> decide);",
            ),
            "branch `fraud` has more than one successor",
        ),
    ];
    for (item, expected) in cases {
        let messages = errors(quote!(state = Claim), item);
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "expected {expected:?} in {messages:#?}"
        );
        for message in &messages {
            assert!(!message.ends_with('.'), "{message}");
        }
    }
}

/// A graph whose interrupt node `review` has the given `#[node]` keys and input type.
fn deadline_graph(node_args: TokenStream, input: TokenStream) -> TokenStream {
    quote!(
        mod m {
            edge!(START -> review);
            edge!(review -> END);
            #[node(#node_args)]
            async fn review(s: &mut S, d: #input) {}
        }
    )
}

#[test]
fn wait_ms_keeps_the_plain_input_in_input_and_the_spec() {
    let module = expand_module(
        quote!(state = S),
        deadline_graph(quote!(interrupt, wait_ms = 1_500), quote!(Option<Decision>)),
    );
    let Some(Item::Enum(input)) = find(&module, "Input") else {
        panic!("no Input enum");
    };
    let fields = input.variants[0].fields.to_token_stream().to_string();
    assert_eq!(fields, "(Decision)");
    let text = module.to_token_stream().to_string();
    assert!(text.contains(". wait_ms (1500u64)"), "{text}");
    // Run with the input, or without it once the wait is over.
    assert!(
        text.contains(":: core :: option :: Option :: None => {"),
        "{text}"
    );
}

#[test]
fn wait_ms_mistakes() {
    let errors_of = |node_args: TokenStream, input: TokenStream| {
        errors(quote!(state = S), deadline_graph(node_args, input))
    };
    let not_interrupt = errors(
        quote!(state = S),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> END);
                #[node(wait_ms = 10)]
                async fn a(s: &mut S) {}
            }
        ),
    );
    assert_eq!(not_interrupt.len(), 1, "{not_interrupt:?}");
    assert!(
        not_interrupt[0]
            .contains("`a` is not an interrupt node: write `#[node(interrupt, wait_ms = N)]`"),
        "{not_interrupt:?}"
    );
    let not_option = errors_of(quote!(interrupt, wait_ms = 10), quote!(Decision));
    assert_eq!(not_option.len(), 1, "{not_option:?}");
    assert!(
        not_option[0].contains("take `Option<Decision>`"),
        "{not_option:?}"
    );
    let no_deadline = errors_of(quote!(interrupt), quote!(Option<Decision>));
    assert_eq!(no_deadline.len(), 1, "{no_deadline:?}");
    assert!(
        no_deadline[0].contains("add `wait_ms = N`")
            && no_deadline[0].contains("or take `Decision`"),
        "{no_deadline:?}"
    );
    // Zero is one error, not two (the `Option` input is not reported as well).
    let zero = errors_of(quote!(interrupt, wait_ms = 0), quote!(Option<Decision>));
    assert_eq!(zero.len(), 1, "{zero:?}");
    assert!(zero[0].starts_with("`wait_ms = 0`"), "{zero:?}");
    for bad in [
        quote!(interrupt, wait_ms),
        quote!(interrupt, wait_ms = "1s"),
        quote!(interrupt, wait_ms = -1),
    ] {
        let errors = errors_of(bad.clone(), quote!(Option<Decision>));
        assert!(
            errors.iter().any(|e| e.contains("wait_ms")),
            "{bad}: {errors:?}"
        );
    }
    let reference = errors_of(quote!(interrupt, wait_ms = 10), quote!(Option<&str>));
    assert!(reference[0].contains("not a reference"), "{reference:?}");
    let misspelt = errors_of(
        quote!(interrupt, deadline_ms = 10),
        quote!(Option<Decision>),
    );
    assert!(
        misspelt[0].contains("did you mean `wait_ms`?"),
        "{misspelt:?}"
    );
    let duplicate = errors_of(
        quote!(interrupt, wait_ms = 10, wait_ms = 20),
        quote!(Option<Decision>),
    );
    assert!(
        duplicate[0].contains("duplicate key `wait_ms`"),
        "{duplicate:?}"
    );
}

#[test]
fn wait_ms_on_an_interrupt_branch_expands() {
    // Each interrupt branch of a region may have its own deadline: `c` takes `Option<u8>`,
    // `Some` with its decision, `None` once its wait is over.
    let text = workflow(
        quote!(state = S),
        quote!(
            mod m {
                edge!(START -> a);
                edge!(a -> b & c);
                edge!(b & c -> j);
                edge!(j -> END);
                #[node]
                async fn a(s: &mut S) {}
                #[node]
                async fn b(s: &S) -> u8 {
                    1
                }
                #[node(interrupt, wait_ms = 5)]
                async fn c(s: &S, d: Option<u8>) -> u8 {
                    1
                }
                #[node]
                async fn j(s: &mut S, b: u8, c: u8) {}
            }
        ),
    )
    .to_string();
    assert!(!text.contains("compile_error"), "{text}");
    assert!(text.contains("wait_ms (5u64)"), "{text}");
}

#[test]
fn node_migrations_expand() {
    let item = claims_with(
        "#[node] async fn coverage(c: &Claim) -> Coverage",
        "#[node(migrate_from = [CoverageV1, old::CoverageV0])] async fn coverage(c: &Claim) -> Coverage",
    );
    let item = rename_in(
        item,
        "#[node] async fn plan",
        "#[node(migrate_from = [LineItemV1])] async fn plan",
    );
    let text = workflow(quote!(state = Claim), item).to_string();
    assert!(!text.contains("compile_error"), "{text}");
    for expected in [
        // `coverage` is the second branch node: its output is `__GRAPH_OUTPUT_SCHEMAS[1]`.
        "const __GRAPH_OUTPUT_MIGRATES_FROM_1 : [u64 ; 2usize] = [< CoverageV1 as :: graph_runtime :: __private :: StateSchema > :: SCHEMA , < old :: CoverageV0 as",
        "const __GRAPH_ITEM_MIGRATES_FROM_0 : [u64 ; 1usize] = [< LineItemV1 as",
        ":: core :: assert ! (__GRAPH_OUTPUT_MIGRATES_FROM_1 [0usize] != __GRAPH_OUTPUT_SCHEMAS [1usize]",
        ":: core :: assert ! (__GRAPH_OUTPUT_MIGRATES_FROM_1 [1usize] != __GRAPH_OUTPUT_MIGRATES_FROM_1 [0usize]",
        ":: core :: assert ! (__GRAPH_ITEM_MIGRATES_FROM_0 [0usize] != __GRAPH_ITEM_SCHEMAS [0usize]",
        "fn migrate_output (branch : __GraphCursor , schema : u64 , bytes : & [u8] ,)",
        "__GraphCursor :: Coverage => { if schema == __GRAPH_OUTPUT_MIGRATES_FROM_1 [0usize] { return :: core :: option :: Option :: Some (< Coverage as __graph_probes :: MigratesFrom < CoverageV1 >> :: __graph_migrate (bytes)) ; }",
        // Declared on `plan`, keyed by the map node.
        "fn migrate_item (map : __GraphCursor , schema : u64 , bytes : & [u8] ,)",
        "__GraphCursor :: Assess => { if schema == __GRAPH_ITEM_MIGRATES_FROM_0 [0usize] { return :: core :: option :: Option :: Some (< LineItem as __graph_probes :: MigratesFrom < LineItemV1 >>",
        "pub (super) trait MigratesFrom < Old >",
        ":: graph_runtime :: __private :: migrate_value :: < Old , Current > (bytes)",
        "fn output_schema (branch : __GraphCursor) -> u64 { match branch { __GraphCursor :: Fraud => __GRAPH_OUTPUT_SCHEMAS [0usize] ,",
        "fn item_schema (map : __GraphCursor) -> u64 { match map { __GraphCursor :: Assess => __GRAPH_ITEM_SCHEMAS [0usize] , _ => 0 , } }",
        "const FINGERPRINTS : & 'static [(& 'static str , & 'static str , u64)] = & [(\"input\" , \"adjuster\" , __GRAPH_INPUT_SCHEMAS [0usize]) , (\"item\" , \"assess\" , __GRAPH_ITEM_SCHEMAS [0usize]) , (\"output\" , \"adjuster\" ,",
        "const CANONICAL : & 'static str = \"graph-runtime/v2\\nworkflow claims\\n",
    ] {
        assert!(text.contains(expected), "{expected}\n\n{text}");
    }
    // Not structure: the hash is the one without `migrate_from`.
    let plain = workflow(quote!(state = Claim), crate::hash::tests::claims()).to_string();
    let graph_hash = |text: &str| {
        let start = text.find("pub const GRAPH_HASH").expect("GRAPH_HASH");
        let end = start + text[start..].find(';').expect("its end");
        text[start..end].to_owned()
    };
    assert_eq!(graph_hash(&text), graph_hash(&plain));
    // Without `migrate_from`, no migration functions and no probe.
    for absent in [
        "fn migrate_output",
        "fn migrate_item",
        "MigratesFrom",
        "MIGRATES_FROM_",
    ] {
        assert!(!plain.contains(absent), "{absent}");
    }
}

/// `tokens` with `from` replaced by `to`, re-parsed.
fn rename_in(tokens: TokenStream, from: &str, to: &str) -> TokenStream {
    let text = tokens.to_string();
    let from: TokenStream = syn::parse_str(from).unwrap();
    let to: TokenStream = syn::parse_str(to).unwrap();
    let replaced = text.replace(&from.to_string(), &to.to_string());
    assert_ne!(replaced, text, "fixture did not contain {from}");
    syn::parse_str(&replaced).unwrap()
}

#[test]
fn node_migration_rules() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            claims_with(
                "#[node] async fn intake",
                "#[node(migrate_from = [ClaimV1])] async fn intake",
            ),
            "`migrate_from` on a node lists older types of its branch output or map items; `intake` produces neither; list older state types in `#[workflow(migrate_from = [...])]`",
        ),
        (
            claims_with(
                "#[node] async fn decide",
                "#[node(migrate_from = [DecideV1])] async fn decide",
            ),
            "`decide` produces neither",
        ),
        (
            claims_with(
                "#[node(interrupt)] async fn adjuster",
                "#[node(interrupt, migrate_from = [AdjusterNote])] async fn adjuster",
            ),
            "`AdjusterNote` is the output type itself: saved values of it decode without a migration; remove it from `migrate_from`",
        ),
        (
            claims_with(
                "#[node] async fn plan",
                "#[node(migrate_from = [LineItem])] async fn plan",
            ),
            "`LineItem` is the item type itself",
        ),
        (
            claims_with(
                "#[node] async fn coverage",
                "#[node(migrate_from = [CoverageV1, CoverageV1])] async fn coverage",
            ),
            "`CoverageV1` is listed twice in `migrate_from`; remove this one",
        ),
        (
            claims_with(
                "async fn assess(c: &Claim, item: LineItem)",
                "async fn assess(c: &Claim)",
            ),
            "map node `assess` has no item parameter: a map node takes `&Claim`, then the item (`LineItem`, one element of the `Vec` that `plan` returns), then optionally `ctx: &NodeCtx`; write `async fn assess(state: &Claim, item: LineItem)`",
        ),
        (
            claims_with(
                "async fn assess(c: &Claim, item: LineItem)",
                "async fn assess(c: &Claim, ctx: &NodeCtx)",
            ),
            "map node `assess` has no item parameter",
        ),
    ];
    for (item, expected) in cases {
        let messages = errors(quote!(state = Claim), item);
        assert!(
            messages.iter().any(|m| m.contains(expected)),
            "expected {expected:?} in {messages:#?}"
        );
        assert_eq!(messages.len(), 1, "one error: {messages:#?}");
        for message in &messages {
            assert!(!message.ends_with('.'), "{message}");
        }
    }
    // `migrate_from` on the map node itself lists older *output* types: fine.
    let item = claims_with(
        "#[node(concurrency = 8)]",
        "#[node(concurrency = 8, migrate_from = [AssessedV1])]",
    );
    assert!(errors(quote!(state = Claim), item).is_empty());
}
