//! Operating sessions without writing code: find them, read them as JSON, see
//! their history of decisions, edits and failures, answer a waiting decision, correct a
//! field, resume, fork, cancel or delete them, one at a time or in bulk.
//!
//! Checkpoints are bincode, so decoding a state needs the compiled types: an [`Inspector`]
//! lives in the service's own binary and is given the service's [`Runner`]s, one per
//! workflow (each with the `accept_graphs` and `migrate_from` its workflow declares, so older
//! sessions read as they do for the service). The command line (feature `cli`) and the web
//! console (feature `web`) are thin surfaces over it.
//!
//! ```
//! use graph_runtime::inspect::Inspector;
//! use graph_runtime::prelude::*;
//! use graph_runtime::store::SessionFilter;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
//! pub struct Order { pub amount: u64, pub approved: bool }
//!
//! #[workflow(state = Order)]
//! pub mod checkout {
//!     use super::*;
//!     edge!(START -> review);
//!     edge!(review -> END);
//!     #[node(interrupt)]
//!     async fn review(o: &mut Order, ok: bool) { o.approved = ok; }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let runner = Runner::new(checkout::Workflow, store.clone());
//! runner.start("order-1", Order { amount: 120, approved: false }).await?;
//!
//! let inspector = Inspector::new(store).register(runner);
//! let waiting = inspector.sessions(&SessionFilter::new().waiting_at("review")).await?;
//! assert_eq!(waiting.sessions[0].session, "order-1");
//!
//! inspector.edit("order-1", r#"{"amount": 90}"#, None, &Operator::new().by("alice")).await?;
//! let done = inspector.decide("order-1", r#"{"review": true}"#, &Operator::new().by("bob")).await?;
//! assert_eq!(done.summary.status, "completed");
//! assert_eq!(done.state["amount"], 90);
//! # use graph_runtime::inspect::Operator;
//! # Ok(()) }
//! ```

#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod json;
mod view;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

pub use self::error::InspectError;
pub use self::json::{Change, diff};
#[cfg(feature = "web")]
pub(crate) use self::json::{from_operator, from_operator_bytes};
pub use self::view::{
    AuditView, BulkReport, ChildWaitView, DiffView, GraphView, HistoryEntry, LeaseView, NodeView,
    SessionList, SessionSummary, SessionView,
};
use crate::store::{Audit, AuditKind, SessionFilter, SessionRecord, Status, StatusKind, Store};
use crate::{Runner, Workflow};

/// The result of an inspector call.
pub type Result<T, E = InspectError> = std::result::Result<T, E>;

/// Who acts, and why: kept in the session's history with a decision, an edit, a fork or a
/// cancellation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operator {
    /// Who (a user name, an email).
    pub actor: Option<String>,
    /// Why.
    pub note: Option<String>,
}

impl Operator {
    /// Nobody in particular, for no stated reason.
    pub fn new() -> Self {
        Operator::default()
    }

    /// Who acts.
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Why.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    fn audit(&self, kind: AuditKind) -> Audit {
        let mut audit = Audit::new(kind);
        audit.actor = self.actor.clone();
        audit.note = self.note.clone();
        audit
    }
}

/// A bulk action over the sessions a filter matches (see [`Inspector::bulk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkAction {
    /// Resume each (runs it here, to its end or its next wait).
    Resume,
    /// Cancel each.
    Cancel,
    /// Delete each, with all its checkpoints.
    Delete,
}

impl BulkAction {
    /// `resume`, `cancel` or `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Resume => "resume",
            BulkAction::Cancel => "cancel",
            BulkAction::Delete => "delete",
        }
    }
}

/// The most sessions a bulk action touches at once: a larger match is refused, to be
/// narrowed by its filter.
pub const BULK_LIMIT: usize = 10_000;

/// Reads and steers the sessions of one store for the workflows it is given. Cheap to
/// clone; `Send` and `Sync`.
pub struct Inspector<S> {
    store: S,
    workflows: Arc<BTreeMap<&'static str, Arc<dyn Entry>>>,
}

