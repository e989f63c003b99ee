//! The store conformance suite: what every [`Store`] must do, as cases a store of any crate can
//! run against itself (feature `conformance`).
//!
//! `MemoryStore`, `SqliteStore` and `PostgresStore` all run this suite (the workspace's
//! `tests/conformance.rs`). A store in another crate runs it too. Each case is a documented
//! `pub async fn case<S: Store>(fixture: &Fixture<S>)` that starts from a fresh, empty store
//! (a [`Fixture`]). Cover them all in one of two ways:
//!
//! - [`store_conformance!`](crate::store_conformance) writes one `#[tokio::test]` per case, so
//!   each case passes or fails on its own and runs in parallel with the others;
//! - [`run_all`] runs every case in turn and reports every case that failed.
//!
//! # The contract: a violation panics
//!
//! These are test functions, like those of sqlx's test harness. A case returns when the
//! store behaves as required. It panics at the first violation it finds, with an assertion's
//! message or an `unwrap` of the unexpected `Error`. The location in the message points to the
//! line of the case that failed. A case never returns an error. A store that is not reachable
//! (no database server, say) should fail in the fixture function, with a message that says
//! what is missing.
//!
//! The cases need a tokio runtime (they spawn tasks and sleep) with the real clock, not a
//! paused one. Lease expiry and wake-up deadlines are measured in wall time. The slowest
//! cases wait about a second each.
//!
//! # Running it from another crate
//!
//! In the store's crate, enable the feature for the tests only. tokio must be a direct
//! dev-dependency, because [`store_conformance!`](crate::store_conformance) expands to
//! `#[::tokio::test(flavor = "multi_thread")]`:
//!
//! ```toml
//! [dev-dependencies]
//! graph-runtime = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! Then, in a test file (`tests/conformance.rs`), write a fixture function and one line per
//! store. Here `MemoryStore` stands in for your store. For a store of your own, another handle
//! is a second connection to the same data (the same file opened again, a new client of the
//! same database):
//!
//! ```
//! use graph_runtime::MemoryStore;
//! use graph_runtime::store::conformance::Fixture;
//!
//! /// A fresh, empty store, and how to get another handle on the same data.
//! fn memory_store() -> Fixture<MemoryStore> {
//!     let store = MemoryStore::new();
//!     let shared = store.clone();
//!     Fixture::new(store, move || shared.clone())
//! }
//!
//! // One `#[tokio::test]` per case: `memory_store::round_trip_keeps_bytes_and_metadata`, …
//! graph_runtime::store_conformance!(memory_store, memory_store);
//! # fn main() {} // the tests are items of the file, not of `main`
//! ```
//!
//! A store on temporary files keeps their directory alive with [`Fixture::keep_alive`]. The
//! directory is removed when the fixture is dropped, after the store. Our own SQLite fixture
//! does this, with the `tempfile` crate:
//!
//! ```
//! use graph_runtime::SqliteStore;
//! use graph_runtime::store::conformance::Fixture;
//!
//! fn sqlite_store() -> Fixture<SqliteStore> {
//!     let dir = tempfile::tempdir().expect("a temporary directory");
//!     let path = dir.path().join("checkpoints.db");
//!     let store = SqliteStore::open(&path).expect("a new store file");
//!     Fixture::new(store, move || SqliteStore::open(&path).expect("the file, again"))
//!         .keep_alive(dir)
//! }
//!
//! graph_runtime::store_conformance!(sqlite_store, sqlite_store);
//! # fn main() {}
//! ```
//!
//! The fixture function is synchronous. A store that connects asynchronously can wait on the
//! test's runtime with `tokio::task::block_in_place(|| Handle::current().block_on(connect))`.
//! This is allowed because [`store_conformance!`](crate::store_conformance) runs each case on a
//! multi-threaded runtime. Our PostgreSQL fixture does this.

#![cfg(feature = "conformance")]

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::store::Status;
use crate::store::{
    Append, Audit, AuditKind, Checkpoint, CheckpointMeta, Claim, GraphVersion, InputSource, Lease,
    SessionFilter, SessionPage, SessionRecord, StatusKind, Store, VersionCount, Wake,
};

/// What every case starts from: a fresh, empty store, and a way to get another handle on
/// the same data.
///
/// "Another handle" is what a second process or a second connection would see: for
/// `SqliteStore`, the same file opened again; for `PostgresStore`, a new pool on the same
/// database; for `MemoryStore`, a clone. Cases use it to check that what one handle writes,
/// another reads, and that compare-and-swap and leases hold between handles.
///
/// ```
/// use graph_runtime::MemoryStore;
/// use graph_runtime::store::conformance::Fixture;
///
/// let store = MemoryStore::new();
/// let shared = store.clone();
/// let fixture = Fixture::new(store, move || shared.clone());
/// let _second: MemoryStore = fixture.another_handle();
/// # let _: &MemoryStore = fixture.store();
/// ```
pub struct Fixture<S> {
    store: S,
    another_handle: Box<dyn Fn() -> S + Send + Sync>,
    // Declared last: dropped after the store (a temporary directory outlives the files in it).
    kept_alive: Vec<Box<dyn Any + Send + Sync>>,
}

impl<S: Store> Fixture<S> {
    /// A fixture on `store`, which must be empty. `another_handle` opens another handle on
    /// the same data each time it is called. It may panic if that fails: it is test code.
    pub fn new(store: S, another_handle: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Fixture {
            store,
            another_handle: Box::new(another_handle),
            kept_alive: Vec::new(),
        }
    }

    /// The same fixture, which also owns `guard` until it is dropped, after the store: a
    /// temporary directory the store's files live in, or a server the store connects to.
    ///
    /// ```
    /// use graph_runtime::MemoryStore;
    /// use graph_runtime::store::conformance::Fixture;
    ///
    /// struct Cleanup; // stands in for a `tempfile::TempDir`
    /// let store = MemoryStore::new();
    /// let shared = store.clone();
    /// let fixture = Fixture::new(store, move || shared.clone()).keep_alive(Cleanup);
    /// # drop(fixture);
    /// ```
    pub fn keep_alive(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.kept_alive.push(Box::new(guard));
        self
    }

    /// The store, fresh and empty when the case starts.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// A new handle on the same data as [`store`](Fixture::store).
    pub fn another_handle(&self) -> S {
        (self.another_handle)()
    }
}

impl<S: fmt::Debug> fmt::Debug for Fixture<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Runs every case of the suite, one after another. Each case gets a fresh fixture from
/// `fixture` and runs on a task of its own. Panics at the end if any case failed. The panic
/// names every failed case and its message. Each case's own panic is also printed when it
/// happens.
///
/// Call it from within a tokio runtime. [`store_conformance!`](crate::store_conformance) does
/// the same work as separate tests.
///
/// ```
/// use graph_runtime::MemoryStore;
/// use graph_runtime::store::conformance::{self, Fixture};
///
/// fn memory_store() -> Fixture<MemoryStore> {
///     let store = MemoryStore::new();
///     let shared = store.clone();
///     Fixture::new(store, move || shared.clone())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // In an async test:
/// conformance::run_all(memory_store).await;
/// # }
/// ```
pub async fn run_all<S: Store>(mut fixture: impl FnMut() -> Fixture<S>) {
    let mut failures: Vec<String> = Vec::new();
    crate::__store_conformance_cases! { run_all(fixture, failures) }
    if !failures.is_empty() {
        panic!(
            "{} of {} store conformance cases failed:\n{}",
            failures.len(),
            CASES,
            failures.join("\n")
        );
    }
}

/// How many cases the suite has, counted from the list the macros share.
const CASES: usize = crate::__store_conformance_cases! { count() };

/// What `run_all` says of a case whose task ended in a panic (or was cancelled).
fn failure(case: &str, error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return format!("- `{case}`: {error}");
    }
    let payload = error.into_panic();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    format!("- `{case}`: {message}")
}

/// Runs the store conformance suite against a store: one `#[tokio::test]` per case of
/// [`store::conformance`](crate::store::conformance), in a new module `$module`.
///
/// `$fixture` is an expression that can be called with no arguments and returns a
/// [`conformance::Fixture`](crate::store::conformance::Fixture): usually the name of a function, or a
/// closure. Each test calls it once. The generated module imports `super::*`, so a function
/// of the calling module is named as it is there.
///
/// Each test runs on a multi-threaded tokio runtime with two worker threads. The calling
/// crate needs tokio as a dependency with the `macros` and `rt-multi-thread` features, and
/// graph-runtime with the `conformance` feature; see the [module
/// docs](crate::store::conformance).
///
/// ```
/// use graph_runtime::MemoryStore;
/// use graph_runtime::store::conformance::Fixture;
///
/// fn memory_store() -> Fixture<MemoryStore> {
///     let store = MemoryStore::new();
///     let shared = store.clone();
///     Fixture::new(store, move || shared.clone())
/// }
///
/// graph_runtime::store_conformance!(memory_store, memory_store);
/// # fn main() {} // the tests are items of the file, not of `main`
/// ```
///
/// The generated tests are named after the cases, e.g.
/// `memory_store::racing_writers_on_one_session_form_one_chain`, so
/// `cargo test memory_store::` runs one store's cases and `cargo test racing_writers` runs one
/// case against every store.
#[macro_export]
macro_rules! store_conformance {
    ($module:ident, $fixture:expr $(,)?) => {
        $crate::__store_conformance_cases! { tests($module, $fixture) }
    };
}

