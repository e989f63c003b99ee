//! What a node can learn about the run it is part of.

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventSink, Payload};

/// The run context a node may take as a parameter (`ctx: &NodeCtx`).
///
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize, StateSchema)]
/// pub struct Job { pub key: String }
///
/// #[workflow(state = Job)]
/// pub mod job {
///     use super::*;
///     edge!(START -> pay);
///     edge!(pay -> END);
///     #[node]
///     async fn pay(job: &mut Job, ctx: &NodeCtx) {
///         // The same on every re-run of this step after a crash: pass it to the payment API.
///         job.key = ctx.idempotency_key();
///         ctx.emit(format!("charging with key {}", job.key));
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct NodeCtx {
    session: Arc<str>,
    node: &'static str,
    seq: u64,
    attempt: u32,
    events: Option<EventSink>,
    failure: Option<Failure>,
}

/// What failed before an error edge was taken: read it with [`NodeCtx::failure`] in the error
/// node. It is saved in the checkpoint, so the error node sees it again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    node: String,
    error: String,
}

impl Failure {
    pub(crate) fn new(node: &str, error: String) -> Self {
        Failure {
            node: node.to_owned(),
            error,
        }
    }

    /// The node that failed.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The error it returned (after its last attempt) with its causes, on one line:
    /// `"outer: cause: root cause"`, each once.
    pub fn error(&self) -> &str {
        &self.error
    }
}

impl NodeCtx {
    pub(crate) fn new(session: Arc<str>, events: Option<EventSink>) -> Self {
        NodeCtx {
            session,
            node: "",
            seq: 0,
            attempt: 1,
            events,
            failure: None,
        }
    }

    #[inline]
    pub(crate) fn enter(&mut self, node: &'static str, seq: u64) {
        self.node = node;
        self.seq = seq;
        self.attempt = 1;
    }

    /// Enters the next node of the default [`Workflow::run`](crate::Workflow::run) loop, at
    /// the next sequence number. (The loop `#[workflow]` generates calls
    /// [`NodeCtx::__enter`] instead.)
    #[inline(always)]
    pub(crate) fn advance(&mut self, node: &'static str) {
        self.node = node;
        self.seq += 1;
    }

    /// Enters node `node` at sequence number `seq` inside a [`Workflow::run`](crate::Workflow::run)
    /// loop. Called by the code `#[workflow]` generates, which is why it is `pub`; not part of
    /// the API, not for use in nodes.
    #[doc(hidden)]
    #[inline(always)]
    pub fn __enter(&mut self, node: &'static str, seq: u64) {
        self.node = node;
        self.seq = seq;
    }

    #[inline]
    pub(crate) fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    pub(crate) fn set_failure(&mut self, failure: Failure) {
        self.failure = Some(failure);
    }

    /// Forgets the failure once its error node has run; free when there is none.
    #[inline]
    pub(crate) fn clear_failure(&mut self) {
        if self.failure.is_some() {
            self.failure = None;
        }
    }

    /// The session this run belongs to.
    pub fn session_id(&self) -> &str {
        &self.session
    }

    /// The node being run.
    pub fn node(&self) -> &'static str {
        self.node
    }

    /// The sequence number of the checkpoint this step will produce.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The attempt number, starting at 1 (see `#[node(retry = N)]`).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// In a node reached by an error edge: which node failed and with what error.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// A key that is the same every time this step runs, including re-runs after a crash
    /// (session, node and sequence number), so side effects can be de-duplicated.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.session, self.node, self.seq)
    }

    /// Sends a custom [`Event::Custom`] to whoever listens to the run's events
    /// ([`RunHandle::events`](crate::RunHandle::events)). Costs nothing when the run was not
    /// spawned with events; never waits (a full buffer drops the event and reports
    /// [`Event::Lagged`]).
    pub fn emit<T: Any + Send + Sync>(&self, value: T) {
        if let Some(events) = &self.events {
            events.send(Event::Custom {
                node: self.node,
                seq: self.seq,
                payload: Payload::new(value),
            });
        }
    }
}
