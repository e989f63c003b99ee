//! The edges of the public API: session ids checked where they enter, builder settings
//! rejected where they are given, `Snapshot::waiting`, and errors that print each cause once.
//! Every store-facing check runs on `MemoryStore` and `SqliteStore`, through a store that
//! counts calls, to show that a refused call asks the store nothing.

use std::error::Error as _;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::runner_tests::{Flow, Input, State, state};
use crate::store::{
    Append, Checkpoint, CheckpointMeta, Claim, Lease, SessionFilter, SessionPage, SessionRecord,
    Store,
};
use crate::{
    CheckpointPolicy, Error, MAX_SESSION_ID_BYTES, MemoryStore, Outcome, Result, Retention, Runner,
    Status,
};

/// A store that counts every call made to it.
struct Counting<S> {
    inner: S,
    calls: Arc<AtomicUsize>,
}

impl<S> Counting<S> {
    fn new(inner: S) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let store = Counting {
            inner,
            calls: Arc::clone(&calls),
        };
        (store, calls)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl<S: Store> Store for Counting<S> {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        self.count();
        self.inner.append(session, append).await
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.count();
        self.inner.latest(session).await
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.count();
        self.inner.get(session, seq).await
    }

    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.count();
        self.inner.chain(session, from, to).await
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.count();
        self.inner.list(session).await
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.count();
        self.inner.prune(session, keep_last).await
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        self.count();
        self.inner.delete(session).await
    }

    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.count();
        self.inner.sessions(filter).await
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.count();
        self.inner.session(session).await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        self.count();
        self.inner.claim(claim).await
    }

    async fn renew(&self, lease: &Lease, ttl: std::time::Duration) -> Result<Lease> {
        self.count();
        self.inner.renew(lease, ttl).await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.count();
        self.inner.release(lease).await
    }

    async fn wait_for_work(&self, timeout: std::time::Duration) {
        self.inner.wait_for_work(timeout).await;
    }
}

