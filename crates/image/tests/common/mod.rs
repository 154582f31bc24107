//! Shared helpers for the image tests: a scratch directory, sample records,
//! a sample image, and ways to damage files while keeping the manifest
//! consistent, so that one specific check fails.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use stasis_image::*;

/// A scratch directory that is removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "stasis-image-test-{}-{}",
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

pub const PID: i32 = 100;
pub const PROCESS: &str = "process-100";
pub const MM: &str = "mm-100";
pub const FDS: &str = "fds-100";
pub const PAGES: &str = "pages-100";
pub const FILE_DATA: &str = "file-1";

pub fn identity(path: &str) -> FileIdentity {
    FileIdentity {
        path: path.to_string(),
        dev: 0x803,
        ino: 1234,
        size: 4096,
        mtime_ns: 1_700_000_000_123_456_789,
        mode: 0o100755,
    }
}

pub fn sample_process() -> Process {
    Process {
        pid: PID,
        ppid: 1,
        pgid: PID,
        sid: PID,
        comm: "sleeper".to_string(),
        exe: identity("/usr/bin/sleeper"),
        credentials: Credentials {
            uids: [1000; 4],
            gids: [1000; 4],
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
            start_brk: 0x60_0000,
            brk: 0x62_1000,
            auxv: vec![6, 4096, 0, 0],
            ..MmFields::default()
        },
        personality: 0,
        umask: 0o022,
        timer_slack_ns: 50_000,
        itimers: vec![Itimer::default(); 3],
        sigactions: vec![SigAction {
            signo: 15,
            handler: 0x40_1000,
            flags: 0x0400_0000,
            restorer: 0x40_2000,
            mask: 0,
        }],
        shared_pending: vec![Bytes(vec![7; 128])],
        threads: vec![Thread {
            tid: PID,
            comm: "sleeper".to_string(),
            regs: Registers {
                rip: 0x40_1234,
                rsp: 0x7ffd_0000_1000,
                ..Registers::default()
            },
            // Larger than ciborium's 4096-byte scratch buffer, as an XSAVE
            // area with AMX state is.
            xstate: Bytes((0..11008).map(|i| (i % 251) as u8).collect()),
            sigmask: 1 << 9,
            pending: vec![Bytes(vec![1; 128])],
            sigaltstack: SigAltStack::default(),
            rseq: Some(Rseq {
                address: 0x7f00_0000_0020,
                size: 32,
                signature: 0x5305_3053,
            }),
            robust_list: RobustList {
                head: 0x7f00_0000_0a20,
                len: 24,
            },
            clear_child_tid: 0x7f00_0000_0a10,
        }],
        cwd: "/home/user".to_string(),
        root: "/".to_string(),
        posix_timers: Vec::new(),
        zombie_exit_status: None,
        files_shared_with: None,
        fs_shared_with: None,
    }
}

pub fn vma(start: u64, end: u64, kind: VmaKind) -> Vma {
    Vma {
        start,
        end,
        prot: 3,
        shared: false,
        offset: 0,
        kind,
        file: None,
        vm_flags: vec!["rd".to_string(), "wr".to_string()],
    }
}

/// Returns a memory map with two VMAs and two page runs covering 3 pages,
/// which fits a pages file of 3 pages.
pub fn sample_memory_map() -> MemoryMap {
    let mut text = vma(0x40_0000, 0x40_2000, VmaKind::File);
    text.prot = 5;
    text.file = Some(identity("/usr/bin/sleeper"));
    MemoryMap {
        pid: PID,
        vmas: vec![text, vma(0x60_0000, 0x62_1000, VmaKind::Heap)],
        pages: vec![
            PageRun {
                address: 0x40_1000,
                pages: 1,
                offset: 0,
            },
            PageRun {
                address: 0x60_0000,
                pages: 2,
                offset: 4096,
            },
        ],
        pages_file: PAGES.to_string(),
        shared_memory: Vec::new(),
    }
}

pub fn sample_fd_table() -> FdTable {
    FdTable {
        pid: PID,
        fds: vec![
            Fd {
                fd: 0,
                cloexec: false,
                description: 1,
                file: OpenFile::CharDevice {
                    path: "/dev/null".to_string(),
                    rdev: 0x103,
                    flags: 0,
                },
            },
            Fd {
                fd: 3,
                cloexec: true,
                description: 2,
                file: OpenFile::Regular {
                    identity: identity("/tmp/scratch"),
                    flags: 2,
                    position: 17,
                    deleted: true,
                    content: Some(FILE_DATA.to_string()),
                },
            },
            Fd {
                fd: 4,
                cloexec: false,
                description: 3,
                file: OpenFile::Directory {
                    identity: identity("/home/user"),
                    flags: 0,
                    position: 0,
                },
            },
        ],
    }
}

pub fn sample_manifest() -> Manifest {
    Manifest {
        format_version: 0,
        stasis_version: "0.1.0".to_string(),
        created_unix: 1_700_000_000,
        host: Host {
            kernel_release: "6.1.0".to_string(),
            machine: "x86_64".to_string(),
            hostname: "box".to_string(),
            page_size: 4096,
            cpu_features: vec!["avx2".to_string()],
            xsave_size: 11008,
        },
        root_pid: PID,
        processes: vec![PID],
        files: Vec::new(),
        stats: DumpStats::default(),
        encryption: None,
    }
}

