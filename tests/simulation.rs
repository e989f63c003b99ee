//! Deterministic simulation: the real `Runner` and `Worker`s over a store that crashes, fails
//! and stalls at every call boundary, in virtual time, checked against a crash-free run.
//!
//! A *world* (one seed) is a handful of sessions of the workflows below, some run in-process
//! (`start`, `resume`, `resume_with`, as a service would after a restart) and some by three
//! racing workers (`enqueue`, `enqueue_input`) with short leases. The seed decides the
//! sessions' inputs, the answers and how late they come, and every fault the simulated store
//! injects (see `support/sim/store.rs`): crashes before a call and after it took effect
//! (the reply lost), transient errors, lost replies and stalls long enough for leases to
//! expire under a worker that still runs. A crash stops the process: the harness aborts every
//! task (drivers, workers and whatever they run), checks the store, and restarts: new
//! runners, new workers, every unfinished session resumed from what the store kept.
//!
//! The clock is tokio's, paused: retries, backoff, timeouts, deadlines (`wait_ms`), lease
//! expiries and late answers take no wall time (`MemoryStore` reads `tokio::time::Instant`).
//!
//! Checked after every crash: every session's chain is gapless and linear (its sequence
//! numbers consecutive, each accepted once, as the store's own oracle saw the appends), each
//! checkpoint decodes, holds at most one committed effect per idempotency key (see
//! `support/sim/ledger.rs` for what "committed" means), every child belongs to a parent step
//! that exists, and no write by a fenced worker landed. At the end: every session completed
//! with the final state of a crash-free run of the same world (run first), every committed
//! effect was seen in the ledger, and every parent holds its one child's result.
//!
//! `SIM_CRASHES=N cargo test --release --test simulation -- --nocapture` runs worlds until N
//! crashes were injected; `SIM_SEED=S` runs world S alone. The last line says
//! `simulation: N crashes injected, L lost, F forked`.
//!
//! Plain `cargo test` (a debug build) injects 6,000 crashes: 30 s on an idle 2-core machine,
//! about 60 s on a busy one. On that machine a debug build injects 100,000 crashes in about
//! 10 min; a release build 100,000 in 48 s (90 s busy) and 1,000,000 in about 16 min (busy).
//!
//! What the seed does not fix: tokio's `select!` picks among ready branches at random, so a
//! seed replays the same world and the same fault rates, but not always the same
//! interleaving (and so not always the same faults at the same calls).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{SessionFilter, Store};
use graph_runtime::{CancellationToken, Status, Worker, Workflow};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

#[path = "support/sim/mod.rs"]
mod sim;

use sim::ledger::{effect, key_of};
use sim::store::{Faults, Rates, SimStore};

// ---------------------------------------------------------------------------------------
// Deterministic flakiness: a function of the step's key and the attempt only, so a crash
// (which starts the attempts over) changes neither the path nor the final state.

fn fnv(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Fails the first one or two attempts of one step in three.
fn flaky(ctx: &NodeCtx) -> Result<(), NodeError> {
    let fails = (fnv(&ctx.idempotency_key()) % 3) as u32;
    if ctx.attempt() <= fails {
        return Err(format!("flaky: attempt {}", ctx.attempt()).into());
    }
    Ok(())
}

/// The first attempt of one step in two outlives its node's `timeout_ms = 50`.
async fn slow(ctx: &NodeCtx) {
    if fnv(&ctx.idempotency_key()).is_multiple_of(2) && ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Workflows.

/// What the checks need of every state: its committed marks, and the state as a
/// crash-free run has it (marks without their execution ids, no world run id).
trait SimState: Clone + std::fmt::Debug + Send + Sync + 'static {
    fn marks(&self) -> Vec<&str>;
    fn normalized(&self) -> Self;
}

fn normalize(marks: &[String]) -> Vec<String> {
    marks.iter().map(|m| key_of(m)).collect()
}

/// Loops, retries, timeouts and an error edge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Loop {
    pub run: u64,
    pub rounds: u32,
    pub count: u32,
    pub fail_check: bool,
    pub recovered: bool,
    pub marks: Vec<String>,
    /// Large enough for incremental checkpoints (deltas) to be used.
    pub pad: String,
}

impl SimState for Loop {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Loop {
            run: 0,
            marks: normalize(&self.marks),
            pad: format!("{} bytes", self.pad.len()),
            ..self.clone()
        }
    }
}

#[workflow(state = Loop)]
pub mod looping {
    use super::*;

    edge!(START -> step);
    edge!(step -> tick);
    edge!(tick -> step | check);
    edge!(check -> finish);
    edge!(check -> recover on error);
    edge!(recover -> finish);
    edge!(finish -> END);

    #[node(retry = 2, timeout_ms = 50, backoff_ms = 5, jitter = false)]
    async fn step(s: &mut Loop, ctx: &NodeCtx) -> Result<(), NodeError> {
        s.marks.push(effect(s.run, ctx));
        s.count += 1;
        slow(ctx).await;
        flaky(ctx)
    }

