//! Rejection paths of `Image::open`, `read_record`, `data_file` and the
//! hash checks: one test for each way an image can be damaged.

mod common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;
use stasis_image::*;

fn set_u32(bytes: &mut [u8], offset: usize, value: u32) {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
}

fn set_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn sample_image_reads_back() {
    let (_temp, dir) = sample_image();
    let image = Image::open(&dir).expect("open");

    assert_eq!(
        image.read_record::<Process>(PROCESS).unwrap(),
        sample_process()
    );
    assert_eq!(
        image.read_record::<FdTable>(FDS).unwrap(),
        sample_fd_table()
    );
    let (map, pages) = image.read_memory_map(MM).unwrap();
    assert_eq!(map, sample_memory_map());
    let pages = pages.expect("map has a pages file");
    assert_eq!(pages.len, 3 * 4096);
    assert_eq!(pages.data_offset, PAGE_DATA_OFFSET);
    image.verify_all().expect("verify all");
}

#[test]
fn open_missing_dir() {
    let temp = TempDir::new();
    let error = Image::open(&temp.path().join("absent")).unwrap_err();
    assert!(matches!(error, ImageError::NotFound(_)), "{error}");
}

#[test]
fn open_regular_file_as_dir() {
    let temp = TempDir::new();
    let path = temp.path().join("file");
    fs::write(&path, b"x").unwrap();
    let error = Image::open(&path).unwrap_err();
    assert!(matches!(error, ImageError::NotADirectory(_)), "{error}");
}

#[test]
fn open_without_manifest() {
    let (_temp, dir) = sample_image();
    fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::Incomplete(_)), "{error}");
    assert!(error.to_string().contains("no manifest"), "{error}");
}

#[test]
fn open_manifest_too_large() {
    let (_temp, dir) = sample_image();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(MANIFEST_NAME))
        .unwrap();
    file.set_len((16 << 20) + 1).unwrap();
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(error, ImageError::TooLarge { size, limit, .. } if size == (16 << 20) + 1 && limit == 16 << 20),
        "{error}"
    );
}

#[test]
fn open_manifest_bad_magic() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes[1] = b's');
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::BadMagic { .. }), "{error}");
}

#[test]
fn open_manifest_newer_version() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| set_u32(bytes, 8, 2));
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::NewerVersion {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("version 2"), "{message}");
    assert!(message.contains("up to 1"), "{message}");
    assert!(message.contains("newer stasis"), "{message}");
}

#[test]
fn open_manifest_wrong_kind() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| {
        set_u32(bytes, 12, RecordKind::Process as u32)
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::WrongKind {
                expected: RecordKind::Manifest,
                found: RecordKind::Process,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn open_manifest_truncated() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| {
        bytes.pop();
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::Truncated { .. }), "{error}");
}

#[test]
fn open_manifest_trailing_bytes() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes.push(0));
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::TrailingBytes { .. }), "{error}");
}

#[test]
fn open_manifest_shorter_than_header() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes.truncate(20));
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::Truncated {
                expected: 32,
                actual: 20,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn open_manifest_corrupt_cbor() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| {
        // 0xff is a CBOR "break" with nothing to end.
        bytes[32] = 0xff;
        reseal_checksum(bytes);
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::Decode { .. }), "{error}");
}

#[test]
fn open_manifest_checksum_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes[31] ^= 1);
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn open_manifest_payload_bit_flip() {
    let (_temp, dir) = sample_image();
    // Flip a bit in the last payload byte, which changes a value without
    // breaking the CBOR structure in most cases.
    edit_file(&dir, MANIFEST_NAME, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn open_manifest_unknown_kind() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| set_u32(bytes, 12, 99));
    let error = Image::open(&dir).unwrap_err();
    assert!(
        error.to_string().contains("unknown record kind 99"),
        "{error}"
    );
}

