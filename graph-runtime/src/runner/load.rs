//! Reading a session back: a checkpoint from the store, verified, rebuilt from its chain and
//! decoded.

use super::scheduler::Frontier;
use super::session::{Chain, DELTA_MIN_BODY};
use super::{Cursor, GraphChange, Runner};
use crate::checkpoint::{self, DeltaOf, Envelope, FrontierBody, Phase, RecordOf, delta};
use crate::ctx::Failure;
use crate::execute::{Execute, RegionKind};
use crate::store::{Checkpoint, Store};
use crate::{Error, Result, Workflow};

/// A decoded checkpoint.
pub(super) struct Loaded<W: Workflow> {
    pub(super) seq: u64,
    pub(super) phase: Phase,
    /// The node name, as this graph calls it (a renamed node's stored old name is mapped).
    pub(super) node: String,
    pub(super) state: W::State,
    pub(super) input: Option<W::Input>,
    pub(super) failure: Option<Failure>,
    /// What a writer extending this checkpoint needs to know about its chain.
    pub(super) chain: Chain,
    /// The graph hash it was saved under.
    pub(super) graph_hash: u64,
    /// The parallel region the session stopped in, with every branch record applied.
    pub(super) frontier: Option<Frontier>,
    /// Where branch records extending it apply (with `frontier`).
    pub(super) region: Option<RecordOf>,
}

impl<W: Workflow, S: Store> Runner<W, S> {
    pub(super) async fn load_latest(&self, session: &str) -> Result<Loaded<W>> {
        let Some(checkpoint) = self.shared.store.latest(session).await? else {
            return Err(Error::SessionNotFound(session.to_owned()));
        };
        self.decode(session, checkpoint).await
    }

