//! Creating the processes that become the restored tree.
//!
//! The root is created by stasis with clone3 and `set_tid`, so it gets the
//! image's PID. It only parks itself in pause(). Every other process is
//! created by its restored parent, which runs clone3 as a remote system
//! call, so parent links are as recorded; PTRACE_O_TRACEFORK attaches the
//! new process in an event stop before it runs. No stasis code runs in any
//! of them after that point: the restore rebuilds each from the outside.

use nix::errno::Errno;
use stasis_linux::ptrace::{self, Stop};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, proc, LinuxError};
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

const CLONE_ARGS_SIZE: u64 = std::mem::size_of::<CloneArgs>() as u64;
const TRACE_OPTIONS: i32 = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;

/// One process of the tree under construction.
pub struct Created {
    pub pid: i32,
    /// Threads created after the main one, detached on release.
    pub threads: Vec<i32>,
    /// Remote-syscall handle, kept once made, because it records whether the
    /// process sits in a syscall stop.
    pub remote: Option<RemoteProcess>,
    /// The process was made to exit, to become a zombie.
    pub exited: bool,
}

impl Created {
    /// Returns the remote-syscall handle, creating it on first use.
    pub fn remote(&mut self) -> Result<&mut RemoteProcess, RestoreError> {
        if self.remote.is_none() {
            let pid = self.pid;
            let vdso = proc::mappings(pid)
                .step(pid, "reading the new process's mappings")?
                .into_iter()
                .find(|m| m.backing == proc::MapBacking::Vdso)
                .map(|m| (m.start, m.end))
                .ok_or_else(|| RestoreError::Incompatible {
                    reason: "this kernel gives processes no [vdso], which stasis needs to run system calls in them".into(),
                })?;
            self.remote =
                Some(RemoteProcess::new(pid, vdso).step(pid, "preparing remote system calls")?);
        }
        Ok(self.remote.as_mut().expect("set above"))
    }
}

/// The tree under construction. Dropping it without [`Tree::release`]
/// kills and reaps every process in it, so a failed restore leaves no
/// process behind.
pub struct Tree {
    pub processes: Vec<Created>,
    released: bool,
}

impl Tree {
    /// Creates the root with PID `pid`, seized and stopped. `flags` are
    /// extra clone flags, such as CLONE_NEWIPC.
    pub fn spawn_root(pid: i32, flags: u64) -> Result<Tree, RestoreError> {
        let tids = [pid];
        let args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            set_tid: tids.as_ptr() as u64,
            set_tid_size: 1,
            ..CloneArgs::default()
        };
        let mut attempts = 0;
        let ret = loop {
            // SAFETY: args is a valid clone_args of the size passed; without
            // CLONE_VM the child gets a copy of this address space and runs
            // only `park_child`, which calls async-signal-safe functions and
            // never returns.
            let ret = unsafe {
                libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, CLONE_ARGS_SIZE)
            };
            if ret == 0 {
                park_child();
            }
            if ret > 0 {
                break ret;
            }
            let errno = Errno::last();
            if errno == Errno::EEXIST && held_by_zombie(pid) && attempts < ZOMBIE_RETRIES {
                attempts += 1;
                std::thread::sleep(ZOMBIE_RETRY_DELAY);
                continue;
            }
            return Err(clone_error(pid, errno));
        };
        let tree = Tree {
            processes: vec![Created {
                pid: ret as i32,
                threads: Vec::new(),
                remote: None,
                exited: false,
            }],
            released: false,
        };
        seize_new(pid)?;
        Ok(tree)
    }

    /// Returns the process with PID `pid`.
    pub fn get(&mut self, pid: i32) -> Option<&mut Created> {
        self.processes.iter_mut().find(|created| created.pid == pid)
    }

    /// Makes `parent` create a child process with PID `pid`.
    pub fn fork(&mut self, parent: i32, pid: i32) -> Result<(), RestoreError> {
        let creator = self.get(parent).ok_or_else(|| RestoreError::Unsupported {
            reason: format!("process {pid} has parent {parent}, which is not restored before it"),
        })?;
        let remote = creator.remote()?;
        ptrace::set_options(parent, TRACE_OPTIONS | libc::PTRACE_O_TRACEFORK)
            .step(parent, "tracing fork")?;

        let scratch = remote
            .mmap_anonymous(0, 4096)
            .step(parent, "mapping clone arguments")?;
        let set_tid = scratch + CLONE_ARGS_SIZE;
        let words = [0, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0, set_tid, 1, 0];
        let mut bytes: Vec<u8> = words
            .iter()
            .flat_map(|word: &u64| word.to_ne_bytes())
            .collect();
        bytes.extend_from_slice(&pid.to_ne_bytes());
        mem::write(parent, scratch, &bytes).step(parent, "writing clone arguments")?;
        let mut attempts = 0;
        let created = loop {
            let created = remote
                .syscall_raw(
                    "clone3",
                    libc::SYS_clone3,
                    [scratch, CLONE_ARGS_SIZE, 0, 0, 0, 0],
                )
                .step(parent, format!("creating process {pid}"))?;
            if created == -(libc::EEXIST as i64) && held_by_zombie(pid) && attempts < ZOMBIE_RETRIES
            {
                attempts += 1;
                std::thread::sleep(ZOMBIE_RETRY_DELAY);
                continue;
            }
            break created;
        };
        remote.take_new_task();
        remote
            .munmap(scratch, 4096)
            .step(parent, "unmapping clone arguments")?;
        ptrace::set_options(parent, TRACE_OPTIONS).step(parent, "ending fork tracing")?;
        if created < 0 {
            return Err(clone_error(pid, Errno::from_raw(-created as i32)));
        }

        wait_event_stop(pid, "waiting for the new process")?;
        block_signals(pid)?;
        self.processes.push(Created {
            pid,
            threads: Vec::new(),
            remote: None,
            exited: false,
        });
        Ok(())
    }

    /// Lets every process of the tree run.
    pub fn release(mut self) -> Result<(), RestoreError> {
        self.released = true;
        for created in self
            .processes
            .iter()
            .rev()
            .filter(|created| !created.exited)
        {
            for &tid in &created.threads {
                ptrace::detach(tid).step(tid, "resuming a restored thread")?;
            }
            ptrace::detach(created.pid).step(created.pid, "resuming the restored process")?;
        }
        Ok(())
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        for created in &self.processes {
            // SAFETY: kill(2) on a process this restore created.
            unsafe { libc::kill(created.pid, libc::SIGKILL) };
        }
        for created in self.processes.iter().filter(|created| !created.exited) {
            let mut status = 0;
            // SAFETY: waitpid(2) on our tracee with a valid status pointer.
            if unsafe { libc::waitpid(created.pid, &mut status, libc::__WALL) } < 0 {
                warn!(pid = created.pid, "failed to reap a half-restored process");
            }
        }
    }
}

