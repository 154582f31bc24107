//! Dump and restore throughput of a process with 1 GiB of written,
//! incompressible memory, next to memcpy on the same machine. The bench
//! also measures what checking the image costs. The restore is timed with
//! its chunk checks and again with them turned off, and a full check of
//! the image (`stasis verify` without a seal) is timed on its own. A second
//! workload is dumped with `--encrypt` and restored with its key, to show
//! what encryption costs.
//!
//! Run as root: `cargo bench -p stasis --bench dump_restore`. The image
//! goes to /dev/shm (tmpfs), so the disk is not measured. Set
//! STASIS_BENCH_MIB to change the size and STASIS_BENCH_RUNS the number of
//! runs (the best run is reported).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stasis_engine::dump::{dump, DumpOptions};
use stasis_engine::restore::{restore, PidNamespaceMode, RestoreOptions};

const GIB: f64 = (1u64 << 30) as f64;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("dump_restore bench skipped: it needs root (ptrace and clone3 with set_tid)");
        return;
    }
    let mib = env_number("STASIS_BENCH_MIB", 1024);
    let runs = env_number("STASIS_BENCH_RUNS", 3);
    let bytes = mib << 20;

    let (hot, fresh) = memcpy_bounds(bytes);
    let key = stasis_image::ImageKey::from_bytes([0x5a; 32]);
    let mut best = Timings::worst();
    let mut best_encrypted = Timings::worst();
    for run in 1..=runs {
        best.keep_best(&dump_and_restore(mib, run, None));
        best_encrypted.keep_best(&dump_and_restore(mib, run, Some(&key)));
    }

    let rate = |seconds: f64| bytes as f64 / GIB / seconds;
    println!("dump_restore: {mib} MiB, best of {runs} runs, image on /dev/shm");
    println!(
        "{:<28} {:>9} {:>9} {:>12} {:>14}",
        "step", "seconds", "GiB/s", "of memcpy", "of fresh copy"
    );
    let row = |name: &str, seconds: f64| {
        println!(
            "{:<28} {:>9.3} {:>9.2} {:>11.0}% {:>13.0}%",
            name,
            seconds,
            rate(seconds),
            100.0 * hot / seconds,
            100.0 * fresh / seconds
        );
    };
    row("memcpy into touched memory", hot);
    row("memcpy into fresh pages", fresh);
    row("dump", best.dump);
    row("restore", best.restore);
    row("restore, chunk checks off", best.restore_unchecked);
    row("check every file (verify)", best.verify);
    row("dump, encrypted", best_encrypted.dump);
    row("restore, encrypted", best_encrypted.restore);
    println!(
        "chunk checks add {:.1}% to restore; a full check is {:.0}% of dump time",
        100.0 * (best.restore - best.restore_unchecked) / best.restore_unchecked,
        100.0 * best.verify / best.dump
    );
    println!(
        "encryption adds {:.1}% to dump and {:.1}% to restore",
        100.0 * (best_encrypted.dump - best.dump) / best.dump,
        100.0 * (best_encrypted.restore - best.restore) / best.restore
    );
}

/// Seconds of each timed step of one run.
struct Timings {
    dump: f64,
    restore: f64,
    restore_unchecked: f64,
    verify: f64,
}

impl Timings {
    fn worst() -> Timings {
        Timings {
            dump: f64::MAX,
            restore: f64::MAX,
            restore_unchecked: f64::MAX,
            verify: f64::MAX,
        }
    }

    /// Keeps, for each step, the shorter time of `self` and `run`.
    fn keep_best(&mut self, run: &Timings) {
        self.dump = self.dump.min(run.dump);
        self.restore = self.restore.min(run.restore);
        self.restore_unchecked = self.restore_unchecked.min(run.restore_unchecked);
        self.verify = self.verify.min(run.verify);
    }
}

