//! The runner: start, resume, interrupts, history and forks; the step loop.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::checkpoint::{self, DeltaOf, Envelope, Header, Phase, delta};
use crate::ctx::Failure;
use crate::error::report;
use crate::events::{Event, EventSink, RunHandle};
use crate::execute::{Execute, Transition};
use crate::session_id;
use crate::store::{Append, Checkpoint, Lease, Store, Wake};
use crate::workflow::NodeCheckpoint;
use crate::{Error, NodeCtx, NodeError, NodeSpec, Result, Workflow};

/// The generated cursor type of a workflow.
type Cursor<W> = <<W as Workflow>::Exec as Execute<W>>::Cursor;

/// The node name stored as the cursor of a completed session.
const END: &str = "END";

/// When the runner saves a checkpoint.
///
/// Whatever the policy, a checkpoint is always saved when a session starts, when it waits at
/// an interrupt (with the decision recorded before the node runs), when it completes, and
/// before an error edge's node runs. What a crash can make run again is the work since the
/// last checkpoint, from its cursor:
///
/// | policy | saved after | a crash re-runs |
/// |---|---|---|
/// | `EveryStep` | every node | the node that was running |
/// | `EveryN(n)` | every `n`th node | up to `n` nodes |
/// | `OnInterrupt` | nothing but the points above | everything since the last interrupt |
/// | `Adaptive { budget }` | interrupt, retrying, timed or error-edge nodes, and any node once `budget` of node time went unsaved | about `budget` of plain, cheap nodes |
///
/// A node overrides the policy with `#[node(checkpoint = always)]` (saved after it whatever
/// the policy: it has a side effect that must not be repeated, or is expensive) or
/// `#[node(checkpoint = never)]` (never saved after it by policy: it is cheap and pure).
/// Re-runs are what [`NodeCtx::idempotency_key`] is for: it is the same on every re-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointPolicy {
    /// After every step (the default): a crash re-runs at most the step in flight.
    #[default]
    EveryStep,
    /// Only when a session waits at an interrupt and when it completes. Fastest; a crash
    /// re-runs everything since the last interrupt.
    OnInterrupt,
    /// After every `n`th step, and at interrupts and completion. `EveryN(0)` is rejected by
    /// [`Runner::checkpoint_policy`] (see there).
    EveryN(u64),
    /// Saves where a crash would cost most, and otherwise only once the time spent in nodes
    /// since the last checkpoint exceeds `budget`: after every node that waits (an
    /// interrupt), can retry, has a timeout or an error edge, at completion, and after a node
    /// once `budget` of node time has gone by unsaved. A crash re-runs at most about `budget`
    /// of cheap, plain nodes (and never a node with retries or a timeout, which usually talk
    /// to the outside world). `Adaptive { budget: Duration::ZERO }` behaves like `EveryStep`.
    Adaptive {
        /// How much node time may go unsaved.
        budget: Duration,
    },
}

/// How many checkpoints a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Every checkpoint (the default): full history, rewind and fork from any step.
    #[default]
    KeepAll,
    /// Only the newest `n`, pruned in the same store transaction as each append.
    /// `KeepLast(0)` is rejected by [`Runner::retention`] (see there).
    KeepLast(u64),
}

/// What to do with a checkpoint saved by a graph with a different [`Workflow::GRAPH_HASH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphChange {
    /// Refuse it with [`Error::GraphMismatch`] (the default), before any node runs.
    #[default]
    Strict,
    /// Resume anyway, placing the cursor by node name; fails with [`Error::UnknownNode`] if
    /// the node no longer exists, or [`Error::Corrupt`] if the state no longer decodes.
    Force,
}

/// Where a session stands at a checkpoint.
///
/// More states may be added (waiting at several nodes at once, for example), so a `match`
/// on it needs a wildcard arm:
///
/// ```
/// use graph_runtime::Status;
///
/// fn describe(status: &Status) -> String {
///     match status {
///         Status::Running => "running".to_owned(),
///         Status::Waiting { node } => format!("waiting at `{node}`"),
///         Status::Completed => "completed".to_owned(),
///         _ => format!("{status:?}"),
///     }
/// }
/// assert_eq!(describe(&Status::Completed), "completed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The run goes on at the checkpoint's node (possibly after a crash: call `resume`).
    Running,
    /// The session waits at an interrupt node for `resume_with`.
    Waiting {
        /// The interrupt node.
        node: String,
    },
    /// The run reached `END`.
    Completed,
}

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
        /// The interrupt node.
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
    /// it waits. Today a session waits at one interrupt node at most, its cursor. A node
    /// renamed since the checkpoint was saved is reported by its current name; a node this
    /// graph no longer has (after [`GraphChange::Force`]) is left out.
    pub waiting: Vec<&'static str>,
}

/// One kept checkpoint of a session, as [`Runner::history`] lists it.
pub type CheckpointInfo = crate::store::CheckpointMeta;

#[derive(Debug, Clone)]
struct Config {
    policy: CheckpointPolicy,
    retention: Retention,
    max_steps: u64,
    graph_change: GraphChange,
    cancel: Option<CancellationToken>,
    event_capacity: usize,
    /// The first bad setting a builder method was given, checked there and only there; every
    /// call that runs or writes a session returns it as [`Error::InvalidConfig`].
    invalid: Option<&'static str>,
}

