//! A byte-level delta codec for incremental checkpoints.
//!
//! A session whose state grows (an agent's message list) would otherwise store a full copy of
//! its encoded body at every step. The runner stores checkpoint k as a delta against the body
//! of checkpoint k-1, in a chain that starts at a full body; this module encodes one such delta
//! ([`encode`]) and rebuilds the body at the end of a chain ([`reconstruct`]). Integrity of the result is the runner's job (it checksums the reconstructed
//! body); this module guarantees only that any byte string, however hostile, yields either a
//! body no longer than the caller's limit or an `Err`, without panicking, overflowing or
//! allocating more than the input and the limit justify.
//!
//! # Format (version 1)
//!
//! All integers are unsigned LEB128 varints (7 bits per byte, least significant group first,
//! high bit set on every byte but the last), at most 10 bytes, in their shortest form, and no
//! larger than `u64::MAX`.
//!
//! ```text
//! u8      format version (1)
//! varint  source length: the length of the body this delta applies to
//! varint  target length: the length of the body it produces
//! op*     until the end of the delta:
//!           varint h; kind = h & 1, len = h >> 1 (len >= 1)
//!           kind 0, INSERT: len literal bytes follow
//!           kind 1, COPY:   varint offset follows; copies source[offset .. offset + len]
//! ```
//!
//! A delta is valid only if: the version is 1; the source length equals the length of the body
//! it is applied to; the target length is within the caller's limit; every op has a non-zero
//! length; every COPY lies within the source; every INSERT's bytes are present; the op lengths
//! add up to exactly the target length; and no byte follows the last op. Stating both lengths
//! up front lets a reader reject a delta applied to the wrong body and size the output once.
//!
//! # Encoding
//!
//! Block matching in the manner of rsync and xdelta: the old body is indexed in aligned
//! [`BLOCK`]-byte blocks by a gear hash; the new body is scanned with the same hash rolled one
//! byte at a time. A candidate is verified byte for byte (hash collisions cost time, never
//! correctness), then extended backwards into the pending literal bytes and forwards as far as
//! the bodies agree, and the scan resumes after it. This finds every typical change of a
//! bincode body: a counter at byte 0 whose varint grows, a `Vec` length prefix, bytes appended
//! or inserted (shifting everything after them) and fields rewritten in place. Plain common
//! prefix/suffix diffing would not: the counter at byte 0 changes and the appended bytes go at
//! the end, so the common prefix and suffix are both empty. Cost is one hash step per byte of
//! the old body, plus one per unmatched byte of the new body, plus a `memcmp` over matched
//! bytes.
//!
//! # Reconstruction
//!
//! Applying each delta in turn would copy the whole body once per delta: O(chain length ×
//! body size), a gigabyte of copying for a 1,000-step chain of a 1 MiB body. Instead the
//! deltas are composed as a piece table, resolved from the end of the chain backwards. The
//! final body starts as one pending range of the last version. A pending range of version k is
//! split against the ops of delta k (binary search on their target offsets): the parts covered
//! by INSERTs are written straight to their final position in the output, and the parts covered
//! by COPYs become pending ranges of version k-1. Ranges pending at version 0 are copied from
//! the base body. Each output byte is written once, and each level costs only the ranges that
//! still pass through it, so reconstruction is O(body size + pieces visited × log ops) — for an
//! append-only workload, a handful of pieces per level. Pending ranges are resolved depth first,
//! so the work list never holds more entries than there are ops in the chain: memory stays
//! proportional to the input plus the output, even for deltas that duplicate ranges.

// The runner wires this in separately; until then only the tests call it.

/// The format version written as the first byte of every delta.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// The size of the blocks the old body is indexed in, and of the rolling-hash window. Smaller
/// blocks find shorter matches between nearby edits but make a larger index; 32 indexes a 1 MiB
/// body as 32 Ki blocks in a 512 KiB table.
const BLOCK: usize = 32;

/// How far past `max_len` the emitted ops plus the pending literal may go before [`encode`]
/// gives up.
const GIVE_UP_SLACK: usize = 16 * BLOCK;

/// The longest varint: ceil(64 / 7) bytes.
const MAX_VARINT: usize = 10;

