//! One attempt of a node or a branch, and what happens around it: the per-attempt timeout,
//! cancellation, events, the tracing span, rollback of a failed attempt, and — decided apart
//! from running the attempt, as tower's `retry::Policy` does — whether to retry and after how
//! long ([`RetryPolicy`]).

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::position::Position;
use super::{Control, Cursor, Runner};
use crate::checkpoint;
use crate::error::report;
use crate::events::Event;
use crate::execute::{Execute, Slot, Transition};
use crate::store::Store;
use crate::{Error, NodeCtx, NodeError, NodeSpec, Result, Workflow};

/// A node attempt that took longer than `#[node(timeout_ms = …)]`: the error of the attempt.
///
/// Its message leaves the node out, as every place that shows it already names the node
/// ([`Error::Node`], whose source it is, [`Failure::node`](crate::Failure::node),
/// [`Event::Retrying`]).
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::TimedOut;
///
/// let e = TimedOut { node: "charge", after: Duration::from_millis(50) };
/// assert_eq!(e.to_string(), "timed out after 50ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimedOut {
    /// The node.
    pub node: &'static str,
    /// The timeout.
    pub after: Duration,
}

/// The error of a map item that failed after its retries: the source of the
/// [`Error::Node`] that names the map node, saying which item it was.
///
/// ```
/// use std::error::Error as _;
/// use graph_runtime::ItemFailed;
///
/// let e = ItemFailed { item: 3, source: "api down".into() };
/// assert_eq!(e.to_string(), "item 3");
/// assert_eq!(e.source().unwrap().to_string(), "api down");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("item {item}")]
pub struct ItemFailed {
    /// The index of the item in the list the map's source node returned, from 0.
    pub item: usize,
    /// What the item's last attempt returned.
    #[source]
    pub source: NodeError,
}

/// How one guarded attempt ended.
pub(super) enum Attempt<T> {
    Done(T),
    TimedOut(Duration),
}

/// Whether a failed attempt is retried, and after how long: `#[node(retry = N, backoff_ms =
/// B, backoff_max_ms = C, jitter)]`. Knows nothing about running the attempt.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    spec: &'static NodeSpec,
}

impl RetryPolicy {
    fn of(spec: &'static NodeSpec) -> Self {
        RetryPolicy { spec }
    }

    /// After attempt `attempt` (from 1) failed: `Some(wait)` before the next one, or `None`
    /// when the failure is final (permanent, or the retries are used up).
    fn retry(&self, attempt: u32, permanent: bool) -> Option<Duration> {
        if permanent || attempt > self.spec.retry {
            return None;
        }
        Some(backoff(self.spec, attempt))
    }
}

/// The attempts of one node or one branch, as tower's retry future holds a policy and the
/// request: which attempt runs, what starting one reports (an event, a tracing span), and —
/// through [`RetryPolicy`] — what a failed one leads to. A node drives it in a loop
/// ([`Runner::run_node`], which also rolls the state back); a branch from the scheduler's set
/// of running futures, where a retry is a backoff future beside the other branches. Both
/// guard each attempt with [`timed`] and [`cancellable`].
#[derive(Debug, Clone, Copy)]
pub(super) struct AttemptSeries {
    spec: &'static NodeSpec,
    policy: RetryPolicy,
    /// `Some` for a branch: the map item's index within it, if a map's.
    branch: Option<Option<usize>>,
    attempt: u32,
}

/// What a failed attempt leads to.
pub(super) enum AfterFailure {
    /// Another attempt, after this wait.
    Retry(Duration),
    /// None: the failure is final (permanent, or the retries are used up).
    GiveUp(NodeError),
}

impl AttemptSeries {
    /// The attempts of the node `spec`.
    pub(super) fn node(spec: &'static NodeSpec) -> Self {
        AttemptSeries {
            spec,
            policy: RetryPolicy::of(spec),
            branch: None,
            attempt: 1,
        }
    }

    /// The attempts of the branch node `spec` (for a map, of its item `item`).
    pub(super) fn branch(spec: &'static NodeSpec, item: Option<usize>) -> Self {
        AttemptSeries {
            branch: Some(item),
            ..AttemptSeries::node(spec)
        }
    }

    /// The attempt that runs next, from 1.
    pub(super) fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports that the attempt starts (of the step or region saved as `seq`), and returns
    /// its tracing span (none unless `control` asks for spans).
    pub(super) fn start(&self, control: &Control, seq: u64) -> tracing::Span {
        let (node, attempt) = (self.spec.name, self.attempt);
        match self.branch {
            None => {
                control.emit(|| Event::StepStarted { node, seq, attempt });
                if control.spans {
                    tracing::debug_span!(target: "graph_runtime::step", "step", node, seq, attempt)
                } else {
                    tracing::Span::none()
                }
            }
            Some(item) => {
                control.emit(|| Event::BranchStarted {
                    node,
                    item,
                    seq,
                    attempt,
                });
                match (control.spans, item) {
                    (false, _) => tracing::Span::none(),
                    (true, None) => {
                        tracing::debug_span!(target: "graph_runtime::step", "branch", node, seq, attempt)
                    }
                    (true, Some(item)) => {
                        tracing::debug_span!(target: "graph_runtime::step", "branch", node, item, seq, attempt)
                    }
                }
            }
        }
    }

