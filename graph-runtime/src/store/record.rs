//! The records a store keeps besides the checkpoint bytes, and the one integer encoding of a
//! [`Status`] that the checkpoint envelope and every backend share.
//!
//! A record that the envelope or a store encodes is defined here (or in `checkpoint/`) and
//! re-exported upward, so that `store/` and `checkpoint/` import nothing from the layers that
//! run a session.

use std::time::SystemTime;

/// Where a session stands at a checkpoint.
///
/// More states may be added (waiting at several nodes at once, for example), so a `match`
/// on it needs a wildcard arm:
///
/// ```
/// use graph_runtime::Status;
///
/// fn describe(status: &Status) -> String {
///     match status {
///         Status::Running => "running".to_owned(),
///         Status::Waiting { node } => format!("waiting at `{node}`"),
///         Status::Completed => "completed".to_owned(),
///         _ => format!("{status:?}"),
///     }
/// }
/// assert_eq!(describe(&Status::Completed), "completed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The run goes on at the checkpoint's node (possibly after a crash: call `resume`).
    Running,
    /// The session waits at an interrupt node for `resume_with`.
    Waiting {
        /// The interrupt node.
        node: String,
    },
    /// The run reached `END`.
    Completed,
    /// A run failed (a node failed with no error edge to take, or the step limit was
    /// reached) and the session stayed at its latest checkpoint, from which `resume` runs on
    /// (after an operator's edit, for example). Only a store's
    /// [`SessionRecord`] says it, until the session's next checkpoint: the checkpoint itself
    /// is unchanged (see [`Store::record_failure`](crate::store::Store::record_failure)).
    Failed,
    /// An operator cancelled the session: it never runs again (its checkpoints stay readable
    /// until it is deleted).
    Cancelled,
}

/// The integer codes of [`Status`]: the envelope's status byte, the SQL stores' `status`
/// column. One table, so that a stored row and an envelope never disagree on what a number
/// means. Append new codes only; never reuse one.
pub(crate) mod code {
    /// [`Status::Running`](super::Status::Running).
    pub(crate) const RUNNING: u8 = 0;
    /// [`Status::Waiting`](super::Status::Waiting).
    pub(crate) const WAITING: u8 = 1;
    /// [`Status::Completed`](super::Status::Completed).
    pub(crate) const COMPLETED: u8 = 2;
    /// [`Status::Failed`](super::Status::Failed).
    pub(crate) const FAILED: u8 = 3;
    /// [`Status::Cancelled`](super::Status::Cancelled).
    pub(crate) const CANCELLED: u8 = 4;
}

impl Status {
    /// The status's integer code (see [`code`]).
    #[inline]
    pub(crate) fn code(&self) -> u8 {
        match self {
            Status::Running => code::RUNNING,
            Status::Waiting { .. } => code::WAITING,
            Status::Completed => code::COMPLETED,
            Status::Failed => code::FAILED,
            Status::Cancelled => code::CANCELLED,
        }
    }

    /// Its kind, without the node a waiting status names.
    pub fn kind(&self) -> StatusKind {
        match self {
            Status::Running => StatusKind::Running,
            Status::Waiting { .. } => StatusKind::Waiting,
            Status::Completed => StatusKind::Completed,
            Status::Failed => StatusKind::Failed,
            Status::Cancelled => StatusKind::Cancelled,
        }
    }

    /// Whether the session can never run again by itself: completed or cancelled.
    pub fn is_final(&self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled)
    }

    /// The node a waiting status names.
    #[inline]
    pub(crate) fn waiting_node(&self) -> Option<&str> {
        match self {
            Status::Waiting { node } => Some(node),
            _ => None,
        }
    }

    /// The status with integer code `code`, waiting at `node` when it waits; `None` for an
    /// unknown code or a waiting code without a node.
    pub(crate) fn from_code(code: u8, node: Option<&str>) -> Option<Status> {
        match (code, node) {
            (code::RUNNING, _) => Some(Status::Running),
            (code::WAITING, Some(node)) => Some(Status::Waiting {
                node: node.to_owned(),
            }),
            (code::COMPLETED, _) => Some(Status::Completed),
            (code::FAILED, _) => Some(Status::Failed),
            (code::CANCELLED, _) => Some(Status::Cancelled),
            _ => None,
        }
    }

    /// The status a SQL store's row holds (its `status` and `wait_node` columns), or why the
    /// row is corrupt.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_row(code: i64, wait_node: Option<&str>) -> Result<Status, String> {
        let status = u8::try_from(code)
            .ok()
            .and_then(|code| Status::from_code(code, wait_node));
        match status {
            Some(status) => Ok(status),
            None if code == i64::from(code::WAITING) => {
                Err("waiting status without its node".to_owned())
            }
            None => Err(format!("unknown status code {code}")),
        }
    }
}

