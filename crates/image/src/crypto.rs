//! Encryption of image files at rest.
//!
//! An encrypted image names its cipher, a random salt and the ID of its
//! key in the manifest, which stays in clear so that an image can be
//! listed, checked and verified without the key. Every other file is
//! encrypted with AES-256-GCM under a key of its own: BLAKE3 in key
//! derivation mode over the image key, the salt and the file name. No two
//! files share a key, and a file renamed or moved to another image does
//! not decrypt.
//!
//! - A record file's payload is one AES-GCM message: the CBOR record
//!   followed by the 16-byte tag. It is sealed as chunk 0, the last.
//! - A data file is cut into chunks of [`PLAIN_CHUNK_SIZE`] bytes, each
//!   stored as ciphertext plus tag, so that a stored chunk is exactly
//!   [`CHUNK_SIZE`] bytes (the last may be shorter) and lines up with the
//!   chunk hashes.
//!
//! The 96-bit nonce of chunk `i` is `i` as a little-endian u64 followed by
//! a little-endian u32 that is 1 for the last chunk and 0 otherwise. Each
//! file key seals each chunk index once, so nonces never repeat under a
//! key, and a data file cut short at a chunk boundary fails to decrypt.
//!
//! AES-GCM comes from `ring`, whose AES-NI and VAES code ran at 7.5 GiB/s
//! on the benchmark machine. The pure-Rust `aes-gcm` and
//! `chacha20poly1305` crates ran at about 1.2 GiB/s there, which would
//! make decryption the slowest step of a restore.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use zeroize::Zeroizing;

use crate::chunks::CHUNK_SIZE;

/// Name of the cipher in the manifest.
pub const CIPHER_NAME: &str = "aes-256-gcm";
/// Size of an image key, in bytes.
pub const KEY_SIZE: usize = 32;
/// Size of the salt in the manifest, in bytes.
pub const SALT_SIZE: usize = 32;
/// Size of the AES-GCM tag after each sealed message, in bytes.
pub const TAG_SIZE: u64 = 16;
/// Bytes of plain data in one chunk of an encrypted data file.
pub const PLAIN_CHUNK_SIZE: u64 = CHUNK_SIZE - TAG_SIZE;
/// Number of bytes of the derived key ID, shown as hex.
const KEY_ID_BYTES: usize = 8;

/// A 256-bit key that encrypts images. The bytes are zeroed on drop.
#[derive(Clone)]
pub struct ImageKey(Zeroizing<[u8; KEY_SIZE]>);

impl ImageKey {
    pub fn from_bytes(bytes: [u8; KEY_SIZE]) -> ImageKey {
        ImageKey(Zeroizing::new(bytes))
    }

    /// Returns the key's ID: 16 hex digits derived from the key, which
    /// the manifest records so that a wrong key is reported as such.
    pub fn key_id(&self) -> String {
        let derived = blake3::derive_key("stasis image key id v1", self.0.as_ref());
        derived[..KEY_ID_BYTES]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl fmt::Debug for ImageKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "ImageKey(id {})", self.key_id())
    }
}

/// The AES-256-GCM key of one file of an encrypted image.
pub struct FileCipher {
    key: LessSafeKey,
}

impl FileCipher {
    /// Derives the key of the file `name` of the image with `salt`.
    pub fn new(image_key: &ImageKey, salt: &[u8; SALT_SIZE], name: &str) -> FileCipher {
        let mut material = Zeroizing::new(Vec::with_capacity(KEY_SIZE + SALT_SIZE + name.len()));
        material.extend_from_slice(image_key.0.as_ref());
        material.extend_from_slice(salt);
        material.extend_from_slice(name.as_bytes());
        let derived = Zeroizing::new(blake3::derive_key("stasis image file key v1", &material));
        let unbound =
            UnboundKey::new(&AES_256_GCM, derived.as_ref()).expect("AES-256 takes 32-byte keys");
        FileCipher {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypts `data` in place as chunk `index` and appends the tag.
    pub fn seal(&self, index: u64, last: bool, data: &mut Vec<u8>) {
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(index, last), Aad::empty(), data)
            .expect("AES-GCM seals any message shorter than 64 GiB");
        data.extend_from_slice(tag.as_ref());
    }

    /// Decrypts chunk `index` in place and removes the tag. Fails when the
    /// key is wrong, or the chunk or its place in the file changed.
    pub fn open(&self, index: u64, last: bool, data: &mut Vec<u8>) -> Result<(), DecryptFailed> {
        let plain_len = self
            .key
            .open_in_place(nonce(index, last), Aad::empty(), data)
            .map_err(|_| DecryptFailed)?
            .len();
        data.truncate(plain_len);
        Ok(())
    }
}

impl fmt::Debug for FileCipher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("FileCipher(aes-256-gcm)")
    }
}

