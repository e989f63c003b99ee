//! Fuzz target `workflow_macro`: see `graph_macros_fuzz::workflow_macro`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::workflow_macro(data));
