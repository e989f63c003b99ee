//! The side-effect ledger: what nodes did in the world outside the store, which no crash
//! erases.
//!
//! Every execution of a node (every attempt, every re-run after a crash) calls [`effect`],
//! which records a new execution id under the node's `ctx.idempotency_key()` and returns a
//! *mark* `"{key}#{execution}"` that the node puts into the state (or its branch output) that
//! its step saves.
//!
//! What "recorded" means: an effect is **seen** when its execution is in the ledger; it is
//! **committed** when its mark is in a durable checkpoint, i.e. the checkpoint after its step
//! (or the branch record of its branch) was appended. Nodes run at least once, so a key may
//! be seen many times (a failed attempt, a timeout, a crash before the checkpoint); but every
//! committed state holds at most one mark per key (a second one would mean a step committed
//! twice, or a failed attempt's changes leaked into the state), and each mark it holds names
//! an execution the ledger saw under that key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use graph_runtime::NodeCtx;

/// Per idempotency key, the executions seen.
type Executions = HashMap<String, Vec<u64>>;

/// Per world run (`run` in every state), its executions.
static LEDGER: Mutex<Option<HashMap<u64, Executions>>> = Mutex::new(None);
static NEXT_EXECUTION: AtomicU64 = AtomicU64::new(1);

/// Records one execution of the step `ctx` runs, in world run `run`; returns its mark.
pub fn effect(run: u64, ctx: &NodeCtx) -> String {
    let key = ctx.idempotency_key();
    let execution = NEXT_EXECUTION.fetch_add(1, Ordering::Relaxed);
    let mut ledger = LEDGER.lock().unwrap();
    ledger
        .get_or_insert_with(HashMap::new)
        .entry(run)
        .or_default()
        .entry(key.clone())
        .or_default()
        .push(execution);
    format!("{key}#{execution}")
}

/// Whether the ledger of `run` saw the execution a mark names under its key.
pub fn seen(run: u64, mark: &str) -> bool {
    let Some((key, execution)) = split(mark) else {
        return false;
    };
    let ledger = LEDGER.lock().unwrap();
    ledger
        .as_ref()
        .and_then(|runs| runs.get(&run))
        .and_then(|keys| keys.get(key))
        .is_some_and(|executions| executions.contains(&execution))
}

/// Forgets a finished world run.
pub fn forget(run: u64) {
    if let Some(runs) = LEDGER.lock().unwrap().as_mut() {
        runs.remove(&run);
    }
}

/// A mark's key and execution id.
pub fn split(mark: &str) -> Option<(&str, u64)> {
    let (key, rest) = mark.rsplit_once('#')?;
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((key, digits.parse().ok()?))
}

/// A mark without its execution id (what a crash-free run's mark of the same step equals).
pub fn key_of(mark: &str) -> String {
    match mark.rsplit_once('#') {
        Some((key, rest)) => {
            let tail = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{key}{tail}")
        }
        None => mark.to_owned(),
    }
}
