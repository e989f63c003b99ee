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
//!   columns of `sessions` (see below); files of versions 1 and 2 are migrated when opened.
//!
//! # How it is built, and why
//!
//! - **One writer thread per store** (shared by every clone) owns the only write connection and
//!   reads commands from a channel. Async callers send a command and await a `oneshot` reply,
//!   so no blocking SQLite call ever runs on an async worker thread, and the writer needs no
//!   runtime of its own.
//! - **Group commit.** The writer takes every command that is queued when it wakes up (up to
//!   [`MAX_BATCH`]) and runs them in one `BEGIN IMMEDIATE … COMMIT`: one fsync for the whole
//!   batch. No command waits on a timer, so a lone session pays no extra latency; while one
//!   batch is being fsynced, the next one queues up by itself. (After a batch the writer stays
//!   awake, yielding, for up to [`LINGER`] before it sleeps: a session that checkpoints every
//!   step sends its next append right away, and catching it saves a thread wake-up.) Each command runs inside its own
//!   `SAVEPOINT`, so a compare-and-swap conflict (or any other failure) of one append rolls back
//!   that append only; later commands in the batch see the earlier ones, so two appends to the
//!   same session in one batch are serialized in arrival order. Replies are sent only after
//!   `COMMIT` returns, so a caller's `Ok` means its checkpoint is durable (under
//!   [`Synchronous::Full`]). If the transaction fails as a whole, every caller in it gets the
//!   error.
//! - **Reads** (`latest`, `get`, `list`, `sessions`) run on tokio's blocking thread pool
//!   (`spawn_blocking`) with a small pool of read-only connections. WAL lets them run in
//!   parallel with each other and with the writer, and each one is a single statement, so it
//!   sees one consistent snapshot.
//! - **Several processes** (or several `SqliteStore`s) on one file are safe: the
//!   compare-and-swap check and the insert run inside the same `BEGIN IMMEDIATE` transaction,
//!   which SQLite's file lock serializes across connections and processes. A lock held longer
//!   than the busy timeout gives [`Error::StoreBusy`], never a hang or a panic.
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
//!     lease_expires_us INTEGER
//! );
//! CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
//!     WHERE wake_at_us IS NOT NULL;
//! CREATE TABLE checkpoints (
//!     id INTEGER PRIMARY KEY,      -- insertion order: new rows fill pages at the end
//!     session_id INTEGER NOT NULL, -- sessions.id
//!     seq INTEGER NOT NULL,
//!     node TEXT NOT NULL,          -- the cursor
//!     status INTEGER NOT NULL,     -- 0 running, 1 waiting (at wait_node), 2 completed
//!     wait_node TEXT,
//!     created_at_us INTEGER NOT NULL,  -- microseconds since the Unix epoch
//!     bytes BLOB NOT NULL,         -- the encoded envelope
//!     depends_on INTEGER           -- incremental: the oldest seq it needs (version 2)
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
//! A rowid table (rather than `WITHOUT ROWID`) keeps kilobyte-sized rows inline in full pages,
//! and new files use 8 KiB pages so that seven checkpoints of a 1 KiB state share one page.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::types::FromSql;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use tokio::sync::Notify;

use super::lease::{MAX_WAKE_DELAY, micros};
use super::{
    Append, Checkpoint, CheckpointMeta, Claim, Lease, Store, Wake, from_unix_micros, unix_micros,
};
use crate::error::StoreFault;
use crate::{Error, Result, Status};

/// `PRAGMA application_id` of our files: "GRCP", as in the checkpoint envelope's magic.
const APPLICATION_ID: i32 = 0x4752_4350;
/// `PRAGMA user_version`: the schema this release reads and writes.
const SCHEMA_VERSION: i32 = 3;
/// The most commands one transaction takes, so that one batch cannot grow without bound.
const MAX_BATCH: usize = 512;
/// Read connections kept open between reads; more are opened when reads overlap.
const MAX_IDLE_READERS: usize = 4;
/// How long the writer keeps looking for work after a batch before it sleeps. A session that
/// checkpoints every step sends its next append a few microseconds after its reply; finding it
/// awake saves an OS wake-up of the writer thread, which costs more than this on a virtual
/// machine. The writer yields the CPU while it waits.
const LINGER: Duration = Duration::from_micros(50);
/// How many free pages one incremental-vacuum transaction gives back (2 MiB of 8 KiB pages):
/// small enough that an append arriving meanwhile waits for a few milliseconds at most.
const VACUUM_SLICE_PAGES: u32 = 256;
/// The page size of new files (see the module docs).
const PAGE_SIZE: u32 = 8192;
/// `PRAGMA journal_size_limit`: the size the WAL file is truncated back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// `PRAGMA auto_vacuum` of a file whose free pages can be released with `incremental_vacuum`.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a lone writer polls for its commit before it sleeps; see
/// [`SqliteOptions::spin_wait`]. Off by default: measured on W3 (one session, FULL), polling
/// bought little throughput for two to three times the CPU, and lost throughput outright
/// when the cores were busy with other work.
const DEFAULT_SPIN_WAIT: Duration = Duration::ZERO;

/// The query of `latest`: the one a resume runs first.
const LATEST: &str = "SELECT seq, node, status, wait_node, created_at_us, bytes, depends_on \
                      FROM checkpoints \
                      WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) \
                      ORDER BY seq DESC LIMIT 1";

/// SQLite's clock in microseconds since the Unix epoch (millisecond precision); one value per
/// statement. A macro, so that statements can be `concat!`-ed at compile time.
macro_rules! now_us {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    };
}

const STATUS_RUNNING: i64 = 0;
const STATUS_WAITING: i64 = 1;
const STATUS_COMPLETED: i64 = 2;

const SCHEMA: &str = "
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        workflow TEXT,
        graph_hash INTEGER,
        wake_at_us INTEGER,
        lease_owner TEXT,
        lease_epoch INTEGER NOT NULL DEFAULT 0,
        lease_expires_us INTEGER
    );
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        node TEXT NOT NULL,
        status INTEGER NOT NULL,
        wait_node TEXT,
        created_at_us INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        depends_on INTEGER
    );
    CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
";

/// Version 1 → 2: incremental checkpoints name the checkpoint they depend on. Adding a
/// nullable column only rewrites the table's definition, not its rows, so the migration is
/// instant on a file of any size; version-1 rows read back as self-contained (`NULL`).
const MIGRATE_1_TO_2: &str = "ALTER TABLE checkpoints ADD COLUMN depends_on INTEGER;";

/// Version 2 → 3: the lease columns of `sessions`, nullable or with a constant default, so
/// again only the table's definition changes. Sessions of earlier files have no workflow and
/// no wake time: no claim takes them until a runner writes to them with one.
const MIGRATE_2_TO_3: &str = "
    ALTER TABLE sessions ADD COLUMN workflow TEXT;
    ALTER TABLE sessions ADD COLUMN graph_hash INTEGER;
    ALTER TABLE sessions ADD COLUMN wake_at_us INTEGER;
    ALTER TABLE sessions ADD COLUMN lease_owner TEXT;
    ALTER TABLE sessions ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN lease_expires_us INTEGER;
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;";

