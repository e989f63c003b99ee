//! Replays the fuzz targets' committed inputs with plain `cargo test`: every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, and every generated seed, through
//! the same body the fuzz binary runs (`fuzz/src/targets/`, included here by path). A failing
//! input is named in the failure; reproduce it under the fuzzer with
//! `cargo +nightly fuzz run <target> <file>` (see `fuzz/README.md`).
//!
//! The macro targets replay in graph-macros' own unit tests (`graph-macros/src/fuzz.rs`),
//! which call the macros' internal functions directly.
//!
//! `FUZZ_WRITE_SEEDS=1 cargo test --test fuzz_corpus` also writes the generated seeds into
//! `fuzz/corpus/<target>/`, where a fuzzer starts from them.

#[path = "../fuzz/src/targets/mod.rs"]
#[allow(dead_code)]
mod targets;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every committed input of `target`, in name order.
fn committed(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory").path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("a readable input");
                files.push((format!("{dir}/{target}/{}", file_name(&path)), data));
            }
        }
    }
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `body` on every input; fails naming those that panicked.
fn replay(target: &str, body: fn(&[u8]), inputs: &[(String, Vec<u8>)]) {
    let failed: Vec<&str> = inputs
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| body(data)).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs of `{target}` failed: {failed:#?}",
        failed.len(),
        inputs.len()
    );
}

fn body_of(target: &str) -> fn(&[u8]) {
    targets::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("a target with a body")
}

/// The corpus and the regressions of one target.
fn replay_committed(target: &str) {
    let inputs = committed(target);
    assert!(
        !inputs.is_empty(),
        "no committed inputs for `{target}` under fuzz/corpus or fuzz/regressions"
    );
    replay(target, body_of(target), &inputs);
}

#[test]
fn envelope() {
    replay_committed("envelope");
}

#[test]
fn delta() {
    replay_committed("delta");
}

#[test]
fn chain() {
    replay_committed("chain");
}

#[test]
fn store_rows() {
    replay_committed("store_rows");
}

#[test]
fn json_input() {
    replay_committed("json_input");
}

#[test]
fn json_patch() {
    replay_committed("json_patch");
}

/// Every target has a test above.
#[test]
fn every_target_replays() {
    let tested = [
        "envelope",
        "delta",
        "chain",
        "store_rows",
        "json_input",
        "json_patch",
    ];
    let targets: Vec<&str> = targets::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(targets, tested);
}

/// The generated seeds pass too (written out with `FUZZ_WRITE_SEEDS=1`).
#[test]
fn seeds() {
    let write = std::env::var_os("FUZZ_WRITE_SEEDS").is_some();
    for (target, seeds) in targets::SEEDS {
        let seeds = seeds();
        assert!(!seeds.is_empty(), "`{target}` has no seeds");
        replay(target, body_of(target), &seeds);
        if write {
            let dir = fuzz_dir().join("corpus").join(target);
            std::fs::create_dir_all(&dir).expect("the corpus directory");
            for (name, data) in &seeds {
                std::fs::write(dir.join(name), data).expect("a seed is written");
            }
        }
    }
}
