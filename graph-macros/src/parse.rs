//! syn → raw input: the workflow's arguments, its `#[node]` functions, its `edge!` declarations
//! and every other item of the module, with our markers stripped.
//!
//! Parsing never stops at the first mistake: each problem is recorded in the [`Ctxt`] with the
//! span of the offending token, and parsing goes on with what it understood, so that the graph
//! checks still run and one build reports everything.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, FnArg, Ident, Item, ItemFn, ItemMod, Meta, Token, Type};

use crate::check::did_you_mean;
use crate::ctxt::Ctxt;

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
/// jitter = bool, checkpoint = always|never, renamed_from = "old")]`.
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
}

/// `#[node(checkpoint = always)]` or `#[node(checkpoint = never)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckpointOverride {
    Always,
    Never,
}

/// The keys `#[node(…)]` accepts.
const NODE_KEYS: [&str; 8] = [
    "interrupt",
    "retry",
    "timeout_ms",
    "backoff_ms",
    "backoff_max_ms",
    "jitter",
    "checkpoint",
    "renamed_from",
];

/// What one parameter of a node function receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamRole {
    /// The workflow state, `&mut T` (`mutable`) or `&T`.
    State { mutable: bool },
    /// The run context, `&NodeCtx`.
    Ctx,
    /// The input of an interrupt node.
    Input,
}

/// One parameter of a node function, classified.
pub(crate) struct NodeParam {
    pub(crate) role: ParamRole,
    /// The declared type (its tokens keep the user's spans, for spanned probes).
    pub(crate) ty: Type,
}

/// A function marked `#[node]`.
pub(crate) struct NodeFn {
    /// The function's name token (raw identifiers stay raw).
    pub(crate) ident: Ident,
    /// The node's name: the function's name without `r#`.
    pub(crate) name: String,
    pub(crate) args: NodeArgs,
    /// The parameters in declared order; empty when the signature was rejected.
    pub(crate) params: Vec<NodeParam>,
    /// The declared return type.
    pub(crate) output: syn::ReturnType,
    /// Where the function sits in [`Module::items`].
    pub(crate) item_index: usize,
    /// Where the function sits among all the items of the module, `edge!`s included: graph
    /// errors are reported in this order.
    pub(crate) position: usize,
}

impl NodeFn {
    /// The input type of an interrupt node.
    pub(crate) fn input(&self) -> Option<&Type> {
        self.params
            .iter()
            .find(|p| p.role == ParamRole::Input)
            .map(|p| &p.ty)
    }
}

/// One `edge!(from -> to | to …)`, or one error edge `edge!(from -> to on error)`.
pub(crate) struct EdgeDecl {
    pub(crate) from: Ident,
    /// The targets in the order written; never empty, and exactly one for an error edge.
    pub(crate) targets: Vec<Ident>,
    /// `Some(tokens of "on error")` for an error edge: the route taken when `from` fails after
    /// its retries. It is not one of `from`'s successors (`from::Next` does not list it).
    pub(crate) on_error: Option<TokenStream>,
    /// The whole `edge!(…)` invocation, for errors about the declaration itself.
    pub(crate) tokens: TokenStream,
    /// Where the `edge!` sits among all the items of the module.
    pub(crate) position: usize,
}

/// The module under `#[workflow]`, taken apart.
pub(crate) struct Module {
    /// The module with its original attributes, visibility and name; its content is
    /// [`Module::items`] once expanded.
    pub(crate) item: ItemMod,
    /// The module's name without `r#`.
    pub(crate) name: String,
    /// The user's items, in order, with `#[node]` attributes removed and `edge!` items taken out.
    pub(crate) items: Vec<Item>,
    /// The `#[node]` functions in source order.
    pub(crate) nodes: Vec<NodeFn>,
    /// The `edge!` declarations in source order.
    pub(crate) edges: Vec<EdgeDecl>,
    /// Functions of the module that are not nodes, by name: an `edge!` naming one of them gets
    /// a precise error.
    pub(crate) plain_fns: BTreeMap<String, Ident>,
    /// The names the module's own items define, to catch collisions with generated items.
    pub(crate) item_names: Vec<ItemName>,
    /// Methods marked `#[node]` (already reported): edges naming them get no second error.
    pub(crate) misplaced_nodes: BTreeMap<String, Ident>,
    /// An `edge!` could not be read at all (already reported): the graph is incomplete, so the
    /// rules about its shape (entry, reachability, outgoing edges) are not checked.
    pub(crate) incomplete: bool,
}

