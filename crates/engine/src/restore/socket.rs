//! Recreating bound and listening sockets: a new socket with the saved
//! family, type and options, bound to the saved address and listening
//! with the saved backlog. Also recreating the two ends of an accepted
//! Unix connection with their addresses, by a real connect and accept.

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

    bind_saved_address(&socket, record)?;
    if let Some(backlog) = record.backlog {
        // SAFETY: listen takes integers only.
        if unsafe { libc::listen(raw, backlog.min(i32::MAX as u32) as i32) } < 0 {
            return Err(failed(record, "listen"));
        }
    }
    Ok(socket)
}

/// Binds a socket to its saved address, if it had one, replacing the socket
/// file that the dumped socket left at its path.
pub fn bind_saved_address(socket: &OwnedFd, record: &SocketRecord) -> Result<(), RestoreError> {
    if record.address.0.len() <= 2 {
        return Ok(());
    }
    // NOTE: a relative path is bound relative to the working directory of
    // stasis, not to that of the dumped process.
    remove_stale_socket_file(record)?;
    bind(socket, record)
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

/// Creates the two ends of an accepted Unix connection: the end that
/// accept(2) returned, with the address of its listening socket, and the
/// client end, bound to its own saved address if it had one. Returns
/// (accepted end, client end).
///
/// The kernel gives an accepted socket the address of the listening
/// socket, and bind(2) cannot give that address to a second socket. So the
/// connection is made for real: a temporary listening socket is bound to
/// the saved address, the client connects to it, and the accepted socket is
/// kept. The work runs in a thread of its own with a private root
/// directory (unshare(CLONE_FS) and chroot), so path names are bound to
/// socket files inside a temporary directory and neither the real path nor
/// the restored listening socket at it is touched. Abstract names have no
/// file, and the temporary listening socket holds its name only until the
/// connection is accepted.
pub fn connect_pair(
    accepted: &SocketRecord,
    client: &SocketRecord,
) -> Result<(OwnedFd, OwnedFd), RestoreError> {
    let root = std::env::temp_dir().join(format!(
        "stasis-connect-{}-{}",
        std::process::id(),
        accepted.inode
    ));
    std::fs::create_dir(&root).map_err(|source| RestoreError::Open {
        path: root.display().to_string(),
        source,
    })?;
    let result = std::thread::scope(|scope| {
        scope
            .spawn(|| connect_in_root(&root, accepted, client))
            .join()
    });
    let removed = std::fs::remove_dir_all(&root);
    let ends = result.unwrap_or_else(|_| {
        Err(RestoreError::Unsupported {
            reason: format!(
                "the thread that connects socket:[{}] to socket:[{}] panicked",
                client.inode, accepted.inode
            ),
        })
    })?;
    removed.map_err(|source| RestoreError::Open {
        path: root.display().to_string(),
        source,
    })?;
    Ok(ends)
}

/// Runs in a thread of its own: changes the thread's root directory to
/// `root` and makes the connection there.
fn connect_in_root(
    root: &std::path::Path,
    accepted: &SocketRecord,
    client: &SocketRecord,
) -> Result<(OwnedFd, OwnedFd), RestoreError> {
    let step_failed = |step: &str| RestoreError::Open {
        path: format!("{} ({step})", root.display()),
        source: std::io::Error::last_os_error(),
    };
    for record in [accepted, client] {
        make_parent_directories(root, &record.address.0)?;
    }
    // SAFETY: unshare with CLONE_FS only gives this thread its own root
    // and working directory; no memory is involved.
    if unsafe { libc::unshare(libc::CLONE_FS) } < 0 {
        return Err(step_failed("unshare(CLONE_FS)"));
    }
    std::env::set_current_dir(root).map_err(|source| RestoreError::Open {
        path: root.display().to_string(),
        source,
    })?;
    // SAFETY: the path is a valid C string.
    if unsafe { libc::chroot(c".".as_ptr()) } < 0 {
        return Err(step_failed("chroot"));
    }

    let listener = new_unix_socket(accepted)?;
    bind(&listener, accepted)?;
    // SAFETY: listen takes integers only.
    if unsafe { libc::listen(listener.as_raw_fd(), 1) } < 0 {
        return Err(failed(accepted, "listen"));
    }
    let client_end = new_unix_socket(client)?;
    if client.address.0.len() > 2 {
        bind(&client_end, client)?;
    }
    let address = &accepted.address.0;
    // SAFETY: address is a sockaddr of address.len() bytes.
    let ret = unsafe {
        libc::connect(
            client_end.as_raw_fd(),
            address.as_ptr().cast(),
            address.len() as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(failed(accepted, "connect"));
    }
    // SAFETY: accept4 with null address pointers returns a new fd or -1.
    let raw = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(failed(accepted, "accept"));
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    let accepted_end = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok((accepted_end, client_end))
}

/// Creates a blocking Unix socket of the record's type. Options and file
/// status flags are set after the connection exists, because SO_PASSCRED
/// on an unbound socket would make connect(2) bind it to a generated name.
fn new_unix_socket(record: &SocketRecord) -> Result<OwnedFd, RestoreError> {
    // SAFETY: socket takes integers only and returns a new fd, owned below.
    let raw = unsafe { libc::socket(libc::AF_UNIX, record.socket_type | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(failed(record, "socket"));
    }
    // SAFETY: `raw` is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn bind(socket: &OwnedFd, record: &SocketRecord) -> Result<(), RestoreError> {
    let address = &record.address.0;
    // SAFETY: address is a sockaddr of address.len() bytes, as getsockname
    // returned it.
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
    Ok(())
}

/// Creates, under `root`, the directories that the path of a Unix socket
/// address passes through, so that binding the path inside `root` as the
/// root directory succeeds. `..` steps back as the kernel's lookup does,
/// and never above `root`.
fn make_parent_directories(root: &std::path::Path, address: &[u8]) -> Result<(), RestoreError> {
    use std::path::Component;

    let Some(path) = crate::dump::socket_path(address) else {
        return Ok(());
    };
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let mut directory = root.to_path_buf();
    for component in parent.components() {
        match component {
            Component::Normal(name) => {
                directory.push(name);
                match std::fs::create_dir(&directory) {
                    Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(RestoreError::Open {
                            path: directory.display().to_string(),
                            source: error,
                        });
                    }
                    _ => {}
                }
            }
            Component::ParentDir => {
                if directory != root {
                    directory.pop();
                }
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}
