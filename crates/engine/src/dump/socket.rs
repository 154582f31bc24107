//! Saving sockets: TCP and UDP sockets over IPv4 and IPv6 that are bound
//! or listening but carry no connection, Unix sockets with a path or an
//! abstract name, and connected Unix sockets (socketpairs, clients and
//! accepted connections). A connected TCP or UDP socket stops the dump
//! with an error naming it.
//!
//! stasis takes its own handle on the target's socket with pidfd_getfd and
//! reads the family, type, address and options from it. A connected Unix
//! socket is saved with its peer's inode, found with sock_diag, and the data
//! waiting in its receive queue; both ends must be in the tree. The listen
//! backlog of a TCP socket comes from /proc/net/tcp, whose tx_queue column
//! gives it for listening sockets, and that of a Unix socket from sock_diag.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use stasis_image::{Bytes, ImageWriter, OpenFile, SocketRecord};

use crate::error::DumpError;

/// Socket options saved for every socket, as (level, name).
const OPTIONS: [(i32, i32); 5] = [
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_BROADCAST),
    (libc::SOL_SOCKET, libc::SO_PASSCRED),
];
/// Options saved for TCP sockets.
const TCP_OPTIONS: [(i32, i32); 1] = [(libc::IPPROTO_TCP, libc::TCP_NODELAY)];
/// Options saved for IPv6 sockets.
const IPV6_OPTIONS: [(i32, i32); 1] = [(libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)];

fn unsupported(pid: i32, fd: i32, link: &str, what: &str) -> DumpError {
    DumpError::Unsupported {
        pid,
        reason: format!("fd {fd} ({link}) is {what}, which stasis cannot save yet"),
    }
}

