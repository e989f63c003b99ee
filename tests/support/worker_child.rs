//! The worker process of `tests/worker_failures.rs`, and what the test and the child share: the
//! workflows (`jobs`, and `parcels` whose subgraph node runs a `packing` child), a store that reports what it does on stdout, and the child's `main`.
//!
//! The test starts the `worker-child` binary (`worker_child_bin.rs`) with [`CHILD_STORE`] set;
//! that child runs a [`Worker`] over the store until it is killed. Its
//! stdout carries one line per event the test looks for (`claimed`, `append`, `renew`), so that
//! the test can tell a worker that was refused a write (`LeaseLost`) from one that wrote.
#![allow(dead_code)] // the test and the child each use their own part

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{
    Append, Checkpoint, CheckpointMeta, Claim, Lease, SessionFilter, SessionPage, SessionRecord,
    Store,
};
use graph_runtime::{CancellationToken, Error, PostgresStore, Result, Worker};
use serde::{Deserialize, Serialize};

/// Set in the child: `sqlite:<path>` or `postgres:<conninfo>`.
pub const CHILD_STORE: &str = "GRAPH_RUNTIME_WORKER_CHILD_STORE";
/// Set in the child: the worker's owner name.
pub const CHILD_OWNER: &str = "GRAPH_RUNTIME_WORKER_CHILD_OWNER";
/// Set in the child: how many sessions it runs at once.
pub const CHILD_CONCURRENCY: &str = "GRAPH_RUNTIME_WORKER_CHILD_CONCURRENCY";
/// The child workers' lease time to live and poll interval.
pub const CHILD_TTL: Duration = Duration::from_secs(1);
pub const CHILD_POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Job {
    pub id: u64,
    /// How long each `prepare` and `ship` step takes.
    pub work_ms: u64,
    /// `prepare` runs this many times before the review.
    pub rounds: u32,
    /// The file `ship` appends its idempotency key to (the "external system").
    pub side_log: String,
    /// The idempotency key of every step that ran to its checkpoint.
    pub keys: Vec<String>,
    pub approved: Option<bool>,
    pub shipped: bool,
}

impl Job {
    pub fn new(id: u64, work_ms: u64, side_log: &std::path::Path) -> Job {
        Job {
            id,
            work_ms,
            rounds: 3,
            side_log: side_log.display().to_string(),
            ..Job::default()
        }
    }
}

/// The decision the test gives session `id` at its review.
pub fn decision(id: u64) -> bool {
    !id.is_multiple_of(4)
}

#[workflow(state = Job)]
pub mod jobs {
    use super::*;

    edge!(START -> prepare);
    edge!(prepare -> prepare | review);
    edge!(review -> ship | END);
    edge!(ship -> END);

    #[node]
    async fn prepare(j: &mut Job, ctx: &NodeCtx) -> prepare::Next {
        tokio::time::sleep(Duration::from_millis(j.work_ms)).await;
        j.keys.push(ctx.idempotency_key());
        if (j.keys.len() as u32) < j.rounds {
            prepare::Next::Prepare
        } else {
            prepare::Next::Review
        }
    }

    #[node(interrupt)]
    async fn review(j: &mut Job, approve: bool) -> review::Next {
        j.approved = Some(approve);
        if approve {
            review::Next::Ship
        } else {
            review::Next::End
        }
    }

    #[node]
    async fn ship(j: &mut Job, ctx: &NodeCtx) {
        let key = ctx.idempotency_key();
        // The external call, made before the step is checkpointed: a kill between the two
        // makes it happen again, with the same key.
        if !j.side_log.is_empty() {
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&j.side_log)
                .expect("side log");
            // One write per line: concurrent appends of whole lines do not interleave.
            log.write_all(format!("{key}\n").as_bytes())
                .expect("side log write");
        }
        tokio::time::sleep(Duration::from_millis(j.work_ms)).await;
        j.keys.push(key);
        j.shipped = true;
    }
}

/// The state of a [`parcels`] session (the parent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Parcel {
    pub id: u64,
    /// How long each step of the parent and of its child takes.
    pub work_ms: u64,
    /// The file the child's nodes append their idempotency keys to (the "external system").
    pub side_log: String,
    /// The idempotency key of every step of the parent that ran to its checkpoint.
    pub keys: Vec<String>,
    /// The child's summary.
    pub label: String,
}

