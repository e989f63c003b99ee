//! The plan that code generation works from: one task per node, with the facts about it that
//! the graph decides (its successors, the cursor variant that names it, whether `run`'s loop
//! may go through it without the runner, how the runner calls it and what its return value
//! becomes), and the parallel regions (fan-outs and maps) with their slots.
//!
//! `model` says what the user declared; `lower` says what runs. Code generation lowers a graph
//! that passed every check; the fallback lowers a broken one too (for the interrupt nodes its
//! stand-in `Input` lists), so lowering never fails or panics: what it cannot make sense of
//! (a region without a join, a join without its parameters) is left out.

use proc_macro2::Span;
use syn::{Ident, Type};

use crate::model::{Endpoint, Graph, Role, variant_ident};
use crate::parse::{
    CheckpointOverride, NodeFn, NodeParam, ParamRole, collected_type, vec_item_type,
};

/// How the runner calls a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// `Execute::step` (and `run`'s loop).
    Step,
    /// `Execute::branch`: slot `slot` of region `region`.
    Branch { region: usize, slot: usize },
    /// `Execute::join`, with the outputs of region `region`.
    Join { region: usize },
}

/// What a node's return value becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A route: `()` to its one successor, or a `Next` variant (the targets).
    Routes,
    /// The node before a fan-out: `()`, then the region of the join opens.
    FanOut { region: usize },
    /// The node before `each`: its items open the map region.
    Map { region: usize },
    /// A branch: its output, handed to the join.
    Output,
}

/// What code generation needs to know about one node.
pub(crate) struct Task<'g> {
    pub(crate) node: &'g NodeFn,
    /// The node's variant in the cursor enum (and in `Input`, for an interrupt node).
    pub(crate) variant: Ident,
    /// The successors, in the order the node's `edge!` lists them.
    pub(crate) targets: Vec<Endpoint>,
    /// The target names as written in `edge!`, for spans and docs.
    pub(crate) target_idents: Vec<Ident>,
    /// The node's name as written in its `edge!`.
    pub(crate) edge_from: Ident,
    /// Whether the node needs nothing from the runner but a call (see `Execute::runs_freely`):
    /// `run`'s loop goes through such nodes back to back.
    pub(crate) runs_freely: bool,
    pub(crate) call: Call,
    pub(crate) exit: Exit,
}

/// A fan-out or a map, lowered: the frontier the runner holds for it.
pub(crate) struct Region<'g> {
    /// The join node.
    pub(crate) join: usize,
    /// The node before the region.
    pub(crate) source: usize,
    /// `Some` for a map: the limit of `#[node(concurrency = N)]`, 0 when unset.
    pub(crate) map_concurrency: Option<u32>,
    /// One slot per branch, in the order of the `&` list (a map has one: the map node).
    pub(crate) slots: Vec<Slot<'g>>,
}

/// One branch of a region, and the join parameter that takes its output.
pub(crate) struct Slot<'g> {
    /// The branch node.
    pub(crate) node: usize,
    /// The join's parameter named after the branch.
    pub(crate) param: &'g NodeParam,
    /// Whether that parameter collects failures (`Result<O, Failure>`, or
    /// `Vec<Result<O, Failure>>` for a map).
    pub(crate) collect: bool,
    /// The output type the parameter reads, `O`, when the tokens say it (for the probe that
    /// the branch returns it).
    pub(crate) output: Option<&'g Type>,
}

impl Task<'_> {
    /// Whether the node returns a `Next` enum: it has several successors.
    pub(crate) fn branches(&self) -> bool {
        self.targets.len() > 1
    }
}

/// The lowered graph.
pub(crate) struct Plan<'g> {
    pub(crate) graph: &'g Graph<'g>,
    /// One task per node, in declaration order (the index of a node in the graph).
    pub(crate) tasks: Vec<Task<'g>>,
    /// The regions, in declaration order (the index of a region in the graph).
    pub(crate) regions: Vec<Region<'g>>,
}

