//! `stasis verify`: check an image's seal and every file in it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use stasis_seal::format::format_utc;
use stasis_seal::report::{FileCheck, FileStatus, SealStatus};
use stasis_seal::{verify_image_with, PublicKey, Trust, VerifyReport};

use crate::cmd::seal::{TctiArgs, TpmKeyIdArgs};
use crate::output;

/// Check that an image is sealed by a trusted key and that no file in it
/// is missing, changed or added. Exits with 0 only if all is well.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    dir: PathBuf,

    /// Public key file of a trusted sealing key (KEYFILE.pub from `stasis key
    /// generate`); repeat to trust several keys.
    #[arg(
        long = "pubkey",
        value_name = "PUBFILE",
        required_unless_present = "tpm",
        conflicts_with = "tpm"
    )]
    pubkeys: Vec<PathBuf>,

    /// Accept only a seal made by this host's TPM (`stasis seal --tpm`): the
    /// TPM must derive the same signing key, and every PCR the seal is bound
    /// to must still hold the value recorded at sealing.
    #[arg(long)]
    tpm: bool,

    #[command(flatten)]
    tcti: TctiArgs,

    #[command(flatten)]
    key_ids: TpmKeyIdArgs,

    /// Print the full report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.tpm && (args.tcti.tcti.is_some() || !args.key_ids.key_ids.is_empty()) {
        bail!("--tcti and --tpm-key-id apply to --tpm only; add --tpm");
    }
    let report = if args.tpm {
        let mut tpm = args.tcti.open()?;
        let trust = &mut Trust::Tpm {
            tpm: &mut tpm,
            key_ids: &args.key_ids.key_ids,
        };
        verify_image_with(&args.dir, trust)
    } else {
        let keys = load_public_keys(&args.pubkeys)?;
        verify_image_with(&args.dir, &mut Trust::Keys(&keys))
    }
    .with_context(|| format!("verifying {} failed", args.dir.display()))?;

    if args.json {
        output::print_json(&report)?;
    } else {
        print_report(&report);
    }
    if !report.ok {
        let count = report.problems.len();
        bail!(
            "{} failed verification with {count} problem{}; do not restore it",
            args.dir.display(),
            if count == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Loads each public key file, with its path in the error.
pub fn load_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    paths
        .iter()
        .map(|path| load_public_key(path))
        .collect::<anyhow::Result<Vec<_>>>()
}

fn load_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    PublicKey::load(path)
        .with_context(|| format!("cannot use {} as a trusted public key", path.display()))
}

fn print_report(report: &VerifyReport) {
    println!("image {}", report.dir.display());

    let seal = &report.seal;
    match (seal.status, &seal.info) {
        (SealStatus::Valid, Some(info)) => println!(
            "seal: valid, {}, sealed {}, stasis {}, image format {}",
            match &info.tpm {
                Some(tpm) if tpm.pcrs.is_empty() => {
                    format!("TPM key {} (bound to no PCRs)", info.key_id)
                }
                Some(tpm) => format!(
                    "TPM key {}, PCRs {} unchanged",
                    info.key_id,
                    tpm.describe_pcrs()
                ),
                None => format!("key {}", info.key_id),
            },
            format_utc(info.sealed_at_unix),
            info.stasis_version,
            info.image_format_version
        ),
        (status, _) => println!(
            "seal: {}: {}",
            if status == SealStatus::Missing {
                "MISSING"
            } else {
                "INVALID"
            },
            seal.message.as_deref().unwrap_or("no details")
        ),
    }

    let manifest = &report.manifest;
    match (&manifest.message, &manifest.blake3) {
        (None, Some(hash)) => println!("manifest: ok, BLAKE3 {hash}"),
        (message, _) => println!(
            "manifest: {}: {}",
            status_label(manifest.status),
            message.as_deref().unwrap_or("no details")
        ),
    }

    for file in &report.files {
        print_file(file);
    }
    if report.ok {
        println!("all {} files match the sealed manifest", report.files.len());
    }
}

fn print_file(file: &FileCheck) {
    let label = status_label(file.status);
    let kind = file
        .kind
        .map(|kind| format!(" ({kind})"))
        .unwrap_or_default();
    match &file.message {
        None => println!("{label:<8} {}{kind}", file.name),
        Some(message) => println!("{label:<8} {}{kind}: {message}", file.name),
    }
}

fn status_label(status: FileStatus) -> &'static str {
    match status {
        FileStatus::Ok => "ok",
        FileStatus::Missing => "MISSING",
        FileStatus::Extra => "EXTRA",
        FileStatus::Changed => "CHANGED",
        FileStatus::Invalid => "INVALID",
    }
}
