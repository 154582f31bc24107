//! Reading an image: opening it through its manifest, reading records and
//! locating and verifying data files.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::ImageError;
use crate::format::{
    decode_record_bytes, expect_kind, expect_size, parse_header, Header, HEADER_SIZE,
    MANIFEST_NAME, MAX_MANIFEST_SIZE, MAX_RECORD_SIZE, PAGE_DATA_OFFSET, PAGE_SIZE,
};
use crate::records::{
    FdTable, FileEntry, IpcNamespace, Manifest, MemoryMap, Process, Record, RecordKind,
};
use crate::validate::validate_memory_map;

/// Size of the read buffer used to hash data files, in bytes.
const HASH_BUFFER_SIZE: usize = 1 << 20;

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
}

/// Location of the data of a pages or file data file: `len` bytes starting
/// at byte `data_offset` of the file at `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    /// Always [`PAGE_DATA_OFFSET`].
    pub data_offset: u64,
    pub len: u64,
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

        Ok(Image {
            dir: dir.to_path_buf(),
            version: manifest.format_version,
            manifest,
            index,
        })
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
        let (entry, path) = self.entry(name, T::KIND)?;
        let bytes = read_file(&path, MAX_RECORD_SIZE)?;
        if bytes.len() as u64 != entry.size {
            return Err(ImageError::size_mismatch(
                path,
                entry.size,
                bytes.len() as u64,
            ));
        }

        let header = parse_header(&bytes, &path)?;
        expect_kind(&header, T::KIND, &path)?;
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

        let (_, record): (Header, T) = decode_record_bytes(&bytes, T::KIND, &path)?;
        record.validate(&path)?;
        Ok(record)
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
        if kind == RecordKind::Pages && header.payload_len % PAGE_SIZE != 0 {
            return Err(ImageError::invalid(
                path,
                format!(
                    "pages data is {} bytes, which is not a multiple of {PAGE_SIZE}",
                    header.payload_len
                ),
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
            len: header.payload_len,
        })
    }

    /// Checks the data file `name` with [`Image::data_file`], then reads
    /// all its data and checks the BLAKE3 hash against the manifest.
    pub fn verify_data_file(&self, name: &str) -> Result<(), ImageError> {
        let kind = self
            .index
            .get(name)
            .map(|&position| self.manifest.files[position].kind)
            .ok_or_else(|| ImageError::UnlistedFile {
                path: self.dir.join(name),
            })?;
        let data = self.data_file(name, kind)?;
        let (entry, _) = self.entry(name, kind)?;

        let mut file = open_regular(&data.path)?;
        file.seek(SeekFrom::Start(data.data_offset))
            .map_err(|error| ImageError::io(&data.path, error))?;
        let mut hasher = blake3::Hasher::new();
        let mut buffer = vec![0u8; HASH_BUFFER_SIZE];
        let mut hashed = 0u64;
        loop {
            let count = match file.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(ImageError::io(&data.path, error)),
            };
            hasher.update(&buffer[..count]);
            hashed += count as u64;
        }
        if hashed != data.len {
            return Err(ImageError::size_mismatch(
                data.path,
                data.data_offset + data.len,
                data.data_offset + hashed,
            ));
        }

        let actual = hasher.finalize().to_hex().to_string();
        if actual != entry.blake3 {
            return Err(ImageError::HashMismatch {
                path: data.path,
                expected: entry.blake3.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Checks every file of the image in manifest order: record files as
    /// [`Image::read_record`] does, data files with
    /// [`Image::verify_data_file`]. Also checks each memory map against its
    /// pages file and that each file data file named by an fd table or by
    /// the IPC namespace record is listed with kind file data.
    pub fn verify_all(&self) -> Result<(), ImageError> {
        for entry in &self.manifest.files {
            let name = entry.name.as_str();
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
