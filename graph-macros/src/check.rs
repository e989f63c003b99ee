//! The graph rules: one `check_*` function per rule, each saying why the rule exists.
//!
//! Every check records its errors and never stops the others, so a module with
//! several mistakes gets all of them in one build. Spans point at the offending token: the name
//! in `edge!`, or the node function's name.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Display;

use quote::ToTokens;

use crate::ctxt::Ctxt;
use crate::model::{END, Edge, EdgeKind, Endpoint, Graph, Role, START, ident_name, variant_ident};
use crate::parse::{ParamRole, WorkflowArgs, tokens_to_string, vec_item_type};
use crate::suggest::did_you_mean;

/// The most older graphs `renamed_from` may describe altogether (every combination of old
/// names is one older graph, with two hashes each in `ACCEPTED_GRAPHS`).
pub(crate) const MAX_RENAMED_GRAPHS: usize = 64;

/// The rules about `#[workflow(…)]`'s own arguments.
pub(crate) fn check_args(cx: &Ctxt, args: &WorkflowArgs) {
    check_migrate_from(cx, args);
}

/// A checkpoint names its state by fingerprint only, and `migrate_state` picks the type to
/// decode by that fingerprint: a type listed twice, or the state type itself (whose
/// checkpoints need no migration), would make that choice ambiguous. Two *different* types
/// with one fingerprint can only be seen by the compiler; the generated `const` assertions
/// catch those.
fn check_migrate_from(cx: &Ctxt, args: &WorkflowArgs) {
    let state = args.state.as_ref().map(tokens_to_string);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for ty in &args.migrate_from {
        let name = tokens_to_string(ty);
        if state.as_deref() == Some(name.as_str()) {
            cx.error_spanned_by(
                ty,
                format!("`{name}` is the state type itself: its checkpoints open without a migration; remove it from `migrate_from`"),
            );
        } else if !seen.insert(name.clone()) {
            cx.error_spanned_by(
                ty,
                format!("`{name}` is listed twice in `migrate_from`; remove this one"),
            );
        }
    }
}

/// Runs every rule, then records their errors in source order (by the position of the item
/// they point at), so that a module with several mistakes reads top to bottom.
pub(crate) fn check(cx: &Ctxt, graph: &Graph) {
    let r = Report {
        errors: RefCell::new(Vec::new()),
    };
    check_has_nodes(&r, graph);
    check_reserved_node_names(&r, graph);
    check_duplicate_nodes(&r, graph);
    check_generated_names(&r, graph);
    check_unknown_names(&r, graph);
    check_start(&r, graph);
    check_end_has_no_successors(&r, graph);
    check_one_edge_per_node(&r, graph);
    check_error_edges(&r, graph);
    check_variant_collisions(&r, graph);
    check_renamed_from(&r, graph);
    check_extra_params(&r, graph);
    check_map_item(&r, graph);
    check_mixed_fan(&r, graph);
    check_region_ends(&r, graph);
    check_branch_once(&r, graph);
    check_map_not_interrupt(&r, graph);
    check_join_not_interrupt(&r, graph);
    check_branch_state(&r, graph);
    check_branch_error_edges(&r, graph);
    check_concurrency(&r, graph);
    check_node_migrate_from(&r, graph);
    check_subgraph_not_itself(&r, graph);
    check_subgraph_not_in_region(&r, graph);
    check_map_child_order(&r, graph);
    if !graph.module.incomplete {
        check_branch_successor(&r, graph);
        check_join_params(&r, graph);
        check_region_entered_by_its_edges(&r, graph);
    }
    // An `edge!` that could not be read leaves the graph incomplete: its shape would be
    // misjudged, so these wait until the edges parse.
    if !graph.module.incomplete {
        check_connected(&r, graph);
        check_outgoing(&r, graph);
        check_reachable_from_start(&r, graph);
        check_end_reachable(&r, graph);
    }
    let mut errors = r.errors.into_inner();
    // Stable: at one position, the rules keep the order above.
    errors.sort_by_key(|(position, _)| *position);
    for (_, error) in errors {
        cx.syn_error(error);
    }
}

/// The errors of the rules, each with the position of the item it points at.
struct Report {
    errors: RefCell<Vec<(usize, syn::Error)>>,
}

impl Report {
    fn error<T: ToTokens, M: Display>(&self, position: usize, tokens: T, message: M) {
        let error = syn::Error::new_spanned(tokens.into_token_stream(), message);
        self.errors.borrow_mut().push((position, error));
    }
}

/// A workflow without nodes has nothing to run; it is almost always a module that lost its
/// `#[node]` attributes.
fn check_has_nodes(r: &Report, graph: &Graph) {
    if graph.nodes().is_empty() && graph.module.misplaced_nodes.is_empty() {
        let module = &graph.module.item.ident;
        r.error(0,
            module,
            format!(
                "workflow `{module}` has no nodes: mark its steps `#[node] async fn …` and connect them with `edge!(START -> first)`"
            ),
        );
    }
}

/// `START` and `END` are the graph's entry and exit in `edge!`: a node with one of those names
/// could never be named in an edge.
fn check_reserved_node_names(r: &Report, graph: &Graph) {
    for node in graph.nodes() {
        if node.name == START || node.name == END {
            r.error(node.position,
                &node.ident,
                format!(
                    "a node cannot be named `{}`: `START` and `END` are the entry and exit of every graph; rename the function",
                    node.name
                ),
            );
        }
    }
}

/// Node names are the graph's identity (checkpoints store them); two nodes with one name make
/// every edge to that name ambiguous.
fn check_duplicate_nodes(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if graph.is_duplicate(i) {
            r.error(node.position,
                &node.ident,
                format!("duplicate node `{}`: another `#[node]` function already has this name; rename or remove one", node.name),
            );
        }
    }
}

/// The macro adds items to the module (`Workflow`, `Input`, `GRAPH_HASH`, `STATE_SCHEMA`,
/// `MERMAID`, `NODES`, and a `mod <node>` per node for its `Next` enum); a user item with one
/// of those names would clash with an error pointing nowhere useful.
fn check_generated_names(r: &Report, graph: &Graph) {
    const TYPES: [&str; 4] = [
        "Workflow",
        "Input",
        "__GraphCursor",
        "__GraphWorkflowModule",
    ];
    const VALUES: [&str; 8] = [
        "Workflow",
        "GRAPH_HASH",
        "STATE_SCHEMA",
        "MERMAID",
        "NODES",
        "__GRAPH_INPUT_SCHEMAS",
        "__GRAPH_MIGRATES_FROM",
        "__GRAPH_SUBGRAPH_SCHEMAS",
    ];
    for item in &graph.module.item_names {
        let (ident, is_mod) = (&item.ident, item.is_mod);
        let name = ident_name(ident);
        if TYPES.contains(&name.as_str()) || VALUES.contains(&name.as_str()) {
            r.error(
                item.position,
                ident,
                format!("`{name}` is generated by `#[workflow]` in this module; rename this item"),
            );
        } else if is_mod && graph.index.contains_key(&name) {
            r.error(item.position,
                ident,
                format!(
                    "module `{name}` has the name of node `{name}`, and `#[workflow]` generates `mod {name}` for the node's `Next` enum; rename this module"
                ),
            );
        }
    }
    for node in graph.nodes() {
        if VALUES.contains(&node.name.as_str()) {
            r.error(node.position,
                &node.ident,
                format!("a node cannot be named `{}`: `#[workflow]` generates an item with this name; rename the function", node.name),
            );
        }
    }
}

