//! On error: the module's items with our markers stripped, plausible stand-ins for the items
//! the macro would have generated, and the combined errors.
//!
//! The stand-ins exist so that the user sees *our* errors and not a cascade behind them: node
//! bodies name `validate::Next::Charge`, other code names `checkout::Input::Review(…)` or
//! `checkout::Workflow`, and all of that must still resolve while the graph is wrong. They are
//! built to never add an error of their own (names that would clash are left out), and they
//! are never run: the build fails on the errors they come with.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Item};

use crate::expand::{allow_lints, module_ident, private_path};
use crate::lower::Plan;
use crate::model::{END, Graph, START, ident_name, variant_ident};
use crate::parse::WorkflowArgs;

/// The item under `#[workflow]` was not an inline module.
pub(crate) fn not_a_module(item: TokenStream, errors: Option<syn::Error>) -> TokenStream {
    let errors = errors.map(|e| e.to_compile_error());
    match syn::parse2::<Item>(item.clone()) {
        // `mod m;`: an empty inline module keeps `m` resolvable without looking for `m.rs`.
        Ok(Item::Mod(module)) if module.content.is_none() => {
            let vis = &module.vis;
            let ident = &module.ident;
            quote!(#errors #vis mod #ident {})
        }
        Ok(_) => quote!(#errors #item),
        Err(_) => quote!(#errors),
    }
}

/// The module with its items, stand-ins for the generated items, and `errors`.
pub(crate) fn module(args: &WorkflowArgs, graph: &Graph, errors: &syn::Error) -> TokenStream {
    let module = graph.module;
    let allow = allow_lints();
    let rt = private_path(args);

    // A duplicate node would add rustc's "defined multiple times" to our error.
    let duplicates: BTreeSet<usize> = (0..graph.nodes().len())
        .filter(|&i| graph.is_duplicate(i))
        .filter_map(|i| graph.nodes().get(i).map(|node| node.item_index))
        .collect();
    let mut items: Vec<Item> = module
        .items
        .iter()
        .enumerate()
        .filter(|(i, _)| !duplicates.contains(i))
        .map(|(_, item)| item.clone())
        .collect();

    let taken: BTreeSet<String> = module
        .item_names
        .iter()
        .map(|item| ident_name(&item.ident))
        .collect();
    let free = |name: &str| !taken.contains(name);

    // `node::Next` for every node, with a variant for every name the node could mean: every
    // node, `End`, and every target written in an `edge!` (typos included).
    let mut every_variant: Vec<Ident> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let names = graph
        .nodes()
        .iter()
        .map(|node| node.name.clone())
        .chain([END.to_owned()])
        .chain(
            module
                .edges
                .iter()
                .flat_map(|edge| edge.targets.iter().map(ident_name)),
        );
    for name in names {
        if name == START {
            continue;
        }
        let variant = variant_ident(&name, Span::call_site());
        if seen.insert(variant.to_string()) {
            every_variant.push(variant);
        }
    }
    let mut generated = TokenStream::new();
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for (i, node) in graph.nodes().iter().enumerate() {
        if graph.is_duplicate(i) || node.name == START || node.name == END || !free(&node.name) {
            continue;
        }
        if !modules.insert(node.name.clone()) {
            continue;
        }
        let ident = module_ident(node);
        generated.extend(quote! {
            #allow
            pub mod #ident {
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq)]
                pub enum Next { #(#every_variant,)* }
            }
        });
    }

    // `Input` with the interrupt inputs that parsed.
    let serde_crate = crate::expand::paths::serde_crate(&args.krate);
    // The plan's interrupt nodes (interrupt branches included), as far as they parsed; a
    // repeated name keeps its first.
    let plan = Plan::build(graph);
    let mut input_seen: BTreeSet<String> = BTreeSet::new();
    let input_variants: Vec<TokenStream> = plan
        .interrupts()
        .into_iter()
        .filter_map(|(task, ty)| {
            let variant = &task.variant;
            input_seen
                .insert(variant.to_string())
                .then(|| quote!(#variant(#ty)))
        })
        .collect();
    // And a subgraph node's, carrying its child's `Input`, so that an answer given through
    // the parent is no follow-on error; not one that names this module itself (an error of
    // its own, and `Input` would contain itself).
    let this_module = graph.module.item.ident.to_string();
    let child_variants: Vec<TokenStream> = plan
        .subgraphs()
        .into_iter()
        .filter(|(_, path)| {
            path.segments
                .last()
                .is_some_and(|last| last.ident != "self" && last.ident != this_module.as_str())
        })
        .filter_map(|(task, path)| {
            let variant = &task.variant;
            input_seen
                .insert(variant.to_string())
                .then(|| quote!(#variant(#path::Input)))
        })
        .collect();
    if free("Input") {
        generated.extend(quote! {
            #[derive(::core::fmt::Debug, ::core::clone::Clone, #rt::serde::Serialize, #rt::serde::Deserialize)]
            #[serde(crate = #serde_crate)]
            #allow
            pub enum Input { #(#input_variants,)* #(#child_variants,)* }
            #allow
            impl Input {
                pub const NODES: &'static [&'static str] = &[];
                pub fn node(&self) -> &'static str { "" }
            }
        });
    }
    let node_names: Vec<&str> = graph
        .nodes()
        .iter()
        .map(|node| node.name.as_str())
        .collect();
    for (name, item) in [
        ("GRAPH_HASH", quote!(#allow pub const GRAPH_HASH: u64 = 0;)),
        (
            "STATE_SCHEMA",
            quote!(#allow pub const STATE_SCHEMA: u64 = 0;),
        ),
        ("MERMAID", quote!(#allow pub const MERMAID: &str = "";)),
        (
            "NODES",
            quote!(#allow pub const NODES: &[&str] = &[#(#node_names),*];),
        ),
    ] {
        if free(name) {
            generated.extend(item);
        }
    }
    if free("Workflow") && free("__GraphCursor") && free("Input") {
        generated.extend(workflow_stand_in(args, &rt, &allow));
        // A workflow with an error is still a subgraph another workflow may name: only its
        // own error is reported.
        generated.extend(quote! {
            #[doc(hidden)]
            #allow
            pub type __GraphWorkflowModule = Workflow;
        });
    }
    items.push(Item::Verbatim(generated));

    let mut item = module.item.clone();
    item.attrs
        .push(syn::parse_quote!(#[allow(dead_code, unused)]));
    item.content = Some((Default::default(), items));
    let errors = errors.to_compile_error();
    quote!(#item #errors)
}

/// `Workflow` and an implementation that type-checks but is never run, so that code outside
/// the module (`Runner::new(checkout::Workflow, store)`) raises no error of its own.
fn workflow_stand_in(args: &WorkflowArgs, rt: &TokenStream, allow: &TokenStream) -> TokenStream {
    let mut out = quote! {
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #allow
        pub struct Workflow;
    };
    let Some(state) = &args.state else { return out };
    out.extend(quote! {
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq)]
        #[doc(hidden)]
        #allow
        pub enum __GraphCursor { __Fallback }

        #allow
        impl #rt::Sealed for Workflow {}

        #allow
        impl #rt::Workflow for Workflow {
            type State = #state;
            type Input = Input;
            type Exec = Workflow;
            const NAME: &'static str = "";
            const GRAPH_HASH: u64 = 0;
            const NODES: &'static [&'static str] = &[];
            const MERMAID: &'static str = "";
        }

        #allow
        impl #rt::Execute<Workflow> for Workflow {
            type Cursor = __GraphCursor;
            const ENTRY: __GraphCursor = __GraphCursor::__Fallback;
            fn spec(_: __GraphCursor) -> &'static #rt::NodeSpec {
                const SPEC: #rt::NodeSpec = #rt::NodeSpec::new("");
                &SPEC
            }
            fn cursor_of(_: &str) -> ::core::option::Option<__GraphCursor> {
                ::core::option::Option::None
            }
            fn input_node(_: &Input) -> __GraphCursor {
                __GraphCursor::__Fallback
            }
            fn step<'a>(
                _: &'a Workflow,
                _: __GraphCursor,
                _: &'a mut #state,
                _: &'a #rt::NodeCtx,
                _: ::core::option::Option<Input>,
            ) -> impl ::core::future::Future<Output = #rt::Transition<__GraphCursor>> + ::core::marker::Send + 'a {
                async move { #rt::Transition::End }
            }
        }
    });
    out
}
