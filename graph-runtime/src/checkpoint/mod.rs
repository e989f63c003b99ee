//! The checkpoint envelope and the bincode codec — the one place that turns state into bytes
//! and back.
//!
//! Layout (integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       4     magic "GRCP"
//! 4       1     envelope version (1)
//! 5       1     codec id (1 = bincode 2, standard config)
//! 6       1     status (0 running, 1 waiting, 2 completed)
//! 7       1     reserved, 0
//! 8       8     graph hash
//! 16      8     sequence number
//! 24      2     cursor length n
//! 26      n     cursor node name (UTF-8)
//! 26+n    4     body length m
//! 30+n    m     body: bincode of (state, pending input, failure before an error edge)
//! 30+n+m  4     CRC-32 of (session id length u32, session id, bytes 0..30+n+m)
//! ```
//!
//! Decoding checks, in this order: the length cap, the framing, the checksum (which also binds
//! the session id), the sequence number, the graph hash, then decodes the body with an
//! allocation limit and requires every byte to be consumed. Nothing here can panic on any
//! input.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ctx::Failure;
use crate::{Error, GraphChange, Status};

mod codec;
pub(crate) mod delta;

pub use self::codec::{DecodeError, decode_prefix};

const MAGIC: [u8; 4] = *b"GRCP";
const ENVELOPE_VERSION: u8 = 1;
const CODEC_BINCODE2: u8 = 1;
const FIXED_HEADER: usize = 26;
/// Bytes around the body and the cursor: fixed header, body length, checksum.
const OVERHEAD: usize = FIXED_HEADER + 4 + 4;

/// The largest encoded body accepted, in bytes. Anything larger is reported as corrupt before
/// the checksum is computed.
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// Status byte values.
const STATUS_RUNNING: u8 = 0;
const STATUS_WAITING: u8 = 1;
const STATUS_COMPLETED: u8 = 2;

/// The status of a checkpoint as stored in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    Waiting,
    Completed,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::Running => STATUS_RUNNING,
            Phase::Waiting => STATUS_WAITING,
            Phase::Completed => STATUS_COMPLETED,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            STATUS_RUNNING => Some(Phase::Running),
            STATUS_WAITING => Some(Phase::Waiting),
            STATUS_COMPLETED => Some(Phase::Completed),
            _ => None,
        }
    }

    pub(crate) fn status(self, node: &str) -> Status {
        match self {
            Phase::Running => Status::Running,
            Phase::Waiting => Status::Waiting {
                node: node.to_owned(),
            },
            Phase::Completed => Status::Completed,
        }
    }
}

/// What goes into one envelope.
pub(crate) struct Header<'a> {
    pub session: &'a str,
    pub graph_hash: u64,
    pub seq: u64,
    pub phase: Phase,
    pub node: &'a str,
}

