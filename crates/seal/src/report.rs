//! A full check of a sealed image that lists every problem it finds: the
//! seal, the manifest, and each file that is missing, changed, invalid or
//! not listed.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use stasis_image::{
    validate_memory_map, DataFile, FdTable, FileEntry, Image, ImageError, IpcNamespace, Manifest,
    MemoryMap, OpenFile, Process, RecordKind, MANIFEST_NAME, PAGE_DATA_OFFSET,
};

use stasis_image::chunks::data_len_for_file_size;

use crate::error::SealError;
use crate::files::hash_file;
use crate::format::{SealInfo, SEAL_FILE_NAME};
use crate::key::PublicKey;
use crate::sign::{check_reserved_names, read_manifest_bytes};
use crate::verify::{check_manifest_hash, check_trusted_signature, read_seal, Trust};

/// The result of [`verify_image`]. Serialized as the JSON output of
/// `stasis verify --json`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    /// True when the seal is valid and every file matches the manifest.
    pub ok: bool,
    pub seal: SealCheck,
    pub manifest: ManifestCheck,
    /// Listed files in manifest order, then unlisted files sorted by name.
    pub files: Vec<FileCheck>,
    /// One message per problem, in the order found.
    pub problems: Vec<String>,
}

/// Outcome of the seal check.
#[derive(Clone, Debug, Serialize)]
pub struct SealCheck {
    pub status: SealStatus,
    /// The seal's fields, when the file could be parsed. They are only
    /// trustworthy when `status` is `valid`.
    pub info: Option<SealInfo>,
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealStatus {
    /// Signed by a trusted key, and the manifest has the signed hash.
    Valid,
    /// There is no seal file.
    Missing,
    /// The seal exists but is unreadable, untrusted, badly signed or for
    /// another manifest.
    Invalid,
}

/// Outcome of reading the manifest.
#[derive(Clone, Debug, Serialize)]
pub struct ManifestCheck {
    pub status: FileStatus,
    /// BLAKE3 hash of the manifest file, when it could be read.
    pub blake3: Option<String>,
    pub message: Option<String>,
}

/// Outcome of checking one file.
#[derive(Clone, Debug, Serialize)]
pub struct FileCheck {
    pub name: String,
    /// The kind the manifest lists; `None` for an unlisted file.
    pub kind: Option<RecordKind>,
    pub status: FileStatus,
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    Ok,
    /// Listed in the manifest, but not in the directory.
    Missing,
    /// In the directory, but not listed in the manifest.
    Extra,
    /// Its size or hash differs from the manifest.
    Changed,
    /// Its size and hash match, but its contents fail the image format's
    /// checks; or, for the manifest, it cannot be decoded.
    Invalid,
}

/// Checks the image in `dir` completely and lists every problem.
///
/// The seal must be signed by one of `trusted` and match the manifest.
/// Every file listed in the manifest is checked for existence, size and
/// BLAKE3 hash, and every other file in the directory except `seal` is
/// reported as extra. When all listed files match, the records and data
/// file headers are also checked as a restore checks them.
///
/// Returns an error only when `dir` is not a directory or cannot be listed;
/// every other problem is in the report.
pub fn verify_image(dir: &Path, trusted: &[PublicKey]) -> Result<VerifyReport, SealError> {
    verify_image_with(dir, &mut Trust::Keys(trusted))
}

/// Checks the image in `dir` completely, as [`verify_image`] does, with a
/// seal that `trust` accepts. With [`Trust::Tpm`], the seal must be a TPM
/// seal that [`check_tpm_signature`](crate::verify::check_tpm_signature)
/// accepts.
pub fn verify_image_with(dir: &Path, trust: &mut Trust<'_>) -> Result<VerifyReport, SealError> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let mut problems = Vec::new();

    let manifest_read = match read_manifest_bytes(dir) {
        Ok(bytes) => Ok(bytes),
        // There is no image to report on.
        Err(error @ SealError::Image(ImageError::NotFound(_) | ImageError::NotADirectory(_))) => {
            return Err(error)
        }
        Err(error) => {
            let status = match error {
                SealError::Image(ImageError::Incomplete(_)) => FileStatus::Missing,
                _ => FileStatus::Invalid,
            };
            problems.push(error.to_string());
            Err((status, error.to_string()))
        }
    };
    let manifest_bytes = manifest_read.as_ref().ok();

    let mut seal = check_seal_part(dir, manifest_bytes.map(Vec::as_slice), trust, &mut problems);
    let (manifest_check, manifest) = match &manifest_read {
        Ok(bytes) => check_manifest_part(&manifest_path, bytes, &mut problems),
        Err((status, message)) => (
            ManifestCheck {
                status: *status,
                blake3: None,
                message: Some(message.clone()),
            },
            None,
        ),
    };

    if let (Some(manifest), Some(info)) = (&manifest, &seal.info) {
        if seal.status == SealStatus::Valid && info.image_format_version != manifest.format_version
        {
            let message = SealError::FormatVersionMismatch {
                path: dir.join(SEAL_FILE_NAME),
                sealed: info.image_format_version,
                manifest: manifest.format_version,
            }
            .to_string();
            problems.push(message.clone());
            seal.status = SealStatus::Invalid;
            seal.message = Some(message);
        }
    }

    let mut files = Vec::new();
    if let (Some(manifest), Some(bytes)) = (&manifest, manifest_bytes) {
        files = check_files(dir, manifest, bytes, &mut problems)?;
        for file in &files {
            if let Some(message) = &file.message {
                problems.push(format!("{}: {message}", file.name));
            }
        }
    }

    Ok(VerifyReport {
        dir: dir.to_path_buf(),
        ok: problems.is_empty(),
        seal,
        manifest: manifest_check,
        files,
        problems,
    })
}

/// Checks the seal against `trust` and the manifest bytes.
fn check_seal_part(
    dir: &Path,
    manifest_bytes: Option<&[u8]>,
    trust: &mut Trust<'_>,
    problems: &mut Vec<String>,
) -> SealCheck {
    let seal_path = dir.join(SEAL_FILE_NAME);
    let seal = match read_seal(dir) {
        Ok(seal) => seal,
        Err(error) => {
            let status = match error {
                SealError::NotSealed { .. } => SealStatus::Missing,
                _ => SealStatus::Invalid,
            };
            problems.push(error.to_string());
            return SealCheck {
                status,
                info: None,
                message: Some(error.to_string()),
            };
        }
    };

    let mut result = check_trusted_signature(&seal, &seal_path, trust);
    if let (Ok(()), Some(bytes)) = (&result, manifest_bytes) {
        result = check_manifest_hash(&seal, &dir.join(MANIFEST_NAME), bytes).map(|_| ());
    }
    match (result, manifest_bytes) {
        (Ok(()), Some(_)) => SealCheck {
            status: SealStatus::Valid,
            info: Some(seal.info),
            message: None,
        },
        (Ok(()), None) => {
            // The manifest problem is already listed.
            let message = "the signature is valid, but the manifest it signs cannot be read";
            SealCheck {
                status: SealStatus::Invalid,
                info: Some(seal.info),
                message: Some(message.to_string()),
            }
        }
        (Err(error), _) => {
            problems.push(error.to_string());
            SealCheck {
                status: SealStatus::Invalid,
                info: Some(seal.info),
                message: Some(error.to_string()),
            }
        }
    }
}

/// Decodes the manifest and checks that it uses no name reserved for the
/// seal.
fn check_manifest_part(
    manifest_path: &Path,
    bytes: &[u8],
    problems: &mut Vec<String>,
) -> (ManifestCheck, Option<Manifest>) {
    let hash = Some(blake3::hash(bytes).to_hex().to_string());
    let decoded = Image::decode_manifest(bytes, manifest_path)
        .map_err(SealError::from)
        .and_then(|manifest| {
            check_reserved_names(&manifest, manifest_path)?;
            Ok(manifest)
        });
    match decoded {
        Ok(manifest) => (
            ManifestCheck {
                status: FileStatus::Ok,
                blake3: hash,
                message: None,
            },
            Some(manifest),
        ),
        Err(error) => {
            problems.push(error.to_string());
            (
                ManifestCheck {
                    status: FileStatus::Invalid,
                    blake3: hash,
                    message: Some(error.to_string()),
                },
                None,
            )
        }
    }
}

/// Checks every listed file, then lists unlisted ones. `manifest_bytes` are
/// the bytes `manifest` was decoded from. A problem that concerns no single
/// file is added to `problems`.
fn check_files(
    dir: &Path,
    manifest: &Manifest,
    manifest_bytes: &[u8],
    problems: &mut Vec<String>,
) -> Result<Vec<FileCheck>, SealError> {
    let mut files: Vec<FileCheck> = manifest
        .files
        .iter()
        .map(|entry| check_listed_file(dir, entry))
        .collect();

    if files.iter().all(|file| file.status == FileStatus::Ok) {
        if let Err(error) = check_records(dir, manifest_bytes, &mut files) {
            problems.push(error.to_string());
        }
    }

    let listed: HashSet<&str> = manifest
        .files
        .iter()
        .map(|entry| entry.name.as_str())
        .collect();
    let listing = fs::read_dir(dir).map_err(|error| SealError::io(dir, error))?;
    let mut extra = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|error| SealError::io(dir, error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != MANIFEST_NAME && name != SEAL_FILE_NAME && !listed.contains(name.as_str()) {
            extra.push(name);
        }
    }
    extra.sort();
    files.extend(extra.into_iter().map(|name| FileCheck {
        name,
        kind: None,
        status: FileStatus::Extra,
        message: Some("not listed in the manifest".to_string()),
    }));
    Ok(files)
}

/// Checks that the listed file exists as a regular file with the listed
/// size and BLAKE3 hash.
fn check_listed_file(dir: &Path, entry: &FileEntry) -> FileCheck {
    let path = dir.join(&entry.name);
    let problem = match fs::symlink_metadata(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Some((
            FileStatus::Missing,
            "listed in the manifest but missing".to_string(),
        )),
        Err(error) => Some((FileStatus::Invalid, SealError::io(&path, error).to_string())),
        Ok(metadata) if !metadata.is_file() => Some((
            FileStatus::Changed,
            "not a regular file (a directory, link or special file)".to_string(),
        )),
        Ok(metadata) if metadata.len() != entry.size => Some((
            FileStatus::Changed,
            format!(
                "size is {} bytes, but the manifest lists {} bytes",
                metadata.len(),
                entry.size
            ),
        )),
        Ok(_) => check_hash(&path, entry),
    };
    let (status, message) = match problem {
        Some((status, message)) => (status, Some(message)),
        None => (FileStatus::Ok, None),
    };
    FileCheck {
        name: entry.name.clone(),
        kind: Some(entry.kind),
        status,
        message,
    }
}

/// Hashes the file as the manifest defines its hash: the whole file for a
/// record file, the data between the 4096-byte header with padding and the
/// chunk hashes for a data file. Returns the problem, if any. The chunk
/// hashes are checked with the other format checks.
fn check_hash(path: &Path, entry: &FileEntry) -> Option<(FileStatus, String)> {
    let (offset, len, what) = if entry.kind.is_data() {
        (
            PAGE_DATA_OFFSET,
            data_len_for_file_size(entry.size).unwrap_or(u64::MAX),
            "BLAKE3 hash of the data (from byte 4096)",
        )
    } else {
        (0, u64::MAX, "BLAKE3 hash")
    };
    match hash_file(path, offset, len) {
        Ok((hash, _)) if hash.to_hex().as_str() == entry.blake3 => None,
        Ok((hash, _)) => Some((
            FileStatus::Changed,
            format!(
                "{what} is {}, but the manifest lists {}",
                hash.to_hex(),
                entry.blake3
            ),
        )),
        Err(error) => Some((FileStatus::Invalid, error.to_string())),
    }
}

/// Runs the image format's checks on every file: headers, padding and chunk
/// hashes of data files, and decoding and validation of records. Marks each failing file
/// as invalid. Fails only when the image cannot be opened, which happens
/// when a file changed after the checks of [`check_listed_file`].
fn check_records(
    dir: &Path,
    manifest_bytes: &[u8],
    files: &mut [FileCheck],
) -> Result<(), ImageError> {
    let image = Image::open_expecting_manifest_hash(dir, &blake3::hash(manifest_bytes))?;
    for file in files.iter_mut() {
        let Some(kind) = file.kind else { continue };
        // Without the key, the records of an encrypted image cannot be
        // decoded; their headers and hashes are what can be checked.
        let locked = image.is_locked();
        let result = match kind {
            RecordKind::Pages | RecordKind::FileData if locked => {
                image.check_data_file(&file.name, kind)
            }
            RecordKind::Process
            | RecordKind::MemoryMap
            | RecordKind::FdTable
            | RecordKind::IpcNamespace
                if locked =>
            {
                image.check_record_file(&file.name, kind)
            }
            RecordKind::Process => image.read_record::<Process>(&file.name).map(|_| ()),
            RecordKind::MemoryMap => check_memory_map(&image, &file.name),
            RecordKind::FdTable => check_fd_table(&image, &file.name),
            RecordKind::IpcNamespace => check_ipc_namespace(&image, &file.name),
            RecordKind::Pages | RecordKind::FileData => {
                image.data_reader(&file.name, kind).map(|_| ())
            }
            RecordKind::Manifest => Err(ImageError::Invalid {
                path: dir.join(&file.name),
                message: "file is listed with kind manifest".to_string(),
            }),
        };
        if let Err(error) = result {
            file.status = FileStatus::Invalid;
            file.message = Some(error.to_string());
        }
    }
    Ok(())
}

/// Reads a memory map and checks its page runs against the length of its
/// pages file.
fn check_memory_map(image: &Image, name: &str) -> Result<(), ImageError> {
    let map: MemoryMap = image.read_record(name)?;
    if map.pages.is_empty() && map.pages_file.is_empty() {
        return Ok(());
    }
    if let Some(pages) = referenced_data_file(image, &map.pages_file, RecordKind::Pages)? {
        validate_memory_map(&map, pages.len, &image.dir().join(name))?;
    }
    Ok(())
}

/// Reads an fd table and checks that each file data file it names is listed
/// with kind file data.
fn check_fd_table(image: &Image, name: &str) -> Result<(), ImageError> {
    let table: FdTable = image.read_record(name)?;
    for fd in &table.fds {
        if let OpenFile::Regular {
            content: Some(content),
            ..
        } = &fd.file
        {
            referenced_data_file(image, content, RecordKind::FileData)?;
        }
    }
    Ok(())
}

/// Reads an IPC namespace record and checks that the contents of each
/// shared memory segment are listed with kind file data.
fn check_ipc_namespace(image: &Image, name: &str) -> Result<(), ImageError> {
    let ipc: IpcNamespace = image.read_record(name)?;
    for segment in &ipc.shm {
        referenced_data_file(image, &segment.contents, RecordKind::FileData)?;
    }
    Ok(())
}

/// Locates the data file `name` that a record refers to. Fails when it is
/// not listed with kind `kind`, which is a fault of the referring record.
/// Returns `None` when the data file itself is damaged, because that is
/// reported on the data file.
fn referenced_data_file(
    image: &Image,
    name: &str,
    kind: RecordKind,
) -> Result<Option<DataFile>, ImageError> {
    match image.data_file(name, kind) {
        Ok(data) => Ok(Some(data)),
        Err(error @ (ImageError::UnlistedFile { .. } | ImageError::WrongKind { .. })) => Err(error),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::*;

    /// Returns the check of `name`, panicking with the report if it is absent.
    fn file<'a>(report: &'a VerifyReport, name: &str) -> &'a FileCheck {
        report
            .files
            .iter()
            .find(|file| file.name == name)
            .unwrap_or_else(|| panic!("{name} not in report: {report:#?}"))
    }

