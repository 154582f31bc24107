//! Helpers shared by the integration tests of the `stasis` CLI.
//!
//! The tests start real workloads, checkpoint them with the `stasis` binary and
//! restore them. Each test begins with [`TestEnv::new`], which returns `None`
//! after printing the reason when the test cannot run here (it needs root).
//!
//! The test process makes itself a child subreaper, so a process restored with
//! `stasis restore -d` is reparented to it when `stasis` exits, and the tests
//! reap it with `waitpid`. Reaping at once frees the PID for the next restore,
//! which would otherwise wait for init to collect the zombie.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{geteuid, setsid, Pid};

/// The `stasis` binary that Cargo built for these tests.
pub const STASIS: &str = env!("CARGO_BIN_EXE_stasis");

/// Maximum time for one `stasis` command. A 256 MiB dump takes seconds, so
/// this only stops a hung command from blocking the test run.
pub const STASIS_TIMEOUT: Duration = Duration::from_secs(300);

/// Maximum time to wait for a workload to reach a state or to exit.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(5);
const WORKLOAD_SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/workloads");
const TARGET_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");
const GCC_FLAGS: &[&str] = &["-O2", "-mavx2", "-Wall", "-Wextra", "-pthread"];
const GCC_LIBRARIES: &[&str] = &["-lm"];

/// System call numbers (x86-64) that a process running `sleep` blocks in.
pub const SLEEP_SYSCALLS: &[i64] = &[
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_restart_syscall,
];

/// Tests that share one test binary run one at a time: they compete for two
/// cores and for memory, and several of them depend on timing.
static SERIAL: Mutex<()> = Mutex::new(());

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

impl fmt::Display for Exit {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(formatter, "exit code {code}"),
            Exit::Signal(signal) => write!(formatter, "killed by {signal}"),
        }
    }
}

/// A finished `stasis` command with its exit and output.
pub struct StasisRun {
    pub command: String,
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

impl StasisRun {
    pub fn success(&self) -> bool {
        self.exit == Exit::Code(0)
    }

    /// Parses stdout as the JSON summary that `--json` prints. Panics with the
    /// output if it is not a JSON object.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_str::<serde_json::Value>(self.stdout.trim()) {
            Ok(value) if value.is_object() => value,
            Ok(value) => panic!(
                "stdout of `{}` is JSON but not an object: {value}",
                self.command
            ),
            Err(error) => panic!(
                "stdout of `{}` is not JSON ({error}):\n{self}",
                self.command
            ),
        }
    }

    /// Returns the unsigned integer field `key` of the JSON summary.
    pub fn json_u64(&self, key: &str) -> u64 {
        let summary = self.json();
        match summary.get(key).and_then(serde_json::Value::as_u64) {
            Some(value) => value,
            None => panic!(
                "JSON summary of `{}` has no unsigned integer {key:?}: {summary}",
                self.command
            ),
        }
    }
}

impl fmt::Display for StasisRun {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "`{}` ended with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.exit, self.stdout, self.stderr
        )
    }
}

/// A `stasis` command started in the background.
pub struct StasisProcess {
    pub pid: Pid,
    command: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// A process that the test started, directly or through `stasis restore`.
struct Tracked {
    pid: Pid,
    /// Start time from /proc/PID/stat, so that cleanup does not signal a
    /// later process that reuses the PID.
    start_time: Option<u64>,
}

/// Per-test state: a scratch directory and every process the test started.
///
/// Dropping it kills (SIGKILL) and reaps the tracked processes that still run,
/// also when the test panics. The directory is removed after a passing test
/// and kept after a failing one.
pub struct TestEnv {
    pub dir: PathBuf,
    name: String,
    tracked: Mutex<Vec<Tracked>>,
    output_counter: AtomicUsize,
    _serial: MutexGuard<'static, ()>,
}

impl TestEnv {
    /// Prepares a test named `name`, or returns `None` after printing why the
    /// test is skipped.
    pub fn new(name: &str) -> Option<TestEnv> {
        if !geteuid().is_root() {
            eprintln!(
                "skipping {name}: it needs root to ptrace processes and to restore them \
                 with a chosen PID (clone3 set_tid)"
            );
            return None;
        }
        become_subreaper();
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);

