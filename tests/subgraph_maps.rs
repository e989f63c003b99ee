//! Maps over subgraph nodes: one child session per item (`edge!(plan -> each assess)` with
//! `#[node(subgraph = m)]` on `assess`), on every store (memory, SQLite file, a throwaway
//! PostgreSQL).
//!
//! A claim's line items are assessed by a child workflow each; an item over the limit waits
//! for a human check inside its child. Counts of node runs are kept per tag (each scenario on
//! each store has its own), so the scenarios run concurrently.

use std::collections::BTreeMap;
use std::sync::Mutex;

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{Error, Status};
use serde::{Deserialize, Serialize};

#[path = "support/postgres.rs"]
mod postgres;
#[macro_use]
#[path = "support/every_store.rs"]
mod every_store;

/// How many times each `(tag, node, item)` ran; failures left per `(tag, node, item)`; the
/// most items of each tag in flight at once.
static RUNS: Mutex<BTreeMap<(String, &'static str, usize), u32>> = Mutex::new(BTreeMap::new());
static FAILURES: Mutex<BTreeMap<(String, &'static str, usize), u32>> = Mutex::new(BTreeMap::new());
static IN_FLIGHT: Mutex<BTreeMap<String, (usize, usize)>> = Mutex::new(BTreeMap::new());

fn ran(tag: &str, node: &'static str, item: usize) {
    *RUNS
        .lock()
        .unwrap()
        .entry((tag.to_owned(), node, item))
        .or_default() += 1;
}

fn runs(tag: &str, node: &'static str, item: usize) -> u32 {
    RUNS.lock()
        .unwrap()
        .get(&(tag.to_owned(), node, item))
        .copied()
        .unwrap_or(0)
}

fn fail_next(tag: &str, node: &'static str, item: usize, times: u32) {
    FAILURES
        .lock()
        .unwrap()
        .insert((tag.to_owned(), node, item), times);
}

fn fails(tag: &str, node: &'static str, item: usize) -> bool {
    let mut failures = FAILURES.lock().unwrap();
    match failures.get_mut(&(tag.to_owned(), node, item)) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}

/// Counts a child running for `tag`; the guard counts it out.
struct Flight(String);

impl Flight {
    fn enter(tag: &str) -> Self {
        let mut flights = IN_FLIGHT.lock().unwrap();
        let (now, most) = flights.entry(tag.to_owned()).or_default();
        *now += 1;
        *most = (*most).max(*now);
        Flight(tag.to_owned())
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Some((now, _)) = IN_FLIGHT.lock().unwrap().get_mut(&self.0) {
            *now -= 1;
        }
    }
}

fn most_in_flight(tag: &str) -> usize {
    IN_FLIGHT
        .lock()
        .unwrap()
        .get(tag)
        .map_or(0, |(_, most)| *most)
}

/// The line items above this many cents wait for a human check in their child.
const CHECK_ABOVE: u64 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Line {
    pub tag: String,
    pub index: usize,
    pub cents: u64,
    pub checked_by: String,
    pub payable: u64,
}

/// The child: prices one line, waiting for a check when it is large.
#[workflow(state = Line)]
pub mod assessment {
    use super::*;

    edge!(START -> price);
    edge!(price -> check | settle);
    edge!(check -> settle);
    edge!(settle -> END);

    #[node]
    async fn price(line: &mut Line) -> Result<price::Next, String> {
        ran(&line.tag, "price", line.index);
        let _flight = Flight::enter(&line.tag);
        // Long enough for the map's concurrency limit to be reached (in claims of 50 lines;
        // the large map of 10,000 does not wait).
        if line.index < 50 {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        if fails(&line.tag, "price", line.index) {
            return Err(format!("the price list is down for line {}", line.index));
        }
        line.payable = line.cents * 9 / 10;
        Ok(if line.cents > CHECK_ABOVE {
            price::Next::Check
        } else {
            price::Next::Settle
        })
    }

    #[node(interrupt)]
    async fn check(line: &mut Line, adjuster: String) {
        ran(&line.tag, "check", line.index);
        line.checked_by = adjuster;
    }

    #[node]
    async fn settle(line: &mut Line) -> Result<(), String> {
        ran(&line.tag, "settle", line.index);
        if fails(&line.tag, "settle", line.index) {
            return Err(format!("the ledger refused line {}", line.index));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub tag: String,
    pub lines: Vec<u64>,
    pub payable: u64,
    pub checked: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Assessed {
    pub payable: u64,
    pub checked_by: String,
}

/// The parent: one assessment child per line item, four at a time.
#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn plan(c: &mut Claim) -> Vec<Line> {
        ran(&c.tag, "plan", 0);
        c.lines
            .iter()
            .enumerate()
            .map(|(index, &cents)| Line {
                tag: c.tag.clone(),
                index,
                cents,
                ..Line::default()
            })
            .collect()
    }

    #[node(subgraph = assessment, concurrency = 4, retry = 1)]
    async fn assess(
        c: &Claim,
        line: Line,
        child: Child<assessment::Workflow>,
    ) -> Result<Assessed, NodeError> {
        ran(&c.tag, "assess", line.index);
        let index = line.index;
        let done = child.run(line).await?;
        // A crash between the child's end and the item's record, simulated: the node fails
        // after its child returned, and its retry runs it again.
        if fails(&c.tag, "assess", index) {
            return Err("lost the connection after the child finished".into());
        }
        Ok(Assessed {
            payable: done.payable,
            checked_by: done.checked_by,
        })
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<Assessed>) {
        ran(&c.tag, "total", 0);
        c.payable = assess.iter().map(|a| a.payable).sum();
        c.checked = assess
            .iter()
            .filter(|a| !a.checked_by.is_empty())
            .map(|a| a.checked_by.clone())
            .collect();
    }
}

/// 50 lines of 1,000 cents, except the large ones at `large`.
fn claim(tag: &str, large: &[usize]) -> Claim {
    Claim {
        tag: tag.to_owned(),
        lines: (0..50)
            .map(|i| if large.contains(&i) { 20_000 } else { 1_000 })
            .collect(),
        ..Claim::default()
    }
}

/// The child of item `item`: the parent's session, the map node, the step that opened the
/// map (`plan` is 1, so the map opened at 2... the map's items run under the sequence
/// number of the step that opened them) and the item.
fn child_of(parent: &str, item: usize) -> String {
    format!("{parent}/assess/1/{item}")
}

async fn a_map_runs_one_child_per_item<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let id = format!("{tag}-claim");
    let done = parent
        .start(&id, claim(tag, &[]))
        .await
        .unwrap()
        .into_state();
    assert_eq!(done.payable, 50 * 900);
    assert!(done.checked.is_empty());
    assert_eq!(runs(tag, "plan", 0), 1);
    assert_eq!(runs(tag, "total", 0), 1);
    for item in 0..50 {
        assert_eq!(runs(tag, "assess", item), 1, "item {item}");
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
        assert_eq!(runs(tag, "settle", item), 1, "item {item}");
    }
    assert!(
        (2..=4).contains(&most_in_flight(tag)),
        "concurrency 4: {} at once",
        most_in_flight(tag)
    );
    // Each item's child is a session of its own, completed, with its own history.
    let children = Runner::new(assessment::Workflow, store.clone());
    for item in [0, 17, 49] {
        let child = children.state(&child_of(&id, item)).await.unwrap();
        let child = child.unwrap_or_else(|| panic!("no child for item {item}"));
        assert_eq!(child.status, Status::Completed);
        assert_eq!(child.state.index, item);
        assert_eq!(child.state.payable, 900);
        assert_eq!(
            children.history(&child_of(&id, item)).await.unwrap().len(),
            3
        );
    }
}

async fn items_whose_child_waits_wait_on_their_own<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let children = Runner::new(assessment::Workflow, store.clone());
    let id = format!("{tag}-claim");
    let large = [3, 20, 41];
    let outcome = parent.start(&id, claim(tag, &large)).await.unwrap();
    let Outcome::Interrupted { node, .. } = outcome else {
        panic!("three children wait: {outcome:?}");
    };
    assert_eq!(node, "assess/check");
    let snapshot = parent.state(&id).await.unwrap().unwrap();
    // Each waiting item's child waits at `check`: one path, three items.
    assert_eq!(snapshot.waiting, vec!["assess/check"]);
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "assess/check".into()
        }
    );
    let progress = snapshot.progress.expect("a map in progress");
    assert_eq!((progress.done, progress.waiting), (47, 3), "{progress:?}");
    for item in 0..50 {
        let child = children.state(&child_of(&id, item)).await.unwrap().unwrap();
        if large.contains(&item) {
            assert_eq!(child.waiting, vec!["check"], "item {item}");
        } else {
            assert_eq!(child.status, Status::Completed, "item {item}");
        }
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
    }

    // Resuming while every child still waits runs nothing (the children's statuses come
    // from the store's session index) and writes nothing.
    let kept = parent.history(&id).await.unwrap().len();
    let outcome = parent.resume(&id).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "assess/check",
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(parent.history(&id).await.unwrap().len(), kept);
    for item in large {
        assert_eq!(runs(tag, "assess", item), 1, "item {item}");
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
    }

    // Answering two children and resuming the parent: it still waits for the third, and
    // no finished child runs again.
    for (item, who) in [(3, "ana"), (41, "bo")] {
        children
            .resume_with(&child_of(&id, item), assessment::Input::Check(who.into()))
            .await
            .unwrap();
    }
    let outcome = parent.resume(&id).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "assess/check",
                ..
            }
        ),
        "{outcome:?}"
    );
    let snapshot = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, vec!["assess/check"], "{snapshot:?}");

    children
        .resume_with(&child_of(&id, 20), assessment::Input::Check("cy".into()))
        .await
        .unwrap();
    let done = parent.resume(&id).await.unwrap().into_state();
    assert_eq!(done.payable, 47 * 900 + 3 * 18_000);
    assert_eq!(done.checked, vec!["ana", "cy", "bo"]);
    for item in 0..50 {
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
        assert_eq!(runs(tag, "settle", item), 1, "item {item}");
        let checks = runs(tag, "check", item);
        assert_eq!(checks, u32::from(large.contains(&item)), "item {item}");
    }
    assert_eq!(runs(tag, "total", 0), 1);
}

