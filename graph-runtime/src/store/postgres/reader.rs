//! Reads: the statements of `latest`, `get`, `chain`, `list`, `sessions`, `session`, the
//! graph versions and the versions in use, each one `SELECT` on one snapshot, and decoding
//! their rows.

use std::borrow::Cow;
use std::time::SystemTime;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Shared;
use super::error::corrupt;
use super::schema::{NAME_PREFIX, NODE_PREFIX};
use super::sql::session_columns;
use crate::error::Result;
use crate::store::{Audit, Status};
use crate::store::{
    Checkpoint, CheckpointMeta, GraphVersion, SessionFilter, SessionPage, SessionRecord,
    StatusKind, VersionCount, from_unix_micros, into_page, page_limit, record_waits, unix_micros,
};

/// One read statement, its rows decoded by `decode`.
async fn read<T>(
    shared: &Shared,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    decode: impl Fn(&Row) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = shared.query("read checkpoints", sql, params, true).await?;
    rows.iter().map(decode).collect()
}

/// `latest`: the newest checkpoint of `session`.
pub(super) async fn latest(shared: &Shared, session: &str) -> Result<Option<Checkpoint>> {
    let name = session.as_bytes();
    let rows = read(shared, &shared.sql.latest, &[&name], |row| {
        read_checkpoint(row, session)
    })
    .await?;
    Ok(rows.into_iter().next())
}

/// `get`: checkpoint `seq` of `session`.
pub(super) async fn get(shared: &Shared, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let name = session.as_bytes();
    let rows = read(shared, &shared.sql.get, &[&name, &seq], |row| {
        read_checkpoint(row, session)
    })
    .await?;
    Ok(rows.into_iter().next())
}

/// `chain`: the checkpoints of `session` from `from` to `to` (both included), in order.
pub(super) async fn chain(
    shared: &Shared,
    session: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Checkpoint>> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let name = session.as_bytes();
    read(shared, &shared.sql.chain, &[&name, &from, &to], |row| {
        read_checkpoint(row, session)
    })
    .await
}

/// `list`: the metadata of every checkpoint of `session`, without reading their bytes.
pub(super) async fn list(shared: &Shared, session: &str) -> Result<Vec<CheckpointMeta>> {
    let name = session.as_bytes();
    read(shared, &shared.sql.list, &[&name], |row| {
        let fields = read_fields(row, session)?;
        let size: i64 = column(row, 5, "bytes", session, fields.seq)?;
        let bytes = u64::try_from(size)
            .map_err(|_| corrupt(session, fields.seq, format!("negative size {size}")))?;
        let audit: Option<&[u8]> = column(row, 6, "audit", session, fields.seq)?;
        let audit = audit
            .map(|bytes| {
                Audit::decode(bytes)
                    .map_err(|why| corrupt(session, fields.seq, format!("bad audit record: {why}")))
            })
            .transpose()?;
        let failure: Option<&[u8]> = column(row, 7, "failure", session, fields.seq)?;
        let failure = failure
            .map(|bytes| {
                Audit::decode(bytes).map_err(|why| {
                    corrupt(session, fields.seq, format!("bad failure record: {why}"))
                })
            })
            .transpose()?;
        Ok(CheckpointMeta {
            seq: fields.seq,
            node: fields.node,
            status: fields.status,
            bytes,
            created_at: fields.created_at,
            audit,
            failure,
            child: None,
        })
    })
    .await
}

