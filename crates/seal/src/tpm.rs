//! Access to a TPM 2.0: the signing key of TPM seals, PCR values, and
//! sealing of small secrets.
//!
//! stasis talks to the TPM through the tpm2-tss Enhanced System API (ESAPI)
//! with the `tss-esapi` crate, the maintained Rust binding of tpm2-tss.
//! tpm2-tss is the TSS that Debian ships, so stasis marshals no TPM
//! command and handles no session of its own. The crate links the system's
//! libtss2 libraries (Debian package `libtss2-dev`) and ships pre-generated
//! bindings for x86-64 Linux, so the build needs `pkg-config` but neither
//! clang nor bindgen. The libraries bring every TCTI (the transport to a
//! TPM): the kernel device `/dev/tpmrm0`, swtpm and the TPM simulator.
//!
//! # The signing key
//!
//! The key that signs TPM seals is an ECC P-256 ECDSA key that the TPM
//! derives from the owner hierarchy's primary seed and a fixed template
//! ([`TpmKey`]). The TPM recreates the same key from the same template
//! whenever asked (TPM2_CreatePrimary), and its private part never leaves
//! the TPM, so there is no key file to copy. The key changes only when the
//! owner hierarchy is cleared (TPM2_Clear), or on another TPM.
//!
//! A key bound to PCRs has an authorization policy (TPM2_PolicyPCR) over
//! the SHA-256 bank values of the chosen PCRs at sealing time. That policy
//! is part of the template, so each set of PCR values gives its own key,
//! and the TPM signs with it only while the PCRs hold those values.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, PcrHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, DigestValues, EccParameter, EccPoint, EccScheme, EccSignature, HashScheme,
    HashcheckTicket, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot, Private,
    Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData,
    Signature, SignatureScheme, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;
use tss_esapi::{Context, TctiNameConf};
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::key::KEY_ID_BYTES;

/// Environment variable that names the TCTI, when `--tcti` is not given.
pub const TCTI_ENV: &str = "STASIS_TCTI";
/// The kernel's TPM device with its resource manager, used when no TCTI is
/// named.
pub const DEFAULT_TPM_DEVICE: &str = "/dev/tpmrm0";
/// Number of PCRs that a PC client TPM has in each bank.
pub const PCR_COUNT: u8 = 24;
/// Size of an uncompressed SEC1 P-256 point: 0x04, then X and Y.
pub const P256_POINT_LEN: usize = 65;
/// Size of an ECDSA P-256 signature as stored in a seal: r, then s, each 32
/// bytes big-endian.
pub const P256_SIGNATURE_LEN: usize = 64;
/// Maximum size of a secret that [`Tpm::seal_secret`] accepts, in bytes.
pub const MAX_SECRET_LEN: usize = 128;

/// The value of one SHA-256 bank PCR.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PcrValue {
    pub index: u8,
    pub value: [u8; 32],
}

impl fmt::Debug for PcrValue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "sha256:{}={}",
            self.index,
            hex::encode(self.value)
        )
    }
}

/// Parses a PCR list such as `7,16` or `sha256:7,16`: distinct indices
/// below [`PCR_COUNT`] in the SHA-256 bank. Returns them sorted.
pub fn parse_pcr_list(text: &str) -> Result<Vec<u8>, String> {
    let list = text.strip_prefix("sha256:").unwrap_or(text);
    let mut indices = Vec::new();
    for item in list.split(',') {
        let index = match item.parse::<u8>() {
            Ok(index) if index < PCR_COUNT && item == index.to_string() => index,
            _ => {
                return Err(format!(
                    "invalid PCR {item:?} in {text:?}: expected a comma-separated list of PCR \
                     numbers from 0 to {}, such as 7,16",
                    PCR_COUNT - 1
                ))
            }
        };
        if indices.contains(&index) {
            return Err(format!("PCR {index} is listed twice in {text:?}"));
        }
        indices.push(index);
    }
    indices.sort_unstable();
    Ok(indices)
}

