//! The `#[workflow]` DSL compiled for real: the generated items, the graph hash's stability,
//! the Mermaid text, error edges, and node functions that stay ordinary, directly callable
//! functions.

use std::fmt;

use graph_runtime::Workflow as _;
use graph_runtime::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, StateSchema)]
pub struct Order {
    pub total_cents: u64,
    pub approved: bool,
    pub charge_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub enum Approval {
    Approve,
    Reject { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, StateSchema)]
pub enum Decision {
    Yes,
    No,
}

#[derive(Debug)]
pub struct PaymentError;

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for PaymentError {}

/// The README's checkout workflow, declarations in the README's order.
mod original {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        pub async fn validate(order: &mut Order) -> validate::Next {
            if order.total_cents > 10_000 {
                validate::Next::Review
            } else {
                validate::Next::Charge
            }
        }

        #[node(interrupt)]
        pub async fn review(order: &mut Order, decision: Approval) -> review::Next {
            match decision {
                Approval::Approve => {
                    order.approved = true;
                    review::Next::Charge
                }
                Approval::Reject { .. } => review::Next::Cancel,
            }
        }

        #[node(retry = 3, timeout_ms = 5_000)]
        pub async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), PaymentError> {
            if order.total_cents == 13 {
                return Err(PaymentError);
            }
            order.charge_id = Some(ctx.idempotency_key());
            Ok(())
        }

        #[node]
        pub async fn ship(order: &mut Order) {
            let _ = order;
        }

        #[node]
        pub async fn cancel(order: &mut Order) {
            order.charge_id = None;
        }
    }
}

/// The same graph with every declaration, branch target and node body moved around, and
/// different retry settings and parameter names: the same structure, so the same hash.
mod reordered {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        #[node]
        async fn cancel(o: &mut Order) {
            o.charge_id = None;
            o.approved = false;
        }

        edge!(cancel -> END);
        edge!(review -> cancel | charge);

        #[node(retry = 9)]
        async fn charge(order: &mut Order) -> Result<(), PaymentError> {
            let _ = order;
            Ok(())
        }

        edge!(ship -> END);
        edge!(charge -> ship);

        #[node]
        async fn ship(_: &Order) {}

        #[node(interrupt)]
        async fn review(_order: &mut Order, d: Approval) -> Result<review::Next, PaymentError> {
            Ok(if d == Approval::Approve {
                review::Next::Charge
            } else {
                review::Next::Cancel
            })
        }

        edge!(validate -> charge | review);

        #[node]
        async fn validate(_: &Order) -> validate::Next {
            validate::Next::Review
        }

        edge!(START -> validate);

        use super::*;
    }
}

/// Structural changes, each in its own module named `checkout` (the name is hashed too).
mod renamed_node {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(review -> charge | cancel);
        edge!(charge -> deliver);
        edge!(deliver -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Order) -> validate::Next {
            validate::Next::Charge
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Order) {}
        #[node]
        async fn deliver(_: &mut Order) {}
        #[node]
        async fn cancel(_: &mut Order) {}
    }
}

mod other_input {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Order) -> validate::Next {
            validate::Next::Charge
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Decision) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Order) {}
        #[node]
        async fn ship(_: &mut Order) {}
        #[node]
        async fn cancel(_: &mut Order) {}
    }
}

mod extra_edge {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge | END);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Order) -> validate::Next {
            validate::Next::End
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Order) {}
        #[node]
        async fn ship(_: &mut Order) {}
        #[node]
        async fn cancel(_: &mut Order) {}
    }
}

mod other_state {
    use super::*;

    #[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
    pub struct Basket {
        pub total_cents: u64,
    }

    #[workflow(state = Basket)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Basket) -> validate::Next {
            validate::Next::Charge
        }
        #[node(interrupt)]
        async fn review(_: &mut Basket, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Basket) {}
        #[node]
        async fn ship(_: &mut Basket) {}
        #[node]
        async fn cancel(_: &mut Basket) {}
    }
}

/// The design's workflow with error edges: `charge` and the branching `validate` fail over to
/// `cancel`.
mod error_edge {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(validate -> cancel on error);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(charge -> cancel on error);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Order) -> Result<validate::Next, PaymentError> {
            Ok(validate::Next::Charge)
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Order) -> Result<(), PaymentError> {
            Err(PaymentError)
        }
        #[node]
        async fn ship(_: &mut Order) {}
        #[node]
        async fn cancel(order: &mut Order, ctx: &NodeCtx) {
            order.charge_id = ctx
                .failure()
                .map(|f| format!("{}: {}", f.node(), f.error()));
        }
    }
}

