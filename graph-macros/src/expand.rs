//! Codegen: the module's own items, then per-node `Next` enums, the `Input` enum, the cursor
//! enum, the `GRAPH_HASH` / `MERMAID` / `NODES` constants and the `Workflow` implementation.
//!
//! Every runtime name is reached through `<crate>::__private` (`::graph_runtime` unless
//! `crate = …` says otherwise) or `::core` / `::std`, so the output never depends on what the
//! user imported; generated locals use `Span::mixed_site()`; the output order is the source
//! order, so expansion is deterministic.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{Ident, Item, Type};

use crate::ctxt::Ctxt;
use crate::model::{END, Endpoint, Graph, START, variant_ident};
use crate::parse::{self, NodeFn, ParamRole, WorkflowArgs, output_span, span_range, tokens_to_string};
use crate::{check, fallback, hash};

/// `#[workflow(args)] item`.
pub(crate) fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let input = parse::workflow(&cx, args, item.clone());
    let Some(module) = &input.module else {
        let errors = cx.check().err();
        return fallback::not_a_module(item, errors);
    };
    let graph = Graph::build(module);
    check::check(&cx, &graph);
    match (cx.check(), &input.args.state) {
        (Ok(()), Some(state)) => expand(&input.args, state, &graph),
        (Err(errors), _) => fallback::module(&input.args, &graph, &errors),
        (Ok(()), None) => {
            // Not reachable (a missing `state` is an error), but never panic in a macro.
            let errors = syn::Error::new(Span::call_site(), "missing `state = …` in `#[workflow]`");
            fallback::module(&input.args, &graph, &errors)
        }
    }
}

/// `#[node]` seen by the compiler: it was not removed by an enclosing `#[workflow]`, so it is
/// misplaced. The function is kept, so the only error is this one.
pub(crate) fn node_outside_workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    let _ = args;
    let message = "`#[node]` only works on an `async fn` directly inside a `#[workflow(state = …)]` module; move the function into that module, or remove `#[node]`";
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#error #item)
}

/// The lints generated items must not trip in a user's crate (`#![deny(warnings)]`, clippy
/// pedantic, `missing_docs`, …).
pub(crate) fn allow_lints() -> TokenStream {
    quote! {
        #[allow(
            dead_code,
            unused,
            non_camel_case_types,
            non_snake_case,
            non_upper_case_globals,
            unreachable_patterns,
            unreachable_pub,
            unused_qualifications,
            unused_results,
            variant_size_differences,
            missing_docs,
            missing_debug_implementations,
            clippy::all,
            clippy::pedantic,
            clippy::nursery
        )]
    }
}

/// The path generated code uses to reach `__private`.
pub(crate) fn private_path(args: &WorkflowArgs) -> TokenStream {
    let krate = &args.krate;
    quote!(#krate::__private)
}

/// A node with the facts codegen needs.
struct NodeCode<'g> {
    node: &'g NodeFn,
    variant: Ident,
    /// The successors, in the order the node's `edge!` lists them.
    targets: Vec<Endpoint>,
    /// The target names as written in `edge!`, for spans and docs.
    target_idents: Vec<Ident>,
}

impl NodeCode<'_> {
    fn branches(&self) -> bool {
        self.targets.len() > 1
    }
}

