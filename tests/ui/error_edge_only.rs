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

// A node whose only outgoing edge is an error edge: no way out when it succeeds.
#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> refund on error);
    edge!(refund -> ship);
    edge!(ship -> END);

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
