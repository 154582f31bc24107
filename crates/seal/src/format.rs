//! The seal file: its text layout, encoding and strict parsing.
//!
//! A seal is the file `seal` in the image directory. It is ASCII text of
//! lines, each `NAME VALUE` and each ending in a newline, in a fixed order.
//! Seal version 1 is signed with an Ed25519 key and has seven lines:
//!
//! ```text
//! stasis-seal 1
//! image_format_version 1
//! stasis_version 0.1.0
//! sealed_at_unix 1718000000
//! key_id 0123456789abcdef
//! manifest_blake3 <64 lowercase hex digits>
//! signature <128 lowercase hex digits>
//! ```
//!
//! Seal version 2 is signed by a TPM key (see [`crate::tpm`]) and has ten
//! lines:
//!
//! ```text
//! stasis-seal 2
//! key_type tpm-ecdsa-p256
//! image_format_version 1
//! stasis_version 0.1.0
//! sealed_at_unix 1718000000
//! key_id 0123456789abcdef
//! tpm_public_key <130 lowercase hex digits: uncompressed SEC1 P-256 point>
//! pcrs sha256:7=<64 hex digits>,16=<64 hex digits>
//! manifest_blake3 <64 lowercase hex digits>
//! signature <128 lowercase hex digits: ECDSA r, then s>
//! ```
//!
//! `pcrs` is `none` for a key bound to no PCRs. The signature covers the
//! exact bytes of every line before it, newlines included: Ed25519 over the
//! bytes, or ECDSA P-256 over their SHA-256 hash. Those lines start with
//! the magic `stasis-seal`, so a signature made for something else never
//! verifies as a seal. A reader accepts only the form that
//! [`encode_signed_part`] produces: no other spacing, order, case or
//! leading zeros.

use std::path::Path;

use ed25519_dalek::Signature;
use serde::Serialize;

use crate::error::SealError;
use crate::key::PrivateKey;
use crate::tpm::{tpm_key_id, PcrValue, P256_POINT_LEN, P256_SIGNATURE_LEN, PCR_COUNT};

/// File name of the seal inside an image directory.
pub use stasis_image::format::SEAL_FILE_NAME;
/// File name the seal is written to before it is renamed into place.
pub const SEAL_TEMP_NAME: &str = "seal.tmp";
/// The word at the start of a seal file.
pub const SEAL_MAGIC: &str = "stasis-seal";
/// The seal version of seals signed with an Ed25519 key.
pub const SEAL_VERSION: u32 = 1;
/// The seal version of seals signed by a TPM key.
pub const TPM_SEAL_VERSION: u32 = 2;
/// The newest seal version that this crate reads.
pub const MAX_SEAL_VERSION: u32 = TPM_SEAL_VERSION;
/// The `key_type` of a TPM seal.
pub const TPM_KEY_TYPE: &str = "tpm-ecdsa-p256";
/// Maximum size of a seal file that readers accept, in bytes. A valid
/// Ed25519 seal has about 330 bytes, and a TPM seal bound to all 24 PCRs
/// about 2150.
pub const MAX_SEAL_SIZE: u64 = 4096;
/// Maximum length of the `stasis_version` value, in bytes.
pub const MAX_STASIS_VERSION_LEN: usize = 64;

/// Names of the lines after the first in a version 1 seal, in file order.
const FIELD_NAMES_V1: &[&str] = &[
    "image_format_version",
    "stasis_version",
    "sealed_at_unix",
    "key_id",
    "manifest_blake3",
    "signature",
];

/// Names of the lines after the first in a version 2 seal, in file order.
const FIELD_NAMES_V2: &[&str] = &[
    "key_type",
    "image_format_version",
    "stasis_version",
    "sealed_at_unix",
    "key_id",
    "tpm_public_key",
    "pcrs",
    "manifest_blake3",
    "signature",
];

/// The signed fields of a seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealInfo {
    pub seal_version: u32,
    /// Format version of the sealed image, as in its manifest.
    pub image_format_version: u32,
    /// Version of the stasis that made the seal.
    pub stasis_version: String,
    /// Seconds since the Unix epoch when the seal was made.
    pub sealed_at_unix: u64,
    /// ID of the signing key: the first 8 bytes of BLAKE3(public key) as 16
    /// lowercase hex digits.
    pub key_id: String,
    /// BLAKE3 hash of the manifest file, as 64 lowercase hex digits.
    pub manifest_blake3: String,
    /// The TPM key and PCR values of a TPM seal (seal version 2); `None`
    /// for an Ed25519 seal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmSealInfo>,
}

