//! Fuzz target `json_input`: see `graph_runtime_fuzz::targets::json_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::json_input::run(data));
