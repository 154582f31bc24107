//! Metadata records: the typed contents of an image's record files.
//!
//! Each record file holds one of the top-level types here ([`Process`],
//! [`MemoryMap`], [`FdTable`], [`IpcNamespace`], [`Manifest`]) encoded as
//! CBOR after the common file header. Fields are only ever added with
//! `#[serde(default)]`, so an older image decodes with a newer stasis.
//! From the first release on, adding a field also raises
//! [`FORMAT_VERSION`](crate::FORMAT_VERSION): every struct rejects unknown
//! fields, so an older stasis must not be handed a newer image. Until that
//! release version 1 is not frozen, and fields added during development
//! did not raise it.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::error::ImageError;
use crate::validate;

/// Kind of record file, stored in the file header so a file cannot be read
/// as another kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u32)]
pub enum RecordKind {
    Manifest = 1,
    Process = 2,
    MemoryMap = 3,
    FdTable = 4,
    Pages = 5,
    FileData = 6,
    IpcNamespace = 7,
}

impl RecordKind {
    /// Returns the kind with the given header value.
    pub fn from_u32(value: u32) -> Option<RecordKind> {
        Some(match value {
            1 => RecordKind::Manifest,
            2 => RecordKind::Process,
            3 => RecordKind::MemoryMap,
            4 => RecordKind::FdTable,
            5 => RecordKind::Pages,
            6 => RecordKind::FileData,
            7 => RecordKind::IpcNamespace,
            _ => return None,
        })
    }

    /// Returns the lowercase name used in messages. JSON uses the variant
    /// name (`"MemoryMap"`) instead.
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Manifest => "manifest",
            RecordKind::Process => "process",
            RecordKind::MemoryMap => "memory map",
            RecordKind::FdTable => "fd table",
            RecordKind::Pages => "pages",
            RecordKind::FileData => "file data",
            RecordKind::IpcNamespace => "IPC namespace",
        }
    }

    /// Returns true for the kinds stored as raw data after the padding
    /// ([`RecordKind::Pages`], [`RecordKind::FileData`]) rather than as a
    /// CBOR record.
    pub fn is_data(self) -> bool {
        matches!(self, RecordKind::Pages | RecordKind::FileData)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A type stored as one CBOR record file.
pub trait Record: Serialize + for<'de> Deserialize<'de> {
    const KIND: RecordKind;

    /// Checks the record's own fields for values that no dump produces,
    /// such as unsorted page runs. `path` names the file in errors.
    /// `Image::read_record` calls this after decoding.
    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        let _ = path;
        Ok(())
    }
}

/// The image's table of contents, written last: an image without it is
/// incomplete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub stasis_version: String,
    /// Seconds since the Unix epoch when the dump finished.
    pub created_unix: u64,
    pub host: Host,
    /// PID of the process the dump was asked for (the root of the tree).
    pub root_pid: i32,
    /// PIDs of every process in the image.
    pub processes: Vec<i32>,
    /// Every other file of the image, with its size and hash.
    pub files: Vec<FileEntry>,
    #[serde(default)]
    pub stats: DumpStats,
    /// Encryption of the other files, absent for an image in clear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// The encryption of an image's files (see [`crypto`](crate::crypto)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Always "aes-256-gcm".
    pub cipher: String,
    /// 64 hex digits of random salt, which makes every file key unique to
    /// this image.
    pub salt: String,
    /// ID of the image key: 16 hex digits derived from the key.
    pub key_id: String,
}

impl Record for Manifest {
    const KIND: RecordKind = RecordKind::Manifest;

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        validate::validate_manifest(self, path)
    }
}

/// The machine the dump ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -m`.
    pub machine: String,
    pub hostname: String,
    pub page_size: u64,
    /// CPU feature flags from /proc/cpuinfo.
    pub cpu_features: Vec<String>,
    /// Size in bytes of the XSAVE area (CPUID leaf 0xD) that the
    /// xstate buffers in this image were read with.
    pub xsave_size: u32,
}

