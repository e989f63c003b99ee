//! Error edges (`edge!(charge -> refund on error)`) through the real runner and `MemoryStore`:
//! retries that succeed leave no trace, exhausted retries take the error edge with the state
//! from before the first attempt, permanent errors and timeouts, zero retries, the failure
//! saved for a crash before the error node, error edges from and to interrupt nodes, and no
//! error edge at all.
//!
//! Attempts are counted in statics, because a failed attempt's changes to the state are rolled
//! back. Tests run in parallel, so each one uses its own `slot` of the counters.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use graph_runtime::__private::Execute as _;
use graph_runtime::prelude::*;
use graph_runtime::{Error, Retryable, Status};
use serde::{Deserialize, Serialize};

const SLOTS: usize = 16;

/// Attempts of the failing node(s), per slot.
static ATTEMPTS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// Runs of the error node, per slot.
static ERROR_NODE_RUNS: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];
/// Runs of the error node that saw `ctx.failure()`, per slot.
static ERROR_NODE_SAW_FAILURE: [AtomicU32; SLOTS] = [const { AtomicU32::new(0) }; SLOTS];

fn count(counter: &[AtomicU32; SLOTS], slot: usize) -> u32 {
    counter[slot].load(Ordering::SeqCst)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    /// Which counters this run uses.
    pub slot: usize,
    /// How many attempts fail before one succeeds (`u32::MAX`: all of them).
    pub failures: u32,
    /// Whether the failures are declines, which `Retryable` marks as not worth retrying.
    pub declined: bool,
    /// Which node fails, in graphs with several that can.
    pub failing_node: String,
    /// How many times the error node fails, after reading the failure, before it succeeds.
    pub error_node_failures: u32,
    pub total_cents: u64,
    pub log: Vec<String>,
    /// What the error node read from `ctx.failure()`: the node and the error message.
    pub failure_seen: Option<(String, String)>,
}

impl Order {
    fn new(slot: usize) -> Self {
        Order {
            slot,
            total_cents: 1_000,
            ..Order::default()
        }
    }

    fn failing_always(slot: usize) -> Self {
        Order {
            failures: u32::MAX,
            ..Order::new(slot)
        }
    }
}

#[derive(Debug)]
pub enum PaymentError {
    Unreachable { attempt: u32 },
    Declined,
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Unreachable { attempt } => {
                write!(f, "provider unreachable (attempt {attempt})")
            }
            PaymentError::Declined => f.write_str("card declined"),
        }
    }
}

impl std::error::Error for PaymentError {}

impl Retryable for PaymentError {
    fn is_retryable(&self) -> bool {
        matches!(self, PaymentError::Unreachable { .. })
    }
}

#[derive(Debug)]
pub struct RefundError;

impl fmt::Display for RefundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refund service down")
    }
}

impl std::error::Error for RefundError {}

/// One attempt of a node that may fail: counts it, makes a partial change that must not
/// survive a failure, and fails while the order says so.
fn attempt(order: &mut Order, node: &str, ctx: &NodeCtx) -> Result<(), PaymentError> {
    let attempt = ATTEMPTS[order.slot].fetch_add(1, Ordering::SeqCst) + 1;
    order.total_cents += 100;
    order.log.push(format!("{node} attempt {}", ctx.attempt()));
    let fails = order.failing_node.is_empty() || order.failing_node == node;
    if fails && attempt <= order.failures {
        return Err(if order.declined {
            PaymentError::Declined
        } else {
            PaymentError::Unreachable { attempt }
        });
    }
    Ok(())
}

/// The error node: records what failed (and whether it saw it), then fails while the order
/// says so.
fn handle_failure(order: &mut Order, node: &str, ctx: &NodeCtx) -> Result<(), RefundError> {
    let run = ERROR_NODE_RUNS[order.slot].fetch_add(1, Ordering::SeqCst) + 1;
    order.failure_seen = ctx
        .failure()
        .map(|failure| (failure.node().to_owned(), failure.error().to_owned()));
    if order.failure_seen.is_some() {
        ERROR_NODE_SAW_FAILURE[order.slot].fetch_add(1, Ordering::SeqCst);
    }
    order.log.push(node.to_owned());
    if run <= order.error_node_failures {
        return Err(RefundError);
    }
    Ok(())
}

