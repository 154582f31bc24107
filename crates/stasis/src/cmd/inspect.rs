//! `stasis inspect`: show what an image contains and whether it is intact.

use std::io::{ErrorKind, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use stasis_inspect::text::Style;
use stasis_inspect::{dot, html, view, EncryptionState, LoadedImage, Options, View};

/// Exit status when the image is damaged; the output was still printed.
const EXIT_DAMAGED: u8 = 2;

/// Show what an image contains and whether it is intact.
///
/// Prints a summary, or the one view that a flag selects. When a file of
/// the image failed a check, prints what could be read and exits with 2.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    dir: PathBuf,

    #[command(flatten)]
    view: ViewFlags,

    /// Print the view as one line of JSON (schema in docs/INSPECT.md).
    #[arg(long)]
    json: bool,

    /// Show only the process with this PID.
    #[arg(long, value_name = "PID")]
    pid: Option<i32>,

    /// Write a self-contained HTML report with pictures to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// Write the process tree in Graphviz DOT format to FILE.
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,

    /// Image key file of an encrypted image. Without it, only the summary
    /// of what the manifest shows is available.
    #[arg(long, value_name = "KEYFILE")]
    key: Option<PathBuf>,
}

#[derive(clap::Args)]
#[group(multiple = false)]
struct ViewFlags {
    /// Show the process tree: PID, PPID, SID, PGID, name and command line.
    #[arg(long)]
    tree: bool,

    /// Show each mapping as /proc/PID/maps does, with the pages stored.
    #[arg(long)]
    maps: bool,

    /// Show the open file descriptors with their flags and offsets.
    #[arg(long)]
    fds: bool,

    /// Show object counts, the largest mappings, where the bytes go and
    /// the dump's timings.
    #[arg(long)]
    stats: bool,

    /// Show the environment, read from the saved pages.
    #[arg(long)]
    env: bool,

    /// Show the command-line arguments, read from the saved pages.
    #[arg(long)]
    cmdline: bool,

    /// Show the auxiliary vector with AT_* names.
    #[arg(long)]
    auxv: bool,

    /// Show the registers of each thread in hex.
    #[arg(long)]
    regs: bool,
}

impl ViewFlags {
    /// Returns the selected view, or `None` when no view flag was given.
    fn selected(&self) -> Option<View> {
        let flags = [
            (self.tree, View::Tree),
            (self.maps, View::Maps),
            (self.fds, View::Fds),
            (self.stats, View::Stats),
            (self.env, View::Env),
            (self.cmdline, View::Cmdline),
            (self.auxv, View::Auxv),
            (self.regs, View::Regs),
        ];
        flags
            .into_iter()
            .find_map(|(set, view)| set.then_some(view))
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = args
        .key
        .as_deref()
        .map(crate::cmd::key::load_encryption_key)
        .transpose()?;
    let image = stasis_inspect::load_with_key(&args.dir, key.as_ref())
        .with_context(|| format!("cannot inspect {}", args.dir.display()))?;
    if let EncryptionState::Locked { key_id } = &image.encryption {
        if args.view.selected().is_some() || args.html.is_some() || args.dot.is_some() {
            bail!(
                "{} is encrypted with key {key_id}, and without the key only the summary can \
                 be shown; pass --key KEYFILE",
                args.dir.display()
            );
        }
    }
    check_pid(&image, args.pid)?;

    if let Some(path) = &args.html {
        write_file(path, html::report(&image).as_bytes(), "HTML report")?;
    }
    if let Some(path) = &args.dot {
        write_file(path, dot::process_tree(&image).as_bytes(), "process tree")?;
    }

    let files_only = args.html.is_some() || args.dot.is_some();
    let view = match args.view.selected() {
        Some(view) => Some(view),
        None if files_only => None,
        None => Some(View::Summary),
    };
    if let Some(view) = view {
        print_view(&image, view, &args)?;
    }

    if image.is_damaged() {
        Ok(ExitCode::from(EXIT_DAMAGED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn check_pid(image: &LoadedImage, pid: Option<i32>) -> anyhow::Result<()> {
    let Some(pid) = pid else {
        return Ok(());
    };
    if image.process(pid).is_some() {
        return Ok(());
    }
    let pids: Vec<String> = image
        .processes
        .iter()
        .map(|records| records.pid.to_string())
        .collect();
    bail!(
        "process {pid} is not in the image {}, which contains process {}",
        image.dir.display(),
        pids.join(", ")
    )
}

fn print_view(image: &LoadedImage, view: View, args: &Args) -> anyhow::Result<()> {
    let options = Options {
        style: Style {
            colour: !args.json && use_colour(),
        },
        pid: args.pid,
    };
    if args.json {
        let mut line = view::json(image, view, &options);
        line.push('\n');
        write_stdout(line.as_bytes())
    } else {
        write_stdout(view::text(image, view, &options).as_bytes())
    }
}

/// Returns true when stdout is a terminal and NO_COLOR is unset.
pub(crate) fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Writes `bytes` to stdout. When the reader has gone away (`| head`), the
/// process exits with status 0, as command-line filters do.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => Err(error).context("writing to stdout failed"),
    }
}

fn write_file(path: &Path, bytes: &[u8], description: &str) -> anyhow::Result<()> {
    std::fs::write(path, bytes)
        .with_context(|| format!("writing the {description} to {} failed", path.display()))?;
    eprintln!("wrote the {description} to {}", path.display());
    Ok(())
}
