//! Names of kernel constants as they appear in images: open flags,
//! auxiliary vector types, memory protections and device numbers. The
//! values are those of Linux on x86-64 (include/uapi/asm-generic/fcntl.h
//! and include/uapi/linux/auxvec.h).

use serde::Serialize;
use stasis_image::{OpenFile, Vma, VmaKind};

/// O_* flags other than the access mode, as octal values.
const OPEN_FLAGS: &[(u32, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o4010000, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o100000, "O_LARGEFILE"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"),
    (0o20000000, "__O_TMPFILE"),
];

/// Decodes the flags of an open file description (from fdinfo) as
/// `O_RDWR|O_APPEND`. Bits without a name are shown in octal at the end.
pub fn open_flags(flags: u32) -> String {
    let mut names = vec![match flags & 0o3 {
        0 => "O_RDONLY".to_string(),
        1 => "O_WRONLY".to_string(),
        2 => "O_RDWR".to_string(),
        _ => "O_ACCMODE".to_string(),
    }];
    let mut rest = flags & !0o3;
    for &(bits, name) in OPEN_FLAGS {
        if rest & bits == bits {
            names.push(name.to_string());
            rest &= !bits;
        }
    }
    if rest != 0 {
        names.push(format!("0{rest:o}"));
    }
    names.join("|")
}

/// Display format of an auxiliary vector value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxvFormat {
    Decimal,
    Hex,
    /// The address of a NUL-terminated string.
    StringAddress,
    /// The address of 16 random bytes.
    RandomAddress,
}

/// Returns the AT_* name and display format of auxiliary vector type
/// `key`.
pub fn auxv_type(key: u64) -> (Option<&'static str>, AuxvFormat) {
    use AuxvFormat::*;
    let (name, format) = match key {
        0 => ("AT_NULL", Decimal),
        1 => ("AT_IGNORE", Hex),
        2 => ("AT_EXECFD", Decimal),
        3 => ("AT_PHDR", Hex),
        4 => ("AT_PHENT", Decimal),
        5 => ("AT_PHNUM", Decimal),
        6 => ("AT_PAGESZ", Decimal),
        7 => ("AT_BASE", Hex),
        8 => ("AT_FLAGS", Hex),
        9 => ("AT_ENTRY", Hex),
        10 => ("AT_NOTELF", Decimal),
        11 => ("AT_UID", Decimal),
        12 => ("AT_EUID", Decimal),
        13 => ("AT_GID", Decimal),
        14 => ("AT_EGID", Decimal),
        15 => ("AT_PLATFORM", StringAddress),
        16 => ("AT_HWCAP", Hex),
        17 => ("AT_CLKTCK", Decimal),
        23 => ("AT_SECURE", Decimal),
        24 => ("AT_BASE_PLATFORM", StringAddress),
        25 => ("AT_RANDOM", RandomAddress),
        26 => ("AT_HWCAP2", Hex),
        27 => ("AT_RSEQ_FEATURE_SIZE", Decimal),
        28 => ("AT_RSEQ_ALIGN", Decimal),
        29 => ("AT_HWCAP3", Hex),
        30 => ("AT_HWCAP4", Hex),
        31 => ("AT_EXECFN", StringAddress),
        32 => ("AT_SYSINFO", Hex),
        33 => ("AT_SYSINFO_EHDR", Hex),
        51 => ("AT_MINSIGSTKSZ", Decimal),
        _ => return (None, Hex),
    };
    (Some(name), format)
}

/// Returns the permissions of a VMA as /proc/PID/maps shows them: `r-xp`.
pub fn perms(vma: &Vma) -> String {
    let bit = |mask: u32, letter: char| if vma.prot & mask != 0 { letter } else { '-' };
    let mut text = String::with_capacity(4);
    text.push(bit(1, 'r'));
    text.push(bit(2, 'w'));
    text.push(bit(4, 'x'));
    text.push(if vma.shared { 's' } else { 'p' });
    text
}

/// Splits a 64-bit `dev_t` as `stat` returns it into (major, minor), as
/// glibc's `major()` and `minor()` do.
pub fn dev_parts(dev: u64) -> (u64, u64) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & 0xffff_f000);
    let minor = (dev & 0xff) | ((dev >> 12) & 0xffff_ff00);
    (major, minor)
}

/// Formats a device number as /proc/PID/maps does: `08:01`, in hex.
pub fn dev_hex(dev: u64) -> String {
    let (major, minor) = dev_parts(dev);
    format!("{major:02x}:{minor:02x}")
}

/// Formats a device number in decimal: `1:3`.
pub fn dev_decimal(dev: u64) -> String {
    let (major, minor) = dev_parts(dev);
    format!("{major}:{minor}")
}

