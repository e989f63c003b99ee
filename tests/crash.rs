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
//! The same, with parallel branches (`support/fanout.rs`): sessions that fan out to two
//! working branches and two interrupt branches (answered by whichever child finds them
//! waiting), join them and map over items, three rounds each. Final states must equal a
//! crash-free run's, every chain must be gapless, every branch output the joins received must
//! have had its side effect, and every branch key must have run exactly as often as the
//! ordinal of its kept run: the runs before it were lost to kills, none came after it.
//!
//! The first kill test runs, next to the tally sessions, tickets whose subgraph node runs a
//! child workflow (`support/nested.rs`), whose wait is answered through the parent. After
//! recovery: final parent and child states equal a crash-free run's; every child node's key
//! ran exactly as often as the ordinal its child's state recorded (no side effect of a
//! committed child step happened again, none was recorded twice); every key that ran is one a
//! child recorded (no forked child); every child session belongs to a parent step that exists,
//! and every finished parent has exactly its children, completed (no orphans).
//!
//! `CRASH_KILLS=500 cargo test --test crash` runs more kills than the default 50 (in each of
//! the two kill tests).

#[path = "support/tally.rs"]
#[allow(dead_code)] // `child` is the child binary's
mod tally_workflow;

#[path = "support/fanout.rs"]
#[allow(dead_code)] // `child` is the child binary's
mod fan_workflow;

#[path = "support/nested.rs"]
#[allow(dead_code)] // `child` is the child binary's
mod nested_workflow;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{SessionFilter, Store as _};
use graph_runtime::{Status, Workflow as _};

use tally_workflow::{CHILD_ENV, SESSIONS, Tally, declined, drive, session, side_log, tally};

fn spawn_child(dir: &Path, parallel: bool) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crash-child"));
    if parallel {
        command.env(fan_workflow::MODE_ENV, fan_workflow::PARALLEL);
    }
    command
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

fn kills() -> usize {
    std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// Kills children at random instants, `kills()` times, each resuming the last one's work;
/// `verify` checks a directory whose work is all done (a child that finished before its kill,
/// and the last child). Returns how many kills landed and how many children finished first.
fn kill_at_random(parallel: bool, mut verify: impl FnMut(&Path)) -> (usize, usize) {
    let kills = kills();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut killed = 0;
    let mut finished_early = 0;
    while killed < kills {
        let mut child = spawn_child(dir.path(), parallel);
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
    let status = spawn_child(dir.path(), parallel)
        .wait()
        .expect("last child");
    assert!(status.success(), "the resuming child failed: {status}");
    verify(dir.path());
    (killed, finished_early)
}

#[test]
fn sigkill_at_random_instants_loses_and_forks_nothing() {
    let mut reruns = 0;
    let (killed, finished_early) = kill_at_random(false, |dir| {
        verify(dir);
        reruns += verify_nested(dir);
    });
    eprintln!(
        "{killed} kills, {finished_early} runs that finished before their kill, {reruns} child \
         node runs lost to kills and re-run"
    );
    assert!(
        reruns > 0,
        "no kill landed inside a child's node: the test covered no re-run"
    );
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
    integrity_check(dir);
}

fn integrity_check(dir: &Path) {
    let conn = rusqlite::Connection::open(dir.join("crash.db")).expect("open for check");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
}

/// What a ticket and its children end as without any crash, renamed to session `id`, with
/// the run ordinals of the children left out (they differ by design): the ticket, and each
/// child's session id with its final state, in the order the ticket ran them.
fn nested_expected(
    id: &str,
) -> (
    nested_workflow::Ticket,
    Vec<(String, nested_workflow::Lookup)>,
) {
    use nested_workflow::{Lookup, Ticket, drive, lookup, ticket};
    type Reference = (Ticket, Vec<(String, Lookup)>);
    static REFERENCE: std::sync::OnceLock<Reference> = std::sync::OnceLock::new();
    let (parent, children) = REFERENCE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let store = MemoryStore::new();
        let runner = Runner::new(ticket::Workflow, store.clone());
        let done = rt
            .block_on(drive(&runner, "reference"))
            .expect("reference run");
        let page = rt
            .block_on(
                store.sessions(
                    &SessionFilter::new()
                        .workflow(lookup::Workflow::NAME)
                        .limit(SessionFilter::MAX_LIMIT),
                ),
            )
            .expect("the reference's children");
        let runner = Runner::new(lookup::Workflow, store);
        let mut children: Vec<(String, Lookup)> = page
            .sessions
            .into_iter()
            .map(|record| {
                let child = rt
                    .block_on(runner.state(&record.session))
                    .expect("state")
                    .expect("the child");
                assert!(child.state.runs.iter().all(|(_, ordinal)| *ordinal == 1));
                (record.session, child.state)
            })
            .collect();
        let seq = |id: &str| -> u64 { id.rsplit_once('/').unwrap().1.parse().unwrap() };
        children.sort_by_key(|(id, _)| seq(id));
        assert_eq!(children.len(), nested_workflow::ROUNDS as usize);
        (done, children)
    });
    let rename = |key: &str| key.replacen("reference", id, 1);
    let mut parent = parent.clone();
    for key in &mut parent.keys {
        *key = rename(key);
    }
    let children = children
        .iter()
        .map(|(child, state)| {
            let mut state = state.clone();
            for key in &mut state.keys {
                *key = rename(key);
            }
            state.runs.clear();
            (rename(child), state)
        })
        .collect();
    (parent, children)
}

