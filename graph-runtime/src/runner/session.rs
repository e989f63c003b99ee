//! The session writer: the one object that writes a session's checkpoints to a store. It
//! keeps the sequence number of the newest stored checkpoint (the compare-and-swap every
//! append makes), the delta chain the next checkpoint may extend, encodes checkpoints and
//! appends them, fenced by the lease epoch when a worker runs the session. Nothing else in the
//! crate calls [`Store::append`].

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::load::Loaded;
use super::{Control, Retention};
use crate::checkpoint::{self, BodyKind, DeltaOf, FrontierRef, Header, RecordOf, Seal, delta};
use crate::ctx::Failure;
use crate::events::Event;
use crate::execute::{Execute, Slot};
use crate::store::{Append, Audit, Checkpoint, MemoryHandle, MemoryStore, SealLater, Store, Wake};
use crate::{Error, Result, Status, Workflow};

/// Bodies smaller than this are always saved whole: a delta would save little, and keeping
/// the previous body to diff against would cost every small step a copy.
pub(super) const DELTA_MIN_BODY: usize = 4096;
/// The longest delta chain under `Retention::KeepAll`: reading a checkpoint reads its whole
/// chain (about 2.5 µs a link on SQLite), so a full checkpoint is written at least this often.
const MAX_CHAIN: u32 = 1024;
/// The shortest chain cap under `Retention::KeepLast(n)`, whose cap is `n` within
/// `MIN_KEPT_CHAIN..=MAX_CHAIN`: the store keeps the newest `n` checkpoints and the chain they
/// need, so the cap bounds what is kept beyond `n`.
const MIN_KEPT_CHAIN: u32 = 64;

/// What the one writer of a session remembers about the checkpoints it extends: the previous
/// body, to store the next checkpoint as a delta against it (incremental checkpoints).
///
/// A chain is a full checkpoint followed by deltas, each against the checkpoint before it. A
/// new full checkpoint starts a new chain when the deltas since the last one add up to more
/// than twice the body (so the chain never costs more than about three bodies of space), when
/// a delta would not be less than half the body, or after [`MAX_CHAIN`] deltas (so reading
/// any checkpoint stays fast; under `KeepLast(n)`, after `n` deltas but at least
/// [`MIN_KEPT_CHAIN`], so retention keeps at most about `n` more than asked).
#[derive(Debug, Default)]
pub(super) struct Chain {
    /// The body of the newest stored checkpoint, kept only when it is large enough for deltas.
    pub(super) prev: Option<Vec<u8>>,
    /// The sequence number of that checkpoint.
    pub(super) prev_seq: Option<u64>,
    /// The full checkpoint the current chain starts at.
    pub(super) anchor: u64,
    /// Bytes of deltas since the anchor.
    pub(super) delta_bytes: usize,
    /// Deltas since the anchor.
    pub(super) len: u32,
    /// The size of the previous envelope: the next one's buffer capacity.
    pub(super) size_hint: usize,
    /// A buffer to encode the next envelope into: the one of the checkpoint the last append
    /// replaced, handed back by `MemoryStore` (an in-memory session reuses one buffer).
    pub(super) spare: Option<Vec<u8>>,
}

/// What every write of a call carries for workers, set by the calls that involve them (a
/// worker's leased run, `enqueue`, `enqueue_input`) and nothing on the plain path.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Bookkeeping {
    /// A worker runs the session under a lease: every write is fenced by this epoch, and one
    /// after which nothing is due (completed, waiting) says the session needs no worker.
    pub(super) fence: Option<u64>,
    /// When the session becomes runnable (the calls that hand it to workers).
    pub(super) wake: Option<Wake>,
    /// With `fence` or `wake`: the workflow and graph hash the store records for claims.
    pub(super) workflow: Option<(&'static str, u64)>,
}

impl Bookkeeping {
    /// Itself in a box, or `None` when it asks nothing.
    fn boxed(self) -> Option<Box<Bookkeeping>> {
        let empty = self.fence.is_none() && self.wake.is_none() && self.workflow.is_none();
        (!empty).then(|| Box::new(self))
    }
}

