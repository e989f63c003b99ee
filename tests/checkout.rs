//! The README's checkout workflow, written exactly as the README shows it, compiled from a
//! crate that depends on graph-runtime by path, and run through the runner's whole API.
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

use std::fmt;

use graph_runtime::prelude::*;
use graph_runtime::{Error, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug)]
pub struct PaymentError;

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for PaymentError {}

async fn pay(total_cents: u64, key: String) -> Result<String, PaymentError> {
    if total_cents == 13 {
        Err(PaymentError)
    } else {
        Ok(format!("ch-{key}"))
    }
}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge); // a branch: `validate` picks one of these
    edge!(review -> charge | cancel);
    edge!(charge -> ship);
    edge!(ship -> END);
    edge!(cancel -> END);

    #[node]
    pub async fn validate(order: &mut Order) -> validate::Next {
        if order.total_cents > 100_00 {
            validate::Next::Review
        } else {
            validate::Next::Charge
        }
    }

    #[node(interrupt)] // waits for a typed human decision
    async fn review(order: &mut Order, decision: Approval) -> review::Next {
        match decision {
            Approval::Approve => {
                order.approved = true;
                review::Next::Charge
            }
            Approval::Reject { .. } => review::Next::Cancel,
        }
    }

    #[node(retry = 3, timeout_ms = 5_000)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        order.charge_id = Some(pay(order.total_cents, ctx.idempotency_key()).await?);
        Ok(())
    }

    #[node]
    async fn ship(order: &mut Order) {
        let _ = order;
    }

    #[node]
    async fn cancel(order: &mut Order) {
        order.charge_id = None;
    }
}

fn order(total_cents: u64) -> Order {
    Order {
        total_cents,
        ..Order::default()
    }
}

fn runner() -> Runner<checkout::Workflow, MemoryStore> {
    Runner::new(checkout::Workflow, MemoryStore::new())
}

#[tokio::test]
async fn node_functions_stay_ordinary_functions() {
    assert_eq!(
        checkout::validate(&mut order(5)).await,
        checkout::validate::Next::Charge
    );
    assert_eq!(
        checkout::validate(&mut order(500_00)).await,
        checkout::validate::Next::Review
    );
}

#[test]
fn generated_items_describe_the_graph() {
    assert_eq!(
        checkout::NODES,
        &["validate", "review", "charge", "ship", "cancel"]
    );
    assert!(checkout::MERMAID.starts_with("flowchart"));
    for node in checkout::NODES {
        assert!(
            checkout::MERMAID.contains(node),
            "{node} missing from the Mermaid chart"
        );
    }
    use graph_runtime::Workflow as _;
    assert_eq!(
        <checkout::Workflow as graph_runtime::Workflow>::GRAPH_HASH,
        checkout::GRAPH_HASH
    );
    assert_eq!(checkout::Workflow::NAME, "checkout");
    let charge = checkout::Workflow::node("charge").unwrap();
    assert_eq!(
        (charge.retry, charge.timeout_ms, charge.interrupt),
        (3, Some(5_000), false)
    );
    assert!(checkout::Workflow::node("review").unwrap().interrupt);
    assert!(checkout::Workflow::node("nope").is_none());
}

#[tokio::test]
async fn a_small_order_goes_straight_through() {
    let r = runner();
    let out = r.start("order-1", order(25_00)).await.unwrap();
    let Outcome::Completed(done) = out.clone() else {
        panic!("{out:?}")
    };
    assert!(!done.approved);
    // validate is step 1, charge step 2: the key names the session, node and step.
    assert_eq!(done.charge_id.as_deref(), Some("ch-order-1/charge/2"));
    let nodes: Vec<String> = r
        .history("order-1")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(nodes, ["validate", "charge", "ship", "END"]);
    assert_eq!(r.resume("order-1").await.unwrap(), out);
}

