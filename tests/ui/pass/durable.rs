//! The arguments that keep checkpoints of older builds readable: `migrate_from`,
//! `accept_graphs`, `#[node(renamed_from)]`, and `#[node(checkpoint)]`.
use graph_runtime::Workflow as _;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
}

/// The state of two releases ago.
#[derive(Debug, Serialize, Deserialize, StateSchema)]
pub struct OrderV1 {
    pub total_cents: u32,
}

/// The state of the previous release.
#[derive(Debug, Serialize, Deserialize, StateSchema)]
pub enum OrderV2 {
    Open { total_cents: u64 },
}

impl From<OrderV1> for Order {
    fn from(old: OrderV1) -> Order {
        Order { total_cents: u64::from(old.total_cents), approved: false }
    }
}

impl From<OrderV2> for Order {
    fn from(old: OrderV2) -> Order {
        match old {
            OrderV2::Open { total_cents } => Order { total_cents, approved: false },
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[workflow(
    state = Order,
    migrate_from = [OrderV1, OrderV2],
    accept_graphs = [0x2204_5b7d_596d_b6de, 42u64],
)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> approval | END);
    edge!(approval -> charge | END);
    edge!(charge -> END);

    #[node(checkpoint = never)]
    async fn validate(order: &mut Order) -> validate::Next {
        if order.total_cents > 0 { validate::Next::Approval } else { validate::Next::End }
    }

    #[node(interrupt, renamed_from = ["review", "approve"])]
    async fn approval(order: &mut Order, decision: Approval) -> approval::Next {
        order.approved = matches!(decision, Approval::Approve);
        if order.approved { approval::Next::Charge } else { approval::Next::End }
    }

    #[node(checkpoint = always, retry = 2)]
    async fn charge(order: &mut Order) {}
}

fn main() {
    assert_eq!(checkout::Workflow::MIGRATES_FROM.len(), 2);
    assert_eq!(checkout::STATE_SCHEMA, <Order as StateSchema>::SCHEMA);
    // The first release's hash, two older graphs (one per old name) with two hashes each,
    // and the two listed ones.
    assert_eq!(checkout::Workflow::ACCEPTED_GRAPHS.len(), 1 + 2 * 2 + 2);
    assert_eq!(
        checkout::Workflow::node("review"),
        checkout::Workflow::node("approval")
    );
    assert_eq!(
        checkout::Workflow::node("approve"),
        checkout::Workflow::node("approval")
    );
}
