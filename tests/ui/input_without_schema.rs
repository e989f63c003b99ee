use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

// No `StateSchema` on the interrupt input: its fingerprint is part of the graph hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Approval {
    Approve,
    Reject,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Approval) {
        order.approved = matches!(decision, Approval::Approve);
    }
}

fn main() {}