impl<'g> Plan<'g> {
    /// Lowers a graph that passed every check.
    pub(crate) fn build(graph: &'g Graph<'g>) -> Self {
        let regions: Vec<Region<'g>> = (0..graph.regions.len())
            .filter_map(|r| lower_region(graph, r))
            .collect();
        let tasks = graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let successors = graph.successors(index);
                let args = &node.args;
                let call = match graph.role(index) {
                    Some(Role::Branch { region, slot }) => Call::Branch { region, slot },
                    Some(Role::Join { region }) => Call::Join { region },
                    None => Call::Step,
                };
                let exit = match (call, graph.region_from(index)) {
                    (Call::Branch { .. }, _) => Exit::Output,
                    (_, Some(region)) if graph.regions[region].each => Exit::Map { region },
                    (_, Some(region)) => Exit::FanOut { region },
                    (_, None) => Exit::Routes,
                };
                // A node saved after whatever the policy ends its run, so the runner saves;
                // branches and joins are the runner's to schedule.
                let runs_freely = !args.interrupt
                    && args.retry.unwrap_or(0) == 0
                    && args.timeout_ms.is_none()
                    && args.checkpoint != Some(CheckpointOverride::Always)
                    && graph.error_target(index).is_none()
                    && call == Call::Step;
                // The node before a region goes to its join (the runner opens the region).
                let (targets, target_idents) = match exit {
                    Exit::FanOut { region } | Exit::Map { region } => {
                        let join = regions.iter().find(|r| r.source == index).map(|r| r.join);
                        let ident = join
                            .and_then(|j| graph.nodes().get(j))
                            .map(|n| n.ident.clone());
                        let _ = region;
                        match (join, ident) {
                            (Some(j), Some(ident)) => (vec![Endpoint::Node(j)], vec![ident]),
                            _ => (Vec::new(), Vec::new()),
                        }
                    }
                    _ => (
                        successors.iter().map(|edge| edge.to).collect(),
                        successors
                            .iter()
                            .map(|edge| edge.to_ident.clone())
                            .collect(),
                    ),
                };
                Task {
                    node,
                    variant: variant_ident(&node.name, Span::call_site()),
                    targets,
                    target_idents,
                    edge_from: successors
                        .first()
                        .map_or_else(|| node.ident.clone(), |edge| edge.from_ident.clone()),
                    runs_freely,
                    call,
                    exit,
                }
            })
            .collect();
        Plan {
            graph,
            tasks,
            regions,
        }
    }

    /// Whether the graph has a fan-out or a map.
    pub(crate) fn is_parallel(&self) -> bool {
        !self.regions.is_empty()
    }

    /// The region with graph index `r` (regions that could not be lowered are left out, which
    /// only happens to a graph that failed a check).
    pub(crate) fn region(&self, r: usize) -> Option<&Region<'g>> {
        let source = self.graph.regions.get(r)?.source;
        self.regions
            .iter()
            .find(|region| Endpoint::Node(region.source) == source)
    }

    /// The task of node `i`.
    pub(crate) fn task(&self, i: usize) -> Option<&Task<'g>> {
        self.tasks.get(i)
    }

    /// The cursor variant of a node endpoint (`None` for `START`, `END` and unknown names).
    pub(crate) fn cursor_variant(&self, endpoint: Endpoint) -> Option<&Ident> {
        match endpoint {
            Endpoint::Node(i) => self.tasks.get(i).map(|task| &task.variant),
            _ => None,
        }
    }

    /// Whether the node at `endpoint` runs freely (`false` for anything but a node).
    pub(crate) fn runs_freely(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::Node(i) => self.tasks.get(i).is_some_and(|task| task.runs_freely),
            _ => false,
        }
    }

    /// The interrupt nodes with their input types, in declaration order: the variants of
    /// `Input`.
    pub(crate) fn interrupts(&self) -> Vec<(&Task<'g>, &'g Type)> {
        self.tasks
            .iter()
            .filter_map(|task| {
                task.node
                    .input()
                    .filter(|_| task.node.args.interrupt)
                    .map(|ty| (task, ty))
            })
            .collect()
    }

    /// The subgraph nodes' tasks with their child module (`subgraph = m`), in declaration
    /// order: each has a variant of `Input` after the interrupt nodes', carrying `m::Input`.
    pub(crate) fn subgraphs(&self) -> Vec<(&Task<'g>, &'g syn::Path)> {
        self.tasks
            .iter()
            .filter_map(|task| {
                let node: &'g NodeFn = task.node;
                node.args.subgraph.as_ref().map(|(path, _)| (task, path))
            })
            .collect()
    }

    /// The entry node's task.
    pub(crate) fn entry(&self) -> Option<&Task<'g>> {
        self.graph.entry().and_then(|i| self.tasks.get(i))
    }
}