/// The same, with `charge`'s error edge leading elsewhere.
mod retargeted_error_edge {
    use super::*;

    #[workflow(state = Order)]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(validate -> cancel on error);
        edge!(review -> charge | cancel);
        edge!(charge -> ship);
        edge!(charge -> ship on error);
        edge!(ship -> END);
        edge!(cancel -> END);

        #[node]
        async fn validate(_: &mut Order) -> validate::Next {
            validate::Next::Charge
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node]
        async fn charge(_: &mut Order) {}
        #[node]
        async fn ship(_: &mut Order) {}
        #[node]
        async fn cancel(_: &mut Order) {}
    }
}

use original::checkout;

/// The hash of the first release's canonical text (`graph-runtime/v1`, which spelled the
/// state and input types into it): the same value as the macro crate's unit test. Checkpoints
/// of that release store it, so it stays in `ACCEPTED_GRAPHS` forever.
const PINNED_CHECKOUT_HASH: u64 = 0x2204_5b7d_596d_b6de;

/// Today's `GRAPH_HASH` of the checkout graph: the hash of its `graph-runtime/v2` text
/// combined with `review`'s input fingerprint (`Approval`'s `StateSchema`). It may only change
/// with a new canonical version, or if `Approval`'s data model (or the fingerprint scheme of
/// `#[derive(StateSchema)]`) changes.
const PINNED_CHECKOUT_GRAPH_HASH: u64 = 0x6e4c_3a1f_75dc_8fc9;

#[test]
fn graph_hash_is_pinned() {
    assert_eq!(
        checkout::GRAPH_HASH,
        PINNED_CHECKOUT_GRAPH_HASH,
        "{:#018x}",
        checkout::GRAPH_HASH
    );
    assert_eq!(checkout::Workflow::GRAPH_HASH, checkout::GRAPH_HASH);
    // The first release's hash of the same graph still opens its checkpoints.
    assert_eq!(checkout::Workflow::ACCEPTED_GRAPHS, &[PINNED_CHECKOUT_HASH]);
}

#[test]
fn graph_hash_ignores_order_bodies_and_settings() {
    assert_eq!(reordered::checkout::GRAPH_HASH, checkout::GRAPH_HASH);
}

#[test]
fn the_state_has_its_own_fingerprint() {
    // Another state type is another `STATE_SCHEMA`, not another graph.
    assert_eq!(other_state::checkout::GRAPH_HASH, checkout::GRAPH_HASH);
    assert_eq!(checkout::STATE_SCHEMA, <Order as StateSchema>::SCHEMA);
    assert_eq!(checkout::Workflow::STATE_SCHEMA, checkout::STATE_SCHEMA);
    assert_eq!(
        other_state::checkout::STATE_SCHEMA,
        <other_state::Basket as StateSchema>::SCHEMA
    );
    assert_ne!(other_state::checkout::STATE_SCHEMA, checkout::STATE_SCHEMA);
    // The first release spelled the state into the hash: the two differ there.
    assert_ne!(
        other_state::checkout::Workflow::ACCEPTED_GRAPHS,
        checkout::Workflow::ACCEPTED_GRAPHS
    );
}

#[test]
fn graph_hash_follows_the_structure() {
    let hashes = [
        ("renamed node", renamed_node::checkout::GRAPH_HASH),
        ("other interrupt input", other_input::checkout::GRAPH_HASH),
        ("extra edge", extra_edge::checkout::GRAPH_HASH),
        ("error edges", error_edge::checkout::GRAPH_HASH),
        (
            "retargeted error edge",
            retargeted_error_edge::checkout::GRAPH_HASH,
        ),
    ];
    for (i, (what, hash)) in hashes.iter().enumerate() {
        assert_ne!(*hash, checkout::GRAPH_HASH, "{what}");
        for (other, other_hash) in &hashes[i + 1..] {
            assert_ne!(hash, other_hash, "{what} vs {other}");
        }
    }
}

#[test]
fn nodes_are_in_declaration_order() {
    assert_eq!(
        checkout::NODES,
        &["validate", "review", "charge", "ship", "cancel"]
    );
    assert_eq!(checkout::Workflow::NODES, checkout::NODES);
    assert_eq!(
        reordered::checkout::NODES,
        &["cancel", "charge", "ship", "review", "validate"]
    );
    assert_eq!(checkout::Workflow::NAME, "checkout");
}

