//! System V IPC: shared memory segments, semaphore sets and message queues
//! of the calling thread's IPC namespace.
//!
//! The calls act on the namespace of the calling thread, so a caller that
//! works on another namespace runs them in a thread that entered it with
//! [`enter_ipc_namespace`]. The structures are the kernel's 64-bit layouts
//! for x86-64 (`struct ipc64_perm`, `shmid64_ds`, `semid64_ds`,
//! `msqid64_ds` in include/uapi), passed straight to the system calls.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::{LinuxError, Result};

const IPC_STAT: i32 = 2;
const IPC_SET: i32 = 1;
const IPC_RMID: i32 = 0;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const GETALL: i32 = 13;
const SETALL: i32 = 17;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
/// msgrcv flag that copies the message at the index given as the type,
/// leaving the queue unchanged (needs CONFIG_CHECKPOINT_RESTORE).
const MSG_COPY: i32 = 0o40000;
/// Mode bit of a shared memory segment removed with IPC_RMID while still
/// attached.
pub const SHM_DEST: u32 = 0o1000;
/// Mode bit of a shared memory segment locked in memory with SHM_LOCK.
pub const SHM_LOCKED: u32 = 0o2000;
pub const SHM_RDONLY: i32 = 0o10000;
pub const SHM_EXEC: i32 = 0o100000;

/// `struct ipc64_perm` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IpcPerm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    seq: u16,
    pad: u16,
    unused: [u64; 2],
}

/// `struct shmid64_ds` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ShmDs {
    pub perm: IpcPerm,
    pub size: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
    unused: [u64; 2],
}

/// `struct semid64_ds` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SemDs {
    pub perm: IpcPerm,
    pub otime: i64,
    unused1: u64,
    pub ctime: i64,
    unused2: u64,
    pub nsems: u64,
    unused: [u64; 2],
}

/// `struct msqid64_ds` on x86-64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MsgDs {
    pub perm: IpcPerm,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    /// Bytes in the queue.
    pub cbytes: u64,
    /// Messages in the queue.
    pub qnum: u64,
    /// Maximum bytes in the queue.
    pub qbytes: u64,
    pub lspid: i32,
    pub lrpid: i32,
    unused: [u64; 2],
}

fn check(op: &'static str, ret: libc::c_long) -> Result<i64> {
    if ret < 0 {
        Err(LinuxError::Syscall {
            op,
            errno: Errno::last(),
        })
    } else {
        Ok(ret)
    }
}

/// Moves the calling thread into the IPC namespace of `pid`. Only the
/// calling thread changes namespace, so callers run this in a thread of
/// its own and end that thread when done.
pub fn enter_ipc_namespace(pid: i32) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/ipc"));
    let file = File::open(&path).map_err(|source| LinuxError::Io { path, source })?;
    // SAFETY: setns on a valid namespace fd; it changes only the calling
    // thread's IPC namespace.
    let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWIPC) };
    check("setns(CLONE_NEWIPC)", ret as libc::c_long).map(drop)
}

/// Returns the IDs of every object of one kind in the namespace, listed by
/// index with the `*_STAT_ANY` command. `stat` runs that command for one
/// index and returns the object's ID.
fn list_ids(
    op: &'static str,
    mut info: impl FnMut() -> libc::c_long,
    stat: impl Fn(i32) -> libc::c_long,
) -> Result<Vec<i32>> {
    let max_index = check(op, info())?;
    let mut ids = Vec::new();
    for index in 0..=max_index as i32 {
        let id = stat(index);
        if id >= 0 {
            ids.push(id as i32);
        } else if Errno::last() != Errno::EINVAL {
            return Err(LinuxError::Syscall {
                op,
                errno: Errno::last(),
            });
        }
    }
    Ok(ids)
}

/// Lists the IDs of the shared memory segments of the namespace.
pub fn shm_ids() -> Result<Vec<i32>> {
    let mut buf = [0u64; 32];
    list_ids(
        "shmctl(SHM_STAT_ANY)",
        // SAFETY: SHM_INFO writes a struct shm_info, smaller than buf.
        || unsafe { libc::syscall(libc::SYS_shmctl, 0, SHM_INFO, buf.as_mut_ptr()) },
        |index| {
            let mut ds = ShmDs::default();
            // SAFETY: SHM_STAT_ANY writes one shmid64_ds.
            unsafe { libc::syscall(libc::SYS_shmctl, index, SHM_STAT_ANY, &mut ds) }
        },
    )
}

