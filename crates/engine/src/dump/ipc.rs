//! Saving the System V IPC objects of the tree's own IPC namespace.
//!
//! The objects are read by a thread of stasis that enters the tree's IPC
//! namespace with setns(2), which changes the namespace of that thread
//! only. Each shared memory segment is attached read-only to stasis for
//! the copy, and semaphore values come from semctl(GETALL). Messages are
//! copied with msgrcv(MSG_COPY), which leaves them in the queue, so a tree
//! resumed after the dump finds every object as it was.

use std::path::{Path, PathBuf};

use stasis_image::{
    ImageWriter, IpcNamespace, IpcPerms, IpcSysctl, RecordKind, SysvMessage, SysvQueue,
    SysvSemaphores, SysvShm,
};
use stasis_linux::sysv::{self, IpcPerm};
use stasis_linux::LinuxError;
use tracing::warn;

use crate::dump::tree::Member;
use crate::error::{DumpError, DumpStep};

/// Bytes of a segment written to the image per call.
const COPY_CHUNK: usize = 1 << 20;

/// Returns the IPC namespace of `pid` as its /proc/PID/ns/ipc link reads
/// (`ipc:[INODE]`).
pub fn namespace_of(pid: i32) -> Result<PathBuf, DumpError> {
    let path = PathBuf::from(format!("/proc/{pid}/ns/ipc"));
    std::fs::read_link(&path).map_err(|source| DumpError::Io { path, source })
}

/// Rejects process `pid` if one of its threads runs in an IPC namespace
/// other than `namespace`, that of the root of the tree, because the image
/// contains one IPC namespace. Each thread has its own namespace link,
/// because setns(2) moves only the calling thread.
pub fn check_threads(pid: i32, namespace: &Path) -> Result<(), DumpError> {
    let task_dir = PathBuf::from(format!("/proc/{pid}/task"));
    let tasks = std::fs::read_dir(&task_dir).map_err(|source| DumpError::Io {
        path: task_dir.clone(),
        source,
    })?;
    for task in tasks.flatten() {
        let link = task.path().join("ns/ipc");
        let thread = match std::fs::read_link(&link) {
            Ok(thread) => thread,
            // The thread exited since the directory was listed.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(DumpError::Io { path: link, source }),
        };
        if thread != namespace {
            let tid = task.file_name().to_string_lossy().into_owned();
            let who = if tid == pid.to_string() {
                "it runs".to_owned()
            } else {
                format!("its thread {tid} runs")
            };
            return Err(DumpError::Unsupported {
                pid,
                reason: format!(
                    "{who} in IPC namespace {}, but the root of the tree runs in {}; \
                     stasis saves one IPC namespace per tree",
                    thread.display(),
                    namespace.display()
                ),
            });
        }
    }
    Ok(())
}

/// Warns about each process with a System V semaphore undo list, whose
/// adjustments the image loses: the kernel does not show them. A restored
/// process that exits no longer reverts the semop calls it made with
/// SEM_UNDO before the dump.
///
/// A process gets an undo list from its first semop with SEM_UNDO, but
/// also, empty, from creating a thread (CLONE_SYSVSEM), and kcmp shows
/// only whether the list exists. So a list does not prove SEM_UNDO use,
/// and it is reported rather than rejected.
pub fn warn_sem_undo(members: &[Member]) -> Result<(), DumpError> {
    let pids: Vec<i32> = members
        .iter()
        .filter_map(|member| match member {
            Member::Live(frozen) => Some(frozen.pid),
            Member::Zombie(_) => None,
        })
        .collect();
    let lists = sysv::have_sem_undo(&pids).step(pids[0], "comparing semaphore undo lists")?;
    for (pid, has_list) in pids.into_iter().zip(lists) {
        if has_list {
            warn!(
                pid,
                "the process has a System V semaphore undo list (from semop with SEM_UNDO, \
                 or created with its threads); its adjustments are not saved, so after \
                 restore its exit no longer reverts semop calls made with SEM_UNDO before the dump"
            );
        }
    }
    Ok(())
}

/// Rejects a namespace that a process outside the tree also uses: that
/// process could change the objects during the dump, and would not share
/// them with the restored tree.
pub fn check_no_outside_users(members: &[Member], namespace: &Path) -> Result<(), DumpError> {
    let inside: Vec<i32> = members.iter().map(Member::pid).collect();
    let root = inside[0];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let Some(outside) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if inside.contains(&outside) {
            continue;
        }
        if std::fs::read_link(format!("/proc/{outside}/ns/ipc"))
            .ok()
            .as_deref()
            == Some(namespace)
        {
            let comm =
                stasis_linux::proc::comm(outside, outside).unwrap_or_else(|_| "unknown".into());
            return Err(DumpError::Unsupported {
                pid: root,
                reason: format!(
                    "its IPC namespace {} is also used by process {outside} ({comm}), which is outside the dumped tree; \
                     dump a common ancestor of both, or stop that process",
                    namespace.display()
                ),
            });
        }
    }
    Ok(())
}

/// Saves every System V object of the IPC namespace of `pid` and the
/// namespace's IPC limits, writing segment contents as file data files.
// NOTE: POSIX message queues also belong to the IPC namespace. One that a
// process has open is rejected with its fd (files.rs), but one that no
// process has open is not seen and is lost.
pub fn save(pid: i32, image: &mut ImageWriter) -> Result<IpcNamespace, DumpError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                sysv::enter_ipc_namespace(pid).step(pid, "entering the IPC namespace")?;
                save_objects(pid, image)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(DumpError::Unsupported {
                    pid,
                    reason: "the thread reading the IPC namespace panicked".into(),
                })
            })
    })
}

