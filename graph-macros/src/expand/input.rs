//! `Input`: one variant per interrupt node, holding its input, with the names that say which
//! node an input is for (`Input::NODES`, `Input::node`); and `input_node`, the node's cursor.
//!
//! Each variant also deserializes from the node's own name (`{"review": …}`, the name
//! `Status`, events and `Snapshot::waiting` use) besides the variant's (`{"Review": …}`):
//! serde's `alias`, which only adds a name that a string key may match. A binary format such
//! as the checkpoints' bincode identifies a variant by its index, which the alias leaves as
//! it is, and serializing still writes the variant's name.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::Gen;

/// The `Input` enum and its inherent items.
pub(super) fn input_enum(g: &Gen) -> TokenStream {
    let (rt, allow) = (&g.rt, &g.allow);
    let module = g.plan.graph.module;
    let interrupts = g.plan.interrupts();
    let serde_crate = super::paths::serde_crate(&g.args.krate);
    let input_variants = interrupts.iter().map(|(task, ty)| {
        let variant = &task.variant;
        let name = task.node.name.as_str();
        let doc = format!(
            "The input of interrupt node `{name}` (in JSON, keyed `\"{name}\"` or `\"{variant}\"`)."
        );
        // A node whose name is its variant's needs no alias (serde refuses a name twice).
        let alias = (variant != name).then(|| quote!(#[serde(alias = #name)]));
        quote!(#[doc = #doc] #alias #variant(#ty))
    });
    // A subgraph node's variant carries its child's `Input`, after the interrupt nodes'
    // (so that graphs without subgraph nodes keep their variants, and their indices).
    let subgraphs = g.plan.subgraphs();
    let child_variants = subgraphs.iter().map(|(task, path)| {
        let variant = &task.variant;
        let name = task.node.name.as_str();
        let doc = format!(
            "The answer for the child of subgraph node `{name}`, which waits at one of its own interrupt nodes: the child workflow's `Input` (in JSON, keyed `\"{name}\"` or `\"{variant}\"`, then by the child's node)."
        );
        let alias = (variant != name).then(|| quote!(#[serde(alias = #name)]));
        let (first, _) = crate::parse::span_range(path);
        let child_input = quote_spanned!(first=> #path::Input);
        quote!(#[doc = #doc] #alias #variant(#child_input))
    });
    let names: Vec<&str> = interrupts
        .iter()
        .map(|(task, _)| task.node.name.as_str())
        .collect();
    let node_arms = interrupts
        .iter()
        .map(|(task, _)| task)
        .chain(subgraphs.iter().map(|(task, _)| task))
        .map(|task| {
            let (variant, name) = (&task.variant, task.node.name.as_str());
            quote!(Input::#variant(..) => #name,)
        });
    let input_doc = if interrupts.is_empty() {
        format!(
            "The inputs of workflow `{}`: it has no interrupt node, so this enum has no values.",
            module.name
        )
    } else {
        let listed: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
        format!(
            "The inputs of workflow `{}`'s interrupt nodes ({}): pass one to `Runner::resume_with` when the run waits there.\n\nIn JSON, a decision is keyed by the node's name (`{{\"{}\": …}}`) or by the variant's.",
            module.name,
            listed.join(", "),
            names.first().copied().unwrap_or_default()
        )
    };
    let nodes_doc = format!(
        "The interrupt nodes of workflow `{}`, in declaration order: one per variant, the names an input is keyed by in JSON.",
        module.name
    );
    quote! {
        #[doc = #input_doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            #rt::serde::Serialize,
            #rt::serde::Deserialize
        )]
        #[serde(crate = #serde_crate)]
        #allow
        pub enum Input {
            #(#input_variants,)*
            #(#child_variants,)*
        }

        #allow
        impl Input {
            #[doc = #nodes_doc]
            pub const NODES: &'static [&'static str] = &[#(#names),*];

            /// The interrupt node this input is for, by the name `Status`, events and
            /// `Snapshot::waiting` use (for an answer to a subgraph node's child, the
            /// subgraph node).
            pub fn node(&self) -> &'static str {
                match *self {
                    #(#node_arms)*
                }
            }
        }
    }
}

/// `Execute::input_node`.
pub(super) fn input_node_fn(g: &Gen) -> TokenStream {
    let plan = &g.plan;
    let arms = plan
        .interrupts()
        .into_iter()
        .map(|(task, _)| task)
        .chain(plan.subgraphs().into_iter().map(|(task, _)| task))
        .map(|task| {
            let variant = &task.variant;
            quote!(Input::#variant(..) => __GraphCursor::#variant,)
        });
    quote! {
        fn input_node(input: &Input) -> __GraphCursor {
            match *input {
                #(#arms)*
            }
        }
    }
}

/// `Execute::child_workflows`: the child workflow of each subgraph node, named through its
/// variant of `Input` (whose field is the child's `Input`), so that cancelling a parent can
/// cancel its children. Nothing for a graph without subgraph nodes.
pub(super) fn child_workflows_fn(g: &Gen) -> TokenStream {
    let subgraphs = g.plan.subgraphs();
    if subgraphs.is_empty() {
        return TokenStream::new();
    }
    let rt = &g.rt;
    let workflows = subgraphs.iter().map(|(task, _)| {
        let variant = &task.variant;
        quote!(#rt::child_workflow(Input::#variant))
    });
    // The same for a worker that registers this workflow, to run its children too.
    let workers = subgraphs.iter().map(|(task, _)| {
        let variant = &task.variant;
        quote!(#rt::child_worker(Input::#variant))
    });
    quote! {
        fn child_workflows() -> ::std::vec::Vec<
            ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>,
        > {
            ::std::vec![#(#workflows),*]
        }

        fn child_workers() -> ::std::vec::Vec<
            ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync>,
        > {
            ::std::vec![#(#workers),*]
        }
    }
}

/// `Execute::child_answer`: a subgraph node's variant of `Input` is the answer for its
/// child, built by the runtime's `child_answer` for the workflow whose `Input` it is (so
/// that a `subgraph = m` that is not a workflow is reported once, at the variant's type).
/// Nothing for a graph without subgraph nodes.
pub(super) fn child_answer_fn(g: &Gen) -> TokenStream {
    let subgraphs = g.plan.subgraphs();
    if subgraphs.is_empty() {
        return TokenStream::new();
    }
    let rt = &g.rt;
    let input = proc_macro2::Ident::new("input", proc_macro2::Span::mixed_site());
    let arms = subgraphs.iter().map(|(task, _)| {
        let variant = &task.variant;
        quote!(Input::#variant(#input) => ::core::result::Result::Ok(#rt::child_answer(#input)),)
    });
    quote! {
        fn child_answer(
            #input: Input,
        ) -> ::core::result::Result<
            ::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>,
            Input,
        > {
            #[allow(unreachable_patterns)]
            match #input {
                #(#arms)*
                other => ::core::result::Result::Err(other),
            }
        }
    }
}
