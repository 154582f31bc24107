//! The fds view: each open file descriptor with its target and flags.

use std::collections::BTreeMap;

use serde::Serialize;
use stasis_image::{Fd, OpenFile};

use super::{absent_line, process_heading, process_verified, selected, zombie_status};
use crate::load::{LoadedImage, ProcessRecords};
use crate::names::{clock_name, dev_decimal, epoll_events, fd_kind, open_flags, signal_set};
use crate::text::{clean, Align, Cell, Paint, Style, Table};

#[derive(Debug, Serialize)]
pub struct Fds {
    pub processes: Vec<ProcessFds>,
}

#[derive(Debug, Serialize)]
pub struct ProcessFds {
    pub pid: i32,
    pub verified: bool,
    /// False when the fd table is unreadable (`fds` is then empty).
    pub readable: bool,
    /// PID of the process whose fd table this process shares, from the
    /// process record. `fds` is then empty, and that process lists them.
    pub table_shared_with: Option<i32>,
    pub fds: Vec<FdEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FdEntry {
    pub fd: i32,
    /// Kind of the open file, as [`crate::names::fd_kind`] names
    /// it: `regular`, `pipe`, `socket` …
    pub kind: &'static str,
    /// File path; `pipe:[INODE]` for a pipe, `anon_inode:[eventfd]` and the
    /// like for the event kinds, family, type and address for a socket.
    pub path: String,
    /// Number of the open file description, from 1; 0 in images written
    /// before descriptions were numbered. Fds with the same number share
    /// one description (position, flags).
    pub description: u32,
    /// The other fds, in this or another process, that share this fd's
    /// open file description.
    pub shared_with: Vec<FdRef>,
    /// File status flags (O_*) from fdinfo, as a number. Close-on-exec is
    /// an fd flag and is in `cloexec` instead.
    pub flags: u32,
    /// The same flags decoded: `O_RDWR|O_APPEND`.
    pub flags_decoded: String,
    /// File position; null for devices and pipes, which have none saved.
    pub position: Option<u64>,
    pub cloexec: bool,
    /// True for a regular file that was deleted while open.
    pub deleted: bool,
    /// Image file holding a deleted file's contents or the bytes buffered
    /// in a pipe.
    pub content_file: Option<String>,
    /// Device number `major:minor` of a device, null otherwise.
    pub rdev: Option<String>,
    /// For a pipe: true for the write end, false for the read end; null
    /// for other kinds.
    pub write_end: Option<bool>,
    /// For a pipe: its capacity in bytes; null for other kinds.
    pub pipe_capacity: Option<u64>,
    /// State of an eventfd, timerfd, signalfd or epoll fd in words:
    /// `count 3`, `CLOCK_MONOTONIC, expires in 1.000 s, every 1.000 s`,
    /// `signals SIGUSR1|SIGTERM`, `watches fd 4 (EPOLLIN)`. Null for
    /// other kinds.
    pub detail: Option<String>,
    /// The open file as the fd table record has it (docs/IMAGE-FORMAT.md),
    /// with every field of its kind.
    pub file: serde_json::Value,
}

/// One fd of one process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FdRef {
    pub pid: i32,
    pub fd: i32,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Fds {
    let mut fds = Fds {
        processes: selected(image, pid).into_iter().map(process_fds).collect(),
    };
    link_shared(image, &mut fds);
    fds
}

/// Fills `shared_with` of every entry from the fd tables of all processes
/// of the image.
fn link_shared(image: &LoadedImage, fds: &mut Fds) {
    let mut holders: BTreeMap<u32, Vec<FdRef>> = BTreeMap::new();
    for records in &image.processes {
        let Some(table) = &records.fds else {
            continue;
        };
        for fd in table.record.fds.iter().filter(|fd| fd.description != 0) {
            holders.entry(fd.description).or_default().push(FdRef {
                pid: records.pid,
                fd: fd.fd,
            });
        }
    }
    for process in &mut fds.processes {
        let pid = process.pid;
        for entry in &mut process.fds {
            let Some(list) = holders.get(&entry.description) else {
                continue;
            };
            entry.shared_with = list
                .iter()
                .filter(|other| !(other.pid == pid && other.fd == entry.fd))
                .cloned()
                .collect();
        }
    }
}

fn table_shared_with(records: &ProcessRecords) -> Option<i32> {
    records.process.as_ref()?.record.files_shared_with
}

fn process_fds(records: &ProcessRecords) -> ProcessFds {
    match &records.fds {
        Some(table) => ProcessFds {
            pid: records.pid,
            verified: table.verified,
            readable: true,
            table_shared_with: table_shared_with(records),
            fds: table.record.fds.iter().map(entry).collect(),
        },
        None => ProcessFds {
            pid: records.pid,
            verified: zombie_status(records).is_some() && process_verified(records),
            readable: false,
            table_shared_with: table_shared_with(records),
            fds: Vec::new(),
        },
    }
}

/// Describes one descriptor.
pub fn entry(fd: &Fd) -> FdEntry {
    let mut entry = FdEntry {
        fd: fd.fd,
        kind: fd_kind(&fd.file),
        path: String::new(),
        description: fd.description,
        shared_with: Vec::new(),
        flags: 0,
        flags_decoded: String::new(),
        position: None,
        cloexec: fd.cloexec,
        deleted: false,
        content_file: None,
        rdev: None,
        write_end: None,
        pipe_capacity: None,
        detail: None,
        file: serde_json::to_value(&fd.file).unwrap_or_default(),
    };
    match &fd.file {
        OpenFile::Regular {
            identity,
            flags,
            position,
            deleted,
            content,
        } => {
            entry.path = identity.path.clone();
            entry.flags = *flags;
            entry.position = Some(*position);
            entry.deleted = *deleted;
            entry.content_file = content.clone();
        }
        OpenFile::Directory {
            identity,
            flags,
            position,
        } => {
            entry.path = identity.path.clone();
            entry.flags = *flags;
            entry.position = Some(*position);
        }
        OpenFile::CharDevice { path, rdev, flags } | OpenFile::Terminal { path, rdev, flags } => {
            entry.path = path.clone();
            entry.flags = *flags;
            entry.rdev = Some(dev_decimal(*rdev));
        }
        OpenFile::Pipe {
            inode,
            write_end,
            flags,
            capacity,
            data,
        } => {
            entry.path = format!("pipe:[{inode}]");
            entry.flags = *flags;
            entry.content_file = data.clone();
            entry.write_end = Some(*write_end);
            entry.pipe_capacity = Some(*capacity);
        }
        OpenFile::EventFd {
            flags,
            count,
            semaphore,
        } => {
            entry.path = "anon_inode:[eventfd]".to_string();
            entry.flags = *flags;
            let mode = if *semaphore { ", semaphore" } else { "" };
            entry.detail = Some(format!("count {count}{mode}"));
        }
        OpenFile::TimerFd {
            flags,
            clock,
            ticks,
            value_ns,
            interval_ns,
        } => {
            entry.path = "anon_inode:[timerfd]".to_string();
            entry.flags = *flags;
            entry.detail = Some(timer_detail(*clock, *ticks, *value_ns, *interval_ns));
        }
        OpenFile::SignalFd { flags, mask } => {
            entry.path = "anon_inode:[signalfd]".to_string();
            entry.flags = *flags;
            entry.detail = Some(format!("signals {}", signal_set(*mask)));
        }
        OpenFile::Epoll { flags, targets } => {
            entry.path = "anon_inode:[eventpoll]".to_string();
            entry.flags = *flags;
            entry.detail = Some(epoll_detail(targets));
        }
        OpenFile::Inotify { flags, watches } => {
            entry.path = "anon_inode:inotify".to_string();
            entry.flags = *flags;
            let described: Vec<String> = watches
                .iter()
                .map(|watch| format!("wd {} on {} (mask {:#x})", watch.wd, watch.path, watch.mask))
                .collect();
            entry.detail = Some(described.join(", "));
        }
        OpenFile::Socket(record) => {
            entry.path = socket_address(record);
            entry.flags = record.flags;
            entry.detail = Some(socket_detail(record));
        }
    }
    entry.flags_decoded = open_flags(entry.flags);
    entry
}

/// Describes a socket's state in words: listening (with its backlog and
/// the connections waiting to be accepted), connected (with its peer and
/// the file of its waiting data) or bound.
fn socket_detail(record: &stasis_image::SocketRecord) -> String {
    if let Some(backlog) = record.backlog {
        let mut detail = format!("listening, backlog {backlog}");
        if !record.pending.is_empty() {
            detail.push_str(&format!(
                ", {} connections waiting to be accepted",
                record.pending.len()
            ));
        }
        return detail;
    }
    let Some(peer) = record.peer else {
        return "bound".to_string();
    };
    let mut detail = format!("connected to socket:[{peer}]");
    if record.accepted {
        detail.push_str(", accepted");
    }
    if let Some(queued) = &record.queued {
        detail.push_str(&format!(", data waiting in {queued}"));
    }
    detail
}

/// Describes a socket's family, type and bound address in words.
fn socket_address(record: &stasis_image::SocketRecord) -> String {
    let address = &record.address.0;
    let kind = match record.socket_type {
        libc_consts::SOCK_STREAM => "stream",
        libc_consts::SOCK_DGRAM => "datagram",
        libc_consts::SOCK_SEQPACKET => "seqpacket",
        _ => "socket",
    };
    let port = |bytes: &[u8]| u16::from_be_bytes([bytes[2], bytes[3]]);
    match record.family {
        libc_consts::AF_INET if address.len() >= 8 => format!(
            "inet {kind} {}.{}.{}.{}:{}",
            address[4],
            address[5],
            address[6],
            address[7],
            port(address)
        ),
        libc_consts::AF_INET6 if address.len() >= 24 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&address[8..24]);
            format!(
                "inet6 {kind} [{}]:{}",
                std::net::Ipv6Addr::from(octets),
                port(address)
            )
        }
        libc_consts::AF_UNIX => {
            let name = address.get(2..).unwrap_or_default();
            let end = name
                .iter()
                .skip(1)
                .position(|&b| b == 0)
                .map_or(name.len(), |i| i + 1);
            let text = String::from_utf8_lossy(&name[..end]).replace('\0', "@");
            format!("unix {kind} {text}")
        }
        family => format!("{kind} of family {family}"),
    }
}

