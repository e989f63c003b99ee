//! State schema fingerprints: what lets a checkpoint say which shape of state it holds.
//!
//! bincode, the checkpoint codec, writes no field names and no type tags: a checkpoint decoded
//! as a changed type may fail (a field was added) or, worse, succeed with wrong values (two
//! fields of one type swapped, a field renamed). So every checkpoint also stores a 64-bit
//! fingerprint of the state's serde data model, and the runner refuses a checkpoint whose
//! fingerprint is not the compiled one (or one listed in `migrate_from`) with
//! [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) before decoding a byte of it.
//!
//! ```
//! use graph_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub struct Order { pub id: u64, pub lines: Vec<Line>, pub status: Status }
//!
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub struct Line { pub sku: String, pub quantity: u32 }
//!
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub enum Status { Open, Paid { charge_id: String }, Cancelled(String) }
//!
//! const ORDER_SCHEMA: u64 = Order::SCHEMA; // a `const`, computed by the compiler
//! # let _ = ORDER_SCHEMA;
//! ```
//!
//! # What the fingerprint covers
//!
//! The data as serde writes it, which is what bincode stores:
//!
//! - a struct: its kind (struct, tuple struct, newtype struct, unit struct), then each field
//!   serde writes, in declaration order: its serde name (after `#[serde(rename)]` and the
//!   container's `rename_all`) and its type's fingerprint;
//! - an enum: each variant serde writes: its serde name (`rename`, `rename_all`), its index and
//!   its shape (unit, newtype, tuple, or struct with named fields, `rename_all_fields` applied);
//! - nested types through their own [`StateSchema::SCHEMA`].
//!
//! A generic type gets a `T: StateSchema` bound on each type parameter, so `Page<u8>` and
//! `Page<String>` have different fingerprints.
//!
//! Not covered: the Rust name and path of the type (moving or renaming a type keeps its
//! checkpoints readable, and so does renaming a field while keeping its serde name with
//! `#[serde(rename = "old_name")]`), fields with `#[serde(skip)]` (never written), `alias`,
//! `default`, `deny_unknown_fields` and `bound` (they change nothing in bincode's bytes).
//!
//! The std impls follow serde's own impls, so types serde writes alike share a fingerprint:
//! `String`, `str`, `Box<str>`, `Cow<str>` and `PathBuf` are text; `Vec<T>`, `VecDeque<T>`,
//! `[T]` and the sets are sequences; `HashMap` and `BTreeMap` maps; `Box<T>`, `Rc<T>`,
//! `Arc<T>`, `&T`, `Wrapping<T>`, `Reverse<T>` and `NonZeroU32` the value inside; `usize` a
//! `u64`; `[T; N]` a tuple of `N` elements; `Duration` the struct `{ secs, nanos }`;
//! `IpAddr` an enum of octet tuples. With the features `chrono` and `uuid`: chrono's dates
//! and times are text (chrono writes them as RFC 3339 / ISO 8601 strings), a `Uuid` is bytes
//! (uuid writes its 16 bytes when the format is not human readable, as bincode is not).
//!
//! # What the derive refuses, and why
//!
//! Each of these is a compile error pointing at the attribute:
//!
//! - `#[serde(flatten)]`, `#[serde(untagged)]` (on an enum or a variant) and internally tagged
//!   enums (`#[serde(tag = "type")]`): serde reads them back with `deserialize_any`, which
//!   bincode cannot do, so a checkpoint would be written and never read;
//! - adjacently tagged enums (`tag` + `content`): serde reads their tag as an identifier,
//!   which bincode does not support; use serde's default enum representation;
//! - `skip_serializing_if`, and `skip_serializing` or `skip_deserializing` alone: bincode has
//!   no names, so a field written but not read (or read but not written) shifts every later
//!   field; `#[serde(skip)]` (both ways) is fine;
//! - a skipped variant before a written one: serde numbers the variants it reads without the
//!   skipped ones, so bincode would read the wrong variant; skipped variants go last;
//! - `#[serde(with)]`, `serialize_with` or `deserialize_with` on a field, and `into`, `from` or
//!   `try_from` on a type, without an escape hatch (below): they write another shape than the
//!   type's, which only you know.
//!
//! A field whose type does not implement [`StateSchema`] is an error at that type. Types that
//! serde can only read back with `deserialize_any` (such as `serde_json::Value`) have no impl
//! on purpose: they cannot be read back from a checkpoint.
//!
//! # Escape hatches
//!
//! - `#[state_schema(as = T)]` on a field or a type: take `T`'s fingerprint, for a
//!   `#[serde(with)]` field (the type it is written as) or an `into`/`from` type;
//! - `#[state_schema(with = "name-v1")]`: an opaque fingerprint of that string, for a foreign
//!   type that has no impl (the orphan rule keeps you from adding one); change the string
//!   whenever the way it is written changes. Both together mix the two;
//! - `#[state_schema(crate = path)]` on the type: where the runtime crate is, for crates that
//!   re-export it (`::graph_runtime` by default);
//! - a hand-written impl with [`Fingerprint`], for a local type with its own `Serialize`.
//!
//! ```
//! use graph_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! # mod other_crate { pub struct Money(pub i64); }
//! # mod money_as_cents {
//! #     use serde::{Deserialize, Deserializer, Serializer};
//! #     pub fn serialize<S: Serializer>(m: &super::other_crate::Money, s: S) -> Result<S::Ok, S::Error> { s.serialize_i64(m.0) }
//! #     pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::other_crate::Money, D::Error> { i64::deserialize(d).map(super::other_crate::Money) }
//! # }
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub struct Invoice {
//!     #[serde(with = "money_as_cents")]
//!     #[state_schema(as = i64)]              // written as an `i64`
//!     pub total: other_crate::Money,
//!     #[serde(with = "money_as_cents")]
//!     #[state_schema(with = "money-cents-v1")] // or: a name for the format
//!     pub tax: other_crate::Money,
//! }
//! # fn main() {}
//! ```
//!
//! # Recursive types
//!
//! A `const` cannot be computed from itself, so where a field's type names the type being
//! derived (`Self`, `Tree`, `Tree<T>`, anywhere inside: `Vec<Tree>`, `Option<Box<Self>>`) the
//! derive puts the fixed [`Recursive`] marker instead: `children: Vec<Tree>` is "a sequence of
//! the enclosing type".
//!
//! The derive recognises the type by its name, so a field of another type with the same last
//! path segment (`other::Tree` inside `Tree`) is taken as a self-reference too (the
//! fingerprint only gets less precise), and a type alias of the type itself is not (the
//! cycle below).
//!
//! Two types that contain each other (`Folder` holds `Vec<File>`, `File` holds
//! `Option<Box<Folder>>`) are beyond what the derive can see, and rustc reports
//! "cycle detected when … `SCHEMA`". Mark one of the fields `#[state_schema(recursive)]`:
//! its whole fingerprint becomes the marker, which breaks the cycle (a change of that field's
//! type is then not seen from this side, so mark the field of the less central type).
//!
//! ```
//! use graph_runtime::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub struct Folder { pub files: Vec<File>, pub folders: Vec<Folder> }
//!
//! #[derive(Serialize, Deserialize, StateSchema)]
//! pub struct File {
//!     #[state_schema(recursive)]
//!     pub parent: Option<Box<Folder>>,
//! }
//! # let _ = Folder::SCHEMA;
//! ```

/// A type whose serde data model has a `const` fingerprint, stored in every checkpoint.
///
/// Derive it with `#[derive(StateSchema)]` on the state type, the types it contains, and the
/// input types of interrupt nodes; the [module documentation](self) says what the fingerprint
/// covers and which serde attributes the derive refuses.
///
/// ```
/// use graph_runtime::StateSchema;
///
/// #[derive(serde::Serialize, serde::Deserialize, StateSchema)]
/// pub struct Counter { pub count: u64 }
///
/// #[derive(serde::Serialize, serde::Deserialize, StateSchema)]
/// pub struct Tally { pub count: u64 }
///
/// // Same data, another name: the same fingerprint.
/// assert_eq!(Counter::SCHEMA, Tally::SCHEMA);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no state schema fingerprint",
    label = "`{Self}` does not implement `StateSchema`",
    note = "add `#[derive(StateSchema)]` to `{Self}` (the state, the types inside it, interrupt inputs, branch outputs and map items all need it)"
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

/// Stands in for a type inside its own definition, so a recursive type has a fingerprint.
///
/// `#[derive(StateSchema)]` puts it where a field's type names the type being derived (`Self`,
/// `Tree`, `Tree<T>`), so `children: Vec<Tree>` is fingerprinted as a sequence of
/// "recursive": a `const` cannot be computed from itself. A field marked
/// `#[state_schema(recursive)]` (the way out of mutual recursion) is fingerprinted as this
/// marker as a whole.
///
/// ```
/// use graph_runtime::schema::{Fingerprint, Recursive, StateSchema};
///
/// assert_eq!(Recursive::SCHEMA, Fingerprint::new("recursive").finish());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recursive;

impl StateSchema for Recursive {
    const SCHEMA: u64 = Fingerprint::new("recursive").finish();
}

// --- std impls, by serde data model shape -------------------------------------------------
//
// Each impl says what serde's own `Serialize` impl writes (for a format that is not human
// readable, as bincode is not), so types serde writes alike share a fingerprint: `usize` is a
// `u64`, `Vec<T>` and `VecDeque<T>` are sequences, `Box<T>` is `T`, `[T; N]` is a tuple.

/// Primitives whose kind is their serde data model name.
macro_rules! primitive_schema {
    ($($ty:ty => $kind:literal),* $(,)?) => {
        $(
            impl StateSchema for $ty {
                const SCHEMA: u64 = Fingerprint::new($kind).finish();
            }
        )*
    };
}

primitive_schema! {
    bool => "bool",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128",
    // serde writes `isize` and `usize` as 64-bit integers on every platform.
    isize => "i64", usize => "u64",
    f32 => "f32", f64 => "f64",
    char => "char",
    str => "str", String => "str", std::path::Path => "str", std::path::PathBuf => "str",
    () => "unit",
}

/// Types serde writes exactly as the value they hold.
macro_rules! same_as_inner {
    ($($ty:ident),* $(,)?) => {
        $(
            impl<T: ?Sized + StateSchema> StateSchema for $ty<T> {
                const SCHEMA: u64 = T::SCHEMA;
            }
        )*
    };
}

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::num::{Saturating, Wrapping};
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};

