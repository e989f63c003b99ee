//! Reading a session back: a checkpoint from the store, verified, rebuilt from its chain and
//! decoded.

use std::time::SystemTime;

use super::position::Frontier;
use super::scheduler::branch_of;
use super::session::{Chain, DELTA_MIN_BODY};
use super::{Cursor, GraphChange, Runner};
use crate::checkpoint::{self, Envelope, Failure, FrontierBody, RecordOf, Saved, chain};
use crate::execute::{Execute, Region, RegionKind, Slot};
use crate::store::{Checkpoint, Status, Store, status_code};
use crate::{Error, Result, Workflow};

/// What a checkpoint is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// To look at (`state`, `state_at`): only the state's schema matters. A checkpoint of any
    /// graph reads, its cursor as stored; the frontier of a region the compiled graph does not
    /// have is left out, and saved branch outputs are not checked (nothing decodes them).
    Read,
    /// To run on from it (`resume`, `resume_with`, `fork`): the graph must be this one or
    /// one it accepts, the cursor one of its nodes, and every saved branch output, item and
    /// input of the compiled types (or migrated to them).
    Run,
}

/// A decoded checkpoint.
pub(super) struct Loaded<W: Workflow> {
    pub(super) seq: u64,
    /// The status's integer code (`store::status_code`): no allocation to load a waiting
    /// checkpoint; [`Loaded::status`] builds the `Status` where one is needed.
    pub(super) status: u8,
    /// The node name, as this graph calls it (a renamed node's stored old name is mapped).
    pub(super) node: String,
    /// Its node in this graph, if the graph has it.
    pub(super) cursor: Option<Cursor<W>>,
    pub(super) state: W::State,
    pub(super) input: Option<W::Input>,
    pub(super) failure: Option<Failure>,
    /// What a writer extending this checkpoint needs to know about its chain.
    pub(super) chain: Chain,
    /// The graph hash it was saved under.
    pub(super) graph_hash: u64,
    /// Whether this release wrote it (envelope version 4) under the compiled graph hash and
    /// state schema: the store then already has the session's workflow, graph and schema,
    /// which a writer extending it need not tell it again.
    pub(super) current: bool,
    /// The parallel region the session stopped in, with every branch record applied.
    pub(super) frontier: Option<Frontier>,
    /// Where branch records extending it apply (with `frontier`).
    pub(super) region: Option<RecordOf>,
}

impl<W: Workflow> Loaded<W> {
    /// The status, waiting at the cursor when it waits.
    pub(super) fn status(&self) -> Status {
        Status::from_code(self.status, Some(&self.node)).unwrap_or(Status::Running)
    }

    /// Whether it is a completed session's.
    pub(super) fn is_completed(&self) -> bool {
        self.status == status_code::COMPLETED
    }

    /// Whether the session waits.
    pub(super) fn is_waiting(&self) -> bool {
        self.status == status_code::WAITING
    }

    /// Whether the session runs on (after a crash, an error or a recorded decision).
    pub(super) fn is_running(&self) -> bool {
        self.status == status_code::RUNNING
    }
}

