//! Parallel branches end to end: `#[workflow]` graphs with fan-outs, typed joins, maps and
//! parallel interrupts, run through `Runner` on `MemoryStore` and on `SqliteStore`.
//!
//! The nodes report to a [`Probe`] found through the state's `probe` field (so a fork, a new
//! session id, still reports to its origin's probe): calls per branch and item, idempotency
//! keys, finishing order, how many map items run at once, and branches dropped while running.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{SessionFilter, SessionPage, SessionRecord, Store};
use graph_runtime::{BranchOutcome, BranchState, Error, Event, Failure, Progress, Status};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// The probe

#[derive(Default)]
pub struct Probe {
    /// Calls (attempts) per `(node, item)`.
    calls: Mutex<HashMap<(String, Option<usize>), usize>>,
    /// Attempts of a node that fail, from the first: `u32::MAX` fails them all.
    fail: Mutex<HashMap<&'static str, u32>>,
    /// Idempotency keys, in the order the attempts began.
    keys: Mutex<Vec<String>>,
    /// Map items in the order they finished.
    finished: Mutex<Vec<usize>>,
    running: AtomicUsize,
    high_water: AtomicUsize,
    /// Branches whose future was dropped before it finished.
    dropped: AtomicUsize,
    /// Lets `failfast::slow` finish.
    release: AtomicBool,
}

impl Probe {
    fn enter(&self, node: &str, item: Option<usize>, ctx: &NodeCtx) -> u32 {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((node.to_owned(), item))
            .or_default() += 1;
        self.keys.lock().unwrap().push(ctx.idempotency_key());
        ctx.attempt()
    }

    fn fails(&self, node: &'static str, attempt: u32) -> bool {
        self.fail
            .lock()
            .unwrap()
            .get(node)
            .is_some_and(|&n| attempt <= n)
    }

    fn set_fail(&self, node: &'static str, attempts: u32) {
        self.fail.lock().unwrap().insert(node, attempts);
    }

    fn calls(&self, node: &str, item: Option<usize>) -> usize {
        self.calls
            .lock()
            .unwrap()
            .get(&(node.to_owned(), item))
            .copied()
            .unwrap_or(0)
    }

    fn keys_of(&self, node: &str) -> Vec<String> {
        let infix = format!("/{node}/");
        self.keys
            .lock()
            .unwrap()
            .iter()
            .filter(|k| k.contains(&infix))
            .cloned()
            .collect()
    }
}

fn probes() -> &'static Mutex<HashMap<u64, Arc<Probe>>> {
    static PROBES: OnceLock<Mutex<HashMap<u64, Arc<Probe>>>> = OnceLock::new();
    PROBES.get_or_init(Default::default)
}

/// A new probe and its id, for a state's `probe` field.
fn new_probe() -> (u64, Arc<Probe>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let probe = Arc::new(Probe::default());
    probes().lock().unwrap().insert(id, Arc::clone(&probe));
    (id, probe)
}

fn probe(id: u64) -> Arc<Probe> {
    Arc::clone(
        probes()
            .lock()
            .unwrap()
            .get(&id)
            .expect("a registered probe"),
    )
}

/// Counts a running map item (and its high-water mark) while alive.
struct Running(Arc<Probe>);

impl Running {
    fn new(probe: Arc<Probe>) -> Self {
        let now = probe.running.fetch_add(1, Ordering::SeqCst) + 1;
        probe.high_water.fetch_max(now, Ordering::SeqCst);
        Running(probe)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a branch dropped before it finished (cancelled), unless disarmed.
struct DropGuard(Option<Arc<Probe>>);

impl DropGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(probe) = &self.0 {
            probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug)]
pub struct ApiError(String);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "api down: {}", self.0)
    }
}

impl std::error::Error for ApiError {}

