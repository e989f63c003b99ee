//! The simulated store: a [`MemoryStore`] (or, in a sample of worlds, a [`SqliteStore`] on a
//! temporary file) behind a seeded fault injector, and the oracles that watch every call that
//! reaches it.
//!
//! At each call boundary the injector may (per its seeded RNG):
//!
//! - **stall** the call for a while of virtual time before it reaches the store (a slow
//!   network, a paused process: what lets leases expire under a worker that still runs);
//! - **crash before** the call: nothing happens, the reply is an error, and the process is
//!   dead: every later call fails until the harness restarts;
//! - **crash after** the call took effect, before its reply: "the commit happened but the
//!   reply was lost", and the process is dead;
//! - fail it **transiently**, with no effect (a refused connection, a busy database);
//! - **lose the reply** of a call that took effect, without a crash (a connection cut after
//!   `COMMIT`): the caller sees an error for something that happened.
//!
//! Each process life is a *generation*: the harness gives every runner and worker of one
//! life a handle of that generation, and a handle of an older one fails every call, so
//! nothing the crash dropped can reach the store again (the harness also aborts those tasks;
//! this makes the drop checkable: such a call is counted as a violation).
//!
//! The oracles are independent of the runtime: the sequence numbers of every append that
//! took effect, per session (a gap or a number accepted twice is a fork), and the highest
//! lease epoch any claim granted per session (a fenced append or renewal that succeeds with
//! an older epoch is a write by a fenced worker that landed).
//!
//! **SQLite.** A call that reaches a [`SqliteStore`] runs, with its oracle, on tokio's
//! blocking pool to its end, as a statement the database received completes whether or not
//! its client is still there: aborting the task that made it (a crash) cannot cut it in half
//! or hide its effect from the oracles, and the harness waits for every such call
//! ([`Faults::settle`]) before it checks the store or restarts. A blocking task in flight
//! also keeps tokio's paused clock from jumping ahead while the database works, so a SQLite
//! call takes no virtual time, like a memory store's. The world's SQLite calls go one at a
//! time (see `Faults::sqlite_calls`), so the oracles see its commits in their order. SQLite
//! reads its own clock (the wall clock) for leases and wake-ups; see the world's settings for
//! how its worlds live with that.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::store::{
    Append, Audit, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter,
    SessionPage, SessionRecord, Store, VersionCount,
};
use graph_runtime::{Error, MemoryStore, Result, SqliteStore};
use tokio::sync::Notify;

/// How often each fault strikes: one call in `n` (0: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub crash_before: u32,
    pub crash_after: u32,
    pub transient: u32,
    pub lost_reply: u32,
    pub stall: u32,
    /// Lease renewals stall more often (a worker cut off from the store while it runs):
    /// what lets another worker take a session whose first worker still writes.
    pub renew_stall: u32,
    /// The longest stall.
    pub stall_max: Duration,
}

/// The store a world keeps its sessions in.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory(MemoryStore),
    Sqlite(SqliteStore),
}

impl Backend {
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Backend::Sqlite(_))
    }
}

/// The fault injector and the oracles, shared by every handle of one simulated world.
#[derive(Debug)]
pub struct Faults {
    rng: Mutex<fastrand::Rng>,
    rates: Rates,
    /// Crashes still allowed in this world (so that it ends).
    crash_budget: AtomicU64,
    pub crashes: AtomicU64,
    crashed: AtomicBool,
    generation: AtomicU64,
    crash_signal: Notify,
    /// Calls on the blocking pool (SQLite) that have not ended yet.
    in_flight: Arc<AtomicU64>,
    /// Held by a SQLite call from before it is sent until its oracle saw it: the oracles see
    /// SQLite's commits in the order it made them (on the threads of their calls they would
    /// see them in any), and one read connection serves the world's reads (a new store per
    /// world has no pool of them yet: concurrent reads would open and close connections,
    /// each costing more than the read).
    sqlite_calls: Arc<Mutex<()>>,
    /// Prints every call and its fault (`SIM_TRACE`, with `SIM_SEED`).
    trace: bool,
    oracle: Mutex<Oracle>,
}

/// What the oracles saw.
#[derive(Debug, Default)]
pub struct Oracle {
    /// Per session, the sequence numbers of the appends that took effect, in order.
    pub appended: HashMap<String, Vec<u64>>,
    /// Per session, the highest lease epoch a claim granted.
    pub granted: HashMap<String, u64>,
    /// Violations seen at call time (fenced writes that landed, calls from a dead life).
    pub violations: Vec<String>,
    /// Fenced appends the store refused (`LeaseLost`): writes of a worker whose lease
    /// another worker had taken, which the fence kept out.
    pub fenced_refused: u64,
    /// Claims of a session that an earlier claim had taken already (its lease expired or
    /// was released).
    pub reclaims: u64,
}

