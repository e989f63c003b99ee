//! State schema fingerprints: what lets a checkpoint say which shape of state it holds.
//!
//! bincode, the checkpoint codec, writes no field names and no type tags: a checkpoint decoded
//! as a changed type may fail (a field was added) or, worse, succeed with wrong values (two
//! fields of one type swapped, a field renamed). So every checkpoint also stores a 64-bit
//! fingerprint of the state's serde data model, and the runner refuses a checkpoint whose
//! fingerprint is not the compiled one (or one listed in `migrate_from`) with
//! [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) before decoding a byte of it.
//!
//! The fingerprint describes the data as serde sees it: field and variant names (after
//! `#[serde(rename)]`), their order and their shapes, and nested types through their own
//! fingerprints. Rust type names and paths are not part of it, so moving or renaming a type
//! keeps its checkpoints readable.

/// A type whose serde data model has a `const` fingerprint, stored in every checkpoint.
///
/// Derive it with `#[derive(StateSchema)]` on the state type, the types it contains, and the
/// input types of interrupt nodes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no state schema fingerprint",
    label = "`{Self}` does not implement `StateSchema`",
    note = "add `#[derive(StateSchema)]` to `{Self}` (the state, the types inside it and interrupt inputs all need it)"
)]
pub trait StateSchema {
    /// The fingerprint of the type's serde data model.
    const SCHEMA: u64;
}

/// Builds a fingerprint in a `const` context: FNV-1a 64 over a sequence of tagged parts.
///
/// This is what `#[derive(StateSchema)]` generates code for; a hand-written impl for a type
/// with a custom `Serialize` uses it the same way:
///
/// ```
/// use graph_runtime::schema::{Fingerprint, StateSchema};
///
/// /// Serialized as a string by a hand-written `Serialize` impl.
/// pub struct Email(String);
///
/// impl StateSchema for Email {
///     const SCHEMA: u64 = Fingerprint::new("str").finish();
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Fingerprint {
    /// Starts a fingerprint of the given kind (`"struct"`, `"enum"`, `"seq"`, `"u64"`, …).
    pub const fn new(kind: &str) -> Self {
        Fingerprint(FNV_OFFSET_BASIS).str(kind)
    }

    /// Adds a name or tag (length-prefixed, so `"ab" + "c"` differs from `"a" + "bc"`).
    pub const fn str(self, part: &str) -> Self {
        let bytes = part.as_bytes();
        let mut hash = self.u64(bytes.len() as u64).0;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        Fingerprint(hash)
    }

    /// Adds a number: a nested type's fingerprint, a length, a count.
    pub const fn u64(self, value: u64) -> Self {
        let bytes = value.to_le_bytes();
        let mut hash = self.0;
        let mut i = 0;
        while i < 8 {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(FNV_PRIME);
            i += 1;
        }
        Fingerprint(hash)
    }

    /// The finished fingerprint.
    pub const fn finish(self) -> u64 {
        self.0
    }
}
