//! Reads: the pool of read-only connections, the statements of `latest`, `get`, `chain`,
//! `list`, `sessions` and `session`, the graph versions and the versions in use, and decoding
//! their rows.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use rusqlite::types::{FromSql, Value};
use rusqlite::{Connection, Row, params, params_from_iter};

use super::error::{Context, corrupt, store_error};
use super::schema::open_connection;
use crate::error::Result;
use crate::store::{Audit, Status};
use crate::store::{
    Checkpoint, CheckpointMeta, GraphVersion, SessionFilter, SessionPage, SessionRecord,
    VersionCount, from_unix_micros, into_page, page_limit, record_waits, unix_micros,
};

/// Read connections kept open between reads; more are opened when reads overlap.
const MAX_IDLE_READERS: usize = 4;

/// The query of `latest`: the one a resume runs first.
pub(super) const LATEST: &str = "SELECT seq, node, status, wait_node, created_at_us, bytes, \
                                 depends_on FROM checkpoints \
                                 WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) \
                                 ORDER BY seq DESC LIMIT 1";

pub(super) struct ReaderPool {
    pub(super) path: PathBuf,
    pub(super) context: Context,
    pub(super) idle: Mutex<Vec<Connection>>,
    /// Set when the writer stops: connections in use are closed when their read ends.
    pub(super) closed: AtomicBool,
}

impl ReaderPool {
    pub(super) fn idle(&self) -> MutexGuard<'_, Vec<Connection>> {
        // A panic elsewhere cannot leave the list inconsistent: it is only pushed and popped.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn with<T>(
        &self,
        read: impl FnOnce(&Connection, &Context) -> Result<T>,
    ) -> Result<T> {
        let pooled = self.idle().pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn, &self.context);
        let mut idle = self.idle();
        if idle.len() < MAX_IDLE_READERS && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        result
    }

    pub(super) fn open(&self) -> Result<Connection> {
        let conn = open_connection(&self.path, &self.context)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|e| self.context.error("open a read connection", e))?;
        // No schema check: the writer checked (and migrated) the file when the store opened.
        Ok(conn)
    }

    pub(super) fn close_idle(&self) {
        let mut idle = self.idle();
        self.closed.store(true, Ordering::Release);
        idle.clear();
    }
}

/// `latest`: the newest checkpoint of `session`.
pub(super) fn latest(
    conn: &Connection,
    context: &Context,
    session: &str,
) -> Result<Option<Checkpoint>> {
    let mut statement = conn
        .prepare_cached(LATEST)
        .map_err(|e| context.error("read the latest checkpoint", e))?;
    let mut rows = statement
        .query([session])
        .map_err(|e| context.error("read the latest checkpoint", e))?;
    match rows
        .next()
        .map_err(|e| context.error("read the latest checkpoint", e))?
    {
        Some(row) => Ok(Some(read_checkpoint(row, session, context)?)),
        None => Ok(None),
    }
}

/// `get`: checkpoint `seq` of `session`.
pub(super) fn get(
    conn: &Connection,
    context: &Context,
    session: &str,
    seq: i64,
) -> Result<Option<Checkpoint>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, node, status, wait_node, created_at_us, bytes, depends_on \
             FROM checkpoints \
             WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) AND seq = ?2",
        )
        .map_err(|e| context.error("read a checkpoint", e))?;
    let mut rows = statement
        .query(params![session, seq])
        .map_err(|e| context.error("read a checkpoint", e))?;
    match rows
        .next()
        .map_err(|e| context.error("read a checkpoint", e))?
    {
        Some(row) => Ok(Some(read_checkpoint(row, session, context)?)),
        None => Ok(None),
    }
}

/// `chain`: the checkpoints of `session` from `from` to `to` (both included), in order.
pub(super) fn chain(
    conn: &Connection,
    context: &Context,
    session: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Checkpoint>> {
    let failed = |e| context.error("read a chain of checkpoints", e);
    // One range scan of the (session_id, seq) index: one statement, one snapshot.
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, node, status, wait_node, created_at_us, bytes, depends_on \
             FROM checkpoints \
             WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) \
             AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
        )
        .map_err(failed)?;
    let mut rows = statement
        .query(params![session, from, to])
        .map_err(failed)?;
    let mut chain = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        chain.push(read_checkpoint(row, session, context)?);
    }
    Ok(chain)
}

