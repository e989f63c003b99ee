//! Checkpoints that outlive the code that wrote them, on hand-written `Workflow` impls: schema
//! fingerprints and migrations, accepted older graphs and renamed nodes, first-release
//! envelopes, incremental checkpoints and the adaptive policy. (The macro's output for the same
//! features is tested in the workspace's integration tests.)
#![allow(clippy::manual_async_fn)] // the hand-written impls spell out what the macro generates

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::__private::{Execute, Transition};
use crate::checkpoint::{self, Header};
use crate::store::{Append, Checkpoint, Store};
use crate::{
    CheckpointPolicy, Error, MemoryStore, NodeCheckpoint, NodeCtx, NodeSpec, Outcome, Retention,
    Runner, Status, Workflow,
};

/// The first version of the state: a counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StateV1 {
    n: u32,
}

/// The second version: a note added after the counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct StateV2 {
    n: u32,
    note: String,
}

impl From<StateV1> for StateV2 {
    fn from(old: StateV1) -> Self {
        StateV2 {
            n: old.n,
            note: "migrated".to_owned(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum Input {
    /// Add this much; `u32::MAX` makes the node fail after its input was recorded.
    Approve(u32),
}

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}
impl std::error::Error for Refused {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cursor {
    Bump,
    Approve,
}

/// Anything with a counter.
trait Counter: Serialize + serde::de::DeserializeOwned + Send + 'static {
    fn n(&mut self) -> &mut u32;
}
impl Counter for StateV1 {
    fn n(&mut self) -> &mut u32 {
        &mut self.n
    }
}
impl Counter for StateV2 {
    fn n(&mut self) -> &mut u32 {
        &mut self.n
    }
}

/// `bump -> approve -> END`, where `approve` is an interrupt. The const parameters are what a
/// release can change: the graph hash, the state schema, the input schema, the name of the
/// interrupt node (`RENAMED`: it is called `approve` and was called `review`).
struct Flow<T, const HASH: u64, const SCHEMA: u64, const INPUT: u64, const RENAMED: bool>(
    std::marker::PhantomData<fn() -> T>,
);

impl<T, const H: u64, const S: u64, const I: u64, const R: bool> Flow<T, H, S, I, R> {
    fn new() -> Self {
        Flow(std::marker::PhantomData)
    }
}

const BUMP: NodeSpec = NodeSpec::new("bump");
const REVIEW: NodeSpec = NodeSpec::new("review").interrupt();
const APPROVE: NodeSpec = NodeSpec::new("approve")
    .interrupt()
    .renamed_from(&["review"]);

const OLD_HASH: u64 = 0x01d;
const NEW_HASH: u64 = 0x2e3;
const V1: u64 = 0x0001;
const V2: u64 = 0x0002;
const INPUT: u64 = 0x1b;

/// What a release accepts: the first release's hash.
const ACCEPTS_OLD: &[u64] = &[OLD_HASH];

trait Release {
    const ACCEPTED: &'static [u64];
    const MIGRATES: &'static [u64];
}

impl<T: Counter, const H: u64, const S: u64, const I: u64, const R: bool> crate::__private::Sealed
    for Flow<T, H, S, I, R>
{
}

impl<T: Counter, const H: u64, const S: u64, const I: u64, const R: bool> Workflow
    for Flow<T, H, S, I, R>
where
    Self: Release,
{
    type State = T;
    type Input = Input;
    type Exec = Self;
    const NAME: &'static str = "flow";
    const GRAPH_HASH: u64 = H;
    const NODES: &'static [&'static str] = if R {
        &["bump", "approve"]
    } else {
        &["bump", "review"]
    };
    const MERMAID: &'static str = "";
    const STATE_SCHEMA: u64 = S;
    const INPUT_SCHEMA: u64 = I;
    const MIGRATES_FROM: &'static [u64] = <Self as Release>::MIGRATES;
    const ACCEPTED_GRAPHS: &'static [u64] = <Self as Release>::ACCEPTED;
}

impl<T: Counter, const H: u64, const S: u64, const I: u64, const R: bool> Execute<Self>
    for Flow<T, H, S, I, R>
where
    Self: Release,
{
    type Cursor = Cursor;
    const ENTRY: Cursor = Cursor::Bump;

    fn migrate_state(
        schema: u64,
        bytes: &[u8],
    ) -> Option<Result<(T, usize), crate::__private::DecodeError>> {
        if !Self::MIGRATES_FROM.contains(&schema) {
            return None;
        }
        // Only `StateV1 -> StateV2` is listed in these tests.
        let decoded = crate::__private::decode_prefix::<StateV1>(bytes);
        Some(decoded.and_then(|(old, read)| {
            let new: StateV2 = old.into();
            let bytes = checkpoint::encode_rollback("", &new).expect("encodes");
            let (value, _) = crate::__private::decode_prefix::<T>(&bytes)?;
            Ok((value, read))
        }))
    }

    fn spec(cursor: Cursor) -> &'static NodeSpec {
        match cursor {
            Cursor::Bump => &BUMP,
            Cursor::Approve if R => &APPROVE,
            Cursor::Approve => &REVIEW,
        }
    }

    fn cursor_of(name: &str) -> Option<Cursor> {
        match name {
            "bump" => Some(Cursor::Bump),
            "approve" if R => Some(Cursor::Approve),
            "review" => Some(Cursor::Approve),
            _ => None,
        }
    }

    fn input_node(_: &Input) -> Cursor {
        Cursor::Approve
    }

    fn step<'a>(
        _: &'a Self,
        cursor: Cursor,
        state: &'a mut T,
        _ctx: &'a NodeCtx,
        input: Option<Input>,
    ) -> impl Future<Output = Transition<Cursor>> + Send + 'a {
        async move {
            match (cursor, input) {
                (Cursor::Bump, _) => {
                    *state.n() += 1;
                    Transition::Next(Cursor::Approve)
                }
                (Cursor::Approve, Some(Input::Approve(u32::MAX))) => {
                    Transition::FailedPermanently(Box::new(Refused))
                }
                (Cursor::Approve, Some(Input::Approve(add))) => {
                    *state.n() += add;
                    Transition::End
                }
                (Cursor::Approve, None) => Transition::MissingInput,
            }
        }
    }
}

