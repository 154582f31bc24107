//! A small fixed image for the inspection tests, written with
//! `ImageWriter`, and helpers to damage it and compare outputs with golden
//! files.
//!
//! The image contains process 4242 ("sleeper") with these mappings: a
//! file mapping with one written page, a heap with two stored pages, an
//! anonymous mapping with one, a stack, and vvar/vdso. The stack's stored
//! page contains the argument and environment strings, and its last page
//! is not stored. The environment runs into that page, so the env view
//! has a gap to report. Its fds cover every kind: a device, a log file
//! open twice through one description, a terminal, a directory, a
//! deleted file, both ends of a pipe with buffered bytes, an eventfd, a
//! timerfd, a signalfd and an epoll fd that watches two of them.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use stasis_image::*;

pub const PID: i32 = 4242;
pub const PAGE: u64 = 4096;

pub const TEXT: u64 = 0x40_0000;
pub const DATA: u64 = 0x40_2000;
pub const HEAP: u64 = 0x60_0000;
pub const ANON: u64 = 0x7f00_0000_0000;
pub const STACK: u64 = 0x7ffd_0000_0000;
/// The stack's stored page, which contains the strings.
pub const STRINGS_PAGE: u64 = STACK + 0x1f000;
/// The stack's last page, which is not stored.
pub const TOP_PAGE: u64 = STACK + 0x20000;
pub const VVAR: u64 = 0x7ffd_000f_0000;

pub const ARGS: &[&str] = &["sleeper", "--interval", "1000"];
pub const ENV: &[&str] = &["HOME=/home/user", "LANG=C.UTF-8", "TERM=xterm"];
/// Offset of the argument strings in the strings page: 40 bytes before
/// its end, so that the first environment string ends at the page end
/// and the others lie in the page that is not stored.
pub const ARGS_OFFSET: u64 = 0xfd8;
/// Offset of the AT_EXECFN string in the strings page.
pub const EXECFN_OFFSET: u64 = 0x100;
pub const RANDOM_OFFSET: u64 = 0x80;

/// A scratch directory that is removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "stasis-inspect-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create scratch directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn identity(path: &str, ino: u64) -> FileIdentity {
    FileIdentity {
        path: path.to_string(),
        dev: 0x803,
        ino,
        size: 16384,
        mtime_ns: 1_700_000_000_000_000_000,
        mode: 0o100755,
    }
}

fn vma(start: u64, end: u64, prot: u32, kind: VmaKind) -> Vma {
    Vma {
        start,
        end,
        prot,
        shared: false,
        offset: 0,
        kind,
        file: None,
        vm_flags: vec!["rd".to_string(), "mr".to_string()],
    }
}

/// Returns the start and end of the argument strings and of the
/// environment strings.
pub fn string_bounds() -> (u64, u64, u64, u64) {
    let len = |strings: &[&str]| -> u64 { strings.iter().map(|s| s.len() as u64 + 1).sum() };
    let arg_start = STRINGS_PAGE + ARGS_OFFSET;
    let env_start = arg_start + len(ARGS);
    (arg_start, env_start, env_start, env_start + len(ENV))
}