    /// Opens a checkpoint read back from the store: checks its envelope, its graph hash and
    /// schema fingerprints, reconstructs it from its chain if it is a delta or a branch
    /// record, and decodes it (through `migrate_from` if it was saved in an older schema).
    pub(super) async fn decode(&self, session: &str, checkpoint: Checkpoint) -> Result<Loaded<W>> {
        let seq = checkpoint.seq;
        let envelope = checkpoint::open(session, seq, &checkpoint.bytes)?;
        self.admit(session, &envelope)?;
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
            return self.apply_records(session, &envelope, record, &links, checkpoint.bytes.len());
        }
        let links = match envelope.delta {
            None => Vec::new(),
            Some(of) => self.shared.store.chain(session, of.anchor, of.base).await?,
        };
        self.decode_opened(session, &envelope, &links, checkpoint.bytes.len())
    }

    /// Decodes an opened checkpoint that is not a branch record; `links` are the
    /// checkpoints of its delta chain (empty when it is whole).
    fn decode_opened(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        links: &[Checkpoint],
        size: usize,
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
                let (body, delta_bytes, len) = self.reconstruct(session, envelope, of, links)?;
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
                        stored: stored_schema,
                        compiled: W::STATE_SCHEMA,
                    });
                }
            }
        };
        Self::check_input_schema(session, envelope)?;
        let (input, failure, frontier) =
            checkpoint::decode_tail(session, seq, &body[read..], envelope.frontier)?;
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
            Some(body) => Some(Self::frontier(session, seq, cursor, body)?),
        };
        Ok(Loaded {
            seq,
            phase: envelope.phase,
            node,
            state,
            input,
            failure,
            chain,
            graph_hash: envelope.graph_hash,
            frontier,
            region,
        })
    }

    /// Refuses a recorded input saved under another `Input` schema.
    fn check_input_schema(session: &str, envelope: &Envelope<'_>) -> Result<()> {
        match envelope.input_schema {
            Some(stored) if stored != W::INPUT_SCHEMA => Err(Error::SchemaMismatch {
                session: session.to_owned(),
                seq: envelope.seq,
                what: "recorded input",
                stored,
                compiled: W::INPUT_SCHEMA,
            }),
            _ => Ok(()),
        }
    }

    /// A frontier read from checkpoint `seq` at the join `cursor`, checked against the
    /// graph's region there.
    fn frontier(
        session: &str,
        seq: u64,
        cursor: Option<Cursor<W>>,
        body: FrontierBody,
    ) -> Result<Frontier> {
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let Some(region) = cursor.and_then(W::Exec::region) else {
            return Err(corrupt(
                "the checkpoint holds a frontier, but its node is not the join of a region"
                    .to_owned(),
            ));
        };
        let fits = match (&region.kind, &body.items) {
            (RegionKind::FanOut { branches, .. }, None) => body.slots.len() == branches.len(),
            (RegionKind::Map { .. }, Some(items)) => body.slots.len() == items.len(),
            _ => false,
        };
        if !fits {
            return Err(corrupt(
                "the frontier does not fit the region of its join".to_owned(),
            ));
        }
        Ok(Frontier {
            opened: body.opened,
            items: body.items,
            slots: body.slots,
            saved: true,
        })
    }

    /// Reads the branch record `envelope`: rebuilds the checkpoint that holds its region's
    /// frontier from `links` (the stored checkpoints from `record.anchor` to the record
    /// before it), then applies every record after it, in order.
    fn apply_records(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        record: RecordOf,
        links: &[Checkpoint],
        size: usize,
    ) -> Result<Loaded<W>> {
        let seq = envelope.seq;
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq,
            reason,
        };
        let Some(at) = links.iter().position(|c| c.seq == record.base) else {
            return Err(corrupt(format!(
                "the branch record's region checkpoint {} is not in the store",
                record.base
            )));
        };
        let base = &links[at];
        let opened = checkpoint::open(session, base.seq, &base.bytes)?;
        if opened.record.is_some() || !opened.frontier {
            return Err(corrupt(format!(
                "checkpoint {} does not hold the frontier the branch record extends",
                record.base
            )));
        }
        if opened.delta.is_some_and(|of| of.anchor != record.anchor)
            || (opened.delta.is_none() && record.anchor != record.base)
        {
            return Err(corrupt(
                "the branch record names another chain than its region's".to_owned(),
            ));
        }
        self.admit(session, &opened)?;
        let mut loaded = self.decode_opened(session, &opened, &links[..at], base.bytes.len())?;
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
            return Err(corrupt("the region checkpoint has no frontier".to_owned()));
        };
        let mut expected = record.base;
        let later = links[at + 1..]
            .iter()
            .map(Some)
            .chain(std::iter::once(None));
        for link in later {
            let (link_seq, opened_link);
            let this = match link {
                Some(link) => {
                    opened_link = checkpoint::open(session, link.seq, &link.bytes)?;
                    link_seq = link.seq;
                    &opened_link
                }
                None => {
                    link_seq = seq;
                    envelope
                }
            };
            if Some(link_seq) != expected.checked_add(1) || this.record != Some(record) {
                return Err(corrupt(format!(
                    "the branch records of region {} are incomplete or broken at {link_seq}",
                    record.base
                )));
            }
            if this.graph_hash != opened.graph_hash {
                return Err(corrupt(
                    "a branch record of another graph than its region".to_owned(),
                ));
            }
            Self::check_input_schema(session, this)?;
            for (index, slot) in checkpoint::decode_record(session, link_seq, this.body)? {
                let Some(target) = frontier.slots.get_mut(index as usize) else {
                    return Err(corrupt(format!(
                        "a branch record names slot {index} of a frontier of {}",
                        frontier.slots.len()
                    )));
                };
                *target = slot;
            }
            expected = link_seq;
        }
        loaded.seq = seq;
        loaded.phase = envelope.phase;
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
        })
    }

    /// Rebuilds the body of the delta checkpoint `envelope` from `links`, the stored
    /// checkpoints from its chain's full checkpoint up to the one it applies to. Returns the
    /// body, the delta bytes in the chain and the number of deltas.
    fn reconstruct(
        &self,
        session: &str,
        envelope: &Envelope<'_>,
        of: DeltaOf,
        links: &[Checkpoint],
    ) -> Result<(Vec<u8>, usize, u32)> {
        let corrupt = |reason: String| Error::Corrupt {
            session: session.to_owned(),
            seq: envelope.seq,
            reason,
        };
        let Some((first, rest)) = links.split_first() else {
            return Err(corrupt(format!(
                "the delta chain is incomplete: its full checkpoint {} is not in the store",
                of.anchor
            )));
        };
        let full = checkpoint::open(session, first.seq, &first.bytes)?;
        if first.seq != of.anchor || full.delta.is_some() {
            return Err(corrupt(format!(
                "the delta chain is incomplete: its full checkpoint {} is not in the store",
                of.anchor
            )));
        }
        let mut deltas: Vec<&[u8]> = Vec::with_capacity(rest.len() + 1);
        let mut expected_base = first.seq;
        let mut delta_bytes = envelope.body.len();
        for link in rest {
            let opened = checkpoint::open(session, link.seq, &link.bytes)?;
            match opened.delta {
                Some(d) if d.base == expected_base && d.anchor == of.anchor => {}
                _ => {
                    return Err(corrupt(format!(
                        "checkpoint {} breaks the delta chain from {}",
                        link.seq, of.anchor
                    )));
                }
            }
            delta_bytes += opened.body.len();
            deltas.push(opened.body);
            expected_base = link.seq;
        }
        if of.base != expected_base {
            return Err(corrupt(format!(
                "the delta chain is incomplete: checkpoint {} is not in the store",
                of.base
            )));
        }
        deltas.push(envelope.body);
        let body = delta::reconstruct(full.body, &deltas, checkpoint::MAX_BODY_BYTES)
            .map_err(|e| corrupt(format!("delta does not apply: {e}")))?;
        if body.len() != of.body_len as usize || checkpoint::body_checksum(&body) != of.body_crc {
            return Err(corrupt(
                "the reconstructed body does not match its checksum".to_owned(),
            ));
        }
        let len = u32::try_from(deltas.len()).unwrap_or(u32::MAX);
        Ok((body, delta_bytes, len))
    }

    pub(super) fn cursor(&self, session: &str, loaded: &Loaded<W>) -> Result<Cursor<W>> {
        let node = &loaded.node;
        W::Exec::cursor_of(node).ok_or_else(|| {
            if loaded.graph_hash == W::GRAPH_HASH {
                // Saved by this very graph, which has every stored node name: a missing one
                // means the bytes lie.
                Error::Corrupt {
                    session: session.to_owned(),
                    seq: loaded.seq,
                    reason: format!("cursor `{node}` is not a node of this graph"),
                }
            } else {
                // An older graph (accepted, or under `Force`) had a node this one removed.
                Error::UnknownNode {
                    session: session.to_owned(),
                    node: node.clone(),
                }
            }
        })
    }
}
