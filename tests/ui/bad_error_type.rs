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
    edge!(charge -> END);

    // `u32` does not convert into `Box<dyn std::error::Error + Send + Sync>`.
    #[node]
    async fn charge(order: &mut Order) -> Result<(), u32> {
        if order.total == 0 {
            Err(402)
        } else {
            Ok(())
        }
    }
}

fn main() {}