pub fn memory_map() -> MemoryMap {
    let mut text = vma(TEXT, TEXT + 2 * PAGE, 5, VmaKind::File);
    text.file = Some(identity("/usr/bin/sleeper", 1001));
    let mut data = vma(DATA, DATA + PAGE, 3, VmaKind::File);
    data.file = Some(identity("/usr/bin/sleeper", 1001));
    data.offset = 0x2000;
    let mut stack = vma(STACK, TOP_PAGE + PAGE, 3, VmaKind::Stack);
    stack.vm_flags.push("gd".to_string());
    MemoryMap {
        pid: PID,
        vmas: vec![
            text,
            data,
            vma(HEAP, HEAP + 0x21 * PAGE, 3, VmaKind::Heap),
            vma(ANON, ANON + 4 * PAGE, 3, VmaKind::Anonymous),
            stack,
            vma(VVAR, VVAR + 2 * PAGE, 1, VmaKind::Vvar),
            vma(VVAR + 2 * PAGE, VVAR + 4 * PAGE, 5, VmaKind::Vdso),
        ],
        pages: vec![
            PageRun {
                address: DATA,
                pages: 1,
                offset: 0,
            },
            PageRun {
                address: HEAP,
                pages: 2,
                offset: PAGE,
            },
            PageRun {
                address: ANON + PAGE,
                pages: 1,
                offset: 3 * PAGE,
            },
            PageRun {
                address: STRINGS_PAGE,
                pages: 1,
                offset: 4 * PAGE,
            },
        ],
        pages_file: format::pages_file_name(PID),
        shared_memory: Vec::new(),
    }
}

/// Returns the 5 stored pages in pages-file order.
pub fn page_data() -> Vec<u8> {
    let mut pages = Vec::new();
    for fill in [0xd0u8, 0x11, 0x12, 0xa0] {
        pages.extend(std::iter::repeat(fill).take(PAGE as usize));
    }
    pages.extend(strings_page());
    pages
}

/// Returns the stored stack page: AT_RANDOM bytes, the AT_EXECFN string,
/// then the argument and environment strings up to the page end.
fn strings_page() -> Vec<u8> {
    let mut page = vec![0u8; PAGE as usize];
    let random: Vec<u8> = (0..16).collect();
    page[RANDOM_OFFSET as usize..RANDOM_OFFSET as usize + 16].copy_from_slice(&random);
    let execfn = b"/usr/bin/sleeper\0";
    page[EXECFN_OFFSET as usize..EXECFN_OFFSET as usize + execfn.len()].copy_from_slice(execfn);

    let mut strings = Vec::new();
    for text in ARGS.iter().chain(ENV) {
        strings.extend_from_slice(text.as_bytes());
        strings.push(0);
    }
    let start = ARGS_OFFSET as usize;
    let room = PAGE as usize - start;
    let len = strings.len().min(room);
    page[start..start + len].copy_from_slice(&strings[..len]);
    page
}

pub fn process() -> Process {
    let (arg_start, arg_end, env_start, env_end) = string_bounds();
    Process {
        pid: PID,
        ppid: 1,
        pgid: PID,
        sid: PID,
        comm: "sleeper".to_string(),
        exe: identity("/usr/bin/sleeper", 1001),
        credentials: Credentials {
            uids: [1000; 4],
            gids: [1000, 1000, 1000, 100],
            groups: vec![4, 27],
            cap_bounding: 0x1ff_ffff_ffff,
            ..Credentials::default()
        },
        rlimits: vec![Rlimit {
            resource: 7,
            soft: 1024,
            hard: 4096,
        }],
        mm: MmFields {
            start_code: TEXT,
            end_code: TEXT + 2 * PAGE,
            start_data: DATA,
            end_data: DATA + PAGE,
            start_brk: HEAP,
            brk: HEAP + 0x21 * PAGE,
            start_stack: STACK + 0x1f800,
            arg_start,
            arg_end,
            env_start,
            env_end,
            auxv: vec![
                33,
                VVAR + 2 * PAGE,
                6,
                4096,
                9,
                TEXT + 0x600,
                11,
                1000,
                23,
                0,
                25,
                STRINGS_PAGE + RANDOM_OFFSET,
                31,
                STRINGS_PAGE + EXECFN_OFFSET,
                15,
                TOP_PAGE + 8,
                0,
                0,
            ],
        },
        personality: 0,
        umask: 0o022,
        timer_slack_ns: 50_000,
        itimers: vec![Itimer::default(); 3],
        sigactions: vec![SigAction {
            signo: 15,
            handler: 0x40_1000,
            flags: 0x0400_0000,
            restorer: 0x40_1100,
            mask: 0,
        }],
        shared_pending: Vec::new(),
        threads: vec![Thread {
            tid: PID,
            comm: "sleeper".to_string(),
            regs: Registers {
                rip: TEXT + 0x1234,
                rsp: STACK + 0x1f6c0,
                rax: 0xffff_ffff_ffff_fdfc,
                orig_rax: 230,
                cs: 0x33,
                ss: 0x2b,
                eflags: 0x246,
                fs_base: ANON + 0x740,
                ..Registers::default()
            },
            xstate: Bytes(vec![0; 2432]),
            sigmask: 1 << 9,
            pending: Vec::new(),
            sigaltstack: SigAltStack::default(),
            rseq: None,
            robust_list: RobustList::default(),
            clear_child_tid: 0,
        }],
        cwd: "/home/user".to_string(),
        root: "/".to_string(),
        posix_timers: Vec::new(),
        zombie_exit_status: None,
        files_shared_with: None,
        fs_shared_with: None,
    }
}

