//! `#[workflow(…)]` and `#[node(…)]`: their keys, read into [`WorkflowArgs`] and [`NodeArgs`].

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Token, Type};

use super::tokens_to_string;
use crate::ctxt::Ctxt;
use crate::suggest::did_you_mean;

/// `#[workflow(state = T, migrate_from = [A, B], accept_graphs = [0x…], crate = path)]`.
pub(crate) struct WorkflowArgs {
    /// The state type, as the user wrote it (its tokens keep their spans).
    pub(crate) state: Option<Type>,
    /// The older state types whose checkpoints are decoded and converted, in the listed order.
    pub(crate) migrate_from: Vec<Type>,
    /// Hashes of older graphs whose checkpoints this graph opens, with their literals.
    pub(crate) accept_graphs: Vec<(u64, syn::LitInt)>,
    /// The path of the runtime crate: `::graph_runtime` unless overridden.
    pub(crate) krate: syn::Path,
}

/// The keys `#[workflow(…)]` accepts.
const WORKFLOW_KEYS: [&str; 4] = ["state", "migrate_from", "accept_graphs", "crate"];

/// `#[node(interrupt, retry = N, timeout_ms = M, backoff_ms = B, backoff_max_ms = C,
/// jitter = bool, checkpoint = always|never, renamed_from = "old", concurrency = N,
/// wait_ms = W, migrate_from = [OldA, OldB])]`.
#[derive(Default)]
pub(crate) struct NodeArgs {
    pub(crate) interrupt: bool,
    pub(crate) retry: Option<u32>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) backoff_ms: Option<u64>,
    pub(crate) backoff_max_ms: Option<u64>,
    pub(crate) jitter: Option<bool>,
    pub(crate) checkpoint: Option<CheckpointOverride>,
    /// The node's names in older versions of the graph, as written (checked by `check`).
    pub(crate) renamed_from: Vec<syn::LitStr>,
    /// `concurrency = N`: at most `N` items of a map node run at once (checked by `check`:
    /// not 0, and only on a map node), with its literal.
    pub(crate) concurrency: Option<(u32, syn::LitInt, Ident)>,
    /// `wait_ms = N`: an interrupt node whose input has not come within `N` ms runs with
    /// `None` (checked by `parse::node`: only on an interrupt node taking `Option<I>`; and
    /// by `check`: not on a branch), with its key for spans.
    pub(crate) wait_ms: Option<(u64, Ident)>,
    /// `migrate_from = [OldA, OldB]`: older versions of the node's branch output type, or of
    /// the item type of the map it feeds (checked by `check`: only on such a node), in the
    /// listed order, with the key for spans.
    pub(crate) migrate_from: Option<(Ident, Vec<Type>)>,
    /// `subgraph = m`: the node runs workflow module `m` as a child session, through its
    /// `Child<m::Workflow>` parameter, with the key for spans.
    pub(crate) subgraph: Option<(syn::Path, Ident)>,
}

/// `#[node(checkpoint = always)]` or `#[node(checkpoint = never)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointOverride {
    Always,
    Never,
}

/// The keys `#[node(…)]` accepts.
const NODE_KEYS: [&str; 12] = [
    "interrupt",
    "retry",
    "timeout_ms",
    "backoff_ms",
    "backoff_max_ms",
    "jitter",
    "checkpoint",
    "renamed_from",
    "concurrency",
    "wait_ms",
    "migrate_from",
    "subgraph",
];

