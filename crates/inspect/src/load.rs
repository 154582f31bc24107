//! Loading an image for inspection.
//!
//! Unlike [`Image::open`], which rejects an image as soon as one file is
//! wrong, the loader checks every listed file on its own, records what is
//! wrong with it and goes on. A record that fails a check is still decoded
//! when its bytes allow it, and is then marked unverified: views show it
//! with an UNVERIFIED label and never use it for anything but display.
//! Only a missing or unreadable manifest stops the loader, because without
//! it nothing in the image can be located or checked.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use stasis_image::chunks::{data_len_for_file_size, ChunkHasher};
use stasis_image::format::{
    parse_header, payload_checksum, HEADER_SIZE, MANIFEST_NAME, MAX_MANIFEST_SIZE, MAX_RECORD_SIZE,
    SEAL_FILE_NAME,
};
use stasis_image::validate::{validate_manifest, validate_memory_map};
use stasis_image::{crypto, ImageKey};
use stasis_image::{
    decode_record_file, FdTable, FileEntry, Image, ImageError, IpcNamespace, Manifest, MemoryMap,
    Process, Record, RecordKind, PAGE_DATA_OFFSET, PAGE_SIZE,
};

use crate::error::InspectError;

/// Size of the read buffer used to hash data files, in bytes.
const HASH_BUFFER_SIZE: usize = 1 << 20;

/// An image as far as it could be read. Built by [`load`].
#[derive(Debug)]
pub struct LoadedImage {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Size of the manifest file in bytes.
    pub manifest_size: u64,
    /// One report per file listed in the manifest, in manifest order.
    pub files: Vec<FileReport>,
    /// Records of each process in `manifest.processes`, in that order.
    pub processes: Vec<ProcessRecords>,
    /// The System V IPC objects of the tree's own IPC namespace, if the
    /// image has that record and it could be decoded.
    pub ipc: Option<Checked<IpcNamespace>>,
    /// Problems that concern more than one file, or no listed file.
    pub problems: Vec<Problem>,
    /// Files in the image directory that the manifest does not list, other
    /// than the seal.
    pub unlisted: Vec<String>,
    /// The image directory has a seal file. Inspection does not check the
    /// seal, because that needs a trusted public key (`stasis verify`).
    pub seal_file_present: bool,
    pub restore_check: RestoreCheck,
    pub encryption: EncryptionState,
    /// Key and salt of an unlocked encrypted image, to decrypt pages.
    pub(crate) page_key: Option<(ImageKey, [u8; crypto::SALT_SIZE])>,
}

/// Whether the files of the image are encrypted, and whether the key was
/// given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptionState {
    Clear,
    /// Encrypted, and the key with this ID was given: records are shown.
    Unlocked {
        key_id: String,
    },
    /// Encrypted and no key was given: only the manifest and the hashes of
    /// the files were checked, and no record was read.
    Locked {
        key_id: String,
    },
}

/// The result of checking one listed file.
#[derive(Clone, Debug)]
pub struct FileReport {
    pub name: String,
    pub kind: RecordKind,
    pub listed_size: u64,
    /// Size on disk, or `None` when the file is missing or not a regular
    /// file.
    pub actual_size: Option<u64>,
    /// Description of the first problem found with the file, or `None`
    /// when it passed every check, its hash included.
    pub problem: Option<String>,
}

/// A problem found by checking files against each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned, if there is one.
    pub file: Option<String>,
    pub message: String,
}

/// A decoded record and whether it can be trusted.
#[derive(Clone, Debug)]
pub struct Checked<T> {
    pub record: T,
    /// The file the record was read from.
    pub file: String,
    /// True when the file passed every check: size, hash, header, decoding
    /// and the record's own validation.
    pub verified: bool,
}

/// The records of one process. A record is `None` when no readable file
/// contains it.
#[derive(Clone, Debug)]
pub struct ProcessRecords {
    pub pid: i32,
    pub process: Option<Checked<Process>>,
    pub memory: Option<Checked<MemoryMap>>,
    pub fds: Option<Checked<FdTable>>,
}

