//! The store conformance suite: one set of behaviours every [`Store`] must have, run against
//! each implementation (`memory_store::…`, `sqlite_store::…`), plus what only SQLite can be
//! asked (`sqlite_file::…`: reopening, several handles on one file, schema versions, damaged
//! rows, lock timeouts).
//!
//! To run it against a new store, add a fixture function and one `conformance!` line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use graph_runtime::store::{Append, Checkpoint, CheckpointMeta, Claim, Lease, Store, Wake};
use graph_runtime::{Error, MemoryStore, Result, SqliteOptions, SqliteStore, Status, Synchronous};
use tempfile::TempDir;

/// A fresh, empty store, and a way to get another handle on the same data: a clone for
/// `MemoryStore`, the same file opened again for `SqliteStore`.
struct Fixture<S> {
    store: S,
    another_handle: Box<dyn Fn() -> S + Send + Sync>,
    _dir: Option<TempDir>,
}

fn memory_store() -> Fixture<MemoryStore> {
    let store = MemoryStore::new();
    let shared = store.clone();
    Fixture {
        store,
        another_handle: Box::new(move || shared.clone()),
        _dir: None,
    }
}

fn sqlite_store() -> Fixture<SqliteStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("checkpoints.db");
    let store = SqliteStore::open(&path).expect("a new store file");
    Fixture {
        store,
        another_handle: Box::new(move || SqliteStore::open(&path).expect("the file, again")),
        _dir: Some(dir),
    }
}

/// Instantiates every generic case for one store, as `#[tokio::test]`s in module `$module`.
macro_rules! conformance {
    ($module:ident, $fixture:path) => {
        mod $module {
            conformance!(@cases $fixture;
                round_trip_keeps_bytes_and_metadata,
                list_is_oldest_first_and_latest_is_newest,
                missing_session_reads_as_empty,
                conflict_when_expected_is_not_the_latest,
                conflict_when_expected_is_stale,
                conflict_when_creating_a_session_that_exists,
                conflict_when_appending_to_a_missing_session,
                conflict_when_seq_is_not_above_expected,
                new_session_may_start_at_any_seq,
                keep_last_prunes_in_the_same_append,
                prune_keeps_the_newest_and_counts_removals,
                get_of_pruned_missing_or_huge_seq_is_none,
                delete_removes_the_session_and_frees_its_id,
                sessions_are_listed_sorted_by_bytes,
                sessions_are_isolated_from_each_other,
                unicode_and_very_long_session_ids_round_trip,
                racing_writers_on_one_session_form_one_chain,
                many_sessions_appending_at_once_all_land,
                a_conflict_in_a_burst_fails_only_its_own_append,
                depends_on_round_trips,
                keep_last_keeps_what_kept_checkpoints_depend_on,
                prune_keeps_what_kept_checkpoints_depend_on,
                chain_returns_the_kept_range_oldest_first,
                claim_takes_only_runnable_sessions_of_listed_workflows_and_hashes,
                a_live_lease_keeps_other_claimers_out_and_each_claim_raises_the_epoch,
                a_fenced_append_with_an_old_epoch_is_lease_lost_and_writes_nothing,
                renew_extends_a_lease_and_is_lease_lost_after_a_takeover,
                wake_after_is_claimable_only_once_due,
                wake_never_is_not_claimable_until_woken_again,
                concurrent_claimers_never_share_a_session_and_take_them_all,
                claim_respects_its_limit,
                a_runnable_append_wakes_a_waiter_long_before_its_timeout,
            );
        }
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture();
                super::cases::$case(&fixture).await;
            }
        )*
    };
}

conformance!(memory_store, super::memory_store);
conformance!(sqlite_store, super::sqlite_store);
conformance!(postgres_store, super::postgres_server::postgres_store);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A fixed, whole-millisecond time: stores may keep only microseconds.
fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn checkpoint(seq: u64) -> Checkpoint {
    let bytes = format!("checkpoint {seq}").into_bytes();
    Checkpoint::new(seq, "step", Status::Running, bytes).created_at(at(seq % 1000))
}

/// An incremental checkpoint: it needs the checkpoints from `base` up to itself.
fn delta(seq: u64, base: u64) -> Checkpoint {
    checkpoint(seq).depends_on(base)
}

