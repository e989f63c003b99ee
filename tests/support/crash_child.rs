//! The child process of `tests/crash.rs`: runs every session of the crash workflow on the SQLite
//! file in `$GRAPH_RUNTIME_CRASH_DIR` until all complete, starting or resuming each. The test
//! kills it with SIGKILL at random instants.

#[path = "tally.rs"]
mod tally_workflow;

fn main() {
    let Ok(dir) = std::env::var(tally_workflow::CHILD_ENV) else {
        eprintln!("set {} to the test directory", tally_workflow::CHILD_ENV);
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(tally_workflow::child(std::path::Path::new(&dir))) {
        eprintln!("child run failed: {e}");
        std::process::exit(1);
    }
}
