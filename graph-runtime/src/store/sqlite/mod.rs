//! [`SqliteStore`]: checkpoints in one SQLite file, the embedded durable default.
//!
//! # The `-wal` and `-shm` files belong to the database
//!
//! The store keeps the file in WAL mode: next to `orders.db`, SQLite keeps `orders.db-wal`
//! (committed checkpoints not yet copied into the main file) and `orders.db-shm` (its index).
//! **While any store or process may have the file open, never delete them, and never copy the
//! `.db` file without them**: the copy or the file would silently lose recent checkpoints, or
//! be corrupt. To get a single self-contained file, either call [`SqliteStore::backup_to`]
//! (a consistent copy while runs go on), or [`SqliteStore::close`] the only store on the file
//! (it copies the WAL into the `.db` file and removes it).
//!
//! # Operating it
//!
//! - [`SqliteStore::close`]: finish queued writes, stop the writer, empty the WAL, report
//!   errors. Closes every clone of the handle.
//! - [`SqliteStore::backup_to`]: an online, consistent, compacted copy (`VACUUM INTO`).
//! - Space: new files use `auto_vacuum = INCREMENTAL`; after [`Store::delete`] and
//!   [`Store::prune`], the writer gives the freed pages back to the file system in slices of
//!   2 MiB while it has nothing else to do. [`SqliteStore::compact`] (a full `VACUUM`) does the
//!   same for the rest, and converts files of release 1, which had no auto-vacuum.
//! - Schema version 2 adds `depends_on` (incremental checkpoints), version 3 the lease
//!   columns of `sessions` (see below), version 4 the graph versions and each session's state
//!   schema, version 5 the session records of [`Store::sessions`] and the audit records of
//!   checkpoints; files of versions 1 to 4 are migrated when opened (version 5 fills each
//!   session's record in from its checkpoints then).
//!
//! # How it is built, and why
//!
//! - **One writer thread per store** (shared by every clone) owns the only write connection and
//!   reads commands from a bounded channel ([`SqliteOptions::command_capacity`], 1,024 by
//!   default). Async callers send a command, waiting asynchronously for room when the queue is
//!   full, and await a `oneshot` reply, so no blocking SQLite call ever runs on an async worker
//!   thread, a burst of writers cannot queue without bound, and the writer needs no runtime of
//!   its own.
//! - **Group commit.** The writer takes every command that is queued when it wakes up (up to
//!   [`MAX_BATCH`](writer::MAX_BATCH)) and runs them in one `BEGIN IMMEDIATE … COMMIT`: one fsync for the whole
//!   batch. No command waits on a timer, so a lone session pays no extra latency; while one
//!   batch is being fsynced, the next one queues up by itself. (After a batch the writer stays
//!   awake, yielding, for up to [`LINGER`](writer::LINGER) before it sleeps: a session that checkpoints every
//!   step sends its next append right away, and catching it saves a thread wake-up.) Each command runs inside its own
//!   `SAVEPOINT`, so a compare-and-swap conflict (or any other failure) of one append rolls back
//!   that append only; later commands in the batch see the earlier ones, so two appends to the
//!   same session in one batch are serialized in arrival order. Replies are sent only after
//!   `COMMIT` returns, so a caller's `Ok` means its checkpoint is durable (under
//!   [`Synchronous::Full`]). If the transaction fails as a whole, every caller in it gets the
//!   error.
//! - **A lone session** checkpointing every step gets a transaction per append. The writer
//!   keeps the head (row id, latest sequence number, lease epoch) its last such append left
//!   and uses it for the next one instead of reading it again, as long as `PRAGMA
//!   data_version` says no other connection has committed to the file since; then it reads
//!   the head, and checks the schema version, afresh.
//! - **Reads** (`latest`, `get`, `list`, `sessions`) run on tokio's blocking thread pool
//!   (`spawn_blocking`) with a small pool of read-only connections. WAL lets them run in
//!   parallel with each other and with the writer, and each one is a single statement, so it
//!   sees one consistent snapshot.
//! - **Several processes** (or several `SqliteStore`s) on one file are safe: the
//!   compare-and-swap check and the insert run inside the same `BEGIN IMMEDIATE` transaction,
//!   which SQLite's file lock serializes across connections and processes. A lock held longer
//!   than the busy timeout gives [`Error::StoreBusy`](crate::Error::StoreBusy), never a hang or
//!   a panic.
//! - **Schema.** `PRAGMA application_id` marks the file as ours and `PRAGMA user_version` holds
//!   the schema version, so a later release can migrate the file and this one refuses a file it
//!   does not understand. Session names live once in `sessions`; each checkpoint row holds the
//!   metadata [`CheckpointMeta`] needs, so `list` never reads the encoded bytes:
//!
//! ```sql
//! CREATE TABLE sessions (
//!     id INTEGER PRIMARY KEY,
//!     name TEXT NOT NULL UNIQUE,
//!     workflow TEXT,               -- the lease protocol (version 3): see `Store::claim`
//!     graph_hash INTEGER,          -- the u64 hash's bits as a signed integer
//!     wake_at_us INTEGER,          -- runnable from then on (SQLite's clock); NULL: not runnable
//!     lease_owner TEXT,
//!     lease_epoch INTEGER NOT NULL DEFAULT 0,  -- +1 on every claim; fences appends
//!     lease_expires_us INTEGER,
//!     state_schema INTEGER,        -- version 4: the u64 fingerprint's bits, see below
//!     status INTEGER,              -- version 5: the latest checkpoint's status code
//!     created_at_us INTEGER        -- version 5: the first checkpoint's time
//! );
//! CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
//!     WHERE wake_at_us IS NOT NULL;
//! CREATE INDEX sessions_by_status ON sessions (status, name);   -- version 5
//! CREATE TABLE session_waits (     -- version 5: every node a waiting session waits at
//!     node TEXT NOT NULL,
//!     name TEXT NOT NULL,          -- sessions.name, so a node's range is in id order
//!     session_id INTEGER NOT NULL,
//!     PRIMARY KEY (node, name)
//! ) WITHOUT ROWID;
//! CREATE INDEX session_waits_by_session ON session_waits (session_id);
//! CREATE TABLE graph_versions (    -- version 4: see `Store::record_graph`
//!     workflow TEXT NOT NULL,
//!     graph_hash INTEGER NOT NULL,
//!     description TEXT NOT NULL,   -- the canonical description, kept as first recorded
//!     recorded_at_us INTEGER NOT NULL,
//!     PRIMARY KEY (workflow, graph_hash)
//! ) WITHOUT ROWID;
//! CREATE TABLE checkpoints (
//!     id INTEGER PRIMARY KEY,      -- insertion order: new rows fill pages at the end
//!     session_id INTEGER NOT NULL, -- sessions.id
//!     seq INTEGER NOT NULL,
//!     node TEXT NOT NULL,          -- the cursor
//!     status INTEGER NOT NULL,     -- 0 running, 1 waiting (at wait_node), 2 completed,
//!     wait_node TEXT,              -- 3 failed, 4 cancelled
//!     created_at_us INTEGER NOT NULL,  -- microseconds since the Unix epoch
//!     bytes BLOB NOT NULL,         -- the encoded envelope
//!     depends_on INTEGER,          -- incremental: the oldest seq it needs (version 2)
//!     audit BLOB                   -- version 5: `Audit::encode`, when the append had one
//!     failure BLOB                 -- version 5: the last failure of a run from it (`Audit::encode`)
//! );
//! CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
//! ```
//!
//! **Leases** (see [`Store::claim`]) use SQLite's clock (`julianday('now')`, the host's wall
//! clock at millisecond precision), read inside the write transaction: several processes on
//! one host share it. A claim is one `UPDATE … RETURNING` per listed workflow and graph hash in
//! the writer's `BEGIN IMMEDIATE` transaction, which the file lock serializes with every
//! other process's claims and appends, so two claims can never take one session; a fenced
//! append reads the session's epoch in the transaction that inserts the checkpoint.
//! [`Store::wait_for_work`] wakes on this store's own appends and releases, and otherwise
//! sleeps its timeout: what other processes write is found by polling.
//!
//! **Versions** ([`Store::record_graph`], [`Store::versions_in_use`]): an append that records
//! a workflow or a state schema sets them on the session's row in its own transaction;
//! recording a graph version is an `INSERT … ON CONFLICT DO NOTHING` in the writer's
//! transaction, so of several processes recording one version, exactly one is told it was
//! new. Counting the versions in use is one scan of `sessions`, sorted in Rust (hashes sort
//! as `u64`s, not as the signed integers SQLite keeps).
//!
//! **Session records** ([`Store::sessions`], [`Store::session`]) come from the session's
//! row (workflow, wake time, lease, first time) and its latest checkpoint's row (status,
//! cursor, sequence number, time), found through `checkpoints_by_session`. What a filter
//! needs an index for is kept apart, in the append's transaction: the status code on the
//! session's row (written only when it changes), and the nodes a waiting session waits at in
//! `session_waits`. So a session running from step to step writes nothing but its
//! checkpoint: writing its cursor and time into its row too would dirty one more page per
//! commit, an 8 KiB WAL frame to checksum and write (measured: 13,400 more instructions per
//! W3 step, +30 %). A page is one range scan of an index that yields the sessions in the
//! order of their names: `session_waits`' key for a waiting node, `sessions_by_status` for a
//! status, the unique index on names otherwise; the other conditions are checked on each
//! row of the range, and `limit + 1` rows end it.
//!
//! A rowid table (rather than `WITHOUT ROWID`) keeps kilobyte-sized rows inline in full pages,
//! and new files use 8 KiB pages so that seven checkpoints of a 1 KiB state share one page.

