//! Readers for /proc/PID files.
//!
//! The `procfs` crate parses the line-oriented files (stat, status, smaps);
//! the binary and per-fd files it does not cover in the form stasis needs
//! (auxv as raw words in order, fdinfo flags) are read here directly.

use std::path::{Path, PathBuf};

use procfs::process::{MMPermissions, MMapPath, Process};

use crate::error::{LinuxError, Result};

fn procfs_error(pid: i32) -> impl FnOnce(procfs::ProcError) -> LinuxError {
    move |source| LinuxError::Procfs { pid, source }
}

fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| LinuxError::Io {
        path: path.to_owned(),
        source,
    })
}

pub fn process(pid: i32) -> Result<Process> {
    Process::new(pid).map_err(procfs_error(pid))
}

pub fn stat(pid: i32) -> Result<procfs::process::Stat> {
    process(pid)?.stat().map_err(procfs_error(pid))
}

pub fn status(pid: i32) -> Result<procfs::process::Status> {
    process(pid)?.status().map_err(procfs_error(pid))
}

/// Thread IDs of `pid`, sorted.
pub fn threads(pid: i32) -> Result<Vec<i32>> {
    let path = PathBuf::from(format!("/proc/{pid}/task"));
    let entries = std::fs::read_dir(&path).map_err(|source| LinuxError::Io {
        path: path.clone(),
        source,
    })?;
    let mut tids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LinuxError::Io {
            path: path.clone(),
            source,
        })?;
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// PIDs of the children of every thread of `pid`.
pub fn children(pid: i32) -> Result<Vec<i32>> {
    let mut pids = Vec::new();
    for tid in threads(pid)? {
        let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/children"));
        let text = read_string(&path)?;
        pids.extend(
            text.split_whitespace()
                .filter_map(|s| s.parse::<i32>().ok()),
        );
    }
    pids.sort_unstable();
    Ok(pids)
}

/// Returns the auxiliary vector as raw (type, value) words, AT_NULL pair included.
pub fn auxv(pid: i32) -> Result<Vec<u64>> {
    let path = PathBuf::from(format!("/proc/{pid}/auxv"));
    let bytes = std::fs::read(&path).map_err(|source| LinuxError::Io {
        path: path.clone(),
        source,
    })?;
    let mut words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|chunk| u64::from_ne_bytes(chunk.try_into().expect("chunks_exact(8) yields 8 bytes")))
        .collect();
    // Keep everything up to and including the AT_NULL entry.
    if let Some(end) = words.chunks_exact(2).position(|pair| pair[0] == 0) {
        words.truncate((end + 1) * 2);
    }
    Ok(words)
}

/// Execution domain from /proc/PID/personality.
pub fn personality(pid: i32) -> Result<u32> {
    let path = PathBuf::from(format!("/proc/{pid}/personality"));
    let text = read_string(&path)?;
    u32::from_str_radix(text.trim(), 16).map_err(|err| LinuxError::Parse {
        path,
        message: err.to_string(),
    })
}

pub fn comm(pid: i32, tid: i32) -> Result<String> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{tid}/comm"));
    Ok(read_string(&path)?.trim_end_matches('\n').to_owned())
}

/// Filesystem type (statfs f_type) of the mqueue filesystem, which contains
/// POSIX message queues.
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// Returns whether `path` (such as /proc/PID/fd/N) is a POSIX message
/// queue, a file of the mqueue filesystem, which stat reports as a
/// regular file.
pub fn is_posix_message_queue(path: &Path) -> Result<bool> {
    let stat = nix::sys::statfs::statfs(path).map_err(|errno| LinuxError::Io {
        path: path.to_owned(),
        source: std::io::Error::from(errno),
    })?;
    Ok(stat.filesystem_type().0 as i64 == MQUEUE_MAGIC)
}

/// Reads the target of a /proc symlink (exe, cwd, root, fd/N).
pub fn read_link(path: &Path) -> Result<PathBuf> {
    std::fs::read_link(path).map_err(|source| LinuxError::Io {
        path: path.to_owned(),
        source,
    })
}

/// File position and open flags of one fd, from /proc/PID/fdinfo/FD.
#[derive(Debug, Clone, Copy)]
pub struct FdInfo {
    pub pos: u64,
    /// O_* flags, octal in the file.
    pub flags: u32,
}

