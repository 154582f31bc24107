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
    let image = Image::open(&options.dir)?;
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
    if process.threads.len() != 1 {
        return Err(RestoreError::Incompatible {
            reason: format!(
                "the image has {} threads; this stasis restores single-threaded processes",
                process.threads.len()
            ),
        });
    }

    let check = FileCheck {
        skip_checks: options.skip_file_checks,
    };
    let files = OpenedFiles::open(&image, &process, &map, &table, &check)?;

    let child = Child::spawn(pid)?;
    info!(pid, "process created");

    let pages_name = map.pages_file.clone();
    let rebuilt = std::thread::scope(|scope| {
        let verifier = scope.spawn(|| image.verify_data_file(&pages_name));
        let rebuilt = rebuild(&child, &process, &map, &files, pages.data_offset);
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
    child: &Child,
    process: &Process,
    map: &MemoryMap,
    files: &OpenedFiles,
    pages_offset: u64,
) -> Result<(), RestoreError> {
    let pid = child.pid;
    let vdso = proc::mappings(pid)
        .step(pid, "reading the new process's mappings")?
        .into_iter()
        .find(|m| m.backing == MapBacking::Vdso)
        .map(|m| (m.start, m.end))
        .ok_or_else(|| RestoreError::Incompatible {
            reason: "this kernel gives processes no [vdso], which stasis needs to run system calls in them".into(),
        })?;
    let mut remote = RemoteProcess::new(pid, vdso).step(pid, "preparing remote system calls")?;
    let thread = &process.threads[0];

    let xstate_here = ptrace::get_xstate(pid).step(pid, "reading the XSAVE registers")?;
    if xstate_here.len() != thread.xstate.0.len() {
        return Err(RestoreError::Incompatible {
            reason: format!(
                "the XSAVE area is {} bytes on this CPU but {} bytes in the image; restore on a CPU with the same register set",
                xstate_here.len(),
                thread.xstate.0.len()
            ),
        });
    }

    let scratch = memory::prepare(&mut remote, map, SCRATCH_LEN)?;
    // The exe link can only change while no mapping of the current exe
    // (stasis itself) exists, and the image may map the same file, so the
    // mm fields are set between emptying and refilling the address space.
    process::set_mm(&mut remote, scratch, process, files)?;
    memory::map_and_fill(&mut remote, map, files, pages_offset)?;
    process::set_fds(&mut remote, files)?;
    process::set_process_state(&mut remote, scratch, process)?;
    process::set_thread_state(&mut remote, scratch, thread)?;
    process::set_sigactions(&mut remote, scratch, process)?;
    process::set_credentials(&mut remote, scratch, process)?;
    process::queue_signals(&mut remote, scratch, process)?;
    remote
        .munmap(scratch, SCRATCH_LEN)
        .step(pid, "unmapping the scratch area")?;

    ptrace::set_sigmask(pid, thread.sigmask).step(pid, "setting the signal mask")?;
    remote.set_saved_regs(crate::regs::to_user(&thread.regs));
    remote.park().step(pid, "setting the registers")?;
    ptrace::set_xstate(pid, &thread.xstate.0).step(pid, "setting the XSAVE registers")?;
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