// The list of cases, in one place, so the tests of `store_conformance!`, the body of `run_all`
// and the count cannot drift apart: `mode(input)` expands the `@expand mode` arm with every
// case's name.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_cases {
    (@expand tests ($module:ident, $fixture:expr); $($case:ident),*) => {
        mod $module {
            // The fixture expression is the caller's, written for the calling module.
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                // `$fixture` may be a closure, called once here.
                #[allow(clippy::redundant_closure_call)]
                async fn $case() {
                    let fixture: $crate::store::conformance::Fixture<_> = ($fixture)();
                    $crate::store::conformance::$case(&fixture).await;
                }
            )*
        }
    };
    (@expand run_all ($fixture:ident, $failures:ident); $($case:ident),*) => {
        $(
            let fixture = $fixture();
            let case = ::tokio::spawn(async move {
                $crate::store::conformance::$case(&fixture).await;
            });
            if let Err(error) = case.await {
                $failures.push($crate::store::conformance::failure(::core::stringify!($case), error));
            }
        )*
    };
    (@expand count (); $($case:ident),*) => {
        [$(::core::stringify!($case)),*].len()
    };
    ($mode:ident $input:tt) => {
        $crate::__store_conformance_cases! { @expand $mode $input;
            // Reading and writing
            round_trip_keeps_bytes_and_metadata,
            list_is_oldest_first_and_latest_is_newest,
            missing_session_reads_as_empty,
            // Compare-and-swap
            conflict_when_expected_is_not_the_latest,
            conflict_when_expected_is_stale,
            conflict_when_creating_a_session_that_exists,
            conflict_when_appending_to_a_missing_session,
            conflict_when_seq_is_not_above_expected,
            new_session_may_start_at_any_seq,
            // Retention and deletion
            keep_last_prunes_in_the_same_append,
            prune_keeps_the_newest_and_counts_removals,
            get_of_pruned_missing_or_huge_seq_is_none,
            delete_removes_the_session_and_frees_its_id,
            // Session ids
            sessions_are_listed_sorted_by_bytes,
            sessions_are_isolated_from_each_other,
            unicode_and_very_long_session_ids_round_trip,
            // Concurrency
            racing_writers_on_one_session_form_one_chain,
            many_sessions_appending_at_once_all_land,
            a_conflict_in_a_burst_fails_only_its_own_append,
            // Incremental checkpoints
            depends_on_round_trips,
            keep_last_keeps_what_kept_checkpoints_depend_on,
            prune_keeps_what_kept_checkpoints_depend_on,
            chain_returns_the_kept_range_oldest_first,
            // Leases
            claim_takes_only_runnable_sessions_of_listed_workflows_and_hashes,
            a_live_lease_keeps_other_claimers_out_and_each_claim_raises_the_epoch,
            a_fenced_append_with_an_old_epoch_is_lease_lost_and_writes_nothing,
            renew_extends_a_lease_and_is_lease_lost_after_a_takeover,
            wake_after_is_claimable_only_once_due,
            wake_never_is_not_claimable_until_woken_again,
            concurrent_claimers_never_share_a_session_and_take_them_all,
            claim_respects_its_limit,
            a_runnable_append_wakes_a_waiter_long_before_its_timeout,
            wake_makes_a_waiting_session_runnable_only_at_its_latest_seq,
            // Graph versions and the versions in use
            record_graph_keeps_the_first_version_and_says_whether_it_was_new,
            graph_version_finds_a_kept_version_and_none_for_others,
            graph_versions_are_oldest_first_and_per_workflow,
            versions_in_use_counts_sessions_per_workflow_hash_and_schema,
            versions_in_use_follows_reappends_and_deletes,
            concurrent_record_graph_is_new_exactly_once,
            // Session records and audit records
            session_records_describe_the_latest_checkpoint,
            session_records_show_wake_times_and_leases,
            sessions_filter_on_every_condition_and_their_combinations,
            paging_through_250_sessions_sees_each_exactly_once,
            waiting_nodes_follow_every_append,
            audit_records_round_trip_through_list,
            deleted_sessions_leave_every_query,
            a_childs_parent_is_kept_from_its_creation_and_finds_it,
            a_child_needs_its_parent_and_goes_with_it,
            children_created_while_their_parent_is_deleted_never_outlive_it,
            odd_filters_are_clamped_or_match_nothing_never_panic
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The helpers the cases are written with, for a store's own tests beside the suite: test
/// checkpoints, chains, and assertions on the errors the contract names.
pub mod helpers {
    use super::*;

    /// A fixed, whole-millisecond time: stores may keep only microseconds.
    pub fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
    }

    /// Checkpoint `seq` of a test chain: bytes that name it, a fixed time.
    pub fn checkpoint(seq: u64) -> Checkpoint {
        let bytes = format!("checkpoint {seq}").into_bytes();
        Checkpoint::new(seq, "step", Status::Running, bytes).created_at(at(seq % 1000))
    }

    /// An incremental checkpoint: it needs the checkpoints from `base` up to itself.
    pub fn delta(seq: u64, base: u64) -> Checkpoint {
        checkpoint(seq).depends_on(base)
    }

    /// Appends `checkpoint` after `expected`, keeping `keep_last`.
    pub async fn push<S: Store>(
        store: &S,
        session: &str,
        expected: Option<u64>,
        checkpoint: Checkpoint,
        keep_last: Option<u64>,
    ) {
        store
            .append(session, Append::new(expected, checkpoint, keep_last))
            .await
            .expect("an uncontested append");
    }

    /// [`checkpoint`] `seq` with bytes that carry `tag` too (to tell two writers apart).
    pub fn tagged(seq: u64, tag: &str) -> Checkpoint {
        let mut checkpoint = checkpoint(seq);
        checkpoint.bytes = format!("{tag} {seq}").into_bytes();
        checkpoint
    }

    /// The `expected` of the append that follows `seq - 1` in a chain starting at 1.
    pub fn before(seq: u64) -> Option<u64> {
        seq.checked_sub(1).filter(|&s| s > 0)
    }

    /// Appends [`checkpoint`] `seq` after `expected`, and returns the store's answer.
    pub async fn append<S: Store>(
        store: &S,
        session: &str,
        expected: Option<u64>,
        seq: u64,
    ) -> Result<()> {
        store
            .append(session, Append::new(expected, checkpoint(seq), None))
            .await
    }

    /// Appends checkpoints 1..=n to a new session.
    pub async fn chain<S: Store>(store: &S, session: &str, n: u64) {
        for seq in 1..=n {
            append(store, session, before(seq), seq)
                .await
                .expect("an uncontested append");
        }
    }

    /// The sequence numbers a session keeps, oldest first ([`Store::list`]).
    pub async fn seqs<S: Store>(store: &S, session: &str) -> Vec<u64> {
        store
            .list(session)
            .await
            .expect("list")
            .iter()
            .map(|m| m.seq)
            .collect()
    }

    /// The sequence number of a session's latest checkpoint, if any.
    pub async fn latest_seq<S: Store>(store: &S, session: &str) -> Option<u64> {
        store.latest(session).await.expect("latest").map(|c| c.seq)
    }

    /// Asserts that `result` is a [`Conflict`](Error::Conflict) with these fields.
    #[track_caller]
    pub fn assert_conflict(
        result: Result<()>,
        session: &str,
        expected: Option<u64>,
        found: Option<u64>,
    ) {
        match result {
            Err(Error::Conflict {
                session: s,
                expected: e,
                found: f,
            }) => {
                assert_eq!(
                    (s.as_str(), e, f),
                    (session, expected, found),
                    "conflict fields"
                );
            }
            other => panic!("expected a conflict in `{session}`, got {other:?}"),
        }
    }

    /// What [`Store::list`] reports for `checkpoint`.
    pub fn meta(checkpoint: &Checkpoint) -> CheckpointMeta {
        CheckpointMeta::from(checkpoint)
    }

    /// The workflow the lease cases register.
    pub const FLOW: &str = "checkout";
    /// The graph hash the lease cases register.
    pub const HASH: u64 = 0xfeed_beef_0000_0001;
    /// A lease that outlives every test.
    pub const LONG: Duration = Duration::from_secs(60);

    /// A new session of `FLOW` at `HASH` (checkpoint 1), with this wake time.
    pub async fn enqueue<S: Store>(store: &S, session: &str, wake: Wake) {
        let append = Append::new(None, checkpoint(1), None)
            .workflow(FLOW, HASH)
            .wake(wake);
        store.append(session, append).await.expect("an enqueue");
    }

    /// A claim of `FLOW` at `HASH` by `owner`.
    pub fn claim(owner: &str, ttl: Duration, limit: usize) -> Claim {
        Claim::new(owner, ttl, limit).workflow(FLOW, [HASH])
    }

    /// The sessions of some leases, sorted.
    pub fn names(leases: &[Lease]) -> Vec<String> {
        let mut names: Vec<String> = leases.iter().map(|l| l.session.clone()).collect();
        names.sort();
        names
    }

    /// Graph version `graph_hash` of `workflow`, recorded at [`at`]`(ms)`, described by
    /// `description`.
    pub fn graph(workflow: &str, graph_hash: u64, ms: u64, description: &str) -> GraphVersion {
        let mut version = GraphVersion::new(workflow, graph_hash, description);
        version.recorded_at = at(ms);
        version
    }

    /// Appends [`checkpoint`] `seq` after `expected`, recording `workflow` at `graph_hash`
    /// and, when given, the state schema fingerprint `state_schema`.
    pub async fn push_versioned<S: Store>(
        store: &S,
        session: &str,
        expected: Option<u64>,
        seq: u64,
        (workflow, graph_hash): (&str, u64),
        state_schema: Option<u64>,
    ) {
        let mut append =
            Append::new(expected, checkpoint(seq), None).workflow(workflow, graph_hash);
        if let Some(fingerprint) = state_schema {
            append = append.state_schema(fingerprint);
        }
        store
            .append(session, append)
            .await
            .expect("an uncontested append");
    }

    /// The ids of every session, through every page of [`Store::sessions`] (100 at a time).
    pub async fn session_ids<S: Store>(store: &S) -> Vec<String> {
        let mut filter = SessionFilter::new();
        let mut ids = Vec::new();
        loop {
            let page = store.sessions(&filter).await.expect("a page of sessions");
            ids.extend(page.sessions.into_iter().map(|record| record.session));
            match page.next {
                Some(next) => filter = filter.after(&next),
                None => return ids,
            }
        }
    }

    /// The ids of every session `filter` passes, through every page.
    pub async fn matching_ids<S: Store>(store: &S, filter: &SessionFilter) -> Vec<String> {
        let mut filter = filter.clone();
        let mut ids = Vec::new();
        loop {
            let page = store.sessions(&filter).await.expect("a page of sessions");
            assert!(page.sessions.len() <= filter.limit.max(1), "{page:?}");
            ids.extend(page.sessions.into_iter().map(|record| record.session));
            match page.next {
                Some(next) => filter = filter.after(&next),
                None => return ids,
            }
        }
    }

    /// Asserts that `result` is [`LeaseLost`](Error::LeaseLost) for `session` at `epoch`.
    #[track_caller]
    pub fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T>, session: &str, epoch: u64) {
        match result {
            Err(Error::LeaseLost {
                session: s,
                epoch: e,
            }) => assert_eq!((s.as_str(), e), (session, epoch), "lease-lost fields"),
            other => panic!("expected LeaseLost in `{session}`, got {other:?}"),
        }
    }
}

use self::helpers::*;

// ---------------------------------------------------------------------------------------------
// Reading and writing

/// What is appended reads back unchanged through `get`, `latest` and `list`: every byte (70 kB of
/// every byte value, and no bytes at all), the node, the status (with a `Waiting` node) and the
/// time to the microsecond, also before 1970.
pub async fn round_trip_keeps_bytes_and_metadata<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let saved = [
        Checkpoint::new(1, "validate", Status::Running, every_byte)
            .created_at(at(1) + Duration::from_micros(7)),
        Checkpoint::new(
            2,
            "review".to_owned(),
            Status::Waiting {
                node: "review".to_owned(),
            },
            vec![0; 3],
        )
        .created_at(at(2)),
        Checkpoint::new(3, "END", Status::Completed, Vec::new())
            .created_at(UNIX_EPOCH - Duration::from_secs(86_400)),
    ];
    for c in &saved {
        store
            .append("s", Append::new(before(c.seq), c.clone(), None))
            .await
            .unwrap();
    }
    for c in &saved {
        assert_eq!(store.get("s", c.seq).await.unwrap().as_ref(), Some(c));
    }
    assert_eq!(store.latest("s").await.unwrap().as_ref(), Some(&saved[2]));
    let expected: Vec<CheckpointMeta> = saved.iter().map(meta).collect();
    assert_eq!(store.list("s").await.unwrap(), expected);
}

/// `list` is oldest first and `latest` is the newest, with gaps between sequence numbers (as
/// `EveryN` checkpoints leave them).
pub async fn list_is_oldest_first_and_latest_is_newest<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let mut expected = None;
    // Gaps between sequence numbers are allowed (`EveryN` checkpoints).
    for seq in [1, 2, 5, 9, 10, 31] {
        append(store, "s", expected, seq).await.unwrap();
        expected = Some(seq);
    }
    assert_eq!(seqs(store, "s").await, [1, 2, 5, 9, 10, 31]);
    assert_eq!(latest_seq(store, "s").await, Some(31));
}

/// A session never written reads as empty: no checkpoint, an empty list, nothing to prune or
/// delete, no sessions.
pub async fn missing_session_reads_as_empty<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    assert_eq!(store.latest("nobody").await.unwrap(), None);
    assert_eq!(store.get("nobody", 1).await.unwrap(), None);
    assert!(store.list("nobody").await.unwrap().is_empty());
    assert_eq!(store.prune("nobody", 1).await.unwrap(), 0);
    assert!(!store.delete("nobody").await.unwrap());
    assert!(session_ids(store).await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Compare-and-swap

/// An append whose `expected` is not the latest sequence number is a `Conflict` naming the
/// session, `expected` and the latest, and writes nothing.
pub async fn conflict_when_expected_is_not_the_latest<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 3).await;
    assert_conflict(append(store, "s", Some(1), 4).await, "s", Some(1), Some(3));
    assert_conflict(append(store, "s", Some(5), 6).await, "s", Some(5), Some(3));
    // Nothing was written by the failed appends.
    assert_eq!(seqs(store, "s").await, [1, 2, 3]);
    assert_eq!(store.get("s", 4).await.unwrap(), None);
}

/// Two writers that read the same latest checkpoint both append after it: the first wins, the
/// second is a `Conflict`, and the first one's bytes stay.
pub async fn conflict_when_expected_is_stale<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 1).await;
    // Two writers both read seq 1, then both try to write seq 2.
    let first = store
        .append("s", Append::new(Some(1), tagged(2, "first"), None))
        .await;
    let second = store
        .append("s", Append::new(Some(1), tagged(2, "second"), None))
        .await;
    first.unwrap();
    assert_conflict(second, "s", Some(1), Some(2));
    assert_eq!(store.get("s", 2).await.unwrap().unwrap().bytes, b"first 2");
    assert_eq!(seqs(store, "s").await, [1, 2]);
}

/// Creating (`expected: None`) a session that exists is a `Conflict`, whatever the sequence
/// number.
pub async fn conflict_when_creating_a_session_that_exists<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 2).await;
    assert_conflict(append(store, "s", None, 3).await, "s", None, Some(2));
    assert_conflict(append(store, "s", None, 1).await, "s", None, Some(2));
    assert_eq!(seqs(store, "s").await, [1, 2]);
}

/// Appending after a checkpoint (`expected: Some(_)`) of a session that does not exist is a
/// `Conflict` with `found: None`, and creates nothing.
pub async fn conflict_when_appending_to_a_missing_session<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    assert_conflict(append(store, "s", Some(0), 1).await, "s", Some(0), None);
    assert_conflict(append(store, "s", Some(4), 5).await, "s", Some(4), None);
    assert_eq!(store.latest("s").await.unwrap(), None);
    assert!(session_ids(store).await.is_empty());
}

/// A checkpoint whose `seq` is not above `expected` is a `Conflict`, even when `expected` is the
/// latest.
pub async fn conflict_when_seq_is_not_above_expected<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 3).await;
    for seq in [3, 2, 0] {
        assert_conflict(
            append(store, "s", Some(3), seq).await,
            "s",
            Some(3),
            Some(3),
        );
    }
    assert_eq!(seqs(store, "s").await, [1, 2, 3]);
}

/// A new session may start at any sequence number (`Runner::fork` keeps its origin's numbering).
pub async fn new_session_may_start_at_any_seq<S: Store>(fixture: &Fixture<S>) {
    // `Runner::fork` starts a new session at the sequence number it forks from.
    let store = fixture.store();
    append(store, "fork", None, 42).await.unwrap();
    append(store, "fork", Some(42), 43).await.unwrap();
    assert_eq!(seqs(store, "fork").await, [42, 43]);
}

// ---------------------------------------------------------------------------------------------
// Retention and deletion

