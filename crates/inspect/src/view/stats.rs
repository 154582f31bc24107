//! The stats view: object counts, the largest mappings, where the image's
//! bytes go, and the dump's own counters and timings.

use std::collections::BTreeMap;

use serde::Serialize;
use stasis_image::{RecordKind, PAGE_DATA_OFFSET, PAGE_SIZE};

use super::{address, key_values, selected};
use crate::load::{LoadedImage, ProcessRecords};
use crate::memory::{stored_pages_per_vma, vma_size};
use crate::names::{fd_kind, vma_kind, vma_label};
use crate::text::{clean, human_bytes, millis, percent, share, Align, Cell, Style, Table};

/// Number of mappings in each top list.
const TOP: usize = 10;

#[derive(Debug, Serialize)]
pub struct Stats {
    pub objects: Objects,
    /// The largest mappings by size, largest first.
    pub largest_mappings: Vec<MappingSize>,
    /// The mappings with the most stored bytes, most first; mappings with
    /// nothing stored are left out.
    pub top_stored_mappings: Vec<MappingSize>,
    pub bytes: ByteBreakdown,
    pub dump: DumpCounters,
}

#[derive(Debug, Default, Serialize)]
pub struct Objects {
    pub processes: u64,
    pub threads: u64,
    pub mappings: u64,
    /// Mappings per VMA kind name (`Anonymous`, `File` …).
    pub mappings_by_kind: BTreeMap<String, u64>,
    pub page_runs: u64,
    pub pages_stored: u64,
    pub fds: u64,
    /// Descriptors per kind (`regular`, `char_device` …).
    pub fds_by_kind: BTreeMap<String, u64>,
    /// Signals with a handler (neither SIG_DFL nor SIG_IGN).
    pub signal_handlers: u64,
    /// Pending signals, shared and per thread.
    pub pending_signals: u64,
    pub image_files: u64,
    /// Image files per record kind name, the manifest included.
    pub image_files_by_kind: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MappingSize {
    pub pid: i32,
    pub start: u64,
    pub end: u64,
    pub kind: &'static str,
    pub name: String,
    pub size: u64,
    pub bytes_stored: u64,
}

#[derive(Debug, Serialize)]
pub struct ByteBreakdown {
    /// Sum of the sizes of every file present, the manifest included.
    pub total: u64,
    /// Parts that add up to `total` for an intact image.
    pub parts: Vec<BytePart>,
}

#[derive(Debug, Serialize)]
pub struct BytePart {
    pub part: String,
    pub bytes: u64,
    /// Fraction of `total`, rounded to 4 decimals.
    pub share: f64,
}

/// The dump's counters and timings from the manifest.
#[derive(Debug, Serialize)]
pub struct DumpCounters {
    /// Time from stopping the process to writing the manifest. The dump
    /// measures it before the commit, so the fsyncs of the commit, during
    /// which the process stays stopped, are not included.
    pub frozen_us: u64,
    pub memory_us: u64,
    pub total_us: u64,
    pub pages_stored: u64,
    pub pages_skipped_untouched: u64,
    pub pages_skipped_equal_to_file: u64,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Stats {
    let processes = selected(image, pid);
    let sizes = mapping_sizes(&processes);

    let mut largest = sizes.clone();
    largest.sort_by(|a, b| b.size.cmp(&a.size).then(a.start.cmp(&b.start)));
    largest.truncate(TOP);

    let mut top_stored: Vec<MappingSize> = sizes
        .iter()
        .filter(|mapping| mapping.bytes_stored > 0)
        .cloned()
        .collect();
    top_stored.sort_by(|a, b| {
        b.bytes_stored
            .cmp(&a.bytes_stored)
            .then(a.start.cmp(&b.start))
    });
    top_stored.truncate(TOP);

    let stats = &image.manifest.stats;
    Stats {
        objects: objects(image, &processes),
        largest_mappings: largest,
        top_stored_mappings: top_stored,
        bytes: bytes(image, &sizes),
        dump: DumpCounters {
            frozen_us: stats.frozen_us,
            memory_us: stats.memory_us,
            total_us: stats.total_us,
            pages_stored: stats.pages_stored,
            pages_skipped_untouched: stats.pages_skipped_zero,
            pages_skipped_equal_to_file: stats.pages_skipped_file,
        },
    }
}

fn mapping_sizes(processes: &[&ProcessRecords]) -> Vec<MappingSize> {
    let mut sizes = Vec::new();
    for records in processes {
        let Some(memory) = &records.memory else {
            continue;
        };
        let stored = stored_pages_per_vma(&memory.record);
        for (vma, pages) in memory.record.vmas.iter().zip(stored) {
            sizes.push(MappingSize {
                pid: records.pid,
                start: vma.start,
                end: vma.end,
                kind: vma_kind(vma.kind),
                name: vma_label(vma),
                size: vma_size(vma),
                bytes_stored: pages.saturating_mul(PAGE_SIZE),
            });
        }
    }
    sizes
}

fn objects(image: &LoadedImage, processes: &[&ProcessRecords]) -> Objects {
    let mut objects = Objects {
        processes: processes.len() as u64,
        ..Objects::default()
    };
    for records in processes {
        if let Some(process) = &records.process {
            let process = &process.record;
            objects.threads += process.threads.len() as u64;
            objects.signal_handlers +=
                process.sigactions.iter().filter(|a| a.handler > 1).count() as u64;
            objects.pending_signals += process.shared_pending.len() as u64
                + process
                    .threads
                    .iter()
                    .map(|thread| thread.pending.len() as u64)
                    .sum::<u64>();
        }
        if let Some(memory) = &records.memory {
            count_memory(&mut objects, &memory.record);
        }
        if let Some(fds) = &records.fds {
            objects.fds += fds.record.fds.len() as u64;
            for fd in &fds.record.fds {
                *objects
                    .fds_by_kind
                    .entry(fd_kind(&fd.file).to_string())
                    .or_default() += 1;
            }
        }
    }
    objects.image_files = image.files.len() as u64 + 1;
    *objects
        .image_files_by_kind
        .entry(kind_name(RecordKind::Manifest).to_string())
        .or_default() += 1;
    for file in &image.files {
        *objects
            .image_files_by_kind
            .entry(kind_name(file.kind).to_string())
            .or_default() += 1;
    }
    objects
}

fn count_memory(objects: &mut Objects, map: &stasis_image::MemoryMap) {
    objects.mappings += map.vmas.len() as u64;
    objects.page_runs += map.pages.len() as u64;
    objects.pages_stored += map
        .pages
        .iter()
        .map(|run| run.pages)
        .fold(0, u64::saturating_add);
    for vma in &map.vmas {
        *objects
            .mappings_by_kind
            .entry(vma_kind(vma.kind).to_string())
            .or_default() += 1;
    }
}

/// Returns the JSON name of a record kind, the variant name.
fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Manifest => "Manifest",
        RecordKind::Process => "Process",
        RecordKind::MemoryMap => "MemoryMap",
        RecordKind::FdTable => "FdTable",
        RecordKind::Pages => "Pages",
        RecordKind::FileData => "FileData",
        RecordKind::IpcNamespace => "IpcNamespace",
    }
}

