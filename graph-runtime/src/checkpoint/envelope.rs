//! The checkpoint envelope: the format of every checkpoint a store holds.
//!
//! Layout of envelope version 4, written by this release (integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "GRCP"
//! 4       1     envelope version (4)
//! 5       1     codec id (1 = bincode 2, standard config)
//! 6       1     status (0 running, 1 waiting, 2 completed)
//! 7       1     flags: 1 = the body holds a recorded input, 2 = the body is a delta,
//!               4 = the body holds a frontier, 8 = a branch record (neither 2 nor 4)
//! 8       8     graph hash
//! 16      8     sequence number
//! 24      8     state schema fingerprint (`Workflow::STATE_SCHEMA` of the writer)
//! 32      8     input schema fingerprint (`Workflow::INPUT_SCHEMA`; 0 without flag 1)
//! 40      2     cursor length n
//! 42      n     cursor node name (UTF-8); in a parallel region, its join
//!               with flag 2 only:
//!         8       sequence number of the checkpoint the delta applies to (the previous one)
//!         8       sequence number of the full checkpoint the delta chain starts at
//!         4       length of the reconstructed body
//!         4       CRC-32 of the reconstructed body
//!               with flag 8 only:
//!         8       base: sequence number of the checkpoint that holds the region's frontier
//!         8       anchor: the oldest checkpoint reading the base needs (the base, or the
//!                 full checkpoint of its delta chain)
//!         4     body length m
//!         m     body (see below), or a delta against the previous checkpoint's body
//!               (see `delta`)
//!         4     CRC-32 of (session id length u32, session id, every byte before this one)
//! ```
//!
//! The body of a checkpoint is the bincode of `(state, pending input, failure before an error
//! edge)`; with flag 4 it is followed by the frontier of the parallel region the session is
//! in, `(opened: u64, item schema: u64, items: Option<Vec<bytes>>, slots: Vec<Slot>)`: the
//! sequence number of the step that opened the region (what branch idempotency keys use), the
//! `StateSchema` fingerprint of a map's item type and its encoded items, and one slot per
//! branch or item (pending, waiting, a recorded input or an output — each with its type's
//! fingerprint — or a failure). A graph without parallel branches never sets flag 4 or 8:
//! its checkpoints are byte for byte what version 2 wrote, apart from the version byte.
//!
//! A **branch record** (flag 8) is the small checkpoint saved when a branch finishes, waits
//! or gets its input: its body is the bincode of `Vec<(slot index u32, Slot)>`, the slots it
//! changes in the frontier of `base`. Reading it reads the chain from `anchor` to the record:
//! the base is rebuilt (it may be a delta), then every record after it, each of which must
//! name the same base and follow the one before without a gap, is applied in order. A record
//! depends on `anchor` (`Checkpoint::depends_on`), so retention keeps what it needs.
//!
//! Version 3 is version 4 with values saved without fingerprints: its frontier is `(opened,
//! items, slots)` and its slots hold bare bytes; they read back with `Saved::UNRECORDED`,
//! which the runner trusts only under the graph hash that wrote them. Version 2 is version 3
//! without flags 4 and 8. Version 1 (the first release) had neither
//! fingerprints, flags nor deltas: bytes 7..26 held a zero byte, the graph hash, the sequence
//! number and the cursor length. Both are still read; a version-1 state is taken to have the
//! compiled schema, since it recorded none.
//!
//! Opening checks, in this order: the length cap, the framing, the checksum (which also binds
//! the session id), the sequence number. The runner then checks the graph hash and the schema
//! fingerprints before it decodes a byte of the body, decodes with an allocation limit, and
//! requires every byte to be consumed. A delta's reconstructed body is verified against its
//! own CRC before it is decoded. Nothing here can panic on any input.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::store::Status;

use super::body::{Failure, FrontierBody, FrontierRef, Saved, Slot, SlotV3};
use super::codec::{self, decode_prefix};

const MAGIC: [u8; 4] = *b"GRCP";
const VERSION_1: u8 = 1;
const VERSION_2: u8 = 2;
const VERSION_3: u8 = 3;
const VERSION_4: u8 = 4;
const CODEC_BINCODE2: u8 = 1;
/// The fixed part of a version-2 header, before the cursor.
const FIXED_HEADER_V2: usize = 42;
/// The fixed part of a version-1 header, before the cursor.
const FIXED_HEADER_V1: usize = 26;
/// The delta fields of a version-2 or 3 header.
const DELTA_FIELDS: usize = 24;
/// The record fields of a version-3 or 4 header.
const RECORD_FIELDS: usize = 16;

const FLAG_INPUT: u8 = 1;
const FLAG_DELTA: u8 = 2;
const FLAG_FRONTIER: u8 = 4;
const FLAG_RECORD: u8 = 8;

/// The largest encoded body accepted, in bytes. Anything larger is reported as corrupt before
/// the checksum is computed.
pub const MAX_BODY_BYTES: usize = 256 << 20;
/// The largest envelope of any version.
const MAX_ENVELOPE_BYTES: usize =
    MAX_BODY_BYTES + FIXED_HEADER_V2 + DELTA_FIELDS + RECORD_FIELDS + 8 + u16::MAX as usize;

