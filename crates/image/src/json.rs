//! The JSON view of record files, for inspecting and editing images by
//! hand.
//!
//! [`decode_record_file`] turns a record file into its kind and a JSON
//! value, and [`encode_record_json`] turns them back into a file. Both go
//! through the typed record, so the JSON has exactly the record's fields
//! ([`Bytes`](crate::Bytes) fields as hex strings), and a file that this
//! crate wrote at the current [`FORMAT_VERSION`](crate::FORMAT_VERSION) comes back byte for byte.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ImageError;
use crate::format::{decode_record_bytes, encode_record_bytes, parse_header};
use crate::records::{FdTable, IpcNamespace, Manifest, MemoryMap, Process, RecordKind};

/// Decodes the record file `bytes`, read from `path`, into its kind and a
/// JSON value.
///
/// Checks the header, size and header checksum and decodes the CBOR as
/// [`Image::read_record`](crate::Image::read_record) does. It does not
/// check the BLAKE3 hash that the manifest lists or run semantic
/// validation, so a record that fails those can still be inspected. Data
/// files (pages, file data) have no JSON view.
pub fn decode_record_file(
    bytes: &[u8],
    path: &Path,
) -> Result<(RecordKind, serde_json::Value), ImageError> {
    let header = parse_header(bytes, path)?;
    let value = match header.kind {
        RecordKind::Manifest => decode_to_json::<Manifest>(bytes, header.kind, path)?,
        RecordKind::Process => decode_to_json::<Process>(bytes, header.kind, path)?,
        RecordKind::MemoryMap => decode_to_json::<MemoryMap>(bytes, header.kind, path)?,
        RecordKind::FdTable => decode_to_json::<FdTable>(bytes, header.kind, path)?,
        RecordKind::IpcNamespace => decode_to_json::<IpcNamespace>(bytes, header.kind, path)?,
        RecordKind::Pages | RecordKind::FileData => {
            return Err(ImageError::invalid(
                path,
                format!("a {} file holds raw data and has no JSON view", header.kind),
            ))
        }
    };
    Ok((header.kind, value))
}

/// Encodes the JSON value of a record of kind `kind` as a record file at
/// the current [`FORMAT_VERSION`](crate::FORMAT_VERSION). The JSON must have exactly the record's
/// fields.
pub fn encode_record_json(
    kind: RecordKind,
    value: &serde_json::Value,
) -> Result<Vec<u8>, ImageError> {
    match kind {
        RecordKind::Manifest => encode_from_json::<Manifest>(kind, value),
        RecordKind::Process => encode_from_json::<Process>(kind, value),
        RecordKind::MemoryMap => encode_from_json::<MemoryMap>(kind, value),
        RecordKind::FdTable => encode_from_json::<FdTable>(kind, value),
        RecordKind::IpcNamespace => encode_from_json::<IpcNamespace>(kind, value),
        RecordKind::Pages | RecordKind::FileData => Err(ImageError::InvalidJson {
            kind,
            message: "a data file has no JSON form".to_string(),
        }),
    }
}

fn decode_to_json<T: DeserializeOwned + Serialize>(
    bytes: &[u8],
    kind: RecordKind,
    path: &Path,
) -> Result<serde_json::Value, ImageError> {
    let (_, record): (_, T) = decode_record_bytes(bytes, kind, path)?;
    serde_json::to_value(&record).map_err(|error| ImageError::Decode {
        path: path.to_path_buf(),
        message: format!("record cannot be shown as JSON: {error}"),
    })
}

fn encode_from_json<T: DeserializeOwned + Serialize>(
    kind: RecordKind,
    value: &serde_json::Value,
) -> Result<Vec<u8>, ImageError> {
    let record: T = T::deserialize(value).map_err(|error| ImageError::InvalidJson {
        kind,
        message: error.to_string(),
    })?;
    encode_record_bytes(&record, kind, Path::new(kind.name()))
}
