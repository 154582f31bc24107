//! Checking a seal: trusted signer, valid signature, the PCR state of a
//! PCR-bound TPM seal, and the hash of the manifest it signs.

use std::path::Path;

use stasis_image::format::parse_header;
use stasis_image::{FORMAT_VERSION, MANIFEST_NAME};

use crate::error::SealError;
use crate::files::{read_limited, Symlinks};
use crate::format::{Seal, SealInfo, SealSignature, MAX_SEAL_SIZE, SEAL_FILE_NAME};
use crate::key::PublicKey;
use crate::sign::read_manifest_bytes;
use crate::tpm::Tpm;

/// The signers whose seals a check accepts.
#[derive(Debug)]
pub enum Trust<'a> {
    /// Ed25519 seals by one of these keys.
    Keys(&'a [PublicKey]),
    /// TPM seals by this TPM's signing key. A seal bound to PCRs is
    /// accepted only while the PCRs hold the values it records.
    Tpm {
        tpm: &'a mut Tpm,
        /// Key IDs that the signing key must have; any key of this TPM
        /// when empty.
        key_ids: &'a [String],
    },
}

/// A TPM seal whose signature this TPM's key made, whose PCRs (if any)
/// hold the recorded values, and whose manifest hash matched the manifest
/// file when it was read.
#[derive(Clone, Debug)]
pub struct VerifiedTpmSeal {
    pub info: SealInfo,
    /// BLAKE3 hash of the manifest bytes that were checked, as in
    /// [`VerifiedSeal::manifest_hash`].
    pub manifest_hash: blake3::Hash,
}

/// A seal whose signature was checked against a trusted key and whose
/// manifest hash matched the manifest file when it was read.
#[derive(Clone, Debug)]
pub struct VerifiedSeal {
    pub info: SealInfo,
    /// BLAKE3 hash of the manifest bytes that were checked. Open the image
    /// with [`Image::open_expecting_manifest_hash`](stasis_image::Image::open_expecting_manifest_hash)
    /// and this hash, so that the image is read through the same manifest.
    pub manifest_hash: blake3::Hash,
    /// The trusted key that made the signature.
    pub signer: PublicKey,
}

/// Reads and parses the seal file of the image in `dir`.
pub fn read_seal(dir: &Path) -> Result<Seal, SealError> {
    let path = dir.join(SEAL_FILE_NAME);
    let bytes = match read_limited(&path, MAX_SEAL_SIZE, Symlinks::Reject) {
        Ok((bytes, _)) => bytes,
        Err(SealError::NotFound { .. }) => {
            return Err(SealError::NotSealed {
                dir: dir.to_path_buf(),
            })
        }
        Err(error) => return Err(error),
    };
    Seal::parse(&bytes, &path)
}

/// Checks the seal of the image in `dir` without reading any record: the
/// seal is signed by one of `trusted`, the signature is valid, and the
/// manifest file has the hash that the seal signs.
///
/// Checks, in order:
/// - the seal file exists and parses;
/// - its image format version is one this stasis reads;
/// - its key ID belongs to a trusted key;
/// - the signature verifies;
/// - the manifest hash matches;
/// - the manifest header has the format version that the seal names.
pub fn verify_seal(dir: &Path, trusted: &[PublicKey]) -> Result<VerifiedSeal, SealError> {
    let seal_path = dir.join(SEAL_FILE_NAME);
    // The directory is checked first, so that a missing directory is not
    // reported as a missing seal.
    let manifest_bytes = read_manifest_bytes(dir)?;
    let seal = read_seal(dir)?;
    let signer = check_signature(&seal, &seal_path, trusted)?;
    let manifest_hash = check_manifest(dir, &seal, &manifest_bytes)?;
    Ok(VerifiedSeal {
        info: seal.info,
        manifest_hash,
        signer,
    })
}

/// Checks the TPM seal of the image in `dir` without reading any record,
/// as [`verify_seal`] does for Ed25519 seals, with [`check_tpm_signature`]
/// in place of the key check.
pub fn verify_seal_tpm(
    dir: &Path,
    tpm: &mut Tpm,
    key_ids: &[String],
) -> Result<VerifiedTpmSeal, SealError> {
    let seal_path = dir.join(SEAL_FILE_NAME);
    let manifest_bytes = read_manifest_bytes(dir)?;
    let seal = read_seal(dir)?;
    check_versions(&seal, &seal_path)?;
    check_tpm_signature(&seal, &seal_path, tpm, key_ids)?;
    let manifest_hash = check_manifest(dir, &seal, &manifest_bytes)?;
    Ok(VerifiedTpmSeal {
        info: seal.info,
        manifest_hash,
    })
}