/// What goes into one envelope's header.
pub(crate) struct Header<'a> {
    pub session: &'a str,
    pub graph_hash: u64,
    pub seq: u64,
    /// The status's integer code (`Status::code`).
    pub status: u8,
    pub node: &'a str,
    pub state_schema: u64,
    pub input_schema: u64,
}

/// Where a delta envelope's body applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeltaOf {
    /// The checkpoint whose (reconstructed) body the delta applies to.
    pub base: u64,
    /// The full checkpoint the chain starts at.
    pub anchor: u64,
    /// The length of the reconstructed body.
    pub body_len: u32,
    /// The CRC-32 of the reconstructed body.
    pub body_crc: u32,
}

/// Where a branch record applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordOf {
    /// The checkpoint that holds the frontier the record changes.
    pub base: u64,
    /// The oldest checkpoint reading the base needs: the base itself, or the full checkpoint
    /// its delta chain starts at.
    pub anchor: u64,
}

/// What the flags byte says about the body.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BodyKind {
    /// The (reconstructed) body holds a recorded input.
    pub input: bool,
    /// The (reconstructed) body holds a frontier.
    pub frontier: bool,
}

/// Whether an envelope is written with its checksum, or with four zero bytes in its place that
/// [`write_checksum`] fills in later.
///
/// Only `MemoryStore` takes unsealed envelopes: it keeps them in the process's own memory,
/// where a checksum protects nothing until the bytes leave it, and seals each one the first
/// time it is read. Every other store gets sealed envelopes, so bytes at rest are always
/// verifiable. A checksum costs about as much as the bincode encoding of the state itself, so
/// this halves the cost of an in-memory checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seal {
    /// The checksum is written now.
    Now,
    /// The checksum is left for the store to write.
    Later,
}