/// A version of a workflow's graph, as a store keeps it: recorded the first time a session is
/// written under its [`GRAPH_HASH`](crate::Workflow::GRAPH_HASH), so that a later release can
/// say what changed since (see [`Error::GraphMismatch`](crate::Error::GraphMismatch)).
///
/// `#[non_exhaustive]`: outside this crate, build one with [`GraphVersion::new`].
///
/// ```
/// use graph_runtime::store::GraphVersion;
/// let version = GraphVersion::new("checkout", 0x1234, "graph-runtime/v2\nnode review\n");
/// assert_eq!((version.workflow.as_str(), version.graph_hash), ("checkout", 0x1234));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphVersion {
    /// The workflow's name ([`Workflow::NAME`](crate::Workflow::NAME)).
    pub workflow: String,
    /// The graph's hash.
    pub graph_hash: u64,
    /// The graph's canonical description: the versioned text its hash is computed from, then
    /// one line per fingerprint that enters the hash (`schema input review 0x…`).
    pub description: String,
    /// When the store first recorded it (set by the store; [`GraphVersion::new`] uses now).
    pub recorded_at: SystemTime,
}

impl GraphVersion {
    /// A version of workflow `workflow` with hash `graph_hash` and canonical `description`,
    /// recorded now.
    pub fn new(workflow: &str, graph_hash: u64, description: impl Into<String>) -> Self {
        GraphVersion {
            workflow: workflow.to_owned(),
            graph_hash,
            description: description.into(),
            recorded_at: SystemTime::now(),
        }
    }
}

/// How many sessions of a workflow stand at one graph version and state schema: the latest
/// checkpoint of each was written under `graph_hash` with state schema `state_schema`.
///
/// What [`Store::versions_in_use`](crate::store::Store::versions_in_use) returns, one row per
/// `(workflow, graph_hash, state_schema)` that some session has. When a graph hash listed in
/// `accept_graphs` (or a type listed in `migrate_from`) has no row any more, no session needs
/// it and the entry can go.
///
/// `#[non_exhaustive]`: outside this crate, build one with [`VersionCount::new`].
///
/// ```
/// use graph_runtime::store::VersionCount;
/// let count = VersionCount::new("checkout", 0x1234, Some(0x99), 3);
/// assert_eq!(count.sessions, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct VersionCount {
    /// The workflow's name.
    pub workflow: String,
    /// The graph hash the sessions' latest checkpoints were written under.
    pub graph_hash: u64,
    /// The state schema fingerprint of those checkpoints; `None` for sessions last written by
    /// a release that did not tell the store.
    pub state_schema: Option<u64>,
    /// How many sessions.
    pub sessions: u64,
}

impl VersionCount {
    /// A count of `sessions` sessions of `workflow` at `graph_hash` and `state_schema`.
    pub fn new(workflow: &str, graph_hash: u64, state_schema: Option<u64>, sessions: u64) -> Self {
        VersionCount {
            workflow: workflow.to_owned(),
            graph_hash,
            state_schema,
            sessions,
        }
    }
}

/// A [`Status`] without the node a waiting status names: what a session query filters on.
///
/// Its names (`running`, `waiting`, `completed`, `failed`, `cancelled`) are the ones the
/// inspector's filters and JSON output use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StatusKind {
    /// [`Status::Running`].
    Running,
    /// [`Status::Waiting`].
    Waiting,
    /// [`Status::Completed`].
    Completed,
    /// [`Status::Failed`].
    Failed,
    /// [`Status::Cancelled`].
    Cancelled,
}

impl StatusKind {
    /// Every kind, in code order.
    pub const ALL: [StatusKind; 5] = [
        StatusKind::Running,
        StatusKind::Waiting,
        StatusKind::Completed,
        StatusKind::Failed,
        StatusKind::Cancelled,
    ];