/// Encodes `new` as a delta against `old`; `None` if the delta would not be smaller than
/// `max_len` bytes (the caller then stores a full body). It may also give up early, once the
/// bytes it could not match exceed `max_len` by a margin, so that an unrelated body costs a
/// partial scan rather than a full one.
pub(crate) fn encode(old: &[u8], new: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    out.push(FORMAT_VERSION);
    put_varint(&mut out, old.len() as u64);
    put_varint(&mut out, new.len() as u64);

    let index = BlockIndex::new(old);
    // `new[lit_start..]` has not been emitted yet; `pos` is the next byte to feed the hash.
    let mut lit_start = 0usize;
    let mut pos = 0usize;
    let mut hash = 0u64;
    let mut fed = 0usize;
    while pos < new.len() {
        // Backward extension can shrink the pending literal again, but rarely by more than a
        // couple of blocks (a match is found within two blocks of its start unless its first
        // indexed block lost its slot), so past the slack a full body is all but certain to be
        // smaller and scanning on would be wasted.
        if out.len() + (pos - lit_start) >= max_len.saturating_add(GIVE_UP_SLACK) {
            return None;
        }
        hash = gear_step(hash, new[pos]);
        pos += 1;
        fed += 1;
        if fed < BLOCK {
            continue;
        }
        let start = pos - BLOCK;
        let Some(old_at) = index.candidate(hash) else {
            continue;
        };
        if old[old_at..old_at + BLOCK] != new[start..pos] {
            continue;
        }
        // Extend backwards only over bytes not yet emitted, so ops never overlap.
        let mut back = 0usize;
        while start - back > lit_start
            && old_at - back > 0
            && old[old_at - back - 1] == new[start - back - 1]
        {
            back += 1;
        }
        let forward = common_prefix(&old[old_at + BLOCK..], &new[pos..]);
        let copy_new = start - back;
        let copy_old = old_at - back;
        let copy_len = BLOCK + back + forward;
        put_insert(&mut out, &new[lit_start..copy_new]);
        put_copy(&mut out, copy_old, copy_len);
        pos = copy_new + copy_len;
        lit_start = pos;
        hash = 0;
        fed = 0;
    }
    put_insert(&mut out, &new[lit_start..]);
    (out.len() < max_len).then_some(out)
}

/// Applies one delta to `old`; see [`reconstruct`].
#[cfg(test)]
pub(crate) fn apply(old: &[u8], delta: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    reconstruct(old, &[delta], limit)
}

/// Reconstructs the body at the end of a chain: `base` (a full body) followed by `deltas`, each
/// against the result of the previous one. `limit` caps the length of every body in the chain,
/// the base included; a delta claiming more is rejected before anything is allocated for it.
/// Every delta is fully validated, even parts the final body does not use. Returns `Err(reason)`
/// for any malformed delta; never panics, whatever the bytes.
pub(crate) fn reconstruct(base: &[u8], deltas: &[&[u8]], limit: usize) -> Result<Vec<u8>, String> {
    if base.len() > limit {
        return Err(format!(
            "base body of {} bytes exceeds the limit of {limit}",
            base.len()
        ));
    }
    let mut parsed = Vec::with_capacity(deltas.len());
    let mut len = base.len();
    for (i, delta) in deltas.iter().enumerate() {
        let ops = parse(delta, len, limit).map_err(|e| format!("delta {i}: {e}"))?;
        len = ops.target_len;
        parsed.push(ops);
    }

    let mut out = vec![0u8; len];
    // Ranges of the final body still to be filled, resolved depth first so that the stack
    // holds at most the unvisited siblings along one path: no more entries than there are ops
    // in the whole chain, however often the deltas duplicate ranges (a breadth-first frontier
    // could hold one entry per output byte).
    let mut stack: Vec<Range> = Vec::new();
    if len > 0 {
        stack.push(Range {
            version: deltas.len(),
            dst: 0,
            src: 0,
            len,
        });
    }
    while let Some(range) = stack.pop() {
        let Range {
            version,
            dst,
            src,
            len,
        } = range;
        let Some(level) = version.checked_sub(1) else {
            let bytes = base
                .get(src..src + len)
                .ok_or("internal: base out of range")?;
            out.get_mut(dst..dst + len)
                .ok_or("internal: output out of range")?
                .copy_from_slice(bytes);
            continue;
        };
        let (delta, ops) = match (deltas.get(level), parsed.get(level)) {
            (Some(delta), Some(parsed)) => (delta, &parsed.ops),
            _ => return Err("internal: version out of range".into()),
        };
        let end = src + len;
        let mut i = ops.partition_point(|op| op.target + op.len <= src);
        let mut at = src;
        let mut to = dst;
        while at < end {
            let op = ops.get(i).ok_or("internal: range past the last op")?;
            let skip = at - op.target;
            let take = (op.len - skip).min(end - at);
            match op.kind {
                OpKind::Insert { at: lit } => {
                    let bytes = delta
                        .get(lit + skip..lit + skip + take)
                        .ok_or("internal: literal out of range")?;
                    out.get_mut(to..to + take)
                        .ok_or("internal: output out of range")?
                        .copy_from_slice(bytes);
                }
                OpKind::Copy { from } => push_range(
                    &mut stack,
                    Range {
                        version: level,
                        dst: to,
                        src: from + skip,
                        len: take,
                    },
                ),
            }
            at += take;
            to += take;
            i += 1;
        }
    }
    Ok(out)
}

