//! Creating the processes that become the restored tree.
//!
//! The root is created by stasis with clone3 and `set_tid`, so it gets the
//! image's PID. It only parks itself in pause(). Every other process is
//! created by its restored parent, which runs clone3 as a remote system
//! call, so parent links are as recorded; PTRACE_O_TRACEFORK attaches the
//! new process in an event stop before it runs. No stasis code runs in any
//! of them after that point: the restore rebuilds each from the outside.
//!
//! In a new PID namespace each process has two PIDs: the saved one inside
//! the namespace, which `set_tid` sets and getpid returns, and
//! another in the namespace of stasis, which ptrace, kill and /proc use.
//! [`Created`] keeps both.

use nix::errno::Errno;
use stasis_linux::ptrace::{self, Stop};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, proc, LinuxError};
use tracing::warn;

use crate::error::{RestoreError, RestoreStep};
use crate::restore::pidns::PidNamespace;

/// struct clone_args from include/uapi/linux/sched.h (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

pub(super) const CLONE_ARGS_SIZE: u64 = std::mem::size_of::<CloneArgs>() as u64;
const TRACE_OPTIONS: i32 = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;

/// One process of the tree under construction.
pub struct Created {
    /// PID in the PID namespace of stasis, for ptrace, kill and /proc.
    pub pid: i32,
    /// PID recorded in the image, which getpid returns in the process. It
    /// equals `pid` unless the tree is in a new PID namespace.
    pub saved_pid: i32,
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
/// kills and reaps every process in it, and then the init of its PID
/// namespace if it has one, so a failed restore leaves no process behind.
pub struct Tree {
    pub processes: Vec<Created>,
    /// The new PID namespace of the tree, None in the namespace of stasis.
    /// Declared after `processes`, so it is dropped after the processes
    /// are reaped.
    pub pid_namespace: Option<PidNamespace>,
    released: bool,
}

impl Tree {
    /// Creates the root with PID `pid`, seized and stopped, in
    /// `pid_namespace` if given, and else in the PID namespace of stasis.
    /// `flags` are extra clone flags, such as CLONE_NEWIPC.
    pub fn spawn_root(
        pid: i32,
        flags: u64,
        pid_namespace: Option<PidNamespace>,
    ) -> Result<Tree, RestoreError> {
        let tids = [pid];
        let args = CloneArgs {
            flags,
            exit_signal: libc::SIGCHLD as u64,
            set_tid: tids.as_ptr() as u64,
            set_tid_size: 1,
            ..CloneArgs::default()
        };
        let ret = match &pid_namespace {
            Some(namespace) => namespace.create_in(|| {
                clone_root(&args).map_err(|errno| namespace_clone_error(pid, errno))
            })??,
            None => {
                let mut attempts = 0;
                loop {
                    match clone_root(&args) {
                        Ok(ret) => break ret,
                        Err(errno)
                            if errno == Errno::EEXIST
                                && held_by_zombie(pid)
                                && attempts < ZOMBIE_RETRIES =>
                        {
                            attempts += 1;
                            std::thread::sleep(ZOMBIE_RETRY_DELAY);
                        }
                        Err(errno) => return Err(clone_error(pid, errno)),
                    }
                }
            }
        };
        // clone3 returns the PID in the namespace of the caller.
        let mut tree = Tree {
            processes: vec![Created {
                pid: ret,
                saved_pid: pid,
                threads: Vec::new(),
                remote: None,
                exited: false,
            }],
            pid_namespace,
            released: false,
        };
        seize_new(ret)?;
        if let Some(namespace) = tree.pid_namespace.as_mut() {
            namespace.watch_root(pid)?;
        }
        Ok(tree)
    }

    /// Returns the process with the saved PID `pid`.
    pub fn get(&mut self, pid: i32) -> Option<&mut Created> {
        self.processes
            .iter_mut()
            .find(|created| created.saved_pid == pid)
    }