    #[node]
    async fn tick(s: &mut Loop, ctx: &NodeCtx) -> tick::Next {
        s.marks.push(effect(s.run, ctx));
        if s.count < s.rounds {
            tick::Next::Step
        } else {
            tick::Next::Check
        }
    }

    #[node(retry = 1, backoff_ms = 5, jitter = false)]
    async fn check(s: &mut Loop, ctx: &NodeCtx) -> Result<(), NodeError> {
        s.marks.push(effect(s.run, ctx));
        if s.fail_check {
            return Err("the check fails".into());
        }
        Ok(())
    }

    #[node]
    async fn recover(s: &mut Loop, ctx: &NodeCtx) {
        s.marks.push(effect(s.run, ctx));
        s.recovered = ctx.failure().is_some();
    }

    #[node]
    async fn finish(s: &mut Loop, ctx: &NodeCtx) {
        s.marks.push(effect(s.run, ctx));
    }
}

/// Fan-out with two interrupt branches answered late, a retried and a timed-out branch, then
/// a map.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Fan {
    pub run: u64,
    pub width: u32,
    pub marks: Vec<String>,
    pub items: Vec<String>,
}

impl SimState for Fan {
    fn marks(&self) -> Vec<&str> {
        self.marks
            .iter()
            .chain(&self.items)
            .map(String::as_str)
            .collect()
    }
    fn normalized(&self) -> Self {
        Fan {
            run: 0,
            marks: normalize(&self.marks),
            items: normalize(&self.items),
            ..self.clone()
        }
    }
}

#[workflow(state = Fan)]
pub mod fanout {
    use super::*;

    edge!(START -> open);
    edge!(open -> left & right & ask1 & ask2);
    edge!(left & right & ask1 & ask2 -> join);
    edge!(join -> plan);
    edge!(plan -> each item);
    edge!(item -> total);
    edge!(total -> END);

    #[node]
    async fn open(f: &mut Fan, ctx: &NodeCtx) {
        f.marks.push(effect(f.run, ctx));
    }

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn left(f: &Fan, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        flaky(ctx)?;
        Ok(mark)
    }

    #[node(retry = 1, timeout_ms = 50, backoff_ms = 5, jitter = false)]
    async fn right(f: &Fan, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        slow(ctx).await;
        Ok(mark)
    }

    #[node(interrupt)]
    async fn ask1(f: &Fan, answer: String, ctx: &NodeCtx) -> String {
        format!("{}={answer}", effect(f.run, ctx))
    }

    #[node(interrupt)]
    async fn ask2(f: &Fan, answer: String, ctx: &NodeCtx) -> String {
        format!("{}={answer}", effect(f.run, ctx))
    }

    #[node]
    async fn join(f: &mut Fan, left: String, right: String, ask1: String, ask2: String) {
        f.marks.extend([left, right, ask1, ask2]);
    }

    #[node]
    async fn plan(f: &mut Fan, ctx: &NodeCtx) -> Vec<u32> {
        f.marks.push(effect(f.run, ctx));
        (0..f.width).collect()
    }

    #[node(concurrency = 2, retry = 2, backoff_ms = 5, jitter = false)]
    async fn item(f: &Fan, item: u32, ctx: &NodeCtx) -> Result<String, NodeError> {
        let mark = effect(f.run, ctx);
        flaky(ctx)?;
        Ok(format!("{mark}:{item}"))
    }

    #[node]
    async fn total(f: &mut Fan, item: Vec<String>) {
        f.items = item;
    }
}

/// Deadlines: `review` is never answered (a worker runs it with `None` after 200 ms),
/// `approve` is answered long before its deadline of a day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Memo {
    pub run: u64,
    pub marks: Vec<String>,
    pub review: Option<u32>,
    pub approve: Option<u32>,
}

impl SimState for Memo {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Memo {
            run: 0,
            marks: normalize(&self.marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Memo)]
pub mod deadline {
    use super::*;

    edge!(START -> prep);
    edge!(prep -> review);
    edge!(review -> approve);
    edge!(approve -> done);
    edge!(done -> END);

    #[node]
    async fn prep(m: &mut Memo, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
    }

    #[node(interrupt, wait_ms = 200)]
    async fn review(m: &mut Memo, decision: Option<u32>, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
        m.review = decision;
    }

    #[node(interrupt, wait_ms = 86_400_000)]
    async fn approve(m: &mut Memo, decision: Option<u32>, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
        m.approve = decision;
    }

    #[node]
    async fn done(m: &mut Memo, ctx: &NodeCtx) {
        m.marks.push(effect(m.run, ctx));
    }
}

/// The child workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Question {
    pub run: u64,
    pub text: String,
    /// Whether the child waits for a review (only children of in-process parents: on this
    /// branch, nothing wakes a worker's parent when its child is answered).
    pub reviewed: bool,
    pub marks: Vec<String>,
    pub summary: String,
}