/// Appends `checkpoint` after `expected`, keeping `keep_last`.
async fn push<S: Store>(
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

fn tagged(seq: u64, tag: &str) -> Checkpoint {
    let mut checkpoint = checkpoint(seq);
    checkpoint.bytes = format!("{tag} {seq}").into_bytes();
    checkpoint
}

/// The `expected` of the append that follows `seq - 1` in a chain starting at 1.
fn before(seq: u64) -> Option<u64> {
    seq.checked_sub(1).filter(|&s| s > 0)
}

async fn append<S: Store>(store: &S, session: &str, expected: Option<u64>, seq: u64) -> Result<()> {
    store
        .append(session, Append::new(expected, checkpoint(seq), None))
        .await
}

/// Appends checkpoints 1..=n to a new session.
async fn chain<S: Store>(store: &S, session: &str, n: u64) {
    for seq in 1..=n {
        append(store, session, before(seq), seq)
            .await
            .expect("an uncontested append");
    }
}

async fn seqs<S: Store>(store: &S, session: &str) -> Vec<u64> {
    store
        .list(session)
        .await
        .expect("list")
        .iter()
        .map(|m| m.seq)
        .collect()
}

async fn latest_seq<S: Store>(store: &S, session: &str) -> Option<u64> {
    store.latest(session).await.expect("latest").map(|c| c.seq)
}

#[track_caller]
fn assert_conflict(result: Result<()>, session: &str, expected: Option<u64>, found: Option<u64>) {
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

fn meta(checkpoint: &Checkpoint) -> CheckpointMeta {
    CheckpointMeta::from(checkpoint)
}

/// The workflow and graph hash the lease cases register.
const FLOW: &str = "checkout";
const HASH: u64 = 0xfeed_beef_0000_0001;
/// A lease that outlives every test.
const LONG: Duration = Duration::from_secs(60);

/// A new session of `FLOW` at `HASH` (checkpoint 1), with this wake time.
async fn enqueue<S: Store>(store: &S, session: &str, wake: Wake) {
    let append = Append::new(None, checkpoint(1), None)
        .workflow(FLOW, HASH)
        .wake(wake);
    store.append(session, append).await.expect("an enqueue");
}

/// A claim of `FLOW` at `HASH` by `owner`.
fn claim(owner: &str, ttl: Duration, limit: usize) -> Claim {
    Claim::new(owner, ttl, limit).workflow(FLOW, [HASH])
}

/// The sessions of some leases, sorted.
fn names(leases: &[Lease]) -> Vec<String> {
    let mut names: Vec<String> = leases.iter().map(|l| l.session.clone()).collect();
    names.sort();
    names
}

#[track_caller]
fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T>, session: &str, epoch: u64) {
    match result {
        Err(Error::LeaseLost {
            session: s,
            epoch: e,
        }) => assert_eq!((s.as_str(), e), (session, epoch), "lease-lost fields"),
        other => panic!("expected LeaseLost in `{session}`, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The generic cases

mod cases {
    use super::*;

    pub async fn claim_takes_only_runnable_sessions_of_listed_workflows_and_hashes<S: Store>(
        f: &Fixture<S>,
    ) {
        let store = &f.store;
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

    pub async fn a_live_lease_keeps_other_claimers_out_and_each_claim_raises_the_epoch<S: Store>(
        f: &Fixture<S>,
    ) {
        let store = &f.store;
        let other = (f.another_handle)();
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

    pub async fn a_fenced_append_with_an_old_epoch_is_lease_lost_and_writes_nothing<S: Store>(
        f: &Fixture<S>,
    ) {
        let store = &f.store;
        let other = (f.another_handle)();
        enqueue(store, "s", Wake::Now).await;
        let short = store
            .claim(&claim("a", Duration::from_millis(200), 5))
            .await
            .unwrap();
        let fenced = |seq: u64, expected, epoch| {
            Append::new(expected, tagged(seq, "fenced"), None).fence(epoch)
        };
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

    pub async fn renew_extends_a_lease_and_is_lease_lost_after_a_takeover<S: Store>(
        f: &Fixture<S>,
    ) {
        let store = &f.store;
        let other = (f.another_handle)();
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

    pub async fn wake_after_is_claimable_only_once_due<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn wake_never_is_not_claimable_until_woken_again<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn concurrent_claimers_never_share_a_session_and_take_them_all<S: Store>(
        f: &Fixture<S>,
    ) {
        const SESSIONS: usize = 50;
        const LIMIT: usize = 4;
        let store = &f.store;
        for i in 0..SESSIONS {
            enqueue(store, &format!("s{i:02}"), Wake::Now).await;
        }
        let tasks: Vec<_> = (0..4)
            .map(|worker| {
                let handle = (f.another_handle)();
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

    pub async fn claim_respects_its_limit<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn a_runnable_append_wakes_a_waiter_long_before_its_timeout<S: Store>(
        f: &Fixture<S>,
    ) {
        let store = &f.store;
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

    pub async fn round_trip_keeps_bytes_and_metadata<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn list_is_oldest_first_and_latest_is_newest<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        let mut expected = None;
        // Gaps between sequence numbers are allowed (`EveryN` checkpoints).
        for seq in [1, 2, 5, 9, 10, 31] {
            append(store, "s", expected, seq).await.unwrap();
            expected = Some(seq);
        }
        assert_eq!(seqs(store, "s").await, [1, 2, 5, 9, 10, 31]);
        assert_eq!(latest_seq(store, "s").await, Some(31));
    }

    pub async fn missing_session_reads_as_empty<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        assert_eq!(store.latest("nobody").await.unwrap(), None);
        assert_eq!(store.get("nobody", 1).await.unwrap(), None);
        assert!(store.list("nobody").await.unwrap().is_empty());
        assert_eq!(store.prune("nobody", 1).await.unwrap(), 0);
        assert!(!store.delete("nobody").await.unwrap());
        assert!(store.sessions().await.unwrap().is_empty());
    }

    pub async fn conflict_when_expected_is_not_the_latest<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        chain(store, "s", 3).await;
        assert_conflict(append(store, "s", Some(1), 4).await, "s", Some(1), Some(3));
        assert_conflict(append(store, "s", Some(5), 6).await, "s", Some(5), Some(3));
        // Nothing was written by the failed appends.
        assert_eq!(seqs(store, "s").await, [1, 2, 3]);
        assert_eq!(store.get("s", 4).await.unwrap(), None);
    }

    pub async fn conflict_when_expected_is_stale<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn conflict_when_creating_a_session_that_exists<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        chain(store, "s", 2).await;
        assert_conflict(append(store, "s", None, 3).await, "s", None, Some(2));
        assert_conflict(append(store, "s", None, 1).await, "s", None, Some(2));
        assert_eq!(seqs(store, "s").await, [1, 2]);
    }

    pub async fn conflict_when_appending_to_a_missing_session<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        assert_conflict(append(store, "s", Some(0), 1).await, "s", Some(0), None);
        assert_conflict(append(store, "s", Some(4), 5).await, "s", Some(4), None);
        assert_eq!(store.latest("s").await.unwrap(), None);
        assert!(store.sessions().await.unwrap().is_empty());
    }

    pub async fn conflict_when_seq_is_not_above_expected<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn new_session_may_start_at_any_seq<S: Store>(f: &Fixture<S>) {
        // `Runner::fork` starts a new session at the sequence number it forks from.
        let store = &f.store;
        append(store, "fork", None, 42).await.unwrap();
        append(store, "fork", Some(42), 43).await.unwrap();
        assert_eq!(seqs(store, "fork").await, [42, 43]);
    }

    pub async fn keep_last_prunes_in_the_same_append<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn prune_keeps_the_newest_and_counts_removals<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn get_of_pruned_missing_or_huge_seq_is_none<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        chain(store, "s", 4).await;
        store.prune("s", 1).await.unwrap();
        for seq in [0, 1, 3, 5, 99, i64::MAX as u64, u64::MAX] {
            assert_eq!(store.get("s", seq).await.unwrap(), None, "seq {seq}");
        }
        assert_eq!(store.get("s", 4).await.unwrap(), Some(checkpoint(4)));
        assert_eq!(store.get("other", 4).await.unwrap(), None);
    }

    pub async fn delete_removes_the_session_and_frees_its_id<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        chain(store, "a", 3).await;
        chain(store, "b", 2).await;
        assert!(store.delete("a").await.unwrap());
        assert!(!store.delete("a").await.unwrap());
        assert_eq!(store.latest("a").await.unwrap(), None);
        assert_eq!(store.get("a", 1).await.unwrap(), None);
        assert!(store.list("a").await.unwrap().is_empty());
        assert_eq!(store.sessions().await.unwrap(), ["b"]);
        // Gone means gone: the id starts afresh, and only from `None`.
        assert_conflict(append(store, "a", Some(3), 4).await, "a", Some(3), None);
        append(store, "a", None, 1).await.unwrap();
        assert_eq!(seqs(store, "a").await, [1]);
        assert_eq!(seqs(store, "b").await, [1, 2]);
    }

    pub async fn sessions_are_listed_sorted_by_bytes<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
        let mut names = vec![
            "b", "a", "B", "é", "ab", "a b", "z", "Ω", "a-1", "a-10", "a-2",
        ];
        for name in &names {
            chain(store, name, 1).await;
        }
        names.sort_unstable();
        assert_eq!(store.sessions().await.unwrap(), names);
    }

    pub async fn sessions_are_isolated_from_each_other<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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
        assert_eq!(
            store.sessions().await.unwrap(),
            ["Order-1", "order-1", "order-10"]
        );
    }

    pub async fn unicode_and_very_long_session_ids_round_trip<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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
        assert_eq!(store.sessions().await.unwrap(), names);
    }

    /// Many tasks (on several handles) race to extend one session: every sequence number is
    /// won by exactly one of them, the chain has no gap and no duplicate, and the stored bytes
    /// are the winner's.
    pub async fn racing_writers_on_one_session_form_one_chain<S: Store>(f: &Fixture<S>) {
        const TASKS: usize = 8;
        const LENGTH: u64 = 60;
        let handles: Vec<Arc<S>> = (0..3).map(|_| Arc::new((f.another_handle)())).collect();
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
                let stored = f
                    .store
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
        assert_eq!(seqs(&f.store, "contested").await, one_chain);
    }

    /// The group-commit path: many sessions checkpoint at the same time, each step waiting for
    /// the previous one; every append succeeds and every chain is complete.
    pub async fn many_sessions_appending_at_once_all_land<S: Store>(f: &Fixture<S>) {
        const SESSIONS: usize = 100;
        const STEPS: u64 = 10;
        let store = Arc::new((f.another_handle)());
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
        let sessions = f.store.sessions().await.unwrap();
        assert_eq!(sessions.len(), SESSIONS);
        for session in &sessions {
            let list = f.store.list(session).await.unwrap();
            assert_eq!(
                list.iter().map(|m| m.seq).collect::<Vec<_>>(),
                (1..=STEPS).collect::<Vec<_>>()
            );
            assert_eq!(
                f.store.latest(session).await.unwrap(),
                Some(tagged(STEPS, session))
            );
        }
    }

    /// Appends that arrive together (so a store may batch them): where two race for the same
    /// seq exactly one wins, and the loser's conflict does not fail anyone else.
    pub async fn a_conflict_in_a_burst_fails_only_its_own_append<S: Store>(f: &Fixture<S>) {
        const SESSIONS: usize = 40;
        let store = Arc::new((f.another_handle)());
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
                f.store.latest(&session).await.unwrap(),
                Some(tagged(2, tag))
            );
        }
        for i in 0..SESSIONS {
            assert_eq!(seqs(&f.store, &format!("fresh-{i}")).await, [1]);
        }
    }

    // Incremental checkpoints: `depends_on` is kept, and retention honours it.

    pub async fn depends_on_round_trips<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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
        let again = (f.another_handle)();
        assert_eq!(again.latest("s").await.unwrap(), Some(delta(3, 1)));
    }

    pub async fn keep_last_keeps_what_kept_checkpoints_depend_on<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn prune_keeps_what_kept_checkpoints_depend_on<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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

    pub async fn chain_returns_the_kept_range_oldest_first<S: Store>(f: &Fixture<S>) {
        let store = &f.store;
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
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a database of its own per test, on one throwaway server per test binary
// (tests/support/postgres.rs; what only PostgreSQL can be asked is in tests/postgres.rs)

#[path = "support/sqlite_v1.rs"]
mod sqlite_v1;

#[path = "support/sqlite_v2.rs"]
mod sqlite_v2;

#[path = "support/postgres.rs"]
mod postgres_support;

mod postgres_server {
    use graph_runtime::PostgresStore;

    use super::Fixture;
    use super::postgres_support as support;

    /// The fixture is synchronous, so it waits on the runtime of the (multi-threaded) test.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
    }

    pub fn postgres_store() -> Fixture<PostgresStore> {
        let conninfo = block_on(support::database());
        let connect = move || {
            block_on(PostgresStore::connect(&conninfo)).expect("a store on the test database")
        };
        Fixture {
            store: connect(),
            another_handle: Box::new(connect),
            _dir: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What only a file can be asked

mod sqlite_file {
    use super::*;

    fn new_file() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("checkpoints.db");
        (dir, path)
    }

    fn raw(path: &Path) -> rusqlite::Connection {
        rusqlite::Connection::open(path).expect("a raw connection")
    }

    /// `Error::Store`: I/O, or a file this release cannot use as it is.
    #[track_caller]
    fn assert_store_error<T: std::fmt::Debug>(result: Result<T>, needles: &[&str]) {
        assert_store_kind(result, "Store", needles);
    }

    /// A store error of the variant `kind` (`Store`, `StoreBusy`, `StoreDamaged`) whose
    /// source names every needle.
    #[track_caller]
    fn assert_store_kind<T: std::fmt::Debug>(result: Result<T>, kind: &str, needles: &[&str]) {
        let (found, e) = match result {
            Err(Error::Store(e)) => ("Store", e),
            Err(Error::StoreBusy(e)) => ("StoreBusy", e),
            Err(Error::StoreDamaged(e)) => ("StoreDamaged", e),
            other => panic!("expected Error::{kind}, got {other:?}"),
        };
        let message = e.to_string();
        assert_eq!(found, kind, "{message}");
        for needle in needles {
            assert!(message.contains(needle), "`{needle}` not in: {message}");
        }
    }

    #[track_caller]
    fn assert_corrupt<T: std::fmt::Debug>(result: Result<T>, session: &str) {
        match result {
            Err(Error::Corrupt { session: s, .. }) => assert_eq!(s, session),
            other => panic!("expected Error::Corrupt in `{session}`, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_the_file_finds_every_session_written_at_once() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        let tasks: Vec<_> = (0..50usize)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let session = format!("order-{i}");
                    for seq in 1..=5 {
                        let keep = i.is_multiple_of(2).then_some(2);
                        let append = Append::new(before(seq), tagged(seq, &session), keep);
                        store.append(&session, append).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert!(store.delete("order-7").await.unwrap());
        let sessions = store.sessions().await.unwrap();
        drop(store);

        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.sessions().await.unwrap(), sessions);
        assert_eq!(sessions.len(), 49);
        for session in &sessions {
            let i: usize = session["order-".len()..].parse().unwrap();
            let kept: Vec<u64> = if i.is_multiple_of(2) {
                vec![4, 5]
            } else {
                (1..=5).collect()
            };
            assert_eq!(seqs(&reopened, session).await, kept);
            assert_eq!(
                reopened.latest(session).await.unwrap(),
                Some(tagged(5, session))
            );
        }
        // And the chains go on where they stopped.
        append(&reopened, "order-1", Some(5), 6).await.unwrap();
    }

    /// An append's future resolves only once its transaction has committed: a separate
    /// connection sees the row as soon as `append` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_committed_when_it_returns() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let path = path.clone();
                tokio::spawn(async move {
                    let observer = raw(&path);
                    let session = format!("s{i}");
                    for seq in 1..=5u64 {
                        append(&store, &session, before(seq), seq).await.unwrap();
                        let committed: i64 = observer
                            .query_row(
                                "SELECT max(c.seq) FROM checkpoints c JOIN sessions s \
                                 ON c.session_id = s.id WHERE s.name = ?1",
                                [&session],
                                |row| row.get(0),
                            )
                            .unwrap();
                        assert_eq!(committed, seq as i64);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_file_share_one_chain_and_conflict() {
        let (_dir, path) = new_file();
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        append(&a, "s", None, 1).await.unwrap();
        assert_eq!(latest_seq(&b, "s").await, Some(1));
        assert_conflict(append(&b, "s", None, 1).await, "s", None, Some(1));
        append(&b, "s", Some(1), 2).await.unwrap();
        assert_conflict(append(&a, "s", Some(1), 2).await, "s", Some(1), Some(2));
        assert_eq!(seqs(&a, "s").await, [1, 2]);

        // Both create the same session at the same moment: exactly one wins.
        for round in 0..20 {
            let session = format!("race-{round}");
            let (ra, rb) = tokio::join!(
                a.append(&session, Append::new(None, tagged(1, "a"), None)),
                b.append(&session, Append::new(None, tagged(1, "b"), None)),
            );
            let winner = match (ra, rb) {
                (Ok(()), loser) => {
                    assert_conflict(loser, &session, None, Some(1));
                    "a"
                }
                (loser, Ok(())) => {
                    assert_conflict(loser, &session, None, Some(1));
                    "b"
                }
                other => panic!("round {round}: {other:?}"),
            };
            assert_eq!(a.latest(&session).await.unwrap(), Some(tagged(1, winner)));
        }
    }

    #[tokio::test]
    async fn a_file_with_a_newer_schema_version_is_refused() {
        let (_dir, path) = new_file();
        drop(SqliteStore::open(&path).unwrap());
        raw(&path).pragma_update(None, "user_version", 4).unwrap();
        let refused = SqliteStore::open(&path);
        assert_store_error(
            refused,
            &["schema version 4", "newer release", "upgrade graph-runtime"],
        );
    }

    /// A file as release 1 wrote it: schema version 1, no `depends_on` column, no auto-vacuum.
    fn version_1_file(path: &Path, sessions: &[&str], checkpoints: i64) {
        let conn = raw(path);
        conn.execute_batch(sqlite_v1::SCHEMA).unwrap();
        for session in sessions {
            conn.execute("INSERT INTO sessions (name) VALUES (?1)", [session])
                .unwrap();
            let id = conn.last_insert_rowid();
            for seq in 1..=checkpoints {
                let c = checkpoint(seq as u64);
                let micros = c.created_at.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
                conn.execute(
                    "INSERT INTO checkpoints \
                     (session_id, seq, node, status, wait_node, created_at_us, bytes) \
                     VALUES (?1, ?2, 'step', 0, NULL, ?3, ?4)",
                    rusqlite::params![id, seq, micros, c.bytes],
                )
                .unwrap();
            }
        }
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated_on_open_and_keeps_its_checkpoints() {
        let (_dir, path) = new_file();
        version_1_file(&path, &["a", "b"], 3);
        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3);
        assert_eq!(store.sessions().await.unwrap(), ["a", "b"]);
        for session in ["a", "b"] {
            assert_eq!(seqs(&store, session).await, [1, 2, 3]);
            // Release-1 rows are self-contained.
            assert_eq!(store.latest(session).await.unwrap(), Some(checkpoint(3)));
        }
        // The new column works on the migrated file, and retention honours it.
        push(&store, "a", Some(3), delta(4, 3), Some(1)).await;
        assert_eq!(seqs(&store, "a").await, [3, 4]);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.latest("a").await.unwrap(), Some(delta(4, 3)));
    }

    /// A file of release 2 (no lease columns) is migrated on open; its sessions keep their
    /// checkpoints, are not runnable until a runner writes to them with a workflow and a
    /// wake time, and then take part in the lease protocol.
    #[tokio::test]
    async fn a_version_2_file_is_migrated_on_open_and_its_sessions_join_the_lease_protocol() {
        let (_dir, path) = new_file();
        let conn = raw(&path);
        conn.execute_batch(sqlite_v2::SCHEMA).unwrap();
        conn.execute("INSERT INTO sessions (name) VALUES ('a')", [])
            .unwrap();
        let id = conn.last_insert_rowid();
        for seq in 1..=2u64 {
            let c = checkpoint(seq);
            let micros = c.created_at.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64;
            conn.execute(
                "INSERT INTO checkpoints \
                 (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on) \
                 VALUES (?1, ?2, 'step', 0, NULL, ?3, ?4, NULL)",
                rusqlite::params![id, seq as i64, micros, c.bytes],
            )
            .unwrap();
        }
        drop(conn);

        let store = SqliteStore::open(&path).unwrap();
        let version: i32 = raw(&path)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 3);
        assert_eq!(seqs(&store, "a").await, [1, 2]);
        assert_eq!(store.latest("a").await.unwrap(), Some(checkpoint(2)));
        assert!(store.claim(&claim("w", LONG, 10)).await.unwrap().is_empty());

        let woken = Append::new(Some(2), checkpoint(3), None)
            .workflow(FLOW, HASH)
            .wake(Wake::Now);
        store.append("a", woken).await.unwrap();
        let leases = store.claim(&claim("w", LONG, 10)).await.unwrap();
        assert_eq!(names(&leases), ["a"]);
        assert_eq!(leases[0].epoch, 1);
        let fenced = Append::new(Some(3), checkpoint(4), None).fence(1);
        store.append("a", fenced).await.unwrap();
        let stale = Append::new(Some(4), checkpoint(5), None).fence(0);
        assert_lease_lost(store.append("a", stale).await, "a", 0);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(seqs(&again, "a").await, [1, 2, 3, 4]);
    }

    /// Several processes (here: threads with their own stores) opening one version-1 file at
    /// once: one migrates, the others wait for the lock and find it done.
    #[test]
    fn opening_a_version_1_file_from_many_handles_at_once_migrates_it_once() {
        let (_dir, path) = new_file();
        version_1_file(&path, &["a"], 2);
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteStore::open(&path)
                })
            })
            .collect();
        let stores: Vec<SqliteStore> = handles
            .into_iter()
            .map(|h| h.join().unwrap().expect("every open succeeds"))
            .collect();
        let columns: i64 = raw(&path)
            .query_row(
                "SELECT count(*) FROM pragma_table_info('checkpoints') WHERE name = 'depends_on'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for store in &stores {
            assert_eq!(rt.block_on(seqs(store, "a")), [1, 2]);
        }
    }

    #[tokio::test]
    async fn a_store_stops_writing_when_a_newer_release_migrates_its_file() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        append(&store, "s", None, 1).await.unwrap();
        raw(&path).pragma_update(None, "user_version", 7).unwrap();
        assert_store_error(append(&store, "s", Some(1), 2).await, &["schema version 7"]);
    }

    #[tokio::test]
    async fn files_that_are_not_ours_are_refused() {
        let (dir, path) = new_file();
        raw(&path)
            .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY)")
            .unwrap();
        assert_store_kind(
            SqliteStore::open(&path),
            "StoreDamaged",
            &["another application"],
        );

        let marked = dir.path().join("marked.db");
        raw(&marked)
            .pragma_update(None, "application_id", 1234)
            .unwrap();
        assert_store_kind(
            SqliteStore::open(&marked),
            "StoreDamaged",
            &["another application"],
        );

        // Not a database at all (SQLITE_NOTADB): damaged, not an I/O error; no retry helps.
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let e = SqliteStore::open(&garbage).unwrap_err();
        assert!(!e.is_retryable(), "{e:?}");
        assert_store_kind(Err::<(), _>(e), "StoreDamaged", &["not a database"]);

        // No WAL in memory, and each connection would see its own database anyway.
        assert_store_error(SqliteStore::open(":memory:"), &["WAL", "MemoryStore"]);

        // I/O: the file cannot be opened.
        let missing_dir = dir.path().join("no such directory").join("x.db");
        assert_store_error(SqliteStore::open(&missing_dir), &["no such directory"]);
    }

    /// Rows damaged behind the store's back give `Corrupt` (or `Store`), never a panic and
    /// never a wrong checkpoint.
    #[tokio::test]
    async fn damaged_rows_give_errors_not_panics() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        for session in ["status", "waiting", "seq", "bytes", "node", "name"] {
            chain(&store, session, 2).await;
        }
        let damage = |sql: &str, session: &str| {
            raw(&path)
                .execute(
                    &format!(
                        "UPDATE checkpoints SET {sql} WHERE seq = 2 AND session_id = \
                         (SELECT id FROM sessions WHERE name = ?1)"
                    ),
                    [session],
                )
                .unwrap();
        };
        damage("status = 99", "status");
        damage("status = 1, wait_node = NULL", "waiting");
        damage("seq = -5", "seq");
        damage("bytes = 'not a blob'", "bytes");
        damage("node = CAST(X'FFFE' AS TEXT)", "node");

        for session in ["status", "waiting", "node"] {
            assert_corrupt(store.latest(session).await, session);
            assert_corrupt(store.get(session, 2).await, session);
            assert_corrupt(store.list(session).await, session);
            // The undamaged row is still readable.
            assert_eq!(store.get(session, 1).await.unwrap(), Some(checkpoint(1)));
        }
        assert_corrupt(store.get("bytes", 2).await, "bytes");
        assert_corrupt(store.latest("bytes").await, "bytes");
        // A negative sequence number sorts first, so `latest` finds seq 1; listing and
        // appending see the bad row.
        assert_corrupt(store.list("seq").await, "seq");
        let negative = store.get("seq", 1).await.unwrap();
        assert_eq!(negative, Some(checkpoint(1)));
        raw(&path)
            .execute(
                "DELETE FROM checkpoints WHERE seq = 1 AND session_id = \
                 (SELECT id FROM sessions WHERE name = 'seq')",
                [],
            )
            .unwrap();
        assert_corrupt(store.latest("seq").await, "seq");
        assert_corrupt(append(&store, "seq", Some(2), 3).await, "seq");

        raw(&path)
            .execute("UPDATE sessions SET name = X'FF00' WHERE name = 'name'", [])
            .unwrap();
        assert!(matches!(store.sessions().await, Err(Error::Store(_))));
    }

    /// A database file whose schema page is damaged (SQLITE_CORRUPT) is `StoreDamaged`.
    #[tokio::test]
    async fn a_corrupt_file_is_damaged() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        chain(&store, "s", 3).await;
        store.close().await.unwrap();
        // Page 1 past the 100-byte file header: the b-tree of `sqlite_schema`.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100..1000].fill(0xa5);
        std::fs::write(&path, bytes).unwrap();
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(!e.is_retryable(), "{e:?}");
        assert_store_kind(Err::<(), _>(e), "StoreDamaged", &["malformed"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lock_held_past_the_busy_timeout_is_a_clear_error() {
        let (_dir, path) = new_file();
        let store = SqliteOptions::new()
            .busy_timeout(Duration::from_millis(200))
            .open(&path)
            .unwrap();
        append(&store, "s", None, 1).await.unwrap();

        let holder = raw(&path);
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        let blocked = append(&store, "s", Some(1), 2).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up after the timeout"
        );
        let blocked = blocked.unwrap_err();
        assert!(blocked.is_retryable(), "{blocked:?}");
        assert_store_kind(
            Err::<(), _>(blocked),
            "StoreBusy",
            &["busy timeout (200 ms)", "locked"],
        );
        // WAL: reads go on while another process writes.
        assert_eq!(latest_seq(&store, "s").await, Some(1));
        holder.execute_batch("COMMIT").unwrap();

        // Nothing was written, and the store works again once the lock is gone.
        append(&store, "s", Some(1), 2).await.unwrap();
        assert_eq!(seqs(&store, "s").await, [1, 2]);
    }

    #[tokio::test]
    async fn synchronous_normal_is_an_opt_in_with_the_same_behaviour() {
        let (_dir, path) = new_file();
        let store = SqliteOptions::new()
            .synchronous(Synchronous::Normal)
            .open(&path)
            .unwrap();
        chain(&store, "s", 3).await;
        assert_conflict(append(&store, "s", Some(2), 3).await, "s", Some(2), Some(3));
        drop(store);
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(seqs(&reopened, "s").await, [1, 2, 3]);
    }

    /// A lone append polls for its commit (`spin_wait`) or sleeps at once (`ZERO`): the same
    /// results either way, alone or with others in flight.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spin_wait_changes_only_how_a_caller_waits() {
        for spin in [
            Duration::ZERO,
            Duration::from_micros(100),
            Duration::from_millis(5),
        ] {
            let (_dir, path) = new_file();
            let store = SqliteOptions::new().spin_wait(spin).open(&path).unwrap();
            chain(&store, "alone", 5).await;
            assert_conflict(
                append(&store, "alone", Some(4), 5).await,
                "alone",
                Some(4),
                Some(5),
            );
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move { chain(&store, &format!("s{i}"), 5).await })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            for i in 0..8 {
                assert_eq!(
                    seqs(&store, &format!("s{i}")).await,
                    [1, 2, 3, 4, 5],
                    "{spin:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_seq_beyond_sqlite_integers_is_an_error() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        assert_store_error(
            append(&store, "s", None, u64::MAX).await,
            &["largest integer"],
        );
        append(&store, "s", None, i64::MAX as u64).await.unwrap();
        assert_eq!(latest_seq(&store, "s").await, Some(i64::MAX as u64));
    }

    const PROCESS_CHAIN: u64 = 200;

    /// Separate processes (`tests/support/race_child.rs`, three at once) race to
    /// extend one session in one file: SQLite's file lock keeps compare-and-swap exact across
    /// processes, so every sequence number is won by exactly one of them.
    #[test]
    fn processes_racing_on_one_file_form_one_chain() {
        use std::process::{Command, Stdio};
        let (_dir, path) = new_file();
        drop(SqliteStore::open(&path).unwrap());
        // The children start racing together, once this file exists.
        let go = path.with_extension("go");
        let children: Vec<_> = (0..3)
            .map(|tag| {
                let child = Command::new(env!("CARGO_BIN_EXE_race-child"))
                    .arg(&path)
                    .arg(tag.to_string())
                    .arg(&go)
                    .arg(PROCESS_CHAIN.to_string())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("a child process");
                (tag, child)
            })
            .collect();
        std::fs::write(&go, b"go").unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut all_wins = Vec::new();
        for (tag, mut child) in children {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("child {tag} did not finish");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "child {tag} failed: {:?}",
                output.status
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let won: Vec<u64> = stdout
                .lines()
                // libtest may print its own text on the same line, before ours.
                .filter_map(|line| line.split_once("race-won:").map(|(_, seq)| seq))
                .map(|seq| seq.trim().parse().expect("a seq"))
                .collect();
            let store = SqliteStore::open(&path).unwrap();
            for &seq in &won {
                let stored = block_on(store.get("contested", seq))
                    .unwrap()
                    .expect("a won seq");
                assert_eq!(stored.bytes, format!("process {tag} {seq}").as_bytes());
            }
            eprintln!("process {tag} won {} of {PROCESS_CHAIN}", won.len());
            all_wins.extend(won);
        }
        all_wins.sort_unstable();
        let one_chain: Vec<u64> = (1..=PROCESS_CHAIN).collect();
        assert_eq!(all_wins, one_chain, "every seq won exactly once");
        let store = SqliteStore::open(&path).unwrap();
        let listed: Vec<u64> = block_on(store.list("contested"))
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(listed, one_chain);
        let check: String = raw(&path)
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// The store needs no tokio runtime: writes go through the writer thread and reads run
    /// inline when there is no blocking pool to send them to.
    #[test]
    fn works_outside_a_tokio_runtime() {
        let (_dir, path) = new_file();
        let store = SqliteStore::open(&path).unwrap();
        block_on(chain(&store, "s", 2));
        assert_eq!(block_on(store.latest("s")).unwrap(), Some(checkpoint(2)));
        assert_eq!(block_on(store.sessions()).unwrap(), ["s"]);
    }

    /// A minimal executor, so the test needs no extra dependency.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Thread(std::thread::Thread);
        impl Wake for Thread {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Thread(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            match future.as_mut().poll(&mut context) {
                Poll::Ready(output) => return output,
                Poll::Pending => std::thread::park(),
            }
        }
    }
}