/// A range of the output still to be filled from `src..src + len` of the body after the
/// first `version` deltas (0: the base).
#[derive(Debug, Clone, Copy)]
struct Range {
    version: usize,
    dst: usize,
    src: usize,
    len: usize,
}

/// Pushes a pending range, merging it into the previous one when both continue each other (a
/// version whose ops split a range its successor copies whole).
fn push_range(stack: &mut Vec<Range>, range: Range) {
    if let Some(last) = stack.last_mut()
        && last.version == range.version
        && last.dst + last.len == range.dst
        && last.src + last.len == range.src
    {
        last.len += range.len;
        return;
    }
    stack.push(range);
}

#[derive(Debug, Clone, Copy)]
enum OpKind {
    /// Literal bytes at this offset of the delta itself.
    Insert { at: usize },
    /// Bytes of the source body from this offset.
    Copy { from: usize },
}

#[derive(Debug, Clone, Copy)]
struct Op {
    /// Where the op's bytes start in the target body.
    target: usize,
    len: usize,
    kind: OpKind,
}

struct Parsed {
    target_len: usize,
    /// In target order, contiguous, covering exactly `0..target_len`.
    ops: Vec<Op>,
}

/// Validates one delta against a source of `source_len` bytes. Every length is checked against
/// what is actually present (or against `limit`) before it is used, and the op list grows one
/// op per at least two input bytes, so memory stays proportional to the input.
fn parse(delta: &[u8], source_len: usize, limit: usize) -> Result<Parsed, String> {
    let mut r = Reader {
        bytes: delta,
        pos: 0,
    };
    let version = r.byte().ok_or("empty delta")?;
    if version != FORMAT_VERSION {
        return Err(format!("unknown delta format version {version}"));
    }
    let claimed_source = r.varint()?;
    if claimed_source != source_len as u64 {
        return Err(format!(
            "delta is against a body of {claimed_source} bytes, applied to one of {source_len}"
        ));
    }
    let target_len = r.varint()?;
    if target_len > limit as u64 {
        return Err(format!(
            "target length {target_len} exceeds the limit of {limit}"
        ));
    }
    // Fits: it is no larger than `limit`.
    let target_len = target_len as usize;
    let mut ops = Vec::new();
    let mut target = 0usize;
    while r.pos < delta.len() {
        let header = r.varint()?;
        let len = header >> 1;
        if len == 0 {
            return Err(format!("zero-length op at byte {}", r.pos));
        }
        // `target <= target_len <= limit`, so this is exact and cannot overflow.
        if len > (target_len - target) as u64 {
            return Err(format!(
                "op of {len} bytes overruns the target length {target_len}"
            ));
        }
        let len = len as usize;
        let kind = if header & 1 == 0 {
            let at = r.pos;
            if len > delta.len() - at {
                return Err(format!("insert of {len} bytes truncated at byte {at}"));
            }
            r.pos += len;
            OpKind::Insert { at }
        } else {
            let from = r.varint()?;
            if from > source_len as u64 || len as u64 > source_len as u64 - from {
                return Err(format!(
                    "copy of {len} bytes at {from} outside a source of {source_len}"
                ));
            }
            OpKind::Copy {
                from: from as usize,
            }
        };
        ops.push(Op { target, len, kind });
        target += len;
    }
    if target != target_len {
        return Err(format!(
            "ops produce {target} bytes, the header says {target_len}"
        ));
    }
    Ok(Parsed { target_len, ops })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Reads a shortest-form LEB128 varint that fits in a `u64`.
    fn varint(&mut self) -> Result<u64, String> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            let b = self
                .byte()
                .ok_or_else(|| format!("varint truncated at byte {start}"))?;
            let group = u64::from(b & 0x7f);
            // The tenth byte holds only bit 63.
            if i == MAX_VARINT - 1 && group > 1 {
                return Err(format!("varint at byte {start} overflows 64 bits"));
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(format!("varint at byte {start} is not in shortest form"));
                }
                return Ok(value);
            }
        }
        Err(format!(
            "varint at byte {start} is longer than {MAX_VARINT} bytes"
        ))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_insert(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    put_varint(out, (bytes.len() as u64) << 1);
    out.extend_from_slice(bytes);
}

