//! Saving the address space: mappings and the pages whose data exists
//! only in the process.
//!
//! A page is saved when it contains data that cannot be rebuilt: a present or
//! swapped page of a private mapping that is neither the shared zero page
//! nor still the mapped file's own page. Pages of private file mappings
//! that were written but still equal the file are compared and skipped.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use stasis_image::{
    DataWriter, ImageWriter, IpcNamespace, MemoryMap, PageRun, RecordKind, SharedMemory, Vma,
    VmaKind,
};
use stasis_linux::pagemap::{self, PageFilter, Pagemap};
use stasis_linux::proc::{MapBacking, Mapping};
use stasis_linux::{mem, LinuxError};

use crate::error::{DumpError, DumpStep};
use crate::{file_identity, PAGE_SIZE};

/// Bytes read from the target per process_vm_readv call; small enough to
/// stay in the CPU's L2 cache between the read and the write.
const CHUNK: usize = 512 * 1024;

/// Page counters of one dump.
#[derive(Debug, Default, Clone, Copy)]
pub struct PageCounts {
    pub stored: u64,
    pub skipped_file: u64,
    pub skipped_zero: u64,
}

/// Checks that every mapping can be saved and returns the image's VMA list.
/// `ipc` contains the System V objects of the tree's own IPC namespace, or is
/// None when the tree shares the IPC namespace of stasis.
pub fn describe(
    pid: i32,
    mappings: &[Mapping],
    ipc: Option<&IpcNamespace>,
    image: &mut ImageWriter,
    shared: &mut Vec<SharedMemory>,
) -> Result<Vec<Vma>, DumpError> {
    let mut vmas = Vec::with_capacity(mappings.len());
    for mapping in mappings {
        let kind = match &mapping.backing {
            MapBacking::Vsyscall => continue,
            MapBacking::Anonymous if mapping.shared => {
                return Err(unsupported(pid, mapping, "shared anonymous memory"))
            }
            MapBacking::Anonymous => VmaKind::Anonymous,
            MapBacking::Heap => VmaKind::Heap,
            MapBacking::Stack => VmaKind::Stack,
            MapBacking::Vdso => VmaKind::Vdso,
            MapBacking::Vvar => VmaKind::Vvar,
            MapBacking::VvarVclock => VmaKind::VvarVclock,
            MapBacking::SysvShm { .. } => {
                check_sysv_attachment(pid, mapping, ipc)?;
                VmaKind::SysvShm
            }
            MapBacking::File { path, deleted }
                if mapping.shared && (*deleted || is_shmem(path)) =>
            {
                save_shared_memory(pid, mapping, path, image, shared)?;
                VmaKind::SharedMemory
            }
            MapBacking::File { deleted: true, .. } => {
                return Err(unsupported(
                    pid,
                    mapping,
                    "a private mapping of a deleted file",
                ))
            }
            MapBacking::File { .. } => VmaKind::File,
            MapBacking::Other(name) => {
                return Err(unsupported(
                    pid,
                    mapping,
                    &format!("a special mapping {name}"),
                ))
            }
        };
        let file = match &mapping.backing {
            MapBacking::File { path, .. } => {
                let link = format!(
                    "/proc/{pid}/map_files/{:x}-{:x}",
                    mapping.start, mapping.end
                );
                let identity = file_identity(&path.to_string_lossy(), Path::new(&link))?;
                if identity.ino != mapping.inode {
                    return Err(unsupported(
                        pid,
                        mapping,
                        "a mapped file that was replaced on disk since it was mapped",
                    ));
                }
                Some(identity)
            }
            MapBacking::SysvShm { key } => {
                let link = format!(
                    "/proc/{pid}/map_files/{:x}-{:x}",
                    mapping.start, mapping.end
                );
                Some(file_identity(&format!("/SYSV{key:08x}"), Path::new(&link))?)
            }
            _ => None,
        };
        let mut prot = 0;
        if mapping.read {
            prot |= libc::PROT_READ as u32;
        }
        if mapping.write {
            prot |= libc::PROT_WRITE as u32;
        }
        if mapping.exec {
            prot |= libc::PROT_EXEC as u32;
        }
        vmas.push(Vma {
            start: mapping.start,
            end: mapping.end,
            prot,
            shared: mapping.shared,
            offset: mapping.offset,
            kind,
            file,
            vm_flags: mapping.vm_flags.clone(),
        });
    }
    Ok(vmas)
}

