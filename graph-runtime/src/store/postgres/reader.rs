//! Reads: the statements of `latest`, `get`, `chain`, `list` and `sessions`, each one
//! `SELECT` on one snapshot, and decoding their rows.

use std::borrow::Cow;
use std::time::SystemTime;

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Shared;
use super::error::corrupt;
use crate::Result;
use crate::store::Status;
use crate::store::{Checkpoint, CheckpointMeta, from_unix_micros};

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
        Ok(CheckpointMeta {
            seq: fields.seq,
            node: fields.node,
            status: fields.status,
            bytes,
            created_at: fields.created_at,
        })
    })
    .await
}

/// `sessions`: the names of every session, in order.
pub(super) async fn sessions(shared: &Shared) -> Result<Vec<String>> {
    let rows = shared
        .query("list sessions", &shared.sql.sessions, &[], true)
        .await?;
    rows.iter()
        .map(|row| {
            let name: Vec<u8> = row
                .try_get(0)
                .map_err(|e| corrupt("", 0, format!("a session name that is not bytes: {e}")))?;
            String::from_utf8(name).map_err(|e| {
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                corrupt(&lossy, 0, "the session id is not UTF-8".to_owned())
            })
        })
        .collect()
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
        unsealed: false,
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
