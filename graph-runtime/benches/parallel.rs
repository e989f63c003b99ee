//! W5 of DESIGN §13: `a -> b1 & … & b8`, a join `j` that sums the outputs, `j -> a | END`,
//! 500 rounds, MemoryStore, `EveryStep`, `Retention::KeepLast(1)`; against a hand-written loop
//! that awaits the same 8 futures with `futures_util::future::join_all` and saves the state
//! with bincode into a `Mutex<HashMap>` once per round. Prints the median time per round of
//! each, the overhead per branch in µs and the ratio.
//!
//! Run: `cargo bench -p graph-runtime --bench parallel` (`BENCH_RUNS` sets the number of
//! measured runs, default 11).
//!
//! The workflow is a HAND-WRITTEN `Execute` impl, spelled out as `#[workflow]` will generate
//! it for `edge!(a -> b1 & … & b8)` / `edge!(b1 & … & b8 -> j)`; swap it for the macro once the
//! macro's fan-out lands.
#![allow(clippy::manual_async_fn)] // the hand-written impl spells out what the macro generates

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use graph_runtime::__private::{
    BranchResult, Execute, Outputs, Region, RegionKind, Sealed, Transition, encode_output,
};
use graph_runtime::{
    CheckpointPolicy, MemoryStore, NodeCtx, NodeSpec, Retention, Runner, Workflow,
};
use serde::{Deserialize, Serialize};

/// Rounds per run.
const ROUNDS: u64 = 500;
/// Branches per round.
const BRANCHES: u64 = 8;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bench {
    pub round: u64,
    pub total: u64,
    pub pad: String,
}

fn fresh() -> Bench {
    Bench {
        round: 0,
        total: 0,
        pad: "x".repeat(1024),
    }
}

/// The body of branch `k`: reads the state, returns a number.
async fn branch_body(state: &Bench, k: u64) -> u64 {
    state.round + k
}

// ---- the workflow, as `#[workflow]` generates it (hand-written until the macro lands) ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    A,
    B(u8),
    J,
}

pub struct W5;

const A: NodeSpec = NodeSpec::new("a");
const B: [NodeSpec; 8] = [
    NodeSpec::new("b1"),
    NodeSpec::new("b2"),
    NodeSpec::new("b3"),
    NodeSpec::new("b4"),
    NodeSpec::new("b5"),
    NodeSpec::new("b6"),
    NodeSpec::new("b7"),
    NodeSpec::new("b8"),
];
const J: NodeSpec = NodeSpec::new("j");

static FAN: Region<Cursor> = Region {
    join: Cursor::J,
    kind: RegionKind::FanOut {
        branches: &[
            Cursor::B(0),
            Cursor::B(1),
            Cursor::B(2),
            Cursor::B(3),
            Cursor::B(4),
            Cursor::B(5),
            Cursor::B(6),
            Cursor::B(7),
        ],
        collect: &[false; 8],
    },
};

impl Sealed for W5 {}

#[derive(Debug, Serialize, Deserialize)]
pub enum Never {}

impl Workflow for W5 {
    type State = Bench;
    type Input = Never;
    const NAME: &'static str = "w5";
    const GRAPH_HASH: u64 = 0x5;
    const NODES: &'static [&'static str] =
        &["a", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "j"];
    const MERMAID: &'static str = "";
    type Exec = W5;
}

impl Execute<W5> for W5 {
    type Cursor = Cursor;
    const ENTRY: Cursor = Cursor::A;
    const PARALLEL: bool = true;

