//! What operators do to sessions besides running them: decisions that say who gave them
//! ([`ResumeWith`], [`EnqueueInput`]), edits of a stopped session's state, cancellation, and
//! the record a failed run leaves. Each writes one checkpoint through the session's writer,
//! compare-and-swap on the checkpoint it read, with an [`Audit`] record beside it.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::child::{ChildAnswer, Give};
use super::load::{Loaded, Purpose};
use super::scheduler::{self, waiting_nodes};
use super::{Control, Outcome, Runner, Snapshot};
use crate::error::report;
use crate::execute::Execute;
use crate::store::{Audit, AuditKind, Status, Store};
use crate::{Error, Result, Workflow};

/// The future of a boxed call that borrows the runner and its arguments.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Who gave a decision and why: what [`Decide::by`] and [`Decide::note`] set.
#[derive(Debug, Default, Clone)]
pub(super) struct Decision {
    actor: Option<String>,
    note: Option<String>,
}

impl Decision {
    fn audit(self, node: &str) -> Audit {
        Audit {
            kind: AuditKind::Input {
                node: node.to_owned(),
                source: crate::store::InputSource::Caller,
            },
            actor: self.actor,
            note: self.note,
        }
    }
}

/// The arguments of a decision.
struct Given<'a, W: Workflow, S> {
    runner: &'a Runner<W, S>,
    session: &'a str,
    input: W::Input,
    said: Decision,
}

/// What a decision does once its arguments are final: run the session on, or hand it to
/// workers.
type Start<'a, W, S, T> = fn(Given<'a, W, S>) -> Call<'a, T>;

/// A decision given to a waiting session ([`Runner::resume_with`], [`Runner::enqueue_input`]):
/// a future that starts when it is first polled, so that before awaiting it the caller may
/// say who gave the decision and why, which the session's history keeps with it
/// ([`CheckpointInfo::audit`](super::CheckpointInfo)).
///
/// ```
/// use graph_runtime::prelude::*;
/// use graph_runtime::store::AuditKind;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
/// pub struct Order { pub approved: bool }
///
/// #[workflow(state = Order)]
/// pub mod order {
///     use super::*;
///     edge!(START -> review);
///     edge!(review -> END);
///     #[node(interrupt)]
///     async fn review(o: &mut Order, ok: bool) { o.approved = ok; }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
/// let runner = Runner::new(order::Workflow, MemoryStore::new());
/// runner.start("o-1", Order::default()).await?;
/// runner
///     .resume_with("o-1", order::Input::Review(true))
///     .by("alice")
///     .note("limit raised")
///     .await?;
/// let history = runner.history("o-1").await?;
/// let decision = history.iter().find_map(|c| c.audit.as_ref()).expect("audited");
/// assert!(matches!(&decision.kind, AuditKind::Input { node, .. } if node == "review"));
/// assert_eq!(decision.actor.as_deref(), Some("alice"));
/// # Ok(()) }
/// ```
#[must_use = "a decision does nothing until it is awaited"]
pub struct Decide<'a, W: Workflow, S, T> {
    /// The arguments, until the first poll.
    given: Option<Box<Given<'a, W, S>>>,
    start: Start<'a, W, S, T>,
    /// The call, from the first poll until it completes.
    call: Option<Call<'a, T>>,
}

/// [`Runner::resume_with`]'s decision: its output is the run's outcome.
pub type ResumeWith<'a, W, S> = Decide<'a, W, S, Outcome<<W as Workflow>::State>>;

/// [`Runner::enqueue_input`]'s decision: it only records the input, for workers.
pub type EnqueueInput<'a, W, S> = Decide<'a, W, S, ()>;

impl<W: Workflow, S, T> std::fmt::Debug for Decide<'_, W, S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Decide");
        if let Some(given) = &self.given {
            debug
                .field("session", &given.session)
                .field("actor", &given.said.actor)
                .field("note", &given.said.note);
        }
        debug.finish_non_exhaustive()
    }
}

impl<'a, W: Workflow, S: Store> Decide<'a, W, S, Outcome<W::State>> {
    /// [`Runner::resume_with`]: records the input, then runs the session on.
    pub(super) fn resume(runner: &'a Runner<W, S>, session: &'a str, input: W::Input) -> Self {
        Decide::new(runner, session, input, |given| {
            Box::pin(async move {
                let runner = given.runner;
                let control = runner.control(None);
                let result = runner
                    .decide(given.session, given.input, given.said, control)
                    .await;
                runner.after_run(given.session, &result).await;
                result
            })
        })
    }
}

