use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

#[derive(Debug, Clone, StateSchema)]
pub struct Approval {
    pub approved: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Approval) {
        order.approved = decision.approved;
    }
}

fn main() {}
