//! Where checkpoints live: the [`Store`] trait and its implementations.
//!
//! A store keeps, per session, an ordered chain of encoded checkpoints. It never looks inside
//! the bytes: the runner encodes and verifies them (see the crate docs on the envelope), the
//! store only guarantees ordering, compare-and-swap on sequence numbers and retention.

pub mod conformance;
mod erased;
mod lease;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::borrow::Cow;
use std::future::Future;
use std::time::{Duration, SystemTime};

pub(crate) use self::erased::{ErasedStore, HoldsStore};
pub use self::lease::{Claim, Lease, Wake};
pub(crate) use self::memory::Handle as MemoryHandle;
pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresOptions, PostgresStore};
pub(crate) use self::record::code as status_code;
pub use self::record::{
    Audit, AuditKind, GraphVersion, InputSource, SessionFilter, SessionPage, SessionRecord, Status,
    StatusKind, VersionCount,
};
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteOptions, SqliteStore, StoreClosed, Synchronous};
use crate::error::Result;

/// One saved checkpoint: the encoded envelope plus the metadata a store indexes.
///
/// Outside this crate (a store of another crate, its tests), build one with
/// [`Checkpoint::new`] and the setters: the record may gain fields, so it is
/// `#[non_exhaustive]`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use graph_runtime::Status;
/// use graph_runtime::store::Checkpoint;
///
/// let written = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let checkpoint = Checkpoint::new(7, "review", Status::Running, b"envelope".to_vec())
///     .created_at(written)
///     .depends_on(5); // an incremental checkpoint: it needs checkpoints 5 and 6 to be read
/// assert_eq!((checkpoint.seq, &*checkpoint.node), (7, "review"));
/// assert_eq!(checkpoint.created_at, written);
/// assert_eq!(checkpoint.depends_on, Some(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The sequence number, strictly increasing within a session.
    pub seq: u64,
    /// The cursor: the node that runs next (`"END"` once completed).
    pub node: Cow<'static, str>,
    /// Where the session stands at this checkpoint.
    pub status: Status,
    /// When the checkpoint was written. A runner reads it from the system's coarse real-time
    /// clock on Linux (`CLOCK_REALTIME_COARSE`, as precise as the kernel's tick: 1 to 4 ms),
    /// which costs a few nanoseconds where a precise read costs 20 to 30, on every
    /// checkpoint; elsewhere from [`SystemTime::now`]. A store may keep it with less
    /// precision (`SqliteStore` keeps microseconds).
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
    /// Set by the runner for `MemoryStore` alone: the envelope's checksum is not written yet
    /// (see `checkpoint::Seal`), and this is the envelope's own function that writes it. The
    /// store calls it before the bytes leave it, without looking inside them.
    pub(crate) seal_later: Option<SealLater>,
}

/// The envelope's function that writes a checksum the writer left for later (into the last
/// four bytes, bound to the session id): what a [`Checkpoint`] of the runner's carries to
/// `MemoryStore`, so that the envelope alone knows how a checksum is made.
#[derive(Clone, Copy)]
pub(crate) struct SealLater(pub(crate) fn(session: &str, bytes: &mut [u8]));

impl std::fmt::Debug for SealLater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealLater")
    }
}

/// Two pending seals are alike: what matters is that the checksum is still to be written.
impl PartialEq for SealLater {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SealLater {}

impl Checkpoint {
    /// A self-contained checkpoint `seq` at cursor `node`, written now
    /// ([`SystemTime::now`]); change the time with [`created_at`](Checkpoint::created_at()),
    /// make it incremental with [`depends_on`](Checkpoint::depends_on()).
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::Checkpoint;
    /// let done = Checkpoint::new(3, "END", Status::Completed, Vec::new());
    /// assert_eq!(done.depends_on, None);
    /// ```
    pub fn new(
        seq: u64,
        node: impl Into<Cow<'static, str>>,
        status: Status,
        bytes: Vec<u8>,
    ) -> Self {
        Checkpoint {
            seq,
            node: node.into(),
            status,
            created_at: SystemTime::now(),
            bytes,
            depends_on: None,
            seal_later: None,
        }
    }