/// Encodes a full checkpoint: the header, then `(state, pending input, failure)` and the
/// frontier, if any, written straight into `buf` (emptied first; a recycled buffer, or a new
/// one; `capacity` is a hint: the previous size). Returns the envelope and where its body
/// lies in it.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn encode<S: Serialize, I: Serialize>(
    header: &Header<'_>,
    state: &S,
    input: Option<&I>,
    failure: Option<&Failure>,
    frontier: Option<FrontierRef<'_>>,
    mut buf: Vec<u8>,
    capacity: usize,
    seal: Seal,
) -> Result<(Vec<u8>, std::ops::Range<usize>), Error> {
    buf.clear();
    buf.reserve(capacity.max(FIXED_HEADER_V2 + header.node.len() + 72));
    let kind = BodyKind {
        input: input.is_some(),
        frontier: frontier.is_some(),
    };
    write_header(&mut buf, header, kind, None, None)?;
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let encode_error = |reason| Error::Encode {
        session: header.session.to_owned(),
        reason,
    };
    codec::encode_into(&(state, input, failure), &mut buf).map_err(encode_error)?;
    if let Some(f) = frontier {
        let (item_schema, items) = match f.items {
            Some((schema, items)) => (schema, Some(items)),
            None => (0, None),
        };
        codec::encode_into(&(f.opened, item_schema, items, f.slots), &mut buf)
            .map_err(encode_error)?;
    }
    let body_len = buf.len() - len_at - 4;
    if body_len > MAX_BODY_BYTES {
        return Err(Error::Encode {
            session: header.session.to_owned(),
            reason: format!(
                "the state encodes to {body_len} bytes, more than the limit of {MAX_BODY_BYTES}"
            ),
        });
    }
    // Fits: checked against MAX_BODY_BYTES just above.
    buf[len_at..len_at + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    finish(header.session, &mut buf, seal);
    // A buffer that grew while encoding (a session's first checkpoint, or a state that grew)
    // may have up to twice the room it needs; a store that keeps it in memory would keep
    // that room too. Shrinking is an in-place reallocation.
    if buf.capacity() - buf.len() > buf.len() / 8 {
        buf.shrink_to_fit();
    }
    Ok((buf, len_at + 4..len_at + 4 + body_len))
}

#[inline(always)]
fn write_header(
    buf: &mut Vec<u8>,
    header: &Header<'_>,
    kind: BodyKind,
    delta: Option<DeltaOf>,
    record: Option<RecordOf>,
) -> Result<(), Error> {
    let has_input = kind.input;
    let node = header.node.as_bytes();
    let node_len = u16::try_from(node.len()).map_err(|_| Error::Encode {
        session: header.session.to_owned(),
        reason: format!("node name of {} bytes is too long", node.len()),
    })?;
    let mut flags = 0;
    if has_input {
        flags |= FLAG_INPUT;
    }
    if delta.is_some() {
        flags |= FLAG_DELTA;
    }
    if kind.frontier {
        flags |= FLAG_FRONTIER;
    }
    if record.is_some() {
        flags |= FLAG_RECORD;
    }
    // The fixed part is assembled on the stack and copied once.
    let input_schema = if has_input { header.input_schema } else { 0 };
    let mut fixed = [0u8; FIXED_HEADER_V2];
    fixed[..4].copy_from_slice(&MAGIC);
    fixed[4..8].copy_from_slice(&[VERSION_4, CODEC_BINCODE2, header.status, flags]);
    fixed[8..16].copy_from_slice(&header.graph_hash.to_le_bytes());
    fixed[16..24].copy_from_slice(&header.seq.to_le_bytes());
    fixed[24..32].copy_from_slice(&header.state_schema.to_le_bytes());
    fixed[32..40].copy_from_slice(&input_schema.to_le_bytes());
    fixed[40..].copy_from_slice(&node_len.to_le_bytes());
    buf.extend_from_slice(&fixed);
    buf.extend_from_slice(node);
    if let Some(delta) = delta {
        buf.extend_from_slice(&delta.base.to_le_bytes());
        buf.extend_from_slice(&delta.anchor.to_le_bytes());
        buf.extend_from_slice(&delta.body_len.to_le_bytes());
        buf.extend_from_slice(&delta.body_crc.to_le_bytes());
    }
    if let Some(record) = record {
        buf.extend_from_slice(&record.base.to_le_bytes());
        buf.extend_from_slice(&record.anchor.to_le_bytes());
    }
    Ok(())
}

/// Wraps a body (a delta when `delta` is set) in a version-4 envelope. `kind` says what the
/// (reconstructed) body holds.
pub(crate) fn seal(
    header: &Header<'_>,
    kind: BodyKind,
    delta: Option<DeltaOf>,
    body: &[u8],
    seal: Seal,
) -> Result<Vec<u8>, Error> {
    seal_any(header, kind, delta, None, body, seal)
}

/// Wraps the slot changes of a branch record in a version-4 envelope (flag 8); `has_input`
/// when one of them is a recorded input.
pub(crate) fn seal_record(
    header: &Header<'_>,
    has_input: bool,
    record: RecordOf,
    changes: &[(u32, &Slot)],
    seal: Seal,
) -> Result<Vec<u8>, Error> {
    // Encoded straight after the header, into a buffer of about the right size: one
    // allocation per record, no copy of its body.
    let estimate: usize = changes
        .iter()
        .map(|(_, slot)| match slot {
            Slot::Done(saved) | Slot::Input(saved) => saved.bytes.len() + 24,
            Slot::Failed(failure) => failure.node().len() + failure.error().len() + 24,
            Slot::Pending | Slot::Waiting => 8,
        })
        .sum();
    let kind = BodyKind {
        input: has_input,
        frontier: false,
    };
    let mut buf =
        Vec::with_capacity(FIXED_HEADER_V2 + header.node.len() + RECORD_FIELDS + 8 + estimate + 8);
    write_header(&mut buf, header, kind, None, Some(record))?;
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    codec::encode_into(changes, &mut buf).map_err(|reason| Error::Encode {
        session: header.session.to_owned(),
        reason,
    })?;
    let body_len = buf.len() - len_at - 4;
    if body_len > MAX_BODY_BYTES {
        return Err(Error::Encode {
            session: header.session.to_owned(),
            reason: format!(
                "the branch record is {body_len} bytes, more than the limit of {MAX_BODY_BYTES}"
            ),
        });
    }
    // Fits: checked against MAX_BODY_BYTES just above.
    buf[len_at..len_at + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    finish(header.session, &mut buf, seal);
    Ok(buf)
}

fn seal_any(
    header: &Header<'_>,
    kind: BodyKind,
    delta: Option<DeltaOf>,
    record: Option<RecordOf>,
    body: &[u8],
    seal: Seal,
) -> Result<Vec<u8>, Error> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::Encode {
            session: header.session.to_owned(),
            reason: format!(
                "the body is {} bytes, more than the limit of {MAX_BODY_BYTES}",
                body.len()
            ),
        });
    }
    let mut buf =
        Vec::with_capacity(FIXED_HEADER_V2 + header.node.len() + DELTA_FIELDS + body.len() + 8);
    write_header(&mut buf, header, kind, delta, record)?;
    // Fits: checked against MAX_BODY_BYTES above.
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(body);
    finish(header.session, &mut buf, seal);
    Ok(buf)
}

/// Appends the checksum of everything in `buf`, or its placeholder (see [`Seal`]).
fn finish(session: &str, buf: &mut Vec<u8>, seal: Seal) {
    let crc = match seal {
        Seal::Now => checksum(session, buf),
        Seal::Later => 0,
    };
    buf.extend_from_slice(&crc.to_le_bytes());
}

