//! The error type of every image operation.

use std::io;
use std::path::PathBuf;

use crate::records::RecordKind;

/// An error reading or writing an image. Every variant names the file or
/// directory it concerns.
#[derive(thiserror::Error, Debug)]
pub enum ImageError {
    #[error("image directory {0} not found")]
    NotFound(PathBuf),

    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),

    #[error(
        "{0} has no manifest, so it is not a complete image: the dump that \
         wrote it failed or has not finished, or it is not an image directory"
    )]
    Incomplete(PathBuf),

    #[error("{path} is listed in the image manifest but missing")]
    MissingFile { path: PathBuf },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path} is {size} bytes, more than the limit of {limit} bytes for this kind of file")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    #[error("{path} is not a stasis image file (invalid magic number)")]
    BadMagic { path: PathBuf },

    #[error(
        "{path} has image format version {found}, but this stasis reads versions \
         up to {supported}; use a newer stasis to read this image"
    )]
    NewerVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("{path} has kind '{found}', expected '{expected}'")]
    WrongKind {
        path: PathBuf,
        expected: RecordKind,
        found: RecordKind,
    },

    #[error("{path} is truncated: it has {actual} bytes, expected {expected}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    #[error("{path} has trailing bytes: it has {actual} bytes, expected {expected}")]
    TrailingBytes {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    #[error("{path} is corrupt: its BLAKE3 hash is {actual}, but the manifest lists {expected}")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error(
        "{path} is corrupt: bytes {start}..{end} of its data (chunk {chunk} of {chunks}) \
         do not match their hash; the file changed after the dump"
    )]
    ChunkMismatch {
        path: PathBuf,
        chunk: u64,
        chunks: u64,
        start: u64,
        end: u64,
    },

    #[error(
        "{path}: chunk {chunk} of {chunks} does not decrypt with the image key, although it \
         matches its hash; the image was written with another key of the same ID"
    )]
    DecryptFailed {
        path: PathBuf,
        chunk: u64,
        chunks: u64,
    },

    #[error(
        "the image in {dir} is encrypted with key {key_id}; pass that key with --key KEYFILE \
         to read its records and data"
    )]
    Encrypted { dir: PathBuf, key_id: String },

    #[error(
        "the image in {dir} is encrypted with key {expected}, but the key given has ID {given}"
    )]
    WrongKey {
        dir: PathBuf,
        expected: String,
        given: String,
    },

    #[error(
        "the image in {dir} is not encrypted, but a key was given to decrypt it; leave out the key"
    )]
    NotEncrypted { dir: PathBuf },

    #[error("{path} contains an invalid CBOR record: {message}")]
    Decode { path: PathBuf, message: String },

    #[error("failed to encode {path}: {message}")]
    Encode { path: PathBuf, message: String },

    #[error("{path} is not listed in the image manifest")]
    UnlistedFile { path: PathBuf },

    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },

    #[error(
        "{0} already exists and is not an empty directory; \
         choose a new image directory or remove the old one"
    )]
    AlreadyExists(PathBuf),

    #[error("invalid JSON for a {kind} record: {message}")]
    InvalidJson { kind: RecordKind, message: String },
}

impl ImageError {
    /// Builds an `Invalid` error for `path`.
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Builds an `Io` error for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> ImageError {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds the size error for a file of `actual` bytes that should have
    /// `expected`: `Truncated` when it is shorter, `TrailingBytes` when
    /// longer.
    pub(crate) fn size_mismatch(
        path: impl Into<PathBuf>,
        expected: u64,
        actual: u64,
    ) -> ImageError {
        let path = path.into();
        if actual < expected {
            ImageError::Truncated {
                path,
                expected,
                actual,
            }
        } else {
            ImageError::TrailingBytes {
                path,
                expected,
                actual,
            }
        }
    }
}