        let dir = Path::new(TARGET_TMPDIR).join("stasis-tests").join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap_or_else(|error| {
                panic!(
                    "cannot remove old test directory {}: {error}",
                    dir.display()
                )
            });
        }
        fs::create_dir_all(&dir).unwrap_or_else(|error| {
            panic!("cannot create test directory {}: {error}", dir.display())
        });

        Some(TestEnv {
            dir,
            name: name.to_string(),
            tracked: Mutex::new(Vec::new()),
            output_counter: AtomicUsize::new(0),
            _serial: serial,
        })
    }

    /// Returns `relative` inside the test directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Creates the directory `relative` inside the test directory and returns it.
    pub fn make_dir(&self, relative: &str) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        path
    }

    /// Starts a workload in its own session, with stdin from /dev/null and
    /// stdout and stderr in `LABEL.stdout` and `LABEL.stderr` of the test
    /// directory, and tracks it for cleanup.
    ///
    /// No descriptor of the test process except 0, 1 and 2 reaches the workload,
    /// because dump rejects pipes and sockets that a test harness may leave open.
    // The caller reaps the process with `wait_exit` or `wait_stasis`, and
    // `TestEnv::drop` reaps it otherwise, both through waitpid by PID.
    #[allow(clippy::zombie_processes)]
    pub fn spawn(&self, label: &str, command: &mut Command) -> Pid {
        command
            .stdin(Stdio::null())
            .stdout(self.create_output(&format!("{label}.stdout")))
            .stderr(self.create_output(&format!("{label}.stderr")))
            .current_dir(&self.dir);
        // SAFETY: `prepare_workload` runs between fork and exec and calls only
        // setsid and close_range, which are async-signal-safe.
        unsafe {
            command.pre_exec(prepare_workload);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {label} ({command:?}): {error}"));
        let pid = Pid::from_raw(child.id() as i32);
        self.track(pid);
        pid
    }

    /// Returns the stdout that the workload `label` has written so far.
    pub fn stdout_of(&self, label: &str) -> String {
        read_or_empty(&self.path(&format!("{label}.stdout")))
    }

    /// Returns the stderr that the workload `label` has written so far.
    pub fn stderr_of(&self, label: &str) -> String {
        read_or_empty(&self.path(&format!("{label}.stderr")))
    }

    /// Records a process for cleanup, such as one that `stasis restore` created.
    pub fn track(&self, pid: Pid) {
        let start_time = proc_start_time(pid);
        self.tracked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Tracked { pid, start_time });
    }

    /// Tracks `pid` if it is a child of the test process, such as a process
    /// that `stasis restore -d` left behind.
    pub fn track_if_child(&self, pid: Pid) {
        if proc_parent(pid) == Some(Pid::this()) {
            self.track(pid);
        }
    }

    /// Runs `stasis ARGS` to completion and returns its exit and output.
    pub fn stasis(&self, args: &[&str]) -> StasisRun {
        let process = self.spawn_stasis(args);
        self.wait_stasis(process, STASIS_TIMEOUT)
    }

    /// Starts `stasis ARGS` in the background, in the session of the test.
    // The caller reaps the process with `wait_exit` or `wait_stasis`, and
    // `TestEnv::drop` reaps it otherwise, both through waitpid by PID.
    #[allow(clippy::zombie_processes)]
    pub fn spawn_stasis(&self, args: &[&str]) -> StasisProcess {
        let number = self.output_counter.fetch_add(1, Ordering::Relaxed);
        let stdout = self.path(&format!("stasis-{number}.stdout"));
        let stderr = self.path(&format!("stasis-{number}.stderr"));
        let command_line = format!("stasis {}", args.join(" "));

        let mut command = Command::new(STASIS);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(create_file(&stdout))
            .stderr(create_file(&stderr))
            .current_dir(&self.dir);
        // SAFETY: `mark_descriptors_cloexec` runs between fork and exec and
        // calls only close_range, which is async-signal-safe.
        unsafe {
            command.pre_exec(mark_descriptors_cloexec);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start `{command_line}` ({STASIS}): {error}"));
        let pid = Pid::from_raw(child.id() as i32);
        self.track(pid);

        StasisProcess {
            pid,
            command: command_line,
            stdout,
            stderr,
        }
    }

    /// Waits for a background `stasis` command. Kills it and panics with its
    /// output if it runs longer than `timeout`.
    pub fn wait_stasis(&self, process: StasisProcess, timeout: Duration) -> StasisRun {
        let exit = match try_wait_exit(process.pid, timeout) {
            Some(exit) => exit,
            None => {
                let _ = kill(process.pid, Signal::SIGKILL);
                let _ = try_wait_exit(process.pid, WAIT_TIMEOUT);
                panic!(
                    "`{}` did not finish within {timeout:?}\n--- stdout ---\n{}--- stderr ---\n{}",
                    process.command,
                    read_or_empty(&process.stdout),
                    read_or_empty(&process.stderr)
                );
            }
        };
        StasisRun {
            command: process.command,
            exit,
            stdout: read_or_empty(&process.stdout),
            stderr: read_or_empty(&process.stderr),
        }
    }

    /// Dumps `pid` into `image` with `stasis dump --json` plus `extra`
    /// arguments, and panics with the output unless the dump succeeds.
    pub fn dump(&self, pid: Pid, image: &Path, extra: &[&str]) -> StasisRun {
        let pid_text = pid.to_string();
        let image_text = image.to_str().expect("image path is UTF-8");
        let mut args = vec!["dump", "-t", &pid_text, "-D", image_text, "--json"];
        args.extend_from_slice(extra);
        let run = self.stasis(&args);
        assert!(run.success(), "dump of {pid} failed:\n{run}");
        assert!(
            image.join("manifest").is_file(),
            "dump of {pid} succeeded but {} has no manifest",
            image.display()
        );
        run
    }

    /// Dumps `pid` (which must be a child of the test) without --leave-running,
    /// checks that the dump killed it, and reaps it so that its PID is free.
    pub fn dump_and_reap(&self, pid: Pid, image: &Path) -> StasisRun {
        self.dump_and_reap_with(pid, image, &[])
    }

    /// Dumps and reaps like [`TestEnv::dump_and_reap`], with `extra`
    /// arguments to `stasis dump`.
    pub fn dump_and_reap_with(&self, pid: Pid, image: &Path, extra: &[&str]) -> StasisRun {
        let run = self.dump(pid, image, extra);
        let exit = wait_exit(pid, WAIT_TIMEOUT);
        assert!(
            matches!(exit, Exit::Signal(_)),
            "dump without --leave-running should kill {pid}, but it ended with {exit}"
        );
        assert!(
            wait_pid_free(pid, WAIT_TIMEOUT),
            "PID {pid} is still in use after the dump killed it"
        );
        // The other processes of a dumped tree were killed too, and as
        // orphans they are reparented to the test process, the subreaper.
        for other in image_pids(image) {
            assert!(
                wait_pid_free(other, WAIT_TIMEOUT),
                "PID {other} of the dumped tree is still in use after the dump"
            );
        }
        run
    }

    /// Restores `image` with `stasis restore -d --json` plus `extra`
    /// arguments, checks that the process got `expected_pid` and runs
    /// untraced, and tracks it. The restored process is then a child of the
    /// test process (the subreaper).
    pub fn restore_detached(&self, image: &Path, expected_pid: Pid, extra: &[&str]) -> Pid {
        let image_text = image.to_str().expect("image path is UTF-8");
        let mut args = vec!["restore", "-D", image_text, "-d", "--json"];
        args.extend_from_slice(extra);
        let run = self.stasis(&args);
        self.track_if_child(expected_pid);
        assert!(
            run.success(),
            "restore of {} failed:\n{run}",
            image.display()
        );

        let restored = Pid::from_raw(run.json_u64("pid") as i32);
        assert_eq!(
            restored, expected_pid,
            "restore gave a different PID:\n{run}"
        );
        assert!(
            is_running(restored),
            "restored process {restored} is not running after restore -d returned"
        );
        let state = proc_state(restored);
        assert!(
            !matches!(state, Some('T') | Some('t')),
            "restored process {restored} is stopped (state {state:?}) after restore -d returned"
        );
        let tracer = proc_status_value(restored, "TracerPid");
        assert_eq!(
            tracer.as_deref(),
            Some("0"),
            "restored process {restored} is still traced"
        );
        restored
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let tracked =
            std::mem::take(&mut *self.tracked.lock().unwrap_or_else(PoisonError::into_inner));
        // All are killed before any is waited for, because a killed grandchild
        // stays a zombie until its parent dies and it is reparented to the
        // test process.
        let killed: Vec<Pid> = tracked
            .iter()
            .rev()
            .filter_map(kill_if_same_process)
            .collect();
        for pid in killed {
            if !wait_pid_free(pid, WAIT_TIMEOUT) {
                eprintln!(
                    "{}: process {pid} still exists {WAIT_TIMEOUT:?} after SIGKILL",
                    self.name
                );
            }
        }

        if std::thread::panicking() {
            eprintln!(
                "{} failed: its files are in {}",
                self.name,
                self.dir.display()
            );
        } else if let Err(error) = fs::remove_dir_all(&self.dir) {
            eprintln!(
                "cannot remove test directory {}: {error}",
                self.dir.display()
            );
        }
    }
}

