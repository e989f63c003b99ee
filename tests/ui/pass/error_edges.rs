//! Error edges: from a plain node, from a branching node (its `Next` lists only its routes),
//! from an interrupt node, to a node reached only through error edges, and from an error node
//! to another; quiet under strict lints.
#![deny(
    warnings,
    missing_docs,
    unreachable_pub,
    unused_qualifications,
    unused_results
)]

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The state.
#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Order {
    /// Cents.
    pub total: u64,
    /// What failed.
    pub note: Option<String>,
}

/// Why a node failed.
#[derive(Debug)]
pub struct PaymentError;

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

impl std::error::Error for PaymentError {}

/// The workflow.
#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge);
    edge!(validate -> reject on error);
    edge!(review -> charge);
    edge!(review -> reject on error);
    edge!(charge -> END);
    edge!(charge -> refund on error);
    edge!(refund -> END);
    edge!(refund -> alert on error);
    edge!(reject -> END);
    edge!(alert -> END);

    #[node]
    async fn validate(order: &mut Order) -> Result<validate::Next, PaymentError> {
        match order.total {
            0 => Err(PaymentError),
            1..=10_000 => Ok(validate::Next::Charge),
            _ => Ok(validate::Next::Review),
        }
    }

    #[node(interrupt)]
    async fn review(_order: &mut Order, approved: bool) -> Result<(), PaymentError> {
        if approved { Ok(()) } else { Err(PaymentError) }
    }

    #[node(retry = 3, timeout_ms = 5_000, backoff_ms = 10)]
    async fn charge(order: &mut Order) -> Result<(), PaymentError> {
        order.total = 0;
        Ok(())
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        order.note = ctx
            .failure()
            .map(|f| format!("{}: {}", f.node(), f.error()));
        Ok(())
    }

    #[node]
    async fn reject(order: &mut Order, ctx: &NodeCtx) {
        order.note = ctx.failure().map(|f| f.error().to_owned());
    }

    #[node]
    async fn alert(_order: &Order) {}
}

fn main() {
    // `validate::Next` has its two routes and nothing for the error edge.
    let route = |next: checkout::validate::Next| match next {
        checkout::validate::Next::Review => "review",
        checkout::validate::Next::Charge => "charge",
    };
    let _ = route(checkout::validate::Next::Charge);
    use graph_runtime::__private::Execute as _;
    let cursor = |name: &str| checkout::Workflow::cursor_of(name).unwrap();
    assert_eq!(
        checkout::Workflow::error_route(cursor("refund")),
        Some(cursor("alert"))
    );
    assert_eq!(checkout::Workflow::error_route(cursor("alert")), None);
    assert!(checkout::MERMAID.contains("review -. on error .-> reject"));
}
