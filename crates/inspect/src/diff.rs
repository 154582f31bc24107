//! Comparing two images of the same program: process fields, mappings,
//! stored page contents, fds and registers.
//!
//! Processes are paired by PID. When that leaves exactly one process
//! unpaired on each side, the two are paired too, so two dumps of the same
//! program under different PIDs can be compared. Pages are compared by
//! the BLAKE3 hash of their contents; a page stored in one image and not
//! the other counts as changed. Pages that cannot be read count as not
//! stored.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use stasis_image::{MemoryMap, Process, Thread, Vma, PAGE_SIZE};

use crate::load::{LoadedImage, ProcessRecords};
use crate::names::{perms, registers, vma_label};
use crate::pages::{run_end, PageReader, Segment};
use crate::strings::read_area;
use crate::text::{clean, command_line, Align, Cell, Paint, Style, Table};
use crate::view::fds::{entry as fd_entry, FdEntry};
use crate::view::{address, describe_problem, hex64, ProblemJson, SCHEMA_VERSION};

/// Maximum bytes read from a pages file at once while hashing.
const HASH_CHUNK: u64 = 1 << 20;

#[derive(Debug, Serialize)]
pub struct ImageDiff {
    pub schema_version: u32,
    pub view: &'static str,
    pub a: String,
    pub b: String,
    pub problems_a: Vec<ProblemJson>,
    pub problems_b: Vec<ProblemJson>,
    /// True when nothing that diff compares differs.
    pub identical: bool,
    pub processes: Vec<ProcessDiff>,
    /// PIDs of processes only in A, and only in B.
    pub only_in_a: Vec<i32>,
    pub only_in_b: Vec<i32>,
}

/// A difference in one field, with both values as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    pub a: String,
    pub b: String,
}

#[derive(Debug, Serialize)]
pub struct ProcessDiff {
    pub pid_a: i32,
    pub pid_b: i32,
    /// Differences in the process record (identity, credentials, command
    /// line …).
    pub fields: Vec<Change>,
    pub mappings: MappingChanges,
    pub pages: PageChanges,
    pub fds: FdChanges,
    pub threads: Vec<ThreadDiff>,
    pub threads_only_in_a: Vec<i32>,
    pub threads_only_in_b: Vec<i32>,
}