/// Checks a directory whose tickets all completed; returns how many runs of child nodes were
/// lost to kills (and re-run).
fn verify_nested(dir: &Path) -> usize {
    use nested_workflow::{Lookup, SESSIONS, lookup, session, side_log, ticket};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    assert!(
        nested_workflow::marker(dir).exists(),
        "the child did not run the subgraph workflow: is {} a crash-child built from another \
         checkout sharing the target directory?",
        env!("CARGO_BIN_EXE_crash-child")
    );
    let store = SqliteStore::open(dir.join("crash.db")).expect("reopen");
    let parents = Runner::new(ticket::Workflow, store.clone());
    let children = Runner::new(lookup::Workflow, store.clone());
    let mut runs_per_key: HashMap<String, u32> = HashMap::new();
    for line in std::fs::read_to_string(side_log(dir))
        .unwrap_or_default()
        .lines()
    {
        *runs_per_key.entry(line.to_owned()).or_default() += 1;
    }
    // Every child session in the file: each must be claimed by a parent below.
    let page = rt
        .block_on(
            store.sessions(
                &SessionFilter::new()
                    .workflow(lookup::Workflow::NAME)
                    .limit(SessionFilter::MAX_LIMIT),
            ),
        )
        .expect("child sessions");
    assert!(page.next.is_none());
    let mut unclaimed: BTreeSet<String> = page.sessions.into_iter().map(|r| r.session).collect();
    let mut recorded: BTreeSet<String> = BTreeSet::new();
    let mut lost = 0;
    for i in 0..SESSIONS {
        let id = session(i);
        let snap = rt
            .block_on(parents.state(&id))
            .expect("state")
            .expect("ticket exists");
        assert_eq!(snap.status, Status::Completed, "{id}");
        let (want, want_children) = nested_expected(&id);
        assert_eq!(snap.state, want, "{id}");
        let history = rt.block_on(parents.history(&id)).expect("history");
        let seqs: Vec<u64> = history.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "{id}: sequence numbers"
        );
        for (child_id, want_child) in want_children {
            // The finished parent has this child, at the id of a step of its own that ran
            // `research` (the checkpoint before it has `research` as its cursor).
            assert!(
                unclaimed.remove(&child_id),
                "{id}: its child {child_id} is missing"
            );
            let seq: usize = child_id.rsplit_once('/').unwrap().1.parse().unwrap();
            assert!(seq < history.len(), "{child_id}: no parent step {seq}");
            assert_eq!(history[seq - 1].node, "research", "{child_id}");
            let child = rt
                .block_on(children.state(&child_id))
                .expect("child state")
                .expect("child exists");
            assert_eq!(child.status, Status::Completed, "{child_id}");
            let got = Lookup {
                runs: Vec::new(),
                ..child.state.clone()
            };
            assert_eq!(got, want_child, "{child_id}");
            // Each committed step of the child recorded its effect once, and the effect
            // happened as often as the recorded run's ordinal: the runs before it were lost
            // to kills, none came after it.
            assert_eq!(child.state.runs.len(), child.state.keys.len(), "{child_id}");
            for (key, ordinal) in &child.state.runs {
                assert!(recorded.insert(key.clone()), "{key} recorded twice");
                let runs = runs_per_key.get(key).copied().unwrap_or(0);
                assert!(
                    runs > 0,
                    "{child_id}: the side effect of {key} never happened"
                );
                assert_eq!(
                    runs, *ordinal,
                    "{child_id}: {key} ran {runs} times, its recorded run is run {ordinal}"
                );
                lost += (runs - 1) as usize;
            }
            let child_seqs: Vec<u64> = rt
                .block_on(children.history(&child_id))
                .expect("child history")
                .iter()
                .map(|c| c.seq)
                .collect();
            assert_eq!(
                child_seqs,
                (0..child_seqs.len() as u64).collect::<Vec<_>>(),
                "{child_id}: sequence numbers"
            );
        }
    }
    assert!(
        unclaimed.is_empty(),
        "child sessions no parent step ran: {unclaimed:?}"
    );
    // Every key that ran is one a child recorded: a re-run has the key of the run it repeats.
    for key in runs_per_key.keys() {
        assert!(recorded.contains(key), "{key} ran but no child recorded it");
    }
    lost
}

