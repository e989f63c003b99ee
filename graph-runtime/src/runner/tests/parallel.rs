//! The scheduler of parallel regions on a hand-written `Execute` impl with fan-outs, maps,
//! collect mode and interrupt branches (what `#[workflow]` generates for `edge!(a -> b & c)`
//! and `edge!(plan -> each item)`, spelled out), so the runner is pinned on its own.
#![allow(clippy::manual_async_fn)] // the hand-written impls spell out what the macro generates

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::__private::{
    BranchResult, Execute, Outputs, Region, RegionKind, Transition, decode_item, encode_output,
};
use crate::checkpoint;
use crate::execute::Slot;
use crate::store::{Append, Checkpoint, CheckpointMeta, Store};
use crate::{
    CheckpointPolicy, Error, Event, ItemFailed, MemoryStore, NodeCtx, NodeSpec, Outcome, Retention,
    Runner, Status, Workflow,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// Which region `start` opens (see [`Par::step`]).
    route: u8,
    /// Added to every branch output.
    n: u64,
    /// How many times the graph goes round (`join` and `join8` go back to `start`).
    rounds: u32,
    /// A map's items.
    items: Vec<u32>,
    /// What the last join read, in slot order.
    outputs: Vec<u64>,
    total: u64,
    /// Failures a collecting join was handed.
    failures: Vec<String>,
    /// What the interrupt branches were told.
    answers: Vec<String>,
    pad: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Input {
    Ask1(String),
    Ask2(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cursor {
    Start,
    B(u8),
    Join,
    C(u8),
    JoinC,
    Ask1,
    Work,
    Ask2,
    JoinI,
    Item,
    Total,
    ItemC,
    TotalC,
    E(u8),
    Join8,
}

/// What the branches did, shared with the test.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Calls per (node, item).
    calls: Mutex<HashMap<(String, Option<usize>), usize>>,
    /// Idempotency keys, in call order.
    keys: Mutex<Vec<String>>,
    /// Map items in the order they started.
    started: Mutex<Vec<usize>>,
    /// Per node: how many more attempts fail.
    fail: Mutex<HashMap<&'static str, u32>>,
    /// A map item that always fails.
    fail_item: Mutex<Option<usize>>,
    /// Per node: how long an attempt sleeps.
    delay_ms: Mutex<HashMap<&'static str, u64>>,
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
    /// Branch futures dropped before they finished.
    dropped: AtomicUsize,
}

impl Probe {
    fn calls(&self, node: &str, item: Option<usize>) -> usize {
        let calls = self.calls.lock().unwrap();
        calls.get(&(node.to_owned(), item)).copied().unwrap_or(0)
    }

    fn fail(&self, node: &'static str, attempts: u32) {
        self.fail.lock().unwrap().insert(node, attempts);
    }

    fn delay(&self, node: &'static str, ms: u64) {
        self.delay_ms.lock().unwrap().insert(node, ms);
    }
}

/// Counts a branch future dropped before it finished.
struct DropGuard<'a> {
    probe: &'a Probe,
    finished: bool,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.probe.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Par {
    probe: Arc<Probe>,
}

const START: NodeSpec = NodeSpec::new("start");
const B: [NodeSpec; 3] = [
    NodeSpec::new("b0"),
    NodeSpec::new("b1").retry(2).backoff_ms(1).jitter(false),
    NodeSpec::new("b2"),
];
const JOIN: NodeSpec = NodeSpec::new("join").retry(1).backoff_ms(1).jitter(false);
const C: [NodeSpec; 2] = [NodeSpec::new("c0"), NodeSpec::new("c1")];
const JOIN_C: NodeSpec = NodeSpec::new("join_c");
const ASK1: NodeSpec = NodeSpec::new("ask1").interrupt();
const WORK: NodeSpec = NodeSpec::new("work");
const ASK2: NodeSpec = NodeSpec::new("ask2").interrupt();
const JOIN_I: NodeSpec = NodeSpec::new("join_i");
const ITEM: NodeSpec = NodeSpec::new("item").retry(1).backoff_ms(1).jitter(false);
const TOTAL: NodeSpec = NodeSpec::new("total");
const ITEM_C: NodeSpec = NodeSpec::new("item_c");
const TOTAL_C: NodeSpec = NodeSpec::new("total_c");
const E: [NodeSpec; 8] = [
    NodeSpec::new("e0"),
    NodeSpec::new("e1"),
    NodeSpec::new("e2"),
    NodeSpec::new("e3"),
    NodeSpec::new("e4"),
    NodeSpec::new("e5"),
    NodeSpec::new("e6"),
    NodeSpec::new("e7"),
];
const JOIN8: NodeSpec = NodeSpec::new("join8");

static FAN: Region<Cursor> = Region {
    join: Cursor::Join,
    kind: RegionKind::FanOut {
        branches: &[Cursor::B(0), Cursor::B(1), Cursor::B(2)],
        collect: &[false, false, false],
    },
};
static FAN_C: Region<Cursor> = Region {
    join: Cursor::JoinC,
    kind: RegionKind::FanOut {
        branches: &[Cursor::C(0), Cursor::C(1)],
        collect: &[true, false],
    },
};
/// Slot order differs from declaration order: `ask1` is declared first.
static FAN_I: Region<Cursor> = Region {
    join: Cursor::JoinI,
    kind: RegionKind::FanOut {
        branches: &[Cursor::Ask2, Cursor::Work, Cursor::Ask1],
        collect: &[false, false, false],
    },
};
static MAP: Region<Cursor> = Region {
    join: Cursor::Total,
    kind: RegionKind::Map {
        node: Cursor::Item,
        concurrency: 2,
        collect: false,
    },
};
static MAP_C: Region<Cursor> = Region {
    join: Cursor::TotalC,
    kind: RegionKind::Map {
        node: Cursor::ItemC,
        concurrency: 0,
        collect: true,
    },
};
static FAN8: Region<Cursor> = Region {
    join: Cursor::Join8,
    kind: RegionKind::FanOut {
        branches: &[
            Cursor::E(0),
            Cursor::E(1),
            Cursor::E(2),
            Cursor::E(3),
            Cursor::E(4),
            Cursor::E(5),
            Cursor::E(6),
            Cursor::E(7),
        ],
        collect: &[false; 8],
    },
};

const NODES: &[&str] = &[
    "start", "b0", "b1", "b2", "join", "c0", "c1", "join_c", "ask1", "work", "ask2", "join_i",
    "item", "total", "item_c", "total_c", "e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "join8",
];

impl crate::__private::Sealed for Par {}

impl Workflow for Par {
    type State = Claim;
    type Input = Input;
    const NAME: &'static str = "par";
    const GRAPH_HASH: u64 = 0x9a7;
    const NODES: &'static [&'static str] = NODES;
    const MERMAID: &'static str = "";
    type Exec = Par;
}

fn not_a_step() -> Transition<Cursor> {
    Transition::FailedPermanently("not a step".into())
}

/// Goes round again, or ends.
fn again(state: &mut Claim) -> Transition<Cursor> {
    if state.rounds > 1 {
        state.rounds -= 1;
        state.n += 1;
        Transition::Next(Cursor::Start)
    } else {
        Transition::End
    }
}

impl Execute<Par> for Par {
    type Cursor = Cursor;
    const ENTRY: Cursor = Cursor::Start;
    const PARALLEL: bool = true;

    fn spec(cursor: Cursor) -> &'static NodeSpec {
        match cursor {
            Cursor::Start => &START,
            Cursor::B(i) => &B[usize::from(i)],
            Cursor::Join => &JOIN,
            Cursor::C(i) => &C[usize::from(i)],
            Cursor::JoinC => &JOIN_C,
            Cursor::Ask1 => &ASK1,
            Cursor::Work => &WORK,
            Cursor::Ask2 => &ASK2,
            Cursor::JoinI => &JOIN_I,
            Cursor::Item => &ITEM,
            Cursor::Total => &TOTAL,
            Cursor::ItemC => &ITEM_C,
            Cursor::TotalC => &TOTAL_C,
            Cursor::E(i) => &E[usize::from(i)],
            Cursor::Join8 => &JOIN8,
        }
    }

    fn cursor_of(name: &str) -> Option<Cursor> {
        let all = [
            Cursor::Start,
            Cursor::B(0),
            Cursor::B(1),
            Cursor::B(2),
            Cursor::Join,
            Cursor::C(0),
            Cursor::C(1),
            Cursor::JoinC,
            Cursor::Ask1,
            Cursor::Work,
            Cursor::Ask2,
            Cursor::JoinI,
            Cursor::Item,
            Cursor::Total,
            Cursor::ItemC,
            Cursor::TotalC,
            Cursor::E(0),
            Cursor::E(1),
            Cursor::E(2),
            Cursor::E(3),
            Cursor::E(4),
            Cursor::E(5),
            Cursor::E(6),
            Cursor::E(7),
            Cursor::Join8,
        ];
        all.into_iter().find(|&c| Self::spec(c).name == name)
    }

    fn input_node(input: &Input) -> Cursor {
        match input {
            Input::Ask1(_) => Cursor::Ask1,
            Input::Ask2(_) => Cursor::Ask2,
        }
    }

    fn region(join: Cursor) -> Option<&'static Region<Cursor>> {
        match join {
            Cursor::Join => Some(&FAN),
            Cursor::JoinC => Some(&FAN_C),
            Cursor::JoinI => Some(&FAN_I),
            Cursor::Total => Some(&MAP),
            Cursor::TotalC => Some(&MAP_C),
            Cursor::Join8 => Some(&FAN8),
            _ => None,
        }
    }

    fn step<'a>(
        _: &'a Par,
        cursor: Cursor,
        state: &'a mut Claim,
        _: &'a NodeCtx,
        _: Option<Input>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            if cursor != Cursor::Start {
                return not_a_step();
            }
            let items = || {
                state
                    .items
                    .iter()
                    .map(|i| encode_output(i).unwrap())
                    .collect()
            };
            match state.route {
                0 => Transition::Next(Cursor::Join),
                1 => Transition::Next(Cursor::JoinC),
                2 => Transition::Next(Cursor::JoinI),
                3 => Transition::Map {
                    join: Cursor::Total,
                    items: items(),
                },
                4 => Transition::Map {
                    join: Cursor::TotalC,
                    items: items(),
                },
                _ => Transition::Next(Cursor::Join8),
            }
        }
    }

    fn branch<'a>(
        workflow: &'a Par,
        branch: Cursor,
        state: &'a Claim,
        ctx: &'a NodeCtx,
        item: Option<&'a [u8]>,
        input: Option<Input>,
    ) -> impl Future<Output = BranchResult> + Send + 'a {
        async move {
            let probe = &*workflow.probe;
            let node = Self::spec(branch).name;
            *probe
                .calls
                .lock()
                .unwrap()
                .entry((node.to_owned(), ctx.item_index()))
                .or_default() += 1;
            probe.keys.lock().unwrap().push(ctx.idempotency_key());
            let mut guard = DropGuard {
                probe,
                finished: false,
            };
            let now = probe.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            probe.high_water.fetch_max(now, Ordering::SeqCst);
            let delay = probe.delay_ms.lock().unwrap().get(node).copied();
            match delay {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                None => tokio::task::yield_now().await,
            }
            let result = (|| {
                let fails = {
                    let mut fail = probe.fail.lock().unwrap();
                    match fail.get_mut(node) {
                        Some(left) if *left > 0 => {
                            *left -= 1;
                            true
                        }
                        _ => false,
                    }
                };
                if fails {
                    return BranchResult::Failed(format!("{node} is down").into());
                }
                let output: u64 = match branch {
                    Cursor::Ask1 | Cursor::Ask2 => {
                        return match input {
                            Some(Input::Ask1(s) | Input::Ask2(s)) => {
                                BranchResult::Output(encode_output(&s).unwrap())
                            }
                            None => BranchResult::MissingInput,
                        };
                    }
                    Cursor::Item | Cursor::ItemC => {
                        let Some(index) = ctx.item_index() else {
                            return BranchResult::FailedPermanently("no item index".into());
                        };
                        probe.started.lock().unwrap().push(index);
                        if *probe.fail_item.lock().unwrap() == Some(index) {
                            return BranchResult::Failed(format!("item {index} is bad").into());
                        }
                        let value: u32 = match item.map(decode_item) {
                            Some(Ok(value)) => value,
                            _ => return BranchResult::FailedPermanently("bad item".into()),
                        };
                        u64::from(value) * 2
                    }
                    Cursor::B(i) | Cursor::C(i) | Cursor::E(i) => 10 * u64::from(i) + 10,
                    Cursor::Work => 7,
                    _ => return BranchResult::FailedPermanently("not a branch".into()),
                };
                BranchResult::Output(encode_output(&(output + state.n)).unwrap())
            })();
            probe.in_flight.fetch_sub(1, Ordering::SeqCst);
            guard.finished = true;
            result
        }
    }

    fn join<'a>(
        workflow: &'a Par,
        join: Cursor,
        state: &'a mut Claim,
        ctx: &'a NodeCtx,
        outputs: Outputs<'a>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            let probe = &*workflow.probe;
            *probe
                .calls
                .lock()
                .unwrap()
                .entry((ctx.node().to_owned(), None))
                .or_default() += 1;
            let mut read = || -> Result<Transition<Cursor>, crate::NodeError> {
                match join {
                    Cursor::Join | Cursor::Total | Cursor::Join8 => {
                        state.outputs = outputs.outputs::<u64>()?;
                        state.total += state.outputs.iter().sum::<u64>();
                        let mut fail = probe.fail.lock().unwrap();
                        if let Some(left) = fail.get_mut("join").filter(|left| **left > 0) {
                            // A change the retry must not see.
                            *left -= 1;
                            state.total += 1000;
                            return Err("join is down".into());
                        }
                        Ok(again(state))
                    }
                    Cursor::JoinC => {
                        let first = outputs.result::<u64>(0)?;
                        let second = outputs.output::<u64>(1)?;
                        state.outputs = vec![*first.as_ref().unwrap_or(&0), second];
                        if let Err(failure) = first {
                            state
                                .failures
                                .push(format!("{}: {}", failure.node(), failure.error()));
                        }
                        Ok(Transition::End)
                    }
                    Cursor::TotalC => {
                        for result in outputs.results::<u64>()? {
                            match result {
                                Ok(output) => state.outputs.push(output),
                                Err(failure) => state.failures.push(failure.error().to_owned()),
                            }
                        }
                        Ok(Transition::End)
                    }
                    Cursor::JoinI => {
                        let ask2 = outputs.output::<String>(0)?;
                        let work = outputs.output::<u64>(1)?;
                        let ask1 = outputs.output::<String>(2)?;
                        state.answers = vec![ask1, ask2];
                        state.outputs = vec![work];
                        Ok(Transition::End)
                    }
                    _ => Ok(not_a_step()),
                }
            };
            read().unwrap_or_else(Transition::Failed)
        }
    }
}

