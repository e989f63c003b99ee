//! The node calls: the `match` arm of `step` and of `run`'s loop that runs one node, converts
//! its return value into a route and its error into a `Transition`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Ident, Type};

use super::Gen;
use super::probes::{SEND_PROBE, error_trait_ident, return_trait_ident, state_trait_ident};
use super::routes::{module_ident, transition};
use crate::lower::{Call, Exit, Task};
use crate::model::{Endpoint, variant_ident};
use crate::parse::{ParamRole, output_span, result_ok_type, span_range};

/// Where a node's arm is generated, which decides how it gets the state, its item and its
/// branch outputs, and what its outcome becomes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Site {
    /// `step` or `run`: `&mut State`, the outcome is a `Transition`.
    Step,
    /// `branch`: `&State` and the item, the outcome is a `BranchResult`.
    Branch,
    /// `join`: `&mut State` and the branch outputs, the outcome is a `Transition`.
    Join,
}

/// The `match` arm of `step` that runs node `n`; `input` is how the arm takes the pending
/// input.
fn step_arm<'c>(
    rt: &TokenStream,
    n: &Task,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
    facts: &dyn RegionFacts,
) -> TokenStream {
    node_arm(
        rt,
        n,
        Site::Step,
        cursor_variant,
        input,
        None,
        &|t, _| t,
        facts,
    )
}

/// What a node's arm needs to know about the regions around it: the join parameter types
/// (for the probe that a branch returns what its join takes), a map's item type, and the
/// branch outputs a join decodes.
pub(super) trait RegionFacts {
    /// `let` statements binding the join's branch parameters from `outputs`, and the local
    /// of each (by parameter index).
    fn join_bindings(&self, n: &Task) -> (TokenStream, Vec<(usize, Ident)>);
    /// The type node `n`'s output must have (its join parameter's `O`), when the tokens say it.
    fn branch_output(&self, n: &Task) -> Option<&Type>;
    /// The item type of the map that node `n` is before.
    fn map_item(&self, n: &Task) -> Option<&Type>;
    /// The join cursor of the region node `n` is before.
    fn region_join(&self, n: &Task) -> Option<&Ident>;
}

