//! Semantic checks on decoded records: values that no dump writes and that
//! a restore must not act on, such as overlapping memory areas or page runs
//! that point past the end of their pages file.
//!
//! [`Image::read_record`](crate::Image::read_record) runs the checks that
//! need only the record itself. Checks that need another file, such as
//! [`validate_memory_map`] with the length of the pages file, are run by
//! [`Image::read_memory_map`](crate::Image::read_memory_map) and
//! [`Image::verify_all`](crate::Image::verify_all), or by the caller.

use std::collections::HashSet;
use std::path::Path;

use crate::error::ImageError;
use crate::format::{check_file_name, FORMAT_VERSION, HEADER_SIZE, PAGE_SIZE};
use crate::records::{
    FdTable, IpcNamespace, IpcPerms, Manifest, MemoryMap, PageRun, Process, RecordKind, Vma,
    VmaKind,
};

/// Size of a raw `siginfo_t` on Linux, in bytes.
pub const SIGINFO_SIZE: usize = 128;

const SIGKILL: u32 = 9;
const SIGSTOP: u32 = 19;
const MAX_SIGNAL: u32 = 64;
const PROT_MASK: u32 = 0x7;

/// Checks a manifest's own fields: format version, process list and file
/// list (names, duplicates, kinds, hash syntax, minimum sizes). Whether the
/// listed files exist is checked by [`Image::open`](crate::Image::open).
pub fn validate_manifest(manifest: &Manifest, path: &Path) -> Result<(), ImageError> {
    if manifest.format_version == 0 || manifest.format_version > FORMAT_VERSION {
        return Err(ImageError::invalid(
            path,
            format!(
                "manifest field format_version is {}, expected 1 to {FORMAT_VERSION}",
                manifest.format_version
            ),
        ));
    }

    if let Some(encryption) = &manifest.encryption {
        validate_encryption(encryption, path)?;
    }

    if manifest.processes.is_empty() {
        return Err(ImageError::invalid(path, "the manifest lists no processes"));
    }
    let mut pids = HashSet::new();
    for &pid in &manifest.processes {
        if pid <= 0 {
            return Err(ImageError::invalid(
                path,
                format!("invalid PID {pid} in the process list"),
            ));
        }
        if !pids.insert(pid) {
            return Err(ImageError::invalid(
                path,
                format!("PID {pid} is listed twice"),
            ));
        }
    }
    if !pids.contains(&manifest.root_pid) {
        return Err(ImageError::invalid(
            path,
            format!("root PID {} is not in the process list", manifest.root_pid),
        ));
    }

    let mut names = HashSet::new();
    for entry in &manifest.files {
        check_file_name(&entry.name, path)?;
        if entry.name == crate::format::MANIFEST_NAME
            || entry.name == crate::format::MANIFEST_TEMP_NAME
        {
            return Err(ImageError::invalid(
                path,
                format!("the manifest lists the reserved name {:?}", entry.name),
            ));
        }
        if !names.insert(entry.name.as_str()) {
            return Err(ImageError::invalid(
                path,
                format!("file {:?} is listed twice", entry.name),
            ));
        }
        if entry.kind == RecordKind::Manifest {
            return Err(ImageError::invalid(
                path,
                format!("file {:?} is listed with kind manifest", entry.name),
            ));
        }
        if entry.blake3.len() != 64
            || !entry
                .blake3
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(ImageError::invalid(
                path,
                format!(
                    "hash of file {:?} is not 64 lowercase hex digits: {:?}",
                    entry.name, entry.blake3
                ),
            ));
        }
        check_listed_size(
            entry.kind,
            entry.size,
            &entry.name,
            manifest.encryption.is_some(),
            path,
        )?;
    }
    Ok(())
}

/// Checks the encryption entry of a manifest: a known cipher, a salt of
/// 64 hex digits and a key ID of 16.
fn validate_encryption(encryption: &crate::Encryption, path: &Path) -> Result<(), ImageError> {
    if encryption.cipher != crate::crypto::CIPHER_NAME {
        return Err(ImageError::invalid(
            path,
            format!(
                "manifest field encryption.cipher is {:?}, but this stasis reads only {:?}",
                encryption.cipher,
                crate::crypto::CIPHER_NAME
            ),
        ));
    }
    if crate::crypto::parse_salt(&encryption.salt).is_none() {
        return Err(ImageError::invalid(
            path,
            "manifest field encryption.salt is not 64 hex digits",
        ));
    }
    let id = &encryption.key_id;
    if id.len() != 16 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ImageError::invalid(
            path,
            "manifest field encryption.key_id is not 16 hex digits",
        ));
    }
    Ok(())
}

