//! Appends: the one statement that writes a batch of them, and the background task that
//! gathers concurrent appends into batches.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{Shared, sql_int};
use crate::error::{Error, Result};
use crate::store::Status;
use crate::store::{Append, Wake};

/// The most appends one statement carries.
const MAX_BATCH: usize = 256;
/// Appends waiting for the writer before callers wait to hand theirs over (back-pressure).
pub(super) const QUEUE: usize = 1024;

/// What became of one append of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Written,
    /// The session's latest sequence number (`None`: no such session).
    Conflict(Option<u64>),
    /// Another writer committed to the session after the statement's snapshot; run it again.
    Retry,
    /// The session's lease epoch is not the append's fence.
    LeaseLost,
    /// The append would create a child session whose parent does not exist.
    NoParent,
}

/// One append handed to the writer task.
pub(super) struct Request {
    pub(super) session: String,
    pub(super) append: Append,
    pub(super) reply: oneshot::Sender<Result<()>>,
}

/// Checks what SQL cannot hold before an append goes anywhere.
pub(super) fn validate(shared: &Shared, session: &str, append: &Append) -> Result<()> {
    sql_int(shared, session, "sequence number", append.checkpoint.seq)?;
    if let Some(depends_on) = append.checkpoint.depends_on {
        sql_int(shared, session, "`depends_on` sequence number", depends_on)?;
    }
    // PostgreSQL's `text` cannot hold NUL; refused here, it fails this append alone rather
    // than the whole batch it would have joined.
    let wait_node = match &append.checkpoint.status {
        Status::Waiting { node } => node.as_str(),
        _ => "",
    };
    let workflow = append
        .workflow
        .as_ref()
        .map_or("", |(name, _)| name.as_str());
    if append.checkpoint.node.contains('\0')
        || wait_node.contains('\0')
        || workflow.contains('\0')
        || append.waiting.iter().any(|node| node.contains('\0'))
    {
        return Err(shared.context.refuse(format!(
            "the node or workflow name of checkpoint {} of session `{session}` contains NUL, \
             which PostgreSQL text cannot hold",
            append.checkpoint.seq
        )));
    }
    Ok(())
}

/// Turns an outcome into the caller's result (`None`: retry).
pub(super) fn answer(session: &str, append: &Append, outcome: Outcome) -> Option<Result<()>> {
    match outcome {
        Outcome::Written => Some(Ok(())),
        Outcome::Conflict(found) => Some(Err(Error::Conflict {
            session: session.to_owned(),
            expected: append.expected,
            found,
        })),
        Outcome::LeaseLost => Some(Err(Error::LeaseLost {
            session: session.to_owned(),
            epoch: append.fence.unwrap_or_default(),
        })),
        Outcome::NoParent => Some(Err(Error::SessionNotFound(
            append.parent.clone().unwrap_or_default(),
        ))),
        Outcome::Retry => None,
    }
}

/// One append on its own: the lean statement (`advance`) when it extends an existing session, the batch
/// statement otherwise.
pub(super) async fn write_single(
    shared: &Shared,
    session: &str,
    append: &Append,
) -> Result<Outcome> {
    if append.expected.is_some() {
        return advance(shared, session, append).await;
    }
    let outcomes = write(shared, &[(session, append)]).await?;
    Ok(outcomes.first().copied().unwrap_or(Outcome::Retry))
}

