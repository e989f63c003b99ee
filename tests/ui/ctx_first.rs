use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub key: String,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node]
    async fn charge(ctx: &NodeCtx, order: &mut Order) {
        order.key = ctx.idempotency_key();
    }
}

fn main() {}