/// Returns the record of socket `fd` of `pid`, and the inodes of the
/// sockets that must be in the tree with it. These are the peer of a
/// connected Unix socket, the senders of its saved datagrams, the clients
/// waiting in a listening socket's queue, or the listening socket in whose
/// queue a client's connection waits.
pub fn describe(
    pid: i32,
    fd: i32,
    link: &str,
    flags: u32,
    inode: u64,
    image: &mut ImageWriter,
) -> Result<(OpenFile, Vec<u64>), DumpError> {
    let socket = take_handle(pid, fd)?;
    let raw = socket.as_raw_fd();
    let io = |source: std::io::Error| DumpError::Io {
        path: format!("/proc/{pid}/fd/{fd}").into(),
        source,
    };
    let family = get_int(raw, libc::SOL_SOCKET, libc::SO_DOMAIN).map_err(io)?;
    let socket_type = get_int(raw, libc::SOL_SOCKET, libc::SO_TYPE).map_err(io)?;
    let protocol = get_int(raw, libc::SOL_SOCKET, libc::SO_PROTOCOL).map_err(io)?;
    let listening = get_int(raw, libc::SOL_SOCKET, libc::SO_ACCEPTCONN).map_err(io)? != 0;

    if ![libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&family) {
        return Err(unsupported(
            pid,
            fd,
            link,
            &format!("a socket of address family {family}"),
        ));
    }
    let address = local_address(raw).map_err(io)?;
    let mut peer = None;
    let mut queued = None;
    let mut accepted = false;
    let mut pending = Vec::new();
    let mut senders = Vec::new();
    let mut needed = Vec::new();
    let backlog;
    if family == libc::AF_UNIX {
        let info = stasis_linux::unix_diag::unix_socket_info(inode).map_err(|source| {
            DumpError::Linux {
                pid,
                step: "asking sock_diag about a Unix socket",
                source,
            }
        })?;
        let rejected = |what: String| unsupported(pid, fd, link, &what);
        if listening {
            // sock_diag gives 0 for a waiting connection whose client is
            // closed.
            if info.pending.len() != info.receive_queue as usize || info.pending.contains(&0) {
                return Err(rejected(format!(
                    "a listening Unix socket ({}) with {} connections waiting to be accepted, of which some have a closed client",
                    unix_name(&address),
                    info.receive_queue
                )));
            }
            pending = info.pending.clone();
            needed = info.pending;
            backlog = Some(info.send_queue);
        } else if info.peer != 0 {
            backlog = None;
            peer = Some(info.peer);
            needed.push(info.peer);
            if socket_type != libc::SOCK_DGRAM {
                accepted = is_accepted(pid, &address, raw, socket_type, (inode, info.peer))?;
            }
            let (name, sources) = save_queue(raw, socket_type, inode, image).map_err(io)?;
            queued = name;
            senders = datagram_senders(&sources, Some(info.peer)).map_err(rejected)?;
        } else if info.state == stasis_linux::unix_diag::STATE_ESTABLISHED
            && socket_type != libc::SOCK_DGRAM
        {
            // A datagram socket that another one connected to is marked
            // established too (Linux 6.x), so only connection types
            // count here.
            // A connection still in a listening socket's queue has a peer
            // that no fd refers to yet, so sock_diag reports its inode as 0.
            // Restore connects the client again, which is exact only if the
            // client has sent nothing that the peer could hold.
            let Some((listener, listener_name)) = pending_on(inode) else {
                return Err(rejected(format!(
                    "a connected Unix socket ({}) whose peer is closed",
                    unix_name(&address)
                )));
            };
            if info.send_queue > 0 {
                return Err(rejected(format!(
                    "a Unix socket ({}) with data sent on a connection that the listening socket {listener_name} has not accepted yet ({} bytes of send buffer in use)",
                    unix_name(&address),
                    info.send_queue
                )));
            }
            needed.push(listener);
            backlog = None;
        } else if !address_is_bound(family, &address) {
            return Err(rejected("an unnamed Unix socket with no peer".into()));
        } else {
            backlog = None;
            if socket_type == libc::SOCK_DGRAM {
                let (name, sources) = save_queue(raw, socket_type, inode, image).map_err(io)?;
                queued = name;
                senders = datagram_senders(&sources, None).map_err(rejected)?;
            }
        }
        needed.extend(senders.iter().copied());
    } else if peer_address(raw).is_some() {
        return Err(unsupported(pid, fd, link, "a connected socket"));
    } else if listening {
        backlog = Some(listen_backlog(pid, fd, link, family, inode)?);
    } else {
        backlog = None;
    }
    let mut wanted: Vec<(i32, i32)> = OPTIONS.to_vec();
    if protocol == libc::IPPROTO_TCP {
        wanted.extend(TCP_OPTIONS);
    }
    if family == libc::AF_INET6 {
        wanted.extend(IPV6_OPTIONS);
    }
    let mut options = Vec::new();
    for (level, name) in wanted {
        if let Ok(value) = get_int(raw, level, name) {
            options.push((level, name, value));
        }
    }
    let unix_path_inode = unix_path(&address).and_then(|path| {
        std::fs::metadata(path)
            .ok()
            .map(|meta| std::os::unix::fs::MetadataExt::ino(&meta))
    });
    let record = OpenFile::Socket(SocketRecord {
        flags,
        family,
        socket_type,
        protocol,
        address: Bytes(address),
        backlog,
        options,
        unix_path_inode,
        inode,
        peer,
        queued,
        accepted,
        pending,
        senders,
    });
    Ok((record, needed))
}

/// Describes a Unix socket address for messages: its path, `@` and the
/// abstract name, or "unnamed".
pub fn unix_name(address: &[u8]) -> String {
    match address.get(2..) {
        None | Some([]) => "unnamed".into(),
        Some([0, name @ ..]) => format!("@{}", String::from_utf8_lossy(name)),
        Some(path) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            String::from_utf8_lossy(&path[..end]).into_owned()
        }
    }
}

