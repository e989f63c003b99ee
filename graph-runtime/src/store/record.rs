//! The records a store keeps besides the checkpoint bytes, and the one integer encoding of a
//! [`Status`] that the checkpoint envelope and every backend share.
//!
//! A record that the envelope or a store encodes is defined here (or in `checkpoint/`) and
//! re-exported upward, so that `store/` and `checkpoint/` import nothing from the layers that
//! run a session.

use std::time::SystemTime;

/// Where a session stands at a checkpoint.
///
/// More states may be added (waiting at several nodes at once, for example), so a `match`
/// on it needs a wildcard arm:
///
/// ```
/// use graph_runtime::Status;
///
/// fn describe(status: &Status) -> String {
///     match status {
///         Status::Running => "running".to_owned(),
///         Status::Waiting { node } => format!("waiting at `{node}`"),
///         Status::Completed => "completed".to_owned(),
///         _ => format!("{status:?}"),
///     }
/// }
/// assert_eq!(describe(&Status::Completed), "completed");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// The run goes on at the checkpoint's node (possibly after a crash: call `resume`).
    Running,
    /// The session waits at an interrupt node for `resume_with`.
    Waiting {
        /// The interrupt node.
        node: String,
    },
    /// The run reached `END`.
    Completed,
}

/// The integer codes of [`Status`]: the envelope's status byte, the SQL stores' `status`
/// column. One table, so that a stored row and an envelope never disagree on what a number
/// means. Append new codes only; never reuse one.
pub(crate) mod code {
    /// [`Status::Running`](super::Status::Running).
    pub(crate) const RUNNING: u8 = 0;
    /// [`Status::Waiting`](super::Status::Waiting).
    pub(crate) const WAITING: u8 = 1;
    /// [`Status::Completed`](super::Status::Completed).
    pub(crate) const COMPLETED: u8 = 2;
}

impl Status {
    /// The status's integer code (see [`code`]).
    #[inline]
    pub(crate) fn code(&self) -> u8 {
        match self {
            Status::Running => code::RUNNING,
            Status::Waiting { .. } => code::WAITING,
            Status::Completed => code::COMPLETED,
        }
    }

    /// The node a waiting status names.
    #[inline]
    pub(crate) fn waiting_node(&self) -> Option<&str> {
        match self {
            Status::Waiting { node } => Some(node),
            Status::Running | Status::Completed => None,
        }
    }

    /// The status with integer code `code`, waiting at `node` when it waits; `None` for an
    /// unknown code or a waiting code without a node.
    pub(crate) fn from_code(code: u8, node: Option<&str>) -> Option<Status> {
        match (code, node) {
            (code::RUNNING, _) => Some(Status::Running),
            (code::WAITING, Some(node)) => Some(Status::Waiting {
                node: node.to_owned(),
            }),
            (code::COMPLETED, _) => Some(Status::Completed),
            _ => None,
        }
    }

    /// The status a SQL store's row holds (its `status` and `wait_node` columns), or why the
    /// row is corrupt.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn from_row(code: i64, wait_node: Option<&str>) -> Result<Status, String> {
        let status = u8::try_from(code)
            .ok()
            .and_then(|code| Status::from_code(code, wait_node));
        match status {
            Some(status) => Ok(status),
            None if code == i64::from(code::WAITING) => {
                Err("waiting status without its node".to_owned())
            }
            None => Err(format!("unknown status code {code}")),
        }
    }
}

/// A version of a workflow's graph, as a store keeps it: recorded the first time a session is
/// written under its [`GRAPH_HASH`](crate::Workflow::GRAPH_HASH), so that a later release can
/// say what changed since (see [`Error::GraphMismatch`](crate::Error::GraphMismatch)).
///
/// `#[non_exhaustive]`: outside this crate, build one with [`GraphVersion::new`].
///
/// ```
/// use graph_runtime::store::GraphVersion;
/// let version = GraphVersion::new("checkout", 0x1234, "graph-runtime/v2\nnode review\n");
/// assert_eq!((version.workflow.as_str(), version.graph_hash), ("checkout", 0x1234));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphVersion {
    /// The workflow's name ([`Workflow::NAME`](crate::Workflow::NAME)).
    pub workflow: String,
    /// The graph's hash.
    pub graph_hash: u64,
    /// The graph's canonical description: the versioned text its hash is computed from, then
    /// one line per fingerprint that enters the hash (`schema input review 0x…`).
    pub description: String,
    /// When the store first recorded it (set by the store; [`GraphVersion::new`] uses now).
    pub recorded_at: SystemTime,
}

impl GraphVersion {
    /// A version of workflow `workflow` with hash `graph_hash` and canonical `description`,
    /// recorded now.
    pub fn new(workflow: &str, graph_hash: u64, description: impl Into<String>) -> Self {
        GraphVersion {
            workflow: workflow.to_owned(),
            graph_hash,
            description: description.into(),
            recorded_at: SystemTime::now(),
        }
    }
}

/// How many sessions of a workflow stand at one graph version and state schema: the latest
/// checkpoint of each was written under `graph_hash` with state schema `state_schema`.
///
/// What [`Store::versions_in_use`](crate::store::Store::versions_in_use) returns, one row per
/// `(workflow, graph_hash, state_schema)` that some session has. When a graph hash listed in
/// `accept_graphs` (or a type listed in `migrate_from`) has no row any more, no session needs
/// it and the entry can go.
///
/// `#[non_exhaustive]`: outside this crate, build one with [`VersionCount::new`].
///
/// ```
/// use graph_runtime::store::VersionCount;
/// let count = VersionCount::new("checkout", 0x1234, Some(0x99), 3);
/// assert_eq!(count.sessions, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct VersionCount {
    /// The workflow's name.
    pub workflow: String,
    /// The graph hash the sessions' latest checkpoints were written under.
    pub graph_hash: u64,
    /// The state schema fingerprint of those checkpoints; `None` for sessions last written by
    /// a release that did not tell the store.
    pub state_schema: Option<u64>,
    /// How many sessions.
    pub sessions: u64,
}

impl VersionCount {
    /// A count of `sessions` sessions of `workflow` at `graph_hash` and `state_schema`.
    pub fn new(workflow: &str, graph_hash: u64, state_schema: Option<u64>, sessions: u64) -> Self {
        VersionCount {
            workflow: workflow.to_owned(),
            graph_hash,
            state_schema,
            sessions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_code() {
        for status in [
            Status::Running,
            Status::Waiting {
                node: "review".to_owned(),
            },
            Status::Completed,
        ] {
            let node = status.waiting_node();
            assert_eq!(Status::from_code(status.code(), node), Some(status.clone()));
        }
        assert_eq!(Status::from_code(code::WAITING, None), None);
        assert_eq!(Status::from_code(3, Some("x")), None);
    }
}
