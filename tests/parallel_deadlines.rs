//! Deadlines on interrupt branches of a parallel region: legal and finance answer in
//! parallel, each with its own `#[node(interrupt, wait_ms = N)]`. A worker runs each branch
//! with `None` once its own deadline passed; an answer given before wins. On every store
//! (memory, SQLite file, a throwaway PostgreSQL). Timings have wide margins: nothing here
//! measures speed; the lower bounds say that no default ran before its deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{AuditKind, CancellationToken, Error, InputSource, Snapshot, Status, Worker};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

#[path = "support/postgres.rs"]
mod postgres;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Purchase {
    /// Legal's default hangs (the escalation service does not answer) the first time it
    /// runs: the worker running it is then dropped, as a crash would.
    pub hang_legal_default: bool,
    pub legal: Option<String>,
    pub finance: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

/// Legal's deadline, in milliseconds.
const LEGAL_MS: u64 = 300;
/// Finance's deadline, in milliseconds.
const FINANCE_MS: u64 = 900;

/// How many times each (session, branch) ran, by session id.
static RUNS: Mutex<Option<HashMap<(String, &'static str), u32>>> = Mutex::new(None);

fn ran(session: &str, node: &'static str) -> u32 {
    let mut runs = RUNS.lock().expect("runs");
    let runs = runs.get_or_insert_default();
    let count = runs.entry((session.to_owned(), node)).or_default();
    *count += 1;
    *count
}

fn runs(session: &str, node: &'static str) -> u32 {
    let runs = RUNS.lock().expect("runs");
    runs.as_ref()
        .and_then(|r| r.get(&(session.to_owned(), node)).copied())
        .unwrap_or(0)
}

fn verdict(decision: Option<Decision>) -> String {
    match decision {
        Some(Decision::Approve) => "approved",
        Some(Decision::Reject) => "rejected",
        None => "escalated",
    }
    .into()
}

#[workflow(state = Purchase)]
pub mod approvals {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> legal & finance);
    edge!(legal & finance -> decide);
    edge!(decide -> END);

    #[node]
    async fn intake(p: &mut Purchase) {
        p.legal = None;
    }

    #[node(interrupt, wait_ms = 300)]
    async fn legal(p: &Purchase, ctx: &NodeCtx, decision: Option<Decision>) -> String {
        let count = ran(ctx.session_id(), "legal");
        if decision.is_none() && p.hang_legal_default && count == 1 {
            std::future::pending::<()>().await;
        }
        verdict(decision)
    }

    #[node(interrupt, wait_ms = 900)]
    async fn finance(p: &Purchase, ctx: &NodeCtx, decision: Option<Decision>) -> String {
        ran(ctx.session_id(), "finance");
        let _ = p;
        verdict(decision)
    }

    #[node]
    async fn decide(p: &mut Purchase, legal: String, finance: String) {
        p.legal = Some(legal);
        p.finance = Some(finance);
    }
}

type Run<S> = Runner<approvals::Workflow, S>;

/// A worker of `runner`'s workflow that polls often (the deadlines are short).
fn worker<S: Store + Clone>(
    runner: &Run<S>,
    shutdown: &CancellationToken,
    lease_ttl: Duration,
) -> JoinHandle<()> {
    let worker = Worker::new(runner.store().clone())
        .register(runner.clone())
        .concurrency(4)
        .lease_ttl(lease_ttl)
        .poll_interval(Duration::from_millis(50));
    let shutdown = shutdown.clone();
    tokio::spawn(async move { worker.run(shutdown).await.expect("worker") })
}

async fn stop(shutdown: CancellationToken, worker: JoinHandle<()>) {
    shutdown.cancel();
    worker.await.expect("worker task");
}

/// Polls `id` until `done` says yes of its snapshot; returns it.
async fn wait_for<S: Store + Clone>(
    runner: &Run<S>,
    id: &str,
    what: &str,
    done: impl Fn(&Snapshot<Purchase>) -> bool,
) -> Snapshot<Purchase> {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let snapshot = runner.state(id).await.expect("state").expect("session");
        if done(&snapshot) {
            return snapshot;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {id} to be {what}: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn completed<S: Store + Clone>(runner: &Run<S>, id: &str) -> Purchase {
    wait_for(runner, id, "completed", |s| s.status == Status::Completed)
        .await
        .state
}

/// The sources of the inputs `node` was audited with, oldest first.
async fn audits<S: Store + Clone>(runner: &Run<S>, id: &str, node: &str) -> Vec<InputSource> {
    runner
        .history(id)
        .await
        .expect("history")
        .into_iter()
        .filter_map(|c| c.audit)
        .filter_map(|audit| match audit.kind {
            AuditKind::Input { node: n, source } if n == node => Some(source),
            _ => None,
        })
        .collect()
}

async fn wake_at<S: Store>(store: &S, id: &str) -> Option<SystemTime> {
    store
        .session(id)
        .await
        .expect("session record")
        .expect("a record")
        .wake_at
}

/// Asserts that `at` is `after` past `from`, within a wide margin (the store's clock).
fn about(at: Option<SystemTime>, from: SystemTime, after: Duration, what: &str) {
    let at = at.unwrap_or_else(|| panic!("{what}: no wake time"));
    let slack = Duration::from_millis(250);
    assert!(
        at + slack >= from + after && at <= from + after + Duration::from_secs(5),
        "{what}: wakes at {at:?}, expected {after:?} after {from:?}"
    );
}

/// Neither approver answers: legal's default runs after 300 ms, finance's after 900 ms,
/// each audited as given by its deadline; the session's wake-up follows the next deadline.
async fn neither_answers<S: Store + Clone>(store: S, prefix: &str) {
    let id = &format!("{prefix}-p-1");
    let runner = Runner::new(approvals::Workflow, store.clone());
    let before = SystemTime::now();
    let started = tokio::time::Instant::now();
    let outcome = runner.start(id, Purchase::default()).await.unwrap();
    assert!(matches!(
        outcome,
        Outcome::Interrupted { node: "legal", .. }
    ));
    let snapshot = runner.state(id).await.unwrap().unwrap();
    assert_eq!(snapshot.waiting, ["legal", "finance"]);
    // The durable wake-up is legal's deadline, the earlier one.
    about(
        wake_at(&store, id).await,
        before,
        Duration::from_millis(LEGAL_MS),
        "legal's deadline",
    );

    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let after_legal = wait_for(&runner, id, "waiting at finance only", |s| {
        s.waiting == ["finance"]
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(LEGAL_MS));
    assert!(matches!(after_legal.status, Status::Waiting { .. }));
    // Then finance's deadline, counted from the same start.
    about(
        wake_at(&store, id).await,
        before,
        Duration::from_millis(FINANCE_MS),
        "finance's deadline",
    );
    let purchase = completed(&runner, id).await;
    assert!(started.elapsed() >= Duration::from_millis(FINANCE_MS));
    assert_eq!(purchase.legal.as_deref(), Some("escalated"));
    assert_eq!(purchase.finance.as_deref(), Some("escalated"));
    assert_eq!(audits(&runner, id, "legal").await, [InputSource::Deadline]);
    assert_eq!(
        audits(&runner, id, "finance").await,
        [InputSource::Deadline]
    );
    assert_eq!(wake_at(&store, id).await, None, "completed: never again");
    // A late answer finds nothing waiting.
    match runner
        .resume_with(id, approvals::Input::Legal(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, .. }) => assert_eq!(node, "legal"),
        other => panic!("{other:?}"),
    }
    stop(shutdown, worker).await;
}

/// Finance answers in-process before its deadline (its input is kept), legal by
/// `enqueue_input` in another session; the branch nobody answers times out on its own.
async fn one_answers_the_other_times_out<S: Store + Clone>(store: S, prefix: &str) {
    let finance_answers = &format!("{prefix}-finance-answers");
    let legal_answers = &format!("{prefix}-legal-answers");
    let runner = Runner::new(approvals::Workflow, store.clone());
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let started = tokio::time::Instant::now();

    runner
        .start(finance_answers, Purchase::default())
        .await
        .unwrap();
    let outcome = runner
        .resume_with(
            finance_answers,
            approvals::Input::Finance(Decision::Approve),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        Outcome::Interrupted { node: "legal", .. }
    ));
    let purchase = completed(&runner, finance_answers).await;
    assert!(started.elapsed() >= Duration::from_millis(LEGAL_MS));
    assert_eq!(purchase.legal.as_deref(), Some("escalated"));
    assert_eq!(purchase.finance.as_deref(), Some("approved"));
    assert_eq!(
        audits(&runner, finance_answers, "finance").await,
        [InputSource::Caller]
    );
    assert_eq!(
        audits(&runner, finance_answers, "legal").await,
        [InputSource::Deadline]
    );
    assert_eq!(runs(finance_answers, "finance"), 1);

    let started = tokio::time::Instant::now();
    runner
        .start(legal_answers, Purchase::default())
        .await
        .unwrap();
    runner
        .enqueue_input(legal_answers, approvals::Input::Legal(Decision::Reject))
        .await
        .unwrap();
    // The worker runs legal with its answer; finance still waits for its own deadline.
    wait_for(&runner, legal_answers, "waiting at finance only", |s| {
        s.waiting == ["finance"]
    })
    .await;
    let purchase = completed(&runner, legal_answers).await;
    assert!(started.elapsed() >= Duration::from_millis(FINANCE_MS));
    assert_eq!(purchase.legal.as_deref(), Some("rejected"));
    assert_eq!(purchase.finance.as_deref(), Some("escalated"));
    assert_eq!(
        audits(&runner, legal_answers, "legal").await,
        [InputSource::Caller]
    );
    assert_eq!(
        audits(&runner, legal_answers, "finance").await,
        [InputSource::Deadline]
    );
    assert_eq!(runs(legal_answers, "legal"), 1);
    stop(shutdown, worker).await;
}

/// Answers race the worker at legal's deadline: the deadline passed while no worker ran,
/// then a worker starts as the answers are enqueued. Whichever is recorded first wins:
/// legal runs once, with the answer or without it, never both, and a refused answer says
/// the wait was over.
async fn an_answer_races_the_deadline<S: Store + Clone>(store: S, prefix: &str) {
    let runner = Runner::new(approvals::Workflow, store.clone());
    let ids: Vec<String> = (0..4).map(|i| format!("{prefix}-race-{i}")).collect();
    for id in &ids {
        runner.start(id, Purchase::default()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(LEGAL_MS + 50)).await;
    // Past legal's deadline, an in-process `resume` runs no default: only a worker does.
    for id in &ids {
        assert!(matches!(
            runner.resume(id).await.unwrap(),
            Outcome::Interrupted { node: "legal", .. }
        ));
        let snapshot = runner.state(id).await.unwrap().unwrap();
        assert_eq!(snapshot.waiting, ["legal", "finance"], "{id}");
        assert_eq!(runs(id, "legal"), 0, "{id}");
    }
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let mut answered = Vec::new();
    for id in &ids {
        let result = runner
            .enqueue_input(id, approvals::Input::Legal(Decision::Approve))
            .await;
        match result {
            Ok(()) => answered.push(true),
            // The worker recorded the deadline first: legal runs (or ran) without it.
            Err(Error::NotWaiting { node, actual, .. }) => {
                assert_eq!(node, "legal");
                assert!(
                    actual.contains("was over") || actual == "it waits at `finance`",
                    "{actual}"
                );
                answered.push(false);
            }
            Err(e) => panic!("{id}: {e:?}"),
        }
    }
    for (id, answered) in ids.iter().zip(answered) {
        let purchase = completed(&runner, id).await;
        let expected = if answered { "approved" } else { "escalated" };
        assert_eq!(purchase.legal.as_deref(), Some(expected), "{id}");
        assert_eq!(purchase.finance.as_deref(), Some("escalated"), "{id}");
        let source = if answered {
            InputSource::Caller
        } else {
            InputSource::Deadline
        };
        assert_eq!(audits(&runner, id, "legal").await, [source], "{id}");
        assert_eq!(runs(id, "legal"), 1, "{id}");
    }
    stop(shutdown, worker).await;
}

/// The same race with answers given in-process (`resume_with`): an answer recorded first
/// runs here, and the worker leaves the session to it; one recorded after the deadline's
/// is `NotWaiting`. Either way legal runs once.
async fn an_in_process_answer_races_the_deadline<S: Store + Clone>(store: S, prefix: &str) {
    let runner = Runner::new(approvals::Workflow, store.clone());
    let ids: Vec<String> = (0..4).map(|i| format!("{prefix}-direct-{i}")).collect();
    for id in &ids {
        runner.start(id, Purchase::default()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(LEGAL_MS + 50)).await;
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let mut answered = Vec::new();
    for id in &ids {
        let result = runner
            .resume_with(id, approvals::Input::Legal(Decision::Approve))
            .await;
        match result {
            Ok(Outcome::Interrupted { node, .. }) => {
                assert_eq!(node, "finance", "{id}");
                answered.push(true);
            }
            Err(Error::NotWaiting { node, actual, .. }) => {
                assert_eq!(node, "legal");
                assert!(
                    actual.contains("was over") || actual == "it waits at `finance`",
                    "{actual}"
                );
                answered.push(false);
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    for (id, answered) in ids.iter().zip(answered) {
        let purchase = completed(&runner, id).await;
        let expected = if answered { "approved" } else { "escalated" };
        assert_eq!(purchase.legal.as_deref(), Some(expected), "{id}");
        let source = if answered {
            InputSource::Caller
        } else {
            InputSource::Deadline
        };
        assert_eq!(audits(&runner, id, "legal").await, [source], "{id}");
        // A worker that claimed the session at legal's deadline leaves an answer given
        // in-process to the answering call (tests/deadline_races.rs forces each
        // interleaving): legal runs once either way.
        assert_eq!(runs(id, "legal"), 1, "{id}");
    }
    stop(shutdown, worker).await;
}

/// The worker that claimed the session at legal's deadline dies (dropped) while legal's
/// default runs: the deadline is not lost (a late answer is refused), it is not recorded
/// twice, and the next worker runs legal's default again once the lease expired.
async fn a_worker_dies_at_the_deadline<S: Store + Clone>(store: S, prefix: &str) {
    let id = &format!("{prefix}-crash");
    let runner = Runner::new(approvals::Workflow, store.clone());
    let purchase = Purchase {
        hang_legal_default: true,
        ..Purchase::default()
    };
    runner.start(id, purchase).await.unwrap();
    let shutdown = CancellationToken::new();
    let lease_ttl = Duration::from_secs(1);
    let first = worker(&runner, &shutdown, lease_ttl);
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while runs(id, "legal") == 0 {
        assert!(tokio::time::Instant::now() < give_up, "legal never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The crash: the worker and its run are dropped mid-node.
    first.abort();
    assert!(first.await.is_err_and(|e| e.is_cancelled()));
    // The deadline's record is durable: legal does not wait any more.
    match runner
        .resume_with(id, approvals::Input::Legal(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, actual, .. }) => {
            assert_eq!(node, "legal");
            assert!(actual.contains("over"), "{actual}");
        }
        other => panic!("{other:?}"),
    }
    let second = worker(&runner, &shutdown, lease_ttl);
    let purchase = completed(&runner, id).await;
    assert_eq!(purchase.legal.as_deref(), Some("escalated"));
    assert_eq!(purchase.finance.as_deref(), Some("escalated"));
    assert_eq!(runs(id, "legal"), 2, "once before the crash, once after");
    assert_eq!(audits(&runner, id, "legal").await, [InputSource::Deadline]);
    assert_eq!(
        audits(&runner, id, "finance").await,
        [InputSource::Deadline]
    );
    stop(shutdown, second).await;
}

/// An operator's edit of the waiting session (a new whole checkpoint of the region) keeps
/// the branches' deadlines, counted from when they began to wait: the worker woken at
/// legal's deadline runs its default at once, rather than finding it not due and waiting
/// again (which would save the wait again before the deadline's record).
async fn an_edit_keeps_the_deadlines<S: Store + Clone>(store: S, prefix: &str) {
    let id = &format!("{prefix}-edited");
    let runner = Runner::new(approvals::Workflow, store.clone());
    let before = SystemTime::now();
    runner.start(id, Purchase::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(LEGAL_MS / 2)).await;
    let waiting = runner.state(id).await.unwrap().unwrap();
    let edit = graph_runtime::Audit::new(AuditKind::Edit {
        diff: r#"[{"path":"/finance","old":null,"new":"pending"}]"#.into(),
    })
    .by("carol");
    let edited = Purchase {
        finance: Some("pending".into()),
        ..waiting.state.clone()
    };
    let after = runner.edit(id, waiting.seq, edited, edit).await.unwrap();
    assert_eq!(after.waiting, ["legal", "finance"]);
    about(
        wake_at(&store, id).await,
        before,
        Duration::from_millis(LEGAL_MS),
        "legal's deadline after the edit",
    );
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let purchase = completed(&runner, id).await;
    assert_eq!(purchase.legal.as_deref(), Some("escalated"));
    assert_eq!(purchase.finance.as_deref(), Some("escalated"));
    let history = runner.history(id).await.unwrap();
    let edit_at = history
        .iter()
        .position(|c| matches!(&c.audit, Some(a) if matches!(a.kind, AuditKind::Edit { .. })))
        .expect("the edit is in the history");
    let next = history[edit_at + 1].audit.clone().map(|a| a.kind);
    assert_eq!(
        next,
        Some(AuditKind::Input {
            node: "legal".into(),
            source: InputSource::Deadline
        }),
        "{history:?}"
    );
    stop(shutdown, worker).await;
}

/// Enqueued (never run in-process): the worker runs `intake`, the region waits with both
/// deadlines, and the same worker runs each default once its own passes.
async fn an_enqueued_session_gets_both_defaults<S: Store + Clone>(store: S, prefix: &str) {
    let id = &format!("{prefix}-queued");
    let runner = Runner::new(approvals::Workflow, store.clone());
    let shutdown = CancellationToken::new();
    let worker = worker(&runner, &shutdown, Duration::from_secs(5));
    let started = tokio::time::Instant::now();
    runner.enqueue(id, Purchase::default()).await.unwrap();
    let purchase = completed(&runner, id).await;
    assert!(started.elapsed() >= Duration::from_millis(FINANCE_MS));
    assert_eq!(purchase.legal.as_deref(), Some("escalated"));
    assert_eq!(purchase.finance.as_deref(), Some("escalated"));
    assert_eq!(audits(&runner, id, "legal").await, [InputSource::Deadline]);
    assert_eq!(
        audits(&runner, id, "finance").await,
        [InputSource::Deadline]
    );
    assert_eq!((runs(id, "legal"), runs(id, "finance")), (1, 1));
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
                    super::$scenario(graph_runtime::MemoryStore::new(), "memory").await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let (store, _dir) = super::sqlite().await;
                    super::$scenario(store, "sqlite").await;
                }
            )*
        }
        mod postgres_store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::pg().await, "postgres").await;
                }
            )*
        }
    };
}

on_every_store!(
    neither_answers,
    one_answers_the_other_times_out,
    an_answer_races_the_deadline,
    an_in_process_answer_races_the_deadline,
    a_worker_dies_at_the_deadline,
    an_edit_keeps_the_deadlines,
    an_enqueued_session_gets_both_defaults,
);

#[test]
fn each_branch_has_its_own_deadline_in_its_spec() {
    use graph_runtime::Workflow as _;
    let legal = approvals::Workflow::node("legal").unwrap();
    let finance = approvals::Workflow::node("finance").unwrap();
    assert!(legal.interrupt && finance.interrupt);
    assert_eq!(legal.wait_ms, Some(LEGAL_MS));
    assert_eq!(finance.wait_ms, Some(FINANCE_MS));
}
