//! The checkout workflow of the README, shared by the examples that run it
//! (`checkout.rs`), inspect it (`inspect.rs`) and serve its console (`console.rs`).
#![allow(clippy::inconsistent_digit_grouping, dead_code)] // cents written as dollars_cents

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
    pub shipped: bool,
    pub cancelled: bool,
    /// Set by `refund` when the payment failed for good.
    pub refund_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug)]
pub enum PaymentError {
    /// The provider could not be reached: worth retrying.
    Unavailable,
    /// The card was declined: retrying cannot help.
    Declined(String),
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Unavailable => f.write_str("payment provider unavailable"),
            PaymentError::Declined(why) => write!(f, "card declined: {why}"),
        }
    }
}

impl std::error::Error for PaymentError {}

/// Tells the runner which payment errors to retry (`#[node(retry = …)]`).
impl graph_runtime::Retryable for PaymentError {
    fn is_retryable(&self) -> bool {
        matches!(self, PaymentError::Unavailable)
    }
}

/// Set by `--crash`: the payment step aborts the process, as a crash would.
pub static CRASH_IN_PAYMENT: AtomicBool = AtomicBool::new(false);

/// A stand-in payment provider. The idempotency key is the same when a step re-runs after a
/// crash, so a real provider would not charge twice. It is flaky: the first attempt of every
/// charge over 100.00 finds it unavailable. And it declines amounts ending in 13 cents.
async fn pay(
    total_cents: u64,
    idempotency_key: &str,
    attempt: u32,
) -> Result<String, PaymentError> {
    // stderr: a node run by the inspector (`decide`) must not mix into its JSON on stdout.
    eprintln!("  paying {total_cents} cents, key {idempotency_key}, attempt {attempt}");
    if CRASH_IN_PAYMENT.load(Ordering::Relaxed) {
        eprintln!("  --crash: aborting the process in the middle of the payment step");
        std::process::abort();
    }
    if total_cents % 100 == 13 {
        return Err(PaymentError::Declined("insufficient funds".into()));
    }
    if total_cents > 100_00 && attempt == 1 {
        return Err(PaymentError::Unavailable);
    }
    Ok(format!("ch_{}", idempotency_key.replace('/', "_")))
}

#[workflow(state = Order)]
pub mod checkout {
    use super::*;

    edge!(START -> validate);
    edge!(validate -> review | charge); // a branch: `validate` picks one of these
    edge!(review -> charge | cancel);
    edge!(charge -> ship);
    edge!(charge -> refund on error); // taken when `charge` fails after its retries
    edge!(ship -> END);
    edge!(cancel -> END);
    edge!(refund -> END);

    #[node]
    async fn validate(order: &mut Order) -> validate::Next {
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

    #[node(retry = 3, timeout_ms = 5_000, backoff_ms = 50)]
    async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
        let key = ctx.idempotency_key();
        order.charge_id = Some(pay(order.total_cents, &key, ctx.attempt()).await?);
        Ok(())
    }

    #[node]
    async fn refund(order: &mut Order, ctx: &NodeCtx) {
        // The state is as it was before the failed payment; the failure says why.
        order.cancelled = true;
        order.refund_reason = ctx
            .failure()
            .map(|f| format!("{} failed: {}", f.node(), f.error()));
    }

    #[node]
    async fn ship(order: &mut Order) {
        order.shipped = true;
    }

    #[node]
    async fn cancel(order: &mut Order) {
        order.cancelled = true;
    }
}