fn put_copy(out: &mut Vec<u8>, from: usize, len: usize) {
    put_varint(out, ((len as u64) << 1) | 1);
    put_varint(out, from as u64);
}

/// The length of the common prefix of `a` and `b`, comparing in chunks so the compiler can use
/// wide compares over the long matched runs that dominate an incremental body.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const CHUNK: usize = 32;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
        i += CHUNK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Random 64-bit values, one per byte value, for the gear hash (splitmix64 of the byte, fixed
/// so that the hash does not depend on the build). A `static`, not a `const`: unoptimized builds
/// copy a `const` array to the stack at every indexing, which made the unit tests 4× slower.
static GEAR: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut z = (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        table[i] = z ^ (z >> 31);
        i += 1;
    }
    table
};

/// One step of the gear hash. Each step shifts earlier bytes two bits left, so a byte's
/// contribution is gone after 32 steps: the hash is exactly a function of the last
/// `BLOCK` = 32 bytes, whatever came before, which makes it a rolling hash with no removal step
/// and makes the hash of an old block equal the hash of the same 32 bytes anywhere in the new
/// body.
#[inline]
fn gear_step(hash: u64, byte: u8) -> u64 {
    (hash << 2).wrapping_add(GEAR[byte as usize])
}

/// The gear hash of one whole block, equal to rolling [`gear_step`] over it from any state.
/// Indexing the old body dominates the cost of encoding an append, and rolling is one long
/// dependency chain; as the hash is a sum of `GEAR[b] << 2 * (distance from the end)`, it is
/// computed here as four independent quarter-block hashes shifted into place. (Written out
/// without helper calls: unoptimized test builds hash hundreds of megabytes.)
#[inline]
fn block_hash(block: &[u8; BLOCK]) -> u64 {
    const QUARTER: usize = BLOCK / 4;
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..QUARTER {
        a = (a << 2).wrapping_add(GEAR[block[i] as usize]);
        b = (b << 2).wrapping_add(GEAR[block[QUARTER + i] as usize]);
        c = (c << 2).wrapping_add(GEAR[block[2 * QUARTER + i] as usize]);
        d = (d << 2).wrapping_add(GEAR[block[3 * QUARTER + i] as usize]);
    }
    const S: u32 = 2 * QUARTER as u32;
    (a << (3 * S))
        .wrapping_add(b << (2 * S))
        .wrapping_add(c << S)
        .wrapping_add(d)
}

/// The old body's aligned blocks, by hash, in an open table with one slot per hash value.
struct BlockIndex {
    /// Per slot: the high 32 bits of the block's hash (a tag that rejects most false candidates
    /// without touching the old body), then the block's offset + 1, or 0 for an empty slot.
    slots: Vec<u64>,
    shift: u32,
}

impl BlockIndex {
    fn new(old: &[u8]) -> BlockIndex {
        let blocks = old.len() / BLOCK;
        // Load factor at most one half keeps most unmatched lookups on an empty slot.
        let bits = (blocks * 2).max(2).next_power_of_two().trailing_zeros();
        let mut index = BlockIndex {
            slots: vec![0; 1 << bits],
            shift: 64 - bits,
        };
        for (k, block) in old.as_chunks::<BLOCK>().0.iter().enumerate() {
            // Offsets stored in 32 bits: a body past 4 GiB keeps its first 4 GiB indexed, which
            // costs ratio, never correctness.
            let Ok(stored) = u32::try_from(k * BLOCK + 1) else {
                break;
            };
            let hash = block_hash(block);
            let slot = index.slot(hash);
            // The first block wins: in repetitive bodies any equal block serves equally well.
            if index.slots[slot] == 0 {
                index.slots[slot] = (hash >> 32) << 32 | u64::from(stored);
            }
        }
        index
    }