pub fn fd_table() -> FdTable {
    let fd = |fd: i32, cloexec: bool, file: OpenFile| Fd {
        fd,
        cloexec,
        description: fd as u32 + 1,
        file,
    };
    let pipe = |write_end: bool, data: Option<String>| OpenFile::Pipe {
        inode: 77,
        write_end,
        flags: if write_end { 0o1 } else { 0o0 },
        capacity: 65536,
        data,
    };
    let mut shared = fd(
        7,
        false,
        OpenFile::Regular {
            identity: identity("/var/log/sleeper.log", 2002),
            flags: 0o102001,
            position: 1234,
            deleted: false,
            content: None,
        },
    );
    // fd 7 is a dup of fd 1: one open file description.
    shared.description = 2;
    FdTable {
        pid: PID,
        fds: vec![
            fd(
                0,
                false,
                OpenFile::CharDevice {
                    path: "/dev/null".to_string(),
                    rdev: 0x103,
                    flags: 0o100000,
                },
            ),
            fd(
                1,
                false,
                OpenFile::Regular {
                    identity: identity("/var/log/sleeper.log", 2002),
                    flags: 0o102001,
                    position: 1234,
                    deleted: false,
                    content: None,
                },
            ),
            fd(
                2,
                false,
                OpenFile::Terminal {
                    path: "/dev/pts/3".to_string(),
                    rdev: 0x8803,
                    flags: 0o102002,
                },
            ),
            fd(
                3,
                true,
                OpenFile::Directory {
                    identity: identity("/home/user", 3003),
                    flags: 0o304000,
                    position: 0,
                },
            ),
            fd(
                4,
                false,
                OpenFile::Regular {
                    identity: identity("/tmp/scratch", 4004),
                    flags: 0o100002,
                    position: 7,
                    deleted: true,
                    content: Some(format::file_data_file_name(1)),
                },
            ),
            fd(5, false, pipe(false, Some(format::file_data_file_name(2)))),
            fd(6, false, pipe(true, None)),
            shared,
            fd(
                8,
                true,
                OpenFile::EventFd {
                    flags: 0o4002,
                    count: 3,
                    semaphore: false,
                },
            ),
            fd(
                9,
                true,
                OpenFile::TimerFd {
                    flags: 0o2,
                    clock: 1,
                    ticks: 2,
                    value_ns: 250_000_000,
                    interval_ns: 1_000_000_000,
                },
            ),
            fd(
                10,
                true,
                OpenFile::SignalFd {
                    flags: 0o2,
                    mask: 1 << 9 | 1 << 14,
                },
            ),
            fd(
                11,
                true,
                OpenFile::Epoll {
                    flags: 0o2,
                    targets: vec![
                        EpollTarget {
                            fd: 8,
                            events: 0x1,
                            data: 8,
                        },
                        EpollTarget {
                            fd: 9,
                            events: 0x8000_0001,
                            data: 9,
                        },
                    ],
                },
            ),
        ],
    }
}