/// Parses the arguments of `#[workflow(…)]`.
pub(crate) fn workflow_args(cx: &Ctxt, args: TokenStream) -> WorkflowArgs {
    let errors_before = cx.error_count();
    let mut state: Option<Type> = None;
    let mut krate: Option<syn::Path> = None;
    let mut migrate_from: Option<Vec<Type>> = None;
    let mut accept_graphs: Option<Vec<(u64, syn::LitInt)>> = None;
    let parser = |input: ParseStream| {
        parse_key_list(cx, input, |key, input| {
            match key.to_string().as_str() {
                "state" => {
                    let ty = value(input, key, "`state = YourState`", |input| {
                        input.parse::<Type>()
                    })?;
                    if state.is_some() {
                        cx.error_spanned_by(
                            key,
                            "duplicate key `state` in `#[workflow]`; remove one",
                        );
                    } else {
                        state = Some(ty);
                    }
                }
                "crate" => {
                    let path = value(input, key, "`crate = ::graph_runtime`", parse_crate_path)?;
                    if krate.is_some() {
                        cx.error_spanned_by(
                            key,
                            "duplicate key `crate` in `#[workflow]`; remove one",
                        );
                    } else {
                        krate = Some(path);
                    }
                }
                "migrate_from" => {
                    let types =
                        value(input, key, "`migrate_from = [OrderV1, OrderV2]`", |input| {
                            bracketed_list(
                                input,
                                key,
                                "`migrate_from = [OrderV1, OrderV2]`",
                                |input| input.parse::<Type>(),
                            )
                        })?;
                    if migrate_from.is_some() {
                        cx.error_spanned_by(
                            key,
                            "duplicate key `migrate_from` in `#[workflow]`; list every older state type in one `migrate_from = [...]`",
                        );
                    } else {
                        migrate_from = Some(types);
                    }
                }
                "accept_graphs" => {
                    let example = "`accept_graphs = [0x2204_5b7d_596d_b6de]`";
                    let exprs = value(input, key, example, |input| {
                        bracketed_list(input, key, example, |input| input.parse::<syn::Expr>())
                    })?;
                    let hashes = exprs
                        .iter()
                        .filter_map(|expr| graph_hash_literal(cx, expr))
                        .collect();
                    if accept_graphs.is_some() {
                        cx.error_spanned_by(
                            key,
                            "duplicate key `accept_graphs` in `#[workflow]`; list every older graph hash in one `accept_graphs = [...]`",
                        );
                    } else {
                        accept_graphs = Some(hashes);
                    }
                }
                other => {
                    let mut message = format!("unknown key `{other}` in `#[workflow]`");
                    let close = match other {
                        "migrate" | "migrations" | "migrate_from_types" => Some("migrate_from"),
                        "accept" | "accepted_graphs" | "accept_graph_hashes" => {
                            Some("accept_graphs")
                        }
                        _ => did_you_mean(other, WORKFLOW_KEYS),
                    };
                    if let Some(close) = close {
                        message += &format!("; did you mean `{close}`?");
                    } else if !input.peek(Token![=]) && looks_like_type_name(other) {
                        message += &format!(
                            "; to use `{other}` as the state, write `#[workflow(state = {other})]`"
                        );
                    } else {
                        message += "; expected `state = YourState`, `migrate_from = [OldState]`, `accept_graphs = [0x…]` or `crate = path`";
                    }
                    cx.error_spanned_by(key, message);
                    skip_value(input);
                }
            }
            Ok(())
        })
    };
    if let Err(error) = parser.parse2(args) {
        cx.syn_error(error);
    }
    // A misspelt key already has its own error ("did you mean `state`?").
    if state.is_none() && cx.error_count() == errors_before {
        cx.error_at(
            Span::call_site(),
            "missing `state = …` in `#[workflow]`: write `#[workflow(state = YourState)]` with the type every node reads and changes",
        );
    }
    let krate = krate.unwrap_or_else(crate::expand::paths::default_crate);
    WorkflowArgs {
        state,
        migrate_from: migrate_from.unwrap_or_default(),
        accept_graphs: accept_graphs.unwrap_or_default(),
        krate,
    }
}

/// `[item, item, …]` (a trailing comma is fine, an empty list too).
fn bracketed_list<T>(
    input: ParseStream,
    key: &Ident,
    example: &str,
    parse: impl Fn(ParseStream) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    if !input.peek(syn::token::Bracket) {
        let message = format!("`{key}` takes a list in brackets: {example}");
        return Err(match input.cursor().token_tree() {
            Some((token, _)) => syn::Error::new(token.span(), message),
            None => syn::Error::new(key.span(), message),
        });
    }
    let content;
    syn::bracketed!(content in input);
    let mut items = Vec::new();
    while !content.is_empty() {
        items.push(parse(&content)?);
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(items)
}

/// A graph hash in `accept_graphs`: an integer literal that fits in `u64` (the macro needs
/// the value itself, so a constant's name cannot be read). Anything else is reported.
fn graph_hash_literal(cx: &Ctxt, expr: &syn::Expr) -> Option<(u64, syn::LitInt)> {
    if let syn::Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Int(lit),
        attrs,
    }) = expr
        && attrs.is_empty()
        && matches!(lit.suffix(), "" | "u64")
    {
        return match lit.base10_parse::<u64>() {
            Ok(hash) => Some((hash, lit.clone())),
            Err(_) => {
                cx.error_spanned_by(
                    lit,
                    "a graph hash fits in `u64`: copy it from the older build's `GRAPH_HASH`, e.g. `0x2204_5b7d_596d_b6de`",
                );
                None
            }
        };
    }
    cx.error_spanned_by(
        expr,
        format!(
            "`accept_graphs` lists graph hashes as integer literals, not `{}`: copy the value of the older build's `GRAPH_HASH` (its rustdoc shows it), e.g. `accept_graphs = [0x2204_5b7d_596d_b6de]`",
            tokens_to_string(expr)
        ),
    );
    None
}

