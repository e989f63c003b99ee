//! What a node can learn about the run it is part of.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

pub use crate::checkpoint::Failure;
use crate::events::{Event, EventSink, Payload};
// The one thing the context carries from the runner layer above it: an opaque handle that only
// `runner::child` opens.
use crate::runner::ChildHost;

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
#[derive(Debug)]
pub struct NodeCtx {
    session: Arc<str>,
    node: &'static str,
    seq: u64,
    /// Atomic so that the scheduler can count the attempts of a branch whose context the
    /// branch's future borrows (plain loads and stores on the step path).
    attempt: AtomicU32,
    /// The item of a map branch.
    item: Option<usize>,
    events: Option<EventSink>,
    failure: Option<Failure>,
    /// What a subgraph node's [`Child`](crate::Child) runs its child session with; set only
    /// for graphs that have subgraph nodes.
    children: Option<Arc<ChildHost>>,
}

impl Clone for NodeCtx {
    fn clone(&self) -> Self {
        NodeCtx {
            session: Arc::clone(&self.session),
            node: self.node,
            seq: self.seq,
            attempt: AtomicU32::new(self.attempt()),
            item: self.item,
            events: self.events.clone(),
            failure: self.failure.clone(),
            children: self.children.clone(),
        }
    }
}

impl NodeCtx {
    pub(crate) fn new(session: Arc<str>, events: Option<EventSink>) -> Self {
        NodeCtx {
            session,
            node: "",
            seq: 0,
            attempt: AtomicU32::new(1),
            item: None,
            events,
            failure: None,
            children: None,
        }
    }

    /// The context of a branch of a parallel region: its node, the sequence number of the
    /// checkpoint that opened the region, and for a map its item's index.
    pub(crate) fn branch(
        session: Arc<str>,
        events: Option<EventSink>,
        node: &'static str,
        seq: u64,
        item: Option<usize>,
    ) -> Self {
        NodeCtx {
            session,
            node,
            seq,
            attempt: AtomicU32::new(1),
            item,
            events,
            failure: None,
            children: None,
        }
    }

    #[inline]
    pub(crate) fn enter(&mut self, node: &'static str, seq: u64) {
        self.node = node;
        self.seq = seq;
        *self.attempt.get_mut() = 1;
    }

    /// Enters the next node of the default `Execute::run` loop, at the next sequence
    /// number. (The loop `#[workflow]` generates calls
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

    /// Lends the context its runner's store and configuration, for the child sessions of
    /// subgraph nodes (called only for graphs that have some).
    pub(crate) fn set_child_host(&mut self, host: Arc<ChildHost>) {
        self.children = Some(host);
    }

    /// Where this run's events go, if anyone listens (a subgraph node's child sends its own
    /// there, tagged with its path).
    pub(crate) fn events(&self) -> Option<&EventSink> {
        self.events.as_ref()
    }

    /// The runner's store and configuration for child sessions, when the graph has subgraph
    /// nodes.
    pub(crate) fn child_host(&self) -> Option<&Arc<ChildHost>> {
        self.children.as_ref()
    }

    #[inline]
    pub(crate) fn set_attempt(&self, attempt: u32) {
        self.attempt.store(attempt, Ordering::Relaxed);
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

    /// The sequence number of the checkpoint this step will produce; in a branch of a
    /// parallel region, the sequence number of the checkpoint that opened the region (the same
    /// for every branch and every re-run).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The attempt number, starting at 1 (see `#[node(retry = N)]`).
    pub fn attempt(&self) -> u32 {
        self.attempt.load(Ordering::Relaxed)
    }

    /// In a branch of a map (`edge!(plan -> each assess)`): the index of its item in the
    /// list `plan` returned, from 0. `None` in any other node, including the branches of a
    /// static fan-out (`edge!(a -> b & c)`), which their node names already tell apart.
    pub fn item_index(&self) -> Option<usize> {
        self.item
    }

    /// In a node reached by an error edge: which node failed and with what error.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// A key that is the same every time this step runs, including re-runs after a crash
    /// (session, node and sequence number), so side effects can be de-duplicated:
    /// `session/node/seq`. In a branch of a parallel region `seq` is the sequence number of
    /// the checkpoint that opened the region, and a map item adds its index:
    /// `session/node/seq/index`.
    pub fn idempotency_key(&self) -> String {
        match self.item {
            None => format!("{}/{}/{}", self.session, self.node, self.seq),
            Some(index) => format!("{}/{}/{}/{index}", self.session, self.node, self.seq),
        }
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
