//! Reading an image: opening it through its manifest, reading records and
//! locating and verifying data files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::chunks::{self, ChainingValue};
use crate::crypto::{self, FileCipher, ImageKey, SALT_SIZE};
use crate::error::ImageError;
use crate::format::{
    decode_record_bytes, expect_kind, expect_size, parse_header, Header, HEADER_SIZE,
    MANIFEST_NAME, MAX_MANIFEST_SIZE, MAX_RECORD_SIZE, PAGE_DATA_OFFSET, PAGE_SIZE,
};
use crate::records::{
    FdTable, FileEntry, IpcNamespace, Manifest, MemoryMap, Process, Record, RecordKind,
};
use crate::validate::validate_memory_map;

/// An image opened for reading. Its manifest has been read and checked, and
/// every listed file exists with the listed size.
///
/// `Image` only reads, so it can be shared between threads, for example to
/// verify data files while a restore reads them.
#[derive(Debug)]
pub struct Image {
    dir: PathBuf,
    manifest: Manifest,
    /// Format version from the manifest's header. Every other file of the
    /// image must have the same.
    version: u32,
    /// Index into `manifest.files` by file name.
    index: HashMap<String, usize>,
    /// Salt of an encrypted image, from the manifest.
    salt: Option<[u8; SALT_SIZE]>,
    /// Key of an encrypted image, once [`Image::unlock`] accepted it.
    key: Option<ImageKey>,
}

/// Location of the data of a pages or file data file: `len` bytes starting
/// at byte `data_offset` of the file at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// Always [`PAGE_DATA_OFFSET`].
    pub data_offset: u64,
    /// Length of the data; in an encrypted image, of the plain data.
    pub len: u64,
    /// Length of the data as stored in the file: `len` in an image in
    /// clear, and `len` plus one tag per chunk in an encrypted one.
    pub stored_len: u64,
}

impl Image {
    /// Opens the image in `dir`.
    ///
    /// Checks, in order:
    /// - `dir` is a directory;
    /// - `manifest` exists and is a regular file of at most 16 MiB;
    /// - the header is valid and of kind manifest, and its payload length
    ///   matches the file size;
    /// - the CBOR decodes and fills the payload;
    /// - the manifest passes
    ///   [`validate_manifest`](crate::validate::validate_manifest), and its
    ///   `format_version` equals its header's;
    /// - every listed file exists, is a regular file and has the listed size.
    ///
    /// Data files are not hashed here, because they can be many GiB. See
    /// [`Image::verify_data_file`].
    pub fn open(dir: &Path) -> Result<Image, ImageError> {
        Image::open_checked(dir, None)
    }

    /// Opens the image in `dir` like [`Image::open`], and first checks that
    /// the BLAKE3 hash of the manifest file equals `expected`.
    ///
    /// The hash is computed over the same bytes that are then decoded, so a
    /// manifest checked by the caller (for example against a signature)
    /// cannot be swapped for another before it is used.
    pub fn open_expecting_manifest_hash(
        dir: &Path,
        expected: &blake3::Hash,
    ) -> Result<Image, ImageError> {
        Image::open_checked(dir, Some(expected))
    }

    /// Decodes and checks the bytes of a manifest file read from `path`:
    /// header, CBOR, [`validate_manifest`](crate::validate::validate_manifest)
    /// and that `format_version` equals the header's. Does not look at the
    /// files the manifest lists.
    pub fn decode_manifest(bytes: &[u8], path: &Path) -> Result<Manifest, ImageError> {
        let (header, manifest): (Header, Manifest) =
            decode_record_bytes(bytes, RecordKind::Manifest, path)?;
        manifest.validate(path)?;
        if manifest.format_version != header.version {
            return Err(ImageError::invalid(
                path,
                format!(
                    "manifest field format_version is {} but the header has version {}",
                    manifest.format_version, header.version
                ),
            ));
        }
        Ok(manifest)
    }

    fn open_checked(dir: &Path, expected: Option<&blake3::Hash>) -> Result<Image, ImageError> {
        match fs::metadata(dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(ImageError::NotADirectory(dir.to_path_buf())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(dir.to_path_buf()))
            }
            Err(error) => return Err(ImageError::io(dir, error)),
        }

