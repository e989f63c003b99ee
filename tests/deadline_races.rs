//! An in-process answer racing a worker that claimed the session at the answered node's
//! deadline: whatever the interleaving, the answered node runs once (in the answering call),
//! the result and audit are the answer's, and the worker leaves the session to that call.
//!
//! The interleavings are forced, not hoped for: the store pauses the worker's claim and its
//! read of the session's record, and the answered node pauses the in-process run, each until
//! the test opens it. On memory and on a SQLite file.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{
    Append, Checkpoint, CheckpointMeta, Claim, Lease, SessionFilter, SessionPage, SessionRecord,
    Store,
};
use graph_runtime::{AuditKind, CancellationToken, InputSource, Worker, Workflow};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// A point where one call stops, when armed, until the test opens it.
#[derive(Default)]
struct Gate {
    armed: AtomicBool,
    reached: Notify,
    open: Notify,
}

impl Gate {
    /// The next call that passes the gate stops there.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Stops here if armed (once), until [`Gate::open`].
    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            self.open.notified().await;
        }
    }

    /// Waits until a call stopped at the gate.
    async fn reached(&self, what: &str) {
        within(what, self.reached.notified()).await;
    }

    fn open(&self) {
        self.open.notify_one();
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A store that stops a worker right after its claim, and stops the next read of a
/// session's record, when armed; it says when a lease is released.
#[derive(Clone)]
struct Gated<S> {
    inner: S,
    after_claim: Arc<Gate>,
    before_record: Arc<Gate>,
    released: Arc<Notify>,
}

impl<S> Gated<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            after_claim: Arc::default(),
            before_record: Arc::default(),
            released: Arc::default(),
        }
    }
}