fn claim(route: u8) -> Claim {
    Claim {
        route,
        rounds: 1,
        ..Claim::default()
    }
}

fn runner(par: &Par) -> Runner<Par, MemoryStore> {
    Runner::new(par.clone(), MemoryStore::new())
}

/// Every kept checkpoint of a session, whole, oldest first.
async fn stored<S: Store>(store: &S, session: &str) -> Vec<Checkpoint> {
    let mut out = Vec::new();
    for meta in store.list(session).await.unwrap() {
        out.push(store.get(session, meta.seq).await.unwrap().unwrap());
    }
    out
}

/// The slot changes of every branch record in `checkpoints`, with the record's base.
fn records(session: &str, checkpoints: &[Checkpoint]) -> Vec<(u64, u32, Slot)> {
    let mut out = Vec::new();
    for c in checkpoints {
        let envelope = checkpoint::open(session, c.seq, &c.bytes).unwrap();
        if let Some(record) = envelope.record {
            for (index, slot) in
                checkpoint::decode_record(session, c.seq, envelope.body, envelope.typed).unwrap()
            {
                out.push((record.base, index, slot));
            }
        }
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_runs_every_branch_and_the_join_reads_outputs_by_slot() {
    let par = Par::default();
    // They finish in the order b1, b2, b0; the join still reads them by slot.
    par.probe.delay("b0", 30);
    par.probe.delay("b2", 10);
    let r = runner(&par);
    let out = r.start("s", Claim { n: 5, ..claim(0) }).await.unwrap();
    let Outcome::Completed(state) = out else {
        panic!("{out:?}")
    };
    assert_eq!(state.outputs, [15, 25, 35]);
    assert_eq!(state.total, 75);
    for node in ["b0", "b1", "b2"] {
        assert_eq!(par.probe.calls(node, None), 1, "{node}");
    }
    // The region's opening step is seq 1: every branch's key names it and its node.
    let mut keys = par.probe.keys.lock().unwrap().clone();
    keys.sort();
    assert_eq!(keys, ["s/b0/1", "s/b1/1", "s/b2/1"]);
    // Start, the opening checkpoint (at the join), one record per branch, the end.
    let history = r.history("s").await.unwrap();
    let nodes: Vec<&str> = history.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(nodes, ["start", "join", "join", "join", "join", "END"]);
    let slots: Vec<u32> = records("s", &stored(r.store(), "s").await)
        .into_iter()
        .map(|(base, index, slot)| {
            assert_eq!(base, 1);
            assert!(matches!(slot, Slot::Done(_)));
            index
        })
        .collect();
    assert_eq!(slots, [1, 2, 0], "recorded as they finished");
}

#[tokio::test(start_paused = true)]
async fn a_map_keeps_its_concurrency_limit_and_item_order() {
    let par = Par::default();
    let r = runner(&par);
    let items: Vec<u32> = (0..10).collect();
    let mut handle = r.spawn(
        "m",
        Claim {
            items: items.clone(),
            ..claim(3)
        },
    );
    let mut events = handle.events();
    let state = handle.await.unwrap().into_state();
    // The scheduler starts items in item order (each as a slot frees up).
    let mut started = Vec::new();
    while let Some(event) = events.next().await {
        if let Event::BranchStarted { item, .. } = event {
            started.push(item.unwrap());
        }
    }
    assert_eq!(started, (0..10).collect::<Vec<_>>());
    assert_eq!(
        state.outputs,
        items.iter().map(|&i| u64::from(i) * 2).collect::<Vec<_>>()
    );
    assert_eq!(par.probe.high_water.load(Ordering::SeqCst), 2);
    assert_eq!(par.probe.started.lock().unwrap().len(), 10);
    let keys = par.probe.keys.lock().unwrap().clone();
    assert!(keys.contains(&"m/item/1/3".to_owned()), "{keys:?}");
    // `plan`'s items are in the opening checkpoint: a fork of it runs the map again
    // without `start`.
    let snapshot = r.fork("m", 1, "m2").await.unwrap();
    assert_eq!(snapshot.node, "total");
    let again = r.resume("m2").await.unwrap().into_state();
    assert_eq!(again.outputs, state.outputs);
    assert_eq!(par.probe.calls("item", Some(0)), 2);
}

#[tokio::test]
async fn a_map_over_no_items_runs_its_join_at_once() {
    let par = Par::default();
    let r = runner(&par);
    let out = r.start("e", claim(3)).await.unwrap();
    assert_eq!(out, Outcome::Completed(Claim { ..claim(3) }));
    // Only the join ran: no item.
    let calls: Vec<(String, Option<usize>)> =
        par.probe.calls.lock().unwrap().keys().cloned().collect();
    assert_eq!(calls, [("total".to_owned(), None)]);
    let nodes: Vec<String> = r
        .history("e")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(nodes, ["start", "total", "END"]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_branch_cancels_its_siblings_and_resume_reruns_only_unfinished_ones() {
    let par = Par::default();
    par.probe.delay("b0", 50);
    par.probe.fail("b1", u32::MAX);
    let r = runner(&par);
    let e = r.start("f", claim(0)).await.unwrap_err();
    let Error::Node { node, source } = &e else {
        panic!("{e}")
    };
    assert_eq!((*node, source.to_string()), ("b1", "b1 is down".to_owned()));
    // b1 ran 3 times (2 retries); b0 was still sleeping: its future was dropped.
    assert_eq!(par.probe.calls("b1", None), 3);
    assert_eq!(par.probe.dropped.load(Ordering::SeqCst), 1);
    // b2 finished: its output is a record, and the session stands in the region.
    let snapshot = r.state("f").await.unwrap().unwrap();
    assert_eq!(
        (snapshot.node.as_str(), snapshot.status),
        ("join", Status::Running)
    );
    par.probe.fail("b1", 0);
    let state = r.resume("f").await.unwrap().into_state();
    assert_eq!(state.outputs, [10, 20, 30]);
    assert_eq!(par.probe.calls("b0", None), 2);
    assert_eq!(par.probe.calls("b1", None), 4);
    assert_eq!(par.probe.calls("b2", None), 1, "finished: not run again");
}

#[tokio::test(start_paused = true)]
async fn a_failed_map_item_names_the_map_node_and_the_item() {
    let par = Par::default();
    *par.probe.fail_item.lock().unwrap() = Some(4);
    let r = runner(&par);
    let items = (0..6).collect();
    let e = r.start("i", Claim { items, ..claim(3) }).await.unwrap_err();
    let Error::Node { node, source } = &e else {
        panic!("{e}")
    };
    assert_eq!(*node, "item");
    let item = source.downcast_ref::<ItemFailed>().expect("an ItemFailed");
    assert_eq!(item.item, 4);
    assert_eq!(
        crate::error::report(&e),
        "node `item` failed: item 4: item 4 is bad"
    );
    // Two attempts (one retry).
    assert_eq!(par.probe.calls("item", Some(4)), 2);
}

#[tokio::test]
async fn collect_mode_hands_a_final_failure_to_the_join() {
    let par = Par::default();
    par.probe.fail("c0", u32::MAX);
    let r = runner(&par);
    let state = r.start("c", claim(1)).await.unwrap().into_state();
    assert_eq!(state.failures, ["c0: c0 is down"]);
    assert_eq!(state.outputs, [0, 20]);
    // A collecting map: every item's result, in order.
    let par = Par::default();
    *par.probe.fail_item.lock().unwrap() = Some(1);
    let r = runner(&par);
    let items = vec![5, 6, 7];
    let state = r
        .start("cm", Claim { items, ..claim(4) })
        .await
        .unwrap()
        .into_state();
    assert_eq!(state.outputs, [10, 14]);
    assert_eq!(state.failures, ["item 1 is bad"]);
}

#[tokio::test]
async fn parallel_interrupts_are_answered_one_branch_at_a_time() {
    let par = Par::default();
    let r = runner(&par);
    let out = r.start("p", claim(2)).await.unwrap();
    // `ask1` is declared before `ask2`, though its slot comes after.
    assert!(
        matches!(out, Outcome::Interrupted { node: "ask1", .. }),
        "{out:?}"
    );
    assert_eq!(par.probe.calls("work", None), 1, "the sibling ran on");
    let snapshot = r.state("p").await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, ["ask1", "ask2"]);
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "ask1".into()
        }
    );
    assert_eq!(snapshot.node, "join_i");
    // Nothing runs without an input.
    let out = r.resume("p").await.unwrap();
    assert!(matches!(out, Outcome::Interrupted { node: "ask1", .. }));
    assert_eq!(par.probe.calls("work", None), 1);

    let out = r.resume_with("p", Input::Ask2("two".into())).await.unwrap();
    assert!(
        matches!(out, Outcome::Interrupted { node: "ask1", .. }),
        "{out:?}"
    );
    assert_eq!(r.state("p").await.unwrap().unwrap().waiting, ["ask1"]);
    // `ask2` has its answer: it does not wait any more.
    let e = r
        .resume_with("p", Input::Ask2("again".into()))
        .await
        .unwrap_err();
    let Error::NotWaiting { node, actual, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!((*node, actual.as_str()), ("ask2", "it waits at `ask1`"));

    let state = r.resume_with("p", Input::Ask1("one".into())).await.unwrap();
    let Outcome::Completed(state) = state else {
        panic!("{state:?}")
    };
    assert_eq!(state.answers, ["one", "two"]);
    assert_eq!(state.outputs, [7]);
    // Each branch ran once: the interrupt branches only with their input.
    for node in ["ask1", "ask2", "work"] {
        assert_eq!(par.probe.calls(node, None), 1, "{node}");
    }
    assert!(matches!(
        r.resume_with("p", Input::Ask1("late".into())).await,
        Err(Error::NotWaiting { .. })
    ));
}

/// A store that stops storing after `left` appends: the run ends there, as if the process
/// had died after its last durable write.
struct Crashing {
    inner: MemoryStore,
    left: AtomicUsize,
}

impl Store for Crashing {
    async fn append(&self, session: &str, append: Append) -> crate::Result<()> {
        if self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(Error::Store("the process died".into()));
        }
        self.inner.append(session, append).await
    }
    async fn latest(&self, session: &str) -> crate::Result<Option<Checkpoint>> {
        self.inner.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> crate::Result<Option<Checkpoint>> {
        self.inner.get(session, seq).await
    }
    async fn list(&self, session: &str) -> crate::Result<Vec<CheckpointMeta>> {
        self.inner.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> crate::Result<u64> {
        self.inner.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> crate::Result<bool> {
        self.inner.delete(session).await
    }
    async fn sessions(
        &self,
        filter: &crate::store::SessionFilter,
    ) -> crate::Result<crate::store::SessionPage> {
        self.inner.sessions(filter).await
    }
    async fn session(&self, session: &str) -> crate::Result<Option<crate::store::SessionRecord>> {
        self.inner.session(session).await
    }
    async fn claim(&self, claim: &crate::store::Claim) -> crate::Result<Vec<crate::store::Lease>> {
        self.inner.claim(claim).await
    }
    async fn renew(
        &self,
        lease: &crate::store::Lease,
        ttl: std::time::Duration,
    ) -> crate::Result<crate::store::Lease> {
        self.inner.renew(lease, ttl).await
    }
    async fn release(&self, lease: &crate::store::Lease) -> crate::Result<bool> {
        self.inner.release(lease).await
    }
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.inner.wait_for_work(timeout).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_crash_at_any_write_loses_no_finished_branch() {
    // Three rounds of the fan-out of 3, then a map of 5 items: crash after every write.
    let scenarios = [
        (
            Claim {
                rounds: 3,
                ..claim(0)
            },
            "fan",
        ),
        (
            Claim {
                items: (1..=5).collect(),
                ..claim(3)
            },
            "map",
        ),
    ];
    for (start, name) in scenarios {
        let reference = runner(&Par::default())
            .start("ref", start.clone())
            .await
            .unwrap()
            .into_state();
        let writes = {
            let r = runner(&Par::default());
            r.start("w", start.clone()).await.unwrap();
            r.history("w").await.unwrap().len()
        };
        for crash_after in 1..writes {
            let par = Par::default();
            par.probe.delay("b0", 5);
            par.probe.delay("item", 3);
            let memory = MemoryStore::new();
            let crashing = Runner::new(
                par.clone(),
                Crashing {
                    inner: memory.clone(),
                    left: AtomicUsize::new(crash_after),
                },
            );
            assert!(crashing.start("s", start.clone()).await.is_err());
            let r = Runner::new(par.clone(), memory.clone());
            let out = r.resume("s").await.unwrap();
            assert_eq!(
                out,
                Outcome::Completed(reference.clone()),
                "{name} {crash_after}"
            );
            // Every slot of every region has its output recorded once.
            let mut seen = std::collections::HashSet::new();
            for (base, index, slot) in records("s", &stored(&memory, "s").await) {
                if matches!(slot, Slot::Done(_)) {
                    assert!(seen.insert((base, index)), "{name} {crash_after}: twice");
                }
            }
            let chain: Vec<u64> = stored(&memory, "s").await.iter().map(|c| c.seq).collect();
            assert_eq!(
                chain,
                (0..chain.len() as u64).collect::<Vec<_>>(),
                "gapless"
            );
        }
    }
}

/// A copy of `from`'s session `s` in a new store, with `damage` applied to checkpoint `seq`.
async fn damaged(from: &MemoryStore, seq: u64, damage: impl Fn(&mut Vec<u8>)) -> MemoryStore {
    let copy = MemoryStore::new();
    let mut expected = None;
    for mut c in stored(from, "s").await {
        if c.seq == seq {
            damage(&mut c.bytes);
        }
        let next = c.seq;
        copy.append("s", Append::new(expected, c, None))
            .await
            .unwrap();
        expected = Some(next);
    }
    copy
}

#[tokio::test]
async fn every_bit_flip_of_a_branch_record_or_its_region_is_corrupt() {
    let par = Par::default();
    let r = runner(&par);
    r.start("s", claim(2)).await.unwrap();
    r.resume_with("s", Input::Ask2("two".into())).await.unwrap();
    let all = stored(r.store(), "s").await;
    let region = all.iter().find(|c| c.node == "join_i").unwrap().seq;
    let latest = all.last().unwrap().seq;
    // The region's checkpoint, a record in the middle of the chain, and the latest record.
    for seq in [region, region + 1, latest] {
        let len = all.iter().find(|c| c.seq == seq).unwrap().bytes.len();
        for bit in 0..len * 8 {
            let store = damaged(r.store(), seq, |b| b[bit / 8] ^= 1 << (bit % 8)).await;
            let damaged = Runner::new(par.clone(), store);
            match damaged.state("s").await {
                Err(Error::Corrupt { .. }) => {}
                other => panic!("seq {seq} bit {bit}: {other:?}"),
            }
        }
    }
    // A record missing from the chain is corrupt too.
    let copy = MemoryStore::new();
    let mut expected = None;
    for c in all.iter().filter(|c| c.seq != region + 1) {
        copy.append("s", Append::new(expected, c.clone(), None))
            .await
            .unwrap();
        expected = Some(c.seq);
    }
    let e = Runner::new(par.clone(), copy).state("s").await.unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[tokio::test]
async fn keep_last_one_keeps_what_the_latest_record_needs() {
    let par = Par::default();
    let r = runner(&par).retention(Retention::KeepLast(1));
    r.start("s", claim(2)).await.unwrap();
    r.resume_with("s", Input::Ask2("two".into())).await.unwrap();
    let seqs: Vec<u64> = r
        .history("s")
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    // The region's checkpoint (seq 1) and every record after it.
    assert_eq!(seqs, (1..=seqs[seqs.len() - 1]).collect::<Vec<_>>());
    assert_eq!(r.state("s").await.unwrap().unwrap().waiting, ["ask1"]);
    let done = r.resume_with("s", Input::Ask1("one".into())).await.unwrap();
    assert!(matches!(done, Outcome::Completed(_)));
    assert_eq!(r.history("s").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_session_stopped_in_a_region_forks_into_one_checkpoint() {
    let par = Par::default();
    let r = runner(&par);
    r.start("s", claim(2)).await.unwrap();
    r.resume_with("s", Input::Ask2("two".into())).await.unwrap();
    let latest = r.history("s").await.unwrap().last().unwrap().seq;
    let snapshot = r.fork("s", latest, "f").await.unwrap();
    assert_eq!(snapshot.waiting, ["ask1"]);
    assert_eq!(r.history("f").await.unwrap().len(), 1);
    assert_eq!(r.state("f").await.unwrap().unwrap().waiting, ["ask1"]);
    // An older record of the chain: before `ask2` was answered.
    let at_first_wait = r.state_at("s", 3).await.unwrap().unwrap();
    assert_eq!(at_first_wait.waiting, ["ask1", "ask2"]);
    let forked = r.resume_with("f", Input::Ask1("one".into())).await.unwrap();
    let original = r.resume_with("s", Input::Ask1("one".into())).await.unwrap();
    assert_eq!(forked, original);
    assert_eq!(
        par.probe.calls("work", None),
        1,
        "the fork ran no finished branch"
    );
}

#[tokio::test]
async fn events_name_each_branch_and_item() {
    let par = Par::default();
    let r = runner(&par);
    let mut handle = r.spawn(
        "ev",
        Claim {
            items: vec![1, 2],
            ..claim(3)
        },
    );
    let mut events = handle.events();
    assert!(matches!(handle.await.unwrap(), Outcome::Completed(_)));
    let mut started = Vec::new();
    let mut finished = 0;
    while let Some(event) = events.next().await {
        match event {
            Event::BranchStarted {
                node, item, seq, ..
            } => started.push((node, item, seq)),
            Event::BranchFinished { .. } => finished += 1,
            _ => {}
        }
    }
    assert_eq!(started, [("item", Some(0), 1), ("item", Some(1), 1)]);
    assert_eq!(finished, 2);
}

#[tokio::test]
async fn other_policies_save_a_region_where_it_waits() {
    for policy in [CheckpointPolicy::OnInterrupt, CheckpointPolicy::EveryN(5)] {
        let par = Par::default();
        let r = runner(&par).checkpoint_policy(policy);
        r.start("s", claim(2)).await.unwrap();
        // No record per branch: the waiting region is one whole checkpoint after the start.
        let history = r.history("s").await.unwrap();
        assert_eq!(history.len(), 2, "{policy:?}");
        let out = r.resume_with("s", Input::Ask2("two".into())).await.unwrap();
        assert!(matches!(out, Outcome::Interrupted { node: "ask1", .. }));
        let done = r.resume_with("s", Input::Ask1("one".into())).await.unwrap();
        assert_eq!(done.into_state().answers, ["one", "two"]);
        assert_eq!(par.probe.calls("work", None), 1, "{policy:?}");
    }
}

#[tokio::test]
async fn the_opening_checkpoint_decodes_as_a_frontier() {
    let par = Par::default();
    let r = runner(&par);
    r.start("s", claim(2)).await.unwrap();
    let all = stored(r.store(), "s").await;
    let opening = all.iter().find(|c| c.node == "join_i").unwrap();
    let envelope = checkpoint::open("s", opening.seq, &opening.bytes).unwrap();
    assert!(envelope.frontier && envelope.record.is_none());
    assert_eq!(envelope.status, crate::store::status_code::RUNNING);
    assert_eq!(opening.depends_on, None);
    let record = all.last().unwrap();
    assert_eq!(record.depends_on, Some(opening.seq));
    assert_eq!(
        record.status,
        Status::Waiting {
            node: "ask1".into()
        }
    );
}

/// A fan-out of 8 on SQLite, saving every step: the region (its opening checkpoint through
/// its last branch record) costs about one state plus a small record per branch, not eight
/// copies of the state.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_fan_out_of_eight_writes_one_state_and_eight_small_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqliteStore::open(dir.path().join("fan.db")).unwrap();
    let r = Runner::new(Par::default(), store).checkpoint_policy(CheckpointPolicy::EveryStep);
    let start = Claim {
        pad: "x".repeat(1024),
        ..claim(5)
    };
    let state = r.start("s", start.clone()).await.unwrap().into_state();
    assert_eq!(state.outputs.len(), 8);
    let state_size = checkpoint::encode_value(&start).unwrap().len() as u64;
    let output_size = checkpoint::encode_value(&80_u64).unwrap().len() as u64;
    let history = r.history("s").await.unwrap();
    let region: Vec<u64> = history
        .iter()
        .filter(|c| c.node == "join8")
        .map(|c| c.bytes)
        .collect();
    assert_eq!(region.len(), 9, "the opening checkpoint and 8 records");
    let total: u64 = region.iter().sum();
    assert!(
        total <= state_size + 8 * (output_size + 150),
        "{total} bytes for a state of {state_size}: {region:?}"
    );
    // Each record alone is small.
    assert!(
        region[1..].iter().all(|&b| b < output_size + 150),
        "{region:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_join_is_retried_from_the_state_before_its_failed_attempt() {
    let par = Par::default();
    par.probe.fail("join", 1);
    let r = runner(&par);
    let state = r.start("j", claim(0)).await.unwrap().into_state();
    assert_eq!(
        state.total, 60,
        "the failed attempt's change was rolled back"
    );
    assert_eq!(par.probe.calls("join", None), 2);
    assert_eq!(
        par.probe.calls("b0", None),
        1,
        "a join's retry runs no branch again"
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_run_drops_its_branches_and_resume_finishes_them() {
    let par = Par::default();
    par.probe.delay("b0", 50);
    let r = runner(&par);
    let handle = r.spawn("x", claim(0));
    // b1 and b2 finish at once; b0 sleeps.
    tokio::time::sleep(Duration::from_millis(10)).await;
    handle.cancel();
    assert!(matches!(handle.await, Err(Error::Cancelled(_))));
    assert_eq!(par.probe.dropped.load(Ordering::SeqCst), 1);
    let state = r.resume("x").await.unwrap().into_state();
    assert_eq!(state.outputs, [10, 20, 30]);
    assert_eq!(par.probe.calls("b0", None), 2);
    assert_eq!(par.probe.calls("b1", None), 1);
    assert_eq!(par.probe.calls("b2", None), 1);
}

/// Compiles only if the runner's futures are `Send` for every workflow, whatever its state:
/// the parallel scheduler adds no `State: Sync` bound to the runner's API (a graph without
/// fan-out may keep a state that is not `Sync`; the branch futures the macro generates are
/// `Send` because fan-out graphs must have a `Sync` state).
#[allow(dead_code)]
fn runner_futures_are_send_without_a_sync_bound<W: Workflow, S: Store>(
    r: &Runner<W, S>,
    state: W::State,
    input: W::Input,
) {
    fn send<T: Send>(_: T) {}
    send(r.start("s", state));
    send(r.resume("s"));
    send(r.resume_with("s", input));
}
