use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

const OLD_GRAPH: u64 = 0x2204_5b7d_596d_b6de;

// The macro needs the value itself: a constant's name cannot be read.
#[workflow(state = Order, accept_graphs = [OLD_GRAPH])]
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
