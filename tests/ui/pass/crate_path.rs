//! `crate = …` lets a crate that re-exports graph-runtime use the macro through its own path,
//! and generated code does not need the std prelude.
use serde::{Deserialize, Serialize};

mod rt {
    pub use graph_runtime::*;
}

#[derive(Debug, Default, Serialize, Deserialize, rt::StateSchema)]
#[state_schema(crate = crate::rt)]
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

// A relative path is resolved from inside the module, like any path written there.
#[graph_runtime::workflow(state = Counter, crate = super::rt)]
mod count_relative {
    use super::Counter;

    edge!(START -> bump);
    edge!(bump -> END);

    #[graph_runtime::node]
    async fn bump(c: &mut Counter) -> Result<(), std::io::Error> {
        c.n += 1;
        Ok(())
    }
}

fn main() {
    let _ = count_relative::Workflow;
    let _ = count::Workflow;
    assert_eq!(count::NODES.len(), 1);
}
