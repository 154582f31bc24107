//! Strings read from saved memory: the argument and environment areas,
//! and single NUL-terminated strings such as the one AT_EXECFN points to.

use serde::Serialize;

use crate::pages::{MissingReason, PageReader, Segment};

/// Maximum bytes read from an argument or environment area. Linux limits
/// both together to a quarter of the stack limit, and at most 6 MiB
/// since 4.13 (fs/exec.c), so a larger area comes from a damaged record.
pub const MAX_AREA: u64 = 8 << 20;

/// Maximum length of a single string such as AT_EXECFN's.
const MAX_STRING: u64 = 4096;

/// A part of a string read from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `len` bytes at `address` that the image does not hold.
    Missing {
        address: u64,
        len: u64,
        reason: MissingReason,
    },
}

/// The NUL-separated strings of an area such as argv or envp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StringArea {
    pub start: u64,
    pub end: u64,
    /// Each string as its pieces. A string without missing bytes has one
    /// text piece.
    pub strings: Vec<Vec<Piece>>,
    /// True when the area was longer than [`MAX_AREA`] and was cut.
    pub truncated: bool,
}

/// An address range the image does not hold, in the JSON views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingRange {
    pub start: u64,
    pub end: u64,
    /// `not stored` or `unreadable`.
    pub reason: &'static str,
}

impl StringArea {
    /// Returns true when every byte of the area was read.
    pub fn is_complete(&self) -> bool {
        !self.truncated && self.missing().is_empty()
    }

    /// Returns the strings as plain text, without the missing bytes.
    pub fn plain(&self) -> Vec<String> {
        self.strings
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .filter_map(|piece| match piece {
                        Piece::Text(text) => Some(text.as_str()),
                        Piece::Missing { .. } => None,
                    })
                    .collect()
            })
            .collect()
    }

    /// Returns the address ranges that could not be read.
    pub fn missing(&self) -> Vec<MissingRange> {
        let mut ranges = Vec::new();
        for piece in self.strings.iter().flatten() {
            if let Piece::Missing {
                address,
                len,
                reason,
            } = piece
            {
                ranges.push(MissingRange {
                    start: *address,
                    end: address.saturating_add(*len),
                    reason: reason.describe(),
                });
            }
        }
        ranges
    }
}

/// Reads the NUL-separated strings in `start..end`. Bytes that are not
/// valid UTF-8 are replaced by U+FFFD.
pub fn read_area(reader: &PageReader, start: u64, end: u64) -> StringArea {
    let len = end.saturating_sub(start);
    let truncated = len > MAX_AREA;
    let segments = reader.read(start, len.min(MAX_AREA));

    let mut strings = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    for segment in segments {
        match segment {
            Segment::Stored(data) => {
                for byte in data {
                    if byte == 0 {
                        flush_text(&mut current, &mut bytes);
                        strings.push(std::mem::take(&mut current));
                    } else {
                        bytes.push(byte);
                    }
                }
            }
            Segment::Missing {
                address,
                len,
                reason,
            } => {
                flush_text(&mut current, &mut bytes);
                current.push(Piece::Missing {
                    address,
                    len,
                    reason,
                });
            }
        }
    }
    flush_text(&mut current, &mut bytes);
    if !current.is_empty() {
        strings.push(current);
    }

    StringArea {
        start,
        end,
        strings,
        truncated,
    }
}

fn flush_text(current: &mut Vec<Piece>, bytes: &mut Vec<u8>) {
    if !bytes.is_empty() {
        current.push(Piece::Text(String::from_utf8_lossy(bytes).into_owned()));
        bytes.clear();
    }
}

/// Reads the NUL-terminated string at `address`, of at most 4096 bytes.
/// Returns `None` when its bytes are not stored or no NUL ends it.
pub fn read_c_string(reader: &PageReader, address: u64) -> Option<String> {
    let mut bytes = Vec::new();
    for segment in reader.read(address, MAX_STRING) {
        let Segment::Stored(data) = segment else {
            return None;
        };
        if let Some(nul) = data.iter().position(|&byte| byte == 0) {
            bytes.extend_from_slice(&data[..nul]);
            return Some(String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.extend(data);
    }
    None
}

/// Reads `len` bytes at `address`, if all are stored.
pub fn read_bytes(reader: &PageReader, address: u64, len: u64) -> Option<Vec<u8>> {
    match reader.read(address, len).as_slice() {
        [Segment::Stored(bytes)] => Some(bytes.clone()),
        _ => None,
    }
}
