//! Creating eventfd, timerfd, signalfd and epoll files with their saved
//! state. They are created in stasis and inherited like every other file;
//! an epoll instance gets its registrations later, inside the process,
//! because the kernel keys them by the process's own fd numbers.

use std::os::fd::{FromRawFd, OwnedFd};

use stasis_image::OpenFile;
use stasis_linux::mem;
use stasis_linux::remote::RemoteProcess;

use crate::error::{RestoreError, RestoreStep};

/// TFD_IOC_SET_TICKS: _IOW('T', 0, u64), available with CONFIG_CHECKPOINT_RESTORE.
const TFD_IOC_SET_TICKS: libc::c_ulong = 0x4008_5400;
const EPOLL_CTL_ADD: u64 = 1;

fn last_error(what: &str) -> RestoreError {
    RestoreError::Open {
        path: what.to_owned(),
        source: std::io::Error::last_os_error(),
    }
}

fn owned(fd: libc::c_int, what: &str) -> Result<OwnedFd, RestoreError> {
    if fd < 0 {
        return Err(last_error(what));
    }
    // SAFETY: `fd` was just returned by a successful system call and has no
    // other owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Creates the file that `file` records.
pub fn create(file: &OpenFile) -> Result<OwnedFd, RestoreError> {
    let nonblock = |flags: u32| flags as i32 & libc::O_NONBLOCK;
    match *file {
        OpenFile::EventFd {
            flags,
            count,
            semaphore,
        } => {
            let mut efd_flags = libc::EFD_CLOEXEC | nonblock(flags);
            if semaphore {
                efd_flags |= libc::EFD_SEMAPHORE;
            }
            // SAFETY: eventfd takes integers only.
            let fd = owned(unsafe { libc::eventfd(0, efd_flags) }, "a new eventfd")?;
            if count > 0 {
                let bytes = count.to_ne_bytes();
                // SAFETY: writes 8 bytes from a live array to our eventfd.
                let written = unsafe {
                    libc::write(
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        bytes.as_ptr().cast(),
                        8,
                    )
                };
                if written != 8 {
                    return Err(last_error("the counter of a new eventfd"));
                }
            }
            Ok(fd)
        }
        OpenFile::TimerFd {
            flags,
            clock,
            ticks,
            value_ns,
            interval_ns,
        } => {
            // SAFETY: timerfd_create takes integers only.
            let fd = owned(
                unsafe { libc::timerfd_create(clock, libc::TFD_CLOEXEC | nonblock(flags)) },
                "a new timerfd",
            )?;
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let spec = |ns: u64| libc::timespec {
                tv_sec: (ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (ns % 1_000_000_000) as libc::c_long,
            };
            // A periodic timer that expired and was not read yet shows no
            // time left; the kernel re-arms it only on read after its own
            // expiry. Arming it one interval ahead keeps it periodic, and the
            // unread expirations are put back with TFD_IOC_SET_TICKS.
            let value_ns = if value_ns == 0 { interval_ns } else { value_ns };
            let setting = libc::itimerspec {
                it_interval: spec(interval_ns),
                it_value: spec(value_ns),
            };
            // SAFETY: `setting` is a valid itimerspec; the old value is not requested.
            if unsafe { libc::timerfd_settime(raw, 0, &setting, std::ptr::null_mut()) } < 0 {
                return Err(last_error("the time of a new timerfd"));
            }
            if ticks > 0 {
                // SAFETY: the ioctl reads one u64 from the valid pointer.
                if unsafe { libc::ioctl(raw, TFD_IOC_SET_TICKS, &ticks) } < 0 {
                    return Err(last_error("the expiration count of a new timerfd"));
                }
            }
            Ok(fd)
        }
        OpenFile::SignalFd { flags, mask } => {
            // SAFETY: sigset_t is at least 8 bytes on Linux, and the kernel
            // reads only the 8 that the size argument gives.
            let fd = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                std::ptr::copy_nonoverlapping(
                    mask.to_ne_bytes().as_ptr(),
                    (&mut set as *mut libc::sigset_t).cast::<u8>(),
                    8,
                );
                libc::syscall(
                    libc::SYS_signalfd4,
                    -1,
                    &set as *const libc::sigset_t,
                    8usize,
                    libc::SFD_CLOEXEC | nonblock(flags),
                ) as libc::c_int
            };
            owned(fd, "a new signalfd")
        }
        OpenFile::Inotify { flags, ref watches } => create_inotify(nonblock(flags), watches),
        OpenFile::Epoll { .. } => {
            // SAFETY: epoll_create1 takes integers only.
            owned(
                unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) },
                "a new epoll instance",
            )
        }
        _ => Err(RestoreError::Unsupported {
            reason: "internal error: not an anonymous-inode file".into(),
        }),
    }
}

