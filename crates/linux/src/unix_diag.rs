//! Reading Unix sockets through the sock_diag netlink interface
//! (NETLINK_SOCK_DIAG): the peer of a socket (UNIX_DIAG_PEER), which no
//! other interface reports, its state, its queue lengths, its name and,
//! for a listening socket, the connections waiting to be accepted.
//!
//! The request and reply layouts are from include/uapi/linux/unix_diag.h
//! and sock_diag.h; no crate covers unix_diag, so they are spelled out here.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{LinuxError, Result};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_ICONS: u32 = 0x8;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;

/// `sk_state` of a listening socket (TCP_LISTEN in the kernel's numbering).
pub const STATE_LISTEN: u8 = 10;
/// `sk_state` of a connected socket (TCP_ESTABLISHED).
pub const STATE_ESTABLISHED: u8 = 1;

/// Facts that sock_diag reports about one Unix socket.
#[derive(Debug, Clone, Default)]
pub struct UnixSocketInfo {
    /// Inode of the socket.
    pub inode: u64,
    /// SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET.
    pub socket_type: u8,
    /// `sk_state`: [`STATE_LISTEN`], [`STATE_ESTABLISHED`], or 7
    /// (TCP_CLOSE) for a socket without a connection.
    pub state: u8,
    /// Inode of the connected peer, 0 if there is none or the peer is
    /// closed.
    pub peer: u64,
    /// For a listening socket, the number of connections waiting to be
    /// accepted. Otherwise the bytes waiting in the receive queue, but for
    /// a datagram socket only the length of the first datagram.
    pub receive_queue: u32,
    /// For a listening socket, its backlog as listen(2) set it. Otherwise
    /// the send buffer memory in use (sk_wmem_alloc) in bytes, which
    /// counts the data sent and not yet received with the kernel's
    /// overhead for each message, so it is 0 only when all was received.
    pub send_queue: u32,
    /// The address without its `sun_family` field (a path, or a 0 byte
    /// and an abstract name), or None for an unnamed socket.
    pub name: Option<Vec<u8>>,
    /// For a listening socket, the inodes of the client sockets whose
    /// connections wait to be accepted, in queue order (UNIX_DIAG_ICONS).
    pub pending: Vec<u64>,
}

fn error(op: &'static str) -> LinuxError {
    LinuxError::Syscall {
        op,
        errno: Errno::last(),
    }
}

/// Queries sock_diag about the Unix socket with inode `inode`.
pub fn unix_socket_info(inode: u64) -> Result<UnixSocketInfo> {
    let show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN;
    let mut sockets = query(NLM_F_REQUEST, u32::MAX, inode as u32, show)?;
    sockets.pop().ok_or_else(|| LinuxError::Parse {
        path: "sock_diag reply".into(),
        message: format!("no Unix socket with inode {inode}"),
    })
}

/// Lists every listening Unix socket of the network namespace with its
/// name and the connections waiting to be accepted.
pub fn unix_listeners() -> Result<Vec<UnixSocketInfo>> {
    query(
        NLM_F_REQUEST | NLM_F_DUMP,
        1 << STATE_LISTEN,
        0,
        UDIAG_SHOW_NAME | UDIAG_SHOW_ICONS,
    )
}

/// Lists every Unix socket of the network namespace with its name.
pub fn unix_sockets() -> Result<Vec<UnixSocketInfo>> {
    query(NLM_F_REQUEST | NLM_F_DUMP, u32::MAX, 0, UDIAG_SHOW_NAME)
}

