//! The codec: bincode 2 with the standard configuration, behind one module so that the codec
//! id in the envelope can name another format later without touching the runner.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a body did not decode (what bincode said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub(crate) String);

impl DecodeError {
    /// An error that says `reason`.
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        DecodeError(reason.into())
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

pub(super) fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Writes bincode output straight into a buffer.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Appends the encoding of `value` to `buf`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    bincode::serde::encode_into_writer(value, VecWriter(buf), config()).map_err(|e| e.to_string())
}

/// Decodes one value from the start of `bytes` with an allocation limit; returns it and the
/// number of bytes it took. Never panics and never allocates without bound, whatever the bytes.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), DecodeError> {
    // bincode's `standard()` config trusts length prefixes: an 11-byte body may claim 2^40
    // elements. The limit caps what decoding may allocate; small bodies get a small cap.
    let decoded = if bytes.len() <= 64 << 10 {
        bincode::serde::decode_from_slice(bytes, config().with_limit::<{ 64 << 20 }>())
    } else {
        bincode::serde::decode_from_slice(bytes, config().with_limit::<{ 1 << 30 }>())
    };
    decoded.map_err(|e| DecodeError(e.to_string()))
}
