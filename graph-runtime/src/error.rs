//! The one error type of the crate.

use crate::workflow::NodeError;

/// Everything that can go wrong when running, resuming or inspecting a workflow.
///
/// Misuse of the API and bytes read back from a store are reported here, never by a panic.
/// After any error the session stays at its last saved checkpoint, so
/// [`Runner::resume`](crate::Runner::resume) continues from there.
///
/// A variant that wraps another error ([`Error::Node`], [`Error::Store`],
/// [`Error::StoreBusy`], [`Error::StoreDamaged`]) returns it from
/// [`source()`](std::error::Error::source) and does not repeat it in its own message, as
/// [`std::error::Error`] asks: a report that walks the source chain prints each cause once.
///
/// ```
/// use std::error::Error as _;
/// use graph_runtime::Error;
///
/// let io = std::io::Error::other("disk full");
/// let e = Error::Store(Box::new(io));
/// assert_eq!(e.to_string(), "the store failed");
/// assert_eq!(e.source().unwrap().to_string(), "disk full");
///
/// // Every cause once, outermost first:
/// let mut report = e.to_string();
/// let mut cause = e.source();
/// while let Some(c) = cause {
///     report += &format!(": {c}");
///     cause = c.source();
/// }
/// assert_eq!(report, "the store failed: disk full");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A node returned an error (after its retries, if it has any); the error is its
    /// [`source()`](std::error::Error::source).
    #[error("node `{node}` failed")]
    Node {
        /// The node that failed.
        node: &'static str,
        /// The error it returned.
        #[source]
        source: NodeError,
    },

    /// The run took `max_steps` steps in one call without finishing.
    #[error("step limit of {limit} reached in session `{session}` (a loop that never ends?)")]
    StepLimit {
        /// The session that was running.
        session: String,
        /// The configured limit.
        limit: u64,
    },

    /// A checkpoint was written by a different graph (`GraphChange::Strict`), not one this
    /// graph accepts. Raised only to run on from a checkpoint (`resume`, `resume_with`,
    /// `fork`): reading one (`state`, `state_at`, `history`) needs no graph.
    #[error(
        "session `{session}` was saved by a different graph (stored hash {stored:#018x}, \
         compiled hash {compiled:#018x}){}; if the change is safe for waiting sessions, list \
         the old hash in `#[workflow(accept_graphs = [{stored:#x}])]` (and mark renamed nodes \
         with `#[node(renamed_from = \"…\")]`), or resume by node name with `GraphChange::Force`",
        changes_text(changed)
    )]
    GraphMismatch {
        /// The session whose checkpoint did not match.
        session: String,
        /// The graph hash stored in the checkpoint.
        stored: u64,
        /// The graph hash of the running program.
        compiled: u64,
        /// What changed between the stored graph and the compiled one, one change a line
        /// (`` node `review` removed ``, `` edge `validate->review` added ``, `` output type
        /// of `check` changed ``), from the description the store kept of the stored graph;
        /// empty when the store kept none (a store without graph versions, or a session
        /// written before they were kept).
        changed: Vec<String>,
    },

    /// A checkpoint of an older graph (accepted, or under `GraphChange::Force`) stopped at a
    /// node this graph does not have.
    #[error(
        "session `{session}` stopped at node `{node}`, which this graph does not have; if the \
         node was renamed, mark its new name with `#[node(renamed_from = \"{node}\")]`"
    )]
    UnknownNode {
        /// The session that was being resumed.
        session: String,
        /// The node name stored in the checkpoint.
        node: String,
    },

    /// A checkpoint holds a value of another schema than the compiled type — its state, a
    /// recorded input, a branch's saved output or a map's item — and no `migrate_from` type
    /// has the stored schema. Nothing was decoded: bincode would have misread it.
    ///
    /// For the state, list the old type in `#[workflow(migrate_from = [...])]`; for a branch
    /// output or map items, in `#[node(migrate_from = [...])]` on the node that produces them
    /// (the branch node; the node before `each`).
    #[error(
        "session `{session}` has a {what}{} of another schema at sequence number {seq} (stored \
         fingerprint {stored:#018x}, compiled {compiled:#018x}); {}",
        record_text(*branch, *item),
        migration_hint(what, *branch)
    )]
    SchemaMismatch {
        /// The session.
        session: String,
        /// The checkpoint's sequence number.
        seq: u64,
        /// What has another schema: `"state"`, `"recorded input"`, `"branch output"` or
        /// `"map item"`.
        what: &'static str,
        /// The branch node whose output, input or map item it is (for a map, the map node);
        /// `None` for the state and a pending input outside a region.
        branch: Option<&'static str>,
        /// The index of the map item (or of the map branch's slot).
        item: Option<u64>,
        /// The fingerprint stored in the checkpoint (0: a value saved before fingerprints were
        /// kept, under another graph).
        stored: u64,
        /// The fingerprint of the compiled type.
        compiled: u64,
    },

    /// `start` or `fork` named a session that already exists.
    #[error("session `{0}` already exists")]
    SessionExists(String),

    /// The session has no checkpoint in the store.
    #[error("session `{0}` not found")]
    SessionNotFound(String),

    /// The session has no kept checkpoint with this sequence number.
    #[error("session `{session}` has no kept checkpoint with sequence number {seq}")]
    CheckpointNotFound {
        /// The session.
        session: String,
        /// The sequence number asked for.
        seq: u64,
    },

    /// `resume_with` was called with an input for a node the session is not waiting at.
    #[error("session `{session}` is not waiting at node `{node}` ({actual})")]
    NotWaiting {
        /// The session.
        session: String,
        /// The interrupt node the input was meant for.
        node: &'static str,
        /// Where the session actually is.
        actual: String,
    },

    /// Another writer advanced the session first; this run stopped without writing.
    #[error(
        "session `{session}` was advanced by another writer (expected latest checkpoint \
         {expected:?}, found {found:?})"
    )]
    Conflict {
        /// The session.
        session: String,
        /// The sequence number this writer expected to be the latest.
        expected: Option<u64>,
        /// The latest sequence number the store holds.
        found: Option<u64>,
    },

    /// Bytes read back from a store are not a valid checkpoint for this session.
    #[error("corrupt checkpoint in session `{session}` at sequence number {seq}: {reason}")]
    Corrupt {
        /// The session.
        session: String,
        /// The sequence number of the bad checkpoint.
        seq: u64,
        /// What check failed.
        reason: String,
    },

    /// A state or input could not be encoded.
    #[error("could not encode the checkpoint of session `{session}`: {reason}")]
    Encode {
        /// The session.
        session: String,
        /// What the encoder said.
        reason: String,
    },

    /// The store itself failed: I/O or the connection to the database (the file cannot be
    /// opened or written, the disk is full, permission is denied, the server went away or
    /// does not answer), a store that was closed (`store::StoreClosed`, after `SqliteStore::close`),
    /// a database set up by a newer release of this crate, or a value the database cannot
    /// hold. What it said is the [`source()`](std::error::Error::source).
    ///
    /// What to do: look at the source. Retrying the same call helps only once whatever it
    /// names is fixed (the disk has room again, the server is back); a store of this kind
    /// does not recover by itself within its own timeouts. The two store failures a caller
    /// usually handles on its own have their variants: [`Error::StoreBusy`] (retry later) and
    /// [`Error::StoreDamaged`] (retrying cannot help).
    #[error("the store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The store was busy: another connection or process held a lock for longer than the
    /// store waits (SQLite's busy timeout: `SQLITE_BUSY`, `SQLITE_LOCKED`), or PostgreSQL
    /// gave up on a transaction to let another one go on (SQLSTATE `40001`
    /// serialization_failure, `40P01` deadlock_detected, `55P03` lock_not_available,
    /// `57014` query_canceled, which a `statement_timeout` gives). What the store said is the
    /// [`source()`](std::error::Error::source).
    ///
    /// What to do: retry later, after a pause. Nothing was written by the failed call (the
    /// session stays at its last checkpoint), so [`Runner::resume`](crate::Runner::resume)
    /// continues from there. If it keeps happening, something holds the database for long
    /// (a long transaction, a backup, another program): raise the busy timeout
    /// (`SqliteOptions::busy_timeout`, PostgreSQL's `lock_timeout`) or find it.
    #[error(
        "the store is busy (locked by another connection or process); retrying later can succeed"
    )]
    StoreBusy(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The database is damaged, or is not a checkpoint store of this crate: SQLite found the
    /// file corrupt (`SQLITE_CORRUPT`, a malformed schema) or not a database at all
    /// (`SQLITE_NOTADB`), the file belongs to another application or has a schema version
    /// this crate never wrote, or PostgreSQL reported damaged data (SQLSTATE `XX001`
    /// data_corrupted, `XX002` index_corrupted). What the store said is the
    /// [`source()`](std::error::Error::source).
    ///
    /// What to do: retrying cannot help. Check that the path or database is the right one;
    /// if it is, restore it from a backup (`SqliteStore::backup_to` makes them) or repair it
    /// with the database's own tools. (A database set up by a *newer* release is not damaged: that is
    /// [`Error::Store`], and upgrading this crate opens it.) Bytes of a single checkpoint
    /// that do not decode are [`Error::Corrupt`] instead: the database itself is sound.
    #[error("the store is damaged or is not a checkpoint store; retrying cannot help")]
    StoreDamaged(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The runner was configured with a value that cannot work. The builder method that was
    /// given it records it, and every later call that runs or writes a session returns it.
    #[error("invalid runner configuration: {0}")]
    InvalidConfig(&'static str),

    /// A session id is empty, contains a NUL byte or is longer than
    /// [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES). Checked before the store is
    /// asked anything: nothing was read or written.
    #[error("invalid session id {id:?}: {reason}")]
    InvalidSessionId {
        /// The id as given, shortened to its first 32 characters (followed by `…`) when
        /// longer, so that a huge id does not flood a log line.
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A child session (a subgraph node's [`Child::run`](crate::Child::run)) stopped at an
    /// interrupt node. A subgraph node returns it (with `?`), and the runner makes the parent
    /// wait too: its run returns [`Outcome::Interrupted`](crate::Outcome::Interrupted) naming
    /// the path (`research/review`), not this error. The child session stays waiting;
    /// answering it (with a [`Runner`](crate::Runner) of the child workflow at its id), then
    /// resuming the parent, runs the node again, and `Child::run` returns the child's final
    /// state.
    #[error(
        "child session `{child}` waits at interrupt node `{node}`: return this error from the subgraph node, and its parent waits too"
    )]
    ChildInterrupted {
        /// The child session's id.
        child: String,
        /// The interrupt node it waits at.
        node: &'static str,
    },

    /// The child session of a map item runs on a [`Worker`](crate::Worker) (its parent runs
    /// under one, and gave the child to any worker rather than run it itself): return this
    /// error from the subgraph node, and its item waits until the child ends, which wakes
    /// the parent.
    #[error(
        "child session `{child}` runs on a worker: return this error from the subgraph node, and its item waits for the child"
    )]
    ChildRunning {
        /// The child session's id.
        child: String,
    },

    /// The run was cancelled (its cancellation token, or [`Runner::cancel`](crate::Runner::cancel)
    /// before or during it); the session stays at its last checkpoint.
    #[error("session `{0}` was cancelled")]
    Cancelled(String),

    /// An operator's action ([`Runner::cancel`](crate::Runner::cancel),
    /// [`Runner::edit`](crate::Runner::edit)) does not apply to the session as it stands;
    /// nothing was written.
    #[error("cannot {action} session `{session}`: {reason}")]
    Refused {
        /// The session.
        session: String,
        /// The action refused (`cancel`, `edit`).
        action: &'static str,
        /// Where the session stands, and what to do instead.
        reason: String,
    },

    /// A node panicked in a spawned run; the session stays at its last checkpoint.
    #[error("a node of session `{session}` panicked: {message}")]
    Panicked {
        /// The session.
        session: String,
        /// The panic message.
        message: String,
    },

    /// A write fenced by a lease epoch found another epoch: another worker claimed the
    /// session since (this one's lease had expired: it was paused, or cut off from the
    /// database, for longer than the lease's ttl), or the lease was released, or the session
    /// deleted. Nothing was written. Distinct from [`Error::Conflict`], which is a stale
    /// sequence number under a lease that still holds.
    ///
    /// What to do: stop working on the session and forget its state; its new owner carries on
    /// from the store. Retrying cannot help ([`is_retryable`](Error::is_retryable) is
    /// `false`).
    #[error(
        "the lease on session `{session}` was lost (held epoch {epoch}; another worker has \
         claimed it since, or it was released); nothing was written"
    )]
    LeaseLost {
        /// The session.
        session: String,
        /// The lease epoch the writer held.
        epoch: u64,
    },
}

