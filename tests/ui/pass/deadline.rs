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

    edge!(START -> review);
    edge!(review -> END);

    // The default when no decision came within a day: reject.
    #[node(interrupt, wait_ms = 86_400_000)]
    async fn review(order: &mut Order, decision: Option<Decision>) {
        order.approved = Some(matches!(decision, Some(Decision::Approve)));
    }
}

fn main() {
    use graph_runtime::Workflow as _;
    let spec = checkout::Workflow::node("review").expect("review");
    assert_eq!(spec.wait_ms, Some(86_400_000));
    // The input is the decision itself, not an `Option`.
    let _ = checkout::Input::Review(Decision::Reject);
}