    fn spec(cursor: Cursor) -> &'static NodeSpec {
        match cursor {
            Cursor::A => &A,
            Cursor::B(i) => &B[usize::from(i)],
            Cursor::J => &J,
        }
    }

    fn cursor_of(name: &str) -> Option<Cursor> {
        match name {
            "a" => Some(Cursor::A),
            "j" => Some(Cursor::J),
            _ => (0..8u8)
                .map(Cursor::B)
                .find(|&c| Self::spec(c).name == name),
        }
    }

    fn input_node(input: &Never) -> Cursor {
        match *input {}
    }

    fn region(join: Cursor) -> Option<&'static Region<Cursor>> {
        (join == Cursor::J).then_some(&FAN)
    }

    fn step<'a>(
        _: &'a W5,
        cursor: Cursor,
        state: &'a mut Bench,
        _: &'a NodeCtx,
        _: Option<Never>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            match cursor {
                Cursor::A => {
                    state.round += 1;
                    Transition::Next(Cursor::J)
                }
                _ => Transition::FailedPermanently("not a step".into()),
            }
        }
    }

    fn branch<'a>(
        _: &'a W5,
        branch: Cursor,
        state: &'a Bench,
        _: &'a NodeCtx,
        _: Option<&'a [u8]>,
        _: Option<Never>,
    ) -> impl Future<Output = BranchResult> + Send + 'a {
        async move {
            let Cursor::B(k) = branch else {
                return BranchResult::FailedPermanently("not a branch".into());
            };
            let output = branch_body(state, u64::from(k)).await;
            match encode_output(&output) {
                Ok(bytes) => BranchResult::Output(bytes),
                Err(e) => BranchResult::FailedPermanently(e),
            }
        }
    }

    fn join<'a>(
        _: &'a W5,
        _: Cursor,
        state: &'a mut Bench,
        _: &'a NodeCtx,
        outputs: Outputs<'a>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            let mut sum = 0;
            for i in 0..outputs.len() {
                match outputs.output::<u64>(i) {
                    Ok(output) => sum += output,
                    Err(e) => return Transition::FailedPermanently(e),
                }
            }
            state.total += sum;
            if state.round < ROUNDS {
                Transition::Next(Cursor::A)
            } else {
                Transition::End
            }
        }
    }
}

// ---- the hand-written baseline ----

type HandStore = Mutex<HashMap<String, Vec<u8>>>;

/// W5 by hand: the same 8 futures with `join_all`, the sum, one bincode save per round.
async fn baseline(session: &str, mut s: Bench, store: &HandStore) -> Bench {
    let config = bincode::config::standard();
    let mut size = 0;
    while s.round < ROUNDS {
        s.round += 1;
        let outputs =
            futures_util::future::join_all((0..BRANCHES).map(|k| branch_body(&s, k))).await;
        s.total += outputs.iter().sum::<u64>();
        let mut bytes = Vec::with_capacity(size);
        bincode::serde::encode_into_std_write(&s, &mut bytes, config).expect("encode");
        size = bytes.len();
        store
            .lock()
            .expect("lock")
            .insert(session.to_owned(), bytes);
    }
    s
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut ours = Vec::new();
    let mut hand = Vec::new();
    let expected = {
        let s = rt.block_on(baseline("check", fresh(), &HandStore::default()));
        (s.round, s.total)
    };
    // One warm-up each, then alternate so that machine noise hits both alike.
    for i in 0..=runs {
        let runner = Runner::new(W5, MemoryStore::new())
            .checkpoint_policy(CheckpointPolicy::EveryStep)
            .retention(Retention::KeepLast(1));
        let session = format!("w5-{i}");
        let start = Instant::now();
        let out = rt.block_on(runner.start(&session, fresh())).expect("run");
        let elapsed = start.elapsed();
        let s = black_box(out.into_state());
        assert_eq!((s.round, s.total), expected);
        let store = HandStore::default();
        let start = Instant::now();
        let s = rt.block_on(baseline(&session, fresh(), &store));
        let base = start.elapsed();
        let s = black_box(s);
        assert_eq!((s.round, s.total), expected);
        if i > 0 {
            ours.push(per_round(elapsed));
            hand.push(per_round(base));
        }
    }
    let (ours, hand) = (median(ours), median(hand));
    let per_branch = (ours - hand) / BRANCHES as f64;
    let verdict = if per_branch <= 2.0 {
        "ok"
    } else {
        "MISSES TARGET"
    };
    println!(
        "W5 (fan-out of {BRANCHES} and join, {ROUNDS} rounds, memory, EveryStep, KeepLast(1), \
         median of {runs}): graph-runtime {ours:7.2} us/round | hand-written join_all + bincode \
         save {hand:7.2} us/round | overhead {per_branch:5.2} us per branch (target <= 2 us) \
         {verdict} | ratio {:4.2}",
        ours / hand
    );
}

/// Microseconds per round.
fn per_round(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e6 / ROUNDS as f64
}
