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

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Option<Decision>) {
        order.approved = decision.map(|d| matches!(d, Decision::Approve));
    }
}

fn main() {}
