//! The runner's public API: the builder and its configuration, start, resume, interrupts,
//! history and forks.
//!
//! The rest of the runner lives beside it: `scheduler` (the step loop and the frontier of
//! parallel regions), `attempt` (one attempt of a node or a branch: retry policy, timeout,
//! cancellation, rollback, events, span), `session` (the session writer, the only code that
//! appends to a store) and `load` (reading a session back).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::checkpoint::Saved;
use crate::events::{Event, EventSink, RunHandle};
use crate::execute::{Execute, Slot};
use crate::session_id;
pub use crate::store::Status;
use crate::store::{GraphVersion, Lease, SessionFilter, Store, VersionCount, Wake, status_code};
use crate::{Error, Result, Workflow};

mod attempt;
mod child;
mod config;
mod deadline;
mod graphs;
mod load;
mod operate;
mod position;
mod progress;
mod region;
mod scheduler;
mod session;

pub use self::attempt::{ItemFailed, TimedOut};
pub use self::child::Child;
pub(crate) use self::child::RecordedGraphs;
#[cfg(feature = "inspect")]
pub(crate) use self::child::waited_child;
pub(crate) use self::child::{ChildAnswer, ChildHost, ChildWorkflow};
pub(crate) use self::config::Config;
pub use self::config::{CheckpointPolicy, GraphChange, Retention};
use self::load::{Loaded, Purpose};
use self::operate::Decision;
pub use self::operate::{Decide, EnqueueInput, ResumeWith};
use self::position::Position;
pub use self::progress::{BranchProgress, BranchState, Progress};
use self::scheduler::{waiting_at, waiting_nodes};
use self::session::{Bookkeeping, SessionWriter};

/// How many times an answer to a branch of a region with deadlines reads the session again
/// after losing a race to another write (a worker recording a deadline, another answer)
/// before it reports [`Error::Conflict`].
const MAX_DEADLINE_RACES: u32 = 8;

/// What a worker that claimed a session at a deadline finds when it checks the claim (see
/// [`Runner::deadline_claim`]).
enum DeadlineClaim {
    /// Nothing was written since the loaded checkpoint, and the wake-up that brought the
    /// claim is still set: the worker runs what is due.
    Stands,
    /// Something was written since the loaded checkpoint: the worker reads it again.
    Moved,
    /// The loaded checkpoint is the latest and the wake time is cleared: an in-process
    /// answer took the session after the claim, and that call runs it on.
    InProcess,
}

/// Whether a leased run may have been claimed for a deadline (an interrupt node or branch
/// with `wait_ms`), and so may race an in-process answer: the workflow has such a node.
fn claimed_for_deadlines<W: Workflow>(control: &Control) -> bool {
    control.writes.fence.is_some()
        && W::INPUT_NODES
            .iter()
            .any(|name| W::node(name).is_some_and(|spec| spec.wait_ms.is_some()))
}

/// The generated cursor type of a workflow.
type Cursor<W> = <<W as Workflow>::Exec as Execute<W>>::Cursor;

/// The node name stored as the cursor of a completed session.
const END: &str = "END";

/// How a call to `start`, `resume` or `resume_with` ended.
///
/// More endings may be added, so a `match` on it needs a wildcard arm; [`Outcome::into_state`]
/// and `matches!` need none. See [`Runner`] for an example.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome<T> {
    /// The run reached `END`; the final state.
    Completed(T),
    /// The run waits at an interrupt node for a typed decision.
    Interrupted {
        /// The interrupt node; when a subgraph node's child waits, the path to it
        /// (`research/review`: the subgraph node, then the child's interrupt node).
        node: &'static str,
        /// The state as it was saved.
        state: T,
    },
}

impl<T> Outcome<T> {
    /// The state, however the run ended.
    ///
    /// ```
    /// use graph_runtime::Outcome;
    ///
    /// assert_eq!(Outcome::Completed(7).into_state(), 7);
    /// assert_eq!(Outcome::Interrupted { node: "review", state: 8 }.into_state(), 8);
    /// ```
    pub fn into_state(self) -> T {
        match self {
            Outcome::Completed(state) | Outcome::Interrupted { state, .. } => state,
        }
    }
}

/// A checkpoint of a session, decoded: what [`Runner::state`], [`Runner::state_at`] and
/// [`Runner::fork`] return.
///
/// More fields may be added, so it is read by field, and a pattern needs `..`.
///
/// ```
/// use graph_runtime::prelude::*;
/// use graph_runtime::Status;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, PartialEq, Serialize, Deserialize, StateSchema)]
/// pub struct Ticket { pub note: String }
///
/// #[workflow(state = Ticket)]
/// pub mod support {
///     use super::*;
///     edge!(START -> review);
///     edge!(review -> END);
///     #[node(interrupt)]
///     async fn review(t: &mut Ticket, note: String) { t.note = note; }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
/// let runner = Runner::new(support::Workflow, MemoryStore::new());
/// runner.start("t-1", Ticket::default()).await?;
/// let snapshot = runner.state("t-1").await?.expect("the session exists");
/// assert_eq!(snapshot.node, "review");
/// assert_eq!(snapshot.status, Status::Waiting { node: "review".into() });
/// assert_eq!(snapshot.waiting, ["review"]);
///
/// runner.resume_with("t-1", support::Input::Review("done".into())).await?;
/// let snapshot = runner.state("t-1").await?.expect("the session exists");
/// assert_eq!(snapshot.status, Status::Completed);
/// assert!(snapshot.waiting.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Snapshot<T> {
    /// Its sequence number.
    pub seq: u64,
    /// The cursor: the node that runs next (`"END"` once completed).
    pub node: String,
    /// Where the session stands.
    pub status: Status,
    /// The state after the last saved step.
    pub state: T,
    /// Every node the session waits at for a decision, in declaration order; empty unless
    /// it waits. Outside a parallel region a session waits at one interrupt node at most,
    /// its cursor; in a region, at every interrupt branch without its input. A node
    /// renamed since the checkpoint was saved is reported by its current name; a node this
    /// graph no longer has (after [`GraphChange::Force`]) is left out. A session waiting at
    /// a subgraph node for its child names the path to the child's interrupt node,
    /// `research/review` (as does its `status`), read from the child session; once that
    /// child no longer waits (answered, and the parent not yet run on), the snapshot says
    /// `Running` and waits for nothing: [`Runner::resume`] takes the child's end.
    pub waiting: Vec<&'static str>,
    /// While the session stands in a parallel region (at its join, with branches or items
    /// not all settled): where each branch stands and how many are done, read from the
    /// checkpoint itself. `None` outside a region, and at a join whose checkpoint holds no
    /// frontier (saved by a release that kept none).
    pub progress: Option<Progress>,
    /// When the checkpoint waits at a subgraph node for its child session: the child's
    /// session id ([`Child::session_id`]), whose own state and history a runner of the
    /// child workflow reads. Set whether or not the child still waits (answered directly,
    /// it may have run on; `waiting` then names the subgraph node alone until the parent
    /// is resumed). `None` otherwise.
    pub child: Option<String>,
}

/// One kept checkpoint of a session, as [`Runner::history`] lists it.
pub type CheckpointInfo = crate::store::CheckpointMeta;