/// Lists the IDs of the semaphore sets of the namespace.
pub fn sem_ids() -> Result<Vec<i32>> {
    let mut buf = [0u64; 32];
    list_ids(
        "semctl(SEM_STAT_ANY)",
        // SAFETY: SEM_INFO writes a struct seminfo, smaller than buf.
        || unsafe { libc::syscall(libc::SYS_semctl, 0, 0, SEM_INFO, buf.as_mut_ptr()) },
        |index| {
            let mut ds = SemDs::default();
            // SAFETY: SEM_STAT_ANY writes one semid64_ds.
            unsafe { libc::syscall(libc::SYS_semctl, index, 0, SEM_STAT_ANY, &mut ds) }
        },
    )
}

/// Lists the IDs of the message queues of the namespace.
pub fn msg_ids() -> Result<Vec<i32>> {
    let mut buf = [0u64; 32];
    list_ids(
        "msgctl(MSG_STAT_ANY)",
        // SAFETY: MSG_INFO writes a struct msginfo, smaller than buf.
        || unsafe { libc::syscall(libc::SYS_msgctl, 0, MSG_INFO, buf.as_mut_ptr()) },
        |index| {
            let mut ds = MsgDs::default();
            // SAFETY: MSG_STAT_ANY writes one msqid64_ds.
            unsafe { libc::syscall(libc::SYS_msgctl, index, MSG_STAT_ANY, &mut ds) }
        },
    )
}

/// Reads the state of shared memory segment `id` (IPC_STAT).
pub fn shm_stat(id: i32) -> Result<ShmDs> {
    let mut ds = ShmDs::default();
    // SAFETY: IPC_STAT writes one shmid64_ds.
    check("shmctl(IPC_STAT)", unsafe {
        libc::syscall(libc::SYS_shmctl, id, IPC_STAT, &mut ds)
    })?;
    Ok(ds)
}

/// Reads the state of semaphore set `id` (IPC_STAT).
pub fn sem_stat(id: i32) -> Result<SemDs> {
    let mut ds = SemDs::default();
    // SAFETY: IPC_STAT writes one semid64_ds.
    check("semctl(IPC_STAT)", unsafe {
        libc::syscall(libc::SYS_semctl, id, 0, IPC_STAT, &mut ds)
    })?;
    Ok(ds)
}

/// Reads the state of message queue `id` (IPC_STAT).
pub fn msg_stat(id: i32) -> Result<MsgDs> {
    let mut ds = MsgDs::default();
    // SAFETY: IPC_STAT writes one msqid64_ds.
    check("msgctl(IPC_STAT)", unsafe {
        libc::syscall(libc::SYS_msgctl, id, IPC_STAT, &mut ds)
    })?;
    Ok(ds)
}

/// Attaches shared memory segment `id` to the calling process, read-only
/// unless `writable`, and returns the address.
fn attach(id: i32, writable: bool) -> Result<*mut u8> {
    let flags = if writable { 0 } else { SHM_RDONLY };
    // SAFETY: shmat with a null address lets the kernel pick a free range.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if addr as isize == -1 {
        return Err(LinuxError::Syscall {
            op: "shmat",
            errno: Errno::last(),
        });
    }
    Ok(addr as *mut u8)
}

/// Runs `read` on the first `len` bytes of shared memory segment `id`,
/// which is attached read-only to the calling process for the call. `len`
/// must not exceed the segment's size, and no process may write to the
/// segment meanwhile.
pub fn with_shm_contents<T>(id: i32, len: usize, read: impl FnOnce(&[u8]) -> T) -> Result<T> {
    let addr = attach(id, false)?;
    // SAFETY: the segment is mapped at addr for at least `len` bytes, the
    // caller guarantees that nothing writes to it, and it is detached only
    // after `read` returns.
    let result = read(unsafe { std::slice::from_raw_parts(addr, len) });
    // SAFETY: addr is the attachment made above.
    unsafe { libc::shmdt(addr as *const libc::c_void) };
    Ok(result)
}

