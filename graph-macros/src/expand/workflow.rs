//! The cursor enum, the `GRAPH_HASH` / `MERMAID` / `NODES` constants, the `Workflow` unit
//! struct, and its `Workflow` and `Execute` impls.

use proc_macro2::TokenStream;
use quote::quote;

use super::schema::SchemaItems;
use super::{Gen, frontier, input, migrate, step};
use crate::mermaid::mermaid;
use crate::parse::CheckpointOverride;

/// Every item of this part, in output order.
pub(super) fn items(g: &Gen, schemas: &SchemaItems) -> TokenStream {
    let (rt, allow, state) = (&g.rt, &g.allow, g.state);
    let module = g.plan.graph.module;
    let tasks = &g.plan.tasks;

    let cursor_variants = tasks.iter().map(|task| &task.variant);
    let names: Vec<&str> = tasks.iter().map(|task| task.node.name.as_str()).collect();

    let graph_hash = &schemas.graph_hash;
    let input_schema = &schemas.input_schema;
    let accepted_graphs = &schemas.accepted_graphs;
    let schema_items = &schemas.items;
    let hash_doc = &schemas.graph_hash_doc;
    let mermaid = mermaid(g.plan.graph);
    let mermaid_doc = format!(
        "A Mermaid flowchart of workflow `{}` (interrupt nodes are hexagons, error edges dotted):\n\n```text\n{}```",
        module.name, mermaid
    );
    let nodes_doc = format!(
        "The nodes of workflow `{}`, in declaration order.",
        module.name
    );
    let workflow_doc = format!(
        "Workflow `{}`: implements `graph_runtime::Workflow`; pass it to `Runner::new`.",
        module.name
    );
    let name = &module.name;
    let execute = execute_impl(g, schemas);
    let state_is_sync = frontier::state_is_sync(g);

    quote! {
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

        #schema_items
        #state_is_sync

        #[doc = #hash_doc]
        #allow
        pub const GRAPH_HASH: u64 = #graph_hash;

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

        /// What `#[node(subgraph = this_module)]` in another workflow names: this module's
        /// `Workflow`.
        #[doc(hidden)]
        #allow
        pub type __GraphWorkflowModule = Workflow;

        #allow
        impl #rt::Sealed for Workflow {}

        #allow
        impl #rt::WorkflowInput for Input {
            type Workflow = Workflow;
        }

        #allow
        impl #rt::Workflow for Workflow {
            type State = #state;
            type Input = Input;
            type Exec = Workflow;

            const NAME: &'static str = #name;
            const GRAPH_HASH: u64 = GRAPH_HASH;
            const NODES: &'static [&'static str] = NODES;
            const MERMAID: &'static str = MERMAID;
            const STATE_SCHEMA: u64 = STATE_SCHEMA;
            const INPUT_SCHEMA: u64 = #input_schema;
            const INPUT_NODES: &'static [&'static str] = Input::NODES;
            const MIGRATES_FROM: &'static [u64] = &__GRAPH_MIGRATES_FROM;
            const ACCEPTED_GRAPHS: &'static [u64] = &[#(#accepted_graphs),*];
        }

        #execute
    }
}

/// `impl Execute<Workflow> for Workflow`.
fn execute_impl(g: &Gen, schemas: &SchemaItems) -> TokenStream {
    let (rt, allow) = (&g.rt, &g.allow);
    let migrate_state = &schemas.migrate_state;
    let entry = g.plan.entry().map(|task| &task.variant);
    let spec = spec_fn(g);
    let cursor_of = cursor_of_fn(g);
    let input_node = input::input_node_fn(g);
    let child_answer = input::child_answer_fn(g);
    let child_workflows = input::child_workflows_fn(g);
    let error_route = error_route_fn(g);
    let runs_freely = runs_freely_fn(g);
    let step = step::step_fn(g);
    let run = step::run_fn(g);
    let frontier = frontier::execute_items(g);
    let records = migrate::execute_items(g, &schemas.canonical);
    let subgraphs = if g
        .plan
        .graph
        .nodes()
        .iter()
        .any(|n| n.args.subgraph.is_some())
    {
        quote!(
            const SUBGRAPHS: bool = true;
        )
    } else {
        TokenStream::new()
    };
    quote! {
        #allow
        impl #rt::Execute<Workflow> for Workflow {
            type Cursor = __GraphCursor;

            const ENTRY: __GraphCursor = __GraphCursor::#entry;
            #subgraphs

            #migrate_state
            #records
            #spec
            #cursor_of
            #input_node
            #child_answer
            #child_workflows
            #error_route
            #runs_freely
            #step
            #run
            #frontier
        }
    }
}