/// Writes the checksum of an envelope written with [`Seal::Later`] into its last four bytes
/// (it binds `session`, as every checksum does). Bytes shorter than a checksum are left as
/// they are: no envelope is that short, and opening them reports them as corrupt.
pub(crate) fn write_checksum(session: &str, bytes: &mut [u8]) {
    let Some(at) = bytes.len().checked_sub(4) else {
        return;
    };
    let crc = checksum(session, &bytes[..at]);
    bytes[at..].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(session: &str, bytes: &[u8]) -> u32 {
    let len = u32::try_from(session.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(session.as_bytes());
    hasher.update(bytes);
    hasher.finalize()
}

/// The CRC-32 of a body, as a delta envelope records it for its reconstructed body.
pub(crate) fn body_checksum(body: &[u8]) -> u32 {
    crc32fast::hash(body)
}

/// A verified envelope whose body is not decoded yet.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub seq: u64,
    /// The status's integer code (checked to be a known one): see [`Envelope::status`].
    pub status: u8,
    /// Whether the body's slots and map items carry fingerprints (version 4 on).
    pub typed: bool,
    pub node: &'a str,
    pub graph_hash: u64,
    /// `None` in a version-1 envelope, which recorded no fingerprint.
    pub state_schema: Option<u64>,
    /// `Some` when the body holds a recorded input (version 2 only).
    pub input_schema: Option<u64>,
    /// `Some` when the body is a delta.
    pub delta: Option<DeltaOf>,
    /// Whether the (reconstructed) body holds a frontier after the state.
    pub frontier: bool,
    /// `Some` when this is a branch record: its body is slot changes, not a state.
    pub record: Option<RecordOf>,
    pub body: &'a [u8],
}

#[cfg(test)]
impl Envelope<'_> {
    /// The checkpoint's status, waiting at `node` when it waits. The code was checked when it
    /// was opened.
    pub fn status_at(&self, node: &str) -> Status {
        Status::from_code(self.status, Some(node)).unwrap_or(Status::Running)
    }
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Checks framing, checksum and sequence number; leaves the graph hash, the fingerprints and
/// the body to the caller.
pub(crate) fn open<'a>(session: &str, seq: u64, bytes: &'a [u8]) -> Result<Envelope<'a>, Error> {
    let corrupt = |reason: &str| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason: reason.to_owned(),
    };
    // Length cap first, so a hostile length is never trusted for anything.
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(corrupt("larger than any checkpoint can be"));
    }
    if bytes.len() < 8 {
        return Err(corrupt("truncated: shorter than the envelope header"));
    }
    if bytes[..4] != MAGIC {
        return Err(corrupt("not a graph-runtime checkpoint (bad magic)"));
    }
    // The version byte is not covered by the checksum yet: a damaged one is caught below,
    // because every version's checksum covers it.
    let (fixed, cursor_len_at) = match bytes[4] {
        VERSION_1 => (FIXED_HEADER_V1, 24),
        VERSION_2 | VERSION_3 | VERSION_4 => (FIXED_HEADER_V2, 40),
        _ => {
            return Err(corrupt(
                "unknown envelope version (damaged, or written by a newer release)",
            ));
        }
    };
    if bytes.len() < fixed + 8 {
        return Err(corrupt("truncated: shorter than the envelope header"));
    }
    let version = bytes[4];
    let flags = if version == VERSION_1 { 0 } else { bytes[7] };
    let node_len =
        usize::from(read_u16(bytes, cursor_len_at).ok_or_else(|| corrupt("truncated header"))?);
    let delta_at = fixed + node_len;
    // A damaged flags byte may announce fields that are not there: the checksum below
    // catches it, and until then the lengths it implies are only used to find the checksum.
    let len_at = if flags & FLAG_RECORD != 0 {
        delta_at + RECORD_FIELDS
    } else if flags & FLAG_DELTA != 0 {
        delta_at + DELTA_FIELDS
    } else {
        delta_at
    };
    let body_at = len_at + 4;
    let body_len = read_u32(bytes, len_at)
        .ok_or_else(|| corrupt("truncated: the header runs past the end"))?;
    let body_len = usize::try_from(body_len).map_err(|_| corrupt("body length too large"))?;
    if body_len > MAX_BODY_BYTES {
        return Err(corrupt("body length above the limit"));
    }
    if bytes.len() != body_at + body_len + 4 {
        return Err(corrupt(
            "length does not match the recorded body length (truncated or padded)",
        ));
    }
    let crc_at = body_at + body_len;
    let stored_crc = read_u32(bytes, crc_at).ok_or_else(|| corrupt("truncated checksum"))?;
    if stored_crc != checksum(session, &bytes[..crc_at]) {
        return Err(corrupt(
            "checksum mismatch (damaged bytes, or a checkpoint of another session)",
        ));
    }
    // Checksummed from here on: a mismatch below means a well-formed envelope in the wrong place
    // or from a newer release, not random damage.
    if bytes[5] != CODEC_BINCODE2 {
        return Err(corrupt("unsupported codec"));
    }
    if bytes[4] == VERSION_1 && bytes[7] != 0 {
        return Err(corrupt("reserved header byte is not zero"));
    }
    let known = if version >= VERSION_3 {
        FLAG_INPUT | FLAG_DELTA | FLAG_FRONTIER | FLAG_RECORD
    } else {
        FLAG_INPUT | FLAG_DELTA
    };
    if flags & !known != 0 {
        return Err(corrupt(
            "unknown header flags (written by a newer release?)",
        ));
    }
    if flags & FLAG_RECORD != 0 && flags & (FLAG_DELTA | FLAG_FRONTIER) != 0 {
        return Err(corrupt(
            "a branch record cannot be a delta or hold a frontier",
        ));
    }
    let status = bytes[6];
    if Status::from_code(status, Some("")).is_none() {
        return Err(corrupt("unknown status byte"));
    }
    let graph_hash = read_u64(bytes, 8).ok_or_else(|| corrupt("truncated header"))?;
    let stored_seq = read_u64(bytes, 16).ok_or_else(|| corrupt("truncated header"))?;
    if stored_seq != seq {
        return Err(corrupt(
            "sequence number in the envelope differs from the store's",
        ));
    }
    let (state_schema, input_schema) = if version != VERSION_1 {
        let state = read_u64(bytes, 24).ok_or_else(|| corrupt("truncated header"))?;
        let input = read_u64(bytes, 32).ok_or_else(|| corrupt("truncated header"))?;
        (Some(state), (flags & FLAG_INPUT != 0).then_some(input))
    } else {
        (None, None)
    };
    let node = std::str::from_utf8(&bytes[fixed..fixed + node_len])
        .map_err(|_| corrupt("cursor is not UTF-8"))?;
    let delta = if flags & FLAG_DELTA != 0 {
        let field = |at: usize| read_u64(bytes, delta_at + at).ok_or_else(|| corrupt("truncated"));
        let base = field(0)?;
        let anchor = field(8)?;
        let body_len = read_u32(bytes, delta_at + 16).ok_or_else(|| corrupt("truncated"))?;
        let body_crc = read_u32(bytes, delta_at + 20).ok_or_else(|| corrupt("truncated"))?;
        if !(anchor <= base && base < seq) {
            return Err(corrupt(
                "a delta must apply to an earlier checkpoint of its chain",
            ));
        }
        if body_len as usize > MAX_BODY_BYTES {
            return Err(corrupt("reconstructed body length above the limit"));
        }
        Some(DeltaOf {
            base,
            anchor,
            body_len,
            body_crc,
        })
    } else {
        None
    };
    let record = if flags & FLAG_RECORD != 0 {
        let field = |at: usize| read_u64(bytes, delta_at + at).ok_or_else(|| corrupt("truncated"));
        let base = field(0)?;
        let anchor = field(8)?;
        if !(anchor <= base && base < seq) {
            return Err(corrupt(
                "a branch record must extend an earlier checkpoint of its session",
            ));
        }
        Some(RecordOf { base, anchor })
    } else {
        None
    };
    Ok(Envelope {
        seq,
        status,
        typed: version >= VERSION_4,
        node,
        graph_hash,
        state_schema,
        input_schema,
        delta,
        frontier: flags & FLAG_FRONTIER != 0,
        record,
        body: &bytes[body_at..crc_at],
    })
}

