//! System calls executed inside a stopped tracee.
//!
//! stasis runs no code of its own inside the target. To make the target
//! call `mmap` or `rt_sigaction`, it points the target's instruction pointer
//! at a `syscall` instruction found in the target's own `[vdso]`, loads the
//! arguments into registers and lets the target run exactly that one
//! instruction under PTRACE_SYSCALL: one stop at syscall entry, one at exit,
//! where the result is read from `rax`. The vdso is used because every
//! process has one and it stays mapped across a restore, so no foreign code
//! is ever mapped into the process.
//!
//! After the last call, [`RemoteProcess::park`] brings the tracee back into
//! a PTRACE_EVENT_STOP. Registers set there are the ones the kernel's signal
//! and syscall-restart logic sees on resume, so a process stopped inside an
//! interrupted system call restarts it exactly as it would have.

use nix::errno::Errno;

use crate::error::{LinuxError, Result};
use crate::ptrace::{self, Stop};

/// The `syscall` instruction on x86-64.
const SYSCALL_INSN: [u8; 2] = [0x0f, 0x05];

/// A seized, stopped process that system calls can be run in.
pub struct RemoteProcess {
    pid: i32,
    gadget: u64,
    /// Registers restored around every call and by [`Self::park`].
    regs: libc::user_regs_struct,
    /// True while the tracee sits in a syscall-exit stop rather than an
    /// event stop.
    in_syscall_stop: bool,
    /// Task created by the last clone run through this handle.
    new_task: Option<i32>,
}