impl Config {
    /// Records `problem` as the runner's configuration error, unless an earlier setting
    /// already was one (the first mistake is the one to fix first).
    fn reject(&mut self, problem: &'static str) {
        self.invalid.get_or_insert(problem);
    }

    fn keep_last(&self) -> Option<u64> {
        match self.retention {
            Retention::KeepAll => None,
            Retention::KeepLast(n) => Some(n),
        }
    }
}

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

/// A decoded checkpoint.
struct Loaded<W: Workflow> {
    seq: u64,
    phase: Phase,
    /// The node name, as this graph calls it (a renamed node's stored old name is mapped).
    node: String,
    state: W::State,
    input: Option<W::Input>,
    failure: Option<Failure>,
    /// What a writer extending this checkpoint needs to know about its chain.
    chain: Chain,
    /// The graph hash it was saved under.
    graph_hash: u64,
}

/// What a call adds to the plain step loop: events, cancellation, tracing spans. The plain
/// loop (`start` and friends with none of these) pays one branch per step for all of them.
#[derive(Default)]
struct Control {
    events: Option<EventSink>,
    cancel: Option<CancellationToken>,
    spans: bool,
    /// Set when a [`Worker`](crate::Worker) runs the session under a lease: every write is
    /// fenced by this epoch, and says whether the session still needs a worker.
    fence: Option<u64>,
}

