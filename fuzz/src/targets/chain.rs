//! Target `chain`: a session's checkpoints as a store holds them, read back through the public
//! API: `Runner::state`, `state_at`, `history`, `resume`, `resume_with` and `fork` of
//! `journal` over a `MemoryStore` whose session was written checkpoint by checkpoint through
//! the public `Store` trait. This reaches the chain readers behind the envelope: deltas
//! rebuilt from their full checkpoint, branch records applied to their region's frontier, the
//! frontier checked against the compiled graph, and the runner's own decisions on what it
//! read.
//!
//! Input: an operations byte, then records, one per checkpoint: flags (bit 0 seals the bytes
//! with a valid checksum; bit 1: a `depends_on` distance follows; bits 2 to 4: the status
//! code), the distance from the previous sequence number (a byte; 255: a `u64` follows), the distance back to `depends_on`
//! if flagged, the cursor (an index into [`CURSORS`]) and the envelope's bytes (`u16`
//! length). The seeds are real sessions of `journal`, so a mutation starts from a chain that
//! reads.

use graph_runtime::store::{Append, Checkpoint, Store};
use graph_runtime::{MemoryStore, Runner, Status};

use super::workflows::{CURSORS, Reply, Run, journal, run_journal};
use super::{Reader, Writer, block_on, check_error, check_error_of};

const SESSION: &str = "fuzz-chain";

/// The most checkpoints an input writes: reading each is a `state_at`.
const MAX_RECORDS: usize = 48;

/// One input.
pub fn run(data: &[u8]) {
    block_on(read_back(data));
}

async fn read_back(data: &[u8]) {
    let mut r = Reader::new(data);
    let ops = r.u8();
    let store = MemoryStore::new();
    let mut latest: Option<u64> = None;
    let mut written = Vec::new();
    while !r.is_empty() && written.len() < MAX_RECORDS {
        let flags = r.u8();
        // 255: a distance of any size follows (sequence numbers far apart, or near the end).
        let gap = match r.u8() {
            255 => r.u64(),
            gap => u64::from(gap),
        };
        let seq = latest.map_or(gap, |prev| prev.saturating_add(gap));
        let depends_on = (flags & 2 != 0).then(|| seq.saturating_sub(u64::from(r.u8())));
        let node = CURSORS[usize::from(r.u8()) % CURSORS.len()];
        let mut bytes = r.bytes().to_vec();
        if flags & 1 != 0 {
            graph_runtime::__fuzzing::seal(SESSION, &mut bytes);
        }
        let status = match (flags >> 2) & 7 {
            1 => Status::Waiting {
                node: node.to_owned(),
            },
            2 => Status::Completed,
            3 => Status::Failed,
            4 => Status::Cancelled,
            _ => Status::Running,
        };
        let mut checkpoint = Checkpoint::new(seq, node, status, bytes);
        if let Some(depends_on) = depends_on {
            checkpoint = checkpoint.depends_on(depends_on);
        }
        // A store may refuse an append (a sequence number that does not follow): the input
        // goes on with what it kept.
        if store
            .append(SESSION, Append::new(latest, checkpoint, None))
            .await
            .is_ok()
        {
            latest = Some(seq);
            written.push(seq);
        }
    }

    let runner = Runner::new(journal::Workflow, store.clone()).max_steps(64);
    let state = runner.state(SESSION).await;
    match &state {
        Err(error) => check_error(SESSION, error),
        Ok(None) => assert!(latest.is_none(), "a written session reads as absent"),
        Ok(Some(snapshot)) => {
            assert_eq!(
                Some(snapshot.seq),
                latest,
                "the state is not the latest checkpoint"
            );
            // The latest checkpoint by its number reads the same.
            let again = runner
                .state_at(SESSION, snapshot.seq)
                .await
                .expect("the latest checkpoint read once");
            let again = again.expect("the latest checkpoint is kept");
            assert_eq!(again.state, snapshot.state);
            assert_eq!(again.status, snapshot.status);
        }
    }
    for &seq in &written {
        match runner.state_at(SESSION, seq).await {
            Err(error) => check_error(SESSION, &error),
            Ok(snapshot) => {
                let snapshot = snapshot.expect("a written checkpoint is kept");
                assert_eq!(snapshot.seq, seq);
            }
        }
    }
    match runner.history(SESSION).await {
        Err(error) => check_error(SESSION, &error),
        Ok(history) => assert_eq!(
            history.iter().map(|c| c.seq).collect::<Vec<_>>(),
            written,
            "the history is not what was written"
        ),
    }
    if ops & 4 != 0
        && let Some(&seq) = written.get(usize::from(ops >> 4) % written.len().max(1))
        && let Err(error) = runner.fork(SESSION, seq, "fuzz-fork").await
    {
        check_error_of(&[SESSION, "fuzz-fork"], &error);
    }
    if ops & 1 != 0
        && let Err(error) = runner.resume(SESSION).await
    {
        check_error(SESSION, &error);
    }
    if ops & 2 != 0 {
        let answer = journal::Input::Ask(Reply::Text("fuzz".to_owned()));
        if let Err(error) = runner.resume_with(SESSION, answer).await {
            check_error(SESSION, &error);
        }
    }
}

