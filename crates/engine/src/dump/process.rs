//! Saving a process's identity, credentials, limits, signals and threads.

use std::path::Path;

use stasis_image::{
    Bytes, Credentials, Itimer, MmFields, PosixTimer, Process, Rlimit, RobustList, Rseq, SigAction,
    SigAltStack, Thread,
};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, proc, ptrace};

use crate::dump::freeze::Frozen;
use crate::error::{DumpError, DumpStep};
use crate::file_identity;

/// Size of struct kernel_sigaction on x86-64: handler, flags, restorer, mask.
const KERNEL_SIGACTION_SIZE: usize = 32;
const PR_GET_TID_ADDRESS: u64 = 40;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_GET_SECUREBITS: u64 = 27;
/// RLIMIT_CPU through RLIMIT_RTTIME.
const RLIMIT_COUNT: u32 = 16;

/// Everything about one process that is not memory or files. Process-wide
/// state is read through the main thread, per-thread state through each
/// thread; `scratch` is a page of the target's memory.
pub fn collect(
    pid: i32,
    frozen: &mut Frozen,
    vdso: (u64, u64),
    scratch: u64,
) -> Result<Process, DumpError> {
    let deferred: Vec<[u8; ptrace::SIGINFO_SIZE]> = frozen
        .threads
        .iter()
        .flat_map(|thread| thread.deferred.iter().copied())
        .collect();
    let mut threads = Vec::with_capacity(frozen.threads.len());
    for index in 0..frozen.threads.len() {
        let sigmask = frozen.threads[index].sigmask;
        let remote = frozen
            .remote(index, vdso)
            .step(pid, "preparing remote system calls")?;
        threads.push(collect_thread(remote, scratch, sigmask)?);
    }
    check_same_credentials(
        pid,
        &frozen.threads.iter().map(|t| t.tid).collect::<Vec<_>>(),
    )?;
    let remote = frozen
        .remote(0, vdso)
        .step(pid, "preparing remote system calls")?;
    let stat = proc::stat(pid).step(pid, "reading /proc/PID/stat")?;
    let status = proc::status(pid).step(pid, "reading /proc/PID/status")?;

    let exe_link = proc::read_link(Path::new(&format!("/proc/{pid}/exe")))
        .step(pid, "reading /proc/PID/exe")?;
    let exe = file_identity(
        &exe_link.to_string_lossy(),
        Path::new(&format!("/proc/{pid}/exe")),
    )?;
    let cwd = proc::read_link(Path::new(&format!("/proc/{pid}/cwd")))
        .step(pid, "reading /proc/PID/cwd")?;
    let root = proc::read_link(Path::new(&format!("/proc/{pid}/root")))
        .step(pid, "reading /proc/PID/root")?;

    let brk = remote
        .syscall("brk", libc::SYS_brk, [0; 6])
        .step(pid, "reading brk")?;
    let mm = MmFields {
        start_code: stat.startcode,
        end_code: stat.endcode,
        start_data: stat.start_data.unwrap_or(0),
        end_data: stat.end_data.unwrap_or(0),
        start_brk: stat.start_brk.unwrap_or(0),
        brk,
        start_stack: stat.startstack,
        arg_start: stat.arg_start.unwrap_or(0),
        arg_end: stat.arg_end.unwrap_or(0),
        env_start: stat.env_start.unwrap_or(0),
        env_end: stat.env_end.unwrap_or(0),
        auxv: proc::auxv(pid).step(pid, "reading /proc/PID/auxv")?,
    };

    let securebits = remote
        .syscall(
            "prctl(PR_GET_SECUREBITS)",
            libc::SYS_prctl,
            [PR_GET_SECUREBITS, 0, 0, 0, 0, 0],
        )
        .step(pid, "reading securebits")?;
    let credentials = Credentials {
        uids: [status.ruid, status.euid, status.suid, status.fuid],
        gids: [status.rgid, status.egid, status.sgid, status.fgid],
        groups: status.groups.clone(),
        cap_inheritable: status.capinh,
        cap_permitted: status.capprm,
        cap_effective: status.capeff,
        cap_bounding: status.capbnd.unwrap_or(u64::MAX),
        cap_ambient: status.capamb.unwrap_or(0),
        securebits: securebits as u32,
        no_new_privs: status.nonewprivs.unwrap_or(0) != 0,
    };

    let timer_slack_ns = remote
        .syscall(
            "prctl(PR_GET_TIMERSLACK)",
            libc::SYS_prctl,
            [PR_GET_TIMERSLACK, 0, 0, 0, 0, 0],
        )
        .step(pid, "reading the timer slack")?;

    let mut shared_pending: Vec<Bytes> = ptrace::peek_pending(pid, true)
        .step(pid, "reading shared pending signals")?
        .iter()
        .map(|info| Bytes(info.to_vec()))
        .collect();
    // NOTE: a signal dequeued while stopping may have come from the thread's
    // own queue or the shared one; it is saved as process-wide, so in a
    // multi-threaded process another thread may receive it after restore.
    shared_pending.extend(deferred.iter().map(|info| Bytes(info.to_vec())));

    Ok(Process {
        pid,
        ppid: stat.ppid,
        pgid: stat.pgrp,
        sid: stat.session,
        comm: proc::comm(pid, pid).step(pid, "reading comm")?,
        exe,
        credentials,
        rlimits: collect_rlimits(pid)?,
        mm,
        personality: proc::personality(pid).step(pid, "reading personality")?,
        umask: status.umask.unwrap_or(0o022),
        timer_slack_ns,
        itimers: collect_itimers(pid, remote, scratch)?,
        sigactions: collect_sigactions(pid, remote, scratch)?,
        shared_pending,
        threads,
        cwd: cwd.to_string_lossy().into_owned(),
        root: root.to_string_lossy().into_owned(),
        posix_timers: collect_posix_timers(pid, remote, scratch)?,
        zombie_exit_status: None,
        files_shared_with: None,
        fs_shared_with: None,
    })
}

