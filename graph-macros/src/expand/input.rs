//! `Input`: one variant per interrupt node, holding its input; and `input_node`, the node an
//! input is meant for.

use proc_macro2::TokenStream;
use quote::quote;

use super::Gen;

/// The `Input` enum.
pub(super) fn input_enum(g: &Gen) -> TokenStream {
    let (rt, allow) = (&g.rt, &g.allow);
    let module = g.plan.graph.module;
    let interrupts = g.plan.interrupts();
    let serde_crate = super::paths::serde_crate(&g.args.krate);
    let input_variants = interrupts.iter().map(|(task, ty)| {
        let variant = &task.variant;
        let doc = format!("The input of interrupt node `{}`.", task.node.name);
        quote!(#[doc = #doc] #variant(#ty))
    });
    let input_doc = if interrupts.is_empty() {
        format!(
            "The inputs of workflow `{}`: it has no interrupt node, so this enum has no values.",
            module.name
        )
    } else {
        let names: Vec<String> = interrupts
            .iter()
            .map(|(task, _)| format!("`{}`", task.node.name))
            .collect();
        format!(
            "The inputs of workflow `{}`'s interrupt nodes ({}): pass one to `Runner::resume_with` when the run waits there.",
            module.name,
            names.join(", ")
        )
    };
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
        }
    }
}

/// `Execute::input_node`.
pub(super) fn input_node_fn(g: &Gen) -> TokenStream {
    let arms = g.plan.interrupts().into_iter().map(|(task, _)| {
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