#[test]
fn mermaid_text() {
    assert_eq!(
        checkout::MERMAID,
        "flowchart TD
    START([START])
    validate[validate]
    review{{review}}
    charge[charge]
    ship[ship]
    cancel[cancel]
    END([END])
    START --> validate
    validate --> review
    validate --> charge
    review --> charge
    review --> cancel
    charge --> ship
    ship --> END
    cancel --> END
"
    );
    assert_eq!(checkout::Workflow::MERMAID, checkout::MERMAID);
}

#[test]
fn next_enums_list_the_successors() {
    use checkout::{review, validate};
    // Exhaustive matches: adding or removing a variant breaks this test at compile time.
    let name = |next: validate::Next| match next {
        validate::Next::Review => "review",
        validate::Next::Charge => "charge",
    };
    assert_eq!(name(validate::Next::Review), "review");
    let name = |next: review::Next| match next {
        review::Next::Charge => "charge",
        review::Next::Cancel => "cancel",
    };
    assert_eq!(name(review::Next::Cancel), "cancel");
    // Ordinary data: Copy, Eq, Hash, Debug.
    let set: std::collections::HashSet<validate::Next> =
        [validate::Next::Review, validate::Next::Review].into();
    assert_eq!(set.len(), 1);
    assert_eq!(
        format!("{:?}", extra_edge::checkout::validate::Next::End),
        "End"
    );
}

#[test]
fn input_enum_has_one_variant_per_interrupt_node() {
    use graph_runtime::__private::Execute as _;
    let input = checkout::Input::Review(Approval::Reject {
        reason: "too big".into(),
    });
    let review = checkout::Workflow::input_node(&input);
    assert_eq!(checkout::Workflow::spec(review).name, "review");
    // It round-trips through serde (the runner records inputs durably).
    let json = format!("{:?}", input.clone());
    assert!(json.contains("too big"));
    fn serde_roundtrip<T: Serialize + for<'de> Deserialize<'de>>() {}
    serde_roundtrip::<checkout::Input>();
}

#[test]
fn specs_carry_the_node_keys() {
    use graph_runtime::__private::Execute as _;
    let spec =
        |name: &str| checkout::Workflow::spec(checkout::Workflow::cursor_of(name).expect(name));
    assert!(spec("review").interrupt);
    assert!(!spec("validate").interrupt);
    assert_eq!(spec("charge").retry, 3);
    assert_eq!(spec("charge").timeout_ms, Some(5_000));
    assert_eq!(spec("ship").retry, 0);
    assert_eq!(spec("ship").timeout_ms, None);
    assert_eq!(
        checkout::Workflow::spec(checkout::Workflow::ENTRY).name,
        "validate"
    );
    assert!(checkout::Workflow::cursor_of("nope").is_none());
    for name in checkout::NODES {
        assert_eq!(spec(name).name, *name);
    }
}

#[tokio::test]
async fn node_functions_stay_callable() {
    let mut order = Order {
        total_cents: 20_000,
        ..Order::default()
    };
    assert_eq!(
        checkout::validate(&mut order).await,
        checkout::validate::Next::Review
    );
    assert_eq!(
        checkout::review(&mut order, Approval::Approve).await,
        checkout::review::Next::Charge
    );
    assert!(order.approved);
    checkout::cancel(&mut order).await;
    assert_eq!(order.charge_id, None);
}

mod failing {
    use super::*;

    #[workflow(state = Order)]
    pub mod boom {
        use super::*;

        edge!(START -> pay);
        edge!(pay -> END);

        #[node]
        async fn pay(order: &mut Order) -> Result<(), PaymentError> {
            order.total_cents += 1;
            Err(PaymentError)
        }
    }
}

#[tokio::test]
async fn runs_follow_the_routes() {
    let runner = Runner::new(checkout::Workflow, MemoryStore::new());
    let order = Order {
        total_cents: 20_000,
        ..Order::default()
    };
    match runner.start("big", order).await.unwrap() {
        Outcome::Interrupted { node, state } => {
            assert_eq!(node, "review");
            assert!(!state.approved);
        }
        other => panic!("expected to wait at review, got {other:?}"),
    }
    let rejected = checkout::Input::Review(Approval::Reject {
        reason: "no".into(),
    });
    let done = runner.resume_with("big", rejected).await.unwrap();
    assert_eq!(
        done,
        Outcome::Completed(Order {
            total_cents: 20_000,
            ..Order::default()
        })
    );

    // The small order goes straight through `charge`, which takes `ctx`.
    let done = runner
        .start(
            "small",
            Order {
                total_cents: 5,
                ..Order::default()
            },
        )
        .await
        .unwrap();
    let state = done.into_state();
    let key = state.charge_id.expect("charged");
    assert!(key.starts_with("small/charge/"), "{key}");
}

