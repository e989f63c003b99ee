//! `PostgresStore` against a hand-written tokio-postgres loop, in the same run, on a throwaway
//! server started with PostgreSQL's default durability (`fsync`, `synchronous_commit` on):
//!
//! - one session, a checkpoint after every step (a 1 KiB state), through a `Runner`, with
//!   appends batched and not, against a loop of one compare-and-swap `INSERT` per step;
//! - 100 sessions at once, durable every step, the same three ways (the hand-written side
//!   uses a pool of as many connections as the store).
//!
//! Run: `cargo bench -p graph-runtime --features postgres --bench postgres` (needs the
//! PostgreSQL server binaries, as the tests do).

#[path = "../../tests/support/postgres.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::{Manager, Pool};
use graph_runtime::prelude::*;
use graph_runtime::{PostgresOptions, PostgresStore};
use serde::{Deserialize, Serialize};

const SINGLE_STEPS: u64 = 400;
const GROUP_SESSIONS: usize = 100;
const GROUP_STEPS: u64 = 30;
const POOL: usize = 16;
const RUNS: usize = 3;

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

macro_rules! counting_workflow {
    ($module:ident, $steps:expr) => {
        #[workflow(state = Bench)]
        pub mod $module {
            use super::*;

            edge!(START -> a);
            edge!(a -> a | END);

            #[node]
            async fn a(s: &mut Bench) -> a::Next {
                s.count += 1;
                if s.count < $steps { a::Next::A } else { a::Next::End }
            }
        }
    };
}

counting_workflow!(single, SINGLE_STEPS);
counting_workflow!(group, GROUP_STEPS);

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

async fn store(conninfo: &str, batch: bool) -> PostgresStore {
    PostgresOptions::new()
        .pool_size(POOL)
        .batch_appends(batch)
        .connect(conninfo)
        .await
        .expect("connect")
}

/// The hand-written side: the compare-and-swap append at its simplest.
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

async fn hand_session(pool: &Pool, session: &str, steps: u64) {
    let config = bincode::config::standard();
    let mut state = fresh();
    for seq in 0..steps as i64 {
        state.count += 1;
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

/// The store alone, without the runner: the same bytes the hand-written loop writes.
async fn store_session(store: &PostgresStore, session: &str, steps: u64) {
    use graph_runtime::store::{Append, Checkpoint, Store as _};
    let config = bincode::config::standard();
    let mut state = fresh();
    for seq in 0..steps {
        state.count += 1;
        let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
        let checkpoint = Checkpoint::new(seq, "a", graph_runtime::Status::Running, bytes);
        let expected = seq.checked_sub(1);
        let append = Append::new(expected, checkpoint, None);
        store.append(session, append).await.expect("append");
    }
}

async fn hand_pool(conninfo: &str) -> Pool {
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
    pool
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `GRAPH_RUNTIME_BENCH_FSYNC=off`: the CPU and round-trip cost alone, without the disk's
    // flush latency (which dominates, and varies on a shared machine).
    let fsync = std::env::var("GRAPH_RUNTIME_BENCH_FSYNC").map_or(true, |v| v != "off");
    let server = support::Server::start(fsync);
    let durability = if fsync { "on" } else { "off" };
    println!(
        "PostgreSQL with fsync={durability}, synchronous_commit={durability}; median of {RUNS} runs"
    );

    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut record = |name: &str, rate: f64| match rows.iter_mut().find(|(n, _)| n == name) {
        Some((_, rates)) => rates.push(rate),
        None => rows.push((name.to_owned(), vec![rate])),
    };
    for _ in 0..RUNS {
        rt.block_on(async {
            for batch in [true, false] {
                let conninfo = server.create_database().await;
                let runner = Runner::new(single::Workflow, store(&conninfo, batch).await);
                let started = Instant::now();
                let out = runner.start("one", fresh()).await.expect("run");
                let rate = SINGLE_STEPS as f64 / started.elapsed().as_secs_f64();
                assert_eq!(out.into_state().count, SINGLE_STEPS);
                record(&format!("1 session,   Runner, batched={batch:<5}"), rate);
            }
            for batch in [true, false] {
                let store = store(&server.create_database().await, batch).await;
                let started = Instant::now();
                store_session(&store, "one", SINGLE_STEPS).await;
                let rate = SINGLE_STEPS as f64 / started.elapsed().as_secs_f64();
                record(
                    &format!("1 session,   Store::append, batched={batch:<5}"),
                    rate,
                );
            }
            let pool = hand_pool(&server.create_database().await).await;
            let started = Instant::now();
            hand_session(&pool, "one", SINGLE_STEPS).await;
            let rate = SINGLE_STEPS as f64 / started.elapsed().as_secs_f64();
            record("1 session,   hand-written tokio-postgres", rate);

            for batch in [true, false] {
                let conninfo = server.create_database().await;
                let runner = Runner::new(group::Workflow, store(&conninfo, batch).await);
                let started = Instant::now();
                let tasks: Vec<_> = (0..GROUP_SESSIONS)
                    .map(|i| {
                        let runner = runner.clone();
                        tokio::spawn(async move { runner.start(&format!("s{i}"), fresh()).await })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task").expect("run");
                }
                let steps = GROUP_SESSIONS as f64 * GROUP_STEPS as f64;
                let rate = steps / started.elapsed().as_secs_f64();
                record(&format!("100 sessions, Runner, batched={batch:<5}"), rate);
            }
            let pool = Arc::new(hand_pool(&server.create_database().await).await);
            let started = Instant::now();
            let tasks: Vec<_> = (0..GROUP_SESSIONS)
                .map(|i| {
                    let pool = Arc::clone(&pool);
                    tokio::spawn(
                        async move { hand_session(&pool, &format!("s{i}"), GROUP_STEPS).await },
                    )
                })
                .collect();
            for task in tasks {
                task.await.expect("task");
            }
            let steps = GROUP_SESSIONS as f64 * GROUP_STEPS as f64;
            record(
                "100 sessions, hand-written tokio-postgres",
                steps / started.elapsed().as_secs_f64(),
            );
        });
    }
    let single_hand = rows
        .iter()
        .find(|(name, _)| name.starts_with("1 session,   hand"))
        .map(|(_, rates)| median(rates.clone()));
    for (name, rates) in rows {
        let rate = median(rates);
        let ratio = match single_hand {
            Some(hand) if name.starts_with("1 session") => format!("{:5.2}x hand", rate / hand),
            _ => String::new(),
        };
        println!(
            "{name:<45} {rate:9.0} steps/s ({:8.1} us/step) {ratio}",
            1e6 / rate
        );
    }
    drop(server);
}
