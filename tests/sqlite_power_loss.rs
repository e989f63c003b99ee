//! Power loss under `SqliteStore`. Its files live on a simulated disk (`support/power/`, a
//! SQLite VFS registered as the process's default) that, when the power is cut, keeps what
//! SQLite synced and, of what it wrote since, nothing, a seeded choice of whole writes, or
//! writes torn at 512-byte sectors. A runner drives a ledger workflow (a state that grows by
//! a line a step, so that most checkpoints are deltas; an interrupt; a retried node; an error
//! edge) one session after another, while a second connection now and then checkpoints the
//! WAL into the database file (as another process may) and the store is closed and reopened
//! between sessions at random. The power is cut before a seeded write, truncation or sync; the
//! disk reboots with what the cut left, and the store opens it again. After every cut:
//!
//! - the file opens and passes `PRAGMA integrity_check`; every session's chain is gapless
//!   from sequence number 0;
//! - every stored checkpoint is byte for byte the one the runner sent for that session and
//!   sequence number, and reads back through the runner (deltas through their chains): no
//!   misread, no checkpoint from nowhere;
//! - `Synchronous::Full` (`full_synchronous_loses_nothing_acknowledged`): every append the
//!   store acknowledged before the cut is there;
//! - `Synchronous::Normal` (`normal_synchronous_loses_only_a_tail`): what is missing is a
//!   tail: an acknowledged append is kept if any append sent after its acknowledgement is
//!   kept, and if the WAL was synced after its acknowledgement;
//! - the runner then finishes every session, with the state of a run without power cuts.
//!
//! `pages_torn_by_a_cut_checkpoint_are_discarded` cuts the power inside checkpoints of the WAL
//! into the database file, tearing every database page written and not yet synced: SQLite
//! must read those pages from the WAL, which it keeps until the database file is synced.
//!
//! `a_torn_record_page_is_corrupt_never_misread` tears, once the WAL is gone, a page of the
//! database file that holds checkpoint bytes between its sectors before and after the
//! checkpoint that wrote it (what a disk that lied about a flush would leave): every read is
//! then the checkpoint as written, or an error (`Error::Corrupt` from the envelope's
//! checksum, or SQLite's own), never another state.
//!
//! Each test makes `POWER_CUTS` cuts (100 by default): `POWER_CUTS=2000 cargo test --release
//! --test sqlite_power_loss -- --nocapture` makes more, and prints what they did. A failing
//! cut prints its `POWER_SEED=…` reproducer: the workload is sequential, so a seed replays the
//! same operations and the same cut.

#[path = "support/power/mod.rs"]
mod power;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use graph_runtime::prelude::*;
use graph_runtime::store::Store as _;
use graph_runtime::{Error, SqliteOptions, Status, Synchronous};

use power::{Ack, At, Disk, Fates, Log, Recorder, Unsynced};
use serde::{Deserialize, Serialize};

/// Sessions each run drives, one after another.
const SESSIONS: usize = 4;
const DATABASE: &str = "power.db";
/// The lines a session's `add` writes, one a step, and their length: past the sixth, the
/// state is large enough for delta checkpoints.
const LINES: usize = 10;
const LINE_BYTES: usize = 700;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Ledger {
    /// Whether `settle` fails (and the error edge to `compensate` is taken).
    pub declined: bool,
    /// A line per step, beginning with the step's idempotency key.
    pub lines: Vec<String>,
    pub approved: bool,
    pub settled: bool,
    pub compensated: Option<String>,
}

#[derive(Debug)]
pub struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for Declined {}

#[workflow(state = Ledger)]
pub mod ledger {
    use super::*;

    edge!(START -> add);
    edge!(add -> add | approve);
    edge!(approve -> settle);
    edge!(settle -> END);
    edge!(settle -> compensate on error);
    edge!(compensate -> END);

    #[node]
    async fn add(l: &mut Ledger, ctx: &NodeCtx) -> add::Next {
        let pad = char::from(b'a' + (l.lines.len() % 26) as u8).to_string();
        l.lines.push(format!(
            "{} {}",
            ctx.idempotency_key(),
            pad.repeat(LINE_BYTES)
        ));
        if l.lines.len() < LINES {
            add::Next::Add
        } else {
            add::Next::Approve
        }
    }

    #[node(interrupt)]
    async fn approve(l: &mut Ledger, ok: bool) {
        l.approved = ok;
    }

