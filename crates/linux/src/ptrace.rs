//! ptrace requests on a seized tracee: stops, registers, signals.
//!
//! stasis always uses PTRACE_SEIZE (never PTRACE_ATTACH) so that stopping a
//! tracee sends it no SIGSTOP and group-stop state is left alone. See
//! ptrace(2) for the stop kinds handled in [`wait_stop`].

use nix::errno::Errno;

use crate::error::{LinuxError, Result};

/// PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13); newer than the libc crate's
/// constant list on some targets.
const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
/// ELF note type of the XSAVE register set.
const NT_X86_XSTATE: libc::c_int = 0x202;
/// Upper bound on the XSAVE area; the kernel trims the iovec to the real size.
const XSTATE_MAX: usize = 16 * 1024;
/// The siginfo_t size on Linux, on every architecture.
pub const SIGINFO_SIZE: usize = 128;

/// The report of a waited-for tracee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// PTRACE_EVENT_STOP: stopped by PTRACE_INTERRUPT or a group stop.
    Event,
    /// A syscall-entry or syscall-exit stop (PTRACE_O_TRACESYSGOOD set).
    Syscall,
    /// About to receive this signal (signal-delivery stop).
    Signal(i32),
    /// Another PTRACE_EVENT_* stop.
    OtherEvent(i32),
    Exited(i32),
    Killed(i32),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Event => write!(f, "ptrace event stop"),
            Stop::Syscall => write!(f, "syscall stop"),
            Stop::Signal(sig) => write!(f, "signal-delivery stop for signal {sig}"),
            Stop::OtherEvent(event) => write!(f, "ptrace event {event}"),
            Stop::Exited(code) => write!(f, "exited with status {code}"),
            Stop::Killed(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

fn request(
    op: &'static str,
    req: libc::c_uint,
    pid: i32,
    addr: usize,
    data: usize,
) -> Result<libc::c_long> {
    // SAFETY: every caller passes addr/data that are either plain integers or
    // pointers to live buffers of the size that request `req` writes or reads.
    let ret = unsafe {
        libc::ptrace(
            req,
            pid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    };
    if ret == -1 {
        Err(LinuxError::Ptrace {
            op,
            pid,
            errno: Errno::last(),
        })
    } else {
        Ok(ret)
    }
}

/// Seizes `pid` with PTRACE_O_TRACESYSGOOD, plus PTRACE_O_EXITKILL when
/// `kill_on_exit` is set (used for processes that restore creates).
pub fn seize(pid: i32, kill_on_exit: bool) -> Result<()> {
    let mut options = libc::PTRACE_O_TRACESYSGOOD;
    if kill_on_exit {
        options |= libc::PTRACE_O_EXITKILL;
    }
    request("PTRACE_SEIZE", libc::PTRACE_SEIZE, pid, 0, options as usize)?;
    Ok(())
}

/// Replaces the ptrace options of a seized tracee (PTRACE_O_* bits).
pub fn set_options(pid: i32, options: i32) -> Result<()> {
    request(
        "PTRACE_SETOPTIONS",
        libc::PTRACE_SETOPTIONS,
        pid,
        0,
        options as usize,
    )?;
    Ok(())
}

/// Returns the message of the last PTRACE_EVENT_* stop, such as the new
/// thread's TID after PTRACE_EVENT_CLONE.
pub fn event_message(pid: i32) -> Result<u64> {
    let mut message: libc::c_ulong = 0;
    request(
        "PTRACE_GETEVENTMSG",
        libc::PTRACE_GETEVENTMSG,
        pid,
        0,
        &mut message as *mut libc::c_ulong as usize,
    )?;
    Ok(message as u64)
}

pub fn interrupt(pid: i32) -> Result<()> {
    request("PTRACE_INTERRUPT", libc::PTRACE_INTERRUPT, pid, 0, 0)?;
    Ok(())
}

/// Resumes the tracee until its next syscall entry or exit.
pub fn resume_syscall(pid: i32) -> Result<()> {
    request("PTRACE_SYSCALL", libc::PTRACE_SYSCALL, pid, 0, 0)?;
    Ok(())
}

/// Resumes the tracee, delivering `signal` if it is not 0.
pub fn cont(pid: i32, signal: i32) -> Result<()> {
    request("PTRACE_CONT", libc::PTRACE_CONT, pid, 0, signal as usize)?;
    Ok(())
}

pub fn detach(pid: i32) -> Result<()> {
    request("PTRACE_DETACH", libc::PTRACE_DETACH, pid, 0, 0)?;
    Ok(())
}

/// Waits for the next report of `pid` (which must be a tracee or child).
pub fn wait_stop(pid: i32) -> Result<Stop> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: status is a valid out-pointer for the duration of the call.
        let ret = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if ret == -1 {
            let errno = Errno::last();
            if errno == Errno::EINTR {
                continue;
            }
            return Err(LinuxError::Ptrace {
                op: "waitpid",
                pid,
                errno,
            });
        }
        break;
    }
    Ok(decode_status(status))
}