/// The whole successful expansion.
fn expand(args: &WorkflowArgs, state: &Type, graph: &Graph) -> TokenStream {
    let rt = private_path(args);
    let allow = allow_lints();
    let module = graph.module;
    let nodes: Vec<NodeCode> = graph
        .nodes()
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let successors = graph.successors(index);
            NodeCode {
                node,
                variant: variant_ident(&node.name, Span::call_site()),
                targets: successors.iter().map(|edge| edge.to).collect(),
                target_idents: successors.iter().map(|edge| edge.to_ident.clone()).collect(),
            }
        })
        .collect();
    let cursor_variant = |endpoint: Endpoint| -> Option<&Ident> {
        match endpoint {
            Endpoint::Node(i) => nodes.get(i).map(|n| &n.variant),
            _ => None,
        }
    };

    let next_modules = nodes.iter().map(|n| next_module(&allow, n));
    let route_impls = nodes.iter().filter(|n| n.branches()).map(|n| {
        let ident = module_ident(n.node);
        quote! {
            #allow
            impl #rt::Route for #ident::Next {}
        }
    });

    // Input: one variant per interrupt node.
    let interrupts: Vec<(&NodeCode, &Type)> =
        nodes.iter().filter_map(|n| n.node.input().filter(|_| n.node.args.interrupt).map(|ty| (n, ty))).collect();
    let serde_crate = format!("{}::__private::serde", tokens_to_string(&args.krate));
    let input_variants = interrupts.iter().map(|(n, ty)| {
        let variant = &n.variant;
        let doc = format!("The input of interrupt node `{}`.", n.node.name);
        quote!(#[doc = #doc] #variant(#ty))
    });
    let input_doc = if interrupts.is_empty() {
        format!(
            "The inputs of workflow `{}`: it has no interrupt node, so this enum has no values.",
            module.name
        )
    } else {
        let names: Vec<String> = interrupts.iter().map(|(n, _)| format!("`{}`", n.node.name)).collect();
        format!(
            "The inputs of workflow `{}`'s interrupt nodes ({}): pass one to `Runner::resume_with` when the run waits there.",
            module.name,
            names.join(", ")
        )
    };
    let input_node_arms = interrupts.iter().map(|(n, _)| {
        let variant = &n.variant;
        quote!(Input::#variant(..) => __GraphCursor::#variant,)
    });

    // Cursor.
    let cursor_variants = nodes.iter().map(|n| &n.variant);
    let names: Vec<&str> = nodes.iter().map(|n| n.node.name.as_str()).collect();
    let cursor_of_arms = nodes.iter().map(|n| {
        let name = &n.node.name;
        let variant = &n.variant;
        quote!(#name => ::core::option::Option::Some(__GraphCursor::#variant),)
    });
    let spec_arms = nodes.iter().map(|n| {
        let name = &n.node.name;
        let variant = &n.variant;
        let mut spec = quote!(#rt::NodeSpec::new(#name));
        if n.node.args.interrupt {
            spec.extend(quote!(.interrupt()));
        }
        if let Some(retry) = n.node.args.retry {
            spec.extend(quote!(.retry(#retry)));
        }
        if let Some(timeout_ms) = n.node.args.timeout_ms {
            spec.extend(quote!(.timeout_ms(#timeout_ms)));
        }
        quote! {
            __GraphCursor::#variant => {
                const SPEC: #rt::NodeSpec = #spec;
                &SPEC
            }
        }
    });
    let entry = graph.entry().and_then(|i| nodes.get(i)).map(|n| &n.variant);

    // Constants.
    let (graph_hash, canonical) = hash::graph_hash(graph, state);
    let hash_literal = hex_literal(graph_hash);
    let hash_doc = format!(
        "The stable hash of workflow `{}`'s structure, stored in every checkpoint.\n\n\
         It changes when a node is renamed, added or removed, an edge changes, an interrupt \
         input type or the state type changes; not when declarations are reordered or node \
         bodies change. It is the FNV-1a 64 hash of this canonical text:\n\n```text\n{}```",
        module.name, canonical
    );
    let mermaid = mermaid(graph);
    let mermaid_doc = format!(
        "A Mermaid flowchart of workflow `{}` (interrupt nodes are hexagons):\n\n```text\n{}```",
        module.name, mermaid
    );
    let nodes_doc = format!("The nodes of workflow `{}`, in declaration order.", module.name);
    let workflow_doc = format!(
        "Workflow `{}`: implements `graph_runtime::Workflow`; pass it to `Runner::new`.",
        module.name
    );
    let name = &module.name;

    // Step.
    let state_ident = Ident::new("state", Span::mixed_site());
    let ctx_ident = Ident::new("ctx", Span::mixed_site());
    let input_ident = Ident::new("input", Span::mixed_site());
    let cursor_ident = Ident::new("cursor", Span::mixed_site());
    let return_traits = nodes.iter().map(|n| return_trait(&rt, n));
    let step_arms = nodes.iter().map(|n| step_arm(&rt, n, &cursor_variant, &input_ident));

    let generated = quote! {
        #(#next_modules)*
        #(#route_impls)*

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
        }

        /// The position of a run in this graph: one variant per node.
        #[doc(hidden)]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::hash::Hash
        )]
        #allow
        pub enum __GraphCursor {
            #(#cursor_variants,)*
        }

        #[doc = #hash_doc]
        #allow
        pub const GRAPH_HASH: u64 = #hash_literal;

        #[doc = #mermaid_doc]
        #allow
        pub const MERMAID: &str = #mermaid;

        #[doc = #nodes_doc]
        #allow
        pub const NODES: &[&str] = &[#(#names),*];

        #[doc = #workflow_doc]
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::default::Default
        )]
        #allow
        pub struct Workflow;

        #allow
        impl #rt::Workflow for Workflow {
            type State = #state;
            type Input = Input;
            type Cursor = __GraphCursor;

            const NAME: &'static str = #name;
            const GRAPH_HASH: u64 = GRAPH_HASH;
            const NODES: &'static [&'static str] = NODES;
            const MERMAID: &'static str = MERMAID;
            const ENTRY: __GraphCursor = __GraphCursor::#entry;

            fn spec(cursor: __GraphCursor) -> &'static #rt::NodeSpec {
                match cursor {
                    #(#spec_arms)*
                }
            }

            fn cursor_of(name: &str) -> ::core::option::Option<__GraphCursor> {
                match name {
                    #(#cursor_of_arms)*
                    _ => ::core::option::Option::None,
                }
            }

            fn input_node(input: &Input) -> __GraphCursor {
                match *input {
                    #(#input_node_arms)*
                }
            }

            fn step<'a>(
                &'a self,
                #cursor_ident: __GraphCursor,
                #state_ident: &'a mut #state,
                #ctx_ident: &'a #rt::NodeCtx,
                #input_ident: ::core::option::Option<Input>,
            ) -> impl ::core::future::Future<Output = #rt::Transition<__GraphCursor>> + ::core::marker::Send + 'a {
                #(#return_traits)*
                async move {
                    match #cursor_ident {
                        #(#step_arms)*
                    }
                }
            }
        }
    };

    let mut item = module.item.clone();
    let mut items: Vec<Item> = module.items.clone();
    items.push(Item::Verbatim(generated));
    item.content = Some((Default::default(), items));
    item.into_token_stream()
}