/// One file of the image as listed in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// File name inside the image directory (no path separators).
    pub name: String,
    pub kind: RecordKind,
    /// Size of the whole file in bytes, header included.
    pub size: u64,
    /// BLAKE3 hash as 64 lowercase hex digits: of the whole file for a
    /// record file, of the data after the padding (from byte 4096 on) for
    /// a pages or file data file.
    pub blake3: String,
}

/// Counters and timings of the dump that wrote the image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpStats {
    /// Time the process was stopped, in microseconds.
    pub frozen_us: u64,
    /// Time spent writing memory pages, in microseconds.
    pub memory_us: u64,
    /// Whole dump, in microseconds.
    pub total_us: u64,
    pub pages_stored: u64,
    /// Pages present in private file mappings that still equal the file.
    pub pages_skipped_file: u64,
    /// Anonymous pages that were never written (absent or the zero page).
    pub pages_skipped_zero: u64,
}

/// One process: identity, credentials, limits, signals, threads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// Name from /proc/PID/comm.
    pub comm: String,
    /// The executable (/proc/PID/exe).
    pub exe: FileIdentity,
    pub credentials: Credentials,
    pub rlimits: Vec<Rlimit>,
    pub mm: MmFields,
    pub personality: u32,
    pub umask: u32,
    pub timer_slack_ns: u64,
    /// ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF, in that order.
    pub itimers: Vec<Itimer>,
    /// Dispositions of signals 1..=64, except SIGKILL and SIGSTOP.
    pub sigactions: Vec<SigAction>,
    /// Signals pending for the whole process (shared queue).
    pub shared_pending: Vec<Bytes>,
    pub threads: Vec<Thread>,
    pub cwd: String,
    pub root: String,
    /// POSIX timers (timer_create), restored with their IDs.
    #[serde(default)]
    pub posix_timers: Vec<PosixTimer>,
    /// Wait status of a zombie (a process that exited and was not yet
    /// waited for), as waitpid(2) reports it: 0x0300 for exit code 3, 9
    /// for a kill by SIGKILL. A zombie's record has no threads, memory or
    /// fds.
    #[serde(default)]
    pub zombie_exit_status: Option<i32>,
    /// PID of the first process in the manifest's order whose fd table
    /// this process shares (made with clone and CLONE_FILES, without
    /// CLONE_THREAD). That process's fd table record lists the fds, and
    /// this process's record lists none. None for a table of its own.
    #[serde(default)]
    pub files_shared_with: Option<i32>,
    /// PID of the first process in the manifest's order whose root, cwd
    /// and umask this process shares (made with clone and CLONE_FS,
    /// without CLONE_THREAD). Restore sets them in that process only.
    #[serde(default)]
    pub fs_shared_with: Option<i32>,
}

impl Record for Process {
    const KIND: RecordKind = RecordKind::Process;

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        validate::validate_process(self, path)
    }
}

/// A POSIX timer: its ID, clock, how it notifies, and the time left to
/// its next expiration at dump time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosixTimer {
    pub id: i32,
    pub clock: i32,
    /// SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID.
    pub notify: i32,
    pub signal: i32,
    /// sigev_value, passed to the handler in si_value.
    pub value: u64,
    /// Thread that SIGEV_THREAD_ID delivers to.
    pub thread: i32,
    pub value_ns: u64,
    pub interval_ns: u64,
}

/// Identity of a file on disk, used to check it is unchanged at restore.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIdentity {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
    pub mode: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Real, effective, saved and filesystem UIDs.
    pub uids: [u32; 4],
    /// Real, effective, saved and filesystem GIDs.
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_bounding: u64,
    pub cap_ambient: u64,
    pub securebits: u32,
    pub no_new_privs: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    /// RLIMIT_* number.
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// The mm_struct fields that PR_SET_MM_MAP restores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmFields {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    /// The auxiliary vector as (type, value) words, AT_NULL included.
    pub auxv: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Itimer {
    pub interval_us: u64,
    pub value_us: u64,
}

