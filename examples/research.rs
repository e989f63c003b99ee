//! A research agent: it fans out to three tools at once, joins their findings, plans
//! sub-questions and answers them in parallel (at most two at a time), then writes a report —
//! printing live progress from the run's events, branch by branch.
//!
//! The web tool is flaky (its first attempt fails and is retried) and the code-search tool
//! always times out: its join takes it as `Result<_, Failure>`, so the run goes on without it.
//! The session is saved on SQLite (in a temporary directory): every finished branch is a small
//! record in the session's chain, so a crash re-runs only the branches still running.
//!
//! Run: `cargo run --example research`

use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::{Event, Events, Failure};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Research {
    pub question: String,
    pub findings: Vec<Finding>,
    pub sub_questions: Vec<String>,
    pub report: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Finding {
    pub source: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub struct Answer {
    pub question: String,
    pub text: String,
}

#[derive(Debug)]
pub struct ToolError(&'static str);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ToolError {}

/// A progress note a branch sends with `NodeCtx::emit`.
pub struct Note {
    pub item: Option<usize>,
    pub text: String,
}

/// A tool call that takes `ms` milliseconds.
async fn call_tool(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[workflow(state = Research)]
pub mod research {
    use super::*;

    edge!(START -> frame);
    edge!(frame -> web & papers & code); // three tools at once
    edge!(web & papers & code -> gather); // `gather` runs once, with the three results
    edge!(gather -> plan);
    edge!(plan -> each answer); // one `answer` per sub-question
    edge!(answer -> write); // `write` gets the answers in the plan's order
    edge!(write -> END);

    #[node]
    async fn frame(r: &mut Research) {
        r.question = r.question.trim().trim_end_matches('?').to_owned() + "?";
    }

    /// Rate-limited on its first attempt: retried after a short backoff.
    #[node(retry = 2, backoff_ms = 20)]
    async fn web(r: &Research, ctx: &NodeCtx) -> Result<Vec<Finding>, ToolError> {
        call_tool(40).await;
        if ctx.attempt() == 1 {
            return Err(ToolError("rate limited"));
        }
        Ok(vec![Finding {
            source: "web".into(),
            text: format!("three blog posts discuss {:?}", r.question),
        }])
    }

    #[node]
    async fn papers(r: &Research) -> Vec<Finding> {
        call_tool(60).await;
        vec![Finding {
            source: "papers".into(),
            text: format!("two surveys cover {:?}", r.question),
        }]
    }

    /// Never answers in time: its join collects the failure instead of failing the run.
    #[node(timeout_ms = 50)]
    async fn code(_r: &Research) -> Result<Vec<Finding>, ToolError> {
        call_tool(1_000).await;
        Ok(Vec::new())
    }

    #[node]
    async fn gather(
        r: &mut Research,
        web: Vec<Finding>,
        papers: Vec<Finding>,
        code: Result<Vec<Finding>, Failure>,
    ) {
        r.findings.extend(web);
        r.findings.extend(papers);
        match code {
            Ok(found) => r.findings.extend(found),
            Err(failure) => r.report.push(format!(
                "(code search left out: `{}` failed: {})",
                failure.node(),
                failure.error()
            )),
        }
    }

    #[node]
    async fn plan(r: &mut Research) -> Vec<String> {
        r.sub_questions = [
            "what is it",
            "who uses it",
            "what does it cost",
            "what is next",
        ]
        .iter()
        .map(|q| format!("{q}, for {}", r.question))
        .collect();
        r.sub_questions.clone()
    }

    #[node(concurrency = 2)]
    async fn answer(r: &Research, item: String, ctx: &NodeCtx) -> Answer {
        call_tool(30 + 10 * item.len() as u64 % 40).await;
        ctx.emit(Note {
            item: ctx.item_index(),
            text: format!("drafted an answer from {} findings", r.findings.len()),
        });
        Answer {
            text: format!("answer to {item:?} (key {})", ctx.idempotency_key()),
            question: item,
        }
    }

    #[node]
    async fn write(r: &mut Research, answer: Vec<Answer>) {
        for a in answer {
            r.report.push(format!("- {}: {}", a.question, a.text));
        }
    }
}

/// Prints a run's events as progress lines, naming each branch (and each map item).
async fn print_progress(mut events: Events) {
    let name = |node: &str, item: Option<usize>| match item {
        Some(i) => format!("{node}[{i}]"),
        None => node.to_owned(),
    };
    while let Some(event) = events.next().await {
        let line = match event {
            Event::StepStarted { node, seq, .. } => format!("step   {node} (seq {seq})"),
            Event::RegionOpened {
                join,
                branches,
                items,
                ..
            } => match items {
                Some(n) => format!("open   {n} items of {} for {join}", branches.join(", ")),
                None => format!("open   {} for {join}", branches.join(" & ")),
            },
            Event::BranchSettled {
                node,
                item,
                outcome,
                ..
            } => format!("settle {} {outcome:?}", name(node, item)),
            Event::BranchStarted {
                node,
                item,
                attempt,
                ..
            } => format!("start  {} (attempt {attempt})", name(node, item)),
            Event::BranchFinished {
                node,
                item,
                duration,
                ..
            } => format!("ended  {} after {duration:.0?}", name(node, item)),
            Event::BranchRetrying {
                node,
                item,
                attempt,
                delay,
                error,
            } => format!(
                "retry  {} ({error}); attempt {attempt} in {delay:.0?}",
                name(node, item)
            ),
            Event::Custom { node, payload, .. } => match payload.downcast_ref::<Note>() {
                Some(note) => format!("note   {}: {}", name(node, note.item), note.text),
                None => continue,
            },
            Event::Completed => "completed".to_owned(),
            Event::Failed { error } => format!("failed: {error}"),
            _ => continue,
        };
        println!("  {line}");
    }
}

#[tokio::main]
async fn main() -> Result<(), graph_runtime::Error> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("research.db"))?;
    let runner = Runner::new(research::Workflow, store);

    let question = Research {
        question: "durable workflow engines in Rust".into(),
        ..Research::default()
    };
    println!("research: {:?}", question.question);
    let mut run = runner.spawn("research-1", question);
    let progress = tokio::spawn(print_progress(run.events()));
    let done = run.await?.into_state();
    let _ = progress.await;

    println!("\n{}", done.question);
    for finding in &done.findings {
        println!("  [{}] {}", finding.source, finding.text);
    }
    for line in &done.report {
        println!("{line}");
    }
    let history = runner.history("research-1").await?;
    let bytes: u64 = history.iter().map(|c| c.bytes).sum();
    println!(
        "\n{} checkpoints and branch records kept, {bytes} bytes",
        history.len()
    );
    println!("\n{}", research::MERMAID);
    Ok(())
}
