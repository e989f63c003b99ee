use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub id: u64,
    #[serde(skip_serializing)]
    pub cache: Vec<u64>,
}

fn main() {}
