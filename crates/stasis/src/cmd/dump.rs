//! `stasis dump`: checkpoint a running process and its descendants into an
//! image directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stasis_engine::dump::{dump, DumpOptions};
use stasis_seal::{seal_image, seal_image_tpm, PrivateKey, Tpm};

use crate::cmd;
use crate::cmd::key::load_encryption_key;
use crate::cmd::seal::{PcrArgs, SealSummary, TctiArgs};
use crate::output::{self, human_bytes};

/// Checkpoint a running process and all its descendants into an image
/// directory.
#[derive(clap::Args)]
pub struct Args {
    /// PID of the process to dump, the root of the tree: all its
    /// descendants are dumped with it.
    #[arg(short = 't', long = "tree", value_name = "PID")]
    pid: i32,

    /// Image directory to create (must not exist, or be empty).
    #[arg(short = 'D', long = "images-dir")]
    dir: PathBuf,

    /// Let the process continue after the dump instead of killing it.
    #[arg(short = 'R', long)]
    leave_running: bool,

    /// Save the process's terminal fds; restore reattaches them to its own terminal.
    #[arg(short = 'j', long)]
    shell_job: bool,

    /// Seal the image with this private key file right after the dump (see
    /// `stasis seal`). The key is loaded and checked before the dump starts.
    #[arg(long, value_name = "KEYFILE", conflicts_with = "seal_tpm")]
    seal: Option<PathBuf>,

    /// Encrypt every file of the image except the manifest with this image
    /// key file (`stasis key generate --encryption`). Restore and inspect
    /// then need the same key.
    #[arg(long, value_name = "KEYFILE")]
    encrypt: Option<PathBuf>,

    /// Seal the image with the TPM's signing key right after the dump (see
    /// `stasis seal --tpm`). The TPM is opened before the dump starts.
    #[arg(long)]
    seal_tpm: bool,

    #[command(flatten)]
    pcrs: PcrArgs,

    #[command(flatten)]
    tcti: TctiArgs,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// The key that seals the image after the dump.
enum SealKey {
    File(PrivateKey),
    Tpm(Tpm),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.seal_tpm && (args.pcrs.pcrs.is_some() || args.tcti.tcti.is_some()) {
        anyhow::bail!("--pcrs and --tcti apply to --seal-tpm only; add --seal-tpm");
    }
    // A key or TPM that cannot be used must fail before the dump, which may
    // kill the target.
    let mut seal_key = match (&args.seal, args.seal_tpm) {
        (Some(path), _) => Some(SealKey::File(cmd::seal::load_private_key(path)?)),
        (None, true) => Some(SealKey::Tpm(args.tcti.open()?)),
        (None, false) => None,
    };
    let encryption_key = args
        .encrypt
        .as_deref()
        .map(load_encryption_key)
        .transpose()?;

    let options = DumpOptions {
        pid: args.pid,
        dir: args.dir.clone(),
        leave_running: args.leave_running,
        shell_job: args.shell_job,
        encryption_key,
    };
    let show_progress = output::interactive() && !args.json;
    let mut written = 0u64;
    let mut last_shown = 0u64;
    let mut progress = |bytes: u64| {
        written += bytes;
        if show_progress && written - last_shown >= 64 << 20 {
            last_shown = written;
            eprint!("\rdumping memory: {}   ", human_bytes(written));
        }
    };
    let summary = dump(&options, &mut progress).with_context(|| {
        format!(
            "dump of pid {} into {} failed",
            args.pid,
            args.dir.display()
        )
    })?;
    if show_progress && last_shown > 0 {
        eprintln!();
    }

    // The image was just written and its hashes computed while writing, so
    // only the manifest and file sizes are checked again before signing.
    let seal = match &mut seal_key {
        Some(key) => {
            let options = cmd::seal::seal_options(false)?;
            let (result, how) = match key {
                SealKey::File(key) => (seal_image(&args.dir, key, &options), "--key KEYFILE"),
                SealKey::Tpm(tpm) => {
                    let pcrs = args.pcrs.indices();
                    (seal_image_tpm(&args.dir, tpm, &pcrs, &options), "--tpm")
                }
            };
            let outcome = result.with_context(|| {
                format!(
                    "the dump succeeded, but sealing {} failed; the image is complete but \
                     unsealed, so seal it with `stasis seal {} {how}`",
                    args.dir.display(),
                    args.dir.display()
                )
            })?;
            Some(SealSummary::new(&outcome))
        }
        None => None,
    };

    if args.json {
        let mut value = serde_json::to_value(&summary)?;
        if let (Some(seal), Some(object)) = (&seal, value.as_object_mut()) {
            object.insert("seal".to_string(), serde_json::to_value(seal)?);
        }
        output::print_json(&value)?;
    } else {
        println!(
            "dumped pid {} into {}: {} mappings, {} fds, {} of memory in {} pages; frozen for {:.1} ms{}",
            summary.pid,
            summary.dir.display(),
            summary.vmas,
            summary.fds,
            human_bytes(summary.bytes_stored),
            summary.pages_stored,
            summary.frozen_ms,
            if summary.left_running { ", left running" } else { "" },
        );
        if let Some(key_id) = &summary.encryption_key_id {
            println!("encrypted with key {key_id}; restore and inspect need that key (--key)");
        }
        if let Some(seal) = &seal {
            println!(
                "sealed {} with {}",
                summary.dir.display(),
                seal.key_description()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
