//! A parallel region run: the branches of a fan-out or a map, run concurrently on the run's
//! own task until each has an output (or a collected failure) or waits for input, with each
//! finished branch's record saved while the others go on.
//!
//! Two types share the work. [`Branches`] makes attempts (up to a map's concurrency limit),
//! which the loop polls together; [`Records`] turns finished slots into branch records, one
//! append in flight at a time, in the order the slots finished. [`Runner::run_region`] is the
//! loop between them: it polls the append in flight first, then the branches, and decides
//! what each result leads to.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt as _;
use futures_util::future::Either;
use futures_util::stream::FuturesUnordered;
use tracing::Instrument as _;

use super::attempt::{
    AfterFailure, Attempt, AttemptSeries, ItemFailed, cancellable, timed, timed_out,
};
use super::deadline;
use super::position::{Frontier, Position, mark_waits};
use super::scheduler::{branch_of, region_status, waiting_at, waiting_nodes};
use super::session::{self, SessionWriter, as_memory};
use super::{CheckpointPolicy, Control, Cursor, Runner};
use crate::checkpoint::{Failure, FrontierRef, Saved};
use crate::error::report;
use crate::events::{BranchOutcome, Event};
use crate::execute::{BranchResult, Execute, Region, RegionKind, Slot};
use crate::store::{MemoryStore, Status, Store, Wake};
use crate::workflow::NodeCheckpoint;
use crate::{Error, NodeCtx, NodeSpec, Result, Workflow};

/// What finished in the set of running branches.
enum Ran {
    /// An attempt of slot `.0` returned, after `.2` if the run is observed.
    Attempt(usize, Attempt<BranchResult>, Option<Duration>),
    /// Slot `.0`'s wait before its next attempt is over.
    Slept(usize),
}

/// One attempt of a branch: `branch` (the generated future, which is `Send` however the
/// state is shared) under the node's timeout, in its span. Takes no reference to the state
/// itself, so the region's future is `Send` without `State: Sync` in its bounds.
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

/// The branches of a region: which slots still have to run, how many run now, and each
/// slot's attempt series. The running attempts themselves are held by the region's loop, in
/// one `FuturesUnordered` of the (unnamed) future type [`Branches::start`] returns: no box
/// per attempt.
struct Branches<'a, W: Workflow> {
    workflow: &'a W,
    region: &'static Region<Cursor<W>>,
    /// The sequence number of the step that opened the region (what branch contexts carry).
    opened: u64,
    specs: &'a [&'static NodeSpec],
    /// One context per slot, made before any branch starts: the branches' futures borrow
    /// them, and the attempt counter is the only thing that changes.
    ctxs: &'a [NodeCtx],
    series: Vec<AttemptSeries>,
    /// A map's encoded items.
    items: Option<&'a [Vec<u8>]>,
    /// The slots that have not run yet, and how many of them have started.
    runnable: Vec<usize>,
    next: usize,
    /// Slots started and not finished (their attempts or backoffs are in `running`).
    in_flight: usize,
    /// At most this many slots at once (`#[node(concurrency = N)]`).
    limit: usize,
    /// Whether attempts are timed for events.
    timed_run: bool,
}

impl<'a, W: Workflow> Branches<'a, W> {
    /// Slot `index`'s next attempt on `state`, to be polled with the others. The state comes
    /// with each call rather than being held here: a held `&State` would make the region's
    /// future need `State: Sync`.
    fn start(
        &self,
        index: usize,
        state: &'a W::State,
        slots: &[Slot],
        (session, seq): (&str, u64),
        control: &Control,
    ) -> Result<impl Future<Output = Ran> + Send + use<'a, W>> {
        let (spec, ctx) = (self.specs[index], &self.ctxs[index]);
        let series = &self.series[index];
        ctx.set_attempt(series.attempt());
        let span = series.start(control, self.opened);
        let input = match &slots[index] {
            Slot::Input(input) => Some(decode_input::<W>(session, seq, &input.bytes)?),
            _ => None,
        };
        let item = self
            .items
            .and_then(|items| items.get(index))
            .map(|i| &i[..]);
        let cursor = branch_of(self.region, index).unwrap_or(self.region.join);
        let branch = W::Exec::branch(self.workflow, cursor, state, ctx, item, input);
        Ok(branch_attempt(index, spec, branch, span, self.timed_run))
    }

    /// The next slot that has not run yet, if the concurrency limit lets it start now.
    fn next_to_start(&mut self) -> Option<usize> {
        if self.next < self.runnable.len() && self.in_flight < self.limit {
            let index = self.runnable[self.next];
            self.next += 1;
            self.in_flight += 1;
            Some(index)
        } else {
            None
        }
    }
}