/// How hard SQLite works to make each commit durable (`PRAGMA synchronous`).
///
/// ```
/// use graph_runtime::{SqliteOptions, Synchronous};
/// let options = SqliteOptions::new().synchronous(Synchronous::Normal);
/// # drop(options);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// `synchronous=FULL` (the default): every checkpoint is flushed to the disk (fsync) before
    /// its append returns, so it survives a process crash and a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: may lose the last steps on power loss, never corrupts.
    ///
    /// Commits are written to the WAL without waiting for the disk; a process crash loses
    /// nothing, but a power loss or OS crash may roll the file back to an earlier, consistent
    /// state. The runner then resumes from there and runs the lost steps again. Several times
    /// faster per step than `Full`.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for opening a [`SqliteStore`], in the style of [`std::fs::OpenOptions`].
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::{SqliteOptions, Synchronous};
///
/// # fn main() -> graph_runtime::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("orders.db");
/// let store = SqliteOptions::new()
///     .synchronous(Synchronous::Normal) // may lose the last steps on power loss, never corrupts
///     .busy_timeout(Duration::from_secs(10))
///     .open(&path)?;
/// # drop(store);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    synchronous: Synchronous,
    busy_timeout: Duration,
    spin_wait: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            spin_wait: DEFAULT_SPIN_WAIT,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], a busy timeout of 5 seconds and no spin wait.
    ///
    /// ```
    /// use graph_runtime::SqliteOptions;
    /// assert_eq!(SqliteOptions::new(), SqliteOptions::default());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How durable each commit is; see [`Synchronous`].
    ///
    /// ```
    /// use graph_runtime::{SqliteOptions, Synchronous};
    /// let options = SqliteOptions::new().synchronous(Synchronous::Normal);
    /// # drop(options);
    /// ```
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How long to wait for a lock held by another connection or process before giving up
    /// with [`Error::StoreBusy`] (retrying later can succeed). Capped at about 24 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::SqliteOptions;
    /// let options = SqliteOptions::new().busy_timeout(Duration::from_millis(500));
    /// # drop(options);
    /// ```
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How long an append that is the store's only one in flight polls for its commit,
    /// yielding to other tasks, before its task sleeps (default `Duration::ZERO`: off).
    ///
    /// Waking a sleeping task costs 20–70 µs on virtual machines, a fraction of a commit with
    /// fsync. A session that checkpoints on its own may save that on every step with a spin
    /// wait that covers its fsync; appends from many sessions at once never poll (they share a
    /// group commit instead). The price is CPU: while its commit is in flight, the waiting
    /// task's worker thread stays busy for up to this long when it has nothing else to run,
    /// and on a machine whose cores are busy the polling slows the commit it waits for. Only
    /// worth it on dedicated cores with a latency budget tighter than a wake-up.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::SqliteOptions;
    /// let eager = SqliteOptions::new().spin_wait(Duration::from_micros(300));
    /// # drop(eager);
    /// ```
    pub fn spin_wait(mut self, spin_wait: Duration) -> Self {
        self.spin_wait = spin_wait;
        self
    }

    /// Creates or opens the store file at `path` with these options; see
    /// [`SqliteStore::open`].
    ///
    /// ```
    /// use graph_runtime::SqliteOptions;
    /// # fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteOptions::new().open(dir.path().join("orders.db"))?;
    /// # drop(store);
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(&self, path: impl AsRef<Path>) -> Result<SqliteStore> {
        SqliteStore::open_with(path.as_ref(), self.clone())
    }
}