    /// The gear hash's low bits depend only on the last few bytes, so the slot comes from the
    /// high bits of a multiplicative mix, which depend on the whole window.
    #[inline]
    fn slot(&self, hash: u64) -> usize {
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// The offset of an old block that may equal the window with this hash; the caller verifies.
    #[inline]
    fn candidate(&self, hash: u64) -> Option<usize> {
        let entry = self.slots[self.slot(hash)];
        let stored = entry as u32;
        (stored != 0 && entry >> 32 == hash >> 32).then(|| stored as usize - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints the seed of the case being run if it panics, so a failure can be replayed.
    struct SeedGuard(u64);

    impl Drop for SeedGuard {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("delta test failed with seed {}", self.0);
            }
        }
    }

    /// The base seed: `DELTA_SEED` if set (to replay a failure), else a fixed one.
    fn base_seed() -> u64 {
        std::env::var("DELTA_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_de17a)
    }

    const LIMIT: usize = 64 << 20;

    fn random_body(rng: &mut fastrand::Rng, max: usize) -> Vec<u8> {
        let len = rng.usize(0..=max);
        // Low-entropy bytes half the time, so repeated blocks and hash collisions get exercised.
        let alphabet = if rng.bool() { 256 } else { 4 };
        (0..len).map(|_| rng.u32(0..alphabet) as u8).collect()
    }

    /// One random edit: insert, delete, replace, append, prepend or rewrite the first bytes.
    fn random_edit(rng: &mut fastrand::Rng, body: &mut Vec<u8>) {
        let chunk = |rng: &mut fastrand::Rng| -> Vec<u8> {
            let max = if rng.u8(..) < 16 { 600 } else { 40 };
            let n = rng.usize(1..=max);
            (0..n).map(|_| rng.u8(..)).collect()
        };
        match rng.u8(0..6) {
            0 => {
                let at = rng.usize(0..=body.len());
                let bytes = chunk(rng);
                body.splice(at..at, bytes);
            }
            1 if !body.is_empty() => {
                let at = rng.usize(0..body.len());
                let end = (at + rng.usize(1..=64)).min(body.len());
                body.drain(at..end);
            }
            2 if !body.is_empty() => {
                let at = rng.usize(0..body.len());
                let end = (at + rng.usize(1..=64)).min(body.len());
                let bytes = chunk(rng);
                body.splice(at..end, bytes);
            }
            3 => {
                let bytes = chunk(rng);
                body.extend_from_slice(&bytes);
            }
            4 => {
                let bytes = chunk(rng);
                body.splice(0..0, bytes);
            }
            _ => {
                let n = rng.usize(1..=4).min(body.len());
                for b in &mut body[..n] {
                    *b = rng.u8(..);
                }
                if rng.bool() {
                    body.insert(0, rng.u8(..));
                }
            }
        }
    }

    fn must_encode(old: &[u8], new: &[u8]) -> Vec<u8> {
        encode(old, new, usize::MAX).expect("an unbounded delta always encodes")
    }

    #[test]
    fn random_single_edits_round_trip() {
        let seed = base_seed();
        for case in 0..2_000u64 {
            let seed = seed.wrapping_add(case);
            let _guard = SeedGuard(seed);
            let mut rng = fastrand::Rng::with_seed(seed);
            let old = random_body(&mut rng, 4_000);
            let mut new = old.clone();
            for _ in 0..rng.usize(0..=5) {
                random_edit(&mut rng, &mut new);
            }
            let delta = must_encode(&old, &new);
            assert_eq!(delta[0], FORMAT_VERSION);
            assert_eq!(apply(&old, &delta, LIMIT).unwrap(), new, "seed {seed}");
        }
    }

    #[test]
    fn unrelated_bodies_round_trip() {
        let seed = base_seed();
        for case in 0..300u64 {
            let seed = seed.wrapping_add(case);
            let _guard = SeedGuard(seed);
            let mut rng = fastrand::Rng::with_seed(seed);
            let old = random_body(&mut rng, 3_000);
            let new = random_body(&mut rng, 3_000);
            let delta = must_encode(&old, &new);
            assert_eq!(apply(&old, &delta, LIMIT).unwrap(), new, "seed {seed}");
        }
    }

    #[test]
    fn random_chains_reconstruct_every_version() {
        let seed = base_seed();
        for case in 0..12u64 {
            let seed = seed.wrapping_add(case);
            let _guard = SeedGuard(seed);
            let mut rng = fastrand::Rng::with_seed(seed);
            let base = random_body(&mut rng, 2_000);
            let steps = rng.usize(1..=400);
            let mut versions = vec![base.clone()];
            let mut deltas = Vec::new();
            for _ in 0..steps {
                let mut next = versions.last().unwrap().clone();
                for _ in 0..rng.usize(1..=3) {
                    random_edit(&mut rng, &mut next);
                }
                deltas.push(must_encode(versions.last().unwrap(), &next));
                versions.push(next);
            }
            let refs: Vec<&[u8]> = deltas.iter().map(Vec::as_slice).collect();
            for (k, version) in versions.iter().enumerate() {
                let got = reconstruct(&base, &refs[..k], LIMIT).unwrap();
                assert!(got == *version, "seed {seed}: version {k} differs");
            }
            // A chain may also start at any saved version.
            let start = rng.usize(0..versions.len());
            let got = reconstruct(&versions[start], &refs[start..], LIMIT).unwrap();
            assert!(got == *versions.last().unwrap(), "seed {seed}");
        }
    }

    #[test]
    fn truncations_and_byte_flips_never_panic() {
        let seed = base_seed();
        for case in 0..40u64 {
            let seed = seed.wrapping_add(case);
            let _guard = SeedGuard(seed);
            let mut rng = fastrand::Rng::with_seed(seed);
            let old = random_body(&mut rng, 600);
            let mut new = old.clone();
            for _ in 0..rng.usize(1..=4) {
                random_edit(&mut rng, &mut new);
            }
            let delta = must_encode(&old, &new);
            let mid = must_encode(&new, &old);
            // Every proper prefix is short of the stated target length or cut mid-field.
            for cut in 0..delta.len() {
                assert!(
                    apply(&old, &delta[..cut], LIMIT).is_err(),
                    "seed {seed} cut {cut}"
                );
            }
            let limit = old.len().max(new.len()) + 100;
            for at in 0..delta.len() {
                for flip in [0x01u8, 0x80, 0xff, rng.u8(1..)] {
                    let mut bad = delta.clone();
                    bad[at] ^= flip;
                    if let Ok(body) = apply(&old, &bad, limit) {
                        assert!(body.len() <= limit, "seed {seed}");
                    }
                    // Corruption in the middle of a chain as well as at its end.
                    if let Ok(body) = reconstruct(&old, &[&bad, &mid], limit) {
                        assert!(body.len() <= limit, "seed {seed}");
                    }
                }
            }
            // Random garbage, and garbage behind a valid header.
            for _ in 0..200 {
                let n = rng.usize(0..40);
                let mut junk: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                if rng.bool() && !junk.is_empty() {
                    junk[0] = FORMAT_VERSION;
                }
                if let Ok(body) = apply(&old, &junk, limit) {
                    assert!(body.len() <= limit, "seed {seed}");
                }
            }
        }
    }

    fn header(source: u64, target: u64) -> Vec<u8> {
        let mut d = vec![FORMAT_VERSION];
        put_varint(&mut d, source);
        put_varint(&mut d, target);
        d
    }

    #[test]
    fn hostile_and_malformed_deltas_are_errors() {
        let old = b"0123456789abcdef".to_vec();
        let huge = 1u64 << 60;
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("bad version", vec![2, 16, 0]),
            ("wrong source length", header(15, 0)),
            ("huge target", header(16, huge)),
            ("max target", header(16, u64::MAX)),
        ];
        let mut d = header(16, 4);
        put_varint(&mut d, huge << 1);
        cases.push(("huge insert", d));
        let mut d = header(16, 4);
        put_varint(&mut d, (huge << 1) | 1);
        put_varint(&mut d, 0);
        cases.push(("huge copy", d));
        let mut d = header(16, 4);
        put_varint(&mut d, (4 << 1) | 1);
        put_varint(&mut d, u64::MAX);
        cases.push(("copy offset overflows", d));
        let mut d = header(16, 4);
        put_varint(&mut d, (4 << 1) | 1);
        put_varint(&mut d, 13);
        cases.push(("copy past the source end", d));
        let mut d = header(16, 4);
        put_varint(&mut d, 4 << 1);
        d.extend_from_slice(b"abc");
        cases.push(("truncated insert", d));
        let mut d = header(16, 4);
        put_varint(&mut d, 4 << 1);
        d.extend_from_slice(b"abcd");
        d.push(0);
        cases.push(("trailing garbage", d));
        let mut d = header(16, 4);
        put_varint(&mut d, 1);
        put_varint(&mut d, 0);
        put_varint(&mut d, 4 << 1);
        d.extend_from_slice(b"abcd");
        cases.push(("zero-length copy", d));
        let mut d = header(16, 4);
        put_varint(&mut d, 2 << 1);
        d.extend_from_slice(b"ab");
        cases.push(("short of the target length", d));
        let mut d = header(16, 0);
        d.extend_from_slice(&[0xff; 11]);
        cases.push(("varint longer than 10 bytes", d));
        let mut d = header(16, 0);
        d.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        cases.push(("varint overflowing 64 bits", d));
        cases.push(("non-shortest varint", vec![FORMAT_VERSION, 0x90, 0x00, 0]));
        cases.push(("truncated varint", vec![FORMAT_VERSION, 0x90]));
        for (what, delta) in &cases {
            assert!(apply(&old, delta, LIMIT).is_err(), "{what} was accepted");
        }
        // The limit applies to every body of the chain, the base and intermediates included.
        let grown = must_encode(&old, &[old.as_slice(), &old].concat());
        let back = must_encode(&[old.as_slice(), &old].concat(), &old);
        assert!(reconstruct(&old, &[&grown, &back], 20).is_err());
        assert!(reconstruct(&old, &[&grown, &back], 32).is_ok());
        assert!(reconstruct(&old, &[], 15).is_err());
    }

    #[test]
    fn block_hash_equals_the_rolling_hash() {
        let mut rng = fastrand::Rng::with_seed(base_seed());
        for _ in 0..100 {
            let bytes: Vec<u8> = (0..BLOCK * 3).map(|_| rng.u8(..)).collect();
            let mut rolling = 0;
            for (i, &b) in bytes.iter().enumerate() {
                rolling = gear_step(rolling, b);
                if i + 1 >= BLOCK {
                    let block: &[u8; BLOCK] = bytes[i + 1 - BLOCK..=i].try_into().unwrap();
                    assert_eq!(rolling, block_hash(block));
                }
            }
        }
    }

    /// Deltas that each copy their source twice grow the body exponentially from a few bytes of
    /// input: the limit stops them, and under it the result is exact.
    #[test]
    fn duplicating_chains_respect_the_limit() {
        let mut deltas = Vec::new();
        let mut len = 1u64;
        for _ in 0..20 {
            let mut d = header(len, 2 * len);
            for _ in 0..2 {
                put_varint(&mut d, (len << 1) | 1);
                put_varint(&mut d, 0);
            }
            deltas.push(d);
            len *= 2;
        }
        let refs: Vec<&[u8]> = deltas.iter().map(Vec::as_slice).collect();
        assert_eq!(
            reconstruct(b"x", &refs, 1 << 20).unwrap(),
            vec![b'x'; 1 << 20]
        );
        assert!(reconstruct(b"x", &refs, (1 << 20) - 1).is_err());
        let mut more = refs.clone();
        let huge = header(1 << 20, 1 << 40);
        more.push(&huge);
        assert!(reconstruct(b"x", &more, usize::MAX).is_err());
    }

    #[test]
    fn edge_bodies_round_trip() {
        let body: Vec<u8> = (0..5_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let zeros = vec![0u8; 5_000];
        let pairs: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"", b"abc"),
            (b"abc", b""),
            (&body, &body),
            (&zeros, &zeros[..4_999]),
            (&zeros, &body),
            (&body[..31], &body[..33]),
        ];
        for (old, new) in pairs {
            let delta = must_encode(old, new);
            assert_eq!(apply(old, &delta, LIMIT).unwrap(), new);
        }
        // An identical body costs a header and one copy.
        assert!(must_encode(&body, &body).len() <= 12);
    }