#[tokio::test]
async fn node_errors_reach_the_caller() {
    let runner = Runner::new(failing::boom::Workflow, MemoryStore::new());
    match runner.start("s", Order::default()).await {
        Err(graph_runtime::Error::Node { node, source }) => {
            assert_eq!(node, "pay");
            assert_eq!(source.to_string(), "card declined");
        }
        other => panic!("expected the node's error, got {other:?}"),
    }
}

#[test]
fn error_edges_are_in_the_generated_items() {
    use error_edge::checkout::{self as with_errors, Workflow as W};
    use graph_runtime::__private::Execute as _;
    let cursor = |name: &str| W::cursor_of(name).expect(name);
    assert_eq!(W::error_route(cursor("charge")), Some(cursor("cancel")));
    assert_eq!(W::error_route(cursor("validate")), Some(cursor("cancel")));
    for name in ["review", "ship", "cancel"] {
        assert_eq!(W::error_route(cursor(name)), None, "{name}");
    }
    // A graph without error edges keeps the trait's default.
    let original = |name: &str| checkout::Workflow::cursor_of(name).expect(name);
    for name in checkout::NODES {
        assert_eq!(checkout::Workflow::error_route(original(name)), None);
    }
    // A node with an error edge and nothing else to ask of the runner still goes back to it.
    assert!(!W::runs_freely(cursor("validate")));
    assert!(checkout::Workflow::runs_freely(original("validate")));
    // The error target is not a route: `validate::Next` has its two successors only.
    let name = |next: with_errors::validate::Next| match next {
        with_errors::validate::Next::Review => "review",
        with_errors::validate::Next::Charge => "charge",
    };
    assert_eq!(name(with_errors::validate::Next::Charge), "charge");
    assert_eq!(
        with_errors::NODES,
        &["validate", "review", "charge", "ship", "cancel"]
    );
}

#[test]
fn error_edges_change_the_hash_and_only_theirs() {
    // The pinned value of the graph without error edges is untouched (`graph_hash_is_pinned`);
    // adding, or retargeting, an error edge gives another graph.
    assert_eq!(checkout::GRAPH_HASH, PINNED_CHECKOUT_GRAPH_HASH);
    assert_ne!(error_edge::checkout::GRAPH_HASH, PINNED_CHECKOUT_GRAPH_HASH);
    assert_ne!(
        error_edge::checkout::Workflow::ACCEPTED_GRAPHS,
        &[PINNED_CHECKOUT_HASH]
    );
    assert_ne!(
        error_edge::checkout::GRAPH_HASH,
        retargeted_error_edge::checkout::GRAPH_HASH
    );
}

#[test]
fn mermaid_draws_error_edges_dotted() {
    assert_eq!(
        error_edge::checkout::MERMAID,
        "flowchart TD
    START([START])
    validate[validate]
    review{{review}}
    charge[charge]
    ship[ship]
    cancel[cancel]
    END([END])
    START --> validate
    validate --> review
    validate --> charge
    validate -. on error .-> cancel
    review --> charge
    review --> cancel
    charge --> ship
    charge -. on error .-> cancel
    ship --> END
    cancel --> END
"
    );
}

#[tokio::test]
async fn a_failure_takes_the_error_edge() {
    let runner = Runner::new(error_edge::checkout::Workflow, MemoryStore::new());
    let order = runner
        .start("s", Order::default())
        .await
        .unwrap()
        .into_state();
    assert_eq!(order.charge_id.as_deref(), Some("charge: card declined"));
}

/// The state of one graph whose state type is spelled four ways.
#[derive(Debug, Default, Serialize, Deserialize, StateSchema)]
pub struct Doc {
    pub words: u32,
}

/// `state = Doc`, `crate::Doc`, `self::Doc`, and `super::Doc` (another type with the same
/// data model) in four modules of one name (the name is part of the graph).
mod spelling {
    use super::*;

