use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub amount_cents: u64,
    pub approved: bool,
    pub assessed_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct FraudScore(pub u32);

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Coverage {
    pub covered: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct LineItem {
    pub cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Assessed {
    pub cents: u64,
}

// A map node cannot wait for a decision per item.
#[workflow(state = Claim)]
mod claims {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> fraud & coverage);
    edge!(fraud & coverage -> decide);
    edge!(decide -> plan | END);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn intake(_c: &mut Claim) {}

    #[node]
    async fn fraud(c: &Claim) -> FraudScore {
        FraudScore(u32::from(c.amount_cents > 100_000))
    }

    #[node]
    async fn coverage(c: &Claim) -> Coverage {
        Coverage { covered: c.amount_cents < 1_000_000 }
    }

    #[node]
    async fn decide(c: &mut Claim, fraud: FraudScore, coverage: Coverage) -> decide::Next {
        c.approved = coverage.covered && fraud.0 == 0;
        if c.approved { decide::Next::Plan } else { decide::Next::End }
    }

    #[node]
    async fn plan(c: &mut Claim) -> Vec<LineItem> {
        vec![LineItem { cents: c.amount_cents }]
    }

    #[node(interrupt)]
    async fn assess(c: &Claim, item: LineItem) -> Assessed {
        Assessed { cents: item.cents.min(c.amount_cents) }
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<Assessed>) {
        c.assessed_cents = assess.iter().map(|a| a.cents).sum();
    }
}

fn main() {}