/// An `edge!` to a name that is not a node is the typo the whole crate exists to catch at
/// compile time (string-keyed graph builders find it at run time, or never).
fn check_unknown_names(r: &Report, graph: &Graph) {
    let mut reported_plain: BTreeSet<String> = BTreeSet::new();
    for decl in &graph.module.edges {
        for (k, ident) in decl.sources().iter().chain(&decl.targets).enumerate() {
            if graph.resolve(ident) != Endpoint::Unknown {
                continue;
            }
            let name = ident_name(ident);
            if graph.module.misplaced_nodes.contains_key(&name) {
                continue; // `#[node]` on a method: already reported there.
            }
            // A missing `#[node]` needs one fix, however many edges name the function.
            if graph.module.plain_fns.contains_key(&name) && !reported_plain.insert(name) {
                continue;
            }
            let error_target = k >= decl.sources().len() && decl.on_error.is_some();
            r.error(
                decl.position,
                ident,
                unknown_name_message(graph, ident, error_target),
            );
        }
    }
}

/// `error_target`: the name is the target of an error edge, which only a node can be, so
/// `START` and `END` are not suggested.
fn unknown_name_message(graph: &Graph, ident: &syn::Ident, error_target: bool) -> String {
    let name = ident_name(ident);
    if graph.module.plain_fns.contains_key(&name) {
        return format!(
            "`{name}` is a function but not a node: mark it `#[node]` (as an `async fn` taking the state) to use it in `edge!`"
        );
    }
    let reserved: &[&str] = if error_target { &[] } else { &[START, END] };
    let candidates = graph
        .nodes()
        .iter()
        .map(|node| node.name.as_str())
        .chain(reserved.iter().copied());
    match did_you_mean(&name, candidates) {
        Some(close) => format!("unknown node `{name}` in `edge!`; did you mean `{close}`?"),
        None => format!(
            "unknown node `{name}` in `edge!`: declare `#[node] async fn {name}(…)` in this module, or fix the name"
        ),
    }
}

/// A run needs exactly one place to begin: with none the workflow cannot start, with two the
/// runner would have to guess.
fn check_start(r: &Report, graph: &Graph) {
    let starts: Vec<&Edge> = graph.outgoing(Endpoint::Start).collect();
    match starts.first() {
        None if !graph.nodes().is_empty() && !graph.module.incomplete => {
            let module = &graph.module.item.ident;
            let first = first_without_incoming(graph).unwrap_or("first_node");
            r.error(
                0,
                module,
                format!("workflow `{module}` has no entry: add `edge!(START -> {first})`"),
            );
        }
        None => {}
        Some(first) => {
            for edge in &starts[1..] {
                // `START -> a & b`: one `edge!`, reported by `check_region_ends`.
                if edge.decl == first.decl && edge.fan != crate::parse::Fan::One {
                    continue;
                }
                let ident = if edge.decl == first.decl {
                    &edge.to_ident
                } else {
                    &edge.from_ident
                };
                r.error(graph.decl_position(edge.decl),
                    ident,
                    format!(
                        "a second `START` edge: a workflow has exactly one entry, already `edge!(START -> {})`; remove this one, or branch from the first node",
                        first.to_ident
                    ),
                );
            }
        }
    }
    for edge in &starts {
        if edge.to == Endpoint::End {
            r.error(
                graph.decl_position(edge.decl),
                &edge.to_ident,
                "`edge!(START -> END)` leaves nothing to run: `START` must lead to a node",
            );
        }
    }
    // An error edge to `START` gets its own message from `check_error_edges`.
    for edge in graph
        .incoming(Endpoint::Start)
        .filter(|edge| edge.kind == EdgeKind::Route)
    {
        r.error(graph.decl_position(edge.decl),
            &edge.to_ident,
            "`START` cannot be a target: it only marks the entry; to loop back, target the first node instead",
        );
    }
}

/// The first node, in source order, that no edge enters: the likely entry, for suggestions.
fn first_without_incoming<'g>(graph: &Graph<'g>) -> Option<&'g str> {
    let nodes = graph.nodes();
    nodes
        .iter()
        .enumerate()
        .find(|(i, _)| graph.incoming(Endpoint::Node(*i)).next().is_none())
        .or_else(|| nodes.iter().enumerate().next())
        .map(|(_, node)| node.name.as_str())
}

/// `END` is where a run finishes; an edge out of it could never be taken.
fn check_end_has_no_successors(r: &Report, graph: &Graph) {
    for edge in graph.outgoing(Endpoint::End) {
        r.error(
            graph.decl_position(edge.decl),
            &edge.from_ident,
            "`END` has no successors: it is where the run finishes; remove this edge",
        );
    }
}

/// A node's `edge!` defines its `Next` enum, one variant per target in the order written;
/// splitting it over several `edge!`s would make that enum depend on declaration order.
/// The same edge twice is a leftover that changes nothing.
fn check_one_edge_per_node(r: &Report, graph: &Graph) {
    let mut first_decl: BTreeMap<Endpoint, usize> = BTreeMap::new();
    for (decl_index, decl) in graph.module.edges.iter().enumerate() {
        if decl.on_error.is_some() {
            continue; // Not a successor: `check_error_edges`.
        }
        // Repeated targets inside one `edge!`.
        let mut seen: Vec<Endpoint> = Vec::new();
        for target in &decl.targets {
            let to = graph.resolve(target);
            if to != Endpoint::Unknown && seen.contains(&to) {
                r.error(decl.position,
                    target,
                    format!("duplicate edge `{} -> {}`: `{}` is already a target of this `edge!`; remove it", decl.from, target, target),
                );
            }
            seen.push(to);
        }
        // Each branch of a join `b & c -> j` declares its successor here.
        for source in decl.sources() {
            one_edge_per_source(r, graph, &mut first_decl, decl_index, source);
        }
    }
}