        let manifest_path = dir.join(MANIFEST_NAME);
        let bytes = match read_file(&manifest_path, MAX_MANIFEST_SIZE) {
            Err(ImageError::MissingFile { .. }) => {
                return Err(ImageError::Incomplete(dir.to_path_buf()))
            }
            result => result?,
        };
        if let Some(expected) = expected {
            let actual = blake3::hash(&bytes);
            if actual != *expected {
                return Err(ImageError::invalid(
                    &manifest_path,
                    format!(
                        "the manifest has BLAKE3 hash {}, expected {}; it changed after its \
                         hash was checked",
                        actual.to_hex(),
                        expected.to_hex()
                    ),
                ));
            }
        }
        let manifest = Image::decode_manifest(&bytes, &manifest_path)?;

        let mut index = HashMap::with_capacity(manifest.files.len());
        for (position, entry) in manifest.files.iter().enumerate() {
            let path = dir.join(&entry.name);
            let size = regular_file_size(&path)?;
            if size != entry.size {
                return Err(ImageError::size_mismatch(path, entry.size, size));
            }
            index.insert(entry.name.clone(), position);
        }

        let salt = match &manifest.encryption {
            Some(encryption) => Some(crypto::parse_salt(&encryption.salt).ok_or_else(|| {
                ImageError::invalid(&manifest_path, "encryption.salt is not 64 hex digits")
            })?),
            None => None,
        };
        Ok(Image {
            dir: dir.to_path_buf(),
            version: manifest.format_version,
            manifest,
            index,
            salt,
            key: None,
        })
    }

    /// Gives the key of an encrypted image, which reading its records and
    /// data needs. Fails when the image is in clear or was encrypted with
    /// another key.
    pub fn unlock(&mut self, key: ImageKey) -> Result<(), ImageError> {
        let Some(encryption) = &self.manifest.encryption else {
            return Err(ImageError::NotEncrypted {
                dir: self.dir.clone(),
            });
        };
        let given = key.key_id();
        if given != encryption.key_id {
            return Err(ImageError::WrongKey {
                dir: self.dir.clone(),
                expected: encryption.key_id.clone(),
                given,
            });
        }
        self.key = Some(key);
        Ok(())
    }

    /// Returns true when the image is encrypted and no key was given, so
    /// that only the manifest and the hashes of the files can be read.
    pub fn is_locked(&self) -> bool {
        self.salt.is_some() && self.key.is_none()
    }

    /// Returns the cipher of file `name`, None in an image in clear, or
    /// an error when the image is encrypted and locked.
    fn cipher(&self, name: &str) -> Result<Option<FileCipher>, ImageError> {
        match (&self.salt, &self.key) {
            (None, _) => Ok(None),
            (Some(salt), Some(key)) => Ok(Some(FileCipher::new(key, salt, name))),
            (Some(_), None) => Err(ImageError::Encrypted {
                dir: self.dir.clone(),
                key_id: self
                    .manifest
                    .encryption
                    .as_ref()
                    .map(|encryption| encryption.key_id.clone())
                    .unwrap_or_default(),
            }),
        }
    }

    /// Returns the image directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Reads the record file `name`.
    ///
    /// Checks, in order:
    /// - the file is listed with kind `T::KIND`;
    /// - it is a regular file of at most 256 MiB with the listed size;
    /// - the header is valid, has kind `T::KIND` and the image's format
    ///   version, and its payload length matches the file size;
    /// - the BLAKE3 hash matches the manifest;
    /// - the CBOR decodes and fills the payload;
    /// - the record passes [`Record::validate`].
    pub fn read_record<T: Record>(&self, name: &str) -> Result<T, ImageError> {
        let cipher = self.cipher(name)?;
        let (bytes, path) = self.checked_record_bytes(name, T::KIND)?;
        let bytes = match cipher {
            None => bytes,
            Some(cipher) => crypto::clear_record_file(&bytes, &cipher, &path)?,
        };
        // The header and checksum were checked above.
        let record: T = crate::format::decode_payload(&bytes[HEADER_SIZE as usize..], &path)?;
        record.validate(&path)?;
        Ok(record)
    }

    /// Checks the record file `name` of kind `kind` as [`Image::read_record`]
    /// does, up to and including its hash, without decrypting or decoding
    /// it. This works on a locked encrypted image.
    pub fn check_record_file(&self, name: &str, kind: RecordKind) -> Result<(), ImageError> {
        self.checked_record_bytes(name, kind).map(|_| ())
    }

    /// Reads the record file `name` and checks its listing, size, header
    /// and hash. Returns its bytes and path.
    fn checked_record_bytes(
        &self,
        name: &str,
        kind: RecordKind,
    ) -> Result<(Vec<u8>, PathBuf), ImageError> {
        let (entry, path) = self.entry(name, kind)?;
        let bytes = read_file(&path, MAX_RECORD_SIZE)?;
        if bytes.len() as u64 != entry.size {
            return Err(ImageError::size_mismatch(
                path,
                entry.size,
                bytes.len() as u64,
            ));
        }

        let header = parse_header(&bytes, &path)?;
        expect_kind(&header, kind, &path)?;
        self.expect_version(&header, &path)?;
        expect_size(&header, bytes.len() as u64, &path)?;

        let actual = blake3::hash(&bytes).to_hex().to_string();
        if actual != entry.blake3 {
            return Err(ImageError::HashMismatch {
                path,
                expected: entry.blake3.clone(),
                actual,
            });
        }
        let checksum = crate::format::payload_checksum(&bytes[HEADER_SIZE as usize..]);
        if checksum != header.checksum {
            return Err(ImageError::invalid(
                path,
                format!(
                    "payload checksum is {checksum:016x} but the header records {:016x}; the file is damaged",
                    header.checksum
                ),
            ));
        }
        Ok((bytes, path))
    }

    /// Reads the memory map record `name` and checks it against its pages
    /// file with [`validate_memory_map`]. Returns the map and the pages
    /// file. A map without page runs and with an empty `pages_file` returns
    /// no pages file.
    pub fn read_memory_map(&self, name: &str) -> Result<(MemoryMap, Option<DataFile>), ImageError> {
        let map: MemoryMap = self.read_record(name)?;
        let path = self.dir.join(name);
        if map.pages.is_empty() && map.pages_file.is_empty() {
            return Ok((map, None));
        }
        let pages = self.data_file(&map.pages_file, RecordKind::Pages)?;
        validate_memory_map(&map, pages.len, &path)?;
        Ok((map, Some(pages)))
    }

    /// Locates the data of the data file `name`, which must be listed with
    /// kind `kind`.
    ///
    /// Checks the listed size, the header (valid, kind `kind`, the image's
    /// format version, payload length matching the file size, a whole
    /// number of pages for a pages file) and that the padding is zero. Does
    /// not hash the data.
    pub fn data_file(&self, name: &str, kind: RecordKind) -> Result<DataFile, ImageError> {
        let (entry, path) = self.entry(name, kind)?;
        if !kind.is_data() {
            return Err(ImageError::invalid(
                path,
                format!("a {kind} file is a record file, not a data file"),
            ));
        }

        let mut file = open_regular(&path)?;
        let size = file
            .metadata()
            .map_err(|error| ImageError::io(&path, error))?
            .len();
        if size != entry.size {
            return Err(ImageError::size_mismatch(path, entry.size, size));
        }

        let mut start = Vec::with_capacity(PAGE_DATA_OFFSET as usize);
        (&mut file)
            .take(PAGE_DATA_OFFSET)
            .read_to_end(&mut start)
            .map_err(|error| ImageError::io(&path, error))?;
        let header = parse_header(&start, &path)?;
        expect_kind(&header, kind, &path)?;
        self.expect_version(&header, &path)?;
        expect_size(&header, size, &path)?;
        let stored_len = header.payload_len;
        let len = if self.salt.is_some() {
            crypto::plain_len(stored_len).ok_or_else(|| {
                ImageError::invalid(
                    &path,
                    format!(
                        "its {stored_len} bytes of encrypted data end in a chunk too short to \
                         hold a tag"
                    ),
                )
            })?
        } else {
            stored_len
        };
        if kind == RecordKind::Pages && len % PAGE_SIZE != 0 {
            return Err(ImageError::invalid(
                path,
                format!("pages data is {len} bytes, which is not a multiple of {PAGE_SIZE}"),
            ));
        }
        if start[HEADER_SIZE as usize..].iter().any(|&byte| byte != 0) {
            return Err(ImageError::invalid(
                path,
                "the padding after the header is not zero",
            ));
        }

        Ok(DataFile {
            path,
            data_offset: PAGE_DATA_OFFSET,
            len,
            stored_len,
        })
    }

    /// Opens the data file `name`, listed with kind `kind`, for reading
    /// with its data checked chunk by chunk.
    ///
    /// Checks the file as [`Image::data_file`] does, then reads its chunk
    /// hashes and checks that they merge into the hash that the manifest
    /// lists, so that each chunk can be checked against the manifest as it
    /// is read.
    pub fn data_reader(&self, name: &str, kind: RecordKind) -> Result<DataReader, ImageError> {
        let cipher = self.cipher(name)?;
        let mut reader = self.hash_reader(name, kind)?;
        reader.cipher = cipher;
        Ok(reader)
    }

    /// Checks the data file `name` as [`Image::data_reader`] does, header
    /// and chunk hashes, without reading its data or decrypting it. This
    /// works on a locked encrypted image.
    pub fn check_data_file(&self, name: &str, kind: RecordKind) -> Result<(), ImageError> {
        self.hash_reader(name, kind).map(|_| ())
    }

    /// Opens the data file `name` like [`Image::data_reader`], but without
    /// decryption: its chunks are checked and returned as stored.
    fn hash_reader(&self, name: &str, kind: RecordKind) -> Result<DataReader, ImageError> {
        let data = self.data_file(name, kind)?;
        let (entry, _) = self.entry(name, kind)?;
        let root = blake3::Hash::from_hex(&entry.blake3).map_err(|_| {
            ImageError::invalid(&data.path, "the manifest lists no valid BLAKE3 hash for it")
        })?;
        let file = open_regular(&data.path)?;
        let trailer_len = chunks::trailer_len(data.stored_len);
        let mut trailer = vec![0u8; trailer_len as usize];
        read_exact_at(
            &file,
            &mut trailer,
            data.data_offset + data.stored_len,
            &data.path,
        )?;
        let values: Vec<ChainingValue> = trailer
            .chunks_exact(chunks::CHUNK_HASH_SIZE as usize)
            .map(|value| value.try_into().expect("32-byte slices"))
            .collect();
        if !values.is_empty() {
            let merged = chunks::root_hash(&values, data.stored_len);
            if merged != root {
                return Err(ImageError::invalid(
                    &data.path,
                    format!(
                        "the chunk hashes at the end of the file give BLAKE3 {}, \
                         but the manifest lists {}: the file changed after the dump",
                        merged.to_hex(),
                        entry.blake3
                    ),
                ));
            }
        }
        Ok(DataReader {
            file,
            path: data.path,
            data_offset: data.data_offset,
            len: data.len,
            stored_len: data.stored_len,
            values,
            root,
            cipher: None,
        })
    }

    /// Checks the data file `name` as [`Image::data_reader`] does, then
    /// reads all its data and checks every chunk against its hash. An
    /// encrypted file is not decrypted, so this works on a locked image.
    pub fn verify_data_file(&self, name: &str) -> Result<(), ImageError> {
        let kind = self
            .index
            .get(name)
            .map(|&position| self.manifest.files[position].kind)
            .ok_or_else(|| ImageError::UnlistedFile {
                path: self.dir.join(name),
            })?;
        let reader = self.hash_reader(name, kind)?;
        let mut buffer = Vec::new();
        for index in 0..reader.chunk_count() {
            reader.read_chunk(index, &mut buffer)?;
        }
        Ok(())
    }

    /// Checks every file of the image in manifest order: record files as
    /// [`Image::read_record`] does, data files with
    /// [`Image::verify_data_file`]. Also checks each memory map against its
    /// pages file and that each file data file named by an fd table or by
    /// the IPC namespace record is listed with kind file data.
    ///
    /// On a locked encrypted image, records are checked up to their hash
    /// and not decoded, and data files are checked against their hashes.
    pub fn verify_all(&self) -> Result<(), ImageError> {
        for entry in &self.manifest.files {
            let name = entry.name.as_str();
            if self.is_locked() {
                match entry.kind {
                    RecordKind::Pages | RecordKind::FileData => self.verify_data_file(name)?,
                    kind => self.check_record_file(name, kind)?,
                }
                continue;
            }
            match entry.kind {
                RecordKind::Manifest => {
                    // validate_manifest rejects this kind in the file list.
                    return Err(ImageError::invalid(
                        self.dir.join(name),
                        "file is listed with kind manifest",
                    ));
                }
                RecordKind::Process => {
                    self.read_record::<Process>(name)?;
                }
                RecordKind::MemoryMap => {
                    self.read_memory_map(name)?;
                }
                RecordKind::FdTable => {
                    let table: FdTable = self.read_record(name)?;
                    for fd in &table.fds {
                        if let Some(content) = fd.file.data_file() {
                            self.data_file(content, RecordKind::FileData)?;
                        }
                    }
                }
                RecordKind::IpcNamespace => {
                    let ipc: IpcNamespace = self.read_record(name)?;
                    for segment in &ipc.shm {
                        self.data_file(&segment.contents, RecordKind::FileData)?;
                    }
                }
                RecordKind::Pages | RecordKind::FileData => self.verify_data_file(name)?,
            }
        }
        Ok(())
    }

    /// Returns the manifest entry and path of `name`, which must be listed
    /// with kind `kind`.
    fn entry(&self, name: &str, kind: RecordKind) -> Result<(&FileEntry, PathBuf), ImageError> {
        // Listed names passed check_file_name in validate_manifest, so a
        // path built from a listed name stays inside the image directory.
        let Some(&position) = self.index.get(name) else {
            return Err(ImageError::UnlistedFile {
                path: self.dir.join(name),
            });
        };
        let entry = &self.manifest.files[position];
        let path = self.dir.join(name);
        if entry.kind != kind {
            return Err(ImageError::WrongKind {
                path,
                expected: kind,
                found: entry.kind,
            });
        }
        Ok((entry, path))
    }

    fn expect_version(&self, header: &Header, path: &Path) -> Result<(), ImageError> {
        if header.version == self.version {
            Ok(())
        } else {
            Err(ImageError::invalid(
                path,
                format!(
                    "file has format version {} but the manifest has version {}",
                    header.version, self.version
                ),
            ))
        }
    }
}

