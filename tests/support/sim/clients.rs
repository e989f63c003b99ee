//! The clients of a world: the code that plays a service's callers and operators for each
//! session. A client holds nothing across a crash but what [`Clients`] keeps (a service's
//! own database): each life's client reads where its session stands and goes on from there.
//!
//! In-process sessions are started and answered with `start` and `resume_with`, resumed after
//! every failure; sessions run by workers are enqueued and answered with `enqueue_input`.
//! Answers come late (up to 2 s of virtual time) and say who gave them and why. The
//! operator's verb of each session (see [`Verb`]) is applied where every run of the world
//! gets to: an edit or a cancel while it waits (a cancel once every child settled), a fork
//! or a delete once it completed, a repair (an edit) once its run failed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{Audit, AuditKind, SessionFilter, SessionRecord, Store as _};
use graph_runtime::{CheckpointInfo, Snapshot, Status, StatusKind, Workflow};

use super::store::SimStore;
use super::workflows::*;
use super::world::{Clients, Mode, Runners, Verb};

/// Who the clients' decisions are audited as given by, and why.
pub const ACTOR: &str = "client";
pub const NOTE: &str = "a late answer";
/// Who operators' edits, cancels and forks are audited as made by.
pub const OPERATOR: &str = "operator";

/// The longest a client waits before it looks again at a session it has nothing to do for.
const LOOK_AGAIN_MS: u64 = 200;

/// How long a client waits before it looks again or answers (answers come late).
pub async fn pause(rng: &mut fastrand::Rng, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rng.u64(1..=max_ms))).await;
}

/// One client of one session, in one process life.
pub struct Ctx<W: Workflow> {
    pub runner: Runner<W, SimStore>,
    pub runners: Runners,
    pub id: String,
    pub mode: Mode,
    pub verb: Verb,
    /// How many checkpoints the world's runners keep (`None`: all).
    pub keep_last: Option<u64>,
    pub clients: Arc<Clients>,
    pub rng: fastrand::Rng,
}

/// What a client remembers within one process life.
#[derive(Debug, Default)]
pub struct Local {
    /// Waited out the wall-clock deadlines of the branches (see `approvals`).
    slept: bool,
    answered_racy: bool,
    tried_late: bool,
}

/// What a client does for the sessions of workflow `Self`, besides starting, answering and
/// resuming them.
pub trait Client: Workflow<State: SimState> {
    /// The answer for `node`, at which `snapshot` waits.
    fn answer(_id: &str, _snapshot: &Snapshot<Self::State>, _node: &str) -> Option<Self::Input> {
        None
    }

    /// The operator's edit of a waiting session (verb `Edit`), if not made yet.
    fn edit(_state: &Self::State) -> Option<Self::State> {
        None
    }

    /// The operator's repair of a session whose run failed, if it needs one.
    fn repair(_state: &Self::State) -> Option<Self::State> {
        None
    }

    /// Whether the session, waiting, is where its cancel is due (verb `Cancel`).
    fn ready_to_cancel(
        _c: &Ctx<Self>,
        _snapshot: &Snapshot<Self::State>,
    ) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// What the client does at a wait besides answering the session's own nodes; whether it
    /// did something.
    fn at_wait(
        _c: &mut Ctx<Self>,
        _snapshot: &Snapshot<Self::State>,
        _local: &mut Local,
    ) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// The checkpoint a fork starts from, among the newest kept ones (those every run of the
    /// world keeps alike).
    fn fork_point(history: &[CheckpointInfo]) -> Option<u64> {
        history.last().map(|c| c.seq)
    }

    /// The operator's corrected state for a fork (verb `Fork { with_state: true }`).
    fn fork_state(state: &Self::State) -> Self::State {
        state.clone()
    }
}

fn edit_audit(what: &str) -> Audit {
    Audit::new(AuditKind::Edit {
        diff: format!("[{{\"path\":\"/{what}\"}}]"),
    })
    .by(OPERATOR)
    .note(what)
}

/// Gives `input` to the session: in-process, runs it on; for workers, records it.
async fn give<W: Workflow>(c: &Ctx<W>, input: W::Input) -> graph_runtime::Result<()> {
    match c.mode {
        Mode::InProcess => c
            .runner
            .resume_with(&c.id, input)
            .by(ACTOR)
            .note(NOTE)
            .await
            .map(drop),
        Mode::Workers => {
            c.runner
                .enqueue_input(&c.id, input)
                .by(ACTOR)
                .note(NOTE)
                .await
        }
    }
}

