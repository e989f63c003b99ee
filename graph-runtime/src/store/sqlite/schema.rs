//! The file: its schema and migrations, the marks that say it is ours (`application_id`,
//! `user_version`), and opening a connection and preparing the file (WAL, page size,
//! auto-vacuum) before the store uses it.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Synchronous;
use super::error::Context;
use crate::error::Result;
use crate::error::StoreFault;

/// `PRAGMA application_id` of our files: "GRCP", as in the checkpoint envelope's magic.
const APPLICATION_ID: i32 = 0x4752_4350;
/// `PRAGMA user_version`: the schema this release reads and writes.
pub(super) const SCHEMA_VERSION: i32 = 6;
/// The page size of new files (see the docs of the `sqlite` module).
const PAGE_SIZE: u32 = 8192;
/// `PRAGMA journal_size_limit`: the size the WAL file is truncated back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// `PRAGMA auto_vacuum` of a file whose free pages can be released with `incremental_vacuum`.
pub(super) const AUTO_VACUUM_INCREMENTAL: i64 = 2;

const SCHEMA: &str = "
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        workflow TEXT,
        graph_hash INTEGER,
        wake_at_us INTEGER,
        lease_owner TEXT,
        lease_epoch INTEGER NOT NULL DEFAULT 0,
        lease_expires_us INTEGER,
        state_schema INTEGER,
        status INTEGER,
        created_at_us INTEGER,
        parent TEXT
    );
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;
    CREATE INDEX sessions_by_status ON sessions (status, name);
    CREATE INDEX sessions_by_parent ON sessions (parent, name) WHERE parent IS NOT NULL;
    CREATE TABLE session_waits (
        node TEXT NOT NULL,
        name TEXT NOT NULL,
        session_id INTEGER NOT NULL,
        PRIMARY KEY (node, name)
    ) WITHOUT ROWID;
    CREATE INDEX session_waits_by_session ON session_waits (session_id);
    CREATE TABLE graph_versions (
        workflow TEXT NOT NULL,
        graph_hash INTEGER NOT NULL,
        description TEXT NOT NULL,
        recorded_at_us INTEGER NOT NULL,
        PRIMARY KEY (workflow, graph_hash)
    ) WITHOUT ROWID;
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        node TEXT NOT NULL,
        status INTEGER NOT NULL,
        wait_node TEXT,
        created_at_us INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        depends_on INTEGER,
        audit BLOB,
        failure BLOB
    );
    CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
";

/// Version 1 → 2: incremental checkpoints name the checkpoint they depend on. Adding a
/// nullable column only rewrites the table's definition, not its rows, so the migration is
/// instant on a file of any size; version-1 rows read back as self-contained (`NULL`).
const MIGRATE_1_TO_2: &str = "ALTER TABLE checkpoints ADD COLUMN depends_on INTEGER;";

/// Version 2 → 3: the lease columns of `sessions`, nullable or with a constant default, so
/// again only the table's definition changes. Sessions of earlier files have no workflow and
/// no wake time: no claim takes them until a runner writes to them with one.
const MIGRATE_2_TO_3: &str = "
    ALTER TABLE sessions ADD COLUMN workflow TEXT;
    ALTER TABLE sessions ADD COLUMN graph_hash INTEGER;
    ALTER TABLE sessions ADD COLUMN wake_at_us INTEGER;
    ALTER TABLE sessions ADD COLUMN lease_owner TEXT;
    ALTER TABLE sessions ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN lease_expires_us INTEGER;
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;";

/// Version 3 → 4: each graph version's canonical description, kept once per workflow and
/// hash, and the state schema fingerprint of each session's latest checkpoint. A nullable
/// column and a new table: instant again. Sessions of earlier files have no recorded schema
/// (`NULL`) until a runner writes to them with one.
const MIGRATE_3_TO_4: &str = "
    ALTER TABLE sessions ADD COLUMN state_schema INTEGER;
    CREATE TABLE graph_versions (
        workflow TEXT NOT NULL,
        graph_hash INTEGER NOT NULL,
        description TEXT NOT NULL,
        recorded_at_us INTEGER NOT NULL,
        PRIMARY KEY (workflow, graph_hash)
    ) WITHOUT ROWID;";

