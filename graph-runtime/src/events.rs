//! Live progress of a spawned run: the [`Event`] stream and the [`RunHandle`].

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{Error, Outcome, Result};

/// What happened in a run, in order. Received from [`RunHandle::events`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A node attempt began.
    StepStarted {
        /// The node.
        node: &'static str,
        /// The sequence number the step's checkpoint will have.
        seq: u64,
        /// The attempt, starting at 1.
        attempt: u32,
    },
    /// A node returned (successfully or not).
    StepFinished {
        /// The node.
        node: &'static str,
        /// The sequence number of the step.
        seq: u64,
        /// How long the attempt took.
        duration: Duration,
    },
    /// An attempt of a branch of a parallel region began.
    BranchStarted {
        /// The branch node (for a map, the map node).
        node: &'static str,
        /// For a map, the index of the item.
        item: Option<usize>,
        /// The sequence number of the checkpoint that opened the region.
        seq: u64,
        /// The attempt, starting at 1.
        attempt: u32,
    },
    /// A parallel region opened: a fan-out's branches or a map's items are about to run.
    ///
    /// Sent once per region, by the run that makes its frontier: the step before the join
    /// (the fan-out's source, or the node that returned the map's items), or the first run
    /// to reach a join whose checkpoint holds no frontier (saved by a release that kept
    /// none; a fan-out then starts over). A run that goes on with a region a checkpoint
    /// holds ([`Runner::resume`](crate::Runner::resume), a decision, a worker's run) does
    /// not send it again: read the region as it stands from
    /// [`Snapshot::progress`](crate::Snapshot::progress).
    RegionOpened {
        /// The region's join: the node that runs once every branch has settled, and the
        /// node a [`Snapshot`](crate::Snapshot) names meanwhile.
        join: &'static str,
        /// The sequence number of the step that opened the region: the `seq` of its
        /// branches' events.
        seq: u64,
        /// The branch nodes: a fan-out's, one per branch in the order of its `&` list; a
        /// map's node alone (it runs once per item).
        branches: Vec<&'static str>,
        /// For a map, how many items it runs, one branch each (from 0); `None` for a
        /// fan-out, whose branches are `branches`.
        items: Option<usize>,
    },
    /// A branch of a parallel region (or a map's item) settled: it has its output, failed
    /// for good, had its failure collected for the join, or waits for a decision.
    ///
    /// Sent once each time a slot of the region settles in a run, after the
    /// [`BranchFinished`](Event::BranchFinished) of its last attempt: a branch that fails
    /// once and then succeeds is settled once, as [`BranchOutcome::Succeeded`]. A slot
    /// settled by an earlier run is not sent again; one that waits, or that failed and ended
    /// the run, settles again in the run that answers or re-runs it. A branch cancelled
    /// because a sibling failed is not settled (it runs again on resume), and a crash before
    /// a branch's record is saved re-runs it, so its outcome may then be sent twice.
    BranchSettled {
        /// The branch node (for a map, the map node).
        node: &'static str,
        /// For a map, the index of the item.
        item: Option<usize>,
        /// The sequence number of the checkpoint that opened the region.
        seq: u64,
        /// How many attempts this run made of it: 0 for an interrupt branch that waits
        /// without running.
        attempts: u32,
        /// How it settled.
        outcome: BranchOutcome,
    },
    /// An attempt of a branch returned (with an output, an error, or waiting for input).
    ///
    /// Sent for every attempt, a failed one that is retried included: what the branch came
    /// to is the [`BranchSettled`](Event::BranchSettled) that follows its last attempt.
    BranchFinished {
        /// The branch node (for a map, the map node).
        node: &'static str,
        /// For a map, the index of the item.
        item: Option<usize>,
        /// The sequence number of the checkpoint that opened the region.
        seq: u64,
        /// How long the attempt took.
        duration: Duration,
    },
    /// An attempt of a branch failed and will be retried after `delay`.
    BranchRetrying {
        /// The branch node (for a map, the map node).
        node: &'static str,
        /// For a map, the index of the item.
        item: Option<usize>,
        /// The attempt that comes next.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// What the failed attempt returned, with its causes, on one line.
        error: String,
    },
    /// A checkpoint was saved.
    CheckpointSaved {
        /// Its sequence number.
        seq: u64,
        /// Its encoded size.
        bytes: usize,
    },
    /// A node attempt failed and will be retried after `delay`.
    Retrying {
        /// The node.
        node: &'static str,
        /// The attempt that comes next.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// What the failed attempt returned, with its causes, on one line.
        error: String,
    },
    /// The run stopped at an interrupt node to wait for input.
    Interrupted {
        /// The interrupt node.
        node: &'static str,
    },
    /// The run reached `END`.
    Completed,
    /// The run ended with an error.
    Failed {
        /// The error with its causes, on one line, each once: for example
        /// "node \`charge\` failed: card declined" (the chain of
        /// [`source()`](std::error::Error::source)s, which a string cannot keep).
        error: String,
    },
    /// A value a node sent with [`NodeCtx::emit`](crate::NodeCtx::emit).
    Custom {
        /// The node that sent it.
        node: &'static str,
        /// The step's sequence number.
        seq: u64,
        /// The value.
        payload: Payload,
    },
    /// The listener fell behind and this many events were dropped.
    Lagged {
        /// How many events were not delivered.
        missed: u64,
    },
    /// An event of a child session that a subgraph node of this run runs
    /// (`#[node(subgraph = m)]`), as the child's own run sent it: its steps, custom events,
    /// checkpoints, its interrupt, its end. Sent only to the listener of a run that has one
    /// ([`RunHandle::events`]); a run without a listener builds none.
    ///
    /// `path` names the subgraph node that runs the child (`research`); for a child of a
    /// child, the subgraph nodes from the outermost in, joined by `/` (`research/verify`).
    /// The inner `event` is never itself a `Child`: one level of tagging carries the whole
    /// path. A [`Lagged`](Event::Lagged) counts the events of the run and its children
    /// together, and is never tagged.
    ///
    /// ```
    /// use graph_runtime::Event;
    ///
    /// fn describe(event: &Event) -> String {
    ///     match event {
    ///         Event::Child { path, event } => format!("{path}: {}", describe(event)),
    ///         Event::StepStarted { node, .. } => format!("{node} started"),
    ///         other => format!("{other:?}"),
    ///     }
    /// }
    /// # let _ = describe;
    /// ```
    Child {
        /// The subgraph node(s) from this run down to the child (`research`,
        /// `research/verify`).
        path: &'static str,
        /// What the child's run sent.
        event: Box<Event>,
    },
}

