//! Semantic checks on memory maps, processes, fd tables and manifests.

mod common;

use std::path::Path;

use common::*;
use stasis_image::validate::{
    validate_fd_table, validate_ipc_namespace, validate_manifest, validate_process,
};
use stasis_image::*;

const PAGES_LEN: u64 = 3 * 4096;

/// A change to a valid record and a part of the error message it causes.
type Case<T> = (&'static str, fn(&mut T));

fn check_map(map: &MemoryMap) -> Result<(), ImageError> {
    validate_memory_map(map, PAGES_LEN, Path::new("mm-100"))
}

fn assert_map_rejected(map: &MemoryMap, expected: &str) {
    let error = check_map(map).unwrap_err();
    assert!(matches!(error, ImageError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains(expected), "{error}");
}

#[test]
fn sample_map_is_valid() {
    check_map(&sample_memory_map()).unwrap();
}

#[test]
fn run_past_end_of_pages() {
    let mut map = sample_memory_map();
    map.pages[1].offset = 2 * 4096;
    assert_map_rejected(&map, "has only 12288 bytes");
}

#[test]
fn run_overlapping_previous() {
    let mut map = sample_memory_map();
    map.vmas[0].end = 0x40_3000;
    map.vmas[1].start = 0x40_3000;
    map.pages[0].pages = 2;
    map.pages[1].address = 0x40_2000;
    assert_map_rejected(&map, "overlaps the previous run");
}

#[test]
fn runs_out_of_order() {
    let mut map = sample_memory_map();
    map.pages.swap(0, 1);
    assert_map_rejected(&map, "out of order");
}

#[test]
fn run_outside_vmas() {
    let mut map = sample_memory_map();
    map.pages[1].address = 0x50_0000;
    assert_map_rejected(&map, "not inside the VMAs");
}

#[test]
fn run_past_end_of_vma() {
    let mut map = sample_memory_map();
    map.pages[0].pages = 2;
    map.pages[1].offset = 2 * 4096;
    map.pages[1].pages = 1;
    assert_map_rejected(&map, "address 0x402000 is not mapped");
}

#[test]
fn run_across_adjacent_vmas() {
    let mut map = sample_memory_map();
    map.vmas[1].start = 0x40_2000;
    map.pages[0].pages = 2;
    map.pages[1].address = 0x40_3000;
    check_map(&map).unwrap();
}

#[test]
fn run_unaligned_or_empty() {
    let mut map = sample_memory_map();
    map.pages[0].address += 1;
    assert_map_rejected(&map, "not page-aligned");

    let mut map = sample_memory_map();
    map.pages[0].offset = 100;
    assert_map_rejected(&map, "offset that is not page-aligned");

    let mut map = sample_memory_map();
    map.pages[0].pages = 0;
    assert_map_rejected(&map, "has no pages");
}

#[test]
fn run_overflowing() {
    let mut map = sample_memory_map();
    map.pages[1].pages = u64::MAX / 2;
    assert_map_rejected(&map, "too many pages");

    let mut map = sample_memory_map();
    map.pages[1].offset = u64::MAX - 4095;
    assert_map_rejected(&map, "largest file offset");

    let mut map = sample_memory_map();
    map.vmas[1].end = u64::MAX - 4095;
    map.pages[1].address = u64::MAX - 4095;
    assert_map_rejected(&map, "largest address");
}

#[test]
fn vma_invalid() {
    let mut map = sample_memory_map();
    map.vmas[1].end = map.vmas[1].start;
    assert_map_rejected(&map, "does not end after its start");

    let mut map = sample_memory_map();
    map.vmas[1].end += 1;
    assert_map_rejected(&map, "is not page-aligned");

    let mut map = sample_memory_map();
    map.vmas[0].file = None;
    assert_map_rejected(&map, "file mapping without a file");

    let mut map = sample_memory_map();
    map.vmas[0].prot = 8;
    assert_map_rejected(&map, "protection bits");
}

#[test]
fn vmas_overlapping() {
    let mut map = sample_memory_map();
    map.vmas[1].start = 0x40_1000;
    assert_map_rejected(&map, "overlaps the previous VMA");
}

#[test]
fn map_without_pages() {
    let mut map = sample_memory_map();
    map.pages.clear();
    map.pages_file.clear();
    validate_memory_map(&map, 0, Path::new("mm-100")).unwrap();

    let mut map = sample_memory_map();
    map.pages_file = "../pages".to_string();
    assert_map_rejected(&map, "file name");
}

#[test]
fn process_invalid() {
    let path = Path::new("process-100");
    validate_process(&sample_process(), path).unwrap();

    let cases: Vec<Case<Process>> = vec![
        ("invalid PID", |p| p.pid = 0),
        ("no threads", |p| p.threads.clear()),
        ("listed twice", |p| p.threads.push(p.threads[0].clone())),
        ("128-byte siginfo_t", |p| {
            p.threads[0].pending[0].0.truncate(127)
        }),
        ("128-byte siginfo_t", |p| p.shared_pending[0].0.push(0)),
        ("invalid signal 9", |p| p.sigactions[0].signo = 9),
        ("invalid signal 65", |p| p.sigactions[0].signo = 65),
        ("two actions", |p| {
            p.sigactions.push(p.sigactions[0].clone())
        }),
        ("at most 3", |p| p.itimers.push(Itimer::default())),
        ("above hard limit", |p| p.rlimits[0].soft = 5000),
        ("invalid files_shared_with 100", |p| {
            p.files_shared_with = Some(p.pid)
        }),
        ("invalid fs_shared_with -3", |p| p.fs_shared_with = Some(-3)),
        ("fs_shared_with is set on a zombie", |p| {
            p.threads.clear();
            p.zombie_exit_status = Some(0);
            p.fs_shared_with = Some(7);
        }),
    ];
    for (expected, change) in cases {
        let mut process = sample_process();
        change(&mut process);
        let error = validate_process(&process, path).unwrap_err();
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
}

#[test]
fn fd_table_invalid() {
    let path = Path::new("fds-100");
    validate_fd_table(&sample_fd_table(), path).unwrap();

    let mut table = sample_fd_table();
    table.fds[1].fd = 0;
    let error = validate_fd_table(&table, path).unwrap_err();
    assert!(error.to_string().contains("listed twice"), "{error}");

    let mut table = sample_fd_table();
    table.fds[0].fd = -1;
    let error = validate_fd_table(&table, path).unwrap_err();
    assert!(
        error.to_string().contains("invalid file descriptor"),
        "{error}"
    );

    let mut table = sample_fd_table();
    if let OpenFile::Regular { content, .. } = &mut table.fds[1].file {
        *content = Some("/etc/passwd".to_string());
    }
    let error = validate_fd_table(&table, path).unwrap_err();
    assert!(error.to_string().contains("/etc/passwd"), "{error}");
}

/// Returns an fd table with one end of an accepted Unix stream connection
/// on the path /tmp/server.sock.
fn accepted_socket_table() -> FdTable {
    let mut address = vec![1u8, 0];
    address.extend_from_slice(b"/tmp/server.sock\0");
    FdTable {
        pid: 100,
        fds: vec![Fd {
            fd: 3,
            cloexec: false,
            description: 0,
            file: OpenFile::Socket(SocketRecord {
                flags: 0,
                family: 1,
                socket_type: 1,
                protocol: 0,
                address: Bytes(address),
                backlog: None,
                options: Vec::new(),
                unix_path_inode: None,
                inode: 7,
                peer: Some(8),
                queued: None,
                accepted: true,
                pending: Vec::new(),
                senders: Vec::new(),
            }),
        }],
    }
}

#[test]
fn socket_fields_invalid() {
    let path = Path::new("fds-100");
    validate_fd_table(&accepted_socket_table(), path).unwrap();

    let cases: [Case<SocketRecord>; 7] = [
        ("marked accepted", |socket| socket.family = 2),
        ("marked accepted", |socket| socket.socket_type = 2),
        ("marked accepted", |socket| socket.peer = None),
        ("marked accepted", |socket| {
            socket.address = Bytes(vec![1, 0])
        }),
        ("marked accepted", |socket| socket.backlog = Some(16)),
        ("lists datagram senders", |socket| socket.senders = vec![8]),
        ("lists pending connections", |socket| {
            socket.accepted = false;
            socket.peer = None;
            socket.pending = vec![9];
        }),
    ];
    for (expected, change) in cases {
        let mut table = accepted_socket_table();
        let OpenFile::Socket(socket) = &mut table.fds[0].file else {
            unreachable!("the table holds a socket");
        };
        change(socket);
        let error = validate_fd_table(&table, path).unwrap_err();
        assert!(error.to_string().contains(expected), "{error}");
    }

    let mut table = accepted_socket_table();
    if let OpenFile::Socket(socket) = &mut table.fds[0].file {
        socket.accepted = false;
        socket.peer = None;
        socket.backlog = Some(16);
        socket.pending = vec![9];
    }
    validate_fd_table(&table, path).unwrap();
}

#[test]
fn manifest_invalid() {
    let path = Path::new("manifest");
    let mut valid = sample_manifest();
    valid.format_version = 1;
    validate_manifest(&valid, path).unwrap();

    let entry = FileEntry {
        name: "pages-100".to_string(),
        kind: RecordKind::Pages,
        size: 4096,
        blake3: "0".repeat(64),
    };
    let cases: Vec<Case<Manifest>> = vec![
        ("format_version is 0", |m| m.format_version = 0),
        ("listed twice", |m| m.processes.push(PID)),
        ("invalid PID -1", |m| m.processes.push(-1)),
        ("reserved name", |m| {
            m.files[0].name = "manifest".to_string()
        }),
        ("kind manifest", |m| m.files[0].kind = RecordKind::Manifest),
        ("multiple of 4096", |m| m.files[0].size = 4097),
        ("at least 32 bytes", |m| {
            m.files[0].kind = RecordKind::Process;
            m.files[0].size = 31;
        }),
    ];
    for (expected, change) in cases {
        let mut manifest = valid.clone();
        manifest.files.push(entry.clone());
        change(&mut manifest);
        let error = validate_manifest(&manifest, path).unwrap_err();
        assert!(error.to_string().contains(expected), "{expected}: {error}");
    }
}

fn sample_ipc_namespace() -> IpcNamespace {
    let perms = |key, id| IpcPerms {
        key,
        id,
        uid: 1000,
        gid: 1000,
        cuid: 1000,
        cgid: 1000,
        mode: 0o640,
    };
    IpcNamespace {
        shm: vec![SysvShm {
            perms: perms(0x1234, 32768),
            size: 5000,
            contents: "sysv-shm-32768".to_string(),
            removed: false,
            locked: false,
        }],
        semaphores: vec![SysvSemaphores {
            perms: perms(0, 1),
            values: vec![1, 7],
        }],
        queues: vec![SysvQueue {
            perms: perms(0x1235, 1),
            max_bytes: 16384,
            messages: vec![SysvMessage {
                mtype: 2,
                data: Bytes(b"hello".to_vec()),
            }],
        }],
        sysctls: vec![IpcSysctl {
            name: "sem".to_string(),
            value: "32000\t1024000000\t500\t32000".to_string(),
        }],
    }
}

#[test]
fn ipc_namespace_invalid() {
    let path = Path::new("ipc");
    validate_ipc_namespace(&sample_ipc_namespace(), path).unwrap();

    let cases: Vec<Case<IpcNamespace>> = vec![
        ("invalid ID -1", |ipc| ipc.shm[0].perms.id = -1),
        ("segment 32768 is listed twice", |ipc| {
            let mut second = ipc.shm[0].clone();
            second.perms.key = 0;
            ipc.shm.push(second);
        }),
        ("file name", |ipc| ipc.shm[0].contents = "../x".to_string()),
        ("key 0x1234, which an earlier", |ipc| {
            let mut second = ipc.shm[0].clone();
            second.perms.id = 1;
            ipc.shm.push(second);
        }),
        ("permission bits only", |ipc| {
            ipc.semaphores[0].perms.mode = 0o4755
        }),
        ("has no semaphores", |ipc| ipc.semaphores[0].values.clear()),
        ("above the maximum 32767", |ipc| {
            ipc.semaphores[0].values[1] = 40000
        }),
        ("type 0, expected at least 1", |ipc| {
            ipc.queues[0].messages[0].mtype = 0
        }),
        ("is not one of the IPC limits", |ipc| {
            ipc.sysctls[0].name = "core_pattern".to_string()
        }),
        ("sysctl \"sem\" is listed twice", |ipc| {
            ipc.sysctls.push(ipc.sysctls[0].clone())
        }),
        ("expected 1 to 64 digits", |ipc| {
            ipc.sysctls[0].value = "1\n2".to_string()
        }),
    ];
    for (expected, change) in cases {
        let mut ipc = sample_ipc_namespace();
        change(&mut ipc);
        let error = validate_ipc_namespace(&ipc, path).unwrap_err();
        assert!(error.to_string().contains(expected), "{expected}: {error}");
        assert!(error.to_string().contains("ipc"), "{error}");
    }
}

#[test]
fn sysv_attachment_needs_segment_id() {
    let mut map = sample_memory_map();
    map.vmas[0].kind = VmaKind::SysvShm;
    map.vmas[0].shared = true;
    map.vmas[0].file = None;
    assert_map_rejected(&map, "SysV shared memory attachment");
}
