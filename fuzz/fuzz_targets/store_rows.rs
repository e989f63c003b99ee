//! Fuzz target `store_rows`: see `graph_runtime_fuzz::targets::store_rows`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::store_rows::run(data));