/// Sends SIGKILL to a tracked process if it is still the process that was
/// tracked, and returns its PID if it did.
fn kill_if_same_process(process: &Tracked) -> Option<Pid> {
    let pid = process.pid;
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        // A child of the test that has not been reaped keeps its PID, so the
        // signal reaches the right process.
        Ok(WaitStatus::StillAlive) => {
            let _ = kill(pid, Signal::SIGKILL);
            Some(pid)
        }
        // It had exited and waitpid just reaped it.
        Ok(_) => None,
        // Not a child of the test (a grandchild, or a child of a `stasis
        // restore` that still runs), or already reaped.
        Err(_) => {
            let same = process.start_time.is_some() && proc_start_time(pid) == process.start_time;
            if same {
                let _ = kill(pid, Signal::SIGKILL);
            }
            same.then_some(pid)
        }
    }
}

/// Makes the test process a child subreaper, once per test binary.
fn become_subreaper() {
    static RESULT: OnceLock<Result<(), Errno>> = OnceLock::new();
    let result = RESULT.get_or_init(|| nix::sys::prctl::set_child_subreaper(true));
    if let Err(error) = result {
        panic!("prctl(PR_SET_CHILD_SUBREAPER) failed: {error}");
    }
}

/// Runs in a forked workload before exec: a new session, so the workload has
/// no controlling terminal, and close-on-exec on every descriptor above 2.
fn prepare_workload() -> io::Result<()> {
    setsid()?;
    mark_descriptors_cloexec()
}