/// Returns the bytes of data in a data file of `size` bytes. A size that
/// fits no data length counts as all data, and a file shorter than its
/// header as none.
fn data_len(size: u64) -> u64 {
    stasis_image::chunks::data_len_for_file_size(size)
        .unwrap_or_else(|| size.saturating_sub(PAGE_DATA_OFFSET))
}

/// Splits the image's bytes into parts: stored pages by mapping kind,
/// file data, each record kind, and headers with padding and chunk hashes.
fn bytes(image: &LoadedImage, sizes: &[MappingSize]) -> ByteBreakdown {
    let mut parts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut page_data = 0u64;
    *parts.entry("manifest").or_default() += image.manifest_size;
    for file in &image.files {
        let size = file.actual_size.unwrap_or(0);
        match file.kind {
            RecordKind::Pages => {
                let data = data_len(size);
                page_data += data;
                *parts.entry("headers, padding, chunk hashes").or_default() += size - data;
            }
            RecordKind::FileData => {
                let data = data_len(size);
                *parts
                    .entry("file data (deleted files, pipe buffers)")
                    .or_default() += data;
                *parts.entry("headers, padding, chunk hashes").or_default() += size - data;
            }
            RecordKind::Process => *parts.entry("process records").or_default() += size,
            RecordKind::MemoryMap => *parts.entry("memory map records").or_default() += size,
            RecordKind::FdTable => *parts.entry("fd table records").or_default() += size,
            RecordKind::IpcNamespace => *parts.entry("IPC namespace record").or_default() += size,
            RecordKind::Manifest => *parts.entry("manifest").or_default() += size,
        }
    }

    let mut attributed = 0u64;
    for mapping in sizes {
        attributed = attributed.saturating_add(mapping.bytes_stored);
        let part = parts.entry(page_part(mapping.kind)).or_default();
        *part = part.saturating_add(mapping.bytes_stored);
    }
    if page_data > attributed {
        *parts.entry("pages outside every mapping").or_default() += page_data - attributed;
    }

    let total = image.manifest_size
        + image
            .files
            .iter()
            .map(|file| file.actual_size.unwrap_or(0))
            .sum::<u64>();
    let mut parts: Vec<BytePart> = parts
        .into_iter()
        .filter(|(_, bytes)| *bytes > 0)
        .map(|(part, bytes)| BytePart {
            part: part.to_string(),
            bytes,
            share: share(bytes, total),
        })
        .collect();
    parts.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.part.cmp(&b.part)));
    ByteBreakdown { total, parts }
}