/// Keeps checkpoints in one SQLite file: the embedded, durable default store.
///
/// The file is in WAL mode with `synchronous=FULL` unless [`Synchronous::Normal`] is chosen,
/// so an append returns only once its checkpoint is on disk. Appends from many sessions at once
/// share one transaction and one fsync (group commit). Clones share one writer thread and one
/// pool of read connections; several stores, runners and processes may open the same file,
/// and compare-and-swap holds across all of them.
///
/// The file belongs to the store: opening a SQLite file of another application fails with
/// [`Error::StoreDamaged`] (as does a file that is not a database, or a corrupt one), and one
/// written by a newer release with a schema this one does not know fails with [`Error::Store`]
/// (upgrade to open it).
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
/// assert!(shared.sessions().await?.is_empty());
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
    commands: mpsc::Sender<Command>,
    readers: Arc<ReaderPool>,
    /// Writes sent and not answered yet, from every clone of this store.
    in_flight: AtomicUsize,
    /// [`SqliteStore::close`] has been called on some clone.
    closed: AtomicBool,
    /// Signalled when this store made a session runnable (see [`Store::wait_for_work`]).
    work: Notify,
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
    /// - [`Error::Store`] if the file cannot be opened (its directory does not exist, no
    ///   permission), cannot use WAL (`":memory:"`, some network file systems), or has the
    ///   schema of a newer release;
    /// - [`Error::StoreDamaged`] if it is not a SQLite database, is corrupt, belongs to another
    ///   application, or has a schema version no release wrote;
    /// - [`Error::StoreBusy`] if another connection or process held the file locked for longer
    ///   than the busy timeout while this one created or migrated the schema.
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
        let (commands, receiver) = mpsc::channel();
        let (opened, ready) = mpsc::sync_channel(1);
        let writer_readers = Arc::clone(&readers);
        let (writer_path, writer_context) = (path.to_owned(), context.clone());
        let synchronous = options.synchronous;
        std::thread::Builder::new()
            .name("graph-runtime-sqlite-writer".to_owned())
            .spawn(move || {
                let prepared = open_connection(&writer_path, &writer_context).and_then(|conn| {
                    let file = prepare_file(&conn, &writer_context, synchronous)?;
                    Ok(Writer::new(conn, writer_context, file))
                });
                match prepared {
                    Ok(writer) => {
                        let _ = opened.send(Ok(()));
                        writer.run(&receiver, &writer_readers);
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
        ready.recv().map_err(|_| {
            store_error(
                format!(
                    "the SQLite writer thread of `{}` stopped while opening",
                    context.label
                ),
                None,
            )
        })??;
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
            }),
        })
    }

    /// Finishes the writes already sent, stops the writer thread, copies the WAL into the
    /// database file and closes it: afterwards the `.db` file alone holds every checkpoint
    /// (when no other store or process has the file open; see below).
    ///
    /// **Clones.** Closing closes the store for every clone of this handle: they share one
    /// writer thread. Writes any clone sent before `close` complete normally; every call on a
    /// clone after `close` fails with [`Error::Store`] holding a [`StoreClosed`] (test for it
    /// with `downcast_ref`), as does a second `close`. Other stores opened separately on the
    /// same file (another `SqliteStore::open`, another process) are not affected.
    ///
    /// Fails with [`Error::Store`] if SQLite reports an error while closing, or with
    /// [`Error::StoreBusy`] if the WAL could not be copied into the file in full because
    /// another connection or process kept using the file for longer than the busy timeout
    /// (a later `open` and `close`, once it is done, copies it); the store is closed either way, and the `-wal`
    /// file then still holds committed checkpoints (it belongs to the database: never delete
    /// it). Dropping every handle without `close` is also safe: the writer finishes and closes
    /// the file in the background, with no way to report an error.
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
    /// match clone.sessions().await {
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
            .map_err(|_| stopped())?;
        receiver.await.map_err(|_| stopped())?
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
    /// Refuses to overwrite: fails with [`Error::Store`] if something already exists at
    /// `path` (even an empty file), if its directory does not exist or is not writable, or if
    /// the path is not valid UTF-8. It never leaves a partial file behind on its own errors,
    /// except when the disk fills up or the process dies while writing (SQLite removes nothing
    /// it has started); such a file fails to open or is refused as not ours.
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
    /// assert_eq!(copy.sessions().await?, store.sessions().await?);
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
        self.inner.commands.send(make(reply)).map_err(|_| gone())?;
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
        self.read(move |conn, context| {
            let mut statement = conn
                .prepare_cached(LATEST)
                .map_err(|e| context.error("read the latest checkpoint", e))?;
            let mut rows = statement
                .query([&session])
                .map_err(|e| context.error("read the latest checkpoint", e))?;
            match rows
                .next()
                .map_err(|e| context.error("read the latest checkpoint", e))?
            {
                Some(row) => Ok(Some(read_checkpoint(row, &session, context)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        // A sequence number SQLite cannot hold cannot have been stored.
        let Ok(wanted) = i64::try_from(seq) else {
            return Ok(None);
        };
        let session = session.to_owned();
        self.read(move |conn, context| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT seq, node, status, wait_node, created_at_us, bytes, depends_on \
                     FROM checkpoints \
                     WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) AND seq = ?2",
                )
                .map_err(|e| context.error("read a checkpoint", e))?;
            let mut rows = statement
                .query(params![&session, wanted])
                .map_err(|e| context.error("read a checkpoint", e))?;
            match rows
                .next()
                .map_err(|e| context.error("read a checkpoint", e))?
            {
                Some(row) => Ok(Some(read_checkpoint(row, &session, context)?)),
                None => Ok(None),
            }
        })
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
        self.read(move |conn, context| {
            let failed = |e| context.error("read a chain of checkpoints", e);
            // One range scan of the (session_id, seq) index: one statement, one snapshot.
            let mut statement = conn
                .prepare_cached(
                    "SELECT seq, node, status, wait_node, created_at_us, bytes, depends_on \
                     FROM checkpoints \
                     WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) \
                     AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
                )
                .map_err(failed)?;
            let mut rows = statement
                .query(params![&session, from, to])
                .map_err(failed)?;
            let mut chain = Vec::new();
            while let Some(row) = rows.next().map_err(failed)? {
                chain.push(read_checkpoint(row, &session, context)?);
            }
            Ok(chain)
        })
        .await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        let session = session.to_owned();
        self.read(move |conn, context| {
            let failed = |e| context.error("list checkpoints", e);
            let mut statement = conn
                .prepare_cached(
                    "SELECT seq, node, status, wait_node, created_at_us, length(bytes) \
                     FROM checkpoints \
                     WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) ORDER BY seq",
                )
                .map_err(failed)?;
            let mut rows = statement.query([&session]).map_err(failed)?;
            let mut list = Vec::new();
            while let Some(row) = rows.next().map_err(failed)? {
                let fields = read_fields(row, &session, context)?;
                let length: i64 = column(row, 5, "length(bytes)", &session, fields.seq, context)?;
                list.push(CheckpointMeta {
                    seq: fields.seq,
                    node: fields.node,
                    status: fields.status,
                    bytes: u64::try_from(length).unwrap_or(0),
                    created_at: fields.created_at,
                });
            }
            Ok(list)
        })
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

    async fn sessions(&self) -> Result<Vec<String>> {
        self.read(|conn, context| {
            let failed = |e| context.error("list sessions", e);
            let mut statement = conn
                .prepare_cached(
                    "SELECT name FROM sessions AS s \
                     WHERE EXISTS (SELECT 1 FROM checkpoints WHERE session_id = s.id) \
                     ORDER BY name",
                )
                .map_err(failed)?;
            let mut rows = statement.query([]).map_err(failed)?;
            let mut names = Vec::new();
            while let Some(row) = rows.next().map_err(failed)? {
                let name: String = row.get(0).map_err(|e| {
                    store_error(
                        format!(
                            "the sessions table of `{}` holds a bad name: {e}",
                            context.label
                        ),
                        None,
                    )
                })?;
                names.push(name);
            }
            Ok(names)
        })
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

// ---------------------------------------------------------------------------------------------
// Errors

/// The error inside [`Error::Store`], [`Error::StoreBusy`] or [`Error::StoreDamaged`] for
/// everything SQLite reports.
///
/// Its message already says what failed, where, and what SQLite said, so it has no `source`.
#[derive(Debug)]
struct SqliteError {
    message: String,
    #[allow(dead_code)] // kept for `Debug`: the original error with its extended code
    sqlite: Option<rusqlite::Error>,
    /// Which store variant of [`Error`] it goes into.
    fault: StoreFault,
}

impl SqliteError {
    /// An error whose kind is that of SQLite's code (none: [`StoreFault::Failed`]).
    fn new(message: String, sqlite: Option<rusqlite::Error>) -> Self {
        let fault = sqlite
            .as_ref()
            .and_then(rusqlite::Error::sqlite_error_code)
            .map_or(StoreFault::Failed, fault_of);
        SqliteError {
            message,
            sqlite,
            fault,
        }
    }

    fn into_error(self) -> Error {
        self.fault.error(Box::new(self))
    }

    /// The error for one of several callers that share it (a failed group commit).
    fn shared(self: &Arc<Self>) -> Error {
        self.fault.error(Box::new(Arc::clone(self)))
    }
}

/// Which store variant of [`Error`] a SQLite result code goes into: busy and locked can
/// succeed later, a corrupt file or one that is not a database never will, and the rest
/// (I/O errors, a full disk, permissions, a file that cannot be opened) are [`Error::Store`].
fn fault_of(code: ErrorCode) -> StoreFault {
    match code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreFault::Busy,
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreFault::Damaged,
        _ => StoreFault::Failed,
    }
}

impl fmt::Display for SqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteError {}

/// The error inside [`Error::Store`] (not [`Error::StoreBusy`]: retrying on a closed handle
/// never succeeds) for any call on a [`SqliteStore`] (or one of its clones)
/// after [`SqliteStore::close`].
///
/// ```
/// use graph_runtime::{Error, SqliteStore};
/// use graph_runtime::store::{Store, StoreClosed};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> graph_runtime::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("orders.db"))?;
/// let clone = store.clone();
/// store.close().await?;
/// let error = clone.latest("order-1").await.unwrap_err();
/// let closed = match &error {
///     Error::Store(e) => e.downcast_ref::<StoreClosed>(),
///     _ => None,
/// };
/// assert!(closed.is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct StoreClosed {
    file: Arc<str>,
}

impl StoreClosed {
    /// The file of the closed store, as it was given to `open`.
    ///
    /// ```
    /// # use graph_runtime::store::StoreClosed;
    /// fn report(closed: &StoreClosed) -> String {
    ///     format!("{} is closed", closed.file())
    /// }
    /// # let _ = report;
    /// ```
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Display for StoreClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the SQLite store `{}` was closed with `SqliteStore::close`; open it again to use it",
            self.file
        )
    }
}

impl std::error::Error for StoreClosed {}

/// A closed store is [`Error::Store`]: retrying on the same handle cannot help, opening the
/// file again can.
fn closed_error(label: &Arc<str>) -> Error {
    Error::Store(Box::new(StoreClosed {
        file: Arc::clone(label),
    }))
}

fn store_error(message: String, sqlite: Option<rusqlite::Error>) -> Error {
    SqliteError::new(message, sqlite).into_error()
}

/// What every error message names: the file and the busy timeout.
#[derive(Debug, Clone)]
struct Context {
    label: Arc<str>,
    busy_timeout: Duration,
}

impl Context {
    fn new(path: &Path, busy_timeout: Duration) -> Self {
        Context {
            label: path.display().to_string().into(),
            busy_timeout,
        }
    }