/// Plays the client of one session until it completed (and what its verb does after that
/// is done), was cancelled, or was deleted. `initial`: its initial state (`None` for a fork,
/// which exists before its client starts).
pub async fn drive<W: Client>(mut c: Ctx<W>, initial: Option<W::State>) {
    let mut local = Local::default();
    loop {
        let snapshot = match c.runner.state(&c.id).await {
            Err(_) => {
                pause(&mut c.rng, 10).await;
                continue;
            }
            Ok(snapshot) => snapshot,
        };
        let Some(snapshot) = snapshot else {
            if c.clients.deleting(&c.id) {
                return;
            }
            let Some(initial) = &initial else {
                c.clients.violation(format!("{}: the fork is gone", c.id));
                return;
            };
            let _ = match c.mode {
                Mode::InProcess => c.runner.start(&c.id, initial.clone()).await.map(drop),
                Mode::Workers => c.runner.enqueue(&c.id, initial.clone()).await,
            };
            continue;
        };
        if c.clients.cancelling(&c.id) && snapshot.status != Status::Cancelled {
            // A cancel was sent and did not finish (its children cancelled, not the parent):
            // it is made again, whatever the session shows now.
            cancel(&mut c).await;
            continue;
        }
        match snapshot.status {
            Status::Completed => {
                if completed(&mut c).await {
                    return;
                }
            }
            Status::Cancelled => return,
            Status::Waiting { .. } => waiting(&mut c, &snapshot, &mut local).await,
            _ => running(&mut c, &snapshot).await,
        }
    }
}

async fn waiting<W: Client>(c: &mut Ctx<W>, snapshot: &Snapshot<W::State>, local: &mut Local) {
    if c.verb == Verb::Edit
        && let Some(edited) = W::edit(&snapshot.state)
    {
        if c.runner
            .edit(&c.id, snapshot.seq, edited, edit_audit("edit"))
            .await
            .is_ok()
        {
            c.clients.count("edits");
        }
        return;
    }
    if c.verb == Verb::Cancel {
        if W::ready_to_cancel(c, snapshot).await {
            c.clients.intend_cancel(&c.id);
            cancel(c).await;
        } else {
            pause(&mut c.rng, LOOK_AGAIN_MS).await;
        }
        return;
    }
    if W::at_wait(c, snapshot, local).await {
        return;
    }
    let answer = snapshot
        .waiting
        .iter()
        .find_map(|node| W::answer(&c.id, snapshot, node));
    match answer {
        Some(input) => {
            pause(&mut c.rng, 2_000).await;
            let _ = give(c, input).await;
        }
        // Nothing to answer (a wait for a deadline, or for a child): look again later.
        None => pause(&mut c.rng, LOOK_AGAIN_MS).await,
    }
}

async fn cancel<W: Client>(c: &mut Ctx<W>) {
    let audit = Audit::new(AuditKind::Cancelled)
        .by(OPERATOR)
        .note("cancelled");
    match c.runner.cancel(&c.id, audit).await {
        Ok(_) => c.clients.count("cancels"),
        Err(_) => pause(&mut c.rng, 10).await,
    }
}

async fn running<W: Client>(c: &mut Ctx<W>, snapshot: &Snapshot<W::State>) {
    if let Some(repaired) = W::repair(&snapshot.state) {
        let record = c.runner.store().session(&c.id).await;
        if let Ok(Some(SessionRecord {
            status: Status::Failed,
            ..
        })) = record
        {
            if c.runner
                .edit(&c.id, snapshot.seq, repaired, edit_audit("repair"))
                .await
                .is_ok()
            {
                c.clients.count("repairs");
            }
            return;
        }
    }
    match c.mode {
        Mode::InProcess => {
            let _ = c.runner.resume(&c.id).await;
        }
        Mode::Workers => pause(&mut c.rng, LOOK_AGAIN_MS).await,
    }
}

/// How long after a session completed its operator deletes it: longer than any call in
/// flight takes (a few stalls of at most 900 ms).
const DELETE_AFTER: Duration = Duration::from_secs(5);

/// What the verb does once the session completed; whether the client is done.
async fn completed<W: Client>(c: &mut Ctx<W>) -> bool {
    match c.verb {
        Verb::Delete => {
            // Once it has been completed a while, as an operator cleans up: a call that
            // lost the race to start or run it may still be in flight for a moment (a
            // `start` that lands after the delete starts it anew, as asked).
            if !c.clients.deleting(&c.id) {
                tokio::time::sleep(DELETE_AFTER).await;
                c.clients.intend_delete(&c.id);
            }
            match c.runner.delete(&c.id).await {
                Ok(true) => c.clients.count("deletes"),
                Ok(false) => {}
                Err(_) => pause(&mut c.rng, 10).await,
            }
            false
        }
        Verb::Fork { with_state } => fork(c, with_state).await,
        _ => true,
    }
}

