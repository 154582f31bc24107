//! Ed25519 signing keys and their files.
//!
//! A key file is two lines of ASCII text, each ending in a newline: a header
//! line naming the file type, then the 32 key bytes as 64 hex digits.
//!
//! ```text
//! stasis-ed25519-private-v1
//! 9f0c…(64 hex digits: the Ed25519 secret key, RFC 8032 "seed")
//! ```
//!
//! ```text
//! stasis-ed25519-public-v1
//! 3b6a…(64 hex digits: the Ed25519 public key, RFC 8032 encoding)
//! ```
//!
//! An image encryption key file (`stasis key generate --encryption`) has
//! the same form, with the header `stasis-aes256-image-key-v1` and the
//! 32 bytes of an AES-256 key, and the same mode rule as a private key.
//!
//! Writers use lowercase hex digits; readers also accept uppercase ones and
//! a missing final newline. A private key file must not be accessible to
//! group or other users (mode 0600 or stricter), or loading it fails.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::files::{
    open_regular, parent_dir, read_limited, read_opened, sync_dir, write_new_file, Symlinks,
};

/// First line of a private key file.
pub const PRIVATE_KEY_HEADER: &str = "stasis-ed25519-private-v1";
/// First line of a public key file.
pub const PUBLIC_KEY_HEADER: &str = "stasis-ed25519-public-v1";
/// First line of an image encryption key file.
pub const ENCRYPTION_KEY_HEADER: &str = "stasis-aes256-image-key-v1";
/// First line of an image encryption key file whose key is sealed by a
/// TPM. The next lines are `tcti STRING`, naming the TPM that sealed it,
/// then the hex public and private parts of the sealed object.
pub const TPM_ENCRYPTION_KEY_HEADER: &str = "stasis-aes256-image-key-tpm-v1";
/// Suffix that `stasis key generate` appends to the private key path to
/// name the public key file.
pub const PUBLIC_KEY_SUFFIX: &str = ".pub";
/// Number of bytes of BLAKE3(public key) that form the key ID.
pub const KEY_ID_BYTES: usize = 8;

/// Maximum size of a key file that readers accept, in bytes. A plain key
/// file has about 92 bytes, a TPM-sealed one under 1 KiB.
pub(crate) const MAX_KEY_FILE_SIZE: u64 = 4096;
/// Permissions of a new private key file.
const PRIVATE_KEY_MODE: u32 = 0o600;
/// Permissions of a new public key file.
const PUBLIC_KEY_MODE: u32 = 0o644;
/// Permission bits of a private key file that give group or other users
/// access.
const GROUP_OTHER_BITS: u32 = 0o077;

/// An Ed25519 private key loaded from a key file. The secret bytes are
/// zeroed when it is dropped.
pub struct PrivateKey {
    signing: SigningKey,
    path: PathBuf,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PrivateKey")
            .field("path", &self.path)
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Loads the private key file `path`.
    ///
    /// Rejects a file that is not a private key file, such as a public key
    /// file ([`SealError::PublicKeyGiven`]), and then a file whose mode
    /// gives group or other users any access ([`SealError::KeyPermissions`]).
    pub fn load(path: &Path) -> Result<PrivateKey, SealError> {
        let (file, metadata) = open_regular(path, Symlinks::Follow)?;
        let bytes = Zeroizing::new(read_opened(file, &metadata, path, MAX_KEY_FILE_SIZE)?);
        // The contents are checked before the mode: a public key file has
        // mode 0644, and passed here by mistake it should be reported as
        // the wrong file, not as a private key that others can read.
        let seed = decode_key_file(&bytes, PRIVATE_KEY_HEADER, path)?;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & GROUP_OTHER_BITS != 0 {
            return Err(SealError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        Ok(PrivateKey {
            signing: SigningKey::from_bytes(&seed),
            path: path.to_path_buf(),
        })
    }

    /// Returns the path the key was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Returns the matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            verifying: self.signing.verifying_key(),
        }
    }

    /// Signs `message` with Ed25519.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    verifying: VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "PublicKey({})", self.key_id())
    }
}

impl PublicKey {
    /// Loads the public key file `path`.
    pub fn load(path: &Path) -> Result<PublicKey, SealError> {
        let (bytes, _) = read_limited(path, MAX_KEY_FILE_SIZE, Symlinks::Follow)?;
        PublicKey::from_file_bytes(&bytes, path)
    }

    /// Decodes the contents of a public key file read from `path`.
    pub(crate) fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<PublicKey, SealError> {
        let key = decode_key_file(bytes, PUBLIC_KEY_HEADER, path)?;
        PublicKey::from_bytes(&key)
            .map_err(|message| SealError::invalid_key(path, message.to_string()))
    }