/// `crate = ::graph_runtime` or, serde style, `crate = "::graph_runtime"`.
fn parse_crate_path(input: ParseStream) -> syn::Result<syn::Path> {
    if input.peek(syn::LitStr) {
        let lit: syn::LitStr = input.parse()?;
        return lit.parse_with(syn::Path::parse_mod_style);
    }
    input.call(syn::Path::parse_mod_style)
}

/// Parses the arguments of `#[node(…)]` (the tokens inside the parentheses).
pub(super) fn node_args(cx: &Ctxt, args: TokenStream) -> NodeArgs {
    let mut out = NodeArgs::default();
    let mut seen: Vec<String> = Vec::new();
    let mut backoff_first: Option<(u64, syn::LitInt)> = None;
    let mut backoff_max: Option<(u64, syn::LitInt)> = None;
    let parser = |input: ParseStream| {
        parse_key_list(cx, input, |key, input| {
            let name = key.to_string();
            let known = NODE_KEYS.contains(&name.as_str());
            if known && seen.contains(&name) {
                cx.error_spanned_by(
                    key,
                    format!("duplicate key `{name}` in `#[node]`; remove one"),
                );
            }
            if known {
                seen.push(name.clone());
            }
            match name.as_str() {
                "interrupt" => {
                    if input.peek(Token![=]) {
                        cx.error_spanned_by(
                            key,
                            "`interrupt` takes no value: write `#[node(interrupt)]`",
                        );
                        skip_value(input);
                    }
                    out.interrupt = true;
                }
                "retry" => {
                    let lit = value(input, key, "`retry = 3`", |input| {
                        input.parse::<syn::LitInt>()
                    })?;
                    match lit.base10_parse::<u32>() {
                        Ok(n) => out.retry = Some(n),
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`retry` is the number of extra attempts: a whole number that fits in `u32`, e.g. `retry = 3`",
                        ),
                    }
                }
                "timeout_ms" => {
                    let lit = value(input, key, "`timeout_ms = 5_000`", |input| {
                        input.parse::<syn::LitInt>()
                    })?;
                    match lit.base10_parse::<u64>() {
                        Ok(0) => cx.error_spanned_by(
                            &lit,
                            "`timeout_ms = 0` would fail every attempt; give the time one attempt may take, in milliseconds, e.g. `timeout_ms = 5_000`",
                        ),
                        Ok(ms) => out.timeout_ms = Some(ms),
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`timeout_ms` is a number of milliseconds that fits in `u64`, e.g. `timeout_ms = 5_000`",
                        ),
                    }
                }
                "backoff_ms" | "backoff_max_ms" => {
                    let example = format!("`{name} = 500`");
                    let lit = value(input, key, &example, |input| input.parse::<syn::LitInt>())?;
                    match lit.base10_parse::<u64>() {
                        Ok(ms) if name == "backoff_ms" => {
                            out.backoff_ms = Some(ms);
                            backoff_first = Some((ms, lit));
                        }
                        Ok(ms) => {
                            out.backoff_max_ms = Some(ms);
                            backoff_max = Some((ms, lit));
                        }
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            format!("`{name}` is a number of milliseconds that fits in `u64`, e.g. {example}"),
                        ),
                    }
                }
                "jitter" => {
                    let lit = value(input, key, "`jitter = false`", |input| {
                        input.parse::<syn::LitBool>()
                    })?;
                    out.jitter = Some(lit.value);
                }
                "checkpoint" => {
                    let word = value(
                        input,
                        key,
                        "`checkpoint = always` or `checkpoint = never`",
                        |input| {
                            if input.peek(Ident::peek_any) {
                                input
                                    .call(Ident::parse_any)
                                    .map(|ident| ident.into_token_stream())
                            } else {
                                input
                                    .parse::<TokenTree>()
                                    .map(|token| token.into_token_stream())
                            }
                        },
                    )?;
                    match tokens_to_string(&word).as_str() {
                        "always" => out.checkpoint = Some(CheckpointOverride::Always),
                        "never" => out.checkpoint = Some(CheckpointOverride::Never),
                        other => cx.error_spanned_by(
                            &word,
                            format!("unknown checkpoint setting `{other}`; expected `checkpoint = always` (save after this node whatever the runner's policy) or `checkpoint = never` (do not save after it)"),
                        ),
                    }
                    skip_value(input);
                }
                "concurrency" => {
                    let lit = value(input, key, "`concurrency = 8`", |input| {
                        input.parse::<syn::LitInt>()
                    })?;
                    match lit.base10_parse::<u32>() {
                        Ok(n) => out.concurrency = Some((n, lit, key.clone())),
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`concurrency` is how many items of a map run at once: a whole number that fits in `u32`, e.g. `concurrency = 8`",
                        ),
                    }
                }
                "wait_ms" => {
                    let lit = value(input, key, "`wait_ms = 86_400_000`", |input| {
                        input.parse::<syn::LitInt>()
                    })?;
                    match lit.base10_parse::<u64>() {
                        Ok(ms) => {
                            if ms == 0 {
                                cx.error_spanned_by(
                                    &lit,
                                    "`wait_ms = 0` would run the node without its input at once; give how long it waits for its input, in milliseconds, e.g. `wait_ms = 86_400_000` (a day)",
                                );
                            }
                            // Kept even when 0 (already an error), so the `Option<I>` input
                            // is not reported as well.
                            out.wait_ms = Some((ms, key.clone()));
                        }
                        Err(_) => cx.error_spanned_by(
                            &lit,
                            "`wait_ms` is a number of milliseconds that fits in `u64`, e.g. `wait_ms = 86_400_000`",
                        ),
                    }
                }
                "migrate_from" => {
                    let example = "`migrate_from = [FraudScoreV1]`";
                    let types = value(input, key, example, |input| {
                        bracketed_list(input, key, example, |input| input.parse::<Type>())
                    })?;
                    // A repeated key is already reported; its types are dropped with it.
                    if out.migrate_from.is_none() {
                        out.migrate_from = Some((key.clone(), types));
                    }
                }
                "subgraph" => {
                    let example = "`subgraph = research_agent` (the child workflow's module)";
                    let path = value(input, key, example, |input| {
                        input.call(syn::Path::parse_mod_style)
                    })?;
                    if out.subgraph.is_none() {
                        out.subgraph = Some((path, key.clone()));
                    }
                }
                "renamed_from" => {
                    let example =
                        "`renamed_from = \"old_name\"` or `renamed_from = [\"a\", \"b\"]`";
                    let names = value(input, key, example, |input| {
                        if input.peek(syn::token::Bracket) {
                            bracketed_list(input, key, example, |input| {
                                input.parse::<syn::LitStr>()
                            })
                        } else if input.peek(syn::LitStr) {
                            input.parse::<syn::LitStr>().map(|lit| vec![lit])
                        } else {
                            let token: TokenTree = input.parse()?;
                            Err(syn::Error::new(
                                token.span(),
                                format!(
                                    "`renamed_from` takes the old node name as a string: {example}"
                                ),
                            ))
                        }
                    })?;
                    out.renamed_from.extend(names);
                }
                other => {
                    let mut message = format!("unknown key `{other}` in `#[node]`");
                    let close = match other {
                        "timeout" => Some("timeout_ms"),
                        "backoff" => Some("backoff_ms"),
                        "retries" => Some("retry"),
                        "renamed" | "rename" | "renamed_from_name" | "old_name" => {
                            Some("renamed_from")
                        }
                        "checkpoints" | "save" => Some("checkpoint"),
                        "parallel" | "parallelism" | "max_concurrency" | "limit" => {
                            Some("concurrency")
                        }
                        "wait" | "deadline" | "deadline_ms" | "wait_for" | "expires_ms" => {
                            Some("wait_ms")
                        }
                        "migrate" | "migrations" | "migrate_output" | "migrate_items" => {
                            Some("migrate_from")
                        }
                        "child" | "workflow" | "sub_workflow" | "subworkflow" | "sub_graph" => {
                            Some("subgraph")
                        }
                        _ => did_you_mean(other, NODE_KEYS),
                    };
                    if let Some(close) = close {
                        message += &format!("; did you mean `{close}`?");
                    } else {
                        message += "; expected `interrupt`, `retry = N`, `timeout_ms = M`, `backoff_ms = B`, `backoff_max_ms = C`, `jitter = bool`, `checkpoint = always|never`, `renamed_from = \"old_name\"`, `concurrency = N`, `wait_ms = W`, `migrate_from = [OldType]` or `subgraph = module`";
                    }
                    cx.error_spanned_by(key, message);
                    skip_value(input);
                }
            }
            Ok(())
        })
    };
    if let Err(error) = parser.parse2(args) {
        cx.syn_error(error);
    }
    if let (Some((first, _)), Some((max, max_lit))) = (&backoff_first, &backoff_max)
        && max < first
    {
        cx.error_spanned_by(
            max_lit,
            format!("`backoff_max_ms = {max}` is less than `backoff_ms = {first}`: the longest wait cannot be shorter than the first"),
        );
    }
    out
}

