//! The README's checkout workflow, with every generated item named from outside the module.
use std::fmt;

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug)]
pub struct PaymentError;

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for PaymentError {}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge);
    edge!(review -> charge | cancel);
    edge!(charge -> ship);
    edge!(ship -> END);
    edge!(cancel -> END);

    #[node]
    pub async fn validate(order: &mut Order) -> validate::Next {
        if order.total_cents > 100_00 {
            validate::Next::Review
        } else {
            validate::Next::Charge
        }
    }

    #[node(interrupt)]
    pub async fn review(order: &mut Order, decision: Approval) -> review::Next {
        match decision {
            Approval::Approve => {
                order.approved = true;
                review::Next::Charge
            }
            Approval::Reject { .. } => review::Next::Cancel,
        }
    }

    #[node(retry = 3, timeout_ms = 5_000)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        order.charge_id = Some(ctx.idempotency_key());
        Ok(())
    }

    #[node]
    async fn ship(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn cancel(order: &mut Order) {
        order.charge_id = None;
    }
}

fn main() {
    use graph_runtime::Workflow as _;

    let _: checkout::validate::Next = checkout::validate::Next::Review;
    let _: checkout::review::Next = checkout::review::Next::Cancel;
    let input = checkout::Input::Review(Approval::Reject {
        reason: "too big".into(),
    });
    assert_eq!(checkout::Workflow::NODES, checkout::NODES);
    assert_eq!(checkout::Workflow::GRAPH_HASH, checkout::GRAPH_HASH);
    assert_eq!(checkout::Workflow::NAME, "checkout");
    let _ = input;
    let review = checkout::Workflow::node("review").unwrap();
    assert_eq!(review.name, "review");
    assert!(review.interrupt);
    assert_eq!(checkout::Workflow::node("charge").map(|n| n.retry), Some(3));
}