/// Checks that the manifest has the hash that the seal signs, and the
/// format version that the seal names. Returns the hash.
fn check_manifest(
    dir: &Path,
    seal: &Seal,
    manifest_bytes: &[u8],
) -> Result<blake3::Hash, SealError> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let manifest_hash = check_manifest_hash(seal, &manifest_path, manifest_bytes)?;
    // The bytes match the signed hash, so the header that is read here is
    // the one that the signer sealed.
    let header = parse_header(manifest_bytes, &manifest_path)?;
    if header.version != seal.info.image_format_version {
        return Err(SealError::FormatVersionMismatch {
            path: dir.join(SEAL_FILE_NAME),
            sealed: seal.info.image_format_version,
            manifest: header.version,
        });
    }
    Ok(manifest_hash)
}

/// Checks the seal's versions and its signature against `trust`.
pub(crate) fn check_trusted_signature(
    seal: &Seal,
    seal_path: &Path,
    trust: &mut Trust<'_>,
) -> Result<(), SealError> {
    match trust {
        Trust::Keys(trusted) => check_signature(seal, seal_path, trusted).map(|_| ()),
        Trust::Tpm { tpm, key_ids } => {
            check_versions(seal, seal_path)?;
            check_tpm_signature(seal, seal_path, tpm, key_ids)
        }
    }
}

/// Checks a TPM seal against `tpm`, in this order:
/// - the seal was made by a TPM key;
/// - its key ID is one of `key_ids`, unless that list is empty;
/// - `tpm` derives the same key for the seal's PCR binding, so the seal
///   was made by this TPM;
/// - the signature verifies with that key (in the TPM);
/// - each PCR of the binding has the value that the seal records.
pub fn check_tpm_signature(
    seal: &Seal,
    seal_path: &Path,
    tpm: &mut Tpm,
    key_ids: &[String],
) -> Result<(), SealError> {
    let info = &seal.info;
    let (Some(tpm_info), SealSignature::EcdsaP256(signature)) = (&info.tpm, &seal.signature) else {
        return Err(SealError::NotTpmSeal {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
        });
    };
    if !key_ids.is_empty() && !key_ids.contains(&info.key_id) {
        return Err(SealError::UntrustedKey {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
            trusted: key_ids.join(", "),
        });
    }
    // The parser checked both fields, so neither conversion fails.
    let invalid = || SealError::invalid_seal(seal_path, "invalid TPM fields");
    let sealed_key = tpm_info.public_key_bytes().ok_or_else(invalid)?;
    let pcrs = tpm_info.pcr_values().ok_or_else(invalid)?;

    let mut key = tpm.signing_key(&pcrs)?;
    if key.public_key() != sealed_key {
        let found = key.key_id();
        drop(key);
        return Err(SealError::TpmKeyMismatch {
            path: seal_path.to_path_buf(),
            tcti: tpm.tcti().to_string(),
            sealed: info.key_id.clone(),
            found,
            pcrs: tpm_info.describe_pcrs(),
        });
    }
    let valid = key.verify(seal.signed_bytes(), signature)?;
    drop(key);
    if !valid {
        return Err(SealError::BadSignature {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
        });
    }

    let indices: Vec<u8> = pcrs.iter().map(|pcr| pcr.index).collect();
    let current = tpm.read_pcrs(&indices)?;
    let changes: Vec<String> = pcrs
        .iter()
        .zip(&current)
        .filter(|(sealed, now)| sealed.value != now.value)
        .map(|(sealed, now)| {
            format!(
                "sha256 PCR {} is {} now but was {} when sealed",
                sealed.index,
                hex::encode(now.value),
                hex::encode(sealed.value)
            )
        })
        .collect();
    if !changes.is_empty() {
        return Err(SealError::PcrMismatch {
            path: seal_path.to_path_buf(),
            changes: changes.join("; "),
        });
    }
    Ok(())
}

