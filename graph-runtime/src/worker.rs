//! Workers: processes that share one store and run whatever sessions are runnable.
//!
//! A [`Worker`] claims runnable sessions of the workflows it [registered](Worker::register)
//! with a lease (see [the lease protocol](crate::store::Lease)), runs each from its latest
//! checkpoint with every write fenced by the lease's epoch, renews the lease every third of
//! its time to live while the session runs, and releases it when the session completes, waits
//! for an input, or the worker shuts down. A worker that stops renewing (killed, frozen, cut
//! off) loses its sessions to the other workers once the lease expires, and can never write to
//! them again: its fenced writes fail with [`Error::LeaseLost`], and a lost lease cancels the
//! node it was running.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::execute::Execute;
use crate::runner::{Config, RecordedGraphs};
use crate::store::{Claim, ErasedStore, Lease, Store};
use crate::{Error, Outcome, Result, Runner, Workflow};

/// How often a worker looks for work when nothing wakes it: the bound on how late it notices
/// a session another process made runnable without a wake-up (SQLite, an expired lease).
const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// The lease time to live when none is set.
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Sessions one worker runs at once when no concurrency is set.
const DEFAULT_CONCURRENCY: usize = 16;
/// The lease a worker keeps on a session that had completed before it claimed it: a century,
/// that is for good (see "Sessions that need no run" on [`Worker`]).
const PARKED: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Runs the sessions of its registered workflows that are runnable in a shared store:
/// sessions [enqueued](Runner::enqueue), given an input ([`Runner::enqueue_input`]), whose
/// deadline passed, or whose previous worker's lease expired.
///
/// ```no_run
/// use std::time::Duration;
/// use graph_runtime::prelude::*;
/// use graph_runtime::{CancellationToken, Worker};
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
/// # #[tokio::main] async fn main() -> Result<(), graph_runtime::Error> {
/// let store = SqliteStore::open("jobs.db")?;
/// let runner = Runner::new(job::Workflow, store.clone());
/// runner.enqueue("job-1", Job::default()).await?;   // from a web handler, say
///
/// let shutdown = CancellationToken::new();
/// // On SIGTERM: `shutdown.cancel()`; the worker drains its sessions and releases them.
/// Worker::new(store)
///     .register(runner)
///     .concurrency(64)
///     .lease_ttl(Duration::from_secs(30))
///     .run(shutdown)
///     .await?;
/// # Ok(()) }
/// ```
///
/// # How a claimed session ends
///
/// - **It completes, or stops at an interrupt**: its last checkpoint, written under the
///   lease, says it needs no worker (until an input comes), and the lease is released.
/// - **The run fails** (a node failed with no error edge left to take, the store failed
///   mid-run, the checkpoint cannot be read): the session stays at its last checkpoint and
///   the worker keeps the lease without renewing it, so the session is claimed again, by any
///   worker, once the lease expires: a failing session is retried once per `lease_ttl`
///   rather than in a tight loop, and a store outage costs at most one `lease_ttl` once the
///   store is back. [`Runner::delete`] it (or fix what fails) to stop the retries.
/// - **The lease is lost** (a renewal says [`Error::LeaseLost`], or renewals failed for a
///   whole `lease_ttl`): the running node is cancelled (its future dropped), and any write
///   the run still attempts fails with [`Error::LeaseLost`]; another worker owns the session.
/// - **The worker shuts down**: no new claims; each running session runs until it completes,
///   waits, or fails, and its lease is released.
///
/// # Sessions that need no run
///
/// A session can be runnable and yet have nothing to run: one that was
/// [enqueued](Runner::enqueue) and then run in-process ([`Runner::resume`],
/// [`Runner::resume_with`]) to its end or to an interrupt, writes that say nothing about
/// workers. A claim takes it, the run writes nothing, and the session would stay runnable.
/// The worker notices (the latest checkpoint is unchanged) and does not release it:
///
/// - a **completed** session is *parked*: its lease is renewed for a century. Nothing can
///   make a completed session runnable again, so no claim should take it; deleting the
///   session removes the lease with it.
/// - a session **waiting** at an interrupt keeps its lease until it expires: it is claimed
///   again at most once per `lease_ttl`, and an input given in the meantime
///   ([`Runner::enqueue_input`]) is run at most one `lease_ttl` late.
///
/// (A store method that releases a lease and clears the wake time in one statement,
/// provided the session's latest checkpoint is still the one the worker saw, would settle
/// both without either cost.)
pub struct Worker<S: Store> {
    store: S,
    registered: Vec<Arc<dyn Registered>>,
    concurrency: usize,
    lease_ttl: Duration,
    poll: Duration,
    owner: String,
    /// The first invalid setting a builder method was given, reported by [`Worker::run`].
    invalid: Option<&'static str>,
}

