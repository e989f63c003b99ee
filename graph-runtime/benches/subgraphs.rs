//! W12 of the README's performance table: what a subgraph node costs over running the same
//! nodes inline, in the same run.
//!
//! - **`w12`**: a parent that loops over a subgraph node `sub` whose child runs two nodes
//!   (`a`, `b`, each `count += 1`), [`ROUNDS`] rounds per run (so [`ROUNDS`] child sessions),
//!   against a parent that loops over the same two nodes inline; MemoryStore,
//!   `CheckpointPolicy::EveryStep` and `Retention::KeepLast(1)` on both sides (the child runs
//!   with its parent's configuration), a 1 KiB state. Prints the median time per round of
//!   each and the cost per subgraph node in µs over inline (target ≤ 10 µs).
//! - **`w12-pg-workers`** (feature `postgres`, and `GRAPH_RUNTIME_BENCH_POSTGRES=1`): 1,000
//!   parent sessions with one subgraph node each (its child runs `a`, `b`), run by 4
//!   `Worker`s sharing one `PostgresStore` on a throwaway server with `fsync` on; children per
//!   second, against the same workers running 1,000 sessions of the same two nodes inline (a
//!   W8-style baseline: sessions per second).
//!
//! ```sh
//! cargo bench -p graph-runtime --bench subgraphs                     # w12
//! GRAPH_RUNTIME_BENCH_POSTGRES=1 cargo bench -p graph-runtime --features postgres --bench subgraphs
//! ```
//! `BENCH_RUNS` sets the number of measured runs (default 201 for `w12`, 3 for
//! `w12-pg-workers`); `BENCH_CASES=w12` or `BENCH_CASES=w12-pg-workers` runs one case only.

#[cfg(feature = "postgres")]
#[path = "../../tests/support/postgres.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Rounds per `w12` run: one child session per round on the subgraph side. Runs are short
/// (a few hundred µs) and many, so that a run the scheduler preempts (a shared machine) is an
/// outlier the median leaves out rather than a share of every run.
const ROUNDS: u64 = 100;

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Bench {
    pub count: u64,
    pub pad: String,
}

fn fresh() -> Bench {
    Bench {
        count: 0,
        pad: "x".repeat(1024),
    }
}

/// The child: two nodes.
#[workflow(state = Bench)]
pub mod pair {
    use super::*;

    edge!(START -> a);
    edge!(a -> b);
    edge!(b -> END);

    #[node]
    async fn a(s: &mut Bench) {
        s.count += 1;
    }

    #[node]
    async fn b(s: &mut Bench) {
        s.count += 1;
    }
}

/// The parent: `sub` runs the child, `ROUNDS` times.
#[workflow(state = Bench)]
pub mod nested {
    use super::*;

    edge!(START -> sub);
    edge!(sub -> sub | END);

    #[node(subgraph = pair)]
    async fn sub(s: &mut Bench, child: Child<pair::Workflow>) -> Result<sub::Next, NodeError> {
        *s = child.run(s.clone()).await?;
        Ok(if s.count < 2 * ROUNDS {
            sub::Next::Sub
        } else {
            sub::Next::End
        })
    }
}

/// The same two nodes inline, `ROUNDS` times.
#[workflow(state = Bench)]
pub mod inline {
    use super::*;

    edge!(START -> a);
    edge!(a -> b);
    edge!(b -> a | END);

    #[node]
    async fn a(s: &mut Bench) {
        s.count += 1;
    }

