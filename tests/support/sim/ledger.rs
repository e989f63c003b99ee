//! The side-effect ledger: what nodes did in the world outside the store, which no crash
//! erases.
//!
//! Every execution of a node (every attempt, every re-run after a crash) calls [`effect`]
//! (an interrupt node, [`effect_with`], which also notes the input it ran with), which
//! records a new execution id under the node's `ctx.idempotency_key()` and returns a *mark*
//! `"{key}#{execution}"` that the node puts into the state (or its branch output) that its
//! step saves.
//!
//! What "recorded" means: an effect is **seen** when its execution is in the ledger; it is
//! **committed** when its mark is in a durable checkpoint, i.e. the checkpoint after its step
//! (or the branch record of its branch) was appended. Nodes run at least once, so a key may
//! be seen many times (a failed attempt, a timeout, a crash before the checkpoint); but every
//! committed state holds at most one mark per key (a second one would mean a step committed
//! twice, or a failed attempt's changes leaked into the state), and each mark it holds names
//! an execution the ledger saw under that key.
//!
//! An interrupt node's input is recorded durably before the node runs with it, so every
//! execution of one step of an interrupt node runs with the same input: an answer and a
//! deadline's `None` under one key mean the node ran both ways ([`inputs`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use graph_runtime::NodeCtx;

/// One execution: its id, and the input it ran with (interrupt nodes only).
type Execution = (u64, Option<String>);

/// Per idempotency key, the executions seen.
type Executions = HashMap<String, Vec<Execution>>;

/// Per world run (`run` in every state), its executions.
static LEDGER: Mutex<Option<HashMap<u64, Executions>>> = Mutex::new(None);
static NEXT_EXECUTION: AtomicU64 = AtomicU64::new(1);

fn record(run: u64, ctx: &NodeCtx, input: Option<String>) -> String {
    let key = ctx.idempotency_key();
    let execution = NEXT_EXECUTION.fetch_add(1, Ordering::Relaxed);
    let mut ledger = LEDGER.lock().unwrap();
    ledger
        .get_or_insert_with(HashMap::new)
        .entry(run)
        .or_default()
        .entry(key.clone())
        .or_default()
        .push((execution, input));
    format!("{key}#{execution}")
}

/// Records one execution of the step `ctx` runs, in world run `run`; returns its mark.
pub fn effect(run: u64, ctx: &NodeCtx) -> String {
    record(run, ctx, None)
}

/// Records one execution of an interrupt node's step, which ran with `input` (its debug
/// form: `None` for a deadline's default); returns its mark.
pub fn effect_with(run: u64, ctx: &NodeCtx, input: &impl std::fmt::Debug) -> String {
    record(run, ctx, Some(format!("{input:?}")))
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
        .is_some_and(|executions| executions.iter().any(|(id, _)| *id == execution))
}

/// The distinct inputs the executions of the interrupt step `key` ran with, in world run
/// `run` (empty for a step that is not an interrupt node's).
pub fn inputs(run: u64, key: &str) -> BTreeSet<String> {
    let ledger = LEDGER.lock().unwrap();
    ledger
        .as_ref()
        .and_then(|runs| runs.get(&run))
        .and_then(|keys| keys.get(key))
        .map(|executions| executions.iter().filter_map(|(_, i)| i.clone()).collect())
        .unwrap_or_default()
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
