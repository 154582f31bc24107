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
