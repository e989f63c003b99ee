//! The inspector's command line over the checkout example's `checkout.db`: the five lines a
//! service adds to its own binary (here with the checkout workflow registered).
//!
//! ```sh
//! cargo run --example checkout                          # leaves order-N-big waiting at review
//! cargo run --example inspect -- sessions --node review
//! cargo run --example inspect -- show order-1-big
//! cargo run --example inspect -- decide order-1-big '{"review":"Approve"}' --by alice
//! cargo run --example inspect -- history order-1-big -o json
//! cargo run --example inspect -- --help
//! ```

use std::process::ExitCode;

use graph_runtime::inspect::{self, Inspector};
use graph_runtime::prelude::*;

#[path = "support/checkout.rs"]
mod flow;

#[tokio::main]
async fn main() -> ExitCode {
    let store = match SqliteStore::open("checkout.db") {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::new(flow::checkout::Workflow, store.clone());
    inspect::cli::main(&Inspector::new(store).register(runner)).await
}
