use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Line {
    pub cents: u64,
}

#[workflow(state = Line)]
pub mod assessment {
    use super::*;

    edge!(START -> price);
    edge!(price -> END);

    #[node]
    async fn price(line: &mut Line) {
        line.cents += 1;
    }
}

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub lines: Vec<u64>,
    pub total: u64,
}

#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> open);
    edge!(open -> assess & audit);
    edge!(assess & audit -> total);
    edge!(total -> END);

    #[node]
    async fn open(c: &mut Claim) {
        c.total = 0;
    }

    #[node]
    async fn assess(c: &Claim) -> u64 {
        c.total
    }

    #[node]
    async fn audit(c: &Claim) -> u64 {
        c.total
    }

    #[node(subgraph = assessment)]
    async fn total(
        c: &mut Claim,
        assess: u64,
        audit: u64,
        child: Child<assessment::Workflow>,
    ) -> Result<(), NodeError> {
        c.total = child.run(Line { cents: assess + audit }).await?.cents;
        Ok(())
    }
}

fn main() {}
