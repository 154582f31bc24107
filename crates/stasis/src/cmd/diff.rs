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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = stasis_inspect::load(&args.a)
        .with_context(|| format!("cannot read image {}", args.a.display()))?;
    let b = stasis_inspect::load(&args.b)
        .with_context(|| format!("cannot read image {}", args.b.display()))?;
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