impl Error {
    /// Whether this is a store failure that retrying later can fix: [`Error::StoreBusy`].
    ///
    /// ```
    /// use graph_runtime::Error;
    ///
    /// let locked = std::io::Error::other("database is locked");
    /// assert!(Error::StoreBusy(Box::new(locked)).is_retryable());
    /// let gone = std::io::Error::other("connection refused");
    /// assert!(!Error::Store(Box::new(gone)).is_retryable());
    /// let lost = Error::LeaseLost { session: "order-42".into(), epoch: 3 };
    /// assert!(!lost.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::StoreBusy(_) => true,
            // The session belongs to another worker now: retrying cannot succeed.
            Error::LeaseLost { .. } => false,
            _ => false,
        }
    }

    /// The store's own error for any of the three store failures ([`Error::Store`],
    /// [`Error::StoreBusy`], [`Error::StoreDamaged`]), `None` for every other error: for the
    /// callers that log or downcast a store's error whatever its kind.
    ///
    /// ```
    /// use graph_runtime::Error;
    ///
    /// let e = Error::StoreDamaged(Box::new(std::io::Error::other("file is not a database")));
    /// assert_eq!(e.store_source().unwrap().to_string(), "file is not a database");
    /// assert!(Error::SessionNotFound("a".into()).store_source().is_none());
    /// ```
    pub fn store_source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            Error::Store(e) | Error::StoreBusy(e) | Error::StoreDamaged(e) => Some(&**e),
            _ => None,
        }
    }

    /// The kind of a store failure, `None` for every other error.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn store_fault(&self) -> Option<StoreFault> {
        match self {
            Error::Store(_) => Some(StoreFault::Failed),
            Error::StoreBusy(_) => Some(StoreFault::Busy),
            Error::StoreDamaged(_) => Some(StoreFault::Damaged),
            _ => None,
        }
    }
}

