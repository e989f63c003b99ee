use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> ship);
    edge!(ship -> END);
    edge!(charge -> ship);

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }

    #[node]
    async fn ship(order: &mut Order) {
        let _ = order;
    }
}

fn main() {}
