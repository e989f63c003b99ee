//! What a graph with parallel regions adds to `Execute`: `PARALLEL`, `region` (each join's
//! branches and whether it collects their failures), `branch` (one attempt of a branch node on
//! the shared state) and `join` (the join node, with the branches' outputs). Graphs without a
//! fan-out or a map get none of it, and keep the trait's defaults.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;

use super::Gen;
use super::step::{Site, node_arm};
use crate::lower::Call;
use crate::model::Endpoint;
use crate::parse::span_range;

/// The items of the `Execute` impl for a parallel graph; nothing for another.
pub(super) fn execute_items(g: &Gen) -> TokenStream {
    if !g.plan.is_parallel() {
        return TokenStream::new();
    }
    let region = region_fn(g);
    let branch = branch_fn(g);
    let join = join_fn(g);
    quote! {
        const PARALLEL: bool = true;
        #region
        #branch
        #join
    }
}

/// `Execute::region`: for each join, its branches in slot order and their collect flags.
fn region_fn(g: &Gen) -> TokenStream {
    let rt = &g.rt;
    let variant = |i: usize| g.plan.task(i).map(|task| &task.variant);
    let arms = g.plan.regions.iter().filter_map(|region| {
        let join = variant(region.join)?;
        let kind = match region.map_concurrency {
            Some(concurrency) => {
                let slot = region.slots.first()?;
                let node = variant(slot.node)?;
                let collect = slot.collect;
                quote! {
                    #rt::RegionKind::Map {
                        node: __GraphCursor::#node,
                        concurrency: #concurrency,
                        collect: #collect,
                    }
                }
            }
            None => {
                let branches = region.slots.iter().filter_map(|slot| variant(slot.node));
                let collect = region.slots.iter().map(|slot| slot.collect);
                quote! {
                    #rt::RegionKind::FanOut {
                        branches: &[#(__GraphCursor::#branches),*],
                        collect: &[#(#collect),*],
                    }
                }
            }
        };
        Some(quote! {
            __GraphCursor::#join => {
                const REGION: #rt::Region<__GraphCursor> = #rt::Region {
                    join: __GraphCursor::#join,
                    kind: #kind,
                };
                ::core::option::Option::Some(&REGION)
            }
        })
    });
    quote! {
        fn region(join: __GraphCursor) -> ::core::option::Option<&'static #rt::Region<__GraphCursor>> {
            match join {
                #(#arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// `Execute::branch`: one arm per branch node.
fn branch_fn(g: &Gen) -> TokenStream {
    let (rt, state) = (&g.rt, g.state);
    let cursor = Ident::new("cursor", Span::mixed_site());
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx = Ident::new("ctx", Span::mixed_site());
    let item = Ident::new("item", Span::mixed_site());
    let input = Ident::new("input", Span::mixed_site());
    let cursor_variant = |endpoint: Endpoint| g.plan.cursor_variant(endpoint);
    let arms = g
        .plan
        .tasks
        .iter()
        .filter(|task| matches!(task.call, Call::Branch { .. }))
        .map(|task| {
            node_arm(
                rt,
                task,
                Site::Branch,
                &cursor_variant,
                &quote!(#input),
                None,
                &|t, _| t,
                g,
            )
        });
    quote! {
        fn branch<'a>(
            _: &'a Workflow,
            #cursor: __GraphCursor,
            #state_ident: &'a #state,
            #ctx: &'a #rt::NodeCtx,
            #item: ::core::option::Option<&'a [u8]>,
            #input: ::core::option::Option<Input>,
        ) -> impl ::core::future::Future<Output = #rt::BranchResult> + ::core::marker::Send + 'a {
            async move {
                match #cursor {
                    #(#arms)*
                    _ => #rt::BranchResult::FailedPermanently(::core::convert::From::from(
                        ::std::format!(
                            "node `{}` is not a branch node",
                            <Workflow as #rt::Execute<Workflow>>::spec(#cursor).name
                        ),
                    )),
                }
            }
        }
    }
}

/// `Execute::join`: one arm per join node, which decodes each branch parameter from the
/// region's outputs and then runs like any node.
fn join_fn(g: &Gen) -> TokenStream {
    let (rt, state) = (&g.rt, g.state);
    let cursor = Ident::new("cursor", Span::mixed_site());
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx = Ident::new("ctx", Span::mixed_site());
    let input = Ident::new("input", Span::mixed_site());
    let outputs = Ident::new("outputs", Span::mixed_site());
    let cursor_variant = |endpoint: Endpoint| g.plan.cursor_variant(endpoint);
    let arms = g
        .plan
        .tasks
        .iter()
        .filter(|task| matches!(task.call, Call::Join { .. }))
        .map(|task| {
            node_arm(
                rt,
                task,
                Site::Join,
                &cursor_variant,
                &quote!(#input),
                None,
                &|t, _| t,
                g,
            )
        });
    quote! {
        fn join<'a>(
            _: &'a Workflow,
            #cursor: __GraphCursor,
            #state_ident: &'a mut #state,
            #ctx: &'a #rt::NodeCtx,
            #outputs: #rt::Outputs<'a>,
        ) -> impl ::core::future::Future<Output = #rt::Transition<__GraphCursor>> + ::core::marker::Send + 'a {
            async move {
                let #input: ::core::option::Option<Input> = ::core::option::Option::None;
                match #cursor {
                    #(#arms)*
                    _ => #rt::Transition::FailedPermanently(::core::convert::From::from(
                        ::std::format!(
                            "node `{}` is not the join of a parallel region",
                            <Workflow as #rt::Execute<Workflow>>::spec(#cursor).name
                        ),
                    )),
                }
            }
        }
    }
}

/// The assertion that the state is `Sync`, for a graph that fans out: its branches run at the
/// same time on one task and each reads the state through `&State`. Spanned at `state = T`,
/// and explained by rustc (see [`sync_probe`]).
pub(super) fn state_is_sync(g: &Gen) -> TokenStream {
    if !g.plan.is_parallel() {
        return TokenStream::new();
    }
    let state = g.state;
    let allow = &g.allow;
    let (first, last) = span_range(state);
    let probe = Ident::new(SYNC_PROBE, first);
    let mut check = quote_spanned!(first=> __graph_probes::#probe::state_must_be_sync::<#state>);
    check = quote_spanned!(last=> #check);
    quote! {
        #allow
        const _: fn() = #check;
    }
}

/// The probe behind [`state_is_sync`], for the hidden probe module: a plain `Sync` bound, in
/// the manner of the `Send` probe. rustc explains a type that is not `Sync` better than a
/// message of ours could (which field, and what to use instead: "within `Claim`, the trait
/// `Sync` is not implemented for `Cell<u64>`"), and names where the bound is declared, so
/// that is where the reason goes: "required by a bound in
/// `ParallelBranchesShareTheState::state_must_be_sync`".
pub(super) fn sync_probe(g: &Gen) -> TokenStream {
    if !g.plan.is_parallel() {
        return TokenStream::new();
    }
    let probe = Ident::new(SYNC_PROBE, Span::call_site());
    quote! {
        pub(super) struct #probe;
        impl #probe {
            #[inline(always)]
            pub(super) fn state_must_be_sync<T: ?::core::marker::Sized + ::core::marker::Sync>() {}
        }
    }
}

/// The name of [`sync_probe`]'s type, which rustc shows.
pub(super) const SYNC_PROBE: &str = "ParallelBranchesShareTheState";
