//! `stasis inspect`, `stasis image` and `stasis diff` on real images.
//!
//! The tests start `sleep 1000` and a Python workload, dump them with the
//! stasis binary that Cargo built, and run every view, as text and JSON,
//! on the images. They need root to dump, and print why they skip
//! otherwise. Only processes started here are signalled, each by its PID.

use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const STASIS: &str = env!("CARGO_BIN_EXE_stasis");
const SCRATCH: &str = env!("CARGO_TARGET_TMPDIR");
const CHROMIUM: &str = "/usr/bin/chromium";

/// Maximum time for one command; a hang fails the test instead of
/// blocking the run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Maximum time for a workload to get ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Exit status of `stasis inspect` for a damaged image.
const EXIT_DAMAGED: i32 = 2;

const VIEWS: [&str; 8] = [
    "--tree",
    "--maps",
    "--fds",
    "--stats",
    "--env",
    "--cmdline",
    "--auxv",
    "--regs",
];

/// The tests dump processes and compare timings of nothing, but they
/// share two cores with the rest of the suite, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The Python workload: it fills 4 MiB, opens a log file for appending
/// and a directory, and on SIGUSR1 rewrites the first MiB. It creates the
/// file named by its first argument when ready, and that name plus
/// ".changed" after each SIGUSR1.
const PYTHON_WORKLOAD: &str = r#"
import os, signal, sys, time
ready, log_path = sys.argv[1], sys.argv[2]
data = bytearray(b"\xab" * (4 << 20))
log = open(log_path, "a")
log.write("started\n")
log.flush()
directory = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
def change(signum, frame):
    data[0:1 << 20] = b"\xcd" * (1 << 20)
    open(ready + ".changed", "w").close()
signal.signal(signal.SIGUSR1, change)
open(ready, "w").close()
while True:
    time.sleep(1000)
"#;

/// A Python process tree. The root has both ends of a pipe with bytes
/// buffered in it, a child and a grandchild inherit the read end, and a
/// zombie child exited with code 7. The root creates the file
/// named by its first argument once all of them exist.
const PYTHON_TREE: &str = r#"
import os, sys, time
ready = sys.argv[1]
r, w = os.pipe()
os.write(w, b"bytes left in the pipe")
child = os.fork()
if child == 0:
    os.close(w)
    if os.fork() == 0:
        time.sleep(1000)
        os._exit(0)
    time.sleep(1000)
    os._exit(0)
zombie = os.fork()
if zombie == 0:
    os._exit(7)
def state(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(") ", 1)[1][0]
def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return listing.read().split()
while state(zombie) != "Z" or not children(child):
    time.sleep(0.01)
open(ready, "w").close()
time.sleep(1000)
"#;

/// Returns the lock that runs the tests one at a time, or `None` after
/// printing why the test cannot run here.
fn start(test: &str) -> Option<MutexGuard<'static, ()>> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped {test}: dumping a process needs root");
        return None;
    }
    Some(SERIAL.lock().unwrap_or_else(PoisonError::into_inner))
}

/// Creates a fresh scratch directory under Cargo's target temporary
/// directory and returns its path.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(SCRATCH).join(format!("inspect-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// A process started by a test. Dropping it kills it by its PID, if it
/// still runs, and reaps it.
struct Workload {
    child: Child,
}

impl Workload {
    /// Starts `program` with stdin, stdout and stderr on /dev/null and no
    /// other inherited fds, since stasis rejects pipes.
    fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Workload {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: the closure runs in the child between fork and exec and
        // only makes the close_range system call, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                // SAFETY: close_range takes integers and closes fds 3 and up
                // of the child, which it does not use.
                let result = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                if result == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {program}: {error}"));
        Workload { child }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the workload, which this test started.
    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signal the workload");
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `condition` holds, failing the test after the timeout.
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

/// Waits for process `pid`, which must be dead or dying and become a
/// child of this process, and reaps it.
fn reap(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};

    wait_for(&format!("process {pid} to be reaped"), || {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => false,
            Ok(_) => true,
            // Not yet reparented to this process.
            Err(nix::errno::Errno::ECHILD) => false,
            Err(error) => panic!("waiting for process {pid} failed: {error}"),
        }
    });
}

/// Starts `sleep 1000` and waits until it sleeps.
fn start_sleep() -> Workload {
    let workload = Workload::start("sleep", &["1000"], &[]);
    let pid = workload.pid();
    wait_for("sleep to start sleeping", || {
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        comm.trim() == "sleep" && stat.contains(") S ")
    });
    workload
}

