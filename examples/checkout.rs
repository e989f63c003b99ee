//! The checkout workflow of DESIGN §3: a small order goes straight through; a big one stops
//! for a human review, is approved, and finishes. Prints the graph and each session's history.
//!
//! Run: `cargo run --example checkout`

use std::fmt;

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
    pub shipped: bool,
    pub cancelled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug)]
pub struct PaymentError(String);

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payment declined: {}", self.0)
    }
}

impl std::error::Error for PaymentError {}

/// A stand-in payment provider: the idempotency key makes a re-run after a crash harmless.
async fn pay(total_cents: u64, idempotency_key: &str) -> Result<String, PaymentError> {
    if total_cents == 0 {
        return Err(PaymentError("nothing to charge".into()));
    }
    Ok(format!("ch_{idempotency_key}"))
}

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
    async fn validate(order: &mut Order) -> validate::Next {
        if order.total_cents > 100_00 {
            validate::Next::Review
        } else {
            validate::Next::Charge
        }
    }

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Approval) -> review::Next {
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
        order.charge_id = Some(pay(order.total_cents, &ctx.idempotency_key()).await?);
        Ok(())
    }

    #[node]
    async fn ship(order: &mut Order) {
        order.shipped = true;
    }

    #[node]
    async fn cancel(order: &mut Order) {
        order.cancelled = true;
    }
}

async fn print_history(
    runner: &Runner<checkout::Workflow, MemoryStore>,
    session: &str,
) -> Result<(), graph_runtime::Error> {
    println!("history of {session}:");
    for c in runner.history(session).await? {
        println!(
            "  seq {:>2}  {:<10} {:<28} {:>4} bytes",
            c.seq,
            c.node,
            format!("{:?}", c.status),
            c.bytes
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), graph_runtime::Error> {
    println!(
        "checkout graph (hash {:#018x}):\n{}",
        checkout::GRAPH_HASH,
        checkout::MERMAID
    );

    let runner = Runner::new(checkout::Workflow, MemoryStore::new());

    // A small order needs no review.
    let small = Order {
        total_cents: 25_00,
        ..Order::default()
    };
    match runner.start("order-1", small).await? {
        Outcome::Completed(order) => println!("order-1 completed: {order:?}"),
        Outcome::Interrupted { node, .. } => println!("order-1 unexpectedly waits at {node}"),
    }
    print_history(&runner, "order-1").await?;

    // A big order stops for review.
    let big = Order {
        total_cents: 250_00,
        ..Order::default()
    };
    match runner.start("order-42", big).await? {
        Outcome::Interrupted { node, state } => {
            println!("order-42 waits at `{node}` with {state:?}");
        }
        Outcome::Completed(order) => println!("order-42 unexpectedly completed: {order:?}"),
    }
    // ... later, perhaps from another process that opens the same store:
    let approved = runner
        .resume_with("order-42", checkout::Input::Review(Approval::Approve))
        .await?;
    println!("order-42 after approval: {:?}", approved.into_state());
    print_history(&runner, "order-42").await?;
    Ok(())
}