/// A checkout whose `charge` is flaky: two retries, then the error edge to `refund`.
#[workflow(state = Order)]
pub mod payments {
    use super::*;

    edge!(START -> prepare);
    edge!(prepare -> charge);
    edge!(charge -> ship);
    edge!(charge -> refund on error);
    edge!(ship -> END);
    edge!(refund -> notify);
    edge!(notify -> END);

    #[node]
    async fn prepare(order: &mut Order) {
        order.log.push("prepare".into());
    }

    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        attempt(order, "charge", ctx)
    }

    #[node]
    async fn ship(order: &mut Order) {
        order.log.push("ship".into());
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) -> Result<(), RefundError> {
        handle_failure(order, "refund", ctx)
    }

    /// After the error node: the failure is not its business any more.
    #[node]
    async fn notify(order: &mut Order, ctx: &NodeCtx) {
        order
            .log
            .push(format!("notify (failure: {})", ctx.failure().is_some()));
    }
}

/// `charge` never returns, and each attempt is cut short by its timeout.
#[workflow(state = Order)]
pub mod slow {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);
    edge!(charge -> refund on error);
    edge!(refund -> END);

    #[node(retry = 1, timeout_ms = 20, backoff_ms = 1, jitter = false)]
    async fn charge(order: &mut Order) {
        ATTEMPTS[order.slot].fetch_add(1, Ordering::SeqCst);
        order.log.push("charge started".into());
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) -> Result<(), RefundError> {
        handle_failure(order, "refund", ctx)
    }
}

/// No retries: `first` has no `retry` key, `second` says `retry = 0`.
#[workflow(state = Order)]
pub mod once {
    use super::*;

    edge!(START -> first);
    edge!(first -> second);
    edge!(first -> recover on error);
    edge!(second -> END);
    edge!(second -> recover on error);
    edge!(recover -> END);

    #[node]
    async fn first(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        attempt(order, "first", ctx)
    }

    #[node(retry = 0)]
    async fn second(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        attempt(order, "second", ctx)
    }

    #[node]
    async fn recover(order: &mut Order, ctx: &NodeCtx) -> Result<(), RefundError> {
        handle_failure(order, "recover", ctx)
    }
}

/// The same flaky `charge` without an error edge.
#[workflow(state = Order)]
pub mod strict {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node(retry = 2, backoff_ms = 1, jitter = false)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        attempt(order, "charge", ctx)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject,
}

/// An interrupt node with an error edge: a decision that fails goes to `escalate`.
#[workflow(state = Order)]
pub mod approvals {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);
    edge!(review -> escalate on error);
    edge!(escalate -> END);

    #[node(interrupt)]
    async fn review(order: &mut Order, decision: Approval) -> Result<(), PaymentError> {
        order.log.push(format!("review {decision:?}"));
        match decision {
            Approval::Approve => Ok(()),
            Approval::Reject => Err(PaymentError::Declined),
        }
    }

    #[node]
    async fn escalate(order: &mut Order, ctx: &NodeCtx) -> Result<(), RefundError> {
        handle_failure(order, "escalate", ctx)
    }
}

/// An error edge to an interrupt node: a person decides what to do about the failure.
#[workflow(state = Order)]
pub mod escalation {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);
    edge!(charge -> decide on error);
    edge!(decide -> END);

    #[node(retry = 1, backoff_ms = 1, jitter = false)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        attempt(order, "charge", ctx)
    }

    #[node(interrupt)]
    async fn decide(
        order: &mut Order,
        decision: Approval,
        ctx: &NodeCtx,
    ) -> Result<(), RefundError> {
        handle_failure(order, &format!("decide {decision:?}"), ctx)
    }
}