/// Region `r` of a checked graph: its join, and for each branch the join parameter named after
/// it.
fn lower_region<'g>(graph: &'g Graph<'g>, r: usize) -> Option<Region<'g>> {
    let declared = graph.regions.get(r)?;
    let Endpoint::Node(source) = declared.source else {
        return None;
    };
    let join = graph.join_of(r)?;
    let join_node = graph.nodes().get(join)?;
    let mut slots = Vec::new();
    for &branch in &declared.branches {
        let Endpoint::Node(node) = branch else {
            return None;
        };
        let name = &graph.nodes().get(node)?.name;
        let param = join_node.params.iter().find(|p| {
            p.role == ParamRole::Extra
                && p.name
                    .as_ref()
                    .is_some_and(|ident| crate::model::ident_name(ident) == *name)
        })?;
        // A map's join takes `Vec<O>` (or `Vec<Result<O, Failure>>`).
        let per_item = if declared.each {
            vec_item_type(&param.ty)
        } else {
            Some(&param.ty)
        };
        let collected = per_item.and_then(collected_type);
        slots.push(Slot {
            node,
            param,
            collect: collected.is_some(),
            output: collected.or(per_item),
        });
    }
    let map_concurrency = declared.each.then(|| {
        slots
            .first()
            .and_then(|slot| graph.nodes().get(slot.node))
            .and_then(|node| node.args.concurrency.as_ref())
            .map_or(0, |(n, _, _)| *n)
    });
    Some(Region {
        join,
        source,
        map_concurrency,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::ctxt::Ctxt;
    use crate::parse;

    fn with_plan(item: proc_macro2::TokenStream, test: impl FnOnce(&Plan)) {
        let cx = Ctxt::new();
        let input = parse::workflow(&cx, quote!(state = Claim), item);
        let module = input.module.expect("module");
        let graph = Graph::build(&module);
        crate::check::check(&cx, &graph);
        if let Err(error) = cx.check() {
            panic!("unexpected errors: {error}");
        }
        test(&Plan::build(&graph));
    }

    #[test]
    fn the_claims_plan() {
        with_plan(crate::hash::tests::claims(), |plan| {
            let task = |name: &str| {
                plan.tasks
                    .iter()
                    .find(|t| t.node.name == name)
                    .expect("a task")
            };
            assert!(plan.is_parallel());
            assert_eq!(plan.regions.len(), 2);
            let fan_out = &plan.regions[0];
            assert_eq!(fan_out.map_concurrency, None);
            let names: Vec<&str> = fan_out
                .slots
                .iter()
                .map(|slot| plan.tasks[slot.node].node.name.as_str())
                .collect();
            assert_eq!(names, ["fraud", "coverage", "adjuster"]);
            assert!(fan_out.slots.iter().all(|slot| !slot.collect));
            assert_eq!(plan.tasks[fan_out.join].node.name, "decide");
            let map = &plan.regions[1];
            assert_eq!(map.map_concurrency, Some(8));
            assert_eq!(plan.tasks[map.join].node.name, "total");
            assert_eq!(
                map.slots[0]
                    .output
                    .map(crate::parse::tokens_to_string)
                    .as_deref(),
                Some("Assessed")
            );

            assert_eq!(task("intake").exit, Exit::FanOut { region: 0 });
            assert_eq!(task("intake").targets, [Endpoint::Node(fan_out.join)]);
            assert!(task("intake").runs_freely);
            assert_eq!(task("fraud").call, Call::Branch { region: 0, slot: 0 });
            assert_eq!(task("adjuster").call, Call::Branch { region: 0, slot: 2 });
            assert_eq!(task("fraud").exit, Exit::Output);
            assert_eq!(task("decide").call, Call::Join { region: 0 });
            assert_eq!(task("decide").exit, Exit::Routes);
            assert_eq!(task("plan").exit, Exit::Map { region: 1 });
            assert_eq!(task("assess").call, Call::Branch { region: 1, slot: 0 });
            assert_eq!(task("total").call, Call::Join { region: 1 });
            for name in ["fraud", "coverage", "adjuster", "decide", "assess", "total"] {
                assert!(!task(name).runs_freely, "{name}");
            }
        });
    }

    #[test]
    fn collect_mode_is_read_from_the_join_parameters() {
        let item = quote! {
            mod m {
                edge!(START -> a);
                edge!(a -> b & c);
                edge!(b & c -> j);
                edge!(j -> p);
                edge!(p -> each q);
                edge!(q -> t);
                edge!(t -> END);
                #[node] async fn a(s: &mut Claim) {}
                #[node] async fn b(s: &Claim) -> u32 { 1 }
                #[node] async fn c(s: &Claim) -> Result<u64, E> { Ok(1) }
                #[node] async fn j(s: &mut Claim, c: Result<u64, graph_runtime::Failure>, b: u32) {}
                #[node] async fn p(s: &mut Claim) -> Vec<u8> { vec![] }
                #[node] async fn q(s: &Claim, n: u8) -> u8 { n }
                #[node] async fn t(s: &mut Claim, q: Vec<Result<u8, Failure>>) {}
            }
        };
        with_plan(item, |plan| {
            let collect: Vec<bool> = plan.regions[0].slots.iter().map(|s| s.collect).collect();
            assert_eq!(collect, [false, true]);
            let output = plan.regions[0].slots[1]
                .output
                .map(crate::parse::tokens_to_string);
            assert_eq!(output.as_deref(), Some("u64"));
            assert!(plan.regions[1].slots[0].collect);
            assert_eq!(plan.regions[1].map_concurrency, Some(0));
        });
    }

    #[test]
    fn an_interrupt_with_a_deadline_lowers_to_its_plain_input() {
        let item = quote! {
            mod m {
                edge!(START -> review);
                edge!(review -> END);
                #[node(interrupt, wait_ms = 60_000)]
                async fn review(s: &mut Claim, d: Option<Decision>) {}
            }
        };
        with_plan(item, |plan| {
            let interrupts = plan.interrupts();
            assert_eq!(interrupts.len(), 1);
            assert_eq!(crate::parse::tokens_to_string(interrupts[0].1), "Decision");
            let task = &plan.tasks[0];
            assert_eq!(
                task.node.args.wait_ms.as_ref().map(|(ms, _)| *ms),
                Some(60_000)
            );
            assert!(!task.runs_freely);
        });
    }
}
