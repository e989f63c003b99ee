//! The lease protocol of the [`Store`](super::Store): which worker runs which session.
//!
//! Besides its chain of checkpoints, a store keeps per session:
//!
//! - the **workflow** (its name) and **graph hash** the session belongs to, set by
//!   [`Append::workflow`](super::Append::workflow);
//! - a **wake time**: the session is *runnable* once the wake time is at or before the
//!   database's clock, and not runnable while it has none (waiting for an input without a
//!   deadline, completed). [`Append::wake`](super::Append::wake) sets it with a [`Wake`];
//! - a **lease**: its owner, its expiry, and its **epoch**, a counter that starts at 0 and
//!   rises by one on every [`claim`](super::Store::claim) of the session.
//!
//! A worker [claims](super::Store::claim) runnable sessions whose workflow and graph hash it
//! runs and that no live lease holds, [renews](super::Store::renew) its leases well before they
//! expire, and writes every checkpoint **fenced** by the epoch it claimed
//! ([`Append::fence`](super::Append::fence)): the store checks the epoch in the same
//! statement or transaction as the compare-and-swap on the sequence number. A worker that was
//! paused or cut off past its lease's expiry, while another worker claimed the session (and
//! so raised the epoch), can never write again: its writes fail with
//! [`Error::LeaseLost`](crate::Error::LeaseLost). When it is done with a session (it
//! completed, waits, or the worker shuts down) it [releases](super::Store::release) the
//! lease, so another worker can claim it at once rather than after the expiry.
//!
//! **Clocks.** Wake times and lease expiries are computed and compared on the database's
//! clock (`now()` on PostgreSQL, SQLite's own clock, the process's clock for
//! [`MemoryStore`](super::MemoryStore)), never on the caller's: workers on machines whose
//! clocks disagree still agree on who holds a lease.
//!
//! ```
//! use std::time::Duration;
//! use graph_runtime::{MemoryStore, Status};
//! use graph_runtime::store::{Append, Checkpoint, Claim, Store, Wake};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> graph_runtime::Result<()> {
//! let store = MemoryStore::new();
//! // Enqueue: the first checkpoint of a session of workflow `checkout`, runnable at once.
//! let first = Checkpoint::new(1, "validate", Status::Running, b"state".to_vec());
//! let append = Append::new(None, first, None).workflow("checkout", 0xC0FFEE).wake(Wake::Now);
//! store.append("order-42", append).await?;
//!
//! // A worker that runs `checkout` at that graph hash claims it.
//! let claim = Claim::new("worker-1", Duration::from_secs(30), 10).workflow("checkout", [0xC0FFEE]);
//! let leases = store.claim(&claim).await?;
//! assert_eq!(leases.len(), 1);
//! let lease = &leases[0];
//! assert_eq!((lease.session.as_str(), lease.epoch), ("order-42", 1));
//!
//! // Its writes are fenced by the epoch; the last one says the session needs no worker.
//! let done = Checkpoint::new(2, "END", Status::Completed, b"state".to_vec());
//! let append = Append::new(Some(1), done, None).fence(lease.epoch).wake(Wake::Never);
//! store.append("order-42", append).await?;
//! assert!(store.release(lease).await?);
//! assert!(store.claim(&claim).await?.is_empty()); // completed: nothing to run
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime};

/// When a session becomes runnable, as [`Append::wake`](super::Append::wake) sets it.
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::store::Wake;
/// let deadline = Wake::After(Duration::from_secs(3600)); // an interrupt's `wait_ms`
/// assert_ne!(deadline, Wake::Never);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wake {
    /// Runnable at once: a new session, an input that arrived, a run to continue.
    Now,
    /// Runnable once this much time has passed on the database's clock, counted from the
    /// moment the append commits (give or take the statement's duration): a durable deadline
    /// that passes even while no worker runs. Durations beyond 10,000 years count as
    /// 10,000 years.
    After(Duration),
    /// Not runnable: waiting for an input without a deadline, or completed.
    Never,
}

/// The longest [`Wake::After`] (and lease ttl) the stores compute with: 10,000 years, far
/// inside both databases' time ranges and the range of `Instant`.
pub(crate) const MAX_WAKE_DELAY: Duration = Duration::from_secs(10_000 * 366 * 24 * 3600);