/// Checks the seal's versions, that its key ID names a key in `trusted`, and
/// its signature. Returns the key that made the signature.
pub(crate) fn check_signature(
    seal: &Seal,
    seal_path: &Path,
    trusted: &[PublicKey],
) -> Result<PublicKey, SealError> {
    let info = &seal.info;
    check_versions(seal, seal_path)?;
    let SealSignature::Ed25519(signature) = &seal.signature else {
        return Err(SealError::TpmSealNeedsTpm {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
        });
    };

    let mut candidates = trusted
        .iter()
        .filter(|key| key.key_id() == info.key_id)
        .peekable();
    if candidates.peek().is_none() {
        let trusted_ids: Vec<String> = trusted.iter().map(PublicKey::key_id).collect();
        return Err(SealError::UntrustedKey {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
            trusted: if trusted_ids.is_empty() {
                "none".to_string()
            } else {
                trusted_ids.join(", ")
            },
        });
    }
    // Two trusted keys share an ID only by a 64-bit hash collision, but
    // each is tried rather than assuming the first is the signer.
    candidates
        .find(|key| key.verify(seal.signed_bytes(), signature))
        .copied()
        .ok_or_else(|| SealError::BadSignature {
            path: seal_path.to_path_buf(),
            key_id: info.key_id.clone(),
        })
}