same_as_inner!(Box, Rc, Arc, RefCell, Mutex, RwLock);

impl<T: StateSchema> StateSchema for Cell<T> {
    const SCHEMA: u64 = T::SCHEMA;
}
impl<T: StateSchema> StateSchema for Wrapping<T> {
    const SCHEMA: u64 = T::SCHEMA;
}
impl<T: StateSchema> StateSchema for Saturating<T> {
    const SCHEMA: u64 = T::SCHEMA;
}
impl<T: StateSchema> StateSchema for Reverse<T> {
    const SCHEMA: u64 = T::SCHEMA;
}
impl<T: ?Sized + StateSchema> StateSchema for &T {
    const SCHEMA: u64 = T::SCHEMA;
}
impl<T: ?Sized + StateSchema> StateSchema for &mut T {
    const SCHEMA: u64 = T::SCHEMA;
}
/// `Cow<str>` is `"str"`, `Cow<[T]>` a sequence: serde writes the borrowed form.
impl<T: ?Sized + ToOwned + StateSchema> StateSchema for std::borrow::Cow<'_, T> {
    const SCHEMA: u64 = T::SCHEMA;
}

impl<T: StateSchema> StateSchema for Option<T> {
    const SCHEMA: u64 = Fingerprint::new("option").u64(T::SCHEMA).finish();
}