/// Which of the store variants of [`Error`] a store's error goes into.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreFault {
    /// [`Error::Store`]: I/O, connection, anything else.
    Failed,
    /// [`Error::StoreBusy`]: retrying later can succeed.
    Busy,
    /// [`Error::StoreDamaged`]: retrying cannot help.
    Damaged,
}

impl StoreFault {
    /// The [`Error`] of this kind around `source`.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn error(self, source: Box<dyn std::error::Error + Send + Sync + 'static>) -> Error {
        match self {
            StoreFault::Failed => Error::Store(source),
            StoreFault::Busy => Error::StoreBusy(source),
            StoreFault::Damaged => Error::StoreDamaged(source),
        }
    }
}

/// `Result<T, graph_runtime::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and all its causes on one line, outermost first, each once: for the places that
/// keep an error as text, with no [`source()`](std::error::Error::source) to walk
/// ([`Failure::error`](crate::Failure::error), [`Event::Failed`](crate::Event::Failed),
/// [`Event::Retrying`](crate::Event::Retrying)).
pub(crate) fn report(error: &(dyn std::error::Error + 'static)) -> String {
    use std::fmt::Write as _;
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}

/// The "what changed" part of a graph mismatch.
fn changes_text(changed: &[String]) -> String {
    if changed.is_empty() {
        String::new()
    } else {
        format!("; changed since: {}", changed.join(", "))
    }
}

/// Which branch or item a schema mismatch is about.
fn record_text(branch: Option<&str>, item: Option<u64>) -> String {
    match (branch, item) {
        (Some(branch), Some(item)) => format!(" (`{branch}`, item {item})"),
        (Some(branch), None) => format!(" (`{branch}`)"),
        (None, _) => String::new(),
    }
}

/// Where the old type of a schema mismatch is listed.
fn migration_hint(what: &str, branch: Option<&str>) -> String {
    match (what, branch) {
        ("branch output", Some(node)) => format!(
            "to read it, keep the old output type and list it in `#[node(migrate_from = [...])]` on `{node}` with an `Into` conversion"
        ),
        ("map item", Some(node)) => format!(
            "to read it, keep the old item type and list it in `#[node(migrate_from = [...])]` on the node before `each {node}` with an `Into` conversion"
        ),
        ("recorded input", _) => "the decision was recorded by a release with another `Input` type: answer it again after restoring that type, or fork the session from before the decision".to_owned(),
        _ => "to read it, keep the old type and list it in `#[workflow(migrate_from = [...])]` with an `Into` conversion".to_owned(),
    }
}
