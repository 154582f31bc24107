//! Opening, in stasis, every file the restored process needs, and checking
//! that each is the file that was dumped.
//!
//! The files are opened before the new process is created, at fd numbers
//! above any that the process uses, so the process inherits them. Inside
//! it, they are then mapped or moved with dup3 to their recorded numbers,
//! and every other inherited fd is closed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use stasis_image::{
    FdTable, FileIdentity, Image, MemoryMap, OpenFile, Process, RecordKind, VmaKind,
};
use tracing::debug;

use crate::error::RestoreError;

/// Flags that are replayed when a file is opened again. Creation flags
/// (O_CREAT, O_EXCL, O_TRUNC) and O_NOCTTY are left out on purpose.
const REOPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_LARGEFILE
    | libc::O_PATH
    | libc::O_DIRECTORY;

/// Files opened for one process, each at an fd number above every fd
/// number the process uses.
pub struct OpenedFiles {
    pub pages: OwnedFd,
    pub exe: OwnedFd,
    pub cwd: OwnedFd,
    /// Per file mapping: the fd to mmap, keyed by VMA start address.
    pub mappings: HashMap<u64, i32>,
    /// (recorded fd number, fd to dup3 from, close-on-exec).
    pub fds: Vec<(i32, i32, bool)>,
    /// Keeps every fd open until the process has inherited it.
    _owned: Vec<OwnedFd>,
}

pub struct FileCheck {
    /// Accept files whose size or mtime changed since the dump.
    pub skip_checks: bool,
}

impl OpenedFiles {
    pub fn open(
        image: &Image,
        process: &Process,
        map: &MemoryMap,
        table: &FdTable,
        check: &FileCheck,
    ) -> Result<OpenedFiles, RestoreError> {
        let base = table.fds.iter().map(|fd| fd.fd).max().unwrap_or(0).max(2) + 1;
        let base = base.max(100);

        let pages_file = image.data_file(&map.pages_file, RecordKind::Pages)?;
        let pages = open_at(&pages_file.path, libc::O_RDONLY, base)?;

        check_identity(&process.exe, check)?;
        let exe = open_at(Path::new(&process.exe.path), libc::O_RDONLY, base)?;
        let cwd = open_at(
            Path::new(&process.cwd),
            libc::O_PATH | libc::O_DIRECTORY,
            base,
        )?;

        let mut owned = Vec::new();
        let mut by_path: HashMap<(String, bool), i32> = HashMap::new();
        let mut mappings = HashMap::new();
        for vma in map.vmas.iter().filter(|vma| vma.kind == VmaKind::File) {
            let Some(identity) = &vma.file else { continue };
            let writable = vma.shared && vma.prot & libc::PROT_WRITE as u32 != 0;
            let key = (identity.path.clone(), writable);
            let fd = match by_path.get(&key) {
                Some(&fd) => fd,
                None => {
                    check_identity(identity, check)?;
                    let flags = if writable {
                        libc::O_RDWR
                    } else {
                        libc::O_RDONLY
                    };
                    let fd = open_at(Path::new(&identity.path), flags, base)?;
                    let raw = fd.as_raw_fd();
                    owned.push(fd);
                    by_path.insert(key, raw);
                    raw
                }
            };
            mappings.insert(vma.start, fd);
        }

        let mut fds = Vec::new();
        for entry in &table.fds {
            let fd = open_fd(image, &entry.file, check, base)?;
            fds.push((entry.fd, fd.as_raw_fd(), entry.cloexec));
            owned.push(fd);
        }

        Ok(OpenedFiles {
            pages,
            exe,
            cwd,
            mappings,
            fds,
            _owned: owned,
        })
    }
}

