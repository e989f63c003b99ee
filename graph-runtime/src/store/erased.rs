//! A [`Store`] behind a pointer, for code that cannot be generic over the store's type.
//!
//! A node that runs a subgraph (`#[node(subgraph = m)]`) runs its child session in its
//! parent's store, but the code `#[workflow]` generates for the node is not generic over the
//! store: it only has the [`NodeCtx`](crate::NodeCtx). The parent's runner therefore hands the
//! node an [`ErasedStore`]: an `Arc<dyn DynStore>` (an object-safe mirror of [`Store`] whose
//! methods return boxed futures) that is itself a [`Store`], so the child's
//! [`Runner`](crate::Runner) is an ordinary runner over it. Only graphs with subgraph nodes
//! build one; every other graph never boxes a store future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{
    Append, Checkpoint, CheckpointMeta, Claim, GraphVersion, Lease, SessionFilter, SessionPage,
    SessionRecord, Store, VersionCount,
};
use crate::error::Result;
use crate::store::Audit;

/// A boxed, `Send` future borrowing the store and its arguments.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that holds a store: the store itself, or a runner's shared part (which lets a
/// runner erase its store without cloning it or adding a pointer to it).
pub(crate) trait HoldsStore: Send + Sync + 'static {
    /// The store's type.
    type Store: Store;
    /// The store.
    fn store(&self) -> &Self::Store;
}

/// [`Store`] with boxed futures, so that it can be a trait object. Implemented for everything
/// that [holds a store](HoldsStore).
pub(crate) trait DynStore: Send + Sync + 'static {
    fn append<'a>(&'a self, session: &'a str, append: Append) -> Boxed<'a, Result<()>>;
    fn latest<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Option<Checkpoint>>>;
    fn get<'a>(&'a self, session: &'a str, seq: u64) -> Boxed<'a, Result<Option<Checkpoint>>>;
    fn chain<'a>(
        &'a self,
        session: &'a str,
        from: u64,
        to: u64,
    ) -> Boxed<'a, Result<Vec<Checkpoint>>>;
    fn list<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Vec<CheckpointMeta>>>;
    fn prune<'a>(&'a self, session: &'a str, keep_last: u64) -> Boxed<'a, Result<u64>>;
    fn delete<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<bool>>;
    fn sessions<'a>(&'a self, filter: &'a SessionFilter) -> Boxed<'a, Result<SessionPage>>;
    fn session<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Option<SessionRecord>>>;
    fn claim<'a>(&'a self, claim: &'a Claim) -> Boxed<'a, Result<Vec<Lease>>>;
    fn renew<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Boxed<'a, Result<Lease>>;
    fn release<'a>(&'a self, lease: &'a Lease) -> Boxed<'a, Result<bool>>;
    fn wait_for_work(&self, timeout: Duration) -> Boxed<'_, ()>;
    fn record_graph<'a>(&'a self, version: &'a GraphVersion) -> Boxed<'a, Result<bool>>;
    fn graph_version<'a>(
        &'a self,
        workflow: &'a str,
        graph_hash: u64,
    ) -> Boxed<'a, Result<Option<GraphVersion>>>;
    fn graph_versions<'a>(&'a self, workflow: &'a str) -> Boxed<'a, Result<Vec<GraphVersion>>>;
    fn versions_in_use(&self) -> Boxed<'_, Result<Vec<VersionCount>>>;
    fn record_failure<'a>(
        &'a self,
        session: &'a str,
        seq: u64,
        failure: &'a Audit,
    ) -> Boxed<'a, Result<bool>>;
    fn wake<'a>(&'a self, session: &'a str, seq: u64) -> Boxed<'a, Result<bool>>;
}