/// The bad ids, each with a word of the reason its error must give.
fn bad_ids() -> [(String, &'static str); 3] {
    [
        (String::new(), "empty"),
        ("order\u{0}42".to_owned(), "NUL"),
        ("x".repeat(MAX_SESSION_ID_BYTES + 1), "255 bytes"),
    ]
}

/// A session waiting at `review` after two steps of `inc`.
fn reviewed() -> State {
    State {
        review_at: Some(2),
        ..state(10)
    }
}

#[track_caller]
fn assert_invalid_id<T: Debug>(call: &str, id: &str, word: &str, result: Result<T>) {
    match result {
        Err(Error::InvalidSessionId { id: shown, reason }) => {
            assert!(reason.contains(word), "{call}: `{reason}` lacks `{word}`");
            assert!(
                id.starts_with(shown.trim_end_matches('…')),
                "{call}: {shown:?}"
            );
            assert!(
                shown.chars().count() <= 33,
                "{call}: {shown:?} is not shortened"
            );
        }
        other => panic!("{call} with {id:?}: expected InvalidSessionId, got {other:?}"),
    }
}

/// Every method that takes a session id refuses each bad id without a store call.
async fn refuses_bad_ids<S: Store>(store: S) {
    let (store, calls) = Counting::new(store);
    let runner = Runner::new(Flow, store);
    runner.start("ok", reviewed()).await.unwrap();
    let before = calls.load(Ordering::SeqCst);
    for (bad, word) in bad_ids() {
        let bad = bad.as_str();
        assert_invalid_id("start", bad, word, runner.start(bad, state(1)).await);
        assert_invalid_id("resume", bad, word, runner.resume(bad).await);
        let input = Input::Review(1);
        let resumed = runner.resume_with(bad, input).await;
        assert_invalid_id("resume_with", bad, word, resumed);
        assert_invalid_id("state", bad, word, runner.state(bad).await);
        assert_invalid_id("state_at", bad, word, runner.state_at(bad, 0).await);
        assert_invalid_id("history", bad, word, runner.history(bad).await);
        assert_invalid_id("fork from", bad, word, runner.fork(bad, 0, "new").await);
        assert_invalid_id("fork to", bad, word, runner.fork("ok", 0, bad).await);
        assert_invalid_id("delete", bad, word, runner.delete(bad).await);
        let spawned = runner.spawn(bad, state(1)).await;
        assert_invalid_id("spawn", bad, word, spawned);
        let spawned = runner.spawn_resume(bad).await;
        assert_invalid_id("spawn_resume", bad, word, spawned);
        let spawned = runner.spawn_resume_with(bad, Input::Review(1)).await;
        assert_invalid_id("spawn_resume_with", bad, word, spawned);
    }
    assert_eq!(calls.load(Ordering::SeqCst), before, "the store was asked");
    assert_eq!(
        runner.sessions().await.unwrap(),
        ["ok"],
        "nothing was written"
    );
}

/// Ids at the edges of what is allowed work through every method.
async fn accepts_edge_ids<S: Store>(store: S) {
    let runner = Runner::new(Flow, store);
    let longest = "x".repeat(MAX_SESSION_ID_BYTES);
    // 63 four-byte characters and three bytes: 255 bytes.
    let wide = format!("{}abc", "🦀".repeat(63));
    assert_eq!(wide.len(), MAX_SESSION_ID_BYTES);
    for id in [longest.as_str(), wide.as_str(), " ", "a/b\\c\n\u{7f}"] {
        let out = runner.start(id, reviewed()).await.unwrap();
        assert!(matches!(out, Outcome::Interrupted { node: "review", .. }));
        assert_eq!(runner.state(id).await.unwrap().unwrap().waiting, ["review"]);
        assert!(runner.state_at(id, 0).await.unwrap().is_some());
        let seq = runner.history(id).await.unwrap()[0].seq;
        let fork = format!("{}f", &id[..id.len().min(MAX_SESSION_ID_BYTES - 1)]);
        runner.fork(id, seq, &fork).await.unwrap();
        let done = runner.resume_with(id, Input::Review(8)).await.unwrap();
        assert!(matches!(done, Outcome::Completed(_)), "{done:?}");
        assert!(runner.delete(&fork).await.unwrap());
        assert!(runner.delete(id).await.unwrap());
    }
    assert!(runner.sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_session_ids_are_refused_before_the_memory_store() {
    refuses_bad_ids(MemoryStore::new()).await;
}

#[tokio::test]
async fn edge_session_ids_work_on_the_memory_store() {
    accepts_edge_ids(MemoryStore::new()).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn bad_session_ids_are_refused_before_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqliteStore::open(dir.path().join("ids.db")).unwrap();
    refuses_bad_ids(store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn edge_session_ids_work_on_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::SqliteStore::open(dir.path().join("ids.db")).unwrap();
    accepts_edge_ids(store).await;
}

#[track_caller]
fn assert_invalid_config<T: Debug>(call: &str, word: &str, result: Result<T>) {
    match result {
        Err(Error::InvalidConfig(problem)) => {
            assert!(problem.contains(word), "{call}: `{problem}` lacks `{word}`");
        }
        other => panic!("{call}: expected InvalidConfig, got {other:?}"),
    }
}

/// Each bad builder setting: every call that runs or writes a session returns it, and none
/// asks the store anything.
async fn refuses_bad_settings<S: Store>(store: impl Fn() -> S) {
    type Setting<S> = fn(Runner<Flow, Counting<S>>) -> Runner<Flow, Counting<S>>;
    let settings: [(Setting<S>, &str); 3] = [
        (|r| r.max_steps(0), "max_steps(0)"),
        (
            |r| r.checkpoint_policy(CheckpointPolicy::EveryN(0)),
            "EveryN(0)",
        ),
        (|r| r.retention(Retention::KeepLast(0)), "KeepLast(0)"),
    ];
    for (set, word) in settings {
        let (counting, calls) = Counting::new(store());
        let runner = set(Runner::new(Flow, counting));
        assert_invalid_config("start", word, runner.start("s", state(1)).await);
        assert_invalid_config("resume", word, runner.resume("s").await);
        let resumed = runner.resume_with("s", Input::Review(1)).await;
        assert_invalid_config("resume_with", word, resumed);
        assert_invalid_config("fork", word, runner.fork("s", 0, "t").await);
        assert_invalid_config("spawn", word, runner.spawn("s", state(1)).await);
        assert_invalid_config("spawn_resume", word, runner.spawn_resume("s").await);
        let spawned = runner.spawn_resume_with("s", Input::Review(1)).await;
        assert_invalid_config("spawn_resume_with", word, spawned);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "{word}: the store was asked"
        );
        // A bad setting is kept where it was given: a later good value does not hide it.
        let runner = set(Runner::new(Flow, Counting::new(store()).0)).max_steps(10);
        let runner = runner
            .checkpoint_policy(CheckpointPolicy::EveryStep)
            .retention(Retention::KeepAll);
        assert_invalid_config("start", word, runner.start("s", state(1)).await);
        // And a clone keeps it.
        assert_invalid_config("clone", word, runner.clone().start("s", state(1)).await);
    }
}

#[tokio::test]
async fn bad_settings_are_refused_before_the_memory_store() {
    refuses_bad_settings(MemoryStore::new).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn bad_settings_are_refused_before_the_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    refuses_bad_settings(|| {
        let file = format!("settings-{}.db", n.fetch_add(1, Ordering::SeqCst));
        crate::SqliteStore::open(dir.path().join(file)).unwrap()
    })
    .await;
}

#[tokio::test]
async fn the_first_bad_setting_is_the_one_reported() {
    let runner = Runner::new(Flow, MemoryStore::new())
        .retention(Retention::KeepLast(0))
        .max_steps(0);
    assert_invalid_config("start", "KeepLast(0)", runner.start("s", state(1)).await);
    // The smallest good values work.
    let runner = Runner::new(Flow, MemoryStore::new())
        .retention(Retention::KeepLast(1))
        .checkpoint_policy(CheckpointPolicy::EveryN(1))
        .max_steps(1);
    let e = runner.start("s", state(1)).await.unwrap_err();
    assert!(matches!(e, Error::StepLimit { limit: 1, .. }), "{e}");
}

#[tokio::test]
async fn the_step_limit_counts_per_call() {
    // `inc` and `check` alternate, 8 steps to count to 4: a limit of 3 stops the first two
    // calls after 3 steps each, and the third call's 2 steps end the run.
    let runner = Runner::new(Flow, MemoryStore::new()).max_steps(3);
    let e = runner.start("s", state(4)).await.unwrap_err();
    assert!(matches!(e, Error::StepLimit { limit: 3, .. }), "{e}");
    assert_eq!(runner.state("s").await.unwrap().unwrap().seq, 3);
    let e = runner.resume("s").await.unwrap_err();
    assert!(matches!(e, Error::StepLimit { limit: 3, .. }), "{e}");
    assert_eq!(runner.state("s").await.unwrap().unwrap().seq, 6);
    let out = runner.resume("s").await.unwrap();
    assert_eq!(out.into_state().n, 4);
    assert_eq!(runner.state("s").await.unwrap().unwrap().seq, 8);
}

#[tokio::test]
async fn waiting_lists_the_interrupt_node_only_while_the_session_waits() {
    let runner = Runner::new(Flow, MemoryStore::new());
    runner.start("s", reviewed()).await.unwrap();
    let waiting = runner.state("s").await.unwrap().unwrap();
    assert_eq!(
        waiting.status,
        Status::Waiting {
            node: "review".into()
        }
    );
    assert_eq!(waiting.waiting, ["review"]);
    // An earlier, running checkpoint waits at nothing; the waiting one, read by number, does.
    let first = runner.state_at("s", 0).await.unwrap().unwrap();
    assert_eq!((first.status, first.waiting), (Status::Running, vec![]));
    let at = runner.state_at("s", waiting.seq).await.unwrap().unwrap();
    assert_eq!(at.waiting, ["review"]);
    // A fork of the waiting checkpoint waits too; a fork of a running one does not.
    let fork = runner.fork("s", waiting.seq, "f").await.unwrap();
    assert_eq!(fork.waiting, ["review"]);
    assert!(runner.fork("s", 0, "g").await.unwrap().waiting.is_empty());
    // Completed: waits at nothing.
    runner.resume_with("s", Input::Review(8)).await.unwrap();
    let done = runner.state("s").await.unwrap().unwrap();
    assert_eq!((done.status, done.waiting), (Status::Completed, vec![]));
    // Stopped by a node error: running, waits at nothing.
    let failing = State {
        fail_at: Some(1),
        ..state(3)
    };
    runner.start("e", failing).await.unwrap_err();
    let stopped = runner.state("e").await.unwrap().unwrap();
    assert_eq!((stopped.status, stopped.waiting), (Status::Running, vec![]));
}

#[tokio::test]
async fn a_node_error_is_its_source_not_part_of_its_message() {
    let runner = Runner::new(Flow, MemoryStore::new());
    let failing = State {
        fail_at: Some(1),
        ..state(3)
    };
    let e = runner.start("e", failing).await.unwrap_err();
    assert!(matches!(e, Error::Node { node: "inc", .. }), "{e:?}");
    assert_eq!(e.to_string(), "node `inc` failed");
    let source = e.source().expect("the node's error");
    assert_eq!(source.to_string(), "boom");
    assert!(source.source().is_none());
    assert_eq!(crate::error::report(&e), "node `inc` failed: boom");
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_store_error_is_its_source_not_part_of_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no such directory").join("x.db");
    let e = crate::SqliteStore::open(&missing).unwrap_err();
    assert!(matches!(e, Error::Store(_)), "{e:?}");
    assert_eq!(e.to_string(), "the store failed");
    let source = e.source().expect("what SQLite said").to_string();
    assert!(source.contains("no such directory"), "{source}");
    assert!(!source.contains("the store failed"), "{source}");
    assert_eq!(
        crate::error::report(&e),
        format!("the store failed: {source}")
    );
}

#[test]
fn report_prints_each_cause_once() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let e = Error::Node {
        node: "n",
        source: Box::new(Outer(std::io::Error::other("root"))),
    };
    assert_eq!(crate::error::report(&e), "node `n` failed: outer: root");
    let e = Error::InvalidConfig("`max_steps(0)`: a call must be allowed at least 1 step");
    assert!(e.source().is_none());
    assert_eq!(
        crate::error::report(&e),
        "invalid runner configuration: `max_steps(0)`: a call must be allowed at least 1 step"
    );
}
