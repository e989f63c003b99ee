use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> approve);
    edge!(approve -> END);

    #[node(checkpoint = sometimes)]
    async fn approve(order: &mut Order) {
        order.approved = true;
    }
}

fn main() {}