/// The writer of one session: the only code that appends to the store. It owns what every
/// write needs besides the checkpoint — the retention, the workers' bookkeeping (lease fence,
/// wake time, workflow identity), the delta chain, the memory store's fast path, chosen once
/// here — so a caller says only what to write.
#[derive(Debug)]
pub(super) struct SessionWriter {
    id: Arc<str>,
    /// How many checkpoints the session keeps (applied by every append).
    retention: Retention,
    /// What every append carries for workers; `None` on the plain path (boxed, so that a
    /// writer, which every running session's future holds, stays small).
    bookkeeping: Option<Box<Bookkeeping>>,
    /// The sequence number of the newest checkpoint in the store; `None` before the first
    /// append of a new session.
    stored: Option<u64>,
    chain: Chain,
    /// While the newest stored checkpoints are a parallel region's frontier and the branch
    /// records after it: where the next record applies.
    region: Option<RecordOf>,
    /// What the next append says about workers whatever its call's control says: the
    /// deadline of a wait at a node with `wait_ms` (see [`SessionWriter::encode`]), or the end of
    /// one ([`SessionWriter::wake_next`]).
    pending: Option<PendingWake>,
    /// Whether envelopes are written with their checksum: always, except for `MemoryStore`,
    /// which writes it when a checkpoint is first read (see [`Seal`]).
    seal: Seal,
    /// The session in a `MemoryStore`, once appended to (unused with any other store).
    memory: MemoryHandle,
    /// What the writer's first append tells the store about the session, then `None`: the
    /// workflow, graph hash and state schema it writes in (see
    /// [`Store::versions_in_use`](crate::store::Store::versions_in_use)).
    announce: Option<Identity>,
    /// What only the next append carries besides its checkpoint: an audit record, the nodes
    /// a region waits at, a wake time left as it is. `None` on every ordinary step (boxed:
    /// the plain path pays one pointer test).
    extra: Option<Box<Extra>>,
}

/// See [`SessionWriter::extra`].
#[derive(Debug, Default)]
struct Extra {
    audit: Option<Audit>,
    waiting: Vec<&'static str>,
    keep_wake: bool,
    /// The parent session a new child session's first append records.
    parent: Option<Arc<str>>,
}

/// The workflow a writer writes for: its name, graph hash and state schema.
#[derive(Debug, Clone, Copy)]
struct Identity {
    workflow: &'static str,
    graph_hash: u64,
    state_schema: u64,
}

impl Identity {
    fn of<W: Workflow>() -> Self {
        Identity {
            workflow: W::NAME,
            graph_hash: W::GRAPH_HASH,
            state_schema: W::STATE_SCHEMA,
        }
    }
}

/// A wake-up the next append carries, with the workflow and graph hash a claim needs.
#[derive(Debug, Clone, Copy)]
struct PendingWake {
    wake: Wake,
    workflow: Option<(&'static str, u64)>,
}

impl SessionWriter {
    /// The writer of a session of `W` that is not in the store yet, for a store of type `S`.
    pub(super) fn new<W: Workflow, S: Store>(
        id: Arc<str>,
        retention: Retention,
        bookkeeping: Bookkeeping,
    ) -> Self {
        SessionWriter {
            id,
            retention,
            bookkeeping: bookkeeping.boxed(),
            stored: None,
            chain: Chain::default(),
            region: None,
            pending: None,
            seal: seal_for::<S>(),
            memory: MemoryHandle::default(),
            announce: Some(Identity::of::<W>()),
            extra: None,
        }
    }

    /// The writer of a stored session whose newest checkpoint `loaded` read: it extends that
    /// checkpoint, with what loading it learnt about its chain and, if it stopped in a
    /// parallel region, where records apply.
    pub(super) fn stored<W: Workflow, S: Store>(
        id: Arc<str>,
        retention: Retention,
        bookkeeping: Bookkeeping,
        loaded: &mut Loaded<W>,
    ) -> Self {
        SessionWriter {
            id,
            retention,
            bookkeeping: bookkeeping.boxed(),
            stored: Some(loaded.seq),
            chain: std::mem::take(&mut loaded.chain),
            region: loaded.region,
            pending: None,
            seal: seal_for::<S>(),
            memory: MemoryHandle::default(),
            announce: (!loaded.current).then(Identity::of::<W>),
            extra: None,
        }
    }

    /// Makes the next append keep `audit` with its checkpoint (see [`Append::audit`]).
    pub(super) fn audit_next(&mut self, audit: Audit) {
        self.extra.get_or_insert_default().audit = Some(audit);
    }

    /// Makes the next append name every node a region waits at (see [`Append::waiting`]).
    pub(super) fn waiting_next(&mut self, nodes: Vec<&'static str>) {
        self.extra.get_or_insert_default().waiting = nodes;
    }

    /// Makes the next append record `parent` as the session's parent (see
    /// [`Append::parent`]): the first append of a subgraph node's child.
    pub(super) fn parent_next(&mut self, parent: &Arc<str>) {
        self.extra.get_or_insert_default().parent = Some(Arc::clone(parent));
    }

