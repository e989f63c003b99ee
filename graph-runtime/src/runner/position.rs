//! Where a running session stands: its writer, the state in hand and its sequence number,
//! the cursor, and — in a parallel region — the frontier of its branches. Built in one place,
//! [`Position::at`], whichever call starts the run (a new session, a resume, a decision, a
//! deadline), with what that call knows added to it.

use std::time::{Duration, SystemTime};

use super::Cursor;
use super::session::SessionWriter;
use crate::Workflow;
use crate::checkpoint::{Failure, FrontierRef};
use crate::execute::{Execute, Slot};

/// Where a running session stands, carried through the step loop.
pub(super) struct Position<W: Workflow> {
    /// The session's writer: the stored sequence number and delta chain.
    pub(super) session: SessionWriter,
    /// The sequence number of the state in hand.
    pub(super) seq: u64,
    pub(super) cursor: Cursor<W>,
    pub(super) state: W::State,
    pub(super) input: Option<W::Input>,
    /// Set while the cursor is the target of an error edge.
    pub(super) failure: Option<Failure>,
    /// Time spent in nodes since the last checkpoint (measured only under
    /// [`CheckpointPolicy::Adaptive`]).
    pub(super) unsaved: Duration,
    /// While the cursor is the join of a parallel region: its branches. Always `None` in a
    /// graph without regions.
    pub(super) frontier: Option<Frontier>,
    /// The cursor is an interrupt node with `wait_ms` whose wait is over: it runs without
    /// its input (its parameter is `None`). Set only by a worker's run at the deadline, or by
    /// a resume of the attempt it recorded; cleared once that node has run.
    pub(super) deadline_passed: bool,
    /// The state in hand is a checkpoint that waits at a subgraph node for its child, under
    /// its own sequence number: the node runs again under that number (so its child is the
    /// same session), and a child that still waits there needs no new checkpoint. Cleared
    /// once the node has run.
    pub(super) child_wait: bool,
    /// Set by a region that saved its wait while children of its map items ran on workers,
    /// when one of those children had ended before the wait was durable (its wake-up came
    /// too early to count): the region runs again.
    pub(super) children_ended: bool,
}

impl<W: Workflow> Position<W> {
    /// The run of the session `session` writes, at `cursor` with the state `state` of
    /// sequence number `seq`: no input, failure or frontier, nothing unsaved.
    #[inline(always)]
    pub(super) fn at(session: SessionWriter, seq: u64, cursor: Cursor<W>, state: W::State) -> Self {
        Position {
            session,
            seq,
            cursor,
            state,
            input: None,
            failure: None,
            unsaved: Duration::ZERO,
            frontier: None,
            deadline_passed: false,
            child_wait: false,
            children_ended: false,
        }
    }

    /// The same position, with the decision `input` for its interrupt node.
    #[inline(always)]
    pub(super) fn with_input(mut self, input: Option<W::Input>) -> Self {
        self.input = input;
        self
    }

    /// The same position, with what failed before its error edge.
    #[inline(always)]
    pub(super) fn with_failure(mut self, failure: Option<Failure>) -> Self {
        self.failure = failure;
        self
    }

    /// The same position, in the parallel region of `frontier`.
    #[inline(always)]
    pub(super) fn with_frontier(mut self, frontier: Option<Frontier>) -> Self {
        self.frontier = frontier;
        self
    }

    /// The same position, at a checkpoint that waits at a subgraph node for its child.
    #[inline(always)]
    pub(super) fn child_wait(mut self, waits: bool) -> Self {
        self.child_wait = waits;
        self
    }

    /// The same position, whose interrupt node runs without its input: its wait is over.
    #[inline(always)]
    pub(super) fn deadline_passed(mut self, passed: bool) -> Self {
        self.deadline_passed = passed;
        self
    }
}

