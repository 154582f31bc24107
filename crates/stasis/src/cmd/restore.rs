//! `stasis restore`: start a process again from an image directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use stasis_engine::restore::{restore, RestoreOptions};

use crate::output;

/// Restore a process from an image directory, with its original PID.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    #[arg(short = 'D', long = "images-dir")]
    dir: PathBuf,

    /// Return once the process runs and print its PID, instead of waiting
    /// for it and exiting with its status.
    #[arg(short = 'd', long)]
    restore_detached: bool,

    /// Accept files whose size or modification time changed since the dump.
    #[arg(long)]
    skip_file_checks: bool,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = RestoreOptions {
        dir: args.dir.clone(),
        skip_file_checks: args.skip_file_checks,
        manifest_hash: None,
    };
    let summary =
        restore(&options).with_context(|| format!("restore from {} failed", args.dir.display()))?;

    if args.json {
        output::print_json(&summary)?;
    } else if args.restore_detached {
        println!("{}", summary.pid);
    } else {
        eprintln!(
            "restored pid {} ({} mappings, {} pages) in {:.1} ms",
            summary.pid, summary.vmas, summary.pages_restored, summary.total_ms
        );
    }
    if args.restore_detached {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for_exit(summary.pid)
}

/// Waits for the restored child and returns its exit status, or 128 plus
/// the signal number that killed it, as shells report it.
fn wait_for_exit(pid: i32) -> anyhow::Result<ExitCode> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitCode::from(code as u8)),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Ok(ExitCode::from(128 + signal as u8))
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("waiting for restored pid {pid} failed"))
            }
        }
    }
}
