//! The whole of `#[workflow]`, on `proc_macro2` token streams so that unit tests and the fuzz
//! targets of `fuzz/` call it without a compiler: parse → model → check → expand, or the
//! fallback.

use crate::ctxt::Ctxt;
use crate::{check, expand, fallback, model, parse};

/// `#[workflow(args)] item`: parse → model → check → lower and expand, or the fallback (the
/// module as written, with every error and plausible stand-ins for the generated items).
pub(crate) fn workflow(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let cx = Ctxt::new();
    let input = parse::workflow(&cx, args, item.clone());
    let Some(module) = &input.module else {
        let errors = cx.check().err();
        return fallback::not_a_module(item, errors);
    };
    let graph = model::Graph::build(module);
    check::check_args(&cx, &input.args);
    check::check(&cx, &graph);
    match (cx.check(), &input.args.state) {
        (Ok(()), Some(state)) => expand::expand(&input.args, state, &graph),
        (Err(errors), _) => fallback::module(&input.args, &graph, &errors),
        (Ok(()), None) => {
            // Not reachable (a missing `state` is an error), but never panic in a macro.
            let errors = syn::Error::new(
                proc_macro2::Span::call_site(),
                "missing `state = …` in `#[workflow]`",
            );
            fallback::module(&input.args, &graph, &errors)
        }
    }
}
