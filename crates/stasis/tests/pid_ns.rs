//! Restore into a new PID namespace: with `--pid-ns`, on its own when a
//! saved PID is taken, and the cases that must fail.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Splits a "key=value key=value" line into its fields, in order.
fn fields(text: &str) -> Vec<(String, String)> {
    text.split_whitespace()
        .filter_map(|field| {
            let (key, value) = field.split_once('=')?;
            Some((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Returns the integer value of `key` in a "key=value ..." line, and
/// panics if it is missing.
fn field(text: &str, key: &str) -> i64 {
    fields(text)
        .into_iter()
        .find(|(name, _)| name == key)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or_else(|| panic!("no integer {key}= in {text:?}"))
}

/// Returns the PIDs of a process in each PID namespace it is in, outermost first,
/// from the NSpid line of /proc/PID/status.
fn namespace_pids(pid: Pid) -> Vec<i32> {
    proc_status_value(pid, "NSpid")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|value| value.parse().ok())
        .collect()
}

/// Returns the /proc/PID/ns/pid link of a process, such as "pid:[4026531836]".
fn pid_namespace_of(pid: Pid) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/ns/pid")).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// Lists the running init processes (`pid-ns-init`) of the `stasis` binary
/// that these tests use.
fn running_inits() -> Vec<Pid> {
    let stasis = fs::canonicalize(STASIS).expect("the stasis binary exists");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .filter(|&pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
            cmdline.ends_with(b"\0pid-ns-init\0") && exe.as_deref() == Some(stasis.as_path())
        })
        .collect()
}

/// Lists the processes outside the PID namespace of the test whose PID in
/// their innermost namespace is `pid`.
fn namespaced_processes_with(pid: Pid) -> Vec<Pid> {
    let own = pid_namespace_of(Pid::this());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .filter(|&other| {
            let pids = namespace_pids(other);
            pids.len() > 1 && pids.last() == Some(&pid.as_raw()) && pid_namespace_of(other) != own
        })
        .collect()
}

/// Starts pidns.py in `dir` and returns its PID and its child's PID, once
/// it wrote them.
fn start_pidns_workload(env: &TestEnv, dir: &Path) -> (Pid, Pid) {
    let mut command = Command::new("python3");
    command
        .arg(workload_script("pidns.py"))
        .arg(dir)
        .stdin(Stdio::null());
    let pid = env.spawn("pidns", &mut command);
    let ready = wait_until("pidns.py to start its child", WAIT_TIMEOUT, || {
        let text = read_or_empty(&dir.join("ready"));
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(
        field(&ready, "parent"),
        i64::from(pid.as_raw()),
        "pidns.py reported another PID than the one the test started"
    );
    let child = Pid::from_raw(field(&ready, "child") as i32);
    env.track(child);
    wait_until_in_sigwait(pid);
    wait_until_in_sigwait(child);
    (pid, child)
}

/// Waits until `pid` runs untraced and blocks in sigwait (rt_sigtimedwait),
/// so that a signal sent now reaches the program and not the restore.
fn wait_until_in_sigwait(pid: Pid) {
    wait_until(
        &format!("process {pid} to block in sigwait"),
        WAIT_TIMEOUT,
        || {
            let untraced = proc_status_value(pid, "TracerPid").as_deref() == Some("0");
            (untraced && proc_syscall(pid) == Some(libc::SYS_rt_sigtimedwait)).then_some(())
        },
    );
}

/// Checks the result line of pidns.py run as `saved` with child
/// `saved_child`, restored in a new PID namespace as `outer`.
fn check_pidns_result(dir: &Path, saved: Pid, saved_child: Pid, outer: Pid) {
    let result = read_or_empty(&dir.join("result"));
    assert_eq!(
        field(&result, "start_pid"),
        i64::from(saved.as_raw()),
        "the saved start PID changed: {result:?}"
    );
    assert_eq!(
        field(&result, "pid"),
        i64::from(saved.as_raw()),
        "getpid() in the restored process is not the saved PID: {result:?}"
    );
    assert_eq!(
        field(&result, "child"),
        i64::from(saved_child.as_raw()),
        "the saved child PID changed: {result:?}"
    );
    assert_eq!(
        field(&result, "child_status"),
        0,
        "the child did not get SIGTERM by its saved PID, or its getpid() changed: {result:?}"
    );
    assert_eq!(
        field(&result, "ppid"),
        0,
        "getppid() of the root should be 0, because its parent is outside the namespace: {result:?}"
    );
    assert_eq!(
        field(&result, "proc_self"),
        i64::from(outer.as_raw()),
        "/proc/self should name the PID outside the namespace, because /proc is the host's: {result:?}"
    );
}

#[test]
fn pid_ns_restore_while_original_runs() {
    let Some(env) = TestEnv::new("pid_ns_restore_while_original_runs") else {
        return;
    };
    let dir = env.make_dir("pidns");
    let (pid, child) = start_pidns_workload(&env, &dir);
    let image = env.path("image");
    env.dump(pid, &image, &["--leave-running"]);

    let run = env.stasis(&[
        "restore",
        "-D",
        image.to_str().expect("test paths are UTF-8"),
        "-d",
        "--json",
        "--pid-ns",
    ]);
    assert!(run.success(), "restore --pid-ns failed:\n{run}");
    let summary = run.json();
    let outer = Pid::from_raw(run.json_u64("pid") as i32);
    let namespace = &summary["pid_namespace"];
    let init = Pid::from_raw(
        namespace["init_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no pid_namespace.init_pid in the summary:\n{run}"))
            as i32,
    );
    env.track_if_child(outer);
    env.track_if_child(init);

    assert_ne!(
        outer, pid,
        "the restored root has the PID that the original holds"
    );
    assert_eq!(
        namespace["root_pid"].as_u64(),
        Some(pid.as_raw() as u64),
        "pid_namespace.root_pid is not the saved PID:\n{run}"
    );
    assert!(
        namespace["reason"].is_null(),
        "a requested namespace should have no reason:\n{run}"
    );
    assert!(
        !run.stderr.contains("new PID namespace"),
        "restore --pid-ns printed the message of the automatic choice:\n{run}"
    );
    assert_eq!(
        namespace_pids(outer),
        vec![outer.as_raw(), pid.as_raw()],
        "NSpid of the restored root is not its outer PID and the saved PID"
    );
    assert_eq!(
        namespace_pids(init),
        vec![init.as_raw(), 1],
        "the init is not PID 1 of the namespace"
    );
    let link = format!(
        "pid:[{}]",
        namespace["inode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no pid_namespace.inode in the summary:\n{run}"))
    );
    assert_eq!(
        pid_namespace_of(outer).as_deref(),
        Some(link.as_str()),
        "the root is not in the namespace that the summary names"
    );
    assert_eq!(
        pid_namespace_of(init).as_deref(),
        Some(link.as_str()),
        "the init is not in the namespace that the summary names"
    );
    let outer_child = wait_until("the restored child to appear", WAIT_TIMEOUT, || {
        let text = fs::read_to_string(format!("/proc/{outer}/task/{outer}/children")).ok()?;
        text.split_whitespace()
            .next()
            .and_then(|value| value.parse().ok())
            .map(Pid::from_raw)
    });
    assert_eq!(
        namespace_pids(outer_child).last(),
        Some(&child.as_raw()),
        "the restored child does not have its saved PID inside the namespace"
    );

    wait_until_in_sigwait(outer);
    let outer_text = outer.to_string();
    let second_image = env.path("second-image");
    let dump = env.stasis(&[
        "dump",
        "-t",
        &outer_text,
        "-D",
        second_image.to_str().expect("test paths are UTF-8"),
        "--leave-running",
    ]);
    assert!(
        !dump.success(),
        "dump of a tree in another PID namespace succeeded:\n{dump}"
    );
    assert!(
        dump.stderr.contains("another PID namespace"),
        "the dump error does not name the PID namespace:\n{dump}"
    );
    wait_until_in_sigwait(outer);
    send_signal(outer, Signal::SIGUSR1);
    let exit = wait_exit(outer, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "the restored root failed:\n{}",
        env.stderr_of("pidns")
    );
    check_pidns_result(&dir, pid, child, outer);

    let init_exit = wait_exit(init, WAIT_TIMEOUT);
    assert_eq!(
        init_exit,
        Exit::Code(0),
        "the init did not exit cleanly once the tree was gone"
    );
    assert!(
        is_running(pid) && is_running(child),
        "the original workload stopped running"
    );
    assert_eq!(
        proc_syscall(pid),
        Some(libc::SYS_rt_sigtimedwait),
        "the original workload no longer waits for its signal"
    );
}

#[test]
fn restore_falls_back_to_pid_ns() {
    let Some(env) = TestEnv::new("restore_falls_back_to_pid_ns") else {
        return;
    };
    let dir = env.make_dir("pidns");
    let (pid, child) = start_pidns_workload(&env, &dir);
    let image = env.path("image");
    env.dump(pid, &image, &["--leave-running"]);

    // Without -d, stasis stays the parent of the root and exits with its
    // status, so the test finds the root among its children.
    let process = env.spawn_stasis(&["restore", "-D", image.to_str().expect("UTF-8 path")]);
    let stasis = process.pid;
    let outer = wait_until("the restored root to run", WAIT_TIMEOUT, || {
        let text = fs::read_to_string(format!("/proc/{stasis}/task/{stasis}/children")).ok()?;
        text.split_whitespace()
            .filter_map(|value| value.parse().ok())
            .map(Pid::from_raw)
            .find(|&candidate| namespace_pids(candidate).last() == Some(&pid.as_raw()))
    });
    env.track(outer);
    let init = wait_until("the namespace's init", WAIT_TIMEOUT, || {
        let text = fs::read_to_string(format!("/proc/{stasis}/task/{stasis}/children")).ok()?;
        text.split_whitespace()
            .filter_map(|value| value.parse().ok())
            .map(Pid::from_raw)
            .find(|&candidate| namespace_pids(candidate).last() == Some(&1))
    });
    env.track(init);
    assert_eq!(
        pid_namespace_of(init),
        pid_namespace_of(outer),
        "the init and the root are in different PID namespaces"
    );
    wait_until_in_sigwait(outer);
    send_signal(outer, Signal::SIGUSR1);
    let run = env.wait_stasis(process, STASIS_TIMEOUT);
    assert_eq!(
        run.exit,
        Exit::Code(0),
        "stasis restore did not exit with the status of the restored root:\n{run}"
    );
    check_pidns_result(&dir, pid, child, outer);
    // stasis exited, so the init is now a child of the test, the subreaper.
    assert_eq!(
        wait_exit(init, WAIT_TIMEOUT),
        Exit::Code(0),
        "the init did not exit cleanly once the tree was gone"
    );

    let notices: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.contains("new PID namespace"))
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "expected one line about the new PID namespace:\n{run}"
    );
    assert!(
        contains_number(notices[0], pid.as_raw().into()) && notices[0].contains("in use"),
        "the message does not name the taken PID {pid}:\n{run}"
    );
    assert!(
        notices[0].contains("--no-pid-ns"),
        "the message does not say how to refuse the namespace:\n{run}"
    );
    assert!(
        run.stderr.contains(&format!("pid {outer} outside it")),
        "the summary line does not give the PID outside the namespace:\n{run}"
    );
    assert!(
        is_running(pid) && is_running(child),
        "the original workload stopped running"
    );
}

#[test]
fn pid_ns_options_conflict() {
    let Some(env) = TestEnv::new("pid_ns_options_conflict") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    env.dump(pid, &image, &["--leave-running"]);
    let inits_before = running_inits();

    let image_text = image.to_str().expect("test paths are UTF-8");
    let run = env.stasis(&["restore", "-D", image_text, "-d", "--pid-ns", "--no-pid-ns"]);
    assert_eq!(
        run.exit,
        Exit::Code(2),
        "--pid-ns with --no-pid-ns was not rejected as a usage error:\n{run}"
    );
    assert!(
        run.stderr.contains("cannot be used with"),
        "the usage error does not name the conflict:\n{run}"
    );
    assert!(
        namespaced_processes_with(pid).is_empty(),
        "the rejected restore created a process in another PID namespace"
    );
    assert_eq!(
        running_inits(),
        inits_before,
        "the rejected restore started a namespace init"
    );
    wait_until_sleeping(pid);
}

#[test]
fn pid_ns_init_rejects_direct_run() {
    let Some(env) = TestEnv::new("pid_ns_init_rejects_direct_run") else {
        return;
    };
    let run = env.stasis(&["pid-ns-init"]);
    assert_eq!(
        run.exit,
        Exit::Code(2),
        "pid-ns-init outside a new PID namespace did not fail:\n{run}"
    );
    assert!(
        run.stderr.contains("init of a PID namespace"),
        "pid-ns-init does not say where it runs:\n{run}"
    );
}

#[test]
fn pid_ns_restore_failure_leaves_nothing() {
    let Some(env) = TestEnv::new("pid_ns_restore_failure_leaves_nothing") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    env.dump(pid, &image, &["--leave-running"]);
    let inits_before = running_inits();

    // A changed byte in the middle of the pages file is found by the hash
    // check, which ends while the processes are already created.
    let pages = list_files(&image)
        .into_iter()
        .find(|name| name.to_string_lossy().starts_with("pages-"))
        .expect("the image has a pages file");
    let path = image.join(&pages);
    let mut bytes = fs::read(&path).expect("read the pages file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&path, &bytes).expect("write the pages file");

    for extra in [&["--pid-ns"][..], &[][..]] {
        let mut args = vec!["restore", "-D", image.to_str().expect("UTF-8 path"), "-d"];
        args.extend_from_slice(extra);
        let run = env.stasis(&args);
        assert!(
            !run.success(),
            "restore {extra:?} of a damaged image succeeded:\n{run}"
        );
        assert!(
            run.stderr.contains(&pages.to_string_lossy().into_owned()),
            "restore {extra:?}: the error does not name the damaged file:\n{run}"
        );
        assert!(
            wait_until_true(|| namespaced_processes_with(pid).is_empty()),
            "restore {extra:?} left a process with PID {pid} in a PID namespace"
        );
        assert!(
            wait_until_true(|| running_inits() == inits_before),
            "restore {extra:?} left its namespace init running"
        );
    }
    assert_eq!(
        proc_comm(pid).as_deref(),
        Some("sleep"),
        "PID {pid} no longer belongs to the original sleep"
    );
}

/// Polls `probe` until it returns true or [`WAIT_TIMEOUT`] passes, and
/// returns its last result.
fn wait_until_true(mut probe: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        if probe() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn pid_ns_restore_of_family_with_zombie() {
    let Some(env) = TestEnv::new("pid_ns_restore_of_family_with_zombie") else {
        return;
    };
    let dir = env.make_dir("family");
    let mut command = Command::new("python3");
    command
        .arg(workload_script("family.py"))
        .arg(&dir)
        .stdin(Stdio::null());
    let pid = env.spawn("family", &mut command);
    let ready = wait_until("the family to start", WAIT_TIMEOUT, || {
        let text = read_or_empty(&dir.join("ready"));
        (!text.is_empty()).then_some(text)
    });
    let zombie = Pid::from_raw(field(&ready, "zombie") as i32);
    let writer = Pid::from_raw(field(&ready, "writer") as i32);
    wait_until("the zombie to exit", WAIT_TIMEOUT, || {
        (proc_state(zombie) == Some('Z')).then_some(())
    });
    wait_until("the family to write", WAIT_TIMEOUT, || {
        (read_or_empty(&dir.join("log")).lines().count() >= 20).then_some(())
    });

    // The dump kills the family. Until the test reaps them, the three
    // exited processes keep their PIDs, so the restore needs a namespace.
    let image = env.path("image");
    env.dump(pid, &image, &[]);
    for held in [pid, zombie, writer] {
        wait_until("the dumped process to exit", WAIT_TIMEOUT, || {
            (proc_state(held) == Some('Z')).then_some(())
        });
    }

    let run = env.stasis(&[
        "restore",
        "-D",
        image.to_str().expect("test paths are UTF-8"),
        "-d",
        "--json",
        "--pid-ns",
    ]);
    assert!(run.success(), "restore --pid-ns failed:\n{run}");
    let outer = Pid::from_raw(run.json_u64("pid") as i32);
    let init = Pid::from_raw(
        run.json()["pid_namespace"]["init_pid"]
            .as_u64()
            .unwrap_or(0) as i32,
    );
    env.track_if_child(outer);
    env.track_if_child(init);
    for killed in [pid, writer] {
        assert_eq!(
            wait_exit(killed, WAIT_TIMEOUT),
            Exit::Signal(Signal::SIGKILL),
            "dumped process {killed} did not end by the dump's SIGKILL"
        );
    }
    assert_eq!(
        wait_exit(zombie, WAIT_TIMEOUT),
        Exit::Code(7),
        "the original zombie did not keep its exit status"
    );

    let restored_zombie = namespaced_processes_with(zombie);
    assert_eq!(
        restored_zombie.len(),
        1,
        "expected one restored process with the zombie's saved PID {zombie}"
    );
    assert_eq!(
        proc_state(restored_zombie[0]),
        Some('Z'),
        "the restored zombie is not a zombie"
    );

    let before = read_or_empty(&dir.join("log")).lines().count();
    wait_until("the restored family to write", WAIT_TIMEOUT, || {
        (read_or_empty(&dir.join("log")).lines().count() >= before + 20).then_some(())
    });
    fs::write(dir.join("stop"), b"").expect("create the stop file");
    let exit = wait_exit(outer, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "the restored family failed:\n{}",
        env.stderr_of("family")
    );
    let result = read_or_empty(&dir.join("result"));
    assert!(
        result.contains("zombie_status=7 "),
        "the parent did not reap the zombie's status 7 by its saved PID: {result:?}"
    );
    assert!(
        result.contains("writer_status=-15"),
        "the parent did not stop the writer by its saved PID: {result:?}"
    );
    assert_eq!(
        wait_exit(init, WAIT_TIMEOUT),
        Exit::Code(0),
        "the init did not exit cleanly once the family was gone"
    );
}

#[test]
fn pid_ns_restore_keeps_thread_ids() {
    let Some(env) = TestEnv::new("pid_ns_restore_keeps_thread_ids") else {
        return;
    };
    let status = env.path("status");
    let stop = env.path("stop");
    let mut command = Command::new(workload_binary("threads"));
    command.arg(&status).arg(&stop).stdin(Stdio::null());
    let pid = env.spawn("threads", &mut command);
    wait_until(
        "the threads workload to finish a round",
        WAIT_TIMEOUT,
        || (!read_or_empty(&status).is_empty()).then_some(()),
    );
    let tids_before = proc_thread_ids(pid);
    let image = env.path("image");
    env.dump(pid, &image, &[]);
    // The dumped process is not reaped yet, so its PID is still taken.
    let run = env.stasis(&[
        "restore",
        "-D",
        image.to_str().expect("test paths are UTF-8"),
        "-d",
        "--json",
        "--pid-ns",
    ]);
    assert!(run.success(), "restore --pid-ns failed:\n{run}");
    let outer = Pid::from_raw(run.json_u64("pid") as i32);
    let init = Pid::from_raw(
        run.json()["pid_namespace"]["init_pid"]
            .as_u64()
            .unwrap_or(0) as i32,
    );
    env.track_if_child(outer);
    env.track_if_child(init);
    assert_eq!(
        wait_exit(pid, WAIT_TIMEOUT),
        Exit::Signal(Signal::SIGKILL),
        "the dumped workload did not end by the dump's SIGKILL"
    );

    let inner_tids: Vec<i32> = proc_thread_ids(outer)
        .into_iter()
        .map(|tid| {
            let text =
                fs::read_to_string(format!("/proc/{outer}/task/{tid}/status")).unwrap_or_default();
            text.lines()
                .find_map(|line| line.strip_prefix("NSpid:"))
                .and_then(|values| values.split_whitespace().last()?.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let mut inner_sorted = inner_tids.clone();
    inner_sorted.sort_unstable();
    assert_eq!(
        inner_sorted, tids_before,
        "the restored threads do not have their saved TIDs inside the namespace"
    );

    let at_restore = read_or_empty(&status);
    wait_until("the restored workload to go on", WAIT_TIMEOUT, || {
        (read_or_empty(&status) != at_restore).then_some(())
    });
    fs::write(&stop, b"").expect("create the stop file");
    let exit = wait_exit(outer, WAIT_TIMEOUT);
    let output = env.stdout_of("threads");
    assert_eq!(
        exit,
        Exit::Code(0),
        "the threads workload failed its checks:\n{output}"
    );
    assert!(
        output.starts_with("OK "),
        "unexpected threads workload output:\n{output}"
    );
    assert_eq!(
        wait_exit(init, WAIT_TIMEOUT),
        Exit::Code(0),
        "the init did not exit cleanly once the workload was gone"
    );
}