/// Reads the objects and limits for [`save`], in a thread inside the
/// namespace.
fn save_objects(pid: i32, image: &mut ImageWriter) -> Result<IpcNamespace, DumpError> {
    let mut ipc = IpcNamespace::default();
    for name in stasis_image::validate::IPC_SYSCTLS {
        ipc.sysctls.push(IpcSysctl {
            name: name.to_owned(),
            value: read_sysctl(name)?.trim_end().to_owned(),
        });
    }

    // With shm_rmid_forced set, the kernel destroys a segment when its last
    // attachment goes, so the copy of a segment that no process attaches
    // would destroy it. The setting is off while the segments are copied.
    let forced = ipc
        .sysctls
        .iter()
        .find(|sysctl| sysctl.name == "shm_rmid_forced" && sysctl.value != "0")
        .map(|sysctl| sysctl.value.clone());
    if forced.is_some() {
        write_sysctl("shm_rmid_forced", "0")?;
    }
    let saved = save_shm(pid, image, &mut ipc);
    if let Some(value) = &forced {
        write_sysctl("shm_rmid_forced", value)?;
    }
    saved?;
    save_semaphores_and_queues(pid, &mut ipc)?;
    Ok(ipc)
}

fn failed(pid: i32, what: String) -> impl FnOnce(LinuxError) -> DumpError {
    move |source: LinuxError| DumpError::Unsupported {
        pid,
        reason: format!("reading {what} of its IPC namespace failed: {source}"),
    }
}

/// Saves every shared memory segment, writing its contents as a file data
/// file.
// NOTE: IPC_STAT does not show SHM_HUGETLB, so a huge-page segment is
// saved, and restored, as an ordinary one.
fn save_shm(pid: i32, image: &mut ImageWriter, ipc: &mut IpcNamespace) -> Result<(), DumpError> {
    let failed = |what: String| failed(pid, what);
    for id in sysv::shm_ids().map_err(failed("the shared memory segments".into()))? {
        let what = format!("shared memory segment {id}");
        let ds = sysv::shm_stat(id).map_err(failed(what.clone()))?;
        let name = stasis_image::format::sysv_shm_file_name(id);
        let mut writer = image.data_writer(&name, RecordKind::FileData)?;
        // Every process of the tree is stopped, so nothing writes to the
        // segment during the copy.
        sysv::with_shm_contents(id, ds.size as usize, |contents| {
            contents
                .chunks(COPY_CHUNK)
                .try_for_each(|chunk| writer.write(chunk).map(drop))
        })
        .map_err(failed(what))??;
        image.finish_data(writer)?;
        ipc.shm.push(SysvShm {
            perms: perms(id, &ds.perm),
            size: ds.size,
            contents: name,
            removed: ds.perm.mode & sysv::SHM_DEST != 0,
            locked: ds.perm.mode & sysv::SHM_LOCKED != 0,
        });
    }
    Ok(())
}

/// Saves every semaphore set with its values and every message queue with
/// its messages.
fn save_semaphores_and_queues(pid: i32, ipc: &mut IpcNamespace) -> Result<(), DumpError> {
    let failed = |what: String| failed(pid, what);
    for id in sysv::sem_ids().map_err(failed("the semaphore sets".into()))? {
        let what = format!("semaphore set {id}");
        let ds = sysv::sem_stat(id).map_err(failed(what.clone()))?;
        let values = sysv::sem_values(id, ds.nsems as usize).map_err(failed(what))?;
        ipc.semaphores.push(SysvSemaphores {
            perms: perms(id, &ds.perm),
            values,
        });
    }

    for id in sysv::msg_ids().map_err(failed("the message queues".into()))? {
        let what = format!("message queue {id}");
        let ds = sysv::msg_stat(id).map_err(failed(what.clone()))?;
        let messages = sysv::msg_copy_all(id, ds.qnum, ds.cbytes).map_err(failed(what))?;
        ipc.queues.push(SysvQueue {
            perms: perms(id, &ds.perm),
            max_bytes: ds.qbytes,
            messages: messages
                .into_iter()
                .map(|(mtype, data)| SysvMessage {
                    mtype,
                    data: stasis_image::Bytes(data),
                })
                .collect(),
        });
    }

    Ok(())
}

/// Reads /proc/sys/kernel/`name` of the calling thread's IPC namespace.
fn read_sysctl(name: &str) -> Result<String, DumpError> {
    let path = PathBuf::from(format!("/proc/sys/kernel/{name}"));
    std::fs::read_to_string(&path).map_err(|source| DumpError::Io { path, source })
}

/// Writes /proc/sys/kernel/`name` of the calling thread's IPC namespace.
fn write_sysctl(name: &str, value: &str) -> Result<(), DumpError> {
    let path = PathBuf::from(format!("/proc/sys/kernel/{name}"));
    std::fs::write(&path, value).map_err(|source| DumpError::Io { path, source })
}

fn perms(id: i32, perm: &IpcPerm) -> IpcPerms {
    IpcPerms {
        key: perm.key,
        id,
        uid: perm.uid,
        gid: perm.gid,
        cuid: perm.cuid,
        cgid: perm.cgid,
        mode: perm.mode & 0o777,
    }
}