#[test]
fn open_manifest_version_zero() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, MANIFEST_NAME, |bytes| set_u32(bytes, 8, 0));
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("version 0"), "{error}");
}

#[test]
fn open_manifest_version_field_invalid() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| manifest.format_version = 2);
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("format_version is 2"), "{error}");
}

#[test]
fn open_missing_listed_file() {
    let (_temp, dir) = sample_image();
    fs::remove_file(dir.join(FDS)).unwrap();
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(&error, ImageError::MissingFile { path } if path.ends_with(FDS)),
        "{error}"
    );
}

#[test]
fn open_listed_size_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        bytes.pop();
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(
        matches!(&error, ImageError::Truncated { path, .. } if path.ends_with(PROCESS)),
        "{error}"
    );
}

#[test]
fn open_name_with_slash() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| {
        manifest.files[0].name = "../process-100".to_string()
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(matches!(error, ImageError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("../process-100"), "{error}");
}

#[test]
fn open_dot_dot_name() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| manifest.files[0].name = "..".to_string());
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("starts with '.'"), "{error}");
}

#[test]
fn open_duplicate_names() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| {
        let first = manifest.files[0].clone();
        manifest.files.push(first);
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("listed twice"), "{error}");
}

#[test]
fn open_invalid_hash_syntax() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| {
        manifest.files[0].blake3 = "ABC".to_string()
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(
        error.to_string().contains("64 lowercase hex digits"),
        "{error}"
    );
}

#[test]
fn open_root_pid_not_listed() {
    let (_temp, dir) = sample_image();
    edit_manifest(&dir, |manifest| manifest.root_pid = 7);
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("root PID 7"), "{error}");
}

#[test]
fn open_symlink_listed_file() {
    let (_temp, dir) = sample_image();
    let target = dir.join("process-copy");
    fs::rename(dir.join(PROCESS), &target).unwrap();
    symlink(&target, dir.join(PROCESS)).unwrap();
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn record_bad_magic() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| bytes[0] = b'X');
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::BadMagic { .. }), "{error}");
}

#[test]
fn record_newer_version() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| set_u32(bytes, 8, 7));
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            ImageError::NewerVersion {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains(PROCESS), "{message}");
    assert!(message.contains("version 7"), "{message}");
    assert!(message.contains("up to 1"), "{message}");
}

#[test]
fn record_header_kind_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        set_u32(bytes, 12, RecordKind::FdTable as u32)
    });
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::WrongKind {
                expected: RecordKind::Process,
                found: RecordKind::FdTable,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn record_listed_kind_mismatch() {
    let (_temp, dir) = sample_image();
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<FdTable>(PROCESS).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::WrongKind {
                expected: RecordKind::FdTable,
                found: RecordKind::Process,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn record_unlisted() {
    let (_temp, dir) = sample_image();
    fs::write(dir.join("extra"), b"x").unwrap();
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>("extra").unwrap_err();
    assert!(matches!(error, ImageError::UnlistedFile { .. }), "{error}");
}

#[test]
fn record_truncated() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        bytes.pop();
    });
    relist(&dir, PROCESS);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::Truncated { .. }), "{error}");
}

#[test]
fn record_trailing_bytes() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| bytes.extend_from_slice(b"junk"));
    relist(&dir, PROCESS);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::TrailingBytes { .. }), "{error}");
}

#[test]
fn record_trailing_bytes_in_payload() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        bytes.push(0);
        let payload_len = bytes.len() as u64 - 32;
        set_u64(bytes, 16, payload_len);
        reseal_checksum(bytes);
    });
    relist(&dir, PROCESS);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::Decode { .. }), "{error}");
    assert!(error.to_string().contains("but the payload has"), "{error}");
}

#[test]
fn record_hash_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::HashMismatch { .. }), "{error}");
    assert!(error.to_string().contains(PROCESS), "{error}");
}

