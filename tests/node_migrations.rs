//! `#[node(migrate_from = [...])]` and the `Execute` items that let a new build read the
//! branch outputs and map items an older build saved: `CANONICAL`, `FINGERPRINTS`,
//! `output_schema`, `item_schema`, `migrate_output` and `migrate_item`, called directly through
//! the hidden trait on a small graph with an interrupt, a fan-out and a map. (The runner uses
//! them when it loads a session; these tests only check what the macro generates.)

use graph_runtime::__private::{Execute, Fingerprint, decode_item, encode_output};
use graph_runtime::Workflow as _;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub total_cents: u64,
    pub risky: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Approval {
    pub approved: bool,
}

/// The fraud branch's output today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Score {
    pub value: u32,
    pub source: String,
}

/// The fraud branch's output one release ago.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct ScoreV1 {
    pub value: u32,
}

/// The fraud branch's output in the first release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct ScoreV0(pub u8);

impl From<ScoreV1> for Score {
    fn from(old: ScoreV1) -> Score {
        Score {
            value: old.value,
            source: "v1".to_owned(),
        }
    }
}

impl From<ScoreV0> for Score {
    fn from(old: ScoreV0) -> Score {
        Score {
            value: u32::from(old.0),
            source: "v0".to_owned(),
        }
    }
}

/// A map item today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Line {
    pub sku: String,
    pub cents: u64,
}

/// A map item one release ago.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct LineV1 {
    pub cents: u64,
}

impl From<LineV1> for Line {
    fn from(old: LineV1) -> Line {
        Line {
            sku: "unknown".to_owned(),
            cents: old.cents,
        }
    }
}

#[workflow(state = Claim)]
pub mod claims {
    use super::*;

    edge!(START -> review);
    edge!(review -> intake);
    edge!(intake -> fraud & coverage);
    edge!(fraud & coverage -> decide);
    edge!(decide -> plan);
    edge!(plan -> each assess);
    edge!(assess -> total);
    edge!(total -> END);

    #[node(interrupt)]
    async fn review(c: &mut Claim, approval: Approval) {
        c.risky = !approval.approved;
    }

    #[node]
    async fn intake(_c: &mut Claim) {}

    /// Saved outputs of `ScoreV1` and `ScoreV0` still open.
    #[node(migrate_from = [ScoreV1, ScoreV0])]
    async fn fraud(c: &Claim) -> Score {
        Score {
            value: u32::from(c.risky),
            source: "model".to_owned(),
        }
    }

    #[node]
    async fn coverage(c: &Claim) -> bool {
        c.total_cents > 0
    }

    #[node]
    async fn decide(c: &mut Claim, fraud: Score, coverage: bool) {
        c.risky = fraud.value > 0 || !coverage;
    }

    /// Saved items of `LineV1` still open (the items of the map after this node).
    #[node(migrate_from = [LineV1])]
    async fn plan(c: &mut Claim) -> Vec<Line> {
        vec![Line {
            sku: "a".to_owned(),
            cents: c.total_cents,
        }]
    }

    /// A map node's own `migrate_from` lists older types of its output (`u32` converts into
    /// `u64` with std's `From`).
    #[node(migrate_from = [u32])]
    async fn assess(_c: &Claim, item: Line) -> u64 {
        item.cents
    }

    #[node]
    async fn total(c: &mut Claim, assess: Vec<u64>) {
        c.total_cents = assess.iter().sum();
    }
}

type Exec = <claims::Workflow as graph_runtime::Workflow>::Exec;
type Cursor = <Exec as Execute<claims::Workflow>>::Cursor;