/// Runs `fill` on the first `len` bytes of shared memory segment `id`,
/// which is attached writable to the calling process for the call. `len`
/// must not exceed the segment's size, and no other process may use the
/// segment meanwhile.
pub fn with_shm_contents_mut<T>(
    id: i32,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> T,
) -> Result<T> {
    let addr = attach(id, true)?;
    // SAFETY: the segment is mapped writable at addr for at least `len`
    // bytes, the caller guarantees that nothing else uses it, and it is
    // detached only after `fill` returns.
    let result = fill(unsafe { std::slice::from_raw_parts_mut(addr, len) });
    // SAFETY: addr is the attachment made above.
    unsafe { libc::shmdt(addr as *const libc::c_void) };
    Ok(result)
}

/// Returns the values of every semaphore of set `id` (GETALL).
pub fn sem_values(id: i32, count: usize) -> Result<Vec<u16>> {
    let mut values = vec![0u16; count];
    // SAFETY: GETALL writes one unsigned short per semaphore of the set,
    // which has `count` semaphores.
    check("semctl(GETALL)", unsafe {
        libc::syscall(libc::SYS_semctl, id, 0, GETALL, values.as_mut_ptr())
    })?;
    Ok(values)
}

/// Sets the values of every semaphore of set `id` (SETALL).
pub fn set_sem_values(id: i32, values: &[u16]) -> Result<()> {
    // SAFETY: SETALL reads one unsigned short per semaphore of the set,
    // which the caller created with values.len() semaphores.
    check("semctl(SETALL)", unsafe {
        libc::syscall(libc::SYS_semctl, id, 0, SETALL, values.as_ptr())
    })
    .map(drop)
}

/// Copies the messages of queue `id` without removing them (msgrcv with
/// MSG_COPY), oldest first, as (type, data). `qnum` and `cbytes` come from
/// [`msg_stat`]; no message is longer than the queue's byte count.
pub fn msg_copy_all(id: i32, qnum: u64, cbytes: u64) -> Result<Vec<(i64, Vec<u8>)>> {
    let mut buf = vec![0u8; 8 + cbytes as usize];
    let mut messages = Vec::with_capacity(qnum as usize);
    for index in 0..qnum {
        // SAFETY: buf has room for a long mtype and cbytes bytes of text, and
        // msgrcv writes at most that much.
        let len = check("msgrcv(MSG_COPY)", unsafe {
            libc::syscall(
                libc::SYS_msgrcv,
                id,
                buf.as_mut_ptr(),
                cbytes,
                index,
                libc::IPC_NOWAIT | MSG_COPY,
            )
        })? as usize;
        let mtype = i64::from_ne_bytes(buf[..8].try_into().expect("8 bytes"));
        messages.push((mtype, buf[8..8 + len].to_vec()));
    }
    Ok(messages)
}

/// Sends one message to queue `id` without waiting for room.
pub fn msg_send(id: i32, mtype: i64, data: &[u8]) -> Result<()> {
    let mut buf = Vec::with_capacity(8 + data.len());
    buf.extend_from_slice(&mtype.to_ne_bytes());
    buf.extend_from_slice(data);
    // SAFETY: buf contains a long mtype followed by data.len() bytes.
    check("msgsnd", unsafe {
        libc::syscall(
            libc::SYS_msgsnd,
            id,
            buf.as_ptr(),
            data.len(),
            libc::IPC_NOWAIT,
        )
    })
    .map(drop)
}

/// Creates a shared memory segment and returns its ID.
pub fn shm_create(key: i32, size: u64, flags: i32) -> Result<i32> {
    // SAFETY: shmget takes only integer arguments.
    check("shmget", unsafe {
        libc::syscall(libc::SYS_shmget, key, size, flags)
    })
    .map(|id| id as i32)
}

/// Creates a semaphore set and returns its ID.
pub fn sem_create(key: i32, count: usize, flags: i32) -> Result<i32> {
    // SAFETY: semget takes only integer arguments.
    check("semget", unsafe {
        libc::syscall(libc::SYS_semget, key, count, flags)
    })
    .map(|id| id as i32)
}

/// Creates a message queue and returns its ID.
pub fn msg_create(key: i32, flags: i32) -> Result<i32> {
    // SAFETY: msgget takes only integer arguments.
    check("msgget", unsafe {
        libc::syscall(libc::SYS_msgget, key, flags)
    })
    .map(|id| id as i32)
}

/// Sets owner and mode of segment `id` (IPC_SET).
pub fn shm_set(id: i32, uid: u32, gid: u32, mode: u32) -> Result<()> {
    let mut ds = ShmDs::default();
    ds.perm.uid = uid;
    ds.perm.gid = gid;
    ds.perm.mode = mode;
    // SAFETY: IPC_SET reads one shmid64_ds.
    check("shmctl(IPC_SET)", unsafe {
        libc::syscall(libc::SYS_shmctl, id, IPC_SET, &ds)
    })
    .map(drop)
}

