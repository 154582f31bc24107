//! Stopping a process for a dump and resuming it exactly as it was.
//!
//! Every thread is seized and interrupted, and the thread list is read
//! again until no new thread appears, so a thread created while stopping
//! is caught too. A signal that reaches a signal-delivery stop on the way
//! is taken off its path (the kernel has already dequeued it) and kept, so
//! it can be saved in the image and put back into the queue when the
//! target resumes. While frozen, every signal is blocked in every thread,
//! so the system calls stasis runs in the target are never interrupted by
//! a handler.

use stasis_linux::ptrace::{self, Stop, SIGINFO_SIZE};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{proc, LinuxError, Result};
use tracing::{debug, warn};

/// Every signal blocked; the kernel ignores the bits of SIGKILL and SIGSTOP.
const ALL_SIGNALS: u64 = u64::MAX;

/// One stopped thread of the target.
pub struct FrozenThread {
    pub tid: i32,
    /// The signal mask the thread had.
    pub sigmask: u64,
    /// Signals dequeued while stopping, to be queued again on release.
    pub deferred: Vec<[u8; SIGINFO_SIZE]>,
    pub remote: Option<RemoteProcess>,
}

/// A seized and stopped target, main thread first.
pub struct Frozen {
    pub pid: i32,
    pub threads: Vec<FrozenThread>,
    released: bool,
}

impl Frozen {
    /// Seizes every thread of `pid` and waits until all are stopped.
    pub fn seize(pid: i32) -> Result<Frozen> {
        let mut frozen = Frozen {
            pid,
            threads: Vec::new(),
            released: false,
        };
        if let Err(err) = frozen.stop_all() {
            frozen.released = true;
            for thread in &frozen.threads {
                // Best effort: a thread may have exited meanwhile.
                let _ = ptrace::set_sigmask(thread.tid, thread.sigmask);
                let _ = ptrace::detach(thread.tid);
            }
            return Err(err);
        }
        frozen.threads.sort_by_key(|thread| thread.tid != pid);
        Ok(frozen)
    }

    fn stop_all(&mut self) -> Result<()> {
        loop {
            let tids = proc::threads(self.pid)?;
            let new: Vec<i32> = tids
                .into_iter()
                .filter(|tid| !self.threads.iter().any(|thread| thread.tid == *tid))
                .collect();
            if new.is_empty() {
                return Ok(());
            }
            for tid in new {
                ptrace::seize(tid, false)?;
                self.threads.push(FrozenThread {
                    tid,
                    sigmask: 0,
                    deferred: Vec::new(),
                    remote: None,
                });
                let thread = self.threads.last_mut().expect("pushed above");
                stop_thread(thread)?;
            }
        }
    }

    /// Returns the remote-syscall handle of thread `index`, creating it on
    /// first use. `vdso` is the (start, end) of the `[vdso]` mapping.
    pub fn remote(&mut self, index: usize, vdso: (u64, u64)) -> Result<&mut RemoteProcess> {
        let thread = &mut self.threads[index];
        if thread.remote.is_none() {
            thread.remote = Some(RemoteProcess::new(thread.tid, vdso)?);
        }
        Ok(thread.remote.as_mut().expect("set above"))
    }

    /// Resumes the target as it was: deferred signals queued again, signal
    /// masks and registers restored, ptrace detached from every thread.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.resume()
    }

    fn resume(&mut self) -> Result<()> {
        let mut first_error = None;
        for thread in &mut self.threads {
            if let Err(err) = resume_thread(self.pid, thread) {
                warn!(tid = thread.tid, %err, "failed to resume a thread");
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Kills the target while it is still stopped, after a successful dump.
    pub fn kill(mut self) {
        self.released = true;
        // SAFETY: kill(2) with a PID and signal number has no memory effects.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        // Each killed thread reports its exit to the tracer, and stays a
        // traced zombie until the tracer waits for it; the process's real
        // parent can reap it only after that. The main thread is waited for
        // last, since it reports once every thread is gone.
        for thread in self.threads.iter().rev() {
            let mut status = 0;
            // SAFETY: waitpid(2) on our own tracee with a valid status pointer.
            unsafe { libc::waitpid(thread.tid, &mut status, libc::__WALL) };
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.released {
            if let Err(err) = self.resume() {
                warn!(pid = self.pid, %err, "failed to resume the process after a dump");
            }
        }
    }
}

/// Interrupts a seized thread and waits for its event stop, deferring any
/// signal delivered on the way, then blocks its signals.
fn stop_thread(thread: &mut FrozenThread) -> Result<()> {
    let tid = thread.tid;
    ptrace::interrupt(tid)?;
    loop {
        match ptrace::wait_stop(tid)? {
            Stop::Event => break,
            Stop::Signal(signal) => {
                let info = ptrace::get_siginfo(tid)?;
                debug!(tid, signal, "deferring signal caught while stopping");
                thread.deferred.push(info);
                ptrace::cont(tid, 0)?;
            }
            other => {
                return Err(LinuxError::UnexpectedStop {
                    pid: tid,
                    step: "stopping the process",
                    status: other.to_string(),
                })
            }
        }
    }
    thread.sigmask = ptrace::get_sigmask(tid)?;
    ptrace::set_sigmask(tid, ALL_SIGNALS)
}

fn resume_thread(pid: i32, thread: &mut FrozenThread) -> Result<()> {
    if !thread.deferred.is_empty() {
        let remote = match thread.remote.as_mut() {
            Some(remote) => remote,
            None => {
                let vdso = proc::mappings(pid)?
                    .into_iter()
                    .find(|m| m.backing == proc::MapBacking::Vdso)
                    .map(|m| (m.start, m.end))
                    .ok_or(LinuxError::NoSyscallGadget { pid })?;
                thread.remote.insert(RemoteProcess::new(thread.tid, vdso)?)
            }
        };
        requeue_signals(pid, remote, &thread.deferred)?;
    }
    ptrace::set_sigmask(thread.tid, thread.sigmask)?;
    if let Some(remote) = thread.remote.as_mut() {
        remote.park()?;
    }
    ptrace::detach(thread.tid)
}

/// Queues `signals` again for the thread that `remote` runs in, with
/// rt_tgsigqueueinfo run in the target itself, which keeps their siginfo
/// (sender, si_code) intact.
fn requeue_signals(
    pid: i32,
    remote: &mut RemoteProcess,
    signals: &[[u8; SIGINFO_SIZE]],
) -> Result<()> {
    let tid = remote.pid();
    let scratch = remote.mmap_anonymous(0, 4096)?;
    for info in signals {
        let signo = i32::from_ne_bytes(info[0..4].try_into().expect("4 bytes"));
        stasis_linux::mem::write(tid, scratch, info)?;
        remote.syscall(
            "rt_tgsigqueueinfo",
            libc::SYS_rt_tgsigqueueinfo,
            [pid as u64, tid as u64, signo as u64, scratch, 0, 0],
        )?;
    }
    remote.munmap(scratch, 4096)
}
