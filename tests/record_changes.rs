//! Every record a session keeps is read back only as the type that wrote it: a branch's saved
//! output, a map's items and a recorded decision carry their type's `StateSchema`
//! fingerprint, as the state does. Three releases of one workflow on one store, as a team
//! ships them while sessions wait:
//!
//! - release 1: `check` returns `Check { score }`, `review` waits for a person;
//! - release 2: the field is renamed `risk` (same layout, opposite meaning), and the graph
//!   accepts release 1's hash as the mismatch message suggests;
//! - release 3: `Check` gains a field (another layout).
//!
//! Reading a session needs only its state's schema; running it on checks the graph and every
//! saved value before a byte of it is decoded.

use graph_runtime::prelude::*;
use graph_runtime::{Error, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Claim {
    pub approved: bool,
    pub decided_with: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Note {
    pub text: String,
}

/// The graph hash of release 1, pinned: release 2 lists it in `accept_graphs` as a literal,
/// the way a user copies it from the `GraphMismatch` message. `release_1_hash_is_pinned`
/// fails if it moves.
const RELEASE_1_HASH: u64 = 0xae14_702c_f7fa_97d3;

/// The claims workflow of one release: `check` runs beside `review`, a person's note, and
/// `decide` joins them. Releases differ in `Check`, in what `check` returns, in how `decide`
/// reads it, and in the attributes on the workflow and on `check`.
macro_rules! claims_release {
    (
        workflow($($workflow:tt)*),
        check($($check_attr:tt)*) => $check:expr,
        decide($c:ident, $out:ident) => $decide:block
    ) => {
        #[workflow(state = Claim $($workflow)*)]
        pub mod claims {
            use super::*;

            edge!(START -> intake);
            edge!(intake -> check & review);
            edge!(check & review -> decide);
            edge!(decide -> END);

            #[node]
            async fn intake(_c: &mut Claim) {}

            #[node $($check_attr)*]
            async fn check(_c: &Claim) -> Check {
                $check
            }

            #[node(interrupt)]
            async fn review(_c: &Claim, note: Note) -> Note {
                note
            }

            #[node]
            async fn decide($c: &mut Claim, $out: Check, review: Note) {
                let _ = review;
                $decide
            }
        }
    };
}

pub mod release1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Check {
        pub score: u32,
    }

    // A high score means a good claim.
    claims_release! {
        workflow(),
        check() => Check { score: 90 },
        decide(c, check) => {
            c.approved = check.score > 50;
            c.decided_with = check.score;
        }
    }
}

pub mod release2 {
    use super::*;

    /// Same layout as release 1's `Check`, opposite meaning.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Check {
        pub risk: u32,
    }

    // A high risk means a bad claim.
    claims_release! {
        workflow(, accept_graphs = [0xae14_702c_f7fa_97d3]),
        check() => Check { risk: 10 },
        decide(c, check) => {
            c.approved = check.risk < 50;
            c.decided_with = check.risk;
        }
    }
}

pub mod release3 {
    use super::*;

    /// Another layout.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Check {
        pub score: u32,
        pub reasons: Vec<String>,
    }

    claims_release! {
        workflow(, accept_graphs = [0xae14_702c_f7fa_97d3]),
        check() => Check { score: 90, reasons: Vec::new() },
        decide(c, check) => {
            c.approved = check.score > 50;
            c.decided_with = check.score;
        }
    }
}

/// A later release that dropped the parallel review altogether: `decide` is gone.
pub mod without_decide {
    use super::*;

    #[workflow(state = Claim, accept_graphs = [0xae14_702c_f7fa_97d3])]
    pub mod claims {
        use super::*;

        edge!(START -> intake);
        edge!(intake -> END);

        #[node]
        async fn intake(_c: &mut Claim) {}
    }
}

fn note() -> Note {
    Note {
        text: "looks fine".to_owned(),
    }
}

/// A session of release 1 waiting at `review`, with `check`'s output saved beside it.
async fn waiting_in_release1(store: &MemoryStore) {
    let runner = Runner::new(release1::claims::Workflow, store.clone());
    let out = runner.start("claim-1", Claim::default()).await.unwrap();
    assert!(matches!(out, Outcome::Interrupted { node: "review", .. }));
}

async fn kept(store: &MemoryStore) -> usize {
    graph_runtime::store::Store::list(store, "claim-1")
        .await
        .unwrap()
        .len()
}

#[test]
fn release_1_hash_is_pinned() {
    assert_eq!(
        release1::claims::GRAPH_HASH,
        RELEASE_1_HASH,
        "release 1's graph hash moved: update RELEASE_1_HASH and the accept_graphs literals"
    );
    // Renaming the output's field changes the output's fingerprint, and so the hash.
    assert_ne!(release2::claims::GRAPH_HASH, RELEASE_1_HASH);
}

