//! `stasis dump`: checkpoint a running process into an image directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stasis_engine::dump::{dump, DumpOptions};

use crate::output::{self, human_bytes};

/// Checkpoint a running process into an image directory.
#[derive(clap::Args)]
pub struct Args {
    /// PID of the process to dump.
    #[arg(short = 't', long = "tree")]
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

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = DumpOptions {
        pid: args.pid,
        dir: args.dir.clone(),
        leave_running: args.leave_running,
        shell_job: args.shell_job,
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

    if args.json {
        output::print_json(&summary)?;
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
    }
    Ok(ExitCode::SUCCESS)
}
