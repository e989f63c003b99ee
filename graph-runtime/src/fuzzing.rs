//! Entry points for the fuzz targets of the repository's `fuzz/` directory and for the test
//! that replays their corpus (feature `fuzzing`, off by default).
//!
//! Not part of the public API: hidden from the documentation, outside any semver promise, and
//! of no use to a program. A checkpoint's checksum stands in front of everything a decoder
//! does, and random bytes never pass it; these functions let a fuzzer write a valid checksum
//! over bytes of its choosing (`seal`) and call the decoders behind it directly: the
//! envelope (`open`, `decode`), the delta codec (`delta_encode`, `delta_reconstruct`)
//! and the chain a delta checkpoint is rebuilt from (`reconstruct`). They add no behaviour:
//! each is one call of what the runner itself calls.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{self, FrontierRef};
use crate::error::{Error, Result};
use crate::store::Checkpoint;

pub use crate::checkpoint::{Failure, Saved, Slot};

/// The largest body a checkpoint may hold, and the limit the runner reconstructs deltas with.
pub const MAX_BODY_BYTES: usize = checkpoint::MAX_BODY_BYTES;

/// The header fields of a checkpoint to encode (see [`encode`]).
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// The session id the checksum binds.
    pub session: &'a str,
    /// The graph hash.
    pub graph_hash: u64,
    /// The sequence number.
    pub seq: u64,
    /// The status's integer code (0 running, 1 waiting, 2 completed, 3 failed, 4 cancelled).
    pub status: u8,
    /// The cursor node.
    pub node: &'a str,
    /// The state schema fingerprint.
    pub state_schema: u64,
    /// The input schema fingerprint (written only with an input).
    pub input_schema: u64,
}

/// The frontier of a parallel region, as a body holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    /// The sequence number of the step that opened the region.
    pub opened: u64,
    /// A map's item fingerprint and encoded items.
    pub items: Option<(u64, Vec<Vec<u8>>)>,
    /// One slot per branch or item.
    pub slots: Vec<Slot>,
}

/// A decoded full checkpoint: what its body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body<S, I> {
    /// The state.
    pub state: S,
    /// The recorded input.
    pub input: Option<I>,
    /// The failure before an error edge.
    pub failure: Option<Failure>,
    /// The frontier of the region the session is in.
    pub frontier: Option<Frontier>,
}

/// What an opened checkpoint holds, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<S, I> {
    /// A whole body.
    Full(Body<S, I>),
    /// A delta: its body is read through its chain (`reconstruct`).
    Delta,
    /// A branch record: the slots it changes.
    Record(Vec<(u32, Slot)>),
}

/// The header fields `open` verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The status's integer code.
    pub status: u8,
    /// The cursor node.
    pub node: String,
    /// The graph hash.
    pub graph_hash: u64,
    /// The state schema fingerprint (`None` in a version-1 envelope).
    pub state_schema: Option<u64>,
    /// The input schema fingerprint, when the body holds an input.
    pub input_schema: Option<u64>,
    /// Whether the body holds a frontier.
    pub frontier: bool,
    /// The body's length in bytes.
    pub body_len: usize,
}

/// Writes the checksum of `bytes`, bound to `session`, into their last four bytes (what every
/// store's envelope ends with). Bytes shorter than four are left as they are.
pub fn seal(session: &str, bytes: &mut [u8]) {
    checkpoint::write_checksum(session, bytes);
}

/// A failure record, as an error edge saves it.
pub fn failure(node: &str, error: &str) -> Failure {
    Failure::new(node, error.to_owned())
}

/// Encodes a full checkpoint, as the runner writes it, sealed.
pub fn encode<S: Serialize, I: Serialize>(
    header: &Header<'_>,
    body: &Body<S, I>,
) -> Result<Vec<u8>> {
    let frontier = body.frontier.as_ref().map(|f| FrontierRef {
        opened: f.opened,
        items: f
            .items
            .as_ref()
            .map(|(schema, items)| (*schema, &items[..])),
        slots: &f.slots,
    });
    let (bytes, _) = checkpoint::encode(
        &internal(header),
        &body.state,
        body.input.as_ref(),
        body.failure.as_ref(),
        frontier,
        Vec::new(),
        0,
        checkpoint::Seal::Now,
    )?;
    Ok(bytes)
}

