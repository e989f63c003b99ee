//! Workers under failure, on SQLite (a file several processes share) and PostgreSQL (a
//! throwaway server): worker processes SIGKILLed at random and frozen with SIGSTOP past their
//! lease, the database restarted under running workers, a connection pool far smaller than the
//! worker's concurrency, claims that must leave other workflows alone, a lost lease that must
//! cancel the running node, sessions that need no work and runs that fail, which must not be
//! claimed in a loop.
//!
//! The SIGKILL test runs, next to the `jobs` sessions, parcels whose subgraph node `pack` runs
//! a `packing` child of three nodes, each with a side effect keyed by its idempotency key.
//! After recovery: final parent and child states equal a failure-free run's; every child
//! node's key ran exactly as often as the ordinal its child's state recorded (no side effect of
//! a committed child step happened again, none was recorded twice); every key that ran is one
//! a child recorded; every child session belongs to a parent step that exists, and every
//! finished parent has its child, completed (no orphans).
//!
//! The worker processes are the `worker-child` binary (`tests/support/worker_child_bin.rs`,
//! sharing `tests/support/worker_child.rs` with this file), with 1 s leases and a 100 ms poll. `WORKER_KILLS=200 cargo test --test worker_failures` kills more than the
//! default 20 times per store.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/worker_child.rs"]
mod worker_child;

use std::collections::{BTreeSet, HashSet};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_runtime::Workflow as WorkflowDef;
use graph_runtime::prelude::*;
use graph_runtime::store::{Append, Checkpoint, Claim, SessionFilter, Store, Wake};
use graph_runtime::{CancellationToken, PostgresOptions, PostgresStore, Status, Worker};
use tokio::time::Instant;

use worker_child::{
    CHILD_CONCURRENCY, CHILD_OWNER, CHILD_STORE, Job, Packing, Parcel, Reporting, decision, jobs,
    packing, parcels,
};