/// Returns whether a connected Unix stream or seqpacket socket came from
/// accept(2). The kernel gives an accepted socket the address of its
/// listening socket, so it is the end whose address a listening socket
/// has, or the only named end.
///
/// When both ends have names and no listening socket has either, the
/// listening socket is closed. A client's own name stays bound, and the
/// name of an accepted socket is bound by no socket, so an abstract name
/// decides it. Two path names cannot be distinguished, but restore binds
/// both inside a private root directory, where either choice gives the
/// same getsockname and getpeername, so the ends are ordered by address
/// and inode. `inodes` is (this socket, its peer).
fn is_accepted(
    pid: i32,
    address: &[u8],
    socket: i32,
    socket_type: i32,
    inodes: (u64, u64),
) -> Result<bool, DumpError> {
    if address.len() <= 2 {
        return Ok(false);
    }
    let peer_address = peer_address(socket).unwrap_or_default();
    if peer_address.len() <= 2 {
        return Ok(true);
    }
    let listeners =
        stasis_linux::unix_diag::unix_listeners().map_err(|source| DumpError::Linux {
            pid,
            step: "listing the listening Unix sockets with sock_diag",
            source,
        })?;
    let listened = |name: &[u8]| {
        listeners
            .iter()
            .any(|listener| listener.name.as_deref() == Some(name))
    };
    if listened(&address[2..]) {
        return Ok(true);
    }
    if listened(&peer_address[2..]) {
        return Ok(false);
    }
    let probe_failed = |source| DumpError::Io {
        path: format!(
            "a Unix socket bound to {} to test the name",
            unix_name(address)
        )
        .into(),
        source,
    };
    if address[2] == 0 {
        return Ok(!abstract_name_bound(address, socket_type).map_err(probe_failed)?);
    }
    if peer_address[2] == 0 {
        return abstract_name_bound(&peer_address, socket_type).map_err(probe_failed);
    }
    Ok((address, inodes.0) > (peer_address.as_slice(), inodes.1))
}