/// [`check_one_edge_per_node`] for one source of the `edge!` at `decl_index`.
fn one_edge_per_source(
    r: &Report,
    graph: &Graph,
    first_decl: &mut BTreeMap<Endpoint, usize>,
    decl_index: usize,
    source: &syn::Ident,
) {
    let Some(decl) = graph.module.edges.get(decl_index) else {
        return;
    };
    let from = graph.resolve(source);
    if matches!(from, Endpoint::Unknown | Endpoint::Start | Endpoint::End) {
        return;
    }
    let Some(&earlier) = first_decl.get(&from) else {
        first_decl.insert(from, decl_index);
        return;
    };
    let earlier_targets: Vec<Endpoint> = graph.module.edges[earlier]
        .targets
        .iter()
        .map(|t| graph.resolve(t))
        .collect();
    let all_repeated = decl
        .targets
        .iter()
        .all(|t| earlier_targets.contains(&graph.resolve(t)));
    if all_repeated {
        r.error(
            decl.position,
            &decl.tokens,
            format!(
                "duplicate edge: `{}` already leads to {}; remove this `edge!`",
                source,
                list_names(&decl.targets)
            ),
        );
    } else {
        let mut merged: Vec<String> = graph.module.edges[earlier]
            .targets
            .iter()
            .map(ToString::to_string)
            .collect();
        for target in &decl.targets {
            let name = target.to_string();
            if !merged.contains(&name) {
                merged.push(name);
            }
        }
        r.error(decl.position,
                source,
                format!(
                    "node `{}` already has an `edge!`; list all of its successors in one: `edge!({} -> {})`",
                    source,
                    source,
                    merged.join(" | ")
                ),
            );
    }
}

/// An error edge (`edge!(a -> b on error)`) hands a failure from node `a` to node `b`, which
/// reads it with `ctx.failure()`. So both ends must be nodes: `START` and `END` cannot fail or
/// read anything; a failure must go to one place; a node that handles its own failure is a
/// retry in disguise. (An interrupt node may be either end: the runner keeps the failure while
/// the session waits for the input.)
fn check_error_edges(r: &Report, graph: &Graph) {
    // The first error edge of each node: a second one is an error.
    let mut first: BTreeMap<usize, &Edge> = BTreeMap::new();
    for edge in graph
        .edges
        .iter()
        .filter(|edge| edge.kind == EdgeKind::Error)
    {
        let position = graph.decl_position(edge.decl);
        let from = &edge.from_ident;
        let to = &edge.to_ident;
        // As written, not as a typo was recovered: a typo gets its one error, not two.
        let (from_end, to_end) = (graph.resolve(from), graph.resolve(to));
        match from_end {
            Endpoint::Start => r.error(
                position,
                from,
                format!(
                    "`START` cannot fail, so it has no error edge: an error edge leaves a node, as in `edge!(charge -> {to} on error)`"
                ),
            ),
            Endpoint::End => r.error(
                position,
                from,
                format!(
                    "`END` cannot fail, so it has no error edge: an error edge leaves a node, as in `edge!(charge -> {to} on error)`"
                ),
            ),
            // Reported by `check_unknown_names`.
            Endpoint::Unknown => {}
            Endpoint::Node(i) => {
                if let Some(earlier) = first.get(&i) {
                    if graph.resolve(&earlier.to_ident) == to_end {
                        let tokens = graph.module.edges.get(edge.decl).map(|d| &d.tokens);
                        r.error(
                            position,
                            tokens,
                            format!(
                                "duplicate error edge: `{from}` already leads to `{to}` on error; remove this `edge!`"
                            ),
                        );
                    } else {
                        r.error(
                            position,
                            from,
                            format!(
                                "node `{from}` already has an error edge, to `{}`: a failure goes to one place; remove one of them, and branch inside the error node if failures need different handling",
                                earlier.to_ident
                            ),
                        );
                    }
                } else {
                    first.insert(i, edge);
                }
            }
        }
        match to_end {
            Endpoint::Start | Endpoint::End => r.error(
                position,
                to,
                format!(
                    "`{to}` cannot be the target of an error edge: an error edge must lead to a node that can read `ctx.failure()`; to end the run when `{from}` fails, declare no error edge (the run then ends with `Error::Node`)"
                ),
            ),
            Endpoint::Node(j) if from_end == Endpoint::Node(j) => r.error(
                position,
                to,
                format!(
                    "node `{from}` cannot be its own error node: that would retry it without end; to retry it, use `#[node(retry = 3)]`, and lead the error edge to a node that handles the failure"
                ),
            ),
            // Reported by `check_unknown_names`.
            Endpoint::Node(_) | Endpoint::Unknown => {}
        }
    }
}

fn list_names(idents: &[syn::Ident]) -> String {
    let names: Vec<String> = idents.iter().map(|i| format!("`{i}`")).collect();
    names.join(", ")
}

/// A `#[node]` that no edge mentions is dead code that looks alive; usually an `edge!` was
/// forgotten or deleted.
fn check_connected(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if !graph.is_usable(i) || is_named_by_an_edge(graph, i) {
            continue;
        }
        r.error(node.position,
            &node.ident,
            format!(
                "node `{name}` is not connected to the graph: no `edge!` names it; add an edge into it and `edge!({name} -> …)` out of it, or remove `#[node]`",
                name = node.name
            ),
        );
    }
}

/// Whether any `edge!` names node `i`, as source or target, route or error edge.
fn is_named_by_an_edge(graph: &Graph, i: usize) -> bool {
    let endpoint = Endpoint::Node(i);
    graph.outgoing(endpoint).next().is_some()
        || graph.error_edges(endpoint).next().is_some()
        || graph.incoming(endpoint).next().is_some()
}

/// After a node runs, the runner must know where to go. Other graph libraries end the run
/// silently here; we make the missing edge a compile error at the node. An error edge does
/// not count: it says where to go when the node fails, not when it succeeds.
fn check_outgoing(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        let endpoint = Endpoint::Node(i);
        let error_edge = graph.error_edges(endpoint).next();
        if !graph.is_usable(i)
            || graph.outgoing(endpoint).next().is_some()
            || (graph.incoming(endpoint).next().is_none() && error_edge.is_none())
        {
            continue;
        }
        let name = &node.name;
        let message = match error_edge {
            Some(edge) => format!(
                "node `{name}` has only an error edge (`edge!({name} -> {} on error)`, taken when it fails), so the run would not know where to go when it succeeds: add `edge!({name} -> END)` or `edge!({name} -> next_node)`",
                edge.to_ident
            ),
            None => format!(
                "node `{name}` has no outgoing edge, so the run would not know where to go after it: add `edge!({name} -> END)` or `edge!({name} -> next_node)`"
            ),
        };
        r.error(node.position, &node.ident, message);
    }
}