    #[test]
    fn max_len_bounds_the_delta() {
        let mut rng = fastrand::Rng::with_seed(base_seed());
        let old: Vec<u8> = (0..10_000).map(|_| rng.u8(..)).collect();
        let new: Vec<u8> = (0..10_000).map(|_| rng.u8(..)).collect();
        // Unrelated random bodies cannot beat a full copy.
        assert!(encode(&old, &new, new.len()).is_none());
        let mut edited = old.clone();
        edited[5_000] ^= 1;
        let delta = encode(&old, &edited, 64).expect("a one-byte change fits in 64 bytes");
        assert!(delta.len() < 64);
        assert!(encode(&old, &edited, delta.len()).is_none());
        assert_eq!(encode(&old, &edited, delta.len() + 1).unwrap(), delta);
    }

    /// The typical changes of a bincode body each cost about the bytes that changed.
    #[test]
    fn typical_changes_give_small_deltas() {
        let mut rng = fastrand::Rng::with_seed(base_seed());
        let old: Vec<u8> = (0..100_000).map(|_| rng.u8(..)).collect();
        let check = |new: Vec<u8>, changed: usize, what: &str| {
            let delta = must_encode(&old, &new);
            assert_eq!(apply(&old, &delta, LIMIT).unwrap(), new, "{what}");
            assert!(
                delta.len() <= changed + 32,
                "{what}: {} bytes for {changed} changed",
                delta.len()
            );
        };
        // A varint counter at byte 0 grows by a byte, plus an append at the end.
        let mut new = old.clone();
        new.splice(0..1, [0xfb, 0x01, 0x01]);
        new.extend_from_slice(&[7; 1024]);
        check(new, 1027, "counter and append");
        // A length prefix in the middle changes.
        let mut new = old.clone();
        new[40_000] = new[40_000].wrapping_add(1);
        check(new, 1, "length prefix");
        // Bytes inserted in the middle shift everything after them.
        let mut new = old.clone();
        new.splice(50_000..50_000, [9; 300]);
        check(new, 300, "middle insert");
        // A field in the middle is rewritten with a different length.
        let mut new = old.clone();
        new.splice(70_000..70_040, [3; 25]);
        check(new, 25, "middle rewrite");
        // A deletion.
        let mut new = old.clone();
        new.drain(10_000..10_500);
        check(new, 0, "deletion");
    }

