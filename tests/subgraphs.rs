//! Subgraphs: a node that runs another workflow as a durable child session
//! (`#[node(subgraph = m)]` with a `Child<m::Workflow>` parameter), on every store (memory,
//! SQLite file, a throwaway PostgreSQL).
//!
//! The scenarios of one store run concurrently with those of the others, so the counts of
//! node runs are kept per tag (each scenario on each store has its own), never in one global.

use std::sync::Mutex;

use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use graph_runtime::{Error, Status, Workflow};
use serde::{Deserialize, Serialize};

#[path = "support/postgres.rs"]
mod postgres;
#[macro_use]
#[path = "support/every_store.rs"]
mod every_store;

/// How many times each `(tag, node)` ran, and how many more failures each `(tag, node)` has
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

impl From<&Ticket> for Question {
    fn from(t: &Ticket) -> Self {
        Question {
            tag: t.tag.clone(),
            text: t.text.clone(),
            ..Question::default()
        }
    }
}

/// The child: two nodes.
#[workflow(state = Question)]
pub mod research_agent {
    use super::*;

    edge!(START -> search);
    edge!(search -> summarize);
    edge!(summarize -> END);

    #[node]
    async fn search(q: &mut Question) -> Result<(), String> {
        ran(&q.tag, "search");
        if fails(&q.tag, "search") {
            return Err("the search index is down".into());
        }
        q.sources.push(format!("kb:{}", q.text));
        Ok(())
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ticket {
    pub tag: String,
    pub text: String,
    pub notes: String,
    pub reply: String,
}

/// The parent: a support ticket whose `research` node runs the child.
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

    #[node(subgraph = research_agent, retry = 1)]
    async fn research(
        t: &mut Ticket,
        child: Child<research_agent::Workflow>,
    ) -> Result<(), NodeError> {
        ran(&t.tag, "research");
        let found = child.run(Question::from(&*t)).await?;
        // A crash between the child's end and this step's checkpoint, simulated: the node
        // fails after the child returned, and its retry runs it again.
        if fails(&t.tag, "research") {
            return Err("lost the connection after the child finished".into());
        }
        t.notes = found.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket) {
        ran(&t.tag, "reply");
        t.reply = format!("Thanks! {}", t.notes);
    }
}

/// The parent without a retry on `research`: the child's failure fails the run.
#[workflow(state = Ticket)]
pub mod support_once {
    use super::*;

    edge!(START -> research);
    edge!(research -> END);

    #[node(subgraph = research_agent)]
    async fn research(t: &mut Ticket, child: Child<research_agent::Workflow>) -> Result<(), Error> {
        ran(&t.tag, "research");
        t.notes = child.run(Question::from(&*t)).await?.summary;
        Ok(())
    }
}

/// A child that waits for a human at `review` between its two nodes.
#[workflow(state = Question)]
pub mod reviewed_research {
    use super::*;

    edge!(START -> search);
    edge!(search -> review);
    edge!(review -> summarize);
    edge!(summarize -> END);

    #[node]
    async fn search(q: &mut Question) {
        ran(&q.tag, "search");
        q.sources.push(format!("kb:{}", q.text));
    }

    #[node(interrupt)]
    async fn review(q: &mut Question, verdict: String) {
        ran(&q.tag, "review");
        q.sources.push(format!("reviewer:{verdict}"));
    }

    #[node]
    async fn summarize(q: &mut Question) {
        ran(&q.tag, "summarize");
        q.summary = format!("{} source(s) on {}", q.sources.len(), q.text);
    }
}

/// The parent whose child waits for a review: `triage` changes the ticket before
/// `research`, which changes it before its child runs (a change the wait must not keep).
#[workflow(state = Ticket)]
pub mod reviewed_support {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> research);
    edge!(research -> reply);
    edge!(reply -> END);

    #[node]
    async fn triage(t: &mut Ticket) {
        ran(&t.tag, "triage");
        t.notes = "triaged".into();
    }

