//! Unit tests of the SQLite store's internals: error kinds, group commit, opening, the
//! bounded command queue.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::ErrorCode;
use tokio::sync::oneshot;

use super::error::{Context, fault_of};
use super::options::DEFAULT_BUSY_TIMEOUT;
use super::schema::{open_connection, prepare_file};
use super::writer::{Command, Writer};
use super::{SqliteOptions, Synchronous};
use crate::error::StoreFault;
use crate::error::{Error, Result};
use crate::store::Status;
use crate::store::{Append, Checkpoint, from_unix_micros, unix_micros};

fn checkpoint(seq: u64) -> Checkpoint {
    Checkpoint {
        seq,
        node: Cow::Borrowed("a"),
        status: Status::Running,
        created_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
        bytes: vec![seq as u8; 8],
        depends_on: None,
        seal_later: None,
    }
}

fn append(
    session: &str,
    expected: Option<u64>,
    seq: u64,
) -> (Command, oneshot::Receiver<Result<()>>) {
    let (reply, receiver) = oneshot::channel();
    let append = Append::new(expected, checkpoint(seq), None);
    (
        Command::Append {
            session: session.to_owned(),
            append,
            reply,
        },
        receiver,
    )
}

fn writer(dir: &tempfile::TempDir) -> Writer {
    let path = dir.path().join("store.db");
    let context = Context::new(&path, DEFAULT_BUSY_TIMEOUT);
    let conn = open_connection(&path, &context).unwrap();
    let file = prepare_file(&conn, &context, Synchronous::Full).unwrap();
    Writer::new(conn, context, file)
}

/// The SQLite result codes that pick a store variant of `Error`; the rest is `Store`.
#[test]
fn sqlite_codes_map_to_store_kinds() {
    for (code, fault) in [
        (ErrorCode::DatabaseBusy, StoreFault::Busy),
        (ErrorCode::DatabaseLocked, StoreFault::Busy),
        (ErrorCode::DatabaseCorrupt, StoreFault::Damaged),
        (ErrorCode::NotADatabase, StoreFault::Damaged),
        (ErrorCode::SystemIoFailure, StoreFault::Failed),
        (ErrorCode::DiskFull, StoreFault::Failed),
        (ErrorCode::CannotOpen, StoreFault::Failed),
        (ErrorCode::PermissionDenied, StoreFault::Failed),
        (ErrorCode::ReadOnly, StoreFault::Failed),
    ] {
        assert_eq!(fault_of(code), fault, "{code:?}");
    }
}

/// One batch holding two appends to the same session, a duplicate that must conflict, and
/// another session: the conflict fails alone, and the second append sees the first.
#[test]
fn one_batch_serializes_same_session_appends_and_isolates_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&dir);
    let (a1, r1) = append("s", None, 1);
    let (a2, r2) = append("s", Some(1), 2);
    let (dup, r_dup) = append("s", Some(1), 2);
    let (other, r_other) = append("t", None, 1);
    let (a3, r3) = append("s", Some(2), 3);
    writer.commit_batch(vec![a1, a2, dup, other, a3]);
    assert!(r1.blocking_recv().unwrap().is_ok());
    assert!(r2.blocking_recv().unwrap().is_ok());
    match r_dup.blocking_recv().unwrap() {
        Err(Error::Conflict {
            expected: Some(1),
            found: Some(2),
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(r_other.blocking_recv().unwrap().is_ok());
    assert!(r3.blocking_recv().unwrap().is_ok());
    let seqs: Vec<i64> = writer
        .conn
        .prepare("SELECT seq FROM checkpoints ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(seqs, [1, 2, 1, 3]);
}

fn expect_conflict(result: Result<()>, expected: Option<u64>, found: Option<u64>) {
    match result {
        Err(Error::Conflict {
            expected: e,
            found: f,
            ..
        }) if e == expected && f == found => {}
        other => panic!("expected a conflict ({expected:?}, found {found:?}), got {other:?}"),
    }
}

/// A lone append reuses the head its previous append left (see `writer::Head`), but only
/// while no other connection committed: another writer on the same file (another store,
/// another process) that appends in between makes the next append read the head again, so
/// its compare-and-swap fails as it must.
#[test]
fn a_lone_append_sees_what_another_connection_committed_in_between() {
    let dir = tempfile::tempdir().unwrap();
    let ours = writer(&dir);
    let theirs = writer(&dir);
    for (writer, expected, seq) in [(&ours, None, 1), (&ours, Some(1), 2), (&theirs, Some(2), 3)] {
        let (command, reply) = append("s", expected, seq);
        writer.commit_batch(vec![command]);
        reply.blocking_recv().unwrap().unwrap();
    }
    // Ours last wrote 2; the file's head is 3.
    let (stale, reply) = append("s", Some(2), 3);
    ours.commit_batch(vec![stale]);
    expect_conflict(reply.blocking_recv().unwrap(), Some(2), Some(3));
    let (next, reply) = append("s", Some(3), 4);
    ours.commit_batch(vec![next]);
    reply.blocking_recv().unwrap().unwrap();
    // And the other way round: theirs knew 3, ours wrote 4.
    let (stale, reply) = append("s", Some(3), 4);
    theirs.commit_batch(vec![stale]);
    expect_conflict(reply.blocking_recv().unwrap(), Some(3), Some(4));
    // A session deleted by the other connection is gone for ours too.
    let (reply, deleted) = oneshot::channel();
    theirs.commit_batch(vec![Command::Delete {
        session: "s".to_owned(),
        reply,
    }]);
    assert!(deleted.blocking_recv().unwrap().unwrap());
    let (stale, reply) = append("s", Some(4), 5);
    ours.commit_batch(vec![stale]);
    expect_conflict(reply.blocking_recv().unwrap(), Some(4), None);
}

/// An append that fails, or whose caller went away, leaves nothing behind for the next
/// append to trust: the head is the one the file holds.
#[test]
fn a_failed_lone_append_leaves_the_known_head_as_the_file_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&dir);
    let (first, reply) = append("s", None, 1);
    writer.commit_batch(vec![first]);
    reply.blocking_recv().unwrap().unwrap();
    // Conflicts: nothing written, the head stays 1.
    let (conflict, reply) = append("s", Some(7), 8);
    writer.commit_batch(vec![conflict]);
    expect_conflict(reply.blocking_recv().unwrap(), Some(7), Some(1));
    let (next, reply) = append("s", Some(1), 2);
    writer.commit_batch(vec![next]);
    reply.blocking_recv().unwrap().unwrap();
    // Abandoned before the writer got to it: not written, the head stays 2.
    let (gone, reply) = append("s", Some(2), 3);
    drop(reply);
    writer.commit_batch(vec![gone]);
    let (next, reply) = append("s", Some(2), 3);
    writer.commit_batch(vec![next]);
    reply.blocking_recv().unwrap().unwrap();
    // A batch of several commands in between: the next lone append reads the head again.
    let (a, ra) = append("s", Some(3), 4);
    let (b, rb) = append("t", None, 1);
    writer.commit_batch(vec![a, b]);
    ra.blocking_recv().unwrap().unwrap();
    rb.blocking_recv().unwrap().unwrap();
    let (stale, reply) = append("s", Some(3), 4);
    writer.commit_batch(vec![stale]);
    expect_conflict(reply.blocking_recv().unwrap(), Some(3), Some(4));
    assert_eq!(writer.session("s").unwrap().latest, Some(4));
}

#[test]
fn abandoned_commands_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let writer = writer(&dir);
    let (a1, r1) = append("s", None, 1);
    drop(r1);
    writer.commit_batch(vec![a1]);
    assert_eq!(writer.session("s").unwrap(), Default::default());
}

