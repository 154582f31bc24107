//! Rebuilding the address space inside the new process.
//!
//! The new process starts as a copy of stasis. Every mapping except the
//! kernel's special ones (`[vvar]`, `[vvar_vclock]`, `[vdso]`, `[vsyscall]`) is
//! unmapped; the special mappings are moved with mremap to the recorded
//! addresses; then each recorded VMA is mapped at its address and the
//! saved pages are written into it. One thread of stasis reads the pages
//! file a chunk at a time and checks each chunk against its hash. Another
//! copies the checked chunks into the process with process_vm_writev. So
//! no byte reaches the process before it is checked, and the file is read
//! once.

use std::sync::mpsc;

use stasis_image::{DataReader, MemoryMap, Vma, VmaKind};
use stasis_linux::proc::{self, MapBacking, Mapping};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, ptrace};
use tracing::debug;

use crate::error::{RestoreError, RestoreStep};
use crate::restore::files::OpenedFiles;
use crate::PAGE_SIZE;

const RSEQ_FLAG_UNREGISTER: u64 = 1;
/// Chunks read ahead of the copy into the process. Two keep the reading
/// thread busy while the other copies.
const CHUNKS_AHEAD: usize = 2;
/// Top of the x86-64 user address space with 4-level page tables.
const TASK_SIZE: u64 = 0x7fff_ffff_f000;

/// Names of VmFlags that madvise(2) sets, with the advice that sets them.
const ADVICE: [(&str, i32); 8] = [
    ("dd", libc::MADV_DONTDUMP),
    ("dc", libc::MADV_DONTFORK),
    ("wf", libc::MADV_WIPEONFORK),
    ("hg", libc::MADV_HUGEPAGE),
    ("nh", libc::MADV_NOHUGEPAGE),
    ("mg", libc::MADV_MERGEABLE),
    ("sr", libc::MADV_SEQUENTIAL),
    ("rr", libc::MADV_RANDOM),
];

fn special_kind(mapping: &Mapping) -> Option<VmaKind> {
    match mapping.backing {
        MapBacking::Vvar => Some(VmaKind::Vvar),
        MapBacking::VvarVclock => Some(VmaKind::VvarVclock),
        MapBacking::Vdso => Some(VmaKind::Vdso),
        _ => None,
    }
}

fn is_special(kind: VmaKind) -> bool {
    matches!(kind, VmaKind::Vvar | VmaKind::VvarVclock | VmaKind::Vdso)
}

/// Empties the new process down to its special mappings and moves those to
/// the recorded addresses. Returns the address of a free scratch area of
/// `scratch_len` bytes, mapped read-write.
pub fn prepare(
    remote: &mut RemoteProcess,
    map: &MemoryMap,
    scratch_len: u64,
) -> Result<u64, RestoreError> {
    let pid = remote.pid();
    let current = proc::mappings(pid).step(pid, "reading the new process's mappings")?;

    if let Some(config) =
        ptrace::rseq_configuration(pid).step(pid, "reading the rseq registration")?
    {
        remote
            .syscall(
                "rseq",
                libc::SYS_rseq,
                [
                    config.address,
                    config.size as u64,
                    RSEQ_FLAG_UNREGISTER,
                    config.signature as u64,
                    0,
                    0,
                ],
            )
            .step(pid, "unregistering the inherited rseq area")?;
    }

    // Unmap everything around the special mappings: munmap accepts ranges
    // with holes, so a few calls cover the whole address space.
    let mut keep: Vec<(u64, u64)> = current
        .iter()
        .filter(|m| special_kind(m).is_some())
        .map(|m| (m.start, m.end))
        .collect();
    keep.sort_unstable();
    let mut cursor = 0;
    for (start, end) in keep.into_iter().chain([(TASK_SIZE, TASK_SIZE)]) {
        if start > cursor {
            remote
                .munmap(cursor, start - cursor)
                .step(pid, format!("unmapping {cursor:x}-{start:x}"))?;
        }
        cursor = cursor.max(end);
    }

    move_special_mappings(remote, &current, map)?;

    let scratch = free_area(map, &[], scratch_len)?;
    remote
        .mmap_anonymous(scratch, scratch_len)
        .step(pid, "mapping the scratch area")?;
    Ok(scratch)
}

