//! Runs are visible to `tracing`: a `workflow_run` span per call and, when a subscriber enables
//! `graph_runtime::step` at DEBUG, a `step` span per node attempt with its node, sequence
//! number and attempt.

use std::sync::{Arc, Mutex};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Counter {
    pub n: u32,
}

#[workflow(state = Counter)]
pub mod count {
    use super::*;

    edge!(START -> bump);
    edge!(bump -> bump | END);

    #[node]
    async fn bump(c: &mut Counter) -> bump::Next {
        c.n += 1;
        if c.n < 3 {
            bump::Next::Bump
        } else {
            bump::Next::End
        }
    }
}

/// Records every span it is shown: its name and its fields as text.
#[derive(Default, Clone)]
struct Recorder {
    spans: Arc<Mutex<Vec<String>>>,
    next_id: Arc<Mutex<u64>>,
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = Fields(span.metadata().name().to_owned());
        span.record(&mut fields);
        self.spans.lock().unwrap().push(fields.0);
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        Id::from_u64(*next)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn runs_and_steps_have_spans() {
    let recorder = Recorder::default();
    let spans = Arc::clone(&recorder.spans);
    tracing::subscriber::with_default(recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runner = Runner::new(count::Workflow, MemoryStore::new());
        let out = rt
            .block_on(runner.start("s-1", Counter::default()))
            .unwrap();
        assert_eq!(out.into_state().n, 3);
    });
    let spans = spans.lock().unwrap().clone();
    let runs: Vec<&String> = spans
        .iter()
        .filter(|s| s.starts_with("workflow_run"))
        .collect();
    assert_eq!(runs.len(), 1, "{spans:?}");
    assert!(
        runs[0].contains("workflow=\"count\"") && runs[0].contains("session=s-1"),
        "{spans:?}"
    );
    let steps: Vec<&String> = spans.iter().filter(|s| s.starts_with("step")).collect();
    assert_eq!(
        steps,
        [
            "step node=\"bump\" seq=1 attempt=1",
            "step node=\"bump\" seq=2 attempt=1",
            "step node=\"bump\" seq=3 attempt=1",
        ],
        "{spans:?}"
    );
}