/// Forks the completed session (once: a fork that exists is not made again) and plays the
/// fork's client; whether the fork is done.
async fn fork<W: Client>(c: &mut Ctx<W>, with_state: bool) -> bool {
    let fork = format!("{}-fork", c.id);
    match c.runner.state(&fork).await {
        Err(_) => {
            pause(&mut c.rng, 10).await;
            return false;
        }
        Ok(Some(_)) => {
            let client = Ctx {
                runner: c.runner.clone(),
                runners: c.runners.clone(),
                id: fork,
                mode: Mode::InProcess,
                verb: Verb::None,
                keep_last: c.keep_last,
                clients: Arc::clone(&c.clients),
                rng: c.rng.fork(),
            };
            Box::pin(drive(client, None)).await;
            return true;
        }
        Ok(None) => {}
    }
    let Ok(mut history) = c.runner.history(&c.id).await else {
        pause(&mut c.rng, 10).await;
        return false;
    };
    if let Some(n) = c.keep_last {
        let newest = history.len().saturating_sub(n as usize);
        history.drain(..newest);
    }
    let Some(seq) = W::fork_point(&history) else {
        return true;
    };
    if with_state {
        let Ok(Some(from)) = c.runner.state_at(&c.id, seq).await else {
            pause(&mut c.rng, 10).await;
            return false;
        };
        let audit = edit_audit("fork");
        let state = W::fork_state(&from.state);
        if c.runner
            .fork_with(&c.id, seq, &fork, state, audit)
            .await
            .is_ok()
        {
            c.clients.count("forks with a new state");
        }
    } else if c.runner.fork(&c.id, seq, &fork).await.is_ok() {
        c.clients.count("forks");
    }
    false
}

impl Client for looping::Workflow {
    fn repair(state: &Loop) -> Option<Loop> {
        (!state.card_ok).then(|| Loop {
            card_ok: true,
            ..state.clone()
        })
    }

    /// The oldest of the kept checkpoints at `tick`: the fork loops on from there.
    fn fork_point(history: &[CheckpointInfo]) -> Option<u64> {
        history
            .iter()
            .find(|c| c.node == "tick")
            .or(history.last())
            .map(|c| c.seq)
    }

    /// Two more rounds.
    fn fork_state(state: &Loop) -> Loop {
        Loop {
            rounds: state.rounds + 2,
            ..state.clone()
        }
    }
}

impl Client for fanout::Workflow {
    fn answer(id: &str, _: &Snapshot<Fan>, node: &str) -> Option<fanout::Input> {
        match node {
            "ask1" => Some(fanout::Input::Ask1(format!("{id}:yes"))),
            "ask2" => Some(fanout::Input::Ask2(format!("{id}:no"))),
            _ => None,
        }
    }

    /// A wider map.
    fn edit(state: &Fan) -> Option<Fan> {
        (!state.edited).then(|| Fan {
            width: state.width + 1,
            edited: true,
            ..state.clone()
        })
    }
}

impl Client for deadline::Workflow {
    fn answer(id: &str, _: &Snapshot<Memo>, node: &str) -> Option<deadline::Input> {
        // `review` is never answered: its deadline passes.
        (node == "approve").then(|| deadline::Input::Approve(fnv(id) as u32 % 1000))
    }
}

impl Client for support::Workflow {
    fn answer(id: &str, _: &Snapshot<Ticket>, node: &str) -> Option<support::Input> {
        (node == "research/review").then(|| {
            support::Input::Research(research_agent::Input::Review(format!("{id}:reviewed")))
        })
    }

    fn ready_to_cancel(
        _: &Ctx<Self>,
        snapshot: &Snapshot<Ticket>,
    ) -> impl Future<Output = bool> + Send {
        let ready = snapshot.waiting.contains(&"research/review");
        async move { ready }
    }
}

/// The map children of `parent` (each with its item), as the store lists them.
async fn children_of(c: &Ctx<claims::Workflow>) -> Option<Vec<(usize, SessionRecord)>> {
    let mut filter = SessionFilter::new();
    filter.parent = Some(c.id.clone());
    filter.limit = SessionFilter::MAX_LIMIT;
    let page = c.runner.store().sessions(&filter).await.ok()?;
    page.sessions
        .into_iter()
        .map(|record| {
            let item = record.session.rsplit('/').next()?.parse().ok()?;
            Some((item, record))
        })
        .collect()
}