/// A name defined by one of the module's own items.
pub(crate) struct ItemName {
    pub(crate) ident: Ident,
    /// Whether the item is a module (it would clash with a node's generated `mod`).
    pub(crate) is_mod: bool,
    /// Where the item sits among all the items of the module.
    pub(crate) position: usize,
}

/// The parsed invocation.
pub(crate) struct Input {
    pub(crate) args: WorkflowArgs,
    /// `None` when the item is not an inline module (the error is recorded).
    pub(crate) module: Option<Module>,
}

/// Parses `#[workflow(args)] item`, recording every problem in `cx`.
pub(crate) fn workflow(cx: &Ctxt, args: TokenStream, item: TokenStream) -> Input {
    let args = workflow_args(cx, args);
    let module = module(cx, item, args.state.as_ref());
    Input { args, module }
}

// ---------------------------------------------------------------------------------------------
// Attribute arguments
// ---------------------------------------------------------------------------------------------

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
    let krate = krate.unwrap_or_else(default_crate_path);
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

/// `::graph_runtime`, built without any chance of failure.
pub(crate) fn default_crate_path() -> syn::Path {
    let mut segments = syn::punctuated::Punctuated::new();
    segments.push(syn::PathSegment::from(Ident::new(
        "graph_runtime",
        Span::call_site(),
    )));
    syn::Path {
        leading_colon: Some(Default::default()),
        segments,
    }
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
pub(crate) fn node_args(cx: &Ctxt, args: TokenStream) -> NodeArgs {
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
                        _ => did_you_mean(other, NODE_KEYS),
                    };
                    if let Some(close) = close {
                        message += &format!("; did you mean `{close}`?");
                    } else {
                        message += "; expected `interrupt`, `retry = N`, `timeout_ms = M`, `backoff_ms = B`, `backoff_max_ms = C`, `jitter = bool`, `checkpoint = always|never` or `renamed_from = \"old_name\"`";
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

// ---------------------------------------------------------------------------------------------
// The module
// ---------------------------------------------------------------------------------------------

/// Parses the item under `#[workflow]`: it must be an inline module.
fn module(cx: &Ctxt, item: TokenStream, state: Option<&Type>) -> Option<Module> {
    let item: Item = match syn::parse2(item) {
        Ok(item) => item,
        Err(error) => {
            cx.syn_error(error);
            return None;
        }
    };
    let mut item = match item {
        Item::Mod(item) => item,
        other => {
            cx.error_spanned_by(
                item_head(&other),
                "`#[workflow]` goes on an inline module: `#[workflow(state = YourState)] mod name { … }`",
            );
            return None;
        }
    };
    let Some((_, content)) = item.content.take() else {
        cx.error_spanned_by(
            {
                let (mod_token, ident, semi) = (&item.mod_token, &item.ident, &item.semi);
                quote::quote!(#mod_token #ident #semi)
            },
            format!(
                "`#[workflow]` needs the module's items inline, to read its nodes and edges: write `mod {} {{ … }}` here instead of a separate file",
                item.ident
            ),
        );
        return None;
    };
    let state_hint = state.map_or_else(|| "YourState".to_owned(), tokens_to_string);

    let mut module = Module {
        name: item.ident.unraw().to_string(),
        item,
        items: Vec::new(),
        nodes: Vec::new(),
        edges: Vec::new(),
        plain_fns: BTreeMap::new(),
        item_names: Vec::new(),
        misplaced_nodes: BTreeMap::new(),
        incomplete: false,
    };
    for (position, item) in content.into_iter().enumerate() {
        module_item(cx, &mut module, item, &state_hint, position);
    }
    Some(module)
}

/// The tokens that start an item, to point an error at its head rather than its whole body.
fn item_head(item: &Item) -> TokenStream {
    let mut head = TokenStream::new();
    for token in item.to_token_stream() {
        let stop = matches!(token, TokenTree::Group(ref g) if g.delimiter() == proc_macro2::Delimiter::Brace);
        if stop {
            break;
        }
        head.extend([token]);
    }
    if head.is_empty() {
        item.to_token_stream()
    } else {
        head
    }
}

/// Sorts one item of the module into nodes, edges or the user's other items.
fn module_item(cx: &Ctxt, module: &mut Module, mut item: Item, state_hint: &str, position: usize) {
    match item {
        Item::Macro(ref mac) if is_edge_macro(&mac.mac.path) => {
            check_edge_attrs(cx, &mac.attrs);
            match edge_decls(cx, mac, position) {
                Some(edges) => module.edges.extend(edges),
                None => module.incomplete = true,
            }
            return;
        }
        Item::Impl(ref mut block) => {
            for impl_item in &mut block.items {
                if let syn::ImplItem::Fn(method) = impl_item
                    && let Some(attr) = take_node_attr(cx, &mut method.attrs)
                {
                    let name = method.sig.ident.unraw().to_string();
                    cx.error_spanned_by(
                        attr,
                        format!(
                            "`#[node]` goes on a free `async fn` of the workflow module, not on a method: move `{name}` out of the `impl` block, with the state as its first parameter"
                        ),
                    );
                    module
                        .misplaced_nodes
                        .insert(name, method.sig.ident.clone());
                }
            }
        }
        Item::Fn(ref mut func) => {
            if let Some(attr) = take_node_attr(cx, &mut func.attrs) {
                let mut node = node_fn(cx, attr, func, state_hint, module.items.len());
                node.position = position;
                module.nodes.push(node);
                // Reported by `node_fn`; without it the fallback gets no `unexpected_cfgs` noise.
                func.attrs.retain(|attr| !is_cfg_attr(attr));
            } else {
                module
                    .plain_fns
                    .insert(func.sig.ident.unraw().to_string(), func.sig.ident.clone());
                module.item_names.push(ItemName {
                    ident: func.sig.ident.clone(),
                    is_mod: false,
                    position,
                });
            }
        }
        _ => {
            if let Some(attrs) = item_attrs_mut(&mut item)
                && let Some(attr) = take_node_attr(cx, attrs)
            {
                cx.error_spanned_by(
                    attr,
                    "`#[node]` goes on an `async fn` of the workflow module, e.g. `#[node] async fn step(state: &mut State)`",
                );
            }
            if let Some(name) = item_name(&item) {
                module.item_names.push(ItemName {
                    ident: name.clone(),
                    is_mod: matches!(item, Item::Mod(_)),
                    position,
                });
            }
        }
    }
    module.items.push(item);
}

fn is_edge_macro(path: &syn::Path) -> bool {
    path.segments
        .last()
        .is_some_and(|segment| segment.ident == "edge")
}

fn is_node_attr(attr: &Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "node")
}

fn is_cfg_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr")
}

/// Removes the `#[node]` attribute (the first one; a second is an error) and returns it.
fn take_node_attr(cx: &Ctxt, attrs: &mut Vec<Attribute>) -> Option<Attribute> {
    let mut found: Option<Attribute> = None;
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if is_node_attr(&attr) {
            if found.is_some() {
                cx.error_spanned_by(
                    &attr,
                    "duplicate `#[node]`; merge the keys into one `#[node(…)]`",
                );
            } else {
                found = Some(attr);
            }
        } else {
            kept.push(attr);
        }
    }
    *attrs = kept;
    found
}