/// The branch records of a region: the slots changed since the last record, those waiting
/// for a record of their own (in the order they finished), and the append in flight. It
/// borrows only the store and its own copy of the session id, so the branches are polled
/// while an append runs.
struct Records<'a, S: Store> {
    store: &'a S,
    /// `Some` when the store is a `MemoryStore`: its appends are made on the spot.
    memory: Option<&'a MemoryStore>,
    id: Arc<str>,
    /// Changed slots that no record or checkpoint holds yet.
    unsaved: Vec<u32>,
    /// Finished slots waiting for a record of their own (each is in `unsaved` too).
    queued: VecDeque<u32>,
    /// The record being appended (its sequence number and size), and the append.
    in_append: Option<(u64, usize)>,
    appending: Option<Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>>,
}

impl<'a, S: Store> Records<'a, S> {
    /// Whether an append is in flight.
    fn busy(&self) -> bool {
        self.in_append.is_some()
    }

    /// Encodes the next record and starts appending it: the first queued slot, with every
    /// unsaved change that has no record of its own (a slot that waits, or one finished
    /// under a policy that records nothing).
    fn start<W: Workflow>(
        &mut self,
        writer: &mut SessionWriter,
        seq: &mut u64,
        join: Cursor<W>,
        (slots, waits_since): (&[Slot], &mut [Option<SystemTime>]),
        control: &Control,
    ) -> Result<()> {
        self.queued.pop_front();
        let queued = &self.queued;
        let now: Vec<u32> = self
            .unsaved
            .iter()
            .copied()
            .filter(|i| !queued.contains(i))
            .collect();
        self.unsaved.retain(|i| queued.contains(i));
        let changes = changes_of(&now, slots);
        let status = region_status::<W>(Status::Running, join, slots);
        let record_seq = writer.stored_seq() + 1;
        let mut record =
            writer.encode_record::<W>(record_seq, W::Exec::spec(join).name, status, &changes)?;
        if deadline::has_deadlines::<W>(join) {
            deadline::stamp(&mut record);
        }
        mark_waits(slots, waits_since, record.created_at, Some(&now));
        if let Some(memory) = self.memory {
            // It never waits: appended on the spot, nothing in flight.
            writer.append_in_memory(memory, record, control)?;
            *seq = record_seq;
        } else {
            self.in_append = Some((record_seq, record.bytes.len()));
            let append = writer.prepare(record);
            let (store, id) = (self.store, Arc::clone(&self.id));
            self.appending = Some(Box::pin(
                async move { session::send(store, &id, append).await },
            ));
        }
        Ok(())
    }

    /// The append in flight, to poll (completes at once when there is none).
    async fn wait(&mut self) -> Result<()> {
        match &mut self.appending {
            Some(append) => append.await,
            None => Ok(()),
        }
    }

    /// Takes the result of the append in flight, if any.
    fn finish(
        &mut self,
        writer: &mut SessionWriter,
        seq: &mut u64,
        result: Result<()>,
        control: &Control,
    ) -> Result<()> {
        self.appending = None;
        if let Some((record_seq, bytes)) = self.in_append.take() {
            writer.finish(record_seq, bytes, result, control)?;
            *seq = record_seq;
        }
        Ok(())
    }

