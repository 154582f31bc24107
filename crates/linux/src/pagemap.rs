//! Finding which pages of a process hold data, with the PAGEMAP_SCAN ioctl
//! on /proc/PID/pagemap (Linux 6.7).
//!
//! One ioctl returns whole ranges of pages that match a category filter,
//! instead of one 8-byte pagemap entry per page. The uapi definitions are
//! newer than the headers of older distributions, so they are spelled out
//! here from include/uapi/linux/fs.h.

use std::fs::File;
use std::os::fd::AsRawFd;

use nix::errno::Errno;

use crate::error::{LinuxError, Result};

/// The page is mapped to a file's page cache page (not a private copy).
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
/// The page is the shared zero page: read but never written.
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;

/// _IOWR('f', 16, struct pm_scan_arg) with sizeof(pm_scan_arg) == 96.
const PAGEMAP_SCAN: libc::c_ulong = 0xc060_6610;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// A filter for [`Pagemap::scan`]: a page matches when every bit of
/// `required` is set, no bit of `excluded` is set, and at least one bit of
/// `any_of` is set (or `any_of` is 0).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageFilter {
    pub required: u64,
    pub excluded: u64,
    pub any_of: u64,
}

impl PageFilter {
    /// Pages that hold data of their own: present or swapped, not the zero
    /// page and not an unmodified page of the mapped file.
    pub fn private_data() -> PageFilter {
        PageFilter {
            required: 0,
            excluded: PAGE_IS_PFNZERO | PAGE_IS_FILE,
            any_of: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
        }
    }

    /// Present pages that are still the file's page cache page.
    pub fn file_pages() -> PageFilter {
        PageFilter {
            required: PAGE_IS_FILE | PAGE_IS_PRESENT,
            excluded: 0,
            any_of: 0,
        }
    }
}

/// An open /proc/PID/pagemap.
pub struct Pagemap {
    pid: i32,
    file: File,
}

impl Pagemap {
    pub fn open(pid: i32) -> Result<Pagemap> {
        let path = format!("/proc/{pid}/pagemap");
        let file = File::open(&path).map_err(|source| LinuxError::Io {
            path: path.into(),
            source,
        })?;
        Ok(Pagemap { pid, file })
    }

    /// Returns the [start, end) address ranges in [start, end) whose pages
    /// match `filter`, merged where adjacent.
    pub fn scan(&self, start: u64, end: u64, filter: PageFilter) -> Result<Vec<(u64, u64)>> {
        const BATCH: usize = 512;
        let mut regions = vec![PageRegion::default(); BATCH];
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        let mut cursor = start;
        while cursor < end {
            let mut arg = PmScanArg {
                size: std::mem::size_of::<PmScanArg>() as u64,
                start: cursor,
                end,
                vec: regions.as_mut_ptr() as u64,
                vec_len: BATCH as u64,
                category_inverted: filter.excluded,
                category_mask: filter.required | filter.excluded,
                category_anyof_mask: filter.any_of,
                return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
                ..PmScanArg::default()
            };
            // SAFETY: arg is a valid pm_scan_arg whose vec points to BATCH
            // writable page_region entries that outlive the call.
            let ret = unsafe { libc::ioctl(self.file.as_raw_fd(), PAGEMAP_SCAN, &mut arg) };
            if ret < 0 {
                return Err(LinuxError::Ptrace {
                    op: "PAGEMAP_SCAN",
                    pid: self.pid,
                    errno: Errno::last(),
                });
            }
            for region in &regions[..ret as usize] {
                match ranges.last_mut() {
                    Some(last) if last.1 == region.start => last.1 = region.end,
                    _ => ranges.push((region.start, region.end)),
                }
            }
            if arg.walk_end <= cursor {
                break;
            }
            cursor = arg.walk_end;
        }
        Ok(ranges)
    }
}

/// Number of bytes covered by `ranges`.
pub fn ranges_len(ranges: &[(u64, u64)]) -> u64 {
    ranges.iter().map(|(start, end)| end - start).sum()
}
