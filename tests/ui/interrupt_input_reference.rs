use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub note: String,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt)]
    async fn review(order: &mut Order, note: &str) {
        order.note = note.to_owned();
    }
}

fn main() {}
