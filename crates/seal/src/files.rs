//! File helpers: bounded reads of regular files, hashing, and writing new
//! files durably.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::SealError;

/// Size of the read buffer used for hashing, in bytes.
const HASH_BUFFER_SIZE: usize = 1 << 20;

/// Whether opening a path follows a symbolic link at its last component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Symlinks {
    /// Key and policy files may be links, as configuration files often are.
    Follow,
    /// Image files must not be links, so that a link cannot point a check at
    /// a file outside the image.
    Reject,
}

/// Opens `path` for reading and checks that it is a regular file.
///
/// The open uses O_NONBLOCK, so a FIFO planted at `path` does not block it,
/// and the type check runs on the opened file, so a swap after the open
/// changes nothing.
pub(crate) fn open_regular(path: &Path, symlinks: Symlinks) -> Result<(File, Metadata), SealError> {
    let mut flags = libc::O_NONBLOCK;
    if symlinks == Symlinks::Reject {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => SealError::NotFound {
                path: path.to_path_buf(),
            },
            // O_NOFOLLOW on a symbolic link fails with ELOOP.
            _ if error.raw_os_error() == Some(libc::ELOOP) => SealError::NotRegularFile {
                path: path.to_path_buf(),
            },
            _ => SealError::io(path, error),
        })?;
    let metadata = file
        .metadata()
        .map_err(|error| SealError::io(path, error))?;
    if !metadata.is_file() {
        return Err(SealError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok((file, metadata))
}

/// Reads the whole regular file `path`, which may be at most `limit` bytes.
pub(crate) fn read_limited(
    path: &Path,
    limit: u64,
    symlinks: Symlinks,
) -> Result<(Vec<u8>, Metadata), SealError> {
    let (file, metadata) = open_regular(path, symlinks)?;
    let bytes = read_opened(file, &metadata, path, limit)?;
    Ok((bytes, metadata))
}

/// Reads the rest of `file`, opened from `path` with [`open_regular`], which
/// may be at most `limit` bytes.
pub(crate) fn read_opened(
    file: File,
    metadata: &Metadata,
    path: &Path,
    limit: u64,
) -> Result<Vec<u8>, SealError> {
    if metadata.len() > limit {
        return Err(SealError::TooLarge {
            path: path.to_path_buf(),
            size: metadata.len(),
            limit,
        });
    }
    // The capacity is bounded by `limit`, and `take` stops a file that grows
    // after the size was read.
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| SealError::io(path, error))?;
    if bytes.len() as u64 > limit {
        return Err(SealError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Hashes the regular file `path` with BLAKE3 from byte `offset`, for at
/// most `len` bytes. Returns the hash and the number of bytes hashed.
pub(crate) fn hash_file(
    path: &Path,
    offset: u64,
    len: u64,
) -> Result<(blake3::Hash, u64), SealError> {
    let (file, _) = open_regular(path, Symlinks::Reject)?;
    let mut file = file;
    file.seek(SeekFrom::Start(offset))
        .map_err(|error| SealError::io(path, error))?;
    let mut file = file.take(len);
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; HASH_BUFFER_SIZE];
    let mut hashed = 0u64;
    loop {
        let count = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(SealError::io(path, error)),
        };
        hasher.update(&buffer[..count]);
        hashed += count as u64;
    }
    Ok((hasher.finalize(), hashed))
}

/// Creates `path`, which must not exist (O_CREAT | O_EXCL, so an existing
/// file or symbolic link is never written through), with permissions
/// `mode` less the umask. Writes `bytes` and fsyncs the file.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SealError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists => SealError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => SealError::io(path, error),
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| SealError::io(path, error))
}

/// Fsyncs the directory `dir`, so that files created or renamed in it
/// survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SealError> {
    File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|error| SealError::io(dir, error))
}

/// Returns the directory that contains `path`, as a path that can be opened.
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
