//! The checkpoint items: `STATE_SCHEMA`, the input fingerprints, `GRAPH_HASH` (a `const`
//! expression that combines the canonical text's hash with the fingerprints), `INPUT_SCHEMA`,
//! `ACCEPTED_GRAPHS`, and the migrations of `migrate_from`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::{Ident, Type};

use super::Gen;
use super::probes::on_unimplemented;
use crate::canonical::{self, Names, Version};
use crate::hash;
use crate::parse::{span_range, tokens_to_string};

/// What `#[workflow]` generates about checkpoints that outlive a release: the schema
/// fingerprints, the graph hashes, and the migrations.
pub(super) struct SchemaItems {
    /// Module items: `STATE_SCHEMA`, the hidden fingerprint arrays, the `const` assertions.
    pub(super) items: TokenStream,
    /// `GRAPH_HASH`'s value, a `const` expression.
    pub(super) graph_hash: TokenStream,
    pub(super) graph_hash_doc: String,
    /// `Workflow::INPUT_SCHEMA`'s value.
    pub(super) input_schema: TokenStream,
    /// `Workflow::ACCEPTED_GRAPHS`'s elements.
    pub(super) accepted_graphs: Vec<TokenStream>,
    /// `Workflow::migrate_state`, when there is a `migrate_from`.
    pub(super) migrate_state: TokenStream,
    /// The conversion traits `migrate_state`, `migrate_output` and `migrate_item` call, for
    /// the hidden probe module.
    pub(super) migrate_probe: TokenStream,
    /// Today's canonical text, which `GRAPH_HASH`'s text hash is computed from
    /// (`Execute::CANONICAL`).
    pub(super) canonical: String,
}

