//! `stasis demo`: dump and restore a built-in sample workload, to show what
//! stasis does on a fresh machine.
//!
//! The workload is this binary started as `stasis demo-workload`: a
//! single-threaded counter that fills a buffer, checks it on every tick and
//! appends each tick to a log file. The demo dumps it, restores it from the
//! image and shows that the count carries on from where it was frozen.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use stasis_engine::dump::{dump, DumpOptions};
use stasis_engine::restore::{restore, PidNamespaceMode, RestoreOptions};

use crate::output::human_bytes;

/// Dump and restore a built-in sample process.
#[derive(clap::Args)]
pub struct Args {
    /// Directory for the image and the workload's log (default: a new
    /// directory under /tmp, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct WorkloadArgs {
    /// File that each tick is appended to.
    #[arg(long)]
    log: PathBuf,
    /// Size of the buffer to fill and check, in MiB.
    #[arg(long, default_value_t = 64)]
    mebibytes: usize,
    /// Fill the buffer with pseudo-random words (incompressible data, for
    /// benchmarks) and check only that the checksum stays stable.
    #[arg(long)]
    random: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (dir, remove_after) = match args.dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("stasis-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let result = run_in(&dir);
    if remove_after {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run_in(dir: &Path) -> anyhow::Result<ExitCode> {
    let log = dir.join("workload.log");
    let image = dir.join("image");
    let exe = std::env::current_exe().context("failed to find the stasis executable")?;

    let mut workload = Command::new(exe);
    workload
        .args(["demo-workload", "--log"])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut workload = workload
        .spawn()
        .context("failed to start the demo workload")?;
    let pid = workload.id() as i32;
    println!(
        "started workload pid {pid}, appending ticks to {}",
        log.display()
    );

    let before = wait_for_tick(&log, 5, Duration::from_secs(10))?;
    println!("workload reached tick {before}");

    let options = DumpOptions {
        pid,
        dir: image.clone(),
        leave_running: false,
        shell_job: false,
        encryption_key: None,
    };
    let summary = match dump(&options, &mut |_| {}) {
        Ok(summary) => summary,
        Err(err) => {
            let _ = workload.kill();
            let _ = workload.wait();
            return Err(err).context("dump failed");
        }
    };
    // The dump killed the workload; collect its exit status so the PID is free.
    let _ = workload.wait();
    let frozen_at = last_tick(&log)?;
    println!(
        "dumped at tick {frozen_at}: {} of memory in {:.1} ms, image in {}",
        human_bytes(summary.bytes_stored),
        summary.total_ms,
        image.display()
    );

    let restored = restore(&RestoreOptions {
        dir: image,
        skip_file_checks: false,
        manifest_hash: None,
        pid_namespace: PidNamespaceMode::Never,
        key: None,
    })
    .context("restore failed")?;
    println!(
        "restored pid {} in {:.1} ms",
        restored.pid, restored.total_ms
    );

    let result = wait_for_tick(&log, frozen_at + 5, Duration::from_secs(10));
    // SAFETY: kill(2) on the PID of our own restored child.
    unsafe { libc::kill(restored.pid, libc::SIGKILL) };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(restored.pid), None);
    let after = result?;

    let ticks = ticks(&log)?;
    let in_order = ticks.windows(2).all(|pair| pair[1] == pair[0] + 1);
    if !in_order {
        bail!(
            "the workload's log has a gap or a repeated tick: {:?}",
            ticks
        );
    }
    println!("restored workload went on from tick {} to {after}; every tick from 1 to {after} appears once, in order", frozen_at + 1);
    Ok(ExitCode::SUCCESS)
}

fn ticks(log: &Path) -> anyhow::Result<Vec<u64>> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("failed to read {}", log.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1)?.parse().ok())
        .collect())
}

fn last_tick(log: &Path) -> anyhow::Result<u64> {
    Ok(ticks(log)?.last().copied().unwrap_or(0))
}

fn wait_for_tick(log: &Path, tick: u64, timeout: Duration) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let last = if log.exists() { last_tick(log)? } else { 0 };
        if last >= tick {
            return Ok(last);
        }
        if started.elapsed() > timeout {
            bail!("the workload did not reach tick {tick} within {timeout:?} (last tick: {last})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the demo workload: fills a buffer, then on every tick checks it, updates
/// a running checksum and appends `tick N checksum C` to the log.
pub fn run_workload(args: WorkloadArgs) -> anyhow::Result<ExitCode> {
    // fds inherited from the caller (pipes, sockets) would make the
    // workload one that stasis cannot dump; only 0, 1 and 2 are kept.
    // SAFETY: close_range takes fd numbers only; nothing in this process
    // uses fds above 2 at this point.
    unsafe { libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0) };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("failed to open {}", args.log.display()))?;
    let words = args.mebibytes * (1 << 20) / 8;
    let buffer: Vec<u64> = (0..words as u64).map(|i| word_at(i, args.random)).collect();
    let mut checksum = 0u64;
    for tick in 1u64.. {
        let sample = (tick as usize * 7919) % words;
        if buffer[sample] != word_at(sample as u64, args.random) {
            bail!("buffer word {sample} is corrupt at tick {tick}");
        }
        checksum = checksum.rotate_left(5) ^ buffer[sample];
        writeln!(log, "tick {tick} checksum {checksum:016x}").context("failed to write the log")?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(ExitCode::SUCCESS)
}

/// Returns the expected buffer word at `index`: a multiplicative hash, or with
/// `random` a SplitMix64 output, whose bytes do not compress.
fn word_at(index: u64, random: bool) -> u64 {
    let mut z = index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    if random {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    z
}