/// Parses `key (= value)?, …`, calling `on_key` for each key with the stream positioned after
/// the key (at `=` or at the separator). `on_key` must consume the value, if any.
fn parse_key_list(
    cx: &Ctxt,
    input: ParseStream,
    mut on_key: impl FnMut(&Ident, ParseStream) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        if !input.peek(Ident::peek_any) {
            let token: TokenTree = input.parse()?;
            cx.error_spanned_by(&token, format!("expected a key, found `{token}`"));
            skip_value(input);
        } else {
            let key = input.call(Ident::parse_any)?;
            if let Err(error) = on_key(&key, input) {
                cx.syn_error(error);
                skip_value(input);
            }
        }
        if input.is_empty() {
            break;
        }
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        } else {
            let token: TokenTree = input.parse()?;
            cx.error_spanned_by(
                &token,
                format!("expected `,` between keys, found `{token}`"),
            );
            skip_value(input);
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
    }
    Ok(())
}

/// Parses `= value` after `key`.
fn value<T>(
    input: ParseStream,
    key: &Ident,
    example: &str,
    parse: impl FnOnce(ParseStream) -> syn::Result<T>,
) -> syn::Result<T> {
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` needs a value: {example}"),
        ));
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() || input.peek(Token![,]) {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` needs a value: {example}"),
        ));
    }
    parse(input)
}