impl Parcel {
    pub fn new(id: u64, work_ms: u64, side_log: &std::path::Path) -> Parcel {
        Parcel {
            id,
            work_ms,
            side_log: side_log.display().to_string(),
            ..Parcel::default()
        }
    }
}

/// The state of a [`packing`] session (the child of a parcel).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Packing {
    pub parcel: u64,
    pub work_ms: u64,
    pub side_log: String,
    /// The idempotency key of every node run the child's checkpoints recorded, in order.
    pub keys: Vec<String>,
    /// Per recorded key, the ordinal of its run among the runs of that key in the side log
    /// (always 1 without failures).
    pub runs: Vec<(String, u32)>,
}

impl Packing {
    /// One node's work: the external call (one line in the side log), then the rest of the
    /// work (a sleep), before the step is checkpointed: a kill between the two makes the call
    /// happen again, with the same key. Records the key with its run's ordinal.
    async fn step(&mut self, ctx: &NodeCtx) {
        let key = ctx.idempotency_key();
        let mut ordinal = 1;
        if !self.side_log.is_empty() {
            let before = std::fs::read_to_string(&self.side_log)
                .unwrap_or_default()
                .lines()
                .filter(|line| *line == key)
                .count();
            ordinal = before as u32 + 1;
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.side_log)
                .expect("side log");
            log.write_all(format!("{key}\n").as_bytes())
                .expect("side log write");
        }
        tokio::time::sleep(Duration::from_millis(self.work_ms)).await;
        self.keys.push(key.clone());
        self.runs.push((key, ordinal));
    }
}

/// The child of a parcel: three nodes, each with an external call.
#[workflow(state = Packing)]
pub mod packing {
    use super::*;

    edge!(START -> pick);
    edge!(pick -> wrap);
    edge!(wrap -> label);
    edge!(label -> END);

    #[node]
    async fn pick(p: &mut Packing, ctx: &NodeCtx) {
        p.step(ctx).await;
    }

    #[node]
    async fn wrap(p: &mut Packing, ctx: &NodeCtx) {
        p.step(ctx).await;
    }

    #[node]
    async fn label(p: &mut Packing, ctx: &NodeCtx) {
        p.step(ctx).await;
    }
}

/// A parcel: `pack` is a subgraph node whose child runs [`packing`] (the worker that runs the
/// parcel runs its child, inside the node).
#[workflow(state = Parcel)]
pub mod parcels {
    use super::*;

    edge!(START -> receive);
    edge!(receive -> pack);
    edge!(pack -> close);
    edge!(close -> END);

    #[node]
    async fn receive(p: &mut Parcel, ctx: &NodeCtx) {
        tokio::time::sleep(Duration::from_millis(p.work_ms)).await;
        p.keys.push(ctx.idempotency_key());
    }

    #[node(subgraph = packing)]
    async fn pack(p: &mut Parcel, child: Child<packing::Workflow>) -> Result<(), NodeError> {
        let packed = child
            .run(Packing {
                parcel: p.id,
                work_ms: p.work_ms,
                side_log: p.side_log.clone(),
                ..Packing::default()
            })
            .await?;
        p.label = format!("parcel {}: {} step(s)", packed.parcel, packed.keys.len());
        Ok(())
    }

    #[node]
    async fn close(p: &mut Parcel, ctx: &NodeCtx) {
        tokio::time::sleep(Duration::from_millis(p.work_ms)).await;
        p.keys.push(ctx.idempotency_key());
    }
}

/// A store that reports what the test needs to see: on stdout (in a child) every claimed
/// session (with its epoch), every append (its fence epoch, `ok` or the error's kind) and
/// every renewal that failed; in counters, the errors and how often each session was claimed.
#[derive(Clone)]
pub struct Reporting<S> {
    inner: S,
    print: bool,
    pub errors: Arc<AtomicU64>,
    pub claims: Arc<Mutex<HashMap<String, u64>>>,
}

