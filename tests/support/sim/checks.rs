//! The invariants, checked on what the store kept (after every crash) and on the final
//! states (at the end of a world, against the crash-free run's).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use graph_runtime::prelude::*;
use graph_runtime::store::{AuditKind, CheckpointMeta, InputSource, SessionFilter, Store};
use graph_runtime::{Status, Workflow};

use super::clients::{ACTOR, NOTE, OPERATOR};
use super::ledger;
use super::store::{Backend, Faults};
use super::workflows::*;
use super::world::Clients;

/// What a world's run found wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub crashes: u64,
    /// Fenced writes refused, and claims of sessions claimed before (see `Oracle`).
    pub fenced_refused: u64,
    pub reclaims: u64,
    /// Sessions that never finished, or finished in another state than a crash-free run's.
    pub lost: BTreeSet<String>,
    /// Sessions whose chain has a gap or a sequence number accepted twice, or that committed
    /// an effect twice.
    pub forked: BTreeSet<String>,
    /// What went wrong, one line each.
    pub problems: Vec<String>,
    /// What the faulty run covered: verbs applied, race outcomes.
    pub counts: BTreeMap<&'static str, u64>,
}

impl Report {
    pub fn lost(&mut self, session: &str, why: String) {
        self.lost.insert(session.to_owned());
        self.problems.push(format!("lost {session}: {why}"));
    }
    /// (Once per session: the checks after each crash would see the same fork again.)
    pub fn forked(&mut self, session: &str, why: String) {
        if self.forked.insert(session.to_owned()) {
            self.problems.push(format!("forked {session}: {why}"));
        }
    }
    pub fn other(&mut self, why: String) {
        self.problems.push(why);
    }
}

/// Which workflow a session id is of: children first (`p-ticket-0/research/2`,
/// `w-claim-0/assess/1/3`), then by the tag in the id (a fork's id extends its origin's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Loop,
    Fan,
    Memo,
    Ticket,
    Question,
    Claim,
    Line,
    Deal,
}

pub fn kind_of(id: &str) -> Option<Kind> {
    let tags = [
        ("/research/", Kind::Question),
        ("/assess/", Kind::Line),
        ("-loop-", Kind::Loop),
        ("-fan-", Kind::Fan),
        ("-memo-", Kind::Memo),
        ("-ticket-", Kind::Ticket),
        ("-claim-", Kind::Claim),
        ("-deal-", Kind::Deal),
    ];
    tags.iter()
        .find(|(tag, _)| id.contains(tag))
        .map(|&(_, kind)| kind)
}

/// Every session id the store holds.
pub async fn session_ids(inner: &Backend) -> Vec<String> {
    let mut ids = Vec::new();
    let mut filter = SessionFilter::new();
    filter.limit = SessionFilter::MAX_LIMIT;
    loop {
        let page = inner.sessions(&filter).await.expect("the store");
        ids.extend(page.sessions.into_iter().map(|r| r.session));
        match page.next {
            Some(next) => filter.after = Some(next),
            None => return ids,
        }
    }
}

/// The mark keys of a state that appear more than once.
fn twice<'a>(marks: &[&'a str]) -> Vec<&'a str> {
    let mut keys = HashSet::new();
    marks
        .iter()
        .filter_map(|m| ledger::split(m).map(|(key, _)| key))
        .filter(|key| !keys.insert(*key))
        .collect()
}

