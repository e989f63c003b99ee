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
    edge!(validate -> chrage | END);
    edge!(charge -> END);

    #[node]
    async fn validate(order: &mut Order) -> validate::Next {
        if order.total > 0 {
            validate::Next::Charge
        } else {
            validate::Next::End
        }
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }
}

fn main() {}