    /// Builds a public key from its 32-byte encoding. Rejects bytes that are
    /// not a point on the curve, and weak keys of small order, for which
    /// signatures prove nothing.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, &'static str> {
        let verifying = VerifyingKey::from_bytes(bytes)
            .map_err(|_| "the key bytes are not a valid Ed25519 public key")?;
        if verifying.is_weak() {
            return Err("the key is a weak Ed25519 key of small order");
        }
        Ok(PublicKey { verifying })
    }

    /// Returns the 32-byte encoding of the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.verifying.to_bytes()
    }

    /// Returns the key ID: the first 8 bytes of BLAKE3 of the 32-byte key,
    /// as 16 lowercase hex digits.
    pub fn key_id(&self) -> String {
        let hash = blake3::hash(self.verifying.as_bytes());
        hex::encode(&hash.as_bytes()[..KEY_ID_BYTES])
    }

    /// Checks an Ed25519 signature with the strict rules of
    /// `VerifyingKey::verify_strict`, which reject malleable signatures.
    pub(crate) fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.verifying.verify_strict(message, signature).is_ok()
    }
}

/// The files written by [`generate_key_pair`].
#[derive(Clone, Debug)]
pub struct GeneratedKey {
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub public_key: PublicKey,
}

/// Returns the public key path that belongs to the private key path
/// `private_path`: the same path with [`PUBLIC_KEY_SUFFIX`] appended.
pub fn public_key_path(private_path: &Path) -> PathBuf {
    let mut name = OsString::from(private_path.as_os_str());
    name.push(PUBLIC_KEY_SUFFIX);
    PathBuf::from(name)
}

/// Generates a new key pair from the operating system's random number
/// generator, and writes the private key to `private_path` with mode 0600
/// and the public key to `private_path` + ".pub" with mode 0644.
///
/// Neither file may exist: both are created with O_CREAT | O_EXCL. If the
/// public key cannot be written, the private key file is removed again.
pub fn generate_key_pair(private_path: &Path) -> Result<GeneratedKey, SealError> {
    let public_path = public_key_path(private_path);
    for path in [private_path, public_path.as_path()] {
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(SealError::AlreadyExists {
                    path: path.to_path_buf(),
                })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(SealError::io(path, error)),
        }
    }

    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|error| SealError::Random(error.to_string()))?;
    let signing = SigningKey::from_bytes(&seed);
    let public_key = PublicKey {
        verifying: signing.verifying_key(),
    };

    let private_text = encode_key_file(PRIVATE_KEY_HEADER, &seed);
    write_new_file(private_path, private_text.as_bytes(), PRIVATE_KEY_MODE)?;
    let public_text = encode_key_file(PUBLIC_KEY_HEADER, &public_key.to_bytes());
    if let Err(error) = write_new_file(&public_path, public_text.as_bytes(), PUBLIC_KEY_MODE) {
        let _ = fs::remove_file(private_path);
        return Err(error);
    }
    sync_dir(parent_dir(private_path))?;

    Ok(GeneratedKey {
        private_path: private_path.to_path_buf(),
        public_path,
        public_key,
    })
}

/// A new image encryption key, as [`generate_encryption_key`] wrote it.
#[derive(Debug)]
pub struct GeneratedEncryptionKey {
    pub path: PathBuf,
    /// ID of the key, which the manifests of the images it encrypts record.
    pub key_id: String,
}

/// Generates a random 256-bit image encryption key and writes it to `path`
/// with mode 0600. The file must not exist.
pub fn generate_encryption_key(path: &Path) -> Result<GeneratedEncryptionKey, SealError> {
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(key.as_mut()).map_err(|error| SealError::Random(error.to_string()))?;
    let text = encode_key_file(ENCRYPTION_KEY_HEADER, &key);
    write_new_file(path, text.as_bytes(), PRIVATE_KEY_MODE)?;
    sync_dir(parent_dir(path))?;
    Ok(GeneratedEncryptionKey {
        path: path.to_path_buf(),
        key_id: stasis_image::ImageKey::from_bytes(*key).key_id(),
    })
}

