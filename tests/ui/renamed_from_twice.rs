use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> check);
    edge!(check -> approve);
    edge!(approve -> END);

    #[node(renamed_from = "review")]
    async fn check(order: &mut Order) {}

    // A checkpoint saved at `review` can resume at one node only.
    #[node(renamed_from = "review")]
    async fn approve(order: &mut Order) {
        order.approved = true;
    }
}

fn main() {}
