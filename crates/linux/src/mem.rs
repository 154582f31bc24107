//! Reading and writing another process's memory.

use std::io::{IoSlice, IoSliceMut};

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;

use crate::error::{LinuxError, Result};

/// Copies `buf.len()` bytes at `addr` of `pid` into `buf` with
/// process_vm_readv, which copies once and honors the mapping's protection.
pub fn read(pid: i32, addr: u64, buf: &mut [u8]) -> Result<()> {
    let len = buf.len();
    let mut done = 0;
    while done < len {
        let remote = [RemoteIoVec {
            base: (addr as usize) + done,
            len: len - done,
        }];
        let mut local = [IoSliceMut::new(&mut buf[done..])];
        match process_vm_readv(Pid::from_raw(pid), &mut local, &remote) {
            Ok(0) => {
                return Err(LinuxError::Memory {
                    pid,
                    addr: addr + done as u64,
                    len: len - done,
                    errno: Errno::EFAULT,
                })
            }
            Ok(n) => done += n,
            Err(errno) => {
                return Err(LinuxError::Memory {
                    pid,
                    addr: addr + done as u64,
                    len: len - done,
                    errno,
                })
            }
        }
    }
    Ok(())
}

/// Reads through /proc/PID/mem, which also reaches pages whose protection
/// forbids reading (PROT_NONE, execute-only), at the cost of a bounce copy in
/// the kernel.
pub fn read_forced(pid: i32, addr: u64, buf: &mut [u8]) -> Result<()> {
    use std::os::unix::fs::FileExt;

    let path = format!("/proc/{pid}/mem");
    let file = std::fs::File::open(&path).map_err(|source| LinuxError::Io {
        path: path.clone().into(),
        source,
    })?;
    file.read_exact_at(buf, addr)
        .map_err(|source| LinuxError::Memory {
            pid,
            addr,
            len: buf.len(),
            errno: Errno::from_raw(source.raw_os_error().unwrap_or(libc::EIO)),
        })
}

/// Copies `data` to `addr` in `pid` with process_vm_writev.
pub fn write(pid: i32, addr: u64, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        let remote = [RemoteIoVec {
            base: (addr as usize) + done,
            len: data.len() - done,
        }];
        let local = [IoSlice::new(&data[done..])];
        match process_vm_writev(Pid::from_raw(pid), &local, &remote) {
            Ok(0) => {
                return Err(LinuxError::Memory {
                    pid,
                    addr: addr + done as u64,
                    len: data.len() - done,
                    errno: Errno::EFAULT,
                })
            }
            Ok(n) => done += n,
            Err(errno) => {
                return Err(LinuxError::Memory {
                    pid,
                    addr: addr + done as u64,
                    len: data.len() - done,
                    errno,
                })
            }
        }
    }
    Ok(())
}
