//! The PostgreSQL tables exactly as the first release with `PostgresStore` created them (store
//! schema version 1: no lease columns), in schema `graph_runtime`, for the migration test.

/// Run on an empty database, this makes it a version-1 store with no rows.
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
    INSERT INTO graph_runtime.graph_runtime_meta (schema_version) VALUES (1);";