/// Checks that `mapping`, an attachment of a System V shared memory
/// segment, lies within a segment that `ipc` contains. It may cover only
/// part of it, after munmap or mprotect of part of an attachment. The kernel
/// names the segment's file after its key and gives it the segment ID as
/// inode number.
fn check_sysv_attachment(
    pid: i32,
    mapping: &Mapping,
    ipc: Option<&IpcNamespace>,
) -> Result<(), DumpError> {
    let id = mapping.inode;
    let Some(ipc) = ipc else {
        return Err(unsupported(
            pid,
            mapping,
            &format!(
                "System V shared memory segment {id} of the IPC namespace of stasis; \
                 run the tree in an IPC namespace of its own (unshare --ipc) to dump its segments"
            ),
        ));
    };
    let Some(segment) = ipc.shm.iter().find(|segment| segment.perms.id as u64 == id) else {
        return Err(unsupported(
            pid,
            mapping,
            &format!("System V shared memory segment {id}, which its IPC namespace does not list"),
        ));
    };
    let whole = segment.size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    if !mapping.shared || mapping.offset + mapping.len() > whole {
        return Err(unsupported(
            pid,
            mapping,
            &format!(
                "a mapping of System V shared memory segment {id} ({} bytes) \
                 that is private or extends past the segment",
                segment.size
            ),
        ));
    }
    Ok(())
}

/// Returns whether `path`, as /proc/PID/maps shows it, names a shared memory
/// object with no file on disk: a memfd, or shared anonymous memory, which
/// the kernel backs with an unlinked "/dev/zero" file.
fn is_shmem(path: &Path) -> bool {
    path.starts_with("/memfd:") || path == Path::new("/dev/zero")
}

/// Saves the contents of the shared memory object behind `mapping`, once
/// per object across the tree.
fn save_shared_memory(
    pid: i32,
    mapping: &Mapping,
    path: &Path,
    image: &mut ImageWriter,
    shared: &mut Vec<SharedMemory>,
) -> Result<(), DumpError> {
    if shared.iter().any(|object| object.inode == mapping.inode) {
        return Ok(());
    }
    let link = format!(
        "/proc/{pid}/map_files/{:x}-{:x}",
        mapping.start, mapping.end
    );
    let io = |source: std::io::Error| DumpError::Io {
        path: link.clone().into(),
        source,
    };
    let mut file = File::open(&link).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    // SAFETY: F_GET_SEALS on a valid fd; it fails with EINVAL for files
    // that are not memfds, which have no seals.
    let seals = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&file), libc::F_GET_SEALS) }
        .max(0) as u32;

    let contents = format!("shmem-{}", mapping.inode);
    let mut writer = image.data_writer(&contents, RecordKind::FileData)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
    }
    image.finish_data(writer)?;

    let text = path.to_string_lossy();
    let name = text
        .strip_prefix("/memfd:")
        .unwrap_or(text.trim_start_matches('/'))
        .to_owned();
    shared.push(SharedMemory {
        inode: mapping.inode,
        name,
        size,
        seals,
        contents,
    });
    Ok(())
}

fn unsupported(pid: i32, mapping: &Mapping, what: &str) -> DumpError {
    DumpError::Unsupported {
        pid,
        reason: format!(
            "mapping {:x}-{:x} is {what}, which stasis cannot save yet",
            mapping.start, mapping.end
        ),
    }
}

/// Returns whether the pages of `vma` are ever saved.
fn holds_private_pages(vma: &Vma) -> bool {
    !vma.shared
        && matches!(
            vma.kind,
            VmaKind::Anonymous | VmaKind::Heap | VmaKind::Stack | VmaKind::File
        )
}