impl<S: Store> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let workflows: Vec<&str> = self.registered.iter().map(|r| r.name()).collect();
        f.debug_struct("Worker")
            .field("owner", &self.owner)
            .field("workflows", &workflows)
            .field("concurrency", &self.concurrency)
            .field("lease_ttl", &self.lease_ttl)
            .field("poll", &self.poll)
            .finish()
    }
}

impl<S: Store + Clone> Worker<S> {
    /// A worker on `store` that runs nothing until workflows are
    /// [registered](Worker::register); at most 16 sessions at once, 30 s leases, a 1 s poll.
    pub fn new(store: S) -> Self {
        Worker {
            store,
            registered: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            lease_ttl: DEFAULT_TTL,
            poll: DEFAULT_POLL,
            owner: default_owner(),
            invalid: None,
        }
    }

    /// Runs sessions of `runner`'s workflow, with its policies (checkpoints, retention, step
    /// limit, graph changes): sessions saved under its [`GRAPH_HASH`](Workflow::GRAPH_HASH)
    /// or one of its [`ACCEPTED_GRAPHS`](Workflow::ACCEPTED_GRAPHS). A claim never takes a
    /// session of another graph, so during a rolling deploy old workers leave new sessions
    /// alone. Register every workflow this binary runs; registering one name twice is
    /// [`Error::InvalidConfig`].
    ///
    /// The child workflows of `runner`'s subgraph nodes (`#[node(subgraph = m)]`), and
    /// theirs, are registered with it: the worker runs the children of the sessions it runs,
    /// in the same store and with `runner`'s policies, unless a runner of the child workflow
    /// is registered as well (before or after), which then takes its place. A map parent
    /// whose items' children run on workers waits without a lease; each child that ends wakes
    /// it, and its wait wakes it again after 30 s while children run (10 minutes while they
    /// only wait for inputs), so a wake-up lost in a crash delays the parent, never strands it.
    pub fn register<W: Workflow>(mut self, runner: Runner<W, S>) -> Self {
        if let Some(at) = self.registered.iter().position(|r| r.name() == W::NAME) {
            if self.registered[at].is_child() {
                // Registered as the child of another workflow: this runner takes its place.
                self.registered.remove(at);
            } else {
                self.reject("a workflow was registered twice with one worker");
            }
        }
        let children = runner.children();
        self.registered.push(Arc::new(runner));
        self.register_children(children);
        self
    }

    /// Registers `children` (and their own children) unless a workflow of that name is
    /// registered already.
    fn register_children(&mut self, mut children: Vec<Arc<dyn Registered>>) {
        while let Some(child) = children.pop() {
            if self.registered.iter().any(|r| r.name() == child.name()) {
                continue;
            }
            children.extend(child.children());
            self.registered.push(child);
        }
    }

    /// How many sessions this process runs at once (default 16): it claims no more than it
    /// has room for, so a slow store or slow nodes hold work back rather than pile it up.
    /// 0 is [`Error::InvalidConfig`].
    pub fn concurrency(mut self, sessions: usize) -> Self {
        if sessions == 0 {
            self.reject("`Worker::concurrency(0)` would never run a session");
        }
        self.concurrency = sessions;
        self
    }

