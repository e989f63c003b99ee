//! W1, W2 and W7 of the README's performance table, through the public API, against hand-written baselines in the
//! same process. Prints the median ns/step (W7: mean and p99 latency) of each and the ratio.
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

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
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

/// W7: a step, a wait for a human decision, and the end.
#[workflow(state = Bench)]
pub mod w7 {
    use super::*;

    edge!(START -> prepare);
    edge!(prepare -> approve);
    edge!(approve -> END);

    #[node]
    async fn prepare(s: &mut Bench) {
        s.count += 1;
    }

    #[node(interrupt)]
    async fn approve(s: &mut Bench, amount: u64) {
        s.count += amount;
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
/// With `keep_all` false, only the latest checkpoint is kept (it replaces the previous one).
async fn baseline_w2(
    session: &str,
    mut s: Bench,
    store: &HandStore,
    keep_all: bool,
) -> (Bench, u64) {
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
            Some(chain) if keep_all => chain.push(bytes),
            Some(chain) => chain[0] = bytes,
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

/// Runs `ours` and `baseline` alternately (so machine noise hits both alike), after one
/// warm-up each, and returns the median ns/step of each.
fn compare(
    runs: usize,
    mut ours: impl FnMut(usize) -> (Duration, u64),
    mut baseline: impl FnMut(usize) -> (Duration, u64),
) -> (f64, f64) {
    ours(usize::MAX);
    baseline(usize::MAX);
    let per_step = |(elapsed, steps): (Duration, u64)| {
        assert_eq!(steps, N, "each run takes N steps");
        elapsed.as_nanos() as f64 / steps as f64
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        a.push(per_step(ours(i)));
        b.push(per_step(baseline(i)));
    }
    (median(a), median(b))
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
    // `BENCH_CASES=w1` (or `w2`, `w2-latest`, `w2-all`, `w7`) runs one case only, e.g. under
    // a profiler.
    let cases = std::env::var("BENCH_CASES").unwrap_or_else(|_| "w1,w2,w7".to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    println!(
        "W1/W2, N = {N} steps per run, median of {runs} runs, 1 KiB state, current-thread tokio"
    );

    if cases.contains("w1") {
        w1(&rt, runs);
    }
    if cases.contains("w2") {
        w2(&rt, runs, &cases);
    }
    if cases.contains("w7") {
        w7(&rt);
    }
}

/// W7 by hand: save the state while waiting, then load it, apply the decision, save the end.
fn w7_hand(store: &HandStore, session: &str, amount: u64) -> u64 {
    let config = bincode::config::standard();
    let mut s = fresh();
    s.count += 1;
    let bytes = bincode::serde::encode_to_vec(&s, config).expect("encode");
    store
        .lock()
        .expect("lock")
        .insert(session.to_owned(), vec![bytes]);
    // ... the decision arrives:
    let saved = store
        .lock()
        .expect("lock")
        .get(session)
        .and_then(|c| c.last().cloned());
    let (mut s, _): (Bench, usize) =
        bincode::serde::decode_from_slice(&saved.expect("saved"), config).expect("decode");
    s.count += amount;
    let bytes = bincode::serde::encode_to_vec(&s, config).expect("encode");
    store
        .lock()
        .expect("lock")
        .get_mut(session)
        .expect("session")
        .push(bytes);
    s.count
}

fn w7(rt: &tokio::runtime::Runtime) {
    const SESSIONS: usize = 10_000;
    let runner = Runner::new(w7::Workflow, MemoryStore::new());
    let store = HandStore::default();
    let (mut ours, mut resume_only, mut hand) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SESSIONS {
        let session = format!("w7-{i}");
        let start = Instant::now();
        let waiting = rt.block_on(runner.start(&session, fresh())).expect("start");
        let resumed = Instant::now();
        let done = rt
            .block_on(runner.resume_with(&session, w7::Input::Approve(2)))
            .expect("resume");
        let end = Instant::now();
        assert!(matches!(
            waiting,
            Outcome::Interrupted {
                node: "approve",
                ..
            }
        ));
        assert_eq!(black_box(done).into_state().count, 3);
        ours.push(end.duration_since(start).as_nanos() as f64);
        resume_only.push(end.duration_since(resumed).as_nanos() as f64);
        let start = Instant::now();
        assert_eq!(black_box(w7_hand(&store, &session, 2)), 3);
        hand.push(start.elapsed().as_nanos() as f64);
    }
    let stats = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        (mean / 1000.0, xs[xs.len() * 99 / 100] / 1000.0)
    };
    let ((om, op), (rm, rp), (hm, hp)) = (stats(ours), stats(resume_only), stats(hand));
    let verdict = if om <= 20.0 { "ok" } else { "MISSES TARGET" };
    println!(
        "W7 (start -> interrupt -> resume_with -> end, {SESSIONS} sessions): graph-runtime mean \
         {om:5.2} us p99 {op:5.2} us (resume_with alone: mean {rm:5.2} us p99 {rp:5.2} us) | \
         hand-written mean {hm:5.2} us p99 {hp:5.2} us | ratio {:4.2} (target: mean <= 20 us) \
         {verdict}",
        om / hm
    );
}

fn w1(rt: &tokio::runtime::Runtime, runs: usize) {
    // W1: no checkpoints during the run (`OnInterrupt` saves only the start and the end).
    let (ours, base) = compare(
        runs,
        |i| {
            let runner = Runner::new(w1::Workflow, MemoryStore::new())
                .checkpoint_policy(CheckpointPolicy::OnInterrupt);
            let session = format!("w1-{i}");
            let state = fresh();
            let start = Instant::now();
            let out = rt.block_on(runner.start(&session, state)).expect("run");
            let elapsed = start.elapsed();
            let s = black_box(out.into_state());
            (elapsed, s.count)
        },
        |_| {
            let state = fresh();
            let start = Instant::now();
            let (s, steps) = rt.block_on(baseline_w1(state));
            let elapsed = start.elapsed();
            black_box(s);
            (elapsed, steps)
        },
    );
    report("W1 (no checkpoints)", ours, base, 1.5);
}

fn w2(rt: &tokio::runtime::Runtime, runs: usize, cases: &str) {
    // W2: an in-memory checkpoint after every step, keeping only the latest one on both sides
    // (the fair comparison: keeping 100k checkpoints measures page faults), then every one.
    for (keep_all, label) in [
        (false, "W2 (memory checkpoint every step, latest kept)"),
        (true, "W2 (memory checkpoint every step, every one kept)"),
    ] {
        // `BENCH_CASES=w2-latest` or `w2-all` runs one of the two.
        if cases.contains(if keep_all { "w2-latest" } else { "w2-all" }) {
            continue;
        }
        let (ours, base) = compare(
            runs,
            |i| {
                let store = MemoryStore::new();
                let retention = if keep_all {
                    Retention::KeepAll
                } else {
                    Retention::KeepLast(1)
                };
                let runner = Runner::new(w1::Workflow, store.clone()).retention(retention);
                let session = format!("w2-{i}");
                let state = fresh();
                let start = Instant::now();
                let out = rt.block_on(runner.start(&session, state)).expect("run");
                let elapsed = start.elapsed();
                let s = black_box(out.into_state());
                drop(runner);
                drop(store); // freeing 100k checkpoints is outside the timed region, as below
                (elapsed, s.count)
            },
            |i| {
                let store = HandStore::default();
                let session = format!("w2-{i}");
                let state = fresh();
                let start = Instant::now();
                let (s, steps) = rt.block_on(baseline_w2(&session, state, &store, keep_all));
                let elapsed = start.elapsed();
                black_box(s);
                drop(store);
                (elapsed, steps)
            },
        );
        report(label, ours, base, 1.5);
    }
}
