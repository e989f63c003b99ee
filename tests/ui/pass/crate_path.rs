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

/// An older state, so that the migration code is generated under `no_implicit_prelude` too.
#[derive(Debug, Serialize, Deserialize, rt::StateSchema)]
#[state_schema(crate = crate::rt)]
pub struct CounterV1 {
    pub n: u32,
}

impl From<CounterV1> for Counter {
    fn from(old: CounterV1) -> Counter {
        Counter { n: u64::from(old.n) }
    }
}

#[graph_runtime::workflow(state = Counter, crate = crate::rt, migrate_from = [CounterV1])]
mod count {
    #![no_implicit_prelude]
    use super::{Counter, CounterV1};

    edge!(START -> bump);
    edge!(bump -> END);

    #[graph_runtime::node(checkpoint = always, renamed_from = "increment")]
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