    /// How long a claim holds a session unless renewed (default 30 s). The worker renews
    /// every third of it; a worker that dies lets its sessions go to others after at most
    /// this long. Less than 30 ms is [`Error::InvalidConfig`].
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        if ttl < Duration::from_millis(30) {
            self.reject("`Worker::lease_ttl` below 30 ms leaves no time to renew a lease");
        }
        self.lease_ttl = ttl;
        self
    }

    /// How long the worker waits for a wake-up before it looks for work anyway (default
    /// 1 s): the bound on how late it notices work no wake-up announced (another process's
    /// write to a SQLite file, an expired lease). 0 is [`Error::InvalidConfig`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        if interval.is_zero() {
            self.reject("`Worker::poll_interval(0)` would spin");
        }
        self.poll = interval;
        self
    }

    /// The name this worker's leases carry (default: host name, process id and a counter),
    /// for operators who look at who holds what.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    fn reject(&mut self, problem: &'static str) {
        self.invalid.get_or_insert(problem);
    }

    /// Claims and runs sessions until `shutdown` is cancelled; then claims nothing more, lets
    /// the sessions it runs finish their run (until they complete, wait, or fail), releases
    /// their leases, and returns.
    ///
    /// Store errors while claiming (the database restarting, a pool exhausted) are logged
    /// and retried with a growing pause; they never end the loop. Fails at once with
    /// [`Error::InvalidConfig`] for a bad setting or no registered workflow.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        if let Some(problem) = self.invalid {
            return Err(Error::InvalidConfig(problem));
        }
        if self.registered.is_empty() {
            return Err(Error::InvalidConfig(
                "a worker needs at least one `Worker::register`ed runner",
            ));
        }
        let mut claim = Claim::new(self.owner.clone(), self.lease_ttl, 0);
        for registered in &self.registered {
            claim = claim.workflow(registered.name(), registered.graphs());
        }
        let mut running: JoinSet<()> = JoinSet::new();
        let mut pause = Duration::ZERO;
        loop {
            while running.try_join_next().is_some() {}
            if shutdown.is_cancelled() {
                break;
            }
            let room = self.concurrency.saturating_sub(running.len());
            let mut claimed = 0;
            if room > 0 {
                claim.limit = room;
                match self.store.claim(&claim).await {
                    Ok(leases) => {
                        pause = Duration::ZERO;
                        claimed = leases.len();
                        for lease in leases {
                            let Some(runner) = self
                                .registered
                                .iter()
                                .find(|r| r.name() == lease.workflow)
                                .cloned()
                            else {
                                // The claim lists only registered workflows; a store that
                                // returned another is wrong, and the lease runs out.
                                tracing::error!(session = %lease.session, workflow = %lease.workflow, "claimed a session of an unregistered workflow");
                                continue;
                            };
                            let span = tracing::info_span!("leased_run", owner = %self.owner, session = %lease.session, epoch = lease.epoch);
                            running.spawn(
                                run_session(self.store.clone(), runner, lease, self.lease_ttl)
                                    .instrument(span),
                            );
                        }
                    }
                    Err(error) => {
                        pause = (pause * 2).clamp(Duration::from_millis(50), self.poll * 5);
                        tracing::warn!(%error, ?pause, "claiming sessions failed; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                }
            }
            if room > 0 && claimed == room {
                // Every slot was filled: there may be more work at once.
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.store.wait_for_work(self.poll), if room > 0 => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
        // Drain: every session task ends by itself (its run completes, waits or fails) and
        // releases its lease.
        while running.join_next().await.is_some() {}
        Ok(())
    }
}

/// A runner as a worker holds it, its workflow type erased.
trait Registered: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn graphs(&self) -> Vec<u64>;
    fn run(&self, lease: Lease, cancel: CancellationToken) -> RunFuture;
    /// Runners of the child workflows of this one's subgraph nodes, on its store and with
    /// its configuration.
    fn children(&self) -> Vec<Arc<dyn Registered>>;
    /// Whether it was registered as the child of another workflow (not by the caller).
    fn is_child(&self) -> bool;
}

/// A child workflow of a subgraph node, as `#[workflow]` lists it for workers
/// (`Execute::child_workers`, built by `__private::child_worker`): makes a runner of it on its
/// parent's store, with its parent's configuration.
pub(crate) struct ChildWorker {
    make: fn(ErasedStore, Config, RecordedGraphs) -> Arc<dyn Registered>,
}

impl ChildWorker {
    /// The child workflow `W`.
    pub(crate) fn of<W: Workflow + Default>() -> Self {
        ChildWorker {
            make: |store, config, recorded| {
                Arc::new(AsChild(Runner::<W, ErasedStore>::on_erased(
                    W::default(),
                    store,
                    config,
                    recorded,
                )))
            },
        }
    }
}

/// A runner registered as the child of another workflow.
struct AsChild<W: Workflow>(Runner<W, ErasedStore>);

impl<W: Workflow> Registered for AsChild<W> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn graphs(&self) -> Vec<u64> {
        self.0.graphs()
    }
    fn run(&self, lease: Lease, cancel: CancellationToken) -> RunFuture {
        // (A child that ends wakes its parent through the run itself.)
        self.0.run(lease, cancel)
    }
    fn children(&self) -> Vec<Arc<dyn Registered>> {
        self.0.children()
    }
    fn is_child(&self) -> bool {
        true
    }
}

/// How a leased run ended.
type RunFuture = Pin<Box<dyn std::future::Future<Output = Result<Settled>> + Send>>;

/// Where a session stands after a leased run that did not fail.
#[derive(Debug)]
enum Settled {
    /// The run reached `END`; its last (fenced) write said the session needs no worker.
    Completed,
    /// The run stopped at an interrupt node; its last write said so.
    Waiting(&'static str),
    /// The session had completed before the claim (run to its end outside a worker): the
    /// run wrote nothing, so its wake time still says "runnable".
    AlreadyCompleted,
    /// The session waited at this interrupt node before the claim and still does: the run
    /// wrote nothing, so its wake time still says "runnable".
    StillWaiting(&'static str),
}

impl<W: Workflow, S: Store> Registered for Runner<W, S> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn graphs(&self) -> Vec<u64> {
        let mut graphs = vec![W::GRAPH_HASH];
        graphs.extend_from_slice(W::ACCEPTED_GRAPHS);
        graphs
    }

    fn children(&self) -> Vec<Arc<dyn Registered>> {
        let children = <W::Exec as Execute<W>>::child_workers();
        if children.is_empty() {
            return Vec::new();
        }
        let (store, config, recorded) = self.erased_parts();
        children
            .into_iter()
            .filter_map(|child| child.downcast::<ChildWorker>().ok())
            .map(|child| (child.make)(store.clone(), config.clone(), recorded.clone()))
            .collect()
    }

    fn is_child(&self) -> bool {
        false
    }

    fn run(&self, lease: Lease, cancel: CancellationToken) -> RunFuture {
        let runner = self.clone();
        Box::pin(async move {
            // A session that is completed or waiting needs no run, and the run then writes
            // nothing: the run says whether it wrote.
            let (outcome, wrote) = runner.run_leased(&lease, cancel).await?;
            Ok(match (outcome, wrote) {
                (Outcome::Completed(_), true) => Settled::Completed,
                (Outcome::Completed(_), false) => Settled::AlreadyCompleted,
                (Outcome::Interrupted { node, .. }, true) => Settled::Waiting(node),
                (Outcome::Interrupted { node, .. }, false) => Settled::StillWaiting(node),
            })
        })
    }
}

/// Runs one claimed session while renewing its lease; releases the lease when done.
async fn run_session<S: Store>(store: S, runner: Arc<dyn Registered>, lease: Lease, ttl: Duration) {
    let lost = CancellationToken::new();
    let mut run = runner.run(lease.clone(), lost.clone());
    let renewing = renew_until_lost(&store, &lease, ttl, &lost);
    let result = tokio::select! {
        biased;
        result = &mut run => result,
        () = renewing => run.await,
    };
    let session = lease.session.as_str();
    match result {
        Ok(Settled::Completed) => {
            tracing::debug!(session, "completed");
            release(&store, &lease).await;
        }
        Ok(Settled::Waiting(node)) => {
            tracing::debug!(session, node, "waits for an input");
            release(&store, &lease).await;
        }
        Ok(Settled::AlreadyCompleted) => {
            // Nothing can make a completed session runnable again: hold it for good, so that
            // no claim takes it again (a delete removes the lease with the session).
            tracing::debug!(session, "had completed already: parked");
            if let Err(error) = store.renew(&lease, PARKED).await {
                tracing::warn!(session, %error, "parking a completed session failed");
            }
        }
        Ok(Settled::StillWaiting(node)) => {
            // Released, it would be claimed again at once, in a loop. Held until the lease
            // expires, it is claimed at most once per lease time until its input comes.
            tracing::debug!(
                session,
                node,
                "waits for an input: held until the lease expires"
            );
        }
        Err(Error::LeaseLost { .. }) => {
            tracing::warn!(session, "lease lost: another worker runs the session now");
        }
        Err(Error::Cancelled(_)) if lost.is_cancelled() => {
            tracing::warn!(
                session,
                "lease lost while a node ran: the node was cancelled"
            );
        }
        Err(error) => {
            // The session stays at its last checkpoint. Releasing it would hand it straight
            // back to a claim and fail again in a loop; keeping the lease (without renewing
            // it) until it expires retries it once per lease time.
            tracing::error!(session, %error, "the run failed; the session is retried when its lease expires");
        }
    }
}

/// Renews `lease` every third of `ttl`; returns (after cancelling `lost`) once it is lost, or
/// once renewals have failed for longer than the lease lives (it may be lost: stop writing).
async fn renew_until_lost<S: Store>(
    store: &S,
    lease: &Lease,
    ttl: Duration,
    lost: &CancellationToken,
) {
    let every = ttl / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match store.renew(lease, ttl).await {
            Ok(_) => renewed = Instant::now(),
            Err(Error::LeaseLost { .. }) => break,
            Err(error) => {
                tracing::warn!(session = %lease.session, %error, "renewing a lease failed");
                if renewed.elapsed() >= ttl {
                    break;
                }
            }
        }
    }
    lost.cancel();
}

async fn release<S: Store>(store: &S, lease: &Lease) {
    if let Err(error) = store.release(lease).await {
        // The lease then expires by itself.
        tracing::warn!(session = %lease.session, %error, "releasing a lease failed");
    }
}

/// `host:pid:n`, unique among the workers of one machine.
fn default_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "worker".to_owned());
    format!(
        "{host}:{}:{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
