//! Sessions, process groups and zombies of a restored tree.
//!
//! A process inherits its session and group from its parent when it is
//! created, so each process is placed right after its creation and before
//! it creates children: setsid() if it led a session, setpgid() if it led
//! or joined another group. The root starts in the session and group of
//! stasis, which stand in for the recorded session and group that lay
//! outside the tree.

use stasis_image::Process;
use stasis_linux::mem;
use stasis_linux::ptrace::{self, Stop};

use crate::error::{RestoreError, RestoreStep};
use crate::restore::child::Created;

/// Places `created` in the session and group of `process`. `parent` is
/// the parent's record (None for the root); `placed` lists the records of
/// the processes already placed, for groups led by another process.
pub fn place(
    created: &mut Created,
    process: &Process,
    parent: Option<&Process>,
    placed: &[&Process],
) -> Result<(), RestoreError> {
    let pid = process.pid;
    let unsupported = |what: String| RestoreError::Unsupported {
        reason: format!("process {pid} {what}, which stasis cannot restore yet"),
    };

    if process.sid == pid {
        created
            .remote()?
            .syscall("setsid", libc::SYS_setsid, [0; 6])
            .step(pid, "creating its session")?;
        return Ok(());
    }
    if let Some(parent) = parent {
        if process.sid != parent.sid {
            return Err(unsupported(format!(
                "is in session {} but its parent {} in session {}",
                process.sid, parent.pid, parent.sid
            )));
        }
    }

    let inherited = match parent {
        Some(parent) => process.pgid == parent.pgid,
        None => true,
    };
    let group = if process.pgid == pid {
        Some(0)
    } else if inherited {
        None
    } else if placed
        .iter()
        .any(|other| other.pid == process.pgid && other.pgid == other.pid)
    {
        Some(process.pgid)
    } else {
        return Err(unsupported(format!(
            "is in process group {}, whose leader is not restored before it",
            process.pgid
        )));
    };
    if let Some(group) = group {
        created
            .remote()?
            .syscall("setpgid", libc::SYS_setpgid, [0, group as u64, 0, 0, 0, 0])
            .step(pid, "joining its process group")?;
    }
    Ok(())
}

/// Makes `created` exit with the recorded wait status, so that it stays a
/// zombie until its restored parent waits for it.
pub fn make_zombie(
    created: &mut Created,
    comm: &str,
    wait_status: i32,
) -> Result<(), RestoreError> {
    let pid = created.pid;
    // tgkill runs inside the process, so it takes the saved PID.
    let own_pid = created.saved_pid as u64;
    let remote = created.remote()?;
    let signal = wait_status & 0x7f;

    let scratch = remote
        .mmap_anonymous(0, 4096)
        .step(pid, "mapping a scratch page")?;
    let mut name = comm.as_bytes().to_vec();
    name.truncate(15);
    name.push(0);
    mem::write(pid, scratch, &name).step(pid, "writing the process name")?;
    remote
        .syscall(
            "prctl(PR_SET_NAME)",
            libc::SYS_prctl,
            [libc::PR_SET_NAME as u64, scratch, 0, 0, 0, 0],
        )
        .step(pid, "setting the process name")?;

    let (nr, args) = if signal == 0 {
        (
            libc::SYS_exit_group,
            [((wait_status >> 8) & 0xff) as u64, 0, 0, 0, 0, 0],
        )
    } else {
        // The signal must kill the process without a core dump and with
        // its default action.
        let scratch = remote
            .mmap_anonymous(0, 4096)
            .step(pid, "mapping a scratch page")?;
        mem::write(pid, scratch, &[0u8; 32]).step(pid, "writing a signal action")?;
        remote
            .syscall(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [signal as u64, scratch, 0, 8, 0, 0],
            )
            .step(pid, "resetting the fatal signal")?;
        remote
            .syscall(
                "prlimit64",
                libc::SYS_prlimit64,
                [0, libc::RLIMIT_CORE as u64, scratch, 0, 0, 0],
            )
            .step(pid, "disabling core dumps")?;
        ptrace::set_sigmask(pid, 0).step(pid, "unblocking the fatal signal")?;
        (libc::SYS_tgkill, [own_pid, own_pid, signal as u64, 0, 0, 0])
    };

    remote
        .start_syscall(nr, args)
        .step(pid, "ending the process")?;
    loop {
        match ptrace::wait_stop(pid).step(pid, "ending the process")? {
            Stop::Exited(_) | Stop::Killed(_) => break,
            Stop::Signal(signal) => ptrace::cont(pid, signal).step(pid, "ending the process")?,
            Stop::Event | Stop::OtherEvent(_) | Stop::Syscall => {
                ptrace::cont(pid, 0).step(pid, "ending the process")?
            }
        }
    }
    created.exited = true;
    Ok(())
}
