use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, StateSchema)]
pub struct Address {
    pub city: String,
}

#[derive(Serialize, Deserialize, StateSchema)]
pub struct Customer {
    pub name: String,
    #[serde(flatten)]
    pub address: Address,
}

fn main() {}
