//! Live progress of a spawned run: the [`Event`] stream and the [`RunHandle`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// An attempt of a branch returned (with an output, an error, or waiting for input).
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
        (EventSink { sender, missed }, events)
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
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send(event) {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
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