/// Encodes a branch record extending checkpoint `base` (whose chain starts at `anchor`),
/// sealed.
pub fn encode_record(
    header: &Header<'_>,
    base: u64,
    anchor: u64,
    changes: &[(u32, Slot)],
) -> Result<Vec<u8>> {
    let has_input = changes
        .iter()
        .any(|(_, slot)| matches!(slot, Slot::Input(_)));
    let changes: Vec<(u32, &Slot)> = changes.iter().map(|(i, slot)| (*i, slot)).collect();
    checkpoint::seal_record(
        &internal(header),
        has_input,
        checkpoint::RecordOf { base, anchor },
        &changes,
        checkpoint::Seal::Now,
    )
}

fn internal<'a>(header: &Header<'a>) -> checkpoint::Header<'a> {
    checkpoint::Header {
        session: header.session,
        graph_hash: header.graph_hash,
        seq: header.seq,
        status: header.status,
        node: header.node,
        state_schema: header.state_schema,
        input_schema: header.input_schema,
    }
}

/// Opens checkpoint `seq` of `session`: the length cap, the framing, the checksum and the
/// sequence number, as every read does first.
pub fn open(session: &str, seq: u64, bytes: &[u8]) -> Result<Opened> {
    let envelope = checkpoint::open(session, seq, bytes)?;
    Ok(Opened {
        status: envelope.status,
        node: envelope.node.to_owned(),
        graph_hash: envelope.graph_hash,
        state_schema: envelope.state_schema,
        input_schema: envelope.input_schema,
        frontier: envelope.frontier,
        body_len: envelope.body.len(),
    })
}

/// Opens checkpoint `seq` of `session` and decodes its body as the runner does: a whole body
/// as state `S` with input `I`, its failure and its frontier, every byte consumed; a branch
/// record as its slot changes. A delta is left undecoded ([`Decoded::Delta`]).
pub fn decode<S: DeserializeOwned, I: DeserializeOwned>(
    session: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<Decoded<S, I>> {
    let envelope = checkpoint::open(session, seq, bytes)?;
    if envelope.record.is_some() {
        let changes = checkpoint::decode_record(session, seq, envelope.body, envelope.typed)?;
        return Ok(Decoded::Record(changes));
    }
    if envelope.delta.is_some() {
        return Ok(Decoded::Delta);
    }
    decode_body(
        session,
        seq,
        envelope.body,
        envelope.frontier,
        envelope.typed,
    )
    .map(Decoded::Full)
}

/// Decodes a whole body (a full checkpoint's, or one `reconstruct` rebuilt): the state,
/// then the rest, every byte consumed.
pub fn decode_body<S: DeserializeOwned, I: DeserializeOwned>(
    session: &str,
    seq: u64,
    body: &[u8],
    frontier: bool,
    typed: bool,
) -> Result<Body<S, I>> {
    let (state, read) = checkpoint::decode_prefix::<S>(body).map_err(|e| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason: format!("state does not decode: {e}"),
    })?;
    let (input, failure, frontier) =
        checkpoint::decode_tail::<I>(session, seq, &body[read..], frontier, typed)?;
    Ok(Body {
        state,
        input,
        failure,
        frontier: frontier.map(|f| Frontier {
            opened: f.opened,
            items: f.items,
            slots: f.slots,
        }),
    })
}

/// Rebuilds the body of delta checkpoint `seq` of `session` from `links`, the stored
/// checkpoints from its chain's full checkpoint up to the one it applies to, and verifies it
/// against the checksum the delta recorded; returns the body.
pub fn reconstruct(session: &str, seq: u64, bytes: &[u8], links: &[Checkpoint]) -> Result<Vec<u8>> {
    let envelope = checkpoint::open(session, seq, bytes)?;
    let Some(of) = envelope.delta else {
        return Err(Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason: "not a delta".to_owned(),
        });
    };
    checkpoint::chain::reconstruct(session, &envelope, of, links).map(|(body, _, _)| body)
}

/// Encodes `new` as a delta against `old`, or `None` if it would not be smaller than
/// `max_len` bytes.
pub fn delta_encode(old: &[u8], new: &[u8], max_len: usize) -> Option<Vec<u8>> {
    checkpoint::delta::encode(old, new, max_len)
}

/// Applies `deltas` in turn to `base`; every body in the chain at most `limit` bytes.
pub fn delta_reconstruct(
    base: &[u8],
    deltas: &[&[u8]],
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    checkpoint::delta::reconstruct(base, deltas, limit)
}