/// Real sessions of `journal` as inputs: each stage a session goes through (in a region,
/// waiting at a branch, with deltas, after an error edge, completed).
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    block_on(async {
        let mut seeds = Vec::new();
        for (name, run) in [
            (
                "ask",
                Run {
                    prefill: 0,
                    grow: 2,
                    fail: false,
                    answers: 0,
                },
            ),
            (
                "deltas-ask",
                Run {
                    prefill: 18,
                    grow: 2,
                    fail: false,
                    answers: 0,
                },
            ),
            (
                "deltas-done",
                Run {
                    prefill: 18,
                    grow: 2,
                    fail: false,
                    answers: 1,
                },
            ),
            (
                "recover",
                Run {
                    prefill: 0,
                    grow: 2,
                    fail: true,
                    answers: 1,
                },
            ),
            (
                "recovered",
                Run {
                    prefill: 18,
                    grow: 1,
                    fail: true,
                    answers: 2,
                },
            ),
        ] {
            let store = MemoryStore::new();
            let runner = Runner::new(journal::Workflow, store.clone());
            run_journal(&runner, SESSION, run)
                .await
                .expect("a seed session runs");
            let last = store.latest(SESSION).await.expect("it reads");
            let last = last.expect("it has a checkpoint").seq;
            let chain = store
                .chain(SESSION, 0, last)
                .await
                .expect("its chain reads");
            for ops in [0u8, 1 | 2 | 4] {
                seeds.push((format!("seed-{name}-ops{ops}"), input(ops, &chain)));
            }
        }
        seeds
    })
}

/// The input that writes `chain` as it is (sealed, as stored), then runs `ops`.
pub fn input(ops: u8, chain: &[Checkpoint]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(ops);
    let mut previous = None;
    for checkpoint in chain {
        let code: u8 = match checkpoint.status {
            Status::Running => 0,
            Status::Waiting { .. } => 1,
            Status::Completed => 2,
            Status::Failed => 3,
            _ => 4,
        };
        let flags = 1 | u8::from(checkpoint.depends_on.is_some()) << 1 | code << 2;
        w.u8(flags);
        let gap = checkpoint.seq - previous.unwrap_or(0);
        w.u8(u8::try_from(gap)
            .ok()
            .filter(|gap| *gap < 255)
            .expect("a seed's gaps are small"));
        if let Some(depends_on) = checkpoint.depends_on {
            w.u8(u8::try_from(checkpoint.seq - depends_on).expect("a seed's chains are short"));
        }
        let cursor = CURSORS
            .iter()
            .position(|c| *c == checkpoint.node)
            .expect("a seed's cursor is a node");
        w.u8(u8::try_from(cursor).expect("few cursors"));
        w.bytes(&checkpoint.bytes);
        previous = Some(checkpoint.seq);
    }
    w.0
}