/// A node no path from `START` reaches can never run: either an edge into it is missing or the
/// node is obsolete.
fn check_reachable_from_start(r: &Report, graph: &Graph) {
    let roots: Vec<usize> = graph
        .outgoing(Endpoint::Start)
        .filter_map(|edge| match edge.to {
            Endpoint::Node(i) => Some(i),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        return; // `check_start` reports the missing entry.
    }
    let reached = forward_reach(graph, &roots, Follow::RoutesAndErrorEdges);
    for (i, node) in graph.nodes().iter().enumerate() {
        let endpoint = Endpoint::Node(i);
        if reached.contains(&i) || !graph.is_usable(i) || !is_named_by_an_edge(graph, i) {
            continue;
        }
        let from: Vec<String> = graph
            .incoming(endpoint)
            .filter_map(|edge| match edge.from {
                Endpoint::Node(j) => graph.nodes().get(j).map(|n| format!("`{}`", n.name)),
                _ => None,
            })
            .collect();
        let why = if from.is_empty() {
            "no edge leads to it".to_owned()
        } else {
            format!(
                "only {} lead to it, and no path from `START` reaches them",
                from.join(", ")
            )
        };
        r.error(node.position,
            &node.ident,
            format!(
                "node `{name}` cannot be reached from `START`: {why}; add it as a target of a reachable node's `edge!`, or remove it",
                name = node.name
            ),
        );
    }
}

/// A run that enters a part of the graph with no way to `END` loops forever (until
/// `max_steps`); that is a graph bug, so it is a compile error at the node where the trap
/// begins. Every node a run can reach, through routes or error edges, must reach `END` through
/// routes: success must finish, including after a failure was handled (an error node must
/// itself lead to `END`).
fn check_end_reachable(r: &Report, graph: &Graph) {
    let roots: Vec<usize> = graph
        .outgoing(Endpoint::Start)
        .filter_map(|edge| match edge.to {
            Endpoint::Node(i) => Some(i),
            _ => None,
        })
        .collect();
    if roots.is_empty() {
        return;
    }
    let reached = forward_reach(graph, &roots, Follow::RoutesAndErrorEdges);
    let finishes = backward_reach_end(graph);
    let trapped: BTreeSet<usize> = reached.difference(&finishes).copied().collect();
    let mut reported: BTreeSet<usize> = BTreeSet::new();
    for &node_index in &trapped {
        if reported.contains(&node_index) {
            continue;
        }
        let endpoint = Endpoint::Node(node_index);
        // The nodes the run can go through from here on success: all of them trapped.
        let component = forward_reach(graph, &[node_index], Follow::Routes);
        let entering: Vec<&Edge> = graph
            .incoming(endpoint)
            .filter(|edge| match edge.from {
                // A failure elsewhere in the trap is another way in.
                Endpoint::Node(j) if edge.kind == EdgeKind::Error => !component.contains(&j),
                Endpoint::Node(j) => !trapped.contains(&j),
                Endpoint::Start => true,
                _ => false,
            })
            .collect();
        if entering.is_empty() {
            continue; // Entered from inside the trap: reported with its entry.
        }
        reported.extend(component.iter().copied());
        let Some(node) = graph.nodes().get(node_index) else {
            continue;
        };
        let members: Vec<String> = component
            .iter()
            .filter_map(|&j| graph.nodes().get(j).map(|n| format!("`{}`", n.name)))
            .collect();
        let entered: Vec<String> = entering
            .iter()
            .map(|edge| match edge.kind {
                EdgeKind::Route => format!("`edge!({} -> {})`", edge.from_ident, edge.to_ident),
                EdgeKind::Error => {
                    format!("`edge!({} -> {} on error)`", edge.from_ident, edge.to_ident)
                }
            })
            .collect();
        // Suggest an exit on the last node of the trap in source order: often the loop's tail.
        let exit = component
            .iter()
            .next_back()
            .and_then(|&j| graph.nodes().get(j).map(|n| (j, n)))
            .map(|(j, n)| {
                let mut targets: Vec<String> = graph
                    .successors(j)
                    .iter()
                    .map(|edge| edge.to_ident.to_string())
                    .collect();
                targets.push(END.to_owned());
                format!("`edge!({} -> {})`", n.name, targets.join(" | "))
            })
            .unwrap_or_default();
        let stays = if members.len() == 1 {
            format!("its only edge loops back to {}", members.join(""))
        } else {
            format!("every path from it stays among {}", members.join(", "))
        };
        r.error(node.position,
            &node.ident,
            format!(
                "`END` cannot be reached from node `{name}` (entered by {entered}): {stays}; add a way out, e.g. {exit}",
                name = node.name,
                entered = entered.join(", "),
            ),
        );
    }
}

/// Which edges a search follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// Where a run can go when every node succeeds.
    Routes,
    /// Where a run can go at all: a node reached only through an error edge still runs.
    RoutesAndErrorEdges,
}

/// The nodes reachable from `roots` (included).
fn forward_reach(graph: &Graph, roots: &[usize], follow: Follow) -> BTreeSet<usize> {
    let mut reached: BTreeSet<usize> = BTreeSet::new();
    let mut queue: VecDeque<usize> = roots.iter().copied().collect();
    while let Some(i) = queue.pop_front() {
        if !reached.insert(i) {
            continue;
        }
        let errors = match follow {
            Follow::Routes => None,
            Follow::RoutesAndErrorEdges => Some(graph.error_edges(Endpoint::Node(i))),
        };
        for edge in graph
            .outgoing(Endpoint::Node(i))
            .chain(errors.into_iter().flatten())
        {
            if let Endpoint::Node(j) = edge.to {
                queue.push_back(j);
            }
        }
    }
    reached
}

/// The nodes from which `END` can be reached through routes. Nodes with no outgoing edge, or
/// with an edge to an unknown name, count as finishing: their own errors are already reported.
fn backward_reach_end(graph: &Graph) -> BTreeSet<usize> {
    let mut queue: VecDeque<usize> = VecDeque::new();
    for edge in graph
        .edges
        .iter()
        .filter(|edge| edge.kind == EdgeKind::Route)
    {
        if let (Endpoint::Node(i), Endpoint::End | Endpoint::Unknown) = (edge.from, edge.to) {
            queue.push_back(i);
        }
    }
    for i in 0..graph.nodes().len() {
        if graph.outgoing(Endpoint::Node(i)).next().is_none() {
            queue.push_back(i);
        }
    }
    let mut finishes: BTreeSet<usize> = BTreeSet::new();
    while let Some(i) = queue.pop_front() {
        if !finishes.insert(i) {
            continue;
        }
        for edge in graph
            .incoming(Endpoint::Node(i))
            .filter(|edge| edge.kind == EdgeKind::Route)
        {
            if let Endpoint::Node(j) = edge.from {
                queue.push_back(j);
            }
        }
    }
    finishes
}

