//! Recreating the System V IPC objects of a tree that had its own IPC
//! namespace.
//!
//! The root is created in a new IPC namespace (CLONE_NEWIPC), and a thread
//! of stasis enters it with setns(2) to create every object there before
//! any process maps one. Each object gets its saved ID: the kernel gives
//! the next object of a kind the ID written to /proc/sys/kernel/shm_next_id
//! (sem_next_id, msg_next_id), a file that exists per namespace. If the
//! restore fails later, the namespace and its objects go away with the
//! killed processes.

use std::path::PathBuf;

use stasis_image::{Image, IpcNamespace, IpcPerms, MemoryMap, RecordKind, VmaKind};
use stasis_linux::{sysv, LinuxError};

use tracing::warn;

use crate::error::RestoreError;

/// Reads the IPC namespace record, if the image has one, and checks it
/// against the memory maps: every attached segment must be in it, with
/// contents of its size, and every attachment must lie within its
/// segment.
pub fn read(image: &Image, maps: &[&MemoryMap]) -> Result<Option<IpcNamespace>, RestoreError> {
    let name = stasis_image::format::IPC_NAMESPACE_FILE_NAME;
    let listed = image
        .manifest()
        .files
        .iter()
        .any(|entry| entry.name == name && entry.kind == RecordKind::IpcNamespace);
    let ipc: Option<IpcNamespace> = if listed {
        Some(image.read_record(name)?)
    } else {
        None
    };
    let invalid = |file: String, message: String| {
        RestoreError::Image(stasis_image::ImageError::Invalid {
            path: image.dir().join(file),
            message,
        })
    };

    if let Some(ipc) = &ipc {
        for segment in &ipc.shm {
            let data = image.data_file(&segment.contents, RecordKind::FileData)?;
            if data.len != segment.size {
                return Err(invalid(
                    name.to_owned(),
                    format!(
                        "shared memory segment {} has size {}, but its contents {:?} have {} bytes",
                        segment.perms.id, segment.size, segment.contents, data.len
                    ),
                ));
            }
        }
    }
    for map in maps {
        for vma in map.vmas.iter().filter(|vma| vma.kind == VmaKind::SysvShm) {
            let id = vma.file.as_ref().map(|file| file.ino).unwrap_or(u64::MAX);
            let found = ipc
                .as_ref()
                .and_then(|ipc| ipc.shm.iter().find(|segment| segment.perms.id as u64 == id));
            let file = stasis_image::format::memory_map_file_name(map.pid);
            let Some(segment) = found else {
                return Err(invalid(
                    file,
                    format!(
                        "VMA {:#x}-{:#x} attaches System V shared memory segment {id} (field file.ino), \
                         which the image's IPC namespace record does not list",
                        vma.start, vma.end
                    ),
                ));
            };
            let whole = segment.size.div_ceil(crate::PAGE_SIZE) * crate::PAGE_SIZE;
            let size = vma.file.as_ref().map(|file| file.size).unwrap_or(0);
            let covered_end = vma.offset.checked_add(vma.end - vma.start);
            if size != segment.size || covered_end.is_none_or(|end| end > whole) {
                return Err(invalid(
                    file,
                    format!(
                        "VMA {:#x}-{:#x} attaches System V shared memory segment {id} of {} bytes, \
                         but covers {} bytes at offset {} (field offset) of a segment of {size} bytes \
                         (field file.size)",
                        vma.start,
                        vma.end,
                        segment.size,
                        vma.end - vma.start,
                        vma.offset
                    ),
                ));
            }
        }
    }
    Ok(ipc)
}

/// Runs `work` in a thread of stasis that entered the IPC namespace of
/// `pid`, and returns its result.
fn in_namespace<T: Send>(
    pid: i32,
    work: impl FnOnce() -> Result<T, RestoreError> + Send,
) -> Result<T, RestoreError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                sysv::enter_ipc_namespace(pid).map_err(|source| RestoreError::Linux {
                    pid,
                    step: "entering the new IPC namespace".into(),
                    source,
                })?;
                work()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(RestoreError::Unsupported {
                    reason: "the thread that creates the IPC objects panicked".into(),
                })
            })
    })
}

