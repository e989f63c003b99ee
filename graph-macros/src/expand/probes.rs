//! The hidden `__graph_probes` module: small traits and functions that the generated calls go
//! through, named and spanned so that rustc's errors about a node's return type, state
//! parameter, error type or `Send`-ness land on the user's tokens in the workflow's words.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::Ident;

use super::Gen;
use super::routes::module_ident;
use crate::lower::{Call, Exit, Task};

/// The name of the per-node trait that turns the node's return value into its route.
///
/// rustc always names the trait that failed in a `help:` line ("the trait `…` is not
/// implemented for `()`"), whatever `on_unimplemented` says, so each probe trait is named as
/// the rule it checks, in the workflow's words: that line then reads "the trait
/// `NodeValidateReturnsItsRoute` is not implemented for `()`".
pub(super) fn return_trait_ident(n: &Task) -> Ident {
    format_ident!("Node{}ReturnsItsRoute", n.variant, span = Span::call_site())
}

/// Two traits, in the hidden `__graph_probes` module. The first is implemented exactly for
/// the return types node `n` may have (`()` / `Result<(), E>`, or `n::Next` /
/// `Result<n::Next, E>`): calling it on the node's output is the route conversion *and* the
/// check, so a wrong return type fails here, once, with a message that names the node, its
/// successors and the fix. The second boxes `E` into a `NodeError`, and is implemented for
/// every type that converts into one: an error type that does not fails there, with a message
/// that says so.
fn return_trait(rt: &TokenStream, n: &Task, diagnostics: bool) -> TokenStream {
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
            match n.exit {
                // Its branches' outputs are what it hands on, through the join.
                Exit::FanOut { .. } => format!(
                    "node `{name}` fans out (its branches then meet in {}), so it must return `()` or `Result<(), E>`, not `{{Self}}`",
                    targets.join("")
                ),
                _ => format!(
                    "node `{name}` has one successor ({}), so it must return `()` or `Result<(), E>`, not `{{Self}}`",
                    targets.join("")
                ),
            },
            "expected `()` or `Result<(), E>`".to_owned(),
            format!(
                "only a node with several targets in its `edge!` returns a `{next}`; {error_bound}"
            ),
        )
    };
    let on_unimplemented = on_unimplemented(diagnostics, &message, &label, &note);
    let error_trait = error_trait(rt, n, diagnostics);
    let do_not_recommend = do_not_recommend(diagnostics);
    // The route and the error are two checks: `Result<(), u32>` has the right shape, so the
    // first passes and the second reports the error type alone, in the node's words.
    quote! {
        #on_unimplemented
        pub(super) trait #trait_ident: ::core::marker::Sized {
            type Error;
            fn __graph_route(self) -> ::core::result::Result<#route, Self::Error>;
        }
        // Every impl is left out of rustc's "the trait is implemented for …" help: the message
        // already names both forms, and that help would point into the macro.
        #do_not_recommend
        impl #trait_ident for #route {
            type Error = ::core::convert::Infallible;
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, Self::Error> {
                ::core::result::Result::Ok(self)
            }
        }
        #do_not_recommend
        impl<E> #trait_ident for ::core::result::Result<#route, E> {
            type Error = E;
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, E> {
                self
            }
        }

        #error_trait
    }
}