/// `#[cfg]` on an edge would make the checked graph differ from the compiled one.
fn check_edge_attrs(cx: &Ctxt, attrs: &[Attribute]) {
    for attr in attrs {
        if is_cfg_attr(attr) {
            cx.error_spanned_by(
                attr,
                "`#[cfg]` on an `edge!` is not supported: the graph is checked before `cfg` is applied; put the `cfg` on the whole workflow module, or branch inside a node",
            );
        } else if !attr.path().is_ident("doc") {
            cx.error_spanned_by(attr, "attributes on `edge!` have no effect; remove it");
        }
    }
}

fn item_attrs_mut(item: &mut Item) -> Option<&mut Vec<Attribute>> {
    Some(match item {
        Item::Const(i) => &mut i.attrs,
        Item::Enum(i) => &mut i.attrs,
        Item::ExternCrate(i) => &mut i.attrs,
        Item::Fn(i) => &mut i.attrs,
        Item::ForeignMod(i) => &mut i.attrs,
        Item::Impl(i) => &mut i.attrs,
        Item::Macro(i) => &mut i.attrs,
        Item::Mod(i) => &mut i.attrs,
        Item::Static(i) => &mut i.attrs,
        Item::Struct(i) => &mut i.attrs,
        Item::Trait(i) => &mut i.attrs,
        Item::TraitAlias(i) => &mut i.attrs,
        Item::Type(i) => &mut i.attrs,
        Item::Union(i) => &mut i.attrs,
        Item::Use(i) => &mut i.attrs,
        _ => return None,
    })
}