#[tokio::test]
async fn a_big_order_waits_for_review_then_finishes() {
    let r = runner();
    let out = r.start("order-42", order(250_00)).await.unwrap();
    assert_eq!(
        out,
        Outcome::Interrupted {
            node: "review",
            state: order(250_00)
        }
    );
    let snap = r.state("order-42").await.unwrap().unwrap();
    assert_eq!(
        snap.status,
        Status::Waiting {
            node: "review".to_owned()
        }
    );
    // Resuming without a decision keeps waiting.
    assert_eq!(r.resume("order-42").await.unwrap(), out);

    let done = r
        .resume_with("order-42", checkout::Input::Review(Approval::Approve))
        .await
        .unwrap()
        .into_state();
    assert!(done.approved);
    assert!(done.charge_id.is_some());
    let history = r.history("order-42").await.unwrap();
    let nodes: Vec<&str> = history.iter().map(|c| c.node.as_str()).collect();
    // start, validate -> waiting at review, input recorded, review, charge, ship.
    assert_eq!(
        nodes,
        ["validate", "review", "review", "charge", "ship", "END"]
    );
    let seqs: Vec<u64> = history.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_rejected_order_is_cancelled() {
    let r = runner();
    r.start("o", order(250_00)).await.unwrap();
    let reject = checkout::Input::Review(Approval::Reject {
        reason: "fraud".into(),
    });
    let done = r.resume_with("o", reject).await.unwrap().into_state();
    assert_eq!((done.approved, done.charge_id), (false, None));
}

#[tokio::test]
async fn misuse_gets_typed_errors() {
    let r = runner();
    r.start("o", order(1)).await.unwrap();
    assert!(matches!(
        r.start("o", order(1)).await,
        Err(Error::SessionExists(_))
    ));
    assert!(matches!(
        r.resume("none").await,
        Err(Error::SessionNotFound(_))
    ));
    let approve = || checkout::Input::Review(Approval::Approve);
    assert!(matches!(
        r.resume_with("none", approve()).await,
        Err(Error::SessionNotFound(_))
    ));
    assert!(matches!(
        r.resume_with("o", approve()).await,
        Err(Error::NotWaiting { .. })
    ));
    assert!(matches!(
        r.fork("o", 77, "p").await,
        Err(Error::CheckpointNotFound { seq: 77, .. })
    ));
}

#[tokio::test]
async fn a_node_error_leaves_the_session_resumable() {
    let r = runner();
    let err = r.start("o", order(13)).await.unwrap_err();
    assert!(matches!(err, Error::Node { node: "charge", .. }), "{err}");
    assert_eq!(err.to_string(), "node `charge` failed");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("card declined"));
    let snap = r.state("o").await.unwrap().unwrap();
    assert_eq!(
        (snap.node.as_str(), snap.status),
        ("charge", Status::Running)
    );
}

#[tokio::test]
async fn fork_rewinds_to_the_review_and_decides_differently() {
    let r = runner();
    r.start("o", order(250_00)).await.unwrap();
    let waiting = r.state("o").await.unwrap().unwrap().seq;
    r.resume_with("o", checkout::Input::Review(Approval::Approve))
        .await
        .unwrap();
    let forked = r.fork("o", waiting, "o-retry").await.unwrap();
    assert_eq!(
        forked.status,
        Status::Waiting {
            node: "review".to_owned()
        }
    );
    let reject = checkout::Input::Review(Approval::Reject {
        reason: "changed mind".into(),
    });
    let done = r.resume_with("o-retry", reject).await.unwrap().into_state();
    assert!(done.charge_id.is_none());
    // The original is untouched.
    assert!(
        r.state("o")
            .await
            .unwrap()
            .unwrap()
            .state
            .charge_id
            .is_some()
    );
}

#[tokio::test]
async fn runners_are_clone_send_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>(_: &T) {}
    let r = runner();
    assert_traits(&r);
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let r = r.clone();
            tokio::spawn(async move { r.start(&format!("o-{i}"), order(i)).await })
        })
        .collect();
    for h in handles {
        assert!(matches!(h.await.unwrap().unwrap(), Outcome::Completed(_)));
    }
}