impl<W: Workflow, S: Store> Runner<W, S> {
    pub(super) async fn load_latest(&self, session: &str) -> Result<Loaded<W>> {
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Err(Error::SessionNotFound(session.to_owned()));
        };
        self.decode(session, checkpoint, Purpose::Run).await
    }

    /// Opens a checkpoint read back from the store: checks its envelope (and, to run on
    /// from it, its graph hash), reconstructs it from its chain if it is a delta or a branch
    /// record, and decodes it (through `migrate_from` if it was saved in an older schema).
    pub(super) async fn decode(
        &self,
        session: &str,
        checkpoint: Checkpoint,
        purpose: Purpose,
    ) -> Result<Loaded<W>> {
        let seq = checkpoint.seq;
        let envelope = checkpoint::open(session, seq, &checkpoint.bytes)?;
        // A completed session runs nothing more: returning its end needs no graph either.
        let purpose = if envelope.status == status_code::COMPLETED {
            Purpose::Read
        } else {
            purpose
        };
        if purpose == Purpose::Run
            && let Err(mismatch) = self.admit(session, &envelope)
        {
            return Err(self.explain(mismatch).await);
        }
        if let Some(record) = envelope.record {
            // The chain from the base's anchor up to the record before this one.
            let links = match seq.checked_sub(1) {
                Some(last) => {
                    self.shared
                        .store
                        .chain(session, record.anchor, last)
                        .await?
                }
                None => Vec::new(),
            };
            let (size, created_at) = (checkpoint.bytes.len(), checkpoint.created_at);
            let mut loaded = match self.apply_records(
                session,
                &envelope,
                record,
                &links,
                (size, created_at),
                purpose,
            ) {
                Ok(loaded) => loaded,
                // The region's base was saved by a graph this one does not accept.
                Err(mismatch @ Error::GraphMismatch { .. }) => {
                    return Err(self.explain(mismatch).await);
                }
                Err(e) => return Err(e),
            };
            Self::settle(session, &mut loaded, purpose)?;
            self.restamp_waits(session, &mut loaded).await?;
            return Ok(loaded);
        }
        let links = match envelope.delta {
            None => Vec::new(),
            Some(of) => self.shared.store.chain(session, of.anchor, of.base).await?,
        };
        let mut loaded = self.decode_opened(
            session,
            &envelope,
            &links,
            (checkpoint.bytes.len(), checkpoint.created_at),
            purpose,
        )?;
        Self::settle(session, &mut loaded, purpose)?;
        self.restamp_waits(session, &mut loaded).await?;
        Ok(loaded)
    }

    /// The interrupt branches of a fan-out wait from the moment the region opened, which
    /// the checkpoint the region's step saved (sequence number `opened`) records. A later
    /// whole checkpoint of the same region (an operator's edit) must not restart their
    /// deadlines: the waits its base holds are counted from that first checkpoint when the
    /// store still keeps it. Only for regions with deadlines, and only when the base is not
    /// that checkpoint itself (one more read, on a rare path).
    async fn restamp_waits(&self, session: &str, loaded: &mut Loaded<W>) -> Result<()> {
        let (Some(frontier), Some(cursor), Some(region)) =
            (loaded.frontier.as_mut(), loaded.cursor, loaded.region)
        else {
            return Ok(());
        };
        let Some(base_written) = frontier.base_written else {
            return Ok(());
        };
        let from_base = |since: &Option<SystemTime>| *since == Some(base_written);
        if region.base == frontier.opened
            || !super::deadline::has_deadlines::<W>(cursor)
            || !frontier.waits_since.iter().any(from_base)
        {
            return Ok(());
        }
        if let Some(first) = self.shared.store.get(session, frontier.opened).await? {
            for since in frontier.waits_since.iter_mut().filter(|s| from_base(s)) {
                *since = Some(first.created_at.min(base_written));
            }
        }
        Ok(())
    }

    /// A graph mismatch with what changed since the stored graph, as far as the store kept
    /// its description (see `graphs::changes_since`); any other error as it is.
    async fn explain(&self, error: Error) -> Error {
        match error {
            Error::GraphMismatch {
                session,
                stored,
                compiled,
                ..
            } => Error::GraphMismatch {
                changed: super::graphs::changes_since::<W, S>(&self.shared.store, stored).await,
                session,
                stored,
                compiled,
            },
            other => other,
        }
    }

    /// The last checks of a checkpoint to run on from: its cursor is a node of this graph,
    /// and the values its frontier saved are of the compiled types (migrated when a
    /// `migrate_from` lists theirs).
    fn settle(session: &str, loaded: &mut Loaded<W>, purpose: Purpose) -> Result<()> {
        if purpose == Purpose::Read {
            return Ok(());
        }
        let Some(cursor) = loaded.cursor else {
            return Err(Self::unknown_node(session, loaded));
        };
        if let Some(frontier) = loaded.frontier.as_mut() {
            let Some(region) = W::Exec::region(cursor) else {
                return Err(Error::Corrupt {
                    session: session.to_owned(),
                    seq: loaded.seq,
                    reason:
                        "the checkpoint holds a frontier, but its node is not the join of a region"
                            .to_owned(),
                });
            };
            let trusted = loaded.graph_hash == W::GRAPH_HASH;
            Self::check_frontier(session, loaded.seq, region, trusted, frontier)?;
        }
        Ok(())
    }

    /// The error for a checkpoint whose cursor this graph does not have: the bytes lie when
    /// this very graph saved it, else a release removed (or renamed) the node.
    fn unknown_node(session: &str, loaded: &Loaded<W>) -> Error {
        if loaded.graph_hash == W::GRAPH_HASH {
            Error::Corrupt {
                session: session.to_owned(),
                seq: loaded.seq,
                reason: format!("cursor `{}` is not a node of this graph", loaded.node),
            }
        } else {
            Error::UnknownNode {
                session: session.to_owned(),
                node: loaded.node.clone(),
            }
        }
    }

    /// Checks every value a frontier saved against the compiled types, before any of it is
    /// decoded: each finished branch's output against its node's output fingerprint, each
    /// recorded input against `INPUT_SCHEMA`, a map's items against the map node's item
    /// fingerprint. A value of an older type listed in the producing node's `migrate_from`
    /// is converted in place. A value saved without a fingerprint (envelope version 3) is
    /// trusted only when `trusted`: saved under this very graph, whose hash covers every
    /// output and item type's fingerprint.
    fn check_frontier(
        session: &str,
        seq: u64,
        region: &Region<super::Cursor<W>>,
        trusted: bool,
        frontier: &mut Frontier,
    ) -> Result<()> {
        let mismatch = |what, branch, item, stored, compiled| Error::SchemaMismatch {
            session: session.to_owned(),
            seq,
            what,
            branch: Some(branch),
            item,
            stored,
            compiled,
        };
        let corrupt = |what: &str, node: &str, e: checkpoint::DecodeError| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason: format!("a {what} of `{node}` of an older type does not decode: {e}"),
        };
        let map_node = match region.kind {
            RegionKind::Map { node, .. } => Some(node),
            RegionKind::FanOut { .. } => None,
        };
        if let (Some(map), Some(items)) = (map_node, frontier.items.as_mut()) {
            let name = W::Exec::spec(map).name;
            let compiled = W::Exec::item_schema(map);
            let stored = frontier.item_schema;
            if stored != compiled && !(stored == Saved::UNRECORDED && trusted) {
                for (index, item) in items.iter_mut().enumerate() {
                    match W::Exec::migrate_item(map, stored, item) {
                        Some(migrated) => {
                            *item = migrated.map_err(|e| corrupt("map item", name, e))?
                        }
                        None => {
                            return Err(mismatch(
                                "map item",
                                name,
                                Some(index as u64),
                                stored,
                                compiled,
                            ));
                        }
                    }
                }
            }
            frontier.item_schema = compiled;
        }
        for (index, slot) in frontier.slots.iter_mut().enumerate() {
            let node = branch_of(region, index).unwrap_or(region.join);
            let name = W::Exec::spec(node).name;
            let item = map_node.map(|_| index as u64);
            match slot {
                Slot::Done(saved) => {
                    let compiled = W::Exec::output_schema(node);
                    if saved.schema == compiled || (saved.schema == Saved::UNRECORDED && trusted) {
                        saved.schema = compiled;
                        continue;
                    }
                    match W::Exec::migrate_output(node, saved.schema, &saved.bytes) {
                        Some(migrated) => {
                            let bytes = migrated.map_err(|e| corrupt("branch output", name, e))?;
                            *saved = Saved::new(compiled, bytes);
                        }
                        None => {
                            return Err(mismatch(
                                "branch output",
                                name,
                                item,
                                saved.schema,
                                compiled,
                            ));
                        }
                    }
                }
                Slot::Input(saved) => {
                    let compiled = W::INPUT_SCHEMA;
                    if saved.schema == compiled || (saved.schema == Saved::UNRECORDED && trusted) {
                        saved.schema = compiled;
                        continue;
                    }
                    return Err(mismatch(
                        "recorded input",
                        name,
                        item,
                        saved.schema,
                        compiled,
                    ));
                }
                Slot::Pending | Slot::Waiting | Slot::Failed(_) => {}
            }
        }
        Ok(())
    }

    /// Decodes an opened checkpoint that is not a branch record, of `size` bytes, created at
    /// `created_at`; `links` are the checkpoints of its delta chain (empty when it is whole).
    fn decode_opened(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        links: &[Checkpoint],
        (size, created_at): (usize, SystemTime),
        purpose: Purpose,
    ) -> Result<Loaded<W>> {
        let seq = envelope.seq;
        let mut chain = Chain {
            size_hint: size,
            prev_seq: Some(seq),
            anchor: seq,
            ..Chain::default()
        };
        let reconstructed;
        let body = match envelope.delta {
            None => envelope.body,
            Some(of) => {
                let (body, delta_bytes, len) = chain::reconstruct(session, envelope, of, links)?;
                chain.anchor = of.anchor;
                chain.delta_bytes = delta_bytes;
                chain.len = len;
                reconstructed = body;
                &reconstructed[..]
            }
        };
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let stored_schema = envelope.state_schema.unwrap_or(W::STATE_SCHEMA);
        let (state, read) = if stored_schema == W::STATE_SCHEMA {
            checkpoint::decode_prefix::<W::State>(body)
                .map_err(|e| corrupt(format!("state does not decode: {e}")))?
        } else {
            match W::Exec::migrate_state(stored_schema, body) {
                Some(migrated) => migrated.map_err(|e| {
                    corrupt(format!("state of an older schema does not decode: {e}"))
                })?,
                None => {
                    return Err(Error::SchemaMismatch {
                        session: session.to_owned(),
                        seq,
                        what: "state",
                        branch: None,
                        item: None,
                        stored: stored_schema,
                        compiled: W::STATE_SCHEMA,
                    });
                }
            }
        };
        chain::check_input_schema(session, envelope, W::INPUT_SCHEMA)?;
        let (input, failure, frontier) = checkpoint::decode_tail(
            session,
            seq,
            &body[read..],
            envelope.frontier,
            envelope.typed,
        )?;
        // A renamed node's checkpoint names it by its old name: report the current one.
        let cursor = W::Exec::cursor_of(envelope.node);
        let node = match cursor {
            Some(cursor) => W::Exec::spec(cursor).name.to_owned(),
            None => envelope.node.to_owned(),
        };
        if body.len() >= DELTA_MIN_BODY {
            chain.prev = Some(body.to_vec());
        }
        let region = frontier.is_some().then_some(RecordOf {
            base: seq,
            anchor: chain.anchor,
        });
        let frontier = match frontier {
            None => None,
            Some(body) => Self::frontier(session, seq, cursor, body, purpose)?.map(|mut f| {
                // The waits this checkpoint holds began when it was written (but see
                // `Runner::restamp_waits`).
                f.mark_saved(created_at, None);
                f.base_written = Some(created_at);
                f
            }),
        };
        Ok(Loaded {
            seq,
            status: envelope.status,
            node,
            cursor,
            state,
            input,
            failure,
            chain,
            graph_hash: envelope.graph_hash,
            current: envelope.typed
                && envelope.graph_hash == W::GRAPH_HASH
                && stored_schema == W::STATE_SCHEMA,
            frontier,
            region,
        })
    }

    /// A frontier read from checkpoint `seq` at the join `cursor`, checked against the
    /// graph's region there. To read, a frontier at a node that is no join of this graph
    /// (a release removed or changed it) is left out; to run on, `settle` reports it.
    fn frontier(
        session: &str,
        seq: u64,
        cursor: Option<Cursor<W>>,
        body: FrontierBody,
        purpose: Purpose,
    ) -> Result<Option<Frontier>> {
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let Some(region) = cursor.and_then(W::Exec::region) else {
            return match (purpose, cursor) {
                // `settle` says which: an unknown node, or a node that is no join.
                (Purpose::Run, Some(_)) => Err(corrupt(
                    "the checkpoint holds a frontier, but its node is not the join of a region"
                        .to_owned(),
                )),
                _ => Ok(None),
            };
        };
        let fits = match (&region.kind, &body.items) {
            (RegionKind::FanOut { branches, .. }, None) => body.slots.len() == branches.len(),
            (RegionKind::Map { .. }, Some((_, items))) => body.slots.len() == items.len(),
            _ => false,
        };
        if !fits {
            return Err(corrupt(
                "the frontier does not fit the region of its join".to_owned(),
            ));
        }
        let (item_schema, items) = match body.items {
            Some((schema, items)) => (schema, Some(items)),
            None => (0, None),
        };
        Ok(Some(Frontier {
            opened: body.opened,
            items,
            item_schema,
            waits_since: vec![None; body.slots.len()],
            base_written: None,
            slots: body.slots,
            saved: true,
        }))
    }

    /// Reads the branch record `envelope` (of `size` bytes, created at `created_at`):
    /// rebuilds the checkpoint that holds its region's frontier from `links` (the stored
    /// checkpoints from `record.anchor` to the record before it), then applies every record
    /// after it, in order.
    fn apply_records(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        record: RecordOf,
        links: &[Checkpoint],
        (size, created_at): (usize, SystemTime),
        purpose: Purpose,
    ) -> Result<Loaded<W>> {
        let seq = envelope.seq;
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let (at, opened) = chain::region_base(session, seq, record, links)?;
        let base = &links[at];
        if purpose == Purpose::Run {
            self.admit(session, &opened)?;
        }
        let mut loaded = self.decode_opened(
            session,
            &opened,
            &links[..at],
            (base.bytes.len(), base.created_at),
            purpose,
        )?;
        if loaded.node != envelope.node
            && W::Exec::cursor_of(envelope.node).map(|c| W::Exec::spec(c).name)
                != Some(loaded.node.as_str())
        {
            return Err(corrupt(format!(
                "the branch record is at `{}`, its region at `{}`",
                envelope.node, loaded.node
            )));
        }
        let Some(frontier) = loaded.frontier.as_mut() else {
            if purpose == Purpose::Read {
                // A region this graph does not have: read the state as its base saved it,
                // with the record's sequence number and status.
                loaded.seq = seq;
                loaded.status = envelope.status;
                return Ok(loaded);
            }
            if loaded.cursor.is_none() {
                return Err(Self::unknown_node(session, &loaded));
            }
            return Err(corrupt("the region checkpoint has no frontier".to_owned()));
        };
        let changes = chain::record_changes(
            session,
            envelope,
            record,
            &opened,
            &links[at + 1..],
            W::INPUT_SCHEMA,
        )?;
        // The records' creation times, in the order of their changes.
        let mut later = links[at + 1..].iter().peekable();
        for (index, slot, record_seq) in changes {
            let Some(target) = frontier.slots.get_mut(index as usize) else {
                return Err(corrupt(format!(
                    "a branch record names slot {index} of a frontier of {}",
                    frontier.slots.len()
                )));
            };
            *target = slot;
            // A wait begins when the first record that holds it was written.
            while later.next_if(|link| link.seq < record_seq).is_some() {}
            let written = later
                .peek()
                .filter(|link| link.seq == record_seq)
                .map_or(created_at, |link| link.created_at);
            frontier.mark_saved(written, Some(&[index]));
        }
        loaded.seq = seq;
        loaded.status = envelope.status;
        loaded.region = Some(record);
        // The next checkpoint after a record is whole: a delta applies to its predecessor's
        // body, and a record has none.
        loaded.chain = Chain {
            size_hint: loaded.chain.size_hint.max(size),
            prev_seq: Some(seq),
            anchor: seq,
            ..Chain::default()
        };
        Ok(loaded)
    }

    /// Refuses a checkpoint of another graph, unless this graph accepts it.
    fn admit(&self, session: &str, envelope: &Envelope<'_>) -> Result<()> {
        let stored = envelope.graph_hash;
        if stored == W::GRAPH_HASH
            || W::ACCEPTED_GRAPHS.contains(&stored)
            || self.config.graph_change == GraphChange::Force
        {
            return Ok(());
        }
        Err(Error::GraphMismatch {
            session: session.to_owned(),
            stored,
            compiled: W::GRAPH_HASH,
            changed: Vec::new(),
        })
    }

    /// The cursor of a checkpoint loaded to run on from ([`Purpose::Run`] checked it).
    pub(super) fn cursor(&self, session: &str, loaded: &Loaded<W>) -> Result<Cursor<W>> {
        loaded
            .cursor
            .ok_or_else(|| Self::unknown_node(session, loaded))
    }
}
