//! Sealing an image: signing the hash of its manifest and writing the seal
//! file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use stasis_image::format::MAX_MANIFEST_SIZE;
use stasis_image::{Image, ImageError, Manifest, MANIFEST_NAME};

use crate::error::SealError;
use crate::files::{read_limited, sync_dir, write_new_file, Symlinks};
use crate::format::{
    encode_signed_part, Seal, SealInfo, SealSignature, TpmSealInfo, SEAL_FILE_NAME, SEAL_TEMP_NAME,
    SEAL_VERSION, TPM_SEAL_VERSION,
};
use crate::key::PrivateKey;
use crate::tpm::Tpm;

/// Permissions of a seal file, the same as the other image files.
const SEAL_FILE_MODE: u32 = 0o600;

/// Settings of [`seal_image`].
#[derive(Clone, Debug)]
pub struct SealOptions {
    /// Seconds since the Unix epoch, stored as the sealing time.
    pub sealed_at_unix: u64,
    /// Version of the sealing program, stored in the seal.
    pub stasis_version: String,
    /// Hash every file against the manifest and check every record before
    /// signing, as [`Image::verify_all`] does. Without it only the manifest
    /// and the sizes of the listed files are checked.
    pub verify_files: bool,
}

/// The result of [`seal_image`].
#[derive(Clone, Debug)]
pub struct SealOutcome {
    pub seal: Seal,
    /// Path of the seal file written.
    pub path: PathBuf,
    /// Whether a seal file existed before and was replaced.
    pub replaced: bool,
}

/// Seals the image in `dir` with `key`.
///
/// Reads the manifest once, opens the image with the hash of exactly those
/// bytes (so the signed manifest is the checked one), optionally verifies
/// every file, signs, and writes the seal to `seal.tmp`, which is fsynced
/// and renamed to `seal`. An existing seal is replaced. The manifest and the
/// other files are not changed.
pub fn seal_image(
    dir: &Path,
    key: &PrivateKey,
    options: &SealOptions,
) -> Result<SealOutcome, SealError> {
    let info = SealInfo {
        key_id: key.public_key().key_id(),
        ..unsigned_info(dir, options)?
    };
    if let Some(problem) = info.problem() {
        return Err(SealError::invalid_seal(dir.join(SEAL_FILE_NAME), problem));
    }
    write_seal(dir, Seal::sign(info, key))
}

/// Seals the image in `dir` with the TPM's signing key, bound to the
/// current values of the SHA-256 bank PCRs `pcrs` (none when empty).
///
/// Checks the image as [`seal_image`] does, reads the PCRs, creates the
/// key for those values in the TPM (see [`crate::tpm`]) and signs in the
/// TPM. The seal records the key's public key and the PCR values. If a PCR
/// changes between the read and the signature, the TPM refuses to sign and
/// nothing is written.
pub fn seal_image_tpm(
    dir: &Path,
    tpm: &mut Tpm,
    pcrs: &[u8],
    options: &SealOptions,
) -> Result<SealOutcome, SealError> {
    let unsigned = unsigned_info(dir, options)?;
    let values = tpm.read_pcrs(pcrs)?;
    let mut key = tpm.signing_key(&values)?;
    let info = SealInfo {
        seal_version: TPM_SEAL_VERSION,
        key_id: key.key_id(),
        tpm: Some(TpmSealInfo::new(&key.public_key(), &values)),
        ..unsigned
    };
    if let Some(problem) = info.problem() {
        return Err(SealError::invalid_seal(dir.join(SEAL_FILE_NAME), problem));
    }
    let signature = key.sign(&encode_signed_part(&info))?;
    drop(key);
    write_seal(dir, Seal::new(info, SealSignature::EcdsaP256(signature)))
}

