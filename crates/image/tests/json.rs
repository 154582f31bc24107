//! The JSON view: decode to JSON and encode back, byte for byte.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use stasis_image::*;

fn round_trip(dir: &Path, name: &str, kind: RecordKind) {
    let path = dir.join(name);
    let original = fs::read(&path).unwrap();
    let (decoded_kind, value) = decode_record_file(&original, &path).unwrap();
    assert_eq!(decoded_kind, kind);

    // Through JSON text, as a user editing the file would.
    let text = serde_json::to_string_pretty(&value).unwrap();
    let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    let encoded = encode_record_json(kind, &reparsed).unwrap();
    assert!(encoded == original, "{name} changed in the round trip");
}

#[test]
fn json_round_trip_manifest() {
    let (_temp, dir) = sample_image();
    round_trip(&dir, MANIFEST_NAME, RecordKind::Manifest);
}

#[test]
fn json_round_trip_process() {
    let (_temp, dir) = sample_image();
    round_trip(&dir, PROCESS, RecordKind::Process);
}

#[test]
fn json_round_trip_memory_map() {
    let (_temp, dir) = sample_image();
    round_trip(&dir, MM, RecordKind::MemoryMap);
}

#[test]
fn json_round_trip_fd_table() {
    let (_temp, dir) = sample_image();
    round_trip(&dir, FDS, RecordKind::FdTable);
}

#[test]
fn json_shows_bytes_as_hex() {
    let (_temp, dir) = sample_image();
    let path = dir.join(PROCESS);
    let (_, value) = decode_record_file(&fs::read(&path).unwrap(), &path).unwrap();
    let pending = &value["threads"][0]["pending"][0];
    assert_eq!(pending.as_str(), Some("01".repeat(128).as_str()));
}

#[test]
fn json_rejects_data_file() {
    let (_temp, dir) = sample_image();
    let path = dir.join(PAGES);
    let error = decode_record_file(&fs::read(&path).unwrap(), &path).unwrap_err();
    assert!(error.to_string().contains("no JSON view"), "{error}");
    let error = encode_record_json(RecordKind::Pages, &serde_json::Value::Null).unwrap_err();
    assert!(matches!(error, ImageError::InvalidJson { .. }), "{error}");
}

#[test]
fn json_rejects_unknown_field() {
    let mut value = serde_json::to_value(sample_fd_table()).unwrap();
    value["extra"] = serde_json::Value::from(1);
    let error = encode_record_json(RecordKind::FdTable, &value).unwrap_err();
    assert!(error.to_string().contains("unknown field"), "{error}");
}

#[test]
fn json_rejects_invalid_hex() {
    let mut value = serde_json::to_value(sample_process()).unwrap();
    // Multi-byte characters must be rejected, not sliced mid-character.
    for bad in ["0", "zz", "€a", "a€"] {
        value["shared_pending"][0] = serde_json::Value::from(bad);
        let error = encode_record_json(RecordKind::Process, &value).unwrap_err();
        assert!(
            matches!(error, ImageError::InvalidJson { .. }),
            "{bad}: {error}"
        );
    }
}

#[test]
fn json_accepts_uppercase_hex() {
    let mut value = serde_json::to_value(sample_process()).unwrap();
    value["shared_pending"][0] = serde_json::Value::from("AB".repeat(128));
    let bytes = encode_record_json(RecordKind::Process, &value).unwrap();
    let (_, decoded) = decode_record_file(&bytes, Path::new("edited")).unwrap();
    assert_eq!(decoded["shared_pending"][0], "ab".repeat(128));
}

#[test]
fn json_decode_rejects_short_input() {
    for length in [0, 1, 31] {
        let bytes = vec![0x89; length];
        let error = decode_record_file(&bytes, Path::new("short")).unwrap_err();
        assert!(
            matches!(error, ImageError::Truncated { .. }),
            "{length}: {error}"
        );
    }
}

#[test]
fn decode_survives_damaged_files() {
    let (_temp, dir) = sample_image();
    for name in [MANIFEST_NAME, MM, FDS, PROCESS] {
        let path = dir.join(name);
        let original = fs::read(&path).unwrap();

        for length in 0..original.len() {
            let result = decode_record_file(&original[..length], &path);
            assert!(result.is_err(), "{name} cut to {length} bytes decoded");
        }

        // Every byte of the small files, but only the start of the process
        // file: the rest is mostly xstate bytes, and each decode of the
        // 11 KB file takes long in a debug build.
        let limit = if name == PROCESS { 600 } else { original.len() };
        for position in 0..limit {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = original.clone();
                damaged[position] ^= flip;
                if let Ok((kind, value)) = decode_record_file(&damaged, &path) {
                    let encoded = encode_record_json(kind, &value).unwrap();
                    let (_, again) = decode_record_file(&encoded, &path).unwrap();
                    assert_eq!(value, again, "{name} byte {position} ^ {flip:#x}");
                }
            }
        }
    }
}

#[test]
fn json_rejects_mtime_beyond_64_bits() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let mut process = sample_process();
    process.exe.mtime_ns = i128::from(u64::MAX) + 1;
    let mut writer = ImageWriter::create(&dir).unwrap();
    writer.write_record(PROCESS, &process).unwrap();
    writer.commit(sample_manifest()).unwrap();

    let image = Image::open(&dir).unwrap();
    assert_eq!(image.read_record::<Process>(PROCESS).unwrap(), process);

    let path = dir.join(PROCESS);
    let error = decode_record_file(&fs::read(&path).unwrap(), &path).unwrap_err();
    assert!(
        error.to_string().contains("cannot be shown as JSON"),
        "{error}"
    );
}
