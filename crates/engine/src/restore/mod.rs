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
//!    recorded status. Then the System V objects of the IPC namespace are
//!    created;
//! 5. rebuild each process's address space, fds, limits, signals, threads
//!    and credentials with system calls run inside it, while another thread
//!    hashes the data files;
//! 6. once the hashes match, set the registers and let the tree run.
//!
//! A failure at any step kills every process created, so nothing
//! half-restored runs.

mod anon;
mod child;
mod files;
mod ipc;
mod memory;
mod process;
mod sessions;
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
}

/// Summary of a restore, printed by `stasis restore --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    /// PID of the root process.
    pub pid: i32,
    /// Processes restored, zombies included.
    pub processes: usize,
    pub vmas: usize,
    pub fds: usize,
    pub pages_restored: u64,
    pub total_ms: f64,
}

/// One process of the image, with the records that a live process has.
struct ProcessImage {
    process: Process,
    /// Memory map, fd table and page data offset; None for a zombie.
    live: Option<(MemoryMap, FdTable, u64)>,
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
            Some((map, table, pages.data_offset))
        };
        processes.push(ProcessImage { process, live });
    }
    Ok(processes)
}

/// Restores the image in `options.dir`. The processes are running when
/// this returns, and the root is a child of the calling process.
pub fn restore(options: &RestoreOptions) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let image = match &options.manifest_hash {
        Some(hash) => {
            Image::open_expecting_manifest_hash(&options.dir, &blake3::Hash::from_bytes(*hash))?
        }
        None => Image::open(&options.dir)?,
    };
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
    let mut opened = Vec::new();
    for entry in &processes {
        opened.push(match &entry.live {
            Some((map, table, _)) => Some(OpenedFiles::open(
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

    let mut tree = create_tree(&processes, ipc.is_some())?;
    info!(root, processes = processes.len(), "processes created");
    if let Some(ipc) = &ipc {
        ipc::create(root, ipc, &image)?;
        info!(
            root,
            shm = ipc.shm.len(),
            semaphores = ipc.semaphores.len(),
            queues = ipc.queues.len(),
            "System V IPC objects created"
        );
    }

    let data_files: Vec<String> = image
        .manifest()
        .files
        .iter()
        .filter(|entry| entry.kind.is_data())
        .map(|entry| entry.name.clone())
        .collect();
    let rebuilt = std::thread::scope(|scope| {
        let verifier = scope.spawn(|| {
            data_files
                .iter()
                .try_for_each(|name| image.verify_data_file(name))
        });
        let rebuilt = rebuild_all(&mut tree, &processes, &opened);
        let verified = verifier.join().unwrap_or_else(|_| {
            Err(stasis_image::ImageError::Invalid {
                path: image.dir().to_owned(),
                message: "data hash verification panicked".into(),
            })
        });
        rebuilt.and(verified.map_err(RestoreError::from))
    });
    rebuilt?;
    if let Some(ipc) = &ipc {
        ipc::finish(root, ipc)?;
    }

    tree.release()?;
    // stasis keeps both ends of every restored pipe open: they are closed before
    // anything waits for the restored processes, or a reader never sees EOF.
    drop(opened);
    drop(descriptions);
    info!(root, "processes restored and running");

    let live: Vec<&(MemoryMap, FdTable, u64)> =
        processes.iter().filter_map(|p| p.live.as_ref()).collect();
    Ok(RestoreSummary {
        pid: root,
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

/// Creates every process of the tree, each by its parent, in its session
/// and group; zombies exit right away with their recorded status. With
/// `new_ipc_namespace`, the root and so the whole tree get a new IPC
/// namespace.
fn create_tree(processes: &[ProcessImage], new_ipc_namespace: bool) -> Result<Tree, RestoreError> {
    let root = &processes[0].process;
    let flags = if new_ipc_namespace {
        libc::CLONE_NEWIPC as u64
    } else {
        0
    };
    let mut tree = Tree::spawn_root(root.pid, flags)?;
    let mut placed: Vec<&Process> = Vec::new();
    for entry in processes {
        let process = &entry.process;
        let parent = placed
            .iter()
            .copied()
            .find(|p| p.pid == process.ppid && process.pid != root.pid);
        if process.pid != root.pid {
            tree.fork(process.ppid, process.pid)?;
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
    processes: &[ProcessImage],
    opened: &[Option<OpenedFiles>],
) -> Result<(), RestoreError> {
    for (entry, files) in processes.iter().zip(opened) {
        let (Some((map, _, pages_offset)), Some(files)) = (&entry.live, files) else {
            continue;
        };
        let created = tree
            .get(entry.process.pid)
            .expect("every process was created");
        created.remote()?;
        let main = created.remote.take().expect("made above");
        let threads = rebuild(main, &entry.process, map, files, *pages_offset)?;
        created.threads = threads;
    }
    Ok(())
}

/// Turns one stopped process into the saved one, stopping short of
/// letting it run. Returns the TIDs of the threads it created.
fn rebuild(
    mut main: RemoteProcess,
    process: &Process,
    map: &MemoryMap,
    files: &OpenedFiles,
    pages_offset: u64,
) -> Result<Vec<i32>, RestoreError> {
    let pid = main.pid();
    check_xstate_size(pid, process)?;

    let scratch = memory::prepare(&mut main, map, SCRATCH_LEN)?;
    // The exe link can only change while no mapping of the current exe
    // (stasis itself) exists, and the image may map the same file, so the
    // mm fields are set between emptying and refilling the address space.
    process::set_mm(&mut main, scratch, process, files)?;
    memory::map_and_fill(&mut main, map, files, pages_offset)?;
    process::set_fds(&mut main, files)?;
    anon::register_epolls(&mut main, scratch, &files.epolls)?;
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