/// Checks that a session's kept checkpoints are what its appends and the retention leave:
/// every append took the next sequence number (linear, gapless: one chain, from the first
/// sequence number, which a fork takes from its origin), and the store keeps all of them
/// (`KeepAll`) or the newest `n` and what those depend on (`KeepLast(n)`), nothing else.
async fn check_kept(
    inner: &Backend,
    id: &str,
    metas: &[CheckpointMeta],
    appended: &[u64],
    retention: Retention,
    report: &mut Report,
) {
    let seqs: Vec<u64> = metas.iter().map(|m| m.seq).collect();
    // In the order they took effect, but SQLite's oracle runs on the thread each call ran
    // on: sorted, a number accepted twice or skipped still shows.
    let mut appended = appended.to_vec();
    appended.sort_unstable();
    if appended.windows(2).any(|w| w[1] != w[0] + 1) {
        report.forked(
            id,
            format!("appends that are not one chain: the store accepted {appended:?}"),
        );
        return;
    }
    let (Some(&first), Some(&latest)) = (appended.first(), appended.last()) else {
        if !seqs.is_empty() {
            report.forked(id, format!("keeps {seqs:?}, which no append wrote"));
        }
        return;
    };
    let keep = match retention {
        Retention::KeepLast(n) => n.max(1),
        _ => u64::MAX,
    };
    // The oldest checkpoint retention keeps: of the newest `keep`, or one they need.
    let newest = latest.saturating_sub(keep - 1).max(first);
    let mut oldest = newest;
    if keep != u64::MAX {
        for seq in newest..=latest {
            match inner.get(id, seq).await {
                Ok(Some(checkpoint)) => {
                    if let Some(needed) = checkpoint.depends_on {
                        oldest = oldest.min(needed);
                    }
                }
                Ok(None) => {}
                Err(e) => report.other(format!("{id}: checkpoint {seq} cannot be read: {e}")),
            }
        }
    }
    let expected: Vec<u64> = (oldest.max(first)..=latest).collect();
    if seqs != expected {
        report.forked(
            id,
            format!(
                "the store accepted appends {first}..={latest} and keeps {seqs:?}, not {expected:?} ({retention:?})"
            ),
        );
    }
}

/// Checks one session's chain (see [`check_kept`]); each checkpoint not checked before
/// decodes and commits each effect at most once; its audit records are well formed.
#[allow(clippy::too_many_arguments)]
async fn check_chain<W: Workflow<State: SimState>>(
    workflow: W,
    inner: &Backend,
    faults: &Faults,
    id: &str,
    retention: Retention,
    verified: &mut HashSet<(String, u64)>,
    report: &mut Report,
) {
    let metas = inner.list(id).await.expect("the store");
    let appended = faults
        .oracle()
        .appended
        .get(id)
        .cloned()
        .unwrap_or_default();
    check_kept(inner, id, &metas, &appended, retention, report).await;
    check_audits(id, &metas, report);
    let reader = Runner::new(workflow, inner.clone());
    for meta in &metas {
        let seq = meta.seq;
        if !verified.insert((id.to_owned(), seq)) {
            continue;
        }
        match reader.state_at(id, seq).await {
            Ok(Some(snapshot)) => {
                let marks = snapshot.state.marks();
                let twice = twice(&marks);
                if !twice.is_empty() {
                    report.forked(
                        id,
                        format!("checkpoint {seq} committed effects twice: {twice:?}"),
                    );
                }
                if snapshot.seq != seq {
                    report.other(format!("{id}: checkpoint {seq} reads as {}", snapshot.seq));
                }
            }
            Ok(None) => report.other(format!("{id}: listed checkpoint {seq} is not kept")),
            Err(error) => report.other(format!("{id}: checkpoint {seq} does not decode: {error}")),
        }
    }
}

/// An interrupt node's input is recorded once (a second record would be a second decision
/// for one wait); a caller's says who gave it and why; an operator's change says who made it.
fn check_audits(id: &str, metas: &[CheckpointMeta], report: &mut Report) {
    let mut inputs = BTreeMap::new();
    for meta in metas {
        let Some(audit) = &meta.audit else {
            continue;
        };
        match &audit.kind {
            AuditKind::Input { node, source } => {
                *inputs.entry(node.clone()).or_insert(0) += 1;
                let said = (audit.actor.as_deref(), audit.note.as_deref());
                let expected = match source {
                    InputSource::Caller => (Some(ACTOR), Some(NOTE)),
                    _ => (None, None),
                };
                if said != expected {
                    report.other(format!(
                        "{id}: the input for `{node}` at {} ({source:?}) is audited as given by {said:?}",
                        meta.seq
                    ));
                }
            }
            // (A plain fork names no one: only `fork_with` takes an actor.)
            AuditKind::Forked { .. } if audit.actor.is_none() => {}
            AuditKind::Edit { .. } | AuditKind::Cancelled | AuditKind::Forked { .. }
                if audit.actor.as_deref() != Some(OPERATOR) =>
            {
                report.other(format!(
                    "{id}: the operator's change at {} is audited as made by {:?}",
                    meta.seq, audit.actor
                ));
            }
            _ => {}
        }
    }
    for (node, count) in inputs {
        if count > 1 {
            report.other(format!("{id}: {count} inputs recorded for `{node}`"));
        }
    }
}

