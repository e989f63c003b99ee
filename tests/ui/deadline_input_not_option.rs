use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt, wait_ms = 60_000)]
    async fn review(order: &mut Order, decision: Decision) {
        order.approved = Some(matches!(decision, Decision::Approve));
    }
}

fn main() {}
