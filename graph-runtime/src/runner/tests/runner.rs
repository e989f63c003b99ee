//! Runner semantics on a hand-written `Workflow` impl (the macro's output is tested in the
//! workspace's integration tests; this pins the runner on its own).
#![allow(clippy::manual_async_fn)] // the hand-written impls spell out what the macro generates

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::__private::Transition;
use crate::store::Store;
use crate::{
    CheckpointPolicy, Error, GraphChange, MemoryStore, NodeCtx, NodeSpec, Outcome, Retention,
    Runner, Status, Workflow,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, crate::StateSchema)]
#[state_schema(crate = crate)]
pub(crate) struct State {
    pub(crate) n: u32,
    /// `inc` fails when `n` reaches this value.
    pub(crate) fail_at: Option<u32>,
    /// Interrupt at `review` when `n` reaches this value.
    pub(crate) review_at: Option<u32>,
    pub(crate) limit: u32,
    pub(crate) keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, crate::StateSchema)]
#[state_schema(crate = crate)]
pub(crate) enum Input {
    Review(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cursor {
    Inc,
    Check,
    Review,
}

#[derive(Debug)]
struct Boom;
impl fmt::Display for Boom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boom")
    }
}
impl std::error::Error for Boom {}

pub(crate) struct Flow;

const INC: NodeSpec = NodeSpec::new("inc");
const CHECK: NodeSpec = NodeSpec::new("check");
const REVIEW: NodeSpec = NodeSpec::new("review").interrupt();

impl crate::__private::Sealed for Flow {}

impl Workflow for Flow {
    type State = State;
    type Input = Input;
    const NAME: &'static str = "flow";
    const GRAPH_HASH: u64 = 0x1234;
    const NODES: &'static [&'static str] = &["inc", "check", "review"];
    const MERMAID: &'static str = "";

    type Exec = Flow;
}

impl crate::__private::Execute<Flow> for Flow {
    type Cursor = Cursor;
    const ENTRY: Cursor = Cursor::Inc;
    fn spec(cursor: Cursor) -> &'static NodeSpec {
        match cursor {
            Cursor::Inc => &INC,
            Cursor::Check => &CHECK,
            Cursor::Review => &REVIEW,
        }
    }
    fn cursor_of(name: &str) -> Option<Cursor> {
        match name {
            "inc" => Some(Cursor::Inc),
            "check" => Some(Cursor::Check),
            "review" => Some(Cursor::Review),
            _ => None,
        }
    }
    fn input_node(input: &Input) -> Cursor {
        match input {
            Input::Review(_) => Cursor::Review,
        }
    }
    fn step<'a>(
        _: &'a Flow,
        cursor: Cursor,
        state: &'a mut State,
        ctx: &'a NodeCtx,
        input: Option<Input>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            match cursor {
                Cursor::Inc => {
                    // Lets concurrent runs interleave (a real node awaits I/O here).
                    tokio::task::yield_now().await;
                    state.keys.push(ctx.idempotency_key());
                    state.n += 1;
                    if state.fail_at == Some(state.n) {
                        state.fail_at = None;
                        return Transition::Failed(Box::new(Boom));
                    }
                    Transition::Next(Cursor::Check)
                }
                Cursor::Check => {
                    if state.review_at == Some(state.n) {
                        Transition::Next(Cursor::Review)
                    } else if state.n < state.limit {
                        Transition::Next(Cursor::Inc)
                    } else {
                        Transition::End
                    }
                }
                Cursor::Review => match input {
                    Some(Input::Review(add)) => {
                        state.review_at = None;
                        state.n += add;
                        Transition::Next(Cursor::Check)
                    }
                    None => Transition::MissingInput,
                },
            }
        }
    }
}

fn runner() -> Runner<Flow, MemoryStore> {
    Runner::new(Flow, MemoryStore::new())
}

/// The sequence numbers of a session's kept checkpoints, oldest first.
async fn seqs(r: &Runner<Flow, MemoryStore>, session: &str) -> Vec<u64> {
    r.history(session)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect()
}

pub(crate) fn state(limit: u32) -> State {
    State {
        limit,
        ..State::default()
    }
}

#[tokio::test]
async fn runs_to_completion_and_saves_every_step() {
    let r = runner();
    let out = r.start("s", state(3)).await.unwrap();
    let Outcome::Completed(s) = out else {
        panic!("{out:?}")
    };
    assert_eq!(s.n, 3);
    assert_eq!(s.keys, ["s/inc/1", "s/inc/3", "s/inc/5"]);
    let history = r.history("s").await.unwrap();
    let seqs: Vec<u64> = history.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..=6).collect::<Vec<_>>());
    assert_eq!(history[0].node, "inc");
    assert_eq!(history.last().unwrap().status, Status::Completed);
    assert_eq!(history.last().unwrap().node, "END");
    // Resuming a completed session returns the same outcome, running nothing.
    assert_eq!(r.resume("s").await.unwrap(), Outcome::Completed(s));
}