    /// The same checkpoint, written at `time`.
    ///
    /// ```
    /// use std::time::UNIX_EPOCH;
    /// use graph_runtime::Status;
    /// use graph_runtime::store::Checkpoint;
    /// let old = Checkpoint::new(1, "a", Status::Running, vec![1]).created_at(UNIX_EPOCH);
    /// assert_eq!(old.created_at, UNIX_EPOCH);
    /// ```
    pub fn created_at(mut self, time: SystemTime) -> Self {
        self.created_at = time;
        self
    }

    /// The same checkpoint as an incremental one, which needs the checkpoints from `seq` on
    /// to be read (see [`Checkpoint::depends_on`](Checkpoint#structfield.depends_on)).
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::Checkpoint;
    /// let delta = Checkpoint::new(9, "a", Status::Running, vec![1]).depends_on(4);
    /// assert_eq!(delta.depends_on, Some(4));
    /// ```
    pub fn depends_on(mut self, seq: u64) -> Self {
        self.depends_on = Some(seq);
        self
    }
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
    /// the older ones they [depend on](Checkpoint#structfield.depends_on). Retention never removes the
    /// checkpoint just written: `Some(0)` keeps it too.
    pub keep_last: Option<u64>,
    /// The lease epoch the writer holds (see [`Append::fence`]); `None`: not fenced.
    pub fence: Option<u64>,
    /// The session's new wake time (see [`Append::wake`]); `None`: unchanged.
    pub wake: Option<Wake>,
    /// The workflow name and graph hash to record for the session (see
    /// [`Append::workflow`]); `None`: unchanged.
    pub workflow: Option<(String, u64)>,
    /// The state schema fingerprint of the checkpoint's state (see [`Append::state_schema`]);
    /// `None`: unchanged.
    pub state_schema: Option<u64>,
    /// Why the checkpoint was written, when it was not an ordinary step (see
    /// [`Append::audit`]).
    pub audit: Option<Box<Audit>>,
    /// Every node the session waits at, when it waits at more than its status names (see
    /// [`Append::waiting`]); empty otherwise.
    pub waiting: Vec<String>,
    /// The session this one is a child of (see [`Append::parent`]); `None`: none, or
    /// unchanged.
    pub parent: Option<String>,
}

impl Append {
    /// An append of `checkpoint` after `expected`, keeping `keep_last` checkpoints: not
    /// fenced, leaving the session's wake time and workflow as they are.
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint};
    /// let next = Checkpoint::new(5, "charge", Status::Running, b"state".to_vec());
    /// let append = Append::new(Some(4), next, Some(10)); // after 4, keep the newest 10
    /// assert_eq!(append.fence, None);
    /// ```
    pub fn new(expected: Option<u64>, checkpoint: Checkpoint, keep_last: Option<u64>) -> Self {
        Append {
            expected,
            checkpoint,
            keep_last,
            fence: None,
            wake: None,
            workflow: None,
            state_schema: None,
            audit: None,
            waiting: Vec::new(),
            parent: None,
        }
    }

