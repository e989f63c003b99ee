//! Durable interrupt deadlines: `#[node(interrupt, wait_ms = N)]` takes `Option<I>`; when no
//! input comes within N ms, a worker runs it with `None`. On every store (memory, SQLite
//! file, a throwaway PostgreSQL). Timings have wide margins: nothing here measures speed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{CancellationToken, Error, Status, Worker};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

#[path = "support/postgres.rs"]
mod postgres;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub steps: Vec<String>,
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

/// The deadline of `review`, in milliseconds.
const WAIT_MS: u64 = 300;

#[workflow(state = Ticket)]
pub mod tickets {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> review);
    edge!(review -> END);

    #[node]
    async fn triage(t: &mut Ticket) {
        t.steps.push("triage".into());
    }

    #[node(interrupt, wait_ms = 300)]
    async fn review(t: &mut Ticket, decision: Option<Decision>) {
        t.steps.push("review".into());
        t.outcome = Some(match decision {
            Some(Decision::Approve) => "approved".into(),
            Some(Decision::Reject) => "rejected".into(),
            None => "escalated".into(),
        });
    }
}

/// How many times `flaky::review` ran without its input.
static DEFAULTS: AtomicU32 = AtomicU32::new(0);

/// Its default fails the first time (the escalation service is down).
#[workflow(state = Ticket)]
pub mod flaky {
    use super::*;

    edge!(START -> review);
    edge!(review -> END);

    #[node(interrupt, wait_ms = 200)]
    async fn review(t: &mut Ticket, decision: Option<Decision>) -> Result<(), String> {
        if decision.is_none() && DEFAULTS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("the escalation service is down".into());
        }
        t.outcome = Some(
            if decision.is_some() {
                "decided"
            } else {
                "escalated"
            }
            .into(),
        );
        Ok(())
    }
}

type Run<S> = Runner<tickets::Workflow, S>;

/// A worker of `runner`'s workflow that polls often (the deadline is short).
fn worker<S: Store + Clone>(runner: &Run<S>, shutdown: &CancellationToken) -> JoinHandle<()> {
    let worker = Worker::new(runner.store().clone())
        .register(runner.clone())
        .concurrency(4)
        .lease_ttl(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(50));
    let shutdown = shutdown.clone();
    tokio::spawn(async move { worker.run(shutdown).await.expect("worker") })
}

async fn stop(shutdown: CancellationToken, worker: JoinHandle<()>) {
    shutdown.cancel();
    worker.await.expect("worker task");
}

