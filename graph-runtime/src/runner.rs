//! The runner: start, resume, interrupts, history and forks; the step loop.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use crate::checkpoint::{self, Header, Phase};
use crate::store::{Append, Checkpoint, Store};
use crate::{Error, NodeCtx, Result, Transition, Workflow};

/// The node name stored as the cursor of a completed session.
const END: &str = "END";

/// When the runner saves a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointPolicy {
    /// After every step (the default): a crash re-runs at most the step in flight.
    #[default]
    EveryStep,
    /// Only when a session waits at an interrupt and when it completes. Fastest; a crash
    /// re-runs everything since the last interrupt.
    OnInterrupt,
    /// After every `n`th step, and at interrupts and completion. `EveryN(0)` is rejected with
    /// [`Error::InvalidConfig`].
    EveryN(u64),
}

/// How many checkpoints a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Retention {
    /// Every checkpoint (the default): full history, rewind and fork from any step.
    #[default]
    KeepAll,
    /// Only the newest `n`, pruned in the same store transaction as each append.
    /// `KeepLast(0)` is rejected with [`Error::InvalidConfig`].
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
#[derive(Debug, Clone, PartialEq)]
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
    pub fn into_state(self) -> T {
        match self {
            Outcome::Completed(state) | Outcome::Interrupted { state, .. } => state,
        }
    }
}

/// The latest checkpoint of a session, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot<T> {
    /// Its sequence number.
    pub seq: u64,
    /// The cursor: the node that runs next (`"END"` once completed).
    pub node: String,
    /// Where the session stands.
    pub status: Status,
    /// The state after the last saved step.
    pub state: T,
}

/// One kept checkpoint of a session, as [`Runner::history`] lists it.
pub type CheckpointInfo = crate::store::CheckpointMeta;

#[derive(Debug, Clone, Copy)]
struct Config {
    policy: CheckpointPolicy,
    retention: Retention,
    max_steps: u64,
    graph_change: GraphChange,
}

