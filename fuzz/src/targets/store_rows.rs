//! Target `store_rows`: a `SqliteStore` file whose rows hold values of the fuzzer's choosing,
//! read through the store and the runner.
//!
//! Every input starts from the same small file, written once per process by a real runner
//! (sessions waiting in a region, with deltas, cancelled, forked, with a recorded failure,
//! and their graph version), then changes it with rusqlite directly, as damage or another
//! program would: a column of a row set to a value of any SQL type (text that is not UTF-8
//! included, and envelopes sealed for one of the file's sessions), a row deleted, the file's
//! `user_version` or `application_id` changed. Then it opens the file and calls every read of
//! the `Store` trait, and the runner's reads, a resume, a prune and a delete. Each must
//! answer or fail with an error; none may panic.
//!
//! Input: up to [`MAX_OPS`] operations of five bytes each (kind, table, column, row, value
//! kind) followed by the value's bytes where it has some (a `u64`, or a `u16`-length byte
//! string).

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use graph_runtime::store::{Claim, SessionFilter, Store};
use graph_runtime::{Audit, AuditKind, Runner, SqliteStore, StatusKind};
use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::workflows::{Run, journal, run_journal};
use super::{Reader, Writer, block_on, check_error_of};

/// The most operations an input applies.
const MAX_OPS: usize = 16;

/// The sessions of the starting file.
const SESSIONS: &[&str] = &["ask", "deltas", "recover", "cancelled", "forked"];

/// The tables, their columns and the key that picks one row.
const TABLES: &[(&str, &[&str], &str)] = &[
    (
        "sessions",
        &[
            "id",
            "name",
            "workflow",
            "graph_hash",
            "wake_at_us",
            "lease_owner",
            "lease_epoch",
            "lease_expires_us",
            "state_schema",
            "status",
            "created_at_us",
            "parent",
        ],
        "rowid",
    ),
    (
        "checkpoints",
        &[
            "id",
            "session_id",
            "seq",
            "node",
            "status",
            "wait_node",
            "created_at_us",
            "bytes",
            "depends_on",
            "audit",
            "failure",
        ],
        "rowid",
    ),
    (
        "session_waits",
        &["node", "name", "session_id"],
        "(node, name)",
    ),
    (
        "graph_versions",
        &["workflow", "graph_hash", "description", "recorded_at_us"],
        "(workflow, graph_hash)",
    ),
];

/// One input.
pub fn run(data: &[u8]) {
    let dir = scratch_dir();
    let path = dir.path().join("store.db");
    std::fs::write(&path, template()).expect("the starting file is written");
    damage(&path, data);
    block_on(read_back(&path));
}

/// A directory for one input's file: in memory where the system has one.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("fuzz-store-rows")
        .tempdir_in(shm);
    builder.unwrap_or_else(|_| tempfile::tempdir().expect("a temporary directory"))
}

/// Applies the input's operations to the file with rusqlite (operations SQLite refuses, such
/// as a `NULL` in a `NOT NULL` column, change nothing).
fn damage(path: &Path, data: &[u8]) {
    let conn = Connection::open(path).expect("the starting file opens");
    let mut r = Reader::new(data);
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        let kind = r.u8();
        let (table, columns, key) = TABLES[usize::from(r.u8()) % TABLES.len()];
        let column = columns[usize::from(r.u8()) % columns.len()];
        let row = i64::from(r.u8() % 16);
        let (value, as_text) = value(&mut r);
        let value_sql = if as_text { "CAST(?1 AS TEXT)" } else { "?1" };
        let columns_of_key = key.trim_matches(['(', ')']);
        let nth = |at: usize| {
            format!(
                "{key} IN (SELECT {columns_of_key} FROM {table} ORDER BY 1 LIMIT 1 OFFSET ?{at})"
            )
        };
        let _refused = match kind % 5 {
            0 | 1 => conn.execute(
                &format!("UPDATE {table} SET {column} = {value_sql} WHERE {}", nth(2)),
                params![value, row],
            ),
            2 => conn.execute(
                &format!("DELETE FROM {table} WHERE {}", nth(1)),
                params![row],
            ),
            3 => conn
                .execute_batch(&format!("PRAGMA user_version = {}", row - 8))
                .map(|()| 0),
            _ => conn
                .execute_batch(&format!("PRAGMA application_id = {}", row - 8))
                .map(|()| 0),
        };
    }
}

/// A value of any SQL type: `NULL`, an integer, a real, text (not always UTF-8: a blob to
/// store as text when the second is `true`), a blob, or an envelope sealed for one of the
/// file's sessions.
fn value(r: &mut Reader<'_>) -> (Value, bool) {
    let value = match r.u8() % 7 {
        0 => Value::Null,
        1 => Value::Integer(r.u64() as i64),
        2 => Value::Integer(i64::from(r.u8()) - 8),
        3 => Value::Real(f64::from_bits(r.u64())),
        4 => return (Value::Blob(r.bytes().to_vec()), true),
        5 => Value::Blob(r.bytes().to_vec()),
        _ => {
            let session = SESSIONS[usize::from(r.u8()) % SESSIONS.len()];
            let mut bytes = r.bytes().to_vec();
            graph_runtime::__fuzzing::seal(session, &mut bytes);
            Value::Blob(bytes)
        }
    };
    (value, false)
}

