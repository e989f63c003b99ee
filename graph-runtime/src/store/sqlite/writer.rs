//! The writer thread: the one connection that writes, the [`Command`]s async callers send it,
//! and group commit (every queued command in one transaction, one fsync).

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::error::{Context, SqliteError, closed_error, corrupt, store_error};
use super::reader::ReaderPool;
use super::schema::{AUTO_VACUUM_INCREMENTAL, FileInfo, SCHEMA_VERSION};
use crate::error::StoreFault;
use crate::error::{Error, Result};
use crate::store::lease::{MAX_WAKE_DELAY, micros};
use crate::store::{
    Append, Claim, GraphVersion, Lease, Wake, from_unix_micros, status_code, unix_micros,
};

/// The most commands one transaction takes, so that one batch cannot grow without bound.
pub(super) const MAX_BATCH: usize = 512;
/// How long the writer keeps looking for work after a batch before it sleeps. A session that
/// checkpoints every step sends its next append a few microseconds after its reply; finding it
/// awake saves an OS wake-up of the writer thread, which costs more than this on a virtual
/// machine. The writer yields the CPU while it waits.
pub(super) const LINGER: Duration = Duration::from_micros(50);
/// How many free pages one incremental-vacuum transaction gives back (2 MiB of 8 KiB pages):
/// small enough that an append arriving meanwhile waits for a few milliseconds at most.
const VACUUM_SLICE_PAGES: u32 = 256;

/// SQLite's clock in microseconds since the Unix epoch (millisecond precision); one value per
/// statement. A macro, so that statements can be `concat!`-ed at compile time.
macro_rules! now_us {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    };
}

pub(super) type Reply<T> = oneshot::Sender<Result<T>>;

/// What async callers ask the writer thread to do.
pub(super) enum Command {
    Append {
        session: String,
        append: Append,
        reply: Reply<()>,
    },
    Prune {
        session: String,
        keep_last: u64,
        reply: Reply<u64>,
    },
    Delete {
        session: String,
        reply: Reply<bool>,
    },
    Claim {
        claim: Claim,
        reply: Reply<Vec<Lease>>,
    },
    Renew {
        lease: Lease,
        ttl: Duration,
        reply: Reply<Lease>,
    },
    Release {
        lease: Lease,
        reply: Reply<bool>,
    },
    RecordGraph {
        version: GraphVersion,
        reply: Reply<bool>,
    },
    /// See [`Store::record_failure`](crate::store::Store::record_failure).
    RecordFailure {
        session: String,
        seq: u64,
        failure: Vec<u8>,
        reply: Reply<bool>,
    },
    /// See [`Store::wake`](crate::store::Store::wake).
    Wake {
        session: String,
        seq: u64,
        reply: Reply<bool>,
    },
    /// `VACUUM` outside any transaction: runs alone, between batches.
    Compact {
        reply: Reply<()>,
    },
    /// Stop after the commands sent before this one; see
    /// [`SqliteStore::close`](super::SqliteStore::close).
    Close {
        reply: Reply<()>,
    },
}

impl Command {
    /// The caller dropped its future before the writer got to this command.
    fn is_abandoned(&self) -> bool {
        match self {
            Command::Append { reply, .. } => reply.is_closed(),
            Command::Prune { reply, .. } => reply.is_closed(),
            Command::Delete { reply, .. } => reply.is_closed(),
            // A claim nobody waits for would hold its sessions until the leases expire.
            Command::Claim { reply, .. } => reply.is_closed(),
            Command::Renew { reply, .. } => reply.is_closed(),
            Command::Release { reply, .. } => reply.is_closed(),
            Command::RecordGraph { reply, .. }
            | Command::RecordFailure { reply, .. }
            | Command::Wake { reply, .. } => reply.is_closed(),
            // Run even when nobody waits: a dropped `close` future still closes.
            Command::Compact { .. } | Command::Close { .. } => false,
        }
    }

    /// Runs alone, outside the group-commit transaction.
    fn is_solo(&self) -> bool {
        matches!(self, Command::Compact { .. } | Command::Close { .. })
    }

    fn fail(self, error: &Arc<SqliteError>) {
        self.fail_with(|| error.shared());
    }

    fn fail_with(self, error: impl Fn() -> Error) {
        // A caller that went away does not need its answer.
        match self {
            Command::Append { reply, .. } => drop(reply.send(Err(error()))),
            Command::Prune { reply, .. } => drop(reply.send(Err(error()))),
            Command::Delete { reply, .. } => drop(reply.send(Err(error()))),
            Command::Claim { reply, .. } => drop(reply.send(Err(error()))),
            Command::Renew { reply, .. } => drop(reply.send(Err(error()))),
            Command::Release { reply, .. } => drop(reply.send(Err(error()))),
            Command::RecordGraph { reply, .. }
            | Command::RecordFailure { reply, .. }
            | Command::Wake { reply, .. } => {
                drop(reply.send(Err(error())));
            }
            Command::Compact { reply } | Command::Close { reply } => {
                drop(reply.send(Err(error())));
            }
        }
    }
}