    /// Makes every record so far durable: the append in flight, then one per queued slot.
    async fn drain<W: Workflow>(
        &mut self,
        writer: &mut SessionWriter,
        seq: &mut u64,
        join: Cursor<W>,
        (slots, waits_since): (&[Slot], &mut [Option<SystemTime>]),
        control: &Control,
    ) -> Result<()> {
        let result = self.wait().await;
        self.finish(writer, seq, result, control)?;
        while !self.queued.is_empty() {
            self.start::<W>(writer, seq, join, (slots, &mut *waits_since), control)?;
            let result = self.wait().await;
            self.finish(writer, seq, result, control)?;
        }
        Ok(())
    }
}

/// Reports a region whose frontier this run just made: [`Event::RegionOpened`], then
/// [`Event::BranchSettled`] as waiting for each interrupt branch, which waits from the start
/// (the region's loop reports the slots it settles itself). Nothing is built without a
/// listener.
pub(super) fn announce<W: Workflow>(
    region: &Region<Cursor<W>>,
    frontier: &Frontier,
    control: &Control,
) {
    if control.events.is_none() {
        return;
    }
    let (branches, items) = match region.kind {
        RegionKind::FanOut { branches, .. } => (
            branches.iter().map(|&b| W::Exec::spec(b).name).collect(),
            None,
        ),
        RegionKind::Map { node, .. } => {
            (vec![W::Exec::spec(node).name], Some(frontier.slots.len()))
        }
    };
    let seq = frontier.opened;
    control.emit(|| Event::RegionOpened {
        join: W::Exec::spec(region.join).name,
        seq,
        branches,
        items,
    });
    for (index, slot) in frontier.slots.iter().enumerate() {
        if matches!(slot, Slot::Waiting)
            && let Some(branch) = branch_of(region, index)
        {
            control.emit(|| Event::BranchSettled {
                node: W::Exec::spec(branch).name,
                item: items.map(|_| index),
                seq,
                attempts: 0,
                outcome: BranchOutcome::Waiting,
            });
        }
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The frontier of a region whose join a checkpoint names without one (saved by a
    /// release or graph that had no frontier there): a static fan-out starts over; a map
    /// cannot, its items are gone.
    pub(super) fn reopen(
        &self,
        at: &Position<W>,
        region: &'static Region<Cursor<W>>,
    ) -> Result<Frontier> {
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
    /// runs or the region waits. Under `EveryN` and `OnInterrupt` (and for
    /// `checkpoint = never`), outputs are saved only with the next checkpoint: when the
    /// region waits, when a branch fails (if the region is saved) or with the join's step. A
    /// branch that fails after its retries in a join that does not collect failures ends the
    /// run with [`Error::Node`]: the other branches' futures are dropped (cancelled at their
    /// next `.await`).
    pub(super) async fn run_region(
        &self,
        at: &mut Position<W>,
        region: &'static Region<Cursor<W>>,
        control: &Control,
    ) -> Result<Option<&'static str>> {
        let join = at.cursor;
        // The stored checkpoint waits for children of this region: if they all still wait,
        // it needs no new one.
        let stored_wait = std::mem::take(&mut at.child_wait).then(|| at.session.stored_seq());
        let Position {
            session: writer,
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
            waits_since,
            saved,
            ..
        }) = frontier.as_mut()
        else {
            return Ok(None);
        };
        let opened = *opened;
        let store = &self.shared.store;
        let id: Arc<str> = Arc::clone(writer.id());
        let (limit, is_map) = match region.kind {
            RegionKind::Map { concurrency, .. } if concurrency > 0 => (concurrency as usize, true),
            RegionKind::Map { .. } => (usize::MAX, true),
            RegionKind::FanOut { .. } => (usize::MAX, false),
        };
        let collects = |index: usize| match region.kind {
            RegionKind::FanOut { collect, .. } => collect.get(index).copied().unwrap_or(false),
            RegionKind::Map { collect, .. } => collect,
        };
        let record_each = |spec: &NodeSpec| match spec.checkpoint {
            NodeCheckpoint::Always => true,
            NodeCheckpoint::Never => false,
            _ => matches!(
                self.config.policy,
                CheckpointPolicy::EveryStep | CheckpointPolicy::Adaptive { .. }
            ),
        };
        let mut records = Records {
            store,
            memory: as_memory(store),
            id: Arc::clone(&id),
            unsaved: Vec::new(),
            queued: VecDeque::new(),
            in_append: None,
            appending: None,
        };
        // The children of waiting map items: their statuses come from one range of the
        // session index (not a read per child), and only the items whose child has moved on
        // run again.
        let spread = control.writes.fence.is_some();
        let children = if W::Exec::SUBGRAPHS
            && is_map
            && slots.iter().any(|slot| matches!(slot, Slot::Waiting))
        {
            let node = W::Exec::spec(branch_of(region, 0).unwrap_or(join)).name;
            Some((
                node,
                self.map_children(&id, node, opened, slots.len()).await?,
            ))
        } else {
            None
        };
        let mut paths: Vec<Option<&'static str>> = vec![None; slots.len()];
        // The map items whose child runs on a worker.
        let mut elsewhere: Vec<usize> = Vec::new();
        // The map items run again only to take the result of a child that ended elsewhere.
        let mut collects_child: Vec<bool> = vec![false; slots.len()];
        let mut specs: Vec<&'static NodeSpec> = Vec::with_capacity(slots.len());
        let mut runnable: Vec<usize> = Vec::new();
        // Interrupt branches found pending, which wait from now on.
        let mut now_waiting: Vec<usize> = Vec::new();
        for (index, slot) in slots.iter_mut().enumerate() {
            let Some(branch) = branch_of(region, index) else {
                return Err(Error::Corrupt {
                    session: id.to_string(),
                    seq: *seq,
                    reason: format!("the frontier has no branch {index}"),
                });
            };
            let spec = W::Exec::spec(branch);
            specs.push(spec);
            match slot {
                // An interrupt branch without its input waits: nothing to run. (One with
                // `wait_ms` is pending only once its wait is over: it runs without its input.)
                Slot::Pending if spec.interrupt && spec.wait_ms.is_none() => {
                    *slot = Slot::Waiting;
                    records.unsaved.push(index as u32);
                    now_waiting.push(index);
                }
                Slot::Pending | Slot::Input(_) => runnable.push(index),
                // A map item whose child waits (a branch that is not an interrupt node waits
                // only for its child) runs again: the child may have been answered, and a
                // child that still waits makes the item wait again.
                Slot::Waiting if !spec.interrupt => match children
                    .as_ref()
                    .and_then(|(node, statuses)| Some((*node, statuses.get(&index)?)))
                {
                    // Still running (or failing and retried) on a worker: it wakes the parent
                    // when it ends. (In process, the item runs on with its child.)
                    Some((_, Status::Running | Status::Failed)) if spread => {
                        elsewhere.push(index);
                    }
                    // Waiting for an input: so does the item.
                    Some((node, Status::Waiting { node: at })) => {
                        paths[index] = Some(super::child::wait_path(node, at));
                    }
                    // Ended: the item runs again to take its child's result, which needs no
                    // record of its own (a crash before the next one runs it again, and it
                    // reads the same child).
                    Some((_, Status::Completed | Status::Cancelled)) => {
                        collects_child[index] = true;
                        runnable.push(index);
                    }
                    _ => runnable.push(index),
                },
                Slot::Waiting | Slot::Done(_) | Slot::Failed(_) => {}
            }
        }
        // One host per slot: each says whether its own item's child waits.
        let ctxs: Vec<NodeCtx> = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let mut ctx = NodeCtx::branch(
                    Arc::clone(&id),
                    control.events.clone(),
                    spec.name,
                    opened,
                    is_map.then_some(index),
                );
                if W::Exec::SUBGRAPHS {
                    // Under a worker, a map item's child goes to any worker.
                    let spread = is_map && control.writes.fence.is_some();
                    ctx.set_child_host(self.child_host_spread(spread));
                }
                ctx
            })
            .collect();
        // How a slot settled, for a listener (the outcome is built only for one).
        let settled = |index: usize, attempts: u32, outcome: &dyn Fn() -> BranchOutcome| {
            control.emit(|| Event::BranchSettled {
                node: specs[index].name,
                item: is_map.then_some(index),
                seq: opened,
                attempts,
                outcome: outcome(),
            });
        };
        for index in now_waiting {
            settled(index, 0, &|| BranchOutcome::Waiting);
        }

        let mut branches = Branches {
            workflow: &self.shared.workflow,
            region,
            opened,
            specs: &specs,
            ctxs: &ctxs,
            series: specs
                .iter()
                .enumerate()
                .map(|(index, &spec)| AttemptSeries::branch(spec, is_map.then_some(index)))
                .collect(),
            items: items.as_deref(),
            runnable,
            next: 0,
            in_flight: 0,
            limit,
            timed_run: control.events.is_some(),
        };
        let mut running = FuturesUnordered::new();
        // Starts slots that have not run yet, up to the concurrency limit.
        while let Some(index) = branches.next_to_start() {
            let attempt = branches.start(index, &*state, slots, (&id, *seq), control)?;
            running.push(Either::Left(attempt));
        }
        loop {
            // The append in flight first (biased), so its record is taken as soon as it is
            // durable; a branch that finishes meanwhile is handled the same way either way.
            let event = if running.is_empty() {
                // Nothing runs: what is left is the append (and what it holds back).
                if !records.busy() {
                    break;
                }
                Either::Left(cancellable(control, &id, records.wait()).await?)
            } else {
                let busy = records.busy();
                cancellable(control, &id, async {
                    tokio::select! {
                        biased;
                        result = records.wait(), if busy => Either::Left(result),
                        ran = running.next() => Either::Right(ran),
                    }
                })
                .await?
            };
            let ran = match event {
                Either::Left(result) => {
                    records.finish(writer, seq, result, control)?;
                    if records.queued.is_empty() {
                        // Every finished branch is saved: the next ones may start.
                        while let Some(index) = branches.next_to_start() {
                            let attempt =
                                branches.start(index, &*state, slots, (&id, *seq), control)?;
                            running.push(Either::Left(attempt));
                        }
                    } else {
                        records.start::<W>(writer, seq, join, (slots, waits_since), control)?;
                    }
                    continue;
                }
                Either::Right(None) => break,
                Either::Right(Some(ran)) => ran,
            };
            let (index, outcome) = match ran {
                Ran::Slept(index) => {
                    let attempt = branches.start(index, &*state, slots, (&id, *seq), control)?;
                    running.push(Either::Left(attempt));
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
            let attempts = branches.series[index].attempt();
            let failed = match outcome {
                // A child that waits (or runs on a worker) is not a failure to retry: the item
                // waits, whatever its node made of the error.
                _ if W::Exec::SUBGRAPHS
                    && let Some(path) = child_stopped(&ctxs[index]) =>
                {
                    paths[index] = path;
                    if path.is_none() {
                        elsewhere.push(index);
                    }
                    let again = matches!(slots[index], Slot::Waiting);
                    slots[index] = Slot::Waiting;
                    settled(index, attempts, &|| BranchOutcome::Waiting);
                    if again {
                        // Its child still waits where it waited: nothing changed to record.
                        branches.in_flight -= 1;
                        if !records.busy() {
                            while let Some(index) = branches.next_to_start() {
                                let attempt =
                                    branches.start(index, &*state, slots, (&id, *seq), control)?;
                                running.push(Either::Left(attempt));
                            }
                        }
                        continue;
                    }
                    None
                }
                Attempt::Done(BranchResult::Output(bytes)) => {
                    let node = branch_of(region, index).unwrap_or(join);
                    slots[index] = Slot::Done(Saved::new(W::Exec::output_schema(node), bytes));
                    settled(index, attempts, &|| BranchOutcome::Succeeded);
                    None
                }
                Attempt::Done(BranchResult::MissingInput) => {
                    slots[index] = Slot::Waiting;
                    settled(index, attempts, &|| BranchOutcome::Waiting);
                    None
                }
                Attempt::Done(BranchResult::Failed(e)) => Some((e, false)),
                Attempt::Done(BranchResult::FailedPermanently(e)) => Some((e, true)),
                Attempt::TimedOut(after) => Some((timed_out(spec, after), false)),
            };
            if let Some((error, permanent)) = failed {
                let error = match branches.series[index].failed(error, permanent, control) {
                    AfterFailure::Retry(delay) => {
                        running.push(Either::Right(branch_backoff(index, delay)));
                        continue;
                    }
                    AfterFailure::GiveUp(error) => error,
                };
                if !collects(index) {
                    settled(index, attempts, &|| BranchOutcome::Failed {
                        error: report(&*error),
                    });
                    // Fail fast: the siblings' futures are dropped. What finished is kept if
                    // the region is saved, so `resume` re-runs only the branches without an
                    // output.
                    drop(branches);
                    records
                        .drain::<W>(writer, seq, join, (slots, waits_since), control)
                        .await?;
                    if *saved && !records.unsaved.is_empty() {
                        records.start::<W>(writer, seq, join, (slots, waits_since), control)?;
                        let result = records.wait().await;
                        records.finish(writer, seq, result, control)?;
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
                let failure = Failure::new(spec.name, report(&*error));
                settled(index, attempts, &|| BranchOutcome::CollectedAsFailure {
                    error: failure.error().to_owned(),
                });
                slots[index] = Slot::Failed(failure);
            }
            // The slot finished (an output or a collected failure) or waits.
            branches.in_flight -= 1;
            records.unsaved.push(index as u32);
            if *saved
                && !matches!(slots[index], Slot::Waiting)
                && record_each(spec)
                && !collects_child[index]
            {
                records.queued.push_back(index as u32);
                if !records.busy() {
                    records.start::<W>(writer, seq, join, (slots, waits_since), control)?;
                }
            }
            // A branch starts only once the records before it are durable (the siblings
            // already running go on meanwhile), as the run goes on only once they are.
            if !records.busy() {
                while let Some(index) = branches.next_to_start() {
                    let attempt = branches.start(index, &*state, slots, (&id, *seq), control)?;
                    running.push(Either::Left(attempt));
                }
            }
        }
        drop(running);
        // Every record is durable before the join runs or the region waits.
        records
            .drain::<W>(writer, seq, join, (slots, waits_since), control)
            .await?;
        let waiting = waiting_paths::<W>(join, slots, &paths);
        let Some(&first) = waiting.first() else {
            return Ok(None);
        };
        // Nothing else can run: save the waiting region, as a record when the store holds it.
        // (Not when it is saved already: its children still wait where they waited.)
        // (Under a worker's lease it is saved again all the same: the write clears the
        // wake-up that had the session claimed, so the worker can release it.)
        if stored_wait == Some(writer.stored_seq())
            && records.unsaved.is_empty()
            && *seq == writer.stored_seq()
            && control.writes.fence.is_none()
        {
            return Ok(Some(first));
        }
        let status = waiting_at(first);
        if waiting.len() > 1 {
            writer.waiting_next(waiting.clone());
        }
        let record_seq = if *seq == writer.stored_seq() {
            *seq + 1
        } else {
            *seq
        };
        let changes = (*saved && writer.has_region()).then(|| records.unsaved.clone());
        let mut checkpoint = if let Some(changed) = &changes {
            let changes = changes_of(changed, slots);
            writer.encode_record::<W>(record_seq, W::Exec::spec(join).name, status, &changes)?
        } else {
            let frontier = FrontierRef {
                opened,
                items: items.as_deref().map(|items| (*item_schema, items)),
                slots,
            };
            writer.encode::<W>(
                record_seq,
                status,
                std::borrow::Cow::Borrowed(W::Exec::spec(join).name),
                &*state,
                None,
                None,
                Some(frontier),
            )?
        };
        let deadlines = deadline::has_deadlines::<W>(join);
        if deadlines {
            deadline::stamp(&mut checkpoint);
        }
        mark_waits(
            slots,
            waits_since,
            checkpoint.created_at,
            changes.as_deref(),
        );
        let next = if deadlines {
            let waits = (&slots[..], &waits_since[..]);
            deadline::next_wake::<W>(join, waits, checkpoint.created_at, SystemTime::now())
        } else {
            None
        };
        // Under a worker, the child that ends wakes its parent with calls of its own after
        // its last checkpoint: a crash in between, or a parent whose run failed after this
        // wait, loses that wake-up. So the wait also wakes the parent after a while, and a
        // worker then reads its children's statuses again: a lost wake-up delays the
        // parent, never strands it.
        let running_elsewhere = !elsewhere.is_empty();
        let recheck = match (control.writes.fence.is_some(), running_elsewhere) {
            (false, _) => None,
            (true, true) => Some(self.config.recheck_children),
            // They wait for people: the parent's chain gains a record per re-check, so it comes
            // less often.
            (true, false) if paths.iter().any(Option::is_some) => {
                Some(self.config.recheck_children.saturating_mul(20))
            }
            (true, false) => None,
        };
        let next = match (next, recheck) {
            (Some(next), Some(recheck)) => Some(next.min(recheck)),
            (next, recheck) => next.or(recheck),
        };
        if deadlines || recheck.is_some() {
            writer.deadline_next::<W>(next.map_or(Wake::Never, Wake::After));
        }
        writer.append(store, checkpoint, control).await?;
        *seq = record_seq;
        *saved = true;
        if control.writes.fence.is_some()
            && (!elsewhere.is_empty() || paths.iter().any(Option::is_some))
        {
            at.children_ended = self
                .children_ended(&id, join, opened, &elsewhere, &paths)
                .await?;
        }
        Ok(Some(first))
    }

    /// Whether a child of the map items of the region joined at `join` (opened by step
    /// `opened`) moved on since its item last ran: one that ran on a worker (`running`) has
    /// ended (completed, waits for an input, or was cancelled), or one that waited for an
    /// input (`paths`) has completed. Asked under a worker's lease once the parent's wait is
    /// durable: a child that ends after this wakes the parent; one that ended before could
    /// not (its wake-up came before the wait, which cleared it), so the region runs again.
    async fn children_ended(
        &self,
        session: &str,
        join: Cursor<W>,
        opened: u64,
        running: &[usize],
        paths: &[Option<&'static str>],
    ) -> Result<bool> {
        let Some(node) = W::Exec::region(join)
            .and_then(|region| branch_of(region, 0))
            .map(|branch| W::Exec::spec(branch).name)
        else {
            return Ok(false);
        };
        let statuses = self
            .map_children(session, node, opened, paths.len())
            .await?;
        let moved = |index: usize, waited: bool| match statuses.get(&index) {
            Some(Status::Running | Status::Failed) => false,
            Some(Status::Waiting { .. }) => !waited,
            Some(Status::Completed | Status::Cancelled) | None => true,
        };
        let waiting = paths
            .iter()
            .enumerate()
            .filter_map(|(index, path)| path.map(|_| index));
        Ok(running.iter().any(|&index| moved(index, false))
            || waiting.into_iter().any(|index| moved(index, true)))
    }
}

/// Whether the branch whose context is `ctx` failed because its child stopped: `Some` with
/// the path its child waits at (`assess/check`), or `Some(None)` when its child runs on a
/// worker; `None` when it did not (a failure of its own).
fn child_stopped(ctx: &NodeCtx) -> Option<Option<&'static str>> {
    let host = ctx.child_host()?;
    if let Some(path) = host.take_interrupted() {
        return Some(Some(path));
    }
    host.take_running_elsewhere().then_some(None)
}

/// Where the region joined at `join` waits, in declaration order without repeats: the node
/// of each waiting interrupt branch, and the path (`assess/check`) of each map item whose
/// child waits (`paths`, by slot; a slot without one is named by its node).
pub(super) fn waiting_paths<W: Workflow>(
    join: Cursor<W>,
    slots: &[Slot],
    paths: &[Option<&'static str>],
) -> Vec<&'static str> {
    let mut waiting = waiting_nodes::<W>(join, slots);
    if paths.iter().all(Option::is_none) {
        return waiting;
    }
    let mut out: Vec<&'static str> = Vec::with_capacity(waiting.len());
    for name in waiting.drain(..) {
        let mut found = false;
        for (index, path) in paths.iter().enumerate() {
            if let (Some(path), Slot::Waiting) = (path, &slots[index])
                && path.split('/').next() == Some(name)
            {
                found = true;
                if !out.contains(path) {
                    out.push(path);
                }
            }
        }
        if !found {
            out.push(name);
        }
    }
    out
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