/// The signed TPM fields of a seal made by a TPM key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TpmSealInfo {
    /// The signing key as an uncompressed SEC1 P-256 point, as 130
    /// lowercase hex digits.
    pub public_key: String,
    /// The SHA-256 bank PCRs that the key is bound to, with their values
    /// when the seal was made, in PCR order. Empty for an unbound key.
    pub pcrs: Vec<SealedPcr>,
}

/// A PCR and its value when the seal was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SealedPcr {
    pub index: u8,
    /// The SHA-256 bank value, as 64 lowercase hex digits.
    pub sha256: String,
}

impl TpmSealInfo {
    /// Returns the public key bytes. The seal parser checked the form.
    pub fn public_key_bytes(&self) -> Option<[u8; P256_POINT_LEN]> {
        let mut bytes = [0u8; P256_POINT_LEN];
        hex::decode_to_slice(&self.public_key, &mut bytes).ok()?;
        Some(bytes)
    }

    /// Returns the PCR values. The seal parser checked the form.
    pub fn pcr_values(&self) -> Option<Vec<PcrValue>> {
        self.pcrs
            .iter()
            .map(|pcr| {
                let mut value = [0u8; 32];
                hex::decode_to_slice(&pcr.sha256, &mut value).ok()?;
                Some(PcrValue {
                    index: pcr.index,
                    value,
                })
            })
            .collect()
    }

    /// Formats the PCR binding for messages: "sha256:7,16", or "none".
    pub fn describe_pcrs(&self) -> String {
        if self.pcrs.is_empty() {
            return "none".to_string();
        }
        let numbers: Vec<String> = self.pcrs.iter().map(|pcr| pcr.index.to_string()).collect();
        format!("sha256:{}", numbers.join(","))
    }

    /// Builds the TPM fields for `public_key` bound to `pcrs`.
    pub fn new(public_key: &[u8; P256_POINT_LEN], pcrs: &[PcrValue]) -> TpmSealInfo {
        TpmSealInfo {
            public_key: hex::encode(public_key),
            pcrs: pcrs
                .iter()
                .map(|pcr| SealedPcr {
                    index: pcr.index,
                    sha256: hex::encode(pcr.value),
                })
                .collect(),
        }
    }
}

/// The signature of a seal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SealSignature {
    /// Ed25519 over the signed bytes (seal version 1).
    Ed25519(Signature),
    /// ECDSA P-256 over SHA-256 of the signed bytes: r, then s, each 32
    /// bytes big-endian (seal version 2).
    EcdsaP256([u8; P256_SIGNATURE_LEN]),
}

impl SealSignature {
    fn to_bytes(&self) -> [u8; 64] {
        match self {
            SealSignature::Ed25519(signature) => signature.to_bytes(),
            SealSignature::EcdsaP256(bytes) => *bytes,
        }
    }
}

impl From<Signature> for SealSignature {
    fn from(signature: Signature) -> SealSignature {
        SealSignature::Ed25519(signature)
    }
}

/// A parsed seal: its fields, its signature and the exact bytes that the
/// signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    pub info: SealInfo,
    pub signature: SealSignature,
    signed: Vec<u8>,
}

