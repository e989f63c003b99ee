//! The node calls: the `match` arm of `step` and of `run`'s loop that runs one node, converts
//! its return value into a route and its error into a `Transition`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;

use super::Gen;
use super::probes::{SEND_PROBE, error_trait_ident, return_trait_ident, state_trait_ident};
use super::routes::{module_ident, transition};
use crate::lower::Task;
use crate::model::{Endpoint, variant_ident};
use crate::parse::{ParamRole, output_span, span_range};

/// The `match` arm of `step` and `run` that runs node `n`; `input` is how the arm takes the
/// pending input (`input`, or `input.take()` in `run`'s loop).
fn step_arm<'c>(
    rt: &TokenStream,
    n: &Task,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &TokenStream,
) -> TokenStream {
    step_arm_with(rt, n, cursor_variant, input, None)
}

/// [`step_arm`], with `enter` run first in the arm of a node that takes `ctx` (it binds
/// `ctx`).
fn step_arm_with<'c>(
    rt: &TokenStream,
    n: &Task,
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
    n: &Task,
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
        .map(|task| step_arm(rt, task, &cursor_variant, &quote!(#input_ident)));
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
        step_arm_full(
            rt,
            task,
            &cursor_variant,
            &quote!(#input_ident.take()),
            Some(&enter),
            &finish,
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
