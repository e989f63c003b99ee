use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, StateSchema)]
#[serde(untagged)]
pub enum Amount {
    Cents(u64),
    Text(String),
}

fn main() {}
