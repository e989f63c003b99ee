//! Compile-time-checked, durable workflow graphs.
//!
//! A `#[workflow]` module of `#[node] async fn`s and `edge!` declarations becomes a typed state
//! machine: a misspelled node, a node with no way out, an unreachable node or a route to a node
//! that is not a declared successor is a compile error. A small tokio [`Runner`] saves a
//! checkpoint after steps, resumes after crashes, waits for typed human decisions, and keeps a
//! history that can be listed, rewound and forked.
//!
//! # A first workflow
//!
//! ```
//! use graph_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
//! pub struct Ticket { pub text: String, pub urgent: bool, pub answer: Option<String> }
//!
//! #[workflow(state = Ticket)]
//! pub mod support {
//!     use super::*;
//!
//!     edge!(START -> triage);
//!     edge!(triage -> escalate | reply);   // a branch: `triage` returns `triage::Next`
//!     edge!(escalate -> reply);
//!     edge!(reply -> END);
//!
//!     #[node]
//!     async fn triage(t: &mut Ticket) -> triage::Next {
//!         t.urgent = t.text.contains("down");
//!         if t.urgent { triage::Next::Escalate } else { triage::Next::Reply }
//!     }
//!
//!     #[node(interrupt)]                    // waits for a human: the input type is `String`
//!     async fn escalate(t: &mut Ticket, note: String) {
//!         t.answer = Some(note);
//!     }
//!
//!     #[node]
//!     async fn reply(t: &mut Ticket) {
//!         t.answer.get_or_insert_with(|| "thanks, we are on it".into());
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), graph_runtime::Error> {
//! let runner = Runner::new(support::Workflow, MemoryStore::new());
//! let ticket = Ticket { text: "site is down".into(), ..Ticket::default() };
//! let out = runner.start("t-1", ticket).await?;
//! assert!(matches!(out, Outcome::Interrupted { node: "escalate", .. }));
//!
//! // Later, perhaps in another process that opens the same store:
//! let done = runner.resume_with("t-1", support::Input::Escalate("rebooted".into())).await?;
//! assert_eq!(done.into_state().answer.as_deref(), Some("rebooted"));
//! assert_eq!(runner.history("t-1").await?.len(), 5);
//! # Ok(()) }
//! ```
//!
//! # What runs when
//!
//! - A **step** runs one node, then saves a checkpoint (per [`CheckpointPolicy`]) holding the
//!   state after the node and the cursor (the next node). [`Runner::resume`] starts at the
//!   cursor.
//! - **Exactly-once state transitions, at-least-once node execution**: a node whose checkpoint
//!   was not saved runs again on resume, with the same [`NodeCtx::idempotency_key`].
//! - **One writer per session**: a store accepts a checkpoint only if its latest one is the one
//!   the writer started from, so a second runner gets [`Error::Conflict`].
//! - **Interrupts**: reaching an `#[node(interrupt)]` node saves a waiting checkpoint and returns
//!   [`Outcome::Interrupted`]; [`Runner::resume_with`] records the input durably, then runs it.
//! - **Failures**: `#[node(retry = N, timeout_ms = M)]` retries with exponential backoff; a failed
//!   attempt's changes to the state are never seen by a retry, an error edge or a checkpoint.
//!   After any error the session stays at its last checkpoint.
//! - **Parallel branches** (`edge!(a -> b & c)`, `edge!(plan -> each item)`): the branches
//!   read `&State` and run concurrently on the run's own task; each finished branch's output
//!   is saved as a small record, so a crash re-runs only the branches that had not finished;
//!   the join takes their outputs and is the only node that writes the state. A branch that
//!   fails after its retries cancels its siblings and ends the run with [`Error::Node`] (a
//!   map item's error is an [`ItemFailed`] naming its index), unless the join collects
//!   failures. Interrupt branches wait together and are answered one at a time.
//!
//! # Checked when the program compiles
//!
//! Graph mistakes are compile errors that point at the offending token and say the fix. A
//! misspelled node:
//!
//! ```compile_fail
//! # use graph_runtime::prelude::*;
//! # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S;
//! #[workflow(state = S)]
//! pub mod flow {
//!     use super::*;
//!     edge!(START -> fetch);
//!     edge!(fetch -> summarise);   // error: unknown node `summarise`; did you mean `summarize`?
//!     edge!(summarize -> END);
//!     #[node] async fn fetch(s: &mut S) {}
//!     #[node] async fn summarize(s: &mut S) {}
//! }
//! # fn main() {}
//! ```
//!
//! A route that is not a declared successor does not exist as a variant of `Next`:
//!
//! ```compile_fail
//! # use graph_runtime::prelude::*;
//! # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)] pub struct S { n: u32 }
//! #[workflow(state = S)]
//! pub mod flow {
//!     use super::*;
//!     edge!(START -> check);
//!     edge!(check -> act | END);
//!     edge!(act -> END);
//!     #[node]
//!     async fn check(s: &mut S) -> check::Next {
//!         if s.n > 3 { check::Next::Done } else { check::Next::Act } // error: no variant `Done`
//!     }
//!     #[node] async fn act(s: &mut S) {}
//! }
//! # fn main() {}
//! ```
//!
//! And `#[node]` or `edge!` outside a `#[workflow]` module says where it belongs:
//!
//! ```compile_fail
//! # use graph_runtime::prelude::*;
//! #[node]
//! async fn lonely(s: &mut u32) {}
//! # fn main() {}
//! ```
//!
//! # Stores
//!
//! [`MemoryStore`] for tests and ephemeral runs; [`SqliteStore`] (feature `sqlite`, on by
//! default) for durable runs in one file shared by the processes of one host. Both keep the same
//! checksummed envelope around a bincode body; see [`store`]. `PostgresStore` (feature
//! `postgres`; TLS with `postgres-tls`) keeps them in PostgreSQL, for workers on many machines.
//! A store of your own implements [`store::Store`] and runs the conformance suite that ours
//! run: `store::conformance` and the `store_conformance!` macro (feature `conformance`, for
//! dev-dependencies).
//!
//! # Workers
//!
//! [`Runner::enqueue`] and [`Runner::enqueue_input`] hand sessions to [`Worker`]s: processes
//! that share one store, claim runnable sessions with a lease, and write every checkpoint
//! fenced by the lease's epoch, so a worker that was paused past its lease can never write
//! again. `#[node(interrupt, wait_ms = N)]` gives an interrupt a durable deadline that a worker
//! honours by running the node with `None`; interrupt branches of a parallel region each have
//! their own, and the session wakes at the earliest among those still waiting.
//!
//! # Operating sessions
//!
//! `inspect::Inspector` (feature `inspect`) finds, reads and steers sessions as JSON from the
//! service's own binary; `inspect::cli` (feature `cli`) is its command line and
//! `web::router` (feature `web`) its web console, an axum router the service nests behind its
//! own authentication.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
mod clock;
mod ctx;
mod error;
mod events;
mod execute;
#[cfg(feature = "inspect")]
pub mod inspect;
mod runner;
pub mod schema;
mod session_id;
pub mod store;
#[cfg(feature = "web")]
pub mod web;
mod worker;
mod workflow;

#[cfg(test)]
#[path = "runner/tests/runner.rs"]
mod runner_tests;

#[cfg(test)]
#[path = "runner/tests/control.rs"]
mod control_tests;

#[cfg(test)]
#[path = "runner/tests/durability.rs"]
mod durability_tests;

#[cfg(test)]
#[path = "runner/tests/api.rs"]
mod api_tests;

#[cfg(test)]
#[path = "runner/tests/parallel.rs"]
mod parallel_tests;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// Entry points for the fuzz targets of the repository's `fuzz/` directory (feature
/// `fuzzing`, off by default): not part of the public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
#[path = "fuzzing.rs"]
pub mod __fuzzing;

pub use crate::ctx::{Failure, NodeCtx};
pub use crate::error::{Error, Result};
pub use crate::events::{BranchOutcome, Event, Events, Payload, RunHandle};
pub use crate::runner::{
    BranchProgress, BranchState, CheckpointInfo, CheckpointPolicy, Child, Decide, EnqueueInput,
    GraphChange, ItemFailed, Outcome, Progress, ResumeWith, Retention, Runner, Snapshot, Status,
    TimedOut,
};
pub use crate::schema::StateSchema;
pub use crate::session_id::MAX_SESSION_ID_BYTES;
pub use crate::store::MemoryStore;
pub use crate::store::{Audit, AuditKind, Claim, InputSource, Lease, StatusKind, Wake};
#[cfg(feature = "postgres")]
pub use crate::store::{PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use crate::store::{SqliteOptions, SqliteStore, Synchronous};
pub use crate::worker::Worker;
pub use crate::workflow::{NodeCheckpoint, NodeError, NodeSpec, Retryable, Workflow};
/// The cancellation token [`Runner::cancellation_token`] takes (re-exported from tokio-util).
pub use tokio_util::sync::CancellationToken;

#[cfg(feature = "macros")]
#[doc(inline)]
pub use graph_macros::{node, workflow};

/// The derive of [`StateSchema`](trait@StateSchema), in the macro namespace of the same name
/// (like serde's `Serialize`): `use graph_runtime::StateSchema;` brings both.
#[cfg(feature = "macros")]
#[doc(inline)]
pub use graph_macros::StateSchema;

/// Declares an edge of a `#[workflow]` graph: `edge!(START -> a)`, `edge!(a -> b)`,
/// `edge!(a -> b | c | END)`, and the error edge `edge!(a -> recover on error)` (taken when `a`
/// fails after its retries; `recover` reads what failed from [`NodeCtx::failure`]).
///
/// It only has a meaning inside a `#[workflow]` module, which reads and removes it; anywhere
/// else it is a compile error:
///
/// ```compile_fail
/// graph_runtime::edge!(a -> b);
/// ```
#[macro_export]
macro_rules! edge {
    ($($tokens:tt)*) => {
        ::core::compile_error! {
            "`edge!` only works inside a `#[workflow(state = ...)]` module; move it into the module that holds the `#[node]` functions"
        }
    };
}

/// The names most programs need: `use graph_runtime::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteStore;
    /// The trait and, with the `macros` feature, its derive.
    pub use crate::StateSchema;
    pub use crate::edge;
    pub use crate::{
        CheckpointPolicy, Child, Failure, GraphChange, MemoryStore, NodeCtx, NodeError, Outcome,
        Retention, Runner,
    };
    #[cfg(feature = "macros")]
    pub use crate::{node, workflow};
}