mod error;
mod options;
mod reader;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc as bounded, oneshot};

pub use self::error::StoreClosed;
use self::error::{Context, closed_error, store_error};
pub use self::options::{SqliteOptions, Synchronous};
use self::reader::{LATEST, ReaderPool};
use self::schema::{open_connection, prepare_file};
use self::writer::{Command, Reply, Writer};
use super::lease::MAX_WAKE_DELAY;
use super::{
    Append, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter, SessionPage,
    SessionRecord, Store, VersionCount, Wake,
};
use crate::error::Result;

/// Keeps checkpoints in one SQLite file: the embedded, durable default store.
///
/// The file is in WAL mode with `synchronous=FULL` unless [`Synchronous::Normal`] is chosen,
/// so an append returns only once its checkpoint is on disk. Appends from many sessions at once
/// share one transaction and one fsync (group commit). Clones share one writer thread and one
/// pool of read connections; several stores, runners and processes may open the same file,
/// and compare-and-swap holds across all of them.
///
/// The file belongs to the store: opening a SQLite file of another application fails with
/// [`Error::StoreDamaged`](crate::Error::StoreDamaged) (as does a file that is not a database,
/// or a corrupt one), and one written by a newer release with a schema this one does not know
/// fails with [`Error::Store`](crate::Error::Store) (upgrade to open it).
/// [`open`](SqliteStore::open) does blocking file I/O; call it at startup or in
/// `spawn_blocking`. All [`Store`] methods move their blocking work off the async threads
/// (reads use tokio's blocking pool, so they need a tokio runtime to be concurrent; outside
/// one they run inline). When the last clone is dropped, the writer thread finishes the
/// commands already sent and closes the file.
///
/// ```
/// use graph_runtime::SqliteStore;
/// use graph_runtime::store::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> graph_runtime::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("orders.db"))?;
/// let shared = store.clone(); // same file, same writer thread
/// assert!(shared.sessions(&Default::default()).await?.sessions.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    /// The writer thread's queue, of [`SqliteOptions::command_capacity`]: a caller waits
    /// (asynchronously) for room when it is full.
    commands: bounded::Sender<Command>,
    readers: Arc<ReaderPool>,
    /// Writes sent and not answered yet, from every clone of this store.
    in_flight: AtomicUsize,
    /// [`SqliteStore::close`] has been called on some clone.
    closed: AtomicBool,
    /// Signalled when this store made a session runnable (see [`Store::wait_for_work`]).
    work: Notify,
    /// The writer thread, joined by [`SqliteStore::close`] (dropped, it ends on its own).
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Creates the store file at `path` if needed, or opens it, with the default
    /// [`SqliteOptions`] (`synchronous=FULL`, 5 s busy timeout).
    ///
    /// Fails with
    /// - [`Error::Store`](crate::Error::Store) if the file cannot be opened (its directory does
    ///   not exist, no permission), cannot use WAL (`":memory:"`, some network file systems), or
    ///   has the schema of a newer release;
    /// - [`Error::StoreDamaged`](crate::Error::StoreDamaged) if it is not a SQLite database, is
    ///   corrupt, belongs to another application, or has a schema version no release wrote;
    /// - [`Error::StoreBusy`](crate::Error::StoreBusy) if another connection or process held the
    ///   file locked for longer than the busy timeout while this one created or migrated the
    ///   schema.
    ///
    /// ```
    /// use graph_runtime::SqliteStore;
    /// # fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("orders.db");
    /// let store = SqliteStore::open(&path)?;
    /// drop(store);
    /// let again = SqliteStore::open(&path)?; // the same sessions, found again
    /// # drop(again);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        Self::open_with(path.as_ref(), SqliteOptions::default())
    }

    /// The file this store was opened on.
    ///
    /// ```
    /// use graph_runtime::SqliteStore;
    /// # fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("orders.db");
    /// let store = SqliteStore::open(&path)?;
    /// assert_eq!(store.path(), path);
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn open_with(path: &Path, options: SqliteOptions) -> Result<SqliteStore> {
        let context = Context::new(path, options.busy_timeout);
        let readers = Arc::new(ReaderPool {
            path: path.to_owned(),
            context: context.clone(),
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        // Opening is mostly waiting for the file (and, when resuming, the first read waits for
        // it again on a new read connection). So the writer thread opens, checks and migrates
        // the file on its own connection while this thread opens the first read connection and
        // loads the schema on it: by the time `open` returns, the first `latest` finds a
        // warm connection with its statement prepared.
        let (commands, mut receiver) = bounded::channel(options.command_capacity);
        let (opened, ready) = mpsc::sync_channel(1);
        let writer_readers = Arc::clone(&readers);
        let (writer_path, writer_context) = (path.to_owned(), context.clone());
        let synchronous = options.synchronous;
        let writer = std::thread::Builder::new()
            .name("graph-runtime-sqlite-writer".to_owned())
            .spawn(move || {
                let prepared = open_connection(&writer_path, &writer_context).and_then(|conn| {
                    let file = prepare_file(&conn, &writer_context, synchronous)?;
                    Ok(Writer::new(conn, writer_context, file))
                });
                match prepared {
                    Ok(writer) => {
                        let _ = opened.send(Ok(()));
                        writer.run(&mut receiver, &writer_readers);
                    }
                    Err(error) => drop(opened.send(Err(error))),
                }
            })
            .map_err(|e| {
                store_error(
                    format!("could not start the SQLite writer thread: {e}"),
                    None,
                )
            })?;
        // On a new or damaged file this fails (no schema yet, not a database): the writer
        // reports what is wrong, and reads open their connections later.
        let warm = readers
            .open()
            .ok()
            .filter(|conn| conn.prepare_cached(LATEST).is_ok());
        let opened = ready.recv().map_err(|_| {
            store_error(
                format!(
                    "the SQLite writer thread of `{}` stopped while opening",
                    context.label
                ),
                None,
            )
        });
        if let Err(error) = opened.and_then(|opened| opened) {
            // The writer thread has reported and is ending: nothing of a failed `open` is
            // left running when it returns (its result was already sent, so a panic here
            // adds nothing to report).
            drop(warm);
            let _ = writer.join();
            return Err(error);
        }
        if let Some(conn) = warm {
            readers.idle().push(conn);
        }
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                options,
                commands,
                readers,
                in_flight: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                work: Notify::new(),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Finishes the writes already sent, stops the writer thread, copies the WAL into the
    /// database file and closes it: afterwards the `.db` file alone holds every checkpoint
    /// (when no other store or process has the file open; see below).
    ///
    /// **Clones.** Closing closes the store for every clone of this handle: they share one
    /// writer thread. Writes any clone sent before `close` complete normally; every call on a
    /// clone after `close` fails with [`Error::Store`](crate::Error::Store) holding a
    /// [`StoreClosed`] (test for it with `downcast_ref`), as does a second `close`. Other stores
    /// opened separately on the same file (another `SqliteStore::open`, another process) are not
    /// affected.
    ///
    /// Fails with [`Error::Store`](crate::Error::Store) if SQLite reports an error while closing,
    /// or with [`Error::StoreBusy`](crate::Error::StoreBusy) if the WAL could not be copied into
    /// the file in full because another connection or process kept using the file for longer than
    /// the busy timeout (a later `open` and `close`, once it is done, copies it); the store is
    /// closed either way, and the `-wal` file then still holds committed checkpoints (it belongs to
    /// the database: never delete it). Dropping every handle without `close` is also safe: the
    /// writer finishes and closes the file in the background, with no way to report an error.
    ///
    /// ```
    /// use graph_runtime::SqliteStore;
    /// use graph_runtime::store::{Store, StoreClosed};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("orders.db");
    /// let store = SqliteStore::open(&path)?;
    /// let clone = store.clone();
    /// store.close().await?;
    /// // The file alone is complete: no `-wal` file left.
    /// assert!(!dir.path().join("orders.db-wal").exists());
    /// // The clone is closed too, with a typed error.
    /// match clone.session("order-1").await {
    ///     Err(graph_runtime::Error::Store(e)) => assert!(e.downcast_ref::<StoreClosed>().is_some()),
    ///     other => panic!("expected StoreClosed, got {other:?}"),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Err(closed_error(&self.inner.readers.context.label));
        }
        let (reply, receiver) = oneshot::channel();
        let stopped = || {
            store_error(
                format!(
                    "the SQLite writer thread of `{}` had stopped before `close`",
                    self.inner.path.display()
                ),
                None,
            )
        };
        self.inner
            .commands
            .send(Command::Close { reply })
            .await
            .map_err(|_| stopped())?;
        let closed = receiver.await.map_err(|_| stopped())?;
        // The writer has answered and is ending: wait for its thread to be gone (its connection
        // and thread-locals released), so that nothing of this store outlives `close`.
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            let label = self.inner.readers.context.label.clone();
            self.blocking(move || {
                writer.join().map_err(|_| {
                    store_error(
                        format!("the SQLite writer thread of `{label}` panicked while closing"),
                        None,
                    )
                })
            })
            .await?;
        }
        closed
    }

    /// Rewrites the whole file without its free pages (SQLite's `VACUUM`), so that it takes no
    /// more room on disk than its checkpoints need, and empties the WAL.
    ///
    /// Free pages are normally given back on their own: files created by this release use
    /// incremental auto-vacuum, and the writer releases the pages that [`Store::delete`] and
    /// [`Store::prune`] free, a slice at a time, while it has nothing else to do. `compact`
    /// is for the rest: a file created by an earlier release (which had no auto-vacuum:
    /// `compact` converts it, so later deletes give space back by themselves), or a file that
    /// should be as small as possible before a copy.
    ///
    /// It runs on the writer thread: appends from this store wait until it is done (the other
    /// stores and processes on the file too, up to their busy timeout), which takes about as
    /// long as copying the file. It needs free disk space of about twice the file's size for
    /// the time it runs. Reads go on meanwhile.
    ///
    /// ```
    /// use graph_runtime::SqliteStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteStore::open(dir.path().join("orders.db"))?;
    /// store.compact().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compact(&self) -> Result<()> {
        self.write(|reply| Command::Compact { reply }).await
    }

    /// Writes a consistent copy of the store to a new file at `path`, while runs go on.
    ///
    /// The copy is a snapshot of one instant (SQLite's `VACUUM INTO` inside one read
    /// transaction): appends that commit meanwhile are not in it, and are not held up by it. The
    /// result is a complete, compacted database file with no `-wal` file, flushed to disk;
    /// [`SqliteStore::open`] opens it with every checkpoint of the snapshot.
    ///
    /// Refuses to overwrite: fails with [`Error::Store`](crate::Error::Store) if something already
    /// exists at `path` (even an empty file), if its directory does not exist or is not writable,
    /// or if the path is not valid UTF-8. It never leaves a partial file behind on its own errors,
    /// except when the disk fills up or the process dies while writing (SQLite removes nothing it
    /// has started); such a file fails to open or is refused as not ours.
    ///
    /// ```
    /// use graph_runtime::SqliteStore;
    /// use graph_runtime::store::Store;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteStore::open(dir.path().join("orders.db"))?;
    /// let copy_path = dir.path().join("orders-backup.db");
    /// store.backup_to(&copy_path).await?;
    /// let copy = SqliteStore::open(&copy_path)?;
    /// let all = Default::default();
    /// assert_eq!(copy.sessions(&all).await?, store.sessions(&all).await?);
    /// // A second backup to the same path is refused, not overwritten.
    /// assert!(store.backup_to(&copy_path).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn backup_to(&self, path: impl AsRef<Path>) -> Result<()> {
        if self.is_closed() {
            return Err(closed_error(&self.inner.readers.context.label));
        }
        let target = path.as_ref();
        let label: Arc<str> = target.display().to_string().into();
        let refuse =
            move |why: String| store_error(format!("cannot back up to `{label}`: {why}"), None);
        match std::fs::symlink_metadata(target) {
            Ok(_) => return Err(refuse("it already exists; backups never overwrite".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(refuse(e.to_string())),
        }
        // An absolute path: SQLite never takes it for a `file:` URI.
        let target = std::path::absolute(target).map_err(|e| refuse(e.to_string()))?;
        let Some(target_text) = target.to_str().map(str::to_owned) else {
            return Err(refuse("the path is not valid UTF-8".into()));
        };
        let source = self.inner.path.clone();
        let source_context = self.inner.readers.context.clone();
        self.blocking(move || {
            // A connection of its own: the copy is one long read transaction, which a pooled
            // reader should not be held for.
            let conn = open_connection(&source, &source_context)?;
            conn.execute("VACUUM INTO ?1", [&target_text])
                .map_err(|e| refuse(format!("SQLite could not write the copy: {e}")))?;
            // VACUUM INTO does not sync what it wrote: do it, and the directory entry too.
            let sync = |path: &Path| std::fs::File::open(path).and_then(|f| f.sync_all());
            sync(&target).map_err(|e| refuse(format!("could not flush the copy: {e}")))?;
            if let Some(dir) = target.parent() {
                // Not every platform can open a directory; the file itself is flushed.
                let _ = sync(dir);
            }
            Ok(())
        })
        .await
    }

    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Wakes every waiter of [`Store::wait_for_work`], and the next one if none waits now.
    fn signal_work(&self) {
        self.inner.work.notify_waiters();
        self.inner.work.notify_one();
    }

    /// Sends a command to the writer thread and waits until its transaction has committed.
    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, receiver) = oneshot::channel();
        let gone = || {
            if self.is_closed() {
                return closed_error(&self.inner.readers.context.label);
            }
            store_error(
                format!(
                    "the SQLite writer thread of `{}` has stopped",
                    self.inner.path.display()
                ),
                None,
            )
        };
        if self.is_closed() {
            return Err(gone());
        }
        let alone = self.inner.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _in_flight = InFlight(&self.inner.in_flight);
        // Waits for room in the writer's queue when it is full (back-pressure).
        self.inner
            .commands
            .send(make(reply))
            .await
            .map_err(|_| gone())?;
        let mut receiver = receiver;
        let spin_wait = self.inner.options.spin_wait;
        if alone && !spin_wait.is_zero() {
            // See `SqliteOptions::spin_wait`: poll, letting other tasks run, rather than sleep.
            let start = Instant::now();
            while start.elapsed() < spin_wait {
                match receiver.try_recv() {
                    Ok(result) => return result,
                    Err(oneshot::error::TryRecvError::Empty) => tokio::task::yield_now().await,
                    Err(oneshot::error::TryRecvError::Closed) => return Err(gone()),
                }
            }
        }
        receiver.await.map_err(|_| gone())?
    }

    /// Runs a read on a pooled read connection, on tokio's blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Context) -> Result<T> + Send + 'static,
    {
        if self.is_closed() {
            return Err(closed_error(&self.inner.readers.context.label));
        }
        let readers = Arc::clone(&self.inner.readers);
        self.blocking(move || readers.with(read)).await
    }

    /// Runs blocking SQLite work on tokio's blocking pool.
    async fn blocking<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(work)
                .await
                .map_err(|e| store_error(format!("a SQLite task failed: {e}"), None))?,
            // Not inside a tokio runtime: no async worker thread to keep free.
            Err(_) => work(),
        }
    }
}