    fn sqlite_error(&self, action: &str, error: rusqlite::Error) -> SqliteError {
        let message = match error.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
                "could not {action} in `{}`: another connection or process held the database \
                 lock for longer than the busy timeout ({} ms): {error}",
                self.label,
                self.busy_timeout.as_millis()
            ),
            _ => format!("could not {action} in `{}`: {error}", self.label),
        };
        SqliteError::new(message, Some(error))
    }

    fn error(&self, action: &str, error: rusqlite::Error) -> Error {
        self.sqlite_error(action, error).into_error()
    }

    /// Refuses the file: `fault` is [`StoreFault::Damaged`] for a file that is not ours (of
    /// another application, or a schema version we never wrote), [`StoreFault::Failed`] for
    /// one we cannot use here (no WAL, a newer schema).
    fn refuse(&self, fault: StoreFault, why: String) -> Error {
        SqliteError {
            message: format!("cannot use `{}` as a checkpoint store: {why}", self.label),
            sqlite: None,
            fault,
        }
        .into_error()
    }
}

fn corrupt(session: &str, seq: u64, reason: String) -> Error {
    Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    }
}

// ---------------------------------------------------------------------------------------------
// Opening the file

fn open_connection(path: &Path, context: &Context) -> Result<Connection> {
    // No SQLITE_OPEN_URI: a path is a path, even one that starts with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| context.error("open the file", e))?;
    // rusqlite panics on a timeout above i32::MAX milliseconds; never hand it one.
    let timeout = context
        .busy_timeout
        .min(Duration::from_millis(i32::MAX as u64));
    conn.busy_timeout(timeout)
        .map_err(|e| context.error("set the busy timeout", e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// What [`prepare_file`] found out about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileInfo {
    /// `auto_vacuum = INCREMENTAL`: free pages can be given back to the file system in slices.
    /// Files created by release 1 have `auto_vacuum = NONE` until [`SqliteStore::compact`].
    incremental_vacuum: bool,
}

/// Switches the file to WAL, creates the schema on a new file, migrates an older one, and
/// checks it.
fn prepare_file(
    conn: &Connection,
    context: &Context,
    synchronous: Synchronous,
) -> Result<FileInfo> {
    // Both only take effect on a file that has no tables yet, which is what we want; on an
    // older file without auto-vacuum, the next `VACUUM` (`compact`) applies the second.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;"
    ))
    .map_err(|e| context.error("set the page size", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| context.error("switch to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(context.refuse(
            StoreFault::Failed,
            format!(
                "SQLite could not switch it to WAL mode (it stays in `{mode}` mode); SqliteStore \
             needs a file on a local disk (use MemoryStore for an in-memory store)"
            ),
        ));
    }
    // The WAL file is reused after each checkpoint; this cap truncates it back after a burst
    // (a large delete, `compact`) so that it does not keep its largest size for ever.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};",
        synchronous.pragma_value()
    ))
    .map_err(|e| context.error("set `synchronous`", e))?;

    if check_schema(conn, context)? != FileState::Ready {
        create_or_migrate(conn, context)?;
    }
    let auto_vacuum: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
        .map_err(|e| context.error("read `auto_vacuum`", e))?;
    Ok(FileInfo {
        incremental_vacuum: auto_vacuum == AUTO_VACUUM_INCREMENTAL,
    })
}