/// Generated enums name nodes in UpperCamelCase; two names that map to one variant
/// (`send_email`, `send__email`, or a node `end` next to `END`) would not compile.
fn check_variant_collisions(r: &Report, graph: &Graph) {
    let mut cursor_variants: BTreeMap<String, &str> = BTreeMap::new();
    for (i, node) in graph.nodes().iter().enumerate() {
        if !graph.is_usable(i) {
            continue;
        }
        let variant = variant_ident(&node.name, node.ident.span()).to_string();
        if let Some(other) = cursor_variants.insert(variant.clone(), &node.name) {
            r.error(node.position,
                &node.ident,
                format!("nodes `{other}` and `{}` both become `{variant}` in the generated enums; rename one", node.name),
            );
        }
    }
    for (i, _) in graph.nodes().iter().enumerate() {
        let mut variants: BTreeMap<String, String> = BTreeMap::new();
        for edge in graph.successors(i) {
            let name = ident_name(&edge.to_ident);
            let variant = variant_ident(&name, edge.to_ident.span()).to_string();
            if let Some(other) = variants.insert(variant.clone(), name.clone())
                && other != name
            {
                r.error(graph.decl_position(edge.decl),
                    &edge.to_ident,
                    format!(
                        "`{other}` and `{name}` both become the variant `{variant}` of `{}::Next`; rename the node",
                        edge.from_ident.to_token_stream()
                    ),
                );
            }
        }
    }
}

/// `#[node(renamed_from = "old")]` sends checkpoints saved at node `old` (in an older build)
/// to this node, through `cursor_of`. So an old name must be a name a node could have had (an
/// identifier other than `START` and `END`); it must not be a node of this graph (checkpoints
/// at that node would have two places to resume); and it must belong to one node only.
/// Every combination of old names is one older graph with its own hashes, so their number is
/// bounded.
fn check_renamed_from(r: &Report, graph: &Graph) {
    let mut owners: BTreeMap<String, &str> = BTreeMap::new();
    let mut combinations: usize = 1;
    for (i, node) in graph.nodes().iter().enumerate() {
        if !graph.is_usable(i) {
            continue;
        }
        let mut counted = 0;
        for lit in &node.args.renamed_from {
            let old = lit.value();
            if !is_node_name(&old) {
                r.error(
                    node.position,
                    lit,
                    format!(
                        "`renamed_from` takes the node's old name, which must be a plain identifier other than `START` or `END`, not `{}`: write the name of the old `#[node]` function, e.g. `renamed_from = \"review\"`",
                        old.escape_debug()
                    ),
                );
            } else if graph.index.contains_key(&old) {
                r.error(
                    node.position,
                    lit,
                    format!(
                        "`{old}` is a node of this graph, so it cannot be an old name of `{}`: checkpoints saved at `{old}` resume at `{old}`; remove `{old}` from `renamed_from`, or rename node `{old}`",
                        node.name
                    ),
                );
            } else if let Some(owner) = owners.get(&old) {
                let message = if *owner == node.name {
                    format!(
                        "`{old}` is listed twice in `renamed_from` of node `{owner}`; remove this one"
                    )
                } else {
                    format!(
                        "`{old}` is already an old name of node `{owner}`: a checkpoint saved at `{old}` can resume at one node only; remove it from one of them"
                    )
                };
                r.error(node.position, lit, message);
            } else {
                owners.insert(old, &node.name);
                counted += 1;
            }
        }
        if counted > 0 {
            let next = combinations.saturating_mul(counted + 1);
            if next > MAX_RENAMED_GRAPHS + 1
                && combinations <= MAX_RENAMED_GRAPHS + 1
                && let Some(lit) = node.args.renamed_from.first()
            {
                r.error(
                    node.position,
                    lit,
                    format!(
                        "the old names in `renamed_from` describe more than {MAX_RENAMED_GRAPHS} older graphs (one per combination); keep the names of the releases whose sessions may still wait, and list older graph hashes in `#[workflow(accept_graphs = [...])]`"
                    ),
                );
            }
            combinations = next;
        }
    }
}

/// A node receives the state, optionally `ctx`, and nothing else the runner could supply —
/// except an interrupt node's input (read by `parse`), a map node's item and a join's branch
/// outputs. Any other parameter could never be given a value.
fn check_extra_params(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if !graph.is_usable(i) || graph.is_join(i) {
            continue; // A join's parameters: `check_join_params`.
        }
        let map_node = is_map_node(graph, i);
        for (k, param) in node.extras().enumerate() {
            if map_node && k == 0 {
                continue; // The item.
            }
            let message = if map_node {
                format!(
                    "map node `{}` takes one item; remove `{}`, or fold it into the item type",
                    node.name,
                    tokens_to_string(&param.tokens)
                )
            } else {
                format!(
                    "node `{}` has an extra parameter `{}`: a node takes the state and, optionally, `ctx: &NodeCtx`; to wait for a human decision of this type, mark it `#[node(interrupt)]`",
                    node.name,
                    tokens_to_string(&param.tokens)
                )
            };
            r.error(node.position, &param.tokens, message);
        }
    }
}

/// A map runs its node once per item and hands it that item: a map node without the
/// parameter would silently drop every item, which is never what the graph means.
fn check_map_item(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        // No parameters: the signature was rejected, and said why. An interrupt map node is
        // reported by `check_map_not_interrupt` (its item was read as its input).
        if !graph.is_usable(i)
            || !is_map_node(graph, i)
            || node.params.is_empty()
            || node.args.interrupt
        {
            continue;
        }
        if node.extras().next().is_some() {
            continue;
        }
        let Some(source) = graph.regions.iter().find_map(|region| {
            (region.each && region.branches.contains(&Endpoint::Node(i)))
                .then(|| ident_name(&region.source_ident))
        }) else {
            continue;
        };
        let item = graph
            .index
            .get(&source)
            .and_then(|&s| graph.nodes().get(s))
            .and_then(|producer| producer.produced_type())
            .and_then(vec_item_type)
            .map_or_else(|| "Item".to_owned(), tokens_to_string);
        let state = node
            .state_param()
            .map_or_else(|| "&State".to_owned(), |param| tokens_to_string(&param.ty));
        let state = state.replacen("&mut", "&", 1).replace("& ", "&");
        r.error(
            node.position,
            &node.ident,
            format!(
                "map node `{name}` has no item parameter: a map node takes `{state}`, then the item (`{item}`, one element of the `Vec` that `{source}` returns), then optionally `ctx: &NodeCtx`; write `async fn {name}(state: {state}, item: {item})`",
                name = node.name
            ),
        );
    }
}