    /// Records that the session is a child of session `parent` (a subgraph node of `parent`
    /// runs it), when this append creates the session; on an append to an existing session
    /// it is ignored (a session's parent never changes). [`SessionRecord::parent`] returns
    /// it and [`SessionFilter::parent`] finds a parent's children by it: what cancelling or
    /// deleting a parent does to its children relies on it, never on the children's ids.
    ///
    /// The parent must exist when the child is created: otherwise the append fails with
    /// [`Error::SessionNotFound`](crate::Error::SessionNotFound) naming the parent and writes
    /// nothing. The store checks it in the transaction that creates the child, so a child
    /// created while its parent is being [deleted](Store::delete) either goes with it or is
    /// refused.
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint};
    /// let first = Checkpoint::new(0, "search", Status::Running, Vec::new());
    /// let append = Append::new(None, first, None).parent("ticket-7");
    /// assert_eq!(append.parent.as_deref(), Some("ticket-7"));
    /// ```
    pub fn parent(mut self, parent: &str) -> Self {
        self.parent = Some(parent.to_owned());
        self
    }

    /// Keeps `audit` with the checkpoint: who gave an input and why, an operator's edit, a
    /// failure's message. [`Store::list`] returns it in [`CheckpointMeta::audit`].
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Audit, AuditKind, Checkpoint};
    /// let next = Checkpoint::new(5, "END", Status::Cancelled, Vec::new());
    /// let append = Append::new(Some(4), next, None).audit(Audit::new(AuditKind::Cancelled).by("bob"));
    /// assert_eq!(append.audit.unwrap().actor.as_deref(), Some("bob"));
    /// ```
    pub fn audit(mut self, audit: Audit) -> Self {
        self.audit = Some(Box::new(audit));
        self
    }

    /// Records every node the session waits at, for [`Store::sessions`] to find it by any of
    /// them: in a parallel region a session waits at each interrupt branch without its input,
    /// while its status names the first. Without it, the waiting nodes are the one the
    /// status names (none unless it waits).
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint};
    /// let waiting = Status::Waiting { node: "legal".to_owned() };
    /// let next = Checkpoint::new(5, "decide", waiting, Vec::new());
    /// let append = Append::new(Some(4), next, None).waiting(["legal", "finance"]);
    /// assert_eq!(append.waiting, ["legal", "finance"]);
    /// ```
    pub fn waiting<'a>(mut self, nodes: impl IntoIterator<Item = &'a str>) -> Self {
        self.waiting = nodes.into_iter().map(str::to_owned).collect();
        self
    }

    /// The nodes a store records the session as waiting at after this append: none unless
    /// the checkpoint's status waits, else [`Append::waiting_nodes`] sorted by bytes, each
    /// once (the order [`SessionRecord::waiting`] has in every store).
    pub(crate) fn recorded_waits(&self) -> Vec<&str> {
        if self.checkpoint.status.kind() != StatusKind::Waiting {
            return Vec::new();
        }
        let mut nodes: Vec<&str> = if self.waiting.is_empty() {
            self.checkpoint.status.waiting_node().into_iter().collect()
        } else {
            self.waiting.iter().map(String::as_str).collect()
        };
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// The nodes the appended checkpoint waits at: [`Append::waiting`] if set, else the one
    /// its status names.
    pub fn waiting_nodes(&self) -> Vec<String> {
        if self.waiting.is_empty() {
            self.checkpoint
                .status
                .waiting_node()
                .map(|node| vec![node.to_owned()])
                .unwrap_or_default()
        } else {
            self.waiting.clone()
        }
    }

    /// Writes only if the session's lease epoch is still `epoch`, the one the writer's
    /// [`Lease`] holds: otherwise (another worker claimed the session since, or the session
    /// does not exist) the append fails with [`Error::LeaseLost`](crate::Error::LeaseLost)
    /// and writes nothing, whatever the sequence numbers. The epoch is checked in the same
    /// statement (PostgreSQL) or transaction (SQLite) as the compare-and-swap, and wins over
    /// it: a writer whose lease is lost gets `LeaseLost`, not `Conflict`.
    ///
    /// A lease that expired without another claim keeps its epoch, so its owner's writes
    /// still succeed: nobody else can have written meanwhile.
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint};
    /// let next = Checkpoint::new(5, "charge", Status::Running, Vec::new());
    /// let append = Append::new(Some(4), next, None).fence(3);
    /// assert_eq!(append.fence, Some(3));
    /// ```
    pub fn fence(mut self, epoch: u64) -> Self {
        self.fence = Some(epoch);
        self
    }

    /// Sets when the session becomes runnable (see [`Wake`]), in the same statement or
    /// transaction as the append: [`Wake::Now`] when it should run on (a new session, an
    /// input given), [`Wake::After`] for a deadline, [`Wake::Never`] when it waits without
    /// one or has completed. Without it the wake time stays as it was.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint, Wake};
    /// let waiting = Status::Waiting { node: "review".to_owned() };
    /// let next = Checkpoint::new(5, "review", waiting, Vec::new());
    /// // No decision within an hour: a worker runs `review` without one.
    /// let append = Append::new(Some(4), next, None).wake(Wake::After(Duration::from_secs(3600)));
    /// # drop(append);
    /// ```
    pub fn wake(mut self, wake: Wake) -> Self {
        self.wake = Some(wake);
        self
    }

    /// Records that the session belongs to workflow `name` at graph hash `graph_hash`, the
    /// pair a [`Claim`] must list to take it. A new session's first append sets it; a
    /// worker of a newer release that resumes a session of an older graph writes its own
    /// hash. Without it the recorded pair stays as it was (none for a new session, which no
    /// claim then takes).
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint, Wake};
    /// let first = Checkpoint::new(1, "validate", Status::Running, Vec::new());
    /// let enqueue = Append::new(None, first, None).workflow("checkout", 0x1234).wake(Wake::Now);
    /// assert_eq!(enqueue.workflow, Some(("checkout".to_owned(), 0x1234)));
    /// ```
    pub fn workflow(mut self, name: &str, graph_hash: u64) -> Self {
        self.workflow = Some((name.to_owned(), graph_hash));
        self
    }

    /// Records the state schema fingerprint the session's checkpoints are now written in
    /// (the runner sets it on a session's first append and whenever it changes, with
    /// [`Append::workflow`]), so that [`Store::versions_in_use`] counts sessions per schema
    /// without decoding a byte. Without it the recorded fingerprint stays as it was.
    ///
    /// ```
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Append, Checkpoint};
    /// let first = Checkpoint::new(1, "validate", Status::Running, Vec::new());
    /// let append = Append::new(None, first, None).workflow("checkout", 0x1234).state_schema(0x99);
    /// assert_eq!(append.state_schema, Some(0x99));
    /// ```
    pub fn state_schema(mut self, fingerprint: u64) -> Self {
        self.state_schema = Some(fingerprint);
        self
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
    /// Never removes a checkpoint that a kept one [depends on](Checkpoint#structfield.depends_on):
    /// with `c` the oldest checkpoint that `keep_last` keeps, everything from the smallest of
    /// `c.seq` and every kept checkpoint's `depends_on` stays.
    fn prune(&self, session: &str, keep_last: u64) -> impl Future<Output = Result<u64>> + Send;

    /// Removes a session and all its checkpoints, and every session below it: its children
    /// (the sessions whose [`parent`](Append::parent) it is), theirs, and so on, all in one
    /// transaction; returns whether `session` itself existed. Its children are removed even when
    /// it no longer exists (a file written by an earlier release may hold such children).
    ///
    /// Together with the rule that a child cannot be created under a parent that does not
    /// exist (see [`Append::parent`]), this is what keeps a store free of orphans: a run of the
    /// parent still in flight when it is deleted cannot start a child of it again, and a crash
    /// cannot leave half a tree.
    ///
    /// ```
    /// use graph_runtime::{MemoryStore, Status};
    /// use graph_runtime::store::{Append, Checkpoint, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// let store = MemoryStore::new();
    /// let first = || Checkpoint::new(0, "start", Status::Running, Vec::new());
    /// store.append("ticket-7", Append::new(None, first(), None)).await?;
    /// store.append("ticket-7/research/1", Append::new(None, first(), None).parent("ticket-7")).await?;
    /// assert!(store.delete("ticket-7").await?);
    /// assert!(store.session("ticket-7/research/1").await?.is_none()); // the child went with it
    /// # Ok(())
    /// # }
    /// ```
    fn delete(&self, session: &str) -> impl Future<Output = Result<bool>> + Send;

    /// One page of the sessions that pass every condition of `filter`, in the order of their
    /// ids (by bytes, as `str`'s `Ord` sorts), each with what the store knows of it without
    /// decoding a state ([`SessionRecord`]): its workflow, status, the nodes it waits at, its
    /// latest sequence number, when it was created and last written, its wake time and lease.
    ///
    /// The store applies every condition itself, from an index where it has one (the SQL
    /// stores answer a filtered first page of 100,000 sessions in a few milliseconds):
    /// workflow, status kind, waiting node (any of the nodes a session waits at, see
    /// [`Append::waiting`]), written before or since a time, and the
    /// [`after`](SessionFilter::after) cursor. A page holds at most
    /// [`limit`](SessionFilter::limit) sessions (clamped to 1 to
    /// [`SessionFilter::MAX_LIMIT`], whatever the field holds); its
    /// [`next`](SessionPage::next) is the last id of the page when more sessions may follow,
    /// `None` on the last page. A session deleted or written between two pages is seen as it
    /// is when its page is read.
    ///
    /// ```
    /// use graph_runtime::{MemoryStore, Status};
    /// use graph_runtime::store::{Append, Checkpoint, SessionFilter, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// let store = MemoryStore::new();
    /// for (id, status) in [("a", Status::Running), ("b", Status::Waiting { node: "review".into() })] {
    ///     let checkpoint = Checkpoint::new(1, "review", status, Vec::new());
    ///     store.append(id, Append::new(None, checkpoint, None)).await?;
    /// }
    /// let page = store.sessions(&SessionFilter::new().waiting_at("review")).await?;
    /// assert_eq!(page.sessions.len(), 1);
    /// assert_eq!((page.sessions[0].session.as_str(), page.next), ("b", None));
    /// # Ok(())
    /// # }
    /// ```
    fn sessions(&self, filter: &SessionFilter) -> impl Future<Output = Result<SessionPage>> + Send;

    /// What the store knows of one session without decoding a state (what
    /// [`sessions`](Store::sessions) lists for it), or `None` if it does not exist.
    ///
    /// ```
    /// use graph_runtime::{MemoryStore, Status};
    /// use graph_runtime::store::{Append, Checkpoint, Store};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// let store = MemoryStore::new();
    /// let first = Checkpoint::new(1, "validate", Status::Running, Vec::new());
    /// store.append("order-1", Append::new(None, first, None).workflow("checkout", 7)).await?;
    /// let record = store.session("order-1").await?.expect("the session");
    /// assert_eq!((record.seq, record.workflow.as_deref()), (1, Some("checkout")));
    /// assert_eq!(store.session("order-2").await?, None);
    /// # Ok(())
    /// # }
    /// ```
    fn session(&self, session: &str) -> impl Future<Output = Result<Option<SessionRecord>>> + Send;

    /// Takes up to `claim.limit` sessions that are runnable (their wake time has come, see
    /// [`Append::wake`]), that no live lease holds (none, or expired), and whose workflow and
    /// graph hash `claim` lists. Each one's lease epoch rises by one, its owner becomes
    /// `claim.owner` and its lease expires `claim.ttl` from now, on the database's clock.
    /// See [the lease protocol](Lease) for how the rest fits together.
    ///
    /// Concurrent claims (from this process or others) never take the same session while its
    /// lease lives; a claim takes fewer sessions than `limit` when others hold the rest or
    /// are taking them at the same moment (it skips them rather than wait). The oldest wake
    /// times go first.
    fn claim(&self, claim: &Claim) -> impl Future<Output = Result<Vec<Lease>>> + Send;

    /// Extends `lease` to `ttl` from now (database clock), if its owner still holds it at its
    /// epoch; returns the lease with its new expiry. Fails with
    /// [`Error::LeaseLost`](crate::Error::LeaseLost) when another claim raised the epoch,
    /// or the lease was released, or the session deleted. (A lease that expired but that
    /// nobody claimed since is extended: nobody else can have written.)
    fn renew(&self, lease: &Lease, ttl: Duration) -> impl Future<Output = Result<Lease>> + Send;

    /// Gives `lease` up: the session keeps its epoch and wake time and no longer has an
    /// owner, so a worker can claim it at once if it is runnable. Returns whether the lease
    /// was still held (`false`: it was lost or released before, which is not an error).
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool>> + Send;

    /// Waits until sessions may have become runnable, or `timeout` has passed, whichever
    /// comes first; then a worker calls [`claim`](Store::claim). A wake-up may be spurious,
    /// and work may become runnable without one (a lease expiring, another process writing to
    /// a SQLite file), so callers keep the timeout short (a worker uses 1 s): it is the poll
    /// that bounds how late a session is noticed.
    ///
    /// - [`MemoryStore`] wakes on every append that sets a wake time and every release, and
    ///   when the earliest [`Wake::After`] deadline it holds comes.
    /// - `PostgresStore` listens (`LISTEN`, on a connection of its own outside the pool) to
    ///   the notifications a trigger sends when a session becomes runnable or is released,
    ///   from any process, and sleeps until a [`Wake::After`] deadline it was told of.
    /// - `SqliteStore` wakes on its own appends and releases; what other processes write
    ///   to the file is noticed by the timeout (polling).
    fn wait_for_work(&self, timeout: Duration) -> impl Future<Output = ()> + Send;

    /// Keeps `version` (its workflow, graph hash and canonical description) unless the store
    /// already has that workflow and hash; returns whether it was new. A runner calls it once,
    /// before its first write, so that a later release can say what changed
    /// ([`Store::graph_version`]).
    ///
    /// The default keeps nothing and returns `Ok(false)`: a store that does not implement it
    /// still works, and a graph mismatch then says only that the hashes differ.
    fn record_graph(&self, version: &GraphVersion) -> impl Future<Output = Result<bool>> + Send {
        let _ = version;
        async { Ok(false) }
    }

    /// The kept version of workflow `workflow` with hash `graph_hash`, if the store has it.
    /// The default has none.
    fn graph_version(
        &self,
        workflow: &str,
        graph_hash: u64,
    ) -> impl Future<Output = Result<Option<GraphVersion>>> + Send {
        let _ = (workflow, graph_hash);
        async { Ok(None) }
    }

    /// Every kept graph version of workflow `workflow`, oldest first (by when it was
    /// recorded, then by hash). The default has none.
    fn graph_versions(
        &self,
        workflow: &str,
    ) -> impl Future<Output = Result<Vec<GraphVersion>>> + Send {
        let _ = workflow;
        async { Ok(Vec::new()) }
    }

    /// How many sessions stand at each `(workflow, graph hash, state schema)`: the pair
    /// recorded by [`Append::workflow`] and the fingerprint recorded by
    /// [`Append::state_schema`], counted from the store's index of sessions, never by
    /// reading checkpoints. Sorted by workflow, graph hash, then state schema (`None`
    /// first). Sessions with no recorded workflow are not counted.
    ///
    /// The default counts nothing.
    fn versions_in_use(&self) -> impl Future<Output = Result<Vec<VersionCount>>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Makes a waiting session runnable now (its wake time becomes the database's now, as
    /// [`Wake::Now`] sets it), if its latest checkpoint is still `seq` and waits; its
    /// checkpoints, status and lease stay as they are. Returns whether it was woken:
    /// `false` when the session is gone, has moved on, or does not wait.
    ///
    /// This is how a child session that ended wakes its parent, which waits for it at a
    /// subgraph node: a worker then claims the parent (a store with `wait_for_work` wakes
    /// waiting workers, as an append with a wake time does) and runs the node again, which
    /// takes the child's end.
    ///
    /// The default wakes nothing and returns `Ok(false)` (a store of another crate that has
    /// no wake times: its sessions are resumed by hand).
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::{MemoryStore, Status};
    /// use graph_runtime::store::{Append, Checkpoint, Claim, Store, Wake};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> graph_runtime::Result<()> {
    /// let store = MemoryStore::new();
    /// let waiting = Status::Waiting { node: "research/review".into() };
    /// let parked = Checkpoint::new(2, "research", waiting, Vec::new());
    /// let append = Append::new(None, parked, None).workflow("support", 7).wake(Wake::Never);
    /// store.append("t-1", append).await?;
    /// let claim = Claim::new("w", Duration::from_secs(30), 1).workflow("support", [7]);
    /// assert!(store.claim(&claim).await?.is_empty());
    /// assert!(!store.wake("t-1", 1).await?, "not its latest checkpoint");
    /// assert!(store.wake("t-1", 2).await?);
    /// assert_eq!(store.claim(&claim).await?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    fn wake(&self, session: &str, seq: u64) -> impl Future<Output = Result<bool>> + Send {
        let _ = (session, seq);
        async { Ok(false) }
    }

    /// Keeps `failure` (an [`AuditKind::Failed`] record: the node and the error) beside the
    /// session's checkpoint `seq`, if that is still its latest: a run from it failed, and the
    /// session stays there (a resume runs on from it). Until its next append, the session's
    /// [`SessionRecord::status`] is [`Status::Failed`], and [`Store::list`] returns the
    /// record in that checkpoint's [`CheckpointMeta::failure`] (a later failure from the same
    /// checkpoint replaces it). Returns whether it was kept: `false` when the session is gone
    /// or has moved on.
    ///
    /// The default keeps nothing (a store of another crate that has nowhere to put it).
    fn record_failure(
        &self,
        session: &str,
        seq: u64,
        failure: &Audit,
    ) -> impl Future<Output = Result<bool>> + Send {
        let _ = (session, seq, failure);
        async { Ok(false) }
    }
}

