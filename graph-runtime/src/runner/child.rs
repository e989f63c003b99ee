//! Subgraphs: a node that runs another workflow as a durable child session
//! (`#[node(subgraph = m)]` with a [`Child<m::Workflow>`](Child) parameter).
//!
//! The child is a session of its own in its parent's store, run by a [`Runner`] of the child
//! workflow with its parent runner's configuration. Its id is derived from the step that runs
//! it (see [`Child::session_id`]), so every re-run of that step — a retry, or a resume after a
//! crash — names the same child, and [`Child::run`] never starts it twice.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use super::config::Config;
use super::operate::Decision;
use super::{Outcome, Runner, Shared};
use crate::events::{EventSink, subgraph_path};
use crate::execute::Execute;
use crate::schema::Fingerprint;
use crate::session_id::MAX_SESSION_ID_BYTES;
use crate::store::{
    Audit, ErasedStore, HoldsStore, SessionFilter, SessionRecord, StatusKind, Store,
};
use crate::{Error, NodeCtx, Result, Workflow};

/// What a parent's runner lends the nodes of its graph that run subgraphs: its store (type
/// erased) and its configuration. Built once per run, and only for graphs that have subgraph
/// nodes.
pub(crate) struct ChildHost {
    store: ErasedStore,
    config: Config,
    /// The child graphs the parent runner's store has recorded (shared by its clones).
    recorded: RecordedGraphs,
    /// The path a child of the node that just ran waits at (`research/review`), set by
    /// [`Child::run`] when its child stopped at an interrupt, taken by the step loop.
    interrupted: Mutex<Option<&'static str>>,
    /// Whether the children of map items are given to workers rather than run here: the
    /// parent runs under a worker's lease.
    spread: bool,
    /// Set by [`Child::run`] when it gave its child to the workers (or found it running
    /// there), taken by the region.
    running_elsewhere: std::sync::atomic::AtomicBool,
}

