//! Graph versions: what a runner tells its store about the graph it writes under, and how a
//! graph mismatch says what changed since the stored graph.
//!
//! A graph's description is the versioned canonical text its `GRAPH_HASH` is computed from
//! (one fact a line: `node review interrupt`, `edge validate->review`, …), then one line per
//! fingerprint that enters the hash (`schema output check 0x…`). Two descriptions differ by
//! lines, and each differing line is one change a person can read.

use std::collections::BTreeMap;

use crate::Workflow;
use crate::execute::Execute;
use crate::store::{GraphVersion, Store};

/// The description of `W`'s graph that a store keeps (see the module docs).
pub(crate) fn describe<W: Workflow>() -> String {
    let mut text = W::Exec::CANONICAL.to_owned();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for (kind, node, fingerprint) in W::Exec::FINGERPRINTS {
        text.push_str(&format!("schema {kind} {node} {fingerprint:#018x}\n"));
    }
    text
}

/// The version of `W`'s graph a runner records before its first write.
pub(crate) fn version_of<W: Workflow>() -> GraphVersion {
    GraphVersion::new(W::NAME, W::GRAPH_HASH, describe::<W>())
}

/// What changed from the graph `stored` (as the store describes it) to `W`'s: empty when the
/// store kept no description of it, or cannot be read now (the mismatch is reported either
/// way; the description only explains it).
pub(crate) async fn changes_since<W: Workflow, S: Store>(store: &S, stored: u64) -> Vec<String> {
    match store.graph_version(W::NAME, stored).await {
        Ok(Some(version)) => changes(&version.description, &describe::<W>()),
        Ok(None) => Vec::new(),
        Err(error) => {
            tracing::debug!(%error, "the stored graph's description cannot be read");
            Vec::new()
        }
    }
}

/// The changes from description `old` to description `new`, one per differing fact, in the
/// order of the text: nodes, then edges and regions, then types.
pub(crate) fn changes(old: &str, new: &str) -> Vec<String> {
    let old = facts(old);
    let new = facts(new);
    let mut out = Vec::new();
    let mut removed_nodes = Vec::new();
    let mut added_nodes = Vec::new();
    for (key, before) in &old {
        match new.get(key) {
            Some(after) if after == before => {}
            Some(after) => out.push(changed(key, before, after)),
            None if key.0 == "node" => removed_nodes.push(key.1.clone()),
            None => out.push(format!("{} removed", name(key))),
        }
    }
    for key in new.keys() {
        if !old.contains_key(key) {
            if key.0 == "node" {
                added_nodes.push(key.1.clone());
            } else {
                out.push(format!("{} added", name(key)));
            }
        }
    }
    let mut nodes = Vec::new();
    if let ([old_name], [new_name]) = (&removed_nodes[..], &added_nodes[..]) {
        nodes.push(format!(
            "node `{old_name}` removed and `{new_name}` added (if it was renamed, mark it \
             `#[node(renamed_from = \"{old_name}\")]`)"
        ));
    } else {
        nodes.extend(removed_nodes.iter().map(|n| format!("node `{n}` removed")));
        nodes.extend(added_nodes.iter().map(|n| format!("node `{n}` added")));
    }
    // Structure first, then the types of inputs, outputs and items.
    let (types, structure): (Vec<String>, Vec<String>) = out
        .into_iter()
        .partition(|change| change.contains(" type of `"));
    nodes.extend(structure);
    nodes.extend(types);
    nodes
}

/// A fact of a description: its kind (the line's first word; for a fingerprint, `schema`
/// and its kind) and what it is about, mapped to the rest of its line.
type Key = (String, String);

fn facts(description: &str) -> BTreeMap<Key, String> {
    let mut out = BTreeMap::new();
    for line in description.lines().skip(1) {
        let mut words = line.split_whitespace();
        let Some(kind) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        let key = match (kind, &rest[..]) {
            // `node review interrupt`: the node, with what it is.
            ("node", [node, ..]) => ("node".to_owned(), (*node).to_owned()),
            // `schema output check 0x…`: the type of a node's output, item or input.
            ("schema", [what, node, ..]) => (format!("schema {what}"), (*node).to_owned()),
            // Edges, regions and anything a later text version adds: the whole line.
            _ => (kind.to_owned(), rest.join(" ")),
        };
        out.insert(key, line.to_owned());
    }
    out
}

fn name(key: &Key) -> String {
    match key.0.strip_prefix("schema ") {
        Some(what) => format!("{what} type of `{}`", key.1),
        None => format!("{} `{}`", key.0, key.1),
    }
}

fn changed(key: &Key, before: &str, after: &str) -> String {
    match key.0.as_str() {
        "node" => format!("node `{}` changed (`{before}` -> `{after}`)", key.1),
        _ if key.0.starts_with("schema ") => format!("{} changed", name(key)),
        _ => format!("`{before}` -> `{after}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "graph-runtime/v2\nworkflow claims\nnode check\nnode decide\nnode intake\n\
                       node review interrupt\nedge START->intake\nfan-out intake->check&review\n\
                       join check&review->decide\nedge decide->END\n\
                       schema input review 0x0000000000000001\n\
                       schema output check 0x0000000000000002\n";

    #[test]
    fn the_same_description_has_no_changes() {
        assert!(changes(OLD, OLD).is_empty());
    }

    #[test]
    fn each_change_is_named() {
        let new = OLD
            .replace(
                "schema output check 0x0000000000000002",
                "schema output check 0x0000000000000003",
            )
            .replace(
                "edge decide->END\n",
                "edge decide->END\nedge decide->audit\n",
            )
            .replace("node intake\n", "node intake\nnode audit\n");
        assert_eq!(
            changes(OLD, &new),
            [
                "node `audit` added",
                "edge `decide->audit` added",
                "output type of `check` changed",
            ]
        );
    }

    #[test]
    fn one_node_out_and_one_in_suggests_a_rename() {
        let new = OLD.replace("node review interrupt", "node approve interrupt");
        let changed = changes(OLD, &new);
        assert!(
            changed[0].contains("`review` removed and `approve` added")
                && changed[0].contains("renamed_from = \"review\""),
            "{changed:?}"
        );
    }

    #[test]
    fn a_node_that_stops_waiting_is_a_changed_node() {
        let new = OLD.replace("node review interrupt", "node review");
        assert_eq!(
            changes(OLD, &new),
            ["node `review` changed (`node review interrupt` -> `node review`)"]
        );
    }
}
