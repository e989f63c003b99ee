//! Rebuilds this crate whenever graph-macros' sources change: it compiles them by `#[path]`
//! from outside its own directory, and without this cargo kept a build of older sources
//! (a fuzz binary ran without a fix that `cargo test -p graph-macros` already had).
fn main() {
    println!("cargo::rerun-if-changed=../../graph-macros/src");
}