/// Encodes an envelope into a new buffer of `capacity` bytes (a hint: the previous size).
pub(crate) fn encode<S: Serialize, I: Serialize>(
    header: &Header<'_>,
    state: &S,
    input: Option<&I>,
    failure: Option<&Failure>,
    capacity: usize,
) -> Result<Vec<u8>, Error> {
    let encode_error = |reason: String| Error::Encode {
        session: header.session.to_owned(),
        reason,
    };
    let node = header.node.as_bytes();
    let node_len = u16::try_from(node.len())
        .map_err(|_| encode_error(format!("node name of {} bytes is too long", node.len())))?;

    let mut buf = Vec::with_capacity(capacity.max(OVERHEAD + node.len() + 64));
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&[ENVELOPE_VERSION, CODEC_BINCODE2, header.phase.code(), 0]);
    buf.extend_from_slice(&header.graph_hash.to_le_bytes());
    buf.extend_from_slice(&header.seq.to_le_bytes());
    buf.extend_from_slice(&node_len.to_le_bytes());
    buf.extend_from_slice(node);
    let len_at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    codec::encode_into(&(state, input, failure), &mut buf).map_err(encode_error)?;
    let body_len = buf.len() - len_at - 4;
    if body_len > MAX_BODY_BYTES {
        return Err(encode_error(format!(
            "the state encodes to {body_len} bytes, more than the limit of {MAX_BODY_BYTES}"
        )));
    }
    // Fits: checked against MAX_BODY_BYTES just above.
    buf[len_at..len_at + 4].copy_from_slice(&(body_len as u32).to_le_bytes());
    let crc = checksum(header.session, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    Ok(buf)
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

/// A verified envelope whose body is not decoded yet.
#[derive(Debug)]
pub(crate) struct Envelope<'a> {
    pub seq: u64,
    pub phase: Phase,
    pub node: &'a str,
    pub body: &'a [u8],
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

/// Checks framing, checksum, sequence number and graph hash; leaves the body for [`decode_body`].
pub(crate) fn open<'a>(
    session: &str,
    seq: u64,
    bytes: &'a [u8],
    compiled_hash: u64,
    graph_change: GraphChange,
) -> Result<Envelope<'a>, Error> {
    let corrupt = |reason: &str| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason: reason.to_owned(),
    };
    // Length cap first, so a hostile length is never trusted for anything.
    if bytes.len() > MAX_BODY_BYTES + OVERHEAD + usize::from(u16::MAX) {
        return Err(corrupt("larger than any checkpoint can be"));
    }
    if bytes.len() < OVERHEAD {
        return Err(corrupt("truncated: shorter than the envelope header"));
    }
    if bytes[..4] != MAGIC {
        return Err(corrupt("not a graph-runtime checkpoint (bad magic)"));
    }
    let node_len = usize::from(read_u16(bytes, 24).ok_or_else(|| corrupt("truncated header"))?);
    let body_at = FIXED_HEADER + node_len + 4;
    let body_len = read_u32(bytes, FIXED_HEADER + node_len)
        .ok_or_else(|| corrupt("truncated: cursor runs past the end"))?;
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
    if bytes[4] != ENVELOPE_VERSION {
        return Err(corrupt("unsupported envelope version"));
    }
    if bytes[5] != CODEC_BINCODE2 {
        return Err(corrupt("unsupported codec"));
    }
    let phase = Phase::from_code(bytes[6]).ok_or_else(|| corrupt("unknown status byte"))?;
    let graph_hash = read_u64(bytes, 8).ok_or_else(|| corrupt("truncated header"))?;
    let stored_seq = read_u64(bytes, 16).ok_or_else(|| corrupt("truncated header"))?;
    if stored_seq != seq {
        return Err(corrupt(
            "sequence number in the envelope differs from the store's",
        ));
    }
    let node = std::str::from_utf8(&bytes[FIXED_HEADER..FIXED_HEADER + node_len])
        .map_err(|_| corrupt("cursor is not UTF-8"))?;
    if graph_hash != compiled_hash && graph_change == GraphChange::Strict {
        return Err(Error::GraphMismatch {
            session: session.to_owned(),
            stored: graph_hash,
            compiled: compiled_hash,
        });
    }
    Ok(Envelope {
        seq,
        phase,
        node,
        body: &bytes[body_at..crc_at],
    })
}

/// A decoded body.
pub(crate) type Body<S, I> = (S, Option<I>, Option<Failure>);

/// Decodes the body: `(state, pending input, failure)`, with an allocation limit, every byte
/// consumed.
pub(crate) fn decode_body<S: DeserializeOwned, I: DeserializeOwned>(
    session: &str,
    seq: u64,
    body: &[u8],
) -> Result<Body<S, I>, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        session: session.to_owned(),
        seq,
        reason,
    };
    let (value, read) =
        decode_prefix(body).map_err(|e| corrupt(format!("body does not decode: {e}")))?;
    if read != body.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the body",
            body.len() - read
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(session: &str, seq: u64) -> Vec<u8> {
        let state = (7u64, "x".repeat(100));
        let header = Header {
            session,
            graph_hash: 0xfeed,
            seq,
            phase: Phase::Running,
            node: "charge",
        };
        encode(&header, &state, None::<&u32>, None, 0).unwrap()
    }

    fn decode(session: &str, seq: u64, bytes: &[u8]) -> Result<(u64, String), Error> {
        let env = open(session, seq, bytes, 0xfeed, GraphChange::Strict)?;
        let (state, input, failure): Body<(u64, String), u32> =
            decode_body(session, seq, env.body)?;
        assert!(input.is_none() && failure.is_none());
        Ok(state)
    }

    #[test]
    fn round_trip() {
        let bytes = sample("s", 3);
        let env = open("s", 3, &bytes, 0xfeed, GraphChange::Strict).unwrap();
        assert_eq!(
            (env.seq, env.phase, env.node),
            (3, Phase::Running, "charge")
        );
        assert_eq!(decode("s", 3, &bytes).unwrap(), (7, "x".repeat(100)));
    }

    #[test]
    fn every_bit_flip_is_corrupt() {
        let bytes = sample("s", 3);
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            match decode("s", 3, &damaged) {
                Err(Error::Corrupt { .. }) => {}
                other => panic!("flip of bit {i} gave {other:?}"),
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
    fn graph_hash_is_checked_before_the_body() {
        let bytes = sample("s", 3);
        let err = open("s", 3, &bytes, 0xbeef, GraphChange::Strict).unwrap_err();
        assert!(matches!(
            err,
            Error::GraphMismatch {
                stored: 0xfeed,
                compiled: 0xbeef,
                ..
            }
        ));
        assert!(open("s", 3, &bytes, 0xbeef, GraphChange::Force).is_ok());
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
