//! The error type of every key, seal and policy operation.

use std::io;
use std::path::PathBuf;

use stasis_image::ImageError;

/// An error handling a key, a seal, the policy or a TPM. Every variant
/// names the file or directory it concerns, or the TCTI of the TPM.
#[derive(thiserror::Error, Debug)]
pub enum SealError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path} not found")]
    NotFound { path: PathBuf },

    #[error("{path} is not a regular file")]
    NotRegularFile { path: PathBuf },

    #[error("{path} is {size} bytes, more than the limit of {limit} bytes for this kind of file")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    #[error(
        "{path} already exists and stasis does not overwrite it; choose another path or remove it"
    )]
    AlreadyExists { path: PathBuf },

    #[error(
        "key file {path} has mode {mode:04o}, so users other than its owner can access it; \
         run `chmod 600 {path}` and check who may have copied it"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },

    #[error("{path} is not a valid stasis key file: {message}")]
    InvalidKeyFile { path: PathBuf, message: String },

    #[error(
        "{path} is a public key file, but this needs the private key; pass the private key file \
         (KEYFILE from `stasis key generate`, not KEYFILE.pub)"
    )]
    PublicKeyGiven { path: PathBuf },

    #[error(
        "{path} is a private key file, but this needs a public key; use the public key file \
         (KEYFILE.pub from `stasis key generate`), and keep the private key on the sealing host"
    )]
    PrivateKeyGiven { path: PathBuf },

    #[error(
        "{path} is writable by group or other users (mode {mode:04o}) or not owned by root \
         (owner uid {uid}), so it cannot be trusted; make it owned by root with mode 0644 or \
         stricter"
    )]
    UntrustedFile { path: PathBuf, mode: u32, uid: u32 },

    #[error(
        "{dir} is not sealed: {dir}/seal not found; seal it with `stasis seal {dir} --key KEYFILE`"
    )]
    NotSealed { dir: PathBuf },

    #[error("{path} is not a valid seal: {message}")]
    InvalidSeal { path: PathBuf, message: String },

    #[error(
        "{path} has seal version {found}, but this stasis reads seal versions up to \
         {supported}; use a newer stasis"
    )]
    NewerSealVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{path} is a seal for image format version {found}, but this stasis reads image format \
         versions up to {supported}; use a newer stasis"
    )]
    NewerImageFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("{path} was signed by key {key_id}, which is not a trusted key (trusted: {trusted})")]
    UntrustedKey {
        path: PathBuf,
        key_id: String,
        trusted: String,
    },

    #[error(
        "{path} has an invalid signature for key {key_id}: the seal was changed after it was \
         signed, or it was not made with that key"
    )]
    BadSignature { path: PathBuf, key_id: String },

    #[error(
        "{manifest} has BLAKE3 hash {actual}, but the seal signs {sealed}: the manifest was \
         changed after sealing, or the seal belongs to another image"
    )]
    ManifestMismatch {
        manifest: PathBuf,
        sealed: String,
        actual: String,
    },

    #[error("{path} seals image format version {sealed}, but the manifest has version {manifest}")]
    FormatVersionMismatch {
        path: PathBuf,
        sealed: u32,
        manifest: u32,
    },

    #[error("{manifest} lists the file {name:?}, a name reserved for the seal")]
    ReservedName { manifest: PathBuf, name: String },

    #[error("invalid policy file {path}: {message}")]
    Policy { path: PathBuf, message: String },

    #[error(
        "no TPM found: {device} does not exist, and neither --tcti nor the environment variable \
         {env} names a TPM; load the kernel's TPM driver, or name a TPM with --tcti TCTI or \
         {env}=TCTI, such as device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321",
        device = crate::tpm::DEFAULT_TPM_DEVICE,
        env = crate::tpm::TCTI_ENV
    )]
    NoTpm,

    #[error(
        "invalid TCTI {tcti:?}: expected device:PATH, swtpm:host=HOST,port=PORT, \
         mssim:host=HOST,port=PORT or tabrmd:..."
    )]
    InvalidTcti { tcti: String },

    #[error("cannot connect to the TPM through TCTI {tcti:?}: {message}; check that the TPM or swtpm is running and reachable there")]
    TpmConnect { tcti: String, message: String },

    #[error("TPM command {operation} failed on TCTI {tcti:?}: {message}")]
    Tpm {
        tcti: String,
        operation: String,
        message: String,
    },

    #[error(
        "the TPM on {tcti:?} refused to sign with the key bound to PCRs {pcrs}: the PCR values \
         changed after they were read for this seal; seal again"
    )]
    PcrPolicyFailed { tcti: String, pcrs: String },

    #[error(
        "{path} was signed by TPM key {key_id}, but it can only be checked with a TPM; verify \
         it with --tpm on the host whose TPM sealed it"
    )]
    TpmSealNeedsTpm { path: PathBuf, key_id: String },

    #[error(
        "{path} was signed by Ed25519 key {key_id}, not by a TPM; verify it with --pubkey \
         PUBFILE instead of --tpm"
    )]
    NotTpmSeal { path: PathBuf, key_id: String },

    #[error(
        "{path} was signed by TPM key {sealed}, but the TPM on {tcti:?} has key {found} for the \
         same PCR binding ({pcrs}): the image was sealed with another TPM, or this TPM's owner \
         hierarchy was cleared since"
    )]
    TpmKeyMismatch {
        path: PathBuf,
        tcti: String,
        sealed: String,
        found: String,
        pcrs: String,
    },

    #[error(
        "{path} is bound to PCR values that this machine no longer has, so the measured state \
         changed after sealing: {changes}"
    )]
    PcrMismatch { path: PathBuf, changes: String },

    #[error("failed to get random bytes for a new key: {0}")]
    Random(String),

    #[error(transparent)]
    Image(#[from] ImageError),
}

impl SealError {
    /// Builds an `Io` error for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> SealError {
        SealError::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an `InvalidKeyFile` error for `path`.
    pub(crate) fn invalid_key(path: impl Into<PathBuf>, message: impl Into<String>) -> SealError {
        SealError::InvalidKeyFile {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Builds an `InvalidSeal` error for `path`.
    pub(crate) fn invalid_seal(path: impl Into<PathBuf>, message: impl Into<String>) -> SealError {
        SealError::InvalidSeal {
            path: path.into(),
            message: message.into(),
        }
    }
}