/// `<T as StateSchema>::SCHEMA`, spanned at the user's `T`: when `T` does not implement
/// `StateSchema`, rustc's error (with the trait's `on_unimplemented` note) points there. Each
/// type is named once in such an expression, in one constant, so one missing derive gives one
/// error however many generated items use the fingerprint.
///
/// A trait object or `impl Trait` (no type a state, input or output can be, which rustc
/// reports at the type) is put in parentheses, so that `<Trait + as …>` (a bare trait object
/// with a trailing `+` parses) does not add a parse error of the expansion to that report.
pub(super) fn schema_of(rt: &TokenStream, ty: &Type) -> TokenStream {
    let (first, last) = span_range(ty);
    let mut inner = ty;
    while let Type::Group(group) = inner {
        inner = &group.elem;
    }
    let mut out = if matches!(inner, Type::TraitObject(_) | Type::ImplTrait(_)) {
        quote_spanned!(first=> <(#ty) as #rt::StateSchema>)
    } else {
        quote_spanned!(first=> <#ty as #rt::StateSchema>)
    };
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
    fingerprint_of(rt, kind, first, &[(parts, "__GRAPH_INPUT_SCHEMAS")])
}

/// [`fingerprint`] with parts from several fingerprint arrays: each `(name, k)` part adds
/// the name and element `k` of its array, in the order given.
fn fingerprint_of(
    rt: &TokenStream,
    kind: &str,
    first: Option<u64>,
    groups: &[(&[(String, usize)], &str)],
) -> TokenStream {
    let mut out = quote!(#rt::Fingerprint::new(#kind));
    if let Some(first) = first {
        let literal = hex_literal(first);
        out.extend(quote!(.u64(#literal)));
    }
    for (parts, array) in groups {
        let array = Ident::new(array, Span::call_site());
        for (name, k) in *parts {
            out.extend(quote!(.str(#name).u64(#array[#k])));
        }
    }
    out.extend(quote!(.finish()));
    out
}

/// `GRAPH_HASH`'s expression for the graph whose nodes have the names `names`: the text's
/// hash, then each interrupt input's fingerprint, then (only for a parallel graph, so that
/// other graphs keep their hash) each branch output's and each map item's.
fn graph_fingerprint(g: &Gen, text_hash: u64, names: &Names) -> TokenStream {
    let graph = g.plan.graph;
    let interrupts = names.interrupts(graph);
    let outputs = names.outputs(graph);
    let items = names.items(graph);
    let subgraphs = names.subgraphs(graph);
    fingerprint_of(
        &g.rt,
        crate::hash::GRAPH_KIND,
        Some(text_hash),
        &[
            (&interrupts, "__GRAPH_INPUT_SCHEMAS"),
            (&outputs, "__GRAPH_OUTPUT_SCHEMAS"),
            (&items, "__GRAPH_ITEM_SCHEMAS"),
            (&subgraphs, "__GRAPH_SUBGRAPH_SCHEMAS"),
        ],
    )
}

/// The fingerprint arrays of a parallel graph's branch outputs and map items, in declaration
/// order. Each element is spanned at the user's type (the branch's return type, the map
/// node's item type): one without `StateSchema` is reported there.
fn parallel_schemas(g: &Gen) -> TokenStream {
    if !g.plan.is_parallel() {
        return TokenStream::new();
    }
    let (rt, allow) = (&g.rt, &g.allow);
    let graph = g.plan.graph;
    let unit: Type = syn::parse_quote!(());
    let outputs: Vec<TokenStream> = canonical::branch_nodes(graph)
        .into_iter()
        .filter_map(|i| graph.nodes().get(i))
        .map(|node| schema_of(rt, node.produced_type().unwrap_or(&unit)))
        .collect();
    let items: Vec<TokenStream> = canonical::map_nodes(graph)
        .into_iter()
        .filter_map(|i| graph.nodes().get(i))
        .map(|node| {
            node.extras()
                .next()
                .map_or_else(|| schema_of(rt, &unit), |param| schema_of(rt, &param.ty))
        })
        .collect();
    let (output_count, item_count) = (outputs.len(), items.len());
    quote! {
        #[doc(hidden)]
        #allow
        const __GRAPH_OUTPUT_SCHEMAS: [u64; #output_count] = [#(#outputs),*];

        #[doc(hidden)]
        #allow
        const __GRAPH_ITEM_SCHEMAS: [u64; #item_count] = [#(#items),*];
    }
}

/// The fingerprints of the child workflows of the subgraph nodes, in declaration order (each
/// its `NAME` and `INPUT_SCHEMA`), named through the module's marker and spanned at the
/// user's `subgraph = m`: a module that is not a workflow is reported there. Nothing for a
/// graph without subgraph nodes.
fn subgraph_schemas(g: &Gen) -> TokenStream {
    let graph = g.plan.graph;
    let nodes = canonical::subgraph_nodes(graph);
    if nodes.is_empty() {
        return TokenStream::new();
    }
    let (rt, allow) = (&g.rt, &g.allow);
    let schemas: Vec<TokenStream> = nodes
        .into_iter()
        .filter_map(|i| graph.nodes().get(i)?.args.subgraph.as_ref())
        .map(|(path, _)| {
            let function = super::step::subgraph_module(rt, path, quote!(subgraph_fingerprint));
            quote!((#function)())
        })
        .collect();
    let count = schemas.len();
    quote! {
        #[doc(hidden)]
        #allow
        const __GRAPH_SUBGRAPH_SCHEMAS: [u64; #count] = [#(#schemas),*];
    }
}

/// The checkpoint items of a graph that passed every check: `STATE_SCHEMA` and the input
/// fingerprints (which are also the `StateSchema` probes), `GRAPH_HASH`, `INPUT_SCHEMA`,
/// `ACCEPTED_GRAPHS`, and the migrations of `migrate_from` with their collision assertions.
pub(super) fn schema_items(g: &Gen) -> SchemaItems {
    let (args, state, graph, diagnostics) = (g.args, g.state, g.plan.graph, g.diagnostics);
    let interrupts = g.plan.interrupts();
    let (rt, allow) = (g.rt.clone(), g.allow.clone());
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
    let parallel_schemas = parallel_schemas(g);
    let subgraph_schemas = subgraph_schemas(g);
    let count = interrupts.len();

    // `Input`'s variants are written as their index in declaration order (bincode), so
    // `INPUT_SCHEMA` follows that order: reordering interrupt nodes changes it.
    let declared: Vec<(String, usize)> = interrupts
        .iter()
        .enumerate()
        .map(|(k, (n, _))| (n.node.name.clone(), k))
        .collect();
    // A subgraph node's variant adds its name and its child's fingerprint (the child's name
    // and `INPUT_SCHEMA`), after the interrupt nodes': graphs without subgraph nodes keep
    // their `INPUT_SCHEMA`.
    let children: Vec<(String, usize)> = g
        .plan
        .subgraphs()
        .iter()
        .enumerate()
        .map(|(k, (task, _))| (format!("subgraph {}", task.node.name), k))
        .collect();
    let input_schema = if children.is_empty() {
        fingerprint(&rt, crate::hash::INPUT_KIND, None, &declared)
    } else {
        fingerprint_of(
            &rt,
            crate::hash::INPUT_KIND,
            None,
            &[
                (&declared, "__GRAPH_INPUT_SCHEMAS"),
                (&children, "__GRAPH_SUBGRAPH_SCHEMAS"),
            ],
        )
    };

    let (v2_hash, v2_text) = hash::text_hash(graph, Version::V2, &current);
    let graph_hash = graph_fingerprint(g, v2_hash, &current);
    let (v1_hash, v1_text) = hash::text_hash(graph, Version::V1 { state }, &current);
    let graph_hash_doc = format!(
        "The stable hash of workflow `{}`'s structure, stored in every checkpoint.\n\n\
         It changes when a node is renamed, added or removed, an edge or an error edge changes, \
         or an interrupt input type's data model changes; not when declarations are reordered, \
         node bodies change, or a type is spelled another way (`crate::Approval` for \
         `Approval`). It combines the FNV-1a 64 hash of this canonical text, `{}`, with each \
         interrupt node's name and its input type's `StateSchema` fingerprint{}:\n\n```text\n{}```\n\n\
         Checkpoints saved by the first release carry the hash of its canonical text, `{}`, \
         which is in `Workflow::ACCEPTED_GRAPHS`:\n\n```text\n{}```",
        module.name,
        hex_text(v2_hash),
        if g.plan.is_parallel() {
            ", then each branch node's name and its output type's fingerprint, and each map node's name and its item type's"
        } else {
            ""
        },
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
        accepted_graphs.push(graph_fingerprint(g, older_v2, &names));
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
            // The state is `Self`, where rustc points: respanned at the user's type.
            let target = super::migrate::respanned(state, first, last);
            let mut convert =
                quote_spanned!(first=> <#target as __graph_probes::StateMigratesFrom<#ty>>);
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
    // explained in the words of `migrate_from`. Its `Self` is the state and its parameter
    // the older type, and its impl is not hidden from rustc: the bound that fails is then
    // `State: From<Old>`, whose `Self` is the trait's, so rustc keeps the message below and
    // says in its `help:` line what the user can write ("the trait `From<OrderV1>` is not
    // implemented for `Order`") rather than naming this trait.
    let migrate_probe = if args.migrate_from.is_empty() {
        TokenStream::new()
    } else {
        let on_unimplemented = on_unimplemented(
            diagnostics,
            "`{Old}` is listed in `migrate_from`, but cannot be converted into the state `{Self}`",
            "`{Old}` does not implement `Into<{Self}>`",
            "a checkpoint saved as `{Old}` is decoded as `{Old}`, then converted into the state: implement `From<{Old}> for {Self}`",
        );
        quote! {
            #on_unimplemented
            pub(super) trait StateMigratesFrom<Old>: ::core::marker::Sized {
                fn __graph_migrate(old: Old) -> Self;
            }
            impl<S, Old: ::core::convert::Into<S>> StateMigratesFrom<Old> for S {
                #[inline(always)]
                fn __graph_migrate(old: Old) -> S {
                    ::core::convert::Into::into(old)
                }
            }
        }
    };
    let mut migrate_probe = migrate_probe;
    migrate_probe.extend(super::migrate::probe(g));
    let node_migrations = super::migrate::module_items(g);

    let items = quote! {
        #[doc = #state_doc]
        #allow
        pub const STATE_SCHEMA: u64 = #state_schema;

        #[doc(hidden)]
        #allow
        const __GRAPH_INPUT_SCHEMAS: [u64; #count] = [#(#input_schemas),*];

        #parallel_schemas
        #subgraph_schemas
        #node_migrations

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
        canonical: v2_text,
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

/// `0x1234_5678_9abc_def0`.
fn hex_literal(value: u64) -> TokenStream {
    let text = hex_text(value);
    match syn::parse_str::<syn::LitInt>(&text) {
        Ok(lit) => lit.into_token_stream(),
        Err(_) => proc_macro2::Literal::u64_unsuffixed(value).into_token_stream(),
    }
}
