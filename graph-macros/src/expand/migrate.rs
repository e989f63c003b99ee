//! What the runtime needs to keep reading the records a session saves besides its state —
//! branch outputs and map items — across releases: the `Execute` items `CANONICAL`,
//! `FINGERPRINTS`, `output_schema`, `item_schema`, `migrate_output` and `migrate_item`, and
//! the migrations of `#[node(migrate_from = [...])]` with their `const` assertions and their
//! conversion probe.
//!
//! A branch node's `migrate_from` lists older versions of its output type; the node before
//! `each` lists older versions of the map's item type, which `migrate_item` answers for the
//! map node (the runtime keys a map's items by the map node, the target of `each`). Neither
//! list enters `GRAPH_HASH`: an older type says how to read what was saved, not what the
//! graph is.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::{Ident, Type};

use super::Gen;
use super::probes::on_unimplemented;
use super::schema::schema_of;
use crate::canonical::{self, Names};
use crate::lower::Task;
use crate::parse::{span_range, tokens_to_string};

/// One node's `migrate_from`, resolved against the graph.
struct Migration<'g> {
    /// Output migrations are keyed by the branch node, item migrations by the map node.
    keyed_by: &'g Task<'g>,
    /// The node that declares the list (the branch, or the node before `each`).
    declared_on: &'g Task<'g>,
    kind: Kind,
    /// The index of the current type's fingerprint in `__GRAPH_OUTPUT_SCHEMAS` or
    /// `__GRAPH_ITEM_SCHEMAS`.
    index: usize,
    /// The type values are migrated into.
    current: Type,
    /// The older types, in the listed order.
    older: &'g [Type],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Output,
    Item,
}

impl Kind {
    /// The name of the fingerprint array of the current types.
    fn schemas(self) -> Ident {
        match self {
            Kind::Output => Ident::new("__GRAPH_OUTPUT_SCHEMAS", Span::call_site()),
            Kind::Item => Ident::new("__GRAPH_ITEM_SCHEMAS", Span::call_site()),
        }
    }

    /// The name of the fingerprint array of the older types of the entry `index`.
    fn older_schemas(self, index: usize) -> Ident {
        match self {
            Kind::Output => format_ident!("__GRAPH_OUTPUT_MIGRATES_FROM_{}", index),
            Kind::Item => format_ident!("__GRAPH_ITEM_MIGRATES_FROM_{}", index),
        }
    }
}

/// Every `#[node(migrate_from = [...])]` of a graph that passed every check, outputs first,
/// each in declaration order.
fn migrations<'g>(g: &'g Gen<'g>) -> Vec<Migration<'g>> {
    let graph = g.plan.graph;
    let unit: Type = syn::parse_quote!(());
    let branches = canonical::branch_nodes(graph);
    let maps = canonical::map_nodes(graph);
    let mut out = Vec::new();
    for (i, task) in g.plan.tasks.iter().enumerate() {
        let Some((_, older)) = &task.node.args.migrate_from else {
            continue;
        };
        if older.is_empty() {
            continue;
        }
        let current = graph
            .migrated_type(i)
            .flatten()
            .map_or_else(|| unit.clone(), |(_, ty)| ty.clone());
        if let Some(index) = branches.iter().position(|&b| b == i) {
            out.push(Migration {
                keyed_by: task,
                declared_on: task,
                kind: Kind::Output,
                index,
                current,
                older,
            });
            continue;
        }
        // The node before `each`: its region's map node.
        let map = graph
            .region_from(i)
            .and_then(|r| g.plan.region(r))
            .and_then(|region| region.slots.first())
            .map(|slot| slot.node);
        let Some((index, map_task)) = map.and_then(|m| {
            let index = maps.iter().position(|&n| n == m)?;
            Some((index, g.plan.task(m)?))
        }) else {
            continue;
        };
        out.push(Migration {
            keyed_by: map_task,
            declared_on: task,
            kind: Kind::Item,
            index,
            current,
            older,
        });
    }
    out.sort_by_key(|m| m.kind == Kind::Item);
    out
}

