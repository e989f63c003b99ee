//! Workers sharing one store: enqueue, claim, run, answer inputs, shut down, lose leases.
//! Runs on every store (memory, SQLite file, a throwaway PostgreSQL).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{CancellationToken, Error, Status, Worker};
use serde::{Deserialize, Serialize};

#[path = "support/postgres.rs"]
mod postgres;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total: u64,
    pub steps: Vec<String>,
    pub approved: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject,
}

/// How many times `charge` ran, across every worker of the test.
static CHARGES: AtomicU32 = AtomicU32::new(0);

#[workflow(state = Order)]
pub mod orders {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge);
    edge!(review -> charge | END);
    edge!(charge -> END);

    #[node]
    async fn validate(o: &mut Order) -> validate::Next {
        o.steps.push("validate".into());
        if o.total > 100 {
            validate::Next::Review
        } else {
            validate::Next::Charge
        }
    }

    #[node(interrupt)]
    async fn review(o: &mut Order, decision: Decision) -> review::Next {
        o.steps.push("review".into());
        match decision {
            Decision::Approve => {
                o.approved = Some(true);
                review::Next::Charge
            }
            Decision::Reject => {
                o.approved = Some(false);
                review::Next::End
            }
        }
    }

    #[node]
    async fn charge(o: &mut Order, ctx: &NodeCtx) {
        CHARGES.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2)).await;
        o.steps.push(format!("charge {}", ctx.idempotency_key()));
    }
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_completed<S: Store + Clone>(
    runner: &Runner<orders::Workflow, S>,
    ids: &[String],
) -> bool {
    for id in ids {
        match runner.state(id).await.expect("state") {
            Some(s) if s.status == Status::Completed => {}
            _ => return false,
        }
    }
    true
}

async fn three_workers_share_the_work<S: Store + Clone>(store: S) {
    let runner = Runner::new(orders::Workflow, store.clone());
    let shutdown = CancellationToken::new();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let worker = Worker::new(store.clone())
                .register(runner.clone())
                .concurrency(4)
                .lease_ttl(Duration::from_secs(5))
                .poll_interval(Duration::from_millis(100))
                .owner(format!("w{i}"));
            tokio::spawn(worker.run(shutdown.clone()))
        })
        .collect();
    let ids: Vec<String> = (0..30).map(|i| format!("order-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let total = if i % 3 == 0 { 500 } else { 50 };
        runner
            .enqueue(
                id,
                Order {
                    total,
                    ..Order::default()
                },
            )
            .await
            .expect("enqueue");
    }
    // The big orders wait for review; answer them as a web handler would.
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        wait_until("the review", || async {
            matches!(runner.state(id).await.unwrap(), Some(s) if s.waiting == ["review"])
        })
        .await;
        let decision = if i % 2 == 0 {
            Decision::Approve
        } else {
            Decision::Reject
        };
        runner
            .enqueue_input(id, orders::Input::Review(decision))
            .await
            .expect("enqueue_input");
    }
    wait_until("every order", || all_completed(&runner, &ids)).await;
    shutdown.cancel();
    for w in workers {
        w.await.expect("worker task").expect("worker");
    }
    for (i, id) in ids.iter().enumerate() {
        let s = runner.state(id).await.unwrap().unwrap().state;
        let charged = s.steps.iter().filter(|s| s.starts_with("charge")).count();
        if i % 3 == 0 && i % 2 == 1 {
            assert_eq!(s.approved, Some(false), "{id}");
            assert_eq!(charged, 0, "{id}: {:?}", s.steps);
        } else {
            assert_eq!(charged, 1, "{id}: {:?}", s.steps);
        }
        // The chain is gapless and never forked.
        let seqs: Vec<u64> = runner
            .history(id)
            .await
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{id}: {seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_three_workers_share_the_work() {
    three_workers_share_the_work(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_three_workers_share_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    three_workers_share_the_work(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_three_workers_share_the_work() {
    let conninfo = postgres::database().await;
    let store = graph_runtime::PostgresStore::connect(&conninfo)
        .await
        .unwrap();
    three_workers_share_the_work(store).await;
}

#[tokio::test]
async fn enqueue_refuses_an_existing_session_and_input_checks_waiting() {
    let runner = Runner::new(orders::Workflow, MemoryStore::new());
    runner.enqueue("a", Order::default()).await.unwrap();
    assert!(matches!(
        runner.enqueue("a", Order::default()).await,
        Err(Error::SessionExists(_))
    ));
    // Not waiting yet: nothing ran.
    match runner
        .enqueue_input("a", orders::Input::Review(Decision::Approve))
        .await
    {
        Err(Error::NotWaiting { node, .. }) => assert_eq!(node, "review"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        runner
            .enqueue_input("nope", orders::Input::Review(Decision::Approve))
            .await,
        Err(Error::SessionNotFound(_))
    ));
}

#[tokio::test]
async fn bad_worker_settings_are_typed_errors() {
    let store = MemoryStore::new();
    let runner = Runner::new(orders::Workflow, store.clone());
    let token = CancellationToken::new();
    for worker in [
        Worker::new(store.clone()),
        Worker::new(store.clone())
            .register(runner.clone())
            .concurrency(0),
        Worker::new(store.clone())
            .register(runner.clone())
            .lease_ttl(Duration::ZERO),
        Worker::new(store.clone())
            .register(runner.clone())
            .register(runner.clone()),
    ] {
        assert!(matches!(
            worker.run(token.clone()).await,
            Err(Error::InvalidConfig(_))
        ));
    }
}