    /// The attempt failed with `error` (`permanent`: it must not be retried): retry after a
    /// wait, reported, with the count moved on to the next attempt, or give up.
    pub(super) fn failed(
        &mut self,
        error: NodeError,
        permanent: bool,
        control: &Control,
    ) -> AfterFailure {
        let Some(delay) = self.policy.retry(self.attempt, permanent) else {
            return AfterFailure::GiveUp(error);
        };
        let (node, attempt) = (self.spec.name, self.attempt);
        let next = attempt + 1;
        match self.branch {
            None => {
                tracing::debug!(node, attempt, ?delay, error = %report(&*error), "retrying");
                control.emit(|| Event::Retrying {
                    node,
                    attempt: next,
                    delay,
                    error: report(&*error),
                });
            }
            Some(item) => {
                tracing::debug!(node, item, attempt, ?delay, error = %report(&*error), "retrying a branch");
                control.emit(|| Event::BranchRetrying {
                    node,
                    item,
                    attempt: next,
                    delay,
                    error: report(&*error),
                });
            }
        }
        self.attempt = next;
        AfterFailure::Retry(delay)
    }
}

/// The wait before attempt `attempt + 1`: `backoff_ms * 2^(attempt - 1)`, capped at
/// `backoff_max_ms`, then (with jitter) a uniform value between half of it and all of it.
fn backoff(spec: &NodeSpec, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(63);
    let ms = spec
        .backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(spec.backoff_max_ms);
    let ms = if spec.jitter && ms > 1 {
        ms / 2 + fastrand::u64(0..=ms - ms / 2)
    } else {
        ms
    };
    Duration::from_millis(ms)
}

/// `attempt` under the node's timeout, if it has one.
pub(super) async fn timed<F: Future>(spec: &NodeSpec, attempt: F) -> Attempt<F::Output> {
    match spec.timeout_ms {
        None => Attempt::Done(attempt.await),
        Some(ms) => {
            let after = Duration::from_millis(ms);
            match tokio::time::timeout(after, attempt).await {
                Ok(output) => Attempt::Done(output),
                Err(_) => Attempt::TimedOut(after),
            }
        }
    }
}

/// The error of an attempt that timed out.
pub(super) fn timed_out(spec: &NodeSpec, after: Duration) -> NodeError {
    Box::new(TimedOut {
        node: spec.name,
        after,
    })
}

/// `future`, or [`Error::Cancelled`] as soon as the call's token is cancelled.
pub(super) async fn cancellable<F: Future>(
    control: &Control,
    session: &str,
    future: F,
) -> Result<F::Output> {
    match &control.cancel {
        None => Ok(future.await),
        Some(token) => tokio::select! {
            biased;
            output = future => Ok(output),
            () = token.cancelled() => Err(Error::Cancelled(session.to_owned())),
        },
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// Runs one node with everything the plain loop leaves out: retries with backoff, the
    /// per-attempt timeout, cancellation, events and a tracing span. On failure the state (and
    /// pending input) is restored to what it was before the attempt, so no partial change is
    /// seen by a retry, an error node or a checkpoint.
    ///
    /// `join` holds the finished slots when the node is the join of a region: it then runs
    /// with [`Execute::join`] instead of [`Execute::step`].
    pub(super) async fn run_node(
        &self,
        spec: &'static NodeSpec,
        has_error_route: bool,
        at: &mut Position<W>,
        join: Option<&[Slot]>,
        ctx: &mut NodeCtx,
        control: &Control,
    ) -> Result<Transition<Cursor<W>>> {
        let workflow = &self.shared.workflow;
        let cursor = at.cursor;
        let mut series = AttemptSeries::node(spec);
        // The cheapest rollback that needs no `Clone` bound: the checkpoint body encoding,
        // taken only for nodes that can retry or take an error edge.
        // (And for every node of a graph with subgraph nodes: a child's wait ends its
        // node's attempt, whose state the parent's waiting checkpoint must not hold.)
        let snapshot = if spec.retry > 0 || has_error_route || W::Exec::SUBGRAPHS {
            Some(checkpoint::encode_rollback(
                at.session.id(),
                &(&at.state, at.input.as_ref()),
            )?)
        } else {
            None
        };
        loop {
            ctx.set_attempt(series.attempt());
            let span = series.start(control, ctx.seq());
            let started = control.events.is_some().then(Instant::now);
            let outcome = match join {
                None => {
                    let step = W::Exec::step(workflow, cursor, &mut at.state, ctx, at.input.take());
                    let timed = timed(spec, step).instrument(span);
                    cancellable(control, at.session.id(), timed).await?
                }
                Some(slots) => {
                    let join = W::Exec::join(
                        workflow,
                        cursor,
                        &mut at.state,
                        ctx,
                        crate::execute::Outputs::new(slots),
                    );
                    let timed = timed(spec, join).instrument(span);
                    cancellable(control, at.session.id(), timed).await?
                }
            };
            if let Some(started) = started {
                let duration = started.elapsed();
                control.emit(|| Event::StepFinished {
                    node: spec.name,
                    seq: ctx.seq(),
                    duration,
                });
            }
            let (error, permanent): (NodeError, bool) = match outcome {
                // A child that waits is not a failure to retry: the parent waits too.
                Attempt::Done(Transition::Failed(e))
                    if W::Exec::SUBGRAPHS
                        && ctx.child_host().is_some_and(|host| host.is_interrupted()) =>
                {
                    (e, true)
                }
                Attempt::Done(Transition::Failed(e)) => (e, false),
                Attempt::Done(Transition::FailedPermanently(e)) => (e, true),
                Attempt::Done(transition) => return Ok(transition),
                Attempt::TimedOut(after) => (timed_out(spec, after), false),
            };
            if let Some(bytes) = &snapshot {
                let (state, input) = checkpoint::decode_rollback(at.session.id(), at.seq, bytes)?;
                at.state = state;
                at.input = input;
            }
            match series.failed(error, permanent, control) {
                AfterFailure::GiveUp(error) => return Ok(Transition::Failed(error)),
                AfterFailure::Retry(delay) => {
                    cancellable(control, at.session.id(), tokio::time::sleep(delay)).await?;
                }
            }
        }
    }
}
