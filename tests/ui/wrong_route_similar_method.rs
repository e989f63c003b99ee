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
    edge!(validate -> review | charge);
    edge!(review -> charge);
    edge!(charge -> END);

    #[node]
    async fn validate(order: &mut Order) -> validate::Next {
        if order.total > 100 {
            validate::Next::Review
        } else {
            // `Done` is not a successor of `validate` (rustc used to offer `ne`, a method of
            // the `PartialEq` that `Next` derives, as a similar name).
            validate::Next::Done
        }
    }

    #[node]
    async fn review(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }
}

fn main() {}