impl<'a, W: Workflow, S: Store> Decide<'a, W, S, ()> {
    /// [`Runner::enqueue_input`]: records the input and marks the session runnable.
    pub(super) fn enqueue(runner: &'a Runner<W, S>, session: &'a str, input: W::Input) -> Self {
        Decide::new(runner, session, input, |given| {
            Box::pin(async move {
                let runner = given.runner;
                // An answer for a subgraph node's child is recorded on the child's session,
                // and the parent, not the child, becomes runnable: the worker that runs the
                // parent's node runs the child with it.
                let input = if W::Exec::SUBGRAPHS {
                    let target = W::Exec::input_node(&given.input);
                    match W::Exec::child_answer(given.input) {
                        Ok(answer) => {
                            let answer = downcast_answer(answer)?;
                            let (child, seq) = runner.waiting_child(given.session, target).await?;
                            answer
                                .give(runner.child_host(), child, given.said, Give::Record)
                                .await?;
                            runner.shared.store.wake(given.session, seq).await?;
                            return Ok(());
                        }
                        Err(input) => input,
                    }
                } else {
                    given.input
                };
                let control = runner.queueing(crate::store::Wake::Now);
                runner
                    .record_input(given.session, input, Some(given.said), &control)
                    .await
                    .map(drop)
            })
        })
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// `resume_with`'s work, without what a public call does once the run ended: records the
    /// input (an answer for a subgraph node's child goes to the child's session, which runs
    /// on) and runs the session on.
    pub(super) async fn decide(
        &self,
        session: &str,
        input: W::Input,
        said: Decision,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        let input = if W::Exec::SUBGRAPHS {
            let target = W::Exec::input_node(&input);
            match W::Exec::child_answer(input) {
                Ok(answer) => {
                    return self
                        .answer_child(session, target, answer, said, control)
                        .await;
                }
                Err(input) => input,
            }
        } else {
            input
        };
        let position = self
            .record_input(session, input, Some(said), &control)
            .await?;
        self.drive(Box::new(position), control).await
    }

    /// Records `input` for `session` durably and makes nothing runnable: the input of a
    /// waiting child that its parent's `enqueue_input` gave (the parent's worker runs the
    /// child). An answer for a child of this session's own subgraph node is recorded on
    /// that child in turn.
    pub(super) async fn record_answer(
        &self,
        session: &str,
        input: W::Input,
        said: Decision,
    ) -> Result<()> {
        let input = if W::Exec::SUBGRAPHS {
            let target = W::Exec::input_node(&input);
            match W::Exec::child_answer(input) {
                Ok(answer) => {
                    let answer = downcast_answer(answer)?;
                    let (child, _) = self.waiting_child(session, target).await?;
                    return answer
                        .give(self.child_host(), child, said, Give::Record)
                        .await;
                }
                Err(input) => input,
            }
        } else {
            input
        };
        self.record_input(session, input, Some(said), &Control::default())
            .await
            .map(drop)
    }
}

/// The answer for a child that `#[workflow]` built (`Execute::child_answer`).
pub(super) fn downcast_answer(answer: Box<dyn std::any::Any + Send>) -> Result<ChildAnswer> {
    answer
        .downcast::<ChildAnswer>()
        .map(|answer| *answer)
        .map_err(|_| Error::InvalidConfig("the answer for a child was not built by `#[workflow]`"))
}

impl<'a, W: Workflow, S: Store, T> Decide<'a, W, S, T> {
    fn new(
        runner: &'a Runner<W, S>,
        session: &'a str,
        input: W::Input,
        start: Start<'a, W, S, T>,
    ) -> Self {
        Decide {
            given: Some(Box::new(Given {
                runner,
                session,
                input,
                said: Decision::default(),
            })),
            start,
            call: None,
        }
    }

    /// Who gave the decision (a user name, an email, a service). Set before the first
    /// poll; afterwards it changes nothing.
    pub fn by(mut self, actor: impl Into<String>) -> Self {
        if let Some(given) = &mut self.given {
            given.said.actor = Some(actor.into());
        }
        self
    }

    /// Why. Set before the first poll; afterwards it changes nothing.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        if let Some(given) = &mut self.given {
            given.said.note = Some(note.into());
        }
        self
    }
}

impl<W: Workflow, S: Store, T> Future for Decide<'_, W, S, T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(given) = this.given.take() {
            this.call = Some((this.start)(*given));
        }
        let call = this
            .call
            .as_mut()
            .expect("a decision polled after it completed");
        let result = std::task::ready!(call.as_mut().poll(cx));
        this.call = None;
        Poll::Ready(result)
    }
}

