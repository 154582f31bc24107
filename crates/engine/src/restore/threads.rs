//! Creating the threads of the restored process.
//!
//! Each thread is created by the main thread itself, with clone3 run as a
//! remote system call: CLONE_THREAD and the other sharing flags, and
//! `set_tid` set to the recorded TID. With PTRACE_O_TRACECLONE the new
//! thread is attached automatically and starts in an event stop, before it
//! runs any instruction, so its registers can be set like the main
//! thread's.

use stasis_image::Process;
use stasis_linux::ptrace::{self, Stop};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, LinuxError};

use crate::error::{RestoreError, RestoreStep};

/// Flags of a thread as pthread_create makes it (glibc 2.36), without the
/// TID and TLS flags, whose effects the restored registers and state carry.
const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;
/// Size of struct clone_args up to and including `cgroup`.
const CLONE_ARGS_SIZE: u64 = 88;
/// Offset in the scratch area where clone_args is written.
const ARGS_OFFSET: u64 = 4096;

/// Creates every thread after the first one in `process` and returns a
/// remote-syscall handle for each, in image order.
pub fn create(
    main: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
    vdso: (u64, u64),
) -> Result<Vec<RemoteProcess>, RestoreError> {
    let pid = main.pid();
    if process.threads.len() < 2 {
        return Ok(Vec::new());
    }
    let options = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL;
    ptrace::set_options(pid, options | libc::PTRACE_O_TRACECLONE)
        .step(pid, "tracing thread creation")?;

    let mut threads = Vec::new();
    for thread in &process.threads[1..] {
        let tid = thread.tid;
        let args = scratch + ARGS_OFFSET;
        let tid_array = args + CLONE_ARGS_SIZE;
        let mut bytes: Vec<u8> = [THREAD_FLAGS, 0, 0, 0, 0, 0, 0, 0, tid_array, 1, 0]
            .iter()
            .flat_map(|word| word.to_ne_bytes())
            .collect();
        bytes.extend_from_slice(&tid.to_ne_bytes());
        mem::write(pid, args, &bytes).step(pid, "writing clone arguments")?;

        let created = main
            .syscall_raw(
                "clone3",
                libc::SYS_clone3,
                [args, CLONE_ARGS_SIZE, 0, 0, 0, 0],
            )
            .step(pid, format!("creating thread {tid}"))?;
        if created == -(libc::EEXIST as i64) {
            return Err(RestoreError::PidInUse {
                pid: tid,
                comm: std::fs::read_to_string(format!("/proc/{tid}/comm"))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".into()),
            });
        }
        if created != tid as i64 {
            return Err(RestoreError::Linux {
                pid,
                step: format!("creating thread {tid}"),
                source: LinuxError::Remote {
                    name: "clone3",
                    pid,
                    errno: nix::errno::Errno::from_raw((-created) as i32),
                },
            });
        }
        // clone3 returned the TID inside the process's PID namespace, but
        // ptrace needs the one in the namespace of stasis, which is the
        // PTRACE_EVENT_CLONE message.
        let host_tid = main.take_new_task().ok_or_else(|| RestoreError::Linux {
            pid,
            step: format!("creating thread {tid}"),
            source: LinuxError::UnexpectedStop {
                pid,
                step: "creating a thread",
                status: "clone3 returned without a PTRACE_EVENT_CLONE stop".into(),
            },
        })?;
        match ptrace::wait_stop(host_tid).step(host_tid, "waiting for the new thread")? {
            Stop::Event => {}
            other => {
                return Err(RestoreError::Linux {
                    pid: host_tid,
                    step: "waiting for the new thread".into(),
                    source: LinuxError::UnexpectedStop {
                        pid: host_tid,
                        step: "waiting for the new thread",
                        status: other.to_string(),
                    },
                })
            }
        }
        threads.push(
            RemoteProcess::new(host_tid, vdso).step(host_tid, "preparing remote system calls")?,
        );
    }
    ptrace::set_options(pid, options).step(pid, "ending thread creation tracing")?;
    Ok(threads)
}
