//! The `stasis` command: checkpoint and restart Linux processes.
//!
//! Each subcommand lives in its own module under `cmd/`; this file parses
//! the arguments, sets up logging and prints errors with their causes.

mod cmd;
mod output;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "stasis",
    version,
    about = "Checkpoint and restart Linux processes"
)]
struct Cli {
    /// More log output: -v for steps, -vv for decisions, -vvv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Dump(cmd::dump::Args),
    Restore(cmd::restore::Args),
    Inspect(cmd::inspect::Args),
    Image(cmd::image::Args),
    Diff(cmd::diff::Args),
    Key(cmd::key::Args),
    Seal(cmd::seal::Args),
    Verify(cmd::verify::Args),
    Demo(cmd::demo::Args),
    #[command(hide = true)]
    DemoWorkload(cmd::demo::WorkloadArgs),
    /// Init of a PID namespace that `stasis restore` creates.
    #[command(hide = true)]
    PidNsInit,
}

fn main() -> ExitCode {
    quiet_tss_logging();
    let cli = Cli::parse();
    if let Command::PidNsInit = cli.command {
        return ExitCode::from(stasis_engine::restore::run_pid_namespace_init());
    }
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Dump(args) => cmd::dump::run(args),
        Command::Restore(args) => cmd::restore::run(args),
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Image(args) => cmd::image::run(args),
        Command::Diff(args) => cmd::diff::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Seal(args) => cmd::seal::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::DemoWorkload(args) => cmd::demo::run_workload(args),
        Command::PidNsInit => unreachable!("handled before logging starts"),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("stasis: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

/// Turns off the log messages that libtss2 prints to stderr on every TPM
/// error, unless TSS2_LOG is set. stasis reports each TPM failure itself,
/// with what it means for the seal.
fn quiet_tss_logging() {
    if std::env::var_os("TSS2_LOG").is_none() {
        // This runs first in main, before any thread exists, so no other
        // thread reads the environment while it changes.
        std::env::set_var("TSS2_LOG", "all+none");
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("STASIS_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a reader at a terminal; in a log file or
        // a pipe they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