fn collect_thread(
    remote: &mut RemoteProcess,
    scratch: u64,
    sigmask: u64,
) -> Result<Thread, DumpError> {
    let tid = remote.pid();
    let regs = crate::regs::from_user(remote.saved_regs());
    let xstate = ptrace::get_xstate(tid).step(tid, "reading the XSAVE registers")?;
    let pending = ptrace::peek_pending(tid, false)
        .step(tid, "reading pending signals")?
        .iter()
        .map(|info| Bytes(info.to_vec()))
        .collect();
    let rseq = ptrace::rseq_configuration(tid)
        .step(tid, "reading the rseq registration")?
        .map(|config| Rseq {
            address: config.address,
            size: config.size,
            signature: config.signature,
        });

    remote
        .syscall(
            "sigaltstack",
            libc::SYS_sigaltstack,
            [0, scratch, 0, 0, 0, 0],
        )
        .step(tid, "reading sigaltstack")?;
    let stack = read_words(tid, scratch, 3)?;
    let sigaltstack = SigAltStack {
        sp: stack[0],
        flags: stack[1] as i32,
        size: stack[2],
    };

    remote
        .syscall(
            "get_robust_list",
            libc::SYS_get_robust_list,
            [0, scratch, scratch + 8, 0, 0, 0],
        )
        .step(tid, "reading the robust futex list")?;
    let robust = read_words(tid, scratch, 2)?;

    remote
        .syscall(
            "prctl(PR_GET_TID_ADDRESS)",
            libc::SYS_prctl,
            [PR_GET_TID_ADDRESS, scratch, 0, 0, 0, 0],
        )
        .step(tid, "reading clear_child_tid")?;
    let clear_child_tid = read_words(tid, scratch, 1)?[0];

    Ok(Thread {
        tid,
        comm: proc::comm(tid_group(tid)?, tid).step(tid, "reading comm")?,
        regs,
        xstate: Bytes(xstate),
        sigmask,
        pending,
        sigaltstack,
        rseq,
        robust_list: RobustList {
            head: robust[0],
            len: robust[1],
        },
        clear_child_tid,
    })
}

