//! `edge!(…)`: one declaration per `edge!`, with the slips a user makes read as what was meant.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Token};

use super::node::is_cfg_attr;
use crate::ctxt::Ctxt;

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

pub(super) fn is_edge_macro(path: &syn::Path) -> bool {
    path.segments
        .last()
        .is_some_and(|segment| segment.ident == "edge")
}

/// `#[cfg]` on an edge would make the checked graph differ from the compiled one.
pub(super) fn check_edge_attrs(cx: &Ctxt, attrs: &[Attribute]) {
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

/// Parses one `edge!(…)` item into its declarations (a chained `a -> b -> c`, reported as an
/// error, is read as the two edges the user meant, so the graph checks see the intended graph).
/// `None` when the edge cannot be read at all.
pub(super) fn edge_decls(
    cx: &Ctxt,
    mac: &syn::ItemMacro,
    position: usize,
) -> Option<Vec<EdgeDecl>> {
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