/// A connection to a TPM 2.0.
pub struct Tpm {
    context: Context,
    tcti: String,
}

impl fmt::Debug for Tpm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Tpm")
            .field("tcti", &self.tcti)
            .finish_non_exhaustive()
    }
}

impl Tpm {
    /// Connects to the TPM that `tcti` names, or else the one that the
    /// environment variable [`TCTI_ENV`] names, or else
    /// `device:/dev/tpmrm0`.
    ///
    /// A TCTI string is the tpm2-tss form, such as `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`. When no TCTI is named and
    /// `/dev/tpmrm0` does not exist, fails with [`SealError::NoTpm`], whose
    /// message names the ways to select a TPM.
    pub fn open(tcti: Option<&str>) -> Result<Tpm, SealError> {
        let from_env = std::env::var(TCTI_ENV)
            .ok()
            .filter(|value| !value.is_empty());
        let tcti = match (tcti, from_env) {
            (Some(tcti), _) => tcti.to_string(),
            (None, Some(tcti)) => tcti,
            (None, None) => {
                if !Path::new(DEFAULT_TPM_DEVICE).exists() {
                    return Err(SealError::NoTpm);
                }
                format!("device:{DEFAULT_TPM_DEVICE}")
            }
        };
        let name = TctiNameConf::from_str(&tcti)
            .map_err(|_| SealError::InvalidTcti { tcti: tcti.clone() })?;
        let context = Context::new(name).map_err(|error| SealError::TpmConnect {
            tcti: tcti.clone(),
            message: error.to_string(),
        })?;
        Ok(Tpm { context, tcti })
    }

