use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, StateSchema)]
#[serde(tag = "type")]
pub enum Event {
    Created { id: u64 },
    Deleted { id: u64 },
}

fn main() {}