/// A decoded body.
#[cfg(test)]
pub(crate) type Body<S, I> = (S, Option<I>, Option<Failure>);

/// What follows the state in a body.
pub(crate) type Tail<I> = (Option<I>, Option<Failure>, Option<FrontierBody>);

/// Decodes the rest of a body after its state: `(pending input, failure)` and, when
/// `frontier`, the frontier (`typed`: with the fingerprints of version 4; without, as version
/// 3 wrote it); every byte consumed.
pub(crate) fn decode_tail<I: DeserializeOwned>(
    session: &str,
    seq: u64,
    tail: &[u8],
    frontier: bool,
    typed: bool,
) -> Result<Tail<I>, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    };
    let ((input, failure), mut read) = decode_prefix::<(Option<I>, Option<Failure>)>(tail)
        .map_err(|e| corrupt(format!("body does not decode: {e}")))?;
    let frontier_error = |e| corrupt(format!("frontier does not decode: {e}"));
    let frontier = if !frontier {
        None
    } else if typed {
        type Typed = (u64, u64, Option<Vec<Vec<u8>>>, Vec<Slot>);
        let ((opened, item_schema, items, slots), more) =
            decode_prefix::<Typed>(&tail[read..]).map_err(frontier_error)?;
        read += more;
        Some(FrontierBody {
            opened,
            items: items.map(|items| (item_schema, items)),
            slots,
        })
    } else {
        type Untyped = (u64, Option<Vec<Vec<u8>>>, Vec<SlotV3>);
        let ((opened, items, slots), more) =
            decode_prefix::<Untyped>(&tail[read..]).map_err(frontier_error)?;
        read += more;
        Some(FrontierBody {
            opened,
            items: items.map(|items| (Saved::UNRECORDED, items)),
            slots: slots.into_iter().map(Slot::from).collect(),
        })
    };
    if read != tail.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the body",
            tail.len() - read
        )));
    }
    Ok((input, failure, frontier))
}