/// Creates every object of `ipc` in the IPC namespace of `pid` (the new
/// root), with its ID, key, owner, mode and contents.
pub fn create(pid: i32, ipc: &IpcNamespace, image: &Image) -> Result<(), RestoreError> {
    in_namespace(pid, || {
        // The saved limits apply while the objects are created, such as a
        // raised semmsl for a large semaphore set. shm_rmid_forced waits
        // for finish(), because with it a segment goes away when stasis
        // detaches it after filling it in.
        for sysctl in ipc
            .sysctls
            .iter()
            .filter(|sysctl| sysctl.name != "shm_rmid_forced")
        {
            write_sysctl(&sysctl.name, &sysctl.value)?;
        }

        for segment in &ipc.shm {
            let perms = &segment.perms;
            let what = format!("shared memory segment {}", perms.id);
            set_next_id("shm_next_id", perms.id)?;
            let id = sysv::shm_create(perms.key, segment.size, create_flags(perms))
                .map_err(failed(pid, &what))?;
            check_id(&what, id, perms.id)?;
            let data = image.data_reader(&segment.contents, RecordKind::FileData)?;
            fill_segment(pid, id, &data)?;
            sysv::shm_set(id, perms.uid, perms.gid, perms.mode).map_err(failed(pid, &what))?;
            if segment.locked {
                sysv::shm_lock(id).map_err(failed(pid, &what))?;
            }
        }

        for set in &ipc.semaphores {
            let perms = &set.perms;
            let what = format!("semaphore set {}", perms.id);
            set_next_id("sem_next_id", perms.id)?;
            let id = sysv::sem_create(perms.key, set.values.len(), create_flags(perms))
                .map_err(failed(pid, &what))?;
            check_id(&what, id, perms.id)?;
            sysv::set_sem_values(id, &set.values).map_err(failed(pid, &what))?;
            sysv::sem_set(id, perms.uid, perms.gid, perms.mode).map_err(failed(pid, &what))?;
        }

        // A queue may allow more bytes than msgmnb if a process with
        // CAP_SYS_RESOURCE raised it, and a message may be longer than
        // msgmax if msgmax was lowered after it was sent. Raising the limits
        // for the creation needs no such capability; finish() sets the
        // saved values.
        let largest_queue = ipc.queues.iter().map(|queue| queue.max_bytes).max();
        let largest_message = ipc
            .queues
            .iter()
            .flat_map(|queue| &queue.messages)
            .map(|message| message.data.0.len() as u64)
            .max();
        raise_limit("msgmnb", largest_queue)?;
        raise_limit("msgmax", largest_message)?;
        for queue in &ipc.queues {
            let perms = &queue.perms;
            let what = format!("message queue {}", perms.id);
            set_next_id("msg_next_id", perms.id)?;
            let id =
                sysv::msg_create(perms.key, create_flags(perms)).map_err(failed(pid, &what))?;
            check_id(&what, id, perms.id)?;
            // The saved maximum is set first, so that the saved messages fit
            // even if it is above this namespace's default (msgmnb).
            sysv::msg_set(id, perms.uid, perms.gid, perms.mode, queue.max_bytes)
                .map_err(failed(pid, &what))?;
            for message in &queue.messages {
                sysv::msg_send(id, message.mtype, &message.data.0).map_err(failed(pid, &what))?;
            }
        }
        Ok(())
    })
}