    /// Makes the next append leave the session's wake time as it is, whatever its status:
    /// an operator's edit keeps a deadline, a failure keeps the session runnable for the
    /// workers that retry it.
    pub(super) fn keep_wake_next(&mut self) {
        self.extra.get_or_insert_default().keep_wake = true;
    }

    /// Makes the next append set the session's wake time to `wake` (after
    /// [`SessionWriter::encode`], which sets the wake-up of a deadline).
    pub(super) fn wake_next(&mut self, wake: Wake) {
        self.pending = Some(PendingWake {
            wake,
            workflow: None,
        });
    }

    /// Makes the next append set the session's wake time to `wake` as the deadline of a
    /// waiting interrupt branch (after [`SessionWriter::encode`]): with the workflow and graph
    /// hash a claim needs, whoever writes, as a deadline outside a region has.
    pub(super) fn deadline_next<W: Workflow>(&mut self, wake: Wake) {
        self.pending = Some(PendingWake {
            wake,
            workflow: Some((W::NAME, W::GRAPH_HASH)),
        });
    }

    /// Whether a branch record can be appended: the newest stored checkpoints hold the frontier
    /// of the region the run is in.
    #[inline]
    pub(super) fn has_region(&self) -> bool {
        self.region.is_some()
    }

    /// The session id.
    #[inline]
    pub(super) fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The sequence number of the newest stored checkpoint (0 before the first append).
    #[inline]
    pub(super) fn stored_seq(&self) -> u64 {
        self.stored.unwrap_or(0)
    }

    /// Encodes checkpoint `seq` to follow the stored one: whole, or as a delta against the
    /// previous body when the chain allows it (see [`Chain`]). Kept apart from
    /// [`SessionWriter::append`] so that no reference to the state lives across an `.await` (the
    /// state need not be `Sync`).
    ///
    /// `frontier` is the parallel region the session is in, with the status to index (which
    /// names the first waiting branch when it waits); branch records then extend it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn encode<W: Workflow>(
        &mut self,
        seq: u64,
        status: Status,
        node: Cow<'static, str>,
        state: &W::State,
        input: Option<&W::Input>,
        failure: Option<&Failure>,
        frontier: Option<FrontierRef<'_>>,
    ) -> Result<Checkpoint> {
        // A wait at an interrupt node with `wait_ms` is a durable deadline: the append makes
        // the session runnable once it passes, for any worker of this workflow and graph,
        // even when the session was started in-process. (In a parallel region, each waiting
        // branch has its own: the caller sets the earliest with `deadline_next`.)
        self.pending = match (&status, &frontier) {
            (Status::Waiting { .. }, None) => W::Exec::cursor_of(&node)
                .and_then(|cursor| W::Exec::spec(cursor).wait_ms)
                .map(|ms| PendingWake {
                    wake: Wake::After(Duration::from_millis(ms)),
                    workflow: Some((W::NAME, W::GRAPH_HASH)),
                }),
            _ => None,
        };
        let expected = self.stored;
        let chain = &mut self.chain;
        let header = Header {
            session: &self.id,
            graph_hash: W::GRAPH_HASH,
            seq,
            status: status.code(),
            node: &node,
            state_schema: W::STATE_SCHEMA,
            input_schema: W::INPUT_SCHEMA,
        };
        let (full, body) = checkpoint::encode(
            &header,
            state,
            input,
            failure,
            frontier,
            chain.spare.take().unwrap_or_default(),
            chain.size_hint,
            self.seal,
        )?;
        chain.size_hint = full.len();
        let body_len = body.len();
        let mut depends_on = None;
        let mut bytes = None;
        if body_len >= DELTA_MIN_BODY
            && expected.is_some()
            && chain.prev_seq == expected
            && chain.len < max_chain(self.retention)
            && let (Some(prev), Some(base)) = (&chain.prev, expected)
        {
            // The chain may grow to twice the body before a full checkpoint pays off.
            let room = (2 * body_len).saturating_sub(chain.delta_bytes);
            if let Some(patch) = delta::encode(prev, &full[body.clone()], room.min(body_len / 2)) {
                let of = DeltaOf {
                    base,
                    anchor: chain.anchor,
                    // Fits: bodies are capped far below 4 GiB.
                    body_len: body_len as u32,
                    body_crc: checkpoint::body_checksum(&full[body.clone()]),
                };
                let kind = BodyKind {
                    input: input.is_some(),
                    frontier: frontier.is_some(),
                };
                bytes = Some(checkpoint::seal(
                    &header,
                    kind,
                    Some(of),
                    &patch,
                    self.seal,
                )?);
                depends_on = Some(chain.anchor);
                chain.len += 1;
                chain.delta_bytes += patch.len();
            }
        }
        if depends_on.is_none() {
            chain.anchor = seq;
            chain.len = 0;
            chain.delta_bytes = 0;
        }
        chain.prev_seq = Some(seq);
        chain.prev = (body_len >= DELTA_MIN_BODY).then(|| full[body].to_vec());
        self.region = frontier.map(|_| RecordOf {
            base: seq,
            anchor: depends_on.unwrap_or(seq),
        });
        let bytes = bytes.unwrap_or(full);
        Ok(Checkpoint {
            seq,
            node,
            status,
            created_at: crate::clock::coarse_now(),
            bytes,
            depends_on,
            seal_later: (self.seal == Seal::Later).then_some(SealLater(checkpoint::write_checksum)),
        })
    }

