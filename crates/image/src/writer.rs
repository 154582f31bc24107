//! Writing an image: record files, streamed data files, then the manifest.

use std::collections::HashSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::chunks::ChunkHasher;
use crate::crypto::{self, FileCipher, ImageKey, PLAIN_CHUNK_SIZE, SALT_SIZE};
use crate::error::ImageError;
use crate::format::{
    check_file_name, encode_payload, encode_record_bytes, record_file_bytes, Header,
    FORMAT_VERSION, HEADER_SIZE, MANIFEST_NAME, MANIFEST_TEMP_NAME, MAX_MANIFEST_SIZE,
    PAGE_DATA_OFFSET, PAGE_SIZE,
};
use crate::records::{Encryption, FileEntry, Manifest, Record, RecordKind};
use crate::validate::validate_manifest;

/// Permissions of image files: they hold process memory, so only the owner
/// may read them.
const FILE_MODE: u32 = 0o600;
/// Permissions of an image directory that the writer creates.
const DIR_MODE: u32 = 0o700;
/// Buffer size of a [`DataWriter`], in bytes.
const DATA_BUFFER_SIZE: usize = 1 << 20;

/// Writes a new image directory.
///
/// Files are written one by one and fsynced. [`ImageWriter::commit`] writes
/// the manifest last, which makes the directory an image. If the writer is
/// dropped without `commit` or `abort`, or `commit` fails, it removes every
/// file it created and the directory too if it created it.
#[derive(Debug)]
pub struct ImageWriter {
    dir: PathBuf,
    created_dir: bool,
    /// Names of the files created so far, in creation order.
    created: Vec<String>,
    /// The same names, for duplicate checks.
    names: HashSet<String>,
    /// Data files started with `data_writer` and not yet finished.
    unfinished: HashSet<String>,
    /// Finished files, in the order they will appear in the manifest.
    entries: Vec<FileEntry>,
    /// Set once the directory is a committed image or was cleaned up.
    done: bool,
    /// Key and salt of an encrypted image.
    encryption: Option<(ImageKey, [u8; SALT_SIZE])>,
}