/// Registers the saved fds in each epoll instance of the process that
/// `remote` runs in, by the process's own fd numbers. A registration that
/// already exists (an epoll instance shared with a process restored
/// earlier) is left as it is.
pub fn register_epolls(
    remote: &mut RemoteProcess,
    scratch: u64,
    epolls: &[(i32, Vec<stasis_image::EpollTarget>)],
) -> Result<(), RestoreError> {
    let pid = remote.pid();
    for (epfd, targets) in epolls {
        for target in targets {
            // struct epoll_event is packed on x86-64: u32 events, u64 data.
            let mut event = target.events.to_ne_bytes().to_vec();
            event.extend_from_slice(&target.data.to_ne_bytes());
            mem::write(pid, scratch, &event).step(pid, "writing an epoll event")?;
            let ret = remote
                .syscall_raw(
                    "epoll_ctl",
                    libc::SYS_epoll_ctl,
                    [*epfd as u64, EPOLL_CTL_ADD, target.fd as u64, scratch, 0, 0],
                )
                .step(
                    pid,
                    format!("registering fd {} in epoll fd {epfd}", target.fd),
                )?;
            if ret < 0 && ret != -(libc::EEXIST as i64) {
                return Err(RestoreError::Linux {
                    pid,
                    step: format!("registering fd {} in epoll fd {epfd}", target.fd),
                    source: stasis_linux::LinuxError::Remote {
                        name: "epoll_ctl",
                        pid,
                        errno: nix::errno::Errno::from_raw(-ret as i32),
                    },
                });
            }
        }
    }
    Ok(())
}

/// Creates an inotify instance whose watches have their saved watch
/// descriptors. The kernel hands out descriptors in increasing order, so
/// a gap is skipped by adding and removing a watch on a scratch directory.
fn create_inotify(
    nonblock: i32,
    watches: &[stasis_image::InotifyWatch],
) -> Result<OwnedFd, RestoreError> {
    // SAFETY: inotify_init1 takes integers only.
    let fd = owned(
        unsafe { libc::inotify_init1(libc::IN_CLOEXEC | nonblock) },
        "a new inotify instance",
    )?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let scratch = std::env::temp_dir().join(format!("stasis-inotify-{}", std::process::id()));
    let _ = std::fs::create_dir(&scratch);
    let result = add_watches(raw, watches, &scratch);
    let _ = std::fs::remove_dir(&scratch);
    result?;
    discard_events(raw);
    Ok(fd)
}

/// Reads and drops the events queued while the watches were made: the
/// IN_IGNORED events of the placeholder watches, which the process must
/// not see.
fn discard_events(fd: i32) {
    // SAFETY: F_GETFL and F_SETFL on our own fd; read into a live buffer.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let mut buffer = [0u8; 4096];
        while libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) > 0 {}
        libc::fcntl(fd, libc::F_SETFL, flags);
    }
}

fn add_watches(
    fd: i32,
    watches: &[stasis_image::InotifyWatch],
    scratch: &std::path::Path,
) -> Result<(), RestoreError> {
    use std::os::unix::ffi::OsStrExt;

    let c_path = |path: &std::path::Path| {
        std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
    };
    let scratch_path = c_path(scratch);
    let mut next = 1;
    for watch in watches {
        while next < watch.wd {
            // SAFETY: a valid C string path and integer arguments.
            let filler =
                unsafe { libc::inotify_add_watch(fd, scratch_path.as_ptr(), libc::IN_ATTRIB) };
            if filler < 0 {
                return Err(last_error("a placeholder inotify watch"));
            }
            // SAFETY: removes the watch just added.
            unsafe { libc::inotify_rm_watch(fd, filler) };
            next = filler + 1;
        }
        let path = c_path(std::path::Path::new(&watch.path));
        // SAFETY: a valid C string path and integer arguments.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), watch.mask) };
        if wd < 0 {
            return Err(last_error(&format!("the inotify watch on {}", watch.path)));
        }
        if wd != watch.wd {
            return Err(RestoreError::Unsupported {
                reason: format!(
                    "the inotify watch on {} got descriptor {wd} instead of {}",
                    watch.path, watch.wd
                ),
            });
        }
        next = wd + 1;
    }
    Ok(())
}