impl Seal {
    /// Returns the bytes that the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// Returns the whole seal file.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let mut bytes = self.signed.clone();
        bytes.extend_from_slice(
            format!("signature {}\n", hex::encode(self.signature.to_bytes())).as_bytes(),
        );
        bytes
    }

    /// Signs `info` with `key`. The fields are not checked; a seal written
    /// for an image comes from [`seal_image`](crate::seal_image).
    pub fn sign(info: SealInfo, key: &PrivateKey) -> Seal {
        let signature = key.sign(&encode_signed_part(&info));
        Seal::new(info, signature)
    }

    /// Builds a seal from its fields and a signature over
    /// [`encode_signed_part`] of them. Does not check the signature.
    pub fn new(info: SealInfo, signature: impl Into<SealSignature>) -> Seal {
        let signed = encode_signed_part(&info);
        Seal {
            info,
            signature: signature.into(),
            signed,
        }
    }

    /// Parses a seal file read from `path`.
    ///
    /// Checks the layout described in the module documentation. A seal
    /// version newer than [`SEAL_VERSION`] is rejected with
    /// [`SealError::NewerSealVersion`] before the other lines are read,
    /// because a newer version may have other lines. Versions and
    /// signatures are checked by the caller.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Seal, SealError> {
        let invalid = |message: String| SealError::invalid_seal(path, message);
        if !bytes
            .iter()
            .all(|&byte| byte == b'\n' || (b' '..=b'~').contains(&byte))
        {
            return Err(invalid(
                "it contains bytes other than printable ASCII and newlines".into(),
            ));
        }
        // The check above lets only ASCII bytes through, so this succeeds.
        let text =
            std::str::from_utf8(bytes).map_err(|_| invalid("it is not ASCII text".into()))?;
        let Some(body) = text.strip_suffix('\n') else {
            return Err(invalid("the last line does not end with a newline".into()));
        };
        let lines: Vec<&str> = body.split('\n').collect();

        let version = match lines[0].split_once(' ') {
            Some((SEAL_MAGIC, value)) => parse_decimal(value)
                .ok_or_else(|| invalid(format!("invalid seal version {value:?} on line 1")))?,
            _ => {
                return Err(invalid(format!(
                    "line 1 must be \"{SEAL_MAGIC} VERSION\", found {:?}",
                    truncate(lines[0])
                )))
            }
        };
        if version == 0 {
            return Err(invalid("seal version 0 is invalid".into()));
        }
        if version > MAX_SEAL_VERSION {
            return Err(SealError::NewerSealVersion {
                path: path.to_path_buf(),
                found: version,
                supported: MAX_SEAL_VERSION,
            });
        }

        let field_names = if version == TPM_SEAL_VERSION {
            FIELD_NAMES_V2
        } else {
            FIELD_NAMES_V1
        };
        if lines.len() != field_names.len() + 1 {
            return Err(invalid(format!(
                "it has {} lines, expected {}",
                lines.len(),
                field_names.len() + 1
            )));
        }
        let mut values = Vec::with_capacity(field_names.len());
        for (index, name) in field_names.iter().enumerate() {
            let line = lines[index + 1];
            match line.split_once(' ') {
                Some((found, value)) if found == *name => values.push(value),
                _ => {
                    return Err(invalid(format!(
                        "line {} must start with \"{name} \", found {:?}",
                        index + 2,
                        truncate(line)
                    )))
                }
            }
        }
        let field = |name: &str| -> &str {
            let position = field_names.iter().position(|found| *found == name);
            position.map_or("", |position| values[position])
        };

        if version == TPM_SEAL_VERSION && field("key_type") != TPM_KEY_TYPE {
            return Err(invalid(format!(
                "key_type {:?} is unknown; this stasis knows {TPM_KEY_TYPE:?}",
                truncate(field("key_type"))
            )));
        }
        let format_version = field("image_format_version");
        let sealed_at = field("sealed_at_unix");
        let tpm = if version == TPM_SEAL_VERSION {
            Some(TpmSealInfo {
                public_key: field("tpm_public_key").to_string(),
                pcrs: parse_pcrs(field("pcrs")).map_err(invalid)?,
            })
        } else {
            None
        };
        let info = SealInfo {
            seal_version: version,
            image_format_version: parse_decimal(format_version).ok_or_else(|| {
                invalid(format!("invalid image_format_version {format_version:?}"))
            })?,
            stasis_version: field("stasis_version").to_string(),
            sealed_at_unix: parse_decimal(sealed_at)
                .ok_or_else(|| invalid(format!("invalid sealed_at_unix {sealed_at:?}")))?,
            key_id: field("key_id").to_string(),
            manifest_blake3: field("manifest_blake3").to_string(),
            tpm,
        };
        if let Some(problem) = info.problem() {
            return Err(invalid(problem));
        }

        let signature = field("signature");
        let mut signature_bytes = [0u8; 64];
        if !is_lower_hex(signature, 128)
            || hex::decode_to_slice(signature, &mut signature_bytes).is_err()
        {
            return Err(invalid(
                "the signature is not 128 lowercase hex digits".into(),
            ));
        }

        let signed_len = bytes.len() - "signature \n".len() - signature.len();
        let signed = bytes[..signed_len].to_vec();
        if signed != encode_signed_part(&info) {
            return Err(invalid(
                "it is not in canonical form (leading zeros or other spacing)".into(),
            ));
        }
        let signature = if info.tpm.is_some() {
            SealSignature::EcdsaP256(signature_bytes)
        } else {
            SealSignature::Ed25519(Signature::from_bytes(&signature_bytes))
        };
        Ok(Seal {
            info,
            signature,
            signed,
        })
    }
}

