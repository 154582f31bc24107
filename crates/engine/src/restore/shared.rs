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
/// image. The first member of a group is a live process listed earlier
/// that shares nothing itself, and the parent of a later member is in the
/// group. A member of an fd table group lists no fds of its own, and a
/// member of an fs group records the root, cwd and umask of the first.
pub(super) fn check(processes: &[ProcessImage]) -> Result<(), RestoreError> {
    for (index, entry) in processes.iter().enumerate() {
        let process = &entry.process;
        let earlier = &processes[..index];
        let record = stasis_image::format::process_file_name(process.pid);
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
                reason: format!("{record} has {field} {owner}, but {problem}"),
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
                            "{record} has files_shared_with {}, but {} lists {} fds; a shared table is saved with the first process of the group only",
                            process.files_shared_with.unwrap_or(0),
                            stasis_image::format::fd_table_file_name(process.pid),
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
                            "{record} has fs_shared_with {owner}, but records {what} {own:?} where process {owner} records {theirs:?}"
                        ),
                    });
                }
            }
            if process.umask != first.umask {
                return Err(RestoreError::Unsupported {
                    reason: format!(
                        "{record} has fs_shared_with {owner}, but records umask {:o} where process {owner} records {:o}",
                        process.umask, first.umask
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
/// restore, each with the fd numbers its table keeps. A live process with
/// a table of its own closes them there. A shared table is closed by its
/// last member in manifest order, which keeps the first member's fds.
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

#[cfg(test)]
mod tests {
    use super::*;
    use stasis_image::{
        Credentials, Fd, FdTable, FileIdentity, MemoryMap, MmFields, OpenFile, Process,
    };

    /// Builds a live process `pid` with parent `ppid` and fds numbered `fds`.
    fn live(pid: i32, ppid: i32, fds: &[i32]) -> ProcessImage {
        let process = Process {
            pid,
            ppid,
            pgid: 1,
            sid: 1,
            comm: "test".into(),
            exe: FileIdentity::default(),
            credentials: Credentials::default(),
            rlimits: Vec::new(),
            mm: MmFields::default(),
            personality: 0,
            umask: 0o022,
            timer_slack_ns: 0,
            itimers: Vec::new(),
            sigactions: Vec::new(),
            shared_pending: Vec::new(),
            threads: Vec::new(),
            cwd: "/tmp".into(),
            root: "/".into(),
            posix_timers: Vec::new(),
            zombie_exit_status: None,
            files_shared_with: None,
            fs_shared_with: None,
        };
        let map = MemoryMap {
            pid,
            vmas: Vec::new(),
            pages: Vec::new(),
            pages_file: String::new(),
            shared_memory: Vec::new(),
        };
        let table = FdTable {
            pid,
            fds: fds
                .iter()
                .map(|&fd| Fd {
                    fd,
                    cloexec: false,
                    description: 0,
                    file: OpenFile::CharDevice {
                        path: "/dev/null".into(),
                        rdev: 0,
                        flags: 0,
                    },
                })
                .collect(),
        };
        ProcessImage {
            process,
            live: Some((map, table)),
        }
    }

    /// Process 10 with child 11 and grandchild 12 sharing its fd table and
    /// fs state, and child 13 with a table of its own.
    fn family() -> Vec<ProcessImage> {
        let mut processes = vec![
            live(10, 1, &[0, 1, 2, 5]),
            live(11, 10, &[]),
            live(13, 10, &[0, 1]),
            live(12, 11, &[]),
        ];
        for index in [1, 3] {
            processes[index].process.files_shared_with = Some(10);
            processes[index].process.fs_shared_with = Some(10);
        }
        processes
    }

    fn rejection(processes: &[ProcessImage]) -> String {
        check(processes)
            .expect_err("the image must be rejected")
            .to_string()
    }

    #[test]
    fn group_through_parents_accepted() {
        let result = check(&family());
        assert!(result.is_ok(), "a valid group was rejected: {result:?}");
    }

    #[test]
    fn later_member_as_owner_rejected() {
        // 13 names 11, which is a later member of the group of 10, not
        // its first process.
        let mut processes = family();
        processes[2].process.files_shared_with = Some(11);
        let message = rejection(&processes);
        assert!(
            message.contains("process-13") && message.contains("files_shared_with 11"),
            "the error does not name the record and field: {message}"
        );
    }

    #[test]
    fn sibling_group_rejected() {
        let mut processes = family();
        processes[1].process.files_shared_with = None;
        processes[3].process.files_shared_with = Some(13);
        processes[2].live.as_mut().expect("live").1.fds.clear();
        let message = rejection(&processes);
        assert!(
            message.contains("process-12") && message.contains("parent 11"),
            "the error does not name the process and its parent: {message}"
        );
    }

    #[test]
    fn owner_listed_later_rejected() {
        let mut processes = family();
        processes[1].process.fs_shared_with = Some(12);
        let message = rejection(&processes);
        assert!(
            message.contains("process-11") && message.contains("fs_shared_with 12"),
            "the error does not name the record and field: {message}"
        );
    }

    #[test]
    fn sharer_with_fds_rejected() {
        let mut processes = family();
        processes[1].live.as_mut().expect("live").1.fds = live(11, 10, &[4]).live.unwrap().1.fds;
        let message = rejection(&processes);
        assert!(
            message.contains("fds-11") && message.contains("lists 1 fds"),
            "the error does not name the fd table record: {message}"
        );
    }

    #[test]
    fn sharer_with_other_cwd_rejected() {
        let mut processes = family();
        processes[3].process.cwd = "/home".into();
        let message = rejection(&processes);
        assert!(
            message.contains("process-12") && message.contains("cwd \"/home\""),
            "the error does not name the record and the cwd: {message}"
        );
    }

    #[test]
    fn shared_table_closed_by_last_member() {
        let closers = closers(&family());
        assert_eq!(
            closers.get(&12),
            Some(&vec![0, 1, 2, 5]),
            "the last member does not close the group's table keeping the owner's fds"
        );
        assert_eq!(closers.get(&13), Some(&vec![0, 1]));
        assert!(
            !closers.contains_key(&10) && !closers.contains_key(&11),
            "an earlier member closes the shared table: {closers:?}"
        );
    }
}
