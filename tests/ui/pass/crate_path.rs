//! `crate = …` lets a crate that re-exports graph-runtime use the macro through its own path,
//! and generated code does not need the std prelude.
use serde::{Deserialize, Serialize};

mod rt {
    pub use graph_runtime::*;
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counter {
    pub n: u64,
}

#[graph_runtime::workflow(state = Counter, crate = crate::rt)]
mod count {
    #![no_implicit_prelude]
    use super::Counter;

    edge!(START -> bump);
    edge!(bump -> END);

    #[graph_runtime::node]
    async fn bump(c: &mut Counter) {
        c.n += 1;
    }
}

fn main() {
    let _ = count::Workflow;
    assert_eq!(count::NODES.len(), 1);
}
