use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> approve);
    edge!(approve -> END);

    #[node]
    async fn validate(order: &mut Order) {}

    // `validate` is still a node: its checkpoints resume there, not here.
    #[node(renamed_from = "validate")]
    async fn approve(order: &mut Order) {
        order.approved = true;
    }
}

fn main() {}
