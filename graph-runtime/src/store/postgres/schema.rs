//! Creating and checking the store's tables: the only place that runs DDL.

use tokio_postgres::Client;

use super::error::Context;
use super::quote;
use crate::error::Result;

/// The schema version this release reads and writes, kept in `graph_runtime_meta`.
pub(super) const SCHEMA_VERSION: i32 = 5;

/// The first key of the advisory lock taken while the schema is created or checked: "GRCP",
/// as in the checkpoint envelope's magic. The second key is `hashtext(schema name)`.
const LOCK_KEY: i32 = 0x4752_4350;

/// The `LISTEN`/`NOTIFY` channel of the store in schema `schema_name`: one per schema, so
/// that stores in other schemas of the database do not wake each other; a hash, because a
/// channel name is at most 63 bytes.
pub(super) fn channel(schema_name: &str) -> String {
    format!(
        "graph_runtime_wake_{:08x}",
        crc32fast::hash(schema_name.as_bytes())
    )
}

/// Version 2 on top of version 1: the lease protocol. Per session: its workflow and graph
/// hash, its wake time (runnable once `wake_at <= now()`; `NULL`: not runnable), and its
/// lease (owner, epoch, expiry). An index finds the runnable sessions of a workflow at a
/// graph hash, oldest wake time first. A trigger notifies the store's channel when a session
/// without a lease gets a wake time, or loses its lease while it has one (a release): the
/// payload is the milliseconds until it is due (0: now). It does not fire for appends that
/// leave the wake time and lease as they are: the hot path pays only the `WHEN` test.
fn lease_statements(schema: &str, channel: &str) -> String {
    format!(
        "ALTER TABLE {schema}.sessions
             ADD COLUMN workflow text,
             ADD COLUMN graph_hash bigint,
             ADD COLUMN wake_at timestamptz,
             ADD COLUMN lease_owner text,
             ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0,
             ADD COLUMN lease_expires_at timestamptz;
         CREATE INDEX sessions_runnable ON {schema}.sessions (workflow, graph_hash, wake_at)
             WHERE wake_at IS NOT NULL;
         CREATE FUNCTION {schema}.graph_runtime_wake() RETURNS trigger LANGUAGE plpgsql AS $fn$
         BEGIN
             PERFORM pg_notify('{channel}',
                 GREATEST(0, ceil(extract(epoch FROM NEW.wake_at - now()) * 1000))::bigint::text);
             RETURN NULL;
         END
         $fn$;
         CREATE TRIGGER graph_runtime_wake_inserted AFTER INSERT ON {schema}.sessions
             FOR EACH ROW WHEN (NEW.wake_at IS NOT NULL AND NEW.lease_owner IS NULL)
             EXECUTE FUNCTION {schema}.graph_runtime_wake();
         CREATE TRIGGER graph_runtime_wake_updated AFTER UPDATE ON {schema}.sessions
             FOR EACH ROW WHEN (NEW.wake_at IS NOT NULL AND NEW.lease_owner IS NULL
                 AND (OLD.wake_at IS DISTINCT FROM NEW.wake_at OR OLD.lease_owner IS NOT NULL))
             EXECUTE FUNCTION {schema}.graph_runtime_wake();"
    )
}

/// Version 3 on top of version 2: each graph version's canonical description, kept once per
/// workflow and hash (the hash's bits as a signed integer, as `sessions.graph_hash`; the time
/// in microseconds since the Unix epoch, as a checkpoint's `created_at_us`), and the state
/// schema fingerprint of each session's latest checkpoint. A nullable column and a new
/// table: no row is rewritten. Sessions of earlier versions have no recorded schema (`NULL`)
/// until a runner writes to them with one.
fn version_statements(schema: &str) -> String {
    format!(
        "ALTER TABLE {schema}.sessions ADD COLUMN state_schema bigint;
         CREATE TABLE {schema}.graph_versions (
             workflow text NOT NULL,
             graph_hash bigint NOT NULL,
             description text NOT NULL,
             recorded_at_us bigint NOT NULL,
             PRIMARY KEY (workflow, graph_hash)
         );"
    )
}