fn page_part(kind: &str) -> &'static str {
    match kind {
        "Heap" => "memory pages: heap",
        "Stack" => "memory pages: stack",
        "File" => "memory pages: written file mappings",
        "Anonymous" => "memory pages: anonymous",
        _ => "memory pages: other",
    }
}

pub fn render(stats: &Stats, style: &Style) -> String {
    let mut out = render_objects(&stats.objects, style);
    out.push('\n');
    out.push_str(&style.heading("Largest mappings"));
    out.push('\n');
    out.push_str(&render_mappings(&stats.largest_mappings, style));
    out.push('\n');
    out.push_str(&style.heading("Mappings with the most stored bytes"));
    out.push('\n');
    out.push_str(&render_mappings(&stats.top_stored_mappings, style));
    out.push('\n');
    out.push_str(&render_bytes(&stats.bytes, style));
    out.push('\n');
    out.push_str(&render_dump(&stats.dump, style));
    out
}

fn render_objects(objects: &Objects, style: &Style) -> String {
    let lines = [
        ("processes", objects.processes.to_string()),
        ("threads", objects.threads.to_string()),
        (
            "mappings",
            with_kinds(objects.mappings, &objects.mappings_by_kind),
        ),
        ("page runs", objects.page_runs.to_string()),
        ("pages stored", objects.pages_stored.to_string()),
        ("fds", with_kinds(objects.fds, &objects.fds_by_kind)),
        ("signal handlers", objects.signal_handlers.to_string()),
        ("pending signals", objects.pending_signals.to_string()),
        (
            "image files",
            with_kinds(objects.image_files, &objects.image_files_by_kind),
        ),
    ];
    format!(
        "{}\n{}",
        style.heading("Objects"),
        key_values(&lines, 2, style)
    )
}

/// Formats `total (kind count, …)`, kinds with the most first.
fn with_kinds(total: u64, kinds: &BTreeMap<String, u64>) -> String {
    if kinds.is_empty() {
        return total.to_string();
    }
    let mut sorted: Vec<(&String, &u64)> = kinds.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let list: Vec<String> = sorted
        .iter()
        .map(|(kind, count)| format!("{kind} {count}"))
        .collect();
    format!("{total} ({})", list.join(", "))
}

fn render_mappings(mappings: &[MappingSize], style: &Style) -> String {
    if mappings.is_empty() {
        return "  none\n".to_string();
    }
    let mut table = Table::new(&[
        ("PID", Align::Right),
        ("START-END", Align::Left),
        ("KIND", Align::Left),
        ("SIZE", Align::Right),
        ("STORED", Align::Right),
        ("NAME", Align::Left),
    ])
    .indent(2);
    for mapping in mappings {
        table.row(vec![
            Cell::new(mapping.pid.to_string()),
            Cell::new(format!(
                "{}-{}",
                address(mapping.start),
                address(mapping.end)
            )),
            Cell::new(mapping.kind),
            Cell::new(human_bytes(mapping.size)),
            Cell::new(human_bytes(mapping.bytes_stored)),
            Cell::new(clean(&mapping.name)),
        ]);
    }
    table.render(style)
}

fn render_bytes(bytes: &ByteBreakdown, style: &Style) -> String {
    let mut out = style.heading(&format!(
        "Where the image's {} go",
        human_bytes(bytes.total)
    ));
    out.push('\n');
    let mut table = Table::new(&[
        ("PART", Align::Left),
        ("BYTES", Align::Right),
        ("SIZE", Align::Right),
        ("SHARE", Align::Right),
    ])
    .indent(2);
    for part in &bytes.parts {
        table.row(vec![
            Cell::new(part.part.clone()),
            Cell::new(part.bytes.to_string()),
            Cell::new(human_bytes(part.bytes)),
            Cell::new(percent(part.bytes, bytes.total)),
        ]);
    }
    out.push_str(&table.render(style));
    out
}

fn render_dump(dump: &DumpCounters, style: &Style) -> String {
    let lines = [
        ("process stopped for", millis(dump.frozen_us)),
        ("writing memory took", millis(dump.memory_us)),
        ("whole dump took", millis(dump.total_us)),
        ("pages stored", dump.pages_stored.to_string()),
        (
            "pages skipped, never written",
            dump.pages_skipped_untouched.to_string(),
        ),
        (
            "pages skipped, equal to file",
            dump.pages_skipped_equal_to_file.to_string(),
        ),
    ];
    format!(
        "{}\n{}",
        style.heading("Dump (from the manifest)"),
        key_values(&lines, 2, style)
    )
}