/// The next command for the writer: briefly looked for awake (see [`LINGER`]), then waited for
/// asleep. `None` once every sender is gone.
fn next_command(commands: &mut mpsc::Receiver<Command>) -> Option<Command> {
    let idle_since = Instant::now();
    loop {
        match commands.try_recv() {
            Ok(command) => return Some(command),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if idle_since.elapsed() < LINGER => {
                std::thread::yield_now();
            }
            // This thread is no async worker: blocking it is what it is for.
            Err(TryRecvError::Empty) => return commands.blocking_recv(),
        }
    }
}

/// A command that ran inside the open transaction; its reply waits for `COMMIT`.
enum Executed {
    Append(Reply<()>, Result<()>),
    Prune(Reply<u64>, Result<u64>),
    Delete(Reply<bool>, Result<bool>),
    Claim(Reply<Vec<Lease>>, Result<Vec<Lease>>),
    Renew(Reply<Lease>, Result<Lease>),
    Release(Reply<bool>, Result<bool>),
    RecordGraph(Reply<bool>, Result<bool>),
    RecordFailure(Reply<bool>, Result<bool>),
    Wake(Reply<bool>, Result<bool>),
}

impl Executed {
    fn failed(&self) -> bool {
        match self {
            Executed::Append(_, result) => result.is_err(),
            Executed::Prune(_, result) => result.is_err(),
            Executed::Delete(_, result) => result.is_err(),
            Executed::Claim(_, result) => result.is_err(),
            Executed::Renew(_, result) => result.is_err(),
            Executed::Release(_, result) => result.is_err(),
            Executed::RecordGraph(_, result)
            | Executed::RecordFailure(_, result)
            | Executed::Wake(_, result) => result.is_err(),
        }
    }

    /// An explicit prune or delete removed rows: worth giving their pages back. (Retention in
    /// `append` frees a page now and then, which the following appends reuse.)
    fn freed_pages(&self) -> bool {
        match self {
            Executed::Append(..)
            | Executed::Claim(..)
            | Executed::Renew(..)
            | Executed::Release(..)
            | Executed::RecordGraph(..)
            | Executed::RecordFailure(..)
            | Executed::Wake(..) => false,
            Executed::Prune(_, result) => matches!(result, Ok(n) if *n > 0),
            Executed::Delete(_, result) => matches!(result, Ok(true)),
        }
    }

    fn finish(self, commit: &Result<(), Arc<SqliteError>>) {
        fn answer<T>(reply: Reply<T>, result: Result<T>, commit: &Result<(), Arc<SqliteError>>) {
            let result = match commit {
                Ok(()) => result,
                Err(error) => Err(error.shared()),
            };
            // A caller that went away does not need its answer.
            let _ = reply.send(result);
        }
        match self {
            Executed::Append(reply, result) => answer(reply, result, commit),
            Executed::Prune(reply, result) => answer(reply, result, commit),
            Executed::Delete(reply, result) => answer(reply, result, commit),
            Executed::Claim(reply, result) => answer(reply, result, commit),
            Executed::Renew(reply, result) => answer(reply, result, commit),
            Executed::Release(reply, result) => answer(reply, result, commit),
            Executed::RecordGraph(reply, result)
            | Executed::RecordFailure(reply, result)
            | Executed::Wake(reply, result) => answer(reply, result, commit),
        }
    }
}

pub(super) struct Writer {
    pub(super) conn: Connection,
    context: Context,
    /// The file has `auto_vacuum = INCREMENTAL` (see [`FileInfo`]).
    incremental_vacuum: bool,
    /// Free pages may be waiting to be given back to the file system.
    vacuum_pending: bool,
    /// `PRAGMA data_version` when the schema version was last found right: until another
    /// connection (another store, another process) commits to the file, it stays the same,
    /// and so do the schema version and every session's row (see [`Writer::begin`]).
    checked_version: Cell<Option<i64>>,
    /// The session the last transaction of one append alone wrote to, as that transaction
    /// left it; valid while `checked_version` holds (see [`Head`]).
    known: RefCell<Option<Head>>,
    /// The head the current transaction's append leaves, kept in `known` once it commits.
    written: RefCell<Option<Head>>,
}

/// A session's row id, latest sequence number, lease epoch and status code, as
/// [`Writer::session`] reads them. A lone session checkpointing every step sends its appends
/// one at a time, each in a transaction of its own: the head its last append left is the head
/// its next append finds, unless another connection committed meanwhile, which `PRAGMA
/// data_version` tells. Keeping it saves reading it again (a lookup by name and a descent of
/// the checkpoint index: 6,600 of the 48,700 instructions of a W3 step).
#[derive(Debug)]
struct Head {
    session: String,
    id: i64,
    latest: u64,
    epoch: i64,
    status: i64,
}

/// What an append needs to know of its session's row before it writes (see
/// [`Writer::session`]): nothing but epoch 0 when the session does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct SessionRow {
    /// The row id.
    pub(super) id: Option<i64>,
    /// The latest checkpoint's sequence number.
    pub(super) latest: Option<u64>,
    /// The lease epoch.
    pub(super) epoch: i64,
    /// The status code the row records (`None`: none, on a damaged row).
    pub(super) status: Option<i64>,
}