    #[node(retry = 1, backoff_ms = 1, jitter = false)]
    async fn settle(l: &mut Ledger, ctx: &NodeCtx) -> Result<(), Declined> {
        // A change that must vanish when this attempt fails.
        l.lines.push(ctx.idempotency_key());
        if l.declined {
            return Err(Declined);
        }
        l.settled = true;
        Ok(())
    }

    #[node]
    async fn compensate(l: &mut Ledger, ctx: &NodeCtx) {
        l.compensated = ctx
            .failure()
            .map(|f| format!("{}: {}", f.node(), f.error()));
    }
}

fn session(i: usize) -> String {
    format!("ledger-{i}")
}

/// Odd sessions are declined at `settle` and end through the error edge.
fn declined(i: usize) -> bool {
    i % 2 == 1
}

/// Runs session `id` to its end from wherever it is: starts it, or resumes it, and approves
/// it when it waits.
async fn drive<S: graph_runtime::store::Store>(
    runner: &Runner<ledger::Workflow, S>,
    id: &str,
    declined: bool,
) -> Result<Ledger, Error> {
    let start = Ledger {
        declined,
        ..Ledger::default()
    };
    let mut outcome = match runner.start(id, start).await {
        Err(Error::SessionExists(_)) => runner.resume(id).await?,
        other => other?,
    };
    loop {
        match outcome {
            Outcome::Completed(ledger) => return Ok(ledger),
            Outcome::Interrupted { .. } => {
                outcome = runner.resume_with(id, ledger::Input::Approve(true)).await?;
            }
            _ => panic!("session `{id}` ended in an outcome this test does not know"),
        }
    }
}

fn cuts() -> usize {
    std::env::var("POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// The seeds of this run's cuts: `POWER_SEED` alone if set, else `cuts()` from a random base.
fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("POWER_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return vec![seed];
    }
    let base = fastrand::u64(..u64::MAX / 2);
    (0..cuts() as u64).map(|i| base + i).collect()
}

/// Prints how to run a cut again if it panics.
struct Reproducer {
    test: &'static str,
    seed: u64,
}

impl Drop for Reproducer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "reproduce with: POWER_SEED={} cargo test --test sqlite_power_loss {}",
                self.seed, self.test
            );
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The state session `id` ends in without any power cut.
fn expected(id: &str, declined: bool) -> Ledger {
    static REFERENCE: OnceLock<[Ledger; 2]> = OnceLock::new();
    let reference = REFERENCE.get_or_init(|| {
        let rt = runtime();
        let runner = Runner::new(ledger::Workflow, MemoryStore::new());
        [false, true].map(|declined| {
            rt.block_on(drive(&runner, &format!("reference-{declined}"), declined))
                .expect("reference run")
        })
    });
    let mut ledger = reference[usize::from(declined)].clone();
    for line in &mut ledger.lines {
        *line = line.replacen(&format!("reference-{declined}"), id, 1);
    }
    ledger
}

fn open(path: &str, synchronous: Synchronous) -> graph_runtime::Result<SqliteStore> {
    SqliteOptions::new().synchronous(synchronous).open(path)
}

/// A second connection on the file that checkpoints the WAL into the database file when
/// called, as another process (the inspector, a backup) may. Opened at its first call.
fn checkpointer(disk: &Arc<Disk>, synchronous: Synchronous) -> power::AfterAcks {
    let (disk, path) = (Arc::clone(disk), disk.path(DATABASE));
    let mut conn: Option<rusqlite::Connection> = None;
    Box::new(move || {
        let result = (|| -> rusqlite::Result<()> {
            if conn.is_none() {
                let c = rusqlite::Connection::open(&path)?;
                let mode = match synchronous {
                    Synchronous::Normal => "NORMAL",
                    _ => "FULL",
                };
                c.pragma_update(None, "synchronous", mode)?;
                conn = Some(c);
            }
            let conn = conn.as_ref().expect("opened");
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        })();
        if let Err(e) = result {
            assert!(
                disk.is_cut(),
                "the checkpointer failed with the power on: {e}"
            );
        }
    })
}

/// How a run's workload is laid out, drawn from its seed.
struct Plan {
    unsynced: Unsynced,
    /// The checkpointer runs after every this many acknowledged appends.
    checkpoint_every: usize,
    /// Whether the store is closed and opened again after each session.
    reopen_after: [bool; SESSIONS],
}