/// Returns the page data of the sample image: 3 pages filled with 0xa1,
/// 0xa2 and 0xa3.
pub fn sample_pages() -> Vec<u8> {
    let mut pages = Vec::new();
    for fill in [0xa1u8, 0xa2, 0xa3] {
        pages.extend(std::iter::repeat(fill).take(4096));
    }
    pages
}

pub const FILE_CONTENT: &[u8] = b"contents of a deleted file\n";

/// Writes and commits the sample image in `dir`, which must not exist.
pub fn write_sample_image(dir: &Path) -> PathBuf {
    let mut writer = ImageWriter::create(dir).expect("create image");
    writer
        .write_record(PROCESS, &sample_process())
        .expect("write process");
    writer
        .write_record(MM, &sample_memory_map())
        .expect("write memory map");
    writer
        .write_record(FDS, &sample_fd_table())
        .expect("write fd table");

    let mut pages = writer
        .data_writer(PAGES, RecordKind::Pages)
        .expect("start pages");
    let data = sample_pages();
    pages.write(&data[..4096]).expect("write first page");
    pages.write(&data[4096..]).expect("write other pages");
    writer.finish_data(pages).expect("finish pages");

    let mut file = writer
        .data_writer(FILE_DATA, RecordKind::FileData)
        .expect("start file data");
    file.write(FILE_CONTENT).expect("write file data");
    writer.finish_data(file).expect("finish file data");

    writer.commit(sample_manifest()).expect("commit")
}

/// Name of the file data file of [`large_data_image`].
pub const LARGE_DATA: &str = "file-9";
/// Length of the data of [`LARGE_DATA`]: three and a half chunks.
pub const LARGE_DATA_LEN: usize = (7 << 20) / 2;

/// Returns the data of [`LARGE_DATA`].
pub fn large_data() -> Vec<u8> {
    (0..LARGE_DATA_LEN)
        .map(|i| (i % 251) as u8 ^ (i >> 20) as u8)
        .collect()
}

/// Creates a scratch directory holding the sample image plus
/// [`LARGE_DATA`], a file data file of several chunks.
pub fn large_data_image() -> (TempDir, PathBuf) {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let mut writer = ImageWriter::create(&dir).expect("create image");
    writer
        .write_record(PROCESS, &sample_process())
        .expect("write process");
    let mut file = writer
        .data_writer(LARGE_DATA, RecordKind::FileData)
        .expect("start file data");
    for piece in large_data().chunks(700_000) {
        file.write(piece).expect("write file data");
    }
    writer.finish_data(file).expect("finish file data");
    let dir = writer.commit(sample_manifest()).expect("commit");
    (temp, dir)
}

/// Creates a scratch directory holding the sample image in `img`.
pub fn sample_image() -> (TempDir, PathBuf) {
    let temp = TempDir::new();
    let dir = write_sample_image(&temp.path().join("img"));
    (temp, dir)
}

pub fn read_manifest(dir: &Path) -> Manifest {
    let path = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&path).expect("read manifest");
    let (_, value) = decode_record_file(&bytes, &path).expect("decode manifest");
    serde_json::from_value(value).expect("manifest from JSON")
}

/// Replaces the manifest of `dir` with `manifest`, skipping all checks.
pub fn write_manifest(dir: &Path, manifest: &Manifest) {
    let value = serde_json::to_value(manifest).expect("manifest to JSON");
    let bytes = encode_record_json(RecordKind::Manifest, &value).expect("encode manifest");
    fs::write(dir.join(MANIFEST_NAME), bytes).expect("write manifest");
}

/// Changes the manifest of `dir` with `change`.
pub fn edit_manifest(dir: &Path, change: impl FnOnce(&mut Manifest)) {
    let mut manifest = read_manifest(dir);
    change(&mut manifest);
    write_manifest(dir, &manifest);
}

/// Updates the manifest entry of `name` to the file's current size and hash,
/// so that a damaged file passes the size and hash checks.
pub fn relist(dir: &Path, name: &str) {
    let bytes = fs::read(dir.join(name)).expect("read file");
    edit_manifest(dir, |manifest| {
        let entry = manifest
            .files
            .iter_mut()
            .find(|entry| entry.name == name)
            .expect("file is listed");
        let hashed = if entry.kind.is_data() {
            // The data, without the chunk hashes after it.
            let len = bytes
                .get(16..24)
                .map(|field| u64::from_le_bytes(field.try_into().unwrap()))
                .unwrap_or(0) as usize;
            bytes
                .get(4096..(4096 + len).min(bytes.len()))
                .unwrap_or_default()
        } else {
            &bytes[..]
        };
        entry.size = bytes.len() as u64;
        entry.blake3 = blake3::hash(hashed).to_hex().to_string();
    });
}

/// Changes the bytes of file `name` in `dir` with `change`.
/// Recomputes the header checksum of a record file after its payload was
/// edited, so that a test reaches the check that comes after it.
pub fn reseal_checksum(bytes: &mut [u8]) {
    let checksum = stasis_image::format::payload_checksum(&bytes[32..]);
    bytes[24..32].copy_from_slice(&checksum.to_le_bytes());
}

pub fn edit_file(dir: &Path, name: &str, change: impl FnOnce(&mut Vec<u8>)) {
    let path = dir.join(name);
    let mut bytes = fs::read(&path).expect("read file");
    change(&mut bytes);
    fs::write(&path, bytes).expect("write file");
}
