//! An in-memory store for tests and ephemeral runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Append, Checkpoint, CheckpointMeta, Store};
use crate::{Error, Result};

type Sessions = HashMap<String, VecDeque<Checkpoint>>;

/// Keeps checkpoints in process memory.
///
/// It stores the same encoded, checksummed bytes a durable store would, so a workflow tested on
/// it behaves as it will on SQLite. Clones share the same data.
///
/// ```
/// use graph_runtime::MemoryStore;
/// let store = MemoryStore::new();
/// let shared = store.clone(); // same sessions
/// # drop(shared);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    sessions: Arc<Mutex<Sessions>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        // No code panics while holding the lock, but a poisoned map is still consistent:
        // every mutation below completes before anything can fail.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops the oldest checkpoints beyond `keep_last`, except those a kept one depends on.
fn prune_front(chain: &mut VecDeque<Checkpoint>, keep_last: u64) -> u64 {
    let keep = usize::try_from(keep_last).unwrap_or(usize::MAX).max(1);
    let mut excess = chain.len().saturating_sub(keep);
    if excess == 0 {
        return 0;
    }
    let needed = chain.iter().skip(excess).filter_map(|c| c.depends_on).min();
    if let Some(needed) = needed {
        // The chain is sorted by seq: keep everything from the first checkpoint at or after
        // the oldest one still needed.
        excess = excess.min(chain.partition_point(|c| c.seq < needed));
    }
    chain.drain(..excess);
    excess as u64
}

impl Store for MemoryStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let Append {
            expected,
            checkpoint,
            keep_last,
        } = append;
        let mut sessions = self.lock();
        let conflict = |found| Error::Conflict {
            session: session.to_owned(),
            expected,
            found,
        };
        match sessions.get_mut(session) {
            Some(chain) => {
                let found = chain.back().map(|c| c.seq);
                if found != expected || expected.is_none() {
                    return Err(conflict(found));
                }
                if Some(checkpoint.seq) <= expected {
                    return Err(conflict(found));
                }
                chain.push_back(checkpoint);
                if let Some(keep) = keep_last {
                    prune_front(chain, keep);
                }
            }
            None => {
                if expected.is_some() {
                    return Err(conflict(None));
                }
                sessions.insert(session.to_owned(), VecDeque::from([checkpoint]));
            }
        }
        Ok(())
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        Ok(self.lock().get(session).and_then(|c| c.back().cloned()))
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        let sessions = self.lock();
        let Some(chain) = sessions.get(session) else {
            return Ok(None);
        };
        Ok(chain
            .binary_search_by_key(&seq, |c| c.seq)
            .ok()
            .map(|i| chain[i].clone()))
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        let sessions = self.lock();
        Ok(sessions
            .get(session)
            .map(|chain| {
                chain
                    .iter()
                    .map(|c| CheckpointMeta {
                        seq: c.seq,
                        node: c.node.to_string(),
                        status: c.status.clone(),
                        bytes: c.bytes.len() as u64,
                        created_at: c.created_at,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        Ok(self
            .lock()
            .get_mut(session)
            .map_or(0, |chain| prune_front(chain, keep_last)))
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        Ok(self.lock().remove(session).is_some())
    }

    async fn sessions(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort_unstable();
        Ok(ids)
    }
}
