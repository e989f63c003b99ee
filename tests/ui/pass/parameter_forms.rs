//! Every accepted parameter form: `&T` state, `ctx` anywhere after the state, the input before
//! or after `ctx`, raw identifiers, `Result<Next, E>`, lifetimes, paths to `NodeCtx`.
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Doc {
    pub text: String,
}

#[derive(Debug)]
pub struct Failure;

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure")
    }
}

impl std::error::Error for Failure {}

#[workflow(state = Doc)]
pub mod edit {
    use super::*;

    edge!(START -> read);
    edge!(read -> r#type | END);
    edge!(r#type -> approve);
    edge!(approve -> publish);
    edge!(publish -> END);

    #[node]
    async fn read(doc: &Doc, ctx: &NodeCtx) -> Result<read::Next, Failure> {
        let _ = ctx.idempotency_key();
        if doc.text.is_empty() {
            Ok(read::Next::Type)
        } else {
            Ok(read::Next::End)
        }
    }

    #[node(interrupt)]
    async fn r#type<'a>(doc: &'a mut Doc, ctx: &'a graph_runtime::NodeCtx, text: String) {
        let _ = ctx;
        doc.text = text;
    }

    #[node(interrupt, retry = 1, timeout_ms = 1_000)]
    async fn approve(doc: &mut Doc, yes: bool, _ctx: &NodeCtx) -> Result<(), Failure> {
        if yes && !doc.text.is_empty() {
            Ok(())
        } else {
            Err(Failure)
        }
    }

    #[node]
    async fn publish(_: &mut Doc) {}
}

fn main() {
    let _ = edit::Input::Type(String::new());
    let _ = edit::Input::Approve(true);
    assert!(edit::MERMAID.contains("type{{type}}"));
    assert_eq!(edit::NODES, &["read", "type", "approve", "publish"]);
}
