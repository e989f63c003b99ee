//! Routes: the `<node>::Next` enums generated from each node's `edge!`, and the
//! `Transition` a route leads to.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Ident;

use crate::lower::Task;
use crate::model::{END, Endpoint, variant_ident};
use crate::parse::NodeFn;

/// The node's name as a module name (raw identifiers stay raw), at the call site.
pub(crate) fn module_ident(node: &NodeFn) -> Ident {
    let mut ident = node.ident.clone();
    ident.set_span(Span::call_site());
    ident
}

/// `mod <node> { enum Next }`: the routes of a branching node. A node with one successor gets a
/// hidden, empty `Next`, so that returning `node::Next` from it gets our explanation
/// ("returns `()`") rather than a failed path resolution.
pub(super) fn next_module(allow: &TokenStream, n: &Task) -> TokenStream {
    let ident = module_ident(n.node);
    let name = &n.node.name;
    if !n.branches() {
        let target = n
            .target_idents
            .first()
            .map_or_else(String::new, ToString::to_string);
        let doc = format!(
            "Node `{name}` has one successor (`{target}`), so it returns `()` or `Result<(), E>` and has no routes."
        );
        return quote! {
            #[doc(hidden)]
            #allow
            pub mod #ident {
                #[doc = #doc]
                pub enum Next {}
            }
        };
    }
    let targets: Vec<String> = n.target_idents.iter().map(ToString::to_string).collect();
    let edge = format!("edge!({name} -> {})", targets.join(" | "));
    let module_doc = format!("The routes of node `{name}`, generated from `{edge}`.");
    let enum_doc =
        format!("Where the run goes after node `{name}`: one variant per target of `{edge}`.");
    let variants = n.target_idents.iter().map(|target| {
        let target_name = target.to_string();
        // The variant's span is the target in `edge!`: "go to definition" lands on the edge.
        let variant = variant_ident(&crate::model::ident_name(target), target.span());
        let doc = if target_name == END {
            "Finish the run (`END`).".to_owned()
        } else {
            format!("Go to node `{target_name}`.")
        };
        quote!(#[doc = #doc] #variant)
    });
    // The enum starts at the node's name in its `edge!` and ends at its last target (its name
    // and braces carry that span), so rustc's "variant `Ship` not found for this enum" label
    // underlines `validate -> review | charge`: the successors, in the user's code. Spans of
    // the user's tokens join; with a call-site token among them the label would fall back to
    // `#[workflow]`.
    let last = n
        .target_idents
        .last()
        .map_or_else(|| n.edge_from.span(), Ident::span);
    let enum_head = quote_spanned!(n.edge_from.span()=> pub enum);
    let next = Ident::new("Next", last);
    let mut body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, quote!(#(#variants,)*));
    body.set_span(last);
    let quiet = quiet_similar_names();
    quote! {
        #[doc = #module_doc]
        #allow
        pub mod #ident {
            #[doc = #enum_doc]
            #[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::cmp::PartialEq,
                ::core::cmp::Eq,
                ::core::hash::Hash
            )]
            #enum_head #next #body

            #quiet
        }
    }
}

/// The associated functions that `Next` has from its derives and std's blanket impls, whose
/// names rustc's "no variant `Done`" error would otherwise offer as "a method with a similar
/// name" (`ne` from `PartialEq` for `Done`, `into` for `Into`, …).
pub(super) const SIMILAR_NAMES: [&str; 16] = [
    "fmt",
    "clone",
    "clone_from",
    "eq",
    "ne",
    "hash",
    "hash_slice",
    "from",
    "into",
    "try_from",
    "try_into",
    "borrow",
    "borrow_mut",
    "type_id",
    "to_owned",
    "clone_into",
];

/// A hidden trait, never in scope, that gives `Next` a second function of each name in
/// [`SIMILAR_NAMES`]. rustc looks for similar names among the functions of every trait a type
/// implements, and drops a name that two traits provide (it could not say which one it
/// means): a misspelt variant then gets rustc's plain "no variant" error, with "a variant with
/// a similar name" when there is one, and never a method of `PartialEq`. Calls such as
/// `a.ne(&b)` or `a == b` are unaffected, since they only see traits in scope.
fn quiet_similar_names() -> TokenStream {
    let names: Vec<Ident> = SIMILAR_NAMES
        .iter()
        .map(|name| Ident::new(name, Span::call_site()))
        .collect();
    // `pub` in a private module: rustc leaves out a trait that is private to its module when
    // it looks for similar names (so the trait must be `pub`), and nothing outside can name it.
    quote! {
        mod __graph_similar_names {
            pub trait NoSimilarNames {
                #(fn #names();)*
            }
            impl NoSimilarNames for super::Next {
                #(fn #names() {})*
            }
        }
    }
}

pub(super) fn transition<'c>(
    rt: &TokenStream,
    target: Endpoint,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
) -> TokenStream {
    match (target, cursor_variant(target)) {
        (Endpoint::Node(_), Some(variant)) => {
            quote!(#rt::Transition::Next(__GraphCursor::#variant))
        }
        _ => quote!(#rt::Transition::End),
    }
}
