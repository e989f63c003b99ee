//! Target `delta`: the delta codec of incremental checkpoints, on hostile chains and in round
//! trips.
//!
//! Input: a byte that picks the length limit, then byte strings (`u16` length each): a base
//! body and the deltas applied to it in turn. Rebuilding the chain must give a body within
//! the limit or an error, and agree with applying the deltas one at a time; every pair of
//! consecutive bodies the chain produces (and the base against each delta's bytes) must
//! round-trip through the encoder.

use graph_runtime::__fuzzing::{MAX_BODY_BYTES, delta_encode, delta_reconstruct};

use super::{Reader, Writer};

/// The length limits an input chooses from: small ones reach the limit checks, the last is
/// the one the runner uses.
const LIMITS: [usize; 5] = [0, 64, 4096, 1 << 20, MAX_BODY_BYTES];

/// One input.
pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let limit = LIMITS[usize::from(r.u8()) % LIMITS.len()];
    let base = r.bytes();
    let mut deltas = Vec::new();
    while !r.is_empty() && deltas.len() < 16 {
        deltas.push(r.bytes());
    }

    let whole = delta_reconstruct(base, &deltas, limit);
    if let Ok(body) = &whole {
        assert!(body.len() <= limit, "a body past the limit");
    }

    // One delta at a time: the same body, or an error at some delta.
    let mut bodies = vec![base.to_vec()];
    let mut stepwise = if base.len() <= limit {
        Ok(base.to_vec())
    } else {
        Err(())
    };
    for delta in &deltas {
        let Ok(body) = &stepwise else {
            break;
        };
        stepwise = delta_reconstruct(body, &[delta], limit).map_err(|_| ());
        if let Ok(body) = &stepwise {
            bodies.push(body.clone());
        }
    }
    match (&whole, &stepwise) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the chain and its steps disagree"),
        (Err(_), Err(())) => {}
        (a, b) => panic!(
            "the chain and its steps disagree: {:?} against {:?}",
            a.as_ref().map(Vec::len),
            b.as_ref().map(Vec::len)
        ),
    }

    // Encoding: consecutive bodies, and the base against every delta's bytes (unrelated
    // data, of any length).
    let pairs = bodies
        .windows(2)
        .map(|w| (&w[0][..], &w[1][..]))
        .chain(deltas.iter().map(|d| (base, *d)));
    for (old, new) in pairs {
        round_trip(old, new, new.len());
        round_trip(old, new, usize::MAX);
    }
}

/// `new` encoded against `old` within `max_len` rebuilds `new`.
fn round_trip(old: &[u8], new: &[u8], max_len: usize) {
    let Some(delta) = delta_encode(old, new, max_len) else {
        assert!(
            max_len != usize::MAX,
            "no delta without a length bound ({} against {} bytes)",
            new.len(),
            old.len()
        );
        return;
    };
    assert!(delta.len() < max_len, "a delta not shorter than its bound");
    let limit = old.len().max(new.len());
    let rebuilt = delta_reconstruct(old, &[&delta], limit).expect("an encoded delta applies");
    assert_eq!(rebuilt, new, "a delta rebuilds another body");
}

/// Chains of the edits incremental checkpoints see (appends, a counter that grows, an
/// insertion, a rewrite in place, an unrelated body), encoded by the codec itself, under the
/// runner's limit and under a small one.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let line = |i: usize| format!("line {i}: the quick brown fox jumps over the lazy dog\n");
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut body: Vec<u8> = b"\x00header".to_vec();
    for i in 0..6 {
        body[0] = i as u8;
        body.extend_from_slice(line(i).as_bytes());
        bodies.push(body.clone());
    }
    let mut inserted = body.clone();
    inserted.splice(40..40, b"inserted in the middle".iter().copied());
    bodies.push(inserted.clone());
    let mut rewritten = inserted;
    rewritten[60..70].copy_from_slice(b"REWRITTEN!");
    bodies.push(rewritten);
    bodies.push((0..=255u8).rev().collect());

    let mut seeds = Vec::new();
    for (name, limit) in [("runner-limit", 4u8), ("small-limit", 1)] {
        let mut w = Writer::default();
        w.u8(limit).bytes(&bodies[0]);
        for pair in bodies.windows(2) {
            let delta = delta_encode(&pair[0], &pair[1], usize::MAX).expect("a delta");
            w.bytes(&delta);
        }
        seeds.push((format!("seed-{name}"), w.0));
    }
    let mut w = Writer::default();
    w.u8(2).bytes(b"").bytes(&[1, 0, 0]);
    seeds.push(("seed-empty".to_owned(), w.0));
    seeds
}
