use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
}

async fn pay() {}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node]
    async fn charge(order: &mut Order) {
        let counter = std::rc::Rc::new(1);
        pay().await;
        order.total = *counter;
    }
}

fn main() {}