/// Sets close-on-exec on every descriptor above 2. Needs Linux 5.11 or later.
fn mark_descriptors_cloexec() -> io::Result<()> {
    // SAFETY: close_range only changes descriptor flags of this process, and
    // with CLOSE_RANGE_CLOEXEC it closes nothing that Rust code still uses.
    let result =
        unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl TestEnv {
    fn create_output(&self, name: &str) -> File {
        create_file(&self.path(name))
    }
}

fn create_file(path: &Path) -> File {
    File::create(path).unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
}

/// Returns the file's content, or an empty string if it cannot be read.
pub fn read_or_empty(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Returns the path of the compiled C workload `tests/workloads/NAME.c`.
///
/// Binaries are cached in the Cargo target directory under a name that
/// includes a hash of the source and the compiler flags, so a changed source
/// is rebuilt and an unchanged one is compiled once. A cached binary is never
/// replaced, because an image refers to its executable by path.
pub fn workload_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(name) {
        return path.clone();
    }

    let source = Path::new(WORKLOAD_SOURCES).join(format!("{name}.c"));
    let text = fs::read(&source)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    GCC_FLAGS.hash(&mut hasher);
    GCC_LIBRARIES.hash(&mut hasher);
    let output_dir = Path::new(TARGET_TMPDIR).join("workloads");
    let binary = output_dir.join(format!("{name}-{:016x}", hasher.finish()));

    if !binary.exists() {
        fs::create_dir_all(&output_dir)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", output_dir.display()));
        let temporary = output_dir.join(format!("{name}.{}.tmp", std::process::id()));
        let output = Command::new("gcc")
            .args(GCC_FLAGS)
            .arg("-o")
            .arg(&temporary)
            .arg(&source)
            .args(GCC_LIBRARIES)
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run gcc to build {}: {error}", source.display())
            });
        assert!(
            output.status.success(),
            "gcc failed to build {} ({}):\n{}",
            source.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        fs::rename(&temporary, &binary).unwrap_or_else(|error| {
            panic!(
                "cannot rename {} to {}: {error}",
                temporary.display(),
                binary.display()
            )
        });
    }
    built.insert(name.to_string(), binary.clone());
    binary
}