/// How many leading bytes of a session's name its index entries hold (`NAME_PREFIX`): a
/// B-tree entry holds at most about 2,700 bytes and an id may be longer, so the indexes that
/// give sessions in the order of their names hold `substring(name FROM 1 FOR 512)`. Ordering
/// by that prefix and then by the name is ordering by the name (bytes compare from the
/// first: a name's prefix sorts before another's only if the name does), so a page is one
/// range of such an index, with names that share a prefix sorted after it.
pub(super) const NAME_PREFIX: &str = "substring(name FROM 1 FOR 512)";
/// The same for a waiting node's name, in `session_waits`' index (`text`, in characters).
pub(super) const NODE_PREFIX: &str = "left(node, 200)";

/// Version 4 on top of version 3: what `Store::sessions` answers from an index, and the
/// audit record of a checkpoint. Each session's row gets its latest checkpoint's status,
/// waiting node, cursor and time (its sequence number is `head_seq`), and the time of its
/// first checkpoint, backfilled here from the checkpoint rows (the oldest kept one stands
/// for the first); the nodes a waiting session waits at are rows of `session_waits`, found
/// by node in the order of the session's name, and removed with the session. Unlike the
/// earlier steps this one rewrites every session's row, once.
fn record_statements(schema: &str) -> String {
    format!(
        "ALTER TABLE {schema}.sessions
             ADD COLUMN status smallint,
             ADD COLUMN wait_node text,
             ADD COLUMN node text,
             ADD COLUMN created_at_us bigint,
             ADD COLUMN updated_at_us bigint;
         ALTER TABLE {schema}.checkpoints ADD COLUMN audit bytea, ADD COLUMN failure bytea;
         UPDATE {schema}.sessions s SET
             (status, wait_node, node, updated_at_us) = (
                 SELECT c.status, c.wait_node, c.node, c.created_at_us
                 FROM {schema}.checkpoints c WHERE c.session_id = s.id
                 ORDER BY c.seq DESC LIMIT 1),
             created_at_us = (
                 SELECT c.created_at_us FROM {schema}.checkpoints c WHERE c.session_id = s.id
                 ORDER BY c.seq LIMIT 1);
         CREATE INDEX sessions_by_name ON {schema}.sessions ({NAME_PREFIX});
         CREATE INDEX sessions_by_status ON {schema}.sessions (status, {NAME_PREFIX});
         CREATE TABLE {schema}.session_waits (
             session_id bigint NOT NULL REFERENCES {schema}.sessions (id) ON DELETE CASCADE,
             node text NOT NULL,
             name bytea NOT NULL
         );
         INSERT INTO {schema}.session_waits (session_id, node, name)
             SELECT id, wait_node, name FROM {schema}.sessions
             WHERE status = 1 AND wait_node IS NOT NULL;
         CREATE INDEX session_waits_by_session ON {schema}.session_waits (session_id);
         CREATE INDEX session_waits_by_node ON {schema}.session_waits
             ({NODE_PREFIX}, {NAME_PREFIX});"
    )
}

/// Version 5 on top of version 4: the session a child session belongs to
/// (`Append::parent`, as bytes like `name`), set when the session is created, and an index
/// that finds a parent's children in the order of their names (only child sessions have an
/// entry; the parent is hashed, as a name may be longer than an index entry). A nullable
/// column: no row is rewritten; sessions of earlier versions have no parent.
fn parent_statements(schema: &str) -> String {
    format!(
        "ALTER TABLE {schema}.sessions ADD COLUMN parent bytea;
         CREATE INDEX sessions_by_parent ON {schema}.sessions (sha256(parent), {NAME_PREFIX})
             WHERE parent IS NOT NULL;"
    )
}

