//! The worker process that tests/worker_failures.rs starts, SIGKILLs and SIGSTOPs: a `Worker`
//! over the store named in `$GRAPH_RUNTIME_WORKER_CHILD_STORE`, until it is killed. Not a
//! user-facing program.

#[path = "worker_child.rs"]
mod worker_child;

fn main() {
    let Ok(spec) = std::env::var(worker_child::CHILD_STORE) else {
        eprintln!(
            "worker-child runs only under tests/worker_failures.rs, which sets ${}",
            worker_child::CHILD_STORE
        );
        std::process::exit(2);
    };
    worker_child::child_main(&spec);
}
