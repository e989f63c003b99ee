//! W11, second half: an operator reads a 100 KiB state as JSON through the
//! inspector (`Inspector::show` on a SQLite file: the session's record, its latest
//! checkpoint read, verified and decoded, the state serialized to JSON), against a
//! hand-written equivalent in the same run: `Runner::state` (the checkpoint read, verified
//! and decoded) and `serde_json::to_value`, the least any tool must do. Both timers stop
//! before the JSON is dropped. Prints the median of 21 runs and the ratio.
//!
//! Run: `cargo bench -p graph-runtime --features inspect --bench inspect`

use std::time::{Duration, Instant};

use graph_runtime::inspect::Inspector;
use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Big {
    pub lines: Vec<Line>,
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
pub struct Line {
    pub sku: String,
    pub quantity: u32,
    pub cents: u64,
}

#[workflow(state = Big)]
pub mod big {
    use super::*;
    edge!(START -> review);
    edge!(review -> END);
    #[node(interrupt)]
    async fn review(b: &mut Big, note: String) {
        b.note = note;
    }
}

const RUNS: usize = 21;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("w11.db")).expect("open");
        let runner = Runner::new(big::Workflow, store.clone());
        // About 100 KiB of bincode: 3,400 lines of a 24-byte SKU and two integers.
        let state = Big {
            lines: (0..3_400)
                .map(|i| Line {
                    sku: format!("SKU-{i:020}"),
                    quantity: i % 7,
                    cents: u64::from(i) * 101,
                })
                .collect(),
            note: String::new(),
        };
        runner.start("big", state).await.expect("start");
        let bytes = store
            .latest("big")
            .await
            .expect("latest")
            .expect("kept")
            .bytes
            .len();
        let inspector = Inspector::new(store.clone()).register(runner.clone());

        let mut ours = Vec::new();
        let mut hand = Vec::new();
        let mut json_bytes = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let view = inspector.show("big").await.expect("show");
            ours.push(started.elapsed());
            json_bytes = serde_json::to_vec(&view.state).expect("json").len();

            let started = Instant::now();
            let snapshot = runner.state("big").await.expect("state").expect("kept");
            let value = serde_json::to_value(&snapshot.state).expect("json");
            hand.push(started.elapsed());
            std::hint::black_box(value);
        }
        let (ours, hand) = (median(ours), median(hand));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "W11 show a {:.0} KiB state ({:.0} KiB of JSON) on SQLite: inspector {:.2} ms | \
             Runner::state + serde_json::to_value {:.2} ms | ratio {:.2} (target: <= 5 ms) {}",
            bytes as f64 / 1024.0,
            json_bytes as f64 / 1024.0,
            ms(ours),
            ms(hand),
            ms(ours) / ms(hand),
            if ms(ours) <= 5.0 {
                "ok"
            } else {
                "MISSES TARGET"
            }
        );
    });
}
