//! The byte layout of image files: the common header, record files and
//! data files.
//!
//! An image is a directory of files. Every file starts with the same
//! 32-byte header, with all integers little-endian:
//!
//! ```text
//! offset  size  field
//!      0     8  magic, b"\x89STASIS\n"
//!      8     4  format version (u32), currently 1
//!     12     4  record kind (u32, RecordKind as u32)
//!     16     8  payload length in bytes (u64)
//!     24     8  payload checksum (u64): in record files the first 8
//!                  bytes of BLAKE3(payload) read as little-endian, so a
//!                  damaged manifest is caught without a signature; zero
//!                  in data files, whose hashes are in the manifest
//! ```
//!
//! A record file (`manifest`, `process-PID`, `mm-PID`, `fds-PID`, `ipc`) is the
//! header followed by the payload, one CBOR-encoded record:
//!
//! ```text
//! 0          32                    32 + payload length = file size
//! +----------+---------------------+
//! |  header  |  CBOR record        |
//! +----------+---------------------+
//! ```
//!
//! A data file (`pages-PID` with saved memory pages, `file-N` with the
//! contents of a deleted file) is the header, zero padding up to
//! [`PAGE_DATA_OFFSET`], then the raw data. The data starts on a page
//! boundary so that it can be read into a process with `pread` or mapped
//! with `mmap`:
//!
//! ```text
//! 0          32              4096                  4096 + payload length
//! +----------+---------------+---------------------+
//! |  header  |  zero padding |  data               |
//! +----------+---------------+---------------------+
//! ```
//!
//! The payload length of a pages file is a multiple of [`PAGE_SIZE`].

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::ImageError;
use crate::records::RecordKind;

/// The image format version that this crate writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the header at the start of every image file, in bytes.
pub const HEADER_SIZE: u64 = 32;
/// File offset of the first data byte in pages and file data files.
pub const PAGE_DATA_OFFSET: u64 = 4096;
/// Page size that page runs and pages files are aligned to, in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// File name of the manifest inside an image directory.
pub const MANIFEST_NAME: &str = "manifest";
/// File name the manifest is written to before it is renamed into place.
pub const MANIFEST_TEMP_NAME: &str = "manifest.tmp";
/// File name of the seal that `stasis seal` adds to an image directory.
/// The seal is not an image file and the manifest does not list it.
pub const SEAL_FILE_NAME: &str = "seal";
/// Maximum size of a manifest file that readers accept, in bytes.
pub const MAX_MANIFEST_SIZE: u64 = 16 << 20;
/// Maximum size of any other record file that readers accept, in bytes.
pub const MAX_RECORD_SIZE: u64 = 256 << 20;
/// Maximum length of a file name inside an image, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The magic number at the start of every image file. The first byte is
/// not ASCII and the last is a newline, so text-mode transfers corrupt it
/// in a detectable way.
pub const MAGIC: [u8; 8] = *b"\x89STASIS\n";

/// The fields of a file header, after the magic number was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub kind: RecordKind,
    /// Payload length in bytes: the CBOR record of a record file, or the
    /// data after the padding of a data file.
    pub payload_len: u64,
    /// Payload checksum of a record file (see the module docs); zero for
    /// data files.
    pub checksum: u64,
}

/// Returns the header checksum of a record payload: the first 8 bytes of
/// its BLAKE3 hash as a little-endian u64.
pub fn payload_checksum(payload: &[u8]) -> u64 {
    read_u64(&blake3::hash(payload).as_bytes()[..8])
}

impl Header {
    /// Encodes the header as its 32 on-disk bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE as usize] {
        let mut bytes = [0u8; HEADER_SIZE as usize];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&self.version.to_le_bytes());
        bytes[12..16].copy_from_slice(&(self.kind as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.checksum.to_le_bytes());
        bytes
    }

    /// Returns the file size in bytes that this header implies.
    pub fn file_size(&self, path: &Path) -> Result<u64, ImageError> {
        let start = if self.kind.is_data() {
            PAGE_DATA_OFFSET
        } else {
            HEADER_SIZE
        };
        let trailer = if self.kind.is_data() {
            crate::chunks::trailer_len(self.payload_len)
        } else {
            0
        };
        start
            .checked_add(self.payload_len)
            .and_then(|size| size.checked_add(trailer))
            .ok_or_else(|| {
                ImageError::invalid(
                    path,
                    format!(
                        "payload length {} in the header is too large",
                        self.payload_len
                    ),
                )
            })
    }
}

