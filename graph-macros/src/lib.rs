//! Procedural macros for [graph-runtime](https://docs.rs/graph-runtime): `#[workflow]` and
//! `#[node]`.
//!
//! Use them through `graph_runtime` (`use graph_runtime::prelude::*;`), which re-exports them
//! and provides everything the generated code names. The pipeline, one module per stage:
//!
//! ```text
//! parse   (syn → nodes, edges, other items)  →  model (the graph IR)
//!   →  check (one function per graph rule; every error collected in a `Ctxt`)
//!   →  lower (the plan: one task per node)
//!   →  expand (enums, constants, the `Workflow` impl)  |  fallback (items + errors)
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;

mod canonical;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod hash;
mod lower;
mod mermaid;
mod model;
mod parse;
mod pipeline;
mod state_schema;
mod suggest;

// The fuzz targets' bodies (see `fuzz/` at the repository's root); the unit tests replay
// their committed corpus through them.
#[cfg(test)]
mod fuzz;

/// Turns an inline module of `#[node]` functions and `edge!` declarations into a
/// compile-time-checked workflow graph.
///
/// ```
/// # #![allow(clippy::inconsistent_digit_grouping)]
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Clone, Default, Serialize, Deserialize, StateSchema)]
/// pub struct Order { pub total_cents: u64, pub approved: bool }
///
/// #[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
/// pub enum Approval { Approve, Reject }
///
/// #[workflow(state = Order)]
/// pub mod checkout {
///     use super::*;
///
///     edge!(START -> validate);
///     edge!(validate -> review | charge);   // a branch: `validate` returns `validate::Next`
///     edge!(review -> charge | END);
///     edge!(charge -> END);
///
///     #[node]
///     async fn validate(order: &mut Order) -> validate::Next {
///         if order.total_cents > 100_00 { validate::Next::Review } else { validate::Next::Charge }
///     }
///
///     #[node(interrupt)]                    // waits for a typed human decision
///     async fn review(order: &mut Order, decision: Approval) -> review::Next {
///         match decision {
///             Approval::Approve => { order.approved = true; review::Next::Charge }
///             Approval::Reject => review::Next::End,
///         }
///     }
///
///     #[node(retry = 3, timeout_ms = 5_000)]
///     async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), std::io::Error> {
///         let _key = ctx.idempotency_key();  // stable across re-runs of this step
///         Ok(())
///     }
/// }
/// # fn main() {}
/// ```
///
/// # Arguments
///
/// - `state = T` (required): the type every node reads and changes, and that checkpoints
///   save. It is resolved inside the module, like the node functions' own types (hence the
///   usual `use super::*;`). `T` implements `Serialize`, `Deserialize` and
///   **`StateSchema`** (`#[derive(StateSchema)]`, in the prelude): the fingerprint of its serde
///   data model, stored in every checkpoint, so that a checkpoint of another shape is refused
///   rather than misread. Without it, the build fails at `T` ("`T` has no state schema
///   fingerprint"). Interrupt input types need `StateSchema` too.
/// - `migrate_from = [OrderV1, OrderV2]` (optional): older state types whose checkpoints
///   still open. Each derives `StateSchema` and `Deserialize` and implements `Into<T>`; a
///   checkpoint saved with one of their fingerprints is decoded as that type and converted,
///   and the next checkpoint is written as `T`. See [Checkpoints that last](#checkpoints-that-last).
/// - `accept_graphs = [0x2204_5b7d_596d_b6de]` (optional): the `GRAPH_HASH`es of older
///   versions of this graph whose checkpoints this one opens, as integer literals (copy them
///   from the older build's `GRAPH_HASH`).
/// - `crate = path` (optional): where the runtime crate is, for crates that re-export it;
///   `::graph_runtime` by default. Use an absolute path (`::my_rt` or `crate::rt`).
///
/// # The module
///
/// - `edge!(START -> a)` names the entry; there is exactly one.
/// - `edge!(a -> b)`: `a`'s single successor; `a` returns `()` or `Result<(), E>`.
/// - `edge!(a -> b | c | END)`: a branch; `a` returns `a::Next` or `Result<a::Next, E>`,
///   where `a::Next` is generated with one variant per target, in UpperCamelCase (`End` for
///   `END`). One `edge!` per node lists all of its successors.
/// - `E`, the node's error type, is any type that converts into
///   `Box<dyn std::error::Error + Send + Sync>`: your own error type, `anyhow::Error`,
///   `graph_runtime::NodeError`, `String` (the list is in `#[node]`'s "Errors").
/// - `edge!(a -> b on error)`: an **error edge**. When `a` fails — returns `Err` after its
///   retries (`#[node(retry = N)]`), at once if it has none or the error is not retryable, or
///   times out on its last attempt — the run goes to `b` instead of ending with
///   `Error::Node`. It comes in addition to `a`'s own `edge!` (which still says where `a` goes
///   when it succeeds) and is not a variant of `a::Next`. A node has at most one error edge;
///   its target is a node (not `START`, `END` or `a` itself; an interrupt node is fine),
///   and must itself lead to `END`. See [Error edges](#error-edges).
/// - Every other item (`use`, helper functions, types) is kept as written. Node functions are
///   kept too (only `#[node]` is removed), so tests can call them directly.
///
/// # Error edges
///
/// ```
/// # use graph_runtime::prelude::*;
/// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub struct Order { pub total_cents: u64, pub note: Option<String> }
/// # #[derive(Debug)] pub struct PaymentError;
/// # impl std::fmt::Display for PaymentError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("declined") }
/// # }
/// # impl std::error::Error for PaymentError {}
/// # async fn pay(_cents: u64) -> Result<(), PaymentError> { Err(PaymentError) }
/// #[workflow(state = Order)]
/// pub mod checkout {
///     use super::*;
///
///     edge!(START -> charge);
///     edge!(charge -> ship);                 // where `charge` goes when it succeeds
///     edge!(charge -> refund on error);      // … and when it fails after its retries
///     edge!(ship -> END);
///     edge!(refund -> END);
///
///     #[node(retry = 2, backoff_ms = 100)]
///     async fn charge(order: &mut Order) -> Result<(), PaymentError> {
///         pay(order.total_cents).await
///     }
///
///     #[node]
///     async fn ship(order: &mut Order) {}
///
///     #[node]
///     async fn refund(order: &mut Order, ctx: &NodeCtx) {
///         if let Some(failure) = ctx.failure() {
///             // failure.node() == "charge"; failure.error() is the error's message
///             order.note = Some(format!("{} failed: {}", failure.node(), failure.error()));
///         }
///     }
/// }
/// # fn main() {}
/// ```
///
/// What the error node sees:
///
/// - `ctx.failure()`: which node failed and the message of its last error (a timeout reads
///   "node `charge` timed out after 5s"). It is `None` when the node is reached by an ordinary
///   route, and in every node after it.
/// - the state as it was **before the failed node's first attempt**: no failed attempt's
///   changes are kept.
/// - after a crash, the same failure: it is saved in the checkpoint written just before the
///   error node runs, so `Runner::resume` runs the error node with it again.
/// - if it is an interrupt node, the failure too: the session waits there as usual, and the
///   node reads `ctx.failure()` when `Runner::resume_with` runs it.
///
/// Without an error edge, a failure ends the call with `Error::Node`, and the session stays at
/// its last checkpoint. An interrupt node may have an error edge. Error edges count for the
/// graph checks (a node reached only through an error edge is reachable; an error node must
/// lead to `END`), add an `error-edge a->b` line to `GRAPH_HASH`'s canonical text (graphs
/// without error edges keep their hash), and are drawn dotted in `MERMAID`
/// (`charge -. on error .-> refund`).
///
/// # Parallel branches
///
/// ```
/// # use graph_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize, StateSchema)]
/// # pub struct Claim { pub risky: bool, pub covered: bool, pub total: u64 }
/// # #[derive(Serialize, Deserialize, StateSchema)] pub struct Score(pub u32);
/// # #[derive(Serialize, Deserialize, StateSchema)] pub struct Item(pub u64);
/// #[workflow(state = Claim)]
/// pub mod claims {
///     use super::*;
///
///     edge!(START -> intake);
///     edge!(intake -> fraud & coverage);      // a fan-out: both run at once
///     edge!(fraud & coverage -> decide);      // their join: runs once, after both
///     edge!(decide -> plan);
///     edge!(plan -> each assess);             // a map: one `assess` per item of `plan`
///     edge!(assess -> total);                 // the map's join
///     edge!(total -> END);
///
///     #[node] async fn intake(c: &mut Claim) {}
///     #[node] async fn fraud(c: &Claim) -> Score { Score(0) }       // a branch reads `&Claim`
///     #[node] async fn coverage(c: &Claim) -> bool { true }        // and returns its output
///     #[node]
///     async fn decide(c: &mut Claim, coverage: bool, fraud: Result<Score, graph_runtime::Failure>) {
///         c.covered = coverage;                                    // named after the branches
///         c.risky = fraud.is_err();                                // `Result<_, Failure>`: collect
///     }
///     #[node] async fn plan(c: &mut Claim) -> Vec<Item> { vec![Item(1), Item(2)] }
///     #[node(concurrency = 4)]                                     // at most 4 items at once
///     async fn assess(c: &Claim, item: Item) -> u64 { item.0 }
///     #[node] async fn total(c: &mut Claim, assess: Vec<u64>) { c.total = assess.iter().sum(); }
/// }
/// # fn main() {}
/// ```
///
/// - `&` means "all of these" (a fan-out), `|` "one of these"; one `edge!` uses one of them.
/// - A **branch** (a target of `&`, or the node after `each`) takes `&State`, never `&mut`,
///   optionally `ctx: &NodeCtx`, and returns its output `O` or `Result<O, E>` (a return type
///   whose last path segment is `Result` is read as fallible); `O` implements `Serialize`,
///   `Deserialize` and `StateSchema` (outputs are saved). A map node also takes its item, in a
///   parameter of any name. A branch's only successor is its join; an interrupt branch takes
///   its input like any interrupt node, and its variant is in `Input`.
/// - The **join** takes the state, then one parameter per branch named after it, in any order,
///   with the branch's output type (a map's join: `Vec<O>`, in item order). A parameter of type
///   `Result<O, Failure>` (`Vec<Result<O, Failure>>`), recognised by the last path segment
///   `Failure`, *collects* that branch's failure after its retries instead of failing the run.
///   The join then routes like any node.
/// - The node before `each` returns `Vec<I>` or `Result<Vec<I>, E>`, `I` the map node's item
///   type (saved with the checkpoint, so `I: Serialize + Deserialize + StateSchema`).
/// - Branches run concurrently on the run's task and share the state, so a graph with a
///   fan-out or a map needs `State: Sync` (a compile error at `state = T` otherwise).
/// - Mistakes are compile errors: a join parameter that names no branch ("did you mean …?")
///   or a branch without one; `&mut State` on a branch; a branch with another successor, or
///   an error edge (take `Result<O, Failure>` in the join instead); `&` mixed with `|`; a join
///   reached by another edge; `START -> a & b`; `concurrency = 0`, or `concurrency` on a node
///   that is not a map node; an interrupt map node; an output or item type that differs
///   between the branch and its join (rustc's own error, at the join's or map node's type).
/// - `GRAPH_HASH` covers fan-outs (their branches in order: the frontier's slots), joins,
///   maps, and the output and item types' fingerprints; a graph without them keeps its hash.
///   `MERMAID` draws "all of" edges thick (`intake ==> fraud`) and a map as
///   `plan ==>|each| assess`.
///
/// # Checkpoints that last
///
/// Sessions outlive the code that started them. Three arguments let a new build open the
/// checkpoints of an older one:
///
/// ```
/// # use graph_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// /// The state as the previous release saved it.
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct OrderV1 { pub total_cents: u64 }
///
/// #[derive(Default, Serialize, Deserialize, StateSchema)]
/// pub struct Order { pub total_cents: u64, pub currency: String }
///
/// impl From<OrderV1> for Order {
///     fn from(old: OrderV1) -> Order {
///         Order { total_cents: old.total_cents, currency: "EUR".to_owned() }
///     }
/// }
///
/// #[derive(Debug, Clone, Serialize, Deserialize, StateSchema)]
/// pub enum Approval { Approve, Reject }
///
/// #[workflow(state = Order, migrate_from = [OrderV1], accept_graphs = [0x2204_5b7d_596d_b6de])]
/// pub mod checkout {
///     use super::*;
///
///     edge!(START -> approval);
///     edge!(approval -> charge | END);
///     edge!(charge -> END);
///
///     #[node(interrupt, renamed_from = "review")]   // sessions waiting at `review` resume here
///     async fn approval(order: &mut Order, decision: Approval) -> approval::Next {
///         match decision {
///             Approval::Approve => approval::Next::Charge,
///             Approval::Reject => approval::Next::End,
///         }
///     }
///
///     #[node(checkpoint = always)]               // saved after, whatever the runner's policy
///     async fn charge(order: &mut Order) {}
/// }
///
/// fn main() {
///     use graph_runtime::Workflow as _;
///     assert_eq!(checkout::STATE_SCHEMA, <Order as StateSchema>::SCHEMA);
///     assert_eq!(checkout::Workflow::MIGRATES_FROM, &[<OrderV1 as StateSchema>::SCHEMA]);
///     assert!(checkout::Workflow::ACCEPTED_GRAPHS.contains(&0x2204_5b7d_596d_b6de));
/// }
/// ```
///
/// - **State schema.** Every checkpoint stores `STATE_SCHEMA`; a checkpoint with another
///   fingerprint is refused (`Error::SchemaMismatch`), never misread.
/// - **`migrate_from`.** A checkpoint whose fingerprint is one of the listed types' is decoded
///   as that type and converted with its `Into<T>`. Two listed types with the same fingerprint
///   (the same serde data model), or one with the state's, fail the build at the type: a
///   checkpoint could not say which type it holds. So does a type listed twice.
/// - **`#[node(renamed_from = "old")]`.** A checkpoint saved at node `old` resumes at the
///   renamed node, and the hashes of the graph as it was before the rename (every renamed node
///   under its old name, and every combination when there are several) are accepted.
/// - **`accept_graphs`.** Any other change to the graph (a node added, an edge moved) gives a
///   new `GRAPH_HASH`; listing the old hash accepts its checkpoints. A session waiting at a
///   node that no longer exists is an error when it resumes.
/// - Checkpoints saved by the first release, whose graph hash spelled the state type into the
///   hash, keep opening: that hash is always accepted.
///
/// A state type without `StateSchema` is a compile error at the type:
///
/// ```compile_fail
/// # use graph_runtime::prelude::*;
/// #[derive(Default, serde::Serialize, serde::Deserialize)]   // no `StateSchema`
/// pub struct Order { pub total_cents: u64 }
///
/// #[workflow(state = Order)]   // error: `Order` has no state schema fingerprint
/// pub mod checkout {
///     use super::*;
///     edge!(START -> charge);
///     edge!(charge -> END);
///     #[node] async fn charge(order: &mut Order) {}
/// }
/// # fn main() {}
/// ```
///
/// # Generated items
///
/// - `Workflow`: a unit struct implementing `graph_runtime::Workflow`; give it to `Runner::new`.
///   Besides the constants below, it carries `STATE_SCHEMA`, `INPUT_SCHEMA` (the fingerprint
///   of `Input`: each interrupt node's name and its input's fingerprint, in declaration
///   order), `MIGRATES_FROM` (the `migrate_from` fingerprints, in the listed order) and
///   `ACCEPTED_GRAPHS` (the older graph hashes described above);
/// - `GRAPH_HASH: u64`: a stable hash of the structure (names, edges, error edges, and the
///   fingerprints of the interrupt input types), stored in checkpoints; reordering
///   declarations or spelling a type another way (`crate::Approval`) does not change it; its
///   rustdoc shows the canonical text it hashes;
/// - `STATE_SCHEMA: u64`: the state type's `StateSchema` fingerprint;
/// - `MERMAID: &str`: a Mermaid flowchart of the graph; `NODES: &[&str]`: the node names in
///   declaration order;
/// - `<node>::Next` for each branching node (a join that branches too);
/// - `Input`: one variant per interrupt node, named after it and holding its input
///   (`Input::Review(Approval)`), deriving `Debug`, `Clone`, `Serialize` and `Deserialize`
///   (so the input type must implement them); it has no values when there is no interrupt
///   node. Its JSON is keyed by the variant's name (`{"Review": …}`) or, when read, by the
///   node's own name as `Status` and events give it (`{"review": …}`); the bincode of a
///   checkpoint is the variant's index either way. `Input::NODES` lists the interrupt nodes
///   and `input.node()` names the one an input is for.
///
/// # Compile-time checks
///
/// Every one of these is a compile error pointing at the offending token, and all of them are
/// reported in one build: an unknown node in `edge!` (with "did you mean …?"), a node without
/// an outgoing edge, a node unreachable from `START`, a node from which `END` cannot be
/// reached, no or several `START` edges, duplicate edges or nodes, an `edge!` naming a function
/// that is not a `#[node]`, a `#[node]` without edges, a node that is not `async` or whose
/// parameters are wrong, a wrong return type for the node's edges, `#[cfg]` on a node or an
/// edge, unknown keys in `#[workflow(…)]` or `#[node(…)]`, and misused error edges (`on error`
/// after a branch, anything but `on error` after the target, a second error edge from one
/// node, an error edge to `START`, `END`, an unknown name or the node itself, or from
/// something that is not a node). The checkpoint rules too: a state or interrupt input type
/// without `StateSchema` (at the type), a `migrate_from` type listed twice, one whose
/// fingerprint equals another's or the state's, or that cannot be decoded or converted
/// `Into` the state; a `renamed_from` name that is a node of the graph, another node's old
/// name, or not an identifier; an `accept_graphs` entry that is not an integer literal; a
/// `checkpoint` other than `always` or `never`; a `#[node(migrate_from = [...])]` on a node
/// that is neither a branch nor the node before `each`, or whose types collide or do not
/// convert, as for the state's. And a map node without its item parameter: it takes
/// `&State`, then the item, then optionally `ctx: &NodeCtx`.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    pipeline::workflow(args.into(), item.into()).into()
}