/// The first release.
type First = Flow<StateV1, OLD_HASH, V1, INPUT, false>;
/// The state gained a field, with a migration from the first release's state.
type Migrating = Flow<StateV2, OLD_HASH, V2, INPUT, false>;
/// The input type changed.
type NewInput = Flow<StateV1, OLD_HASH, V1, 0x2c, false>;
/// The interrupt node was renamed from `review` to `approve`; the old graph is accepted.
type Renamed = Flow<StateV1, NEW_HASH, V1, INPUT, true>;
/// The graph changed and the old one is not accepted.
type Changed = Flow<StateV1, NEW_HASH, V1, INPUT, false>;

impl Release for First {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[];
}
impl Release for Flow<StateV2, OLD_HASH, V2, INPUT, false> {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[V1];
}
impl Release for NewInput {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[];
}
impl Release for Renamed {
    const ACCEPTED: &'static [u64] = ACCEPTS_OLD;
    const MIGRATES: &'static [u64] = &[];
}
impl Release for Changed {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[];
}
/// The graph with the interrupt node removed entirely would name no `review`; modelled as a
/// release that accepts the old graph but does not know the old name.
type Removed = Flow<StateV1, NEW_HASH, 0x0001, 0x1c, true>;
impl Release for Removed {
    const ACCEPTED: &'static [u64] = ACCEPTS_OLD;
    const MIGRATES: &'static [u64] = &[];
}

fn runner<W: Workflow>(workflow: W, store: &MemoryStore) -> Runner<W, MemoryStore> {
    Runner::new(workflow, store.clone())
}

/// A session of the first release, waiting at `review` with `n == 1`.
async fn waiting_session(store: &MemoryStore, session: &str) {
    let out = runner(First::new(), store)
        .start(session, StateV1 { n: 0 })
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Interrupted { node: "review", .. }));
}

