//! Error messages print each cause once: an error with a `source()` leaves it out of its own
//! message, and the strings that stand for an error with no `source()` to walk
//! (`Failure::error`, `Event::Retrying`, `Event::Failed`) carry the whole chain.

use std::error::Error as _;
use std::fmt;
use std::time::Duration;

use graph_runtime::prelude::*;
use graph_runtime::{Error, Event, TimedOut};
use serde::{Deserialize, Serialize};

/// What the payment provider's client says, with the I/O error that caused it as its source.
#[derive(Debug)]
pub struct ProviderError(std::io::Error);

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("provider unreachable")
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn refused() -> ProviderError {
    ProviderError(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ))
}

/// Every message of `e`'s chain, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push(c.to_string());
        cause = c.source();
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Payment {
    /// Sleep this long in `charge` (to time it out).
    pub sleep_ms: u64,
    /// What `refund` read from `ctx.failure()`.
    pub failure: Option<(String, String)>,
}

#[workflow(state = Payment)]
pub mod pay {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);
    edge!(charge -> refund on error);
    edge!(refund -> END);

    #[node(retry = 1, backoff_ms = 1, jitter = false, timeout_ms = 50)]
    async fn charge(p: &mut Payment) -> Result<(), ProviderError> {
        if p.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.sleep_ms)).await;
        }
        Err(refused())
    }

    #[node]
    async fn refund(p: &mut Payment, ctx: &NodeCtx) {
        p.failure = ctx
            .failure()
            .map(|f| (f.node().to_owned(), f.error().to_owned()));
    }
}

/// The same node with no error edge: the run ends with `Error::Node`.
#[workflow(state = Payment)]
pub mod pay_or_fail {
    use super::*;

    edge!(START -> charge);
    edge!(charge -> END);

    #[node(retry = 1, backoff_ms = 1, jitter = false)]
    async fn charge(_p: &mut Payment) -> Result<(), ProviderError> {
        Err(refused())
    }
}

#[tokio::test]
async fn a_node_error_is_the_source_not_part_of_the_message() {
    let runner = Runner::new(pay_or_fail::Workflow, MemoryStore::new());
    let e = runner.start("p", Payment::default()).await.unwrap_err();
    assert!(matches!(e, Error::Node { node: "charge", .. }), "{e:?}");
    assert_eq!(e.to_string(), "node `charge` failed");
    assert_eq!(
        chain(&e),
        [
            "node `charge` failed",
            "provider unreachable",
            "connection refused"
        ]
    );
}

#[tokio::test]
async fn a_store_error_is_the_source_not_part_of_the_message() {
    let e = Error::Store(Box::new(refused()));
    assert_eq!(e.to_string(), "the store failed");
    assert_eq!(
        chain(&e),
        [
            "the store failed",
            "provider unreachable",
            "connection refused"
        ]
    );
}

#[tokio::test]
async fn busy_and_damaged_stores_name_their_kind_not_their_source() {
    let busy = Error::StoreBusy(Box::new(refused()));
    assert_eq!(
        busy.to_string(),
        "the store is busy (locked by another connection or process); retrying later can succeed"
    );
    assert_eq!(
        chain(&busy)[1..],
        ["provider unreachable", "connection refused"]
    );
    assert!(busy.is_retryable());
    let damaged = Error::StoreDamaged(Box::new(refused()));
    assert_eq!(
        damaged.to_string(),
        "the store is damaged or is not a checkpoint store; retrying cannot help"
    );
    assert_eq!(
        chain(&damaged)[1..],
        ["provider unreachable", "connection refused"]
    );
    assert!(!damaged.is_retryable());
    assert_eq!(
        damaged.store_source().map(ToString::to_string).as_deref(),
        Some("provider unreachable")
    );
}

#[tokio::test]
async fn a_timeout_names_the_node_once() {
    let e = TimedOut {
        node: "charge",
        after: Duration::from_millis(20),
    };
    assert_eq!(e.to_string(), "timed out after 20ms");
    assert!(e.source().is_none());
    let e = Error::Node {
        node: "charge",
        source: Box::new(e),
    };
    assert_eq!(chain(&e), ["node `charge` failed", "timed out after 20ms"]);
}

#[tokio::test]
async fn failure_and_events_carry_the_whole_chain_once() {
    let runner = Runner::new(pay::Workflow, MemoryStore::new());
    let mut handle = runner.spawn("p", Payment::default());
    let mut events = handle.events();
    let out = handle.await.unwrap();
    let mut retrying = Vec::new();
    while let Some(event) = events.next().await {
        if let Event::Retrying { error, .. } = event {
            retrying.push(error);
        }
    }
    assert_eq!(retrying, ["provider unreachable: connection refused"]);
    assert_eq!(
        out.into_state().failure,
        Some((
            "charge".to_owned(),
            "provider unreachable: connection refused".to_owned()
        ))
    );

    let runner = Runner::new(pay_or_fail::Workflow, MemoryStore::new());
    let mut handle = runner.spawn("p", Payment::default());
    let mut events = handle.events();
    assert!(handle.await.is_err());
    let mut failed = Vec::new();
    while let Some(event) = events.next().await {
        if let Event::Failed { error } = event {
            failed.push(error);
        }
    }
    assert_eq!(
        failed,
        ["node `charge` failed: provider unreachable: connection refused"]
    );
}

#[tokio::test]
async fn a_timed_out_attempt_reads_once_in_the_failure() {
    let runner = Runner::new(pay::Workflow, MemoryStore::new());
    let payment = Payment {
        sleep_ms: 2_000,
        ..Payment::default()
    };
    let out = runner.start("p", payment).await.unwrap();
    assert_eq!(
        out.into_state().failure,
        Some(("charge".to_owned(), "timed out after 50ms".to_owned()))
    );
}