/// The frontier of a parallel region the run is in: one slot per branch (static fan-out,
/// in the order of `RegionKind::FanOut::branches`) or per item (map, in item order).
#[derive(Debug, Clone)]
pub(super) struct Frontier {
    /// The sequence number of the step that opened the region: branch contexts carry it, so
    /// their idempotency keys are the same on every re-run.
    pub(super) opened: u64,
    /// A map's encoded items (`None` for a static fan-out).
    pub(super) items: Option<Vec<Vec<u8>>>,
    /// The fingerprint of a map's item type (0 for a static fan-out).
    pub(super) item_schema: u64,
    pub(super) slots: Vec<Slot>,
    /// Per slot, when its wait began: the creation time of the first stored checkpoint (or
    /// branch record) that holds the slot as [`Slot::Waiting`]; `None` while it does not
    /// wait, or its wait is not stored yet. Nothing extra is saved: loading derives it from
    /// the times the store keeps with each checkpoint, as [`Frontier::mark_saved`] does when
    /// they are written. An interrupt branch with `wait_ms` runs without its input once
    /// that long has passed since then (see `runner/deadline.rs`).
    pub(super) waits_since: Vec<Option<SystemTime>>,
    /// When the stored checkpoint this frontier was read from (the region's base, which
    /// branch records extend) was written; `None` for a frontier this run made.
    pub(super) base_written: Option<SystemTime>,
    /// Whether the newest stored checkpoints hold this frontier, so that a change can be
    /// saved as a small branch record rather than a whole checkpoint.
    pub(super) saved: bool,
}

impl Frontier {
    /// A static fan-out opened by step `opened`: every branch pending, except interrupt
    /// branches, which wait for their input.
    pub(super) fn fan_out<W: Workflow>(opened: u64, branches: &[Cursor<W>]) -> Self {
        let slots = branches
            .iter()
            .map(|&b| {
                if W::Exec::spec(b).interrupt {
                    Slot::Waiting
                } else {
                    Slot::Pending
                }
            })
            .collect::<Vec<_>>();
        Frontier {
            opened,
            items: None,
            item_schema: 0,
            waits_since: vec![None; slots.len()],
            base_written: None,
            slots,
            saved: false,
        }
    }

    /// A map opened by step `opened`, one pending slot per item; `item_schema` is the
    /// fingerprint of the items' type.
    pub(super) fn map(opened: u64, item_schema: u64, items: Vec<Vec<u8>>) -> Self {
        Frontier {
            opened,
            slots: vec![Slot::Pending; items.len()],
            waits_since: vec![None; items.len()],
            base_written: None,
            items: Some(items),
            item_schema,
            saved: false,
        }
    }

    /// Takes note that a checkpoint created at `created_at` stored the slots `changed` (all
    /// of them when `None`, a whole frontier): a waiting slot's wait began then unless an
    /// earlier one stored it waiting already; a slot that does not wait has no wait time.
    pub(super) fn mark_saved(&mut self, created_at: SystemTime, changed: Option<&[u32]>) {
        mark_waits(&self.slots, &mut self.waits_since, created_at, changed);
    }

    pub(super) fn as_ref(&self) -> FrontierRef<'_> {
        FrontierRef {
            opened: self.opened,
            items: self.items.as_deref().map(|items| (self.item_schema, items)),
            slots: &self.slots,
        }
    }
}

/// [`Frontier::mark_saved`] on a frontier's slots and wait times, borrowed apart.
pub(super) fn mark_waits(
    slots: &[Slot],
    waits_since: &mut [Option<SystemTime>],
    created_at: SystemTime,
    changed: Option<&[u32]>,
) {
    let mut mark = |index: usize| {
        if let (Some(slot), Some(since)) = (slots.get(index), waits_since.get_mut(index)) {
            match slot {
                Slot::Waiting => {
                    since.get_or_insert(created_at);
                }
                _ => *since = None,
            }
        }
    };
    match changed {
        None => (0..slots.len()).for_each(&mut mark),
        Some(indices) => indices.iter().for_each(|&i| mark(i as usize)),
    }
}