/// Runs the sessions of one workflow against one store.
///
/// Cheap to clone (the workflow and store are shared), `Send` and `Sync`: one runner can serve
/// many tasks. Builder methods set the policy for every call made through it.
///
/// A builder method checks its value when it is given. Builder methods return the runner
/// rather than a `Result`, so that they chain; a value that cannot work (`max_steps(0)`,
/// `CheckpointPolicy::EveryN(0)`, `Retention::KeepLast(0)`) is kept as the runner's
/// configuration error, the first one if there are several, and every call that runs or
/// writes a session (`start`, `resume`, `resume_with`, `fork`, `spawn*`) returns it as
/// [`Error::InvalidConfig`] without touching the store. Nothing is re-checked per call.
///
/// Every method that takes a session id checks it first: an empty id, one with a NUL byte or
/// one longer than [`MAX_SESSION_ID_BYTES`](crate::MAX_SESSION_ID_BYTES) is
/// [`Error::InvalidSessionId`], and the store is not asked anything.
///
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, PartialEq, Serialize, Deserialize, StateSchema)]
/// pub struct Counter { pub n: u32 }
///
/// #[workflow(state = Counter)]
/// pub mod count {
///     use super::*;
///     edge!(START -> bump);
///     edge!(bump -> bump | END);
///     #[node]
///     async fn bump(c: &mut Counter) -> bump::Next {
///         c.n += 1;
///         if c.n < 3 { bump::Next::Bump } else { bump::Next::End }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
/// let runner = Runner::new(count::Workflow, MemoryStore::new())
///     .checkpoint_policy(CheckpointPolicy::EveryStep)
///     .max_steps(100);
/// let outcome = runner.start("s1", Counter::default()).await?;
/// assert_eq!(outcome, Outcome::Completed(Counter { n: 3 }));
/// assert_eq!(runner.history("s1").await?.len(), 4); // the start and three steps
/// # Ok(()) }
/// ```
pub struct Runner<W, S> {
    shared: Arc<Shared<W, S>>,
    config: Config,
}

struct Shared<W, S> {
    workflow: W,
    store: S,
    /// Whether the store has this graph's version (see [`Runner::record_graph`]).
    graph_recorded: AtomicBool,
    /// The graphs of the children its subgraph nodes ran whose versions the store has.
    children_recorded: child::RecordedGraphs,
}

impl<W, S> Clone for Runner<W, S> {
    fn clone(&self) -> Self {
        Runner {
            shared: Arc::clone(&self.shared),
            config: self.config.clone(),
        }
    }
}

impl<W, S> std::fmt::Debug for Runner<W, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("workflow", &std::any::type_name::<W>())
            .field("store", &std::any::type_name::<S>())
            .field("config", &self.config)
            .finish()
    }
}

/// What a call adds to the plain step loop: events, cancellation, tracing spans. The plain
/// loop (`start` and friends with none of these) pays one branch per step for all of them.
#[derive(Default)]
struct Control {
    events: Option<EventSink>,
    cancel: Option<CancellationToken>,
    spans: bool,
    /// What the call's writes carry for workers (handed to each session writer it makes).
    writes: Bookkeeping,
    /// Set when the call stores a write: a worker learns from it whether its run settled the
    /// session, without reading the store again. `None` when nobody asks.
    wrote: Option<Arc<AtomicBool>>,
    /// The session whose subgraph node starts this one (`Child::run`): its store records it
    /// with the new session's first checkpoint.
    parent: Option<Arc<str>>,
}

impl Control {
    /// Notes that a write of this call is stored.
    #[inline]
    fn wrote(&self) {
        if let Some(wrote) = &self.wrote {
            wrote.store(true, Ordering::Relaxed);
        }
    }

    #[inline]
    fn emit(&self, event: impl FnOnce() -> Event) {
        if let Some(events) = &self.events {
            events.send(event());
        }
    }

    #[inline]
    fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(CancellationToken::is_cancelled)
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// A runner for `workflow` that saves to `store`, with the default policies: a checkpoint
    /// after every step, every checkpoint kept, no step limit, strict graph hash.
    pub fn new(workflow: W, store: S) -> Self {
        Runner {
            shared: Arc::new(Shared {
                workflow,
                store,
                graph_recorded: AtomicBool::new(false),
                children_recorded: child::RecordedGraphs::default(),
            }),
            config: Config {
                policy: CheckpointPolicy::EveryStep,
                retention: Retention::KeepAll,
                max_steps: u64::MAX,
                graph_change: GraphChange::Strict,
                cancel: None,
                event_capacity: 1024,
                recheck_children: Duration::from_secs(30),
                invalid: None,
            },
        }
    }

    /// Sets when checkpoints are saved (default [`CheckpointPolicy::EveryStep`]).
    ///
    /// `CheckpointPolicy::EveryN(0)` cannot work: it is refused here, and the runner's calls
    /// return [`Error::InvalidConfig`] (see [`Runner`]).
    ///
    /// ```
    /// # use graph_runtime::prelude::*;
    /// # use graph_runtime::Error;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S;
    /// # #[workflow(state = S)]
    /// # pub mod flow {
    /// #     use super::*;
    /// #     edge!(START -> only);
    /// #     edge!(only -> END);
    /// #     #[node] async fn only(s: &mut S) {}
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let every_tenth = Runner::new(flow::Workflow, MemoryStore::new())
    ///     .checkpoint_policy(CheckpointPolicy::EveryN(10));
    /// assert!(every_tenth.start("a", S).await.is_ok());
    ///
    /// let never = Runner::new(flow::Workflow, MemoryStore::new())
    ///     .checkpoint_policy(CheckpointPolicy::EveryN(0));
    /// assert!(matches!(never.start("a", S).await, Err(Error::InvalidConfig(_))));
    /// # }
    /// ```
    pub fn checkpoint_policy(mut self, policy: CheckpointPolicy) -> Self {
        if policy == CheckpointPolicy::EveryN(0) {
            self.config
                .reject("`CheckpointPolicy::EveryN(0)`: n must be at least 1");
        }
        self.config.policy = policy;
        self
    }

