//! The durable workloads of the README's performance table, each against a hand-written
//! equivalent in the same run:
//!
//! - W3: one session, a SQLite checkpoint after every step (`synchronous=FULL`, then `NORMAL`),
//!   against a hand-written rusqlite loop (WAL, one transaction per step, bincode body);
//! - group commit: 100 sessions at once, durable every step, against the single-session rate;
//! - W4: resume latency (open the file, load the latest checkpoint, run 2 steps);
//! - bytes on disk per checkpoint of a 1 KiB state;
//! - W6: 10,000 sessions x 10 steps on `MemoryStore` at once, wall time and peak RSS, against
//!   tokio tasks + bincode + `Mutex<HashMap>` (each side in its own child process, so that
//!   peak RSS is its own), twice: keeping only each session's latest checkpoint
//!   (`Retention::KeepLast(1)` against a map of the latest bytes: the fair comparison) and
//!   keeping every checkpoint (`KeepAll` against a map of byte vectors).
//!
//! Run: `cargo bench -p graph-runtime --bench durable` (`BENCH_CASES=w3,group,w4,bytes,w6`
//! picks cases; `BENCH_CASES=pages` adds what the page size costs a durable commit, and
//! `BENCH_W3_SIDE`/`BENCH_W3_SYNC` run one side of W3 alone, to profile it).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use graph_runtime::{SqliteOptions, Synchronous};
use serde::{Deserialize, Serialize};

/// Steps per W3 run (each one an fsync under FULL).
const W3_STEPS: u64 = 1_000;
/// Steps per session in the group-commit case.
const GROUP_STEPS: u64 = 60;
const GROUP_SESSIONS: usize = 100;
/// Steps per session in W6.
const W6_STEPS: u64 = 10;
const W6_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Bench {
    pub count: u64,
    pub pad: String,
}

fn fresh(count: u64) -> Bench {
    Bench {
        count,
        pad: "x".repeat(1024),
    }
}

/// W1's graph with the step count as a const parameter of the module's nodes.
macro_rules! counting_workflow {
    ($module:ident, $steps:expr) => {
        #[workflow(state = Bench)]
        pub mod $module {
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
                if s.count < $steps { b::Next::A } else { b::Next::End }
            }
        }
    };
}

counting_workflow!(w3, W3_STEPS);
counting_workflow!(group, GROUP_STEPS);
counting_workflow!(w6, W6_STEPS);

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// CPU time of the whole process so far (user + system, every thread), from
/// `/proc/self/stat` (Linux; clock ticks, usually 10 ms). Zero where it cannot be read.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on every Linux configuration that exposes it here.
    Duration::from_millis(ticks * 10)
}

/// `SqliteOptions` for the benchmark: the defaults, or `BENCH_SPIN_US` microseconds of
/// spin wait to compare.
fn bench_options() -> SqliteOptions {
    match std::env::var("BENCH_SPIN_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(us) => SqliteOptions::new().spin_wait(Duration::from_micros(us)),
        None => SqliteOptions::new(),
    }
}

fn temp_db(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// W3 through the public API: steps per second, and CPU seconds of the whole process.
fn w3_ours(rt: &tokio::runtime::Runtime, path: &Path, sync: Synchronous) -> (f64, f64) {
    let store = bench_options().synchronous(sync).open(path).expect("open");
    let runner = Runner::new(w3::Workflow, store);
    let (start, cpu) = (Instant::now(), process_cpu());
    let out = rt.block_on(runner.start("w3", fresh(0))).expect("run");
    let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
    assert_eq!(out.into_state().count, W3_STEPS);
    (W3_STEPS as f64 / elapsed.as_secs_f64(), cpu.as_secs_f64())
}

/// W3 by hand: the same steps, a bincode body, one rusqlite transaction per step.
fn w3_hand(path: &Path, sync: Synchronous) -> (f64, f64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    let sync = if sync == Synchronous::Full {
        "FULL"
    } else {
        "NORMAL"
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync};
         CREATE TABLE IF NOT EXISTS cp (session TEXT, seq INTEGER, bytes BLOB,
                                        PRIMARY KEY (session, seq));"
    ))
    .expect("schema");
    let config = bincode::config::standard();
    let mut state = fresh(0);
    let mut insert = conn
        .prepare("INSERT INTO cp VALUES (?1, ?2, ?3)")
        .expect("prepare");
    let (start, cpu) = (Instant::now(), process_cpu());
    for seq in 1..=W3_STEPS as i64 {
        state.count += 1;
        let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert
            .execute(rusqlite::params!["w3", seq, bytes])
            .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    let (elapsed, cpu) = (start.elapsed(), process_cpu() - cpu);
    (W3_STEPS as f64 / elapsed.as_secs_f64(), cpu.as_secs_f64())
}

