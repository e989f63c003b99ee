use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Address {
    pub city: String,
}

#[derive(Serialize, Deserialize, StateSchema)]
pub struct Customer {
    pub name: String,
    pub addresses: Vec<Address>,
}

fn main() {}
