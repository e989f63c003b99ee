//! Workers: takeover time after a SIGKILL (W10), and, on PostgreSQL, durable steps per second
//! of 100 sessions across 4 workers against a hand-written tokio-postgres loop (W8).
//!
//! **W10.** A child process (this binary, re-executed) runs a worker that claims `SESSIONS`
//! sessions and sits in the middle of each one's node; a second worker (in this process, with
//! the default 1 s poll) waits. The child is SIGKILLed, and the time from the kill until each
//! session has been taken over and completed by the second worker is measured, for several
//! lease ttls. The lease was renewed at most ttl/3 before the kill, so it expires between
//! 2/3·ttl and ttl after it; the target is a takeover within `lease_ttl + 1 s`.
//!
//! **W8** (PostgreSQL only): 100 sessions × 30 durable steps (a 1 KiB state), run by 4 workers
//! in this process (sharing one `PostgresStore`, and each with its own as 4 processes), from the
//! workers' start until the last session completes; against 100 concurrent hand-written loops
//! of one compare-and-swap `INSERT` per step on a pool of 16 connections (the loop of
//! `benches/postgres.rs`). The server runs with `fsync` and `synchronous_commit` on.
//!
//! ```sh
//! cargo bench -p graph-runtime --bench workers                      # W10 on SQLite
//! GRAPH_RUNTIME_BENCH_POSTGRES=1 cargo bench -p graph-runtime --features postgres --bench workers
//! ```
//! (The second also runs W10 and W8 on a throwaway PostgreSQL started from the system's
//! binaries, as the tests do.)

#[cfg(feature = "postgres")]
#[path = "../../tests/support/postgres.rs"]
mod support;

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{CancellationToken, Status, Worker};
use serde::{Deserialize, Serialize};

/// Set in the child: `sqlite:<path>` or `postgres:<conninfo>`, then the lease ttl in ms.
const CHILD_ENV: &str = "GRAPH_RUNTIME_W10_CHILD";
const SESSIONS: usize = 20;
const TTLS_MS: [u64; 3] = [1_000, 3_000, 10_000];
/// W8 runs (the median is reported).
#[cfg(feature = "postgres")]
const RUNS: usize = 5;

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Held {
    pub done: bool,
}

#[workflow(state = Held)]
pub mod held {
    use super::*;

    edge!(START -> work);
    edge!(work -> END);

    /// In the child, announces itself and never ends (the child is killed mid-run); elsewhere
    /// it ends at once.
    #[node]
    async fn work(h: &mut Held, ctx: &NodeCtx) {
        if std::env::var_os(CHILD_ENV).is_some() {
            println!("running {}", ctx.session_id());
            std::future::pending::<()>().await;
        }
        h.done = true;
    }
}

/// A store the child or the parent opens from a spec.
enum AnyStore {
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(graph_runtime::PostgresStore),
}

async fn open(spec: &str) -> AnyStore {
    #[cfg(feature = "sqlite")]
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return AnyStore::Sqlite(SqliteStore::open(path).expect("open the SQLite file"));
    }
    #[cfg(feature = "postgres")]
    if let Some(conninfo) = spec.strip_prefix("postgres:") {
        return AnyStore::Postgres(
            graph_runtime::PostgresStore::connect(conninfo)
                .await
                .expect("connect"),
        );
    }
    panic!("unknown store spec {spec:?}")
}

fn worker<S: Store + Clone>(store: S, owner: &str, ttl: Duration, concurrency: usize) -> Worker<S> {
    Worker::new(store.clone())
        .register(Runner::new(held::Workflow, store))
        .concurrency(concurrency)
        .lease_ttl(ttl)
        .owner(owner)
}

/// The child: a worker that holds every session mid-run until it is killed.
fn child(spec: &str) {
    let (spec, ttl) = spec.rsplit_once('|').expect("spec|ttl_ms");
    let ttl = Duration::from_millis(ttl.parse().expect("ttl in ms"));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let shutdown = CancellationToken::new();
        let result = match open(spec).await {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite(s) => worker(s, "victim", ttl, SESSIONS).run(shutdown).await,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => worker(s, "victim", ttl, SESSIONS).run(shutdown).await,
        };
        result.expect("the victim worker");
    });
}

