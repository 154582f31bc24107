//! Reading a process's saved memory: an address is looked up in the page
//! runs of its memory map, which give the offset of the page in the pages
//! file.
//!
//! The reader works on unverified maps too. It sorts a copy of the runs,
//! checks every offset against the length of the pages file, and never
//! allocates more than the caller requests. A damaged map therefore
//! yields missing pages, never a panic or a read outside the file.

use std::cell::RefCell;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use stasis_image::chunks::CHUNK_SIZE;
use stasis_image::crypto::{self, FileCipher, PLAIN_CHUNK_SIZE};
use stasis_image::{PageRun, RecordKind, PAGE_DATA_OFFSET, PAGE_SIZE};

use crate::load::LoadedImage;

/// Maximum bytes read from a pages file in one call.
const READ_CHUNK: u64 = 1 << 20;

/// One stretch of a read: bytes that were saved, or a stretch that was not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Stored(Vec<u8>),
    Missing {
        address: u64,
        len: u64,
        reason: MissingReason,
    },
}

/// Reason that bytes of a read are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingReason {
    /// No page run covers the address: the dump did not save the page.
    NotStored,
    /// A page run covers the address, but the pages file cannot be read
    /// there (missing, truncated, or the run points past its end).
    Unreadable,
}

impl MissingReason {
    pub fn describe(self) -> &'static str {
        match self {
            MissingReason::NotStored => "not stored",
            MissingReason::Unreadable => "unreadable",
        }
    }
}

/// The saved pages of one process.
#[derive(Debug)]
pub struct PageReader {
    /// Page runs sorted by address.
    runs: Vec<PageRun>,
    file: Option<File>,
    /// Bytes of page data that can be read, after the padding.
    data_len: u64,
    pub path: Option<PathBuf>,
    /// True when the memory map and the pages file both passed every
    /// check.
    pub verified: bool,
    /// Decryption of the pages file of an encrypted image.
    decrypt: Option<Decrypt>,
}

/// The key of an encrypted pages file and the last chunk it decrypted.
struct Decrypt {
    cipher: FileCipher,
    /// Length of the stored (encrypted) data.
    stored_len: u64,
    /// Index and plain bytes of the chunk decrypted last.
    cached: RefCell<Option<(u64, Vec<u8>)>>,
}

impl std::fmt::Debug for Decrypt {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Decrypt")
    }
}

impl PageReader {
    /// Opens the pages of process `pid`. Returns `None` when the image has
    /// no memory map for it. A pages file that cannot be opened gives a
    /// reader whose stored pages are all unreadable.
    pub fn open(image: &LoadedImage, pid: i32) -> Option<PageReader> {
        let memory = image.process(pid)?.memory.as_ref()?;
        let mut runs = memory.record.pages.clone();
        runs.sort_by_key(|run| run.address);

        let name = &memory.record.pages_file;
        let listed = image
            .file(name)
            .filter(|report| report.kind == RecordKind::Pages);
        let pages_ok = listed.is_some_and(|report| report.problem.is_none());
        let path = listed.map(|_| image.dir.join(name));
        let file = path.as_ref().and_then(|path| open_pages(path));
        let stored_len = file
            .as_ref()
            .and_then(|file| file.metadata().ok())
            .and_then(|metadata| stasis_image::chunks::data_len_for_file_size(metadata.len()))
            .unwrap_or(0);
        let (data_len, decrypt) = match &image.page_key {
            None if image.manifest.encryption.is_some() => (0, None),
            None => (stored_len, None),
            Some((key, salt)) => (
                crypto::plain_len(stored_len).unwrap_or(0),
                Some(Decrypt {
                    cipher: FileCipher::new(key, salt, name),
                    stored_len,
                    cached: RefCell::new(None),
                }),
            ),
        };

        Some(PageReader {
            runs,
            file,
            data_len,
            path,
            verified: memory.verified && pages_ok,
            decrypt,
        })
    }

    /// Returns the page runs, sorted by address.
    pub fn runs(&self) -> &[PageRun] {
        &self.runs
    }

    /// Returns the page runs cut to the pages that lie inside the pages
    /// file, dropping runs that lie wholly outside it. A damaged map can
    /// claim runs of 2^60 pages; these are the pages worth reading.
    pub fn readable_runs(&self) -> Vec<PageRun> {
        let file_pages = if self.file.is_some() {
            self.data_len / PAGE_SIZE
        } else {
            0
        };
        self.runs
            .iter()
            .filter_map(|run| {
                let first = run.offset / PAGE_SIZE;
                let pages = run.pages.min(file_pages.saturating_sub(first));
                (run.offset % PAGE_SIZE == 0 && pages > 0).then_some(PageRun {
                    address: run.address,
                    pages,
                    offset: run.offset,
                })
            })
            .collect()
    }