impl<S: Store> Store for Gated<S> {
    async fn append(&self, s: &str, a: Append) -> graph_runtime::Result<()> {
        self.inner.append(s, a).await
    }
    async fn latest(&self, s: &str) -> graph_runtime::Result<Option<Checkpoint>> {
        self.inner.latest(s).await
    }
    async fn get(&self, s: &str, seq: u64) -> graph_runtime::Result<Option<Checkpoint>> {
        self.inner.get(s, seq).await
    }
    async fn chain(&self, s: &str, from: u64, to: u64) -> graph_runtime::Result<Vec<Checkpoint>> {
        self.inner.chain(s, from, to).await
    }
    async fn list(&self, s: &str) -> graph_runtime::Result<Vec<CheckpointMeta>> {
        self.inner.list(s).await
    }
    async fn prune(&self, s: &str, keep_last: u64) -> graph_runtime::Result<u64> {
        self.inner.prune(s, keep_last).await
    }
    async fn delete(&self, s: &str) -> graph_runtime::Result<bool> {
        self.inner.delete(s).await
    }
    async fn sessions(&self, f: &SessionFilter) -> graph_runtime::Result<SessionPage> {
        self.inner.sessions(f).await
    }
    async fn session(&self, s: &str) -> graph_runtime::Result<Option<SessionRecord>> {
        self.before_record.pass().await;
        self.inner.session(s).await
    }
    async fn claim(&self, c: &Claim) -> graph_runtime::Result<Vec<Lease>> {
        let leases = self.inner.claim(c).await?;
        if !leases.is_empty() {
            self.after_claim.pass().await;
        }
        Ok(leases)
    }
    async fn renew(&self, l: &Lease, ttl: Duration) -> graph_runtime::Result<Lease> {
        self.inner.renew(l, ttl).await
    }
    async fn release(&self, l: &Lease) -> graph_runtime::Result<bool> {
        let released = self.inner.release(l).await;
        self.released.notify_one();
        released
    }
    async fn wait_for_work(&self, timeout: Duration) {
        self.inner.wait_for_work(timeout).await;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Request {
    pub review: Option<String>,
    pub legal: Option<String>,
    pub finance: Option<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

fn verdict(decision: Option<Decision>) -> String {
    match decision {
        Some(Decision::Approve) => "approved",
        Some(Decision::Reject) => "rejected",
        None => "escalated",
    }
    .into()
}

/// How many times each (session, node) ran.
static RUNS: Mutex<Option<HashMap<(String, &'static str), u32>>> = Mutex::new(None);
/// The session whose answered node stops at its gate the next time it runs with an input.
static HOLDS: Mutex<Option<HashMap<String, Arc<Gate>>>> = Mutex::new(None);

fn ran(session: &str, node: &'static str) {
    let mut runs = RUNS.lock().unwrap();
    *runs
        .get_or_insert_default()
        .entry((session.to_owned(), node))
        .or_default() += 1;
}

fn runs(session: &str, node: &'static str) -> u32 {
    let runs = RUNS.lock().unwrap();
    runs.as_ref()
        .and_then(|r| r.get(&(session.to_owned(), node)).copied())
        .unwrap_or(0)
}

fn hold(session: &str) -> Arc<Gate> {
    let gate = Arc::new(Gate::default());
    gate.arm();
    let mut holds = HOLDS.lock().unwrap();
    holds
        .get_or_insert_default()
        .insert(session.to_owned(), Arc::clone(&gate));
    gate
}

/// Counts the run of `node`, then stops at the session's hold if it runs with an input.
async fn answered(session: &str, node: &'static str, with_input: bool) {
    ran(session, node);
    let gate = HOLDS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|holds| holds.get(session).cloned());
    if let (true, Some(gate)) = (with_input, gate) {
        gate.pass().await;
    }
}

/// One interrupt node with a deadline.
#[workflow(state = Request)]
pub mod single {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> review);
    edge!(review -> close);
    edge!(close -> END);

    #[node]
    async fn intake(r: &mut Request) {
        r.done = false;
    }

    #[node(interrupt, wait_ms = 200)]
    async fn review(r: &mut Request, ctx: &NodeCtx, decision: Option<Decision>) {
        answered(ctx.session_id(), "review", decision.is_some()).await;
        r.review = Some(verdict(decision));
    }

    #[node]
    async fn close(r: &mut Request) {
        r.done = true;
    }
}

/// Two interrupt branches with their own deadlines (finance's far off).
#[workflow(state = Request)]
pub mod region {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> legal & finance);
    edge!(legal & finance -> decide);
    edge!(decide -> END);

    #[node]
    async fn intake(r: &mut Request) {
        r.done = false;
    }

    #[node(interrupt, wait_ms = 200)]
    async fn legal(_r: &Request, ctx: &NodeCtx, decision: Option<Decision>) -> String {
        answered(ctx.session_id(), "legal", decision.is_some()).await;
        verdict(decision)
    }

    #[node(interrupt, wait_ms = 60_000)]
    async fn finance(_r: &Request, ctx: &NodeCtx, decision: Option<Decision>) -> String {
        ran(ctx.session_id(), "finance");
        verdict(decision)
    }

    #[node]
    async fn decide(r: &mut Request, legal: String, finance: String) {
        r.legal = Some(legal);
        r.finance = Some(finance);
        r.done = true;
    }
}

fn worker<W: Workflow, S: Store + Clone>(
    runner: &Runner<W, Gated<S>>,
    shutdown: &CancellationToken,
) -> JoinHandle<()> {
    let worker = Worker::new(runner.store().clone())
        .register(runner.clone())
        .lease_ttl(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(20));
    let shutdown = shutdown.clone();
    tokio::spawn(async move { worker.run(shutdown).await.expect("worker") })
}

async fn audits<W: Workflow, S: Store>(
    runner: &Runner<W, S>,
    id: &str,
    node: &str,
) -> Vec<InputSource> {
    runner
        .history(id)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|checkpoint| checkpoint.audit)
        .filter_map(|audit| match audit.kind {
            AuditKind::Input { node: n, source } if n == node => Some(source),
            _ => None,
        })
        .collect()
}