    /// Returns the TCTI string of this connection.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    fn error(&self, operation: &str, error: tss_esapi::Error) -> SealError {
        SealError::Tpm {
            tcti: self.tcti.clone(),
            operation: operation.to_string(),
            message: error.to_string(),
        }
    }

    /// Reads the SHA-256 bank values of the PCRs `indices`.
    pub fn read_pcrs(&mut self, indices: &[u8]) -> Result<Vec<PcrValue>, SealError> {
        let mut values = Vec::with_capacity(indices.len());
        // One PCR per TPM2_PCR_Read, because one read returns at most eight
        // values and reports which ones in a selection of its own.
        for &index in indices {
            let selection =
                pcr_selection(&[index]).map_err(|error| self.error("PCR_Read", error))?;
            let (_, _, digests) = self
                .context
                .pcr_read(selection)
                .map_err(|error| self.error("PCR_Read", error))?;
            let value: [u8; 32] = match digests.value() {
                [digest] => digest.value().try_into().ok(),
                _ => None,
            }
            .ok_or_else(|| SealError::Tpm {
                tcti: self.tcti.clone(),
                operation: "PCR_Read".to_string(),
                message: format!("the TPM returned no SHA-256 value for PCR {index}"),
            })?;
            values.push(PcrValue { index, value });
        }
        Ok(values)
    }

    /// Extends the SHA-256 bank of PCR `index` with SHA-256(`data`), as a
    /// measurement does. Tests use it to change the measured state.
    pub fn extend_pcr(&mut self, index: u8, data: &[u8]) -> Result<(), SealError> {
        let handle = PcrHandle::try_from(u32::from(index))
            .map_err(|error| self.error("PCR_Extend", error))?;
        let digest = Digest::try_from(Sha256::digest(data).to_vec())
            .map_err(|error| self.error("PCR_Extend", error))?;
        let mut values = DigestValues::new();
        values.set(HashingAlgorithm::Sha256, digest);
        let result = self
            .context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.pcr_extend(handle, values)
            });
        result.map_err(|error| self.error("PCR_Extend", error))
    }

    /// Creates the signing key bound to `pcrs` (no binding when empty), as
    /// described in the module documentation. The key is flushed from the
    /// TPM when the returned value is dropped.
    pub fn signing_key(&mut self, pcrs: &[PcrValue]) -> Result<TpmKey<'_>, SealError> {
        let policy = if pcrs.is_empty() {
            None
        } else {
            Some(self.pcr_policy_digest(pcrs)?)
        };
        let template =
            signing_key_template(policy).map_err(|error| self.error("CreatePrimary", error))?;
        let result = self
            .context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map_err(|error| self.error("CreatePrimary", error))?;
        let handle = result.key_handle;
        let Some(public_key) = ecc_point(&result.out_public) else {
            let _ = self.context.flush_context(handle.into());
            return Err(SealError::Tpm {
                tcti: self.tcti.clone(),
                operation: "CreatePrimary".to_string(),
                message: "the TPM returned a key that is not a P-256 point".to_string(),
            });
        };
        Ok(TpmKey {
            tpm: self,
            handle,
            public_key,
            pcrs: pcrs.to_vec(),
        })
    }

    /// Computes the TPM2_PolicyPCR policy digest for `pcrs` in a trial
    /// session, with the expected values given, so the current PCR values
    /// do not matter.
    fn pcr_policy_digest(&mut self, pcrs: &[PcrValue]) -> Result<Digest, SealError> {
        let session = self.start_policy_session(SessionType::Trial)?;
        let result = policy_pcr(&mut self.context, session, pcrs)
            .and_then(|()| self.context.policy_get_digest(session));
        self.flush_session(session);
        result.map_err(|error| self.error("PolicyPCR", error))
    }

    fn start_policy_session(&mut self, kind: SessionType) -> Result<PolicySession, SealError> {
        let session = self
            .context
            .start_auth_session(
                None,
                None,
                None,
                kind,
                SymmetricDefinition::Null,
                HashingAlgorithm::Sha256,
            )
            .map_err(|error| self.error("StartAuthSession", error))?;
        session
            .and_then(|session| PolicySession::try_from(session).ok())
            .ok_or_else(|| SealError::Tpm {
                tcti: self.tcti.clone(),
                operation: "StartAuthSession".to_string(),
                message: "the TPM returned no policy session".to_string(),
            })
    }

    /// Flushes a session. Errors are ignored: the session is gone when the
    /// connection closes, and this runs on error paths too.
    fn flush_session(&mut self, session: PolicySession) {
        let handle = ObjectHandle::from(tss_esapi::handles::SessionHandle::from(session));
        let _ = self.context.flush_context(handle);
    }

    /// Seals a secret of at most [`MAX_SECRET_LEN`] bytes to this TPM: only
    /// this TPM (with its owner hierarchy not cleared) can unseal the
    /// returned blob, with [`Tpm::unseal_secret`].
    ///
    /// The secret becomes a TPM sealed data object (a keyed-hash object
    /// without sign or decrypt use) under the owner hierarchy's storage
    /// primary key, an ECC P-256 key from a fixed template. The blob contains
    /// the object's public area and its private area, which the TPM
    /// encrypted with the storage key.
    pub fn seal_secret(&mut self, secret: &[u8]) -> Result<SealedSecret, SealError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(SealError::Tpm {
                tcti: self.tcti.clone(),
                operation: "Create".to_string(),
                message: format!(
                    "a sealed secret must be 1 to {MAX_SECRET_LEN} bytes, not {}",
                    secret.len()
                ),
            });
        }
        let data = SensitiveData::try_from(secret.to_vec())
            .map_err(|error| self.error("Create", error))?;
        let template = sealed_object_template().map_err(|error| self.error("Create", error))?;
        let parent = self.storage_key()?;
        let created = self
            .context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.create(parent, template, None, Some(data), None, None)
            });
        let _ = self.context.flush_context(parent.into());
        let created = created.map_err(|error| self.error("Create", error))?;
        let public = created
            .out_public
            .marshall()
            .map_err(|error| self.error("Create", error))?;
        Ok(SealedSecret {
            public,
            private: created.out_private.value().to_vec(),
        })
    }

    /// Unseals a blob made by [`Tpm::seal_secret`] on this TPM.
    pub fn unseal_secret(
        &mut self,
        sealed: &SealedSecret,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let public =
            Public::unmarshall(&sealed.public).map_err(|error| self.error("Load", error))?;
        let private =
            Private::try_from(sealed.private.clone()).map_err(|error| self.error("Load", error))?;
        let parent = self.storage_key()?;
        let loaded = self
            .context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.load(parent, private, public)
            });
        let _ = self.context.flush_context(parent.into());
        let handle = loaded.map_err(|error| self.error("Load", error))?;
        let unsealed = self
            .context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.unseal(handle.into())
            });
        let _ = self.context.flush_context(handle.into());
        let data = unsealed.map_err(|error| self.error("Unseal", error))?;
        Ok(Zeroizing::new(data.value().to_vec()))
    }

    /// Creates the owner hierarchy's storage primary key. The caller
    /// flushes it.
    fn storage_key(&mut self) -> Result<KeyHandle, SealError> {
        let template =
            storage_key_template().map_err(|error| self.error("CreatePrimary", error))?;
        self.context
            .execute_with_session(Some(AuthSession::Password), |context| {
                context.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map(|result| result.key_handle)
            .map_err(|error| self.error("CreatePrimary", error))
    }
}

/// A secret sealed by [`Tpm::seal_secret`]: the marshaled TPM2B_PUBLIC
/// contents and the TPM2B_PRIVATE contents of the sealed data object.
/// Neither needs to be kept secret, because only the TPM that made them can
/// load the private part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    pub public: Vec<u8>,
    pub private: Vec<u8>,
}

