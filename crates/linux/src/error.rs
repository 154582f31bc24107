//! Errors of the Linux interface layer.

use std::path::PathBuf;

use nix::errno::Errno;

/// A failed kernel interface call, with the step and the process it was for.
#[derive(Debug, thiserror::Error)]
pub enum LinuxError {
    #[error("{op} failed for pid {pid}: {errno}")]
    Ptrace {
        op: &'static str,
        pid: i32,
        errno: Errno,
    },

    #[error("{op} failed: {errno}")]
    Syscall { op: &'static str, errno: Errno },

    #[error("remote system call {name} in pid {pid} failed: {errno}")]
    Remote {
        name: &'static str,
        pid: i32,
        errno: Errno,
    },

    #[error("pid {pid} stopped unexpectedly while {step}: {status}")]
    UnexpectedStop {
        pid: i32,
        step: &'static str,
        status: String,
    },

    #[error("pid {pid} has no [vdso] mapping with a syscall instruction; stasis needs one to run system calls inside the process")]
    NoSyscallGadget { pid: i32 },

    #[error("failed to read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to parse {path}: {message}")]
    Parse { path: PathBuf, message: String },

    #[error("failed to read /proc/{pid}: {source}")]
    Procfs {
        pid: i32,
        #[source]
        source: procfs::ProcError,
    },

    #[error("reading {len} bytes at {addr:#x} in pid {pid} failed: {errno}")]
    Memory {
        pid: i32,
        addr: u64,
        len: usize,
        errno: Errno,
    },
}

pub type Result<T, E = LinuxError> = std::result::Result<T, E>;