    #[node]
    async fn b(s: &mut Bench) -> b::Next {
        s.count += 1;
        if s.count < 2 * ROUNDS {
            b::Next::A
        } else {
            b::Next::End
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One run of `ROUNDS` rounds on a fresh MemoryStore; the time it took.
fn run_once<W>(rt: &tokio::runtime::Runtime, workflow: W, session: &str) -> Duration
where
    W: graph_runtime::Workflow<State = Bench>,
{
    let store = MemoryStore::new();
    let runner = Runner::new(workflow, store.clone())
        .checkpoint_policy(CheckpointPolicy::EveryStep)
        .retention(Retention::KeepLast(1));
    let start = Instant::now();
    let out = rt.block_on(runner.start(session, fresh())).expect("run");
    let elapsed = start.elapsed();
    assert_eq!(black_box(out.into_state()).count, 2 * ROUNDS);
    drop(runner);
    drop(store); // freeing the sessions is outside the timed region, on both sides
    elapsed
}

fn w12(runs: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // One warm-up each, then the two alternately, so machine noise hits both alike.
    run_once(&rt, nested::Workflow, "warm-sub");
    run_once(&rt, inline::Workflow, "warm-inline");
    let (mut sub, mut inl) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let per_round = |d: Duration| d.as_nanos() as f64 / ROUNDS as f64;
        sub.push(per_round(run_once(&rt, nested::Workflow, &format!("s{i}"))));
        inl.push(per_round(run_once(&rt, inline::Workflow, &format!("i{i}"))));
    }
    let (sub, inl) = (median(sub), median(inl));
    let over_us = (sub - inl) / 1000.0;
    let verdict = if over_us <= 10.0 {
        "ok"
    } else {
        "MISSES TARGET"
    };
    println!(
        "W12 (a subgraph node whose child runs 2 nodes, {ROUNDS} rounds per run, MemoryStore, EveryStep, KeepLast(1), median of {runs} runs, current-thread tokio)"
    );
    println!(
        "  subgraph node {:8.2} us/round | same 2 nodes inline {:8.2} us/round | cost per subgraph node {over_us:6.2} us (target <= 10 us) {verdict}",
        sub / 1000.0,
        inl / 1000.0
    );
}

#[cfg(feature = "postgres")]
mod pg_workers {
    //! 1,000 parent sessions with one subgraph node each, across 4 workers, against the same
    //! workers running 1,000 sessions of the child's two nodes inline.

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use graph_runtime::prelude::*;
    use graph_runtime::{CancellationToken, PostgresStore, Worker};

    use super::{Bench, fresh, pair};

    pub const SESSIONS: usize = 1_000;
    pub const WORKERS: usize = 4;
    /// Sessions each worker runs at once.
    pub const CONCURRENCY: usize = 64;

    /// Sessions whose last node ran (in this process).
    static DONE: AtomicUsize = AtomicUsize::new(0);

    /// A parent of one subgraph node.
    #[workflow(state = Bench)]
    pub mod one_child {
        use super::*;

        edge!(START -> sub);
        edge!(sub -> END);

        #[node(subgraph = pair)]
        async fn sub(s: &mut Bench, child: Child<pair::Workflow>) -> Result<(), NodeError> {
            *s = child.run(s.clone()).await?;
            DONE.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }

    /// The child's two nodes inline.
    #[workflow(state = Bench)]
    pub mod two_nodes {
        use super::*;

        edge!(START -> a);
        edge!(a -> b);
        edge!(b -> END);

        #[node]
        async fn a(s: &mut Bench) {
            s.count += 1;
        }

        #[node]
        async fn b(s: &mut Bench) {
            s.count += 1;
            DONE.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sessions per second of 4 workers sharing one `PostgresStore` running `SESSIONS`
    /// enqueued sessions of `workflow` to their end, from the workers' start until the last
    /// session's last node ran.
    pub async fn run<W>(conninfo: &str, workflow: W) -> f64
    where
        W: graph_runtime::Workflow<State = Bench> + Clone,
    {
        let store = PostgresStore::connect(conninfo).await.expect("connect");
        let runner = Runner::new(workflow.clone(), store.clone());
        for i in 0..SESSIONS {
            runner
                .enqueue(&format!("s{i}"), fresh())
                .await
                .expect("enqueue");
        }
        DONE.store(0, Ordering::Relaxed);
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let worker = Worker::new(store.clone())
                    .register(Runner::new(workflow.clone(), store.clone()))
                    .concurrency(CONCURRENCY)
                    .owner(format!("w12-{w}"));
                tokio::spawn(worker.run(shutdown.clone()))
            })
            .collect();
        while DONE.load(Ordering::Relaxed) < SESSIONS {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let elapsed = started.elapsed();
        shutdown.cancel();
        for task in tasks {
            task.await.expect("task").expect("worker");
        }
        SESSIONS as f64 / elapsed.as_secs_f64()
    }
}

#[cfg(feature = "postgres")]
fn w12_pg_workers(runs: usize) {
    use pg_workers::{CONCURRENCY, SESSIONS, WORKERS, one_child, run, two_nodes};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = support::Server::start(true);
    let (mut children, mut inline) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..runs {
            children.push(run(&server.create_database().await, one_child::Workflow).await);
            inline.push(run(&server.create_database().await, two_nodes::Workflow).await);
        }
    });
    drop(server);
    let (children, inline) = (median(children), median(inline));
    println!(
        "\nW12 on PostgreSQL (fsync=on, synchronous_commit=on): {SESSIONS} sessions, {WORKERS} workers sharing one PostgresStore, concurrency {CONCURRENCY} each, median of {runs} runs"
    );
    println!("  1 subgraph node per session (child: a, b)   {children:>8.0} children/s");
    println!(
        "  the same 2 nodes inline                     {inline:>8.0} sessions/s   children/s = {:.2}x inline",
        children / inline
    );
}

fn main() {
    let runs = |default: usize| {
        std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let cases = std::env::var("BENCH_CASES").unwrap_or_else(|_| "w12,w12-pg-workers".to_owned());
    // `w12` alone, not as the prefix of `w12-pg-workers`.
    if cases.split(',').any(|c| c.trim() == "w12") {
        w12(runs(201));
    }
    let pg = cases.split(',').any(|c| c.trim() == "w12-pg-workers");
    #[cfg(feature = "postgres")]
    if pg && std::env::var_os("GRAPH_RUNTIME_BENCH_POSTGRES").is_some() {
        w12_pg_workers(runs(3));
    } else if pg {
        println!(
            "\n(w12-pg-workers: set GRAPH_RUNTIME_BENCH_POSTGRES=1 to run it on a throwaway PostgreSQL)"
        );
    }
    #[cfg(not(feature = "postgres"))]
    if pg {
        println!(
            "\n(w12-pg-workers: needs `--features postgres` and GRAPH_RUNTIME_BENCH_POSTGRES=1)"
        );
    }
}