/// `&` means "all of these" and `|` "one of these": an `edge!` with both would leave it
/// unclear which targets run, and what the node returns.
fn check_mixed_fan(r: &Report, graph: &Graph) {
    for decl in &graph.module.edges {
        if let Some(separator) = &decl.mixed {
            let targets: Vec<String> = decl.targets.iter().map(ToString::to_string).collect();
            r.error(
                decl.position,
                separator,
                format!(
                    "an `edge!` cannot mix `&` and `|`: `edge!({from} -> {all})` runs every target at once (a fan-out), `edge!({from} -> {one})` runs the one the node picks (a branch); choose one, and fan out or branch in a node of its own for the rest",
                    from = decl.from,
                    all = targets.join(" & "),
                    one = targets.join(" | "),
                ),
            );
        }
    }
}

/// A fan-out or a map starts in a node, which runs once, and runs nodes, which return their
/// outputs: `START` is no node that could open a region (and a run begins at one node), and
/// `START` or `END` cannot be branches.
fn check_region_ends(r: &Report, graph: &Graph) {
    for region in &graph.regions {
        let position = graph.decl_position(region.decl);
        let what = if region.each { "map" } else { "fan out" };
        if region.source == Endpoint::Start {
            let targets: Vec<String> = region
                .branch_idents
                .iter()
                .map(ToString::to_string)
                .collect();
            let example = if region.each {
                format!(
                    "`edge!(START -> plan)` and `edge!(plan -> each {})`",
                    targets.join("")
                )
            } else {
                format!(
                    "`edge!(START -> intake)` and `edge!(intake -> {})`",
                    targets.join(" & ")
                )
            };
            r.error(
                position,
                &region.source_ident,
                format!(
                    "`START` cannot {what}: a run begins at one node; start at a node that does, e.g. {example}"
                ),
            );
        }
        for (branch, ident) in region.branches.iter().zip(&region.branch_idents) {
            if matches!(branch, Endpoint::Start | Endpoint::End) {
                r.error(
                    position,
                    ident,
                    format!(
                        "`{ident}` cannot be a branch: a branch is a node that returns an output for the join; to finish the run, lead the join to `END`"
                    ),
                );
            }
        }
    }
}

/// A branch's output fills one slot of one region's frontier: a node that is a branch of two
/// regions (or twice of one) would have two slots and be run twice for one step.
fn check_branch_once(r: &Report, graph: &Graph) {
    let mut first: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, region) in graph.regions.iter().enumerate() {
        for (branch, ident) in region.branches.iter().zip(&region.branch_idents) {
            let Endpoint::Node(i) = *branch else { continue };
            match first.get(&i) {
                Some(&earlier) if earlier != k => {
                    let source = graph
                        .regions
                        .get(earlier)
                        .map_or_else(String::new, |e| e.source_ident.to_string());
                    r.error(
                        graph.decl_position(region.decl),
                        ident,
                        format!(
                            "node `{ident}` is already a branch of `{source}`'s region: a branch belongs to one fan-out or map; declare another node for this one"
                        ),
                    );
                }
                Some(_) => {} // Twice in one `edge!`: `check_one_edge_per_node`.
                None => {
                    first.insert(i, k);
                }
            }
        }
    }
}

/// A map runs its node once per item, and this version cannot wait for a decision per item
/// (nor name one item's decision in `Input`): a map node may not be an interrupt node.
fn check_map_not_interrupt(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if node.args.interrupt && is_map_node(graph, i) {
            r.error(
                node.position,
                &node.ident,
                format!(
                    "map node `{}` cannot be an interrupt node: a map runs it once per item, and a run cannot wait for a decision per item; ask for the decision in a node before the map or after its join",
                    node.name
                ),
            );
        }
    }
}

/// A join is called with its branches' outputs once they are all in; it cannot also wait for
/// a human decision (an interrupt branch can, before the join).
fn check_join_not_interrupt(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if node.args.interrupt && graph.is_join(i) {
            r.error(
                node.position,
                &node.ident,
                format!(
                    "join `{}` cannot be an interrupt node: it runs once its branches' outputs are in; make one of the branches the interrupt node, or wait in a node after the join",
                    node.name
                ),
            );
        }
    }
}

/// Branches run at the same time and read one state: one that could change it would race
/// its siblings (the fan-in conflicts of other graph libraries). So a branch takes `&State`
/// and returns its output; the join alone writes the state.
fn check_branch_state(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if !graph.is_branch(i) {
            continue;
        }
        let Some(param) = node.state_param() else {
            continue;
        };
        if param.role != (ParamRole::State { mutable: true }) {
            continue;
        }
        let state = match &param.ty {
            syn::Type::Reference(reference) => tokens_to_string(&reference.elem),
            other => tokens_to_string(other),
        };
        let join = join_name(graph, i).unwrap_or_else(|| "the join".to_owned());
        r.error(
            node.position,
            &param.ty,
            format!(
                "branch `{}` takes `&{state}`, not `&mut {state}`: it runs at the same time as its siblings, which read the same state; return what it computes, and let {join} write it into the state",
                node.name
            ),
        );
    }
}

/// `the join `decide``, for messages about a branch.
fn join_name(graph: &Graph, branch: usize) -> Option<String> {
    let Some(Role::Branch { region, .. }) = graph.role(branch) else {
        return None;
    };
    let join = graph.join_of(region)?;
    graph
        .nodes()
        .get(join)
        .map(|node| format!("the join `{}`", node.name))
}

/// A branch's failure belongs to its region: by default it fails the run (its siblings are
/// cancelled), and a join that takes `Result<O, Failure>` receives it instead. An error edge
/// would send the run somewhere else while the siblings still run.
fn check_branch_error_edges(r: &Report, graph: &Graph) {
    for edge in graph.edges.iter().filter(|e| e.kind == EdgeKind::Error) {
        let Endpoint::Node(i) = edge.from else {
            continue;
        };
        if !graph.is_branch(i) {
            continue;
        }
        let Some(node) = graph.nodes().get(i) else {
            continue;
        };
        let output = node
            .produced_type()
            .map_or_else(|| "O".to_owned(), tokens_to_string);
        let join = join_name(graph, i).unwrap_or_else(|| "the join".to_owned());
        let error = graph
            .module
            .edges
            .get(edge.decl)
            .and_then(|decl| decl.on_error.clone())
            .unwrap_or_else(|| edge.to_ident.to_token_stream());
        r.error(
            graph.decl_position(edge.decl),
            error,
            format!(
                "branch `{name}` cannot have an error edge: its failure goes to its region; to handle it, take `{name}: Result<{output}, Failure>` in {join} (collect mode), which then runs with the failure instead of failing the run",
                name = node.name
            ),
        );
    }
}