/// What a parallel session ends as without any crash, renamed to session `id`, with
/// [`Fan::runs`](fan_workflow::Fan) left out (it differs by design).
fn fan_expected(id: &str) -> fan_workflow::Fan {
    static REFERENCE: std::sync::OnceLock<fan_workflow::Fan> = std::sync::OnceLock::new();
    let reference = REFERENCE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let runner = Runner::new(fan_workflow::fan::Workflow, MemoryStore::new());
        let fan = rt
            .block_on(fan_workflow::drive(&runner, "reference"))
            .expect("reference run");
        assert!(fan.runs.iter().all(|(_, ordinal)| *ordinal == 1));
        fan
    });
    let mut fan = reference.clone();
    for key in &mut fan.keys {
        *key = key.replacen("reference", id, 1);
    }
    fan.runs.clear();
    fan
}

#[test]
fn sigkill_in_parallel_regions_loses_and_repeats_no_recorded_branch() {
    let mut reruns = 0;
    let (killed, finished_early) = kill_at_random(true, |dir| reruns += verify_fan(dir));
    eprintln!(
        "parallel: {killed} kills, {finished_early} runs that finished before their kill, \
         {reruns} branch runs lost to kills and re-run"
    );
    assert!(
        reruns > 0,
        "no kill landed inside a branch: the test covered no re-run"
    );
}

/// Checks a directory whose parallel sessions all completed; returns how many branch runs
/// were lost to kills (and re-run).
fn verify_fan(dir: &Path) -> usize {
    use fan_workflow::{Fan, SESSIONS, fan, session, side_log};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let store = SqliteStore::open(dir.join("crash.db")).expect("reopen");
    let runner = Runner::new(fan::Workflow, store);
    let mut runs_per_key: HashMap<String, u32> = HashMap::new();
    for line in std::fs::read_to_string(side_log(dir))
        .unwrap_or_default()
        .lines()
    {
        *runs_per_key.entry(line.to_owned()).or_default() += 1;
    }
    assert!(
        fan_workflow::marker(dir).exists(),
        "the child did not run the parallel workflow: is {} a crash-child built from another \
         checkout sharing the target directory?",
        env!("CARGO_BIN_EXE_crash-child")
    );
    let mut lost = 0;
    for i in 0..SESSIONS {
        let id = session(i);
        let snap = rt
            .block_on(runner.state(&id))
            .expect("state")
            .expect("session exists");
        assert_eq!(snap.status, Status::Completed, "{id}");
        // Same state as without crashes (but for the run ordinals).
        let got = Fan {
            runs: Vec::new(),
            ..snap.state.clone()
        };
        assert_eq!(got, fan_expected(&id), "{id}");
        // Every output the joins received: its side effect happened, as often as its kept
        // run's ordinal says (every run before it lost to a kill before its record was
        // saved), and never again after it.
        assert_eq!(snap.state.runs.len(), snap.state.keys.len(), "{id}");
        for (key, ordinal) in &snap.state.runs {
            let runs = runs_per_key.get(key).copied().unwrap_or(0);
            assert!(runs > 0, "{id}: the side effect of {key} never happened");
            assert_eq!(
                runs, *ordinal,
                "{id}: {key} ran {runs} times, its kept output came from run {ordinal}"
            );
            lost += (runs - 1) as usize;
        }
        // One gapless chain, every checkpoint and branch record of which reads back.
        let seqs: Vec<u64> = rt
            .block_on(runner.history(&id))
            .expect("history")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(
            seqs,
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "{id}: sequence numbers"
        );
        for &seq in &seqs {
            let at = rt
                .block_on(runner.state_at(&id, seq))
                .unwrap_or_else(|e| panic!("{id}@{seq}: {e}"))
                .expect("kept");
            assert!(
                at.state.round <= fan_workflow::ROUNDS,
                "{id}@{seq}: round {}",
                at.state.round
            );
        }
    }
    // Every key that ran is one the joins received: a re-run after a crash has the key of
    // the run it repeats (no run under another sequence number, no forked region).
    let kept: BTreeSet<String> = (0..SESSIONS)
        .flat_map(|i| fan_expected(&session(i)).keys)
        .collect();
    for key in runs_per_key.keys() {
        assert!(kept.contains(key), "{key} ran but no join received it");
    }
    integrity_check(dir);
    lost
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
