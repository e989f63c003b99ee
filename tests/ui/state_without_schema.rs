use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

// No `StateSchema`: a checkpoint could not say which shape of `Order` it holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Order {
    pub approved: bool,
}

#[workflow(state = Order)]
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