/// The signing key of TPM seals, loaded in the TPM. It is flushed from the
/// TPM when dropped.
pub struct TpmKey<'a> {
    tpm: &'a mut Tpm,
    handle: KeyHandle,
    public_key: [u8; P256_POINT_LEN],
    pcrs: Vec<PcrValue>,
}

impl Drop for TpmKey<'_> {
    fn drop(&mut self) {
        // A TPM without a resource manager (swtpm reached directly) keeps
        // the key loaded until it is flushed.
        let _ = self.tpm.context.flush_context(self.handle.into());
    }
}

impl TpmKey<'_> {
    /// Returns the public key as an uncompressed SEC1 point.
    pub fn public_key(&self) -> [u8; P256_POINT_LEN] {
        self.public_key
    }

    /// Returns the key ID: the first 8 bytes of BLAKE3 of the 65-byte
    /// public key, as 16 lowercase hex digits.
    pub fn key_id(&self) -> String {
        tpm_key_id(&self.public_key)
    }

    /// Signs SHA-256(`message`) with ECDSA. A PCR-bound key signs only
    /// while its PCRs hold the values it is bound to; otherwise this fails
    /// with [`SealError::PcrPolicyFailed`].
    pub fn sign(&mut self, message: &[u8]) -> Result<[u8; P256_SIGNATURE_LEN], SealError> {
        let digest = Digest::try_from(Sha256::digest(message).to_vec())
            .map_err(|error| self.tpm.error("Sign", error))?;
        // An unrestricted key needs no proof that the TPM computed the
        // digest, so the ticket is the null ticket.
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(|error| self.tpm.error("Sign", error))?;
        let scheme = SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        };
        let handle = self.handle;

        let signature = if self.pcrs.is_empty() {
            self.tpm
                .context
                .execute_with_session(Some(AuthSession::Password), |context| {
                    context.sign(handle, digest, scheme, ticket)
                })
                .map_err(|error| self.tpm.error("Sign", error))?
        } else {
            let session = self.tpm.start_policy_session(SessionType::Policy)?;
            let pcrs = self.pcrs.clone();
            let authorized = policy_pcr(&mut self.tpm.context, session, &pcrs);
            let result = authorized.and_then(|()| {
                self.tpm
                    .context
                    .execute_with_session(Some(session.into()), |context| {
                        context.sign(handle, digest, scheme, ticket)
                    })
            });
            self.tpm.flush_session(session);
            result.map_err(|error| match policy_failure(error) {
                true => SealError::PcrPolicyFailed {
                    tcti: self.tpm.tcti.clone(),
                    pcrs: describe_pcrs(&self.pcrs),
                },
                false => self.tpm.error("Sign", error),
            })?
        };

        let Signature::EcDsa(signature) = signature else {
            return Err(SealError::Tpm {
                tcti: self.tpm.tcti.clone(),
                operation: "Sign".to_string(),
                message: "the TPM returned a signature that is not ECDSA".to_string(),
            });
        };
        let mut bytes = [0u8; P256_SIGNATURE_LEN];
        let (r, s) = bytes.split_at_mut(32);
        if !copy_left_padded(signature.signature_r().value(), r)
            || !copy_left_padded(signature.signature_s().value(), s)
        {
            return Err(SealError::Tpm {
                tcti: self.tpm.tcti.clone(),
                operation: "Sign".to_string(),
                message: "the TPM returned an ECDSA signature with values over 32 bytes"
                    .to_string(),
            });
        }
        Ok(bytes)
    }

    /// Checks an ECDSA signature over SHA-256(`message`) with this key, in
    /// the TPM (TPM2_VerifySignature). Returns false for a signature that
    /// does not verify.
    pub fn verify(
        &mut self,
        message: &[u8],
        signature: &[u8; P256_SIGNATURE_LEN],
    ) -> Result<bool, SealError> {
        let digest = Digest::try_from(Sha256::digest(message).to_vec())
            .map_err(|error| self.tpm.error("VerifySignature", error))?;
        let (r, s) = signature.split_at(32);
        let signature = EccParameter::try_from(r.to_vec())
            .and_then(|r| Ok((r, EccParameter::try_from(s.to_vec())?)))
            .and_then(|(r, s)| EccSignature::create(HashingAlgorithm::Sha256, r, s))
            .map_err(|error| self.tpm.error("VerifySignature", error))?;
        match self
            .tpm
            .context
            .verify_signature(self.handle, digest, Signature::EcDsa(signature))
        {
            Ok(_) => Ok(true),
            Err(tss_esapi::Error::Tss2Error(code))
                if code.kind() == Some(Tss2ResponseCodeKind::Signature) =>
            {
                Ok(false)
            }
            Err(error) => Err(self.tpm.error("VerifySignature", error)),
        }
    }
}

