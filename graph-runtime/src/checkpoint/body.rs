//! The records a checkpoint body holds besides the state: the failure an error edge reads, the
//! slots of a parallel region's frontier, and the frontier itself. They are encoded data,
//! defined here so that the envelope that writes them imports nothing from the runner.
//!
//! Every value a slot keeps (a branch's output, a recorded decision) is [`Saved`] with the
//! `StateSchema` fingerprint of its type, as the state and the inputs are, so that a value of
//! another type is refused before a byte of it is decoded. Envelope version 3 wrote slots and
//! map items without fingerprints: they read back with [`Saved::UNRECORDED`].

use serde::{Deserialize, Serialize};

/// What failed before an error edge was taken: read it with
/// [`NodeCtx::failure`](crate::NodeCtx::failure) in the error node. It is saved in the
/// checkpoint, so the error node sees it again after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    node: String,
    error: String,
}

impl Failure {
    pub(crate) fn new(node: &str, error: String) -> Self {
        Failure {
            node: node.to_owned(),
            error,
        }
    }

    /// The node that failed.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The error it returned (after its last attempt) with its causes, on one line:
    /// `"outer: cause: root cause"`, each once.
    pub fn error(&self) -> &str {
        &self.error
    }
}

/// A value saved in a frontier: its bytes (the checkpoint codec's encoding of it) and the
/// `StateSchema` fingerprint of the type that wrote them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The fingerprint of the type the bytes encode; [`Saved::UNRECORDED`] when the
    /// checkpoint was written before fingerprints were kept (envelope version 3).
    pub schema: u64,
    /// The encoded value.
    pub bytes: Vec<u8>,
}

impl Saved {
    /// The fingerprint of a value saved by a release that recorded none.
    pub const UNRECORDED: u64 = 0;

    /// `bytes`, written by the type whose fingerprint is `schema`.
    pub fn new(schema: u64, bytes: Vec<u8>) -> Self {
        Saved { schema, bytes }
    }
}

/// One branch of a frontier: where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Slot {
    /// Not run yet, or cut short by a crash or a sibling's failure: runs (again) on resume.
    Pending,
    /// An interrupt branch waiting for its decision.
    Waiting,
    /// An interrupt branch whose decision is recorded (the encoded `Input`, with the
    /// workflow's input schema) but which has not finished with it yet.
    Input(Saved),
    /// Finished: its encoded output, with its output type's fingerprint.
    Done(Saved),
    /// Failed after its retries, kept for a join that collects failures.
    Failed(Failure),
}

/// A slot as envelope version 3 encoded it: values without fingerprints.
#[derive(Deserialize)]
pub(super) enum SlotV3 {
    Pending,
    Waiting,
    Input(Vec<u8>),
    Done(Vec<u8>),
    Failed(Failure),
}

impl From<SlotV3> for Slot {
    fn from(slot: SlotV3) -> Self {
        let unrecorded = |bytes| Saved::new(Saved::UNRECORDED, bytes);
        match slot {
            SlotV3::Pending => Slot::Pending,
            SlotV3::Waiting => Slot::Waiting,
            SlotV3::Input(bytes) => Slot::Input(unrecorded(bytes)),
            SlotV3::Done(bytes) => Slot::Done(unrecorded(bytes)),
            SlotV3::Failed(failure) => Slot::Failed(failure),
        }
    }
}

/// The frontier of a parallel region, as a checkpoint body saves it after the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrontierRef<'a> {
    /// The sequence number of the step that opened the region.
    pub opened: u64,
    /// A map's encoded items, with the fingerprint of their type; `None` for a static
    /// fan-out.
    pub items: Option<(u64, &'a [Vec<u8>])>,
    /// One slot per branch or item.
    pub slots: &'a [Slot],
}

/// A frontier read back from a checkpoint body (see [`FrontierRef`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrontierBody {
    pub opened: u64,
    /// The fingerprint of the map's item type ([`Saved::UNRECORDED`] from version 3), and
    /// the encoded items.
    pub items: Option<(u64, Vec<Vec<u8>>)>,
    pub slots: Vec<Slot>,
}