/// Returns whether a socket of `socket_type` is bound to the abstract name
/// of `address`, by binding a socket of that type to it: the kernel keeps
/// abstract names per socket type. A free name is held only until the
/// probe socket is closed on return.
fn abstract_name_bound(address: &[u8], socket_type: i32) -> std::io::Result<bool> {
    // SAFETY: socket takes integers only and returns a new fd, owned below.
    let raw = unsafe { libc::socket(libc::AF_UNIX, socket_type | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let probe = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: address is a sockaddr of address.len() bytes.
    let ret = unsafe {
        libc::bind(
            probe.as_raw_fd(),
            address.as_ptr().cast(),
            address.len() as libc::socklen_t,
        )
    };
    if ret == 0 {
        return Ok(false);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EADDRINUSE) {
        return Ok(true);
    }
    Err(error)
}

/// Returns the inode of the socket that sent each saved datagram, found
/// from the sender address by the name that sock_diag reports for each
/// datagram socket. A datagram without a sender address came from
/// `peer`, the only unnamed socket that can send to a connected socket.
/// The list is empty when `peer` sent every datagram. The error is the
/// reason for the dump to stop.
fn datagram_senders(addresses: &[Vec<u8>], peer: Option<u64>) -> Result<Vec<u64>, String> {
    let mut named: Option<Vec<stasis_linux::unix_diag::UnixSocketInfo>> = None;
    let mut senders = Vec::with_capacity(addresses.len());
    for address in addresses {
        if address.len() <= 2 {
            let Some(peer) = peer else {
                return Err(
                    "an unconnected datagram Unix socket with a datagram waiting from an unnamed sender, which stasis cannot name"
                        .into(),
                );
            };
            senders.push(peer);
            continue;
        }
        if named.is_none() {
            let sockets = stasis_linux::unix_diag::unix_sockets().map_err(|error| {
                format!("a datagram Unix socket whose senders sock_diag cannot list ({error})")
            })?;
            named = Some(sockets);
        }
        let sender = named
            .iter()
            .flatten()
            .filter(|socket| i32::from(socket.socket_type) == libc::SOCK_DGRAM)
            .find(|socket| socket.name.as_deref() == Some(&address[2..]))
            .ok_or_else(|| {
                format!(
                    "a datagram Unix socket with a datagram waiting from {}, whose socket is closed",
                    unix_name(address)
                )
            })?;
        senders.push(sender.inode);
    }
    if senders.iter().all(|&sender| Some(sender) == peer) {
        senders.clear();
    }
    Ok(senders)
}

/// Describes where a Unix socket is that no process of the dumped tree has
/// open: in the process outside the tree that has it, if there is one.
pub fn locate_socket(inode: u64) -> String {
    let link = format!("socket:[{inode}]");
    let own = std::process::id().to_string();
    let processes = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for process in processes {
        let name = process.file_name();
        let Some(pid) = name.to_str().filter(|pid| pid.parse::<u32>().is_ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for entry in fds.flatten() {
            if std::fs::read_link(entry.path())
                .is_ok_and(|target| target.as_os_str() == link.as_str())
            {
                let comm = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default();
                return format!(
                    "which process {pid} ({}) holds as fd {}, outside the dumped tree",
                    comm.trim_end(),
                    entry.file_name().to_string_lossy()
                );
            }
        }
    }
    "which no process outside the dumped tree holds".into()
}

/// Returns the inode and a description (`socket:[INODE]` and its name) of
/// the listening socket whose queue contains the connection of the client
/// socket `inode`, if any.
fn pending_on(inode: u64) -> Option<(u64, String)> {
    let listeners = stasis_linux::unix_diag::unix_listeners().ok()?;
    let listener = listeners
        .iter()
        .find(|listener| listener.pending.contains(&inode))?;
    let mut address = vec![0u8; 2];
    address.extend_from_slice(listener.name.as_deref().unwrap_or_default());
    Some((
        listener.inode,
        format!("socket:[{}] ({})", listener.inode, unix_name(&address)),
    ))
}

/// Saves the data waiting in the receive queue of a Unix socket without
/// taking it: a stream socket's bytes with one MSG_PEEK, messages one by one
/// with a peek offset (SO_PEEK_OFF), which is put back as it was. Returns
/// the name of the file data file, if anything waited, and for a datagram
/// socket the sender address of each datagram.
fn save_queue(
    fd: i32,
    socket_type: i32,
    inode: u64,
    image: &mut ImageWriter,
) -> std::io::Result<(Option<String>, Vec<Vec<u8>>)> {
    let mut data = Vec::new();
    let mut senders = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    if socket_type == libc::SOCK_STREAM {
        loop {
            let (got, _) = peek(fd, &mut buf);
            if got <= 0 || (got as usize) < buf.len() {
                if got > 0 {
                    data.extend_from_slice(&buf[..got as usize]);
                }
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
    } else {
        let original = get_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF)?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0)?;
        loop {
            let (got, sender) = peek(fd, &mut buf);
            if got < 0 {
                break;
            }
            data.extend_from_slice(&(got as u32).to_le_bytes());
            data.extend_from_slice(&buf[..got as usize]);
            if socket_type == libc::SOCK_DGRAM {
                senders.push(sender);
            }
        }
        set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, original)?;
    }
    if data.is_empty() {
        return Ok((None, senders));
    }
    let name = format!("socket-queue-{inode}");
    let to_io = |error: stasis_image::ImageError| std::io::Error::other(error.to_string());
    let mut writer = image
        .data_writer(&name, stasis_image::RecordKind::FileData)
        .map_err(to_io)?;
    writer.write(&data).map_err(to_io)?;
    image.finish_data(writer).map_err(to_io)?;
    Ok((Some(name), senders))
}

/// Peeks at the next message (at the peek offset, if one is set) without
/// waiting, and returns its length (or -1) and its sender address.
fn peek(fd: i32, buf: &mut [u8]) -> (isize, Vec<u8>) {
    let mut address = [0u8; std::mem::size_of::<libc::sockaddr_un>()];
    let mut vector = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the fields set below point at live
    // buffers of the lengths given.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = address.as_mut_ptr().cast();
    message.msg_namelen = address.len() as libc::socklen_t;
    message.msg_iov = &mut vector;
    message.msg_iovlen = 1;
    // SAFETY: recvmsg writes only into the buffers that `message` names.
    let got = unsafe { libc::recvmsg(fd, &mut message, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    let length = (message.msg_namelen as usize).min(address.len());
    (got, address[..length].to_vec())
}

fn set_int(fd: i32, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: value is a valid c_int of the size given.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Returns the file-system path of a Unix socket address (a sockaddr_un as
/// getsockname returns it), or None for an abstract or unnamed one.
pub fn unix_path(address: &[u8]) -> Option<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;

    let path = address.get(2..)?;
    if path.first().copied().unwrap_or(0) == 0 {
        return None;
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Some(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(
        &path[..end],
    )))
}

fn address_is_bound(family: i32, address: &[u8]) -> bool {
    match family {
        libc::AF_UNIX => address.len() > 2,
        // sin_port / sin6_port at bytes 2..4.
        _ => address.get(2..4).is_some_and(|port| port != [0, 0]),
    }
}

/// Duplicates the target's fd into stasis with pidfd_getfd(2).
fn take_handle(pid: i32, fd: i32) -> Result<OwnedFd, DumpError> {
    let error = |step: &'static str| DumpError::Linux {
        pid,
        step,
        source: stasis_linux::LinuxError::Syscall {
            op: step,
            errno: nix::errno::Errno::last(),
        },
    };
    // SAFETY: pidfd_open and pidfd_getfd take integers only and return new
    // fds, each owned below.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return Err(error("pidfd_open"));
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd);
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) as i32;
        if copy < 0 {
            return Err(error("pidfd_getfd"));
        }
        Ok(OwnedFd::from_raw_fd(copy))
    }
}

fn get_int(fd: i32, level: i32, name: i32) -> std::io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid out-pointers of the sizes given.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value)
}