impl Control {
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

/// How one guarded attempt ended.
enum Attempt<C> {
    Done(Transition<C>),
    TimedOut(Duration),
}

/// Bodies smaller than this are always saved whole: a delta would save little, and keeping
/// the previous body to diff against would cost every small step a copy.
const DELTA_MIN_BODY: usize = 4096;
/// The longest delta chain under `Retention::KeepAll`: reading a checkpoint reads its whole
/// chain (about 2.5 µs a link on SQLite), so a full checkpoint is written at least this often.
const MAX_CHAIN: u32 = 1024;
/// The shortest chain cap under `Retention::KeepLast(n)`, whose cap is `n` within
/// `MIN_KEPT_CHAIN..=MAX_CHAIN`: the store keeps the newest `n` checkpoints and the chain they
/// need, so the cap bounds what is kept beyond `n`.
const MIN_KEPT_CHAIN: u32 = 64;

/// What the one writer of a session remembers about the checkpoints it extends: the previous
/// body, to store the next checkpoint as a delta against it (incremental checkpoints).
///
/// A chain is a full checkpoint followed by deltas, each against the checkpoint before it. A
/// new full checkpoint starts a new chain when the deltas since the last one add up to more
/// than twice the body (so the chain never costs more than about three bodies of space), when
/// a delta would not be less than half the body, or after [`MAX_CHAIN`] deltas (so reading
/// any checkpoint stays fast; under `KeepLast(n)`, after `n` deltas but at least
/// [`MIN_KEPT_CHAIN`], so retention keeps at most about `n` more than asked).
#[derive(Debug, Default)]
struct Chain {
    /// The body of the newest stored checkpoint, kept only when it is large enough for deltas.
    prev: Option<Vec<u8>>,
    /// The sequence number of that checkpoint.
    prev_seq: Option<u64>,
    /// The full checkpoint the current chain starts at.
    anchor: u64,
    /// Bytes of deltas since the anchor.
    delta_bytes: usize,
    /// Deltas since the anchor.
    len: u32,
    /// The size of the previous envelope: the next one's buffer capacity.
    size_hint: usize,
}

/// Where a running session stands, carried through the step loop.
struct Position<W: Workflow> {
    session: Arc<str>,
    /// The sequence number of the state in hand.
    seq: u64,
    /// The sequence number of the newest checkpoint in the store.
    stored: u64,
    cursor: Cursor<W>,
    state: W::State,
    input: Option<W::Input>,
    /// Set while the cursor is the target of an error edge.
    failure: Option<Failure>,
    /// The session writer's memory of the stored chain.
    chain: Chain,
    /// Time spent in nodes since the last checkpoint (measured only under
    /// [`CheckpointPolicy::Adaptive`]).
    unsaved: Duration,
}

/// A node attempt that took longer than `#[node(timeout_ms = …)]`: the error of the attempt.
///
/// Its message leaves the node out, as every place that shows it already names the node
/// ([`Error::Node`], whose source it is, [`Failure::node`], [`Event::Retrying`]).
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::TimedOut;
///
/// let e = TimedOut { node: "charge", after: Duration::from_millis(50) };
/// assert_eq!(e.to_string(), "timed out after 50ms");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {after:?}")]
pub struct TimedOut {
    /// The node.
    pub node: &'static str,
    /// The timeout.
    pub after: Duration,
}

impl<W: Workflow, S: Store> Runner<W, S> {
    /// A runner for `workflow` that saves to `store`, with the default policies: a checkpoint
    /// after every step, every checkpoint kept, no step limit, strict graph hash.
    pub fn new(workflow: W, store: S) -> Self {
        Runner {
            shared: Arc::new(Shared { workflow, store }),
            config: Config {
                policy: CheckpointPolicy::EveryStep,
                retention: Retention::KeepAll,
                max_steps: u64::MAX,
                graph_change: GraphChange::Strict,
                cancel: None,
                event_capacity: 1024,
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

    /// Ends a call with [`Error::StepLimit`] after `n` steps (default: no limit).
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
        self.start_with(session, state, self.control(None)).await
    }

    async fn start_with(
        &self,
        session: &str,
        state: W::State,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        self.ready(&[session])?;
        let cursor = W::Exec::ENTRY;
        let spec = W::Exec::spec(cursor);
        let phase = if spec.interrupt {
            Phase::Waiting
        } else {
            Phase::Running
        };
        let session: Arc<str> = Arc::from(session);
        let mut chain = Chain::default();
        let name = Cow::Borrowed(spec.name);
        let first = self.encode(
            &mut chain, &session, 0, None, phase, name, &state, None, None,
        )?;
        self.append(&session, None, first, &control)
            .await
            .map_err(|e| match e {
                Error::Conflict { session, .. } => Error::SessionExists(session),
                e => e,
            })?;
        if spec.interrupt {
            control.emit(|| Event::Interrupted { node: spec.name });
            return Ok(Outcome::Interrupted {
                node: spec.name,
                state,
            });
        }
        let position = Position {
            session,
            seq: 0,
            stored: 0,
            cursor,
            state,
            input: None,
            failure: None,
            chain,
            unsaved: Duration::ZERO,
        };
        self.drive(position, control).await
    }

    /// Continues a session from its latest checkpoint: after a crash, a node error or a step
    /// limit. A completed session returns its `Completed` outcome again; a waiting one returns
    /// `Interrupted` again without running anything.
    pub async fn resume(&self, session: &str) -> Result<Outcome<W::State>> {
        self.resume_inner(session, self.control(None)).await
    }

    async fn resume_inner(&self, session: &str, control: Control) -> Result<Outcome<W::State>> {
        self.ready(&[session])?;
        let loaded = self.load_latest(session).await?;
        if loaded.phase == Phase::Completed {
            return Ok(Outcome::Completed(loaded.state));
        }
        let cursor = self.cursor(session, &loaded)?;
        match loaded.phase {
            // Waiting at a node that is still an interrupt node: nothing to run without input.
            // (Under `GraphChange::Force` it may have stopped being one; then it just runs.)
            Phase::Waiting if W::Exec::spec(cursor).interrupt => Ok(Outcome::Interrupted {
                node: W::Exec::spec(cursor).name,
                state: loaded.state,
            }),
            _ => {
                let position = Position {
                    session: Arc::from(session),
                    seq: loaded.seq,
                    stored: loaded.seq,
                    cursor,
                    state: loaded.state,
                    input: loaded.input,
                    failure: loaded.failure,
                    chain: loaded.chain,
                    unsaved: Duration::ZERO,
                };
                self.drive(position, control).await
            }
        }
    }

    /// Gives a waiting session its decision and runs on.
    ///
    /// The input is first recorded durably (so a crash after this point resumes with it), then
    /// the interrupt node runs with it. Nothing that ran before the interrupt runs again. Fails
    /// with [`Error::NotWaiting`] if the session is not waiting at the input's node.
    pub async fn resume_with(&self, session: &str, input: W::Input) -> Result<Outcome<W::State>> {
        self.resume_with_inner(session, input, self.control(None))
            .await
    }

    async fn resume_with_inner(
        &self,
        session: &str,
        input: W::Input,
        control: Control,
    ) -> Result<Outcome<W::State>> {
        let position = self.record_input(session, input, &control, None).await?;
        self.drive(position, control).await
    }

    /// Checks that `session` waits at the input's node ([`Error::NotWaiting`] otherwise) and
    /// records the input durably as the next checkpoint (with `wake`, for a worker to run
    /// it); returns where the run goes on from.
    async fn record_input(
        &self,
        session: &str,
        input: W::Input,
        control: &Control,
        wake: Option<Wake>,
    ) -> Result<Position<W>> {
        self.ready(&[session])?;
        let target = W::Exec::input_node(&input);
        let target_name = W::Exec::spec(target).name;
        let mut loaded = self.load_latest(session).await?;
        if loaded.phase != Phase::Waiting || W::Exec::cursor_of(&loaded.node) != Some(target) {
            let actual = match loaded.phase {
                Phase::Waiting => format!("it waits at `{}`", loaded.node),
                Phase::Running => format!("it is running at `{}`", loaded.node),
                Phase::Completed => "it has completed".to_owned(),
            };
            return Err(Error::NotWaiting {
                session: session.to_owned(),
                node: target_name,
                actual,
            });
        }
        let session: Arc<str> = Arc::from(session);
        let seq = loaded.seq + 1;
        let recorded = self.encode(
            &mut loaded.chain,
            &session,
            seq,
            Some(loaded.seq),
            Phase::Running,
            Cow::Borrowed(target_name),
            &loaded.state,
            Some(&input),
            loaded.failure.as_ref(),
        )?;
        self.append_with(&session, Some(loaded.seq), recorded, control, wake)
            .await?;
        Ok(Position {
            session,
            seq,
            stored: seq,
            cursor: target,
            state: loaded.state,
            input: Some(input),
            // An interrupt node reached by an error edge still sees what failed.
            failure: loaded.failure,
            chain: loaded.chain,
            unsaved: Duration::ZERO,
        })
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
        self.ready(&[session])?;
        let cursor = W::Exec::ENTRY;
        let spec = W::Exec::spec(cursor);
        let (phase, wake) = if spec.interrupt {
            (Phase::Waiting, Wake::Never)
        } else {
            (Phase::Running, Wake::Now)
        };
        let first = self.encode(
            &mut Chain::default(),
            session,
            0,
            None,
            phase,
            Cow::Borrowed(spec.name),
            &state,
            None,
            None,
        )?;
        self.append_with(session, None, first, &Control::default(), Some(wake))
            .await
            .map_err(|e| match e {
                Error::Conflict { session, .. } => Error::SessionExists(session),
                e => e,
            })
    }

    /// Gives a waiting session its decision for a [`Worker`](crate::Worker) to act on: checks
    /// that the session waits at the input's node ([`Error::NotWaiting`] otherwise, as
    /// [`Runner::resume_with`] does), records the input durably, marks the session runnable,
    /// and returns at once. A web handler's call: the node runs on whichever worker claims
    /// the session.
    pub async fn enqueue_input(&self, session: &str, input: W::Input) -> Result<()> {
        self.record_input(session, input, &Control::default(), Some(Wake::Now))
            .await
            .map(drop)
    }

    /// Runs a session a [`Worker`](crate::Worker) claimed, from its latest checkpoint, with
    /// every write fenced by the lease's epoch; `cancel` stops it (the lease was lost, or the
    /// worker shuts down).
    pub(crate) async fn run_leased(
        &self,
        lease: &Lease,
        cancel: CancellationToken,
    ) -> Result<Outcome<W::State>> {
        let mut control = self.control(None);
        control.cancel = Some(cancel);
        control.fence = Some(lease.epoch);
        self.resume_inner(&lease.session, control).await
    }

    /// The latest checkpoint of a session, decoded; `None` if the session does not exist.
    pub async fn state(&self, session: &str) -> Result<Option<Snapshot<W::State>>> {
        session_id::check(session)?;
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Ok(None);
        };
        let loaded = self.decode(session, checkpoint).await?;
        Ok(Some(Self::snapshot(loaded)))
    }

    /// The kept checkpoint `seq` of a session, decoded; `None` if it is not kept (or the
    /// session does not exist). Unlike [`Runner::fork`], it writes nothing.
    pub async fn state_at(&self, session: &str, seq: u64) -> Result<Option<Snapshot<W::State>>> {
        session_id::check(session)?;
        let Some(checkpoint) = self.shared.store.get(session, seq).await? else {
            return Ok(None);
        };
        let loaded = self.decode(session, checkpoint).await?;
        Ok(Some(Self::snapshot(loaded)))
    }

    /// A decoded checkpoint as the public [`Snapshot`].
    fn snapshot(loaded: Loaded<W>) -> Snapshot<W::State> {
        let status = loaded.phase.status(&loaded.node);
        // `decode` already maps a renamed node to its current name; a node this graph does
        // not have cannot be named by a `&'static str`.
        let waiting = match loaded.phase {
            Phase::Waiting => W::Exec::cursor_of(&loaded.node)
                .map(|cursor| W::Exec::spec(cursor).name)
                .into_iter()
                .collect(),
            Phase::Running | Phase::Completed => Vec::new(),
        };
        Snapshot {
            seq: loaded.seq,
            node: loaded.node,
            status,
            state: loaded.state,
            waiting,
        }
    }

    /// Every kept checkpoint of a session, oldest first.
    ///
    /// Fails with [`Error::SessionNotFound`] if the session does not exist.
    pub async fn history(&self, session: &str) -> Result<Vec<CheckpointInfo>> {
        session_id::check(session)?;
        let list = self.shared.store.list(session).await?;
        if list.is_empty() {
            return Err(Error::SessionNotFound(session.to_owned()));
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
        let loaded = self.decode(session, checkpoint).await?;
        // The copy is self-contained: a fork shares no delta chain with its origin.
        let copy = self.encode(
            &mut Chain::default(),
            new_session,
            seq,
            None,
            loaded.phase,
            Cow::Owned(loaded.node.clone()),
            &loaded.state,
            loaded.input.as_ref(),
            loaded.failure.as_ref(),
        )?;
        self.append(new_session, None, copy, &Control::default())
            .await
            .map_err(|e| match e {
                Error::Conflict { session, .. } => Error::SessionExists(session),
                e => e,
            })?;
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
            runner.start_with(&session, state, control).await
        })
    }