/// Decrypts a record file of an encrypted image, whose header is valid,
/// into the same record file in clear: the payload decrypted, and the
/// header's payload length and checksum set to match it.
pub fn clear_record_file(
    bytes: &[u8],
    cipher: &FileCipher,
    path: &std::path::Path,
) -> Result<Vec<u8>, crate::ImageError> {
    let header = crate::format::parse_header(bytes, path)?;
    let mut payload = bytes[crate::HEADER_SIZE as usize..].to_vec();
    cipher
        .open(0, true, &mut payload)
        .map_err(|_| crate::ImageError::DecryptFailed {
            path: path.to_path_buf(),
            chunk: 0,
            chunks: 1,
        })?;
    Ok(crate::format::record_file_bytes(header.kind, &payload))
}

/// A message that did not decrypt: the tag does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptFailed;

fn nonce(index: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    bytes[8..].copy_from_slice(&u32::from(last).to_le_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// Stored length of `plain` bytes of data in an encrypted data file.
pub fn stored_len(plain: u64) -> u64 {
    plain + plain.div_ceil(PLAIN_CHUNK_SIZE) * TAG_SIZE
}

/// Plain length of `stored` bytes of an encrypted data file, or None when
/// the last stored chunk is too short to hold a tag and a byte of data.
pub fn plain_len(stored: u64) -> Option<u64> {
    let chunks = stored.div_ceil(CHUNK_SIZE);
    let last = stored - chunks.saturating_sub(1) * CHUNK_SIZE;
    if stored > 0 && last <= TAG_SIZE {
        return None;
    }
    Some(stored - chunks * TAG_SIZE)
}

/// Parses 64 hex digits into a salt.
pub fn parse_salt(hex: &str) -> Option<[u8; SALT_SIZE]> {
    if hex.len() != 2 * SALT_SIZE || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut salt = [0u8; SALT_SIZE];
    for (index, byte) in salt.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> ImageKey {
        ImageKey::from_bytes([byte; KEY_SIZE])
    }

    #[test]
    fn sealed_chunk_opens_only_in_its_place() {
        let salt = [3u8; SALT_SIZE];
        let cipher = FileCipher::new(&key(1), &salt, "pages-42");
        let mut data = b"secret page".to_vec();
        cipher.seal(4, false, &mut data);
        assert_eq!(data.len(), 11 + TAG_SIZE as usize);
        assert!(!data.windows(6).any(|window| window == b"secret"));

        let mut copy = data.clone();
        cipher.open(4, false, &mut copy).unwrap();
        assert_eq!(copy, b"secret page");

        // Another index, the last flag, another file, salt or key: no.
        assert!(cipher.open(5, false, &mut data.clone()).is_err());
        assert!(cipher.open(4, true, &mut data.clone()).is_err());
        let other_file = FileCipher::new(&key(1), &salt, "pages-43");
        assert!(other_file.open(4, false, &mut data.clone()).is_err());
        let other_salt = FileCipher::new(&key(1), &[4u8; SALT_SIZE], "pages-42");
        assert!(other_salt.open(4, false, &mut data.clone()).is_err());
        let other_key = FileCipher::new(&key(2), &salt, "pages-42");
        assert!(other_key.open(4, false, &mut data.clone()).is_err());
        let mut flipped = data.clone();
        flipped[3] ^= 1;
        assert!(cipher.open(4, false, &mut flipped).is_err());
    }

    #[test]
    fn lengths_round_trip() {
        for plain in [
            0,
            1,
            PLAIN_CHUNK_SIZE - 1,
            PLAIN_CHUNK_SIZE,
            PLAIN_CHUNK_SIZE + 1,
            5 * PLAIN_CHUNK_SIZE + 4096,
        ] {
            let stored = stored_len(plain);
            assert_eq!(plain_len(stored), Some(plain), "plain {plain}");
        }
        assert_eq!(stored_len(PLAIN_CHUNK_SIZE), CHUNK_SIZE);
        assert_eq!(plain_len(16), None);
        assert_eq!(plain_len(CHUNK_SIZE + 5), None);
    }

    #[test]
    fn key_id_depends_on_the_key() {
        assert_eq!(key(1).key_id().len(), 16);
        assert_eq!(key(1).key_id(), key(1).key_id());
        assert_ne!(key(1).key_id(), key(2).key_id());
        assert!(!format!("{:?}", key(1)).contains("0101"));
    }

    #[test]
    fn salt_parses_from_hex() {
        let hex = "ab".repeat(SALT_SIZE);
        assert_eq!(parse_salt(&hex), Some([0xab; SALT_SIZE]));
        assert_eq!(parse_salt("ab"), None);
        assert_eq!(parse_salt(&"zz".repeat(SALT_SIZE)), None);
    }
}
