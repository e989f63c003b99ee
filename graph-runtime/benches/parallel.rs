//! W5 of the README's performance table: `a -> b1 & … & b8`, a join `j` that sums the outputs, `j -> a | END`,
//! 500 rounds, MemoryStore, `EveryStep`, `Retention::KeepLast(1)`; against a hand-written loop
//! that awaits the same 8 futures with `futures_util::future::join_all` and saves the state
//! with bincode into a `Mutex<HashMap>` once per round. Prints the median time per round of
//! each, the overhead per branch in µs and the ratio.
//!
//! Run: `cargo bench -p graph-runtime --bench parallel` (`BENCH_RUNS` sets the number of
//! measured runs, default 11).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Rounds per run.
const ROUNDS: u64 = 500;
/// Branches per round.
const BRANCHES: u64 = 8;

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
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

// ---- the workflow ----

#[workflow(state = Bench)]
pub mod w5 {
    use super::*;

    edge!(START -> a);
    edge!(a -> b1 & b2 & b3 & b4 & b5 & b6 & b7 & b8);
    edge!(b1 & b2 & b3 & b4 & b5 & b6 & b7 & b8 -> j);
    edge!(j -> a | END);

    #[node]
    async fn a(s: &mut Bench) {
        s.round += 1;
    }

    #[node]
    async fn b1(s: &Bench) -> u64 {
        branch_body(s, 0).await
    }
    #[node]
    async fn b2(s: &Bench) -> u64 {
        branch_body(s, 1).await
    }
    #[node]
    async fn b3(s: &Bench) -> u64 {
        branch_body(s, 2).await
    }
    #[node]
    async fn b4(s: &Bench) -> u64 {
        branch_body(s, 3).await
    }
    #[node]
    async fn b5(s: &Bench) -> u64 {
        branch_body(s, 4).await
    }
    #[node]
    async fn b6(s: &Bench) -> u64 {
        branch_body(s, 5).await
    }
    #[node]
    async fn b7(s: &Bench) -> u64 {
        branch_body(s, 6).await
    }
    #[node]
    async fn b8(s: &Bench) -> u64 {
        branch_body(s, 7).await
    }

    #[node]
    #[allow(clippy::too_many_arguments)]
    async fn j(
        s: &mut Bench,
        b1: u64,
        b2: u64,
        b3: u64,
        b4: u64,
        b5: u64,
        b6: u64,
        b7: u64,
        b8: u64,
    ) -> j::Next {
        s.total += b1 + b2 + b3 + b4 + b5 + b6 + b7 + b8;
        if s.round < ROUNDS {
            j::Next::A
        } else {
            j::Next::End
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
        let runner = Runner::new(w5::Workflow, MemoryStore::new())
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
