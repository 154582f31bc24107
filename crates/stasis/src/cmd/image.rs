//! `stasis image decode` and `stasis image encode`: convert record files
//! to JSON and back, for reading and editing images by hand.

use std::fs::{self, OpenOptions};
use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use stasis_image::format::MAX_RECORD_SIZE;
use stasis_image::{decode_record_file, encode_record_json, RecordKind};

use super::inspect::write_stdout;

/// Permissions of a written record file: records hold process state, so
/// only the owner may read them, as in images that `stasis dump` writes.
const RECORD_FILE_MODE: u32 = 0o600;

/// Convert image record files to JSON and back.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(clap::Subcommand)]
enum ImageCommand {
    /// Print a record file (manifest, process, memory map, fd table or IPC
    /// namespace) as pretty JSON.
    Decode {
        /// The record file, for example IMAGE/process-1234.
        file: PathBuf,

        /// Decode even when the header checksum does not match the payload,
        /// to look at a damaged file. The output is then unverified.
        #[arg(long)]
        ignore_checksum: bool,
    },

    /// Read the JSON of a record on stdin and write the record file.
    ///
    /// The manifest lists each file's size and hash, so a changed file must
    /// be listed again before the image can be read.
    Encode {
        /// Record kind of the JSON.
        #[arg(value_enum)]
        kind: KindArg,

        /// File to write instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// The record kinds that have a JSON form.
#[derive(Clone, Copy, clap::ValueEnum)]
enum KindArg {
    Manifest,
    Process,
    #[value(alias = "mm")]
    MemoryMap,
    #[value(alias = "fds")]
    FdTable,
    #[value(alias = "ipc")]
    IpcNamespace,
}

impl KindArg {
    fn kind(self) -> RecordKind {
        match self {
            KindArg::Manifest => RecordKind::Manifest,
            KindArg::Process => RecordKind::Process,
            KindArg::MemoryMap => RecordKind::MemoryMap,
            KindArg::FdTable => RecordKind::FdTable,
            KindArg::IpcNamespace => RecordKind::IpcNamespace,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Decode {
            file,
            ignore_checksum,
        } => decode(&file, ignore_checksum),
        ImageCommand::Encode { kind, output } => encode(kind.kind(), output.as_deref()),
    }
}

fn decode(path: &Path, ignore_checksum: bool) -> anyhow::Result<ExitCode> {
    let bytes = read_record_file(path)?;
    let decoded = if ignore_checksum {
        stasis_inspect::decode_ignoring_checksum(&bytes, path)
    } else {
        decode_record_file(&bytes, path)
    };
    let decoded = decoded.map_err(|error| match encrypted_image_of(path) {
        Some(key_id) => anyhow::anyhow!(
            "{} belongs to an image encrypted with key {key_id}, and `stasis image decode` \
             reads records in clear only; show its contents with `stasis inspect DIR --key \
             KEYFILE --json` instead",
            path.display()
        ),
        None => anyhow::Error::new(error),
    });
    let (kind, value) = decoded.with_context(|| format!("cannot decode {}", path.display()))?;

    let mut text = stasis_inspect::pretty_record_json(kind, value)
        .with_context(|| format!("cannot show {} as JSON", path.display()))?;
    text.push('\n');
    write_stdout(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Returns the key ID of the encrypted image that the file at `path` is
/// part of, found in the manifest next to it, or None.
fn encrypted_image_of(path: &Path) -> Option<String> {
    let dir = path.parent()?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let image = stasis_image::Image::open(dir).ok()?;
    image
        .manifest()
        .encryption
        .as_ref()
        .map(|encryption| encryption.key_id.clone())
}

/// Reads a regular file of at most the size limit for record files.
fn read_record_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !metadata.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if metadata.len() > MAX_RECORD_SIZE {
        bail!(
            "{} has {} bytes, more than the {MAX_RECORD_SIZE}-byte limit for record files",
            path.display(),
            metadata.len()
        );
    }
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn encode(kind: RecordKind, output: Option<&Path>) -> anyhow::Result<ExitCode> {
    if output.is_none() && std::io::stdout().is_terminal() {
        bail!("stdout is a terminal, which cannot take a binary record file; redirect stdout or use --output FILE");
    }

    let mut text = String::new();
    std::io::stdin()
        .take(MAX_RECORD_SIZE * 4)
        .read_to_string(&mut text)
        .context("reading the JSON from stdin failed")?;
    let value: serde_json::Value =
        serde_json::from_str(&text).context("stdin is not valid JSON")?;
    let bytes = encode_record_json(kind, &value)?;

    match output {
        Some(path) => write_record_file(path, &bytes)?,
        None => write_stdout(&bytes)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_record_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(RECORD_FILE_MODE)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {} failed", path.display()))
}