impl ImageWriter {
    /// Creates the image directory `dir` with mode 0700. It must not exist,
    /// or must be an empty directory, which is then used as it is.
    pub fn create(dir: &Path) -> Result<ImageWriter, ImageError> {
        let created_dir = match DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => true,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let metadata = fs::metadata(dir).map_err(|error| ImageError::io(dir, error))?;
                if !metadata.is_dir() {
                    return Err(ImageError::AlreadyExists(dir.to_path_buf()));
                }
                let mut listing = fs::read_dir(dir).map_err(|error| ImageError::io(dir, error))?;
                if listing.next().is_some() {
                    return Err(ImageError::AlreadyExists(dir.to_path_buf()));
                }
                false
            }
            Err(error) => return Err(ImageError::io(dir, error)),
        };
        Ok(ImageWriter {
            dir: dir.to_path_buf(),
            created_dir,
            created: Vec::new(),
            names: HashSet::new(),
            unfinished: HashSet::new(),
            entries: Vec::new(),
            done: false,
            encryption: None,
        })
    }

    /// Makes every file written from now on encrypted with `key` (see
    /// [`crypto`](crate::crypto)). `salt` must be random and used for no
    /// other image. Must be called before the first file is written.
    pub fn encrypt_with(&mut self, key: ImageKey, salt: [u8; SALT_SIZE]) -> Result<(), ImageError> {
        if !self.created.is_empty() {
            return Err(ImageError::invalid(
                &self.dir,
                "encryption must be chosen before the first file is written",
            ));
        }
        self.encryption = Some((key, salt));
        Ok(())
    }

    fn cipher(&self, name: &str) -> Option<FileCipher> {
        self.encryption
            .as_ref()
            .map(|(key, salt)| FileCipher::new(key, salt, name))
    }

    /// Returns the image directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the record file `name` (header and CBOR payload), fsyncs it
    /// and remembers its size and hash for the manifest.
    pub fn write_record<T: Record>(&mut self, name: &str, record: &T) -> Result<(), ImageError> {
        let path = self.dir.join(name);
        if T::KIND == RecordKind::Manifest {
            return Err(ImageError::invalid(
                path,
                "the manifest is written by ImageWriter::commit, not write_record",
            ));
        }
        let mut payload = encode_payload(record, &path)?;
        if let Some(cipher) = self.cipher(name) {
            cipher.seal(0, true, &mut payload);
        }
        let bytes = record_file_bytes(T::KIND, &payload);
        let mut file = self.create_file(name)?;
        write_and_sync(&mut file, &bytes, &path)?;
        self.entries.push(FileEntry {
            name: name.to_string(),
            kind: T::KIND,
            size: bytes.len() as u64,
            blake3: blake3::hash(&bytes).to_hex().to_string(),
        });
        Ok(())
    }

    /// Starts the data file `name` of kind [`RecordKind::Pages`] or
    /// [`RecordKind::FileData`]. Its header and padding are written now;
    /// [`ImageWriter::finish_data`] completes it.
    pub fn data_writer(&mut self, name: &str, kind: RecordKind) -> Result<DataWriter, ImageError> {
        let path = self.dir.join(name);
        if !kind.is_data() {
            return Err(ImageError::invalid(
                path,
                format!("data files have kind pages or file data, not {kind}"),
            ));
        }
        let cipher = self.cipher(name);
        let file = self.create_file(name)?;
        self.unfinished.insert(name.to_string());

        let mut out = BufWriter::with_capacity(DATA_BUFFER_SIZE, file);
        let mut start = vec![0u8; PAGE_DATA_OFFSET as usize];
        let header = Header {
            version: FORMAT_VERSION,
            kind,
            payload_len: 0,
            checksum: 0,
        };
        start[..HEADER_SIZE as usize].copy_from_slice(&header.to_bytes());
        out.write_all(&start)
            .map_err(|error| ImageError::io(&path, error))?;

        Ok(DataWriter {
            out,
            path,
            name: name.to_string(),
            kind,
            hasher: ChunkHasher::new(),
            len: 0,
            pending: if cipher.is_some() {
                Vec::with_capacity(crate::chunks::CHUNK_SIZE as usize)
            } else {
                Vec::new()
            },
            cipher,
            chunks_sealed: 0,
            plain_len: 0,
        })
    }

    /// Finishes a data file: appends the chunk hashes (see
    /// [`chunks`](crate::chunks)), writes the payload length into its
    /// header, fsyncs it and remembers its size and hash for the manifest.
    /// A pages file must hold a whole number of pages.
    pub fn finish_data(&mut self, writer: DataWriter) -> Result<(), ImageError> {
        let mut writer = writer;
        writer.seal_pending(true)?;
        let DataWriter {
            out,
            path,
            name,
            kind,
            hasher,
            len,
            plain_len,
            ..
        } = writer;
        if path != self.dir.join(&name) || !self.unfinished.contains(&name) {
            return Err(ImageError::invalid(
                path,
                "this data file was not started by this image writer, or was already finished",
            ));
        }
        if kind == RecordKind::Pages && plain_len % PAGE_SIZE != 0 {
            return Err(ImageError::invalid(
                path,
                format!(
                    "pages file data is {plain_len} bytes, which is not a multiple of {PAGE_SIZE}"
                ),
            ));
        }

        let (hash, trailer) = hasher.finish();
        let mut out = out;
        out.write_all(&trailer)
            .map_err(|error| ImageError::io(&path, error))?;
        let mut file = out
            .into_inner()
            .map_err(|error| ImageError::io(&path, error.into_error()))?;
        let header = Header {
            version: FORMAT_VERSION,
            kind,
            payload_len: len,
            checksum: 0,
        };
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header.to_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(|error| ImageError::io(&path, error))?;

        self.unfinished.remove(&name);
        self.entries.push(FileEntry {
            name,
            kind,
            size: PAGE_DATA_OFFSET + len + trailer.len() as u64,
            blake3: hash.to_hex().to_string(),
        });
        Ok(())
    }

    /// Writes the manifest and so completes the image. `files` and
    /// `format_version` of `manifest` are replaced by the files written and
    /// [`FORMAT_VERSION`].
    ///
    /// The manifest is written to `manifest.tmp`, fsynced, renamed to
    /// `manifest`, and then the directory is fsynced (and its parent, if
    /// the writer created it). On error everything written is removed.
    /// Returns the image directory.
    pub fn commit(mut self, manifest: Manifest) -> Result<PathBuf, ImageError> {
        self.write_manifest(manifest)?;
        self.done = true;
        Ok(self.dir.clone())
    }

    /// Removes every file this writer created, and the directory if it
    /// created it. Errors are ignored, because there is nothing left to do
    /// about them.
    pub fn abort(mut self) {
        self.remove_all();
    }

    fn write_manifest(&mut self, mut manifest: Manifest) -> Result<(), ImageError> {
        let temp_path = self.dir.join(MANIFEST_TEMP_NAME);
        let final_path = self.dir.join(MANIFEST_NAME);
        if let Some(name) = self.unfinished.iter().next() {
            return Err(ImageError::invalid(
                self.dir.join(name),
                "data file was started but not finished with finish_data",
            ));
        }

        manifest.format_version = FORMAT_VERSION;
        manifest.files = self.entries.clone();
        manifest.encryption = self.encryption.as_ref().map(|(key, salt)| Encryption {
            cipher: crypto::CIPHER_NAME.to_string(),
            salt: salt.iter().map(|byte| format!("{byte:02x}")).collect(),
            key_id: key.key_id(),
        });
        validate_manifest(&manifest, &final_path)?;
        let bytes = encode_record_bytes(&manifest, RecordKind::Manifest, &final_path)?;
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(ImageError::TooLarge {
                path: final_path,
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }

        let mut file = open_new(&temp_path)?;
        self.created.push(MANIFEST_TEMP_NAME.to_string());
        write_and_sync(&mut file, &bytes, &temp_path)?;
        fs::rename(&temp_path, &final_path).map_err(|error| ImageError::io(&final_path, error))?;
        // The manifest goes first in the list so that cleanup makes the
        // directory stop being an image before removing anything else.
        self.created.insert(0, MANIFEST_NAME.to_string());

        sync_dir(&self.dir)?;
        if self.created_dir {
            if let Some(parent) = self.dir.parent() {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Creates the file `name` in the image directory; it must not exist.
    fn create_file(&mut self, name: &str) -> Result<File, ImageError> {
        let path = self.dir.join(name);
        check_file_name(name, &path)?;
        if name == MANIFEST_NAME || name == MANIFEST_TEMP_NAME {
            return Err(ImageError::invalid(
                path,
                format!("{name:?} is reserved for the manifest"),
            ));
        }
        if self.names.contains(name) {
            return Err(ImageError::invalid(path, "file is written twice"));
        }
        let file = open_new(&path)?;
        self.names.insert(name.to_string());
        self.created.push(name.to_string());
        Ok(file)
    }

    fn remove_all(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        for name in &self.created {
            let _ = fs::remove_file(self.dir.join(name));
        }
        if self.created_dir {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

impl Drop for ImageWriter {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Streams the data of one pages or file data file. Created by
/// [`ImageWriter::data_writer`] and completed by
/// [`ImageWriter::finish_data`]; a writer dropped without `finish_data`
/// leaves the image unable to commit.
#[derive(Debug)]
pub struct DataWriter {
    out: BufWriter<File>,
    path: PathBuf,
    name: String,
    kind: RecordKind,
    /// BLAKE3 over the data written so far, which is what the manifest
    /// lists for a data file, with the hash of each chunk.
    hasher: ChunkHasher,
    /// Bytes written to the file after the padding.
    len: u64,
    /// Key of the file in an encrypted image.
    cipher: Option<FileCipher>,
    /// Plain data of the chunk not yet sealed, at most one chunk.
    pending: Vec<u8>,
    chunks_sealed: u64,
    /// Bytes of plain data given to `write`.
    plain_len: u64,
}

impl DataWriter {
    /// Appends `data` and returns the offset of its first byte relative to
    /// the start of the data, that is, the file offset minus
    /// [`PAGE_DATA_OFFSET`].
    pub fn write(&mut self, mut data: &[u8]) -> Result<u64, ImageError> {
        let offset = self.plain_len;
        self.plain_len += data.len() as u64;
        if self.cipher.is_none() {
            return self.store(data).map(|()| offset);
        }

        let chunk = PLAIN_CHUNK_SIZE as usize;
        while !data.is_empty() {
            // A full chunk is sealed only once more data follows it,
            // because the last chunk of a file is sealed differently.
            if self.pending.len() == chunk {
                self.seal_pending(false)?;
            }
            let take = (chunk - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(offset)
    }

    /// Seals the pending chunk of an encrypted file in place and stores
    /// it. `last` marks the final chunk of the file.
    fn seal_pending(&mut self, last: bool) -> Result<(), ImageError> {
        let Some(cipher) = &self.cipher else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        cipher.seal(self.chunks_sealed, last, &mut self.pending);
        self.chunks_sealed += 1;

        let sealed = std::mem::take(&mut self.pending);
        let result = self.store(&sealed);
        self.pending = sealed;
        self.pending.clear();
        result
    }

    /// Writes stored bytes to the file and hashes them.
    fn store(&mut self, data: &[u8]) -> Result<(), ImageError> {
        self.out
            .write_all(data)
            .map_err(|error| ImageError::io(&self.path, error))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Returns the number of data bytes written so far (plain bytes in an
    /// encrypted image).
    pub fn position(&self) -> u64 {
        self.plain_len
    }

    /// Returns the path of the file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_new(path: &Path) -> Result<File, ImageError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|error| ImageError::io(path, error))
}

fn write_and_sync(file: &mut File, bytes: &[u8], path: &Path) -> Result<(), ImageError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| ImageError::io(path, error))
}

fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| ImageError::io(dir, error))
}
