//! The SQLite schema exactly as the fourth release created it (schema version 4: graph
//! versions and a state schema per session, no session records or audit records), for tests
//! that check such files still open and migrate.

/// Run on an empty file, this makes it a version-4 checkpoint store with no rows.
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
        lease_expires_us INTEGER,
        state_schema INTEGER
    );
    CREATE INDEX sessions_runnable ON sessions (workflow, graph_hash, wake_at_us)
        WHERE wake_at_us IS NOT NULL;
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
        depends_on INTEGER
    );
    CREATE UNIQUE INDEX checkpoints_by_session ON checkpoints (session_id, seq);
    PRAGMA application_id = 1196573520;
    PRAGMA user_version = 4;";