impl Writer {
    pub(super) fn new(conn: Connection, context: Context, file: FileInfo) -> Self {
        Writer {
            conn,
            context,
            incremental_vacuum: file.incremental_vacuum,
            vacuum_pending: false,
            checked_version: Cell::new(None),
            known: RefCell::new(None),
            written: RefCell::new(None),
        }
    }

    pub(super) fn run(mut self, commands: &mut mpsc::Receiver<Command>, readers: &ReaderPool) {
        let mut solo = None;
        let close = loop {
            // Ends when every `SqliteStore` handle is gone and the queue is drained, or at
            // `close`.
            let Some(first) = solo.take().or_else(|| self.next_command(commands)) else {
                break None;
            };
            match first {
                Command::Close { reply } => break Some(reply),
                Command::Compact { reply } => {
                    let _ = reply.send(self.compact());
                    continue;
                }
                _ => {}
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) if command.is_solo() => {
                        solo = Some(command);
                        break;
                    }
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            if self.commit_batch(batch) && self.incremental_vacuum {
                self.vacuum_pending = true;
            }
        };
        if close.is_some() {
            // Whatever other clones sent after `close`: refused, with the typed error.
            let label = self.context.label.clone();
            while let Ok(command) = commands.try_recv() {
                command.fail_with(|| closed_error(&label));
            }
        }
        // Give back what deletes freed before the file is left alone.
        while self.vacuum_pending {
            self.vacuum_slice();
        }
        // The last connection to close checkpoints the WAL into the file: let that be this
        // thread's, not a read connection dropped on some other thread.
        readers.close_idle();
        let result = match close {
            Some(_) => self.shut_down(),
            None => Ok(()),
        };
        if let Some(reply) = close {
            let _ = reply.send(result);
        }
    }

    /// The next command: between commands, give free pages back in slices, as long as
    /// nothing is waiting.
    fn next_command(&mut self, commands: &mut mpsc::Receiver<Command>) -> Option<Command> {
        while self.vacuum_pending {
            match commands.try_recv() {
                Ok(command) => return Some(command),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => self.vacuum_slice(),
            }
        }
        next_command(commands)
    }

    /// Gives up to [`VACUUM_SLICE_PAGES`] free pages back to the file system, in a transaction
    /// of its own (short enough that an append arriving meanwhile waits for one slice only).
    fn vacuum_slice(&mut self) {
        // Stepped to the end: each step of this pragma frees one page.
        let result = self
            .conn
            .execute_batch(&format!("PRAGMA incremental_vacuum({VACUUM_SLICE_PAGES})"))
            .and_then(|()| {
                self.conn
                    .prepare_cached("PRAGMA freelist_count")?
                    .query_row([], |row| row.get::<_, i64>(0))
            });
        match result {
            Ok(free) => self.vacuum_pending = free > 0,
            Err(error) => {
                // Not worth failing anything for: the pages stay free and get reused.
                tracing::warn!(%error, file = %self.context.label, "incremental vacuum failed");
                self.vacuum_pending = false;
            }
        }
    }

    /// `VACUUM`: rewrites the whole file without free pages, switching a release-1 file to
    /// incremental auto-vacuum on the way, then empties the WAL.
    fn compact(&mut self) -> Result<()> {
        self.forget();
        self.exec("PRAGMA auto_vacuum = INCREMENTAL")
            .and_then(|()| self.conn.execute_batch("VACUUM"))
            .map_err(|e| self.context.error("compact the file (VACUUM)", e))?;
        let auto_vacuum: i64 = self
            .conn
            .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
            .map_err(|e| self.context.error("read `auto_vacuum`", e))?;
        self.incremental_vacuum = auto_vacuum == AUTO_VACUUM_INCREMENTAL;
        self.vacuum_pending = false;
        // VACUUM wrote the whole file into the WAL; copy it back and cut the WAL to nothing.
        self.checkpoint_wal("compact the file")
    }

    /// Copies the WAL into the database file and truncates it to zero bytes.
    fn checkpoint_wal(&self, action: &str) -> Result<()> {
        let (busy, _log, _done): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(|e| self.context.error(action, e))?;
        if busy != 0 {
            return Err(SqliteError {
                message: format!(
                    "could not {action} in `{}`: another connection or process kept reading or \
                     writing the file for longer than the busy timeout, so the WAL could not be \
                     copied into it in full; the `-wal` file still holds committed checkpoints \
                     and must stay next to the database",
                    self.context.label
                ),
                sqlite: None,
                fault: StoreFault::Busy,
            }
            .into_error());
        }
        Ok(())
    }

    /// The end of `close`: empty the WAL into the file, then close the connection.
    fn shut_down(self) -> Result<()> {
        let checkpoint = self.checkpoint_wal("close the store");
        let context = self.context;
        let closed = self
            .conn
            .close()
            .map_err(|(_, e)| context.error("close the store", e));
        checkpoint.and(closed)
    }