/// Skips tokens up to the next top-level `,` (not consumed) after an error.
fn skip_value(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

fn looks_like_type_name(name: &str) -> bool {
    name.chars().next().is_some_and(char::is_uppercase)
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    /// The keys of `#[node(…)]` in `tokens`, and every error message.
    fn node(tokens: TokenStream) -> (NodeArgs, Vec<String>) {
        let cx = Ctxt::new();
        let args = node_args(&cx, tokens);
        let messages = match cx.check() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, messages)
    }

    fn texts(types: &[Type]) -> Vec<String> {
        types.iter().map(tokens_to_string).collect()
    }

    #[test]
    fn migrate_from_lists_types() {
        let attr: syn::Attribute =
            parse_quote!(#[node(retry = 2, migrate_from = [ScoreV1, old::Score<u8>,])]);
        let syn::Meta::List(list) = attr.meta else {
            panic!("a list");
        };
        let (args, messages) = node(list.tokens);
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(args.retry, Some(2));
        let (key, types) = args.migrate_from.expect("migrate_from");
        assert_eq!(key, "migrate_from");
        assert_eq!(texts(&types), ["ScoreV1", "old::Score<u8>"]);

        let (args, messages) = node(parse_quote!(migrate_from = []));
        assert!(messages.is_empty(), "{messages:?}");
        assert_eq!(args.migrate_from.map(|(_, types)| types.len()), Some(0));
        // Without the key, nothing.
        assert!(node(parse_quote!(interrupt)).0.migrate_from.is_none());
    }

    #[test]
    fn migrate_from_mistakes() {
        let cases: [(TokenStream, &str); 5] = [
            (
                parse_quote!(migrate_from = ScoreV1),
                "`migrate_from` takes a list in brackets: `migrate_from = [FraudScoreV1]`",
            ),
            (
                parse_quote!(migrate_from),
                "`migrate_from` needs a value: `migrate_from = [FraudScoreV1]`",
            ),
            (
                parse_quote!(migrate_from = [A], migrate_from = [B]),
                "duplicate key `migrate_from` in `#[node]`; remove one",
            ),
            (
                parse_quote!(migrations = [A]),
                "unknown key `migrations` in `#[node]`; did you mean `migrate_from`?",
            ),
            (
                parse_quote!(migrate_form = [A]),
                "unknown key `migrate_form` in `#[node]`; did you mean `migrate_from`?",
            ),
        ];
        for (tokens, expected) in cases {
            let (_, messages) = node(tokens);
            assert_eq!(messages, [expected]);
        }
        // The first list of a repeated key is kept.
        let (args, _) = node(parse_quote!(migrate_from = [A], migrate_from = [B]));
        assert_eq!(texts(&args.migrate_from.expect("kept").1), ["A"]);
        // The list of known keys names it.
        let (_, messages) = node(parse_quote!(zzz));
        assert!(
            messages[0].ends_with("`migrate_from = [OldType]` or `subgraph = module`"),
            "{messages:?}"
        );
    }
}