/// Parses and checks the header at the start of `bytes`, which were read
/// from `path`.
///
/// The checks run in this order: at least 32 bytes, magic number, format
/// version (0 is invalid, newer than [`FORMAT_VERSION`] is rejected),
/// known record kind, checksum zero for data files. The caller checks the
/// kind it expects, the file size and a record file's checksum.
pub fn parse_header(bytes: &[u8], path: &Path) -> Result<Header, ImageError> {
    let Some(header) = bytes.get(..HEADER_SIZE as usize) else {
        return Err(ImageError::Truncated {
            path: path.to_path_buf(),
            expected: HEADER_SIZE,
            actual: bytes.len() as u64,
        });
    };

    if header[0..8] != MAGIC {
        return Err(ImageError::BadMagic {
            path: path.to_path_buf(),
        });
    }

    let version = read_u32(&header[8..12]);
    if version == 0 {
        return Err(ImageError::invalid(
            path,
            "format version 0 in the header is invalid",
        ));
    }
    if version > FORMAT_VERSION {
        return Err(ImageError::NewerVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }

    let kind_value = read_u32(&header[12..16]);
    let Some(kind) = RecordKind::from_u32(kind_value) else {
        return Err(ImageError::invalid(
            path,
            format!("unknown record kind {kind_value} in the header"),
        ));
    };

    let payload_len = read_u64(&header[16..24]);

    let checksum = read_u64(&header[24..32]);
    if kind.is_data() && checksum != 0 {
        return Err(ImageError::invalid(
            path,
            "the checksum field of a data file header is not zero",
        ));
    }

    Ok(Header {
        version,
        kind,
        payload_len,
        checksum,
    })
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(bytes);
    u32::from_le_bytes(array)
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    u64::from_le_bytes(array)
}

/// Checks that a header read from `path` has the kind `expected`.
pub(crate) fn expect_kind(
    header: &Header,
    expected: RecordKind,
    path: &Path,
) -> Result<(), ImageError> {
    if header.kind == expected {
        Ok(())
    } else {
        Err(ImageError::WrongKind {
            path: path.to_path_buf(),
            expected,
            found: header.kind,
        })
    }
}

/// Checks that a file of `actual` bytes has the size its header implies.
pub(crate) fn expect_size(header: &Header, actual: u64, path: &Path) -> Result<(), ImageError> {
    let expected = header.file_size(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(ImageError::size_mismatch(path, expected, actual))
    }
}

/// Parses a whole record file: checks the header, that its kind is
/// `T::KIND` and that the file size matches, then decodes the CBOR payload.
/// Returns the header and the record, without semantic validation.
pub(crate) fn decode_record_bytes<T: DeserializeOwned>(
    bytes: &[u8],
    expected: RecordKind,
    path: &Path,
) -> Result<(Header, T), ImageError> {
    let header = parse_header(bytes, path)?;
    expect_kind(&header, expected, path)?;
    expect_size(&header, bytes.len() as u64, path)?;
    let payload = &bytes[HEADER_SIZE as usize..];
    let actual = payload_checksum(payload);
    if actual != header.checksum {
        return Err(ImageError::invalid(
            path,
            format!(
                "payload checksum is {actual:016x} but the header records {:016x}; the file is damaged",
                header.checksum
            ),
        ));
    }
    let record = decode_payload(payload, path)?;
    Ok((header, record))
}

/// Decodes one CBOR value that must fill `payload` exactly.
pub(crate) fn decode_payload<T: DeserializeOwned>(
    payload: &[u8],
    path: &Path,
) -> Result<T, ImageError> {
    let mut rest = payload;
    let value = ciborium::de::from_reader(&mut rest).map_err(|error| ImageError::Decode {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(ImageError::Decode {
            path: path.to_path_buf(),
            message: format!(
                "the CBOR record ends at payload byte {}, but the payload has {} bytes",
                payload.len() - rest.len(),
                payload.len()
            ),
        });
    }
    Ok(value)
}

/// Encodes `record` as a whole record file of kind `kind`: header, then the
/// CBOR payload. `path` only names the file in errors.
pub(crate) fn encode_record_bytes<T: Serialize>(
    record: &T,
    kind: RecordKind,
    path: &Path,
) -> Result<Vec<u8>, ImageError> {
    Ok(record_file_bytes(kind, &encode_payload(record, path)?))
}

/// Encodes `record` as CBOR. `path` only names the file in errors.
pub(crate) fn encode_payload<T: Serialize>(record: &T, path: &Path) -> Result<Vec<u8>, ImageError> {
    let mut payload = Vec::new();
    ciborium::ser::into_writer(record, &mut payload).map_err(|error| ImageError::Encode {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    Ok(payload)
}

/// Builds a record file of kind `kind` from its payload: the header with
/// length and checksum, then the payload.
pub(crate) fn record_file_bytes(kind: RecordKind, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        version: FORMAT_VERSION,
        kind,
        payload_len: payload.len() as u64,
        checksum: payload_checksum(payload),
    };
    let mut bytes = Vec::with_capacity(HEADER_SIZE as usize + payload.len());
    bytes.extend_from_slice(&header.to_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks that `name` is a valid file name inside an image: 1 to 255
/// ASCII letters, digits, '-', '_' and '.', not starting with '.'.
///
/// This excludes path separators, "." and "..", hidden files and control
/// characters, so a name from a manifest can never leave the image
/// directory.
pub fn check_file_name(name: &str, path: &Path) -> Result<(), ImageError> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("is longer than 255 bytes")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if !name
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        Some("contains a character other than ASCII letters, digits, '-', '_' and '.'")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ImageError::invalid(
            path,
            format!("file name {name:?} {problem}"),
        )),
        None => Ok(()),
    }
}

/// Returns the name of the process record file of `pid`.
pub fn process_file_name(pid: i32) -> String {
    format!("process-{pid}")
}

/// Returns the name of the memory map record file of `pid`.
pub fn memory_map_file_name(pid: i32) -> String {
    format!("mm-{pid}")
}

/// Returns the name of the fd table record file of `pid`.
pub fn fd_table_file_name(pid: i32) -> String {
    format!("fds-{pid}")
}

/// Returns the name of the pages file of `pid`.
pub fn pages_file_name(pid: i32) -> String {
    format!("pages-{pid}")
}

/// Returns the name of file data file number `index`.
pub fn file_data_file_name(index: u32) -> String {
    format!("file-{index}")
}

/// Name of the record file with the tree's own IPC namespace.
pub const IPC_NAMESPACE_FILE_NAME: &str = "ipc";

/// Returns the name of the file data file with the contents of SysV
/// shared memory segment `id`.
pub fn sysv_shm_file_name(id: i32) -> String {
    format!("sysv-shm-{id}")
}