/// Returns the name of a VMA as /proc/PID/maps ends its line: the file
/// path, `[heap]`, `[stack]`, `[vdso]` …, or an empty string for
/// anonymous memory.
pub fn vma_label(vma: &Vma) -> String {
    match (vma.kind, &vma.file) {
        (_, Some(file)) => file.path.clone(),
        (VmaKind::Anonymous, None) | (VmaKind::File, None) => String::new(),
        (VmaKind::Heap, None) => "[heap]".to_string(),
        (VmaKind::Stack, None) => "[stack]".to_string(),
        (VmaKind::Vdso, None) => "[vdso]".to_string(),
        (VmaKind::Vvar, None) => "[vvar]".to_string(),
        (VmaKind::VvarVclock, None) => "[vvar_vclock]".to_string(),
        (VmaKind::SharedMemory, None) => "[shared memory]".to_string(),
        (VmaKind::SysvShm, None) => "[SysV shared memory]".to_string(),
    }
}

/// Returns the JSON name of a VMA kind, which is the variant name.
pub fn vma_kind(kind: VmaKind) -> &'static str {
    match kind {
        VmaKind::Anonymous => "Anonymous",
        VmaKind::File => "File",
        VmaKind::Heap => "Heap",
        VmaKind::Stack => "Stack",
        VmaKind::Vdso => "Vdso",
        VmaKind::Vvar => "Vvar",
        VmaKind::VvarVclock => "VvarVclock",
        VmaKind::SharedMemory => "SharedMemory",
        VmaKind::SysvShm => "SysvShm",
    }
}

/// Returns true for the VMA kinds whose pages a dump saves: private
/// anonymous memory, heap, stack and private file mappings.
pub fn saves_pages(vma: &Vma) -> bool {
    !vma.shared
        && matches!(
            vma.kind,
            VmaKind::Anonymous | VmaKind::Heap | VmaKind::Stack | VmaKind::File
        )
}

/// Names of signals 1 to 31 on x86-64 Linux.
const SIGNALS: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Returns the name of signal `number`. Real-time signals are named as
/// `kill -l` names them with glibc, which keeps 32 and 33 for itself and
/// starts SIGRTMIN at 34.
pub fn signal_name(number: u32) -> String {
    match number {
        1..=31 => SIGNALS[number as usize - 1].to_string(),
        32 | 33 => format!("SIG{number}"),
        34..=64 => format!("SIGRTMIN+{}", number - 34),
        _ => format!("signal {number}"),
    }
}

/// Names the signals in a mask where bit N-1 stands for signal N:
/// `SIGUSR1|SIGTERM`, or `none`.
pub fn signal_set(mask: u64) -> String {
    let names: Vec<String> = (1..=64u32)
        .filter(|number| mask & (1u64 << (number - 1)) != 0)
        .map(signal_name)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join("|")
    }
}

/// Returns the name of a POSIX clock ID (include/uapi/linux/time.h).
pub fn clock_name(clock: i32) -> String {
    match clock {
        0 => "CLOCK_REALTIME".to_string(),
        1 => "CLOCK_MONOTONIC".to_string(),
        7 => "CLOCK_BOOTTIME".to_string(),
        8 => "CLOCK_REALTIME_ALARM".to_string(),
        9 => "CLOCK_BOOTTIME_ALARM".to_string(),
        other => format!("clock {other}"),
    }
}

/// EPOLL* event bits (include/uapi/linux/eventpoll.h).
const EPOLL_EVENTS: &[(u32, &str)] = &[
    (0x001, "EPOLLIN"),
    (0x002, "EPOLLPRI"),
    (0x004, "EPOLLOUT"),
    (0x008, "EPOLLERR"),
    (0x010, "EPOLLHUP"),
    (0x040, "EPOLLRDNORM"),
    (0x080, "EPOLLRDBAND"),
    (0x100, "EPOLLWRNORM"),
    (0x200, "EPOLLWRBAND"),
    (0x400, "EPOLLMSG"),
    (0x2000, "EPOLLRDHUP"),
    (1 << 28, "EPOLLEXCLUSIVE"),
    (1 << 29, "EPOLLWAKEUP"),
    (1 << 30, "EPOLLONESHOT"),
    (1 << 31, "EPOLLET"),
];

/// Decodes epoll event bits as `EPOLLIN|EPOLLET`. Bits without a name are
/// shown in hex at the end.
pub fn epoll_events(events: u32) -> String {
    let mut names = Vec::new();
    let mut rest = events;
    for &(bit, name) in EPOLL_EVENTS {
        if rest & bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 || names.is_empty() {
        names.push(format!("{rest:#x}"));
    }
    names.join("|")
}

/// A status as waitpid(2) returns it, decoded for the JSON views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WaitStatus {
    /// The code the process passed to exit(2), 0 to 255; null when a
    /// signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that killed the process; null when it exited.
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// The text the text views show, such as `exit code 7`.
    pub description: String,
}

impl WaitStatus {
    /// Decodes `status` with the rules of the WIFEXITED and WIFSIGNALED
    /// macros of glibc.
    pub fn decode(status: i32) -> WaitStatus {
        let signal = status & 0x7f;
        let (exit_code, killed_by) = match signal {
            0 => (Some((status >> 8) & 0xff), None),
            // 0x7f marks a stopped process, which has neither.
            0x7f => (None, None),
            _ => (None, Some(signal)),
        };
        WaitStatus {
            exit_code,
            signal: killed_by,
            core_dumped: killed_by.is_some() && status & 0x80 != 0,
            description: wait_status(status),
        }
    }
}