/// Marks an `async fn` of a `#[workflow]` module as a node of the graph.
///
/// ```
/// # use graph_runtime::prelude::*;
/// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub struct Order { pub approved: bool, pub charge_id: Option<String> }
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub enum Approval { Approve, Reject }
/// # #[workflow(state = Order)]
/// # pub mod checkout {
/// #     use super::*;
/// #     edge!(START -> review);
/// #     edge!(review -> charge | END);
/// #     edge!(charge -> ship);
/// #     edge!(ship -> END);
/// #[node]                                   // a plain node
/// async fn ship(order: &mut Order) {}
///
/// #[node(interrupt)]                        // waits for an `Input::Review(Approval)`
/// async fn review(order: &mut Order, decision: Approval) -> review::Next {
///     order.approved = matches!(decision, Approval::Approve);
///     if order.approved { review::Next::Charge } else { review::Next::End }
/// }
///
/// #[node(retry = 3, timeout_ms = 5_000)]    // 3 more attempts, 5 s per attempt
/// async fn charge(order: &mut Order, ctx: &NodeCtx) -> Result<(), std::io::Error> {
///     order.charge_id = Some(ctx.idempotency_key());
///     Ok(())
/// }
/// # }
/// # fn main() {}
/// ```
///
/// The first parameter is the state, `&mut T` or `&T`. A node may also take `ctx: &NodeCtx`
/// in any later position. An `interrupt` node takes exactly one more parameter, its input,
/// an owned type implementing `Serialize`, `Deserialize`, `StateSchema`, `Debug` and `Clone`.
///
/// Keys:
/// - `interrupt`: the node waits for its input (`Runner::resume_with`);
/// - `wait_ms = W` (`u64`, not 0), on an interrupt node: a durable deadline. The input
///   parameter is then `Option<I>` (`Input` still holds the plain `I`): `Some(i)` when the
///   input came in time; when none came within `W` ms, a `Worker` of the workflow runs the
///   node with `None` and the node decides the default (escalate, reject, remind). The
///   deadline is stored on the database's clock, so it passes even while no worker runs; an
///   in-process `Runner::resume` never runs the default, and an input that comes after the
///   default began to run is `Error::NotWaiting`. On an interrupt branch of a parallel region,
///   each branch has its own deadline, counted from when it began to wait; the session wakes
///   at the earliest, and the branches whose deadline has not passed keep waiting. `wait_ms`
///   (not its value) is part of `GRAPH_HASH`;
/// - `retry = N` (`u32`): how many times a failed attempt is retried;
/// - `timeout_ms = M` (`u64`): how long one attempt may take;
/// - `backoff_ms = B`, `backoff_max_ms = C` (`u64`): the wait before the first retry, doubled
///   for each further one up to `C`;
/// - `jitter = false`: do not randomise the waits;
/// - `checkpoint = always` / `checkpoint = never`: save a checkpoint after this node whatever
///   the runner's `CheckpointPolicy` says (a side effect that must not run twice after a
///   crash), or never (a cheap, pure node; a session that then waits or completes is saved
///   anyway);
/// - `renamed_from = "old"` (or `renamed_from = ["old", "older"]`): the node's names in older
///   builds; a checkpoint saved at `old` resumes at this node, and the older graph's hash is
///   accepted. An old name is an identifier, not a node of this graph, and the old name of
///   one node only;
/// - `migrate_from = [ScoreV1, ScoreV0]`, on a branch node (a target of `&`, or the node
///   after `each`): older versions of its **output** type, whose saved outputs still open.
///   On the node before `each`: older versions of the map's **item** type (the items are
///   saved with the fan-out). Each listed type derives `StateSchema` and `Deserialize` and
///   implements `Into` the current type; a saved value with one of their fingerprints is
///   decoded as that type and converted. A listed type with the current type's fingerprint,
///   or with another listed type's, fails the build at the type, and so does one without the
///   conversion. `migrate_from` is not part of `GRAPH_HASH`. Older *state* types go in
///   `#[workflow(migrate_from = [...])]`; on any other node the key is an error.
///
/// ```
/// # use graph_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize, StateSchema)]
/// # pub struct Claim { pub risky: bool, pub total: u64 }
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct Score { pub value: u32, pub model: String }
///
/// /// `fraud`'s output as the previous release saved it.
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct ScoreV1 { pub value: u32 }
///
/// impl From<ScoreV1> for Score {
///     fn from(old: ScoreV1) -> Score { Score { value: old.value, model: "v1".to_owned() } }
/// }
///
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct Item { pub cents: u64 }
///
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct ItemV1(pub u32);
///
/// impl From<ItemV1> for Item {
///     fn from(old: ItemV1) -> Item { Item { cents: u64::from(old.0) } }
/// }
///
/// #[workflow(state = Claim)]
/// pub mod claims {
///     use super::*;
///
///     edge!(START -> intake);
///     edge!(intake -> fraud & coverage);
///     edge!(fraud & coverage -> decide);
///     edge!(decide -> plan);
///     edge!(plan -> each assess);
///     edge!(assess -> total);
///     edge!(total -> END);
///
///     #[node] async fn intake(c: &mut Claim) {}
///     #[node(migrate_from = [ScoreV1])]                // older outputs of `fraud`
///     async fn fraud(c: &Claim) -> Score { Score { value: 0, model: "v2".to_owned() } }
///     #[node] async fn coverage(c: &Claim) -> bool { true }
///     #[node]
///     async fn decide(c: &mut Claim, fraud: Score, coverage: bool) {
///         c.risky = fraud.value > 0 || !coverage;
///     }
///     #[node(migrate_from = [ItemV1])]                 // older items of the map after `plan`
///     async fn plan(c: &mut Claim) -> Vec<Item> { vec![Item { cents: 100 }] }
///     #[node] async fn assess(c: &Claim, item: Item) -> u64 { item.cents }
///     #[node] async fn total(c: &mut Claim, assess: Vec<u64>) { c.total = assess.iter().sum(); }
/// }
/// # fn main() {}
/// ```
///
/// # Errors
///
/// A node that can fail returns `Result<(), E>` (or `Result<x::Next, E>`), where `E` is any
/// type that converts into `Box<dyn std::error::Error + Send + Sync>`
/// (`graph_runtime::NodeError`):
///
/// - your own error type, `std::error::Error + Send + Sync + 'static`;
/// - `anyhow::Error` (so `anyhow::Result<()>`);
/// - `Box<dyn std::error::Error + Send + Sync>`, which is `graph_runtime::NodeError`;
/// - `String` and `&'static str`.
///
/// ```
/// # use graph_runtime::prelude::*;
/// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub struct Order { pub total_cents: u64, pub note: String }
/// #[workflow(state = Order)]
/// pub mod checkout {
///     use super::*;
///     use graph_runtime::NodeError;
///
///     edge!(START -> parse);
///     edge!(parse -> check);
///     edge!(check -> END);
///
///     #[node]
///     async fn parse(order: &mut Order) -> Result<(), NodeError> {
///         order.total_cents = order.note.parse()?;   // `?` boxes the `ParseIntError`
///         Ok(())
///     }
///
///     #[node]
///     async fn check(order: &mut Order) -> Result<(), String> {
///         if order.total_cents == 0 { Err("nothing to charge".to_owned()) } else { Ok(()) }
///     }
/// }
/// # fn main() {}
/// ```
///
/// The error ends the run as `Error::Node`, whose `source()` is the node's error (with its
/// own source chain), or is handed to the node's error edge, whose `ctx.failure()` holds its
/// message. A type that does not convert fails the build at the return type, and so does
/// `Box<dyn std::error::Error>`, which is neither `Send` nor `Sync`:
///
/// ```compile_fail
/// # use graph_runtime::prelude::*;
/// # #[derive(Default, serde::Serialize, serde::Deserialize, StateSchema)]
/// # pub struct Order { pub total_cents: u64 }
/// #[workflow(state = Order)]
/// pub mod checkout {
///     use super::*;
///     edge!(START -> charge);
///     edge!(charge -> END);
///     // error: `u32` cannot be the error type of node `charge`: it does not convert
///     //        into `Box<dyn std::error::Error + Send + Sync>`
///     #[node]
///     async fn charge(order: &mut Order) -> Result<(), u32> { Err(402) }
/// }
/// # fn main() {}
/// ```
///
/// A node whose error type implements `graph_runtime::Retryable` is not retried for errors
/// that say retrying cannot help. Only the concrete type's impl is seen: an error boxed into a
/// `NodeError` or an `anyhow::Error` is always retried (up to `retry = N`).
///
/// A timed-out attempt counts as a failed one. When the last attempt fails, the run takes the
/// node's error edge (`edge!(charge -> refund on error)`) if it has one, with the state from
/// before the first attempt, and otherwise ends with `Error::Node`.
///
/// `#[workflow]` reads and removes this attribute. Anywhere else it is a compile error that
/// says where it belongs (the function itself is kept, so that is the only error):
///
/// ```compile_fail
/// # use graph_runtime::prelude::*;
/// // error: `#[node]` only works on an `async fn` directly inside a
/// //        `#[workflow(state = …)]` module; move the function into that module, or remove `#[node]`
/// #[node]
/// async fn lonely(state: &mut u32) {}
/// ```
#[proc_macro_attribute]
pub fn node(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::node_outside_workflow(args.into(), item.into()).into()
}

