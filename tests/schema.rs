//! `#[derive(StateSchema)]`: which changes of a state type change its fingerprint (a checkpoint
//! of the old shape is then refused), which do not, and that the shapes the derive accepts
//! round-trip through bincode.

#![allow(dead_code)]

use graph_runtime::StateSchema;
use graph_runtime::schema::{Fingerprint, Recursive};

#[test]
fn marker_is_public() {
    assert_eq!(Recursive::SCHEMA, Fingerprint::new("recursive").finish());
}
use serde::{Deserialize, Serialize};

/// Two versions of one type in separate modules, so each can keep the Rust name.
macro_rules! versions {
    ($($module:ident { $($item:item)* })*) => {
        $(mod $module {
            #![allow(dead_code)]
            use super::*;
            $($item)*
        })*
    };
}

fn schema<T: StateSchema + ?Sized>() -> u64 {
    T::SCHEMA
}

versions! {
    base {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, pub note: String, pub total: u64 }
    }
    added {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, pub note: String, pub total: u64, pub paid: bool }
    }
    removed {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, pub note: String }
    }
    renamed {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, pub memo: String, pub total: u64 }
    }
    swapped {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub total: u64, pub note: String, pub id: u64 }
    }
    retyped {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, pub note: String, pub total: u32 }
    }
    serde_renamed {
        // The Rust field is renamed, serde still writes `note`: the same data.
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Order { pub id: u64, #[serde(rename = "note")] pub memo: String, pub total: u64 }
    }
    other_name {
        // Another Rust name for the same shape: checkpoints stay readable.
        #[derive(Serialize, Deserialize, StateSchema)]
        pub struct Purchase { pub id: u64, pub note: String, pub total: u64 }
    }
}

#[test]
fn struct_changes_change_the_fingerprint() {
    let base = schema::<base::Order>();
    assert_ne!(base, schema::<added::Order>(), "added field");
    assert_ne!(base, schema::<removed::Order>(), "removed field");
    assert_ne!(base, schema::<renamed::Order>(), "renamed field");
    assert_ne!(
        base,
        schema::<swapped::Order>(),
        "swapped fields of one type"
    );
    assert_ne!(base, schema::<retyped::Order>(), "changed field type");
}

#[test]
fn same_data_model_same_fingerprint() {
    let base = schema::<base::Order>();
    assert_eq!(base, schema::<serde_renamed::Order>());
    assert_eq!(base, schema::<other_name::Purchase>());
}

