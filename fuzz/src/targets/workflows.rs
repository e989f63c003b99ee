//! The workflows the targets read and run: small, but with every kind of record a session
//! keeps. `journal` grows its state past the size at which checkpoints become deltas, opens a
//! fan-out with an interrupt branch (a frontier, branch records, a recorded input), a map
//! (items and outputs), and takes an error edge to an interrupt node (a saved failure).
//! Its nodes are total: whatever state a hostile checkpoint holds, they neither panic nor run
//! for long.

use graph_runtime::prelude::*;
use graph_runtime::{NodeError, Status};
use serde::{Deserialize, Serialize};

/// The state of `journal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, StateSchema)]
pub struct Journal {
    /// How many lines `grow` writes (at most [`MAX_LINES`]).
    pub target: u32,
    /// One line per `grow` step.
    pub lines: Vec<String>,
    /// The answer the `ask` branch got.
    pub answer: Option<String>,
    /// What the `count` branch counted.
    pub counted: u64,
    /// The sum of the map's outputs.
    pub sum: u64,
    /// Whether `risky` fails (and the session goes to `recover`).
    pub fail: bool,
    /// What `recover` recorded.
    pub recovered: Option<String>,
}

/// The answer of the `ask` branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, StateSchema)]
pub enum Reply {
    /// A text answer.
    Text(String),
    /// An answer with fields.
    Detailed {
        /// A score.
        score: i32,
        /// Tags.
        tags: Vec<String>,
    },
    /// No answer.
    Skip,
}

/// The most lines `grow` writes: a bound on any run, whatever a checkpoint says.
pub const MAX_LINES: usize = 24;

/// The length of one line: 18 lines make a body past 4 KiB, where deltas begin.
pub const LINE_BYTES: usize = 240;

fn line(index: usize) -> String {
    let mut line = format!("line {index}: ");
    while line.len() < LINE_BYTES {
        line.push_str("the quick brown fox ");
    }
    line.truncate(LINE_BYTES);
    line
}

#[workflow(state = Journal)]
pub mod journal {
    use super::*;

    edge!(START -> grow);
    edge!(grow -> grow | split);
    edge!(split -> ask & count);
    edge!(ask & count -> gather);
    edge!(gather -> plan);
    edge!(plan -> each part);
    edge!(part -> total);
    edge!(total -> risky);
    edge!(risky -> END);
    edge!(risky -> recover on error);
    edge!(recover -> END);

    #[node]
    async fn grow(j: &mut Journal) -> grow::Next {
        let target = usize::try_from(j.target)
            .unwrap_or(MAX_LINES)
            .min(MAX_LINES);
        if j.lines.len() < target {
            j.lines.push(line(j.lines.len()));
            grow::Next::Grow
        } else {
            grow::Next::Split
        }
    }

    #[node]
    async fn split(_j: &mut Journal) {}

    #[node(interrupt)]
    async fn ask(_j: &Journal, reply: Reply) -> Reply {
        reply
    }

    #[node]
    async fn count(j: &Journal) -> u64 {
        j.lines
            .iter()
            .map(|l| l.len() as u64)
            .fold(0, u64::wrapping_add)
    }

    #[node]
    async fn gather(j: &mut Journal, ask: Reply, count: u64) {
        j.answer = match ask {
            Reply::Text(text) => Some(text),
            Reply::Detailed { score, tags } => Some(format!("{score} {}", tags.len())),
            Reply::Skip => None,
        };
        j.counted = count;
    }

    #[node]
    async fn plan(j: &mut Journal) -> Vec<u32> {
        (0..j.lines.len().min(6) as u32).collect()
    }

    #[node]
    async fn part(_j: &Journal, item: u32) -> u64 {
        u64::from(item) * 2
    }

    #[node]
    async fn total(j: &mut Journal, part: Vec<u64>) {
        j.sum = part.iter().fold(0, |a, b| a.wrapping_add(*b));
    }

    #[node]
    async fn risky(j: &mut Journal) -> Result<(), NodeError> {
        if j.fail {
            Err("risky failed on purpose".into())
        } else {
            Ok(())
        }
    }

    #[node(interrupt)]
    async fn recover(j: &mut Journal, note: String, ctx: &NodeCtx) {
        let failed = ctx.failure().map(|f| f.error().to_owned());
        j.recovered = Some(format!("{note}: {}", failed.unwrap_or_default()));
    }
}

/// The nodes a checkpoint's cursor names in the seeds, and two it never does.
pub const CURSORS: &[&str] = &[
    "grow", "split", "ask", "count", "gather", "plan", "part", "total", "risky", "recover", "END",
    "nowhere", "",
];

/// How a seed session runs: `journal` starting with `prefill` lines (18 make a body past
/// 4 KiB: every later checkpoint is a delta), growing `grow` more, failing `risky` when
/// `fail`, answered at `ask` and at `recover` while `answers` lasts.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Lines in the first state.
    pub prefill: u32,
    /// Lines `grow` adds.
    pub grow: u32,
    /// Whether `risky` fails.
    pub fail: bool,
    /// How many decisions are given.
    pub answers: usize,
}

/// Runs `journal` session `session` as `run` says; returns where it stopped.
pub async fn run_journal<S: graph_runtime::store::Store>(
    runner: &Runner<journal::Workflow, S>,
    session: &str,
    run: Run,
) -> graph_runtime::Result<Status> {
    let Run {
        prefill,
        grow,
        fail,
        answers,
    } = run;
    let state = Journal {
        target: prefill + grow,
        lines: (0..prefill as usize).map(line).collect(),
        fail,
        ..Journal::default()
    };
    let mut outcome = runner.start(session, state).await?;
    for round in 0..answers {
        let Outcome::Interrupted { node, .. } = outcome else {
            break;
        };
        let input = match node {
            "recover" => journal::Input::Recover(format!("note {round}")),
            _ if round % 2 == 0 => journal::Input::Ask(Reply::Text(format!("answer {round}"))),
            _ => journal::Input::Ask(Reply::Detailed {
                score: -3,
                tags: vec!["a".into(), "b".into()],
            }),
        };
        outcome = runner.resume_with(session, input).await?;
    }
    Ok(runner
        .state(session)
        .await?
        .map(|snapshot| snapshot.status)
        .unwrap_or(Status::Running))
}
