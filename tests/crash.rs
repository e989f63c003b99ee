//! Crash safety, tested for real: a child process runs workflows on a SQLite file and is killed
//! with SIGKILL at random instants; after every kill the next child resumes. Each session loops
//! through `work`, waits at an interrupt for its approval (given by whichever child finds it
//! waiting), then `settle`s — half of them fail there after retries and take the error edge to
//! `compensate`. At the end the final states must equal a crash-free run, every chain must
//! have strictly increasing sequence numbers, the file must pass `PRAGMA integrity_check`, and
//! every step's idempotency key must have reached the (simulated) external system. The state
//! grows each step, so most checkpoints are deltas: every kept one must read back through its
//! chain.
//!
//! `CRASH_KILLS=500 cargo test --test crash` runs more kills than the default 50.

#[path = "support/tally.rs"]
#[allow(dead_code)] // `child` is the child binary's
mod tally_workflow;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use graph_runtime::Status;
use graph_runtime::prelude::*;
use graph_runtime::store::Store as _;

use tally_workflow::{CHILD_ENV, SESSIONS, Tally, declined, drive, session, side_log, tally};

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_crash-child"))
        .env(CHILD_ENV, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// What a session ends as without any crash, under the id `reference`.
fn crash_free(declined: bool) -> Tally {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let runner = Runner::new(tally::Workflow, MemoryStore::new());
    rt.block_on(drive(&runner, "reference", declined))
        .expect("reference run")
}

/// The crash-free end state, with the keys renamed to session `id`.
fn expected(id: &str, declined: bool) -> Tally {
    let mut tally = crash_free(declined);
    for key in tally.keys.iter_mut().chain(&mut tally.notes) {
        *key = key.replacen("reference", id, 1);
    }
    tally
}

#[test]
fn sigkill_at_random_instants_loses_and_forks_nothing() {
    let kills: usize = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut killed = 0;
    let mut finished_early = 0;
    while killed < kills {
        let mut child = spawn_child(dir.path());
        std::thread::sleep(Duration::from_micros(fastrand::u64(2_000..40_000)));
        if child.try_wait().expect("child status").is_some() {
            // It finished before the kill: everything is done; start over on a new file so
            // that every kill lands in the middle of work.
            finished_early += 1;
            assert!(
                finished_early < kills * 4,
                "the child keeps finishing before the kill"
            );
            verify(dir.path());
            std::fs::remove_dir_all(dir.path()).ok();
            std::fs::create_dir_all(dir.path()).expect("fresh dir");
            continue;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        killed += 1;
    }
    // A last child runs everything to completion.
    let status = spawn_child(dir.path()).wait().expect("last child");
    assert!(status.success(), "the resuming child failed: {status}");
    verify(dir.path());
    eprintln!("{killed} kills, {finished_early} runs that finished before their kill");
}

fn verify(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let store = SqliteStore::open(dir.join("crash.db")).expect("reopen");
    let runner = Runner::new(tally::Workflow, store.clone());
    let side: BTreeSet<String> = std::fs::read_to_string(side_log(dir))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut deltas = 0;
    for i in 0..SESSIONS {
        let id = session(i);
        let snap = rt
            .block_on(runner.state(&id))
            .expect("state")
            .expect("session exists");
        assert_eq!(snap.status, Status::Completed, "{id}");
        // Same state as without crashes.
        let want = expected(&id, declined(i));
        assert_eq!(snap.state, want, "{id}");
        assert_eq!(snap.state.compensated.is_some(), declined(i), "{id}");
        let keys = want.keys;
        for key in &keys {
            assert!(
                side.contains(key),
                "{id}: the side effect of {key} never happened"
            );
        }
        let seqs: Vec<u64> = rt
            .block_on(store.list(&id))
            .expect("list")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{id}: sequence numbers {seqs:?}"
        );
        assert_eq!(seqs.first(), Some(&0), "{id}");
        // Every kept checkpoint reads back, through its delta chain where it has one, and
        // each one's state is a prefix of the session's story.
        for &seq in &seqs {
            let at = rt
                .block_on(runner.state_at(&id, seq))
                .unwrap_or_else(|e| panic!("{id}@{seq}: {e}"))
                .expect("kept");
            assert_eq!(
                at.state.notes[..],
                want.notes[..at.state.notes.len()],
                "{id}@{seq}"
            );
            if rt
                .block_on(store.get(&id, seq))
                .expect("get")
                .expect("kept")
                .depends_on
                .is_some()
            {
                deltas += 1;
            }
        }
    }
    assert!(
        deltas > 0,
        "no incremental checkpoint was written: the test covers none"
    );
    let conn = rusqlite::Connection::open(dir.join("crash.db")).expect("open for check");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_resuming_one_session_make_one_chain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("two.db");
    for round in 0..10 {
        let id = format!("s-{round}");
        let want = tokio::task::spawn_blocking({
            let id = id.clone();
            move || expected(&id, false)
        })
        .await
        .expect("reference");
        let first = Runner::new(tally::Workflow, SqliteStore::open(&path).expect("open a"));
        // Leave the session mid-way, then race two runners on two handles of the file.
        let limited = first.clone().max_steps(3);
        assert!(limited.start(&id, Tally::default()).await.is_err());
        let second = Runner::new(tally::Workflow, SqliteStore::open(&path).expect("open b"));
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (r, id) = (first.clone(), id.clone());
                async move { r.resume(&id).await }
            }),
            tokio::spawn({
                let (r, id) = (second.clone(), id.clone());
                async move { r.resume(&id).await }
            }),
        );
        // Both runs end at the approval interrupt: the winner got there, the loser either
        // found it there already or lost a compare-and-swap on the way.
        let results = [a.expect("task a"), b.expect("task b")];
        let waiting = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Ok(Outcome::Interrupted {
                        node: "approve",
                        ..
                    })
                )
            })
            .count();
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(graph_runtime::Error::Conflict { .. })))
            .count();
        assert!(
            waiting >= 1 && waiting + conflicts == 2,
            "round {round}: {results:?}"
        );
        let done = drive(&second, &id, false).await.expect("finish");
        assert_eq!(done, want, "round {round}");
        let seqs: Vec<u64> = first
            .store()
            .list(&id)
            .await
            .expect("list")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "round {round}: one gapless chain"
        );
    }
}
