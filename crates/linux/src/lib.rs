//! Linux interfaces that checkpoint and restore are built from: ptrace,
//! system calls run inside a stopped process, /proc readers, PAGEMAP_SCAN.
//!
//! Nothing here reads or writes images; the engine combines these pieces.

pub mod error;
pub mod mem;
pub mod pagemap;
pub mod proc;
pub mod ptrace;
pub mod remote;
pub mod sysv;
pub mod unix_diag;

pub use error::{LinuxError, Result};