async fn a_failed_child_is_retried_from_its_checkpoint<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let id = format!("{tag}-claim");
    // Item 7's child fails at `settle` once: the map node's retry continues the child, whose
    // `price` does not run again.
    fail_next(tag, "settle", 7, 1);
    let done = parent
        .start(&id, claim(tag, &[]))
        .await
        .unwrap()
        .into_state();
    assert_eq!(done.payable, 50 * 900);
    assert_eq!(runs(tag, "assess", 7), 2);
    assert_eq!(runs(tag, "price", 7), 1);
    assert_eq!(runs(tag, "settle", 7), 2);
    assert_eq!(runs(tag, "assess", 8), 1);
}

async fn a_crash_after_a_child_ended_does_not_run_it_again<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let id = format!("{tag}-claim");
    fail_next(tag, "assess", 9, 1);
    fail_next(tag, "assess", 33, 1);
    let done = parent
        .start(&id, claim(tag, &[]))
        .await
        .unwrap()
        .into_state();
    assert_eq!(done.payable, 50 * 900);
    for item in [9, 33] {
        assert_eq!(runs(tag, "assess", item), 2, "item {item}");
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
        assert_eq!(runs(tag, "settle", item), 1, "item {item}");
    }
}

async fn a_child_failing_past_its_retries_fails_the_parent<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let id = format!("{tag}-claim");
    fail_next(tag, "price", 12, 2);
    let failed = parent.start(&id, claim(tag, &[])).await;
    let Err(Error::Node { node, source }) = failed else {
        panic!("item 12 fails twice: {failed:?}");
    };
    assert_eq!(node, "assess");
    let report = chain(&*source);
    assert!(report.contains("item 12"), "{report}");
    assert!(report.contains("price list is down"), "{report}");
    // The siblings in flight were dropped at the failure (their nodes may run again); the
    // children that had completed are never run again.
    let children = Runner::new(assessment::Workflow, store.clone());
    let mut completed = Vec::new();
    for item in 0..50 {
        if let Some(child) = children.state(&child_of(&id, item)).await.unwrap()
            && child.status == Status::Completed
        {
            completed.push((item, runs(tag, "price", item)));
        }
    }
    assert!(!completed.is_empty());
    // Resuming the parent continues the failed child.
    let done = parent.resume(&id).await.unwrap().into_state();
    assert_eq!(done.payable, 50 * 900);
    assert_eq!(runs(tag, "price", 12), 3);
    assert_eq!(runs(tag, "settle", 12), 1);
    for (item, price_runs) in completed {
        assert_eq!(runs(tag, "price", item), price_runs, "item {item}");
    }
    for item in 0..50 {
        let child = children.state(&child_of(&id, item)).await.unwrap().unwrap();
        assert_eq!(child.status, Status::Completed, "item {item}");
        assert_eq!(
            child.seq, 2,
            "item {item}: one checkpoint per step, no fork"
        );
    }
}

