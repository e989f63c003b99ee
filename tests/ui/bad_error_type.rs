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

    // `String` is not a `std::error::Error`.
    #[node]
    async fn charge(order: &mut Order) -> Result<(), String> {
        if order.total == 0 {
            Err("nothing to charge".to_owned())
        } else {
            Ok(())
        }
    }
}

fn main() {}