impl<S: Clone> Clone for Inspector<S> {
    fn clone(&self) -> Self {
        Inspector {
            store: self.store.clone(),
            workflows: Arc::clone(&self.workflows),
        }
    }
}

impl<S> std::fmt::Debug for Inspector<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("workflows", &self.workflows.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: Store + Clone> Inspector<S> {
    /// An inspector of `store`, knowing no workflow yet.
    pub fn new(store: S) -> Self {
        Inspector {
            store,
            workflows: Arc::new(BTreeMap::new()),
        }
    }

    /// Registers a workflow by the runner the service runs it with (its store should be this
    /// inspector's). A second runner of the same workflow replaces the first.
    pub fn register<W: Workflow>(mut self, runner: Runner<W, S>) -> Self {
        let mut map = (*self.workflows).clone();
        map.insert(W::NAME, Arc::new(Registered { runner }));
        self.workflows = Arc::new(map);
        self
    }

    /// The store it reads.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The registered workflows' graphs, by name.
    pub fn graphs(&self) -> Vec<GraphView> {
        self.workflows.values().map(|w| w.graph()).collect()
    }

    /// The graph of workflow `name`.
    pub fn graph(&self, name: &str) -> Result<GraphView> {
        self.workflows
            .get(name)
            .map(|w| w.graph())
            .ok_or_else(|| InspectError::UnknownWorkflow {
                name: name.to_owned(),
                registered: self.names(),
            })
    }

    fn names(&self) -> Vec<&'static str> {
        self.workflows.keys().copied().collect()
    }

    /// A page of the sessions `filter` matches, from the store's index (no state decoded).
    pub async fn sessions(&self, filter: &SessionFilter) -> Result<SessionList> {
        if let Some(name) = &filter.workflow
            && !self.workflows.contains_key(name.as_str())
            && !self.workflows.is_empty()
        {
            // Listing an unregistered workflow's sessions is fine (nothing is decoded), but
            // a misspelt name deserves better than an empty list.
            let page = self.store.sessions(filter).await?;
            if page.sessions.is_empty() {
                return Err(InspectError::UnknownWorkflow {
                    name: name.clone(),
                    registered: self.names(),
                });
            }
            return Ok(list(page));
        }
        Ok(list(self.store.sessions(filter).await?))
    }

    /// What the store knows about `session` (no state decoded).
    pub async fn record(&self, session: &str) -> Result<SessionRecord> {
        crate::session_id::check(session)?;
        self.store
            .session(session)
            .await?
            .ok_or_else(|| InspectError::UnknownSession(session.to_owned()))
    }

    /// The registered workflow `record` belongs to.
    fn entry(&self, record: &SessionRecord) -> Result<&Arc<dyn Entry>> {
        let found = match &record.workflow {
            Some(name) => self.workflows.get(name.as_str()),
            // Written before stores recorded workflows: only a lone workflow can be meant.
            None if self.workflows.len() == 1 => self.workflows.values().next(),
            None => None,
        };
        found.ok_or_else(|| InspectError::UnregisteredWorkflow {
            session: record.session.clone(),
            workflow: record.workflow.clone(),
            registered: self.names(),
        })
    }

    /// One session, its latest state decoded as JSON.
    pub async fn show(&self, session: &str) -> Result<SessionView> {
        let record = self.record(session).await?;
        let entry = self.entry(&record)?;
        let state = entry
            .state(session, None)
            .await?
            .ok_or_else(|| InspectError::UnknownSession(session.to_owned()))?;
        let failure = if record.status == Status::Failed {
            self.store
                .list(session)
                .await?
                .into_iter()
                .rev()
                .find_map(|meta| meta.failure)
                .and_then(|audit| match audit.kind {
                    AuditKind::Failed { node, error } => Some(format!("{node}: {error}")),
                    _ => None,
                })
        } else {
            None
        };
        let mut decisions: Vec<&'static str> = entry.interrupts().to_vec();
        decisions.sort_by_key(|node| !record.waiting.iter().any(|w| w == node));
        Ok(SessionView {
            summary: SessionSummary::from(&record),
            state,
            decisions,
            failure,
        })
    }

    /// Every kept checkpoint of `session`, with the decisions, edits and failures recorded
    /// beside them (no state decoded).
    pub async fn history(&self, session: &str) -> Result<Vec<HistoryEntry>> {
        crate::session_id::check(session)?;
        let mut list = self.store.list(session).await?;
        if list.is_empty() {
            return Err(InspectError::UnknownSession(session.to_owned()));
        }
        for checkpoint in &mut list {
            checkpoint.child = crate::runner::waited_child(session, checkpoint);
        }
        Ok(list.iter().map(HistoryEntry::from).collect())
    }

    /// What changed in `session`'s state from checkpoint `from` to checkpoint `to`.
    pub async fn diff(&self, session: &str, from: u64, to: u64) -> Result<DiffView> {
        let record = self.record(session).await?;
        let entry = self.entry(&record)?;
        let mut states = Vec::with_capacity(2);
        for seq in [from, to] {
            let state = entry.state(session, Some(seq)).await?.ok_or_else(|| {
                InspectError::BadInput(format!(
                    "session `{session}` keeps no checkpoint {seq} (see its history)"
                ))
            })?;
            states.push(state);
        }
        Ok(DiffView {
            session: session.to_owned(),
            from,
            to,
            changes: diff(&states[0], &states[1]),
        })
    }

    /// Writes every session `filter` matches (all pages, from `filter.after` on) to `out` as
    /// JSON Lines: one [`SessionView`] per line (its record and state). Returns how many.
    /// A session whose workflow is not registered is written with `"state": null`.
    pub async fn export(
        &self,
        filter: &SessionFilter,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64> {
        let mut filter = filter.clone();
        let mut written = 0;
        loop {
            let page = self.store.sessions(&filter).await?;
            for record in &page.sessions {
                let state = match self.entry(record) {
                    Ok(entry) => entry
                        .state(&record.session, None)
                        .await?
                        .unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                let line = SessionView {
                    summary: SessionSummary::from(record),
                    state,
                    decisions: Vec::new(),
                    failure: None,
                };
                serde_json::to_writer(&mut *out, &line)
                    .map_err(|e| InspectError::Runtime(crate::Error::Store(Box::new(e))))?;
                out.write_all(b"\n")
                    .map_err(|e| InspectError::Runtime(crate::Error::Store(Box::new(e))))?;
                written += 1;
            }
            match page.next {
                Some(next) => filter.after = Some(next),
                None => return Ok(written),
            }
        }
    }

    /// Gives `session` a decision, as JSON keyed by the node's name (the name status and
    /// events use): `{"review": {"Reject": {"reason": "…"}}}`; then runs it here, to its end
    /// or its next wait. A malformed decision, one for a node the session does not wait at
    /// or of the wrong shape is [`InspectError::BadInput`] naming what was expected, and
    /// nothing is written.
    pub async fn decide(
        &self,
        session: &str,
        decision: &str,
        by: &Operator,
    ) -> Result<SessionView> {
        let record = self.record(session).await?;
        let entry = self.entry(&record)?;
        let value: Value = json::from_operator(decision)
            .map_err(|e| InspectError::BadInput(format!("the decision is not JSON: {e}")))?;
        let expected = || expected_decision(&record, entry.interrupts());
        let (node, body) = match value {
            Value::Object(map) if map.len() == 1 => map.into_iter().next().expect("one entry"),
            _ => {
                return Err(InspectError::BadInput(format!(
                    "a decision is a JSON object with one key, the node's name: {}",
                    expected()
                )));
            }
        };
        if record.status.kind() != StatusKind::Waiting || !record.waiting.contains(&node) {
            let at = if record.waiting.is_empty() {
                format!("it is {}", record.status.kind())
            } else {
                format!("it waits at {}", quoted(&record.waiting))
            };
            return Err(InspectError::Refused(crate::Error::NotWaiting {
                session: session.to_owned(),
                node: entry
                    .interrupts()
                    .iter()
                    .find(|n| **n == node)
                    .copied()
                    .unwrap_or("(not an interrupt node)"),
                actual: at,
            }));
        }
        entry.decide(session, &node, body, by).await?;
        self.show(session).await
    }

    /// Changes fields of a waiting or failed session's state by a JSON merge patch (RFC 7386:
    /// `{"amount": 90, "note": null}` sets `amount` and removes `note`), checked by decoding
    /// the result as the workflow's state type, and written as a new checkpoint at the same
    /// cursor if the session is still at `expected_seq` (its latest if `None`), with the
    /// changes and `by` in its history.
    pub async fn edit(
        &self,
        session: &str,
        patch: &str,
        expected_seq: Option<u64>,
        by: &Operator,
    ) -> Result<SessionView> {
        let record = self.record(session).await?;
        let entry = self.entry(&record)?;
        let patch: Value = json::from_operator(patch)
            .map_err(|e| InspectError::BadInput(format!("the patch is not JSON: {e}")))?;
        let expected = expected_seq.unwrap_or(record.seq);
        entry.edit(session, expected, patch, by).await?;
        self.show(session).await
    }

    /// Runs `session` on from its latest checkpoint, here (after a failure, a crash or an
    /// edit).
    pub async fn resume(&self, session: &str) -> Result<SessionView> {
        let record = self.record(session).await?;
        self.entry(&record)?.resume(session).await?;
        self.show(session).await
    }

    /// Starts `new_session` from checkpoint `seq` of `session` (its latest if `None`), with
    /// an optional merge patch applied to the copy's state; the origin is not changed.
    pub async fn fork(
        &self,
        session: &str,
        seq: Option<u64>,
        new_session: &str,
        patch: Option<&str>,
        by: &Operator,
    ) -> Result<SessionView> {
        let record = self.record(session).await?;
        let entry = self.entry(&record)?;
        let patch = patch
            .map(|p| {
                json::from_operator(p)
                    .map_err(|e| InspectError::BadInput(format!("the patch is not JSON: {e}")))
            })
            .transpose()?;
        entry
            .fork(session, seq.unwrap_or(record.seq), new_session, patch, by)
            .await?;
        self.show(new_session).await
    }

    /// Cancels `session`: it never runs again.
    pub async fn cancel(&self, session: &str, by: &Operator) -> Result<SessionView> {
        let record = self.record(session).await?;
        self.entry(&record)?.cancel(session, by).await?;
        self.show(session).await
    }

    /// Deletes `session` with all its checkpoints, and the child sessions its subgraph nodes
    /// started (theirs too), as [`Runner::delete`](crate::Runner::delete) does. Needs no
    /// registered workflow.
    pub async fn delete(&self, session: &str) -> Result<()> {
        crate::session_id::check(session)?;
        if self.store.delete(session).await? {
            Ok(())
        } else {
            Err(InspectError::UnknownSession(session.to_owned()))
        }
    }

    /// Sessions that need a person: failed ones, ones waiting longer than `older_than`, and
    /// running ones whose lease expired more than `older_than` ago (their worker died and
    /// no other took them), at most `limit` of each.
    pub async fn stuck(&self, older_than: Duration, limit: usize) -> Result<Vec<SessionSummary>> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut out = Vec::new();
        let failed = SessionFilter::new().status(StatusKind::Failed).limit(limit);
        out.extend(self.store.sessions(&failed).await?.sessions);
        let waiting = SessionFilter::new()
            .status(StatusKind::Waiting)
            .updated_before(cutoff)
            .limit(limit);
        out.extend(self.store.sessions(&waiting).await?.sessions);
        let mut running = SessionFilter::new()
            .status(StatusKind::Running)
            .updated_before(cutoff)
            .limit(SessionFilter::MAX_LIMIT);
        let mut expired = 0;
        'pages: loop {
            let page = self.store.sessions(&running).await?;
            for record in page.sessions {
                if matches!(&record.lease, Some((_, expires)) if *expires < cutoff) {
                    out.push(record);
                    expired += 1;
                    if expired == limit {
                        break 'pages;
                    }
                }
            }
            match page.next {
                Some(next) => running.after = Some(next),
                None => break,
            }
        }
        Ok(out.iter().map(SessionSummary::from).collect())
    }

    /// Does `action` to every session `filter` matches (every page, at most [`BULK_LIMIT`];
    /// more is [`InspectError::BadInput`]: narrow the filter). With `dry_run`, only lists
    /// them. A session the action fails on is reported and the others go on.
    pub async fn bulk(
        &self,
        action: BulkAction,
        filter: &SessionFilter,
        dry_run: bool,
        by: &Operator,
    ) -> Result<BulkReport> {
        let mut filter = filter.clone();
        filter.limit = SessionFilter::MAX_LIMIT;
        let mut sessions = Vec::new();
        loop {
            let page = self.store.sessions(&filter).await?;
            sessions.extend(page.sessions.into_iter().map(|r| r.session));
            if sessions.len() > BULK_LIMIT {
                return Err(InspectError::BadInput(format!(
                    "the filter matches more than {BULK_LIMIT} sessions: narrow it"
                )));
            }
            match page.next {
                Some(next) => filter.after = Some(next),
                None => break,
            }
        }
        let mut report = BulkReport {
            action: action.as_str(),
            dry_run,
            sessions,
            done: 0,
            failed: Vec::new(),
        };
        if dry_run {
            return Ok(report);
        }
        for session in &report.sessions {
            let result = match action {
                BulkAction::Resume => self.resume(session).await.map(drop),
                BulkAction::Cancel => self.cancel(session, by).await.map(drop),
                BulkAction::Delete => self.delete(session).await,
            };
            match result {
                Ok(()) => report.done += 1,
                Err(e) => report.failed.push((session.clone(), e.to_string())),
            }
        }
        Ok(report)
    }
}

