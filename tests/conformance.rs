//! The store conformance suite, run against our stores: the generic cases that
//! `graph_runtime::store::conformance` exports (feature `conformance`), once per store
//! (`memory_store::…`, `sqlite_store::…`, `postgres_store::…`), plus what only SQLite can be
//! asked (`sqlite_file::…`: reopening, several handles on one file, schema versions, damaged
//! rows, lock timeouts).
//!
//! To run the suite against a new store, add a fixture function and one `store_conformance!`
//! line; a generic case belongs in graph-runtime's `src/store/conformance.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use graph_runtime::store::conformance::Fixture;
use graph_runtime::store::{
    Append, Audit, AuditKind, Claim, GraphVersion, InputSource, Lease, SessionFilter,
    SessionRecord, StatusKind, Store, VersionCount, Wake,
};
use graph_runtime::{Error, MemoryStore, Result, SqliteOptions, SqliteStore, Status, Synchronous};
use tempfile::TempDir;

/// A fresh, empty `MemoryStore`; another handle is a clone.
fn memory_store() -> Fixture<MemoryStore> {
    let store = MemoryStore::new();
    let shared = store.clone();
    Fixture::new(store, move || shared.clone())
}

/// A fresh `SqliteStore` on a file of its own; another handle is the same file opened again.
fn sqlite_store() -> Fixture<SqliteStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("checkpoints.db");
    let store = SqliteStore::open(&path).expect("a new store file");
    Fixture::new(store, move || {
        SqliteStore::open(&path).expect("the file, again")
    })
    .keep_alive(dir)
}

/// A `SqliteStore` whose writer queue holds one command: every caller beyond it waits for
/// room, and every case must still pass.
fn sqlite_store_queue_of_one() -> Fixture<SqliteStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("checkpoints.db");
    let options = SqliteOptions::new().command_capacity(1);
    let store = options.open(&path).expect("a new store file");
    Fixture::new(store, move || options.open(&path).expect("the file, again")).keep_alive(dir)
}

graph_runtime::store_conformance!(memory_store, memory_store);
graph_runtime::store_conformance!(sqlite_store, sqlite_store);
graph_runtime::store_conformance!(sqlite_store_queue_of_one, sqlite_store_queue_of_one);
graph_runtime::store_conformance!(postgres_store, postgres_server::postgres_store);

// ---------------------------------------------------------------------------------------------
// The SQLite-only cases use the suite's own helpers.

use graph_runtime::store::conformance::helpers::{
    append, assert_conflict, at, before, chain, checkpoint, delta, latest_seq, push, seqs,
    session_ids, tagged,
};

/// The workflow and graph hash the lease cases register.
const FLOW: &str = "checkout";
const HASH: u64 = 0xfeed_beef_0000_0001;
/// A lease that outlives every test.
const LONG: Duration = Duration::from_secs(60);

/// A claim of `FLOW` at `HASH` by `owner`.
fn claim(owner: &str, ttl: Duration, limit: usize) -> Claim {
    Claim::new(owner, ttl, limit).workflow(FLOW, [HASH])
}

/// The sessions of some leases, sorted.
fn names(leases: &[Lease]) -> Vec<String> {
    let mut names: Vec<String> = leases.iter().map(|l| l.session.clone()).collect();
    names.sort();
    names
}