async fn wait_until_completed<S: Store + Clone>(runner: &Run<S>, id: &str) -> Ticket {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = runner.state(id).await.expect("state").expect("session");
        if snapshot.status == Status::Completed {
            return snapshot.state;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {id} to complete: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status<S: Store + Clone>(runner: &Run<S>, id: &str) -> Status {
    runner.state(id).await.unwrap().unwrap().status
}

fn waiting() -> Status {
    Status::Waiting {
        node: "review".into(),
    }
}

/// Started in-process, no input: a worker runs `review` with `None` after the deadline, and
/// not before.
async fn default_runs_after_the_deadline<S: Store + Clone>(store: S) {
    let runner = Runner::new(tickets::Workflow, store);
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    let started = tokio::time::Instant::now();
    let outcome = runner.start("t-1", Ticket::default()).await.unwrap();
    assert!(matches!(
        outcome,
        Outcome::Interrupted { node: "review", .. }
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    if started.elapsed() < Duration::from_millis(WAIT_MS - 50) {
        assert_eq!(
            status(&runner, "t-1").await,
            waiting(),
            "ran before the deadline"
        );
    }
    let ticket = wait_until_completed(&runner, "t-1").await;
    assert!(started.elapsed() >= Duration::from_millis(WAIT_MS));
    assert_eq!(ticket.outcome.as_deref(), Some("escalated"));
    assert_eq!(ticket.steps, ["triage", "review"]);
    // The attempt without input was recorded before the node ran: start, waiting, that
    // attempt (running at `review`), completed.
    let history = runner.history("t-1").await.unwrap();
    let statuses: Vec<Status> = history.iter().map(|c| c.status.clone()).collect();
    assert_eq!(
        statuses,
        [
            Status::Running,
            waiting(),
            Status::Running,
            Status::Completed
        ]
    );
    assert_eq!(history[2].node, "review");
    // The history says the deadline gave it, not a person.
    let audit = history[2]
        .audit
        .clone()
        .expect("the attempt without input is audited");
    assert_eq!(
        audit.kind,
        graph_runtime::AuditKind::Input {
            node: "review".into(),
            source: graph_runtime::InputSource::Deadline
        }
    );
    assert_eq!(audit.actor, None);
    stop(shutdown, worker).await;
}

/// An input given before the deadline wins, by `enqueue_input` (a worker runs it) or by
/// `resume_with` (it runs in-process, and no worker takes the session at the deadline).
async fn an_input_before_the_deadline_wins<S: Store + Clone>(store: S) {
    let runner = Runner::new(tickets::Workflow, store);
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);

    runner.start("queued", Ticket::default()).await.unwrap();
    runner
        .enqueue_input("queued", tickets::Input::Review(Decision::Approve))
        .await
        .unwrap();
    let ticket = wait_until_completed(&runner, "queued").await;
    assert_eq!(ticket.outcome.as_deref(), Some("approved"));

    runner.start("direct", Ticket::default()).await.unwrap();
    let outcome = runner
        .resume_with("direct", tickets::Input::Review(Decision::Reject))
        .await
        .unwrap();
    assert_eq!(outcome.into_state().outcome.as_deref(), Some("rejected"));

    // Well past the deadline: nothing ran again, nothing was written.
    tokio::time::sleep(Duration::from_millis(3 * WAIT_MS)).await;
    for (id, outcome) in [("queued", "approved"), ("direct", "rejected")] {
        let history = runner.history(id).await.unwrap();
        assert_eq!(history.len(), 4, "{id}: {history:?}");
        let ticket = runner.state(id).await.unwrap().unwrap().state;
        assert_eq!(ticket.outcome.as_deref(), Some(outcome), "{id}");
        assert_eq!(ticket.steps, ["triage", "review"], "{id}");
    }
    stop(shutdown, worker).await;
}

/// A decision that comes after a worker ran the default is `NotWaiting`.
async fn an_input_after_the_default_is_not_waiting<S: Store + Clone>(store: S) {
    let runner = Runner::new(tickets::Workflow, store);
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    runner.start("late", Ticket::default()).await.unwrap();
    let ticket = wait_until_completed(&runner, "late").await;
    assert_eq!(ticket.outcome.as_deref(), Some("escalated"));
    match runner
        .resume_with("late", tickets::Input::Review(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, .. }) => assert_eq!(node, "review"),
        other => panic!("{other:?}"),
    }
    match runner
        .enqueue_input("late", tickets::Input::Review(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, .. }) => assert_eq!(node, "review"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        runner
            .state("late")
            .await
            .unwrap()
            .unwrap()
            .state
            .outcome
            .as_deref(),
        Some("escalated")
    );
    stop(shutdown, worker).await;
}

/// The deadline is in the store: it passes while no worker runs, an in-process `resume` does
/// not run the default, and a worker started later does.
async fn the_deadline_survives_the_workers_being_down<S: Store + Clone>(store: S) {
    let runner = Runner::new(tickets::Workflow, store);
    runner.start("down", Ticket::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2 * WAIT_MS)).await;
    assert_eq!(status(&runner, "down").await, waiting());
    assert!(matches!(
        runner.resume("down").await.unwrap(),
        Outcome::Interrupted { node: "review", .. }
    ));
    assert_eq!(status(&runner, "down").await, waiting());

    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    let ticket = wait_until_completed(&runner, "down").await;
    assert_eq!(ticket.outcome.as_deref(), Some("escalated"));
    assert_eq!(ticket.steps, ["triage", "review"]);
    stop(shutdown, worker).await;
}

/// Enqueued (never run in-process): the worker runs `triage`, the session waits with its
/// deadline, and the same worker runs the default once it passes.
async fn an_enqueued_session_gets_its_default<S: Store + Clone>(store: S) {
    let runner = Runner::new(tickets::Workflow, store);
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown);
    runner.enqueue("queued", Ticket::default()).await.unwrap();
    let ticket = wait_until_completed(&runner, "queued").await;
    assert_eq!(ticket.outcome.as_deref(), Some("escalated"));
    assert_eq!(ticket.steps, ["triage", "review"]);
    stop(shutdown, worker).await;
}

async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("d.db")).unwrap();
    (store, dir)
}

async fn pg() -> graph_runtime::PostgresStore {
    let conninfo = postgres::database().await;
    graph_runtime::PostgresStore::connect(&conninfo)
        .await
        .unwrap()
}

macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(graph_runtime::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (store, _dir) = super::sqlite().await;
                    super::$scenario(store).await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::pg().await).await;
                }
            )*
        }
    };
}

on_every_store!(
    default_runs_after_the_deadline,
    an_input_before_the_deadline_wins,
    an_input_after_the_default_is_not_waiting,
    the_deadline_survives_the_workers_being_down,
    an_enqueued_session_gets_its_default,
);

/// The attempt without input is durable: after the worker's run of it failed, the session
/// does not wait again (a late input is `NotWaiting`), and resuming it runs the node without
/// its input again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_default_is_run_again_without_input() {
    let (store, _dir) = sqlite().await;
    let runner = Runner::new(flaky::Workflow, store.clone());
    assert!(matches!(
        runner.start("f", Ticket::default()).await.unwrap(),
        Outcome::Interrupted { node: "review", .. }
    ));
    let shutdown = CancellationToken::new();
    let worker = Worker::new(store)
        .register(runner.clone())
        .lease_ttl(Duration::from_secs(30))
        .poll_interval(Duration::from_millis(50));
    let worker = tokio::spawn(worker.run(shutdown.clone()));
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while DEFAULTS.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the default never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    let snapshot = runner.state("f").await.unwrap().unwrap();
    assert_eq!(
        (snapshot.status, snapshot.node.as_str()),
        (Status::Running, "review")
    );
    match runner
        .resume_with("f", flaky::Input::Review(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, .. }) => assert_eq!(node, "review"),
        other => panic!("{other:?}"),
    }
    let ticket = runner.resume("f").await.unwrap().into_state();
    assert_eq!(ticket.outcome.as_deref(), Some("escalated"));
    assert_eq!(DEFAULTS.load(Ordering::SeqCst), 2);
}

#[test]
fn the_node_spec_says_the_deadline() {
    use graph_runtime::Workflow as _;
    let review = tickets::Workflow::node("review").unwrap();
    assert!(review.interrupt);
    assert_eq!(review.wait_ms, Some(WAIT_MS));
    assert_eq!(tickets::Workflow::node("triage").unwrap().wait_ms, None);
}
