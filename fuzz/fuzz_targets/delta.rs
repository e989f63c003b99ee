//! Fuzz target `delta`: see `graph_runtime_fuzz::targets::delta`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::delta::run(data));