// ---------------------------------------------------------------------------------------------
// The claims graph of the README's "Parallel branches"

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub probe: u64,
    pub amount_cents: u64,
    /// The line items `plan` returns (cents each).
    pub lines: Vec<u64>,
    /// Whether each map item waits for the next one to finish first (so they finish in
    /// reverse order).
    pub reverse: bool,
    pub fraud_score: u32,
    pub covered: bool,
    pub note: String,
    pub approved: bool,
    /// What `total` received, in the order it received it.
    pub assessed: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct FraudScore(pub u32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Coverage {
    pub covered: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct AdjusterNote {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct LineItem {
    pub index: usize,
    pub cents: u64,
    /// Finish only after item `index + 1` has finished.
    pub after_next: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Assessed {
    pub cents: u64,
}

#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> fraud & coverage & adjuster);
    edge!(fraud & coverage & adjuster -> decide);
    edge!(decide -> plan | END);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    pub async fn intake(c: &mut Claim) {
        c.note.clear();
    }

    #[node(retry = 3, backoff_ms = 1, jitter = false)]
    pub async fn fraud(c: &Claim, ctx: &NodeCtx) -> Result<FraudScore, ApiError> {
        let p = probe(c.probe);
        let attempt = p.enter("fraud", None, ctx);
        if p.fails("fraud", attempt) {
            return Err(ApiError(format!("attempt {attempt}")));
        }
        Ok(FraudScore(u32::from(c.amount_cents > 100_000) * 90))
    }

    #[node]
    pub async fn coverage(c: &Claim, ctx: &NodeCtx) -> Coverage {
        probe(c.probe).enter("coverage", None, ctx);
        Coverage {
            covered: c.amount_cents < 1_000_000,
        }
    }

    #[node(interrupt)]
    pub async fn adjuster(c: &Claim, note: AdjusterNote, ctx: &NodeCtx) -> AdjusterNote {
        probe(c.probe).enter("adjuster", None, ctx);
        note
    }

    #[node]
    pub async fn decide(
        c: &mut Claim,
        fraud: FraudScore,
        coverage: Coverage,
        adjuster: AdjusterNote,
    ) -> decide::Next {
        c.fraud_score = fraud.0;
        c.covered = coverage.covered;
        c.note = adjuster.text;
        c.approved = c.covered && c.fraud_score < 50;
        if c.approved {
            decide::Next::Plan
        } else {
            decide::Next::End
        }
    }

    #[node]
    pub async fn plan(c: &mut Claim) -> Vec<LineItem> {
        c.lines
            .iter()
            .enumerate()
            .map(|(index, &cents)| LineItem {
                index,
                cents,
                after_next: (c.reverse && index + 1 < c.lines.len()).then_some(index + 1),
            })
            .collect()
    }

    #[node(concurrency = 8)]
    pub async fn assess(c: &Claim, item: LineItem, ctx: &NodeCtx) -> Result<Assessed, ApiError> {
        let p = probe(c.probe);
        assert_eq!(ctx.item_index(), Some(item.index));
        p.enter("assess", Some(item.index), ctx);
        let running = Running::new(Arc::clone(&p));
        if let Some(next) = item.after_next {
            while !p.finished.lock().unwrap().contains(&next) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        drop(running);
        p.finished.lock().unwrap().push(item.index);
        Ok(Assessed { cents: item.cents })
    }

    #[node]
    pub async fn total(c: &mut Claim, assess: Vec<Assessed>) {
        c.assessed = assess.iter().map(|a| a.cents).collect();
    }
}

fn claim(probe: u64, lines: Vec<u64>) -> Claim {
    Claim {
        probe,
        amount_cents: lines.iter().sum(),
        lines,
        ..Claim::default()
    }
}

/// The first kept checkpoint at `join`: the one that opened its region.
async fn opened_at<W: graph_runtime::Workflow, S: Store>(
    runner: &Runner<W, S>,
    session: &str,
    join: &str,
) -> u64 {
    runner
        .history(session)
        .await
        .unwrap()
        .iter()
        .find(|c| c.node == join)
        .unwrap_or_else(|| panic!("no checkpoint at `{join}`"))
        .seq
}

fn assert_gapless(history: &[graph_runtime::CheckpointInfo]) {
    let seqs: Vec<u64> = history.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

/// The whole claims story on one store: the interrupt branch waits after its siblings
/// finished and saved their outputs; its answer finishes the run through the map.
async fn claims_story<S: Store>(runner: Runner<claims::Workflow, S>) {
    let (id, p) = new_probe();
    p.set_fail("fraud", 2); // two failed attempts, the third succeeds
    let out = runner
        .start("c1", claim(id, vec![300, 200, 100]))
        .await
        .unwrap();
    assert!(
        matches!(
            out,
            Outcome::Interrupted {
                node: "adjuster",
                ..
            }
        ),
        "{out:?}"
    );
    // The siblings finished before the run returned, and only their attempts ran.
    assert_eq!(p.calls("fraud", None), 3);
    assert_eq!(p.calls("coverage", None), 1);
    assert_eq!(p.calls("adjuster", None), 0);
    let snap = runner.state("c1").await.unwrap().unwrap();
    assert_eq!(snap.waiting, ["adjuster"]);
    assert_eq!(
        snap.status,
        Status::Waiting {
            node: "adjuster".into()
        }
    );
    // The opening checkpoint of the region, then one branch record per finished sibling, all
    // at the join; the newest one says the session waits. (Today the wait is one more small
    // record with no output in it: the last sibling's record still says `Running`.)
    let history = runner.history("c1").await.unwrap();
    assert_gapless(&history);
    let region: Vec<_> = history.iter().filter(|c| c.node == "decide").collect();
    let running_records = region[1..]
        .iter()
        .filter(|c| c.status == Status::Running)
        .count();
    assert_eq!(running_records, 2, "{history:?}");
    assert!((3..=4).contains(&region.len()), "{history:?}");
    assert_eq!(
        region.last().unwrap().status,
        Status::Waiting {
            node: "adjuster".into()
        }
    );
    // Resuming without the answer runs nothing.
    let again = runner.resume("c1").await.unwrap();
    assert!(matches!(
        again,
        Outcome::Interrupted {
            node: "adjuster",
            ..
        }
    ));
    assert_eq!(p.calls("fraud", None) + p.calls("coverage", None), 4);

    let done = runner
        .resume_with(
            "c1",
            claims::Input::Adjuster(AdjusterNote {
                text: "seen".into(),
            }),
        )
        .await
        .unwrap();
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    assert!(state.approved);
    assert_eq!(state.note, "seen");
    assert_eq!(state.assessed, [300, 200, 100]);
    // Nothing that finished ran again.
    assert_eq!(p.calls("fraud", None), 3);
    assert_eq!(p.calls("coverage", None), 1);
    assert_eq!(p.calls("adjuster", None), 1);
    for i in 0..3 {
        assert_eq!(p.calls("assess", Some(i)), 1);
    }
    // Idempotency keys: `session/node/seq` with the region's opening seq, and the item index.
    let fan = opened_at(&runner, "c1", "decide").await;
    let map = opened_at(&runner, "c1", "total").await;
    assert_eq!(p.keys_of("fraud"), vec![format!("c1/fraud/{fan}"); 3]);
    assert_eq!(p.keys_of("coverage"), [format!("c1/coverage/{fan}")]);
    assert_eq!(p.keys_of("adjuster"), [format!("c1/adjuster/{fan}")]);
    let mut items = p.keys_of("assess");
    items.sort();
    assert_eq!(
        items,
        (0..3)
            .map(|i| format!("c1/assess/{map}/{i}"))
            .collect::<Vec<_>>()
    );
    assert_gapless(&runner.history("c1").await.unwrap());
    assert_eq!(
        runner.state("c1").await.unwrap().unwrap().status,
        Status::Completed
    );
}

#[tokio::test]
async fn claims_story_on_memory() {
    claims_story(Runner::new(claims::Workflow, MemoryStore::new())).await;
}

#[tokio::test]
async fn claims_story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("claims.db")).unwrap();
    claims_story(Runner::new(claims::Workflow, store.clone())).await;
    // The finished session reads back from a fresh handle of the file.
    let reopened = Runner::new(
        claims::Workflow,
        SqliteStore::open(dir.path().join("claims.db")).unwrap(),
    );
    let snap = reopened.state("c1").await.unwrap().unwrap();
    assert_eq!(snap.state.assessed, [300, 200, 100]);
}

/// Items finish in reverse order (each waits for the next to finish; item 0 last); the join
/// gets them in item order.
#[tokio::test]
async fn the_map_join_gets_outputs_in_item_order() {
    let (id, p) = new_probe();
    let runner = Runner::new(claims::Workflow, MemoryStore::new());
    let lines: Vec<u64> = (1..=6).collect();
    let start = Claim {
        reverse: true,
        ..claim(id, lines.clone())
    };
    runner.start("m", start).await.unwrap();
    let answer = claims::Input::Adjuster(AdjusterNote { text: "ok".into() });
    // A liveness bound only: items that did not run at once would wait for each other forever.
    let done = tokio::time::timeout(Duration::from_secs(20), runner.resume_with("m", answer))
        .await
        .expect("the items run at once")
        .unwrap()
        .into_state();
    assert_eq!(*p.finished.lock().unwrap(), [5, 4, 3, 2, 1, 0]);
    assert_eq!(done.assessed, lines);
    // Six items at once under a limit of 8.
    assert_eq!(p.high_water.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_map_over_no_items_runs_its_join_with_none() {
    let (id, p) = new_probe();
    let runner = Runner::new(claims::Workflow, MemoryStore::new());
    runner.start("z", claim(id, Vec::new())).await.unwrap();
    let done = runner
        .resume_with(
            "z",
            claims::Input::Adjuster(AdjusterNote { text: "ok".into() }),
        )
        .await
        .unwrap();
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    assert!(state.approved);
    assert!(state.assessed.is_empty());
    assert_eq!(p.keys_of("assess"), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// A map with a tight concurrency limit

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Batch {
    pub probe: u64,
    pub n: usize,
    pub results: Vec<usize>,
}

#[workflow(state = Batch)]
pub mod batch {
    use super::*;

    edge!(START -> split);
    edge!(split -> each work);
    edge!(work -> merge);
    edge!(merge -> END);

    #[node]
    async fn split(b: &mut Batch) -> Vec<usize> {
        (0..b.n).collect()
    }

    #[node(concurrency = 2)]
    async fn work(b: &Batch, item: usize, ctx: &NodeCtx) -> usize {
        let p = probe(b.probe);
        p.enter("work", Some(item), ctx);
        let _running = Running::new(Arc::clone(&p));
        // Later items are quicker, so finishing order differs from item order.
        tokio::time::sleep(Duration::from_millis(20 * (b.n - item) as u64)).await;
        item * 10
    }

    #[node]
    async fn merge(b: &mut Batch, work: Vec<usize>) {
        b.results = work;
    }
}

#[tokio::test]
async fn a_map_keeps_its_concurrency_limit() {
    let (id, p) = new_probe();
    let runner = Runner::new(batch::Workflow, MemoryStore::new());
    let done = runner
        .start(
            "b",
            Batch {
                probe: id,
                n: 7,
                ..Batch::default()
            },
        )
        .await
        .unwrap()
        .into_state();
    assert_eq!(done.results, [0, 10, 20, 30, 40, 50, 60]);
    assert_eq!(
        p.high_water.load(Ordering::SeqCst),
        2,
        "limit of 2, reached"
    );
    for i in 0..7 {
        assert_eq!(p.calls("work", Some(i)), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Two interrupt branches

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ask {
    pub probe: u64,
    pub answers: Vec<String>,
    pub work: u32,
    pub reviewed: bool,
}

#[workflow(state = Ask)]
pub mod asks {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> ask1 & ask2 & work);
    edge!(ask1 & ask2 & work -> gather);
    edge!(gather -> review);
    edge!(review -> END);

    #[node]
    async fn intake(_a: &mut Ask) {}

    #[node(interrupt)]
    async fn ask1(a: &Ask, answer: String, ctx: &NodeCtx) -> String {
        probe(a.probe).enter("ask1", None, ctx);
        answer
    }

    #[node(interrupt)]
    async fn ask2(a: &Ask, answer: String, ctx: &NodeCtx) -> String {
        probe(a.probe).enter("ask2", None, ctx);
        answer
    }

    #[node]
    async fn work(a: &Ask, ctx: &NodeCtx) -> u32 {
        probe(a.probe).enter("work", None, ctx);
        42
    }

    #[node]
    async fn gather(a: &mut Ask, work: u32, ask2: String, ask1: String) {
        a.answers = vec![ask1, ask2];
        a.work = work;
    }

    #[node(interrupt)]
    async fn review(a: &mut Ask, ok: bool) {
        a.reviewed = ok;
    }
}

async fn two_interrupts<S: Store>(runner: Runner<asks::Workflow, S>) {
    let (id, p) = new_probe();
    let start = Ask {
        probe: id,
        ..Ask::default()
    };
    let out = runner.start("a", start).await.unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "ask1", .. }),
        "{out:?}"
    );
    assert_eq!(p.calls("work", None), 1);
    let snapshot = runner.state("a").await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, ["ask1", "ask2"]);
    let progress = snapshot.progress.expect("in the region");
    assert_eq!((progress.done, progress.waiting, progress.total), (1, 2, 3));

    // The second first: the run names the one still waiting.
    let out = runner
        .resume_with("a", asks::Input::Ask2("two".into()))
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "ask1", .. }),
        "{out:?}"
    );
    let snapshot = runner.state("a").await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, ["ask1"]);
    let progress = snapshot.progress.expect("in the region");
    assert_eq!(
        states(&progress),
        [
            ("ask1", None, BranchState::Waiting),
            ("ask2", None, BranchState::Done),
            ("work", None, BranchState::Done),
        ]
    );
    // Answered already, or not in the region: not waiting, and nothing written.
    let before = runner.history("a").await.unwrap().len();
    let err = runner
        .resume_with("a", asks::Input::Ask2("again".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotWaiting { node: "ask2", ref actual, .. } if actual.contains("`ask1`")),
        "{err:?}"
    );
    let err = runner
        .resume_with("a", asks::Input::Review(true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotWaiting { node: "review", .. }),
        "{err:?}"
    );
    assert_eq!(runner.history("a").await.unwrap().len(), before);

    let out = runner
        .resume_with("a", asks::Input::Ask1("one".into()))
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "review", .. }),
        "{out:?}"
    );
    let snapshot = runner.state("a").await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, ["review"]);
    assert_eq!(snapshot.progress, None, "past the region");
    let done = runner
        .resume_with("a", asks::Input::Review(true))
        .await
        .unwrap();
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    assert_eq!(state.answers, ["one", "two"]);
    assert_eq!(state.work, 42);
    assert!(state.reviewed);
    assert_eq!(
        (
            p.calls("work", None),
            p.calls("ask1", None),
            p.calls("ask2", None)
        ),
        (1, 1, 1)
    );
    assert_gapless(&runner.history("a").await.unwrap());
}

