//! Sealing of stasis checkpoint images with Ed25519 signatures.
//!
//! A checkpoint image contains a process's whole memory, and `stasis
//! restore` runs it as root, so anyone who can change an image can run
//! code as root. A seal proves that an image is the one a holder of a
//! trusted key sealed: an Ed25519 key in a file, or a signing key that
//! lives in a TPM 2.0 and may be bound to PCR values.
//!
//! The manifest of an image already lists every other file with its size
//! and BLAKE3 hash. A seal ([`format`](mod@format)) signs the BLAKE3 hash
//! of the exact manifest bytes together with the signer's key ID, the
//! sealing time, the stasis version and the image format version. It is
//! stored in the file `seal` in the image directory, and the manifest is
//! not rewritten.
//!
//! - [`key`]: key generation and key files.
//! - [`sign`]: [`seal_image`] writes a seal.
//! - [`verify`]: [`verify_seal`] checks a seal before a restore reads any
//!   record.
//! - [`report`]: [`verify_image`] checks a seal and every file, and lists
//!   each problem.
//! - [`policy`]: the system-wide policy that can require seals.
//! - [`tpm`]: the TPM signing key, PCR reads, and sealing of small secrets
//!   to a TPM.
//!
//! This crate does only file I/O, reading random bytes from the operating
//! system to generate keys, and commands to a TPM through libtss2. docs/SECURITY.md in the repository
//! describes what sealing protects against.

mod error;
mod files;
pub mod format;
pub mod key;
pub mod policy;
pub mod report;
pub mod sign;
pub mod swtpm;
pub mod tpm;
pub mod verify;

pub use error::SealError;
pub use format::{Seal, SealInfo, SealSignature, TpmSealInfo, SEAL_FILE_NAME};
pub use key::{
    generate_encryption_key, generate_key_pair, generate_tpm_encryption_key, load_encryption_key,
    GeneratedEncryptionKey, GeneratedKey, PrivateKey, PublicKey,
};
pub use policy::{load_policy, Policy};
pub use report::{verify_image, verify_image_with, VerifyReport};
pub use sign::{seal_image, seal_image_tpm, SealOptions, SealOutcome};
pub use tpm::{SealedSecret, Tpm};
pub use verify::{read_seal, verify_seal, verify_seal_tpm, Trust, VerifiedSeal, VerifiedTpmSeal};

#[cfg(test)]
mod test_support;
