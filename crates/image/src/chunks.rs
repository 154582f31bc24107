//! Chunk hashes of data files, so that a reader can check each 1 MiB of
//! data as it reads it instead of hashing the whole file first.
//!
//! The manifest lists the plain BLAKE3 hash of a data file's data. BLAKE3
//! is a tree hash: the data is cut into 1 KiB leaves, and every aligned
//! power-of-two run of leaves is a subtree with its own chaining value.
//! A [`CHUNK_SIZE`] chunk is such a subtree, so a data file of more than
//! one chunk ends with a trailer: the chaining value of each chunk, 32
//! bytes each. A reader merges the trailer's values into a root hash and
//! compares it with the manifest. A match proves the trailer right without
//! reading the data, so the reader can then check each chunk against its
//! value as it reads it. A file of at most one chunk has no trailer: its single chunk
//! is checked against the manifest hash directly.
//!
//! No crate offers this: `bao` stores a tree of 1 KiB leaves (6% more
//! disk), and the image needs only one level of 1 MiB chunks, which the
//! `blake3::hazmat` functions compute.

pub use blake3::hazmat::ChainingValue;
use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, HasherExt, Mode,
};

/// Size of one chunk of a data file, in bytes. A power of two of at least
/// the BLAKE3 leaf size, so that every chunk is a whole BLAKE3 subtree.
pub const CHUNK_SIZE: u64 = 1 << 20;
/// Size of one chunk hash in the trailer, in bytes.
pub const CHUNK_HASH_SIZE: u64 = 32;

/// Number of chunks in `len` bytes of data.
pub fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK_SIZE)
}

/// Size in bytes of the trailer of a data file with `len` bytes of data.
pub fn trailer_len(len: u64) -> u64 {
    if len > CHUNK_SIZE {
        chunk_count(len) * CHUNK_HASH_SIZE
    } else {
        0
    }
}

/// Length of the data of a data file of `size` bytes, found from the size
/// alone; None when no data length gives that size.
pub fn data_len_for_file_size(size: u64) -> Option<u64> {
    let rest = size.checked_sub(crate::format::PAGE_DATA_OFFSET)?;
    if rest <= CHUNK_SIZE {
        return Some(rest);
    }
    // rest = len + 32 * ceil(len / CHUNK_SIZE), so len is near
    // rest * CHUNK_SIZE / (CHUNK_SIZE + 32).
    let estimate =
        (rest as u128 * CHUNK_SIZE as u128 / (CHUNK_SIZE + CHUNK_HASH_SIZE) as u128) as u64;
    (estimate.saturating_sub(2 * CHUNK_HASH_SIZE)..=estimate + 2 * CHUNK_HASH_SIZE)
        .find(|&len| len > CHUNK_SIZE && len + trailer_len(len) == rest)
}

/// Returns the byte range of chunk `index` in `len` bytes of data.
pub fn chunk_range(index: u64, len: u64) -> (u64, u64) {
    let start = index * CHUNK_SIZE;
    (start, (start + CHUNK_SIZE).min(len))
}