enum Fault {
    None,
    CrashBefore,
    CrashAfter,
    Transient,
    LostReply,
}

fn injected(what: &str) -> Error {
    Error::Store(Box::new(std::io::Error::other(format!(
        "simulated: {what}"
    ))))
}

impl Faults {
    pub fn new(seed: u64, rates: Rates, crash_budget: u64) -> Arc<Self> {
        Arc::new(Faults {
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            rates,
            crash_budget: AtomicU64::new(crash_budget),
            crashes: AtomicU64::new(0),
            crashed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            crash_signal: Notify::new(),
            in_flight: Arc::new(AtomicU64::new(0)),
            sqlite_calls: Arc::new(Mutex::new(())),
            trace: std::env::var_os("SIM_TRACE").is_some()
                && std::env::var_os("SIM_SEED").is_some(),
            oracle: Mutex::new(Oracle::default()),
        })
    }

    /// A handle on `inner` for the current generation.
    pub fn handle(self: &Arc<Self>, inner: &Backend) -> SimStore {
        SimStore {
            inner: inner.clone(),
            faults: Arc::clone(self),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Waits until the process crashes.
    pub async fn crashed(&self) {
        loop {
            let notified = self.crash_signal.notified();
            if self.is_crashed() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until every call that reached the store has ended (SQLite calls run on to their
    /// end on the blocking pool after the task that made them is gone).
    pub fn settle(&self) {
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The restart: a new generation, whose calls reach the store again.
    pub fn restart(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    pub fn oracle(&self) -> std::sync::MutexGuard<'_, Oracle> {
        self.oracle.lock().unwrap()
    }

    fn crash(&self) {
        self.crashes.fetch_add(1, Ordering::SeqCst);
        self.crashed.store(true, Ordering::SeqCst);
        self.crash_signal.notify_waiters();
    }

    /// One roll of the dice for a call; `effect` says whether the call can change the store.
    fn roll(&self, effect: bool) -> Fault {
        let r = self.rates;
        let mut rng = self.rng.lock().unwrap();
        let hit = |rng: &mut fastrand::Rng, n: u32| n > 0 && rng.u32(0..n) == 0;
        let may_crash = self.crash_budget.load(Ordering::SeqCst) > 0;
        let fault = if may_crash && hit(&mut rng, r.crash_before) {
            Fault::CrashBefore
        } else if may_crash && effect && hit(&mut rng, r.crash_after) {
            Fault::CrashAfter
        } else if hit(&mut rng, r.transient) {
            Fault::Transient
        } else if effect && hit(&mut rng, r.lost_reply) {
            Fault::LostReply
        } else {
            Fault::None
        };
        if matches!(fault, Fault::CrashBefore | Fault::CrashAfter) {
            self.crash_budget.fetch_sub(1, Ordering::SeqCst);
        }
        fault
    }

    fn stall(&self, call: &str) -> Option<Duration> {
        let r = self.rates;
        let rate = if call == "renew" {
            r.renew_stall
        } else {
            r.stall
        };
        let mut rng = self.rng.lock().unwrap();
        (rate > 0 && rng.u32(0..rate) == 0 && !r.stall_max.is_zero()).then(|| {
            let max = u64::try_from(r.stall_max.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(rng.u64(0..=max))
        })
    }
}

/// A handle on the simulated store, of one generation (process life).
#[derive(Debug, Clone)]
pub struct SimStore {
    inner: Backend,
    faults: Arc<Faults>,
    generation: u64,
}

/// Counts a call on the blocking pool until it ends.
struct Flight(Arc<AtomicU64>);

impl Flight {
    fn new(count: &Arc<AtomicU64>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Flight(Arc::clone(count))
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SimStore {
    /// The gate every call passes before it reaches the store: the process is alive, and this
    /// handle belongs to its current life.
    fn gate(&self, call: &str) -> Result<()> {
        if self.faults.generation.load(Ordering::SeqCst) != self.generation {
            self.faults.oracle().violations.push(format!(
                "a call ({call}) from a crashed process life {} reached the store",
                self.generation
            ));
            return Err(injected("a call from a dead process"));
        }
        if self.faults.is_crashed() {
            return Err(injected("the process crashed"));
        }
        Ok(())
    }

    /// Makes `call` on the store and shows its result to `observe`; on SQLite, on the
    /// blocking pool, to its end whatever becomes of the caller.
    async fn reach<T, F, Fut>(
        &self,
        call: F,
        observe: impl FnOnce(&Result<T>) + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Backend) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let inner = self.inner.clone();
        if !inner.is_sqlite() {
            let result = call(inner).await;
            observe(&result);
            return result;
        }
        let flight = Flight::new(&self.faults.in_flight);
        let calls = Arc::clone(&self.faults.sqlite_calls);
        let runtime = tokio::runtime::Handle::current();
        let done = tokio::task::spawn_blocking(move || {
            let _flight = flight;
            let _one_at_a_time = calls.lock().unwrap_or_else(|e| e.into_inner());
            runtime.block_on(async move {
                let result = call(inner).await;
                observe(&result);
                result
            })
        });
        done.await
            .unwrap_or_else(|e| Err(injected(&format!("a SQLite call panicked: {e}"))))
    }

    /// Runs `call` on the store under the injector. `effect`: whether it can change the store.
    /// `observe` sees the store's own result of a call that reached it (for the oracles),
    /// whatever the caller is told.
    async fn call<T, F, Fut>(
        &self,
        name: &str,
        subject: &str,
        effect: bool,
        call: F,
        observe: impl FnOnce(&Result<T>) + Send + 'static,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Backend) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        if let Some(stall) = self.faults.stall(name) {
            tokio::time::sleep(stall).await;
        }
        self.gate(name)?;
        let fault = self.faults.roll(effect);
        if self.faults.trace {
            let what = match fault {
                Fault::None => "",
                Fault::CrashBefore => " CRASH BEFORE",
                Fault::CrashAfter => " CRASH AFTER",
                Fault::Transient => " TRANSIENT",
                Fault::LostReply => " LOST REPLY",
            };
            println!(
                "  [{:?}] life {} {name} {}{what}",
                tokio::time::Instant::now(),
                self.generation,
                subject
            );
        }
        match fault {
            Fault::CrashBefore => {
                self.faults.crash();
                Err(injected("crashed before the call"))
            }
            Fault::Transient => Err(injected("transient failure")),
            Fault::None => self.reach(call, observe).await,
            Fault::CrashAfter => {
                let _ = self.reach(call, observe).await;
                self.faults.crash();
                Err(injected("crashed after the call, before its reply"))
            }
            Fault::LostReply => {
                let _ = self.reach(call, observe).await;
                Err(injected("the reply was lost"))
            }
        }
    }

    /// A plain read or write, watched by no oracle.
    async fn plain<T, F, Fut>(&self, name: &str, subject: &str, effect: bool, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Backend) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.call(name, subject, effect, call, |_| {}).await
    }
}

impl Store for SimStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let seq = append.checkpoint.seq;
        let fence = append.fence;
        let faults = Arc::clone(&self.faults);
        let id = session.to_owned();
        let observed = id.clone();
        self.call(
            "append",
            &format!("{session} seq {seq}"),
            true,
            move |store| async move { store.append(&id, append).await },
            move |result| {
                let session = observed;
                if let Err(error) = result {
                    if matches!(error, Error::LeaseLost { .. }) {
                        faults.oracle().fenced_refused += 1;
                    }
                    return;
                }
                let mut oracle = faults.oracle();
                let granted = oracle.granted.get(&session).copied().unwrap_or(0);
                if let Some(epoch) = fence
                    && epoch < granted
                {
                    oracle.violations.push(format!(
                        "a fenced write landed: {session} seq {seq} at epoch {epoch}, after a claim at epoch {granted}"
                    ));
                }
                oracle.appended.entry(session).or_default().push(seq);
            },
        )
        .await
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        let id = session.to_owned();
        self.plain("latest", session, false, move |s| async move {
            s.latest(&id).await
        })
        .await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        let id = session.to_owned();
        self.plain("get", session, false, move |s| async move {
            s.get(&id, seq).await
        })
        .await
    }

    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        let id = session.to_owned();
        self.plain("chain", session, false, move |s| async move {
            s.chain(&id, from, to).await
        })
        .await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        let id = session.to_owned();
        self.plain(
            "list",
            session,
            false,
            move |s| async move { s.list(&id).await },
        )
        .await
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        let id = session.to_owned();
        self.plain("prune", session, true, move |s| async move {
            s.prune(&id, keep_last).await
        })
        .await
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        let id = session.to_owned();
        self.plain("delete", session, true, move |s| async move {
            s.delete(&id).await
        })
        .await
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        let subject = filter.parent.clone().unwrap_or_default();
        let filter = filter.clone();
        self.plain("sessions", &subject, false, move |s| async move {
            s.sessions(&filter).await
        })
        .await
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        let id = session.to_owned();
        self.plain("session", session, false, move |s| async move {
            s.session(&id).await
        })
        .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let faults = Arc::clone(&self.faults);
        let owner = claim.owner.clone();
        let claim = claim.clone();
        self.call(
            "claim",
            &owner,
            true,
            move |s| async move { s.claim(&claim).await },
            move |result| {
                if let Ok(leases) = result {
                    let mut oracle = faults.oracle();
                    for lease in leases {
                        if lease.epoch > 1 {
                            oracle.reclaims += 1;
                        }
                        let granted = oracle.granted.entry(lease.session.clone()).or_default();
                        if lease.epoch <= *granted {
                            let was = *granted;
                            oracle.violations.push(format!(
                                "a claim of {} granted epoch {} again (or lower: {was} was granted)",
                                lease.session, lease.epoch
                            ));
                        } else {
                            *granted = lease.epoch;
                        }
                    }
                }
            },
        )
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let faults = Arc::clone(&self.faults);
        let lease = lease.clone();
        let (session, epoch) = (lease.session.clone(), lease.epoch);
        self.call(
            "renew",
            &format!("{session} epoch {epoch}"),
            true,
            move |s| async move { s.renew(&lease, ttl).await },
            move |result| {
                if result.is_ok() {
                    let mut oracle = faults.oracle();
                    let granted = oracle.granted.get(&session).copied().unwrap_or(0);
                    if epoch < granted {
                        oracle.violations.push(format!(
                            "a fenced renewal landed: {session} at epoch {epoch}, after a claim at epoch {granted}"
                        ));
                    }
                }
            },
        )
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let subject = lease.session.clone();
        let lease = lease.clone();
        self.plain("release", &subject, true, move |s| async move {
            s.release(&lease).await
        })
        .await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        // No fault: it changes nothing and answers nothing (a worker claims next).
        self.inner.wait_for_work(timeout).await;
    }

    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        let version = version.clone();
        self.plain("record_graph", "", true, move |s| async move {
            s.record_graph(&version).await
        })
        .await
    }

    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        let workflow = workflow.to_owned();
        self.plain("graph_version", "", false, move |s| async move {
            s.graph_version(&workflow, graph_hash).await
        })
        .await
    }

    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        let workflow = workflow.to_owned();
        self.plain("graph_versions", "", false, move |s| async move {
            s.graph_versions(&workflow).await
        })
        .await
    }

    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        self.plain("versions_in_use", "", false, move |s| async move {
            s.versions_in_use().await
        })
        .await
    }

    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        let id = session.to_owned();
        self.plain("wake", session, true, move |s| async move {
            s.wake(&id, seq).await
        })
        .await
    }

    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        let id = session.to_owned();
        let failure = failure.clone();
        self.plain("record_failure", session, true, move |s| async move {
            s.record_failure(&id, seq, &failure).await
        })
        .await
    }
}