#[test]
fn times_round_trip_at_microsecond_precision() {
    for micros in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_000] {
        assert_eq!(unix_micros(from_unix_micros(micros).unwrap()), micros);
    }
    let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    assert_eq!(unix_micros(far), i64::MAX);
}

#[test]
fn huge_busy_timeout_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOptions::new()
        .busy_timeout(Duration::MAX)
        .open(dir.path().join("store.db"))
        .unwrap();
    drop(store);
}

/// The writer's queue is bounded by `command_capacity`: with the writer held up by another
/// connection's lock, callers beyond it wait for room instead of queueing, and all land once
/// the lock is gone.
#[tokio::test(flavor = "current_thread")]
async fn the_command_queue_holds_no_more_than_its_capacity() {
    use crate::store::Store;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteOptions::new()
        .command_capacity(3)
        .busy_timeout(Duration::from_secs(30))
        .open(&path)
        .unwrap();
    assert_eq!(store.inner.commands.max_capacity(), 3);
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let appends: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let append = Append::new(None, checkpoint(1), None);
                store.append(&format!("s{i}"), append).await
            })
        })
        .collect();
    // Every task runs up to its wait: the writer holds one command, the queue three, and
    // the other six wait for room. (On a loaded machine the tasks take a while to get
    // there: wait for the queue to fill, with a bound that only a stuck test reaches.)
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while store.inner.commands.capacity() != 0 && std::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(store.inner.commands.capacity(), 0);
    assert!(appends.iter().all(|task| !task.is_finished()));
    blocker.execute_batch("COMMIT").unwrap();
    for task in appends {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.inner.commands.capacity(), 3);
    let all = crate::store::SessionFilter::new();
    assert_eq!(store.sessions(&all).await.unwrap().sessions.len(), 10);
}

/// `close` returns once the writer thread is gone: the thread's own handle on the reader pool
/// (moved into it at `open`) has been dropped, so a test harness or a leak checker sees
/// nothing of the store left running (the `store_rows` fuzz target's leak check flagged a
/// writer thread still ending after `close` had answered).
#[tokio::test(flavor = "current_thread")]
async fn close_returns_after_the_writer_thread_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..20 {
        let store = super::SqliteStore::open(dir.path().join("closed.db")).unwrap();
        let readers = std::sync::Arc::clone(&store.inner.readers);
        store.close().await.unwrap();
        assert_eq!(
            std::sync::Arc::strong_count(&readers),
            1,
            "the writer thread still holds the reader pool after close"
        );
    }
}
