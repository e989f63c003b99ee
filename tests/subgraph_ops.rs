//! Operating on parents and their child sessions: cancel and delete reach the children (and
//! theirs), a child that ends wakes its waiting parent for workers, an answer for a child
//! can be enqueued through its parent, the children's events reach the parent's listener
//! tagged with their path, and a parent's history and snapshots name the child they wait
//! for. On every store where the store matters (memory, SQLite file, a throwaway
//! PostgreSQL).
//!
//! Each scenario on each store has its own tag, and counts node runs under it.

use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::store::{Audit, AuditKind, SessionFilter, Store};
use graph_runtime::{CancellationToken, Error, Event, Status, StatusKind, Worker};
use serde::{Deserialize, Serialize};

#[path = "support/postgres.rs"]
mod postgres;
#[macro_use]
#[path = "support/every_store.rs"]
mod every_store;

#[path = "support/node_runs.rs"]
mod node_runs;
use node_runs::{fail_next, fails, ran, runs};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Question {
    pub tag: String,
    pub text: String,
    pub sources: Vec<String>,
    pub summary: String,
}

/// The leaf: waits for a reviewer between its two nodes; `summarize` may be told to fail.
#[workflow(state = Question)]
pub mod review_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> review);
    edge!(review -> summarize);
    edge!(summarize -> END);

    #[node]
    async fn search(q: &mut Question, ctx: &NodeCtx) {
        ran(&q.tag, "search");
        ctx.emit(format!("searching {}", q.text));
        q.sources.push(format!("kb:{}", q.text));
    }

    #[node(interrupt)]
    async fn review(q: &mut Question, verdict: String) {
        ran(&q.tag, "review");
        q.sources.push(format!("reviewer:{verdict}"));
    }

    #[node]
    async fn summarize(q: &mut Question) -> Result<(), String> {
        ran(&q.tag, "summarize");
        if fails(&q.tag, "summarize") {
            return Err("the model is overloaded".into());
        }
        q.summary = format!("{} source(s) on {}", q.sources.len(), q.text);
        Ok(())
    }
}

/// The middle: one subgraph node that runs the leaf.
#[workflow(state = Question)]
pub mod research_agent {
    use super::*;

    edge!(START -> dig);
    edge!(dig -> END);

    #[node(subgraph = review_agent)]
    async fn dig(q: &mut Question, child: Child<review_agent::Workflow>) -> Result<(), NodeError> {
        ran(&q.tag, "dig");
        *q = child.run(q.clone()).await?;
        Ok(())
    }
}

/// A child that never waits.
#[workflow(state = Question)]
pub mod quick_agent {
    use super::*;

    edge!(START -> look_up);
    edge!(look_up -> END);

    #[node]
    async fn look_up(q: &mut Question) {
        ran(&q.tag, "look_up");
        q.summary = format!("quick: {}", q.text);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub tag: String,
    pub text: String,
    pub notes: String,
    pub reply: String,
}

fn question(t: &Ticket) -> Question {
    Question {
        tag: t.tag.clone(),
        text: t.text.clone(),
        ..Question::default()
    }
}

/// A parent whose child waits for a review: `triage` (1), `research` (2), `reply`.
#[workflow(state = Ticket)]
pub mod support {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> research);
    edge!(research -> reply);
    edge!(reply -> END);

    #[node]
    async fn triage(t: &mut Ticket) {
        ran(&t.tag, "triage");
    }

    #[node(subgraph = review_agent)]
    async fn research(
        t: &mut Ticket,
        child: Child<review_agent::Workflow>,
    ) -> Result<(), NodeError> {
        ran(&t.tag, "research");
        t.notes = child.run(question(t)).await?.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket) {
        ran(&t.tag, "reply");
        t.reply = format!("Thanks! {}", t.notes);
    }
}

/// A parent whose child has a child that waits: `research` (1) runs `research_agent`,
/// whose `dig` (1) runs `review_agent`.
#[workflow(state = Ticket)]
pub mod nested {
    use super::*;

    edge!(START -> research);
    edge!(research -> approve);
    edge!(approve -> END);

