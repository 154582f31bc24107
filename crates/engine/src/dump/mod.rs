//! Checkpoint of a process tree into an image directory.
//!
//! Steps, with every process of the tree stopped from the first to the
//! last:
//! 1. walk the tree from the root, checking and freezing each process
//!    (every thread stopped, signals blocked) before listing its children;
//!    a process must have no seccomp filter, `/` as root, the namespaces of
//!    stasis, and the IPC namespace of the root, which may be its own;
//! 2. find processes that share an fd table or fs state without being
//!    threads. Reject what the image cannot hold: other sharing of
//!    resources between processes, pipes or Unix sockets connected outside
//!    the tree. Save the System V objects of the tree's own IPC namespace;
//! 3. for each process, run system calls inside it to read what /proc
//!    does not show (signal dispositions, sigaltstack, timers, brk …), then
//!    save its fds, mappings and private pages and its process record;
//! 4. commit the manifest (fsynced), and only then kill the tree, or
//!    resume it with --leave-running.
//!
//! Any failure resumes every process as it was and removes what was
//! written.

mod anon;
mod files;
mod freeze;
mod ipc;
mod memory;
mod process;
mod socket;
mod tree;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use stasis_image::{DumpStats, ImageWriter, Manifest, RecordKind};
use stasis_linux::proc::{self, MapBacking};
use tracing::info;

use crate::error::{DumpError, DumpStep};
use freeze::Frozen;
use tree::Member;

pub(crate) use socket::unix_path as socket_path;

/// Options of a dump: the target, the image directory and the modes.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub pid: i32,
    pub dir: PathBuf,
    /// Resume the target after the dump instead of killing it.
    pub leave_running: bool,
    /// Save terminal fds, to be reattached to the restoring terminal.
    pub shell_job: bool,
    /// Encrypt every file but the manifest with this key.
    pub encryption_key: Option<stasis_image::ImageKey>,
}

/// Summary of a finished dump, printed by `stasis dump --json`.
#[derive(Debug, Clone, Serialize)]
pub struct DumpSummary {
    pub pid: i32,
    pub dir: PathBuf,
    /// Processes in the dumped tree, zombies included.
    pub processes: usize,
    pub vmas: usize,
    pub fds: usize,
    pub pages_stored: u64,
    pub bytes_stored: u64,
    pub pages_skipped_file: u64,
    pub pages_skipped_zero: u64,
    pub frozen_ms: f64,
    pub total_ms: f64,
    pub left_running: bool,
    /// ID of the key that encrypted the image; absent for an image in
    /// clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key_id: Option<String>,
}

