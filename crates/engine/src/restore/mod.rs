//! Restore of a process tree from an image directory.
//!
//! Steps:
//! 1. open the image: manifest and every record are checked (size, magic,
//!    version, kind, BLAKE3) before they are decoded;
//! 2. check that this machine can run the image (CPU features, XSAVE size);
//! 3. open every file the processes need, create their pipes, and check
//!    that each file is unchanged;
//! 4. create the root with the recorded PID (clone3 with set_tid), in a
//!    new IPC namespace if the image has one, then each other process from
//!    its parent, in its session and group. Zombies exit with their
//!    recorded status. When asked, or when a recorded PID is taken, this
//!    happens in a new PID namespace (`pidns.rs`). Then the System V
//!    objects of the IPC namespace are created;
//! 5. rebuild each process's address space, fds, limits, signals, threads
//!    and credentials with system calls run inside it. Every data file
//!    (pages, file contents, socket queues) is checked a chunk at a time
//!    against the manifest as it is read, before its bytes are used;
//! 6. set the registers and let the tree run.
//!
//! A failure at any step kills every process created, so nothing
//! half-restored runs.

mod anon;
mod child;
mod files;
mod ipc;
mod memory;
mod pidns;
mod process;
mod sessions;
mod shared;
mod socket;
mod threads;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use stasis_image::{FdTable, Image, MemoryMap, Process};
use stasis_linux::proc::{self, MapBacking};
use stasis_linux::ptrace;
use stasis_linux::remote::RemoteProcess;
use tracing::info;

use crate::error::{RestoreError, RestoreStep};
use child::Tree;
use files::{Descriptions, FileCheck, OpenedFiles};
use pidns::PidNamespace;
pub use pidns::{run_init as run_pid_namespace_init, InitCommand};

/// Size of the scratch area used to pass structures to system calls.
const SCRATCH_LEN: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub dir: PathBuf,
    /// Accept mapped and open files whose size or mtime changed.
    pub skip_file_checks: bool,
    /// BLAKE3 hash that the manifest file must have, such as the hash a
    /// verified seal signs. The image is opened only if the manifest bytes
    /// it reads have this hash.
    pub manifest_hash: Option<[u8; 32]>,
    /// Whether the tree goes into a new PID namespace.
    pub pid_namespace: PidNamespaceMode,
    /// Key of an encrypted image.
    pub key: Option<stasis_image::ImageKey>,
}

/// PID namespace choice of a restore.
#[derive(Debug, Clone)]
pub enum PidNamespaceMode {
    /// In the PID namespace of stasis, with the saved PIDs. A taken PID is
    /// an error.
    Never,
    /// In a new PID namespace whose init runs the command.
    Always(InitCommand),
    /// In the PID namespace of stasis, unless a saved PID or TID is taken
    /// there by another process (after the wait for a zombie with that
    /// PID), and then in a new PID namespace whose init runs the command.
    WhenPidsTaken(InitCommand),
}

/// Summary of a restore, printed by `stasis restore --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    /// PID of the root process in the PID namespace of the caller, the one
    /// that signals and waitpid there take. It is the saved PID unless the
    /// tree is in a new PID namespace.
    pub pid: i32,
    /// The new PID namespace of the tree, or None.
    pub pid_namespace: Option<PidNamespaceSummary>,
    /// Processes restored, zombies included.
    pub processes: usize,
    pub vmas: usize,
    pub fds: usize,
    pub pages_restored: u64,
    pub total_ms: f64,
}

/// The new PID namespace that a restored tree runs in.
#[derive(Debug, Clone, Serialize)]
pub struct PidNamespaceSummary {
    /// PID of the root inside the namespace, the saved one.
    pub root_pid: i32,
    /// PID of the namespace's init in the PID namespace of the caller. The
    /// init is a child of the caller, and killing it kills the tree.
    pub init_pid: i32,
    /// Inode number of the namespace, as in the /proc/PID/ns/pid link
    /// `pid:[INODE]`.
    pub inode: u64,
    /// Message naming the taken saved PID that made the restore choose a
    /// new namespace on its own, or None when the caller requested one.
    pub reason: Option<String>,
}

/// One process of the image, with the records that a live process has.
struct ProcessImage {
    process: Process,
    /// Memory map and fd table; None for a zombie.
    live: Option<(MemoryMap, FdTable)>,
}

