//! Deadlines of interrupt branches (`#[node(interrupt, wait_ms = N)]` on a branch of a
//! parallel region): each waiting branch has its own, `N` ms after its wait began (when a
//! stored checkpoint first held its slot waiting, see [`Frontier::waits_since`]). The session's
//! durable wake-up is the earliest deadline among its waiting branches; a worker that claims it
//! then records each branch whose deadline passed as running without its input (its slot
//! back to [`Slot::Pending`], which for an interrupt branch with `wait_ms` means "run with
//! `None`"), and the others keep waiting.
//!
//! Wait times are the creation times the store keeps with each checkpoint (the writer's
//! clock: the checkpoints of a region with deadlines are stamped with the precise wall clock,
//! see [`stamp`]); the wake-up itself is set, as every deadline, as a delay on the database's
//! clock.

use std::time::{Duration, SystemTime};

use super::Cursor;
use super::position::Frontier;
use super::scheduler::branch_of;
use crate::Workflow;
use crate::execute::{Execute, Slot};
use crate::store::Checkpoint;

/// Stamps `checkpoint` of a region whose branches have deadlines with the precise wall clock.
/// Their waits are counted from these stamps, and the coarse clock that stamps every other
/// checkpoint (cheaply) may lag by a tick or two: a wait counted from it would end early.
pub(super) fn stamp(checkpoint: &mut Checkpoint) {
    checkpoint.created_at = SystemTime::now();
}

/// A region's slots and when each one's wait began ([`Frontier::waits_since`]).
pub(super) type Waits<'a> = (&'a [Slot], &'a [Option<SystemTime>]);

/// The deadline of slot `index` of the region joined at `join`, if it waits at an interrupt
/// branch with `wait_ms`; a wait not stored yet begins at `written_at`.
fn deadline_of<W: Workflow>(
    join: Cursor<W>,
    (slots, waits_since): Waits<'_>,
    index: usize,
    written_at: SystemTime,
) -> Option<SystemTime> {
    if slots.get(index) != Some(&Slot::Waiting) {
        return None;
    }
    let region = W::Exec::region(join)?;
    let spec = W::Exec::spec(branch_of(region, index)?);
    let ms = spec.wait_ms.filter(|_| spec.interrupt)?;
    let since = waits_since
        .get(index)
        .copied()
        .flatten()
        .unwrap_or(written_at);
    since.checked_add(Duration::from_millis(ms))
}

/// Whether some branch of the region joined at `join` is an interrupt branch with `wait_ms`
/// (a constant per region: graphs without such branches never compute a deadline).
pub(super) fn has_deadlines<W: Workflow>(join: Cursor<W>) -> bool {
    let Some(region) = W::Exec::region(join) else {
        return false;
    };
    let spec_has = |cursor: Cursor<W>| {
        let spec = W::Exec::spec(cursor);
        spec.interrupt && spec.wait_ms.is_some()
    };
    match region.kind {
        crate::execute::RegionKind::FanOut { branches, .. } => {
            branches.iter().any(|&b| spec_has(b))
        }
        crate::execute::RegionKind::Map { node, .. } => spec_has(node),
    }
}

/// The slots whose deadline has passed at `now`, in slot order.
pub(super) fn due<W: Workflow>(
    join: Cursor<W>,
    frontier: &Frontier,
    now: SystemTime,
) -> Vec<usize> {
    let waits = (&frontier.slots[..], &frontier.waits_since[..]);
    (0..frontier.slots.len())
        .filter(|&i| deadline_of::<W>(join, waits, i, now).is_some_and(|at| at <= now))
        .collect()
}

/// How long from `now` until the earliest deadline of a waiting branch (zero when it has
/// passed), for a checkpoint written at `written_at`; `None` when no waiting branch has one.
pub(super) fn next_wake<W: Workflow>(
    join: Cursor<W>,
    waits: Waits<'_>,
    written_at: SystemTime,
    now: SystemTime,
) -> Option<Duration> {
    (0..waits.0.len())
        .filter_map(|i| deadline_of::<W>(join, waits, i, written_at))
        .min()
        .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
}