/// Reads the data of one data file and checks each chunk of it against the
/// manifest as it reads it. Made by [`Image::data_reader`].
///
/// The reader only reads with positioned reads, so one reader can serve
/// several threads.
#[derive(Debug)]
pub struct DataReader {
    file: File,
    path: PathBuf,
    data_offset: u64,
    /// Length of the plain data.
    len: u64,
    /// Length of the data as stored, which the chunks and hashes cover.
    stored_len: u64,
    /// Chaining value of each chunk, already checked against `root`; empty
    /// when the data is one chunk at most.
    values: Vec<ChainingValue>,
    /// BLAKE3 hash of the data, from the manifest.
    root: blake3::Hash,
    /// Key of the file in an encrypted image that is read decrypted.
    cipher: Option<FileCipher>,
}

impl DataReader {
    /// Length of the data in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Returns true when the file has no data.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of chunks of the data.
    pub fn chunk_count(&self) -> u64 {
        chunks::chunk_count(self.stored_len)
    }

    /// Bytes of data in each chunk that [`DataReader::read_chunk`] returns,
    /// the last one excepted.
    pub fn chunk_size(&self) -> u64 {
        if self.cipher.is_some() {
            crypto::PLAIN_CHUNK_SIZE
        } else {
            chunks::CHUNK_SIZE
        }
    }