/// `Append::keep_last` prunes in the same append and never removes the checkpoint just written
/// (not even with `Some(0)`); a conflicting append prunes nothing.
pub async fn keep_last_prunes_in_the_same_append<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    for seq in 1..=6 {
        store
            .append("s", Append::new(before(seq), checkpoint(seq), Some(3)))
            .await
            .unwrap();
        let kept = seqs(store, "s").await;
        assert_eq!(kept.last(), Some(&seq));
        assert_eq!(kept.len() as u64, seq.min(3), "after seq {seq}: {kept:?}");
    }
    assert_eq!(seqs(store, "s").await, [4, 5, 6]);
    // More room than checkpoints: nothing goes.
    store
        .append("s", Append::new(Some(6), checkpoint(7), Some(100)))
        .await
        .unwrap();
    assert_eq!(seqs(store, "s").await, [4, 5, 6, 7]);
    // `keep_last` 0 still keeps the checkpoint just written.
    store
        .append("s", Append::new(Some(7), checkpoint(8), Some(0)))
        .await
        .unwrap();
    assert_eq!(seqs(store, "s").await, [8]);
    // A conflicting append prunes nothing.
    let stale = store
        .append("s", Append::new(Some(5), checkpoint(9), Some(1)))
        .await;
    assert_conflict(stale, "s", Some(5), Some(8));
    assert_eq!(seqs(store, "s").await, [8]);
}

/// `prune` keeps the newest `keep_last` checkpoints, never fewer than one, and returns how many it
/// removed; the chain goes on from the newest.
pub async fn prune_keeps_the_newest_and_counts_removals<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 5).await;
    assert_eq!(store.prune("s", 2).await.unwrap(), 3);
    assert_eq!(seqs(store, "s").await, [4, 5]);
    assert_eq!(store.prune("s", 2).await.unwrap(), 0);
    assert_eq!(store.prune("s", 10).await.unwrap(), 0);
    // Never the newest, even when asked to keep none.
    assert_eq!(store.prune("s", 0).await.unwrap(), 1);
    assert_eq!(seqs(store, "s").await, [5]);
    assert_eq!(store.prune("s", 0).await.unwrap(), 0);
    assert_eq!(latest_seq(store, "s").await, Some(5));
    // The chain goes on from the newest.
    append(store, "s", Some(5), 6).await.unwrap();
    assert_eq!(seqs(store, "s").await, [5, 6]);
}

/// `get` of a pruned, never written or huge sequence number (up to `u64::MAX`) is `None`, not an
/// error.
pub async fn get_of_pruned_missing_or_huge_seq_is_none<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 4).await;
    store.prune("s", 1).await.unwrap();
    for seq in [0, 1, 3, 5, 99, i64::MAX as u64, u64::MAX] {
        assert_eq!(store.get("s", seq).await.unwrap(), None, "seq {seq}");
    }
    assert_eq!(store.get("s", 4).await.unwrap(), Some(checkpoint(4)));
    assert_eq!(store.get("other", 4).await.unwrap(), None);
}

/// `delete` removes one session's checkpoints and says whether it existed; its id starts afresh,
/// and only from `expected: None`; other sessions keep theirs.
pub async fn delete_removes_the_session_and_frees_its_id<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "a", 3).await;
    chain(store, "b", 2).await;
    assert!(store.delete("a").await.unwrap());
    assert!(!store.delete("a").await.unwrap());
    assert_eq!(store.latest("a").await.unwrap(), None);
    assert_eq!(store.get("a", 1).await.unwrap(), None);
    assert!(store.list("a").await.unwrap().is_empty());
    assert_eq!(session_ids(store).await, ["b"]);
    // Gone means gone: the id starts afresh, and only from `None`.
    assert_conflict(append(store, "a", Some(3), 4).await, "a", Some(3), None);
    append(store, "a", None, 1).await.unwrap();
    assert_eq!(seqs(store, "a").await, [1]);
    assert_eq!(seqs(store, "b").await, [1, 2]);
}

// ---------------------------------------------------------------------------------------------
// Session ids

/// `sessions` lists every session sorted as `str` sorts (by bytes).
pub async fn sessions_are_listed_sorted_by_bytes<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let mut names = vec![
        "b", "a", "B", "é", "ab", "a b", "z", "Ω", "a-1", "a-10", "a-2",
    ];
    for name in &names {
        chain(store, name, 1).await;
    }
    names.sort_unstable();
    assert_eq!(session_ids(store).await, names);
}

/// Ids that are prefixes of each other, or differ by case or a trailing space, are different
/// sessions: a conflict, a prune or a delete in one leaves the others alone.
pub async fn sessions_are_isolated_from_each_other<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    // Names that are prefixes of each other, or differ by case or a trailing space.
    let names = ["order-1", "order-10", "order-1 ", "Order-1"];
    for (i, name) in names.iter().enumerate() {
        chain(store, name, i as u64 + 2).await;
    }
    for (i, name) in names.iter().enumerate() {
        let n = i as u64 + 2;
        assert_eq!(
            seqs(store, name).await,
            (1..=n).collect::<Vec<_>>(),
            "{name:?}"
        );
    }
    // A conflict, a prune and a delete in one session leave the others alone.
    assert_conflict(
        append(store, "order-1", Some(1), 2).await,
        "order-1",
        Some(1),
        Some(2),
    );
    assert_eq!(store.prune("order-10", 1).await.unwrap(), 2);
    assert!(store.delete("order-1 ").await.unwrap());
    assert_eq!(seqs(store, "order-1").await, [1, 2]);
    assert_eq!(seqs(store, "order-10").await, [3]);
    assert!(seqs(store, "order-1 ").await.is_empty());
    assert_eq!(seqs(store, "Order-1").await, [1, 2, 3, 4, 5]);
    assert_eq!(session_ids(store).await, ["Order-1", "order-1", "order-10"]);
}

/// Session ids are opaque strings: non-ASCII, NUL, control characters, SQL metacharacters, the
/// empty string and 10 KiB ids that differ only in their last byte all round-trip and sort.
pub async fn unicode_and_very_long_session_ids_round_trip<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let long = "x".repeat(10 * 1024);
    let mut names = vec![
        "注文-42 🚀".to_owned(),
        "crab 🦀🦀".to_owned(),
        "nul\0inside".to_owned(),
        "nul".to_owned(),
        "tab\tnewline\n".to_owned(),
        "'; DROP TABLE sessions; --".to_owned(),
        "%_*".to_owned(),
        String::new(),
        format!("{long}a"),
        format!("{long}b"), // differs from the previous one in its last byte only
        long,
    ];
    for (i, name) in names.iter().enumerate() {
        store
            .append(name, Append::new(None, tagged(1, &i.to_string()), None))
            .await
            .unwrap();
        store
            .append(name, Append::new(Some(1), tagged(2, name), None))
            .await
            .unwrap();
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            store.get(name, 1).await.unwrap().unwrap().bytes,
            format!("{i} 1").as_bytes()
        );
        assert_eq!(store.latest(name).await.unwrap(), Some(tagged(2, name)));
        assert_eq!(seqs(store, name).await, [1, 2]);
    }
    names.sort_unstable();
    assert_eq!(session_ids(store).await, names);
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// Many tasks (on several handles) race to extend one session: every sequence number is
/// won by exactly one of them, the chain has no gap and no duplicate, and the stored bytes
/// are the winner's.
pub async fn racing_writers_on_one_session_form_one_chain<S: Store>(fixture: &Fixture<S>) {
    const TASKS: usize = 8;
    const LENGTH: u64 = 60;
    let handles: Vec<Arc<S>> = (0..3).map(|_| Arc::new(fixture.another_handle())).collect();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&handles[task % handles.len()]);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            loop {
                let latest = latest_seq(&*store, "contested").await;
                let next = latest.map_or(1, |seq| seq + 1);
                if next > LENGTH {
                    return won;
                }
                let attempt = Append::new(latest, tagged(next, &format!("task {task}")), None);
                match store.append("contested", attempt).await {
                    Ok(()) => won.push(next),
                    Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                    Err(e) => panic!("task {task}: {e}"),
                }
            }
        }));
    }
    let mut all_wins = Vec::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        let won = handle.await.expect("a racing task");
        for &seq in &won {
            let stored = fixture
                .store()
                .get("contested", seq)
                .await
                .unwrap()
                .expect("a won seq");
            assert_eq!(stored.bytes, format!("task {task} {seq}").as_bytes());
        }
        all_wins.extend(won);
    }
    all_wins.sort_unstable();
    let one_chain: Vec<u64> = (1..=LENGTH).collect();
    assert_eq!(all_wins, one_chain, "every seq won exactly once");
    assert_eq!(seqs(fixture.store(), "contested").await, one_chain);
}

/// The group-commit path: many sessions checkpoint at the same time, each step waiting for
/// the previous one; every append succeeds and every chain is complete.
pub async fn many_sessions_appending_at_once_all_land<S: Store>(fixture: &Fixture<S>) {
    const SESSIONS: usize = 100;
    const STEPS: u64 = 10;
    let store = Arc::new(fixture.another_handle());
    let tasks: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let session = format!("session-{i:03}");
                for seq in 1..=STEPS {
                    let checkpoint = tagged(seq, &session);
                    store
                        .append(&session, Append::new(before(seq), checkpoint, None))
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("a session task")
            .expect("every append succeeds");
    }
    let sessions = session_ids(fixture.store()).await;
    assert_eq!(sessions.len(), SESSIONS);
    for session in &sessions {
        let list = fixture.store().list(session).await.unwrap();
        assert_eq!(
            list.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=STEPS).collect::<Vec<_>>()
        );
        assert_eq!(
            fixture.store().latest(session).await.unwrap(),
            Some(tagged(STEPS, session))
        );
    }
}

/// Appends that arrive together (so a store may batch them): where two race for the same
/// seq exactly one wins, and the loser's conflict does not fail anyone else.
pub async fn a_conflict_in_a_burst_fails_only_its_own_append<S: Store>(fixture: &Fixture<S>) {
    const SESSIONS: usize = 40;
    let store = Arc::new(fixture.another_handle());
    for i in 0..SESSIONS {
        chain(&*store, &format!("contested-{i}"), 1).await;
    }
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        for tag in ["left", "right"] {
            let store = Arc::clone(&store);
            let session = format!("contested-{i}");
            tasks.push(tokio::spawn(async move {
                let append = Append::new(Some(1), tagged(2, tag), None);
                let result = store.append(&session, append).await;
                (session, tag, result)
            }));
        }
        let store = Arc::clone(&store);
        let session = format!("fresh-{i}");
        tasks.push(tokio::spawn(async move {
            let result = store
                .append(&session, Append::new(None, tagged(1, "fresh"), None))
                .await;
            (session, "fresh", result)
        }));
    }
    let mut winners = std::collections::BTreeMap::new();
    for task in tasks {
        let (session, tag, result) = task.await.expect("a burst task");
        match (tag, result) {
            ("fresh", result) => result.expect("an uncontested append in the burst"),
            (tag, Ok(())) => assert!(winners.insert(session, tag).is_none(), "two winners"),
            (_, result) => assert_conflict(result, &session, Some(1), Some(2)),
        }
    }
    assert_eq!(winners.len(), SESSIONS, "one winner per contested session");
    for (session, tag) in winners {
        assert_eq!(
            fixture.store().latest(&session).await.unwrap(),
            Some(tagged(2, tag))
        );
    }
    for i in 0..SESSIONS {
        assert_eq!(seqs(fixture.store(), &format!("fresh-{i}")).await, [1]);
    }
}

// ---------------------------------------------------------------------------------------------
// Incremental checkpoints: `depends_on` is kept, and retention honours it

/// [`Checkpoint::depends_on`](Checkpoint#structfield.depends_on) round-trips through `get`,
/// `latest` and `chain`, and another handle reads it too.
pub async fn depends_on_round_trips<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    push(store, "s", None, checkpoint(1), None).await;
    push(store, "s", Some(1), delta(2, 1), None).await;
    push(store, "s", Some(2), delta(3, 1), None).await;
    assert_eq!(store.get("s", 1).await.unwrap(), Some(checkpoint(1)));
    assert_eq!(store.get("s", 2).await.unwrap(), Some(delta(2, 1)));
    assert_eq!(store.latest("s").await.unwrap(), Some(delta(3, 1)));
    assert_eq!(
        store.chain("s", 1, 3).await.unwrap(),
        [checkpoint(1), delta(2, 1), delta(3, 1)]
    );
    // Another handle (for SQLite: the file opened again) reads the same.
    let again = fixture.another_handle();
    assert_eq!(again.latest("s").await.unwrap(), Some(delta(3, 1)));
}