/// `sessions`: one page of the sessions `filter` passes, in the order of their names, from
/// an index that yields them in that order (see `schema::NAME_PREFIX`): with a waiting node,
/// `session_waits_by_node`; with a status, `sessions_by_status`; otherwise
/// `sessions_by_name`. The statement is built for the conditions the filter sets, so that
/// each shape has a plan of its own (a generic plan could use no index for a condition that
/// may be absent); the other conditions are checked on the rows the index yields.
///
/// A waiting node with no other condition on the session takes its page from
/// `session_waits` alone and joins `sessions` to that page only: should the planner sort
/// rather than walk the index in order (it does before the table's first `ANALYZE`, when it
/// expects a handful of rows), it sorts the node's rows of `session_waits`, not that many
/// sessions looked up one by one.
pub(super) async fn sessions(shared: &Shared, filter: &SessionFilter) -> Result<SessionPage> {
    let limit = page_limit(filter);
    // Only a waiting session has rows in `session_waits`, so a waiting node implies the
    // waiting status, and matches nothing with another one.
    if filter.node.is_some()
        && filter
            .status
            .is_some_and(|kind| kind != StatusKind::Waiting)
    {
        return Ok(SessionPage::default());
    }
    let schema = &shared.sql.schema;
    let name_prefix = |table: &str| NAME_PREFIX.replace("name", &format!("{table}.name"));
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    // `$n` of the value just pushed.
    let mut bind = |value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", params.len())
    };
    // Conditions on the table that gives the order (`w` or `s`), and on the session's row.
    let mut ordered: Vec<String> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let table = match &filter.node {
        Some(node) => {
            let node = bind(Box::new(node.clone()));
            ordered.push(format!(
                "{} = {} AND w.node = {node}",
                NODE_PREFIX.replace("node", "w.node"),
                NODE_PREFIX.replace("node", &node),
            ));
            "w"
        }
        None => "s",
    };
    if let Some(after) = &filter.after {
        let after = bind(Box::new(after.as_bytes().to_vec()));
        ordered.push(format!(
            "{} >= {} AND {table}.name > {after}",
            name_prefix(table),
            NAME_PREFIX.replace("name", &format!("{after}::bytea"))
        ));
    }
    if filter.node.is_none() {
        match filter.status {
            Some(kind) => {
                let status = bind(Box::new(i16::from(kind.code())));
                ordered.push(format!("s.status = {status}"));
            }
            None => ordered.push("s.status IS NOT NULL".to_owned()),
        }
    }
    if let Some(workflow) = &filter.workflow {
        let workflow = bind(Box::new(workflow.clone()));
        row.push(format!("s.workflow = {workflow}"));
    }
    if let Some(parent) = &filter.parent {
        // `sessions_by_parent` (the parent's hash, then the name's prefix): one range of it
        // yields a parent's children in the order of their names.
        let parent = bind(Box::new(parent.as_bytes().to_vec()));
        let condition = format!("sha256(s.parent) = sha256({parent}) AND s.parent = {parent}");
        if filter.node.is_none() {
            ordered.push(condition);
        } else {
            row.push(condition);
        }
    }
    if let Some(before) = filter.updated_before {
        let before = bind(Box::new(unix_micros(before)));
        row.push(format!("s.updated_at_us < {before}"));
    }
    if let Some(since) = filter.updated_after {
        let since = bind(Box::new(unix_micros(since)));
        row.push(format!("s.updated_at_us >= {since}"));
    }
    let limit_param = bind(Box::new(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
    let columns = session_columns(schema);
    let order = format!("{}, {table}.name", name_prefix(table));
    let sql = if filter.node.is_some() && row.is_empty() {
        format!(
            "SELECT {columns} FROM (SELECT w.session_id, w.name FROM {schema}.session_waits w \
             WHERE {} ORDER BY {order} LIMIT {limit_param}) w \
             JOIN {schema}.sessions s ON s.id = w.session_id ORDER BY {order}",
            ordered.join(" AND "),
        )
    } else {
        let source = match filter.node {
            Some(_) => {
                format!("{schema}.session_waits w JOIN {schema}.sessions s ON s.id = w.session_id")
            }
            None => format!("{schema}.sessions s"),
        };
        format!(
            "SELECT {columns} FROM {source} WHERE {} ORDER BY {order} LIMIT {limit_param}",
            ordered
                .into_iter()
                .chain(row)
                .collect::<Vec<_>>()
                .join(" AND "),
        )
    };
    let params: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|param| &**param as &(dyn ToSql + Sync))
        .collect();
    let rows = shared.query("list sessions", &sql, &params, true).await?;
    let records = rows.iter().map(read_session).collect::<Result<Vec<_>>>()?;
    Ok(into_page(records, limit))
}

/// `session`: the record of session `session`, if it exists.
pub(super) async fn session(shared: &Shared, session: &str) -> Result<Option<SessionRecord>> {
    let name = session.as_bytes();
    let rows = shared
        .query("read a session", &shared.sql.session, &[&name], true)
        .await?;
    rows.first().map(read_session).transpose()
}

