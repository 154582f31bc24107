//! Stopping a process for a dump and resuming it exactly as it was.
//!
//! The target is seized and interrupted. A signal that reaches a
//! signal-delivery stop on the way is taken off its path (the kernel has
//! already dequeued it) and kept, so it can be saved in the image and put
//! back into the queue when the target resumes. While frozen, every signal
//! is blocked, so the system calls stasis runs in the target are never
//! interrupted by a handler.

use stasis_linux::ptrace::{self, Stop, SIGINFO_SIZE};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{LinuxError, Result};
use tracing::{debug, warn};

/// Every signal blocked; the kernel ignores the bits of SIGKILL and SIGSTOP.
const ALL_SIGNALS: u64 = u64::MAX;

/// A seized and stopped target.
pub struct Frozen {
    pub pid: i32,
    /// The signal mask the target had.
    pub sigmask: u64,
    /// Signals dequeued while stopping, to be queued again on release.
    pub deferred: Vec<[u8; SIGINFO_SIZE]>,
    pub remote: Option<RemoteProcess>,
    released: bool,
}

impl Frozen {
    /// Seizes `pid` and waits until it is stopped.
    pub fn seize(pid: i32) -> Result<Frozen> {
        ptrace::seize(pid, false)?;
        let mut frozen = Frozen {
            pid,
            sigmask: 0,
            deferred: Vec::new(),
            remote: None,
            released: false,
        };
        if let Err(err) = frozen.stop() {
            // Best effort: the tracee may still be running.
            let _ = ptrace::detach(pid);
            frozen.released = true;
            return Err(err);
        }
        Ok(frozen)
    }

    fn stop(&mut self) -> Result<()> {
        ptrace::interrupt(self.pid)?;
        loop {
            match ptrace::wait_stop(self.pid)? {
                Stop::Event => break,
                Stop::Signal(signal) => {
                    let info = ptrace::get_siginfo(self.pid)?;
                    debug!(
                        pid = self.pid,
                        signal, "deferring signal caught while stopping"
                    );
                    self.deferred.push(info);
                    ptrace::cont(self.pid, 0)?;
                }
                other => {
                    return Err(LinuxError::UnexpectedStop {
                        pid: self.pid,
                        step: "stopping the process",
                        status: other.to_string(),
                    })
                }
            }
        }
        self.sigmask = ptrace::get_sigmask(self.pid)?;
        ptrace::set_sigmask(self.pid, ALL_SIGNALS)?;
        Ok(())
    }

    /// Returns the remote-syscall handle, creating it on first use.
    pub fn remote(&mut self, vdso: (u64, u64)) -> Result<&mut RemoteProcess> {
        if self.remote.is_none() {
            self.remote = Some(RemoteProcess::new(self.pid, vdso)?);
        }
        Ok(self.remote.as_mut().expect("set above"))
    }

    /// Resumes the target as it was: deferred signals queued again, signal
    /// mask and registers restored, ptrace detached.
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.resume()
    }

    fn resume(&mut self) -> Result<()> {
        if let Some(remote) = self.remote.as_mut() {
            requeue_signals(remote, &self.deferred)?;
        }
        ptrace::set_sigmask(self.pid, self.sigmask)?;
        if let Some(remote) = self.remote.as_mut() {
            remote.park()?;
        }
        ptrace::detach(self.pid)
    }

    /// Kills the target while it is still stopped, after a successful dump.
    pub fn kill(mut self) {
        self.released = true;
        // SAFETY: kill(2) with a PID and signal number has no memory effects.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        let _ = ptrace::detach(self.pid);
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

/// Queues `signals` again in the target with rt_tgsigqueueinfo run in the
/// target itself, which keeps their siginfo (sender, si_code) intact.
fn requeue_signals(remote: &mut RemoteProcess, signals: &[[u8; SIGINFO_SIZE]]) -> Result<()> {
    if signals.is_empty() {
        return Ok(());
    }
    let pid = remote.pid();
    let scratch = remote.mmap_anonymous(0, 4096)?;
    for info in signals {
        let signo = i32::from_ne_bytes(info[0..4].try_into().expect("4 bytes"));
        stasis_linux::mem::write(pid, scratch, info)?;
        remote.syscall(
            "rt_tgsigqueueinfo",
            libc::SYS_rt_tgsigqueueinfo,
            [pid as u64, pid as u64, signo as u64, scratch, 0, 0],
        )?;
    }
    remote.munmap(scratch, 4096)
}
