//! Restore of one process from an image directory.
//!
//! Steps:
//! 1. open the image: manifest and every record are checked (size, magic,
//!    version, kind, BLAKE3) before they are decoded;
//! 2. check that this machine can run the image (CPU features, XSAVE size);
//! 3. open every file the process needs and check it is unchanged;
//! 4. create a child with the recorded PID (clone3 with set_tid), seize it;
//! 5. rebuild its address space, fds, limits, signals and credentials with
//!    system calls run inside it, while another thread hashes the pages file;
//! 6. once the hash matches, set the registers and let it run.
//!
//! A failure at any step kills the child, so nothing half-restored runs.

mod child;
mod files;
mod memory;
mod process;
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
use child::Child;
use files::{FileCheck, OpenedFiles};

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
    pub pid: i32,
    pub vmas: usize,
    pub fds: usize,
    pub pages_restored: u64,
    pub total_ms: f64,
}

/// Restores the image in `options.dir`. The process is running when this
/// returns and is a child of the calling process.
pub fn restore(options: &RestoreOptions) -> Result<RestoreSummary, RestoreError> {
    let started = Instant::now();
    let image = match &options.manifest_hash {
        Some(hash) => {
            Image::open_expecting_manifest_hash(&options.dir, &blake3::Hash::from_bytes(*hash))?
        }
        None => Image::open(&options.dir)?,
    };
    let pid = image.manifest().root_pid;
    let process: Process = image.read_record(&stasis_image::format::process_file_name(pid))?;
    let map: MemoryMap = image.read_record(&stasis_image::format::memory_map_file_name(pid))?;
    let table: FdTable = image.read_record(&stasis_image::format::fd_table_file_name(pid))?;
    let pages = image.data_file(&map.pages_file, stasis_image::RecordKind::Pages)?;
    let record_path = options
        .dir
        .join(stasis_image::format::memory_map_file_name(pid));
    stasis_image::validate::validate_memory_map(&map, pages.len, &record_path)?;
    check_machine(&image)?;
    if process.threads.first().map(|thread| thread.tid) != Some(pid) {
        return Err(RestoreError::Incompatible {
            reason: format!("the first thread in the image is not the main thread {pid}"),
        });
    }

    let check = FileCheck {
        skip_checks: options.skip_file_checks,
    };
    let files = OpenedFiles::open(&image, &process, &map, &table, &check)?;

    let mut child = Child::spawn(pid)?;
    info!(pid, "process created");

    let pages_name = map.pages_file.clone();
    let rebuilt = std::thread::scope(|scope| {
        let verifier = scope.spawn(|| image.verify_data_file(&pages_name));
        let rebuilt = rebuild(&mut child, &process, &map, &files, pages.data_offset);
        let verified = verifier.join().unwrap_or_else(|_| {
            Err(stasis_image::ImageError::Invalid {
                path: image.dir().join(&pages_name),
                message: "page hash verification panicked".into(),
            })
        });
        rebuilt.and(verified.map_err(RestoreError::from))
    });
    rebuilt?;

    let pid = child.release()?;
    drop(files);
    info!(pid, "process restored and running");
    Ok(RestoreSummary {
        pid,
        vmas: map.vmas.len(),
        fds: table.fds.len(),
        pages_restored: map.pages.iter().map(|run| run.pages).sum(),
        total_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// Turns the stopped child into the saved process, stopping short of
/// letting it run.
fn rebuild(
    child: &mut Child,
    process: &Process,
    map: &MemoryMap,
    files: &OpenedFiles,
    pages_offset: u64,
) -> Result<(), RestoreError> {
    let pid = child.pid;
    let vdso = vdso_of(pid)?;
    let mut main = RemoteProcess::new(pid, vdso).step(pid, "preparing remote system calls")?;
    check_xstate_size(pid, process)?;

    let scratch = memory::prepare(&mut main, map, SCRATCH_LEN)?;
    // The exe link can only change while no mapping of the current exe
    // (stasis itself) exists, and the image may map the same file, so the
    // mm fields are set between emptying and refilling the address space.
    process::set_mm(&mut main, scratch, process, files)?;
    memory::map_and_fill(&mut main, map, files, pages_offset)?;
    process::set_fds(&mut main, files)?;
    process::set_process_state(&mut main, scratch, process)?;
    process::set_sigactions(&mut main, scratch, process)?;

    let vdso = vdso_of(pid)?;
    let others = threads::create(&mut main, scratch, process, vdso)?;
    child.threads = others.iter().map(RemoteProcess::pid).collect();
    let mut remotes = vec![main];
    remotes.extend(others);

    for (remote, thread) in remotes.iter_mut().zip(&process.threads) {
        process::set_thread_state(remote, scratch, thread)?;
    }
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
    Ok(())
}

/// Returns the (start, end) of the [vdso] mapping of `pid`.
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