/// Opens `path` and moves the fd to the lowest free number >= `base`.
fn open_at(path: &Path, flags: i32, base: i32) -> Result<OwnedFd, RestoreError> {
    let file = OpenOptions::new()
        .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
        .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(path);
    // O_PATH opens ignore the access mode, but OpenOptions requires one.
    let file = file.map_err(|source| RestoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    move_above(file.into(), base, path)
}

fn move_above(fd: OwnedFd, base: i32, path: &Path) -> Result<OwnedFd, RestoreError> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd or -1.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
    if moved < 0 {
        return Err(RestoreError::Open {
            path: path.display().to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `moved` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn open_fd(
    image: &Image,
    file: &OpenFile,
    check: &FileCheck,
    base: i32,
) -> Result<OwnedFd, RestoreError> {
    match file {
        OpenFile::Regular {
            identity,
            flags,
            position,
            deleted: true,
            content,
        } => {
            let fd = recreate_deleted(image, identity, content.as_deref(), *flags as i32, base)?;
            seek(&fd, *position, &identity.path)?;
            Ok(fd)
        }
        OpenFile::Regular {
            identity,
            flags,
            position,
            ..
        } => {
            check_identity(identity, check)?;
            let fd = open_at(
                Path::new(&identity.path),
                *flags as i32 & REOPEN_FLAGS,
                base,
            )?;
            if *flags as i32 & libc::O_PATH == 0 {
                seek(&fd, *position, &identity.path)?;
            }
            Ok(fd)
        }
        OpenFile::Directory {
            identity,
            flags,
            position,
        } => {
            let fd = open_at(
                Path::new(&identity.path),
                *flags as i32 & REOPEN_FLAGS | libc::O_DIRECTORY,
                base,
            )?;
            if *flags as i32 & libc::O_PATH == 0 && *position != 0 {
                seek(&fd, *position, &identity.path)?;
            }
            Ok(fd)
        }
        OpenFile::CharDevice { path, rdev, flags } => {
            let fd = open_at(Path::new(path), *flags as i32 & REOPEN_FLAGS, base)?;
            let meta = File::from(fd.try_clone().map_err(|source| RestoreError::Open {
                path: path.clone(),
                source,
            })?)
            .metadata()
            .map_err(|source| RestoreError::Open {
                path: path.clone(),
                source,
            })?;
            if meta.rdev() != *rdev {
                return Err(RestoreError::FileChanged {
                    path: path.clone(),
                    field: "device number",
                    recorded: format!("{}:{}", libc::major(*rdev), libc::minor(*rdev)),
                    current: format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev())),
                });
            }
            Ok(fd)
        }
        OpenFile::Terminal { path, .. } => {
            // The process joins the terminal that runs the restore.
            // SAFETY: isatty only inspects the fd number.
            if unsafe { libc::isatty(0) } != 1 {
                return Err(RestoreError::Incompatible {
                    reason: format!(
                        "the image has terminal fds ({path}, saved with --shell-job); run stasis restore with a terminal on its standard input"
                    ),
                });
            }
            // SAFETY: fd 0 is open (isatty succeeded); the duplicate is owned here.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            let dup = stdin
                .try_clone_to_owned()
                .map_err(|source| RestoreError::Open {
                    path: "standard input".into(),
                    source,
                })?;
            move_above(dup, base, Path::new("standard input"))
        }
    }
}

fn seek(fd: &OwnedFd, position: u64, path: &str) -> Result<(), RestoreError> {
    let mut file = File::from(fd.try_clone().map_err(|source| RestoreError::Open {
        path: path.to_owned(),
        source,
    })?);
    file.seek(SeekFrom::Start(position))
        .map(|_| ())
        .map_err(|source| RestoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Creates an unnamed file (O_TMPFILE) beside the deleted original, fills
/// it with the saved contents and reopens it with the recorded flags.
fn recreate_deleted(
    image: &Image,
    identity: &FileIdentity,
    content: Option<&str>,
    flags: i32,
    base: i32,
) -> Result<OwnedFd, RestoreError> {
    let original = Path::new(&identity.path);
    let dir = original
        .parent()
        .filter(|dir| dir.is_dir())
        .unwrap_or(Path::new("/tmp"));
    let mut tmp = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(identity.mode & 0o7777)
        .open(dir)
        .map_err(|source| RestoreError::Open {
            path: format!(
                "{} (O_TMPFILE for deleted {})",
                dir.display(),
                identity.path
            ),
            source,
        })?;
    if let Some(name) = content {
        let data = image.data_file(name, RecordKind::FileData)?;
        let mut source = File::open(&data.path).map_err(|source| RestoreError::Open {
            path: data.path.display().to_string(),
            source,
        })?;
        source
            .seek(SeekFrom::Start(data.data_offset))
            .and_then(|_| std::io::copy(&mut std::io::Read::take(&mut source, data.len), &mut tmp))
            .and_then(|_| tmp.flush())
            .map_err(|source| RestoreError::Open {
                path: data.path.display().to_string(),
                source,
            })?;
    }
    let reopen = format!("/proc/self/fd/{}", tmp.as_raw_fd());
    debug!(path = %identity.path, "recreated deleted file");
    open_at(Path::new(&reopen), flags & REOPEN_FLAGS, base)
}

/// Checks that the file at `identity.path` has the recorded size and mtime.
fn check_identity(identity: &FileIdentity, check: &FileCheck) -> Result<(), RestoreError> {
    let meta = std::fs::metadata(&identity.path).map_err(|source| RestoreError::Open {
        path: identity.path.clone(),
        source,
    })?;
    if check.skip_checks {
        return Ok(());
    }
    if meta.size() != identity.size {
        return Err(RestoreError::FileChanged {
            path: identity.path.clone(),
            field: "size",
            recorded: identity.size.to_string(),
            current: meta.size().to_string(),
        });
    }
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    if mtime_ns != identity.mtime_ns {
        return Err(RestoreError::FileChanged {
            path: identity.path.clone(),
            field: "mtime (ns)",
            recorded: identity.mtime_ns.to_string(),
            current: mtime_ns.to_string(),
        });
    }
    Ok(())
}