/// Version 1. Session names are `bytea` (a `&str` may hold NUL, which `text` refuses) and may
/// be longer than a B-tree entry, so they are unique through their SHA-256.
fn create_statements(schema: &str) -> String {
    format!(
        "CREATE TABLE {schema}.graph_runtime_meta (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             schema_version integer NOT NULL
         );
         CREATE TABLE {schema}.sessions (
             id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             name bytea NOT NULL,
             name_key bytea NOT NULL GENERATED ALWAYS AS (sha256(name)) STORED UNIQUE,
             head_seq bigint NOT NULL
         );
         CREATE TABLE {schema}.checkpoints (
             session_id bigint NOT NULL REFERENCES {schema}.sessions (id) ON DELETE CASCADE,
             seq bigint NOT NULL,
             node text NOT NULL,
             status smallint NOT NULL,
             wait_node text,
             created_at_us bigint NOT NULL,
             depends_on bigint,
             bytes bytea NOT NULL,
             PRIMARY KEY (session_id, seq)
         );
         INSERT INTO {schema}.graph_runtime_meta (schema_version) VALUES (1);"
    )
}

/// Creates the schema if it is missing, or checks its version, under an advisory lock so
/// that stores connecting at the same time do not race. Runs on a connection of its own,
/// so a caller that gives up half-way only closes that connection (the server rolls back).
pub(super) async fn prepare(
    client: &mut Client,
    schema_name: &str,
    context: &Context,
) -> Result<()> {
    let schema = quote(schema_name);
    let failed = |e| context.error("create or check the store's tables", e);
    let transaction = client.transaction().await.map_err(failed)?;
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_KEY, &schema_name],
        )
        .await
        .map_err(failed)?;
    let meta = format!("{schema}.graph_runtime_meta");
    let exists: bool = transaction
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&meta])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    let channel = channel(schema_name);
    if !exists {
        let create = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; {} {} {} {} {} {}",
            create_statements(&schema),
            lease_statements(&schema, &channel),
            version_statements(&schema),
            record_statements(&schema),
            parent_statements(&schema),
            set_version(&meta),
        );
        transaction.batch_execute(&create).await.map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        return Ok(());
    }
    let version: Option<i32> = transaction
        .query_opt(&format!("SELECT schema_version FROM {meta}"), &[])
        .await
        .and_then(|row| row.map(|row| row.try_get(0)).transpose())
        .map_err(failed)?;
    if let Some(from @ 1..SCHEMA_VERSION) = version {
        // Under the advisory lock: one store migrates, the others find the current version.
        // Every step from the tables' version on, in order, in one transaction.
        tracing::info!(
            schema = schema_name,
            "migrating store schema {from} -> {SCHEMA_VERSION}"
        );
        let lease = if from < 2 {
            lease_statements(&schema, &channel)
        } else {
            String::new()
        };
        let versions = if from < 3 {
            version_statements(&schema)
        } else {
            String::new()
        };
        let records = if from < 4 {
            record_statements(&schema)
        } else {
            String::new()
        };
        let migrate = format!(
            "{lease} {versions} {records} {} {}",
            parent_statements(&schema),
            set_version(&meta)
        );
        transaction.batch_execute(&migrate).await.map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        return Ok(());
    }
    drop(transaction);
    match version {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(newer) if newer > SCHEMA_VERSION => Err(context.refuse(format!(
            "schema `{schema_name}` has store schema version {newer}, written by a newer \
             release of graph-runtime; this release reads version {SCHEMA_VERSION}: upgrade \
             graph-runtime"
        ))),
        Some(older) => Err(context.refuse_damaged(format!(
            "schema `{schema_name}` has store schema version {older}, which this release \
             (schema version {SCHEMA_VERSION}) cannot migrate"
        ))),
        None => Err(context.refuse_damaged(format!(
            "schema `{schema_name}` has an empty `graph_runtime_meta` table (no schema version)"
        ))),
    }
}

/// Records that the tables are at [`SCHEMA_VERSION`].
fn set_version(meta: &str) -> String {
    format!("UPDATE {meta} SET schema_version = {SCHEMA_VERSION};")
}