/// Returns the key ID of a TPM key: the first 8 bytes of BLAKE3 of its
/// 65-byte public key, as 16 lowercase hex digits.
pub fn tpm_key_id(public_key: &[u8; P256_POINT_LEN]) -> String {
    hex::encode(&blake3::hash(public_key).as_bytes()[..KEY_ID_BYTES])
}

/// Formats PCR numbers for messages, such as "sha256:7,16".
pub fn describe_pcrs(pcrs: &[PcrValue]) -> String {
    let numbers: Vec<String> = pcrs.iter().map(|pcr| pcr.index.to_string()).collect();
    format!("sha256:{}", numbers.join(","))
}

/// Runs TPM2_PolicyPCR in `session` with the expected values of `pcrs`. In
/// a policy session the TPM rejects it when the PCRs hold other values.
fn policy_pcr(
    context: &mut Context,
    session: PolicySession,
    pcrs: &[PcrValue],
) -> tss_esapi::Result<()> {
    let indices: Vec<u8> = pcrs.iter().map(|pcr| pcr.index).collect();
    let selection = pcr_selection(&indices)?;
    // The PCR digest is the hash of the values concatenated in PCR order,
    // which is the order of `pcrs`.
    let mut hasher = Sha256::new();
    for pcr in pcrs {
        hasher.update(pcr.value);
    }
    let digest = Digest::try_from(hasher.finalize().to_vec())?;
    context.policy_pcr(session, digest, selection)
}

