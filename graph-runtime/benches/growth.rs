//! W9: a session whose state grows, like an agent's transcript: 1,000 steps, each appending a
//! 1 KiB message, a durable SQLite checkpoint after every step, every checkpoint kept.
//!
//! Against a hand-written rusqlite loop that stores the full bincode state each step (what a
//! checkpointer without incremental storage writes), in the same run:
//!
//! - bytes on disk (the `.db` file after the store is closed, so the WAL is folded in) and the
//!   ratio to the bytes the steps appended (target ≤ 3×);
//! - the time to open the file and load the latest checkpoint, and a checkpoint from the
//!   middle of the history (`Runner::state_at`), against the hand-written load of one full row.
//!
//! Run: `cargo bench -p graph-runtime --bench growth` (`W9_STEPS=…` changes the step count).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Transcript {
    pub turn: u64,
    pub limit: u64,
    pub messages: Vec<String>,
}

/// Turn `turn`'s message: 1 KiB, different for every turn.
fn message(turn: u64) -> String {
    let mut text = format!("turn {turn}: ");
    let mut x = turn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    while text.len() < 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{x:016x}"));
    }
    text.truncate(1024);
    text
}

#[workflow(state = Transcript)]
pub mod agent {
    use super::*;

    edge!(START -> talk);
    edge!(talk -> talk | END);

    #[node]
    async fn talk(t: &mut Transcript) -> talk::Next {
        t.turn += 1;
        t.messages.push(message(t.turn));
        if t.turn < t.limit {
            talk::Next::Talk
        } else {
            talk::Next::End
        }
    }
}

fn file_bytes(path: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn fresh_path(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The hand-written loop: the full state, bincode-encoded, one row and one transaction per step.
fn hand_written(path: &Path, steps: u64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE cp (session TEXT, seq INTEGER, bytes BLOB, PRIMARY KEY (session, seq));",
    )
    .expect("schema");
    let config = bincode::config::standard();
    let mut state = Transcript {
        limit: steps,
        ..Transcript::default()
    };
    let mut insert = conn
        .prepare("INSERT INTO cp VALUES ('w9', ?1, ?2)")
        .expect("prepare");
    for seq in 0..=steps {
        if seq > 0 {
            state.turn += 1;
            state.messages.push(message(state.turn));
        }
        let bytes = bincode::serde::encode_to_vec(&state, config).expect("encode");
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        insert
            .execute(rusqlite::params![seq as i64, bytes])
            .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    drop(insert);
    conn.close().expect("close");
}

/// The hand-written load: open the file, read one row, decode it.
fn hand_load(path: &Path, seq: Option<u64>) -> Transcript {
    let conn = rusqlite::Connection::open(path).expect("open");
    let bytes: Vec<u8> = match seq {
        None => conn.query_row(
            "SELECT bytes FROM cp WHERE session = 'w9' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        ),
        Some(seq) => conn.query_row(
            "SELECT bytes FROM cp WHERE session = 'w9' AND seq = ?1",
            [seq as i64],
            |r| r.get(0),
        ),
    }
    .expect("row");
    bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .expect("decode")
        .0
}

fn main() {
    let steps: u64 = std::env::var("W9_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let runs = 7;
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let ours = fresh_path(dir.path(), "w9.db");
    let hand = fresh_path(dir.path(), "w9-hand.db");
    let started = Instant::now();
    {
        let runner = Runner::new(agent::Workflow, SqliteStore::open(&ours).expect("open"));
        let initial = Transcript {
            limit: steps,
            ..Transcript::default()
        };
        let out = rt.block_on(runner.start("w9", initial)).expect("run");
        assert_eq!(out.into_state().messages.len() as u64, steps);
    }
    let ours_run = started.elapsed();
    let started = Instant::now();
    hand_written(&hand, steps);
    let hand_run = started.elapsed();
    // Both stores are closed: their WAL is folded into the `.db` file.
    let appended = steps * 1024;
    let (ours_bytes, hand_bytes) = (file_bytes(&ours), file_bytes(&hand));
    println!(
        "W9 bytes on disk after {steps} steps appending 1 KiB each (every checkpoint kept): \
         graph-runtime {:.2} MiB = {:.2}x the {:.2} MiB appended (target <= 3x) | \
         hand-written full copies {:.1} MiB ({:.0}x more)",
        ours_bytes as f64 / (1 << 20) as f64,
        ours_bytes as f64 / appended as f64,
        appended as f64 / (1 << 20) as f64,
        hand_bytes as f64 / (1 << 20) as f64,
        hand_bytes as f64 / ours_bytes as f64,
    );
    println!(
        "W9 run time (1 fsync per step each): graph-runtime {:.0} ms | hand-written {:.0} ms | \
         ratio {:.2}",
        ours_run.as_secs_f64() * 1e3,
        hand_run.as_secs_f64() * 1e3,
        ours_run.as_secs_f64() / hand_run.as_secs_f64()
    );

    for (label, seq) in [("latest", None), ("middle", Some(steps / 2))] {
        let (mut ours_times, mut hand_times) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let started = Instant::now();
            let runner = Runner::new(agent::Workflow, SqliteStore::open(&ours).expect("open"));
            let state = match seq {
                None => {
                    rt.block_on(runner.state("w9"))
                        .expect("state")
                        .expect("some")
                        .state
                }
                Some(seq) => {
                    let snapshot = rt.block_on(runner.state_at("w9", seq));
                    snapshot.expect("state_at").expect("kept").state
                }
            };
            ours_times.push(started.elapsed());
            let started = Instant::now();
            let expected = hand_load(&hand, seq);
            hand_times.push(started.elapsed());
            assert_eq!(state, expected);
        }
        let (ours_load, hand_load) = (median(ours_times), median(hand_times));
        println!(
            "W9 load ({label} checkpoint, open + read + decode, median of {runs}): \
             graph-runtime {:.2} ms | hand-written full row {:.2} ms | ratio {:.2}",
            ours_load.as_secs_f64() * 1e3,
            hand_load.as_secs_f64() * 1e3,
            ours_load.as_secs_f64() / hand_load.as_secs_f64()
        );
    }
}
