//! [`SqliteOptions`] and [`Synchronous`]: how a [`SqliteStore`] opens its file and how durable
//! each commit is.

use std::path::Path;
use std::time::Duration;

use super::SqliteStore;
use crate::error::{Error, Result};

pub(super) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a lone writer polls for its commit before it sleeps; see
/// [`SqliteOptions::spin_wait`]. Off by default: measured on W3 (one session, FULL), polling
/// bought little throughput for two to three times the CPU, and lost throughput outright
/// when the cores were busy with other work.
const DEFAULT_SPIN_WAIT: Duration = Duration::ZERO;
/// Commands queued for the writer before callers wait; see [`SqliteOptions::command_capacity`].
/// Two group commits' worth ([`MAX_BATCH`](super::writer::MAX_BATCH) is 512): the writer never
/// runs dry while one batch commits, and a burst larger than that waits rather than queues.
const DEFAULT_COMMAND_CAPACITY: usize = 1024;

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
    /// state. The runner then resumes from there and runs the lost steps again, with the same
    /// idempotency keys. Several times faster per step than `Full`.
    ///
    /// **What can be lost** is a tail of the acknowledged appends, of every session of the
    /// file together: the file comes back as it was after some earlier commit, so if an append
    /// survives, every append acknowledged before it was made survives too, and each session's
    /// checkpoints stay gapless. The tail holds at most the commits made since SQLite last
    /// synced the WAL, which it does whenever it copies the WAL into the database file (a WAL
    /// checkpoint: by itself once the WAL holds 1,000 pages, about 8 MiB of checkpoints at the
    /// store's 8 KiB pages; when the store [closes](SqliteStore::close); when another
    /// connection runs `PRAGMA wal_checkpoint`) and when it starts writing the WAL again from
    /// its beginning after one. Appends acknowledged before that sync are never lost.
    Normal,
}

impl Synchronous {
    pub(super) fn pragma_value(self) -> &'static str {
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
    pub(super) synchronous: Synchronous,
    pub(super) busy_timeout: Duration,
    pub(super) spin_wait: Duration,
    pub(super) command_capacity: usize,
    /// The first bad setting a builder method was given, checked there and only there;
    /// [`open`](SqliteOptions::open) returns it as [`Error::InvalidConfig`].
    invalid: Option<&'static str>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            spin_wait: DEFAULT_SPIN_WAIT,
            command_capacity: DEFAULT_COMMAND_CAPACITY,
            invalid: None,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Synchronous::Full`], a busy timeout of 5 seconds, no spin wait and room
    /// for 1,024 queued commands.
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
    /// with [`Error::StoreBusy`](crate::Error::StoreBusy) (retrying later can succeed). Capped
    /// at about 24 days.
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

    /// How many writes (appends, prunes, deletes, claims, …) may wait in the queue of the
    /// store's writer thread (default 1,024, shared by every clone of the store). When it is
    /// full, a caller waits asynchronously for room, its task yielding and no thread blocked:
    /// a burst of writers beyond what the disk absorbs slows down rather than piling up
    /// commands in memory. The writer takes up to 512 queued commands into one group commit,
    /// so a capacity below that makes batches smaller; even 1 works.
    ///
    /// 0 cannot work (no command could ever be queued): it is refused here, and
    /// [`open`](SqliteOptions::open) then fails with [`Error::InvalidConfig`] without touching
    /// the file.
    ///
    /// ```
    /// use graph_runtime::{Error, SqliteOptions};
    /// # fn main() -> graph_runtime::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = SqliteOptions::new()
    ///     .command_capacity(64)
    ///     .open(dir.path().join("orders.db"))?;
    /// # drop(store);
    ///
    /// let refused = SqliteOptions::new()
    ///     .command_capacity(0)
    ///     .open(dir.path().join("other.db"));
    /// assert!(matches!(refused, Err(Error::InvalidConfig(_))));
    /// assert!(!dir.path().join("other.db").exists());
    /// # Ok(())
    /// # }
    /// ```
    pub fn command_capacity(mut self, commands: usize) -> Self {
        if commands == 0 {
            self.reject(
                "`SqliteOptions::command_capacity(0)`: the writer's queue needs room for 1",
            );
        }
        self.command_capacity = commands;
        self
    }

    /// Records `problem` as the options' error, unless an earlier setting already was one
    /// (the first mistake is the one to fix first).
    fn reject(&mut self, problem: &'static str) {
        self.invalid.get_or_insert(problem);
    }

    /// Creates or opens the store file at `path` with these options; see
    /// [`SqliteStore::open`]. Fails with [`Error::InvalidConfig`] if a builder method was
    /// given a value that cannot work, before the file is touched.
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
        if let Some(problem) = self.invalid {
            return Err(Error::InvalidConfig(problem));
        }
        SqliteStore::open_with(path.as_ref(), self.clone())
    }
}