#[tokio::test]
async fn a_branch_output_of_another_schema_is_refused_not_misread() {
    let store = MemoryStore::new();
    waiting_in_release1(&store).await;
    let before = kept(&store).await;
    let release2 = Runner::new(release2::claims::Workflow, store.clone());
    let err = release2
        .resume_with("claim-1", release2::claims::Input::Review(note()))
        .await
        .unwrap_err();
    match &err {
        Error::SchemaMismatch {
            session,
            what: "branch output",
            branch: Some("check"),
            item: None,
            stored,
            compiled,
            ..
        } => {
            assert_eq!(session, "claim-1");
            assert_eq!(
                *stored,
                <release1::Check as graph_runtime::StateSchema>::SCHEMA
            );
            assert_eq!(
                *compiled,
                <release2::Check as graph_runtime::StateSchema>::SCHEMA
            );
        }
        other => panic!("expected a schema mismatch of `check`'s output, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("`check`") && message.contains("#[node(migrate_from"),
        "{message}"
    );
    // Refused before anything ran: nothing written, and the session still waits.
    assert_eq!(kept(&store).await, before);
    let snapshot = release2.state("claim-1").await.unwrap().unwrap();
    assert_eq!(
        snapshot.status,
        Status::Waiting {
            node: "review".into()
        }
    );
    assert_eq!(snapshot.state, Claim::default());
    // Plain `resume` refuses it the same way.
    assert!(matches!(
        release2.resume("claim-1").await,
        Err(Error::SchemaMismatch {
            what: "branch output",
            ..
        })
    ));
    // The release that wrote it still finishes it, with the right decision.
    let release1 = Runner::new(release1::claims::Workflow, store.clone());
    let done = release1
        .resume_with("claim-1", release1::claims::Input::Review(note()))
        .await
        .unwrap();
    assert_eq!(
        done,
        Outcome::Completed(Claim {
            approved: true,
            decided_with: 90
        })
    );
}

#[tokio::test]
async fn a_branch_output_of_another_layout_is_a_schema_mismatch_not_a_node_failure() {
    let store = MemoryStore::new();
    waiting_in_release1(&store).await;
    let release3 = Runner::new(release3::claims::Workflow, store.clone());
    let err = release3
        .resume_with("claim-1", release3::claims::Input::Review(note()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaMismatch {
                what: "branch output",
                branch: Some("check"),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn reading_a_session_needs_no_graph() {
    let store = MemoryStore::new();
    // A completed session of release 1, and one waiting in its region.
    let release1 = Runner::new(release1::claims::Workflow, store.clone());
    release1.start("done", Claim::default()).await.unwrap();
    release1
        .resume_with("done", release1::claims::Input::Review(note()))
        .await
        .unwrap();
    waiting_in_release1(&store).await;

    // A release with another graph that does not accept release 1's: reading works.
    let strict = Runner::new(release2::claims::Workflow, store.clone());
    let done = strict.state("done").await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed);
    assert!(done.state.approved);
    let first = strict.state_at("done", 0).await.unwrap().unwrap();
    assert_eq!(first.node, "intake");
    assert!(!strict.history("done").await.unwrap().is_empty());
    // A completed session's end needs no graph either: `resume` returns it.
    assert!(matches!(
        strict.resume("done").await,
        Ok(Outcome::Completed(Claim { approved: true, .. }))
    ));
    let waiting = strict.state("claim-1").await.unwrap().unwrap();
    assert_eq!(
        waiting.status,
        Status::Waiting {
            node: "review".into()
        }
    );
    assert_eq!(waiting.waiting, ["review"]);

    // A release without the region's join: the session reads with its node as stored...
    let removed = Runner::new(without_decide::claims::Workflow, store.clone());
    let snapshot = removed.state("claim-1").await.unwrap().unwrap();
    assert_eq!(snapshot.node, "decide");
    assert!(matches!(snapshot.status, Status::Waiting { .. }));
    assert!(snapshot.waiting.is_empty());
    let done = removed.state("done").await.unwrap().unwrap();
    assert_eq!(done.status, Status::Completed);
    // ...and resuming it says the node is gone, not that the store is corrupt.
    match removed.resume("claim-1").await {
        Err(Error::UnknownNode { session, node }) => {
            assert_eq!((session.as_str(), node.as_str()), ("claim-1", "decide"));
        }
        other => panic!("expected UnknownNode, got {other:?}"),
    }
}

#[tokio::test]
async fn a_graph_not_accepted_is_refused_only_when_run_on() {
    let store = MemoryStore::new();
    waiting_in_release1(&store).await;
    // `without_decide` accepts release 1; release 1 does not accept release 2's graph.
    let release2 = Runner::new(release2::claims::Workflow, store.clone());
    release2.start("claim-2", Claim::default()).await.unwrap();
    let release1 = Runner::new(release1::claims::Workflow, store.clone());
    assert!(release1.state("claim-2").await.unwrap().is_some());
    let err = release1
        .resume_with("claim-2", release1::claims::Input::Review(note()))
        .await
        .unwrap_err();
    match err {
        Error::GraphMismatch {
            stored, compiled, ..
        } => assert_eq!(
            (stored, compiled),
            (release2::claims::GRAPH_HASH, RELEASE_1_HASH)
        ),
        other => panic!("expected GraphMismatch, got {other:?}"),
    }
}

/// Map items carry their type's fingerprint too.
pub mod map_release1 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Line {
        pub cents: u64,
    }

    #[workflow(state = Claim)]
    pub mod lines {
        use super::*;

        edge!(START -> plan);
        edge!(plan -> each assess);
        edge!(assess -> total);
        edge!(total -> END);

        #[node]
        async fn plan(_c: &mut Claim) -> Vec<Line> {
            vec![Line { cents: 5 }, Line { cents: 7 }]
        }

        #[node]
        async fn assess(_c: &Claim, line: Line) -> Result<u32, String> {
            if line.cents == 7 {
                return Err("the pricing service is down".to_owned());
            }
            Ok(line.cents as u32)
        }

        #[node]
        async fn total(c: &mut Claim, assess: Vec<u32>) {
            c.decided_with = assess.iter().sum();
        }
    }
}

pub mod map_release2 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Line {
        pub tax_cents: u64,
    }

    #[workflow(state = Claim)]
    pub mod lines {
        use super::*;

        edge!(START -> plan);
        edge!(plan -> each assess);
        edge!(assess -> total);
        edge!(total -> END);

        #[node]
        async fn plan(_c: &mut Claim) -> Vec<Line> {
            vec![Line { tax_cents: 1 }]
        }

        #[node]
        async fn assess(_c: &Claim, line: Line) -> u32 {
            line.tax_cents as u32
        }

        #[node]
        async fn total(c: &mut Claim, assess: Vec<u32>) {
            c.decided_with = assess.iter().sum();
        }
    }
}

#[tokio::test]
async fn map_items_of_another_schema_are_refused() {
    let store = MemoryStore::new();
    let release1 = Runner::new(map_release1::lines::Workflow, store.clone());
    // Item 1 fails: the session stays in the map, its items saved.
    let err = release1
        .start("lines-1", Claim::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Node { node: "assess", .. }), "{err:?}");
    // Another graph, run on under `Force` (which waives the graph hash, not the records).
    let release2 = Runner::new(map_release2::lines::Workflow, store.clone())
        .on_graph_change(GraphChange::Force);
    match release2.resume("lines-1").await {
        Err(Error::SchemaMismatch {
            what: "map item",
            branch: Some("assess"),
            item: Some(0),
            stored,
            compiled,
            ..
        }) => {
            assert_eq!(
                stored,
                <map_release1::Line as graph_runtime::StateSchema>::SCHEMA
            );
            assert_eq!(
                compiled,
                <map_release2::Line as graph_runtime::StateSchema>::SCHEMA
            );
        }
        other => panic!("expected a schema mismatch of the map's items, got {other:?}"),
    }
}

/// Release 4 keeps release 1's output type and converts it: `score` is 100 minus the risk.
pub mod release4 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Check {
        pub risk: u32,
    }

    impl From<release1::Check> for Check {
        fn from(old: release1::Check) -> Self {
            Check {
                risk: 100 - old.score,
            }
        }
    }

    claims_release! {
        workflow(, accept_graphs = [0xae14_702c_f7fa_97d3]),
        check((migrate_from = [release1::Check])) => Check { risk: 10 },
        decide(c, check) => {
            c.approved = check.risk < 50;
            c.decided_with = check.risk;
        }
    }
}