/// The node's name as a module name (raw identifiers stay raw), at the call site.
pub(crate) fn module_ident(node: &NodeFn) -> Ident {
    let mut ident = node.ident.clone();
    ident.set_span(Span::call_site());
    ident
}

/// `mod <node> { enum Next }`: the routes of a branching node. A node with one successor gets a
/// hidden, empty `Next`, so that returning `node::Next` from it gets our explanation
/// ("returns `()`") rather than a failed path resolution.
fn next_module(allow: &TokenStream, n: &NodeCode) -> TokenStream {
    let ident = module_ident(n.node);
    let name = &n.node.name;
    if !n.branches() {
        let target = n.target_idents.first().map_or_else(String::new, ToString::to_string);
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
    let enum_doc = format!("Where the run goes after node `{name}`: one variant per target of `{edge}`.");
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
            pub enum Next {
                #(#variants,)*
            }
        }
    }
}

/// The name of the per-node trait that turns the node's return value into its route.
fn return_trait_ident(n: &NodeCode) -> Ident {
    format_ident!("__GraphReturn{}", n.variant, span = Span::mixed_site())
}

/// A trait, local to `step`, implemented exactly for the return types node `n` may have
/// (`()` / `Result<(), E>`, or `n::Next` / `Result<n::Next, E>`). Calling it on the node's
/// output is the route conversion *and* the check: a wrong return type fails here, once, with
/// a message that names the node, its successors and the fix.
fn return_trait(rt: &TokenStream, n: &NodeCode) -> TokenStream {
    let trait_ident = return_trait_ident(n);
    let name = &n.node.name;
    let targets: Vec<String> = n.target_idents.iter().map(|t| format!("`{t}`")).collect();
    let error_bound = "`E` is the node's error type: `std::error::Error + Send + Sync + 'static`";
    let (route, message, label, note) = if n.branches() {
        let ident = module_ident(n.node);
        let next = format!("{}::Next", n.node.ident);
        (
            quote!(#ident::Next),
            format!(
                "node `{name}` branches to {}, so it must return `{next}` or `Result<{next}, E>`, not `{{Self}}`",
                targets.join(" or ")
            ),
            format!("expected `{next}` or `Result<{next}, E>`"),
            format!(
                "`{next}` is generated from `edge!({name} -> {})`: return the variant of the next node; {error_bound}",
                n.target_idents.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")
            ),
        )
    } else {
        let next = format!("{}::Next", n.node.ident);
        (
            quote!(()),
            format!(
                "node `{name}` has one successor ({}), so it must return `()` or `Result<(), E>`, not `{{Self}}`",
                targets.join("")
            ),
            "expected `()` or `Result<(), E>`".to_owned(),
            format!(
                "only a node with several targets in its `edge!` returns a `{next}`; {error_bound}"
            ),
        )
    };
    quote! {
        #[diagnostic::on_unimplemented(message = #message, label = #label, note = #note)]
        trait #trait_ident: ::core::marker::Sized {
            fn __graph_route(self) -> ::core::result::Result<#route, #rt::NodeError>;
        }
        impl #trait_ident for #route {
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, #rt::NodeError> {
                ::core::result::Result::Ok(self)
            }
        }
        impl<E> #trait_ident for ::core::result::Result<#route, E>
        where
            E: ::std::error::Error + ::core::marker::Send + ::core::marker::Sync + 'static,
        {
            #[inline(always)]
            fn __graph_route(self) -> ::core::result::Result<#route, #rt::NodeError> {
                #rt::NodeReturn::into_route(self)
            }
        }
    }
}