/// Every read of the store and the runner, a resume, a prune and a delete.
async fn read_back(path: &Path) {
    let store = match SqliteStore::open(path) {
        Ok(store) => store,
        Err(error) => return check_error_of(&[], &error),
    };
    let mut names: Vec<String> = SESSIONS.iter().map(|s| (*s).to_owned()).collect();
    match store.sessions(&SessionFilter::new()).await {
        Ok(page) => names.extend(page.sessions.into_iter().map(|s| s.session)),
        Err(error) => check_error_of(&[], &error),
    }
    names.sort();
    names.dedup();
    names.truncate(SESSIONS.len() + 4);
    for filter in [
        SessionFilter::new().status(StatusKind::Waiting),
        SessionFilter::new().waiting_at("ask"),
        SessionFilter::new().workflow("journal").limit(2),
        SessionFilter::new().parent("ask"),
    ] {
        handled(store.sessions(&filter).await);
    }
    handled(store.graph_versions("journal").await);
    handled(store.versions_in_use().await);
    let runner = Runner::new(journal::Workflow, store.clone()).max_steps(64);
    for name in &names {
        handled(store.session(name).await);
        handled(store.latest(name).await);
        handled(store.get(name, 1).await);
        handled(store.chain(name, 0, u64::MAX).await);
        handled(store.list(name).await);
        handled(runner.state(name).await);
        handled(runner.history(name).await);
    }
    let claim = Claim::new("fuzz", Duration::from_secs(30), 4).workflow(
        "journal",
        [<journal::Workflow as graph_runtime::Workflow>::GRAPH_HASH],
    );
    handled(store.claim(&claim).await);
    if let Some(name) = names.first() {
        handled(runner.resume(name).await);
        handled(store.prune(name, 1).await);
        handled(store.delete(name).await);
    }
    handled(store.close().await);
}

/// A read's result: a value, or an error a caller can handle.
fn handled<T>(result: graph_runtime::Result<T>) {
    if let Err(error) = result {
        check_error_of(&[], &error);
    }
}

/// The starting file's bytes, written once per process.
fn template() -> &'static [u8] {
    static TEMPLATE: OnceLock<Vec<u8>> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = scratch_dir();
        let path = dir.path().join("template.db");
        block_on(async {
            let store = SqliteStore::open(&path).expect("a new file opens");
            let runner = Runner::new(journal::Workflow, store.clone());
            for (name, run) in [
                (
                    "ask",
                    Run {
                        prefill: 0,
                        grow: 2,
                        fail: false,
                        answers: 0,
                    },
                ),
                (
                    "deltas",
                    Run {
                        prefill: 18,
                        grow: 2,
                        fail: false,
                        answers: 1,
                    },
                ),
                (
                    "recover",
                    Run {
                        prefill: 0,
                        grow: 2,
                        fail: true,
                        answers: 1,
                    },
                ),
                (
                    "cancelled",
                    Run {
                        prefill: 0,
                        grow: 1,
                        fail: false,
                        answers: 0,
                    },
                ),
            ] {
                run_journal(&runner, name, run)
                    .await
                    .expect("a session of the starting file runs");
            }
            runner
                .cancel("cancelled", Audit::new(AuditKind::Cancelled).by("fuzz"))
                .await
                .expect("a waiting session cancels");
            runner.fork("ask", 1, "forked").await.expect("a fork");
            let latest = store.latest("ask").await.unwrap().expect("a session").seq;
            let failed = AuditKind::Failed {
                node: "ask".to_owned(),
                error: "a failure".to_owned(),
            };
            store
                .record_failure("ask", latest, &Audit::new(failed).note("kept"))
                .await
                .expect("a failure is recorded");
            store.close().await.expect("the store closes");
        });
        // One file, without its WAL: what the copies start from.
        let conn = Connection::open(&path).expect("the file opens");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .expect("the WAL is folded into the file");
        drop(conn);
        std::fs::read(&path).expect("the file reads")
    })
}

/// A few inputs: none, one of each operation, and a sealed envelope in place of another.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = vec![("seed-untouched".to_owned(), Vec::new())];
    for (name, kind, table, column, value) in [
        ("seq-negative", 0u8, 1u8, 2u8, 2u8),
        ("status-text", 0, 1, 4, 4),
        ("bytes-null", 0, 1, 7, 0),
        ("audit-blob", 0, 1, 9, 5),
        ("created-real", 0, 1, 6, 3),
        ("name-blob", 0, 0, 1, 5),
        ("lease-expires-huge", 0, 0, 7, 1),
        ("delete-checkpoint", 2, 1, 0, 0),
        ("user-version", 3, 0, 0, 0),
        ("description-text", 0, 3, 2, 4),
        ("wait-node-int", 0, 2, 0, 2),
        ("sealed-envelope", 0, 1, 7, 6),
    ] {
        let mut w = Writer::default();
        w.u8(kind).u8(table).u8(column).u8(1).u8(value);
        match value {
            1 | 3 => {
                w.u64(u64::MAX - 7);
            }
            2 => {
                w.u8(3);
            }
            4 => {
                w.bytes(b"\xff not utf-8");
            }
            5 => {
                w.bytes(b"\x01\x05\x00");
            }
            6 => {
                w.u8(0).bytes(b"GRCP\x04\x01\x00\x00........");
            }
            _ => {}
        }
        seeds.push((format!("seed-{name}"), w.0));
    }
    seeds
}