/// Reads and checks the records of every process of the image, in the
/// manifest's order (parents before children).
fn read_processes(image: &Image) -> Result<Vec<ProcessImage>, RestoreError> {
    let manifest = image.manifest();
    let mut processes: Vec<ProcessImage> = Vec::new();
    for (index, &pid) in manifest.processes.iter().enumerate() {
        let process: Process = image.read_record(&stasis_image::format::process_file_name(pid))?;
        let root = index == 0;
        if root != (pid == manifest.root_pid) {
            return Err(RestoreError::Unsupported {
                reason: format!(
                    "the manifest lists process {pid} in the wrong place for root {}",
                    manifest.root_pid
                ),
            });
        }
        if !root
            && !processes
                .iter()
                .any(|earlier| earlier.process.pid == process.ppid)
        {
            return Err(RestoreError::Unsupported {
                reason: format!(
                    "process {pid} has parent {}, which the image does not list before it",
                    process.ppid
                ),
            });
        }
        let live = if process.zombie_exit_status.is_some() {
            None
        } else {
            if process.threads.first().map(|thread| thread.tid) != Some(pid) {
                return Err(RestoreError::Unsupported {
                    reason: format!("the first thread of process {pid} is not its main thread"),
                });
            }
            let map: MemoryMap =
                image.read_record(&stasis_image::format::memory_map_file_name(pid))?;
            let table: FdTable =
                image.read_record(&stasis_image::format::fd_table_file_name(pid))?;
            let pages = image.data_file(&map.pages_file, stasis_image::RecordKind::Pages)?;
            let record_path = image
                .dir()
                .join(stasis_image::format::memory_map_file_name(pid));
            stasis_image::validate::validate_memory_map(&map, pages.len, &record_path)?;
            Some((map, table))
        };
        processes.push(ProcessImage { process, live });
    }
    shared::check(&processes)?;
    Ok(processes)
}