/// How a branch of a parallel region (or a map's item) settled: what
/// [`Event::BranchSettled`] says.
///
/// ```
/// use graph_runtime::BranchOutcome;
///
/// let outcome = BranchOutcome::CollectedAsFailure { error: "api down".into() };
/// assert!(outcome.is_final());
/// assert!(!BranchOutcome::Waiting.is_final());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BranchOutcome {
    /// It returned its output, which is saved for the join.
    Succeeded,
    /// It failed after its retries and its join does not collect failures: the run ends
    /// with [`Error::Node`] naming it, and a later `resume` runs it again.
    Failed {
        /// What its last attempt returned, with its causes, on one line.
        error: String,
    },
    /// It failed after its retries and its join takes `Result<O, Failure>`: the failure is
    /// saved and handed to the join as a [`Failure`](crate::Failure).
    CollectedAsFailure {
        /// What its last attempt returned, with its causes, on one line.
        error: String,
    },
    /// An interrupt branch without its decision: the session waits at it.
    Waiting,
}

impl BranchOutcome {
    /// Whether the branch is done for its region: succeeded or collected as a failure, not
    /// waiting and not failed (which a later run re-runs).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            BranchOutcome::Succeeded | BranchOutcome::CollectedAsFailure { .. }
        )
    }
}

/// A custom event's value, shared so that [`Event`] stays cheap to clone.
#[derive(Clone)]
pub struct Payload(Arc<dyn Any + Send + Sync>);

impl Payload {
    pub(crate) fn new<T: Any + Send + Sync>(value: T) -> Self {
        Payload(Arc::new(value))
    }

    /// The value, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Payload(..)")
    }
}

/// The sending side, shared by the step loop and every `NodeCtx` of one run.
#[derive(Clone)]
pub(crate) struct EventSink {
    sender: mpsc::Sender<Event>,
    missed: Arc<AtomicU64>,
    /// For the run of a child session: the path of subgraph nodes from the listener's run
    /// down to it, with which every event is tagged ([`Event::Child`]).
    path: Option<&'static str>,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("missed", &self.missed)
            .finish()
    }
}

