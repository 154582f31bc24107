//! Dump and restore of a parent and child that share one fd table and one
//! fs state (clone with CLONE_FILES | CLONE_FS) without being threads. The
//! `sharedtable` workload checks, after the restore, that an fd one of them
//! opens or closes is opened or closed for the other, and that a chdir and
//! umask of the child apply to the parent.

mod common;

use std::path::Path;

use common::*;
use nix::unistd::Pid;

/// kcmp(2) types of an fd table and of fs state.
const KCMP_FILES: i32 = 2;
const KCMP_FS: i32 = 3;

/// Returns whether processes `first` and `second` share the kcmp object `kind`.
fn kcmp_equal(first: Pid, second: Pid, kind: i32) -> bool {
    // SAFETY: kcmp takes integers only.
    let order =
        unsafe { libc::syscall(libc::SYS_kcmp, first.as_raw(), second.as_raw(), kind, 0, 0) };
    order == 0
}

/// Returns the JSON of the record file `name` of `image`, decoded by
/// `stasis image decode`.
fn decode(env: &TestEnv, image: &Path, name: &str) -> serde_json::Value {
    let path = image.join(name);
    let run = env.stasis(&["image", "decode", path.to_str().expect("path is UTF-8")]);
    assert!(run.success(), "decoding {name} failed:\n{run}");
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("{name} decodes to invalid JSON ({error}):\n{run}"))
}

/// Returns the value of `key` in the workload's "ready parent=P child=C" line.
fn ready_pid(status: &str, key: &str) -> Pid {
    let value = status
        .split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("status line has no {key}: {status:?}"));
    Pid::from_raw(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{key}={value} is not a PID")),
    )
}

#[test]
fn shared_fd_table_and_fs_survive_restore() {
    let Some(env) = TestEnv::new("shared_fd_table_and_fs_survive_restore") else {
        return;
    };
    let work = env.make_dir("work");
    let status_path = work.join("status");
    let mut command = std::process::Command::new(workload_binary("sharedtable"));
    command.arg(&work);
    let parent = env.spawn("sharedtable", &mut command);
    let status = wait_until("the workload to be ready", WAIT_TIMEOUT, || {
        assert!(
            is_running(parent),
            "sharedtable exited early:\n{}{}",
            env.stdout_of("sharedtable"),
            env.stderr_of("sharedtable")
        );
        Some(read_or_empty(&status_path)).filter(|text| text.starts_with("ready"))
    });
    assert_eq!(ready_pid(&status, "parent"), parent, "status: {status}");
    let child = ready_pid(&status, "child");
    env.track(child);
    assert!(
        kcmp_equal(parent, child, KCMP_FILES) && kcmp_equal(parent, child, KCMP_FS),
        "the workload's child does not share its fd table and fs state before the dump"
    );
    let fds_before = proc_fd_links(parent);

    let image = env.path("image");
    env.dump_and_reap(parent, &image);

    let parent_record = decode(&env, &image, &format!("process-{parent}"));
    let child_record = decode(&env, &image, &format!("process-{child}"));
    assert!(
        parent_record["files_shared_with"].is_null() && parent_record["fs_shared_with"].is_null(),
        "the parent's record names another process as the owner of its state: {}",
        parent_record["files_shared_with"]
    );
    assert_eq!(
        child_record["files_shared_with"],
        parent.as_raw(),
        "the child's record does not name the parent's fd table"
    );
    assert_eq!(
        child_record["fs_shared_with"],
        parent.as_raw(),
        "the child's record does not name the parent's fs state"
    );
    let child_fds = decode(&env, &image, &format!("fds-{child}"));
    assert_eq!(
        child_fds["fds"].as_array().map(Vec::len),
        Some(0),
        "the shared fd table is saved again with the child: {child_fds}"
    );
    let parent_fds = decode(&env, &image, &format!("fds-{parent}"));
    assert_eq!(
        parent_fds["fds"].as_array().map(Vec::len),
        Some(fds_before.len()),
        "the parent's fd table record does not list every fd: {parent_fds}"
    );

    let restored = env.restore_detached(&image, parent, &[]);
    // Tracked again, because cleanup identifies a process by its start time.
    env.track(child);
    assert!(
        is_running(child),
        "the child {child} is not running after the restore"
    );
    assert!(
        kcmp_equal(restored, child, KCMP_FILES),
        "the restored child does not share the parent's fd table"
    );
    assert!(
        kcmp_equal(restored, child, KCMP_FS),
        "the restored child does not share the parent's fs state"
    );
    assert_eq!(
        proc_fd_links(restored),
        fds_before,
        "the restored fd table differs from the dumped one"
    );

    std::fs::write(work.join("go"), b"").expect("create the go file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    let output = env.stdout_of("sharedtable");
    assert_eq!(
        exit,
        Exit::Code(0),
        "sharedtable failed its checks after the restore:\n{output}{}",
        env.stderr_of("sharedtable")
    );
    assert!(
        output.contains("OK"),
        "sharedtable printed no OK:\n{output}"
    );
}

/// Returns every fd of `pid` with the target of its /proc link, sorted,
/// with "pipe" in place of a pipe's inode.
fn proc_fd_links(pid: Pid) -> Vec<(i32, String)> {
    let mut links: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|error| panic!("cannot list the fds of {pid}: {error}"))
        .flatten()
        .filter_map(|entry| {
            let fd: i32 = entry.file_name().to_str()?.parse().ok()?;
            let target = proc_fd_target(pid, fd)?;
            // A restored pipe is a new pipe, with another inode.
            let target = if target.starts_with("pipe:") {
                "pipe".to_string()
            } else {
                target
            };
            Some((fd, target))
        })
        .collect();
    links.sort();
    links
}

