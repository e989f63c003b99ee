//! The checkout workflow of the README on the embedded durable store, `checkout.db` in the
//! working directory.
//!
//! Each run first lists what earlier runs left in the file and resumes any order a crash
//! interrupted, then runs four new orders: a small one straight through; a large one that
//! stops for a human review, is approved, and is paid after the (flaky) payment provider's
//! first attempt fails, its live events printed as progress lines; one whose card is
//! declined, which is not retried and takes the error edge to `refund`; and a big one left
//! waiting for its review, with the inspector commands that show and approve it
//! (`examples/inspect.rs`).
//!
//! ```sh
//! cargo run --example checkout              # run it twice: the second run finds the first's orders
//! cargo run --example checkout -- --crash   # the approved order's payment aborts the process...
//! cargo run --example checkout              # ...and this run resumes it where it stopped
//! ```
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

use std::sync::atomic::Ordering;

use graph_runtime::prelude::*;
use graph_runtime::{Error, Event, Events, Status};

#[path = "support/checkout.rs"]
mod flow;
use flow::{Approval, CRASH_IN_PAYMENT, Order, checkout};

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
    // A big order stops for review, and a reviewer approves it (this could be another
    // process, days later). This time the run is spawned and its live events are printed as
    // progress lines.
    let approved = format!("order-{round}-approved");
    println!("\n{approved}: 180.00");
    if let Outcome::Interrupted { node, state } = runner
        .start(
            &approved,
            Order {
                total_cents: 180_00,
                ..Order::default()
            },
        )
        .await?
    {
        println!("  waits at `{node}` with {state:?}");
    }
    CRASH_IN_PAYMENT.store(crash, Ordering::Relaxed);
    let mut run = runner.spawn_resume_with(&approved, checkout::Input::Review(Approval::Approve));
    let progress = tokio::spawn(print_progress(approved.clone(), run.events()));
    let outcome = run.await;
    progress.await.expect("the progress printer");
    println!("  approved: {:?}", outcome?);
    print_history(&runner, &approved).await?;

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

    // The big order is left waiting for its review: an operator finds it, reads it and
    // approves it with the inspector, without writing code.
    let big = format!("order-{round}-big");
    println!("\n{big}: 250.00");
    if let Outcome::Interrupted { node, .. } = runner
        .start(
            &big,
            Order {
                total_cents: 250_00,
                ..Order::default()
            },
        )
        .await?
    {
        println!("  waits at `{node}` for a reviewer. Find it, read it and approve it:");
        println!("    cargo run --example inspect -- sessions --node review");
        println!("    cargo run --example inspect -- show {big}");
        println!(
            "    cargo run --example inspect -- decide {big} '{{\"review\":\"Approve\"}}' --by you"
        );
        println!("  or in a browser: cargo run --example console");
    }
    Ok(())
}
