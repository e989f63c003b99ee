//! Operating a `SqliteStore`: `close`, `backup_to`, `compact`, and space given back after
//! deletes and pruning.

use std::path::{Path, PathBuf};

#[path = "support/sqlite_v1.rs"]
mod sqlite_v1;
use std::time::{Duration, UNIX_EPOCH};

use graph_runtime::store::conformance::helpers::session_ids;
use graph_runtime::store::{Append, Checkpoint, SessionFilter, Store, StoreClosed};
use graph_runtime::{Error, Result, SqliteStore, Status};
use tempfile::TempDir;

fn new_file() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("checkpoints.db");
    (dir, path)
}

fn checkpoint(seq: u64, size: usize) -> Checkpoint {
    // Not compressible to nothing: each checkpoint takes its size on disk.
    let bytes = (0..size).map(|i| (i as u64 * 31 + seq) as u8).collect();
    Checkpoint::new(seq, "step", Status::Running, bytes)
        .created_at(UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + seq))
}

/// Appends checkpoints 1..=n of `size` bytes to a new session.
async fn fill<S: Store>(store: &S, session: &str, n: u64, size: usize) {
    for seq in 1..=n {
        let expected = (seq > 1).then(|| seq - 1);
        store
            .append(session, Append::new(expected, checkpoint(seq, size), None))
            .await
            .expect("an append");
    }
}

async fn seqs<S: Store>(store: &S, session: &str) -> Vec<u64> {
    store
        .list(session)
        .await
        .expect("list")
        .iter()
        .map(|m| m.seq)
        .collect()
}

fn wal(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", path.display()))
}

/// The bytes the database takes on disk: the file and its WAL.
fn size_on_disk(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    len(path) + len(&wal(path))
}

fn pragma(path: &Path, name: &str) -> i64 {
    rusqlite::Connection::open(path)
        .expect("a raw connection")
        .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .expect("a pragma")
}

#[track_caller]
fn assert_closed<T: std::fmt::Debug>(result: Result<T>) {
    match result {
        Err(Error::Store(e)) => {
            let closed = e.downcast_ref::<StoreClosed>();
            assert!(closed.is_some(), "expected StoreClosed, got {e}");
            assert!(e.to_string().contains("was closed"), "{e}");
        }
        other => panic!("expected Error::Store(StoreClosed), got {other:?}"),
    }
}

#[track_caller]
fn assert_store_error<T: std::fmt::Debug>(result: Result<T>, needles: &[&str]) {
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

// ---------------------------------------------------------------------------------------------
// close

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_queued_writes_and_leaves_the_file_complete_on_its_own() {
    let (dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    // Writes from clones in flight when `close` is called.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { fill(&store, &format!("s-{i}"), 20, 512).await })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    store.close().await.unwrap();
    assert!(
        std::fs::metadata(wal(&path)).map_or(0, |m| m.len()) == 0,
        "the WAL is empty or gone after close"
    );
    // Only the `.db` file, copied elsewhere: every checkpoint is in it.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let reopened = SqliteStore::open(&copy).unwrap();
    for i in 0..8 {
        assert_eq!(
            seqs(&reopened, &format!("s-{i}")).await,
            (1..=20).collect::<Vec<_>>()
        );
    }
    drop(dir);
}

#[tokio::test]
async fn every_call_on_a_clone_after_close_is_a_typed_error() {
    let (_dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "s", 2, 64).await;
    let clone = store.clone();
    let another = store.clone();
    store.close().await.unwrap();

    let append = Append::new(Some(2), checkpoint(3, 64), None);
    assert_closed(clone.append("s", append).await);
    assert_closed(clone.latest("s").await);
    assert_closed(clone.get("s", 1).await);
    assert_closed(clone.chain("s", 1, 2).await);
    assert_closed(clone.list("s").await);
    assert_closed(clone.prune("s", 1).await);
    assert_closed(clone.delete("s").await);
    assert_closed(clone.sessions(&SessionFilter::new()).await);
    assert_closed(clone.compact().await);
    assert_closed(clone.backup_to(path.with_extension("copy")).await);
    assert!(!path.with_extension("copy").exists());
    // A second close, from another clone: refused the same way.
    assert_closed(another.close().await);
    drop(clone);
    // The file itself is fine: open it again.
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(seqs(&reopened, "s").await, [1, 2]);
}

#[tokio::test]
async fn close_leaves_other_stores_on_the_same_file_working() {
    let (_dir, path) = new_file();
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    fill(&a, "s", 2, 64).await;
    a.close().await.unwrap();
    let append = Append::new(Some(2), checkpoint(3, 64), None);
    b.append("s", append).await.unwrap();
    assert_eq!(seqs(&b, "s").await, [1, 2, 3]);
}

// ---------------------------------------------------------------------------------------------
// backup_to

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_runs_go_on_is_a_complete_consistent_file() {
    let (dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "before", 30, 1024).await;
    let running: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { fill(&store, &format!("running-{i}"), 100, 1024).await })
        })
        .collect();
    let backup = dir.path().join("backup.db");
    store.backup_to(&backup).await.unwrap();
    for task in running {
        task.await.unwrap();
    }
    // A standalone file: nothing beside it.
    assert!(!wal(&backup).exists());
    let copy = SqliteStore::open(&backup).unwrap();
    assert_eq!(seqs(&copy, "before").await, (1..=30).collect::<Vec<_>>());
    assert_eq!(
        copy.latest("before").await.unwrap(),
        Some(checkpoint(30, 1024))
    );
    // Each running session is some prefix of its chain: one instant, no holes.
    for i in 0..4 {
        let kept = seqs(&copy, &format!("running-{i}")).await;
        assert_eq!(kept, (1..=kept.len() as u64).collect::<Vec<_>>());
    }
    // The copy takes new checkpoints like any store file.
    let append = Append::new(Some(30), checkpoint(31, 1024), None);
    copy.append("before", append).await.unwrap();
}

