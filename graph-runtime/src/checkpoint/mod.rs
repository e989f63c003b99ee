//! Checkpoints as bytes — the one place that turns state into bytes and back: the envelope
//! (`envelope`: the format, its versions and how it is opened), the bincode codec behind it
//! (`codec`, so the codec id can move to another format without breaking stored checkpoints),
//! and the deltas of incremental checkpoints (`delta`).

mod codec;
pub(crate) mod delta;
mod envelope;

pub use self::codec::{DecodeError, decode_prefix};
pub(crate) use self::envelope::*;
