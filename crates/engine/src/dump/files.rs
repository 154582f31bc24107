//! Saving open file descriptors.
//!
//! Regular files and directories are saved by path with their position and
//! flags, and with size and mtime so restore can tell whether they changed.
//! A regular file deleted while open has its contents copied into the image.
//! Character devices are saved by path; a terminal only with --shell-job.
//! Pipes are saved by inode with the bytes buffered in them. Fds that share
//! an open file description, in one process or across the tree, get the
//! same description number (found with kcmp(2)), so they share it again
//! after restore. Any other kind of fd stops the dump with an error naming
//! it.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use stasis_image::{Fd, FdTable, ImageWriter, OpenFile, RecordKind};
use stasis_linux::proc;

use crate::error::{DumpError, DumpStep};
use crate::file_identity;

/// Major numbers of terminal devices: /dev/tty*, /dev/console, /dev/ptmx
/// and /dev/pts/* (devices.txt in the kernel documentation).
const TTY_MAJORS: [u64; 5] = [4, 5, 136, 137, 138];

/// Open file descriptions seen so far in the tree, and the numbering of
/// file-data files.
#[derive(Default)]
pub struct Descriptions {
    /// (pid, fd, device, inode, description number) of one fd of each
    /// description.
    known: Vec<(i32, i32, u64, u64, u32)>,
    /// Pipe inodes whose buffered data is already saved.
    pipes: Vec<u64>,
    /// (pid, fd, inode, None) of every socket in the tree, and (pid, fd,
    /// inode, Some(other)) for each socket that it is connected to, or has
    /// a connection with waiting to be accepted.
    pub sockets: Vec<(i32, i32, u64, Option<u64>)>,
    /// Shared memory objects whose contents are already saved.
    pub shared_memory: Vec<stasis_image::SharedMemory>,
    data_files: u32,
}

impl Descriptions {
    /// Returns the description number of `fd` of `pid`, a new one unless
    /// kcmp finds an earlier fd of the tree with the same description.
    fn identify(&mut self, pid: i32, fd: i32, dev: u64, ino: u64) -> Result<u32, DumpError> {
        for &(other_pid, other_fd, other_dev, other_ino, id) in &self.known {
            if (other_dev, other_ino) != (dev, ino) {
                continue;
            }
            // SAFETY: kcmp takes only integer arguments.
            let order =
                unsafe { libc::syscall(libc::SYS_kcmp, pid, other_pid, KCMP_FILE, fd, other_fd) };
            if order == 0 {
                return Ok(id);
            }
        }
        let id = self.known.len() as u32 + 1;
        self.known.push((pid, fd, dev, ino, id));
        Ok(id)
    }

    fn next_data_file(&mut self) -> String {
        self.data_files += 1;
        stasis_image::format::file_data_file_name(self.data_files)
    }
}

/// kcmp(2) type that compares two fds' open file descriptions.
const KCMP_FILE: i32 = 0;

/// Reads every fd of `pid`; contents of deleted files and pipe buffers go
/// into `image`.
pub fn collect(
    pid: i32,
    shell_job: bool,
    image: &mut ImageWriter,
    descriptions: &mut Descriptions,
) -> Result<FdTable, DumpError> {
    let mut fds = Vec::new();
    for fd in proc::fds(pid).step(pid, "listing /proc/PID/fd")? {
        let link_path = format!("/proc/{pid}/fd/{fd}");
        let link = proc::read_link(Path::new(&link_path))
            .step(pid, "reading /proc/PID/fd")?
            .to_string_lossy()
            .into_owned();
        let info = proc::fdinfo(pid, fd).step(pid, "reading /proc/PID/fdinfo")?;
        let meta = std::fs::metadata(&link_path).map_err(|source| DumpError::Io {
            path: link_path.clone().into(),
            source,
        })?;
        let cloexec = info.flags & libc::O_CLOEXEC as u32 != 0;
        let flags = info.flags & !(libc::O_CLOEXEC as u32);
        let kind = meta.file_type();

        let file = if kind.is_file()
            && proc::is_posix_message_queue(Path::new(&link_path))
                .step(pid, "reading the filesystem of an fd")?
        {
            return Err(unsupported(
                pid,
                fd,
                &link,
                "a POSIX message queue, which stasis cannot save yet",
            ));
        } else if kind.is_file() {
            let deleted = link.ends_with(" (deleted)");
            let path = link.trim_end_matches(" (deleted)").to_owned();
            let content = if deleted {
                let name = descriptions.next_data_file();
                save_content(&link_path, &name, image)?;
                Some(name)
            } else {
                None
            };
            OpenFile::Regular {
                identity: file_identity(&path, Path::new(&link_path))?,
                flags,
                position: info.pos,
                deleted,
                content,
            }
        } else if kind.is_dir() {
            OpenFile::Directory {
                identity: file_identity(&link, Path::new(&link_path))?,
                flags,
                position: info.pos,
            }
        } else if kind.is_char_device() {
            let rdev = meta.rdev();
            if TTY_MAJORS.contains(&libc::major(rdev).into()) {
                if !shell_job {
                    return Err(unsupported(
                        pid,
                        fd,
                        &link,
                        "a terminal; pass --shell-job to save it and reattach it to the restoring terminal",
                    ));
                }
                OpenFile::Terminal {
                    path: link,
                    rdev,
                    flags,
                }
            } else {
                OpenFile::CharDevice {
                    path: link,
                    rdev,
                    flags,
                }
            }
        } else if kind.is_fifo() && link.starts_with("pipe:[") {
            save_pipe(pid, fd, &link_path, flags, meta.ino(), image, descriptions)?
        } else if kind.is_socket() {
            let (file, needed) =
                crate::dump::socket::describe(pid, fd, &link, flags, meta.ino(), image)?;
            if let OpenFile::Socket(record) = &file {
                descriptions.sockets.push((pid, fd, record.inode, None));
                for other in needed {
                    descriptions
                        .sockets
                        .push((pid, fd, record.inode, Some(other)));
                }
            }
            file
        } else if let Some(file) = crate::dump::anon::describe(pid, fd, &link, flags)? {
            file
        } else {
            return Err(unsupported(
                pid,
                fd,
                &link,
                "of a kind stasis cannot save yet",
            ));
        };
        let description = descriptions.identify(pid, fd, meta.dev(), meta.ino())?;
        fds.push(Fd {
            fd,
            cloexec,
            description,
            file,
        });
    }
    Ok(FdTable { pid, fds })
}