fn cursor(name: &str) -> Cursor {
    <Exec as Execute<claims::Workflow>>::cursor_of(name).expect("a node of the graph")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    encode_output(value).expect("encodes")
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[test]
fn canonical_is_the_text_of_today() {
    let text = <Exec as Execute<claims::Workflow>>::CANONICAL;
    assert!(
        text.starts_with("graph-runtime/v2\nworkflow claims\n"),
        "{text}"
    );
    for line in [
        "entry review",
        "node review interrupt",
        "fan-out intake->fraud&coverage",
        "join fraud&coverage->decide",
        "map plan->assess",
        "join each assess->total",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // Older types are not structure: no line names them.
    assert!(!text.contains("Score") && !text.contains("Line"), "{text}");
}

#[test]
fn fingerprints_list_every_type_in_the_hash() {
    let fingerprints = <Exec as Execute<claims::Workflow>>::FINGERPRINTS;
    assert_eq!(
        fingerprints,
        &[
            ("input", "review", <Approval as StateSchema>::SCHEMA),
            ("item", "assess", <Line as StateSchema>::SCHEMA),
            ("output", "assess", <u64 as StateSchema>::SCHEMA),
            ("output", "coverage", <bool as StateSchema>::SCHEMA),
            ("output", "fraud", <Score as StateSchema>::SCHEMA),
        ]
    );
    // They are exactly what `GRAPH_HASH` combines with the text's hash: inputs by name, then
    // outputs, then items (each of those two named with its kind).
    let mut hash = Fingerprint::new("graph-runtime/v2 graph").u64(fnv1a64(
        <Exec as Execute<claims::Workflow>>::CANONICAL.as_bytes(),
    ));
    for kind in ["input", "output", "item"] {
        for &(k, node, fingerprint) in fingerprints.iter().filter(|f| f.0 == kind) {
            let part = if k == "input" {
                node.to_owned()
            } else {
                format!("{k} {node}")
            };
            hash = hash.str(&part).u64(fingerprint);
        }
    }
    assert_eq!(hash.finish(), claims::GRAPH_HASH);
    assert_eq!(claims::Workflow::GRAPH_HASH, claims::GRAPH_HASH);
}

#[test]
fn output_and_item_schemas_by_node() {
    let output = <Exec as Execute<claims::Workflow>>::output_schema;
    let item = <Exec as Execute<claims::Workflow>>::item_schema;
    assert_eq!(output(cursor("fraud")), <Score as StateSchema>::SCHEMA);
    assert_eq!(output(cursor("coverage")), <bool as StateSchema>::SCHEMA);
    assert_eq!(output(cursor("assess")), <u64 as StateSchema>::SCHEMA);
    assert_eq!(item(cursor("assess")), <Line as StateSchema>::SCHEMA);
    // Nodes that save no output or item of their own.
    for name in ["review", "intake", "decide", "plan", "total"] {
        assert_eq!(output(cursor(name)), 0, "{name}");
        assert_eq!(item(cursor(name)), 0, "{name}");
    }
    assert_eq!(item(cursor("fraud")), 0);
}

#[test]
fn old_outputs_migrate_to_the_current_type() {
    let migrate = <Exec as Execute<claims::Workflow>>::migrate_output;
    let fraud = cursor("fraud");

    let v1 = encode(&ScoreV1 { value: 7 });
    let bytes = migrate(fraud, <ScoreV1 as StateSchema>::SCHEMA, &v1)
        .expect("`ScoreV1` is listed")
        .expect("decodes and converts");
    let score: Score = decode_item(&bytes).expect("the current type");
    assert_eq!(
        score,
        Score {
            value: 7,
            source: "v1".to_owned()
        }
    );

    let v0 = encode(&ScoreV0(3));
    let bytes = migrate(fraud, <ScoreV0 as StateSchema>::SCHEMA, &v0)
        .expect("`ScoreV0` is listed")
        .expect("decodes and converts");
    assert_eq!(decode_item::<Score>(&bytes).expect("decodes").source, "v0");

    // Not listed: the current type itself, another type, another node.
    assert!(migrate(fraud, <Score as StateSchema>::SCHEMA, &v1).is_none());
    assert!(migrate(fraud, <LineV1 as StateSchema>::SCHEMA, &v1).is_none());
    assert!(migrate(cursor("coverage"), <ScoreV1 as StateSchema>::SCHEMA, &v1).is_none());
    // Items are not outputs.
    let item = encode(&LineV1 { cents: 1 });
    assert!(migrate(cursor("assess"), <LineV1 as StateSchema>::SCHEMA, &item).is_none());
    // The map node's outputs, one per item.
    let bytes = migrate(
        cursor("assess"),
        <u32 as StateSchema>::SCHEMA,
        &encode(&5_u32),
    )
    .expect("`u32` is listed")
    .expect("decodes and converts");
    assert_eq!(
        decode_item::<u64>(&bytes).expect("the current output type"),
        5
    );

    // Damaged or trailing bytes are errors, never panics.
    assert!(matches!(
        migrate(fraud, <ScoreV1 as StateSchema>::SCHEMA, &[0xff; 3]),
        Some(Err(_))
    ));
    let mut trailing = v1.clone();
    trailing.push(0);
    assert!(matches!(
        migrate(fraud, <ScoreV1 as StateSchema>::SCHEMA, &trailing),
        Some(Err(_))
    ));
}

#[test]
fn old_items_migrate_through_the_map_node() {
    let migrate = <Exec as Execute<claims::Workflow>>::migrate_item;
    let old = encode(&LineV1 { cents: 250 });
    // Declared on `plan`, keyed by the map node `assess`.
    let bytes = migrate(cursor("assess"), <LineV1 as StateSchema>::SCHEMA, &old)
        .expect("`LineV1` is listed")
        .expect("decodes and converts");
    assert_eq!(
        decode_item::<Line>(&bytes).expect("the current item type"),
        Line {
            sku: "unknown".to_owned(),
            cents: 250
        }
    );
    assert!(migrate(cursor("plan"), <LineV1 as StateSchema>::SCHEMA, &old).is_none());
    assert!(migrate(cursor("assess"), <Line as StateSchema>::SCHEMA, &old).is_none());
    assert!(
        <Exec as Execute<claims::Workflow>>::migrate_output(
            cursor("assess"),
            <LineV1 as StateSchema>::SCHEMA,
            &old
        )
        .is_none()
    );
}

/// A graph without parallel regions or `migrate_from` has the text and its inputs, and the
/// trait's defaults for the rest.
mod sequential {
    use super::*;

    #[workflow(state = Claim)]
    pub mod checkout {
        use super::*;

        edge!(START -> review);
        edge!(review -> END);

        #[node(interrupt)]
        async fn review(_c: &mut Claim, _approval: Approval) {}
    }

    type Exec = <checkout::Workflow as graph_runtime::Workflow>::Exec;

    #[test]
    fn items_of_a_sequential_graph() {
        let text = <Exec as Execute<checkout::Workflow>>::CANONICAL;
        assert!(text.starts_with("graph-runtime/v2\nworkflow checkout\n"));
        assert_eq!(
            <Exec as Execute<checkout::Workflow>>::FINGERPRINTS,
            &[("input", "review", <Approval as StateSchema>::SCHEMA)]
        );
        let review = <Exec as Execute<checkout::Workflow>>::cursor_of("review").expect("node");
        assert_eq!(
            <Exec as Execute<checkout::Workflow>>::output_schema(review),
            0
        );
        assert!(<Exec as Execute<checkout::Workflow>>::migrate_output(review, 1, &[]).is_none());
    }
}
