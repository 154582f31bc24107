//! The process tree view: every process of the image under its parent.
//! Images hold one process today; the tree is built from the parent PIDs,
//! so images of process trees show as trees.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use super::{selected, trust_label};
use crate::load::{LoadedImage, ProcessRecords};
use crate::names::{wait_status, WaitStatus};
use crate::pages::PageReader;
use crate::strings::read_area;
use crate::text::{clean, command_line, Align, Cell, Style, Table};

#[derive(Debug, Serialize)]
pub struct Tree {
    pub root_pid: i32,
    /// Processes in depth-first order, parents before children.
    pub processes: Vec<TreeNode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TreeNode {
    pub pid: i32,
    /// Identity fields are null when the process record is unreadable.
    pub ppid: Option<i32>,
    pub sid: Option<i32>,
    pub pgid: Option<i32>,
    pub comm: Option<String>,
    pub cmdline: Option<Vec<String>>,
    pub verified: bool,
    /// Wait status of a zombie, as waitpid(2) returns it; null for a live
    /// process.
    pub zombie_exit_status: Option<i32>,
    /// The same status decoded; null for a live process.
    pub zombie_exit: Option<WaitStatus>,
    /// 0 for a process whose parent is not in the image.
    pub depth: usize,
    /// PIDs of the children in the image, ascending.
    pub children: Vec<i32>,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Tree {
    let nodes: Vec<TreeNode> = selected(image, pid)
        .into_iter()
        .map(|records| node(image, records))
        .collect();
    Tree {
        root_pid: image.manifest.root_pid,
        processes: order(nodes),
    }
}

fn node(image: &LoadedImage, records: &ProcessRecords) -> TreeNode {
    let process = records.process.as_ref();
    let cmdline = process.and_then(|checked| {
        let reader = PageReader::open(image, records.pid)?;
        let mm = &checked.record.mm;
        Some(read_area(&reader, mm.arg_start, mm.arg_end).plain())
    });
    TreeNode {
        pid: records.pid,
        ppid: process.map(|checked| checked.record.ppid),
        sid: process.map(|checked| checked.record.sid),
        pgid: process.map(|checked| checked.record.pgid),
        comm: process.map(|checked| checked.record.comm.clone()),
        cmdline,
        verified: process.is_some_and(|checked| checked.verified),
        zombie_exit_status: process.and_then(|checked| checked.record.zombie_exit_status),
        zombie_exit: process
            .and_then(|checked| checked.record.zombie_exit_status)
            .map(WaitStatus::decode),
        depth: 0,
        children: Vec::new(),
    }
}

/// Links children to parents and returns the nodes in depth-first order.
/// A process whose parent is not in the image is a root. Nodes left over
/// because damaged records form a cycle become roots too.
fn order(mut nodes: Vec<TreeNode>) -> Vec<TreeNode> {
    let pids: HashSet<i32> = nodes.iter().map(|node| node.pid).collect();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for node in &nodes {
        if let Some(ppid) = node
            .ppid
            .filter(|ppid| pids.contains(ppid) && *ppid != node.pid)
        {
            children.entry(ppid).or_default().push(node.pid);
        }
    }
    for node in &mut nodes {
        let mut kids = children.remove(&node.pid).unwrap_or_default();
        kids.sort_unstable();
        node.children = kids;
    }

    let by_pid: BTreeMap<i32, TreeNode> = nodes.into_iter().map(|node| (node.pid, node)).collect();
    let mut roots: Vec<i32> = by_pid
        .values()
        .filter(|node| {
            node.ppid
                .map_or(true, |ppid| !pids.contains(&ppid) || ppid == node.pid)
        })
        .map(|node| node.pid)
        .collect();
    let mut ordered = Vec::with_capacity(by_pid.len());
    let mut visited = HashSet::new();
    let mut extra = by_pid.keys().copied();
    loop {
        for root in std::mem::take(&mut roots) {
            visit(root, 0, &by_pid, &mut visited, &mut ordered);
        }
        match extra.find(|pid| !visited.contains(pid)) {
            Some(pid) => roots.push(pid),
            None => break,
        }
    }
    ordered
}

fn visit(
    pid: i32,
    depth: usize,
    by_pid: &BTreeMap<i32, TreeNode>,
    visited: &mut HashSet<i32>,
    ordered: &mut Vec<TreeNode>,
) {
    if !visited.insert(pid) {
        return;
    }
    let Some(node) = by_pid.get(&pid) else {
        return;
    };
    ordered.push(TreeNode {
        depth,
        ..node.clone()
    });
    for &child in &node.children {
        visit(child, depth + 1, by_pid, visited, ordered);
    }
}

/// Returns what a node's command column shows: the command line, the
/// zombie state, or `None` when the arguments are not readable.
pub fn node_command(node: &TreeNode) -> Option<String> {
    match (node.zombie_exit_status, &node.cmdline) {
        (Some(status), _) => Some(format!("<zombie, {}>", wait_status(status))),
        (None, Some(arguments)) => Some(command_line(arguments)),
        (None, None) => None,
    }
}

/// Returns the command line of a tree node with only the file name of
/// `argv[0]`, which fits a node box better than a full path.
pub fn short_command(node: &TreeNode) -> String {
    match (&node.cmdline, node.zombie_exit_status) {
        (Some(arguments), None) if !arguments.is_empty() => {
            let mut short = arguments.clone();
            if let Some(name) = short[0].rsplit('/').next() {
                short[0] = name.to_string();
            }
            command_line(&short)
        }
        _ => node_command(node).unwrap_or_else(|| "(command line not readable)".to_string()),
    }
}

pub fn render(tree: &Tree, style: &Style) -> String {
    let mut table = Table::new(&[
        ("PID", Align::Left),
        ("PPID", Align::Right),
        ("SID", Align::Right),
        ("PGID", Align::Right),
        ("COMM", Align::Left),
        ("COMMAND", Align::Left),
    ]);
    let prefixes = tree_prefixes(&tree.processes);
    for (node, prefix) in tree.processes.iter().zip(prefixes) {
        let optional = |value: Option<i32>| value.map_or("?".to_string(), |v| v.to_string());
        let command = node_command(node).unwrap_or_else(|| "?".to_string());
        table.row(vec![
            Cell::new(format!("{prefix}{}", node.pid)),
            Cell::new(optional(node.ppid)),
            Cell::new(optional(node.sid)),
            Cell::new(optional(node.pgid)),
            Cell::new(node.comm.as_deref().map_or("?".to_string(), clean)),
            Cell::new(format!("{command}{}", trust_label(node.verified, style))),
        ]);
    }
    table.render(style)
}

/// Returns the drawing before each PID: `├─ ` and `└─ ` for children,
/// with `│  ` for each open ancestor.
fn tree_prefixes(nodes: &[TreeNode]) -> Vec<String> {
    let mut prefixes = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        if node.depth == 0 {
            prefixes.push(String::new());
            continue;
        }
        let mut prefix = String::new();
        for level in 1..node.depth {
            prefix.push_str(if has_later_sibling(nodes, index, level) {
                "│  "
            } else {
                "   "
            });
        }
        prefix.push_str(if has_later_sibling(nodes, index, node.depth) {
            "├─ "
        } else {
            "└─ "
        });
        prefixes.push(prefix);
    }
    prefixes
}

/// Returns true when a node at `depth` follows `index` before the tree
/// returns to a shallower depth.
fn has_later_sibling(nodes: &[TreeNode], index: usize, depth: usize) -> bool {
    nodes[index + 1..]
        .iter()
        .take_while(|node| node.depth >= depth)
        .any(|node| node.depth == depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pid: i32, ppid: i32) -> TreeNode {
        TreeNode {
            pid,
            ppid: Some(ppid),
            sid: Some(1),
            pgid: Some(1),
            comm: Some(format!("p{pid}")),
            cmdline: None,
            verified: true,
            zombie_exit_status: None,
            zombie_exit: None,
            depth: 0,
            children: Vec::new(),
        }
    }

    #[test]
    fn tree_orders_children_under_parents() {
        let nodes = vec![node(12, 10), node(10, 1), node(11, 10), node(13, 11)];
        let ordered = order(nodes);
        let pids: Vec<(i32, usize)> = ordered.iter().map(|n| (n.pid, n.depth)).collect();
        assert_eq!(pids, vec![(10, 0), (11, 1), (13, 2), (12, 1)]);
        assert_eq!(tree_prefixes(&ordered), vec!["", "├─ ", "│  └─ ", "└─ "]);
    }

    #[test]
    fn tree_with_cycle_keeps_every_node() {
        let ordered = order(vec![node(2, 3), node(3, 2)]);
        assert_eq!(ordered.len(), 2);
    }
}
