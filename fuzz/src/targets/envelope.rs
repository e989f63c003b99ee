//! Target `envelope`: the checkpoint envelope's decoders (opening, a whole body with its
//! input, failure and frontier, a branch record) on hostile bytes, and a round trip.
//!
//! Input: a mode byte, then the envelope's bytes. Bit 0 of the mode seals them first (writes
//! a valid checksum into their last four bytes), so that the checks after the checksum see
//! hostile bytes too; its sequence number is the one the header claims, so that the envelope
//! is read as the checkpoint it says it is. The same input also chooses the values of a
//! round trip: a checkpoint encoded from them must decode to exactly them, and with any one
//! byte changed must not decode to anything else.

use graph_runtime::__fuzzing::{
    self, Body, Decoded, Frontier, Header, Saved, Slot, decode, encode, encode_record,
};

use super::workflows::{CURSORS, Journal, Reply, journal};
use super::{Reader, check_error};

const SESSION: &str = "fuzz-envelope";

/// One input.
pub fn run(data: &[u8]) {
    hostile(data);
    round_trip(data);
}

/// The input's bytes as an envelope, as they are and sealed.
fn hostile(data: &[u8]) {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let seq = claimed_seq(bytes);
    let mut bytes = bytes.to_vec();
    if mode & 1 != 0 {
        __fuzzing::seal(SESSION, &mut bytes);
    }
    if let Err(error) = __fuzzing::open(SESSION, seq, &bytes) {
        check_error(SESSION, &error);
    }
    match decode::<Journal, journal::Input>(SESSION, seq, &bytes) {
        Err(error) => check_error(SESSION, &error),
        Ok(Decoded::Delta) => {
            // Without the checkpoints of its chain, a delta cannot be read.
            let error = __fuzzing::reconstruct(SESSION, seq, &bytes, &[])
                .expect_err("a delta without its chain cannot be rebuilt");
            check_error(SESSION, &error);
        }
        Ok(Decoded::Record(_)) => {}
        Ok(Decoded::Full(body)) => {
            // What decoded encodes again, and reads back the same.
            let opened = __fuzzing::open(SESSION, seq, &bytes).expect("it opened once");
            let header = Header {
                session: SESSION,
                graph_hash: opened.graph_hash,
                seq,
                status: opened.status,
                node: &opened.node,
                state_schema: opened.state_schema.unwrap_or(0),
                input_schema: opened.input_schema.unwrap_or(0),
            };
            let again = encode(&header, &body).expect("a decoded body encodes again");
            let decoded = decode::<Journal, journal::Input>(SESSION, seq, &again)
                .expect("a body this release encoded decodes");
            let Decoded::Full(decoded) = decoded else {
                panic!("a whole body came back as something else");
            };
            assert_eq!(decoded.state, body.state);
            assert_eq!(format!("{:?}", decoded.input), format!("{:?}", body.input));
            assert_eq!(decoded.failure, body.failure);
            assert_eq!(decoded.frontier, body.frontier);
        }
    }
}

/// The sequence number an envelope's header claims (offset 16 in every version but the
/// first, 16 as well in version 1), or 0.
fn claimed_seq(bytes: &[u8]) -> u64 {
    bytes.get(16..24).map_or(0, |le| {
        u64::from_le_bytes(le.try_into().expect("eight bytes"))
    })
}

