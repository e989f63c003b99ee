//! The PostgreSQL tables exactly as the second release with `PostgresStore` created them
//! (store schema version 2: leases, no graph versions, no state schema per session), in
//! schema `graph_runtime`, for the migration test.

/// Run on an empty database, this makes it a version-2 store with no rows. The trigger
/// notifies `graph_runtime_wake_f0e1585c`, the channel of schema `graph_runtime`.
pub const SCHEMA: &str = "
    CREATE SCHEMA graph_runtime;
    CREATE TABLE graph_runtime.graph_runtime_meta (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        schema_version integer NOT NULL
    );
    CREATE TABLE graph_runtime.sessions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name bytea NOT NULL,
        name_key bytea NOT NULL GENERATED ALWAYS AS (sha256(name)) STORED UNIQUE,
        head_seq bigint NOT NULL
    );
    CREATE TABLE graph_runtime.checkpoints (
        session_id bigint NOT NULL REFERENCES graph_runtime.sessions (id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        node text NOT NULL,
        status smallint NOT NULL,
        wait_node text,
        created_at_us bigint NOT NULL,
        depends_on bigint,
        bytes bytea NOT NULL,
        PRIMARY KEY (session_id, seq)
    );
    INSERT INTO graph_runtime.graph_runtime_meta (schema_version) VALUES (1);
    ALTER TABLE graph_runtime.sessions
        ADD COLUMN workflow text,
        ADD COLUMN graph_hash bigint,
        ADD COLUMN wake_at timestamptz,
        ADD COLUMN lease_owner text,
        ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0,
        ADD COLUMN lease_expires_at timestamptz;
    CREATE INDEX sessions_runnable ON graph_runtime.sessions (workflow, graph_hash, wake_at)
        WHERE wake_at IS NOT NULL;
    CREATE FUNCTION graph_runtime.graph_runtime_wake() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_notify('graph_runtime_wake_f0e1585c',
            GREATEST(0, ceil(extract(epoch FROM NEW.wake_at - now()) * 1000))::bigint::text);
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER graph_runtime_wake_inserted AFTER INSERT ON graph_runtime.sessions
        FOR EACH ROW WHEN (NEW.wake_at IS NOT NULL AND NEW.lease_owner IS NULL)
        EXECUTE FUNCTION graph_runtime.graph_runtime_wake();
    CREATE TRIGGER graph_runtime_wake_updated AFTER UPDATE ON graph_runtime.sessions
        FOR EACH ROW WHEN (NEW.wake_at IS NOT NULL AND NEW.lease_owner IS NULL
            AND (OLD.wake_at IS DISTINCT FROM NEW.wake_at OR OLD.lease_owner IS NOT NULL))
        EXECUTE FUNCTION graph_runtime.graph_runtime_wake();
    UPDATE graph_runtime.graph_runtime_meta SET schema_version = 2;";