impl RemoteProcess {
    /// Prepares to run system calls in `pid`, which must be seized and in an
    /// event stop. `vdso` is the (start, end) of its `[vdso]` mapping.
    pub fn new(pid: i32, vdso: (u64, u64)) -> Result<RemoteProcess> {
        let gadget = find_syscall_gadget(pid, vdso)?;
        let regs = ptrace::get_regs(pid)?;
        Ok(RemoteProcess {
            pid,
            gadget,
            regs,
            in_syscall_stop: false,
            new_task: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Address of the syscall instruction in use.
    pub fn gadget(&self) -> u64 {
        self.gadget
    }

    /// Moves the gadget along with the vdso after an mremap of the vdso.
    pub fn relocate_gadget(&mut self, old_vdso_start: u64, new_vdso_start: u64) {
        self.gadget = self.gadget - old_vdso_start + new_vdso_start;
    }

    /// Registers that the process gets back when it is parked.
    pub fn saved_regs(&self) -> &libc::user_regs_struct {
        &self.regs
    }

    pub fn set_saved_regs(&mut self, regs: libc::user_regs_struct) {
        self.regs = regs;
    }

    /// Returns the saved registers loaded for system call `nr` at the gadget.
    fn call_registers(&self, nr: i64, args: [u64; 6]) -> libc::user_regs_struct {
        let mut regs = self.regs;
        regs.rax = nr as u64;
        regs.rdi = args[0];
        regs.rsi = args[1];
        regs.rdx = args[2];
        regs.r10 = args[3];
        regs.r8 = args[4];
        regs.r9 = args[5];
        regs.rip = self.gadget;
        // orig_rax -1 keeps the kernel from treating the injected registers
        // as an interrupted system call to restart.
        regs.orig_rax = u64::MAX;
        regs
    }

    /// Runs system call `nr` with `args` and returns its raw result (a
    /// negative errno on failure).
    pub fn syscall_raw(&mut self, name: &'static str, nr: i64, args: [u64; 6]) -> Result<i64> {
        ptrace::set_regs(self.pid, &self.call_registers(nr, args))?;

        self.step_to_syscall_stop(name)?;
        self.step_to_syscall_stop(name)?;
        self.in_syscall_stop = true;

        let after = ptrace::get_regs(self.pid)?;
        Ok(after.rax as i64)
    }

    /// Loads system call `nr` with `args` and resumes the tracee with
    /// PTRACE_CONT, without waiting: for calls that do not return, such as
    /// exit_group.
    pub fn start_syscall(&mut self, nr: i64, args: [u64; 6]) -> Result<()> {
        ptrace::set_regs(self.pid, &self.call_registers(nr, args))?;
        ptrace::cont(self.pid, 0)
    }

    /// Runs system call `nr` and turns a negative result into an error.
    pub fn syscall(&mut self, name: &'static str, nr: i64, args: [u64; 6]) -> Result<u64> {
        let ret = self.syscall_raw(name, nr, args)?;
        if (-4095..0).contains(&ret) {
            return Err(LinuxError::Remote {
                name,
                pid: self.pid,
                errno: Errno::from_raw(-ret as i32),
            });
        }
        Ok(ret as u64)
    }

    /// Resumes to the next syscall stop. PTRACE_EVENT_CLONE, _FORK and
    /// _VFORK stops on the way (a clone run with PTRACE_O_TRACECLONE set)
    /// are passed, and the new task's ID is kept for [`Self::take_new_task`].
    fn step_to_syscall_stop(&mut self, name: &'static str) -> Result<()> {
        loop {
            ptrace::resume_syscall(self.pid)?;
            match ptrace::wait_stop(self.pid)? {
                Stop::Syscall => return Ok(()),
                Stop::OtherEvent(event)
                    if [
                        libc::PTRACE_EVENT_CLONE,
                        libc::PTRACE_EVENT_FORK,
                        libc::PTRACE_EVENT_VFORK,
                    ]
                    .contains(&event) =>
                {
                    self.new_task = Some(ptrace::event_message(self.pid)? as i32);
                }
                other => {
                    return Err(LinuxError::UnexpectedStop {
                        pid: self.pid,
                        step: name,
                        status: other.to_string(),
                    })
                }
            }
        }
    }

    /// Returns the ID of the task that the last clone created, if any.
    pub fn take_new_task(&mut self) -> Option<i32> {
        self.new_task.take()
    }

    /// Puts the saved registers back and leaves the tracee in an event stop,
    /// from which a detach resumes it as if it had never been stopped.
    pub fn park(&mut self) -> Result<()> {
        if self.in_syscall_stop {
            ptrace::interrupt(self.pid)?;
            ptrace::cont(self.pid, 0)?;
            match ptrace::wait_stop(self.pid)? {
                Stop::Event => {}
                other => {
                    return Err(LinuxError::UnexpectedStop {
                        pid: self.pid,
                        step: "parking after remote system calls",
                        status: other.to_string(),
                    })
                }
            }
            self.in_syscall_stop = false;
        }
        ptrace::set_regs(self.pid, &self.regs)
    }

    /// Allocates `len` bytes of anonymous read-write memory in the process,
    /// at `addr` exactly if it is not 0.
    pub fn mmap_anonymous(&mut self, addr: u64, len: u64) -> Result<u64> {
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if addr != 0 {
            flags |= libc::MAP_FIXED_NOREPLACE;
        }
        let got = self.syscall(
            "mmap",
            libc::SYS_mmap,
            [
                addr,
                len,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                flags as u64,
                u64::MAX,
                0,
            ],
        )?;
        if addr != 0 && got != addr {
            return Err(LinuxError::Remote {
                name: "mmap",
                pid: self.pid,
                errno: Errno::EEXIST,
            });
        }
        Ok(got)
    }

    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<()> {
        self.syscall("munmap", libc::SYS_munmap, [addr, len, 0, 0, 0, 0])?;
        Ok(())
    }
}

/// Finds a `syscall` instruction in the executable `[vdso]` of `pid`.
fn find_syscall_gadget(pid: i32, vdso: (u64, u64)) -> Result<u64> {
    let mut text = vec![0u8; (vdso.1 - vdso.0) as usize];
    crate::mem::read(pid, vdso.0, &mut text)?;
    text.windows(2)
        .position(|pair| pair == SYSCALL_INSN)
        .map(|offset| vdso.0 + offset as u64)
        .ok_or(LinuxError::NoSyscallGadget { pid })
}