fn local_address(fd: i32) -> std::io::Result<Vec<u8>> {
    let mut storage = [0u8; std::mem::size_of::<libc::sockaddr_storage>()];
    let mut len = storage.len() as libc::socklen_t;
    // SAFETY: storage is a buffer of `len` bytes.
    if unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(storage[..(len as usize).min(storage.len())].to_vec())
}

fn peer_address(fd: i32) -> Option<Vec<u8>> {
    let mut storage = [0u8; std::mem::size_of::<libc::sockaddr_storage>()];
    let mut len = storage.len() as libc::socklen_t;
    // SAFETY: storage is a buffer of `len` bytes.
    let ret = unsafe { libc::getpeername(fd, storage.as_mut_ptr().cast(), &mut len) };
    (ret == 0).then(|| storage[..(len as usize).min(storage.len())].to_vec())
}

/// Returns the backlog of a listening socket, and rejects one with
/// connections waiting to be accepted, which a restore cannot recreate.
fn listen_backlog(
    pid: i32,
    fd: i32,
    link: &str,
    family: i32,
    inode: u64,
) -> Result<u32, DumpError> {
    let table = match family {
        libc::AF_INET => format!("/proc/{pid}/net/tcp"),
        libc::AF_INET6 => format!("/proc/{pid}/net/tcp6"),
        _ => return Ok(4096),
    };
    let text = std::fs::read_to_string(&table).map_err(|source| DumpError::Io {
        path: table.clone().into(),
        source,
    })?;
    for line in text.lines().skip(1) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.get(9).and_then(|v| v.parse::<u64>().ok()) != Some(inode) {
            continue;
        }
        let (tx, rx) = columns
            .get(4)
            .and_then(|queues| queues.split_once(':'))
            .and_then(|(tx, rx)| {
                Some((
                    u32::from_str_radix(tx, 16).ok()?,
                    u32::from_str_radix(rx, 16).ok()?,
                ))
            })
            .unwrap_or((4096, 0));
        if rx > 0 {
            return Err(unsupported(
                pid,
                fd,
                link,
                &format!("a listening socket with {rx} connections waiting to be accepted"),
            ));
        }
        return Ok(tx);
    }
    Ok(4096)
}