/// Address families and socket types as Linux numbers them, so that this
/// crate needs no libc.
mod libc_consts {
    pub const AF_UNIX: i32 = 1;
    pub const AF_INET: i32 = 2;
    pub const AF_INET6: i32 = 10;
    pub const SOCK_STREAM: i32 = 1;
    pub const SOCK_DGRAM: i32 = 2;
    pub const SOCK_SEQPACKET: i32 = 5;
}

/// Describes a timerfd: its clock, the time to the next expiration and
/// the interval, and expirations not yet read.
fn timer_detail(clock: i32, ticks: u64, value_ns: u64, interval_ns: u64) -> String {
    let seconds = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    let mut text = clock_name(clock);
    if value_ns == 0 {
        text.push_str(", disarmed");
    } else {
        text.push_str(&format!(", expires in {}", seconds(value_ns)));
    }
    if interval_ns != 0 {
        text.push_str(&format!(", every {}", seconds(interval_ns)));
    }
    if ticks != 0 {
        text.push_str(&format!(", {ticks} expirations not read"));
    }
    text
}

/// Describes the registrations of an epoll fd: `watches fd 4 (EPOLLIN)`.
fn epoll_detail(targets: &[stasis_image::EpollTarget]) -> String {
    if targets.is_empty() {
        return "watches nothing".to_string();
    }
    let list: Vec<String> = targets
        .iter()
        .map(|target| format!("fd {} ({})", target.fd, epoll_events(target.events)))
        .collect();
    format!("watches {}", list.join(", "))
}

