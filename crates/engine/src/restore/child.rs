//! Creating the process that becomes the restored one.
//!
//! clone3 with set_tid gives the child the image's PID. The child only
//! parks itself in pause(); the restore then rebuilds it from the outside
//! with ptrace and system calls run inside it, so no stasis code runs in
//! it after that point.

use nix::errno::Errno;
use stasis_linux::ptrace::{self, Stop};
use stasis_linux::LinuxError;
use tracing::warn;

use crate::error::{RestoreError, RestoreStep};

/// struct clone_args from include/uapi/linux/sched.h (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// A seized child under construction. Dropping it without
/// [`Child::release`] kills and reaps it, so a failed restore leaves no
/// process behind.
pub struct Child {
    pub pid: i32,
    /// Threads created after the main one, detached on release.
    pub threads: Vec<i32>,
    released: bool,
}

impl Child {
    /// Creates a child with PID `pid`, seizes and stops it.
    pub fn spawn(pid: i32) -> Result<Child, RestoreError> {
        let tids = [pid];
        let args = CloneArgs {
            exit_signal: libc::SIGCHLD as u64,
            set_tid: tids.as_ptr() as u64,
            set_tid_size: 1,
            ..CloneArgs::default()
        };
        // SAFETY: args is a valid clone_args of the size passed; without
        // CLONE_VM the child gets a copy of this address space and runs only
        // `park_child`, which calls async-signal-safe functions and never
        // returns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if ret == 0 {
            park_child();
        }
        if ret < 0 {
            let errno = Errno::last();
            if errno == Errno::EEXIST {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".into());
                return Err(RestoreError::PidInUse { pid, comm });
            }
            return Err(RestoreError::Clone { pid, source: errno });
        }
        let child = Child {
            pid: ret as i32,
            threads: Vec::new(),
            released: false,
        };
        child.stop()?;
        Ok(child)
    }

    fn stop(&self) -> Result<(), RestoreError> {
        let pid = self.pid;
        ptrace::seize(pid, true).step(pid, "seizing the new process")?;
        ptrace::interrupt(pid).step(pid, "stopping the new process")?;
        match ptrace::wait_stop(pid).step(pid, "stopping the new process")? {
            Stop::Event => Ok(()),
            other => Err(RestoreError::Linux {
                pid,
                step: "stopping the new process".into(),
                source: LinuxError::UnexpectedStop {
                    pid,
                    step: "stopping the new process",
                    status: other.to_string(),
                },
            }),
        }
    }

    /// Lets the finished process run.
    pub fn release(mut self) -> Result<i32, RestoreError> {
        self.released = true;
        for &tid in &self.threads {
            ptrace::detach(tid).step(tid, "resuming a restored thread")?;
        }
        ptrace::detach(self.pid).step(self.pid, "resuming the restored process")?;
        Ok(self.pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // SAFETY: kill(2) and waitpid(2) on our own child have no memory
        // effects beyond the status out-pointer, which is valid.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            if libc::waitpid(self.pid, &mut status, libc::__WALL) < 0 {
                warn!(pid = self.pid, "failed to reap the half-restored process");
            }
        }
    }
}

/// Body of the child: wait, with a parent-death signal so it cannot outlive
/// a crashed restore.
fn park_child() -> ! {
    // SAFETY: prctl and pause are async-signal-safe system calls with
    // integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        loop {
            libc::pause();
        }
    }
}
