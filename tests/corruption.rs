//! Bytes read back from a store are untrusted: every single-bit flip and every truncation of a
//! real checkpoint in a real SQLite file gives `Error::Corrupt` (never a panic, never a wrong
//! state), a row copied to another session or sequence number is refused, and a checkpoint of
//! another graph is refused before any node runs.

use graph_runtime::prelude::*;
use graph_runtime::{Error, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Doc {
    pub words: Vec<String>,
    pub score: u32,
}

#[workflow(state = Doc)]
pub mod edit {
    use super::*;

    edge!(START -> draft);
    edge!(draft -> polish);
    edge!(polish -> END);

    #[node]
    async fn draft(d: &mut Doc) {
        d.words = vec!["hello".into(), "wörld".into()];
        d.score = 7;
    }

    #[node]
    async fn polish(d: &mut Doc) {
        d.score += 1;
    }
}

/// The same state and node names, one more edge: another graph.
#[workflow(state = Doc)]
pub mod edit_v2 {
    use super::*;

    edge!(START -> draft);
    edge!(draft -> polish | END);
    edge!(polish -> END);

    #[node]
    async fn draft(d: &mut Doc) -> draft::Next {
        d.score = 1;
        draft::Next::Polish
    }

    #[node]
    async fn polish(d: &mut Doc) {
        d.score += 100;
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    raw: rusqlite::Connection,
}

/// A file holding session `s` stopped after `draft` (so `resume` would run `polish`).
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("corrupt.db");
    let runner = Runner::new(edit::Workflow, SqliteStore::open(&path).expect("open")).max_steps(1);
    assert!(matches!(
        runner.start("s", Doc::default()).await,
        Err(Error::StepLimit { .. })
    ));
    let raw = rusqlite::Connection::open(&path).expect("raw connection");
    Fixture {
        _dir: dir,
        path,
        raw,
    }
}

fn latest_bytes(raw: &rusqlite::Connection) -> (i64, Vec<u8>) {
    raw.query_row(
        "SELECT id, bytes FROM checkpoints ORDER BY seq DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("latest row")
}

fn set_bytes(raw: &rusqlite::Connection, id: i64, bytes: &[u8]) {
    raw.execute(
        "UPDATE checkpoints SET bytes = ?1 WHERE id = ?2",
        rusqlite::params![bytes, id],
    )
    .expect("update");
}

fn assert_corrupt(result: Result<Outcome<Doc>, Error>, what: &str) {
    match result {
        Err(Error::Corrupt { session, seq, .. }) => assert_eq!((session.as_str(), seq), ("s", 1)),
        other => panic!("{what}: expected Error::Corrupt, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bit_flip_of_a_real_checkpoint_is_corrupt() {
    let f = fixture().await;
    let runner = Runner::new(edit::Workflow, SqliteStore::open(&f.path).expect("open"));
    let (id, good) = latest_bytes(&f.raw);
    for bit in 0..good.len() * 8 {
        let mut bad = good.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        set_bytes(&f.raw, id, &bad);
        assert_corrupt(runner.resume("s").await, &format!("bit {bit}"));
        assert!(
            matches!(runner.state("s").await, Err(Error::Corrupt { .. })),
            "bit {bit}"
        );
    }
    // Put back, and nothing was lost: the run goes on from the same checkpoint.
    set_bytes(&f.raw, id, &good);
    let done = runner.resume("s").await.expect("resume").into_state();
    assert_eq!(done.score, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_truncation_and_extension_is_corrupt() {
    let f = fixture().await;
    let runner = Runner::new(edit::Workflow, SqliteStore::open(&f.path).expect("open"));
    let (id, good) = latest_bytes(&f.raw);
    for len in 0..good.len() {
        set_bytes(&f.raw, id, &good[..len]);
        assert_corrupt(runner.resume("s").await, &format!("truncated to {len}"));
    }
    for extra in [&[0u8][..], &[0xff; 7], &good] {
        let mut longer = good.clone();
        longer.extend_from_slice(extra);
        set_bytes(&f.raw, id, &longer);
        assert_corrupt(
            runner.resume("s").await,
            &format!("{} extra bytes", extra.len()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_copied_to_another_session_or_seq_is_refused() {
    let f = fixture().await;
    let runner = Runner::new(edit::Workflow, SqliteStore::open(&f.path).expect("open"));
    runner
        .start("t", Doc::default())
        .await
        .expect("second session");
    let (_, from_s) = latest_bytes(&f.raw);
    // Session `t`'s checkpoint at seq 1 replaced by `s`'s (same seq, other session).
    let t_row: i64 = f
        .raw
        .query_row(
            "SELECT c.id FROM checkpoints c JOIN sessions s ON s.id = c.session_id \
             WHERE s.name = 't' AND c.seq = 1",
            [],
            |r| r.get(0),
        )
        .expect("t's row");
    set_bytes(&f.raw, t_row, &from_s);
    let e = runner.fork("t", 1, "t2").await.unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { ref session, seq: 1, .. } if session == "t"),
        "{e}"
    );
    // `s`'s seq 0 row replaced by its seq 1 row (same session, other seq).
    let s0: i64 = f
        .raw
        .query_row(
            "SELECT c.id FROM checkpoints c JOIN sessions s ON s.id = c.session_id \
             WHERE s.name = 's' AND c.seq = 0",
            [],
            |r| r.get(0),
        )
        .expect("s's first row");
    set_bytes(&f.raw, s0, &from_s);
    let e = runner.fork("s", 0, "s2").await.unwrap_err();
    assert!(matches!(e, Error::Corrupt { seq: 0, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_graphs_checkpoint_is_refused_before_any_node_runs() {
    let f = fixture().await;
    let other = Runner::new(edit_v2::Workflow, SqliteStore::open(&f.path).expect("open"));
    match other.resume("s").await {
        Err(Error::GraphMismatch {
            stored, compiled, ..
        }) => {
            assert_eq!((stored, compiled), (edit::GRAPH_HASH, edit_v2::GRAPH_HASH));
        }
        other => panic!("expected GraphMismatch, got {other:?}"),
    }
    // Nothing ran: the session is where it was.
    let original = Runner::new(edit::Workflow, SqliteStore::open(&f.path).expect("open"));
    let snap = original.state("s").await.expect("state").expect("exists");
    assert_eq!(
        (snap.seq, snap.node.as_str(), snap.status),
        (1, "polish", Status::Running)
    );
    // Force resumes by node name, with the new graph's code.
    let forced = other.on_graph_change(GraphChange::Force);
    let done = forced
        .resume("s")
        .await
        .expect("forced resume")
        .into_state();
    assert_eq!(done.score, 107);
}

/// `polish` renamed: a checkpoint at `polish` has no place in this graph.
#[workflow(state = Doc)]
pub mod edit_renamed {
    use super::*;

    edge!(START -> draft);
    edge!(draft -> shine);
    edge!(shine -> END);

    #[node]
    async fn draft(d: &mut Doc) {
        d.score = 1;
    }

    #[node]
    async fn shine(d: &mut Doc) {
        d.score += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_names_a_node_this_graph_no_longer_has() {
    let f = fixture().await;
    let renamed = Runner::new(
        edit_renamed::Workflow,
        SqliteStore::open(&f.path).expect("open"),
    )
    .on_graph_change(GraphChange::Force);
    match renamed.resume("s").await {
        Err(Error::UnknownNode { session, node }) => {
            assert_eq!((session.as_str(), node.as_str()), ("s", "polish"))
        }
        other => panic!("expected UnknownNode, got {other:?}"),
    }
}

/// A review that waits for a score...
#[workflow(state = Doc)]
pub mod reviewed {
    use super::*;

    edge!(START -> check);
    edge!(check -> END);

    #[node(interrupt)]
    async fn check(d: &mut Doc, score: u32) {
        d.score = score;
    }
}

/// ...and the next release, where the same node no longer waits.
#[workflow(state = Doc)]
pub mod reviewed_automatically {
    use super::*;

    edge!(START -> check);
    edge!(check -> END);

    #[node]
    async fn check(d: &mut Doc) {
        d.score = 99;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_runs_a_session_waiting_at_a_node_that_no_longer_waits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("waits.db");
    let v1 = Runner::new(reviewed::Workflow, SqliteStore::open(&path).expect("open"));
    let out = v1.start("s", Doc::default()).await.expect("start");
    assert!(matches!(out, Outcome::Interrupted { node: "check", .. }));
    let v2 = Runner::new(
        reviewed_automatically::Workflow,
        SqliteStore::open(&path).expect("open"),
    )
    .on_graph_change(GraphChange::Force);
    let done = v2.resume("s").await.expect("forced resume");
    assert_eq!(
        done,
        Outcome::Completed(Doc {
            score: 99,
            ..Doc::default()
        })
    );
}
