//! Incremental checkpoints on a real SQLite file: a session whose state grows is stored as
//! deltas against the previous checkpoint, every kept checkpoint still reads back on its own,
//! damage anywhere in a chain is `Error::Corrupt` (never a panic or a misread), and retention
//! never removes a checkpoint that a kept one needs.

use graph_runtime::prelude::*;
use graph_runtime::store::Store as _;
use graph_runtime::{Error, Retention};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Transcript {
    pub turn: u32,
    pub limit: u32,
    pub messages: Vec<String>,
    /// Turns at which `summarize` ran.
    pub summaries: Vec<u32>,
}

fn message(turn: u32) -> String {
    let mut text = format!("turn {turn}:");
    while text.len() < 1024 {
        text.push_str(&format!(" {}", turn.wrapping_mul(2_654_435_761)));
    }
    text.truncate(1024);
    text
}

/// The state once `talk` has run `turns` times and `summarize` after every 25th turn but the
/// last; `summarized` says whether the summary of turn `turns` itself is in (a checkpoint can
/// be taken between that `talk` and its `summarize`).
fn after(turns: u32, limit: u32) -> Transcript {
    Transcript {
        turn: turns,
        limit,
        messages: (1..=turns).map(message).collect(),
        summaries: (1..=turns)
            .filter(|t| t.is_multiple_of(25) && *t < limit)
            .collect(),
    }
}

/// Whether `state` is a state the session passed through.
fn consistent(state: &Transcript, limit: u32) -> bool {
    let mut want = after(state.turn, limit);
    if state.summaries.last() != want.summaries.last() {
        // Between `talk` at a 25th turn and its `summarize`.
        want.summaries.pop();
    }
    *state == want
}

#[workflow(state = Transcript)]
pub mod agent {
    use super::*;

    edge!(START -> talk);
    edge!(talk -> talk | summarize | END);
    edge!(summarize -> talk);

    #[node]
    async fn talk(t: &mut Transcript) -> talk::Next {
        t.turn += 1;
        t.messages.push(message(t.turn));
        if t.turn >= t.limit {
            talk::Next::End
        } else if t.turn.is_multiple_of(25) {
            talk::Next::Summarize
        } else {
            talk::Next::Talk
        }
    }

    /// Expensive and worth keeping: saved after whatever the policy.
    #[node(checkpoint = always)]
    async fn summarize(t: &mut Transcript) {
        t.summaries.push(t.turn);
    }
}

fn store_at(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("agent.db")).expect("open")
}

fn start(limit: u32) -> Transcript {
    Transcript {
        limit,
        ..Transcript::default()
    }
}