/// Generates a random 256-bit image encryption key, seals it with the TPM
/// that `tcti` names (see [`Tpm::open`](crate::tpm::Tpm::open)), and writes
/// the sealed key to `path` with mode 0600. Only that TPM can unseal it,
/// so the key cannot be copied off the host.
pub fn generate_tpm_encryption_key(
    path: &Path,
    tcti: Option<&str>,
) -> Result<GeneratedEncryptionKey, SealError> {
    match fs::symlink_metadata(path) {
        Ok(_) => {
            return Err(SealError::AlreadyExists {
                path: path.to_path_buf(),
            })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(SealError::io(path, error)),
    }
    let mut tpm = crate::tpm::Tpm::open(tcti)?;
    let mut key = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(key.as_mut()).map_err(|error| SealError::Random(error.to_string()))?;
    let sealed = tpm.seal_secret(key.as_ref())?;
    let text = format!(
        "{TPM_ENCRYPTION_KEY_HEADER}\ntcti {}\n{}\n{}\n",
        tpm.tcti(),
        hex::encode(&sealed.public),
        hex::encode(&sealed.private)
    );
    write_new_file(path, text.as_bytes(), PRIVATE_KEY_MODE)?;
    sync_dir(parent_dir(path))?;
    Ok(GeneratedEncryptionKey {
        path: path.to_path_buf(),
        key_id: stasis_image::ImageKey::from_bytes(*key).key_id(),
    })
}

/// Unseals the key of a TPM-sealed key file with its TPM: the one that
/// STASIS_TCTI names, or else the one recorded in the file.
fn unseal_tpm_key(text: &str, path: &Path) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let mut lines = text.trim_end_matches('\n').split('\n').skip(1);
    let invalid = |message: &str| SealError::invalid_key(path, message.to_string());
    let recorded = lines
        .next()
        .and_then(|line| line.strip_prefix("tcti "))
        .ok_or_else(|| invalid("the second line must be \"tcti\" and the TPM's TCTI string"))?;
    let mut part = || {
        lines
            .next()
            .and_then(|line| hex::decode(line).ok())
            .ok_or_else(|| invalid("the sealed key must follow as two lines of hex digits"))
    };
    let sealed = crate::tpm::SealedSecret {
        public: part()?,
        private: part()?,
    };
    let tcti = std::env::var(crate::tpm::TCTI_ENV)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| recorded.to_string());
    let mut tpm = crate::tpm::Tpm::open(Some(&tcti))?;
    let secret = tpm.unseal_secret(&sealed).map_err(|error| {
        SealError::invalid_key(
            path,
            format!(
                "the TPM at {tcti} cannot unseal it, so it was sealed by another TPM or this \
                 TPM was cleared ({error})"
            ),
        )
    })?;
    let key: [u8; 32] = secret
        .as_slice()
        .try_into()
        .map_err(|_| invalid("the TPM unsealed a secret that is not 32 bytes"))?;
    Ok(Zeroizing::new(key))
}

