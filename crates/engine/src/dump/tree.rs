//! Finding and stopping every process of the tree to dump.
//!
//! The tree is walked breadth-first from the root. Each process is frozen
//! before its children are listed, so a frozen process cannot add a child
//! that the walk misses. Zombies (exited, not yet waited for) cannot be
//! traced; their exit status is read from /proc/PID/stat instead.

use stasis_linux::proc;
use tracing::debug;

use crate::dump::freeze::Frozen;
use crate::error::{DumpError, DumpStep};

/// A zombie of the tree: it exited, and its parent has not waited for it.
#[derive(Debug, Clone)]
pub struct Zombie {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub comm: String,
    /// The status that wait(2) will report.
    pub wait_status: i32,
}

/// A member of the tree, in breadth-first order (parents first).
pub enum Member {
    Live(Frozen),
    Zombie(Zombie),
}

impl Member {
    pub fn pid(&self) -> i32 {
        match self {
            Member::Live(frozen) => frozen.pid,
            Member::Zombie(zombie) => zombie.pid,
        }
    }
}

/// Freezes `root` and all its descendants. On error, every process frozen
/// so far is resumed.
pub fn freeze(
    root: i32,
    check: impl Fn(i32) -> Result<(), DumpError>,
) -> Result<Vec<Member>, DumpError> {
    let mut members: Vec<Member> = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        match freeze_one(pid, &check) {
            Ok(member) => {
                if let Member::Live(_) = member {
                    match proc::children(pid).step(pid, "listing children") {
                        Ok(children) => queue.extend(children),
                        Err(err) => {
                            members.push(member);
                            release(members);
                            return Err(err);
                        }
                    }
                }
                members.push(member);
            }
            Err(err) => {
                release(members);
                return Err(err);
            }
        }
    }
    debug!(root, processes = members.len(), "tree frozen");
    Ok(members)
}

fn freeze_one(
    pid: i32,
    check: &impl Fn(i32) -> Result<(), DumpError>,
) -> Result<Member, DumpError> {
    let stat = proc::stat(pid).step(pid, "reading /proc/PID/stat")?;
    if stat.state == 'Z' {
        return Ok(Member::Zombie(Zombie {
            pid,
            ppid: stat.ppid,
            pgid: stat.pgrp,
            sid: stat.session,
            comm: stat.comm.clone(),
            wait_status: stat.exit_code.unwrap_or(0),
        }));
    }
    check(pid)?;
    let frozen = Frozen::seize(pid).step(pid, "stopping the process")?;
    // Checked again now that the process cannot change.
    if let Err(err) = check(pid) {
        let _ = frozen.release();
        return Err(err);
    }
    Ok(Member::Live(frozen))
}

/// Resumes every live member.
pub fn release(members: Vec<Member>) {
    for member in members {
        if let Member::Live(frozen) = member {
            let pid = frozen.pid;
            if let Err(err) = frozen.release() {
                tracing::warn!(pid, %err, "failed to resume a process after a failed dump");
            }
        }
    }
}

