//! `stasis key`: manage the Ed25519 keys that seal images.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use stasis_seal::{generate_encryption_key, generate_key_pair};

use crate::output;

/// Manage the keys that seal and encrypt images.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Generate an Ed25519 key pair: KEYFILE, the private key (mode 0600),
    /// and KEYFILE.pub, the public key. Neither file may exist. With
    /// --encryption, generate an image encryption key instead.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Path of the private key file to create; the public key goes to this
    /// path plus ".pub".
    #[arg(long, value_name = "KEYFILE")]
    out: PathBuf,

    /// Generate a random AES-256 image encryption key for `stasis dump
    /// --encrypt` in KEYFILE (mode 0600), instead of a signing key pair.
    #[arg(long)]
    encryption: bool,

    /// With --encryption: seal the new key with the TPM, so that KEYFILE
    /// contains it in a form only this TPM can unseal. Loading the key file
    /// then needs the TPM (the one STASIS_TCTI names, else the one that
    /// sealed it).
    #[arg(long, requires = "encryption")]
    tpm: bool,

    /// The TPM for --tpm, as a tpm2-tss TCTI string such as
    /// device:/dev/tpmrm0. Default: STASIS_TCTI, else device:/dev/tpmrm0.
    #[arg(long, value_name = "TCTI", requires = "tpm")]
    tcti: Option<String>,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The JSON summary of `stasis key generate`.
#[derive(Serialize)]
struct GenerateSummary {
    private_key: PathBuf,
    public_key: PathBuf,
    key_id: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        KeyCommand::Generate(args) => generate(args),
    }
}

/// Loads an image encryption key file, naming the file in errors.
pub fn load_encryption_key(path: &std::path::Path) -> anyhow::Result<stasis_image::ImageKey> {
    stasis_seal::load_encryption_key(path)
        .with_context(|| format!("loading the image key {} failed", path.display()))
}

/// The JSON summary of `stasis key generate --encryption`.
#[derive(Serialize)]
struct EncryptionKeySummary {
    encryption_key: PathBuf,
    key_id: String,
}

fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.encryption {
        let generated = if args.tpm {
            stasis_seal::generate_tpm_encryption_key(&args.out, args.tcti.as_deref())
        } else {
            generate_encryption_key(&args.out)
        }
        .with_context(|| format!("generating an image key at {} failed", args.out.display()))?;
        let summary = EncryptionKeySummary {
            encryption_key: generated.path,
            key_id: generated.key_id,
        };
        if args.json {
            output::print_json(&summary)?;
        } else {
            println!(
                "wrote image encryption key {} (mode 0600); key ID {}",
                summary.encryption_key.display(),
                summary.key_id
            );
            if args.tpm {
                println!(
                    "the key exists only sealed by this TPM: an image encrypted with it can be \
                     restored only on this host, and clearing the TPM loses it"
                );
            } else {
                println!(
                    "keep it secret and keep a copy: an image encrypted with it cannot be \
                     restored or inspected without it"
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let generated = generate_key_pair(&args.out)
        .with_context(|| format!("generating a key pair at {} failed", args.out.display()))?;
    let summary = GenerateSummary {
        private_key: generated.private_path,
        public_key: generated.public_path,
        key_id: generated.public_key.key_id(),
    };

    if args.json {
        output::print_json(&summary)?;
    } else {
        println!(
            "wrote private key {} (mode 0600) and public key {}; key ID {}",
            summary.private_key.display(),
            summary.public_key.display(),
            summary.key_id
        );
        println!(
            "keep the private key secret; give the public key to the hosts that verify or \
             restore sealed images"
        );
    }
    Ok(ExitCode::SUCCESS)
}