#[tokio::test]
async fn two_interrupt_branches_are_answered_one_at_a_time_on_memory() {
    two_interrupts(Runner::new(asks::Workflow, MemoryStore::new())).await;
}

#[tokio::test]
async fn two_interrupt_branches_are_answered_one_at_a_time_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("asks.db")).unwrap();
    two_interrupts(Runner::new(asks::Workflow, store)).await;
}

/// A fork of a session stopped in a region waits where its origin waits, and finishes
/// without running any finished branch again.
#[tokio::test]
async fn a_session_stopped_in_a_region_forks() {
    let (id, p) = new_probe();
    let runner = Runner::new(asks::Workflow, MemoryStore::new());
    let start = Ask {
        probe: id,
        ..Ask::default()
    };
    runner.start("o", start).await.unwrap();
    runner
        .resume_with("o", asks::Input::Ask1("one".into()))
        .await
        .unwrap();
    let latest = runner.history("o").await.unwrap().last().unwrap().seq;
    let snap = runner.fork("o", latest, "f").await.unwrap();
    assert_eq!(snap.waiting, ["ask2"]);
    assert_eq!(runner.state("f").await.unwrap().unwrap().waiting, ["ask2"]);
    // Forked from before the first answer: both wait again.
    let first_wait = runner
        .history("o")
        .await
        .unwrap()
        .iter()
        .find(|c| matches!(&c.status, Status::Waiting { .. }))
        .unwrap()
        .seq;
    let early = runner.fork("o", first_wait, "f0").await.unwrap();
    assert_eq!(early.waiting, ["ask1", "ask2"]);

    let forked = runner
        .resume_with("f", asks::Input::Ask2("two".into()))
        .await
        .unwrap();
    let original = runner
        .resume_with("o", asks::Input::Ask2("two".into()))
        .await
        .unwrap();
    assert_eq!(forked, original);
    assert!(matches!(
        forked,
        Outcome::Interrupted { node: "review", .. }
    ));
    assert_eq!(p.calls("work", None), 1, "no fork ran `work` again");
    assert_eq!(p.calls("ask1", None), 1);
    assert_eq!(p.calls("ask2", None), 2, "once per session");
}