    /// Reads chunk `index` into `buffer`, replacing its contents, and checks
    /// it against its hash. On error, `buffer` is left empty.
    pub fn read_chunk(&self, index: u64, buffer: &mut Vec<u8>) -> Result<(), ImageError> {
        let chunks = self.chunk_count();
        if index >= chunks {
            return Err(ImageError::invalid(
                &self.path,
                format!("chunk {index} asked for, but the data has {chunks} chunks"),
            ));
        }
        let (start, end) = chunks::chunk_range(index, self.stored_len);
        buffer.clear();
        buffer.resize((end - start) as usize, 0);
        read_exact_at(&self.file, buffer, self.data_offset + start, &self.path)?;
        let good = if bench::chunk_checks_off() {
            true
        } else if self.values.is_empty() {
            blake3::hash(buffer) == self.root
        } else {
            chunks::chunk_value(index, buffer) == self.values[index as usize]
        };
        if !good {
            buffer.clear();
            return Err(ImageError::ChunkMismatch {
                path: self.path.clone(),
                chunk: index,
                chunks,
                start,
                end,
            });
        }
        if let Some(cipher) = &self.cipher {
            if cipher.open(index, index + 1 == chunks, buffer).is_err() {
                buffer.clear();
                return Err(ImageError::DecryptFailed {
                    path: self.path.clone(),
                    chunk: index,
                    chunks,
                });
            }
        }
        Ok(())
    }

