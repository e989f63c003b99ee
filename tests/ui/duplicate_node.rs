use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub shipped: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> ship);
    edge!(ship -> END);

    #[node]
    async fn ship(order: &mut Order) {
        order.shipped = true;
    }

    #[node]
    async fn ship(order: &mut Order) {
        order.shipped = false;
    }
}

fn main() {}
