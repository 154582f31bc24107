//! Comparing two versions of the fixed image.

mod common;

use std::path::Path;

use common::*;
use stasis_image::{PageRun, Vma, VmaKind};
use stasis_inspect::diff::{diff, render, ImageDiff};
use stasis_inspect::load;
use stasis_inspect::text::Style;

fn diff_dirs(a: &Path, b: &Path) -> ImageDiff {
    let a = load(a).expect("load A");
    let b = load(b).expect("load B");
    diff(&a, &b)
}

/// Returns the fixed image changed in every way diff reports: one heap
/// page rewritten, one anonymous page stored that A lacks, a mapping
/// added, fd 1 moved on, and rip advanced.
fn changed_parts() -> Parts {
    let mut parts = parts();

    let second_heap_page = 2 * PAGE as usize;
    parts.pages[second_heap_page..second_heap_page + PAGE as usize].fill(0x13);

    parts.memory.pages.insert(
        3,
        PageRun {
            address: ANON + 2 * PAGE,
            pages: 1,
            offset: 5 * PAGE,
        },
    );
    parts
        .pages
        .extend(std::iter::repeat(0x55).take(PAGE as usize));

    parts.memory.vmas.insert(
        4,
        Vma {
            start: 0x7f10_0000_0000,
            end: 0x7f10_0000_1000,
            prot: 3,
            shared: false,
            offset: 0,
            kind: VmaKind::Anonymous,
            file: None,
            vm_flags: Vec::new(),
        },
    );

    if let stasis_image::OpenFile::Regular { position, .. } = &mut parts.fds.fds[1].file {
        *position = 2000;
    }
    parts.process.threads[0].regs.rip += 0x10;
    parts
}

#[test]
fn same_image_is_identical() {
    let (_temp, dir) = fixed_image("diff-same");
    let result = diff_dirs(&dir, &dir);
    assert!(result.identical);
    assert_eq!(result.processes.len(), 1);
    assert_eq!(result.processes[0].pages.compared, 5);
    assert_eq!(result.processes[0].pages.same, 5);
    let text = render(&result, &Style::default());
    assert!(text.ends_with("no differences\n"), "{text}");
}

#[test]
fn changes_are_found() {
    let (temp, a) = fixed_image("diff-changes");
    let b = temp.path().join("b");
    write_image(&b, &changed_parts());

    let result = diff_dirs(&a, &b);
    assert!(!result.identical);
    let process = &result.processes[0];

    assert_eq!(process.mappings.added.len(), 1);
    assert_eq!(process.mappings.added[0].start, 0x7f10_0000_0000);
    assert!(process.mappings.removed.is_empty());

    let pages = &process.pages;
    assert_eq!(pages.compared, 6);
    assert_eq!(pages.same, 4);
    assert_eq!(pages.changed, 2);
    assert_eq!(pages.only_in_a, 0);
    assert_eq!(pages.only_in_b, 1);
    let rows: Vec<(&str, u64)> = pages
        .by_mapping
        .iter()
        .map(|row| (row.name.as_str(), row.changed))
        .collect();
    assert_eq!(rows, vec![("[heap]", 1), ("", 1)]);

    assert_eq!(process.fds.changed.len(), 1);
    assert_eq!(process.fds.changed[0].fd, 1);
    assert_eq!(process.fds.changed[0].changes[0].field, "position");

    let registers = &process.threads[0].registers;
    assert_eq!(registers.len(), 1);
    assert_eq!(registers[0].field, "rip");
    assert_eq!(registers[0].b, "0x0000000000401244");
}

#[test]
fn diff_text_matches_golden() {
    let (temp, a) = fixed_image("diff-golden");
    let b = temp.path().join("b");
    write_image(&b, &changed_parts());

    let result = diff_dirs(&a, &b);
    let text = render(&result, &Style::default())
        .replace(&b.display().to_string(), "<B>")
        .replace(&a.display().to_string(), "<A>");
    check_golden("diff.txt", &text);
}

#[test]
fn processes_with_different_pids_are_paired() {
    let (temp, a) = fixed_image("diff-pids");
    let b = temp.path().join("b");
    let mut parts = parts();
    let other = 5000;
    parts.process.pid = other;
    parts.process.threads[0].tid = other;
    parts.memory.pid = other;
    parts.fds.pid = other;
    parts.manifest.root_pid = other;
    parts.manifest.processes = vec![other];
    write_image(&b, &parts);

    let result = diff_dirs(&a, &b);
    assert_eq!(result.processes.len(), 1);
    assert_eq!(result.processes[0].pid_a, PID);
    assert_eq!(result.processes[0].pid_b, other);
    assert!(result.only_in_a.is_empty());
    assert!(result.only_in_b.is_empty());
    // The PID is not compared; the thread ID pairing falls back to the
    // single thread on each side.
    assert!(result.processes[0].threads[0].registers.is_empty());
}

#[test]
fn diff_json_has_schema_fields() {
    let (_temp, dir) = fixed_image("diff-json");
    let result = diff_dirs(&dir, &dir);
    let text = serde_json::to_string(&result).expect("serialize");
    assert!(
        text.starts_with("{\"schema_version\":1,\"view\":\"diff\","),
        "{text}"
    );
}