/// Decodes the body of a branch record: its slot changes (`typed`: with the fingerprints of
/// version 4), every byte consumed.
pub(crate) fn decode_record(
    session: &str,
    seq: u64,
    body: &[u8],
    typed: bool,
) -> Result<Vec<(u32, Slot)>, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    };
    let record_error = |e| corrupt(format!("branch record does not decode: {e}"));
    let (changes, read) = if typed {
        decode_prefix::<Vec<(u32, Slot)>>(body).map_err(record_error)?
    } else {
        let (changes, read) = decode_prefix::<Vec<(u32, SlotV3)>>(body).map_err(record_error)?;
        let changes = changes.into_iter().map(|(i, slot)| (i, Slot::from(slot)));
        (changes.collect(), read)
    };
    if read != body.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the branch record",
            body.len() - read
        )));
    }
    Ok(changes)
}

/// Decodes a whole body of the compiled types: `(state, pending input, failure)`, with an
/// allocation limit, every byte consumed.
#[cfg(test)]
pub(crate) fn decode_body<S: DeserializeOwned, I: DeserializeOwned>(
    session: &str,
    seq: u64,
    body: &[u8],
) -> Result<Body<S, I>, Error> {
    let (state, read) = decode_prefix::<S>(body).map_err(|e| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason: format!("body does not decode: {e}"),
    })?;
    let (input, failure, _) = decode_tail(session, seq, &body[read..], false, true)?;
    Ok((state, input, failure))
}

/// Encodes one value with the checkpoint codec: a branch's output or a map item, saved inside
/// a frontier as it is.
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    codec::encode_into(value, &mut buf)?;
    Ok(buf)
}

/// Encodes a value for an in-memory rollback copy (no envelope: it never leaves the process).
pub(crate) fn encode_rollback<T: Serialize>(session: &str, value: &T) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    codec::encode_into(value, &mut buf).map_err(|reason| Error::Encode {
        session: session.to_owned(),
        reason,
    })?;
    Ok(buf)
}

