//! Opening, in stasis, every file the restored process needs, and checking
//! that each is the file that was dumped.
//!
//! The files are opened before the new process is created, at fd numbers
//! above any that the process uses, so the process inherits them. Inside
//! it, they are then mapped or moved with dup3 to their recorded numbers,
//! and every other inherited fd is closed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use stasis_image::{
    Fd, FdTable, FileIdentity, Image, MemoryMap, OpenFile, Process, RecordKind, VmaKind,
};
use tracing::debug;

use crate::error::RestoreError;

/// Flags that are replayed when a file is opened again. Creation flags
/// (O_CREAT, O_EXCL, O_TRUNC) and O_NOCTTY are left out on purpose.
/// Largest saved socket receive queue that a restore sends back, in bytes:
/// far above any socket buffer the kernel allows.
const MAX_QUEUE_BYTES: u64 = 1 << 30;

const REOPEN_FLAGS: i32 = libc::O_ACCMODE
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_SYNC
    | libc::O_DIRECT
    | libc::O_NOATIME
    | libc::O_LARGEFILE
    | libc::O_PATH
    | libc::O_DIRECTORY;

/// Files opened for one process, each at an fd number above every fd
/// number the process uses.
pub struct OpenedFiles {
    /// Lowest fd number of the files stasis opened; every recorded fd is
    /// below it.
    pub base: i32,
    pub exe: OwnedFd,
    pub cwd: OwnedFd,
    /// Per file mapping: the fd to mmap, keyed by VMA start address.
    pub mappings: HashMap<u64, i32>,
    /// (recorded fd number, fd to dup3 from, close-on-exec).
    pub fds: Vec<(i32, i32, bool)>,
    /// Epoll fds of the process with the registrations to make in them,
    /// once the fds are at their recorded numbers.
    pub epolls: Vec<(i32, Vec<stasis_image::EpollTarget>)>,
    /// Keeps every fd open until the process has inherited it.
    _owned: Vec<OwnedFd>,
}

pub struct FileCheck {
    /// Accept files whose size or mtime changed since the dump.
    pub skip_checks: bool,
}

/// Open file descriptions of the whole tree, keyed by their number in the
/// image, so that fds sharing a description in the image share one here.
pub struct Descriptions {
    /// Lowest fd number that stasis may use: above every recorded fd.
    pub base: i32,
    by_id: HashMap<u32, OwnedFd>,
    pipes: HashMap<u64, PipeEnds>,
    /// Recreated shared memory objects by their inode in the image.
    shared_memory: HashMap<u64, OwnedFd>,
    /// Both ends of recreated Unix socket pairs, by socket inode in the
    /// image, with whether the end's receive queue was refilled.
    socket_ends: HashMap<u64, (OwnedFd, bool)>,
    /// Records of the Unix sockets of the tree, by inode.
    unix_sockets: HashMap<u64, stasis_image::SocketRecord>,
    /// Datagram sockets connected to a socket that is not connected back,
    /// to be connected once every socket is open: (socket, peer) inodes.
    one_way: Vec<(u64, u64)>,
    /// Listening Unix sockets that had connections waiting to be accepted.
    listeners_with_pending: Vec<stasis_image::SocketRecord>,
    /// Sockets without a peer that have been opened, by their inode in the
    /// image.
    opened_sockets: HashMap<u64, i32>,
    unshared: Vec<OwnedFd>,
}

/// The two ends of a recreated pipe; each is handed out once, and later
/// descriptions of the same end are opened anew through /proc/self/fd.
struct PipeEnds {
    read: OwnedFd,
    write: OwnedFd,
    read_taken: bool,
    write_taken: bool,
}

