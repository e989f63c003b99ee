//! An in-memory store for tests and ephemeral runs.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::lease::MAX_WAKE_DELAY;
use super::{Append, Checkpoint, CheckpointMeta, Claim, Lease, Store, Wake};
use crate::{Error, Result};

/// One session: its chain and its lease bookkeeping.
#[derive(Debug)]
struct Session {
    chain: VecDeque<Checkpoint>,
    /// Workflow name and graph hash, as the last append that gave them recorded.
    workflow: Option<(String, u64)>,
    /// Runnable from this instant on; `None`: not runnable.
    wake_at: Option<Instant>,
    /// The lease holder and when its lease expires.
    lease: Option<(String, Instant)>,
    epoch: u64,
}

impl Session {
    fn new() -> Self {
        Session {
            chain: VecDeque::new(),
            workflow: None,
            wake_at: None,
            lease: None,
            epoch: 0,
        }
    }

    /// Whether a live lease holds it at `now`.
    fn leased(&self, now: Instant) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(_, expires)| *expires > now)
    }
}

type Sessions = HashMap<String, Session>;

/// Keeps checkpoints in process memory.
///
/// It stores the same encoded, checksummed bytes a durable store would, so a workflow tested on
/// it behaves as it will on SQLite. Clones share the same data. Its clock for leases and wake
/// times is the process's monotonic clock ([`Instant`]).
///
/// ```
/// use graph_runtime::MemoryStore;
/// let store = MemoryStore::new();
/// let shared = store.clone(); // same sessions
/// # drop(shared);
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sessions: Mutex<Sessions>,
    /// Signalled when a session may have become runnable (see [`Store::wait_for_work`]).
    work: Notify,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        // No code panics while holding the lock, but a poisoned map is still consistent:
        // every mutation below completes before anything can fail.
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes every waiter, and the next one to come if none waits now.
    fn signal_work(&self) {
        self.inner.work.notify_waiters();
        self.inner.work.notify_one();
    }
}

/// `now + delay`, capped; `None` if even the cap does not fit an `Instant`.
fn later(now: Instant, delay: Duration) -> Option<Instant> {
    now.checked_add(delay.min(MAX_WAKE_DELAY))
}

