//! Compile-time-checked, durable workflow graphs.
//!
//! (Crate tutorial: see the README; expanded once the API settles.)
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checkpoint;
mod ctx;
mod events;
mod error;
mod runner;
pub mod store;
mod workflow;

#[cfg(test)]
#[path = "runner_tests.rs"]
mod runner_tests;

#[cfg(test)]
#[path = "control_tests.rs"]
mod control_tests;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::ctx::{Failure, NodeCtx};
pub use crate::events::{Event, Events, Payload, RunHandle};
pub use crate::error::{Error, Result};
pub use crate::runner::{
    CheckpointInfo, CheckpointPolicy, GraphChange, Outcome, Retention, Runner, Snapshot, Status,
    TimedOut,
};
pub use crate::store::MemoryStore;
#[cfg(feature = "sqlite")]
pub use crate::store::{SqliteOptions, SqliteStore, Synchronous};
pub use crate::workflow::{NodeError, NodeSpec, Retryable, Run, Transition, Workflow};
/// The cancellation token [`Runner::cancellation_token`] takes (re-exported from tokio-util).
pub use tokio_util::sync::CancellationToken;

#[cfg(feature = "macros")]
#[doc(inline)]
pub use graph_macros::{node, workflow};

/// Declares an edge of a `#[workflow]` graph: `edge!(START -> a)`, `edge!(a -> b)`,
/// `edge!(a -> b | c | END)`.
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
    pub use crate::edge;
    #[cfg(feature = "macros")]
    pub use crate::{node, workflow};
    #[cfg(feature = "sqlite")]
    pub use crate::SqliteStore;
    pub use crate::{
        CheckpointPolicy, GraphChange, MemoryStore, NodeCtx, Outcome, Retention, Runner,
    };
}
