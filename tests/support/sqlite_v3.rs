//! The SQLite schema exactly as the third release created it (schema version 3: leases, no
//! graph versions, no state schema per session), for tests that check such files still open
//! and migrate.

/// Run on an empty file, this makes it a version-3 checkpoint store with no rows.
pub const SCHEMA: &str = "
    PRAGMA page_size = 8192;
    PRAGMA auto_vacuum = INCREMENTAL;
    PRAGMA journal_mode = WAL;
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        workflow TEXT,
        graph_hash INTEGER,
        wake_at_us INTEGER,
        lease_owner TEXT,
        lease_epoch INTEGER NOT NULL DEFAULT 0,
        lease_expires_us INTEGER
    );
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        node TEXT NOT NULL,
        status INTEGER NOT NULL,
        wait_node TEXT,
        created_at_us INTEGER NOT NULL,
        bytes BLOB NOT NULL,
        depends_on INTEGER
    );
    CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
    PRAGMA application_id = 1196573520;
    PRAGMA user_version = 3;";
