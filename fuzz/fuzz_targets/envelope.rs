//! Fuzz target `envelope`: see `graph_runtime_fuzz::targets::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graph_runtime_fuzz::targets::envelope::run(data));
