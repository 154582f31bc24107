//! Dump of processes that have something stasis does not support yet: a
//! pidfd, a child sharing its address space, two children sharing an fd
//! table that their parent does not have, an unnamed Unix socket, a
//! terminal. The dump must fail with an error that names the child or
//! descriptor, write no manifest, and leave the target running as before.
//! With --shell-job the terminal fds are saved instead, and restore
//! attaches them to its own terminal.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use nix::unistd::Pid;

/// A running `unsupported` workload and the key=value pairs of its ready file.
struct Target {
    pid: Pid,
    ready: BTreeMap<String, String>,
    status_path: std::path::PathBuf,
}

impl Target {
    /// Starts `unsupported MODE DIR` and waits for its ready file.
    fn start(env: &TestEnv, mode: &str) -> Target {
        let dir = env.make_dir("target-state");
        let mut command = Command::new(workload_binary("unsupported"));
        command.arg(mode).arg(&dir);
        let pid = env.spawn("target", &mut command);

        let ready_path = dir.join("ready");
        let text = wait_until("the target to write its ready file", WAIT_TIMEOUT, || {
            assert!(
                is_running(pid),
                "unsupported {mode} exited early:\n{}",
                env.stderr_of("target")
            );
            std::fs::read_to_string(&ready_path).ok()
        });
        let ready = text
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        Target {
            pid,
            ready,
            status_path: dir.join("status"),
        }
    }

    /// Returns the numbers in the ready file's value for `key`, such as the
    /// two descriptors in "fd=3,4".
    fn numbers(&self, key: &str) -> Vec<i32> {
        let value = self
            .ready
            .get(key)
            .unwrap_or_else(|| panic!("ready file has no {key}: {:?}", self.ready));
        value
            .split(',')
            .map(|number| {
                number
                    .parse()
                    .unwrap_or_else(|_| panic!("{key}={value} is not a number list"))
            })
            .collect()
    }

    fn tick(&self) -> Option<u64> {
        let text = read_or_empty(&self.status_path);
        text.strip_prefix("tick ")?.trim().parse().ok()
    }
}

/// Dumps the target and checks the failure: non-zero exit, an error that
/// names one of `expected_ids`, no manifest, and a target that still runs,
/// untraced, and makes progress. Returns the error output of the dump.
fn assert_dump_rejected(
    env: &TestEnv,
    target: &Target,
    resource: &str,
    expected_ids: &[i32],
) -> String {
    let pid = target.pid;
    let image = env.path("image");
    let image_text = image.to_str().expect("test paths are UTF-8");
    let pid_text = pid.to_string();

    let run = env.stasis(&["dump", "-t", &pid_text, "-D", image_text]);
    assert!(
        !run.success(),
        "dump of a target with {resource} succeeded:\n{run}"
    );
    assert!(
        expected_ids
            .iter()
            .any(|&id| contains_number(&run.stderr, id.into())),
        "dump error does not name {resource} {expected_ids:?}:\n{run}"
    );
    assert!(
        !image.join("manifest").exists(),
        "failed dump left a manifest in {}",
        image.display()
    );

    assert!(
        is_running(pid),
        "target {pid} is not running after the failed dump"
    );
    let state = proc_state(pid);
    assert!(
        !matches!(state, Some('T') | Some('t')),
        "target {pid} is left stopped (state {state:?}) after the failed dump"
    );
    let tracer = proc_status_value(pid, "TracerPid");
    assert_eq!(
        tracer.as_deref(),
        Some("0"),
        "target {pid} is still traced after the failed dump"
    );
    let tick_after_dump = target.tick().expect("target has a status line");
    wait_until(
        "the target to keep ticking after the failed dump",
        WAIT_TIMEOUT,
        || (target.tick()? > tick_after_dump + 5).then_some(()),
    );
    run.stderr
}

#[test]
fn dump_rejects_shared_address_space() {
    let Some(env) = TestEnv::new("dump_rejects_shared_address_space") else {
        return;
    };
    let target = Target::start(&env, "sharedvm");
    let child = target.numbers("child")[0];
    // The child is reparented to the test process if the target dies, so the
    // test kills it too.
    env.track(Pid::from_raw(child));

    let message = assert_dump_rejected(&env, &target, "the child sharing its memory", &[child]);
    assert!(
        message.contains("address space") && message.contains("CLONE_VM"),
        "dump error does not say that the memory is shared:\n{message}"
    );
    assert!(
        is_running(Pid::from_raw(child)),
        "the child is not running after the failed dump"
    );
}