/// The worker claims the session at review's deadline; the answer is recorded in-process
/// while the worker is stopped after its claim; the worker then loads the answer's record
/// (`Running` at review, with the input) while the in-process run is still inside review.
/// Before the fix the worker ran review with the answer a second time.
async fn a_worker_leaves_a_node_answered_in_process_after_its_claim<S: Store + Clone>(
    store: S,
    id: &str,
) {
    let store = Gated::new(store);
    let runner = Runner::new(single::Workflow, store.clone());
    let waits = runner.start(id, Request::default()).await.unwrap();
    assert!(matches!(waits, Outcome::Interrupted { node: "review", .. }));
    tokio::time::sleep(Duration::from_millis(300)).await;

    store.after_claim.arm();
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    store.after_claim.reached("the worker's claim").await;

    let inside_review = hold(id);
    let answering = tokio::spawn({
        let (runner, id) = (runner.clone(), id.to_owned());
        async move {
            runner
                .resume_with(&id, single::Input::Review(Decision::Approve))
                .await
        }
    });
    inside_review.reached("review to run with the answer").await;

    store.after_claim.open();
    within(
        "the worker to release the session",
        store.released.notified(),
    )
    .await;
    inside_review.open();
    let outcome = within("the answer", answering).await.unwrap().unwrap();
    let Outcome::Completed(request) = outcome else {
        panic!("{id}: {outcome:?}");
    };
    assert_eq!(request.review.as_deref(), Some("approved"));
    assert!(request.done);
    assert_eq!(runs(id, "review"), 1, "{id}: review ran more than once");
    assert_eq!(audits(&runner, id, "review").await, [InputSource::Caller]);
    shutdown.cancel();
    worker.await.unwrap();
}

/// The worker claims the session at legal's deadline and loads the record of an answer to
/// legal given in-process after the claim; before it reads the session's record, the
/// in-process run finishes legal and waits at finance again (which sets a wake-up again).
/// Before the fix the worker took that wake-up for its claim's and ran legal's recorded
/// input a second time.
async fn a_worker_leaves_a_branch_answered_in_process_after_its_claim<S: Store + Clone>(
    store: S,
    id: &str,
) {
    let store = Gated::new(store);
    let runner = Runner::new(region::Workflow, store.clone());
    runner.start(id, Request::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    store.after_claim.arm();
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    store.after_claim.reached("the worker's claim").await;

    let inside_legal = hold(id);
    let answering = tokio::spawn({
        let (runner, id) = (runner.clone(), id.to_owned());
        async move {
            runner
                .resume_with(&id, region::Input::Legal(Decision::Approve))
                .await
        }
    });
    inside_legal.reached("legal to run with the answer").await;

    // The worker loads the answer's record, then stops before reading the session's record.
    store.before_record.arm();
    store.after_claim.open();
    store
        .before_record
        .reached("the worker's read of the record")
        .await;
    inside_legal.open();
    let outcome = within("the answer", answering).await.unwrap().unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "finance",
                ..
            }
        ),
        "{id}: {outcome:?}"
    );
    store.before_record.open();
    within(
        "the worker to release the session",
        store.released.notified(),
    )
    .await;
    assert_eq!(runs(id, "legal"), 1, "{id}: legal ran more than once");

    let outcome = runner
        .resume_with(id, region::Input::Finance(Decision::Reject))
        .await
        .unwrap();
    let Outcome::Completed(request) = outcome else {
        panic!("{id}: {outcome:?}");
    };
    assert_eq!(request.legal.as_deref(), Some("approved"));
    assert_eq!(request.finance.as_deref(), Some("rejected"));
    assert_eq!(runs(id, "legal"), 1, "{id}: legal ran more than once");
    assert_eq!(runs(id, "finance"), 1);
    assert_eq!(audits(&runner, id, "legal").await, [InputSource::Caller]);
    shutdown.cancel();
    worker.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_single_node() {
    a_worker_leaves_a_node_answered_in_process_after_its_claim(MemoryStore::new(), "mem-single")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_branch() {
    a_worker_leaves_a_branch_answered_in_process_after_its_claim(MemoryStore::new(), "mem-branch")
        .await;
}

fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("races.db")).unwrap();
    (store, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_single_node() {
    let (store, _dir) = sqlite();
    a_worker_leaves_a_node_answered_in_process_after_its_claim(store, "sqlite-single").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_branch() {
    let (store, _dir) = sqlite();
    a_worker_leaves_a_branch_answered_in_process_after_its_claim(store, "sqlite-branch").await;
}