impl SimState for Question {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Question {
            run: 0,
            marks: normalize(&self.marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Question)]
pub mod research_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> review | summarize);
    edge!(review -> summarize);
    edge!(summarize -> END);

    #[node(retry = 2, backoff_ms = 5, jitter = false)]
    async fn search(q: &mut Question, ctx: &NodeCtx) -> Result<search::Next, NodeError> {
        q.marks.push(effect(q.run, ctx));
        flaky(ctx)?;
        Ok(if q.reviewed {
            search::Next::Review
        } else {
            search::Next::Summarize
        })
    }

    /// A wait inside the child: its parent waits at `research/review`, and the client
    /// answers through the parent (`support::Input::Research(Input::Review(…))`).
    #[node(interrupt)]
    async fn review(q: &mut Question, verdict: String, ctx: &NodeCtx) {
        q.marks.push(format!("{}={verdict}", effect(q.run, ctx)));
    }

    #[node]
    async fn summarize(q: &mut Question, ctx: &NodeCtx) {
        q.marks.push(effect(q.run, ctx));
        q.summary = format!("{} mark(s) on {}", q.marks.len(), q.text);
    }
}

/// The parent: a subgraph node whose child is a session of `research`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub run: u64,
    pub text: String,
    pub reviewed: bool,
    pub marks: Vec<String>,
    pub child_marks: Vec<String>,
    pub notes: String,
}

impl SimState for Ticket {
    fn marks(&self) -> Vec<&str> {
        self.marks.iter().map(String::as_str).collect()
    }
    fn normalized(&self) -> Self {
        Ticket {
            run: 0,
            marks: normalize(&self.marks),
            child_marks: normalize(&self.child_marks),
            ..self.clone()
        }
    }
}

#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> research);
    edge!(research -> reply);
    edge!(reply -> END);

    #[node]
    async fn intake(t: &mut Ticket, ctx: &NodeCtx) {
        t.marks.push(effect(t.run, ctx));
    }

    #[node(subgraph = research_agent, retry = 1, backoff_ms = 5, jitter = false)]
    async fn research(
        t: &mut Ticket,
        ctx: &NodeCtx,
        child: Child<research_agent::Workflow>,
    ) -> Result<(), NodeError> {
        t.marks.push(effect(t.run, ctx));
        let question = Question {
            run: t.run,
            text: t.text.clone(),
            reviewed: t.reviewed,
            ..Question::default()
        };
        let found = child.run(question).await?;
        t.child_marks = found.marks;
        t.notes = found.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket, ctx: &NodeCtx) {
        t.marks.push(effect(t.run, ctx));
    }
}

// ---------------------------------------------------------------------------------------
// A world: its sessions, the drivers that play their clients, and the workers.

/// Whether a session is run in-process or by workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    InProcess,
    Workers,
}

/// One session of a world, with its initial state.
#[derive(Debug, Clone)]
enum Spec {
    Loop(String, Mode, Loop),
    Fan(String, Mode, Fan),
    /// Always run by workers: only a worker runs a node whose wait is over.
    Memo(String, Memo),
    Ticket(String, Mode, Ticket),
}

impl Spec {
    fn mode(&self) -> Mode {
        match self {
            Spec::Loop(_, mode, _) | Spec::Fan(_, mode, _) | Spec::Ticket(_, mode, _) => *mode,
            Spec::Memo(..) => Mode::Workers,
        }
    }
}

/// Whether two service instances drive world `seed`'s in-process sessions at once.
fn runners_racing(seed: u64) -> bool {
    fastrand::Rng::with_seed(seed ^ 0x2ace).bool()
}

/// The sessions of world `seed`, for world run `run`.
fn world(seed: u64, run: u64) -> Vec<Spec> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x005e_ed0f_5eed);
    let mut specs = Vec::new();
    for (mode, tag) in [(Mode::InProcess, "p"), (Mode::Workers, "w")] {
        for i in 0..rng.usize(1..=2) {
            let state = Loop {
                run,
                rounds: rng.u32(1..=4),
                fail_check: rng.bool(),
                pad: "p".repeat(5_000),
                ..Loop::default()
            };
            specs.push(Spec::Loop(format!("{tag}-loop-{i}"), mode, state));
        }
        let fan = Fan {
            run,
            width: rng.u32(0..=3),
            ..Fan::default()
        };
        specs.push(Spec::Fan(format!("{tag}-fan-0"), mode, fan));
        let ticket = Ticket {
            run,
            text: format!("question {}", rng.u32(0..100)),
            reviewed: mode == Mode::InProcess && rng.bool(),
            ..Ticket::default()
        };
        specs.push(Spec::Ticket(format!("{tag}-ticket-0"), mode, ticket));
    }
    specs.push(Spec::Memo(
        "w-memo-0".to_owned(),
        Memo {
            run,
            ..Memo::default()
        },
    ));
    specs
}

