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

    // Without `+ Send + Sync` the runner could not move the error between threads.
    #[node]
    async fn charge(order: &mut Order) -> Result<(), Box<dyn std::error::Error>> {
        if order.total == 0 {
            Err("nothing to charge".into())
        } else {
            Ok(())
        }
    }
}

fn main() {}