impl ChildHost {
    /// Takes the path the child of the node that just ran waits at, if it waits.
    pub(crate) fn take_interrupted(&self) -> Option<&'static str> {
        self.interrupted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether the child of the node that just ran waits (its failure is then no failure:
    /// it is not retried).
    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Takes whether the child of the map item that just ran runs on a worker.
    pub(crate) fn take_running_elsewhere(&self) -> bool {
        self.running_elsewhere
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    fn set_interrupted(&self, path: &'static str) {
        *self
            .interrupted
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(path);
    }
}

/// The child workflows (name and graph hash) whose graph version a runner's store has
/// recorded: a child runner is made for each call of [`Child::run`], and without this each
/// would record its graph again before its first write (a store round trip per child on
/// SQLite and PostgreSQL). Shared by the parent runner, its clones and its children's
/// runners (one store); a handful of entries, so a `Vec`.
#[derive(Clone, Default)]
pub(crate) struct RecordedGraphs(Arc<Mutex<Vec<(&'static str, u64)>>>);

impl RecordedGraphs {
    fn contains<W: Workflow>(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(W::NAME, W::GRAPH_HASH))
    }

    fn insert<W: Workflow>(&self) {
        let mut graphs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !graphs.contains(&(W::NAME, W::GRAPH_HASH)) {
            graphs.push((W::NAME, W::GRAPH_HASH));
        }
    }
}

/// `{node}/{child}`, the path of a wait inside the child of the subgraph node `node`, as a
/// `&'static str` (what [`Outcome::Interrupted`] and `Snapshot::waiting` name a node by),
/// allocated once per distinct path (see [`subgraph_path`]).
pub(crate) fn wait_path(node: &str, child: &str) -> &'static str {
    subgraph_path(Some(node), child)
}

impl std::fmt::Debug for ChildHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHost")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<W: Workflow, S: Store> HoldsStore for Shared<W, S> {
    type Store = S;
    fn store(&self) -> &S {
        &self.store
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The host of this runner's child sessions: its store and configuration.
    pub(super) fn child_host(&self) -> Arc<ChildHost> {
        self.child_host_spread(false)
    }

    /// The host of this runner's child sessions; with `spread`, the children of map items
    /// are given to workers (the parent runs under a worker's lease).
    pub(super) fn child_host_spread(&self, spread: bool) -> Arc<ChildHost> {
        Arc::new(ChildHost {
            store: ErasedStore(Arc::clone(&self.shared) as _),
            config: self.config.clone(),
            recorded: self.shared.children_recorded.clone(),
            interrupted: Mutex::new(None),
            spread,
            running_elsewhere: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// This runner's store (type erased) and configuration: what the runners of its child
    /// workflows run with.
    pub(crate) fn erased_parts(&self) -> (ErasedStore, Config, RecordedGraphs) {
        (
            ErasedStore(Arc::clone(&self.shared) as _),
            self.config.clone(),
            self.shared.children_recorded.clone(),
        )
    }

    /// Where the child of a subgraph node waits: the parent's checkpoint `seq` waits at the
    /// subgraph node `node` (a non-interrupt node) for the child its step started, whose
    /// latest checkpoint says where it waits. `None` when that child does not wait (it was
    /// answered directly, or it does not exist).
    pub(super) async fn child_waits_at(
        &self,
        session: &str,
        node: &str,
        seq: u64,
    ) -> Result<Option<&'static str>> {
        let child = child_session_id(&format!("{session}/{node}/{seq}"));
        let latest = self.shared.store.latest(&child).await?;
        Ok(latest
            .as_ref()
            .and_then(|checkpoint| checkpoint.status.waiting_node())
            .map(|at| wait_path(node, at)))
    }

    /// Where the children of the map items waiting in the region joined at `join` wait
    /// (one entry per slot: the path, `assess/check`, of a waiting item whose child waits;
    /// `None` for any other slot). Reads the latest checkpoint of each waiting item's child.
    pub(super) async fn region_child_paths(
        &self,
        session: &str,
        join: super::Cursor<W>,
        frontier: &super::position::Frontier,
    ) -> Result<Vec<Option<&'static str>>> {
        let mut paths = vec![None; frontier.slots.len()];
        for (index, slot) in frontier.slots.iter().enumerate() {
            if !matches!(slot, crate::execute::Slot::Waiting)
                || !super::scheduler::child_waits::<W>(join, index)
            {
                continue;
            }
            let Some(node) = W::Exec::region(join)
                .and_then(|region| super::scheduler::branch_of(region, index))
                .map(|branch| W::Exec::spec(branch).name)
            else {
                continue;
            };
            let child = map_child_id(session, node, frontier.opened, index);
            let latest = self.shared.store.latest(&child).await?;
            paths[index] = latest
                .as_ref()
                .and_then(|checkpoint| checkpoint.status.waiting_node())
                .map(|at| wait_path(node, at));
        }
        Ok(paths)
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The status of each existing child of the map node `node` whose region step `opened`
    /// opened in `session`, by item: one range of the store's session index (a page per
    /// 10,000 children), not a read per child. Children whose id had to be shortened are not
    /// in that range (they never run on workers).
    pub(super) async fn map_children(
        &self,
        session: &str,
        node: &str,
        opened: u64,
        items: usize,
    ) -> Result<std::collections::HashMap<usize, crate::Status>> {
        let prefix = format!("{session}/{node}/{opened}/");
        let mut found = std::collections::HashMap::new();
        let mut filter = crate::store::SessionFilter::new();
        filter.after = Some(prefix.clone());
        filter.limit = items.clamp(1, crate::store::SessionFilter::MAX_LIMIT);
        loop {
            let page = self.shared.store.sessions(&filter).await?;
            let mut past = false;
            for record in page.sessions {
                let Some(item) = record.session.strip_prefix(&prefix) else {
                    past = true;
                    break;
                };
                if let Ok(item) = item.parse::<usize>() {
                    found.insert(item, record.status);
                }
            }
            match page.next {
                Some(next) if !past && found.len() < items => filter.after = Some(next),
                _ => return Ok(found),
            }
        }
    }
}

/// The child session of item `item` of the map node `node` whose region step `opened`
/// opened, in the parent `session`.
pub(crate) fn map_child_id(session: &str, node: &str, opened: u64, item: usize) -> String {
    child_session_id(&format!("{session}/{node}/{opened}/{item}"))
}

/// The child session a subgraph node runs: the parameter `child: Child<m::Workflow>` of a
/// node marked `#[node(subgraph = m)]`, which the generated code builds for each run of the
/// node. `W` is the child workflow.
///
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
/// pub struct Question { pub text: String, pub summary: String }
///
/// #[workflow(state = Question)]
/// pub mod research {
///     use super::*;
///     edge!(START -> search);
///     edge!(search -> END);
///     #[node]
///     async fn search(q: &mut Question) { q.summary = format!("found: {}", q.text); }
/// }
///
/// #[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
/// pub struct Ticket { pub text: String, pub notes: String }
///
/// #[workflow(state = Ticket)]
/// pub mod support {
///     use super::*;
///     edge!(START -> look_up);
///     edge!(look_up -> END);
///
///     #[node(subgraph = research)]
///     async fn look_up(t: &mut Ticket, child: Child<research::Workflow>) -> Result<(), NodeError> {
///         let found = child.run(Question { text: t.text.clone(), ..Question::default() }).await?;
///         t.notes = found.summary;
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), graph_runtime::Error> {
/// let store = MemoryStore::new();
/// let parent = Runner::new(support::Workflow, store.clone());
/// let ticket = Ticket { text: "refund".into(), ..Ticket::default() };
/// let done = parent.start("t-1", ticket).await?.into_state();
/// assert_eq!(done.notes, "found: refund");
///
/// // The child is a session of its own, at an id derived from its parent's step.
/// let child = Runner::new(research::Workflow, store);
/// let snapshot = child.state("t-1/look_up/1").await?.expect("the child session");
/// assert_eq!(snapshot.state.summary, "found: refund");
/// # Ok(()) }
/// ```
pub struct Child<W: Workflow> {
    workflow: W,
    session: String,
    /// The parent's session, which its store records as the child's parent.
    parent: Arc<str>,
    /// The subgraph node that runs it.
    node: &'static str,
    /// Whether it is the child of a map item.
    item: bool,
    host: Option<Arc<ChildHost>>,
    /// The parent run's listener, if it has one: the child's events go there, tagged.
    events: Option<EventSink>,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> std::fmt::Debug for Child<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("workflow", &W::NAME)
            .field("session", &self.session)
            .finish()
    }
}

impl<W: Workflow> Child<W> {
    /// The child of the step `ctx` runs (built by the code `#[workflow]` generates for a
    /// subgraph node, through `__private::child`).
    pub(crate) fn new(ctx: &NodeCtx, workflow: W) -> Self {
        let key = ctx.idempotency_key();
        Child {
            workflow,
            // The key is the id unless it is too long: no second allocation for the id.
            session: if key.len() <= MAX_SESSION_ID_BYTES {
                key
            } else {
                child_session_id(&key)
            },
            parent: Arc::from(ctx.session_id()),
            node: ctx.node(),
            item: ctx.item_index().is_some(),
            host: ctx.child_host().cloned(),
            events: ctx.events().map(|events| events.child(ctx.node())),
            _workflow: PhantomData,
        }
    }

    /// The id of the child session: its parent's session, the node and the sequence number of
    /// the step that runs it, `{parent}/{node}/{seq}` (what
    /// [`NodeCtx::idempotency_key`] returns), so it is the same for every attempt and every
    /// re-run of that step. Read its state, history or inspector page under this id with a
    /// [`Runner`] of the child workflow.
    ///
    /// When that would be longer than [`MAX_SESSION_ID_BYTES`], the id is its first 238
    /// bytes (cut at a character boundary), `~` and the 16 hex digits of a 64-bit FNV-1a hash
    /// of the whole `{parent}/{node}/{seq}`: still stable, still readable, at most 255 bytes.
    pub fn session_id(&self) -> &str {
        &self.session
    }

    /// Runs the child session to its end and returns its final state.
    ///
    /// The first call starts the child with `initial`. When the child session already exists
    /// (this step ran before: a retry, or a resume after a crash), `initial` is not used and
    /// the child is never started again: a completed child returns its stored final state, an
    /// unfinished one (a crash, or a failed node) is resumed from its last checkpoint, so none
    /// of its completed nodes runs twice.
    ///
    /// The child runs in its parent's store, with its parent runner's checkpoint policy,
    /// retention, step limit, graph-change policy and cancellation token.
    ///
    /// # Errors
    ///
    /// The child's own error when it fails (for instance [`Error::Node`] naming the child's
    /// node): the parent's node fails with it, and its `retry` continues the child.
    /// [`Error::ChildInterrupted`] when the child stops at an interrupt node: return it from
    /// the node (with `?`), and the parent waits too. Its run returns
    /// [`Outcome::Interrupted`] naming the path (`research/review`: the subgraph node, then
    /// the child's node), and its checkpoint waits at the subgraph node, with the state from
    /// before the node ran (the node's retries and error edges do not apply to a wait).
    /// Once the child is answered (its own [`Runner::resume_with`] at
    /// [`Child::session_id`], or the parent's with the parent's `Input` variant of this
    /// node), resuming the parent runs the node again, and this call returns the child's
    /// final state. A child answered on its own (`resume_with`, `resume`, or a
    /// [`Worker`](crate::Worker) after `enqueue_input`) that then ends makes its waiting
    /// parent runnable for workers, so that a worker resumes it without anyone calling
    /// `resume`. [`Error::InvalidConfig`] when the node runs outside a runner (its context
    /// has no store).
    ///
    /// While the parent's run has a listener ([`RunHandle::events`](crate::RunHandle::events)),
    /// the child's events reach it as [`Event::Child`](crate::Event::Child), tagged with
    /// the subgraph node's name.
    pub async fn run(self, initial: W::State) -> Result<W::State> {
        let Some(host) = self.host else {
            return Err(Error::InvalidConfig(
                "a subgraph node ran without its runner: `Child::run` needs the context the runner gives the node",
            ));
        };
        let runner = child_runner(&host, self.workflow);
        // Under a worker, a map item's child goes to any worker (unless its id had to be
        // shortened: it then runs here).
        if host.spread && self.item && !self.session.contains('~') {
            let result = Self::run_elsewhere(
                &host,
                &runner,
                self.node,
                self.session,
                &self.parent,
                initial,
            )
            .await;
            remember_graph(&host, &runner);
            return result;
        }
        // The store records the parent with the child's first checkpoint; the child's events
        // go to the parent's listener, tagged with the path.
        let mut control = runner.control(self.events.clone());
        control.parent = Some(self.parent);
        let started = Box::pin(runner.start_with(&self.session, initial, control)).await;
        let outcome = match started {
            Err(Error::SessionExists(_)) => {
                let control = runner.control(self.events);
                Box::pin(runner.resume_inner(&self.session, control)).await
            }
            other => other,
        };
        remember_graph(&host, &runner);
        let outcome = outcome?;
        match outcome {
            Outcome::Completed(state) => Ok(state),
            Outcome::Interrupted { node, .. } => {
                host.set_interrupted(wait_path(self.node, node));
                Err(Error::ChildInterrupted {
                    child: self.session,
                    node,
                })
            }
        }
    }
}

impl<W: Workflow> Child<W> {
    /// [`Child::run`] for a map item's child under a worker: enqueues the child for any
    /// worker the first time; afterwards returns its final state once it has completed,
    /// says where it waits when it waits for an input, and otherwise that it still runs.
    async fn run_elsewhere(
        host: &ChildHost,
        runner: &Runner<W, ErasedStore>,
        node: &'static str,
        session: String,
        parent: &Arc<str>,
        initial: W::State,
    ) -> Result<W::State> {
        match runner
            .enqueue_child_of(&session, initial, Some(parent))
            .await
        {
            Ok(()) => {}
            Err(Error::SessionExists(_)) => {
                let Some(snapshot) = runner.state(&session).await? else {
                    // Deleted between the two calls: it runs no more.
                    return Err(Error::SessionNotFound(session));
                };
                match snapshot.status {
                    crate::Status::Completed => return Ok(snapshot.state),
                    crate::Status::Cancelled => return Err(Error::Cancelled(session)),
                    crate::Status::Waiting { .. } => {
                        if let Some(&at) = snapshot.waiting.first() {
                            host.set_interrupted(wait_path(node, at));
                            return Err(Error::ChildInterrupted {
                                child: session,
                                node: at,
                            });
                        }
                    }
                    _ => {}
                }
            }
            Err(e) => return Err(e),
        }
        host.running_elsewhere
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Err(Error::ChildRunning { child: session })
    }
}

/// The answer for a waiting child, given to its parent (`resume_with(parent,
/// Input::Research(child_input))`, or `enqueue_input`): the child workflow's own calls on
/// the answer, under the parent's store and configuration, behind a type-erased box that
/// `#[workflow]` builds (`__private::child_answer`).
pub(crate) struct ChildAnswer {
    #[allow(clippy::type_complexity)]
    answer: Box<
        dyn FnOnce(
                Arc<ChildHost>,
                String,
                Decision,
                Give,
            )
                -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
            + Send,
    >,
}

/// What [`ChildAnswer::give`] does with the child's input.
#[derive(Debug)]
pub(super) enum Give {
    /// Records it and runs the child on until it completes or waits again
    /// (`resume_with` through the parent, which then resumes the parent itself), sending
    /// the child's events to the parent run's listener, if any (a sink that tags them).
    Run(Option<EventSink>),
    /// Only records it, durably, on the child's session (for an answer that reaches through
    /// the child to a child of its own, on the innermost session, the one that waits),
    /// without making any of them runnable: `enqueue_input` through the parent, whose
    /// worker runs the child when it runs the parent's node.
    Record,
}

impl ChildAnswer {
    /// The answer `input` for a child of workflow `workflow`.
    pub(crate) fn new<W: Workflow>(workflow: W, input: W::Input) -> Self {
        ChildAnswer {
            answer: Box::new(move |host, child, said, give| {
                Box::pin(async move {
                    let runner = child_runner(&host, workflow);
                    let result = match give {
                        Give::Run(events) => {
                            let control = runner.control(events);
                            Box::pin(runner.decide(&child, input, said, control))
                                .await
                                .map(drop)
                        }
                        Give::Record => Box::pin(runner.record_answer(&child, input, said)).await,
                    };
                    remember_graph(&host, &runner);
                    result
                })
            }),
        }
    }

    /// Gives the child session `child` its input, said as `said` (who, why): runs it on or
    /// only records it, as `give` says.
    pub(super) async fn give(
        self,
        host: Arc<ChildHost>,
        child: String,
        said: Decision,
        give: Give,
    ) -> Result<()> {
        (self.answer)(host, child, said, give).await
    }
}

/// What a parent's runner needs to cancel the children of one of its subgraph nodes: a
/// runner of the child workflow, behind a type-erased box that `#[workflow]` builds for each
/// subgraph node (`__private::child_workflow`).
pub(crate) struct ChildWorkflow {
    /// The child workflow's name ([`Workflow::NAME`]), as its sessions record it.
    name: &'static str,
    #[allow(clippy::type_complexity)]
    cancel: fn(
        Arc<ChildHost>,
        String,
        Audit,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>,
}

impl ChildWorkflow {
    /// What cancelling the children of workflow `W` needs.
    pub(crate) fn of<W: Workflow + Default>() -> Self {
        ChildWorkflow {
            name: W::NAME,
            cancel: |host, child, audit| {
                Box::pin(async move {
                    let runner = child_runner(&host, W::default());
                    Box::pin(runner.cancel(&child, audit)).await.map(drop)
                })
            },
        }
    }
}

impl std::fmt::Debug for ChildWorkflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWorkflow")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Every child session of `parent` (what its subgraph nodes started, as the store recorded
/// their parent, see [`Append::parent`](crate::store::Append::parent)): every page of
/// [`SessionFilter::parent`]. Not their children in turn.
pub(super) async fn children_of<S: Store>(store: &S, parent: &str) -> Result<Vec<SessionRecord>> {
    let mut filter = SessionFilter::new()
        .parent(parent)
        .limit(SessionFilter::MAX_LIMIT);
    let mut children = Vec::new();
    loop {
        let page = store.sessions(&filter).await?;
        children.extend(page.sessions);
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return Ok(children),
        }
    }
}

/// Whether `id` can be the id of a child session at all: every id [`child_session_id`]
/// makes holds a `/` (`{parent}/{node}/{seq}`) or, shortened, a `~` before its hash. A
/// test that costs nothing, so that the end of a run of an ordinary session asks the store
/// nothing more. (Only a necessary condition: the store's record of the child's parent
/// decides.)
fn may_be_a_child(id: &str) -> bool {
    id.bytes().any(|b| b == b'/' || b == b'~')
}

/// Wakes the parent of the child session `child` when the parent waits for it: the last
/// step of a child's life that its parent needs to hear about.
///
/// Call it after a run of `child` ended — the child completed, or failed (its store record
/// says [`StatusKind::Completed`] or [`StatusKind::Failed`]) — when that run was not the
/// parent's own (a parent's node that runs its child takes the child's end at once). It
/// finds the parent from the store's record of the child
/// ([`SessionRecord::parent`](crate::store::SessionRecord::parent), never from the child's
/// id, which may be shortened), checks that the parent's latest checkpoint waits at a
/// subgraph node for this very child (the checkpoint `seq` at node `n` waits for the child
/// `{parent}/{n}/{seq}`, or for a map's item `{parent}/{n}/{seq}/{item}`), and makes it
/// runnable with [`Store::wake`] at that checkpoint, so that a [`Worker`](crate::Worker)
/// claims it, runs the node again, and `Child::run` returns the child's end. Waking a
/// parent that nobody runs with workers is harmless: its next checkpoint that waits or
/// completes clears the wake time.
///
/// Returns whether a parent was woken. A child without a parent, a child still running or
/// waiting, and a parent that does not wait for this child (it moved on, was cancelled,
/// or waits for another step's child) wake nothing.
///
/// For a map of children, the caller decides when the last item ended and calls this with
/// any of them (each names the parent's waiting checkpoint the same way).
pub(crate) async fn wake_waiting_parent<S: Store>(store: &S, child: &str) -> Result<bool> {
    if !may_be_a_child(child) {
        return Ok(false);
    }
    let Some(record) = store.session(child).await? else {
        return Ok(false);
    };
    let ended = matches!(
        record.status.kind(),
        StatusKind::Completed | StatusKind::Failed
    );
    let Some(parent) = record.parent.filter(|_| ended) else {
        return Ok(false);
    };
    let Some(waiting) = store.session(&parent).await? else {
        return Ok(false);
    };
    if !waits_for(&parent, &waiting.node, waiting.seq, child)
        && !waits_in_map(&parent, &waiting.waiting, child)
    {
        return Ok(false);
    }
    // Already runnable (another child of its map woke it, and no run has taken it yet):
    // nothing to write. (A wake-up set by the database's clock a little ahead of this
    // one's is taken as due: it comes in a moment anyway.)
    if waiting
        .wake_at
        .is_some_and(|at| at <= std::time::SystemTime::now())
    {
        return Ok(true);
    }
    let woken = store.wake(&parent, waiting.seq).await?;
    if woken {
        tracing::debug!(parent, child, "the child ended: its parent is runnable");
    }
    Ok(woken)
}

/// Whether the checkpoint `seq` of `parent`, at node `node`, is the step that started the
/// child `child` (or, in a map, one of its items, `{key}/{item}`).
///
/// A map item's id that was shortened keeps only its first bytes and a hash: it is taken
/// to be the step's when those bytes are the step's key and the start of an item's suffix,
/// or, when the key itself was cut, the key's first bytes (so for a parent id of some 220
/// bytes or more, any shortened child of the parent passes). The parent's record of the
/// child is what makes it a child at all; this check only keeps a child of an earlier step
/// from waking a parent that now waits for another one, and a wake it lets through is
/// harmless: the parent runs its node again and waits again.
fn waits_for(parent: &str, node: &str, seq: u64, child: &str) -> bool {
    let key = format!("{parent}/{node}/{seq}");
    if child_session_id(&key) == child {
        return true;
    }
    let is_item = |rest: &str, whole: bool| {
        rest.strip_prefix('/').is_some_and(|item| {
            (!whole || !item.is_empty()) && item.bytes().all(|b| b.is_ascii_digit())
        })
    };
    if let Some(rest) = child.strip_prefix(key.as_str()) {
        return is_item(rest, true);
    }
    // Shortened: `{first bytes}~{16 hex digits}`.
    let Some((kept, hash)) = child.rsplit_once('~') else {
        return false;
    };
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    match kept.strip_prefix(key.as_str()) {
        Some(rest) => is_item(rest, false),
        // The key itself was cut: an item of this step keeps the key's first bytes.
        None => kept.len() >= SHORT_PREFIX_BYTES - 3 && key.starts_with(kept),
    }
}

/// Whether `child` is an item's child of a map that `parent` waits in: its id is
/// `{parent}/{map node}/{opened}/{item}` and the parent's record waits at that map node (for
/// children that run on workers) or at a path inside it (`assess/check`). A parent waiting
/// in a region saves its waits under the join's name and later sequence numbers, so the
/// step's own key cannot be compared; a wake let through for an item of an earlier run of
/// the same map node (in a loop) is harmless: the parent reads its children and waits again.
fn waits_in_map(parent: &str, waiting: &[String], child: &str) -> bool {
    let Some(rest) = child
        .strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return false;
    };
    let mut parts = rest.split('/');
    let digits =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let Some(node) = parts.next().filter(|n| !n.is_empty()) else {
        return false;
    };
    digits(parts.next())
        && digits(parts.next())
        && parts.next().is_none()
        && waiting.iter().any(|at| {
            at == node
                || at
                    .strip_prefix(node)
                    .is_some_and(|inside| inside.starts_with('/'))
        })
}

/// The child session that the checkpoint `checkpoint` of `session` waits for, if it waits
/// at a subgraph node: its status then names a path below its cursor (`research/review` at
/// `research`; a region's wait names a branch, never a path).
pub(crate) fn waited_child(
    session: &str,
    checkpoint: &crate::store::CheckpointMeta,
) -> Option<String> {
    let path = checkpoint.status.waiting_node()?;
    let below = path
        .strip_prefix(checkpoint.node.as_str())
        .is_some_and(|rest| rest.starts_with('/'));
    below.then(|| child_session_id(&format!("{session}/{}/{}", checkpoint.node, checkpoint.seq)))
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// The child session that `session` waits for at the subgraph node `target`, and the
    /// sequence number of the checkpoint that waits: checks that the session's latest
    /// checkpoint waits there ([`Error::NotWaiting`] otherwise, naming where it stands).
    pub(super) async fn waiting_child(
        &self,
        session: &str,
        target: super::Cursor<W>,
    ) -> Result<(String, u64)> {
        self.ready(&[session])?;
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        let target_name = W::Exec::spec(target).name;
        let loaded = self.load_latest(session).await?;
        // A map of children: the answer does not say which item's child it is for.
        if let (Some(frontier), Some(join)) = (&loaded.frontier, loaded.cursor)
            && loaded.is_waiting()
        {
            let children: Vec<String> = W::Exec::region(join)
                .map(|region| {
                    (0..frontier.slots.len())
                        .filter(|&i| {
                            frontier.slots[i] == crate::execute::Slot::Waiting
                                && super::scheduler::branch_of(region, i) == Some(target)
                        })
                        .map(|i| map_child_id(session, target_name, frontier.opened, i))
                        .collect()
                })
                .unwrap_or_default();
            if !children.is_empty() {
                let shown: Vec<String> =
                    children.iter().take(5).map(|c| format!("`{c}`")).collect();
                let more = match children.len() {
                    n if n > 5 => format!(" and {} more", n - 5),
                    _ => String::new(),
                };
                return Err(Error::Refused {
                    session: session.to_owned(),
                    action: "answer",
                    reason: format!(
                        "`{target_name}` runs a child per item, and {} of them wait ({}{more}): answer each child session with its own runner's `resume_with` or `enqueue_input`, then resume this session (under workers, a child that ends wakes it)",
                        children.len(),
                        shown.join(", ")
                    ),
                });
            }
        }
        if !loaded.is_waiting() || loaded.frontier.is_some() || loaded.cursor != Some(target) {
            let actual = match loaded.status() {
                crate::Status::Waiting { .. } => format!("it waits at `{}`", loaded.node),
                crate::Status::Completed => "it has completed".to_owned(),
                crate::Status::Cancelled => "it was cancelled".to_owned(),
                _ => format!("it is running at `{}`", loaded.node),
            };
            return Err(Error::NotWaiting {
                session: session.to_owned(),
                node: target_name,
                actual,
            });
        }
        let child = child_session_id(&format!("{session}/{target_name}/{}", loaded.seq));
        Ok((child, loaded.seq))
    }

    /// What a public call that ran `session` does once the run ended: a child session that
    /// completed or failed wakes the parent waiting for it ([`wake_waiting_parent`]). A
    /// failure to do so is logged, not returned: the run's own result is what the caller
    /// needs, and `resume` on the parent still takes the child's end.
    ///
    /// (The future does not hold `result`: the state in it need not be `Sync`.)
    pub(super) fn after_run<'a, T: RunEnd>(
        &'a self,
        session: &'a str,
        result: &Result<T>,
    ) -> impl std::future::Future<Output = ()> + Send + 'a {
        let ended = match result {
            Ok(outcome) => outcome.completed(),
            Err(Error::Node { .. } | Error::StepLimit { .. }) => true,
            Err(_) => false,
        };
        async move {
            if !ended || !may_be_a_child(session) {
                return;
            }
            if let Err(error) = wake_waiting_parent(&self.shared.store, session).await {
                tracing::warn!(session, error = %crate::error::report(&error), "waking the parent of a child that ended failed");
            }
        }
    }

