//! An in-memory store for tests and ephemeral runs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
// Tokio's clock, not `std::time::Instant`: the same monotonic clock in production, and the
// virtual time of a paused tokio clock in tests (`start_paused`), so that lease expiries and
// wake times move with the timers that wait for them (tests/simulation.rs).
use tokio::time::Instant;

use super::lease::MAX_WAKE_DELAY;
use super::{
    Append, Audit, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SealLater,
    SessionFilter, SessionPage, SessionRecord, Status, StatusKind, Store, VersionCount, Wake,
    into_page, page_limit, record_waits,
};
use crate::error::{Error, Result};

/// One session: its chain, what [`Store::sessions`] reports of it, and its lease bookkeeping.
#[derive(Debug)]
struct Session {
    chain: VecDeque<Checkpoint>,
    /// The audit records of kept checkpoints, by sequence number (see [`Append::audit`]):
    /// beside the chain rather than in it, since most checkpoints have none. Entries of
    /// checkpoints no longer kept are dropped at the next append or prune that keeps any.
    audits: BTreeMap<u64, Audit>,
    /// The last failure of a run from the checkpoint of this sequence number (see
    /// [`Store::record_failure`]): current while that checkpoint is the latest.
    failure: Option<Box<(u64, Audit)>>,
    /// When the first checkpoint was written.
    created_at: SystemTime,
    /// The last append's [`Append::waiting`], as given: [`record_waits`] makes the nodes
    /// the session waits at of it and the latest status.
    waiting: Vec<String>,
    /// Workflow name and graph hash, as the last append that gave them recorded.
    workflow: Option<(String, u64)>,
    /// State schema fingerprint, as the last append that gave one recorded.
    state_schema: Option<u64>,
    /// Runnable from this instant on; `None`: not runnable.
    wake_at: Option<Instant>,
    /// The lease holder and when its lease expires.
    lease: Option<(String, Instant)>,
    epoch: u64,
    /// Deleted from the store: a writer's [`Handle`] on it is stale.
    removed: bool,
    /// The session it is a child of, recorded by its first append.
    parent: Option<String>,
}

impl Session {
    fn new() -> Self {
        Session {
            // Room for one: `KeepLast(1)` never needs more (an append replaces the checkpoint
            // before it adds its own), and a longer chain grows as a `Vec` does.
            chain: VecDeque::with_capacity(1),
            audits: BTreeMap::new(),
            failure: None,
            created_at: SystemTime::UNIX_EPOCH,
            waiting: Vec::new(),
            workflow: None,
            state_schema: None,
            wake_at: None,
            lease: None,
            epoch: 0,
            removed: false,
            parent: None,
        }
    }

    /// Whether a live lease holds it at `now`.
    fn leased(&self, now: Instant) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(_, expires)| *expires > now)
    }

    /// The failure recorded for checkpoint `seq`, if that is the one it was recorded for.
    fn failure_of(&self, seq: u64) -> Option<&Audit> {
        self.failure
            .as_deref()
            .filter(|(at, _)| *at == seq)
            .map(|(_, audit)| audit)
    }

    /// Drops the audit records of checkpoints no longer kept.
    fn forget_pruned_audits(&mut self) {
        if let Some(oldest) = self.chain.front().map(|c| c.seq)
            && self
                .audits
                .first_key_value()
                .is_some_and(|(&seq, _)| seq < oldest)
        {
            self.audits = self.audits.split_off(&oldest);
        }
    }

    /// What [`Store::sessions`] reports of it (`None` for a session without a checkpoint,
    /// which only exists for the moment its first append takes). `now` and `wall_now` are
    /// one instant on the monotonic and the wall clock, to convert the lease's and wake
    /// time's instants.
    fn record(&self, name: &str, now: Instant, wall_now: SystemTime) -> Option<SessionRecord> {
        let latest = self.chain.back()?;
        let failed = latest.status == Status::Running && self.failure_of(latest.seq).is_some();
        let status = if failed {
            Status::Failed
        } else {
            latest.status.clone()
        };
        let mut record =
            SessionRecord::new(name, latest.seq, &latest.node, status, latest.created_at);
        record.waiting = record_waits(&latest.status, self.waiting.clone());
        record.created_at = self.created_at;
        if let Some((workflow, graph_hash)) = &self.workflow {
            record.workflow = Some(workflow.clone());
            record.graph_hash = Some(*graph_hash);
        }
        record.wake_at = self.wake_at.map(|at| wall_time(at, now, wall_now));
        record.lease = self
            .lease
            .as_ref()
            .map(|(owner, expires)| (owner.clone(), wall_time(*expires, now, wall_now)));
        record.parent = self.parent.clone();
        Some(record)
    }
}