/// serde writes a `Result` as the enum `Result { Ok(T), Err(E) }`.
impl<T: StateSchema, E: StateSchema> StateSchema for Result<T, E> {
    const SCHEMA: u64 = Fingerprint::new("enum")
        .u64(2)
        .str("Ok")
        .u64(0)
        .u64(Fingerprint::new("newtype_variant").u64(T::SCHEMA).finish())
        .str("Err")
        .u64(1)
        .u64(Fingerprint::new("newtype_variant").u64(E::SCHEMA).finish())
        .finish();
}

impl<T: ?Sized> StateSchema for std::marker::PhantomData<T> {
    const SCHEMA: u64 = Fingerprint::new("unit_struct").finish();
}

/// Sequences: serde writes a length, then the elements.
macro_rules! seq_schema {
    ($($ty:ident $(: $bound:path)?),* $(,)?) => {
        $(
            impl<T: StateSchema $(+ $bound)?> StateSchema for $ty<T> {
                const SCHEMA: u64 = Fingerprint::new("seq").u64(T::SCHEMA).finish();
            }
        )*
    };
}

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};

seq_schema!(Vec, VecDeque, LinkedList, BTreeSet, BinaryHeap);

impl<T: StateSchema> StateSchema for [T] {
    const SCHEMA: u64 = Fingerprint::new("seq").u64(T::SCHEMA).finish();
}
impl<T: StateSchema, S> StateSchema for HashSet<T, S> {
    const SCHEMA: u64 = Fingerprint::new("seq").u64(T::SCHEMA).finish();
}
impl<K: StateSchema, V: StateSchema> StateSchema for BTreeMap<K, V> {
    const SCHEMA: u64 = Fingerprint::new("map")
        .u64(K::SCHEMA)
        .u64(V::SCHEMA)
        .finish();
}
impl<K: StateSchema, V: StateSchema, S> StateSchema for HashMap<K, V, S> {
    const SCHEMA: u64 = Fingerprint::new("map")
        .u64(K::SCHEMA)
        .u64(V::SCHEMA)
        .finish();
}