    /// Like [`Runner::resume`], on a tokio task (see [`Runner::spawn`]).
    pub fn spawn_resume(&self, session: &str) -> RunHandle<W::State> {
        self.spawn_run(session, move |runner, session, control| async move {
            runner.resume_inner(&session, control).await
        })
    }

    /// Like [`Runner::resume_with`], on a tokio task (see [`Runner::spawn`]).
    pub fn spawn_resume_with(&self, session: &str, input: W::Input) -> RunHandle<W::State> {
        self.spawn_run(session, move |runner, session, control| async move {
            runner.resume_with_inner(&session, input, control).await
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

    fn control(&self, events: Option<EventSink>) -> Control {
        Control {
            events,
            cancel: self.config.cancel.clone(),
            spans: tracing::enabled!(target: "graph_runtime::step", tracing::Level::DEBUG),
            fence: None,
        }
    }

    /// The ids of every session in the store, sorted (of any workflow that shares the store).
    pub async fn sessions(&self) -> Result<Vec<String>> {
        self.shared.store.sessions().await
    }

    /// Removes a session and its whole history; returns whether it existed.
    pub async fn delete(&self, session: &str) -> Result<bool> {
        session_id::check(session)?;
        self.shared.store.delete(session).await
    }

    /// The step loop: runs nodes from `position` until the session completes, waits, or fails.
    async fn drive(&self, at: Position<W>, control: Control) -> Result<Outcome<W::State>> {
        let span = tracing::info_span!(
            "workflow_run",
            workflow = W::NAME,
            session = %at.session,
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
        mut at: Position<W>,
        control: &Control,
    ) -> Result<Outcome<W::State>> {
        let config = &self.config;
        let workflow = &self.shared.workflow;
        // Nothing to observe, cancel or trace: the loop runs each node future directly.
        let plain = control.events.is_none() && control.cancel.is_none() && !control.spans;
        let mut ctx = NodeCtx::new(Arc::clone(&at.session), control.events.clone());
        let mut steps: u64 = 0;
        loop {
            let cursor = at.cursor;
            let spec = W::Exec::spec(cursor);
            if spec.interrupt && at.input.is_none() {
                // Only reachable when a session was resumed at an interrupt node that had not
                // been marked waiting (a forked or force-resumed checkpoint): mark it now.
                return self.wait_here(at, spec.name, control).await;
            }
            if steps >= config.max_steps {
                return Err(Error::StepLimit {
                    session: at.session.to_string(),
                    limit: config.max_steps,
                });
            }
            if control.is_cancelled() {
                return Err(Error::Cancelled(at.session.to_string()));
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
            let transition = if plain && !guarded {
                // Nodes that need nothing but a call run back to back until a checkpoint is
                // due or the step limit is near.
                let due_in = match config.policy {
                    // A node saved after whatever the policy (which never runs freely, so it
                    // can only be the first node of a run) ends its run.
                    _ if spec.checkpoint == NodeCheckpoint::Always => 1,
                    CheckpointPolicy::EveryStep | CheckpointPolicy::Adaptive { .. } => 1,
                    CheckpointPolicy::OnInterrupt => u64::MAX,
                    CheckpointPolicy::EveryN(n) => n.saturating_sub(at.seq - at.stored).max(1),
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
                self.run_node(spec, error_route.is_some(), &mut at, &mut ctx, control)
                    .await?
            };
            ctx.clear_failure();
            at.seq = seq;
            if let Some(started) = started {
                at.unsaved += started.elapsed();
            }
            let next = match transition {
                Transition::Next(next) => next,
                // Replaced by the frontier scheduler (issue 8, in progress).
                Transition::Map { .. } => {
                    return Err(Error::Node {
                        node: spec.name,
                        source: "maps are not scheduled yet".into(),
                    });
                }
                Transition::End => {
                    let done = self.encode_at(&mut at, seq, Phase::Completed, END, false)?;
                    self.append(&at.session, Some(at.stored), done, control)
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
                        session: at.session.to_string(),
                        node: spec.name,
                        actual: "the interrupt node ran without its input".to_owned(),
                    });
                }
            };
            at.cursor = next;
            let next_spec = W::Exec::spec(next);
            if next_spec.interrupt {
                return self.wait_here(at, next_spec.name, control).await;
            }
            let due = match spec.checkpoint {
                NodeCheckpoint::Always => true,
                NodeCheckpoint::Never => false,
                _ => match config.policy {
                    CheckpointPolicy::EveryStep => true,
                    CheckpointPolicy::OnInterrupt => false,
                    CheckpointPolicy::EveryN(n) => seq - at.stored >= n,
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
                let step = self.encode_at(&mut at, seq, Phase::Running, next_spec.name, true)?;
                self.append(&at.session, Some(at.stored), step, control)
                    .await?;
                at.stored = seq;
                at.unsaved = Duration::ZERO;
            }
        }
    }

    /// Runs one node with everything the plain loop leaves out: retries with backoff, the
    /// per-attempt timeout, cancellation, events and a tracing span. On failure the state (and
    /// pending input) is restored to what it was before the attempt, so no partial change is
    /// seen by a retry, an error node or a checkpoint.
    async fn run_node(
        &self,
        spec: &'static NodeSpec,
        has_error_route: bool,
        at: &mut Position<W>,
        ctx: &mut NodeCtx,
        control: &Control,
    ) -> Result<Transition<Cursor<W>>> {
        let workflow = &self.shared.workflow;
        let cursor = at.cursor;
        let attempts = spec.retry.saturating_add(1);
        // The cheapest rollback that needs no `Clone` bound: the checkpoint body encoding,
        // taken only for nodes that can retry or take an error edge.
        let snapshot = if spec.retry > 0 || has_error_route {
            Some(checkpoint::encode_rollback(
                &at.session,
                &(&at.state, at.input.as_ref()),
            )?)
        } else {
            None
        };
        let mut attempt = 1;
        loop {
            ctx.set_attempt(attempt);
            control.emit(|| Event::StepStarted {
                node: spec.name,
                seq: ctx.seq(),
                attempt,
            });
            let started = control.events.is_some().then(Instant::now);
            let step = W::Exec::step(workflow, cursor, &mut at.state, ctx, at.input.take());
            let span = if control.spans {
                tracing::debug_span!(target: "graph_runtime::step", "step", node = spec.name, seq = ctx.seq(), attempt)
            } else {
                tracing::Span::none()
            };
            let timed = async {
                match spec.timeout_ms {
                    None => Attempt::Done(step.await),
                    Some(ms) => {
                        let after = Duration::from_millis(ms);
                        match tokio::time::timeout(after, step).await {
                            Ok(transition) => Attempt::Done(transition),
                            Err(_) => Attempt::TimedOut(after),
                        }
                    }
                }
            }
            .instrument(span);
            let outcome = match &control.cancel {
                None => timed.await,
                Some(token) => tokio::select! {
                    biased;
                    outcome = timed => outcome,
                    () = token.cancelled() => return Err(Error::Cancelled(at.session.to_string())),
                },
            };
            if let Some(started) = started {
                let duration = started.elapsed();
                control.emit(|| Event::StepFinished {
                    node: spec.name,
                    seq: ctx.seq(),
                    duration,
                });
            }
            let (error, permanent): (NodeError, bool) = match outcome {
                Attempt::Done(Transition::Failed(e)) => (e, false),
                Attempt::Done(Transition::FailedPermanently(e)) => (e, true),
                Attempt::Done(transition) => return Ok(transition),
                Attempt::TimedOut(after) => (
                    Box::new(TimedOut {
                        node: spec.name,
                        after,
                    }),
                    false,
                ),
            };
            if let Some(bytes) = &snapshot {
                self.restore(at, bytes)?;
            }
            if permanent || attempt >= attempts {
                return Ok(Transition::Failed(error));
            }
            let delay = backoff(spec, attempt);
            tracing::debug!(node = spec.name, attempt, ?delay, error = %report(&*error), "retrying");
            control.emit(|| Event::Retrying {
                node: spec.name,
                attempt: attempt + 1,
                delay,
                error: report(&*error),
            });
            match &control.cancel {
                None => tokio::time::sleep(delay).await,
                Some(token) => tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = token.cancelled() => return Err(Error::Cancelled(at.session.to_string())),
                },
            }
            attempt += 1;
        }
    }

    /// Puts back the state and pending input saved before a failed attempt.
    fn restore(&self, at: &mut Position<W>, bytes: &[u8]) -> Result<()> {
        let (state, input) = checkpoint::decode_rollback(&at.session, at.seq, bytes)?;
        at.state = state;
        at.input = input;
        Ok(())
    }

    /// Saves a `Waiting` checkpoint at `node` and returns `Interrupted`.
    async fn wait_here(
        &self,
        mut at: Position<W>,
        node: &'static str,
        control: &Control,
    ) -> Result<Outcome<W::State>> {
        // A new sequence number unless the state in hand is not stored yet under its own.
        if at.seq == at.stored {
            at.seq += 1;
        }
        let seq = at.seq;
        let waiting = self.encode_at(&mut at, seq, Phase::Waiting, node, true)?;
        self.append(&at.session, Some(at.stored), waiting, control)
            .await?;
        Ok(Outcome::Interrupted {
            node,
            state: at.state,
        })
    }

    /// Encodes the state in hand as checkpoint `seq`, after the stored one (with the pending
    /// failure when `with_failure`).
    fn encode_at(
        &self,
        at: &mut Position<W>,
        seq: u64,
        phase: Phase,
        node: &'static str,
        with_failure: bool,
    ) -> Result<Checkpoint> {
        let failure = if with_failure {
            at.failure.as_ref()
        } else {
            None
        };
        self.encode(
            &mut at.chain,
            &at.session,
            seq,
            Some(at.stored),
            phase,
            Cow::Borrowed(node),
            &at.state,
            None,
            failure,
        )
    }

    /// Encodes checkpoint `seq` to follow `expected`: whole, or as a delta against the
    /// previous body when the chain allows it (see [`Chain`]). Kept apart from
    /// [`Runner::append`] so that no reference to the state lives across an `.await` (the
    /// state need not be `Sync`).
    #[allow(clippy::too_many_arguments)]
    fn encode(
        &self,
        chain: &mut Chain,
        session: &str,
        seq: u64,
        expected: Option<u64>,
        phase: Phase,
        node: Cow<'static, str>,
        state: &W::State,
        input: Option<&W::Input>,
        failure: Option<&Failure>,
    ) -> Result<Checkpoint> {
        let header = Header {
            session,
            graph_hash: W::GRAPH_HASH,
            seq,
            phase,
            node: &node,
            state_schema: W::STATE_SCHEMA,
            input_schema: W::INPUT_SCHEMA,
        };
        let (full, body) = checkpoint::encode(&header, state, input, failure, chain.size_hint)?;
        chain.size_hint = full.len();
        let body_len = body.len();
        let mut depends_on = None;
        let mut bytes = None;
        if body_len >= DELTA_MIN_BODY
            && expected.is_some()
            && chain.prev_seq == expected
            && chain.len < self.max_chain()
            && let (Some(prev), Some(base)) = (&chain.prev, expected)
        {
            // The chain may grow to twice the body before a full checkpoint pays off.
            let room = (2 * body_len).saturating_sub(chain.delta_bytes);
            if let Some(patch) = delta::encode(prev, &full[body.clone()], room.min(body_len / 2)) {
                let of = DeltaOf {
                    base,
                    anchor: chain.anchor,
                    // Fits: bodies are capped far below 4 GiB.
                    body_len: body_len as u32,
                    body_crc: checkpoint::body_checksum(&full[body.clone()]),
                };
                bytes = Some(checkpoint::seal(
                    &header,
                    input.is_some(),
                    Some(of),
                    &patch,
                )?);
                depends_on = Some(chain.anchor);
                chain.len += 1;
                chain.delta_bytes += patch.len();
            }
        }
        if depends_on.is_none() {
            chain.anchor = seq;
            chain.len = 0;
            chain.delta_bytes = 0;
        }
        chain.prev_seq = Some(seq);
        chain.prev = (body_len >= DELTA_MIN_BODY).then(|| full[body].to_vec());
        let bytes = bytes.unwrap_or(full);
        let status = phase.status(&node);
        Ok(Checkpoint {
            seq,
            node,
            status,
            created_at: SystemTime::now(),
            bytes,
            depends_on,
        })
    }

    /// The longest delta chain this runner's retention allows (see [`Chain`]).
    fn max_chain(&self) -> u32 {
        match self.config.retention {
            Retention::KeepLast(n) => u32::try_from(n)
                .unwrap_or(u32::MAX)
                .clamp(MIN_KEPT_CHAIN, MAX_CHAIN),
            _ => MAX_CHAIN,
        }
    }

    /// Appends a checkpoint after `expected` (compare-and-swap), applying the retention policy.
    async fn append(
        &self,
        session: &str,
        expected: Option<u64>,
        checkpoint: Checkpoint,
        control: &Control,
    ) -> Result<()> {
        self.append_with(session, expected, checkpoint, control, None)
            .await
    }

    /// [`Runner::append`], also setting the session's wake time for workers. Under a lease
    /// (`control.fence`) the write is fenced, records this graph's hash, and a checkpoint
    /// after which no node is due (completed, waiting) says the session needs no worker.
    async fn append_with(
        &self,
        session: &str,
        expected: Option<u64>,
        checkpoint: Checkpoint,
        control: &Control,
        mut wake: Option<Wake>,
    ) -> Result<()> {
        let (seq, bytes) = (checkpoint.seq, checkpoint.bytes.len());
        let settles = matches!(
            checkpoint.status,
            Status::Completed | Status::Waiting { .. }
        );
        let mut append = Append::new(expected, checkpoint, self.config.keep_last());
        if let Some(epoch) = control.fence {
            append = append.fence(epoch);
            if settles {
                wake = Some(Wake::Never);
            }
        }
        if let Some(wake) = wake {
            append = append.wake(wake).workflow(W::NAME, W::GRAPH_HASH);
        } else if control.fence.is_some() {
            append = append.workflow(W::NAME, W::GRAPH_HASH);
        }
        self.shared.store.append(session, append).await?;
        control.emit(|| Event::CheckpointSaved { seq, bytes });
        Ok(())
    }

    async fn load_latest(&self, session: &str) -> Result<Loaded<W>> {
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Err(Error::SessionNotFound(session.to_owned()));
        };
        self.decode(session, checkpoint).await
    }

    /// Opens a checkpoint read back from the store: checks its envelope, its graph hash and
    /// schema fingerprints, reconstructs it from its chain if it is a delta, and decodes it
    /// (through `migrate_from` if it was saved in an older schema).
    async fn decode(&self, session: &str, checkpoint: Checkpoint) -> Result<Loaded<W>> {
        let seq = checkpoint.seq;
        let envelope = checkpoint::open(session, seq, &checkpoint.bytes)?;
        self.admit(session, &envelope)?;
        let mut chain = Chain {
            size_hint: checkpoint.bytes.len(),
            prev_seq: Some(seq),
            anchor: seq,
            ..Chain::default()
        };
        let reconstructed;
        let body = match envelope.delta {
            None => envelope.body,
            Some(of) => {
                let links = self.shared.store.chain(session, of.anchor, of.base).await?;
                let (body, delta_bytes, len) = self.reconstruct(session, &envelope, of, &links)?;
                chain.anchor = of.anchor;
                chain.delta_bytes = delta_bytes;
                chain.len = len;
                reconstructed = body;
                &reconstructed[..]
            }
        };
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let stored_schema = envelope.state_schema.unwrap_or(W::STATE_SCHEMA);
        let (state, read) = if stored_schema == W::STATE_SCHEMA {
            checkpoint::decode_prefix::<W::State>(body)
                .map_err(|e| corrupt(format!("state does not decode: {e}")))?
        } else {
            match W::Exec::migrate_state(stored_schema, body) {
                Some(migrated) => migrated.map_err(|e| {
                    corrupt(format!("state of an older schema does not decode: {e}"))
                })?,
                None => {
                    return Err(Error::SchemaMismatch {
                        session: session.to_owned(),
                        seq,
                        what: "state",
                        stored: stored_schema,
                        compiled: W::STATE_SCHEMA,
                    });
                }
            }
        };
        if let Some(stored) = envelope.input_schema
            && stored != W::INPUT_SCHEMA
        {
            return Err(Error::SchemaMismatch {
                session: session.to_owned(),
                seq,
                what: "recorded input",
                stored,
                compiled: W::INPUT_SCHEMA,
            });
        }
        let (input, failure) = checkpoint::decode_tail(session, seq, &body[read..])?;
        // A renamed node's checkpoint names it by its old name: report the current one.
        let node = match W::Exec::cursor_of(envelope.node) {
            Some(cursor) => W::Exec::spec(cursor).name.to_owned(),
            None => envelope.node.to_owned(),
        };
        if body.len() >= DELTA_MIN_BODY {
            chain.prev = Some(body.to_vec());
        }
        Ok(Loaded {
            seq,
            phase: envelope.phase,
            node,
            state,
            input,
            failure,
            chain,
            graph_hash: envelope.graph_hash,
        })
    }

    /// Refuses a checkpoint of another graph, unless this graph accepts it.
    fn admit(&self, session: &str, envelope: &Envelope<'_>) -> Result<()> {
        let stored = envelope.graph_hash;
        if stored == W::GRAPH_HASH
            || W::ACCEPTED_GRAPHS.contains(&stored)
            || self.config.graph_change == GraphChange::Force
        {
            return Ok(());
        }
        Err(Error::GraphMismatch {
            session: session.to_owned(),
            stored,
            compiled: W::GRAPH_HASH,
        })
    }

    /// Rebuilds the body of the delta checkpoint `envelope` from `links`, the stored
    /// checkpoints from its chain's full checkpoint up to the one it applies to. Returns the
    /// body, the delta bytes in the chain and the number of deltas.
    fn reconstruct(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        of: DeltaOf,
        links: &[Checkpoint],
    ) -> Result<(Vec<u8>, usize, u32)> {
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq: envelope.seq,
            reason,
        };
        let Some((first, rest)) = links.split_first() else {
            return Err(corrupt(format!(
                "the delta chain is incomplete: its full checkpoint {} is not in the store",
                of.anchor
            )));
        };
        let full = checkpoint::open(session, first.seq, &first.bytes)?;
        if first.seq != of.anchor || full.delta.is_some() {
            return Err(corrupt(format!(
                "the delta chain is incomplete: its full checkpoint {} is not in the store",
                of.anchor
            )));
        }
        let mut deltas: Vec<&[u8]> = Vec::with_capacity(rest.len() + 1);
        let mut expected_base = first.seq;
        let mut delta_bytes = envelope.body.len();
        for link in rest {
            let opened = checkpoint::open(session, link.seq, &link.bytes)?;
            match opened.delta {
                Some(d) if d.base == expected_base && d.anchor == of.anchor => {}
                _ => {
                    return Err(corrupt(format!(
                        "checkpoint {} breaks the delta chain from {}",
                        link.seq, of.anchor
                    )));
                }
            }
            delta_bytes += opened.body.len();
            deltas.push(opened.body);
            expected_base = link.seq;
        }
        if of.base != expected_base {
            return Err(corrupt(format!(
                "the delta chain is incomplete: checkpoint {} is not in the store",
                of.base
            )));
        }
        deltas.push(envelope.body);
        let body = delta::reconstruct(full.body, &deltas, checkpoint::MAX_BODY_BYTES)
            .map_err(|e| corrupt(format!("delta does not apply: {e}")))?;
        if body.len() != of.body_len as usize || checkpoint::body_checksum(&body) != of.body_crc {
            return Err(corrupt(
                "the reconstructed body does not match its checksum".to_owned(),
            ));
        }
        let len = u32::try_from(deltas.len()).unwrap_or(u32::MAX);
        Ok((body, delta_bytes, len))
    }

    fn cursor(&self, session: &str, loaded: &Loaded<W>) -> Result<Cursor<W>> {
        let node = &loaded.node;
        W::Exec::cursor_of(node).ok_or_else(|| {
            if loaded.graph_hash == W::GRAPH_HASH {
                // Saved by this very graph, which has every stored node name: a missing one
                // means the bytes lie.
                Error::Corrupt {
                    session: session.to_owned(),
                    seq: loaded.seq,
                    reason: format!("cursor `{node}` is not a node of this graph"),
                }
            } else {
                // An older graph (accepted, or under `Force`) had a node this one removed.
                Error::UnknownNode {
                    session: session.to_owned(),
                    node: node.clone(),
                }
            }
        })
    }
}

/// The wait before attempt `attempt + 1`: `backoff_ms * 2^(attempt - 1)`, capped at
/// `backoff_max_ms`, then (with jitter) a uniform value between half of it and all of it.
fn backoff(spec: &NodeSpec, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(63);
    let ms = spec
        .backoff_ms
        .saturating_mul(1u64 << exponent)
        .min(spec.backoff_max_ms);
    let ms = if spec.jitter && ms > 1 {
        ms / 2 + fastrand::u64(0..=ms - ms / 2)
    } else {
        ms
    };
    Duration::from_millis(ms)
}
