//! The absolute paths generated code names, in one place: the runtime crate (`::graph_runtime`,
//! or what `#[workflow(crate = path)]` / `#[state_schema(crate = path)]` says), its hidden
//! `__private` module (every runtime item generated code uses is re-exported there), and the
//! `serde` it re-exports for `#[serde(crate = "…")]`.
//!
//! Generated code never relies on what the user imported: it names the runtime through these
//! paths, and everything else through `::core` or `::std`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Ident;

use crate::parse::tokens_to_string;

/// The runtime crate's name when no `crate = path` is given.
const DEFAULT_CRATE: &str = "graph_runtime";

/// `::graph_runtime`, built without any chance of failure.
pub(crate) fn default_crate() -> syn::Path {
    let mut segments = syn::punctuated::Punctuated::new();
    segments.push(syn::PathSegment::from(Ident::new(
        DEFAULT_CRATE,
        Span::call_site(),
    )));
    syn::Path {
        leading_colon: Some(Default::default()),
        segments,
    }
}

/// `<crate>::__private`, as generated code in the workflow module (or next to a derived type)
/// names it.
pub(crate) fn private(krate: &syn::Path) -> TokenStream {
    quote!(#krate::__private)
}

/// `<crate>::__private` from a module nested in the workflow module (the hidden probes): a
/// relative `crate =` path gets a `super::` in front.
pub(crate) fn nested_private(krate: &syn::Path) -> TokenStream {
    let first = krate
        .segments
        .first()
        .map(|segment| segment.ident.to_string());
    match first.as_deref() {
        _ if krate.leading_colon.is_some() => quote!(#krate::__private),
        Some("crate") => quote!(#krate::__private),
        Some("self") => {
            let rest = krate.segments.iter().skip(1);
            quote!(super #(::#rest)*::__private)
        }
        _ => quote!(super::#krate::__private),
    }
}

/// `"<crate>::__private::serde"`: the value of `#[serde(crate = …)]` on generated types.
pub(crate) fn serde_crate(krate: &syn::Path) -> String {
    format!("{}::__private::serde", tokens_to_string(krate))
}

#[cfg(test)]
mod tests {
    use syn::parse_quote;

    use super::*;

    #[test]
    fn paths_from_the_crate_override() {
        let text = |tokens: TokenStream| tokens.to_string();
        assert_eq!(
            text(private(&default_crate())),
            ":: graph_runtime :: __private"
        );
        assert_eq!(
            serde_crate(&default_crate()),
            "::graph_runtime::__private::serde"
        );
        // From the nested probe module: absolute and `crate::` paths stay, relative ones go up.
        let cases: [(syn::Path, &str); 4] = [
            (parse_quote!(::my_rt), ":: my_rt :: __private"),
            (parse_quote!(crate::rt), "crate :: rt :: __private"),
            (parse_quote!(self::rt), "super :: rt :: __private"),
            (parse_quote!(rt), "super :: rt :: __private"),
        ];
        for (krate, nested) in cases {
            assert_eq!(text(nested_private(&krate)), nested);
        }
    }
}