/// Decodes a rollback copy made by [`encode_rollback`].
pub(crate) fn decode_rollback<T: DeserializeOwned>(
    session: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<T, Error> {
    decode_prefix(bytes)
        .map(|(value, _)| value)
        .map_err(|e| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason: format!("rollback copy does not decode: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: u64 = 0xfeed;
    const SCHEMA: u64 = 0x5c4e;

    fn header(session: &str, seq: u64) -> Header<'_> {
        Header {
            session,
            graph_hash: HASH,
            seq,
            status: Status::Running.code(),
            node: "charge",
            state_schema: SCHEMA,
            input_schema: 0x1a,
        }
    }

    fn sample(session: &str, seq: u64) -> Vec<u8> {
        let state = (7u64, "x".repeat(100));
        encode(
            &header(session, seq),
            &state,
            None::<&u32>,
            None,
            None,
            Vec::new(),
            0,
            Seal::Now,
        )
        .unwrap()
        .0
    }

    fn body_of<S: Serialize, I: Serialize>(state: &S, input: Option<&I>) -> Vec<u8> {
        let mut body = Vec::new();
        codec::encode_into(&(state, input, None::<Failure>), &mut body).unwrap();
        body
    }

    fn decode(session: &str, seq: u64, bytes: &[u8]) -> Result<(u64, String), Error> {
        let env = open(session, seq, bytes)?;
        let (state, input, failure): Body<(u64, String), u32> =
            decode_body(session, seq, env.body)?;
        assert!(input.is_none() && failure.is_none());
        Ok(state)
    }

    /// An envelope as the first release wrote it (version 1), built by hand from its layout.
    fn version_1(session: &str, seq: u64, node: &str, body: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"GRCP");
        buf.extend_from_slice(&[1, 1, crate::store::status_code::WAITING, 0]);
        buf.extend_from_slice(&HASH.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&(node.len() as u16).to_le_bytes());
        buf.extend_from_slice(node.as_bytes());
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(body);
        let crc = checksum(session, &buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        buf
    }

    #[test]
    fn round_trip() {
        let bytes = sample("s", 3);
        let env = open("s", 3, &bytes).unwrap();
        assert_eq!(
            (env.seq, env.status_at(env.node), env.node, env.graph_hash),
            (3, Status::Running, "charge", HASH)
        );
        assert_eq!(env.state_schema, Some(SCHEMA));
        assert_eq!(env.input_schema, None);
        assert_eq!(env.delta, None);
        assert_eq!(decode("s", 3, &bytes).unwrap(), (7, "x".repeat(100)));
    }

    #[test]
    fn a_recorded_input_carries_its_schema() {
        let (bytes, range) = encode(
            &header("s", 1),
            &1u8,
            Some(&2u16),
            None,
            None,
            Vec::new(),
            0,
            Seal::Now,
        )
        .unwrap();
        assert_eq!(&bytes[range], body_of(&1u8, Some(&2u16)));
        let env = open("s", 1, &bytes).unwrap();
        assert_eq!(env.input_schema, Some(0x1a));
        let (state, input, _): Body<u8, u16> = decode_body("s", 1, env.body).unwrap();
        assert_eq!((state, input), (1, Some(2)));
    }

    #[test]
    fn a_delta_header_round_trips() {
        let delta = DeltaOf {
            base: 4,
            anchor: 2,
            body_len: 9,
            body_crc: 0xdead_beef,
        };
        let bytes = seal(
            &header("s", 5),
            BodyKind::default(),
            Some(delta),
            b"delta",
            Seal::Now,
        )
        .unwrap();
        let env = open("s", 5, &bytes).unwrap();
        assert_eq!(env.delta, Some(delta));
        assert_eq!(env.body, b"delta");
        // A delta that claims to apply to itself or a later checkpoint is refused.
        for (base, anchor) in [(5, 2), (6, 2), (4, 5)] {
            let bad = DeltaOf {
                base,
                anchor,
                ..delta
            };
            let bytes = seal(
                &header("s", 5),
                BodyKind::default(),
                Some(bad),
                b"delta",
                Seal::Now,
            )
            .unwrap();
            assert!(matches!(open("s", 5, &bytes), Err(Error::Corrupt { .. })));
        }
    }

    /// A slot as version 3 encoded it.
    #[derive(Serialize)]
    enum SlotV3Written {
        #[allow(dead_code)]
        Pending,
        Waiting,
        Input(Vec<u8>),
        Done(Vec<u8>),
    }

    /// A version-3 envelope with a frontier, or a branch record, built from its layout: slots
    /// and items without fingerprints.
    #[test]
    fn version_3_frontiers_and_records_open_without_fingerprints() {
        let mut body = Vec::new();
        codec::encode_into(&(7u8, None::<u8>, None::<Failure>), &mut body).unwrap();
        let items = vec![vec![1u8], vec![2u8]];
        let slots = vec![SlotV3Written::Done(vec![9]), SlotV3Written::Input(vec![4])];
        codec::encode_into(&(4u64, Some(&items), &slots), &mut body).unwrap();
        let kind = BodyKind {
            input: false,
            frontier: true,
        };
        let v4 = seal(&header("s", 5), kind, None, &body, Seal::Now).unwrap();
        let v3 = as_version("s", &v4, VERSION_3);
        let env = open("s", 5, &v3).unwrap();
        assert!(!env.typed && env.frontier);
        let (_, read) = decode_prefix::<u8>(env.body).unwrap();
        let (_, _, frontier) =
            decode_tail::<u8>("s", 5, &env.body[read..], env.frontier, env.typed).unwrap();
        assert_eq!(
            frontier,
            Some(FrontierBody {
                opened: 4,
                items: Some((Saved::UNRECORDED, items)),
                slots: vec![
                    Slot::Done(Saved::new(Saved::UNRECORDED, vec![9])),
                    Slot::Input(Saved::new(Saved::UNRECORDED, vec![4])),
                ],
            })
        );
        // The same bytes read as version 4 do not decode: the fingerprints are missing.
        assert!(decode_tail::<u8>("s", 5, &env.body[read..], true, true).is_err());

        let of = RecordOf { base: 5, anchor: 5 };
        let changes = encode_value(&vec![(1u32, SlotV3Written::Waiting)]).unwrap();
        let kind = BodyKind::default();
        let record = seal_any(&header("s", 6), kind, None, Some(of), &changes, Seal::Now).unwrap();
        let record = as_version("s", &record, VERSION_3);
        let env = open("s", 6, &record).unwrap();
        assert_eq!(
            decode_record("s", 6, env.body, env.typed).unwrap(),
            [(1, Slot::Waiting)]
        );
    }

    #[test]
    fn version_1_envelopes_still_open() {
        let body = body_of(&(7u64, "x".to_owned()), None::<&u32>);
        let bytes = version_1("s", 9, "review", &body);
        let env = open("s", 9, &bytes).unwrap();
        assert_eq!(
            (env.status_at("review"), env.node, env.graph_hash),
            (
                Status::Waiting {
                    node: "review".to_owned()
                },
                "review",
                HASH
            )
        );
        assert_eq!(
            (env.state_schema, env.input_schema, env.delta),
            (None, None, None)
        );
        assert_eq!(decode("s", 9, &bytes).unwrap(), (7, "x".to_owned()));
        // Every bit flip of a version-1 envelope is caught too.
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            assert!(
                matches!(decode("s", 9, &damaged), Err(Error::Corrupt { .. })),
                "flip of bit {i}"
            );
        }
    }

    /// `bytes` rewritten as version `version` (its checksum recomputed).
    fn as_version(session: &str, bytes: &[u8], version: u8) -> Vec<u8> {
        let mut out = bytes[..bytes.len() - 4].to_vec();
        out[4] = version;
        let crc = checksum(session, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn version_2_envelopes_still_open_and_a_plain_checkpoint_is_unchanged() {
        // Without a frontier or a record, version 4 writes exactly what version 2 wrote,
        // apart from the version byte (and so the checksum).
        let bytes = sample("s", 3);
        assert_eq!(bytes[4], VERSION_4);
        let v2 = as_version("s", &bytes, VERSION_2);
        assert_eq!(bytes[5..bytes.len() - 4], v2[5..v2.len() - 4]);
        let env = open("s", 3, &v2).unwrap();
        assert_eq!((env.frontier, env.record, env.delta), (false, None, None));
        assert_eq!(decode("s", 3, &v2).unwrap(), (7, "x".repeat(100)));
        // Version 2 never had frontiers or records: those flags are refused there.
        let frontier = FrontierRef {
            opened: 1,
            items: None,
            slots: &[Slot::Pending],
        };
        let (with_frontier, _) = encode(
            &header("s", 3),
            &1u8,
            None::<&u8>,
            None,
            Some(frontier),
            Vec::new(),
            0,
            Seal::Now,
        )
        .unwrap();
        assert!(open("s", 3, &with_frontier).unwrap().frontier);
        let v2 = as_version("s", &with_frontier, VERSION_2);
        assert!(matches!(open("s", 3, &v2), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_frontier_and_a_record_round_trip() {
        let items = vec![vec![1, 2], vec![3]];
        let slots = vec![
            Slot::Done(Saved::new(0xd0, vec![9])),
            Slot::Waiting,
            Slot::Input(Saved::new(0x1a, vec![4])),
        ];
        let frontier = FrontierRef {
            opened: 4,
            items: Some((0x17, &items)),
            slots: &slots,
        };
        let (bytes, _) = encode(
            &header("s", 5),
            &7u8,
            None::<&u8>,
            None,
            Some(frontier),
            Vec::new(),
            0,
            Seal::Now,
        )
        .unwrap();
        let env = open("s", 5, &bytes).unwrap();
        let (state, read) = decode_prefix::<u8>(env.body).unwrap();
        let (input, failure, body) =
            decode_tail::<u8>("s", 5, &env.body[read..], env.frontier, env.typed).unwrap();
        assert_eq!((state, input, failure), (7, None, None));
        assert_eq!(
            body,
            Some(FrontierBody {
                opened: 4,
                items: Some((0x17, items)),
                slots: slots.clone(),
            })
        );
        let of = RecordOf { base: 5, anchor: 2 };
        let done = Slot::Done(Saved::new(0xd0, vec![1, 2, 3]));
        let record = seal_record(&header("s", 6), false, of, &[(1, &done)], Seal::Now).unwrap();
        let env = open("s", 6, &record).unwrap();
        assert_eq!(
            (env.record, env.frontier, env.delta),
            (Some(of), false, None)
        );
        assert_eq!(
            decode_record("s", 6, env.body, env.typed).unwrap(),
            [(1, done)]
        );
        // A record that claims to extend itself or a later checkpoint is refused.
        for (base, anchor) in [(6, 2), (7, 2), (5, 6)] {
            let bad = seal_record(
                &header("s", 6),
                false,
                RecordOf { base, anchor },
                &[],
                Seal::Now,
            )
            .unwrap();
            assert!(matches!(open("s", 6, &bad), Err(Error::Corrupt { .. })));
        }
        // Every bit flip of a record is caught.
        for i in 0..record.len() * 8 {
            let mut damaged = record.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            assert!(
                matches!(open("s", 6, &damaged), Err(Error::Corrupt { .. })),
                "flip of bit {i}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_corrupt() {
        let delta = DeltaOf {
            base: 2,
            anchor: 1,
            body_len: 3,
            body_crc: 7,
        };
        let body = body_of(&(7u64, "x".repeat(100)), None::<&u32>);
        let with_delta = seal(
            &header("s", 3),
            BodyKind::default(),
            Some(delta),
            &body,
            Seal::Now,
        )
        .unwrap();
        for bytes in [sample("s", 3), with_delta] {
            for i in 0..bytes.len() * 8 {
                let mut damaged = bytes.clone();
                damaged[i / 8] ^= 1 << (i % 8);
                match open("s", 3, &damaged) {
                    Err(Error::Corrupt { .. }) => {}
                    other => panic!("flip of bit {i} gave {other:?}"),
                }
            }
        }
    }

    #[test]
    fn every_truncation_is_corrupt() {
        let bytes = sample("s", 3);
        for len in 0..bytes.len() {
            assert!(
                matches!(decode("s", 3, &bytes[..len]), Err(Error::Corrupt { .. })),
                "{len}"
            );
        }
    }

    #[test]
    fn other_session_or_seq_is_rejected() {
        let bytes = sample("s", 3);
        assert!(matches!(decode("t", 3, &bytes), Err(Error::Corrupt { .. })));
        assert!(matches!(decode("s", 4, &bytes), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn hostile_length_prefix_is_an_error_not_an_abort() {
        // A Vec<u64> claiming 2^40 elements: varint tag 0xfd then a u64 length.
        let mut body = vec![0xfd];
        body.extend_from_slice(&(1u64 << 40).to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        assert_eq!(body.len(), 11);
        let r = decode_body::<Vec<u64>, u8>("s", 1, &body);
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut body = Vec::new();
        let value = (5u8, None::<u8>, None::<Failure>);
        codec::encode_into(&value, &mut body).unwrap();
        body.push(0);
        let r = decode_body::<u8, u8>("s", 1, &body);
        assert!(matches!(r, Err(Error::Corrupt { ref reason, .. }) if reason.contains("trailing")));
    }
}
