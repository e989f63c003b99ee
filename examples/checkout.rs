//! The checkout workflow of the README on the embedded durable store, `checkout.db` in the
//! working directory.
//!
//! Each run first lists what earlier runs left in the file and resumes any order a crash
//! interrupted, then runs three new orders: a small one straight through; a big one that stops
//! for a human review, is approved, and is paid after the (flaky) payment provider's first
//! attempt fails, its live events printed as progress lines; and one whose card is declined,
//! which is not retried and takes the error edge to `refund`.
//!
//! ```sh
//! cargo run --example checkout              # run it twice: the second run finds the first's orders
//! cargo run --example checkout -- --crash   # the big order's payment step aborts the process...
//! cargo run --example checkout              # ...and this run resumes it where it stopped
//! ```
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use graph_runtime::prelude::*;
use graph_runtime::{Error, Event, Events, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
    pub shipped: bool,
    pub cancelled: bool,
    /// Set by `refund` when the payment failed for good.
    pub refund_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug)]
pub enum PaymentError {
    /// The provider could not be reached: worth retrying.
    Unavailable,
    /// The card was declined: retrying cannot help.
    Declined(String),
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Unavailable => f.write_str("payment provider unavailable"),
            PaymentError::Declined(why) => write!(f, "card declined: {why}"),
        }
    }
}

impl std::error::Error for PaymentError {}

/// Tells the runner which payment errors to retry (`#[node(retry = …)]`).
impl graph_runtime::Retryable for PaymentError {
    fn is_retryable(&self) -> bool {
        matches!(self, PaymentError::Unavailable)
    }
}

/// Set by `--crash`: the payment step aborts the process, as a crash would.
static CRASH_IN_PAYMENT: AtomicBool = AtomicBool::new(false);

/// A stand-in payment provider. The idempotency key is the same when a step re-runs after a
/// crash, so a real provider would not charge twice. It is flaky: the first attempt of every
/// charge over 100.00 finds it unavailable. And it declines amounts ending in 13 cents.
async fn pay(
    total_cents: u64,
    idempotency_key: &str,
    attempt: u32,
) -> Result<String, PaymentError> {
    println!("  paying {total_cents} cents, key {idempotency_key}, attempt {attempt}");
    if CRASH_IN_PAYMENT.load(Ordering::Relaxed) {
        println!("  --crash: aborting the process in the middle of the payment step");
        std::process::abort();
    }
    if total_cents % 100 == 13 {
        return Err(PaymentError::Declined("insufficient funds".into()));
    }
    if total_cents > 100_00 && attempt == 1 {
        return Err(PaymentError::Unavailable);
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
    edge!(charge -> refund on error); // taken when `charge` fails after its retries
    edge!(ship -> END);
    edge!(cancel -> END);
    edge!(refund -> END);

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

    #[node(retry = 3, timeout_ms = 5_000, backoff_ms = 50)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        let key = ctx.idempotency_key();
        order.charge_id = Some(pay(order.total_cents, &key, ctx.attempt()).await?);
        Ok(())
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) {
        // The state is as it was before the failed payment; the failure says why.
        order.cancelled = true;
        order.refund_reason = ctx
            .failure()
            .map(|f| format!("{} failed: {}", f.node(), f.error()));
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
            other => format!("{other:?}"),
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

/// Lists what earlier runs left, and resumes every order a crash interrupted. Returns the
/// number of the last round of orders found (`order-<round>-…`), 0 for none.
async fn recover(runner: &Checkout) -> Result<u32, Error> {
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
            other => println!("  {id}: {other:?}"),
        }
        let path: Vec<String> = runner
            .history(id)
            .await?
            .into_iter()
            .map(|c| format!("{}:{}", c.seq, c.node))
            .collect();
        println!("    history: {}", path.join(" -> "));
    }
    let round = |id: &String| {
        id.strip_prefix("order-")?
            .split('-')
            .next()?
            .parse::<u32>()
            .ok()
    };
    Ok(sessions.iter().filter_map(round).max().unwrap_or(0))
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
    let round = recover(&runner).await? + 1;

    // A small order needs no review.
    let small = format!("order-{round}-small");
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
    let big = format!("order-{round}-big");
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

    // An order whose card is declined: not retried, the error edge leads to `refund`.
    let declined = format!("order-{round}-declined");
    println!("\n{declined}: 42.13");
    let order = Order {
        total_cents: 42_13,
        ..Order::default()
    };
    let outcome = runner.start(&declined, order).await?;
    println!("  {outcome:?}");
    print_history(&runner, &declined).await?;
    Ok(())
}