/// Restores the image in `options.dir`. The processes are running when
/// this returns, and the root is a child of the calling process.
pub fn restore(options: &RestoreOptions) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let mut image = match &options.manifest_hash {
        Some(hash) => {
            Image::open_expecting_manifest_hash(&options.dir, &blake3::Hash::from_bytes(*hash))?
        }
        None => Image::open(&options.dir)?,
    };
    if let Some(key) = &options.key {
        image.unlock(key.clone())?;
    }
    let root = image.manifest().root_pid;
    let processes = read_processes(&image)?;
    let maps: Vec<&MemoryMap> = processes
        .iter()
        .filter_map(|p| p.live.as_ref().map(|live| &live.0))
        .collect();
    let ipc = ipc::read(&image, &maps)?;
    check_machine(&image)?;

    let check = FileCheck {
        skip_checks: options.skip_file_checks,
    };
    let tables: Vec<&FdTable> = processes
        .iter()
        .filter_map(|p| p.live.as_ref().map(|live| &live.1))
        .collect();
    let mut descriptions = Descriptions::new(&tables);
    descriptions.connect_unix_sockets()?;
    let mut opened = Vec::new();
    for entry in &processes {
        opened.push(match &entry.live {
            Some((map, table)) => Some(OpenedFiles::open(
                &image,
                &entry.process,
                map,
                table,
                &check,
                &mut descriptions,
            )?),
            None => None,
        });
    }

    descriptions.finish_unix_sockets(&image)?;

    let new_ipc = ipc.is_some();
    let (mut tree, reason) = match &options.pid_namespace {
        PidNamespaceMode::Never => (create_tree(&processes, new_ipc, None)?, None),
        PidNamespaceMode::Always(init) => {
            check_pid_one_free(&processes)?;
            let namespace = PidNamespace::create(init)?;
            (create_tree(&processes, new_ipc, Some(namespace))?, None)
        }
        PidNamespaceMode::WhenPidsTaken(init) => create_tree_where_free(&processes, new_ipc, init)?,
    };
    let root_pid = tree.processes[0].pid;
    let pid_namespace = tree
        .pid_namespace
        .as_ref()
        .map(|namespace| PidNamespaceSummary {
            root_pid: root,
            init_pid: namespace.init_pid(),
            inode: namespace.inode(),
            reason,
        });
    info!(
        root,
        root_pid,
        processes = processes.len(),
        "processes created"
    );
    if let Some(ipc) = &ipc {
        ipc::create(root_pid, ipc, &image)?;
        info!(
            root,
            shm = ipc.shm.len(),
            semaphores = ipc.semaphores.len(),
            queues = ipc.queues.len(),
            "System V IPC objects created"
        );
    }

    rebuild_all(&mut tree, &image, &processes, &opened)?;
    if let Some(ipc) = &ipc {
        ipc::finish(root_pid, ipc)?;
    }

    tree.release()?;
    // stasis keeps both ends of every restored pipe open: they are closed before
    // anything waits for the restored processes, or a reader never sees EOF.
    drop(opened);
    drop(descriptions);
    info!(root, "processes restored and running");

    let live: Vec<&(MemoryMap, FdTable)> =
        processes.iter().filter_map(|p| p.live.as_ref()).collect();
    Ok(RestoreSummary {
        pid: root_pid,
        pid_namespace,
        processes: processes.len(),
        vmas: live.iter().map(|live| live.0.vmas.len()).sum(),
        fds: live.iter().map(|live| live.1.fds.len()).sum(),
        pages_restored: live
            .iter()
            .flat_map(|live| live.0.pages.iter())
            .map(|run| run.pages)
            .sum(),
        total_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Creates the tree in the PID namespace of stasis, or, if a saved PID or
/// TID is taken there, in a new PID namespace. Returns the tree and, for a
/// new namespace, which PID was taken.
fn create_tree_where_free(
    processes: &[ProcessImage],
    new_ipc_namespace: bool,
    init: &InitCommand,
) -> Result<(Tree, Option<String>), RestoreError> {
    let reason = match create_tree(processes, new_ipc_namespace, None) {
        // Threads are created later, so their TIDs are checked here, after
        // the wait for zombies that hold saved PIDs.
        Ok(tree) => match taken_thread_id(processes) {
            None => return Ok((tree, None)),
            Some(reason) => reason,
        },
        Err(RestoreError::PidInUse { pid, comm }) => {
            format!("pid {pid} is in use by another process ({comm})")
        }
        Err(RestoreError::PidHeldByZombie { pid, comm, parent }) => format!(
            "pid {pid} is held by an exited process ({comm}) that its parent {parent} has not reaped"
        ),
        Err(error) => return Err(error),
    };
    // The tree created above, if any, is gone by now.
    if let Err(error) = check_pid_one_free(processes) {
        return Err(RestoreError::PidNamespaceFallback {
            reason,
            source: Box::new(error),
        });
    }
    info!(%reason, "restoring into a new PID namespace");
    let fallback = |error| RestoreError::PidNamespaceFallback {
        reason: reason.clone(),
        source: Box::new(error),
    };
    let namespace = PidNamespace::create(init).map_err(fallback)?;
    let tree = create_tree(processes, new_ipc_namespace, Some(namespace)).map_err(fallback)?;
    Ok((tree, Some(reason)))
}

/// Returns a message naming the first saved TID of a thread (not a main
/// thread) that a task of the PID namespace of stasis uses, if any.
fn taken_thread_id(processes: &[ProcessImage]) -> Option<String> {
    processes
        .iter()
        .filter(|entry| entry.live.is_some())
        .flat_map(|entry| entry.process.threads.iter().skip(1))
        .find_map(|thread| {
            let stat = proc::stat(thread.tid).ok()?;
            Some(format!(
                "tid {} is in use by another process ({})",
                thread.tid, stat.comm
            ))
        })
}

/// Rejects an image with process or thread 1 for a new PID namespace,
/// where PID 1 belongs to the namespace's init.
fn check_pid_one_free(processes: &[ProcessImage]) -> Result<(), RestoreError> {
    reject_pid_one(processes.iter().flat_map(|entry| {
        std::iter::once(entry.process.pid)
            .chain(entry.process.threads.iter().map(|thread| thread.tid))
    }))
}

/// Returns an error if `saved_ids`, the PIDs and TIDs of an image, contain 1.
fn reject_pid_one(mut saved_ids: impl Iterator<Item = i32>) -> Result<(), RestoreError> {
    if saved_ids.any(|id| id == 1) {
        return Err(RestoreError::Unsupported {
            reason: "the image has a process or thread with pid 1, which in a new PID namespace belongs to the namespace's init; restore it without a new PID namespace (--no-pid-ns)".into(),
        });
    }
    Ok(())
}

/// Creates every process of the tree, each by its parent, in its session
/// and group; zombies exit right away with their recorded status. With
/// `new_ipc_namespace`, the root and so the whole tree get a new IPC
/// namespace.
fn create_tree(
    processes: &[ProcessImage],
    new_ipc_namespace: bool,
    pid_namespace: Option<PidNamespace>,
) -> Result<Tree, RestoreError> {
    let root = &processes[0].process;
    let flags = if new_ipc_namespace {
        libc::CLONE_NEWIPC as u64
    } else {
        0
    };
    let mut tree = Tree::spawn_root(root.pid, flags, pid_namespace)?;
    let mut placed: Vec<&Process> = Vec::new();
    for entry in processes {
        let process = &entry.process;
        let parent = placed
            .iter()
            .copied()
            .find(|p| p.pid == process.ppid && process.pid != root.pid);
        if process.pid != root.pid {
            tree.fork(process.ppid, process.pid, shared::clone_flags(process))?;
        }
        let created = tree.get(process.pid).expect("created above");
        sessions::place(created, process, parent, &placed)?;
        placed.push(process);
    }
    for entry in processes {
        if let Some(status) = entry.process.zombie_exit_status {
            let created = tree.get(entry.process.pid).expect("created above");
            sessions::make_zombie(created, &entry.process.comm, status)?;
        }
    }
    Ok(tree)
}

/// Rebuilds every live process of the tree.
fn rebuild_all(
    tree: &mut Tree,
    image: &Image,
    processes: &[ProcessImage],
    opened: &[Option<OpenedFiles>],
) -> Result<(), RestoreError> {
    let closers = shared::closers(processes);
    for (entry, files) in processes.iter().zip(opened) {
        let (Some((map, _)), Some(files)) = (&entry.live, files) else {
            continue;
        };
        let created = tree
            .get(entry.process.pid)
            .expect("every process was created");
        created.remote()?;
        let main = created.remote.take().expect("made above");
        let close_keeping = closers.get(&entry.process.pid).map(Vec::as_slice);
        // Opened only now, when every process exists, so that no process
        // inherits the fd and has to close it with one more remote call.
        let pages = image.data_reader(&map.pages_file, stasis_image::RecordKind::Pages)?;
        let threads = rebuild(main, &entry.process, map, files, &pages, close_keeping)?;
        created.threads = threads;
    }
    Ok(())
}

/// Turns one stopped process into the saved one, stopping short of
/// letting it run. Returns the TIDs of the threads it created.
///
/// With `close_keeping`, the process closes every fd of its table except
/// the listed numbers once its fds are installed. Without it, a later
/// process that shares the table closes them (`shared.rs`).
fn rebuild(
    mut main: RemoteProcess,
    process: &Process,
    map: &MemoryMap,
    files: &OpenedFiles,
    pages: &stasis_image::DataReader,
    close_keeping: Option<&[i32]>,
) -> Result<Vec<i32>, RestoreError> {
    let pid = main.pid();
    check_xstate_size(pid, process)?;

    let scratch = memory::prepare(&mut main, map, SCRATCH_LEN)?;
    // The exe link can only change while no mapping of the current exe
    // (stasis itself) exists, and the image may map the same file, so the
    // mm fields are set between emptying and refilling the address space.
    process::set_mm(&mut main, scratch, process, files)?;
    memory::map_and_fill(&mut main, map, files, pages)?;
    if process.fs_shared_with.is_none() {
        process::enter_cwd(&mut main, files)?;
    }
    if process.files_shared_with.is_none() {
        process::install_fds(&mut main, files)?;
        anon::register_epolls(&mut main, scratch, &files.epolls)?;
    }
    if let Some(keep) = close_keeping {
        process::close_inherited_fds(&mut main, files.base, keep)?;
    }
    process::set_process_state(&mut main, scratch, process)?;
    process::set_sigactions(&mut main, scratch, process)?;

    let vdso = vdso_of(pid)?;
    let others = threads::create(&mut main, scratch, process, vdso)?;
    let tids = others.iter().map(RemoteProcess::pid).collect();
    let mut remotes = vec![main];
    remotes.extend(others);

    for (remote, thread) in remotes.iter_mut().zip(&process.threads) {
        process::set_thread_state(remote, scratch, thread)?;
    }
    process::set_posix_timers(&mut remotes[0], scratch, process)?;
    process::queue_signals(&mut remotes[0], scratch, process)?;
    for remote in remotes.iter_mut() {
        process::set_credentials(remote, scratch, process)?;
    }
    remotes[0]
        .munmap(scratch, SCRATCH_LEN)
        .step(pid, "unmapping the scratch area")?;

    for (remote, thread) in remotes.iter_mut().zip(&process.threads) {
        let tid = remote.pid();
        ptrace::set_sigmask(tid, thread.sigmask).step(tid, "setting the signal mask")?;
        remote.set_saved_regs(crate::regs::to_user(&thread.regs));
        remote.park().step(tid, "setting the registers")?;
        ptrace::set_xstate(tid, &thread.xstate.0).step(tid, "setting the XSAVE registers")?;
    }
    Ok(tids)
}

/// Returns the (start, end) of the `[vdso]` mapping of `pid`.
fn vdso_of(pid: i32) -> Result<(u64, u64), RestoreError> {
    proc::mappings(pid)
        .step(pid, "reading the new process's mappings")?
        .into_iter()
        .find(|m| m.backing == MapBacking::Vdso)
        .map(|m| (m.start, m.end))
        .ok_or_else(|| RestoreError::Incompatible {
            reason: "this kernel gives processes no [vdso], which stasis needs to run system calls in them".into(),
        })
}

/// Checks that this CPU's XSAVE area has the size of the saved ones.
fn check_xstate_size(pid: i32, process: &Process) -> Result<(), RestoreError> {
    let here = ptrace::get_xstate(pid)
        .step(pid, "reading the XSAVE registers")?
        .len();
    for thread in &process.threads {
        if thread.xstate.0.len() != here {
            return Err(RestoreError::Incompatible {
                reason: format!(
                    "the XSAVE area is {here} bytes on this CPU but {} bytes in the image; restore on a CPU with the same register set",
                    thread.xstate.0.len()
                ),
            });
        }
    }
    Ok(())
}

/// Instruction-set features that compiled code may use without checking at
/// run time; an image that used them cannot run on a CPU without them.
const ISA_FEATURES: &[&str] = &[
    "sse",
    "sse2",
    "ssse3",
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "bmi1",
    "bmi2",
    "aes",
    "pclmulqdq",
    "sha_ni",
    "avx512f",
    "avx512dq",
    "avx512cd",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "movbe",
    "popcnt",
    "lzcnt",
    "adx",
    "rdrand",
    "rdseed",
    "xsave",
    "xsavec",
    "xsaveopt",
];

fn check_machine(image: &Image) -> Result<(), RestoreError> {
    let host = &image.manifest().host;
    let here = crate::host::describe(0);
    if host.machine != here.machine {
        return Err(RestoreError::Incompatible {
            reason: format!(
                "the image is for {}, this machine is {}",
                host.machine, here.machine
            ),
        });
    }
    if host.page_size != crate::PAGE_SIZE {
        return Err(RestoreError::Incompatible {
            reason: format!(
                "the image uses {}-byte pages, this machine {}",
                host.page_size,
                crate::PAGE_SIZE
            ),
        });
    }
    let missing: Vec<&str> = ISA_FEATURES
        .iter()
        .copied()
        .filter(|feature| host.cpu_features.iter().any(|f| f == feature))
        .filter(|feature| !here.cpu_features.iter().any(|f| f == feature))
        .collect();
    if !missing.is_empty() {
        return Err(RestoreError::Incompatible {
            reason: format!(
                "this CPU lacks features the dump host had: {}",
                missing.join(", ")
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_one_rejected_for_namespace() {
        let error = reject_pid_one([300, 301, 1].into_iter())
            .expect_err("an image with pid 1 must be rejected");
        let message = error.to_string();
        assert!(
            message.contains("pid 1") && message.contains("--no-pid-ns"),
            "the error does not explain pid 1: {message}"
        );
    }

    #[test]
    fn other_pids_accepted_for_namespace() {
        let result = reject_pid_one([2, 300, 301].into_iter());
        assert!(result.is_ok(), "pids without 1 were rejected: {result:?}");
    }
}