/// The `match` arm of `step` that runs node `n`.
fn step_arm<'c>(
    rt: &TokenStream,
    n: &NodeCode,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
    input: &Ident,
) -> TokenStream {
    let variant = &n.variant;
    let func = &n.node.ident;
    let out = Ident::new("__graph_out", Span::mixed_site());
    let input_value = Ident::new("__graph_input", Span::mixed_site());
    let error = Ident::new("__graph_error", Span::mixed_site());

    // Arguments in declared order; each spanned over the user's parameter type, so a
    // mismatch (`&mut Other` instead of the state) is reported on the user's tokens.
    let call_args = n.node.params.iter().map(|param| {
        let (first, last) = span_range(&param.ty);
        let first = Span::mixed_site().located_at(first);
        let last = Span::mixed_site().located_at(last);
        match param.role {
            ParamRole::State { mutable: true } => {
                let local = Ident::new("state", last);
                quote_spanned!(first=> &mut *#local)
            }
            ParamRole::State { mutable: false } => {
                let local = Ident::new("state", last);
                quote_spanned!(first=> &*#local)
            }
            ParamRole::Ctx => {
                let local = Ident::new("ctx", last);
                quote!(#local)
            }
            ParamRole::Input => {
                let mut local = input_value.clone();
                local.set_span(last);
                quote!(#local)
            }
        }
    });
    let trait_ident = return_trait_ident(n);
    let (ret_first, ret_last) = output_span(n.node);
    let ret_first = Span::mixed_site().located_at(ret_first);
    let mut out_at_ret = out.clone();
    out_at_ret.set_span(Span::mixed_site().located_at(ret_last));
    let convert = quote_spanned!(ret_first=> #trait_ident::__graph_route(#out_at_ret));

    let route_arms: Vec<TokenStream> = if n.branches() {
        let module = module_ident(n.node);
        n.targets
            .iter()
            .zip(&n.target_idents)
            .map(|(target, ident)| {
                let route = variant_ident(&crate::model::ident_name(ident), Span::call_site());
                let transition = transition(rt, *target, cursor_variant);
                quote!(::core::result::Result::Ok(#module::Next::#route) => #transition,)
            })
            .collect()
    } else {
        let transition = n.targets.first().map(|t| transition(rt, *t, cursor_variant));
        vec![quote!(::core::result::Result::Ok(()) => #transition,)]
    };
    let run = quote! {
        let #out = #func(#(#call_args),*).await;
        match #convert {
            #(#route_arms)*
            ::core::result::Result::Err(#error) => #rt::Transition::Failed(#error),
        }
    };
    if n.node.args.interrupt {
        quote! {
            __GraphCursor::#variant => match #input {
                ::core::option::Option::Some(Input::#variant(#input_value)) => { #run }
                _ => #rt::Transition::MissingInput,
            },
        }
    } else {
        quote! {
            __GraphCursor::#variant => { #run }
        }
    }
}

fn transition<'c>(
    rt: &TokenStream,
    target: Endpoint,
    cursor_variant: &dyn Fn(Endpoint) -> Option<&'c Ident>,
) -> TokenStream {
    match (target, cursor_variant(target)) {
        (Endpoint::Node(_), Some(variant)) => quote!(#rt::Transition::Next(__GraphCursor::#variant)),
        _ => quote!(#rt::Transition::End),
    }
}

/// `0x1234_5678_9abc_def0`.
fn hex_literal(value: u64) -> TokenStream {
    let text = format!(
        "0x{:04x}_{:04x}_{:04x}_{:04x}",
        value >> 48,
        (value >> 32) & 0xffff,
        (value >> 16) & 0xffff,
        value & 0xffff
    );
    match syn::parse_str::<syn::LitInt>(&text) {
        Ok(lit) => lit.into_token_stream(),
        Err(_) => proc_macro2::Literal::u64_unsuffixed(value).into_token_stream(),
    }
}

/// The Mermaid flowchart: `START`/`END` as stadiums, interrupt nodes as hexagons, then every
/// edge in declaration order. Deterministic: only source order is used.
pub(crate) fn mermaid(graph: &Graph) -> String {
    let mut text = String::from("flowchart TD\n");
    text.push_str(&format!("    {START}([{START}])\n"));
    for node in graph.nodes() {
        let id = mermaid_id(&node.name);
        if node.args.interrupt {
            text.push_str(&format!("    {id}{{{{{}}}}}\n", node.name));
        } else {
            text.push_str(&format!("    {id}[{}]\n", node.name));
        }
    }
    text.push_str(&format!("    {END}([{END}])\n"));
    for edge in &graph.edges {
        let end = |endpoint: Endpoint, ident: &Ident| match endpoint {
            Endpoint::Start => START.to_owned(),
            Endpoint::End => END.to_owned(),
            _ => mermaid_id(&crate::model::ident_name(ident)),
        };
        text.push_str(&format!("    {} --> {}\n", end(edge.from, &edge.from_ident), end(edge.to, &edge.to_ident)));
    }
    text
}

/// A Mermaid node id: the node's name, unless Mermaid reads that word as a keyword.
fn mermaid_id(name: &str) -> String {
    const KEYWORDS: [&str; 12] = [
        "end", "graph", "flowchart", "subgraph", "style", "class", "classDef", "click", "linkStyle", "direction",
        "default", "call",
    ];
    if KEYWORDS.contains(&name) { format!("__{name}") } else { name.to_owned() }
}
