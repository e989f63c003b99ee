use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: bool,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt)]
    async fn review(order: &mut Order) {
        order.approved = true;
    }
}

fn main() {}
