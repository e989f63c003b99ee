//! What only PostgreSQL can be asked of `PostgresStore`: bad connection strings and servers
//! that do not answer, schema versions, several stores on one database, a server restarted
//! under a running store, a pool smaller than its callers, damaged rows, and a `#[workflow]`
//! run end to end. The generic store behaviours are in tests/conformance.rs.
//!
//! Each test gets a database of its own on one throwaway server per test binary
//! (tests/support/postgres.rs); the restart test starts a private server.

#[path = "support/postgres.rs"]
mod support;

#[path = "support/postgres_v1.rs"]
mod postgres_v1;

#[path = "support/postgres_v2.rs"]
mod postgres_v2;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use graph_runtime::prelude::*;
use graph_runtime::store::conformance::helpers::session_ids;
use graph_runtime::store::{
    Append, Audit, AuditKind, Checkpoint, Claim, GraphVersion, SessionFilter, Store, VersionCount,
    Wake,
};
use graph_runtime::{Error, PostgresOptions, PostgresStore, Retention, Status};
use serde::{Deserialize, Serialize};

fn checkpoint(seq: u64, depends_on: Option<u64>) -> Checkpoint {
    let checkpoint = Checkpoint::new(
        seq,
        "step",
        Status::Running,
        format!("checkpoint {seq}").into_bytes(),
    )
    .created_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seq % 1000));
    match depends_on {
        Some(base) => checkpoint.depends_on(base),
        None => checkpoint,
    }
}

async fn seqs(store: &PostgresStore, session: &str) -> Vec<u64> {
    let list = store.list(session).await.expect("list");
    list.iter().map(|m| m.seq).collect()
}

#[track_caller]
fn assert_store_error<T: std::fmt::Debug>(result: Result<T, Error>, needles: &[&str]) {
    match result {
        Err(Error::Store(e)) => {
            let message = e.to_string();
            for needle in needles {
                assert!(message.contains(needle), "`{needle}` not in: {message}");
            }
        }
        other => panic!("expected Error::Store, got {other:?}"),
    }
}

/// A raw connection to a test database, to look at or damage the tables directly.
async fn raw(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .expect("a raw connection");
    tokio::spawn(connection);
    client
}

/// Bounds a call that must fail fast, so that a hang fails the test instead of stalling it.
async fn bounded<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .expect("the call returned (it must not hang)")
}