    pub mod one {
        use super::*;
        #[workflow(state = Doc)]
        pub mod write {
            use super::*;
            edge!(START -> edit);
            edge!(edit -> END);
            #[node]
            async fn edit(_: &mut Doc) {}
        }
    }
    pub mod two {
        use super::*;
        #[workflow(state = crate::Doc)]
        pub mod write {
            edge!(START -> edit);
            edge!(edit -> END);
            #[node]
            async fn edit(_: &mut crate::Doc) {}
        }
    }
    pub mod three {
        use super::*;
        #[workflow(state = self::Doc)]
        pub mod write {
            use super::*;
            edge!(START -> edit);
            edge!(edit -> END);
            #[node]
            async fn edit(_: &mut self::Doc) {}
        }
    }
    pub mod four {
        #[derive(
            Debug, Default, serde::Serialize, serde::Deserialize, graph_runtime::StateSchema,
        )]
        pub struct Doc {
            pub words: u32,
        }
        #[graph_runtime::workflow(state = super::Doc)]
        pub mod write {
            edge!(START -> edit);
            edge!(edit -> END);
            #[node]
            async fn edit(_: &mut super::Doc) {}
        }
    }
}

#[test]
fn graph_hash_ignores_how_the_state_is_spelled() {
    use spelling::{four, one, three, two};
    assert_eq!(one::write::GRAPH_HASH, two::write::GRAPH_HASH);
    assert_eq!(one::write::GRAPH_HASH, three::write::GRAPH_HASH);
    assert_eq!(one::write::GRAPH_HASH, four::write::GRAPH_HASH);
    assert_eq!(one::write::STATE_SCHEMA, four::write::STATE_SCHEMA);
    // The first release spelled the state into its hash.
    use graph_runtime::Workflow as W;
    assert_ne!(
        <one::write::Workflow as W>::ACCEPTED_GRAPHS,
        <two::write::Workflow as W>::ACCEPTED_GRAPHS
    );
}

#[test]
fn input_schema_follows_the_input_types() {
    use graph_runtime::Workflow as W;
    // `other_input` waits for a `Decision` where `checkout` waits for an `Approval`.
    assert_ne!(
        <other_input::checkout::Workflow as W>::INPUT_SCHEMA,
        checkout::Workflow::INPUT_SCHEMA
    );
    assert_ne!(other_input::checkout::GRAPH_HASH, checkout::GRAPH_HASH);
    // Bodies and declaration order of other nodes do not matter.
    assert_eq!(
        <reordered::checkout::Workflow as W>::INPUT_SCHEMA,
        checkout::Workflow::INPUT_SCHEMA
    );
    // A graph without interrupt nodes has one fixed value, whatever its state.
    assert_eq!(
        <spelling::one::write::Workflow as W>::INPUT_SCHEMA,
        <migrations::checkout::Workflow as W>::INPUT_SCHEMA
    );
    assert_ne!(
        <spelling::one::write::Workflow as W>::INPUT_SCHEMA,
        checkout::Workflow::INPUT_SCHEMA
    );
}

/// `checkout` one release later: `ship` became `deliver`, `charge` always saves after
/// itself, `validate` never does, and the graph of an even older release is accepted.
mod renamed_from_ship {
    use super::*;

    #[workflow(state = Order, accept_graphs = [0x0123_4567_89ab_cdef])]
    pub mod checkout {
        use super::*;

        edge!(START -> validate);
        edge!(validate -> review | charge);
        edge!(review -> charge | cancel);
        edge!(charge -> deliver);
        edge!(deliver -> END);
        edge!(cancel -> END);

        #[node(checkpoint = never)]
        async fn validate(_: &mut Order) -> validate::Next {
            validate::Next::Charge
        }
        #[node(interrupt)]
        async fn review(_: &mut Order, _: Approval) -> review::Next {
            review::Next::Charge
        }
        #[node(checkpoint = always)]
        async fn charge(_: &mut Order) {}
        #[node(renamed_from = "ship")]
        async fn deliver(_: &mut Order) {}
        #[node]
        async fn cancel(_: &mut Order) {}
    }
}