// ---------------------------------------------------------------------------------------------
// Fail-fast and collect mode

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Job {
    pub probe: u64,
    pub got: Vec<String>,
}

#[workflow(state = Job)]
pub mod failfast {
    use super::*;

    edge!(START -> open);
    edge!(open -> quick & flaky & slow);
    edge!(quick & flaky & slow -> join);
    edge!(join -> END);

    #[node]
    async fn open(_j: &mut Job) {}

    #[node]
    async fn quick(j: &Job, ctx: &NodeCtx) -> String {
        probe(j.probe).enter("quick", None, ctx);
        "quick".into()
    }

    #[node(retry = 2, backoff_ms = 10, jitter = false)]
    async fn flaky(j: &Job, ctx: &NodeCtx) -> Result<String, ApiError> {
        let p = probe(j.probe);
        let attempt = p.enter("flaky", None, ctx);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if p.fails("flaky", attempt) {
            return Err(ApiError(format!("flaky attempt {attempt}")));
        }
        Ok("flaky".into())
    }

    #[node]
    async fn slow(j: &Job, ctx: &NodeCtx) -> String {
        let p = probe(j.probe);
        p.enter("slow", None, ctx);
        let guard = DropGuard(Some(Arc::clone(&p)));
        while !p.release.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        guard.disarm();
        "slow".into()
    }

    #[node]
    async fn join(j: &mut Job, slow: String, quick: String, flaky: String) {
        j.got = vec![quick, flaky, slow];
    }
}