/// A signal disposition as struct kernel_sigaction stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigAction {
    pub signo: u32,
    /// Handler address, or 0 for SIG_DFL and 1 for SIG_IGN.
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// One thread's CPU and signal state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thread {
    pub tid: i32,
    /// Name from /proc/PID/task/TID/comm.
    pub comm: String,
    pub regs: Registers,
    /// The NT_X86_XSTATE register set (FPU, SSE, AVX, AVX-512) as the
    /// kernel returns it.
    pub xstate: Bytes,
    pub sigmask: u64,
    /// Signals pending for this thread, as raw 128-byte siginfo_t.
    pub pending: Vec<Bytes>,
    pub sigaltstack: SigAltStack,
    pub rseq: Option<Rseq>,
    pub robust_list: RobustList,
    pub clear_child_tid: u64,
}

/// x86-64 general registers in struct user_regs_struct order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registers {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigAltStack {
    pub sp: u64,
    pub flags: i32,
    pub size: u64,
}

/// An rseq registration (PTRACE_GET_RSEQ_CONFIGURATION).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rseq {
    pub address: u64,
    pub size: u32,
    pub signature: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobustList {
    pub head: u64,
    pub len: u64,
}

/// The address space of one process and where its saved pages are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryMap {
    pub pid: i32,
    pub vmas: Vec<Vma>,
    /// Runs of saved pages, sorted by address, none overlapping.
    pub pages: Vec<PageRun>,
    /// Name of the pages file that the runs point into.
    pub pages_file: String,
    /// Shared memory objects (shared anonymous memory, memfd, deleted
    /// /dev/shm files) that the VMAs of kind SharedMemory map.
    #[serde(default)]
    pub shared_memory: Vec<SharedMemory>,
}

/// A shared memory object whose contents the image holds, because no file
/// on disk keeps them. Processes that map the same object share it again
/// after restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedMemory {
    /// Inode of the object at dump time, which identifies it in the image.
    pub inode: u64,
    /// Name given to the new memfd at restore ("dev/zero" for shared
    /// anonymous memory, the memfd or file name otherwise).
    pub name: String,
    pub size: u64,
    /// F_SEAL_* bits of a memfd (F_GET_SEALS).
    pub seals: u32,
    /// File-data file with the object's contents.
    pub contents: String,
}

impl Record for MemoryMap {
    const KIND: RecordKind = RecordKind::MemoryMap;

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        validate::validate_memory_map_layout(self, path)
    }
}

/// One virtual memory area, as in /proc/PID/maps and smaps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// PROT_READ | PROT_WRITE | PROT_EXEC bits.
    pub prot: u32,
    pub shared: bool,
    /// Offset into the backing file in bytes.
    pub offset: u64,
    pub kind: VmaKind,
    /// Backing file of a file mapping.
    pub file: Option<FileIdentity>,
    /// VmFlags names from smaps ("gd" for growsdown, "lo" for locked …).
    pub vm_flags: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmaKind {
    Anonymous,
    File,
    Heap,
    Stack,
    Vdso,
    Vvar,
    VvarVclock,
    /// A MAP_SHARED mapping of a shared memory object that the image holds;
    /// `file.ino` names the object in `MemoryMap::shared_memory`.
    SharedMemory,
    /// An attachment (shmat) of a System V shared memory segment of the
    /// tree's IPC namespace; `file.ino` is the segment's ID.
    SysvShm,
}

/// `pages` consecutive saved pages starting at `address`, stored at
/// `offset` bytes into the pages file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRun {
    pub address: u64,
    pub pages: u64,
    pub offset: u64,
}

/// The open file descriptors of one process, with cwd and root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdTable {
    pub pid: i32,
    pub fds: Vec<Fd>,
}