/// The parent of a child session, and the checkpoint its step started from: a subgraph
/// node's child `{parent}/research/{seq}` belongs to the step from checkpoint `seq - 1`, at
/// `research`; a map item's `{parent}/assess/{opened}/{item}` to the region that checkpoint
/// `opened` opened.
fn parent_of(id: &str) -> Option<(&str, u64, &'static str)> {
    if let Some((parent, seq)) = id.rsplit_once("/research/") {
        let step = seq.parse::<u64>().ok()?.checked_sub(1)?;
        return Some((parent, step, "research"));
    }
    let (rest, _item) = id.rsplit_once('/')?;
    let (parent, opened) = rest.rsplit_once("/assess/")?;
    Some((parent, opened.parse().ok()?, "total"))
}

/// A child session belongs to a parent step that exists: its parent exists (a delete takes
/// the whole tree at once, and no child is created under a parent that is gone), the store records it as the child's parent, and the checkpoint the
/// step started from, if retention kept it, stands at the subgraph node (or the map's join).
async fn check_orphan(inner: &Backend, id: &str, report: &mut Report) {
    let Some((parent, step, node)) = parent_of(id) else {
        return report.other(format!("{id}: not a child id"));
    };
    match inner.session(id).await.expect("the store") {
        Some(record) if record.parent.as_deref() == Some(parent) => {}
        Some(record) => report.other(format!(
            "{id}: the store records {:?} as its parent, not {parent}",
            record.parent
        )),
        None => return,
    }
    let metas = inner.list(parent).await.expect("the store");
    if metas.is_empty() {
        return report.other(format!("orphan child {id}: its parent {parent} is gone"));
    }
    match metas.iter().find(|m| m.seq == step) {
        Some(m) if m.node != node => report.other(format!(
            "orphan child {id}: its parent's checkpoint {step} stands at `{}`, not `{node}`",
            m.node
        )),
        None if metas.first().is_some_and(|m| m.seq < step) => report.other(format!(
            "orphan child {id}: its parent has no checkpoint {step} (it keeps {:?})",
            metas.iter().map(|m| m.seq).collect::<Vec<_>>()
        )),
        _ => {}
    }
}