fn list(page: crate::store::SessionPage) -> SessionList {
    SessionList {
        sessions: page.sessions.iter().map(SessionSummary::from).collect(),
        next: page.next,
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a decision for `record` looks like, for an error message.
fn expected_decision(record: &SessionRecord, interrupts: &[&'static str]) -> String {
    let nodes: Vec<String> = if record.waiting.is_empty() {
        interrupts.iter().map(|n| (*n).to_owned()).collect()
    } else {
        record.waiting.clone()
    };
    match nodes.as_slice() {
        [] => "this workflow has no interrupt node".to_owned(),
        [node] => format!("expected {{\"{node}\": <its input>}}"),
        _ => format!(
            "expected {{\"<node>\": <its input>}} with <node> one of {}",
            quoted(&nodes)
        ),
    }
}

/// A boxed future of a registered workflow's call.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A registered workflow with its types erased: what the inspector calls through.
trait Entry: Send + Sync {
    fn graph(&self) -> GraphView;
    /// The interrupt nodes (the decisions it takes).
    fn interrupts(&self) -> &'static [&'static str];
    fn state<'a>(&'a self, session: &'a str, seq: Option<u64>) -> Call<'a, Option<Value>>;
    fn decide<'a>(
        &'a self,
        session: &'a str,
        node: &'a str,
        body: Value,
        by: &'a Operator,
    ) -> Call<'a, ()>;
    fn edit<'a>(
        &'a self,
        session: &'a str,
        expected: u64,
        patch: Value,
        by: &'a Operator,
    ) -> Call<'a, ()>;
    fn resume<'a>(&'a self, session: &'a str) -> Call<'a, ()>;
    fn fork<'a>(
        &'a self,
        session: &'a str,
        seq: u64,
        new_session: &'a str,
        patch: Option<Value>,
        by: &'a Operator,
    ) -> Call<'a, ()>;
    fn cancel<'a>(&'a self, session: &'a str, by: &'a Operator) -> Call<'a, ()>;
}