#[tokio::test]
async fn an_output_of_an_older_type_is_migrated_by_its_node() {
    let store = MemoryStore::new();
    waiting_in_release1(&store).await;
    let release4 = Runner::new(release4::claims::Workflow, store.clone());
    let done = release4
        .resume_with("claim-1", release4::claims::Input::Review(note()))
        .await
        .unwrap();
    // Release 1's score of 90 is a risk of 10: approved, as release 1 would have decided.
    assert_eq!(
        done,
        Outcome::Completed(Claim {
            approved: true,
            decided_with: 10
        })
    );
}

pub mod map_release3 {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
    pub struct Line {
        pub tax_cents: u64,
    }

    impl From<map_release1::Line> for Line {
        fn from(old: map_release1::Line) -> Self {
            Line {
                tax_cents: old.cents * 10,
            }
        }
    }

    #[workflow(state = Claim)]
    pub mod lines {
        use super::*;

        edge!(START -> plan);
        edge!(plan -> each assess);
        edge!(assess -> total);
        edge!(total -> END);

        #[node(migrate_from = [map_release1::Line])]
        async fn plan(_c: &mut Claim) -> Vec<Line> {
            vec![Line { tax_cents: 1 }]
        }

        #[node]
        async fn assess(_c: &Claim, line: Line) -> u32 {
            line.tax_cents as u32
        }