async fn history_nodes<W: graph_runtime::Workflow, S: graph_runtime::store::Store>(
    runner: &Runner<W, S>,
    session: &str,
) -> Vec<String> {
    runner
        .history(session)
        .await
        .unwrap()
        .into_iter()
        .map(|checkpoint| checkpoint.node)
        .collect()
}

#[test]
fn the_generated_error_routes() {
    use payments::Workflow as W;
    let cursor = |name: &str| W::cursor_of(name).expect(name);
    assert_eq!(W::error_route(cursor("charge")), Some(cursor("refund")));
    for name in ["prepare", "ship", "refund", "notify"] {
        assert_eq!(W::error_route(cursor(name)), None, "{name}");
    }
    // A node with an error edge goes back to the runner; the others run back to back.
    assert!(!W::runs_freely(cursor("charge")));
    assert!(W::runs_freely(cursor("refund")));
    assert!(W::runs_freely(cursor("prepare")));
    // Without retries or a timeout, the error edge alone keeps a node with the runner.
    let first = once::Workflow::cursor_of("first").unwrap();
    assert!(!once::Workflow::runs_freely(first));
}

#[tokio::test]
async fn a_flaky_charge_that_succeeds_on_its_third_attempt_takes_no_error_edge() {
    let slot = 0;
    let runner = Runner::new(payments::Workflow, MemoryStore::new());
    let order = Order {
        failures: 2,
        ..Order::new(slot)
    };
    let done = runner.start("s", order).await.unwrap();
    let Outcome::Completed(order) = done else {
        panic!("expected completion, got {done:?}");
    };
    assert_eq!(count(&ATTEMPTS, slot), 3);
    assert_eq!(count(&ERROR_NODE_RUNS, slot), 0);
    // Only the third attempt's changes are kept: one log line, one +100.
    assert_eq!(order.log, ["prepare", "charge attempt 3", "ship"]);
    assert_eq!(order.total_cents, 1_100);
    assert_eq!(order.failure_seen, None);
    assert_eq!(
        history_nodes(&runner, "s").await,
        ["prepare", "charge", "ship", "END"]
    );
}

#[tokio::test]
async fn exhausted_retries_take_the_error_edge_with_the_state_from_before_the_first_attempt() {
    let slot = 1;
    let runner = Runner::new(payments::Workflow, MemoryStore::new());
    let order = runner
        .start("s", Order::failing_always(slot))
        .await
        .unwrap()
        .into_state();
    assert_eq!(count(&ATTEMPTS, slot), 3, "retry = 2: three attempts");
    assert_eq!(count(&ERROR_NODE_RUNS, slot), 1);
    assert_eq!(
        order.failure_seen,
        Some((
            "charge".to_owned(),
            "provider unreachable (attempt 3)".to_owned()
        ))
    );
    // No failed attempt left anything behind; the failure is not seen after `refund`.
    assert_eq!(order.log, ["prepare", "refund", "notify (failure: false)"]);
    assert_eq!(order.total_cents, 1_000);
    assert_eq!(
        history_nodes(&runner, "s").await,
        ["prepare", "charge", "refund", "notify", "END"]
    );
}

#[tokio::test]
async fn an_error_that_is_not_retryable_takes_the_error_edge_at_once() {
    let slot = 2;
    let runner = Runner::new(payments::Workflow, MemoryStore::new());
    let order = Order {
        declined: true,
        ..Order::failing_always(slot)
    };
    let order = runner.start("s", order).await.unwrap().into_state();
    assert_eq!(count(&ATTEMPTS, slot), 1, "a decline is not retried");
    assert_eq!(
        order.failure_seen,
        Some(("charge".to_owned(), "card declined".to_owned()))
    );
    assert_eq!(order.log, ["prepare", "refund", "notify (failure: false)"]);
}