/// The wall-clock time of instant `at`, given one instant `now` that is `wall_now` on the
/// wall clock (saturating at `wall_now` where the wall clock cannot hold it).
fn wall_time(at: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    let moved = if at >= now {
        wall_now.checked_add(at - now)
    } else {
        wall_now.checked_sub(now - at)
    };
    moved.unwrap_or(wall_now)
}

/// A session of the store, behind its own lock.
type Entry = Arc<Mutex<Session>>;

type Sessions = HashMap<String, Entry>;

/// A session writer's handle on its session in a [`MemoryStore`]: after its first append, the
/// writer's appends lock the session directly, without looking its id up in the store's map.
#[derive(Debug, Default)]
pub(crate) struct Handle(Option<Entry>);

/// Locks a session. No code panics while holding a lock, but a poisoned one is still
/// consistent: every mutation completes before anything can fail.
fn lock_entry(entry: &Entry) -> MutexGuard<'_, Session> {
    entry.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps checkpoints in process memory.
///
/// It stores the same encoded envelopes a durable store would, so a workflow tested on it
/// behaves as it will on SQLite. One difference cannot be seen from outside: a runner leaves
/// the checksum of the envelopes it writes here for the store to add when a checkpoint is
/// first read ([`latest`](Store::latest), [`get`](Store::get)), since bytes that never leave
/// the process need no protection until they do. Every read returns a sealed, verifiable
/// envelope, and bytes appended by anything else are kept exactly as given.
///
/// Clones share the same data. Each session has its own lock, so writers of different
/// sessions do not wait for each other. Its clock for leases and wake times is tokio's
/// ([`tokio::time::Instant`]): the process's monotonic clock, or, in a test that pauses
/// tokio's clock (`#[tokio::test(start_paused = true)]`), its virtual time, so that leases
/// expire and deadlines come as the test's timers advance.
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
    /// The kept graph versions, by workflow and graph hash (see [`Store::record_graph`]).
    graphs: Mutex<BTreeMap<(String, u64), GraphVersion>>,
    /// Signalled when a session may have become runnable (see [`Store::wait_for_work`]).
    work: Notify,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Locks the map of sessions. Always taken before a session's own lock, never after.
    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the kept graph versions. Never taken together with another lock.
    fn graphs(&self) -> MutexGuard<'_, BTreeMap<(String, u64), GraphVersion>> {
        self.inner
            .graphs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on session `name` if it exists.
    fn with_session<T>(&self, name: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        let sessions = self.lock();
        let entry = sessions.get(name)?;
        Some(f(&mut lock_entry(entry)))
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

/// A copy of a kept checkpoint to hand out, its checksum written first if the runner left it
/// for later (see `checkpoint::Seal`): once, in place, so bytes that leave the store are
/// always a sealed envelope.
fn sealed(session: &str, checkpoint: &mut Checkpoint) -> Checkpoint {
    if let Some(SealLater(seal)) = checkpoint.seal_later.take() {
        seal(session, &mut checkpoint.bytes);
    }
    checkpoint.clone()
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

impl MemoryStore {
    /// [`Store::append`], which never waits, for a writer that keeps `handle` from one append
    /// to the next. Returns the buffer of the checkpoint the append replaced, if retention
    /// dropped exactly one (the common case of `KeepLast(n)`), for the writer to encode its
    /// next checkpoint into: an in-memory session then reuses one buffer rather than
    /// allocating and freeing one per step.
    pub(crate) fn append_now(
        &self,
        session: &str,
        append: Append,
        handle: &mut Handle,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(entry) = &handle.0 {
            let mut guard = lock_entry(entry);
            if !guard.removed {
                return self.append_to(session, &mut guard, append);
            }
        }
        // The first append of this writer, or its session was deleted since.
        handle.0 = None;
        let mut sessions = self.lock();
        let entry = match sessions.get(session) {
            Some(entry) => Arc::clone(entry),
            None => {
                if let Some(epoch) = append.fence {
                    return Err(Error::LeaseLost {
                        session: session.to_owned(),
                        epoch,
                    });
                }
                if append.expected.is_some() {
                    return Err(Error::Conflict {
                        session: session.to_owned(),
                        expected: append.expected,
                        found: None,
                    });
                }
                // A child only under a parent that exists (checked under the lock that a
                // delete takes too).
                if let Some(parent) = &append.parent
                    && !sessions.contains_key(parent.as_str())
                {
                    return Err(Error::SessionNotFound(parent.clone()));
                }
                let entry = Arc::new(Mutex::new(Session::new()));
                sessions.insert(session.to_owned(), Arc::clone(&entry));
                entry
            }
        };
        let mut guard = lock_entry(&entry);
        drop(sessions);
        let result = self.append_to(session, &mut guard, append);
        drop(guard);
        handle.0 = Some(entry);
        result
    }

    /// The most common append of all, alone: a writer that keeps only its latest checkpoint
    /// (`KeepLast(1)`) replaces it with a self-contained `checkpoint`, with no lease, wake-up
    /// or workflow to record. Returns the replaced checkpoint's buffer, or gives `checkpoint`
    /// back when anything else is the case (no handle yet, a deleted session, another chain,
    /// a conflict), for [`MemoryStore::append_now`] to judge.
    #[inline]
    pub(crate) fn replace_now(
        handle: &Handle,
        expected: u64,
        checkpoint: Checkpoint,
    ) -> std::result::Result<Vec<u8>, Checkpoint> {
        let Some(entry) = &handle.0 else {
            return Err(checkpoint);
        };
        let mut guard = lock_entry(entry);
        let session = &mut *guard;
        if session.removed
            || session.chain.len() != 1
            || checkpoint.depends_on.is_some()
            || checkpoint.seq <= expected
        {
            return Err(checkpoint);
        }
        match session.chain.back_mut() {
            Some(latest) if latest.seq == expected => {
                Ok(std::mem::replace(latest, checkpoint).bytes)
            }
            _ => Err(checkpoint),
        }
    }

    /// The append to an existing (possibly just created, empty) session.
    fn append_to(
        &self,
        session: &str,
        entry: &mut Session,
        append: Append,
    ) -> Result<Option<Vec<u8>>> {
        let Append {
            expected,
            checkpoint,
            keep_last,
            fence,
            wake,
            workflow,
            state_schema,
            audit,
            waiting,
            parent,
        } = append;
        if let Some(epoch) = fence
            && entry.epoch != epoch
        {
            return Err(Error::LeaseLost {
                session: session.to_owned(),
                epoch,
            });
        }
        let found = entry.chain.back().map(|c| c.seq);
        let fits = match (found, expected) {
            // A new (empty) session takes any first checkpoint.
            (None, None) => true,
            (Some(found), Some(expected)) => found == expected && checkpoint.seq > expected,
            _ => false,
        };
        if !fits {
            return Err(Error::Conflict {
                session: session.to_owned(),
                expected,
                found,
            });
        }
        if found.is_none() {
            entry.created_at = checkpoint.created_at;
            entry.parent = parent;
        }
        let seq = checkpoint.seq;
        let mut spare = None;
        match keep_last {
            // `KeepLast(1)` with a self-contained checkpoint: it takes the place of the one
            // before, whose buffer is handed back.
            Some(0 | 1) if entry.chain.len() == 1 && checkpoint.depends_on.is_none() => {
                let replaced = std::mem::replace(&mut entry.chain[0], checkpoint);
                spare = Some(replaced.bytes);
            }
            // The common case of `KeepLast(n)`: the append makes one checkpoint too many, and
            // none of those kept needs the oldest. It is dropped first (so the chain never
            // needs room for n + 1) and its buffer handed back.
            Some(keep)
                if u64::try_from(entry.chain.len()).is_ok_and(|len| len == keep.max(1))
                    && checkpoint.depends_on.is_none()
                    && entry.chain.iter().skip(1).all(|c| c.depends_on.is_none()) =>
            {
                spare = entry.chain.pop_front().map(|c| c.bytes);
                entry.chain.push_back(checkpoint);
            }
            Some(keep) => {
                entry.chain.push_back(checkpoint);
                prune_front(&mut entry.chain, keep);
            }
            None => entry.chain.push_back(checkpoint),
        }
        if let Some(audit) = audit {
            entry.audits.insert(seq, *audit);
        }
        if !entry.audits.is_empty() {
            entry.forget_pruned_audits();
        }
        entry.waiting = waiting;
        if let Some(workflow) = workflow {
            entry.workflow = Some(workflow);
        }
        if let Some(fingerprint) = state_schema {
            entry.state_schema = Some(fingerprint);
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
        if runnable {
            self.signal_work();
        }
        Ok(spare)
    }
}

impl Store for MemoryStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        self.append_now(session, append, &mut Handle::default())
            .map(drop)
    }

    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        Ok(self
            .with_session(session, |s| s.chain.back_mut().map(|c| sealed(session, c)))
            .flatten())
    }

    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        Ok(self
            .with_session(session, |s| {
                let chain = &mut s.chain;
                chain
                    .binary_search_by_key(&seq, |c| c.seq)
                    .ok()
                    .map(|i| sealed(session, &mut chain[i]))
            })
            .flatten())
    }

    /// One pass over the kept checkpoints in the range, however far apart `from` and `to`
    /// are: the trait's default asks for every sequence number between them, and a damaged
    /// delta or branch record whose header names a chain from 0 to 2^40 made reading it hang.
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        Ok(self
            .with_session(session, |s| {
                let start = s.chain.partition_point(|c| c.seq < from);
                s.chain
                    .range_mut(start..)
                    .take_while(|c| c.seq <= to)
                    .map(|c| sealed(session, c))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        Ok(self
            .with_session(session, |s| {
                s.chain
                    .iter()
                    .map(|checkpoint| {
                        let mut meta = CheckpointMeta::from(checkpoint);
                        meta.audit = s.audits.get(&checkpoint.seq).cloned();
                        meta.failure = s.failure_of(checkpoint.seq).cloned();
                        meta
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        Ok(self
            .with_session(session, |s| {
                let removed = prune_front(&mut s.chain, keep_last);
                s.forget_pruned_audits();
                removed
            })
            .unwrap_or(0))
    }

    async fn delete(&self, session: &str) -> Result<bool> {
        let mut sessions = self.lock();
        let existed = sessions.contains_key(session);
        // The session, then every session whose parent was removed, level by level, all
        // under the lock that creating a session takes: no child appears meanwhile.
        let mut doomed = std::collections::HashSet::from([session.to_owned()]);
        while !doomed.is_empty() {
            for name in &doomed {
                if let Some(entry) = sessions.remove(name.as_str()) {
                    lock_entry(&entry).removed = true;
                }
            }
            let below: std::collections::HashSet<String> = sessions
                .iter()
                .filter(|(_, entry)| {
                    lock_entry(entry)
                        .parent
                        .as_ref()
                        .is_some_and(|parent| doomed.contains(parent))
                })
                .map(|(name, _)| name.clone())
                .collect();
            doomed = below;
        }
        Ok(existed)
    }

    /// No index: every session is looked at, and the page sorted (this store is for tests
    /// and ephemeral runs).
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        let limit = page_limit(filter);
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let mut records: Vec<SessionRecord> = self
            .lock()
            .iter()
            .filter(|(name, _)| {
                filter
                    .after
                    .as_deref()
                    .is_none_or(|after| name.as_str() > after)
            })
            .filter_map(|(name, entry)| lock_entry(entry).record(name, now, wall_now))
            .filter(|record| filter.matches(record))
            .collect();
        records.sort_unstable_by(|a, b| a.session.cmp(&b.session));
        records.truncate(limit.saturating_add(1));
        Ok(into_page(records, limit))
    }

    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        Ok(self
            .with_session(session, |s| {
                let latest = s.chain.back().map(|c| c.seq);
                let kept = latest == Some(seq);
                if kept {
                    s.failure = Some(Box::new((seq, failure.clone())));
                }
                kept
            })
            .unwrap_or(false))
    }

    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        let woken = self
            .with_session(session, |s| {
                let waits = s
                    .chain
                    .back()
                    .is_some_and(|c| c.seq == seq && c.status.kind() == StatusKind::Waiting);
                if waits {
                    s.wake_at = Some(Instant::now());
                }
                waits
            })
            .unwrap_or(false);
        if woken {
            self.signal_work();
        }
        Ok(woken)
    }

    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        Ok(self
            .with_session(session, |s| s.record(session, now, wall_now))
            .flatten())
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        let now = Instant::now();
        let sessions = self.lock();
        let mut runnable: Vec<(Instant, &String, &Entry)> = sessions
            .iter()
            .filter_map(|(name, entry)| {
                let session = lock_entry(entry);
                let wake_at = session.wake_at.filter(|at| *at <= now)?;
                let (workflow, hash) = session.workflow.as_ref()?;
                (!session.leased(now) && claim.covers(workflow, *hash))
                    .then_some((wake_at, name, entry))
            })
            .collect();
        runnable.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let expires = later(now, claim.ttl).unwrap_or(now);
        let mut leases = Vec::with_capacity(runnable.len().min(claim.limit));
        for (_, name, entry) in runnable.into_iter().take(claim.limit) {
            let mut session = lock_entry(entry);
            session.epoch += 1;
            session.lease = Some((claim.owner.clone(), expires));
            leases.push(lease_of(name, &session, &claim.owner, claim.ttl));
        }
        Ok(leases)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let renewed = self.with_session(&lease.session, |session| {
            let held = session.epoch == lease.epoch
                && session
                    .lease
                    .as_ref()
                    .is_some_and(|(owner, _)| *owner == lease.owner);
            if !held {
                return None;
            }
            let now = Instant::now();
            session.lease = Some((lease.owner.clone(), later(now, ttl).unwrap_or(now)));
            Some(lease_of(&lease.session, session, &lease.owner, ttl))
        });
        renewed.flatten().ok_or_else(|| Error::LeaseLost {
            session: lease.session.clone(),
            epoch: lease.epoch,
        })
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let released = self.with_session(&lease.session, |session| {
            let held = session.epoch == lease.epoch
                && session
                    .lease
                    .as_ref()
                    .is_some_and(|(owner, _)| *owner == lease.owner);
            if !held {
                return None;
            }
            session.lease = None;
            Some(session.wake_at.is_some())
        });
        match released.flatten() {
            Some(runnable) => {
                if runnable {
                    self.signal_work();
                }
                Ok(true)
            }
            None => Ok(false),
        }
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
            .filter_map(|entry| {
                let session = lock_entry(entry);
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
            () = tokio::time::sleep_until(until) => {}
        }
    }

    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        let key = (version.workflow.clone(), version.graph_hash);
        let mut graphs = self.graphs();
        if graphs.contains_key(&key) {
            return Ok(false);
        }
        graphs.insert(key, version.clone());
        Ok(true)
    }

    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        Ok(self
            .graphs()
            .get(&(workflow.to_owned(), graph_hash))
            .cloned())
    }

    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        let mut versions: Vec<GraphVersion> = self
            .graphs()
            .values()
            .filter(|version| version.workflow == workflow)
            .cloned()
            .collect();
        versions.sort_by_key(|version| (version.recorded_at, version.graph_hash));
        Ok(versions)
    }

    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        // Sorted as the trait says by the map's key: `None` sorts before every `Some`.
        let mut counts: BTreeMap<(String, u64, Option<u64>), u64> = BTreeMap::new();
        for entry in self.lock().values() {
            let session = lock_entry(entry);
            if let Some((workflow, graph_hash)) = &session.workflow {
                let key = (workflow.clone(), *graph_hash, session.state_schema);
                *counts.entry(key).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|((workflow, graph_hash, state_schema), sessions)| {
                VersionCount::new(&workflow, graph_hash, state_schema, sessions)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{self, Header, Seal};
    use crate::store::Status;

    fn envelope(session: &str, seq: u64, seal: Seal) -> Vec<u8> {
        let header = Header {
            session,
            graph_hash: 7,
            seq,
            status: Status::Running.code(),
            node: "a",
            state_schema: 1,
            input_schema: 0,
        };
        let state = (seq, "x".repeat(64));
        checkpoint::encode(
            &header,
            &state,
            None::<&u8>,
            None,
            None,
            Vec::new(),
            0,
            seal,
        )
        .unwrap()
        .0
    }

    fn unsealed(session: &str, seq: u64) -> Checkpoint {
        Checkpoint {
            seal_later: Some(SealLater(checkpoint::write_checksum)),
            ..Checkpoint::new(
                seq,
                "a",
                Status::Running,
                envelope(session, seq, Seal::Later),
            )
        }
    }

    /// A runner's unsealed envelope leaves the store sealed, exactly as if it had been sealed
    /// when written, from `latest` and from `get`; the stored copy is sealed once.
    #[tokio::test(flavor = "current_thread")]
    async fn unsealed_envelopes_are_sealed_when_read() {
        let store = MemoryStore::new();
        let mut handle = Handle::default();
        let first = unsealed("s", 0);
        assert!(
            checkpoint::open("s", 0, &first.bytes).is_err(),
            "no checksum yet"
        );
        store
            .append_now("s", Append::new(None, first, None), &mut handle)
            .unwrap();
        store
            .append_now(
                "s",
                Append::new(Some(0), unsealed("s", 1), None),
                &mut handle,
            )
            .unwrap();
        let latest = store.latest("s").await.unwrap().unwrap();
        assert_eq!(latest.bytes, envelope("s", 1, Seal::Now));
        assert!(latest.seal_later.is_none());
        checkpoint::open("s", 1, &latest.bytes).unwrap();
        let older = store.get("s", 0).await.unwrap().unwrap();
        assert_eq!(older.bytes, envelope("s", 0, Seal::Now));
        // Read again: already sealed, the same bytes.
        assert_eq!(store.latest("s").await.unwrap().unwrap(), latest);
        // Sealing binds the session: the bytes are not valid for another id.
        assert!(checkpoint::open("t", 1, &latest.bytes).is_err());
    }

    /// Bytes appended through the trait are kept exactly as given, whatever they are.
    #[tokio::test(flavor = "current_thread")]
    async fn other_bytes_are_kept_as_given() {
        let store = MemoryStore::new();
        for (seq, bytes) in [(1, vec![]), (2, vec![1, 2, 3]), (3, vec![0; 9])] {
            let expected = (seq > 1).then(|| seq - 1);
            let cp = Checkpoint::new(seq, "a", Status::Running, bytes.clone());
            store
                .append("s", Append::new(expected, cp, None))
                .await
                .unwrap();
            assert_eq!(store.latest("s").await.unwrap().unwrap().bytes, bytes);
        }
    }

    /// A chain over a vast range of sequence numbers reads only the kept checkpoints in it,
    /// sealed, at once. A delta whose header named a chain from 0 to 2^40 made
    /// `Runner::state` hang in 2^40 lookups (the `chain` fuzz target's
    /// `fuzz/regressions/chain/delta-chain-from-0-to-2-pow-40`).
    #[test]
    fn a_chain_over_a_vast_range_reads_only_what_is_kept() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = MemoryStore::new();
            let mut handle = Handle::default();
            let far = 1u64 << 40;
            for (expected, seq) in [
                (None, 0),
                (Some(0), 1),
                (Some(1), far),
                (Some(far), far + 1),
            ] {
                store
                    .append_now(
                        "s",
                        Append::new(expected, unsealed("s", seq), None),
                        &mut handle,
                    )
                    .unwrap();
            }
            let read = |from, to| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let chain = runtime.block_on(store.chain("s", from, to)).unwrap();
                for checkpoint in &chain {
                    checkpoint::open("s", checkpoint.seq, &checkpoint.bytes).unwrap();
                }
                chain.iter().map(|c| c.seq).collect::<Vec<_>>()
            };
            let chains = [
                read(0, far - 1),
                read(1, u64::MAX),
                read(2, far),
                read(far + 2, u64::MAX),
            ];
            done.send(chains).unwrap();
        });
        let chains = finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the chains read within 30 s");
        let far = 1u64 << 40;
        assert_eq!(chains[0], [0, 1]);
        assert_eq!(chains[1], [1, far, far + 1]);
        assert_eq!(chains[2], [far]);
        assert!(chains[3].is_empty());
    }

    /// With `KeepLast(n)`, the append that drops one checkpoint hands its buffer back; one
    /// that drops nothing, or must keep what a delta depends on, hands back none.
    #[test]
    fn a_replaced_checkpoint_hands_back_its_buffer() {
        let store = MemoryStore::new();
        let mut handle = Handle::default();
        let append = |expected, seq: u64, depends_on: Option<u64>| {
            let mut cp = Checkpoint::new(seq, "a", Status::Running, vec![seq as u8; 8]);
            cp.depends_on = depends_on;
            Append::new(expected, cp, Some(1))
        };
        let spare = store.append_now("s", append(None, 1, None), &mut handle);
        assert_eq!(spare.unwrap(), None);
        let spare = store.append_now("s", append(Some(1), 2, None), &mut handle);
        assert_eq!(spare.unwrap(), Some(vec![1; 8]));
        // A delta on 2: 2 stays, nothing is handed back.
        let spare = store.append_now("s", append(Some(2), 3, Some(2)), &mut handle);
        assert_eq!(spare.unwrap(), None);
        let seqs: Vec<u64> = store
            .with_session("s", |s| s.chain.iter().map(|c| c.seq).collect())
            .unwrap();
        assert_eq!(seqs, [2, 3]);
    }

    /// The replacing fast path takes only the case it is for, and gives the checkpoint back
    /// (untouched) in every other, for the full append to judge.
    #[tokio::test(flavor = "current_thread")]
    async fn replace_now_takes_only_its_own_case() {
        let store = MemoryStore::new();
        let cp = |seq: u64| {
            Checkpoint::new(seq, "a", Status::Running, vec![seq as u8; 4])
                .created_at(SystemTime::UNIX_EPOCH)
        };
        let mut handle = Handle::default();
        // No handle yet: the first append goes the full way.
        let back = MemoryStore::replace_now(&handle, 0, cp(1)).unwrap_err();
        assert_eq!(back, cp(1));
        store
            .append_now("s", Append::new(None, cp(1), Some(1)), &mut handle)
            .unwrap();
        // The right expected sequence number: replaced, the old buffer handed back.
        assert_eq!(
            MemoryStore::replace_now(&handle, 1, cp(2)).unwrap(),
            vec![1; 4]
        );
        assert_eq!(store.latest("s").await.unwrap().unwrap().seq, 2);
        // A stale expectation, a sequence number not above it, or a delta: given back.
        assert_eq!(
            MemoryStore::replace_now(&handle, 1, cp(3)).unwrap_err(),
            cp(3)
        );
        assert_eq!(
            MemoryStore::replace_now(&handle, 2, cp(2)).unwrap_err(),
            cp(2)
        );
        let delta = cp(3).depends_on(2);
        assert_eq!(
            MemoryStore::replace_now(&handle, 2, delta.clone()).unwrap_err(),
            delta
        );
        // Two checkpoints kept: not the one-checkpoint case.
        store
            .append_now("s", Append::new(Some(2), cp(3), None), &mut handle)
            .unwrap();
        assert_eq!(
            MemoryStore::replace_now(&handle, 3, cp(4)).unwrap_err(),
            cp(4)
        );
        // A deleted session: given back, and the full append reports it gone.
        store.delete("s").await.unwrap();
        let back = MemoryStore::replace_now(&handle, 3, cp(4)).unwrap_err();
        let err = store
            .append_now("s", Append::new(Some(3), back, Some(1)), &mut handle)
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { found: None, .. }),
            "{err:?}"
        );
    }

    /// A writer's handle does not outlive its session: after a delete, its next append is
    /// judged against the store as it is (the session is gone, or new under the same id).
    #[tokio::test(flavor = "current_thread")]
    async fn a_deleted_session_is_not_written_through_a_stale_handle() {
        let store = MemoryStore::new();
        let mut handle = Handle::default();
        let cp = |seq| Checkpoint::new(seq, "a", Status::Running, vec![seq as u8]);
        store
            .append_now("s", Append::new(None, cp(1), None), &mut handle)
            .unwrap();
        assert!(store.delete("s").await.unwrap());
        let err = store
            .append_now("s", Append::new(Some(1), cp(2), None), &mut handle)
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { found: None, .. }),
            "{err:?}"
        );
        assert_eq!(store.latest("s").await.unwrap(), None);
        // Another writer starts the id again; the stale handle sees the new session.
        store
            .append("s", Append::new(None, cp(5), None))
            .await
            .unwrap();
        let err = store
            .append_now("s", Append::new(Some(1), cp(2), None), &mut handle)
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { found: Some(5), .. }),
            "{err:?}"
        );
        store
            .append_now("s", Append::new(Some(5), cp(6), None), &mut handle)
            .unwrap();
        assert_eq!(store.latest("s").await.unwrap().unwrap().seq, 6);
    }

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