/// Which sides and durabilities W3 runs, so that one of them can be profiled alone (under
/// callgrind, `strace -c`, `perf`): `BENCH_W3_SIDE=ours|hand` (default: both) and
/// `BENCH_W3_SYNC=full|normal` (default: both). A side left out reports 0.
fn w3_selection() -> (bool, bool, Vec<(Synchronous, &'static str)>) {
    let side = std::env::var("BENCH_W3_SIDE").unwrap_or_default();
    let sync = std::env::var("BENCH_W3_SYNC").unwrap_or_default();
    let syncs = [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")]
        .into_iter()
        .filter(|(_, name)| sync.is_empty() || name.eq_ignore_ascii_case(&sync))
        .collect();
    (side != "hand", side != "ours", syncs)
}

fn median_or_zero(xs: Vec<f64>) -> f64 {
    if xs.is_empty() { 0.0 } else { median(xs) }
}

fn w3(rt: &tokio::runtime::Runtime, dir: &Path, runs: usize) -> f64 {
    let mut full_rate = 0.0;
    let (run_ours, run_hand, syncs) = w3_selection();
    for (sync, name) in syncs {
        let (mut ours, mut hand) = (Vec::new(), Vec::new());
        let (mut ours_cpu, mut hand_cpu) = (0.0, 0.0);
        for i in 0..runs {
            if run_ours {
                let (rate, cpu) = w3_ours(rt, &temp_db(dir, &format!("w3-{name}-{i}.db")), sync);
                ours.push(rate);
                ours_cpu += cpu;
            }
            if run_hand {
                let path = temp_db(dir, &format!("w3-hand-{name}-{i}.db"));
                let (rate, cpu) = w3_hand(&path, sync);
                hand.push(rate);
                hand_cpu += cpu;
            }
        }
        let (ours, hand) = (median_or_zero(ours), median_or_zero(hand));
        let ratio = ours / hand;
        // CPU per step, over every run.
        let steps = (runs as u64 * W3_STEPS) as f64;
        let (ours_cpu, hand_cpu) = (ours_cpu / steps * 1e6, hand_cpu / steps * 1e6);
        let (target, cpu_target) = if sync == Synchronous::Full {
            (">= 0.9", "<= 1.5")
        } else {
            ("(reported)", "(reported)")
        };
        println!(
            "W3 durable every step, synchronous={name:<6}: graph-runtime {ours:8.0} steps/s \
             ({:6.1} us/step) | hand-written rusqlite {hand:8.0} steps/s | ratio {ratio:4.2} {target} \
             | CPU {ours_cpu:5.1} vs {hand_cpu:5.1} us/step, ratio {:4.2} {cpu_target}",
            1e6 / ours,
            ours_cpu / hand_cpu
        );
        if sync == Synchronous::Full {
            full_rate = ours;
        }
    }
    full_rate
}

fn group(dir: &Path, single_rate: f64, runs: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut rates = Vec::new();
    for i in 0..runs {
        let store = bench_options()
            .open(temp_db(dir, &format!("group-{i}.db")))
            .expect("open");
        let runner = Runner::new(group::Workflow, store);
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..GROUP_SESSIONS)
                .map(|s| {
                    let runner = runner.clone();
                    tokio::spawn(async move { runner.start(&format!("g-{s}"), fresh(0)).await })
                })
                .collect();
            for task in tasks {
                let out = task.await.expect("task").expect("run");
                assert_eq!(out.into_state().count, GROUP_STEPS);
            }
        });
        let elapsed = start.elapsed();
        rates.push((GROUP_SESSIONS as u64 * GROUP_STEPS) as f64 / elapsed.as_secs_f64());
    }
    let rate = median(rates);
    let ratio = rate / single_rate;
    println!(
        "group commit, {GROUP_SESSIONS} sessions at once, FULL, every step: {rate:8.0} steps/s \
         aggregate | single session {single_rate:8.0} steps/s | ratio {ratio:5.1} (target >= 5)"
    );
}