async fn answering_a_map_child_through_the_parent_names_the_children<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let id = format!("{tag}-claim");
    parent.start(&id, claim(tag, &[5])).await.unwrap();
    let refused = parent
        .resume_with(
            &id,
            claims::Input::Assess(assessment::Input::Check("x".into())),
        )
        .await;
    let Err(error) = refused else {
        panic!("a map's children are answered one by one: {refused:?}");
    };
    let text = error.to_string();
    assert!(text.contains(&child_of(&id, 5)), "{text}");
    assert_eq!(runs(tag, "check", 5), 0);
}

/// Children answered on their own sessions whose runs stopped before they ended (here the
/// answers are only recorded, as `enqueue_input` does for workers; in the simulation, the
/// process crashed in the middle of the children's runs, before the parent was resumed):
/// nothing is left for anyone to decide, so the parent's snapshot says it runs rather than
/// that it waits at `assess`, and a client that answers waiting sessions and resumes running
/// ones moves it on, as it does the parent of a subgraph node whose child was answered.
async fn a_map_parent_whose_children_no_longer_wait_runs<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let children = Runner::new(assessment::Workflow, store.clone());
    let id = format!("{tag}-claim");
    let outcome = parent.start(&id, claim(tag, &[3, 7])).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "assess/check",
                ..
            }
        ),
        "{outcome:?}"
    );
    children
        .enqueue_input(&child_of(&id, 7), assessment::Input::Check("ana".into()))
        .await
        .unwrap();
    // One child still waits: the parent waits for its check, and for nothing else.
    let snapshot = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, vec!["assess/check"], "{snapshot:?}");
    children
        .enqueue_input(&child_of(&id, 3), assessment::Input::Check("bo".into()))
        .await
        .unwrap();
    let snapshot = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.status, Status::Running, "{snapshot:?}");
    assert!(snapshot.waiting.is_empty(), "{snapshot:?}");
    let done = parent.resume(&id).await.unwrap().into_state();
    assert_eq!(done.payable, 48 * 900 + 2 * 18_000);
    assert_eq!(done.checked, vec!["bo", "ana"]);
    for item in [3, 7] {
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
        assert_eq!(runs(tag, "check", item), 1, "item {item}");
    }
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Three workers that registered only the parent: they run its children too (any worker
/// takes any child), the parent holds no lease while its children run, and the children
/// that end wake it. Two items' children wait for a check, answered through a worker.
async fn workers_spread_a_map_of_children<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(claims::Workflow, store.clone());
    let children = Runner::new(assessment::Workflow, store.clone());
    let shutdown = graph_runtime::CancellationToken::new();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let worker = graph_runtime::Worker::new(store.clone())
                .register(parent.clone())
                .concurrency(8)
                .lease_ttl(std::time::Duration::from_secs(10))
                .poll_interval(std::time::Duration::from_millis(50))
                .owner(format!("{tag}-w{i}"));
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect();
    let ids: Vec<String> = (0..3).map(|i| format!("{tag}-claim-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let large: &[usize] = if i == 0 { &[4, 30] } else { &[] };
        parent.enqueue(id, claim(tag, large)).await.unwrap();
    }
    // The first claim's two large items wait in their children; the parent waits for them.
    let first = ids[0].clone();
    wait_until("the checks to wait", || {
        let (children, first) = (&children, &first);
        async move {
            let mut waiting = 0;
            for item in [4, 30] {
                if let Some(child) = children.state(&child_of(first, item)).await.unwrap()
                    && child.waiting == vec!["check"]
                {
                    waiting += 1;
                }
            }
            waiting == 2
        }
    })
    .await;
    for (item, who) in [(4, "ana"), (30, "bo")] {
        children
            .enqueue_input(
                &child_of(&first, item),
                assessment::Input::Check(who.into()),
            )
            .await
            .unwrap();
    }
    wait_until("every claim to complete", || {
        let (parent, ids) = (&parent, &ids);
        async move {
            for id in ids {
                match parent.state(id).await.unwrap() {
                    Some(s) if s.status == Status::Completed => {}
                    _ => return false,
                }
            }
            true
        }
    })
    .await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    // The parent waited at its map node while its children ran elsewhere (it held no
    // lease meanwhile): its history has such a wait.
    let history = parent.history(&ids[1]).await.unwrap();
    assert!(
        history.iter().any(|c| c.status
            == Status::Waiting {
                node: "assess".into()
            }),
        "{history:?}"
    );
    let done = parent.state(&ids[0]).await.unwrap().unwrap().state;
    assert_eq!(done.payable, 48 * 900 + 2 * 18_000);
    assert_eq!(done.checked, vec!["ana", "bo"]);
    for id in &ids[1..] {
        let done = parent.state(id).await.unwrap().unwrap().state;
        assert_eq!(done.payable, 50 * 900);
    }
    // Every child ran each of its nodes once (all claims share the tag: three per item),
    // and every child is a completed session of its parent.
    for item in 0..50 {
        assert_eq!(runs(tag, "price", item), 3, "item {item}");
        assert_eq!(runs(tag, "settle", item), 3, "item {item}");
        for id in &ids {
            let child = children.state(&child_of(id, item)).await.unwrap().unwrap();
            assert_eq!(child.status, Status::Completed, "{id} item {item}");
        }
    }
    assert_eq!(runs(tag, "check", 4), 1);
    assert_eq!(runs(tag, "total", 0), 3);
}

/// A `MemoryStore` that counts the reads of single sessions (`latest`, `get`, `chain`) and
/// the pages of the session index (`sessions`).
#[derive(Clone, Default)]
struct Counting(graph_runtime::MemoryStore, std::sync::Arc<Counts>);

#[derive(Default)]
struct Counts {
    reads: std::sync::atomic::AtomicUsize,
    pages: std::sync::atomic::AtomicUsize,
}

impl Counting {
    fn reads(&self) -> usize {
        self.1.reads.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn pages(&self) -> usize {
        self.1.pages.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn read(&self) {
        self.1
            .reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

type R<T> = Result<T, Error>;

impl Store for Counting {
    async fn append(&self, session: &str, append: graph_runtime::store::Append) -> R<()> {
        self.0.append(session, append).await
    }
    async fn latest(&self, session: &str) -> R<Option<graph_runtime::store::Checkpoint>> {
        self.read();
        self.0.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> R<Option<graph_runtime::store::Checkpoint>> {
        self.read();
        self.0.get(session, seq).await
    }
    async fn chain(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> R<Vec<graph_runtime::store::Checkpoint>> {
        self.read();
        self.0.chain(session, from, to).await
    }
    async fn list(&self, session: &str) -> R<Vec<graph_runtime::CheckpointInfo>> {
        self.0.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> R<u64> {
        self.0.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> R<bool> {
        self.0.delete(session).await
    }
    async fn sessions(
        &self,
        filter: &graph_runtime::store::SessionFilter,
    ) -> R<graph_runtime::store::SessionPage> {
        self.1
            .pages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.0.sessions(filter).await
    }
    async fn session(&self, session: &str) -> R<Option<graph_runtime::store::SessionRecord>> {
        self.0.session(session).await
    }
    async fn claim(&self, claim: &graph_runtime::Claim) -> R<Vec<graph_runtime::Lease>> {
        self.0.claim(claim).await
    }
    async fn renew(
        &self,
        lease: &graph_runtime::Lease,
        ttl: std::time::Duration,
    ) -> R<graph_runtime::Lease> {
        self.0.renew(lease, ttl).await
    }
    async fn release(&self, lease: &graph_runtime::Lease) -> R<bool> {
        self.0.release(lease).await
    }
    async fn wake(&self, session: &str, seq: u64) -> R<bool> {
        self.0.wake(session, seq).await
    }
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.0.wait_for_work(timeout).await
    }
}

/// A map of 10,000 children, three of which wait: resuming the parent reads the children's
/// statuses from the session index a page at a time, not each child's checkpoint; once
/// the three are answered, it reads those three children and none of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_of_ten_thousand_children_resumes_without_reading_each() {
    let tag = "memory-ten-thousand";
    let store = Counting::default();
    let parent = Runner::new(claims::Workflow, store.clone());
    let children = Runner::new(assessment::Workflow, store.clone());
    let id = format!("{tag}-claim");
    let large = [17, 5_000, 9_999];
    let mut start = claim(tag, &[]);
    start.lines = (0..10_000)
        .map(|i| if large.contains(&i) { 20_000 } else { 1_000 })
        .collect();
    let outcome = parent.start(&id, start).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "assess/check",
                ..
            }
        ),
        "{outcome:?}"
    );

    let (reads, pages) = (store.reads(), store.pages());
    let outcome = parent.resume(&id).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "assess/check",
                ..
            }
        ),
        "{outcome:?}"
    );
    let (resume_reads, resume_pages) = (store.reads() - reads, store.pages() - pages);
    assert!(
        resume_reads <= 3,
        "{resume_reads} reads of single sessions to resume"
    );
    assert!(
        resume_pages <= 2,
        "{resume_pages} pages of the session index to resume"
    );

    for item in large {
        children
            .resume_with(&child_of(&id, item), assessment::Input::Check("ana".into()))
            .await
            .unwrap();
    }
    let reads = store.reads();
    let done = parent.resume(&id).await.unwrap().into_state();
    let resume_reads = store.reads() - reads;
    assert_eq!(done.payable, 9_997 * 900 + 3 * 18_000);
    assert_eq!(done.checked.len(), 3);
    // The parent's own checkpoints, then each answered child once or twice: not 10,000.
    assert!(
        resume_reads <= 3 + 3 * 3,
        "{resume_reads} reads to take three children's results"
    );
    for item in (0..10_000).step_by(997) {
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
    }
}

/// An error and its sources, one after the other.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

on_every_store!(
    a_map_runs_one_child_per_item,
    items_whose_child_waits_wait_on_their_own,
    a_failed_child_is_retried_from_its_checkpoint,
    a_child_failing_past_its_retries_fails_the_parent,
    answering_a_map_child_through_the_parent_names_the_children,
    workers_spread_a_map_of_children,
    a_crash_after_a_child_ended_does_not_run_it_again,
    a_map_parent_whose_children_no_longer_wait_runs,
);

/// What a `swallowing::assess` node saw from `child.run`, per tag: how many times the
/// child ran on a worker (`Error::ChildRunning`), with the message it gave.
static RUNNING_ELSEWHERE: Mutex<BTreeMap<String, Vec<String>>> = Mutex::new(BTreeMap::new());

/// A parent whose map node swallows `child.run`'s error and returns a made-up result: under
/// workers, an item whose child runs elsewhere waits for the child whatever the node
/// returned, and the made-up result is never recorded.
#[workflow(state = Claim)]
pub mod swallowing {
    use super::*;

    edge!(START -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node]
    async fn plan(c: &mut Claim) -> Vec<Line> {
        c.lines
            .iter()
            .enumerate()
            .map(|(index, &cents)| Line {
                tag: c.tag.clone(),
                index,
                cents,
                ..Line::default()
            })
            .collect()
    }

    #[node(subgraph = assessment, concurrency = 4)]
    async fn assess(
        c: &Claim,
        line: Line,
        child: Child<assessment::Workflow>,
    ) -> Result<Assessed, NodeError> {
        match child.run(line).await {
            Ok(done) => Ok(Assessed {
                payable: done.payable,
                checked_by: done.checked_by,
            }),
            Err(error) => {
                if matches!(error, Error::ChildRunning { .. }) {
                    let mut seen = RUNNING_ELSEWHERE.lock().unwrap();
                    seen.entry(c.tag.clone())
                        .or_default()
                        .push(error.to_string());
                }
                Ok(Assessed {
                    payable: 0,
                    checked_by: "made up".into(),
                })
            }
        }
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<Assessed>) {
        c.payable = assess.iter().map(|a| a.payable).sum();
        c.checked = assess.iter().map(|a| a.checked_by.clone()).collect();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_swallows_child_running_still_waits_for_the_child() {
    let tag = "swallow";
    let store = graph_runtime::MemoryStore::new();
    let parent = Runner::new(swallowing::Workflow, store.clone());
    let shutdown = graph_runtime::CancellationToken::new();
    let worker = graph_runtime::Worker::new(store.clone())
        .register(parent.clone())
        .concurrency(8)
        .poll_interval(std::time::Duration::from_millis(20));
    let worker = tokio::spawn(worker.run(shutdown.clone()));
    let id = format!("{tag}-claim");
    let lines = Claim {
        tag: tag.into(),
        lines: vec![1_000, 2_000, 3_000, 4_000, 5_000],
        ..Claim::default()
    };
    parent.enqueue(&id, lines).await.unwrap();
    wait_until("the claim to complete", || {
        let (parent, id) = (&parent, &id);
        async move {
            parent
                .state(id)
                .await
                .unwrap()
                .is_some_and(|s| s.status == Status::Completed)
        }
    })
    .await;
    shutdown.cancel();
    worker.await.unwrap().unwrap();

    // The node did see its children run elsewhere, and said what to do with the error.
    let seen = RUNNING_ELSEWHERE
        .lock()
        .unwrap()
        .remove(tag)
        .unwrap_or_default();
    assert!(!seen.is_empty(), "no item's child ran on a worker");
    assert!(
        seen.iter()
            .all(|m| m.contains("runs on a worker") && m.contains(&format!("{id}/assess/"))),
        "{seen:?}"
    );
    // The made-up results were not recorded: each item holds its child's result.
    let done = parent.state(&id).await.unwrap().unwrap().state;
    assert_eq!(
        done.payable,
        (1_000 + 2_000 + 3_000 + 4_000 + 5_000) * 9 / 10
    );
    assert_eq!(done.checked, vec![String::new(); 5]);
}

/// A `MemoryStore` whose `wake` calls are lost (they take no effect): as when the worker
/// that ran a child dies between the child's last checkpoint and its call that wakes the
/// parent. It counts the calls lost.
#[derive(Clone, Default)]
struct LosesWakes(
    graph_runtime::MemoryStore,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

impl Store for LosesWakes {
    async fn append(&self, session: &str, append: graph_runtime::store::Append) -> R<()> {
        self.0.append(session, append).await
    }
    async fn latest(&self, session: &str) -> R<Option<graph_runtime::store::Checkpoint>> {
        self.0.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> R<Option<graph_runtime::store::Checkpoint>> {
        self.0.get(session, seq).await
    }
    async fn chain(
        &self,
        session: &str,
        from: u64,
        to: u64,
    ) -> R<Vec<graph_runtime::store::Checkpoint>> {
        self.0.chain(session, from, to).await
    }
    async fn list(&self, session: &str) -> R<Vec<graph_runtime::CheckpointInfo>> {
        self.0.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> R<u64> {
        self.0.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> R<bool> {
        self.0.delete(session).await
    }
    async fn sessions(
        &self,
        filter: &graph_runtime::store::SessionFilter,
    ) -> R<graph_runtime::store::SessionPage> {
        self.0.sessions(filter).await
    }
    async fn session(&self, session: &str) -> R<Option<graph_runtime::store::SessionRecord>> {
        self.0.session(session).await
    }
    async fn claim(&self, claim: &graph_runtime::Claim) -> R<Vec<graph_runtime::Lease>> {
        self.0.claim(claim).await
    }
    async fn renew(
        &self,
        lease: &graph_runtime::Lease,
        ttl: std::time::Duration,
    ) -> R<graph_runtime::Lease> {
        self.0.renew(lease, ttl).await
    }
    async fn release(&self, lease: &graph_runtime::Lease) -> R<bool> {
        self.0.release(lease).await
    }
    async fn wake(&self, _session: &str, _seq: u64) -> R<bool> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.0.wait_for_work(timeout).await
    }
}

/// Found by tests/simulation.rs: every wake-up a child's end sends its parent is lost, and
/// the map parent, left waiting by its worker for children running elsewhere, still ends:
/// its wait wakes it again after a while (virtual time here), and the worker that claims it
/// then reads its children's statuses. Before, it waited forever.
#[tokio::test(start_paused = true)]
async fn a_map_parent_whose_wake_ups_are_lost_still_ends() {
    let tag = "lost-wakes";
    let store = LosesWakes::default();
    let parent = Runner::new(claims::Workflow, store.clone());
    let shutdown = graph_runtime::CancellationToken::new();
    let worker = graph_runtime::Worker::new(store.clone())
        .register(parent.clone())
        .concurrency(8)
        .poll_interval(std::time::Duration::from_millis(50));
    let worker = tokio::spawn(worker.run(shutdown.clone()));
    let id = format!("{tag}-claim");
    let lines = Claim {
        tag: tag.into(),
        lines: vec![1_000; 6],
        ..Claim::default()
    };
    parent.enqueue(&id, lines).await.unwrap();
    let began = tokio::time::Instant::now();
    let give_up = began + std::time::Duration::from_secs(3_600);
    loop {
        let snapshot = parent.state(&id).await.unwrap().unwrap();
        if snapshot.status == Status::Completed {
            assert_eq!(snapshot.state.payable, 6 * 900);
            break;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "the parent never ended: {:?} waiting at {:?}",
            snapshot.status,
            snapshot.waiting
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    // Wake-ups were sent and lost; the parent ended only after its own re-check.
    assert!(store.1.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert!(
        began.elapsed() >= std::time::Duration::from_secs(25),
        "{:?}",
        began.elapsed()
    );
    for item in 0..6 {
        assert_eq!(runs(tag, "price", item), 1, "item {item}");
    }
}
