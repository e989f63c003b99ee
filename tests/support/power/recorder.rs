//! [`Recorder`]: a store wrapper that writes down every checkpoint sent to the store and which
//! appends the store acknowledged, when on the disk's clock, so that what a power cut left
//! can be checked against what was promised.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use graph_runtime::Result;
use graph_runtime::store::{
    Append, Audit, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter,
    SessionPage, SessionRecord, Store, VersionCount,
};

use super::Disk;

/// An append the store acknowledged.
#[derive(Debug, Clone)]
pub struct Ack {
    pub session: String,
    pub seq: u64,
    /// How many appends had been acknowledged when this one was sent: those happened before
    /// it, and a store that keeps this one must keep them.
    pub acks_before: usize,
    /// The disk's operation count when the acknowledgement came back: a sync at or after
    /// it came after every write of the append.
    pub acked_at_op: u64,
}

/// What was sent and what was acknowledged.
#[derive(Debug, Default)]
pub struct Log {
    /// The bytes of every checkpoint sent, acknowledged or not, by session and sequence
    /// number.
    pub sent: HashMap<(String, u64), Vec<u8>>,
    /// The acknowledged appends, in the order their acknowledgements came back.
    pub acks: Vec<Ack>,
}

/// Something to do after every so many acknowledged appends (the test's checkpointer).
pub type AfterAcks = Box<dyn FnMut() + Send>;

/// Wraps a store; see the module docs.
pub struct Recorder<S> {
    inner: S,
    disk: Arc<Disk>,
    log: Arc<Mutex<Log>>,
    after: Arc<Mutex<Option<(usize, AfterAcks)>>>,
}

impl<S: Clone> Clone for Recorder<S> {
    fn clone(&self) -> Self {
        Recorder {
            inner: self.inner.clone(),
            disk: Arc::clone(&self.disk),
            log: Arc::clone(&self.log),
            after: Arc::clone(&self.after),
        }
    }
}

impl<S> Recorder<S> {
    /// Records the appends to `inner`, whose files are on `disk`, into `log`.
    pub fn new(inner: S, disk: &Arc<Disk>, log: &Arc<Mutex<Log>>) -> Self {
        Recorder {
            inner,
            disk: Arc::clone(disk),
            log: Arc::clone(log),
            after: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `action` after every `every` acknowledged appends (counted over the whole log).
    pub fn after_every(self, every: usize, action: AfterAcks) -> Self {
        *self.after.lock().unwrap() = Some((every, action));
        self
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<S: Store> Store for Recorder<S> {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        let seq = append.checkpoint.seq;
        let acks_before = {
            let mut log = self.log();
            log.sent
                .insert((session.to_owned(), seq), append.checkpoint.bytes.clone());
            log.acks.len()
        };
        self.inner.append(session, append).await?;
        let acked_at_op = self.disk.ops();
        let acks = {
            let mut log = self.log();
            log.acks.push(Ack {
                session: session.to_owned(),
                seq,
                acks_before,
                acked_at_op,
            });
            log.acks.len()
        };
        if let Some((every, action)) = &mut *self.after.lock().unwrap()
            && acks % *every == 0
        {
            action();
        }
        Ok(())
    }
    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.inner.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.inner.get(session, seq).await
    }
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.inner.chain(session, from, to).await
    }
    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.inner.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.inner.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> Result<bool> {
        self.inner.delete(session).await
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.inner.sessions(filter).await
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.inner.session(session).await
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        self.inner.claim(claim).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.inner.renew(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.inner.release(lease).await
    }
    async fn wait_for_work(&self, timeout: Duration) {
        self.inner.wait_for_work(timeout).await
    }
    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        self.inner.record_graph(version).await
    }
    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        self.inner.graph_version(workflow, graph_hash).await
    }
    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        self.inner.graph_versions(workflow).await
    }
    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        self.inner.versions_in_use().await
    }
    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        self.inner.wake(session, seq).await
    }
    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        self.inner.record_failure(session, seq, failure).await
    }
}