impl<H: HoldsStore> DynStore for H {
    fn append<'a>(&'a self, session: &'a str, append: Append) -> Boxed<'a, Result<()>> {
        Box::pin(self.store().append(session, append))
    }
    fn latest<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Option<Checkpoint>>> {
        Box::pin(self.store().latest(session))
    }
    fn get<'a>(&'a self, session: &'a str, seq: u64) -> Boxed<'a, Result<Option<Checkpoint>>> {
        Box::pin(self.store().get(session, seq))
    }
    fn chain<'a>(
        &'a self,
        session: &'a str,
        from: u64,
        to: u64,
    ) -> Boxed<'a, Result<Vec<Checkpoint>>> {
        Box::pin(self.store().chain(session, from, to))
    }
    fn list<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Vec<CheckpointMeta>>> {
        Box::pin(self.store().list(session))
    }
    fn prune<'a>(&'a self, session: &'a str, keep_last: u64) -> Boxed<'a, Result<u64>> {
        Box::pin(self.store().prune(session, keep_last))
    }
    fn delete<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<bool>> {
        Box::pin(self.store().delete(session))
    }
    fn sessions<'a>(&'a self, filter: &'a SessionFilter) -> Boxed<'a, Result<SessionPage>> {
        Box::pin(self.store().sessions(filter))
    }
    fn session<'a>(&'a self, session: &'a str) -> Boxed<'a, Result<Option<SessionRecord>>> {
        Box::pin(self.store().session(session))
    }
    fn claim<'a>(&'a self, claim: &'a Claim) -> Boxed<'a, Result<Vec<Lease>>> {
        Box::pin(self.store().claim(claim))
    }
    fn renew<'a>(&'a self, lease: &'a Lease, ttl: Duration) -> Boxed<'a, Result<Lease>> {
        Box::pin(self.store().renew(lease, ttl))
    }
    fn release<'a>(&'a self, lease: &'a Lease) -> Boxed<'a, Result<bool>> {
        Box::pin(self.store().release(lease))
    }
    fn wait_for_work(&self, timeout: Duration) -> Boxed<'_, ()> {
        Box::pin(self.store().wait_for_work(timeout))
    }
    fn record_graph<'a>(&'a self, version: &'a GraphVersion) -> Boxed<'a, Result<bool>> {
        Box::pin(self.store().record_graph(version))
    }
    fn graph_version<'a>(
        &'a self,
        workflow: &'a str,
        graph_hash: u64,
    ) -> Boxed<'a, Result<Option<GraphVersion>>> {
        Box::pin(self.store().graph_version(workflow, graph_hash))
    }
    fn graph_versions<'a>(&'a self, workflow: &'a str) -> Boxed<'a, Result<Vec<GraphVersion>>> {
        Box::pin(self.store().graph_versions(workflow))
    }
    fn versions_in_use(&self) -> Boxed<'_, Result<Vec<VersionCount>>> {
        Box::pin(self.store().versions_in_use())
    }
    fn record_failure<'a>(
        &'a self,
        session: &'a str,
        seq: u64,
        failure: &'a Audit,
    ) -> Boxed<'a, Result<bool>> {
        Box::pin(self.store().record_failure(session, seq, failure))
    }
    fn wake<'a>(&'a self, session: &'a str, seq: u64) -> Boxed<'a, Result<bool>> {
        Box::pin(self.store().wake(session, seq))
    }
}

/// A store of any type behind an `Arc<dyn DynStore>`: what a child session's runner saves to
/// (its parent's store). Cloning it clones the pointer.
#[derive(Clone)]
pub(crate) struct ErasedStore(pub(crate) Arc<dyn DynStore>);

impl std::fmt::Debug for ErasedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ErasedStore")
    }
}

impl Store for ErasedStore {
    async fn append(&self, session: &str, append: Append) -> Result<()> {
        self.0.append(session, append).await
    }
    async fn latest(&self, session: &str) -> Result<Option<Checkpoint>> {
        self.0.latest(session).await
    }
    async fn get(&self, session: &str, seq: u64) -> Result<Option<Checkpoint>> {
        self.0.get(session, seq).await
    }
    async fn chain(&self, session: &str, from: u64, to: u64) -> Result<Vec<Checkpoint>> {
        self.0.chain(session, from, to).await
    }
    async fn list(&self, session: &str) -> Result<Vec<CheckpointMeta>> {
        self.0.list(session).await
    }
    async fn prune(&self, session: &str, keep_last: u64) -> Result<u64> {
        self.0.prune(session, keep_last).await
    }
    async fn delete(&self, session: &str) -> Result<bool> {
        self.0.delete(session).await
    }
    async fn sessions(&self, filter: &SessionFilter) -> Result<SessionPage> {
        self.0.sessions(filter).await
    }
    async fn session(&self, session: &str) -> Result<Option<SessionRecord>> {
        self.0.session(session).await
    }
    async fn claim(&self, claim: &Claim) -> Result<Vec<Lease>> {
        self.0.claim(claim).await
    }
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        self.0.renew(lease, ttl).await
    }
    async fn release(&self, lease: &Lease) -> Result<bool> {
        self.0.release(lease).await
    }
    async fn wait_for_work(&self, timeout: Duration) {
        self.0.wait_for_work(timeout).await
    }
    async fn record_graph(&self, version: &GraphVersion) -> Result<bool> {
        self.0.record_graph(version).await
    }
    async fn graph_version(&self, workflow: &str, graph_hash: u64) -> Result<Option<GraphVersion>> {
        self.0.graph_version(workflow, graph_hash).await
    }
    async fn graph_versions(&self, workflow: &str) -> Result<Vec<GraphVersion>> {
        self.0.graph_versions(workflow).await
    }
    async fn versions_in_use(&self) -> Result<Vec<VersionCount>> {
        self.0.versions_in_use().await
    }
    async fn record_failure(&self, session: &str, seq: u64, failure: &Audit) -> Result<bool> {
        self.0.record_failure(session, seq, failure).await
    }
    async fn wake(&self, session: &str, seq: u64) -> Result<bool> {
        self.0.wake(session, seq).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::store::Status;

    struct Holder(MemoryStore);

    impl HoldsStore for Holder {
        type Store = MemoryStore;
        fn store(&self) -> &MemoryStore {
            &self.0
        }
    }

    #[tokio::test]
    async fn an_erased_store_reads_and_writes_the_store_it_erases() {
        let memory = MemoryStore::new();
        let erased = ErasedStore(Arc::new(Holder(memory.clone())));
        let first = Checkpoint::new(1, "a", Status::Running, Vec::new());
        erased
            .append("s", Append::new(None, first, None))
            .await
            .unwrap();
        assert_eq!(memory.latest("s").await.unwrap().unwrap().seq, 1);
        assert_eq!(erased.session("s").await.unwrap().unwrap().seq, 1);
        assert!(erased.delete("s").await.unwrap());
        assert!(memory.latest("s").await.unwrap().is_none());
    }
}