/// Creates the schema on a new file, or migrates an older version, under the write lock.
///
/// Several processes may open the same new or old file at once: each takes the write lock in
/// turn (waiting up to the busy timeout) and looks again, so the first one creates or migrates
/// and the others find the file ready.
fn create_or_migrate(conn: &Connection, context: &Context) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| context.error("start creating the schema", e))?;
    let created = match check_schema(conn, context) {
        Ok(FileState::Ready) => Ok(()),
        Ok(FileState::Empty) => conn
            .execute_batch(&format!(
                "{SCHEMA}
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| context.error("create the schema", e)),
        Ok(FileState::Version1) => {
            tracing::info!(file = %context.label, "migrating checkpoint schema 1 -> 3");
            conn.execute_batch(&format!(
                "{MIGRATE_1_TO_2}
                 {MIGRATE_2_TO_3}
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| context.error("migrate the schema from version 1 to 3", e))
        }
        Ok(FileState::Version2) => {
            tracing::info!(file = %context.label, "migrating checkpoint schema 2 -> 3");
            conn.execute_batch(&format!(
                "{MIGRATE_2_TO_3}
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| context.error("migrate the schema from version 2 to 3", e))
        }
        Err(e) => Err(e),
    };
    if !conn.is_autocommit() {
        // Also closes the transaction when the schema was already there.
        let rollback = conn.execute_batch("ROLLBACK");
        if created.is_ok() {
            rollback.map_err(|e| context.error("finish opening the file", e))?;
        }
    }
    created
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    /// No tables and no marks: ours to initialize.
    Empty,
    /// Our schema, at the version this release writes.
    Ready,
    /// Our schema at version 1 (release 1): migrated on open.
    Version1,
    /// Our schema at version 2 (incremental checkpoints, no leases): migrated on open.
    Version2,
}

fn check_schema(conn: &Connection, context: &Context) -> Result<FileState> {
    let read = |pragma: &str| -> Result<i32> {
        conn.pragma_query_value(None, pragma, |row| row.get(0))
            .map_err(|e| context.error("read the schema version", e))
    };
    let application_id = read("application_id")?;
    let version = read("user_version")?;
    if application_id == APPLICATION_ID {
        return match version {
            SCHEMA_VERSION => Ok(FileState::Ready),
            1 => Ok(FileState::Version1),
            2 => Ok(FileState::Version2),
            v if v > SCHEMA_VERSION => Err(context.refuse(
                StoreFault::Failed,
                format!(
                    "it uses checkpoint schema version {v}, written by a newer release of \
                 graph-runtime; this release understands version {SCHEMA_VERSION} only, so \
                 upgrade graph-runtime to open it"
                ),
            )),
            v => Err(context.refuse(
                StoreFault::Damaged,
                format!(
                    "it has the unknown checkpoint schema version {v} (this release writes version \
                 {SCHEMA_VERSION})"
                ),
            )),
        };
    }
    if application_id != 0 {
        return Err(context.refuse(
            StoreFault::Damaged,
            format!(
                "it belongs to another application (SQLite application_id {application_id:#010x}, \
             not graph-runtime's {APPLICATION_ID:#010x})"
            ),
        ));
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| context.error("read the schema", e))?;
    if tables != 0 || version != 0 {
        return Err(context.refuse(
            StoreFault::Damaged,
            "it is a SQLite database of another application (it has tables or a user_version \
             but no graph-runtime mark); give SqliteStore a file of its own"
                .to_owned(),
        ));
    }
    Ok(FileState::Empty)
}

// ---------------------------------------------------------------------------------------------
// The writer thread

type Reply<T> = oneshot::Sender<Result<T>>;

/// What async callers ask the writer thread to do.
enum Command {
    Append {
        session: String,
        append: Append,
        reply: Reply<()>,
    },
    Prune {
        session: String,
        keep_last: u64,
        reply: Reply<u64>,
    },
    Delete {
        session: String,
        reply: Reply<bool>,
    },
    Claim {
        claim: Claim,
        reply: Reply<Vec<Lease>>,
    },
    Renew {
        lease: Lease,
        ttl: Duration,
        reply: Reply<Lease>,
    },
    Release {
        lease: Lease,
        reply: Reply<bool>,
    },
    /// `VACUUM` outside any transaction: runs alone, between batches.
    Compact {
        reply: Reply<()>,
    },
    /// Stop after the commands sent before this one; see [`SqliteStore::close`].
    Close {
        reply: Reply<()>,
    },
}

impl Command {
    /// The caller dropped its future before the writer got to this command.
    fn is_abandoned(&self) -> bool {
        match self {
            Command::Append { reply, .. } => reply.is_closed(),
            Command::Prune { reply, .. } => reply.is_closed(),
            Command::Delete { reply, .. } => reply.is_closed(),
            // A claim nobody waits for would hold its sessions until the leases expire.
            Command::Claim { reply, .. } => reply.is_closed(),
            Command::Renew { reply, .. } => reply.is_closed(),
            Command::Release { reply, .. } => reply.is_closed(),
            // Run even when nobody waits: a dropped `close` future still closes.
            Command::Compact { .. } | Command::Close { .. } => false,
        }
    }

    /// Runs alone, outside the group-commit transaction.
    fn is_solo(&self) -> bool {
        matches!(self, Command::Compact { .. } | Command::Close { .. })
    }

    fn fail(self, error: &Arc<SqliteError>) {
        self.fail_with(|| error.shared());
    }

    fn fail_with(self, error: impl Fn() -> Error) {
        // A caller that went away does not need its answer.
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(error()))),
            Command::Prune { reply, .. } => drop(reply.send(Err(error()))),
            Command::Delete { reply, .. } => drop(reply.send(Err(error()))),
            Command::Claim { reply, .. } => drop(reply.send(Err(error()))),
            Command::Renew { reply, .. } => drop(reply.send(Err(error()))),
            Command::Release { reply, .. } => drop(reply.send(Err(error()))),
            Command::Compact { reply } | Command::Close { reply } => {
                drop(reply.send(Err(error())));
            }
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

/// The next command for the writer: briefly looked for awake (see [`LINGER`]), then waited for
/// asleep. `None` once every sender is gone.
fn next_command(commands: &mpsc::Receiver<Command>) -> Option<Command> {
    let idle_since = Instant::now();
    loop {
        match commands.try_recv() {
            Ok(command) => return Some(command),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if idle_since.elapsed() < LINGER => {
                std::thread::yield_now();
            }
            Err(mpsc::TryRecvError::Empty) => return commands.recv().ok(),
        }
    }
}

/// A command that ran inside the open transaction; its reply waits for `COMMIT`.
enum Executed {
    Append(Reply<()>, Result<()>),
    Prune(Reply<u64>, Result<u64>),
    Delete(Reply<bool>, Result<bool>),
    Claim(Reply<Vec<Lease>>, Result<Vec<Lease>>),
    Renew(Reply<Lease>, Result<Lease>),
    Release(Reply<bool>, Result<bool>),
}

impl Executed {
    fn failed(&self) -> bool {
        match self {
            Executed::Append(_, result) => result.is_err(),
            Executed::Prune(_, result) => result.is_err(),
            Executed::Delete(_, result) => result.is_err(),
            Executed::Claim(_, result) => result.is_err(),
            Executed::Renew(_, result) => result.is_err(),
            Executed::Release(_, result) => result.is_err(),
        }
    }

    /// An explicit prune or delete removed rows: worth giving their pages back. (Retention in
    /// `append` frees a page now and then, which the following appends reuse.)
    fn freed_pages(&self) -> bool {
        match self {
            Executed::Append(..)
            | Executed::Claim(..)
            | Executed::Renew(..)
            | Executed::Release(..) => false,
            Executed::Prune(_, result) => matches!(result, Ok(n) if *n > 0),
            Executed::Delete(_, result) => matches!(result, Ok(true)),
        }
    }

    fn finish(self, commit: &Result<(), Arc<SqliteError>>) {
        fn answer<T>(reply: Reply<T>, result: Result<T>, commit: &Result<(), Arc<SqliteError>>) {
            let result = match commit {
                Ok(()) => result,
                Err(error) => Err(error.shared()),
            };
            // A caller that went away does not need its answer.
            let _ = reply.send(result);
        }
        match self {
            Executed::Append(reply, result) => answer(reply, result, commit),
            Executed::Prune(reply, result) => answer(reply, result, commit),
            Executed::Delete(reply, result) => answer(reply, result, commit),
            Executed::Claim(reply, result) => answer(reply, result, commit),
            Executed::Renew(reply, result) => answer(reply, result, commit),
            Executed::Release(reply, result) => answer(reply, result, commit),
        }
    }
}

struct Writer {
    conn: Connection,
    context: Context,
    /// The file has `auto_vacuum = INCREMENTAL` (see [`FileInfo`]).
    incremental_vacuum: bool,
    /// Free pages may be waiting to be given back to the file system.
    vacuum_pending: bool,
}

impl Writer {
    fn new(conn: Connection, context: Context, file: FileInfo) -> Self {
        Writer {
            conn,
            context,
            incremental_vacuum: file.incremental_vacuum,
            vacuum_pending: false,
        }
    }

    fn run(mut self, commands: &mpsc::Receiver<Command>, readers: &ReaderPool) {
        let mut solo = None;
        let close = loop {
            // Ends when every `SqliteStore` handle is gone and the queue is drained, or at
            // `close`.
            let Some(first) = solo.take().or_else(|| self.next_command(commands)) else {
                break None;
            };
            match first {
                Command::Close { reply } => break Some(reply),
                Command::Compact { reply } => {
                    let _ = reply.send(self.compact());
                    continue;
                }
                _ => {}
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) if command.is_solo() => {
                        solo = Some(command);
                        break;
                    }
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if self.commit_batch(batch) && self.incremental_vacuum {
                self.vacuum_pending = true;
            }
        };
        if close.is_some() {
            // Whatever other clones sent after `close`: refused, with the typed error.
            let label = self.context.label.clone();
            while let Ok(command) = commands.try_recv() {
                command.fail_with(|| closed_error(&label));
            }
        }
        // Give back what deletes freed before the file is left alone.
        while self.vacuum_pending {
            self.vacuum_slice();
        }
        // The last connection to close checkpoints the WAL into the file: let that be this
        // thread's, not a read connection dropped on some other thread.
        readers.close_idle();
        let result = match close {
            Some(_) => self.shut_down(),
            None => Ok(()),
        };
        if let Some(reply) = close {
            let _ = reply.send(result);
        }
    }

    /// The next command: between commands, give free pages back in slices, as long as
    /// nothing is waiting.
    fn next_command(&mut self, commands: &mpsc::Receiver<Command>) -> Option<Command> {
        while self.vacuum_pending {
            match commands.try_recv() {
                Ok(command) => return Some(command),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => self.vacuum_slice(),
            }
        }
        next_command(commands)
    }

    /// Gives up to [`VACUUM_SLICE_PAGES`] free pages back to the file system, in a transaction
    /// of its own (short enough that an append arriving meanwhile waits for one slice only).
    fn vacuum_slice(&mut self) {
        // Stepped to the end: each step of this pragma frees one page.
        let result = self
            .conn
            .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_SLICE_PAGES})"))
            .and_then(|()| {
                self.conn
                    .prepare_cached("PRAGMA freelist_count")?
                    .query_row([], |row| row.get::<_, i64>(0))
            });
        match result {
            Ok(free) => self.vacuum_pending = free > 0,
            Err(error) => {
                // Not worth failing anything for: the pages stay free and get reused.
                tracing::warn!(%error, file = %self.context.label, "incremental vacuum failed");
                self.vacuum_pending = false;
            }
        }
    }

    /// `VACUUM`: rewrites the whole file without free pages, switching a release-1 file to
    /// incremental auto-vacuum on the way, then empties the WAL.
    fn compact(&mut self) -> Result<()> {
        self.exec("PRAGMA auto_vacuum = INCREMENTAL")
            .and_then(|()| self.conn.execute_batch("VACUUM"))
            .map_err(|e| self.context.error("compact the file (VACUUM)", e))?;
        let auto_vacuum: i64 = self
            .conn
            .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
            .map_err(|e| self.context.error("read `auto_vacuum`", e))?;
        self.incremental_vacuum = auto_vacuum == AUTO_VACUUM_INCREMENTAL;
        self.vacuum_pending = false;
        // VACUUM wrote the whole file into the WAL; copy it back and cut the WAL to nothing.
        self.checkpoint_wal("compact the file")
    }

    /// Copies the WAL into the database file and truncates it to zero bytes.
    fn checkpoint_wal(&self, action: &str) -> Result<()> {
        let (busy, _log, _done): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(|e| self.context.error(action, e))?;
        if busy != 0 {
            return Err(SqliteError {
                message: format!(
                    "could not {action} in `{}`: another connection or process kept reading or                      writing the file for longer than the busy timeout, so the WAL could not be                      copied into it in full; the `-wal` file still holds committed checkpoints                      and must stay next to the database",
                    self.context.label
                ),
                sqlite: None,
                fault: StoreFault::Busy,
            }
            .into_error());
        }
        Ok(())
    }

    /// The end of `close`: empty the WAL into the file, then close the connection.
    fn shut_down(self) -> Result<()> {
        let checkpoint = self.checkpoint_wal("close the store");
        let context = self.context;
        let closed = self
            .conn
            .close()
            .map_err(|(_, e)| context.error("close the store", e));
        checkpoint.and(closed)
    }

    /// Runs every command of `batch` in one transaction, then answers each caller. Returns
    /// whether a committed command freed pages (see [`Executed::freed_pages`]).
    fn commit_batch(&self, batch: Vec<Command>) -> bool {
        let batch: Vec<Command> = batch.into_iter().filter(|c| !c.is_abandoned()).collect();
        if batch.is_empty() {
            return false;
        }
        tracing::trace!(commands = batch.len(), "sqlite group commit");
        if let Err(error) = self.begin() {
            let error = Arc::new(error);
            self.rollback();
            batch.into_iter().for_each(|c| c.fail(&error));
            return false;
        }
        if batch.len() == 1 {
            // Alone in its transaction, a command needs no savepoint: on failure the whole
            // transaction is rolled back and the caller gets the command's own error. This is
            // the common case of one session checkpointing on its own; two statements less.
            let Some(command) = batch.into_iter().next() else {
                return false;
            };
            let (done, broken) = self.execute(command, false);
            let commit = if done.failed() || broken.is_some() {
                self.rollback();
                Ok(())
            } else {
                self.exec("COMMIT")
                    .map_err(|e| Arc::new(self.context.sqlite_error("commit checkpoints", e)))
            };
            if commit.is_err() {
                self.rollback();
            }
            let freed = commit.is_ok() && done.freed_pages();
            done.finish(&commit);
            return freed;
        }
        let mut executed = Vec::with_capacity(batch.len());
        let mut batch = batch.into_iter();
        let mut broken = None;
        for command in batch.by_ref() {
            let (done, failure) = self.execute(command, true);
            executed.push(done);
            if failure.is_some() {
                broken = failure;
                break;
            }
        }
        let commit = match broken {
            None => self
                .exec("COMMIT")
                .map_err(|e| Arc::new(self.context.sqlite_error("commit checkpoints", e))),
            Some(error) => Err(Arc::new(SqliteError {
                message: format!(
                    "{}; the whole group commit that held this command was rolled back",
                    error.message
                ),
                sqlite: error.sqlite,
                fault: error.fault,
            })),
        };
        if let Err(error) = &commit {
            tracing::warn!(%error, "sqlite group commit failed");
            self.rollback();
            batch.for_each(|c| c.fail(error));
        }
        let freed = commit.is_ok() && executed.iter().any(Executed::freed_pages);
        for done in executed {
            done.finish(&commit);
        }
        freed
    }

    /// `BEGIN IMMEDIATE`, then a look at the schema version: a newer release may have migrated
    /// the file while this one runs, and then this one must stop writing.
    fn begin(&self) -> Result<(), SqliteError> {
        self.exec("BEGIN IMMEDIATE")
            .map_err(|e| self.context.sqlite_error("start a write transaction", e))?;
        let version: i32 = self
            .conn
            .prepare_cached("PRAGMA user_version")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(|e| self.context.sqlite_error("read the schema version", e))?;
        if version != SCHEMA_VERSION {
            return Err(SqliteError {
                message: format!(
                    "cannot write to `{}`: it now has checkpoint schema version {version}, not \
                     {SCHEMA_VERSION} (migrated by another release of graph-runtime?)",
                    self.context.label
                ),
                sqlite: None,
                fault: StoreFault::Failed,
            });
        }
        Ok(())
    }

    /// Runs one command; its reply waits for the transaction's end. The second value is set
    /// when the transaction can no longer be committed. `isolated`: inside its own savepoint,
    /// so that its failure undoes only its changes (needed when others share the transaction).
    fn execute(&self, command: Command, isolated: bool) -> (Executed, Option<SqliteError>) {
        match command {
            Command::Append {
                session,
                append,
                reply,
            } => {
                let (result, broken) =
                    self.maybe_in_savepoint(isolated, |w| w.append(&session, &append));
                (Executed::Append(reply, result), broken)
            }
            Command::Prune {
                session,
                keep_last,
                reply,
            } => {
                let (result, broken) =
                    self.maybe_in_savepoint(isolated, |w| w.prune(&session, keep_last));
                (Executed::Prune(reply, result), broken)
            }
            Command::Delete { session, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.delete(&session));
                (Executed::Delete(reply, result), broken)
            }
            Command::Claim { claim, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.claim(&claim));
                (Executed::Claim(reply, result), broken)
            }
            Command::Renew { lease, ttl, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.renew(&lease, ttl));
                (Executed::Renew(reply, result), broken)
            }
            Command::Release { lease, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.release(&lease));
                (Executed::Release(reply, result), broken)
            }
            // `run` never puts these in a batch; answer rather than panic if that changes.
            Command::Compact { reply } | Command::Close { reply } => {
                let error = "a compact or close command reached a group commit".to_owned();
                let result = Err(store_error(error, None));
                (Executed::Append(reply, result), None)
            }
        }
    }

    fn maybe_in_savepoint<T>(
        &self,
        isolated: bool,
        command: impl FnOnce(&Self) -> Result<T>,
    ) -> (Result<T>, Option<SqliteError>) {
        if isolated {
            self.in_savepoint(command)
        } else {
            (command(self), None)
        }
    }

    /// Runs `command` inside its own savepoint, so that its failure undoes its changes only.
    fn in_savepoint<T>(
        &self,
        command: impl FnOnce(&Self) -> Result<T>,
    ) -> (Result<T>, Option<SqliteError>) {
        if let Err(error) = self.exec("SAVEPOINT command") {
            let error = self.context.sqlite_error("open a savepoint", error);
            let result = SqliteError {
                message: error.message.clone(),
                sqlite: None,
                fault: error.fault,
            };
            return (Err(result.into_error()), Some(error));
        }
        let result = command(self);
        let end = match &result {
            Ok(_) => self.exec("RELEASE command"),
            // Some SQLite errors (I/O, full disk) roll back the whole transaction by themselves.
            Err(error) if self.conn.is_autocommit() => {
                let message = format!("SQLite rolled back the transaction after: {error}");
                let fault = error.store_fault().unwrap_or(StoreFault::Failed);
                return (
                    result,
                    Some(SqliteError {
                        message,
                        sqlite: None,
                        fault,
                    }),
                );
            }
            Err(_) => self
                .exec("ROLLBACK TO command")
                .and_then(|()| self.exec("RELEASE command")),
        };
        match end {
            Ok(()) => (result, None),
            Err(error) => (
                result,
                Some(self.context.sqlite_error("close a savepoint", error)),
            ),
        }
    }

    fn append(&self, session: &str, append: &Append) -> Result<()> {
        let Append {
            expected,
            checkpoint,
            keep_last,
            fence,
            wake,
            workflow,
        } = append;
        let failed = |e| self.context.error("append a checkpoint", e);
        let seq = i64::try_from(checkpoint.seq).map_err(|_| {
            store_error(
                format!(
                    "sequence number {} of session `{session}` is above {}, the largest integer \
                     SQLite stores",
                    checkpoint.seq,
                    i64::MAX
                ),
                None,
            )
        })?;
        let depends_on = checkpoint
            .depends_on
            .map(|d| {
                i64::try_from(d).map_err(|_| {
                    store_error(
                        format!(
                            "checkpoint {} of session `{session}` depends on sequence number \
                             {d}, above {}, the largest integer SQLite stores",
                            checkpoint.seq,
                            i64::MAX
                        ),
                        None,
                    )
                })
            })
            .transpose()?;
        let (session_id, found, epoch) = self.session(session)?;
        // The fence first: a writer whose lease is lost must stop, whatever its seq.
        if let Some(fence) = *fence
            && (session_id.is_none() || i64::try_from(fence).ok() != Some(epoch))
        {
            return Err(Error::LeaseLost {
                session: session.to_owned(),
                epoch: fence,
            });
        }
        let conflict = |found| Error::Conflict {
            session: session.to_owned(),
            expected: *expected,
            found,
        };
        // The same rules as `MemoryStore`: the latest must be `expected`, and a new sequence
        // number must be above it.
        match found {
            Some(latest) if *expected != Some(latest) || checkpoint.seq <= latest => {
                return Err(conflict(found));
            }
            None if expected.is_some() => return Err(conflict(None)),
            _ => {}
        }
        let session_id = match session_id {
            Some(id) => id,
            None => {
                self.conn
                    .prepare_cached("INSERT INTO sessions (name) VALUES (?1)")
                    .and_then(|mut s| s.execute([session]))
                    .map_err(failed)?;
                self.conn.last_insert_rowid()
            }
        };
        let (status, wait_node) = match &checkpoint.status {
            Status::Running => (STATUS_RUNNING, None),
            Status::Waiting { node } => (STATUS_WAITING, Some(node.as_str())),
            Status::Completed => (STATUS_COMPLETED, None),
        };
        self.conn
            .prepare_cached(
                "INSERT INTO checkpoints \
                 (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    session_id,
                    seq,
                    &*checkpoint.node,
                    status,
                    wait_node,
                    unix_micros(checkpoint.created_at),
                    &checkpoint.bytes,
                    depends_on,
                ])
            })
            .map_err(failed)?;
        if let Some(keep_last) = keep_last {
            self.prune_session(session_id, *keep_last).map_err(failed)?;
        }
        if wake.is_some() || workflow.is_some() {
            // `?2`: whether to set the wake time; `?3`: its delay (NULL: never).
            let (workflow, graph_hash) = match workflow {
                Some((name, hash)) => (Some(name.as_str()), Some(*hash as i64)),
                None => (None, None),
            };
            self.conn
                .prepare_cached(concat!(
                    "UPDATE sessions SET \
                     wake_at_us = CASE WHEN ?2 THEN ",
                    now_us!(),
                    " + ?3 ELSE wake_at_us END, \
                     workflow = coalesce(?4, workflow), \
                     graph_hash = CASE WHEN ?4 IS NULL THEN graph_hash ELSE ?5 END \
                     WHERE id = ?1"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        session_id,
                        wake.is_some(),
                        wake.and_then(Wake::delay_micros),
                        workflow,
                        graph_hash,
                    ])
                })
                .map_err(failed)?;
        }
        Ok(())
    }

    /// See [`Store::claim`]: one `UPDATE … RETURNING` per listed workflow and graph hash, on
    /// one reading of SQLite's clock.
    fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let failed = |e| self.context.error("claim sessions", e);
        let now: i64 = self
            .conn
            .prepare_cached(concat!("SELECT ", now_us!()))
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(failed)?;
        let expires = now.saturating_add(micros(claim.ttl.min(MAX_WAKE_DELAY)));
        let expires_at = from_unix_micros(expires).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut leases = Vec::new();
        for (workflow, graph_hash) in claim.pairs() {
            let remaining = claim.limit.saturating_sub(leases.len());
            if remaining == 0 {
                break;
            }
            let mut statement = self
                .conn
                .prepare_cached(
                    "UPDATE sessions SET lease_owner = ?1, lease_epoch = lease_epoch + 1, \
                     lease_expires_us = ?2 \
                     WHERE id IN (SELECT id FROM sessions \
                         WHERE workflow = ?3 AND graph_hash = ?4 AND wake_at_us <= ?5 \
                         AND (lease_owner IS NULL OR lease_expires_us <= ?5) \
                         ORDER BY wake_at_us LIMIT ?6) \
                     RETURNING name, lease_epoch",
                )
                .map_err(failed)?;
            let limit = i64::try_from(remaining).unwrap_or(i64::MAX);
            let mut rows = statement
                .query(params![
                    &claim.owner,
                    expires,
                    workflow,
                    graph_hash as i64,
                    now,
                    limit
                ])
                .map_err(failed)?;
            while let Some(row) = rows.next().map_err(failed)? {
                let session: String = row.get(0).map_err(failed)?;
                let epoch: i64 = row.get(1).map_err(failed)?;
                let epoch = u64::try_from(epoch)
                    .map_err(|_| corrupt(&session, 0, format!("negative lease epoch {epoch}")))?;
                leases.push(Lease {
                    session,
                    epoch,
                    owner: claim.owner.clone(),
                    workflow: workflow.to_owned(),
                    graph_hash,
                    expires_at,
                });
            }
        }
        Ok(leases)
    }

    /// See [`Store::renew`].
    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let failed = |e| self.context.error("renew a lease", e);
        let lost = || Error::LeaseLost {
            session: lease.session.clone(),
            epoch: lease.epoch,
        };
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Err(lost());
        };
        let expires: Option<i64> = self
            .conn
            .prepare_cached(concat!(
                "UPDATE sessions SET lease_expires_us = ",
                now_us!(),
                " + ?4 WHERE name = ?1 AND lease_owner = ?2 AND lease_epoch = ?3 \
                 RETURNING lease_expires_us"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![
                        &lease.session,
                        &lease.owner,
                        epoch,
                        micros(ttl.min(MAX_WAKE_DELAY))
                    ],
                    |row| row.get(0),
                )
            })
            .optional()
            .map_err(failed)?;
        let expires = expires.ok_or_else(lost)?;
        Ok(Lease {
            expires_at: from_unix_micros(expires).unwrap_or(SystemTime::UNIX_EPOCH),
            ..lease.clone()
        })
    }

    /// See [`Store::release`].
    fn release(&self, lease: &Lease) -> Result<bool> {
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Ok(false);
        };
        self.conn
            .prepare_cached(
                "UPDATE sessions SET lease_owner = NULL, lease_expires_us = NULL \
                 WHERE name = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            )
            .and_then(|mut s| s.execute(params![&lease.session, &lease.owner, epoch]))
            .map(|released| released > 0)
            .map_err(|e| self.context.error("release a lease", e))
    }

    fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        let (Some(session_id), ..) = self.session(session)? else {
            return Ok(0);
        };
        self.prune_session(session_id, keep_last)
            .map_err(|e| self.context.error("prune checkpoints", e))
    }

    /// Removes all but the newest `keep_last` checkpoints (never the newest one), except those
    /// a kept checkpoint depends on: everything from the smallest of the oldest kept `seq` and
    /// the kept rows' `depends_on` stays (the rule of `Store::prune`).
    fn prune_session(&self, session_id: i64, keep_last: u64) -> rusqlite::Result<u64> {
        let keep = i64::try_from(keep_last.max(1)).unwrap_or(i64::MAX);
        // `kept` walks the (session_id, seq) index backwards over the kept window only. With no
        // kept rows (no session) the bound is NULL and nothing matches.
        self.conn
            .prepare_cached(
                "WITH kept AS (SELECT seq, depends_on FROM checkpoints WHERE session_id = ?1 \
                               ORDER BY seq DESC LIMIT ?2) \
                 DELETE FROM checkpoints WHERE session_id = ?1 AND seq < (\
                     SELECT min(min(seq), coalesce(min(depends_on), min(seq))) FROM kept)",
            )?
            .execute(params![session_id, keep])
            .map(|removed| removed as u64)
    }

    fn delete(&self, session: &str) -> Result<bool> {
        let (Some(session_id), ..) = self.session(session)? else {
            return Ok(false);
        };
        let failed = |e| self.context.error("delete a session", e);
        self.conn
            .prepare_cached("DELETE FROM checkpoints WHERE session_id = ?1")
            .and_then(|mut s| s.execute([session_id]))
            .map_err(failed)?;
        self.conn
            .prepare_cached("DELETE FROM sessions WHERE id = ?1")
            .and_then(|mut s| s.execute([session_id]))
            .map_err(failed)?;
        Ok(true)
    }

    /// The session's row id, latest sequence number and lease epoch, as this transaction
    /// sees them (epoch 0 when there is no session).
    fn session(&self, session: &str) -> Result<(Option<i64>, Option<u64>, i64)> {
        let row: Option<(i64, Option<i64>, i64)> = self
            .conn
            .prepare_cached(
                "SELECT id, (SELECT seq FROM checkpoints WHERE session_id = sessions.id \
                 ORDER BY seq DESC LIMIT 1), lease_epoch FROM sessions WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row([session], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            })
            .optional()
            .map_err(|e| self.context.error("read the latest sequence number", e))?;
        let Some((id, latest, epoch)) = row else {
            return Ok((None, None, 0));
        };
        let latest = latest
            .map(|seq| {
                u64::try_from(seq).map_err(|_| {
                    corrupt(
                        session,
                        0,
                        format!("negative sequence number {seq} in the store"),
                    )
                })
            })
            .transpose()?;
        Ok((Some(id), latest, epoch))
    }

    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(drop)
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            // Nothing more to do if even this fails: the next BEGIN reports the problem.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reads

struct ReaderPool {
    path: PathBuf,
    context: Context,
    idle: Mutex<Vec<Connection>>,
    /// Set when the writer stops: connections in use are closed when their read ends.
    closed: AtomicBool,
}

impl ReaderPool {
    fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // A panic elsewhere cannot leave the list inconsistent: it is only pushed and popped.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, read: impl FnOnce(&Connection, &Context) -> Result<T>) -> Result<T> {
        let pooled = self.idle().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn, &self.context);
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_READERS && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> Result<Connection> {
        let conn = open_connection(&self.path, &self.context)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| self.context.error("open a read connection", e))?;
        // No schema check: the writer checked (and migrated) the file when the store opened.
        Ok(conn)
    }

    fn close_idle(&self) {
        let mut idle = self.idle();
        self.closed.store(true, Ordering::Release);
        idle.clear();
    }
}