/// `Append::keep_last` never removes a checkpoint that a kept one depends on, and removes a base
/// once nothing kept needs it; other sessions are untouched.
pub async fn keep_last_keeps_what_kept_checkpoints_depend_on<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    push(store, "s", None, checkpoint(1), Some(2)).await;
    for seq in 2..=5 {
        push(store, "s", Some(seq - 1), delta(seq, 1), Some(2)).await;
    }
    // 4 and 5 are kept and depend on 1: everything from 1 stays.
    assert_eq!(seqs(store, "s").await, [1, 2, 3, 4, 5]);
    // A full checkpoint: the kept 5 still depends on 1.
    push(store, "s", Some(5), checkpoint(6), Some(2)).await;
    assert_eq!(seqs(store, "s").await, [1, 2, 3, 4, 5, 6]);
    // Kept now: 6 and 7 (a delta on 6). Nothing kept needs 1..=5 any more.
    push(store, "s", Some(6), delta(7, 6), Some(2)).await;
    assert_eq!(seqs(store, "s").await, [6, 7]);
    // A delta on its own base only keeps what it needs.
    push(store, "s", Some(7), delta(8, 7), Some(1)).await;
    assert_eq!(seqs(store, "s").await, [7, 8]);
    assert_eq!(store.get("s", 7).await.unwrap(), Some(delta(7, 6)));
    // Other sessions are untouched by this one's retention.
    chain(store, "other", 3).await;
    push(store, "s", Some(8), checkpoint(9), Some(1)).await;
    assert_eq!(seqs(store, "s").await, [9]);
    assert_eq!(seqs(store, "other").await, [1, 2, 3]);
}

/// `prune` never removes a checkpoint that a kept one depends on, and counts only what it removed.
pub async fn prune_keeps_what_kept_checkpoints_depend_on<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    push(store, "s", None, checkpoint(1), None).await;
    push(store, "s", Some(1), delta(2, 1), None).await;
    push(store, "s", Some(2), checkpoint(3), None).await;
    push(store, "s", Some(3), delta(4, 3), None).await;
    push(store, "s", Some(4), delta(5, 3), None).await;
    // Keeping 1 (5) needs 3 and 4 as well.
    assert_eq!(store.prune("s", 1).await.unwrap(), 2);
    assert_eq!(seqs(store, "s").await, [3, 4, 5]);
    assert_eq!(store.prune("s", 0).await.unwrap(), 0);
    assert_eq!(seqs(store, "s").await, [3, 4, 5]);
    // Once the newest is full again, its base chain goes.
    push(store, "s", Some(5), checkpoint(6), None).await;
    assert_eq!(store.prune("s", 1).await.unwrap(), 3);
    assert_eq!(seqs(store, "s").await, [6]);
    assert_eq!(store.prune("missing", 1).await.unwrap(), 0);
}

/// `chain(from, to)` returns the kept checkpoints with `from <= seq <= to`, oldest first, skipping
/// pruned ones and gaps; an empty or unknown range is empty, not an error.
pub async fn chain_returns_the_kept_range_oldest_first<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    chain(store, "s", 6).await;
    store.prune("s", 3).await.unwrap();
    let range = |from, to| async move {
        store
            .chain("s", from, to)
            .await
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>()
    };
    // 1..=3 are pruned: skipped, not errors.
    assert_eq!(range(2, 5).await, [4, 5]);
    assert_eq!(range(0, 99).await, [4, 5, 6]);
    assert_eq!(range(5, 5).await, [5]);
    assert_eq!(range(6, 5).await, Vec::<u64>::new());
    assert_eq!(range(7, 99).await, Vec::<u64>::new());
    assert_eq!(range(u64::MAX, u64::MAX).await, Vec::<u64>::new());
    // The checkpoints themselves, not only their numbers.
    assert_eq!(
        store.chain("s", 4, 5).await.unwrap(),
        [checkpoint(4), checkpoint(5)]
    );
    // Gaps in the numbering are skipped too.
    push(store, "gaps", None, checkpoint(1), None).await;
    push(store, "gaps", Some(1), checkpoint(3), None).await;
    push(store, "gaps", Some(3), checkpoint(7), None).await;
    let gaps: Vec<u64> = store
        .chain("gaps", 1, 7)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(gaps, [1, 3, 7]);
    assert!(store.chain("unknown", 0, 99).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Leases

/// `claim` takes only runnable sessions (their wake time has come) of the workflows and graph
/// hashes it lists, at epoch 1, owned by the claimer, expiring `ttl` from now; it changes no
/// checkpoint.
pub async fn claim_takes_only_runnable_sessions_of_listed_workflows_and_hashes<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    enqueue(store, "runnable", Wake::Now).await;
    enqueue(store, "never", Wake::Never).await;
    // No wake time given: not runnable; no workflow given: no claim can take it.
    append(store, "plain", None, 1).await.unwrap();
    let no_workflow = Append::new(None, checkpoint(1), None).wake(Wake::Now);
    store.append("no-workflow", no_workflow).await.unwrap();
    let other = Append::new(None, checkpoint(1), None)
        .workflow("refund", HASH)
        .wake(Wake::Now);
    store.append("other-workflow", other).await.unwrap();
    let old = Append::new(None, checkpoint(1), None)
        .workflow(FLOW, 7)
        .wake(Wake::Now);
    store.append("old-graph", old).await.unwrap();

    let nothing = Claim::new("w", LONG, 10);
    assert!(store.claim(&nothing).await.unwrap().is_empty());
    let before = SystemTime::now();
    let leases = store.claim(&claim("w1", LONG, 10)).await.unwrap();
    assert_eq!(names(&leases), ["runnable"]);
    let lease = &leases[0];
    assert_eq!(
        (lease.epoch, lease.owner.as_str(), lease.workflow.as_str()),
        (1, "w1", FLOW)
    );
    assert_eq!(lease.graph_hash, HASH);
    // The database's clock, on this machine: about a minute from now.
    let slack = Duration::from_secs(10);
    assert!(lease.expires_at > before + LONG - slack, "{lease:?}");
    assert!(
        lease.expires_at < SystemTime::now() + LONG + slack,
        "{lease:?}"
    );

    // A worker that also runs the older graph and `refund` takes those.
    let wider = claim("w2", LONG, 10)
        .workflow(FLOW, [7])
        .workflow("refund", [HASH]);
    let leases = store.claim(&wider).await.unwrap();
    assert_eq!(names(&leases), ["old-graph", "other-workflow"]);
    assert!(store.claim(&wider).await.unwrap().is_empty());
    // Claims change no checkpoint.
    assert_eq!(seqs(store, "runnable").await, [1]);
}

/// A live lease keeps every claimer out, its owner too. A released session is claimable at once,
/// one epoch up; releasing twice, or with an old lease, returns `false`.
pub async fn a_live_lease_keeps_other_claimers_out_and_each_claim_raises_the_epoch<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let other = fixture.another_handle();
    enqueue(store, "s", Wake::Now).await;
    let first = store.claim(&claim("a", LONG, 5)).await.unwrap();
    assert_eq!(names(&first), ["s"]);
    assert_eq!(first[0].epoch, 1);
    assert!(other.claim(&claim("b", LONG, 5)).await.unwrap().is_empty());
    assert!(store.claim(&claim("a", LONG, 5)).await.unwrap().is_empty());

    // Released: claimable again at once, by anyone, one epoch up.
    assert!(store.release(&first[0]).await.unwrap());
    assert!(!store.release(&first[0]).await.unwrap(), "released twice");
    let second = other.claim(&claim("b", LONG, 5)).await.unwrap();
    assert_eq!(names(&second), ["s"]);
    assert_eq!((second[0].epoch, second[0].owner.as_str()), (2, "b"));
    // The old lease cannot release the new one.
    assert!(!store.release(&first[0]).await.unwrap());
    assert!(store.claim(&claim("a", LONG, 5)).await.unwrap().is_empty());
    assert!(other.release(&second[0]).await.unwrap());
    let third = store.claim(&claim("a", LONG, 5)).await.unwrap();
    assert_eq!(third[0].epoch, 3);
}

/// Once another claimer has taken over an expired lease, an append fenced with the old epoch is
/// `LeaseLost` whatever its sequence numbers, and writes nothing; so is renewing the old lease.
/// Under a live fence a stale `expected` is still a `Conflict`; a fence on a missing session is
/// `LeaseLost`.
pub async fn a_fenced_append_with_an_old_epoch_is_lease_lost_and_writes_nothing<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let other = fixture.another_handle();
    enqueue(store, "s", Wake::Now).await;
    let short = store
        .claim(&claim("a", Duration::from_millis(200), 5))
        .await
        .unwrap();
    let fenced =
        |seq: u64, expected, epoch| Append::new(expected, tagged(seq, "fenced"), None).fence(epoch);
    // Under its lease, `a` writes.
    store.append("s", fenced(2, Some(1), 1)).await.unwrap();
    // `a` pauses past its lease; `b` takes the session over.
    let mut taken = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        taken = other.claim(&claim("b", LONG, 5)).await.unwrap();
        if !taken.is_empty() {
            break;
        }
    }
    assert_eq!(names(&taken), ["s"], "taken over once the lease expired");
    assert_eq!(taken[0].epoch, short[0].epoch + 1);

    // `a` comes back: with the right seq or a wrong one, its fence is stale.
    assert_lease_lost(store.append("s", fenced(3, Some(2), 1)).await, "s", 1);
    assert_lease_lost(store.append("s", fenced(9, Some(1), 1)).await, "s", 1);
    assert_lease_lost(store.renew(&short[0], LONG).await, "s", 1);
    assert!(!store.release(&short[0]).await.unwrap());
    assert_eq!(latest_seq(store, "s").await, Some(2));
    assert_eq!(seqs(store, "s").await, [1, 2]);

    // `b` writes under its epoch; a stale seq under a live fence is a conflict.
    other.append("s", fenced(3, Some(2), 2)).await.unwrap();
    assert_conflict(
        other.append("s", fenced(4, Some(2), 2)).await,
        "s",
        Some(2),
        Some(3),
    );
    // A fence on a session that does not exist cannot hold.
    assert_lease_lost(
        store.append("missing", fenced(1, None, 1)).await,
        "missing",
        1,
    );
    assert_eq!(latest_seq(store, "missing").await, None);
}

/// `renew` extends a lease past its first ttl; after a takeover, or once the session is deleted,
/// renewing is `LeaseLost`.
pub async fn renew_extends_a_lease_and_is_lease_lost_after_a_takeover<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let other = fixture.another_handle();
    enqueue(store, "s", Wake::Now).await;
    let leases = store
        .claim(&claim("a", Duration::from_millis(300), 1))
        .await
        .unwrap();
    let renewed = store.renew(&leases[0], LONG).await.unwrap();
    assert_eq!(
        (renewed.epoch, renewed.session.as_str()),
        (leases[0].epoch, "s")
    );
    assert!(renewed.expires_at > leases[0].expires_at + Duration::from_secs(30));
    // Past the first ttl, the renewed lease still keeps others out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(other.claim(&claim("b", LONG, 1)).await.unwrap().is_empty());

    // Renewed to almost nothing, it expires; the takeover makes renewing fail.
    store.renew(&renewed, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let taken = other.claim(&claim("b", LONG, 1)).await.unwrap();
    assert_eq!(names(&taken), ["s"]);
    assert_lease_lost(store.renew(&renewed, LONG).await, "s", renewed.epoch);
    // Deleting the session loses the lease too.
    assert!(other.delete("s").await.unwrap());
    assert_lease_lost(other.renew(&taken[0], LONG).await, "s", taken[0].epoch);
}

/// A session woken with `Wake::After(delay)` is claimable once the delay has passed, not before; a
/// fenced append sets a new deadline.
pub async fn wake_after_is_claimable_only_once_due<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let delay = Duration::from_millis(300);
    let started = Instant::now();
    enqueue(store, "timer", Wake::After(delay)).await;
    let early = store.claim(&claim("a", LONG, 5)).await.unwrap();
    if started.elapsed() < delay {
        assert!(early.is_empty(), "claimed before its deadline: {early:?}");
    }
    tokio::time::sleep(delay + Duration::from_millis(200)).await;
    let due = store.claim(&claim("a", LONG, 5)).await.unwrap();
    assert_eq!(names(&due), ["timer"]);

    // A worker sets a deadline on a session it holds, then releases it.
    let waiting = Status::Waiting {
        node: "review".to_owned(),
    };
    let mut next = checkpoint(2);
    next.status = waiting;
    let later = Append::new(Some(1), next, None)
        .fence(due[0].epoch)
        .wake(Wake::After(Duration::from_secs(3600)));
    store.append("timer", later).await.unwrap();
    assert!(store.release(&due[0]).await.unwrap());
    assert!(store.claim(&claim("a", LONG, 5)).await.unwrap().is_empty());
}

/// A session at `Wake::Never` is not claimable; an append without a wake leaves it so, and an
/// unfenced append with `Wake::Now` (an input) makes it runnable again.
pub async fn wake_never_is_not_claimable_until_woken_again<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    enqueue(store, "s", Wake::Now).await;
    let leases = store.claim(&claim("a", LONG, 5)).await.unwrap();
    // The worker completes the session: not runnable any more, even once released.
    let done = Append::new(Some(1), checkpoint(2), None)
        .fence(leases[0].epoch)
        .wake(Wake::Never);
    store.append("s", done).await.unwrap();
    assert!(store.release(&leases[0]).await.unwrap());
    assert!(store.claim(&claim("b", LONG, 5)).await.unwrap().is_empty());
    // An append without a wake leaves it as it is.
    append(store, "s", Some(2), 3).await.unwrap();
    assert!(store.claim(&claim("b", LONG, 5)).await.unwrap().is_empty());
    // An input arrives (unfenced, as a web handler writes it): runnable again.
    let input = Append::new(Some(3), checkpoint(4), None).wake(Wake::Now);
    store.append("s", input).await.unwrap();
    let again = store.claim(&claim("b", LONG, 5)).await.unwrap();
    assert_eq!(names(&again), ["s"]);
    assert_eq!(again[0].epoch, 2);
}