/// W4 by hand: open the file, read the latest state, run 2 steps with a transaction each.
fn w4_hand(path: &Path, session: &str) -> u64 {
    let config = bincode::config::standard();
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .expect("pragmas");
    let (seq, bytes): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT seq, bytes FROM cp WHERE session = ?1 ORDER BY seq DESC LIMIT 1",
            [session],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("latest");
    let (mut state, _): (Bench, usize) =
        bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    for step in 1..=2 {
        state.count += 1;
        let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        conn.execute(
            "INSERT INTO cp VALUES (?1, ?2, ?3)",
            rusqlite::params![session, seq + step, bytes],
        )
        .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    state.count
}

fn w4(rt: &tokio::runtime::Runtime, dir: &Path, runs: usize) {
    let path = temp_db(dir, "w4.db");
    let hand_path = temp_db(dir, "w4-hand.db");
    // Sessions left two steps before their end: started two steps earlier with a step limit
    // of 2, which saves the start and those two steps.
    {
        let store = SqliteStore::open(&path).expect("open");
        let runner = Runner::new(w3::Workflow, store).max_steps(2);
        let hand = rusqlite::Connection::open(&hand_path).expect("open");
        hand.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE cp (session TEXT, seq INTEGER, bytes BLOB, PRIMARY KEY (session, seq));",
        )
        .expect("schema");
        let config = bincode::config::standard();
        for i in 0..runs {
            let e = rt.block_on(runner.start(&format!("w4-{i}"), fresh(W3_STEPS - 4)));
            assert!(matches!(e, Err(graph_runtime::Error::StepLimit { .. })));
            let bytes = bincode::serde::encode_to_vec(fresh(W3_STEPS - 2), config).expect("encode");
            hand.execute(
                "INSERT INTO cp VALUES (?1, 0, ?2)",
                rusqlite::params![format!("w4-{i}"), bytes],
            )
            .expect("insert");
        }
    }
    // Dropping the last handle lets the writer thread checkpoint the WAL into the file and
    // close; as between two processes, each open comes after that (not timed).
    std::thread::sleep(Duration::from_millis(50));
    let (mut ours, mut hand) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let start = Instant::now();
        let store = bench_options().open(&path).expect("open");
        let runner = Runner::new(w3::Workflow, store);
        let out = rt
            .block_on(runner.resume(&format!("w4-{i}")))
            .expect("resume");
        ours.push(start.elapsed().as_secs_f64() * 1e6);
        assert_eq!(black_box(out).into_state().count, W3_STEPS);
        drop(runner);
        std::thread::sleep(Duration::from_millis(50));

        let start = Instant::now();
        assert_eq!(black_box(w4_hand(&hand_path, &format!("w4-{i}"))), W3_STEPS);
        hand.push(start.elapsed().as_secs_f64() * 1e6);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ours, hand) = (median(ours), median(hand));
    println!(
        "W4 resume latency (open file, load latest, run 2 durable steps): graph-runtime median \
         {ours:6.0} us | hand-written rusqlite {hand:6.0} us | ratio {:4.2} (target <= 1000 us)",
        ours / hand
    );
}

fn bytes_on_disk(rt: &tokio::runtime::Runtime, dir: &Path) {
    let path = temp_db(dir, "bytes.db");
    let store = SqliteStore::open(&path).expect("open");
    let runner = Runner::new(w3::Workflow, store.clone());
    rt.block_on(runner.start("bytes", fresh(0))).expect("run");
    let history = rt.block_on(runner.history("bytes")).expect("history");
    let envelope = history.iter().map(|c| c.bytes).sum::<u64>() as f64 / history.len() as f64;
    drop((runner, store));
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint the WAL");
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .expect("pages");
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .expect("free");
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("size");
    let per = ((pages - free) * size) as f64 / history.len() as f64;
    println!(
        "bytes on disk per checkpoint of a 1 KiB state: {per:6.0} B in the file ({:.2} KiB, \
         target <= 1.25 KiB); envelope {envelope:.0} B; {} checkpoints",
        per / 1024.0,
        history.len()
    );
}

