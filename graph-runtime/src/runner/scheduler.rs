//! The step loop and the frontier of parallel regions: runs nodes from a position until the
//! session completes, waits or fails.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use std::future::Future;

use futures_util::StreamExt as _;
use futures_util::future::{Either, Fuse, FutureExt as _};
use futures_util::stream::FuturesUnordered;

use super::attempt::{
    AfterFailure, Attempt, AttemptSeries, ItemFailed, cancellable, timed, timed_out,
};
use super::position::{Frontier, Position};
use super::session::{self, as_memory};
use super::{CheckpointPolicy, Control, Cursor, END, Outcome, Runner};
use crate::checkpoint::{FrontierRef, Saved};
use crate::ctx::Failure;
use crate::error::report;
use crate::events::Event;
use crate::execute::{BranchResult, Execute, Region, RegionKind, Slot, Transition};
use crate::store::{Checkpoint, MemoryStore, Store};
use crate::workflow::NodeCheckpoint;
use crate::{Error, NodeCtx, NodeSpec, Result, Status, Workflow};

/// The node that runs slot `index` of `region`.
pub(super) fn branch_of<C: Copy>(region: &Region<C>, index: usize) -> Option<C> {
    match region.kind {
        RegionKind::FanOut { branches, .. } => branches.get(index).copied(),
        RegionKind::Map { node, .. } => Some(node),
    }
}

/// Every node waiting in `slots` of the region joined at `join`, in declaration order.
pub(super) fn waiting_nodes<W: Workflow>(join: Cursor<W>, slots: &[Slot]) -> Vec<&'static str> {
    let Some(region) = W::Exec::region(join) else {
        return Vec::new();
    };
    let mut names: Vec<&'static str> = slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| matches!(slot, Slot::Waiting))
        .filter_map(|(i, _)| branch_of(region, i))
        .map(|cursor| W::Exec::spec(cursor).name)
        .collect();
    names.sort_by_key(|name| {
        W::NODES
            .iter()
            .position(|n| n == name)
            .unwrap_or(usize::MAX)
    });
    names.dedup();
    names
}

/// The status a checkpoint in a region is indexed with: waiting names the first waiting
/// branch in declaration order.
/// `status` is the session's status at the join: running, waiting or completed.
pub(super) fn region_status<W: Workflow>(
    status: Status,
    join: Cursor<W>,
    slots: &[Slot],
) -> Status {
    match status {
        Status::Waiting { .. } => match waiting_nodes::<W>(join, slots).first() {
            Some(node) => Status::Waiting {
                node: (*node).to_owned(),
            },
            None => Status::Waiting {
                node: W::Exec::spec(join).name.to_owned(),
            },
        },
        other => other,
    }
}

/// Waiting at `node`.
pub(super) fn waiting_at(node: &str) -> Status {
    Status::Waiting {
        node: node.to_owned(),
    }
}

/// What finished in the set of running branches.
enum Ran {
    /// An attempt of slot `.0` returned, after `.2` if the run is observed.
    Attempt(usize, Attempt<BranchResult>, Option<Duration>),
    /// Slot `.0`'s wait before its next attempt is over.
    Slept(usize),
}

/// One attempt of a branch: `branch` (the generated future, which is `Send` however the
/// state is shared) under the node's timeout, in its span. Takes no reference to the state
/// itself, so the scheduler's future is `Send` without `State: Sync` in its bounds.
async fn branch_attempt<F: Future<Output = BranchResult>>(
    index: usize,
    spec: &'static NodeSpec,
    branch: F,
    span: tracing::Span,
    timed_run: bool,
) -> Ran {
    let started = timed_run.then(Instant::now);
    let outcome = timed(spec, branch).instrument(span).await;
    Ran::Attempt(index, outcome, started.map(|s| s.elapsed()))
}