/// Derives `graph_runtime::StateSchema`: a `const` fingerprint of the type's serde data model,
/// which every checkpoint stores so that a checkpoint of another shape is refused instead of
/// misread (bincode writes no names: a renamed field or two swapped `u64`s would decode
/// "fine").
///
/// ```
/// use graph_runtime::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct Order { pub total_cents: u64, pub lines: Vec<Line>, pub status: Status }
///
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct Line { pub sku: String, pub quantity: u32 }
///
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub enum Status { Open, Paid { charge_id: String }, Cancelled(String) }
///
/// // The data model, not the Rust names: a renamed field keeping its serde name keeps the
/// // fingerprint.
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct LineV2 { #[serde(rename = "sku")] pub article: String, pub quantity: u32 }
///
/// assert_eq!(Line::SCHEMA, LineV2::SCHEMA);
/// assert_ne!(Order::SCHEMA, Line::SCHEMA);
/// ```
///
/// Every field's type must implement `StateSchema` too (std types do; derive it on your own).
/// Self-references (`children: Vec<Tree>`) get a fixed "recursive" marker; for two types that
/// contain each other, mark one of the fields `#[state_schema(recursive)]`.
///
/// Attributes, all optional:
/// - on a field: `#[state_schema(as = Type)]` (fingerprint it as `Type`, e.g. the type a
///   `#[serde(with)]` field is written as), `#[state_schema(with = "name-v1")]` (an opaque
///   name, for a foreign type without an impl), `#[state_schema(recursive)]`;
/// - on the type: `as = Type` and `with = ".."` likewise (required with `#[serde(into)]`,
///   `from` or `try_from`), and `crate = path` when the runtime is re-exported under another
///   path (`::graph_runtime` by default).
///
/// serde attributes that bincode cannot round-trip are compile errors at the attribute:
/// `flatten`, `untagged`, `tag` (internally or adjacently tagged enums),
/// `skip_serializing_if`, a one-sided `skip_serializing` / `skip_deserializing`, a skipped
/// variant before a written one, and `with` / `serialize_with` / `deserialize_with` without
/// `#[state_schema(as = …)]` or `#[state_schema(with = "…")]`:
///
/// ```compile_fail
/// # use graph_runtime::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize, StateSchema)] pub struct Address { pub city: String }
/// #[derive(Serialize, Deserialize, StateSchema)]
/// pub struct Customer {
///     pub name: String,
///     #[serde(flatten)]   // error: `#[serde(flatten)]` cannot be checkpointed: …
///     pub address: Address,
/// }
/// ```
///
/// `graph_runtime::schema` has the complete rules.
#[proc_macro_derive(StateSchema, attributes(state_schema))]
pub fn derive_state_schema(input: TokenStream) -> TokenStream {
    state_schema::derive(input.into()).into()
}
