//! Dump and restore of real workloads: memtest (a C program that checks its
//! own memory, registers and files), primes.py and `sleep`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Heap size of the memtest run that checks a full-size dump.
const MEMTEST_MIB: u64 = 256;
/// Heap size of the memtest runs that test something other than size.
const MEMTEST_SMALL_MIB: u64 = 64;
const PAGE_SIZE: u64 = 4096;

/// primes.py counts the primes up to this limit. One measured run took 3.7 s
/// (Python 3.11 on an x86-64 machine with 2 cores).
const PRIMES_LIMIT: u64 = 3_000_000;
/// The number of primes up to 3,000,000.
const PRIMES_COUNT: u64 = 216_816;
const PRIMES_TIMEOUT: Duration = Duration::from_secs(180);

/// One line of memtest's status file.
#[derive(Debug, Clone, Copy)]
struct MemtestStatus {
    iteration: u64,
    signals: u64,
    first_signal_iteration: u64,
}

/// A running memtest and its state directory.
struct Memtest {
    pid: Pid,
    label: String,
    dir: PathBuf,
}

impl Memtest {
    /// Starts memtest with a heap of `mib` MiB and waits until it has written
    /// its ready file and finished its first iteration.
    fn start(env: &TestEnv, label: &str, mib: u64) -> Memtest {
        let dir = env.make_dir(&format!("{label}-state"));
        let mut command = Command::new(workload_binary("memtest"));
        command.arg("-m").arg(mib.to_string()).arg(&dir);
        let pid = env.spawn(label, &mut command);
        let memtest = Memtest {
            pid,
            label: label.to_string(),
            dir,
        };
        wait_until("memtest to write its ready file", WAIT_TIMEOUT, || {
            memtest.assert_alive(env);
            memtest.dir.join("ready").exists().then_some(())
        });
        memtest.wait_for_iteration(env, 1);
        memtest
    }

    /// Reads the status file, or returns `None` if it has no complete line yet.
    fn status(&self) -> Option<MemtestStatus> {
        parse_memtest_status(&read_or_empty(&self.dir.join("status")))
    }

    /// Panics with memtest's output if it has exited.
    fn assert_alive(&self, env: &TestEnv) {
        assert!(
            is_running(self.pid),
            "memtest {} is not running\n--- stdout ---\n{}--- stderr ---\n{}",
            self.pid,
            env.stdout_of(&self.label),
            env.stderr_of(&self.label)
        );
    }

    /// Waits until memtest has finished iteration `minimum`.
    fn wait_for_iteration(&self, env: &TestEnv, minimum: u64) -> MemtestStatus {
        wait_until(
            &format!("memtest {} to reach iteration {minimum}", self.pid),
            WAIT_TIMEOUT,
            || {
                self.assert_alive(env);
                self.status().filter(|status| status.iteration >= minimum)
            },
        )
    }

    /// Creates the finish file, which makes memtest run its final checks and exit.
    fn finish(&self) {
        let path = self.dir.join("finish");
        fs::write(&path, "")
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
    }

    /// Tells memtest to finish, waits for it, and checks that every self-check
    /// passed. Returns its stdout.
    fn finish_and_check(&self, env: &TestEnv) -> String {
        self.finish();
        let exit = wait_exit(self.pid, WAIT_TIMEOUT);
        let stdout = env.stdout_of(&self.label);
        let stderr = env.stderr_of(&self.label);
        assert_eq!(
            exit,
            Exit::Code(0),
            "memtest {} failed its self-check\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
            self.pid
        );
        assert!(
            stdout.contains("memtest: PASS"),
            "memtest {} exited 0 without a PASS line\n--- stdout ---\n{stdout}",
            self.pid
        );
        stdout
    }
}

