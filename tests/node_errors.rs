//! The error types a node may fail with: any type that converts into
//! `Box<dyn std::error::Error + Send + Sync>` (`graph_runtime::NodeError`). Each workflow here
//! fails with one of them, through the real runner and `MemoryStore`, and the tests check that
//! the error's message (and its source chain) reaches `Error::Node` or the error node, and that
//! retries and `Retryable` behave as they do for a concrete error type.
//!
//! Attempts are counted in statics, because a failed attempt's changes to the state are rolled
//! back. Tests run in parallel, so each one uses its own `slot` of the counter.

use std::error::Error as _;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use graph_runtime::prelude::*;
use graph_runtime::{Error, NodeError, Retryable};
use serde::{Deserialize, Serialize};

const SLOTS: usize = 16;

/// Attempts of the failing node, per slot.
static ATTEMPTS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

fn attempts(slot: usize) -> u32 {
    ATTEMPTS[slot].load(Ordering::SeqCst)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Job {
    /// Which counter this run uses.
    pub slot: usize,
    /// How many attempts fail before one succeeds (`u32::MAX`: all of them).
    pub failures: u32,
    pub log: Vec<String>,
    /// What the error node read from `ctx.failure()`.
    pub failure_seen: Option<String>,
}

impl Job {
    fn failing(slot: usize, failures: u32) -> Self {
        Job {
            slot,
            failures,
            ..Job::default()
        }
    }
}

/// Counts an attempt; `Some(attempt)` when this attempt must fail.
fn failing_attempt(job: &Job) -> Option<u32> {
    let attempt = ATTEMPTS[job.slot].fetch_add(1, Ordering::SeqCst) + 1;
    (attempt <= job.failures).then_some(attempt)
}

/// A concrete error that says it is not worth retrying.
#[derive(Debug)]
pub struct Declined;

impl fmt::Display for Declined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {}

impl Retryable for Declined {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// A concrete error without a `Retryable` impl: always retried.
#[derive(Debug)]
pub struct Unreachable(u32);

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "provider unreachable (attempt {})", self.0)
    }
}

impl std::error::Error for Unreachable {}

#[workflow(state = Job)]
pub mod with_anyhow {
    use super::*;

    edge!(START -> fetch);
    edge!(fetch -> END);

    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    pub async fn fetch(job: &mut Job) -> anyhow::Result<()> {
        if let Some(attempt) = failing_attempt(job) {
            let cause = anyhow::anyhow!("connection reset (attempt {attempt})");
            return Err(cause.context("fetching the invoice"));
        }
        job.log.push("fetched".into());
        Ok(())
    }
}

#[workflow(state = Job)]
pub mod with_boxed {
    use super::*;

    edge!(START -> parse);
    edge!(parse -> END);

    #[node(retry = 1, backoff_ms = 1, jitter = false)]
    async fn parse(job: &mut Job) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(attempt) = failing_attempt(job) {
            return Err(Box::<dyn std::error::Error + Send + Sync>::from(format!(
                "no amount in the invoice (attempt {attempt})"
            )));
        }
        // `?` boxes a concrete error on the way, as in any function returning this type.
        let cents: u64 = "1250".parse()?;
        job.log.push(format!("parsed {cents}"));
        Ok(())
    }
}

/// A branching node whose error type is `NodeError`, and an error edge that reads its message.
#[workflow(state = Job)]
pub mod with_node_error {
    use super::*;

    edge!(START -> decide);
    edge!(decide -> approve | END);
    edge!(decide -> recover on error);
    edge!(approve -> END);
    edge!(recover -> END);

    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    async fn decide(job: &mut Job) -> Result<decide::Next, NodeError> {
        if failing_attempt(job).is_some() {
            // A `Retryable` error, boxed: its impl can no longer be seen, so it is retried.
            return Err(Declined.into());
        }
        Ok(decide::Next::Approve)
    }

    #[node]
    async fn approve(job: &mut Job) {
        job.log.push("approved".into());
    }

    #[node]
    async fn recover(job: &mut Job, ctx: &NodeCtx) {
        job.failure_seen = ctx
            .failure()
            .map(|failure| format!("{}: {}", failure.node(), failure.error()));
    }
}

#[workflow(state = Job)]
pub mod with_strings {
    use super::*;

    edge!(START -> first);
    edge!(first -> second);
    edge!(second -> END);

    #[node]
    pub async fn first(job: &mut Job) -> Result<(), String> {
        if let Some(attempt) = failing_attempt(job) {
            return Err(format!("first failed (attempt {attempt})"));
        }
        job.log.push("first".into());
        Ok(())
    }

    #[node]
    async fn second(job: &mut Job) -> Result<(), &'static str> {
        job.log.push("second".into());
        Ok(())
    }
}

/// Concrete error types, as before: `Retryable` is still honoured.
#[workflow(state = Job)]
pub mod with_concrete {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node(retry = 3, backoff_ms = 1, jitter = false)]
    async fn charge(job: &mut Job) -> Result<(), Declined> {
        match failing_attempt(job) {
            Some(_) => Err(Declined),
            None => Ok(()),
        }
    }
}