    /// Encodes branch record `seq`: the slots `changes` of the frontier the newest stored
    /// checkpoints hold, at the join `node`, with `status` to index. It depends on the
    /// checkpoint the frontier's chain starts at, so retention keeps what reading it needs.
    pub(super) fn encode_record<W: Workflow>(
        &mut self,
        seq: u64,
        node: &'static str,
        status: Status,
        changes: &[(u32, &Slot)],
    ) -> Result<Checkpoint> {
        let Some(record) = self.region else {
            return Err(Error::Encode {
                session: self.id.to_string(),
                reason: "a branch record outside a saved parallel region".to_owned(),
            });
        };
        let header = Header {
            session: &self.id,
            graph_hash: W::GRAPH_HASH,
            seq,
            status: status.code(),
            node,
            state_schema: W::STATE_SCHEMA,
            input_schema: W::INPUT_SCHEMA,
        };
        let has_input = changes.iter().any(|(_, s)| matches!(s, Slot::Input(_)));
        let bytes = checkpoint::seal_record(&header, has_input, record, changes, self.seal)?;
        Ok(Checkpoint {
            seq,
            node: Cow::Borrowed(node),
            status,
            created_at: crate::clock::coarse_now(),
            bytes,
            depends_on: Some(record.anchor),
            seal_later: (self.seal == Seal::Later).then_some(SealLater(checkpoint::write_checksum)),
        })
    }

    /// Appends `checkpoint` after the stored one (compare-and-swap), applying the retention
    /// policy; on success it is the stored one.
    pub(super) async fn append<S: Store>(
        &mut self,
        store: &S,
        checkpoint: Checkpoint,
        control: &Control,
    ) -> Result<()> {
        // `MemoryStore` never waits: its append is called directly, without building the
        // futures of the trait's async method (a constant test once `S` is known).
        if let Some(memory) = as_memory(store) {
            return self.append_in_memory(memory, checkpoint, control);
        }
        let (seq, bytes) = (checkpoint.seq, checkpoint.bytes.len());
        let append = self.prepare(checkpoint);
        let result = store.append(&self.id, append).await;
        self.finish(seq, bytes, result, control)
    }

    /// [`SessionWriter::append`] to a `MemoryStore`, synchronously.
    #[inline(always)]
    pub(super) fn append_in_memory(
        &mut self,
        store: &MemoryStore,
        checkpoint: Checkpoint,
        control: &Control,
    ) -> Result<()> {
        let (seq, bytes) = (checkpoint.seq, checkpoint.bytes.len());
        // A session that keeps only its latest checkpoint, running with nothing for workers
        // to record: the new checkpoint takes the old one's place, nothing more.
        let mut checkpoint = checkpoint;
        if let (Retention::KeepLast(1), Some(expected), None, None, None, None, Status::Running) = (
            self.retention,
            self.stored,
            self.bookkeeping.as_deref(),
            self.pending,
            self.announce,
            self.extra.as_deref(),
            &checkpoint.status,
        ) {
            match MemoryStore::replace_now(&self.memory, expected, checkpoint) {
                Ok(spare) => {
                    self.chain.spare = Some(spare);
                    return self.finish(seq, bytes, Ok(()), control);
                }
                Err(given_back) => checkpoint = given_back,
            }
        }
        let append = self.prepare(checkpoint);
        let result = store
            .append_now(&self.id, append, &mut self.memory)
            .map(|spare| {
                self.chain.spare = spare;
            });
        self.finish(seq, bytes, result, control)
    }

