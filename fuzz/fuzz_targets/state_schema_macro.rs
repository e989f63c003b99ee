//! Fuzz target `state_schema_macro`: see `graph_macros_fuzz::state_schema_macro`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::state_schema_macro(data));