fn item_name(item: &Item) -> Option<&Ident> {
    Some(match item {
        Item::Const(i) => &i.ident,
        Item::Enum(i) => &i.ident,
        Item::Mod(i) => &i.ident,
        Item::Static(i) => &i.ident,
        Item::Struct(i) => &i.ident,
        Item::Trait(i) => &i.ident,
        Item::TraitAlias(i) => &i.ident,
        Item::Type(i) => &i.ident,
        Item::Union(i) => &i.ident,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// edge!
// ---------------------------------------------------------------------------------------------

/// Parses one `edge!(…)` item into its declarations (a chained `a -> b -> c`, reported as an
/// error, is read as the two edges the user meant, so the graph checks see the intended graph).
/// `None` when the edge cannot be read at all.
fn edge_decls(cx: &Ctxt, mac: &syn::ItemMacro, position: usize) -> Option<Vec<EdgeDecl>> {
    let tokens = mac.to_token_stream();
    if mac.mac.tokens.is_empty() {
        cx.error_spanned_by(
            &mac.mac,
            "empty `edge!`: write `edge!(a -> b)`, or `edge!(a -> b | c)` for a branch",
        );
        return None;
    }
    let parser = |input: ParseStream| edge_body(cx, input);
    match parser.parse2(mac.mac.tokens.clone()) {
        Ok(chain) => Some(
            chain
                .into_iter()
                .map(|edge| EdgeDecl {
                    from: edge.from,
                    targets: edge.targets,
                    on_error: edge.on_error,
                    tokens: tokens.clone(),
                    position,
                })
                .collect(),
        ),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

/// One declaration read from an `edge!` (a chain gives several).
struct ParsedEdge {
    from: Ident,
    targets: Vec<Ident>,
    on_error: Option<TokenStream>,
}

/// `from -> to (| to)*` or `from -> to on error`. Recoverable slips (`=>` for `->`, `,` for
/// `|`, a chain, `on failure` for `on error`) are recorded in `cx` and read as what was meant;
/// anything else is an `Err`.
fn edge_body(cx: &Ctxt, input: ParseStream) -> syn::Result<Vec<ParsedEdge>> {
    let mut from = node_name(
        input,
        "a node name or `START` at the start of `edge!`",
        None,
    )?;
    let mut chain = Vec::new();
    loop {
        let arrow_span = if input.peek(Token![=>]) {
            let arrow: Token![=>] = input.parse()?;
            cx.error_spanned_by(arrow, "edges use `->`, not `=>`: `edge!(a -> b)`");
            arrow.spans[1]
        } else if input.peek(Token![->]) {
            let arrow: Token![->] = input.parse()?;
            arrow.spans[1]
        } else {
            let message = format!("expected `->` after `{from}`, as in `edge!({from} -> next)`");
            return Err(match input.cursor().token_tree() {
                Some((token, _)) => syn::Error::new(token.span(), message),
                None => syn::Error::new(from.span(), message),
            });
        };
        let mut targets = vec![node_name(
            input,
            "a node name or `END` after `->`",
            Some(arrow_span),
        )?];
        let mut chained = false;
        let mut on_error = None;
        while !input.is_empty() {
            if input.peek(Token![|]) {
                let bar: Token![|] = input.parse()?;
                targets.push(node_name(
                    input,
                    "a node name or `END` after `|`",
                    Some(bar.span),
                )?);
            } else if input.peek(Token![,]) {
                let comma: Token![,] = input.parse()?;
                cx.error_spanned_by(
                    comma,
                    "separate the targets of a branch with `|`, not `,`: `edge!(a -> b | c)`",
                );
                if input.is_empty() {
                    break;
                }
                targets.push(node_name(
                    input,
                    "a node name or `END` after `,`",
                    Some(comma.span),
                )?);
            } else if input.peek(Token![->]) || input.peek(Token![=>]) {
                let last = targets.last().map_or_else(String::new, ToString::to_string);
                let arrow = if input.peek(Token![->]) {
                    input.fork().parse::<Token![->]>()?.into_token_stream()
                } else {
                    input.fork().parse::<Token![=>]>()?.into_token_stream()
                };
                cx.error_spanned_by(
                    arrow,
                    format!("one `edge!` declares the successors of one node; give `{last}` its own `edge!({last} -> …)`"),
                );
                chained = true;
                break;
            } else if input.peek(Ident::peek_any)
                && input.fork().call(Ident::parse_any).is_ok_and(|i| i == "on")
            {
                on_error = Some(on_error_clause(cx, input, &from, &targets)?);
                break;
            } else {
                let token: TokenTree = input.parse()?;
                return Err(syn::Error::new(
                    token.span(),
                    format!(
                        "unexpected `{token}` in `edge!`; expected `|` and another target, `on error`, or the end of the edge"
                    ),
                ));
            }
        }
        let next_from = targets.last().cloned();
        chain.push(ParsedEdge {
            from,
            targets,
            on_error,
        });
        match next_from {
            Some(next) if chained => from = next,
            _ => break,
        }
    }
    Ok(chain)
}

/// `on error` after the single target of an error edge, up to the end of the `edge!`; returns
/// its tokens (for spans). A misspelt second word (`on failure`) is recorded and read as
/// `on error`.
fn on_error_clause(
    cx: &Ctxt,
    input: ParseStream,
    from: &Ident,
    targets: &[Ident],
) -> syn::Result<TokenStream> {
    let on = input.call(Ident::parse_any)?;
    let target = targets
        .first()
        .map_or_else(String::new, ToString::to_string);
    let example = format!("`edge!({from} -> {target} on error)`");
    let word = if input.peek(Ident::peek_any) {
        input.call(Ident::parse_any)?
    } else {
        let message = format!("expected `on error`: an error edge reads {example}");
        return Err(match input.cursor().token_tree() {
            Some((token, _)) => syn::Error::new(token.span(), message),
            None => syn::Error::new(on.span(), message),
        });
    };
    let clause = quote::quote!(#on #word);
    if word != "error" {
        cx.error_spanned_by(
            &word,
            format!("expected `on error`, found `on {word}`: an error edge reads {example}"),
        );
    }
    if let [routes @ .., last] = targets
        && !routes.is_empty()
    {
        // Most likely the last target is meant to handle the failure.
        let routes: Vec<String> = routes.iter().map(ToString::to_string).collect();
        return Err(syn::Error::new_spanned(
            &clause,
            format!(
                "`on error` follows a single target, in an `edge!` of its own: write `edge!({from} -> {});` and `edge!({from} -> {last} on error);`",
                routes.join(" | ")
            ),
        ));
    }
    if let Some((token, _)) = input.cursor().token_tree() {
        return Err(syn::Error::new(
            token.span(),
            format!(
                "unexpected `{token}` after `on error`: an error edge has one target and ends there, as in {example}"
            ),
        ));
    }
    Ok(clause)
}

/// One node name in `edge!`: a plain identifier, `START` or `END`. `after` is the token
/// before it, where a missing name is reported.
fn node_name(input: ParseStream, expected: &str, after: Option<Span>) -> syn::Result<Ident> {
    if input.is_empty() {
        let message = format!("expected {expected}");
        return Err(match after {
            Some(span) => syn::Error::new(span, message),
            None => input.error(message),
        });
    }
    if input.peek(syn::LitStr) {
        let lit: syn::LitStr = input.parse()?;
        return Err(syn::Error::new_spanned(
            &lit,
            format!(
                "node names are identifiers, not strings: write `{}`",
                lit.value()
            ),
        ));
    }
    if input.peek(Token![::]) || (input.peek(Ident::peek_any) && input.peek2(Token![::])) {
        let path = input.call(syn::Path::parse_mod_style)?;
        let last = path
            .segments
            .last()
            .map_or_else(String::new, |s| s.ident.to_string());
        return Err(syn::Error::new_spanned(
            path,
            format!(
                "node names are the names of this module's `#[node]` functions, not paths: write `{last}`"
            ),
        ));
    }
    if !input.peek(Ident::peek_any) {
        let token: TokenTree = input.parse()?;
        return Err(syn::Error::new(
            token.span(),
            format!("expected {expected}, found `{token}`"),
        ));
    }
    input.call(Ident::parse_any)
}

// ---------------------------------------------------------------------------------------------
// #[node] functions
// ---------------------------------------------------------------------------------------------

/// Reads a `#[node]` function's arguments and signature.
fn node_fn(
    cx: &Ctxt,
    attr: Attribute,
    func: &ItemFn,
    state_hint: &str,
    item_index: usize,
) -> NodeFn {
    let ident = func.sig.ident.clone();
    let name = ident.unraw().to_string();
    let args = match &attr.meta {
        Meta::Path(_) => NodeArgs::default(),
        Meta::List(list) => node_args(cx, list.tokens.clone()),
        Meta::NameValue(meta) => {
            cx.error_spanned_by(
                meta,
                "`#[node]` takes its keys in parentheses: `#[node(interrupt, retry = 3, timeout_ms = 5_000)]`",
            );
            NodeArgs::default()
        }
    };
    for attr in &func.attrs {
        if is_cfg_attr(attr) {
            cx.error_spanned_by(
                attr,
                format!(
                    "`#[cfg]` on node `{name}` is not supported: the graph is checked before `cfg` is applied; put the `cfg` on the whole workflow module, or inside the node's body"
                ),
            );
        }
    }
    let params = node_signature(cx, func, &name, &args, state_hint);
    NodeFn {
        ident,
        name,
        args,
        params,
        output: func.sig.output.clone(),
        item_index,
        position: 0,
    }
}

/// Checks a node's signature and classifies its parameters. Returns no parameters when the
/// signature cannot be called (the error is recorded).
fn node_signature(
    cx: &Ctxt,
    func: &ItemFn,
    name: &str,
    args: &NodeArgs,
    state_hint: &str,
) -> Vec<NodeParam> {
    let sig = &func.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            format!("node `{name}` must be an `async fn`: write `async fn {name}(…)`"),
        );
        ok = false;
    }
    if let Some(constness) = &sig.constness {
        cx.error_spanned_by(
            constness,
            format!("node `{name}` cannot be a `const fn`; remove `const`"),
        );
        ok = false;
    }
    if let Some(unsafety) = &sig.unsafety {
        cx.error_spanned_by(
            unsafety,
            format!("node `{name}` cannot be an `unsafe fn`: the workflow calls it from safe code; use an `unsafe` block inside it"),
        );
        ok = false;
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned_by(
            abi,
            format!("node `{name}` cannot have an `extern` ABI; remove it"),
        );
        ok = false;
    }
    let generic = sig
        .generics
        .params
        .iter()
        .find(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
    if let Some(param) = generic {
        cx.error_spanned_by(
            param,
            format!("node `{name}` cannot be generic: the workflow calls it with concrete types; remove the type parameter"),
        );
        ok = false;
    }
    if let Some(where_clause) = &sig.generics.where_clause
        && generic.is_none()
        && !where_clause.predicates.is_empty()
    {
        cx.error_spanned_by(
            where_clause,
            format!("node `{name}` cannot have a `where` clause; remove it"),
        );
        ok = false;
    }
    if let Some(variadic) = &sig.variadic {
        cx.error_spanned_by(variadic, format!("node `{name}` cannot be variadic"));
        ok = false;
    }

    let mut params = Vec::new();
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        None => {
            cx.error_spanned_by(
                &sig.ident,
                format!(
                    "node `{name}` takes no parameters; its first parameter must be the state: `async fn {name}(state: &mut {state_hint})`"
                ),
            );
            ok = false;
        }
        Some(FnArg::Receiver(receiver)) => {
            cx.error_spanned_by(
                receiver,
                format!("node `{name}` cannot take `self`: nodes are free functions whose first parameter is the state, `&mut {state_hint}`"),
            );
            ok = false;
        }
        Some(FnArg::Typed(first)) => match &*first.ty {
            Type::Reference(reference) if is_node_ctx(&reference.elem) => {
                cx.error_spanned_by(
                    &first.ty,
                    format!("the first parameter of node `{name}` must be the state, `&mut {state_hint}`; `ctx: &NodeCtx` goes after it"),
                );
                // The other parameters cannot be classified without the state in front.
                return params;
            }
            Type::Reference(reference) => params.push(NodeParam {
                role: ParamRole::State {
                    mutable: reference.mutability.is_some(),
                },
                ty: (*first.ty).clone(),
            }),
            other => {
                cx.error_spanned_by(
                    other,
                    format!(
                        "the first parameter of node `{name}` must be the state by reference: `&mut {state_hint}` (or `&{state_hint}` to only read it)"
                    ),
                );
                ok = false;
            }
        },
    }

    let mut ctx_seen = false;
    for input in inputs {
        let FnArg::Typed(pat_type) = input else {
            cx.error_spanned_by(input, format!("node `{name}` cannot take `self`"));
            ok = false;
            continue;
        };
        let ty = &*pat_type.ty;
        if ctx_type(ty).is_some() || is_node_ctx(ty) {
            if ctx_seen {
                cx.error_spanned_by(
                    pat_type,
                    format!("node `{name}` takes `NodeCtx` twice; remove one"),
                );
                ok = false;
            }
            ctx_seen = true;
            match ty {
                Type::Reference(reference) if reference.mutability.is_some() => {
                    cx.error_spanned_by(
                        ty,
                        "the run context is shared: take `ctx: &NodeCtx`, not `&mut NodeCtx`",
                    );
                    ok = false;
                }
                Type::Reference(_) => params.push(NodeParam {
                    role: ParamRole::Ctx,
                    ty: ty.clone(),
                }),
                _ => {
                    cx.error_spanned_by(ty, "take the run context by reference: `ctx: &NodeCtx`");
                    ok = false;
                }
            }
            continue;
        }
        let has_input = params.iter().any(|p| p.role == ParamRole::Input);
        if !args.interrupt {
            cx.error_spanned_by(
                pat_type,
                format!(
                    "node `{name}` has an extra parameter `{}`: a node takes the state and, optionally, `ctx: &NodeCtx`; to wait for a human decision of this type, mark it `#[node(interrupt)]`",
                    tokens_to_string(pat_type)
                ),
            );
            ok = false;
        } else if has_input {
            cx.error_spanned_by(
                pat_type,
                format!(
                    "interrupt node `{name}` takes exactly one input parameter; remove `{}`, or fold it into the input type",
                    tokens_to_string(pat_type)
                ),
            );
            ok = false;
        } else if let Some(problem) = input_type_problem(ty) {
            cx.error_spanned_by(
                ty,
                format!("the input of interrupt node `{name}` {problem}"),
            );
            ok = false;
        } else {
            params.push(NodeParam {
                role: ParamRole::Input,
                ty: ty.clone(),
            });
        }
    }
    if args.interrupt && ok && !params.iter().any(|p| p.role == ParamRole::Input) {
        cx.error_spanned_by(
            &sig.ident,
            format!(
                "interrupt node `{name}` has no input parameter: add the decision it waits for, e.g. `async fn {name}(state: &mut {state_hint}, decision: Decision)`"
            ),
        );
    }
    // The parameters are only used by a successful expansion, which the recorded errors prevent.
    params
}

/// Why `ty` cannot be an interrupt input: it is stored in `Input` and in checkpoints.
fn input_type_problem(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Reference(_) => Some(
            "must be an owned type (it is saved in the checkpoint), not a reference: e.g. `String` instead of `&str`",
        ),
        Type::ImplTrait(_) => {
            Some("must be a concrete type (it is saved in the checkpoint), not `impl Trait`")
        }
        Type::Infer(_) => Some("must be written out"),
        Type::Paren(inner) => input_type_problem(&inner.elem),
        Type::Group(inner) => input_type_problem(&inner.elem),
        _ => None,
    }
}

/// `&NodeCtx` / `&path::NodeCtx`: the referenced type.
fn ctx_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(reference) if is_node_ctx(&reference.elem) => Some(&reference.elem),
        Type::Paren(inner) => ctx_type(&inner.elem),
        Type::Group(inner) => ctx_type(&inner.elem),
        _ => None,
    }
}

/// Whether the type's last path segment is `NodeCtx`.
fn is_node_ctx(ty: &Type) -> bool {
    match ty {
        Type::Path(path) => {
            path.qself.is_none()
                && path
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "NodeCtx")
        }
        Type::Paren(inner) => is_node_ctx(&inner.elem),
        Type::Group(inner) => is_node_ctx(&inner.elem),
        _ => false,
    }
}