/// The lease as callers see it, with its expiry on the wall clock.
fn lease_of(name: &str, session: &Session, owner: &str, ttl: Duration) -> Lease {
    let (workflow, graph_hash) = session.workflow.clone().unwrap_or_default();
    let ttl = ttl.min(MAX_WAKE_DELAY);
    let now = SystemTime::now();
    Lease {
        session: name.to_owned(),
        epoch: session.epoch,
        owner: owner.to_owned(),
        workflow,
        graph_hash,
        expires_at: now.checked_add(ttl).unwrap_or(now),
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
            fence,
            wake,
            workflow,
        } = append;
        let mut sessions = self.lock();
        let conflict = |found| Error::Conflict {
            session: session.to_owned(),
            expected,
            found,
        };
        if let Some(epoch) = fence
            && sessions.get(session).is_none_or(|s| s.epoch != epoch)
        {
            return Err(Error::LeaseLost {
                session: session.to_owned(),
                epoch,
            });
        }
        let found = sessions
            .get(session)
            .map(|entry| entry.chain.back().map(|c| c.seq));
        match found {
            Some(found) if found != expected || expected.is_none() => {
                return Err(conflict(found));
            }
            Some(found) if Some(checkpoint.seq) <= expected => return Err(conflict(found)),
            None if expected.is_some() => return Err(conflict(None)),
            _ => {}
        }
        if found.is_none() {
            sessions.insert(session.to_owned(), Session::new());
        }
        // Present: found above, or inserted just now (no allocation for an existing one).
        let entry = sessions.get_mut(session).ok_or_else(|| conflict(None))?;
        entry.chain.push_back(checkpoint);
        if let Some(keep) = keep_last {
            prune_front(&mut entry.chain, keep);
        }
        if let Some(workflow) = workflow {
            entry.workflow = Some(workflow);
        }
        let runnable = match wake {
            None => false,
            Some(Wake::Never) => {
                entry.wake_at = None;
                false
            }
            Some(Wake::Now) => {
                entry.wake_at = Some(Instant::now());
                true
            }
            Some(Wake::After(delay)) => {
                entry.wake_at = later(Instant::now(), delay);
                entry.wake_at.is_some()
            }
        };
        drop(sessions);
        if runnable {
            self.signal_work();
        }
        Ok(())
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .lock()
            .get(session)
            .and_then(|s| s.chain.back().cloned()))
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        let sessions = self.lock();
        let Some(entry) = sessions.get(session) else {
            return Ok(None);
        };
        let chain = &entry.chain;
        Ok(chain
            .binary_search_by_key(&seq, |c| c.seq)
            .ok()
            .map(|i| chain[i].clone()))
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        let sessions = self.lock();
        Ok(sessions
            .get(session)
            .map(|entry| entry.chain.iter().map(CheckpointMeta::from).collect())
            .unwrap_or_default())
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        Ok(self
            .lock()
            .get_mut(session)
            .map_or(0, |entry| prune_front(&mut entry.chain, keep_last)))
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        Ok(self.lock().remove(session).is_some())
    }

    async fn sessions(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let now = Instant::now();
        let mut sessions = self.lock();
        let mut runnable: Vec<(Instant, &String)> = sessions
            .iter()
            .filter_map(|(name, session)| {
                let wake_at = session.wake_at.filter(|at| *at <= now)?;
                let (workflow, hash) = session.workflow.as_ref()?;
                (!session.leased(now) && claim.covers(workflow, *hash)).then_some((wake_at, name))
            })
            .collect();
        runnable.sort_unstable();
        let names: Vec<String> = runnable
            .into_iter()
            .take(claim.limit)
            .map(|(_, name)| name.clone())
            .collect();
        let expires = later(now, claim.ttl).unwrap_or(now);
        let mut leases = Vec::with_capacity(names.len());
        for name in names {
            if let Some(session) = sessions.get_mut(&name) {
                session.epoch += 1;
                session.lease = Some((claim.owner.clone(), expires));
                leases.push(lease_of(&name, session, &claim.owner, claim.ttl));
            }
        }
        Ok(leases)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let mut sessions = self.lock();
        let held = sessions.get_mut(&lease.session).filter(|session| {
            session.epoch == lease.epoch
                && session
                    .lease
                    .as_ref()
                    .is_some_and(|(owner, _)| *owner == lease.owner)
        });
        let Some(session) = held else {
            return Err(Error::LeaseLost {
                session: lease.session.clone(),
                epoch: lease.epoch,
            });
        };
        let now = Instant::now();
        session.lease = Some((lease.owner.clone(), later(now, ttl).unwrap_or(now)));
        Ok(lease_of(&lease.session, session, &lease.owner, ttl))
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(&lease.session) else {
            return Ok(false);
        };
        let held = session.epoch == lease.epoch
            && session
                .lease
                .as_ref()
                .is_some_and(|(owner, _)| *owner == lease.owner);
        if !held {
            return Ok(false);
        }
        session.lease = None;
        let runnable = session.wake_at.is_some();
        drop(sessions);
        if runnable {
            self.signal_work();
        }
        Ok(true)
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.inner.work.notified();
        let now = Instant::now();
        let mut until = later(now, timeout).unwrap_or(now);
        // The next moment a session becomes claimable by time alone: a deadline comes, or
        // the lease on a runnable session expires.
        let next = self
            .lock()
            .values()
            .filter_map(|session| {
                let wake_at = session.wake_at?;
                let lease_end = session.lease.as_ref().map(|(_, expires)| *expires);
                Some(lease_end.map_or(wake_at, |end| end.max(wake_at)))
            })
            .filter(|at| *at > now)
            .min();
        if let Some(next) = next {
            until = until.min(next);
        }
        // Biased: a stored wake-up is taken (not left for a later call) even when the
        // timeout has passed too.
        tokio::select! {
            biased;
            () = notified => {}
            () = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Status;

    /// A waiter sleeps until the earliest deadline it holds, not the whole timeout.
    #[tokio::test(flavor = "current_thread")]
    async fn a_deadline_ends_the_wait_when_it_is_due() {
        let store = MemoryStore::new();
        let first = Checkpoint::new(1, "review", Status::Running, Vec::new());
        let delay = Duration::from_millis(200);
        let append = Append::new(None, first, None)
            .workflow("flow", 1)
            .wake(Wake::After(delay));
        store.append("s", append).await.unwrap();
        // The append's own wake-up, left for the next waiter.
        store.wait_for_work(Duration::ZERO).await;
        let started = Instant::now();
        let claim = Claim::new("w", Duration::from_secs(60), 1).workflow("flow", [1]);
        assert!(store.claim(&claim).await.unwrap().is_empty());
        store.wait_for_work(Duration::from_secs(10)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(store.claim(&claim).await.unwrap().len(), 1);
    }
}