/// `list`: the metadata of every checkpoint of `session`, without reading their bytes.
pub(super) fn list(
    conn: &Connection,
    context: &Context,
    session: &str,
) -> Result<Vec<CheckpointMeta>> {
    let failed = |e| context.error("list checkpoints", e);
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, node, status, wait_node, created_at_us, length(bytes), audit, failure \
             FROM checkpoints \
             WHERE session_id = (SELECT id FROM sessions WHERE name = ?1) ORDER BY seq",
        )
        .map_err(failed)?;
    let mut rows = statement.query([session]).map_err(failed)?;
    let mut list = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let fields = read_fields(row, session, context)?;
        let length: i64 = column(row, 5, "length(bytes)", session, fields.seq, context)?;
        let audit: Option<Vec<u8>> = column(row, 6, "audit", session, fields.seq, context)?;
        let audit = audit
            .map(|bytes| {
                Audit::decode(&bytes)
                    .map_err(|why| corrupt(session, fields.seq, format!("bad audit record: {why}")))
            })
            .transpose()?;
        let failure: Option<Vec<u8>> = column(row, 7, "failure", session, fields.seq, context)?;
        let failure = failure
            .map(|bytes| {
                Audit::decode(&bytes).map_err(|why| {
                    corrupt(session, fields.seq, format!("bad failure record: {why}"))
                })
            })
            .transpose()?;
        list.push(CheckpointMeta {
            seq: fields.seq,
            node: fields.node,
            status: fields.status,
            bytes: u64::try_from(length).unwrap_or(0),
            created_at: fields.created_at,
            audit,
            failure,
            child: None,
        });
    }
    Ok(list)
}

/// The columns of a session's record, in the order [`read_session`] decodes them: from the
/// session's row (`s`) and its latest checkpoint's row (`c`, see [`LATEST`]).
const SESSION_COLUMNS: &str = "s.id, s.name, s.workflow, s.graph_hash, c.status, c.wait_node, \
                               c.node, c.seq, s.created_at_us, c.created_at_us, s.wake_at_us, \
                               s.lease_owner, s.lease_expires_us, c.failure IS NOT NULL, \
                               s.parent";

/// Joins each session's row `s` to its latest checkpoint's row `c`: the newest entry of
/// `checkpoints_by_session` for the session (which holds the row id), then that row. A
/// session without a checkpoint has none, and is no session.
const LATEST_CHECKPOINT: &str = "CROSS JOIN checkpoints c ON c.id = \
    (SELECT id FROM checkpoints WHERE session_id = s.id ORDER BY seq DESC LIMIT 1)";