/// Writes the private pages of every VMA into `pages` and returns the memory
/// map record.
pub fn write_pages(
    pid: i32,
    vmas: Vec<Vma>,
    pages: &mut DataWriter,
    pages_file: String,
    progress: &mut dyn FnMut(u64),
) -> Result<(MemoryMap, PageCounts), DumpError> {
    let pagemap = Pagemap::open(pid).step(pid, "opening /proc/PID/pagemap")?;
    let mut counts = PageCounts::default();
    let mut runs: Vec<PageRun> = Vec::new();
    let mut buf = vec![0u8; CHUNK];

    for vma in vmas.iter().filter(|vma| holds_private_pages(vma)) {
        let ranges = pagemap
            .scan(vma.start, vma.end, PageFilter::private_data())
            .step(pid, "scanning pagemap")?;
        let vma_pages = (vma.end - vma.start) / PAGE_SIZE;
        let data_pages = pagemap::ranges_len(&ranges) / PAGE_SIZE;

        let file = match (&vma.kind, &vma.file) {
            (VmaKind::File, Some(_)) => {
                let link = format!("/proc/{pid}/map_files/{:x}-{:x}", vma.start, vma.end);
                Some(File::open(&link).map_err(|source| DumpError::Io {
                    path: link.into(),
                    source,
                })?)
            }
            _ => None,
        };

        let mut stored_here = 0;
        for (start, end) in ranges {
            let mut addr = start;
            while addr < end {
                let len = ((end - addr) as usize).min(CHUNK);
                let chunk = &mut buf[..len];
                read_target(pid, vma, addr, chunk)?;
                stored_here += store_chunk(pid, vma, file.as_ref(), addr, chunk, pages, &mut runs)?;
                progress(len as u64);
                addr += len as u64;
            }
        }

        counts.stored += stored_here;
        if vma.kind == VmaKind::File {
            let cached = pagemap
                .scan(vma.start, vma.end, PageFilter::file_pages())
                .step(pid, "scanning pagemap")?;
            counts.skipped_file +=
                pagemap::ranges_len(&cached) / PAGE_SIZE + (data_pages - stored_here);
        } else {
            counts.skipped_zero += vma_pages - data_pages;
        }
    }

    let map = MemoryMap {
        pid,
        vmas,
        pages: runs,
        pages_file,
        shared_memory: Vec::new(),
    };
    Ok((map, counts))
}

/// Reads target memory, through /proc/PID/mem when the mapping's protection
/// does not allow process_vm_readv.
fn read_target(pid: i32, vma: &Vma, addr: u64, buf: &mut [u8]) -> Result<(), DumpError> {
    let readable = vma.prot & libc::PROT_READ as u32 != 0;
    let result = if readable {
        mem::read(pid, addr, buf)
    } else {
        mem::read_forced(pid, addr, buf)
    };
    result.map_err(|source: LinuxError| DumpError::Linux {
        pid,
        step: "reading process memory",
        source,
    })
}

/// Appends the pages of `chunk` that differ from the mapped file (all of
/// them for anonymous memory) and returns how many were stored.
fn store_chunk(
    pid: i32,
    vma: &Vma,
    file: Option<&File>,
    addr: u64,
    chunk: &[u8],
    pages: &mut DataWriter,
    runs: &mut Vec<PageRun>,
) -> Result<u64, DumpError> {
    let Some(file) = file else {
        let offset = pages.write(chunk)?;
        push_run(runs, addr, chunk.len() as u64 / PAGE_SIZE, offset);
        return Ok(chunk.len() as u64 / PAGE_SIZE);
    };

    let mut stored = 0;
    let mut file_page = vec![0u8; PAGE_SIZE as usize];
    for (index, page) in chunk.chunks_exact(PAGE_SIZE as usize).enumerate() {
        let page_addr = addr + index as u64 * PAGE_SIZE;
        let file_offset = vma.offset + (page_addr - vma.start);
        file_page.fill(0);
        read_file_page(file, file_offset, &mut file_page).map_err(|source| DumpError::Io {
            path: format!("/proc/{pid}/map_files/{:x}-{:x}", vma.start, vma.end).into(),
            source,
        })?;
        if page == file_page.as_slice() {
            continue;
        }
        let offset = pages.write(page)?;
        push_run(runs, page_addr, 1, offset);
        stored += 1;
    }
    Ok(stored)
}

/// Reads one page of a file; bytes past the end of the file stay zero, as
/// they read in a mapping.
fn read_file_page(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], offset + done as u64)?;
        if n == 0 {
            break;
        }
        done += n;
    }
    Ok(())
}

fn push_run(runs: &mut Vec<PageRun>, address: u64, pages: u64, offset: u64) {
    if let Some(last) = runs.last_mut() {
        if last.address + last.pages * PAGE_SIZE == address
            && last.offset + last.pages * PAGE_SIZE == offset
        {
            last.pages += pages;
            return;
        }
    }
    runs.push(PageRun {
        address,
        pages,
        offset,
    });
}