/// The wait before the next attempt of slot `index`.
async fn branch_backoff(index: usize, delay: Duration) -> Ran {
    tokio::time::sleep(delay).await;
    Ran::Slept(index)
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The frontier of a region whose join a checkpoint names without one (saved by a
    /// release or graph that had no frontier there): a static fan-out starts over; a map
    /// cannot, its items are gone.
    fn reopen(&self, at: &Position<W>, region: &'static Region<Cursor<W>>) -> Result<Frontier> {
        match region.kind {
            RegionKind::FanOut { branches, .. } => Ok(Frontier::fan_out::<W>(at.seq, branches)),
            RegionKind::Map { .. } => Err(Error::Corrupt {
                session: at.session.id().to_string(),
                seq: at.seq,
                reason: format!(
                    "the session stands at the join of a map, `{}`, without its items",
                    W::Exec::spec(region.join).name
                ),
            }),
        }
    }

    /// Runs the branches of the region in `at.frontier` that have not finished, concurrently
    /// on this task, until each has an output (or a collected failure) or waits for input.
    /// Returns the first waiting node (declaration order) when some wait, after saving a
    /// waiting checkpoint; `None` when the join can run.
    ///
    /// What is saved, per policy: under `EveryStep` and `Adaptive` (and for a branch marked
    /// `#[node(checkpoint = always)]`), each finished branch's output or collected failure is
    /// saved as a branch record of its own. The record is appended while the branches already
    /// running go on (they are polled during the append, so a slow fsync does not stall them);
    /// branches that finish meanwhile queue for their records, one after the other (one per
    /// branch, whatever the timing, so later sequence numbers and idempotency keys are the
    /// same in every run). A branch not yet started (a map at its concurrency limit) starts
    /// once the records before it are durable, and every record is durable before the join
    /// runs or the region waits. Under
    /// `EveryN` and `OnInterrupt` (and for `checkpoint = never`), outputs are saved only with
    /// the next checkpoint: when the region waits, when a branch fails (if the region is
    /// saved) or with the join's step. A branch that fails after its retries in a join that
    /// does not collect failures ends the run with [`Error::Node`]: the other branches'
    /// futures are dropped (cancelled at their next `.await`).
    async fn run_region(
        &self,
        at: &mut Position<W>,
        region: &'static Region<Cursor<W>>,
        control: &Control,
    ) -> Result<Option<&'static str>> {
        let workflow = &self.shared.workflow;
        let join = at.cursor;
        let Position {
            session,
            seq,
            state,
            frontier,
            ..
        } = at;
        let Some(Frontier {
            opened,
            items,
            item_schema,
            slots,
            saved,
        }) = frontier.as_mut()
        else {
            return Ok(None);
        };
        let opened = *opened;
        let store = &self.shared.store;
        let mut unsaved: Vec<u32> = Vec::new();
        let count = slots.len();
        let (limit, is_map) = match region.kind {
            RegionKind::Map { concurrency, .. } if concurrency > 0 => (concurrency as usize, true),
            RegionKind::Map { .. } => (usize::MAX, true),
            RegionKind::FanOut { .. } => (usize::MAX, false),
        };
        let collects = |index: usize| match region.kind {
            RegionKind::FanOut { collect, .. } => collect.get(index).copied().unwrap_or(false),
            RegionKind::Map { collect, .. } => collect,
        };
        let mut specs: Vec<&'static NodeSpec> = Vec::with_capacity(count);
        let mut runnable: Vec<usize> = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            let Some(branch) = branch_of(region, index) else {
                return Err(Error::Corrupt {
                    session: session.id().to_string(),
                    seq: *seq,
                    reason: format!("the frontier has no branch {index}"),
                });
            };
            let spec = W::Exec::spec(branch);
            specs.push(spec);
            match slot {
                // An interrupt branch without its input waits: nothing to run.
                Slot::Pending if spec.interrupt => {
                    *slot = Slot::Waiting;
                    unsaved.push(index as u32);
                }
                Slot::Pending | Slot::Input(_) => runnable.push(index),
                Slot::Waiting | Slot::Done(_) | Slot::Failed(_) => {}
            }
        }
        let record_each = |spec: &NodeSpec| match spec.checkpoint {
            NodeCheckpoint::Always => true,
            NodeCheckpoint::Never => false,
            _ => matches!(
                self.config.policy,
                CheckpointPolicy::EveryStep | CheckpointPolicy::Adaptive { .. }
            ),
        };
        // One context per slot, made before any branch starts: the branches' futures borrow
        // them, and the attempt counter is the only thing that changes.
        let ctxs: Vec<NodeCtx> = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                NodeCtx::branch(
                    Arc::clone(session.id()),
                    control.events.clone(),
                    spec.name,
                    opened,
                    is_map.then_some(index),
                )
            })
            .collect();
        let mut series: Vec<AttemptSeries> = specs
            .iter()
            .enumerate()
            .map(|(index, &spec)| AttemptSeries::branch(spec, is_map.then_some(index)))
            .collect();
        let timed_run = control.events.is_some();
        let id: Arc<str> = Arc::clone(session.id());
        // The branch record being appended, if any (its sequence number and size), and the
        // append itself: it borrows only the store and the id, so the branches are polled
        // while it runs. `queued`: finished slots waiting for a record of their own, in the
        // order they finished (each is in `unsaved` too).
        let mut appending = std::pin::pin!(Fuse::terminated());
        let memory = as_memory(store);
        let mut in_append: Option<(u64, usize)> = None;
        let mut queued: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
        // Encodes the next record and starts appending it: the first queued slot, with every
        // unsaved change that has no record of its own (a slot that waits, or one finished
        // under a policy that records nothing). A macro for the same reason as `start!`.
        macro_rules! start_record {
            () => {{
                queued.pop_front();
                let now: Vec<u32> = unsaved
                    .iter()
                    .copied()
                    .filter(|i| !queued.contains(i))
                    .collect();
                unsaved.retain(|i| queued.contains(i));
                let changes = changes_of(&now, slots);
                let status = region_status::<W>(Status::Running, join, slots);
                let record_seq = session.stored_seq() + 1;
                let record = session.encode_record::<W>(
                    record_seq,
                    W::Exec::spec(join).name,
                    status,
                    &changes,
                )?;
                if let Some(memory) = memory {
                    // It never waits: appended on the spot, nothing in flight.
                    session.append_in_memory(memory, record, control)?;
                    *seq = record_seq;
                } else {
                    in_append = Some((record_seq, record.bytes.len()));
                    let append = session.prepare(record);
                    appending.set(session::send(store, &id, append).fuse());
                }
            }};
        }
        // Waits for the append in flight, if any, and takes its result.
        macro_rules! finish_append {
            ($result:expr) => {{
                if let Some((record_seq, bytes)) = in_append.take() {
                    let result = $result;
                    session.finish(record_seq, bytes, result, control)?;
                    *seq = record_seq;
                }
            }};
        }
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        let mut in_flight = 0;
        // Starts slot `$index`'s next attempt. A macro, not a closure: a closure holding
        // `&State` would make this future need `State: Sync`.
        macro_rules! start {
            ($index:expr) => {{
                let index: usize = $index;
                let spec = specs[index];
                let ctx = &ctxs[index];
                ctx.set_attempt(series[index].attempt());
                let span = series[index].start(control, opened);
                let input = match &slots[index] {
                    Slot::Input(input) => Some(decode_input::<W>(&id, *seq, &input.bytes)?),
                    _ => None,
                };
                let item_bytes = items
                    .as_ref()
                    .and_then(|items| items.get(index))
                    .map(|i| &i[..]);
                let cursor = branch_of(region, index).unwrap_or(join);
                let branch = W::Exec::branch(workflow, cursor, &*state, ctx, item_bytes, input);
                running.push(Either::Left(branch_attempt(
                    index, spec, branch, span, timed_run,
                )));
            }};
        }
        // Starts slots that have not run yet, up to the concurrency limit.
        macro_rules! start_more {
            () => {{
                while next < runnable.len() && in_flight < limit {
                    start!(runnable[next]);
                    next += 1;
                    in_flight += 1;
                }
            }};
        }
        start_more!();
        loop {
            // The append in flight first (biased), so its record is taken as soon as it is
            // durable; a branch that finishes meanwhile is handled the same way either way.
            let event = if running.is_empty() {
                // Nothing runs: what is left is the append (and what it holds back).
                if in_append.is_none() {
                    break;
                }
                Either::Left(cancellable(control, &id, appending.as_mut()).await?)
            } else {
                cancellable(control, &id, async {
                    tokio::select! {
                        biased;
                        result = appending.as_mut(), if in_append.is_some() => Either::Left(result),
                        ran = running.next() => Either::Right(ran),
                    }
                })
                .await?
            };
            let ran = match event {
                Either::Left(result) => {
                    finish_append!(result);
                    if queued.is_empty() {
                        // Every finished branch is saved: the next ones may start.
                        start_more!();
                    } else {
                        start_record!();
                    }
                    continue;
                }
                Either::Right(None) => break,
                Either::Right(Some(ran)) => ran,
            };
            let (index, outcome) = match ran {
                Ran::Slept(index) => {
                    start!(index);
                    continue;
                }
                Ran::Attempt(index, outcome, duration) => {
                    if let Some(duration) = duration {
                        control.emit(|| Event::BranchFinished {
                            node: specs[index].name,
                            item: ctxs[index].item_index(),
                            seq: opened,
                            duration,
                        });
                    }
                    (index, outcome)
                }
            };
            let spec = specs[index];
            let (error, permanent) = match outcome {
                Attempt::Done(BranchResult::Output(bytes)) => {
                    let node = branch_of(region, index).unwrap_or(join);
                    slots[index] = Slot::Done(Saved::new(W::Exec::output_schema(node), bytes));
                    None
                }
                Attempt::Done(BranchResult::MissingInput) => {
                    slots[index] = Slot::Waiting;
                    None
                }
                Attempt::Done(BranchResult::Failed(e)) => Some((e, false)),
                Attempt::Done(BranchResult::FailedPermanently(e)) => Some((e, true)),
                Attempt::TimedOut(after) => Some((timed_out(spec, after), false)),
            }
            .map_or((None, false), |(e, p)| (Some(e), p));
            if let Some(error) = error {
                let error = match series[index].failed(error, permanent, control) {
                    AfterFailure::Retry(delay) => {
                        running.push(Either::Right(branch_backoff(index, delay)));
                        continue;
                    }
                    AfterFailure::GiveUp(error) => error,
                };
                if !collects(index) {
                    // Fail fast: the siblings' futures are dropped with `running`. What
                    // finished is kept if the region is saved, so `resume` re-runs only
                    // the branches without an output.
                    drop(running);
                    finish_append!(appending.as_mut().await);
                    while !queued.is_empty() {
                        start_record!();
                        finish_append!(appending.as_mut().await);
                    }
                    if *saved && !unsaved.is_empty() {
                        start_record!();
                        finish_append!(appending.as_mut().await);
                    }
                    let source = match ctxs[index].item_index() {
                        Some(item) => Box::new(ItemFailed {
                            item,
                            source: error,
                        }),
                        None => error,
                    };
                    return Err(Error::Node {
                        node: spec.name,
                        source,
                    });
                }
                slots[index] = Slot::Failed(Failure::new(spec.name, report(&*error)));
            }
            // The slot finished (an output or a collected failure) or waits.
            in_flight -= 1;
            unsaved.push(index as u32);
            if *saved && !matches!(slots[index], Slot::Waiting) && record_each(spec) {
                queued.push_back(index as u32);
                if in_append.is_none() {
                    start_record!();
                }
            }
            // A branch starts only once the records before it are durable (the siblings
            // already running go on meanwhile), as the run goes on only once they are.
            if in_append.is_none() {
                start_more!();
            }
        }
        drop(running);
        // Every record is durable before the join runs or the region waits.
        finish_append!(appending.as_mut().await);
        while !queued.is_empty() {
            start_record!();
            finish_append!(appending.as_mut().await);
        }
        let waiting = waiting_nodes::<W>(join, slots);
        let Some(&first) = waiting.first() else {
            return Ok(None);
        };
        // Nothing else can run: save the waiting region, as a record when the store holds it.
        let status = region_status::<W>(waiting_at(""), join, slots);
        let record_seq = if *seq == session.stored_seq() {
            *seq + 1
        } else {
            *seq
        };
        let checkpoint = if *saved && session.has_region() {
            let changes = changes_of(&unsaved, slots);
            session.encode_record::<W>(record_seq, W::Exec::spec(join).name, status, &changes)?
        } else {
            let frontier = FrontierRef {
                opened,
                items: items.as_deref().map(|items| (*item_schema, items)),
                slots,
            };
            session.encode::<W>(
                record_seq,
                status,
                Cow::Borrowed(W::Exec::spec(join).name),
                &*state,
                None,
                None,
                Some(frontier),
            )?
        };
        session.append(store, checkpoint, control).await?;
        *seq = record_seq;
        *saved = true;
        Ok(Some(first))
    }
}

