//! Fuzz target `json_patch`: see `graph_runtime_fuzz::targets::json_patch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::json_patch::run(data));
