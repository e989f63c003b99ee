//! One typo in the graph gives one error: the module's items, `validate::Next`, `Input` and
//! `Workflow` still exist (as stand-ins), so nothing that uses them fails on top of it.
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
    pub approved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject,
}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge);
    edge!(review -> charge | END);
    edge!(charge -> shp);
    edge!(ship -> END);

    #[node]
    async fn validate(order: &mut Order) -> validate::Next {
        if order.total > 100 {
            validate::Next::Review
        } else {
            validate::Next::Charge
        }
    }

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Approval) -> review::Next {
        order.approved = matches!(decision, Approval::Approve);
        if order.approved {
            review::Next::Charge
        } else {
            review::Next::End
        }
    }

    #[node]
    async fn charge(order: &mut Order) {
        order.total = 0;
    }

    #[node]
    async fn ship(order: &mut Order) {
        let _ = order;
    }
}

async fn run() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    let _ = runner.start("order-1", Order::default()).await;
    let _ = runner
        .resume_with("order-1", checkout::Input::Review(Approval::Approve))
        .await;
    let _: u64 = checkout::GRAPH_HASH;
    let _: &str = checkout::MERMAID;
    let _: &[&str] = checkout::NODES;
}

fn main() {
    let _ = run();
}
