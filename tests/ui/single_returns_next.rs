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
    edge!(validate -> charge);
    edge!(charge -> END);

    // `validate` has one successor: it returns `()`, there is no `validate::Next` to pick.
    #[node]
    async fn validate(order: &mut Order) -> Result<validate::Next, std::io::Error> {
        let _ = order;
        todo!()
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }
}

fn main() {}