#[tokio::test]
async fn timed_out_attempts_then_the_error_edge() {
    let slot = 3;
    let runner = Runner::new(slow::Workflow, MemoryStore::new());
    let started = std::time::Instant::now();
    let order = runner
        .start("s", Order::new(slot))
        .await
        .unwrap()
        .into_state();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(count(&ATTEMPTS, slot), 2, "retry = 1: two attempts");
    assert_eq!(
        order.failure_seen,
        Some(("charge".to_owned(), "timed out after 20ms".to_owned()))
    );
    assert_eq!(order.log, ["refund"], "the timed-out attempts left nothing");
}

#[tokio::test]
async fn the_failure_is_saved_before_the_error_node_runs() {
    let slot = 4;
    let store = MemoryStore::new();
    let runner = Runner::new(payments::Workflow, store.clone());
    let order = Order {
        error_node_failures: 1,
        ..Order::failing_always(slot)
    };
    // `refund` reads the failure, then fails itself: the call ends there, as a crash would.
    match runner.start("s", order).await {
        Err(Error::Node { node, source }) => {
            assert_eq!(node, "refund");
            assert_eq!(source.to_string(), "refund service down");
        }
        other => panic!("expected refund's error, got {other:?}"),
    }
    assert_eq!(count(&ERROR_NODE_SAW_FAILURE, slot), 1);
    // The session waits at `refund`, with the state from before `charge`'s first attempt.
    let snapshot = runner.state("s").await.unwrap().unwrap();
    assert_eq!(snapshot.node, "refund");
    assert_eq!(snapshot.status, Status::Running);
    assert_eq!(snapshot.state.log, ["prepare"]);
    assert_eq!(snapshot.state.total_cents, 1_000);

    // Another runner on the same store (a restarted process) resumes it: `refund` sees the
    // same failure, read back from the checkpoint; `charge` does not run again.
    let restarted = Runner::new(payments::Workflow, store);
    let order = restarted.resume("s").await.unwrap().into_state();
    assert_eq!(count(&ERROR_NODE_RUNS, slot), 2);
    assert_eq!(count(&ERROR_NODE_SAW_FAILURE, slot), 2);
    assert_eq!(count(&ATTEMPTS, slot), 3);
    assert_eq!(
        order.failure_seen,
        Some((
            "charge".to_owned(),
            "provider unreachable (attempt 3)".to_owned()
        ))
    );
    assert_eq!(order.log, ["prepare", "refund", "notify (failure: false)"]);
    assert_eq!(
        history_nodes(&restarted, "s").await,
        ["prepare", "charge", "refund", "notify", "END"]
    );
}

#[tokio::test]
async fn with_few_checkpoints_the_error_edge_is_still_taken_and_saved() {
    // With `OnInterrupt` the generated `run` loop runs plain nodes back to back: it must stop
    // before `charge` (which has an error edge) and right after `refund` (so that `notify`
    // does not see the failure). The failure is saved before `refund` all the same.
    let slot = 5;
    let runner = Runner::new(payments::Workflow, MemoryStore::new())
        .checkpoint_policy(CheckpointPolicy::OnInterrupt);
    let order = runner
        .start("s", Order::failing_always(slot))
        .await
        .unwrap()
        .into_state();
    assert_eq!(count(&ATTEMPTS, slot), 3);
    assert_eq!(order.log, ["prepare", "refund", "notify (failure: false)"]);
    assert_eq!(
        order.failure_seen.as_ref().map(|(node, _)| node.as_str()),
        Some("charge")
    );
    assert_eq!(
        history_nodes(&runner, "s").await,
        ["prepare", "refund", "END"]
    );
}

