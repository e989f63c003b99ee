//! Codegen, split by what each part generates: `routes` (the `<node>::Next` enums), `input`
//! (the `Input` enum), `probes` (the hidden checks that give rustc's errors our words),
//! `schema` (`STATE_SCHEMA`, `GRAPH_HASH` and the other checkpoint items), `step` (the node
//! calls of `step` and `run`) and `workflow` (the cursor, the constants and the `Workflow` and
//! `Execute` impls). Each works from the [`Plan`] that `lower` made of the checked graph.
//!
//! Every runtime name is reached through `<crate>::__private` (`::graph_runtime` unless
//! `crate = …` says otherwise; `paths` builds them) or `::core` / `::std`, so the output never depends on what the
//! user imported; generated locals use `Span::mixed_site()`; the output order is the source
//! order, so expansion is deterministic.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::{Item, Type};

use crate::lower::Plan;
use crate::model::Graph;
use crate::parse::WorkflowArgs;

mod frontier;
mod input;
mod migrate;
pub(crate) mod paths;
mod probes;
mod routes;
mod schema;
mod step;
mod workflow;

#[cfg(test)]
mod tests;

#[cfg(test)]
use crate::mermaid::mermaid;

pub(crate) use routes::module_ident;

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

/// The path generated code uses to reach `__private` (see [`paths`]).
pub(crate) fn private_path(args: &WorkflowArgs) -> TokenStream {
    paths::private(&args.krate)
}

/// What every part of the expansion shares.
pub(crate) struct Gen<'g> {
    pub(crate) args: &'g WorkflowArgs,
    /// The state type, as the user wrote it.
    pub(crate) state: &'g Type,
    pub(crate) plan: Plan<'g>,
    /// `<crate>::__private`, from the workflow module.
    pub(crate) rt: TokenStream,
    /// `<crate>::__private`, from a module nested in the workflow module.
    pub(crate) nested_rt: TokenStream,
    /// The `#[allow(…)]` on every generated item.
    pub(crate) allow: TokenStream,
    /// Whether the `diagnostic::` attributes resolve here: rustc does not resolve that
    /// namespace under `#![no_implicit_prelude]`, so such modules get plain trait errors.
    pub(crate) diagnostics: bool,
}

/// The whole successful expansion: the module's own items, then the generated ones.
pub(crate) fn expand(args: &WorkflowArgs, state: &Type, graph: &Graph) -> TokenStream {
    let module = graph.module;
    let g = Gen {
        args,
        state,
        plan: Plan::build(graph),
        rt: private_path(args),
        nested_rt: paths::nested_private(&args.krate),
        allow: allow_lints(),
        diagnostics: !module
            .item
            .attrs
            .iter()
            .any(|attr| attr.path().is_ident("no_implicit_prelude")),
    };
    let allow = &g.allow;
    let next_modules = g
        .plan
        .tasks
        .iter()
        .map(|task| routes::next_module(allow, task));
    let schemas = schema::schema_items(&g);
    let probes = probes::probe_module(&g, &schemas.migrate_probe);
    let input = input::input_enum(&g);
    let workflow = workflow::items(&g, &schemas);

    let generated = quote! {
        #(#next_modules)*
        #probes
        #input
        #workflow
    };
    let mut item = module.item.clone();
    let mut items: Vec<Item> = module.items.clone();
    items.push(Item::Verbatim(generated));
    item.content = Some((Default::default(), items));
    item.into_token_stream()
}
