//! `stasis diff`: what differs between two images of the same program.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stasis_inspect::text::Style;

use super::inspect::{use_colour, write_stdout};

/// Compare two images: process fields, mappings, stored page contents,
/// fds and registers.
#[derive(clap::Args)]
pub struct Args {
    /// The first image directory (A).
    a: PathBuf,

    /// The second image directory (B).
    b: PathBuf,

    /// Print the differences as one line of JSON (schema in
    /// docs/INSPECT.md).
    #[arg(long)]
    json: bool,

    /// Image key file for encrypted images; an image in clear is read
    /// without it. Both encrypted images must use this key.
    #[arg(long, value_name = "KEYFILE")]
    key: Option<PathBuf>,
}

/// Loads the image in `dir`, with `key` if the image is encrypted. A
/// locked encrypted image is an error, since its records cannot be
/// compared.
fn load(
    dir: &std::path::Path,
    key: Option<&stasis_image::ImageKey>,
) -> anyhow::Result<stasis_inspect::LoadedImage> {
    let clear = stasis_inspect::load(dir)
        .with_context(|| format!("cannot read image {}", dir.display()))?;
    if let stasis_inspect::EncryptionState::Locked { key_id } = &clear.encryption {
        let Some(key) = key else {
            anyhow::bail!(
                "{} is encrypted with key {key_id}, so its records cannot be compared without \
                 it; pass --key KEYFILE",
                dir.display()
            );
        };
        return stasis_inspect::load_with_key(dir, Some(key))
            .with_context(|| format!("cannot read image {}", dir.display()));
    }
    Ok(clear)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = args
        .key
        .as_deref()
        .map(crate::cmd::key::load_encryption_key)
        .transpose()?;
    let a = load(&args.a, key.as_ref())?;
    let b = load(&args.b, key.as_ref())?;
    let diff = stasis_inspect::diff::diff(&a, &b);

    if args.json {
        let mut line = serde_json::to_string(&diff)?;
        line.push('\n');
        write_stdout(line.as_bytes())?;
    } else {
        let style = Style {
            colour: use_colour(),
        };
        write_stdout(stasis_inspect::diff::render(&diff, &style).as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