/// Rejects a tree with a pipe whose other end a process outside the tree
/// holds: after restore that end would be gone, and the process would see
/// EOF or EPIPE where the original saw more data.
pub fn check_pipe_peers(members: &[Member]) -> Result<(), DumpError> {
    let inside: Vec<i32> = members.iter().map(Member::pid).collect();
    let mut pipes: Vec<(u64, i32, i32)> = Vec::new();
    for &pid in &inside {
        for (fd, inode) in pipe_fds(pid) {
            pipes.push((inode, pid, fd));
        }
    }
    if pipes.is_empty() {
        return Ok(());
    }
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
        if inside.contains(&outside) || outside == std::process::id() as i32 {
            continue;
        }
        for (_, inode) in pipe_fds(outside) {
            if let Some(&(_, pid, fd)) = pipes.iter().find(|(known, _, _)| *known == inode) {
                let comm = proc::comm(outside, outside).unwrap_or_else(|_| "unknown".into());
                return Err(DumpError::Unsupported {
                    pid,
                    reason: format!(
                        "fd {fd} (pipe:[{inode}]) is also open in process {outside} ({comm}), which is outside the dumped tree; \
                         dump a common ancestor of both, or close the pipe in one of them"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Returns (fd, inode) of every pipe fd of `pid`; a process that is gone
/// or unreadable has none.
fn pipe_fds(pid: i32) -> Vec<(i32, u64)> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let link = std::fs::read_link(entry.path()).ok()?;
            let inode = link
                .to_str()?
                .strip_prefix("pipe:[")?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            Some((fd, inode))
        })
        .collect()
}

/// kcmp(2) types of the per-process objects that a clone can share.
const KCMP_VM: i32 = 1;
const KCMP_FILES: i32 = 2;
const KCMP_FS: i32 = 3;
const KCMP_SIGHAND: i32 = 4;

/// Returns whether `first` and `second` share the object of kcmp type `kind`.
fn shares(first: i32, second: i32, kind: i32) -> bool {
    // SAFETY: kcmp takes integers only.
    unsafe { libc::syscall(libc::SYS_kcmp, first, second, kind, 0, 0) == 0 }
}

/// For one live process, the earlier process of the tree whose fd table
/// and whose fs state (root, cwd, umask) it shares, if any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sharing {
    pub files_shared_with: Option<i32>,
    pub fs_shared_with: Option<i32>,
}

/// Finds which live processes of the tree share an fd table or fs state
/// (clone with CLONE_FILES or CLONE_FS but without CLONE_THREAD), and
/// returns, by PID, the first process in walk order of each one's group.
///
/// Restore rebuilds a group by cloning each later member from its parent
/// with the same flag, so every member but the first must have its parent
/// in the group. Any other arrangement is rejected, naming both processes.
/// Processes that share an address space or signal handlers without being
/// threads (clone with CLONE_VM but without CLONE_THREAD, or a vfork child
/// before it execs) are rejected too.
pub fn find_shared_resources(
    members: &[Member],
) -> Result<std::collections::HashMap<i32, Sharing>, DumpError> {
    let live: Vec<i32> = members
        .iter()
        .filter_map(|member| match member {
            Member::Live(frozen) => Some(frozen.pid),
            Member::Zombie(_) => None,
        })
        .collect();
    let mut sharing: std::collections::HashMap<i32, Sharing> = std::collections::HashMap::new();
    for (index, &pid) in live.iter().enumerate() {
        for &earlier in &live[..index] {
            for (kind, what) in [
                (KCMP_VM, "its address space"),
                (KCMP_SIGHAND, "its signal handlers"),
            ] {
                if shares(earlier, pid, kind) {
                    return Err(DumpError::Unsupported {
                        pid,
                        reason: format!(
                            "it shares {what} with process {earlier} without being one of its threads \
                             (clone with CLONE_VM but not CLONE_THREAD, or a vfork child that has not called exec yet), \
                             which stasis cannot save"
                        ),
                    });
                }
            }
        }
        let first_sharing = |kind: i32| {
            live[..index]
                .iter()
                .copied()
                .find(|&earlier| shares(earlier, pid, kind))
        };
        let found = Sharing {
            files_shared_with: first_sharing(KCMP_FILES),
            fs_shared_with: first_sharing(KCMP_FS),
        };
        if found != Sharing::default() {
            let parent = proc::stat(pid).step(pid, "reading /proc/PID/stat")?.ppid;
            let parent_sharing = sharing.get(&parent).copied().unwrap_or_default();
            for (owner, parent_owner, what, flag) in [
                (
                    found.files_shared_with,
                    parent_sharing.files_shared_with,
                    "fd table",
                    "CLONE_FILES",
                ),
                (
                    found.fs_shared_with,
                    parent_sharing.fs_shared_with,
                    "fs state (root, cwd and umask)",
                    "CLONE_FS",
                ),
            ] {
                let Some(owner) = owner else { continue };
                if parent != owner && parent_owner != Some(owner) {
                    return Err(DumpError::Unsupported {
                        pid,
                        reason: format!(
                            "it shares its {what} with process {owner}, but its parent {parent} does not; \
                             stasis restores a shared {what} only when each process that shares it got it \
                             from its parent through clone with {flag}"
                        ),
                    });
                }
            }
        }
        sharing.insert(pid, found);
    }
    Ok(sharing)
}

/// Rejects a tree where a live process shares its address space, signal
/// handlers, fd table or fs state with a process outside the tree. After
/// restore the two would each have their own, so changes made by one
/// would no longer reach the other.
pub fn check_outside_sharing(members: &[Member]) -> Result<(), DumpError> {
    let inside: Vec<i32> = members.iter().map(Member::pid).collect();
    let live: Vec<i32> = members
        .iter()
        .filter_map(|member| match member {
            Member::Live(frozen) => Some(frozen.pid),
            Member::Zombie(_) => None,
        })
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Ok(());
    };
    let own_pid = std::process::id() as i32;
    for entry in entries.flatten() {
        let Some(outside) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        if inside.contains(&outside) || outside == own_pid {
            continue;
        }
        for &pid in &live {
            for (kind, what) in [
                (KCMP_VM, "address space"),
                (KCMP_SIGHAND, "signal handlers"),
                (KCMP_FILES, "fd table"),
                (KCMP_FS, "fs state (root, cwd and umask)"),
            ] {
                if shares(pid, outside, kind) {
                    let comm = proc::comm(outside, outside).unwrap_or_else(|_| "unknown".into());
                    return Err(DumpError::Unsupported {
                        pid,
                        reason: format!(
                            "it shares its {what} with process {outside} ({comm}), which is outside the dumped tree; \
                             dump a common ancestor of both"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}