    /// Reads all the data, which may be at most `limit` bytes, checking
    /// each chunk.
    pub fn read_all(&self, limit: u64) -> Result<Vec<u8>, ImageError> {
        if self.len > limit {
            return Err(ImageError::TooLarge {
                path: self.path.clone(),
                size: self.len,
                limit,
            });
        }
        let mut all = Vec::with_capacity(self.len as usize);
        let mut buffer = Vec::new();
        for index in 0..self.chunk_count() {
            self.read_chunk(index, &mut buffer)?;
            all.extend_from_slice(&buffer);
        }
        Ok(all)
    }

    /// Passes each chunk of the data, checked, to `sink` in order.
    pub fn for_each_chunk<E: From<ImageError>>(
        &self,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut buffer = Vec::new();
        for index in 0..self.chunk_count() {
            self.read_chunk(index, &mut buffer)?;
            sink(&buffer)?;
        }
        Ok(())
    }
}

/// A switch that turns chunk checks off, for benchmarks that measure what
/// the checks cost. It exists only with the `bench` feature, which only
/// the benchmarks enable.
#[cfg(feature = "bench")]
pub mod bench {
    use std::sync::atomic::{AtomicBool, Ordering};

    static OFF: AtomicBool = AtomicBool::new(false);

    /// Turns chunk checks off (`true`) or on again (`false`).
    pub fn turn_chunk_checks_off(off: bool) {
        OFF.store(off, Ordering::SeqCst);
    }