/// Version 4 → 5: what `Store::sessions` answers from an index, and the audit record of a
/// checkpoint. Each session's row gets its latest checkpoint's status (the indexed copy a
/// status filter reads; the record itself comes from the latest checkpoint row) and the time
/// of its first checkpoint, backfilled here from the checkpoint rows (the oldest kept one
/// stands for the first); the nodes a waiting session waits at are rows of `session_waits`,
/// keyed by node and then name so that the sessions waiting at a node come out of one range
/// of its primary key in the order of their ids. Unlike the earlier steps this one rewrites
/// every session's row, once.
const MIGRATE_4_TO_5: &str = "
    ALTER TABLE sessions ADD COLUMN status INTEGER;
    ALTER TABLE sessions ADD COLUMN created_at_us INTEGER;
    ALTER TABLE checkpoints ADD COLUMN audit BLOB;
    ALTER TABLE checkpoints ADD COLUMN failure BLOB;
    UPDATE sessions SET
        status = (
            SELECT c.status FROM checkpoints c
            WHERE c.session_id = sessions.id ORDER BY c.seq DESC LIMIT 1),
        created_at_us = (
            SELECT c.created_at_us FROM checkpoints c
            WHERE c.session_id = sessions.id ORDER BY c.seq LIMIT 1);
    CREATE INDEX sessions_by_status ON sessions (status, name);
    CREATE TABLE session_waits (
        node TEXT NOT NULL,
        name TEXT NOT NULL,
        session_id INTEGER NOT NULL,
        PRIMARY KEY (node, name)
    ) WITHOUT ROWID;
    INSERT INTO session_waits (node, name, session_id)
        SELECT c.wait_node, s.name, s.id FROM sessions s JOIN checkpoints c
        ON c.id = (SELECT id FROM checkpoints WHERE session_id = s.id ORDER BY seq DESC LIMIT 1)
        WHERE c.status = 1 AND c.wait_node IS NOT NULL;
    CREATE INDEX session_waits_by_session ON session_waits (session_id);";

/// Version 5 → 6: the session a child session belongs to (`Append::parent`), and an index
/// that finds a parent's children in the order of their names (only child sessions have an
/// entry). A nullable column: instant; sessions of earlier files have no parent.
const MIGRATE_5_TO_6: &str = "
    ALTER TABLE sessions ADD COLUMN parent TEXT;
    CREATE INDEX sessions_by_parent ON sessions (parent, name) WHERE parent IS NOT NULL;";

pub(super) fn open_connection(path: &Path, context: &Context) -> Result<Connection> {
    // No SQLITE_OPEN_URI: a path is a path, even one that starts with `file:`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| context.error("open the file", e))?;
    // rusqlite panics on a timeout above i32::MAX milliseconds; never hand it one.
    let timeout = context
        .busy_timeout
        .min(Duration::from_millis(i32::MAX as u64));
    conn.busy_timeout(timeout)
        .map_err(|e| context.error("set the busy timeout", e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// What [`prepare_file`] found out about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileInfo {
    /// `auto_vacuum = INCREMENTAL`: free pages can be given back to the file system in slices.
    /// Files created by release 1 have `auto_vacuum = NONE` until
    /// [`SqliteStore::compact`](super::SqliteStore::compact).
    pub(super) incremental_vacuum: bool,
}

/// Switches the file to WAL, creates the schema on a new file, migrates an older one, and
/// checks it.
pub(super) fn prepare_file(
    conn: &Connection,
    context: &Context,
    synchronous: Synchronous,
) -> Result<FileInfo> {
    // Both only take effect on a file that has no tables yet, which is what we want; on an
    // older file without auto-vacuum, the next `VACUUM` (`compact`) applies the second.
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL;"
    ))
    .map_err(|e| context.error("set the page size", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| context.error("switch to WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(context.refuse(
            StoreFault::Failed,
            format!(
                "SQLite could not switch it to WAL mode (it stays in `{mode}` mode); SqliteStore \
             needs a file on a local disk (use MemoryStore for an in-memory store)"
            ),
        ));
    }
    // The WAL file is reused after each checkpoint; this cap truncates it back after a burst
    // (a large delete, `compact`) so that it does not keep its largest size for ever.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};",
        synchronous.pragma_value()
    ))
    .map_err(|e| context.error("set `synchronous`", e))?;

    if check_schema(conn, context)? != FileState::Ready {
        create_or_migrate(conn, context)?;
    }
    let auto_vacuum: i64 = conn
        .pragma_query_value(None, "auto_vacuum", |row| row.get(0))
        .map_err(|e| context.error("read `auto_vacuum`", e))?;
    Ok(FileInfo {
        incremental_vacuum: auto_vacuum == AUTO_VACUUM_INCREMENTAL,
    })
}