struct Registered<W: Workflow, S> {
    runner: Runner<W, S>,
}

impl<W: Workflow, S: Store> Registered<W, S> {
    /// `state` with the merge patch applied, checked by decoding it as the state type; the
    /// changes as JSON for the audit record.
    fn patched(state: &W::State, patch: &Value) -> Result<(W::State, String)> {
        let before = to_json(state)?;
        let mut after = before.clone();
        json_patch::merge(&mut after, patch);
        let state: W::State = serde_json::from_value(after.clone()).map_err(|e| {
            InspectError::BadInput(format!(
                "the patched state is not a valid `{}` state: {e}",
                W::NAME
            ))
        })?;
        let changes = diff(&before, &after);
        let changes = serde_json::to_string(&changes)
            .map_err(|e| InspectError::Runtime(crate::Error::Store(Box::new(e))))?;
        Ok((state, changes))
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| {
        InspectError::Runtime(crate::Error::Encode {
            session: String::new(),
            reason: format!("the state does not serialize as JSON: {e}"),
        })
    })
}

impl<W: Workflow, S: Store> Entry for Registered<W, S> {
    fn graph(&self) -> GraphView {
        GraphView {
            workflow: W::NAME,
            graph_hash: format!("{:#018x}", W::GRAPH_HASH),
            state_schema: format!("{:#018x}", W::STATE_SCHEMA),
            nodes: W::NODES
                .iter()
                .map(|name| {
                    let spec = W::node(name);
                    NodeView {
                        name,
                        interrupt: spec.is_some_and(|s| s.interrupt),
                        wait_ms: spec.and_then(|s| s.wait_ms),
                    }
                })
                .collect(),
            mermaid: W::MERMAID,
        }
    }