/// Four claimers race on handles of their own: no session is claimed twice, no claim exceeds its
/// limit, and together they take all 50 sessions.
pub async fn concurrent_claimers_never_share_a_session_and_take_them_all<S: Store>(
    fixture: &Fixture<S>,
) {
    const SESSIONS: usize = 50;
    const LIMIT: usize = 4;
    let store = fixture.store();
    for i in 0..SESSIONS {
        enqueue(store, &format!("s{i:02}"), Wake::Now).await;
    }
    let tasks: Vec<_> = (0..4)
        .map(|worker| {
            let handle = fixture.another_handle();
            tokio::spawn(async move {
                let owner = format!("worker-{worker}");
                let mut taken = Vec::new();
                loop {
                    let leases = handle.claim(&claim(&owner, LONG, LIMIT)).await.unwrap();
                    assert!(leases.len() <= LIMIT, "{} above the limit", leases.len());
                    if leases.is_empty() {
                        return taken;
                    }
                    taken.extend(leases);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let claimed = names(&all);
    let mut unique = claimed.clone();
    unique.dedup();
    assert_eq!(claimed, unique, "a session was claimed twice");
    let expected: Vec<String> = (0..SESSIONS).map(|i| format!("s{i:02}")).collect();
    assert_eq!(claimed, expected);
    assert!(all.iter().all(|lease| lease.epoch == 1));
    assert!(
        store
            .claim(&claim("late", LONG, 100))
            .await
            .unwrap()
            .is_empty()
    );
}

/// `claim` returns at most `limit` leases (none for 0) and leaves the rest for the next claim.
pub async fn claim_respects_its_limit<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    for i in 0..10 {
        enqueue(store, &format!("s{i}"), Wake::Now).await;
    }
    assert!(store.claim(&claim("a", LONG, 0)).await.unwrap().is_empty());
    let first = store.claim(&claim("a", LONG, 3)).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store.claim(&claim("a", LONG, 100)).await.unwrap();
    assert_eq!(rest.len(), 7);
    let mut all = names(&first);
    all.extend(names(&rest));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10);
}

/// `wait_for_work` returns soon after an append makes a session runnable, long before its timeout.
pub async fn a_runnable_append_wakes_a_waiter_long_before_its_timeout<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    // Take any wake-up left from before (and, on PostgreSQL, start listening).
    for _ in 0..3 {
        store.wait_for_work(Duration::ZERO).await;
    }
    let timeout = Duration::from_secs(10);
    let (waited, ()) = tokio::join!(
        async {
            let started = Instant::now();
            store.wait_for_work(timeout).await;
            started.elapsed()
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            enqueue(store, "s", Wake::Now).await;
        }
    );
    assert!(
        waited < timeout / 2,
        "woke after {waited:?}, not by the append"
    );
    let leases = store.claim(&claim("a", LONG, 1)).await.unwrap();
    assert_eq!(names(&leases), ["s"]);
}

/// `wake` makes a waiting session runnable (what a child that ended does for its parent),
/// and wakes a waiter: only while the given checkpoint is the session's latest and waits. A
/// failure recorded on that checkpoint does not stop it; a session that runs, a stale
/// sequence number and a missing session are not woken, and nothing else changes.
pub async fn wake_makes_a_waiting_session_runnable_only_at_its_latest_seq<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let parked = |seq: u64, status: Status| {
        Append::new(None, step(seq, "research", status, 10), None)
            .workflow(FLOW, HASH)
            .wake(Wake::Never)
    };
    store
        .append("parent", parked(2, waiting("research/review")))
        .await
        .unwrap();
    store
        .append("busy", parked(1, Status::Running))
        .await
        .unwrap();
    assert!(store.claim(&claim("a", LONG, 5)).await.unwrap().is_empty());
    assert!(!store.wake("parent", 1).await.unwrap(), "not its latest");
    assert!(!store.wake("parent", 3).await.unwrap(), "not its latest");
    assert!(!store.wake("busy", 1).await.unwrap(), "it does not wait");
    assert!(!store.wake("nobody", 1).await.unwrap());
    assert!(store.claim(&claim("a", LONG, 5)).await.unwrap().is_empty());

    // A run from the waiting checkpoint failed: it still waits there.
    let failed = Audit::new(AuditKind::Failed {
        node: "research".into(),
        error: "the child failed".into(),
    });
    store.record_failure("parent", 2, &failed).await.unwrap();
    for _ in 0..3 {
        store.wait_for_work(Duration::ZERO).await;
    }
    let timeout = Duration::from_secs(10);
    let (waited, woken) = tokio::join!(
        async {
            let started = Instant::now();
            store.wait_for_work(timeout).await;
            started.elapsed()
        },
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            store.wake("parent", 2).await.unwrap()
        }
    );
    assert!(woken);
    assert!(waited < timeout / 2, "woke after {waited:?}, not by `wake`");
    let leases = store.claim(&claim("a", LONG, 5)).await.unwrap();
    assert_eq!(names(&leases), ["parent"]);
    // Nothing but the wake time changed.
    let record = record(&fixture.another_handle(), "parent").await;
    assert_eq!((record.seq, record.node.as_str()), (2, "research"));
    assert_eq!(store.list("parent").await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Graph versions and the versions in use

/// A hash whose top bit is set: a SQL store keeps it as a negative signed integer, and must
/// still sort it as the `u64` it is.
const HIGH_HASH: u64 = 0xfedc_ba98_7654_3210;

/// `record_graph` keeps a version once: the first call for a workflow and hash returns `true`,
/// every later one (from any handle) `false`, and the kept description and time stay the
/// first ones. The same hash under another workflow is another version.
pub async fn record_graph_keeps_the_first_version_and_says_whether_it_was_new<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let first = graph("checkout", HIGH_HASH, 10, "graph-runtime/v2\nnode review\n");
    assert!(store.record_graph(&first).await.unwrap(), "a new version");
    let again = graph("checkout", HIGH_HASH, 20, "another description");
    assert!(!store.record_graph(&again).await.unwrap(), "already kept");
    assert!(!store.record_graph(&first).await.unwrap(), "idempotent");
    let other = fixture.another_handle();
    assert!(
        !other.record_graph(&again).await.unwrap(),
        "kept for every handle"
    );
    assert_eq!(
        store.graph_version("checkout", HIGH_HASH).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        other.graph_version("checkout", HIGH_HASH).await.unwrap(),
        Some(first)
    );
    let refund = graph("refund", HIGH_HASH, 30, "refund's graph");
    assert!(
        store.record_graph(&refund).await.unwrap(),
        "another workflow"
    );
    assert_eq!(
        store.graph_version("refund", HIGH_HASH).await.unwrap(),
        Some(refund)
    );
}

/// `graph_version` finds a kept version by workflow and hash, with its description (any text:
/// lines, non-ASCII, 100 KiB) and its time to the microsecond; an unknown workflow or hash
/// is `None`, not an error. Recording a version writes no session.
pub async fn graph_version_finds_a_kept_version_and_none_for_others<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let long = "node n\n".repeat(100 * 1024 / 7);
    let mut exact = graph("checkout", 0, 1, "grüße, 'quotes'; -- and\ttabs\n");
    exact.recorded_at += Duration::from_micros(7);
    for version in [
        exact,
        graph("checkout", u64::MAX, 2, &long),
        graph("checkout", 1, 3, ""),
        graph("Zürich", 1 << 63, 4, "x"),
    ] {
        assert!(store.record_graph(&version).await.unwrap());
        let found = store
            .graph_version(&version.workflow, version.graph_hash)
            .await
            .unwrap();
        assert_eq!(found, Some(version));
    }
    assert_eq!(store.graph_version("checkout", 2).await.unwrap(), None);
    assert_eq!(store.graph_version("refund", 1).await.unwrap(), None);
    assert_eq!(store.graph_version("Checkout", 1).await.unwrap(), None);
    assert!(session_ids(store).await.is_empty());
    assert!(store.versions_in_use().await.unwrap().is_empty());
}

/// `graph_versions` lists one workflow's versions oldest first, and by hash (as a `u64`)
/// among versions recorded at the same time; other workflows' versions are not listed, and
/// an unknown workflow has none.
pub async fn graph_versions_are_oldest_first_and_per_workflow<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let listed = [
        graph("checkout", 7, 1, "first"),
        graph("checkout", 2, 5, "second, same time, lower hash"),
        graph("checkout", 3, 5, "third"),
        graph("checkout", HIGH_HASH, 5, "fourth: the top bit set"),
        graph("checkout", 1, 9, "newest"),
    ];
    // Recorded out of order, with another workflow's versions in between.
    for index in [4, 2, 0, 3, 1] {
        assert!(store.record_graph(&listed[index]).await.unwrap());
        let other = graph("refund", listed[index].graph_hash, 3, "refund");
        assert!(store.record_graph(&other).await.unwrap());
    }
    assert_eq!(store.graph_versions("checkout").await.unwrap(), listed);
    let refunds = store.graph_versions("refund").await.unwrap();
    let hashes: Vec<u64> = refunds.iter().map(|v| v.graph_hash).collect();
    assert_eq!(hashes, [1, 2, 3, 7, HIGH_HASH]);
    assert!(store.graph_versions("Checkout").await.unwrap().is_empty());
    assert!(store.graph_versions("").await.unwrap().is_empty());
    let other = fixture.another_handle();
    assert_eq!(other.graph_versions("checkout").await.unwrap(), listed);
}

/// `versions_in_use` counts sessions per workflow, graph hash and state schema, as the
/// latest append that gave each recorded them, sorted by workflow (as `str` sorts), hash (as
/// a `u64`) and schema (`None` first). Sessions without a workflow are not counted; an append
/// that gives neither leaves a session where it was. No graph version needs to be recorded.
pub async fn versions_in_use_counts_sessions_per_workflow_hash_and_schema<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    assert!(store.versions_in_use().await.unwrap().is_empty());
    let checkout = ("checkout", 1);
    push_versioned(store, "a", None, 1, checkout, Some(HIGH_HASH)).await;
    push_versioned(store, "b", None, 1, checkout, Some(HIGH_HASH)).await;
    push_versioned(store, "c", None, 1, checkout, Some(5)).await;
    push_versioned(store, "d", None, 1, checkout, None).await;
    push_versioned(store, "e", None, 1, ("checkout", HIGH_HASH), Some(5)).await;
    push_versioned(store, "f", None, 1, ("Zeta", 2), Some(5)).await;
    push_versioned(store, "g", None, 1, ("alpha", 2), Some(5)).await;
    // No workflow: not counted, with or without a schema.
    chain(store, "h", 2).await;
    let schema_only = Append::new(None, checkpoint(1), None).state_schema(5);
    store.append("i", schema_only).await.unwrap();
    // Appends that give neither leave the sessions where they were.
    append(store, "a", Some(1), 2).await.unwrap();
    append(store, "d", Some(1), 2).await.unwrap();
    let expected = [
        VersionCount::new("Zeta", 2, Some(5), 1),
        VersionCount::new("alpha", 2, Some(5), 1),
        VersionCount::new("checkout", 1, None, 1),
        VersionCount::new("checkout", 1, Some(5), 1),
        VersionCount::new("checkout", 1, Some(HIGH_HASH), 2),
        VersionCount::new("checkout", HIGH_HASH, Some(5), 1),
    ];
    assert_eq!(store.versions_in_use().await.unwrap(), expected);
    let other = fixture.another_handle();
    assert_eq!(other.versions_in_use().await.unwrap(), expected);
}

/// A session re-appended under a new graph hash or state schema moves to its new row (an
/// append with a schema alone keeps the hash; one with a workflow alone keeps the schema),
/// a conflicting append moves nothing, and a deleted session is no longer counted.
pub async fn versions_in_use_follows_reappends_and_deletes<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    for session in ["a", "b", "c"] {
        push_versioned(store, session, None, 1, ("checkout", 1), Some(10)).await;
    }
    assert_eq!(
        store.versions_in_use().await.unwrap(),
        [VersionCount::new("checkout", 1, Some(10), 3)]
    );
    // A newer release resumes `a`: new hash, new schema.
    push_versioned(store, "a", Some(1), 2, ("checkout", 2), Some(20)).await;
    // `b` is migrated to the new schema only.
    let migrated = Append::new(Some(1), checkpoint(2), None).state_schema(20);
    store.append("b", migrated).await.unwrap();
    // `c` moves to the new graph and keeps its schema.
    push_versioned(store, "c", Some(1), 2, ("checkout", 2), None).await;
    // A conflicting append records nothing.
    let stale = Append::new(Some(1), checkpoint(3), None)
        .workflow("checkout", 3)
        .state_schema(30);
    assert_conflict(store.append("c", stale).await, "c", Some(1), Some(2));
    assert_eq!(
        store.versions_in_use().await.unwrap(),
        [
            VersionCount::new("checkout", 1, Some(20), 1),
            VersionCount::new("checkout", 2, Some(10), 1),
            VersionCount::new("checkout", 2, Some(20), 1),
        ]
    );
    assert!(store.delete("b").await.unwrap());
    assert!(store.delete("c").await.unwrap());
    assert_eq!(
        store.versions_in_use().await.unwrap(),
        [VersionCount::new("checkout", 2, Some(20), 1)]
    );
    // A deleted id starts afresh: what its old session recorded is gone with it.
    append(store, "b", None, 1).await.unwrap();
    assert_eq!(
        store.versions_in_use().await.unwrap(),
        [VersionCount::new("checkout", 2, Some(20), 1)]
    );
    assert!(store.delete("a").await.unwrap());
    assert!(store.versions_in_use().await.unwrap().is_empty());
}