/// Returns the whole text of /proc/PID/fdinfo/FD, whose further lines
/// depend on the kind of file (eventfd-count, tfd, sigmask …).
pub fn fdinfo_text(pid: i32, fd: i32) -> Result<String> {
    read_string(&PathBuf::from(format!("/proc/{pid}/fdinfo/{fd}")))
}

pub fn fdinfo(pid: i32, fd: i32) -> Result<FdInfo> {
    let path = PathBuf::from(format!("/proc/{pid}/fdinfo/{fd}"));
    let text = read_string(&path)?;
    let field = |name: &str| -> Option<&str> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };
    let parse_error = |message: &str| LinuxError::Parse {
        path: path.clone(),
        message: message.to_owned(),
    };
    let pos = field("pos:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| parse_error("missing or invalid pos field"))?;
    let flags = field("flags:")
        .and_then(|v| u32::from_str_radix(v, 8).ok())
        .ok_or_else(|| parse_error("missing or invalid flags field"))?;
    Ok(FdInfo { pos, flags })
}

/// Open fd numbers of `pid`, sorted.
pub fn fds(pid: i32) -> Result<Vec<i32>> {
    let path = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&path).map_err(|source| LinuxError::Io {
        path: path.clone(),
        source,
    })?;
    let mut fds = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LinuxError::Io {
            path: path.clone(),
            source,
        })?;
        if let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// The backing of a mapping, from the last column of /proc/PID/maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapBacking {
    Anonymous,
    /// A file; `deleted` when the kernel appended " (deleted)".
    File {
        path: PathBuf,
        deleted: bool,
    },
    Heap,
    Stack,
    Vdso,
    Vvar,
    VvarVclock,
    Vsyscall,
    /// An attachment of a System V shared memory segment, shown as
    /// `/SYSV<key in hex> (deleted)`; the mapping's inode number is the
    /// segment ID.
    SysvShm {
        key: u32,
    },
    /// Any other pseudo-path (`[uprobes]`, …).
    Other(String),
}

/// One line of /proc/PID/smaps.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    pub shared: bool,
    pub offset: u64,
    pub dev: (u32, u32),
    pub inode: u64,
    pub backing: MapBacking,
    /// Two-letter VmFlags names ("gd", "dd", "hg" …).
    pub vm_flags: Vec<String>,
}

impl Mapping {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn has_flag(&self, name: &str) -> bool {
        self.vm_flags.iter().any(|flag| flag == name)
    }
}

/// Reads every mapping of `pid` from /proc/PID/smaps.
pub fn mappings(pid: i32) -> Result<Vec<Mapping>> {
    let maps = process(pid)?.smaps().map_err(procfs_error(pid))?;
    Ok(maps.into_iter().map(convert_mapping).collect())
}

fn convert_mapping(map: procfs::process::MemoryMap) -> Mapping {
    let backing = match map.pathname {
        MMapPath::Anonymous => MapBacking::Anonymous,
        MMapPath::Heap => MapBacking::Heap,
        MMapPath::Stack => MapBacking::Stack,
        MMapPath::Vdso => MapBacking::Vdso,
        MMapPath::Vvar => MapBacking::Vvar,
        MMapPath::Vsyscall => MapBacking::Vsyscall,
        MMapPath::Path(path) => {
            let text = path.to_string_lossy();
            match text.strip_suffix(" (deleted)") {
                Some(stripped) => MapBacking::File {
                    path: PathBuf::from(stripped),
                    deleted: true,
                },
                None => MapBacking::File {
                    path,
                    deleted: false,
                },
            }
        }
        MMapPath::Other(name) if name.trim_matches(|c| c == '[' || c == ']') == "vvar_vclock" => {
            MapBacking::VvarVclock
        }
        MMapPath::Other(name) => MapBacking::Other(name),
        MMapPath::TStack(tid) => MapBacking::Other(format!("[stack:{tid}]")),
        MMapPath::Vsys(key) => MapBacking::SysvShm { key: key as u32 },
        MMapPath::Rollup => MapBacking::Other("[rollup]".to_owned()),
    };
    let vm_flags = map
        .extension
        .vm_flags
        .iter_names()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    Mapping {
        start: map.address.0,
        end: map.address.1,
        read: map.perms.contains(MMPermissions::READ),
        write: map.perms.contains(MMPermissions::WRITE),
        exec: map.perms.contains(MMPermissions::EXECUTE),
        shared: map.perms.contains(MMPermissions::SHARED),
        offset: map.offset,
        dev: (map.dev.0 as u32, map.dev.1 as u32),
        inode: map.inode,
        backing,
        vm_flags,
    }
}