/// The runners of one process life.
#[derive(Clone)]
struct Runners {
    looping: Runner<looping::Workflow, SimStore>,
    fanout: Runner<fanout::Workflow, SimStore>,
    deadline: Runner<deadline::Workflow, SimStore>,
    support: Runner<support::Workflow, SimStore>,
}

impl Runners {
    fn new(store: &SimStore) -> Self {
        Runners {
            looping: Runner::new(looping::Workflow, store.clone()),
            fanout: Runner::new(fanout::Workflow, store.clone()),
            deadline: Runner::new(deadline::Workflow, store.clone()),
            support: Runner::new(support::Workflow, store.clone()),
        }
    }
}

/// The answers a client gives: the same in every run of a world.
fn fan_answer(id: &str, node: &str) -> Option<fanout::Input> {
    match node {
        "ask1" => Some(fanout::Input::Ask1(format!("{id}:yes"))),
        "ask2" => Some(fanout::Input::Ask2(format!("{id}:no"))),
        _ => None,
    }
}

fn ticket_answer(id: &str, node: &str) -> Option<support::Input> {
    (node == "research/review")
        .then(|| support::Input::Research(research_agent::Input::Review(format!("{id}:reviewed"))))
}

fn memo_answer(id: &str, node: &str) -> Option<deadline::Input> {
    // `review` is never answered: its deadline passes.
    (node == "approve").then(|| deadline::Input::Approve(fnv(id) as u32 % 1000))
}

fn no_answer<I>(_: &str, _: &str) -> Option<I> {
    None
}

/// How long a client waits before it looks again or answers (answers come late).
async fn pause(rng: &mut fastrand::Rng, max_ms: u64) {
    tokio::time::sleep(Duration::from_millis(rng.u64(1..=max_ms))).await;
}

/// The client of an in-process session: starts it, answers its interrupts (late), and
/// resumes it after every failure, until it completes. It holds nothing across a crash: each
/// life's client reads where the session stands and goes on from there.
async fn drive_in_process<W: Workflow>(
    runner: Runner<W, SimStore>,
    id: String,
    initial: W::State,
    answer: fn(&str, &str) -> Option<W::Input>,
    mut rng: fastrand::Rng,
) where
    W::State: Clone,
{
    loop {
        match runner.state(&id).await {
            Err(_) => pause(&mut rng, 10).await,
            Ok(None) => {
                let _ = runner.start(&id, initial.clone()).await;
            }
            Ok(Some(snapshot)) => match snapshot.status {
                Status::Completed => return,
                Status::Waiting { .. } => {
                    match snapshot.waiting.iter().find_map(|node| answer(&id, node)) {
                        Some(input) => {
                            pause(&mut rng, 2_000).await;
                            let _ = runner.resume_with(&id, input).await;
                        }
                        // Nothing to answer (a wait for a deadline): look again later.
                        None => pause(&mut rng, 50).await,
                    }
                }
                _ => {
                    let _ = runner.resume(&id).await;
                }
            },
        }
    }
}

/// The client of a session run by workers: enqueues it, gives its inputs (late), and waits
/// until it completes.
async fn drive_workers<W: Workflow>(
    runner: Runner<W, SimStore>,
    id: String,
    initial: W::State,
    answer: fn(&str, &str) -> Option<W::Input>,
    mut rng: fastrand::Rng,
) where
    W::State: Clone,
{
    loop {
        match runner.state(&id).await {
            Err(_) => pause(&mut rng, 10).await,
            Ok(None) => {
                let _ = runner.enqueue(&id, initial.clone()).await;
            }
            Ok(Some(snapshot)) => match snapshot.status {
                Status::Completed => return,
                Status::Waiting { .. } => {
                    match snapshot.waiting.iter().find_map(|node| answer(&id, node)) {
                        Some(input) => {
                            pause(&mut rng, 2_000).await;
                            let _ = runner.enqueue_input(&id, input).await;
                        }
                        None => pause(&mut rng, 50).await,
                    }
                }
                _ => pause(&mut rng, 50).await,
            },
        }
    }
}

fn spawn_driver(drivers: &mut JoinSet<()>, runners: &Runners, spec: &Spec, rng: fastrand::Rng) {
    match spec.clone() {
        Spec::Loop(id, Mode::InProcess, s) => {
            drivers.spawn(drive_in_process(
                runners.looping.clone(),
                id,
                s,
                no_answer,
                rng,
            ));
        }
        Spec::Loop(id, Mode::Workers, s) => {
            drivers.spawn(drive_workers(
                runners.looping.clone(),
                id,
                s,
                no_answer,
                rng,
            ));
        }
        Spec::Fan(id, Mode::InProcess, s) => {
            drivers.spawn(drive_in_process(
                runners.fanout.clone(),
                id,
                s,
                fan_answer,
                rng,
            ));
        }
        Spec::Fan(id, Mode::Workers, s) => {
            drivers.spawn(drive_workers(
                runners.fanout.clone(),
                id,
                s,
                fan_answer,
                rng,
            ));
        }
        Spec::Ticket(id, Mode::InProcess, s) => {
            drivers.spawn(drive_in_process(
                runners.support.clone(),
                id,
                s,
                ticket_answer,
                rng,
            ));
        }
        Spec::Ticket(id, Mode::Workers, s) => {
            drivers.spawn(drive_workers(
                runners.support.clone(),
                id,
                s,
                no_answer,
                rng,
            ));
        }
        Spec::Memo(id, s) => {
            drivers.spawn(drive_workers(
                runners.deadline.clone(),
                id,
                s,
                memo_answer,
                rng,
            ));
        }
    }
}