/// Returns whether a TPM error means that a PCR policy did not hold: a
/// policy failure on Sign, or a PCR value mismatch on PolicyPCR.
fn policy_failure(error: tss_esapi::Error) -> bool {
    match error {
        tss_esapi::Error::Tss2Error(code) => matches!(
            code.kind(),
            Some(Tss2ResponseCodeKind::PolicyFail | Tss2ResponseCodeKind::Value)
        ),
        tss_esapi::Error::WrapperError(_) => false,
    }
}

fn pcr_selection(indices: &[u8]) -> tss_esapi::Result<PcrSelectionList> {
    let slots = indices
        .iter()
        .map(|&index| PcrSlot::try_from(1u32 << index))
        .collect::<tss_esapi::Result<Vec<_>>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
}

/// Builds the template of the signing key: a non-duplicable ECC P-256 ECDSA
/// SHA-256 signing key. Without a policy, an empty password authorizes
/// it. With one, only the policy does (userWithAuth is clear).
fn signing_key_template(policy: Option<Digest>) -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(policy.is_none())
        .with_sign_encrypt(true)
        .with_decrypt(false)
        .with_restricted(false)
        .build()?;
    let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .build()?;
    let mut builder = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default());
    if let Some(policy) = policy {
        builder = builder.with_auth_policy(policy);
    }
    builder.build()
}

/// Builds the template of the storage key that parents sealed secrets: a
/// restricted ECC P-256 decryption key with AES-128-CFB for its children.
fn storage_key_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_decrypt(true)
        .with_sign_encrypt(false)
        .with_restricted(true)
        .with_no_da(true)
        .build()?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// Builds the template of a sealed secret: a keyed-hash object with neither sign
/// nor decrypt, whose data the caller supplies.
fn sealed_object_template() -> tss_esapi::Result<Public> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

/// Returns the public point of an ECC P-256 key as an uncompressed SEC1
/// point.
fn ecc_point(public: &Public) -> Option<[u8; P256_POINT_LEN]> {
    let Public::Ecc { unique, .. } = public else {
        return None;
    };
    let mut point = [0u8; P256_POINT_LEN];
    point[0] = 0x04;
    let (x, y) = point[1..].split_at_mut(32);
    (copy_left_padded(unique.x().value(), x) && copy_left_padded(unique.y().value(), y))
        .then_some(point)
}

