use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
}

// Two releases' states with the same serde data model: a checkpoint with their fingerprint
// cannot say which of them it holds.
#[derive(Debug, Serialize, Deserialize, StateSchema)]
pub struct OrderV1 {
    pub total_cents: u64,
}

#[derive(Debug, Serialize, Deserialize, StateSchema)]
pub struct OrderV2 {
    pub total_cents: u64,
}

impl From<OrderV1> for Order {
    fn from(old: OrderV1) -> Order {
        Order { total_cents: old.total_cents, approved: false }
    }
}

impl From<OrderV2> for Order {
    fn from(old: OrderV2) -> Order {
        Order { total_cents: old.total_cents, approved: true }
    }
}

#[workflow(state = Order, migrate_from = [OrderV1, OrderV2])]
mod checkout {
    use super::*;

    edge!(START -> approve);
    edge!(approve -> END);

    #[node]
    async fn approve(order: &mut Order) {
        order.approved = true;
    }
}

fn main() {}