/// Counts a write as in flight until it is answered or its caller goes away.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Store for SqliteStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let session = session.to_owned();
        let runnable = matches!(append.wake, Some(Wake::Now | Wake::After(_)));
        self.write(|reply| Command::Append {
            session,
            append,
            reply,
        })
        .await?;
        if runnable {
            self.signal_work();
        }
        Ok(())
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        let session = session.to_owned();
        self.read(move |conn, context| reader::latest(conn, context, &session))
            .await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        // A sequence number SQLite cannot hold cannot have been stored.
        let Ok(wanted) = i64::try_from(seq) else {
            return Ok(None);
        };
        let session = session.to_owned();
        self.read(move |conn, context| reader::get(conn, context, &session, wanted))
            .await
    }

    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        // Sequence numbers above i64::MAX cannot have been stored.
        let Ok(from) = i64::try_from(from) else {
            return Ok(Vec::new());
        };
        let to = i64::try_from(to).unwrap_or(i64::MAX);
        if from > to {
            return Ok(Vec::new());
        }
        let session = session.to_owned();
        self.read(move |conn, context| reader::chain(conn, context, &session, from, to))
            .await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        let session = session.to_owned();
        self.read(move |conn, context| reader::list(conn, context, &session))
            .await
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        let session = session.to_owned();
        self.write(|reply| Command::Prune {
            session,
            keep_last,
            reply,
        })
        .await
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        let session = session.to_owned();
        self.write(|reply| Command::Delete { session, reply }).await
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        let filter = filter.clone();
        self.read(move |conn, context| reader::sessions(conn, context, &filter))
            .await
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        let session = session.to_owned();
        self.read(move |conn, context| reader::session(conn, context, &session))
            .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        if claim.limit == 0 || claim.workflows.iter().all(|(_, hashes)| hashes.is_empty()) {
            return Ok(Vec::new());
        }
        let claim = claim.clone();
        self.write(|reply| Command::Claim { claim, reply }).await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let lease = lease.clone();
        self.write(|reply| Command::Renew { lease, ttl, reply })
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let lease = lease.clone();
        let released = self
            .write(|reply| Command::Release { lease, reply })
            .await?;
        if released {
            self.signal_work();
        }
        Ok(released)
    }

    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        let version = version.clone();
        self.write(|reply| Command::RecordGraph { version, reply })
            .await
    }

    async fn record_failure(
        &self,
        session: &str,
        seq: u64,
        failure: &super::Audit,
    ) -> Result<bool> {
        let (session, failure) = (session.to_owned(), failure.encode());
        self.write(|reply| Command::RecordFailure {
            session,
            seq,
            failure,
            reply,
        })
        .await
    }

    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        let session = session.to_owned();
        let woken = self
            .write(|reply| Command::Wake {
                session,
                seq,
                reply,
            })
            .await?;
        if woken {
            self.signal_work();
        }
        Ok(woken)
    }

    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        let workflow = workflow.to_owned();
        self.read(move |conn, context| reader::graph_version(conn, context, &workflow, graph_hash))
            .await
    }

    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        let workflow = workflow.to_owned();
        self.read(move |conn, context| reader::graph_versions(conn, context, &workflow))
            .await
    }

    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        self.read(reader::versions_in_use).await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.inner.work.notified();
        // Biased: a stored wake-up is taken (not left for a later call) even when the
        // timeout has passed too.
        tokio::select! {
            biased;
            () = notified => {}
            () = tokio::time::sleep(timeout.min(MAX_WAKE_DELAY)) => {}
        }
    }
}