impl SealInfo {
    /// Returns why the fields cannot be written to a seal file, or `None`
    /// when they can.
    pub fn problem(&self) -> Option<String> {
        if self.stasis_version.is_empty()
            || self.stasis_version.len() > MAX_STASIS_VERSION_LEN
            || !self
                .stasis_version
                .bytes()
                .all(|byte| byte.is_ascii_graphic())
        {
            return Some(format!(
                "stasis_version {:?} must be 1 to {MAX_STASIS_VERSION_LEN} printable ASCII \
                 characters without spaces",
                truncate(&self.stasis_version)
            ));
        }
        if !is_lower_hex(&self.key_id, 16) {
            return Some(format!(
                "key_id {:?} is not 16 lowercase hex digits",
                truncate(&self.key_id)
            ));
        }
        if !is_lower_hex(&self.manifest_blake3, 64) {
            return Some(format!(
                "manifest_blake3 {:?} is not 64 lowercase hex digits",
                truncate(&self.manifest_blake3)
            ));
        }
        match (self.seal_version, &self.tpm) {
            (SEAL_VERSION, None) => None,
            (TPM_SEAL_VERSION, Some(tpm)) => tpm_problem(tpm, &self.key_id),
            (version, _) => Some(format!(
                "seal version {version} does not match its key type ({})",
                if self.tpm.is_some() { "TPM" } else { "Ed25519" }
            )),
        }
    }
}

/// Encodes the signed part of a seal file: every line before the
/// signature.
pub fn encode_signed_part(info: &SealInfo) -> Vec<u8> {
    if let Some(tpm) = &info.tpm {
        return format!(
            "{SEAL_MAGIC} {}\n\
             key_type {TPM_KEY_TYPE}\n\
             image_format_version {}\n\
             stasis_version {}\n\
             sealed_at_unix {}\n\
             key_id {}\n\
             tpm_public_key {}\n\
             pcrs {}\n\
             manifest_blake3 {}\n",
            info.seal_version,
            info.image_format_version,
            info.stasis_version,
            info.sealed_at_unix,
            info.key_id,
            tpm.public_key,
            encode_pcrs(&tpm.pcrs),
            info.manifest_blake3
        )
        .into_bytes();
    }
    format!(
        "{SEAL_MAGIC} {}\n\
         image_format_version {}\n\
         stasis_version {}\n\
         sealed_at_unix {}\n\
         key_id {}\n\
         manifest_blake3 {}\n",
        info.seal_version,
        info.image_format_version,
        info.stasis_version,
        info.sealed_at_unix,
        info.key_id,
        info.manifest_blake3
    )
    .into_bytes()
}

/// Returns why the TPM fields cannot be written to a seal, or `None`.
fn tpm_problem(tpm: &TpmSealInfo, key_id: &str) -> Option<String> {
    if !is_lower_hex(&tpm.public_key, 2 * P256_POINT_LEN) || !tpm.public_key.starts_with("04") {
        return Some(format!(
            "tpm_public_key {:?} is not 130 lowercase hex digits of an uncompressed point \
             (starting with 04)",
            truncate(&tpm.public_key)
        ));
    }
    let public_key = tpm.public_key_bytes()?;
    if tpm_key_id(&public_key) != key_id {
        return Some(format!(
            "key_id {key_id} is not the ID of tpm_public_key ({})",
            tpm_key_id(&public_key)
        ));
    }
    let mut previous = None;
    for pcr in &tpm.pcrs {
        if pcr.index >= PCR_COUNT || previous.is_some_and(|previous| pcr.index <= previous) {
            return Some("pcrs must list PCRs 0 to 23 in increasing order, each once".to_string());
        }
        previous = Some(pcr.index);
        if !is_lower_hex(&pcr.sha256, 64) {
            return Some(format!(
                "the value of PCR {} is not 64 lowercase hex digits",
                pcr.index
            ));
        }
    }
    None
}

/// Encodes the `pcrs` value: `none`, or `sha256:` and `N=VALUE` items
/// separated by commas.
fn encode_pcrs(pcrs: &[SealedPcr]) -> String {
    if pcrs.is_empty() {
        return "none".to_string();
    }
    let items: Vec<String> = pcrs
        .iter()
        .map(|pcr| format!("{}={}", pcr.index, pcr.sha256))
        .collect();
    format!("sha256:{}", items.join(","))
}

