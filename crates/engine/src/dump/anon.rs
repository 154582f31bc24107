//! Saving fds of anonymous-inode kinds: eventfd, timerfd, signalfd and
//! epoll. Their state is read from /proc/PID/fdinfo/FD, which the kernel
//! fills per kind (fs/eventfd.c, fs/timerfd.c, fs/signalfd.c,
//! fs/eventpoll.c).

use stasis_image::{EpollTarget, OpenFile};
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
    };
    Ok(Some(file))
}

enum Kind {
    EventFd,
    TimerFd,
    SignalFd,
    Epoll,
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