#[test]
fn dump_rejects_fd_table_shared_by_siblings() {
    let Some(env) = TestEnv::new("dump_rejects_fd_table_shared_by_siblings") else {
        return;
    };
    let target = Target::start(&env, "splitfiles");
    let children = target.numbers("child");
    for &child in &children {
        env.track(Pid::from_raw(child));
    }

    let message =
        assert_dump_rejected(&env, &target, "the children sharing an fd table", &children);
    for &child in &children {
        assert!(
            contains_number(&message, child.into()),
            "dump error does not name child {child}:\n{message}"
        );
    }
    assert!(
        message.contains("fd table") && message.contains("CLONE_FILES"),
        "dump error does not say that the fd table is shared:\n{message}"
    );
    for &child in &children {
        assert!(
            is_running(Pid::from_raw(child)),
            "child {child} is not running after the failed dump"
        );
    }
}

#[test]
fn dump_rejects_pidfd() {
    let Some(env) = TestEnv::new("dump_rejects_pidfd") else {
        return;
    };
    let target = Target::start(&env, "pidfd");
    let fd = target.numbers("fd")[0];

    assert_dump_rejected(&env, &target, "the pidfd", &[fd]);
}

#[test]
fn dump_rejects_socket_fd() {
    let Some(env) = TestEnv::new("dump_rejects_socket_fd") else {
        return;
    };
    let target = Target::start(&env, "socket");
    let fd = target.numbers("fd")[0];

    assert_dump_rejected(&env, &target, "the socket descriptor", &[fd]);
    let link = proc_fd_target(target.pid, fd);
    assert!(
        link.as_deref()
            .is_some_and(|link| link.starts_with("socket:")),
        "descriptor {fd} of target {} is {link:?} after the failed dump, not the socket",
        target.pid
    );
}

#[test]
fn dump_rejects_tty_fd() {
    let Some(env) = TestEnv::new("dump_rejects_tty_fd") else {
        return;
    };
    let target = Target::start(&env, "tty");
    let fds = target.numbers("fd");

    assert_dump_rejected(&env, &target, "the terminal descriptor", &fds);
    for &fd in &fds {
        let link = proc_fd_target(target.pid, fd);
        assert!(
            link.as_deref().is_some_and(|link| link.starts_with("/dev/pt")),
            "descriptor {fd} of target {} is {link:?} after the failed dump, not the pseudoterminal",
            target.pid
        );
    }
}

#[test]
fn shell_job_restore_reattaches_terminal() {
    let Some(env) = TestEnv::new("shell_job_restore_reattaches_terminal") else {
        return;
    };
    if !std::path::Path::new("/usr/bin/script").exists() {
        eprintln!("skipping shell_job_restore_reattaches_terminal: script(1) from util-linux is not installed");
        return;
    }
    let target = Target::start(&env, "tty");
    let fds = target.numbers("fd");
    let pid = target.pid;
    let image = env.path("image");
    let image_text = image.to_str().expect("test paths are UTF-8");
    let pid_text = pid.to_string();

    let run = env.stasis(&["dump", "-t", &pid_text, "-D", image_text, "--shell-job"]);
    assert!(run.success(), "dump --shell-job failed:\n{run}");
    assert!(
        wait_pid_free(pid, WAIT_TIMEOUT),
        "PID {pid} is still in use after the dump"
    );

    // script(1) runs the restore with a new pseudoterminal on its standard
    // input, which the restored terminal fds are attached to.
    let restore = format!("{STASIS} restore -D {image_text} -d");
    let output = Command::new("script")
        .args(["-qec", &restore, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    env.track_if_child(pid);
    assert!(
        output.status.success(),
        "restore under script failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(is_running(pid), "the restored process is not running");
    for &fd in &fds {
        let link = proc_fd_target(pid, fd);
        assert!(
            link.as_deref()
                .is_some_and(|link| link.starts_with("/dev/pts/")),
            "restored descriptor {fd} is {link:?}, not a pseudoterminal"
        );
    }
}
