//! The checkout workflow of DESIGN §3 on the embedded durable store, `checkout.db` in the
//! working directory.
//!
//! Each run first lists what earlier runs left in the file and resumes any order a crash
//! interrupted, then runs two new orders: a small one straight through, and a big one that stops
//! for a human review, is approved, and finishes.
//!
//! ```sh
//! cargo run --example checkout              # run it twice: the second run finds the first's orders
//! cargo run --example checkout -- --crash   # the big order's payment step aborts the process...
//! cargo run --example checkout              # ...and this run resumes it where it stopped
//! ```
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents, as in DESIGN §3

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use graph_runtime::prelude::*;
use graph_runtime::{Error, Event, Events, Status};
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

/// Set by `--crash`: the payment step aborts the process, as a crash would.
static CRASH_IN_PAYMENT: AtomicBool = AtomicBool::new(false);

/// A stand-in payment provider. The idempotency key is the same when a step re-runs after a
/// crash, so a real provider would not charge twice.
async fn pay(total_cents: u64, idempotency_key: &str) -> Result<String, PaymentError> {
    println!("  paying {total_cents} cents with idempotency key {idempotency_key}");
    if CRASH_IN_PAYMENT.load(Ordering::Relaxed) {
        println!("  --crash: aborting the process in the middle of the payment step");
        std::process::abort();
    }
    if total_cents == 0 {
        return Err(PaymentError("nothing to charge".into()));
    }
    Ok(format!("ch_{}", idempotency_key.replace('/', "_")))
}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge); // a branch: `validate` picks one of these
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

    #[node(interrupt)] // waits for a typed human decision
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

type Checkout = Runner<checkout::Workflow, SqliteStore>;

async fn print_history(runner: &Checkout, session: &str) -> Result<(), Error> {
    for c in runner.history(session).await? {
        let status = match &c.status {
            Status::Running => "running".to_owned(),
            Status::Waiting { node } => format!("waiting at {node}"),
            Status::Completed => "completed".to_owned(),
        };
        println!(
            "    seq {:>2}  next {:<9} {:<17} {:>4} bytes",
            c.seq, c.node, status, c.bytes
        );
    }
    Ok(())
}

/// Prints a spawned run's events as progress lines until the run ends.
async fn print_progress(session: String, mut events: Events) {
    while let Some(event) = events.next().await {
        let line = match event {
            Event::StepStarted {
                node,
                seq,
                attempt: 1,
            } => format!("step {seq}: {node}"),
            Event::StepStarted { node, seq, attempt } => {
                format!("step {seq}: {node}, attempt {attempt}")
            }
            Event::StepFinished { node, duration, .. } => format!("  {node} took {duration:?}"),
            Event::CheckpointSaved { seq, bytes } => {
                format!("  checkpoint {seq} saved ({bytes} B)")
            }
            Event::Retrying {
                node,
                attempt,
                delay,
                error,
            } => {
                format!("  {node} failed ({error}); attempt {attempt} in {delay:?}")
            }
            Event::Interrupted { node } => format!("waiting at {node}"),
            Event::Completed => "completed".to_owned(),
            Event::Failed { error } => format!("failed: {error}"),
            other => format!("{other:?}"),
        };
        println!("  [{session}] {line}");
    }
}

/// Lists what earlier runs left, and resumes every order a crash interrupted.
async fn recover(runner: &Checkout) -> Result<usize, Error> {
    let sessions = runner.sessions().await?;
    if sessions.is_empty() {
        println!("checkout.db holds no orders yet");
    } else {
        println!(
            "checkout.db holds {} orders from earlier runs:",
            sessions.len()
        );
    }
    for id in &sessions {
        let Some(snapshot) = runner.state(id).await? else {
            continue;
        };
        match snapshot.status {
            Status::Running => {
                println!(
                    "  {id}: left running at `{}` by a crash; resuming",
                    snapshot.node
                );
                let outcome = runner.resume(id).await?;
                println!("  {id}: {:?}", outcome.into_state());
            }
            Status::Waiting { node } => println!("  {id}: waiting at `{node}`"),
            Status::Completed => println!("  {id}: completed, {:?}", snapshot.state),
        }
        let path: Vec<String> = runner
            .history(id)
            .await?
            .into_iter()
            .map(|c| format!("{}:{}", c.seq, c.node))
            .collect();
        println!("    history: {}", path.join(" -> "));
    }
    Ok(sessions.len())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let crash = std::env::args().any(|a| a == "--crash");
    println!(
        "checkout graph (hash {:#018x}):\n{}",
        checkout::GRAPH_HASH,
        checkout::MERMAID
    );

    let runner = Runner::new(checkout::Workflow, SqliteStore::open("checkout.db")?);
    let earlier = recover(&runner).await?;
    let run = earlier / 2 + 1;

    // A small order needs no review.
    let small = format!("order-{run}-small");
    println!("\n{small}: 25.00");
    let outcome = runner
        .start(
            &small,
            Order {
                total_cents: 25_00,
                ..Order::default()
            },
        )
        .await?;
    println!("  {outcome:?}");
    print_history(&runner, &small).await?;

    // A big order stops for review ...
    let big = format!("order-{run}-big");
    println!("\n{big}: 250.00");
    if let Outcome::Interrupted { node, state } = runner
        .start(
            &big,
            Order {
                total_cents: 250_00,
                ..Order::default()
            },
        )
        .await?
    {
        println!("  waits at `{node}` with {state:?}");
    }
    // ... and a reviewer approves it (this could be another process, days later).
    // This time the run is spawned and its live events are printed as progress lines.
    CRASH_IN_PAYMENT.store(crash, Ordering::Relaxed);
    let mut run = runner.spawn_resume_with(&big, checkout::Input::Review(Approval::Approve));
    let progress = tokio::spawn(print_progress(big.clone(), run.events()));
    let outcome = run.await;
    progress.await.expect("the progress printer");
    println!("  approved: {:?}", outcome?);
    print_history(&runner, &big).await?;
    Ok(())
}