/// One append after `expected` with the lean statement ([`Sql::advance`](super::sql::Sql)):
/// one round trip when it succeeds; when it does not, a second one finds out why.
async fn advance(shared: &Shared, session: &str, append: &Append) -> Result<Outcome> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let checkpoint = &append.checkpoint;
    let name = session.as_bytes();
    let expected = append.expected.map(clamp);
    let seq = clamp(checkpoint.seq);
    // The integer code the envelope and every store share.
    let status = i16::from(checkpoint.status.code());
    let wait_node = checkpoint.status.waiting_node();
    let created = super::unix_micros(checkpoint.created_at);
    let depends_on = checkpoint.depends_on.map(clamp);
    let keep_last = append.keep_last.map(clamp);
    let fence = append.fence.map(clamp);
    let wake_set = append.wake.is_some();
    let wake_us = append.wake.and_then(Wake::delay_micros);
    let workflow = append.workflow.as_ref().map(|(name, _)| name.as_str());
    let graph_hash = append.workflow.as_ref().map(|&(_, hash)| hash as i64);
    let state_schema = append.state_schema.map(|fingerprint| fingerprint as i64);
    let bytes = checkpoint.bytes.as_slice();
    let audit = append.audit.as_ref().map(|audit| audit.encode());
    let waits = append.recorded_waits();
    let params: [&(dyn ToSql + Sync); 18] = [
        &name,
        &expected,
        &seq,
        &&*checkpoint.node,
        &status,
        &wait_node,
        &created,
        &depends_on,
        &bytes,
        &fence,
        &wake_set,
        &wake_us,
        &workflow,
        &graph_hash,
        &state_schema,
        &audit,
        &waits,
        &keep_last,
    ];
    // Without retention, the statement that has none (see `Sql::advance`), and no `keep_last`.
    let (sql, params) = match keep_last {
        Some(_) => (&shared.sql.advance, &params[..]),
        None => (&shared.sql.advance_keep_all, &params[..17]),
    };
    let rows = shared
        .query("append a checkpoint", sql, params, false)
        .await?;
    let bad = |what: String| {
        shared.context.refuse(format!(
            "the append statement answered {what}; is another program changing the tables?"
        ))
    };
    let written: i64 = rows
        .first()
        .ok_or_else(|| bad("no row".to_owned()))?
        .try_get(0)
        .map_err(|e| bad(e.to_string()))?;
    if written == 1 {
        return Ok(Outcome::Written);
    }
    // Not written: the fence, then the sequence numbers, as the batch statement decides.
    let rows = shared
        .query("read a session's head", &shared.sql.head, &[&name], true)
        .await?;
    let head = match rows.first() {
        Some(row) => {
            let head: i64 = row.try_get(0).map_err(|e| bad(e.to_string()))?;
            let epoch: i64 = row.try_get(1).map_err(|e| bad(e.to_string()))?;
            Some((head, epoch))
        }
        None => None,
    };
    Ok(match head {
        _ if fence.is_some() && head.map(|(_, epoch)| epoch) != fence => Outcome::LeaseLost,
        None => Outcome::Conflict(None),
        Some((head, _)) if Some(head) != expected || seq <= head => {
            Outcome::Conflict(u64::try_from(head).ok())
        }
        // It would succeed now (the session changed and changed back): run it again.
        Some(_) => Outcome::Retry,
    })
}

/// Runs one batched append statement: `items` hold at most one append per session, each
/// already [validated](validate). Answers one outcome per item, in order.
pub(super) async fn write(shared: &Shared, items: &[(&str, &Append)]) -> Result<Vec<Outcome>> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut names = Vec::with_capacity(items.len());
    let mut expected = Vec::with_capacity(items.len());
    let mut seqs = Vec::with_capacity(items.len());
    let mut nodes = Vec::with_capacity(items.len());
    let mut statuses = Vec::with_capacity(items.len());
    let mut wait_nodes = Vec::with_capacity(items.len());
    let mut created = Vec::with_capacity(items.len());
    let mut depends_on = Vec::with_capacity(items.len());
    let mut keep_last = Vec::with_capacity(items.len());
    let mut bytes = Vec::with_capacity(items.len());
    let mut fences = Vec::with_capacity(items.len());
    let mut wake_set = Vec::with_capacity(items.len());
    let mut wake_us = Vec::with_capacity(items.len());
    let mut workflows = Vec::with_capacity(items.len());
    let mut graph_hashes = Vec::with_capacity(items.len());
    let mut state_schemas = Vec::with_capacity(items.len());
    let mut audits = Vec::with_capacity(items.len());
    let mut parents = Vec::with_capacity(items.len());
    // The nodes every append waits at, flattened: the append's 1-based `ord`, and a node.
    let mut wait_ords: Vec<i64> = Vec::new();
    let mut wait_nodes_of: Vec<&str> = Vec::new();
    for (index, (session, append)) in items.iter().enumerate() {
        let checkpoint = &append.checkpoint;
        names.push(session.as_bytes());
        // An `expected` beyond SQL integers can never match a stored one: a conflict.
        expected.push(append.expected.map(clamp));
        seqs.push(clamp(checkpoint.seq));
        nodes.push(&*checkpoint.node);
        let (status, wait_node) = (
            i16::from(checkpoint.status.code()),
            checkpoint.status.waiting_node(),
        );
        statuses.push(status);
        wait_nodes.push(wait_node);
        created.push(super::unix_micros(checkpoint.created_at));
        depends_on.push(checkpoint.depends_on.map(clamp));
        keep_last.push(append.keep_last.map(clamp));
        bytes.push(checkpoint.bytes.as_slice());
        // An epoch beyond SQL integers can never match a stored one: lease lost.
        fences.push(append.fence.map(clamp));
        wake_set.push(append.wake.is_some());
        wake_us.push(append.wake.and_then(Wake::delay_micros));
        workflows.push(append.workflow.as_ref().map(|(name, _)| name.as_str()));
        // The hash's bits as a signed integer: SQL has no unsigned one.
        graph_hashes.push(append.workflow.as_ref().map(|&(_, hash)| hash as i64));
        // The fingerprint's bits as a signed integer, as the hash's.
        state_schemas.push(append.state_schema.map(|fingerprint| fingerprint as i64));
        audits.push(append.audit.as_ref().map(|audit| audit.encode()));
        parents.push(append.parent.as_ref().map(|parent| parent.as_bytes()));
        for node in append.recorded_waits() {
            wait_ords.push(i64::try_from(index + 1).unwrap_or(i64::MAX));
            wait_nodes_of.push(node);
        }
    }
    let rows = shared
        .query(
            "append checkpoints",
            &shared.sql.append,
            &[
                &names,
                &expected,
                &seqs,
                &nodes,
                &statuses,
                &wait_nodes,
                &created,
                &depends_on,
                &keep_last,
                &bytes,
                &fences,
                &wake_set,
                &wake_us,
                &workflows,
                &graph_hashes,
                &state_schemas,
                &audits,
                &wait_ords,
                &wait_nodes_of,
                &parents,
            ],
            false,
        )
        .await?;
    let mut outcomes = vec![None; items.len()];
    for row in &rows {
        let bad = |what: String| {
            shared.context.refuse(format!(
                "the append statement answered {what}; is another program changing the tables?"
            ))
        };
        let ord: i64 = row.try_get(0).map_err(|e| bad(e.to_string()))?;
        let code: i32 = row.try_get(1).map_err(|e| bad(e.to_string()))?;
        let found: Option<i64> = row.try_get(2).map_err(|e| bad(e.to_string()))?;
        let slot = usize::try_from(ord)
            .ok()
            .and_then(|ord| ord.checked_sub(1))
            .and_then(|index| outcomes.get_mut(index))
            .ok_or_else(|| bad(format!("an unknown row {ord}")))?;
        let found = found
            .map(|seq| u64::try_from(seq).map_err(|_| bad(format!("sequence number {seq}"))))
            .transpose()?;
        *slot = Some(match code {
            0 => Outcome::Written,
            1 => Outcome::Conflict(found),
            2 => Outcome::Retry,
            3 => Outcome::LeaseLost,
            4 => Outcome::NoParent,
            other => return Err(bad(format!("outcome {other}"))),
        });
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| {
                shared
                    .context
                    .refuse("an append got no answer from the append statement".to_owned())
            })
        })
        .collect()
}