/// Parses "iteration N signals S first_signal_iteration F checksum X".
fn parse_memtest_status(text: &str) -> Option<MemtestStatus> {
    let line = text.lines().next()?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let value_after = |key: &str| -> Option<u64> {
        let position = words.iter().position(|word| *word == key)?;
        words.get(position + 1)?.parse().ok()
    };
    Some(MemtestStatus {
        iteration: value_after("iteration")?,
        signals: value_after("signals")?,
        first_signal_iteration: value_after("first_signal_iteration")?,
    })
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn memtest_restore_passes_self_check() {
    let Some(env) = TestEnv::new("memtest_restore_passes_self_check") else {
        return;
    };
    if !cpu_has_avx2() {
        eprintln!("skipping memtest_restore_passes_self_check: memtest needs a CPU with AVX2");
        return;
    }
    let memtest = Memtest::start(&env, "memtest", MEMTEST_MIB);
    memtest.wait_for_iteration(&env, 20);

    let image = env.path("image");
    let dump = env.dump_and_reap(memtest.pid, &image);
    assert_eq!(
        dump.json_u64("pid"),
        memtest.pid.as_raw() as u64,
        "dump summary names another PID:\n{dump}"
    );
    let heap_pages = MEMTEST_MIB * 1024 * 1024 / PAGE_SIZE;
    let pages_stored = dump.json_u64("pages_stored");
    assert!(
        pages_stored >= heap_pages,
        "dump stored {pages_stored} pages, fewer than the {heap_pages} pages of memtest's heap:\n{dump}"
    );
    let bytes_stored = dump.json_u64("bytes_stored");
    assert!(
        bytes_stored >= heap_pages * PAGE_SIZE,
        "dump stored {bytes_stored} bytes, less than memtest's {MEMTEST_MIB} MiB heap, \
         whose pattern does not compress:\n{dump}"
    );
    let at_dump = memtest
        .status()
        .expect("memtest wrote a status line before the dump");

    let restored = env.restore_detached(&image, memtest.pid, &[]);
    let resumed = memtest.wait_for_iteration(&env, at_dump.iteration + 5);
    assert_eq!(
        resumed.signals, 0,
        "restored memtest counted signals before any was sent: {resumed:?}"
    );

    send_signal(restored, Signal::SIGUSR1);
    let signalled = wait_until("restored memtest to count SIGUSR1", WAIT_TIMEOUT, || {
        memtest.assert_alive(&env);
        memtest.status().filter(|status| status.signals >= 1)
    });
    assert_eq!(
        signalled.signals, 1,
        "memtest counted more SIGUSR1 than were sent: {signalled:?}"
    );
    assert!(
        signalled.first_signal_iteration > at_dump.iteration,
        "memtest saw SIGUSR1 in iteration {}, but the dump was taken after iteration {}",
        signalled.first_signal_iteration,
        at_dump.iteration
    );

    let stdout = memtest.finish_and_check(&env);
    assert!(
        stdout.contains(" signals=1 "),
        "memtest result does not show 1 signal:\n{stdout}"
    );
}

#[test]
fn restore_stops_at_changed_chunk() {
    let Some(env) = TestEnv::new("restore_stops_at_changed_chunk") else {
        return;
    };
    if !cpu_has_avx2() {
        eprintln!("skipping restore_stops_at_changed_chunk: memtest needs a CPU with AVX2");
        return;
    }
    let memtest = Memtest::start(&env, "memtest", 16);
    let image = env.path("image");
    env.dump_and_reap(memtest.pid, &image);
    // The state directory, an argument of memtest, is in the saved stack
    // of a clear image (an encrypted one must not show it).
    let marker = memtest
        .dir
        .to_str()
        .expect("UTF-8 path")
        .as_bytes()
        .to_vec();
    let pages = fs::read(image.join(format!("pages-{}", memtest.pid))).expect("read pages");
    assert!(
        pages
            .windows(marker.len())
            .any(|window| window == marker.as_slice()),
        "the clear pages file lacks memtest's argument"
    );

    // Chunks 0 to 8 of the pages file are intact and are copied into the
    // new process before the restore reads chunk 9.
    let damaged = env.path("damaged");
    copy_dir(&image, &damaged);
    let pages = format!("pages-{}", memtest.pid);
    let path = damaged.join(&pages);
    let mut bytes = fs::read(&path).expect("read pages file");
    bytes[4096 + (9 << 20) + 123] ^= 0x40;
    fs::write(&path, &bytes).expect("write pages file");

    let run = env.stasis(&["restore", "-D", path_text(&damaged), "-d"]);
    env.track_if_child(memtest.pid);
    assert!(
        !run.success(),
        "restore of a changed pages file succeeded:\n{run}"
    );
    for part in [pages.as_str(), "chunk 9 of", "bytes 9437184..10485760"] {
        assert!(
            run.stderr.contains(part),
            "restore error does not contain {part:?}:\n{run}"
        );
    }
    assert!(
        wait_pid_free(memtest.pid, WAIT_TIMEOUT),
        "process {} is left over after the failed restore",
        memtest.pid
    );

    // The failed restore left the PID free and the intact image restores.
    env.restore_detached(&image, memtest.pid, &[]);
    let at_restore = memtest.status().expect("status line before the dump");
    memtest.wait_for_iteration(&env, at_restore.iteration + 2);
    memtest.finish_and_check(&env);
}

#[test]
fn encrypted_image_restores_only_with_its_key() {
    let Some(env) = TestEnv::new("encrypted_image_restores_only_with_its_key") else {
        return;
    };
    if !cpu_has_avx2() {
        eprintln!("skipping encrypted_image_restores_only_with_its_key: memtest needs AVX2");
        return;
    }
    let key = env.path("image.key");
    let other_key = env.path("other.key");
    let signing_key = env.path("signing.key");
    for (path, kind) in [
        (&key, "--encryption"),
        (&other_key, "--encryption"),
        (&signing_key, ""),
    ] {
        let mut args = vec!["key", "generate", "--out", path_text(path), "--json"];
        if !kind.is_empty() {
            args.push(kind);
        }
        let run = env.stasis(&args);
        assert!(run.success(), "key generation failed:\n{run}");
    }
    let generated = env.stasis(&[
        "key",
        "generate",
        "--encryption",
        "--json",
        "--out",
        path_text(&env.path("third.key")),
    ]);
    assert_eq!(
        generated.json()["key_id"].as_str().map(str::len),
        Some(16),
        "{generated}"
    );

    let memtest = Memtest::start(&env, "memtest", 16);
    let image = env.path("image");
    env.dump_and_reap_with(memtest.pid, &image, &["--encrypt", path_text(&key)]);

    // The state directory is an argument of memtest, so a clear image has
    // it in the saved stack. An encrypted image must not show it anywhere.
    let marker = memtest
        .dir
        .to_str()
        .expect("UTF-8 path")
        .as_bytes()
        .to_vec();
    for relative in list_files(&image) {
        let bytes = fs::read(image.join(&relative)).expect("read image file");
        assert!(
            !bytes
                .windows(marker.len())
                .any(|window| window == marker.as_slice()),
            "{} holds memtest's argument in clear",
            relative.display()
        );
    }

    let image_text = path_text(&image);
    let run = env.stasis(&["restore", "-D", image_text, "-d", "--no-pid-ns"]);
    assert_failed_with(&run, &["is encrypted with key", "--key"]);
    let run = env.stasis(&[
        "restore",
        "-D",
        image_text,
        "-d",
        "--no-pid-ns",
        "--key",
        path_text(&other_key),
    ]);
    assert_failed_with(&run, &["but the key given has ID"]);
    let run = env.stasis(&[
        "restore",
        "-D",
        image_text,
        "-d",
        "--no-pid-ns",
        "--key",
        path_text(&signing_key),
    ]);
    assert_failed_with(&run, &["signing key", "--encryption"]);
    assert!(
        wait_pid_free(memtest.pid, WAIT_TIMEOUT),
        "a rejected restore left process {}",
        memtest.pid
    );

    let run = env.stasis(&["inspect", image_text]);
    assert!(run.success(), "inspect without the key failed:\n{run}");
    assert!(run.stdout.contains("records encrypted"), "{run}");
    assert!(!run.stdout.contains("memtest"), "{run}");
    let run = env.stasis(&["inspect", image_text, "--tree"]);
    assert_failed_with(&run, &["pass --key KEYFILE"]);
    let run = env.stasis(&["inspect", image_text, "--key", path_text(&key)]);
    assert!(run.success(), "inspect with the key failed:\n{run}");
    assert!(run.stdout.contains("decrypted with the key given"), "{run}");
    assert!(run.stdout.contains("memtest"), "{run}");

    let run = env.stasis(&["diff", image_text, image_text]);
    assert_failed_with(&run, &["cannot be compared without it", "--key"]);
    let run = env.stasis(&["diff", image_text, image_text, "--key", path_text(&key)]);
    assert!(run.success(), "diff with the key failed:\n{run}");
    assert!(run.stdout.contains("no differences"), "{run}");

    // Sealed and encrypted: verify needs no key, restore needs both.
    let run = env.stasis(&["seal", image_text, "--key", path_text(&signing_key)]);
    assert!(run.success(), "seal failed:\n{run}");
    let public = format!("{}.pub", path_text(&signing_key));
    let run = env.stasis(&["verify", image_text, "--pubkey", &public]);
    assert!(run.success(), "verify failed:\n{run}");
    let at_dump = memtest.status().expect("status line before the dump");
    env.restore_detached(
        &image,
        memtest.pid,
        &[
            "--require-seal",
            "--pubkey",
            &public,
            "--key",
            path_text(&key),
        ],
    );
    memtest.wait_for_iteration(&env, at_dump.iteration + 2);
    memtest.finish_and_check(&env);
}

#[test]
fn leave_running_keeps_original_going() {
    let Some(env) = TestEnv::new("leave_running_keeps_original_going") else {
        return;
    };
    if !cpu_has_avx2() {
        eprintln!("skipping leave_running_keeps_original_going: memtest needs a CPU with AVX2");
        return;
    }
    let memtest = Memtest::start(&env, "memtest", MEMTEST_SMALL_MIB);
    let before_dump = memtest.wait_for_iteration(&env, 20);

    let image = env.path("image");
    env.dump(memtest.pid, &image, &["--leave-running"]);
    let after_dump = memtest.status().expect("memtest has a status line");

    assert!(
        is_running(memtest.pid),
        "memtest {} stopped running after --leave-running",
        memtest.pid
    );
    let state = proc_state(memtest.pid);
    assert!(
        !matches!(state, Some('T') | Some('t')),
        "memtest {} is left stopped (state {state:?}) after --leave-running",
        memtest.pid
    );
    let tracer = proc_status_value(memtest.pid, "TracerPid");
    assert_eq!(
        tracer.as_deref(),
        Some("0"),
        "memtest {} is still traced after the dump",
        memtest.pid
    );
    let progressed = memtest.wait_for_iteration(&env, after_dump.iteration + 100);

    send_signal(memtest.pid, Signal::SIGKILL);
    let exit = wait_exit(memtest.pid, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Signal(Signal::SIGKILL),
        "original memtest ended in another way"
    );
    let last_original = memtest.status().expect("memtest has a status line");
    assert!(
        last_original.iteration >= progressed.iteration,
        "status file went back from iteration {} to {} while the original ran",
        progressed.iteration,
        last_original.iteration
    );

    // The original changed the status and log files after the dump, so the
    // restore must accept changed files. The restored process counts SIGUSR1
    // in its first iterations, so the iteration in which it sees the signal
    // shows where it continued from.
    let restored = env.restore_detached(&image, memtest.pid, &["--skip-file-checks"]);
    send_signal(restored, Signal::SIGUSR1);
    let signalled = wait_until("restored memtest to count SIGUSR1", WAIT_TIMEOUT, || {
        memtest.assert_alive(&env);
        memtest.status().filter(|status| status.signals >= 1)
    });
    let resumed_at = signalled.first_signal_iteration;
    assert!(
        resumed_at > before_dump.iteration,
        "restored memtest saw SIGUSR1 in iteration {resumed_at}, but it had passed iteration {} \
         before the dump",
        before_dump.iteration
    );
    assert!(
        resumed_at < last_original.iteration,
        "restored memtest saw SIGUSR1 in iteration {resumed_at}, not before iteration {} that the \
         original reached after the dump, so it did not continue from the dump",
        last_original.iteration
    );

    memtest.finish_and_check(&env);
}

#[test]
fn primes_restore_matches_uninterrupted_run() {
    let Some(env) = TestEnv::new("primes_restore_matches_uninterrupted_run") else {
        return;
    };
    let script = workload_script("primes.py");
    let limit = PRIMES_LIMIT.to_string();

    let reference_result = env.path("reference.result");
    let mut reference_command = Command::new("python3");
    reference_command
        .arg(&script)
        .arg(&limit)
        .arg(env.path("reference.progress"))
        .arg(&reference_result);
    let reference = env.spawn("primes-reference", &mut reference_command);
    let reference_exit = wait_exit(reference, PRIMES_TIMEOUT);
    assert_eq!(
        reference_exit,
        Exit::Code(0),
        "uninterrupted primes.py failed:\n{}",
        env.stderr_of("primes-reference")
    );
    let expected = read_or_empty(&reference_result);
    assert!(
        expected.contains(&format!(" count={PRIMES_COUNT} ")),
        "uninterrupted primes.py found another number of primes than {PRIMES_COUNT}: {expected}"
    );

    let progress = env.path("primes.progress");
    let result = env.path("primes.result");
    let mut command = Command::new("python3");
    command.arg(&script).arg(&limit).arg(&progress).arg(&result);
    let pid = env.spawn("primes", &mut command);
    let checked_before_dump = wait_until(
        "primes.py to check a third of the numbers",
        WAIT_TIMEOUT,
        || {
            assert!(
                is_running(pid),
                "primes.py exited early:\n{}",
                env.stderr_of("primes")
            );
            let checked = parse_primes_checked(&read_or_empty(&progress))?;
            (checked >= PRIMES_LIMIT / 3).then_some(checked)
        },
    );

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let checked_at_dump = parse_primes_checked(&read_or_empty(&progress)).expect("progress line");
    assert!(
        checked_at_dump < PRIMES_LIMIT,
        "primes.py had checked all {PRIMES_LIMIT} numbers before the dump, so the test proves nothing"
    );
    assert!(
        checked_at_dump >= checked_before_dump,
        "progress went back from {checked_before_dump} to {checked_at_dump} numbers checked"
    );
    assert!(
        !result.exists(),
        "primes.py wrote its result before the dump"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, PRIMES_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored primes.py failed:\n{}",
        env.stderr_of("primes")
    );
    let actual = read_or_empty(&result);
    assert_eq!(
        actual, expected,
        "restored primes.py computed another result than an uninterrupted run"
    );
}

/// Parses N from primes.py's progress line "checked N of LIMIT primes C".
fn parse_primes_checked(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    (words.next()? == "checked").then_some(())?;
    words.next()?.parse().ok()
}

#[test]
fn restore_attached_exits_with_signal_status() {
    let Some(env) = TestEnv::new("restore_attached_exits_with_signal_status") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    env.dump_and_reap(pid, &image);

    // The image stays valid after a restore, so each signal restores it again.
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let restore = env.spawn_stasis(&["restore", "-D", path_text(&image)]);
        let restore_pid = restore.pid;
        let mut tracked = false;
        let sleeping = wait_until(
            "restored sleep to block in its sleep system call",
            WAIT_TIMEOUT,
            || {
                if !is_running(restore_pid) {
                    return Some(false);
                }
                // Tracked as soon as it exists, so cleanup kills it even if the wait times out.
                if !tracked && proc_parent(pid) == Some(restore_pid) {
                    env.track(pid);
                    tracked = true;
                }
                let syscall = proc_syscall(pid)?;
                (proc_comm(pid)? == "sleep" && SLEEP_SYSCALLS.contains(&syscall)).then_some(true)
            },
        );
        if !sleeping {
            let run = env.wait_stasis(restore, STASIS_TIMEOUT);
            panic!("`stasis restore` exited before the restored sleep ran:\n{run}");
        }
        assert_eq!(
            proc_parent(pid),
            Some(restore_pid),
            "restored sleep {pid} should be a child of `stasis restore` ({restore_pid})"
        );

        send_signal(pid, signal);
        let run = env.wait_stasis(restore, WAIT_TIMEOUT);
        assert_eq!(
            run.exit,
            Exit::Code(128 + signal as i32),
            "`stasis restore` should exit with 128 + {signal} when the restored process gets it:\n{run}"
        );
        assert!(
            wait_pid_free(pid, WAIT_TIMEOUT),
            "PID {pid} is still in use after {signal}"
        );
    }
}

