//! Target `json_patch`: an operator's JSON merge patch (RFC 7386) through the inspector's
//! `edit` and `fork`, on a session waiting in a region of `journal`.
//!
//! Input: the patch's JSON text (anything else is text too). Each call must answer with its
//! error for a patch it cannot apply, never panic; and the two paths must agree: a fork of
//! the session with the patch starts from the state the edit writes, and the same patch
//! applied twice changes nothing more (a merge patch is idempotent).

use graph_runtime::inspect::{Inspector, Operator};
use graph_runtime::{MemoryStore, Runner};

use super::block_on;
use super::json_input::check_inspect_error;
use super::workflows::{Journal, Run, journal, run_journal};

const SESSION: &str = "edited";
const FORK: &str = "forked";

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    block_on(patch(text));
}

async fn patch(text: &str) {
    let store = MemoryStore::new();
    let runner = Runner::new(journal::Workflow, store.clone()).max_steps(64);
    run_journal(
        &runner,
        SESSION,
        Run {
            prefill: 0,
            grow: 2,
            fail: false,
            answers: 0,
        },
    )
    .await
    .expect("a session waits at `ask`");
    let reader = Runner::new(journal::Workflow, store.clone());
    let inspector = Inspector::new(store).register(runner);
    let by = Operator::new().by("fuzz");

    let forked = inspector.fork(SESSION, None, FORK, Some(text), &by).await;
    if let Err(error) = &forked {
        check_inspect_error(SESSION, error);
    }
    let edited = inspector.edit(SESSION, text, None, &by).await;
    match &edited {
        Err(error) => check_inspect_error(SESSION, error),
        Ok(_) => {
            let once = state(&reader, SESSION).await;
            assert!(
                forked.is_ok(),
                "an edit applies a patch a fork refused: {text}"
            );
            assert_eq!(
                state(&reader, FORK).await,
                once,
                "a fork and an edit disagree"
            );
            inspector
                .edit(SESSION, text, None, &by)
                .await
                .expect("a patch that applied once applies again");
            assert_eq!(
                state(&reader, SESSION).await,
                once,
                "a patch applied twice changed more"
            );
        }
    }
}

async fn state(runner: &Runner<journal::Workflow, MemoryStore>, session: &str) -> Journal {
    runner
        .state(session)
        .await
        .expect("a session written by the inspector reads")
        .expect("the session exists")
        .state
}

/// Patches that set, remove, replace and mistype fields.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    [
        ("set", r#"{"counted": 7, "answer": "patched"}"#),
        ("remove", r#"{"answer": null, "recovered": null}"#),
        ("lines", r#"{"lines": ["a", "b", "c"]}"#),
        ("nested-null", r#"{"lines": null}"#),
        ("wrong-type", r#"{"target": "many"}"#),
        ("negative", r#"{"target": -1}"#),
        ("float", r#"{"sum": 1.5}"#),
        ("huge", r#"{"sum": 18446744073709551616}"#),
        (
            "unknown-field",
            r#"{"unknown": {"deep": [1, 2, {"x": null}]}}"#,
        ),
        ("not-an-object", r#"[1, 2]"#),
        ("empty", r#"{}"#),
        ("null", r#"null"#),
    ]
    .into_iter()
    .map(|(name, text)| (format!("seed-{name}"), text.as_bytes().to_vec()))
    .collect()
}