impl Plan {
    fn draw(rng: &mut fastrand::Rng) -> Plan {
        Plan {
            unsynced: match rng.u8(0..3) {
                0 => Unsynced::Lost,
                1 => Unsynced::Random { tear: false },
                _ => Unsynced::Random { tear: true },
            },
            checkpoint_every: rng.usize(4..40),
            reopen_after: std::array::from_fn(|_| rng.bool()),
        }
    }
}

/// Drives the sessions, one after another, until they are done or the power is off. Every
/// failure must come after the cut: with the power on, the store never fails.
async fn workload(disk: &Arc<Disk>, synchronous: Synchronous, plan: &Plan, log: &Arc<Mutex<Log>>) {
    let path = disk.path(DATABASE);
    let power_off = |what: &str, e: &Error| {
        assert!(disk.is_cut(), "{what} failed with the power on: {e}");
    };
    let finished = async {
        let mut store = open(&path, synchronous).map_err(|e| ("opening the store", e))?;
        for i in 0..SESSIONS {
            let recorder = Recorder::new(store.clone(), disk, log)
                .after_every(plan.checkpoint_every, checkpointer(disk, synchronous));
            let runner = Runner::new(ledger::Workflow, recorder);
            drive(&runner, &session(i), declined(i))
                .await
                .map_err(|e| ("a run", e))?;
            if plan.reopen_after[i] {
                store.close().await.map_err(|e| ("closing the store", e))?;
                store = open(&path, synchronous).map_err(|e| ("reopening the store", e))?;
            }
        }
        // Closed, not dropped: a dropped store closes its file in the background, and the
        // operations it makes then would race with the counts of a run without a cut.
        store.close().await.map_err(|e| ("closing the store", e))
    };
    if let Err((what, e)) = finished.await {
        power_off(what, &e);
    }
}

/// What the cuts of a test did, added up.
#[derive(Debug, Default)]
struct Totals {
    cuts: usize,
    /// Stored checkpoints that were deltas (read back through their chains).
    deltas: usize,
    acknowledged: usize,
    lost: usize,
    fates: Fates,
}

impl Totals {
    fn add(&mut self, fates: Fates) {
        self.fates.kept += fates.kept;
        self.fates.lost += fates.lost;
        self.fates.torn += fates.torn;
        self.fates.torn_in_database += fates.torn_in_database;
    }
}

/// Where cuts fall: before one of the operations of a run (every operation, or those on the
/// main database file), drawn from those a typical run makes. A run that makes fewer is cut
/// at its end.
#[derive(Debug, Clone, Copy)]
enum Place {
    Anywhere {
        ops: u64,
    },
    /// In WAL mode only checkpoints of the WAL write to the database file (once it exists):
    /// these cuts fall inside one, with every write of several sectors not yet synced torn.
    InCheckpoint {
        database_ops: u64,
    },
}

impl Place {
    /// The operations of a run without a cut, of the seed-0 plan.
    fn typical(synchronous: Synchronous, label: &str, in_checkpoint: bool) -> Place {
        let disk = Disk::new(&format!("uncut-{label}"));
        let plan = Plan::draw(&mut fastrand::Rng::with_seed(0));
        let log = Arc::new(Mutex::new(Log::default()));
        runtime().block_on(workload(&disk, synchronous, &plan, &log));
        if in_checkpoint {
            Place::InCheckpoint {
                database_ops: disk.database_ops(),
            }
        } else {
            Place::Anywhere { ops: disk.ops() }
        }
    }
}