    /// Asserts that only `name` has a problem, with `status`, and that its
    /// message contains `expected`.
    fn assert_only_problem(report: &VerifyReport, name: &str, status: FileStatus, expected: &str) {
        assert!(!report.ok, "{report:#?}");
        let check = file(report, name);
        assert_eq!(check.status, status, "{report:#?}");
        let message = check.message.as_deref().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{name}: {message:?} lacks {expected:?}"
        );
        for other in report.files.iter().filter(|other| other.name != name) {
            assert_eq!(other.status, FileStatus::Ok, "{report:#?}");
        }
        assert_eq!(report.seal.status, SealStatus::Valid, "{report:#?}");
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert!(report.problems[0].starts_with(&format!("{name}: ")));
    }

    #[test]
    fn intact_image_reports_ok() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);

        let report = verify_image(&dir, &[public]).expect("verify");
        assert!(report.ok, "{report:#?}");
        assert!(report.problems.is_empty());
        assert_eq!(report.seal.status, SealStatus::Valid);
        assert_eq!(report.manifest.status, FileStatus::Ok);
        let names: Vec<&str> = report.files.iter().map(|file| file.name.as_str()).collect();
        assert_eq!(names, [MM, FDS, PAGES, FILE_DATA]);
        assert!(report
            .files
            .iter()
            .all(|file| file.status == FileStatus::Ok));
    }

    #[test]
    fn flipped_byte_in_each_record_is_named() {
        for name in [MM, FDS] {
            let temp = TempDir::new();
            let (key, public) = key_pair(&temp, "signer");
            let dir = sealed_image(&temp, "img", &key);
            flip_byte(&dir, name, 40);

            let report = verify_image(&dir, &[public]).unwrap();
            assert_only_problem(&report, name, FileStatus::Changed, "BLAKE3 hash is");
        }
    }

    #[test]
    fn flipped_byte_in_data_is_named() {
        for name in [PAGES, FILE_DATA] {
            let temp = TempDir::new();
            let (key, public) = key_pair(&temp, "signer");
            let dir = sealed_image(&temp, "img", &key);
            flip_byte(&dir, name, 4096 + 3);

            let report = verify_image(&dir, &[public]).unwrap();
            assert_only_problem(
                &report,
                name,
                FileStatus::Changed,
                "BLAKE3 hash of the data (from byte 4096) is",
            );
        }
    }

    #[test]
    fn flipped_byte_in_data_header_is_named() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        flip_byte(&dir, PAGES, 100);

        let report = verify_image(&dir, &[public]).unwrap();
        assert_only_problem(&report, PAGES, FileStatus::Invalid, "padding");
    }

    #[test]
    fn flipped_byte_in_manifest_fails_seal_and_manifest() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        flip_byte(&dir, MANIFEST_NAME, 60);

        let report = verify_image(&dir, &[public]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.seal.status, SealStatus::Invalid);
        let message = report.seal.message.as_deref().unwrap_or_default();
        assert!(message.contains("changed after sealing"), "{message}");
        assert_eq!(report.manifest.status, FileStatus::Invalid);
        assert!(report.files.is_empty());
    }

    #[test]
    fn removed_and_added_files_are_named() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        fs::remove_file(dir.join(FDS)).unwrap();
        fs::write(dir.join("payload"), "extra").unwrap();
        fs::create_dir(dir.join("subdir")).unwrap();
        flip_byte(&dir, MM, 40);

        let report = verify_image(&dir, &[public]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.seal.status, SealStatus::Valid);
        assert_eq!(file(&report, FDS).status, FileStatus::Missing);
        assert_eq!(file(&report, MM).status, FileStatus::Changed);
        assert_eq!(file(&report, PAGES).status, FileStatus::Ok);
        assert_eq!(file(&report, "payload").status, FileStatus::Extra);
        assert_eq!(file(&report, "subdir").status, FileStatus::Extra);
        assert_eq!(file(&report, "payload").kind, None);
        assert_eq!(report.problems.len(), 4, "{:#?}", report.problems);
        assert!(report
            .problems
            .iter()
            .any(|problem| problem == &format!("{FDS}: listed in the manifest but missing")));
        assert!(report
            .problems
            .iter()
            .any(|problem| problem == "payload: not listed in the manifest"));
    }

    #[test]
    fn truncated_file_reports_size() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let path = dir.join(PAGES);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 4096]).unwrap();

        let report = verify_image(&dir, &[public]).unwrap();
        assert_only_problem(
            &report,
            PAGES,
            FileStatus::Changed,
            &format!(
                "size is {} bytes, but the manifest lists {} bytes",
                bytes.len() - 4096,
                bytes.len()
            ),
        );
    }

    #[test]
    fn missing_seal_and_wrong_key_are_reported() {
        let temp = TempDir::new();
        let (key, _) = key_pair(&temp, "signer");
        let (_, other) = key_pair(&temp, "other");
        let dir = sealed_image(&temp, "img", &key);

        let report = verify_image(&dir, &[other]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.seal.status, SealStatus::Invalid);
        assert!(report
            .files
            .iter()
            .all(|file| file.status == FileStatus::Ok));
        assert!(
            report.problems[0].contains("not a trusted key"),
            "{:?}",
            report.problems
        );

        fs::remove_file(dir.join(SEAL_FILE_NAME)).unwrap();
        let report = verify_image(&dir, &[other]).unwrap();
        assert_eq!(report.seal.status, SealStatus::Missing);
        assert!(report.seal.info.is_none());
        assert!(
            report.problems[0].contains("is not sealed"),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn missing_manifest_is_reported() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        fs::remove_file(dir.join(MANIFEST_NAME)).unwrap();

        let report = verify_image(&dir, &[public]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.manifest.status, FileStatus::Missing);
        assert_eq!(report.seal.status, SealStatus::Invalid);
        assert!(report.files.is_empty());
    }

    #[test]
    fn manifest_symlink_is_invalid() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let outside = temp.path().join("outside-manifest");
        fs::rename(dir.join(MANIFEST_NAME), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(MANIFEST_NAME)).unwrap();

        let report = verify_image(&dir, &[public]).unwrap();
        assert!(!report.ok);
        assert_eq!(report.manifest.status, FileStatus::Invalid);
        let message = report.manifest.message.as_deref().unwrap_or_default();
        assert!(message.contains("not a regular file"), "{message}");
    }

    #[test]
    fn missing_directory_is_an_error() {
        let temp = TempDir::new();
        let (_, public) = key_pair(&temp, "signer");
        let error = verify_image(&temp.path().join("absent"), &[public]).unwrap_err();
        assert!(
            matches!(error, SealError::Image(ImageError::NotFound(_))),
            "{error}"
        );
    }

    #[test]
    fn report_serializes_statuses_in_snake_case() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        fs::write(dir.join("payload"), "extra").unwrap();

        let report = verify_image(&dir, &[public]).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["seal"]["status"], "valid");
        assert_eq!(json["seal"]["info"]["key_id"], public.key_id().as_str());
        assert_eq!(json["manifest"]["status"], "ok");
        assert_eq!(json["files"][0]["status"], "ok");
        assert_eq!(json["files"][0]["kind"], "MemoryMap");
        assert_eq!(json["files"][4]["name"], "payload");
        assert_eq!(json["files"][4]["status"], "extra");
        assert_eq!(json["problems"][0], "payload: not listed in the manifest");
    }
}