/// Many tasks on several handles record the same version at once (as workers of one release
/// starting together do): exactly one is told it was new, and the kept description is that
/// one's.
pub async fn concurrent_record_graph_is_new_exactly_once<S: Store>(fixture: &Fixture<S>) {
    const TASKS: usize = 12;
    let handles: Vec<Arc<S>> = (0..3).map(|_| Arc::new(fixture.another_handle())).collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&handles[task % handles.len()]);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let version = graph("checkout", HIGH_HASH, 1, &format!("task {task}"));
                barrier.wait().await;
                let new = store.record_graph(&version).await.expect("record_graph");
                (task, new)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (task, new) = task.await.expect("a recording task");
        if new {
            winners.push(task);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one new: {winners:?}");
    let kept = fixture
        .store()
        .graph_version("checkout", HIGH_HASH)
        .await
        .unwrap()
        .expect("the kept version");
    assert_eq!(kept.description, format!("task {}", winners[0]));
    assert_eq!(
        fixture.store().graph_versions("checkout").await.unwrap(),
        [kept]
    );
}

// ---------------------------------------------------------------------------------------------
// Session records (`sessions`, `session`) and audit records

/// Checkpoint `seq` at cursor `node` with `status`, written at [`at`]`(ms)`.
fn step(seq: u64, node: &str, status: Status, ms: u64) -> Checkpoint {
    Checkpoint::new(
        seq,
        node.to_owned(),
        status,
        format!("{node} {seq}").into_bytes(),
    )
    .created_at(at(ms))
}

/// A waiting status at `node`.
fn waiting(node: &str) -> Status {
    Status::Waiting {
        node: node.to_owned(),
    }
}

/// The record of `session`, which must exist.
async fn record<S: Store>(store: &S, session: &str) -> SessionRecord {
    store
        .session(session)
        .await
        .expect("session")
        .unwrap_or_else(|| panic!("no record of `{session}`"))
}

/// The ids of `page`.
fn ids(page: &SessionPage) -> Vec<&str> {
    page.sessions.iter().map(|r| r.session.as_str()).collect()
}

/// `session` describes a session from what its appends recorded, never from its bytes: the
/// workflow and graph hash (the hash's top bit set), the latest checkpoint's status, cursor,
/// sequence number and time, and the first checkpoint's time, which stays when retention
/// (in an append or `prune`) removes that checkpoint. A conflicting append changes nothing;
/// another handle and `sessions` report the same record; a session never written has none.
pub async fn session_records_describe_the_latest_checkpoint<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    assert_eq!(store.session("s").await.unwrap(), None);
    let first = step(1, "validate", Status::Running, 10);
    let append = Append::new(None, first, Some(2)).workflow(FLOW, HIGH_HASH);
    store.append("s", append).await.unwrap();
    let mut expected = SessionRecord::new("s", 1, "validate", Status::Running, at(10));
    expected.workflow = Some(FLOW.to_owned());
    expected.graph_hash = Some(HIGH_HASH);
    assert_eq!(record(store, "s").await, expected);

    let second = step(2, "review", waiting("review"), 20);
    push(store, "s", Some(1), second, Some(2)).await;
    let found = record(store, "s").await;
    assert_eq!((found.seq, found.node.as_str()), (2, "review"));
    assert_eq!(found.status, waiting("review"));
    assert_eq!(found.waiting, ["review"]);
    assert_eq!((found.created_at, found.updated_at), (at(10), at(20)));

    // Retention removes checkpoints 1 and 2; the first time stays.
    push(
        store,
        "s",
        Some(2),
        step(3, "decide", Status::Running, 30),
        Some(2),
    )
    .await;
    push(
        store,
        "s",
        Some(3),
        step(4, "END", Status::Completed, 40),
        Some(2),
    )
    .await;
    assert_eq!(seqs(store, "s").await, [3, 4]);
    let mut done = SessionRecord::new("s", 4, "END", Status::Completed, at(40));
    done.created_at = at(10);
    done.workflow = Some(FLOW.to_owned());
    done.graph_hash = Some(HIGH_HASH);
    assert_eq!(record(store, "s").await, done);
    assert_eq!(store.prune("s", 1).await.unwrap(), 1);
    assert_eq!(record(store, "s").await, done);
    // A conflicting append records nothing.
    let stale = Append::new(Some(3), step(5, "x", Status::Failed, 50), None).workflow("other", 1);
    assert_conflict(store.append("s", stale).await, "s", Some(3), Some(4));
    assert_eq!(record(store, "s").await, done);

    let other = fixture.another_handle();
    assert_eq!(other.session("s").await.unwrap(), Some(done.clone()));
    assert_eq!(
        store.sessions(&SessionFilter::new()).await.unwrap(),
        SessionPage::new(vec![done], None)
    );
    assert_eq!(store.session("t").await.unwrap(), None);
    assert_eq!(store.session("").await.unwrap(), None);
}

/// A session's record shows its wake time (set by an append, cleared by `Wake::Never`) and
/// its lease: the owner and expiry a claim gave it, the renewed expiry, none once released.
pub async fn session_records_show_wake_times_and_leases<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let slack = Duration::from_secs(10);
    let hour = Duration::from_secs(3600);
    let before = SystemTime::now();
    let later = Append::new(None, checkpoint(1), None)
        .workflow(FLOW, HASH)
        .wake(Wake::After(hour));
    store.append("timer", later).await.unwrap();
    let wake_at = record(store, "timer").await.wake_at.expect("a wake time");
    assert!(wake_at > before + hour - slack && wake_at < SystemTime::now() + hour + slack);
    let never = Append::new(Some(1), checkpoint(2), None).wake(Wake::Never);
    store.append("timer", never).await.unwrap();
    assert_eq!(record(store, "timer").await.wake_at, None);
    assert_eq!(record(store, "timer").await.lease, None);

    enqueue(store, "s", Wake::Now).await;
    let woken = record(store, "s").await.wake_at.expect("a wake time");
    assert!(woken > before - slack && woken < SystemTime::now() + slack);
    let leases = store.claim(&claim("w1", LONG, 1)).await.unwrap();
    assert_eq!(names(&leases), ["s"]);
    let close = |a: SystemTime, b: SystemTime| a < b + slack && b < a + slack;
    let (owner, expires) = record(store, "s").await.lease.expect("a lease");
    assert_eq!(owner, "w1");
    assert!(close(expires, leases[0].expires_at), "{expires:?}");
    let renewed = store.renew(&leases[0], LONG * 2).await.unwrap();
    let (_, expires) = record(store, "s").await.lease.expect("a lease");
    assert!(close(expires, renewed.expires_at), "{expires:?}");
    assert!(store.release(&renewed).await.unwrap());
    assert_eq!(record(store, "s").await.lease, None);
}

/// Sessions of two workflows (and none), in every status, waiting at one node or several,
/// written at different times. Every condition of a filter applies, alone and combined,
/// and every answer is what [`SessionFilter::matches`] says of the records, in id order.
pub async fn sessions_filter_on_every_condition_and_their_combinations<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    /// Id, latest status, workflow, the nodes `Append::waiting` lists, time.
    type Written<'a> = (&'a str, Status, Option<&'a str>, &'a [&'a str], u64);
    let sessions: [Written<'_>; 9] = [
        ("a-run", Status::Running, Some(FLOW), &[], 100),
        ("b-review", waiting("review"), Some(FLOW), &[], 200),
        ("c-review-old", waiting("review"), Some(FLOW), &[], 50),
        (
            "d-legal",
            waiting("legal"),
            Some(FLOW),
            &["legal", "finance"],
            300,
        ),
        ("e-refund", waiting("review"), Some("refund"), &[], 250),
        ("f-done", Status::Completed, Some(FLOW), &[], 400),
        ("g-failed", Status::Failed, Some(FLOW), &[], 150),
        ("h-cancelled", Status::Cancelled, Some("refund"), &[], 350),
        ("i-nobody", waiting("review"), None, &[], 120),
    ];
    // Written in another order than their ids'; each one twice, so that the record is the
    // latest checkpoint's.
    for (id, status, workflow, nodes, ms) in sessions.iter().rev() {
        let mut first = Append::new(None, step(1, "start", Status::Running, ms - 1), None);
        if let Some(workflow) = workflow {
            first = first.workflow(workflow, HASH);
        }
        store.append(id, first).await.unwrap();
        let node = status.waiting_node().unwrap_or("next");
        let latest = step(2, node, status.clone(), *ms);
        let append = Append::new(Some(1), latest, None).waiting(nodes.iter().copied());
        store.append(id, append).await.unwrap();
    }
    let all = store
        .sessions(&SessionFilter::new())
        .await
        .unwrap()
        .sessions;
    let all_ids: Vec<&str> = all.iter().map(|r| r.session.as_str()).collect();
    let mut sorted: Vec<&str> = sessions.iter().map(|s| s.0).collect();
    sorted.sort_unstable();
    assert_eq!(all_ids, sorted);
    assert_eq!(all[3].waiting, ["finance", "legal"]);
    assert_eq!(all[6].status, Status::Failed);
    assert_eq!(all[7].status, Status::Cancelled);
    assert_eq!(all[8].workflow, None);

    let check = |filter: SessionFilter, expected: &'static [&'static str]| {
        let all = &all;
        async move {
            let page = store.sessions(&filter).await.unwrap();
            assert_eq!(ids(&page), expected, "{filter:?}");
            assert_eq!(page.next, None, "{filter:?}");
            let by_matches: Vec<&str> = all
                .iter()
                .filter(|r| filter.matches(r))
                .map(|r| r.session.as_str())
                .collect();
            assert_eq!(by_matches, expected, "`matches` disagrees on {filter:?}");
            // Each returned record is the session's own.
            for found in &page.sessions {
                assert_eq!(Some(found), all.iter().find(|r| r.session == found.session));
            }
        }
    };
    let f = SessionFilter::new;
    check(
        f().workflow(FLOW),
        &[
            "a-run",
            "b-review",
            "c-review-old",
            "d-legal",
            "f-done",
            "g-failed",
        ],
    )
    .await;
    check(f().workflow("refund"), &["e-refund", "h-cancelled"]).await;
    check(f().workflow("Checkout"), &[]).await;
    check(f().status(StatusKind::Running), &["a-run"]).await;
    check(
        f().status(StatusKind::Waiting),
        &[
            "b-review",
            "c-review-old",
            "d-legal",
            "e-refund",
            "i-nobody",
        ],
    )
    .await;
    check(f().status(StatusKind::Completed), &["f-done"]).await;
    check(f().status(StatusKind::Failed), &["g-failed"]).await;
    check(f().status(StatusKind::Cancelled), &["h-cancelled"]).await;
    check(
        f().waiting_at("review"),
        &["b-review", "c-review-old", "e-refund", "i-nobody"],
    )
    .await;
    check(f().waiting_at("legal"), &["d-legal"]).await;
    check(f().waiting_at("finance"), &["d-legal"]).await;
    check(f().waiting_at("revie"), &[]).await;
    check(
        f().updated_before(at(150)),
        &["a-run", "c-review-old", "i-nobody"],
    )
    .await;
    check(
        f().updated_after(at(250)),
        &["d-legal", "e-refund", "f-done", "h-cancelled"],
    )
    .await;
    check(
        f().updated_after(at(100)).updated_before(at(300)),
        &["a-run", "b-review", "e-refund", "g-failed", "i-nobody"],
    )
    .await;
    check(
        f().after("c-review-old"),
        &[
            "d-legal",
            "e-refund",
            "f-done",
            "g-failed",
            "h-cancelled",
            "i-nobody",
        ],
    )
    .await;
    check(f().after("z"), &[]).await;
    check(
        f().waiting_at("review").workflow(FLOW),
        &["b-review", "c-review-old"],
    )
    .await;
    check(
        f().waiting_at("review").updated_before(at(200)),
        &["c-review-old", "i-nobody"],
    )
    .await;
    check(
        f().waiting_at("review").after("b-review"),
        &["c-review-old", "e-refund", "i-nobody"],
    )
    .await;
    check(f().waiting_at("finance").workflow("refund"), &[]).await;
    check(
        f().status(StatusKind::Waiting)
            .workflow(FLOW)
            .updated_after(at(100)),
        &["b-review", "d-legal"],
    )
    .await;
    check(
        f().status(StatusKind::Failed)
            .workflow(FLOW)
            .updated_before(at(151)),
        &["g-failed"],
    )
    .await;
    check(
        f().workflow("refund")
            .after("e-refund")
            .updated_after(at(300)),
        &["h-cancelled"],
    )
    .await;
    // A node with another status than waiting (the fields are public): nothing waits so.
    let mut contradiction = f().waiting_at("review");
    contradiction.status = Some(StatusKind::Running);
    check(contradiction, &[]).await;
    let mut any_status = f().waiting_at("legal");
    any_status.status = None;
    check(any_status, &["d-legal"]).await;

    // Small pages: each ends with the cursor of the next, the last with none.
    let page = store
        .sessions(&f().status(StatusKind::Waiting).limit(2))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["b-review", "c-review-old"]);
    assert_eq!(page.next.as_deref(), Some("c-review-old"));
    let page = store
        .sessions(
            &f().status(StatusKind::Waiting)
                .limit(2)
                .after("c-review-old"),
        )
        .await
        .unwrap();
    assert_eq!(ids(&page), ["d-legal", "e-refund"]);
    assert_eq!(page.next.as_deref(), Some("e-refund"));
    let page = store
        .sessions(&f().status(StatusKind::Waiting).limit(2).after("e-refund"))
        .await
        .unwrap();
    assert_eq!(ids(&page), ["i-nobody"]);
    assert_eq!(page.next, None);
    let other = fixture.another_handle();
    assert_eq!(
        other
            .sessions(&f().waiting_at("finance"))
            .await
            .unwrap()
            .sessions,
        [all[3].clone()]
    );
}

