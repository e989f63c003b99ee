//! The web console over the checkout example's `checkout.db`, on 127.0.0.1: what a service
//! adds to its own binary (here with the checkout workflow registered, nested at `/ops` as a
//! service would, behind its own authentication, which this example does not have).
//!
//! ```sh
//! cargo run --example checkout          # leaves order-N-big waiting at review
//! cargo run --example console           # then open the URL it prints
//! PORT=9000 cargo run --example console # or: cargo run --example console -- 9000
//! curl -H 'Accept: application/json' http://127.0.0.1:8080/ops/sessions?node=review
//! ```

use std::process::ExitCode;

use graph_runtime::inspect::Inspector;
use graph_runtime::prelude::*;
use graph_runtime::web;

#[path = "support/checkout.rs"]
mod flow;

#[tokio::main]
async fn main() -> ExitCode {
    let port = match port() {
        Ok(port) => port,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let store = match SqliteStore::open("checkout.db") {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::new(flow::checkout::Workflow, store.clone());
    let inspector = Inspector::new(store).register(runner);
    let app = axum::Router::new().nest("/ops", web::router(inspector));

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().map_or_else(
        |_| format!("127.0.0.1:{port}"),
        |address| address.to_string(),
    );
    println!("the console of checkout.db: http://{address}/ops/sessions (Ctrl-C stops it)");
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The port: the first argument, else `PORT`, else 8080.
fn port() -> Result<u16, String> {
    let given = std::env::args()
        .nth(1)
        .map(|p| ("the argument", p))
        .or_else(|| std::env::var("PORT").ok().map(|p| ("PORT", p)));
    match given {
        None => Ok(8080),
        Some((from, text)) => text
            .parse()
            .map_err(|_| format!("{from} `{text}` is not a port number")),
    }
}