    /// Makes `parent` create a child process with PID `pid`, with the clone3
    /// `flags` (CLONE_FILES, CLONE_FS) on top of a plain fork. Both PIDs are
    /// saved PIDs.
    pub fn fork(&mut self, parent: i32, pid: i32, flags: u64) -> Result<(), RestoreError> {
        let in_namespace = self.pid_namespace.is_some();
        let creator = self.get(parent).ok_or_else(|| RestoreError::Unsupported {
            reason: format!("process {pid} has parent {parent}, which is not restored before it"),
        })?;
        let parent = creator.pid;
        let remote = creator.remote()?;
        ptrace::set_options(parent, TRACE_OPTIONS | libc::PTRACE_O_TRACEFORK)
            .step(parent, "tracing fork")?;

        let scratch = remote
            .mmap_anonymous(0, 4096)
            .step(parent, "mapping clone arguments")?;
        let set_tid = scratch + CLONE_ARGS_SIZE;
        let words = [flags, 0, 0, 0, libc::SIGCHLD as u64, 0, 0, 0, set_tid, 1, 0];
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
            if created == -(libc::EEXIST as i64)
                && !in_namespace
                && held_by_zombie(pid)
                && attempts < ZOMBIE_RETRIES
            {
                attempts += 1;
                std::thread::sleep(ZOMBIE_RETRY_DELAY);
                continue;
            }
            break created;
        };
        // The PTRACE_EVENT_FORK message is the new PID in the namespace of
        // the tracer, while clone3 returned the one in the parent's.
        let new_task = remote.take_new_task();
        remote
            .munmap(scratch, 4096)
            .step(parent, "unmapping clone arguments")?;
        ptrace::set_options(parent, TRACE_OPTIONS).step(parent, "ending fork tracing")?;
        if created < 0 {
            let errno = Errno::from_raw(-created as i32);
            return Err(if in_namespace {
                namespace_clone_error(pid, errno)
            } else {
                clone_error(pid, errno)
            });
        }
        let host_pid = new_task.ok_or_else(|| RestoreError::Linux {
            pid: parent,
            step: format!("creating process {pid}"),
            source: LinuxError::UnexpectedStop {
                pid: parent,
                step: "creating a process",
                status: "clone3 returned without a PTRACE_EVENT_FORK stop".into(),
            },
        })?;

        wait_event_stop(host_pid, "waiting for the new process")?;
        block_signals(host_pid)?;
        self.processes.push(Created {
            pid: host_pid,
            saved_pid: pid,
            threads: Vec::new(),
            remote: None,
            exited: false,
        });
        Ok(())
    }

    /// Lets every process of the tree run, and leaves the init of its PID
    /// namespace, if any, running on its own.
    pub fn release(mut self) -> Result<(), RestoreError> {
        self.released = true;
        // The init stays in charge of its namespace even if a detach below
        // fails, because the processes already detached run.
        if let Some(namespace) = self.pid_namespace.take() {
            namespace.release()?;
        }
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

/// Runs clone3 with `args` from this thread and returns the child's PID in
/// the PID namespace of stasis. The child runs `park_child`.
fn clone_root(args: &CloneArgs) -> Result<i32, Errno> {
    // SAFETY: args is a valid clone_args of the size passed; without
    // CLONE_VM the child gets a copy of this address space and runs only
    // `park_child`, which calls async-signal-safe functions and never
    // returns.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, args as *const CloneArgs, CLONE_ARGS_SIZE) };
    if ret == 0 {
        park_child();
    }
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(ret as i32)
}

/// Describes a failed clone3 in a new PID namespace. EEXIST there cannot
/// come from a process outside the tree, because the namespace starts empty
/// but for its init.
fn namespace_clone_error(pid: i32, errno: Errno) -> RestoreError {
    if errno == Errno::EEXIST {
        return RestoreError::Unsupported {
            reason: format!(
                "pid {pid} is taken twice in the new PID namespace; the image lists it twice, or it is pid 1, which the namespace's init holds"
            ),
        };
    }
    RestoreError::Clone { pid, source: errno }
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