    #[node(subgraph = research_agent)]
    async fn research(
        t: &mut Ticket,
        child: Child<research_agent::Workflow>,
    ) -> Result<(), NodeError> {
        ran(&t.tag, "research");
        t.notes = child.run(question(t)).await?.summary;
        Ok(())
    }

    #[node(interrupt)]
    async fn approve(t: &mut Ticket, ok: bool) {
        t.reply = format!("approved: {ok}");
    }
}

/// A parent with a child that completes at once, then an interrupt of its own.
#[workflow(state = Ticket)]
pub mod quick_then_approve {
    use super::*;

    edge!(START -> look);
    edge!(look -> approve);
    edge!(approve -> END);

    #[node(subgraph = quick_agent)]
    async fn look(t: &mut Ticket, child: Child<quick_agent::Workflow>) -> Result<(), NodeError> {
        t.notes = child.run(question(t)).await?.summary;
        Ok(())
    }

    #[node(interrupt)]
    async fn approve(t: &mut Ticket, ok: bool) {
        t.reply = format!("approved: {ok}");
    }
}

fn ticket(tag: &str) -> Ticket {
    Ticket {
        tag: tag.to_owned(),
        text: "refunds".into(),
        ..Ticket::default()
    }
}

const REVIEWED: &str = "2 source(s) on refunds";

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

/// A worker of `store` running `runner`, polling often, until `shutdown`.
fn worker<S: Store + Clone>(store: &S, owner: &str) -> Worker<S> {
    Worker::new(store.clone())
        .lease_ttl(Duration::from_secs(5))
        .poll_interval(Duration::from_millis(50))
        .owner(owner)
}

/// Starts a `nested` ticket whose grandchild waits: `t`, `t/research/1`,
/// `t/research/1/dig/1`.
async fn start_nested<S: Store + Clone>(store: &S, tag: &str) -> (String, String, String) {
    let parent = Runner::new(nested::Workflow, store.clone());
    let id = format!("{tag}-t");
    let outcome = parent.start(&id, ticket(tag)).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "research/dig/review",
                ..
            }
        ),
        "{outcome:?}"
    );
    let child = format!("{id}/research/1");
    let grandchild = format!("{child}/dig/1");
    (id, child, grandchild)
}

async fn status_of<S: Store>(store: &S, session: &str) -> Option<StatusKind> {
    store
        .session(session)
        .await
        .unwrap()
        .map(|record| record.status.kind())
}

async fn the_store_records_each_childs_parent<S: Store + Clone>(store: S, tag: &str) {
    let (id, child, grandchild) = start_nested(&store, tag).await;
    let record = store.session(&child).await.unwrap().unwrap();
    assert_eq!(record.parent.as_deref(), Some(id.as_str()));
    let record = store.session(&grandchild).await.unwrap().unwrap();
    assert_eq!(record.parent.as_deref(), Some(child.as_str()));
    assert_eq!(store.session(&id).await.unwrap().unwrap().parent, None);
    let page = store
        .sessions(&SessionFilter::new().parent(&id))
        .await
        .unwrap();
    let ids: Vec<&str> = page.sessions.iter().map(|r| r.session.as_str()).collect();
    assert_eq!(ids, [child.as_str()]);
}

async fn cancel_reaches_every_unfinished_descendant<S: Store + Clone>(store: S, tag: &str) {
    let (id, child, grandchild) = start_nested(&store, tag).await;
    let parent = Runner::new(nested::Workflow, store.clone());
    let snapshot = parent
        .cancel(
            &id,
            Audit::new(AuditKind::Cancelled).by("bob").note("duplicate"),
        )
        .await
        .unwrap();
    assert_eq!(snapshot.status, Status::Cancelled);
    for session in [&id, &child, &grandchild] {
        assert_eq!(
            status_of(&store, session).await,
            Some(StatusKind::Cancelled),
            "{session}"
        );
    }
    // The grandchild's history says who cancelled it, and it never runs again.
    let leaf = Runner::new(review_agent::Workflow, store.clone());
    let history = leaf.history(&grandchild).await.unwrap();
    let audit = history.last().unwrap().audit.as_ref().expect("audited");
    assert_eq!(audit.kind, AuditKind::Cancelled);
    assert_eq!(audit.actor.as_deref(), Some("bob"));
    assert!(matches!(
        leaf.resume(&grandchild).await,
        Err(Error::Cancelled(_))
    ));
    let answer = leaf
        .resume_with(&grandchild, review_agent::Input::Review("ok".into()))
        .await;
    assert!(
        matches!(answer, Err(Error::NotWaiting { .. })),
        "{answer:?}"
    );
    assert_eq!(runs(tag, "review"), 0);

    // Cancelling again is refused, and changes nothing.
    let again = parent.cancel(&id, Audit::new(AuditKind::Cancelled)).await;
    assert!(matches!(again, Err(Error::Refused { .. })), "{again:?}");
}