/// `Execute::spec`: what each node declares.
fn spec_fn(g: &Gen) -> TokenStream {
    let rt = &g.rt;
    let arms = g.plan.tasks.iter().map(|task| {
        let args = &task.node.args;
        let name = &task.node.name;
        let variant = &task.variant;
        let mut spec = quote!(#rt::NodeSpec::new(#name));
        if args.interrupt {
            spec.extend(quote!(.interrupt()));
        }
        if let Some(retry) = args.retry {
            spec.extend(quote!(.retry(#retry)));
        }
        if let Some(timeout_ms) = args.timeout_ms {
            spec.extend(quote!(.timeout_ms(#timeout_ms)));
        }
        if let Some((wait_ms, _)) = args.wait_ms {
            spec.extend(quote!(.wait_ms(#wait_ms)));
        }
        if let Some(backoff_ms) = args.backoff_ms {
            spec.extend(quote!(.backoff_ms(#backoff_ms)));
        }
        if let Some(backoff_max_ms) = args.backoff_max_ms {
            spec.extend(quote!(.backoff_max_ms(#backoff_max_ms)));
        }
        if let Some(jitter) = args.jitter {
            spec.extend(quote!(.jitter(#jitter)));
        }
        match args.checkpoint {
            Some(CheckpointOverride::Always) => {
                spec.extend(quote!(.checkpoint(#rt::NodeCheckpoint::Always)));
            }
            Some(CheckpointOverride::Never) => {
                spec.extend(quote!(.checkpoint(#rt::NodeCheckpoint::Never)));
            }
            None => {}
        }
        if !args.renamed_from.is_empty() {
            let old: Vec<String> = args.renamed_from.iter().map(syn::LitStr::value).collect();
            spec.extend(quote!(.renamed_from(&[#(#old),*])));
        }
        quote! {
            __GraphCursor::#variant => {
                const SPEC: #rt::NodeSpec = #spec;
                &SPEC
            }
        }
    });
    quote! {
        fn spec(cursor: __GraphCursor) -> &'static #rt::NodeSpec {
            match cursor {
                #(#arms)*
            }
        }
    }
}

/// `Execute::cursor_of`: a checkpoint saved at a node's old name (`renamed_from`) resumes at
/// the node.
fn cursor_of_fn(g: &Gen) -> TokenStream {
    let arms = g.plan.tasks.iter().map(|task| {
        let variant = &task.variant;
        let old: Vec<String> = task
            .node
            .args
            .renamed_from
            .iter()
            .map(syn::LitStr::value)
            .collect();
        let name = &task.node.name;
        quote!(#name #(| #old)* => ::core::option::Option::Some(__GraphCursor::#variant),)
    });
    quote! {
        fn cursor_of(name: &str) -> ::core::option::Option<__GraphCursor> {
            match name {
                #(#arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// `Execute::error_route`, only when there are error edges, so other graphs keep the trait's
/// default.
fn error_route_fn(g: &Gen) -> TokenStream {
    let arms: Vec<TokenStream> = g
        .plan
        .tasks
        .iter()
        .enumerate()
        .filter_map(|(i, task)| {
            let target = g
                .plan
                .graph
                .error_target(i)
                .and_then(|j| g.plan.tasks.get(j))?;
            let (from, to) = (&task.variant, &target.variant);
            Some(quote!(__GraphCursor::#from => ::core::option::Option::Some(__GraphCursor::#to),))
        })
        .collect();
    if arms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        fn error_route(cursor: __GraphCursor) -> ::core::option::Option<__GraphCursor> {
            match cursor {
                #(#arms)*
                _ => ::core::option::Option::None,
            }
        }
    }
}

/// `Execute::runs_freely`, answered from what the macro knows, so the loop in `run` tests a
/// constant per node instead of reading specs.
fn runs_freely_fn(g: &Gen) -> TokenStream {
    let arms = g.plan.tasks.iter().map(|task| {
        let variant = &task.variant;
        let free = task.runs_freely;
        quote!(__GraphCursor::#variant => #free,)
    });
    quote! {
        #[inline(always)]
        fn runs_freely(cursor: __GraphCursor) -> bool {
            match cursor {
                #(#arms)*
            }
        }
    }
}
