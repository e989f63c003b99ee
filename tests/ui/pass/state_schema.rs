//! `#[derive(StateSchema)]` on the shapes a state type has, with every escape hatch, under
//! strict lints.
#![deny(warnings, missing_docs)]

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// Something from another crate, written by `#[serde(with)]`.
pub struct Foreign(pub u64);

mod foreign_as_u64 {
    use super::Foreign;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Foreign, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Foreign, D::Error> {
        u64::deserialize(deserializer).map(Foreign)
    }
}

/// A recursive type.
#[derive(Serialize, Deserialize, StateSchema)]
pub struct Tree {
    /// The value.
    pub value: u32,
    /// The children.
    pub children: Vec<Tree>,
    /// The parent, through `Self`.
    pub first: Option<Box<Self>>,
}

/// A generic type.
#[derive(Serialize, Deserialize, StateSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<'a, T> {
    /// The items.
    pub page_items: Vec<T>,
    /// A fixed array.
    pub marks: [u8; 4],
    /// Borrowed text.
    pub title: &'a str,
    /// Left out of checkpoints.
    #[serde(skip)]
    pub cache: Option<Foreign>,
    /// Written by `#[serde(with)]`, fingerprinted as a `u64`.
    #[serde(with = "foreign_as_u64")]
    #[state_schema(as = u64)]
    pub foreign: Foreign,
    /// Opaque: a name to change when the format changes.
    #[serde(with = "foreign_as_u64")]
    #[state_schema(with = "foreign-u64-v1")]
    pub other: Foreign,
}

/// Every variant shape.
#[derive(Serialize, Deserialize, StateSchema)]
#[serde(rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum Shape {
    /// Unit.
    Empty,
    /// Newtype.
    Wrapped(Tree),
    /// Tuple.
    Pair(u8, String),
    /// Struct.
    Named {
        /// A field.
        long_name: u64,
    },
    /// Only in memory.
    #[serde(skip)]
    Local,
}

fn main() {
    let _ = Tree::SCHEMA;
    let _ = <Page<'static, u8>>::SCHEMA;
    let _ = Shape::SCHEMA;
}