/// Returns the path of a script in tests/workloads.
pub fn workload_script(name: &str) -> PathBuf {
    let path = Path::new(WORKLOAD_SOURCES).join(name);
    assert!(
        path.is_file(),
        "workload script {} is missing",
        path.display()
    );
    path
}

/// Returns whether this CPU runs the AVX2 instructions that memtest uses.
pub fn cpu_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Polls `probe` every few milliseconds until it returns `Some`, and panics
/// naming `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        sleep(POLL_INTERVAL);
    }
}

/// Waits for a child of the test process to exit and reaps it. Returns `None`
/// if it still runs after `timeout`. Panics if `pid` is not a child.
pub fn try_wait_exit(pid: Pid, timeout: Duration) -> Option<Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Some(Exit::Signal(signal)),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(error) => {
                panic!("waitpid({pid}) failed: {error} (is it a child of the test process?)")
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(POLL_INTERVAL);
    }
}

/// Waits for a child of the test process to exit and reaps it, and panics
/// if it still runs after `timeout`.
pub fn wait_exit(pid: Pid, timeout: Duration) -> Exit {
    match try_wait_exit(pid, timeout) {
        Some(exit) => exit,
        None => panic!("process {pid} did not exit within {timeout:?}"),
    }
}

/// Waits until no process has `pid`, reaping it if it is a zombie child of
/// the test process. Returns false if the PID is still in use after `timeout`.
pub fn wait_pid_free(pid: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(POLL_INTERVAL);
    }
}

/// Returns the PIDs of the processes in an image, from its process-PID
/// record file names.
pub fn image_pids(image: &Path) -> Vec<Pid> {
    let Ok(entries) = fs::read_dir(image) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("process-")?
                .parse()
                .ok()
                .map(Pid::from_raw)
        })
        .collect()
}

/// Sends `signal` to `pid` and panics if that fails.
pub fn send_signal(pid: Pid, signal: Signal) {
    kill(pid, signal).unwrap_or_else(|error| panic!("kill({pid}, {signal}) failed: {error}"));
}

/// Returns the fields of /proc/PID/stat after the command name, so that index
/// 0 is the state (field 3 in proc(5)).
fn proc_stat_fields(pid: Pid) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    Some(after_name.split_whitespace().map(str::to_string).collect())
}

/// Returns the process state letter (R, S, D, T, t, Z, ...).
pub fn proc_state(pid: Pid) -> Option<char> {
    proc_stat_fields(pid)?.first()?.chars().next()
}

/// Returns the parent PID.
pub fn proc_parent(pid: Pid) -> Option<Pid> {
    let fields = proc_stat_fields(pid)?;
    fields.get(1)?.parse().ok().map(Pid::from_raw)
}