/// A checkpoint (or branch record) made from the input's values: it decodes to them, and a
/// change of any one byte is an error or decodes to them still.
fn round_trip(data: &[u8]) {
    let mut r = Reader::new(data);
    let _mode = r.u8();
    let flags = r.u8();
    let seq = r.u64();
    let node = CURSORS[usize::from(r.u8()) % CURSORS.len()];
    let header = Header {
        session: SESSION,
        graph_hash: r.u64(),
        seq,
        status: r.u8() % 5,
        node,
        state_schema: r.u64(),
        input_schema: r.u64(),
    };
    let expected = if flags & 1 != 0 && seq > 0 {
        let base = seq - 1 - r.u64() % seq;
        let anchor = base - r.u64() % (base + 1);
        let changes: Vec<(u32, Slot)> = (0..r.u8() % 4)
            .map(|_| (u32::from(r.u16()), slot(&mut r)))
            .collect();
        let bytes = encode_record(&header, base, anchor, &changes).expect("a record encodes");
        (bytes, Decoded::Record(changes))
    } else {
        let body = Body {
            state: Journal {
                target: u32::from(r.u16()),
                lines: text(r.bytes()).split('\n').map(str::to_owned).collect(),
                answer: (flags & 2 != 0).then(|| text(r.bytes())),
                counted: r.u64(),
                sum: r.u64(),
                fail: flags & 4 != 0,
                recovered: None,
            },
            input: match r.u8() % 4 {
                0 => None,
                1 => Some(Reply::Text(text(r.bytes()))),
                2 => Some(Reply::Detailed {
                    score: r.u16() as i16 as i32,
                    tags: vec![text(r.bytes())],
                }),
                _ => Some(Reply::Skip),
            },
            failure: (flags & 8 != 0).then(|| __fuzzing::failure(node, &text(r.bytes()))),
            frontier: (flags & 16 != 0).then(|| Frontier {
                opened: r.u64(),
                items: (flags & 32 != 0).then(|| {
                    (
                        r.u64(),
                        (0..r.u8() % 4).map(|_| r.bytes().to_vec()).collect(),
                    )
                }),
                slots: (0..r.u8() % 6).map(|_| slot(&mut r)).collect(),
            }),
        };
        let bytes = encode(&header, &body).expect("a body encodes");
        (bytes, Decoded::Full(body))
    };
    let (bytes, expected) = expected;
    let decoded = decode::<Journal, Reply>(SESSION, seq, &bytes).expect("what was encoded decodes");
    assert_eq!(decoded, expected, "a checkpoint decodes to other values");

    // One byte changed, at a place and by a value the input chooses.
    let at = usize::from(r.u16()) % bytes.len();
    let xor = r.u8().max(1);
    let mut damaged = bytes;
    damaged[at] ^= xor;
    match decode::<Journal, Reply>(SESSION, seq, &damaged) {
        Err(error) => check_error(SESSION, &error),
        Ok(decoded) => assert_eq!(
            decoded, expected,
            "a checkpoint with byte {at} changed decodes to other values"
        ),
    }
}

fn slot(r: &mut Reader<'_>) -> Slot {
    match r.u8() % 5 {
        0 => Slot::Pending,
        1 => Slot::Waiting,
        2 => Slot::Input(Saved::new(r.u64(), r.bytes().to_vec())),
        3 => Slot::Done(Saved::new(r.u64(), r.bytes().to_vec())),
        _ => Slot::Failed(__fuzzing::failure(&text(r.bytes()), &text(r.bytes()))),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every checkpoint of the `chain` seeds' sessions (full ones, deltas, branch records, with
/// frontiers, inputs and failures), sealed, as version 4 wrote them and relabelled as
/// versions 2 and 3; and version-1 envelopes of their whole bodies.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, input) in super::chain::seeds() {
        if !name.ends_with("ops0") {
            continue;
        }
        let mut r = Reader::new(&input);
        let _ops = r.u8();
        let mut index = 0;
        while !r.is_empty() {
            let flags = r.u8();
            let _gap = r.u8();
            if flags & 2 != 0 {
                let _back = r.u8();
            }
            let _node = r.u8();
            let bytes = r.bytes();
            let version = |v: u8| {
                let mut relabelled = vec![1];
                relabelled.extend_from_slice(bytes);
                relabelled[5] = v;
                relabelled
            };
            seeds.push((format!("{name}-{index}-v4"), version(4)));
            if index % 3 == 0 {
                seeds.push((format!("{name}-{index}-v3"), version(3)));
                seeds.push((format!("{name}-{index}-v2"), version(2)));
            }
            if let Some(v1) = version_1(bytes) {
                seeds.push((format!("{name}-{index}-v1"), v1));
            }
            index += 1;
        }
    }
    seeds
}

/// The version-1 envelope of a version-4 one of a whole body without an input (the first
/// release's layout: a zero byte where the flags are, the graph hash, the sequence number,
/// the cursor's length and the cursor, then the body), with the mode byte that seals it.
fn version_1(v4: &[u8]) -> Option<Vec<u8>> {
    let flags = *v4.get(7)?;
    if flags != 0 {
        return None;
    }
    let node_len = usize::from(u16::from_le_bytes(v4.get(40..42)?.try_into().ok()?));
    let node = v4.get(42..42 + node_len)?;
    let body = v4.get(42 + node_len + 4..v4.len() - 4)?;
    let mut out = vec![1];
    out.extend_from_slice(b"GRCP");
    out.extend_from_slice(&[1, 1, v4[6], 0]);
    out.extend_from_slice(&v4[8..24]);
    out.extend_from_slice(&u16::try_from(node_len).ok()?.to_le_bytes());
    out.extend_from_slice(node);
    out.extend_from_slice(&u32::try_from(body.len()).ok()?.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&[0; 4]);
    Some(out)
}
