//! A child process of `tests/conformance.rs` (`processes_racing_on_one_file_form_one_chain`):
//! waits for the start signal, then races the other children to extend one session of the
//! SQLite file, printing `race-won:<seq>` for each sequence number it wins.
//!
//! Arguments: `<database> <tag> <start-signal file> <chain length>`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use graph_runtime::store::{Append, Checkpoint, Store as _};
use graph_runtime::{Error, SqliteStore, Status};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, tag, go, chain] = args.as_slice() else {
        eprintln!("usage: race-child <database> <tag> <start-signal file> <chain length>");
        std::process::exit(2);
    };
    let chain: u64 = chain.parse().expect("chain length");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let store = SqliteStore::open(PathBuf::from(db)).expect("open");
        let go = PathBuf::from(go);
        let deadline = Instant::now() + Duration::from_secs(60);
        while !go.exists() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        loop {
            let latest = store
                .latest("contested")
                .await
                .expect("latest")
                .map(|c| c.seq);
            let next = latest.map_or(1, |seq| seq + 1);
            if next > chain {
                return;
            }
            let bytes = format!("process {tag} {next}").into_bytes();
            let checkpoint = Checkpoint::new(next, "step", Status::Running, bytes);
            match store
                .append("contested", Append::new(latest, checkpoint, None))
                .await
            {
                Ok(()) => println!("race-won:{next}"),
                Err(Error::Conflict { .. }) => tokio::task::yield_now().await,
                Err(e) => panic!("process {tag}: {e}"),
            }
        }
    });
}