/// `concurrency` is how many items of a map run at once: 0 would run none, and on any other
/// node it would mean nothing.
fn check_concurrency(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        let Some((limit, lit, key)) = &node.args.concurrency else {
            continue;
        };
        if !is_map_node(graph, i) {
            r.error(
                node.position,
                quote::quote!(#key = #lit),
                format!(
                    "`concurrency` limits how many items of a map run at once, and `{name}` is not a map node (the node after `each` in an `edge!(… -> each node)`); remove it",
                    name = node.name
                ),
            );
        } else if *limit == 0 {
            r.error(
                node.position,
                lit,
                "`concurrency = 0` would never run an item; give how many items may run at once, e.g. `concurrency = 8`, or remove it for no limit",
            );
        }
    }
}

/// `#[node(migrate_from = [...])]` lists older versions of a type that the session saved
/// apart from the state: a branch's output (saved as the branch finishes) or a map's items
/// (saved with the fan-out). Every other node saves nothing of its own, so the list there
/// could never be used; older *state* types belong to the workflow. Within the list, as for
/// the state's, a saved value names its type by fingerprint only: a type listed twice, or
/// the current type itself, would make the choice ambiguous (two different types with one
/// fingerprint are caught by the generated `const` assertions).
fn check_node_migrate_from(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        let Some((key, types)) = &node.args.migrate_from else {
            continue;
        };
        if !graph.is_usable(i) {
            continue;
        }
        let current = match graph.migrated_type(i) {
            Some(current) => current,
            None => {
                r.error(
                    node.position,
                    key,
                    format!(
                        "`migrate_from` on a node lists older types of its branch output or map items; `{}` produces neither; list older state types in `#[workflow(migrate_from = [...])]`",
                        node.name
                    ),
                );
                continue;
            }
        };
        let current = current.map(|(what, ty)| (what, tokens_to_string(ty)));
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for ty in types {
            let name = tokens_to_string(ty);
            match &current {
                Some((what, current)) if *current == name => r.error(
                    node.position,
                    ty,
                    format!(
                        "`{name}` is the {what} type itself: saved values of it decode without a migration; remove it from `migrate_from`"
                    ),
                ),
                _ if !seen.insert(name.clone()) => r.error(
                    node.position,
                    ty,
                    format!("`{name}` is listed twice in `migrate_from`; remove this one"),
                ),
                _ => {}
            }
        }
    }
}

/// A branch is exactly one node whose only successor is its join: the runner collects the
/// branches' outputs at that join, so every branch of a region must lead to it and nowhere
/// else.
fn check_branch_successor(r: &Report, graph: &Graph) {
    for (k, region) in graph.regions.iter().enumerate() {
        let join = graph.join_of(k);
        for (branch, ident) in region.branches.iter().zip(&region.branch_idents) {
            let Endpoint::Node(i) = *branch else { continue };
            let Some(node) = graph.nodes().get(i) else {
                continue;
            };
            let successors = graph.successors(i);
            let Some(first) = successors.first() else {
                continue; // `check_outgoing`.
            };
            let joined: Vec<String> = region
                .branch_idents
                .iter()
                .map(ToString::to_string)
                .collect();
            let join_name = join
                .and_then(|j| graph.nodes().get(j))
                .map_or("join", |n| n.name.as_str());
            let example = if region.each {
                format!("`edge!({} -> {join_name})`", node.name)
            } else {
                format!("`edge!({} -> {join_name})`", joined.join(" & "))
            };
            let position = graph.decl_position(first.decl);
            if successors.len() > 1 || first.fan != crate::parse::Fan::One {
                r.error(
                    position,
                    &first.from_ident,
                    format!(
                        "branch `{}` has more than one successor: a branch leads to its join only, which takes its output; declare {example}, and branch or fan out in the join",
                        node.name
                    ),
                );
            } else if first.to == Endpoint::End {
                r.error(
                    position,
                    &first.to_ident,
                    format!(
                        "branch `{}` cannot lead to `END`: its output goes to a join, a node that takes it as a parameter; declare {example}, and lead the join to `END`",
                        node.name
                    ),
                );
            } else if let (Endpoint::Node(j), Some(join)) = (first.to, join)
                && j != join
            {
                let join_name = graph.nodes().get(join).map_or("", |n| n.name.as_str());
                r.error(
                    position,
                    &first.to_ident,
                    format!(
                        "the branches of `{}` must meet in one join, and `{join_name}` is already theirs: lead `{}` to `{join_name}` too",
                        region.source_ident, ident
                    ),
                );
            }
        }
    }
}

/// The join is called with its region's outputs, by the runner: an edge from anywhere else
/// would run it without them. Likewise a branch runs only as part of its region, with the
/// state shared and its output collected.
fn check_region_entered_by_its_edges(r: &Report, graph: &Graph) {
    for (k, region) in graph.regions.iter().enumerate() {
        let source = region.source_ident.to_string();
        let branches: Vec<String> = region
            .branch_idents
            .iter()
            .map(ToString::to_string)
            .collect();
        let declared = if region.each {
            format!("`edge!({source} -> each {})`", branches.join(""))
        } else {
            format!("`edge!({source} -> {})`", branches.join(" & "))
        };
        for &branch in &region.branches {
            let Endpoint::Node(i) = branch else { continue };
            for edge in graph.incoming(branch) {
                if edge.from == region.source && edge.fan != crate::parse::Fan::One {
                    continue;
                }
                let name = graph.nodes().get(i).map_or("", |n| n.name.as_str());
                r.error(
                    graph.decl_position(edge.decl),
                    &edge.to_ident,
                    format!(
                        "node `{name}` is a branch of {declared}, so only that edge runs it (with the shared state, its output going to the join); remove this edge, or lead it to another node"
                    ),
                );
            }
        }
        let Some(join) = graph.join_of(k) else {
            continue;
        };
        let Some(join_node) = graph.nodes().get(join) else {
            continue;
        };
        for edge in graph.incoming(Endpoint::Node(join)) {
            if region.branches.contains(&edge.from) && edge.kind == EdgeKind::Route {
                continue;
            }
            // A join of two regions is reported at the second region's branch.
            if matches!(edge.from, Endpoint::Node(j) if graph.is_branch(j)) {
                if let Endpoint::Node(j) = edge.from
                    && matches!(graph.role(j), Some(Role::Branch { region: other, .. }) if other != k)
                {
                    r.error(
                        graph.decl_position(edge.decl),
                        &edge.to_ident,
                        format!(
                            "node `{}` already joins the branches of `{source}`: a join takes one region's outputs; give this region a join of its own",
                            join_node.name
                        ),
                    );
                }
                continue;
            }
            r.error(
                graph.decl_position(edge.decl),
                &edge.to_ident,
                format!(
                    "node `{}` is the join of {declared}: it runs once its branches are done, with their outputs, so only they lead to it; remove this edge, or lead it to a node before the region",
                    join_node.name
                ),
            );
        }
    }
}