/// 250 sessions, written at once from several handles, read 100 at a time: three pages of
/// 100, 100 and 50, each id exactly once and in order; a filter that passes a third of them
/// pages the same way, and a page that ends exactly at the last match has no next cursor.
pub async fn paging_through_250_sessions_sees_each_exactly_once<S: Store>(fixture: &Fixture<S>) {
    const SESSIONS: usize = 250;
    let handles: Vec<Arc<S>> = (0..2).map(|_| Arc::new(fixture.another_handle())).collect();
    let tasks: Vec<_> = (0..10)
        .map(|task| {
            let store = Arc::clone(&handles[task % handles.len()]);
            tokio::spawn(async move {
                // Ids in an order unlike the order of writing.
                for i in (task..SESSIONS).step_by(10).rev() {
                    let status = if i % 3 == 0 {
                        waiting("review")
                    } else {
                        Status::Running
                    };
                    let first = step(1, "review", status, i as u64);
                    let append = Append::new(None, first, None).workflow(FLOW, HASH);
                    store.append(&format!("s-{i:03}"), append).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("a writing task")
            .expect("every append lands");
    }
    let store = fixture.store();
    let mut filter = SessionFilter::new().limit(100);
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let page = store.sessions(&filter).await.unwrap();
        sizes.push(page.sessions.len());
        seen.extend(page.sessions.iter().map(|r| r.session.clone()));
        assert_eq!(
            page.next.is_some(),
            seen.len() < SESSIONS,
            "{:?}",
            page.next
        );
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                filter = filter.after(&next);
            }
            None => break,
        }
    }
    assert_eq!(sizes, [100, 100, 50]);
    let expected: Vec<String> = (0..SESSIONS).map(|i| format!("s-{i:03}")).collect();
    assert_eq!(seen, expected);

    let waiting: Vec<String> = (0..SESSIONS)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("s-{i:03}"))
        .collect();
    assert_eq!(waiting.len(), 84);
    let by_node = SessionFilter::new().waiting_at("review").limit(42);
    let first = store.sessions(&by_node).await.unwrap();
    assert_eq!(first.sessions.len(), 42);
    let second = store
        .sessions(
            &by_node
                .clone()
                .after(first.next.as_deref().expect("a second page")),
        )
        .await
        .unwrap();
    assert_eq!(second.sessions.len(), 42);
    assert_eq!(second.next, None, "the last match ends the last page");
    assert_eq!(matching_ids(store, &by_node).await, waiting);
    let running = SessionFilter::new().status(StatusKind::Running).limit(7);
    assert_eq!(matching_ids(store, &running).await.len(), SESSIONS - 84);
    let old = SessionFilter::new()
        .updated_before(at(125))
        .workflow(FLOW)
        .limit(10);
    assert_eq!(matching_ids(store, &old).await, expected[..125]);
}

/// The nodes a session waits at are those of its latest append: every node
/// [`Append::waiting`] lists (each once, sorted), the one its status names without a list,
/// none once it runs, completes or fails (a list given with a status that does not wait is
/// not recorded). `waiting_at` finds it by any of them and by no other.
pub async fn waiting_nodes_follow_every_append<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let at_node = |node: &'static str| async move {
        matching_ids(store, &SessionFilter::new().waiting_at(node)).await
    };
    let several = Append::new(None, step(1, "legal", waiting("legal"), 1), None)
        .waiting(["legal", "finance", "legal", "ops"]);
    store.append("s", several).await.unwrap();
    assert_eq!(
        record(store, "s").await.waiting,
        ["finance", "legal", "ops"]
    );
    for node in ["legal", "finance", "ops"] {
        assert_eq!(at_node(node).await, ["s"], "{node}");
    }
    assert!(at_node("review").await.is_empty());
    // The one its status names.
    push(
        store,
        "s",
        Some(1),
        step(2, "finance", waiting("finance"), 2),
        None,
    )
    .await;
    assert_eq!(record(store, "s").await.waiting, ["finance"]);
    assert!(at_node("legal").await.is_empty());
    assert!(at_node("ops").await.is_empty());
    assert_eq!(at_node("finance").await, ["s"]);
    // Running: none, even with a list.
    let running = Append::new(Some(2), step(3, "pay", Status::Running, 3), None).waiting(["pay"]);
    store.append("s", running).await.unwrap();
    assert!(record(store, "s").await.waiting.is_empty());
    for node in ["finance", "pay"] {
        assert!(at_node(node).await.is_empty(), "{node}");
    }
    let status = SessionFilter::new().status(StatusKind::Waiting);
    assert!(matching_ids(store, &status).await.is_empty());
    // Waiting again, then failed, with retention on the way.
    let again = Append::new(Some(3), step(4, "review", waiting("review"), 4), Some(1))
        .waiting(["review", "legal"]);
    store.append("s", again).await.unwrap();
    assert_eq!(at_node("legal").await, ["s"]);
    let other = fixture.another_handle();
    assert_eq!(
        other.session("s").await.unwrap().unwrap().waiting,
        ["legal", "review"]
    );
    push(
        store,
        "s",
        Some(4),
        step(5, "review", Status::Failed, 5),
        Some(1),
    )
    .await;
    assert!(at_node("review").await.is_empty());
    assert!(at_node("legal").await.is_empty());
    assert!(record(store, "s").await.waiting.is_empty());
    // Two sessions at one node, in id order whatever the order of writing.
    for id in ["w-2", "w-1", "w-3"] {
        let append = Append::new(None, step(1, "ops", waiting("ops"), 6), None);
        store.append(id, append).await.unwrap();
    }
    assert_eq!(at_node("ops").await, ["w-1", "w-2", "w-3"]);
}

/// An audit record appended with a checkpoint comes back with it from `list`, from any
/// handle, whatever its kind and text (an actor, a note, a 100 KiB diff); checkpoints without
/// one have none; retention keeps the records of the checkpoints it keeps.
pub async fn audit_records_round_trip_through_list<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let diff = format!(
        "[{}]",
        r#"{"path":"/notes/0","old":null,"new":"é ✓"},"#.repeat(2_000)
    );
    let audits = [
        None,
        Some(
            Audit::new(AuditKind::Input {
                node: "review".into(),
                source: InputSource::Caller,
            })
            .by("alice")
            .note("limit raised"),
        ),
        Some(Audit::new(AuditKind::Input {
            node: "review".into(),
            source: InputSource::Deadline,
        })),
        Some(Audit::new(AuditKind::Edit { diff }).by("bob")),
        Some(Audit::new(AuditKind::Failed {
            node: "pay".into(),
            error: "card declined: 'insufficient funds'; -- \0".into(),
        })),
        Some(Audit::new(AuditKind::Cancelled).by("").note("")),
    ];
    for (index, audit) in audits.iter().enumerate() {
        let seq = index as u64 + 1;
        let mut append = Append::new(before(seq), checkpoint(seq), None);
        if let Some(audit) = audit {
            append = append.audit(audit.clone());
        }
        store.append("s", append).await.unwrap();
    }
    let listed: Vec<Option<Audit>> = store
        .list("s")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.audit)
        .collect();
    assert_eq!(listed, audits);
    let other = fixture.another_handle();
    let again: Vec<Option<Audit>> = other
        .list("s")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.audit)
        .collect();
    assert_eq!(again, audits);
    // Everything else a listing says is as before.
    let metas = store.list("s").await.unwrap();
    assert_eq!(metas[0], meta(&checkpoint(1)));
    assert_eq!(
        (metas[1].seq, metas[1].node.as_str(), metas[1].bytes),
        (2, "step", checkpoint(2).bytes.len() as u64)
    );
    // Retention keeps the records of what it keeps.
    assert_eq!(store.prune("s", 2).await.unwrap(), 4);
    let kept: Vec<Option<Audit>> = store
        .list("s")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.audit)
        .collect();
    assert_eq!(kept, audits[4..]);
    let forked = Audit::new(AuditKind::Forked {
        from: "s".into(),
        seq: u64::MAX,
    });
    let first = Append::new(None, checkpoint(6), Some(1)).audit(forked.clone());
    store.append("fork", first).await.unwrap();
    push(store, "fork", Some(6), checkpoint(7), Some(2)).await;
    let audits: Vec<Option<Audit>> = store
        .list("fork")
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.audit)
        .collect();
    assert_eq!(audits, [Some(forked), None]);
    push(store, "fork", Some(7), checkpoint(8), Some(1)).await;
    assert_eq!(store.list("fork").await.unwrap()[0].audit, None);
}

/// A deleted session leaves every query (by status, by waiting node, by workflow, `session`),
/// and its id starts afresh: a new record, with its own first time.
pub async fn deleted_sessions_leave_every_query<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    for id in ["gone", "kept"] {
        let first = Append::new(None, step(1, "review", waiting("review"), 10), None)
            .workflow(FLOW, HASH)
            .waiting(["review", "legal"]);
        store.append(id, first).await.unwrap();
    }
    assert!(store.delete("gone").await.unwrap());
    assert_eq!(store.session("gone").await.unwrap(), None);
    for filter in [
        SessionFilter::new(),
        SessionFilter::new().waiting_at("review"),
        SessionFilter::new().waiting_at("legal"),
        SessionFilter::new().status(StatusKind::Waiting),
        SessionFilter::new().workflow(FLOW),
    ] {
        assert_eq!(matching_ids(store, &filter).await, ["kept"], "{filter:?}");
    }
    push(
        store,
        "gone",
        None,
        step(1, "start", Status::Running, 20),
        None,
    )
    .await;
    let fresh = record(store, "gone").await;
    assert_eq!(
        fresh,
        SessionRecord::new("gone", 1, "start", Status::Running, at(20))
    );
    assert_eq!(
        matching_ids(store, &SessionFilter::new().waiting_at("legal")).await,
        ["kept"]
    );
    assert!(store.delete("kept").await.unwrap());
    assert!(store.delete("gone").await.unwrap());
    assert!(session_ids(store).await.is_empty());
    assert!(
        matching_ids(store, &SessionFilter::new().waiting_at("review"))
            .await
            .is_empty()
    );
}

/// A filter built with its public fields may hold anything: a limit of 0 is 1, one above
/// [`SessionFilter::MAX_LIMIT`] is that; times far outside what a store keeps, and names
/// with quotes, wildcards or NUL, match what they mean (or nothing), never a panic or an
/// error.
pub async fn odd_filters_are_clamped_or_match_nothing_never_panic<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    for (id, ms) in [("", 1), ("a", 2), ("b%", 3), ("b_", 4)] {
        push(store, id, None, step(1, "n", waiting("'; --%_"), ms), None).await;
    }
    let mut zero = SessionFilter::new();
    zero.limit = 0;
    let page = store.sessions(&zero).await.unwrap();
    assert_eq!((ids(&page), page.next.as_deref()), (vec![""], Some("")));
    let page = store.sessions(&zero.clone().after("")).await.unwrap();
    assert_eq!((ids(&page), page.next.as_deref()), (vec!["a"], Some("a")));
    let mut huge = SessionFilter::new();
    huge.limit = usize::MAX;
    assert_eq!(store.sessions(&huge).await.unwrap().sessions.len(), 4);
    let far_future = UNIX_EPOCH
        .checked_add(Duration::from_secs(1 << 62))
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(1 << 40));
    let far_past = UNIX_EPOCH
        .checked_sub(Duration::from_secs(1 << 62))
        .unwrap_or(UNIX_EPOCH - Duration::from_secs(1 << 40));
    let count = |filter: SessionFilter| async move { matching_ids(store, &filter).await.len() };
    assert_eq!(
        count(SessionFilter::new().updated_before(far_future)).await,
        4
    );
    assert_eq!(count(SessionFilter::new().updated_after(far_past)).await, 4);
    assert_eq!(
        count(SessionFilter::new().updated_before(far_past)).await,
        0
    );
    assert_eq!(
        count(SessionFilter::new().updated_after(far_future)).await,
        0
    );
    assert_eq!(count(SessionFilter::new().updated_after(at(3))).await, 2);
    assert_eq!(count(SessionFilter::new().waiting_at("'; --%_")).await, 4);
    assert_eq!(count(SessionFilter::new().waiting_at("%")).await, 0);
    assert_eq!(count(SessionFilter::new().waiting_at("")).await, 0);
    assert_eq!(count(SessionFilter::new().workflow("%")).await, 0);
    assert_eq!(count(SessionFilter::new().after("b")).await, 2);
    assert_eq!(count(SessionFilter::new().after("b%")).await, 1);
    assert_eq!(count(SessionFilter::new().after("\u{10FFFF}")).await, 0);
    assert_eq!(count(SessionFilter::new().after("a\0")).await, 2);
    assert_eq!(store.session("b_").await.unwrap().map(|r| r.seq), Some(1));
    assert_eq!(store.session("b").await.unwrap(), None);
}