    /// Cancels every child session of `parent` that has not ended (and, through the child
    /// workflow's own `cancel`, their children), with `audit`. A child of a workflow none
    /// of this graph's subgraph nodes runs (a session of an older graph) is cancelled by
    /// none: it is reported as [`Error::Refused`].
    pub(super) async fn cancel_children(&self, parent: &str, audit: &Audit) -> Result<()> {
        let children = children_of(&self.shared.store, parent).await?;
        if children.is_empty() {
            return Ok(());
        }
        let workflows: Vec<ChildWorkflow> = W::Exec::child_workflows()
            .into_iter()
            .filter_map(|workflow| workflow.downcast::<ChildWorkflow>().ok().map(|w| *w))
            .collect();
        let host = self.child_host();
        for child in children {
            if child.status.is_final() {
                continue;
            }
            let Some(workflow) = workflows
                .iter()
                .find(|w| child.workflow.as_deref() == Some(w.name))
            else {
                return Err(Error::Refused {
                    session: parent.to_owned(),
                    action: "cancel",
                    reason: format!(
                        "its child session `{}` is of workflow `{}`, which none of its subgraph nodes runs",
                        child.session,
                        child.workflow.as_deref().unwrap_or("(unknown)")
                    ),
                });
            };
            match (workflow.cancel)(Arc::clone(&host), child.session.clone(), audit.clone()).await {
                // Ended or cancelled meanwhile: nothing left to do.
                Ok(()) | Err(Error::Refused { .. } | Error::SessionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A run's result that can say whether the run completed (what [`Runner::after_run`]
/// reads).
pub(super) trait RunEnd {
    /// Whether the session completed.
    fn completed(&self) -> bool;
}

impl<T> RunEnd for Outcome<T> {
    fn completed(&self) -> bool {
        matches!(self, Outcome::Completed(_))
    }
}

impl<T> RunEnd for (Outcome<T>, bool) {
    fn completed(&self) -> bool {
        matches!(self.0, Outcome::Completed(_))
    }
}

/// A runner of the child workflow `workflow` under the parent's store and configuration,
/// which records the child's graph version only if no child runner of its parent did.
fn child_runner<W: Workflow>(host: &ChildHost, workflow: W) -> Runner<W, ErasedStore> {
    Runner::on_erased(
        workflow,
        host.store.clone(),
        host.config.clone(),
        host.recorded.clone(),
    )
}

impl<W: Workflow> Runner<W, ErasedStore> {
    /// A runner of `workflow` on a parent's store (type erased) with its configuration,
    /// sharing the list of child graphs the store has recorded (`recorded`).
    pub(crate) fn on_erased(
        workflow: W,
        store: ErasedStore,
        config: Config,
        recorded: RecordedGraphs,
    ) -> Self {
        Runner {
            shared: Arc::new(Shared {
                workflow,
                store,
                graph_recorded: std::sync::atomic::AtomicBool::new(recorded.contains::<W>()),
                children_recorded: recorded,
            }),
            config,
        }
    }
}

/// Notes in `host` that the store recorded the graph of `runner`'s workflow, once it did.
fn remember_graph<W: Workflow>(host: &ChildHost, runner: &Runner<W, ErasedStore>) {
    if runner.graph_recorded() {
        host.recorded.insert::<W>();
    }
}

/// The longest prefix of a shortened child id: room for `~` and 16 hex digits.
const SHORT_PREFIX_BYTES: usize = MAX_SESSION_ID_BYTES - 17;

/// The child session id for the step whose idempotency key is `key` (see
/// [`Child::session_id`]).
pub(crate) fn child_session_id(key: &str) -> String {
    if key.len() <= MAX_SESSION_ID_BYTES {
        return key.to_owned();
    }
    let mut cut = SHORT_PREFIX_BYTES;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = Fingerprint::new("child-session").str(key).finish();
    format!("{}~{hash:016x}", &key[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_id_is_its_parents_step_key_when_it_fits() {
        assert_eq!(child_session_id("t-1/research/3"), "t-1/research/3");
        let longest = "x".repeat(MAX_SESSION_ID_BYTES);
        assert_eq!(child_session_id(&longest), longest);
    }

    #[test]
    fn a_parent_waits_for_its_steps_children_only() {
        assert!(waits_for("t", "research", 2, "t/research/2"));
        assert!(waits_for("t", "research", 2, "t/research/2/0"));
        assert!(waits_for("t", "research", 2, "t/research/2/17"));
        assert!(!waits_for("t", "research", 2, "t/research/3"));
        assert!(!waits_for("t", "research", 2, "t/research/2/"));
        assert!(!waits_for("t", "research", 2, "t/research/2/x"));
        assert!(!waits_for("t", "research", 2, "t/research/20"));
        assert!(!waits_for("t", "review", 2, "t/research/2"));
        // Shortened ids: the step's own child, and map items of a long parent's step.
        let long = "p".repeat(250);
        let own = child_session_id(&format!("{long}/research/2"));
        assert!(waits_for(&long, "research", 2, &own));
        let item = child_session_id(&format!("{long}/research/2/3"));
        assert!(waits_for(&long, "research", 2, &item));
        let other = child_session_id(&format!("{}/research/2", "q".repeat(250)));
        assert!(!waits_for(&long, "research", 2, &other));
        let medium = "m".repeat(230);
        let item = child_session_id(&format!("{medium}/research/2/3"));
        assert!(waits_for(&medium, "research", 2, &item));
        assert!(!waits_for(&medium, "research", 3, &item));
    }

    #[test]
    fn a_parent_waiting_in_a_map_waits_for_that_maps_children() {
        let at = |nodes: &[&str]| nodes.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert!(waits_in_map("c", &at(&["assess"]), "c/assess/1/17"));
        assert!(waits_in_map("c", &at(&["assess/check"]), "c/assess/1/0"));
        assert!(!waits_in_map("c", &at(&["assessor"]), "c/assess/1/0"));
        assert!(!waits_in_map("c", &at(&["review"]), "c/assess/1/0"));
        assert!(!waits_in_map("c", &at(&[]), "c/assess/1/0"));
        assert!(!waits_in_map("c", &at(&["assess"]), "c/assess/1"));
        assert!(!waits_in_map("c", &at(&["assess"]), "c/assess/x/1"));
        assert!(!waits_in_map("c", &at(&["assess"]), "c/assess/1/1/2"));
        assert!(!waits_in_map("c", &at(&["assess"]), "d/assess/1/1"));
    }

    #[test]
    fn a_long_child_id_is_cut_and_hashed_stably() {
        let parent = "é".repeat(127); // 254 bytes: a 2-byte character straddles every cut
        let a = child_session_id(&format!("{parent}/research/3"));
        let b = child_session_id(&format!("{parent}/research/4"));
        assert!(a.len() <= MAX_SESSION_ID_BYTES, "{}", a.len());
        assert!(crate::session_id::check(&a).is_ok());
        assert_ne!(a, b, "two steps, two children");
        assert_eq!(a, child_session_id(&format!("{parent}/research/3")));
        assert!(a.starts_with("éé"));
        let (_, hash) = a.rsplit_once('~').unwrap();
        assert_eq!(hash.len(), 16);
    }
}