impl<S> Reporting<S> {
    /// Wraps `inner`; `print`: report on stdout too.
    pub fn new(inner: S, print: bool) -> Self {
        Reporting {
            inner,
            print,
            errors: Arc::default(),
            claims: Arc::default(),
        }
    }

    /// How many times `session` was claimed through this store.
    pub fn claims_of(&self, session: &str) -> u64 {
        self.claims
            .lock()
            .unwrap()
            .get(session)
            .copied()
            .unwrap_or(0)
    }

    fn failed<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::LeaseLost { .. } => "LeaseLost",
        Error::Conflict { .. } => "Conflict",
        _ => "error",
    }
}

impl<S: Store> Store for Reporting<S> {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let (seq, fence) = (append.checkpoint.seq, append.fence);
        let result = self.inner.append(session, append).await;
        if self.print {
            let fence = fence.map_or("-".to_owned(), |e| e.to_string());
            match &result {
                Ok(()) => println!("append {session} {seq} {fence} ok"),
                Err(e) => println!("append {session} {seq} {fence} {} {e}", kind(e)),
            }
        }
        self.failed(result)
    }
    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.failed(self.inner.latest(session).await)
    }
    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.failed(self.inner.get(session, seq).await)
    }
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.failed(self.inner.chain(session, from, to).await)
    }
    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.failed(self.inner.list(session).await)
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.failed(self.inner.prune(session, keep_last).await)
    }
    async fn delete(&self, session: &str) -> Result<bool> {
        self.failed(self.inner.delete(session).await)
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.failed(self.inner.sessions(filter).await)
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.failed(self.inner.session(session).await)
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let leases = self.failed(self.inner.claim(claim).await)?;
        let mut claims = self.claims.lock().unwrap();
        for lease in &leases {
            *claims.entry(lease.session.clone()).or_default() += 1;
            if self.print {
                println!("claimed {} {}", lease.session, lease.epoch);
            }
        }
        Ok(leases)
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let result = self.inner.renew(lease, ttl).await;
        if let (Err(e), true) = (&result, self.print) {
            println!("renew {} {} {} {e}", lease.session, lease.epoch, kind(e));
        }
        self.failed(result)
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.failed(self.inner.release(lease).await)
    }
    fn wait_for_work(&self, timeout: Duration) -> impl Future<Output = ()> + Send {
        self.inner.wait_for_work(timeout)
    }
}

/// The store a child was told to open.
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

pub async fn open(spec: &str) -> AnyStore {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        AnyStore::Sqlite(SqliteStore::open(path).expect("open the SQLite file"))
    } else if let Some(conninfo) = spec.strip_prefix("postgres:") {
        AnyStore::Postgres(
            PostgresStore::connect(conninfo)
                .await
                .expect("connect to PostgreSQL"),
        )
    } else {
        panic!("{CHILD_STORE} must start with sqlite: or postgres:, not {spec:?}")
    }
}

async fn run_worker<S: Store + Clone>(store: S, owner: String, concurrency: usize) -> Result<()> {
    let store = Reporting::new(store, true);
    let runner = Runner::new(jobs::Workflow, store.clone());
    // Parcels run their `packing` children inside their `pack` node: registering the parent
    // is enough (and no worker claims a child on its own).
    let parcels = Runner::new(parcels::Workflow, store.clone());
    println!("started {owner} pid {}", std::process::id());
    Worker::new(store)
        .register(runner)
        .register(parcels)
        .concurrency(concurrency)
        .lease_ttl(CHILD_TTL)
        .poll_interval(CHILD_POLL)
        .owner(owner)
        .run(CancellationToken::new())
        .await
}

/// The child's `main`: runs a worker until killed.
pub fn child_main(spec: &str) {
    let owner = std::env::var(CHILD_OWNER).unwrap_or_else(|_| "child".to_owned());
    let concurrency = std::env::var(CHILD_CONCURRENCY)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        match open(spec).await {
            AnyStore::Sqlite(store) => run_worker(store, owner, concurrency).await,
            AnyStore::Postgres(store) => run_worker(store, owner, concurrency).await,
        }
    });
    if let Err(e) = result {
        println!("worker failed: {e}");
        std::process::exit(1);
    }
}