    #[node(subgraph = reviewed_research, retry = 2)]
    async fn research(
        t: &mut Ticket,
        child: Child<reviewed_research::Workflow>,
    ) -> Result<(), NodeError> {
        ran(&t.tag, "research");
        t.notes.push_str(" (researching)");
        let found = child.run(Question::from(&*t)).await?;
        t.notes = found.summary;
        Ok(())
    }

    #[node]
    async fn reply(t: &mut Ticket) {
        ran(&t.tag, "reply");
        t.reply = format!("Thanks! {}", t.notes);
    }
}

const REVIEWED_NOTES: &str = "2 source(s) on refunds";

fn ticket(tag: &str) -> Ticket {
    Ticket {
        tag: tag.to_owned(),
        text: "refunds".into(),
        ..Ticket::default()
    }
}

const EXPECTED_NOTES: &str = "1 source(s) on refunds";

/// The child's id: its parent's session, the node, and the sequence number of the parent's
/// step (`triage` is 1, `research` 2).
fn child_id(parent: &str) -> String {
    format!("{parent}/research/2")
}

async fn a_ticket_runs_its_research_child<S: Store + Clone>(store: S, tag: &str) {
    let parent = Runner::new(support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let done = parent.start(&id, ticket(tag)).await.unwrap().into_state();
    assert_eq!(done.notes, EXPECTED_NOTES);
    assert_eq!(done.reply, format!("Thanks! {EXPECTED_NOTES}"));
    for node in ["triage", "research", "search", "summarize", "reply"] {
        assert_eq!(runs(tag, node), 1, "{node}");
    }

    // The child is a session of its own: its state and history under the derived id.
    let child = Runner::new(research_agent::Workflow, store.clone());
    let snapshot = child
        .state(&child_id(&id))
        .await
        .unwrap()
        .expect("the child");
    assert_eq!(snapshot.status, Status::Completed);
    assert_eq!(snapshot.state.summary, EXPECTED_NOTES);
    assert_eq!(snapshot.state.sources, ["kb:refunds"]);
    let history = child.history(&child_id(&id)).await.unwrap();
    let nodes: Vec<&str> = history.iter().map(|c| c.node.as_str()).collect();
    assert_eq!(nodes, ["search", "summarize", "END"], "{history:?}");
    let record = store.session(&child_id(&id)).await.unwrap().unwrap();
    assert_eq!(
        record.workflow.as_deref(),
        Some(research_agent::Workflow::NAME)
    );

    // The parent's own history does not hold the child's steps.
    assert_eq!(parent.history(&id).await.unwrap().len(), 4);
}

async fn a_finished_child_is_not_run_again<S: Store + Clone>(store: S, tag: &str) {
    // The node fails once after its child returned (a crash between the child's end and the
    // parent's checkpoint); its retry finds the child completed and takes its final state.
    fail_next(tag, "research", 1);
    let parent = Runner::new(support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let done = parent.start(&id, ticket(tag)).await.unwrap().into_state();
    assert_eq!(done.notes, EXPECTED_NOTES);
    assert_eq!(runs(tag, "research"), 2, "the parent's node ran twice");
    assert_eq!(runs(tag, "search"), 1, "the child ran once");
    assert_eq!(runs(tag, "summarize"), 1, "the child ran once");
}

async fn a_child_finished_by_hand_is_taken_as_is<S: Store + Clone>(store: S, tag: &str) {
    // The parent crashed after its child completed and before its own checkpoint: here the
    // child is run to completion by hand at the derived id, then the parent is resumed from
    // its checkpoint before `research`.
    let parent = Runner::new(support::Workflow, store.clone()).max_steps(1);
    let id = format!("{tag}-ticket");
    assert!(matches!(
        parent.start(&id, ticket(tag)).await,
        Err(Error::StepLimit { .. })
    ));
    assert_eq!(runs(tag, "triage"), 1);
    let child = Runner::new(research_agent::Workflow, store.clone());
    let question = Question {
        text: "by hand".into(),
        ..Question::from(&ticket(tag))
    };
    child.start(&child_id(&id), question).await.unwrap();
    assert_eq!(runs(tag, "search"), 1);

    let parent = Runner::new(support::Workflow, store.clone());
    let done = parent.resume(&id).await.unwrap().into_state();
    assert_eq!(
        done.notes, "1 source(s) on by hand",
        "the stored child's state"
    );
    assert_eq!(runs(tag, "search"), 1, "the child did not run again");
    assert_eq!(runs(tag, "summarize"), 1);
    assert_eq!(runs(tag, "reply"), 1);
}

async fn a_failed_child_fails_its_parent_and_resumes<S: Store + Clone>(store: S, tag: &str) {
    // `summarize` fails twice: the first run fails, the node's one retry continues the child
    // from its checkpoint after `search` and fails again, so the parent fails.
    fail_next(tag, "summarize", 2);
    let parent = Runner::new(support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let error = parent.start(&id, ticket(tag)).await.unwrap_err();
    let Error::Node { node, source } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*node, "research");
    let child_error = source.downcast_ref::<Error>().expect("the child's error");
    assert!(
        matches!(
            child_error,
            Error::Node {
                node: "summarize",
                ..
            }
        ),
        "{child_error:?}"
    );
    assert_eq!(runs(tag, "research"), 2);
    assert_eq!(runs(tag, "search"), 1, "the retry continued the child");
    assert_eq!(runs(tag, "summarize"), 2);

    // The child stays at its last checkpoint, failed; resuming the parent continues it.
    let child = Runner::new(research_agent::Workflow, store.clone());
    let record = store.session(&child_id(&id)).await.unwrap().unwrap();
    assert_eq!(record.status.kind(), graph_runtime::StatusKind::Failed);
    let done = parent.resume(&id).await.unwrap().into_state();
    assert_eq!(done.notes, EXPECTED_NOTES);
    assert_eq!(runs(tag, "search"), 1, "never twice");
    assert_eq!(runs(tag, "summarize"), 3);
    let snapshot = child.state(&child_id(&id)).await.unwrap().unwrap();
    assert_eq!(snapshot.status, Status::Completed);
}

async fn a_retry_continues_the_failed_child<S: Store + Clone>(store: S, tag: &str) {
    // `summarize` fails once: the node's retry continues the child, `search` does not re-run.
    fail_next(tag, "summarize", 1);
    let parent = Runner::new(support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let done = parent.start(&id, ticket(tag)).await.unwrap().into_state();
    assert_eq!(done.notes, EXPECTED_NOTES);
    assert_eq!(runs(tag, "research"), 2);
    assert_eq!(runs(tag, "search"), 1);
    assert_eq!(runs(tag, "summarize"), 2);

    // Without a retry, the same failure is the parent's error.
    let once = Runner::new(support_once::Workflow, store.clone());
    let other = format!("{tag}-once");
    let once_tag = format!("{tag}-once");
    fail_next(&once_tag, "search", 1);
    let error = once.start(&other, ticket(&once_tag)).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Node {
                node: "research",
                ..
            }
        ),
        "{error:?}"
    );
    let done = once.resume(&other).await.unwrap().into_state();
    assert_eq!(done.notes, EXPECTED_NOTES);
    assert_eq!(runs(&once_tag, "search"), 2);
    assert_eq!(runs(&once_tag, "summarize"), 1);
}

/// The parent of a child that waits: its run is `Interrupted` at `research/review`, with
/// the state from before `research`, saved as a waiting checkpoint at `research`.
async fn start_a_ticket_whose_child_waits<S: Store + Clone>(
    store: &S,
    tag: &str,
) -> (Runner<reviewed_support::Workflow, S>, String) {
    let parent = Runner::new(reviewed_support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let outcome = parent.start(&id, ticket(tag)).await.unwrap();
    let Outcome::Interrupted { node, state } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(node, "research/review");
    assert_eq!(
        state.notes, "triaged",
        "the node's change before the wait is not kept"
    );
    assert_eq!(runs(tag, "research"), 1, "a child's wait is not retried");
    assert_eq!(runs(tag, "search"), 1);
    assert_eq!(runs(tag, "review"), 0);

    let snapshot = parent.state(&id).await.unwrap().expect("the parent");
    assert_eq!(snapshot.node, "research");
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "research/review".into()
        }
    );
    assert_eq!(snapshot.waiting, ["research/review"]);
    assert_eq!(snapshot.state.notes, "triaged");
    assert_eq!(snapshot.seq, 2, "the wait is the step that ran `research`");
    let record = store.session(&id).await.unwrap().unwrap();
    assert_eq!(record.status.kind(), graph_runtime::StatusKind::Waiting);

    // The child waits at `review`, at the id derived from the parent's step.
    let child = Runner::new(reviewed_research::Workflow, store.clone());
    let snapshot = child
        .state(&child_id(&id))
        .await
        .unwrap()
        .expect("the child");
    assert_eq!(snapshot.waiting, ["review"]);

    // Resuming the parent before the child is answered waits again, writing nothing.
    let before = parent.history(&id).await.unwrap().len();
    let again = parent.resume(&id).await.unwrap();
    assert!(
        matches!(
            again,
            Outcome::Interrupted {
                node: "research/review",
                ..
            }
        ),
        "{again:?}"
    );
    assert_eq!(parent.history(&id).await.unwrap().len(), before);
    assert_eq!(runs(tag, "search"), 1, "the child did not run again");
    (parent, id)
}