pub fn manifest() -> Manifest {
    Manifest {
        format_version: 0,
        stasis_version: "0.1.0".to_string(),
        created_unix: 1_700_000_000,
        host: Host {
            kernel_release: "6.1.0-test".to_string(),
            machine: "x86_64".to_string(),
            hostname: "testhost".to_string(),
            page_size: 4096,
            cpu_features: vec!["avx2".to_string(), "sse4_2".to_string()],
            xsave_size: 2432,
        },
        root_pid: PID,
        processes: vec![PID],
        files: Vec::new(),
        stats: DumpStats {
            frozen_us: 1500,
            memory_us: 700,
            total_us: 2500,
            pages_stored: 5,
            pages_skipped_file: 3,
            pages_skipped_zero: 40,
        },
        encryption: None,
    }
}

/// The records of an image, to be changed before [`write_image`].
pub struct Parts {
    pub process: Process,
    pub memory: MemoryMap,
    pub fds: FdTable,
    pub pages: Vec<u8>,
    pub manifest: Manifest,
    /// Process records of zombies, written with no other files; their
    /// PIDs must also be added to `manifest.processes`.
    pub zombies: Vec<Process>,
}

pub fn parts() -> Parts {
    Parts {
        process: process(),
        memory: memory_map(),
        fds: fd_table(),
        pages: page_data(),
        manifest: manifest(),
        zombies: Vec::new(),
    }
}

/// Writes `parts` as an image at `dir`, which must not exist.
pub fn write_image(dir: &Path, parts: &Parts) {
    let mut writer = ImageWriter::create(dir).expect("create image");
    let mut pages = writer
        .data_writer(&format::pages_file_name(PID), RecordKind::Pages)
        .expect("start pages");
    pages.write(&parts.pages).expect("write pages");
    writer.finish_data(pages).expect("finish pages");

    let mut content = writer
        .data_writer(&format::file_data_file_name(1), RecordKind::FileData)
        .expect("start file data");
    content
        .write(b"scratch contents\n")
        .expect("write file data");
    writer.finish_data(content).expect("finish file data");

    let mut buffered = writer
        .data_writer(&format::file_data_file_name(2), RecordKind::FileData)
        .expect("start pipe data");
    buffered
        .write(b"bytes in the pipe")
        .expect("write pipe data");
    writer.finish_data(buffered).expect("finish pipe data");

    writer
        .write_record(&format::memory_map_file_name(PID), &parts.memory)
        .expect("write memory map");
    writer
        .write_record(&format::fd_table_file_name(PID), &parts.fds)
        .expect("write fd table");
    writer
        .write_record(&format::process_file_name(PID), &parts.process)
        .expect("write process");
    for zombie in &parts.zombies {
        writer
            .write_record(&format::process_file_name(zombie.pid), zombie)
            .expect("write zombie process");
    }
    writer.commit(parts.manifest.clone()).expect("commit");
}

/// Writes the fixed image in a new scratch directory and returns both.
pub fn fixed_image(tag: &str) -> (TempDir, PathBuf) {
    let temp = TempDir::new(tag);
    let dir = temp.path().join("image");
    write_image(&dir, &parts());
    (temp, dir)
}

/// Changes the bytes of file `name` of the image in `dir`.
pub fn edit_file(dir: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(name);
    let mut bytes = fs::read(&path).expect("read image file");
    change(&mut bytes);
    fs::write(&path, bytes).expect("write image file");
}

/// Compares `actual` with the golden file `name` under tests/golden.
/// With UPDATE_GOLDEN=1 in the environment, writes `actual` there instead.
pub fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read {} ({error}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "output differs from {}; run with UPDATE_GOLDEN=1 to accept it\n--- expected ---\n{expected}\n--- actual ---\n{actual}",
        path.display()
    );
}