#[tokio::test]
async fn an_unparsable_connection_string_is_a_clear_store_error() {
    let result = PostgresStore::connect("host=localhost port=not-a-port").await;
    assert_store_error(result, &["connection string is invalid"]);
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_store_error_naming_it() {
    let missing = std::env::temp_dir().join("graph-runtime-no-server-here");
    let conninfo = format!("host={} dbname=app user=app", missing.display());
    let result = bounded(PostgresStore::connect(&conninfo)).await;
    assert_store_error(
        result,
        &["could not connect", "graph-runtime-no-server-here"],
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_instead_of_hanging() {
    // Accepts the TCP connection and then says nothing, as a hung server or a black-holing
    // proxy would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let result = bounded(
        PostgresOptions::new()
            .connect_timeout(Duration::from_millis(300))
            .connect(&format!("host=127.0.0.1 port={port} user=app dbname=app")),
    )
    .await;
    assert_store_error(result, &["connect timeout (300 ms)", "127.0.0.1"]);
    silent.abort();
}

#[tokio::test]
async fn a_schema_from_a_newer_release_is_refused_naming_both_versions() {
    let conninfo = support::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    store
        .append("s", Append::new(None, checkpoint(1, None), None))
        .await
        .unwrap();
    raw(&conninfo)
        .await
        .batch_execute("UPDATE graph_runtime.graph_runtime_meta SET schema_version = 7")
        .await
        .unwrap();
    let refused = PostgresStore::connect(&conninfo).await;
    assert_store_error(
        refused,
        &["schema version 7", "newer release", "reads version 5"],
    );
}

#[tokio::test]
async fn stores_in_separate_schemas_of_one_database_do_not_see_each_other() {
    let conninfo = support::database().await;
    let orders = PostgresOptions::new().schema("orders");
    let a = orders.connect(&conninfo).await.unwrap();
    let b = PostgresOptions::new()
        .schema("Refunds \"quoted\"")
        .connect(&conninfo)
        .await
        .unwrap();
    assert_eq!(a.schema(), "orders");
    a.append("s", Append::new(None, checkpoint(1, None), None))
        .await
        .unwrap();
    assert_eq!(b.latest("s").await.unwrap(), None);
    assert_eq!(session_ids(&b).await, Vec::<String>::new());
    let again = orders.connect(&conninfo).await.unwrap();
    assert_eq!(session_ids(&again).await, ["s"]);
}

#[tokio::test]
async fn stores_connecting_at_once_to_a_new_database_create_the_schema_once() {
    let conninfo = support::database().await;
    let connects: Vec<_> = (0..6)
        .map(|_| {
            let conninfo = conninfo.clone();
            tokio::spawn(async move { PostgresStore::connect(&conninfo).await })
        })
        .collect();
    for connect in connects {
        connect
            .await
            .unwrap()
            .expect("every racing connect succeeds");
    }
}

/// Two stores (two pools, two batchers; one batching, one not) race to extend one session:
/// one gapless chain, each sequence number won once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_racing_on_one_session_make_one_gapless_chain() {
    const LENGTH: u64 = 80;
    let conninfo = support::database().await;
    let stores = [
        Arc::new(PostgresStore::connect(&conninfo).await.unwrap()),
        Arc::new(
            PostgresOptions::new()
                .batch_appends(false)
                .connect(&conninfo)
                .await
                .unwrap(),
        ),
    ];
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = Arc::clone(&stores[task % 2]);
            tokio::spawn(async move {
                let mut won = Vec::new();
                loop {
                    let latest = store.latest("contested").await.unwrap().map(|c| c.seq);
                    let next = latest.map_or(1, |seq| seq + 1);
                    if next > LENGTH {
                        return won;
                    }
                    // Every few steps keep only some, so retention races with appends too.
                    let keep = (next % 7 == 0).then_some(100);
                    let append = Append::new(latest, checkpoint(next, None), keep);
                    match store.append("contested", append).await {
                        Ok(()) => won.push(next),
                        Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                        Err(e) => panic!("task {task}: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut wins = Vec::new();
    for task in tasks {
        wins.extend(task.await.unwrap());
    }
    wins.sort_unstable();
    let chain: Vec<u64> = (1..=LENGTH).collect();
    assert_eq!(wins, chain);
    assert_eq!(seqs(&stores[0], "contested").await, chain);
}

#[tokio::test]
async fn retention_keeps_what_kept_checkpoints_depend_on() {
    let store = PostgresStore::connect(&support::database().await)
        .await
        .unwrap();
    // 1 full, 2..=3 deltas on 1, 4 full, 5..=6 deltas on 4.
    let depends = [None, Some(1), Some(1), None, Some(4), Some(4)];
    for (i, depends_on) in depends.iter().enumerate() {
        let seq = i as u64 + 1;
        let expected = seq.checked_sub(1).filter(|&s| s > 0);
        store
            .append(
                "s",
                Append::new(expected, checkpoint(seq, *depends_on), Some(2)),
            )
            .await
            .unwrap();
    }
    // Keeping 5 and 6 keeps 4, which they depend on, and nothing older.
    assert_eq!(seqs(&store, "s").await, [4, 5, 6]);
    assert_eq!(
        store.get("s", 5).await.unwrap(),
        Some(checkpoint(5, Some(4)))
    );
    // The chain a delta needs, in one query.
    let chain = store.chain("s", 4, 6).await.unwrap();
    assert_eq!(chain.iter().map(|c| c.seq).collect::<Vec<_>>(), [4, 5, 6]);
    assert_eq!(store.chain("s", 5, u64::MAX).await.unwrap().len(), 2);
    assert!(
        store
            .chain("s", u64::MAX, u64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    // A delta on 4 written with keep_last 1 keeps everything from 4 on.
    store
        .append("s", Append::new(Some(6), checkpoint(7, Some(4)), Some(1)))
        .await
        .unwrap();
    assert_eq!(seqs(&store, "s").await, [4, 5, 6, 7]);
    // Prune follows the same rule.
    assert_eq!(store.prune("s", 1).await.unwrap(), 0);
    store
        .append("s", Append::new(Some(7), checkpoint(8, Some(6)), None))
        .await
        .unwrap();
    assert_eq!(store.prune("s", 1).await.unwrap(), 2);
    assert_eq!(seqs(&store, "s").await, [6, 7, 8]);
}

#[tokio::test]
async fn what_postgres_cannot_hold_is_a_store_error_of_that_append_alone() {
    let store = PostgresStore::connect(&support::database().await)
        .await
        .unwrap();
    let huge = i64::MAX as u64 + 1;
    let result = store
        .append("s", Append::new(None, checkpoint(huge, None), None))
        .await;
    assert_store_error(result, &["largest integer"]);
    let result = store
        .append("s", Append::new(None, checkpoint(1, Some(huge)), None))
        .await;
    assert_store_error(result, &["depends_on"]);
    let mut nul_node = checkpoint(1, None);
    nul_node.node = Cow::Borrowed("no\0de");
    let result = store.append("s", Append::new(None, nul_node, None)).await;
    assert_store_error(result, &["contains NUL"]);
    assert!(session_ids(&store).await.is_empty());
}

#[tokio::test]
async fn damaged_rows_give_corrupt_errors_not_panics() {
    let conninfo = support::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    for seq in 1..=5 {
        let expected = (seq > 1).then(|| seq - 1);
        store
            .append("s", Append::new(expected, checkpoint(seq, None), None))
            .await
            .unwrap();
    }
    let raw = raw(&conninfo).await;
    raw.batch_execute(
        "SET search_path = graph_runtime;
         UPDATE checkpoints SET status = 9 WHERE seq = 1;
         UPDATE checkpoints SET status = 1, wait_node = NULL WHERE seq = 2;
         UPDATE checkpoints SET seq = -3 WHERE seq = 3;
         UPDATE checkpoints SET status = -1 WHERE seq = 4;
         UPDATE checkpoints SET depends_on = -1 WHERE seq = 5;",
    )
    .await
    .unwrap();
    for seq in [1, 2, 4, 5] {
        match store.get("s", seq).await {
            Err(Error::Corrupt { session, .. }) => assert_eq!(session, "s"),
            other => panic!("seq {seq}: expected Error::Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(store.list("s").await, Err(Error::Corrupt { .. })));
    assert!(matches!(
        store.chain("s", 0, 10).await,
        Err(Error::Corrupt { .. })
    ));
    // An audit record that does not decode, a session's record that does not read.
    let audit = Audit::new(AuditKind::Cancelled).by("ops");
    let audited = Append::new(None, checkpoint(1, None), None).audit(audit.clone());
    store.append("audit", audited).await.unwrap();
    assert_eq!(store.list("audit").await.unwrap()[0].audit, Some(audit));
    for bad in ["'\\x09'", "''", "'\\x0105'"] {
        raw.batch_execute(&format!(
            "UPDATE graph_runtime.checkpoints SET audit = {bad}::bytea WHERE session_id = \
             (SELECT id FROM graph_runtime.sessions WHERE name = 'audit'::bytea)"
        ))
        .await
        .unwrap();
        assert!(matches!(
            store.list("audit").await,
            Err(Error::Corrupt { .. })
        ));
    }
    let all = SessionFilter::new();
    store.sessions(&all).await.unwrap();
    for bad in [
        "status = 99",
        "status = 1, wait_node = NULL",
        "updated_at_us = NULL",
    ] {
        raw.batch_execute(&format!(
            "UPDATE graph_runtime.sessions SET {bad} WHERE name = 'audit'::bytea"
        ))
        .await
        .unwrap();
        assert!(matches!(
            store.session("audit").await,
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            store.sessions(&all).await,
            Err(Error::Corrupt { .. })
        ));
    }
    raw.batch_execute(
        "DELETE FROM graph_runtime.sessions WHERE name = 'audit'::bytea;
         UPDATE graph_runtime.sessions SET name = '\\xff'::bytea WHERE name = 's'::bytea",
    )
    .await
    .unwrap();
    assert!(matches!(
        store.sessions(&SessionFilter::new()).await,
        Err(Error::Corrupt { .. })
    ));
}

/// A lock held past the store's `lock_timeout` (set through the connection string) is
/// `Error::StoreBusy`, and the store works again once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_past_the_lock_timeout_is_busy() {
    let conninfo = support::database().await;
    let store = PostgresStore::connect(&format!("{conninfo} options='-c lock_timeout=200'"))
        .await
        .unwrap();
    store
        .append("s", Append::new(None, checkpoint(1, None), None))
        .await
        .unwrap();
    let holder = raw(&conninfo).await;
    holder
        .batch_execute("BEGIN; LOCK TABLE graph_runtime.checkpoints IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for blocked in [
        bounded(store.append("s", Append::new(Some(1), checkpoint(2, None), None))).await,
        bounded(store.latest("s")).await.map(drop),
    ] {
        match blocked {
            Err(e @ Error::StoreBusy(_)) => {
                assert!(e.is_retryable());
                let source = e.store_source().unwrap().to_string();
                assert!(source.contains("55P03"), "{source}");
            }
            other => panic!("expected Error::StoreBusy, got {other:?}"),
        }
    }
    holder.batch_execute("COMMIT").await.unwrap();
    // Nothing was written, and retrying succeeds.
    store
        .append("s", Append::new(Some(1), checkpoint(2, None), None))
        .await
        .unwrap();
    assert_eq!(seqs(&store, "s").await, [1, 2]);
}

/// The server stops and starts again on the same data under a running store: calls made while
/// it is down fail with `Error::Store` (not a hang, not a panic), and later calls succeed on
/// the same `PostgresStore`, which reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_reconnects_after_the_server_restarts() {
    let mut server = support::Server::start(false);
    let conninfo = server.create_database().await;
    let store = PostgresOptions::new()
        .connect_timeout(Duration::from_secs(2))
        .connect(&conninfo)
        .await
        .unwrap();
    for seq in 1..=3 {
        let expected = (seq > 1).then(|| seq - 1);
        store
            .append("s", Append::new(expected, checkpoint(seq, None), None))
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| server.stop());
    let down = bounded(store.append("s", Append::new(Some(3), checkpoint(4, None), None))).await;
    assert!(matches!(down, Err(Error::Store(_))), "{down:?}");
    assert!(matches!(
        bounded(store.latest("s")).await,
        Err(Error::Store(_))
    ));
    tokio::task::block_in_place(|| server.restart());
    // Nothing was lost, and the chain goes on, through the same store.
    assert_eq!(store.latest("s").await.unwrap(), Some(checkpoint(3, None)));
    store
        .append("s", Append::new(Some(3), checkpoint(4, None), None))
        .await
        .unwrap();
    assert_eq!(seqs(&store, "s").await, [1, 2, 3, 4]);
    drop(store);
    tokio::task::block_in_place(|| drop(server));
}

/// More concurrent callers than connections wait their turn; none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_smaller_than_its_callers_makes_them_wait_not_fail() {
    let conninfo = support::database().await;
    for batch in [false, true] {
        let store = Arc::new(
            PostgresOptions::new()
                .pool_size(2)
                .batch_appends(batch)
                .schema(format!("batch_{batch}"))
                .connect(&conninfo)
                .await
                .unwrap(),
        );
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let session = format!("s{i}");
                    for seq in 1..=5u64 {
                        let expected = (seq > 1).then(|| seq - 1);
                        store
                            .append(&session, Append::new(expected, checkpoint(seq, None), None))
                            .await?;
                        store.latest(&session).await?;
                        store.list(&session).await?;
                    }
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("every call succeeds");
        }
        assert_eq!(session_ids(&*store).await.len(), 40);
    }
}

// ---------------------------------------------------------------------------------------------
// A workflow end to end

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub notes: Vec<String>,
    pub approved: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

#[workflow(state = Ticket)]
pub mod ticket {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> triage | review);
    edge!(review -> close);
    edge!(close -> END);

    #[node]
    async fn triage(t: &mut Ticket) -> triage::Next {
        t.notes
            .push(format!("note {} {}", t.notes.len(), "x".repeat(512)));
        if t.notes.len() < 20 {
            triage::Next::Triage
        } else {
            triage::Next::Review
        }
    }

    #[node(interrupt)]
    async fn review(t: &mut Ticket, decision: Decision) {
        t.approved = matches!(decision, Decision::Approve);
    }

    #[node]
    async fn close(t: &mut Ticket) {
        t.notes.push("closed".to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_end_to_end_on_postgres_and_resumes_from_another_process() {
    let conninfo = support::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    let runner = Runner::new(ticket::Workflow, store.clone()).retention(Retention::KeepLast(3));
    let sessions: Vec<String> = (0..10).map(|i| format!("ticket-{i}")).collect();
    let starts: Vec<_> = sessions
        .iter()
        .map(|session| {
            let runner = runner.clone();
            let session = session.clone();
            tokio::spawn(async move { runner.start(&session, Ticket::default()).await })
        })
        .collect();
    for start in starts {
        match start.await.unwrap().unwrap() {
            Outcome::Interrupted { node, state } => {
                assert_eq!(node, "review");
                assert_eq!(state.notes.len(), 20);
            }
            other => panic!("expected to wait at review, got {other:?}"),
        }
    }
    // Retention kept a few per session (plus what deltas need), not all 20-odd.
    for session in &sessions {
        let kept = store.list(session).await.unwrap().len();
        assert!((1..20).contains(&kept), "{session}: {kept} kept");
    }
    // Another store and runner (another process, in effect) takes the decision.
    let later = Runner::new(
        ticket::Workflow,
        PostgresStore::connect(&conninfo).await.unwrap(),
    );
    for (i, session) in sessions.iter().enumerate() {
        let decision = if i % 2 == 0 {
            Decision::Approve
        } else {
            Decision::Reject
        };
        let done = later
            .resume_with(session, ticket::Input::Review(decision))
            .await
            .unwrap()
            .into_state();
        assert_eq!(done.approved, i % 2 == 0);
        assert_eq!(done.notes.last().map(String::as_str), Some("closed"));
        let latest = later.state(session).await.unwrap().unwrap();
        assert_eq!(latest.status, Status::Completed);
    }
}

// ---------------------------------------------------------------------------------------------
// Leases: what the conformance suite cannot ask of every store

const FLOW: &str = "checkout";
const HASH: u64 = 0x0123_4567_89ab_cdef;

fn claim(owner: &str) -> Claim {
    Claim::new(owner, Duration::from_secs(60), 10).workflow(FLOW, [HASH])
}

/// Tables of the first release (no leases) are migrated on connect: the checkpoints stay,
/// the sessions join the lease protocol once a runner writes to them with a workflow.
#[tokio::test]
async fn a_version_1_schema_is_migrated_on_connect() {
    let conninfo = support::database().await;
    let client = raw(&conninfo).await;
    client.batch_execute(postgres_v1::SCHEMA).await.unwrap();
    client
        .batch_execute(
            "INSERT INTO graph_runtime.sessions (name, head_seq) VALUES ('old'::bytea, 2);
             INSERT INTO graph_runtime.checkpoints
                 (session_id, seq, node, status, wait_node, created_at_us, bytes)
             SELECT id, seq, 'step', seq - 1, CASE WHEN seq = 2 THEN 'review' END,
                    1700000000000000 + seq, 'v1'::bytea
             FROM graph_runtime.sessions, generate_series(1, 2) AS seq",
        )
        .await
        .unwrap();
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    let version: i32 = client
        .query_one(
            "SELECT schema_version FROM graph_runtime.graph_runtime_meta",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 5);
    assert_eq!(seqs(&store, "old").await, [1, 2]);
    assert_eq!(store.latest("old").await.unwrap().unwrap().bytes, b"v1");
    // The session's record was filled in from its checkpoints: it answers queries at once.
    let record = store.session("old").await.unwrap().unwrap();
    let micros = |n: u64| UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + n);
    assert_eq!((record.seq, record.node.as_str()), (2, "step"));
    assert_eq!(
        (record.created_at, record.updated_at),
        (micros(1), micros(2))
    );
    assert_eq!(record.waiting, ["review"]);
    let at_review = SessionFilter::new().waiting_at("review");
    assert_eq!(store.sessions(&at_review).await.unwrap().sessions, [record]);
    assert!(store.claim(&claim("w")).await.unwrap().is_empty());
    let woken = Append::new(Some(2), checkpoint(3, None), None)
        .workflow(FLOW, HASH)
        .wake(Wake::Now);
    store.append("old", woken).await.unwrap();
    assert!(
        store
            .sessions(&at_review)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
    let leases = store.claim(&claim("w")).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].session.as_str(), leases[0].epoch), ("old", 1));
    // A second store connecting finds it migrated.
    let again = PostgresStore::connect(&conninfo).await.unwrap();
    assert_eq!(seqs(&again, "old").await, [1, 2, 3]);
}

/// Tables of the second release (leases, no graph versions or state schemas) are migrated on
/// connect: the sessions keep their checkpoints, workflow and lease epoch, count as in use
/// with no recorded schema until a runner writes one, the wake-up trigger still fires, and
/// graph versions can be recorded.
#[tokio::test]
async fn a_version_2_schema_is_migrated_on_connect() {
    let conninfo = support::database().await;
    let client = raw(&conninfo).await;
    client.batch_execute(postgres_v2::SCHEMA).await.unwrap();
    client
        .execute(
            "INSERT INTO graph_runtime.sessions
                 (name, head_seq, workflow, graph_hash, wake_at, lease_epoch)
             VALUES ('a'::bytea, 1, $1, $2, now(), 2), ('b'::bytea, 1, $1, $2, NULL, 0),
                    ('c'::bytea, 1, NULL, NULL, NULL, 0)",
            &[&FLOW, &(HASH as i64)],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO graph_runtime.checkpoints
                 (session_id, seq, node, status, created_at_us, bytes)
             SELECT id, 1, 'step', 0, 1700000000000000, 'v2'::bytea
             FROM graph_runtime.sessions",
        )
        .await
        .unwrap();
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    let version: i32 = client
        .query_one(
            "SELECT schema_version FROM graph_runtime.graph_runtime_meta",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, 5);
    assert_eq!(session_ids(&store).await, ["a", "b", "c"]);
    assert_eq!(store.latest("a").await.unwrap().unwrap().bytes, b"v2");
    assert_eq!(
        store.versions_in_use().await.unwrap(),
        [VersionCount::new(FLOW, HASH, None, 2)]
    );
    // The lease columns kept their values: `a` is runnable, and its next claim is epoch 3.
    let leases = store.claim(&claim("w")).await.unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].session.as_str(), leases[0].epoch), ("a", 3));
    // A runner of this release writes `a` with its schema and records its graph.
    let resumed = Append::new(Some(1), checkpoint(2, None), None)
        .fence(3)
        .workflow(FLOW, HASH)
        .state_schema(0x5c4e_3a00_0000_0001);
    store.append("a", resumed).await.unwrap();
    let graph = GraphVersion::new(FLOW, HASH, "graph-runtime/v2\nnode step\n");
    assert!(store.record_graph(&graph).await.unwrap());
    // The wake-up trigger still fires: `b` woken from another store wakes this one's waiter.
    store.wait_for_work(Duration::ZERO).await;
    let other = PostgresStore::connect(&conninfo).await.unwrap();
    let woken = Append::new(Some(1), checkpoint(2, None), None).wake(Wake::Now);
    let (woke, ()) = tokio::join!(
        async {
            let started = std::time::Instant::now();
            store.wait_for_work(Duration::from_secs(20)).await;
            started.elapsed()
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            other.append("b", woken).await.unwrap();
        }
    );
    assert!(woke < Duration::from_secs(10), "woke after {woke:?}");
    assert_eq!(
        other.versions_in_use().await.unwrap(),
        [
            VersionCount::new(FLOW, HASH, None, 1),
            VersionCount::new(FLOW, HASH, Some(0x5c4e_3a00_0000_0001), 1),
        ]
    );
    let kept = other.graph_version(FLOW, HASH).await.unwrap().unwrap();
    assert_eq!(kept.description, graph.description);
    assert!(!other.record_graph(&graph).await.unwrap());
}

/// Another process (here: another store, with its own pool) makes a session runnable: the
/// waiter's listener hears the trigger's notification and wakes long before its timeout.
#[tokio::test]
async fn a_runnable_append_from_another_store_wakes_a_waiter() {
    let conninfo = support::database().await;
    let waiter = PostgresStore::connect(&conninfo).await.unwrap();
    let producer = PostgresStore::connect(&conninfo).await.unwrap();
    for _ in 0..3 {
        waiter.wait_for_work(Duration::ZERO).await;
    }
    let timeout = Duration::from_secs(10);
    let (waited, ()) = tokio::join!(
        async {
            let started = std::time::Instant::now();
            waiter.wait_for_work(timeout).await;
            started.elapsed()
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let append = Append::new(None, checkpoint(1, None), None)
                .workflow(FLOW, HASH)
                .wake(Wake::Now);
            producer.append("s", append).await.unwrap();
        }
    );
    assert!(waited < timeout / 2, "woke after {waited:?}");
    assert_eq!(waiter.claim(&claim("w")).await.unwrap().len(), 1);
}

/// A deadline set by another store is announced with its delay: the waiter wakes when it is
/// due (after the delay, long before its own timeout) and can claim the session then.
#[tokio::test]
async fn a_deadline_wakes_a_waiter_when_it_is_due() {
    let conninfo = support::database().await;
    let waiter = PostgresStore::connect(&conninfo).await.unwrap();
    let producer = PostgresStore::connect(&conninfo).await.unwrap();
    for _ in 0..3 {
        waiter.wait_for_work(Duration::ZERO).await;
    }
    let delay = Duration::from_millis(300);
    let append = Append::new(None, checkpoint(1, None), None)
        .workflow(FLOW, HASH)
        .wake(Wake::After(delay));
    let started = std::time::Instant::now();
    producer.append("timer", append).await.unwrap();
    // Wake-ups may come early (the announcement itself), never the session before it is due.
    let timeout = Duration::from_secs(10);
    let mut claimed = Vec::new();
    while claimed.is_empty() && started.elapsed() < timeout {
        waiter.wait_for_work(timeout).await;
        claimed = waiter.claim(&claim("w")).await.unwrap();
        if !claimed.is_empty() {
            assert!(started.elapsed() >= delay, "claimed before the deadline");
        }
    }
    assert_eq!(claimed.len(), 1, "the deadline was claimed");
    assert!(
        started.elapsed() < timeout / 2,
        "woke after {:?}",
        started.elapsed()
    );
}
