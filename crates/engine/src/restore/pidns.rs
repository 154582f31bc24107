//! Restoring a tree into a new PID namespace, where its saved PIDs are free
//! even when other processes use them in the namespace of stasis.
//!
//! A PID namespace needs a first process, PID 1 in it, which adopts the
//! namespace's orphans. When it exits, the kernel kills every other process
//! of the namespace. That init is a separate program, [`InitCommand`],
//! started with clone3(CLONE_NEWPID) and execve, because a forked copy of a
//! multi-threaded program must not run its own code. The stasis command
//! runs itself with a hidden subcommand that calls [`run_init`].
//!
//! The root of the tree is not a child of the init: stasis creates it as
//! its own child, from a thread whose PID namespace for children it points
//! at the new namespace with setns. So the root still reports its exit to
//! stasis, and the init learns of it through a pidfd.
//!
//! stasis and the init talk over a Unix socket pair, which the init has as
//! fd 3:
//! - the init sends [`READY`] once it runs;
//! - stasis sends [`ROOT`] and the root's PID inside the namespace (4 bytes,
//!   native byte order) once the root exists;
//! - stasis sends [`RELEASED`] once the tree runs.
//!
//! If the socket closes before [`RELEASED`], the restore failed or stasis
//! died, and the init exits, which kills whatever is left in the namespace.
//! After [`RELEASED`], the init waits for the root to exit, then for every
//! orphan of the namespace, which the kernel makes its child, and exits
//! when it has no child left.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use tracing::{info, warn};

use crate::error::RestoreError;
use crate::restore::child::{CloneArgs, CLONE_ARGS_SIZE};

/// The init's end of the control socket.
const CONTROL_FD: RawFd = 3;
/// Sent by the init once it runs as PID 1.
const READY: u8 = b'i';
/// Sent by stasis, followed by the root's PID, once the root exists.
const ROOT: u8 = b'r';
/// Sent by stasis once the tree runs.
const RELEASED: u8 = b'g';

/// The program that stasis runs as the init of a new PID namespace. It
/// must call [`run_init`] and exit with its result.
#[derive(Debug, Clone)]
pub struct InitCommand {
    /// Program to execute, such as `/proc/self/exe`.
    pub program: PathBuf,
    /// Arguments after the program name.
    pub args: Vec<OsString>,
}

/// A new PID namespace with its init, a child of stasis. Dropping it
/// before [`PidNamespace::release`] kills the init, and with it every
/// process of the namespace.
pub struct PidNamespace {
    /// PID of the init in the namespace of stasis.
    init: i32,
    /// /proc/INIT/ns/pid, for setns.
    namespace: File,
    inode: u64,
    control: UnixStream,
    released: bool,
}

impl PidNamespace {
    /// Starts `command` as the init of a new PID namespace and waits until
    /// it runs.
    pub fn create(command: &InitCommand) -> Result<PidNamespace, RestoreError> {
        let failed = |reason: String| RestoreError::PidNamespace { reason };
        let program = CString::new(command.program.as_os_str().as_bytes()).map_err(|_| {
            failed(format!(
                "the init program path {} contains a NUL byte",
                command.program.display()
            ))
        })?;
        let mut argv = vec![program.clone()];
        for arg in &command.args {
            argv.push(
                CString::new(arg.as_bytes()).map_err(|_| {
                    failed(format!("the init argument {arg:?} contains a NUL byte"))
                })?,
            );
        }
        let mut argv_pointers: Vec<*const libc::c_char> =
            argv.iter().map(|arg| arg.as_ptr()).collect();
        argv_pointers.push(std::ptr::null());
        let environment: [*const libc::c_char; 1] = [std::ptr::null()];

        let (control, theirs) = UnixStream::pair()
            .map_err(|error| failed(format!("creating the control socket failed: {error}")))?;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|error| failed(format!("opening /dev/null failed: {error}")))?;
        // Above the standard streams and CONTROL_FD, so that the dup2 calls
        // in the child cannot overwrite one source with another.
        let theirs = duplicate_high(theirs.as_fd())?;
        let null = duplicate_high(null.as_fd())?;