    /// The compare-and-swap append of `checkpoint`, with the workers' bookkeeping its call
    /// and this session's pending wake-up ask for.
    pub(super) fn prepare(&mut self, checkpoint: Checkpoint) -> Append {
        let keep_last = match self.retention {
            Retention::KeepAll => None,
            Retention::KeepLast(n) => Some(n),
        };
        let settles = matches!(
            checkpoint.status,
            Status::Completed | Status::Waiting { .. } | Status::Cancelled
        );
        let mut append = Append::new(self.stored, checkpoint, keep_last);
        // Workers' bookkeeping, set only by the calls that involve them: nothing on the
        // plain path.
        let bookkeeping = self.bookkeeping.as_deref().copied().unwrap_or_default();
        if let Some(epoch) = bookkeeping.fence {
            append = append.fence(epoch);
        }
        let pending = self.pending.take();
        let wake = match pending {
            // A deadline, or the end of one, whoever writes.
            Some(pending) => Some(pending.wake),
            // A checkpoint after which nothing is due (completed, waiting) says no worker is
            // needed, however it was written: a session enqueued for workers but run to its
            // end in-process must not stay runnable.
            None if settles => Some(Wake::Never),
            None => bookkeeping.wake,
        };
        let extra = self.extra.take();
        let wake = match &extra {
            Some(extra) if extra.keep_wake => None,
            _ => wake,
        };
        if let Some(wake) = wake {
            append = append.wake(wake);
        }
        if let Some((name, graph_hash)) = pending.and_then(|p| p.workflow).or(bookkeeping.workflow)
        {
            append = append.workflow(name, graph_hash);
        }
        // The first append of this writer says which workflow, graph and schema the session
        // is written in now: a claim needs the pair, the count of versions in use all three.
        if let Some(identity) = self.announce.take() {
            append = append
                .workflow(identity.workflow, identity.graph_hash)
                .state_schema(identity.state_schema);
        }
        if let Some(extra) = extra {
            let Extra {
                audit,
                waiting,
                parent,
                ..
            } = *extra;
            if let Some(audit) = audit {
                append = append.audit(audit);
            }
            if let Some(parent) = parent {
                append = append.parent(&parent);
            }
            if !waiting.is_empty() {
                append = append.waiting(waiting);
            }
        }
        append
    }

    /// Takes the store's answer to the append of checkpoint `seq` (of `bytes` bytes).
    pub(super) fn finish(
        &mut self,
        seq: u64,
        bytes: usize,
        result: Result<()>,
        control: &Control,
    ) -> Result<()> {
        result.map_err(|e| match e {
            // A new session's first append fails only because the id is taken.
            Error::Conflict { session, .. } if self.stored.is_none() => {
                Error::SessionExists(session)
            }
            e => e,
        })?;
        self.stored = Some(seq);
        control.wrote();
        control.emit(|| Event::CheckpointSaved { seq, bytes });
        Ok(())
    }
}

/// Sends `append` (made by [`SessionWriter::prepare`]) to the store: the future a caller polls while
/// it does other work (the scheduler runs branches meanwhile), then hands its result to
/// [`SessionWriter::finish`]. It borrows only the store and the id, not the writer, which is how
/// the writer stays the only code that calls `Store::append` while the scheduler goes on.
pub(super) fn send<'a, S: Store>(
    store: &'a S,
    session: &'a str,
    append: Append,
) -> impl Future<Output = Result<()>> + Send + 'a {
    store.append(session, append)
}

/// `store`, if it is a `MemoryStore`: its appends never wait, so the runner makes them as
/// plain function calls (a constant test once `S` is known).
#[inline(always)]
pub(super) fn as_memory<S: Store>(store: &S) -> Option<&MemoryStore> {
    (store as &dyn Any).downcast_ref::<MemoryStore>()
}

/// How a session writer for a store of type `S` seals envelopes: later for `MemoryStore`
/// alone, which seals them itself when they are read (a constant once `S` is known).
fn seal_for<S: Store>() -> Seal {
    if TypeId::of::<S>() == TypeId::of::<MemoryStore>() {
        Seal::Later
    } else {
        Seal::Now
    }
}

/// The longest delta chain a retention allows (see [`Chain`]).
fn max_chain(retention: Retention) -> u32 {
    match retention {
        Retention::KeepLast(n) => u32::try_from(n)
            .unwrap_or(u32::MAX)
            .clamp(MIN_KEPT_CHAIN, MAX_CHAIN),
        Retention::KeepAll => MAX_CHAIN,
    }
}