#[tokio::test]
async fn a_failed_branch_cancels_its_siblings_and_resume_reruns_only_unfinished_ones() {
    let (id, p) = new_probe();
    p.set_fail("flaky", u32::MAX);
    let runner = Runner::new(failfast::Workflow, MemoryStore::new());
    let start = Job {
        probe: id,
        ..Job::default()
    };
    let mut run = runner.spawn("ff", start);
    let events = run.events();
    let err = run.await.unwrap_err();
    let Error::Node { node, ref source } = err else {
        panic!("{err:?}");
    };
    assert_eq!(node, "flaky");
    assert!(source.to_string().contains("flaky attempt 3"), "{source}");
    assert_eq!(p.calls("flaky", None), 3, "three attempts");
    assert_eq!(p.calls("quick", None), 1);
    assert_eq!(p.calls("slow", None), 1);
    assert_eq!(p.dropped.load(Ordering::SeqCst), 1, "`slow` was cancelled");
    // The session stays in the region, with `quick`'s output kept.
    let snap = runner.state("ff").await.unwrap().unwrap();
    assert_eq!(snap.node, "join");
    assert_eq!(snap.status, Status::Running);
    assert!(snap.waiting.is_empty());
    // Only `quick` is done for the region: `flaky` failed and `slow` was cut short, and
    // both run again on resume.
    let progress = snap.progress.expect("in the region");
    assert_eq!(
        states(&progress),
        [
            ("quick", None, BranchState::Done),
            ("flaky", None, BranchState::Pending),
            ("slow", None, BranchState::Pending),
        ]
    );
    assert_eq!((progress.done, progress.pending), (1, 2));
    // The failure settled `flaky` (after its third attempt); the cancelled `slow` did not
    // settle.
    let fan = opened_at(&runner, "ff", "join").await;
    let seen = all_events(events).await;
    assert_eq!(
        branches_settled(&seen),
        [
            (
                "flaky",
                None,
                fan,
                3,
                BranchOutcome::Failed {
                    error: "api down: flaky attempt 3".into()
                }
            ),
            ("quick", None, fan, 1, BranchOutcome::Succeeded),
        ]
    );

    p.set_fail("flaky", 0);
    p.release.store(true, Ordering::SeqCst);
    let mut run = runner.spawn_resume("ff");
    let events = run.events();
    let done = run.await.unwrap();
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    let seen = all_events(events).await;
    assert!(regions_opened(&seen).is_empty(), "{seen:?}");
    assert_eq!(
        branches_settled(&seen),
        [
            ("flaky", None, fan, 1, BranchOutcome::Succeeded),
            ("slow", None, fan, 1, BranchOutcome::Succeeded),
        ]
    );
    assert_eq!(state.got, ["quick", "flaky", "slow"]);
    assert_eq!(p.calls("quick", None), 1, "finished: never re-run");
    assert_eq!(p.calls("flaky", None), 4);
    assert_eq!(p.calls("slow", None), 2);
    assert_eq!(p.dropped.load(Ordering::SeqCst), 1);
    // The re-runs had the keys of the first runs.
    assert_eq!(p.keys_of("flaky"), vec![format!("ff/flaky/{fan}"); 4]);
    assert_eq!(p.keys_of("slow"), vec![format!("ff/slow/{fan}"); 2]);
    assert_gapless(&runner.history("ff").await.unwrap());
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Gather {
    pub probe: u64,
    pub fraud: Option<String>,
    pub coverage: bool,
    pub items: Vec<Result<u32, String>>,
}

#[workflow(state = Gather)]
pub mod collecting {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> fraud & coverage);
    edge!(fraud & coverage -> decide);
    edge!(decide -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn intake(_g: &mut Gather) {}

    #[node(retry = 1, backoff_ms = 1, jitter = false)]
    async fn fraud(g: &Gather, ctx: &NodeCtx) -> Result<u32, ApiError> {
        let attempt = probe(g.probe).enter("fraud", None, ctx);
        Err(ApiError(format!("fraud attempt {attempt}")))
    }

    #[node]
    async fn coverage(g: &Gather, ctx: &NodeCtx) -> bool {
        probe(g.probe).enter("coverage", None, ctx);
        tokio::time::sleep(Duration::from_millis(20)).await;
        true
    }

    #[node]
    async fn decide(g: &mut Gather, coverage: bool, fraud: Result<u32, Failure>) {
        g.coverage = coverage;
        g.fraud = fraud.err().map(|f| format!("{}: {}", f.node(), f.error()));
    }

    #[node]
    async fn plan(_g: &mut Gather) -> Vec<u32> {
        (0..5).collect()
    }

    #[node]
    async fn assess(g: &Gather, item: u32, ctx: &NodeCtx) -> Result<u32, ApiError> {
        probe(g.probe).enter("assess", Some(item as usize), ctx);
        if item % 2 == 1 {
            return Err(ApiError(format!("item {item}")));
        }
        Ok(item * 100)
    }

    #[node]
    async fn total(g: &mut Gather, assess: Vec<Result<u32, Failure>>) {
        g.items = assess
            .into_iter()
            .map(|r| r.map_err(|f| format!("{}: {}", f.node(), f.error())))
            .collect();
    }
}

#[tokio::test]
async fn collect_mode_hands_failures_to_the_join() {
    let (id, p) = new_probe();
    let runner = Runner::new(collecting::Workflow, MemoryStore::new());
    let start = Gather {
        probe: id,
        ..Gather::default()
    };
    let done = runner.start("col", start).await.unwrap();
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    // The sibling ran on to its output; the failure came after the retry.
    assert!(state.coverage);
    assert_eq!(
        state.fraud.as_deref(),
        Some("fraud: api down: fraud attempt 2")
    );
    assert_eq!(p.calls("fraud", None), 2);
    assert_eq!(
        state.items,
        [
            Ok(0),
            Err("assess: api down: item 1".to_owned()),
            Ok(200),
            Err("assess: api down: item 3".to_owned()),
            Ok(400),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Events

#[tokio::test]
async fn events_name_every_branch_and_item() {
    let (id, p) = new_probe();
    p.set_fail("fraud", 1);
    let runner = Runner::new(claims::Workflow, MemoryStore::new());
    let mut first = runner.spawn("ev", claim(id, vec![5, 6]));
    let mut events = first.events();
    assert!(matches!(
        first.await.unwrap(),
        Outcome::Interrupted {
            node: "adjuster",
            ..
        }
    ));
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        seen.push(event);
    }
    let fan = opened_at(&runner, "ev", "decide").await;
    let mut started: Vec<(&str, Option<usize>, u64, u32)> = seen
        .iter()
        .filter_map(|e| match *e {
            Event::BranchStarted {
                node,
                item,
                seq,
                attempt,
                ..
            } => Some((node, item, seq, attempt)),
            _ => None,
        })
        .collect();
    started.sort();
    assert_eq!(
        started,
        [
            ("coverage", None, fan, 1),
            ("fraud", None, fan, 1),
            ("fraud", None, fan, 2)
        ]
    );
    let retrying: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::BranchRetrying {
                node,
                item,
                attempt,
                error,
                ..
            } => Some((*node, *item, *attempt, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retrying,
        [("fraud", None, 2, "api down: attempt 1".to_owned())]
    );
    let finished = seen
        .iter()
        .filter(|e| matches!(e, Event::BranchFinished { node: "fraud" | "coverage", item: None, seq, .. } if *seq == fan))
        .count();
    assert_eq!(finished, 3, "two attempts of `fraud`, one of `coverage`");

    let mut second = runner.spawn_resume_with(
        "ev",
        claims::Input::Adjuster(AdjusterNote { text: "ok".into() }),
    );
    let mut events = second.events();
    assert!(matches!(second.await.unwrap(), Outcome::Completed(_)));
    let mut started = Vec::new();
    let mut finished = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Event::BranchStarted {
                node, item, seq, ..
            } => started.push((node, item, seq)),
            Event::BranchFinished {
                node, item, seq, ..
            } => finished.push((node, item, seq)),
            _ => {}
        }
    }
    let map = opened_at(&runner, "ev", "total").await;
    started.sort();
    finished.sort();
    let want = [
        ("adjuster", None, fan),
        ("assess", Some(0), map),
        ("assess", Some(1), map),
    ];
    assert_eq!(started, want);
    assert_eq!(finished, want);
}

// ---------------------------------------------------------------------------------------------
// Bytes written by a fan-out of 8

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Wide {
    pub pad: String,
    pub sum: u64,
}

#[workflow(state = Wide)]
pub mod wide {
    use super::*;

    edge!(START -> open);
    edge!(open -> b0 & b1 & b2 & b3 & b4 & b5 & b6 & b7);
    edge!(b0 & b1 & b2 & b3 & b4 & b5 & b6 & b7 -> sum);
    edge!(sum -> END);

    #[node]
    async fn open(_w: &mut Wide) {}

    #[node]
    async fn b0(_w: &Wide) -> u64 {
        80
    }
    #[node]
    async fn b1(_w: &Wide) -> u64 {
        81
    }
    #[node]
    async fn b2(_w: &Wide) -> u64 {
        82
    }
    #[node]
    async fn b3(_w: &Wide) -> u64 {
        83
    }
    #[node]
    async fn b4(_w: &Wide) -> u64 {
        84
    }
    #[node]
    async fn b5(_w: &Wide) -> u64 {
        85
    }
    #[node]
    async fn b6(_w: &Wide) -> u64 {
        86
    }
    #[node]
    async fn b7(_w: &Wide) -> u64 {
        87
    }

    #[node]
    #[allow(clippy::too_many_arguments)]
    async fn sum(
        w: &mut Wide,
        b0: u64,
        b1: u64,
        b2: u64,
        b3: u64,
        b4: u64,
        b5: u64,
        b6: u64,
        b7: u64,
    ) {
        w.sum = b0 + b1 + b2 + b3 + b4 + b5 + b6 + b7;
    }
}

/// The region of a fan-out of 8 on SQLite, saving every step, costs one state plus a small
/// record per branch: not eight copies of the state.
#[tokio::test]
async fn a_fan_out_of_eight_on_sqlite_writes_one_state_and_eight_small_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("wide.db")).unwrap();
    let runner = Runner::new(wide::Workflow, store).checkpoint_policy(CheckpointPolicy::EveryStep);
    let start = Wide {
        pad: "x".repeat(4096),
        sum: 0,
    };
    let done = runner.start("w", start.clone()).await.unwrap().into_state();
    assert_eq!(done.sum, (80..88).sum::<u64>());
    let state_size = graph_runtime::__private::encode_output(&start)
        .unwrap()
        .len() as u64;
    let output_size = graph_runtime::__private::encode_output(&80_u64)
        .unwrap()
        .len() as u64;
    let history = runner.history("w").await.unwrap();
    assert_gapless(&history);
    let region: Vec<u64> = history
        .iter()
        .filter(|c| c.node == "sum")
        .map(|c| c.bytes)
        .collect();
    assert_eq!(region.len(), 9, "the opening checkpoint and 8 records");
    let total: u64 = region.iter().sum();
    assert!(
        total <= state_size + 8 * (output_size + 150),
        "{total} bytes for a state of {state_size}: {region:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// A crash between a region's last branch record and its waiting record

/// A `MemoryStore` that shows each append to a hook first; the append fails when the hook
/// says so. The hook is what a test changes.
#[derive(Clone, Default)]
struct Hooked<H>(MemoryStore, H);

/// What a [`Hooked`] store does before an append.
trait BeforeAppend: Send + Sync + 'static {
    fn before(
        &self,
        append: &graph_runtime::store::Append,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send;
}

impl<H: BeforeAppend> Store for Hooked<H> {
    async fn append(
        &self,
        session: &str,
        append: graph_runtime::store::Append,
    ) -> Result<(), Error> {
        self.1.before(&append).await?;
        self.0.append(session, append).await
    }
    async fn latest(
        &self,
        session: &str,
    ) -> Result<Option<graph_runtime::store::Checkpoint>, Error> {
        self.0.latest(session).await
    }
    async fn get(
        &self,
        session: &str,
        seq: u64,
    ) -> Result<Option<graph_runtime::store::Checkpoint>, Error> {
        self.0.get(session, seq).await
    }
    async fn list(&self, session: &str) -> Result<Vec<graph_runtime::CheckpointInfo>, Error> {
        self.0.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64, Error> {
        self.0.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> Result<bool, Error> {
        self.0.delete(session).await
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage, Error> {
        self.0.sessions(filter).await
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>, Error> {
        self.0.session(session).await
    }
    async fn claim(
        &self,
        claim: &graph_runtime::Claim,
    ) -> Result<Vec<graph_runtime::Lease>, Error> {
        self.0.claim(claim).await
    }
    async fn renew(
        &self,
        lease: &graph_runtime::Lease,
        ttl: Duration,
    ) -> Result<graph_runtime::Lease, Error> {
        self.0.renew(lease, ttl).await
    }
    async fn release(&self, lease: &graph_runtime::Lease) -> Result<bool, Error> {
        self.0.release(lease).await
    }
    async fn wait_for_work(&self, timeout: Duration) {
        self.0.wait_for_work(timeout).await
    }
}

/// Appends of a waiting checkpoint fail, as if the process died just before it: the last
/// durable write is then the last branch record, which still says `Running`.
#[derive(Clone, Default)]
struct DiesBeforeWaiting;

impl BeforeAppend for DiesBeforeWaiting {
    async fn before(&self, append: &graph_runtime::store::Append) -> Result<(), Error> {
        if matches!(append.checkpoint.status, Status::Waiting { .. }) {
            return Err(Error::Store("the process died".into()));
        }
        Ok(())
    }
}

/// When a region's last running branch finishes while interrupt branches wait, the run saves
/// the branch's record (`Running`), then a waiting record. After a crash between the two,
/// `resume` runs nothing and returns `Interrupted`; it must also save the wait, so that the
/// snapshot says the session waits and the chain is the one a run without the crash writes
/// (the sequence numbers, and so later idempotency keys, do not shift). Found by the SIGKILL
/// test of tests/crash.rs.
#[tokio::test]
async fn a_crash_before_the_waiting_record_still_shows_the_session_waiting() {
    let (id, p) = new_probe();
    let store = Hooked::<DiesBeforeWaiting>::default();
    let runner = Runner::new(asks::Workflow, store.clone());
    let start = Ask {
        probe: id,
        ..Ask::default()
    };
    let err = runner.start("w", start).await.unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    // Another process finds the session after the crash.
    let after = Runner::new(asks::Workflow, store.0.clone());
    let out = after.resume("w").await.unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "ask1", .. }),
        "{out:?}"
    );
    assert_eq!(
        p.calls("work", None),
        1,
        "the finished branch did not run again"
    );
    let snap = after.state("w").await.unwrap().unwrap();
    assert_eq!(snap.waiting, ["ask1", "ask2"], "{snap:?}");
    assert_eq!(
        snap.status,
        Status::Waiting {
            node: "ask1".into()
        }
    );
    // The same chain as without the crash: the opening, `work`'s record, the wait.
    let history = after.history("w").await.unwrap();
    assert_gapless(&history);
    let reference = Runner::new(asks::Workflow, MemoryStore::new());
    let (id, _) = new_probe();
    let start = Ask {
        probe: id,
        ..Ask::default()
    };
    reference.start("w", start).await.unwrap();
    let want: Vec<_> = reference
        .history("w")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.seq, c.node, c.status))
        .collect();
    let got: Vec<_> = history
        .into_iter()
        .map(|c| (c.seq, c.node, c.status))
        .collect();
    assert_eq!(got, want);
    // And it is answered as usual.
    after
        .resume_with("w", asks::Input::Ask1("one".into()))
        .await
        .unwrap();
    let out = after
        .resume_with("w", asks::Input::Ask2("two".into()))
        .await
        .unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "review", .. }),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Branches go on while a record is appended

