//! Saving open file descriptors.
//!
//! Regular files and directories are saved by path with their position and
//! flags, and with size and mtime so restore can tell whether they changed.
//! A regular file deleted while open has its contents copied into the image.
//! Character devices are saved by path; a terminal only with --shell-job.
//! Any other kind of fd stops the dump with an error naming it.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use stasis_image::{Fd, FdTable, ImageWriter, OpenFile, RecordKind};
use stasis_linux::proc;

use crate::error::{DumpError, DumpStep};
use crate::file_identity;

/// Major numbers of terminal devices: /dev/tty*, /dev/console, /dev/ptmx
/// and /dev/pts/* (devices.txt in the kernel documentation).
const TTY_MAJORS: [u64; 5] = [4, 5, 136, 137, 138];

/// Reads every fd of `pid`; contents of deleted files go into `image`.
pub fn collect(pid: i32, shell_job: bool, image: &mut ImageWriter) -> Result<FdTable, DumpError> {
    let mut fds = Vec::new();
    let mut data_files = 0u32;
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

        let file = if kind.is_file() {
            let deleted = link.ends_with(" (deleted)");
            let path = link.trim_end_matches(" (deleted)").to_owned();
            let content = if deleted {
                data_files += 1;
                Some(save_content(&link_path, data_files, image)?)
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
        } else {
            return Err(unsupported(
                pid,
                fd,
                &link,
                "of a kind stasis cannot save yet",
            ));
        };
        fds.push(Fd { fd, cloexec, file });
    }
    Ok(FdTable { pid, fds })
}

fn unsupported(pid: i32, fd: i32, link: &str, what: &str) -> DumpError {
    DumpError::Unsupported {
        pid,
        reason: format!("fd {fd} ({link}) is {what}"),
    }
}

/// Copies a deleted file's contents into a file-data file of the image.
fn save_content(link_path: &str, index: u32, image: &mut ImageWriter) -> Result<String, DumpError> {
    let name = stasis_image::format::file_data_file_name(index);
    let mut source = File::open(link_path).map_err(|source| DumpError::Io {
        path: link_path.into(),
        source,
    })?;
    let mut writer = image.data_writer(&name, RecordKind::FileData)?;
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
    Ok(name)
}