/// Checks the image in `dir` for sealing and returns the seal fields other
/// than the key: `key_id` is empty and `tpm` is `None`.
///
/// Reads the manifest once and opens the image with the hash of exactly
/// those bytes, so the signed manifest is the checked one.
fn unsigned_info(dir: &Path, options: &SealOptions) -> Result<SealInfo, SealError> {
    let manifest_path = dir.join(MANIFEST_NAME);
    let manifest_bytes = read_manifest_bytes(dir)?;
    let manifest_hash = blake3::hash(&manifest_bytes);
    let image = Image::open_expecting_manifest_hash(dir, &manifest_hash)?;
    check_reserved_names(image.manifest(), &manifest_path)?;
    if options.verify_files {
        image.verify_all()?;
    }
    Ok(SealInfo {
        seal_version: SEAL_VERSION,
        image_format_version: image.manifest().format_version,
        stasis_version: options.stasis_version.clone(),
        sealed_at_unix: options.sealed_at_unix,
        key_id: String::new(),
        manifest_blake3: manifest_hash.to_hex().to_string(),
        tpm: None,
    })
}

/// Writes `seal` to `seal.tmp`, fsyncs it and renames it to `seal`,
/// replacing an existing seal.
fn write_seal(dir: &Path, seal: Seal) -> Result<SealOutcome, SealError> {
    let path = dir.join(SEAL_FILE_NAME);
    let replaced = match fs::symlink_metadata(&path) {
        Ok(_) => true,
        Err(error) if error.kind() == io::ErrorKind::NotFound => false,
        Err(error) => return Err(SealError::io(&path, error)),
    };
    let temp_path = dir.join(SEAL_TEMP_NAME);
    // A seal.tmp left by an interrupted run is removed; if it is a symbolic
    // link, the link is removed and its target is left alone.
    match fs::remove_file(&temp_path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(SealError::io(&temp_path, error)),
    }
    write_new_file(&temp_path, &seal.to_file_bytes(), SEAL_FILE_MODE)?;
    if let Err(error) = fs::rename(&temp_path, &path) {
        let _ = fs::remove_file(&temp_path);
        return Err(SealError::io(&path, error));
    }
    sync_dir(dir)?;

    Ok(SealOutcome {
        seal,
        path,
        replaced,
    })
}

/// Reads the manifest file of the image in `dir`, which must be a regular
/// file (not a symbolic link) of at most 16 MiB.
pub(crate) fn read_manifest_bytes(dir: &Path) -> Result<Vec<u8>, SealError> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => return Err(ImageError::NotADirectory(dir.to_path_buf()).into()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(ImageError::NotFound(dir.to_path_buf()).into())
        }
        Err(error) => return Err(SealError::io(dir, error)),
    }
    match read_limited(
        &dir.join(MANIFEST_NAME),
        MAX_MANIFEST_SIZE,
        Symlinks::Reject,
    ) {
        Ok((bytes, _)) => Ok(bytes),
        Err(SealError::NotFound { .. }) => Err(ImageError::Incomplete(dir.to_path_buf()).into()),
        Err(error) => Err(error),
    }
}

