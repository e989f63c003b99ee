//! The `LISTEN` side of [`Store::wait_for_work`](crate::store::Store::wait_for_work): a
//! connection of its own, outside the pool (a pooled connection would be handed to other
//! callers, and `LISTEN` belongs to one session), that turns the schema trigger's
//! notifications into wake-ups and timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client};

use super::error::Context;
use super::tls::Tls;
use crate::error::Result;

/// The most future deadlines remembered; beyond that, the waiters' timeout (the poll) finds
/// them.
const MAX_TIMERS: usize = 4096;
/// How long after a failed attempt to listen the next one is made: meanwhile waiters poll.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the listener tells waiters.
#[derive(Debug, Default)]
pub(super) struct Wake {
    /// A session became runnable now (or the listener lost its connection: look).
    pub(super) notify: Notify,
    /// Deadlines the trigger announced (`Wake::After`), on this process's monotonic clock.
    timers: Mutex<BinaryHeap<Reverse<Instant>>>,
}

/// The next announced deadline, as [`Wake::next_timer`] sees it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// One or more passed since the last look: look now.
    Due,
    /// The earliest one still to come.
    At(Instant),
    /// None known.
    None,
}

impl Wake {
    /// Wakes every waiter, and the next one to come if none waits now.
    pub(super) fn signal(&self) {
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// A notification's payload: the milliseconds until the session is due (0: now).
    fn on_payload(&self, payload: &str, received: Instant) {
        match payload.parse::<u64>() {
            Ok(ms) if ms > 0 => {
                let Some(at) = received.checked_add(Duration::from_millis(ms)) else {
                    return;
                };
                let mut timers = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
                if timers.len() < MAX_TIMERS {
                    timers.push(Reverse(at));
                }
                drop(timers);
                // A waiter sleeping past this deadline must shorten its sleep.
                self.notify.notify_waiters();
            }
            // Due now, or a payload of another sender: look.
            _ => self.signal(),
        }
    }

    /// Forgets the deadlines that have passed at `now` and says what is next.
    pub(super) fn next_timer(&self, now: Instant) -> Timer {
        let mut timers = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut due = false;
        while timers.peek().is_some_and(|Reverse(at)| *at <= now) {
            timers.pop();
            due = true;
        }
        match timers.peek() {
            _ if due => Timer::Due,
            Some(Reverse(at)) => Timer::At(*at),
            None => Timer::None,
        }
    }
}

/// The listening connection, opened on demand and again after it is lost.
pub(super) struct Listener {
    config: tokio_postgres::Config,
    /// The pool's TLS: the same `sslmode`, the same roots.
    tls: Tls,
    channel: String,
    /// The client (dropping it closes the connection) and the task reading notifications.
    connection: Option<(Client, JoinHandle<()>)>,
    last_failure: Option<Instant>,
}

impl Listener {
    pub(super) fn new(config: tokio_postgres::Config, tls: Tls, channel: String) -> Self {
        Listener {
            config,
            tls,
            channel,
            connection: None,
            last_failure: None,
        }
    }

    /// Makes sure a connection listens: `Ok(true)` when it was opened just now (so
    /// notifications may have been missed before), `Ok(false)` when it was listening already,
    /// an error when it cannot listen (then the caller polls).
    pub(super) async fn ensure(&mut self, wake: &Arc<Wake>, context: &Context) -> Result<bool> {
        if let Some((_, task)) = &self.connection {
            if !task.is_finished() {
                return Ok(false);
            }
            self.connection = None;
        }
        if let Some(failed) = self.last_failure
            && failed.elapsed() < RETRY_AFTER
        {
            return Err(context.refuse("listening for work failed a moment ago".to_owned()));
        }
        match self.start(wake, context).await {
            Ok(connection) => {
                self.connection = Some(connection);
                self.last_failure = None;
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot LISTEN for work; polling instead");
                self.last_failure = Some(Instant::now());
                Err(error)
            }
        }
    }

    // `Tls` is `NoTls` (a `Copy` type) without the feature `postgres-tls`, rustls's connector
    // (not `Copy`) with it.
    #[cfg_attr(not(feature = "postgres-tls"), allow(clippy::clone_on_copy))]
    async fn start(&self, wake: &Arc<Wake>, context: &Context) -> Result<(Client, JoinHandle<()>)> {
        let connecting = tokio::time::timeout(
            context.connect_timeout,
            self.config.connect(self.tls.clone()),
        );
        let (client, mut connection) = match connecting.await {
            Ok(connected) => connected.map_err(|e| context.error("listen for work", e))?,
            Err(_) => return Err(context.timed_out()),
        };
        let wake = Arc::clone(wake);
        // Drives the connection (the client's `LISTEN` too) and reads its notifications. It
        // ends when the connection does: lost, or closed because the store (and so the
        // client) was dropped.
        let task = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(note)) => {
                        wake.on_payload(note.payload(), Instant::now());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            // Lost: let waiters look now; the next wait opens a new connection.
            wake.signal();
        });
        // The channel name is ours (letters, digits and `_`): no quoting needed.
        client
            .batch_execute(&format!("LISTEN {}", self.channel))
            .await
            .map_err(|e| context.error("listen for work", e))?;
        Ok((client, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_wake_ups_or_timers() {
        let wake = Wake::default();
        let now = Instant::now();
        assert_eq!(wake.next_timer(now), Timer::None);
        wake.on_payload("250", now);
        wake.on_payload("100", now);
        let first = now + Duration::from_millis(100);
        assert_eq!(wake.next_timer(now), Timer::At(first));
        // Once the first passed: due (once), then the second is next.
        assert_eq!(wake.next_timer(first), Timer::Due);
        let second = now + Duration::from_millis(250);
        assert_eq!(wake.next_timer(first), Timer::At(second));
        // Garbage or 0: a plain wake-up, no timer.
        wake.on_payload("soon", now);
        wake.on_payload("0", now);
        assert_eq!(wake.next_timer(first), Timer::At(second));
    }
}
