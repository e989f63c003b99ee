use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub approved: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

#[workflow(state = Order)]
mod checkout {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> score & review);
    edge!(score & review -> decide);
    edge!(decide -> END);

    #[node]
    async fn intake(order: &mut Order) {
        order.approved = None;
    }

    #[node]
    async fn score(order: &Order) -> u32 {
        u32::from(order.approved.is_some())
    }

    // Waits for a decision at most a minute, while `score` runs; the default: not approved.
    #[node(interrupt, wait_ms = 60_000)]
    async fn review(order: &Order, decision: Option<Decision>) -> bool {
        order.approved.is_none() && matches!(decision, Some(Decision::Approve))
    }

    #[node]
    async fn decide(order: &mut Order, score: u32, review: bool) {
        order.approved = Some(review && score == 0);
    }
}

fn main() {
    use graph_runtime::Workflow as _;
    // The interrupt branch has its own deadline; its input is the decision itself.
    let spec = checkout::Workflow::node("review").expect("review");
    assert_eq!(spec.wait_ms, Some(60_000));
    let _ = checkout::Input::Review(Decision::Reject);
}