/// Signalled by [`GatedRecords`] when a branch record's append begins.
static RECORD_APPENDING: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// Permits for [`GatedRecords`] to finish a branch record's append.
static RECORD_GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Relay {
    pub got: Vec<String>,
}

/// `slow` can finish only once `fast`'s record is being appended, and that append finishes
/// only once `slow` lets it (see [`GatedRecords`]): the run completes only if branches are
/// polled while a record is appended.
#[workflow(state = Relay)]
pub mod relay {
    use super::*;

    edge!(START -> open);
    edge!(open -> fast & slow);
    edge!(fast & slow -> both);
    edge!(both -> END);

    #[node]
    async fn open(_r: &mut Relay) {}

    #[node]
    async fn fast(_r: &Relay) -> String {
        "fast".to_owned()
    }

    #[node]
    async fn slow(_r: &Relay) -> String {
        RECORD_APPENDING.notified().await;
        // One permit for `fast`'s record, appending now, and one for this branch's own.
        RECORD_GATE.add_permits(2);
        "slow".to_owned()
    }

    #[node]
    async fn both(r: &mut Relay, fast: String, slow: String) {
        r.got = vec![fast, slow];
    }
}

/// Branch records (the `Running` checkpoints at the join, which depend on the region's
/// opening) are appended only once a permit of [`RECORD_GATE`] is given.
#[derive(Clone, Default)]
struct GatedRecords;

