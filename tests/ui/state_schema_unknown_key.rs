use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, StateSchema)]
pub struct Order {
    #[state_schema(skip)]
    pub id: u64,
}

fn main() {}
