use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub refunded: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);
    edge!(refund -> END);

    #[node]
    async fn charge(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn refund(order: &mut Order) {
        order.refunded = true;
    }
}

fn main() {}