/// Checks that a file of kind `kind` can have `size` bytes at all.
fn check_listed_size(
    kind: RecordKind,
    size: u64,
    name: &str,
    encrypted: bool,
    path: &Path,
) -> Result<(), ImageError> {
    // The plain length of the data, which for a pages file is whole pages.
    let plain = crate::chunks::data_len_for_file_size(size).and_then(|stored| {
        if encrypted {
            crate::crypto::plain_len(stored)
        } else {
            Some(stored)
        }
    });
    let problem = match kind {
        RecordKind::Pages if !plain.is_some_and(|len| len % PAGE_SIZE == 0) => {
            Some("a pages file is 4096 bytes, plus a multiple of 4096, plus its chunk hashes")
        }
        RecordKind::FileData if plain.is_none() => {
            Some("a file data file is 4096 bytes, plus its data, plus its chunk hashes")
        }
        RecordKind::Process
        | RecordKind::MemoryMap
        | RecordKind::FdTable
        | RecordKind::IpcNamespace
            if size < HEADER_SIZE =>
        {
            Some("a record file is at least 32 bytes")
        }
        _ => None,
    };
    match problem {
        Some(problem) => Err(ImageError::invalid(
            path,
            format!("file {name:?} is listed with size {size}, but {problem}"),
        )),
        None => Ok(()),
    }
}

/// Checks a process record: PID, threads, signal dispositions, pending
/// signals, interval timers and resource limits.
pub fn validate_process(process: &Process, path: &Path) -> Result<(), ImageError> {
    if process.pid <= 0 {
        return Err(ImageError::invalid(
            path,
            format!("invalid PID {}", process.pid),
        ));
    }

    if process.threads.is_empty() && process.zombie_exit_status.is_none() {
        return Err(ImageError::invalid(path, "the process has no threads"));
    }
    for (field, shared_with) in [
        ("files_shared_with", process.files_shared_with),
        ("fs_shared_with", process.fs_shared_with),
    ] {
        let Some(owner) = shared_with else { continue };
        if owner <= 0 || owner == process.pid {
            return Err(ImageError::invalid(
                path,
                format!(
                    "invalid {field} {owner}: expected the PID of another process of the image"
                ),
            ));
        }
        if process.zombie_exit_status.is_some() {
            return Err(ImageError::invalid(
                path,
                format!("{field} is set on a zombie, which has no fd table or fs state"),
            ));
        }
    }
    let mut tids = HashSet::new();
    for thread in &process.threads {
        if thread.tid <= 0 {
            return Err(ImageError::invalid(
                path,
                format!("invalid thread ID {}", thread.tid),
            ));
        }
        if !tids.insert(thread.tid) {
            return Err(ImageError::invalid(
                path,
                format!("thread {} is listed twice", thread.tid),
            ));
        }
        check_siginfos(&thread.pending, path, &format!("thread {}", thread.tid))?;
    }
    check_siginfos(&process.shared_pending, path, "the shared queue")?;

    let mut signals = HashSet::new();
    for action in &process.sigactions {
        let signo = action.signo;
        if signo == 0 || signo > MAX_SIGNAL || signo == SIGKILL || signo == SIGSTOP {
            return Err(ImageError::invalid(
                path,
                format!("signal action for invalid signal {signo}"),
            ));
        }
        if !signals.insert(signo) {
            return Err(ImageError::invalid(
                path,
                format!("signal {signo} has two actions"),
            ));
        }
    }

    if process.itimers.len() > 3 {
        return Err(ImageError::invalid(
            path,
            format!(
                "{} interval timers, expected at most 3",
                process.itimers.len()
            ),
        ));
    }

    let mut resources = HashSet::new();
    for limit in &process.rlimits {
        if !resources.insert(limit.resource) {
            return Err(ImageError::invalid(
                path,
                format!("resource limit {} is listed twice", limit.resource),
            ));
        }
        if limit.soft > limit.hard {
            return Err(ImageError::invalid(
                path,
                format!(
                    "resource limit {} has soft limit {} above hard limit {}",
                    limit.resource, limit.soft, limit.hard
                ),
            ));
        }
    }
    Ok(())
}