    pub(crate) fn chunk_checks_off() -> bool {
        OFF.load(Ordering::SeqCst)
    }
}

#[cfg(not(feature = "bench"))]
mod bench {
    pub(crate) fn chunk_checks_off() -> bool {
        false
    }
}

/// Fills `buffer` from `file` at `offset`. A file that ends early is
/// reported as invalid.
fn read_exact_at(
    file: &File,
    buffer: &mut [u8],
    offset: u64,
    path: &Path,
) -> Result<(), ImageError> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buffer, offset).map_err(|error| {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ImageError::invalid(
                path,
                format!(
                    "the file ends before byte {} that its header implies",
                    offset + buffer.len() as u64
                ),
            )
        } else {
            ImageError::io(path, error)
        }
    })
}

/// Returns the size of `path`, which must be a regular file (not a symbolic
/// link, FIFO or device).
fn regular_file_size(path: &Path) -> Result<u64, ImageError> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
        Ok(_) => Err(ImageError::invalid(path, "not a regular file")),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(ImageError::MissingFile {
            path: path.to_path_buf(),
        }),
        Err(error) => Err(ImageError::io(path, error)),
    }
}

/// Opens `path` for reading after checking that it is a regular file,
/// because opening a FIFO planted in an image would block.
fn open_regular(path: &Path) -> Result<File, ImageError> {
    regular_file_size(path)?;
    // NOTE: a file swapped for a FIFO between the check above and this open
    // can still block the open. The check after the open catches other
    // swaps.
    let file = File::open(path).map_err(|error| match error.kind() {
        io::ErrorKind::NotFound => ImageError::MissingFile {
            path: path.to_path_buf(),
        },
        _ => ImageError::io(path, error),
    })?;
    let metadata = file
        .metadata()
        .map_err(|error| ImageError::io(path, error))?;
    if !metadata.is_file() {
        return Err(ImageError::invalid(path, "not a regular file"));
    }
    Ok(file)
}

/// Reads the whole regular file `path`, which may be at most `limit` bytes.
fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ImageError> {
    let file = open_regular(path)?;
    let size = file
        .metadata()
        .map_err(|error| ImageError::io(path, error))?
        .len();
    if size > limit {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            size,
            limit,
        });
    }
    // `size` is at most `limit`, so the capacity is bounded; `take` guards
    // against the file growing after the size was read.
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| ImageError::io(path, error))?;
    if bytes.len() as u64 > limit {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}