/// Computes the chaining value of chunk `index` of data with more than one
/// chunk.
pub fn chunk_value(index: u64, data: &[u8]) -> ChainingValue {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(index * CHUNK_SIZE);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// Merges the chaining values of all chunks of `len` bytes of data into
/// the BLAKE3 hash of the data. `values` must hold one value per chunk and
/// there must be at least two chunks.
pub fn root_hash(values: &[ChainingValue], len: u64) -> blake3::Hash {
    debug_assert!(values.len() >= 2 && values.len() as u64 == chunk_count(len));
    let split = left_subtree_len(len);
    let left_chunks = (split / CHUNK_SIZE) as usize;
    let left = subtree_value(&values[..left_chunks], split);
    let right = subtree_value(&values[left_chunks..], len - split);
    merge_subtrees_root(&left, &right, Mode::Hash)
}

/// Computes the chaining value of the subtree made of `values`, which
/// covers `len` bytes.
fn subtree_value(values: &[ChainingValue], len: u64) -> ChainingValue {
    if values.len() == 1 {
        return values[0];
    }
    // The subtree is longer than one chunk, so its left half is a power of
    // two of at least CHUNK_SIZE and ends on a chunk boundary.
    let split = left_subtree_len(len);
    let left_chunks = (split / CHUNK_SIZE) as usize;
    let left = subtree_value(&values[..left_chunks], split);
    let right = subtree_value(&values[left_chunks..], len - split);
    merge_subtrees_non_root(&left, &right, Mode::Hash)
}

/// Hashes data as it is written, one chunk at a time, and gives the
/// manifest hash and the trailer at the end.
#[derive(Clone, Debug, Default)]
pub struct ChunkHasher {
    /// Hasher of the chunk being filled.
    current: blake3::Hasher,
    /// Bytes in the chunk being filled.
    current_len: u64,
    /// Values of the chunks already full, except the last full one, which
    /// stays in `pending` until it is known whether it is the only chunk.
    values: Vec<ChainingValue>,
    pending: Option<blake3::Hasher>,
    len: u64,
}

impl ChunkHasher {
    pub fn new() -> ChunkHasher {
        ChunkHasher::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.current_len == CHUNK_SIZE {
                self.close_chunk();
            }
            let take = ((CHUNK_SIZE - self.current_len) as usize).min(data.len());
            self.current.update(&data[..take]);
            self.current_len += take as u64;
            self.len += take as u64;
            data = &data[take..];
        }
    }

    /// Starts a new chunk after a full one.
    fn close_chunk(&mut self) {
        let index = self.len / CHUNK_SIZE;
        let mut next = blake3::Hasher::new();
        next.set_input_offset(index * CHUNK_SIZE);
        let full = std::mem::replace(&mut self.current, next);
        if let Some(previous) = self.pending.replace(full) {
            self.values.push(previous.finalize_non_root());
        }
        self.current_len = 0;
    }

    /// Returns the BLAKE3 hash of all the data and the trailer bytes.
    pub fn finish(mut self) -> (blake3::Hash, Vec<u8>) {
        if self.len <= CHUNK_SIZE {
            // One chunk at most, so its hasher has seen all the data.
            let only = self.pending.take().unwrap_or(self.current);
            return (only.finalize(), Vec::new());
        }
        if let Some(previous) = self.pending.take() {
            self.values.push(previous.finalize_non_root());
        }
        if self.current_len > 0 {
            self.values.push(self.current.finalize_non_root());
        }
        let root = root_hash(&self.values, self.len);
        let trailer = self.values.concat();
        (root, trailer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 1013) as u8).collect()
    }

    #[test]
    fn hasher_matches_blake3_for_lengths_around_chunk_boundaries() {
        let mb = CHUNK_SIZE as usize;
        for len in [
            0,
            1,
            1024,
            mb - 1,
            mb,
            mb + 1,
            2 * mb,
            2 * mb + 4096,
            3 * mb,
            4 * mb - 1,
            5 * mb + 17,
        ] {
            let bytes = data(len);
            let mut hasher = ChunkHasher::new();
            // Odd write sizes cross chunk boundaries inside one update.
            for piece in bytes.chunks(300_007) {
                hasher.update(piece);
            }
            let (root, trailer) = hasher.finish();
            assert_eq!(root, blake3::hash(&bytes), "length {len}");
            assert_eq!(
                trailer.len() as u64,
                trailer_len(len as u64),
                "length {len}"
            );

            if len as u64 > CHUNK_SIZE {
                let values: Vec<ChainingValue> = trailer
                    .chunks_exact(32)
                    .map(|value| value.try_into().unwrap())
                    .collect();
                assert_eq!(root_hash(&values, len as u64), root);
                for (index, value) in values.iter().enumerate() {
                    let (start, end) = chunk_range(index as u64, len as u64);
                    let chunk = &bytes[start as usize..end as usize];
                    assert_eq!(&chunk_value(index as u64, chunk), value);
                }
            }
        }
    }

    #[test]
    fn data_len_inverts_the_file_size() {
        let offset = crate::format::PAGE_DATA_OFFSET;
        for len in [
            0,
            1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            7 * CHUNK_SIZE / 2,
            1 << 40,
            (1 << 40) + 5,
        ] {
            let size = offset + len + trailer_len(len);
            assert_eq!(data_len_for_file_size(size), Some(len), "length {len}");
        }
        // Sizes that fall inside a trailer's jump have no data length.
        let size = offset + CHUNK_SIZE + 1;
        assert_eq!(data_len_for_file_size(size), None);
        assert_eq!(data_len_for_file_size(10), None);
    }

    #[test]
    fn chunk_value_changes_with_one_byte() {
        let mut bytes = data(3 * CHUNK_SIZE as usize);
        let before: Vec<ChainingValue> = (0..3)
            .map(|i| {
                let (start, end) = chunk_range(i, bytes.len() as u64);
                chunk_value(i, &bytes[start as usize..end as usize])
            })
            .collect();
        bytes[CHUNK_SIZE as usize + 5] ^= 1;
        let after = chunk_value(1, &bytes[CHUNK_SIZE as usize..2 * CHUNK_SIZE as usize]);
        assert_ne!(after, before[1]);
        // The same chunk content at another index has another value.
        assert_ne!(chunk_value(0, &bytes[..CHUNK_SIZE as usize]), before[1]);
    }
}