async fn cancel_leaves_finished_children_as_they_are<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(quick_then_approve::Workflow, store.clone());
    let id = format!("{tag}-t");
    let outcome = parent.start(&id, ticket(tag)).await.unwrap();
    assert!(
        matches!(
            outcome,
            Outcome::Interrupted {
                node: "approve",
                ..
            }
        ),
        "{outcome:?}"
    );
    let child = format!("{id}/look/1");
    assert_eq!(status_of(&store, &child).await, Some(StatusKind::Completed));
    parent
        .cancel(&id, Audit::new(AuditKind::Cancelled))
        .await
        .unwrap();
    assert_eq!(status_of(&store, &id).await, Some(StatusKind::Cancelled));
    assert_eq!(status_of(&store, &child).await, Some(StatusKind::Completed));
    let quick = Runner::new(quick_agent::Workflow, store.clone());
    assert_eq!(
        quick.history(&child).await.unwrap().len(),
        2,
        "not rewritten"
    );
}

async fn the_inspectors_delete_removes_every_descendant<S: Store + Clone>(store: S, tag: &str) {
    let (id, child, grandchild) = start_nested(&store, tag).await;
    // No workflow registered: deleting needs none.
    let inspector = graph_runtime::inspect::Inspector::new(store.clone());
    inspector.delete(&id).await.unwrap();
    for session in [&id, &child, &grandchild] {
        assert_eq!(store.session(session).await.unwrap(), None, "{session}");
    }
    assert!(inspector.delete(&id).await.is_err(), "gone already");
}

async fn delete_removes_every_descendant<S: Store + Clone>(store: S, tag: &str) {
    let (id, child, grandchild) = start_nested(&store, tag).await;
    // Another ticket's children stay.
    let (other, other_child, _) = start_nested(&store, &format!("{tag}-other")).await;
    let parent = Runner::new(nested::Workflow, store.clone());
    assert!(parent.delete(&id).await.unwrap());
    for session in [&id, &child, &grandchild] {
        assert_eq!(store.session(session).await.unwrap(), None, "{session}");
        assert!(store.list(session).await.unwrap().is_empty());
    }
    assert!(!parent.delete(&id).await.unwrap(), "gone already");
    let left = parent.sessions().await.unwrap();
    assert!(
        left.contains(&other) && left.contains(&other_child),
        "{left:?}"
    );
    assert!(
        !left.iter().any(|s| s.starts_with(&format!("{id}/"))),
        "{left:?}"
    );
}

