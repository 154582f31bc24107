//! `stasis seal`: sign an image so that its integrity can be checked before
//! it is restored, with a key file or with the TPM's signing key.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;
use stasis_seal::format::format_utc;
use stasis_seal::tpm::parse_pcr_list;
use stasis_seal::{seal_image, seal_image_tpm, PrivateKey, SealOptions, SealOutcome, Tpm};

use crate::output;

/// Seal an image: sign the hash of its manifest with a private key or in a
/// TPM, so that `stasis verify` and `stasis restore --require-seal` detect
/// any change.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    dir: PathBuf,

    /// Private key file made by `stasis key generate` (mode 0600 or stricter).
    #[arg(
        long,
        value_name = "KEYFILE",
        required_unless_present = "tpm",
        conflicts_with = "tpm"
    )]
    key: Option<PathBuf>,

    /// Sign with the signing key of a TPM 2.0, which never leaves the TPM;
    /// see --tcti for which TPM.
    #[arg(long)]
    tpm: bool,

    #[command(flatten)]
    pcrs: PcrArgs,

    #[command(flatten)]
    tcti: TctiArgs,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON summary of a seal, printed by `stasis seal --json` and included
/// in `stasis dump --seal --json`.
#[derive(Serialize)]
pub struct SealSummary {
    pub seal_file: PathBuf,
    /// "ed25519" for a key file, "tpm" for the TPM's signing key.
    pub key_type: &'static str,
    pub key_id: String,
    /// The PCRs a TPM seal is bound to, such as "sha256:7,16", or "none".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcrs: Option<String>,
    pub sealed_at_unix: u64,
    pub manifest_blake3: String,
    pub replaced: bool,
}

impl SealSummary {
    pub fn new(outcome: &SealOutcome) -> SealSummary {
        let info = &outcome.seal.info;
        SealSummary {
            seal_file: outcome.path.clone(),
            key_type: if info.tpm.is_some() { "tpm" } else { "ed25519" },
            key_id: info.key_id.clone(),
            pcrs: info.tpm.as_ref().map(|tpm| tpm.describe_pcrs()),
            sealed_at_unix: info.sealed_at_unix,
            manifest_blake3: info.manifest_blake3.clone(),
            replaced: outcome.replaced,
        }
    }

    /// Describes the key for messages: "key ID" or "TPM key ID (PCRs
    /// sha256:7)".
    pub fn key_description(&self) -> String {
        match self.pcrs.as_deref() {
            Some("none") => format!("TPM key {} (bound to no PCRs)", self.key_id),
            Some(pcrs) => format!("TPM key {} (PCRs {pcrs})", self.key_id),
            None => format!("key {}", self.key_id),
        }
    }
}

/// The PCR binding of a TPM seal.
#[derive(clap::Args)]
pub struct PcrArgs {
    /// Bind a TPM seal to the current values of these SHA-256 bank PCRs,
    /// a comma-separated list such as 7 or 0,2,4,7: the TPM signs only
    /// while they hold these values, and verification fails once any of
    /// them changes. Default: no PCRs.
    #[arg(long, value_name = "LIST", value_parser = parse_pcrs)]
    pub pcrs: Option<PcrList>,
}

/// PCR numbers from --pcrs, sorted.
#[derive(Clone, Debug)]
pub struct PcrList(pub Vec<u8>);

fn parse_pcrs(text: &str) -> Result<PcrList, String> {
    parse_pcr_list(text).map(PcrList)
}

impl PcrArgs {
    /// Returns the PCR numbers, none when --pcrs is absent.
    pub fn indices(&self) -> Vec<u8> {
        self.pcrs
            .as_ref()
            .map(|list| list.0.clone())
            .unwrap_or_default()
    }
}

/// The TPM to use.
#[derive(clap::Args)]
pub struct TctiArgs {
    /// The TPM as a tpm2-tss TCTI string, such as device:/dev/tpmrm0 or
    /// swtpm:host=127.0.0.1,port=2321. Default: the environment variable
    /// STASIS_TCTI, else device:/dev/tpmrm0.
    #[arg(long, value_name = "TCTI")]
    pub tcti: Option<String>,
}

/// Expected TPM key IDs, for verify and restore.
#[derive(clap::Args)]
pub struct TpmKeyIdArgs {
    /// Accept only a TPM seal by the key with this ID, as `stasis seal --tpm`
    /// prints it; repeat to accept several. The ID of a key bound to PCRs
    /// depends on their values, so it also fixes the measured state.
    /// Default: any key of the TPM.
    #[arg(long = "tpm-key-id", value_name = "ID", value_parser = parse_key_id)]
    pub key_ids: Vec<String>,
}

fn parse_key_id(text: &str) -> Result<String, String> {
    let valid = text.len() == 16
        && text
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!(
            "invalid key ID {text:?}: expected 16 lowercase hex digits"
        ))
    }
}

impl TctiArgs {
    /// Connects to the TPM that --tcti, STASIS_TCTI or the default names.
    pub fn open(&self) -> anyhow::Result<Tpm> {
        Tpm::open(self.tcti.as_deref()).context("cannot use a TPM")
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.tpm && (args.pcrs.pcrs.is_some() || args.tcti.tcti.is_some()) {
        bail!("--pcrs and --tcti apply to TPM seals only; add --tpm");
    }
    // The whole image is hashed before signing, so that a seal never vouches
    // for files that already differ from the manifest.
    let options = seal_options(true)?;
    let outcome = match &args.key {
        Some(path) => {
            let key = load_private_key(path)?;
            seal_image(&args.dir, &key, &options)
        }
        None => {
            let mut tpm = args.tcti.open()?;
            seal_image_tpm(&args.dir, &mut tpm, &args.pcrs.indices(), &options)
        }
    }
    .with_context(|| format!("sealing {} failed", args.dir.display()))?;

    let summary = SealSummary::new(&outcome);
    if args.json {
        output::print_json(&summary)?;
    } else {
        println!(
            "sealed {} with {} at {}{}",
            args.dir.display(),
            summary.key_description(),
            format_utc(summary.sealed_at_unix),
            if summary.replaced {
                "; the previous seal was replaced"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads a private key file, with the path in the error.
pub fn load_private_key(path: &Path) -> anyhow::Result<PrivateKey> {
    PrivateKey::load(path)
        .with_context(|| format!("cannot use {} as a sealing key", path.display()))
}

/// Returns the options for sealing now with this stasis version.
/// `verify_files` hashes every file of the image before signing.
pub fn seal_options(verify_files: bool) -> anyhow::Result<SealOptions> {
    let sealed_at_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is set before 1970")?
        .as_secs();
    Ok(SealOptions {
        sealed_at_unix,
        stasis_version: env!("CARGO_PKG_VERSION").to_string(),
        verify_files,
    })
}