/// Checks that the seal's image format version is one this stasis reads.
fn check_versions(seal: &Seal, seal_path: &Path) -> Result<(), SealError> {
    let info = &seal.info;
    if info.image_format_version == 0 {
        return Err(SealError::invalid_seal(
            seal_path,
            "image format version 0 is invalid",
        ));
    }
    if info.image_format_version > FORMAT_VERSION {
        return Err(SealError::NewerImageFormat {
            path: seal_path.to_path_buf(),
            found: info.image_format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Checks that `manifest_bytes`, read from `manifest_path`, have the hash
/// that the seal signs. Returns the hash.
pub(crate) fn check_manifest_hash(
    seal: &Seal,
    manifest_path: &Path,
    manifest_bytes: &[u8],
) -> Result<blake3::Hash, SealError> {
    let actual = blake3::hash(manifest_bytes);
    if actual.to_hex().as_str() != seal.info.manifest_blake3 {
        return Err(SealError::ManifestMismatch {
            manifest: manifest_path.to_path_buf(),
            sealed: seal.info.manifest_blake3.clone(),
            actual: actual.to_hex().to_string(),
        });
    }
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use std::path::PathBuf;

    use stasis_image::Image;

    use super::*;
    use crate::format::{MAX_SEAL_VERSION, SEAL_VERSION};
    use crate::test_support::*;

    #[test]
    fn sealed_image_verifies() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let (_, other) = key_pair(&temp, "other");
        let dir = sealed_image(&temp, "img", &key);

        let verified = verify_seal(&dir, &[other, public]).expect("verify");
        assert_eq!(verified.signer, public);
        assert_eq!(verified.info.key_id, public.key_id());
        let manifest = fs::read(dir.join(MANIFEST_NAME)).unwrap();
        assert_eq!(verified.manifest_hash, blake3::hash(&manifest));
        Image::open_expecting_manifest_hash(&dir, &verified.manifest_hash).expect("open");
    }

    #[test]
    fn unsealed_image_is_rejected() {
        let temp = TempDir::new();
        let (_, public) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        write_image(&dir);

        let error = verify_seal(&dir, &[public]).unwrap_err();
        assert!(matches!(error, SealError::NotSealed { .. }), "{error}");
        assert!(error.to_string().contains("is not sealed"), "{error}");
        assert!(error.to_string().contains("stasis seal"), "{error}");
    }

    #[test]
    fn untrusted_key_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let (_, other) = key_pair(&temp, "other");
        let dir = sealed_image(&temp, "img", &key);

        let error = verify_seal(&dir, &[other]).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SealError::UntrustedKey { .. }), "{message}");
        assert!(message.contains(&public.key_id()), "{message}");
        assert!(message.contains(&other.key_id()), "{message}");

        let error = verify_seal(&dir, &[]).unwrap_err();
        assert!(error.to_string().contains("trusted: none"), "{error}");
    }

    #[test]
    fn edited_seal_field_breaks_signature() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let path = dir.join(SEAL_FILE_NAME);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replace("sealed_at_unix 1718000000", "sealed_at_unix 1718000001"),
        )
        .unwrap();

        let error = verify_seal(&dir, &[public]).unwrap_err();
        assert!(matches!(error, SealError::BadSignature { .. }), "{error}");
    }

    #[test]
    fn edited_manifest_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        edit_manifest(&dir, |manifest| {
            manifest["created_unix"] = 1_800_000_000.into()
        });

        let error = verify_seal(&dir, &[public]).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SealError::ManifestMismatch { .. }),
            "{message}"
        );
        assert!(message.contains("changed after sealing"), "{message}");
    }

    #[test]
    fn seal_of_other_image_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let first = sealed_image(&temp, "first", &key);
        let second = temp.path().join("second");
        write_image(&second);
        edit_manifest(&second, |manifest| {
            manifest["created_unix"] = 1_800_000_000.into()
        });
        seal_image_for_test(&second, &key);
        fs::copy(second.join(SEAL_FILE_NAME), first.join(SEAL_FILE_NAME)).unwrap();

        let error = verify_seal(&first, &[public]).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SealError::ManifestMismatch { .. }),
            "{message}"
        );
        assert!(message.contains("belongs to another image"), "{message}");
    }

    fn seal_image_for_test(dir: &Path, key: &crate::key::PrivateKey) {
        crate::sign::seal_image(dir, key, &seal_options()).expect("seal");
    }

    /// Writes a seal with `info`, validly signed by `key`.
    fn write_signed_seal(dir: &Path, key: &crate::key::PrivateKey, info: SealInfo) {
        let seal = Seal::sign(info, key);
        fs::write(dir.join(SEAL_FILE_NAME), seal.to_file_bytes()).unwrap();
    }

    #[test]
    fn seal_for_newer_image_format_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let mut info = read_seal(&dir).unwrap().info;
        info.image_format_version = FORMAT_VERSION + 1;
        write_signed_seal(&dir, &key, info);

        let error = verify_seal(&dir, &[public]).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SealError::NewerImageFormat { found, .. } if found == FORMAT_VERSION + 1),
            "{message}"
        );
        assert!(message.contains("use a newer stasis"), "{message}");
    }

    #[test]
    fn seal_with_wrong_format_version_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let mut info = read_seal(&dir).unwrap().info;
        info.image_format_version = 0;
        write_signed_seal(&dir, &key, info);

        let error = verify_seal(&dir, &[public]).unwrap_err();
        assert!(
            error.to_string().contains("version 0 is invalid"),
            "{error}"
        );
    }

    #[test]
    fn newer_seal_version_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let path = dir.join(SEAL_FILE_NAME);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replacen(
                &format!("stasis-seal {SEAL_VERSION}"),
                &format!("stasis-seal {}", MAX_SEAL_VERSION + 1),
                1,
            ),
        )
        .unwrap();

        let error = verify_seal(&dir, &[public]).unwrap_err();
        assert!(
            matches!(error, SealError::NewerSealVersion { .. }),
            "{error}"
        );
    }

    #[test]
    fn seal_symlink_is_rejected() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = sealed_image(&temp, "img", &key);
        let outside = temp.path().join("outside-seal");
        fs::rename(dir.join(SEAL_FILE_NAME), &outside).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join(SEAL_FILE_NAME)).unwrap();

        let error = verify_seal(&dir, &[public]).unwrap_err();
        assert!(matches!(error, SealError::NotRegularFile { .. }), "{error}");
    }

    #[test]
    fn open_with_other_manifest_hash_fails() {
        let temp = TempDir::new();
        let dir = temp.path().join("img");
        write_image(&dir);
        let error = Image::open_expecting_manifest_hash(&dir, &blake3::hash(b"other")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("manifest"), "{message}");
        assert!(
            message.contains(blake3::hash(b"other").to_hex().as_str()),
            "{message}"
        );
    }

    fn start_tpm(temp: &TempDir) -> (crate::swtpm::Swtpm, Tpm) {
        let swtpm =
            crate::swtpm::Swtpm::start(temp.path()).unwrap_or_else(|message| panic!("{message}"));
        let tpm = Tpm::open(Some(&swtpm.tcti())).expect("connect to swtpm");
        (swtpm, tpm)
    }

    fn tpm_sealed_image(temp: &TempDir, name: &str, tpm: &mut Tpm, pcrs: &[u8]) -> PathBuf {
        let dir = temp.path().join(name);
        write_image(&dir);
        crate::sign::seal_image_tpm(&dir, tpm, pcrs, &seal_options()).expect("TPM seal");
        dir
    }

    #[test]
    fn tpm_seal_verifies_on_its_tpm() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let dir = tpm_sealed_image(&temp, "img", &mut tpm, &[16]);

        let verified = verify_seal_tpm(&dir, &mut tpm, &[]).expect("verify");
        let info = verified.info.tpm.as_ref().expect("TPM fields");
        assert_eq!(verified.info.seal_version, 2);
        assert_eq!(info.describe_pcrs(), "sha256:16");
        let manifest = fs::read(dir.join(MANIFEST_NAME)).unwrap();
        assert_eq!(verified.manifest_hash, blake3::hash(&manifest));

        let text = fs::read_to_string(dir.join(SEAL_FILE_NAME)).unwrap();
        assert!(
            text.starts_with("stasis-seal 2\nkey_type tpm-ecdsa-p256\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!("\npcrs sha256:16={}\n", "00".repeat(32))),
            "{text}"
        );

        let key_id = verified.info.key_id.clone();
        verify_seal_tpm(&dir, &mut tpm, std::slice::from_ref(&key_id))
            .expect("verify the pinned key");
        let error = verify_seal_tpm(&dir, &mut tpm, &["0123456789abcdef".to_string()]).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SealError::UntrustedKey { .. }), "{message}");
        assert!(message.contains(&key_id), "{message}");
        assert!(message.contains("0123456789abcdef"), "{message}");

        let unbound = tpm_sealed_image(&temp, "unbound", &mut tpm, &[]);
        let verified = verify_seal_tpm(&unbound, &mut tpm, &[]).expect("verify unbound");
        assert_eq!(verified.info.tpm.unwrap().describe_pcrs(), "none");
    }

    #[test]
    fn tpm_seal_rejected_after_pcr_change() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let dir = tpm_sealed_image(&temp, "img", &mut tpm, &[7, 16]);
        tpm.extend_pcr(16, b"changed state").unwrap();

        let error = verify_seal_tpm(&dir, &mut tpm, &[]).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SealError::PcrMismatch { .. }), "{message}");
        assert!(message.contains("sha256 PCR 16 is "), "{message}");
        assert!(message.contains(&"00".repeat(32)), "{message}");
        assert!(!message.contains("PCR 7 "), "{message}");

        // Sealing again in the new state records the new value.
        let resealed = tpm_sealed_image(&temp, "resealed", &mut tpm, &[7, 16]);
        verify_seal_tpm(&resealed, &mut tpm, &[]).expect("verify in the new state");
    }

    #[test]
    fn tpm_seal_rejected_by_other_tpm() {
        let temp = TempDir::new();
        let (_first, mut first) = start_tpm(&temp);
        let (_second, mut second) = start_tpm(&temp);
        let dir = tpm_sealed_image(&temp, "img", &mut first, &[]);

        let error = verify_seal_tpm(&dir, &mut second, &[]).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, SealError::TpmKeyMismatch { .. }),
            "{message}"
        );
        assert!(message.contains("sealed with another TPM"), "{message}");
    }

    #[test]
    fn tpm_seal_edits_are_rejected() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let dir = tpm_sealed_image(&temp, "img", &mut tpm, &[16]);
        let path = dir.join(SEAL_FILE_NAME);
        let original = fs::read_to_string(&path).unwrap();

        fs::write(
            &path,
            original.replace("sealed_at_unix 1718000000", "sealed_at_unix 1718000001"),
        )
        .unwrap();
        let error = verify_seal_tpm(&dir, &mut tpm, &[]).unwrap_err();
        assert!(matches!(error, SealError::BadSignature { .. }), "{error}");

        // Recording other PCR values changes the key the TPM derives.
        let value_line = format!("pcrs sha256:16={}", "00".repeat(32));
        let other_line = format!("pcrs sha256:16={}", "11".repeat(32));
        fs::write(&path, original.replace(&value_line, &other_line)).unwrap();
        let error = verify_seal_tpm(&dir, &mut tpm, &[]).unwrap_err();
        assert!(matches!(error, SealError::TpmKeyMismatch { .. }), "{error}");

        fs::write(&path, &original).unwrap();
        edit_manifest(&dir, |manifest| {
            manifest["created_unix"] = 1_800_000_000.into()
        });
        let error = verify_seal_tpm(&dir, &mut tpm, &[]).unwrap_err();
        assert!(
            matches!(error, SealError::ManifestMismatch { .. }),
            "{error}"
        );
    }

    #[test]
    fn seal_kinds_need_their_own_check() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let (key, public) = key_pair(&temp, "signer");
        let tpm_sealed = tpm_sealed_image(&temp, "tpm", &mut tpm, &[]);
        let key_sealed = sealed_image(&temp, "key", &key);

        let error = verify_seal(&tpm_sealed, &[public]).unwrap_err();
        assert!(
            matches!(error, SealError::TpmSealNeedsTpm { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--tpm"), "{error}");

        let error = verify_seal_tpm(&key_sealed, &mut tpm, &[]).unwrap_err();
        assert!(matches!(error, SealError::NotTpmSeal { .. }), "{error}");
        assert!(error.to_string().contains("--pubkey"), "{error}");
    }
}
