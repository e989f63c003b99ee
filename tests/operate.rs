//! What operators do to sessions, through the real runner on `MemoryStore` and
//! `SqliteStore`: decisions audited with who gave them and why, a failed step kept in history
//! with its error and run again by `resume`, cancellation, edits of a waiting or failed
//! session's state (compare-and-swap, refused while it runs), and forks with a new state.

use std::sync::atomic::{AtomicU32, Ordering};

use graph_runtime::prelude::*;
use graph_runtime::store::{Audit, AuditKind, InputSource, Store as _};
use graph_runtime::{CheckpointInfo, Error, Status};
use serde::{Deserialize, Serialize};

#[path = "support/postgres.rs"]
mod postgres;

/// Failures still to come of `charge`, per test (tests run in parallel).
static FAILURES: [AtomicU32; 16] = [const { AtomicU32::new(0) }; 16];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub slot: usize,
    pub amount: u64,
    pub approved: Option<bool>,
    pub charged: bool,
    pub loops: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Approve,
    Reject { reason: String },
}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> review);
    edge!(review -> charge);
    edge!(charge -> END);

    #[node(interrupt)]
    async fn review(o: &mut Order, decision: Decision) {
        o.approved = Some(decision == Decision::Approve);
    }

    #[node]
    async fn charge(o: &mut Order) -> Result<(), std::io::Error> {
        let left = &FAILURES[o.slot];
        if left.load(Ordering::SeqCst) > 0 {
            left.fetch_sub(1, Ordering::SeqCst);
            return Err(std::io::Error::other("card declined by the bank"));
        }
        o.charged = true;
        Ok(())
    }
}

#[workflow(state = Order)]
pub mod looping {
    use super::*;

    edge!(START -> spin);
    edge!(spin -> spin | END);

    #[node]
    async fn spin(o: &mut Order) -> spin::Next {
        o.loops += 1;
        spin::Next::Spin
    }
}

fn order(slot: usize, amount: u64) -> Order {
    Order {
        slot,
        amount,
        ..Order::default()
    }
}

fn audits(history: &[CheckpointInfo]) -> Vec<&Audit> {
    history.iter().filter_map(|c| c.audit.as_ref()).collect()
}

#[tokio::test]
async fn a_decision_is_audited_with_its_actor_and_note_and_a_plain_one_without() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    runner.start("o-1", order(0, 10)).await.unwrap();
    runner
        .resume_with("o-1", checkout::Input::Review(Decision::Approve))
        .by("alice")
        .note("limit raised")
        .await
        .unwrap();
    runner.start("o-2", order(0, 10)).await.unwrap();
    runner
        .resume_with("o-2", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap();

    let history = runner.history("o-1").await.unwrap();
    let audits = audits(&history);
    assert_eq!(audits.len(), 1, "{history:#?}");
    assert_eq!(
        audits[0].kind,
        AuditKind::Input {
            node: "review".into(),
            source: InputSource::Caller
        }
    );
    assert_eq!(audits[0].actor.as_deref(), Some("alice"));
    assert_eq!(audits[0].note.as_deref(), Some("limit raised"));

    let plain = runner.history("o-2").await.unwrap();
    let plain = audits_of(&plain);
    assert_eq!(plain.len(), 1);
    assert_eq!(
        (plain[0].actor.as_ref(), plain[0].note.as_ref()),
        (None, None)
    );
}

fn audits_of(history: &[CheckpointInfo]) -> Vec<Audit> {
    audits(history).into_iter().cloned().collect()
}

#[tokio::test]
async fn a_failed_step_is_kept_with_its_error_and_resume_runs_it_again() {
    failed_step(MemoryStore::new(), 1).await;
}

#[tokio::test]
async fn a_failed_step_is_kept_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    failed_step(SqliteStore::open(dir.path().join("f.db")).unwrap(), 8).await;
}

#[tokio::test]
async fn a_failed_step_is_kept_on_postgres() {
    let store = graph_runtime::PostgresStore::connect(&postgres::database().await)
        .await
        .unwrap();
    failed_step(store, 9).await;
}