#[workflow(state = Job)]
pub mod with_unreachable {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node(retry = 3, backoff_ms = 1, jitter = false)]
    async fn charge(job: &mut Job) -> Result<(), Unreachable> {
        match failing_attempt(job) {
            Some(attempt) => Err(Unreachable(attempt)),
            None => {
                job.log.push("charged".into());
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn an_anyhow_error_reaches_error_node_with_its_context_and_cause() {
    let slot = 0;
    let runner = Runner::new(with_anyhow::Workflow, MemoryStore::new());
    match runner.start("s", Job::failing(slot, u32::MAX)).await {
        Err(error @ Error::Node { .. }) => {
            // The message names the node; the node's error is the source, not repeated.
            assert_eq!(error.to_string(), "node `fetch` failed");
            let source = error.source().expect("the node's error is the source");
            assert_eq!(source.to_string(), "fetching the invoice");
            let cause = source.source().expect("anyhow's chain survives the boxing");
            assert_eq!(cause.to_string(), "connection reset (attempt 3)");
        }
        other => panic!("expected fetch's error, got {other:?}"),
    }
    assert_eq!(attempts(slot), 3, "one attempt and two retries");
}

#[tokio::test]
async fn an_anyhow_error_is_retried_until_an_attempt_succeeds() {
    let slot = 1;
    let runner = Runner::new(with_anyhow::Workflow, MemoryStore::new());
    let done = runner.start("s", Job::failing(slot, 2)).await.unwrap();
    let Outcome::Completed(job) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(job.log, ["fetched"]);
    assert_eq!(attempts(slot), 3);
}

#[tokio::test]
async fn a_boxed_error_made_from_a_string_reaches_error_node() {
    let slot = 2;
    let runner = Runner::new(with_boxed::Workflow, MemoryStore::new());
    match runner.start("s", Job::failing(slot, u32::MAX)).await {
        Err(Error::Node { node, source }) => {
            assert_eq!(node, "parse");
            assert_eq!(source.to_string(), "no amount in the invoice (attempt 2)");
        }
        other => panic!("expected parse's error, got {other:?}"),
    }
    assert_eq!(attempts(slot), 2, "one attempt and one retry");
}

#[tokio::test]
async fn a_boxed_error_is_retried_until_an_attempt_succeeds() {
    let slot = 3;
    let runner = Runner::new(with_boxed::Workflow, MemoryStore::new());
    let done = runner.start("s", Job::failing(slot, 1)).await.unwrap();
    let Outcome::Completed(job) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(job.log, ["parsed 1250"]);
    assert_eq!(attempts(slot), 2);
}

#[tokio::test]
async fn a_node_error_takes_the_error_edge_with_its_message_after_the_retries() {
    let slot = 4;
    let runner = Runner::new(with_node_error::Workflow, MemoryStore::new());
    let done = runner
        .start("s", Job::failing(slot, u32::MAX))
        .await
        .unwrap();
    let Outcome::Completed(job) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(job.failure_seen.as_deref(), Some("decide: card declined"));
    assert!(job.log.is_empty());
    // The boxed `Declined` says "do not retry", but a `NodeError` hides it: all three ran.
    assert_eq!(attempts(slot), 3);
}

#[tokio::test]
async fn a_branching_node_with_a_node_error_routes_as_usual() {
    let slot = 5;
    let runner = Runner::new(with_node_error::Workflow, MemoryStore::new());
    let done = runner.start("s", Job::failing(slot, 1)).await.unwrap();
    let Outcome::Completed(job) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(job.log, ["approved"]);
    assert_eq!(job.failure_seen, None);
    assert_eq!(attempts(slot), 2);
}

#[tokio::test]
async fn string_and_str_errors_are_node_errors() {
    let slot = 6;
    let runner = Runner::new(with_strings::Workflow, MemoryStore::new());
    match runner.start("s", Job::failing(slot, 1)).await {
        Err(Error::Node { node, source }) => {
            assert_eq!(node, "first");
            assert_eq!(source.to_string(), "first failed (attempt 1)");
        }
        other => panic!("expected first's error, got {other:?}"),
    }
    let done = runner.resume("s").await.unwrap();
    let Outcome::Completed(job) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(job.log, ["first", "second"]);
}

#[tokio::test]
async fn a_concrete_error_that_is_not_retryable_is_not_retried() {
    let slot = 7;
    let runner = Runner::new(with_concrete::Workflow, MemoryStore::new());
    match runner.start("s", Job::failing(slot, u32::MAX)).await {
        Err(Error::Node { node, source }) => {
            assert_eq!(node, "charge");
            assert_eq!(source.to_string(), "card declined");
            assert!(source.downcast_ref::<Declined>().is_some());
        }
        other => panic!("expected charge's error, got {other:?}"),
    }
    assert_eq!(attempts(slot), 1, "`Retryable` said retrying cannot help");
}

#[tokio::test]
async fn a_concrete_error_without_retryable_is_retried() {
    let slot = 8;
    let runner = Runner::new(with_unreachable::Workflow, MemoryStore::new());
    match runner.start("s", Job::failing(slot, u32::MAX)).await {
        Err(Error::Node { source, .. }) => {
            assert_eq!(source.to_string(), "provider unreachable (attempt 4)");
        }
        other => panic!("expected charge's error, got {other:?}"),
    }
    assert_eq!(attempts(slot), 4, "one attempt and three retries");
}

/// Node functions stay ordinary functions, whatever their error type.
#[tokio::test]
async fn nodes_can_be_called_directly() {
    let slot = 9;
    let mut job = Job::failing(slot, 1);
    let error = with_strings::first(&mut job).await.unwrap_err();
    assert_eq!(error, "first failed (attempt 1)");
    with_strings::first(&mut job).await.unwrap();
    let error = with_anyhow::fetch(&mut Job::failing(slot, u32::MAX))
        .await
        .unwrap_err();
    assert_eq!(
        format!("{error:#}"),
        "fetching the invoice: connection reset (attempt 3)"
    );
}