    fn interrupts(&self) -> &'static [&'static str] {
        W::INPUT_NODES
    }

    fn state<'a>(&'a self, session: &'a str, seq: Option<u64>) -> Call<'a, Option<Value>> {
        Box::pin(async move {
            let snapshot = match seq {
                None => self.runner.state(session).await?,
                Some(seq) => self.runner.state_at(session, seq).await?,
            };
            snapshot.map(|s| to_json(&s.state)).transpose()
        })
    }

    fn decide<'a>(
        &'a self,
        session: &'a str,
        node: &'a str,
        body: Value,
        by: &'a Operator,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let input = W::input_from_node(node, body).map_err(|e| {
                InspectError::BadInput(format!("the decision for `{node}` does not fit: {e}"))
            })?;
            let mut call = self.runner.resume_with(session, input);
            if let Some(actor) = &by.actor {
                call = call.by(actor.clone());
            }
            if let Some(note) = &by.note {
                call = call.note(note.clone());
            }
            call.await?;
            Ok(())
        })
    }

    fn edit<'a>(
        &'a self,
        session: &'a str,
        expected: u64,
        patch: Value,
        by: &'a Operator,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let snapshot = self
                .runner
                .state(session)
                .await?
                .ok_or_else(|| InspectError::UnknownSession(session.to_owned()))?;
            let (state, changes) = Self::patched(&snapshot.state, &patch)?;
            let audit = by.audit(AuditKind::Edit { diff: changes });
            self.runner.edit(session, expected, state, audit).await?;
            Ok(())
        })
    }

    fn resume<'a>(&'a self, session: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            self.runner.resume(session).await?;
            Ok(())
        })
    }

    fn fork<'a>(
        &'a self,
        session: &'a str,
        seq: u64,
        new_session: &'a str,
        patch: Option<Value>,
        by: &'a Operator,
    ) -> Call<'a, ()> {
        Box::pin(async move {
            let origin = self.runner.state_at(session, seq).await?.ok_or_else(|| {
                InspectError::BadInput(format!(
                    "session `{session}` keeps no checkpoint {seq} (see its history)"
                ))
            })?;
            let state = match &patch {
                Some(patch) => Self::patched(&origin.state, patch)?.0,
                None => origin.state,
            };
            let audit = by.audit(AuditKind::Cancelled);
            self.runner
                .fork_with(session, seq, new_session, state, audit)
                .await?;
            Ok(())
        })
    }

    fn cancel<'a>(&'a self, session: &'a str, by: &'a Operator) -> Call<'a, ()> {
        Box::pin(async move {
            self.runner
                .cancel(session, by.audit(AuditKind::Cancelled))
                .await?;
            Ok(())
        })
    }
}
