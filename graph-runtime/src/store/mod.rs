//! Where checkpoints live: the [`Store`] trait and its implementations.
//!
//! A store keeps, per session, an ordered chain of encoded checkpoints. It never looks inside
//! the bytes: the runner encodes and verifies them (see the crate docs on the envelope), the
//! store only guarantees ordering, compare-and-swap on sequence numbers and retention.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::borrow::Cow;
use std::future::Future;
use std::time::SystemTime;

pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteOptions, SqliteStore, StoreClosed, Synchronous};
use crate::{Result, Status};

/// One saved checkpoint: the encoded envelope plus the metadata a store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The sequence number, strictly increasing within a session.
    pub seq: u64,
    /// The cursor: the node that runs next (`"END"` once completed).
    pub node: Cow<'static, str>,
    /// Where the session stands at this checkpoint.
    pub status: Status,
    /// When the checkpoint was written. A store may keep it with less precision
    /// (`SqliteStore` keeps microseconds).
    pub created_at: SystemTime,
    /// The encoded envelope (header, bincode body, checksum).
    pub bytes: Vec<u8>,
    /// The oldest earlier checkpoint of the same session that this one needs in order to be
    /// read: `Some(seq)` for an incremental checkpoint (a delta whose chain starts at the full
    /// checkpoint `seq`), `None` for a self-contained one.
    ///
    /// Retention honours it: a store never removes a checkpoint that a kept checkpoint
    /// depends on (see [`Store::prune`]).
    pub depends_on: Option<u64>,
}

/// A compare-and-swap append: what [`Store::append`] is asked to do.
#[derive(Debug)]
#[non_exhaustive]
pub struct Append {
    /// The sequence number the session's latest checkpoint must have, or `None` when the
    /// session must not exist yet. Anything else is a [`Conflict`](crate::Error::Conflict).
    pub expected: Option<u64>,
    /// The checkpoint to add; its `seq` must be greater than `expected` (a new session, with
    /// `expected: None`, may start at any `seq`: a fork keeps its origin's numbering).
    pub checkpoint: Checkpoint,
    /// After appending, keep only this many newest checkpoints (in the same transaction), plus
    /// the older ones they [depend on](Checkpoint::depends_on). Retention never removes the
    /// checkpoint just written: `Some(0)` keeps it too.
    pub keep_last: Option<u64>,
}

impl Append {
    /// An append of `checkpoint` after `expected`, keeping `keep_last` checkpoints.
    pub fn new(expected: Option<u64>, checkpoint: Checkpoint, keep_last: Option<u64>) -> Self {
        Append {
            expected,
            checkpoint,
            keep_last,
        }
    }
}

/// Persistent, ordered, compare-and-swap storage of checkpoints.
///
/// All methods are async so that a store may do I/O; a store that blocks (SQLite) moves that
/// work off the async worker threads. Every implementation passes the same conformance suite.
pub trait Store: Send + Sync + 'static {
    /// Appends a checkpoint if the session's latest sequence number is `append.expected`
    /// (`None`: the session must not exist), then applies `keep_last`, atomically.
    ///
    /// Fails with [`Error::Conflict`](crate::Error::Conflict) when another writer got there
    /// first, or when `checkpoint.seq` is not above `expected`; nothing is written then.
    /// A store may refuse a sequence number above `i64::MAX` (SQL integers are signed) with
    /// [`Error::Store`](crate::Error::Store).
    ///
    /// `Ok` means the checkpoint is stored as durably as the store promises. If the future is
    /// dropped before it completes, the append may or may not have happened: read
    /// [`latest`](Store::latest) to find out.
    fn append(&self, session: &str, append: Append) -> impl Future<Output = Result<()>> + Send;

    /// The newest checkpoint of a session, or `None` if the session does not exist.
    ///
    /// Like every read, fails with [`Error::Corrupt`](crate::Error::Corrupt) when what the
    /// store holds for this checkpoint is unreadable (the bytes themselves are checked by the
    /// runner, not the store).
    fn latest(&self, session: &str) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// The checkpoint with this sequence number, if it is kept.
    fn get(
        &self,
        session: &str,
        seq: u64,
    ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send;

    /// The kept checkpoints of a session with `from <= seq <= to`, oldest first: what reading
    /// an incremental checkpoint needs (its chain from the full checkpoint it depends on).
    ///
    /// The default calls [`get`](Store::get) for each sequence number in the range; a store
    /// with a query language answers it in one round trip.
    fn chain(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<Checkpoint>>> + Send {
        async move {
            let mut out = Vec::new();
            let mut seq = from;
            while seq <= to {
                if let Some(checkpoint) = self.get(session, seq).await? {
                    out.push(checkpoint);
                }
                let Some(next) = seq.checked_add(1) else {
                    break;
                };
                seq = next;
            }
            Ok(out)
        }
    }

    /// Every kept checkpoint of a session, oldest first, without the bytes' contents (empty
    /// when the session does not exist).
    fn list(&self, session: &str) -> impl Future<Output = Result<Vec<CheckpointMeta>>> + Send;

    /// Removes all but the newest `keep_last` checkpoints; returns how many were removed.
    /// Never removes the newest checkpoint: `keep_last` 0 keeps one.
    ///
    /// Never removes a checkpoint that a kept one [depends on](Checkpoint::depends_on):
    /// with `c` the oldest checkpoint that `keep_last` keeps, everything from the smallest of
    /// `c.seq` and every kept checkpoint's `depends_on` stays.
    fn prune(&self, session: &str, keep_last: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Removes a session and all its checkpoints; returns whether it existed.
    fn delete(&self, session: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The ids of all sessions, sorted (by bytes, as `str`'s `Ord` sorts).
    fn sessions(&self) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// A checkpoint's metadata as [`Store::list`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// The sequence number.
    pub seq: u64,
    /// The cursor node name.
    pub node: String,
    /// The status.
    pub status: Status,
    /// The size of the encoded checkpoint, in bytes.
    pub bytes: u64,
    /// When it was written.
    pub created_at: SystemTime,
}

/// Microseconds since the Unix epoch, as the SQL stores keep times (negative before 1970,
/// saturating far outside ±292,000 years).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn unix_micros(time: SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    }
}

/// The inverse of [`unix_micros`]; `None` when the time does not fit a `SystemTime`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn from_unix_micros(micros: i64) -> Option<SystemTime> {
    let offset = std::time::Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        std::time::UNIX_EPOCH.checked_add(offset)
    } else {
        std::time::UNIX_EPOCH.checked_sub(offset)
    }
}