/// Loads the image encryption key file `path`, unsealing the key with its
/// TPM for a file from `stasis key generate --encryption --tpm`. Like a
/// private key, the file must not give group or other users any access.
pub fn load_encryption_key(path: &Path) -> Result<stasis_image::ImageKey, SealError> {
    let (file, metadata) = open_regular(path, Symlinks::Follow)?;
    let bytes = Zeroizing::new(read_opened(file, &metadata, path, MAX_KEY_FILE_SIZE)?);
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    let key = if text.starts_with(&format!("{TPM_ENCRYPTION_KEY_HEADER}\n")) {
        unseal_tpm_key(text, path)?
    } else {
        decode_key_file(&bytes, ENCRYPTION_KEY_HEADER, path)?
    };
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & GROUP_OTHER_BITS != 0 {
        return Err(SealError::KeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(stasis_image::ImageKey::from_bytes(*key))
}

/// Encodes a key file: the header line, then `key` as hex digits.
fn encode_key_file(header: &str, key: &[u8; 32]) -> Zeroizing<String> {
    let digits = Zeroizing::new(hex::encode(key));
    Zeroizing::new(format!("{header}\n{}\n", digits.as_str()))
}

/// Decodes a key file whose first line must be `header`. Returns the 32 key
/// bytes.
fn decode_key_file(
    bytes: &[u8],
    header: &str,
    path: &Path,
) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| SealError::invalid_key(path, "the file is not UTF-8 text"))?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    if first != header {
        let path = path.to_path_buf();
        return Err(match first {
            PRIVATE_KEY_HEADER if header == ENCRYPTION_KEY_HEADER => SealError::invalid_key(
                path,
                "it is a signing key, but this needs an image encryption key \
                 (`stasis key generate --encryption`)",
            ),
            PUBLIC_KEY_HEADER if header == ENCRYPTION_KEY_HEADER => SealError::invalid_key(
                path,
                "it is a public signing key, but this needs an image encryption key \
                 (`stasis key generate --encryption`)",
            ),
            ENCRYPTION_KEY_HEADER => SealError::invalid_key(
                path,
                "it is an image encryption key, but this needs a signing key \
                 (`stasis key generate`)",
            ),
            PRIVATE_KEY_HEADER => SealError::PrivateKeyGiven { path },
            PUBLIC_KEY_HEADER => SealError::PublicKeyGiven { path },
            _ => SealError::invalid_key(path, format!("the first line must be {header:?}")),
        });
    }

    let Some(digits) = lines.next() else {
        return Err(SealError::invalid_key(
            path,
            "the key line after the header is missing",
        ));
    };
    if lines.next().is_some() {
        return Err(SealError::invalid_key(
            path,
            "the file has more than two lines",
        ));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    if digits.len() != 64 || hex::decode_to_slice(digits, key.as_mut()).is_err() {
        return Err(SealError::invalid_key(
            path,
            "the second line must be 64 hex digits (32 key bytes)",
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn encryption_key_round_trips_with_mode_0600() {
        let temp = TempDir::new();
        let path = temp.path().join("image.key");
        let generated = generate_encryption_key(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load_encryption_key(&path).unwrap();
        assert_eq!(loaded.key_id(), generated.key_id);
        let error = generate_encryption_key(&path).unwrap_err();
        assert!(matches!(error, SealError::AlreadyExists { .. }), "{error}");
    }

    #[test]
    fn encryption_key_readable_by_others_is_rejected() {
        let temp = TempDir::new();
        let path = temp.path().join("image.key");
        generate_encryption_key(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = load_encryption_key(&path).unwrap_err();
        assert!(matches!(error, SealError::KeyPermissions { .. }), "{error}");
    }

    #[test]
    fn signing_and_encryption_keys_are_not_mixed_up() {
        let temp = TempDir::new();
        let signing = temp.path().join("signing.key");
        generate_key_pair(&signing).unwrap();
        let error = load_encryption_key(&signing).unwrap_err();
        assert!(error.to_string().contains("is a signing key"), "{error}");
        let public = public_key_path(&signing);
        let error = load_encryption_key(&public).unwrap_err();
        assert!(error.to_string().contains("public signing key"), "{error}");

        let image_key = temp.path().join("image.key");
        generate_encryption_key(&image_key).unwrap();
        let error = PrivateKey::load(&image_key).unwrap_err();
        assert!(
            error.to_string().contains("image encryption key"),
            "{error}"
        );
    }

    #[test]
    fn generate_writes_private_0600_and_public_0644() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        let generated = generate_key_pair(&path).expect("generate");

        assert_eq!(generated.public_path, temp.path().join("signer.pub"));
        let private_mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(private_mode, 0o600);
        let public_mode = fs::metadata(&generated.public_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(public_mode & 0o600, 0o600);
        assert_eq!(public_mode & 0o022, 0);

        let private = PrivateKey::load(&path).expect("load private key");
        let public = PublicKey::load(&generated.public_path).expect("load public key");
        assert_eq!(private.public_key(), public);
        assert_eq!(public, generated.public_key);
        assert_eq!(public.key_id().len(), 16);
    }

    #[test]
    fn key_files_have_documented_layout() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        let generated = generate_key_pair(&path).unwrap();

        let private = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = private.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], PRIVATE_KEY_HEADER);
        assert_eq!(lines[1].len(), 64);
        assert!(private.ends_with('\n'));

        let public = fs::read_to_string(&generated.public_path).unwrap();
        assert_eq!(
            public,
            format!(
                "{PUBLIC_KEY_HEADER}\n{}\n",
                hex::encode(generated.public_key.to_bytes())
            )
        );
    }

    #[test]
    fn generate_refuses_existing_private_key() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        fs::write(&path, "old").unwrap();

        let error = generate_key_pair(&path).unwrap_err();
        assert!(matches!(error, SealError::AlreadyExists { .. }), "{error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert!(!temp.path().join("signer.pub").exists());
    }

    #[test]
    fn generate_refuses_existing_public_key() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        fs::write(temp.path().join("signer.pub"), "old").unwrap();

        let error = generate_key_pair(&path).unwrap_err();
        assert!(error.to_string().contains("signer.pub"), "{error}");
        assert!(!path.exists(), "private key was left behind");
    }

    #[test]
    fn generate_refuses_symlink() {
        let temp = TempDir::new();
        let target = temp.path().join("target");
        let path = temp.path().join("signer");
        std::os::unix::fs::symlink(&target, &path).unwrap();

        let error = generate_key_pair(&path).unwrap_err();
        assert!(matches!(error, SealError::AlreadyExists { .. }), "{error}");
        assert!(!target.exists());
    }

    #[test]
    fn group_readable_private_key_is_rejected() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        generate_key_pair(&path).unwrap();

        for mode in [0o640, 0o604, 0o620, 0o610, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let error = PrivateKey::load(&path).unwrap_err();
            assert!(
                matches!(error, SealError::KeyPermissions { mode: found, .. } if found == mode),
                "mode {mode:o}: {error}"
            );
            let message = error.to_string();
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert!(message.contains("chmod 600"), "{message}");
        }

        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        PrivateKey::load(&path).expect("mode 0400 is accepted");
    }

    #[test]
    fn private_and_public_files_are_not_interchangeable() {
        let temp = TempDir::new();
        let path = temp.path().join("signer");
        let generated = generate_key_pair(&path).unwrap();

        let error = PublicKey::load(&path).unwrap_err();
        assert!(
            matches!(error, SealError::PrivateKeyGiven { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("is a private key file"),
            "{error}"
        );

        fs::set_permissions(&generated.public_path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = PrivateKey::load(&generated.public_path).unwrap_err();
        assert!(matches!(error, SealError::PublicKeyGiven { .. }), "{error}");
        assert!(
            error.to_string().contains("is a public key file"),
            "{error}"
        );
    }

    #[test]
    fn public_key_as_private_is_named_before_mode() {
        let temp = TempDir::new();
        let generated = generate_key_pair(&temp.path().join("signer")).unwrap();
        fs::set_permissions(&generated.public_path, fs::Permissions::from_mode(0o644)).unwrap();

        let error = PrivateKey::load(&generated.public_path).unwrap_err();
        assert!(matches!(error, SealError::PublicKeyGiven { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("pass the private key file"), "{message}");
        assert!(!message.contains("chmod"), "{message}");
    }

    #[test]
    fn malformed_public_key_files_are_rejected() {
        let temp = TempDir::new();
        let valid = hex::encode(
            generate_key_pair(&temp.path().join("signer"))
                .unwrap()
                .public_key
                .to_bytes(),
        );
        let cases = [
            ("empty", String::new(), "the first line must be"),
            ("header only", format!("{PUBLIC_KEY_HEADER}\n"), "missing"),
            (
                "short key",
                format!("{PUBLIC_KEY_HEADER}\n{}\n", &valid[..62]),
                "64 hex digits",
            ),
            (
                "not hex",
                format!("{PUBLIC_KEY_HEADER}\n{}\n", "zz".repeat(32)),
                "64 hex digits",
            ),
            (
                "extra line",
                format!("{PUBLIC_KEY_HEADER}\n{valid}\n\n"),
                "more than two lines",
            ),
            (
                "carriage return",
                format!("{PUBLIC_KEY_HEADER}\r\n{valid}\r\n"),
                "the first line must be",
            ),
            (
                // y = 2 has no x on the curve: (y² - 1) / (d·y² + 1) is not a
                // square modulo 2^255 - 19.
                "not a point",
                format!("{PUBLIC_KEY_HEADER}\n02{}\n", "00".repeat(31)),
                "not a valid Ed25519 public key",
            ),
            (
                "small order point",
                format!("{PUBLIC_KEY_HEADER}\n01{}\n", "00".repeat(31)),
                "weak",
            ),
        ];
        for (label, text, expected) in cases {
            let path = temp.path().join("case.pub");
            fs::write(&path, &text).unwrap();
            let error = PublicKey::load(&path).unwrap_err();
            assert!(
                error.to_string().contains(expected),
                "{label}: {error} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn uppercase_and_missing_final_newline_are_accepted() {
        let temp = TempDir::new();
        let generated = generate_key_pair(&temp.path().join("signer")).unwrap();
        let digits = hex::encode_upper(generated.public_key.to_bytes());
        let path = temp.path().join("upper.pub");
        fs::write(&path, format!("{PUBLIC_KEY_HEADER}\n{digits}")).unwrap();
        assert_eq!(PublicKey::load(&path).unwrap(), generated.public_key);
    }

    #[test]
    fn oversized_key_file_is_rejected() {
        let temp = TempDir::new();
        let path = temp.path().join("big.pub");
        fs::write(&path, vec![b'a'; MAX_KEY_FILE_SIZE as usize + 1]).unwrap();
        let error = PublicKey::load(&path).unwrap_err();
        assert!(matches!(error, SealError::TooLarge { .. }), "{error}");
    }

    #[test]
    fn key_id_is_blake3_prefix() {
        let temp = TempDir::new();
        let key = generate_key_pair(&temp.path().join("signer"))
            .unwrap()
            .public_key;
        let hash = blake3::hash(&key.to_bytes());
        assert_eq!(key.key_id(), hex::encode(&hash.as_bytes()[..8]));
    }
}
