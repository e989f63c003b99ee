//! Counts of node runs and planned failures, per `(tag, node)`: each scenario on each store
//! has its own tag, so scenarios that run at once never mix their counts.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::BTreeMap;
use std::sync::Mutex;

/// How many times each `(tag, node)` ran, and how many more failures each has to give.
static RUNS: Mutex<BTreeMap<(String, &'static str), u32>> = Mutex::new(BTreeMap::new());
static FAILURES: Mutex<BTreeMap<(String, &'static str), u32>> = Mutex::new(BTreeMap::new());

pub fn ran(tag: &str, node: &'static str) {
    *RUNS
        .lock()
        .unwrap()
        .entry((tag.to_owned(), node))
        .or_default() += 1;
}

pub fn runs(tag: &str, node: &'static str) -> u32 {
    RUNS.lock()
        .unwrap()
        .get(&(tag.to_owned(), node))
        .copied()
        .unwrap_or(0)
}

pub fn fail_next(tag: &str, node: &'static str, times: u32) {
    FAILURES
        .lock()
        .unwrap()
        .insert((tag.to_owned(), node), times);
}

pub fn fails(tag: &str, node: &'static str) -> bool {
    let mut failures = FAILURES.lock().unwrap();
    match failures.get_mut(&(tag.to_owned(), node)) {
        Some(left) if *left > 0 => {
            *left -= 1;
            true
        }
        _ => false,
    }
}
