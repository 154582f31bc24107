//! Restoring process and thread state inside the new process: mm fields,
//! fds, limits, timers, signals and credentials, in an order where no step
//! takes away a privilege that a later step needs.

use std::os::fd::AsRawFd;

use stasis_image::{Process, Thread};
use stasis_linux::remote::RemoteProcess;
use stasis_linux::{mem, proc, ptrace};
use tracing::warn;

use crate::error::{RestoreError, RestoreStep};
use crate::restore::files::OpenedFiles;

const PR_SET_MM: u64 = 35;
const PR_SET_MM_MAP: u64 = 14;
const PR_SET_NAME: u64 = 15;
const PR_SET_TIMERSLACK: u64 = 29;
const PR_SET_PDEATHSIG: u64 = 1;
const PR_SET_KEEPCAPS: u64 = 8;
const PR_SET_SECUREBITS: u64 = 28;
const PR_SET_NO_NEW_PRIVS: u64 = 38;
const PR_CAPBSET_DROP: u64 = 24;
const PR_CAP_AMBIENT: u64 = 47;
const PR_CAP_AMBIENT_RAISE: u64 = 2;
const SS_ONSTACK: i32 = 1;
const SECBIT_KEEP_CAPS: u32 = 1 << 4;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
/// Highest capability number that Linux 6.18 defines (CAP_CHECKPOINT_RESTORE).
const CAP_LAST: u32 = 40;

/// Writes `bytes` into the scratch area and returns its address.
fn put(remote: &RemoteProcess, scratch: u64, bytes: &[u8]) -> Result<u64, RestoreError> {
    let pid = remote.pid();
    mem::write(pid, scratch, bytes).step(pid, "writing the scratch area")?;
    Ok(scratch)
}

