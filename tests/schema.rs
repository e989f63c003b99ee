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
