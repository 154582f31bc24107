//! `ImageWriter` and `DataWriter`: committing, cleanup and misuse.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;
use stasis_image::*;

#[test]
fn commit_produces_readable_image() {
    let (_temp, dir) = sample_image();
    let image = Image::open(&dir).expect("open");
    let manifest = image.manifest();

    assert_eq!(manifest.format_version, FORMAT_VERSION);
    assert_eq!(manifest.root_pid, PID);
    let names: Vec<&str> = manifest
        .files
        .iter()
        .map(|entry| entry.name.as_str())
        .collect();
    assert_eq!(names, [PROCESS, MM, FDS, PAGES, FILE_DATA]);
    assert!(!dir.join("manifest.tmp").exists());

    let pages = image.data_file(PAGES, RecordKind::Pages).unwrap();
    let bytes = fs::read(&pages.path).unwrap();
    assert_eq!(bytes.len() as u64, pages.data_offset + pages.len);
    assert_eq!(&bytes[pages.data_offset as usize..], &sample_pages()[..]);
    assert!(bytes[32..4096].iter().all(|&byte| byte == 0));

    let file = image.data_file(FILE_DATA, RecordKind::FileData).unwrap();
    let bytes = fs::read(&file.path).unwrap();
    assert_eq!(&bytes[4096..], FILE_CONTENT);
    assert_eq!(file.len, FILE_CONTENT.len() as u64);

    image.verify_all().expect("every hash matches");
}

#[test]
fn data_writer_returns_offsets() {
    let temp = TempDir::new();
    let mut writer = ImageWriter::create(&temp.path().join("img")).unwrap();
    let mut pages = writer.data_writer(PAGES, RecordKind::Pages).unwrap();
    assert_eq!(pages.position(), 0);
    assert_eq!(pages.write(&[1; 4096]).unwrap(), 0);
    assert_eq!(pages.write(&[2; 8192]).unwrap(), 4096);
    assert_eq!(pages.position(), 12288);
    assert_eq!(pages.write(&[]).unwrap(), 12288);
    writer.finish_data(pages).unwrap();
    writer.abort();
}

#[test]
fn image_files_are_private() {
    let (_temp, dir) = sample_image();
    let dir_mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    for name in [MANIFEST_NAME, PROCESS, PAGES] {
        let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn abort_removes_created_dir() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let mut writer = ImageWriter::create(&dir).unwrap();
    writer.write_record(PROCESS, &sample_process()).unwrap();
    let mut pages = writer.data_writer(PAGES, RecordKind::Pages).unwrap();
    pages.write(&[0; 4096]).unwrap();
    writer.abort();
    assert!(!dir.exists());
}

#[test]
fn drop_removes_created_dir() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    {
        let mut writer = ImageWriter::create(&dir).unwrap();
        writer.write_record(PROCESS, &sample_process()).unwrap();
        assert!(dir.join(PROCESS).exists());
    }
    assert!(!dir.exists());
}

#[test]
fn abort_keeps_existing_empty_dir() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    fs::create_dir(&dir).unwrap();
    let mut writer = ImageWriter::create(&dir).unwrap();
    writer.write_record(PROCESS, &sample_process()).unwrap();
    writer.abort();
    assert!(dir.is_dir());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn commit_into_existing_empty_dir() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    fs::create_dir(&dir).unwrap();
    write_sample_image(&dir);
    Image::open(&dir).unwrap().verify_all().unwrap();
}

#[test]
fn create_rejects_nonempty_dir() {
    let temp = TempDir::new();
    fs::write(temp.path().join("other"), b"x").unwrap();
    let error = ImageWriter::create(temp.path()).unwrap_err();
    assert!(matches!(error, ImageError::AlreadyExists(_)), "{error}");
    assert!(temp.path().join("other").exists());
}

#[test]
fn create_rejects_existing_file() {
    let temp = TempDir::new();
    let path = temp.path().join("file");
    fs::write(&path, b"x").unwrap();
    let error = ImageWriter::create(&path).unwrap_err();
    assert!(matches!(error, ImageError::AlreadyExists(_)), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"x");
}

#[test]
fn create_rejects_missing_parent() {
    let temp = TempDir::new();
    let error = ImageWriter::create(&temp.path().join("absent/img")).unwrap_err();
    assert!(matches!(error, ImageError::Io { .. }), "{error}");
}

#[test]
fn commit_rejects_unfinished_data() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let mut writer = ImageWriter::create(&dir).unwrap();
    writer.write_record(PROCESS, &sample_process()).unwrap();
    let pages = writer.data_writer(PAGES, RecordKind::Pages).unwrap();
    drop(pages);
    let error = writer.commit(sample_manifest()).unwrap_err();
    assert!(error.to_string().contains("not finished"), "{error}");
    assert!(!dir.exists(), "a failed commit removes the image");
}

#[test]
fn commit_rejects_invalid_manifest() {
    let temp = TempDir::new();
    let dir = temp.path().join("img");
    let writer = ImageWriter::create(&dir).unwrap();
    let mut manifest = sample_manifest();
    manifest.processes.clear();
    let error = writer.commit(manifest).unwrap_err();
    assert!(error.to_string().contains("no processes"), "{error}");
    assert!(!dir.exists());
}

#[test]
fn finish_rejects_partial_page() {
    let temp = TempDir::new();
    let mut writer = ImageWriter::create(&temp.path().join("img")).unwrap();
    let mut pages = writer.data_writer(PAGES, RecordKind::Pages).unwrap();
    pages.write(&[0; 100]).unwrap();
    let error = writer.finish_data(pages).unwrap_err();
    assert!(
        error.to_string().contains("not a multiple of 4096"),
        "{error}"
    );
}

#[test]
fn finish_rejects_other_writer() {
    let temp = TempDir::new();
    let mut first = ImageWriter::create(&temp.path().join("one")).unwrap();
    let mut second = ImageWriter::create(&temp.path().join("two")).unwrap();
    let pages = first.data_writer(PAGES, RecordKind::Pages).unwrap();
    let error = second.finish_data(pages).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not started by this image writer"),
        "{error}"
    );
}

#[test]
fn write_rejects_bad_names() {
    let temp = TempDir::new();
    let mut writer = ImageWriter::create(&temp.path().join("img")).unwrap();
    for name in [
        "",
        "a/b",
        "..",
        ".hidden",
        "manifest",
        "manifest.tmp",
        "tab\tname",
    ] {
        let error = writer.write_record(name, &sample_process()).unwrap_err();
        assert!(
            matches!(error, ImageError::Invalid { .. }),
            "{name:?}: {error}"
        );
    }
    writer.write_record(PROCESS, &sample_process()).unwrap();
    let error = writer.write_record(PROCESS, &sample_process()).unwrap_err();
    assert!(error.to_string().contains("written twice"), "{error}");
    let error = writer.data_writer(PROCESS, RecordKind::Pages).unwrap_err();
    assert!(error.to_string().contains("written twice"), "{error}");
}

#[test]
fn write_rejects_manifest_record() {
    let temp = TempDir::new();
    let mut writer = ImageWriter::create(&temp.path().join("img")).unwrap();
    let error = writer
        .write_record("other", &sample_manifest())
        .unwrap_err();
    assert!(error.to_string().contains("commit"), "{error}");
}

#[test]
fn data_writer_rejects_record_kind() {
    let temp = TempDir::new();
    let mut writer = ImageWriter::create(&temp.path().join("img")).unwrap();
    let error = writer.data_writer(PAGES, RecordKind::Process).unwrap_err();
    assert!(matches!(error, ImageError::Invalid { .. }), "{error}");
}
