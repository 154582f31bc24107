//! SVG drawings for the HTML report: the process tree, the address space
//! of a process and horizontal bar charts. Every string from the image is
//! escaped with [`escape`] before it goes into the markup.

use std::fmt::Write;

use stasis_image::{MemoryMap, PageRun, Vma, VmaKind, PAGE_SIZE};

use crate::memory::{stored_pages_per_vma, vma_size};
use crate::names::{perms, saves_pages, vma_label};
use crate::pages::run_end;
use crate::text::{human_bytes, shorten};
use crate::view::tree::{short_command, Tree, TreeNode};

/// Escapes text for HTML and SVG element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Returns at most `max` characters of a path, cutting from the left so
/// that the file name stays visible.
pub fn shorten_path(path: &str, max: usize) -> String {
    let count = path.chars().count();
    if count <= max {
        return path.to_string();
    }
    let tail: String = path.chars().skip(count - max.saturating_sub(1)).collect();
    format!("…{tail}")
}

const NODE_WIDTH: f64 = 230.0;
const NODE_HEIGHT: f64 = 52.0;
const NODE_GAP_X: f64 = 24.0;
const LEVEL_HEIGHT: f64 = 96.0;
const MARGIN: f64 = 16.0;

/// Draws the process tree: one box per process, children below their
/// parent, leaves side by side and each parent centred over its children.
pub fn process_tree(tree: &Tree) -> String {
    let nodes = &tree.processes;
    let slots = tree_slots(tree);
    let columns = slots.iter().copied().fold(0.0f64, f64::max) + 1.0;
    let levels = nodes.iter().map(|node| node.depth).max().unwrap_or(0) as f64 + 1.0;
    let width = MARGIN * 2.0 + columns * (NODE_WIDTH + NODE_GAP_X) - NODE_GAP_X;
    let height = MARGIN * 2.0 + levels * LEVEL_HEIGHT - (LEVEL_HEIGHT - NODE_HEIGHT);

    let mut out = format!(
        "<svg id=\"process-tree\" class=\"tree\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" role=\"img\" aria-label=\"process tree\">\n"
    );
    let centre = |slot: f64| MARGIN + slot * (NODE_WIDTH + NODE_GAP_X) + NODE_WIDTH / 2.0;
    let top = |depth: usize| MARGIN + depth as f64 * LEVEL_HEIGHT;

    for (index, node) in nodes.iter().enumerate() {
        for child in direct_children(tree, index) {
            let (x1, y1) = (centre(slots[index]), top(node.depth) + NODE_HEIGHT);
            let (x2, y2) = (centre(slots[child]), top(node.depth + 1));
            let middle = (y1 + y2) / 2.0;
            let _ = writeln!(
                out,
                "  <path class=\"tree-edge\" d=\"M{x1:.1},{y1:.1} C{x1:.1},{middle:.1} \
                 {x2:.1},{middle:.1} {x2:.1},{y2:.1}\"/>"
            );
        }
    }
    for (node, slot) in nodes.iter().zip(&slots) {
        let x = centre(*slot) - NODE_WIDTH / 2.0;
        out.push_str(&tree_node(
            node,
            x,
            top(node.depth),
            node.pid == tree.root_pid,
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// Returns the horizontal slot of each node of `tree.processes`: leaves
/// take consecutive slots from the left, and a parent sits at the mean
/// of its children's slots.
fn tree_slots(tree: &Tree) -> Vec<f64> {
    let count = tree.processes.len();
    let mut slots = vec![0.0; count];
    let mut next_leaf = 0.0;
    for (index, slot) in slots.iter_mut().enumerate() {
        if direct_children(tree, index).is_empty() {
            *slot = next_leaf;
            next_leaf += 1.0;
        }
    }
    for index in (0..count).rev() {
        let children = direct_children(tree, index);
        if !children.is_empty() {
            let sum: f64 = children.iter().map(|&child| slots[child]).sum();
            slots[index] = sum / children.len() as f64;
        }
    }
    slots
}

/// Returns the indices of the children of node `index`. Nodes are in
/// depth-first order, so a subtree is the run of deeper nodes after its
/// root.
fn direct_children(tree: &Tree, index: usize) -> Vec<usize> {
    let nodes = &tree.processes;
    let depth = nodes[index].depth;
    (index + 1..nodes.len())
        .take_while(|&other| nodes[other].depth > depth)
        .filter(|&other| nodes[other].depth == depth + 1)
        .collect()
}

fn tree_node(node: &TreeNode, x: f64, y: f64, is_root: bool) -> String {
    let mut class = String::from("process-node");
    if is_root {
        class.push_str(" root");
    }
    if !node.verified {
        class.push_str(" unverified");
    }
    if node.zombie_exit_status.is_some() {
        class.push_str(" zombie");
    }

    let title = format!(
        "PID {} PPID {} SID {} PGID {}",
        node.pid,
        node.ppid.map_or("?".to_string(), |v| v.to_string()),
        node.sid.map_or("?".to_string(), |v| v.to_string()),
        node.pgid.map_or("?".to_string(), |v| v.to_string()),
    );
    let heading = format!("{}  {}", node.pid, node.comm.as_deref().unwrap_or("?"));
    let command = short_command(node);

    let mut out = format!(
        "  <g class=\"{class}\" data-pid=\"{}\"><title>{}</title>\n",
        node.pid,
        escape(&title)
    );
    let _ = writeln!(
        out,
        "    <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_WIDTH}\" height=\"{NODE_HEIGHT}\" rx=\"8\"/>"
    );
    let _ = writeln!(
        out,
        "    <text class=\"node-title\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        x + 10.0,
        y + 21.0,
        escape(&shorten(&heading, 30))
    );
    let _ = writeln!(
        out,
        "    <text class=\"node-command\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
        x + 10.0,
        y + 40.0,
        escape(&shorten(&command, 31))
    );

    if !node.verified {
        let _ = writeln!(
            out,
            "    <text class=\"node-flag\" x=\"{:.1}\" y=\"{:.1}\">UNVERIFIED</text>",
            x + NODE_WIDTH - 10.0,
            y + 21.0
        );
    }
    out.push_str("  </g>\n");
    out
}

const MAP_WIDTH: f64 = 1180.0;
const LABEL_WIDTH: f64 = 240.0;
const BAR_WIDTH: f64 = 440.0;
const BAR_X: f64 = LABEL_WIDTH + 10.0;
const NAME_X: f64 = BAR_X + BAR_WIDTH + 12.0;
const GAP_HEIGHT: f64 = 16.0;
const OVERVIEW_HEIGHT: f64 = 26.0;

/// Returns the CSS class of a mapping, which sets its colour: `kernel`
/// for mappings a dump never saves, `from-file` for private file
/// mappings, and `untouched` for anonymous memory.
fn vma_class(vma: &Vma) -> &'static str {
    if !saves_pages(vma) {
        "kernel"
    } else if vma.kind == VmaKind::File {
        "from-file"
    } else {
        "untouched"
    }
}

/// Returns the height of a mapping's row: it grows with the logarithm of
/// the size, so a one-page mapping stays visible next to a GiB one.
fn row_height(vma: &Vma) -> f64 {
    let pages = (vma_size(vma) / PAGE_SIZE).max(1) as f64;
    (12.0 + 2.5 * pages.log2()).clamp(14.0, 44.0)
}

/// Draws the address space of one process. An overview strip comes first,
/// with every mapping in a width that grows with the logarithm of its
/// size. Then each mapping gets a row, drawn to scale inside the row, with
/// the stored pages filled in. Unmapped gaps get a fixed height and a
/// label with their size.
pub fn address_space(pid: i32, map: &MemoryMap) -> String {
    let stored = stored_pages_per_vma(map);
    let mut vmas: Vec<(&Vma, u64)> = map.vmas.iter().zip(stored).collect();
    vmas.sort_by_key(|(vma, _)| vma.start);
    let mut runs: Vec<PageRun> = map.pages.clone();
    runs.sort_by_key(|run| run.address);

    let mut body = overview(&vmas);
    let mut y = OVERVIEW_HEIGHT + 24.0;
    let mut previous_end: Option<u64> = None;
    for &(vma, pages) in &vmas {
        if let Some(end) = previous_end.filter(|end| *end < vma.start) {
            body.push_str(&gap_row(y, vma.start - end));
            y += GAP_HEIGHT;
        }
        body.push_str(&vma_row(pid, vma, &runs, pages, y));
        y += row_height(vma) + 3.0;
        previous_end = Some(vma.end);
    }

    let height = y + 8.0;
    format!(
        "<svg id=\"address-space-{pid}\" class=\"address-space\" width=\"{MAP_WIDTH}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {MAP_WIDTH} {height:.0}\" role=\"img\" \
         aria-label=\"address space of process {pid}\">\n{body}</svg>\n"
    )
}

/// Draws the overview strip: mappings left to right by address, each as
/// wide as 1 + log2 of its page count allows, with a break mark at each
/// unmapped gap and the stored share of each mapping filled in.
fn overview(vmas: &[(&Vma, u64)]) -> String {
    const GAP: f64 = 8.0;
    let weight = |vma: &Vma| 1.0 + ((vma_size(vma) / PAGE_SIZE).max(1) as f64).log2();
    let gaps = vmas
        .windows(2)
        .filter(|pair| pair[0].0.end < pair[1].0.start)
        .count() as f64;
    let total: f64 = vmas.iter().map(|(vma, _)| weight(vma)).sum();
    let available = (MAP_WIDTH - gaps * GAP).max(100.0);

    let mut out = String::from("  <g class=\"overview\">\n");
    let mut x = 0.0;
    let mut previous_end: Option<u64> = None;
    for &(vma, pages) in vmas {
        if previous_end.is_some_and(|end| end < vma.start) {
            let _ = writeln!(
                out,
                "    <path class=\"overview-gap\" d=\"M{:.1},2 l3,{:.1} l-3,{:.1}\"/>",
                x + GAP / 2.0 - 1.5,
                OVERVIEW_HEIGHT / 2.0 - 2.0,
                OVERVIEW_HEIGHT / 2.0 - 2.0
            );
            x += GAP;
        }
        let width = if total > 0.0 {
            weight(vma) / total * available
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "    <rect class=\"{}\" x=\"{x:.2}\" y=\"0\" width=\"{:.2}\" height=\"{OVERVIEW_HEIGHT}\"><title>{}</title></rect>",
            vma_class(vma),
            (width - 0.5).max(0.5),
            escape(&vma_title(vma, pages))
        );
        if pages > 0 {
            let fraction = (pages * PAGE_SIZE) as f64 / vma_size(vma).max(1) as f64;
            let _ = writeln!(
                out,
                "    <rect class=\"stored\" x=\"{x:.2}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
                OVERVIEW_HEIGHT * 0.55,
                ((width - 0.5) * fraction.min(1.0)).max(1.0),
                OVERVIEW_HEIGHT * 0.45
            );
        }
        x += width;
        previous_end = Some(vma.end);
    }
    out.push_str("  </g>\n");
    out
}

fn gap_row(y: f64, size: u64) -> String {
    format!(
        "  <g class=\"gap\"><line x1=\"{BAR_X}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{:.0}\" y=\"{:.1}\">{} unmapped</text></g>\n",
        BAR_X + BAR_WIDTH,
        y + GAP_HEIGHT / 2.0,
        y + GAP_HEIGHT / 2.0,
        NAME_X,
        y + GAP_HEIGHT / 2.0 + 4.0,
        human_bytes(size)
    )
}

fn vma_title(vma: &Vma, pages: u64) -> String {
    format!(
        "{:x}-{:x} {} {}\n{}, {} pages stored ({})",
        vma.start,
        vma.end,
        perms(vma),
        vma_label(vma),
        human_bytes(vma_size(vma)),
        pages,
        human_bytes(pages.saturating_mul(PAGE_SIZE))
    )
}

fn vma_row(pid: i32, vma: &Vma, runs: &[PageRun], pages: u64, y: f64) -> String {
    let height = row_height(vma);
    let text_y = y + height / 2.0 + 4.0;

    let mut out = format!(
        "  <g class=\"vma\" id=\"vma-{pid}-{:x}\" data-vma=\"{pid}-{:x}\"><title>{}</title>\n",
        vma.start,
        vma.start,
        escape(&vma_title(vma, pages))
    );
    let _ = writeln!(
        out,
        "    <text class=\"vma-address\" x=\"0\" y=\"{text_y:.1}\">{:012x}-{:012x} {}</text>",
        vma.start,
        vma.end,
        perms(vma)
    );

    let _ = writeln!(
        out,
        "    <rect class=\"{}\" x=\"{BAR_X}\" y=\"{y:.1}\" width=\"{BAR_WIDTH}\" height=\"{height:.1}\"/>",
        vma_class(vma)
    );
    for (x, width) in stored_spans(vma, runs) {
        let _ = writeln!(
            out,
            "    <rect class=\"stored\" x=\"{x:.2}\" y=\"{y:.1}\" width=\"{width:.2}\" height=\"{height:.1}\"/>"
        );
    }

    let mut name = shorten_path(&vma_label(vma), 42);
    if name.is_empty() {
        name = "anonymous".to_string();
    }
    let detail = if saves_pages(vma) {
        format!(
            "{} of {} stored",
            human_bytes(pages.saturating_mul(PAGE_SIZE)),
            human_bytes(vma_size(vma))
        )
    } else {
        format!("{}, not saved", human_bytes(vma_size(vma)))
    };
    let _ = writeln!(
        out,
        "    <text class=\"vma-name\" x=\"{NAME_X}\" y=\"{text_y:.1}\">{} <tspan class=\"vma-detail\">{}</tspan></text>",
        escape(&name),
        escape(&detail)
    );
    out.push_str("  </g>\n");
    out
}

/// Returns the x positions and widths of the stored runs inside `vma`'s
/// bar. Spans closer than half a pixel are merged, and each is at least
/// one pixel wide so a single page in a large mapping stays visible.
fn stored_spans(vma: &Vma, runs: &[PageRun]) -> Vec<(f64, f64)> {
    let size = vma_size(vma).max(1) as f64;
    let scale = BAR_WIDTH / size;
    let first = runs.partition_point(|run| run_end(run) <= vma.start);
    let mut spans: Vec<(f64, f64)> = Vec::new();
    for run in runs[first..].iter().take_while(|run| run.address < vma.end) {
        let from = run.address.max(vma.start);
        let to = run_end(run).min(vma.end);
        if to <= from {
            continue;
        }
        let x = BAR_X + (from - vma.start) as f64 * scale;
        let end = (BAR_X + (to - vma.start) as f64 * scale).max(x + 1.0);
        match spans.last_mut() {
            Some(last) if x <= last.1 + 0.5 => last.1 = last.1.max(end),
            _ => spans.push((x, end)),
        }
    }
    spans.into_iter().map(|(x, end)| (x, end - x)).collect()
}

/// One bar of a chart.
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// The value as shown next to the bar.
    pub text: String,
    /// CSS class of the bar, for its colour.
    pub class: &'static str,
}

/// Draws a horizontal bar chart with the id `id`. Bars are scaled to the
/// largest value.
pub fn bar_chart(id: &str, bars: &[Bar]) -> String {
    const ROW: f64 = 24.0;
    const CHART_LABEL: f64 = 280.0;
    const CHART_BAR: f64 = 520.0;
    let height = (bars.len() as f64 * ROW + 8.0).max(32.0);
    let max = bars.iter().map(|bar| bar.value).fold(0.0, f64::max);
    let mut out = format!(
        "<svg id=\"{}\" class=\"chart\" width=\"960\" height=\"{height:.0}\" \
         viewBox=\"0 0 960 {height:.0}\" role=\"img\">\n",
        escape(id)
    );
    if bars.is_empty() {
        out.push_str("  <text class=\"chart-empty\" x=\"0\" y=\"20\">nothing to show</text>\n");
    }
    for (index, bar) in bars.iter().enumerate() {
        let y = 4.0 + index as f64 * ROW;
        let width = if max > 0.0 {
            (bar.value / max * CHART_BAR).max(if bar.value > 0.0 { 1.5 } else { 0.0 })
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "  <g class=\"bar\"><title>{}: {}</title>\
             <text class=\"bar-label\" x=\"{:.0}\" y=\"{:.1}\">{}</text>\
             <rect class=\"{}\" x=\"{CHART_LABEL}\" y=\"{y:.1}\" width=\"{width:.2}\" height=\"{:.1}\" rx=\"2\"/>\
             <text class=\"bar-value\" x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            escape(&bar.label),
            escape(&bar.text),
            CHART_LABEL - 8.0,
            y + ROW / 2.0 + 2.0,
            escape(&shorten(&bar.label, 40)),
            bar.class,
            ROW - 6.0,
            CHART_LABEL + width + 6.0,
            y + ROW / 2.0 + 2.0,
            escape(&bar.text)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_markup() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>\x1b"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;\u{fffd}"
        );
    }

    #[test]
    fn shorten_adds_ellipsis() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
        assert_eq!(shorten_path("/usr/lib/libc.so.6", 10), "…libc.so.6");
    }
}