/// A child session's parent is kept from the append that creates it ([`Append::parent`]),
/// never changed by a later append, read back by `session` and `sessions` on every handle,
/// and found by [`SessionFilter::parent`]: a parent's direct children only, in the order of
/// their ids, page by page, combined with the other conditions. An id that looks like a
/// child's is no child without the record; a deleted child leaves the filter.
pub async fn a_childs_parent_is_kept_from_its_creation_and_finds_it<S: Store>(
    fixture: &Fixture<S>,
) {
    let store = fixture.store();
    let first = |parent: Option<&str>| {
        let append = Append::new(None, step(0, "search", Status::Running, 10), None);
        match parent {
            Some(parent) => append.parent(parent),
            None => append,
        }
    };
    let long_parent = format!("{}é", "p".repeat(300));
    for (id, parent) in [
        ("p", None),
        ("q", None),
        (long_parent.as_str(), None),
        ("p/research/2", Some("p")),
        ("p/research/5", Some("p")),
        ("p/research/2/search/1", Some("p/research/2")),
        ("p/research/9", None),
        ("q/research/2", Some("q")),
        ("a~0123456789abcdef", Some(long_parent.as_str())),
    ] {
        store.append(id, first(parent)).await.unwrap();
    }
    // A later append (even one that names a parent, here one that does not exist) leaves it
    // as it was.
    let later = Append::new(Some(0), step(1, "END", Status::Completed, 20), None).parent("nobody");
    store.append("p/research/5", later).await.unwrap();

    let other = &fixture.another_handle();
    assert_eq!(
        record(other, "p/research/2").await.parent.as_deref(),
        Some("p")
    );
    assert_eq!(
        record(store, "p/research/5").await.parent.as_deref(),
        Some("p")
    );
    assert_eq!(record(store, "p").await.parent, None);
    assert_eq!(record(store, "p/research/9").await.parent, None);
    assert_eq!(
        record(store, "a~0123456789abcdef").await.parent.as_deref(),
        Some(long_parent.as_str())
    );

    let children = |parent: &str| SessionFilter::new().parent(parent);
    assert_eq!(
        matching_ids(other, &children("p")).await,
        ["p/research/2", "p/research/5"]
    );
    assert_eq!(
        matching_ids(store, &children("p").limit(1)).await,
        ["p/research/2", "p/research/5"]
    );
    assert_eq!(
        matching_ids(store, &children("p/research/2")).await,
        ["p/research/2/search/1"]
    );
    assert_eq!(
        matching_ids(store, &children(&long_parent)).await,
        ["a~0123456789abcdef"]
    );
    assert_eq!(
        matching_ids(store, &children("p").status(StatusKind::Completed)).await,
        ["p/research/5"]
    );
    assert_eq!(
        matching_ids(store, &children("p").after("p/research/2")).await,
        ["p/research/5"]
    );
    let page = store.sessions(&children("p")).await.unwrap();
    assert!(
        page.sessions
            .iter()
            .all(|r| r.parent.as_deref() == Some("p")),
        "{page:?}"
    );
    assert!(matching_ids(store, &children("nobody")).await.is_empty());
    assert!(matching_ids(store, &children("")).await.is_empty());

    assert!(store.delete("p/research/2").await.unwrap());
    assert_eq!(matching_ids(store, &children("p")).await, ["p/research/5"]);
}

/// A child is created only under a parent that exists ([`Append::parent`]): otherwise
/// [`Error::SessionNotFound`] names the parent and nothing is written. Deleting a session
/// deletes every session below it ([`Store::delete`]): its children, theirs, and no other
/// session; afterwards no child of it (or of a deleted child) can be created, and a delete of
/// a session that is gone deletes nothing and says so.
pub async fn a_child_needs_its_parent_and_goes_with_it<S: Store>(fixture: &Fixture<S>) {
    let store = fixture.store();
    let other = &fixture.another_handle();
    let first = |parent: Option<&str>| {
        let append = Append::new(None, step(0, "search", Status::Running, 10), None);
        match parent {
            Some(parent) => append.parent(parent),
            None => append,
        }
    };
    let refused = |result: Result<()>, parent: &str| match result {
        Err(Error::SessionNotFound(named)) if named == parent => {}
        other => panic!("a child of missing `{parent}`: expected SessionNotFound, got {other:?}"),
    };

    refused(store.append("r/a/1", first(Some("r"))).await, "r");
    assert_eq!(store.session("r/a/1").await.unwrap(), None);
    assert!(store.list("r/a/1").await.unwrap().is_empty());
    assert!(
        matching_ids(other, &SessionFilter::new().parent("r"))
            .await
            .is_empty()
    );

    for (id, parent) in [
        ("r", None),
        ("r/a/1", Some("r")),
        ("r/a/1/x/1", Some("r/a/1")),
        ("r/a/1/x/1/y/1", Some("r/a/1/x/1")),
        ("r/b/2", Some("r")),
        ("rr", None),
        ("rr/a/1", Some("rr")),
        ("u", None),
        ("u/c/1", Some("u")),
    ] {
        store.append(id, first(parent)).await.unwrap();
    }
    // A child's later checkpoints, so that a delete takes more than one row of each.
    let later = Append::new(Some(0), step(1, "search", Status::Running, 20), None);
    store.append("r/a/1/x/1", later).await.unwrap();

    assert!(other.delete("r").await.unwrap());
    for gone in ["r", "r/a/1", "r/a/1/x/1", "r/a/1/x/1/y/1", "r/b/2"] {
        assert_eq!(
            store.session(gone).await.unwrap(),
            None,
            "{gone} outlived r"
        );
        assert!(store.list(gone).await.unwrap().is_empty(), "{gone}");
        assert_eq!(
            store.latest(gone).await.unwrap().map(|c| c.seq),
            None,
            "{gone}"
        );
    }
    for kept in ["rr", "rr/a/1", "u", "u/c/1"] {
        assert!(
            store.session(kept).await.unwrap().is_some(),
            "{kept} deleted with r"
        );
    }
    assert_eq!(
        matching_ids(store, &SessionFilter::new()).await,
        ["rr", "rr/a/1", "u", "u/c/1"]
    );

    // No child of the deleted parent, nor of its deleted children, can be created again.
    refused(store.append("r/a/1", first(Some("r"))).await, "r");
    refused(
        other.append("r/a/1/x/2", first(Some("r/a/1"))).await,
        "r/a/1",
    );
    assert_eq!(store.session("r/a/1/x/2").await.unwrap(), None);
    assert!(!store.delete("r").await.unwrap());

    // A child deleted alone leaves its parent; its parent then deletes what is left.
    assert!(store.delete("u/c/1").await.unwrap());
    assert!(store.session("u").await.unwrap().is_some());
    store.append("u/c/2", first(Some("u"))).await.unwrap();
    assert!(store.delete("u").await.unwrap());
    assert_eq!(
        matching_ids(store, &SessionFilter::new()).await,
        ["rr", "rr/a/1"]
    );
}

/// Children (and their own children) created while their parent is being deleted, from many
/// tasks at once: each creation either lands before the delete, and goes with the parent, or
/// is refused with [`Error::SessionNotFound`] naming its parent. Afterwards nothing below the
/// parent is left, whatever the interleaving.
pub async fn children_created_while_their_parent_is_deleted_never_outlive_it<S: Store>(
    fixture: &Fixture<S>,
) {
    const ROUNDS: usize = 6;
    const CHILDREN: usize = 12;
    let store = Arc::new(fixture.another_handle());
    let first = || Append::new(None, step(0, "search", Status::Running, 10), None);
    for round in 0..ROUNDS {
        let parent = format!("racing-{round}");
        store.append(&parent, first()).await.unwrap();
        let mut tasks = Vec::new();
        let mut deleter = None;
        for i in 0..CHILDREN {
            let (own, parent_id) = (Arc::clone(&store), parent.clone());
            tasks.push(tokio::spawn(async move {
                let (store, parent) = (own, parent_id);
                let child = format!("{parent}/c/{i}");
                match store.append(&child, first().parent(&parent)).await {
                    Ok(()) => {}
                    Err(Error::SessionNotFound(named)) if named == parent => return,
                    other => panic!("creating {child}: {other:?}"),
                }
                let grandchild = format!("{child}/g/1");
                match store.append(&grandchild, first().parent(&child)).await {
                    Ok(()) => {}
                    Err(Error::SessionNotFound(named)) if named == child => {}
                    other => panic!("creating {grandchild}: {other:?}"),
                }
            }));
            if i == CHILDREN / 3 * (1 + round % 2) {
                let (own, parent_id) = (Arc::clone(&store), parent.clone());
                deleter = Some(tokio::spawn(async move { own.delete(&parent_id).await }));
            }
        }
        for task in tasks {
            task.await.expect("a task creating a child");
        }
        let deleted = deleter
            .expect("the delete was started")
            .await
            .expect("the delete");
        assert!(deleted.unwrap(), "{parent} existed when it was deleted");
        let left: Vec<String> = matching_ids(fixture.store(), &SessionFilter::new())
            .await
            .into_iter()
            .filter(|id| id.starts_with(&parent))
            .collect();
        assert!(left.is_empty(), "outlived {parent}: {left:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::store::MemoryStore;

    /// A `MemoryStore` with one bug: `prune` removes nothing (and says so).
    #[derive(Clone)]
    struct NeverPrunes(MemoryStore);

    impl Store for NeverPrunes {
        fn append(&self, session: &str, append: Append) -> impl Future<Output = Result<()>> + Send {
            self.0.append(session, append)
        }
        fn latest(&self, session: &str) -> impl Future<Output = Result<Option<Checkpoint>>> + Send {
            self.0.latest(session)
        }
        fn get(
            &self,
            session: &str,
            seq: u64,
        ) -> impl Future<Output = Result<Option<Checkpoint>>> + Send {
            self.0.get(session, seq)
        }
        fn list(&self, session: &str) -> impl Future<Output = Result<Vec<CheckpointMeta>>> + Send {
            self.0.list(session)
        }
        async fn prune(&self, _: &str, _: u64) -> Result<u64> {
            Ok(0)
        }
        fn delete(&self, session: &str) -> impl Future<Output = Result<bool>> + Send {
            self.0.delete(session)
        }
        fn sessions(
            &self,
            filter: &SessionFilter,
        ) -> impl Future<Output = Result<SessionPage>> + Send {
            self.0.sessions(filter)
        }
        fn session(
            &self,
            session: &str,
        ) -> impl Future<Output = Result<Option<SessionRecord>>> + Send {
            self.0.session(session)
        }
        fn claim(&self, claim: &Claim) -> impl Future<Output = Result<Vec<Lease>>> + Send {
            self.0.claim(claim)
        }
        fn renew(
            &self,
            lease: &Lease,
            ttl: Duration,
        ) -> impl Future<Output = Result<Lease>> + Send {
            self.0.renew(lease, ttl)
        }
        fn release(&self, lease: &Lease) -> impl Future<Output = Result<bool>> + Send {
            self.0.release(lease)
        }
        fn wait_for_work(&self, timeout: Duration) -> impl Future<Output = ()> + Send {
            self.0.wait_for_work(timeout)
        }
        fn record_graph(
            &self,
            version: &GraphVersion,
        ) -> impl Future<Output = Result<bool>> + Send {
            self.0.record_graph(version)
        }
        fn graph_version(
            &self,
            workflow: &str,
            graph_hash: u64,
        ) -> impl Future<Output = Result<Option<GraphVersion>>> + Send {
            self.0.graph_version(workflow, graph_hash)
        }
        fn graph_versions(
            &self,
            workflow: &str,
        ) -> impl Future<Output = Result<Vec<GraphVersion>>> + Send {
            self.0.graph_versions(workflow)
        }
        fn versions_in_use(&self) -> impl Future<Output = Result<Vec<VersionCount>>> + Send {
            self.0.versions_in_use()
        }
    }

    fn never_prunes() -> Fixture<NeverPrunes> {
        let store = NeverPrunes(MemoryStore::new());
        let shared = store.clone();
        Fixture::new(store, move || shared.clone())
    }

    /// `run_all` goes on past a failed case and names every failed case in its panic; the
    /// cases that do not prune still pass.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_all_names_every_failed_case() {
        let outcome = tokio::spawn(run_all(never_prunes)).await;
        let panic = outcome.expect_err("a store that never prunes fails the suite");
        let payload = panic.into_panic();
        let message = payload
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(
            message.contains(&format!(" of {CASES} store conformance cases failed:")),
            "{message}"
        );
        for failed in [
            "prune_keeps_the_newest_and_counts_removals",
            "prune_keeps_what_kept_checkpoints_depend_on",
            "get_of_pruned_missing_or_huge_seq_is_none",
        ] {
            assert!(message.contains(&format!("- `{failed}`: ")), "{message}");
        }
        for passed in [
            "round_trip_keeps_bytes_and_metadata",
            "claim_respects_its_limit",
        ] {
            assert!(!message.contains(passed), "{message}");
        }
    }
}