/// The metadata columns shared by `latest`, `get` and `list`: seq, node, status, wait_node,
/// created_at_us.
struct Fields {
    seq: u64,
    node: String,
    status: Status,
    created_at: SystemTime,
}

fn read_fields(row: &Row<'_>, session: &str, context: &Context) -> Result<Fields> {
    let raw_seq: i64 = column(row, 0, "seq", session, 0, context)?;
    let seq = u64::try_from(raw_seq)
        .map_err(|_| corrupt(session, 0, format!("negative sequence number {raw_seq}")))?;
    let node: String = column(row, 1, "node", session, seq, context)?;
    let code: i64 = column(row, 2, "status", session, seq, context)?;
    let wait_node: Option<String> = column(row, 3, "wait_node", session, seq, context)?;
    let status = match (code, wait_node) {
        (STATUS_RUNNING, _) => Status::Running,
        (STATUS_WAITING, Some(node)) => Status::Waiting { node },
        (STATUS_WAITING, None) => {
            return Err(corrupt(
                session,
                seq,
                "waiting status without its node".to_owned(),
            ));
        }
        (STATUS_COMPLETED, _) => Status::Completed,
        (code, _) => return Err(corrupt(session, seq, format!("unknown status code {code}"))),
    };
    let micros: i64 = column(row, 4, "created_at_us", session, seq, context)?;
    let created_at = from_unix_micros(micros).ok_or_else(|| {
        corrupt(
            session,
            seq,
            format!("creation time {micros} µs out of range"),
        )
    })?;
    Ok(Fields {
        seq,
        node,
        status,
        created_at,
    })
}