/// Lease time to live: short, so that stalls (up to 900 ms) outlive leases.
const LEASE_TTL: Duration = Duration::from_millis(300);
const WORKERS: usize = 3;
/// The longest a process life may run before its unfinished sessions count as lost.
const LIFE_LIMIT: Duration = Duration::from_secs(600);

fn spawn_workers(workers: &mut JoinSet<()>, runners: &Runners, store: &SimStore, life: u64) {
    for n in 0..WORKERS {
        let worker = Worker::new(store.clone())
            .register(runners.looping.clone())
            .register(runners.fanout.clone())
            .register(runners.deadline.clone())
            .register(runners.support.clone())
            .concurrency(4)
            .lease_ttl(LEASE_TTL)
            .poll_interval(Duration::from_millis(100))
            .owner(format!("worker-{n}-life-{life}"));
        workers.spawn(async move {
            let _ = worker.run(CancellationToken::new()).await;
        });
    }
}

/// Waits for every task of `set`; a panic in one (a driver's, a node's) is the test's.
async fn join_all(set: &mut JoinSet<()>) {
    while let Some(joined) = set.join_next().await {
        if let Err(error) = joined
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// Aborts every task of `set` and waits until each is gone (dropped with what it ran).
async fn abort_all(set: &mut JoinSet<()>) {
    set.abort_all();
    join_all(set).await;
}

// ---------------------------------------------------------------------------------------
// Checks.

/// What a world's run found wrong.
#[derive(Debug, Default)]
struct Report {
    crashes: u64,
    /// Fenced writes refused, and claims of sessions claimed before (see `Oracle`).
    fenced_refused: u64,
    reclaims: u64,
    /// Sessions that never finished, or finished in another state than a crash-free run's.
    lost: BTreeSet<String>,
    /// Sessions whose chain has a gap or a sequence number accepted twice, or that committed
    /// an effect twice.
    forked: BTreeSet<String>,
    /// What went wrong, one line each.
    problems: Vec<String>,
}

impl Report {
    fn lost(&mut self, session: &str, why: String) {
        self.lost.insert(session.to_owned());
        self.problems.push(format!("lost {session}: {why}"));
    }
    /// (Once per session: the checks after each crash would see the same fork again.)
    fn forked(&mut self, session: &str, why: String) {
        if self.forked.insert(session.to_owned()) {
            self.problems.push(format!("forked {session}: {why}"));
        }
    }
    fn other(&mut self, why: String) {
        self.problems.push(why);
    }
}

/// A session's final state as the checks compare it.
#[derive(Debug, Clone)]
struct Final {
    completed: bool,
    /// The state as a crash-free run has it.
    normalized: String,
    /// The committed marks, with their execution ids.
    marks: Vec<String>,
    ticket: Option<Ticket>,
    question: Option<Question>,
}

/// Which workflow a session id is of: children first (`p-ticket-0/research/2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Loop,
    Fan,
    Memo,
    Ticket,
    Child,
}

fn kind_of(id: &str) -> Option<Kind> {
    if id.contains("/research/") {
        Some(Kind::Child)
    } else if id.contains("-loop-") {
        Some(Kind::Loop)
    } else if id.contains("-fan-") {
        Some(Kind::Fan)
    } else if id.contains("-memo-") {
        Some(Kind::Memo)
    } else if id.contains("-ticket-") {
        Some(Kind::Ticket)
    } else {
        None
    }
}

/// Every session id the store holds.
async fn session_ids(inner: &MemoryStore) -> Vec<String> {
    let mut ids = Vec::new();
    let mut filter = SessionFilter::new();
    filter.limit = SessionFilter::MAX_LIMIT;
    loop {
        let page = inner.sessions(&filter).await.expect("memory store");
        ids.extend(page.sessions.into_iter().map(|r| r.session));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return ids,
        }
    }
}

/// The mark keys of a state that appear more than once.
fn twice<'a>(marks: &[&'a str]) -> Vec<&'a str> {
    let mut keys = HashSet::new();
    marks
        .iter()
        .filter_map(|m| sim::ledger::split(m).map(|(key, _)| key))
        .filter(|key| !keys.insert(*key))
        .collect()
}

