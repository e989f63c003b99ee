//! Compile-time checks of the `#[workflow]` DSL: every mistake in `tests/ui/*.rs` must fail to
//! compile with the message in its `.stderr`, and everything in `tests/ui/pass/` must compile
//! and run. Regenerate the snapshots with `TRYBUILD=overwrite cargo test --test ui`, then
//! review every changed `.stderr` like code.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