/// One cut: runs the workload with the power cut where `place` and `seed` say, reboots,
/// checks what the store kept against what it acknowledged, then finishes every session.
fn cut_once(
    rt: &tokio::runtime::Runtime,
    test: &str,
    synchronous: Synchronous,
    place: Place,
    seed: u64,
    totals: &mut Totals,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut plan = Plan::draw(&mut rng);
    let at = match place {
        Place::Anywhere { ops } => At::Op(rng.u64(0..ops)),
        Place::InCheckpoint { database_ops } => {
            plan.unsynced = Unsynced::Torn;
            At::DatabaseOp(rng.u64(0..database_ops))
        }
    };
    let disk = Disk::new(&format!("{test}-{seed}"));
    let path = disk.path(DATABASE);
    disk.arm(at, plan.unsynced, rng.u64(..));
    let log = Arc::new(Mutex::new(Log::default()));
    rt.block_on(workload(&disk, synchronous, &plan, &log));
    // A workload that finished before its cut: cut now.
    disk.cut(plan.unsynced, rng.u64(..));
    let cut = disk.reboot();
    totals.cuts += 1;
    totals.add(cut.fates);
    let log = log.lock().unwrap();

    let store = open(&path, synchronous).expect("the store opens after the cut");
    integrity_check(&path);
    let runner = Runner::new(ledger::Workflow, store.clone());
    let mut kept: HashSet<(String, u64)> = HashSet::new();
    for i in 0..SESSIONS {
        let id = session(i);
        let seqs: Vec<u64> = rt
            .block_on(store.list(&id))
            .expect("list")
            .iter()
            .map(|meta| meta.seq)
            .collect();
        assert!(
            seqs.iter().copied().eq(0..seqs.len() as u64),
            "{id}: the chain has gaps: {seqs:?}"
        );
        for &seq in &seqs {
            let stored = rt
                .block_on(store.get(&id, seq))
                .expect("get")
                .expect("listed");
            let sent = log
                .sent
                .get(&(id.clone(), seq))
                .unwrap_or_else(|| panic!("{id}@{seq} is stored but was never sent"));
            assert!(
                stored.bytes == *sent,
                "{id}@{seq}: the stored bytes are not the ones sent"
            );
            totals.deltas += usize::from(stored.depends_on.is_some());
            rt.block_on(runner.state_at(&id, seq))
                .unwrap_or_else(|e| panic!("{id}@{seq} does not read back: {e}"))
                .expect("kept");
            kept.insert((id.clone(), seq));
        }
    }
    let is_kept = |ack: &Ack| kept.contains(&(ack.session.clone(), ack.seq));
    let lost: Vec<&Ack> = log.acks.iter().filter(|ack| !is_kept(ack)).collect();
    totals.acknowledged += log.acks.len();
    totals.lost += lost.len();
    match synchronous {
        Synchronous::Full => assert!(
            lost.is_empty(),
            "synchronous=FULL lost {} acknowledged appends, the first {}@{} (cut at op {}, \
             {:?})",
            lost.len(),
            lost[0].session,
            lost[0].seq,
            cut.at_op,
            plan.unsynced
        ),
        _ => {
            // A tail: whatever is kept, everything acknowledged before it was sent is kept.
            for ack in log.acks.iter().filter(|ack| is_kept(ack)) {
                if let Some(before) = log.acks[..ack.acks_before].iter().find(|a| !is_kept(a)) {
                    panic!(
                        "{}@{} was lost although {}@{}, sent after it was acknowledged, was \
                         kept",
                        before.session, before.seq, ack.session, ack.seq
                    );
                }
            }
            // And only what the WAL had not been synced after.
            let wal_synced = cut.last_sync.get(&format!("{path}-wal")).copied();
            for ack in &lost {
                assert!(
                    wal_synced.is_none_or(|synced| synced < ack.acked_at_op),
                    "{}@{} was lost although the WAL was synced after it was acknowledged",
                    ack.session,
                    ack.seq
                );
            }
        }
    }
    drop(log);

    // Every session finishes, as if the power had never been cut.
    for i in 0..SESSIONS {
        let id = session(i);
        let done = rt
            .block_on(drive(&runner, &id, declined(i)))
            .unwrap_or_else(|e| panic!("{id} does not finish after the cut: {e}"));
        assert_eq!(done, expected(&id, declined(i)), "{id}");
        let snapshot = rt
            .block_on(runner.state(&id))
            .expect("state")
            .expect("kept");
        assert_eq!(snapshot.status, Status::Completed, "{id}");
    }
    drop(runner);
    rt.block_on(store.close()).expect("close after the check");
    integrity_check(&path);
}

fn integrity_check(path: &str) {
    let conn = rusqlite::Connection::open(path).expect("open for the check");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "{path}");
}

/// Cuts the power `cuts()` times (or once, at `POWER_SEED`), and reports what happened.
fn power_cuts(
    test: &'static str,
    synchronous: impl Fn(u64) -> Synchronous,
    place: impl Fn(Synchronous) -> Place,
) -> Totals {
    let rt = runtime();
    let mut totals = Totals::default();
    let started = std::time::Instant::now();
    for seed in seeds() {
        let _reproducer = Reproducer { test, seed };
        let synchronous = synchronous(seed);
        cut_once(
            &rt,
            test,
            synchronous,
            place(synchronous),
            seed,
            &mut totals,
        );
    }
    eprintln!(
        "{test}: {} power cuts in {:.1?}, {} of {} acknowledged appends lost; unsynced writes at \
         the cuts: {:?}",
        totals.cuts,
        started.elapsed(),
        totals.lost,
        totals.acknowledged,
        totals.fates
    );
    if totals.cuts >= 20 {
        assert!(
            totals.deltas > 0,
            "no delta checkpoint was kept: the test covers none"
        );
    }
    totals
}