/// Overwrites one byte of one stored checkpoint, behind the store's back.
fn damage(dir: &tempfile::TempDir, session: &str, seq: u64, at_from_end: usize) {
    let conn = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
    let (id, bytes): (i64, Vec<u8>) = conn
        .query_row(
            "SELECT c.id, c.bytes FROM checkpoints c JOIN sessions s ON s.id = c.session_id
             WHERE s.name = ?1 AND c.seq = ?2",
            rusqlite::params![session, seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    let mut bytes = bytes;
    let at = bytes.len() - at_from_end;
    bytes[at] ^= 0x40;
    conn.execute(
        "UPDATE checkpoints SET bytes = ?1 WHERE id = ?2",
        rusqlite::params![bytes, id],
    )
    .expect("update");
}

fn remove(dir: &tempfile::TempDir, session: &str, seq: u64) {
    let conn = rusqlite::Connection::open(dir.path().join("agent.db")).expect("open");
    let n = conn
        .execute(
            "DELETE FROM checkpoints WHERE seq = ?2 AND session_id =
               (SELECT id FROM sessions WHERE name = ?1)",
            rusqlite::params![session, seq as i64],
        )
        .expect("delete");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn a_growing_session_is_stored_as_deltas_and_every_checkpoint_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&dir);
    let runner = Runner::new(agent::Workflow, store.clone());
    let turns = 200;
    let out = runner.start("a", start(turns)).await.unwrap();
    assert_eq!(out, Outcome::Completed(after(turns, turns)));
    let history = runner.history("a").await.unwrap();
    let stored: u64 = history.iter().map(|c| c.bytes).sum();
    let appended = u64::from(turns) * 1024;
    assert!(
        stored <= 3 * appended,
        "{stored} bytes for {appended} appended"
    );
    let mut deltas = 0;
    for meta in &history {
        let snapshot = runner.state_at("a", meta.seq).await.unwrap().unwrap();
        assert!(consistent(&snapshot.state, turns), "seq {}", meta.seq);
        let checkpoint = store.get("a", meta.seq).await.unwrap().unwrap();
        deltas += usize::from(checkpoint.depends_on.is_some());
    }
    assert!(
        deltas > history.len() / 2,
        "{deltas} deltas in {}",
        history.len()
    );
    // A reopened store (a restarted process) reads the same.
    drop((runner, store));
    let reopened = Runner::new(agent::Workflow, store_at(&dir));
    let latest = reopened.state("a").await.unwrap().unwrap();
    assert_eq!(latest.state, after(turns, turns));
}

#[tokio::test]
async fn damage_inside_a_chain_is_corrupt_and_checkpoints_before_it_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&dir);
    let runner = Runner::new(agent::Workflow, store.clone()).max_steps(60);
    let _ = runner.start("a", start(1000)).await;
    let history = runner.history("a").await.unwrap();
    // A delta in the middle of the chain the latest checkpoint needs.
    let latest = store.latest("a").await.unwrap().unwrap();
    let anchor = latest.depends_on.expect("the latest checkpoint is a delta");
    let middle = (anchor + latest.seq) / 2;
    assert!(history.iter().any(|c| c.seq == middle));
    drop((runner, store));
    // Every byte position of the damaged row's tail: the checksum catches it.
    for at_from_end in [1, 5, 40] {
        damage(&dir, "a", middle, at_from_end);
        let runner = Runner::new(agent::Workflow, store_at(&dir));
        match runner.state("a").await {
            Err(Error::Corrupt { session, .. }) => assert_eq!(session, "a"),
            other => panic!("damage {at_from_end} from the end: {other:?}"),
        }
        match runner.resume("a").await {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("{other:?}"),
        }
        // Checkpoints before the damage are untouched.
        let before = runner.state_at("a", middle - 1).await.unwrap().unwrap();
        assert!(consistent(&before.state, 1000));
        damage(&dir, "a", middle, at_from_end); // undo
    }
    let runner = Runner::new(agent::Workflow, store_at(&dir));
    assert!(runner.state("a").await.is_ok(), "undone");
    // A chain with a checkpoint missing in the middle is corrupt, not a misread.
    remove(&dir, "a", middle);
    let runner = Runner::new(agent::Workflow, store_at(&dir));
    match runner.state("a").await {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("chain"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retention_keeps_what_kept_deltas_need_and_frees_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_at(&dir);
    let runner = Runner::new(agent::Workflow, store.clone()).retention(Retention::KeepLast(4));
    runner.start("a", start(300)).await.unwrap();
    let history = runner.history("a").await.unwrap();
    assert!(history.len() >= 4);
    // The newest 4 and the chain they need, which a full checkpoint restarts at least every
    // 64 deltas under `KeepLast`: far fewer than the 300+ written, yet each reads back.
    assert!(history.len() <= 64 + 4 + 1, "{} kept", history.len());
    for meta in &history {
        let snapshot = runner.state_at("a", meta.seq).await.unwrap().unwrap();
        assert!(consistent(&snapshot.state, 300), "seq {}", meta.seq);
    }
    // An explicit prune keeps the newest and what it needs.
    assert!(store.prune("a", 1).await.unwrap() <= history.len() as u64);
    let latest = runner.state("a").await.unwrap().unwrap();
    assert_eq!(latest.state, after(300, 300));
}

#[tokio::test]
async fn a_checkpoint_always_node_is_saved_under_on_interrupt() {
    let dir = tempfile::tempdir().unwrap();
    let runner = Runner::new(agent::Workflow, store_at(&dir))
        .checkpoint_policy(CheckpointPolicy::OnInterrupt);
    runner.start("a", start(60)).await.unwrap();
    let nodes: Vec<String> = runner
        .history("a")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    // The start, after `summarize` at turns 25 and 50 (the cursor is then `talk`), the end.
    assert_eq!(nodes, ["talk", "talk", "talk", "END"]);
}