/// `sessions`: one page of the sessions `filter` passes, in the order of their names, from
/// an index: with a waiting node, one range of `session_waits`' primary key (node, name);
/// with a status, one range of `sessions_by_status` (status, name); otherwise the unique
/// index on names. The other conditions are checked on each row the range yields (the
/// times on its latest checkpoint's row), and the first `limit + 1` that pass end the scan.
/// `CROSS JOIN` keeps the table of the range the outer loop.
pub(super) fn sessions(
    conn: &Connection,
    context: &Context,
    filter: &SessionFilter,
) -> Result<SessionPage> {
    let limit = page_limit(filter);
    let mut conditions: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    // `?n` is the value pushed n-th: each condition names its value's number.
    let mut bind = |condition: &'static str, value: Value, conditions: &mut Vec<&str>| {
        values.push(value);
        conditions.push(condition);
    };
    let (source, order) = match &filter.node {
        // CROSS JOIN keeps `session_waits` the outer loop: its key is the order wanted.
        Some(node) => {
            bind("w.node = ?1", Value::Text(node.clone()), &mut conditions);
            if let Some(after) = &filter.after {
                bind("w.name > ?2", Value::Text(after.clone()), &mut conditions);
            }
            (
                "session_waits w CROSS JOIN sessions s ON s.id = w.session_id",
                "w.name",
            )
        }
        None => {
            if let Some(after) = &filter.after {
                bind("s.name > ?1", Value::Text(after.clone()), &mut conditions);
            }
            match (&filter.parent, filter.status) {
                // A parent's children: one range of `sessions_by_parent` (parent, name).
                (Some(_), _) => ("sessions s INDEXED BY sessions_by_parent", "s.name"),
                (None, Some(_)) => ("sessions s INDEXED BY sessions_by_status", "s.name"),
                (None, None) => ("sessions s", "s.name"),
            }
        }
    };
    // The numbered conditions from here on: their numbers follow those bound above.
    let mut numbered = Vec::new();
    if let Some(kind) = filter.status {
        values.push(Value::Integer(i64::from(kind.code())));
        numbered.push(format!("s.status = ?{}", values.len()));
    }
    if let Some(workflow) = &filter.workflow {
        values.push(Value::Text(workflow.clone()));
        numbered.push(format!("s.workflow = ?{}", values.len()));
    }
    if let Some(parent) = &filter.parent {
        values.push(Value::Text(parent.clone()));
        numbered.push(format!("s.parent = ?{}", values.len()));
    }
    if let Some(before) = filter.updated_before {
        values.push(Value::Integer(unix_micros(before)));
        numbered.push(format!("c.created_at_us < ?{}", values.len()));
    }
    if let Some(since) = filter.updated_after {
        values.push(Value::Integer(unix_micros(since)));
        numbered.push(format!("c.created_at_us >= ?{}", values.len()));
    }
    values.push(Value::Integer(
        i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX),
    ));
    let where_clause = conditions
        .iter()
        .map(|c| (*c).to_owned())
        .chain(numbered)
        .chain(std::iter::once("1".to_owned()))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!(
        "SELECT {SESSION_COLUMNS} FROM {source} {LATEST_CHECKPOINT} WHERE {where_clause} \
         ORDER BY {order} LIMIT ?{}",
        values.len()
    );
    let failed = |e| context.error("list sessions", e);
    let mut statement = conn.prepare_cached(&sql).map_err(failed)?;
    let mut rows = statement
        .query(params_from_iter(values.iter()))
        .map_err(failed)?;
    let mut records = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        records.push(read_session(row, context)?);
    }
    drop(rows);
    let records = records
        .into_iter()
        .map(|(id, record)| with_waits(conn, context, id, record))
        .collect::<Result<Vec<_>>>()?;
    Ok(into_page(records, limit))
}

/// `session`: the record of session `session`, if it has a checkpoint.
pub(super) fn session(
    conn: &Connection,
    context: &Context,
    session: &str,
) -> Result<Option<SessionRecord>> {
    let failed = |e| context.error("read a session", e);
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s {LATEST_CHECKPOINT} WHERE s.name = ?1"
        ))
        .map_err(failed)?;
    let mut rows = statement.query([session]).map_err(failed)?;
    let Some(row) = rows.next().map_err(failed)? else {
        return Ok(None);
    };
    let (id, record) = read_session(row, context)?;
    drop(rows);
    with_waits(conn, context, id, record).map(Some)
}

/// A session's row ([`SESSION_COLUMNS`]): its row id and its record, without the waiting
/// nodes beyond the one its status names (see [`with_waits`]).
fn read_session(row: &Row<'_>, context: &Context) -> Result<(i64, SessionRecord)> {
    let name: String = row.get(1).map_err(|e| {
        store_error(
            format!(
                "the sessions table of `{}` holds a bad name: {e}",
                context.label
            ),
            None,
        )
    })?;
    let session = name.as_str();
    let id: i64 = column(row, 0, "id", session, 0, context)?;
    let raw_seq: i64 = column(row, 7, "seq", session, 0, context)?;
    let seq = u64::try_from(raw_seq)
        .map_err(|_| corrupt(session, 0, format!("negative sequence number {raw_seq}")))?;
    let workflow: Option<String> = column(row, 2, "workflow", session, seq, context)?;
    let graph_hash: Option<i64> = column(row, 3, "graph_hash", session, seq, context)?;
    let code: i64 = column(row, 4, "status", session, seq, context)?;
    let wait_node: Option<String> = column(row, 5, "wait_node", session, seq, context)?;
    let status = Status::from_row(code, wait_node.as_deref())
        .map_err(|reason| corrupt(session, seq, reason))?;
    // A run from the latest checkpoint failed (see `Store::record_failure`).
    let failed: bool = column(row, 13, "failure", session, seq, context)?;
    let status = if failed && status == Status::Running {
        Status::Failed
    } else {
        status
    };
    let node: String = column(row, 6, "node", session, seq, context)?;
    let time = |index: usize, name: &str| -> Result<Option<SystemTime>> {
        let micros: Option<i64> = column(row, index, name, session, seq, context)?;
        micros
            .map(|micros| {
                from_unix_micros(micros).ok_or_else(|| {
                    corrupt(session, seq, format!("`{name}` {micros} µs out of range"))
                })
            })
            .transpose()
    };
    let missing = |name: &str| corrupt(session, seq, format!("no `{name}` in its row"));
    let created_at = time(8, "sessions.created_at_us")?.ok_or_else(|| missing("created_at_us"))?;
    let updated_at = time(9, "created_at_us")?.ok_or_else(|| missing("created_at_us"))?;
    let wake_at = time(10, "wake_at_us")?;
    let owner: Option<String> = column(row, 11, "lease_owner", session, seq, context)?;
    let expires = time(12, "lease_expires_us")?;
    let parent: Option<String> = column(row, 14, "parent", session, seq, context)?;
    let mut record = SessionRecord::new(session, seq, &node, status, updated_at);
    record.created_at = created_at;
    // The hash's bits, kept as a signed integer.
    record.graph_hash = workflow.as_ref().and(graph_hash).map(|hash| hash as u64);
    record.workflow = workflow;
    record.wake_at = wake_at;
    record.lease = owner.zip(expires);
    record.parent = parent;
    Ok((id, record))
}