fn check_siginfos(
    siginfos: &[crate::bytes::Bytes],
    path: &Path,
    owner: &str,
) -> Result<(), ImageError> {
    for siginfo in siginfos {
        if siginfo.0.len() != SIGINFO_SIZE {
            return Err(ImageError::invalid(
                path,
                format!(
                    "pending signal of {owner} is {} bytes, expected a {SIGINFO_SIZE}-byte siginfo_t",
                    siginfo.0.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks an fd table: PID, descriptor numbers unique and not negative,
/// and the names of file data files valid.
pub fn validate_fd_table(table: &FdTable, path: &Path) -> Result<(), ImageError> {
    if table.pid <= 0 {
        return Err(ImageError::invalid(
            path,
            format!("invalid PID {}", table.pid),
        ));
    }
    let mut numbers = HashSet::new();
    for fd in &table.fds {
        if fd.fd < 0 {
            return Err(ImageError::invalid(
                path,
                format!("invalid file descriptor {}", fd.fd),
            ));
        }
        if !numbers.insert(fd.fd) {
            return Err(ImageError::invalid(
                path,
                format!("file descriptor {} is listed twice", fd.fd),
            ));
        }
        if let Some(name) = fd.file.data_file() {
            check_file_name(name, path)?;
        }
        if let crate::records::OpenFile::Socket(socket) = &fd.file {
            check_socket(fd.fd, socket, path)?;
        }
    }
    Ok(())
}

/// Checks that only a listening Unix socket has pending connections, only
/// a datagram socket with saved datagrams has senders, and that an
/// accepted socket is a connected, named Unix stream or seqpacket
/// socket, the only kind that accept(2) returns.
fn check_socket(
    fd: i32,
    socket: &crate::records::SocketRecord,
    path: &Path,
) -> Result<(), ImageError> {
    // AF_UNIX, SOCK_STREAM and SOCK_SEQPACKET as Linux numbers them.
    const AF_UNIX: i32 = 1;
    const SOCK_STREAM: i32 = 1;
    const SOCK_SEQPACKET: i32 = 5;
    if !socket.pending.is_empty() && (socket.family != AF_UNIX || socket.backlog.is_none()) {
        return Err(ImageError::invalid(
            path,
            format!("fd {fd} lists pending connections but is not a listening Unix socket"),
        ));
    }
    const SOCK_DGRAM: i32 = 2;
    if !socket.senders.is_empty() && (socket.socket_type != SOCK_DGRAM || socket.queued.is_none()) {
        return Err(ImageError::invalid(
            path,
            format!("fd {fd} lists datagram senders but has no saved datagrams"),
        ));
    }
    if !socket.accepted {
        return Ok(());
    }
    let connection_type = [SOCK_STREAM, SOCK_SEQPACKET].contains(&socket.socket_type);
    if socket.family != AF_UNIX
        || !connection_type
        || socket.peer.is_none()
        || socket.address.0.len() <= 2
        || socket.backlog.is_some()
    {
        return Err(ImageError::invalid(
            path,
            format!(
                "fd {fd} is marked accepted but is not a connected, named Unix stream or seqpacket socket"
            ),
        ));
    }
    Ok(())
}

/// Checks a memory map against the data length of its pages file, in
/// bytes: everything [`validate_memory_map_layout`] checks, and that every
/// page run lies within the first `pages_len` bytes of page data.
pub fn validate_memory_map(map: &MemoryMap, pages_len: u64, path: &Path) -> Result<(), ImageError> {
    validate_memory_map_layout(map, path)?;
    for run in &map.pages {
        // The layout check has ruled out overflow here.
        let end = run.offset + run.pages * PAGE_SIZE;
        if end > pages_len {
            return Err(ImageError::invalid(
                path,
                format!(
                    "page run at {:#x} covers bytes {}..{end} of the pages data, \
                     but {:?} has only {pages_len} bytes",
                    run.address, run.offset, map.pages_file
                ),
            ));
        }
    }
    Ok(())
}

/// Checks a memory map on its own:
/// - the PID is positive and the pages file name is valid (it may be empty
///   only when there are no page runs);
/// - every VMA has start < end, page-aligned bounds and file offset, only
///   PROT_READ, PROT_WRITE and PROT_EXEC bits, and a file if its kind is
///   `File`; a `SysvShm` VMA has a file (the segment ID) and is shared;
///   VMAs are sorted by address and do not overlap;
/// - every page run has at least one page, a page-aligned address and
///   offset, and no address or offset overflow;
/// - runs are sorted by address, do not overlap, and lie inside the VMAs.
pub fn validate_memory_map_layout(map: &MemoryMap, path: &Path) -> Result<(), ImageError> {
    if map.pid <= 0 {
        return Err(ImageError::invalid(
            path,
            format!("invalid PID {}", map.pid),
        ));
    }
    for object in &map.shared_memory {
        check_file_name(&object.contents, path)?;
    }
    if !(map.pages.is_empty() && map.pages_file.is_empty()) {
        check_file_name(&map.pages_file, path)?;
    }

    let mut previous_end = 0;
    for vma in &map.vmas {
        check_vma(vma, path)?;
        if vma.start < previous_end {
            return Err(ImageError::invalid(
                path,
                format!(
                    "VMA {:#x}-{:#x} overlaps the previous VMA or is out of order",
                    vma.start, vma.end
                ),
            ));
        }
        previous_end = vma.end;
    }

    let mut previous_end = 0;
    let mut vma_index = 0;
    for run in &map.pages {
        let end = check_page_run(run, path)?;
        if run.address < previous_end {
            return Err(ImageError::invalid(
                path,
                format!(
                    "page run at {:#x} overlaps the previous run or is out of order",
                    run.address
                ),
            ));
        }
        previous_end = end;
        vma_index = check_run_mapped(run.address, end, &map.vmas, vma_index, path)?;
    }
    Ok(())
}

fn check_vma(vma: &Vma, path: &Path) -> Result<(), ImageError> {
    let range = format!("VMA {:#x}-{:#x}", vma.start, vma.end);
    let problem = if vma.start >= vma.end {
        Some("does not end after its start")
    } else if vma.start % PAGE_SIZE != 0 || vma.end % PAGE_SIZE != 0 {
        Some("is not page-aligned")
    } else if vma.offset % PAGE_SIZE != 0 {
        Some("has a file offset that is not page-aligned")
    } else if vma.prot & !PROT_MASK != 0 {
        Some("has protection bits other than PROT_READ, PROT_WRITE and PROT_EXEC")
    } else if vma.kind == VmaKind::File && vma.file.is_none() {
        Some("is a file mapping without a file")
    } else if vma.kind == VmaKind::SysvShm && (vma.file.is_none() || !vma.shared) {
        Some("is a SysV shared memory attachment without a segment ID or not shared")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ImageError::invalid(path, format!("{range} {problem}"))),
        None => Ok(()),
    }
}

/// Checks one run on its own and returns the address just past its end.
fn check_page_run(run: &PageRun, path: &Path) -> Result<u64, ImageError> {
    let invalid = |problem: &str| {
        ImageError::invalid(path, format!("page run at {:#x} {problem}", run.address))
    };
    if run.pages == 0 {
        return Err(invalid("has no pages"));
    }
    if run.address % PAGE_SIZE != 0 {
        return Err(invalid("is not page-aligned"));
    }
    if run.offset % PAGE_SIZE != 0 {
        return Err(invalid("has an offset that is not page-aligned"));
    }
    let len = run
        .pages
        .checked_mul(PAGE_SIZE)
        .ok_or_else(|| invalid("has too many pages"))?;
    run.offset
        .checked_add(len)
        .ok_or_else(|| invalid("ends past the largest file offset"))?;
    run.address
        .checked_add(len)
        .ok_or_else(|| invalid("ends past the largest address"))
}

/// Checks that VMAs cover every address in `start..end`, allowing the range
/// to span adjacent VMAs. `vmas` are sorted, and the search starts at index
/// `first`. Returns the index where the search for the next run, which
/// begins at or after `end`, can start.
fn check_run_mapped(
    start: u64,
    end: u64,
    vmas: &[Vma],
    first: usize,
    path: &Path,
) -> Result<usize, ImageError> {
    let mut index = first;
    while index < vmas.len() && vmas[index].end <= start {
        index += 1;
    }
    let mut covered_to = start;
    let mut last = index;
    while covered_to < end {
        match vmas.get(last) {
            Some(vma) if vma.start <= covered_to => {
                covered_to = vma.end;
                last += 1;
            }
            _ => {
                return Err(ImageError::invalid(
                    path,
                    format!(
                        "page run {start:#x}-{end:#x} is not inside the VMAs: \
                         address {covered_to:#x} is not mapped"
                    ),
                ))
            }
        }
    }
    Ok(index)
}

/// Files of /proc/sys/kernel that an IPC namespace record may set. Restore
/// writes only these, so an image cannot change any other setting.
pub const IPC_SYSCTLS: [&str; 8] = [
    "shmmax",
    "shmall",
    "shmmni",
    "shm_rmid_forced",
    "msgmax",
    "msgmnb",
    "msgmni",
    "sem",
];

/// Largest value of one System V semaphore (SEMVMX in the kernel).
pub const SEMAPHORE_MAX: u16 = 32767;

/// Checks an IPC namespace record. Object IDs must not be negative and,
/// like keys other than IPC_PRIVATE, unique per kind. Also checks the
/// permission bits, semaphore values, message types, data file
/// names, and sysctl names from [`IPC_SYSCTLS`] with values of digits,
/// spaces and tabs.
pub fn validate_ipc_namespace(ipc: &IpcNamespace, path: &Path) -> Result<(), ImageError> {
    let mut seen = Default::default();
    for segment in &ipc.shm {
        check_ipc_perms(&segment.perms, "shared memory segment", &mut seen, path)?;
        check_file_name(&segment.contents, path)?;
    }

    let mut seen = Default::default();
    for set in &ipc.semaphores {
        check_ipc_perms(&set.perms, "semaphore set", &mut seen, path)?;
        if set.values.is_empty() {
            return Err(ImageError::invalid(
                path,
                format!("semaphore set {} has no semaphores", set.perms.id),
            ));
        }
        if let Some(value) = set.values.iter().find(|&&value| value > SEMAPHORE_MAX) {
            return Err(ImageError::invalid(
                path,
                format!(
                    "semaphore set {} has value {value}, above the maximum {SEMAPHORE_MAX}",
                    set.perms.id
                ),
            ));
        }
    }

    let mut seen = Default::default();
    for queue in &ipc.queues {
        check_ipc_perms(&queue.perms, "message queue", &mut seen, path)?;
        if let Some(message) = queue.messages.iter().find(|message| message.mtype < 1) {
            return Err(ImageError::invalid(
                path,
                format!(
                    "message queue {} has a message of type {}, expected at least 1",
                    queue.perms.id, message.mtype
                ),
            ));
        }
    }

    let mut names = HashSet::new();
    for sysctl in &ipc.sysctls {
        if !IPC_SYSCTLS.contains(&sysctl.name.as_str()) {
            return Err(ImageError::invalid(
                path,
                format!(
                    "sysctl {:?} is not one of the IPC limits {}",
                    sysctl.name,
                    IPC_SYSCTLS.join(", ")
                ),
            ));
        }
        if !names.insert(sysctl.name.as_str()) {
            return Err(ImageError::invalid(
                path,
                format!("sysctl {:?} is listed twice", sysctl.name),
            ));
        }
        let valid = !sysctl.value.is_empty()
            && sysctl.value.len() <= 64
            && sysctl
                .value
                .bytes()
                .all(|byte| byte.is_ascii_digit() || byte == b' ' || byte == b'\t');
        if !valid {
            return Err(ImageError::invalid(
                path,
                format!(
                    "sysctl {:?} has value {:?}, expected 1 to 64 digits, spaces and tabs",
                    sysctl.name, sysctl.value
                ),
            ));
        }
    }
    Ok(())
}

/// Checks the ID and mode of one object, and that no earlier object of its
/// kind has its ID or, unless it is IPC_PRIVATE (0), its key. `seen`
/// contains the IDs and keys of the earlier objects.
fn check_ipc_perms(
    perms: &IpcPerms,
    what: &str,
    seen: &mut (HashSet<i32>, HashSet<i32>),
    path: &Path,
) -> Result<(), ImageError> {
    let (ids, keys) = seen;
    if perms.key != 0 && !keys.insert(perms.key) {
        return Err(ImageError::invalid(
            path,
            format!(
                "{what} {} has key {:#x}, which an earlier {what} has",
                perms.id, perms.key
            ),
        ));
    }
    if perms.id < 0 {
        return Err(ImageError::invalid(
            path,
            format!("{what} has invalid ID {}", perms.id),
        ));
    }
    if !ids.insert(perms.id) {
        return Err(ImageError::invalid(
            path,
            format!("{what} {} is listed twice", perms.id),
        ));
    }
    if perms.mode & !0o777 != 0 {
        return Err(ImageError::invalid(
            path,
            format!(
                "{what} {} has mode {:#o}, expected permission bits only (0o777 at most)",
                perms.id, perms.mode
            ),
        ));
    }
    Ok(())
}
