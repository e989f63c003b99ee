//! Generated code is quiet under the strictest lint settings a user may have.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications
)]
#![deny(
    rust_2018_idioms,
    unused_results,
    variant_size_differences,
    trivial_casts
)]

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The state.
#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    /// Cents.
    pub total: u64,
}

/// A decision.
#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Approval(pub bool);

/// The workflow.
#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> charge | END);
    edge!(charge -> END);

    #[node(interrupt)]
    async fn review(_order: &mut Order, decision: Approval) -> review::Next {
        if decision.0 {
            review::Next::Charge
        } else {
            review::Next::End
        }
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }
}

fn main() {
    let _ = checkout::Workflow;
}
