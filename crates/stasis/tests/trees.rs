//! Dump and restore of process trees: a shell pipeline whose processes
//! share pipes, and a parent with a zombie child and a child that shares
//! a file offset with it.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// Lines the pipeline's producer writes.
const PIPELINE_LINES: u64 = 300;

fn line_numbers(text: &str, name: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .collect()
}

#[test]
fn pipeline_restore_keeps_every_line() {
    let Some(env) = TestEnv::new("pipeline_restore_keeps_every_line") else {
        return;
    };
    let output = env.path("output");
    let script = format!(
        "i=0; while [ $i -lt {PIPELINE_LINES} ]; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done \
         | grep --line-buffered line | cat > {}",
        output.display()
    );
    let mut command = Command::new("bash");
    command.arg("-c").arg(&script).stdin(Stdio::null());
    let pid = env.spawn("pipeline", &mut command);
    wait_until("the pipeline to write 30 lines", WAIT_TIMEOUT, || {
        (line_numbers(&read_or_empty(&output), "line").len() >= 30).then_some(())
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    let processes = dump.json_u64("processes");
    assert!(
        processes >= 4,
        "expected bash, its subshell, grep and cat in the image, got {processes}:\n{dump}"
    );
    let at_dump = line_numbers(&read_or_empty(&output), "line").len() as u64;
    assert!(
        at_dump < PIPELINE_LINES,
        "the pipeline finished before the dump"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(exit, Exit::Code(0), "restored pipeline failed");

    let numbers = line_numbers(&read_or_empty(&output), "line");
    let expected: Vec<u64> = (1..=PIPELINE_LINES).collect();
    assert_eq!(
        numbers.len(),
        expected.len(),
        "the pipeline output lost or repeated lines"
    );
    assert_eq!(numbers, expected, "the pipeline output is out of order");
}

#[test]
fn family_restore_keeps_zombie_and_offset() {
    let Some(env) = TestEnv::new("family_restore_keeps_zombie_and_offset") else {
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
    let zombie: i32 = ready
        .split_whitespace()
        .find_map(|field| field.strip_prefix("zombie=")?.parse().ok())
        .expect("ready names the zombie");
    wait_until("the zombie to exit", WAIT_TIMEOUT, || {
        (proc_state(nix::unistd::Pid::from_raw(zombie)) == Some('Z')).then_some(())
    });
    wait_until("both writers to write", WAIT_TIMEOUT, || {
        let log = read_or_empty(&dir.join("log"));
        (line_numbers(&log, "parent").len() >= 10 && line_numbers(&log, "child").len() >= 10)
            .then_some(())
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        3,
        "expected parent, zombie and writer:\n{dump}"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    assert_eq!(
        proc_state(nix::unistd::Pid::from_raw(zombie)),
        Some('Z'),
        "the zombie child is not a zombie after restore"
    );
    assert_eq!(
        proc_comm(nix::unistd::Pid::from_raw(zombie)).as_deref(),
        Some("python3"),
        "the restored zombie has another name"
    );
    let before = line_numbers(&read_or_empty(&dir.join("log")), "parent").len();
    wait_until("the restored writers to go on", WAIT_TIMEOUT, || {
        (line_numbers(&read_or_empty(&dir.join("log")), "parent").len() >= before + 10)
            .then_some(())
    });
    std::fs::write(dir.join("stop"), b"").expect("create the stop file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored family failed:\n{}",
        env.stderr_of("family")
    );

    let result = read_or_empty(&dir.join("result"));
    assert!(
        result.contains("zombie_status=7 "),
        "the parent did not reap the zombie's status 7: {result:?}"
    );
    let log = read_or_empty(&dir.join("log"));
    for line in log.lines() {
        let well_formed =
            line_numbers(line, "parent").len() == 1 || line_numbers(line, "child").len() == 1;
        assert!(
            well_formed,
            "a log line was overwritten, so the offset was not shared: {line:?}"
        );
    }
    for name in ["parent", "child"] {
        let numbers = line_numbers(&log, name);
        let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, expected, "{name} lines are missing or repeated");
    }
}

#[test]
fn dump_rejects_pipe_to_outside() {
    let Some(env) = TestEnv::new("dump_rejects_pipe_to_outside") else {
        return;
    };
    let output = env.path("output");
    let script = format!(
        "i=0; while true; do i=$((i+1)); echo \"line $i\"; sleep 0.01; done | cat > {}",
        output.display()
    );
    let mut command = Command::new("bash");
    command.arg("-c").arg(&script).stdin(Stdio::null());
    let shell = env.spawn("pipeline", &mut command);
    let children = wait_until("the pipeline to start both sides", WAIT_TIMEOUT, || {
        let text = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).ok()?;
        let pids: Vec<i32> = text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        (pids.len() >= 2 && !read_or_empty(&output).is_empty()).then_some(pids)
    });
    let reader = nix::unistd::Pid::from_raw(*children.last().expect("two children"));
    for &child in &children {
        env.track(nix::unistd::Pid::from_raw(child));
    }

    let image = env.path("image");
    let reader_text = reader.to_string();
    let image_text = image.to_str().expect("test paths are UTF-8");
    let run = env.stasis(&["dump", "-t", &reader_text, "-D", image_text]);
    assert!(
        !run.success(),
        "dump of one end of a pipe succeeded:\n{run}"
    );
    assert!(
        run.stderr.contains("outside the dumped tree"),
        "error does not explain the pipe:\n{run}"
    );
    assert!(
        !image.join("manifest").exists(),
        "failed dump left a manifest"
    );
    assert!(
        is_running(reader),
        "the pipe's reader is not running after the failed dump"
    );
    assert_eq!(
        proc_status_value(reader, "TracerPid").as_deref(),
        Some("0"),
        "the pipe's reader is still traced after the failed dump"
    );
}

#[test]
fn pool_restore_finishes_every_task() {
    let Some(env) = TestEnv::new("pool_restore_finishes_every_task") else {
        return;
    };
    let dir = env.make_dir("pool");
    let mut command = Command::new("python3");
    command
        .arg(workload_script("pool.py"))
        .arg(&dir)
        .stdin(Stdio::null());
    let pid = env.spawn("pool", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the pool to finish 50 tasks", WAIT_TIMEOUT, || {
        progress().filter(|&done| done >= 50)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        4,
        "expected the parent and 3 workers:\n{dump}"
    );
    let at_dump = progress().expect("progress before the dump");
    assert!(at_dump < 400, "the pool finished before the dump");

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored pool failed:\n{}",
        env.stderr_of("pool")
    );
    // The sum over n below 400 of the sum of i*i for i below n*1000.
    let expected: u128 = (0..400u128)
        .map(|n| n * 1000)
        .map(|m| m.saturating_sub(1) * m * (2 * m).saturating_sub(1) / 6)
        .sum();
    let result = read_or_empty(&dir.join("result"));
    assert_eq!(
        result.trim(),
        expected.to_string(),
        "the pool's total differs from the uninterrupted result"
    );
}

#[test]
fn socketpair_restore_keeps_queued_messages() {
    let Some(env) = TestEnv::new("socketpair_restore_keeps_queued_messages") else {
        return;
    };
    let dir = env.make_dir("sockpair");
    let mut command = Command::new("python3");
    command
        .arg(workload_script("sockpair.py"))
        .arg(&dir)
        .stdin(Stdio::null());
    let pid = env.spawn("sockpair", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the parent to send 100 messages", WAIT_TIMEOUT, || {
        progress().filter(|&sent| sent >= 100)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        2,
        "expected the parent and the child:\n{dump}"
    );
    let queues = list_files(&image)
        .iter()
        .filter(|name| name.to_string_lossy().starts_with("socket-queue-"))
        .count();
    assert!(
        queues >= 1,
        "no socket had data waiting at the dump, so the test checks nothing"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored parent failed:\n{}",
        env.stderr_of("sockpair")
    );
    let result = read_or_empty(&dir.join("result"));
    assert_eq!(
        result.trim(),
        "done 300 child_status=0",
        "the child lost, repeated or reordered a message"
    );
}