fn read_checkpoint(row: &Row<'_>, session: &str, context: &Context) -> Result<Checkpoint> {
    let Fields {
        seq,
        node,
        status,
        created_at,
    } = read_fields(row, session, context)?;
    let bytes: Vec<u8> = column(row, 5, "bytes", session, seq, context)?;
    let depends_on: Option<i64> = column(row, 6, "depends_on", session, seq, context)?;
    let depends_on = depends_on
        .map(|d| {
            u64::try_from(d)
                .map_err(|_| corrupt(session, seq, format!("negative `depends_on` {d}")))
        })
        .transpose()?;
    Ok(Checkpoint {
        seq,
        node: Cow::Owned(node),
        status,
        created_at,
        bytes,
        depends_on,
        unsealed: false,
    })
}

/// One column of a checkpoint row; a value of the wrong type means the row is corrupt.
fn column<T: FromSql>(
    row: &Row<'_>,
    index: usize,
    name: &str,
    session: &str,
    seq: u64,
    context: &Context,
) -> Result<T> {
    row.get(index).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => {
            corrupt(session, seq, format!("bad `{name}` column: {e}"))
        }
        e => context.error("read a checkpoint", e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn checkpoint(seq: u64) -> Checkpoint {
        Checkpoint {
            seq,
            node: Cow::Borrowed("a"),
            status: Status::Running,
            created_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_000),
            bytes: vec![seq as u8; 8],
            depends_on: None,
            unsealed: false,
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

    #[test]
    fn abandoned_commands_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        let (a1, r1) = append("s", None, 1);
        drop(r1);
        writer.commit_batch(vec![a1]);
        assert_eq!(writer.session("s").unwrap(), (None, None, 0));
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
}
