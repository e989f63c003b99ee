//! What the inspector returns: plain records that serialize to the stable JSON the command
//! line's `-o json` and the web console's API print.

use serde::Serialize;
use serde_json::Value;

use super::json::{Change, time};
use crate::store::{Audit, AuditKind, CheckpointMeta, SessionRecord};

/// A session as a list shows it: what the store knows without decoding a state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session id.
    pub session: String,
    /// Its workflow, as the store recorded it.
    pub workflow: Option<String>,
    /// The graph hash its latest checkpoint was written under, as `0x` and 16 hex digits.
    pub graph_hash: Option<String>,
    /// `running`, `waiting`, `completed`, `failed` or `cancelled`.
    pub status: &'static str,
    /// The latest checkpoint's cursor.
    pub node: String,
    /// The nodes it waits at.
    pub waiting: Vec<String>,
    /// The latest sequence number.
    pub seq: u64,
    /// When it was created (its oldest kept checkpoint), RFC 3339.
    pub created_at: String,
    /// When its latest checkpoint was written, RFC 3339.
    pub updated_at: String,
    /// When the deadline it waits for passes, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<String>,
    /// The worker holding (or last holding) its lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
}

/// A lease as [`SessionSummary::lease`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LeaseView {
    /// The worker.
    pub owner: String,
    /// When the lease expires (or expired), RFC 3339.
    pub expires_at: String,
    /// Whether it has expired: nobody holds the session.
    pub expired: bool,
}

impl From<&SessionRecord> for SessionSummary {
    fn from(record: &SessionRecord) -> Self {
        SessionSummary {
            session: record.session.clone(),
            workflow: record.workflow.clone(),
            graph_hash: record.graph_hash.map(|h| format!("{h:#018x}")),
            status: record.status.kind().as_str(),
            node: record.node.clone(),
            waiting: record.waiting.clone(),
            seq: record.seq,
            created_at: time(record.created_at),
            updated_at: time(record.updated_at),
            wake_at: record.wake_at.map(time),
            lease: record.lease.as_ref().map(|(owner, expires)| LeaseView {
                owner: owner.clone(),
                expires_at: time(*expires),
                expired: *expires <= std::time::SystemTime::now(),
            }),
        }
    }
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionList {
    /// The sessions, in the order of their ids.
    pub sessions: Vec<SessionSummary>,
    /// The cursor of the next page (`--after` on the command line), if there may be one.
    pub next: Option<String>,
}

/// One session, decoded: what `show` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SessionView {
    /// What the store knows about it.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Its latest state, as JSON.
    pub state: Value,
    /// The interrupt nodes of its workflow that take a decision, with the one it waits at
    /// first: what a decision form offers.
    pub decisions: Vec<&'static str>,
    /// The last failure of a run from its latest checkpoint, if one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One entry of a session's history: a kept checkpoint and why it was written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// Its sequence number.
    pub seq: u64,
    /// Its cursor.
    pub node: String,
    /// Its status.
    pub status: &'static str,
    /// When it was written, RFC 3339.
    pub at: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// What happened, if it was not an ordinary step: `decision`, `edit`, `cancel`, `fork`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<AuditView>,
    /// The last failure of a run from it, if one failed and the session stayed here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<AuditView>,
    /// When it waits at a subgraph node for a child session: the path it waits at
    /// (`research/review`) and the child's session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<ChildWaitView>,
}

/// The child session a checkpoint waits for, in a [`HistoryEntry`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ChildWaitView {
    /// The child's session id (show it, or its history, under this id).
    pub session: String,
    /// Where the wait is, from the parent's subgraph node down (`research/review`).
    pub path: String,
}

impl From<&CheckpointMeta> for HistoryEntry {
    fn from(meta: &CheckpointMeta) -> Self {
        HistoryEntry {
            seq: meta.seq,
            node: meta.node.clone(),
            status: meta.status.kind().as_str(),
            at: time(meta.created_at),
            bytes: meta.bytes,
            event: meta.audit.as_ref().map(AuditView::from),
            failure: meta.failure.as_ref().map(AuditView::from),
            child: meta.child.as_ref().map(|session| ChildWaitView {
                session: session.clone(),
                path: meta.status.waiting_node().unwrap_or_default().to_owned(),
            }),
        }
    }
}

/// An [`Audit`] record as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AuditView {
    /// `decision`, `edit`, `failure`, `cancel` or `fork`.
    pub kind: &'static str,
    /// For a decision, its node; for a failure, the node that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For a decision: `caller` (a person or code acting for one) or `deadline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// Who, when the caller said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why, when the caller said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// For an edit: what changed (JSON Pointer paths with old and new values, as the
    /// inspector recorded them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Value>,
    /// For a failure: the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a fork: the session and checkpoint it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<(String, u64)>,
}

impl From<&Audit> for AuditView {
    fn from(audit: &Audit) -> Self {
        let mut view = AuditView {
            kind: "",
            node: None,
            source: None,
            actor: audit.actor.clone(),
            note: audit.note.clone(),
            diff: None,
            error: None,
            from: None,
        };
        match &audit.kind {
            AuditKind::Input { node, source } => {
                view.kind = "decision";
                view.node = Some(node.clone());
                view.source = Some(source.as_str());
            }
            AuditKind::Edit { diff } => {
                view.kind = "edit";
                // An edit's diff is the inspector's JSON; another writer's text is kept as is.
                view.diff = Some(
                    serde_json::from_str(diff).unwrap_or_else(|_| Value::String(diff.clone())),
                );
            }
            AuditKind::Failed { node, error } => {
                view.kind = "failure";
                view.node = Some(node.clone());
                view.error = Some(error.clone());
            }
            AuditKind::Cancelled => view.kind = "cancel",
            AuditKind::Forked { from, seq } => {
                view.kind = "fork";
                view.from = Some((from.clone(), *seq));
            }
        }
        view
    }
}

/// A workflow's graph: what `graph` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct GraphView {
    /// The workflow's name.
    pub workflow: &'static str,
    /// Its graph hash, as `0x` and 16 hex digits.
    pub graph_hash: String,
    /// Its state schema fingerprint, likewise.
    pub state_schema: String,
    /// Its nodes in declaration order.
    pub nodes: Vec<NodeView>,
    /// The graph as a Mermaid flowchart.
    pub mermaid: &'static str,
}

/// A node of a [`GraphView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NodeView {
    /// Its name.
    pub name: &'static str,
    /// Whether it waits for a decision.
    pub interrupt: bool,
    /// Its deadline, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<u64>,
}

/// What a bulk action did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BulkReport {
    /// `resume`, `cancel` or `delete`.
    pub action: &'static str,
    /// Whether nothing was done: the sessions are those the action would touch.
    pub dry_run: bool,
    /// The sessions the filter matched.
    pub sessions: Vec<String>,
    /// How many the action succeeded on (0 in a dry run).
    pub done: u64,
    /// The sessions it failed on, with why.
    pub failed: Vec<(String, String)>,
}

/// The changes between two checkpoints of a session: what `diff` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DiffView {
    /// The session.
    pub session: String,
    /// The older checkpoint.
    pub from: u64,
    /// The newer one.
    pub to: u64,
    /// What changed.
    pub changes: Vec<Change>,
}
