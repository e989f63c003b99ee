//! `edge!(…)`: one declaration per `edge!`, with the slips a user makes read as what was meant.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, Token};

use super::node::is_cfg_attr;
use crate::ctxt::Ctxt;

/// How an `edge!` takes its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fan {
    /// `a -> b` or `a -> b | c`: the node's return value picks one.
    One,
    /// `a -> b & c`: a fan-out, every target runs at once (a branch of the region).
    All,
    /// `plan -> each assess`: a map, the target runs once per item `plan` returns.
    Each,
}

/// One `edge!(from -> to | to …)`, `edge!(from -> to & to …)`, `edge!(b & c -> join)`,
/// `edge!(from -> each to)`, or one error edge `edge!(from -> to on error)`.
pub(crate) struct EdgeDecl {
    /// The source; for a join (`b & c -> j`), the first of the branches.
    pub(crate) from: Ident,
    /// `b & c -> j`: the branches the join waits for, in the order written (`from` first);
    /// empty for any other edge.
    pub(crate) joined: Vec<Ident>,
    pub(crate) fan: Fan,
    /// When an `edge!` mixes `&` and `|`: the first separator that differs from the first one
    /// (reported by `check`; the edge is read with the first one's meaning).
    pub(crate) mixed: Option<TokenStream>,
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

impl EdgeDecl {
    /// The sources: every branch of a join, or the one source of any other edge.
    pub(crate) fn sources(&self) -> &[Ident] {
        if self.joined.is_empty() {
            std::slice::from_ref(&self.from)
        } else {
            &self.joined
        }
    }
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
                    joined: edge.joined,
                    fan: edge.fan,
                    mixed: edge.mixed,
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
    joined: Vec<Ident>,
    fan: Fan,
    mixed: Option<TokenStream>,
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
    let mut joined = join_sources(cx, input, &from)?;
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
        // `each` before a name makes a map (a node named `each` is still a plain target).
        let mut fan = Fan::One;
        let mut after = arrow_span;
        if is_each(input) {
            let each = input.call(Ident::parse_any)?;
            after = each.span();
            fan = Fan::Each;
        }
        let mut targets = vec![node_name(
            input,
            "a node name or `END` after `->`",
            Some(after),
        )?];
        let mut chained = false;
        let mut on_error = None;
        let mut first_separator: Option<char> = None;
        let mut mixed: Option<TokenStream> = None;
        while !input.is_empty() {
            if input.peek(Token![|]) || input.peek(Token![&]) || input.peek(Token![&&]) {
                let (separator, tokens, span) = if input.peek(Token![|]) {
                    let bar: Token![|] = input.parse()?;
                    ('|', bar.into_token_stream(), bar.span)
                } else if input.peek(Token![&&]) {
                    let and: Token![&&] = input.parse()?;
                    cx.error_spanned_by(
                        and,
                        "separate the branches of a fan-out with one `&`, not `&&`: `edge!(a -> b & c)`",
                    );
                    ('&', and.into_token_stream(), and.spans[1])
                } else {
                    let and: Token![&] = input.parse()?;
                    ('&', and.into_token_stream(), and.span)
                };
                if fan == Fan::Each {
                    return Err(syn::Error::new(
                        span,
                        format!(
                            "`each` maps over one node: write `edge!({from} -> each {})`, and declare the other targets apart",
                            targets
                                .first()
                                .map_or_else(String::new, ToString::to_string)
                        ),
                    ));
                }
                match first_separator {
                    None => {
                        first_separator = Some(separator);
                        if separator == '&' {
                            fan = Fan::All;
                        }
                    }
                    Some(first) if first != separator && mixed.is_none() => mixed = Some(tokens),
                    Some(_) => {}
                }
                let target = node_name(
                    input,
                    &format!("a node name or `END` after `{separator}`"),
                    Some(span),
                )?;
                // After a mixed separator the edge is read as far as its first meaning goes,
                // so that the one mistake gives one error.
                if mixed.is_none() {
                    targets.push(target);
                }
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
                let message = if fan == Fan::All {
                    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
                    format!(
                        "one `edge!` declares the successors of one node; join the branches in their own `edge!({} -> …)`",
                        names.join(" & ")
                    )
                } else {
                    format!(
                        "one `edge!` declares the successors of one node; give `{last}` its own `edge!({last} -> …)`"
                    )
                };
                cx.error_spanned_by(arrow, message);
                chained = true;
                break;
            } else if input.peek(Ident::peek_any)
                && input.fork().call(Ident::parse_any).is_ok_and(|i| i == "on")
            {
                if fan == Fan::One && joined.is_empty() {
                    on_error = Some(on_error_clause(cx, input, &from, &targets)?);
                } else {
                    let clause = input.fork().call(Ident::parse_any)?;
                    return Err(syn::Error::new(
                        clause.span(),
                        format!(
                            "an error edge leads from one node to one node, as in `edge!({from} -> recover on error)`; declare it in an `edge!` of its own"
                        ),
                    ));
                }
                break;
            } else {
                let token: TokenTree = input.parse()?;
                let expected = if fan == Fan::All {
                    "`&` and another branch"
                } else {
                    "`|` and another target"
                };
                return Err(syn::Error::new(
                    token.span(),
                    format!(
                        "unexpected `{token}` in `edge!`; expected {expected}, `on error`, or the end of the edge"
                    ),
                ));
            }
        }
        if !joined.is_empty() && (fan != Fan::One || targets.len() > 1) {
            let names: Vec<String> = joined.iter().map(ToString::to_string).collect();
            cx.error_spanned_by(
                &targets[targets.len() - 1],
                format!(
                    "a join has one node after `->`, the node that takes the branches' outputs: `edge!({} -> join)`; give it its own `edge!` for what follows",
                    names.join(" & ")
                ),
            );
            targets.truncate(1);
            fan = Fan::One;
        }
        // A chain `a -> b & c -> d` continues from every branch; `a -> b -> c` from the last.
        let next_joined = if chained && fan == Fan::All {
            targets.clone()
        } else {
            Vec::new()
        };
        let next_from = if next_joined.is_empty() {
            targets.last().cloned()
        } else {
            targets.first().cloned()
        };
        chain.push(ParsedEdge {
            from,
            joined: std::mem::take(&mut joined),
            fan,
            mixed,
            targets,
            on_error,
        });
        match next_from {
            Some(next) if chained => {
                from = next;
                joined = next_joined;
            }
            _ => break,
        }
    }
    Ok(chain)
}