#[tokio::test]
async fn without_retries_a_node_fails_at_once() {
    // `first` has no `retry` key.
    let slot = 6;
    let runner = Runner::new(once::Workflow, MemoryStore::new());
    let order = Order {
        failing_node: "first".into(),
        ..Order::failing_always(slot)
    };
    let order = runner.start("a", order).await.unwrap().into_state();
    assert_eq!(count(&ATTEMPTS, slot), 1);
    assert_eq!(
        order.failure_seen,
        Some((
            "first".to_owned(),
            "provider unreachable (attempt 1)".to_owned()
        ))
    );
    assert_eq!(order.log, ["recover"]);

    // `second` says `retry = 0`; `first`'s success before it is kept.
    let slot = 7;
    let order = Order {
        failing_node: "second".into(),
        ..Order::failing_always(slot)
    };
    let order = runner.start("b", order).await.unwrap().into_state();
    assert_eq!(count(&ATTEMPTS, slot), 2, "first once, second once");
    assert_eq!(
        order.failure_seen,
        Some((
            "second".to_owned(),
            "provider unreachable (attempt 2)".to_owned()
        ))
    );
    assert_eq!(order.log, ["first attempt 1", "recover"]);
    assert_eq!(order.total_cents, 1_100);
}

#[tokio::test]
async fn without_an_error_edge_the_run_ends_with_the_nodes_error() {
    let slot = 8;
    let runner = Runner::new(strict::Workflow, MemoryStore::new());
    match runner.start("s", Order::failing_always(slot)).await {
        Err(Error::Node { node, source }) => {
            assert_eq!(node, "charge");
            assert_eq!(source.to_string(), "provider unreachable (attempt 3)");
        }
        other => panic!("expected charge's error, got {other:?}"),
    }
    assert_eq!(count(&ATTEMPTS, slot), 3);
    let snapshot = runner.state("s").await.unwrap().unwrap();
    assert_eq!((snapshot.seq, snapshot.node.as_str()), (0, "charge"));
    assert!(snapshot.state.log.is_empty());
}

#[tokio::test]
async fn an_interrupt_node_can_have_an_error_edge() {
    let slot = 9;
    let runner = Runner::new(approvals::Workflow, MemoryStore::new());
    let waiting = runner.start("s", Order::new(slot)).await.unwrap();
    assert!(matches!(
        waiting,
        Outcome::Interrupted { node: "review", .. }
    ));
    let order = runner
        .resume_with("s", approvals::Input::Review(Approval::Reject))
        .await
        .unwrap()
        .into_state();
    assert_eq!(
        order.failure_seen,
        Some(("review".to_owned(), "card declined".to_owned()))
    );
    // The failed decision's change is gone.
    assert_eq!(order.log, ["escalate"]);

    // An approval takes the ordinary route.
    runner.start("t", Order::new(slot)).await.unwrap();
    let order = runner
        .resume_with("t", approvals::Input::Review(Approval::Approve))
        .await
        .unwrap()
        .into_state();
    assert_eq!(order.log, ["review Approve"]);
    assert_eq!(count(&ERROR_NODE_RUNS, slot), 1);
}

#[tokio::test]
async fn an_interrupt_node_reached_by_an_error_edge_sees_the_failure_when_resumed() {
    let slot = 10;
    let store = MemoryStore::new();
    let runner = Runner::new(escalation::Workflow, store.clone());
    let waiting = runner
        .start("s", Order::failing_always(slot))
        .await
        .unwrap();
    let Outcome::Interrupted { node, state } = waiting else {
        panic!("expected to wait at `decide`, got {waiting:?}");
    };
    assert_eq!(node, "decide");
    assert!(state.log.is_empty(), "{:?}", state.log);
    assert_eq!(count(&ATTEMPTS, slot), 2);

    // The decision arrives later, in another process.
    let restarted = Runner::new(escalation::Workflow, store);
    let order = restarted
        .resume_with("s", escalation::Input::Decide(Approval::Approve))
        .await
        .unwrap()
        .into_state();
    assert_eq!(
        order.failure_seen,
        Some((
            "charge".to_owned(),
            "provider unreachable (attempt 2)".to_owned()
        ))
    );
    assert_eq!(order.log, ["decide Approve"]);
    assert_eq!(count(&ATTEMPTS, slot), 2, "`charge` does not run again");
}
