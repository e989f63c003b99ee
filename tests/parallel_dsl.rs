//! Parallel branches in the `#[workflow]` DSL, compiled for real: the claims graph of the
//! design (a fan-out with an interrupt branch, a join, a map with a concurrency limit and its
//! join), its generated items, its hash and diagram, and the generated `region` and `join`
//! called directly through the hidden `Execute` trait.

use graph_runtime::__private::{Execute, Outputs, Region, RegionKind, Saved, Slot};
use graph_runtime::Workflow as _;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// The claims graph of the trybuild pass case `tests/ui/pass/parallel.rs`, compiled once more
/// here to be called (its `main` is that case's own check).
#[path = "ui/pass/parallel.rs"]
#[allow(dead_code)]
mod claims_case;

use claims_case::*;

type Exec = <claims::Workflow as graph_runtime::Workflow>::Exec;
type Cursor = <Exec as Execute<claims::Workflow>>::Cursor;

fn cursor(name: &str) -> Cursor {
    <Exec as Execute<claims::Workflow>>::cursor_of(name).expect("a node of the claims graph")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    graph_runtime::__private::encode_output(value).expect("encodes")
}

#[test]
fn generated_items() {
    assert_eq!(claims::Workflow::NAME, "claims");
    assert_eq!(
        claims::NODES,
        &[
            "intake", "fraud", "coverage", "adjuster", "decide", "plan", "assess", "total"
        ]
    );
    assert_eq!(claims::Workflow::NODES, claims::NODES);
    // The join `decide` branches; the others have one successor (or fan out) and no routes.
    let routes = [claims::decide::Next::Plan, claims::decide::Next::End];
    assert_ne!(routes[0], routes[1]);
    // The interrupt branch has its `Input` variant, and an input finds its node.
    let input = claims::Input::Adjuster(AdjusterNote { text: "ok".into() });
    assert_eq!(
        <Exec as Execute<claims::Workflow>>::input_node(&input),
        cursor("adjuster")
    );
    const { assert!(<Exec as Execute<claims::Workflow>>::PARALLEL) };
    assert_eq!(claims::Workflow::node("fraud").map(|n| n.retry), Some(3));
    assert_eq!(
        claims::Workflow::node("assess").map(|n| n.interrupt),
        Some(false)
    );
    assert_eq!(
        claims::Workflow::node("adjuster").map(|n| n.interrupt),
        Some(true)
    );
}

#[test]
fn regions_list_branches_in_declaration_order() {
    let region = |name: &str| <Exec as Execute<claims::Workflow>>::region(cursor(name));
    let decide: &Region<Cursor> = region("decide").expect("`decide` joins the fan-out");
    assert_eq!(decide.join, cursor("decide"));
    match &decide.kind {
        RegionKind::FanOut { branches, collect } => {
            assert_eq!(
                *branches,
                &[cursor("fraud"), cursor("coverage"), cursor("adjuster")]
            );
            assert_eq!(*collect, &[false, false, false]);
        }
        other => panic!("expected a fan-out, got {other:?}"),
    }
    let total = region("total").expect("`total` joins the map");
    match total.kind {
        RegionKind::Map {
            node,
            concurrency,
            collect,
        } => {
            assert_eq!(node, cursor("assess"));
            assert_eq!(concurrency, 8);
            assert!(!collect);
        }
        ref other => panic!("expected a map, got {other:?}"),
    }
    for name in ["intake", "fraud", "adjuster", "plan", "assess"] {
        assert!(region(name).is_none(), "{name} is no join");
    }
}

#[test]
fn branches_and_joins_are_the_runners_to_schedule() {
    let free = |name: &str| <Exec as Execute<claims::Workflow>>::runs_freely(cursor(name));
    for name in ["fraud", "coverage", "adjuster", "decide", "assess", "total"] {
        assert!(!free(name), "{name} must not run freely");
    }
    assert!(free("intake"));
    assert!(free("plan"));
}

/// Pinned: the canonical text of a parallel graph (its `fan-out`, `join` and `map` lines) and
/// the fingerprints of its branch outputs and map items. A change here refuses every saved
/// checkpoint of such a graph.
const PINNED_CLAIMS_GRAPH_HASH: u64 = 0x530c_e63e_ce1e_7a68;

#[test]
fn graph_hash_is_pinned() {
    assert_eq!(
        claims::GRAPH_HASH,
        PINNED_CLAIMS_GRAPH_HASH,
        "got {:#018x}",
        claims::GRAPH_HASH
    );
    assert_eq!(claims::Workflow::GRAPH_HASH, claims::GRAPH_HASH);
}

#[test]
fn mermaid_draws_all_of_edges_thick() {
    assert_eq!(
        claims::MERMAID,
        "flowchart TD\n    START([START])\n    intake[intake]\n    fraud[fraud]\n    coverage[coverage]\n    adjuster{{adjuster}}\n    decide[decide]\n    plan[plan]\n    assess[assess]\n    total[total]\n    END([END])\n    START --> intake\n    intake ==> fraud\n    intake ==> coverage\n    intake ==> adjuster\n    fraud ==> decide\n    coverage ==> decide\n    adjuster ==> decide\n    decide --> plan\n    decide --> END\n    plan ==>|each| assess\n    assess ==> total\n    total --> END\n"
    );
}

#[tokio::test]
async fn node_functions_stay_callable() {
    let claim = Claim {
        amount_cents: 500,
        ..Claim::default()
    };
    assert_eq!(claims::coverage(&claim).await, Coverage { covered: true });
    let item = LineItem { cents: 7 };
    assert_eq!(
        claims::assess(&claim, item).await.unwrap(),
        Assessed { cents: 7 }
    );
}

