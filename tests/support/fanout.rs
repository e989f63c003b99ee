//! The parallel workflow of the crash test, shared by the test (`tests/crash.rs`) and the child
//! process it kills (`tests/support/crash_child.rs`, with [`MODE_ENV`] set to [`PARALLEL`]).
//!
//! Each round fans out to two working branches and two interrupt branches (answered by
//! whichever child finds them waiting), joins them, then maps over [`ITEMS`] items at most
//! three at a time; [`ROUNDS`] rounds per session.
//!
//! Every branch run makes a (simulated) external call keyed by its idempotency key: one line
//! in the side-effect log, written before the branch returns. Its output carries the run's
//! ordinal (how many lines the key had before it, plus one), and the joins keep it in
//! [`Fan::runs`]: at least once means every run of a key before the kept one was lost to a
//! kill, and no run came after it, so a key's line count equals its kept ordinal exactly.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use graph_runtime::Error;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

pub const SESSIONS: usize = 6;
pub const ROUNDS: u32 = 3;
pub const ITEMS: u64 = 5;
/// Set in the child: the directory holding the database and the side-effect log.
pub const CHILD_ENV: &str = "GRAPH_RUNTIME_CRASH_DIR";
/// Set in the child to [`PARALLEL`] to run this workflow (unset: the tally workflow).
pub const MODE_ENV: &str = "GRAPH_RUNTIME_CRASH_MODE";
pub const PARALLEL: &str = "parallel";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Fan {
    pub round: u32,
    /// The idempotency key of every branch output the joins received, in join order.
    pub keys: Vec<String>,
    /// The value of each of those outputs.
    pub values: Vec<u64>,
    /// The interrupt answers, in join order.
    pub answers: Vec<String>,
    /// Per key, the ordinal of the run whose output the join received (always 1 without
    /// crashes); compared with the side-effect log, never with the crash-free state.
    pub runs: Vec<(String, u32)>,
}

impl Fan {
    fn record(&mut self, out: Out) {
        self.runs.push((out.key.clone(), out.ordinal));
        self.keys.push(out.key);
        self.values.push(out.value);
        if let Some(answer) = out.answer {
            self.answers.push(answer);
        }
    }
}

/// A branch's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Out {
    pub key: String,
    pub ordinal: u32,
    pub value: u64,
    pub answer: Option<String>,
}

/// Written by a child that runs this workflow: a crash-child binary built from an older
/// checkout (one sharing the target directory) runs only the tally workflow.
pub fn marker(dir: &Path) -> PathBuf {
    dir.join("parallel-child")
}

pub fn side_log(dir: &Path) -> PathBuf {
    dir.join("side-effects.log")
}

/// The external call of a branch run, in the child only: appends the run's key to the log and
/// returns its ordinal among the runs of that key. (One run of a key at a time: a child runs
/// each branch once at a time, and only one child runs at once.)
async fn call_out(ctx: &NodeCtx, value: u64) -> Out {
    let key = ctx.idempotency_key();
    let mut ordinal = 1;
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let path = side_log(Path::new(&dir));
        let before = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == key)
            .count();
        ordinal = before as u32 + 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("side log");
        log.write_all(format!("{key}\n").as_bytes())
            .expect("side log write");
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    Out {
        key,
        ordinal,
        value,
        answer: None,
    }
}

#[workflow(state = Fan)]
pub mod fan {
    use super::*;

    edge!(START -> open);
    edge!(open -> a & b & ask1 & ask2);
    edge!(a & b & ask1 & ask2 -> meet);
    edge!(meet -> plan);
    edge!(plan -> each item);
    edge!(item -> total);
    edge!(total -> open | END);

    #[node]
    async fn open(f: &mut Fan) {
        f.round += 1;
    }

    #[node]
    async fn a(f: &Fan, ctx: &NodeCtx) -> Out {
        call_out(ctx, u64::from(f.round) * 10 + 1).await
    }

    #[node]
    async fn b(f: &Fan, ctx: &NodeCtx) -> Out {
        call_out(ctx, u64::from(f.round) * 10 + 2).await
    }

    #[node(interrupt)]
    async fn ask1(f: &Fan, answer: String, ctx: &NodeCtx) -> Out {
        let out = call_out(ctx, u64::from(f.round) * 10 + 3).await;
        Out {
            answer: Some(answer),
            ..out
        }
    }

    #[node(interrupt)]
    async fn ask2(f: &Fan, answer: String, ctx: &NodeCtx) -> Out {
        let out = call_out(ctx, u64::from(f.round) * 10 + 4).await;
        Out {
            answer: Some(answer),
            ..out
        }
    }

    #[node]
    async fn meet(f: &mut Fan, ask2: Out, a: Out, ask1: Out, b: Out) {
        for out in [a, b, ask1, ask2] {
            f.record(out);
        }
    }

    #[node]
    async fn plan(f: &mut Fan) -> Vec<u64> {
        (0..ITEMS).map(|i| u64::from(f.round) * 100 + i).collect()
    }

    #[node(concurrency = 3)]
    async fn item(_f: &Fan, item: u64, ctx: &NodeCtx) -> Out {
        call_out(ctx, item).await
    }

    #[node]
    async fn total(f: &mut Fan, item: Vec<Out>) -> total::Next {
        for out in item {
            f.record(out);
        }
        if f.round < ROUNDS {
            total::Next::Open
        } else {
            total::Next::End
        }
    }
}

pub fn session(i: usize) -> String {
    format!("fan-{i}")
}

/// Runs session `id` to its end from wherever it is: starts or resumes it, and answers the
/// branch that waits last in declaration order whenever it waits (so `ask2` is answered
/// first, and `ask1` while the region still waits), checking that the snapshot lists the
/// branch the outcome names.
pub async fn drive<S: graph_runtime::store::Store>(
    runner: &Runner<fan::Workflow, S>,
    id: &str,
) -> Result<Fan, Error> {
    let mut outcome = match runner.start(id, Fan::default()).await {
        Err(Error::SessionExists(_)) => runner.resume(id).await?,
        other => other?,
    };
    loop {
        match outcome {
            Outcome::Completed(fan) => return Ok(fan),
            Outcome::Interrupted { node, .. } => {
                let snap = runner.state(id).await?.expect("the session exists");
                assert!(
                    snap.waiting.contains(&node),
                    "session `{id}` waits at `{node}` but its snapshot says {:?}",
                    snap.waiting
                );
                let round = snap.state.round;
                let input = match snap.waiting.last().copied() {
                    Some("ask1") => fan::Input::Ask1(format!("one@{round}")),
                    Some("ask2") => fan::Input::Ask2(format!("two@{round}")),
                    other => panic!("session `{id}` waits at {other:?}"),
                };
                outcome = runner.resume_with(id, input).await?;
            }
            _ => panic!("session `{id}` ended in an outcome this test does not know"),
        }
    }
}

/// The child: drives every session to its end.
pub async fn child(dir: &Path) -> Result<(), Error> {
    std::fs::write(marker(dir), PARALLEL).expect("marker");
    let store = SqliteStore::open(dir.join("crash.db"))?;
    let runner = Runner::new(fan::Workflow, store);
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let runner = runner.clone();
        tasks.push(tokio::spawn(
            async move { drive(&runner, &session(i)).await },
        ));
    }
    for task in tasks {
        task.await.expect("child task")?;
    }
    Ok(())
}
