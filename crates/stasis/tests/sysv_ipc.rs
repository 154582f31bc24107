//! Dump and restore of a tree in its own IPC namespace that works through
//! System V shared memory, semaphores and message queues. Other tests
//! cover the dumps that must be rejected: SysV memory attached in the IPC
//! namespace of stasis, a child in another IPC namespace and an open POSIX
//! message queue. A semaphore undo list is saved without its
//! adjustments, with a warning.
//!
//! The workload `sysvipc` checks its own objects at the end (see
//! tests/workloads/sysvipc.c). Its IPC namespace, made by `unshare --ipc`,
//! goes away with its processes, so the tests leave no objects behind.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use nix::unistd::Pid;

fn rounds(text: &str) -> Option<u64> {
    text.trim()
        .strip_prefix("rounds=")
        .and_then(|value| value.parse().ok())
}

/// A running `sysvipc` workload and its status and stop files.
struct Workload {
    pid: Pid,
    status: std::path::PathBuf,
    stop: std::path::PathBuf,
}

impl Workload {
    /// Starts `sysvipc STATUS STOP [MODE]`, in a new IPC namespace when
    /// `own_namespace` is set, and waits until it has run 20 rounds.
    fn start(env: &TestEnv, mode: Option<&str>, own_namespace: bool) -> Workload {
        let status = env.path("status");
        let stop = env.path("stop");
        let binary = workload_binary("sysvipc");
        let mut command = if own_namespace {
            let mut command = Command::new("unshare");
            command.arg("--ipc").arg(&binary);
            command
        } else {
            Command::new(&binary)
        };
        command.arg(&status).arg(&stop).args(mode);
        let pid = env.spawn("sysvipc", &mut command);
        let workload = Workload { pid, status, stop };
        wait_until("the workload to run 20 rounds", WAIT_TIMEOUT, || {
            assert!(
                is_running(pid),
                "sysvipc exited early:\n{}{}",
                env.stdout_of("sysvipc"),
                env.stderr_of("sysvipc")
            );
            workload.rounds().filter(|&n| n >= 20)
        });
        // A child is reparented to the test process if the workload dies,
        // so the test tracks it for cleanup too.
        for child in children(pid) {
            env.track(child);
        }
        workload
    }

    fn rounds(&self) -> Option<u64> {
        rounds(&read_or_empty(&self.status))
    }

    /// Creates the stop file and checks that the root exits 0 with "OK".
    fn finish(&self, env: &TestEnv, root: Pid) {
        std::fs::write(&self.stop, b"").expect("create the stop file");
        let exit = wait_exit(root, WAIT_TIMEOUT);
        let output = env.stdout_of("sysvipc");
        assert_eq!(
            exit,
            Exit::Code(0),
            "the workload failed its checks:\n{output}{}",
            env.stderr_of("sysvipc")
        );
        assert!(
            output.starts_with("OK "),
            "unexpected workload output:\n{output}"
        );
    }
}