pub fn render(fds: &Fds, image: &LoadedImage, style: &Style) -> String {
    let mut out = String::new();
    for process in &fds.processes {
        if !out.is_empty() {
            out.push('\n');
        }
        if let Some(records) = image.process(process.pid) {
            out.push_str(&process_heading(records, process.verified, style));
        }
        if let Some(owner) = process.table_shared_with {
            out.push_str(&format!(
                "  shares the fd table of process {owner}, whose fds are listed there\n"
            ));
            if process.fds.is_empty() {
                continue;
            }
        }
        if !process.readable {
            out.push_str(&absent_line(image.process(process.pid), "fd table"));
            continue;
        }
        out.push_str(&render_table(process.pid, &process.fds, style));
    }
    out
}

fn render_table(pid: i32, fds: &[FdEntry], style: &Style) -> String {
    let mut table = Table::new(&[
        ("FD", Align::Right),
        ("DESC", Align::Right),
        ("KIND", Align::Left),
        ("FLAGS", Align::Left),
        ("CLOEXEC", Align::Left),
        ("OFFSET", Align::Right),
        ("TARGET", Align::Left),
    ]);
    for fd in fds {
        let position = fd
            .position
            .map_or("-".to_string(), |position| position.to_string());
        let description = match fd.description {
            0 => "-".to_string(),
            number => number.to_string(),
        };
        table.row(vec![
            Cell::new(fd.fd.to_string()),
            Cell::new(description),
            Cell::new(fd.kind),
            Cell::new(fd.flags_decoded.clone()),
            Cell::new(if fd.cloexec { "yes" } else { "no" }),
            Cell::new(position),
            target_cell(pid, fd),
        ]);
    }
    table.render(style)
}

