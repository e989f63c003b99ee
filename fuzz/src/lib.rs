//! The bodies of the fuzz targets in `fuzz_targets/`: the runtime's in `targets/` (shared with
//! the root package's `tests/fuzz_corpus.rs`, which replays their corpus with plain
//! `cargo test`), the macros' in `graph-macros-fuzz` (which compiles graph-macros' own
//! modules). Each binary is one line: its body on libFuzzer's input.
#![forbid(unsafe_code)]

pub mod targets;

pub use graph_macros_fuzz::{state_schema_macro, workflow_macro};