/// Cuts anywhere in a run of `synchronous`.
fn anywhere(test: &'static str, synchronous: Synchronous) -> Totals {
    let place = Place::typical(synchronous, test, false);
    power_cuts(test, |_| synchronous, |_| place)
}

#[test]
fn full_synchronous_loses_nothing_acknowledged() {
    let totals = anywhere(
        "full_synchronous_loses_nothing_acknowledged",
        Synchronous::Full,
    );
    assert_eq!(totals.lost, 0);
}

#[test]
fn normal_synchronous_loses_only_a_tail() {
    let totals = anywhere("normal_synchronous_loses_only_a_tail", Synchronous::Normal);
    if totals.cuts >= 50 {
        assert!(
            totals.lost > 0,
            "no acknowledged append was lost: the cuts never fell in a tail"
        );
    }
}

#[test]
fn pages_torn_by_a_cut_checkpoint_are_discarded() {
    let test = "pages_torn_by_a_cut_checkpoint_are_discarded";
    let full = Place::typical(Synchronous::Full, &format!("{test}-full"), true);
    let normal = Place::typical(Synchronous::Normal, &format!("{test}-normal"), true);
    // Half the cuts under each setting; the seed picks.
    let totals = power_cuts(
        test,
        |seed| {
            if seed % 2 == 0 {
                Synchronous::Full
            } else {
                Synchronous::Normal
            }
        },
        |synchronous| match synchronous {
            Synchronous::Full => full,
            _ => normal,
        },
    );
    assert!(
        totals.fates.torn_in_database > 0,
        "no cut tore a write to the database file"
    );
}

/// How the reads of a file with a torn page came out.
#[derive(Debug, Default)]
struct Reads {
    /// The checkpoint as written.
    intact: usize,
    /// `Error::Corrupt`: the envelope's checksum (or framing) caught the tear.
    corrupt: usize,
    /// Another error: SQLite found its own structures damaged (or the file did not open).
    refused: usize,
    /// Not found: the tear took the row out of SQLite's view (an older version of the
    /// page's header or cell pointers); what is found is still as written.
    missing: usize,
}

/// What a checkpoint reads as: its cursor, status and state.
type Read = (String, Status, Ledger);

/// Every session's checkpoints in a file whose WAL is checkpointed into it and gone, read
/// through a runner: the reference a torn file's reads are held to.
fn read_all(rt: &tokio::runtime::Runtime, path: &str) -> Vec<((String, u64), Read)> {
    let store = open(path, Synchronous::Full).expect("open");
    let runner = Runner::new(ledger::Workflow, store.clone());
    let mut all = Vec::new();
    for i in 0..SESSIONS {
        let id = session(i);
        for meta in rt.block_on(store.list(&id)).expect("list") {
            let snapshot = rt
                .block_on(runner.state_at(&id, meta.seq))
                .expect("read")
                .expect("listed");
            all.push((
                (id.clone(), meta.seq),
                (snapshot.node, snapshot.status, snapshot.state),
            ));
        }
    }
    drop(runner);
    rt.block_on(store.close()).expect("close");
    all
}

