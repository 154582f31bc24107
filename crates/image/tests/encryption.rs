//! Encrypted images: what reads with the key, what does not without it,
//! and each change to an encrypted file that must be rejected.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use stasis_image::chunks::ChunkHasher;
use stasis_image::crypto::{PLAIN_CHUNK_SIZE, SALT_SIZE};
use stasis_image::*;

fn key(byte: u8) -> ImageKey {
    ImageKey::from_bytes([byte; 32])
}

/// Plain data of the large data file: four chunks and a bit, with a marker
/// that must not appear in the file.
fn large_plain() -> Vec<u8> {
    let mut data: Vec<u8> = (0..4 * PLAIN_CHUNK_SIZE as usize + 5000)
        .map(|i| (i % 253) as u8)
        .collect();
    data[100..116].copy_from_slice(b"SECRET-MARKER-01");
    data
}

/// Writes an encrypted image with the sample records, the sample pages and
/// the large data file, with key `key(1)`.
fn encrypted_image() -> (TempDir, PathBuf) {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let mut writer = ImageWriter::create(&dir).expect("create image");
    writer
        .encrypt_with(key(1), [9u8; SALT_SIZE])
        .expect("encrypt");

    writer
        .write_record(PROCESS, &sample_process())
        .expect("write process");
    writer
        .write_record(MM, &sample_memory_map())
        .expect("write memory map");
    writer
        .write_record(FDS, &sample_fd_table())
        .expect("write fd table");

    let mut pages = writer
        .data_writer(PAGES, RecordKind::Pages)
        .expect("start pages");
    pages.write(&sample_pages()).expect("write pages");
    writer.finish_data(pages).expect("finish pages");
    let mut file = writer
        .data_writer(FILE_DATA, RecordKind::FileData)
        .expect("start file data");
    file.write(FILE_CONTENT).expect("write file data");
    writer.finish_data(file).expect("finish file data");

    let mut large = writer
        .data_writer(LARGE_DATA, RecordKind::FileData)
        .expect("start large data");
    for piece in large_plain().chunks(300_001) {
        large.write(piece).expect("write large data");
    }
    writer.finish_data(large).expect("finish large data");
    let dir = writer.commit(sample_manifest()).expect("commit");
    (temp, dir)
}

fn unlocked(dir: &Path) -> Image {
    let mut image = Image::open(dir).expect("open");
    image.unlock(key(1)).expect("unlock");
    image
}

#[test]
fn encrypted_image_reads_back_with_the_key() {
    let (_temp, dir) = encrypted_image();
    let image = unlocked(&dir);
    let encryption = image.manifest().encryption.clone().expect("encrypted");
    assert_eq!(encryption.cipher, "aes-256-gcm");
    assert_eq!(encryption.key_id, key(1).key_id());
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
    assert_eq!(pages.expect("pages").len, 3 * 4096);

    let pages = image.data_reader(PAGES, RecordKind::Pages).unwrap();
    assert_eq!(pages.read_all(u64::MAX).unwrap(), sample_pages());
    let large = image.data_reader(LARGE_DATA, RecordKind::FileData).unwrap();
    assert_eq!(large.chunk_count(), 5);
    assert_eq!(large.chunk_size(), PLAIN_CHUNK_SIZE);
    assert_eq!(large.read_all(u64::MAX).unwrap(), large_plain());
    image.verify_all().expect("verify with the key");
}

#[test]
fn encrypted_files_hold_no_plain_data() {
    let (_temp, dir) = encrypted_image();
    for name in [PROCESS, MM, FDS, PAGES, FILE_DATA, LARGE_DATA] {
        let bytes = fs::read(dir.join(name)).unwrap();
        for marker in [
            &b"SECRET-MARKER-01"[..],
            b"contents of a deleted",
            b"/usr/bin/sleeper",
            &[0xa2u8; 64],
        ] {
            assert!(
                !bytes.windows(marker.len()).any(|window| window == marker),
                "{name} contains plain data"
            );
        }
    }
}

#[test]
fn locked_image_verifies_but_reads_no_record() {
    let (_temp, dir) = encrypted_image();
    let image = Image::open(&dir).unwrap();
    assert!(image.is_locked());
    image.verify_all().expect("hashes check without the key");
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::Encrypted { .. }), "{error}");
    assert!(error.to_string().contains(&key(1).key_id()), "{error}");
    let error = image.data_reader(PAGES, RecordKind::Pages).unwrap_err();
    assert!(matches!(error, ImageError::Encrypted { .. }), "{error}");
}

