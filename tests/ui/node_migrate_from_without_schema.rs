use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub amount_cents: u64,
    pub risky: bool,
    pub assessed_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct FraudScore {
    pub value: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct LineItem {
    pub cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FraudScoreV1(pub u8);

impl From<FraudScoreV1> for FraudScore {
    fn from(old: FraudScoreV1) -> FraudScore {
        FraudScore { value: u32::from(old.0) }
    }
}

// `FraudScoreV1` is listed, but has no state schema fingerprint to recognise it by.
#[workflow(state = Claim)]
mod claims {
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

    #[node(migrate_from = [FraudScoreV1])]
    async fn fraud(c: &Claim) -> FraudScore {
        FraudScore { value: u32::from(c.amount_cents > 100_000) }
    }

    #[node]
    async fn coverage(c: &Claim) -> bool {
        c.amount_cents < 1_000_000
    }

    #[node]
    async fn decide(c: &mut Claim, fraud: FraudScore, coverage: bool) {
        c.risky = fraud.value > 0 || !coverage;
    }

    #[node]
    async fn plan(c: &mut Claim) -> Vec<LineItem> {
        vec![LineItem { cents: c.amount_cents }]
    }

    #[node]
    async fn assess(_c: &Claim, item: LineItem) -> u64 {
        item.cents
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<u64>) {
        c.assessed_cents = assess.iter().sum();
    }
}

fn main() {}