#[test]
fn a_torn_record_page_is_corrupt_never_misread() {
    let rt = runtime();
    let disk = Disk::new("torn-record-pages");
    let path = disk.path(DATABASE);
    // One session at a time, each run to its end and the store closed after it, which copies
    // the WAL into the database file: a checkpoint that rewrites the page the last rows went
    // to and adds pages. The file after each, and what every checkpoint then reads as.
    let mut files: Vec<Vec<u8>> = vec![Vec::new()];
    let mut references = vec![Vec::new()];
    for i in 0..SESSIONS {
        let store = open(&path, Synchronous::Full).expect("open");
        let runner = Runner::new(ledger::Workflow, store.clone());
        rt.block_on(drive(&runner, &session(i), declined(i)))
            .expect("drive");
        drop(runner);
        rt.block_on(store.close()).expect("close");
        assert!(
            disk.contents(&format!("{DATABASE}-wal")).is_none(),
            "closing left a WAL"
        );
        files.push(disk.contents(DATABASE).expect("the database file"));
        references.push(read_all(&rt, &path));
    }

    // The pages a checkpoint changed that hold checkpoint bytes (an envelope begins with its
    // magic, `GRCP`), each with the file before and after that checkpoint.
    let page_size = match u16::from_be_bytes([files[1][16], files[1][17]]) {
        1 => 65536,
        size => usize::from(size),
    };
    let page_of = |file: &[u8], page: usize| -> Vec<u8> {
        file.get(page * page_size..(page + 1) * page_size)
            .map_or_else(|| vec![0; page_size], <[u8]>::to_vec)
    };
    let pages: Vec<(usize, usize)> = (1..files.len())
        .flat_map(|after| {
            let (old, new) = (&files[after - 1], &files[after]);
            (0..new.len() / page_size)
                .filter(move |&page| {
                    let bytes = page_of(new, page);
                    page_of(old, page) != bytes && bytes.windows(4).any(|w| w == b"GRCP")
                })
                .map(move |page| (after, page))
        })
        .collect();
    assert!(!pages.is_empty(), "no checkpoint changed a record page");

    let test = "a_torn_record_page_is_corrupt_never_misread";
    let started = std::time::Instant::now();
    let mut reads = Reads::default();
    let seeds = seeds();
    for &seed in &seeds {
        let _reproducer = Reproducer { test, seed };
        let mut rng = fastrand::Rng::with_seed(seed);
        let (after, page) = pages[rng.usize(..pages.len())];
        let reference = &references[after];
        let want: std::collections::HashMap<_, _> = reference.iter().cloned().collect();
        // Each sector of the page new or old, some of each: the write of the page reached
        // the disk in part, and the WAL that held it is gone.
        let sectors = page_size / power::SECTOR;
        let mut new_sectors: Vec<bool> = (0..sectors).map(|_| rng.bool()).collect();
        let (one, other) = (rng.usize(0..sectors), rng.usize(1..sectors));
        new_sectors[one] = true;
        new_sectors[(one + other) % sectors] = false;
        let mut torn = files[after].clone();
        let before = page_of(&files[after - 1], page);
        for (sector, _) in new_sectors.iter().enumerate().filter(|(_, new)| !**new) {
            let at = page * page_size + sector * power::SECTOR;
            torn[at..at + power::SECTOR]
                .copy_from_slice(&before[sector * power::SECTOR..][..power::SECTOR]);
        }
        let disk = Disk::new(&format!("torn-{seed}"));
        disk.overwrite(DATABASE, torn);
        let path = disk.path(DATABASE);
        let Ok(store) = open(&path, Synchronous::Full) else {
            reads.refused += want.len();
            continue;
        };
        let runner = Runner::new(ledger::Workflow, store.clone());
        for ((id, seq), want) in reference {
            match rt.block_on(runner.state_at(id, *seq)) {
                Ok(Some(snapshot)) => {
                    let got = (snapshot.node, snapshot.status, snapshot.state);
                    assert!(
                        got == *want,
                        "{id}@{seq} misread with page {page} torn ({new_sectors:?})"
                    );
                    reads.intact += 1;
                }
                Ok(None) => reads.missing += 1,
                Err(Error::Corrupt { .. }) => reads.corrupt += 1,
                Err(_) => reads.refused += 1,
            }
        }
        // The latest checkpoint of each session, as a resume would load it: one of the
        // session's checkpoints as written, or an error.
        for i in 0..SESSIONS {
            let id = session(i);
            if let Ok(Some(latest)) = rt.block_on(runner.state(&id)) {
                let got = (latest.node, latest.status, latest.state);
                assert!(
                    want.get(&(id.clone(), latest.seq)) == Some(&got),
                    "{id}: its latest checkpoint misread with page {page} torn"
                );
            }
        }
        drop(runner);
        let _ = rt.block_on(store.close());
    }
    eprintln!(
        "{test}: {} torn pages ({} record pages to tear) in {:.1?}; reads: {reads:?}",
        seeds.len(),
        pages.len(),
        started.elapsed()
    );
    if seeds.len() >= 20 {
        assert!(
            reads.corrupt > 0,
            "no tear reached the envelope's checksum: the test covers nothing it guards"
        );
    }
}