    /// Its lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Running => "running",
            StatusKind::Waiting => "waiting",
            StatusKind::Completed => "completed",
            StatusKind::Failed => "failed",
            StatusKind::Cancelled => "cancelled",
        }
    }

    /// The kind named `name` (as [`as_str`](StatusKind::as_str) writes it).
    pub fn parse(name: &str) -> Option<StatusKind> {
        StatusKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// Its integer code (the one [`Status`] of this kind is stored with).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn code(self) -> u8 {
        match self {
            StatusKind::Running => code::RUNNING,
            StatusKind::Waiting => code::WAITING,
            StatusKind::Completed => code::COMPLETED,
            StatusKind::Failed => code::FAILED,
            StatusKind::Cancelled => code::CANCELLED,
        }
    }
}

impl std::fmt::Display for StatusKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a checkpoint was written when it was not an ordinary step: who gave an input, an
/// operator's edit, a failure, a cancellation. A store keeps it beside the checkpoint (never
/// inside the state's bytes) and returns it in [`CheckpointMeta::audit`](super::CheckpointMeta),
/// so that a history lists decisions, edits and errors without decoding a state.
///
/// `#[non_exhaustive]`: build one with [`Audit::new`] and the setters.
///
/// ```
/// use graph_runtime::store::{Audit, AuditKind, InputSource};
/// let audit = Audit::new(AuditKind::Input { node: "review".into(), source: InputSource::Caller })
///     .by("alice")
///     .note("limit raised");
/// assert_eq!(audit.actor.as_deref(), Some("alice"));
/// assert_eq!(Audit::decode(&audit.encode()), Ok(audit));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Audit {
    /// What happened.
    pub kind: AuditKind,
    /// Who did it, when the caller said so.
    pub actor: Option<String>,
    /// Why, when the caller said so.
    pub note: Option<String>,
}

/// What an [`Audit`] record says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditKind {
    /// The session received its input for interrupt node `node`.
    Input {
        /// The interrupt node (in a parallel region, the branch's node).
        node: String,
        /// Who gave it: a caller of `resume_with` or the node's deadline.
        source: InputSource,
    },
    /// An operator changed the state.
    Edit {
        /// What changed, as the editor described it (the inspector writes the JSON Pointer
        /// paths with their old and new values, as JSON).
        diff: String,
    },
    /// A step failed and no error edge took the failure.
    Failed {
        /// The node that failed.
        node: String,
        /// The error's message (its `Display`, with its sources).
        error: String,
    },
    /// An operator cancelled the session.
    Cancelled,
    /// The session was forked from another one.
    Forked {
        /// The session it was forked from.
        from: String,
        /// The checkpoint of `from` it starts at.
        seq: u64,
    },
}

/// Who gave an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputSource {
    /// A call to `resume_with` (or `enqueue_input`): a person, or code acting for one.
    Caller,
    /// The node's deadline (`wait_ms`) passed and its default was taken.
    Deadline,
}

impl InputSource {
    /// `caller` or `deadline`.
    pub fn as_str(self) -> &'static str {
        match self {
            InputSource::Caller => "caller",
            InputSource::Deadline => "deadline",
        }
    }
}

/// The version byte of an encoded [`Audit`]: a newer one is refused, not misread.
const AUDIT_VERSION: u8 = 1;
/// The longest audit record a store accepts back (a diff of a large state is the biggest).
const AUDIT_MAX_BYTES: usize = 16 << 20;

impl Audit {
    /// An audit record of `kind`, without actor or note.
    pub fn new(kind: AuditKind) -> Self {
        Audit {
            kind,
            actor: None,
            note: None,
        }
    }

