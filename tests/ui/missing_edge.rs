use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub shipped: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> ship);

    #[node]
    async fn charge(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn ship(order: &mut Order) {
        order.shipped = true;
    }
}

fn main() {}