        #[node]
        async fn total(c: &mut Claim, assess: Vec<u32>) {
            c.decided_with = assess.iter().sum();
        }
    }
}

#[tokio::test]
async fn map_items_of_an_older_type_are_migrated_by_the_node_before_each() {
    let store = MemoryStore::new();
    let release1 = Runner::new(map_release1::lines::Workflow, store.clone());
    release1
        .start("lines-1", Claim::default())
        .await
        .unwrap_err();
    let release3 = Runner::new(map_release3::lines::Workflow, store.clone())
        .on_graph_change(GraphChange::Force);
    // Item 0 finished under release 1 (its output, a `u32`, is kept: 5); item 1 runs now on
    // its migrated item (7 cents -> 70).
    let done = release3.resume("lines-1").await.unwrap();
    assert_eq!(done.into_state().decided_with, 75);
}

#[tokio::test]
async fn a_graph_mismatch_says_what_changed_and_versions_are_counted() {
    let store = MemoryStore::new();
    let release1 = Runner::new(release1::claims::Workflow, store.clone());
    release1.start("a", Claim::default()).await.unwrap();
    release1.start("b", Claim::default()).await.unwrap();
    let release2 = Runner::new(release2::claims::Workflow, store.clone());
    release2.start("c", Claim::default()).await.unwrap();

    // Release 1 does not accept release 2's graph: the error says what differs.
    let err = release1.resume("c").await.unwrap_err();
    let Error::GraphMismatch { changed, .. } = &err else {
        panic!("expected GraphMismatch, got {err:?}");
    };
    assert_eq!(changed, &["output type of `check` changed"]);
    assert!(
        err.to_string()
            .contains("changed since: output type of `check` changed"),
        "{err}"
    );
    // A release that removed the parallel review does not accept release 2's graph either.
    let removed = Runner::new(without_decide::claims::Workflow, store.clone());
    let err = removed.resume("c").await.unwrap_err();
    let Error::GraphMismatch { changed, .. } = &err else {
        panic!("expected GraphMismatch, got {err:?}");
    };
    for expected in [
        "node `check` removed",
        "node `decide` removed",
        "node `review` removed",
    ] {
        assert!(changed.iter().any(|c| c == expected), "{changed:?}");
    }

    // Both graphs are kept, and each session counted at the graph it was last written by.
    let versions = release1.graph_versions().await.unwrap();
    let hashes: Vec<u64> = versions.iter().map(|v| v.graph_hash).collect();
    for hash in [RELEASE_1_HASH, release2::claims::GRAPH_HASH] {
        assert!(hashes.contains(&hash), "{hashes:x?}");
    }
    assert!(versions[0].description.starts_with("graph-runtime/v2"));
    let count = |in_use: &[graph_runtime::store::VersionCount], hash: u64| {
        in_use
            .iter()
            .filter(|c| c.graph_hash == hash)
            .map(|c| c.sessions)
            .sum::<u64>()
    };
    let in_use = release1.versions_in_use().await.unwrap();
    assert_eq!(count(&in_use, RELEASE_1_HASH), 2);
    assert_eq!(count(&in_use, release2::claims::GRAPH_HASH), 1);
    // Release 2 (which accepts release 1) moves `a` on: `a` now counts at release 2.
    release2
        .resume_with("a", release2::claims::Input::Review(note()))
        .await
        .unwrap_err(); // `check`'s output is of release 1's type: refused, nothing written
    let release4 = Runner::new(release4::claims::Workflow, store.clone());
    release4
        .resume_with("a", release4::claims::Input::Review(note()))
        .await
        .unwrap();
    let in_use = release1.versions_in_use().await.unwrap();
    assert_eq!(count(&in_use, RELEASE_1_HASH), 1);
    // `migrate_from` is not structure: releases 2 and 4 are one graph, with `a` and `c`.
    assert_eq!(release4::claims::GRAPH_HASH, release2::claims::GRAPH_HASH);
    assert_eq!(count(&in_use, release4::claims::GRAPH_HASH), 2);
    assert!(in_use.iter().all(|c| c.state_schema == Some(STATE)));
}

const STATE: u64 = <Claim as graph_runtime::StateSchema>::SCHEMA;