impl Config {
    fn validate(&self) -> Result<()> {
        if self.policy == CheckpointPolicy::EveryN(0) {
            return Err(Error::InvalidConfig("`CheckpointPolicy::EveryN(0)`: n must be at least 1"));
        }
        if self.retention == Retention::KeepLast(0) {
            return Err(Error::InvalidConfig(
                "`Retention::KeepLast(0)`: keep at least 1 checkpoint, the one resume starts from",
            ));
        }
        Ok(())
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
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
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
        Runner { shared: Arc::clone(&self.shared), config: self.config }
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
    node: String,
    state: W::State,
    input: Option<W::Input>,
}

/// Where a running session stands, carried through the step loop.
struct Position<W: Workflow> {
    session: Arc<str>,
    /// The sequence number of the state in hand.
    seq: u64,
    /// The sequence number of the newest checkpoint in the store.
    stored: u64,
    cursor: W::Cursor,
    state: W::State,
    input: Option<W::Input>,
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
            },
        }
    }

    /// Sets when checkpoints are saved (default [`CheckpointPolicy::EveryStep`]).
    pub fn checkpoint_policy(mut self, policy: CheckpointPolicy) -> Self {
        self.config.policy = policy;
        self
    }

    /// Sets how many checkpoints each session keeps (default [`Retention::KeepAll`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.config.retention = retention;
        self
    }

    /// Ends a call with [`Error::StepLimit`] after `n` steps (default: no limit). The count is
    /// per call; the session stays at its last checkpoint and `resume` continues it.
    pub fn max_steps(mut self, n: u64) -> Self {
        self.config.max_steps = n;
        self
    }

    /// Sets what happens to checkpoints saved by a different graph (default
    /// [`GraphChange::Strict`]).
    pub fn on_graph_change(mut self, graph_change: GraphChange) -> Self {
        self.config.graph_change = graph_change;
        self
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
        self.config.validate()?;
        let cursor = W::ENTRY;
        let spec = W::spec(cursor);
        let phase = if spec.interrupt { Phase::Waiting } else { Phase::Running };
        let session: Arc<str> = Arc::from(session);
        let mut size_hint = 0;
        self.save(&session, None, 0, phase, spec.name, &state, None, &mut size_hint)
            .await
            .map_err(|e| match e {
                Error::Conflict { session, .. } => Error::SessionExists(session),
                e => e,
            })?;
        if spec.interrupt {
            return Ok(Outcome::Interrupted { node: spec.name, state });
        }
        let position = Position { session, seq: 0, stored: 0, cursor, state, input: None };
        self.drive(position, size_hint).await
    }

    /// Continues a session from its latest checkpoint: after a crash, a node error or a step
    /// limit. A completed session returns its `Completed` outcome again; a waiting one returns
    /// `Interrupted` again without running anything.
    pub async fn resume(&self, session: &str) -> Result<Outcome<W::State>> {
        self.config.validate()?;
        let (loaded, size_hint) = self.load_latest(session).await?;
        match loaded.phase {
            Phase::Completed => Ok(Outcome::Completed(loaded.state)),
            Phase::Waiting => {
                let cursor = self.cursor(session, &loaded.node)?;
                Ok(Outcome::Interrupted { node: W::spec(cursor).name, state: loaded.state })
            }
            Phase::Running => {
                let cursor = self.cursor(session, &loaded.node)?;
                let position = Position {
                    session: Arc::from(session),
                    seq: loaded.seq,
                    stored: loaded.seq,
                    cursor,
                    state: loaded.state,
                    input: loaded.input,
                };
                self.drive(position, size_hint).await
            }
        }
    }

    /// Gives a waiting session its decision and runs on.
    ///
    /// The input is first recorded durably (so a crash after this point resumes with it), then
    /// the interrupt node runs with it. Nothing that ran before the interrupt runs again. Fails
    /// with [`Error::NotWaiting`] if the session is not waiting at the input's node.
    pub async fn resume_with(&self, session: &str, input: W::Input) -> Result<Outcome<W::State>> {
        self.config.validate()?;
        let target = W::input_node(&input);
        let target_name = W::spec(target).name;
        let (loaded, mut size_hint) = self.load_latest(session).await?;
        if loaded.phase != Phase::Waiting || loaded.node != target_name {
            let actual = match loaded.phase {
                Phase::Waiting => format!("it waits at `{}`", loaded.node),
                Phase::Running => format!("it is running at `{}`", loaded.node),
                Phase::Completed => "it has completed".to_owned(),
            };
            return Err(Error::NotWaiting { session: session.to_owned(), node: target_name, actual });
        }
        let session: Arc<str> = Arc::from(session);
        let seq = loaded.seq + 1;
        self.save(
            &session,
            Some(loaded.seq),
            seq,
            Phase::Running,
            target_name,
            &loaded.state,
            Some(&input),
            &mut size_hint,
        )
        .await?;
        let position = Position {
            session,
            seq,
            stored: seq,
            cursor: target,
            state: loaded.state,
            input: Some(input),
        };
        self.drive(position, size_hint).await
    }

    /// The latest checkpoint of a session, decoded; `None` if the session does not exist.
    pub async fn state(&self, session: &str) -> Result<Option<Snapshot<W::State>>> {
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Ok(None);
        };
        let loaded = self.decode(session, &checkpoint)?;
        let status = loaded.phase.status(&loaded.node);
        Ok(Some(Snapshot { seq: loaded.seq, node: loaded.node, status, state: loaded.state }))
    }

    /// Every kept checkpoint of a session, oldest first.
    ///
    /// Fails with [`Error::SessionNotFound`] if the session does not exist.
    pub async fn history(&self, session: &str) -> Result<Vec<CheckpointInfo>> {
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
        self.config.validate()?;
        let store = &self.shared.store;
        let Some(checkpoint) = store.get(session, seq).await? else {
            return Err(match store.latest(session).await? {
                None => Error::SessionNotFound(session.to_owned()),
                Some(_) => Error::CheckpointNotFound { session: session.to_owned(), seq },
            });
        };
        let loaded = self.decode(session, &checkpoint)?;
        let mut size_hint = checkpoint.bytes.len();
        self.save_named(
            new_session,
            None,
            seq,
            loaded.phase,
            Cow::Owned(loaded.node.clone()),
            &loaded.state,
            loaded.input.as_ref(),
            &mut size_hint,
        )
        .await
        .map_err(|e| match e {
            Error::Conflict { session, .. } => Error::SessionExists(session),
            e => e,
        })?;
        let status = loaded.phase.status(&loaded.node);
        Ok(Snapshot { seq, node: loaded.node, status, state: loaded.state })
    }

    /// Removes a session and its whole history; returns whether it existed.
    pub async fn delete(&self, session: &str) -> Result<bool> {
        self.shared.store.delete(session).await
    }

    /// The step loop: runs nodes from `position` until the session completes, waits, or fails.
    async fn drive(&self, mut at: Position<W>, mut size_hint: usize) -> Result<Outcome<W::State>> {
        let config = self.config;
        let workflow = &self.shared.workflow;
        let mut ctx = NodeCtx::new(Arc::clone(&at.session));
        let mut steps: u64 = 0;
        loop {
            let spec = W::spec(at.cursor);
            if spec.interrupt && at.input.is_none() {
                // Only reachable when a session was resumed at an interrupt node that had not
                // been marked waiting (a forked or force-resumed checkpoint): mark it now.
                return self.wait_here(at, spec.name, &mut size_hint).await;
            }
            if steps >= config.max_steps {
                return Err(Error::StepLimit {
                    session: at.session.to_string(),
                    limit: config.max_steps,
                });
            }
            steps += 1;
            let seq = at.seq + 1;
            ctx.enter(spec.name, seq);
            let transition = workflow.step(at.cursor, &mut at.state, &ctx, at.input.take()).await;
            at.seq = seq;
            match transition {
                Transition::Next(next) => {
                    at.cursor = next;
                    let next_spec = W::spec(next);
                    if next_spec.interrupt {
                        return self.wait_here(at, next_spec.name, &mut size_hint).await;
                    }
                    let due = match config.policy {
                        CheckpointPolicy::EveryStep => true,
                        CheckpointPolicy::OnInterrupt => false,
                        CheckpointPolicy::EveryN(n) => seq - at.stored >= n,
                    };
                    if due {
                        self.save(
                            &at.session,
                            Some(at.stored),
                            seq,
                            Phase::Running,
                            next_spec.name,
                            &at.state,
                            None,
                            &mut size_hint,
                        )
                        .await?;
                        at.stored = seq;
                    }
                }
                Transition::End => {
                    self.save(
                        &at.session,
                        Some(at.stored),
                        seq,
                        Phase::Completed,
                        END,
                        &at.state,
                        None,
                        &mut size_hint,
                    )
                    .await?;
                    return Ok(Outcome::Completed(at.state));
                }
                Transition::Failed(source) => return Err(Error::Node { node: spec.name, source }),
                Transition::MissingInput => {
                    return Err(Error::NotWaiting {
                        session: at.session.to_string(),
                        node: spec.name,
                        actual: "the interrupt node ran without its input".to_owned(),
                    });
                }
            }
        }
    }

    /// Saves a `Waiting` checkpoint at `node` and returns `Interrupted`.
    async fn wait_here(
        &self,
        mut at: Position<W>,
        node: &'static str,
        size_hint: &mut usize,
    ) -> Result<Outcome<W::State>> {
        // A new sequence number unless the state in hand is not stored yet under its own.
        if at.seq == at.stored {
            at.seq += 1;
        }
        self.save(&at.session, Some(at.stored), at.seq, Phase::Waiting, node, &at.state, None, size_hint)
            .await?;
        Ok(Outcome::Interrupted { node, state: at.state })
    }

    #[allow(clippy::too_many_arguments)]
    async fn save(
        &self,
        session: &str,
        expected: Option<u64>,
        seq: u64,
        phase: Phase,
        node: &'static str,
        state: &W::State,
        input: Option<&W::Input>,
        size_hint: &mut usize,
    ) -> Result<()> {
        self.save_named(session, expected, seq, phase, Cow::Borrowed(node), state, input, size_hint)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn save_named(
        &self,
        session: &str,
        expected: Option<u64>,
        seq: u64,
        phase: Phase,
        node: Cow<'static, str>,
        state: &W::State,
        input: Option<&W::Input>,
        size_hint: &mut usize,
    ) -> Result<()> {
        let header = Header { session, graph_hash: W::GRAPH_HASH, seq, phase, node: &node };
        let bytes = checkpoint::encode(&header, state, input, *size_hint)?;
        *size_hint = bytes.len();
        let status = phase.status(&node);
        let checkpoint = Checkpoint { seq, node, status, created_at: SystemTime::now(), bytes };
        self.shared
            .store
            .append(session, Append::new(expected, checkpoint, self.config.keep_last()))
            .await
    }

    async fn load_latest(&self, session: &str) -> Result<(Loaded<W>, usize)> {
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Err(Error::SessionNotFound(session.to_owned()));
        };
        Ok((self.decode(session, &checkpoint)?, checkpoint.bytes.len()))
    }

    fn decode(&self, session: &str, checkpoint: &Checkpoint) -> Result<Loaded<W>> {
        let envelope = checkpoint::open(
            session,
            checkpoint.seq,
            &checkpoint.bytes,
            W::GRAPH_HASH,
            self.config.graph_change,
        )?;
        let (state, input) = checkpoint::decode_body(session, checkpoint.seq, envelope.body)?;
        Ok(Loaded {
            seq: envelope.seq,
            phase: envelope.phase,
            node: envelope.node.to_owned(),
            state,
            input,
        })
    }

    fn cursor(&self, session: &str, node: &str) -> Result<W::Cursor> {
        W::cursor_of(node).ok_or_else(|| match self.config.graph_change {
            GraphChange::Force => {
                Error::UnknownNode { session: session.to_owned(), node: node.to_owned() }
            }
            // Under Strict the hash matched, so the graph has every stored node name: a
            // missing one means the bytes lie.
            GraphChange::Strict => Error::Corrupt {
                session: session.to_owned(),
                seq: 0,
                reason: format!("cursor `{node}` is not a node of this graph"),
            },
        })
    }
}
