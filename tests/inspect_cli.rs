//! The inspector's command line end to end, as an operator runs it: a real process
//! (tests/support/inspect_child.rs, the checkout example's workflow registered) over a real
//! SQLite file and a real PostgreSQL database, its JSON output parsed, its text read, and
//! every kind of bad input answered on stderr with a non-zero exit code and nothing changed.
#![allow(clippy::inconsistent_digit_grouping)] // cents written as dollars_cents

#[path = "support/postgres.rs"]
mod postgres;

use std::process::Command;

use graph_runtime::PostgresStore;
use graph_runtime::prelude::*;
use graph_runtime::store::Store;
use serde_json::Value;

#[path = "../examples/support/checkout.rs"]
mod flow;
use flow::{Order, checkout};

/// Where the inspector looks: the environment variable and its value.
#[derive(Clone)]
struct Target(&'static str, String);

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.code, 0, "stderr: {}", self.err);
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("{e}: {}", self.out))
    }
}

fn inspect(target: &Target, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_inspect-child"))
        .env(target.0, &target.1)
        .args(args)
        .output()
        .expect("run the inspector");
    Run {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn order(cents: u64) -> Order {
    Order {
        total_cents: cents,
        ..Order::default()
    }
}

/// Four orders: one completed, one refunded (declined card), two waiting at `review`; and a
/// session of a workflow the inspector does not know.
async fn seed<S: Store + Clone>(store: S) {
    let runner = Runner::new(checkout::Workflow, store.clone());
    runner.start("small", order(25_00)).await.unwrap();
    runner.start("declined", order(42_13)).await.unwrap();
    runner.start("big-1", order(250_00)).await.unwrap();
    runner.start("big-2", order(300_00)).await.unwrap();
    let other = Runner::new(other::Workflow, store);
    other.start("stranger", Note::default()).await.unwrap();
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, StateSchema)]
pub struct Note {
    pub text: String,
}

#[workflow(state = Note)]
pub mod other {
    use super::*;
    edge!(START -> wait);
    edge!(wait -> END);
    #[node(interrupt)]
    async fn wait(n: &mut Note, text: String) {
        n.text = text;
    }
}

fn history_len(target: &Target, session: &str) -> usize {
    inspect(target, &["history", session, "-o", "json"])
        .json()
        .as_array()
        .unwrap()
        .len()
}

fn exercise(target: &Target) {
    // Listing and filtering, from the store's index.
    let all = inspect(target, &["sessions", "-o", "json"]).json();
    let ids: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["big-1", "big-2", "declined", "small", "stranger"]);
    let waiting = inspect(target, &["sessions", "--node", "review", "-o", "json"]).json();
    let waiting: Vec<&str> = waiting["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(waiting, ["big-1", "big-2"]);
    let page = inspect(target, &["sessions", "--limit", "2", "-o", "json"]).json();
    assert_eq!(page["next"], "big-2");
    let rest = inspect(target, &["sessions", "--after", "big-2", "-o", "json"]).json();
    assert_eq!(rest["sessions"][0]["session"], "declined");
    let completed = inspect(
        target,
        &[
            "sessions",
            "--status",
            "completed",
            "--workflow",
            "checkout",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(completed["sessions"].as_array().unwrap().len(), 2);
    let text = inspect(target, &["sessions", "--node", "review"]);
    assert_eq!(text.code, 0, "{}", text.err);
    let lines: Vec<&str> = text.out.lines().collect();
    assert!(lines[0].starts_with("SESSION  "), "{}", text.out);
    assert!(lines[1].starts_with("big-1    "), "{}", text.out);
    // Columns line up: every row has its status where the header has STATUS.
    let column = lines[0].find("STATUS").unwrap();
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l[column..].starts_with("waiting"))
    );

    // One session, decoded.
    let big = inspect(target, &["show", "big-1", "-o", "json"]).json();
    assert_eq!(big["status"], "waiting");
    assert_eq!(big["waiting"], serde_json::json!(["review"]));
    assert_eq!(big["state"]["total_cents"], 250_00);
    assert_eq!(big["workflow"], "checkout");

    // Bad input: a clear error on stderr, a non-zero exit, and nothing changed.
    let before = history_len(target, "big-1");
    for (args, code, says) in [
        (vec!["decide", "big-1", "not json"], 2, "not JSON"),
        (
            vec!["decide", "big-1", r#"{"review":"Maybe"}"#],
            2,
            "unknown variant `Maybe`",
        ),
        (
            vec!["decide", "big-1", r#"{"ship":"Approve"}"#],
            4,
            "waits at `review`",
        ),
        (
            vec!["decide", "big-1", r#"["review"]"#],
            2,
            "one key, the node's name",
        ),
        (
            vec!["decide", "small", r#"{"review":"Approve"}"#],
            4,
            "completed",
        ),
        (
            vec!["decide", "nobody", r#"{"review":"Approve"}"#],
            3,
            "no session `nobody`",
        ),
        (
            vec!["edit", "big-1", r#"{"total_cents":"lots"}"#],
            2,
            "not a valid `checkout` state",
        ),
        (vec!["edit", "big-1", "{"], 2, "not JSON"),
        (
            vec![
                "edit",
                "big-1",
                r#"{"total_cents":1}"#,
                "--expected-seq",
                "99",
            ],
            4,
            "advanced by another writer",
        ),
        (
            vec!["edit", "small", r#"{"total_cents":1}"#],
            4,
            "has completed",
        ),
        (vec!["show", "stranger"], 1, "does not know"),
        (vec!["show", "nobody"], 3, "no session"),
        (vec!["sessions", "--limit", "0"], 2, "--limit"),
        (vec!["sessions", "--limit", "100000000"], 2, "--limit"),
        (
            vec!["sessions", "--status", "stuck"],
            2,
            "unknown status `stuck`",
        ),
        (vec!["graph", "nothing"], 3, "no workflow `nothing`"),
        (vec!["cancel"], 2, "needs a session id"),
        (
            vec!["diff", "big-1", "0", "77"],
            2,
            "keeps no checkpoint 77",
        ),
    ] {
        let run = inspect(target, &args);
        assert_eq!(run.code, code, "{args:?}: {}", run.err);
        assert!(run.err.contains(says), "{args:?}: {}", run.err);
        assert!(!run.err.contains("panicked"), "{}", run.err);
    }
    // The same error as JSON for a script.
    let run = inspect(target, &["show", "nobody", "-o", "json"]);
    let error: Value = serde_json::from_str(&run.err).unwrap();
    assert_eq!(error["error"]["code"], "unknown_session");
    assert_eq!(history_len(target, "big-1"), before);
    assert_eq!(
        inspect(target, &["show", "big-1", "-o", "json"]).json()["state"]["total_cents"],
        250_00
    );

    // An edit, then the decision: both audited with who and why.
    let edited = inspect(
        target,
        &[
            "edit",
            "big-1",
            r#"{"total_cents":240}"#,
            "--by",
            "bob",
            "--note",
            "coupon",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(edited["state"]["total_cents"], 240);
    assert_eq!(edited["status"], "waiting");
    let decided = inspect(
        target,
        &[
            "decide",
            "big-1",
            r#"{"review":"Approve"}"#,
            "--by",
            "alice",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(decided["status"], "completed");
    assert_eq!(decided["state"]["approved"], true);
    assert_eq!(decided["state"]["shipped"], true);
    let history = inspect(target, &["history", "big-1", "-o", "json"]).json();
    let events: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h.get("event"))
        .collect();
    assert_eq!(events.len(), 2, "{history:#}");
    assert_eq!(events[0]["kind"], "edit");
    assert_eq!(events[0]["actor"], "bob");
    assert_eq!(events[0]["note"], "coupon");
    assert_eq!(events[0]["diff"][0]["path"], "/total_cents");
    assert_eq!(events[0]["diff"][0]["old"], 250_00);
    assert_eq!(events[0]["diff"][0]["new"], 240);
    assert_eq!(events[1]["kind"], "decision");
    assert_eq!(events[1]["node"], "review");
    assert_eq!(events[1]["source"], "caller");
    assert_eq!(events[1]["actor"], "alice");
    let text = inspect(target, &["history", "big-1"]);
    assert!(
        text.out.contains("decision review by alice"),
        "{}",
        text.out
    );

    // What the decision changed.
    let last = history.as_array().unwrap().last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let diff = inspect(
        target,
        &["diff", "big-1", "0", &last.to_string(), "-o", "json"],
    )
    .json();
    let paths: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"/approved") && paths.contains(&"/shipped"),
        "{paths:?}"
    );

    // Fork with a patch, then cancel and delete the copy.
    let fork = inspect(
        target,
        &[
            "fork",
            "big-2",
            "big-2-copy",
            "--patch",
            r#"{"total_cents":1}"#,
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(fork["state"]["total_cents"], 1);
    assert_eq!(
        inspect(target, &["show", "big-2", "-o", "json"]).json()["state"]["total_cents"],
        300_00
    );
    let cancelled = inspect(
        target,
        &["cancel", "big-2-copy", "--by", "carol", "-o", "json"],
    )
    .json();
    assert_eq!(cancelled["status"], "cancelled");
    let again = inspect(target, &["cancel", "big-2-copy"]);
    assert_eq!(again.code, 4, "{}", again.err);
    assert!(inspect(target, &["delete", "big-2-copy"]).code == 0);
    assert_eq!(inspect(target, &["show", "big-2-copy"]).code, 3);

    // Export: one JSON line per session with its state.
    let export = inspect(target, &["export", "--workflow", "checkout"]);
    assert_eq!(export.code, 0, "{}", export.err);
    let lines: Vec<Value> = export
        .out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l["state"].is_object()));

    // Bulk: a dry run lists and changes nothing; --yes acts.
    let dry = inspect(
        target,
        &[
            "cancel",
            "--status",
            "waiting",
            "--workflow",
            "checkout",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["sessions"], serde_json::json!(["big-2"]));
    assert_eq!(
        inspect(target, &["show", "big-2", "-o", "json"]).json()["status"],
        "waiting"
    );
    let done = inspect(
        target,
        &[
            "cancel",
            "--status",
            "waiting",
            "--workflow",
            "checkout",
            "--yes",
            "--by",
            "ops",
            "-o",
            "json",
        ],
    )
    .json();
    assert_eq!(done["done"], 1);
    assert_eq!(
        inspect(target, &["show", "big-2", "-o", "json"]).json()["status"],
        "cancelled"
    );

    // The graph, and the stuck list.
    let graph = inspect(target, &["graph", "-o", "json"]).json();
    assert_eq!(graph[0]["workflow"], "checkout");
    assert_eq!(
        graph[0]["graph_hash"],
        format!("{:#018x}", checkout::GRAPH_HASH)
    );
    assert!(
        graph[0]["mermaid"]
            .as_str()
            .unwrap()
            .starts_with("flowchart")
    );
    let stuck = inspect(target, &["stuck", "--older-than", "0s", "-o", "json"]).json();
    let stuck: Vec<&str> = stuck
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session"].as_str().unwrap())
        .collect();
    assert_eq!(
        stuck,
        ["stranger"],
        "only the other workflow's session still waits"
    );
}

#[test]
fn the_command_line_on_a_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkout.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(seed(SqliteStore::open(&path).unwrap()));
    exercise(&Target("INSPECT_SQLITE", path.display().to_string()));
}

#[test]
fn the_command_line_on_postgres() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let conninfo = runtime.block_on(async {
        let conninfo = postgres::database().await;
        seed(PostgresStore::connect(&conninfo).await.unwrap()).await;
        conninfo
    });
    exercise(&Target("INSPECT_POSTGRES", conninfo));
}