/// Checks one session's chain: gapless and linear, as the store's oracle saw it; each
/// checkpoint not checked before decodes and commits each effect at most once.
async fn check_chain<W: Workflow>(
    workflow: W,
    inner: &MemoryStore,
    faults: &Faults,
    id: &str,
    verified: &mut HashSet<(String, u64)>,
    report: &mut Report,
) where
    W::State: SimState,
{
    let metas = inner.list(id).await.expect("memory store");
    let seqs: Vec<u64> = metas.iter().map(|m| m.seq).collect();
    let appended = faults
        .oracle()
        .appended
        .get(id)
        .cloned()
        .unwrap_or_default();
    if seqs != (0..seqs.len() as u64).collect::<Vec<_>>() {
        report.forked(
            id,
            format!("a gap: the chain's sequence numbers are {seqs:?}"),
        );
    }
    if appended != seqs {
        report.forked(
            id,
            format!("the store accepted appends {appended:?} but keeps {seqs:?}"),
        );
    }
    let reader = Runner::new(workflow, inner.clone());
    for &seq in &seqs {
        if !verified.insert((id.to_owned(), seq)) {
            continue;
        }
        match reader.state_at(id, seq).await {
            Ok(Some(snapshot)) => {
                let marks = snapshot.state.marks();
                let twice = twice(&marks);
                if !twice.is_empty() {
                    report.forked(
                        id,
                        format!("checkpoint {seq} committed effects twice: {twice:?}"),
                    );
                }
                if snapshot.seq != seq {
                    report.other(format!("{id}: checkpoint {seq} reads as {}", snapshot.seq));
                }
            }
            Ok(None) => report.other(format!("{id}: listed checkpoint {seq} is not kept")),
            Err(error) => report.other(format!("{id}: checkpoint {seq} does not decode: {error}")),
        }
    }
}

/// A child `{parent}/research/{seq}` belongs to a parent step that exists: the parent's
/// checkpoint `seq - 1` stands at `research`, the step that produces `seq`.
async fn check_orphan(inner: &MemoryStore, id: &str, report: &mut Report) {
    let Some((parent, seq)) = id.rsplit_once("/research/") else {
        return report.other(format!("{id}: not a child id"));
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return report.other(format!("{id}: not a child id"));
    };
    let metas = inner.list(parent).await.expect("memory store");
    let step = seq
        .checked_sub(1)
        .and_then(|before| metas.iter().find(|m| m.seq == before));
    if step.is_none_or(|m| m.node != "research") {
        report.other(format!(
            "orphan child {id}: its parent has no step at `research` before checkpoint {seq}"
        ));
    }
}

/// Checks every session in the store (after a crash, and at the end).
async fn check_store(
    inner: &MemoryStore,
    faults: &Faults,
    verified: &mut HashSet<(String, u64)>,
    report: &mut Report,
) {
    for id in session_ids(inner).await {
        match kind_of(&id) {
            Some(Kind::Loop) => {
                check_chain(looping::Workflow, inner, faults, &id, verified, report).await;
            }
            Some(Kind::Fan) => {
                check_chain(fanout::Workflow, inner, faults, &id, verified, report).await;
            }
            Some(Kind::Memo) => {
                check_chain(deadline::Workflow, inner, faults, &id, verified, report).await;
            }
            Some(Kind::Ticket) => {
                check_chain(support::Workflow, inner, faults, &id, verified, report).await;
            }
            Some(Kind::Child) => {
                check_chain(
                    research_agent::Workflow,
                    inner,
                    faults,
                    &id,
                    verified,
                    report,
                )
                .await;
                check_orphan(inner, &id, report).await;
            }
            None => report.other(format!("a session nobody started: {id}")),
        }
    }
    for violation in faults.oracle().violations.drain(..) {
        report.other(violation);
    }
}

async fn final_of<W: Workflow>(workflow: W, inner: &MemoryStore, id: &str) -> Option<Final>
where
    W::State: SimState,
{
    let snapshot = Runner::new(workflow, inner.clone())
        .state(id)
        .await
        .ok()
        .flatten()?;
    let state = snapshot.state;
    let any: &dyn std::any::Any = &state;
    Some(Final {
        completed: snapshot.status == Status::Completed,
        normalized: format!("{:?}", state.normalized()),
        marks: state.marks().into_iter().map(str::to_owned).collect(),
        ticket: any.downcast_ref::<Ticket>().cloned(),
        question: any.downcast_ref::<Question>().cloned(),
    })
}

/// The final state of every session in the store.
async fn finals(inner: &MemoryStore) -> BTreeMap<String, Option<Final>> {
    let mut out = BTreeMap::new();
    for id in session_ids(inner).await {
        let found = match kind_of(&id) {
            Some(Kind::Loop) => final_of(looping::Workflow, inner, &id).await,
            Some(Kind::Fan) => final_of(fanout::Workflow, inner, &id).await,
            Some(Kind::Memo) => final_of(deadline::Workflow, inner, &id).await,
            Some(Kind::Ticket) => final_of(support::Workflow, inner, &id).await,
            Some(Kind::Child) => final_of(research_agent::Workflow, inner, &id).await,
            None => None,
        };
        out.insert(id, found);
    }
    out
}