    /// Reads `len` bytes at `address`. Pages that were not saved or cannot
    /// be read come back as [`Segment::Missing`]. Adjacent stored bytes are
    /// merged into one segment.
    pub fn read(&self, address: u64, len: u64) -> Vec<Segment> {
        let mut segments = Vec::new();
        let end = address.saturating_add(len);
        let mut at = address;
        while at < end {
            let (piece_end, piece) = self.read_piece(at, end);
            push_segment(&mut segments, piece);
            at = piece_end;
        }
        segments
    }

    /// Reads from `at` up to `end` or the next run boundary, whichever is
    /// first. Returns where the piece ends and what it holds.
    fn read_piece(&self, at: u64, end: u64) -> (u64, Segment) {
        let Some(run) = self.run_at(at) else {
            let next = self.next_run_start(at).unwrap_or(end).min(end);
            return (next, missing(at, next, MissingReason::NotStored));
        };
        let run_end = run_end(run);
        let piece_end = run_end.min(end).min(at.saturating_add(READ_CHUNK));
        let offset = run.offset.checked_add(at - run.address);
        let bytes = offset.and_then(|offset| self.read_data(offset, piece_end - at));
        match bytes {
            Some(bytes) => (piece_end, Segment::Stored(bytes)),
            None => (piece_end, missing(at, piece_end, MissingReason::Unreadable)),
        }
    }

    /// Returns the 4096 bytes of the page at `address` (page-aligned), or
    /// `None` when the page is not stored or cannot be read.
    pub fn page(&self, address: u64) -> Option<Vec<u8>> {
        match self.read(address, PAGE_SIZE).as_slice() {
            [Segment::Stored(bytes)] if bytes.len() as u64 == PAGE_SIZE => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Returns the run that covers `address`.
    fn run_at(&self, address: u64) -> Option<&PageRun> {
        let index = self.runs.partition_point(|run| run.address <= address);
        let run = self.runs.get(index.checked_sub(1)?)?;
        (address < run_end(run)).then_some(run)
    }

    fn next_run_start(&self, address: u64) -> Option<u64> {
        let index = self.runs.partition_point(|run| run.address <= address);
        self.runs.get(index).map(|run| run.address)
    }

    /// Reads `len` bytes at `offset` in the page data, if all of them lie
    /// inside the file.
    fn read_data(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let file = self.file.as_ref()?;
        if offset.checked_add(len)? > self.data_len {
            return None;
        }
        if let Some(decrypt) = &self.decrypt {
            return self.read_decrypted(file, decrypt, offset, len);
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        file.read_exact_at(&mut bytes, PAGE_DATA_OFFSET.checked_add(offset)?)
            .ok()?;
        Some(bytes)
    }

    /// Reads `len` plain bytes at plain `offset` of an encrypted pages
    /// file, decrypting each chunk they lie in.
    fn read_decrypted(
        &self,
        file: &File,
        decrypt: &Decrypt,
        offset: u64,
        len: u64,
    ) -> Option<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
        let chunks = decrypt.stored_len.div_ceil(CHUNK_SIZE);
        let mut at = offset;
        while at < offset + len {
            let index = at / PLAIN_CHUNK_SIZE;
            let mut cached = decrypt.cached.borrow_mut();
            if cached.as_ref().map(|(cached, _)| *cached) != Some(index) {
                let start = index * CHUNK_SIZE;
                let end = (start + CHUNK_SIZE).min(decrypt.stored_len);
                let mut chunk = vec![0u8; usize::try_from(end.checked_sub(start)?).ok()?];
                file.read_exact_at(&mut chunk, PAGE_DATA_OFFSET + start)
                    .ok()?;
                decrypt
                    .cipher
                    .open(index, index + 1 == chunks, &mut chunk)
                    .ok()?;
                *cached = Some((index, chunk));
            }
            let (_, plain) = cached.as_ref()?;
            let from = usize::try_from(at - index * PLAIN_CHUNK_SIZE).ok()?;
            let take =
                (plain.len().checked_sub(from)?).min(usize::try_from(offset + len - at).ok()?);
            if take == 0 {
                return None;
            }
            bytes.extend_from_slice(&plain[from..from + take]);
            at += take as u64;
        }
        Some(bytes)
    }
}

/// Returns the address just past `run`, saturating for damaged runs.
pub fn run_end(run: &PageRun) -> u64 {
    run.address
        .saturating_add(run.pages.saturating_mul(PAGE_SIZE))
}

fn missing(start: u64, end: u64, reason: MissingReason) -> Segment {
    Segment::Missing {
        address: start,
        len: end - start,
        reason,
    }
}

fn push_segment(segments: &mut Vec<Segment>, piece: Segment) {
    match (segments.last_mut(), piece) {
        (Some(Segment::Stored(bytes)), Segment::Stored(more)) => bytes.extend(more),
        (
            Some(Segment::Missing {
                len: last_len,
                reason: last_reason,
                ..
            }),
            Segment::Missing { len, reason, .. },
        ) if *last_reason == reason => *last_len += len,
        (_, piece) => segments.push(piece),
    }
}

fn open_pages(path: &std::path::Path) -> Option<File> {
    let metadata = std::fs::symlink_metadata(path).ok()?;
    if !metadata.is_file() {
        return None;
    }
    File::open(path).ok()
}
