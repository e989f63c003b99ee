//! The claims graph of the design's "Parallel branches": a fan-out with a retried branch, a
//! plain one and an interrupt branch, their typed join, a map with a concurrency limit, and the
//! map's join; plus a join that collects failures.

use std::fmt;

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub amount_cents: u64,
    pub fraud_score: u32,
    pub covered: bool,
    pub note: String,
    pub approved: bool,
    pub assessed_cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct FraudScore(pub u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Coverage {
    pub covered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct AdjusterNote {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct LineItem {
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Assessed {
    pub cents: u64,
}

#[derive(Debug)]
pub struct ApiError;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("api down")
    }
}

impl std::error::Error for ApiError {}

#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> fraud & coverage & adjuster);
    edge!(fraud & coverage & adjuster -> decide);
    edge!(decide -> plan | END);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    pub async fn intake(c: &mut Claim) {
        c.note.clear();
    }

    #[node(retry = 3)]
    pub async fn fraud(c: &Claim, ctx: &NodeCtx) -> Result<FraudScore, ApiError> {
        let _ = ctx;
        Ok(FraudScore(u32::from(c.amount_cents > 100_000) * 90))
    }

    #[node]
    pub async fn coverage(c: &Claim) -> Coverage {
        Coverage {
            covered: c.amount_cents < 1_000_000,
        }
    }

    #[node(interrupt)]
    pub async fn adjuster(c: &Claim, note: AdjusterNote) -> AdjusterNote {
        let _ = c;
        note
    }

    #[node]
    pub async fn decide(
        c: &mut Claim,
        fraud: FraudScore,
        coverage: Coverage,
        adjuster: AdjusterNote,
    ) -> decide::Next {
        c.fraud_score = fraud.0;
        c.covered = coverage.covered;
        c.note = adjuster.text;
        c.approved = c.covered && c.fraud_score < 50;
        if c.approved {
            decide::Next::Plan
        } else {
            decide::Next::End
        }
    }

    #[node]
    pub async fn plan(c: &mut Claim) -> Vec<LineItem> {
        vec![
            LineItem {
                cents: c.amount_cents / 2,
            },
            LineItem {
                cents: c.amount_cents - c.amount_cents / 2,
            },
        ]
    }

    #[node(concurrency = 8)]
    pub async fn assess(c: &Claim, item: LineItem) -> Result<Assessed, ApiError> {
        let _ = c;
        Ok(Assessed { cents: item.cents })
    }

    #[node]
    pub async fn total(c: &mut Claim, assess: Vec<Assessed>) {
        c.assessed_cents = assess.iter().map(|a| a.cents).sum();
    }
}

/// Collect mode: the join takes `Result<O, Failure>` / `Vec<Result<O, Failure>>`.
#[workflow(state = Claim)]
pub mod collecting {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> fraud & coverage);
    edge!(fraud & coverage -> decide);
    edge!(decide -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn intake(_c: &mut Claim) {}

    #[node]
    async fn fraud(_c: &Claim) -> Result<FraudScore, ApiError> {
        Err(ApiError)
    }

    #[node]
    async fn coverage(_c: &Claim) -> Coverage {
        Coverage { covered: true }
    }

    #[node]
    async fn decide(
        c: &mut Claim,
        coverage: Coverage,
        fraud: Result<FraudScore, graph_runtime::Failure>,
    ) {
        c.fraud_score = fraud.map_or(100, |score| score.0);
        c.covered = coverage.covered;
    }

    #[node]
    async fn plan(_c: &mut Claim) -> Result<Vec<LineItem>, ApiError> {
        Ok(vec![LineItem { cents: 1 }])
    }

    #[node]
    async fn assess(_c: &Claim, line: LineItem) -> Assessed {
        Assessed { cents: line.cents }
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<Result<Assessed, graph_runtime::Failure>>) {
        c.assessed_cents = assess.iter().flatten().map(|a| a.cents).sum();
    }
}

fn main() {
    use graph_runtime::Workflow as _;
    assert_eq!(claims::Workflow::NAME, "claims");
    assert_eq!(collecting::NODES.len(), 7);
    let _ = claims::Input::Adjuster(AdjusterNote {
        text: String::new(),
    });
    assert_ne!(claims::GRAPH_HASH, collecting::GRAPH_HASH);
}