impl BeforeAppend for GatedRecords {
    async fn before(&self, append: &graph_runtime::store::Append) -> Result<(), Error> {
        let checkpoint = &append.checkpoint;
        if checkpoint.node == "both" && checkpoint.depends_on.is_some() {
            RECORD_APPENDING.notify_one();
            RECORD_GATE.acquire().await.expect("open").forget();
        }
        Ok(())
    }
}

/// A branch record is appended while the other branches go on: `slow` is polled during the
/// append of `fast`'s record (and lets it finish), and each branch still gets a record of its
/// own, in the order the branches finished.
#[tokio::test]
async fn branches_run_on_while_a_record_is_appended() {
    let store = Hooked::<GatedRecords>::default();
    let runner = Runner::new(relay::Workflow, store.clone());
    let run = runner.start("relay", Relay::default());
    let out = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the run stalled: the branches were not polled while a record was appended")
        .unwrap();
    assert_eq!(out.into_state().got, ["fast", "slow"]);
    let history = runner.history("relay").await.unwrap();
    assert_gapless(&history);
    let records: Vec<u64> = history
        .iter()
        .filter(|c| c.node == "both" && c.status == Status::Running)
        .map(|c| c.seq)
        .collect();
    assert_eq!(
        records.len(),
        3,
        "the opening and one record per branch: {history:?}"
    );
}

/// Fails the third branch record it is asked to append (then lets every append through),
/// as a store that goes away in the middle of a region would.
#[derive(Clone, Default)]
struct ThirdRecordFails(Arc<AtomicUsize>);

impl BeforeAppend for ThirdRecordFails {
    async fn before(&self, append: &graph_runtime::store::Append) -> Result<(), Error> {
        let checkpoint = &append.checkpoint;
        if checkpoint.node == "sum" && checkpoint.depends_on.is_some() {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 3 {
                return Err(Error::Store("the database went away".into()));
            }
        }
        Ok(())
    }
}

/// A branch record that fails to append (on the path that appends while branches run) ends
/// the run with the store's error; what was recorded stays, and `resume` finishes the region
/// with the same result and one gapless chain.
#[tokio::test]
async fn a_failed_branch_record_ends_the_run_and_resume_finishes_it() {
    let store = Hooked::<ThirdRecordFails>::default();
    let runner = Runner::new(wide::Workflow, store.clone());
    let err = runner.start("w", Wide::default()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Store(reason) if reason.to_string().contains("went away")),
        "{err:?}"
    );
    let before = runner.history("w").await.unwrap();
    assert_gapless(&before);
    // The opening checkpoint and the two records that made it.
    assert_eq!(before.len(), 4, "{before:?}");
    let done = runner.resume("w").await.unwrap().into_state();
    assert_eq!(done.sum, (80..88).sum::<u64>());
    let after = runner.history("w").await.unwrap();
    assert_gapless(&after);
}

// ---------------------------------------------------------------------------------------------
// Progress: regions opened, branches settled, and the frontier as a snapshot shows it

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Vetting {
    pub probe: u64,
    pub flaky: u32,
    pub broken: Option<String>,
    pub approved: bool,
    pub scores: Vec<u32>,
    /// Map items from this index on wait until the probe's `release` is set.
    pub hold_from: Option<u32>,
}

#[workflow(state = Vetting)]
pub mod vetting {
    use super::*;

    edge!(START -> open);
    edge!(open -> flaky & broken & approve);
    edge!(flaky & broken & approve -> decide);
    edge!(decide -> plan);
    edge!(plan -> each score);
    edge!(score -> sum);
    edge!(sum -> END);

    #[node]
    async fn open(v: &mut Vetting) {
        v.scores.clear();
    }

    /// Fails its first attempt, then succeeds.
    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    async fn flaky(v: &Vetting, ctx: &NodeCtx) -> Result<u32, ApiError> {
        let attempt = probe(v.probe).enter("flaky", None, ctx);
        if attempt == 1 {
            return Err(ApiError("flaky once".into()));
        }
        Ok(7)
    }

    /// Always fails: its join collects the failure.
    #[node]
    async fn broken(v: &Vetting, ctx: &NodeCtx) -> Result<u32, ApiError> {
        probe(v.probe).enter("broken", None, ctx);
        Err(ApiError("broken".into()))
    }

    #[node(interrupt)]
    async fn approve(_v: &Vetting, ok: bool) -> bool {
        ok
    }

    #[node]
    async fn decide(v: &mut Vetting, flaky: u32, broken: Result<u32, Failure>, approve: bool) {
        v.flaky = flaky;
        v.broken = broken.err().map(|f| f.error().to_owned());
        v.approved = approve;
    }

    #[node]
    async fn plan(_v: &mut Vetting) -> Vec<u32> {
        (0..6).collect()
    }

    #[node]
    async fn score(v: &Vetting, item: u32) -> u32 {
        if v.hold_from.is_some_and(|from| item >= from) {
            let p = probe(v.probe);
            while !p.release.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        item * 10
    }

    #[node]
    async fn sum(v: &mut Vetting, score: Vec<u32>) {
        v.scores = score;
    }
}

/// Every event of a run, once it has ended.
async fn all_events(mut events: graph_runtime::Events) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        seen.push(event);
    }
    seen
}

type Opened = (&'static str, u64, Vec<&'static str>, Option<usize>);

fn regions_opened(events: &[Event]) -> Vec<Opened> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RegionOpened {
                join,
                seq,
                branches,
                items,
                ..
            } => Some((*join, *seq, branches.clone(), *items)),
            _ => None,
        })
        .collect()
}