#[test]
fn record_corrupt_cbor() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PROCESS, |bytes| {
        for byte in &mut bytes[32..] {
            *byte = 0xff;
        }
        reseal_checksum(bytes);
    });
    relist(&dir, PROCESS);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::Decode { .. }), "{error}");
    assert!(error.to_string().contains(PROCESS), "{error}");
}

#[test]
fn record_too_large() {
    let (_temp, dir) = sample_image();
    let size = (256 << 20) + 1;
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join(PROCESS))
        .unwrap()
        .set_len(size)
        .unwrap();
    edit_manifest(&dir, |manifest| manifest.files[0].size = size);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::TooLarge { .. }), "{error}");
}

#[test]
fn record_fails_validation() {
    let (_temp, dir) = sample_image();
    let mut process = sample_process();
    process.threads.clear();
    let value = serde_json::to_value(&process).unwrap();
    fs::write(
        dir.join(PROCESS),
        encode_record_json(RecordKind::Process, &value).unwrap(),
    )
    .unwrap();
    relist(&dir, PROCESS);
    let image = Image::open(&dir).unwrap();
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(error.to_string().contains("no threads"), "{error}");
}

#[test]
fn data_file_hash_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PAGES, |bytes| bytes[4096 + 5000] ^= 0x80);
    let image = Image::open(&dir).unwrap();
    image
        .data_file(PAGES, RecordKind::Pages)
        .expect("header is intact");
    let error = image.verify_data_file(PAGES).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::ChunkMismatch {
                chunk: 0,
                chunks: 1,
                ..
            }
        ),
        "{error}"
    );
    let error = image.verify_all().unwrap_err();
    assert!(matches!(error, ImageError::ChunkMismatch { .. }), "{error}");
}

#[test]
fn large_data_file_reads_back_chunk_by_chunk() {
    let (_temp, dir) = large_data_image();
    let image = Image::open(&dir).unwrap();
    let reader = image
        .data_reader(LARGE_DATA, RecordKind::FileData)
        .expect("open reader");
    assert_eq!(reader.chunk_count(), 4);
    let size = fs::metadata(dir.join(LARGE_DATA)).unwrap().len();
    assert_eq!(size, 4096 + LARGE_DATA_LEN as u64 + 4 * 32);
    assert_eq!(reader.read_all(u64::MAX).unwrap(), large_data());
    let mut chunk = Vec::new();
    reader.read_chunk(3, &mut chunk).unwrap();
    assert_eq!(chunk.len(), (1 << 20) / 2);
    image.verify_all().expect("verify all");
}

#[test]
fn large_data_file_names_the_changed_chunk() {
    let (_temp, dir) = large_data_image();
    edit_file(&dir, LARGE_DATA, |bytes| bytes[4096 + (2 << 20) + 77] ^= 1);
    let image = Image::open(&dir).unwrap();
    let reader = image
        .data_reader(LARGE_DATA, RecordKind::FileData)
        .expect("the chunk hashes are intact");

    let mut chunk = Vec::new();
    reader.read_chunk(0, &mut chunk).expect("chunk 0 is intact");
    reader.read_chunk(1, &mut chunk).expect("chunk 1 is intact");

    let error = reader.read_chunk(2, &mut chunk).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::ChunkMismatch {
                chunk: 2,
                chunks: 4,
                start: 2097152,
                end: 3145728,
                ..
            }
        ),
        "{error}"
    );
    assert!(chunk.is_empty());
    assert!(error.to_string().contains("chunk 2 of 4"), "{error}");
    let error = image.verify_all().unwrap_err();
    assert!(
        matches!(error, ImageError::ChunkMismatch { chunk: 2, .. }),
        "{error}"
    );
}

#[test]
fn large_data_file_with_changed_chunk_hashes() {
    let (_temp, dir) = large_data_image();
    edit_file(&dir, LARGE_DATA, |bytes| {
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
    });
    let image = Image::open(&dir).unwrap();
    let error = image
        .data_reader(LARGE_DATA, RecordKind::FileData)
        .unwrap_err();
    assert!(error.to_string().contains("chunk hashes"), "{error}");
    assert!(image.verify_all().is_err());
}

