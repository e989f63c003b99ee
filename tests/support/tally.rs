//! The workflow of the crash test, shared by the test (`tests/crash.rs`) and the child process
//! it kills (`tests/support/crash_child.rs`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use graph_runtime::Error;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

pub const SESSIONS: usize = 6;
pub const STEPS: u32 = 30;
/// Set in the child: the directory holding the database and the side-effect log.
pub const CHILD_ENV: &str = "GRAPH_RUNTIME_CRASH_DIR";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Tally {
    pub n: u32,
    /// The idempotency key of every step that counted.
    pub keys: Vec<String>,
    /// Whether `settle` fails (and the error edge to `compensate` is taken).
    pub declined: bool,
    pub approved: bool,
    pub settled: bool,
    pub compensated: Option<String>,
    /// Grows by [`NOTE_BYTES`] each `work` step, so that past a few steps the state is large
    /// enough for incremental (delta) checkpoints: the crash test covers their chains too.
    pub notes: Vec<String>,
}

/// What each `work` step appends to [`Tally::notes`].
pub const NOTE_BYTES: usize = 300;

/// Where the nodes' side effects go: an append-only file standing in for an external API.
pub fn side_log(dir: &Path) -> PathBuf {
    dir.join("side-effects.log")
}

/// The "external call" of a step, in the child only: made before the step is checkpointed, so
/// a kill between the two makes it happen again, with the same key.
async fn call_out(ctx: &NodeCtx) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(side_log(Path::new(&dir)))
            .expect("side log");
        // One write per line: concurrent appends of whole lines do not interleave.
        let line = format!("{}\n", ctx.idempotency_key());
        log.write_all(line.as_bytes()).expect("side log write");
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
}

#[derive(Debug)]
pub struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for Declined {}

#[workflow(state = Tally)]
pub mod tally {
    use super::*;

    edge!(START -> work);
    edge!(work -> work | approve);
    edge!(approve -> settle);
    edge!(settle -> END);
    edge!(settle -> compensate on error);
    edge!(compensate -> END);

    #[node]
    async fn work(t: &mut Tally, ctx: &NodeCtx) -> work::Next {
        call_out(ctx).await;
        t.n += 1;
        t.keys.push(ctx.idempotency_key());
        let pad: String = t.n.to_string().chars().cycle().take(NOTE_BYTES).collect();
        t.notes.push(format!("{} {pad}", ctx.idempotency_key()));
        if t.n < STEPS {
            work::Next::Work
        } else {
            work::Next::Approve
        }
    }

    #[node(interrupt)]
    async fn approve(t: &mut Tally, ok: bool) {
        t.approved = ok;
    }

    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    async fn settle(t: &mut Tally, ctx: &NodeCtx) -> Result<(), Declined> {
        call_out(ctx).await;
        // A change that must vanish when this attempt fails.
        t.keys.push(ctx.idempotency_key());
        if t.declined {
            return Err(Declined);
        }
        t.settled = true;
        Ok(())
    }

    #[node]
    async fn compensate(t: &mut Tally, ctx: &NodeCtx) {
        call_out(ctx).await;
        t.keys.push(ctx.idempotency_key());
        t.compensated = ctx
            .failure()
            .map(|f| format!("{}: {}", f.node(), f.error()));
    }
}

pub fn session(i: usize) -> String {
    format!("crash-{i}")
}

/// Odd sessions are declined at `settle` and end through the error edge.
pub fn declined(i: usize) -> bool {
    i % 2 == 1
}

/// Runs session `id` to its end from wherever it is: starts it, or resumes it, and approves it
/// when it waits.
pub async fn drive<S: graph_runtime::store::Store>(
    runner: &Runner<tally::Workflow, S>,
    id: &str,
    declined: bool,
) -> Result<Tally, Error> {
    let mut outcome = match runner
        .start(
            id,
            Tally {
                declined,
                ..Tally::default()
            },
        )
        .await
    {
        Err(Error::SessionExists(_)) => runner.resume(id).await?,
        other => other?,
    };
    loop {
        match outcome {
            Outcome::Completed(tally) => return Ok(tally),
            Outcome::Interrupted { .. } => {
                outcome = runner.resume_with(id, tally::Input::Approve(true)).await?;
            }
            _ => panic!("session `{id}` ended in an outcome this test does not know"),
        }
    }
}

/// The child: drives every session to its end.
pub async fn child(dir: &Path) -> Result<(), Error> {
    let store = SqliteStore::open(dir.join("crash.db"))?;
    let runner = Runner::new(tally::Workflow, store);
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            drive(&runner, &session(i), declined(i)).await
        }));
    }
    for task in tasks {
        task.await.expect("child task")?;
    }
    Ok(())
}
