//! Without interrupt nodes, `Input` has no values, and everything still compiles.
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Counter {
    pub n: u64,
}

// W1 from the design: a loop between two nodes, left through a branch.
#[workflow(state = Counter)]
mod count {
    use super::*;

    edge!(START -> a);
    edge!(a -> b);
    edge!(b -> a | END);

    #[node]
    async fn a(c: &mut Counter) {
        c.n += 1;
    }

    #[node]
    async fn b(c: &mut Counter) -> b::Next {
        c.n += 1;
        if c.n < 10 { b::Next::A } else { b::Next::End }
    }
}

fn never(input: count::Input) -> ! {
    match input {}
}

fn main() {
    let _ = never;
    assert_eq!(count::NODES, &["a", "b"]);
}