impl RegionFacts for Gen<'_> {
    fn join_bindings(&self, n: &Task) -> (TokenStream, Vec<(usize, Ident)>) {
        let Call::Join { region } = n.call else {
            return (TokenStream::new(), Vec::new());
        };
        let Some(lowered) = self.plan.region(region) else {
            return (TokenStream::new(), Vec::new());
        };
        let rt = &self.rt;
        let outputs = Ident::new("outputs", Span::mixed_site());
        let decode_error = Ident::new("__graph_decode_error", Span::mixed_site());
        let mut bindings = TokenStream::new();
        let mut locals = Vec::new();
        let map = lowered.map_concurrency.is_some();
        for (slot_index, slot) in lowered.slots.iter().enumerate() {
            let Some(k) = n
                .node
                .params
                .iter()
                .position(|p| std::ptr::eq(p, slot.param))
            else {
                continue;
            };
            let local = format_ident!("__graph_branch_{}", k, span = Span::mixed_site());
            let ty = &slot.param.ty;
            let read = match (map, slot.collect) {
                (false, false) => quote!(#outputs.output(#slot_index)),
                (false, true) => quote!(#outputs.result(#slot_index)),
                (true, false) => quote!(#outputs.outputs()),
                (true, true) => quote!(#outputs.results()),
            };
            // Spanned at the user's type: a type that does not match the branch's output, or
            // cannot be decoded, is reported there.
            let (first, _) = span_range(ty);
            let first = Span::mixed_site().located_at(first);
            bindings.extend(quote_spanned! {first=>
                let #local: #ty = match #read {
                    ::core::result::Result::Ok(value) => value,
                    ::core::result::Result::Err(#decode_error) => {
                        return #rt::Transition::FailedPermanently(#decode_error);
                    }
                };
            });
            locals.push((k, local));
        }
        (bindings, locals)
    }

    fn branch_output(&self, n: &Task) -> Option<&Type> {
        let Call::Branch { region, slot } = n.call else {
            return None;
        };
        self.plan.region(region)?.slots.get(slot)?.output
    }

    fn map_item(&self, n: &Task) -> Option<&Type> {
        let Exit::Map { region } = n.exit else {
            return None;
        };
        let node = self.plan.region(region)?.slots.first()?.node;
        self.plan
            .task(node)?
            .node
            .extras()
            .next()
            .map(|param| &param.ty)
    }

    fn region_join(&self, n: &Task) -> Option<&Ident> {
        let (Exit::Map { region } | Exit::FanOut { region }) = n.exit else {
            return None;
        };
        let join = self.plan.region(region)?.join;
        self.plan.task(join).map(|task| &task.variant)
    }
}

/// The `match` arm that runs node `n` at `site`: `input` is how the arm takes the pending
/// input (`input`, or `input.take()` in `run`'s loop); `enter` runs first in the arm of a
/// node that takes `ctx` (it binds `ctx`); `finish(transition, target)` turns each outcome (a
/// `Transition` expression, and the route's target when it is one) into the arm's result:
/// the value itself in `step`, the loop's next move in `run`.
#[allow(clippy::too_many_arguments)]
pub(super) fn node_arm<'c>(
    rt: &TokenStream,
    n: &Task,
    site: Site,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
    enter: Option<&TokenStream>,
    finish: &dyn Fn(TokenStream, Option<Endpoint>) -> TokenStream,
    facts: &dyn RegionFacts,
) -> TokenStream {
    let variant = &n.variant;
    // A branch or a join reached through `step`: the runner schedules those itself, so this
    // is a bug in the runner, reported rather than panicking.
    let expected = match n.call {
        Call::Step => Site::Step,
        Call::Branch { .. } => Site::Branch,
        Call::Join { .. } => Site::Join,
    };
    if site == Site::Step && expected != Site::Step {
        let (what, how) = if expected == Site::Branch {
            ("a branch of a parallel region", "`Execute::branch`")
        } else {
            ("the join of a parallel region", "`Execute::join`")
        };
        let message = format!(
            "node `{}` is {what}: the runner runs it with {how}, not `Execute::step`",
            n.node.name
        );
        let failed = finish(
            quote!(#rt::Transition::FailedPermanently(::core::convert::From::from(#message))),
            None,
        );
        return quote!(__GraphCursor::#variant => #failed,);
    }
    let enter = if n
        .node
        .params
        .iter()
        .any(|p| matches!(p.role, ParamRole::Ctx | ParamRole::Child))
    {
        enter.cloned().unwrap_or_default()
    } else {
        TokenStream::new()
    };
    let func = &n.node.ident;
    let out = Ident::new("__graph_out", Span::mixed_site());
    let input_value = Ident::new("__graph_input", Span::mixed_site());
    let item_value = Ident::new("__graph_item", Span::mixed_site());
    let error = Ident::new("__graph_error", Span::mixed_site());
    let (join_bindings, join_locals) = if site == Site::Join {
        facts.join_bindings(n)
    } else {
        (TokenStream::new(), Vec::new())
    };

    // Arguments in declared order; each spanned over the user's parameter type, so a
    // mismatch (`&mut Other` instead of the state) is reported on the user's tokens.
    let call_args = n.node.params.iter().enumerate().map(|(k, param)| {
        let (first, last) = span_range(&param.ty);
        let first = Span::mixed_site().located_at(first);
        let last = Span::mixed_site().located_at(last);
        match param.role {
            ParamRole::State { .. } => {
                // Through the node's state trait: a parameter of another type is reported in
                // the workflow's words, at the parameter's type. A branch shares the state
                // with its siblings, so it gets `&State`.
                let local = Ident::new("state", last);
                let mut trait_ident = state_trait_ident(n);
                trait_ident.set_span(first);
                let method = Ident::new("__graph_state", last);
                let mut call = quote_spanned!(first=> __graph_probes::#trait_ident::#method);
                if site == Site::Branch {
                    call.extend(quote_spanned!(last=> (#local)));
                } else {
                    call.extend(quote_spanned!(last=> (&mut *#local)));
                }
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
            ParamRole::Child => {
                let local = Ident::new("ctx", last);
                let Some((path, _)) = &n.node.args.subgraph else {
                    // `parse` classifies a parameter as the child only on a subgraph node.
                    return quote!(#local);
                };
                let make = child_constructor(rt, path);
                quote_spanned!(first=> (#make)(#local))
            }
            ParamRole::Extra => {
                let local = join_locals
                    .iter()
                    .find(|(j, _)| *j == k)
                    .map_or_else(|| item_value.clone(), |(_, local)| local.clone());
                let mut local = local;
                local.set_span(last);
                quote!(#local)
            }
        }
    });
    // The conversion is spanned over the user's return type: a wrong one is reported there.
    let (ret_first, ret_last) = output_span(n.node);
    let ret_first = Span::mixed_site().located_at(ret_first);
    let ret_last = Span::mixed_site().located_at(ret_last);
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

    let permanent = Ident::new("__graph_permanent", Span::mixed_site());
    // The node's future must be `Send` (runners move runs across threads); checking it here
    // reports a `!Send` node at its name rather than at `#[workflow]`.
    let at_func = Span::mixed_site().located_at(func.span());
    let probe = Ident::new(SEND_PROBE, at_func);
    let mut probe_fn = func.clone();
    probe_fn.set_span(at_func);
    let call = quote_spanned!(at_func=> __graph_probes::#probe::#probe_fn(#func(#(#call_args),*)));
    let (failed_permanently, failed, missing_input) = if site == Site::Branch {
        (
            quote!(#rt::BranchResult::FailedPermanently(#error)),
            quote!(#rt::BranchResult::Failed(#error)),
            quote!(#rt::BranchResult::MissingInput),
        )
    } else {
        (
            finish(quote!(#rt::Transition::FailedPermanently(#error)), None),
            finish(quote!(#rt::Transition::Failed(#error)), None),
            finish(quote!(#rt::Transition::MissingInput), None),
        )
    };
    let on_error = quote! {
        ::core::result::Result::Err(#error) => {
            let #error = #boxed;
            if #permanent { #failed_permanently } else { #failed }
        }
    };
    // What the return value becomes, by the node's exit: a route (checked by the node's
    // return trait), the items of a map, or a branch's output.
    let fallible = n
        .node
        .return_type()
        .is_some_and(|ty| result_ok_type(ty).is_some());
    let outcome = match n.exit {
        Exit::Routes | Exit::FanOut { .. } => {
            let mut trait_ident = return_trait_ident(n);
            trait_ident.set_span(ret_first);
            let mut out_at_ret = out.clone();
            out_at_ret.set_span(ret_last);
            let route_fn = Ident::new("__graph_route", ret_last);
            // `identity(out)` starts at the type's first token and ends at its last, so rustc
            // underlines the whole return type.
            let mut argument = quote_spanned!(ret_first=> ::core::convert::identity);
            argument.extend(quote_spanned!(ret_last=> (#out_at_ret)));
            let route =
                quote_spanned!(ret_first=> __graph_probes::#trait_ident::#route_fn(#argument));
            let route_arms: Vec<TokenStream> = if n.branches() {
                let module = module_ident(n.node);
                n.targets
                    .iter()
                    .zip(&n.target_idents)
                    .map(|(target, ident)| {
                        let route =
                            variant_ident(&crate::model::ident_name(ident), Span::call_site());
                        let transition =
                            finish(transition(rt, *target, cursor_variant), Some(*target));
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
            quote! {
                match #route {
                    #(#route_arms)*
                    #on_error
                }
            }
        }
        Exit::Map { .. } => {
            // `Vec<I>`, `I` the map node's item type: a node that returns anything else is
            // reported at the map node's item type, rustc's own "mismatched types".
            let items = Ident::new("__graph_items", Span::mixed_site());
            let encoded = Ident::new("__graph_encoded", Span::mixed_site());
            let join = facts.region_join(n);
            let typed = match facts.map_item(n) {
                Some(item_ty) => {
                    let (first, last) = span_range(item_ty);
                    let first = Span::mixed_site().located_at(first);
                    let last = Span::mixed_site().located_at(last);
                    let mut items_at = items.clone();
                    items_at.set_span(last);
                    quote_spanned! {first=>
                        let #items: ::std::vec::Vec<#item_ty> = #items_at;
                    }
                }
                None => TokenStream::new(),
            };
            let opened = finish(
                quote!(#rt::Transition::Map { join: __GraphCursor::#join, items: #encoded }),
                None,
            );
            let encode_failed = finish(quote!(#rt::Transition::FailedPermanently(#error)), None);
            let on_items = quote! {
                #typed
                let #encoded: ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, #rt::NodeError> =
                    #items.iter().map(|item| #rt::encode_output(item)).collect();
                match #encoded {
                    ::core::result::Result::Ok(#encoded) => #opened,
                    ::core::result::Result::Err(#error) => #encode_failed,
                }
            };
            if fallible {
                quote! {
                    match #out {
                        ::core::result::Result::Ok(#items) => { #on_items }
                        #on_error
                    }
                }
            } else {
                quote! {{
                    let #items = #out;
                    #on_items
                }}
            }
        }
        Exit::Output => {
            let value = Ident::new("__graph_value", Span::mixed_site());
            // The output must be what the join takes: rustc's "mismatched types", at the
            // join's parameter type.
            let typed = match facts.branch_output(n) {
                Some(output_ty) => {
                    let (first, last) = span_range(output_ty);
                    let first = Span::mixed_site().located_at(first);
                    let last = Span::mixed_site().located_at(last);
                    let mut value_at = value.clone();
                    value_at.set_span(last);
                    quote_spanned! {first=>
                        let #value: #output_ty = #value_at;
                    }
                }
                None => TokenStream::new(),
            };
            let on_value = quote! {
                #typed
                match #rt::encode_output(&#value) {
                    ::core::result::Result::Ok(bytes) => #rt::BranchResult::Output(bytes),
                    ::core::result::Result::Err(#error) => #rt::BranchResult::FailedPermanently(#error),
                }
            };
            if fallible {
                quote! {
                    match #out {
                        ::core::result::Result::Ok(#value) => { #on_value }
                        #on_error
                    }
                }
            } else {
                quote! {{
                    let #value = #out;
                    #on_value
                }}
            }
        }
    };
    // A map node decodes its item first; a join its branches' outputs.
    let item_param = n.node.extras().next().filter(|_| site == Site::Branch);
    let prelude = match item_param {
        Some(item_param) => {
            let item = Ident::new("item", Span::mixed_site());
            let param = &item_param.ty;
            let (first, _) = span_range(param);
            let first = Span::mixed_site().located_at(first);
            let missing = format!("map node `{}` ran without its item", n.node.name);
            quote_spanned! {first=>
                let #item_value: #param = match #item {
                    ::core::option::Option::Some(bytes) => match #rt::decode_item(bytes) {
                        ::core::result::Result::Ok(value) => value,
                        ::core::result::Result::Err(#error) => {
                            return #rt::BranchResult::FailedPermanently(#error);
                        }
                    },
                    ::core::option::Option::None => {
                        return #rt::BranchResult::FailedPermanently(::core::convert::From::from(#missing));
                    }
                };
            }
        }
        None => join_bindings,
    };
    let run = quote! {
        #prelude
        #enter
        let #out = #call.await;
        // Autoref specialisation: the error type's `Retryable` impl if it has one.
        let #permanent = {
            use #rt::{ViaDefault as _, ViaRetryable as _};
            (&#rt::Probe(&#out)).__graph_is_permanent()
        };
        #outcome
    };
    if n.node.args.interrupt && n.node.args.wait_ms.is_some() {
        // A node with a deadline takes `Option<I>`: `Some` with its input, `None` when the
        // runner runs it because the wait is over (only a worker does, after `wait_ms`).
        quote! {
            __GraphCursor::#variant => match #input {
                ::core::option::Option::Some(Input::#variant(#input_value)) => {
                    let #input_value = ::core::option::Option::Some(#input_value);
                    #run
                }
                ::core::option::Option::None => {
                    let #input_value = ::core::option::Option::None;
                    #run
                }
                #[allow(unreachable_patterns)]
                _ => #missing_input,
            },
        }
    } else if n.node.args.interrupt {
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

/// `Execute::step`: one node, by cursor.
pub(super) fn step_fn(g: &Gen) -> TokenStream {
    let (rt, state) = (&g.rt, g.state);
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx_ident = Ident::new("ctx", Span::mixed_site());
    let input_ident = Ident::new("input", Span::mixed_site());
    let cursor_ident = Ident::new("cursor", Span::mixed_site());
    let cursor_variant = |endpoint: Endpoint| g.plan.cursor_variant(endpoint);
    let arms = g
        .plan
        .tasks
        .iter()
        .map(|task| step_arm(rt, task, &cursor_variant, &quote!(#input_ident), g));
    quote! {
        fn step<'a>(
            _: &'a Workflow,
            #cursor_ident: __GraphCursor,
            #state_ident: &'a mut #state,
            #ctx_ident: &'a #rt::NodeCtx,
            #input_ident: ::core::option::Option<Input>,
        ) -> impl ::core::future::Future<Output = #rt::Transition<__GraphCursor>> + ::core::marker::Send + 'a {
            async move {
                match #cursor_ident {
                    #(#arms)*
                }
            }
        }
    }
}

/// `Execute::run`: `step` and `run` each hold the graph's code (a `match` over the cursor, the
/// node calls and their route conversions); `run` loops over it without leaving its future,
/// which is what brings a step close to a hand-written `match`.
pub(super) fn run_fn(g: &Gen) -> TokenStream {
    let (rt, state) = (&g.rt, g.state);
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx_ident = Ident::new("ctx", Span::mixed_site());
    let input_ident = Ident::new("input", Span::mixed_site());
    let cursor_ident = Ident::new("cursor", Span::mixed_site());
    let ctx_mut_ident = Ident::new("__graph_ctx", Span::mixed_site());
    let steps_ident = Ident::new("__graph_steps", Span::mixed_site());
    let base_seq_ident = Ident::new("__graph_base_seq", Span::mixed_site());
    let budget_ident = Ident::new("budget", Span::mixed_site());
    let cursor_variant = |endpoint: Endpoint| g.plan.cursor_variant(endpoint);
    // A node entered by an error edge reads the failure from the context, and the runner
    // forgets the failure once that node has run: the loop hands back to the runner right
    // after it, so no later node sees the failure. (Nodes with an error edge never run inside
    // the loop: they do not run freely.)
    let after_error_node = if g.plan.graph.has_error_edges() {
        quote!(&& #ctx_mut_ident.failure().is_none())
    } else {
        TokenStream::new()
    };
    // In `run`'s loop only a node that takes `ctx` has the context entered (its node name and
    // sequence number): the others never read it, and the runner re-enters it afterwards.
    let arms = g.plan.tasks.iter().map(|task| {
        let name = task.node.ident.to_string();
        let enter = quote! {
            #ctx_mut_ident.__enter(#name, #base_seq_ident + (#steps_ident - 1));
            let #ctx_ident: &#rt::NodeCtx = &*#ctx_mut_ident;
        };
        let this = &task.variant;
        // Each outcome either goes straight on to a node that runs freely (while the
        // budget lasts) or hands the transition back to the runner.
        let finish = |transition: TokenStream, target: Option<Endpoint>| {
            let hand_back = quote! {
                return #rt::Run { last: __GraphCursor::#this, transition: #transition, steps: #steps_ident }
            };
            match target
                .filter(|&t| g.plan.runs_freely(t))
                .and_then(|t| g.plan.cursor_variant(t))
            {
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
        node_arm(
            rt,
            task,
            Site::Step,
            &cursor_variant,
            &quote!(#input_ident.take()),
            Some(&enter),
            &finish,
            g,
        )
    });
    quote! {
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
                        #(#arms)*
                    }
                }
            }
        }
    }
}

/// `child::<W>` (of the runtime's `__private`) with `W` the `Workflow` of module `path` (`subgraph = path`),
/// spanned at `path`: the path to the function that builds a subgraph node's `Child<W>`.
///
/// The macro cannot see module `path`, so `W` is named through the marker every `#[workflow]`
/// module defines, `__GraphWorkflowModule`, brought in by a glob import that shadows the
/// runtime's `NotAWorkflowModule` of the enclosing block: a module that is not a workflow
/// leaves `W` that type, which rustc reports with `SubgraphModule`'s message at `path`. The
/// block names nothing else, so the glob import cannot shadow anything the node call uses.
pub(super) fn subgraph_module(
    rt: &TokenStream,
    path: &syn::Path,
    what: TokenStream,
) -> TokenStream {
    let (first, _) = span_range(path);
    let at = Span::call_site().located_at(first);
    let marker = Ident::new("__GraphWorkflowModule", at);
    quote_spanned! {at=>
        {
            #[allow(unused_imports)]
            use #rt::NotAWorkflowModule as #marker;
            {
                #[allow(unused_imports)]
                use #path::*;
                #rt::#what::<#marker>
            }
        }
    }
}

fn child_constructor(rt: &TokenStream, path: &syn::Path) -> TokenStream {
    subgraph_module(rt, path, quote!(child))
}