fn unsupported(pid: i32, fd: i32, link: &str, what: &str) -> DumpError {
    DumpError::Unsupported {
        pid,
        reason: format!("fd {fd} ({link}) is {what}"),
    }
}

/// Describes a pipe end and, the first time the pipe is seen, saves the
/// bytes buffered in it without consuming them: tee(2) copies them from a
/// new read end opened through /proc into a private pipe.
fn save_pipe(
    pid: i32,
    fd: i32,
    link_path: &str,
    flags: u32,
    inode: u64,
    image: &mut ImageWriter,
    descriptions: &mut Descriptions,
) -> Result<OpenFile, DumpError> {
    let access = flags as i32 & libc::O_ACCMODE;
    if access == libc::O_RDWR {
        return Err(unsupported(
            pid,
            fd,
            link_path,
            "a pipe opened for both reading and writing",
        ));
    }
    let io_error = |source: std::io::Error| DumpError::Io {
        path: link_path.into(),
        source,
    };
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(link_path)
        .map_err(io_error)?;
    // SAFETY: F_GETPIPE_SZ on a valid pipe fd has no memory effects.
    let capacity = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if capacity < 0 {
        return Err(io_error(std::io::Error::last_os_error()));
    }

    let mut data = None;
    if !descriptions.pipes.contains(&inode) {
        descriptions.pipes.push(inode);
        let bytes = peek_pipe(&reader, capacity).map_err(io_error)?;
        if !bytes.is_empty() {
            let name = descriptions.next_data_file();
            let mut writer = image.data_writer(&name, RecordKind::FileData)?;
            writer.write(&bytes)?;
            image.finish_data(writer)?;
            data = Some(name);
        }
    }
    Ok(OpenFile::Pipe {
        inode,
        write_end: access == libc::O_WRONLY,
        flags,
        capacity: capacity as u64,
        data,
    })
}

/// Returns a copy of the bytes buffered in the pipe that `reader` reads.
fn peek_pipe(reader: &File, capacity: i32) -> std::io::Result<Vec<u8>> {
    let mut buffered: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the valid pointer.
    if unsafe { libc::ioctl(reader.as_raw_fd(), libc::FIONREAD, &mut buffered) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if buffered <= 0 {
        return Ok(Vec::new());
    }
    let (copy_read, copy_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: F_SETPIPE_SZ on our own pipe; the size is the source's capacity.
    if unsafe { libc::fcntl(copy_write.as_raw_fd(), libc::F_SETPIPE_SZ, capacity) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: tee(2) between two valid pipe fds, no memory arguments.
    let copied = unsafe {
        libc::tee(
            reader.as_raw_fd(),
            copy_write.as_raw_fd(),
            buffered as usize,
            libc::SPLICE_F_NONBLOCK,
        )
    };
    if copied < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(copy_write);
    let mut bytes = Vec::with_capacity(copied as usize);
    File::from(copy_read).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Copies a deleted file's contents into a file-data file of the image.
fn save_content(link_path: &str, name: &str, image: &mut ImageWriter) -> Result<(), DumpError> {
    let mut source = File::open(link_path).map_err(|source| DumpError::Io {
        path: link_path.into(),
        source,
    })?;
    let mut writer = image.data_writer(name, RecordKind::FileData)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = source.read(&mut buf).map_err(|source| DumpError::Io {
            path: link_path.into(),
            source,
        })?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
    }
    image.finish_data(writer)?;
    Ok(())
}

impl Descriptions {
    /// Rejects a Unix socket connected to a socket that no process of the
    /// tree has open, because after restore that socket would be gone. The
    /// message names the process that has the other socket open.
    pub fn check_socket_peers(&self) -> Result<(), DumpError> {
        for &(pid, fd, inode, peer) in &self.sockets {
            let Some(peer) = peer else { continue };
            if !self.sockets.iter().any(|&(_, _, other, _)| other == peer) {
                let whereabouts = crate::dump::socket::locate_socket(peer);
                return Err(DumpError::Unsupported {
                    pid,
                    reason: format!(
                        "fd {fd} (socket:[{inode}]) has a connection with socket:[{peer}], {whereabouts}; \
                         dump a common ancestor of both ends, or close the connection"
                    ),
                });
            }
        }
        Ok(())
    }
}