type Settled = (&'static str, Option<usize>, u64, u32, BranchOutcome);

/// The `BranchSettled` events, by node and item.
fn branches_settled(events: &[Event]) -> Vec<Settled> {
    let mut settled: Vec<Settled> = events
        .iter()
        .filter_map(|e| match e {
            Event::BranchSettled {
                node,
                item,
                seq,
                attempts,
                outcome,
                ..
            } => Some((*node, *item, *seq, *attempts, outcome.clone())),
            _ => None,
        })
        .collect();
    settled.sort_by_key(|s| (s.0, s.1));
    settled
}

/// Where each branch of a snapshot's region stands, by node and item.
fn states(progress: &Progress) -> Vec<(&'static str, Option<usize>, BranchState)> {
    progress
        .branches
        .iter()
        .map(|b| (b.node, b.item, b.state.clone()))
        .collect()
}

#[tokio::test]
async fn each_branch_and_item_settles_once_and_regions_open_once() {
    let (id, p) = new_probe();
    let runner = Runner::new(vetting::Workflow, MemoryStore::new());
    let start = Vetting {
        probe: id,
        ..Vetting::default()
    };
    let mut first = runner.spawn("v", start);
    let events = first.events();
    let out = first.await.unwrap();
    assert!(
        matches!(
            out,
            Outcome::Interrupted {
                node: "approve",
                ..
            }
        ),
        "{out:?}"
    );
    let seen = all_events(events).await;
    let fan = opened_at(&runner, "v", "decide").await;
    assert_eq!(
        regions_opened(&seen),
        [("decide", fan, vec!["flaky", "broken", "approve"], None)]
    );
    assert_eq!(
        branches_settled(&seen),
        [
            ("approve", None, fan, 0, BranchOutcome::Waiting),
            (
                "broken",
                None,
                fan,
                1,
                BranchOutcome::CollectedAsFailure {
                    error: "api down: broken".into()
                }
            ),
            ("flaky", None, fan, 2, BranchOutcome::Succeeded),
        ]
    );
    assert_eq!(p.calls("flaky", None), 2);
    // Attempts are reported apart: `flaky` finished two attempts and settled once, after
    // the second; the region opened before any of its branches began.
    let position = |wanted: &dyn Fn(&Event) -> bool| seen.iter().rposition(wanted).unwrap();
    let finished_flaky = seen
        .iter()
        .filter(|e| matches!(e, Event::BranchFinished { node: "flaky", .. }))
        .count();
    assert_eq!(finished_flaky, 2);
    assert!(
        position(&|e| matches!(e, Event::BranchFinished { node: "flaky", .. }))
            < position(&|e| matches!(e, Event::BranchSettled { node: "flaky", .. }))
    );
    let opened = seen
        .iter()
        .position(|e| matches!(e, Event::RegionOpened { .. }))
        .unwrap();
    let first_branch = seen
        .iter()
        .position(|e| matches!(e, Event::BranchStarted { .. } | Event::BranchSettled { .. }))
        .unwrap();
    assert!(opened < first_branch, "{seen:?}");

    // The answer settles the waiting branch; the region is not opened again. The map opens
    // once with its six items, each settled once.
    let mut second = runner.spawn_resume_with("v", vetting::Input::Approve(true));
    let events = second.events();
    let done = second.await.unwrap();
    let seen = all_events(events).await;
    let Outcome::Completed(state) = done else {
        panic!("{done:?}");
    };
    assert_eq!(state.flaky, 7);
    assert_eq!(state.broken.as_deref(), Some("api down: broken"));
    assert_eq!(state.scores, [0, 10, 20, 30, 40, 50]);
    let map = opened_at(&runner, "v", "sum").await;
    assert_eq!(
        regions_opened(&seen),
        [("sum", map, vec!["score"], Some(6))]
    );
    let mut want: Vec<Settled> = vec![("approve", None, fan, 1, BranchOutcome::Succeeded)];
    want.extend((0..6).map(|i| ("score", Some(i), map, 1, BranchOutcome::Succeeded)));
    assert_eq!(branches_settled(&seen), want);
}

#[tokio::test]
async fn a_snapshot_shows_how_far_a_region_has_come() {
    let (id, p) = new_probe();
    let runner = Runner::new(vetting::Workflow, MemoryStore::new());
    let start = Vetting {
        probe: id,
        hold_from: Some(4),
        ..Vetting::default()
    };
    runner.start("v", start).await.unwrap();

    // Waiting in the fan-out: one done, one failed (collected), one waiting.
    let snapshot = runner.state("v").await.unwrap().unwrap();
    let progress = snapshot.progress.expect("in the fan-out");
    assert_eq!(progress.join, "decide");
    assert_eq!(progress.opened, opened_at(&runner, "v", "decide").await);
    assert_eq!(
        states(&progress),
        [
            ("flaky", None, BranchState::Done),
            (
                "broken",
                None,
                BranchState::Failed {
                    error: "api down: broken".into()
                }
            ),
            ("approve", None, BranchState::Waiting),
        ]
    );
    assert_eq!(
        (
            progress.done,
            progress.failed,
            progress.waiting,
            progress.pending,
            progress.total
        ),
        (1, 1, 1, 0, 3)
    );
    assert_eq!(progress.finished(), 2);

    // A decision recorded for a worker: answered, not finished.
    runner
        .enqueue_input("v", vetting::Input::Approve(true))
        .await
        .unwrap();
    let progress = runner.state("v").await.unwrap().unwrap().progress.unwrap();
    assert_eq!(progress.branches[2].state, BranchState::Answered);
    assert_eq!(
        (
            progress.done,
            progress.failed,
            progress.waiting,
            progress.pending
        ),
        (1, 1, 0, 1)
    );

    // In the map: four of six items finish and are saved while two are held; the store
    // says so while the run goes on, and after it is cancelled.
    let handle = runner.spawn_resume("v");
    let progress = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let snapshot = runner.state("v").await.unwrap().unwrap();
            if let Some(progress) = snapshot.progress
                && progress.join == "sum"
                && progress.done == 4
            {
                assert_eq!(snapshot.node, "sum");
                assert_eq!(snapshot.status, Status::Running);
                return progress;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("four items were saved");
    let held = |progress: &Progress| {
        assert_eq!(
            (
                progress.done,
                progress.failed,
                progress.waiting,
                progress.pending,
                progress.total
            ),
            (4, 0, 0, 2, 6)
        );
        let want: Vec<_> = (0..6)
            .map(|i| {
                let state = if i < 4 {
                    BranchState::Done
                } else {
                    BranchState::Pending
                };
                ("score", Some(i), state)
            })
            .collect();
        assert_eq!(states(progress), want);
    };
    held(&progress);
    handle.cancel();
    assert!(matches!(handle.await, Err(Error::Cancelled(_))));
    let snapshot = runner.state("v").await.unwrap().unwrap();
    held(snapshot.progress.as_ref().expect("still in the map"));
    assert!(snapshot.waiting.is_empty());

    // Resumed, only the two held items run and settle; the map is not opened again.
    p.release.store(true, Ordering::SeqCst);
    let mut rest = runner.spawn_resume("v");
    let events = rest.events();
    let done = rest.await.unwrap();
    let seen = all_events(events).await;
    assert_eq!(done.into_state().scores, [0, 10, 20, 30, 40, 50]);
    assert!(regions_opened(&seen).is_empty(), "{seen:?}");
    let map = opened_at(&runner, "v", "sum").await;
    assert_eq!(
        branches_settled(&seen),
        [
            ("score", Some(4), map, 1, BranchOutcome::Succeeded),
            ("score", Some(5), map, 1, BranchOutcome::Succeeded),
        ]
    );
    assert!(runner.state("v").await.unwrap().unwrap().progress.is_none());
}
