//! Saving fds of anonymous-inode kinds: eventfd, timerfd, signalfd,
//! epoll and inotify. Their state is read from /proc/PID/fdinfo/FD, which the kernel
//! fills per kind (fs/eventfd.c, fs/timerfd.c, fs/signalfd.c,
//! fs/eventpoll.c).

use stasis_image::{EpollTarget, InotifyWatch, OpenFile};
use stasis_linux::proc;

use crate::error::{DumpError, DumpStep};

/// Returns the record of an anonymous-inode fd, None if `link` names a
/// kind this module does not save.
pub fn describe(pid: i32, fd: i32, link: &str, flags: u32) -> Result<Option<OpenFile>, DumpError> {
    let kind = match link {
        "anon_inode:[eventfd]" => Kind::EventFd,
        "anon_inode:[timerfd]" => Kind::TimerFd,
        "anon_inode:[signalfd]" => Kind::SignalFd,
        "anon_inode:[eventpoll]" => Kind::Epoll,
        "anon_inode:inotify" => Kind::Inotify,
        _ => return Ok(None),
    };
    let text = proc::fdinfo_text(pid, fd).step(pid, "reading /proc/PID/fdinfo")?;
    let invalid = |field: &str| DumpError::Unsupported {
        pid,
        reason: format!("fd {fd} ({link}): /proc/{pid}/fdinfo/{fd} has no valid {field} field"),
    };
    let field = |name: &str| -> Option<&str> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
    };

    let file = match kind {
        Kind::EventFd => OpenFile::EventFd {
            flags,
            count: field("eventfd-count:")
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .ok_or_else(|| invalid("eventfd-count"))?,
            semaphore: field("eventfd-semaphore:") == Some("1"),
        },
        Kind::TimerFd => OpenFile::TimerFd {
            flags,
            clock: field("clockid:")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid("clockid"))?,
            ticks: field("ticks:")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| invalid("ticks"))?,
            value_ns: field("it_value:")
                .and_then(parse_time)
                .ok_or_else(|| invalid("it_value"))?,
            interval_ns: field("it_interval:")
                .and_then(parse_time)
                .ok_or_else(|| invalid("it_interval"))?,
        },
        Kind::SignalFd => OpenFile::SignalFd {
            flags,
            mask: field("sigmask:")
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .ok_or_else(|| invalid("sigmask"))?,
        },
        Kind::Epoll => OpenFile::Epoll {
            flags,
            targets: epoll_targets(pid, fd, &text)?,
        },
        Kind::Inotify => OpenFile::Inotify {
            flags,
            watches: inotify_watches(pid, fd, &text)?,
        },
    };
    Ok(Some(file))
}

enum Kind {
    EventFd,
    TimerFd,
    SignalFd,
    Epoll,
    Inotify,
}

/// Parses "(SECONDS, NANOSECONDS)" into nanoseconds.
fn parse_time(text: &str) -> Option<u64> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (seconds, nanos) = inner.split_once(',')?;
    let seconds: u64 = seconds.trim().parse().ok()?;
    let nanos: u64 = nanos.trim().parse().ok()?;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Parses the "tfd: N events: HEX data: HEX pos:P ino:HEX sdev:HEX" lines
/// and checks that each registered fd is still open on the same file, since
/// only such a registration can be made again by fd number.
fn epoll_targets(pid: i32, epfd: i32, text: &str) -> Result<Vec<EpollTarget>, DumpError> {
    let mut targets = Vec::new();
    for line in text.lines().filter(|line| line.starts_with("tfd:")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let value = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .copied()
        };
        let invalid = || DumpError::Unsupported {
            pid,
            reason: format!("epoll fd {epfd}: cannot parse the registration {line:?}"),
        };
        let fd: i32 = value("tfd:")
            .and_then(|v| v.parse().ok())
            .ok_or_else(invalid)?;
        let events = value("events:")
            .and_then(|v| u32::from_str_radix(v, 16).ok())
            .ok_or_else(invalid)?;
        let data = value("data:")
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(invalid)?;
        let inode = words
            .iter()
            .find_map(|w| w.strip_prefix("ino:"))
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .ok_or_else(invalid)?;
        let current = std::fs::metadata(format!("/proc/{pid}/fd/{fd}"))
            .map(|meta| std::os::unix::fs::MetadataExt::ino(&meta));
        if current.ok() != Some(inode) {
            return Err(DumpError::Unsupported {
                pid,
                reason: format!(
                    "epoll fd {epfd} watches a file that is no longer open as fd {fd}, which stasis cannot save yet"
                ),
            });
        }
        targets.push(EpollTarget { fd, events, data });
    }
    Ok(targets)
}

/// Parses the "inotify wd:HEX ino:HEX sdev:HEX mask:HEX ... f_handle:HEX"
/// lines and finds each watched file's path from its file handle, opened
/// with open_by_handle_at on the mount with device number `sdev`.
fn inotify_watches(pid: i32, fd: i32, text: &str) -> Result<Vec<InotifyWatch>, DumpError> {
    let mut watches = Vec::new();
    for line in text.lines().filter(|line| line.starts_with("inotify ")) {
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
        };
        let invalid = || {
            DumpError::Unsupported {
            pid,
            reason: format!("inotify fd {fd}: cannot parse the watch {line:?} (a kernel without CONFIG_EXPORTFS gives no file handle)"),
        }
        };
        let hex = |key: &str| field(key).and_then(|v| u64::from_str_radix(v, 16).ok());
        let wd = hex("wd:").ok_or_else(invalid)? as i32;
        let mask = hex("mask:").ok_or_else(invalid)? as u32;
        let sdev = hex("sdev:").ok_or_else(invalid)?;
        let handle_type = hex("fhandle-type:").ok_or_else(invalid)? as i32;
        let handle = field("f_handle:")
            .and_then(|v| {
                (0..v.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok())
                    .collect::<Option<Vec<u8>>>()
            })
            .ok_or_else(invalid)?;
        let path = path_of_handle(pid, sdev, handle_type, &handle).ok_or_else(|| DumpError::Unsupported {
            pid,
            reason: format!("inotify fd {fd}: the file of watch {wd} cannot be found by its handle (deleted, or on an unmounted file system)"),
        })?;
        watches.push(InotifyWatch { wd, path, mask });
    }
    watches.sort_by_key(|watch| watch.wd);
    Ok(watches)
}

/// Opens a file by its handle on the mount of device `sdev` (the kernel's
/// MAJOR << 20 | MINOR encoding) and returns its path.
fn path_of_handle(pid: i32, sdev: u64, handle_type: i32, handle: &[u8]) -> Option<String> {
    let device = format!("{}:{}", sdev >> 20, sdev & 0xfffff);
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let mount_point = mountinfo.lines().find_map(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        (columns.get(2) == Some(&device.as_str()) && columns.get(3) == Some(&"/"))
            .then(|| columns.get(4).map(|p| p.to_string()))?
    })?;
    let mount = std::fs::File::open(&mount_point).ok()?;

    // struct file_handle: u32 handle_bytes, i32 handle_type, then the bytes.
    let mut buffer = Vec::with_capacity(8 + handle.len());
    buffer.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
    buffer.extend_from_slice(&handle_type.to_ne_bytes());
    buffer.extend_from_slice(handle);
    // SAFETY: `buffer` contains a complete struct file_handle; the returned fd
    // is owned below.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            std::os::fd::AsRawFd::as_raw_fd(&mount),
            buffer.as_ptr(),
            libc::O_PATH,
        ) as i32
    };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let file = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&file)
    ))
    .ok()?;
    Some(path.to_string_lossy().into_owned())
}