/// The outcome of the checks that `stasis restore` runs when it opens the
/// image, run through [`Image`] itself once every file passed the
/// loader's own checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreCheck {
    Passed,
    Failed(String),
    /// Not run, because files already failed the loader's checks.
    Skipped,
}

/// A record decoded from one listed file.
enum Decoded {
    Process(Box<Checked<Process>>),
    Memory(Checked<MemoryMap>),
    Fds(Checked<FdTable>),
    Ipc(Checked<IpcNamespace>),
}

impl LoadedImage {
    /// Returns true when a file or a cross-check failed.
    pub fn is_damaged(&self) -> bool {
        self.files.iter().any(|file| file.problem.is_some())
            || !self.problems.is_empty()
            || matches!(self.restore_check, RestoreCheck::Failed(_))
    }

    /// Returns every problem: those of single files first, in manifest
    /// order, then the cross-checks, then the restore check.
    pub fn all_problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self
            .files
            .iter()
            .filter_map(|file| {
                file.problem.as_ref().map(|message| Problem {
                    file: Some(file.name.clone()),
                    message: message.clone(),
                })
            })
            .collect();
        problems.extend(self.problems.iter().cloned());
        if let RestoreCheck::Failed(message) = &self.restore_check {
            problems.push(Problem {
                file: None,
                message: format!("restore would reject the image: {message}"),
            });
        }
        problems
    }

    /// Returns the report of the listed file `name`.
    pub fn file(&self, name: &str) -> Option<&FileReport> {
        self.files.iter().find(|file| file.name == name)
    }

    /// Returns the records of process `pid`.
    pub fn process(&self, pid: i32) -> Option<&ProcessRecords> {
        self.processes.iter().find(|records| records.pid == pid)
    }
}

/// Loads the image in `dir`, checking every file. Returns an error only
/// when the directory or its manifest cannot be read; damage to other
/// files is reported in the result.
pub fn load(dir: &Path) -> Result<LoadedImage, InspectError> {
    load_with_key(dir, None)
}

/// Loads the image in `dir` like [`load`], decrypting an encrypted image
/// with `key`. Without a key, an encrypted image is loaded without its
/// records. A key for an image in clear, or the wrong key, is an error.
pub fn load_with_key(dir: &Path, key: Option<&ImageKey>) -> Result<LoadedImage, InspectError> {
    check_dir(dir)?;
    let (manifest, version, manifest_size) = read_manifest(dir)?;
    let ciphers = Ciphers::new(dir, &manifest, key)?;

    let mut files = Vec::with_capacity(manifest.files.len());
    let mut decoded = Vec::new();
    for entry in &manifest.files {
        let (report, record) = check_file(dir, entry, version, &ciphers);
        files.push(report);
        decoded.extend(record);
    }

    // A seal that is a symbolic link or not a regular file is one that
    // `stasis verify` rejects, so it is listed as an unexpected file.
    let seal_file_present =
        fs::symlink_metadata(dir.join(SEAL_FILE_NAME)).is_ok_and(|metadata| metadata.is_file());
    let mut image = LoadedImage {
        dir: dir.to_path_buf(),
        processes: Vec::new(),
        ipc: None,
        problems: Vec::new(),
        unlisted: list_unlisted(dir, &manifest, seal_file_present),
        seal_file_present,
        restore_check: RestoreCheck::Skipped,
        encryption: ciphers.state.clone(),
        page_key: ciphers
            .salt
            .zip(ciphers.key.cloned())
            .map(|(salt, key)| (key, salt)),
        manifest,
        manifest_size,
        files,
    };
    if ciphers.is_locked() {
        // No record was read, so there is nothing to cross-check.
        image.processes = image
            .manifest
            .processes
            .iter()
            .map(|&pid| ProcessRecords {
                pid,
                process: None,
                memory: None,
                fds: None,
            })
            .collect();
        if !image.is_damaged() {
            image.restore_check = match run_restore_checks(dir, None) {
                Ok(()) => RestoreCheck::Passed,
                Err(error) => RestoreCheck::Failed(error.to_string()),
            };
        }
        return Ok(image);
    }
    assign_records(&mut image, decoded);
    check_memory_maps(&mut image);
    check_content_files(&mut image);
    if !image.is_damaged() {
        image.restore_check = match run_restore_checks(dir, key) {
            Ok(()) => RestoreCheck::Passed,
            Err(error) => RestoreCheck::Failed(error.to_string()),
        };
    }
    Ok(image)
}