/// A session's row, as [`session_columns`] selects it.
pub(super) fn read_session(row: &Row) -> Result<SessionRecord> {
    let name: Vec<u8> = row
        .try_get(0)
        .map_err(|e| corrupt("", 0, format!("a session name that is not bytes: {e}")))?;
    let name = String::from_utf8(name).map_err(|e| {
        let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
        corrupt(&lossy, 0, "the session id is not UTF-8".to_owned())
    })?;
    let session = name.as_str();
    let raw_seq: i64 = column(row, 6, "head_seq", session, 0)?;
    let seq = u64::try_from(raw_seq)
        .map_err(|_| corrupt(session, 0, format!("negative sequence number {raw_seq}")))?;
    let workflow: Option<String> = column(row, 1, "workflow", session, seq)?;
    let graph_hash: Option<i64> = column(row, 2, "graph_hash", session, seq)?;
    let code: i16 = column(row, 3, "status", session, seq)?;
    let wait_node: Option<String> = column(row, 4, "wait_node", session, seq)?;
    let status = Status::from_row(i64::from(code), wait_node.as_deref())
        .map_err(|reason| corrupt(session, seq, reason))?;
    let node: Option<String> = column(row, 5, "node", session, seq)?;
    let node = node.ok_or_else(|| corrupt(session, seq, "no `node` in its row".to_owned()))?;
    let time = |index: usize, name: &str| -> Result<SystemTime> {
        let micros: Option<i64> = column(row, index, name, session, seq)?;
        let micros =
            micros.ok_or_else(|| corrupt(session, seq, format!("no `{name}` in its row")))?;
        from_unix_micros(micros)
            .ok_or_else(|| corrupt(session, seq, format!("`{name}` {micros} µs out of range")))
    };
    let created_at = time(7, "created_at_us")?;
    let updated_at = time(8, "updated_at_us")?;
    let wake_at: Option<SystemTime> = column(row, 9, "wake_at", session, seq)?;
    let owner: Option<String> = column(row, 10, "lease_owner", session, seq)?;
    let expires: Option<SystemTime> = column(row, 11, "lease_expires_at", session, seq)?;
    let waits: Option<Vec<String>> = column(row, 12, "session_waits.node", session, seq)?;
    let parent: Option<Vec<u8>> = column(row, 13, "parent", session, seq)?;
    let parent = parent
        .map(|parent| {
            String::from_utf8(parent)
                .map_err(|_| corrupt(session, seq, "its parent's id is not UTF-8".to_owned()))
        })
        .transpose()?;
    let mut record = SessionRecord::new(session, seq, &node, status, updated_at);
    record.waiting = record_waits(&record.status, waits.unwrap_or_default());
    record.created_at = created_at;
    // The hash's bits, kept as a signed integer.
    record.graph_hash = workflow.as_ref().and(graph_hash).map(|hash| hash as u64);
    record.workflow = workflow;
    record.wake_at = wake_at;
    record.lease = owner.zip(expires);
    record.parent = parent;
    Ok(record)
}

/// `graph_version`: version `graph_hash` of `workflow`, if kept.
pub(super) async fn graph_version(
    shared: &Shared,
    workflow: &str,
    graph_hash: u64,
) -> Result<Option<GraphVersion>> {
    // The hash's bits as a signed integer, as it is kept.
    let hash = graph_hash as i64;
    let rows = shared
        .query(
            "read a graph version",
            &shared.sql.graph_version,
            &[&workflow, &hash],
            true,
        )
        .await?;
    rows.first()
        .map(|row| read_graph_version(shared, row))
        .transpose()
}

/// `graph_versions`: every kept version of `workflow`, oldest first, then by hash.
pub(super) async fn graph_versions(shared: &Shared, workflow: &str) -> Result<Vec<GraphVersion>> {
    let rows = shared
        .query(
            "list graph versions",
            &shared.sql.graph_versions,
            &[&workflow],
            true,
        )
        .await?;
    let mut versions = rows
        .iter()
        .map(|row| read_graph_version(shared, row))
        .collect::<Result<Vec<_>>>()?;
    versions.sort_by_key(|version| (version.recorded_at, version.graph_hash));
    Ok(versions)
}