/// Sends one SOCK_DIAG_BY_FAMILY request and parses every reply message
/// until NLMSG_DONE (for a dump) or the first socket (for one inode).
fn query(flags: u16, states: u32, inode: u32, show: u32) -> Result<Vec<UnixSocketInfo>> {
    // SAFETY: socket takes integers only; the fd is owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(error("socket(NETLINK_SOCK_DIAG)"));
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // struct nlmsghdr (16 bytes) then struct unix_diag_req (24 bytes).
    let mut request = Vec::with_capacity(40);
    request.extend_from_slice(&40u32.to_ne_bytes());
    request.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    request.extend_from_slice(&flags.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.push(libc::AF_UNIX as u8);
    request.push(0); // sdiag_protocol
    request.extend_from_slice(&0u16.to_ne_bytes());
    request.extend_from_slice(&states.to_ne_bytes());
    request.extend_from_slice(&inode.to_ne_bytes());
    request.extend_from_slice(&show.to_ne_bytes());
    // udiag_cookie: any.
    request.extend_from_slice(&[0xff; 8]);

    // SAFETY: sends `request.len()` bytes from a live buffer.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(error("send(NETLINK_SOCK_DIAG)"));
    }

    let dump = flags & NLM_F_DUMP != 0;
    let mut sockets = Vec::new();
    let mut reply = vec![0u8; 32768];
    loop {
        // SAFETY: receives into a live buffer of its length.
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                reply.as_mut_ptr().cast(),
                reply.len(),
                0,
            )
        };
        if got < 0 {
            return Err(error("recv(NETLINK_SOCK_DIAG)"));
        }
        if got == 0 {
            return Ok(sockets);
        }
        if parse_messages(&reply[..got as usize], &mut sockets)? || !dump {
            return Ok(sockets);
        }
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the netlink messages of one datagram into `sockets`, and returns
/// whether NLMSG_DONE ended them.
fn parse_messages(datagram: &[u8], sockets: &mut Vec<UnixSocketInfo>) -> Result<bool> {
    let mut at = 0;
    while at + 16 <= datagram.len() {
        let length = u32_at(datagram, at).unwrap_or(0) as usize;
        let kind = u16_at(datagram, at + 4).unwrap_or(0);
        if length < 16 || at + length > datagram.len() {
            return Err(LinuxError::Parse {
                path: "sock_diag reply".into(),
                message: format!("netlink message of invalid length {length}"),
            });
        }
        let message = &datagram[at..at + length];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = u32_at(message, 16).unwrap_or(0) as i32;
                return Err(LinuxError::Syscall {
                    op: "sock_diag",
                    errno: Errno::from_raw(-code),
                });
            }
            SOCK_DIAG_BY_FAMILY => sockets.push(parse_socket(message)?),
            _ => {}
        }
        at += (length + 3) & !3;
    }
    Ok(false)
}

/// Parses one reply: nlmsghdr, struct unix_diag_msg (16 bytes: family,
/// type, state, pad, inode, cookie), then attributes (struct rtattr: u16
/// length, u16 type, payload, 4-aligned).
fn parse_socket(message: &[u8]) -> Result<UnixSocketInfo> {
    if message.len() < 32 {
        return Err(LinuxError::Parse {
            path: "sock_diag reply".into(),
            message: format!("unix_diag_msg of {} bytes", message.len()),
        });
    }
    let mut info = UnixSocketInfo {
        socket_type: message[16 + 1],
        state: message[16 + 2],
        inode: u64::from(u32_at(message, 16 + 4).unwrap_or(0)),
        ..UnixSocketInfo::default()
    };
    let mut at = 16 + 16;
    while at + 4 <= message.len() {
        let attribute_length = u16_at(message, at).unwrap_or(0) as usize;
        let attribute_type = u16_at(message, at + 2).unwrap_or(0);
        if attribute_length < 4 || at + attribute_length > message.len() {
            break;
        }
        let payload = &message[at + 4..at + attribute_length];
        match attribute_type {
            UNIX_DIAG_NAME => info.name = Some(payload.to_vec()),
            UNIX_DIAG_PEER => info.peer = u64::from(u32_at(payload, 0).unwrap_or(0)),
            UNIX_DIAG_RQLEN => {
                info.receive_queue = u32_at(payload, 0).unwrap_or(0);
                info.send_queue = u32_at(payload, 4).unwrap_or(0);
            }
            UNIX_DIAG_ICONS => {
                info.pending = payload
                    .chunks_exact(4)
                    .filter_map(|inode| u32_at(inode, 0))
                    .map(u64::from)
                    .collect();
            }
            _ => {}
        }
        at += (attribute_length + 3) & !3;
    }
    Ok(info)
}