/// The checks at the end of a world: every session of the crash-free run finished here in
/// the same state, with effects the ledger saw; no session the crash-free run does not have;
/// every parent holds its one child's result.
fn check_finals(
    run: u64,
    reference: &BTreeMap<String, Option<Final>>,
    finals: &BTreeMap<String, Option<Final>>,
    report: &mut Report,
) {
    for (id, expected) in reference {
        let Some(expected) = expected else {
            report.other(format!("{id}: the crash-free run's state does not decode"));
            continue;
        };
        match finals.get(id) {
            None | Some(None) => report.lost(id, "missing from the store".to_owned()),
            Some(Some(got)) if !got.completed => {
                report.lost(id, format!("never finished: {}", got.normalized));
            }
            Some(Some(got)) if got.normalized != expected.normalized => report.lost(
                id,
                format!(
                    "final state\n    {}\n  differs from the crash-free run's\n    {}",
                    got.normalized, expected.normalized
                ),
            ),
            Some(Some(got)) => {
                let twice = twice(&got.marks.iter().map(String::as_str).collect::<Vec<_>>());
                if !twice.is_empty() {
                    report.forked(id, format!("committed effects twice: {twice:?}"));
                }
                for mark in &got.marks {
                    if !sim::ledger::seen(run, mark) {
                        report.other(format!("{id}: committed effect {mark} was never seen"));
                    }
                }
            }
        }
    }
    for id in finals.keys().filter(|id| !reference.contains_key(*id)) {
        report.other(format!(
            "{id}: a session the crash-free run does not have (a child run twice?)"
        ));
    }
    // Children and parents agree: a completed parent holds its one child's final state.
    for (id, found) in finals {
        let Some(Final {
            completed: true,
            ticket: Some(ticket),
            ..
        }) = found
        else {
            continue;
        };
        let prefix = format!("{id}/research/");
        let children: Vec<_> = finals
            .range(prefix.clone()..)
            .take_while(|(c, _)| c.starts_with(&prefix))
            .collect();
        match children.as_slice() {
            [
                (
                    _,
                    Some(Final {
                        question: Some(q),
                        completed: true,
                        ..
                    }),
                ),
            ] => {
                if q.marks != ticket.child_marks || q.summary != ticket.notes {
                    report.other(format!("{id}: holds another result than its child's"));
                }
            }
            other => report.other(format!(
                "{id}: completed with {} child session(s), not one completed child",
                other.len()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running worlds.

/// How a process life ended.
enum End {
    Crash,
    Done,
    Stuck,
}

/// The fault rates and crash budget of world `seed`.
fn faults_of(seed: u64) -> (Rates, u64) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xfa17_fa17);
    let rates = Rates {
        crash_before: rng.u32(40..400),
        crash_after: rng.u32(40..400),
        transient: rng.u32(20..200),
        lost_reply: rng.u32(40..400),
        stall: rng.u32(10..100),
        renew_stall: rng.u32(2..8),
        stall_max: Duration::from_millis(900),
    };
    (rates, rng.u64(1..=6))
}

/// Runs world `seed` (with faults or crash-free) to its end; returns what it found and the
/// final states.
async fn run_world(
    seed: u64,
    faulty: bool,
    run: u64,
    reference: Option<&BTreeMap<String, Option<Final>>>,
) -> (Report, BTreeMap<String, Option<Final>>) {
    let (rates, budget) = if faulty {
        faults_of(seed)
    } else {
        (Rates::default(), 0)
    };
    let inner = MemoryStore::new();
    let faults = Faults::new(seed, rates, budget);
    let specs = world(seed, run);
    let mut verified = HashSet::new();
    let mut report = Report::default();
    let mut life: u64 = 0;
    loop {
        let store = faults.handle(&inner);
        let runners = Runners::new(&store);
        let mut drivers = JoinSet::new();
        // In some worlds two instances of the service drive each in-process session at
        // once (two runners resuming one session: one proceeds, the other gets `Conflict`).
        let racing = runners_racing(seed);
        let second = Runners::new(&store);
        for (i, spec) in specs.iter().enumerate() {
            let rng = fastrand::Rng::with_seed(seed ^ (life << 32) ^ (i as u64) << 16);
            spawn_driver(&mut drivers, &runners, spec, rng);
            if racing && spec.mode() == Mode::InProcess {
                let rng = fastrand::Rng::with_seed(!seed ^ (life << 32) ^ (i as u64) << 16);
                spawn_driver(&mut drivers, &second, spec, rng);
            }
        }
        let mut workers = JoinSet::new();
        spawn_workers(&mut workers, &runners, &store, life);
        let end = tokio::select! {
            biased;
            () = faults.crashed() => End::Crash,
            () = join_all(&mut drivers) => End::Done,
            () = tokio::time::sleep(LIFE_LIMIT) => End::Stuck,
        };
        // The process is gone: every task it ran is dropped with its futures.
        abort_all(&mut drivers).await;
        abort_all(&mut workers).await;
        check_store(&inner, &faults, &mut verified, &mut report).await;
        match end {
            End::Crash => {
                faults.restart();
                life += 1;
            }
            End::Done => break,
            End::Stuck => {
                report.other(format!(
                    "a process life ran {LIFE_LIMIT:?} without finishing"
                ));
                break;
            }
        }
    }
    report.crashes = faults.crashes.load(Ordering::SeqCst);
    report.fenced_refused = faults.oracle().fenced_refused;
    report.reclaims = faults.oracle().reclaims;
    let finals = finals(&inner).await;
    if let Some(reference) = reference {
        check_finals(run, reference, &finals, &mut report);
    }
    (report, finals)
}

/// Runs world `seed`: first crash-free, then with faults, and compares.
fn simulate(seed: u64) -> Report {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (clean_run, faulty_run) = (seed * 2 + 1, seed * 2 + 2);
        let (mut clean, reference) = run_world(seed, false, clean_run, None).await;
        // The crash-free run is checked as its own reference.
        check_finals(clean_run, &reference, &reference, &mut clean);
        let began = tokio::time::Instant::now();
        let (mut report, finals) = run_world(seed, true, faulty_run, Some(&reference)).await;
        if std::env::var("SIM_SEED").is_ok() {
            println!(
                "simulation: seed {seed}: {:?} of virtual time",
                began.elapsed()
            );
            for (id, found) in &finals {
                let state = found.as_ref().map_or("-", |f| f.normalized.as_str());
                println!("  {id}: {state}");
            }
        }
        sim::ledger::forget(clean_run);
        sim::ledger::forget(faulty_run);
        for problem in clean.problems {
            report.other(format!("in the crash-free run: {problem}"));
        }
        report
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// Crashes a plain `cargo test --workspace` (debug build) injects: 30 to 60 s here.
const DEFAULT_CRASHES: u64 = 6_000;

#[test]
fn simulation() {
    let seeds: Box<dyn Fn(u64) -> Option<u64> + Send + Sync> = match env_u64("SIM_SEED") {
        Some(seed) => Box::new(move |i| (i == 0).then_some(seed)),
        None => {
            let base = env_u64("SIM_SEED_BASE").unwrap_or(0);
            Box::new(move |i| Some(base + i))
        }
    };
    let target = if std::env::var("SIM_SEED").is_ok() {
        u64::MAX
    } else {
        env_u64("SIM_CRASHES").unwrap_or(DEFAULT_CRASHES)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let next = AtomicU64::new(0);
    let crashes = AtomicU64::new(0);
    let worlds = AtomicU64::new(0);
    let totals = Mutex::new((0_usize, 0_usize));
    let races = Mutex::new((0_u64, 0_u64));
    let failures: Mutex<Vec<(u64, Report)>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while crashes.load(Ordering::SeqCst) < target {
                    let Some(seed) = seeds(next.fetch_add(1, Ordering::SeqCst)) else {
                        return;
                    };
                    let report = simulate(seed);
                    crashes.fetch_add(report.crashes, Ordering::SeqCst);
                    worlds.fetch_add(1, Ordering::SeqCst);
                    {
                        let mut races = races.lock().unwrap();
                        races.0 += report.fenced_refused;
                        races.1 += report.reclaims;
                    }
                    let mut totals = totals.lock().unwrap();
                    totals.0 += report.lost.len();
                    totals.1 += report.forked.len();
                    if !report.problems.is_empty() {
                        eprintln!("simulation: seed {seed} failed:");
                        for problem in report.problems.iter().take(20) {
                            eprintln!("  {problem}");
                        }
                        eprintln!(
                            "  reproduce: SIM_SEED={seed} cargo test --release --test simulation -- --nocapture"
                        );
                        failures.lock().unwrap().push((seed, report));
                    }
                }
            });
        }
    });
    let crashes = crashes.into_inner();
    let (lost, forked) = *totals.lock().unwrap();
    let failures = failures.into_inner().unwrap();
    println!(
        "simulation: {} worlds in {:.1} s",
        worlds.into_inner(),
        started.elapsed().as_secs_f64()
    );
    let (fenced_refused, reclaims) = *races.lock().unwrap();
    println!(
        "simulation: {reclaims} sessions claimed again after a lease ended, {fenced_refused} writes of fenced workers refused"
    );
    println!("simulation: {crashes} crashes injected, {lost} lost, {forked} forked");
    if let Some((seed, report)) = failures.first() {
        panic!(
            "{} world(s) failed; the first, seed {seed}: {}\nreproduce: SIM_SEED={seed} cargo test --release --test simulation -- --nocapture",
            failures.len(),
            report.problems.first().map_or("", String::as_str)
        );
    }
}