#[test]
fn large_data_file_without_chunk_hashes() {
    let (_temp, dir) = large_data_image();
    edit_file(&dir, LARGE_DATA, |bytes| {
        bytes.truncate(bytes.len() - 4 * 32)
    });
    relist(&dir, LARGE_DATA);
    let image = Image::open(&dir).unwrap();
    let error = image
        .data_reader(LARGE_DATA, RecordKind::FileData)
        .unwrap_err();
    assert!(matches!(error, ImageError::Truncated { .. }), "{error}");
}

#[test]
fn data_file_nonzero_padding() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, FILE_DATA, |bytes| bytes[100] = 1);
    let image = Image::open(&dir).unwrap();
    let error = image
        .data_file(FILE_DATA, RecordKind::FileData)
        .unwrap_err();
    assert!(error.to_string().contains("padding"), "{error}");
}

#[test]
fn data_file_length_mismatch() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, FILE_DATA, |bytes| set_u64(bytes, 16, 5));
    let image = Image::open(&dir).unwrap();
    let error = image
        .data_file(FILE_DATA, RecordKind::FileData)
        .unwrap_err();
    assert!(matches!(error, ImageError::TrailingBytes { .. }), "{error}");
}

#[test]
fn data_file_partial_page() {
    let (_temp, dir) = sample_image();
    edit_file(&dir, PAGES, |bytes| {
        bytes.truncate(bytes.len() - 100);
        let payload_len = bytes.len() as u64 - 4096;
        set_u64(bytes, 16, payload_len);
    });
    edit_manifest(&dir, |manifest| {
        let entry = manifest
            .files
            .iter_mut()
            .find(|entry| entry.name == PAGES)
            .unwrap();
        entry.size -= 100;
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("multiple of 4096"), "{error}");
}

#[test]
fn data_file_wrong_kind() {
    let (_temp, dir) = sample_image();
    let image = Image::open(&dir).unwrap();
    let error = image.data_file(PAGES, RecordKind::FileData).unwrap_err();
    assert!(matches!(error, ImageError::WrongKind { .. }), "{error}");
    let error = image.data_file(PROCESS, RecordKind::Process).unwrap_err();
    assert!(error.to_string().contains("not a data file"), "{error}");
}

#[test]
fn memory_map_runs_past_pages_file() {
    let (_temp, dir) = sample_image();
    let mut map = sample_memory_map();
    map.pages[1].pages = 3;
    map.vmas[1].end = 0x70_0000;
    let value = serde_json::to_value(&map).unwrap();
    fs::write(
        dir.join(MM),
        encode_record_json(RecordKind::MemoryMap, &value).unwrap(),
    )
    .unwrap();
    relist(&dir, MM);
    let image = Image::open(&dir).unwrap();
    image
        .read_record::<MemoryMap>(MM)
        .expect("layout alone is valid");
    let error = image.read_memory_map(MM).unwrap_err();
    assert!(
        error.to_string().contains("has only 12288 bytes"),
        "{error}"
    );
}

#[test]
fn fd_table_unlisted_content() {
    let (_temp, dir) = sample_image();
    let mut table = sample_fd_table();
    if let OpenFile::Regular { content, .. } = &mut table.fds[1].file {
        *content = Some("file-9".to_string());
    }
    let value = serde_json::to_value(&table).unwrap();
    fs::write(
        dir.join(FDS),
        encode_record_json(RecordKind::FdTable, &value).unwrap(),
    )
    .unwrap();
    relist(&dir, FDS);
    let image = Image::open(&dir).unwrap();
    let error = image.verify_all().unwrap_err();
    assert!(
        matches!(&error, ImageError::UnlistedFile { path } if path.ends_with("file-9")),
        "{error}"
    );
}

#[test]
fn image_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Image>();
}