#[tokio::test]
async fn a_state_of_another_schema_is_refused_not_misread() {
    let store = MemoryStore::new();
    waiting_session(&store, "s").await;
    // A release whose state has another schema and lists no migration from V1.
    let stranger = runner(
        Flow::<StateV2, OLD_HASH, 0x0003, INPUT, false>::new(),
        &store,
    );
    for result in [
        stranger.state("s").await.map(|_| ()),
        stranger.resume("s").await.map(|_| ()),
        stranger
            .resume_with("s", Input::Approve(1))
            .await
            .map(|_| ()),
    ] {
        match result {
            Err(Error::SchemaMismatch {
                what: "state",
                stored: V1,
                compiled: 0x0003,
                seq: 1,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
    // Nothing was written by the refused calls.
    assert_eq!(store.list("s").await.unwrap().len(), 2);
}

impl Release for Flow<StateV2, OLD_HASH, 0x0003, INPUT, false> {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[];
}

#[tokio::test]
async fn an_old_state_is_migrated_and_the_next_checkpoint_has_the_new_schema() {
    let store = MemoryStore::new();
    waiting_session(&store, "s").await;
    let new = runner(Migrating::new(), &store);
    let snapshot = new.state("s").await.unwrap().unwrap();
    assert_eq!(
        snapshot.state,
        StateV2 {
            n: 1,
            note: "migrated".into()
        }
    );
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "review".into()
        }
    );
    let out = new.resume_with("s", Input::Approve(5)).await.unwrap();
    assert_eq!(
        out,
        Outcome::Completed(StateV2 {
            n: 6,
            note: "migrated".into()
        })
    );
    // Old history stays readable through the migration: fork the first checkpoint.
    let forked = new.fork("s", 0, "s-old").await.unwrap();
    assert_eq!(forked.state.n, 0);
    // The checkpoints written after the migration are in the new schema: a release that no
    // longer lists the old type reads them, but not the old ones.
    let latest = store.latest("s").await.unwrap().unwrap();
    let envelope = checkpoint::open("s", latest.seq, &latest.bytes).unwrap();
    assert_eq!(envelope.state_schema, Some(V2));
    let strict = runner(Flow::<StateV2, OLD_HASH, V2, INPUT, true>::new(), &store);
    assert_eq!(strict.state("s").await.unwrap().unwrap().state.n, 6);
    assert!(matches!(
        strict.fork("s", 0, "s-again").await,
        Err(Error::SchemaMismatch { stored: V1, .. })
    ));
}

impl Release for Flow<StateV2, OLD_HASH, V2, INPUT, true> {
    const ACCEPTED: &'static [u64] = &[];
    const MIGRATES: &'static [u64] = &[];
}

#[tokio::test]
async fn a_recorded_input_of_another_schema_is_refused() {
    let store = MemoryStore::new();
    waiting_session(&store, "s").await;
    // The input is recorded, then the node fails: the latest checkpoint holds the input.
    let first = runner(First::new(), &store);
    assert!(matches!(
        first.resume_with("s", Input::Approve(u32::MAX)).await,
        Err(Error::Node { node: "review", .. })
    ));
    let latest = store.latest("s").await.unwrap().unwrap();
    let envelope = checkpoint::open("s", latest.seq, &latest.bytes).unwrap();
    assert_eq!(envelope.input_schema, Some(INPUT));
    match runner(NewInput::new(), &store).resume("s").await {
        Err(Error::SchemaMismatch {
            what: "recorded input",
            stored: INPUT,
            compiled: 0x2c,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_renamed_interrupt_node_moves_on_under_an_accepted_graph() {
    let store = MemoryStore::new();
    waiting_session(&store, "s").await;
    // Without accepting the old graph: refused, with both hashes.
    match runner(Changed::new(), &store).resume("s").await {
        Err(Error::GraphMismatch {
            stored: OLD_HASH,
            compiled: NEW_HASH,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let renamed = runner(Renamed::new(), &store);
    let snapshot = renamed.state("s").await.unwrap().unwrap();
    assert_eq!(snapshot.node, "approve", "reported under its new name");
    assert_eq!(snapshot.waiting, ["approve"], "waits under its new name");
    assert_eq!(
        runner(First::new(), &store)
            .state("s")
            .await
            .unwrap()
            .unwrap()
            .waiting,
        ["review"],
        "the first release still calls it `review`"
    );
    assert!(matches!(
        renamed.resume("s").await.unwrap(),
        Outcome::Interrupted {
            node: "approve",
            ..
        }
    ));
    let out = renamed.resume_with("s", Input::Approve(2)).await.unwrap();
    assert_eq!(out, Outcome::Completed(StateV1 { n: 3 }));
}

#[tokio::test]
async fn a_session_at_a_removed_node_names_the_session_and_node() {
    let store = MemoryStore::new();
    waiting_session(&store, "order-7").await;
    // `Removed` accepts the old graph but calls no node `review` (its `cursor_of` maps the old
    // name only because of `renamed_from`; here we ask for a name neither release has).
    let runner = runner(Removed::new(), &store);
    let checkpoint = Checkpoint {
        node: "gone".into(),
        ..store.latest("order-7").await.unwrap().unwrap()
    };
    // Re-store the waiting checkpoint under a node name this release does not have.
    let envelope = checkpoint::open("order-7", checkpoint.seq, &checkpoint.bytes).unwrap();
    let body = envelope.body.to_vec();
    let header = Header {
        session: "order-7",
        graph_hash: OLD_HASH,
        seq: 2,
        status: crate::store::status_code::WAITING,
        node: "gone",
        state_schema: V1,
        input_schema: 0,
    };
    let bytes = checkpoint::seal(
        &header,
        checkpoint::BodyKind::default(),
        None,
        &body,
        checkpoint::Seal::Now,
    )
    .unwrap();
    store
        .append(
            "order-7",
            Append::new(
                Some(1),
                Checkpoint {
                    seq: 2,
                    bytes,
                    ..checkpoint
                },
                None,
            ),
        )
        .await
        .unwrap();
    match runner.resume("order-7").await {
        Err(e @ Error::UnknownNode { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("order-7") && message.contains("`gone`"),
                "{message}"
            );
            assert!(message.contains("renamed_from"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Still readable: waiting, at a node this graph cannot name, so `waiting` leaves it out.
    let snapshot = runner.state("order-7").await.unwrap().unwrap();
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "gone".into()
        }
    );
    assert!(snapshot.waiting.is_empty());
}

/// A checkpoint exactly as the first release wrote it (envelope version 1, which stored no
/// fingerprint), built from its documented layout.
fn version_1_envelope(session: &str, seq: u64, node: &str, waiting: bool, body: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(b"GRCP");
    buf.extend_from_slice(&[1, 1, u8::from(waiting), 0]);
    buf.extend_from_slice(&OLD_HASH.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&(node.len() as u16).to_le_bytes());
    buf.extend_from_slice(node.as_bytes());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(body);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&(session.len() as u32).to_le_bytes());
    hasher.update(session.as_bytes());
    hasher.update(&buf);
    buf.extend_from_slice(&hasher.finalize().to_le_bytes());
    buf
}

#[tokio::test]
async fn first_release_checkpoints_keep_opening() {
    let store = MemoryStore::new();
    let body = checkpoint::encode_rollback(
        "",
        &(StateV1 { n: 41 }, None::<Input>, None::<crate::Failure>),
    )
    .unwrap();
    let bytes = version_1_envelope("old", 1, "review", true, &body);
    let saved = Checkpoint {
        seq: 1,
        node: "review".into(),
        status: Status::Waiting {
            node: "review".into(),
        },
        created_at: std::time::SystemTime::now(),
        bytes,
        depends_on: None,
        seal_later: None,
    };
    store
        .append("old", Append::new(None, saved, None))
        .await
        .unwrap();
    // Read as the compiled schema (a version-1 checkpoint recorded none), by the renamed
    // release that accepts the old graph.
    let renamed = runner(Renamed::new(), &store);
    let out = renamed.resume_with("old", Input::Approve(1)).await.unwrap();
    assert_eq!(out, Outcome::Completed(StateV1 { n: 42 }));
}

/// A growing state: an agent's transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Transcript {
    turn: u32,
    limit: u32,
    lines: Vec<String>,
}

/// The agent waits for nobody.
#[derive(Debug, Serialize, Deserialize)]
enum NoInput {}

/// `talk -> talk | END`, appending a 1 KiB line each turn; `pause` is an interrupt every
/// `pause_every` turns.
struct Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentCursor {
    Talk,
    Think,
}

const TALK: NodeSpec = NodeSpec::new("talk");
const THINK_ALWAYS: NodeSpec = NodeSpec::new("think").checkpoint(NodeCheckpoint::Always);

impl crate::__private::Sealed for Agent {}

impl Workflow for Agent {
    type State = Transcript;
    type Input = NoInput;
    const NAME: &'static str = "agent";
    const GRAPH_HASH: u64 = 0xa9e;
    const NODES: &'static [&'static str] = &["talk", "think"];
    const MERMAID: &'static str = "";
    const STATE_SCHEMA: u64 = 0x7a;

    type Exec = Agent;
}

impl crate::__private::Execute<Agent> for Agent {
    type Cursor = AgentCursor;
    const ENTRY: AgentCursor = AgentCursor::Talk;
    fn spec(cursor: AgentCursor) -> &'static NodeSpec {
        match cursor {
            AgentCursor::Talk => &TALK,
            AgentCursor::Think => &THINK_ALWAYS,
        }
    }
    fn cursor_of(name: &str) -> Option<AgentCursor> {
        match name {
            "talk" => Some(AgentCursor::Talk),
            "think" => Some(AgentCursor::Think),
            _ => None,
        }
    }
    fn input_node(input: &NoInput) -> AgentCursor {
        match *input {}
    }
    fn step<'a>(
        _: &'a Agent,
        cursor: AgentCursor,
        state: &'a mut Transcript,
        _ctx: &'a NodeCtx,
        _input: Option<NoInput>,
    ) -> impl Future<Output = Transition<AgentCursor>> + Send + 'a {
        async move {
            match cursor {
                AgentCursor::Talk => {
                    state.turn += 1;
                    state.lines.push(line(state.turn));
                    if state.turn >= state.limit {
                        Transition::End
                    } else if state.turn.is_multiple_of(10) {
                        Transition::Next(AgentCursor::Think)
                    } else {
                        Transition::Next(AgentCursor::Talk)
                    }
                }
                AgentCursor::Think => Transition::Next(AgentCursor::Talk),
            }
        }
    }
}

/// Turn `turn`'s line: 1 KiB that differs from every other turn's.
fn line(turn: u32) -> String {
    let mut text = format!("turn {turn}: ");
    while text.len() < 1024 {
        text.push_str(&format!(
            "{:x}",
            (turn as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ));
    }
    text.truncate(1024);
    text
}

fn transcript_after(turns: u32, limit: u32) -> Transcript {
    Transcript {
        turn: turns,
        limit,
        lines: (1..=turns).map(line).collect(),
    }
}

async fn stored_bytes(store: &MemoryStore, session: &str) -> u64 {
    store
        .list(session)
        .await
        .unwrap()
        .iter()
        .map(|c| c.bytes)
        .sum()
}

#[tokio::test]
async fn a_growing_state_is_stored_incrementally_and_every_checkpoint_reads_back() {
    let store = MemoryStore::new();
    let runner = Runner::new(Agent, store.clone());
    let turns = 300;
    let out = runner
        .start(
            "a",
            Transcript {
                limit: turns,
                ..Transcript::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out, Outcome::Completed(transcript_after(turns, turns)));
    let appended = u64::from(turns) * 1024;
    let stored = stored_bytes(&store, "a").await;
    assert!(
        stored <= 3 * appended,
        "{stored} bytes stored for {appended} appended"
    );
    // Full copies would have cost about turns²/2 KiB.
    let history = store.list("a").await.unwrap();
    assert!(history.len() > turns as usize, "every step was saved");
    // Every kept checkpoint reads back on its own terms: fork each and compare.
    let mut seen = 0;
    for meta in &history {
        let fork = format!("a@{}", meta.seq);
        let snapshot = runner.fork("a", meta.seq, &fork).await.unwrap();
        assert_eq!(snapshot.state, transcript_after(snapshot.state.turn, turns));
        let read = runner.state_at("a", meta.seq).await.unwrap().unwrap();
        assert_eq!((read.seq, read.state), (meta.seq, snapshot.state));
        seen += 1;
    }
    assert!(runner.state_at("a", 1 << 40).await.unwrap().is_none());
    assert!(runner.state_at("nobody", 0).await.unwrap().is_none());
    assert_eq!(seen, history.len());
    // Forks are self-contained.
    let fork = store.latest("a@5").await.unwrap().unwrap();
    assert_eq!(fork.depends_on, None);
}

#[tokio::test]
async fn a_resumed_session_extends_its_delta_chain() {
    let store = MemoryStore::new();
    let runner = Runner::new(Agent, store.clone()).max_steps(40);
    let start = Transcript {
        limit: 100,
        ..Transcript::default()
    };
    assert!(matches!(
        runner.start("a", start).await,
        Err(Error::StepLimit { .. })
    ));
    let before = store.latest("a").await.unwrap().unwrap();
    assert!(before.depends_on.is_some(), "a delta at the step limit");
    // A new runner (a restarted process) continues the same chain.
    let restarted = Runner::new(Agent, store.clone());
    let out = restarted.resume("a").await.unwrap();
    assert_eq!(out, Outcome::Completed(transcript_after(100, 100)));
    let after = store.latest("a").await.unwrap().unwrap();
    assert_eq!(
        after.depends_on, before.depends_on,
        "the same chain, not a new one"
    );
}

#[tokio::test]
async fn retention_keeps_the_chain_its_checkpoints_need() {
    let store = MemoryStore::new();
    let runner = Runner::new(Agent, store.clone()).retention(Retention::KeepLast(3));
    runner
        .start(
            "a",
            Transcript {
                limit: 120,
                ..Transcript::default()
            },
        )
        .await
        .unwrap();
    let history = store.list("a").await.unwrap();
    // At least the three newest are kept, and each of them reads back.
    assert!(history.len() >= 3);
    for meta in history.iter().rev().take(3) {
        let fork = format!("a@{}", meta.seq);
        let snapshot = runner.fork("a", meta.seq, &fork).await.unwrap();
        assert_eq!(snapshot.state, transcript_after(snapshot.state.turn, 120));
    }
    // And the chain does not grow without bound: a full checkpoint starts a new one.
    let appended = 120 * 1024;
    assert!(stored_bytes(&store, "a").await <= 4 * appended as u64);
}

#[tokio::test]
async fn small_states_are_always_stored_whole() {
    let store = MemoryStore::new();
    let runner = Runner::new(Agent, store.clone());
    // Ten turns of 1 KiB: the body stays under the delta threshold for the first turns.
    runner
        .start(
            "a",
            Transcript {
                limit: 3,
                ..Transcript::default()
            },
        )
        .await
        .unwrap();
    for meta in store.list("a").await.unwrap() {
        let checkpoint = store.get("a", meta.seq).await.unwrap().unwrap();
        assert_eq!(checkpoint.depends_on, None, "seq {}", meta.seq);
    }
}

#[tokio::test]
async fn adaptive_policy_saves_at_always_nodes_and_when_the_budget_is_spent() {
    let store = MemoryStore::new();
    // A budget no test run reaches: only `think` (checkpoint = always), the start and the
    // end are saved.
    let lazy = Runner::new(Agent, store.clone()).checkpoint_policy(CheckpointPolicy::Adaptive {
        budget: Duration::from_secs(3600),
    });
    lazy.start(
        "lazy",
        Transcript {
            limit: 35,
            ..Transcript::default()
        },
    )
    .await
    .unwrap();
    let nodes: Vec<String> = store
        .list("lazy")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    // Start at `talk`; after each `think` (turns 10, 20, 30) the cursor is `talk`; the end.
    assert_eq!(nodes, ["talk", "talk", "talk", "talk", "END"], "{nodes:?}");
    // A zero budget saves after every node, like `EveryStep`.
    let eager = Runner::new(Agent, store.clone()).checkpoint_policy(CheckpointPolicy::Adaptive {
        budget: Duration::ZERO,
    });
    eager
        .start(
            "eager",
            Transcript {
                limit: 12,
                ..Transcript::default()
            },
        )
        .await
        .unwrap();
    // 12 talks + 1 think + the start.
    assert_eq!(store.list("eager").await.unwrap().len(), 14);
}

#[tokio::test]
async fn an_always_node_is_saved_even_under_on_interrupt() {
    let store = MemoryStore::new();
    let runner = Runner::new(Agent, store.clone()).checkpoint_policy(CheckpointPolicy::OnInterrupt);
    runner
        .start(
            "a",
            Transcript {
                limit: 25,
                ..Transcript::default()
            },
        )
        .await
        .unwrap();
    // The start, after `think` at turns 10 and 20, and the end.
    let seqs: Vec<u64> = store
        .list("a")
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs.len(), 4, "{seqs:?}");
}