/// `record` with every node it waits at, from `session_waits` (only a waiting session has
/// rows there).
fn with_waits(
    conn: &Connection,
    context: &Context,
    id: i64,
    mut record: SessionRecord,
) -> Result<SessionRecord> {
    if record.status.waiting_node().is_none() {
        return Ok(record);
    }
    let failed = |e| context.error("read the nodes a session waits at", e);
    let mut statement = conn
        .prepare_cached("SELECT node FROM session_waits WHERE session_id = ?1")
        .map_err(failed)?;
    let mut rows = statement.query([id]).map_err(failed)?;
    let mut nodes = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let node: String = column(
            row,
            0,
            "session_waits.node",
            &record.session,
            record.seq,
            context,
        )?;
        nodes.push(node);
    }
    record.waiting = record_waits(&record.status, nodes);
    Ok(record)
}

/// The columns of a `graph_versions` row, in order.
const GRAPH_VERSION_COLUMNS: &str = "workflow, graph_hash, description, recorded_at_us";

/// `graph_version`: version `graph_hash` of `workflow`, if kept.
pub(super) fn graph_version(
    conn: &Connection,
    context: &Context,
    workflow: &str,
    graph_hash: u64,
) -> Result<Option<GraphVersion>> {
    let failed = |e| context.error("read a graph version", e);
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {GRAPH_VERSION_COLUMNS} FROM graph_versions \
             WHERE workflow = ?1 AND graph_hash = ?2"
        ))
        .map_err(failed)?;
    let mut rows = statement
        .query(params![workflow, graph_hash as i64])
        .map_err(failed)?;
    match rows.next().map_err(failed)? {
        Some(row) => Ok(Some(read_graph_version(row, context)?)),
        None => Ok(None),
    }
}

/// `graph_versions`: every kept version of `workflow`, oldest first, then by hash.
pub(super) fn graph_versions(
    conn: &Connection,
    context: &Context,
    workflow: &str,
) -> Result<Vec<GraphVersion>> {
    let failed = |e| context.error("list graph versions", e);
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {GRAPH_VERSION_COLUMNS} FROM graph_versions WHERE workflow = ?1"
        ))
        .map_err(failed)?;
    let mut rows = statement.query([workflow]).map_err(failed)?;
    let mut versions = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        versions.push(read_graph_version(row, context)?);
    }
    // Sorted here, not in SQL: the hash is kept as a signed integer, and sorts as a `u64`.
    versions.sort_by_key(|version| (version.recorded_at, version.graph_hash));
    Ok(versions)
}