impl Record for FdTable {
    const KIND: RecordKind = RecordKind::FdTable;

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        validate::validate_fd_table(self, path)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fd {
    pub fd: i32,
    pub cloexec: bool,
    /// Identifier of the open file description, unique in the image. Fds
    /// with the same identifier, in one process or several, share one
    /// description (file position, flags) after restore.
    #[serde(default)]
    pub description: u32,
    pub file: OpenFile,
}

impl OpenFile {
    /// Returns the name of the file-data file that contains this file's saved
    /// contents: a deleted regular file's data, a pipe's buffered bytes or
    /// a socket's queued data.
    pub fn data_file(&self) -> Option<&str> {
        match self {
            OpenFile::Regular { content, .. } => content.as_deref(),
            OpenFile::Pipe { data, .. } => data.as_deref(),
            OpenFile::Socket(record) => record.queued.as_deref(),
            _ => None,
        }
    }
}

/// An open file description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum OpenFile {
    /// A regular file. `content` names the image file holding the data of
    /// a file that was deleted while open.
    Regular {
        identity: FileIdentity,
        /// O_* flags from /proc/PID/fdinfo (access mode, O_APPEND …).
        flags: u32,
        position: u64,
        deleted: bool,
        content: Option<String>,
    },
    Directory {
        identity: FileIdentity,
        flags: u32,
        position: u64,
    },
    /// A character device opened by path (/dev/null, /dev/urandom …).
    CharDevice { path: String, rdev: u64, flags: u32 },
    /// The controlling terminal, saved with --shell-job and reopened as
    /// the restoring shell's terminal.
    Terminal { path: String, rdev: u64, flags: u32 },
    /// One end of a pipe or FIFO. Both ends of one pipe have the same
    /// `inode`; `data` names the file-data file with the bytes that were
    /// buffered in the pipe at dump time.
    Pipe {
        inode: u64,
        write_end: bool,
        flags: u32,
        /// Pipe capacity in bytes (F_GETPIPE_SZ).
        capacity: u64,
        data: Option<String>,
    },
    /// An eventfd with its counter.
    EventFd {
        flags: u32,
        count: u64,
        semaphore: bool,
    },
    /// A timerfd: clock, expirations not yet read, and the time left to the
    /// next expiration at dump time.
    TimerFd {
        flags: u32,
        clock: i32,
        ticks: u64,
        value_ns: u64,
        interval_ns: u64,
    },
    /// A signalfd and the signals it accepts.
    SignalFd { flags: u32, mask: u64 },
    /// A socket that is bound or listening but not connected: TCP, UDP,
    /// or a Unix socket with a path or an abstract name.
    Socket(SocketRecord),
    /// An inotify instance and its watches, by watch descriptor.
    Inotify {
        flags: u32,
        watches: Vec<InotifyWatch>,
    },
    /// An epoll instance and the fds registered in it, by their number in
    /// the process that has the epoll fd open.
    Epoll {
        flags: u32,
        targets: Vec<EpollTarget>,
    },
}

/// A bound, listening or connected socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocketRecord {
    /// O_* status flags of the file (O_NONBLOCK).
    pub flags: u32,
    /// AF_INET, AF_INET6 or AF_UNIX.
    pub family: i32,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub socket_type: i32,
    pub protocol: i32,
    /// The bound address as getsockname returns it (a sockaddr), or empty
    /// if the socket is not bound.
    pub address: Bytes,
    /// Listen backlog, or None if the socket is not listening.
    pub backlog: Option<u32>,
    /// (level, option name, value) of every socket option that was saved.
    pub options: Vec<(i32, i32, i32)>,
    /// Inode of the socket file of a Unix socket bound to a path; restore
    /// replaces a file at that path only if it is still this socket file.
    pub unix_path_inode: Option<u64>,
    /// Inode of this socket at dump time.
    #[serde(default)]
    pub inode: u64,
    /// Inode of the connected peer of a Unix socket (one end of a
    /// socketpair or connection), which must be in the same image.
    #[serde(default)]
    pub peer: Option<u64>,
    /// File-data file with the data waiting in the receive queue: the bytes
    /// of a stream socket, or each datagram as a little-endian u32 length
    /// followed by its bytes.
    #[serde(default)]
    pub queued: Option<String>,
    /// True for a connected Unix stream or seqpacket socket that accept(2)
    /// returned: its `address` is the address of the listening socket, and
    /// restore creates it by accepting a connection from its peer.
    #[serde(default)]
    pub accepted: bool,
    /// Inodes of the client sockets whose connections waited in the queue
    /// of this listening Unix socket, in queue order. Each is a socket of
    /// the same image, and restore connects them again in this order.
    #[serde(default)]
    pub pending: Vec<u64>,
    /// For a datagram socket with `queued` data, the inode of the socket
    /// that sent each datagram, in queue order. Each is a socket of the
    /// same image. Empty means that the peer sent every datagram.
    #[serde(default)]
    pub senders: Vec<u64>,
}