/// The trait that boxes node `n`'s error into a `NodeError`, implemented for every type that
/// converts into one: an error type that does not fails there, with a message that says so.
fn error_trait(rt: &TokenStream, n: &Task, diagnostics: bool) -> TokenStream {
    let error_ident = error_trait_ident(n);
    let error_on_unimplemented = on_unimplemented_error(diagnostics, &n.node.name);
    let do_not_recommend = do_not_recommend(diagnostics);
    quote! {
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

/// The name of the per-node trait that boxes the node's error, as the rule it checks (see
/// [`return_trait_ident`]): "the trait `NodeChargeFailsWithAnError` is not implemented for
/// `u32`".
pub(super) fn error_trait_ident(n: &Task) -> Ident {
    format_ident!(
        "Node{}FailsWithAnError",
        n.variant,
        span = Span::call_site()
    )
}

/// The name of the per-node trait that hands the state to the node's first parameter, as the
/// rule it checks (see [`return_trait_ident`]): "the trait `NodeChargeTakesTheState<'_>` is
/// not implemented for `&mut Invoice`".
pub(super) fn state_trait_ident(n: &Task) -> Ident {
    format_ident!("Node{}TakesTheState", n.variant, span = Span::call_site())
}

/// A trait implemented for `&mut S` and `&S`, which the state argument of node `n` goes
/// through: a first parameter of another type fails here, with a message that names the node
/// and the workflow's state type, instead of rustc's "mismatched types" about our call.
fn state_trait(rt: &TokenStream, n: &Task, state_name: &str, diagnostics: bool) -> TokenStream {
    let trait_ident = state_trait_ident(n);
    let name = &n.node.name;
    if let Call::Branch { .. } = n.call {
        return shared_state_trait(rt, n, state_name, diagnostics);
    }
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

/// [`state_trait`] for a branch node: its siblings run at the same time and read the same
/// state, so it takes `&State`, never `&mut` (`check` reports `&mut` with the fix; this
/// reports any other type).
fn shared_state_trait(
    rt: &TokenStream,
    n: &Task,
    state_name: &str,
    diagnostics: bool,
) -> TokenStream {
    let trait_ident = state_trait_ident(n);
    let name = &n.node.name;
    let on_unimplemented = on_unimplemented(
        diagnostics,
        &format!(
            "the first parameter of branch node `{name}` must be `&{state_name}`, the workflow's state type (`state = {state_name}`), not `{{Self}}`"
        ),
        &format!("expected `&{state_name}`"),
        "a branch runs at the same time as its siblings, which read the same state: it takes the state by shared reference and returns its output for the join",
    );
    let state = quote!(<super::Workflow as #rt::Workflow>::State);
    let do_not_recommend = do_not_recommend(diagnostics);
    quote! {
        #on_unimplemented
        pub(super) trait #trait_ident<'a>: ::core::marker::Sized {
            fn __graph_state(state: &'a #state) -> Self;
        }
        // Out of rustc's "the trait is implemented for `&State`" help, which would point into
        // the macro: the message says `&State` already.
        #do_not_recommend
        impl<'a> #trait_ident<'a> for &'a #state {
            #[inline(always)]
            fn __graph_state(state: &'a #state) -> Self {
                state
            }
        }
    }
}

/// The name of [`send_probe`]'s type, which rustc shows.
pub(super) const SEND_PROBE: &str = "RunnerMayMoveNodesBetweenThreads";

/// The probe every node's future goes through on its way to the runner: one function per
/// node, named after it, requiring `Send`.
///
/// rustc explains a future that is not `Send` better than any message of ours could (the value
/// held across an `.await`, and the `.await`), so the bound stays a plain `Send` bound; what
/// we choose is where it is declared, since rustc names that: "required by a bound in
/// `RunnerMayMoveNodesBetweenThreads::charge`" says which node, and why. (A trait with
/// `on_unimplemented` would replace rustc's explanation with ours.)
fn send_probe(nodes: &[Task]) -> TokenStream {
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

/// `#[diagnostic::on_unimplemented(…)]` with these texts, or nothing where the compiler's
/// diagnostics are turned off for this expansion.
pub(super) fn on_unimplemented(
    diagnostics: bool,
    message: &str,
    label: &str,
    note: &str,
) -> TokenStream {
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
pub(super) fn do_not_recommend(diagnostics: bool) -> TokenStream {
    if diagnostics {
        quote!(#[diagnostic::do_not_recommend])
    } else {
        TokenStream::new()
    }
}

/// The hidden module every probe lives in. The probes go through live once (in `step` and
/// `run`), so a wrong return type, state parameter or error type, or a `!Send` node, is
/// reported once.
pub(super) fn probe_module(g: &Gen, migrate_probe: &TokenStream) -> TokenStream {
    let allow = &g.allow;
    let state_name = crate::parse::tokens_to_string(g.state);
    let send_probe = send_probe(&g.plan.tasks);
    let traits = g.plan.tasks.iter().map(|task| {
        // The node before `each` and a branch return a value, not a route: only their error
        // is checked here (their values by the type probes of `step`).
        let mut traits = match task.exit {
            Exit::Routes | Exit::FanOut { .. } => return_trait(&g.nested_rt, task, g.diagnostics),
            Exit::Map { .. } | Exit::Output => error_trait(&g.nested_rt, task, g.diagnostics),
        };
        traits.extend(state_trait(&g.nested_rt, task, &state_name, g.diagnostics));
        traits
    });
    let sync_probe = super::frontier::sync_probe(g);
    quote! {
        #[doc(hidden)]
        #allow
        mod __graph_probes {
            #send_probe
            #(#traits)*
            #migrate_probe
            #sync_probe
        }
    }
}
