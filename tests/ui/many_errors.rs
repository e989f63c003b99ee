use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
}

// Four graph mistakes, all reported in one build.
#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> chrage | END); // unknown node, did you mean `charge`?
    edge!(refund -> END); // `refund` is unreachable from START

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
        // no outgoing edge
        order.total = 0;
    }

    #[node]
    async fn refund(order: &mut Order) {
        order.total = 0;
    }

    #[node]
    async fn audit(order: &mut Order) {
        // no edge at all
        let _ = order;
    }
}

fn main() {}