/// Returns the start time in clock ticks since boot (field 22 in proc(5)).
pub fn proc_start_time(pid: Pid) -> Option<u64> {
    proc_stat_fields(pid)?.get(19)?.parse().ok()
}

/// Returns the value of `key` in /proc/PID/status, such as "TracerPid".
pub fn proc_status_value(pid: Pid, key: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == key).then(|| value.trim().to_string())
    })
}

/// Returns the command name from /proc/PID/comm.
pub fn proc_comm(pid: Pid) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim_end()
            .to_string(),
    )
}

/// Returns the number of the system call in which the process is blocked, or
/// `None` if it is running in user space or does not exist.
pub fn proc_syscall(pid: Pid) -> Option<i64> {
    let text = fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Returns the target of the symbolic link /proc/PID/fd/FD.
pub fn proc_fd_target(pid: Pid, fd: i32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// Returns the thread ids of the process.
pub fn proc_thread_ids(pid: Pid) -> Vec<i32> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut ids: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

/// Returns whether `pid` exists and is neither a zombie nor dead.
pub fn is_running(pid: Pid) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// Returns whether `text` contains `number` as a whole number, not as part
/// of a longer run of digits.
pub fn contains_number(text: &str, number: i64) -> bool {
    let needle = number.to_string();
    text.match_indices(&needle).any(|(start, _)| {
        let end = start + needle.len();
        let digit_before = text[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_digit());
        let digit_after = text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit());
        !digit_before && !digit_after
    })
}

/// Waits until `pid` is blocked in one of the system calls that `sleep`
/// uses, which shows that it runs the `sleep` program and not restore code.
pub fn wait_until_sleeping(pid: Pid) {
    wait_until(
        &format!("process {pid} to block in a sleep system call"),
        WAIT_TIMEOUT,
        || {
            let syscall = proc_syscall(pid)?;
            (proc_comm(pid)? == "sleep" && SLEEP_SYSCALLS.contains(&syscall)).then_some(())
        },
    );
}

/// Starts `sleep 1000` as a workload and waits until it sleeps.
pub fn start_sleep(env: &TestEnv, label: &str) -> Pid {
    let pid = env.spawn(label, Command::new("sleep").arg("1000"));
    wait_until_sleeping(pid);
    pid
}

/// Lists the regular files under `dir`, recursively, as paths relative to it,
/// sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, current: &Path, files: &mut Vec<PathBuf>) {
        let entries = fs::read_dir(current)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", current.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                files.push(
                    path.strip_prefix(root)
                        .expect("path is under root")
                        .to_path_buf(),
                );
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// Copies the directory tree `source` to `destination`, which must not exist.
pub fn copy_dir(source: &Path, destination: &Path) {
    fs::create_dir_all(destination)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", destination.display()));
    for relative in list_files(source) {
        let target = destination.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("cannot create {}: {error}", parent.display()));
        }
        fs::copy(source.join(&relative), &target).unwrap_or_else(|error| {
            panic!(
                "cannot copy {} to {}: {error}",
                relative.display(),
                target.display()
            )
        });
    }
}

/// Asserts that `run` failed and that its stdout or stderr contains every
/// string in `expected`.
pub fn assert_failed_with(run: &StasisRun, expected: &[&str]) {
    assert!(
        !run.success(),
        "`{}` should have failed:\n{run}",
        run.command
    );
    let output = format!("{}{}", run.stdout, run.stderr);
    for part in expected {
        assert!(
            output.contains(part),
            "output of `{}` lacks {part:?}:\n{run}",
            run.command
        );
    }
}

/// Flips every bit of byte `offset` of the file `name` in `image`.
pub fn flip_byte(image: &Path, name: &str, offset: usize) {
    let path = image.join(name);
    let mut bytes = fs::read(&path).unwrap_or_else(|error| panic!("read {name}: {error}"));
    bytes[offset] ^= 0xff;
    fs::write(&path, bytes).unwrap_or_else(|error| panic!("write {name}: {error}"));
}
