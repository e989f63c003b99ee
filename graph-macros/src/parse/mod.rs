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
use syn::{Attribute, Ident, Item, ItemMod, Type};

use crate::ctxt::Ctxt;

mod args;
mod edge;
mod node;

pub(crate) use args::workflow_args;
use edge::{check_edge_attrs, edge_decls, is_edge_macro};
use node::{is_cfg_attr, node_fn, take_node_attr};

pub(crate) use args::{CheckpointOverride, WorkflowArgs};
pub(crate) use edge::{EdgeDecl, Fan};
pub(crate) use node::{
    NodeFn, NodeParam, ParamRole, collected_type, result_ok_type, vec_item_type,
};

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