/// Parses the `pcrs` value. The caller checks order and digits through
/// [`SealInfo::problem`], and the canonical form by encoding again.
fn parse_pcrs(text: &str) -> Result<Vec<SealedPcr>, String> {
    if text == "none" {
        return Ok(Vec::new());
    }
    let invalid = || {
        format!(
            "invalid pcrs {:?}: expected none or sha256:N=VALUE,...",
            truncate(text)
        )
    };
    let list = text.strip_prefix("sha256:").ok_or_else(invalid)?;
    list.split(',')
        .map(|item| {
            let (index, value) = item.split_once('=').ok_or_else(invalid)?;
            Ok(SealedPcr {
                index: parse_decimal(index).ok_or_else(invalid)?,
                sha256: value.to_string(),
            })
        })
        .collect()
}

/// Parses a decimal number of ASCII digits only, without sign or spaces.
fn parse_decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Shortens a value quoted in a message to at most 80 characters. The
/// input is ASCII, so any index is a character boundary.
fn truncate(text: &str) -> &str {
    &text[..text.len().min(80)]
}

/// Formats seconds since the Unix epoch as a UTC date and time,
/// "YYYY-MM-DD HH:MM:SS UTC", with the proleptic Gregorian calendar.
pub fn format_utc(unix_seconds: u64) -> String {
    let (year, month, day, hour, minute, second) = stasis_image::time::utc_fields(unix_seconds);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_info() -> SealInfo {
        SealInfo {
            seal_version: 1,
            image_format_version: 1,
            stasis_version: "0.1.0".to_string(),
            sealed_at_unix: 1_718_000_000,
            key_id: "0123456789abcdef".to_string(),
            manifest_blake3: "ab".repeat(32),
            tpm: None,
        }
    }

    fn sample_seal() -> Seal {
        Seal::new(sample_info(), Signature::from_bytes(&[7u8; 64]))
    }

    fn parse(bytes: &[u8]) -> Result<Seal, SealError> {
        Seal::parse(bytes, Path::new("img/seal"))
    }

    /// Replaces line `index` (0-based) of the sample seal file.
    fn with_line(index: usize, line: &str) -> Vec<u8> {
        let text = String::from_utf8(sample_seal().to_file_bytes()).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines[index] = line;
        format!("{}\n", lines.join("\n")).into_bytes()
    }

    #[test]
    fn seal_file_round_trips() {
        let seal = sample_seal();
        let bytes = seal.to_file_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "stasis-seal 1\nimage_format_version 1\nstasis_version 0.1.0\n\
                 sealed_at_unix 1718000000\nkey_id 0123456789abcdef\nmanifest_blake3 {}\n\
                 signature {}\n",
                "ab".repeat(32),
                "07".repeat(64)
            )
        );
        let parsed = parse(&bytes).expect("parse");
        assert_eq!(parsed, seal);
        assert_eq!(parsed.signed_bytes(), &bytes[..bytes.len() - 139]);
    }

    #[test]
    fn newer_seal_version_is_rejected_first() {
        let error = parse(b"stasis-seal 3\nsomething else entirely\n").unwrap_err();
        assert!(
            matches!(
                error,
                SealError::NewerSealVersion {
                    found: 3,
                    supported: 2,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("use a newer stasis"), "{error}");
    }

    #[test]
    fn malformed_seals_are_rejected() {
        let valid = sample_seal().to_file_bytes();
        let mut missing_newline = valid.clone();
        missing_newline.pop();
        let mut crlf = String::from_utf8(valid.clone())
            .unwrap()
            .replace('\n', "\r\n");
        crlf.push('x');
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "does not end with a newline"),
            (
                "no final newline",
                missing_newline,
                "does not end with a newline",
            ),
            ("carriage returns", crlf.into_bytes(), "printable ASCII"),
            (
                "binary",
                b"stasis-seal 1\n\x00\n".to_vec(),
                "printable ASCII",
            ),
            (
                "wrong magic",
                with_line(0, "stasis-seel 1"),
                "line 1 must be",
            ),
            ("version zero", with_line(0, "stasis-seal 0"), "version 0"),
            (
                "signed version",
                with_line(0, "stasis-seal +1"),
                "invalid seal version",
            ),
            (
                "reordered",
                with_line(1, "stasis_version 0.1.0"),
                "line 2 must start with \"image_format_version \"",
            ),
            (
                "double space",
                with_line(3, "sealed_at_unix  1718000000"),
                "invalid sealed_at_unix",
            ),
            (
                "leading zero",
                with_line(3, "sealed_at_unix 01718000000"),
                "canonical form",
            ),
            (
                "uppercase key id",
                with_line(4, "key_id 0123456789ABCDEF"),
                "key_id",
            ),
            (
                "short hash",
                with_line(5, "manifest_blake3 abcd"),
                "manifest_blake3",
            ),
            (
                "short signature",
                with_line(6, &format!("signature {}", "07".repeat(63))),
                "signature is not 128",
            ),
            (
                "version with space",
                with_line(2, "stasis_version 0.1 0"),
                "stasis_version",
            ),
            (
                "format overflow",
                with_line(1, "image_format_version 99999999999"),
                "invalid image_format_version",
            ),
        ];
        for (label, bytes, expected) in cases {
            let error = parse(&bytes).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(expected),
                "{label}: {message:?} does not contain {expected:?}"
            );
            assert!(message.contains("img/seal"), "{label}: {message}");
        }
    }

    fn sample_tpm_seal() -> Seal {
        let public_key = [4u8; P256_POINT_LEN];
        let pcrs = [
            PcrValue {
                index: 7,
                value: [0xaa; 32],
            },
            PcrValue {
                index: 16,
                value: [0; 32],
            },
        ];
        let info = SealInfo {
            seal_version: TPM_SEAL_VERSION,
            key_id: tpm_key_id(&public_key),
            tpm: Some(TpmSealInfo::new(&public_key, &pcrs)),
            ..sample_info()
        };
        Seal::new(info, SealSignature::EcdsaP256([9; 64]))
    }

    #[test]
    fn tpm_seal_file_round_trips() {
        let seal = sample_tpm_seal();
        let bytes = seal.to_file_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10, "{text}");
        assert_eq!(lines[0], "stasis-seal 2");
        assert_eq!(lines[1], "key_type tpm-ecdsa-p256");
        assert_eq!(lines[6], format!("tpm_public_key {}", "04".repeat(65)));
        assert_eq!(
            lines[7],
            format!("pcrs sha256:7={},16={}", "aa".repeat(32), "00".repeat(32))
        );
        assert_eq!(parse(&bytes).expect("parse"), seal);
    }

    #[test]
    fn malformed_tpm_seals_are_rejected() {
        let text = String::from_utf8(sample_tpm_seal().to_file_bytes()).unwrap();
        let replace_line = |index: usize, line: &str| {
            let mut lines: Vec<&str> = text.lines().collect();
            lines[index] = line;
            format!("{}\n", lines.join("\n")).into_bytes()
        };
        let zeros = "00".repeat(32);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("key type", replace_line(1, "key_type tpm-rsa"), "key_type"),
            (
                "compressed point",
                replace_line(6, &format!("tpm_public_key 02{}", "04".repeat(64))),
                "uncompressed point",
            ),
            (
                "foreign key id",
                replace_line(5, "key_id 0123456789abcdef"),
                "is not the ID of tpm_public_key",
            ),
            (
                "unordered PCRs",
                replace_line(7, &format!("pcrs sha256:16={zeros},7={zeros}")),
                "increasing order",
            ),
            (
                "PCR 24",
                replace_line(7, &format!("pcrs sha256:24={zeros}")),
                "increasing order",
            ),
            (
                "short PCR value",
                replace_line(7, "pcrs sha256:7=00"),
                "64 lowercase hex digits",
            ),
            (
                "other bank",
                replace_line(7, "pcrs sha1:7=00"),
                "invalid pcrs",
            ),
            ("empty list", replace_line(7, "pcrs "), "invalid pcrs"),
            (
                "Ed25519 lines",
                String::from_utf8(sample_seal().to_file_bytes())
                    .unwrap()
                    .replacen("stasis-seal 1", "stasis-seal 2", 1)
                    .into_bytes(),
                "it has 7 lines, expected 10",
            ),
        ];
        for (label, bytes, expected) in cases {
            let message = parse(&bytes).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "{label}: {message:?} does not contain {expected:?}"
            );
        }
    }

    #[test]
    fn extra_line_is_rejected() {
        let mut bytes = sample_seal().to_file_bytes();
        bytes.extend_from_slice(b"comment here\n");
        let error = parse(&bytes).unwrap_err();
        assert!(
            error.to_string().contains("it has 8 lines, expected 7"),
            "{error}"
        );
    }

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_718_000_000), "2024-06-10 06:13:20 UTC");
        assert_eq!(format_utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(format_utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }
}