        let args = CloneArgs {
            flags: libc::CLONE_NEWPID as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        // SAFETY: args is a valid clone_args of the size passed; without
        // CLONE_VM the child gets a copy of this address space and runs only
        // `exec_init`, which makes async-signal-safe system calls on data
        // prepared above and never returns.
        let ret =
            unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, CLONE_ARGS_SIZE) };
        if ret == 0 {
            exec_init(
                theirs.as_raw_fd(),
                null.as_raw_fd(),
                &program,
                &argv_pointers,
                &environment,
            );
        }
        if ret < 0 {
            return Err(failed(format!(
                "clone3(CLONE_NEWPID) failed: {}",
                Errno::last()
            )));
        }
        let init = ret as i32;
        drop(theirs);
        drop(null);

        let mut control = control;
        let mut byte = [0u8; 1];
        let started = match control.read(&mut byte) {
            Ok(1) if byte[0] == READY => Ok(()),
            Ok(_) => Err(format!(
                "the init ({}) exited before it was ready, with {}",
                command.program.display(),
                kill_and_reap(init)
            )),
            Err(error) => Err(format!(
                "reading from the init failed: {error}; it ended with {}",
                kill_and_reap(init)
            )),
        };
        started.map_err(failed)?;

        let path = format!("/proc/{init}/ns/pid");
        let opened = File::open(&path).and_then(|file| {
            let inode = file.metadata()?.ino();
            Ok((file, inode))
        });
        let (namespace, inode) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                kill_and_reap(init);
                return Err(failed(format!("opening {path} failed: {error}")));
            }
        };
        info!(init, inode, "new PID namespace ready");
        Ok(PidNamespace {
            init,
            namespace,
            inode,
            control,
            released: false,
        })
    }

    /// PID of the init in the namespace of stasis.
    pub fn init_pid(&self) -> i32 {
        self.init
    }

    /// Inode number of the namespace, as in the /proc/PID/ns/pid link
    /// `pid:[INODE]`.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Runs `create` while the children that this thread creates go into
    /// the namespace, then puts the thread's PID namespace for children
    /// back.
    ///
    /// `create` must not start threads: the kernel rejects CLONE_THREAD
    /// while a thread's namespace for children differs from its own.
    pub fn create_in<T>(&self, create: impl FnOnce() -> T) -> Result<T, RestoreError> {
        let path = "/proc/thread-self/ns/pid_for_children";
        let previous = File::open(path).map_err(|error| RestoreError::PidNamespace {
            reason: format!("opening {path} failed: {error}"),
        })?;
        nix::sched::setns(self.namespace.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|errno| {
            RestoreError::PidNamespace {
                reason: format!("setns into the new PID namespace failed: {errno}"),
            }
        })?;
        let result = create();
        if let Err(errno) = nix::sched::setns(previous.as_fd(), CloneFlags::CLONE_NEWPID) {
            // Every later child of this thread would land in the tree's
            // namespace, so the thread cannot go on.
            panic!("setns back into the previous PID namespace for children failed: {errno}");
        }
        Ok(result)
    }

    /// Tells the init the PID, inside the namespace, of the root.
    pub fn watch_root(&mut self, root: i32) -> Result<(), RestoreError> {
        let mut message = vec![ROOT];
        message.extend_from_slice(&root.to_ne_bytes());
        self.send(&message)
    }

    /// Tells the init that the tree runs, and leaves the init running.
    pub fn release(mut self) -> Result<(), RestoreError> {
        self.released = true;
        self.send(&[RELEASED])
    }

    fn send(&mut self, message: &[u8]) -> Result<(), RestoreError> {
        self.control
            .write_all(message)
            .map_err(|error| RestoreError::PidNamespace {
                reason: format!("writing to the init (pid {}) failed: {error}", self.init),
            })
    }
}

impl Drop for PidNamespace {
    fn drop(&mut self) {
        if !self.released {
            let ended = kill_and_reap(self.init);
            info!(init = self.init, ended, "PID namespace removed");
        }
    }
}

/// Duplicates `fd` above CONTROL_FD, with close-on-exec set.
fn duplicate_high(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, RestoreError> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(RestoreError::PidNamespace {
            reason: format!("duplicating an fd failed: {}", Errno::last()),
        });
    }
    // SAFETY: `new` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Body of the init's process between clone3 and execve: the standard