/// One watch of an inotify instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InotifyWatch {
    /// Watch descriptor, which restore gives the watch again.
    pub wd: i32,
    /// Path of the watched file, found from its file handle at dump time.
    pub path: String,
    /// IN_* event mask as inotify_add_watch takes it.
    pub mask: u32,
}

/// One registration of an epoll instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpollTarget {
    pub fd: i32,
    /// EPOLLIN, EPOLLOUT, EPOLLET … as epoll_ctl takes them.
    pub events: u32,
    pub data: u64,
}

/// The System V IPC objects of the tree's own IPC namespace: shared
/// memory segments, semaphore sets and message queues. An image has this
/// record only when the tree ran in an IPC namespace other than that of
/// stasis, and restore then creates the root in a new IPC namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcNamespace {
    pub shm: Vec<SysvShm>,
    pub semaphores: Vec<SysvSemaphores>,
    pub queues: Vec<SysvQueue>,
    /// Limits of the namespace from /proc/sys/kernel, by file name
    /// (`shmmax`, `msgmnb`, `sem` …), as the file contains them without the
    /// trailing newline.
    pub sysctls: Vec<IpcSysctl>,
}

impl Record for IpcNamespace {
    const KIND: RecordKind = RecordKind::IpcNamespace;

    fn validate(&self, path: &Path) -> Result<(), ImageError> {
        validate::validate_ipc_namespace(self, path)
    }
}

/// Key, ID, owner and permissions of a System V IPC object (struct
/// ipc_perm).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcPerms {
    /// Key given to shmget, semget or msgget; 0 for IPC_PRIVATE.
    pub key: i32,
    /// ID that the kernel returned, which restore gives the object again.
    pub id: i32,
    pub uid: u32,
    pub gid: u32,
    /// Creator's UID and GID, which restore cannot set: the kernel sets
    /// them to the restoring process's own.
    pub cuid: u32,
    pub cgid: u32,
    /// Permission bits (0o777 at most).
    pub mode: u32,
}

/// A System V shared memory segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysvShm {
    pub perms: IpcPerms,
    /// Size in bytes as given to shmget.
    pub size: u64,
    /// File data file with the segment's bytes (`sysv-shm-ID`).
    pub contents: String,
    /// The segment was removed with IPC_RMID but is still attached
    /// (SHM_DEST); it disappears when the last attachment goes.
    pub removed: bool,
    /// The segment is locked in memory (SHM_LOCK).
    #[serde(default)]
    pub locked: bool,
}

/// A System V semaphore set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysvSemaphores {
    pub perms: IpcPerms,
    /// The value of each semaphore (semctl GETALL), at most 32767 (SEMVMX).
    pub values: Vec<u16>,
}

/// A System V message queue with the messages in it, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysvQueue {
    pub perms: IpcPerms,
    /// Maximum number of bytes in the queue (msg_qbytes).
    pub max_bytes: u64,
    pub messages: Vec<SysvMessage>,
}

/// One message of a System V message queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysvMessage {
    /// The message type (mtype), at least 1.
    pub mtype: i64,
    pub data: Bytes,
}

/// One IPC limit of the namespace, a file of /proc/sys/kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcSysctl {
    pub name: String,
    pub value: String,
}