#[test]
fn renamed_nodes_accept_the_older_graph() {
    use graph_runtime::Workflow as W;
    type Renamed = renamed_from_ship::checkout::Workflow;
    // The graph is `renamed_node`'s (a rename is a structural change)…
    assert_eq!(
        renamed_from_ship::checkout::GRAPH_HASH,
        renamed_node::checkout::GRAPH_HASH
    );
    // …which opens the checkpoints of the graph before the rename, in both canonical
    // versions, of its own first release, and the listed older graph.
    assert_eq!(
        <Renamed as W>::ACCEPTED_GRAPHS,
        &[
            renamed_node::checkout::Workflow::ACCEPTED_GRAPHS[0],
            checkout::GRAPH_HASH,
            PINNED_CHECKOUT_HASH,
            0x0123_4567_89ab_cdef,
        ]
    );
    // A checkpoint at `ship` resumes at `deliver`.
    let deliver = <Renamed as W>::node("deliver").expect("deliver");
    assert_eq!(<Renamed as W>::node("ship"), Some(deliver));
    assert_eq!(deliver.renamed_from, &["ship"]);
    assert_eq!(deliver.name, "deliver");
    assert!(<Renamed as W>::node("review").is_some());
    assert_eq!(<Renamed as W>::NODES.len(), 5);
}

#[test]
fn checkpoint_overrides_are_in_the_specs() {
    use graph_runtime::Workflow as W;
    type Renamed = renamed_from_ship::checkout::Workflow;
    let spec = |name: &str| <Renamed as W>::node(name).expect(name);
    assert_eq!(
        spec("charge").checkpoint,
        graph_runtime::NodeCheckpoint::Always
    );
    assert_eq!(
        spec("validate").checkpoint,
        graph_runtime::NodeCheckpoint::Never
    );
    assert_eq!(
        spec("review").checkpoint,
        graph_runtime::NodeCheckpoint::Policy
    );
    assert!(spec("review").renamed_from.is_empty());
}

/// `migrate_from`: the state of two older releases, each converted into today's.
mod migrations {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, StateSchema)]
    pub struct OrderV1 {
        pub total_cents: u8,
    }

    #[derive(Debug, Serialize, Deserialize, StateSchema)]
    pub struct OrderV2 {
        pub total_cents: u8,
        pub approved: bool,
    }

    impl From<OrderV1> for Order {
        fn from(old: OrderV1) -> Order {
            Order {
                total_cents: u64::from(old.total_cents),
                ..Order::default()
            }
        }
    }

    impl From<OrderV2> for Order {
        fn from(old: OrderV2) -> Order {
            Order {
                total_cents: u64::from(old.total_cents),
                approved: old.approved,
                charge_id: None,
            }
        }
    }

    #[workflow(state = Order, migrate_from = [OrderV1, OrderV2])]
    pub mod checkout {
        use super::*;
        edge!(START -> charge);
        edge!(charge -> END);
        #[node]
        async fn charge(_: &mut Order) {}
    }
}

#[test]
fn migrations_decode_and_convert_older_states() {
    use graph_runtime::__private::Execute as _;
    use graph_runtime::Workflow as W;
    use migrations::{OrderV1, OrderV2};
    type Migrating = migrations::checkout::Workflow;
    let (v1, v2) = (
        <OrderV1 as StateSchema>::SCHEMA,
        <OrderV2 as StateSchema>::SCHEMA,
    );
    assert_eq!(<Migrating as W>::MIGRATES_FROM, &[v1, v2]);
    assert_eq!(
        <Migrating as W>::STATE_SCHEMA,
        <Order as StateSchema>::SCHEMA
    );
    // Without `migrate_from`, nothing to migrate.
    assert!(checkout::Workflow::MIGRATES_FROM.is_empty());
    assert!(checkout::Workflow::migrate_state(v1, &[42]).is_none());

    // A `u8` and a `bool` are one byte each in the checkpoint codec; a trailing byte is
    // left for the caller (the envelope's next field).
    let (order, used) = <Migrating as graph_runtime::__private::Execute<Migrating>>::migrate_state(
        v2,
        &[42, 1, 0xff],
    )
    .expect("a listed schema")
    .expect("decodes");
    assert_eq!(used, 2);
    assert_eq!(
        order,
        Order {
            total_cents: 42,
            approved: true,
            charge_id: None
        }
    );
    let (order, used) =
        <Migrating as graph_runtime::__private::Execute<Migrating>>::migrate_state(v1, &[7])
            .expect("a listed schema")
            .expect("decodes");
    assert_eq!((order.total_cents, order.approved, used), (7, false, 1));
    // Too short: a decoding error, not a panic.
    assert!(matches!(
        <Migrating as graph_runtime::__private::Execute<Migrating>>::migrate_state(v2, &[42]),
        Some(Err(_))
    ));
    // Not listed: `None`, so the runner reports a schema mismatch.
    assert!(
        <Migrating as graph_runtime::__private::Execute<Migrating>>::migrate_state(
            <Order as StateSchema>::SCHEMA,
            &[0]
        )
        .is_none()
    );
}