/// Checks every session in the store (after a crash, and at the end).
pub async fn check_store(
    inner: &Backend,
    faults: &Faults,
    retention: Retention,
    verified: &mut HashSet<(String, u64)>,
    report: &mut Report,
) {
    for id in session_ids(inner).await {
        let (faults, id) = (faults, id.as_str());
        match kind_of(id) {
            Some(Kind::Loop) => {
                check_chain(
                    looping::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Fan) => {
                check_chain(
                    fanout::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Memo) => {
                check_chain(
                    deadline::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Ticket) => {
                check_chain(
                    support::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Claim) => {
                check_chain(
                    claims::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Deal) => {
                check_chain(
                    approvals::Workflow,
                    inner,
                    faults,
                    id,
                    retention,
                    verified,
                    report,
                )
                .await;
            }
            Some(Kind::Question) => {
                let workflow = research_agent::Workflow;
                check_chain(workflow, inner, faults, id, retention, verified, report).await;
                check_orphan(inner, id, report).await;
            }
            Some(Kind::Line) => {
                let workflow = assessment::Workflow;
                check_chain(workflow, inner, faults, id, retention, verified, report).await;
                check_orphan(inner, id, report).await;
            }
            None => report.other(format!("a session nobody started: {id}")),
        }
    }
    for violation in faults.oracle().violations.drain(..) {
        report.other(violation);
    }
}

/// A session's final state as the checks compare it.
pub struct Final {
    pub status: Status,
    /// What it waits at, as its snapshot says.
    pub waiting: Vec<&'static str>,
    /// The state as a crash-free run has it.
    pub normalized: String,
    /// The committed marks, with their execution ids.
    pub marks: Vec<String>,
    /// Its audit records, normalized and sorted (branches record theirs in any order).
    pub audits: Vec<String>,
    pub state: Box<dyn Any + Send + Sync>,
}

impl Final {
    fn state<T: 'static>(&self) -> Option<&T> {
        self.state.downcast_ref()
    }
}

fn audit_line(meta: &CheckpointMeta) -> Option<String> {
    let audit = meta.audit.as_ref()?;
    Some(match &audit.kind {
        // Which of an answer and the deadline wins `racy` is the race's.
        AuditKind::Input { node, .. } if node == "racy" => format!("input for {node}"),
        AuditKind::Input { node, source } => format!("input for {node} from {source:?}"),
        AuditKind::Edit { .. } => format!("edit: {:?}", audit.note),
        AuditKind::Cancelled => "cancelled".to_owned(),
        AuditKind::Forked { from, seq } => format!("forked from {from} at {seq}"),
        _ => return None,
    })
}

async fn final_of<W: Workflow<State: SimState>>(
    workflow: W,
    inner: &Backend,
    id: &str,
) -> Option<Final> {
    let snapshot = Runner::new(workflow, inner.clone())
        .state(id)
        .await
        .ok()
        .flatten()?;
    let mut audits: Vec<String> = inner
        .list(id)
        .await
        .ok()?
        .iter()
        .filter_map(audit_line)
        .collect();
    audits.sort();
    let state = snapshot.state;
    Some(Final {
        status: snapshot.status,
        waiting: snapshot.waiting,
        normalized: format!("{:?}", state.normalized()),
        marks: state.marks().into_iter().map(str::to_owned).collect(),
        audits,
        state: Box::new(state),
    })
}

/// The final state of every session in the store.
pub async fn finals(inner: &Backend) -> BTreeMap<String, Option<Final>> {
    let mut out = BTreeMap::new();
    for id in session_ids(inner).await {
        let found = match kind_of(&id) {
            Some(Kind::Loop) => final_of(looping::Workflow, inner, &id).await,
            Some(Kind::Fan) => final_of(fanout::Workflow, inner, &id).await,
            Some(Kind::Memo) => final_of(deadline::Workflow, inner, &id).await,
            Some(Kind::Ticket) => final_of(support::Workflow, inner, &id).await,
            Some(Kind::Question) => final_of(research_agent::Workflow, inner, &id).await,
            Some(Kind::Claim) => final_of(claims::Workflow, inner, &id).await,
            Some(Kind::Line) => final_of(assessment::Workflow, inner, &id).await,
            Some(Kind::Deal) => final_of(approvals::Workflow, inner, &id).await,
            None => None,
        };
        out.insert(id, found);
    }
    out
}

/// The sessions of `finals` under `prefix` (a parent's children), by id.
fn under<'a>(
    finals: &'a BTreeMap<String, Option<Final>>,
    prefix: &str,
) -> Vec<(&'a String, &'a Option<Final>)> {
    finals
        .range(prefix.to_owned()..)
        .take_while(|(c, _)| c.starts_with(prefix))
        .collect()
}

/// The checks at the end of a world: every session of the crash-free run ended here with
/// the same status and state (and, keeping every checkpoint, the same decisions, edits,
/// cancels and forks in its history), with effects the ledger saw, each interrupt step run
/// with one input only; no session the crash-free run does not have (a deleted one, a child
/// run twice); parents and children agree.
pub fn check_finals(
    run: u64,
    keep_all: bool,
    clients: &Clients,
    reference: &BTreeMap<String, Option<Final>>,
    finals: &BTreeMap<String, Option<Final>>,
    report: &mut Report,
) {
    for (id, expected) in reference {
        let Some(expected) = expected else {
            report.other(format!("{id}: the crash-free run's state does not decode"));
            continue;
        };
        match finals.get(id) {
            None | Some(None) => report.lost(id, "missing from the store".to_owned()),
            Some(Some(got)) if got.status != expected.status => report.lost(
                id,
                format!(
                    "ended {:?}, the crash-free run {:?}: {}",
                    got.status, expected.status, got.normalized
                ),
            ),
            Some(Some(got)) if got.normalized != expected.normalized => report.lost(
                id,
                format!(
                    "final state\n    {}\n  differs from the crash-free run's\n    {}",
                    got.normalized, expected.normalized
                ),
            ),
            Some(Some(got)) => {
                if keep_all && got.audits != expected.audits {
                    report.other(format!(
                        "{id}: its history records {:?}, the crash-free run's {:?}",
                        got.audits, expected.audits
                    ));
                }
                check_effects(run, id, got, report);
            }
        }
    }
    for id in finals.keys().filter(|id| !reference.contains_key(*id)) {
        report.other(format!(
            "{id}: a session the crash-free run does not have (a child run twice, or one not deleted?)"
        ));
    }
    for (id, found) in finals {
        let Some(found) = found else {
            continue;
        };
        check_parent(id, found, finals, report);
        if let Some(deal) = found.state::<Deal>() {
            check_racy(id, deal, clients, report);
        }
    }
}

/// A final state's effects: each key committed once, each seen in the ledger, and each
/// interrupt step run with one input only.
fn check_effects(run: u64, id: &str, got: &Final, report: &mut Report) {
    let twice = twice(&got.marks.iter().map(String::as_str).collect::<Vec<_>>());
    if !twice.is_empty() {
        report.forked(id, format!("committed effects twice: {twice:?}"));
    }
    for mark in &got.marks {
        if !ledger::seen(run, mark) {
            report.other(format!("{id}: committed effect {mark} was never seen"));
        }
        if let Some((key, _)) = ledger::split(mark) {
            let inputs = ledger::inputs(run, key);
            if inputs.len() > 1 {
                report.other(format!(
                    "{id}: the interrupt step {key} ran with different inputs: {inputs:?}"
                ));
            }
        }
    }
}

/// Children and parents agree: a completed parent holds its children's final results.
fn check_parent(
    id: &str,
    found: &Final,
    finals: &BTreeMap<String, Option<Final>>,
    report: &mut Report,
) {
    if found.status != Status::Completed {
        return;
    }
    if let Some(ticket) = found.state::<Ticket>() {
        let children = under(finals, &format!("{id}/research/"));
        let agree = match children.as_slice() {
            [(_, Some(child))] => {
                child.status == Status::Completed && {
                    let q = child.state::<Question>();
                    q.is_some_and(|q| q.marks == ticket.child_marks && q.summary == ticket.notes)
                }
            }
            _ => false,
        };
        if !agree {
            report.other(format!(
                "{id}: completed, but does not hold the result of one completed child ({} child session(s))",
                children.len()
            ));
        }
    }
    if let Some(claim) = found.state::<Claim>() {
        let children = under(finals, &format!("{id}/assess/"));
        let results: Option<Vec<(u32, String, Vec<String>)>> = children
            .iter()
            .map(|(_, child)| {
                let child = child.as_ref()?;
                let line = child.state::<Line>()?;
                (child.status == Status::Completed)
                    .then(|| (line.payable, line.checked_by.clone(), line.marks.clone()))
            })
            .collect();
        let mut by_item: Vec<_> = children
            .iter()
            .filter_map(|(c, _)| c.rsplit('/').next()?.parse::<usize>().ok())
            .zip(results.unwrap_or_default())
            .collect();
        by_item.sort_by_key(|(item, _)| *item);
        let held: Vec<_> = claim
            .assessed
            .iter()
            .enumerate()
            .map(|(item, a)| {
                (
                    item,
                    (a.payable, a.checked_by.clone(), a.child_marks.clone()),
                )
            })
            .collect();
        if by_item != held || held.len() != claim.lines.len() {
            report.other(format!(
                "{id}: completed with {} line(s), holding {} result(s), of {} completed child session(s) that agree",
                claim.lines.len(),
                held.len(),
                by_item.len()
            ));
        }
    }
}

/// `racy` ran with its answer or without it: an answer the runner accepted must be what
/// it ran with.
fn check_racy(id: &str, deal: &Deal, clients: &Clients, report: &mut Report) {
    let Some(racy) = deal.branches.get(2) else {
        return;
    };
    let verdict = racy.split_once('=').map_or("", |(_, v)| v);
    let answer = format!("{id}:racy");
    let accepted = clients.was_accepted(id, "racy");
    if verdict != answer && (accepted || verdict != "escalated") {
        report.other(format!(
            "{id}: `racy` ended with {verdict:?} (its answer {} accepted)",
            if accepted { "was" } else { "was not" }
        ));
    }
}