fn decode_status(status: libc::c_int) -> Stop {
    if libc::WIFEXITED(status) {
        return Stop::Exited(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        return Stop::Killed(libc::WTERMSIG(status));
    }
    let signal = libc::WSTOPSIG(status);
    let event = status >> 16;
    if signal == libc::SIGTRAP | 0x80 {
        Stop::Syscall
    } else if event == libc::PTRACE_EVENT_STOP {
        Stop::Event
    } else if event != 0 {
        Stop::OtherEvent(event)
    } else {
        Stop::Signal(signal)
    }
}

pub fn get_regs(pid: i32) -> Result<libc::user_regs_struct> {
    // SAFETY: user_regs_struct is plain integers, so all-zero is valid.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    request(
        "PTRACE_GETREGS",
        libc::PTRACE_GETREGS,
        pid,
        0,
        &mut regs as *mut _ as usize,
    )?;
    Ok(regs)
}

pub fn set_regs(pid: i32, regs: &libc::user_regs_struct) -> Result<()> {
    request(
        "PTRACE_SETREGS",
        libc::PTRACE_SETREGS,
        pid,
        0,
        regs as *const _ as usize,
    )?;
    Ok(())
}

/// Reads the NT_X86_XSTATE register set (x87, SSE, AVX, AVX-512 …).
pub fn get_xstate(pid: i32) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    request(
        "PTRACE_GETREGSET(NT_X86_XSTATE)",
        libc::PTRACE_GETREGSET,
        pid,
        NT_X86_XSTATE as usize,
        &mut iov as *mut _ as usize,
    )?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

pub fn set_xstate(pid: i32, xstate: &[u8]) -> Result<()> {
    let mut iov = libc::iovec {
        iov_base: xstate.as_ptr() as *mut libc::c_void,
        iov_len: xstate.len(),
    };
    request(
        "PTRACE_SETREGSET(NT_X86_XSTATE)",
        libc::PTRACE_SETREGSET,
        pid,
        NT_X86_XSTATE as usize,
        &mut iov as *mut _ as usize,
    )?;
    Ok(())
}

pub fn get_sigmask(pid: i32) -> Result<u64> {
    let mut mask: u64 = 0;
    request(
        "PTRACE_GETSIGMASK",
        libc::PTRACE_GETSIGMASK,
        pid,
        8,
        &mut mask as *mut u64 as usize,
    )?;
    Ok(mask)
}

pub fn set_sigmask(pid: i32, mask: u64) -> Result<()> {
    request(
        "PTRACE_SETSIGMASK",
        libc::PTRACE_SETSIGMASK,
        pid,
        8,
        &mask as *const u64 as usize,
    )?;
    Ok(())
}

/// Returns the siginfo of the signal that the tracee is stopped for.
pub fn get_siginfo(pid: i32) -> Result<[u8; SIGINFO_SIZE]> {
    let mut info = [0u8; SIGINFO_SIZE];
    request(
        "PTRACE_GETSIGINFO",
        libc::PTRACE_GETSIGINFO,
        pid,
        0,
        info.as_mut_ptr() as usize,
    )?;
    Ok(info)
}

#[repr(C)]
struct PeekSiginfoArgs {
    off: u64,
    flags: u32,
    nr: i32,
}

/// Reads the queued signals of a thread (`shared` false) or of its whole
/// thread group (`shared` true) without dequeuing them.
pub fn peek_pending(pid: i32, shared: bool) -> Result<Vec<[u8; SIGINFO_SIZE]>> {
    const BATCH: usize = 32;
    let mut all = Vec::new();
    loop {
        let args = PeekSiginfoArgs {
            off: all.len() as u64,
            flags: if shared {
                libc::PTRACE_PEEKSIGINFO_SHARED
            } else {
                0
            },
            nr: BATCH as i32,
        };
        let mut buf = [[0u8; SIGINFO_SIZE]; BATCH];
        let got = request(
            "PTRACE_PEEKSIGINFO",
            libc::PTRACE_PEEKSIGINFO,
            pid,
            &args as *const _ as usize,
            buf.as_mut_ptr() as usize,
        )? as usize;
        all.extend_from_slice(&buf[..got.min(BATCH)]);
        if got < BATCH {
            return Ok(all);
        }
    }
}

/// An rseq registration as PTRACE_GET_RSEQ_CONFIGURATION reports it.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct RseqConfiguration {
    pub address: u64,
    pub size: u32,
    pub signature: u32,
    pub flags: u32,
    pad: u32,
}

/// Returns the thread's rseq registration, or None if it has none.
pub fn rseq_configuration(pid: i32) -> Result<Option<RseqConfiguration>> {
    let mut config = RseqConfiguration::default();
    request(
        "PTRACE_GET_RSEQ_CONFIGURATION",
        PTRACE_GET_RSEQ_CONFIGURATION,
        pid,
        std::mem::size_of::<RseqConfiguration>(),
        &mut config as *mut _ as usize,
    )?;
    Ok((config.address != 0).then_some(config))
}
