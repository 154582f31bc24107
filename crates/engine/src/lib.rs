//! Checkpoint and restore of Linux processes.
//!
//! [`dump::dump`] writes a stopped process into an image directory through
//! `stasis-image`; [`restore::restore`] creates the process again from it.
//! Both use `stasis-linux` for every kernel interface.

pub mod dump;
pub mod error;
pub mod host;
mod regs;
pub mod restore;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub use error::{DumpError, RestoreError};
use stasis_image::FileIdentity;

/// The x86-64 base page size; huge pages are saved as 4 KiB pages.
pub const PAGE_SIZE: u64 = 4096;

/// Reads a file's identity through `stat_path` (often a /proc link) and
/// records it under `path`.
pub(crate) fn file_identity(path: &str, stat_path: &Path) -> Result<FileIdentity, DumpError> {
    let meta = std::fs::metadata(stat_path).map_err(|source| DumpError::Io {
        path: stat_path.to_owned(),
        source,
    })?;
    Ok(FileIdentity {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        mode: meta.mode(),
    })
}
