//! W12, a map of children across workers on PostgreSQL: one parent session maps 1,000 items
//! over a child workflow of 2 nodes (`#[node(subgraph = …)]` on the map node), run by 4
//! workers in this process that registered only the parent. The parent holds no lease while
//! its children run; each child is a session of its own that any worker claims, and the
//! children that end wake the parent. Measured from the parent's `enqueue` until it has
//! completed: children per second.
//!
//! Against, in the same run: the same 1,000 two-node sessions enqueued on their own and run
//! by the same 4 workers (W8's shape: sessions per second, a checkpoint every step on both
//! sides, the same server). The ratio is what running them as one parent's children costs.
//! The server runs with `fsync` and `synchronous_commit` on.
//!
//! ```sh
//! cargo bench -p graph-runtime --features postgres --bench child_map
//! ```
//! (`BENCH_CHILDREN=N` changes the number of children; `BENCH_RUNS=N` the runs, median
//! reported.)

#[path = "../../tests/support/postgres.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use graph_runtime::store::{SessionFilter, Store};
use graph_runtime::{
    CancellationToken, PostgresOptions, PostgresStore, Status, StatusKind, Worker,
};
use serde::{Deserialize, Serialize};

const WORKERS: usize = 4;
const POOL: usize = 16;

/// Children (or sessions) that ran their last node.
static FINISHED: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Item {
    pub index: u64,
    pub pad: String,
    pub done: bool,
}

/// The child (and, enqueued on its own, the baseline): two nodes.
#[workflow(state = Item)]
pub mod two_steps {
    use super::*;

    edge!(START -> first);
    edge!(first -> second);
    edge!(second -> END);

    #[node]
    async fn first(item: &mut Item) {
        item.index += 1;
    }

    #[node]
    async fn second(item: &mut Item) {
        item.done = true;
        FINISHED.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Batch {
    pub items: u64,
    pub done: u64,
}

/// The parent: one child per item.
#[workflow(state = Batch)]
pub mod batch {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> each run);
    edge!(run -> total);
    edge!(total -> END);

    #[node]
    async fn plan(b: &mut Batch) -> Vec<Item> {
        (0..b.items)
            .map(|index| Item {
                index,
                pad: "x".repeat(256),
                done: false,
            })
            .collect()
    }

    #[node(subgraph = two_steps, concurrency = 1000)]
    async fn run(
        _b: &Batch,
        item: Item,
        child: Child<two_steps::Workflow>,
    ) -> Result<bool, NodeError> {
        Ok(child.run(item).await?.done)
    }

    #[node]
    async fn total(b: &mut Batch, run: Vec<bool>) {
        b.done = run.into_iter().filter(|done| *done).count() as u64;
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn store(conninfo: &str) -> PostgresStore {
    PostgresOptions::new()
        .pool_size(POOL)
        .connect(conninfo)
        .await
        .expect("connect")
}

/// Starts 4 workers on `store` with `register` applied to each.
fn workers(
    store: &PostgresStore,
    shutdown: &CancellationToken,
    register: impl Fn(Worker<PostgresStore>) -> Worker<PostgresStore>,
) -> Vec<tokio::task::JoinHandle<graph_runtime::Result<()>>> {
    (0..WORKERS)
        .map(|i| {
            let worker = register(Worker::new(store.clone()))
                .concurrency(64)
                .poll_interval(Duration::from_millis(100))
                .owner(format!("bench-{i}"));
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect()
}

/// The baseline: `n` two-node sessions enqueued and run by 4 workers; sessions per second.
async fn sessions_alone(conninfo: &str, n: usize, run: usize) -> f64 {
    let store = store(conninfo).await;
    let runner = Runner::new(two_steps::Workflow, store.clone());
    FINISHED.store(0, Ordering::Relaxed);
    let shutdown = CancellationToken::new();
    let handles = workers(&store, &shutdown, |w| w.register(runner.clone()));
    // Enqueued all at once, as the parent's map enqueues its children.
    let started = Instant::now();
    let mut enqueues = tokio::task::JoinSet::new();
    for i in 0..n {
        let runner = runner.clone();
        enqueues.spawn(async move {
            let item = Item {
                index: i as u64,
                pad: "x".repeat(256),
                done: false,
            };
            runner
                .enqueue(&format!("alone-{run}-{i}"), item)
                .await
                .expect("enqueue");
        });
    }
    enqueues.join_all().await;
    // Every session ran its last node; then its completion is durable once no worker holds it.
    while FINISHED.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut filter = SessionFilter::new();
    filter.workflow = Some("two_steps".into());
    filter.status = Some(StatusKind::Completed);
    filter.after = Some(format!("alone-{run}-"));
    filter.limit = SessionFilter::MAX_LIMIT;
    loop {
        let page = store.sessions(&filter).await.expect("sessions");
        let done = page
            .sessions
            .iter()
            .filter(|s| s.session.starts_with(&format!("alone-{run}-")))
            .count();
        if done >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    for handle in handles {
        handle.await.expect("join").expect("worker");
    }
    n as f64 / elapsed.as_secs_f64()
}

/// One parent mapping `n` children, run by 4 workers that registered only the parent;
/// children per second.
async fn children_of_one_parent(conninfo: &str, n: usize, run: usize) -> f64 {
    let store = store(conninfo).await;
    let parent = Runner::new(batch::Workflow, store.clone());
    let id = format!("parent-{run}");
    FINISHED.store(0, Ordering::Relaxed);
    let shutdown = CancellationToken::new();
    let handles = workers(&store, &shutdown, |w| w.register(parent.clone()));
    let started = Instant::now();
    parent
        .enqueue(
            &id,
            Batch {
                items: n as u64,
                done: 0,
            },
        )
        .await
        .expect("enqueue");
    let mut children_done = None;
    let done = loop {
        if children_done.is_none() && FINISHED.load(Ordering::Relaxed) >= n {
            children_done = Some(started.elapsed());
        }
        if let Some(snapshot) = parent.state(&id).await.expect("state")
            && snapshot.status == Status::Completed
        {
            break snapshot.state.done;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let elapsed = started.elapsed();
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        let history = parent.history(&id).await.expect("history").len();
        println!(
            "    run {run}: children done after {:?}, parent completed after {elapsed:?}; {history} parent checkpoints kept",
            children_done.unwrap_or(elapsed)
        );
    }
    assert_eq!(done, n as u64, "every child completed once");
    assert_eq!(FINISHED.load(Ordering::Relaxed), n, "no child ran twice");
    shutdown.cancel();
    for handle in handles {
        handle.await.expect("join").expect("worker");
    }
    n as f64 / elapsed.as_secs_f64()
}

fn main() {
    let children = env("BENCH_CHILDREN", 1_000);
    let runs = env("BENCH_RUNS", 3);
    let server = support::Server::start(true);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let conninfo = server.create_database().await;
        println!(
            "W12 on PostgreSQL (fsync on): {children} children of 2 nodes, {WORKERS} workers in one process, {runs} runs (median)"
        );
        let mut alone = Vec::new();
        let mut mapped = Vec::new();
        for run in 0..runs {
            alone.push(sessions_alone(&conninfo, children, run).await);
            mapped.push(children_of_one_parent(&conninfo, children, run).await);
        }
        let (alone, mapped) = (median(alone), median(mapped));
        println!("  {children} sessions on their own (W8's shape)  {alone:>8.0} sessions/s");
        println!("  {children} children of one parent's map        {mapped:>8.0} children/s");
        println!("  ratio (children / sessions)                {:>8.2}", mapped / alone);
    });
}