/// A checkpoint's metadata as [`Store::list`] returns it.
///
/// `#[non_exhaustive]`: outside this crate, build one from a [`Checkpoint`] with `From`.
///
/// ```
/// use graph_runtime::Status;
/// use graph_runtime::store::{Checkpoint, CheckpointMeta};
/// let checkpoint = Checkpoint::new(2, "review", Status::Running, vec![0; 10]);
/// let meta = CheckpointMeta::from(&checkpoint);
/// assert_eq!((meta.seq, meta.node.as_str(), meta.bytes), (2, "review", 10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointMeta {
    /// The sequence number.
    pub seq: u64,
    /// The cursor node name.
    pub node: String,
    /// The status.
    pub status: Status,
    /// The size of the encoded checkpoint, in bytes.
    pub bytes: u64,
    /// When it was written (see [`Checkpoint::created_at`](Checkpoint#structfield.created_at):
    /// to within a few milliseconds).
    pub created_at: SystemTime,
    /// Why it was written, when it was not an ordinary step (see [`Append::audit`]).
    pub audit: Option<Audit>,
    /// The last failure of a run from it, if one failed and the session stayed here (see
    /// [`Store::record_failure`]).
    pub failure: Option<Audit>,
    /// At a checkpoint where the session waits for a child session (a subgraph node's
    /// child stopped at an interrupt node; the status names the path it waits at,
    /// `research/review`): the child's session id. [`Runner::history`](crate::Runner::history)
    /// fills it in from the checkpoint's cursor, sequence number and status; a store's
    /// [`list`](Store::list) leaves it `None` (it keeps no such field).
    pub child: Option<String>,
}

