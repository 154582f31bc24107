//! Processes that share an fd table (CLONE_FILES) or fs state (CLONE_FS,
//! the root, cwd and umask) without being threads of one process.
//!
//! The image records, for each process of such a group but the first, the
//! first process of the group (`files_shared_with`, `fs_shared_with`). A
//! later member is created by its parent, which is in the group, with
//! clone3 and the same flag, so it gets the parent's table or fs state.
//! The fds are installed and the cwd and umask set once, in the first
//! member; the others skip those steps.
//!
//! Every process starts with the fds that stasis opened for the restore
//! (pages files, executables, mapped files, the description pool) at
//! numbers at or above the pool's base. A process closes them once its
//! address space is rebuilt. In a shared table a close is seen by every
//! member, so the group closes them only after its last member, in
//! manifest order, has rebuilt its address space.

use std::collections::HashMap;

use crate::error::RestoreError;
use crate::restore::ProcessImage;

/// Checks the sharing fields of every process against the rest of the
/// image: the first member of the group is a live process listed earlier
/// that shares nothing itself, the parent is in the group, a member of an
/// fd table group lists no fds of its own, and a member of an fs group
/// records the same root, cwd and umask as the first member.
pub(super) fn check(processes: &[ProcessImage]) -> Result<(), RestoreError> {
    for (index, entry) in processes.iter().enumerate() {
        let process = &entry.process;
        let earlier = &processes[..index];
        for (field, owner, owner_field) in [
            (
                "files_shared_with",
                process.files_shared_with,
                (|p: &stasis_image::Process| p.files_shared_with) as fn(&_) -> _,
            ),
            (
                "fs_shared_with",
                process.fs_shared_with,
                |p: &stasis_image::Process| p.fs_shared_with,
            ),
        ] {
            let Some(owner) = owner else { continue };
            let invalid = |problem: String| RestoreError::Unsupported {
                reason: format!("process {} has {field} {owner}, but {problem}", process.pid),
            };
            let first = earlier
                .iter()
                .find(|other| other.process.pid == owner)
                .ok_or_else(|| {
                    invalid(format!(
                        "the manifest does not list process {owner} before it"
                    ))
                })?;
            if first.live.is_none() {
                return Err(invalid(format!("process {owner} is a zombie")));
            }
            if let Some(other) = owner_field(&first.process) {
                return Err(invalid(format!(
                    "process {owner} has {field} {other} itself; the field names the first process of the group"
                )));
            }
            let parent = process.ppid;
            let parent_shares = parent == owner
                || earlier.iter().any(|other| {
                    other.process.pid == parent && owner_field(&other.process) == Some(owner)
                });
            if !parent_shares {
                return Err(invalid(format!(
                    "its parent {parent} is not in that group, so clone cannot give it the shared state"
                )));
            }
        }
        if process.files_shared_with.is_some() {
            if let Some((_, table)) = &entry.live {
                if !table.fds.is_empty() {
                    return Err(RestoreError::Unsupported {
                        reason: format!(
                            "process {} has files_shared_with {}, but its fd table record lists {} fds; a shared table is saved with the first process of the group only",
                            process.pid,
                            process.files_shared_with.unwrap_or(0),
                            table.fds.len()
                        ),
                    });
                }
            }
        }
        if let Some(owner) = process.fs_shared_with {
            let first = &earlier
                .iter()
                .find(|other| other.process.pid == owner)
                .expect("checked above")
                .process;
            for (what, own, theirs) in [
                ("cwd", &process.cwd, &first.cwd),
                ("root", &process.root, &first.root),
            ] {
                if own != theirs {
                    return Err(RestoreError::Unsupported {
                        reason: format!(
                            "process {} shares its fs state with process {owner}, but records {what} {own:?} where process {owner} records {theirs:?}",
                            process.pid
                        ),
                    });
                }
            }
            if process.umask != first.umask {
                return Err(RestoreError::Unsupported {
                    reason: format!(
                        "process {} shares its fs state with process {owner}, but records umask {:o} where process {owner} records {:o}",
                        process.pid, process.umask, first.umask
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Returns the clone3 flags that give `process` the fd table and fs state
/// of its parent, as the image records.
pub(super) fn clone_flags(process: &stasis_image::Process) -> u64 {
    let mut flags = 0;
    if process.files_shared_with.is_some() {
        flags |= libc::CLONE_FILES as u64;
    }
    if process.fs_shared_with.is_some() {
        flags |= libc::CLONE_FS as u64;
    }
    flags
}

/// Returns, by PID, the processes that close the fds stasis opened for the
/// restore, each with the fd numbers its table keeps: every live process
/// with a table of its own closes them in its own table, except that a
/// shared table is closed by its last member in manifest order, keeping
/// the fds of the first member's record.
pub(super) fn closers(processes: &[ProcessImage]) -> HashMap<i32, Vec<i32>> {
    let mut last_member: HashMap<i32, i32> = HashMap::new();
    let mut kept: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in processes {
        let Some((_, table)) = &entry.live else {
            continue;
        };
        let pid = entry.process.pid;
        let group = entry.process.files_shared_with.unwrap_or(pid);
        last_member.insert(group, pid);
        if entry.process.files_shared_with.is_none() {
            kept.insert(pid, table.fds.iter().map(|fd| fd.fd).collect());
        }
    }
    last_member
        .into_iter()
        .map(|(group, closer)| (closer, kept.remove(&group).unwrap_or_default()))
        .collect()
}