/// A short, canonical rendering of tokens for messages and the graph hash. It depends only on
/// the tokens, never on the user's spacing or on rustc's printer (whose output may change
/// between releases): no space except between two words, after `,` and a lone `:`, and around
/// `+`, `=` and `->`. So `Vec < u8 >` and `Vec<u8>` read the same, and
/// `HashMap<String,u32>` reads `HashMap<String, u32>`.
pub(crate) fn tokens_to_string<T: ToTokens + ?Sized>(tokens: &T) -> String {
    let mut out = String::new();
    write_tokens(&mut out, tokens.to_token_stream());
    out.trim().to_owned()
}

fn write_tokens(out: &mut String, tokens: TokenStream) {
    use proc_macro2::Delimiter;
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let punct = |i: usize| match tokens.get(i) {
        Some(TokenTree::Punct(p)) => Some(p.as_char()),
        _ => None,
    };
    let mut last_was_word = false;
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                if last_was_word {
                    out.push(' ');
                }
                out.push_str(&token.to_string());
                last_was_word = true;
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                let prev = i.checked_sub(1).and_then(punct);
                let next = punct(i + 1);
                match c {
                    ',' => out.push_str(", "),
                    ':' if prev != Some(':') && next != Some(':') => out.push_str(": "),
                    '+' => push_spaced(out, "+"),
                    '=' if prev.is_none() && next.is_none() => push_spaced(out, "="),
                    '-' if next == Some('>') => push_spaced(out, "->"),
                    '>' if prev == Some('-') => {}
                    _ => out.push(c),
                }
                // `'a`: the apostrophe and the lifetime's name are one word.
                last_was_word = false;
            }
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => ("{ ", " }"),
                    Delimiter::None => ("", ""),
                };
                if group.delimiter() == Delimiter::None {
                    // An invisible group (from `macro_rules!`) is printed as its contents.
                    let mut inner = String::new();
                    write_tokens(&mut inner, group.stream());
                    if last_was_word && !inner.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(inner.trim());
                    last_was_word = !inner.is_empty();
                    continue;
                }
                out.push_str(open);
                let mut inner = String::new();
                write_tokens(&mut inner, group.stream());
                out.push_str(inner.trim());
                out.push_str(close);
                last_was_word = false;
            }
        }
    }
}

/// Appends ` op ` without doubling a space already there.
fn push_spaced(out: &mut String, op: &str) {
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out.push_str(op);
    out.push(' ');
}

/// The spans of the first and last token of `tokens`: generated code that carries them covers
/// the user's tokens, so rustc's errors underline exactly what the user wrote.
pub(crate) fn span_range<T: ToTokens + ?Sized>(tokens: &T) -> (Span, Span) {
    let mut iter = tokens.to_token_stream().into_iter();
    let first = iter.next().map_or_else(Span::call_site, |t| t.span());
    let last = iter.last().map_or(first, |t| t.span());
    (first, last)
}

/// The span of a return type: the type itself, or the function's name when it returns `()`
/// implicitly.
pub(crate) fn output_span(node: &NodeFn) -> (Span, Span) {
    match &node.output {
        syn::ReturnType::Type(_, ty) => span_range(&**ty),
        syn::ReturnType::Default => (node.ident.span(), node.ident.span()),
    }
}