impl From<&Checkpoint> for CheckpointMeta {
    fn from(checkpoint: &Checkpoint) -> Self {
        CheckpointMeta {
            seq: checkpoint.seq,
            node: checkpoint.node.to_string(),
            status: checkpoint.status.clone(),
            bytes: checkpoint.bytes.len() as u64,
            created_at: checkpoint.created_at,
            audit: None,
            failure: None,
            child: None,
        }
    }
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

/// The page size a store serves for `filter`: its limit clamped to 1 to
/// [`SessionFilter::MAX_LIMIT`] (the field is public, so it may hold anything).
fn page_limit(filter: &SessionFilter) -> usize {
    filter.limit.clamp(1, SessionFilter::MAX_LIMIT)
}

/// The page of a store that fetched up to `limit + 1` matching records in id order: the first
/// `limit`, and the cursor of the next page when there was one more.
fn into_page(mut records: Vec<SessionRecord>, limit: usize) -> SessionPage {
    let more = records.len() > limit;
    records.truncate(limit);
    let next = if more {
        records.last().map(|record| record.session.clone())
    } else {
        None
    };
    SessionPage::new(records, next)
}

/// The waiting nodes of a stored session as [`SessionRecord::waiting`] holds them: sorted by
/// bytes, each once; the node its status names when nothing else was recorded; none unless
/// it waits.
fn record_waits(status: &Status, mut stored: Vec<String>) -> Vec<String> {
    match status.waiting_node() {
        None => Vec::new(),
        Some(node) if stored.is_empty() => vec![node.to_owned()],
        Some(_) => {
            stored.sort_unstable();
            stored.dedup();
            stored
        }
    }
}