/// Moves `[vvar]`, `[vvar_vclock]` and `[vdso]` to the addresses in the image,
/// through a free area so that no move overlaps another mapping.
fn move_special_mappings(
    remote: &mut RemoteProcess,
    current: &[Mapping],
    map: &MemoryMap,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let mut moves = Vec::new();
    for mapping in current {
        let Some(kind) = special_kind(mapping) else {
            continue;
        };
        let target = map.vmas.iter().find(|vma| vma.kind == kind).ok_or_else(|| RestoreError::Incompatible {
            reason: format!("this kernel has a {kind:?} mapping that the image does not record; restore on a machine with the dump host's kernel"),
        })?;
        if target.end - target.start != mapping.len() {
            return Err(RestoreError::Incompatible {
                reason: format!(
                    "the {kind:?} mapping is {} bytes here but {} bytes in the image; restore on a machine with the dump host's kernel",
                    mapping.len(),
                    target.end - target.start
                ),
            });
        }
        moves.push((mapping.start, mapping.len(), target.start, kind));
    }
    for vma in map.vmas.iter().filter(|vma| is_special(vma.kind)) {
        if !moves.iter().any(|m| m.3 == vma.kind) {
            return Err(RestoreError::Incompatible {
                reason: format!(
                    "the image has a {:?} mapping that this kernel does not provide",
                    vma.kind
                ),
            });
        }
    }
    if moves.iter().all(|(from, _, to, _)| from == to) {
        return Ok(());
    }

    let lowest = moves.iter().map(|m| m.0).min().unwrap_or(0);
    let span = moves.iter().map(|m| m.0 + m.1).max().unwrap_or(0) - lowest;
    let occupied: Vec<(u64, u64)> = moves.iter().map(|m| (m.0, m.0 + m.1)).collect();
    let temporary = free_area(map, &occupied, span)?;

    for step in 0..2 {
        for &(from, len, to, kind) in &moves {
            let (source, destination) = if step == 0 {
                (from, temporary + (from - lowest))
            } else {
                (temporary + (from - lowest), to)
            };
            remote
                .syscall(
                    "mremap",
                    libc::SYS_mremap,
                    [
                        source,
                        len,
                        len,
                        (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                        destination,
                        0,
                    ],
                )
                .step(pid, format!("moving {kind:?} to {destination:x}"))?;
            if kind == VmaKind::Vdso {
                remote.relocate_gadget(source, destination);
            }
        }
    }
    debug!(pid, "special mappings moved");
    Ok(())
}

/// Finds `len` bytes of address space that no recorded VMA and none of
/// `occupied` overlap.
fn free_area(map: &MemoryMap, occupied: &[(u64, u64)], len: u64) -> Result<u64, RestoreError> {
    let mut taken: Vec<(u64, u64)> = map.vmas.iter().map(|vma| (vma.start, vma.end)).collect();
    taken.extend_from_slice(occupied);
    taken.sort_unstable();
    // Start high, well clear of where programs and their heaps live.
    let mut candidate: u64 = 0x1000_0000_0000;
    while candidate + len < TASK_SIZE {
        let end = candidate + len;
        match taken
            .iter()
            .find(|(start, stop)| *start < end && candidate < *stop)
        {
            None => return Ok(candidate),
            Some(&(_, stop)) => candidate = (stop + 0xffff_ffff) & !0xffff_ffff,
        }
    }
    Err(RestoreError::Incompatible {
        reason: "no free address range is left for the restore's scratch area".into(),
    })
}

/// Maps every recorded VMA and fills in the saved pages.
pub fn map_and_fill(
    remote: &mut RemoteProcess,
    map: &MemoryMap,
    files: &OpenedFiles,
    pages: &DataReader,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let mut filled = vec![false; map.vmas.len()];
    for run in &map.pages {
        if let Some(index) = map
            .vmas
            .iter()
            .position(|vma| vma.start <= run.address && run.address < vma.end)
        {
            filled[index] = true;
        }
    }

    for (vma, &fill) in map.vmas.iter().zip(&filled) {
        if is_special(vma.kind) {
            continue;
        }
        map_vma(remote, map, vma, files, fill)?;
    }

    fill_pages(pid, map, pages)?;

    for (vma, &fill) in map.vmas.iter().zip(&filled) {
        if fill && vma.prot & libc::PROT_WRITE as u32 == 0 {
            remote
                .syscall(
                    "mprotect",
                    libc::SYS_mprotect,
                    [vma.start, vma.end - vma.start, vma.prot as u64, 0, 0, 0],
                )
                .step(pid, format!("protecting {:x}-{:x}", vma.start, vma.end))?;
        }
    }
    Ok(())
}

/// The part of one chunk of the pages file that goes to one address.
struct Piece {
    address: u64,
    /// Offset of the first byte in the chunk.
    from: usize,
    len: usize,
}

/// Splits the page runs of `map` into the chunks of `chunk_size` bytes of
/// the pages file that they come from, in file order. A chunk that two
/// runs share shows up once with both pieces.
fn pieces_by_chunk(map: &MemoryMap, chunk_size: u64) -> Vec<(u64, Vec<Piece>)> {
    let mut runs: Vec<_> = map.pages.iter().collect();
    runs.sort_by_key(|run| run.offset);
    let mut chunks: Vec<(u64, Vec<Piece>)> = Vec::new();
    for run in runs {
        let end = run.offset + run.pages * PAGE_SIZE;
        let mut offset = run.offset;
        while offset < end {
            let chunk = offset / chunk_size;
            let stop = end.min((chunk + 1) * chunk_size);
            let piece = Piece {
                address: run.address + (offset - run.offset),
                from: (offset - chunk * chunk_size) as usize,
                len: (stop - offset) as usize,
            };
            match chunks.last_mut() {
                Some((last, pieces)) if *last == chunk => pieces.push(piece),
                _ => chunks.push((chunk, vec![piece])),
            }
            offset = stop;
        }
    }
    chunks
}

/// Copies the saved pages into process `pid`, whose VMAs are mapped and
/// writable. A reading thread reads and checks each chunk of the pages
/// file while this thread copies the one before it. A chunk that fails its
/// check stops the restore before any of it reaches the process.
fn fill_pages(pid: i32, map: &MemoryMap, pages: &DataReader) -> Result<(), RestoreError> {
    let chunks = pieces_by_chunk(map, pages.chunk_size());
    if chunks.is_empty() {
        return Ok(());
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(CHUNKS_AHEAD);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..=CHUNKS_AHEAD {
        let _ = empty_tx.send(Vec::with_capacity(
            stasis_image::chunks::CHUNK_SIZE as usize,
        ));
    }
    std::thread::scope(|scope| {
        let chunk_list = &chunks;
        let reader = scope.spawn(move || -> Result<(), RestoreError> {
            for (position, (index, _)) in chunk_list.iter().enumerate() {
                // The copying side hung up: it failed and reports why.
                let Ok(mut buffer) = empty_rx.recv() else {
                    return Ok(());
                };
                pages.read_chunk(*index, &mut buffer)?;
                if full_tx.send((position, buffer)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        });

        let mut copied = Ok(());
        for (position, buffer) in full_rx.iter() {
            let (_, pieces) = &chunks[position];
            copied = copy_pieces(pid, pieces, &buffer, pages);
            if copied.is_err() {
                break;
            }
            let _ = empty_tx.send(buffer);
        }
        // Ends the reading thread if it still waits for a buffer.
        drop(empty_tx);
        drop(full_rx);
        let read = reader.join().unwrap_or_else(|_| {
            Err(RestoreError::Unsupported {
                reason: "the thread reading the pages file panicked".into(),
            })
        });
        read.and(copied)
    })
}

fn copy_pieces(
    pid: i32,
    pieces: &[Piece],
    chunk: &[u8],
    pages: &DataReader,
) -> Result<(), RestoreError> {
    for piece in pieces {
        let Some(data) = chunk.get(piece.from..piece.from + piece.len) else {
            return Err(RestoreError::Unsupported {
                reason: format!(
                    "a page run for {:x} reaches past the end of {}",
                    piece.address,
                    pages.path().display()
                ),
            });
        };
        mem::write(pid, piece.address, data)
            .step(pid, format!("writing pages at {:x}", piece.address))?;
    }
    Ok(())
}

/// Attaches the System V segment that `vma` maps at its address, as the
/// process did with shmat, then applies the recorded protection. The
/// segment exists already, with its saved ID, in the process's IPC
/// namespace.
///
/// munmap or mprotect of part of an attachment leaves a VMA that covers
/// only part of the segment. Such a VMA is made by attaching the whole
/// segment in a free range and moving the part to its address with
/// mremap, which keeps the file offset. The rest of that attachment is
/// then unmapped. shmdt
/// finds such a VMA by its address minus its offset, as before the dump.
fn attach_sysv_shm(
    remote: &mut RemoteProcess,
    map: &MemoryMap,
    vma: &Vma,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let id = vma.file.as_ref().map(|file| file.ino).unwrap_or(u64::MAX);
    let segment_len = vma.file.as_ref().map(|file| file.size).unwrap_or(0);
    let whole = segment_len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let len = vma.end - vma.start;
    let partial = vma.offset != 0 || len != whole;
    let has = |name: &str| vma.vm_flags.iter().any(|flag| flag == name);

    // The segment was attached read-only unless the mapping may be made
    // writable ("mw"); its current protection may be narrower, after
    // mprotect.
    let mut flags = 0;
    if !has("mw") {
        flags |= stasis_linux::sysv::SHM_RDONLY;
    }
    if vma.prot & libc::PROT_EXEC as u32 != 0 {
        flags |= stasis_linux::sysv::SHM_EXEC;
    }

    let address = if partial {
        // Clear of every recorded VMA and of what the process maps now,
        // such as the scratch area.
        let current: Vec<(u64, u64)> = proc::mappings(pid)
            .step(pid, "reading the new process's mappings")?
            .iter()
            .map(|mapping| (mapping.start, mapping.end))
            .collect();
        free_area(map, &current, whole)?
    } else {
        vma.start
    };
    let got = remote
        .syscall(
            "shmat",
            libc::SYS_shmat,
            [id, address, flags as u64, 0, 0, 0],
        )
        .step(
            pid,
            format!("attaching System V segment {id} at {address:x}"),
        )?;
    if got != address {
        return Err(RestoreError::Unsupported {
            reason: format!("shmat placed segment {id} at {got:x}, not {address:x}"),
        });
    }
    if partial {
        remote
            .syscall(
                "mremap",
                libc::SYS_mremap,
                [
                    address + vma.offset,
                    len,
                    len,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    vma.start,
                    0,
                ],
            )
            .step(
                pid,
                format!("moving part of System V segment {id} to {:x}", vma.start),
            )?;
        remote
            .munmap(address, whole)
            .step(pid, format!("unmapping the rest of System V segment {id}"))?;
    }

    let mut attached = libc::PROT_READ as u32;
    if flags & stasis_linux::sysv::SHM_RDONLY == 0 {
        attached |= libc::PROT_WRITE as u32;
    }
    if flags & stasis_linux::sysv::SHM_EXEC != 0 {
        attached |= libc::PROT_EXEC as u32;
    }
    if attached != vma.prot {
        remote
            .syscall(
                "mprotect",
                libc::SYS_mprotect,
                [vma.start, vma.end - vma.start, vma.prot as u64, 0, 0, 0],
            )
            .step(pid, format!("protecting {:x}-{:x}", vma.start, vma.end))?;
    }
    Ok(())
}

fn map_vma(
    remote: &mut RemoteProcess,
    map: &MemoryMap,
    vma: &Vma,
    files: &OpenedFiles,
    fill: bool,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    if vma.kind == VmaKind::SysvShm {
        attach_sysv_shm(remote, map, vma)?;
        return apply_advice(remote, vma);
    }
    let mut prot = vma.prot as u64;
    if fill {
        prot |= libc::PROT_WRITE as u64;
    }
    let mut flags = libc::MAP_FIXED
        | if vma.shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    let has = |name: &str| vma.vm_flags.iter().any(|flag| flag == name);
    if has("gd") {
        flags |= libc::MAP_GROWSDOWN;
    }
    if has("nr") {
        flags |= libc::MAP_NORESERVE;
    }
    let (fd, offset) = match vma.kind {
        VmaKind::File | VmaKind::SharedMemory => {
            let fd = files.mappings.get(&vma.start).copied().ok_or_else(|| {
                RestoreError::Unsupported {
                    reason: format!("no file was opened for the mapping at {:x}", vma.start),
                }
            })?;
            (fd as u64, vma.offset)
        }
        _ => {
            flags |= libc::MAP_ANONYMOUS;
            (u64::MAX, 0)
        }
    };
    let got = remote
        .syscall(
            "mmap",
            libc::SYS_mmap,
            [
                vma.start,
                vma.end - vma.start,
                prot,
                flags as u64,
                fd,
                offset,
            ],
        )
        .step(pid, format!("mapping {:x}-{:x}", vma.start, vma.end))?;
    if got != vma.start {
        return Err(RestoreError::Unsupported {
            reason: format!("mmap placed {:x}-{:x} at {got:x}", vma.start, vma.end),
        });
    }
    apply_advice(remote, vma)
}

/// Applies the madvise flags that the VMA had, such as MADV_DONTDUMP.
fn apply_advice(remote: &mut RemoteProcess, vma: &Vma) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let has = |name: &str| vma.vm_flags.iter().any(|flag| flag == name);
    for (name, advice) in ADVICE {
        if has(name) {
            remote
                .syscall(
                    "madvise",
                    libc::SYS_madvise,
                    [vma.start, vma.end - vma.start, advice as u64, 0, 0, 0],
                )
                .step(
                    pid,
                    format!("applying madvise flag {name} to {:x}", vma.start),
                )?;
        }
    }
    Ok(())
}