/// One W10 measurement: the takeover time of each session after the kill, sorted.
async fn takeover<S: Store + Clone>(
    store: S,
    spec: &str,
    ttl: Duration,
    round: usize,
) -> Vec<Duration> {
    let runner = Runner::new(held::Workflow, store.clone());
    let ids: Vec<String> = (0..SESSIONS).map(|i| format!("w10-{round}-{i}")).collect();
    for id in &ids {
        runner.enqueue(id, Held::default()).await.expect("enqueue");
    }
    let mut victim = Command::new(std::env::current_exe().expect("this binary"))
        .env(CHILD_ENV, format!("{spec}|{}", ttl.as_millis()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the victim");
    // Wait until the victim is in the middle of every session.
    let stdout = victim.stdout.take().expect("stdout");
    let running = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("running "))
            .take(SESSIONS)
            .count()
    })
    .await
    .expect("reader");
    assert_eq!(running, SESSIONS, "the victim did not start every session");
    // The survivor, with the default 1 s poll, already looking for work.
    let shutdown = CancellationToken::new();
    let survivor =
        tokio::spawn(worker(store.clone(), "survivor", ttl, SESSIONS).run(shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    victim.kill().expect("SIGKILL");
    let killed = Instant::now();
    victim.wait().expect("reap");
    let mut taken: Vec<Option<Duration>> = vec![None; SESSIONS];
    while taken.iter().any(Option::is_none) {
        for (i, id) in ids.iter().enumerate() {
            if taken[i].is_none()
                && runner
                    .state(id)
                    .await
                    .expect("state")
                    .expect("session")
                    .status
                    == Status::Completed
            {
                taken[i] = Some(killed.elapsed());
            }
        }
        assert!(
            killed.elapsed() < ttl * 3 + Duration::from_secs(30),
            "no takeover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    shutdown.cancel();
    survivor.await.expect("task").expect("survivor");
    let mut taken: Vec<Duration> = taken.into_iter().flatten().collect();
    taken.sort();
    taken
}

async fn w10<S: Store + Clone>(name: &str, store: S, spec: &str) {
    println!(
        "W10 on {name}: {SESSIONS} sessions held mid-run by a worker process that is SIGKILLed; a second worker (default 1 s poll) takes them over"
    );
    println!("  lease_ttl   takeover median / max   max - ttl   target (<= ttl + 1 s)");
    for (round, ttl_ms) in TTLS_MS.into_iter().enumerate() {
        let ttl = Duration::from_millis(ttl_ms);
        let taken = takeover(store.clone(), spec, ttl, round).await;
        let (median, max) = (taken[taken.len() / 2], taken[taken.len() - 1]);
        let over = max.as_secs_f64() - ttl.as_secs_f64();
        let verdict = if max <= ttl + Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "  {:>7.1} s   {:>7.3} s / {:>7.3} s   {over:>+7.3} s   {verdict}",
            ttl.as_secs_f64(),
            median.as_secs_f64(),
            max.as_secs_f64()
        );
    }
}

#[cfg(feature = "postgres")]
mod w8 {
    //! 100 sessions × 30 durable steps across 4 workers, against hand-written tokio-postgres.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use deadpool_postgres::{Manager, Pool};
    use graph_runtime::prelude::*;
    use graph_runtime::{CancellationToken, PostgresStore, Worker};
    use serde::{Deserialize, Serialize};

    pub const SESSIONS: usize = 100;
    pub const STEPS: u64 = 30;
    const WORKERS: usize = 4;
    const POOL: usize = 16;

    /// Sessions that reached their last step (in this process).
    static DONE: AtomicUsize = AtomicUsize::new(0);

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

    #[workflow(state = Bench)]
    pub mod counting {
        use super::*;

        edge!(START -> a);
        edge!(a -> a | END);

        #[node]
        async fn a(s: &mut Bench) -> a::Next {
            s.count += 1;
            if s.count < STEPS {
                a::Next::A
            } else {
                DONE.fetch_add(1, Ordering::Relaxed);
                a::Next::End
            }
        }
    }

    /// Steps per second of 4 workers running 100 enqueued sessions to their end, sharing
    /// one `PostgresStore` (one pool, one batch writer) or each with its own (as 4 processes).
    pub async fn workers(conninfo: &str, shared: bool) -> f64 {
        let mut stores: Vec<PostgresStore> = Vec::new();
        for w in 0..WORKERS {
            if shared && w > 0 {
                stores.push(stores[0].clone());
            } else {
                stores.push(PostgresStore::connect(conninfo).await.expect("connect"));
            }
        }
        let runner = Runner::new(counting::Workflow, stores[0].clone());
        for i in 0..SESSIONS {
            runner
                .enqueue(&format!("s{i}"), fresh())
                .await
                .expect("enqueue");
        }
        DONE.store(0, Ordering::Relaxed);
        let shutdown = CancellationToken::new();
        let started = Instant::now();
        let tasks: Vec<_> = stores
            .into_iter()
            .enumerate()
            .map(|(w, store)| {
                let worker = Worker::new(store.clone())
                    .register(Runner::new(counting::Workflow, store))
                    .concurrency(SESSIONS / WORKERS) // so that all four take a share
                    .owner(format!("w8-{w}"));
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
        (SESSIONS as f64 * STEPS as f64) / elapsed.as_secs_f64()
    }

    const HAND_SCHEMA: &str = "
        CREATE TABLE hand_sessions (name text PRIMARY KEY, head bigint NOT NULL);
        CREATE TABLE hand_checkpoints (session text, seq bigint, bytes bytea,
                                       PRIMARY KEY (session, seq));";
    const HAND_CREATE: &str = "
        WITH s AS (INSERT INTO hand_sessions VALUES ($1::text, $2::bigint) ON CONFLICT DO NOTHING RETURNING name)
        INSERT INTO hand_checkpoints SELECT name, $2::bigint, $3::bytea FROM s";
    const HAND_APPEND: &str = "
        WITH s AS (UPDATE hand_sessions SET head = $2::bigint WHERE name = $1::text AND head = $2::bigint - 1
                   RETURNING name)
        INSERT INTO hand_checkpoints SELECT name, $2::bigint, $3::bytea FROM s";

    async fn hand_session(pool: &Pool, session: &str) {
        let config = bincode::config::standard();
        let mut state = fresh();
        // seq 0 is the enqueue, then one append per step, as the runner writes.
        for seq in 0..=STEPS as i64 {
            if seq > 0 {
                state.count += 1;
            }
            let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
            let client = pool.get().await.expect("a connection");
            let sql = if seq == 0 { HAND_CREATE } else { HAND_APPEND };
            let statement = client.prepare_cached(sql).await.expect("prepare");
            let written = client
                .execute(&statement, &[&session, &seq, &bytes])
                .await
                .expect("append");
            assert_eq!(written, 1, "hand-written append {seq} of {session}");
        }
    }

    /// Steps per second of 100 concurrent hand-written loops on one pool.
    pub async fn hand_written(conninfo: &str) -> f64 {
        let config: tokio_postgres::Config = conninfo.parse().expect("conninfo");
        let pool = Pool::builder(Manager::new(config, tokio_postgres::NoTls))
            .max_size(POOL)
            .build()
            .expect("pool");
        pool.get()
            .await
            .expect("a connection")
            .batch_execute(HAND_SCHEMA)
            .await
            .expect("schema");
        let pool = Arc::new(pool);
        let started = Instant::now();
        let tasks: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let pool = Arc::clone(&pool);
                tokio::spawn(async move { hand_session(&pool, &format!("s{i}")).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        (SESSIONS as f64 * STEPS as f64) / started.elapsed().as_secs_f64()
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    #[cfg(feature = "sqlite")]
    {
        let dir = std::env::temp_dir().join(format!("graph-runtime-w10-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let path = dir.join("w10.db");
        let store = SqliteStore::open(&path).expect("open");
        rt.block_on(w10("SQLite", store, &format!("sqlite:{}", path.display())));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(feature = "postgres")]
    if std::env::var_os("GRAPH_RUNTIME_BENCH_POSTGRES").is_some() {
        let server = support::Server::start(true);
        rt.block_on(async {
            let conninfo = server.create_database().await;
            let store = graph_runtime::PostgresStore::connect(&conninfo)
                .await
                .expect("connect");
            w10("PostgreSQL", store, &format!("postgres:{conninfo}")).await;

            println!(
                "\nW8 on PostgreSQL (fsync=on, synchronous_commit=on): {} sessions x {} durable steps, median of {RUNS}",
                w8::SESSIONS,
                w8::STEPS
            );
            let (mut shared, mut own, mut hand) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..RUNS {
                shared.push(w8::workers(&server.create_database().await, true).await);
                own.push(w8::workers(&server.create_database().await, false).await);
                hand.push(w8::hand_written(&server.create_database().await).await);
            }
            let median = |mut xs: Vec<f64>| {
                xs.sort_by(f64::total_cmp);
                xs[xs.len() / 2]
            };
            let (shared, own, hand) = (median(shared), median(own), median(hand));
            println!("  hand-written tokio-postgres, pool of 16             {hand:>8.0} steps/s");
            println!("  4 workers sharing one PostgresStore                  {shared:>8.0} steps/s   {:.2}x hand-written   target >= 10,000", shared / hand);
            println!("  4 workers, one PostgresStore each (as 4 processes)   {own:>8.0} steps/s   {:.2}x hand-written", own / hand);
        });
        drop(server);
    }
    #[cfg(feature = "postgres")]
    if std::env::var_os("GRAPH_RUNTIME_BENCH_POSTGRES").is_none() {
        println!(
            "\n(PostgreSQL: set GRAPH_RUNTIME_BENCH_POSTGRES=1 to run W10 and W8 on a throwaway server)"
        );
    }
}