#[track_caller]
fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T>, session: &str, epoch: u64) {
    match result {
        Err(Error::LeaseLost {
            session: s,
            epoch: e,
        }) => assert_eq!((s.as_str(), e), (session, epoch), "lease-lost fields"),
        other => panic!("expected LeaseLost in `{session}`, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a database of its own per test, on one throwaway server per test binary
// (tests/support/postgres.rs; what only PostgreSQL can be asked is in tests/postgres.rs)

#[path = "support/sqlite_v1.rs"]
mod sqlite_v1;

#[path = "support/sqlite_v2.rs"]
mod sqlite_v2;

#[path = "support/sqlite_v3.rs"]
mod sqlite_v3;

#[path = "support/sqlite_v4.rs"]
mod sqlite_v4;

#[path = "support/postgres.rs"]
mod postgres_support;

mod postgres_server {
    use graph_runtime::PostgresStore;

    use super::Fixture;
    use super::postgres_support as support;

    /// The fixture is synchronous, so it waits on the runtime of the (multi-threaded) test.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
    }

    pub fn postgres_store() -> Fixture<PostgresStore> {
        let conninfo = block_on(support::database());
        let connect = move || {
            block_on(PostgresStore::connect(&conninfo)).expect("a store on the test database")
        };
        Fixture::new(connect(), connect)
    }
}

// ---------------------------------------------------------------------------------------------
// What only a file can be asked

mod sqlite_file {
    use super::*;

    fn new_file() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("checkpoints.db");
        (dir, path)
    }

    fn raw(path: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(path).expect("a raw connection")
    }

    /// `Error::Store`: I/O, or a file this release cannot use as it is.
    #[track_caller]
    fn assert_store_error<T: std::fmt::Debug>(result: Result<T>, needles: &[&str]) {
        assert_store_kind(result, "Store", needles);
    }

    /// A store error of the variant `kind` (`Store`, `StoreBusy`, `StoreDamaged`) whose
    /// source names every needle.
    #[track_caller]
    fn assert_store_kind<T: std::fmt::Debug>(result: Result<T>, kind: &str, needles: &[&str]) {
        let (found, e) = match result {
            Err(Error::Store(e)) => ("Store", e),
            Err(Error::StoreBusy(e)) => ("StoreBusy", e),
            Err(Error::StoreDamaged(e)) => ("StoreDamaged", e),
            other => panic!("expected Error::{kind}, got {other:?}"),
        };
        let message = e.to_string();
        assert_eq!(found, kind, "{message}");
        for needle in needles {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
    }

    #[track_caller]
    fn assert_corrupt<T: std::fmt::Debug>(result: Result<T>, session: &str) {
        match result {
            Err(Error::Corrupt { session: s, .. }) => assert_eq!(s, session),
            other => panic!("expected Error::Corrupt in `{session}`, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_the_file_finds_every_session_written_at_once() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        let tasks: Vec<_> = (0..50usize)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let session = format!("order-{i}");
                    for seq in 1..=5 {
                        let keep = i.is_multiple_of(2).then_some(2);
                        let append = Append::new(before(seq), tagged(seq, &session), keep);
                        store.append(&session, append).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(store.delete("order-7").await.unwrap());
        let sessions = session_ids(&store).await;
        drop(store);

        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(session_ids(&reopened).await, sessions);
        assert_eq!(sessions.len(), 49);
        for session in &sessions {
            let i: usize = session["order-".len()..].parse().unwrap();
            let kept: Vec<u64> = if i.is_multiple_of(2) {
                vec![4, 5]
            } else {
                (1..=5).collect()
            };
            assert_eq!(seqs(&reopened, session).await, kept);
            assert_eq!(
                reopened.latest(session).await.unwrap(),
                Some(tagged(5, session))
            );
        }
        // And the chains go on where they stopped.
        append(&reopened, "order-1", Some(5), 6).await.unwrap();
    }

    /// An append's future resolves only once its transaction has committed: a separate
    /// connection sees the row as soon as `append` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_committed_when_it_returns() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let path = path.clone();
                tokio::spawn(async move {
                    let observer = raw(&path);
                    let session = format!("s{i}");
                    for seq in 1..=5u64 {
                        append(&store, &session, before(seq), seq).await.unwrap();
                        let committed: i64 = observer
                            .query_row(
                                "SELECT max(c.seq) FROM checkpoints c JOIN sessions s \
                                 ON c.session_id = s.id WHERE s.name = ?1",
                                [&session],
                                |row| row.get(0),
                            )
                            .unwrap();
                        assert_eq!(committed, seq as i64);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_file_share_one_chain_and_conflict() {
        let (_dir, path) = new_file();
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        append(&a, "s", None, 1).await.unwrap();
        assert_eq!(latest_seq(&b, "s").await, Some(1));
        assert_conflict(append(&b, "s", None, 1).await, "s", None, Some(1));
        append(&b, "s", Some(1), 2).await.unwrap();
        assert_conflict(append(&a, "s", Some(1), 2).await, "s", Some(1), Some(2));
        assert_eq!(seqs(&a, "s").await, [1, 2]);

        // Both create the same session at the same moment: exactly one wins.
        for round in 0..20 {
            let session = format!("race-{round}");
            let (ra, rb) = tokio::join!(
                a.append(&session, Append::new(None, tagged(1, "a"), None)),
                b.append(&session, Append::new(None, tagged(1, "b"), None)),
            );
            let winner = match (ra, rb) {
                (Ok(()), loser) => {
                    assert_conflict(loser, &session, None, Some(1));
                    "a"
                }
                (loser, Ok(())) => {
                    assert_conflict(loser, &session, None, Some(1));
                    "b"
                }
                other => panic!("round {round}: {other:?}"),
            };
            assert_eq!(a.latest(&session).await.unwrap(), Some(tagged(1, winner)));
        }
    }

    #[tokio::test]
    async fn a_file_with_a_newer_schema_version_is_refused() {
        let (_dir, path) = new_file();
        drop(SqliteStore::open(&path).unwrap());
        raw(&path).pragma_update(None, "user_version", 7).unwrap();
        let refused = SqliteStore::open(&path);
        assert_store_error(
            refused,
            &["schema version 7", "newer release", "upgrade graph-runtime"],
        );
    }

    /// A file as release 1 wrote it: schema version 1, no `depends_on` column, no auto-vacuum.
    fn version_1_file(path: &Path, sessions: &[&str], checkpoints: i64) {
        let conn = raw(path);
        conn.execute_batch(sqlite_v1::SCHEMA).unwrap();
        for session in sessions {
            conn.execute("INSERT INTO sessions (name) VALUES (?1)", [session])
                .unwrap();
            let id = conn.last_insert_rowid();
            for seq in 1..=checkpoints {
                let c = checkpoint(seq as u64);
                let micros = c.created_at.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
                conn.execute(
                    "INSERT INTO checkpoints \
                     (session_id, seq, node, status, wait_node, created_at_us, bytes) \
                     VALUES (?1, ?2, 'step', 0, NULL, ?3, ?4)",
                    rusqlite::params![id, seq, micros, c.bytes],
                )
                .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_on_open_and_keeps_its_checkpoints() {
        let (_dir, path) = new_file();
        version_1_file(&path, &["a", "b"], 3);
        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 6);
        assert_eq!(session_ids(&store).await, ["a", "b"]);
        for session in ["a", "b"] {
            assert_eq!(seqs(&store, session).await, [1, 2, 3]);
            // Release-1 rows are self-contained.
            assert_eq!(store.latest(session).await.unwrap(), Some(checkpoint(3)));
        }
        // The new column works on the migrated file, and retention honours it.
        push(&store, "a", Some(3), delta(4, 3), Some(1)).await;
        assert_eq!(seqs(&store, "a").await, [3, 4]);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.latest("a").await.unwrap(), Some(delta(4, 3)));
    }

    /// A file of release 2 (no lease columns) is migrated on open; its sessions keep their
    /// checkpoints, are not runnable until a runner writes to them with a workflow and a
    /// wake time, and then take part in the lease protocol.
    #[tokio::test]
    async fn a_version_2_file_is_migrated_on_open_and_its_sessions_join_the_lease_protocol() {
        let (_dir, path) = new_file();
        let conn = raw(&path);
        conn.execute_batch(sqlite_v2::SCHEMA).unwrap();
        conn.execute("INSERT INTO sessions (name) VALUES ('a')", [])
            .unwrap();
        let id = conn.last_insert_rowid();
        for seq in 1..=2u64 {
            let c = checkpoint(seq);
            let micros = c.created_at.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
            conn.execute(
                "INSERT INTO checkpoints \
                 (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on) \
                 VALUES (?1, ?2, 'step', 0, NULL, ?3, ?4, NULL)",
                rusqlite::params![id, seq as i64, micros, c.bytes],
            )
            .unwrap();
        }
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 6);
        assert_eq!(seqs(&store, "a").await, [1, 2]);
        assert_eq!(store.latest("a").await.unwrap(), Some(checkpoint(2)));
        assert!(store.claim(&claim("w", LONG, 10)).await.unwrap().is_empty());

        let woken = Append::new(Some(2), checkpoint(3), None)
            .workflow(FLOW, HASH)
            .wake(Wake::Now);
        store.append("a", woken).await.unwrap();
        let leases = store.claim(&claim("w", LONG, 10)).await.unwrap();
        assert_eq!(names(&leases), ["a"]);
        assert_eq!(leases[0].epoch, 1);
        let fenced = Append::new(Some(3), checkpoint(4), None).fence(1);
        store.append("a", fenced).await.unwrap();
        let stale = Append::new(Some(4), checkpoint(5), None).fence(0);
        assert_lease_lost(store.append("a", stale).await, "a", 0);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(seqs(&again, "a").await, [1, 2, 3, 4]);
    }

    /// A file of release 3 (leases, no graph versions or state schemas) is migrated on open:
    /// its sessions keep their checkpoints, workflow and lease, count as in use with no
    /// recorded schema until a runner writes one, and graph versions can be recorded.
    #[tokio::test]
    async fn a_version_3_file_is_migrated_on_open_and_records_graphs_and_schemas() {
        let (_dir, path) = new_file();
        let conn = raw(&path);
        conn.execute_batch(sqlite_v3::SCHEMA).unwrap();
        for (name, workflow) in [("a", Some(FLOW)), ("b", Some(FLOW)), ("c", None)] {
            conn.execute(
                "INSERT INTO sessions (name, workflow, graph_hash, wake_at_us, lease_epoch) \
                 VALUES (?1, ?2, CASE WHEN ?2 IS NULL THEN NULL ELSE ?3 END, 0, 2)",
                rusqlite::params![name, workflow, HASH as i64],
            )
            .unwrap();
            let id = conn.last_insert_rowid();
            let c = checkpoint(1);
            let micros = c.created_at.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
            conn.execute(
                "INSERT INTO checkpoints \
                 (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on) \
                 VALUES (?1, 1, 'step', 0, NULL, ?2, ?3, NULL)",
                rusqlite::params![id, micros, c.bytes],
            )
            .unwrap();
        }
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 6);
        assert_eq!(session_ids(&store).await, ["a", "b", "c"]);
        assert_eq!(store.latest("a").await.unwrap(), Some(checkpoint(1)));
        assert_eq!(
            store.versions_in_use().await.unwrap(),
            [VersionCount::new(FLOW, HASH, None, 2)]
        );
        // The lease columns kept their values: the next claim is epoch 3.
        let leases = store.claim(&claim("w", LONG, 10)).await.unwrap();
        assert_eq!(names(&leases), ["a", "b"]);
        assert!(leases.iter().all(|lease| lease.epoch == 3));
        // A runner of this release writes `a` with its schema and records its graph.
        let resumed = Append::new(Some(1), checkpoint(2), None)
            .fence(3)
            .workflow(FLOW, HASH)
            .state_schema(0x5c4e_3a00_0000_0001);
        store.append("a", resumed).await.unwrap();
        let graph = GraphVersion::new(FLOW, HASH, "graph-runtime/v2\nnode step\n");
        assert!(store.record_graph(&graph).await.unwrap());
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(
            again.versions_in_use().await.unwrap(),
            [
                VersionCount::new(FLOW, HASH, None, 1),
                VersionCount::new(FLOW, HASH, Some(0x5c4e_3a00_0000_0001), 1),
            ]
        );
        let kept = again.graph_version(FLOW, HASH).await.unwrap().unwrap();
        assert_eq!(kept.description, graph.description);
        assert!(!again.record_graph(&graph).await.unwrap());
        assert_eq!(seqs(&again, "a").await, [1, 2]);
    }

    /// A file of release 4 (no session records, no audit records) is migrated on open: each
    /// session's record is filled in from its checkpoint rows (the latest one's status,
    /// waiting node, cursor, sequence number and time; the oldest kept one's time as its
    /// first), so that its sessions answer filtered queries at once, and the next appends
    /// move the records on and keep their audit records.
    #[tokio::test]
    async fn a_version_4_file_is_migrated_on_open_and_its_sessions_answer_queries() {
        let (_dir, path) = new_file();
        let conn = raw(&path);
        conn.execute_batch(sqlite_v4::SCHEMA).unwrap();
        type Row = (i64, &'static str, i64, Option<&'static str>, u64);
        let sessions: [(&str, Option<&str>, &[Row]); 4] = [
            (
                "a-running",
                Some(FLOW),
                &[(1, "start", 0, None, 10), (2, "pay", 0, None, 20)],
            ),
            // Retention removed 1 and 2: the oldest kept is 3.
            (
                "b-review",
                Some(FLOW),
                &[
                    (3, "review", 1, Some("review"), 30),
                    (4, "review", 1, Some("review"), 40),
                ],
            ),
            ("c-failed", None, &[(1, "pay", 3, None, 50)]),
            (
                "d-done",
                Some(FLOW),
                &[(1, "a", 0, None, 5), (7, "END", 2, None, 60)],
            ),
        ];
        for (name, workflow, rows) in sessions {
            conn.execute(
                "INSERT INTO sessions (name, workflow, graph_hash) \
                 VALUES (?1, ?2, CASE WHEN ?2 IS NULL THEN NULL ELSE ?3 END)",
                rusqlite::params![name, workflow, HASH as i64],
            )
            .unwrap();
            let id = conn.last_insert_rowid();
            for (seq, node, status, wait_node, ms) in rows {
                let micros = at(*ms).duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
                conn.execute(
                    "INSERT INTO checkpoints \
                     (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, X'7634', NULL)",
                    rusqlite::params![id, seq, node, status, wait_node, micros],
                )
                .unwrap();
            }
        }
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 6);
        let review = Status::Waiting {
            node: "review".to_owned(),
        };
        let mut expected = SessionRecord::new("b-review", 4, "review", review, at(40));
        expected.created_at = at(30);
        expected.workflow = Some(FLOW.to_owned());
        expected.graph_hash = Some(HASH);
        assert_eq!(store.session("b-review").await.unwrap(), Some(expected));
        let ids = |filter: SessionFilter| {
            let store = store.clone();
            async move {
                let page = store.sessions(&filter).await.unwrap();
                assert_eq!(page.next, None);
                page.sessions
                    .into_iter()
                    .map(|r| r.session)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            ids(SessionFilter::new().waiting_at("review")).await,
            ["b-review"]
        );
        assert_eq!(
            ids(SessionFilter::new().status(StatusKind::Failed)).await,
            ["c-failed"]
        );
        assert_eq!(
            ids(SessionFilter::new().status(StatusKind::Completed)).await,
            ["d-done"]
        );
        assert_eq!(
            ids(SessionFilter::new().updated_before(at(25))).await,
            ["a-running"]
        );
        assert_eq!(
            ids(SessionFilter::new().workflow(FLOW)).await,
            ["a-running", "b-review", "d-done"]
        );
        let done = store.session("d-done").await.unwrap().unwrap();
        assert_eq!(
            (done.seq, done.created_at, done.updated_at),
            (7, at(5), at(60))
        );
        assert!(
            store
                .list("b-review")
                .await
                .unwrap()
                .iter()
                .all(|m| m.audit.is_none())
        );

        // The next append moves the record on and keeps its audit record.
        let decided = Audit::new(AuditKind::Input {
            node: "review".into(),
            source: InputSource::Caller,
        })
        .by("alice");
        let resumed = Append::new(Some(4), checkpoint(5), None).audit(decided.clone());
        store.append("b-review", resumed).await.unwrap();
        assert!(
            ids(SessionFilter::new().waiting_at("review"))
                .await
                .is_empty()
        );
        assert_eq!(
            ids(SessionFilter::new().status(StatusKind::Running)).await,
            ["a-running", "b-review"]
        );
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        let audits: Vec<Option<Audit>> = again
            .list("b-review")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.audit)
            .collect();
        assert_eq!(audits, [None, None, Some(decided)]);
        let record = again.session("b-review").await.unwrap().unwrap();
        assert_eq!((record.seq, record.created_at), (5, at(30)));
    }

    /// Several processes (here: threads with their own stores) opening one version-1 file at
    /// once: one migrates, the others wait for the lock and find it done.
    #[test]
    fn opening_a_version_1_file_from_many_handles_at_once_migrates_it_once() {
        let (_dir, path) = new_file();
        version_1_file(&path, &["a"], 2);
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path)
                })
            })
            .collect();
        let stores: Vec<SqliteStore> = handles
            .into_iter()
            .map(|h| h.join().unwrap().expect("every open succeeds"))
            .collect();
        let columns: i64 = raw(&path)
            .query_row(
                "SELECT count(*) FROM pragma_table_info('checkpoints') WHERE name = 'depends_on'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for store in &stores {
            assert_eq!(rt.block_on(seqs(store, "a")), [1, 2]);
        }
    }

    #[tokio::test]
    async fn a_store_stops_writing_when_a_newer_release_migrates_its_file() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        append(&store, "s", None, 1).await.unwrap();
        raw(&path).pragma_update(None, "user_version", 8).unwrap();
        assert_store_error(append(&store, "s", Some(1), 2).await, &["schema version 8"]);
    }

    #[tokio::test]
    async fn files_that_are_not_ours_are_refused() {
        let (dir, path) = new_file();
        raw(&path)
            .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert_store_kind(
            SqliteStore::open(&path),
            "StoreDamaged",
            &["another application"],
        );

        let marked = dir.path().join("marked.db");
        raw(&marked)
            .pragma_update(None, "application_id", 1234)
            .unwrap();
        assert_store_kind(
            SqliteStore::open(&marked),
            "StoreDamaged",
            &["another application"],
        );

        // Not a database at all (SQLITE_NOTADB): damaged, not an I/O error; no retry helps.
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let e = SqliteStore::open(&garbage).unwrap_err();
        assert!(!e.is_retryable(), "{e:?}");
        assert_store_kind(Err::<(), _>(e), "StoreDamaged", &["not a database"]);

        // No WAL in memory, and each connection would see its own database anyway.
        assert_store_error(SqliteStore::open(":memory:"), &["WAL", "MemoryStore"]);

        // I/O: the file cannot be opened.
        let missing_dir = dir.path().join("no such directory").join("x.db");
        assert_store_error(SqliteStore::open(&missing_dir), &["no such directory"]);
    }

    /// Rows damaged behind the store's back give `Corrupt` (or `Store`), never a panic and
    /// never a wrong checkpoint.
    #[tokio::test]
    async fn damaged_rows_give_errors_not_panics() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        for session in ["status", "waiting", "seq", "bytes", "node", "name"] {
            chain(&store, session, 2).await;
        }
        let damage = |sql: &str, session: &str| {
            raw(&path)
                .execute(
                    &format!(
                        "UPDATE checkpoints SET {sql} WHERE seq = 2 AND session_id = \
                         (SELECT id FROM sessions WHERE name = ?1)"
                    ),
                    [session],
                )
                .unwrap();
        };
        damage("status = 99", "status");
        damage("status = 1, wait_node = NULL", "waiting");
        damage("seq = -5", "seq");
        damage("bytes = 'not a blob'", "bytes");
        damage("node = CAST(X'FFFE' AS TEXT)", "node");

        for session in ["status", "waiting", "node"] {
            assert_corrupt(store.latest(session).await, session);
            assert_corrupt(store.get(session, 2).await, session);
            assert_corrupt(store.list(session).await, session);
            // The undamaged row is still readable.
            assert_eq!(store.get(session, 1).await.unwrap(), Some(checkpoint(1)));
        }
        assert_corrupt(store.get("bytes", 2).await, "bytes");
        assert_corrupt(store.latest("bytes").await, "bytes");
        // A negative sequence number sorts first, so `latest` finds seq 1; listing and
        // appending see the bad row.
        assert_corrupt(store.list("seq").await, "seq");
        let negative = store.get("seq", 1).await.unwrap();
        assert_eq!(negative, Some(checkpoint(1)));
        raw(&path)
            .execute(
                "DELETE FROM checkpoints WHERE seq = 1 AND session_id = \
                 (SELECT id FROM sessions WHERE name = 'seq')",
                [],
            )
            .unwrap();
        assert_corrupt(store.latest("seq").await, "seq");
        assert_corrupt(append(&store, "seq", Some(2), 3).await, "seq");

        // An audit record that does not decode, a session's record that does not read.
        let audit = Audit::new(AuditKind::Cancelled).by("ops");
        let audited = Append::new(None, checkpoint(1), None).audit(audit.clone());
        store.append("audit", audited).await.unwrap();
        assert_eq!(store.list("audit").await.unwrap()[0].audit, Some(audit));
        for bad in ["X'09'", "X''", "X'0105'", "'text'"] {
            raw(&path)
                .execute(
                    &format!("UPDATE checkpoints SET audit = {bad} WHERE bytes = ?1"),
                    [checkpoint(1).bytes],
                )
                .unwrap();
            assert_corrupt(store.list("audit").await, "audit");
        }
        // A session's record is read from its latest checkpoint's row, and its own.
        let all = SessionFilter::new();
        for session in ["status", "waiting", "node"] {
            assert_corrupt(store.session(session).await, session);
        }
        assert!(matches!(
            store.sessions(&all).await,
            Err(Error::Corrupt { .. })
        ));
        let forget = |names: &str| {
            raw(&path)
                .execute_batch(&format!(
                    "DELETE FROM checkpoints WHERE session_id IN \
                     (SELECT id FROM sessions WHERE name IN ({names})); \
                     DELETE FROM sessions WHERE name IN ({names});"
                ))
                .unwrap();
        };
        forget("'status', 'waiting', 'node', 'bytes', 'seq'");
        store.sessions(&all).await.unwrap();
        for (bad, session) in [
            ("created_at_us = NULL", "no-time"),
            ("created_at_us = 'soon'", "text-time"),
        ] {
            chain(&store, session, 1).await;
            raw(&path)
                .execute(
                    &format!("UPDATE sessions SET {bad} WHERE name = ?1"),
                    [session],
                )
                .unwrap();
            assert_corrupt(store.session(session).await, session);
            assert!(matches!(
                store.sessions(&all).await,
                Err(Error::Corrupt { .. })
            ));
            forget(&format!("'{session}'"));
        }

        raw(&path)
            .execute("UPDATE sessions SET name = X'FF00' WHERE name = 'name'", [])
            .unwrap();
        assert!(matches!(
            store.sessions(&SessionFilter::new()).await,
            Err(Error::Store(_))
        ));
    }

    /// A database file whose schema page is damaged (SQLITE_CORRUPT) is `StoreDamaged`.
    #[tokio::test]
    async fn a_corrupt_file_is_damaged() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        chain(&store, "s", 3).await;
        store.close().await.unwrap();
        // Page 1 past the 100-byte file header: the b-tree of `sqlite_schema`.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100..1000].fill(0xa5);
        std::fs::write(&path, bytes).unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(!e.is_retryable(), "{e:?}");
        assert_store_kind(Err::<(), _>(e), "StoreDamaged", &["malformed"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_past_the_busy_timeout_is_a_clear_error() {
        let (_dir, path) = new_file();
        let store = SqliteOptions::new()
            .busy_timeout(Duration::from_millis(200))
            .open(&path)
            .unwrap();
        append(&store, "s", None, 1).await.unwrap();

        let holder = raw(&path);
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        let blocked = append(&store, "s", Some(1), 2).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up after the timeout"
        );
        let blocked = blocked.unwrap_err();
        assert!(blocked.is_retryable(), "{blocked:?}");
        assert_store_kind(
            Err::<(), _>(blocked),
            "StoreBusy",
            &["busy timeout (200 ms)", "locked"],
        );
        // WAL: reads go on while another process writes.
        assert_eq!(latest_seq(&store, "s").await, Some(1));
        holder.execute_batch("COMMIT").unwrap();

        // Nothing was written, and the store works again once the lock is gone.
        append(&store, "s", Some(1), 2).await.unwrap();
        assert_eq!(seqs(&store, "s").await, [1, 2]);
    }

    #[tokio::test]
    async fn synchronous_normal_is_an_opt_in_with_the_same_behaviour() {
        let (_dir, path) = new_file();
        let store = SqliteOptions::new()
            .synchronous(Synchronous::Normal)
            .open(&path)
            .unwrap();
        chain(&store, "s", 3).await;
        assert_conflict(append(&store, "s", Some(2), 3).await, "s", Some(2), Some(3));
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(seqs(&reopened, "s").await, [1, 2, 3]);
    }

    /// A writer queue of one command: many sessions appending at once, on several handles
    /// with queues of their own, all land, in order, and conflicts stay conflicts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_queue_of_one_still_lands_every_concurrent_append() {
        let (_dir, path) = new_file();
        let options = SqliteOptions::new().command_capacity(1);
        let handles: Vec<SqliteStore> = (0..2).map(|_| options.open(&path).unwrap()).collect();
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let store = handles[i % 2].clone();
                tokio::spawn(async move {
                    let session = format!("s{i:02}");
                    for seq in 1..=8 {
                        append(&store, &session, before(seq), seq).await?;
                    }
                    // A stale append is still refused, not lost in the queue.
                    assert_conflict(
                        append(&store, &session, Some(7), 9).await,
                        &session,
                        Some(7),
                        Some(8),
                    );
                    Ok::<_, Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().expect("every append lands");
        }
        let sessions = session_ids(&handles[0]).await;
        assert_eq!(sessions.len(), 60);
        for session in &sessions {
            assert_eq!(
                seqs(&handles[1], session).await,
                (1..=8).collect::<Vec<_>>()
            );
        }
    }

    /// While the writer's queue is full (here: the writer waits for a lock another
    /// connection holds), callers wait without blocking their thread: on a runtime of one
    /// thread, other tasks go on, and every append lands once the lock is gone.
    #[tokio::test(flavor = "current_thread")]
    async fn a_full_command_queue_makes_callers_wait_without_blocking_their_thread() {
        let (_dir, path) = new_file();
        let store = SqliteOptions::new()
            .command_capacity(1)
            .busy_timeout(Duration::from_secs(30))
            .open(&path)
            .unwrap();
        let blocker = raw(&path);
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let appends: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { append(&store, &format!("s{i:02}"), None, 1).await })
            })
            .collect();
        let started = Instant::now();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the thread was blocked"
        );
        assert!(appends.iter().all(|task| !task.is_finished()));
        blocker.execute_batch("COMMIT").unwrap();
        for task in appends {
            task.await.unwrap().expect("an append that waited for room");
        }
        assert_eq!(session_ids(&store).await.len(), 20);
    }

    /// A command queue of 0 could never take a command: refused by `open`, as the option's
    /// documentation says, before the file is created.
    #[test]
    fn a_command_capacity_of_zero_is_refused_before_the_file_is_touched() {
        let (_dir, path) = new_file();
        let refused = SqliteOptions::new().command_capacity(0).open(&path);
        match refused {
            Err(Error::InvalidConfig(problem)) => {
                assert!(problem.contains("command_capacity(0)"), "{problem}");
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        assert!(!path.exists());
        // A later good value does not hide the mistake: the first one is reported.
        let still = SqliteOptions::new()
            .command_capacity(0)
            .command_capacity(8)
            .open(&path);
        assert!(matches!(still, Err(Error::InvalidConfig(_))), "{still:?}");
        SqliteOptions::new()
            .command_capacity(1)
            .open(&path)
            .unwrap();
    }

    /// A lone append polls for its commit (`spin_wait`) or sleeps at once (`ZERO`): the same
    /// results either way, alone or with others in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spin_wait_changes_only_how_a_caller_waits() {
        for spin in [
            Duration::ZERO,
            Duration::from_micros(100),
            Duration::from_millis(5),
        ] {
            let (_dir, path) = new_file();
            let store = SqliteOptions::new().spin_wait(spin).open(&path).unwrap();
            chain(&store, "alone", 5).await;
            assert_conflict(
                append(&store, "alone", Some(4), 5).await,
                "alone",
                Some(4),
                Some(5),
            );
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move { chain(&store, &format!("s{i}"), 5).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            for i in 0..8 {
                assert_eq!(
                    seqs(&store, &format!("s{i}")).await,
                    [1, 2, 3, 4, 5],
                    "{spin:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_seq_beyond_sqlite_integers_is_an_error() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        assert_store_error(
            append(&store, "s", None, u64::MAX).await,
            &["largest integer"],
        );
        append(&store, "s", None, i64::MAX as u64).await.unwrap();
        assert_eq!(latest_seq(&store, "s").await, Some(i64::MAX as u64));
    }

    const PROCESS_CHAIN: u64 = 200;

    /// Separate processes (`tests/support/race_child.rs`, three at once) race to
    /// extend one session in one file: SQLite's file lock keeps compare-and-swap exact across
    /// processes, so every sequence number is won by exactly one of them.
    #[test]
    fn processes_racing_on_one_file_form_one_chain() {
        use std::process::{Command, Stdio};
        let (_dir, path) = new_file();
        drop(SqliteStore::open(&path).unwrap());
        // The children start racing together, once this file exists.
        let go = path.with_extension("go");
        let children: Vec<_> = (0..3)
            .map(|tag| {
                let child = Command::new(env!("CARGO_BIN_EXE_race-child"))
                    .arg(&path)
                    .arg(tag.to_string())
                    .arg(&go)
                    .arg(PROCESS_CHAIN.to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("a child process");
                (tag, child)
            })
            .collect();
        std::fs::write(&go, b"go").unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut all_wins = Vec::new();
        for (tag, mut child) in children {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("child {tag} did not finish");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "child {tag} failed: {:?}",
                output.status
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let won: Vec<u64> = stdout
                .lines()
                // libtest may print its own text on the same line, before ours.
                .filter_map(|line| line.split_once("race-won:").map(|(_, seq)| seq))
                .map(|seq| seq.trim().parse().expect("a seq"))
                .collect();
            let store = SqliteStore::open(&path).unwrap();
            for &seq in &won {
                let stored = block_on(store.get("contested", seq))
                    .unwrap()
                    .expect("a won seq");
                assert_eq!(stored.bytes, format!("process {tag} {seq}").as_bytes());
            }
            eprintln!("process {tag} won {} of {PROCESS_CHAIN}", won.len());
            all_wins.extend(won);
        }
        all_wins.sort_unstable();
        let one_chain: Vec<u64> = (1..=PROCESS_CHAIN).collect();
        assert_eq!(all_wins, one_chain, "every seq won exactly once");
        let store = SqliteStore::open(&path).unwrap();
        let listed: Vec<u64> = block_on(store.list("contested"))
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(listed, one_chain);
        let check: String = raw(&path)
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// The store needs no tokio runtime: writes go through the writer thread and reads run
    /// inline when there is no blocking pool to send them to.
    #[test]
    fn works_outside_a_tokio_runtime() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        block_on(chain(&store, "s", 2));
        assert_eq!(block_on(store.latest("s")).unwrap(), Some(checkpoint(2)));
        assert_eq!(block_on(session_ids(&store)), ["s"]);
    }

    /// A minimal executor, so the test needs no extra dependency.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Thread(std::thread::Thread);
        impl Wake for Thread {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Thread(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            match future.as_mut().poll(&mut context) {
                Poll::Ready(output) => return output,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}