/// `versions_in_use`: the sessions with a recorded workflow, counted per workflow, graph hash
/// and state schema, from the `sessions` rows alone.
pub(super) async fn versions_in_use(shared: &Shared) -> Result<Vec<VersionCount>> {
    let rows = shared
        .query(
            "count the versions in use",
            &shared.sql.versions_in_use,
            &[],
            true,
        )
        .await?;
    let bad = |e: tokio_postgres::Error| {
        shared.context.refuse(format!(
            "the sessions table holds a bad workflow or state schema: {e}"
        ))
    };
    let mut counts = rows
        .iter()
        .map(|row| {
            let workflow: String = row.try_get(0).map_err(bad)?;
            let graph_hash: i64 = row.try_get(1).map_err(bad)?;
            let state_schema: Option<i64> = row.try_get(2).map_err(bad)?;
            let sessions: i64 = row.try_get(3).map_err(bad)?;
            Ok(VersionCount::new(
                &workflow,
                graph_hash as u64,
                state_schema.map(|fingerprint| fingerprint as u64),
                u64::try_from(sessions).unwrap_or(0),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    counts.sort_unstable();
    Ok(counts)
}

/// A `graph_versions` row: workflow, graph_hash, description, recorded_at_us.
pub(super) fn read_graph_version(shared: &Shared, row: &Row) -> Result<GraphVersion> {
    let bad = |why: String| {
        shared
            .context
            .refuse(format!("the graph_versions table holds a bad row: {why}"))
    };
    let workflow: String = row.try_get(0).map_err(|e| bad(e.to_string()))?;
    let graph_hash: i64 = row.try_get(1).map_err(|e| bad(e.to_string()))?;
    let description: String = row.try_get(2).map_err(|e| bad(e.to_string()))?;
    let micros: i64 = row.try_get(3).map_err(|e| bad(e.to_string()))?;
    let recorded_at = from_unix_micros(micros)
        .ok_or_else(|| bad(format!("recording time {micros} µs out of range")))?;
    let mut version = GraphVersion::new(&workflow, graph_hash as u64, description);
    version.recorded_at = recorded_at;
    Ok(version)
}

/// The metadata columns shared by `latest`, `get`, `chain` and `list`.
struct Fields {
    seq: u64,
    node: String,
    status: Status,
    created_at: SystemTime,
}

/// Columns 0..=4 of a checkpoint row: seq, node, status, wait_node, created_at_us.
fn read_fields(row: &Row, session: &str) -> Result<Fields> {
    let raw_seq: i64 = column(row, 0, "seq", session, 0)?;
    let seq = u64::try_from(raw_seq)
        .map_err(|_| corrupt(session, 0, format!("negative sequence number {raw_seq}")))?;
    let node: String = column(row, 1, "node", session, seq)?;
    let code: i16 = column(row, 2, "status", session, seq)?;
    let wait_node: Option<String> = column(row, 3, "wait_node", session, seq)?;
    let status = Status::from_row(i64::from(code), wait_node.as_deref())
        .map_err(|reason| corrupt(session, seq, reason))?;
    let micros: i64 = column(row, 4, "created_at_us", session, seq)?;
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

/// A full checkpoint row: the fields, then depends_on and bytes.
fn read_checkpoint(row: &Row, session: &str) -> Result<Checkpoint> {
    let Fields {
        seq,
        node,
        status,
        created_at,
    } = read_fields(row, session)?;
    let depends_on: Option<i64> = column(row, 5, "depends_on", session, seq)?;
    let depends_on = depends_on
        .map(|d| {
            u64::try_from(d)
                .map_err(|_| corrupt(session, seq, format!("negative `depends_on` {d}")))
        })
        .transpose()?;
    let bytes: Vec<u8> = column(row, 6, "bytes", session, seq)?;
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
pub(super) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    name: &str,
    session: &str,
    seq: u64,
) -> Result<T> {
    row.try_get(index)
        .map_err(|e| corrupt(session, seq, format!("bad `{name}` column: {e}")))
}
