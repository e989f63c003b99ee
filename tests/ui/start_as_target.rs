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
    edge!(charge -> START | END);

    #[node]
    async fn charge(order: &mut Order) -> charge::Next {
        order.total = 0;
        charge::Next::End
    }
}

fn main() {}
