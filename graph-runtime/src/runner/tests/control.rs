//! Retries, timeouts, error edges, events and cancellation, on a hand-written `Workflow` impl.
#![allow(clippy::manual_async_fn)] // the hand-written impls spell out what the macro generates

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::__private::Transition;
use crate::{
    CancellationToken, Error, Event, MemoryStore, NodeCtx, NodeSpec, Outcome, Runner, TimedOut,
    Workflow,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, crate::StateSchema)]
#[state_schema(crate = crate)]
struct Job {
    log: Vec<String>,
    /// How long each `work` attempt sleeps.
    sleep_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Work,
    Done,
    Fallback,
}

#[derive(Debug)]
struct Refused(&'static str);
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for Refused {}

/// `work` fails its first `failures` attempts (permanently if `permanent`).
#[derive(Default)]
struct Flaky {
    failures: u32,
    permanent: bool,
    attempts: AtomicU32,
    panic: bool,
}

static WORK: NodeSpec = NodeSpec::new("work")
    .retry(2)
    .timeout_ms(50)
    .backoff_ms(10)
    .jitter(false);
static DONE: NodeSpec = NodeSpec::new("done");
static FALLBACK: NodeSpec = NodeSpec::new("fallback");

impl crate::__private::Sealed for Flaky {}

impl Workflow for Flaky {
    type State = Job;
    type Input = ();
    const NAME: &'static str = "flaky";
    const GRAPH_HASH: u64 = 7;
    const NODES: &'static [&'static str] = &["work", "done", "fallback"];
    const MERMAID: &'static str = "";

    type Exec = Flaky;
}

impl crate::__private::Execute<Flaky> for Flaky {
    type Cursor = Cursor;
    const ENTRY: Cursor = Cursor::Work;
    fn spec(cursor: Cursor) -> &'static NodeSpec {
        match cursor {
            Cursor::Work => &WORK,
            Cursor::Done => &DONE,
            Cursor::Fallback => &FALLBACK,
        }
    }
    fn cursor_of(name: &str) -> Option<Cursor> {
        <Flaky as Workflow>::NODES
            .iter()
            .position(|n| *n == name)
            .map(|i| [Cursor::Work, Cursor::Done, Cursor::Fallback][i])
    }
    fn input_node(_: &()) -> Cursor {
        Cursor::Work
    }
    fn error_route(cursor: Cursor) -> Option<Cursor> {
        (cursor == Cursor::Work).then_some(Cursor::Fallback)
    }
    fn step<'a>(
        workflow: &'a Flaky,
        cursor: Cursor,
        state: &'a mut Job,
        ctx: &'a NodeCtx,
        _input: Option<()>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            match cursor {
                Cursor::Work => {
                    let n = workflow.attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    // A partial change that must vanish if this attempt fails.
                    state.log.push(format!("work attempt {}", ctx.attempt()));
                    ctx.emit(n);
                    if workflow.panic {
                        panic!("node exploded");
                    }
                    tokio::time::sleep(Duration::from_millis(state.sleep_ms)).await;
                    if n <= workflow.failures {
                        let e = Box::new(Refused("refused"));
                        return if workflow.permanent {
                            Transition::FailedPermanently(e)
                        } else {
                            Transition::Failed(e)
                        };
                    }
                    Transition::Next(Cursor::Done)
                }
                Cursor::Done => {
                    state.log.push("done".into());
                    Transition::End
                }
                Cursor::Fallback => {
                    let failure = ctx.failure().expect("the error node sees the failure");
                    state.log.push(format!(
                        "fallback after {}: {}",
                        failure.node(),
                        failure.error()
                    ));
                    Transition::End
                }
            }
        }
    }
}

fn runner(flaky: Flaky) -> Runner<Flaky, MemoryStore> {
    Runner::new(flaky, MemoryStore::new())
}

// This graph declares an error edge from `work`, so a failure past the retries ends in
// `fallback`; failures without an error edge are covered in `runner_tests`.