/// serde writes `[T; N]` as a tuple of `N` elements (no length), like `(T, T, …)`.
impl<T: StateSchema, const N: usize> StateSchema for [T; N] {
    const SCHEMA: u64 = {
        let mut fingerprint = Fingerprint::new("tuple").u64(N as u64);
        let mut i = 0;
        while i < N {
            fingerprint = fingerprint.u64(T::SCHEMA);
            i += 1;
        }
        fingerprint.finish()
    };
}

/// Tuples: `Fingerprint::new("tuple").u64(len)`, then each element's fingerprint.
macro_rules! tuple_schema {
    ($(($len:literal: $($name:ident)+))+) => {
        $(
            impl<$($name: StateSchema),+> StateSchema for ($($name,)+) {
                const SCHEMA: u64 = Fingerprint::new("tuple")
                    .u64($len)
                    $(.u64($name::SCHEMA))+
                    .finish();
            }
        )+
    };
}

tuple_schema! {
    (1: T0)
    (2: T0 T1)
    (3: T0 T1 T2)
    (4: T0 T1 T2 T3)
    (5: T0 T1 T2 T3 T4)
    (6: T0 T1 T2 T3 T4 T5)
    (7: T0 T1 T2 T3 T4 T5 T6)
    (8: T0 T1 T2 T3 T4 T5 T6 T7)
    (9: T0 T1 T2 T3 T4 T5 T6 T7 T8)
    (10: T0 T1 T2 T3 T4 T5 T6 T7 T8 T9)
    (11: T0 T1 T2 T3 T4 T5 T6 T7 T8 T9 T10)
    (12: T0 T1 T2 T3 T4 T5 T6 T7 T8 T9 T10 T11)
}

/// serde writes a `NonZero*` as its integer.
macro_rules! nonzero_schema {
    ($($ty:ident => $int:ty),* $(,)?) => {
        $(
            impl StateSchema for std::num::$ty {
                const SCHEMA: u64 = <$int as StateSchema>::SCHEMA;
            }
        )*
    };
}

