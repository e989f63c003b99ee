//! What a node can learn about the run it is part of.

use std::sync::Arc;

/// The run context a node may take as a parameter (`ctx: &NodeCtx`).
///
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Default, Serialize, Deserialize)]
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
///     }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct NodeCtx {
    session: Arc<str>,
    node: &'static str,
    seq: u64,
    attempt: u32,
}

impl NodeCtx {
    pub(crate) fn new(session: Arc<str>) -> Self {
        NodeCtx { session, node: "", seq: 0, attempt: 1 }
    }

    #[inline]
    pub(crate) fn enter(&mut self, node: &'static str, seq: u64) {
        self.node = node;
        self.seq = seq;
        self.attempt = 1;
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

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A key that is the same every time this step runs, including re-runs after a crash
    /// (session, node and sequence number), so side effects can be de-duplicated.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}/{}", self.session, self.node, self.seq)
    }
}
