//! graph-macros' modules, compiled from their own files as the root of this library so that
//! their `crate::` paths resolve as they do there, with the bodies of the fuzz targets
//! `workflow_macro` and `state_schema_macro` (graph-macros/src/fuzz.rs) made callable. The
//! list of modules is graph-macros/src/lib.rs's, plus `fuzz`; a module added there and not
//! here fails this build.
#![forbid(unsafe_code)]
// Some of the crate's functions serve only its proc-macro entry points, which are not here.
#![allow(dead_code)]

#[path = "../../../graph-macros/src/canonical.rs"]
mod canonical;
#[path = "../../../graph-macros/src/check.rs"]
mod check;
#[path = "../../../graph-macros/src/ctxt.rs"]
mod ctxt;
#[path = "../../../graph-macros/src/expand/mod.rs"]
mod expand;
#[path = "../../../graph-macros/src/fallback.rs"]
mod fallback;
#[path = "../../../graph-macros/src/fuzz.rs"]
mod fuzz;
#[path = "../../../graph-macros/src/hash.rs"]
mod hash;
#[path = "../../../graph-macros/src/lower.rs"]
mod lower;
#[path = "../../../graph-macros/src/mermaid.rs"]
mod mermaid;
#[path = "../../../graph-macros/src/model.rs"]
mod model;
#[path = "../../../graph-macros/src/parse/mod.rs"]
mod parse;
#[path = "../../../graph-macros/src/pipeline.rs"]
mod pipeline;
#[path = "../../../graph-macros/src/state_schema.rs"]
mod state_schema;
#[path = "../../../graph-macros/src/suggest.rs"]
mod suggest;

/// A token stream into `#[workflow]` (or `#[node]`): one fuzz input.
pub fn workflow_macro(data: &[u8]) {
    fuzz::workflow_input(data);
}

/// A token stream into `#[derive(StateSchema)]`: one fuzz input.
pub fn state_schema_macro(data: &[u8]) {
    fuzz::state_schema_input(data);
}