#[test]
fn restore_detached_prints_pid() {
    let Some(env) = TestEnv::new("restore_detached_prints_pid") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    env.dump_and_reap(pid, &image);

    let run = env.stasis(&["restore", "-D", path_text(&image), "-d"]);
    env.track_if_child(pid);
    assert!(run.success(), "restore -d failed:\n{run}");
    assert!(
        contains_number(&run.stdout, pid.as_raw().into()),
        "restore -d did not print PID {pid}:\n{run}"
    );
    wait_until_sleeping(pid);
    let test_pid = Pid::from_raw(std::process::id() as i32);
    assert_eq!(
        proc_parent(pid),
        Some(test_pid),
        "restored sleep {pid} should be reparented to the test process, the nearest subreaper"
    );

    send_signal(pid, Signal::SIGKILL);
    let exit = wait_exit(pid, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Signal(Signal::SIGKILL),
        "restored sleep {pid} ended in another way"
    );
}

#[test]
fn restore_rejects_pid_in_use() {
    let Some(env) = TestEnv::new("restore_rejects_pid_in_use") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let start_time = proc_start_time(pid);
    let image = env.path("image");
    env.dump(pid, &image, &["--leave-running"]);
    assert!(
        is_running(pid),
        "sleep {pid} stopped running after --leave-running"
    );

    let run = env.stasis(&["restore", "-D", path_text(&image), "-d", "--no-pid-ns"]);
    assert!(
        !run.success(),
        "restore succeeded although PID {pid} is in use:\n{run}"
    );
    assert!(
        contains_number(&run.stderr, pid.as_raw().into()),
        "restore error does not name PID {pid}:\n{run}"
    );
    assert!(
        run.stderr.to_lowercase().contains("in use"),
        "restore error does not say that the PID is in use:\n{run}"
    );
    assert!(
        run.stderr.contains("--pid-ns"),
        "restore error does not point to --pid-ns:\n{run}"
    );
    assert_eq!(
        proc_start_time(pid),
        start_time,
        "PID {pid} no longer belongs to the original sleep after the failed restore"
    );
    assert_eq!(
        proc_comm(pid).as_deref(),
        Some("sleep"),
        "PID {pid} is no longer sleep"
    );
    wait_until_sleeping(pid);
}

#[test]
fn restore_rejects_changed_file() {
    let Some(env) = TestEnv::new("restore_rejects_changed_file") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    env.dump_and_reap(pid, &image);

    // sleep keeps its stdout file open, so the image records its size and mtime.
    let stdout_path = env.path("sleep.stdout");
    fs::write(&stdout_path, "written after the dump\n").expect("write sleep.stdout");
    let stdout_text = path_text(&stdout_path);

    let run = env.stasis(&["restore", "-D", path_text(&image), "-d"]);
    env.track_if_child(pid);
    assert!(
        !run.success(),
        "restore accepted a file that changed after the dump:\n{run}"
    );
    assert!(
        run.stderr.contains(stdout_text),
        "restore error does not name the changed file {stdout_text}:\n{run}"
    );
    assert!(
        wait_pid_free(pid, WAIT_TIMEOUT),
        "process {pid} still exists after the failed restore"
    );

    let restored = env.restore_detached(&image, pid, &["--skip-file-checks"]);
    wait_until_sleeping(restored);
    send_signal(restored, Signal::SIGKILL);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Signal(Signal::SIGKILL),
        "restored sleep {pid} ended in another way"
    );
}