/// Creates the schema on a new file, or migrates an older version, under the write lock.
///
/// Several processes may open the same new or old file at once: each takes the write lock in
/// turn (waiting up to the busy timeout) and looks again, so the first one creates or migrates
/// and the others find the file ready.
fn create_or_migrate(conn: &Connection, context: &Context) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| context.error("start creating the schema", e))?;
    let created = match check_schema(conn, context) {
        Ok(FileState::Ready) => Ok(()),
        Ok(FileState::Empty) => conn
            .execute_batch(&format!(
                "{SCHEMA}
                 PRAGMA application_id = {APPLICATION_ID};
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| context.error("create the schema", e)),
        Ok(FileState::Older(from)) => {
            // Every step from the file's version on, in order, in one transaction.
            let steps = [
                MIGRATE_1_TO_2,
                MIGRATE_2_TO_3,
                MIGRATE_3_TO_4,
                MIGRATE_4_TO_5,
                MIGRATE_5_TO_6,
            ];
            let skip = usize::try_from(from - 1).unwrap_or(0);
            let migrations = steps[skip..].concat();
            tracing::info!(
                file = %context.label,
                "migrating checkpoint schema {from} -> {SCHEMA_VERSION}"
            );
            conn.execute_batch(&format!(
                "{migrations}
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| {
                let action = format!("migrate the schema from version {from} to {SCHEMA_VERSION}");
                context.error(&action, e)
            })
        }
        Err(e) => Err(e),
    };
    if !conn.is_autocommit() {
        // Also closes the transaction when the schema was already there.
        let rollback = conn.execute_batch("ROLLBACK");
        if created.is_ok() {
            rollback.map_err(|e| context.error("finish opening the file", e))?;
        }
    }
    created
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    /// No tables and no marks: ours to initialize.
    Empty,
    /// Our schema, at the version this release writes.
    Ready,
    /// Our schema at an earlier version, migrated on open: 1 (release 1), 2 (incremental
    /// checkpoints, no leases), 3 (leases, no graph versions or state schemas) or 4 (no
    /// session records or audit records).
    Older(i32),
}

fn check_schema(conn: &Connection, context: &Context) -> Result<FileState> {
    let read = |pragma: &str| -> Result<i32> {
        conn.pragma_query_value(None, pragma, |row| row.get(0))
            .map_err(|e| context.error("read the schema version", e))
    };
    let application_id = read("application_id")?;
    let version = read("user_version")?;
    if application_id == APPLICATION_ID {
        return match version {
            SCHEMA_VERSION => Ok(FileState::Ready),
            v @ 1..SCHEMA_VERSION => Ok(FileState::Older(v)),
            v if v > SCHEMA_VERSION => Err(context.refuse(
                StoreFault::Failed,
                format!(
                    "it uses checkpoint schema version {v}, written by a newer release of \
                 graph-runtime; this release understands version {SCHEMA_VERSION} only, so \
                 upgrade graph-runtime to open it"
                ),
            )),
            v => Err(context.refuse(
                StoreFault::Damaged,
                format!(
                    "it has the unknown checkpoint schema version {v} (this release writes version \
                 {SCHEMA_VERSION})"
                ),
            )),
        };
    }
    if application_id != 0 {
        return Err(context.refuse(
            StoreFault::Damaged,
            format!(
                "it belongs to another application (SQLite application_id {application_id:#010x}, \
             not graph-runtime's {APPLICATION_ID:#010x})"
            ),
        ));
    }
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(|e| context.error("read the schema", e))?;
    if tables != 0 || version != 0 {
        return Err(context.refuse(
            StoreFault::Damaged,
            "it is a SQLite database of another application (it has tables or a user_version \
             but no graph-runtime mark); give SqliteStore a file of its own"
                .to_owned(),
        ));
    }
    Ok(FileState::Empty)
}