/// A `NodeCtx` has no public constructor: the harness borrows the one the runner gives its
/// only node, and calls the claims graph's generated `branch` and `join` with it. What they
/// returned is written into the harness's state, which the tests read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Trial {
    pub log: Vec<String>,
    pub claim: Claim,
}

mod harness {
    use super::*;
    use graph_runtime::__private::{BranchResult, Transition};

    #[workflow(state = Trial)]
    pub mod drive {
        use super::*;

        edge!(START -> drive);
        edge!(drive -> END);

        #[node]
        async fn drive(t: &mut Trial, ctx: &NodeCtx) {
            let w = &claims::Workflow;
            let claim = Claim {
                amount_cents: 1_000,
                ..Claim::default()
            };
            let branch = |name: &str| cursor(name);
            let mut outputs = Vec::new();
            for (name, input) in [
                ("fraud", None),
                ("coverage", None),
                ("adjuster", None),
                (
                    "adjuster",
                    Some(claims::Input::Adjuster(AdjusterNote {
                        text: "checked".into(),
                    })),
                ),
            ] {
                let result = Exec::branch(w, branch(name), &claim, ctx, None, input).await;
                t.log.push(format!("{name}: {}", describe(&result)));
                if let BranchResult::Output(bytes) = result {
                    outputs.push(Slot::Done(Saved::new(0, bytes)));
                }
            }
            // The map node decodes its item; without one it fails, and never panics.
            let item = encode(&LineItem { cents: 40 });
            let result = Exec::branch(w, branch("assess"), &claim, ctx, Some(&item), None).await;
            t.log.push(format!("assess: {}", describe(&result)));
            let result = Exec::branch(w, branch("assess"), &claim, ctx, None, None).await;
            t.log
                .push(format!("assess without item: {}", describe(&result)));
            let result = Exec::branch(w, branch("decide"), &claim, ctx, None, None).await;
            t.log
                .push(format!("decide as a branch: {}", describe(&result)));

            // The join reads each parameter from its branch's slot.
            let mut state = claim.clone();
            let next =
                Exec::join(w, branch("decide"), &mut state, ctx, Outputs::new(&outputs)).await;
            t.log.push(format!("decide: {next:?}"));
            // A slot that does not decode as the parameter's type fails the join for good.
            let wrong = [
                Slot::Done(Saved::new(0, encode(&"not a score"))),
                outputs[1].clone(),
                outputs[2].clone(),
            ];
            let failed =
                Exec::join(w, branch("decide"), &mut state, ctx, Outputs::new(&wrong)).await;
            t.log.push(format!(
                "decide with a bad slot: {}",
                matches!(failed, Transition::FailedPermanently(_))
            ));
            let items = [
                Slot::Done(Saved::new(0, encode(&Assessed { cents: 40 }))),
                Slot::Done(Saved::new(0, encode(&Assessed { cents: 2 }))),
            ];
            let done = Exec::join(w, branch("total"), &mut state, ctx, Outputs::new(&items)).await;
            t.log.push(format!("total: {done:?}"));
            t.claim = state.clone();

            // The node before `each` opens the map with its encoded items; the node before a
            // fan-out goes to the join; branches and joins never run through `step`.
            let mut scratch = state.clone();
            match Exec::step(w, branch("plan"), &mut scratch, ctx, None).await {
                Transition::Map { join, items } => t.log.push(format!(
                    "plan: the map of `{}` over {} items",
                    Exec::spec(join).name,
                    items.len()
                )),
                other => t.log.push(format!("plan: {other:?}")),
            }
            let next = Exec::step(w, branch("intake"), &mut scratch, ctx, None).await;
            t.log.push(format!("intake: {next:?}"));
            for name in ["fraud", "decide"] {
                match Exec::step(w, branch(name), &mut scratch, ctx, None).await {
                    Transition::FailedPermanently(e) => t
                        .log
                        .push(format!("{name} through step: failed permanently: {e}")),
                    other => t.log.push(format!("{name} through step: {other:?}")),
                }
            }
        }
    }

    fn describe(result: &BranchResult) -> String {
        match result {
            BranchResult::Output(bytes) => format!("output of {} bytes", bytes.len()),
            BranchResult::Failed(e) => format!("failed: {e}"),
            BranchResult::FailedPermanently(e) => format!("failed permanently: {e}"),
            BranchResult::MissingInput => "waits for its input".to_owned(),
        }
    }
}

#[tokio::test]
async fn branch_and_join_run_the_users_functions() {
    let runner = Runner::new(harness::drive::Workflow, MemoryStore::new());
    let trial = runner
        .start("trial", Trial::default())
        .await
        .unwrap()
        .into_state();
    assert_eq!(
        trial.log,
        [
            "fraud: output of 1 bytes",
            "coverage: output of 1 bytes",
            "adjuster: waits for its input",
            "adjuster: output of 8 bytes",
            "assess: output of 1 bytes",
            "assess without item: failed permanently: map node `assess` ran without its item",
            "decide as a branch: failed permanently: node `decide` is not a branch node",
            "decide: Next(Plan)",
            "decide with a bad slot: true",
            "total: End",
            "plan: the map of `total` over 2 items",
            "intake: Next(Decide)",
            "fraud through step: failed permanently: node `fraud` is a branch of a parallel region: the runner runs it with `Execute::branch`, not `Execute::step`",
            "decide through step: failed permanently: node `decide` is the join of a parallel region: the runner runs it with `Execute::join`, not `Execute::step`",
        ]
    );
    assert!(trial.claim.approved);
    assert_eq!(trial.claim.note, "checked");
    assert_eq!(trial.claim.assessed_cents, 42);
}