impl Wake {
    /// The delay in microseconds from the database's now, `None` for [`Wake::Never`]; capped
    /// at [`MAX_WAKE_DELAY`].
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn delay_micros(self) -> Option<i64> {
        match self {
            Wake::Now => Some(0),
            Wake::After(delay) => Some(micros(delay.min(MAX_WAKE_DELAY))),
            Wake::Never => None,
        }
    }
}

/// A duration in whole microseconds, saturating (callers cap it well below).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// What [`Store::claim`](super::Store::claim) is asked to take.
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::store::Claim;
///
/// // This binary runs `checkout` at its current graph and one accepted older graph, and
/// // `refund` at one graph; it takes up to 8 sessions, each for 30 s unless renewed.
/// let claim = Claim::new("host-a:4121", Duration::from_secs(30), 8)
///     .workflow("checkout", [0x1111, 0x0aaa])
///     .workflow("refund", [0x2222]);
/// assert_eq!(claim.workflows.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claim {
    /// Who claims: recorded as the lease's owner (for operators: which worker holds what),
    /// and checked, with the epoch, by [`renew`](super::Store::renew) and
    /// [`release`](super::Store::release).
    pub owner: String,
    /// The workflows this worker runs, each with the graph hashes it can resume: a session
    /// is taken only if its workflow is listed with its graph hash.
    pub workflows: Vec<(String, Vec<u64>)>,
    /// How long a lease lives unless renewed, from the claim, on the database's clock.
    pub ttl: Duration,
    /// The most sessions one call takes.
    pub limit: usize,
}

impl Claim {
    /// A claim by `owner` of at most `limit` sessions for `ttl` each, of no workflow yet:
    /// add them with [`workflow`](Claim::workflow).
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::store::Claim;
    /// let claim = Claim::new("worker-1", Duration::from_secs(10), 4);
    /// assert!(claim.workflows.is_empty()); // claims nothing until a workflow is listed
    /// ```
    pub fn new(owner: impl Into<String>, ttl: Duration, limit: usize) -> Self {
        Claim {
            owner: owner.into(),
            workflows: Vec::new(),
            ttl,
            limit,
        }
    }

    /// Also takes sessions of workflow `name` at any of `graph_hashes`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use graph_runtime::store::Claim;
    /// let claim = Claim::new("w", Duration::from_secs(10), 4).workflow("checkout", [7]);
    /// assert_eq!(claim.workflows, [("checkout".to_owned(), vec![7])]);
    /// ```
    pub fn workflow(
        mut self,
        name: impl Into<String>,
        graph_hashes: impl IntoIterator<Item = u64>,
    ) -> Self {
        self.workflows
            .push((name.into(), graph_hashes.into_iter().collect()));
        self
    }

    /// Whether a session of `workflow` at `graph_hash` is one this claim takes.
    pub(crate) fn covers(&self, workflow: &str, graph_hash: u64) -> bool {
        self.workflows
            .iter()
            .any(|(name, hashes)| name == workflow && hashes.contains(&graph_hash))
    }

    /// The listed (workflow, graph hash) pairs, each once.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn pairs(&self) -> Vec<(&str, u64)> {
        let mut pairs: Vec<(&str, u64)> = self
            .workflows
            .iter()
            .flat_map(|(name, hashes)| hashes.iter().map(move |&hash| (name.as_str(), hash)))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        pairs
    }
}

/// A session held by a worker: what [`Store::claim`](super::Store::claim) and
/// [`Store::renew`](super::Store::renew) return.
///
/// ```
/// use std::time::Duration;
/// use graph_runtime::MemoryStore;
/// use graph_runtime::store::{Claim, Store};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> graph_runtime::Result<()> {
/// let store = MemoryStore::new();
/// let claim = Claim::new("w", Duration::from_secs(5), 1).workflow("checkout", [7]);
/// for lease in store.claim(&claim).await? {
///     println!("{} until {:?} (epoch {})", lease.session, lease.expires_at, lease.epoch);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lease {
    /// The session.
    pub session: String,
    /// The session's lease epoch after this claim: pass it to
    /// [`Append::fence`](super::Append::fence).
    pub epoch: u64,
    /// The owner that claimed it ([`Claim::owner`]).
    pub owner: String,
    /// The session's workflow.
    pub workflow: String,
    /// The graph hash the session's latest checkpoint was written with.
    pub graph_hash: u64,
    /// When the lease expires unless renewed, as the database's clock reported it.
    pub expires_at: SystemTime,
}