versions! {
    enum_base {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status { Open, Paid { charge: String }, Refunded(u64), Split(u64, u64) }
    }
    enum_reordered {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status { Paid { charge: String }, Open, Refunded(u64), Split(u64, u64) }
    }
    enum_reshaped {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status { Open, Paid(String), Refunded(u64), Split(u64, u64) }
    }
    enum_nested {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status { Open, Paid { charge: String }, Refunded(u32), Split(u64, u64) }
    }
    enum_renamed_variant {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status { Opened, Paid { charge: String }, Refunded(u64), Split(u64, u64) }
    }
    enum_serde_renamed {
        #[derive(Serialize, Deserialize, StateSchema)]
        pub enum Status {
            #[serde(rename = "Open")]
            Opened,
            Paid { #[serde(rename = "charge")] charge_id: String },
            Refunded(u64),
            Split(u64, u64),
        }
    }
}

#[test]
fn enum_changes_change_the_fingerprint() {
    let base = schema::<enum_base::Status>();
    assert_ne!(
        base,
        schema::<enum_reordered::Status>(),
        "reordered variants"
    );
    assert_ne!(base, schema::<enum_reshaped::Status>(), "variant shape");
    assert_ne!(base, schema::<enum_nested::Status>(), "nested type");
    assert_ne!(
        base,
        schema::<enum_renamed_variant::Status>(),
        "variant name"
    );
    assert_eq!(
        base,
        schema::<enum_serde_renamed::Status>(),
        "serde names kept"
    );
}

// --- equal shapes, as serde sees them ----------------------------------------------------------

#[derive(Serialize, Deserialize, StateSchema)]
struct DurationLike {
    secs: u64,
    nanos: u32,
}

#[test]
fn std_types_share_fingerprints_by_data_model() {
    use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
    use std::time::Duration;
    assert_eq!(schema::<Vec<u8>>(), schema::<VecDeque<u8>>());
    assert_eq!(schema::<Vec<u8>>(), schema::<BTreeSet<u8>>());
    assert_eq!(schema::<Vec<u8>>(), schema::<[u8]>());
    assert_ne!(schema::<Vec<u8>>(), schema::<Vec<u16>>());
    assert_eq!(schema::<String>(), schema::<str>());
    assert_eq!(schema::<String>(), schema::<Box<str>>());
    assert_eq!(
        schema::<String>(),
        schema::<std::borrow::Cow<'static, str>>()
    );
    assert_eq!(schema::<String>(), schema::<std::path::PathBuf>());
    assert_eq!(schema::<u64>(), schema::<usize>());
    assert_eq!(schema::<u64>(), schema::<std::num::NonZeroU64>());
    assert_eq!(schema::<u64>(), schema::<std::sync::Arc<u64>>());
    assert_eq!(schema::<[u8; 3]>(), schema::<(u8, u8, u8)>());
    assert_ne!(schema::<[u8; 3]>(), schema::<Vec<u8>>());
    assert_ne!(schema::<[u8; 0]>(), schema::<()>());
    assert_eq!(
        schema::<HashMap<String, u8>>(),
        schema::<BTreeMap<String, u8>>()
    );
    assert_ne!(
        schema::<HashMap<String, u8>>(),
        schema::<HashMap<u8, String>>()
    );
    assert_ne!(schema::<Option<u8>>(), schema::<u8>());
    assert_eq!(schema::<Duration>(), schema::<DurationLike>());
    assert_ne!(schema::<Duration>(), schema::<std::time::SystemTime>());
    assert_ne!(schema::<i32>(), schema::<u32>());
    assert_ne!(schema::<char>(), schema::<String>());
}

// --- recursion -----------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
struct Tree {
    value: u32,
    children: Vec<Tree>,
    parent: Option<Box<Self>>,
}

#[derive(StateSchema)]
struct TreeOfRecursive {
    value: u32,
    children: Vec<Recursive>,
    parent: Option<Box<Recursive>>,
}

#[derive(StateSchema)]
struct TreeWithStrings {
    value: u32,
    children: Vec<String>,
    parent: Option<String>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
enum List<T> {
    Nil,
    Cons(T, Box<List<T>>),
}

// Mutual recursion: without `recursive` on one side, rustc reports a cycle between the two
// `SCHEMA` constants.
#[derive(Serialize, Deserialize, StateSchema)]
struct Folder {
    files: Vec<File>,
}

#[derive(Serialize, Deserialize, StateSchema)]
struct File {
    #[state_schema(recursive)]
    parent: Option<Box<Folder>>,
}

#[test]
fn self_reference_compiles_and_is_stable() {
    // A self-reference is the "recursive" marker, whatever the spelling (`Tree` or `Self`).
    assert_eq!(schema::<Tree>(), schema::<TreeOfRecursive>());
    assert_ne!(schema::<Tree>(), schema::<TreeWithStrings>());
    // Pinned: the fingerprint is part of the checkpoint format, it must not drift between
    // builds or releases. A change here means every stored checkpoint of such a type is refused.
    assert_eq!(
        schema::<Tree>(),
        0x2d6c_4010_388a_d18e,
        "{:#x}",
        schema::<Tree>()
    );
    assert_ne!(schema::<List<u8>>(), schema::<List<u16>>());
    let list = List::Cons(1u8, Box::new(List::Cons(2, Box::new(List::Nil))));
    assert_eq!(round_trip(&list), list);
}

#[test]
fn mutual_recursion_through_the_field_attribute() {
    assert_eq!(
        schema::<File>(),
        Fingerprint::new("struct")
            .u64(1)
            .str("parent")
            .u64(Recursive::SCHEMA)
            .finish()
    );
    assert_ne!(schema::<Folder>(), schema::<File>());
}

// --- generics ------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize, StateSchema)]
struct Page<'a, T, const N: usize>
where
    T: Clone,
{
    items: Vec<T>,
    title: &'a str,
    #[serde(skip)]
    marks: std::marker::PhantomData<[u8; N]>,
}

#[test]
fn generic_types_follow_their_parameters() {
    assert_ne!(
        schema::<Page<'static, u8, 1>>(),
        schema::<Page<'static, String, 1>>()
    );
    // `N` only sizes a skipped field: not part of the data.
    assert_eq!(
        schema::<Page<'static, u8, 1>>(),
        schema::<Page<'static, u8, 2>>()
    );
}

// --- escape hatches ------------------------------------------------------------------------------

/// A type from "another crate": no `Serialize`, no `StateSchema`.
#[derive(Debug, PartialEq)]
struct Cents(u64);

mod cents_as_u64 {
    use super::Cents;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Cents, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cents, D::Error> {
        u64::deserialize(deserializer).map(Cents)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
struct WithAs {
    #[serde(with = "cents_as_u64")]
    #[state_schema(as = u64)]
    total: Cents,
}

#[derive(Serialize, Deserialize, StateSchema)]
struct PlainU64 {
    total: u64,
}

#[derive(Serialize, Deserialize, StateSchema)]
struct WithName {
    #[serde(with = "cents_as_u64")]
    #[state_schema(with = "cents-v1")]
    total: Cents,
}

#[derive(Serialize, Deserialize, StateSchema)]
struct WithNameV2 {
    #[serde(with = "cents_as_u64")]
    #[state_schema(with = "cents-v2")]
    total: Cents,
}

#[derive(Serialize, Deserialize, StateSchema)]
struct WithBoth {
    #[serde(with = "cents_as_u64")]
    #[state_schema(as = u64, with = "cents-v1")]
    total: Cents,
}

/// Written as a string by `into`/`try_from`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
#[serde(into = "String", try_from = "String")]
#[state_schema(as = String)]
struct Email {
    user: String,
    host: String,
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        format!("{}@{}", email.user, email.host)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(text: String) -> Result<Email, String> {
        let (user, host) = text.split_once('@').ok_or("no `@`")?;
        Ok(Email {
            user: user.into(),
            host: host.into(),
        })
    }
}

#[test]
fn escape_hatches_for_foreign_and_converted_types() {
    assert_eq!(schema::<WithAs>(), schema::<PlainU64>());
    assert_ne!(schema::<WithName>(), schema::<PlainU64>());
    assert_ne!(schema::<WithName>(), schema::<WithNameV2>());
    assert_ne!(schema::<WithBoth>(), schema::<WithName>());
    assert_eq!(schema::<Email>(), schema::<String>());
    let value = WithAs { total: Cents(250) };
    assert_eq!(round_trip(&value), value);
    let email = Email {
        user: "ada".into(),
        host: "example.com".into(),
    };
    assert_eq!(round_trip(&email), email);
}

// --- the shapes the derive accepts round-trip through bincode ------------------------------------

fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).expect("encode");
    let (decoded, read) = bincode::serde::decode_from_slice(&bytes, config).expect("decode");
    assert_eq!(read, bytes.len(), "every byte read");
    decoded
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, StateSchema)]
#[serde(rename_all = "camelCase", default)]
struct Tricky {
    first_field: u8,
    #[serde(skip)]
    cache: Vec<u64>,
    last_field: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
#[serde(transparent)]
struct Wrapper {
    inner: Vec<u16>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
enum WithTrailingSkip {
    A(u8),
    B {
        x: i64,
    },
    #[serde(skip)]
    Local,
}

#[derive(Debug, PartialEq, Serialize, Deserialize, StateSchema)]
struct Std {
    duration: std::time::Duration,
    time: std::time::SystemTime,
    ip: std::net::IpAddr,
    socket: std::net::SocketAddr,
    count: std::num::NonZeroU32,
    array: [u16; 3],
    result: Result<u8, String>,
    tuple: (u8, char, bool, f64),
    unit: (),
    marker: std::marker::PhantomData<String>,
    wrapping: std::num::Wrapping<i8>,
}

#[test]
fn accepted_shapes_round_trip() {
    let tricky = Tricky {
        first_field: 7,
        cache: vec![1, 2],
        last_field: "x".into(),
    };
    assert_eq!(
        round_trip(&tricky),
        Tricky {
            cache: Vec::new(),
            ..tricky
        }
    );
    let wrapper = Wrapper {
        inner: vec![1, 300],
    };
    assert_eq!(round_trip(&wrapper), wrapper);
    assert_eq!(schema::<Wrapper>(), schema::<Vec<u16>>());
    for value in [WithTrailingSkip::A(3), WithTrailingSkip::B { x: -9 }] {
        assert_eq!(round_trip(&value), value);
    }
    let value = Std {
        duration: std::time::Duration::new(5, 6),
        time: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        ip: "::1".parse().expect("ip"),
        socket: "127.0.0.1:8080".parse().expect("socket"),
        count: std::num::NonZeroU32::new(3).expect("non-zero"),
        array: [1, 2, 3],
        result: Err("no".into()),
        tuple: (1, 'é', true, 0.5),
        unit: (),
        marker: std::marker::PhantomData,
        wrapping: std::num::Wrapping(-1),
    };
    assert_eq!(round_trip(&value), value);
}

#[test]
fn trailing_skipped_variants_are_not_in_the_fingerprint() {
    #[derive(Serialize, Deserialize, StateSchema)]
    enum WithoutSkip {
        A(u8),
        B { x: i64 },
    }
    assert_eq!(schema::<WithTrailingSkip>(), schema::<WithoutSkip>());
}

// --- optional impls ------------------------------------------------------------------------------

#[cfg(feature = "chrono")]
#[test]
fn chrono_types_are_text() {
    use chrono::{DateTime, NaiveDate, TimeZone, Utc};
    assert_eq!(schema::<DateTime<Utc>>(), schema::<String>());
    assert_eq!(schema::<NaiveDate>(), schema::<String>());
    let when = Utc
        .with_ymd_and_hms(2026, 12, 1, 3, 0, 0)
        .single()
        .expect("a valid date");
    assert_eq!(round_trip(&when), when);
    let date = NaiveDate::from_ymd_opt(2026, 12, 1).expect("a valid date");
    assert_eq!(round_trip(&date), date);
}

#[cfg(feature = "uuid")]
#[test]
fn uuid_is_bytes() {
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    assert_ne!(schema::<uuid::Uuid>(), schema::<String>());
    assert_eq!(schema::<uuid::Uuid>(), Fingerprint::new("bytes").finish());
    assert_eq!(round_trip(&id), id);
    // bincode is not human readable: 16 bytes and a length, not 36 characters of text.
    let bytes = bincode::serde::encode_to_vec(id, bincode::config::standard()).expect("encode");
    assert_eq!(bytes.len(), 17);
}

// --- why the derive refuses what it refuses: each of these fails or misreads in bincode -------

/// Encodes `value` and decodes it back: `None` when either fails.
fn try_round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> Option<T> {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).ok()?;
    let (decoded, _) = bincode::serde::decode_from_slice(&bytes, config).ok()?;
    Some(decoded)
}

mod refused {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Inner {
        pub city: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct Flattened {
        pub name: String,
        #[serde(flatten)]
        pub inner: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Untagged {
        Number(u64),
        Text(String),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum Internally {
        Created { id: u64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "t", content = "c")]
    pub enum Adjacently {
        Unit,
        Number(u32),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub struct SkipIf {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub note: Option<u8>,
        pub count: u8,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum SkippedFirst {
        #[serde(skip)]
        Local,
        A(u8),
        B(u8),
    }
}

#[test]
fn refused_shapes_do_not_round_trip_through_bincode() {
    let flattened = refused::Flattened {
        name: "a".into(),
        inner: refused::Inner { city: "b".into() },
    };
    assert_eq!(try_round_trip(&flattened), None, "flatten");
    assert_eq!(
        try_round_trip(&refused::Untagged::Text("x".into())),
        None,
        "untagged"
    );
    assert_eq!(
        try_round_trip(&refused::Internally::Created { id: 1 }),
        None,
        "internally tagged"
    );
    for value in [refused::Adjacently::Unit, refused::Adjacently::Number(7)] {
        assert_eq!(try_round_trip(&value), None, "adjacently tagged");
    }
    let skip_if = refused::SkipIf {
        note: None,
        count: 3,
    };
    assert_ne!(
        try_round_trip(&skip_if),
        Some(skip_if),
        "skip_serializing_if"
    );
    // The worst case: it decodes, as another variant.
    assert_eq!(
        try_round_trip(&refused::SkippedFirst::A(5)),
        Some(refused::SkippedFirst::B(5)),
        "a skipped variant before written ones"
    );
}

// --- `crate = path` -------------------------------------------------------------------------------

/// The runtime, re-exported the way a framework built on it would.
mod runtime {
    pub use graph_runtime::*;
}

#[derive(Serialize, Deserialize, StateSchema)]
#[state_schema(crate = crate::runtime)]
struct ThroughReexport {
    id: u64,
    note: String,
    total: u64,
}

#[test]
fn crate_path_override() {
    assert_eq!(schema::<ThroughReexport>(), schema::<base::Order>());
}