/// `versions_in_use`: the sessions with a recorded workflow (and a checkpoint, as `sessions`
/// counts them), counted per workflow, graph hash and state schema. One scan of `sessions`,
/// never a checkpoint's bytes.
pub(super) fn versions_in_use(conn: &Connection, context: &Context) -> Result<Vec<VersionCount>> {
    let failed = |e| context.error("count the versions in use", e);
    let mut statement = conn
        .prepare_cached(
            "SELECT workflow, graph_hash, state_schema, count(*) FROM sessions AS s \
             WHERE workflow IS NOT NULL AND graph_hash IS NOT NULL \
             AND EXISTS (SELECT 1 FROM checkpoints WHERE session_id = s.id) \
             GROUP BY workflow, graph_hash, state_schema",
        )
        .map_err(failed)?;
    let mut rows = statement.query([]).map_err(failed)?;
    let mut counts = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let bad = |e: rusqlite::Error| {
            store_error(
                format!(
                    "the sessions table of `{}` holds a bad workflow or state schema: {e}",
                    context.label
                ),
                None,
            )
        };
        let workflow: String = row.get(0).map_err(bad)?;
        let graph_hash: i64 = row.get(1).map_err(bad)?;
        let state_schema: Option<i64> = row.get(2).map_err(bad)?;
        let sessions: i64 = row.get(3).map_err(bad)?;
        counts.push(VersionCount::new(
            &workflow,
            graph_hash as u64,
            state_schema.map(|fingerprint| fingerprint as u64),
            u64::try_from(sessions).unwrap_or(0),
        ));
    }
    // Sorted here, not in SQL: by workflow as `str` sorts, hashes and fingerprints as `u64`s.
    counts.sort_unstable();
    Ok(counts)
}

/// A `graph_versions` row ([`GRAPH_VERSION_COLUMNS`]).
fn read_graph_version(row: &Row<'_>, context: &Context) -> Result<GraphVersion> {
    let bad = |why: String| {
        store_error(
            format!(
                "the graph_versions table of `{}` holds a bad row: {why}",
                context.label
            ),
            None,
        )
    };
    let workflow: String = row.get(0).map_err(|e| bad(e.to_string()))?;
    let graph_hash: i64 = row.get(1).map_err(|e| bad(e.to_string()))?;
    let description: String = row.get(2).map_err(|e| bad(e.to_string()))?;
    let micros: i64 = row.get(3).map_err(|e| bad(e.to_string()))?;
    let recorded_at = from_unix_micros(micros)
        .ok_or_else(|| bad(format!("recording time {micros} µs out of range")))?;
    let mut version = GraphVersion::new(&workflow, graph_hash as u64, description);
    version.recorded_at = recorded_at;
    Ok(version)
}

/// The metadata columns shared by `latest`, `get` and `list`: seq, node, status, wait_node,
/// created_at_us.
struct Fields {
    seq: u64,
    node: String,
    status: Status,
    created_at: SystemTime,
}

fn read_fields(row: &Row<'_>, session: &str, context: &Context) -> Result<Fields> {
    let raw_seq: i64 = column(row, 0, "seq", session, 0, context)?;
    let seq = u64::try_from(raw_seq)
        .map_err(|_| corrupt(session, 0, format!("negative sequence number {raw_seq}")))?;
    let node: String = column(row, 1, "node", session, seq, context)?;
    let code: i64 = column(row, 2, "status", session, seq, context)?;
    let wait_node: Option<String> = column(row, 3, "wait_node", session, seq, context)?;
    let status = Status::from_row(code, wait_node.as_deref())
        .map_err(|reason| corrupt(session, seq, reason))?;
    let micros: i64 = column(row, 4, "created_at_us", session, seq, context)?;
    let created_at = from_unix_micros(micros).ok_or_else(|| {
        corrupt(
            session,
            seq,
            format!("creation time {micros} µs out of range"),
        )
    })?;
    Ok(Fields {
        seq,
        node,
        status,
        created_at,
    })
}

fn read_checkpoint(row: &Row<'_>, session: &str, context: &Context) -> Result<Checkpoint> {
    let Fields {
        seq,
        node,
        status,
        created_at,
    } = read_fields(row, session, context)?;
    let bytes: Vec<u8> = column(row, 5, "bytes", session, seq, context)?;
    let depends_on: Option<i64> = column(row, 6, "depends_on", session, seq, context)?;
    let depends_on = depends_on
        .map(|d| {
            u64::try_from(d)
                .map_err(|_| corrupt(session, seq, format!("negative `depends_on` {d}")))
        })
        .transpose()?;
    Ok(Checkpoint {
        seq,
        node: Cow::Owned(node),
        status,
        created_at,
        bytes,
        depends_on,
        seal_later: None,
    })
}

/// One column of a checkpoint row; a value of the wrong type means the row is corrupt.
fn column<T: FromSql>(
    row: &Row<'_>,
    index: usize,
    name: &str,
    session: &str,
    seq: u64,
    context: &Context,
) -> Result<T> {
    row.get(index).map_err(|e| match e {
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..) => {
            corrupt(session, seq, format!("bad `{name}` column: {e}"))
        }
        e => context.error("read a checkpoint", e),
    })
}