/// Copies a big-endian number into `target`, with leading zeros. Returns
/// false when it does not fit.
fn copy_left_padded(value: &[u8], target: &mut [u8]) -> bool {
    let value = match value.iter().position(|&byte| byte != 0) {
        Some(start) => &value[start..],
        None => &[],
    };
    if value.len() > target.len() {
        return false;
    }
    let start = target.len() - value.len();
    target[..start].fill(0);
    target[start..].copy_from_slice(value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swtpm::Swtpm;
    use crate::test_support::TempDir;

    fn start_tpm(temp: &TempDir) -> (Swtpm, Tpm) {
        let swtpm = Swtpm::start(temp.path()).unwrap_or_else(|message| panic!("{message}"));
        let tpm = Tpm::open(Some(&swtpm.tcti())).expect("connect to swtpm");
        (swtpm, tpm)
    }

    #[test]
    fn key_signs_and_verifies() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let mut key = tpm.signing_key(&[]).expect("create key");
        let public = key.public_key();
        assert_eq!(public[0], 0x04);
        let signature = key.sign(b"message").expect("sign");
        assert!(key.verify(b"message", &signature).expect("verify"));
        assert!(!key.verify(b"massage", &signature).expect("verify"));
        drop(key);

        // The same template gives the same key again.
        let again = tpm.signing_key(&[]).expect("create key again");
        assert_eq!(again.public_key(), public);
    }

    #[test]
    fn pcr_bound_key_signs_only_in_its_state() {
        let temp = TempDir::new();
        let (_swtpm, mut tpm) = start_tpm(&temp);
        let pcrs = tpm.read_pcrs(&[16, 23]).expect("read PCRs");
        assert_eq!(pcrs.len(), 2);
        let unbound = tpm.signing_key(&[]).expect("unbound key").public_key();

        let mut key = tpm.signing_key(&pcrs).expect("bound key");
        assert_ne!(key.public_key(), unbound);
        let signature = key.sign(b"message").expect("sign in the bound state");
        assert!(key.verify(b"message", &signature).expect("verify"));
        drop(key);

        tpm.extend_pcr(16, b"measurement").expect("extend PCR 16");
        let now = tpm.read_pcrs(&[16]).expect("read PCR 16");
        assert_ne!(now[0].value, pcrs[0].value);
        let mut key = tpm.signing_key(&pcrs).expect("bound key after the change");
        let error = key.sign(b"message").unwrap_err();
        assert!(
            matches!(error, SealError::PcrPolicyFailed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("sha256:16,23"), "{error}");
    }

    #[test]
    fn other_tpm_has_other_key() {
        let temp = TempDir::new();
        let (_first, mut first) = start_tpm(&temp);
        let (_second, mut second) = start_tpm(&temp);
        let first_key = first.signing_key(&[]).expect("first key").public_key();
        let second_key = second.signing_key(&[]).expect("second key").public_key();
        assert_ne!(first_key, second_key);
    }

    #[test]
    fn secret_unseals_only_on_its_tpm() {
        let temp = TempDir::new();
        let (_first, mut first) = start_tpm(&temp);
        let (_second, mut second) = start_tpm(&temp);
        let secret = [0x5au8; 32];
        let sealed = first.seal_secret(&secret).expect("seal secret");
        assert!(!sealed.private.windows(32).any(|window| window == secret));
        let unsealed = first.unseal_secret(&sealed).expect("unseal");
        assert_eq!(unsealed.as_slice(), secret);

        let error = second.unseal_secret(&sealed).unwrap_err();
        assert!(matches!(error, SealError::Tpm { .. }), "{error}");

        let error = first.seal_secret(&[]).unwrap_err();
        assert!(error.to_string().contains("1 to 128 bytes"), "{error}");
    }

    #[test]
    fn missing_tpm_names_where_to_look() {
        let error = Tpm::open(Some("device:/nonexistent/tpmrm0")).unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, SealError::TpmConnect { .. }), "{message}");
        assert!(message.contains("/nonexistent/tpmrm0"), "{message}");

        let error = Tpm::open(Some("tpm:somewhere")).unwrap_err();
        assert!(error.to_string().contains("invalid TCTI"), "{error}");

        let message = SealError::NoTpm.to_string();
        for part in ["/dev/tpmrm0", "--tcti", "STASIS_TCTI", "swtpm:host="] {
            assert!(message.contains(part), "{message} lacks {part}");
        }
    }

    #[test]
    fn pcr_lists_parse() {
        assert_eq!(parse_pcr_list("16,7"), Ok(vec![7, 16]));
        assert_eq!(parse_pcr_list("sha256:0"), Ok(vec![0]));
        for bad in ["", "24", "7,", "07", "x", "7,7", "sha1:7", "-1"] {
            assert!(parse_pcr_list(bad).is_err(), "{bad:?} was accepted");
        }
        let message = parse_pcr_list("7,7").unwrap_err();
        assert!(message.contains("listed twice"), "{message}");
    }

    #[test]
    fn left_padding() {
        let mut target = [0xffu8; 4];
        assert!(copy_left_padded(&[1, 2], &mut target));
        assert_eq!(target, [0, 0, 1, 2]);
        assert!(copy_left_padded(&[0, 0, 0, 0, 9], &mut target));
        assert_eq!(target, [0, 0, 0, 9]);
        assert!(!copy_left_padded(&[1, 2, 3, 4, 5], &mut target));
    }
}