fn children(pid: Pid) -> Vec<Pid> {
    read_or_empty(Path::new(&format!("/proc/{pid}/task/{pid}/children")))
        .split_whitespace()
        .filter_map(|text| text.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

fn ipc_namespace(pid: Pid) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/ipc"))
        .map(|link| link.display().to_string())
        .unwrap_or_default()
}

#[test]
fn sysv_ipc_restore_continues() {
    let Some(env) = TestEnv::new("sysv_ipc_restore_continues") else {
        return;
    };
    let workload = Workload::start(&env, None, true);
    let child = children(workload.pid)[0];
    assert_ne!(
        ipc_namespace(workload.pid),
        ipc_namespace(Pid::this()),
        "unshare --ipc did not give the workload its own IPC namespace"
    );

    let image = env.path("image");
    let run = env.dump_and_reap(workload.pid, &image);
    assert!(
        !run.stderr.contains("undo list"),
        "the dump warns about an undo list that the workload does not have:\n{run}"
    );
    assert!(
        image.join("ipc").is_file(),
        "the image has no IPC namespace record"
    );
    let at_dump = workload.rounds().expect("status before the dump");

    let restored = env.restore_detached(&image, workload.pid, &[]);
    env.track(child);
    let child_maps = read_or_empty(Path::new(&format!("/proc/{child}/maps")));
    assert!(
        child_maps
            .lines()
            .any(|line| line.contains("/SYSV53540001") && line.contains(" r--s ")),
        "the restored child lost its read-only attachment:\n{child_maps}"
    );
    assert_eq!(
        children(restored),
        vec![child],
        "the restored workload has other children"
    );
    assert_ne!(
        ipc_namespace(restored),
        ipc_namespace(Pid::this()),
        "the restored tree is in the IPC namespace of the test"
    );
    assert_eq!(
        ipc_namespace(restored),
        ipc_namespace(child),
        "the restored parent and child are in different IPC namespaces"
    );
    let maps = read_or_empty(Path::new(&format!("/proc/{restored}/maps")));
    assert_eq!(
        maps.matches("/SYSV").count(),
        2,
        "the restored parent does not attach its two segments:\n{maps}"
    );

    wait_until("the restored workload to run", WAIT_TIMEOUT, || {
        workload.rounds().filter(|&n| n >= at_dump + 100)
    });
    workload.finish(&env, restored);
}

#[test]
fn sysv_ipc_leave_running_keeps_objects() {
    let Some(env) = TestEnv::new("sysv_ipc_leave_running_keeps_objects") else {
        return;
    };
    let workload = Workload::start(&env, None, true);
    let image = env.path("image");
    env.dump(workload.pid, &image, &["--leave-running"]);
    let after_dump = workload.rounds().expect("status after the dump");
    wait_until("the workload to keep running", WAIT_TIMEOUT, || {
        workload.rounds().filter(|&n| n >= after_dump + 100)
    });
    // The workload's own checks find the five queued messages, which the
    // dump copied without removing them.
    workload.finish(&env, workload.pid);
}

#[test]
fn sysv_ipc_inspect_lists_objects() {
    let Some(env) = TestEnv::new("sysv_ipc_inspect_lists_objects") else {
        return;
    };
    let workload = Workload::start(&env, None, true);
    let image = env.path("image");
    env.dump(workload.pid, &image, &["--leave-running"]);
    let image_text = image.to_str().expect("test paths are UTF-8");

    let run = env.stasis(&["inspect", image_text, "--json"]);
    assert!(run.success(), "inspect failed:\n{run}");
    let summary = run.json();
    assert_eq!(
        summary["integrity"]["intact"], true,
        "inspect finds the image damaged: {}",
        summary["integrity"]
    );
    assert_eq!(
        summary["integrity"]["restore_check"], "passed",
        "{}",
        summary["integrity"]
    );
    let ipc = &summary["ipc"];
    let keys = |kind: &str| -> Vec<i64> {
        ipc[kind]
            .as_array()
            .unwrap_or_else(|| panic!("inspect JSON has no ipc.{kind}: {ipc}"))
            .iter()
            .map(|object| object["key"].as_i64().expect("key"))
            .collect()
    };
    assert_eq!(keys("shm"), vec![0x53540001, 0x53540004, 0], "{ipc}");
    assert_eq!(keys("semaphores"), vec![0x53540002], "{ipc}");
    assert_eq!(keys("queues"), vec![0x53540003], "{ipc}");
    assert_eq!(ipc["semaphores"][0]["values"], serde_json::json!([1, 7]));
    assert_eq!(ipc["queues"][0]["messages"], 5, "{ipc}");
    assert_eq!(ipc["queues"][0]["max_bytes"], 12000, "{ipc}");
    assert_eq!(ipc["shm"][2]["removed"], true, "{ipc}");
    assert_eq!(ipc["shm"][0]["locked"], true, "{ipc}");

    let run = env.stasis(&["inspect", image_text]);
    assert!(run.success(), "inspect failed:\n{run}");
    assert!(
        run.stdout
            .contains("semaphores 1  key 0x53540002  mode 600  values 1 7"),
        "inspect does not list the semaphore set:\n{run}"
    );
    workload.finish(&env, workload.pid);
}

/// Dumps the workload and checks that the dump fails with an error that
/// contains `expected`, writes no manifest, and leaves the workload
/// running.
fn assert_dump_rejected(env: &TestEnv, workload: &Workload, expected: &str) {
    let image = env.path("image");
    let image_text = image.to_str().expect("test paths are UTF-8");
    let pid_text = workload.pid.to_string();
    let run = env.stasis(&["dump", "-t", &pid_text, "-D", image_text]);
    assert!(!run.success(), "the dump succeeded:\n{run}");
    assert!(
        run.stderr.contains(expected),
        "the dump error does not say {expected:?}:\n{run}"
    );
    assert!(
        !image.join("manifest").exists(),
        "the failed dump left a manifest"
    );
    let after = workload.rounds().expect("status after the dump");
    wait_until("the workload to keep running", WAIT_TIMEOUT, || {
        workload.rounds().filter(|&n| n >= after + 20)
    });
    assert_eq!(
        proc_status_value(workload.pid, "TracerPid").as_deref(),
        Some("0"),
        "the workload is still traced after the failed dump"
    );
}

#[test]
fn sysv_ipc_rejects_stasis_namespace() {
    let Some(env) = TestEnv::new("sysv_ipc_rejects_stasis_namespace") else {
        return;
    };
    // The only object is removed while attached, so it goes away with the
    // workload and leaves nothing in the test's IPC namespace.
    let workload = Workload::start(&env, Some("attach-only"), false);
    assert_dump_rejected(&env, &workload, "unshare --ipc");
}

#[test]
fn sysv_ipc_warns_semaphore_undo() {
    let Some(env) = TestEnv::new("sysv_ipc_warns_semaphore_undo") else {
        return;
    };
    let workload = Workload::start(&env, Some("undo"), true);
    let image = env.path("image");
    let run = env.dump(workload.pid, &image, &["--leave-running"]);
    assert!(
        run.stderr.contains("semaphore undo list"),
        "the dump does not warn about the undo list:\n{run}"
    );
    assert!(
        run.stderr.contains(&workload.pid.to_string()),
        "the warning does not name process {}:\n{run}",
        workload.pid
    );
}

#[test]
fn sysv_ipc_rejects_child_namespace() {
    let Some(env) = TestEnv::new("sysv_ipc_rejects_child_namespace") else {
        return;
    };
    let workload = Workload::start(&env, Some("child-namespace"), true);
    let child = children(workload.pid)[0];
    wait_until("the child to leave the IPC namespace", WAIT_TIMEOUT, || {
        (ipc_namespace(child) != ipc_namespace(workload.pid)).then_some(())
    });
    assert_dump_rejected(&env, &workload, "stasis saves one IPC namespace per tree");
}

#[test]
fn sysv_ipc_rejects_posix_queue() {
    let Some(env) = TestEnv::new("sysv_ipc_rejects_posix_queue") else {
        return;
    };
    // An mqueue file looks like a regular file to stat, but restore could
    // not open it by its path.
    let workload = Workload::start(&env, Some("posix-queue"), true);
    assert_dump_rejected(&env, &workload, "is a POSIX message queue");
}

#[test]
fn sysv_ipc_restores_partial_attachments() {
    let Some(env) = TestEnv::new("sysv_ipc_restores_partial_attachments") else {
        return;
    };
    let workload = Workload::start(&env, Some("partial"), true);
    let maps_before = sysv_lines(workload.pid);
    let image = env.path("image");
    env.dump_and_reap(workload.pid, &image);
    let at_dump = workload.rounds().expect("status before the dump");

    let restored = env.restore_detached(&image, workload.pid, &[]);
    for child in children(restored) {
        env.track(child);
    }
    assert_eq!(
        sysv_lines(restored),
        maps_before,
        "the SysV mappings differ after restore"
    );
    wait_until("the restored workload to run", WAIT_TIMEOUT, || {
        workload.rounds().filter(|&n| n >= at_dump + 100)
    });
    // The workload checks the parts that stayed mapped, and that shmdt
    // finds the part at offset 4096 by the original attach address.
    workload.finish(&env, restored);
}

/// Returns the lines of /proc/PID/maps of SysV attachments.
fn sysv_lines(pid: Pid) -> Vec<String> {
    read_or_empty(Path::new(&format!("/proc/{pid}/maps")))
        .lines()
        .filter(|line| line.contains("/SYSV"))
        .map(str::to_owned)
        .collect()
}

/// Runs `stasis ARGS` with `input` as stdin and returns its stdout; panics
/// if it fails.
fn stasis_with_input(args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(STASIS)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start stasis");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait for stasis");
    assert!(
        output.status.success(),
        "stasis {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn sysv_ipc_restore_rejects_missing_record() {
    let Some(env) = TestEnv::new("sysv_ipc_restore_rejects_missing_record") else {
        return;
    };
    let workload = Workload::start(&env, None, true);
    let child = children(workload.pid)[0];
    let image = env.path("image");
    env.dump_and_reap(workload.pid, &image);

    // The IPC namespace record comes back byte for byte through JSON.
    let record = image.join("ipc");
    let json = stasis_with_input(
        &["image", "decode", record.to_str().expect("UTF-8 path")],
        b"",
    );
    let encoded = stasis_with_input(&["image", "encode", "ipc-namespace"], &json);
    assert!(
        encoded == std::fs::read(&record).expect("read the ipc record"),
        "the ipc record changed in a JSON round trip"
    );

    // Without the record, the attachments name a segment the image lacks.
    let manifest_path = image.join("manifest");
    let json = stasis_with_input(
        &[
            "image",
            "decode",
            manifest_path.to_str().expect("UTF-8 path"),
        ],
        b"",
    );
    let mut manifest: serde_json::Value = serde_json::from_slice(&json).expect("manifest JSON");
    manifest["files"]
        .as_array_mut()
        .expect("file list")
        .retain(|entry| entry["name"] != "ipc");
    let encoded = stasis_with_input(
        &["image", "encode", "manifest"],
        manifest.to_string().as_bytes(),
    );
    std::fs::write(&manifest_path, encoded).expect("write the manifest");

    let image_text = image.to_str().expect("UTF-8 path");
    let run = env.stasis(&["restore", "-D", image_text, "-d"]);
    env.track_if_child(workload.pid);
    env.track_if_child(child);
    assert!(!run.success(), "restore succeeded:\n{run}");
    assert!(
        run.stderr.contains("IPC namespace record does not list"),
        "the restore error does not name the missing record:\n{run}"
    );
    assert!(
        wait_pid_free(workload.pid, WAIT_TIMEOUT),
        "process {} is left after the failed restore",
        workload.pid
    );
}

/// Returns the output of `ipcs -m` run in the IPC namespace of `pid`.
fn shm_segments_of(pid: Pid) -> String {
    let output = Command::new("nsenter")
        .arg(format!("--ipc=/proc/{pid}/ns/ipc"))
        .args(["ipcs", "-m"])
        .output()
        .expect("run nsenter ipcs");
    assert!(
        output.status.success(),
        "nsenter ipcs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn sysv_ipc_keeps_unattached_when_forced() {
    let Some(env) = TestEnv::new("sysv_ipc_keeps_unattached_when_forced") else {
        return;
    };
    // With shm_rmid_forced set, detaching the last attachment removes a
    // segment, so the dump must not copy the unattached one through an
    // attachment of its own.
    let workload = Workload::start(&env, Some("forced"), true);
    let image = env.path("image-running");
    env.dump(workload.pid, &image, &["--leave-running"]);
    let segments = shm_segments_of(workload.pid);
    assert!(
        segments.contains("0x53540004"),
        "the dump removed the unattached segment:\n{segments}"
    );

    let image = env.path("image");
    env.dump_and_reap(workload.pid, &image);
    let restored = env.restore_detached(&image, workload.pid, &[]);
    let segments = shm_segments_of(restored);
    assert!(
        segments.contains("0x53540004"),
        "the restore lost the unattached segment:\n{segments}"
    );
}

#[test]
fn sysv_ipc_failed_restore_leaves_nothing() {
    let Some(env) = TestEnv::new("sysv_ipc_failed_restore_leaves_nothing") else {
        return;
    };
    let workload = Workload::start(&env, None, true);
    let child = children(workload.pid)[0];
    let image = env.path("image");
    env.dump_and_reap(workload.pid, &image);

    // A set of 40000 semaphores is valid in the image, but more than the
    // saved limit semmsl (32000) allows, so semget fails after the tree
    // and the first objects exist.
    let record = image.join("ipc");
    let json = stasis_with_input(
        &["image", "decode", record.to_str().expect("UTF-8 path")],
        b"",
    );
    let mut ipc: serde_json::Value = serde_json::from_slice(&json).expect("ipc JSON");
    assert_eq!(ipc["sysctls"][7]["name"], "sem", "{ipc}");
    ipc["sysctls"][7]["value"] = "32000\t1024000000\t500\t32000".into();
    ipc["semaphores"][0]["values"] = serde_json::json!(vec![1; 40000]);
    let encoded = stasis_with_input(
        &["image", "encode", "ipc-namespace"],
        ipc.to_string().as_bytes(),
    );
    std::fs::write(&record, &encoded).expect("write the ipc record");

    let manifest_path = image.join("manifest");
    let json = stasis_with_input(
        &[
            "image",
            "decode",
            manifest_path.to_str().expect("UTF-8 path"),
        ],
        b"",
    );
    let mut manifest: serde_json::Value = serde_json::from_slice(&json).expect("manifest JSON");
    for entry in manifest["files"].as_array_mut().expect("file list") {
        if entry["name"] == "ipc" {
            entry["size"] = encoded.len().into();
            entry["blake3"] = blake3::hash(&encoded).to_hex().to_string().into();
        }
    }
    let encoded = stasis_with_input(
        &["image", "encode", "manifest"],
        manifest.to_string().as_bytes(),
    );
    std::fs::write(&manifest_path, encoded).expect("write the manifest");

    let image_text = image.to_str().expect("UTF-8 path");
    let run = env.stasis(&["restore", "-D", image_text, "-d"]);
    env.track_if_child(workload.pid);
    assert!(!run.success(), "restore succeeded:\n{run}");
    assert!(
        run.stderr.contains("creating System V semaphore set"),
        "the restore error does not name the semaphore set:\n{run}"
    );
    for pid in [workload.pid, child] {
        assert!(
            wait_pid_free(pid, WAIT_TIMEOUT),
            "process {pid} is left after the failed restore"
        );
    }
}