/// Starts the task that batches appends; it stops when every sender (every clone of the
/// store) is gone.
pub(super) fn spawn(shared: Arc<Shared>) -> mpsc::Sender<Request> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(run(shared, receiver));
    sender
}

/// Group commit: takes every append that is queued when the previous statement returns (at
/// most one per session per statement, so appends to one session keep their order) and
/// writes them with one statement. No append waits on a timer.
async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Request>) {
    let mut pending: VecDeque<Request> = VecDeque::new();
    loop {
        if pending.is_empty() {
            match receiver.recv().await {
                Some(request) => pending.push_back(request),
                None => return,
            }
        }
        while pending.len() < MAX_BATCH * 4 {
            match receiver.try_recv() {
                Ok(request) => pending.push_back(request),
                Err(_) => break,
            }
        }
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        let mut sessions = HashSet::new();
        for request in pending.drain(..) {
            if request.reply.is_closed() {
                // The caller gave up before its append was sent: it is not written.
                continue;
            }
            if batch.len() < MAX_BATCH && sessions.insert(request.session.clone()) {
                batch.push(request);
            } else {
                later.push_back(request);
            }
        }
        pending = later;
        if batch.is_empty() {
            continue;
        }
        let items: Vec<(&str, &Append)> = batch
            .iter()
            .map(|r| (r.session.as_str(), &r.append))
            .collect();
        // One append alone (one session checkpointing): the lean statement.
        let result = match items.as_slice() {
            [(session, append)] => write_single(&shared, session, append)
                .await
                .map(|o| vec![o]),
            _ => write(&shared, &items).await,
        };
        drop(items);
        let mut retries = Vec::new();
        match result {
            Ok(outcomes) => {
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    match answer(&request.session, &request.append, outcome) {
                        Some(result) => {
                            let _ = request.reply.send(result);
                        }
                        None => retries.push(request),
                    }
                }
            }
            Err(error) => {
                let error = super::error::share(error);
                for request in batch {
                    let _ = request.reply.send(Err(error()));
                }
            }
        }
        // A retried append goes first, ahead of later appends to its session.
        for request in retries.into_iter().rev() {
            pending.push_front(request);
        }
    }
}