nonzero_schema! {
    NonZeroI8 => i8, NonZeroI16 => i16, NonZeroI32 => i32, NonZeroI64 => i64,
    NonZeroI128 => i128, NonZeroIsize => isize,
    NonZeroU8 => u8, NonZeroU16 => u16, NonZeroU32 => u32, NonZeroU64 => u64,
    NonZeroU128 => u128, NonZeroUsize => usize,
}

/// serde writes a `Duration` as `struct Duration { secs: u64, nanos: u32 }`.
impl StateSchema for std::time::Duration {
    const SCHEMA: u64 = Fingerprint::new("struct")
        .u64(2)
        .str("secs")
        .u64(u64::SCHEMA)
        .str("nanos")
        .u64(u32::SCHEMA)
        .finish();
}

/// serde writes a `SystemTime` as
/// `struct SystemTime { secs_since_epoch: u64, nanos_since_epoch: u32 }`.
impl StateSchema for std::time::SystemTime {
    const SCHEMA: u64 = Fingerprint::new("struct")
        .u64(2)
        .str("secs_since_epoch")
        .u64(u64::SCHEMA)
        .str("nanos_since_epoch")
        .u64(u32::SCHEMA)
        .finish();
}

// std::net, as serde writes them when the format is not human readable: addresses as their
// octets (a tuple), socket addresses as `(ip, port)`, the enums with newtype variants.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

impl StateSchema for Ipv4Addr {
    const SCHEMA: u64 = <[u8; 4]>::SCHEMA;
}
impl StateSchema for Ipv6Addr {
    const SCHEMA: u64 = <[u8; 16]>::SCHEMA;
}
impl StateSchema for SocketAddrV4 {
    const SCHEMA: u64 = <(Ipv4Addr, u16)>::SCHEMA;
}
impl StateSchema for SocketAddrV6 {
    const SCHEMA: u64 = <(Ipv6Addr, u16)>::SCHEMA;
}
impl StateSchema for IpAddr {
    const SCHEMA: u64 = v4_v6_enum(Ipv4Addr::SCHEMA, Ipv6Addr::SCHEMA);
}
impl StateSchema for SocketAddr {
    const SCHEMA: u64 = v4_v6_enum(SocketAddrV4::SCHEMA, SocketAddrV6::SCHEMA);
}

/// `enum { V4(v4), V6(v6) }`, the shape of `IpAddr` and `SocketAddr`.
const fn v4_v6_enum(v4: u64, v6: u64) -> u64 {
    Fingerprint::new("enum")
        .u64(2)
        .str("V4")
        .u64(0)
        .u64(Fingerprint::new("newtype_variant").u64(v4).finish())
        .str("V6")
        .u64(1)
        .u64(Fingerprint::new("newtype_variant").u64(v6).finish())
        .finish()
}

/// chrono's serde impls write dates and times as text (RFC 3339 for `DateTime`, ISO 8601 for
/// the naive types), in every format, bincode included; `TimeDelta` as `(secs, nanos)`.
#[cfg(feature = "chrono")]
mod chrono_impls {
    use super::{Fingerprint, StateSchema};

    impl<Tz: chrono::TimeZone> StateSchema for chrono::DateTime<Tz> {
        const SCHEMA: u64 = Fingerprint::new("str").finish();
    }

    primitive_schema! {
        chrono::NaiveDate => "str",
        chrono::NaiveDateTime => "str",
        chrono::NaiveTime => "str",
        chrono::Weekday => "str",
        chrono::Month => "str",
    }

    impl StateSchema for chrono::TimeDelta {
        const SCHEMA: u64 = <(i64, i32)>::SCHEMA;
    }
}

/// uuid's serde impl writes a `Uuid` as its 16 bytes when the format is not human readable,
/// as bincode is not (and as text otherwise).
#[cfg(feature = "uuid")]
impl StateSchema for uuid::Uuid {
    const SCHEMA: u64 = Fingerprint::new("bytes").finish();
}