impl EventSink {
    pub(crate) fn channel(capacity: usize) -> (EventSink, Events) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let events = Events {
            receiver: Some(receiver),
            missed: Arc::clone(&missed),
        };
        (
            EventSink {
                sender,
                missed,
                path: None,
            },
            events,
        )
    }

    /// The sink of the child session that the subgraph node `node` of this sink's run runs:
    /// the same listener, every event tagged with the path to the child
    /// (`research`, or `research/verify` below a child's `research`).
    pub(crate) fn child(&self, node: &str) -> EventSink {
        let path = subgraph_path(self.path, node);
        EventSink {
            sender: self.sender.clone(),
            missed: Arc::clone(&self.missed),
            path: Some(path),
        }
    }

    /// Sends without ever waiting: a full buffer drops the event and counts it, so a slow or
    /// absent listener never slows the run down.
    pub(crate) fn send(&self, event: Event) {
        // Report drops in order as soon as there is room; `Events` reports what is left once
        // the listener has drained the buffer.
        if self.missed.load(Ordering::Relaxed) > 0 {
            let missed = self.missed.swap(0, Ordering::Relaxed);
            if missed > 0 && self.sender.try_send(Event::Lagged { missed }).is_err() {
                self.missed.fetch_add(missed, Ordering::Relaxed);
            }
        }
        let event = match self.path {
            None => event,
            Some(path) => Event::Child {
                path,
                event: Box::new(event),
            },
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send(event) {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `{outer}/{node}` (or `node` alone), the path of a subgraph node below another, as a
/// `&'static str`, so that events and waits can name it without an allocation each.
/// Each distinct path is allocated once for the life of the process: the paths are a
/// program's subgraph nodes (and the interrupt nodes of their children) along its nesting,
/// a small set.
pub(crate) fn subgraph_path(outer: Option<&str>, node: &str) -> &'static str {
    static PATHS: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let path = match outer {
        Some(outer) => format!("{outer}/{node}"),
        None => node.to_owned(),
    };
    let mut paths = PATHS.lock().unwrap_or_else(PoisonError::into_inner);
    let paths = paths.get_or_insert_with(HashSet::new);
    if let Some(known) = paths.get(path.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(path.into_boxed_str());
    paths.insert(leaked);
    leaked
}

/// The events of one run, as a [`futures_core::Stream`]; it ends when the run ends.
#[derive(Debug)]
pub struct Events {
    receiver: Option<mpsc::Receiver<Event>>,
    missed: Arc<AtomicU64>,
}

impl Events {
    /// The next event, or `None` once the run has ended and every event was received.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let Some(receiver) = &mut self.receiver else {
            return Poll::Ready(None);
        };
        match receiver.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(event)),
            drained => {
                let missed = self.missed.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    Poll::Ready(Some(Event::Lagged { missed }))
                } else {
                    drained
                }
            }
        }
    }
}

impl futures_core::Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}

/// A run spawned on the tokio runtime by [`Runner::spawn`](crate::Runner::spawn) and friends.
///
/// Await it for the run's result. Dropping it does not stop the run (as with
/// [`tokio::task::JoinHandle`]); call [`RunHandle::cancel`] for that.
#[derive(Debug)]
pub struct RunHandle<T> {
    task: JoinHandle<Result<Outcome<T>>>,
    events: Events,
    cancel: CancellationToken,
    session: Arc<str>,
}

impl<T> RunHandle<T> {
    pub(crate) fn new(
        task: JoinHandle<Result<Outcome<T>>>,
        events: Events,
        cancel: CancellationToken,
        session: Arc<str>,
    ) -> Self {
        RunHandle {
            task,
            events,
            cancel,
            session,
        }
    }

    /// The run's events. The first call takes the stream (events since the start are
    /// buffered, up to the runner's event capacity); later calls return a stream that ends
    /// at once.
    pub fn events(&mut self) -> Events {
        Events {
            receiver: self.events.receiver.take(),
            missed: Arc::clone(&self.events.missed),
        }
    }

    /// Stops the run: the running node's future is dropped at its next `.await`, no checkpoint
    /// is written for it, and the run ends with [`Error::Cancelled`]. The session stays at its
    /// last checkpoint, so `resume` continues it. Cancelling a finished run does nothing.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the run has ended (its result is ready).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl<T> Future for RunHandle<T> {
    type Output = Result<Outcome<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Pin::new(&mut this.task)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                Err(e) => Err(Error::Panicked {
                    session: this.session.to_string(),
                    message: panic_message(e),
                }),
            })
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if error.is_cancelled() {
        return "the task was aborted".to_owned();
    }
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a node panicked".to_owned()),
        Err(_) => "the task failed".to_owned(),
    }
}