/// A join takes one parameter per branch, named after it, so that the macro can hand each
/// output to its parameter (and rustc check its type): a name that is no branch would get no
/// value, and a branch without a parameter would be lost.
fn check_join_params(r: &Report, graph: &Graph) {
    for (k, region) in graph.regions.iter().enumerate() {
        let Some(join) = graph.join_of(k) else {
            continue;
        };
        let Some(node) = graph.nodes().get(join) else {
            continue;
        };
        // A join of two regions is reported by `check_region_entered_by_its_edges`.
        if graph.role(join) != Some(Role::Join { region: k }) {
            continue;
        }
        let names: Vec<String> = region
            .branches
            .iter()
            .filter_map(|&b| match b {
                Endpoint::Node(i) => graph.nodes().get(i).map(|n| n.name.clone()),
                _ => None,
            })
            .collect();
        let listed: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for param in node.extras() {
            let Some(ident) = &param.name else {
                r.error(
                    node.position,
                    &param.tokens,
                    format!(
                        "name the parameters of join `{}` after its branches ({}), so each gets its branch's output",
                        node.name,
                        listed.join(", ")
                    ),
                );
                continue;
            };
            let name = ident_name(ident);
            if names.contains(&name) {
                taken.insert(name);
                continue;
            }
            let hint = match did_you_mean(&name, names.iter().map(String::as_str)) {
                Some(close) => {
                    // The typo is the one error: the branch it meant is not missing.
                    taken.insert(close.to_owned());
                    format!("; did you mean `{close}`?")
                }
                None => format!(
                    ": its parameters are named after its branches ({}), and take their outputs",
                    listed.join(", ")
                ),
            };
            r.error(
                node.position,
                ident,
                format!(
                    "parameter `{name}` of join `{}` names no branch{hint}",
                    node.name
                ),
            );
        }
        for (branch, name) in region.branches.iter().zip(&names) {
            if taken.contains(name) {
                continue;
            }
            let output = match branch {
                Endpoint::Node(i) => graph
                    .nodes()
                    .get(*i)
                    .and_then(|n| n.produced_type())
                    .map_or_else(|| "()".to_owned(), tokens_to_string),
                _ => "()".to_owned(),
            };
            let (ty, collect) = if region.each {
                (
                    format!("Vec<{output}>"),
                    format!("Vec<Result<{output}, Failure>>"),
                )
            } else {
                (output.clone(), format!("Result<{output}, Failure>"))
            };
            r.error(
                node.position,
                &node.ident,
                format!(
                    "join `{}` has no parameter for branch `{name}`: add `{name}: {ty}` (or `{name}: {collect}` to handle its failure here)",
                    node.name
                ),
            );
        }
    }
}

/// Whether node `i` is the target of an `each`.
fn is_map_node(graph: &Graph, i: usize) -> bool {
    matches!(graph.role(i), Some(Role::Branch { region, .. })
        if graph.regions.get(region).is_some_and(|r| r.each))
}

/// Whether `name` is a name a node function could have: an identifier (keywords included, as
/// `r#type`), not `START` or `END`.
pub(crate) fn is_node_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c == '_' || c.is_alphabetic());
    starts_well
        && name != "_"
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && name != START
        && name != END
}

/// A workflow that runs itself as a subgraph starts a child that starts a child, forever
/// (and its `GRAPH_HASH` would be defined by itself). Only the module's own name can be seen
/// here; a cycle through other modules is left to rustc.
fn check_subgraph_not_itself(r: &Report, graph: &Graph) {
    let module = ident_name(&graph.module.item.ident);
    for node in graph.nodes() {
        let Some((path, _)) = &node.args.subgraph else {
            continue;
        };
        let Some(last) = path.segments.last() else {
            continue;
        };
        let last = ident_name(&last.ident);
        if last == "self" || (last == module && path.segments.len() <= 2) {
            r.error(
                node.position,
                path,
                format!(
                    "node `{}` runs workflow `{module}` as its own subgraph, which would start a child that starts a child without end; name another `#[workflow]` module, or loop with an edge (`edge!({} -> …)`) inside `{module}`",
                    node.name, node.name
                ),
            );
        }
    }
}

/// A map node that runs a child takes the state, the item, then the child, as its docs and
/// every example write it: with the item after the child, a reader takes `Child` for the
/// item's type and the item for a second argument of the child.
fn check_map_child_order(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        if node.args.subgraph.is_none() || !graph.is_usable(i) || !is_map_node(graph, i) {
            continue;
        }
        let position = |role: fn(ParamRole) -> bool| node.params.iter().position(|p| role(p.role));
        let (Some(child), Some(item)) = (
            position(|role| role == ParamRole::Child),
            position(|role| role == ParamRole::Extra),
        ) else {
            continue; // A missing child or item is reported on its own.
        };
        let state = position(|role| matches!(role, ParamRole::State { .. }));
        if child > item && state.is_none_or(|state| state < item) {
            continue;
        }
        let param = &node.params[child];
        let mut order: Vec<String> = Vec::new();
        order.extend(state.map(|k| tokens_to_string(&node.params[k].tokens)));
        order.push(tokens_to_string(&node.params[item].tokens));
        order.push(tokens_to_string(&param.tokens));
        r.error(
            node.position,
            &param.tokens,
            format!(
                "map node `{name}` takes the state, then the item, then its child: write `async fn {name}({order})`",
                name = node.name,
                order = order.join(", "),
            ),
        );
    }
}

/// A subgraph node runs one child per run: an ordinary node, or a map node (one child per
/// item). A branch of a fan-out or a join would need a child per branch of one step, which
/// no id or `Input` variant names yet.
fn check_subgraph_not_in_region(r: &Report, graph: &Graph) {
    for (i, node) in graph.nodes().iter().enumerate() {
        let Some((_, key)) = &node.args.subgraph else {
            continue;
        };
        let message = if is_map_node(graph, i) {
            continue;
        } else if graph.is_branch(i) {
            format!(
                "subgraph node `{name}` is a branch of a fan-out, which cannot run a child: run the child from a node before the fan-out or after the join, or make `{name}` a map node (`edge!(… -> each {name})`), which runs one child per item",
                name = node.name
            )
        } else if graph.is_join(i) {
            format!(
                "subgraph node `{name}` is the join of a parallel region, which cannot run a child: run the child from a node after `{name}`",
                name = node.name
            )
        } else {
            continue;
        };
        r.error(node.position, key, message);
    }
}
