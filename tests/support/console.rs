//! What the console tests share: a SQLite file with checkout orders in every interesting
//! state, and the console nested at `/ops` as a service would mount it.
#![allow(clippy::inconsistent_digit_grouping, dead_code)] // cents written as dollars_cents

use std::path::Path;

use graph_runtime::inspect::Inspector;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[path = "../../examples/support/checkout.rs"]
pub mod flow;

pub use flow::{Order, checkout};

/// The order left waiting at `review` (250.00).
pub const WAITING: &str = "order-big";
/// An order that completed (20.00, no review).
pub const COMPLETED: &str = "order-small";
/// A waiting order whose id and state hold markup, quotes and URL delimiters.
pub const HOSTILE: &str = "xss/<script>alert(1)</script>?a=1&b=\"'#";
/// What `HOSTILE`'s state holds.
pub const HOSTILE_TEXT: &str = "<script>alert(2)</script>";
/// A session of a workflow the console is not given.
pub const FOREIGN: &str = "note-1";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Note {
    pub text: String,
    pub ok: bool,
}

/// A workflow the console does not register.
#[workflow(state = Note)]
pub mod notes {
    use super::*;
    edge!(START -> ask);
    edge!(ask -> END);

    #[node(interrupt)]
    async fn ask(note: &mut Note, ok: bool) {
        note.ok = ok;
    }
}

/// Writes the fixture's sessions to a new SQLite file at `path`; returns the inspector the
/// console is given (the checkout workflow only).
pub async fn fixture(path: &Path) -> Inspector<SqliteStore> {
    let store = SqliteStore::open(path).expect("open the SQLite file");
    let runner = Runner::new(checkout::Workflow, store.clone());
    let order = |total_cents| Order {
        total_cents,
        ..Order::default()
    };
    runner.start(WAITING, order(250_00)).await.expect("start");
    runner.start(COMPLETED, order(20_00)).await.expect("start");
    let hostile = Order {
        refund_reason: Some(HOSTILE_TEXT.to_owned()),
        ..order(300_00)
    };
    runner.start(HOSTILE, hostile).await.expect("start");
    let foreign = Runner::new(notes::Workflow, store.clone());
    foreign
        .start(FOREIGN, Note::default())
        .await
        .expect("start");
    Inspector::new(store).register(runner)
}

/// The console nested at `/ops`.
pub fn app(inspector: Inspector<SqliteStore>) -> axum::Router {
    axum::Router::new().nest("/ops", graph_runtime::web::router(inspector))
}