/// Restores the image in `dir`, kills and reaps the restored process, and
/// returns the seconds the restore took.
fn timed_restore(dir: &Path, key: Option<&stasis_image::ImageKey>) -> f64 {
    let started = Instant::now();
    let restored = restore(&RestoreOptions {
        dir: dir.to_path_buf(),
        skip_file_checks: true,
        manifest_hash: None,
        pid_namespace: PidNamespaceMode::Never,
        key: key.cloned(),
    })
    .expect("restore");
    let seconds = started.elapsed().as_secs_f64();
    // SAFETY: kill(2) on our own restored child.
    unsafe { libc::kill(restored.pid, libc::SIGKILL) };
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(restored.pid), None);
    seconds
}

/// Times one copy of `bytes` into memory that is already touched, and one
/// into freshly mapped pages that the copy faults in.
fn memcpy_bounds(bytes: usize) -> (f64, f64) {
    let source: Vec<u8> = (0..bytes)
        .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) as u8 ^ (i >> 12) as u8)
        .collect();
    let mut touched = vec![1u8; bytes];
    let started = Instant::now();
    touched.copy_from_slice(&source);
    let hot = started.elapsed().as_secs_f64();
    std::hint::black_box(&touched);
    drop(touched);

    let mut fresh: Vec<u8> = Vec::with_capacity(bytes);
    let started = Instant::now();
    // SAFETY: the capacity is `bytes` and the copy initializes every byte
    // before the length is set.
    unsafe {
        std::ptr::copy_nonoverlapping(source.as_ptr(), fresh.as_mut_ptr(), bytes);
        fresh.set_len(bytes);
    }
    let fresh_s = started.elapsed().as_secs_f64();
    std::hint::black_box(&fresh);
    (hot, fresh_s)
}

/// Dumps and restores one workload, encrypted with `key` if given, and
/// times each step.
fn dump_and_restore(mib: usize, run: usize, key: Option<&stasis_image::ImageKey>) -> Timings {
    let dir = std::env::temp_dir().join(format!("stasis-bench-{}-{run}", std::process::id()));
    let shm = Path::new("/dev/shm").join(format!("stasis-bench-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let log = dir.join("workload.log");

    let mut workload = Command::new(env!("CARGO_BIN_EXE_stasis"))
        .args([
            "demo-workload",
            "--random",
            "--mebibytes",
            &mib.to_string(),
            "--log",
        ])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the workload");
    let pid = workload.id() as i32;
    let started = Instant::now();
    while std::fs::read_to_string(&log)
        .map(|t| t.is_empty())
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "workload did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let options = DumpOptions {
        pid,
        dir: shm.clone(),
        leave_running: false,
        shell_job: false,
        encryption_key: key.cloned(),
    };
    let started = Instant::now();
    let dumped = dump(&options, &mut |_| {});
    let dump_s = started.elapsed().as_secs_f64();
    let _ = workload.kill();
    let _ = workload.wait();
    let dumped = dumped.expect("dump");
    assert!(
        dumped.bytes_stored >= (mib as u64) << 20,
        "dump stored less than the workload's buffer"
    );

    let restore_s = timed_restore(&shm, key);
    stasis_image::bench::turn_chunk_checks_off(true);
    let restore_unchecked_s = timed_restore(&shm, key);
    stasis_image::bench::turn_chunk_checks_off(false);

    let started = Instant::now();
    stasis_image::Image::open(&shm)
        .and_then(|image| image.verify_all())
        .expect("verify the image");
    let verify_s = started.elapsed().as_secs_f64();

    let _ = std::fs::remove_dir_all(&shm);
    let _ = std::fs::remove_dir_all(&dir);
    let label = if key.is_some() { " encrypted" } else { "" };
    eprintln!(
        "run {run}{label}: dump {dump_s:.3} s, restore {restore_s:.3} s, \
         unchecked {restore_unchecked_s:.3} s, verify {verify_s:.3} s"
    );
    Timings {
        dump: dump_s,
        restore: restore_s,
        restore_unchecked: restore_unchecked_s,
        verify: verify_s,
    }
}
