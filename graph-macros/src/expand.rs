//! Codegen: the module's own items, then per-node `Next` enums, the `Input` enum, the cursor
//! enum, the `STATE_SCHEMA` / `GRAPH_HASH` / `MERMAID` / `NODES` constants and the `Workflow`
//! implementation (with the schema fingerprints, accepted graphs and migrations).
//!
//! Every runtime name is reached through `<crate>::__private` (`::graph_runtime` unless
//! `crate = …` says otherwise) or `::core` / `::std`, so the output never depends on what the
//! user imported; generated locals use `Span::mixed_site()`; the output order is the source
//! order, so expansion is deterministic.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{Ident, Item, Type};

use crate::ctxt::Ctxt;
use crate::hash::{Names, Version};
use crate::model::{END, EdgeKind, Endpoint, Graph, START, variant_ident};
use crate::parse::{
    self, CheckpointOverride, NodeFn, ParamRole, WorkflowArgs, output_span, span_range,
    tokens_to_string,
};
use crate::{check, fallback, hash};

/// `#[workflow(args)] item`.
pub(crate) fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let input = parse::workflow(&cx, args, item.clone());
    let Some(module) = &input.module else {
        let errors = cx.check().err();
        return fallback::not_a_module(item, errors);
    };
    let graph = Graph::build(module);
    check::check_args(&cx, &input.args);
    check::check(&cx, &graph);
    match (cx.check(), &input.args.state) {
        (Ok(()), Some(state)) => expand(&input.args, state, &graph),
        (Err(errors), _) => fallback::module(&input.args, &graph, &errors),
        (Ok(()), None) => {
            // Not reachable (a missing `state` is an error), but never panic in a macro.
            let errors = syn::Error::new(Span::call_site(), "missing `state = …` in `#[workflow]`");
            fallback::module(&input.args, &graph, &errors)
        }
    }
}

/// `#[node]` seen by the compiler: it was not removed by an enclosing `#[workflow]`, so it is
/// misplaced. The function is kept, so the only error is this one.
pub(crate) fn node_outside_workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    let _ = args;
    let message = "`#[node]` only works on an `async fn` directly inside a `#[workflow(state = …)]` module; move the function into that module, or remove `#[node]`";
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#error #item)
}

/// The lints generated items must not trip in a user's crate (`#![deny(warnings)]`, clippy
/// pedantic, `missing_docs`, …).
pub(crate) fn allow_lints() -> TokenStream {
    quote! {
        #[allow(
            dead_code,
            unused,
            non_camel_case_types,
            non_snake_case,
            non_upper_case_globals,
            unreachable_patterns,
            unreachable_pub,
            unused_qualifications,
            unused_results,
            variant_size_differences,
            missing_docs,
            missing_debug_implementations,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
    }
}

