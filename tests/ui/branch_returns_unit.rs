use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> charge | END);
    edge!(charge -> END);

    // A branch must say where to go: it returns `validate::Next`.
    #[node]
    async fn validate(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }
}

fn main() {}
