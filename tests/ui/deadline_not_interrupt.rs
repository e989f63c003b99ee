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

    edge!(START -> remind);
    edge!(remind -> END);

    #[node(wait_ms = 60_000)]
    async fn remind(order: &mut Order) {
        order.approved = None;
    }
}

fn main() {}
