//! The one error type of the crate.

use crate::workflow::NodeError;

/// Everything that can go wrong when running, resuming or inspecting a workflow.
///
/// Misuse of the API and bytes read back from a store are reported here, never by a panic.
/// After any error the session stays at its last saved checkpoint, so
/// [`Runner::resume`](crate::Runner::resume) continues from there.
///
/// A variant that wraps another error ([`Error::Node`], [`Error::Store`]) returns it from
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
    /// graph accepts.
    #[error(
        "session `{session}` was saved by a different graph (stored hash {stored:#018x}, \
         compiled hash {compiled:#018x}); if the change is safe for waiting sessions, list \
         the old hash in `#[workflow(accept_graphs = [{stored:#x}])]` (and mark renamed nodes \
         with `#[node(renamed_from = \"…\")]`), or resume by node name with `GraphChange::Force`"
    )]
    GraphMismatch {
        /// The session whose checkpoint did not match.
        session: String,
        /// The graph hash stored in the checkpoint.
        stored: u64,
        /// The graph hash of the running program.
        compiled: u64,
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

    /// A checkpoint holds a state (or a recorded input) of another schema than the compiled
    /// one, and no `migrate_from` type has the stored schema. Nothing was decoded: bincode
    /// would have misread it.
    #[error(
        "session `{session}` has a {what} of another schema at sequence number {seq} (stored \
         fingerprint {stored:#018x}, compiled {compiled:#018x}); to read it, keep the old type \
         and list it in `#[workflow(migrate_from = [...])]` with an `Into` conversion"
    )]
    SchemaMismatch {
        /// The session.
        session: String,
        /// The checkpoint's sequence number.
        seq: u64,
        /// What has another schema: `"state"` or `"recorded input"`.
        what: &'static str,
        /// The fingerprint stored in the checkpoint.
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

    /// The store itself failed (I/O, database, lost connection); what it said is the
    /// [`source()`](std::error::Error::source).
    #[error("the store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

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

    /// The run was cancelled; the session stays at its last checkpoint.
    #[error("session `{0}` was cancelled")]
    Cancelled(String),

    /// A node panicked in a spawned run; the session stays at its last checkpoint.
    #[error("a node of session `{session}` panicked: {message}")]
    Panicked {
        /// The session.
        session: String,
        /// The panic message.
        message: String,
    },
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
