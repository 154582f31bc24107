//! The maps view: each process's mappings as /proc/PID/maps lists them,
//! with the pages and bytes the image stores for each.

use serde::Serialize;
use stasis_image::{Vma, PAGE_SIZE};

use super::{absent_line, address, process_heading, process_verified, selected, zombie_status};
use crate::load::{LoadedImage, ProcessRecords};
use crate::memory::{stored_pages_per_vma, vma_size};
use crate::names::{dev_hex, perms, saves_pages, vma_kind, vma_label};
use crate::text::{clean, human_bytes, Align, Cell, Paint, Style, Table};

#[derive(Debug, Serialize)]
pub struct Maps {
    pub processes: Vec<ProcessMaps>,
}

#[derive(Debug, Serialize)]
pub struct ProcessMaps {
    pub pid: i32,
    /// False when the memory map failed a check, or is unreadable
    /// (`mappings` is then empty).
    pub verified: bool,
    pub readable: bool,
    pub mappings: Vec<Mapping>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// As in /proc/PID/maps: `r-xp`.
    pub perms: String,
    /// File offset in bytes.
    pub offset: u64,
    /// Device of the file as `major:minor` in hex, `00:00` without a file.
    pub dev: String,
    pub inode: u64,
    /// Record kind name: `Anonymous`, `File`, `Heap` …
    pub kind: &'static str,
    /// File path, `[heap]`, `[stack]`, `[vdso]` …, or empty.
    pub name: String,
    pub size: u64,
    /// False for mappings whose pages a dump never saves (vdso, vvar,
    /// shared mappings).
    pub saves_pages: bool,
    pub pages_stored: u64,
    pub bytes_stored: u64,
    pub vm_flags: Vec<String>,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Maps {
    Maps {
        processes: selected(image, pid).into_iter().map(process_maps).collect(),
    }
}

fn process_maps(records: &ProcessRecords) -> ProcessMaps {
    let Some(memory) = &records.memory else {
        return ProcessMaps {
            pid: records.pid,
            verified: zombie_status(records).is_some() && process_verified(records),
            readable: false,
            mappings: Vec::new(),
        };
    };
    ProcessMaps {
        pid: records.pid,
        verified: memory.verified,
        readable: true,
        mappings: mappings(&memory.record),
    }
}

/// Describes every VMA of `map`.
pub fn mappings(map: &stasis_image::MemoryMap) -> Vec<Mapping> {
    let stored = stored_pages_per_vma(map);
    map.vmas
        .iter()
        .zip(stored)
        .map(|(vma, pages)| mapping(vma, pages))
        .collect()
}

fn mapping(vma: &Vma, pages_stored: u64) -> Mapping {
    Mapping {
        start: vma.start,
        end: vma.end,
        perms: perms(vma),
        offset: vma.offset,
        dev: vma
            .file
            .as_ref()
            .map_or("00:00".to_string(), |file| dev_hex(file.dev)),
        inode: vma.file.as_ref().map_or(0, |file| file.ino),
        kind: vma_kind(vma.kind),
        name: vma_label(vma),
        size: vma_size(vma),
        saves_pages: saves_pages(vma),
        pages_stored,
        bytes_stored: pages_stored.saturating_mul(PAGE_SIZE),
        vm_flags: vma.vm_flags.clone(),
    }
}

pub fn render(maps: &Maps, image: &LoadedImage, style: &Style) -> String {
    let mut out = String::new();
    for process in &maps.processes {
        if !out.is_empty() {
            out.push('\n');
        }
        if let Some(records) = image.process(process.pid) {
            out.push_str(&process_heading(records, process.verified, style));
        }
        if !process.readable {
            out.push_str(&absent_line(image.process(process.pid), "memory map"));
            continue;
        }
        out.push_str(&render_table(&process.mappings, style));
        out.push_str(&render_totals(&process.mappings));
    }
    out
}

fn render_table(mappings: &[Mapping], style: &Style) -> String {
    let mut table = Table::new(&[
        ("START-END", Align::Left),
        ("PERMS", Align::Left),
        ("OFFSET", Align::Left),
        ("DEV", Align::Left),
        ("INODE", Align::Right),
        ("SIZE", Align::Right),
        ("PAGES", Align::Right),
        ("STORED", Align::Right),
        ("NAME", Align::Left),
    ]);
    for mapping in mappings {
        let (pages, stored) = if mapping.saves_pages {
            (
                Cell::new(mapping.pages_stored.to_string()),
                Cell::new(human_bytes(mapping.bytes_stored)),
            )
        } else {
            (
                Cell::painted("-", Paint::Dim),
                Cell::painted("-", Paint::Dim),
            )
        };
        table.row(vec![
            Cell::new(format!(
                "{}-{}",
                address(mapping.start),
                address(mapping.end)
            )),
            Cell::new(mapping.perms.clone()),
            Cell::new(format!("{:08x}", mapping.offset)),
            Cell::new(mapping.dev.clone()),
            Cell::new(mapping.inode.to_string()),
            Cell::new(human_bytes(mapping.size)),
            pages,
            stored,
            Cell::new(clean(&mapping.name)),
        ]);
    }
    table.render(style)
}

fn render_totals(mappings: &[Mapping]) -> String {
    let size: u64 = mappings.iter().map(|m| m.size).fold(0, u64::saturating_add);
    let pages: u64 = mappings
        .iter()
        .map(|m| m.pages_stored)
        .fold(0, u64::saturating_add);
    format!(
        "{} mappings, {} mapped, {} pages stored ({})\n",
        mappings.len(),
        human_bytes(size),
        pages,
        human_bytes(pages.saturating_mul(PAGE_SIZE))
    )
}