impl Decision {
    /// The audit record of an input for `node` given with `said` (or by a plain call).
    pub(super) fn for_input(said: Option<Decision>, node: &str) -> Audit {
        said.unwrap_or_default().audit(node)
    }
}

/// What an operator's rewrite of a session's latest checkpoint changes.
enum Rewrite<T> {
    /// The status becomes `Cancelled`.
    Cancel,
    /// The state becomes this one.
    Edit(T),
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// Cancels a session: its latest checkpoint is written again with status
    /// [`Status::Cancelled`] and `audit` (actor and note, if given), and it never runs again:
    /// [`Runner::resume`] returns [`Error::Cancelled`], [`Runner::resume_with`]
    /// [`Error::NotWaiting`], and no worker claims it. A run in progress elsewhere fails at
    /// its next checkpoint ([`Error::Conflict`]) and writes nothing more. Its checkpoints stay
    /// readable (`state`, `history`, `fork`) until it is [deleted](Runner::delete).
    ///
    /// A session whose subgraph nodes started child sessions cancels them too, with the
    /// same `audit`, before itself: every child (found by the parent the store recorded
    /// for it, see [`SessionFilter::parent`](crate::store::SessionFilter::parent)) that has
    /// not completed or been cancelled, and their children in turn.
    ///
    /// Returns the cancelled session's snapshot. Fails with [`Error::SessionNotFound`], or
    /// [`Error::Refused`] for a session that has completed or is cancelled already (its
    /// children are then left as they are).
    ///
    /// ```
    /// # use graph_runtime::prelude::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
    /// # pub struct Order { pub approved: bool }
    /// # #[workflow(state = Order)]
    /// # pub mod order {
    /// #     use super::*;
    /// #     edge!(START -> review);
    /// #     edge!(review -> END);
    /// #     #[node(interrupt)]
    /// #     async fn review(o: &mut Order, ok: bool) { o.approved = ok; }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
    /// use graph_runtime::Status;
    /// use graph_runtime::store::{Audit, AuditKind};
    /// let runner = Runner::new(order::Workflow, MemoryStore::new());
    /// runner.start("o-1", Order::default()).await?;
    /// let snapshot = runner.cancel("o-1", Audit::new(AuditKind::Cancelled).by("bob")).await?;
    /// assert_eq!(snapshot.status, Status::Cancelled);
    /// assert!(matches!(runner.resume("o-1").await, Err(graph_runtime::Error::Cancelled(_))));
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, session: &str, audit: Audit) -> Result<Snapshot<W::State>> {
        self.ready(&[session])?;
        let loaded = self.load_for_operator(session).await?;
        if loaded.is_completed() || loaded.status == crate::store::status_code::CANCELLED {
            return Err(Error::Refused {
                session: session.to_owned(),
                action: "cancel",
                reason: describe(&loaded),
            });
        }
        let audit = Audit {
            kind: AuditKind::Cancelled,
            ..audit
        };
        // Its children first (and theirs, through their own `cancel`): should one of them
        // fail, the parent is not cancelled yet, and cancelling it again does the rest.
        if W::Exec::SUBGRAPHS {
            self.cancel_children(session, &audit).await?;
        }
        self.rewrite(session, loaded, Rewrite::Cancel, audit, &Control::default())
            .await
    }

    /// Replaces the state of a session that waits or has failed, as an operator's
    /// correction (LangGraph's `update_state`): its latest checkpoint is written again with
    /// `state` at the same cursor and status, if the session's latest checkpoint is still
    /// `expected_seq` (compare-and-swap: [`Error::Conflict`] if it moved on meanwhile), with
    /// `audit` (an [`AuditKind::Edit`] describing the change, its actor and note) kept in
    /// its history. A deadline the session waits for stays as it was.
    ///
    /// Fails with [`Error::Refused`] for a session that runs (it may be in the middle of a
    /// step: wait for it to stop), has completed or is cancelled. Returns the new snapshot.
    pub async fn edit(
        &self,
        session: &str,
        expected_seq: u64,
        state: W::State,
        audit: Audit,
    ) -> Result<Snapshot<W::State>> {
        self.ready(&[session])?;
        let loaded = self.load_for_operator(session).await?;
        if loaded.seq != expected_seq {
            return Err(Error::Conflict {
                session: session.to_owned(),
                expected: Some(expected_seq),
                found: Some(loaded.seq),
            });
        }
        let failed = loaded.is_running()
            && self
                .shared
                .store
                .session(session)
                .await?
                .is_some_and(|record| record.status == Status::Failed && record.seq == loaded.seq);
        if !(loaded.is_waiting() || failed) {
            return Err(Error::Refused {
                session: session.to_owned(),
                action: "edit",
                reason: describe(&loaded),
            });
        }
        self.rewrite(
            session,
            loaded,
            Rewrite::Edit(state),
            audit,
            &Control::default(),
        )
        .await
    }

    /// Records that a run of `session` failed with `error` at `node` (`None`: at the latest
    /// checkpoint's cursor, for a step limit): the session stays at its latest checkpoint
    /// (a failed step leaves the chain as it was), and the store keeps the failure beside it
    /// ([`Store::record_failure`]), so that session queries list it as failed and its history
    /// shows the error. Called on the failure path only; a failure to record it is logged,
    /// not returned (the run's own error is what the caller needs).
    pub(super) async fn record_failure(&self, session: &str, node: Option<&str>, error: &Error) {
        let recorded = async {
            let Some(latest) = self.shared.store.latest(session).await? else {
                return Ok(false);
            };
            let audit = Audit::new(AuditKind::Failed {
                node: node.unwrap_or(&latest.node).to_owned(),
                error: report(error),
            });
            self.shared
                .store
                .record_failure(session, latest.seq, &audit)
                .await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(session, error = %report(&e), "recording the failure in the session's history failed");
        }
    }

    /// The latest checkpoint of `session` read to rewrite it: decoded for running on (the
    /// graph must be this one or one it accepts); [`Error::SessionNotFound`] if there is none.
    async fn load_for_operator(&self, session: &str) -> Result<Loaded<W>> {
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        match self.shared.store.latest(session).await? {
            None => Err(Error::SessionNotFound(session.to_owned())),
            Some(checkpoint) => self.decode(session, checkpoint, Purpose::Run).await,
        }
    }

    /// Writes `loaded` again as the next checkpoint, changed as `rewrite` says, with `audit`.
    async fn rewrite(
        &self,
        session: &str,
        mut loaded: Loaded<W>,
        rewrite: Rewrite<W::State>,
        audit: Audit,
        control: &Control,
    ) -> Result<Snapshot<W::State>> {
        // The writer of the call's control: a worker's failure is written under its lease.
        let mut writer = self.writer_at(session, control, &mut loaded);
        let (status, frontier) = match (&loaded.frontier, loaded.cursor) {
            (Some(frontier), Some(join)) => {
                let status = scheduler::region_status::<W>(loaded.status(), join, &frontier.slots);
                if status.waiting_node().is_some() {
                    let waiting = waiting_nodes::<W>(join, &frontier.slots);
                    if waiting.len() > 1 {
                        writer.waiting_next(waiting);
                    }
                }
                (status, Some(frontier.as_ref()))
            }
            _ => (loaded.status(), None),
        };
        let (status, edited) = match rewrite {
            Rewrite::Cancel => (Status::Cancelled, false),
            Rewrite::Edit(state) => {
                loaded.state = state;
                (status, true)
            }
        };
        let seq = loaded.seq + 1;
        let checkpoint = writer.encode::<W>(
            seq,
            status.clone(),
            Cow::Owned(loaded.node.clone()),
            &loaded.state,
            loaded.input.as_ref(),
            loaded.failure.as_ref(),
            frontier,
        )?;
        if !matches!(status, Status::Cancelled) {
            writer.keep_wake_next();
        }
        writer.audit_next(audit);
        writer
            .append(&self.shared.store, checkpoint, control)
            .await?;
        if edited {
            // The snapshot of what was written, read back: what a reader sees.
            return self
                .state(session)
                .await?
                .ok_or_else(|| Error::SessionNotFound(session.to_owned()));
        }
        loaded.seq = seq;
        loaded.status = status.code();
        Ok(Self::snapshot(loaded))
    }
}

/// Where a loaded session stands, for an error message.
fn describe<W: Workflow>(loaded: &Loaded<W>) -> String {
    match loaded.status() {
        Status::Waiting { .. } => format!("it waits at `{}`", loaded.node),
        Status::Completed => "it has completed".to_owned(),
        Status::Cancelled => "it was cancelled".to_owned(),
        _ => format!(
            "it is running at `{}` (wait until it stops, or cancel it)",
            loaded.node
        ),
    }
}
