//! How far a parallel region has come, read from the frontier a checkpoint holds:
//! [`Progress`], what [`Snapshot::progress`](super::Snapshot::progress) shows while a session
//! stands at a region's join.

use super::Cursor;
use super::position::Frontier;
use super::scheduler::branch_of;
use crate::Workflow;
use crate::execute::{Execute, RegionKind, Slot};

/// How far the parallel region a session stands in has come: where each branch of a fan-out
/// (or each item of a map) is, and how many are in each place. A progress bar shows
/// `done + failed` of `total`; a console lists `branches`.
///
/// Read from the checkpoint the [`Snapshot`](super::Snapshot) decodes, so it is as the
/// session's store has it: a branch that is running now is [`BranchState::Pending`] until its
/// output is saved (under [`CheckpointPolicy::EveryStep`](crate::CheckpointPolicy), as soon as
/// it finishes).
///
/// ```
/// use graph_runtime::prelude::*;
/// use graph_runtime::BranchState;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
/// pub struct Claim { pub score: u32, pub note: String }
///
/// #[workflow(state = Claim)]
/// pub mod claims {
///     use super::*;
///     edge!(START -> intake);
///     edge!(intake -> fraud & adjuster);
///     edge!(fraud & adjuster -> decide);
///     edge!(decide -> END);
///     #[node] async fn intake(c: &mut Claim) {}
///     #[node] async fn fraud(c: &Claim) -> u32 { 7 }
///     #[node(interrupt)] async fn adjuster(c: &Claim, note: String) -> String { note }
///     #[node]
///     async fn decide(c: &mut Claim, fraud: u32, adjuster: String) {
///         c.score = fraud;
///         c.note = adjuster;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
/// let runner = Runner::new(claims::Workflow, MemoryStore::new());
/// runner.start("c-1", Claim::default()).await?;
/// let snapshot = runner.state("c-1").await?.expect("the session exists");
/// let progress = snapshot.progress.expect("it stands in a region");
/// assert_eq!(progress.join, "decide");
/// assert_eq!((progress.done, progress.waiting, progress.total), (1, 1, 2));
/// assert_eq!(progress.branches[0].node, "fraud");
/// assert_eq!(progress.branches[0].state, BranchState::Done);
/// assert_eq!(progress.branches[1].state, BranchState::Waiting);
///
/// runner.resume_with("c-1", claims::Input::Adjuster("ok".into())).await?;
/// assert!(runner.state("c-1").await?.unwrap().progress.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The region's join: the node that runs once every branch has settled (the
    /// snapshot's `node`).
    pub join: &'static str,
    /// The sequence number of the step that opened the region: the `seq` of its branches'
    /// events.
    pub opened: u64,
    /// One entry per branch of a fan-out (in the order of its `&` list) or per item of a
    /// map (in item order).
    pub branches: Vec<BranchProgress>,
    /// How many branches have their output ([`BranchState::Done`]).
    pub done: usize,
    /// How many failed and have their failure kept for a join that collects failures
    /// ([`BranchState::Failed`]).
    pub failed: usize,
    /// How many interrupt branches wait for their decision ([`BranchState::Waiting`]).
    pub waiting: usize,
    /// How many are still to run: not started, running, cut short, or answered and not
    /// finished ([`BranchState::Pending`] and [`BranchState::Answered`]).
    pub pending: usize,
    /// How many branches (or items) the region has: `done + failed + waiting + pending`.
    pub total: usize,
}

impl Progress {
    /// How many branches are finished for the region: `done + failed`. The join runs once
    /// this is `total`.
    pub fn finished(&self) -> usize {
        self.done + self.failed
    }
}

/// One branch of a [`Progress`]: a fan-out's branch node, or a map's node with the item's
/// index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BranchProgress {
    /// The branch node (for a map, the map node).
    pub node: &'static str,
    /// For a map, the index of the item.
    pub item: Option<usize>,
    /// Where it stands.
    pub state: BranchState,
}

/// Where one branch of a parallel region stands, as its checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BranchState {
    /// Not run yet, running now, or cut short (by a crash, a cancel, or a sibling's failure
    /// in a join that does not collect failures): it runs when the session goes on.
    Pending,
    /// An interrupt branch waiting for its decision.
    Waiting,
    /// An interrupt branch whose decision is recorded, not finished with it yet.
    Answered,
    /// Finished with its output.
    Done,
    /// Failed after its retries; the failure is kept for the join, which collects failures.
    Failed {
        /// What its last attempt returned, with its causes, on one line.
        error: String,
    },
}

/// The progress of the region joined at `join`, from its frontier; `None` if `join` is not
/// the join of a region of this graph.
pub(super) fn progress<W: Workflow>(join: Cursor<W>, frontier: &Frontier) -> Option<Progress> {
    let region = W::Exec::region(join)?;
    let is_map = matches!(region.kind, RegionKind::Map { .. });
    let mut progress = Progress {
        join: W::Exec::spec(join).name,
        opened: frontier.opened,
        branches: Vec::with_capacity(frontier.slots.len()),
        done: 0,
        failed: 0,
        waiting: 0,
        pending: 0,
        total: 0,
    };
    for (index, slot) in frontier.slots.iter().enumerate() {
        // A slot the region does not have (a frontier that is not this graph's) is left out.
        let Some(branch) = branch_of(region, index) else {
            continue;
        };
        let state = match slot {
            Slot::Pending => {
                progress.pending += 1;
                BranchState::Pending
            }
            Slot::Input(_) => {
                progress.pending += 1;
                BranchState::Answered
            }
            Slot::Waiting => {
                progress.waiting += 1;
                BranchState::Waiting
            }
            Slot::Done(_) => {
                progress.done += 1;
                BranchState::Done
            }
            Slot::Failed(failure) => {
                progress.failed += 1;
                BranchState::Failed {
                    error: failure.error().to_owned(),
                }
            }
        };
        progress.branches.push(BranchProgress {
            node: W::Exec::spec(branch).name,
            item: is_map.then_some(index),
            state,
        });
    }
    progress.total = progress.branches.len();
    Some(progress)
}
