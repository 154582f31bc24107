//! The stasis checkpoint image format.
//!
//! An image is a directory of files, each starting with a 32-byte header:
//! CBOR record files (manifest, processes, memory maps, fd tables, the IPC
//! namespace) and raw data files (memory pages, contents of deleted files
//! and shared memory). The manifest, written last, lists every other file
//! with its size and BLAKE3 hash.
//! [`format`](mod@format) describes the byte layout, and docs/IMAGE-FORMAT.md in the
//! repository describes the whole format.
//!
//! [`ImageWriter`] writes an image and [`Image`] reads one. Reading treats
//! every file as untrusted: sizes are capped, headers, sizes and hashes are
//! checked, and decoded records are checked by [`validate`] before use.

pub mod bytes;
pub mod chunks;
pub mod crypto;
mod error;
pub mod format;
mod json;
mod reader;
pub mod records;
pub mod time;
pub mod validate;
mod writer;

pub use bytes::Bytes;
pub use crypto::ImageKey;
pub use error::ImageError;
pub use format::{FORMAT_VERSION, HEADER_SIZE, MANIFEST_NAME, PAGE_DATA_OFFSET, PAGE_SIZE};
pub use json::{decode_record_file, encode_record_json};
#[cfg(feature = "bench")]
pub use reader::bench;
pub use reader::{DataFile, DataReader, Image};
pub use records::*;
pub use validate::validate_memory_map;
pub use writer::{DataWriter, ImageWriter};
