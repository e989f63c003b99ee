//! How a runner is configured: when it saves (`CheckpointPolicy`), what it keeps
//! (`Retention`), what it does with a checkpoint of another graph (`GraphChange`), and the
//! settings its builder methods collect (`Config`), each checked once, where it is given.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[cfg(doc)]
use crate::{Error, Runner, Workflow};

/// When the runner saves a checkpoint.
///
/// Whatever the policy, a checkpoint is always saved when a session starts, when it waits at
/// an interrupt (with the decision recorded before the node runs), when it completes, and
/// before an error edge's node runs. What a crash can make run again is the work since the
/// last checkpoint, from its cursor:
///
/// | policy | saved after | a crash re-runs |
/// |---|---|---|
/// | `EveryStep` | every node | the node that was running |
/// | `EveryN(n)` | every `n`th node | up to `n` nodes |
/// | `OnInterrupt` | nothing but the points above | everything since the last interrupt |
/// | `Adaptive { budget }` | interrupt, retrying, timed or error-edge nodes, and any node once `budget` of node time went unsaved | about `budget` of plain, cheap nodes |
///
/// A node overrides the policy with `#[node(checkpoint = always)]` (saved after it whatever
/// the policy: it has a side effect that must not be repeated, or is expensive) or
/// `#[node(checkpoint = never)]` (never saved after it by policy: it is cheap and pure).
/// Re-runs are what [`NodeCtx::idempotency_key`](crate::NodeCtx::idempotency_key) is for: it is the same on every re-run.
///
/// In a parallel region (`edge!(a -> b & c)`, `edge!(plan -> each item)`), the checkpoint
/// after the step that opens it holds the state and the region's frontier (for a map, its
/// items, so the step before `each` never runs again once it is saved). Then:
///
/// | policy | a finished branch's output is saved | a crash re-runs |
/// |---|---|---|
/// | `EveryStep`, `Adaptive` | at once, as a branch record of about its output + 80 bytes, while the siblings run on | the branches that had not finished |
/// | `EveryN(n)`, `OnInterrupt` | with the next checkpoint: when the region waits, when a branch fails the run (if the region's opening is saved), or with the join's step | the whole region since the last checkpoint |
///
/// `#[node(checkpoint = always)]` on a branch saves its record whatever the policy;
/// `checkpoint = never` leaves it to the next checkpoint. A region that waits for input is
/// always saved (a record when its opening is stored, else one whole checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointPolicy {
    /// After every step (the default): a crash re-runs at most the step in flight.
    #[default]
    EveryStep,
    /// Only when a session waits at an interrupt and when it completes. Fastest; a crash
    /// re-runs everything since the last interrupt.
    OnInterrupt,
    /// After every `n`th step, and at interrupts and completion. `EveryN(0)` is rejected by
    /// [`Runner::checkpoint_policy`] (see there).
    EveryN(u64),
    /// Saves where a crash would cost most, and otherwise only once the time spent in nodes
    /// since the last checkpoint exceeds `budget`: after every node that waits (an
    /// interrupt), can retry, has a timeout or an error edge, at completion, and after a node
    /// once `budget` of node time has gone by unsaved. A crash re-runs at most about `budget`
    /// of cheap, plain nodes (and never a node with retries or a timeout, which usually talk
    /// to the outside world). `Adaptive { budget: Duration::ZERO }` behaves like `EveryStep`.
    Adaptive {
        /// How much node time may go unsaved.
        budget: Duration,
    },
}

/// How many checkpoints a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Every checkpoint (the default): full history, rewind and fork from any step.
    #[default]
    KeepAll,
    /// Only the newest `n`, pruned in the same store transaction as each append.
    /// `KeepLast(0)` is rejected by [`Runner::retention`] (see there).
    KeepLast(u64),
}

/// What to do with a checkpoint saved by a graph with a different [`Workflow::GRAPH_HASH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphChange {
    /// Refuse it with [`Error::GraphMismatch`] (the default), before any node runs.
    #[default]
    Strict,
    /// Resume anyway, placing the cursor by node name; fails with [`Error::UnknownNode`] if
    /// the node no longer exists, or [`Error::Corrupt`] if the state no longer decodes.
    Force,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(super) policy: CheckpointPolicy,
    pub(super) retention: Retention,
    pub(super) max_steps: u64,
    pub(super) graph_change: GraphChange,
    pub(super) cancel: Option<CancellationToken>,
    pub(super) event_capacity: usize,
    /// How soon a map parent a worker left waiting for children running elsewhere is
    /// claimed again (see [`Runner::recheck_children`]).
    pub(super) recheck_children: Duration,
    /// The first bad setting a builder method was given, checked there and only there; every
    /// call that runs or writes a session returns it as [`Error::InvalidConfig`].
    pub(super) invalid: Option<&'static str>,
}

impl Config {
    /// Records `problem` as the runner's configuration error, unless an earlier setting
    /// already was one (the first mistake is the one to fix first).
    pub(super) fn reject(&mut self, problem: &'static str) {
        self.invalid.get_or_insert(problem);
    }
}
