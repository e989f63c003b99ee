//! The inspector's command line as a service would ship it, for tests/inspect_cli.rs: the
//! checkout example's workflow registered, over the SQLite file `INSPECT_SQLITE` or the
//! PostgreSQL database `INSPECT_POSTGRES` (a connection string). Not a user-facing program.

use std::process::ExitCode;

use graph_runtime::PostgresStore;
use graph_runtime::inspect::{self, Inspector};
use graph_runtime::prelude::*;

#[path = "../../examples/support/checkout.rs"]
mod flow;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Ok(path) = std::env::var("INSPECT_SQLITE") {
        let store = SqliteStore::open(path).expect("open the SQLite file");
        let runner = Runner::new(flow::checkout::Workflow, store.clone());
        return inspect::cli::main(&Inspector::new(store).register(runner)).await;
    }
    let conninfo = std::env::var("INSPECT_POSTGRES").expect("INSPECT_SQLITE or INSPECT_POSTGRES");
    let store = PostgresStore::connect(&conninfo)
        .await
        .expect("connect to PostgreSQL");
    let runner = Runner::new(flow::checkout::Workflow, store.clone());
    inspect::cli::main(&Inspector::new(store).register(runner)).await
}