fn check_dir(dir: &Path) -> Result<(), InspectError> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(InspectError::NotADirectory(dir.to_path_buf())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(InspectError::NotFound(dir.to_path_buf()))
        }
        Err(error) => Err(InspectError::io(dir, error)),
    }
}

/// Reads, decodes and validates the manifest. Returns it with the format
/// version from its header and its size.
fn read_manifest(dir: &Path) -> Result<(Manifest, u32, u64), InspectError> {
    let path = dir.join(MANIFEST_NAME);
    let bytes = match read_regular(&path, MAX_MANIFEST_SIZE) {
        Ok(bytes) => bytes,
        Err(FileProblem::Missing) => return Err(InspectError::MissingManifest(dir.to_path_buf())),
        Err(problem) => {
            return Err(InspectError::BadManifest {
                source: ImageError::Invalid {
                    path: path.clone(),
                    message: problem.to_string(),
                },
                path,
            })
        }
    };
    let bad = |source: ImageError| InspectError::BadManifest {
        path: path.clone(),
        source,
    };

    let header = parse_header(&bytes, &path).map_err(bad)?;
    let manifest: Manifest = decode_typed(&bytes, &path).map_err(bad)?;
    validate_manifest(&manifest, &path).map_err(bad)?;
    if manifest.format_version != header.version {
        return Err(bad(ImageError::Invalid {
            path: path.clone(),
            message: format!(
                "manifest field format_version is {} but the header has version {}",
                manifest.format_version, header.version
            ),
        }));
    }
    Ok((manifest, header.version, bytes.len() as u64))
}

/// Reason a file could not be read at all.
#[derive(Debug)]
enum FileProblem {
    Missing,
    NotRegular,
    TooLarge { size: u64, limit: u64 },
    Io(io::Error),
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::Missing => formatter.write_str("missing"),
            FileProblem::NotRegular => formatter.write_str("not a regular file"),
            FileProblem::TooLarge { size, limit } => write!(
                formatter,
                "{size} bytes, more than the limit of {limit} bytes for this kind of file"
            ),
            FileProblem::Io(error) => write!(formatter, "unreadable: {error}"),
        }
    }
}

/// Returns the size of the regular file `path`, without following a
/// symbolic link.
fn regular_size(path: &Path) -> Result<u64, FileProblem> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
        Ok(_) => Err(FileProblem::NotRegular),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(FileProblem::Missing),
        Err(error) => Err(FileProblem::Io(error)),
    }
}

/// Opens the regular file `path`. The type is checked before the open,
/// because opening a FIFO placed in an image would block.
fn open_regular(path: &Path) -> Result<File, FileProblem> {
    regular_size(path)?;
    let file = File::open(path).map_err(FileProblem::Io)?;
    match file.metadata() {
        Ok(metadata) if metadata.is_file() => Ok(file),
        Ok(_) => Err(FileProblem::NotRegular),
        Err(error) => Err(FileProblem::Io(error)),
    }
}