/// Dumps the process tree rooted at `options.pid` into `options.dir`.
/// `progress` is called with the number of memory bytes written as they
/// are written.
pub fn dump(
    options: &DumpOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<DumpSummary, DumpError> {
    let started = Instant::now();
    let pid = options.pid;
    let ipc_namespace = if std::fs::metadata(format!("/proc/{pid}")).is_ok() {
        ipc::namespace_of(pid)?
    } else {
        return Err(DumpError::NoSuchProcess { pid });
    };
    let check = |member: i32| check_supported(member, &ipc_namespace);
    check(pid)?;
    let private_ipc = ipc::namespace_of(std::process::id() as i32)? != ipc_namespace;

    let mut image = ImageWriter::create(&options.dir)?;
    if let Some(key) = &options.encryption_key {
        let mut salt = [0u8; stasis_image::crypto::SALT_SIZE];
        if let Err(error) = getrandom::getrandom(&mut salt) {
            image.abort();
            return Err(DumpError::Random(error.to_string()));
        }
        image.encrypt_with(key.clone(), salt)?;
    }
    let mut members = match tree::freeze(pid, check) {
        Ok(members) => members,
        Err(err) => {
            image.abort();
            return Err(err);
        }
    };
    let frozen_at = Instant::now();
    info!(pid, processes = members.len(), "process tree stopped");

    let ipc = private_ipc.then_some(ipc_namespace.as_path());
    let written = write_image(options, ipc, &mut members, &mut image, progress);
    let (mut manifest, summary) = match written {
        Ok(done) => done,
        Err(err) => {
            image.abort();
            tree::release(members);
            return Err(err);
        }
    };
    manifest.stats.frozen_us = frozen_at.elapsed().as_micros() as u64;
    manifest.stats.total_us = started.elapsed().as_micros() as u64;
    if let Err(err) = image.commit(manifest) {
        tree::release(members);
        return Err(err.into());
    }
    info!(pid, dir = %options.dir.display(), "image committed");

    if options.leave_running {
        for member in members {
            if let Member::Live(frozen) = member {
                let member_pid = frozen.pid;
                frozen.release().step(member_pid, "resuming the process")?;
            }
        }
    } else {
        for member in members {
            if let Member::Live(frozen) = member {
                frozen.kill();
            }
        }
    }
    Ok(DumpSummary {
        frozen_ms: frozen_at.elapsed().as_secs_f64() * 1e3,
        total_ms: started.elapsed().as_secs_f64() * 1e3,
        left_running: options.leave_running,
        ..summary
    })
}

/// Rejects a target that has state stasis cannot save yet.
/// `ipc_namespace` is the IPC namespace of the tree's root, which every
/// process of the tree must share.
fn check_supported(pid: i32, ipc_namespace: &Path) -> Result<(), DumpError> {
    if pid == std::process::id() as i32 {
        return Err(DumpError::Unsupported {
            pid,
            reason: "stasis cannot dump itself".into(),
        });
    }
    let status = match proc::status(pid) {
        Ok(status) => status,
        Err(_) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {
            return Err(DumpError::NoSuchProcess { pid })
        }
        Err(err) => {
            return Err(DumpError::Linux {
                pid,
                step: "reading /proc/PID/status",
                source: err,
            })
        }
    };
    if status.tgid != pid {
        return Err(DumpError::Unsupported {
            pid,
            reason: format!(
                "{pid} is a thread of process {}; dump the process instead",
                status.tgid
            ),
        });
    }
    // The image keeps paths, PIDs and addresses as they appear to stasis,
    // which is right only if the target shares its namespaces. The IPC
    // namespace is the exception: a tree in one of its own is saved with
    // its System V objects.
    ipc::check_threads(pid, ipc_namespace)?;
    for (kind, what) in [
        ("pid", "PID"),
        ("net", "network"),
        ("mnt", "mount"),
        ("user", "user"),
        ("uts", "UTS"),
        ("time", "time"),
    ] {
        let own = std::fs::read_link(format!("/proc/self/ns/{kind}")).ok();
        let target_path = format!("/proc/{pid}/ns/{kind}");
        let target = std::fs::read_link(&target_path).map_err(|source| DumpError::Io {
            path: target_path.into(),
            source,
        })?;
        if own.as_ref() != Some(&target) {
            return Err(DumpError::Unsupported {
                pid,
                reason: format!(
                    "it runs in another {what} namespace, which stasis cannot save yet"
                ),
            });
        }
    }
    if status.seccomp.unwrap_or(0) != 0 {
        return Err(DumpError::Unsupported {
            pid,
            reason: "it runs under a seccomp filter, which stasis cannot save yet".into(),
        });
    }
    let root = proc::read_link(std::path::Path::new(&format!("/proc/{pid}/root")))
        .step(pid, "reading /proc/PID/root")?;
    if root != std::path::Path::new("/") {
        return Err(DumpError::Unsupported {
            pid,
            reason: format!(
                "its root directory is {} (chroot), which stasis cannot save yet",
                root.display()
            ),
        });
    }
    Ok(())
}

/// Writes every record and data file of the frozen tree. `ipc_namespace`
/// is the tree's own IPC namespace, or None when the tree shares that of
/// stasis.
fn write_image(
    options: &DumpOptions,
    ipc_namespace: Option<&Path>,
    members: &mut [Member],
    image: &mut ImageWriter,
    progress: &mut dyn FnMut(u64),
) -> Result<(Manifest, DumpSummary), DumpError> {
    let sharing = tree::find_shared_resources(members)?;
    tree::check_outside_sharing(members)?;
    tree::check_pipe_peers(members)?;
    let ipc = match ipc_namespace {
        Some(namespace) => {
            ipc::check_no_outside_users(members, namespace)?;
            let ipc = ipc::save(options.pid, image)?;
            if !ipc.semaphores.is_empty() {
                ipc::warn_sem_undo(members)?;
            }
            image.write_record(stasis_image::format::IPC_NAMESPACE_FILE_NAME, &ipc)?;
            info!(
                pid = options.pid,
                shm = ipc.shm.len(),
                semaphores = ipc.semaphores.len(),
                queues = ipc.queues.len(),
                "IPC namespace saved"
            );
            Some(ipc)
        }
        None => None,
    };
    let mut descriptions = files::Descriptions::default();
    let mut summary = DumpSummary {
        pid: options.pid,
        dir: options.dir.clone(),
        processes: members.len(),
        vmas: 0,
        fds: 0,
        pages_stored: 0,
        bytes_stored: 0,
        pages_skipped_file: 0,
        pages_skipped_zero: 0,
        frozen_ms: 0.0,
        total_ms: 0.0,
        left_running: options.leave_running,
        encryption_key_id: options.encryption_key.as_ref().map(|key| key.key_id()),
    };
    let mut stats = DumpStats::default();
    let mut xsave_size = 0;
    let memory_started = Instant::now();

    for member in members.iter_mut() {
        match member {
            Member::Live(frozen) => {
                let shared = sharing.get(&frozen.pid).copied().unwrap_or_default();
                let dumped = dump_process(
                    options,
                    ipc.as_ref(),
                    frozen,
                    shared,
                    image,
                    &mut descriptions,
                    progress,
                )?;
                xsave_size = dumped.xsave_size;
                summary.vmas += dumped.vmas;
                summary.fds += dumped.fds;
                stats.pages_stored += dumped.counts.stored;
                stats.pages_skipped_file += dumped.counts.skipped_file;
                stats.pages_skipped_zero += dumped.counts.skipped_zero;
            }
            Member::Zombie(zombie) => {
                let record = process::zombie_record(zombie);
                image.write_record(
                    &stasis_image::format::process_file_name(zombie.pid),
                    &record,
                )?;
            }
        }
    }
    descriptions.check_socket_peers()?;
    stats.memory_us = memory_started.elapsed().as_micros() as u64;
    summary.pages_stored = stats.pages_stored;
    summary.bytes_stored = stats.pages_stored * crate::PAGE_SIZE;
    summary.pages_skipped_file = stats.pages_skipped_file;
    summary.pages_skipped_zero = stats.pages_skipped_zero;

    let manifest = Manifest {
        format_version: stasis_image::FORMAT_VERSION,
        stasis_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        host: crate::host::describe(xsave_size),
        root_pid: options.pid,
        processes: members.iter().map(Member::pid).collect(),
        files: Vec::new(),
        stats,
        encryption: None,
    };
    Ok((manifest, summary))
}

/// Counts of what one process added to the image.
struct DumpedProcess {
    vmas: usize,
    fds: usize,
    counts: memory::PageCounts,
    xsave_size: u32,
}

/// Writes the records and pages of one stopped process.
fn dump_process(
    options: &DumpOptions,
    ipc: Option<&stasis_image::IpcNamespace>,
    frozen: &mut Frozen,
    sharing: tree::Sharing,
    image: &mut ImageWriter,
    descriptions: &mut files::Descriptions,
    progress: &mut dyn FnMut(u64),
) -> Result<DumpedProcess, DumpError> {
    let pid = frozen.pid;
    let mappings = proc::mappings(pid).step(pid, "reading /proc/PID/smaps")?;
    let vdso = mappings
        .iter()
        .find(|m| m.backing == MapBacking::Vdso)
        .map(|m| (m.start, m.end))
        .ok_or_else(|| DumpError::Unsupported {
            pid,
            reason: "it has no [vdso] mapping, which stasis needs to run system calls in it".into(),
        })?;

    let scratch = frozen
        .remote(0, vdso)
        .step(pid, "preparing remote system calls")?
        .mmap_anonymous(0, crate::PAGE_SIZE)
        .step(pid, "mapping a scratch page")?;
    let collected = process::collect(pid, frozen, vdso, scratch);
    frozen
        .remote(0, vdso)
        .and_then(|remote| remote.munmap(scratch, crate::PAGE_SIZE))
        .step(pid, "unmapping the scratch page")?;
    let mut process = collected?;
    process.files_shared_with = sharing.files_shared_with;
    process.fs_shared_with = sharing.fs_shared_with;

    // A shared fd table is saved once, with the first process that has it.
    let fds = match sharing.files_shared_with {
        Some(_) => stasis_image::FdTable {
            pid,
            fds: Vec::new(),
        },
        None => files::collect(pid, options.shell_job, image, descriptions)?,
    };

    // Read again: the scratch page is gone, and the layout is as it was.
    let mappings = proc::mappings(pid).step(pid, "reading /proc/PID/smaps")?;
    let vmas = memory::describe(pid, &mappings, ipc, image, &mut descriptions.shared_memory)?;
    let vma_count = vmas.len();
    let pages_name = stasis_image::format::pages_file_name(pid);
    let mut pages = image.data_writer(&pages_name, RecordKind::Pages)?;
    let (mut map, counts) = memory::write_pages(pid, vmas, &mut pages, pages_name, progress)?;
    map.shared_memory = descriptions
        .shared_memory
        .iter()
        .filter(|object| {
            map.vmas.iter().any(|vma| {
                vma.kind == stasis_image::VmaKind::SharedMemory
                    && vma.file.as_ref().map(|file| file.ino) == Some(object.inode)
            })
        })
        .cloned()
        .collect();
    image.finish_data(pages)?;

    image.write_record(&stasis_image::format::memory_map_file_name(pid), &map)?;
    image.write_record(&stasis_image::format::fd_table_file_name(pid), &fds)?;
    image.write_record(&stasis_image::format::process_file_name(pid), &process)?;
    Ok(DumpedProcess {
        vmas: vma_count,
        fds: fds.fds.len(),
        counts,
        xsave_size: process.threads[0].xstate.0.len() as u32,
    })
}