    /// Sets how many checkpoints each session keeps (default [`Retention::KeepAll`]).
    ///
    /// `Retention::KeepLast(0)` cannot work (resume needs the newest checkpoint): it is
    /// refused here, and the runner's calls return [`Error::InvalidConfig`] (see [`Runner`]).
    ///
    /// ```
    /// # use graph_runtime::prelude::*;
    /// # use graph_runtime::Error;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S;
    /// # #[workflow(state = S)]
    /// # pub mod flow {
    /// #     use super::*;
    /// #     edge!(START -> only);
    /// #     edge!(only -> END);
    /// #     #[node] async fn only(s: &mut S) {}
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
    /// let runner = Runner::new(flow::Workflow, MemoryStore::new()).retention(Retention::KeepLast(1));
    /// runner.start("a", S).await?;
    /// assert_eq!(runner.history("a").await?.len(), 1);
    ///
    /// let keeps_nothing = Runner::new(flow::Workflow, MemoryStore::new())
    ///     .retention(Retention::KeepLast(0));
    /// assert!(matches!(keeps_nothing.start("a", S).await, Err(Error::InvalidConfig(_))));
    /// # Ok(()) }
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        if retention == Retention::KeepLast(0) {
            self.config.reject(
                "`Retention::KeepLast(0)`: keep at least 1 checkpoint, the one resume starts from",
            );
        }
        self.config.retention = retention;
        self
    }

    /// Under workers, how soon a map parent waiting for its items' children is claimed again
    /// to read their statuses (default 30 s; 20 times as long while the children only wait
    /// for inputs).
    ///
    /// A child that ends wakes its parent at once, with a call of its own after its last
    /// checkpoint; should a crash come in between, this re-check is what moves the parent
    /// on: a lost wake-up delays it by at most this long. Each re-check that finds no child
    /// ended saves the parent's wait again (one small record). A zero duration would have
    /// workers claim waiting parents without pause: it is refused here, and the runner's
    /// calls return [`Error::InvalidConfig`] (see [`Runner`]).
    ///
    /// ```
    /// # use graph_runtime::prelude::*;
    /// # use graph_runtime::Error;
    /// # use std::time::Duration;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S;
    /// # #[workflow(state = S)]
    /// # pub mod flow {
    /// #     use super::*;
    /// #     edge!(START -> only);
    /// #     edge!(only -> END);
    /// #     #[node] async fn only(s: &mut S) {}
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
    /// let runner = Runner::new(flow::Workflow, MemoryStore::new())
    ///     .recheck_children(Duration::from_secs(5));
    /// runner.start("a", S).await?;
    ///
    /// let never_waits = Runner::new(flow::Workflow, MemoryStore::new())
    ///     .recheck_children(Duration::ZERO);
    /// assert!(matches!(never_waits.start("a", S).await, Err(Error::InvalidConfig(_))));
    /// # Ok(()) }
    /// ```
    pub fn recheck_children(mut self, every: Duration) -> Self {
        if every.is_zero() {
            self.config
                .reject("`recheck_children(Duration::ZERO)`: give a positive interval");
        }
        self.config.recheck_children = every;
        self
    }

    /// Ends a call with [`Error::StepLimit`] after `n` steps (default: no limit).
    ///
    /// A parallel region counts as one step, its join's: its branches are not counted.
    ///
    /// The count is per call, not per session: each call to `start`, `resume` or
    /// `resume_with` may run up to `n` steps; after [`Error::StepLimit`] the session stays at
    /// its last checkpoint and `resume` continues it for up to `n` more. `max_steps(0)` would
    /// let no call run anything: it is refused here, and the runner's calls return
    /// [`Error::InvalidConfig`] (see [`Runner`]).
    ///
    /// ```
    /// # use graph_runtime::prelude::*;
    /// # use graph_runtime::Error;
    /// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S;
    /// # #[workflow(state = S)]
    /// # pub mod flow {
    /// #     use super::*;
    /// #     edge!(START -> only);
    /// #     edge!(only -> END);
    /// #     #[node] async fn only(s: &mut S) {}
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let runner = Runner::new(flow::Workflow, MemoryStore::new()).max_steps(0);
    /// assert!(matches!(runner.start("a", S).await, Err(Error::InvalidConfig(_))));
    /// # }
    /// ```
    pub fn max_steps(mut self, n: u64) -> Self {
        if n == 0 {
            self.config
                .reject("`max_steps(0)`: a call must be allowed at least 1 step");
        }
        self.config.max_steps = n;
        self
    }

    /// Sets what happens to checkpoints saved by a different graph (default
    /// [`GraphChange::Strict`]).
    pub fn on_graph_change(mut self, graph_change: GraphChange) -> Self {
        self.config.graph_change = graph_change;
        self
    }

    /// Cancels every run of this runner when `token` is cancelled (for a service's shutdown),
    /// with the same effect as [`RunHandle::cancel`]: [`Error::Cancelled`], and the session
    /// stays at its last checkpoint.
    pub fn cancellation_token(mut self, token: CancellationToken) -> Self {
        self.config.cancel = Some(token);
        self
    }

    /// How many events a spawned run buffers for a listener that lags (default 1024); past
    /// that, events are dropped and an [`Event::Lagged`] says how many.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.config.event_capacity = capacity.max(1);
        self
    }

    /// The workflow this runner runs.
    pub fn workflow(&self) -> &W {
        &self.shared.workflow
    }

    /// The store this runner saves to.
    pub fn store(&self) -> &S {
        &self.shared.store
    }

    /// Starts a new session at the graph's entry and runs it until it completes or waits at an
    /// interrupt.
    ///
    /// Fails with [`Error::SessionExists`] if the store already holds `session`.
    pub async fn start(&self, session: &str, state: W::State) -> Result<Outcome<W::State>> {
        // Boxed here, and in every public call that runs a session: the future a caller holds
        // (or spawns, 10,000 at once) is a pointer and the arguments, and the run's own state
        // machine lives on the heap only while it runs.
        Box::pin(self.start_with(session, state, self.control(None))).await
    }

    async fn start_with(
        &self,
        session: &str,
        state: W::State,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        self.ready(&[session])?;
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        let cursor = W::Exec::ENTRY;
        let spec = W::Exec::spec(cursor);
        let status = if spec.interrupt {
            waiting_at(spec.name)
        } else {
            Status::Running
        };
        let mut session = self.writer(session, &control);
        if let Some(parent) = &control.parent {
            session.parent_next(parent);
        }
        let name = Cow::Borrowed(spec.name);
        let first = session.encode::<W>(0, status, name, &state, None, None, None)?;
        session.append(&self.shared.store, first, &control).await?;
        if spec.interrupt {
            control.emit(|| Event::Interrupted { node: spec.name });
            return Ok(Outcome::Interrupted {
                node: spec.name,
                state,
            });
        }
        let position = Position::at(session, 0, cursor, state);
        self.drive(Box::new(position), control).await
    }

    /// Continues a session from its latest checkpoint: after a crash, a node error or a step
    /// limit. A completed session returns its `Completed` outcome again; a waiting one returns
    /// `Interrupted` again without running anything.
    ///
    /// That includes a session waiting at a node with a deadline
    /// (`#[node(interrupt, wait_ms = N)]`), even once the deadline has passed: only a
    /// [`Worker`](crate::Worker) runs such a node without its input, after the deadline (the
    /// wait is recorded in the store as a durable wake-up on the database's clock, so a worker
    /// started later still runs it). A session whose node a worker already began to run
    /// without its input (and then crashed) is run on here, without the input again. The
    /// same goes for the interrupt branches of a parallel region, each with its own deadline.
    ///
    /// A child session of a subgraph node that completes or fails here makes its waiting
    /// parent runnable for workers (see [`Child::run`]).
    pub async fn resume(&self, session: &str) -> Result<Outcome<W::State>> {
        let result = Box::pin(self.resume_inner(session, self.control(None))).await;
        self.after_run(session, &result).await;
        result
    }

    async fn resume_inner(&self, session: &str, control: Control) -> Result<Outcome<W::State>> {
        self.ready(&[session])?;
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        // A worker that claimed a session at a deadline checks its claim against the session's
        // record once the latest checkpoint is loaded (see `deadline_claim`): the loop reads
        // again when the session moved on between the two reads.
        let mut reloads = 0;
        let (mut loaded, cursor) = loop {
            let loaded = self.load_latest(session).await?;
            if loaded.is_completed() {
                return Ok(Outcome::Completed(loaded.state));
            }
            if loaded.status == status_code::CANCELLED {
                return Err(Error::Cancelled(session.to_owned()));
            }
            let cursor = self.cursor(session, &loaded)?;
            if !claimed_for_deadlines::<W>(&control) {
                break (loaded, cursor);
            }
            match self.deadline_claim(session, loaded.seq).await? {
                DeadlineClaim::Stands => break (loaded, cursor),
                DeadlineClaim::Moved if reloads < MAX_DEADLINE_RACES => reloads += 1,
                DeadlineClaim::Moved => {
                    // Written to without pause: this worker leaves it (and, holding the
                    // lease without renewing it, retries once the lease expires).
                    return Err(Error::Conflict {
                        session: session.to_owned(),
                        expected: Some(loaded.seq),
                        found: None,
                    });
                }
                DeadlineClaim::InProcess => {
                    // An answer given in-process after this worker's claim cleared the
                    // wake-up: that call runs the session on, so this worker leaves it
                    // rather than run the answered node too. The wake time changed since
                    // the claim, so the lease is released (a later wait sets it again).
                    control.wrote();
                    let waiting = loaded
                        .frontier
                        .as_ref()
                        .and_then(|f| waiting_nodes::<W>(cursor, &f.slots).first().copied());
                    return Ok(Outcome::Interrupted {
                        node: waiting.unwrap_or(W::Exec::spec(cursor).name),
                        state: loaded.state,
                    });
                }
            }
        };
        // A worker claimed a session in a parallel region whose interrupt branches have
        // deadlines: each branch whose deadline passed runs without its input, once that is
        // recorded; the others wait on.
        let region_deadlines = W::Exec::PARALLEL
            && control.writes.fence.is_some()
            && loaded.frontier.is_some()
            && deadline::has_deadlines::<W>(cursor);
        if region_deadlines && let Some(frontier) = &loaded.frontier {
            let due = deadline::due::<W>(cursor, frontier, SystemTime::now());
            if !due.is_empty() {
                return match self
                    .record_branch_deadlines(session, loaded, cursor, &due, &control)
                    .await
                {
                    Ok(position) => self.drive(Box::new(position), control).await,
                    // An input (or another worker's deadline) was recorded between the load
                    // and these writes: start over from what is stored now.
                    Err(Error::Conflict { .. }) => {
                        Box::pin(self.resume_inner(session, control)).await
                    }
                    Err(e) => Err(e),
                };
            }
        }
        if let Some(frontier) = &loaded.frontier {
            // Waiting in a parallel region with nothing else to run: nothing runs without
            // an input.
            // (A map item whose child waits runs again: its child may have been answered.)
            let runnable = frontier
                .slots
                .iter()
                .enumerate()
                .any(|(index, slot)| match slot {
                    Slot::Pending | Slot::Input(_) => true,
                    Slot::Waiting => scheduler::child_waits::<W>(cursor, index),
                    Slot::Done(_) | Slot::Failed(_) => false,
                });
            if !runnable && let Some(&node) = waiting_nodes::<W>(cursor, &frontier.slots).first() {
                let status = scheduler::region_status::<W>(waiting_at(""), cursor, &frontier.slots);
                let waiting = waiting_nodes::<W>(cursor, &frontier.slots);
                // When the wait saved below wakes the session: at the earliest deadline of a
                // waiting branch, if any has one.
                // (Every wait of a loaded frontier is stored: it has its start.)
                let now = SystemTime::now();
                let waits = (&frontier.slots[..], &frontier.waits_since[..]);
                let wake = deadline::next_wake::<W>(cursor, waits, now, now)
                    .map_or(Wake::Never, Wake::After);
                let mut writer = self.writer_at(session, &control, &mut loaded);
                if waiting.len() > 1 {
                    writer.waiting_next(waiting);
                }
                // A crash between the region's last branch record and its waiting record
                // left it `Running`: save the wait the run would have saved (the same record,
                // so the chain is as without the crash, and the snapshot says it waits).
                // A worker that claimed a waiting region before any deadline of its branches
                // passed (the clocks of the machines that wrote the waits and of the
                // database disagree) saves the wait again, with the wake-up moved to the
                // next deadline, rather than be woken again at once.
                if (loaded.is_running() || region_deadlines) && writer.has_region() {
                    let name = W::Exec::spec(cursor).name;
                    let record = writer.encode_record::<W>(loaded.seq + 1, name, status, &[])?;
                    if deadline::has_deadlines::<W>(cursor) {
                        writer.deadline_next::<W>(wake);
                    }
                    writer.append(&self.shared.store, record, &control).await?;
                }
                return Ok(Outcome::Interrupted {
                    node,
                    state: loaded.state,
                });
            }
        }
        let spec = W::Exec::spec(cursor);
        match loaded.is_waiting() {
            // A worker claimed a session waiting at a node with `wait_ms`: only its deadline
            // can have made it runnable (an input given in time is recorded first and makes
            // the checkpoint `Running`). The node runs without its input, once that attempt is
            // recorded.
            true if spec.interrupt
                && spec.wait_ms.is_some()
                && control.writes.fence.is_some()
                && loaded.frontier.is_none() =>
            {
                match self
                    .record_deadline(session, loaded, cursor, &control)
                    .await
                {
                    Ok(position) => self.drive(Box::new(position), control).await,
                    // An input was recorded between the load and this write: start over from
                    // what is stored now (an answer given in-process runs there; one enqueued
                    // for the workers runs here).
                    Err(Error::Conflict { .. }) => {
                        Box::pin(self.resume_inner(session, control)).await
                    }
                    Err(e) => Err(e),
                }
            }
            // Waiting at a node that is still an interrupt node: nothing to run without input.
            // (Under `GraphChange::Force` it may have stopped being one; then it just runs.)
            // An in-process `resume` never runs a node with `wait_ms` without its input, even
            // past the deadline: only a worker does.
            true if spec.interrupt => Ok(Outcome::Interrupted {
                node: spec.name,
                state: loaded.state,
            }),
            _ => {
                let position = self.position(session, loaded, cursor, &control);
                self.drive(Box::new(position), control).await
            }
        }
    }

    /// Where a run goes on from a loaded checkpoint that is not waiting. A `Running`
    /// checkpoint at a node with `wait_ms` and no input is the attempt a worker recorded when
    /// the deadline passed (a crash interrupted it): the node runs without its input again.
    fn position(
        &self,
        session: &str,
        mut loaded: Loaded<W>,
        cursor: Cursor<W>,
        control: &Control,
    ) -> Position<W> {
        let spec = W::Exec::spec(cursor);
        let deadline_passed = loaded.is_running()
            && loaded.input.is_none()
            && loaded.frontier.is_none()
            && spec.interrupt
            && spec.wait_ms.is_some();
        // Waiting, outside a region, at a node that is not an interrupt: its child waits. (In
        // a region, a waiting checkpoint that runs has map items whose children wait.)
        let child_wait = W::Exec::SUBGRAPHS
            && loaded.is_waiting()
            && (loaded.frontier.is_some() || !spec.interrupt);
        let writer = self.writer_at(session, control, &mut loaded);
        Position::at(writer, loaded.seq, cursor, loaded.state)
            .with_input(loaded.input)
            .with_failure(loaded.failure)
            .with_frontier(loaded.frontier)
            .deadline_passed(deadline_passed)
            .child_wait(child_wait)
    }

    /// Records durably that the interrupt node at `cursor` runs without its input because
    /// its wait is over: a `Running` checkpoint at the node with no input, as an input would
    /// be recorded, so a crash re-runs it without its input rather than waiting again, and a
    /// decision that comes later is [`Error::NotWaiting`].
    async fn record_deadline(
        &self,
        session: &str,
        mut loaded: Loaded<W>,
        cursor: Cursor<W>,
        control: &Control,
    ) -> Result<Position<W>> {
        let name = W::Exec::spec(cursor).name;
        let mut writer = self.writer_at(session, control, &mut loaded);
        let seq = loaded.seq + 1;
        let recorded = writer.encode::<W>(
            seq,
            Status::Running,
            Cow::Borrowed(name),
            &loaded.state,
            None,
            loaded.failure.as_ref(),
            None,
        )?;
        writer.audit_next(crate::store::Audit::new(crate::store::AuditKind::Input {
            node: name.to_owned(),
            source: crate::store::InputSource::Deadline,
        }));
        writer.append(&self.shared.store, recorded, control).await?;
        tracing::debug!(
            session,
            node = name,
            "the wait is over: runs without its input"
        );
        Ok(Position::at(writer, seq, cursor, loaded.state)
            .with_failure(loaded.failure)
            .deadline_passed(true))
    }

    /// A worker's claim of a session at a deadline, checked against the session's record
    /// (its latest sequence number and wake time, read together) after the latest checkpoint
    /// `loaded` was read. The claim came because the wake time had passed; an in-process
    /// `resume_with` that answers the node (or a branch) in time records the input and clears
    /// the wake time in one write, then runs the node itself. A worker that loaded that
    /// record, or read the checkpoint before the in-process run wrote on, must not run the
    /// answered node a second time.
    async fn deadline_claim(&self, session: &str, loaded: u64) -> Result<DeadlineClaim> {
        let record = self.shared.store.session(session).await?;
        Ok(match record {
            Some(record) if record.seq == loaded && record.wake_at.is_none() => {
                DeadlineClaim::InProcess
            }
            Some(record) if record.seq == loaded => DeadlineClaim::Stands,
            // Written since the load (or deleted): read it again.
            _ => DeadlineClaim::Moved,
        })
    }

    /// Records durably that the waiting interrupt branches `due` of the region joined at
    /// `cursor` run without their input because their deadlines passed: one branch record
    /// per branch, its slot back to pending (which, for an interrupt branch with `wait_ms`,
    /// means "run with `None`"), audited as given by the deadline. So a crash re-runs them
    /// without their input rather than waiting again, and a decision that comes later is
    /// [`Error::NotWaiting`]. The session's wake time is left as it is (passed): should the
    /// worker die before the branches' outputs are saved, the next claim runs them.
    async fn record_branch_deadlines(
        &self,
        session: &str,
        mut loaded: Loaded<W>,
        cursor: Cursor<W>,
        due: &[usize],
        control: &Control,
    ) -> Result<Position<W>> {
        let (Some(mut frontier), Some(region)) = (loaded.frontier.take(), W::Exec::region(cursor))
        else {
            return Err(Error::Corrupt {
                session: session.to_owned(),
                seq: loaded.seq,
                reason: "a region without its frontier".to_owned(),
            });
        };
        let join = W::Exec::spec(cursor).name;
        let mut writer = self.writer_at(session, control, &mut loaded);
        let mut seq = loaded.seq;
        for &index in due {
            let Some(branch) = scheduler::branch_of(region, index) else {
                continue;
            };
            let node = W::Exec::spec(branch).name;
            frontier.slots[index] = Slot::Pending;
            seq += 1;
            let status = scheduler::region_status::<W>(Status::Running, cursor, &frontier.slots);
            let changes = [(index as u32, &frontier.slots[index])];
            let record = writer.encode_record::<W>(seq, join, status, &changes)?;
            frontier.mark_saved(record.created_at, Some(&[index as u32]));
            writer.audit_next(crate::store::Audit::new(crate::store::AuditKind::Input {
                node: node.to_owned(),
                source: crate::store::InputSource::Deadline,
            }));
            writer.append(&self.shared.store, record, control).await?;
            tracing::debug!(
                session,
                node,
                "the wait of the branch is over: runs without its input"
            );
        }
        Ok(Position::at(writer, seq, cursor, loaded.state)
            .with_failure(loaded.failure)
            .with_frontier(Some(frontier)))
    }

    /// Gives a waiting session its decision and runs on.
    ///
    /// The input is first recorded durably (so a crash after this point resumes with it), then
    /// the interrupt node runs with it. Nothing that ran before the interrupt runs again. Fails
    /// with [`Error::NotWaiting`] if the session is not waiting at the input's node.
    ///
    /// In a parallel region whose interrupt branches wait, the input answers one branch (the
    /// input's node): it is recorded as a branch record, that branch runs with it, and the
    /// run returns [`Outcome::Interrupted`] naming the first branch that still waits
    /// (declaration order), or goes on to the join once none does. A branch that does not
    /// wait (answered already, or not in the region) is [`Error::NotWaiting`], whose message
    /// lists the branches that do.
    ///
    /// At a node with a deadline (`#[node(interrupt, wait_ms = N)]`), an input given before a
    /// worker ran the node without one wins, and the deadline is cleared: the node runs here
    /// with `Some(input)`. Once a worker has begun to run it without its input (the deadline
    /// passed), the input is [`Error::NotWaiting`]. The same holds for each interrupt branch
    /// of a parallel region with its own deadline: an answer recorded before a worker
    /// recorded that branch's deadline wins; one that loses that race is `NotWaiting`, and
    /// the other branches keep their own deadlines.
    ///
    /// The session's history keeps the decision with when it came and, if the caller says
    /// so before awaiting, who gave it and why (see [`ResumeWith`]):
    /// `runner.resume_with(id, input).by("alice").note("limit raised").await`.
    pub fn resume_with<'a>(&'a self, session: &'a str, input: W::Input) -> ResumeWith<'a, W, S> {
        ResumeWith::resume(self, session, input)
    }

    /// Checks that `session` waits at the input's node ([`Error::NotWaiting`] otherwise) and
    /// records the input durably as the next checkpoint; returns where the run goes on from.
    async fn record_input(
        &self,
        session: &str,
        input: W::Input,
        said: Option<Decision>,
        control: &Control,
    ) -> Result<Position<W>> {
        self.ready(&[session])?;
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        let target = W::Exec::input_node(&input);
        let target_name = W::Exec::spec(target).name;
        if W::Exec::SUBGRAPHS && !W::Exec::spec(target).interrupt {
            // An answer for a child goes to the child (`decide`, `record_answer`); one that
            // gets here was not built by `#[workflow]`.
            return Err(Error::InvalidConfig(
                "an input for a subgraph node's child is given to the child session, through `resume_with` or `enqueue_input`",
            ));
        }
        let mut loaded = self.load_latest(session).await?;
        let audit = Decision::for_input(said, target_name);
        if loaded.frontier.is_some() {
            return self
                .answer_branch(session, loaded, target, input, audit, control)
                .await;
        }
        if !loaded.is_waiting() || loaded.cursor != Some(target) {
            let actual = match loaded.status() {
                Status::Waiting { .. } => format!("it waits at `{}`", loaded.node),
                Status::Completed => "it has completed".to_owned(),
                Status::Cancelled => "it was cancelled".to_owned(),
                _ => format!("it is running at `{}`", loaded.node),
            };
            return Err(Error::NotWaiting {
                session: session.to_owned(),
                node: target_name,
                actual,
            });
        }
        let id = session;
        let mut session = self.writer_at(session, control, &mut loaded);
        let seq = loaded.seq + 1;
        let recorded = session.encode::<W>(
            seq,
            Status::Running,
            Cow::Borrowed(target_name),
            &loaded.state,
            Some(&input),
            loaded.failure.as_ref(),
            None,
        )?;
        session.audit_next(audit);
        let deadline = W::Exec::spec(target).wait_ms.is_some();
        if deadline && control.writes.wake.is_none() {
            // Answered in-process before the deadline: it runs here, so no worker may take
            // the session when the deadline passes.
            session.wake_next(Wake::Never);
        }
        match session.append(&self.shared.store, recorded, control).await {
            Ok(()) => {}
            // A worker whose claim came with the deadline wrote first: it runs the node
            // without this input.
            Err(Error::Conflict { .. }) if deadline => {
                let latest = self.load_latest(id).await?;
                let actual = match latest.status() {
                    Status::Waiting { .. } => format!("it waits at `{}`", latest.node),
                    Status::Completed => "it has completed".to_owned(),
                    _ => format!(
                        "it is running at `{}`: its wait was over, and it runs without the input",
                        latest.node
                    ),
                };
                return Err(Error::NotWaiting {
                    session: id.to_owned(),
                    node: target_name,
                    actual,
                });
            }
            Err(e) => return Err(e),
        }
        // An interrupt node reached by an error edge still sees what failed.
        Ok(Position::at(session, seq, target, loaded.state)
            .with_input(Some(input))
            .with_failure(loaded.failure))
    }

    /// `resume_with` for a session that waits at a subgraph node for its child, with the
    /// answer for that child (`Input::Research(child_input)`, of the subgraph node `target`):
    /// checks that the session waits there ([`Error::NotWaiting`] otherwise), gives the
    /// child its input with the child's own `resume_with` (which records it on the child's
    /// session and runs the child on), then resumes the parent, whose node runs again and
    /// takes the child's final state (or waits again if the child does).
    async fn answer_child(
        &self,
        session: &str,
        target: Cursor<W>,
        answer: Box<dyn std::any::Any + Send>,
        said: Decision,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        let answer = operate::downcast_answer(answer)?;
        let (child, _) = self.waiting_child(session, target).await?;
        let events = control
            .events
            .as_ref()
            .map(|events| events.child(W::Exec::spec(target).name));
        answer
            .give(self.child_host(), child, said, child::Give::Run(events))
            .await?;
        self.resume_inner(session, control).await
    }

    /// `resume_with` for a session stopped in a parallel region: the input is for one of its
    /// waiting branches. Records it durably (a branch record), then runs the region on: that
    /// branch with its input, and the join once no branch waits any more.
    async fn answer_branch(
        &self,
        session: &str,
        mut loaded: Loaded<W>,
        target: Cursor<W>,
        input: W::Input,
        audit: crate::store::Audit,
        control: &Control,
    ) -> Result<Position<W>> {
        let bytes = crate::execute::encode(&input).map_err(|e| Error::Encode {
            session: session.to_owned(),
            reason: e.to_string(),
        })?;
        let target_name = W::Exec::spec(target).name;
        // The records a worker writes when deadlines of the region's branches pass race
        // this one (compare-and-swap): the loser of the race reads the session again.
        let mut races = 0;
        loop {
            let cursor = self.cursor(session, &loaded)?;
            let Some(mut frontier) = loaded.frontier.take() else {
                return Err(Error::NotWaiting {
                    session: session.to_owned(),
                    node: target_name,
                    actual: format!("it is not in the region of `{target_name}` any more"),
                });
            };
            let deadlines = deadline::has_deadlines::<W>(cursor);
            let region = W::Exec::region(cursor);
            let slot = region.and_then(|region| {
                (0..frontier.slots.len()).find(|&i| scheduler::branch_of(region, i) == Some(target))
            });
            let Some(index) = slot.filter(|&i| frontier.slots[i] == Slot::Waiting) else {
                let waiting = waiting_nodes::<W>(cursor, &frontier.slots);
                let over = deadlines
                    && W::Exec::spec(target).wait_ms.is_some()
                    && slot.is_some_and(|i| frontier.slots[i] == Slot::Pending);
                let actual = if over {
                    format!("the wait of `{target_name}` was over: it runs without the input")
                } else if waiting.is_empty() {
                    format!(
                        "it is running the branches of `{}`, none of which waits",
                        loaded.node
                    )
                } else {
                    let list: Vec<String> = waiting.iter().map(|n| format!("`{n}`")).collect();
                    format!("it waits at {}", list.join(", "))
                };
                return Err(Error::NotWaiting {
                    session: session.to_owned(),
                    node: target_name,
                    actual,
                });
            };
            let mut writer = self.writer_at(session, control, &mut loaded);
            frontier.slots[index] = Slot::Input(Saved::new(W::INPUT_SCHEMA, bytes.clone()));
            let seq = loaded.seq + 1;
            let status = scheduler::region_status::<W>(Status::Running, cursor, &frontier.slots);
            let changes = [(index as u32, &frontier.slots[index])];
            let recorded =
                writer.encode_record::<W>(seq, W::Exec::spec(cursor).name, status, &changes)?;
            frontier.mark_saved(recorded.created_at, Some(&[index as u32]));
            writer.audit_next(audit.clone());
            if deadlines && control.writes.wake.is_none() {
                // Answered in-process: the region runs on here, so no worker may take the
                // session at a deadline meanwhile (the wait this run saves next sets the
                // wake-up again, for the branches that still wait).
                writer.deadline_next::<W>(Wake::Never);
            }
            match writer.append(&self.shared.store, recorded, control).await {
                Ok(()) => {
                    return Ok(Position::at(writer, seq, cursor, loaded.state)
                        .with_failure(loaded.failure)
                        .with_frontier(Some(frontier)));
                }
                Err(Error::Conflict { .. }) if deadlines && races < MAX_DEADLINE_RACES => {
                    races += 1;
                    loaded = self.load_latest(session).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates a session for a [`Worker`](crate::Worker) to run: saves its first checkpoint
    /// at the graph's entry, marks it runnable, and returns at once — durable, but nothing
    /// runs here. Any worker that [registered](crate::Worker::register) this workflow (at
    /// this graph hash) claims it.
    ///
    /// Fails with [`Error::SessionExists`] if the store already holds `session`.
    ///
    /// ```
    /// use graph_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize, StateSchema)]
    /// pub struct Job { pub done: bool }
    ///
    /// #[workflow(state = Job)]
    /// pub mod job {
    ///     use super::*;
    ///     edge!(START -> work);
    ///     edge!(work -> END);
    ///     #[node] async fn work(j: &mut Job) { j.done = true; }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
    /// let runner = Runner::new(job::Workflow, MemoryStore::new());
    /// runner.enqueue("job-1", Job::default()).await?;
    /// // Not run yet: a worker will.
    /// assert_eq!(runner.state("job-1").await?.unwrap().node, "work");
    /// # Ok(()) }
    /// ```
    pub async fn enqueue(&self, session: &str, state: W::State) -> Result<()> {
        self.enqueue_child_of(session, state, None).await
    }

    /// [`Runner::enqueue`], recording `parent` as the new session's parent when it is a
    /// map item's child given to the workers.
    pub(super) async fn enqueue_child_of(
        &self,
        session: &str,
        state: W::State,
        parent: Option<&Arc<str>>,
    ) -> Result<()> {
        self.ready(&[session])?;
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        let spec = W::Exec::spec(W::Exec::ENTRY);
        let (status, wake) = if spec.interrupt {
            (waiting_at(spec.name), Wake::Never)
        } else {
            (Status::Running, Wake::Now)
        };
        let control = self.queueing(wake);
        let mut session = self.writer(session, &control);
        if let Some(parent) = parent {
            session.parent_next(parent);
        }
        let first = session.encode::<W>(
            0,
            status,
            Cow::Borrowed(spec.name),
            &state,
            None,
            None,
            None,
        )?;
        session.append(&self.shared.store, first, &control).await
    }

    /// Gives a waiting session its decision for a [`Worker`](crate::Worker) to act on: checks
    /// that the session waits at the input's node ([`Error::NotWaiting`] otherwise, as
    /// [`Runner::resume_with`] does — in a parallel region, at that branch), records the
    /// input durably, marks the session runnable, and returns at once: a web handler's call.
    /// The node runs on whichever worker claims the session.
    ///
    /// As with [`Runner::resume_with`], the caller may say who gave the decision and why
    /// before awaiting: `runner.enqueue_input(id, input).by("alice").await`.
    pub fn enqueue_input<'a>(
        &'a self,
        session: &'a str,
        input: W::Input,
    ) -> EnqueueInput<'a, W, S> {
        EnqueueInput::enqueue(self, session, input)
    }

    /// The control of a call that only hands a session to workers.
    fn queueing(&self, wake: Wake) -> Control {
        Control {
            writes: Bookkeeping {
                wake: Some(wake),
                workflow: Some((W::NAME, W::GRAPH_HASH)),
                fence: None,
            },
            ..Control::default()
        }
    }

    /// Runs a session a [`Worker`](crate::Worker) claimed, from its latest checkpoint, with
    /// every write fenced by the lease's epoch; `cancel` stops it (the lease was lost, or the
    /// worker shuts down). Returns the outcome and whether the run wrote anything (a session
    /// that had completed, or waits and still does, needs no write).
    pub(crate) async fn run_leased(
        &self,
        lease: &Lease,
        cancel: CancellationToken,
    ) -> Result<(Outcome<W::State>, bool)> {
        let wrote = Arc::new(AtomicBool::new(false));
        let mut control = self.control(None);
        control.cancel = Some(cancel);
        control.writes.fence = Some(lease.epoch);
        control.writes.workflow = Some((W::NAME, W::GRAPH_HASH));
        control.wrote = Some(Arc::clone(&wrote));
        let result = self.resume_inner(&lease.session, control).await;
        // A child that a worker ran to its end wakes its waiting parent for the workers.
        self.after_run(&lease.session, &result).await;
        Ok((result?, wrote.load(Ordering::Relaxed)))
    }

    /// The latest checkpoint of a session, decoded; `None` if the session does not exist.
    pub async fn state(&self, session: &str) -> Result<Option<Snapshot<W::State>>> {
        session_id::check(session)?;
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Ok(None);
        };
        let loaded = self.decode(session, checkpoint, Purpose::Read).await?;
        self.snapshot_of(session, loaded).await.map(Some)
    }

    /// The kept checkpoint `seq` of a session, decoded; `None` if it is not kept (or the
    /// session does not exist). Unlike [`Runner::fork`], it writes nothing.
    pub async fn state_at(&self, session: &str, seq: u64) -> Result<Option<Snapshot<W::State>>> {
        session_id::check(session)?;
        let Some(checkpoint) = self.shared.store.get(session, seq).await? else {
            return Ok(None);
        };
        let loaded = self.decode(session, checkpoint, Purpose::Read).await?;
        self.snapshot_of(session, loaded).await.map(Some)
    }

    /// A decoded checkpoint of `session` as the public [`Snapshot`], naming the path its
    /// child waits at when it waits at a subgraph node (`research/review`).
    async fn snapshot_of(&self, session: &str, loaded: Loaded<W>) -> Result<Snapshot<W::State>> {
        let child_wait = W::Exec::SUBGRAPHS
            && loaded.is_waiting()
            && loaded.frontier.is_none()
            && loaded
                .cursor
                .is_some_and(|cursor| !W::Exec::spec(cursor).interrupt);
        // Waiting in a region whose map items wait for children: name their paths.
        let region_paths = match (&loaded.frontier, loaded.cursor) {
            (Some(frontier), Some(join)) if W::Exec::SUBGRAPHS && loaded.is_waiting() => {
                let paths = self.region_child_paths(session, join, frontier).await?;
                let mut waiting = region::waiting_paths::<W>(join, &frontier.slots, &paths);
                // A map item named by its node alone waits for a child that no longer waits
                // (answered, and the parent not yet run on): for nothing anyone decides.
                waiting.retain(|name| {
                    name.contains('/') || W::node(name).is_some_and(|spec| spec.interrupt)
                });
                Some(waiting)
            }
            _ => None,
        };
        let mut snapshot = Self::snapshot(loaded);
        if let Some(waiting) = region_paths {
            match waiting.first() {
                Some(&first) => {
                    snapshot.status = waiting_at(first);
                    snapshot.waiting = waiting;
                }
                // As for a subgraph node's child below: shown as running, so that a client
                // that answers waiting sessions and resumes running ones moves it on.
                None => {
                    snapshot.status = Status::Running;
                    snapshot.waiting.clear();
                }
            }
        }
        if child_wait {
            snapshot.child = Some(child::child_session_id(&format!(
                "{session}/{}/{}",
                snapshot.node, snapshot.seq
            )));
            match self
                .child_waits_at(session, &snapshot.node, snapshot.seq)
                .await?
            {
                Some(path) => {
                    snapshot.status = waiting_at(path);
                    snapshot.waiting = vec![path];
                }
                // Its child no longer waits (it was answered, and the parent's run on from
                // there failed or never came): the parent waits for nothing, and a `resume`
                // takes the child's end. It is shown as running, so that a client that
                // answers waiting sessions and resumes running ones moves it on.
                None => {
                    snapshot.status = Status::Running;
                    snapshot.waiting.clear();
                }
            }
        }
        Ok(snapshot)
    }

    /// A decoded checkpoint as the public [`Snapshot`].
    fn snapshot(loaded: Loaded<W>) -> Snapshot<W::State> {
        let cursor = loaded.cursor;
        if let (Some(frontier), Some(join)) = (&loaded.frontier, cursor) {
            let waiting = if loaded.is_waiting() {
                waiting_nodes::<W>(join, &frontier.slots)
            } else {
                Vec::new()
            };
            return Snapshot {
                seq: loaded.seq,
                status: scheduler::region_status::<W>(loaded.status(), join, &frontier.slots),
                progress: progress::progress::<W>(join, frontier),
                node: loaded.node,
                state: loaded.state,
                waiting,
                child: None,
            };
        }
        // `decode` already maps a renamed node to its current name; a node this graph does
        // not have cannot be named by a `&'static str`.
        let waiting = if loaded.is_waiting() {
            cursor
                .map(|cursor| W::Exec::spec(cursor).name)
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        Snapshot {
            seq: loaded.seq,
            status: loaded.status(),
            node: loaded.node,
            state: loaded.state,
            waiting,
            progress: None,
            child: None,
        }
    }

    /// Every kept checkpoint of a session, oldest first.
    ///
    /// A checkpoint at which the session waited for a subgraph node's child names the path
    /// it waited at in its status (`Waiting { node: "research/review" }`) and the child's
    /// session id in [`child`](crate::store::CheckpointMeta::child).
    ///
    /// Fails with [`Error::SessionNotFound`] if the session does not exist.
    pub async fn history(&self, session: &str) -> Result<Vec<CheckpointInfo>> {
        session_id::check(session)?;
        let mut list = self.shared.store.list(session).await?;
        if list.is_empty() {
            return Err(Error::SessionNotFound(session.to_owned()));
        }
        if W::Exec::SUBGRAPHS {
            for checkpoint in &mut list {
                checkpoint.child = child::waited_child(session, checkpoint);
            }
        }
        Ok(list)
    }

    /// Starts a new session `new_session` from the kept checkpoint `seq` of `session` (time
    /// travel); returns the new session's first snapshot. Run it on with [`Runner::resume`]
    /// (or [`Runner::resume_with`] if it waits).
    ///
    /// Fails with [`Error::CheckpointNotFound`] if `seq` is not kept, [`Error::SessionNotFound`]
    /// if `session` does not exist, and [`Error::SessionExists`] if `new_session` does.
    pub async fn fork(
        &self,
        session: &str,
        seq: u64,
        new_session: &str,
    ) -> Result<Snapshot<W::State>> {
        self.fork_inner(session, seq, new_session, None, None).await
    }

    /// [`Runner::fork`] with the copy's state replaced by `state` (an operator's corrected
    /// state: the origin is not changed) and `audit`'s actor and note kept in the new
    /// session's history with where it came from ([`AuditKind::Forked`](crate::store::AuditKind)).
    pub async fn fork_with(
        &self,
        session: &str,
        seq: u64,
        new_session: &str,
        state: W::State,
        audit: crate::store::Audit,
    ) -> Result<Snapshot<W::State>> {
        self.fork_inner(session, seq, new_session, Some(state), Some(audit))
            .await
    }

    async fn fork_inner(
        &self,
        session: &str,
        seq: u64,
        new_session: &str,
        state: Option<W::State>,
        audit: Option<crate::store::Audit>,
    ) -> Result<Snapshot<W::State>> {
        self.ready(&[session, new_session])?;
        let store = &self.shared.store;
        let Some(checkpoint) = store.get(session, seq).await? else {
            return Err(match store.latest(session).await? {
                None => Error::SessionNotFound(session.to_owned()),
                Some(_) => Error::CheckpointNotFound {
                    session: session.to_owned(),
                    seq,
                },
            });
        };
        let mut loaded = self.decode(session, checkpoint, Purpose::Run).await?;
        if let Some(state) = state {
            loaded.state = state;
        }
        if !self.graph_recorded() {
            self.record_graph().await?;
        }
        // The copy is self-contained: a fork shares no delta chain with its origin.
        let control = Control::default();
        let mut writer = self.writer(new_session, &control);
        // A session stopped in a region: the frontier with every record applied, so the copy
        // needs none of the origin's records.
        let (status, frontier) = match (&loaded.frontier, loaded.cursor) {
            (Some(frontier), Some(join)) => (
                scheduler::region_status::<W>(loaded.status(), join, &frontier.slots),
                Some(frontier.as_ref()),
            ),
            _ => (loaded.status(), None),
        };
        let copy = writer.encode::<W>(
            seq,
            status,
            Cow::Owned(loaded.node.clone()),
            &loaded.state,
            loaded.input.as_ref(),
            loaded.failure.as_ref(),
            frontier,
        )?;
        let (actor, note) = audit.map(|a| (a.actor, a.note)).unwrap_or_default();
        writer.audit_next(crate::store::Audit {
            kind: crate::store::AuditKind::Forked {
                from: session.to_owned(),
                seq,
            },
            actor,
            note,
        });
        writer.append(&self.shared.store, copy, &control).await?;
        Ok(Self::snapshot(loaded))
    }

    /// Like [`Runner::start`], but runs on a tokio task and returns a [`RunHandle`] at once:
    /// await it for the outcome, read its [`events`](RunHandle::events), or
    /// [`cancel`](RunHandle::cancel) it.
    ///
    /// Must be called from within a tokio runtime. A bad session id or builder setting is the
    /// handle's result, as it would be `start`'s; the store is not asked anything then.
    pub fn spawn(&self, session: &str, state: W::State) -> RunHandle<W::State> {
        self.spawn_run(session, move |runner, session, control| async move {
            Box::pin(runner.start_with(&session, state, control)).await
        })
    }

    /// Like [`Runner::resume`], on a tokio task (see [`Runner::spawn`]).
    pub fn spawn_resume(&self, session: &str) -> RunHandle<W::State> {
        self.spawn_run(session, move |runner, session, control| async move {
            let result = Box::pin(runner.resume_inner(&session, control)).await;
            runner.after_run(&session, &result).await;
            result
        })
    }

    /// Like [`Runner::resume_with`], on a tokio task (see [`Runner::spawn`]).
    pub fn spawn_resume_with(&self, session: &str, input: W::Input) -> RunHandle<W::State> {
        self.spawn_run(session, move |runner, session, control| async move {
            let said = Decision::default();
            let result = Box::pin(runner.decide(&session, input, said, control)).await;
            runner.after_run(&session, &result).await;
            result
        })
    }

    fn spawn_run<F, Fut>(&self, session: &str, run: F) -> RunHandle<W::State>
    where
        F: FnOnce(Runner<W, S>, Arc<str>, Control) -> Fut,
        Fut: Future<Output = Result<Outcome<W::State>>> + Send + 'static,
    {
        let session: Arc<str> = Arc::from(session);
        let cancel = match &self.config.cancel {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let (sink, events) = EventSink::channel(self.config.event_capacity);
        let mut control = self.control(Some(sink));
        control.cancel = Some(cancel.clone());
        let task = tokio::spawn(run(self.clone(), Arc::clone(&session), control));
        RunHandle::new(task, events, cancel, session)
    }

    /// What every call that runs or writes a session checks first, before the store: the
    /// builder's recorded configuration error, then each session id.
    fn ready(&self, sessions: &[&str]) -> Result<()> {
        if let Some(problem) = self.config.invalid {
            return Err(Error::InvalidConfig(problem));
        }
        sessions.iter().try_for_each(|id| session_id::check(id))
    }

    /// The writer of a new session for a call with `control`.
    fn writer(&self, session: &str, control: &Control) -> SessionWriter {
        SessionWriter::new::<W, S>(Arc::from(session), self.config.retention, control.writes)
    }

    /// The writer that extends the checkpoint `loaded` of `session` for a call with `control`.
    fn writer_at(&self, session: &str, control: &Control, loaded: &mut Loaded<W>) -> SessionWriter {
        SessionWriter::stored::<W, S>(
            Arc::from(session),
            self.config.retention,
            control.writes,
            loaded,
        )
    }

    /// Whether the store has this graph's version already: then [`Runner::record_graph`] is
    /// not called (one relaxed load, no future).
    #[inline(always)]
    fn graph_recorded(&self) -> bool {
        self.shared.graph_recorded.load(Ordering::Relaxed)
    }

    /// Tells the store about this graph's version ([`Store::record_graph`]) before this
    /// runner's first write: once per runner (and its clones; see [`Runner::graph_recorded`]).
    /// A write whose graph the store cannot record is not made: a later release could not
    /// say what changed since.
    async fn record_graph(&self) -> Result<()> {
        self.shared
            .store
            .record_graph(&graphs::version_of::<W>())
            .await?;
        self.shared.graph_recorded.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn control(&self, events: Option<EventSink>) -> Control {
        Control {
            events,
            cancel: self.config.cancel.clone(),
            spans: tracing::enabled!(target: "graph_runtime::step", tracing::Level::DEBUG),
            writes: Bookkeeping::default(),
            wrote: None,
            parent: None,
        }
    }

    /// Every version of this workflow's graph the store kept (one is recorded the first time
    /// a runner of it writes), oldest first: each with its hash and canonical description.
    ///
    /// With [`Runner::versions_in_use`], it tells when an `accept_graphs` entry can go.
    pub async fn graph_versions(&self) -> Result<Vec<GraphVersion>> {
        self.shared.store.graph_versions(W::NAME).await
    }

    /// How many sessions of this workflow stand at each graph hash and state schema, counted
    /// from the store's index of sessions (nothing is decoded). A hash in
    /// `#[workflow(accept_graphs = [...])]`, or a type in a `migrate_from` whose fingerprint,
    /// has no row any more is needed by no session's latest checkpoint: the entry can go
    /// (older checkpoints in a session's history may still need a `migrate_from` type to be
    /// read).
    ///
    /// ```
    /// use graph_runtime::prelude::*;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Default, Serialize, Deserialize, StateSchema)]
    /// pub struct Job { pub done: bool }
    ///
    /// #[workflow(state = Job)]
    /// pub mod job {
    ///     use super::*;
    ///     edge!(START -> work);
    ///     edge!(work -> END);
    ///     #[node] async fn work(j: &mut Job) { j.done = true; }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), graph_runtime::Error> {
    /// let runner = Runner::new(job::Workflow, MemoryStore::new());
    /// runner.start("job-1", Job::default()).await?;
    /// runner.start("job-2", Job::default()).await?;
    /// let in_use = runner.versions_in_use().await?;
    /// assert_eq!(in_use.len(), 1);
    /// assert_eq!((in_use[0].graph_hash, in_use[0].sessions), (job::GRAPH_HASH, 2));
    /// assert_eq!(in_use[0].state_schema, Some(job::STATE_SCHEMA));
    /// assert_eq!(runner.graph_versions().await?[0].graph_hash, job::GRAPH_HASH);
    /// # Ok(()) }
    /// ```
    pub async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        let mut all = self.shared.store.versions_in_use().await?;
        all.retain(|count| count.workflow == W::NAME);
        Ok(all)
    }

    /// The ids of every session in the store, sorted (of any workflow that shares the store):
    /// every page of [`Store::sessions`](crate::store::Store::sessions) without a condition.
    pub async fn sessions(&self) -> Result<Vec<String>> {
        let mut filter = SessionFilter::new().limit(SessionFilter::MAX_LIMIT);
        let mut ids = Vec::new();
        loop {
            let page = self.shared.store.sessions(&filter).await?;
            ids.extend(page.sessions.into_iter().map(|record| record.session));
            match page.next {
                Some(next) => filter.after = Some(next),
                None => return Ok(ids),
            }
        }
    }

    /// Removes a session and its whole history; returns whether it existed.
    ///
    /// The child sessions its subgraph nodes started go with it, and theirs in turn (found
    /// by the parent the store recorded for each, see
    /// [`SessionFilter::parent`](crate::store::SessionFilter::parent)), in the same
    /// transaction ([`Store::delete`](crate::store::Store::delete)): a failed call deletes
    /// nothing, and a run of the session still in flight elsewhere cannot start a child of it
    /// afterwards (its child's creation fails with [`Error::SessionNotFound`]).
    pub async fn delete(&self, session: &str) -> Result<bool> {
        session_id::check(session)?;
        self.shared.store.delete(session).await
    }
}