/// The path generated code uses to reach `__private`.
pub(crate) fn private_path(args: &WorkflowArgs) -> TokenStream {
    let krate = &args.krate;
    quote!(#krate::__private)
}

/// The path to `__private` from a module nested in the workflow module: a relative `crate =`
/// path gets a `super::` in front.
fn nested_private_path(args: &WorkflowArgs) -> TokenStream {
    let krate = &args.krate;
    let first = krate
        .segments
        .first()
        .map(|segment| segment.ident.to_string());
    match first.as_deref() {
        _ if krate.leading_colon.is_some() => quote!(#krate::__private),
        Some("crate") => quote!(#krate::__private),
        Some("self") => {
            let rest = krate.segments.iter().skip(1);
            quote!(super #(::#rest)*::__private)
        }
        _ => quote!(super::#krate::__private),
    }
}

/// A node with the facts codegen needs.
struct NodeCode<'g> {
    node: &'g NodeFn,
    variant: Ident,
    /// The successors, in the order the node's `edge!` lists them.
    targets: Vec<Endpoint>,
    /// The target names as written in `edge!`, for spans and docs.
    target_idents: Vec<Ident>,
    /// The node's name as written in its `edge!`.
    edge_from: Ident,
}

impl NodeCode<'_> {
    fn branches(&self) -> bool {
        self.targets.len() > 1
    }
}

/// The whole successful expansion.
fn expand(args: &WorkflowArgs, state: &Type, graph: &Graph) -> TokenStream {
    let rt = private_path(args);
    let allow = allow_lints();
    let module = graph.module;
    let nodes: Vec<NodeCode> = graph
        .nodes()
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let successors = graph.successors(index);
            NodeCode {
                node,
                variant: variant_ident(&node.name, Span::call_site()),
                targets: successors.iter().map(|edge| edge.to).collect(),
                target_idents: successors
                    .iter()
                    .map(|edge| edge.to_ident.clone())
                    .collect(),
                edge_from: successors
                    .first()
                    .map_or_else(|| node.ident.clone(), |edge| edge.from_ident.clone()),
            }
        })
        .collect();
    let cursor_variant = |endpoint: Endpoint| -> Option<&Ident> {
        match endpoint {
            Endpoint::Node(i) => nodes.get(i).map(|n| &n.variant),
            _ => None,
        }
    };

    let next_modules = nodes.iter().map(|n| next_module(&allow, n));

    // Input: one variant per interrupt node.
    let interrupts: Vec<(&NodeCode, &Type)> = nodes
        .iter()
        .filter_map(|n| {
            n.node
                .input()
                .filter(|_| n.node.args.interrupt)
                .map(|ty| (n, ty))
        })
        .collect();
    let serde_crate = format!("{}::__private::serde", tokens_to_string(&args.krate));
    let input_variants = interrupts.iter().map(|(n, ty)| {
        let variant = &n.variant;
        let doc = format!("The input of interrupt node `{}`.", n.node.name);
        quote!(#[doc = #doc] #variant(#ty))
    });
    let input_doc = if interrupts.is_empty() {
        format!(
            "The inputs of workflow `{}`: it has no interrupt node, so this enum has no values.",
            module.name
        )
    } else {
        let names: Vec<String> = interrupts
            .iter()
            .map(|(n, _)| format!("`{}`", n.node.name))
            .collect();
        format!(
            "The inputs of workflow `{}`'s interrupt nodes ({}): pass one to `Runner::resume_with` when the run waits there.",
            module.name,
            names.join(", ")
        )
    };
    let input_node_arms = interrupts.iter().map(|(n, _)| {
        let variant = &n.variant;
        quote!(Input::#variant(..) => __GraphCursor::#variant,)
    });

    // Cursor.
    let cursor_variants = nodes.iter().map(|n| &n.variant);
    let names: Vec<&str> = nodes.iter().map(|n| n.node.name.as_str()).collect();
    // A checkpoint saved at a node's old name (`renamed_from`) resumes at the node.
    let cursor_of_arms = nodes.iter().map(|n| {
        let variant = &n.variant;
        let old: Vec<String> = n
            .node
            .args
            .renamed_from
            .iter()
            .map(syn::LitStr::value)
            .collect();
        let name = &n.node.name;
        quote!(#name #(| #old)* => ::core::option::Option::Some(__GraphCursor::#variant),)
    });
    let spec_arms = nodes.iter().map(|n| {
        let name = &n.node.name;
        let variant = &n.variant;
        let mut spec = quote!(#rt::NodeSpec::new(#name));
        if n.node.args.interrupt {
            spec.extend(quote!(.interrupt()));
        }
        if let Some(retry) = n.node.args.retry {
            spec.extend(quote!(.retry(#retry)));
        }
        if let Some(timeout_ms) = n.node.args.timeout_ms {
            spec.extend(quote!(.timeout_ms(#timeout_ms)));
        }
        if let Some(backoff_ms) = n.node.args.backoff_ms {
            spec.extend(quote!(.backoff_ms(#backoff_ms)));
        }
        if let Some(backoff_max_ms) = n.node.args.backoff_max_ms {
            spec.extend(quote!(.backoff_max_ms(#backoff_max_ms)));
        }
        if let Some(jitter) = n.node.args.jitter {
            spec.extend(quote!(.jitter(#jitter)));
        }
        match n.node.args.checkpoint {
            Some(CheckpointOverride::Always) => {
                spec.extend(quote!(.checkpoint(#rt::NodeCheckpoint::Always)));
            }
            Some(CheckpointOverride::Never) => {
                spec.extend(quote!(.checkpoint(#rt::NodeCheckpoint::Never)));
            }
            None => {}
        }
        if !n.node.args.renamed_from.is_empty() {
            let old: Vec<String> = n
                .node
                .args
                .renamed_from
                .iter()
                .map(syn::LitStr::value)
                .collect();
            spec.extend(quote!(.renamed_from(&[#(#old),*])));
        }
        quote! {
            __GraphCursor::#variant => {
                const SPEC: #rt::NodeSpec = #spec;
                &SPEC
            }
        }
    });
    let entry = graph.entry().and_then(|i| nodes.get(i)).map(|n| &n.variant);

    // Error edges: `error_route` (only when there are some, so other graphs keep the trait's
    // default) and, in `run`'s loop, a hand-back to the runner after an error node.
    let error_route_arms: Vec<TokenStream> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let target = graph.error_target(i).and_then(|j| nodes.get(j))?;
            let (from, to) = (&n.variant, &target.variant);
            Some(quote!(__GraphCursor::#from => ::core::option::Option::Some(__GraphCursor::#to),))
        })
        .collect();
    let error_route = if error_route_arms.is_empty() {
        TokenStream::new()
    } else {
        quote! {
            fn error_route(cursor: __GraphCursor) -> ::core::option::Option<__GraphCursor> {
                match cursor {
                    #(#error_route_arms)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    };

    // `runs_freely`, answered from what the macro knows, so the loop in `run` tests a
    // constant per node instead of reading specs.
    let free: Vec<bool> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let args = &n.node.args;
            // A node saved after whatever the policy ends its run, so the runner saves.
            !args.interrupt
                && args.retry.unwrap_or(0) == 0
                && args.timeout_ms.is_none()
                && args.checkpoint != Some(crate::parse::CheckpointOverride::Always)
                && graph.error_target(i).is_none()
        })
        .collect();
    let free_arms: Vec<TokenStream> = nodes
        .iter()
        .zip(&free)
        .map(|(n, free)| {
            let variant = &n.variant;
            quote!(__GraphCursor::#variant => #free,)
        })
        .collect();
    let runs_freely = quote! {
        #[inline(always)]
        fn runs_freely(cursor: __GraphCursor) -> bool {
            match cursor {
                #(#free_arms)*
            }
        }
    };

    // rustc does not resolve the `diagnostic::` attribute namespace under
    // `#![no_implicit_prelude]`; such modules get plain trait errors instead.
    let diagnostics = !module
        .item
        .attrs
        .iter()
        .any(|attr| attr.path().is_ident("no_implicit_prelude"));

    // Constants.
    let schemas = schema_items(args, state, graph, &interrupts, diagnostics);
    let migrate_probe = &schemas.migrate_probe;
    let graph_hash = &schemas.graph_hash;
    let input_schema = &schemas.input_schema;
    let accepted_graphs = &schemas.accepted_graphs;
    let schema_items = &schemas.items;
    let migrate_state = &schemas.migrate_state;
    let hash_doc = &schemas.graph_hash_doc;
    let mermaid = mermaid(graph);
    let mermaid_doc = format!(
        "A Mermaid flowchart of workflow `{}` (interrupt nodes are hexagons, error edges dotted):\n\n```text\n{}```",
        module.name, mermaid
    );
    let nodes_doc = format!(
        "The nodes of workflow `{}`, in declaration order.",
        module.name
    );
    let workflow_doc = format!(
        "Workflow `{}`: implements `graph_runtime::Workflow`; pass it to `Runner::new`.",
        module.name
    );
    let name = &module.name;

    // Step.
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx_ident = Ident::new("ctx", Span::mixed_site());
    let input_ident = Ident::new("input", Span::mixed_site());
    let cursor_ident = Ident::new("cursor", Span::mixed_site());
    let nested_rt = nested_private_path(args);
    let state_name = tokens_to_string(state);
    let return_traits: Vec<TokenStream> = nodes
        .iter()
        .map(|n| {
            let mut traits = return_trait(&nested_rt, n, diagnostics);
            traits.extend(state_trait(&nested_rt, n, &state_name, diagnostics));
            traits
        })
        .collect();
    // `step` and `run` each hold the graph's code (a `match` over the cursor, the node calls
    // and their route conversions): `run` loops over it without leaving its future, which is
    // what brings a step close to a hand-written `match`. The probes both go through live once,
    // in a hidden module, so a wrong return type, state parameter or error type, or a `!Send`
    // node, is reported once.
    let send_probe = send_probe(&nodes);
    let probes = quote! {
        #[doc(hidden)]
        #allow
        mod __graph_probes {
            #send_probe
            #(#return_traits)*
            #migrate_probe
        }
    };
    let step_arms: Vec<TokenStream> = nodes
        .iter()
        .map(|n| step_arm(&rt, n, &cursor_variant, &quote!(#input_ident)))
        .collect();
    let ctx_mut_ident = Ident::new("__graph_ctx", Span::mixed_site());
    let steps_ident = Ident::new("__graph_steps", Span::mixed_site());
    let base_seq_ident = Ident::new("__graph_base_seq", Span::mixed_site());
    let budget_ident = Ident::new("budget", Span::mixed_site());
    // A node entered by an error edge reads the failure from the context, and the runner
    // forgets the failure once that node has run: the loop hands back to the runner right
    // after it, so no later node sees the failure. (Nodes with an error edge never run inside
    // the loop: they do not run freely.)
    let after_error_node = if graph.has_error_edges() {
        quote!(&& #ctx_mut_ident.failure().is_none())
    } else {
        TokenStream::new()
    };
    // In `run`'s loop only a node that takes `ctx` has the context entered (its node name and
    // sequence number): the others never read it, and the runner re-enters it afterwards.
    let run_arms: Vec<TokenStream> = nodes
        .iter()
        .map(|n| {
            let name = n.node.ident.to_string();
            let enter = quote! {
                #ctx_mut_ident.__enter(#name, #base_seq_ident + (#steps_ident - 1));
                let #ctx_ident: &#rt::NodeCtx = &*#ctx_mut_ident;
            };
            let this = &n.variant;
            // Each outcome either goes straight on to a node that runs freely (while the
            // budget lasts) or hands the transition back to the runner.
            let finish = |transition: TokenStream, target: Option<Endpoint>| {
                let hand_back = quote! {
                    return #rt::Run { last: __GraphCursor::#this, transition: #transition, steps: #steps_ident }
                };
                match target.and_then(|t| match t {
                    Endpoint::Node(i) if free.get(i).copied().unwrap_or(false) => cursor_variant(t),
                    _ => None,
                }) {
                    Some(next) => quote! {{
                        if #steps_ident < #budget_ident #after_error_node {
                            #steps_ident += 1;
                            #cursor_ident = __GraphCursor::#next;
                            continue;
                        }
                        #hand_back
                    }},
                    None => quote!({ #hand_back }),
                }
            };
            step_arm_full(&rt, n, &cursor_variant, &quote!(#input_ident.take()), Some(&enter), &finish)
        })
        .collect();

    let generated = quote! {
        #(#next_modules)*
        #probes

        #[doc = #input_doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            #rt::serde::Serialize,
            #rt::serde::Deserialize
        )]
        #[serde(crate = #serde_crate)]
        #allow
        pub enum Input {
            #(#input_variants,)*
        }

        /// The position of a run in this graph: one variant per node.
        #[doc(hidden)]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::hash::Hash
        )]
        #allow
        pub enum __GraphCursor {
            #(#cursor_variants,)*
        }

        #schema_items

        #[doc = #hash_doc]
        #allow
        pub const GRAPH_HASH: u64 = #graph_hash;

        #[doc = #mermaid_doc]
        #allow
        pub const MERMAID: &str = #mermaid;

        #[doc = #nodes_doc]
        #allow
        pub const NODES: &[&str] = &[#(#names),*];

        #[doc = #workflow_doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::default::Default
        )]
        #allow
        pub struct Workflow;

        #allow
        impl #rt::Sealed for Workflow {}

        #allow
        impl #rt::Workflow for Workflow {
            type State = #state;
            type Input = Input;
            type Exec = Workflow;

            const NAME: &'static str = #name;
            const GRAPH_HASH: u64 = GRAPH_HASH;
            const NODES: &'static [&'static str] = NODES;
            const MERMAID: &'static str = MERMAID;
            const STATE_SCHEMA: u64 = STATE_SCHEMA;
            const INPUT_SCHEMA: u64 = #input_schema;
            const MIGRATES_FROM: &'static [u64] = &__GRAPH_MIGRATES_FROM;
            const ACCEPTED_GRAPHS: &'static [u64] = &[#(#accepted_graphs),*];
        }

        #allow
        impl #rt::Execute<Workflow> for Workflow {
            type Cursor = __GraphCursor;

            const ENTRY: __GraphCursor = __GraphCursor::#entry;

            #migrate_state

            fn spec(cursor: __GraphCursor) -> &'static #rt::NodeSpec {
                match cursor {
                    #(#spec_arms)*
                }
            }

            fn cursor_of(name: &str) -> ::core::option::Option<__GraphCursor> {
                match name {
                    #(#cursor_of_arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn input_node(input: &Input) -> __GraphCursor {
                match *input {
                    #(#input_node_arms)*
                }
            }

            #error_route
            #runs_freely

            fn step<'a>(
                _: &'a Workflow,
                #cursor_ident: __GraphCursor,
                #state_ident: &'a mut #state,
                #ctx_ident: &'a #rt::NodeCtx,
                #input_ident: ::core::option::Option<Input>,
            ) -> impl ::core::future::Future<Output = #rt::Transition<__GraphCursor>> + ::core::marker::Send + 'a {
                async move {
                    match #cursor_ident {
                        #(#step_arms)*
                    }
                }
            }

            fn run<'a>(
                _: &'a Workflow,
                #cursor_ident: __GraphCursor,
                #state_ident: &'a mut #state,
                #ctx_mut_ident: &'a mut #rt::NodeCtx,
                #input_ident: ::core::option::Option<Input>,
                #budget_ident: u64,
            ) -> impl ::core::future::Future<Output = #rt::Run<__GraphCursor>> + ::core::marker::Send + 'a {
                async move {
                    let mut #input_ident = #input_ident;
                    let mut #cursor_ident = #cursor_ident;
                    let mut #steps_ident: u64 = 1;
                    let #base_seq_ident = #ctx_mut_ident.seq();
                    // Every arm either goes on (`continue`) or returns.
                    loop {
                        match #cursor_ident {
                            #(#run_arms)*
                        }
                    }
                }
            }
        }
    };

    let mut item = module.item.clone();
    let mut items: Vec<Item> = module.items.clone();
    items.push(Item::Verbatim(generated));
    item.content = Some((Default::default(), items));
    item.into_token_stream()
}

/// What `#[workflow]` generates about checkpoints that outlive a release: the schema
/// fingerprints, the graph hashes, and the migrations.
struct SchemaItems {
    /// Module items: `STATE_SCHEMA`, the hidden fingerprint arrays, the `const` assertions.
    items: TokenStream,
    /// `GRAPH_HASH`'s value, a `const` expression.
    graph_hash: TokenStream,
    graph_hash_doc: String,
    /// `Workflow::INPUT_SCHEMA`'s value.
    input_schema: TokenStream,
    /// `Workflow::ACCEPTED_GRAPHS`'s elements.
    accepted_graphs: Vec<TokenStream>,
    /// `Workflow::migrate_state`, when there is a `migrate_from`.
    migrate_state: TokenStream,
    /// The conversion trait `migrate_state` calls, for the hidden probe module.
    migrate_probe: TokenStream,
}

/// `<T as StateSchema>::SCHEMA`, spanned at the user's `T`: when `T` does not implement
/// `StateSchema`, rustc's error (with the trait's `on_unimplemented` note) points there. Each
/// type is named once in such an expression, in one constant, so one missing derive gives one
/// error however many generated items use the fingerprint.
fn schema_of(rt: &TokenStream, ty: &Type) -> TokenStream {
    let (first, last) = span_range(ty);
    let mut out = quote_spanned!(first=> <#ty as #rt::StateSchema>);
    out.extend(quote_spanned!(last=> ::SCHEMA));
    out
}

/// `Fingerprint::new(kind).str(name).u64(schema)….finish()`, optionally starting with `.u64(first)`.
fn fingerprint(
    rt: &TokenStream,
    kind: &str,
    first: Option<u64>,
    parts: &[(String, usize)],
) -> TokenStream {
    let mut out = quote!(#rt::Fingerprint::new(#kind));
    if let Some(first) = first {
        let literal = hex_literal(first);
        out.extend(quote!(.u64(#literal)));
    }
    for (name, k) in parts {
        out.extend(quote!(.str(#name).u64(__GRAPH_INPUT_SCHEMAS[#k])));
    }
    out.extend(quote!(.finish()));
    out
}

/// The checkpoint items of a graph that passed every check: `STATE_SCHEMA` and the input
/// fingerprints (which are also the `StateSchema` probes), `GRAPH_HASH`, `INPUT_SCHEMA`,
/// `ACCEPTED_GRAPHS`, and the migrations of `migrate_from` with their collision assertions.
fn schema_items(
    args: &WorkflowArgs,
    state: &Type,
    graph: &Graph,
    interrupts: &[(&NodeCode, &Type)],
    diagnostics: bool,
) -> SchemaItems {
    let rt = private_path(args);
    let allow = allow_lints();
    let module = graph.module;
    let current = Names::current(graph);

    // The state's fingerprint is also the probe that requires `state: StateSchema`, the
    // interrupt inputs' fingerprints the probes for the inputs.
    let state_schema = schema_of(&rt, state);
    let state_doc = format!(
        "The fingerprint of the serde data model of workflow `{}`'s state, `{}` (`#[derive(StateSchema)]`), stored in every checkpoint.",
        module.name,
        tokens_to_string(state)
    );
    let input_schemas = interrupts.iter().map(|(_, ty)| schema_of(&rt, ty));
    let count = interrupts.len();

    // `Input`'s variants are written as their index in declaration order (bincode), so
    // `INPUT_SCHEMA` follows that order: reordering interrupt nodes changes it.
    let declared: Vec<(String, usize)> = interrupts
        .iter()
        .enumerate()
        .map(|(k, (n, _))| (n.node.name.clone(), k))
        .collect();
    let input_schema = fingerprint(&rt, crate::hash::INPUT_KIND, None, &declared);

    let (v2_hash, v2_text) = hash::text_hash(graph, Version::V2, &current);
    let graph_hash = fingerprint(
        &rt,
        crate::hash::GRAPH_KIND,
        Some(v2_hash),
        &current.interrupts(graph),
    );
    let (v1_hash, v1_text) = hash::text_hash(graph, Version::V1 { state }, &current);
    let graph_hash_doc = format!(
        "The stable hash of workflow `{}`'s structure, stored in every checkpoint.\n\n\
         It changes when a node is renamed, added or removed, an edge or an error edge changes, \
         or an interrupt input type's data model changes; not when declarations are reordered, \
         node bodies change, or a type is spelled another way (`crate::Approval` for \
         `Approval`). It combines the FNV-1a 64 hash of this canonical text, `{}`, with each \
         interrupt node's name and its input type's `StateSchema` fingerprint:\n\n```text\n{}```\n\n\
         Checkpoints saved by the first release carry the hash of its canonical text, `{}`, \
         which is in `Workflow::ACCEPTED_GRAPHS`:\n\n```text\n{}```",
        module.name,
        hex_text(v2_hash),
        v2_text,
        hex_text(v1_hash),
        v1_text,
    );

    // Older graphs: the first release's text of this graph; both texts of each graph that
    // `renamed_from` describes; the hashes listed in `accept_graphs`.
    let mut accepted_graphs = Vec::new();
    let mut seen_literals = std::collections::BTreeSet::new();
    let mut push_literal = |hash: u64, out: &mut Vec<TokenStream>| {
        if seen_literals.insert(hash) {
            out.push(hex_literal(hash));
        }
    };
    push_literal(v1_hash, &mut accepted_graphs);
    for names in Names::older(graph) {
        let (older_v2, _) = hash::text_hash(graph, Version::V2, &names);
        accepted_graphs.push(fingerprint(
            &rt,
            crate::hash::GRAPH_KIND,
            Some(older_v2),
            &names.interrupts(graph),
        ));
        let (older_v1, _) = hash::text_hash(graph, Version::V1 { state }, &names);
        push_literal(older_v1, &mut accepted_graphs);
    }
    for (hash, _) in &args.accept_graphs {
        push_literal(*hash, &mut accepted_graphs);
    }

    // Migrations: one fingerprint per listed type, each collision a `const` assertion that
    // fails the build with its message at the type.
    let migrate_schemas = args.migrate_from.iter().map(|ty| schema_of(&rt, ty));
    let migrate_count = args.migrate_from.len();
    let state_name = tokens_to_string(state);
    let mut assertions = TokenStream::new();
    for (j, ty) in args.migrate_from.iter().enumerate() {
        let (first, _) = span_range(ty);
        let name = tokens_to_string(ty);
        let message = format!(
            "`{name}` in `migrate_from` has the same state schema fingerprint as the state `{state_name}`: checkpoints with this fingerprint already open as `{state_name}`, so `{name}` would never be used; remove it from `migrate_from`"
        );
        assertions.extend(quote_spanned! {first=>
            #allow
            const _: () = ::core::assert!(__GRAPH_MIGRATES_FROM[#j] != STATE_SCHEMA, #message);
        });
        for (i, earlier) in args.migrate_from.iter().enumerate().take(j) {
            let earlier = tokens_to_string(earlier);
            let message = format!(
                "`{name}` and `{earlier}` in `migrate_from` have the same state schema fingerprint (the same serde data model), so a checkpoint with it cannot say which of them to decode; remove one of them"
            );
            assertions.extend(quote_spanned! {first=>
                #allow
                const _: () = ::core::assert!(__GRAPH_MIGRATES_FROM[#j] != __GRAPH_MIGRATES_FROM[#i], #message);
            });
        }
    }
    let migrate_state = if args.migrate_from.is_empty() {
        TokenStream::new()
    } else {
        let schema = Ident::new("schema", Span::mixed_site());
        let bytes = Ident::new("bytes", Span::mixed_site());
        let old = Ident::new("__graph_old", Span::mixed_site());
        let len = Ident::new("__graph_len", Span::mixed_site());
        let arms = args.migrate_from.iter().enumerate().map(|(j, ty)| {
            let (first, last) = span_range(ty);
            // Spanned at the type: a type that cannot be decoded, or not converted into the
            // state, is reported there.
            let mut decode = quote_spanned!(first=> #rt::decode_prefix::<#ty>);
            decode.extend(quote_spanned!(last=> (#bytes)));
            let migrate = Ident::new("__graph_migrate", last);
            let mut convert =
                quote_spanned!(first=> <#ty as __graph_probes::MigratesIntoState<#state>>);
            convert.extend(quote_spanned!(last=> ::#migrate(#old)));
            quote! {
                if #schema == __GRAPH_MIGRATES_FROM[#j] {
                    return ::core::option::Option::Some(
                        ::core::result::Result::map(#decode, |(#old, #len)| (#convert, #len)),
                    );
                }
            }
        });
        quote! {
            fn migrate_state(
                #schema: u64,
                #bytes: &[u8],
            ) -> ::core::option::Option<::core::result::Result<(#state, usize), #rt::DecodeError>> {
                #(#arms)*
                ::core::option::Option::None
            }
        }
    };

    // The conversion goes through a trait of our own, so that a missing `Into<State>` is
    // explained in the words of `migrate_from`.
    let migrate_probe = if args.migrate_from.is_empty() {
        TokenStream::new()
    } else {
        let on_unimplemented = on_unimplemented(
            diagnostics,
            &format!(
                "`{{Self}}` is listed in `migrate_from`, but cannot be converted into the state `{state_name}`"
            ),
            &format!("`{{Self}}` does not implement `Into<{state_name}>`"),
            &format!(
                "a checkpoint saved as `{{Self}}` is decoded as `{{Self}}`, then converted into the state: implement `From<{{Self}}> for {state_name}`"
            ),
        );
        let do_not_recommend = do_not_recommend(diagnostics);
        quote! {
            #on_unimplemented
            pub(super) trait MigratesIntoState<S>: ::core::marker::Sized {
                fn __graph_migrate(self) -> S;
            }
            #do_not_recommend
            impl<T: ::core::convert::Into<S>, S> MigratesIntoState<S> for T {
                #[inline(always)]
                fn __graph_migrate(self) -> S {
                    ::core::convert::Into::into(self)
                }
            }
        }
    };

    let items = quote! {
        #[doc = #state_doc]
        #allow
        pub const STATE_SCHEMA: u64 = #state_schema;

        #[doc(hidden)]
        #allow
        const __GRAPH_INPUT_SCHEMAS: [u64; #count] = [#(#input_schemas),*];

        #[doc(hidden)]
        #allow
        const __GRAPH_MIGRATES_FROM: [u64; #migrate_count] = [#(#migrate_schemas),*];

        #assertions
    };
    SchemaItems {
        items,
        graph_hash,
        graph_hash_doc,
        input_schema,
        accepted_graphs,
        migrate_state,
        migrate_probe,
    }
}

/// `0x1234_5678_9abc_def0`, as text.
fn hex_text(value: u64) -> String {
    format!(
        "0x{:04x}_{:04x}_{:04x}_{:04x}",
        value >> 48,
        (value >> 32) & 0xffff,
        (value >> 16) & 0xffff,
        value & 0xffff
    )
}

/// The node's name as a module name (raw identifiers stay raw), at the call site.
pub(crate) fn module_ident(node: &NodeFn) -> Ident {
    let mut ident = node.ident.clone();
    ident.set_span(Span::call_site());
    ident
}

/// `mod <node> { enum Next }`: the routes of a branching node. A node with one successor gets a
/// hidden, empty `Next`, so that returning `node::Next` from it gets our explanation
/// ("returns `()`") rather than a failed path resolution.
fn next_module(allow: &TokenStream, n: &NodeCode) -> TokenStream {
    let ident = module_ident(n.node);
    let name = &n.node.name;
    if !n.branches() {
        let target = n
            .target_idents
            .first()
            .map_or_else(String::new, ToString::to_string);
        let doc = format!(
            "Node `{name}` has one successor (`{target}`), so it returns `()` or `Result<(), E>` and has no routes."
        );
        return quote! {
            #[doc(hidden)]
            #allow
            pub mod #ident {
                #[doc = #doc]
                pub enum Next {}
            }
        };
    }
    let targets: Vec<String> = n.target_idents.iter().map(ToString::to_string).collect();
    let edge = format!("edge!({name} -> {})", targets.join(" | "));
    let module_doc = format!("The routes of node `{name}`, generated from `{edge}`.");
    let enum_doc =
        format!("Where the run goes after node `{name}`: one variant per target of `{edge}`.");
    let variants = n.target_idents.iter().map(|target| {
        let target_name = target.to_string();
        // The variant's span is the target in `edge!`: "go to definition" lands on the edge.
        let variant = variant_ident(&crate::model::ident_name(target), target.span());
        let doc = if target_name == END {
            "Finish the run (`END`).".to_owned()
        } else {
            format!("Go to node `{target_name}`.")
        };
        quote!(#[doc = #doc] #variant)
    });
    // The enum starts at the node's name in its `edge!` and ends at its last target (its name
    // and braces carry that span), so rustc's "variant `Ship` not found for this enum" label
    // underlines `validate -> review | charge`: the successors, in the user's code. Spans of
    // the user's tokens join; with a call-site token among them the label would fall back to
    // `#[workflow]`.
    let last = n
        .target_idents
        .last()
        .map_or_else(|| n.edge_from.span(), Ident::span);
    let enum_head = quote_spanned!(n.edge_from.span()=> pub enum);
    let next = Ident::new("Next", last);
    let mut body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, quote!(#(#variants,)*));
    body.set_span(last);
    let quiet = quiet_similar_names();
    quote! {
        #[doc = #module_doc]
        #allow
        pub mod #ident {
            #[doc = #enum_doc]
            #[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::cmp::PartialEq,
                ::core::cmp::Eq,
                ::core::hash::Hash
            )]
            #enum_head #next #body

            #quiet
        }
    }
}

/// The associated functions that `Next` has from its derives and std's blanket impls, whose
/// names rustc's "no variant `Done`" error would otherwise offer as "a method with a similar
/// name" (`ne` from `PartialEq` for `Done`, `into` for `Into`, …).
const SIMILAR_NAMES: [&str; 16] = [
    "fmt",
    "clone",
    "clone_from",
    "eq",
    "ne",
    "hash",
    "hash_slice",
    "from",
    "into",
    "try_from",
    "try_into",
    "borrow",
    "borrow_mut",
    "type_id",
    "to_owned",
    "clone_into",
];

/// A hidden trait, never in scope, that gives `Next` a second function of each name in
/// [`SIMILAR_NAMES`]. rustc looks for similar names among the functions of every trait a type
/// implements, and drops a name that two traits provide (it could not say which one it
/// means): a misspelt variant then gets rustc's plain "no variant" error, with "a variant with
/// a similar name" when there is one, and never a method of `PartialEq`. Calls such as
/// `a.ne(&b)` or `a == b` are unaffected, since they only see traits in scope.
fn quiet_similar_names() -> TokenStream {
    let names: Vec<Ident> = SIMILAR_NAMES
        .iter()
        .map(|name| Ident::new(name, Span::call_site()))
        .collect();
    // `pub` in a private module: rustc leaves out a trait that is private to its module when
    // it looks for similar names (so the trait must be `pub`), and nothing outside can name it.
    quote! {
        mod __graph_similar_names {
            pub trait NoSimilarNames {
                #(fn #names();)*
            }
            impl NoSimilarNames for super::Next {
                #(fn #names() {})*
            }
        }
    }
}

/// The name of the per-node trait that turns the node's return value into its route.
fn return_trait_ident(n: &NodeCode) -> Ident {
    // Named for rustc's messages: "the trait `ReturnOfNodeCharge` is not implemented for …".
    format_ident!("ReturnOfNode{}", n.variant, span = Span::call_site())
}

/// Two traits, in the hidden `__graph_probes` module. The first is implemented exactly for
/// the return types node `n` may have (`()` / `Result<(), E>`, or `n::Next` /
/// `Result<n::Next, E>`): calling it on the node's output is the route conversion *and* the
/// check, so a wrong return type fails here, once, with a message that names the node, its
/// successors and the fix. The second boxes `E` into a `NodeError`, and is implemented for
/// every type that converts into one: an error type that does not fails there, with a message
/// that says so.
fn return_trait(rt: &TokenStream, n: &NodeCode, diagnostics: bool) -> TokenStream {
    let trait_ident = return_trait_ident(n);
    let name = &n.node.name;
    let targets: Vec<String> = n.target_idents.iter().map(|t| format!("`{t}`")).collect();
    let error_bound = "`E` is the node's error type, any type that converts into `Box<dyn std::error::Error + Send + Sync>`";
    let (route, message, label, note) = if n.branches() {
        let ident = module_ident(n.node);
        let next = format!("{}::Next", n.node.ident);
        (
            quote!(super::#ident::Next),
            format!(
                "node `{name}` branches to {}, so it must return `{next}` or `Result<{next}, E>`, not `{{Self}}`",
                targets.join(" or ")
            ),
            format!("expected `{next}` or `Result<{next}, E>`"),
            format!(
                "`{next}` is generated from `edge!({name} -> {})`: return the variant of the next node; {error_bound}",
                n.target_idents
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
        )
    } else {
        let next = format!("{}::Next", n.node.ident);
        (
            quote!(()),
            format!(
                "node `{name}` has one successor ({}), so it must return `()` or `Result<(), E>`, not `{{Self}}`",
                targets.join("")
            ),
            "expected `()` or `Result<(), E>`".to_owned(),
            format!(
                "only a node with several targets in its `edge!` returns a `{next}`; {error_bound}"
            ),
        )
    };
    let error_ident = error_trait_ident(n);
    let on_unimplemented = on_unimplemented(diagnostics, &message, &label, &note);
    let error_on_unimplemented = on_unimplemented_error(diagnostics, name);
    let do_not_recommend = do_not_recommend(diagnostics);
    // The route and the error are two checks: `Result<(), u32>` has the right shape, so the
    // first passes and the second reports the error type alone, in the node's words.
    quote! {
        #on_unimplemented
        pub(super) trait #trait_ident: ::core::marker::Sized {
            type Error;
            fn __graph_route(self) -> ::core::result::Result<#route, Self::Error>;
        }
        impl #trait_ident for #route {
            type Error = ::core::convert::Infallible;
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, Self::Error> {
                ::core::result::Result::Ok(self)
            }
        }
        // Left out of rustc's "the trait is implemented for …" help, as it always was: the
        // message already names both forms.
        #do_not_recommend
        impl<E> #trait_ident for ::core::result::Result<#route, E> {
            type Error = E;
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, E> {
                self
            }
        }

        #error_on_unimplemented
        pub(super) trait #error_ident {
            fn __graph_boxed(self) -> #rt::NodeError;
        }
        // Hidden, so that rustc reports the message above rather than the runtime's bound.
        #do_not_recommend
        impl<E: #rt::IntoNodeError> #error_ident for E {
            #[inline(always)]
            fn __graph_boxed(self) -> #rt::NodeError {
                #rt::IntoNodeError::into_node_error(self)
            }
        }
    }
}

/// The name of the per-node trait that boxes the node's error.
fn error_trait_ident(n: &NodeCode) -> Ident {
    // Named for rustc's messages: "the trait `ErrorOfNodeCharge` is not implemented for `u32`".
    format_ident!("ErrorOfNode{}", n.variant, span = Span::call_site())
}

/// The name of the per-node trait that hands the state to the node's first parameter.
fn state_trait_ident(n: &NodeCode) -> Ident {
    // Named for rustc's messages: "the trait `StateOfNodeCharge<'_>` is not implemented for
    // `&mut Invoice`".
    format_ident!("StateOfNode{}", n.variant, span = Span::call_site())
}

/// A trait implemented for `&mut S` and `&S`, which the state argument of node `n` goes
/// through: a first parameter of another type fails here, with a message that names the node
/// and the workflow's state type, instead of rustc's "mismatched types" about our call.
fn state_trait(rt: &TokenStream, n: &NodeCode, state_name: &str, diagnostics: bool) -> TokenStream {
    let trait_ident = state_trait_ident(n);
    let name = &n.node.name;
    let on_unimplemented = on_unimplemented(
        diagnostics,
        &format!(
            "the first parameter of node `{name}` must be `&mut {state_name}` or `&{state_name}`, the workflow's state type (`state = {state_name}`), not `{{Self}}`"
        ),
        &format!("expected `&mut {state_name}` or `&{state_name}`"),
        &format!(
            "every node of this workflow reads and changes the state named in `#[workflow(state = {state_name})]`: take `&mut {state_name}`, or change `state = …`"
        ),
    );
    let do_not_recommend = do_not_recommend(diagnostics);
    // The state type is named through the generated `Workflow` (the user's spelling of it
    // would not resolve in this nested module), and is no parameter of the trait, so rustc
    // blames the node's parameter type rather than our argument. One blanket impl over the
    // runtime's `StateParam` (`&mut S`, `&S`), hidden by `do_not_recommend`: rustc then gives
    // the message above without listing our impls.
    let state = quote!(<super::Workflow as #rt::Workflow>::State);
    quote! {
        #on_unimplemented
        pub(super) trait #trait_ident<'a>: ::core::marker::Sized {
            fn __graph_state(state: &'a mut #state) -> Self;
        }
        #do_not_recommend
        impl<'a, T: #rt::StateParam<'a, #state>> #trait_ident<'a> for T {
            #[inline(always)]
            fn __graph_state(state: &'a mut #state) -> Self {
                #rt::StateParam::from_state(state)
            }
        }
    }
}

/// The name of [`send_probe`]'s type, which rustc shows.
const SEND_PROBE: &str = "RunnerMayMoveNodesBetweenThreads";

/// The probe every node's future goes through on its way to the runner: one function per
/// node, named after it, requiring `Send`.
///
/// rustc explains a future that is not `Send` better than any message of ours could (the value
/// held across an `.await`, and the `.await`), so the bound stays a plain `Send` bound; what
/// we choose is where it is declared, since rustc names that: "required by a bound in
/// `RunnerMayMoveNodesBetweenThreads::charge`" says which node, and why. (A trait with
/// `on_unimplemented` would replace rustc's explanation with ours.)
fn send_probe(nodes: &[NodeCode]) -> TokenStream {
    let functions = nodes.iter().map(|n| {
        let mut name = n.node.ident.clone();
        name.set_span(Span::call_site());
        quote! {
            #[inline(always)]
            pub(super) fn #name<F: ::core::future::Future + ::core::marker::Send>(future: F) -> F {
                future
            }
        }
    });
    let probe = Ident::new(SEND_PROBE, Span::call_site());
    quote! {
        pub(super) struct #probe;
        impl #probe {
            #(#functions)*
        }
    }
}

/// The `match` arm of `step` and `run` that runs node `n`; `input` is how the arm takes the
/// pending input (`input`, or `input.take()` in `run`'s loop).
fn step_arm<'c>(
    rt: &TokenStream,
    n: &NodeCode,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
) -> TokenStream {
    step_arm_with(rt, n, cursor_variant, input, None)
}

/// [`step_arm`], with `enter` run first in the arm of a node that takes `ctx` (it binds
/// `ctx`).
fn step_arm_with<'c>(
    rt: &TokenStream,
    n: &NodeCode,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
    enter: Option<&TokenStream>,
) -> TokenStream {
    step_arm_full(rt, n, cursor_variant, input, enter, &|t, _| t)
}

/// [`step_arm_with`], where `finish(transition, target)` turns each outcome (a
/// `Transition` expression, and the route's target when it is one) into the arm's result:
/// the value itself in `step`, the loop's next move in `run`.
fn step_arm_full<'c>(
    rt: &TokenStream,
    n: &NodeCode,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
    enter: Option<&TokenStream>,
    finish: &dyn Fn(TokenStream, Option<Endpoint>) -> TokenStream,
) -> TokenStream {
    let enter = if n
        .node
        .params
        .iter()
        .any(|p| matches!(p.role, ParamRole::Ctx))
    {
        enter.cloned().unwrap_or_default()
    } else {
        TokenStream::new()
    };
    let variant = &n.variant;
    let func = &n.node.ident;
    let out = Ident::new("__graph_out", Span::mixed_site());
    let input_value = Ident::new("__graph_input", Span::mixed_site());
    let error = Ident::new("__graph_error", Span::mixed_site());

    // Arguments in declared order; each spanned over the user's parameter type, so a
    // mismatch (`&mut Other` instead of the state) is reported on the user's tokens.
    let call_args = n.node.params.iter().map(|param| {
        let (first, last) = span_range(&param.ty);
        let first = Span::mixed_site().located_at(first);
        let last = Span::mixed_site().located_at(last);
        match param.role {
            ParamRole::State { .. } => {
                // Through the node's state trait: a parameter of another type is reported in
                // the workflow's words, at the parameter's type.
                let local = Ident::new("state", last);
                let mut trait_ident = state_trait_ident(n);
                trait_ident.set_span(first);
                let method = Ident::new("__graph_state", last);
                let mut call = quote_spanned!(first=> __graph_probes::#trait_ident::#method);
                call.extend(quote_spanned!(last=> (&mut *#local)));
                call
            }
            ParamRole::Ctx => {
                let local = Ident::new("ctx", last);
                quote!(#local)
            }
            ParamRole::Input => {
                let mut local = input_value.clone();
                local.set_span(last);
                quote!(#local)
            }
        }
    });
    // The conversion is spanned over the user's return type: a wrong one is reported there.
    let (ret_first, ret_last) = output_span(n.node);
    let ret_first = Span::mixed_site().located_at(ret_first);
    let mut trait_ident = return_trait_ident(n);
    trait_ident.set_span(ret_first);
    let ret_last = Span::mixed_site().located_at(ret_last);
    let mut out_at_ret = out.clone();
    out_at_ret.set_span(ret_last);
    let route_fn = Ident::new("__graph_route", ret_last);
    // `identity(out)` starts at the type's first token and ends at its last, so rustc
    // underlines the whole return type.
    let mut argument = quote_spanned!(ret_first=> ::core::convert::identity);
    argument.extend(quote_spanned!(ret_last=> (#out_at_ret)));
    let route = quote_spanned!(ret_first=> __graph_probes::#trait_ident::#route_fn(#argument));
    // The error is boxed by its own check, spanned the same way: an error type that does not
    // convert is reported at the return type too.
    let mut error_ident = error_trait_ident(n);
    error_ident.set_span(ret_first);
    let boxed_fn = Ident::new("__graph_boxed", ret_last);
    let mut error_at_ret = error.clone();
    error_at_ret.set_span(ret_last);
    let mut error_argument = quote_spanned!(ret_first=> ::core::convert::identity);
    error_argument.extend(quote_spanned!(ret_last=> (#error_at_ret)));
    let boxed =
        quote_spanned!(ret_first=> __graph_probes::#error_ident::#boxed_fn(#error_argument));

    let route_arms: Vec<TokenStream> = if n.branches() {
        let module = module_ident(n.node);
        n.targets
            .iter()
            .zip(&n.target_idents)
            .map(|(target, ident)| {
                let route = variant_ident(&crate::model::ident_name(ident), Span::call_site());
                let transition = finish(transition(rt, *target, cursor_variant), Some(*target));
                quote!(::core::result::Result::Ok(#module::Next::#route) => #transition,)
            })
            .collect()
    } else {
        let transition = n
            .targets
            .first()
            .map(|t| finish(transition(rt, *t, cursor_variant), Some(*t)));
        vec![quote!(::core::result::Result::Ok(()) => #transition,)]
    };
    let permanent = Ident::new("__graph_permanent", Span::mixed_site());
    // The node's future must be `Send` (runners move runs across threads); checking it here
    // reports a `!Send` node at its name rather than at `#[workflow]`.
    let at_func = Span::mixed_site().located_at(func.span());
    let probe = Ident::new(SEND_PROBE, at_func);
    let mut probe_fn = func.clone();
    probe_fn.set_span(at_func);
    let call = quote_spanned!(at_func=> __graph_probes::#probe::#probe_fn(#func(#(#call_args),*)));
    let failed_permanently = finish(quote!(#rt::Transition::FailedPermanently(#error)), None);
    let failed = finish(quote!(#rt::Transition::Failed(#error)), None);
    let missing_input = finish(quote!(#rt::Transition::MissingInput), None);
    let run = quote! {
        #enter
        let #out = #call.await;
        // Autoref specialisation: the error type's `Retryable` impl if it has one.
        let #permanent = {
            use #rt::{ViaDefault as _, ViaRetryable as _};
            (&#rt::Probe(&#out)).__graph_is_permanent()
        };
        match #route {
            #(#route_arms)*
            ::core::result::Result::Err(#error) => {
                let #error = #boxed;
                if #permanent { #failed_permanently } else { #failed }
            }
        }
    };
    if n.node.args.interrupt {
        quote! {
            __GraphCursor::#variant => match #input {
                ::core::option::Option::Some(Input::#variant(#input_value)) => { #run }
                _ => #missing_input,
            },
        }
    } else {
        quote! {
            __GraphCursor::#variant => { #run }
        }
    }
}

fn transition<'c>(
    rt: &TokenStream,
    target: Endpoint,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
) -> TokenStream {
    match (target, cursor_variant(target)) {
        (Endpoint::Node(_), Some(variant)) => {
            quote!(#rt::Transition::Next(__GraphCursor::#variant))
        }
        _ => quote!(#rt::Transition::End),
    }
}

/// `0x1234_5678_9abc_def0`.
fn hex_literal(value: u64) -> TokenStream {
    let text = hex_text(value);
    match syn::parse_str::<syn::LitInt>(&text) {
        Ok(lit) => lit.into_token_stream(),
        Err(_) => proc_macro2::Literal::u64_unsuffixed(value).into_token_stream(),
    }
}

/// The Mermaid flowchart: `START`/`END` as stadiums, interrupt nodes as hexagons, then every
/// edge in declaration order, error edges dotted and labelled (`charge -. on error .-> refund`).
/// Deterministic: only source order is used.
pub(crate) fn mermaid(graph: &Graph) -> String {
    let mut text = String::from("flowchart TD\n");
    text.push_str(&format!("    {START}([{START}])\n"));
    for node in graph.nodes() {
        let id = mermaid_id(&node.name);
        if node.args.interrupt {
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
        let link = match edge.kind {
            EdgeKind::Route => "-->",
            EdgeKind::Error => "-. on error .->",
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
fn mermaid_id(name: &str) -> String {
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

/// `#[diagnostic::on_unimplemented(…)]` with these texts, or nothing where the compiler's
/// diagnostics are turned off for this expansion.
fn on_unimplemented(diagnostics: bool, message: &str, label: &str, note: &str) -> TokenStream {
    if diagnostics {
        quote!(#[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)])
    } else {
        TokenStream::new()
    }
}

/// The `on_unimplemented` of a node's error check: what types a node may fail with.
fn on_unimplemented_error(diagnostics: bool, node: &str) -> TokenStream {
    on_unimplemented(
        diagnostics,
        &format!(
            "`{{Self}}` cannot be the error type of node `{node}`: it does not convert into `Box<dyn std::error::Error + Send + Sync>`"
        ),
        "not an error type, or not `Send + Sync`",
        "a node may fail with any type that converts into `graph_runtime::NodeError` (`Box<dyn std::error::Error + Send + Sync>`): a type implementing `std::error::Error + Send + Sync + 'static`, `anyhow::Error`, `Box<dyn std::error::Error + Send + Sync>`, `String` or `&'static str`; it must be `Send + Sync` because the runner may move it between threads",
    )
}

/// `#[diagnostic::do_not_recommend]`, or nothing where diagnostics are turned off.
fn do_not_recommend(diagnostics: bool) -> TokenStream {
    if diagnostics {
        quote!(#[diagnostic::do_not_recommend])
    } else {
        TokenStream::new()
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::*;

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
            "trait ReturnOfNodeCharge",
            "trait ErrorOfNodeCharge",
            "trait StateOfNodeCharge",
            "struct RunnerMayMoveNodesBetweenThreads",
            "RunnerMayMoveNodesBetweenThreads :: charge (charge (",
            "ErrorOfNodeCharge :: __graph_boxed",
            "StateOfNodeCharge :: __graph_state (& mut * state)",
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
            nested_private_path(&args).to_string()
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
                "< old :: S2 as __graph_probes :: MigratesIntoState < S >> :: __graph_migrate (__graph_old)"
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
                    async fn a(
                        s: &mut S,
                        ctx: NodeCtx,
                        ctx2: &mut NodeCtx,
                        i: &str,
                        j: impl T,
                        k: _,
                    ) {
                    }
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
                let _: syn::File =
                    syn::parse2(out.clone()).unwrap_or_else(|e| panic!("{e}: {out}"));
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
            let node: TokenStream =
                format!("mod m {{ #[node({soup})] async fn a(s: &mut S) {{}} }}")
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
}