async fn failed_step<S: graph_runtime::store::Store + Clone>(store: S, slot: usize) {
    let runner = Runner::new(checkout::Workflow, store);
    runner.start("o-1", order(slot, 10)).await.unwrap();
    FAILURES[slot].store(1, Ordering::SeqCst);
    let error = runner
        .resume_with("o-1", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Node { node: "charge", .. }),
        "{error}"
    );

    // The session stays at its last checkpoint (a failed step changes no chain); the store keeps the failure
    // beside it, and its session record says it failed.
    let snapshot = runner.state("o-1").await.unwrap().unwrap();
    assert_eq!(snapshot.status, Status::Running);
    assert!(!snapshot.state.charged);
    let record = runner.store().session("o-1").await.unwrap().unwrap();
    assert_eq!((record.status, record.seq), (Status::Failed, snapshot.seq));
    let history = runner.history("o-1").await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.seq, snapshot.seq);
    match &last.failure.as_ref().expect("the failure is kept").kind {
        AuditKind::Failed { node, error } => {
            assert_eq!(node, "charge");
            assert!(error.contains("card declined by the bank"), "{error}");
        }
        other => panic!("{other:?}"),
    }

    let outcome = runner.resume("o-1").await.unwrap();
    let Outcome::Completed(state) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(state.charged);
    assert_eq!(state.approved, Some(true));
    let record = runner.store().session("o-1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Completed);
}

#[tokio::test]
async fn a_step_limit_is_kept_as_a_failure() {
    let runner = Runner::new(looping::Workflow, MemoryStore::new()).max_steps(5);
    let error = runner.start("l-1", order(2, 0)).await.unwrap_err();
    assert!(matches!(error, Error::StepLimit { .. }), "{error}");
    let record = runner.store().session("l-1").await.unwrap().unwrap();
    assert_eq!(record.status, Status::Failed);
    let history = runner.history("l-1").await.unwrap();
    assert!(
        matches!(
            &history.last().unwrap().failure.as_ref().unwrap().kind,
            AuditKind::Failed { error, .. } if error.contains("step limit")
        ),
        "{history:#?}"
    );
}

#[tokio::test]
async fn cancel_stops_a_session_for_good_and_is_refused_when_it_cannot_apply() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    runner.start("o-1", order(3, 10)).await.unwrap();
    let snapshot = runner
        .cancel(
            "o-1",
            Audit::new(AuditKind::Cancelled).by("bob").note("duplicate"),
        )
        .await
        .unwrap();
    assert_eq!(snapshot.status, Status::Cancelled);
    assert_eq!(snapshot.state, order(3, 10));

    assert!(matches!(runner.resume("o-1").await, Err(Error::Cancelled(s)) if s == "o-1"));
    let error = runner
        .resume_with("o-1", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotWaiting { actual, .. } if actual.contains("cancelled")),
        "{error}"
    );
    let again = runner
        .cancel("o-1", Audit::new(AuditKind::Cancelled))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &again,
            Error::Refused {
                action: "cancel",
                ..
            }
        ),
        "{again}"
    );
    assert_eq!(
        again.to_string(),
        "cannot cancel session `o-1`: it was cancelled"
    );

    let history = runner.history("o-1").await.unwrap();
    let cancelled = history.last().unwrap().audit.clone().unwrap();
    assert_eq!(cancelled.kind, AuditKind::Cancelled);
    assert_eq!(cancelled.actor.as_deref(), Some("bob"));
    assert_eq!(cancelled.note.as_deref(), Some("duplicate"));

    // Still readable, and forkable.
    assert_eq!(
        runner.state("o-1").await.unwrap().unwrap().status,
        Status::Cancelled
    );
    assert!(matches!(
        runner
            .cancel("nobody", Audit::new(AuditKind::Cancelled))
            .await,
        Err(Error::SessionNotFound(_))
    ));

    // A completed session cannot be cancelled.
    runner.start("o-2", order(3, 10)).await.unwrap();
    runner
        .resume_with("o-2", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap();
    let done = runner
        .cancel("o-2", Audit::new(AuditKind::Cancelled))
        .await
        .unwrap_err();
    assert_eq!(
        done.to_string(),
        "cannot cancel session `o-2`: it has completed"
    );
}