#[test]
fn dump_rejects_sharing_outside_tree() {
    let Some(env) = TestEnv::new("dump_rejects_sharing_outside_tree") else {
        return;
    };
    let work = env.make_dir("work");
    let status_path = work.join("status");
    let mut command = std::process::Command::new(workload_binary("sharedtable"));
    command.arg(&work);
    let parent = env.spawn("sharedtable", &mut command);
    let status = wait_until("the workload to be ready", WAIT_TIMEOUT, || {
        assert!(
            is_running(parent),
            "sharedtable exited early:\n{}{}",
            env.stdout_of("sharedtable"),
            env.stderr_of("sharedtable")
        );
        Some(read_or_empty(&status_path)).filter(|text| text.starts_with("ready"))
    });
    let child = ready_pid(&status, "child");
    env.track(child);

    // The child alone: its fd table and fs state stay with the parent,
    // which is outside the dumped tree.
    let image = env.path("image");
    let child_text = child.to_string();
    let run = env.stasis(&[
        "dump",
        "-t",
        &child_text,
        "-D",
        image.to_str().expect("path is UTF-8"),
    ]);
    assert!(!run.success(), "dump of the child alone succeeded:\n{run}");
    assert!(
        contains_number(&run.stderr, parent.as_raw().into()),
        "dump error does not name the parent {parent}:\n{run}"
    );
    assert!(
        run.stderr.contains("outside the dumped tree"),
        "dump error does not say that the sharing process is outside the tree:\n{run}"
    );
    assert!(
        !image.join("manifest").exists(),
        "the failed dump left a manifest"
    );

    // Both processes still run and still share their state.
    std::fs::write(work.join("go"), b"").expect("create the go file");
    let exit = wait_exit(parent, WAIT_TIMEOUT);
    let output = env.stdout_of("sharedtable");
    assert_eq!(
        exit,
        Exit::Code(0),
        "sharedtable failed its checks after the rejected dump:\n{output}{}",
        env.stderr_of("sharedtable")
    );
}

/// Returns the working directory and umask of `pid`.
fn proc_fs_state(pid: Pid) -> (String, Option<String>) {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .map(|path| path.display().to_string())
        .unwrap_or_else(|error| panic!("cannot read the cwd of {pid}: {error}"));
    (cwd, proc_status_value(pid, "Umask"))
}

#[test]
fn mixed_sharing_tree_restored() {
    let Some(env) = TestEnv::new("mixed_sharing_tree_restored") else {
        return;
    };
    let work = env.make_dir("work");
    let status_path = work.join("status");
    let mut command = std::process::Command::new(workload_binary("sharedtree"));
    command.arg(&work);
    let parent = env.spawn("sharedtree", &mut command);
    let status = wait_until("the workload to be ready", WAIT_TIMEOUT, || {
        assert!(
            is_running(parent),
            "sharedtree exited early:\n{}",
            env.stderr_of("sharedtree")
        );
        Some(read_or_empty(&status_path)).filter(|text| text.starts_with("ready"))
    });
    let files_child = ready_pid(&status, "files_child");
    let grandchild = ready_pid(&status, "grandchild");
    let plain_child = ready_pid(&status, "plain_child");
    let others = [files_child, grandchild, plain_child];
    for pid in others {
        env.track(pid);
    }
    let everyone = [parent, files_child, grandchild, plain_child];
    let fds_before: Vec<_> = everyone.iter().map(|&pid| proc_fd_links(pid)).collect();
    let fs_before: Vec<_> = everyone.iter().map(|&pid| proc_fs_state(pid)).collect();

    let image = env.path("image");
    env.dump_and_reap(parent, &image);
    let expected_records = [
        (files_child, Some(parent), None),
        (grandchild, Some(parent), Some(files_child)),
        (plain_child, None, None),
    ];
    for (pid, files, fs) in expected_records {
        let record = decode(&env, &image, &format!("process-{pid}"));
        assert_eq!(
            record["files_shared_with"].as_i64(),
            files.map(|owner| owner.as_raw().into()),
            "files_shared_with of process {pid}"
        );
        assert_eq!(
            record["fs_shared_with"].as_i64(),
            fs.map(|owner| owner.as_raw().into()),
            "fs_shared_with of process {pid}"
        );
    }

    let restored = env.restore_detached(&image, parent, &[]);
    for pid in others {
        env.track(pid);
        assert!(
            is_running(pid),
            "process {pid} is not running after the restore"
        );
    }
    assert_eq!(restored, parent);
    let table_pairs = [
        (parent, files_child, true),
        (parent, grandchild, true),
        (parent, plain_child, false),
        (files_child, plain_child, false),
    ];
    for (first, second, shared) in table_pairs {
        assert_eq!(
            kcmp_equal(first, second, KCMP_FILES),
            shared,
            "processes {first} and {second} should share their fd table: {shared}"
        );
    }
    let fs_pairs = [
        (files_child, grandchild, true),
        (parent, files_child, false),
        (parent, plain_child, false),
    ];
    for (first, second, shared) in fs_pairs {
        assert_eq!(
            kcmp_equal(first, second, KCMP_FS),
            shared,
            "processes {first} and {second} should share their fs state: {shared}"
        );
    }
    for (index, &pid) in everyone.iter().enumerate() {
        assert_eq!(
            proc_fd_links(pid),
            fds_before[index],
            "the fds of process {pid} differ after the restore"
        );
        assert_eq!(
            proc_fs_state(pid),
            fs_before[index],
            "the cwd or umask of process {pid} differs after the restore"
        );
    }
}