#[derive(Debug, Default, Serialize)]
pub struct MappingChanges {
    /// Mappings only in B.
    pub added: Vec<MappingRef>,
    /// Mappings only in A.
    pub removed: Vec<MappingRef>,
    /// Mappings that start at the same address in both but differ.
    pub changed: Vec<MappingChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MappingRef {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct MappingChange {
    pub start: u64,
    pub name: String,
    pub changes: Vec<Change>,
}

#[derive(Debug, Default, Serialize)]
pub struct PageChanges {
    /// Pages stored in A, in B, or in both.
    pub compared: u64,
    pub same: u64,
    /// Pages whose contents differ or that only one image stores.
    pub changed: u64,
    pub only_in_a: u64,
    pub only_in_b: u64,
    /// Per mapping (from B, or A when B has none there), the mappings with
    /// changed pages only, by address.
    pub by_mapping: Vec<PageRow>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PageRow {
    pub start: u64,
    pub end: u64,
    pub name: String,
    pub stored_a: u64,
    pub stored_b: u64,
    pub changed: u64,
    pub only_in_a: u64,
    pub only_in_b: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct FdChanges {
    pub added: Vec<FdEntry>,
    pub removed: Vec<FdEntry>,
    pub changed: Vec<FdChange>,
}

#[derive(Debug, Serialize)]
pub struct FdChange {
    pub fd: i32,
    pub changes: Vec<Change>,
}

#[derive(Debug, Serialize)]
pub struct ThreadDiff {
    pub tid_a: i32,
    pub tid_b: i32,
    /// Registers that differ, values as 0x and 16 hex digits, plus the
    /// signal mask.
    pub registers: Vec<Change>,
}

/// Compares image `a` with image `b`.
pub fn diff(a: &LoadedImage, b: &LoadedImage) -> ImageDiff {
    let (pairs, only_in_a, only_in_b) = pair_processes(a, b);
    let processes: Vec<ProcessDiff> = pairs
        .into_iter()
        .filter_map(|(pid_a, pid_b)| Some(diff_process(a, a.process(pid_a)?, b, b.process(pid_b)?)))
        .collect();
    let identical =
        only_in_a.is_empty() && only_in_b.is_empty() && processes.iter().all(ProcessDiff::is_empty);
    ImageDiff {
        schema_version: SCHEMA_VERSION,
        view: "diff",
        a: a.dir.display().to_string(),
        b: b.dir.display().to_string(),
        problems_a: a.all_problems().into_iter().map(Into::into).collect(),
        problems_b: b.all_problems().into_iter().map(Into::into).collect(),
        identical,
        processes,
        only_in_a,
        only_in_b,
    }
}

impl ProcessDiff {
    fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.mappings.added.is_empty()
            && self.mappings.removed.is_empty()
            && self.mappings.changed.is_empty()
            && self.pages.changed == 0
            && self.fds.added.is_empty()
            && self.fds.removed.is_empty()
            && self.fds.changed.is_empty()
            && self
                .threads
                .iter()
                .all(|thread| thread.registers.is_empty())
            && self.threads_only_in_a.is_empty()
            && self.threads_only_in_b.is_empty()
    }
}

type Pairing = (Vec<(i32, i32)>, Vec<i32>, Vec<i32>);

/// Pairs the processes of `a` and `b` by PID, then pairs a single
/// leftover on each side.
fn pair_processes(a: &LoadedImage, b: &LoadedImage) -> Pairing {
    let pids_a: BTreeSet<i32> = a.processes.iter().map(|records| records.pid).collect();
    let pids_b: BTreeSet<i32> = b.processes.iter().map(|records| records.pid).collect();
    let mut pairs: Vec<(i32, i32)> = pids_a
        .intersection(&pids_b)
        .map(|&pid| (pid, pid))
        .collect();
    let mut only_a: Vec<i32> = pids_a.difference(&pids_b).copied().collect();
    let mut only_b: Vec<i32> = pids_b.difference(&pids_a).copied().collect();
    if only_a.len() == 1 && only_b.len() == 1 {
        pairs.push((only_a[0], only_b[0]));
        only_a.clear();
        only_b.clear();
    }
    (pairs, only_a, only_b)
}

fn diff_process(
    a: &LoadedImage,
    records_a: &ProcessRecords,
    b: &LoadedImage,
    records_b: &ProcessRecords,
) -> ProcessDiff {
    let process_a = records_a.process.as_ref().map(|checked| &checked.record);
    let process_b = records_b.process.as_ref().map(|checked| &checked.record);
    let map_a = records_a.memory.as_ref().map(|checked| &checked.record);
    let map_b = records_b.memory.as_ref().map(|checked| &checked.record);

    let mut fields = match (process_a, process_b) {
        (Some(pa), Some(pb)) => process_fields(pa, pb),
        _ => Vec::new(),
    };
    if let (Some(pa), Some(pb)) = (process_a, process_b) {
        let cmdline_a = cmdline(a, records_a.pid, pa);
        let cmdline_b = cmdline(b, records_b.pid, pb);
        push_change(&mut fields, "cmdline", cmdline_a, cmdline_b);
    }

    let (threads, threads_only_in_a, threads_only_in_b) = match (process_a, process_b) {
        (Some(pa), Some(pb)) => diff_threads(&pa.threads, &pb.threads),
        _ => (Vec::new(), Vec::new(), Vec::new()),
    };

    ProcessDiff {
        pid_a: records_a.pid,
        pid_b: records_b.pid,
        fields,
        mappings: diff_mappings(map_a, map_b),
        pages: diff_pages(
            PageReader::open(a, records_a.pid).as_ref(),
            map_a,
            PageReader::open(b, records_b.pid).as_ref(),
            map_b,
        ),
        fds: diff_fds(
            records_a
                .fds
                .as_ref()
                .map(|checked| checked.record.fds.as_slice()),
            records_b
                .fds
                .as_ref()
                .map(|checked| checked.record.fds.as_slice()),
        ),
        threads,
        threads_only_in_a,
        threads_only_in_b,
    }
}

fn push_change(changes: &mut Vec<Change>, field: &str, a: String, b: String) {
    if a != b {
        changes.push(Change {
            field: field.to_string(),
            a,
            b,
        });
    }
}

fn cmdline(image: &LoadedImage, pid: i32, process: &Process) -> String {
    match PageReader::open(image, pid) {
        Some(reader) => {
            command_line(&read_area(&reader, process.mm.arg_start, process.mm.arg_end).plain())
        }
        None => "?".to_string(),
    }
}

fn process_fields(a: &Process, b: &Process) -> Vec<Change> {
    let text = |process: &Process| -> Vec<(&'static str, String)> {
        let credentials = &process.credentials;
        vec![
            ("comm", process.comm.clone()),
            ("ppid", process.ppid.to_string()),
            ("pgid", process.pgid.to_string()),
            ("sid", process.sid.to_string()),
            ("exe", process.exe.path.clone()),
            ("cwd", process.cwd.clone()),
            ("root", process.root.clone()),
            ("uids", format!("{:?}", credentials.uids)),
            ("gids", format!("{:?}", credentials.gids)),
            ("groups", format!("{:?}", credentials.groups)),
            ("umask", format!("{:04o}", process.umask)),
            ("personality", format!("{:#x}", process.personality)),
            ("brk", format!("{:#x}", process.mm.brk)),
            ("rlimits", format!("{:?}", process.rlimits)),
            ("signal handlers", format!("{:?}", process.sigactions)),
            (
                "shared pending signals",
                process.shared_pending.len().to_string(),
            ),
            ("threads", process.threads.len().to_string()),
        ]
    };
    let mut changes = Vec::new();
    for ((field, value_a), (_, value_b)) in text(a).into_iter().zip(text(b)) {
        push_change(&mut changes, field, value_a, value_b);
    }
    changes
}

/// Pairs threads by TID, or a single thread on each side, and compares
/// their registers and signal masks.
fn diff_threads(a: &[Thread], b: &[Thread]) -> (Vec<ThreadDiff>, Vec<i32>, Vec<i32>) {
    let by_tid_b: BTreeMap<i32, &Thread> = b.iter().map(|thread| (thread.tid, thread)).collect();
    let mut pairs: Vec<(&Thread, &Thread)> = a
        .iter()
        .filter_map(|thread| by_tid_b.get(&thread.tid).map(|other| (thread, *other)))
        .collect();
    let mut only_a: Vec<i32> = a
        .iter()
        .map(|thread| thread.tid)
        .filter(|tid| !by_tid_b.contains_key(tid))
        .collect();
    let tids_a: BTreeSet<i32> = a.iter().map(|thread| thread.tid).collect();
    let mut only_b: Vec<i32> = b
        .iter()
        .map(|thread| thread.tid)
        .filter(|tid| !tids_a.contains(tid))
        .collect();
    if let ([thread_a], [thread_b]) = (a, b) {
        if pairs.is_empty() {
            pairs.push((thread_a, thread_b));
            only_a.clear();
            only_b.clear();
        }
    }
    let diffs = pairs
        .into_iter()
        .map(|(thread_a, thread_b)| ThreadDiff {
            tid_a: thread_a.tid,
            tid_b: thread_b.tid,
            registers: register_changes(thread_a, thread_b),
        })
        .collect();
    (diffs, only_a, only_b)
}

fn register_changes(a: &Thread, b: &Thread) -> Vec<Change> {
    let mut changes = Vec::new();
    for ((name, value_a), (_, value_b)) in registers(&a.regs).into_iter().zip(registers(&b.regs)) {
        push_change(&mut changes, name, hex64(value_a), hex64(value_b));
    }
    push_change(&mut changes, "sigmask", hex64(a.sigmask), hex64(b.sigmask));
    changes
}

fn diff_mappings(a: Option<&MemoryMap>, b: Option<&MemoryMap>) -> MappingChanges {
    let by_start = |map: Option<&MemoryMap>| -> BTreeMap<u64, Vma> {
        map.map(|map| {
            map.vmas
                .iter()
                .map(|vma| (vma.start, vma.clone()))
                .collect()
        })
        .unwrap_or_default()
    };
    let vmas_a = by_start(a);
    let vmas_b = by_start(b);
    let mut changes = MappingChanges::default();
    for (start, vma) in &vmas_a {
        match vmas_b.get(start) {
            None => changes.removed.push(mapping_ref(vma)),
            Some(other) => {
                let fields = vma_changes(vma, other);
                if !fields.is_empty() {
                    changes.changed.push(MappingChange {
                        start: *start,
                        name: vma_label(other),
                        changes: fields,
                    });
                }
            }
        }
    }
    for (start, vma) in &vmas_b {
        if !vmas_a.contains_key(start) {
            changes.added.push(mapping_ref(vma));
        }
    }
    changes
}

fn mapping_ref(vma: &Vma) -> MappingRef {
    MappingRef {
        start: vma.start,
        end: vma.end,
        perms: perms(vma),
        name: vma_label(vma),
    }
}

fn vma_changes(a: &Vma, b: &Vma) -> Vec<Change> {
    let text = |vma: &Vma| -> Vec<(&'static str, String)> {
        let file = vma.file.as_ref();
        vec![
            ("end", address(vma.end)),
            ("perms", perms(vma)),
            ("offset", format!("{:#x}", vma.offset)),
            ("name", vma_label(vma)),
            ("kind", format!("{:?}", vma.kind)),
            ("inode", file.map_or("-".to_string(), |f| f.ino.to_string())),
            (
                "file size",
                file.map_or("-".to_string(), |f| f.size.to_string()),
            ),
            (
                "file mtime",
                file.map_or("-".to_string(), |f| f.mtime_ns.to_string()),
            ),
            ("vm_flags", vma.vm_flags.join(" ")),
        ]
    };
    let mut changes = Vec::new();
    for ((field, value_a), (_, value_b)) in text(a).into_iter().zip(text(b)) {
        push_change(&mut changes, field, value_a, value_b);
    }
    changes
}

/// Returns the BLAKE3 hash of every readable stored page, by address.
fn page_hashes(reader: Option<&PageReader>) -> BTreeMap<u64, [u8; 32]> {
    let mut hashes = BTreeMap::new();
    let Some(reader) = reader else {
        return hashes;
    };
    for run in reader.readable_runs() {
        let end = run_end(&run);
        let mut at = run.address;
        while at < end {
            let len = (end - at).min(HASH_CHUNK);
            hash_segments(reader.read(at, len), at, &mut hashes);
            at += len;
        }
    }
    hashes
}

fn hash_segments(segments: Vec<Segment>, start: u64, hashes: &mut BTreeMap<u64, [u8; 32]>) {
    let mut at = start;
    for segment in segments {
        match segment {
            Segment::Stored(bytes) => {
                for page in bytes.chunks_exact(PAGE_SIZE as usize) {
                    hashes.insert(at, *blake3::hash(page).as_bytes());
                    at += PAGE_SIZE;
                }
            }
            Segment::Missing { len, .. } => at += len,
        }
    }
}

fn diff_pages(
    reader_a: Option<&PageReader>,
    map_a: Option<&MemoryMap>,
    reader_b: Option<&PageReader>,
    map_b: Option<&MemoryMap>,
) -> PageChanges {
    let hashes_a = page_hashes(reader_a);
    let hashes_b = page_hashes(reader_b);
    let locate = Locator::new(map_a, map_b);
    let mut changes = PageChanges::default();
    let mut rows: BTreeMap<(u64, u64), PageRow> = BTreeMap::new();

    let addresses: BTreeSet<u64> = hashes_a.keys().chain(hashes_b.keys()).copied().collect();
    for page in addresses {
        let (hash_a, hash_b) = (hashes_a.get(&page), hashes_b.get(&page));
        let row = rows
            .entry(locate.range(page))
            .or_insert_with(|| locate.row(page));
        changes.compared += 1;
        row.stored_a += u64::from(hash_a.is_some());
        row.stored_b += u64::from(hash_b.is_some());
        match (hash_a, hash_b) {
            (Some(x), Some(y)) if x == y => changes.same += 1,
            (Some(_), Some(_)) => row.changed += 1,
            (Some(_), None) => {
                row.changed += 1;
                row.only_in_a += 1;
            }
            (None, _) => {
                row.changed += 1;
                row.only_in_b += 1;
            }
        }
    }

    for row in rows.into_values() {
        changes.changed += row.changed;
        changes.only_in_a += row.only_in_a;
        changes.only_in_b += row.only_in_b;
        if row.changed > 0 {
            changes.by_mapping.push(row);
        }
    }
    changes
}

/// Finds the mapping a page belongs to, in B first, then in A.
struct Locator {
    vmas: Vec<(u64, u64, String)>,
}

impl Locator {
    fn new(a: Option<&MemoryMap>, b: Option<&MemoryMap>) -> Locator {
        let list = |map: Option<&MemoryMap>| -> Vec<(u64, u64, String)> {
            let mut vmas: Vec<(u64, u64, String)> = map
                .map(|map| {
                    map.vmas
                        .iter()
                        .map(|vma| (vma.start, vma.end, vma_label(vma)))
                        .collect()
                })
                .unwrap_or_default();
            vmas.sort();
            vmas
        };
        let mut vmas = list(b);
        let from_b = vmas.clone();
        for vma in list(a) {
            if !from_b
                .iter()
                .any(|(start, end, _)| vma.0 < *end && *start < vma.1)
            {
                vmas.push(vma);
            }
        }
        vmas.sort();
        Locator { vmas }
    }

    fn find(&self, page: u64) -> Option<&(u64, u64, String)> {
        let index = self.vmas.partition_point(|(start, _, _)| *start <= page);
        let vma = self.vmas.get(index.checked_sub(1)?)?;
        (page < vma.1).then_some(vma)
    }

    /// Returns the key of the row for `page`: its mapping's range, or the
    /// page itself when no mapping contains it.
    fn range(&self, page: u64) -> (u64, u64) {
        self.find(page)
            .map_or((page, page + PAGE_SIZE), |(start, end, _)| (*start, *end))
    }

    fn row(&self, page: u64) -> PageRow {
        let (start, end) = self.range(page);
        PageRow {
            start,
            end,
            name: self
                .find(page)
                .map_or_else(String::new, |vma| vma.2.clone()),
            ..PageRow::default()
        }
    }
}

fn diff_fds(a: Option<&[stasis_image::Fd]>, b: Option<&[stasis_image::Fd]>) -> FdChanges {
    let by_fd = |fds: Option<&[stasis_image::Fd]>| -> BTreeMap<i32, FdEntry> {
        fds.unwrap_or_default()
            .iter()
            .map(|fd| (fd.fd, fd_entry(fd)))
            .collect()
    };
    let fds_a = by_fd(a);
    let fds_b = by_fd(b);
    let mut changes = FdChanges::default();
    for (fd, entry) in &fds_a {
        match fds_b.get(fd) {
            None => changes.removed.push(entry.clone()),
            Some(other) => {
                let fields = fd_changes(entry, other);
                if !fields.is_empty() {
                    changes.changed.push(FdChange {
                        fd: *fd,
                        changes: fields,
                    });
                }
            }
        }
    }
    for (fd, entry) in &fds_b {
        if !fds_a.contains_key(fd) {
            changes.added.push(entry.clone());
        }
    }
    changes
}

fn fd_changes(a: &FdEntry, b: &FdEntry) -> Vec<Change> {
    let text = |fd: &FdEntry| -> Vec<(&'static str, String)> {
        vec![
            ("kind", fd.kind.to_string()),
            ("path", fd.path.clone()),
            ("flags", fd.flags_decoded.clone()),
            (
                "position",
                fd.position.map_or("-".to_string(), |p| p.to_string()),
            ),
            ("cloexec", fd.cloexec.to_string()),
            ("deleted", fd.deleted.to_string()),
            ("rdev", fd.rdev.clone().unwrap_or_else(|| "-".to_string())),
            (
                "state",
                fd.detail.clone().unwrap_or_else(|| "-".to_string()),
            ),
        ]
    };
    let mut changes = Vec::new();
    for ((field, value_a), (_, value_b)) in text(a).into_iter().zip(text(b)) {
        push_change(&mut changes, field, value_a, value_b);
    }
    changes
}

/// Renders a diff as text.
pub fn render(diff: &ImageDiff, style: &Style) -> String {
    let mut out = format!("A: {}\nB: {}\n", clean(&diff.a), clean(&diff.b));
    out.push_str(&render_problems("A", &diff.problems_a, style));
    out.push_str(&render_problems("B", &diff.problems_b, style));
    for pid in &diff.only_in_a {
        out.push_str(&format!("process {pid} is only in A\n"));
    }
    for pid in &diff.only_in_b {
        out.push_str(&format!("process {pid} is only in B\n"));
    }
    for process in &diff.processes {
        out.push('\n');
        out.push_str(&render_process(process, style));
    }
    out.push('\n');
    out.push_str(&if diff.identical {
        style.paint(Paint::Good, "no differences")
    } else {
        style.paint(Paint::Warn, "the images differ")
    });
    out.push('\n');
    out
}

fn render_problems(side: &str, problems: &[ProblemJson], style: &Style) -> String {
    let mut out = String::new();
    for problem in problems {
        let problem = crate::load::Problem {
            file: problem.file.clone(),
            message: problem.message.clone(),
        };
        out.push_str(&format!(
            "{} {side}: {}\n",
            style.paint(Paint::Bad, "DAMAGED"),
            describe_problem(&problem)
        ));
    }
    out
}

fn render_process(process: &ProcessDiff, style: &Style) -> String {
    let mut out = style.heading(&format!(
        "Process {} (A) and {} (B)",
        process.pid_a, process.pid_b
    ));
    out.push('\n');
    if process.is_empty() {
        out.push_str("  no differences\n");
        return out;
    }
    if !process.fields.is_empty() {
        out.push_str(&format!("  {}\n", style.heading("Process fields")));
        out.push_str(&change_table(&process.fields, 4, style));
    }
    out.push_str(&render_mappings(&process.mappings, style));
    out.push_str(&render_pages(&process.pages, style));
    out.push_str(&render_fds(&process.fds, style));
    out.push_str(&render_threads(process, style));
    out
}

fn change_table(changes: &[Change], indent: usize, style: &Style) -> String {
    let mut table = Table::new(&[
        ("FIELD", Align::Left),
        ("A", Align::Left),
        ("B", Align::Left),
    ])
    .indent(indent);
    for change in changes {
        table.row(vec![
            Cell::new(change.field.clone()),
            Cell::new(clean(&change.a)),
            Cell::new(clean(&change.b)),
        ]);
    }
    table.render(style)
}

fn render_mappings(mappings: &MappingChanges, style: &Style) -> String {
    if mappings.added.is_empty() && mappings.removed.is_empty() && mappings.changed.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "  {}: {} added, {} removed, {} changed\n",
        style.heading("Mappings"),
        mappings.added.len(),
        mappings.removed.len(),
        mappings.changed.len()
    );
    let mut table = Table::new(&[
        ("", Align::Left),
        ("START-END", Align::Left),
        ("PERMS", Align::Left),
        ("NAME", Align::Left),
    ])
    .indent(4);
    let mut add_row = |sign: &str, paint: Paint, mapping: &MappingRef| {
        table.row(vec![
            Cell::painted(sign, paint),
            Cell::new(format!(
                "{}-{}",
                address(mapping.start),
                address(mapping.end)
            )),
            Cell::new(mapping.perms.clone()),
            Cell::new(clean(&mapping.name)),
        ]);
    };
    for mapping in &mappings.removed {
        add_row("-", Paint::Bad, mapping);
    }
    for mapping in &mappings.added {
        add_row("+", Paint::Good, mapping);
    }
    if !table.is_empty() {
        out.push_str(&table.render(style));
    }
    for change in &mappings.changed {
        out.push_str(&format!(
            "    ~ {} {}\n",
            address(change.start),
            clean(&change.name)
        ));
        out.push_str(&change_table(&change.changes, 6, style));
    }
    out
}

fn render_pages(pages: &PageChanges, style: &Style) -> String {
    if pages.changed == 0 {
        return format!(
            "  {}: all {} stored pages are the same\n",
            style.heading("Pages"),
            pages.compared
        );
    }
    let mut out = format!(
        "  {}: {} compared, {} same, {} changed ({} only in A, {} only in B)\n",
        style.heading("Pages"),
        pages.compared,
        pages.same,
        pages.changed,
        pages.only_in_a,
        pages.only_in_b
    );
    let mut table = Table::new(&[
        ("START-END", Align::Left),
        ("STORED A", Align::Right),
        ("STORED B", Align::Right),
        ("CHANGED", Align::Right),
        ("ONLY A", Align::Right),
        ("ONLY B", Align::Right),
        ("NAME", Align::Left),
    ])
    .indent(4);
    for row in &pages.by_mapping {
        table.row(vec![
            Cell::new(format!("{}-{}", address(row.start), address(row.end))),
            Cell::new(row.stored_a.to_string()),
            Cell::new(row.stored_b.to_string()),
            Cell::painted(row.changed.to_string(), Paint::Warn),
            Cell::new(row.only_in_a.to_string()),
            Cell::new(row.only_in_b.to_string()),
            Cell::new(clean(&row.name)),
        ]);
    }
    out.push_str(&table.render(style));
    out
}

fn render_fds(fds: &FdChanges, style: &Style) -> String {
    if fds.added.is_empty() && fds.removed.is_empty() && fds.changed.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "  {}: {} added, {} removed, {} changed\n",
        style.heading("File descriptors"),
        fds.added.len(),
        fds.removed.len(),
        fds.changed.len()
    );
    for (sign, paint, list) in [
        ("-", Paint::Bad, &fds.removed),
        ("+", Paint::Good, &fds.added),
    ] {
        for fd in list {
            out.push_str(&format!(
                "    {} {} {} {} {}\n",
                style.paint(paint, sign),
                fd.fd,
                fd.kind,
                fd.flags_decoded,
                clean(&fd.path)
            ));
        }
    }
    for change in &fds.changed {
        out.push_str(&format!("    ~ fd {}\n", change.fd));
        out.push_str(&change_table(&change.changes, 6, style));
    }
    out
}

fn render_threads(process: &ProcessDiff, style: &Style) -> String {
    let mut out = String::new();
    for tid in &process.threads_only_in_a {
        out.push_str(&format!("  thread {tid} is only in A\n"));
    }
    for tid in &process.threads_only_in_b {
        out.push_str(&format!("  thread {tid} is only in B\n"));
    }
    for thread in process.threads.iter().filter(|t| !t.registers.is_empty()) {
        out.push_str(&format!(
            "  {}: {} changed\n",
            style.heading(&format!(
                "Registers of thread {} (A) and {} (B)",
                thread.tid_a, thread.tid_b
            )),
            thread.registers.len()
        ));
        out.push_str(&change_table(&thread.registers, 4, style));
    }
    out
}