    /// Runs every command of `batch` in one transaction, then answers each caller. Returns
    /// whether a committed command freed pages (see [`Executed::freed_pages`]).
    pub(super) fn commit_batch(&self, batch: Vec<Command>) -> bool {
        let batch: Vec<Command> = batch.into_iter().filter(|c| !c.is_abandoned()).collect();
        if batch.is_empty() {
            return false;
        }
        tracing::trace!(commands = batch.len(), "sqlite group commit");
        // Only a transaction of one append alone reads and updates the known head: a batch's
        // later commands must see its earlier ones, and other commands change sessions in
        // other ways (a claim raises epochs, a delete removes the row).
        let lone_append = matches!(batch.as_slice(), [Command::Append { .. }]);
        if !lone_append {
            self.forget();
        }
        self.written.take();
        if let Err(error) = self.begin() {
            let error = Arc::new(error);
            self.rollback();
            batch.into_iter().for_each(|c| c.fail(&error));
            return false;
        }
        if batch.len() == 1 {
            // Alone in its transaction, a command needs no savepoint: on failure the whole
            // transaction is rolled back and the caller gets the command's own error. This is
            // the common case of one session checkpointing on its own; two statements less.
            let Some(command) = batch.into_iter().next() else {
                return false;
            };
            let (done, broken) = self.execute(command, false);
            let commit = if done.failed() || broken.is_some() {
                self.rollback();
                Ok(())
            } else {
                self.exec("COMMIT")
                    .map_err(|e| Arc::new(self.context.sqlite_error("commit checkpoints", e)))
            };
            if commit.is_err() {
                self.rollback();
            }
            // What the append wrote is the session's head only if it committed.
            let written = self.written.take();
            *self.known.borrow_mut() = match (&commit, done.failed() || broken.is_some()) {
                (Ok(()), false) => written,
                _ => None,
            };
            let freed = commit.is_ok() && done.freed_pages();
            done.finish(&commit);
            return freed;
        }
        let mut executed = Vec::with_capacity(batch.len());
        let mut batch = batch.into_iter();
        let mut broken = None;
        for command in batch.by_ref() {
            let (done, failure) = self.execute(command, true);
            executed.push(done);
            if failure.is_some() {
                broken = failure;
                break;
            }
        }
        let commit = match broken {
            None => self
                .exec("COMMIT")
                .map_err(|e| Arc::new(self.context.sqlite_error("commit checkpoints", e))),
            Some(error) => Err(Arc::new(SqliteError {
                message: format!(
                    "{}; the whole group commit that held this command was rolled back",
                    error.message
                ),
                sqlite: error.sqlite,
                fault: error.fault,
            })),
        };
        if let Err(error) = &commit {
            tracing::warn!(%error, "sqlite group commit failed");
            self.rollback();
            batch.for_each(|c| c.fail(error));
        }
        let freed = commit.is_ok() && executed.iter().any(Executed::freed_pages);
        for done in executed {
            done.finish(&commit);
        }
        freed
    }

    /// `BEGIN IMMEDIATE`, then a look at the schema version: a newer release may have migrated
    /// the file while this one runs, and then this one must stop writing.
    ///
    /// Both only while another connection may have committed since the last look: `PRAGMA
    /// data_version` changes exactly then (this connection's own commits leave it as it is),
    /// and then whatever this writer knows about sessions is forgotten too.
    fn begin(&self) -> Result<(), SqliteError> {
        self.exec("BEGIN IMMEDIATE")
            .map_err(|e| self.context.sqlite_error("start a write transaction", e))?;
        let data_version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(|e| self.context.sqlite_error("read the data version", e))?;
        if self.checked_version.get() == Some(data_version) {
            return Ok(());
        }
        self.forget();
        let version: i32 = self
            .conn
            .prepare_cached("PRAGMA user_version")
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(|e| self.context.sqlite_error("read the schema version", e))?;
        if version != SCHEMA_VERSION {
            return Err(SqliteError {
                message: format!(
                    "cannot write to `{}`: it now has checkpoint schema version {version}, not \
                     {SCHEMA_VERSION} (migrated by another release of graph-runtime?)",
                    self.context.label
                ),
                sqlite: None,
                fault: StoreFault::Failed,
            });
        }
        self.checked_version.set(Some(data_version));
        Ok(())
    }

    /// Forgets the schema check and the known head: the next transaction reads both again.
    fn forget(&self) {
        self.checked_version.set(None);
        self.known.take();
    }

