//! Dump and restore times of a tree of 100 processes and of a process with
//! 64 threads, where per-process and per-thread costs dominate rather than
//! memory copies.
//!
//! Run as root: `cargo bench -p stasis --bench tree_threads`. Images go to
//! /dev/shm. STASIS_BENCH_RUNS sets the number of runs (the best is kept).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stasis_engine::dump::{dump, DumpOptions};
use stasis_engine::restore::{restore, PidNamespaceMode, RestoreOptions};

/// A shell with 99 sleeping children: 100 processes.
const TREE_SCRIPT: &str = "for i in $(seq 99); do sleep 1000 & done; wait";
/// Python with 63 sleeping threads besides the main one: 64 threads.
const THREADS_SCRIPT: &str = "import threading, time\n\
    threads = [threading.Thread(target=time.sleep, args=(1000,), daemon=True) for _ in range(63)]\n\
    [t.start() for t in threads]\n\
    time.sleep(1000)\n";

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("tree_threads bench skipped: it needs root (ptrace and clone3 with set_tid)");
        return;
    }
    // Orphans of killed trees are reparented here and reaped at once, so
    // their PIDs are free for the next restore.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let runs: usize = std::env::var("STASIS_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);

    println!("tree_threads: best of {runs} runs, image on /dev/shm");
    println!("{:<34} {:>10} {:>12}", "workload", "dump ms", "restore ms");
    let cases: [(&str, Command, usize); 2] = [
        ("tree of 100 processes", shell(TREE_SCRIPT), 100),
        ("process with 64 threads", python(THREADS_SCRIPT), 64),
    ];
    for (name, mut command, expected) in cases {
        let mut best = (f64::MAX, f64::MAX);
        for run in 1..=runs {
            let (dump_ms, restore_ms) = measure(&mut command, expected, run);
            best = (best.0.min(dump_ms), best.1.min(restore_ms));
        }
        println!("{name:<34} {:>10.1} {:>12.1}", best.0, best.1);
    }
}

fn shell(script: &str) -> Command {
    let mut command = Command::new("bash");
    command.arg("-c").arg(script);
    command
}

fn python(script: &str) -> Command {
    let mut command = Command::new("python3");
    command.arg("-c").arg(script);
    command
}

/// Counts the processes of the tree under `pid` and the threads of each.
fn count_tasks(pid: i32) -> (usize, usize) {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    let children: Vec<i32> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut total = (1, threads);
    for child in children {
        let (processes, child_threads) = count_tasks(child);
        total = (total.0 + processes, total.1.max(child_threads));
    }
    total
}

fn measure(command: &mut Command, expected: usize, run: usize) -> (f64, f64) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: close_range is async-signal-safe and takes fd numbers only.
    // Fds inherited from the caller (a pipe to a terminal multiplexer, say)
    // would tie the workload to a process outside the tree.
    unsafe {
        command.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3, u32::MAX, 0);
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start the workload");
    let pid = child.id() as i32;
    let started = Instant::now();
    loop {
        let (processes, threads) = count_tasks(pid);
        if processes.max(threads) >= expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workload did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let dir = PathBuf::from(format!(
        "/dev/shm/stasis-bench-tree-{}-{run}",
        std::process::id()
    ));
    let options = DumpOptions {
        pid,
        dir: dir.clone(),
        leave_running: false,
        shell_job: false,
        encryption_key: None,
    };
    let started = Instant::now();
    let dumped = dump(&options, &mut |_| {});
    let dump_ms = started.elapsed().as_secs_f64() * 1e3;
    let _ = child.kill();
    let _ = child.wait();
    dumped.expect("dump");
    reap_all();

    let started = Instant::now();
    let restored = restore(&RestoreOptions {
        dir: dir.clone(),
        skip_file_checks: true,
        manifest_hash: None,
        pid_namespace: PidNamespaceMode::Never,
        key: None,
    })
    .expect("restore");
    let restore_ms = started.elapsed().as_secs_f64() * 1e3;

    kill_image_processes(&dir);
    // SAFETY: kill(2) on the restored root, our child.
    unsafe { libc::kill(restored.pid, libc::SIGKILL) };
    reap_all();
    let _ = std::fs::remove_dir_all(&dir);
    (dump_ms, restore_ms)
}

/// Kills every process that the image lists (the restored tree).
fn kill_image_processes(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("list the image").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("process-")
            .and_then(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill(2) on a process that this bench restored.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Waits for every child and adopted orphan until none is left.
fn reap_all() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid status pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid <= 0 {
            return;
        }
    }
}