impl Descriptions {
    /// Prepares a pool for the fd tables of a tree.
    pub fn new(tables: &[&FdTable]) -> Descriptions {
        let highest = tables
            .iter()
            .flat_map(|table| table.fds.iter().map(|fd| fd.fd))
            .max()
            .unwrap_or(0);
        let unix_sockets = tables
            .iter()
            .flat_map(|table| table.fds.iter())
            .filter_map(|entry| match &entry.file {
                OpenFile::Socket(record) if record.family == libc::AF_UNIX => {
                    Some((record.inode, record.clone()))
                }
                _ => None,
            })
            .collect();
        let mut listeners_with_pending: Vec<stasis_image::SocketRecord> = tables
            .iter()
            .flat_map(|table| table.fds.iter())
            .filter_map(|entry| match &entry.file {
                OpenFile::Socket(record) if !record.pending.is_empty() => Some(record.clone()),
                _ => None,
            })
            .collect();
        listeners_with_pending.sort_by_key(|record| record.inode);
        listeners_with_pending.dedup_by_key(|record| record.inode);
        Descriptions {
            base: (highest + 1).max(100),
            by_id: HashMap::new(),
            pipes: HashMap::new(),
            shared_memory: HashMap::new(),
            socket_ends: HashMap::new(),
            unix_sockets,
            one_way: Vec::new(),
            listeners_with_pending,
            opened_sockets: HashMap::new(),
            unshared: Vec::new(),
        }
    }

    /// Creates every connection between an accepted Unix socket and its
    /// peer. This runs before any other socket is opened, because the
    /// connection goes through a temporary listening socket with the
    /// address of the original one, and a restored socket bound to the
    /// same abstract name would make that bind fail.
    pub fn connect_unix_sockets(&mut self) -> Result<(), RestoreError> {
        let mut accepted: Vec<&stasis_image::SocketRecord> = self
            .unix_sockets
            .values()
            .filter(|record| record.accepted)
            .collect();
        accepted.sort_by_key(|record| record.inode);
        for record in accepted {
            let peer = record.peer.unwrap_or(0);
            let client = self.unix_sockets.get(&peer).ok_or_else(|| RestoreError::Unsupported {
                reason: format!(
                    "socket:[{}] is connected to socket:[{peer}], which no fd table of the image lists",
                    record.inode
                ),
            })?;
            if client.accepted || client.peer != Some(record.inode) {
                return Err(RestoreError::Unsupported {
                    reason: format!(
                        "socket:[{}] and socket:[{peer}] are not the two ends of one accepted connection",
                        record.inode
                    ),
                });
            }
            let (server_end, client_end) = crate::restore::socket::connect_pair(record, client)?;
            let path = Path::new("an accepted Unix socket");
            let server_end = move_above(server_end, self.base, path)?;
            let client_end = move_above(client_end, self.base, path)?;
            self.socket_ends.insert(record.inode, (server_end, false));
            self.socket_ends.insert(peer, (client_end, false));
        }
        Ok(())
    }

    /// Returns the fd that refers to the description of `entry`, opening it on
    /// first use.
    fn get(&mut self, image: &Image, entry: &Fd, check: &FileCheck) -> Result<i32, RestoreError> {
        if let Some(fd) = self.by_id.get(&entry.description) {
            return Ok(fd.as_raw_fd());
        }
        let fd = match &entry.file {
            OpenFile::Socket(record) if record.peer.is_some() => {
                self.connected_socket(image, record)?
            }
            OpenFile::Pipe {
                inode,
                write_end,
                flags,
                capacity,
                data,
            } => self.pipe_end(
                image,
                *inode,
                *write_end,
                *flags,
                *capacity,
                data.as_deref(),
            )?,
            other => open_fd(image, other, check, self.base)?,
        };
        let raw = fd.as_raw_fd();
        if let OpenFile::Socket(record) = &entry.file {
            if record.peer.is_none() {
                self.opened_sockets.insert(record.inode, raw);
            }
        }
        if entry.description == 0 {
            self.unshared.push(fd);
        } else {
            self.by_id.insert(entry.description, fd);
        }
        Ok(raw)
    }