/// What the page size costs a durable commit (`BENCH_CASES=pages`): the hand-written W3
/// loop on several files at once, one step on each in turn, so that every file sees the same
/// moment of the disk (on a shared VM, fsync times drift by tens of microseconds from one
/// second to the next, and separate runs cannot tell 10 us apart). Only `COMMIT` is timed.
/// Each commit writes every page the step changed to the WAL whole: with the store's schema
/// (a rowid table and its `(session_id, seq)` index) that is two pages a step, 16 KiB at the
/// store's 8 KiB pages against 8 KiB at SQLite's default 4 KiB. The store keeps 8 KiB pages
/// for the bytes on disk: a 4 KiB page holds three 1 KiB checkpoints, an 8 KiB one seven.
fn pages(dir: &Path) {
    const STEPS: i64 = 2_000;
    let store_schema = "CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, \
        session_id INTEGER NOT NULL, seq INTEGER NOT NULL, node TEXT NOT NULL, \
        status INTEGER NOT NULL, wait_node TEXT, created_at_us INTEGER NOT NULL, \
        bytes BLOB NOT NULL, depends_on INTEGER); \
        CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);";
    let store_insert = "INSERT INTO checkpoints (session_id, seq, node, status, created_at_us, \
        bytes) VALUES (1, ?1, 'a', 0, 1767225600000000, ?2)";
    let hand_schema = "CREATE TABLE cp (session TEXT, seq INTEGER, bytes BLOB, \
        PRIMARY KEY (session, seq));";
    let hand_insert = "INSERT INTO cp VALUES ('w3', ?1, ?2)";
    let files = [
        (
            "hand-written table, 4 KiB pages",
            4096,
            "",
            hand_schema,
            hand_insert,
        ),
        (
            "hand-written table, 8 KiB pages",
            8192,
            "",
            hand_schema,
            hand_insert,
        ),
        (
            "store's tables, 4 KiB pages, incremental auto-vacuum",
            4096,
            "INCREMENTAL",
            store_schema,
            store_insert,
        ),
        (
            "store's tables, 8 KiB pages, incremental auto-vacuum (the store)",
            8192,
            "INCREMENTAL",
            store_schema,
            store_insert,
        ),
        (
            "store's tables, 8 KiB pages, no auto-vacuum",
            8192,
            "NONE",
            store_schema,
            store_insert,
        ),
    ];
    let conns: Vec<rusqlite::Connection> = files
        .iter()
        .enumerate()
        .map(|(i, (_, page, vacuum, schema, _))| {
            let conn =
                rusqlite::Connection::open(temp_db(dir, &format!("pages-{i}.db"))).expect("open");
            let vacuum = if vacuum.is_empty() {
                String::new()
            } else {
                format!("PRAGMA auto_vacuum = {vacuum};")
            };
            conn.execute_batch(&format!(
                "PRAGMA page_size = {page}; {vacuum} PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; {schema}"
            ))
            .expect("schema");
            conn
        })
        .collect();
    let config = bincode::config::standard();
    let mut state = fresh(0);
    let mut commits = vec![Vec::with_capacity(STEPS as usize); files.len()];
    for seq in 1..=STEPS {
        state.count += 1;
        let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
        for (i, conn) in conns.iter().enumerate() {
            conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
            conn.prepare_cached(files[i].4)
                .and_then(|mut insert| insert.execute(rusqlite::params![seq, bytes]))
                .expect("insert");
            let start = Instant::now();
            conn.execute_batch("COMMIT").expect("commit");
            commits[i].push(start.elapsed().as_secs_f64() * 1e6);
        }
    }
    println!("COMMIT of one W3 step, synchronous=FULL, {STEPS} steps on each file in turn:");
    for ((name, ..), mut times) in files.iter().zip(commits) {
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "  {name:<66} p10 {:5.0} | p50 {:5.0} | p75 {:5.0} | mean {:6.1} us",
            at(0.1),
            at(0.5),
            at(0.75),
            mean
        );
    }
}

// ---- W6: each side in a child process so that each has its own peak RSS ----

const W6_CHILD: &str = "GRAPH_RUNTIME_W6_CHILD";

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

type HandStore = Mutex<HashMap<String, Vec<Vec<u8>>>>;