#[test]
fn wrong_key_is_rejected_with_both_ids() {
    let (_temp, dir) = encrypted_image();
    let mut image = Image::open(&dir).unwrap();
    let error = image.unlock(key(2)).unwrap_err();
    assert!(matches!(error, ImageError::WrongKey { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&key(1).key_id()), "{message}");
    assert!(message.contains(&key(2).key_id()), "{message}");
}

#[test]
fn key_for_a_clear_image_is_rejected() {
    let (_temp, dir) = sample_image();
    let mut image = Image::open(&dir).unwrap();
    let error = image.unlock(key(1)).unwrap_err();
    assert!(matches!(error, ImageError::NotEncrypted { .. }), "{error}");
}

#[test]
fn changed_chunk_is_rejected_before_decryption() {
    let (_temp, dir) = encrypted_image();
    edit_file(&dir, LARGE_DATA, |bytes| bytes[4096 + (3 << 20) + 9] ^= 1);
    let image = unlocked(&dir);
    let reader = image.data_reader(LARGE_DATA, RecordKind::FileData).unwrap();
    let mut chunk = Vec::new();
    reader.read_chunk(2, &mut chunk).expect("chunk 2 is intact");
    let error = reader.read_chunk(3, &mut chunk).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::ChunkMismatch {
                chunk: 3,
                chunks: 5,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn changed_record_is_rejected() {
    let (_temp, dir) = encrypted_image();
    edit_file(&dir, PROCESS, |bytes| bytes[40] ^= 1);
    let image = unlocked(&dir);
    let error = image.read_record::<Process>(PROCESS).unwrap_err();
    assert!(matches!(error, ImageError::HashMismatch { .. }), "{error}");
}

/// Replaces the data of the data file `name` with `stored`, fixing its
/// header, chunk hashes and manifest entry, as someone without the key
/// who can write the manifest could.
fn replace_stored_data(dir: &Path, name: &str, stored: &[u8]) {
    edit_file(dir, name, |bytes| {
        let mut hasher = ChunkHasher::new();
        hasher.update(stored);
        let (_, trailer) = hasher.finish();
        bytes.truncate(4096);
        bytes[16..24].copy_from_slice(&(stored.len() as u64).to_le_bytes());
        bytes.extend_from_slice(stored);
        bytes.extend_from_slice(&trailer);
    });
    relist(dir, name);
}

fn stored_data(dir: &Path, name: &str) -> Vec<u8> {
    let bytes = fs::read(dir.join(name)).unwrap();
    let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    bytes[4096..4096 + len].to_vec()
}

#[test]
fn cut_file_does_not_decrypt() {
    let (_temp, dir) = encrypted_image();
    let stored = stored_data(&dir, LARGE_DATA);
    // Drop the last chunk: what is left is whole chunks that match their
    // new hashes, but chunk 3 was sealed as not the last one.
    replace_stored_data(&dir, LARGE_DATA, &stored[..4 << 20]);
    let image = unlocked(&dir);
    let reader = image.data_reader(LARGE_DATA, RecordKind::FileData).unwrap();
    let mut chunk = Vec::new();
    reader
        .read_chunk(0, &mut chunk)
        .expect("chunk 0 still decrypts");
    let error = reader.read_chunk(3, &mut chunk).unwrap_err();
    assert!(
        matches!(
            error,
            ImageError::DecryptFailed {
                chunk: 3,
                chunks: 4,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn chunks_swapped_in_a_file_do_not_decrypt() {
    let (_temp, dir) = encrypted_image();
    let mut stored = stored_data(&dir, LARGE_DATA);
    let (first, rest) = stored.split_at_mut(1 << 20);
    first.swap_with_slice(&mut rest[..1 << 20]);
    replace_stored_data(&dir, LARGE_DATA, &stored);
    let image = unlocked(&dir);
    let reader = image.data_reader(LARGE_DATA, RecordKind::FileData).unwrap();
    let error = reader.read_chunk(0, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(error, ImageError::DecryptFailed { chunk: 0, .. }),
        "{error}"
    );
}

#[test]
fn file_copied_under_another_name_does_not_decrypt() {
    let (_temp, dir) = encrypted_image();
    // The pages file's data, stored as the file data file: both have the
    // key, salt and format, but each file has its own key.
    let pages = stored_data(&dir, PAGES);
    replace_stored_data(&dir, FILE_DATA, &pages);
    let image = unlocked(&dir);
    let reader = image.data_reader(FILE_DATA, RecordKind::FileData).unwrap();
    let error = reader.read_chunk(0, &mut Vec::new()).unwrap_err();
    assert!(matches!(error, ImageError::DecryptFailed { .. }), "{error}");
}

#[test]
fn unknown_cipher_is_rejected() {
    let (_temp, dir) = encrypted_image();
    edit_manifest(&dir, |manifest| {
        manifest.encryption.as_mut().unwrap().cipher = "rot13".to_string();
    });
    let error = Image::open(&dir).unwrap_err();
    assert!(error.to_string().contains("rot13"), "{error}");
}