/// Returns the path of the real Python interpreter, past any wrapper
/// script, or `None` when there is no python3.
fn python() -> Option<String> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !path.is_empty()).then_some(path)
}

/// Starts the Python workload in `dir` and waits until it is ready.
fn start_python(python: &str, dir: &Path) -> (Workload, PathBuf) {
    let ready = dir.join("ready");
    let log = dir.join("workload.log");
    let workload = Workload::start(
        python,
        &[
            "-c",
            PYTHON_WORKLOAD,
            ready.to_str().expect("UTF-8 path"),
            log.to_str().expect("UTF-8 path"),
        ],
        &[("STASIS_INSPECT_MARKER", "marker-value")],
    );
    wait_for("the Python workload to get ready", || ready.exists());
    (workload, ready)
}

/// The result of one stasis command.
struct Run {
    command: String,
    status: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|error| {
            panic!(
                "`{}` printed no JSON ({error}):\n{}",
                self.command, self.stdout
            )
        })
    }

    fn expect_status(&self, status: i32) -> &Run {
        assert_eq!(
            self.status, status,
            "`{}` exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.command, self.status, self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "`{}` panicked:\n{}",
            self.command,
            self.stderr
        );
        self
    }

    fn expect_success(&self) -> &Run {
        self.expect_status(0)
    }
}

/// Runs stasis with `args`, with stdin from `stdin` if given.
fn stasis(args: &[&str], stdin: Option<&Path>) -> Run {
    let dir = scratch("run");
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut command = Command::new(STASIS);
    command
        .args(args)
        .stdout(File::create(&out).expect("create stdout file"))
        .stderr(File::create(&err).expect("create stderr file"));
    match stdin {
        Some(path) => command.stdin(File::open(path).expect("open stdin file")),
        None => command.stdin(Stdio::null()),
    };
    let status = run_with_timeout(command);
    let run = Run {
        command: format!("stasis {}", args.join(" ")),
        status,
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: fs::read_to_string(&err).unwrap_or_default(),
    };
    let _ = fs::remove_dir_all(&dir);
    run
}

/// Runs `command` and returns its exit code (128 + signal when killed),
/// killing it after the timeout.
fn run_with_timeout(mut command: Command) -> i32 {
    use std::os::unix::process::ExitStatusExt;

    let mut child = command.spawn().expect("start command");
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for command") {
            return status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish in {COMMAND_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(10));
    }
}

/// Dumps `pid` into `dir` and returns the image directory.
fn dump(pid: i32, dir: &Path, leave_running: bool) -> PathBuf {
    let pid_text = pid.to_string();
    let dir_text = dir.to_str().expect("UTF-8 path");
    let mut args = vec!["dump", "-t", &pid_text, "-D", dir_text];
    if leave_running {
        args.push("--leave-running");
    }
    stasis(&args, None).expect_success();
    dir.to_path_buf()
}

fn inspect(image: &Path, flags: &[&str]) -> Run {
    let mut args = vec!["inspect", image.to_str().expect("UTF-8 path")];
    args.extend_from_slice(flags);
    stasis(&args, None)
}

/// Runs the summary and every view as text and JSON on `image`, checks
/// that each succeeds and that the JSON names its view. Returns the JSON
/// of each view by name.
fn inspect_every_view(image: &Path) -> Vec<(String, Value)> {
    inspect(image, &[]).expect_success();
    let mut views = vec![(
        "summary".to_string(),
        inspect(image, &["--json"]).expect_success().json(),
    )];
    for flag in VIEWS {
        let text = inspect(image, &[flag]);
        text.expect_success();
        assert!(!text.stdout.is_empty(), "{flag} printed nothing");
        let json = inspect(image, &[flag, "--json"]);
        let value = json.expect_success().json();
        let name = flag.trim_start_matches("--").to_string();
        assert_eq!(value["view"], name.as_str(), "{flag}");
        assert_eq!(value["schema_version"], 1, "{flag}");
        assert_eq!(value["damaged"], false, "{flag}");
        views.push((name, value));
    }
    views
}

fn view<'a>(views: &'a [(String, Value)], name: &str) -> &'a Value {
    &views
        .iter()
        .find(|(view_name, _)| view_name == name)
        .unwrap_or_else(|| panic!("no {name} view"))
        .1
}

