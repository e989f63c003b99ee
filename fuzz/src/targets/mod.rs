//! The bodies of the runtime's fuzz targets, one module each, shared by the fuzz binaries
//! (`fuzz/fuzz_targets/`, through this package's library) and by the test that replays the
//! committed corpus with plain `cargo test` (`tests/fuzz_corpus.rs` at the repository's root,
//! which includes this directory with `#[path]`). Each `run` takes one input and panics on a
//! finding; nothing else may panic.
//!
//! The structured inputs (everything but raw bytes and text) are read with [`Reader`], whose
//! layout the seed generators write with [`Writer`], so that seeds built from real checkpoints
//! are inputs like any other.

pub mod chain;
pub mod delta;
pub mod envelope;
pub mod json_input;
pub mod json_patch;
pub mod store_rows;
pub mod workflows;

/// A target's body: one input.
pub type Body = fn(&[u8]);

/// A named input.
pub type Input = (String, Vec<u8>);

/// A target's seed generator.
pub type Seeds = fn() -> Vec<Input>;

/// Every target with a body here, by the name of its fuzz binary and corpus directory.
pub const TARGETS: &[(&str, Body)] = &[
    ("envelope", envelope::run),
    ("delta", delta::run),
    ("chain", chain::run),
    ("store_rows", store_rows::run),
    ("json_input", json_input::run),
    ("json_patch", json_patch::run),
];

/// The seed inputs of each target that has generated ones, by target: real checkpoints,
/// deltas and files, and JSON of each shape. `tests/fuzz_corpus.rs` replays them with the
/// corpus, and writes them out on request (see `fuzz/README.md`).
pub const SEEDS: &[(&str, Seeds)] = &[
    ("envelope", envelope::seeds),
    ("delta", delta::seeds),
    ("chain", chain::seeds),
    ("store_rows", store_rows::seeds),
    ("json_input", json_input::seeds),
    ("json_patch", json_patch::seeds),
];

/// Reads a structured input: bytes, little-endian integers and length-prefixed byte strings.
/// Past the end, every read gives zeros or an empty string, so any input is a valid one.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes as a little-endian `u16` (missing bytes are zeros).
    pub fn u16(&mut self) -> u16 {
        let mut le = [0u8; 2];
        let bytes = self.take(2);
        le[..bytes.len()].copy_from_slice(bytes);
        u16::from_le_bytes(le)
    }

    /// The next eight bytes as a little-endian `u64` (missing bytes are zeros).
    pub fn u64(&mut self) -> u64 {
        let mut le = [0u8; 8];
        let bytes = self.take(8);
        le[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(le)
    }

    /// A byte string of `u16` length (shorter if the input ends first).
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16());
        self.take(len)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len())
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = tail;
        head
    }
}

/// Writes what [`Reader`] reads (for the seed generators).
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// One byte.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.0.push(value);
        self
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A byte string of `u16` length; longer ones do not fit the format.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).expect("a seed's byte string fits a u16 length");
        self.u16(len);
        self.0.extend_from_slice(bytes);
        self
    }

    /// Bytes as they are.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// A tokio runtime for one input's async calls: current-thread, with timers (paused runs
/// need none of the machine's time), made once per process and thread. Its blocking threads
/// (SQLite's reads) are kept for the process's life: one that ended after its 10 s of idling,
/// in the middle of some input, was reported by LeakSanitizer as that input's leak.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .thread_keep_alive(std::time::Duration::from_secs(365 * 24 * 3600))
            .build()
            .expect("a tokio runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// Asserts that an error a hostile input caused is one a caller can handle: it says what is
/// wrong (a non-empty message), names the session it concerns when it is about bytes, and is
/// not one that only a bug can give.
pub fn check_error(session: &str, error: &graph_runtime::Error) {
    check_error_of(&[session], error);
}

/// [`check_error`] for an error about any of `sessions` (any session at all if none).
pub fn check_error_of(sessions: &[&str], error: &graph_runtime::Error) {
    use graph_runtime::Error;
    let message = error.to_string();
    assert!(!message.is_empty(), "an error without a message: {error:?}");
    match error {
        Error::Corrupt { session: s, .. }
        | Error::SchemaMismatch { session: s, .. }
        | Error::UnknownNode { session: s, .. }
        | Error::GraphMismatch { session: s, .. } => {
            assert!(
                sessions.is_empty() || sessions.contains(&s.as_str()),
                "an error about another session: {error}"
            );
        }
        Error::Panicked { .. } => panic!("a node panicked: {error}"),
        Error::Encode { .. } => panic!("a state read back does not encode again: {error}"),
        _ => {}
    }
}
