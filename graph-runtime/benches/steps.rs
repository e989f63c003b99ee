//! W1 and W2 of DESIGN §8, through the public API, against hand-written baselines in the same
//! process. Prints the median ns/step of each and the ratio.
//!
//! Run: `cargo bench -p graph-runtime --bench steps` (set `BENCH_RUNS` to change the number of
//! measured runs per case, default 11).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Steps per run: nodes `a` and `b` each add 1 until `count` reaches N.
const N: u64 = 100_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bench {
    pub count: u64,
    pub pad: String,
}

fn fresh() -> Bench {
    Bench {
        count: 0,
        pad: "x".repeat(1024),
    }
}

#[workflow(state = Bench)]
pub mod w1 {
    use super::*;

    edge!(START -> a);
    edge!(a -> b);
    edge!(b -> a | END);

    #[node]
    async fn a(s: &mut Bench) {
        s.count += 1;
    }

    #[node]
    async fn b(s: &mut Bench) -> b::Next {
        s.count += 1;
        if s.count < N {
            b::Next::A
        } else {
            b::Next::End
        }
    }
}

// ---- hand-written baselines: the same node bodies, a `match` loop over a cursor enum ----

async fn base_a(s: &mut Bench) {
    s.count += 1;
}

async fn base_b(s: &mut Bench) -> bool {
    s.count += 1;
    s.count < N
}

#[derive(Clone, Copy)]
enum Cursor {
    A,
    B,
}

/// W1 by hand: no checkpoints.
async fn baseline_w1(mut s: Bench) -> (Bench, u64) {
    let mut cursor = Cursor::A;
    let mut steps = 0;
    loop {
        steps += 1;
        match cursor {
            Cursor::A => {
                base_a(&mut s).await;
                cursor = Cursor::B;
            }
            Cursor::B => {
                if base_b(&mut s).await {
                    cursor = Cursor::A;
                } else {
                    return (s, steps);
                }
            }
        }
    }
}

type HandStore = Mutex<HashMap<String, Vec<Vec<u8>>>>;

/// W2 by hand: bincode into a right-sized buffer and a `Mutex<HashMap>` after every step.
async fn baseline_w2(session: &str, mut s: Bench, store: &HandStore) -> (Bench, u64) {
    let config = bincode::config::standard();
    let mut cursor = Cursor::A;
    let mut steps = 0;
    let mut size = 0;
    loop {
        steps += 1;
        let done = match cursor {
            Cursor::A => {
                base_a(&mut s).await;
                cursor = Cursor::B;
                false
            }
            Cursor::B => {
                let more = base_b(&mut s).await;
                cursor = Cursor::A;
                !more
            }
        };
        let mut bytes = Vec::with_capacity(size);
        bincode::serde::encode_into_std_write(&s, &mut bytes, config).expect("encode");
        size = bytes.len();
        let mut map = store.lock().expect("lock");
        match map.get_mut(session) {
            Some(chain) => chain.push(bytes),
            None => {
                map.insert(session.to_owned(), vec![bytes]);
            }
        }
        drop(map);
        if done {
            return (s, steps);
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn measure(runs: usize, mut run: impl FnMut(usize) -> (Duration, u64)) -> f64 {
    run(usize::MAX); // warm-up
    let per_step: Vec<f64> = (0..runs)
        .map(|i| {
            let (elapsed, steps) = run(i);
            assert_eq!(steps, N, "each run takes N steps");
            elapsed.as_nanos() as f64 / steps as f64
        })
        .collect();
    median(per_step)
}

fn report(name: &str, ours: f64, baseline: f64, target: f64) {
    let ratio = ours / baseline;
    let verdict = if ratio <= target {
        "ok"
    } else {
        "MISSES TARGET"
    };
    println!(
        "{name}: graph-runtime {ours:8.1} ns/step | hand-written {baseline:8.1} ns/step | ratio {ratio:5.2} (target <= {target}) {verdict}"
    );
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    println!(
        "W1/W2, N = {N} steps per run, median of {runs} runs, 1 KiB state, current-thread tokio"
    );

    // W1: no checkpoints during the run (`OnInterrupt` saves only the start and the end).
    let w1_ours = measure(runs, |i| {
        let runner = Runner::new(w1::Workflow, MemoryStore::new())
            .checkpoint_policy(CheckpointPolicy::OnInterrupt);
        let session = format!("w1-{i}");
        let state = fresh();
        let start = Instant::now();
        let out = rt.block_on(runner.start(&session, state)).expect("run");
        let elapsed = start.elapsed();
        let s = black_box(out.into_state());
        (elapsed, s.count)
    });
    let w1_base = measure(runs, |_| {
        let state = fresh();
        let start = Instant::now();
        let (s, steps) = rt.block_on(baseline_w1(state));
        let elapsed = start.elapsed();
        black_box(s);
        (elapsed, steps)
    });
    report("W1 (no checkpoints)", w1_ours, w1_base, 1.5);

    // W2: an in-memory checkpoint after every step (every one kept).
    let w2_ours = measure(runs, |i| {
        let store = MemoryStore::new();
        let runner = Runner::new(w1::Workflow, store.clone());
        let session = format!("w2-{i}");
        let state = fresh();
        let start = Instant::now();
        let out = rt.block_on(runner.start(&session, state)).expect("run");
        let elapsed = start.elapsed();
        let s = black_box(out.into_state());
        drop(runner);
        drop(store); // freeing 100k checkpoints is outside the timed region, as below
        (elapsed, s.count)
    });
    let w2_base = measure(runs, |i| {
        let store = HandStore::default();
        let session = format!("w2-{i}");
        let state = fresh();
        let start = Instant::now();
        let (s, steps) = rt.block_on(baseline_w2(&session, state, &store));
        let elapsed = start.elapsed();
        black_box(s);
        drop(store);
        (elapsed, steps)
    });
    report("W2 (memory checkpoint every step)", w2_ours, w2_base, 1.5);
}
