//! Finding the peer of a Unix socket with the sock_diag netlink interface
//! (NETLINK_SOCK_DIAG, UNIX_DIAG_PEER), the only interface that reports
//! which socket the other end of a socketpair or connection is.
//!
//! The request and reply layouts are from include/uapi/linux/unix_diag.h
//! and sock_diag.h; no crate covers unix_diag, so they are spelled out here.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{LinuxError, Result};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;

/// Facts that sock_diag reports about one Unix socket.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixSocketInfo {
    /// Inode of the connected peer, 0 if there is none.
    pub peer: u64,
    /// Bytes (stream) or datagrams waiting in the receive queue.
    pub receive_queue: u32,
}

fn error(op: &'static str) -> LinuxError {
    LinuxError::Syscall {
        op,
        errno: Errno::last(),
    }
}

/// Queries sock_diag about the Unix socket with inode `inode`.
pub fn unix_socket_info(inode: u64) -> Result<UnixSocketInfo> {
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
    request.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.push(libc::AF_UNIX as u8);
    request.push(0); // sdiag_protocol
    request.extend_from_slice(&0u16.to_ne_bytes());
    request.extend_from_slice(&u32::MAX.to_ne_bytes()); // udiag_states: all
    request.extend_from_slice(&(inode as u32).to_ne_bytes());
    request.extend_from_slice(&(UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN).to_ne_bytes());
    request.extend_from_slice(&[0xff; 8]); // udiag_cookie: any
                                           // SAFETY: sends `request.len()` bytes from a live buffer.
    if unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    } < 0
    {
        return Err(error("send(NETLINK_SOCK_DIAG)"));
    }

    let mut reply = vec![0u8; 8192];
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
    parse_reply(&reply[..got as usize])
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one reply: nlmsghdr, struct unix_diag_msg (16 bytes), then
/// attributes (struct rtattr: u16 length, u16 type, payload, 4-aligned).
fn parse_reply(reply: &[u8]) -> Result<UnixSocketInfo> {
    let invalid = |message: &str| LinuxError::Parse {
        path: "sock_diag reply".into(),
        message: message.to_owned(),
    };
    let length = u32_at(reply, 0).ok_or_else(|| invalid("short reply"))? as usize;
    let kind = u16_at(reply, 4).ok_or_else(|| invalid("short reply"))?;
    if kind == NLMSG_ERROR {
        let code = u32_at(reply, 16).unwrap_or(0) as i32;
        return Err(LinuxError::Syscall {
            op: "sock_diag",
            errno: Errno::from_raw(-code),
        });
    }
    let message = reply
        .get(..length.min(reply.len()))
        .ok_or_else(|| invalid("short reply"))?;
    let mut info = UnixSocketInfo::default();
    let mut at = 16 + 16;
    while at + 4 <= message.len() {
        let attribute_length = u16_at(message, at).unwrap_or(0) as usize;
        let attribute_type = u16_at(message, at + 2).unwrap_or(0);
        if attribute_length < 4 {
            break;
        }
        match attribute_type {
            UNIX_DIAG_PEER => info.peer = u32_at(message, at + 4).unwrap_or(0) as u64,
            UNIX_DIAG_RQLEN => info.receive_queue = u32_at(message, at + 4).unwrap_or(0),
            _ => {}
        }
        at += (attribute_length + 3) & !3;
    }
    Ok(info)
}