/// How often, and how long apart, a restore tries again to take a PID that
/// a zombie holds: right after a dump kills a process, its PID stays taken
/// until its parent reaps it, which init does only after a delay on some
/// systems.
const ZOMBIE_RETRIES: u32 = 50;
const ZOMBIE_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether `pid` belongs to a zombie, which will free it once reaped.
fn held_by_zombie(pid: i32) -> bool {
    proc::stat(pid)
        .map(|stat| stat.state == 'Z')
        .unwrap_or(false)
}

fn clone_error(pid: i32, errno: Errno) -> RestoreError {
    if errno == Errno::EEXIST {
        if let Ok(stat) = proc::stat(pid) {
            if stat.state == 'Z' {
                return RestoreError::PidHeldByZombie {
                    pid,
                    comm: stat.comm,
                    parent: stat.ppid,
                };
            }
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        return RestoreError::PidInUse { pid, comm };
    }
    RestoreError::Clone { pid, source: errno }
}

/// Seizes the root after clone3 and waits for it to stop.
fn seize_new(pid: i32) -> Result<(), RestoreError> {
    ptrace::seize(pid, true).step(pid, "seizing the new process")?;
    ptrace::interrupt(pid).step(pid, "stopping the new process")?;
    wait_event_stop(pid, "stopping the new process")?;
    block_signals(pid)
}

/// Blocks every signal of a new process, so that a signal sent to it
/// while it is rebuilt (SIGCHLD from a child made a zombie) waits instead
/// of stopping a remote system call. The saved mask is set at the end.
fn block_signals(pid: i32) -> Result<(), RestoreError> {
    ptrace::set_sigmask(pid, u64::MAX).step(pid, "blocking signals")
}

fn wait_event_stop(pid: i32, step: &'static str) -> Result<(), RestoreError> {
    match ptrace::wait_stop(pid).step(pid, step)? {
        Stop::Event => Ok(()),
        other => Err(RestoreError::Linux {
            pid,
            step: step.into(),
            source: LinuxError::UnexpectedStop {
                pid,
                step,
                status: other.to_string(),
            },
        }),
    }
}

/// Body of the root before the restore takes it over: wait, with a
/// parent-death signal so it cannot outlive a crashed restore.
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
