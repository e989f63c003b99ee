//! The child process of `tests/crash.rs`: runs every session of a crash workflow on the SQLite
//! file in `$GRAPH_RUNTIME_CRASH_DIR` until all complete, starting or resuming each. The test
//! kills it with SIGKILL at random instants. With `$GRAPH_RUNTIME_CRASH_MODE=parallel` it runs
//! the parallel workflow (`fanout.rs`), otherwise the tally workflow (`tally.rs`) and, at the
//! same time, the subgraph workflow (`nested.rs`).

#[path = "tally.rs"]
mod tally_workflow;

#[path = "fanout.rs"]
mod fan_workflow;

#[path = "nested.rs"]
mod nested_workflow;

fn main() {
    let Ok(dir) = std::env::var(tally_workflow::CHILD_ENV) else {
        eprintln!("set {} to the test directory", tally_workflow::CHILD_ENV);
        std::process::exit(2);
    };
    let parallel = std::env::var(fan_workflow::MODE_ENV).as_deref() == Ok(fan_workflow::PARALLEL);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = std::path::Path::new(&dir);
    let result = if parallel {
        rt.block_on(fan_workflow::child(dir))
    } else {
        rt.block_on(async {
            let (tally, nested) =
                tokio::join!(tally_workflow::child(dir), nested_workflow::child(dir));
            tally.and(nested)
        })
    };
    if let Err(e) = result {
        eprintln!("child run failed: {e}");
        std::process::exit(1);
    }
}
