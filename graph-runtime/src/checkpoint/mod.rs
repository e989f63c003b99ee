//! Checkpoints as bytes — the one place that turns state into bytes and back: the envelope
//! (`envelope`: the format, its versions and how it is opened), the bincode codec behind it
//! (`codec`, so the codec id can move to another format without breaking stored checkpoints),
//! the deltas of incremental checkpoints (`delta`), reading a chain of them (and of branch
//! records) back (`chain`), and the records a body holds besides the
//! state (`body`: failures, the slots of a frontier).

mod body;
pub(crate) mod chain;
mod codec;
pub(crate) mod delta;
mod envelope;

pub use self::body::{Failure, Saved, Slot};
pub(crate) use self::body::{FrontierBody, FrontierRef};
pub use self::codec::{DecodeError, decode_prefix};
pub(crate) use self::envelope::*;