/// The backend as a store: each call goes to the store the world chose.
macro_rules! backend {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Backend::Memory($store) => $call.await,
            Backend::Sqlite($store) => $call.await,
        }
    };
}

impl Store for Backend {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        backend!(self, s => s.append(session, append))
    }
    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        backend!(self, s => s.latest(session))
    }
    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        backend!(self, s => s.get(session, seq))
    }
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        backend!(self, s => s.chain(session, from, to))
    }
    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        backend!(self, s => s.list(session))
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        backend!(self, s => s.prune(session, keep_last))
    }
    async fn delete(&self, session: &str) -> Result<bool> {
        backend!(self, s => s.delete(session))
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        backend!(self, s => s.sessions(filter))
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        backend!(self, s => s.session(session))
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        backend!(self, s => s.claim(claim))
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        backend!(self, s => s.renew(lease, ttl))
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        backend!(self, s => s.release(lease))
    }
    async fn wait_for_work(&self, timeout: Duration) {
        backend!(self, s => s.wait_for_work(timeout))
    }
    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        backend!(self, s => s.record_graph(version))
    }
    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        backend!(self, s => s.graph_version(workflow, graph_hash))
    }
    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        backend!(self, s => s.graph_versions(workflow))
    }
    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        backend!(self, s => s.versions_in_use())
    }
    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        backend!(self, s => s.wake(session, seq))
    }
    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        backend!(self, s => s.record_failure(session, seq, failure))
    }
}