/// A worker process, killed (SIGKILL) when dropped; its stdout lines are collected.
struct ChildWorker {
    process: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl ChildWorker {
    fn spawn(spec: &str, owner: &str, concurrency: usize) -> ChildWorker {
        let mut process = Command::new(env!("CARGO_BIN_EXE_worker-child"))
            .env(CHILD_STORE, spec)
            .env(CHILD_OWNER, owner)
            .env(CHILD_CONCURRENCY, concurrency.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a worker process");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = process.stdout.take().expect("the child's stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        ChildWorker { process, lines }
    }

    fn pid(&self) -> String {
        self.process.id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn has_line(&self, wanted: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| wanted(l))
    }
}

impl Drop for ChildWorker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < give_up, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Gives every session of `ids` that waits at its review the test's decision; returns
/// whether all are completed. Store errors (a server restarting) count as "not yet".
async fn answer_and_check<S: Store + Clone>(
    runner: &Runner<jobs::Workflow, S>,
    ids: &[(u64, String)],
    answered: &mut HashSet<u64>,
) -> bool {
    let mut all = true;
    for (i, id) in ids {
        let Ok(Some(snapshot)) = runner.state(id).await else {
            all = false;
            continue;
        };
        if snapshot.waiting == ["review"] && !answered.contains(i) {
            let input = jobs::Input::Review(decision(*i));
            if runner.enqueue_input(id, input).await.is_ok() {
                answered.insert(*i);
            }
        }
        all &= snapshot.status == Status::Completed;
    }
    all
}

/// Answers reviews until every session of `ids` completed, for at most `limit`.
async fn until_completed<S: Store + Clone>(
    runner: &Runner<jobs::Workflow, S>,
    ids: &[(u64, String)],
    answered: &mut HashSet<u64>,
    limit: Duration,
) {
    let give_up = Instant::now() + limit;
    while !answer_and_check(runner, ids, answered).await {
        assert!(
            Instant::now() < give_up,
            "sessions still unfinished after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// What a session ends as without any failure: run in-process on a memory store.
async fn references(jobs: &[(String, Job)]) -> Vec<(Job, u64)> {
    let runner = Runner::new(jobs::Workflow, MemoryStore::new());
    let tasks: Vec<_> = jobs
        .iter()
        .map(|(id, job)| {
            let (runner, id) = (runner.clone(), id.clone());
            let mut job = job.clone();
            job.side_log.clear(); // no side effects from the reference
            tokio::spawn(async move {
                runner.start(&id, job.clone()).await.expect("reference run");
                let out = runner
                    .resume_with(&id, jobs::Input::Review(decision(job.id)))
                    .await
                    .expect("reference resume");
                let last = runner.history(&id).await.unwrap().last().unwrap().seq;
                (out.into_state(), last)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("reference task"));
    }
    out
}

/// Every session completed, with the crash-free state, a gapless chain as long as the
/// crash-free one, and its side effect (if it ships) seen by the "external system".
async fn verify<S: Store + Clone>(store: &S, jobs: &[(String, Job)], side_log: &Path) {
    let runner = Runner::new(jobs::Workflow, store.clone());
    let side: BTreeSet<String> = std::fs::read_to_string(side_log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    for ((id, job), (mut want, want_last)) in jobs.iter().zip(references(jobs).await) {
        let snapshot = runner.state(id).await.expect("state").expect("session");
        assert_eq!(snapshot.status, Status::Completed, "{id}");
        want.side_log.clone_from(&job.side_log);
        assert_eq!(snapshot.state, want, "{id}");
        let seqs: Vec<u64> = runner
            .history(id)
            .await
            .expect("history")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{id}: {seqs:?}");
        assert_eq!(seqs.last(), Some(&want_last), "{id}: {seqs:?}");
        if want.shipped {
            let key = want.keys.last().expect("the ship key");
            assert!(side.contains(key), "{id}: {key} never reached the side log");
        }
    }
}

/// Whether every parcel of `ids` completed. Store errors count as "not yet".
async fn parcels_completed<S: Store + Clone>(
    runner: &Runner<parcels::Workflow, S>,
    ids: &[String],
) -> bool {
    for id in ids {
        match runner.state(id).await {
            Ok(Some(snapshot)) if snapshot.status == Status::Completed => {}
            _ => return false,
        }
    }
    true
}

/// Every parcel of `parcels` completed, with the failure-free state, and so did its child:
/// the failure-free child state; each of the child's committed steps recorded its effect
/// once, and that effect happened exactly as often as the recorded run's ordinal (the runs
/// before it lost to kills, none after it); every key that ran is one the child recorded.
/// Every child session of these parcels (ids under `prefix`) belongs to a parent step that
/// exists. Returns how many child node runs were lost to kills (and re-run).
async fn verify_parcels<S: Store + Clone>(
    store: &S,
    parcels: &[(String, Parcel)],
    prefix: &str,
    side_log: &Path,
) -> usize {
    let parents = Runner::new(parcels::Workflow, store.clone());
    let children = Runner::new(packing::Workflow, store.clone());
    let mut runs_per_key: std::collections::HashMap<String, u32> = Default::default();
    for line in std::fs::read_to_string(side_log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.starts_with(prefix))
    {
        *runs_per_key.entry(line.to_owned()).or_default() += 1;
    }
    // The failure-free run, on a memory store under the same ids, without side effects.
    let reference = MemoryStore::new();
    let reference_parents = Runner::new(parcels::Workflow, reference.clone());
    let reference_children = Runner::new(packing::Workflow, reference.clone());
    // Every child session of this round in the store: each must be claimed by a parent.
    let page = store
        .sessions(
            &SessionFilter::new()
                .workflow(<packing::Workflow as WorkflowDef>::NAME)
                .limit(SessionFilter::MAX_LIMIT),
        )
        .await
        .expect("child sessions");
    assert!(page.next.is_none());
    let mut unclaimed: BTreeSet<String> = page
        .sessions
        .into_iter()
        .map(|r| r.session)
        .filter(|s| s.starts_with(prefix))
        .collect();
    // The reference runs at once (their nodes sleep).
    let tasks: Vec<_> = parcels
        .iter()
        .map(|(id, parcel)| {
            let (runner, id) = (reference_parents.clone(), id.clone());
            let mut clean = parcel.clone();
            clean.side_log.clear();
            tokio::spawn(async move {
                let out = runner.start(&id, clean).await.expect("reference run");
                out.into_state()
            })
        })
        .collect();
    let mut wants = Vec::new();
    for task in tasks {
        wants.push(task.await.expect("reference task"));
    }
    let mut recorded = BTreeSet::new();
    let mut lost = 0;
    for ((id, parcel), mut want) in parcels.iter().zip(wants) {
        want.side_log.clone_from(&parcel.side_log);
        let snapshot = parents.state(id).await.expect("state").expect("parcel");
        assert_eq!(snapshot.status, Status::Completed, "{id}");
        assert_eq!(snapshot.state, want, "{id}");
        let history = parents.history(id).await.expect("history");
        let seqs: Vec<u64> = history.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{id}");

        // Its one child, at the id of its `pack` step (the checkpoint before which has
        // `pack` as its cursor), completed as without failures.
        let want_children: Vec<String> = reference
            .sessions(
                &SessionFilter::new()
                    .workflow(<packing::Workflow as WorkflowDef>::NAME)
                    .limit(SessionFilter::MAX_LIMIT),
            )
            .await
            .expect("reference children")
            .sessions
            .into_iter()
            .map(|r| r.session)
            .filter(|s| s.starts_with(&format!("{id}/")))
            .collect();
        assert_eq!(want_children.len(), 1, "{id}: {want_children:?}");
        let child_id = &want_children[0];
        assert!(
            unclaimed.remove(child_id),
            "{id}: its child {child_id} is missing"
        );
        let seq: usize = child_id.rsplit_once('/').unwrap().1.parse().unwrap();
        assert!(seq < history.len(), "{child_id}: no parent step {seq}");
        assert_eq!(history[seq - 1].node, "pack", "{child_id}");
        let mut want_child = reference_children
            .state(child_id)
            .await
            .unwrap()
            .expect("reference child")
            .state;
        want_child.side_log.clone_from(&parcel.side_log);
        want_child.runs.clear();
        let child = children
            .state(child_id)
            .await
            .expect("child state")
            .expect("child");
        assert_eq!(child.status, Status::Completed, "{child_id}");
        let got = Packing {
            runs: Vec::new(),
            ..child.state.clone()
        };
        assert_eq!(got, want_child, "{child_id}");
        assert_eq!(child.state.runs.len(), child.state.keys.len(), "{child_id}");
        for (key, ordinal) in &child.state.runs {
            assert!(recorded.insert(key.clone()), "{key} recorded twice");
            let runs = runs_per_key.get(key).copied().unwrap_or(0);
            assert!(
                runs > 0,
                "{child_id}: the side effect of {key} never happened"
            );
            assert_eq!(
                runs, *ordinal,
                "{child_id}: {key} ran {runs} times, its recorded run is run {ordinal}"
            );
            lost += (runs - 1) as usize;
        }
        let child_seqs: Vec<u64> = children
            .history(child_id)
            .await
            .expect("child history")
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(
            child_seqs,
            (0..child_seqs.len() as u64).collect::<Vec<_>>(),
            "{child_id}"
        );
    }
    assert!(
        unclaimed.is_empty(),
        "child sessions no parent step ran: {unclaimed:?}"
    );
    for key in runs_per_key.keys() {
        assert!(recorded.contains(key), "{key} ran but no child recorded it");
    }
    lost
}

fn kills() -> usize {
    std::env::var("WORKER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// Three worker processes; one at random is SIGKILLed at random instants and restarted, while
/// the test answers the reviews. Rounds of 40 jobs and 8 parcels (a subgraph node each) go on
/// until enough kills landed.
async fn sigkill_at_random<S: Store + Clone>(store: S, spec: &str, dir: &Path) {
    let runner = Runner::new(jobs::Workflow, store.clone());
    let parcel_runner = Runner::new(parcels::Workflow, store.clone());
    let mut child_reruns = 0;
    let side_log = dir.join("side.log");
    let wanted = kills();
    let mut workers: Vec<ChildWorker> = (0..3)
        .map(|w| ChildWorker::spawn(spec, &format!("w{w}"), 2))
        .collect();
    let (mut killed, mut round) = (0, 0);
    let started = Instant::now();
    while killed < wanted {
        let jobs: Vec<(String, Job)> = (0..40u64)
            .map(|i| {
                let job = Job::new(i, 60 + (i % 5) * 30, &side_log);
                (format!("r{round}-job-{i}"), job)
            })
            .collect();
        for (id, job) in &jobs {
            runner.enqueue(id, job.clone()).await.expect("enqueue");
        }
        let parcels: Vec<(String, Parcel)> = (0..8u64)
            .map(|i| {
                let parcel = Parcel::new(i, 20 + (i % 3) * 20, &side_log);
                (format!("r{round}-parcel-{i}"), parcel)
            })
            .collect();
        for (id, parcel) in &parcels {
            parcel_runner
                .enqueue(id, parcel.clone())
                .await
                .expect("enqueue");
        }
        let parcel_ids: Vec<String> = parcels.iter().map(|(id, _)| id.clone()).collect();
        let ids: Vec<(u64, String)> = jobs.iter().map(|(id, j)| (j.id, id.clone())).collect();
        let mut answered = HashSet::new();
        let mut next_kill = Instant::now() + Duration::from_millis(fastrand::u64(100..400));
        while !(answer_and_check(&runner, &ids, &mut answered).await
            && parcels_completed(&parcel_runner, &parcel_ids).await)
        {
            if killed < wanted && Instant::now() >= next_kill {
                let victim = fastrand::usize(0..workers.len());
                let owner = format!("w{victim}-{killed}");
                // Dropping the old one kills it (SIGKILL) and reaps it.
                workers[victim] = ChildWorker::spawn(spec, &owner, 2);
                killed += 1;
                next_kill = Instant::now() + Duration::from_millis(fastrand::u64(100..400));
            }
            assert!(
                started.elapsed() < Duration::from_secs(150),
                "round {round}: sessions still unfinished after {killed} kills"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        verify(&store, &jobs, &side_log).await;
        child_reruns +=
            verify_parcels(&store, &parcels, &format!("r{round}-parcel-"), &side_log).await;
        round += 1;
    }
    eprintln!(
        "{killed} kills over {round} rounds of 40 jobs and 8 parcels in {:?}; {child_reruns} \
         child node runs lost to kills and re-run",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_at_random_loses_and_forks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workers.db");
    let store = SqliteStore::open(&path).unwrap();
    sigkill_at_random(store, &format!("sqlite:{}", path.display()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_at_random_loses_and_forks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conninfo = postgres::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    sigkill_at_random(store, &format!("postgres:{conninfo}"), dir.path()).await;
}

/// A worker frozen (SIGSTOP) in the middle of a slow node loses its lease to a second worker,
/// which finishes the session; resumed (SIGCONT), the frozen worker is refused its write.
async fn sigstop_past_the_lease<S: Store + Clone>(store: S, spec: &str, dir: &Path) {
    let runner = Runner::new(jobs::Workflow, store.clone());
    let side_log = dir.join("side.log");
    let mut job = Job::new(7, 1_500, &side_log);
    job.rounds = 1;
    let jobs = vec![("slow".to_owned(), job)];
    runner.enqueue("slow", jobs[0].1.clone()).await.unwrap();

    let frozen = ChildWorker::spawn(spec, "frozen", 2);
    wait_until(
        "the first worker claims",
        Duration::from_secs(30),
        || async { frozen.has_line(|l| l == "claimed slow 1") },
    )
    .await;
    // Mid-run: `prepare` sleeps 1.5 s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    frozen.signal("-STOP");
    let taker = ChildWorker::spawn(spec, "taker", 2);
    wait_until(
        "the second worker takes over and writes",
        Duration::from_secs(30),
        || async { taker.has_line(|l| l.starts_with("append slow ") && l.ends_with(" 2 ok")) },
    )
    .await;
    assert!(
        taker.has_line(|l| l == "claimed slow 2"),
        "{:?}",
        taker.lines()
    );
    frozen.signal("-CONT");
    wait_until(
        "the resumed worker to be refused",
        Duration::from_secs(30),
        || async {
            frozen.has_line(|l| {
                (l.starts_with("renew slow 1 ") || l.starts_with("append slow "))
                    && l.contains("LeaseLost")
            })
        },
    )
    .await;
    let ids = [(7, "slow".to_owned())];
    let mut answered = HashSet::new();
    until_completed(&runner, &ids, &mut answered, Duration::from_secs(30)).await;
    // Nothing the frozen worker tried to write under its epoch (1) went through.
    let lines = frozen.lines();
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("append slow ") && l.ends_with(" 1 ok")),
        "the frozen worker wrote: {lines:?}"
    );
    verify(&store, &jobs, &side_log).await;
    eprintln!("frozen worker's output: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigstop_past_the_lease_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workers.db");
    let store = SqliteStore::open(&path).unwrap();
    sigstop_past_the_lease(store, &format!("sqlite:{}", path.display()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigstop_past_the_lease_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let conninfo = postgres::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    sigstop_past_the_lease(store, &format!("postgres:{conninfo}"), dir.path()).await;
}

fn in_process_worker<S: Store + Clone>(
    store: S,
    owner: &str,
    concurrency: usize,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<graph_runtime::Result<()>> {
    let runner = Runner::new(jobs::Workflow, store.clone());
    let worker = Worker::new(store)
        .register(runner)
        .concurrency(concurrency)
        .lease_ttl(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(100))
        .owner(owner);
    tokio::spawn(worker.run(shutdown.clone()))
}

/// Three workers (4 sessions each, their own `PostgresStore` each) on `conninfo`, and 30 jobs
/// of `step_ms` steps enqueued for them.
struct Fleet {
    stores: Vec<PostgresStore>,
    runner: Runner<jobs::Workflow, PostgresStore>,
    jobs: Vec<(String, Job)>,
    workers: Vec<tokio::task::JoinHandle<graph_runtime::Result<()>>>,
    ids: Vec<(u64, String)>,
}

async fn three_workers_on(
    conninfo: &str,
    step_ms: u64,
    side_log: &Path,
    shutdown: &CancellationToken,
) -> Fleet {
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(PostgresStore::connect(conninfo).await.unwrap());
    }
    let runner = Runner::new(jobs::Workflow, stores[0].clone());
    let jobs: Vec<(String, Job)> = (0..30u64)
        .map(|i| (format!("job-{i}"), Job::new(i, step_ms, side_log)))
        .collect();
    for (id, job) in &jobs {
        runner.enqueue(id, job.clone()).await.unwrap();
    }
    let workers = stores
        .iter()
        .enumerate()
        .map(|(w, s)| in_process_worker(s.clone(), &format!("w{w}"), 4, shutdown))
        .collect();
    let ids = jobs.iter().map(|(id, j)| (j.id, id.clone())).collect();
    Fleet {
        stores,
        runner,
        jobs,
        workers,
        ids,
    }
}

/// The server stops (fast shutdown) under three running workers and comes back 1.5 s later:
/// the workers carry on, and every session ends as without the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let side_log = dir.path().join("side.log");
    let server = postgres::Server::start(false);
    let conninfo = server.create_database().await;
    let shutdown = CancellationToken::new();
    let Fleet {
        stores,
        runner,
        jobs,
        workers,
        ids,
    } = three_workers_on(&conninfo, 80, &side_log, &shutdown).await;
    let mut answered = HashSet::new();
    // Let the workers get going, then take the server away under them.
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        answer_and_check(&runner, &ids, &mut answered).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Mid-run: 30 sessions of at least 4 × 80 ms on 12 slots cannot all be done yet.
    assert!(
        !answer_and_check(&runner, &ids, &mut answered).await,
        "every session finished before the restart"
    );
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.stop();
        std::thread::sleep(Duration::from_millis(1_500));
        server.restart();
        server
    })
    .await
    .unwrap();
    until_completed(&runner, &ids, &mut answered, Duration::from_secs(90)).await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    verify(&stores[0], &jobs, &side_log).await;
    drop(server);
}

/// The store's connections are cut from the server side in a loop while three workers run
/// (`pg_terminate_backend` on every other backend of the database, every 40–160 ms for 3 s:
/// mid-claim, mid-append, mid-renewal, mid-notification), and the server is restarted once in
/// the middle: every worker recovers, and every session ends as without the faults — nothing
/// lost (final states exact), nothing forked (gapless chains ending at the crash-free run's
/// last sequence number), each shipped key on the side log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_in_a_loop_lose_and_fork_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let side_log = dir.path().join("side.log");
    let server = postgres::Server::start(false);
    let conninfo = server.create_database().await;
    let shutdown = CancellationToken::new();
    let Fleet {
        stores,
        runner,
        jobs,
        workers,
        ids,
    } = three_workers_on(&conninfo, 40, &side_log, &shutdown).await;
    let mut answered = HashSet::new();
    // The killer: its own connection (re-made after the restart), cutting every other backend
    // of the test database at a random 40–160 ms.
    let terminated = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop_killing = CancellationToken::new();
    let killer = {
        let (conninfo, terminated, stop) =
            (conninfo.clone(), terminated.clone(), stop_killing.clone());
        tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(17);
            while !stop.is_cancelled() {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await
                {
                    let connection = tokio::spawn(connection);
                    while !stop.is_cancelled() {
                        let cut = client
                            .query(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                                &[],
                            )
                            .await;
                        match cut {
                            Ok(rows) => {
                                terminated
                                    .fetch_add(rows.len(), std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(_) => break, // the server went away: connect again
                        }
                        tokio::time::sleep(Duration::from_millis(rng.u64(40..160))).await;
                    }
                    drop(client);
                    let _ = connection.await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let until = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < until {
        answer_and_check(&runner, &ids, &mut answered).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let server = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.stop();
        std::thread::sleep(Duration::from_millis(500));
        server.restart();
        server
    })
    .await
    .unwrap();
    let until = Instant::now() + Duration::from_millis(1_500);
    while Instant::now() < until {
        answer_and_check(&runner, &ids, &mut answered).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop_killing.cancel();
    killer.await.unwrap();
    let cut = terminated.load(std::sync::atomic::Ordering::Relaxed);
    assert!(cut >= 10, "only {cut} backends were terminated");
    until_completed(&runner, &ids, &mut answered, Duration::from_secs(120)).await;
    shutdown.cancel();
    for worker in workers {
        worker.await.unwrap().unwrap();
    }
    verify(&stores[0], &jobs, &side_log).await;
    drop(server);
}

/// A pool of 2 connections under a worker that runs 32 sessions at once: sessions wait for a
/// connection, nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_exhausted_is_back_pressure_not_errors() {
    let dir = tempfile::tempdir().unwrap();
    let side_log = dir.path().join("side.log");
    let conninfo = postgres::database().await;
    let pg = PostgresOptions::new()
        .pool_size(2)
        .connect(&conninfo)
        .await
        .unwrap();
    let store = Reporting::new(pg, false);
    let runner = Runner::new(jobs::Workflow, store.clone());
    let jobs: Vec<(String, Job)> = (0..100u64)
        .map(|i| (format!("job-{i}"), Job::new(i, 5, &side_log)))
        .collect();
    for (id, job) in &jobs {
        runner.enqueue(id, job.clone()).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let worker = in_process_worker(store.clone(), "pool", 32, &shutdown);
    let ids: Vec<(u64, String)> = jobs.iter().map(|(id, j)| (j.id, id.clone())).collect();
    let mut answered = HashSet::new();
    until_completed(&runner, &ids, &mut answered, Duration::from_secs(90)).await;
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!(
        store.errors.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "store calls failed"
    );
    verify(&store, &jobs, &side_log).await;
}

/// A workflow of one step, for the tests that need a second workflow in the store.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, StateSchema)]
pub struct Tick {
    pub ticks: u32,
}

#[workflow(state = Tick)]
pub mod ticks {
    use super::*;

    edge!(START -> tick);
    edge!(tick -> END);

    #[node]
    async fn tick(t: &mut Tick) {
        t.ticks += 1;
    }
}

/// A worker that registered `ticks` runs its sessions and leaves alone the `jobs` sessions
/// and the `ticks` sessions saved under another graph hash (a newer deploy's).
async fn claims_stay_in_their_lane<S: Store + Clone>(store: S) {
    let job_runner = Runner::new(jobs::Workflow, store.clone());
    let tick_runner = Runner::new(ticks::Workflow, store.clone());
    let newer_graph = ticks::Workflow::GRAPH_HASH ^ 0xDEAD_BEEF;
    for i in 0..5u64 {
        job_runner
            .enqueue(&format!("job-{i}"), Job::new(i, 0, Path::new("")))
            .await
            .unwrap();
        tick_runner
            .enqueue(&format!("tick-{i}"), Tick::default())
            .await
            .unwrap();
        // What a newer build of `ticks` would have enqueued: a checkpoint this build cannot
        // read, under a graph hash this worker did not register.
        let checkpoint = Checkpoint::new(0, "tick", Status::Running, b"newer".to_vec());
        let append = Append::new(None, checkpoint, None)
            .workflow(<ticks::Workflow as WorkflowDef>::NAME, newer_graph)
            .wake(Wake::Now);
        store.append(&format!("newer-{i}"), append).await.unwrap();
    }
    let shutdown = CancellationToken::new();
    let worker = Worker::new(store.clone())
        .register(tick_runner.clone())
        .lease_ttl(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .run(shutdown.clone());
    let worker = tokio::spawn(worker);
    wait_until(
        "the tick sessions complete",
        Duration::from_secs(30),
        || async {
            for i in 0..5 {
                let s = tick_runner.state(&format!("tick-{i}")).await.unwrap();
                if s.is_none_or(|s| s.status != Status::Completed) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    // A few more polls: nothing else may be taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    for i in 0..5 {
        for id in [format!("job-{i}"), format!("newer-{i}")] {
            assert_eq!(store.list(&id).await.unwrap().len(), 1, "{id} was written");
        }
    }
    // Never claimed: the first claim of each raises its epoch to 1.
    let claim = Claim::new("check", Duration::from_secs(5), 100)
        .workflow(
            <jobs::Workflow as WorkflowDef>::NAME,
            [jobs::Workflow::GRAPH_HASH],
        )
        .workflow(<ticks::Workflow as WorkflowDef>::NAME, [newer_graph]);
    let leases = store.claim(&claim).await.unwrap();
    let mut taken: Vec<(String, u64)> = leases.into_iter().map(|l| (l.session, l.epoch)).collect();
    taken.sort();
    let mut want: Vec<(String, u64)> = (0..5)
        .flat_map(|i| [(format!("job-{i}"), 1), (format!("newer-{i}"), 1)])
        .collect();
    want.sort();
    assert_eq!(taken, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_claims_stay_in_their_lane() {
    claims_stay_in_their_lane(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_claims_stay_in_their_lane() {
    let dir = tempfile::tempdir().unwrap();
    claims_stay_in_their_lane(SqliteStore::open(dir.path().join("w.db")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_claims_stay_in_their_lane() {
    let conninfo = postgres::database().await;
    claims_stay_in_their_lane(PostgresStore::connect(&conninfo).await.unwrap()).await;
}

/// Sessions whose `nap` node has started, and whose `nap` future was dropped.
static NAPPING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static DROPPED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

struct DropGuard(String);

impl Drop for DropGuard {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().insert(self.0.clone());
    }
}

#[workflow(state = Tick)]
pub mod naps {
    use super::*;

    edge!(START -> nap);
    edge!(nap -> END);

    #[node]
    async fn nap(t: &mut Tick, ctx: &NodeCtx) {
        let _guard = DropGuard(ctx.session_id().to_owned());
        NAPPING.lock().unwrap().insert(ctx.session_id().to_owned());
        tokio::time::sleep(Duration::from_secs(120)).await;
        t.ticks += 1;
    }
}

/// The session is deleted while its node runs: the next renewal fails with `LeaseLost`, and
/// the worker drops the node's future (its drop guard runs) within about a lease's time.
async fn lost_lease_cancels_the_node<S: Store + Clone>(store: S, id: &str) {
    let runner = Runner::new(naps::Workflow, store.clone());
    runner.enqueue(id, Tick::default()).await.unwrap();
    let shutdown = CancellationToken::new();
    let worker = Worker::new(store.clone())
        .register(runner.clone())
        .lease_ttl(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .run(shutdown.clone());
    let worker = tokio::spawn(worker);
    wait_until("the node starts", Duration::from_secs(30), || async {
        NAPPING.lock().unwrap().contains(id)
    })
    .await;
    assert!(!DROPPED.lock().unwrap().contains(id));
    assert!(runner.delete(id).await.unwrap());
    let deleted = Instant::now();
    wait_until(
        "the node is cancelled (within 3 lease ttls)",
        Duration::from_secs(3),
        || async { DROPPED.lock().unwrap().contains(id) },
    )
    .await;
    eprintln!(
        "{id}: the node was dropped {:?} after the delete",
        deleted.elapsed()
    );
    // The cancelled run wrote nothing: the session stays deleted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(runner.state(id).await.unwrap().is_none());
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker drains")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_lost_lease_cancels_the_node() {
    lost_lease_cancels_the_node(MemoryStore::new(), "nap-memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lost_lease_cancels_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    lost_lease_cancels_the_node(store, "nap-sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lost_lease_cancels_the_node() {
    let conninfo = postgres::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    lost_lease_cancels_the_node(store, "nap-postgres").await;
}

/// Sessions that were enqueued and then run in-process, one to its end and one to its review,
/// have nothing to run: the checkpoint that completed or made them wait marked them as needing
/// no worker, so no worker claims them at all (before that, a worker claimed such sessions in a
/// loop). The waiting one still runs once its input comes, and a new session under the
/// completed one's id after a delete runs.
async fn sessions_needing_no_run_are_not_claimed_in_a_loop<S: Store + Clone>(store: S) {
    let store = Reporting::new(store, false);
    let runner = Runner::new(jobs::Workflow, store.clone());
    let mut job = Job::new(1, 0, Path::new(""));
    job.rounds = 1;
    for id in ["done", "waits"] {
        runner.enqueue(id, job.clone()).await.unwrap();
        let out = runner.resume(id).await.unwrap();
        assert!(matches!(out, Outcome::Interrupted { node: "review", .. }));
    }
    let out = runner
        .resume_with("done", jobs::Input::Review(false))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Completed(_)));

    let shutdown = CancellationToken::new();
    let worker = in_process_worker(store.clone(), "idle", 4, &shutdown);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // A loop would have claimed them hundreds of times by now (a 100 ms poll, and a claim
    // straight after every release); nothing is runnable, so nothing is claimed.
    assert_eq!(store.claims_of("done"), 0);
    assert_eq!(store.claims_of("waits"), 0);

    runner
        .enqueue_input("waits", jobs::Input::Review(true))
        .await
        .unwrap();
    assert!(runner.delete("done").await.unwrap());
    runner.enqueue("done", job.clone()).await.unwrap();
    wait_until("`done` waits again", Duration::from_secs(10), || async {
        matches!(runner.state("done").await.unwrap(), Some(s) if s.waiting == ["review"])
    })
    .await;
    runner
        .enqueue_input("done", jobs::Input::Review(true))
        .await
        .unwrap();
    // Both have their input: nothing left to answer.
    let ids = [(1, "waits".to_owned()), (1, "done".to_owned())];
    let mut answered = HashSet::from([1]);
    until_completed(&runner, &ids, &mut answered, Duration::from_secs(10)).await;
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    for id in ["waits", "done"] {
        let state = runner.state(id).await.unwrap().unwrap().state;
        assert!(state.shipped, "{id}: {state:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sessions_needing_no_run_are_not_claimed_in_a_loop() {
    sessions_needing_no_run_are_not_claimed_in_a_loop(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sessions_needing_no_run_are_not_claimed_in_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    sessions_needing_no_run_are_not_claimed_in_a_loop(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_needing_no_run_are_not_claimed_in_a_loop() {
    let conninfo = postgres::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    sessions_needing_no_run_are_not_claimed_in_a_loop(store).await;
}

/// How many times `broken` ran, per session.
static BROKEN_RUNS: Mutex<std::collections::BTreeMap<String, u32>> =
    Mutex::new(std::collections::BTreeMap::new());

#[workflow(state = Tick)]
pub mod broken {
    use super::*;

    edge!(START -> fail);
    edge!(fail -> END);

    /// Fails every time, with no retries and no error edge: every run of the session fails.
    #[node]
    async fn fail(_t: &mut Tick, ctx: &NodeCtx) -> Result<(), graph_runtime::NodeError> {
        *BROKEN_RUNS
            .lock()
            .unwrap()
            .entry(ctx.session_id().to_owned())
            .or_default() += 1;
        Err("the payment provider is down".into())
    }
}

/// A session whose run fails is retried once per lease ttl (the worker keeps the expired
/// lease), not in a loop; deleting it stops the retries.
async fn failed_runs_are_retried_once_per_ttl<S: Store + Clone>(store: S, id: &str) {
    let runner = Runner::new(broken::Workflow, store.clone());
    runner.enqueue(id, Tick::default()).await.unwrap();
    let runs = || BROKEN_RUNS.lock().unwrap().get(id).copied().unwrap_or(0);
    let shutdown = CancellationToken::new();
    let worker = Worker::new(store.clone())
        .register(runner.clone())
        .lease_ttl(Duration::from_secs(1))
        .poll_interval(Duration::from_millis(50))
        .run(shutdown.clone());
    let worker = tokio::spawn(worker);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = runs();
    // Claimed at about 0, 1 and 2 s: retried, but a loop would have run it hundreds of times.
    assert!((2..=4).contains(&after), "{id}: ran {after} times in 2.5 s");
    assert!(runner.delete(id).await.unwrap());
    let deleted = runs();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(runs(), deleted, "{id}: ran again after its delete");
    shutdown.cancel();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_failed_runs_are_retried_once_per_ttl() {
    failed_runs_are_retried_once_per_ttl(MemoryStore::new(), "broken-memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failed_runs_are_retried_once_per_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("w.db")).unwrap();
    failed_runs_are_retried_once_per_ttl(store, "broken-sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failed_runs_are_retried_once_per_ttl() {
    let conninfo = postgres::database().await;
    let store = PostgresStore::connect(&conninfo).await.unwrap();
    failed_runs_are_retried_once_per_ttl(store, "broken-postgres").await;
}