fn words(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

/// Sets brk, code/data/stack/arg/env boundaries, auxv and the exe link in
/// one PR_SET_MM_MAP call, the form that needs no CAP_SYS_RESOURCE.
pub fn set_mm(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
    files: &OpenedFiles,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let mm = &process.mm;
    let auxv_addr = scratch + 512;
    put(remote, auxv_addr, &words(&mm.auxv))?;
    // struct prctl_mm_map: eleven u64 fields, the auxv pointer, then
    // auxv_size and exe_fd as u32.
    let mut map = words(&[
        mm.start_code,
        mm.end_code,
        mm.start_data,
        mm.end_data,
        mm.start_brk,
        mm.brk,
        mm.start_stack,
        mm.arg_start,
        mm.arg_end,
        mm.env_start,
        mm.env_end,
        auxv_addr,
    ]);
    map.extend_from_slice(&((mm.auxv.len() * 8) as u32).to_ne_bytes());
    map.extend_from_slice(&(files.exe.as_raw_fd() as u32).to_ne_bytes());
    put(remote, scratch, &map)?;
    remote
        .syscall(
            "prctl(PR_SET_MM_MAP)",
            libc::SYS_prctl,
            [PR_SET_MM, PR_SET_MM_MAP, scratch, map.len() as u64, 0, 0],
        )
        .step(pid, "setting the mm fields (PR_SET_MM_MAP)")?;
    Ok(())
}

/// Enters the saved working directory.
pub fn enter_cwd(remote: &mut RemoteProcess, files: &OpenedFiles) -> Result<(), RestoreError> {
    let pid = remote.pid();
    remote
        .syscall(
            "fchdir",
            libc::SYS_fchdir,
            [files.cwd.as_raw_fd() as u64, 0, 0, 0, 0, 0],
        )
        .step(pid, "entering the working directory")?;
    Ok(())
}

/// Moves every fd to its recorded number.
pub fn install_fds(remote: &mut RemoteProcess, files: &OpenedFiles) -> Result<(), RestoreError> {
    let pid = remote.pid();
    for &(target, source, cloexec) in &files.fds {
        let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
        remote
            .syscall(
                "dup3",
                libc::SYS_dup3,
                [source as u64, target as u64, flags, 0, 0, 0],
            )
            .step(pid, format!("installing fd {target}"))?;
    }
    Ok(())
}

/// Closes every fd of the process's table except the recorded fds in
/// `keep`: the fds that stasis opened for the restore, at or above `base`,
/// and any other fd inherited from stasis.
pub fn close_inherited_fds(
    remote: &mut RemoteProcess,
    base: i32,
    keep: &[i32],
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    // Every fd that stasis opened for the tree is at or above `base`, above
    // every recorded fd number, so one close_range drops them all.
    remote
        .syscall(
            "close_range",
            libc::SYS_close_range,
            [base as u64, u32::MAX as u64, 0, 0, 0, 0],
        )
        .step(pid, "closing inherited fds")?;
    for fd in proc::fds(pid).step(pid, "listing inherited fds")? {
        if !keep.contains(&fd) {
            remote
                .syscall("close", libc::SYS_close, [fd as u64, 0, 0, 0, 0, 0])
                .step(pid, format!("closing inherited fd {fd}"))?;
        }
    }
    Ok(())
}

/// Returns the (soft, hard) limit `resource` of `pid`, read from outside.
fn current_rlimit(pid: i32, resource: u32) -> Option<(u64, u64)> {
    let mut old = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new-limit pointer only reads; `old` is a valid out-pointer.
    let ret = unsafe { libc::prlimit64(pid, resource as _, std::ptr::null(), &mut old) };
    (ret == 0).then_some((old.rlim_cur, old.rlim_max))
}

/// Restores personality, umask, timer slack, limits and timers.
pub fn set_process_state(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    remote
        .syscall(
            "personality",
            libc::SYS_personality,
            [process.personality as u64, 0, 0, 0, 0, 0],
        )
        .step(pid, "setting the personality")?;
    // A process that shares its fs state gets the umask from the first
    // process of its group, which sets it.
    if process.fs_shared_with.is_none() {
        remote
            .syscall(
                "umask",
                libc::SYS_umask,
                [process.umask as u64, 0, 0, 0, 0, 0],
            )
            .step(pid, "setting the umask")?;
    }
    remote
        .syscall(
            "prctl(PR_SET_TIMERSLACK)",
            libc::SYS_prctl,
            [PR_SET_TIMERSLACK, process.timer_slack_ns, 0, 0, 0, 0],
        )
        .step(pid, "setting the timer slack")?;
    remote
        .syscall(
            "prctl(PR_SET_PDEATHSIG)",
            libc::SYS_prctl,
            [PR_SET_PDEATHSIG, 0, 0, 0, 0, 0],
        )
        .step(pid, "clearing the parent-death signal")?;

    for limit in &process.rlimits {
        if current_rlimit(pid, limit.resource) == Some((limit.soft, limit.hard)) {
            continue;
        }
        put(remote, scratch, &words(&[limit.soft, limit.hard]))?;
        let ret = remote
            .syscall_raw(
                "prlimit64",
                libc::SYS_prlimit64,
                [0, limit.resource as u64, scratch, 0, 0, 0],
            )
            .step(pid, "setting resource limits")?;
        if ret < 0 {
            // Raising a hard limit needs CAP_SYS_RESOURCE; keep the current
            // hard limit and the soft limit within it.
            warn!(
                pid,
                resource = limit.resource,
                soft = limit.soft,
                hard = limit.hard,
                errno = -ret,
                "could not restore a resource limit; keeping the current one"
            );
        }
    }

    for (which, timer) in process.itimers.iter().enumerate() {
        if timer.value_us == 0 {
            continue;
        }
        let value = words(&[
            timer.interval_us / 1_000_000,
            timer.interval_us % 1_000_000,
            timer.value_us / 1_000_000,
            timer.value_us % 1_000_000,
        ]);
        put(remote, scratch, &value)?;
        remote
            .syscall(
                "setitimer",
                libc::SYS_setitimer,
                [which as u64, scratch, 0, 0, 0, 0],
            )
            .step(pid, "setting interval timers")?;
    }
    Ok(())
}

/// Restores the per-thread state that system calls set: name, robust
/// list, clear_child_tid, sigaltstack, rseq. `remote` runs in the thread.
pub fn set_thread_state(
    remote: &mut RemoteProcess,
    scratch: u64,
    thread: &Thread,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let mut name = thread.comm.as_bytes().to_vec();
    name.truncate(15);
    name.push(0);
    put(remote, scratch, &name)?;
    remote
        .syscall(
            "prctl(PR_SET_NAME)",
            libc::SYS_prctl,
            [PR_SET_NAME, scratch, 0, 0, 0, 0],
        )
        .step(pid, "setting the thread name")?;
    remote
        .syscall(
            "set_robust_list",
            libc::SYS_set_robust_list,
            [
                thread.robust_list.head,
                thread.robust_list.len.max(24),
                0,
                0,
                0,
                0,
            ],
        )
        .step(pid, "setting the robust futex list")?;
    remote
        .syscall(
            "set_tid_address",
            libc::SYS_set_tid_address,
            [thread.clear_child_tid, 0, 0, 0, 0, 0],
        )
        .step(pid, "setting clear_child_tid")?;

    let stack = &thread.sigaltstack;
    let flags = (stack.flags & !SS_ONSTACK) as u32 as u64;
    put(remote, scratch, &words(&[stack.sp, flags, stack.size]))?;
    remote
        .syscall(
            "sigaltstack",
            libc::SYS_sigaltstack,
            [scratch, 0, 0, 0, 0, 0],
        )
        .step(pid, "setting the alternate signal stack")?;

    if let Some(rseq) = &thread.rseq {
        remote
            .syscall(
                "rseq",
                libc::SYS_rseq,
                [
                    rseq.address,
                    rseq.size as u64,
                    0,
                    rseq.signature as u64,
                    0,
                    0,
                ],
            )
            .step(pid, "registering rseq")?;
    }
    Ok(())
}

/// Installs every signal disposition.
pub fn set_sigactions(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    // Ignoring a signal discards its pending instances, such as the
    // SIGCHLD that a restored zombie child sent while it was made to exit.
    // Those are not the process's; its saved pending signals are queued
    // later.
    let status = proc::status(pid).step(pid, "reading the new process's status")?;
    let pending = status.sigpnd | status.shdpnd;
    let changed = status.sigign | status.sigcgt;
    let bit = |signo: u32| 1u64 << (signo - 1);

    put(remote, scratch, &words(&[1, 0, 0, 0]))?;
    for action in process
        .sigactions
        .iter()
        .filter(|a| pending & bit(a.signo) != 0)
    {
        remote
            .syscall(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [action.signo as u64, scratch, 0, 8, 0, 0],
            )
            .step(pid, format!("discarding pending signal {}", action.signo))?;
    }
    for action in &process.sigactions {
        // A signal that has the default action both here and in the image
        // (all fields zero, as a process never changed it) needs no call.
        let default_here = changed & bit(action.signo) == 0 && pending & bit(action.signo) == 0;
        let default_saved =
            action.handler == 0 && action.flags == 0 && action.restorer == 0 && action.mask == 0;
        if default_here && default_saved {
            continue;
        }
        put(
            remote,
            scratch,
            &words(&[action.handler, action.flags, action.restorer, action.mask]),
        )?;
        remote
            .syscall(
                "rt_sigaction",
                libc::SYS_rt_sigaction,
                [action.signo as u64, scratch, 0, 8, 0, 0],
            )
            .step(
                pid,
                format!("setting the disposition of signal {}", action.signo),
            )?;
    }
    Ok(())
}

/// Queues the saved pending signals. Every signal is blocked while this
/// runs; the caller installs the saved mask afterwards. The calls run
/// inside the process, so they name it and its threads by saved PIDs.
pub fn queue_signals(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    ptrace::set_sigmask(pid, u64::MAX).step(pid, "blocking signals")?;
    let signo = |info: &[u8]| -> u64 {
        i32::from_ne_bytes(info[0..4].try_into().expect("siginfo is 128 bytes")) as u64
    };
    for info in &process.shared_pending {
        put(remote, scratch, &info.0)?;
        remote
            .syscall(
                "rt_sigqueueinfo",
                libc::SYS_rt_sigqueueinfo,
                [process.pid as u64, signo(&info.0), scratch, 0, 0, 0],
            )
            .step(pid, "queueing a pending signal")?;
    }
    for thread in &process.threads {
        for info in &thread.pending {
            put(remote, scratch, &info.0)?;
            remote
                .syscall(
                    "rt_tgsigqueueinfo",
                    libc::SYS_rt_tgsigqueueinfo,
                    [
                        process.pid as u64,
                        thread.tid as u64,
                        signo(&info.0),
                        scratch,
                        0,
                        0,
                    ],
                )
                .step(pid, "queueing a pending signal")?;
        }
    }
    Ok(())
}

/// Sets groups, GIDs, UIDs, capabilities, securebits and no_new_privs of
/// the thread that `remote` runs in (credentials are per thread in Linux).
/// Runs last among the system calls, because it can drop the privileges
/// the other steps need.
pub fn set_credentials(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    let creds = &process.credentials;
    let status = proc::status(pid).step(pid, "reading the new thread's credentials")?;
    let current = stasis_image::Credentials {
        uids: [status.ruid, status.euid, status.suid, status.fuid],
        gids: [status.rgid, status.egid, status.sgid, status.fgid],
        groups: status.groups.clone(),
        cap_inheritable: status.capinh,
        cap_permitted: status.capprm,
        cap_effective: status.capeff,
        cap_bounding: status.capbnd.unwrap_or(u64::MAX),
        cap_ambient: status.capamb.unwrap_or(0),
        securebits: 0,
        no_new_privs: status.nonewprivs.unwrap_or(0) != 0,
    };
    // The new process runs as stasis does (root, all capabilities), which
    // is also what most dumped processes had; then there is nothing to do.
    // Securebits are not in /proc, and a new process has none set.
    if *creds == current {
        return Ok(());
    }

    for cap in 0..=CAP_LAST {
        if creds.cap_bounding & (1 << cap) == 0 && current.cap_bounding & (1 << cap) != 0 {
            remote
                .syscall(
                    "prctl(PR_CAPBSET_DROP)",
                    libc::SYS_prctl,
                    [PR_CAPBSET_DROP, cap as u64, 0, 0, 0, 0],
                )
                .step(
                    pid,
                    format!("dropping capability {cap} from the bounding set"),
                )?;
        }
    }
    let secure = creds.securebits & !SECBIT_KEEP_CAPS;
    if secure != 0 {
        remote
            .syscall(
                "prctl(PR_SET_SECUREBITS)",
                libc::SYS_prctl,
                [PR_SET_SECUREBITS, secure as u64, 0, 0, 0, 0],
            )
            .step(pid, "setting securebits")?;
    }

    let groups: Vec<u8> = creds.groups.iter().flat_map(|g| g.to_ne_bytes()).collect();
    put(remote, scratch, &groups)?;
    remote
        .syscall(
            "setgroups",
            libc::SYS_setgroups,
            [creds.groups.len() as u64, scratch, 0, 0, 0, 0],
        )
        .step(pid, "setting supplementary groups")?;
    let [rgid, egid, sgid, fsgid] = creds.gids;
    remote
        .syscall(
            "setresgid",
            libc::SYS_setresgid,
            [rgid as u64, egid as u64, sgid as u64, 0, 0, 0],
        )
        .step(pid, "setting GIDs")?;
    remote
        .syscall(
            "setfsgid",
            libc::SYS_setfsgid,
            [fsgid as u64, 0, 0, 0, 0, 0],
        )
        .step(pid, "setting the filesystem GID")?;

    remote
        .syscall(
            "prctl(PR_SET_KEEPCAPS)",
            libc::SYS_prctl,
            [PR_SET_KEEPCAPS, 1, 0, 0, 0, 0],
        )
        .step(pid, "keeping capabilities across setresuid")?;
    let [ruid, euid, suid, fsuid] = creds.uids;
    remote
        .syscall(
            "setresuid",
            libc::SYS_setresuid,
            [ruid as u64, euid as u64, suid as u64, 0, 0, 0],
        )
        .step(pid, "setting UIDs")?;
    remote
        .syscall(
            "setfsuid",
            libc::SYS_setfsuid,
            [fsuid as u64, 0, 0, 0, 0, 0],
        )
        .step(pid, "setting the filesystem UID")?;

    // struct __user_cap_header_struct, then two __user_cap_data_struct
    // (effective, permitted, inheritable as u32) for the low and high words.
    let mut caps = Vec::new();
    caps.extend_from_slice(&LINUX_CAPABILITY_VERSION_3.to_ne_bytes());
    caps.extend_from_slice(&0i32.to_ne_bytes());
    for shift in [0, 32] {
        for set in [
            creds.cap_effective,
            creds.cap_permitted,
            creds.cap_inheritable,
        ] {
            caps.extend_from_slice(&((set >> shift) as u32).to_ne_bytes());
        }
    }
    put(remote, scratch, &caps)?;
    remote
        .syscall(
            "capset",
            libc::SYS_capset,
            [scratch, scratch + 8, 0, 0, 0, 0],
        )
        .step(pid, "setting capabilities")?;
    let keep_caps = (creds.securebits & SECBIT_KEEP_CAPS != 0) as u64;
    remote
        .syscall(
            "prctl(PR_SET_KEEPCAPS)",
            libc::SYS_prctl,
            [PR_SET_KEEPCAPS, keep_caps, 0, 0, 0, 0],
        )
        .step(pid, "restoring the keep-capabilities flag")?;

    for cap in 0..=CAP_LAST {
        if creds.cap_ambient & (1 << cap) != 0 {
            remote
                .syscall(
                    "prctl(PR_CAP_AMBIENT)",
                    libc::SYS_prctl,
                    [PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap as u64, 0, 0, 0],
                )
                .step(pid, format!("raising ambient capability {cap}"))?;
        }
    }
    if creds.no_new_privs {
        remote
            .syscall(
                "prctl(PR_SET_NO_NEW_PRIVS)",
                libc::SYS_prctl,
                [PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0],
            )
            .step(pid, "setting no_new_privs")?;
    }
    Ok(())
}

/// prctl that makes timer_create take the ID to allocate from its timer_id
/// argument (Linux 6.16).
const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;

/// Creates the POSIX timers with their saved IDs and arms them. Runs after
/// the threads exist, since a timer may signal one of them.
pub fn set_posix_timers(
    remote: &mut RemoteProcess,
    scratch: u64,
    process: &Process,
) -> Result<(), RestoreError> {
    if process.posix_timers.is_empty() {
        return Ok(());
    }
    let pid = remote.pid();
    remote
        .syscall(
            "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
            libc::SYS_prctl,
            [PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0, 0],
        )
        .step(
            pid,
            "asking for POSIX timer IDs (needs Linux 6.16 or later)",
        )?;
    for timer in &process.posix_timers {
        // struct sigevent: sigev_value (8 bytes), sigev_signo, sigev_notify,
        // then the thread ID for SIGEV_THREAD_ID; 64 bytes in all.
        let mut event = vec![0u8; 64];
        event[0..8].copy_from_slice(&timer.value.to_ne_bytes());
        event[8..12].copy_from_slice(&timer.signal.to_ne_bytes());
        event[12..16].copy_from_slice(&timer.notify.to_ne_bytes());
        event[16..20].copy_from_slice(&timer.thread.to_ne_bytes());
        event.extend_from_slice(&(timer.id as i64).to_ne_bytes());
        put(remote, scratch, &event)?;
        remote
            .syscall(
                "timer_create",
                libc::SYS_timer_create,
                [timer.clock as u64, scratch, scratch + 64, 0, 0, 0],
            )
            .step(pid, format!("creating POSIX timer {}", timer.id))?;

        // An expired periodic timer shows no time left; arm it one interval
        // ahead so it keeps firing.
        let value_ns = if timer.value_ns == 0 {
            timer.interval_ns
        } else {
            timer.value_ns
        };
        let spec = words(&[
            timer.interval_ns / 1_000_000_000,
            timer.interval_ns % 1_000_000_000,
            value_ns / 1_000_000_000,
            value_ns % 1_000_000_000,
        ]);
        put(remote, scratch, &spec)?;
        remote
            .syscall(
                "timer_settime",
                libc::SYS_timer_settime,
                [timer.id as u64, 0, scratch, 0, 0, 0],
            )
            .step(pid, format!("arming POSIX timer {}", timer.id))?;
    }
    remote
        .syscall(
            "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
            libc::SYS_prctl,
            [PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0, 0],
        )
        .step(pid, "ending POSIX timer ID requests")?;
    Ok(())
}