#[tokio::test]
async fn a_backup_never_overwrites_and_bad_targets_are_errors() {
    let (dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "s", 3, 64).await;

    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"precious").unwrap();
    assert_store_error(store.backup_to(&existing).await, &["already exists"]);
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert_store_error(store.backup_to(&empty).await, &["already exists"]);

    // The store file itself.
    assert_store_error(store.backup_to(&path).await, &["already exists"]);

    let missing_dir = dir.path().join("no-such-dir").join("backup.db");
    assert_store_error(store.backup_to(&missing_dir).await, &["cannot back up"]);
    assert!(!missing_dir.exists());

    // A directory in the way.
    let a_dir = dir.path().join("a-dir");
    std::fs::create_dir(&a_dir).unwrap();
    assert_store_error(store.backup_to(&a_dir).await, &["already exists"]);

    // The store goes on working after the refusals.
    let append = Append::new(Some(3), checkpoint(4, 64), None);
    store.append("s", append).await.unwrap();
    let fine = dir.path().join("fine.db");
    store.backup_to(&fine).await.unwrap();
    let copy = SqliteStore::open(&fine).unwrap();
    assert_eq!(seqs(&copy, "s").await, [1, 2, 3, 4]);
}

// ---------------------------------------------------------------------------------------------
// Space

#[tokio::test]
async fn new_files_use_incremental_auto_vacuum() {
    let (_dir, path) = new_file();
    SqliteStore::open(&path).unwrap().close().await.unwrap();
    assert_eq!(pragma(&path, "auto_vacuum"), 2);
}

#[tokio::test]
async fn deleting_a_session_gives_its_space_back() {
    let (_dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "small", 5, 1024).await;
    // About 4 MB.
    fill(&store, "big", 200, 20_000).await;
    fill(&store, "after", 5, 1024).await;
    store.close().await.unwrap();
    let full = size_on_disk(&path);
    assert!(full > 4_000_000, "{full} bytes");

    let store = SqliteStore::open(&path).unwrap();
    assert!(store.delete("big").await.unwrap());
    store.close().await.unwrap();
    let after = size_on_disk(&path);
    assert!(
        after < full / 4,
        "{after} bytes on disk after deleting, {full} before"
    );
    assert_eq!(pragma(&path, "freelist_count"), 0);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(session_ids(&store).await, ["after", "small"]);
    assert_eq!(seqs(&store, "after").await, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn pruning_gives_space_back() {
    let (_dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "s", 200, 20_000).await;
    fill(&store, "t", 3, 1024).await;
    store.close().await.unwrap();
    let full = size_on_disk(&path);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.prune("s", 2).await.unwrap(), 198);
    store.close().await.unwrap();
    let after = size_on_disk(&path);
    assert!(
        after < full / 4,
        "{after} bytes after pruning, {full} before"
    );
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(seqs(&store, "s").await, [199, 200]);
    assert_eq!(
        store.latest("s").await.unwrap(),
        Some(checkpoint(200, 20_000))
    );
}

/// A file as release 1 wrote it: schema version 1, no `depends_on`, no auto-vacuum.
fn version_1_file(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sqlite_v1::SCHEMA).unwrap();
}

#[tokio::test]
async fn compact_converts_a_version_1_file_and_gives_its_space_back() {
    let (_dir, path) = new_file();
    version_1_file(&path);
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "big", 200, 20_000).await;
    fill(&store, "kept", 5, 1024).await;
    assert!(store.delete("big").await.unwrap());
    store.close().await.unwrap();
    // Without auto-vacuum, the deleted pages stay in the file as free pages.
    assert_eq!(pragma(&path, "auto_vacuum"), 0);
    let before = size_on_disk(&path);
    assert!(before > 4_000_000, "{before} bytes");

    let store = SqliteStore::open(&path).unwrap();
    store.compact().await.unwrap();
    fill(&store, "later", 2, 1024).await;
    store.close().await.unwrap();
    let after = size_on_disk(&path);
    assert!(
        after < before / 4,
        "{after} bytes after compact, {before} before"
    );
    assert_eq!(pragma(&path, "auto_vacuum"), 2);

    // Converted: from now on a delete gives its space back by itself.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(seqs(&store, "kept").await, [1, 2, 3, 4, 5]);
    fill(&store, "big-again", 200, 20_000).await;
    assert!(store.delete("big-again").await.unwrap());
    store.close().await.unwrap();
    let again = size_on_disk(&path);
    assert!(again < before / 4, "{again} bytes after the second delete");
}

#[tokio::test]
async fn compact_keeps_every_checkpoint_and_the_store_goes_on() {
    let (_dir, path) = new_file();
    let store = SqliteStore::open(&path).unwrap();
    fill(&store, "a", 10, 2048).await;
    fill(&store, "b", 10, 2048).await;
    store.prune("a", 3).await.unwrap();
    store.compact().await.unwrap();
    assert_eq!(seqs(&store, "a").await, [8, 9, 10]);
    assert_eq!(seqs(&store, "b").await, (1..=10).collect::<Vec<_>>());
    let append = Append::new(Some(10), checkpoint(11, 2048), None);
    store.append("b", append).await.unwrap();
    assert_eq!(store.latest("b").await.unwrap(), Some(checkpoint(11, 2048)));
}
