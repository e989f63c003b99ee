//! The generated `Input` enum as JSON and as bincode: JSON keyed by the node's own name (what
//! `Status`, events and `Snapshot::waiting` say) or by the variant's name, while the bincode
//! a checkpoint holds (the variant's index) stays what earlier releases wrote.

use graph_runtime::Status;
use graph_runtime::Workflow as _;
use graph_runtime::prelude::*;
use graph_runtime::store::{Append, Checkpoint, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct LegalNote {
    pub cleared: bool,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Case {
    pub approved: Option<bool>,
    pub reason: String,
    pub legal: Option<LegalNote>,
}

#[workflow(state = Case)]
pub mod desk {
    use super::*;

    edge!(START -> intake);
    edge!(intake -> review);
    edge!(review -> legal | END);
    edge!(legal -> END);

    #[node]
    async fn intake(c: &mut Case) {
        c.reason.clear();
    }

    #[node(interrupt)]
    async fn review(c: &mut Case, decision: Approval) -> review::Next {
        match decision {
            Approval::Approve => {
                c.approved = Some(true);
                review::Next::Legal
            }
            Approval::Reject { reason } => {
                c.approved = Some(false);
                c.reason = reason;
                review::Next::End
            }
        }
    }

    #[node(interrupt)]
    async fn legal(c: &mut Case, note: LegalNote) {
        c.legal = Some(note);
    }
}

/// `desk`'s graph hash and input schema when this test was written: attributes on the
/// generated `Input` must not move them.
const PINNED_GRAPH_HASH: u64 = 0x7eac_52dc_e597_25ce;
const PINNED_INPUT_SCHEMA: u64 = 0x5584_ac40_8c81_d07c;

/// `Input::Legal(LegalNote { cleared: true, text: "ok" })` in the checkpoint codec (bincode,
/// standard configuration), as the release before node-keyed JSON encoded it: the variant's
/// index (1), then the note.
const PINNED_LEGAL_INPUT: &[u8] = &[1, 1, 2, 111, 107];

/// Checkpoint 4 of session `d-1`, written by the release before node-keyed JSON (`start`,
/// `resume_with(Input::Review(Approval::Approve))`, then `enqueue_input` of
/// `Input::Legal(LegalNote { cleared: true, text: "ok" })` on a `MemoryStore`): `Running` at
/// `legal` with that decision recorded. Never to be renewed: it stands for sessions already
/// stored.
const PINNED_CHECKPOINT: &[u8] = &[
    71, 82, 67, 80, 4, 1, 0, 1, 206, 37, 151, 229, 220, 82, 172, 126, 4, 0, 0, 0, 0, 0, 0, 0, 99,
    163, 165, 83, 80, 113, 195, 45, 124, 208, 129, 140, 64, 172, 132, 85, 5, 0, 108, 101, 103, 97,
    108, 11, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 2, 111, 107, 0, 32, 111, 249, 247,
];

#[test]
fn hash_and_input_schema_are_pinned() {
    assert_eq!(
        desk::GRAPH_HASH,
        PINNED_GRAPH_HASH,
        "GRAPH_HASH moved: {:#x}",
        desk::GRAPH_HASH
    );
    assert_eq!(
        desk::Workflow::INPUT_SCHEMA,
        PINNED_INPUT_SCHEMA,
        "INPUT_SCHEMA moved: {:#x}",
        desk::Workflow::INPUT_SCHEMA
    );
}

#[test]
fn bincode_of_an_input_is_unchanged() {
    let config = bincode::config::standard();
    let legal = desk::Input::Legal(LegalNote {
        cleared: true,
        text: "ok".into(),
    });
    let bytes = bincode::serde::encode_to_vec(&legal, config).unwrap();
    assert_eq!(bytes, PINNED_LEGAL_INPUT);
    let (back, read): (desk::Input, usize) =
        bincode::serde::decode_from_slice(PINNED_LEGAL_INPUT, config).unwrap();
    assert_eq!(read, PINNED_LEGAL_INPUT.len());
    assert!(
        matches!(back, desk::Input::Legal(LegalNote { cleared: true, ref text }) if text == "ok")
    );
}

#[tokio::test]
async fn a_checkpoint_recorded_before_still_runs() {
    let store = MemoryStore::new();
    let checkpoint = Checkpoint::new(4, "legal", Status::Running, PINNED_CHECKPOINT.to_vec());
    store
        .append("d-1", Append::new(None, checkpoint, None))
        .await
        .unwrap();
    let runner = Runner::new(desk::Workflow, store);
    let done = runner.resume("d-1").await.unwrap();
    assert_eq!(
        done,
        Outcome::Completed(Case {
            approved: Some(true),
            reason: String::new(),
            legal: Some(LegalNote {
                cleared: true,
                text: "ok".into()
            }),
        })
    );
}

#[test]
fn json_keyed_by_the_node_name_reads() {
    let input: desk::Input =
        serde_json::from_str(r#"{"review":{"Reject":{"reason":"x"}}}"#).unwrap();
    assert!(
        matches!(input, desk::Input::Review(Approval::Reject { ref reason }) if reason == "x"),
        "{input:?}"
    );
    assert_eq!(input.node(), "review");
    let input: desk::Input =
        serde_json::from_str(r#"{"legal":{"cleared":true,"text":"ok"}}"#).unwrap();
    assert!(matches!(
        input,
        desk::Input::Legal(LegalNote { cleared: true, .. })
    ));
    assert_eq!(desk::Workflow::node_of_input(&input), "legal");
}

#[test]
fn json_keyed_by_the_variant_name_still_reads_and_is_what_is_written() {
    let input: desk::Input =
        serde_json::from_str(r#"{"Review":{"Reject":{"reason":"x"}}}"#).unwrap();
    assert!(matches!(
        input,
        desk::Input::Review(Approval::Reject { .. })
    ));
    assert_eq!(
        serde_json::to_string(&input).unwrap(),
        r#"{"Review":{"Reject":{"reason":"x"}}}"#
    );
    let input = desk::Input::Legal(LegalNote {
        cleared: true,
        text: "ok".into(),
    });
    let json = serde_json::to_string(&input).unwrap();
    assert_eq!(json, r#"{"Legal":{"cleared":true,"text":"ok"}}"#);
    let back: desk::Input = serde_json::from_str(&json).unwrap();
    assert_eq!(back.node(), "legal");
}

#[test]
fn an_unknown_node_is_serdes_error_naming_the_expected_ones() {
    let error = serde_json::from_str::<desk::Input>(r#"{"revew":"Approve"}"#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown variant `revew`, expected one of `Review`, `review`, `Legal`, `legal` at line 1 column 8"
    );
    // A known node with a value of the wrong shape says what it expected.
    let error = serde_json::from_str::<desk::Input>(r#"{"review":{"Maybe":null}}"#).unwrap_err();
    assert!(
        error.to_string().contains("unknown variant `Maybe`"),
        "{error}"
    );
}

#[test]
fn an_input_from_a_node_name_and_a_value() {
    let value = serde_json::json!({ "Reject": { "reason": "too risky" } });
    let input = desk::Workflow::input_from_node("review", &value).unwrap();
    assert!(
        matches!(input, desk::Input::Review(Approval::Reject { ref reason }) if reason == "too risky")
    );
    // From the text as a form posts it, without a `Value` in between.
    let mut text = serde_json::Deserializer::from_str(r#"{"cleared":false,"text":"no"}"#);
    let input = desk::Workflow::input_from_node("legal", &mut text).unwrap();
    assert_eq!(input.node(), "legal");
    // The variant's name works too; an unknown node lists the ones expected.
    assert!(desk::Workflow::input_from_node("Review", &value).is_ok());
    let error = desk::Workflow::input_from_node("charge", &value).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unknown variant `charge`, expected one of"),
        "{error}"
    );
    // The wrong shape for a known node is the value's own error.
    let error = desk::Workflow::input_from_node("legal", &value).unwrap_err();
    assert!(
        error.to_string().contains("missing field `cleared`"),
        "{error}"
    );
}

#[test]
fn the_interrupt_nodes_are_listed() {
    assert_eq!(desk::Input::NODES, ["review", "legal"]);
    assert_eq!(desk::Workflow::INPUT_NODES, desk::Input::NODES);
}