/// The module items: one fingerprint array per node's `migrate_from` (each element spanned
/// at the user's type, so a type without `StateSchema` is reported there, once), and the
/// `const` assertions that no listed type has the fingerprint of the current type or of
/// another listed type.
pub(super) fn module_items(g: &Gen) -> TokenStream {
    let (rt, allow) = (&g.rt, &g.allow);
    let mut out = TokenStream::new();
    for m in migrations(g) {
        let array = m.kind.older_schemas(m.index);
        let schemas = m.older.iter().map(|ty| schema_of(rt, ty));
        let count = m.older.len();
        out.extend(quote! {
            #[doc(hidden)]
            #allow
            const #array: [u64; #count] = [#(#schemas),*];
        });
        let current_schemas = m.kind.schemas();
        let index = m.index;
        let current = tokens_to_string(&m.current);
        let node = &m.declared_on.node.name;
        let (what, saved) = match m.kind {
            Kind::Output => (
                format!("the output type `{current}` of node `{node}`"),
                "a saved output",
            ),
            Kind::Item => (
                format!("the item type `{current}` of the map after node `{node}`"),
                "a saved item",
            ),
        };
        for (j, ty) in m.older.iter().enumerate() {
            let (first, _) = span_range(ty);
            let name = tokens_to_string(ty);
            let message = format!(
                "`{name}` in `migrate_from` has the same state schema fingerprint as {what}: {saved} with this fingerprint already decodes as `{current}`, so `{name}` would never be used; remove it from `migrate_from`"
            );
            out.extend(quote_spanned! {first=>
                #allow
                const _: () = ::core::assert!(#array[#j] != #current_schemas[#index], #message);
            });
            for (i, earlier) in m.older.iter().enumerate().take(j) {
                let earlier = tokens_to_string(earlier);
                let message = format!(
                    "`{name}` and `{earlier}` in `migrate_from` of node `{node}` have the same state schema fingerprint (the same serde data model), so {saved} with it cannot say which of them to decode; remove one of them"
                );
                out.extend(quote_spanned! {first=>
                    #allow
                    const _: () = ::core::assert!(#array[#j] != #array[#i], #message);
                });
            }
        }
    }
    out
}

/// The items of the `Execute` impl: `CANONICAL` and `FINGERPRINTS` for every graph;
/// `output_schema` and `item_schema` for a graph with parallel regions; `migrate_output` and
/// `migrate_item` when some node lists older types.
pub(super) fn execute_items(g: &Gen, canonical: &str) -> TokenStream {
    let graph = g.plan.graph;
    let current = Names::current(graph);
    // Sorted by kind ("input" < "item" < "output"), then by node name.
    let inputs = current
        .interrupts(graph)
        .into_iter()
        .map(|(name, k)| quote!(("input", #name, __GRAPH_INPUT_SCHEMAS[#k])));
    let without_kind = |parts: Vec<(String, usize)>, kind: &str| -> Vec<(String, usize)> {
        let prefix = format!("{kind} ");
        parts
            .into_iter()
            .map(|(line, k)| (line.strip_prefix(&prefix).unwrap_or(&line).to_owned(), k))
            .collect()
    };
    let items = without_kind(current.items(graph), "item")
        .into_iter()
        .map(|(name, k)| quote!(("item", #name, __GRAPH_ITEM_SCHEMAS[#k])));
    let outputs = without_kind(current.outputs(graph), "output")
        .into_iter()
        .map(|(name, k)| quote!(("output", #name, __GRAPH_OUTPUT_SCHEMAS[#k])));
    let mut out = quote! {
        const CANONICAL: &'static str = #canonical;
        const FINGERPRINTS: &'static [(&'static str, &'static str, u64)] =
            &[#(#inputs,)* #(#items,)* #(#outputs,)*];
    };
    if g.plan.is_parallel() {
        out.extend(schema_fn(g, Kind::Output));
        out.extend(schema_fn(g, Kind::Item));
    }
    let migrations = migrations(g);
    for kind in [Kind::Output, Kind::Item] {
        let of_kind: Vec<&Migration> = migrations.iter().filter(|m| m.kind == kind).collect();
        if !of_kind.is_empty() {
            out.extend(migrate_fn(g, kind, &of_kind));
        }
    }
    out
}

/// `Execute::output_schema` / `Execute::item_schema`: the fingerprint arrays, by node.
fn schema_fn(g: &Gen, kind: Kind) -> TokenStream {
    let graph = g.plan.graph;
    let (nodes, name, param) = match kind {
        Kind::Output => (canonical::branch_nodes(graph), "output_schema", "branch"),
        Kind::Item => (canonical::map_nodes(graph), "item_schema", "map"),
    };
    let array = kind.schemas();
    let arms = nodes.iter().enumerate().filter_map(|(k, &i)| {
        let variant = &g.plan.task(i)?.variant;
        Some(quote!(__GraphCursor::#variant => #array[#k],))
    });
    let name = Ident::new(name, Span::call_site());
    let param = Ident::new(param, Span::mixed_site());
    quote! {
        fn #name(#param: __GraphCursor) -> u64 {
            match #param {
                #(#arms)*
                _ => 0,
            }
        }
    }
}

/// `Execute::migrate_output` / `Execute::migrate_item`: for the node at the cursor, the listed
/// type whose fingerprint the saved value has, decoded, converted and encoded again.
fn migrate_fn(g: &Gen, kind: Kind, migrations: &[&Migration]) -> TokenStream {
    let rt = &g.rt;
    let (name, param) = match kind {
        Kind::Output => ("migrate_output", "branch"),
        Kind::Item => ("migrate_item", "map"),
    };
    let name = Ident::new(name, Span::call_site());
    let param = Ident::new(param, Span::mixed_site());
    let schema = Ident::new("schema", Span::mixed_site());
    let bytes = Ident::new("bytes", Span::mixed_site());
    let arms = migrations.iter().map(|m| {
        let variant = &m.keyed_by.variant;
        let array = m.kind.older_schemas(m.index);
        let tests = m.older.iter().enumerate().map(|(j, old)| {
            let migrate = migrate_call(&m.current, old, &bytes);
            quote! {
                if #schema == #array[#j] {
                    return ::core::option::Option::Some(#migrate);
                }
            }
        });
        quote! {
            __GraphCursor::#variant => {
                #(#tests)*
                ::core::option::Option::None
            }
        }
    });
    quote! {
        fn #name(
            #param: __GraphCursor,
            #schema: u64,
            #bytes: &[u8],
        ) -> ::core::option::Option<::core::result::Result<::std::vec::Vec<u8>, #rt::DecodeError>> {
            match #param {
                #(#arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// `<Current as __graph_probes::MigratesFrom<Old>>::__graph_migrate(bytes)`, spanned at the
/// user's `Old` (the current type's tokens too, since rustc points at the `Self` type of the
/// failing bound): a type that cannot be decoded or converted is reported there.
fn migrate_call(current: &Type, old: &Type, bytes: &Ident) -> TokenStream {
    let (first, last) = span_range(old);
    let current = respanned(current, first, last);
    let migrate = Ident::new("__graph_migrate", last);
    let mut call = quote_spanned!(first=> <#current as __graph_probes::MigratesFrom<#old>>);
    call.extend(quote_spanned!(last=> ::#migrate(#bytes)));
    call
}

/// `tokens` with every span replaced: the first tokens get `first`, the last one `last`, so
/// that rustc's underline covers exactly the user's tokens that carry those spans.
pub(super) fn respanned(tokens: &impl quote::ToTokens, first: Span, last: Span) -> TokenStream {
    fn set(stream: TokenStream, span: Span) -> TokenStream {
        stream
            .into_iter()
            .map(|token| match token {
                TokenTree::Group(group) => {
                    let mut new = Group::new(group.delimiter(), set(group.stream(), span));
                    new.set_span(span);
                    TokenTree::Group(new)
                }
                mut other => {
                    other.set_span(span);
                    other
                }
            })
            .collect()
    }
    let tokens: Vec<TokenTree> = tokens.to_token_stream().into_iter().collect();
    let count = tokens.len();
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let span = if i + 1 == count { last } else { first };
            set(TokenStream::from(token), span)
        })
        .collect()
}

/// The conversion trait `migrate_output` and `migrate_item` go through, for the hidden probe
/// module; nothing when no node lists older types.
///
/// Its `Self` is the current type and its parameter the older one, so that when `Old` does
/// not convert, rustc reports the message below and, in its `help:` line, the bound the user
/// can write: "the trait `From<FraudScoreV1>` is not implemented for `FraudScore`".
pub(super) fn probe(g: &Gen) -> TokenStream {
    if migrations(g).is_empty() {
        return TokenStream::new();
    }
    let rt = &g.nested_rt;
    let on_unimplemented = on_unimplemented(
        g.diagnostics,
        "`{Old}` is listed in `migrate_from`, but cannot be converted into `{Self}`, the type it is an older version of",
        "`{Old}` does not implement `Into<{Self}>`",
        "a saved value of an older type is decoded as that type, then converted into the type the node produces now: implement `From<{Old}> for {Self}`",
    );
    quote! {
        #on_unimplemented
        pub(super) trait MigratesFrom<Old>: ::core::marker::Sized {
            fn __graph_migrate(
                bytes: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #rt::DecodeError>;
        }
        impl<Current, Old> MigratesFrom<Old> for Current
        where
            Current: #rt::serde::Serialize,
            Old: #rt::serde::de::DeserializeOwned + ::core::convert::Into<Current>,
        {
            #[inline(always)]
            fn __graph_migrate(
                bytes: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #rt::DecodeError> {
                #rt::migrate_value::<Old, Current>(bytes)
            }
        }
    }
}
