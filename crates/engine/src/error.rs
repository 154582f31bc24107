//! Errors of dump and restore.

use std::path::PathBuf;

use stasis_image::ImageError;
use stasis_linux::LinuxError;

/// A dump failure. The target is left running as it was.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("process {pid} not found")]
    NoSuchProcess { pid: i32 },

    #[error("reading random bytes for the image's salt failed: {0}")]
    Random(String),

    #[error("cannot dump pid {pid}: {reason}")]
    Unsupported { pid: i32, reason: String },

    #[error("dumping pid {pid} failed while {step}")]
    Linux {
        pid: i32,
        step: &'static str,
        #[source]
        source: LinuxError,
    },

    #[error("writing the image failed")]
    Image(#[from] ImageError),

    #[error("failed to read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{error}; afterwards, resuming pid {pid} also failed: {cleanup}")]
    Cleanup {
        pid: i32,
        error: Box<DumpError>,
        cleanup: LinuxError,
    },
}

/// A restore failure. Any process it created has been killed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Image(#[from] ImageError),

    #[error("pid {pid} is in use by another process ({comm}); stop that process, or restore into a new PID namespace (--pid-ns)")]
    PidInUse { pid: i32, comm: String },

    #[error("{path} changed since the dump: {field} was {recorded}, is now {current}; restore it, or pass --skip-file-checks to accept the change")]
    FileChanged {
        path: String,
        field: &'static str,
        recorded: String,
        current: String,
    },

    #[error("pid {pid} is still held by an exited process ({comm}) that its parent {parent} has not reaped after 5 s; wait until pid {pid} is free, then restore again")]
    PidHeldByZombie { pid: i32, comm: String, parent: i32 },

    #[error("creating a new PID namespace failed: {reason}")]
    PidNamespace { reason: String },

    #[error("{reason}, and restoring into a new PID namespace instead failed")]
    PidNamespaceFallback {
        reason: String,
        #[source]
        source: Box<RestoreError>,
    },

    #[error("cannot restore this image: {reason}")]
    Unsupported { reason: String },

    #[error("the image has terminal fds ({path}, saved with --shell-job), but the standard input of stasis restore is not a terminal; run it from a terminal")]
    NeedsTerminal { path: String },

    #[error("cannot restore on this machine: {reason}")]
    Incompatible { reason: String },

    #[error("failed to open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("restoring pid {pid} failed while {step}")]
    Linux {
        pid: i32,
        step: String,
        #[source]
        source: LinuxError,
    },

    #[error("creating pid {pid} failed")]
    Clone {
        pid: i32,
        #[source]
        source: nix::errno::Errno,
    },
}

/// Attaches a step description to Linux-layer errors during a dump.
pub(crate) trait DumpStep<T> {
    fn step(self, pid: i32, step: &'static str) -> Result<T, DumpError>;
}

impl<T> DumpStep<T> for Result<T, LinuxError> {
    fn step(self, pid: i32, step: &'static str) -> Result<T, DumpError> {
        self.map_err(|source| DumpError::Linux { pid, step, source })
    }
}

/// Attaches a step description to Linux-layer errors during a restore.
pub(crate) trait RestoreStep<T> {
    fn step(self, pid: i32, step: impl Into<String>) -> Result<T, RestoreError>;
}

impl<T> RestoreStep<T> for Result<T, LinuxError> {
    fn step(self, pid: i32, step: impl Into<String>) -> Result<T, RestoreError> {
        self.map_err(|source| RestoreError::Linux {
            pid,
            step: step.into(),
            source,
        })
    }
}
