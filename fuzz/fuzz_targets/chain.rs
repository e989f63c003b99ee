//! Fuzz target `chain`: see `graph_runtime_fuzz::targets::chain`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::chain::run(data));