/// `& c & d` after the first name of a join (`edge!(b & c & d -> j)`): every branch, the first
/// included; empty when the `edge!` has one source.
fn join_sources(cx: &Ctxt, input: ParseStream, first: &Ident) -> syn::Result<Vec<Ident>> {
    let mut joined = Vec::new();
    while input.peek(Token![&]) || input.peek(Token![&&]) || input.peek(Token![|]) {
        if joined.is_empty() {
            joined.push(first.clone());
        }
        let span = if input.peek(Token![&&]) {
            let and: Token![&&] = input.parse()?;
            cx.error_spanned_by(
                and,
                "separate the branches of a join with one `&`, not `&&`: `edge!(b & c -> join)`",
            );
            and.spans[1]
        } else if input.peek(Token![|]) {
            let bar: Token![|] = input.parse()?;
            cx.error_spanned_by(
                bar,
                "a join waits for all of its branches: separate them with `&`, not `|`: `edge!(b & c -> join)`",
            );
            bar.span
        } else {
            input.parse::<Token![&]>()?.span
        };
        joined.push(node_name(input, "a branch node after `&`", Some(span))?);
    }
    Ok(joined)
}

/// Whether the input continues with `each name` (a map), not with a target named `each`.
fn is_each(input: ParseStream) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok_and(|word| word == "each")
        && fork.peek(Ident::peek_any)
        && !fork
            .fork()
            .call(Ident::parse_any)
            .is_ok_and(|word| word == "on")
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

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    /// The declarations of one `edge!`, and the messages of the errors it recorded.
    fn read(mac: syn::ItemMacro) -> (Option<Vec<EdgeDecl>>, Vec<String>) {
        let cx = Ctxt::new();
        let decls = edge_decls(&cx, &mac, 0);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (decls, errors)
    }

    fn names(idents: &[Ident]) -> Vec<String> {
        idents.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn fan_outs_joins_and_maps() {
        let (decls, errors) = read(parse_quote!(edge!(intake -> fraud & coverage & adjuster);));
        assert!(errors.is_empty(), "{errors:?}");
        let decls = decls.expect("an edge");
        assert_eq!(decls.len(), 1);
        assert_eq!(decls[0].fan, Fan::All);
        assert_eq!(names(&decls[0].targets), ["fraud", "coverage", "adjuster"]);
        assert!(decls[0].joined.is_empty() && decls[0].mixed.is_none());

        let (decls, errors) = read(parse_quote!(edge!(fraud & coverage & adjuster -> decide);));
        assert!(errors.is_empty(), "{errors:?}");
        let decl = &decls.expect("an edge")[0];
        assert_eq!(decl.fan, Fan::One);
        assert_eq!(names(decl.sources()), ["fraud", "coverage", "adjuster"]);
        assert_eq!(names(&decl.targets), ["decide"]);

        let (decls, errors) = read(parse_quote!(edge!(plan -> each assess);));
        assert!(errors.is_empty(), "{errors:?}");
        let decl = &decls.expect("an edge")[0];
        assert_eq!(decl.fan, Fan::Each);
        assert_eq!(names(&decl.targets), ["assess"]);
        assert_eq!(names(decl.sources()), ["plan"]);

        // A node named `each` is still a target.
        let (decls, _) = read(parse_quote!(edge!(plan -> each);));
        let decl = &decls.expect("an edge")[0];
        assert_eq!(
            (decl.fan, names(&decl.targets)),
            (Fan::One, vec!["each".to_owned()])
        );
    }

    #[test]
    fn slips_in_parallel_edges() {
        // Mixed separators are read with the first one's meaning, for `check` to report.
        let (decls, errors) = read(parse_quote!(edge!(a -> b & c | d);));
        assert!(errors.is_empty(), "{errors:?}");
        let decl = &decls.expect("an edge")[0];
        assert_eq!(decl.fan, Fan::All);
        assert_eq!(
            decl.mixed.as_ref().map(ToString::to_string).as_deref(),
            Some("|")
        );

        let (_, errors) = read(parse_quote!(edge!(a -> b && c);));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("one `&`, not `&&`"), "{errors:?}");

        let (_, errors) = read(parse_quote!(edge!(b | c -> j);));
        assert!(
            errors[0].contains("separate them with `&`, not `|`"),
            "{errors:?}"
        );

        let (decls, errors) = read(parse_quote!(edge!(plan -> each a | b);));
        assert!(decls.is_none());
        assert!(
            errors[0].contains("`each` maps over one node"),
            "{errors:?}"
        );

        let (_, errors) = read(parse_quote!(edge!(b & c -> j | k);));
        assert!(
            errors[0].contains("a join has one node after `->`"),
            "{errors:?}"
        );

        let (decls, errors) = read(parse_quote!(edge!(a -> b & c on error);));
        assert!(decls.is_none());
        assert!(
            errors[0].contains("an error edge leads from one node to one node"),
            "{errors:?}"
        );

        // A chain through a fan-out is read as the fan-out and its join.
        let (decls, errors) = read(parse_quote!(edge!(a -> b & c -> d);));
        assert!(
            errors[0].contains("join the branches in their own `edge!(b & c -> …)`"),
            "{errors:?}"
        );
        let decls = decls.expect("two edges");
        assert_eq!(decls.len(), 2);
        assert_eq!(names(decls[1].sources()), ["b", "c"]);
    }
}
