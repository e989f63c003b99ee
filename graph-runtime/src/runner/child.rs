//! Subgraphs: a node that runs another workflow as a durable child session
//! (`#[node(subgraph = m)]` with a [`Child<m::Workflow>`](Child) parameter).
//!
//! The child is a session of its own in its parent's store, run by a [`Runner`] of the child
//! workflow with its parent runner's configuration. Its id is derived from the step that runs
//! it (see [`Child::session_id`]), so every re-run of that step — a retry, or a resume after a
//! crash — names the same child, and [`Child::run`] never starts it twice.

use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use super::config::Config;
use super::{Outcome, Runner, Shared};
use crate::schema::Fingerprint;
use crate::session_id::MAX_SESSION_ID_BYTES;
use crate::store::{ErasedStore, HoldsStore, Store};
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
pub(super) struct RecordedGraphs(Arc<Mutex<Vec<(&'static str, u64)>>>);

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
/// `&'static str` (what [`Outcome::Interrupted`] and `Snapshot::waiting` name a node by).
/// Each distinct path is allocated once for the life of the process: the paths are a
/// graph's subgraph nodes times its children's interrupt nodes, a small set.
pub(crate) fn wait_path(node: &str, child: &str) -> &'static str {
    static PATHS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let path = format!("{node}/{child}");
    let mut paths = PATHS.lock().unwrap_or_else(PoisonError::into_inner);
    let paths = paths.get_or_insert_with(HashSet::new);
    if let Some(known) = paths.get(path.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(path.into_boxed_str());
    paths.insert(leaked);
    leaked
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
        Arc::new(ChildHost {
            store: ErasedStore(Arc::clone(&self.shared) as _),
            config: self.config.clone(),
            recorded: self.shared.children_recorded.clone(),
            interrupted: Mutex::new(None),
        })
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
    /// The subgraph node that runs it.
    node: &'static str,
    host: Option<Arc<ChildHost>>,
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
            node: ctx.node(),
            host: ctx.child_host().cloned(),
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
    /// [`Child::session_id`]), resuming the parent runs the node again, and this call
    /// returns the child's final state. [`Error::InvalidConfig`] when the node runs outside
    /// a runner (its context has no store).
    pub async fn run(self, initial: W::State) -> Result<W::State> {
        let Some(host) = self.host else {
            return Err(Error::InvalidConfig(
                "a subgraph node ran without its runner: `Child::run` needs the context the runner gives the node",
            ));
        };
        let runner = child_runner(&host, self.workflow);
        let outcome = match runner.start(&self.session, initial).await {
            Err(Error::SessionExists(_)) => runner.resume(&self.session).await,
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

/// The answer for a waiting child, given to its parent (`resume_with(parent,
/// Input::Research(child_input))`): runs the child's own `resume_with` under the parent's
/// store and configuration.
pub(crate) struct ChildAnswer {
    #[allow(clippy::type_complexity)]
    answer: Box<
        dyn FnOnce(
                Arc<ChildHost>,
                String,
                Option<String>,
                Option<String>,
            )
                -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>
            + Send,
    >,
}

impl ChildAnswer {
    /// The answer `input` for a child of workflow `workflow`.
    pub(crate) fn new<W: Workflow>(workflow: W, input: W::Input) -> Self {
        ChildAnswer {
            answer: Box::new(move |host, child, actor, note| {
                Box::pin(async move {
                    let runner = child_runner(&host, workflow);
                    let mut decision = runner.resume_with(&child, input);
                    if let Some(actor) = actor {
                        decision = decision.by(actor);
                    }
                    if let Some(note) = note {
                        decision = decision.note(note);
                    }
                    let result = decision.await.map(drop);
                    remember_graph(&host, &runner);
                    result
                })
            }),
        }
    }

    /// Gives the child session `child` its input (said by `actor`, with `note`), and runs
    /// it on until it completes or waits again.
    pub(super) async fn give(
        self,
        host: Arc<ChildHost>,
        child: String,
        actor: Option<String>,
        note: Option<String>,
    ) -> Result<()> {
        (self.answer)(host, child, actor, note).await
    }
}

/// A runner of the child workflow `workflow` under the parent's store and configuration,
/// which records the child's graph version only if no child runner of its parent did.
fn child_runner<W: Workflow>(host: &ChildHost, workflow: W) -> Runner<W, ErasedStore> {
    Runner {
        shared: Arc::new(Shared {
            workflow,
            store: host.store.clone(),
            graph_recorded: std::sync::atomic::AtomicBool::new(host.recorded.contains::<W>()),
            children_recorded: host.recorded.clone(),
        }),
        config: host.config.clone(),
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