async fn a_child_enqueued_directly_wakes_its_parent_for_workers<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    let parent = Runner::new(support::Workflow, store.clone());
    let leaf = Runner::new(review_agent::Workflow, store.clone());
    let id = format!("{tag}-t");
    parent.start(&id, ticket(tag)).await.unwrap();
    let child = format!("{id}/research/2");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        worker(&store, "w1")
            .register(parent.clone())
            .register(leaf.clone())
            .run(shutdown.clone()),
    );
    leaf.enqueue_input(&child, review_agent::Input::Review("ok".into()))
        .by("carol")
        .await
        .unwrap();
    // Nobody calls `resume` on the parent: a worker runs the child, which wakes the parent,
    // which a worker runs.
    wait_until("the parent to complete", || async {
        status_of(&store, &id).await == Some(StatusKind::Completed)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let done = parent.state(&id).await.unwrap().unwrap().state;
    assert_eq!(done.notes, REVIEWED);
    assert_eq!(done.reply, format!("Thanks! {REVIEWED}"));
    for (node, times) in [
        ("triage", 1),
        ("research", 2),
        ("search", 1),
        ("review", 1),
        ("summarize", 1),
        ("reply", 1),
    ] {
        assert_eq!(runs(tag, node), times, "{node}");
    }
}

async fn a_child_answered_in_process_wakes_its_parent_for_workers<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    let parent = Runner::new(support::Workflow, store.clone());
    let leaf = Runner::new(review_agent::Workflow, store.clone());
    let id = format!("{tag}-t");
    parent.start(&id, ticket(tag)).await.unwrap();
    let child = format!("{id}/research/2");
    // The child's summary fails once after the review: the failed child wakes its parent
    // too, whose node runs the child on.
    fail_next(tag, "summarize", 1);
    let failed = leaf
        .resume_with(&child, review_agent::Input::Review("ok".into()))
        .await;
    assert!(
        matches!(
            failed,
            Err(Error::Node {
                node: "summarize",
                ..
            })
        ),
        "{failed:?}"
    );
    let shutdown = CancellationToken::new();
    // The worker runs the parent only: the child runs inside the parent's node.
    let running = tokio::spawn(
        worker(&store, "w1")
            .register(parent.clone())
            .run(shutdown.clone()),
    );
    wait_until("the parent to complete", || async {
        status_of(&store, &id).await == Some(StatusKind::Completed)
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        parent.state(&id).await.unwrap().unwrap().state.notes,
        REVIEWED
    );
    assert_eq!(runs(tag, "summarize"), 2);
    assert_eq!(runs(tag, "review"), 1, "the decision is not taken twice");
    assert_eq!(runs(tag, "search"), 1);
}

async fn a_child_that_ends_without_a_waiting_parent_wakes_nothing<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    // The child, answered directly, wakes its parent; the parent is then resumed by hand
    // (no worker runs here), which settles its wake time: nothing is left for a worker.
    let parent = Runner::new(support::Workflow, store.clone());
    let leaf = Runner::new(review_agent::Workflow, store.clone());
    let id = format!("{tag}-t");
    parent.start(&id, ticket(tag)).await.unwrap();
    let child = format!("{id}/research/2");
    leaf.resume_with(&child, review_agent::Input::Review("ok".into()))
        .await
        .unwrap();
    let woken = store.session(&id).await.unwrap().unwrap();
    assert!(woken.wake_at.is_some(), "the parent is runnable: {woken:?}");
    // Resumed in-process: its completion clears the wake time, and a worker finds nothing.
    parent.resume(&id).await.unwrap();
    let done = store.session(&id).await.unwrap().unwrap();
    assert_eq!(done.wake_at, None, "{done:?}");
    // Resuming the completed child again wakes nothing.
    leaf.resume(&child).await.unwrap();
    assert_eq!(store.session(&id).await.unwrap().unwrap().wake_at, None);
    assert_eq!(runs(tag, "reply"), 1);
}

async fn an_answer_enqueued_through_the_parent_is_run_by_a_worker<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    let parent = Runner::new(nested::Workflow, store.clone());
    let (id, child, grandchild) = start_nested(&store, tag).await;
    let answer = nested::Input::Research(research_agent::Input::Dig(review_agent::Input::Review(
        "ok".into(),
    )));
    parent.enqueue_input(&id, answer).by("alice").await.unwrap();
    // Recorded, not run: the grandchild holds the input, nothing ran yet.
    assert_eq!(runs(tag, "review"), 0);
    let leaf = Runner::new(review_agent::Workflow, store.clone());
    let history = leaf.history(&grandchild).await.unwrap();
    let audit = history
        .last()
        .unwrap()
        .audit
        .as_ref()
        .expect("the decision");
    assert_eq!(audit.actor.as_deref(), Some("alice"));
    // An answer for a parent that does not wait at that node is refused, as `resume_with`'s.
    let answer = nested::Input::Research(research_agent::Input::Dig(review_agent::Input::Review(
        "ok".into(),
    )));
    let wrong = parent.enqueue_input("nobody", answer).await;
    assert!(wrong.is_err(), "{wrong:?}");

    let shutdown = CancellationToken::new();
    let running = tokio::spawn(
        worker(&store, "w1")
            .register(parent.clone())
            .run(shutdown.clone()),
    );
    wait_until("the parent to wait at `approve`", || async {
        matches!(
            parent.state(&id).await.unwrap().map(|s| s.status),
            Some(Status::Waiting { node }) if node == "approve"
        )
    })
    .await;
    shutdown.cancel();
    running.await.unwrap().unwrap();
    assert_eq!(
        parent.state(&id).await.unwrap().unwrap().state.notes,
        REVIEWED
    );
    for session in [&child, &grandchild] {
        assert_eq!(
            status_of(&store, session).await,
            Some(StatusKind::Completed),
            "{session}"
        );
    }
    for (node, times) in [("search", 1), ("review", 1), ("summarize", 1)] {
        assert_eq!(runs(tag, node), times, "{node}");
    }
}