#[test]
fn sleep_image_every_view() {
    let Some(_serial) = start("sleep_image_every_view") else {
        return;
    };
    let dir = scratch("sleep");
    let mut workload = start_sleep();
    let pid = workload.pid();
    let image = dump(pid, &dir.join("image"), false);
    // Without --leave-running the dump killed the process; reap it.
    let _ = workload.child.wait();

    let summary_text = inspect(&image, &[]);
    summary_text.expect_success();
    assert!(
        summary_text.stdout.contains("command  sleep 1000"),
        "{}",
        summary_text.stdout
    );
    assert!(
        summary_text.stdout.contains("files verified"),
        "{}",
        summary_text.stdout
    );

    let views = inspect_every_view(&image);
    let summary = view(&views, "summary");
    assert_eq!(summary["integrity"]["intact"], true);
    assert_eq!(summary["integrity"]["restore_check"], "passed");
    assert_eq!(summary["root_pid"], pid);
    assert_eq!(summary["processes"][0]["comm"], "sleep");
    assert_eq!(summary["fds"]["char_device"], 3);

    let cmdline = &view(&views, "cmdline")["processes"][0];
    assert_eq!(cmdline["strings"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(cmdline["complete"], true);

    let maps = view(&views, "maps")["processes"][0]["mappings"]
        .as_array()
        .expect("mappings")
        .clone();
    for name in ["[heap]", "[stack]", "[vdso]"] {
        assert!(maps.iter().any(|m| m["name"] == name), "no {name} mapping");
    }
    let stored: u64 = maps
        .iter()
        .map(|m| m["pages_stored"].as_u64().expect("pages"))
        .sum();
    assert_eq!(summary["memory"]["bytes_stored"], stored * 4096);

    let fds = view(&views, "fds")["processes"][0]["fds"]
        .as_array()
        .expect("fds")
        .clone();
    assert_eq!(fds.len(), 3);
    assert!(fds.iter().all(|fd| fd["path"] == "/dev/null"));

    let auxv = view(&views, "auxv")["processes"][0]["entries"]
        .as_array()
        .expect("auxv")
        .clone();
    let pagesz = auxv
        .iter()
        .find(|e| e["name"] == "AT_PAGESZ")
        .expect("AT_PAGESZ");
    assert_eq!(pagesz["value"], 4096);
    let execfn = auxv
        .iter()
        .find(|e| e["name"] == "AT_EXECFN")
        .expect("AT_EXECFN");
    assert!(
        execfn["points_to"]
            .as_str()
            .is_some_and(|path| path.ends_with("sleep")),
        "{execfn}"
    );

    let regs = &view(&views, "regs")["processes"][0]["threads"][0];
    assert_eq!(regs["tid"], pid);
    assert!(regs["registers"]["rip"]
        .as_str()
        .is_some_and(|rip| rip.starts_with("0x")));

    let env = view(&views, "env")["processes"][0]["strings"]
        .as_array()
        .expect("env")
        .clone();
    assert!(env
        .iter()
        .any(|s| s.as_str().is_some_and(|s| s.starts_with("PATH="))));

    let tree = view(&views, "tree");
    assert_eq!(tree["processes"][0]["pid"], pid);
    let stats = view(&views, "stats");
    assert!(stats["largest_mappings"]
        .as_array()
        .is_some_and(|list| !list.is_empty()));

    let html = dir.join("report.html");
    let dot = dir.join("tree.dot");
    inspect(
        &image,
        &[
            "--html",
            html.to_str().expect("path"),
            "--dot",
            dot.to_str().expect("path"),
        ],
    )
    .expect_success();
    assert!(fs::read_to_string(&html)
        .expect("report")
        .contains("id=\"process-tree\""));
    assert!(fs::read_to_string(&dot)
        .expect("dot")
        .contains(&format!("p{pid} [")));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn python_image_fds_env_and_maps() {
    let Some(_serial) = start("python_image_fds_env_and_maps") else {
        return;
    };
    let Some(python) = python() else {
        println!("skipped python_image_fds_env_and_maps: python3 is missing");
        return;
    };
    let dir = scratch("python");
    let (workload, _ready) = start_python(&python, &dir);
    let image = dump(workload.pid(), &dir.join("image"), true);
    drop(workload);

    let views = inspect_every_view(&image);
    let fds = view(&views, "fds")["processes"][0]["fds"]
        .as_array()
        .expect("fds")
        .clone();
    let log = fds
        .iter()
        .find(|fd| {
            fd["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("workload.log"))
        })
        .expect("the log file is open");
    assert_eq!(log["kind"], "regular");
    assert!(
        log["flags_decoded"]
            .as_str()
            .is_some_and(|f| f.contains("O_WRONLY|O_APPEND")),
        "{log}"
    );
    assert_eq!(log["position"], 8);
    assert!(fds
        .iter()
        .any(|fd| fd["kind"] == "directory" && fd["path"] == "/"));

    let env = view(&views, "env")["processes"][0]["strings"]
        .as_array()
        .expect("env")
        .clone();
    assert!(
        env.iter()
            .any(|s| s == "STASIS_INSPECT_MARKER=marker-value"),
        "{env:?}"
    );

    let cmdline = view(&views, "cmdline")["processes"][0]["strings"]
        .as_array()
        .expect("args")
        .clone();
    assert_eq!(cmdline.get(1).and_then(Value::as_str), Some("-c"));

    let stats = view(&views, "stats");
    let largest_stored = stats["top_stored_mappings"][0]["bytes_stored"]
        .as_u64()
        .expect("bytes");
    assert!(
        largest_stored >= 4 << 20,
        "the 4 MiB buffer is the mapping with the most stored bytes: {largest_stored}"
    );

    let text = inspect(&image, &["--fds"]);
    assert!(
        text.expect_success().stdout.contains("O_WRONLY|O_APPEND"),
        "{}",
        text.stdout
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn tree_image_with_pipe_and_zombie() {
    let Some(_serial) = start("tree_image_with_pipe_and_zombie") else {
        return;
    };
    let Some(python) = python() else {
        println!("skipped tree_image_with_pipe_and_zombie: python3 is missing");
        return;
    };
    // Orphans of the tree come back to this process, so that it can reap
    // them instead of leaving zombies to an init that may not reap.
    nix::sys::prctl::set_child_subreaper(true).expect("become a child subreaper");
    let dir = scratch("tree");
    let ready = dir.join("ready");
    let root = Workload::start(
        &python,
        &["-c", PYTHON_TREE, ready.to_str().expect("UTF-8 path")],
        &[],
    );
    wait_for("the process tree to get ready", || ready.exists());
    let image = dump(root.pid(), &dir.join("image"), true);

    let tree = inspect(&image, &["--tree", "--json"]);
    let value = tree.expect_success().json();
    let nodes = value["processes"].as_array().expect("processes").clone();

    // The children and the grandchild outlive the root, so they are
    // killed here by the PIDs the image recorded, before any check, and
    // reaped with the zombie once they are reparented to this process.
    let root_pid = root.pid();
    let others: Vec<i32> = nodes
        .iter()
        .map(|node| node["pid"].as_i64().expect("pid") as i32)
        .filter(|pid| *pid != root_pid)
        .collect();
    for pid in &others {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    drop(root);
    for pid in &others {
        reap(*pid);
    }

    assert_eq!(nodes.len(), 4, "{nodes:?}");
    let depths: Vec<i64> = nodes
        .iter()
        .map(|node| node["depth"].as_i64().expect("depth"))
        .collect();
    assert_eq!(
        depths.iter().filter(|depth| **depth == 2).count(),
        1,
        "{depths:?}"
    );
    let zombie = nodes
        .iter()
        .find(|node| !node["zombie_exit_status"].is_null())
        .expect("a zombie in the tree");
    assert_eq!(zombie["zombie_exit_status"], 7 << 8);
    assert_eq!(zombie["zombie_exit"]["exit_code"], 7, "{zombie}");
    assert!(zombie["zombie_exit"]["signal"].is_null(), "{zombie}");

    let text = inspect(&image, &["--tree"]);
    assert!(
        text.expect_success()
            .stdout
            .contains("<zombie, exit code 7>"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("└─"), "{}", text.stdout);

    let fds = inspect(&image, &["--fds", "--json"]);
    let value = fds.expect_success().json();
    let root_fds = value["processes"][0]["fds"]
        .as_array()
        .expect("fds")
        .clone();
    let read_end = root_fds
        .iter()
        .find(|fd| fd["kind"] == "pipe" && fd["write_end"] == false)
        .expect("the root holds the read end");
    assert!(read_end["content_file"].is_string(), "{read_end}");
    assert!(
        !read_end["shared_with"].as_array().expect("list").is_empty(),
        "the children share the read end: {read_end}"
    );

    inspect_every_view(&image);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn decode_encode_round_trip_every_record_kind() {
    let Some(_serial) = start("decode_encode_round_trip_every_record_kind") else {
        return;
    };
    let dir = scratch("round-trip");
    let workload = start_sleep();
    let pid = workload.pid();
    let image = dump(pid, &dir.join("image"), true);
    drop(workload);

    let kinds = [
        ("manifest".to_string(), "manifest"),
        (format!("process-{pid}"), "process"),
        (format!("mm-{pid}"), "memory-map"),
        (format!("fds-{pid}"), "fd-table"),
    ];
    for (name, kind) in &kinds {
        let file = image.join(name);
        let decoded = stasis(&["image", "decode", file.to_str().expect("path")], None);
        decoded.expect_success();
        assert!(
            decoded.stdout.starts_with("{\n"),
            "{name} is not pretty JSON"
        );
        let json_path = dir.join(format!("{name}.json"));
        fs::write(&json_path, &decoded.stdout).expect("write JSON");

        let output = dir.join(format!("{name}.encoded"));
        stasis(
            &[
                "image",
                "encode",
                kind,
                "--output",
                output.to_str().expect("path"),
            ],
            Some(&json_path),
        )
        .expect_success();
        let original = fs::read(&file).expect("read original");
        let encoded = fs::read(&output).expect("read encoded");
        assert!(original == encoded, "{name} changed in the round trip");
    }

    let pages = image.join(format!("pages-{pid}"));
    let run = stasis(&["image", "decode", pages.to_str().expect("path")], None);
    run.expect_status(1);
    assert!(run.stderr.contains("no JSON view"), "{}", run.stderr);

    // A damaged record decodes only with --ignore-checksum.
    let damaged = dir.join("damaged-process");
    let mut bytes = fs::read(image.join(format!("process-{pid}"))).expect("read process");
    let at = bytes
        .windows(5)
        .position(|window| window == b"sleep")
        .expect("comm in the record");
    bytes[at] = b'S';
    fs::write(&damaged, bytes).expect("write damaged record");
    let damaged_path = damaged.to_str().expect("path");
    let run = stasis(&["image", "decode", damaged_path], None);
    run.expect_status(1);
    assert!(run.stderr.contains("checksum"), "{}", run.stderr);
    let run = stasis(
        &["image", "decode", "--ignore-checksum", damaged_path],
        None,
    );
    assert_eq!(run.expect_success().json()["comm"], "Sleep");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn diff_of_two_python_dumps() {
    let Some(_serial) = start("diff_of_two_python_dumps") else {
        return;
    };
    let Some(python) = python() else {
        println!("skipped diff_of_two_python_dumps: python3 is missing");
        return;
    };
    let dir = scratch("diff");
    let (workload, ready) = start_python(&python, &dir);
    let first = dump(workload.pid(), &dir.join("first"), true);
    workload.signal(Signal::SIGUSR1);
    let changed = PathBuf::from(format!("{}.changed", ready.display()));
    wait_for("the workload to change its memory", || changed.exists());
    let second = dump(workload.pid(), &dir.join("second"), true);
    drop(workload);

    let paths = [
        first.to_str().expect("path"),
        second.to_str().expect("path"),
    ];
    let same = stasis(&["diff", paths[0], paths[0], "--json"], None);
    assert_eq!(same.expect_success().json()["identical"], true);

    let result = stasis(&["diff", paths[0], paths[1], "--json"], None);
    let value = result.expect_success().json();
    assert_eq!(value["identical"], false);
    let pages = &value["processes"][0]["pages"];
    let changed_pages = pages["changed"].as_u64().expect("changed");
    assert!(
        changed_pages >= 256,
        "1 MiB was rewritten, {changed_pages} pages changed"
    );

    let text = stasis(&["diff", paths[0], paths[1]], None);
    text.expect_success();
    assert!(text.stdout.contains("Pages:"), "{}", text.stdout);
    assert!(text.stdout.contains("the images differ"), "{}", text.stdout);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn damaged_real_image_is_reported() {
    let Some(_serial) = start("damaged_real_image_is_reported") else {
        return;
    };
    let dir = scratch("damaged");
    let workload = start_sleep();
    let pid = workload.pid();
    let image = dump(pid, &dir.join("image"), true);
    drop(workload);

    let pages = image.join(format!("pages-{pid}"));
    let mut bytes = fs::read(&pages).expect("read pages");
    bytes[4096 + 17] ^= 0x40;
    fs::write(&pages, bytes).expect("write pages");
    let run = inspect(&image, &[]);
    run.expect_status(EXIT_DAMAGED);
    assert!(
        run.stdout.contains(&format!("pages-{pid}: corrupted")),
        "{}",
        run.stdout
    );
    for flag in VIEWS {
        inspect(&image, &[flag]).expect_status(EXIT_DAMAGED);
        let json = inspect(&image, &[flag, "--json"]);
        assert_eq!(json.expect_status(EXIT_DAMAGED).json()["damaged"], true);
    }

    fs::remove_file(image.join(format!("fds-{pid}"))).expect("remove fd table");
    let run = inspect(&image, &["--fds"]);
    run.expect_status(EXIT_DAMAGED);
    assert!(
        run.stdout.contains(&format!("fds-{pid}: missing")),
        "{}",
        run.stdout
    );

    fs::write(
        image.join("manifest"),
        b"garbage garbage garbage garbage garbage",
    )
    .expect("write");
    let run = inspect(&image, &[]);
    run.expect_status(1);
    assert!(run.stderr.contains("manifest"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn closed_stdout_exits_cleanly() {
    let Some(_serial) = start("closed_stdout_exits_cleanly") else {
        return;
    };
    let dir = scratch("pipe");
    let workload = start_sleep();
    let image = dump(workload.pid(), &dir.join("image"), true);
    drop(workload);

    for flag in ["--maps", "--env", "--json"] {
        // The read end is closed before stasis writes, so its first write
        // fails with EPIPE.
        let mut child = Command::new(STASIS)
            .args(["inspect", image.to_str().expect("path"), flag])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stasis");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait for stasis");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{flag}: {:?} {stderr}",
            output.status
        );
        assert!(!stderr.contains("panicked"), "{flag}: {stderr}");
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn unknown_pid_is_an_error() {
    let Some(_serial) = start("unknown_pid_is_an_error") else {
        return;
    };
    let dir = scratch("unknown-pid");
    let workload = start_sleep();
    let image = dump(workload.pid(), &dir.join("image"), true);
    drop(workload);

    let run = inspect(&image, &["--maps", "--pid", "1"]);
    run.expect_status(1);
    assert!(
        run.stderr.contains("process 1 is not in the image"),
        "{}",
        run.stderr
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn html_report_of_real_image_in_chromium() {
    let Some(_serial) = start("html_report_of_real_image_in_chromium") else {
        return;
    };
    if !Path::new(CHROMIUM).exists() {
        println!("skipped html_report_of_real_image_in_chromium: {CHROMIUM} is missing");
        return;
    }
    let Some(python) = python() else {
        println!("skipped html_report_of_real_image_in_chromium: python3 is missing");
        return;
    };
    let dir = scratch("chromium");
    let (workload, _ready) = start_python(&python, &dir);
    let image = dump(workload.pid(), &dir.join("image"), true);
    drop(workload);

    let report = dir.join("report.html");
    inspect(&image, &["--html", report.to_str().expect("path")]).expect_success();
    let url = format!("file://{}", report.display());

    let chromium = |profile: &str| {
        let mut command = Command::new(CHROMIUM);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
        ]);
        command.arg(format!("--user-data-dir={}", dir.join(profile).display()));
        command.stderr(Stdio::null());
        command
    };

    let dom_path = dir.join("dom.html");
    let mut dump_dom = chromium("profile-dom");
    dump_dom
        .arg("--dump-dom")
        .arg(&url)
        .stdout(File::create(&dom_path).expect("create DOM file"));
    assert_eq!(run_with_timeout(dump_dom), 0, "chromium --dump-dom failed");
    let dom = fs::read_to_string(&dom_path).expect("read DOM");
    for fragment in [
        "id=\"process-tree\"",
        "class=\"address-space\"",
        "class=\"vma\"",
        "id=\"chart-image-bytes\"",
        "id=\"chart-pages\"",
    ] {
        assert!(dom.contains(fragment), "no {fragment} in the rendered DOM");
    }

    let screenshot = Path::new(SCRATCH).join("inspect-report-python.png");
    let _ = fs::remove_file(&screenshot);
    let mut shot = chromium("profile-shot");
    shot.arg("--window-size=1280,3000")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .stdout(Stdio::null());
    assert_eq!(run_with_timeout(shot), 0, "chromium --screenshot failed");
    let png = fs::read(&screenshot).expect("read screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    println!("screenshot: {}", screenshot.display());
    let _ = fs::remove_dir_all(&dir);
}