/// Reads the whole regular file `path`, which may have at most `limit`
/// bytes.
fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileProblem> {
    let file = open_regular(path)?;
    let size = file.metadata().map_err(FileProblem::Io)?.len();
    if size > limit {
        return Err(FileProblem::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(FileProblem::Io)?;
    if bytes.len() as u64 > limit {
        return Err(FileProblem::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Decodes a whole record file into `T`, checking header, kind, size,
/// checksum and CBOR, but not the manifest hash or the record's
/// validation.
fn decode_typed<T: Record + DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, ImageError> {
    let (kind, value) = decode_record_file(bytes, path)?;
    if kind != T::KIND {
        return Err(ImageError::WrongKind {
            path: path.to_path_buf(),
            expected: T::KIND,
            found: kind,
        });
    }
    serde_json::from_value(value).map_err(|error| ImageError::Decode {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// Decodes a record file that failed a check, for display only. The
/// header checksum is recomputed in a copy first, so that a damaged
/// payload that still parses as CBOR can be shown.
fn decode_for_display<T: Record + DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
) -> Result<T, ImageError> {
    decode_typed(&with_payload_checksum(bytes), path)
}

/// Decodes any record file into its kind and JSON value like
/// [`decode_record_file`], but accepts a header checksum that does not
/// match the payload. The result is unverified and only fit for display.
///
/// [`decode_record_file`]: stasis_image::decode_record_file
pub fn decode_ignoring_checksum(
    bytes: &[u8],
    path: &Path,
) -> Result<(RecordKind, serde_json::Value), ImageError> {
    decode_record_file(&with_payload_checksum(bytes), path)
}

/// Returns `value`, the JSON of a record of kind `kind`, as pretty JSON
/// with the fields in the order the record type declares them, rather
/// than the sorted order of a `serde_json::Value`.
pub fn pretty_record_json(
    kind: RecordKind,
    value: serde_json::Value,
) -> Result<String, ImageError> {
    let invalid = |error: serde_json::Error| ImageError::InvalidJson {
        kind,
        message: error.to_string(),
    };
    match kind {
        RecordKind::Manifest => pretty::<Manifest>(value).map_err(invalid),
        RecordKind::Process => pretty::<Process>(value).map_err(invalid),
        RecordKind::MemoryMap => pretty::<MemoryMap>(value).map_err(invalid),
        RecordKind::FdTable => pretty::<FdTable>(value).map_err(invalid),
        RecordKind::IpcNamespace => pretty::<IpcNamespace>(value).map_err(invalid),
        RecordKind::Pages | RecordKind::FileData => Err(ImageError::InvalidJson {
            kind,
            message: "a data file has no JSON form".to_string(),
        }),
    }
}

fn pretty<T: Record + DeserializeOwned>(
    value: serde_json::Value,
) -> Result<String, serde_json::Error> {
    let record: T = serde_json::from_value(value)?;
    serde_json::to_string_pretty(&record)
}

/// Returns a copy of a record file with the header checksum set to that
/// of its payload.
fn with_payload_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut copy = bytes.to_vec();
    if let Some(payload) = copy.get(HEADER_SIZE as usize..) {
        let checksum = payload_checksum(payload);
        copy[24..32].copy_from_slice(&checksum.to_le_bytes());
    }
    copy
}

/// The encryption of the image being loaded, with its salt and key.
struct Ciphers<'a> {
    state: EncryptionState,
    salt: Option<[u8; crypto::SALT_SIZE]>,
    key: Option<&'a ImageKey>,
}

impl<'a> Ciphers<'a> {
    fn new(
        dir: &Path,
        manifest: &Manifest,
        key: Option<&'a ImageKey>,
    ) -> Result<Ciphers<'a>, InspectError> {
        let Some(encryption) = &manifest.encryption else {
            if key.is_some() {
                return Err(InspectError::Key(ImageError::NotEncrypted {
                    dir: dir.to_path_buf(),
                }));
            }
            return Ok(Ciphers {
                state: EncryptionState::Clear,
                salt: None,
                key: None,
            });
        };
        let key_id = encryption.key_id.clone();
        if let Some(key) = key {
            if key.key_id() != key_id {
                return Err(InspectError::Key(ImageError::WrongKey {
                    dir: dir.to_path_buf(),
                    expected: key_id,
                    given: key.key_id(),
                }));
            }
        }
        Ok(Ciphers {
            state: match key {
                Some(_) => EncryptionState::Unlocked { key_id },
                None => EncryptionState::Locked { key_id },
            },
            // validate_manifest checked the salt.
            salt: crypto::parse_salt(&encryption.salt),
            key,
        })
    }

    fn is_encrypted(&self) -> bool {
        self.state != EncryptionState::Clear
    }

    fn is_locked(&self) -> bool {
        matches!(self.state, EncryptionState::Locked { .. })
    }

    /// Returns the record file `bytes` of file `name` with its payload
    /// decrypted, as a record file in clear, or the bytes as they are in
    /// an image in clear.
    fn clear_record(&self, name: &str, bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, String> {
        let (Some(salt), Some(key)) = (&self.salt, self.key) else {
            return Ok(bytes);
        };
        let cipher = crypto::FileCipher::new(key, salt, name);
        crypto::clear_record_file(&bytes, &cipher, path).map_err(|error| error.to_string())
    }
}

/// Checks one listed file and decodes it if it is a record file.
fn check_file(
    dir: &Path,
    entry: &FileEntry,
    version: u32,
    ciphers: &Ciphers,
) -> (FileReport, Option<Decoded>) {
    let path = dir.join(&entry.name);
    let mut report = FileReport {
        name: entry.name.clone(),
        kind: entry.kind,
        listed_size: entry.size,
        actual_size: regular_size(&path).ok(),
        problem: None,
    };
    let decoded = match entry.kind {
        RecordKind::Process => check_record::<Process>(&path, entry, version, ciphers, &mut report)
            .map(|checked| Decoded::Process(Box::new(checked))),
        RecordKind::MemoryMap => {
            check_record::<MemoryMap>(&path, entry, version, ciphers, &mut report)
                .map(Decoded::Memory)
        }
        RecordKind::FdTable => {
            check_record::<FdTable>(&path, entry, version, ciphers, &mut report).map(Decoded::Fds)
        }
        RecordKind::IpcNamespace => {
            check_record::<IpcNamespace>(&path, entry, version, ciphers, &mut report)
                .map(Decoded::Ipc)
        }
        RecordKind::Pages | RecordKind::FileData => {
            report.problem = check_data_file(&path, entry, version, ciphers.is_encrypted()).err();
            None
        }
        // validate_manifest rejects this kind in the file list.
        RecordKind::Manifest => {
            report.problem = Some("listed with kind manifest".to_string());
            None
        }
    };
    (report, decoded)
}

/// Checks and decodes a record file. Sets `report.problem` to the first
/// problem found, and returns the record, unverified when there was a
/// problem, if it could be decoded at all.
fn check_record<T: Record + DeserializeOwned>(
    path: &Path,
    entry: &FileEntry,
    version: u32,
    ciphers: &Ciphers,
    report: &mut FileReport,
) -> Option<Checked<T>> {
    let bytes = match read_regular(path, MAX_RECORD_SIZE) {
        Ok(bytes) => bytes,
        Err(problem) => {
            report.problem = Some(problem.to_string());
            return None;
        }
    };

    let problem = if bytes.len() as u64 != entry.size {
        Some(size_problem(entry.size, bytes.len() as u64))
    } else if blake3::hash(&bytes).to_hex().as_str() != entry.blake3 {
        Some("corrupted: its BLAKE3 hash differs from the one in the manifest".to_string())
    } else {
        None
    };
    if ciphers.is_encrypted() {
        // An encrypted record can be decoded only with the key, and only
        // when it is intact.
        if let Some(problem) = problem {
            report.problem = Some(problem);
            return None;
        }
        if ciphers.is_locked() {
            return None;
        }
        let checked = ciphers
            .clear_record(&entry.name, bytes, path)
            .and_then(|clear| verify_record::<T>(&clear, path, version));
        return match checked {
            Ok(record) => Some(Checked {
                record,
                file: entry.name.clone(),
                verified: true,
            }),
            Err(problem) => {
                report.problem = Some(problem);
                None
            }
        };
    }
    let checked = match problem {
        None => verify_record::<T>(&bytes, path, version),
        Some(problem) => Err(problem),
    };
    match checked {
        Ok(record) => Some(Checked {
            record,
            file: entry.name.clone(),
            verified: true,
        }),
        Err(problem) => {
            let record = decode_for_display::<T>(&bytes, path);
            report.problem = Some(match &record {
                Ok(_) => problem,
                Err(error) => format!("{problem}; the record cannot be decoded: {error}"),
            });
            record.ok().map(|record| Checked {
                record,
                file: entry.name.clone(),
                verified: false,
            })
        }
    }
}

/// Runs the checks after the hash on a record file whose size and hash
/// match the manifest: header, version, decoding and validation.
fn verify_record<T: Record + DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    version: u32,
) -> Result<T, String> {
    let header = parse_header(bytes, path).map_err(|error| error.to_string())?;
    if header.version != version {
        return Err(version_problem(header.version, version));
    }
    let record: T = decode_typed(bytes, path).map_err(|error| error.to_string())?;
    record.validate(path).map_err(|error| error.to_string())?;
    Ok(record)
}

fn size_problem(listed: u64, actual: u64) -> String {
    if actual < listed {
        format!("truncated: it has {actual} bytes, the manifest lists {listed}")
    } else {
        format!("too long: it has {actual} bytes, the manifest lists {listed}")
    }
}

fn version_problem(found: u32, manifest: u32) -> String {
    format!("it has format version {found} but the manifest has version {manifest}")
}

/// Checks a pages or file data file: size, header, padding and the hash of
/// its data.
fn check_data_file(
    path: &Path,
    entry: &FileEntry,
    version: u32,
    encrypted: bool,
) -> Result<(), String> {
    let size = regular_size(path).map_err(|problem| problem.to_string())?;
    if size != entry.size {
        return Err(size_problem(entry.size, size));
    }
    let mut file = open_regular(path).map_err(|problem| problem.to_string())?;

    let mut start = Vec::with_capacity(PAGE_DATA_OFFSET as usize);
    (&mut file)
        .take(PAGE_DATA_OFFSET)
        .read_to_end(&mut start)
        .map_err(|error| format!("unreadable: {error}"))?;
    let data_len = check_data_header(&start, path, entry, version, size, encrypted)?;

    let (hash, trailer) =
        hash_data(&mut file, data_len).map_err(|error| format!("unreadable: {error}"))?;
    if hash != entry.blake3 {
        return Err(
            "corrupted: the BLAKE3 hash of its data differs from the one in the manifest"
                .to_string(),
        );
    }
    let mut stored = Vec::with_capacity(trailer.len());
    file.read_to_end(&mut stored)
        .map_err(|error| format!("unreadable: {error}"))?;
    if stored != trailer {
        return Err("corrupted: the chunk hashes after its data do not match the data".to_string());
    }
    Ok(())
}

/// Checks the first 4096 bytes of a data file: header, kind, version,
/// payload length against the file size, and zero padding.
fn check_data_header(
    start: &[u8],
    path: &Path,
    entry: &FileEntry,
    version: u32,
    size: u64,
    encrypted: bool,
) -> Result<u64, String> {
    let header = parse_header(start, path).map_err(|error| error.to_string())?;
    if header.kind != entry.kind {
        return Err(format!(
            "its header has kind '{}' but the manifest lists '{}'",
            header.kind, entry.kind
        ));
    }
    if header.version != version {
        return Err(version_problem(header.version, version));
    }
    let expected = header.file_size(path).map_err(|error| error.to_string())?;
    if expected != size {
        return Err(format!(
            "its header gives {} data bytes, so {expected} bytes in all, but it has {size}",
            header.payload_len
        ));
    }
    let plain = if encrypted {
        crypto::plain_len(header.payload_len).ok_or_else(|| {
            format!(
                "its {} bytes of encrypted data end in a chunk too short to hold a tag",
                header.payload_len
            )
        })?
    } else {
        header.payload_len
    };
    if entry.kind == RecordKind::Pages && plain % PAGE_SIZE != 0 {
        return Err(format!(
            "pages data is {plain} bytes, which is not a multiple of {PAGE_SIZE}"
        ));
    }
    if start[HEADER_SIZE as usize..].iter().any(|&byte| byte != 0) {
        return Err("the padding after the header is not zero".to_string());
    }
    Ok(header.payload_len)
}

/// Hashes the next `len` bytes of `file`. Returns the hash as hex and the
/// chunk hashes that should follow the data.
fn hash_data(file: &mut File, len: u64) -> io::Result<(String, Vec<u8>)> {
    let mut hasher = ChunkHasher::new();
    let mut buffer = vec![0u8; HASH_BUFFER_SIZE];
    let mut left = len;
    while left > 0 {
        let want = (left as usize).min(buffer.len());
        file.read_exact(&mut buffer[..want])?;
        hasher.update(&buffer[..want]);
        left -= want as u64;
    }
    let (hash, trailer) = hasher.finish();
    Ok((hash.to_hex().to_string(), trailer))
}

/// Returns the names in `dir` that the manifest does not list, sorted,
/// leaving out the seal file when `seal_file_present`.
fn list_unlisted(dir: &Path, manifest: &Manifest, seal_file_present: bool) -> Vec<String> {
    let mut listed: HashSet<&str> = manifest
        .files
        .iter()
        .map(|entry| entry.name.as_str())
        .chain([MANIFEST_NAME])
        .collect();
    if seal_file_present {
        listed.insert(SEAL_FILE_NAME);
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut unlisted: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| !listed.contains(name.as_str()))
        .collect();
    unlisted.sort();
    unlisted
}

/// Gives each process in the manifest its records, matched by the PID
/// inside each record. A verified record wins over an unverified one.
fn assign_records(image: &mut LoadedImage, decoded: Vec<Decoded>) {
    image.processes = image
        .manifest
        .processes
        .iter()
        .map(|&pid| ProcessRecords {
            pid,
            process: None,
            memory: None,
            fds: None,
        })
        .collect();

    for record in decoded {
        let record = match record {
            Decoded::Ipc(checked) => {
                if let Some(first) = &image.ipc {
                    image.problems.push(Problem {
                        file: Some(checked.file.clone()),
                        message: format!(
                            "is a second IPC namespace record after {:?}; it is ignored",
                            first.file
                        ),
                    });
                } else {
                    image.ipc = Some(checked);
                }
                continue;
            }
            other => other,
        };
        let (pid, file) = match &record {
            Decoded::Process(checked) => (checked.record.pid, checked.file.clone()),
            Decoded::Memory(checked) => (checked.record.pid, checked.file.clone()),
            Decoded::Fds(checked) => (checked.record.pid, checked.file.clone()),
            Decoded::Ipc(_) => unreachable!("handled above"),
        };
        let Some(slot) = image.processes.iter_mut().find(|slot| slot.pid == pid) else {
            image.problems.push(Problem {
                file: Some(file),
                message: format!("is a record of PID {pid}, which the manifest does not list"),
            });
            continue;
        };
        let duplicate = match record {
            Decoded::Process(checked) => place(&mut slot.process, *checked),
            Decoded::Memory(checked) => place(&mut slot.memory, checked),
            Decoded::Fds(checked) => place(&mut slot.fds, checked),
            Decoded::Ipc(_) => unreachable!("handled above"),
        };
        if let Some(other) = duplicate {
            image.problems.push(Problem {
                file: Some(other),
                message: format!("is a second record of its kind for PID {pid}; it is ignored"),
            });
        }
    }

    report_absent_records(image);
}

/// Puts `checked` into `slot`, keeping a verified record over an
/// unverified one. Returns the file name of the record that was dropped.
fn place<T>(slot: &mut Option<Checked<T>>, checked: Checked<T>) -> Option<String> {
    match slot {
        None => {
            *slot = Some(checked);
            None
        }
        Some(current) if !current.verified && checked.verified => {
            let dropped = current.file.clone();
            *slot = Some(checked);
            Some(dropped)
        }
        Some(_) => Some(checked.file),
    }
}

/// Reports each process without a readable record of each kind. A
/// zombie has no memory map or fd table, so only its process record is
/// expected.
fn report_absent_records(image: &mut LoadedImage) {
    for records in &image.processes {
        let zombie = records
            .process
            .as_ref()
            .is_some_and(|process| process.record.zombie_exit_status.is_some());
        let absent = [
            ("process", records.process.is_none()),
            ("memory map", records.memory.is_none() && !zombie),
            ("fd table", records.fds.is_none() && !zombie),
        ];
        for (kind, is_absent) in absent {
            if is_absent {
                image.problems.push(Problem {
                    file: None,
                    message: format!("no readable {kind} record for PID {}", records.pid),
                });
            }
        }
    }
}

/// Checks each verified memory map against its pages file, and marks it
/// unverified when a page run lies outside the pages data.
fn check_memory_maps(image: &mut LoadedImage) {
    let dir = image.dir.clone();
    for index in 0..image.processes.len() {
        let Some(memory) = &image.processes[index].memory else {
            continue;
        };
        let map = &memory.record;
        if map.pages.is_empty() && map.pages_file.is_empty() {
            continue;
        }
        let file = memory.file.clone();
        let problem = match image.file(&map.pages_file) {
            None => Some(format!(
                "names the pages file {:?}, which the manifest does not list",
                map.pages_file
            )),
            Some(pages) if pages.kind != RecordKind::Pages => Some(format!(
                "names {:?} as its pages file, but the manifest lists it with kind '{}'",
                map.pages_file, pages.kind
            )),
            Some(pages) => {
                let stored = data_len_for_file_size(pages.listed_size).unwrap_or(0);
                let data_len = if image.manifest.encryption.is_some() {
                    crypto::plain_len(stored).unwrap_or(0)
                } else {
                    stored
                };
                validate_memory_map(map, data_len, &dir.join(&file))
                    .err()
                    .map(|error| error.to_string())
            }
        };
        if let Some(message) = problem {
            if let Some(memory) = &mut image.processes[index].memory {
                memory.verified = false;
            }
            image.problems.push(Problem {
                file: Some(file),
                message,
            });
        }
    }
}

/// Checks that the data file of each deleted file or pipe in an fd table
/// is listed as file data.
fn check_content_files(image: &mut LoadedImage) {
    let mut problems = Vec::new();
    for fds in image
        .processes
        .iter()
        .filter_map(|records| records.fds.as_ref())
    {
        for fd in &fds.record.fds {
            let Some(content) = fd.file.data_file() else {
                continue;
            };
            let listed = image
                .file(content)
                .is_some_and(|file| file.kind == RecordKind::FileData);
            if !listed {
                problems.push(Problem {
                    file: Some(fds.file.clone()),
                    message: format!(
                        "fd {} names the data file {content:?}, which the manifest does not list \
                         as file data",
                        fd.fd
                    ),
                });
            }
        }
    }
    image.problems.extend(problems);
}

/// Runs the checks of [`Image`] that a restore relies on, except hashing
/// the data files, which the loader has already done.
fn run_restore_checks(dir: &Path, key: Option<&ImageKey>) -> Result<(), ImageError> {
    let mut image = Image::open(dir)?;
    if let Some(key) = key {
        image.unlock(key.clone())?;
    }
    for entry in &image.manifest().files {
        if image.is_locked() {
            match entry.kind {
                RecordKind::Pages | RecordKind::FileData => {
                    image.data_file(&entry.name, entry.kind)?;
                }
                kind => image.check_record_file(&entry.name, kind)?,
            }
            continue;
        }
        match entry.kind {
            RecordKind::Process => {
                image.read_record::<Process>(&entry.name)?;
            }
            RecordKind::MemoryMap => {
                image.read_memory_map(&entry.name)?;
            }
            RecordKind::FdTable => {
                image.read_record::<FdTable>(&entry.name)?;
            }
            RecordKind::IpcNamespace => {
                let ipc: IpcNamespace = image.read_record(&entry.name)?;
                for segment in &ipc.shm {
                    image.data_file(&segment.contents, RecordKind::FileData)?;
                }
            }
            RecordKind::Pages | RecordKind::FileData => {
                image.data_file(&entry.name, entry.kind)?;
            }
            RecordKind::Manifest => {}
        }
    }
    Ok(())
}
