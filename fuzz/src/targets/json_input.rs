//! Target `json_input`: a decision as JSON, into the generated `Input` of `journal` (keyed by
//! the node's name or the variant's) and through the inspector's `decide`, which reads
//! `{"node": decision}` for a session waiting at that node.
//!
//! Input: JSON text (anything else is text too). What `serde_json` reads into `Input` must
//! write back to JSON that reads into the same input; the inspector must answer with its
//! error for anything it cannot take, never panic, and take a decision only where the typed
//! `Input` would read it as well.

use graph_runtime::inspect::{InspectError, Inspector, Operator};
use graph_runtime::{MemoryStore, Runner};

use super::workflows::{Run, journal, run_journal};
use super::{block_on, check_error};

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let typed = serde_json::from_str::<journal::Input>(text);
    match &typed {
        Ok(input) => {
            let json = serde_json::to_string(input).expect("an input writes as JSON");
            let back: journal::Input =
                serde_json::from_str(&json).expect("an input's own JSON reads back");
            assert_eq!(format!("{back:?}"), format!("{input:?}"), "JSON {json}");
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    block_on(decide(text, typed.is_ok()));
}

/// The decision for a session waiting at `ask` (a branch of a region) and for one waiting at
/// `recover` (after an error edge).
async fn decide(text: &str, typed: bool) {
    let store = MemoryStore::new();
    let runner = Runner::new(journal::Workflow, store.clone()).max_steps(64);
    run_journal(
        &runner,
        "at-ask",
        Run {
            prefill: 0,
            grow: 1,
            fail: false,
            answers: 0,
        },
    )
    .await
    .expect("a session waits at `ask`");
    run_journal(
        &runner,
        "at-recover",
        Run {
            prefill: 0,
            grow: 1,
            fail: true,
            answers: 1,
        },
    )
    .await
    .expect("a session waits at `recover`");
    let inspector = Inspector::new(store).register(runner);
    for session in ["at-ask", "at-recover"] {
        match inspector.decide(session, text, &Operator::new()).await {
            Ok(view) => {
                assert!(
                    typed,
                    "the inspector took a decision `Input` does not read: {text}"
                );
                assert_ne!(view.summary.status, "waiting", "a decision changed nothing");
            }
            Err(error) => check_inspect_error(session, &error),
        }
    }
}

/// An inspector's error says what is wrong; a runtime error in it is one a caller handles.
pub fn check_inspect_error(session: &str, error: &InspectError) {
    assert!(
        !error.to_string().is_empty(),
        "an error without a message: {error:?}"
    );
    if let InspectError::Refused(error) | InspectError::Runtime(error) = error {
        check_error(session, error);
    }
}

/// Decisions of each shape, keyed by node and by variant, and some that do not fit.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("ask-text", r#"{"ask": {"Text": "yes"}}"#),
        (
            "ask-detailed",
            r#"{"ask": {"Detailed": {"score": -4, "tags": ["a", "b"]}}}"#,
        ),
        ("ask-skip", r#"{"ask": "Skip"}"#),
        ("variant-ask", r#"{"Ask": {"Text": "by variant"}}"#),
        ("recover", r#"{"recover": "a note"}"#),
        ("variant-recover", r#"{"Recover": "\u00e9\ud83d\ude00"}"#),
        ("two-keys", r#"{"ask": "Skip", "recover": "x"}"#),
        ("wrong-shape", r#"{"ask": {"Detailed": {"score": 1e400}}}"#),
        ("not-an-object", r#"["ask", 1]"#),
        ("unknown-node", r#"{"nowhere": null}"#),
        ("deep", &format!("{}1{}", "[".repeat(200), "]".repeat(200))),
    ]
    .into_iter()
    .map(|(name, text)| (format!("seed-{name}"), text.as_bytes().to_vec()))
    .collect()
}