/// Describes a status as waitpid(2) returns it: `exit code 7`,
/// `killed by signal 9`, `killed by signal 11 (core dumped)`.
pub fn wait_status(status: i32) -> String {
    let signal = status & 0x7f;
    if signal == 0 {
        format!("exit code {}", (status >> 8) & 0xff)
    } else if signal != 0x7f {
        let core = if status & 0x80 != 0 {
            " (core dumped)"
        } else {
            ""
        };
        format!("killed by signal {signal}{core}")
    } else {
        format!("wait status {status:#x}")
    }
}

/// Returns the kind of an open file as the JSON and tables name it.
pub fn fd_kind(file: &OpenFile) -> &'static str {
    match file {
        OpenFile::Regular { .. } => "regular",
        OpenFile::Directory { .. } => "directory",
        OpenFile::CharDevice { .. } => "char_device",
        OpenFile::Terminal { .. } => "terminal",
        OpenFile::Pipe { .. } => "pipe",
        OpenFile::EventFd { .. } => "eventfd",
        OpenFile::TimerFd { .. } => "timerfd",
        OpenFile::SignalFd { .. } => "signalfd",
        OpenFile::Epoll { .. } => "epoll",
        OpenFile::Socket(_) => "socket",
        OpenFile::Inotify { .. } => "inotify",
    }
}

/// Names of the x86-64 general registers in struct user_regs_struct
/// order, with their values.
pub fn registers(regs: &stasis_image::Registers) -> [(&'static str, u64); 27] {
    [
        ("r15", regs.r15),
        ("r14", regs.r14),
        ("r13", regs.r13),
        ("r12", regs.r12),
        ("rbp", regs.rbp),
        ("rbx", regs.rbx),
        ("r11", regs.r11),
        ("r10", regs.r10),
        ("r9", regs.r9),
        ("r8", regs.r8),
        ("rax", regs.rax),
        ("rcx", regs.rcx),
        ("rdx", regs.rdx),
        ("rsi", regs.rsi),
        ("rdi", regs.rdi),
        ("orig_rax", regs.orig_rax),
        ("rip", regs.rip),
        ("cs", regs.cs),
        ("eflags", regs.eflags),
        ("rsp", regs.rsp),
        ("ss", regs.ss),
        ("fs_base", regs.fs_base),
        ("gs_base", regs.gs_base),
        ("ds", regs.ds),
        ("es", regs.es),
        ("fs", regs.fs),
        ("gs", regs.gs),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_flags_decoding() {
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(open_flags(0o2002), "O_RDWR|O_APPEND");
        assert_eq!(open_flags(0o2100001), "O_WRONLY|O_LARGEFILE|O_CLOEXEC");
        assert_eq!(open_flags(0o4010000), "O_RDONLY|O_SYNC");
        assert_eq!(open_flags(0o10000), "O_RDONLY|O_DSYNC");
        assert_eq!(open_flags(0o1_000_000_000), "O_RDONLY|01000000000");
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(10), "SIGUSR1");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(34), "SIGRTMIN+0");
        assert_eq!(signal_set(1 << 9 | 1 << 14), "SIGUSR1|SIGTERM");
        assert_eq!(signal_set(0), "none");
    }

    #[test]
    fn epoll_event_decoding() {
        assert_eq!(epoll_events(0x8000_0001), "EPOLLIN|EPOLLET");
        assert_eq!(epoll_events(0x4_0000), "0x40000");
    }

    #[test]
    fn wait_status_struct_decoding() {
        let exited = WaitStatus::decode(3 << 8);
        assert_eq!(exited.exit_code, Some(3));
        assert_eq!(exited.signal, None);
        assert!(!exited.core_dumped);
        assert_eq!(exited.description, "exit code 3");

        let killed = WaitStatus::decode(9);
        assert_eq!(killed.exit_code, None);
        assert_eq!(killed.signal, Some(9));
        assert!(!killed.core_dumped);

        let dumped = WaitStatus::decode(11 | 0x80);
        assert_eq!(dumped.signal, Some(11));
        assert!(dumped.core_dumped);

        let stopped = WaitStatus::decode(0x137f);
        assert_eq!((stopped.exit_code, stopped.signal), (None, None));
    }

    #[test]
    fn wait_status_decoding() {
        assert_eq!(wait_status(7 << 8), "exit code 7");
        assert_eq!(wait_status(9), "killed by signal 9");
        assert_eq!(wait_status(11 | 0x80), "killed by signal 11 (core dumped)");
    }

    #[test]
    fn dev_numbers() {
        assert_eq!(dev_hex(0x803), "08:03");
        assert_eq!(dev_decimal(0x103), "1:3");
        // major 259, minor 1: an NVMe partition.
        assert_eq!(dev_parts(0x10301), (259, 1));
        // glibc makedev(0x12345, 0x6789a), which uses the high bits of both.
        assert_eq!(dev_parts(0x1_2000_6783_459a), (0x12345, 0x6789a));
    }
}