/// One W6 session as the workload defines the hand-written side: a tokio task that
/// runs the two nodes and, after each step, encodes the state with bincode into the session's
/// entry of a `Mutex<HashMap>`, overwriting it (or, keeping every checkpoint, adding to it).
/// Nothing else: no yield between steps (our runner does not yield either).
async fn w6_hand_session(session: String, store: Arc<HandStore>, keep_all: bool) -> u64 {
    let config = bincode::config::standard();
    let mut s = fresh(0);
    let mut at_a = true;
    loop {
        s.count += 1;
        let done = !at_a && s.count >= W6_STEPS;
        at_a = !at_a;
        let bytes = bincode::serde::encode_to_vec(&s, config).expect("encode");
        {
            let mut map = store.lock().expect("lock");
            let kept = map.entry(session.clone()).or_default();
            if !keep_all {
                kept.clear();
            }
            kept.push(bytes);
        }
        if done {
            return s.count;
        }
    }
}

fn w6_child(which: &str) {
    let (which, keep_all) = match which.split_once('-') {
        Some((side, "all")) => (side, true),
        Some((side, _)) => (side, false),
        None => (which, true),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    let start = Instant::now();
    let total: u64 = rt.block_on(async {
        if which == "ours" {
            let retention = if keep_all {
                Retention::KeepAll
            } else {
                Retention::KeepLast(1)
            };
            let runner = Runner::new(w6::Workflow, MemoryStore::new()).retention(retention);
            let tasks: Vec<_> = (0..W6_SESSIONS)
                .map(|i| {
                    let runner = runner.clone();
                    tokio::spawn(async move {
                        runner
                            .start(&format!("w6-{i}"), fresh(0))
                            .await
                            .expect("run")
                            .into_state()
                            .count
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            total
        } else {
            let store = Arc::new(HandStore::default());
            let tasks: Vec<_> = (0..W6_SESSIONS)
                .map(|i| {
                    tokio::spawn(w6_hand_session(
                        format!("w6-{i}"),
                        Arc::clone(&store),
                        keep_all,
                    ))
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            total
        }
    });
    let elapsed = start.elapsed();
    assert_eq!(total, W6_SESSIONS as u64 * W6_STEPS);
    println!("{} {}", elapsed.as_micros(), peak_rss_kib());
}

fn w6(runs: usize) {
    for (kept, suffix) in [
        ("latest checkpoint kept", "latest"),
        ("every checkpoint kept", "all"),
    ] {
        w6_case(runs, kept, suffix);
    }
}

fn w6_case(runs: usize, kept: &str, suffix: &str) {
    let run_child = |which: &str| -> (f64, f64) {
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(W6_CHILD, format!("{which}-{suffix}"))
            .output()
            .expect("child");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<f64>().expect("number"));
        (
            fields.next().expect("wall") / 1000.0,
            fields.next().expect("rss") / 1024.0,
        )
    };
    let (mut ours_wall, mut ours_rss, mut hand_wall, mut hand_rss) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (w, r) = run_child("ours");
        ours_wall.push(w);
        ours_rss.push(r);
        let (w, r) = run_child("hand");
        hand_wall.push(w);
        hand_rss.push(r);
    }
    let (ow, or, hw, hr) = (
        median(ours_wall),
        median(ours_rss),
        median(hand_wall),
        median(hand_rss),
    );
    println!(
        "W6 {W6_SESSIONS} sessions x {W6_STEPS} steps, memory checkpoint every step, {kept}: wall \
         {ow:6.1} ms vs hand-written {hw:6.1} ms (ratio {:4.2}, target <= 1.5); peak RSS {or:6.1} MiB \
         vs {hr:6.1} MiB (ratio {:4.2}, target <= 1.5)",
        ow / hw,
        or / hr
    );
}

fn main() {
    if let Ok(which) = std::env::var(W6_CHILD) {
        w6_child(&which);
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let cases = std::env::var("BENCH_CASES").unwrap_or_else(|_| "w3,group,w4,bytes,w6".into());
    let dir = std::env::temp_dir().join(format!("graph-runtime-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    println!(
        "durable workloads: 1 KiB state, median of {runs} runs, files in {}",
        dir.display()
    );
    let single = if cases.contains("w3") || cases.contains("group") {
        w3(&rt, &dir, runs)
    } else {
        0.0
    };
    if cases.contains("group") {
        group(&dir, single, runs);
    }
    if cases.contains("w4") {
        w4(&rt, &dir, runs.max(20));
    }
    if cases.contains("bytes") {
        bytes_on_disk(&rt, &dir);
    }
    if cases.contains("pages") {
        pages(&dir);
    }
    if cases.contains("w6") {
        w6(runs);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