#[test]
fn input_schema_covers_the_childrens_inputs() {
    // `support` and `reviewed_support` have no interrupt node of their own: their inputs
    // differ only by their children's.
    assert_ne!(
        support::Workflow::INPUT_SCHEMA,
        reviewed_support::Workflow::INPUT_SCHEMA
    );
    assert_eq!(reviewed_support::Input::NODES, [] as [&str; 0]);
    let json = serde_json::to_string(&reviewed_support::Input::Research(
        reviewed_research::Input::Review("ok".into()),
    ))
    .unwrap();
    assert_eq!(json, r#"{"Research":{"Review":"ok"}}"#);
}

async fn a_child_answered_directly_lets_its_parent_go_on<S: Store + Clone>(store: S, tag: &str) {
    let (parent, id) = start_a_ticket_whose_child_waits(&store, tag).await;
    let child = Runner::new(reviewed_research::Workflow, store.clone());
    let done = child
        .resume_with(
            &child_id(&id),
            reviewed_research::Input::Review("ok".into()),
        )
        .await
        .unwrap();
    assert_eq!(done.into_state().summary, REVIEWED_NOTES);

    let done = parent.resume(&id).await.unwrap();
    let Outcome::Completed(ticket) = done else {
        panic!("{done:?}");
    };
    assert_eq!(ticket.notes, REVIEWED_NOTES);
    assert_eq!(ticket.reply, format!("Thanks! {REVIEWED_NOTES}"));
    for (node, times) in [
        ("triage", 1),
        ("search", 1),
        ("review", 1),
        ("summarize", 1),
        ("reply", 1),
    ] {
        assert_eq!(runs(tag, node), times, "{node}");
    }
    let snapshot = parent.state(&id).await.unwrap().unwrap();
    assert_eq!(snapshot.status, Status::Completed);
    assert!(snapshot.waiting.is_empty());
    let nodes: Vec<String> = parent
        .history(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(nodes, ["triage", "research", "research", "reply", "END"]);
}

async fn a_child_answered_through_its_parent_lets_it_go_on<S: Store + Clone>(store: S, tag: &str) {
    let (parent, id) = start_a_ticket_whose_child_waits(&store, tag).await;

    // An answer for another node, or for a parent that does not wait, is refused.
    let wrong = parent
        .resume_with(
            "nobody",
            reviewed_support::Input::Research(reviewed_research::Input::Review("ok".into())),
        )
        .await;
    assert!(wrong.is_err(), "{wrong:?}");

    // Enqueued for workers through a parent that does not exist (or does not wait there):
    // refused as `resume_with` refuses it.
    let queued = parent
        .enqueue_input(
            "nobody",
            reviewed_support::Input::Research(reviewed_research::Input::Review("ok".into())),
        )
        .await;
    assert!(
        matches!(queued, Err(Error::SessionNotFound(_))),
        "{queued:?}"
    );

    // The answer in JSON, keyed by node names at every level.
    let input: reviewed_support::Input =
        serde_json::from_str(r#"{"research":{"review":"ok"}}"#).unwrap();
    assert_eq!(input.node(), "research");
    let done = parent.resume_with(&id, input).by("alice").await.unwrap();
    let Outcome::Completed(ticket) = done else {
        panic!("{done:?}");
    };
    assert_eq!(ticket.notes, REVIEWED_NOTES);
    assert_eq!(ticket.reply, format!("Thanks! {REVIEWED_NOTES}"));
    for (node, times) in [
        ("triage", 1),
        ("search", 1),
        ("review", 1),
        ("summarize", 1),
        ("reply", 1),
    ] {
        assert_eq!(runs(tag, node), times, "{node}");
    }

    // The child's history keeps the decision, with who gave it.
    let child = Runner::new(reviewed_research::Workflow, store.clone());
    let history = child.history(&child_id(&id)).await.unwrap();
    let audit = history
        .iter()
        .find_map(|c| c.audit.as_ref())
        .expect("the child's decision");
    assert_eq!(audit.actor.as_deref(), Some("alice"));

    // Answering again: the parent no longer waits.
    let again = parent
        .resume_with(
            &id,
            reviewed_support::Input::Research(reviewed_research::Input::Review("ok".into())),
        )
        .await;
    assert!(matches!(again, Err(Error::NotWaiting { .. })), "{again:?}");
}

/// `spawn_resume_with` takes a child's answer through the parent as `resume_with` does, and
/// the spawned run's events are the parent's run on to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_answer_through_the_parent_runs_it_on() {
    let tag = "memory-spawned-answer";
    let store = graph_runtime::MemoryStore::new();
    let (parent, id) = start_a_ticket_whose_child_waits(&store, tag).await;
    let mut run = parent.spawn_resume_with(
        &id,
        reviewed_support::Input::Research(reviewed_research::Input::Review("ok".into())),
    );
    let mut events = run.events();
    let done = run.await.unwrap();
    let Outcome::Completed(ticket) = done else {
        panic!("{done:?}");
    };
    assert_eq!(ticket.reply, format!("Thanks! {REVIEWED_NOTES}"));
    let mut steps = Vec::new();
    while let Some(event) = events.next().await {
        if let graph_runtime::Event::StepStarted { node, .. } = event {
            steps.push(node);
        }
    }
    assert_eq!(steps, ["research", "reply"]);
    for (node, times) in [("search", 1), ("review", 1), ("summarize", 1)] {
        assert_eq!(runs(tag, node), times, "{node}");
    }
}

/// Where a `held_support` run stops before it starts its child: the run says it arrived
/// (`.0`), then waits for the test to let it go on (`.1`).
type Gate = std::sync::Arc<(tokio::sync::Notify, tokio::sync::Notify)>;

/// The gate of each tag.
static HELD: Mutex<Vec<(String, Gate)>> = Mutex::new(Vec::new());

fn hold(tag: &str) -> Gate {
    let mut held = HELD.lock().unwrap();
    if let Some((_, gate)) = held.iter().find(|(t, _)| t == tag) {
        return gate.clone();
    }
    let gate = std::sync::Arc::default();
    held.push((tag.to_owned(), std::sync::Arc::clone(&gate)));
    gate
}

/// The parent of [`a_run_in_flight_cannot_start_a_child_of_its_deleted_parent`]: its
/// `research` node stops before it starts the child, until the test lets it go on.
#[workflow(state = Ticket)]
pub mod held_support {
    use super::*;

    edge!(START -> triage);
    edge!(triage -> research);
    edge!(research -> END);

    #[node]
    async fn triage(t: &mut Ticket) {
        ran(&t.tag, "triage");
    }

    #[node(subgraph = research_agent)]
    async fn research(t: &mut Ticket, child: Child<research_agent::Workflow>) -> Result<(), Error> {
        let gate = hold(&t.tag);
        gate.0.notify_one();
        gate.1.notified().await;
        let found = child.run(Question::from(&*t)).await?;
        t.notes = found.summary;
        Ok(())
    }
}

/// A parent deleted while a run of it is still in flight (here: stopped just before its
/// subgraph node starts the child; in the simulation, a run that lost the race to complete
/// the session): the run cannot start the child any more, as the store refuses a child whose
/// parent does not exist. Before the store checked it, the run created the child after the
/// delete, an orphan no delete of the parent would ever find again.
async fn a_run_in_flight_cannot_start_a_child_of_its_deleted_parent<S: Store + Clone>(
    store: S,
    tag: &str,
) {
    let runner = Runner::new(held_support::Workflow, store.clone());
    let id = format!("{tag}-ticket");
    let gate = hold(tag);
    let run = tokio::spawn({
        let (runner, id, ticket) = (runner.clone(), id.clone(), ticket(tag));
        async move { runner.start(&id, ticket).await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), gate.0.notified())
        .await
        .expect("the run reaches its subgraph node");
    assert!(runner.delete(&id).await.unwrap(), "the parent existed");
    gate.1.notify_one();
    // The child's creation is refused: the node fails with the store's answer, naming the
    // parent (and the run has no session left to record that in).
    let result = run.await.expect("the run's task");
    let refused = match &result {
        Err(Error::Node { node, source }) => {
            *node == "research"
                && matches!(source.downcast_ref::<Error>(),
                    Some(Error::SessionNotFound(parent)) if *parent == id)
        }
        _ => false,
    };
    assert!(refused, "the run in flight: {result:?}");
    assert_eq!(
        store.session(&child_id(&id)).await.unwrap(),
        None,
        "an orphan child"
    );
    assert_eq!(
        store.session(&id).await.unwrap(),
        None,
        "the deleted parent came back"
    );
}

on_every_store!(
    a_ticket_runs_its_research_child,
    a_finished_child_is_not_run_again,
    a_child_finished_by_hand_is_taken_as_is,
    a_failed_child_fails_its_parent_and_resumes,
    a_retry_continues_the_failed_child,
    a_child_answered_directly_lets_its_parent_go_on,
    a_child_answered_through_its_parent_lets_it_go_on,
    a_run_in_flight_cannot_start_a_child_of_its_deleted_parent,
);

/// A `MemoryStore` whose `latest` of one session fails once, after `skip` successful reads:
/// a transient store error at one chosen call (the simulation's lost reply).
#[derive(Clone)]
struct FailOnce {
    inner: graph_runtime::MemoryStore,
    /// The session, and how many of its `latest` reads still succeed before the failure.
    armed: std::sync::Arc<Mutex<Option<(String, u32)>>>,
}

impl Store for FailOnce {
    async fn append(&self, s: &str, a: graph_runtime::store::Append) -> graph_runtime::Result<()> {
        self.inner.append(s, a).await
    }
    async fn latest(
        &self,
        s: &str,
    ) -> graph_runtime::Result<Option<graph_runtime::store::Checkpoint>> {
        let fail = {
            let mut armed = self.armed.lock().unwrap();
            match armed.as_mut() {
                Some((session, 0)) if session == s => {
                    *armed = None;
                    true
                }
                Some((session, skip)) if session == s => {
                    *skip -= 1;
                    false
                }
                _ => false,
            }
        };
        if fail {
            return Err(Error::Store("simulated: the connection dropped".into()));
        }
        self.inner.latest(s).await
    }
    async fn get(
        &self,
        s: &str,
        seq: u64,
    ) -> graph_runtime::Result<Option<graph_runtime::store::Checkpoint>> {
        self.inner.get(s, seq).await
    }
    async fn list(
        &self,
        s: &str,
    ) -> graph_runtime::Result<Vec<graph_runtime::store::CheckpointMeta>> {
        self.inner.list(s).await
    }
    async fn prune(&self, s: &str, keep_last: u64) -> graph_runtime::Result<u64> {
        self.inner.prune(s, keep_last).await
    }
    async fn delete(&self, s: &str) -> graph_runtime::Result<bool> {
        self.inner.delete(s).await
    }
    async fn sessions(
        &self,
        f: &graph_runtime::store::SessionFilter,
    ) -> graph_runtime::Result<graph_runtime::store::SessionPage> {
        self.inner.sessions(f).await
    }
    async fn session(
        &self,
        s: &str,
    ) -> graph_runtime::Result<Option<graph_runtime::store::SessionRecord>> {
        self.inner.session(s).await
    }
    async fn claim(
        &self,
        c: &graph_runtime::store::Claim,
    ) -> graph_runtime::Result<Vec<graph_runtime::store::Lease>> {
        self.inner.claim(c).await
    }
    async fn renew(
        &self,
        l: &graph_runtime::store::Lease,
        ttl: std::time::Duration,
    ) -> graph_runtime::Result<graph_runtime::store::Lease> {
        self.inner.renew(l, ttl).await
    }
    async fn release(&self, l: &graph_runtime::store::Lease) -> graph_runtime::Result<bool> {
        self.inner.release(l).await
    }
    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.inner.wait_for_work(timeout).await;
    }
}

/// Found by tests/simulation.rs (seeds 79, 83, 84, 97 and 110 at commit da4e1e9 with its
/// client reverted to one that answers what a session waits at and resumes only running
/// sessions). The
/// answer for a waiting child, given through its parent, is recorded on the child (and
/// runs it) before the parent runs on; a failure in between (here the parent's read fails
/// once; in the simulation a crash or a lost reply) leaves the parent waiting at its
/// subgraph node for a child that no longer waits. Its snapshot then names `research`, a
/// node no input answers, and giving the same answer again is `NotWaiting` (the child's):
/// a client that answers waiting sessions and resumes running ones never moved it on (only
/// `resume` did). Passes since main's subgraph work that followed (the branch point of the
/// simulation, bee3724, failed it).
#[tokio::test]
async fn a_failure_after_a_childs_answer_does_not_leave_its_parent_waiting_for_nothing() {
    let tag = "fail-once-child-answer";
    let store = FailOnce {
        inner: graph_runtime::MemoryStore::new(),
        armed: std::sync::Arc::default(),
    };
    let (parent, id) = start_a_ticket_whose_child_waits(&store, tag).await;
    // `resume_with` reads the parent (to check that it waits), answers the child, then
    // reads the parent again to run it on: that second read fails.
    *store.armed.lock().unwrap() = Some((id.clone(), 1));
    let answer =
        || reviewed_support::Input::Research(reviewed_research::Input::Review("ok".into()));
    let failed = parent.resume_with(&id, answer()).await;
    assert!(matches!(failed, Err(Error::Store(_))), "{failed:?}");

    // The client gives its answer again (its call failed), or reads what the session
    // waits for. Either must lead the parent on.
    let again = parent.resume_with(&id, answer()).await;
    let snapshot = parent.state(&id).await.unwrap().expect("the parent");
    let moves_on = matches!(again, Ok(Outcome::Completed(_)))
        || !matches!(snapshot.status, Status::Waiting { .. });
    assert!(
        moves_on,
        "the answer again: {again:?}; the parent: {:?} waiting at {:?}",
        snapshot.status, snapshot.waiting
    );
}
