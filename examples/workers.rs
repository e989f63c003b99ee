//! Three workers share one store: a web-handler-style producer enqueues orders and answers their
//! reviews with `enqueue_input`, and whichever worker claims a session runs it. Prints who ran
//! what, then shuts the workers down (they drain and release their leases) and exits.
//!
//! Runs on SQLite (a file in the temporary directory, removed at the end) unless `DATABASE_URL`
//! or `GRAPH_RUNTIME_POSTGRES` names a PostgreSQL database:
//!
//! ```sh
//! cargo run --example workers
//! DATABASE_URL=postgres://app@localhost/app cargo run --example workers
//! ```
//!
//! In production each worker is its own process (or machine) running the same binary; here
//! they are three tasks of one process, each a `Worker` with its own owner name.
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{
    Append, Checkpoint, CheckpointMeta, Claim, Lease, SessionFilter, SessionPage, SessionRecord,
    Store,
};
use graph_runtime::{CancellationToken, PostgresStore, Result, Status, Worker};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: Option<bool>,
    pub shipment: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Review {
    Approve,
    Reject,
}

#[workflow(state = Order)]
pub mod orders {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | ship);
    edge!(review -> ship | END);
    edge!(ship -> END);

    /// Orders above $100 need a human review.
    #[node]
    async fn validate(order: &mut Order) -> validate::Next {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if order.total_cents > 100_00 {
            validate::Next::Review
        } else {
            validate::Next::Ship
        }
    }

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Review) -> review::Next {
        order.approved = Some(matches!(decision, Review::Approve));
        match decision {
            Review::Approve => review::Next::Ship,
            Review::Reject => review::Next::End,
        }
    }

    /// The carrier's API would get `ctx.idempotency_key()`, so a step re-run after a crash
    /// books one shipment, not two.
    #[node]
    async fn ship(order: &mut Order, ctx: &NodeCtx) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        order.shipment = Some(format!("shipment for {}", ctx.idempotency_key()));
    }
}

/// The store as one worker sees it: every claim is printed and recorded under the worker's
/// name (the rest passes straight through), so that the example can say who ran what.
#[derive(Clone)]
struct Announced<S> {
    inner: S,
    worker: &'static str,
    ran: Arc<Mutex<BTreeMap<String, Vec<&'static str>>>>,
}

impl<S: Store> Store for Announced<S> {
    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let leases = self.inner.claim(claim).await?;
        for lease in &leases {
            println!("  {:<8} claimed {}", self.worker, lease.session);
            let mut ran = self.ran.lock().unwrap();
            ran.entry(lease.session.clone())
                .or_default()
                .push(self.worker);
        }
        Ok(leases)
    }
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        self.inner.append(session, append).await
    }
    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.inner.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.inner.get(session, seq).await
    }
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.inner.chain(session, from, to).await
    }
    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.inner.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.inner.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> Result<bool> {
        self.inner.delete(session).await
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.inner.sessions(filter).await
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.inner.session(session).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.inner.renew(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.inner.release(lease).await
    }
    fn wait_for_work(&self, timeout: Duration) -> impl Future<Output = ()> + Send {
        self.inner.wait_for_work(timeout)
    }
}

/// The web handler's side: enqueue orders, then answer each review as it comes up.
async fn produce<S: Store + Clone>(
    runner: &Runner<orders::Workflow, S>,
    ids: &[(String, u64)],
) -> Result<()> {
    for (id, total_cents) in ids {
        let order = Order {
            total_cents: *total_cents,
            ..Order::default()
        };
        runner.enqueue(id, order).await?; // durable; returns at once
        println!(
            "handler  enqueued {id} (${:.2})",
            *total_cents as f64 / 100.0
        );
    }
    let mut answered = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut open = 0;
        for (id, total_cents) in ids {
            let snapshot = runner.state(id).await?.expect("enqueued");
            if snapshot.waiting == ["review"] && !answered.contains(id) {
                // A reviewer's click: approve up to $500.
                let decision = if *total_cents <= 500_00 {
                    Review::Approve
                } else {
                    Review::Reject
                };
                println!("handler  review of {id}: {decision:?}");
                runner
                    .enqueue_input(id, orders::Input::Review(decision))
                    .await?;
                answered.push(id.clone());
            }
            if snapshot.status != Status::Completed {
                open += 1;
            }
        }
        if open == 0 {
            return Ok(());
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "{open} orders still open after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn demo<S: Store + Clone>(store: S) -> Result<()> {
    let runner = Runner::new(orders::Workflow, store.clone());
    let ran = Arc::new(Mutex::new(BTreeMap::new()));
    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for name in ["worker-a", "worker-b", "worker-c"] {
        let store = Announced {
            inner: store.clone(),
            worker: name,
            ran: Arc::clone(&ran),
        };
        let worker = Worker::new(store.clone())
            .register(Runner::new(orders::Workflow, store)) // every workflow this binary runs
            .concurrency(2)
            .lease_ttl(Duration::from_secs(5))
            .poll_interval(Duration::from_millis(100))
            .owner(name);
        workers.push(tokio::spawn(worker.run(shutdown.clone())));
    }

    // Unique ids, so that runs against one PostgreSQL database do not collide.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        % 100_000;
    let ids: Vec<(String, u64)> = [25_00, 180_00, 40_00, 920_00, 15_00, 310_00, 60_00, 75_00]
        .into_iter()
        .enumerate()
        .map(|(i, cents)| (format!("order-{run}-{i}"), cents))
        .collect();
    produce(&runner, &ids).await?;

    // SIGTERM in a real service: stop claiming, let running sessions finish, release leases.
    shutdown.cancel();
    for worker in workers {
        worker.await.expect("worker task")?;
    }

    println!("\norder                total    outcome                 claimed by");
    let ran = ran.lock().unwrap().clone();
    for (id, total_cents) in &ids {
        let order = runner.state(id).await?.expect("enqueued").state;
        let outcome = match (&order.approved, &order.shipment) {
            (Some(false), _) => "rejected at review".to_owned(),
            (_, Some(_)) if order.approved == Some(true) => "approved, shipped".to_owned(),
            (_, Some(_)) => "shipped".to_owned(),
            _ => "?".to_owned(),
        };
        let by = ran.get(id).map(|w| w.join(", ")).unwrap_or_default();
        println!(
            "{id:<18} {:>8.2}    {outcome:<23} {by}",
            *total_cents as f64 / 100.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let postgres = std::env::var("DATABASE_URL")
        .or_else(|_| std::env::var("GRAPH_RUNTIME_POSTGRES"))
        .ok();
    match postgres {
        Some(conninfo) => {
            println!("PostgreSQL: three workers, LISTEN/NOTIFY wake-ups\n");
            demo(PostgresStore::connect(&conninfo).await?).await
        }
        None => {
            let path = std::env::temp_dir()
                .join(format!("graph-runtime-workers-{}.db", std::process::id()));
            println!("SQLite {}: three workers, polling\n", path.display());
            let result = demo(SqliteStore::open(&path)?).await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            result
        }
    }
}
