//! Accounting of a memory map: stored pages per VMA and per kind.

use serde::Serialize;
use stasis_image::{MemoryMap, PageRun, Vma, VmaKind, PAGE_SIZE};

use crate::pages::run_end;

/// Returns, for each VMA of `map` in order, the number of stored pages
/// inside it. A run that spans adjacent VMAs counts in each for the part
/// inside it. Works on unsorted runs and VMAs.
pub fn stored_pages_per_vma(map: &MemoryMap) -> Vec<u64> {
    let mut runs: Vec<PageRun> = map.pages.clone();
    runs.sort_by_key(|run| run.address);
    map.vmas
        .iter()
        .map(|vma| stored_in(&runs, vma.start, vma.end))
        .collect()
}

/// Returns the number of pages of the sorted `runs` inside `start..end`.
fn stored_in(runs: &[PageRun], start: u64, end: u64) -> u64 {
    // Runs sorted by address and not overlapping also end in order, so the
    // first run that ends after `start` is found by binary search. For
    // damaged, overlapping runs the count may be low; it is display only.
    let first = runs.partition_point(|run| run_end(run) <= start);
    runs[first..]
        .iter()
        .take_while(|run| run.address < end)
        .map(|run| {
            let from = run.address.max(start);
            let to = run_end(run).min(end);
            to.saturating_sub(from) / PAGE_SIZE
        })
        .fold(0, u64::saturating_add)
}

/// Page and byte counts of one process's memory map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MemoryCounts {
    pub mappings: u64,
    pub bytes_mapped: u64,
    pub bytes_stored: u64,
    pub page_runs: u64,
    /// Stored pages of anonymous, heap and stack mappings.
    pub pages_anonymous_stored: u64,
    /// Stored pages of private file mappings: pages the process wrote and
    /// that differ from the file.
    pub pages_file_stored: u64,
}

impl MemoryCounts {
    /// Counts the mappings and stored pages of `map`.
    pub fn of(map: &MemoryMap) -> MemoryCounts {
        let stored = stored_pages_per_vma(map);
        let mut counts = MemoryCounts {
            mappings: map.vmas.len() as u64,
            page_runs: map.pages.len() as u64,
            ..MemoryCounts::default()
        };
        for (vma, pages) in map.vmas.iter().zip(stored) {
            counts.bytes_mapped = counts.bytes_mapped.saturating_add(vma_size(vma));
            if vma.kind == VmaKind::File {
                counts.pages_file_stored = counts.pages_file_stored.saturating_add(pages);
            } else {
                counts.pages_anonymous_stored = counts.pages_anonymous_stored.saturating_add(pages);
            }
        }
        let pages = counts
            .pages_anonymous_stored
            .saturating_add(counts.pages_file_stored);
        counts.bytes_stored = pages.saturating_mul(PAGE_SIZE);
        counts
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &MemoryCounts) {
        self.mappings += other.mappings;
        self.bytes_mapped = self.bytes_mapped.saturating_add(other.bytes_mapped);
        self.bytes_stored = self.bytes_stored.saturating_add(other.bytes_stored);
        self.page_runs += other.page_runs;
        self.pages_anonymous_stored = self
            .pages_anonymous_stored
            .saturating_add(other.pages_anonymous_stored);
        self.pages_file_stored = self
            .pages_file_stored
            .saturating_add(other.pages_file_stored);
    }
}

/// Returns the size of a VMA in bytes, 0 for a damaged one that ends
/// before it starts.
pub fn vma_size(vma: &Vma) -> u64 {
    vma.end.saturating_sub(vma.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vma(start: u64, end: u64) -> Vma {
        Vma {
            start,
            end,
            prot: 3,
            shared: false,
            offset: 0,
            kind: VmaKind::Anonymous,
            file: None,
            vm_flags: Vec::new(),
        }
    }

    #[test]
    fn run_spanning_two_vmas_counts_in_each() {
        let map = MemoryMap {
            pid: 1,
            vmas: vec![vma(0x1000, 0x3000), vma(0x3000, 0x6000)],
            pages: vec![PageRun {
                address: 0x2000,
                pages: 3,
                offset: 0,
            }],
            pages_file: "pages-1".to_string(),
            shared_memory: Vec::new(),
        };
        assert_eq!(stored_pages_per_vma(&map), vec![1, 2]);
    }

    #[test]
    fn unsorted_runs_are_counted() {
        let map = MemoryMap {
            pid: 1,
            vmas: vec![vma(0x1000, 0x9000)],
            pages: vec![
                PageRun {
                    address: 0x5000,
                    pages: 1,
                    offset: 0,
                },
                PageRun {
                    address: 0x1000,
                    pages: 2,
                    offset: 4096,
                },
            ],
            pages_file: "pages-1".to_string(),
            shared_memory: Vec::new(),
        };
        assert_eq!(stored_pages_per_vma(&map), vec![3]);
    }
}