async fn history_and_snapshots_name_the_child_waited_for<S: Store + Clone>(store: S, tag: &str) {
    let (id, child, _) = start_nested(&store, tag).await;
    let parent = Runner::new(nested::Workflow, store.clone());
    let history = parent.history(&id).await.unwrap();
    let waiting = history.last().unwrap();
    assert_eq!(
        waiting.status,
        Status::Waiting {
            node: "research/dig/review".into()
        }
    );
    assert_eq!(waiting.child.as_deref(), Some(child.as_str()));
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|c| c.child.is_none())
    );

    let at = parent.state_at(&id, waiting.seq).await.unwrap().unwrap();
    assert_eq!(at.child.as_deref(), Some(child.as_str()));
    assert_eq!(at.waiting, ["research/dig/review"]);
    let latest = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(latest.child.as_deref(), Some(child.as_str()));

    // The inspector's history says it too, in its JSON.
    let inspector = graph_runtime::inspect::Inspector::new(store.clone()).register(parent.clone());
    let entries = inspector.history(&id).await.unwrap();
    let json = serde_json::to_value(entries.last().unwrap()).unwrap();
    assert_eq!(json["child"]["session"], child.as_str(), "{json}");
    assert_eq!(json["child"]["path"], "research/dig/review", "{json}");
    let first = serde_json::to_value(&entries[0]).unwrap();
    assert!(first.get("child").is_none(), "{first}");

    // The middle child's own history names its child in turn.
    let middle = Runner::new(research_agent::Workflow, store.clone());
    let history = middle.history(&child).await.unwrap();
    assert_eq!(
        history.last().unwrap().child.as_deref(),
        Some(format!("{child}/dig/1").as_str())
    );

    // Once answered and run on, the parent's later checkpoints wait for nobody; the wait
    // stays in its history.
    let answer = nested::Input::Research(research_agent::Input::Dig(review_agent::Input::Review(
        "ok".into(),
    )));
    parent.resume_with(&id, answer).await.unwrap();
    let latest = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(latest.child, None);
    assert_eq!(latest.waiting, ["approve"]);
    let history = parent.history(&id).await.unwrap();
    let children: Vec<Option<&str>> = history.iter().map(|c| c.child.as_deref()).collect();
    assert_eq!(
        children.iter().filter(|c| c.is_some()).count(),
        1,
        "{children:?}"
    );
    assert!(history.last().unwrap().child.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_a_workflow_the_parent_does_not_run_stops_its_cancel() {
    use graph_runtime::store::{Append, Checkpoint};
    let store = MemoryStore::new();
    let parent = Runner::new(quick_then_approve::Workflow, store.clone());
    parent.start("t", ticket("stranger")).await.unwrap();
    // A child session the parent's graph knows nothing of (written by hand here; an older
    // graph's subgraph node in life).
    let first = Checkpoint::new(0, "somewhere", Status::Running, Vec::new());
    let append = Append::new(None, first, None)
        .workflow("stranger", 1)
        .parent("t");
    store.append("t/gone/1", append).await.unwrap();
    let refused = parent.cancel("t", Audit::new(AuditKind::Cancelled)).await;
    let Err(Error::Refused { reason, .. }) = &refused else {
        panic!("{refused:?}");
    };
    assert!(
        reason.contains("`t/gone/1`") && reason.contains("`stranger`"),
        "{reason}"
    );
    // Nothing was cancelled: the parent still waits, and can be cancelled once the stranger
    // is dealt with.
    assert_eq!(status_of(&store, "t").await, Some(StatusKind::Waiting));
    assert!(parent.delete("t").await.unwrap());
    assert_eq!(store.session("t/gone/1").await.unwrap(), None);
}

/// Every event of a spawned run, in order.
async fn events_of<T: Send + 'static>(mut handle: graph_runtime::RunHandle<T>) -> Vec<Event> {
    let mut events = handle.events();
    let mut all = Vec::new();
    while let Some(event) = events.next().await {
        all.push(event);
    }
    handle.await.unwrap();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn childrens_events_reach_the_parents_listener_tagged_with_their_path() {
    let tag = "events";
    let store = MemoryStore::new();
    let parent = Runner::new(nested::Workflow, store.clone());
    let events = events_of(parent.spawn("t", ticket(tag))).await;

    // The parent's own events are untagged; the child's are tagged `research`, the
    // grandchild's `research/dig`, each with the child's own event inside.
    assert!(events.iter().any(|e| matches!(
        e,
        Event::StepStarted {
            node: "research",
            ..
        }
    )));
    let tagged: Vec<(&str, &Event)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Child { path, event } => Some((*path, &**event)),
            _ => None,
        })
        .collect();
    assert!(
        tagged
            .iter()
            .any(|(path, e)| *path == "research"
                && matches!(e, Event::StepStarted { node: "dig", .. })),
        "{tagged:?}"
    );
    assert!(
        tagged.iter().any(|(path, e)| *path == "research/dig"
            && matches!(e, Event::StepStarted { node: "search", .. })),
        "{tagged:?}"
    );
    assert!(
        tagged.iter().any(|(path, e)| *path == "research/dig"
            && matches!(e, Event::StepFinished { node: "search", .. })),
        "{tagged:?}"
    );
    assert!(
        tagged.iter().any(|(path, e)| *path == "research/dig"
            && matches!(e, Event::Interrupted { node: "review" })),
        "{tagged:?}"
    );
    let custom = tagged.iter().find_map(|(path, e)| match e {
        Event::Custom { node, payload, .. } if *path == "research/dig" => {
            Some((*node, payload.downcast_ref::<String>().cloned()))
        }
        _ => None,
    });
    assert_eq!(
        custom,
        Some(("search", Some("searching refunds".to_owned())))
    );
    assert!(
        tagged
            .iter()
            .all(|(_, e)| !matches!(e, Event::Child { .. })),
        "one level of tagging carries the whole path"
    );
    // The parent's own interrupt comes last, with the path it waits at.
    assert!(
        matches!(
            events.last(),
            Some(Event::Interrupted {
                node: "research/dig/review"
            })
        ),
        "{:?}",
        events.last()
    );

    // Answered through the parent, on a spawned run: the children's events of that run
    // too.
    let answer = nested::Input::Research(research_agent::Input::Dig(review_agent::Input::Review(
        "ok".into(),
    )));
    let events = events_of(parent.spawn_resume_with("t", answer)).await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Child { path: "research/dig", event }
                if matches!(**event, Event::StepStarted { node: "summarize", .. })
        )),
        "{events:?}"
    );
    assert!(matches!(
        events.last(),
        Some(Event::Interrupted { node: "approve" })
    ));
}

on_every_store!(
    the_store_records_each_childs_parent,
    cancel_reaches_every_unfinished_descendant,
    cancel_leaves_finished_children_as_they_are,
    delete_removes_every_descendant,
    the_inspectors_delete_removes_every_descendant,
    a_child_enqueued_directly_wakes_its_parent_for_workers,
    a_child_answered_in_process_wakes_its_parent_for_workers,
    a_child_that_ends_without_a_waiting_parent_wakes_nothing,
    an_answer_enqueued_through_the_parent_is_run_by_a_worker,
    history_and_snapshots_name_the_child_waited_for,
);
