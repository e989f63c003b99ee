//! The plan that code generation works from: one task per node, with the facts about it that
//! the graph decides (its successors, the cursor variant that names it, whether `run`'s loop
//! may go through it without the runner).
//!
//! `model` says what the user declared; `lower` says what runs. Only a graph that passed every
//! check is lowered, so nothing here reports errors.

use proc_macro2::Span;
use syn::{Ident, Type};

use crate::model::{Endpoint, Graph, variant_ident};
use crate::parse::{CheckpointOverride, NodeFn};

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
}

impl<'g> Plan<'g> {
    /// Lowers a graph that passed every check.
    pub(crate) fn build(graph: &'g Graph<'g>) -> Self {
        let tasks = graph
            .nodes()
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let successors = graph.successors(index);
                let args = &node.args;
                // A node saved after whatever the policy ends its run, so the runner saves.
                let runs_freely = !args.interrupt
                    && args.retry.unwrap_or(0) == 0
                    && args.timeout_ms.is_none()
                    && args.checkpoint != Some(CheckpointOverride::Always)
                    && graph.error_target(index).is_none();
                Task {
                    node,
                    variant: variant_ident(&node.name, Span::call_site()),
                    targets: successors.iter().map(|edge| edge.to).collect(),
                    target_idents: successors
                        .iter()
                        .map(|edge| edge.to_ident.clone())
                        .collect(),
                    edge_from: successors
                        .first()
                        .map_or_else(|| node.ident.clone(), |edge| edge.from_ident.clone()),
                    runs_freely,
                }
            })
            .collect();
        Plan { graph, tasks }
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

    /// The entry node's task.
    pub(crate) fn entry(&self) -> Option<&Task<'g>> {
        self.graph.entry().and_then(|i| self.tasks.get(i))
    }
}