    /// Finishes the Unix sockets once every socket of the tree is open:
    /// connects the clients waiting to be accepted and the datagram
    /// sockets connected one way, then refills the datagram queues.
    pub fn finish_unix_sockets(&self, image: &Image) -> Result<(), RestoreError> {
        self.connect_pending()?;
        for &(inode, peer) in &self.one_way {
            let peer_record = self.unix_sockets.get(&peer).ok_or_else(|| RestoreError::Unsupported {
                reason: format!(
                    "socket:[{inode}] is connected to socket:[{peer}], which no fd table of the image lists"
                ),
            })?;
            let address = &peer_record.address.0;
            // SAFETY: address is a sockaddr of address.len() bytes, as
            // getsockname returned it.
            let ret = unsafe {
                libc::connect(
                    self.socket_fd(inode)?,
                    address.as_ptr().cast(),
                    address.len() as libc::socklen_t,
                )
            };
            if ret < 0 {
                return Err(RestoreError::Open {
                    path: format!("socket:[{inode}] (connect to socket:[{peer}])"),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        let mut receivers: Vec<&stasis_image::SocketRecord> = self
            .unix_sockets
            .values()
            .filter(|record| record.socket_type == libc::SOCK_DGRAM && record.queued.is_some())
            .collect();
        receivers.sort_by_key(|record| record.inode);
        for receiver in receivers {
            self.fill_datagrams(image, receiver)?;
        }
        Ok(())
    }

    /// Returns the fd that stasis holds for the socket with `inode` in
    /// the image.
    fn socket_fd(&self, inode: u64) -> Result<i32, RestoreError> {
        if let Some((fd, _)) = self.socket_ends.get(&inode) {
            return Ok(fd.as_raw_fd());
        }
        self.opened_sockets
            .get(&inode)
            .copied()
            .ok_or_else(|| RestoreError::Unsupported {
                reason: format!("socket:[{inode}] of the image was not opened"),
            })
    }

    /// Sends each saved datagram of `receiver` from the socket that sent
    /// it: with send(2) from a sender connected to the receiver, with
    /// sendto(2) to the receiver's address otherwise.
    fn fill_datagrams(
        &self,
        image: &Image,
        receiver: &stasis_image::SocketRecord,
    ) -> Result<(), RestoreError> {
        let Some(name) = &receiver.queued else {
            return Ok(());
        };
        let data = image
            .data_reader(name, RecordKind::FileData)?
            .read_all(MAX_QUEUE_BYTES)?;
        let datagrams = split_datagrams(&data, name)?;
        for (index, datagram) in datagrams.iter().enumerate() {
            let sender = match receiver.senders.get(index) {
                Some(&sender) => sender,
                None => receiver.peer.ok_or_else(|| RestoreError::Unsupported {
                    reason: format!(
                        "the saved socket queue {name} names no sender for datagram {index}"
                    ),
                })?,
            };
            let sender_fd = self.socket_fd(sender)?;
            make_send_room(sender_fd, data.len());
            let connected = self
                .unix_sockets
                .get(&sender)
                .is_some_and(|record| record.peer == Some(receiver.inode));
            let address = &receiver.address.0;
            // SAFETY: sends from a live buffer of its length, to a sockaddr
            // of address.len() bytes or, when connected, to the peer.
            let sent = unsafe {
                if connected {
                    libc::send(
                        sender_fd,
                        datagram.as_ptr().cast(),
                        datagram.len(),
                        libc::MSG_DONTWAIT,
                    )
                } else {
                    libc::sendto(
                        sender_fd,
                        datagram.as_ptr().cast(),
                        datagram.len(),
                        libc::MSG_DONTWAIT,
                        address.as_ptr().cast(),
                        address.len() as libc::socklen_t,
                    )
                }
            };
            if sent < 0 || sent as usize != datagram.len() {
                return Err(RestoreError::Open {
                    path: format!(
                        "datagram {index} of socket:[{}] (send from socket:[{sender}])",
                        receiver.inode
                    ),
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }

    /// Connects the clients whose connections waited in the queue of a
    /// listening Unix socket to the restored listening socket, in the
    /// saved order, so that the restored process accepts them.
    fn connect_pending(&self) -> Result<(), RestoreError> {
        for listener in &self.listeners_with_pending {
            let address = &listener.address.0;
            for client in &listener.pending {
                let Some(&fd) = self.opened_sockets.get(client) else {
                    return Err(RestoreError::Unsupported {
                        reason: format!(
                            "socket:[{client}], waiting to be accepted by socket:[{}], is not an unconnected socket of the image",
                            listener.inode
                        ),
                    });
                };
                // NOTE: an unnamed client that set SO_PASSCRED after its
                // connect is bound to a generated name here, because its
                // options are set before this connect.
                // SAFETY: address is a sockaddr of address.len() bytes, as
                // getsockname returned it.
                let ret = unsafe {
                    libc::connect(
                        fd,
                        address.as_ptr().cast(),
                        address.len() as libc::socklen_t,
                    )
                };
                if ret < 0 {
                    return Err(RestoreError::Open {
                        path: format!(
                            "socket:[{client}] (connect to the listening socket socket:[{}])",
                            listener.inode
                        ),
                        source: std::io::Error::last_os_error(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Returns one end of a connected Unix socket. The ends of an accepted
    /// connection exist already; otherwise the first end seen creates both
    /// with socketpair(2). Each end's saved receive queue is sent from the
    /// other end when its own record is seen.
    fn connected_socket(
        &mut self,
        image: &Image,
        record: &stasis_image::SocketRecord,
    ) -> Result<OwnedFd, RestoreError> {
        let peer = record.peer.unwrap_or(0);
        let failed = |source: std::io::Error| RestoreError::Open {
            path: format!("socket:[{}]", record.inode),
            source,
        };
        let datagram = record.socket_type == libc::SOCK_DGRAM;
        let connected_back = self
            .unix_sockets
            .get(&peer)
            .is_some_and(|peer_record| peer_record.peer == Some(record.inode));
        if datagram && !connected_back && !self.socket_ends.contains_key(&record.inode) {
            // Connected one way: bound now, connected to its peer's
            // address once the peer exists.
            let socket = crate::restore::socket::create(record)?;
            let socket = move_above(socket, self.base, Path::new("a socket"))?;
            self.socket_ends.insert(record.inode, (socket, false));
            self.one_way.push((record.inode, peer));
        }
        if !self.socket_ends.contains_key(&record.inode) {
            let peer_record = self.unix_sockets.get(&peer);
            let peer_named = peer_record.is_some_and(|peer| peer.address.0.len() > 2);
            let named = record.address.0.len() > 2 || peer_named;
            if named && record.socket_type != libc::SOCK_DGRAM {
                return Err(RestoreError::Unsupported {
                    reason: format!(
                        "socket:[{}] and its peer socket:[{peer}] are connected and named, but neither is marked accepted",
                        record.inode
                    ),
                });
            }
            let mut ends = [0; 2];
            // SAFETY: socketpair writes two fds into the array.
            if unsafe {
                libc::socketpair(
                    libc::AF_UNIX,
                    record.socket_type | libc::SOCK_CLOEXEC,
                    0,
                    ends.as_mut_ptr(),
                )
            } < 0
            {
                return Err(failed(std::io::Error::last_os_error()));
            }
            // SAFETY: both fds are new and owned from here on.
            let (mine, theirs) =
                unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
            // A datagram socket connected to a named peer is bound after
            // socketpair, which works because the ends have no address yet.
            crate::restore::socket::bind_saved_address(&mine, record)?;
            if let Some(peer_record) = peer_record {
                crate::restore::socket::bind_saved_address(&theirs, peer_record)?;
            }
            let mine = move_above(mine, self.base, Path::new("socketpair"))?;
            let theirs = move_above(theirs, self.base, Path::new("socketpair"))?;
            self.socket_ends.insert(record.inode, (mine, false));
            self.socket_ends.insert(peer, (theirs, false));
        }
        // Datagrams may have other senders than the peer, so they are
        // sent once every socket exists.
        if let (Some(name), false) = (&record.queued, datagram) {
            if !self.socket_ends[&record.inode].1 {
                let sender = self.socket_ends[&peer].0.as_raw_fd();
                fill_queue(image, name, sender, record.socket_type)?;
            }
        }
        let end = self
            .socket_ends
            .get_mut(&record.inode)
            .expect("inserted above");
        end.1 = true;
        let copy = end.0.try_clone().map_err(failed)?;
        let copy = move_above(copy, self.base, Path::new("socketpair"))?;
        crate::restore::socket::apply_options(&copy, record)?;
        Ok(copy)
    }

    /// Returns a memfd with the saved contents and seals of `object`,
    /// creating it on first use, so that every process that mapped the
    /// object maps the same memfd.
    fn shared_memory(
        &mut self,
        image: &Image,
        object: &stasis_image::SharedMemory,
    ) -> Result<i32, RestoreError> {
        if let Some(fd) = self.shared_memory.get(&object.inode) {
            return Ok(fd.as_raw_fd());
        }
        let failed = |source: std::io::Error| RestoreError::Open {
            path: format!("memfd {:?} for shared memory", object.name),
            source,
        };
        let name = std::ffi::CString::new(object.name.replace('\0', "")).unwrap_or_default();
        // SAFETY: `name` is a valid C string; memfd_create returns a new fd.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(failed(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let mut memfd = File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        memfd.set_len(object.size).map_err(failed)?;
        let data = image.data_reader(&object.contents, RecordKind::FileData)?;
        data.for_each_chunk(|chunk| memfd.write_all(chunk).map_err(failed))?;
        if object.seals != 0 {
            // SAFETY: F_ADD_SEALS on our own memfd with the saved bits.
            if unsafe {
                libc::fcntl(
                    memfd.as_raw_fd(),
                    libc::F_ADD_SEALS,
                    object.seals as libc::c_int,
                )
            } < 0
            {
                return Err(failed(std::io::Error::last_os_error()));
            }
        }
        let fd = move_above(memfd.into(), self.base, Path::new("memfd"))?;
        let raw = fd.as_raw_fd();
        self.shared_memory.insert(object.inode, fd);
        Ok(raw)
    }

    fn pipe_end(
        &mut self,
        image: &Image,
        inode: u64,
        write_end: bool,
        flags: u32,
        capacity: u64,
        data: Option<&str>,
    ) -> Result<OwnedFd, RestoreError> {
        if !self.pipes.contains_key(&inode) {
            let ends = create_pipe(image, capacity, data, self.base)?;
            self.pipes.insert(inode, ends);
        }
        let ends = self.pipes.get_mut(&inode).expect("inserted above");
        let (end, taken) = if write_end {
            (&ends.write, &mut ends.write_taken)
        } else {
            (&ends.read, &mut ends.read_taken)
        };
        let fd = if *taken {
            // Another description of the same end: opening the pipe through
            // /proc gives a new description of it.
            let access = if write_end {
                libc::O_WRONLY
            } else {
                libc::O_RDONLY
            };
            let path = format!("/proc/self/fd/{}", end.as_raw_fd());
            open_at(Path::new(&path), access | libc::O_NONBLOCK, self.base)?
        } else {
            *taken = true;
            // try_clone would take the lowest free number, which may be one
            // of the recorded fd numbers; the copy must stay above them.
            let copy = end.try_clone().map_err(|source| RestoreError::Open {
                path: format!("pipe:[{inode}]"),
                source,
            })?;
            move_above(copy, self.base, Path::new("pipe"))?
        };
        let status = flags as i32 & (libc::O_NONBLOCK | libc::O_DIRECT);
        // SAFETY: F_SETFL on a valid fd with status flags only.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, status) } < 0 {
            return Err(RestoreError::Open {
                path: format!("pipe:[{inode}]"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(fd)
    }
}

/// Creates a pipe with `capacity` bytes of buffer and the saved bytes in it.
fn create_pipe(
    image: &Image,
    capacity: u64,
    data: Option<&str>,
    base: i32,
) -> Result<PipeEnds, RestoreError> {
    let pipe_error = |source: std::io::Error| RestoreError::Open {
        path: "a new pipe".into(),
        source,
    };
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| pipe_error(errno.into()))?;
    // SAFETY: F_SETPIPE_SZ on our own pipe.
    if unsafe {
        libc::fcntl(
            write.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            capacity as libc::c_int,
        )
    } < 0
    {
        return Err(pipe_error(std::io::Error::last_os_error()));
    }
    if let Some(name) = data {
        let data = image.data_reader(name, RecordKind::FileData)?;
        let mut sink = File::from(write.try_clone().map_err(pipe_error)?);
        data.for_each_chunk(|chunk| {
            sink.write_all(chunk).map_err(|source| RestoreError::Open {
                path: data.path().display().to_string(),
                source,
            })
        })?;
    }
    Ok(PipeEnds {
        read: move_above(read, base, Path::new("pipe"))?,
        write: move_above(write, base, Path::new("pipe"))?,
        read_taken: false,
        write_taken: false,
    })
}

impl OpenedFiles {
    pub fn open(
        image: &Image,
        process: &Process,
        map: &MemoryMap,
        table: &FdTable,
        check: &FileCheck,
        descriptions: &mut Descriptions,
    ) -> Result<OpenedFiles, RestoreError> {
        let base = descriptions.base;

        check_identity(&process.exe, check)?;
        let exe = open_at(Path::new(&process.exe.path), libc::O_RDONLY, base)?;
        let cwd = open_at(
            Path::new(&process.cwd),
            libc::O_PATH | libc::O_DIRECTORY,
            base,
        )?;

        let mut owned = Vec::new();
        let mut by_path: HashMap<(String, bool), i32> = HashMap::new();
        let mut mappings = HashMap::new();
        for vma in map
            .vmas
            .iter()
            .filter(|vma| vma.kind == VmaKind::SharedMemory)
        {
            let inode = vma.file.as_ref().map(|file| file.ino);
            let object = map
                .shared_memory
                .iter()
                .find(|object| Some(object.inode) == inode)
                .ok_or_else(|| RestoreError::Unsupported {
                    reason: format!(
                        "the image lists no shared memory object for the mapping at {:x}",
                        vma.start
                    ),
                })?;
            let fd = descriptions.shared_memory(image, object)?;
            mappings.insert(vma.start, fd);
        }
        for vma in map.vmas.iter().filter(|vma| vma.kind == VmaKind::File) {
            let Some(identity) = &vma.file else { continue };
            let writable = vma.shared && vma.prot & libc::PROT_WRITE as u32 != 0;
            let key = (identity.path.clone(), writable);
            let fd = match by_path.get(&key) {
                Some(&fd) => fd,
                None => {
                    check_identity(identity, check)?;
                    let flags = if writable {
                        libc::O_RDWR
                    } else {
                        libc::O_RDONLY
                    };
                    let fd = open_at(Path::new(&identity.path), flags, base)?;
                    let raw = fd.as_raw_fd();
                    owned.push(fd);
                    by_path.insert(key, raw);
                    raw
                }
            };
            mappings.insert(vma.start, fd);
        }

        let mut fds = Vec::new();
        let mut epolls = Vec::new();
        for entry in &table.fds {
            let fd = descriptions.get(image, entry, check)?;
            fds.push((entry.fd, fd, entry.cloexec));
            if let OpenFile::Epoll { targets, .. } = &entry.file {
                epolls.push((entry.fd, targets.clone()));
            }
        }

        Ok(OpenedFiles {
            base,
            exe,
            cwd,
            mappings,
            fds,
            epolls,
            _owned: owned,
        })
    }
}

/// Opens `path` and moves the fd to the lowest free number >= `base`.
fn open_at(path: &Path, flags: i32, base: i32) -> Result<OwnedFd, RestoreError> {
    let file = OpenOptions::new()
        .read(flags & libc::O_ACCMODE != libc::O_WRONLY)
        .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
        .custom_flags(flags & !libc::O_ACCMODE)
        .open(path);
    // O_PATH opens ignore the access mode, but OpenOptions requires one.
    let file = file.map_err(|source| RestoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    move_above(file.into(), base, path)
}

fn move_above(fd: OwnedFd, base: i32, path: &Path) -> Result<OwnedFd, RestoreError> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd or -1.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, base) };
    if moved < 0 {
        return Err(RestoreError::Open {
            path: path.display().to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `moved` is a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn open_fd(
    image: &Image,
    file: &OpenFile,
    check: &FileCheck,
    base: i32,
) -> Result<OwnedFd, RestoreError> {
    match file {
        OpenFile::Regular {
            identity,
            flags,
            position,
            deleted: true,
            content,
        } => {
            let fd = recreate_deleted(image, identity, content.as_deref(), *flags as i32, base)?;
            seek(&fd, *position, &identity.path)?;
            Ok(fd)
        }
        OpenFile::Regular {
            identity,
            flags,
            position,
            ..
        } => {
            check_identity(identity, check)?;
            let fd = open_at(
                Path::new(&identity.path),
                *flags as i32 & REOPEN_FLAGS,
                base,
            )?;
            if *flags as i32 & libc::O_PATH == 0 {
                seek(&fd, *position, &identity.path)?;
            }
            Ok(fd)
        }
        OpenFile::Directory {
            identity,
            flags,
            position,
        } => {
            let fd = open_at(
                Path::new(&identity.path),
                *flags as i32 & REOPEN_FLAGS | libc::O_DIRECTORY,
                base,
            )?;
            if *flags as i32 & libc::O_PATH == 0 && *position != 0 {
                seek(&fd, *position, &identity.path)?;
            }
            Ok(fd)
        }
        OpenFile::CharDevice { path, rdev, flags } => {
            let fd = open_at(Path::new(path), *flags as i32 & REOPEN_FLAGS, base)?;
            let meta = File::from(fd.try_clone().map_err(|source| RestoreError::Open {
                path: path.clone(),
                source,
            })?)
            .metadata()
            .map_err(|source| RestoreError::Open {
                path: path.clone(),
                source,
            })?;
            if meta.rdev() != *rdev {
                return Err(RestoreError::FileChanged {
                    path: path.clone(),
                    field: "device number",
                    recorded: format!("{}:{}", libc::major(*rdev), libc::minor(*rdev)),
                    current: format!("{}:{}", libc::major(meta.rdev()), libc::minor(meta.rdev())),
                });
            }
            Ok(fd)
        }
        OpenFile::Socket(record) => {
            let fd = crate::restore::socket::create(record)?;
            move_above(fd, base, Path::new("a socket"))
        }
        OpenFile::EventFd { .. }
        | OpenFile::TimerFd { .. }
        | OpenFile::SignalFd { .. }
        | OpenFile::Epoll { .. }
        | OpenFile::Inotify { .. } => {
            let fd = crate::restore::anon::create(file)?;
            move_above(fd, base, Path::new("an anonymous-inode file"))
        }
        OpenFile::Pipe { inode, .. } => Err(RestoreError::Unsupported {
            reason: format!("pipe:[{inode}] must be opened through the description pool"),
        }),
        OpenFile::Terminal { path, .. } => {
            // The process joins the terminal that runs the restore.
            // SAFETY: isatty only inspects the fd number.
            if unsafe { libc::isatty(0) } != 1 {
                return Err(RestoreError::NeedsTerminal { path: path.clone() });
            }
            // SAFETY: fd 0 is open (isatty succeeded); the duplicate is owned here.
            let stdin = unsafe { std::os::fd::BorrowedFd::borrow_raw(0) };
            let dup = stdin
                .try_clone_to_owned()
                .map_err(|source| RestoreError::Open {
                    path: "standard input".into(),
                    source,
                })?;
            move_above(dup, base, Path::new("standard input"))
        }
    }
}

fn seek(fd: &OwnedFd, position: u64, path: &str) -> Result<(), RestoreError> {
    let mut file = File::from(fd.try_clone().map_err(|source| RestoreError::Open {
        path: path.to_owned(),
        source,
    })?);
    file.seek(SeekFrom::Start(position))
        .map(|_| ())
        .map_err(|source| RestoreError::Open {
            path: path.to_owned(),
            source,
        })
}

/// Creates an unnamed file (O_TMPFILE) beside the deleted original, fills
/// it with the saved contents and reopens it with the recorded flags.
fn recreate_deleted(
    image: &Image,
    identity: &FileIdentity,
    content: Option<&str>,
    flags: i32,
    base: i32,
) -> Result<OwnedFd, RestoreError> {
    let original = Path::new(&identity.path);
    let dir = original
        .parent()
        .filter(|dir| dir.is_dir())
        .unwrap_or(Path::new("/tmp"));
    let mut tmp = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(identity.mode & 0o7777)
        .open(dir)
        .map_err(|source| RestoreError::Open {
            path: format!(
                "{} (O_TMPFILE for deleted {})",
                dir.display(),
                identity.path
            ),
            source,
        })?;
    if let Some(name) = content {
        let data = image.data_reader(name, RecordKind::FileData)?;
        let failed = |source| RestoreError::Open {
            path: data.path().display().to_string(),
            source,
        };
        data.for_each_chunk(|chunk| tmp.write_all(chunk).map_err(failed))?;
        tmp.flush().map_err(failed)?;
    }
    let reopen = format!("/proc/self/fd/{}", tmp.as_raw_fd());
    debug!(path = %identity.path, "recreated deleted file");
    open_at(Path::new(&reopen), flags & REOPEN_FLAGS, base)
}

/// Checks that the file at `identity.path` has the recorded size and mtime.
fn check_identity(identity: &FileIdentity, check: &FileCheck) -> Result<(), RestoreError> {
    let meta = std::fs::metadata(&identity.path).map_err(|source| RestoreError::Open {
        path: identity.path.clone(),
        source,
    })?;
    if check.skip_checks {
        return Ok(());
    }
    if meta.size() != identity.size {
        return Err(RestoreError::FileChanged {
            path: identity.path.clone(),
            field: "size",
            recorded: identity.size.to_string(),
            current: meta.size().to_string(),
        });
    }
    let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
    if mtime_ns != identity.mtime_ns {
        return Err(RestoreError::FileChanged {
            path: identity.path.clone(),
            field: "mtime (ns)",
            recorded: identity.mtime_ns.to_string(),
            current: mtime_ns.to_string(),
        });
    }
    Ok(())
}

/// Sends the saved receive queue of a socket from its peer `sender`: the
/// bytes of a stream socket, or each saved datagram.
fn fill_queue(
    image: &Image,
    name: &str,
    sender: i32,
    socket_type: i32,
) -> Result<(), RestoreError> {
    let data = image
        .data_reader(name, RecordKind::FileData)?
        .read_all(MAX_QUEUE_BYTES)?;

    make_send_room(sender, data.len());
    let send = |bytes: &[u8]| -> Result<(), RestoreError> {
        // SAFETY: sends from a live buffer of its length.
        let sent = unsafe {
            libc::send(
                sender,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 || sent as usize != bytes.len() {
            return Err(RestoreError::Open {
                path: "a restored socket's receive queue".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    };
    if socket_type == libc::SOCK_STREAM {
        return send(&data);
    }
    for message in split_datagrams(&data, name)? {
        send(message)?;
    }
    Ok(())
}

/// Splits a saved queue of messages, each a little-endian u32 length and
/// its bytes.
fn split_datagrams<'a>(data: &'a [u8], name: &str) -> Result<Vec<&'a [u8]>, RestoreError> {
    let mut messages = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let message = data
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| RestoreError::Unsupported {
                reason: format!("the saved socket queue {name} ends inside a datagram"),
            })?;
        messages.push(message);
        at += 4 + len;
    }
    Ok(messages)
}

/// Enlarges the send buffer of `sender` for `bytes` of saved queue. The
/// queue fit the original receiver, but the new sender's buffer may be
/// smaller, and SO_SNDBUFFORCE (root) makes room for all of it. Each queued
/// message costs about a kilobyte of buffer beyond its bytes, so the room
/// is generous.
fn make_send_room(sender: i32, bytes: usize) {
    let room = (bytes.min(i32::MAX as usize) as libc::c_int)
        .saturating_mul(4)
        .max(8 << 20);
    // SAFETY: room is a valid c_int of the size given.
    unsafe {
        libc::setsockopt(
            sender,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            (&room as *const libc::c_int).cast(),
            4,
        );
    }
}