#[tokio::test(start_paused = true)]
async fn a_retry_never_sees_the_failed_attempts_changes() {
    let r = runner(Flaky {
        failures: 2,
        ..Flaky::default()
    });
    let out = r.start("s", Job::default()).await.unwrap();
    // Only the third attempt's change survives.
    assert_eq!(out.into_state().log, ["work attempt 3", "done"]);
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_take_the_error_edge_with_the_state_from_before() {
    let r = runner(Flaky {
        failures: 10,
        ..Flaky::default()
    });
    let out = r.start("s", Job::default()).await.unwrap();
    assert_eq!(out.into_state().log, ["fallback after work: refused"]);
    assert_eq!(
        r.workflow().attempts.load(Ordering::SeqCst),
        3,
        "retry = 2: three attempts"
    );
    // The failure was saved with the checkpoint before the error node ran.
    let nodes: Vec<String> = r
        .history("s")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(nodes, ["work", "fallback", "END"]);
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let r = runner(Flaky {
        failures: 10,
        permanent: true,
        ..Flaky::default()
    });
    r.start("s", Job::default()).await.unwrap();
    assert_eq!(r.workflow().attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_shorter_than_the_node_counts_as_a_failed_attempt() {
    let r = runner(Flaky::default());
    let out = r
        .start(
            "s",
            Job {
                sleep_ms: 1_000,
                ..Job::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.workflow().attempts.load(Ordering::SeqCst), 3);
    let log = out.into_state().log;
    assert_eq!(log, ["fallback after work: timed out after 50ms"]);
    let e = TimedOut {
        node: "work",
        after: Duration::from_millis(50),
    };
    assert_eq!(e.to_string(), "timed out after 50ms");
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_without_jitter() {
    let r = runner(Flaky {
        failures: 2,
        ..Flaky::default()
    });
    let mut handle = r.spawn("s", Job::default());
    let mut events = handle.events();
    handle.await.unwrap();
    let mut delays = Vec::new();
    while let Some(event) = events.next().await {
        if let Event::Retrying { delay, attempt, .. } = event {
            delays.push((attempt, delay));
        }
    }
    assert_eq!(
        delays,
        [
            (2, Duration::from_millis(10)),
            (3, Duration::from_millis(20))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn events_tell_the_story_of_a_run() {
    let r = runner(Flaky {
        failures: 1,
        ..Flaky::default()
    });
    let mut handle = r.spawn("s", Job::default());
    let mut events = handle.events();
    assert!(matches!(handle.await.unwrap(), Outcome::Completed(_)));
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        seen.push(match event {
            Event::StepStarted { node, seq, attempt } => format!("start {node} {seq} #{attempt}"),
            Event::StepFinished { node, .. } => format!("finish {node}"),
            Event::CheckpointSaved { seq, bytes } => {
                assert!(bytes > 0);
                format!("saved {seq}")
            }
            Event::Retrying { node, attempt, .. } => format!("retry {node} #{attempt}"),
            Event::Custom { payload, .. } => {
                format!("custom {}", payload.downcast_ref::<u32>().unwrap())
            }
            Event::Completed => "completed".into(),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(
        seen,
        [
            "saved 0",
            "start work 1 #1",
            "custom 1",
            "finish work",
            "retry work #2",
            "start work 1 #2",
            "custom 2",
            "finish work",
            "saved 1",
            "start done 2 #1",
            "finish done",
            "saved 2",
            "completed",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_the_node_and_keeps_the_last_checkpoint() {
    let r = runner(Flaky::default());
    let handle = r.spawn(
        "s",
        Job {
            sleep_ms: 40,
            ..Job::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    handle.cancel();
    let e = handle.await.unwrap_err();
    assert!(matches!(e, Error::Cancelled(ref s) if s == "s"), "{e}");
    let snap = r.state("s").await.unwrap().unwrap();
    assert_eq!((snap.seq, snap.node.as_str()), (0, "work"));
    assert!(
        snap.state.log.is_empty(),
        "no checkpoint for the cancelled node"
    );
    // A cancelled run resumes.
    let out = r.resume("s").await.unwrap();
    assert_eq!(out.into_state().log, ["work attempt 1", "done"]);
}

#[tokio::test(start_paused = true)]
async fn cancel_of_a_finished_run_changes_nothing() {
    let r = runner(Flaky::default());
    let handle = r.spawn("s", Job::default());
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handle.cancel();
    assert!(matches!(handle.await.unwrap(), Outcome::Completed(_)));
}

#[tokio::test(start_paused = true)]
async fn the_runners_token_cancels_its_runs() {
    let token = CancellationToken::new();
    let r = runner(Flaky::default()).cancellation_token(token.clone());
    let run = {
        let r = r.clone();
        tokio::spawn(async move {
            r.start(
                "s",
                Job {
                    sleep_ms: 40,
                    ..Job::default()
                },
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    token.cancel();
    assert!(matches!(run.await.unwrap(), Err(Error::Cancelled(_))));
    // Every later run of this runner is cancelled before its first node.
    assert!(matches!(r.resume("s").await, Err(Error::Cancelled(_))));
}

#[tokio::test]
async fn a_panicking_node_is_reported_not_propagated() {
    let r = runner(Flaky {
        panic: true,
        ..Flaky::default()
    });
    let e = r.spawn("s", Job::default()).await.unwrap_err();
    assert!(
        matches!(e, Error::Panicked { ref message, .. } if message == "node exploded"),
        "{e}"
    );
    assert_eq!(r.state("s").await.unwrap().unwrap().seq, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slow_listener_gets_lagged_not_a_slow_run() {
    let r = runner(Flaky {
        failures: 2,
        ..Flaky::default()
    })
    .event_capacity(2);
    let mut handle = r.spawn("s", Job::default());
    let mut events = handle.events();
    handle.await.unwrap();
    let mut lagged = 0;
    let mut total = 0;
    while let Some(event) = events.next().await {
        total += 1;
        if let Event::Lagged { missed } = event {
            lagged += missed;
        }
    }
    // Two buffered events, then one notice for everything dropped after them.
    assert_eq!(total, 3, "received {total}");
    assert!(lagged >= 5, "lagged {lagged}");
}

mod error_edge_to_an_interrupt {
    //! An error edge may lead to an interrupt node: the failure survives the wait.
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum C {
        Work,
        Ask,
    }

    pub(super) struct Escalating;

    static WORK: NodeSpec = NodeSpec::new("work");
    static ASK: NodeSpec = NodeSpec::new("ask").interrupt();

    impl crate::__private::Sealed for Escalating {}

    impl Workflow for Escalating {
        type State = Job;
        type Input = String;
        const NAME: &'static str = "escalating";
        const GRAPH_HASH: u64 = 8;
        const NODES: &'static [&'static str] = &["work", "ask"];
        const MERMAID: &'static str = "";

        type Exec = Escalating;
    }

    impl crate::__private::Execute<Escalating> for Escalating {
        type Cursor = C;
        const ENTRY: C = C::Work;
        fn spec(cursor: C) -> &'static NodeSpec {
            match cursor {
                C::Work => &WORK,
                C::Ask => &ASK,
            }
        }
        fn cursor_of(name: &str) -> Option<C> {
            match name {
                "work" => Some(C::Work),
                "ask" => Some(C::Ask),
                _ => None,
            }
        }
        fn input_node(_: &String) -> C {
            C::Ask
        }
        fn error_route(cursor: C) -> Option<C> {
            (cursor == C::Work).then_some(C::Ask)
        }
        fn step<'a>(
            _: &'a Escalating,
            cursor: C,
            state: &'a mut Job,
            ctx: &'a NodeCtx,
            input: Option<String>,
        ) -> impl Future<Output = Transition<C>> + Send + 'a {
            async move {
                match cursor {
                    C::Work => Transition::Failed(Box::new(Refused("no stock"))),
                    C::Ask => {
                        let failure = ctx
                            .failure()
                            .map(|f| format!("{}: {}", f.node(), f.error()));
                        state.log.push(format!(
                            "{} / {}",
                            failure.unwrap_or_default(),
                            input.unwrap_or_default()
                        ));
                        Transition::End
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn the_failure_survives_the_wait() {
        let r = Runner::new(Escalating, MemoryStore::new());
        let out = r.start("s", Job::default()).await.unwrap();
        assert!(matches!(out, Outcome::Interrupted { node: "ask", .. }));
        let done = r.resume_with("s", "backorder".to_owned()).await.unwrap();
        assert_eq!(done.into_state().log, ["work: no stock / backorder"]);
    }
}