/// Finishes the namespace once every process has attached its segments:
/// removes the segments that were removed while attached (IPC_RMID), then
/// sets the saved IPC limits.
pub fn finish(pid: i32, ipc: &IpcNamespace) -> Result<(), RestoreError> {
    in_namespace(pid, || {
        for segment in ipc.shm.iter().filter(|segment| segment.removed) {
            let what = format!("shared memory segment {}", segment.perms.id);
            sysv::shm_remove(segment.perms.id).map_err(failed(pid, &what))?;
        }
        let (forced, others): (Vec<_>, Vec<_>) = ipc
            .sysctls
            .iter()
            .partition(|sysctl| sysctl.name == "shm_rmid_forced");
        for sysctl in others {
            write_sysctl(&sysctl.name, &sysctl.value)?;
        }

        // Setting shm_rmid_forced removes every segment that no process
        // attaches and whose creator has exited. stasis created every
        // segment, from a thread that has exited, so the setting is only
        // restored when no segment is left unattached.
        let Some(forced) = forced.first() else {
            return Ok(());
        };
        let mut unattached = Vec::new();
        for segment in &ipc.shm {
            let id = segment.perms.id;
            let what = format!("shared memory segment {id}");
            if sysv::shm_stat(id).map_err(failed(pid, &what))?.nattch == 0 {
                unattached.push(id);
            }
        }
        if forced.value == "0" || unattached.is_empty() {
            write_sysctl(&forced.name, &forced.value)?;
        } else {
            warn!(
                pid,
                segments = ?unattached,
                "shm_rmid_forced stays 0 in the restored IPC namespace, because setting it \
                 would remove the segments that no process attaches"
            );
        }
        Ok(())
    })
}

/// Returns the flags for shmget, semget or msgget: IPC_CREAT and the
/// permission bits, and IPC_EXCL for an object with a key, so that a
/// second object with the same key fails.
fn create_flags(perms: &IpcPerms) -> i32 {
    let mut flags = libc::IPC_CREAT | (perms.mode & 0o777) as i32;
    if perms.key != libc::IPC_PRIVATE {
        flags |= libc::IPC_EXCL;
    }
    flags
}

fn failed(pid: i32, what: &str) -> impl Fn(LinuxError) -> RestoreError + '_ {
    move |source| RestoreError::Linux {
        pid,
        step: format!("creating System V {what}"),
        source,
    }
}

fn check_id(what: &str, got: i32, expected: i32) -> Result<(), RestoreError> {
    if got == expected {
        return Ok(());
    }
    Err(RestoreError::Unsupported {
        reason: format!("System V {what} was created with ID {got} instead of {expected}"),
    })
}

fn set_next_id(name: &str, id: i32) -> Result<(), RestoreError> {
    write_sysctl(name, &id.to_string())
}

/// Writes `value` to /proc/sys/kernel/`name` of the calling thread's IPC
/// namespace.
fn write_sysctl(name: &str, value: &str) -> Result<(), RestoreError> {
    let path = PathBuf::from(format!("/proc/sys/kernel/{name}"));
    std::fs::write(&path, value).map_err(|source| RestoreError::Open {
        path: format!("{} (writing {value:?})", path.display()),
        source,
    })
}

/// Raises the limit /proc/sys/kernel/`name` to `needed` if it is lower.
fn raise_limit(name: &str, needed: Option<u64>) -> Result<(), RestoreError> {
    let Some(needed) = needed else {
        return Ok(());
    };
    let current = read_sysctl(name)?;
    if current
        .trim()
        .parse::<u64>()
        .is_ok_and(|limit| limit < needed)
    {
        write_sysctl(name, &needed.to_string())?;
    }
    Ok(())
}

fn read_sysctl(name: &str) -> Result<String, RestoreError> {
    let path = PathBuf::from(format!("/proc/sys/kernel/{name}"));
    std::fs::read_to_string(&path).map_err(|source| RestoreError::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Copies the contents in `data`, each chunk checked as it is read, into
/// segment `id`, which has the size of the contents (checked by [`read`]).
fn fill_segment(pid: i32, id: i32, data: &stasis_image::DataReader) -> Result<(), RestoreError> {
    // No process attaches the segment before the address spaces are
    // rebuilt, after this.
    sysv::with_shm_contents_mut(id, data.len() as usize, |contents| {
        let mut at = 0;
        data.for_each_chunk(|chunk: &[u8]| {
            let end = (at + chunk.len()).min(contents.len());
            contents[at..end].copy_from_slice(&chunk[..end - at]);
            at = end;
            Ok::<(), stasis_image::ImageError>(())
        })
    })
    .map_err(failed(pid, &format!("shared memory segment {id}")))?
    .map_err(RestoreError::from)
}