/// Rejects a manifest that lists a file under a name that the seal uses,
/// because such a file would be both part of the image and its seal.
pub(crate) fn check_reserved_names(
    manifest: &Manifest,
    manifest_path: &Path,
) -> Result<(), SealError> {
    match manifest
        .files
        .iter()
        .find(|entry| entry.name == SEAL_FILE_NAME || entry.name == SEAL_TEMP_NAME)
    {
        Some(entry) => Err(SealError::ReservedName {
            manifest: manifest_path.to_path_buf(),
            name: entry.name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::format::MAX_SEAL_SIZE;
    use crate::test_support::*;

    #[test]
    fn seal_file_is_written_with_mode_0600() {
        let temp = TempDir::new();
        let (key, public) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        write_image(&dir);
        let manifest_before = fs::read(dir.join(MANIFEST_NAME)).unwrap();

        let outcome = seal_image(&dir, &key, &seal_options()).expect("seal");
        assert!(!outcome.replaced);
        assert_eq!(outcome.path, dir.join("seal"));
        let mode = fs::metadata(&outcome.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join(SEAL_TEMP_NAME).exists());

        let bytes = fs::read(&outcome.path).unwrap();
        assert!(bytes.len() as u64 <= MAX_SEAL_SIZE);
        let parsed = Seal::parse(&bytes, &outcome.path).unwrap();
        assert_eq!(parsed, outcome.seal);
        let info = &parsed.info;
        assert_eq!(info.seal_version, 1);
        assert_eq!(info.image_format_version, stasis_image::FORMAT_VERSION);
        assert_eq!(info.stasis_version, "0.1.0");
        assert_eq!(info.sealed_at_unix, 1_718_000_000);
        assert_eq!(info.key_id, public.key_id());
        assert_eq!(
            info.manifest_blake3,
            blake3::hash(&manifest_before).to_hex().as_str()
        );
        let SealSignature::Ed25519(signature) = &parsed.signature else {
            panic!("an Ed25519 key made a {:?} signature", parsed.signature);
        };
        assert!(public.verify(parsed.signed_bytes(), signature));

        let manifest_after = fs::read(dir.join(MANIFEST_NAME)).unwrap();
        assert_eq!(
            manifest_before, manifest_after,
            "sealing changed the manifest"
        );
    }

    #[test]
    fn sealing_again_replaces_seal_and_stale_temp_file() {
        let temp = TempDir::new();
        let (first, _) = key_pair(&temp, "first");
        let (second, second_public) = key_pair(&temp, "second");
        let dir = sealed_image(&temp, "img", &first);
        fs::write(dir.join(SEAL_TEMP_NAME), "left by a crash").unwrap();

        let outcome = seal_image(&dir, &second, &seal_options()).expect("seal again");
        assert!(outcome.replaced);
        assert!(!dir.join(SEAL_TEMP_NAME).exists());
        let seal = crate::verify::read_seal(&dir).unwrap();
        assert_eq!(seal.info.key_id, second_public.key_id());
    }

    #[test]
    fn damaged_image_is_not_sealed() {
        let temp = TempDir::new();
        let (key, _) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        write_image(&dir);
        flip_byte(&dir, PAGES, 4096 + 5);

        let error = seal_image(&dir, &key, &seal_options()).unwrap_err();
        assert!(error.to_string().contains(PAGES), "{error}");
        assert!(!dir.join(SEAL_FILE_NAME).exists());
    }

    #[test]
    fn unverified_sealing_skips_data_hashes() {
        let temp = TempDir::new();
        let (key, _) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        write_image(&dir);
        flip_byte(&dir, PAGES, 4096 + 5);

        let options = SealOptions {
            verify_files: false,
            ..seal_options()
        };
        seal_image(&dir, &key, &options).expect("seal without hashing data");
    }

    #[test]
    fn manifest_listing_seal_name_is_rejected() {
        let temp = TempDir::new();
        let (key, _) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        write_image(&dir);
        fs::rename(dir.join(FILE_DATA), dir.join("seal")).unwrap();
        edit_manifest(&dir, |manifest| {
            for entry in manifest["files"].as_array_mut().unwrap() {
                if entry["name"] == FILE_DATA {
                    entry["name"] = "seal".into();
                }
            }
        });

        let error = seal_image(&dir, &key, &seal_options()).unwrap_err();
        assert!(matches!(error, SealError::ReservedName { .. }), "{error}");
    }

    #[test]
    fn missing_manifest_is_incomplete_image() {
        let temp = TempDir::new();
        let (key, _) = key_pair(&temp, "signer");
        let dir = temp.path().join("img");
        fs::create_dir(&dir).unwrap();
        let error = seal_image(&dir, &key, &seal_options()).unwrap_err();
        assert!(
            matches!(error, SealError::Image(ImageError::Incomplete(_))),
            "{error}"
        );

        let error = seal_image(&temp.path().join("absent"), &key, &seal_options()).unwrap_err();
        assert!(
            matches!(error, SealError::Image(ImageError::NotFound(_))),
            "{error}"
        );
    }
}