    /// Who did it.
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Why.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// The bytes a store keeps: one encoding every backend shares (a version byte, then the
    /// record's fields as length-prefixed UTF-8 and little-endian integers).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![AUDIT_VERSION];
        let (tag, fields): (u8, Vec<&str>) = match &self.kind {
            AuditKind::Input { node, source } => (
                match source {
                    InputSource::Caller => 1,
                    InputSource::Deadline => 2,
                },
                vec![node],
            ),
            AuditKind::Edit { diff } => (3, vec![diff]),
            AuditKind::Failed { node, error } => (4, vec![node, error]),
            AuditKind::Cancelled => (5, vec![]),
            AuditKind::Forked { from, .. } => (6, vec![from]),
        };
        out.push(tag);
        for field in fields {
            put_str(&mut out, Some(field));
        }
        if let AuditKind::Forked { seq, .. } = &self.kind {
            out.extend_from_slice(&seq.to_le_bytes());
        }
        put_str(&mut out, self.actor.as_deref());
        put_str(&mut out, self.note.as_deref());
        out
    }

    /// Reads what [`encode`](Audit::encode) wrote; a description of what is wrong otherwise
    /// (never a panic, whatever the bytes).
    pub fn decode(bytes: &[u8]) -> Result<Audit, String> {
        if bytes.len() > AUDIT_MAX_BYTES {
            return Err(format!(
                "an audit record of {} bytes is too long",
                bytes.len()
            ));
        }
        let mut reader = Reader(bytes);
        let version = reader.byte()?;
        if version != AUDIT_VERSION {
            return Err(format!(
                "audit record version {version} is not one this release reads ({AUDIT_VERSION})"
            ));
        }
        let tag = reader.byte()?;
        let kind = match tag {
            1 | 2 => AuditKind::Input {
                node: reader.string()?,
                source: if tag == 1 {
                    InputSource::Caller
                } else {
                    InputSource::Deadline
                },
            },
            3 => AuditKind::Edit {
                diff: reader.string()?,
            },
            4 => AuditKind::Failed {
                node: reader.string()?,
                error: reader.string()?,
            },
            5 => AuditKind::Cancelled,
            6 => AuditKind::Forked {
                from: reader.string()?,
                seq: reader.u64()?,
            },
            other => return Err(format!("unknown audit record kind {other}")),
        };
        let actor = reader.optional_string()?;
        let note = reader.optional_string()?;
        if !reader.0.is_empty() {
            return Err(format!(
                "{} bytes left over after an audit record",
                reader.0.len()
            ));
        }
        Ok(Audit { kind, actor, note })
    }
}

/// Appends `value` as a presence byte, a u32 length and its bytes.
fn put_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&text.as_bytes()[..len as usize]);
        }
    }
}

/// Reads an encoded [`Audit`] from the front.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.0.len() < n {
            return Err("an audit record ends early".to_owned());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut raw = [0; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(raw))
    }

    fn optional_string(&mut self) -> Result<Option<String>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => {
                let mut raw = [0; 4];
                raw.copy_from_slice(self.take(4)?);
                let len = u32::from_le_bytes(raw) as usize;
                let text = self.take(len)?;
                String::from_utf8(text.to_vec())
                    .map(Some)
                    .map_err(|_| "an audit record holds text that is not UTF-8".to_owned())
            }
            other => Err(format!("bad presence byte {other} in an audit record")),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.optional_string()?
            .ok_or_else(|| "an audit record lacks a required field".to_owned())
    }
}

/// What a store knows about one session without decoding a state: what
/// [`Store::sessions`](crate::store::Store::sessions) returns, from an index.
///
/// `#[non_exhaustive]`: stores of other crates build one with [`SessionRecord::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionRecord {
    /// The session id.
    pub session: String,
    /// The workflow that last wrote it, when the writer said (every runner of this release
    /// does).
    pub workflow: Option<String>,
    /// The graph hash its latest checkpoint was written under, when the writer said.
    pub graph_hash: Option<u64>,
    /// The latest checkpoint's status.
    pub status: Status,
    /// The latest checkpoint's cursor.
    pub node: String,
    /// Every node it waits at: one outside a parallel region, one per waiting branch in one
    /// (see [`Append::waiting`](crate::store::Append::waiting)), sorted by bytes, each once;
    /// empty unless it waits.
    pub waiting: Vec<String>,
    /// The latest sequence number.
    pub seq: u64,
    /// When its first checkpoint was written (the time that checkpoint carries; it stays
    /// when retention removes that checkpoint). For a session written before the store's
    /// schema kept it, the time of its oldest checkpoint kept at the migration.
    pub created_at: SystemTime,
    /// When its latest checkpoint was written (the time that checkpoint carries, see
    /// [`Checkpoint::created_at`](crate::store::Checkpoint#structfield.created_at)).
    pub updated_at: SystemTime,
    /// When the deadline it waits for passes (an interrupt node's `wait_ms`), if any.
    pub wake_at: Option<SystemTime>,
    /// The worker holding its lease and when the lease expires, if a worker ever claimed it
    /// (an expiry in the past means nobody holds it now).
    pub lease: Option<(String, SystemTime)>,
    /// The session it is a child of (a subgraph node of that session started it), as
    /// [`Append::parent`](crate::store::Append::parent) recorded it when the session was
    /// created; `None` for a session started on its own.
    pub parent: Option<String>,
}

