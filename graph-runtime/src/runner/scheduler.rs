//! The step loop: runs nodes from a position until the session completes, waits or fails,
//! handing a parallel region to `region.rs`; and what the frontier of a region says (the
//! node of a slot, the nodes it waits at, its status).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::deadline;
use super::position::{Frontier, Position};
use super::region::announce;
use super::session::as_memory;
use super::{CheckpointPolicy, Control, Cursor, END, Outcome, Runner};
use crate::ctx::Failure;
use crate::error::report;
use crate::events::Event;
use crate::execute::{Execute, Region, RegionKind, Slot, Transition};
use crate::store::{Checkpoint, MemoryStore, Store};
use crate::workflow::NodeCheckpoint;
use crate::{Error, NodeCtx, Result, Status, Workflow};

/// The node that runs slot `index` of `region`.
pub(super) fn branch_of<C: Copy>(region: &Region<C>, index: usize) -> Option<C> {
    match region.kind {
        RegionKind::FanOut { branches, .. } => branches.get(index).copied(),
        RegionKind::Map { node, .. } => Some(node),
    }
}

/// Whether slot `index` of the region joined at `join`, when it waits, waits for a child (a
/// map item of a subgraph node) rather than for an input (an interrupt branch).
pub(super) fn child_waits<W: Workflow>(join: Cursor<W>, index: usize) -> bool {
    W::Exec::SUBGRAPHS
        && W::Exec::region(join)
            .and_then(|region| branch_of(region, index))
            .is_some_and(|branch| !W::Exec::spec(branch).interrupt)
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
        let id = Arc::clone(at.session.id());
        let result = self.drive_inner(at, &control).instrument(span).await;
        // A step that failed for good is kept in the session's history, with its error.
        if let Err(error @ (Error::Node { .. } | Error::StepLimit { .. })) = &result {
            let node = match error {
                Error::Node { node, .. } => Some(*node),
                _ => None,
            };
            Box::pin(self.record_failure(&id, node, error)).await;
        }
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
        // Graphs with subgraph nodes never take the plain path: a child's wait ends the
        // node's attempt as a failure whose state must be rolled back (`run_node`).
        let plain = control.events.is_none()
            && control.cancel.is_none()
            && !control.spans
            && !W::Exec::SUBGRAPHS;
        let mut ctx = NodeCtx::new(Arc::clone(at.session.id()), control.events.clone());
        // A constant: graphs without subgraph nodes never build the host.
        if W::Exec::SUBGRAPHS {
            ctx.set_child_host(self.child_host());
        }
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
                    let frontier = self.reopen(&at, region)?;
                    announce::<W>(region, &frontier, control);
                    at.frontier = Some(frontier);
                }
                // Boxed: a region's scheduler is large, and every session's step loop would
                // carry its size otherwise (10,000 waiting sessions pay for it in memory).
                if let Some(waiting) = Box::pin(self.run_region(&mut at, region, control)).await? {
                    if std::mem::take(&mut at.children_ended) {
                        // A child ended before the wait was saved: ask the children again
                        // (the saved wait needs no new checkpoint if nothing changed).
                        at.child_wait = true;
                        continue;
                    }
                    return Ok(Outcome::Interrupted {
                        node: waiting,
                        state: at.state,
                    });
                }
                joined = at.frontier.take();
            }
            steps += 1;
            let seq = at.seq + 1;
            // A subgraph node whose child was waiting runs again under the sequence number
            // of its wait, so that it names the same child.
            let key_seq = if std::mem::take(&mut at.child_wait) {
                at.seq
            } else {
                seq
            };
            ctx.enter(spec.name, key_seq);
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
            // (The mark is taken whatever the node returned: a node that caught its child's
            // wait and went on does not wait.)
            if W::Exec::SUBGRAPHS
                && let Some(path) = ctx.child_host().and_then(|host| host.take_interrupted())
                && matches!(
                    transition,
                    Transition::Failed(_) | Transition::FailedPermanently(_)
                )
            {
                // A pending failure (the node is an error edge's target) waits with it.
                at.failure = ctx.failure().cloned();
                ctx.clear_failure();
                return self
                    .wait_for_child(at, spec.name, key_seq, path, control)
                    .await;
            }
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
                        let frontier = Frontier::fan_out::<W>(seq, branches);
                        announce::<W>(region, &frontier, control);
                        at.frontier = Some(frontier);
                    }
                    next
                }
                Transition::Map { join, items } => match W::Exec::region(join) {
                    Some(
                        region @ Region {
                            kind: RegionKind::Map { node, .. },
                            ..
                        },
                    ) => {
                        let item_schema = W::Exec::item_schema(*node);
                        let frontier = Frontier::map(seq, item_schema, items);
                        announce::<W>(region, &frontier, control);
                        at.frontier = Some(frontier);
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

    /// The subgraph node `node`, run under sequence number `key_seq`, ended because its
    /// child waits at `path`: the parent waits too, at that node, with the state from before
    /// it ran (`run_node` rolled it back), as checkpoint `key_seq` (from which the child's id
    /// is derived again). When that checkpoint is stored already (the node ran again from
    /// it, and the child still waits), nothing is written.
    async fn wait_for_child(
        &self,
        mut at: Box<Position<W>>,
        node: &'static str,
        key_seq: u64,
        path: &'static str,
        control: &Control,
    ) -> Result<Outcome<W::State>> {
        if key_seq > at.session.stored_seq() {
            at.seq = key_seq;
            self.save(&mut at, key_seq, waiting_at(path), node, true, control)
                .await?;
        }
        Ok(Outcome::Interrupted {
            node: path,
            state: at.state,
        })
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
            Some(frontier) => {
                let status = region_status::<W>(status, at.cursor, &frontier.slots);
                if status.waiting_node().is_some() {
                    let waiting = waiting_nodes::<W>(at.cursor, &frontier.slots);
                    if waiting.len() > 1 {
                        at.session.waiting_next(waiting);
                    }
                }
                (status, Some(frontier.as_ref()))
            }
        };
        let waits = status.waiting_node().is_some();
        let mut checkpoint = at.session.encode::<W>(
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
            let deadlines = deadline::has_deadlines::<W>(at.cursor);
            if deadlines {
                deadline::stamp(&mut checkpoint);
            }
            frontier.mark_saved(checkpoint.created_at, None);
            // A region that waits wakes at the earliest deadline of its waiting branches.
            if waits && deadlines {
                let waits = (&frontier.slots[..], &frontier.waits_since[..]);
                let next = deadline::next_wake::<W>(
                    at.cursor,
                    waits,
                    checkpoint.created_at,
                    std::time::SystemTime::now(),
                );
                at.session.deadline_next::<W>(
                    next.map_or(crate::store::Wake::Never, crate::store::Wake::After),
                );
            }
        }
        Ok(checkpoint)
    }
}