#[tokio::test]
async fn an_edit_of_a_waiting_session_is_compare_and_swap_and_audited() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    runner.start("o-1", order(4, 10)).await.unwrap();
    let before = runner.state("o-1").await.unwrap().unwrap();

    let diff = r#"[{"path":"/amount","old":10,"new":12}]"#;
    let edit = Audit::new(AuditKind::Edit { diff: diff.into() }).by("carol");
    // The wrong expected checkpoint: nothing written.
    let stale = runner
        .edit("o-1", before.seq + 7, order(4, 12), edit.clone())
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::Conflict { .. }), "{stale}");
    assert_eq!(runner.history("o-1").await.unwrap().len(), 1);

    let after = runner
        .edit("o-1", before.seq, order(4, 12), edit)
        .await
        .unwrap();
    assert_eq!(after.seq, before.seq + 1);
    assert_eq!(after.state.amount, 12);
    assert_eq!(after.status, before.status);
    assert_eq!(after.waiting, ["review"]);
    let history = runner.history("o-1").await.unwrap();
    let audit = history.last().unwrap().audit.clone().unwrap();
    assert_eq!(audit.kind, AuditKind::Edit { diff: diff.into() });
    assert_eq!(audit.actor.as_deref(), Some("carol"));

    // The decision applies to the edited state.
    let outcome = runner
        .resume_with("o-1", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap();
    let Outcome::Completed(state) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(state.amount, 12);

    // A completed session cannot be edited.
    let seq = runner.state("o-1").await.unwrap().unwrap().seq;
    let refused = runner
        .edit(
            "o-1",
            seq,
            order(4, 1),
            Audit::new(AuditKind::Edit {
                diff: String::new(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "cannot edit session `o-1`: it has completed"
    );
}

#[tokio::test]
async fn a_failed_session_can_be_edited_then_resumed() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    runner.start("o-1", order(5, 10)).await.unwrap();
    FAILURES[5].store(1, Ordering::SeqCst);
    runner
        .resume_with("o-1", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap_err();
    let failed = runner.state("o-1").await.unwrap().unwrap();
    assert_eq!(failed.status, Status::Running);
    let mut fixed = failed.state.clone();
    fixed.amount = 9;
    let edited = runner
        .edit(
            "o-1",
            failed.seq,
            fixed,
            Audit::new(AuditKind::Edit {
                diff: "amount".into(),
            }),
        )
        .await
        .unwrap();
    assert_eq!(edited.status, Status::Running);
    assert_eq!(edited.seq, failed.seq + 1);
    let Outcome::Completed(state) = runner.resume("o-1").await.unwrap() else {
        panic!("not completed")
    };
    assert_eq!((state.amount, state.charged), (9, true));
}

#[tokio::test]
async fn fork_with_a_new_state_leaves_the_origin_and_records_where_it_came_from() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    runner.start("o-1", order(6, 10)).await.unwrap();
    let seq = runner.state("o-1").await.unwrap().unwrap().seq;
    let fork = runner
        .fork_with(
            "o-1",
            seq,
            "o-1b",
            order(6, 99),
            Audit::new(AuditKind::Cancelled).by("dave"),
        )
        .await
        .unwrap();
    assert_eq!(fork.state.amount, 99);
    assert_eq!(runner.state("o-1").await.unwrap().unwrap().state.amount, 10);
    let history = runner.history("o-1b").await.unwrap();
    let audit = history[0].audit.clone().unwrap();
    assert_eq!(
        audit.kind,
        AuditKind::Forked {
            from: "o-1".into(),
            seq
        }
    );
    assert_eq!(audit.actor.as_deref(), Some("dave"));
    let Outcome::Completed(state) = runner
        .resume_with("o-1b", checkout::Input::Review(Decision::Approve))
        .await
        .unwrap()
    else {
        panic!("not completed")
    };
    assert_eq!(state.amount, 99);
}

#[tokio::test]
async fn audits_survive_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("o.db")).unwrap();
    let runner = Runner::new(checkout::Workflow, store);
    runner.start("o-1", order(7, 10)).await.unwrap();
    runner
        .resume_with(
            "o-1",
            checkout::Input::Review(Decision::Reject {
                reason: "fraud".into(),
            }),
        )
        .by("erin")
        .await
        .unwrap();
    let history = runner.history("o-1").await.unwrap();
    let audits = audits_of(&history);
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].actor.as_deref(), Some("erin"));
}