#[tokio::test]
async fn on_interrupt_policy_saves_start_and_end_only() {
    let r = runner().checkpoint_policy(CheckpointPolicy::OnInterrupt);
    r.start("s", state(50)).await.unwrap();
    let seqs = seqs(&r, "s").await;
    assert_eq!(seqs, [0, 100]);
}

#[tokio::test]
async fn every_n_policy_saves_every_nth_step() {
    let r = runner().checkpoint_policy(CheckpointPolicy::EveryN(4));
    r.start("s", state(5)).await.unwrap();
    let seqs = seqs(&r, "s").await;
    assert_eq!(seqs, [0, 4, 8, 10]);
}

#[tokio::test]
async fn keep_last_prunes_old_checkpoints() {
    let r = runner().retention(Retention::KeepLast(2));
    r.start("s", state(5)).await.unwrap();
    let seqs = seqs(&r, "s").await;
    assert_eq!(seqs, [9, 10]);
}

#[tokio::test]
async fn invalid_config_is_a_typed_error() {
    let e = runner()
        .retention(Retention::KeepLast(0))
        .start("s", state(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
    let e = runner()
        .checkpoint_policy(CheckpointPolicy::EveryN(0))
        .start("s", state(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
}

#[tokio::test]
async fn interrupt_then_resume_with_runs_nothing_twice() {
    let r = runner();
    let out = r
        .start(
            "s",
            State {
                review_at: Some(2),
                ..state(10)
            },
        )
        .await
        .unwrap();
    let Outcome::Interrupted { node, state: s } = out else {
        panic!("{out:?}")
    };
    assert_eq!(node, "review");
    assert_eq!(s.n, 2);
    let snap = r.state("s").await.unwrap().unwrap();
    assert_eq!(
        snap.status,
        Status::Waiting {
            node: "review".into()
        }
    );
    assert_eq!(snap.node, "review");
    // Resume without input: still waiting, nothing runs.
    let again = r.resume("s").await.unwrap();
    assert!(matches!(again, Outcome::Interrupted { node: "review", .. }));
    let out = r.resume_with("s", Input::Review(5)).await.unwrap();
    let Outcome::Completed(s) = out else {
        panic!("{out:?}")
    };
    assert_eq!(s.n, 10);
    // `inc` ran for n = 1, 2 before the interrupt, then 8, 9, 10 after: no re-runs.
    assert_eq!(s.keys.len(), 5);
    let e = r.resume_with("s", Input::Review(1)).await.unwrap_err();
    assert!(matches!(e, Error::NotWaiting { node: "review", .. }), "{e}");
}

#[tokio::test]
async fn resume_with_on_running_or_unknown_session_is_rejected() {
    let r = runner().checkpoint_policy(CheckpointPolicy::EveryStep);
    let e = r.resume_with("nobody", Input::Review(1)).await.unwrap_err();
    assert!(
        matches!(e, Error::SessionNotFound(ref s) if s == "nobody"),
        "{e}"
    );
    r.start(
        "s",
        State {
            fail_at: Some(1),
            ..state(3)
        },
    )
    .await
    .unwrap_err();
    let e = r.resume_with("s", Input::Review(1)).await.unwrap_err();
    assert!(
        matches!(e, Error::NotWaiting { ref actual, .. } if actual.contains("running")),
        "{e}"
    );
}

#[tokio::test]
async fn a_recorded_input_survives_a_failure_after_it() {
    let r = runner();
    let s = State {
        review_at: Some(1),
        fail_at: Some(7),
        ..state(9)
    };
    r.start("s", s).await.unwrap();
    let e = r.resume_with("s", Input::Review(5)).await.unwrap_err();
    assert!(matches!(e, Error::Node { node: "inc", .. }), "{e}");
    // The failing attempt's state is not saved; resume re-runs `inc` from the last checkpoint,
    // and this time `fail_at` is still set in the stored state, so it fails again.
    let e = r.resume("s").await.unwrap_err();
    assert!(matches!(e, Error::Node { node: "inc", .. }), "{e}");
    let snap = r.state("s").await.unwrap().unwrap();
    assert_eq!(snap.state.n, 6);
    assert_eq!(snap.state.fail_at, Some(7));
}

#[tokio::test]
async fn session_exists_and_not_found() {
    let r = runner();
    r.start("s", state(1)).await.unwrap();
    let e = r.start("s", state(1)).await.unwrap_err();
    assert!(matches!(e, Error::SessionExists(ref s) if s == "s"), "{e}");
    assert!(matches!(
        r.resume("x").await.unwrap_err(),
        Error::SessionNotFound(_)
    ));
    assert!(matches!(
        r.history("x").await.unwrap_err(),
        Error::SessionNotFound(_)
    ));
    assert!(r.state("x").await.unwrap().is_none());
    assert!(matches!(
        r.fork("x", 0, "y").await.unwrap_err(),
        Error::SessionNotFound(_)
    ));
}

#[tokio::test]
async fn step_limit_leaves_the_session_resumable() {
    let r = runner().max_steps(5);
    let e = r.start("s", state(4)).await.unwrap_err();
    assert!(matches!(e, Error::StepLimit { limit: 5, .. }), "{e}");
    assert_eq!(r.state("s").await.unwrap().unwrap().seq, 5);
    let out = r.resume("s").await.unwrap();
    assert_eq!(out.into_state().n, 4);
}

#[tokio::test]
async fn node_error_keeps_the_last_checkpoint() {
    let r = runner();
    let e = r
        .start(
            "s",
            State {
                fail_at: Some(2),
                ..state(3)
            },
        )
        .await
        .unwrap_err();
    let Error::Node { node, source } = e else {
        panic!()
    };
    assert_eq!((node, source.to_string().as_str()), ("inc", "boom"));
    let snap = r.state("s").await.unwrap().unwrap();
    assert_eq!((snap.seq, snap.node.as_str(), snap.state.n), (2, "inc", 1));
}

#[tokio::test]
async fn fork_starts_a_new_session_from_an_old_checkpoint() {
    let r = runner();
    r.start("s", state(3)).await.unwrap();
    let snap = r.fork("s", 2, "t").await.unwrap();
    assert_eq!((snap.seq, snap.node.as_str(), snap.state.n), (2, "inc", 1));
    let out = r.resume("t").await.unwrap();
    assert_eq!(out.into_state().n, 3);
    let seqs = seqs(&r, "t").await;
    assert_eq!(seqs, [2, 3, 4, 5, 6]);
    let e = r.fork("s", 99, "u").await.unwrap_err();
    assert!(
        matches!(e, Error::CheckpointNotFound { seq: 99, .. }),
        "{e}"
    );
    let e = r.fork("s", 1, "t").await.unwrap_err();
    assert!(matches!(e, Error::SessionExists(_)), "{e}");
}

#[tokio::test]
async fn fork_of_a_waiting_checkpoint_waits() {
    let r = runner();
    r.start(
        "s",
        State {
            review_at: Some(1),
            ..state(2)
        },
    )
    .await
    .unwrap();
    let waiting_seq = r.state("s").await.unwrap().unwrap().seq;
    r.resume_with("s", Input::Review(1)).await.unwrap();
    r.fork("s", waiting_seq, "t").await.unwrap();
    assert!(matches!(
        r.resume("t").await.unwrap(),
        Outcome::Interrupted { .. }
    ));
    let out = r.resume_with("t", Input::Review(0)).await.unwrap();
    assert_eq!(out.into_state().n, 2);
}

#[tokio::test]
async fn graph_mismatch_is_refused_unless_forced() {
    struct Other;
    // Same workflow, other hash: reuse everything but the constant.
    impl crate::__private::Sealed for Other {}

    impl Workflow for Other {
        type State = State;
        type Input = Input;
        const NAME: &'static str = "flow";
        const GRAPH_HASH: u64 = 0x9999;
        const NODES: &'static [&'static str] = Flow::NODES;
        const MERMAID: &'static str = "";
        type Exec = Other;
    }

    impl crate::__private::Execute<Other> for Other {
        type Cursor = Cursor;
        const ENTRY: Cursor = Cursor::Inc;
        fn spec(cursor: Cursor) -> &'static NodeSpec {
            Flow::spec(cursor)
        }
        fn cursor_of(name: &str) -> Option<Cursor> {
            Flow::cursor_of(name)
        }
        fn input_node(input: &Input) -> Cursor {
            Flow::input_node(input)
        }
        fn step<'a>(
            _: &'a Other,
            cursor: Cursor,
            state: &'a mut State,
            ctx: &'a NodeCtx,
            input: Option<Input>,
        ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
            Flow::step(&Flow, cursor, state, ctx, input)
        }
    }
    let store = MemoryStore::new();
    Runner::new(Flow, store.clone())
        .max_steps(2)
        .start("s", state(3))
        .await
        .unwrap_err();
    let e = Runner::new(Other, store.clone())
        .resume("s")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::GraphMismatch {
                stored: 0x1234,
                compiled: 0x9999,
                ..
            }
        ),
        "{e}"
    );
    let forced = Runner::new(Other, store.clone()).on_graph_change(GraphChange::Force);
    assert_eq!(forced.resume("s").await.unwrap().into_state().n, 3);
}

#[tokio::test]
async fn two_runners_on_one_session_never_fork_the_chain() {
    let store = MemoryStore::new();
    let r = Runner::new(Flow, store.clone()).max_steps(1);
    r.start("s", state(50)).await.unwrap_err();
    let a = Runner::new(Flow, store.clone());
    let b = Runner::new(Flow, store.clone());
    let (ra, rb) = tokio::join!(a.resume("s"), b.resume("s"));
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    let conflicts = [&ra, &rb]
        .iter()
        .filter(|r| matches!(r, Err(Error::Conflict { .. })))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{ra:?} {rb:?}");
    let seqs: Vec<u64> = store
        .list("s")
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, (0..=100).collect::<Vec<_>>());
}