    #[derive(serde::Serialize)]
    struct W9 {
        count: u64,
        msgs: Vec<String>,
    }

    fn w9_body(state: &W9) -> Vec<u8> {
        bincode::serde::encode_to_vec(state, bincode::config::standard()).unwrap()
    }

    fn w9_message(rng: &mut fastrand::Rng) -> String {
        (0..1024).map(|_| rng.alphanumeric()).collect()
    }

    /// Workload W9: 1,000 steps each appending 1 KiB to a message list, every checkpoint kept.
    #[test]
    fn w9_chain_is_small_and_reconstructs() {
        let seed = base_seed();
        let _guard = SeedGuard(seed);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut state = W9 {
            count: 0,
            msgs: Vec::new(),
        };
        let base = w9_body(&state);
        let mut prev = base.clone();
        let mut deltas = Vec::new();
        let mut checkpoints = vec![(0usize, base.clone())];
        for step in 1..=1_000usize {
            state.count += 1;
            state.msgs.push(w9_message(&mut rng));
            let body = w9_body(&state);
            let delta = must_encode(&prev, &body);
            assert!(
                delta.len() <= 1024 + 64,
                "step {step}: delta of {} bytes",
                delta.len()
            );
            deltas.push(delta);
            if step % 250 == 0 {
                checkpoints.push((step, body.clone()));
            }
            prev = body;
        }
        let stored: usize = base.len() + deltas.iter().map(Vec::len).sum::<usize>();
        assert!(stored <= 3 * 1_000 * 1024, "stored {stored} bytes");
        let refs: Vec<&[u8]> = deltas.iter().map(Vec::as_slice).collect();
        for (step, body) in &checkpoints {
            let got = reconstruct(&base, &refs[..*step], LIMIT).unwrap();
            assert!(got == *body, "seed {seed}: step {step} differs");
        }
    }
}