impl Client for claims::Workflow {
    /// Every item settled: the children of the lines above the limit wait for their check,
    /// the others completed.
    async fn ready_to_cancel(c: &Ctx<Self>, snapshot: &Snapshot<Claim>) -> bool {
        let Some(children) = children_of(c).await else {
            return false;
        };
        let lines = &snapshot.state.lines;
        children.len() == lines.len()
            && children
                .iter()
                .all(|(item, record)| match (lines.get(*item), &record.status) {
                    (Some(&cents), Status::Waiting { .. }) => cents > CHECK_ABOVE,
                    (Some(&cents), Status::Completed) => cents <= CHECK_ABOVE,
                    _ => false,
                })
    }

    /// Answers the children that wait for a check, each on its own session.
    async fn at_wait(c: &mut Ctx<Self>, _: &Snapshot<Claim>, _: &mut Local) -> bool {
        let Some(children) = children_of(c).await else {
            return false;
        };
        let waiting: Vec<_> = children
            .into_iter()
            .filter(|(_, record)| record.status.kind() == StatusKind::Waiting)
            .collect();
        for (item, record) in &waiting {
            pause(&mut c.rng, 2_000).await;
            let input = assessment::Input::Check(format!("adjuster-{item}"));
            let children = &c.runners.assessment;
            let _ = match c.mode {
                Mode::InProcess => children
                    .resume_with(&record.session, input)
                    .by(ACTOR)
                    .note(NOTE)
                    .await
                    .map(drop),
                Mode::Workers => {
                    children
                        .enqueue_input(&record.session, input)
                        .by(ACTOR)
                        .note(NOTE)
                        .await
                }
            };
        }
        !waiting.is_empty()
    }
}

impl Client for approvals::Workflow {
    /// `early`, once neither `late` nor `racy` waits any more.
    fn answer(id: &str, snapshot: &Snapshot<Deal>, node: &str) -> Option<approvals::Input> {
        let others = ["late", "racy"];
        (node == "early" && !snapshot.waiting.iter().any(|n| others.contains(n)))
            .then(|| approvals::Input::Early(format!("{id}:early")))
    }

    fn edit(state: &Deal) -> Option<Deal> {
        state.note.is_empty().then(|| Deal {
            note: "edited".to_owned(),
            ..state.clone()
        })
    }

    /// Branch deadlines are counted on the wall clock (from the wall-clock stamps of the
    /// checkpoints), which the paused tokio clock does not move: the client lets the wall
    /// clock pass them (the process stands still meanwhile), then answers `racy` about when
    /// the worker woken at its deadline takes it (either may win), and answers `late` once
    /// its deadline was taken, which must be refused.
    async fn at_wait(c: &mut Ctx<Self>, snapshot: &Snapshot<Deal>, local: &mut Local) -> bool {
        let waits = |node: &str| snapshot.waiting.contains(&node);
        if (waits("late") || waits("racy")) && !local.slept {
            std::thread::sleep(Duration::from_millis(BRANCH_WAIT_MS + 1));
            local.slept = true;
        }
        if waits("racy") && !local.answered_racy {
            local.answered_racy = true;
            // About when the worker woken at the deadline takes it (1 ms of virtual time
            // after the wait was saved, which may be past already).
            tokio::time::sleep(Duration::from_micros(c.rng.u64(0..=2_000))).await;
            let input = approvals::Input::Racy(format!("{}:racy", c.id));
            match give(c, input).await {
                Ok(()) => {
                    c.clients.accepted(&c.id, "racy");
                    c.clients.count("answers that beat their deadline");
                }
                Err(graph_runtime::Error::NotWaiting { .. }) => {
                    c.clients.count("answers the deadline beat");
                }
                Err(_) => {}
            }
            return true;
        }
        if !waits("late") && !local.tried_late {
            local.tried_late = true;
            let input = approvals::Input::Late(format!("{}:late", c.id));
            match give(c, input).await {
                Ok(()) => c.clients.violation(format!(
                    "{}: an answer to `late` was accepted after its deadline was taken",
                    c.id
                )),
                Err(graph_runtime::Error::NotWaiting { .. }) => {
                    c.clients.count("late answers refused");
                }
                Err(_) => {}
            }
            return true;
        }
        false
    }
}