impl SessionRecord {
    /// A record of session `session` at checkpoint `seq` (cursor `node`, status `status`),
    /// written at `updated_at`; the other fields empty (set them directly).
    pub fn new(
        session: &str,
        seq: u64,
        node: &str,
        status: Status,
        updated_at: SystemTime,
    ) -> Self {
        let waiting = status
            .waiting_node()
            .map(|node| vec![node.to_owned()])
            .unwrap_or_default();
        SessionRecord {
            session: session.to_owned(),
            workflow: None,
            graph_hash: None,
            status,
            node: node.to_owned(),
            waiting,
            seq,
            created_at: updated_at,
            updated_at,
            wake_at: None,
            lease: None,
            parent: None,
        }
    }
}

/// Which sessions [`Store::sessions`](crate::store::Store::sessions) returns: every
/// condition set must hold. Sessions come in the order of their ids, a page at a time:
/// [`after`](SessionFilter::after) continues from a page's
/// [`next`](SessionPage::next) cursor.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use graph_runtime::store::{SessionFilter, StatusKind};
/// let stuck = SessionFilter::new()
///     .workflow("checkout")
///     .waiting_at("review")
///     .updated_before(SystemTime::now() - Duration::from_secs(3600))
///     .limit(50);
/// assert_eq!(stuck.status, Some(StatusKind::Waiting));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFilter {
    /// Only sessions of this workflow.
    pub workflow: Option<String>,
    /// Only sessions with this status.
    pub status: Option<StatusKind>,
    /// Only sessions waiting at this node (implies [`StatusKind::Waiting`]).
    pub node: Option<String>,
    /// Only sessions whose latest checkpoint was written before this time.
    pub updated_before: Option<SystemTime>,
    /// Only sessions whose latest checkpoint was written at or after this time.
    pub updated_after: Option<SystemTime>,
    /// Only the children of this session (see [`SessionRecord::parent`]); not their
    /// children in turn.
    pub parent: Option<String>,
    /// Only sessions whose id comes after this one (a page's cursor).
    pub after: Option<String>,
    /// At most this many (1 to [`SessionFilter::MAX_LIMIT`]; default 100).
    pub limit: usize,
}

impl Default for SessionFilter {
    fn default() -> Self {
        SessionFilter::new()
    }
}

impl SessionFilter {
    /// The largest page a store returns.
    pub const MAX_LIMIT: usize = 10_000;

    /// Every session, 100 at a time.
    pub fn new() -> Self {
        SessionFilter {
            workflow: None,
            status: None,
            node: None,
            updated_before: None,
            updated_after: None,
            parent: None,
            after: None,
            limit: 100,
        }
    }

    /// Only sessions of workflow `name`.
    pub fn workflow(mut self, name: &str) -> Self {
        self.workflow = Some(name.to_owned());
        self
    }

    /// Only sessions with status `kind`.
    pub fn status(mut self, kind: StatusKind) -> Self {
        self.status = Some(kind);
        self
    }

    /// Only sessions waiting at `node` (a waiting status, with `node` among
    /// [`SessionRecord::waiting`]).
    pub fn waiting_at(mut self, node: &str) -> Self {
        self.node = Some(node.to_owned());
        self.status = Some(StatusKind::Waiting);
        self
    }

    /// Only sessions not written since `time`.
    pub fn updated_before(mut self, time: SystemTime) -> Self {
        self.updated_before = Some(time);
        self
    }

    /// Only sessions written at or since `time`.
    pub fn updated_after(mut self, time: SystemTime) -> Self {
        self.updated_after = Some(time);
        self
    }

