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

    edge!(START -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn plan(c: &mut Claim) -> Vec<Line> {
        c.lines.iter().map(|&cents| Line { cents }).collect()
    }

    #[node(subgraph = assessment)]
    async fn assess(
        c: &Claim,
        child: Child<assessment::Workflow>,
        line: Line,
    ) -> Result<u64, NodeError> {
        let _ = c;
        Ok(child.run(line).await?.cents)
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<u64>) {
        c.total = assess.iter().sum();
    }
}

fn main() {}