/// Returns the thread group (process) of thread `tid`.
fn tid_group(tid: i32) -> Result<i32, DumpError> {
    Ok(proc::status(tid)
        .step(tid, "reading /proc/TID/status")?
        .tgid)
}

/// Rejects a process whose threads have different credentials, which the
/// image records once per process.
fn check_same_credentials(pid: i32, tids: &[i32]) -> Result<(), DumpError> {
    let read = |tid: i32| -> Result<String, DumpError> {
        let path = format!("/proc/{pid}/task/{tid}/status");
        let text = std::fs::read_to_string(&path).map_err(|source| DumpError::Io {
            path: path.into(),
            source,
        })?;
        Ok(text
            .lines()
            .filter(|line| {
                ["Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:"]
                    .iter()
                    .any(|key| line.starts_with(key))
            })
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let main = read(pid)?;
    for &tid in tids.iter().filter(|&&tid| tid != pid) {
        if read(tid)? != main {
            return Err(DumpError::Unsupported {
                pid,
                reason: format!("thread {tid} has other credentials than the main thread, which stasis cannot save yet"),
            });
        }
    }
    Ok(())
}

fn collect_sigactions(
    pid: i32,
    remote: &mut RemoteProcess,
    scratch: u64,
) -> Result<Vec<SigAction>, DumpError> {
    let mut actions = Vec::new();
    for signo in 1..=64u32 {
        if signo == libc::SIGKILL as u32 || signo == libc::SIGSTOP as u32 {
            continue;
        }
        remote
            .syscall(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [signo as u64, 0, scratch, 8, 0, 0],
            )
            .step(pid, "reading signal dispositions")?;
        let words = read_words(pid, scratch, KERNEL_SIGACTION_SIZE / 8)?;
        actions.push(SigAction {
            signo,
            handler: words[0],
            flags: words[1],
            restorer: words[2],
            mask: words[3],
        });
    }
    Ok(actions)
}

/// Reads the POSIX timers from /proc/PID/timers and the time left to each
/// with timer_gettime run in the process.
fn collect_posix_timers(
    pid: i32,
    remote: &mut RemoteProcess,
    scratch: u64,
) -> Result<Vec<PosixTimer>, DumpError> {
    let path = format!("/proc/{pid}/timers");
    let text = std::fs::read_to_string(&path).map_err(|source| DumpError::Io {
        path: path.clone().into(),
        source,
    })?;
    let invalid = |line: &str| DumpError::Unsupported {
        pid,
        reason: format!("cannot parse {path}: {line:?}"),
    };
    let mut timers = Vec::new();
    let mut timer: Option<PosixTimer> = None;
    for line in text.lines() {
        let (key, value) = line.split_once(':').ok_or_else(|| invalid(line))?;
        let value = value.trim();
        match key {
            "ID" => {
                timers.extend(timer.take());
                timer = Some(PosixTimer {
                    id: value.parse().map_err(|_| invalid(line))?,
                    clock: 0,
                    notify: libc::SIGEV_SIGNAL,
                    signal: 0,
                    value: 0,
                    thread: 0,
                    value_ns: 0,
                    interval_ns: 0,
                });
            }
            "signal" => {
                let current = timer.as_mut().ok_or_else(|| invalid(line))?;
                let (signal, sigval) = value.split_once('/').ok_or_else(|| invalid(line))?;
                current.signal = signal.parse().map_err(|_| invalid(line))?;
                current.value = u64::from_str_radix(sigval, 16).map_err(|_| invalid(line))?;
            }
            "notify" => {
                let current = timer.as_mut().ok_or_else(|| invalid(line))?;
                let (how, target) = value.split_once('/').ok_or_else(|| invalid(line))?;
                current.notify = match how {
                    "signal" => libc::SIGEV_SIGNAL,
                    "none" => libc::SIGEV_NONE,
                    "thread" => libc::SIGEV_THREAD_ID,
                    _ => return Err(invalid(line)),
                };
                current.thread = target
                    .rsplit('.')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
            }
            "ClockID" => {
                timer.as_mut().ok_or_else(|| invalid(line))?.clock =
                    value.parse().map_err(|_| invalid(line))?;
            }
            _ => {}
        }
    }
    timers.extend(timer);

    for timer in &mut timers {
        remote
            .syscall(
                "timer_gettime",
                libc::SYS_timer_gettime,
                [timer.id as u64, scratch, 0, 0, 0, 0],
            )
            .step(pid, "reading a POSIX timer")?;
        // struct itimerspec: it_interval {sec, nsec}, it_value {sec, nsec}.
        let words = read_words(pid, scratch, 4)?;
        timer.interval_ns = words[0] * 1_000_000_000 + words[1];
        timer.value_ns = words[2] * 1_000_000_000 + words[3];
    }
    Ok(timers)
}

fn collect_itimers(
    pid: i32,
    remote: &mut RemoteProcess,
    scratch: u64,
) -> Result<Vec<Itimer>, DumpError> {
    let mut timers = Vec::new();
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        remote
            .syscall(
                "getitimer",
                libc::SYS_getitimer,
                [which as u64, scratch, 0, 0, 0, 0],
            )
            .step(pid, "reading interval timers")?;
        // struct itimerval: it_interval {sec, usec}, it_value {sec, usec}.
        let words = read_words(pid, scratch, 4)?;
        timers.push(Itimer {
            interval_us: words[0] * 1_000_000 + words[1],
            value_us: words[2] * 1_000_000 + words[3],
        });
    }
    Ok(timers)
}

fn collect_rlimits(pid: i32) -> Result<Vec<Rlimit>, DumpError> {
    let mut limits = Vec::new();
    for resource in 0..RLIMIT_COUNT {
        let mut old = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a null new-limit pointer only reads; `old` is a valid out-pointer.
        let ret = unsafe { libc::prlimit64(pid, resource as _, std::ptr::null(), &mut old) };
        if ret != 0 {
            return Err(DumpError::Linux {
                pid,
                step: "reading resource limits",
                source: stasis_linux::LinuxError::Syscall {
                    op: "prlimit64",
                    errno: nix::errno::Errno::last(),
                },
            });
        }
        limits.push(Rlimit {
            resource,
            soft: old.rlim_cur,
            hard: old.rlim_max,
        });
    }
    Ok(limits)
}

fn read_words(pid: i32, addr: u64, count: usize) -> Result<Vec<u64>, DumpError> {
    let mut buf = vec![0u8; count * 8];
    mem::read(pid, addr, &mut buf).step(pid, "reading the scratch page")?;
    Ok(buf
        .chunks_exact(8)
        .map(|chunk| u64::from_ne_bytes(chunk.try_into().expect("8 bytes")))
        .collect())
}

/// Returns the record of a zombie: its place in the tree and its exit status.
pub fn zombie_record(zombie: &crate::dump::tree::Zombie) -> Process {
    Process {
        pid: zombie.pid,
        ppid: zombie.ppid,
        pgid: zombie.pgid,
        sid: zombie.sid,
        comm: zombie.comm.clone(),
        exe: stasis_image::FileIdentity::default(),
        credentials: Credentials::default(),
        rlimits: Vec::new(),
        mm: MmFields::default(),
        personality: 0,
        umask: 0,
        timer_slack_ns: 0,
        itimers: Vec::new(),
        sigactions: Vec::new(),
        shared_pending: Vec::new(),
        threads: Vec::new(),
        cwd: "/".into(),
        root: "/".into(),
        posix_timers: Vec::new(),
        zombie_exit_status: Some(zombie.wait_status),
        files_shared_with: None,
        fs_shared_with: None,
    }
}