/// Sets owner and mode of semaphore set `id` (IPC_SET).
pub fn sem_set(id: i32, uid: u32, gid: u32, mode: u32) -> Result<()> {
    let mut ds = SemDs::default();
    ds.perm.uid = uid;
    ds.perm.gid = gid;
    ds.perm.mode = mode;
    // SAFETY: IPC_SET reads one semid64_ds.
    check("semctl(IPC_SET)", unsafe {
        libc::syscall(libc::SYS_semctl, id, 0, IPC_SET, &ds)
    })
    .map(drop)
}

/// Sets owner, mode and maximum byte count of queue `id` (IPC_SET).
/// A maximum above the msgmnb limit needs CAP_SYS_RESOURCE.
pub fn msg_set(id: i32, uid: u32, gid: u32, mode: u32, qbytes: u64) -> Result<()> {
    let mut ds = MsgDs::default();
    ds.perm.uid = uid;
    ds.perm.gid = gid;
    ds.perm.mode = mode;
    ds.qbytes = qbytes;
    // SAFETY: IPC_SET reads one msqid64_ds.
    check("msgctl(IPC_SET)", unsafe {
        libc::syscall(libc::SYS_msgctl, id, IPC_SET, &ds)
    })
    .map(drop)
}

/// Removes segment `id` (IPC_RMID); an attached segment lives on until
/// its last attachment goes.
pub fn shm_remove(id: i32) -> Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument.
    check("shmctl(IPC_RMID)", unsafe {
        libc::syscall(libc::SYS_shmctl, id, IPC_RMID, 0)
    })
    .map(drop)
}

/// Returns, for each process of `pids`, whether it has a System V
/// semaphore undo list. A process gets one from its first semop with
/// SEM_UNDO, or shares it with the process that created it with
/// CLONE_SYSVSEM. pthread_create passes that flag, and creating a thread
/// makes the list if there is none yet.
///
/// kcmp(KCMP_SYSVSEM) only compares the lists of two processes, so each
/// process is compared with a reference that has none: a child forked for
/// the purpose, which exits at once and stays a zombie until the
/// comparisons are done. stasis itself cannot be the reference, because
/// its own threads gave it a list. A kernel without System V IPC has no
/// undo lists, and its kcmp fails with EOPNOTSUPP.
pub fn have_sem_undo(pids: &[i32]) -> Result<Vec<bool>> {
    const KCMP_SYSVSEM: i32 = 6;
    // SAFETY: the child only calls _exit, which is async-signal-safe.
    let reference = unsafe { libc::fork() };
    if reference < 0 {
        return Err(LinuxError::Syscall {
            op: "fork",
            errno: Errno::last(),
        });
    }
    if reference == 0 {
        // SAFETY: _exit ends the child without running any handler.
        unsafe { libc::_exit(0) };
    }

    let mut result = Ok(Vec::with_capacity(pids.len()));
    for &pid in pids {
        // SAFETY: kcmp takes only integer arguments.
        let ret = unsafe { libc::syscall(libc::SYS_kcmp, pid, reference, KCMP_SYSVSEM, 0, 0) };
        let has = if ret < 0 && Errno::last() == Errno::EOPNOTSUPP {
            Ok(false)
        } else {
            check("kcmp(KCMP_SYSVSEM)", ret).map(|order| order != 0)
        };
        match (&mut result, has) {
            (Ok(list), Ok(has)) => list.push(has),
            (Ok(_), Err(error)) => {
                result = Err(error);
                break;
            }
            (Err(_), _) => break,
        }
    }

    let mut status = 0;
    // SAFETY: waitpid on the child forked above, with a valid status
    // pointer.
    unsafe { libc::waitpid(reference, &mut status, 0) };
    result
}

/// Locks segment `id` in memory (SHM_LOCK), as a process did that had
/// CAP_IPC_LOCK or room under RLIMIT_MEMLOCK.
pub fn shm_lock(id: i32) -> Result<()> {
    const SHM_LOCK: i32 = 11;
    // SAFETY: SHM_LOCK ignores the buffer argument.
    check("shmctl(SHM_LOCK)", unsafe {
        libc::syscall(libc::SYS_shmctl, id, SHM_LOCK, 0)
    })
    .map(drop)
}