    /// Runs one command; its reply waits for the transaction's end. The second value is set
    /// when the transaction can no longer be committed. `isolated`: inside its own savepoint,
    /// so that its failure undoes only its changes (needed when others share the transaction).
    fn execute(&self, command: Command, isolated: bool) -> (Executed, Option<SqliteError>) {
        match command {
            Command::Append {
                session,
                append,
                reply,
            } => {
                let (result, broken) =
                    self.maybe_in_savepoint(isolated, |w| w.append(&session, &append));
                (Executed::Append(reply, result), broken)
            }
            Command::Prune {
                session,
                keep_last,
                reply,
            } => {
                let (result, broken) =
                    self.maybe_in_savepoint(isolated, |w| w.prune(&session, keep_last));
                (Executed::Prune(reply, result), broken)
            }
            Command::Delete { session, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.delete(&session));
                (Executed::Delete(reply, result), broken)
            }
            Command::Claim { claim, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.claim(&claim));
                (Executed::Claim(reply, result), broken)
            }
            Command::Renew { lease, ttl, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.renew(&lease, ttl));
                (Executed::Renew(reply, result), broken)
            }
            Command::Release { lease, reply } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.release(&lease));
                (Executed::Release(reply, result), broken)
            }
            Command::RecordGraph { version, reply } => {
                let (result, broken) =
                    self.maybe_in_savepoint(isolated, |w| w.record_graph(&version));
                (Executed::RecordGraph(reply, result), broken)
            }
            Command::RecordFailure {
                session,
                seq,
                failure,
                reply,
            } => {
                let (result, broken) = self
                    .maybe_in_savepoint(isolated, |w| w.record_failure(&session, seq, &failure));
                (Executed::RecordFailure(reply, result), broken)
            }
            Command::Wake {
                session,
                seq,
                reply,
            } => {
                let (result, broken) = self.maybe_in_savepoint(isolated, |w| w.wake(&session, seq));
                (Executed::Wake(reply, result), broken)
            }
            // `run` never puts these in a batch; answer rather than panic if that changes.
            Command::Compact { reply } | Command::Close { reply } => {
                let error = "a compact or close command reached a group commit".to_owned();
                let result = Err(store_error(error, None));
                (Executed::Append(reply, result), None)
            }
        }
    }

    fn maybe_in_savepoint<T>(
        &self,
        isolated: bool,
        command: impl FnOnce(&Self) -> Result<T>,
    ) -> (Result<T>, Option<SqliteError>) {
        if isolated {
            self.in_savepoint(command)
        } else {
            (command(self), None)
        }
    }

    /// Runs `command` inside its own savepoint, so that its failure undoes its changes only.
    fn in_savepoint<T>(
        &self,
        command: impl FnOnce(&Self) -> Result<T>,
    ) -> (Result<T>, Option<SqliteError>) {
        if let Err(error) = self.exec("SAVEPOINT command") {
            let error = self.context.sqlite_error("open a savepoint", error);
            let result = SqliteError {
                message: error.message.clone(),
                sqlite: None,
                fault: error.fault,
            };
            return (Err(result.into_error()), Some(error));
        }
        let result = command(self);
        let end = match &result {
            Ok(_) => self.exec("RELEASE command"),
            // Some SQLite errors (I/O, full disk) roll back the whole transaction by themselves.
            Err(error) if self.conn.is_autocommit() => {
                let message = format!("SQLite rolled back the transaction after: {error}");
                let fault = error.store_fault().unwrap_or(StoreFault::Failed);
                return (
                    result,
                    Some(SqliteError {
                        message,
                        sqlite: None,
                        fault,
                    }),
                );
            }
            Err(_) => self
                .exec("ROLLBACK TO command")
                .and_then(|()| self.exec("RELEASE command")),
        };
        match end {
            Ok(()) => (result, None),
            Err(error) => (
                result,
                Some(self.context.sqlite_error("close a savepoint", error)),
            ),
        }
    }

    fn append(&self, session: &str, append: &Append) -> Result<()> {
        let Append {
            expected,
            checkpoint,
            keep_last,
            fence,
            wake,
            workflow,
            state_schema,
            audit,
            waiting: _,
            parent,
        } = append;
        let failed = |e| self.context.error("append a checkpoint", e);
        let seq = i64::try_from(checkpoint.seq).map_err(|_| {
            store_error(
                format!(
                    "sequence number {} of session `{session}` is above {}, the largest integer \
                     SQLite stores",
                    checkpoint.seq,
                    i64::MAX
                ),
                None,
            )
        })?;
        let depends_on = checkpoint
            .depends_on
            .map(|d| {
                i64::try_from(d).map_err(|_| {
                    store_error(
                        format!(
                            "checkpoint {} of session `{session}` depends on sequence number \
                             {d}, above {}, the largest integer SQLite stores",
                            checkpoint.seq,
                            i64::MAX
                        ),
                        None,
                    )
                })
            })
            .transpose()?;
        let known = self
            .known
            .borrow()
            .as_ref()
            .filter(|head| head.session == session)
            .map(|head| SessionRow {
                id: Some(head.id),
                latest: Some(head.latest),
                epoch: head.epoch,
                status: Some(head.status),
            });
        let row = match known {
            Some(row) => row,
            None => self.session(session)?,
        };
        let (session_id, found, epoch) = (row.id, row.latest, row.epoch);
        // The fence first: a writer whose lease is lost must stop, whatever its seq.
        if let Some(fence) = *fence
            && (session_id.is_none() || i64::try_from(fence).ok() != Some(epoch))
        {
            return Err(Error::LeaseLost {
                session: session.to_owned(),
                epoch: fence,
            });
        }
        let conflict = |found| Error::Conflict {
            session: session.to_owned(),
            expected: *expected,
            found,
        };
        // The same rules as `MemoryStore`: the latest must be `expected`, and a new sequence
        // number must be above it.
        match found {
            Some(latest) if *expected != Some(latest) || checkpoint.seq <= latest => {
                return Err(conflict(found));
            }
            None if expected.is_some() => return Err(conflict(None)),
            _ => {}
        }
        // The integer code the envelope and every store share.
        let (status, wait_node) = (checkpoint.status.code(), checkpoint.status.waiting_node());
        let created_at = unix_micros(checkpoint.created_at);
        // The session's row keeps what a query filters on by index and what no checkpoint
        // row keeps: the latest status (rewritten only when it changes, which a session
        // running from step to step never does: its appends write no row but the
        // checkpoint's) and the first checkpoint's time. The rest of a session's record is
        // its latest checkpoint row's.
        let session_id = match session_id {
            Some(id) => {
                if row.status != Some(i64::from(status)) {
                    self.conn
                        .prepare_cached("UPDATE sessions SET status = ?2 WHERE id = ?1")
                        .and_then(|mut s| s.execute(params![id, status]))
                        .map_err(failed)?;
                }
                id
            }
            None => {
                // A child only under a parent that exists, in this transaction: a delete of the
                // parent (which takes its children) is serialized with it by the one writer.
                if let Some(parent) = parent {
                    let exists = self
                        .conn
                        .prepare_cached("SELECT 1 FROM sessions WHERE name = ?1")
                        .and_then(|mut s| s.exists([parent]))
                        .map_err(failed)?;
                    if !exists {
                        return Err(Error::SessionNotFound(parent.clone()));
                    }
                }
                self.conn
                    .prepare_cached(
                        "INSERT INTO sessions (name, status, created_at_us, parent) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| s.execute(params![session, status, created_at, parent]))
                    .map_err(failed)?;
                self.conn.last_insert_rowid()
            }
        };
        let audit = audit.as_ref().map(|audit| audit.encode());
        self.conn
            .prepare_cached(
                "INSERT INTO checkpoints \
                 (session_id, seq, node, status, wait_node, created_at_us, bytes, depends_on, \
                  audit) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    session_id,
                    seq,
                    &*checkpoint.node,
                    status,
                    wait_node,
                    created_at,
                    &checkpoint.bytes,
                    depends_on,
                    audit,
                ])
            })
            .map_err(failed)?;
        if let Some(keep_last) = keep_last {
            self.prune_session(session_id, *keep_last).map_err(failed)?;
        }
        self.record_waits(session, session_id, row, append)
            .map_err(failed)?;
        // Retention and the session update below change neither the latest sequence number
        // nor the epoch.
        *self.written.borrow_mut() = Some(Head {
            session: session.to_owned(),
            id: session_id,
            latest: checkpoint.seq,
            epoch,
            status: i64::from(status),
        });
        if wake.is_some() || workflow.is_some() || state_schema.is_some() {
            // `?2`: whether to set the wake time; `?3`: its delay (NULL: never). Hashes and
            // fingerprints are kept as their bits in a signed integer.
            let (workflow, graph_hash) = match workflow {
                Some((name, hash)) => (Some(name.as_str()), Some(*hash as i64)),
                None => (None, None),
            };
            let state_schema = state_schema.map(|fingerprint| fingerprint as i64);
            self.conn
                .prepare_cached(concat!(
                    "UPDATE sessions SET \
                     wake_at_us = CASE WHEN ?2 THEN ",
                    now_us!(),
                    " + ?3 ELSE wake_at_us END, \
                     workflow = coalesce(?4, workflow), \
                     graph_hash = CASE WHEN ?4 IS NULL THEN graph_hash ELSE ?5 END, \
                     state_schema = coalesce(?6, state_schema) \
                     WHERE id = ?1"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        session_id,
                        wake.is_some(),
                        wake.and_then(Wake::delay_micros),
                        workflow,
                        graph_hash,
                        state_schema,
                    ])
                })
                .map_err(failed)?;
        }
        Ok(())
    }

    /// Keeps the nodes the session waits at after `append` in `session_waits`: the rows of
    /// its previous status go (only a row that recorded a waiting status, or none, can have
    /// any), and one row per node it waits at now comes (none unless it waits). A session
    /// that runs from step to step touches no row of the table.
    fn record_waits(
        &self,
        session: &str,
        session_id: i64,
        before: SessionRow,
        append: &Append,
    ) -> rusqlite::Result<()> {
        let waited = before.id.is_some()
            && before
                .status
                .is_none_or(|code| code == i64::from(status_code::WAITING));
        if waited {
            self.conn
                .prepare_cached("DELETE FROM session_waits WHERE session_id = ?1")?
                .execute([session_id])?;
        }
        let waits = append.recorded_waits();
        if !waits.is_empty() {
            let mut insert = self.conn.prepare_cached(
                "INSERT OR REPLACE INTO session_waits (node, name, session_id) \
                 VALUES (?1, ?2, ?3)",
            )?;
            for node in waits {
                insert.execute(params![node, session, session_id])?;
            }
        }
        Ok(())
    }

    /// See [`Store::record_graph`](crate::store::Store::record_graph): kept unless that
    /// workflow and hash are. The file lock serializes it with every other process's.
    fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        self.conn
            .prepare_cached(
                "INSERT INTO graph_versions (workflow, graph_hash, description, recorded_at_us) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &version.workflow,
                    version.graph_hash as i64,
                    &version.description,
                    unix_micros(version.recorded_at),
                ])
            })
            .map(|inserted| inserted > 0)
            .map_err(|e| self.context.error("record a graph version", e))
    }

    /// See [`Store::record_failure`](crate::store::Store::record_failure): the failure on
    /// checkpoint `seq`'s row if it is the session's latest, and `failed` as the session's
    /// indexed status (its next append, whose status differs, rewrites it).
    fn record_failure(&self, session: &str, seq: u64, failure: &[u8]) -> Result<bool> {
        let failed = |e| self.context.error("record a failure", e);
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(false);
        };
        let kept = self
            .conn
            .prepare_cached(
                "UPDATE checkpoints SET failure = ?3 \
                 WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) AND seq = ?2 \
                 AND seq = (SELECT max(seq) FROM checkpoints \
                            WHERE session_id = (SELECT id FROM sessions WHERE name = ?1))",
            )
            .and_then(|mut s| s.execute(params![session, seq, failure]))
            .map_err(failed)?;
        if kept == 0 {
            return Ok(false);
        }
        self.conn
            .prepare_cached("UPDATE sessions SET status = ?2 WHERE name = ?1")
            .and_then(|mut s| s.execute(params![session, i64::from(status_code::FAILED)]))
            .map_err(failed)?;
        Ok(true)
    }

    /// See [`Store::wake`](crate::store::Store::wake): the wake time becomes SQLite's now if
    /// the session's latest checkpoint is `seq` and waits.
    fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        let Ok(seq) = i64::try_from(seq) else {
            return Ok(false);
        };
        self.conn
            .prepare_cached(concat!(
                "UPDATE sessions SET wake_at_us = ",
                now_us!(),
                " WHERE name = ?1 AND EXISTS (SELECT 1 FROM checkpoints c \
                     WHERE c.session_id = sessions.id AND c.seq = ?2 AND c.status = ?3 \
                     AND c.seq = (SELECT max(seq) FROM checkpoints \
                                  WHERE session_id = sessions.id))"
            ))
            .and_then(|mut s| s.execute(params![session, seq, i64::from(status_code::WAITING)]))
            .map(|woken| woken > 0)
            .map_err(|e| self.context.error("wake a session", e))
    }

    /// See [`Store::claim`](crate::store::Store::claim): one `UPDATE … RETURNING` per listed
    /// workflow and graph hash, on one reading of SQLite's clock.
    fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let failed = |e| self.context.error("claim sessions", e);
        let now: i64 = self
            .conn
            .prepare_cached(concat!("SELECT ", now_us!()))
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(failed)?;
        let expires = now.saturating_add(micros(claim.ttl.min(MAX_WAKE_DELAY)));
        let expires_at = from_unix_micros(expires).unwrap_or(SystemTime::UNIX_EPOCH);
        let mut leases = Vec::new();
        for (workflow, graph_hash) in claim.pairs() {
            let remaining = claim.limit.saturating_sub(leases.len());
            if remaining == 0 {
                break;
            }
            let mut statement = self
                .conn
                .prepare_cached(
                    "UPDATE sessions SET lease_owner = ?1, lease_epoch = lease_epoch + 1, \
                     lease_expires_us = ?2 \
                     WHERE id IN (SELECT id FROM sessions \
                         WHERE workflow = ?3 AND graph_hash = ?4 AND wake_at_us <= ?5 \
                         AND (lease_owner IS NULL OR lease_expires_us <= ?5) \
                         ORDER BY wake_at_us LIMIT ?6) \
                     RETURNING name, lease_epoch",
                )
                .map_err(failed)?;
            let limit = i64::try_from(remaining).unwrap_or(i64::MAX);
            let mut rows = statement
                .query(params![
                    &claim.owner,
                    expires,
                    workflow,
                    graph_hash as i64,
                    now,
                    limit
                ])
                .map_err(failed)?;
            while let Some(row) = rows.next().map_err(failed)? {
                let session: String = row.get(0).map_err(failed)?;
                let epoch: i64 = row.get(1).map_err(failed)?;
                let epoch = u64::try_from(epoch)
                    .map_err(|_| corrupt(&session, 0, format!("negative lease epoch {epoch}")))?;
                leases.push(Lease {
                    session,
                    epoch,
                    owner: claim.owner.clone(),
                    workflow: workflow.to_owned(),
                    graph_hash,
                    expires_at,
                });
            }
        }
        Ok(leases)
    }

    /// See [`Store::renew`](crate::store::Store::renew).
    fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let failed = |e| self.context.error("renew a lease", e);
        let lost = || Error::LeaseLost {
            session: lease.session.clone(),
            epoch: lease.epoch,
        };
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Err(lost());
        };
        let expires: Option<i64> = self
            .conn
            .prepare_cached(concat!(
                "UPDATE sessions SET lease_expires_us = ",
                now_us!(),
                " + ?4 WHERE name = ?1 AND lease_owner = ?2 AND lease_epoch = ?3 \
                 RETURNING lease_expires_us"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params![
                        &lease.session,
                        &lease.owner,
                        epoch,
                        micros(ttl.min(MAX_WAKE_DELAY))
                    ],
                    |row| row.get(0),
                )
            })
            .optional()
            .map_err(failed)?;
        let expires = expires.ok_or_else(lost)?;
        Ok(Lease {
            expires_at: from_unix_micros(expires).unwrap_or(SystemTime::UNIX_EPOCH),
            ..lease.clone()
        })
    }

    /// See [`Store::release`](crate::store::Store::release).
    fn release(&self, lease: &Lease) -> Result<bool> {
        let Ok(epoch) = i64::try_from(lease.epoch) else {
            return Ok(false);
        };
        self.conn
            .prepare_cached(
                "UPDATE sessions SET lease_owner = NULL, lease_expires_us = NULL \
                 WHERE name = ?1 AND lease_owner = ?2 AND lease_epoch = ?3",
            )
            .and_then(|mut s| s.execute(params![&lease.session, &lease.owner, epoch]))
            .map(|released| released > 0)
            .map_err(|e| self.context.error("release a lease", e))
    }

    fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        let Some(session_id) = self.session(session)?.id else {
            return Ok(0);
        };
        self.prune_session(session_id, keep_last)
            .map_err(|e| self.context.error("prune checkpoints", e))
    }

    /// Removes all but the newest `keep_last` checkpoints (never the newest one), except those
    /// a kept checkpoint depends on: everything from the smallest of the oldest kept `seq` and
    /// the kept rows' `depends_on` stays (the rule of `Store::prune`).
    fn prune_session(&self, session_id: i64, keep_last: u64) -> rusqlite::Result<u64> {
        let keep = i64::try_from(keep_last.max(1)).unwrap_or(i64::MAX);
        // `kept` walks the (session_id, seq) index backwards over the kept window only. With no
        // kept rows (no session) the bound is NULL and nothing matches.
        self.conn
            .prepare_cached(
                "WITH kept AS (SELECT seq, depends_on FROM checkpoints WHERE session_id = ?1 \
                               ORDER BY seq DESC LIMIT ?2) \
                 DELETE FROM checkpoints WHERE session_id = ?1 AND seq < (\
                     SELECT min(min(seq), coalesce(min(depends_on), min(seq))) FROM kept)",
            )?
            .execute(params![session_id, keep])
            .map(|removed| removed as u64)
    }

    /// Deletes the session and every session below it (children by their `parent`, theirs,
    /// and so on: `UNION` stops at a name seen before, should records name each other).
    fn delete(&self, session: &str) -> Result<bool> {
        let failed = |e| self.context.error("delete a session", e);
        // Each row: a session's id, and whether it is `session` itself.
        let rows: Vec<(i64, bool)> = self
            .conn
            .prepare_cached(
                "WITH RECURSIVE doomed (name) AS (\
                     VALUES (?1) \
                     UNION SELECT s.name FROM sessions s JOIN doomed d ON s.parent = d.name) \
                 SELECT s.id, s.name = ?1 FROM sessions s JOIN doomed d ON s.name = d.name",
            )
            .and_then(|mut s| {
                s.query_map([session], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(failed)?;
        let existed = rows.iter().any(|&(_, own)| own);
        for (session_id, _) in rows {
            for statement in [
                "DELETE FROM checkpoints WHERE session_id = ?1",
                "DELETE FROM session_waits WHERE session_id = ?1",
                "DELETE FROM sessions WHERE id = ?1",
            ] {
                self.conn
                    .prepare_cached(statement)
                    .and_then(|mut s| s.execute([session_id]))
                    .map_err(failed)?;
            }
        }
        Ok(existed)
    }

    /// The session's row id, latest sequence number, lease epoch and status code, as this
    /// transaction sees them (epoch 0 when there is no session). The latest sequence number
    /// is the newest checkpoint row's: the compare-and-swap trusts the checkpoints, not the
    /// copy in the session's row.
    pub(super) fn session(&self, session: &str) -> Result<SessionRow> {
        let row: Option<(i64, Option<i64>, i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT id, (SELECT seq FROM checkpoints WHERE session_id = sessions.id \
                 ORDER BY seq DESC LIMIT 1), lease_epoch, status FROM sessions WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row([session], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
            })
            .optional()
            .map_err(|e| self.context.error("read the latest sequence number", e))?;
        let Some((id, latest, epoch, status)) = row else {
            return Ok(SessionRow::default());
        };
        let latest = latest
            .map(|seq| {
                u64::try_from(seq).map_err(|_| {
                    corrupt(
                        session,
                        0,
                        format!("negative sequence number {seq} in the store"),
                    )
                })
            })
            .transpose()?;
        Ok(SessionRow {
            id: Some(id),
            latest,
            epoch,
            status,
        })
    }

    fn exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.conn.prepare_cached(sql)?.execute([]).map(drop)
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            // Nothing more to do if even this fails: the next BEGIN reports the problem.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
