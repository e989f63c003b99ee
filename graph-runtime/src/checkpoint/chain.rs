//! Reading a chain of checkpoints back: a delta is rebuilt from the full checkpoint its chain
//! starts at and every delta after it; a branch record is applied to the frontier of the
//! checkpoint that opened its region, after every record before it. Each link is opened
//! (framing, checksum, sequence number) and must follow the one before without a gap: a
//! missing or foreign link is [`Error::Corrupt`], never a silent skip.

use crate::error::{Error, Result};
use crate::store::Checkpoint;

use super::body::Slot;
use super::envelope::{
    DeltaOf, Envelope, MAX_BODY_BYTES, RecordOf, body_checksum, decode_record, open,
};

/// Rebuilds the body of the delta checkpoint `envelope` from `links`, the stored checkpoints
/// from its chain's full checkpoint up to the one it applies to. Returns the body, the delta
/// bytes in the chain and the number of deltas.
pub(crate) fn reconstruct(
    session: &str,
    envelope: &Envelope<'_>,
    of: DeltaOf,
    links: &[Checkpoint],
) -> Result<(Vec<u8>, usize, u32)> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq: envelope.seq,
        reason,
    };
    let Some((first, rest)) = links.split_first() else {
        return Err(corrupt(format!(
            "the delta chain is incomplete: its full checkpoint {} is not in the store",
            of.anchor
        )));
    };
    let full = open(session, first.seq, &first.bytes)?;
    if first.seq != of.anchor || full.delta.is_some() {
        return Err(corrupt(format!(
            "the delta chain is incomplete: its full checkpoint {} is not in the store",
            of.anchor
        )));
    }
    let mut deltas: Vec<&[u8]> = Vec::with_capacity(rest.len() + 1);
    let mut expected_base = first.seq;
    let mut delta_bytes = envelope.body.len();
    for link in rest {
        let opened = open(session, link.seq, &link.bytes)?;
        match opened.delta {
            Some(d) if d.base == expected_base && d.anchor == of.anchor => {}
            _ => {
                return Err(corrupt(format!(
                    "checkpoint {} breaks the delta chain from {}",
                    link.seq, of.anchor
                )));
            }
        }
        delta_bytes += opened.body.len();
        deltas.push(opened.body);
        expected_base = link.seq;
    }
    if of.base != expected_base {
        return Err(corrupt(format!(
            "the delta chain is incomplete: checkpoint {} is not in the store",
            of.base
        )));
    }
    deltas.push(envelope.body);
    let body = super::delta::reconstruct(full.body, &deltas, MAX_BODY_BYTES)
        .map_err(|e| corrupt(format!("delta does not apply: {e}")))?;
    if body.len() != of.body_len as usize || body_checksum(&body) != of.body_crc {
        return Err(corrupt(
            "the reconstructed body does not match its checksum".to_owned(),
        ));
    }
    let len = u32::try_from(deltas.len()).unwrap_or(u32::MAX);
    Ok((body, delta_bytes, len))
}

/// Finds, among `links` (the stored checkpoints from `record.anchor` up to the record before
/// checkpoint `seq`), the checkpoint that holds the frontier branch record `record` extends,
/// and opens it. Returns its index in `links` and its envelope.
pub(crate) fn region_base<'a>(
    session: &str,
    seq: u64,
    record: RecordOf,
    links: &'a [Checkpoint],
) -> Result<(usize, Envelope<'a>)> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    };
    let Some(at) = links.iter().position(|c| c.seq == record.base) else {
        return Err(corrupt(format!(
            "the branch record's region checkpoint {} is not in the store",
            record.base
        )));
    };
    let base = &links[at];
    let opened = open(session, base.seq, &base.bytes)?;
    if opened.record.is_some() || !opened.frontier {
        return Err(corrupt(format!(
            "checkpoint {} does not hold the frontier the branch record extends",
            record.base
        )));
    }
    if opened.delta.is_some_and(|of| of.anchor != record.anchor)
        || (opened.delta.is_none() && record.anchor != record.base)
    {
        return Err(corrupt(
            "the branch record names another chain than its region's".to_owned(),
        ));
    }
    Ok((at, opened))
}

/// The slot changes of every branch record of a region, in order, each with the sequence
/// number of its record: those in `later` (the stored checkpoints after the region's
/// `base`), then `last` itself. Each must be a record
/// of the same region and graph following the one before without a gap; a recorded input
/// must have the compiled `input_schema`.
pub(crate) fn record_changes(
    session: &str,
    last: &Envelope<'_>,
    record: RecordOf,
    base: &Envelope<'_>,
    later: &[Checkpoint],
    input_schema: u64,
) -> Result<Vec<(u32, Slot, u64)>> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq: last.seq,
        reason,
    };
    let mut changes = Vec::new();
    let mut expected = record.base;
    let links = later.iter().map(Some).chain(std::iter::once(None));
    for link in links {
        let opened_link;
        let this = match link {
            Some(link) => {
                opened_link = open(session, link.seq, &link.bytes)?;
                &opened_link
            }
            None => last,
        };
        if Some(this.seq) != expected.checked_add(1) || this.record != Some(record) {
            return Err(corrupt(format!(
                "the branch records of region {} are incomplete or broken at {}",
                record.base, this.seq
            )));
        }
        if this.graph_hash != base.graph_hash {
            return Err(corrupt(
                "a branch record of another graph than its region".to_owned(),
            ));
        }
        check_input_schema(session, this, input_schema)?;
        let decoded = decode_record(session, this.seq, this.body, this.typed)?;
        changes.extend(
            decoded
                .into_iter()
                .map(|(index, slot)| (index, slot, this.seq)),
        );
        expected = this.seq;
    }
    Ok(changes)
}

/// Refuses a recorded input saved under another `Input` schema than `compiled`.
pub(crate) fn check_input_schema(
    session: &str,
    envelope: &Envelope<'_>,
    compiled: u64,
) -> Result<()> {
    match envelope.input_schema {
        Some(stored) if stored != compiled => Err(Error::SchemaMismatch {
            session: session.to_owned(),
            seq: envelope.seq,
            what: "recorded input",
            branch: None,
            item: None,
            stored,
            compiled,
        }),
        _ => Ok(()),
    }
}
