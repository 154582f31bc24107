//! The process tree as a Graphviz digraph (`dot -Tsvg tree.dot`).

use std::collections::BTreeSet;

use crate::load::LoadedImage;
use crate::text::shorten;
use crate::view::tree::{self, short_command, TreeNode};

/// Maximum characters of a command line in a node label.
const MAX_LABEL_COMMAND: usize = 60;

/// Returns the process tree of `image` in the DOT language. A parent that
/// is not in the image is drawn as a dashed node, and a process whose
/// record failed a check is drawn in orange and labelled UNVERIFIED.
pub fn process_tree(image: &LoadedImage) -> String {
    let tree = tree::build(image, None);
    let mut out = String::from("digraph stasis_process_tree {\n");
    out.push_str(&format!(
        "  graph [rankdir=TB, labelloc=t, fontname=\"Helvetica\", label=\"{}\"];\n",
        escape(&format!("stasis image {}", image.dir.display()))
    ));
    out.push_str(
        "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#dbeafe\", \
         fontname=\"Helvetica\"];\n",
    );

    let pids: BTreeSet<i32> = tree.processes.iter().map(|node| node.pid).collect();
    let mut outside = BTreeSet::new();
    for node in &tree.processes {
        out.push_str(&node_line(node, node.pid == tree.root_pid));
        match node.ppid {
            Some(ppid) if pids.contains(&ppid) && ppid != node.pid => {
                out.push_str(&format!("  p{ppid} -> p{};\n", node.pid));
            }
            Some(ppid) if ppid > 0 => {
                outside.insert(ppid);
                out.push_str(&format!("  p{ppid} -> p{} [style=dashed];\n", node.pid));
            }
            _ => {}
        }
    }
    for ppid in outside {
        out.push_str(&format!(
            "  p{ppid} [label=\"{ppid}\\n(parent, not in the image)\", style=\"rounded,dashed\", \
             fillcolor=white];\n"
        ));
    }
    out.push_str("}\n");
    out
}

fn node_line(node: &TreeNode, is_root: bool) -> String {
    let mut label = format!("{} {}", node.pid, node.comm.as_deref().unwrap_or("?"));
    label.push('\n');
    label.push_str(&shorten(&short_command(node), MAX_LABEL_COMMAND));
    let mut attributes = format!("label=\"{}\"", escape(&label));
    if !node.verified {
        attributes.push_str(", fillcolor=\"#fed7aa\", xlabel=\"UNVERIFIED\"");
    }
    if node.zombie_exit_status.is_some() {
        attributes.push_str(", style=\"rounded,dashed\", fillcolor=\"#f3f4f6\"");
    }
    if is_root {
        attributes.push_str(", penwidth=2");
    }
    format!("  p{} [{attributes}];\n", node.pid)
}

/// Escapes text for a DOT double-quoted string: quotes and backslashes
/// are escaped, newlines become `\n`, other control characters are
/// dropped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_quotes_and_newlines() {
        assert_eq!(escape("a\"b\\c\nd\x1b"), "a\\\"b\\\\c\\nd");
    }
}
