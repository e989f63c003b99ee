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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub n: u32,
    pub keys: Vec<String>,
}

/// Where the node's side effect goes: an append-only file standing in for an external API.
pub fn side_log(dir: &Path) -> PathBuf {
    dir.join("side-effects.log")
}

#[workflow(state = Tally)]
pub mod tally {
    use super::*;

    edge!(START -> work);
    edge!(work -> work | END);

    #[node]
    async fn work(t: &mut Tally, ctx: &NodeCtx) -> work::Next {
        if let Ok(dir) = std::env::var(CHILD_ENV) {
            // The "external call": made before the step is checkpointed, so a kill between
            // the two makes it happen again with the same key.
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
        t.n += 1;
        t.keys.push(ctx.idempotency_key());
        if t.n < STEPS {
            work::Next::Work
        } else {
            work::Next::End
        }
    }
}

pub fn session(i: usize) -> String {
    format!("crash-{i}")
}

/// The child: starts or resumes every session until all have completed.
pub async fn child(dir: &Path) -> Result<(), Error> {
    let store = SqliteStore::open(dir.join("crash.db"))?;
    let runner = Runner::new(tally::Workflow, store);
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            let id = session(i);
            match runner.start(&id, Tally::default()).await {
                Err(Error::SessionExists(_)) => runner.resume(&id).await,
                other => other,
            }
        }));
    }
    for task in tasks {
        task.await.expect("child task")?;
    }
    Ok(())
}
