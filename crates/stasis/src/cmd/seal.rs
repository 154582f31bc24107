//! `stasis seal`: sign an image so that its integrity can be checked before
//! it is restored.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::Serialize;
use stasis_seal::format::format_utc;
use stasis_seal::{seal_image, PrivateKey, SealOptions, SealOutcome};

use crate::output;

/// Seal an image: sign the hash of its manifest with a private key, so that
/// `stasis verify` and `stasis restore --require-seal` detect any change.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    dir: PathBuf,

    /// Private key file made by `stasis key generate` (mode 0600 or stricter).
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON summary of a seal, printed by `stasis seal --json` and included
/// in `stasis dump --seal --json`.
#[derive(Serialize)]
pub struct SealSummary {
    pub seal_file: PathBuf,
    pub key_id: String,
    pub sealed_at_unix: u64,
    pub manifest_blake3: String,
    pub replaced: bool,
}

impl SealSummary {
    pub fn new(outcome: &SealOutcome) -> SealSummary {
        SealSummary {
            seal_file: outcome.path.clone(),
            key_id: outcome.seal.info.key_id.clone(),
            sealed_at_unix: outcome.seal.info.sealed_at_unix,
            manifest_blake3: outcome.seal.info.manifest_blake3.clone(),
            replaced: outcome.replaced,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = load_private_key(&args.key)?;
    // The whole image is hashed before signing, so that a seal never vouches
    // for files that already differ from the manifest.
    let outcome = seal_image(&args.dir, &key, &seal_options(true)?)
        .with_context(|| format!("sealing {} failed", args.dir.display()))?;

    let summary = SealSummary::new(&outcome);
    if args.json {
        output::print_json(&summary)?;
    } else {
        println!(
            "sealed {} with key {} at {}{}",
            args.dir.display(),
            summary.key_id,
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
