//! W11: the first page of sessions waiting at `review` among 100,000, answered by
//! `Store::sessions` from the store's index, on SQLite and on PostgreSQL: target ≤ 50 ms.
//!
//! 100,000 sessions of mixed statuses are written through `Store::append` (many appends at
//! once, so that the stores' group commit fills them quickly): 10 % waiting at `review`, 5 %
//! waiting at both `legal` and `finance`, 5 % failed, 5 % cancelled, 25 % completed, the rest
//! running, in an order unlike the order of their ids. Then each query is timed (the median
//! of `RUNS`, after one run that warms the store's statement and the page cache):
//!
//! - the first page (50) of `waiting_at("review")`, the W11 target;
//! - the first page of `status(Failed)`;
//! - a page of `waiting_at("review")` deep in, after a cursor half-way through the ids;
//! - the first page of `waiting_at("review")` of one workflow, not written for an hour;
//! - the first page without a condition.
//!
//! ```sh
//! cargo bench -p graph-runtime --bench sessions                     # SQLite
//! GRAPH_RUNTIME_BENCH_POSTGRES=1 cargo bench -p graph-runtime --features postgres --bench sessions
//! ```
//! (The second also runs on a throwaway PostgreSQL started from the system's binaries, as the
//! tests do, with `fsync` off: the queries read, and filling is quicker. The queries run
//! twice there: right after the fill, before the tables' first `ANALYZE`, and after one, as
//! autovacuum leaves them within a minute or so of a bulk load.)

#[cfg(feature = "postgres")]
#[path = "../../tests/support/postgres.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use graph_runtime::store::{Append, Checkpoint, SessionFilter, StatusKind, Store};
use graph_runtime::{SqliteOptions, Status, Synchronous};

const SESSIONS: usize = 100_000;
const PAGE: usize = 50;
const RUNS: usize = 21;
/// Appends in flight at once while filling.
const WRITERS: usize = 256;
const TARGET_MS: f64 = 50.0;

/// Session `i`'s id: ids are written in an order unlike theirs (7,919 is prime to 100,000).
fn id(i: usize) -> String {
    format!("order-{:06}", (i * 7_919) % SESSIONS)
}

/// Session `i`'s status and the nodes it waits at.
fn status(i: usize) -> (Status, &'static [&'static str]) {
    let waiting = |node: &str| Status::Waiting {
        node: node.to_owned(),
    };
    match i % 20 {
        0 | 1 => (waiting("review"), &[]),
        2 => (waiting("legal"), &["legal", "finance"]),
        3 => (Status::Failed, &[]),
        4 => (Status::Cancelled, &[]),
        5..=9 => (Status::Completed, &[]),
        _ => (Status::Running, &[]),
    }
}

/// Writes the 100,000 sessions, `WRITERS` appends at a time; returns the seconds it took.
async fn fill<S: Store>(store: Arc<S>, now: SystemTime) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in (writer..SESSIONS).step_by(WRITERS) {
                    let (status, waiting) = status(i);
                    let node = match &status {
                        Status::Waiting { node } => node.clone(),
                        _ => "work".to_owned(),
                    };
                    // Written over the last two hours, a few ms apart.
                    let written = now - Duration::from_millis(7_200_000 - (i as u64 * 72));
                    let checkpoint =
                        Checkpoint::new(1, node, status, vec![7; 200]).created_at(written);
                    let workflow = if i % 2 == 0 { "checkout" } else { "refund" };
                    let append = Append::new(None, checkpoint, None)
                        .workflow(workflow, 0x1234)
                        .waiting(waiting.iter().copied());
                    store.append(&id(i), append).await.expect("an append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a writer");
    }
    started.elapsed().as_secs_f64()
}

/// Times each query; prints the medians. Returns the W11 median, in ms.
async fn queries<S: Store>(store: &S, label: &str, now: SystemTime) -> f64 {
    let review = SessionFilter::new().waiting_at("review").limit(PAGE);
    let half = format!("order-{:06}", SESSIONS / 2);
    let cases = [
        ("waiting_at(review), first page (W11)", review.clone()),
        (
            "status(failed), first page",
            SessionFilter::new().status(StatusKind::Failed).limit(PAGE),
        ),
        (
            "waiting_at(review), a page after the middle id",
            review.clone().after(&half),
        ),
        (
            "waiting_at(review), checkout, not written for an hour",
            review
                .clone()
                .workflow("checkout")
                .updated_before(now - Duration::from_secs(3_600)),
        ),
        ("no condition, first page", SessionFilter::new().limit(PAGE)),
    ];
    let mut w11 = f64::NAN;
    for (index, (name, filter)) in cases.iter().enumerate() {
        let page = store.sessions(filter).await.expect("a page");
        assert_eq!(page.sessions.len(), PAGE, "{name}: a full page");
        assert!(page.next.is_some(), "{name}: more pages");
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            let page = store.sessions(filter).await.expect("a page");
            times.push(started.elapsed().as_secs_f64() * 1e3);
            assert_eq!(page.sessions.len(), PAGE);
        }
        times.sort_by(f64::total_cmp);
        let median = times[RUNS / 2];
        if index == 0 {
            w11 = median;
        }
        println!(
            "  {label:<10} {name:<55} median {median:>7.2} ms   (min {:.2}, max {:.2})",
            times[0],
            times[RUNS - 1]
        );
    }
    println!(
        "  {label:<10} W11: {w11:.2} ms for the first page of {PAGE} waiting at `review` among \
         {SESSIONS} sessions   target <= {TARGET_MS} ms: {}",
        if w11 <= TARGET_MS { "met" } else { "MISSED" }
    );
    w11
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let now = SystemTime::now();
    println!(
        "W11: Store::sessions over {SESSIONS} sessions (10% waiting at review), pages of {PAGE}, \
         median of {RUNS} runs"
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("w11.db");
    // `Normal`: filling is quicker; the queries only read.
    let store = Arc::new(
        SqliteOptions::new()
            .synchronous(Synchronous::Normal)
            .open(&path)
            .expect("a store file"),
    );
    rt.block_on(async {
        let seconds = fill(Arc::clone(&store), now).await;
        println!("  SQLite     filled in {seconds:.1} s");
        queries(&*store, "SQLite", now).await;
    });
    drop(store);
    drop(dir);

    #[cfg(feature = "postgres")]
    if std::env::var_os("GRAPH_RUNTIME_BENCH_POSTGRES").is_some() {
        let server = support::Server::start(false);
        rt.block_on(async {
            let conninfo = server.create_database().await;
            let store = Arc::new(
                graph_runtime::PostgresStore::connect(&conninfo)
                    .await
                    .expect("connect"),
            );
            let seconds = fill(Arc::clone(&store), now).await;
            println!("  PostgreSQL filled in {seconds:.1} s");
            queries(&*store, "PostgreSQL", now).await;
            // What autovacuum does within a minute or so of a bulk load: the planner then
            // knows how many rows each node has.
            let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                .await
                .expect("a raw connection");
            tokio::spawn(connection);
            client.batch_execute("ANALYZE").await.expect("ANALYZE");
            queries(&*store, "PG+ANALYZE", now).await;
        });
        drop(server);
    }
    #[cfg(feature = "postgres")]
    if std::env::var_os("GRAPH_RUNTIME_BENCH_POSTGRES").is_none() {
        println!(
            "\n(PostgreSQL: set GRAPH_RUNTIME_BENCH_POSTGRES=1 to run W11 on a throwaway server)"
        );
    }
}