/// Describes the fds that share a description: each fd of process `pid`
/// by number, and the fds of other processes by count, which the JSON
/// lists in full.
fn sharers(pid: i32, others: &[FdRef]) -> String {
    let mut parts: Vec<String> = others
        .iter()
        .filter(|other| other.pid == pid)
        .map(|other| format!("fd {}", other.fd))
        .collect();
    let foreign: Vec<&FdRef> = others.iter().filter(|other| other.pid != pid).collect();
    let processes: std::collections::BTreeSet<i32> =
        foreign.iter().map(|other| other.pid).collect();
    match (foreign.as_slice(), processes.len()) {
        ([], _) => {}
        ([other], _) => parts.push(format!("fd {} of process {}", other.fd, other.pid)),
        (_, 1) => parts.push(format!(
            "{} fds of process {}",
            foreign.len(),
            foreign[0].pid
        )),
        (_, count) => parts.push(format!("{} fds of {count} other processes", foreign.len())),
    }
    parts.join(", ")
}

fn target_cell(pid: i32, fd: &FdEntry) -> Cell {
    let mut text = clean(&fd.path);
    if let Some(rdev) = &fd.rdev {
        text.push_str(&format!(" (device {rdev})"));
    }
    if let Some(detail) = &fd.detail {
        text.push_str(&format!(" ({})", clean(detail)));
    }
    if let Some(write_end) = fd.write_end {
        let end = if write_end { "write end" } else { "read end" };
        text.push_str(&format!(" ({end}"));
        if let Some(content) = &fd.content_file {
            text.push_str(&format!(", buffered bytes in {}", clean(content)));
        }
        text.push(')');
    }
    if fd.deleted {
        text.push_str(" (deleted");
        if let Some(content) = &fd.content_file {
            text.push_str(&format!(", contents in {}", clean(content)));
        }
        text.push(')');
    }
    if !fd.shared_with.is_empty() {
        text.push_str(&format!(" [shared with {}]", sharers(pid, &fd.shared_with)));
    }
    if fd.deleted {
        Cell::painted(text, Paint::Warn)
    } else {
        Cell::new(text)
    }
}