/// The slots `indices` (deduplicated, in order) as a record lists them.
fn changes_of<'a>(indices: &[u32], slots: &'a [Slot]) -> Vec<(u32, &'a Slot)> {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
        .into_iter()
        .filter_map(|i| slots.get(i as usize).map(|slot| (i, slot)))
        .collect()
}

/// A recorded input, decoded.
fn decode_input<W: Workflow>(session: &str, seq: u64, bytes: &[u8]) -> Result<W::Input> {
    crate::execute::decode::<W::Input>(bytes).map_err(|e| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason: format!("a recorded branch input does not decode: {e}"),
    })
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The step loop: runs nodes from `position` until the session completes, waits, or fails.
    ///
    /// The position comes boxed: an async fn keeps its arguments beside its locals, so each
    /// level of the loop would otherwise hold its own copy of it in every session's future.
    pub(super) async fn drive(
        &self,
        at: Box<Position<W>>,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        let span = tracing::info_span!(
            "workflow_run",
            workflow = W::NAME,
            session = %at.session.id(),
            from_seq = at.seq
        );
        let result = self.drive_inner(at, &control).instrument(span).await;
        match &result {
            Ok(Outcome::Completed(_)) => control.emit(|| Event::Completed),
            Ok(Outcome::Interrupted { node, .. }) => control.emit(|| Event::Interrupted { node }),
            Err(e) => control.emit(|| Event::Failed { error: report(e) }),
        }
        result
    }

    async fn drive_inner(
        &self,
        mut at: Box<Position<W>>,
        control: &Control,
    ) -> Result<Outcome<W::State>> {
        let config = &self.config;
        let workflow = &self.shared.workflow;
        // Nothing to observe, cancel or trace: the loop runs each node future directly.
        let plain = control.events.is_none() && control.cancel.is_none() && !control.spans;
        let mut ctx = NodeCtx::new(Arc::clone(at.session.id()), control.events.clone());
        let mut steps: u64 = 0;
        loop {
            let cursor = at.cursor;
            let spec = W::Exec::spec(cursor);
            if spec.interrupt
                && at.input.is_none()
                && !(at.deadline_passed && spec.wait_ms.is_some())
            {
                // Only reachable when a session was resumed at an interrupt node that had not
                // been marked waiting (a forked or force-resumed checkpoint): mark it now.
                self.wait_here(&mut at, spec.name, control).await?;
                return Ok(Outcome::Interrupted {
                    node: spec.name,
                    state: at.state,
                });
            }
            if steps >= config.max_steps {
                return Err(Error::StepLimit {
                    session: at.session.id().to_string(),
                    limit: config.max_steps,
                });
            }
            if control.is_cancelled() {
                return Err(Error::Cancelled(at.session.id().to_string()));
            }
            // The join of a parallel region runs once its branches have finished; graphs
            // without regions skip this entirely (`PARALLEL` is a constant).
            let mut joined: Option<Frontier> = None;
            if W::Exec::PARALLEL
                && let Some(region) = W::Exec::region(cursor)
            {
                if at.frontier.is_none() {
                    at.frontier = Some(self.reopen(&at, region)?);
                }
                // Boxed: a region's scheduler is large, and every session's step loop would
                // carry its size otherwise (10,000 waiting sessions pay for it in memory).
                if let Some(waiting) = Box::pin(self.run_region(&mut at, region, control)).await? {
                    return Ok(Outcome::Interrupted {
                        node: waiting,
                        state: at.state,
                    });
                }
                joined = at.frontier.take();
            }
            steps += 1;
            let seq = at.seq + 1;
            ctx.enter(spec.name, seq);
            if let Some(failure) = at.failure.take() {
                ctx.set_failure(failure);
            }
            let mut spec = spec;
            let mut seq = seq;
            let mut error_route = W::Exec::error_route(cursor);
            let guarded = spec.retry > 0 || spec.timeout_ms.is_some() || error_route.is_some();
            // Only the adaptive policy reads the clock.
            let started =
                matches!(config.policy, CheckpointPolicy::Adaptive { .. }).then(Instant::now);
            let transition = if plain && !guarded && joined.is_none() {
                // `None`: nothing to drop (and no call to the drop glue on the fast path).
                std::mem::forget(joined);
                // Nodes that need nothing but a call run back to back until a checkpoint is
                // due or the step limit is near.
                let due_in = match config.policy {
                    // A node saved after whatever the policy (which never runs freely, so it
                    // can only be the first node of a run) ends its run.
                    _ if spec.checkpoint == NodeCheckpoint::Always => 1,
                    CheckpointPolicy::EveryStep | CheckpointPolicy::Adaptive { .. } => 1,
                    CheckpointPolicy::OnInterrupt => u64::MAX,
                    CheckpointPolicy::EveryN(n) => {
                        n.saturating_sub(at.seq - at.session.stored_seq()).max(1)
                    }
                };
                let budget = due_in.min(config.max_steps - (steps - 1));
                let input = at.input.take();
                let run =
                    W::Exec::run(workflow, cursor, &mut at.state, &mut ctx, input, budget).await;
                steps += run.steps - 1;
                seq += run.steps - 1;
                if run.steps > 1 {
                    spec = W::Exec::spec(run.last);
                    error_route = None;
                }
                run.transition
            } else {
                let joined = joined;
                let join = joined.as_ref().map(|f| &f.slots[..]);
                // Boxed for the same reason: retries, timeouts and cancellation make a large
                // future that the plain loop never needs.
                Box::pin(self.run_node(
                    spec,
                    error_route.is_some(),
                    &mut at,
                    join,
                    &mut ctx,
                    control,
                ))
                .await?
            };
            ctx.clear_failure();
            at.deadline_passed = false;
            at.seq = seq;
            if let Some(started) = started {
                at.unsaved += started.elapsed();
            }
            let next = match transition {
                Transition::Next(next) => {
                    if W::Exec::PARALLEL
                        && let Some(region) = W::Exec::region(next)
                        && let RegionKind::FanOut { branches, .. } = region.kind
                    {
                        at.frontier = Some(Frontier::fan_out::<W>(seq, branches));
                    }
                    next
                }
                Transition::Map { join, items } => match W::Exec::region(join) {
                    Some(Region {
                        kind: RegionKind::Map { node, .. },
                        ..
                    }) => {
                        let item_schema = W::Exec::item_schema(*node);
                        at.frontier = Some(Frontier::map(seq, item_schema, items));
                        join
                    }
                    _ => {
                        return Err(Error::Node {
                            node: spec.name,
                            source: format!(
                                "returned map items for `{}`, which is not the join of a map",
                                W::Exec::spec(join).name
                            )
                            .into(),
                        });
                    }
                },
                Transition::End => {
                    self.save(&mut at, seq, Status::Completed, END, false, control)
                        .await?;
                    return Ok(Outcome::Completed(at.state));
                }
                Transition::Failed(source) | Transition::FailedPermanently(source) => {
                    let Some(route) = error_route else {
                        return Err(Error::Node {
                            node: spec.name,
                            source,
                        });
                    };
                    // `run_node` restored the state from before the failed attempt.
                    tracing::debug!(node = spec.name, error = %report(&*source), "taking the error edge");
                    at.failure = Some(Failure::new(spec.name, report(&*source)));
                    route
                }
                Transition::MissingInput => {
                    return Err(Error::NotWaiting {
                        session: at.session.id().to_string(),
                        node: spec.name,
                        actual: "the interrupt node ran without its input".to_owned(),
                    });
                }
            };
            at.cursor = next;
            let next_spec = W::Exec::spec(next);
            if next_spec.interrupt {
                self.wait_here(&mut at, next_spec.name, control).await?;
                return Ok(Outcome::Interrupted {
                    node: next_spec.name,
                    state: at.state,
                });
            }
            let due = match spec.checkpoint {
                NodeCheckpoint::Always => true,
                NodeCheckpoint::Never => false,
                _ => match config.policy {
                    CheckpointPolicy::EveryStep => true,
                    CheckpointPolicy::OnInterrupt => false,
                    CheckpointPolicy::EveryN(n) => seq - at.session.stored_seq() >= n,
                    CheckpointPolicy::Adaptive { budget } => {
                        spec.interrupt
                            || spec.retry > 0
                            || spec.timeout_ms.is_some()
                            || error_route.is_some()
                            || at.unsaved >= budget
                    }
                },
            };
            // A pending failure must be durable before its error node runs, or a crash would
            // make the error node run without it.
            if due || at.failure.is_some() {
                // `MemoryStore`, synchronously: see `save`.
                if let Some(memory) = as_memory(&self.shared.store) {
                    self.save_in_memory(
                        memory,
                        &mut at,
                        seq,
                        Status::Running,
                        next_spec.name,
                        true,
                        control,
                    )?;
                } else {
                    self.save(&mut at, seq, Status::Running, next_spec.name, true, control)
                        .await?;
                }
                at.unsaved = Duration::ZERO;
            }
        }
    }
    /// Saves a `Waiting` checkpoint at `node`. (The caller returns `Interrupted`: taking the
    /// position by reference keeps a second copy of it out of the step loop's future.)
    async fn wait_here(
        &self,
        at: &mut Position<W>,
        node: &'static str,
        control: &Control,
    ) -> Result<()> {
        // A new sequence number unless the state in hand is not stored yet under its own.
        if at.seq == at.session.stored_seq() {
            at.seq += 1;
        }
        let seq = at.seq;
        self.save(at, seq, waiting_at(node), node, true, control)
            .await
    }

    /// Saves the state in hand as checkpoint `seq` at `node` (with the pending failure when
    /// `with_failure`).
    pub(super) async fn save(
        &self,
        at: &mut Position<W>,
        seq: u64,
        status: Status,
        node: &'static str,
        with_failure: bool,
        control: &Control,
    ) -> Result<()> {
        // `MemoryStore` never waits: its append is made synchronously, without building the
        // futures of this call's awaits (a constant test once `S` is known).
        if let Some(memory) = as_memory(&self.shared.store) {
            return self.save_in_memory(memory, at, seq, status, node, with_failure, control);
        }
        let checkpoint = self.checkpoint(at, seq, status, node, with_failure)?;
        at.session
            .append(&self.shared.store, checkpoint, control)
            .await
    }

    /// [`Runner::save`] to a `MemoryStore`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn save_in_memory(
        &self,
        memory: &MemoryStore,
        at: &mut Position<W>,
        seq: u64,
        status: Status,
        node: &'static str,
        with_failure: bool,
        control: &Control,
    ) -> Result<()> {
        let checkpoint = self.checkpoint(at, seq, status, node, with_failure)?;
        at.session.append_in_memory(memory, checkpoint, control)
    }

    /// Encodes checkpoint `seq` of the position, at `node` (see [`Runner::save`]).
    #[inline(always)]
    fn checkpoint(
        &self,
        at: &mut Position<W>,
        seq: u64,
        status: Status,
        node: &'static str,
        with_failure: bool,
    ) -> Result<Checkpoint> {
        let failure = if with_failure {
            at.failure.as_ref()
        } else {
            None
        };
        let (status, frontier) = match &at.frontier {
            None => (status, None),
            Some(frontier) => (
                region_status::<W>(status, at.cursor, &frontier.slots),
                Some(frontier.as_ref()),
            ),
        };
        let checkpoint = at.session.encode::<W>(
            seq,
            status,
            Cow::Borrowed(node),
            &at.state,
            None,
            failure,
            frontier,
        )?;
        if let Some(frontier) = &mut at.frontier {
            frontier.saved = true;
        }
        Ok(checkpoint)
    }
}
