//! The subgraph workflow of the crash test, shared by the test (`tests/crash.rs`) and the child
//! process it kills (`tests/support/crash_child.rs`, which runs these sessions next to the
//! tally sessions).
//!
//! A ticket (the parent) runs [`ROUNDS`] rounds of `triage -> research -> reply`; `research`
//! is a subgraph node whose child (`lookup`) runs `search`, waits at `check` for a human
//! (answered through the parent, `ticket::Input::Research(lookup::Input::Check(…))`), then
//! `summarize`. Every node of the child makes a (simulated) external call keyed by its
//! idempotency key (one line in [`side_log`], written before the node returns) and records
//! the key with the run's ordinal (how many lines the key had before, plus one) in the
//! child's state. At least once means: every run of a key before the recorded one was lost to
//! a kill, and none came after it, so a key's line count equals its recorded ordinal.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use graph_runtime::Error;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

pub const SESSIONS: usize = 4;
pub const ROUNDS: u32 = 3;
/// Set in the child: the directory holding the database and the side-effect logs.
pub const CHILD_ENV: &str = "GRAPH_RUNTIME_CRASH_DIR";

/// The child's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Lookup {
    pub text: String,
    /// The idempotency key of every node run the child's checkpoints recorded, in order.
    pub keys: Vec<String>,
    /// Per recorded key, the ordinal of its run (always 1 without crashes).
    pub runs: Vec<(String, u32)>,
    pub checked: bool,
    pub summary: String,
}

impl Lookup {
    fn record(&mut self, (key, ordinal): (String, u32)) {
        self.keys.push(key.clone());
        self.runs.push((key, ordinal));
    }
}

/// The parent's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub round: u32,
    /// The parent's own step keys, then each child's summary, in order.
    pub keys: Vec<String>,
    pub summaries: Vec<String>,
}

pub fn side_log(dir: &Path) -> PathBuf {
    dir.join("subgraph-effects.log")
}

/// Written by a child that runs these sessions: a crash-child built from an older checkout
/// (one sharing the target directory) runs none.
pub fn marker(dir: &Path) -> PathBuf {
    dir.join("subgraph-child")
}

/// The external call of a node run, in the child process only: appends the run's key to the
/// log and returns the key with its ordinal among the runs of that key. (One run of a key at
/// a time: a child process runs each session once at a time, and only one runs at once.)
async fn call_out(ctx: &NodeCtx) -> (String, u32) {
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
        // One write per line: concurrent appends of whole lines do not interleave.
        log.write_all(format!("{key}\n").as_bytes())
            .expect("side log write");
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
    (key, ordinal)
}

/// The child workflow: three nodes, the middle one an interrupt.
#[workflow(state = Lookup)]
pub mod lookup {
    use super::*;

    edge!(START -> search);
    edge!(search -> check);
    edge!(check -> summarize);
    edge!(summarize -> END);

    #[node]
    async fn search(l: &mut Lookup, ctx: &NodeCtx) {
        let run = call_out(ctx).await;
        l.record(run);
    }

    #[node(interrupt)]
    async fn check(l: &mut Lookup, ok: bool, ctx: &NodeCtx) {
        let run = call_out(ctx).await;
        l.record(run);
        l.checked = ok;
    }

    #[node]
    async fn summarize(l: &mut Lookup, ctx: &NodeCtx) {
        let run = call_out(ctx).await;
        l.record(run);
        l.summary = format!(
            "{}: {} step(s), checked {}",
            l.text,
            l.keys.len(),
            l.checked
        );
    }
}

/// The parent workflow: `research` runs the child, [`ROUNDS`] times.
#[workflow(state = Ticket)]
pub mod ticket {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> research);
    edge!(research -> reply);
    edge!(reply -> triage | END);

    #[node]
    async fn triage(t: &mut Ticket, ctx: &NodeCtx) {
        t.round += 1;
        t.keys.push(ctx.idempotency_key());
    }

    #[node(subgraph = lookup)]
    async fn research(t: &mut Ticket, child: Child<lookup::Workflow>) -> Result<(), NodeError> {
        let question = Lookup {
            text: format!("round {}", t.round),
            ..Lookup::default()
        };
        let found = child.run(question).await?;
        t.summaries.push(found.summary);
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket, ctx: &NodeCtx) -> reply::Next {
        t.keys.push(ctx.idempotency_key());
        if t.round < ROUNDS {
            reply::Next::Triage
        } else {
            reply::Next::End
        }
    }
}

pub fn session(i: usize) -> String {
    format!("nested-{i}")
}

/// Runs session `id` to its end from wherever it is: starts or resumes it, and answers its
/// child's `check` through the parent whenever it waits there.
pub async fn drive<S: graph_runtime::store::Store>(
    runner: &Runner<ticket::Workflow, S>,
    id: &str,
) -> Result<Ticket, Error> {
    let mut outcome = match runner.start(id, Ticket::default()).await {
        Err(Error::SessionExists(_)) => runner.resume(id).await?,
        other => other?,
    };
    loop {
        match outcome {
            Outcome::Completed(ticket) => return Ok(ticket),
            Outcome::Interrupted {
                node: "research/check",
                ..
            } => {
                let answer = ticket::Input::Research(lookup::Input::Check(true));
                outcome = runner.resume_with(id, answer).await?;
            }
            Outcome::Interrupted { node, .. } => {
                panic!("session `{id}` waits at `{node}`, not at `research/check`")
            }
            _ => panic!("session `{id}` ended in an outcome this test does not know"),
        }
    }
}

/// The child process's part: drives every ticket to its end (on its own handle of the
/// crash test's SQLite file).
pub async fn child(dir: &Path) -> Result<(), Error> {
    std::fs::write(marker(dir), "subgraphs").expect("marker");
    let store = SqliteStore::open(dir.join("crash.db"))?;
    let runner = Runner::new(ticket::Workflow, store);
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
