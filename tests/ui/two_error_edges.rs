use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct PaymentError;

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for PaymentError {}

// Two error edges from one node: a failure goes to one place.
#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> ship);
    edge!(charge -> refund on error);
    edge!(charge -> ship on error);
    edge!(ship -> END);
    edge!(refund -> END);

    #[node(retry = 2)]
    async fn charge(order: &mut Order) -> Result<(), PaymentError> {
        order.total = 0;
        Err(PaymentError)
    }

    #[node]
    async fn ship(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) {
        order.note = ctx.failure().map(|f| f.error().to_owned());
    }
}

fn main() {}
