//! Recreating bound and listening sockets: a new socket with the saved
//! family, type and options, bound to the saved address and listening
//! with the saved backlog.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;

use stasis_image::SocketRecord;

use crate::error::RestoreError;

/// Describes a socket address for messages.
fn describe(record: &SocketRecord) -> String {
    let address = &record.address.0;
    match record.family {
        libc::AF_INET if address.len() >= 8 => {
            let port = u16::from_be_bytes([address[2], address[3]]);
            format!(
                "{}.{}.{}.{}:{port}",
                address[4], address[5], address[6], address[7]
            )
        }
        libc::AF_INET6 if address.len() >= 24 => {
            let port = u16::from_be_bytes([address[2], address[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&address[8..24]);
            format!("[{}]:{port}", std::net::Ipv6Addr::from(octets))
        }
        libc::AF_UNIX => match crate::dump::socket_path(address) {
            Some(path) => path.display().to_string(),
            None => "an abstract Unix socket".into(),
        },
        family => format!("a socket of family {family}"),
    }
}

fn failed(record: &SocketRecord, step: &str) -> RestoreError {
    RestoreError::Open {
        path: format!("{} ({step})", describe(record)),
        source: std::io::Error::last_os_error(),
    }
}

/// Creates the socket that `record` describes.
pub fn create(record: &SocketRecord) -> Result<OwnedFd, RestoreError> {
    let mut socket_type = record.socket_type | libc::SOCK_CLOEXEC;
    if record.flags as i32 & libc::O_NONBLOCK != 0 {
        socket_type |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: socket takes integers only and returns a new fd, owned below.
    let raw = unsafe { libc::socket(record.family, socket_type, record.protocol) };
    if raw < 0 {
        return Err(failed(record, "socket"));
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    apply_socket_options(raw, record)?;

    let address = &record.address.0;
    if address.len() > 2 {
        remove_stale_socket_file(record)?;
        // SAFETY: address is a sockaddr of address.len() bytes, as
        // getsockname returned it.
        let ret = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                address.as_ptr().cast(),
                address.len() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(failed(record, "bind"));
        }
    }
    if let Some(backlog) = record.backlog {
        // SAFETY: listen takes integers only.
        if unsafe { libc::listen(raw, backlog.min(i32::MAX as u32) as i32) } < 0 {
            return Err(failed(record, "listen"));
        }
    }
    Ok(socket)
}

/// Sets the saved options and file status flags on a restored socket.
pub fn apply_options(socket: &OwnedFd, record: &SocketRecord) -> Result<(), RestoreError> {
    apply_socket_options(socket.as_raw_fd(), record)?;
    if record.flags as i32 & libc::O_NONBLOCK != 0 {
        // SAFETY: F_SETFL on a valid fd with status flags only.
        if unsafe { libc::fcntl(socket.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
            return Err(failed(record, "fcntl"));
        }
    }
    Ok(())
}

fn apply_socket_options(raw: i32, record: &SocketRecord) -> Result<(), RestoreError> {
    for &(level, name, value) in &record.options {
        // SAFETY: value is a valid c_int of the size given.
        let ret = unsafe {
            libc::setsockopt(
                raw,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(failed(record, "setsockopt"));
        }
    }
    Ok(())
}

/// Removes the socket file that the dumped process's bind left at its
/// path, but only if it is still the same socket file, so that restore
/// never deletes a file that something else put there.
fn remove_stale_socket_file(record: &SocketRecord) -> Result<(), RestoreError> {
    let (Some(path), Some(inode)) = (
        crate::dump::socket_path(&record.address.0),
        record.unix_path_inode,
    ) else {
        return Ok(());
    };
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return Ok(());
    };
    if meta.file_type().is_socket() && std::os::unix::fs::MetadataExt::ino(&meta) == inode {
        std::fs::remove_file(&path).map_err(|source| RestoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