    /// Only the child sessions of `session`: those its subgraph nodes started (see
    /// [`SessionRecord::parent`]).
    ///
    /// ```
    /// use graph_runtime::store::SessionFilter;
    /// let children = SessionFilter::new().parent("ticket-7");
    /// assert_eq!(children.parent.as_deref(), Some("ticket-7"));
    /// ```
    pub fn parent(mut self, session: &str) -> Self {
        self.parent = Some(session.to_owned());
        self
    }

    /// The page after the session `cursor` (a page's [`next`](SessionPage::next)).
    pub fn after(mut self, cursor: &str) -> Self {
        self.after = Some(cursor.to_owned());
        self
    }

    /// At most `n` sessions (clamped to 1..=[`MAX_LIMIT`](SessionFilter::MAX_LIMIT)).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.clamp(1, SessionFilter::MAX_LIMIT);
        self
    }

    /// Whether `record` passes every condition but the cursor and the limit (what a store
    /// without an index, such as `MemoryStore`, checks row by row).
    pub fn matches(&self, record: &SessionRecord) -> bool {
        self.workflow
            .as_deref()
            .is_none_or(|w| record.workflow.as_deref() == Some(w))
            && self.status.is_none_or(|kind| record.status.kind() == kind)
            && self
                .node
                .as_deref()
                .is_none_or(|node| record.waiting.iter().any(|w| w == node))
            && self.updated_before.is_none_or(|t| record.updated_at < t)
            && self.updated_after.is_none_or(|t| record.updated_at >= t)
            && self
                .parent
                .as_deref()
                .is_none_or(|parent| record.parent.as_deref() == Some(parent))
            && self
                .after
                .as_deref()
                .is_none_or(|after| record.session.as_str() > after)
    }
}

/// One page of [`Store::sessions`](crate::store::Store::sessions).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionPage {
    /// The sessions, in the order of their ids.
    pub sessions: Vec<SessionRecord>,
    /// The cursor of the next page ([`SessionFilter::after`]), `None` on the last one.
    pub next: Option<String>,
}

impl SessionPage {
    /// A page of `sessions`, followed by the page after `next`.
    pub fn new(sessions: Vec<SessionRecord>, next: Option<String>) -> Self {
        SessionPage { sessions, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_code() {
        for status in [
            Status::Running,
            Status::Waiting {
                node: "review".to_owned(),
            },
            Status::Completed,
            Status::Failed,
            Status::Cancelled,
        ] {
            let node = status.waiting_node();
            assert_eq!(Status::from_code(status.code(), node), Some(status.clone()));
            assert_eq!(
                StatusKind::parse(status.kind().as_str()),
                Some(status.kind())
            );
        }
        assert_eq!(Status::from_code(code::WAITING, None), None);
        assert_eq!(Status::from_code(5, Some("x")), None);
    }

    #[test]
    fn every_audit_round_trips_and_bad_bytes_are_errors() {
        let kinds = [
            AuditKind::Input {
                node: "review".into(),
                source: InputSource::Caller,
            },
            AuditKind::Input {
                node: "legal".into(),
                source: InputSource::Deadline,
            },
            AuditKind::Edit {
                diff: r#"[{"path":"/amount","old":1,"new":2}]"#.into(),
            },
            AuditKind::Failed {
                node: "pay".into(),
                error: "card declined".into(),
            },
            AuditKind::Cancelled,
            AuditKind::Forked {
                from: "order-1".into(),
                seq: 7,
            },
        ];
        for kind in kinds {
            for audit in [
                Audit::new(kind.clone()),
                Audit::new(kind).by("alice").note("é ✓"),
            ] {
                let bytes = audit.encode();
                assert_eq!(Audit::decode(&bytes), Ok(audit));
                // Every truncation and every trailing byte is an error, never a panic.
                for end in 0..bytes.len() {
                    assert!(Audit::decode(&bytes[..end]).is_err(), "{end}");
                }
                let mut longer = bytes.clone();
                longer.push(0);
                assert!(Audit::decode(&longer).is_err());
            }
        }
        assert!(
            Audit::decode(&[2, 5, 0, 0])
                .unwrap_err()
                .contains("version 2")
        );
        assert!(Audit::decode(&[1, 9, 0, 0]).unwrap_err().contains("kind 9"));
        assert!(
            Audit::decode(&[1, 3, 1, 2, 0, 0, 0, 0xff, 0xfe, 0, 0])
                .unwrap_err()
                .contains("UTF-8")
        );
    }
}
