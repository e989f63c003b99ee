//! The simulated store: a [`MemoryStore`] behind a seeded fault injector, and the oracles
//! that watch every call that reaches it.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::store::{
    Append, Audit, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter,
    SessionPage, SessionRecord, Store, VersionCount,
};
use graph_runtime::{Error, MemoryStore, Result};
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
            oracle: Mutex::new(Oracle::default()),
        })
    }

    /// A handle on `inner` for the current generation.
    pub fn handle(self: &Arc<Self>, inner: &MemoryStore) -> SimStore {
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
    inner: MemoryStore,
    faults: Arc<Faults>,
    generation: u64,
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

    /// Runs `call` on the store under the injector. `effect`: whether it can change the store.
    /// `observe` sees the store's own result of a call that reached it (for the oracles),
    /// whatever the caller is told.
    async fn call<T, F>(
        &self,
        name: &str,
        effect: bool,
        call: F,
        observe: impl FnOnce(&Result<T>),
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        if let Some(stall) = self.faults.stall(name) {
            tokio::time::sleep(stall).await;
        }
        self.gate(name)?;
        match self.faults.roll(effect) {
            Fault::CrashBefore => {
                self.faults.crash();
                Err(injected("crashed before the call"))
            }
            Fault::Transient => Err(injected("transient failure")),
            Fault::None => {
                let result = call.await;
                observe(&result);
                result
            }
            Fault::CrashAfter => {
                let result = call.await;
                observe(&result);
                self.faults.crash();
                Err(injected("crashed after the call, before its reply"))
            }
            Fault::LostReply => {
                let result = call.await;
                observe(&result);
                Err(injected("the reply was lost"))
            }
        }
    }
}

impl Store for SimStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let seq = append.checkpoint.seq;
        let fence = append.fence;
        let faults = &self.faults;
        self.call(
            "append",
            true,
            self.inner.append(session, append),
            |result| {
                if let Err(error) = result {
                    if matches!(error, Error::LeaseLost { .. }) {
                        faults.oracle().fenced_refused += 1;
                    }
                    return;
                }
                let mut oracle = faults.oracle();
                oracle
                    .appended
                    .entry(session.to_owned())
                    .or_default()
                    .push(seq);
                let granted = oracle.granted.get(session).copied().unwrap_or(0);
                if let Some(epoch) = fence
                    && epoch < granted
                {
                    oracle.violations.push(format!(
                        "a fenced write landed: {session} seq {seq} at epoch {epoch}, after a claim at epoch {granted}"
                    ));
                }
            },
        )
        .await
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.call("latest", false, self.inner.latest(session), |_| {})
            .await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.call("get", false, self.inner.get(session, seq), |_| {})
            .await
    }

    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.call("chain", false, self.inner.chain(session, from, to), |_| {})
            .await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.call("list", false, self.inner.list(session), |_| {})
            .await
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.call("prune", true, self.inner.prune(session, keep_last), |_| {})
            .await
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        self.call("delete", true, self.inner.delete(session), |_| {})
            .await
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.call("sessions", false, self.inner.sessions(filter), |_| {})
            .await
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.call("session", false, self.inner.session(session), |_| {})
            .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let faults = &self.faults;
        self.call("claim", true, self.inner.claim(claim), |result| {
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
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let faults = &self.faults;
        self.call("renew", true, self.inner.renew(lease, ttl), |result| {
            if result.is_ok() {
                let mut oracle = faults.oracle();
                let granted = oracle.granted.get(&lease.session).copied().unwrap_or(0);
                if lease.epoch < granted {
                    oracle.violations.push(format!(
                        "a fenced renewal landed: {} at epoch {}, after a claim at epoch {granted}",
                        lease.session, lease.epoch
                    ));
                }
            }
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.call("release", true, self.inner.release(lease), |_| {})
            .await
    }

    async fn wait_for_work(&self, timeout: Duration) {
        // No fault: it changes nothing and answers nothing (a worker claims next).
        self.inner.wait_for_work(timeout).await;
    }

    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        self.call(
            "record_graph",
            true,
            self.inner.record_graph(version),
            |_| {},
        )
        .await
    }

    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        self.call(
            "graph_version",
            false,
            self.inner.graph_version(workflow, graph_hash),
            |_| {},
        )
        .await
    }

    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        self.call(
            "graph_versions",
            false,
            self.inner.graph_versions(workflow),
            |_| {},
        )
        .await
    }

    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        self.call(
            "versions_in_use",
            false,
            self.inner.versions_in_use(),
            |_| {},
        )
        .await
    }

    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        self.call("wake", true, self.inner.wake(session, seq), |_| {})
            .await
    }

    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        self.call(
            "record_failure",
            true,
            self.inner.record_failure(session, seq, failure),
            |_| {},
        )
        .await
    }
}