/// streams on /dev/null (so that no reader of the output of stasis waits
/// for the init), the control socket at CONTROL_FD, no other fd, and `/`
/// as working directory.
fn exec_init(
    control: RawFd,
    null: RawFd,
    program: &CString,
    argv: &[*const libc::c_char],
    environment: &[*const libc::c_char],
) -> ! {
    // SAFETY: dup2, close_range, chdir, execve and _exit are
    // async-signal-safe system calls; the strings and pointer arrays were
    // made before clone3 and end with NULL.
    unsafe {
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        libc::dup2(null, 2);
        libc::dup2(control, CONTROL_FD);
        libc::close_range(CONTROL_FD as u32 + 1, u32::MAX, 0);
        libc::chdir(c"/".as_ptr());
        libc::execve(program.as_ptr(), argv.as_ptr(), environment.as_ptr());
        libc::_exit(127);
    }
}

/// Kills and reaps the init, a child of stasis, and returns how it ended.
fn kill_and_reap(init: i32) -> String {
    // SAFETY: kill(2) on the init, a child of this process that it has not
    // reaped, so the PID cannot belong to another process.
    unsafe { libc::kill(init, libc::SIGKILL) };
    let mut status = 0;
    // SAFETY: waitpid(2) on our child with a valid status pointer.
    let reaped = unsafe { libc::waitpid(init, &mut status, 0) };
    if reaped < 0 {
        warn!(init, error = %Errno::last(), "failed to reap the init of a PID namespace");
        return "an unknown status".into();
    }
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("wait status {status:#x}")
    }
}

/// Runs the init of a PID namespace that a restore started,
/// and returns its exit code: 0 once the restored tree is gone, 1 when
/// stasis went away before the tree ran, 2 when it was not started by
/// stasis.
pub fn run_init() -> u8 {
    // SAFETY: getpid and fcntl(F_GETFD) have no memory effects.
    let (pid, control_open) =
        unsafe { (libc::getpid(), libc::fcntl(CONTROL_FD, libc::F_GETFD) >= 0) };
    if pid != 1 || !control_open {
        eprintln!(
            "stasis: this subcommand runs only as the init of a PID namespace that `stasis restore` creates"
        );
        return 2;
    }
    // execve of /proc/self/exe names the process "exe", which would not
    // show in ps what the process is.
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"stasis-pid-init".as_ptr()) };
    // SAFETY: fd 3 is open and owned by nothing else in this process.
    let mut control = unsafe { UnixStream::from_raw_fd(CONTROL_FD) };
    // With SIGCHLD ignored, the kernel reaps the children of the init as
    // they exit, and waitpid blocks until none is left, then fails with
    // ECHILD.
    // SAFETY: setting a signal disposition to SIG_IGN runs no code.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    if control.write_all(&[READY]).is_err() {
        return 1;
    }

    let mut root: Option<OwnedFd> = None;
    loop {
        let mut byte = [0u8; 1];
        match control.read(&mut byte) {
            Ok(1) => {}
            _ => return 1,
        }
        match byte[0] {
            ROOT => {
                let mut pid = [0u8; 4];
                if control.read_exact(&mut pid).is_err() {
                    return 1;
                }
                root = pidfd_open(i32::from_ne_bytes(pid));
            }
            RELEASED => break,
            _ => return 1,
        }
    }
    drop(control);

    if let Some(root) = root {
        wait_readable(&root);
    }
    loop {
        // SAFETY: waitpid with a null status pointer.
        let ret = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::__WALL) };
        if ret < 0 && Errno::last() == Errno::ECHILD {
            return 0;
        }
    }
}

/// Opens a pidfd for `pid`, or returns None if it already exited.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with flags 0 returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a fresh fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits until a pidfd is readable, which it is once its process exited.
fn wait_readable(fd: &OwnedFd) {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: poll on one valid pollfd.
        let ret = unsafe { libc::poll(&mut poll, 1, -1) };
        if ret > 0 || (ret < 0 && Errno::last() != Errno::EINTR) {
            return;
        }
    }
}
