//! The bodies of the fuzz targets `workflow_macro` and `state_schema_macro`: a token stream
//! into `#[workflow]` (or a stray `#[node]`) and into `#[derive(StateSchema)]`. The fuzz
//! package at the repository's root (`fuzz/`) compiles this crate's modules into a library of
//! its own to call them; the unit tests below replay the committed corpus through them, so
//! that `cargo test` keeps every input a fuzzer once found.
//!
//! A macro must never panic (rustc would report "proc-macro panicked" with no span) and must
//! answer every input it cannot expand with a `compile_error!`. Each body checks, for one
//! input:
//!
//! - the expansion runs to its end without a panic (a forgotten `Ctxt::check` panics too);
//! - it is deterministic: a second expansion gives the same tokens (the graph hash and the
//!   state fingerprint are computed from them, and must not depend on the run);
//! - an item of the wrong shape (not an inline module, not a struct or enum) gets an error;
//! - an item that is valid Rust expands to valid Rust items: tokens that do not parse would
//!   give the user rustc's parse errors at our macro instead of ours at their code.

use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// `#[workflow(args)] item` from fuzzer bytes: UTF-8 source text, read as a token stream the
/// way rustc would hand it over. A leading `#[workflow(…)]` (or `#[node(…)]`) attribute gives
/// the arguments and what follows is the item; text without one is the item of a
/// `#[workflow]` without arguments. Bytes that are not UTF-8, or text that does not lex, never
/// reach a macro (rustc rejects them first).
pub(crate) fn workflow_input(data: &[u8]) {
    let Some(tokens) = lex(data) else {
        return;
    };
    let (attribute, args, item) = split_attribute(tokens);
    let expand = |args: TokenStream, item: TokenStream| match attribute.as_deref() {
        Some("node") => crate::expand::node_outside_workflow(args, item),
        _ => crate::pipeline::workflow(args, item),
    };
    let output = expand(args.clone(), item.clone());
    assert_eq!(
        expand(args, item.clone()).to_string(),
        output.to_string(),
        "the expansion is not deterministic"
    );
    let is_module =
        syn::parse2::<syn::ItemMod>(item.clone()).is_ok_and(|module| module.content.is_some());
    if !is_module || attribute.as_deref() == Some("node") {
        assert!(
            has_compile_error(&output),
            "an item that is not an inline module expanded without an error: {output}"
        );
    }
    if syn::parse2::<syn::Item>(item).is_ok() {
        expands_to_items(&output);
    }
}

/// `#[derive(StateSchema)]` on fuzzer bytes: the whole text is the derive's input item.
pub(crate) fn state_schema_input(data: &[u8]) {
    let Some(item) = lex(data) else {
        return;
    };
    let output = crate::state_schema::derive(item.clone());
    assert_eq!(
        crate::state_schema::derive(item.clone()).to_string(),
        output.to_string(),
        "the expansion is not deterministic"
    );
    if syn::parse2::<syn::DeriveInput>(item).is_ok() {
        expands_to_items(&output);
    } else {
        assert!(
            has_compile_error(&output),
            "an input that is not a struct, enum or union expanded without an error: {output}"
        );
    }
}

/// The token stream of UTF-8 source text, if it lexes.
fn lex(data: &[u8]) -> Option<TokenStream> {
    let text = std::str::from_utf8(data).ok()?;
    TokenStream::from_str(text).ok()
}

/// Splits a leading `#[name(args)]` or `#[name]` off `tokens`: the attribute's name, its
/// arguments and the rest.
fn split_attribute(tokens: TokenStream) -> (Option<String>, TokenStream, TokenStream) {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    let (Some(TokenTree::Punct(pound)), Some(TokenTree::Group(group))) =
        (trees.first(), trees.get(1))
    else {
        return (None, TokenStream::new(), tokens);
    };
    if pound.as_char() != '#' || group.delimiter() != Delimiter::Bracket {
        return (None, TokenStream::new(), tokens);
    }
    let inner: Vec<TokenTree> = group.stream().into_iter().collect();
    let name = match inner.first() {
        Some(TokenTree::Ident(ident)) if ident == "workflow" || ident == "node" => {
            ident.to_string()
        }
        _ => return (None, TokenStream::new(), tokens),
    };
    let args = match &inner[1..] {
        [] => TokenStream::new(),
        [TokenTree::Group(args)] if args.delimiter() == Delimiter::Parenthesis => args.stream(),
        _ => return (None, TokenStream::new(), tokens),
    };
    (Some(name), args, trees[2..].iter().cloned().collect())
}

/// Whether `tokens` invoke `compile_error!` anywhere.
fn has_compile_error(tokens: &TokenStream) -> bool {
    let trees: Vec<TokenTree> = tokens.clone().into_iter().collect();
    trees.iter().enumerate().any(|(i, tree)| match tree {
        TokenTree::Ident(ident) => {
            ident == "compile_error"
                && matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!')
        }
        TokenTree::Group(group) => has_compile_error(&group.stream()),
        _ => false,
    })
}

/// Asserts that `output` parses as a file of items.
fn expands_to_items(output: &TokenStream) {
    if let Err(error) = syn::parse2::<syn::File>(output.clone()) {
        panic!("the expansion does not parse as items ({error}): {output}");
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`, in name order.
    fn inputs(target: &str) -> Vec<PathBuf> {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut files = Vec::new();
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("a readable directory").path();
                if path.is_file() {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// Runs `body` on every input of `target`; fails with the names of those that panicked.
    fn replay(target: &str, body: fn(&[u8])) {
        let files = inputs(target);
        assert!(
            !files.is_empty(),
            "no corpus for `{target}` under fuzz/corpus or fuzz/regressions"
        );
        let failed: Vec<String> = files
            .iter()
            .filter(|path| {
                let data = std::fs::read(path).expect("a readable corpus file");
                std::panic::catch_unwind(|| body(&data)).is_err()
            })
            .map(|path| path.display().to_string())
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} inputs of `{target}` failed: {failed:#?}",
            failed.len(),
            files.len()
        );
    }

    #[test]
    fn workflow_macro_corpus_replays() {
        replay("workflow_macro", workflow_input);
    }

    #[test]
    fn state_schema_macro_corpus_replays() {
        replay("state_schema_macro", state_schema_input);
    }

    #[test]
    fn a_valid_workflow_expands_and_a_broken_one_is_an_error() {
        let valid = "#[workflow(state = S)] pub mod m { edge!(START -> a); edge!(a -> END); \
                     #[node] async fn a(s: &mut S) {} }";
        let output = crate::pipeline::workflow(
            split_attribute(lex(valid.as_bytes()).unwrap()).1,
            split_attribute(lex(valid.as_bytes()).unwrap()).2,
        );
        assert!(!has_compile_error(&output), "{output}");
        workflow_input(valid.as_bytes());
        let broken = "#[workflow(state = S)] pub mod m { edge!(START -> b); }";
        let (_, args, item) = split_attribute(lex(broken.as_bytes()).unwrap());
        assert!(has_compile_error(&crate::pipeline::workflow(args, item)));
        workflow_input(broken.as_bytes());
    }
}
