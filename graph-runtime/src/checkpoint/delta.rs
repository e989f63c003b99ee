//! Placeholder until the delta codec lands (never writes a delta).
pub(crate) fn encode(_old: &[u8], _new: &[u8], _max_len: usize) -> Option<Vec<u8>> {
    None
}
pub(crate) fn reconstruct(base: &[u8], deltas: &[&[u8]], _limit: usize) -> Result<Vec<u8>, String> {
    if deltas.is_empty() {
        Ok(base.to_vec())
    } else {
        Err("no delta codec".into())
    }
}
