//! Dump and restore of a multi-threaded program: worker threads with a
//! mutex, a barrier and a condition variable check their own invariants
//! across the checkpoint.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// Parses "rounds=R total=T" from the workload's status file.
fn rounds(text: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|field| field.strip_prefix("rounds="))
        .and_then(|value| value.parse().ok())
}

fn thread_names(pid: nix::unistd::Pid) -> Vec<String> {
    proc_thread_ids(pid)
        .into_iter()
        .map(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect()
}

#[test]
fn threads_restore_keeps_invariants() {
    let Some(env) = TestEnv::new("threads_restore_keeps_invariants") else {
        return;
    };
    let status = env.path("status");
    let stop = env.path("stop");
    let mut command = Command::new(workload_binary("threads"));
    command.arg(&status).arg(&stop).stdin(Stdio::null());
    let pid = env.spawn("threads", &mut command);
    let at_start = wait_until(
        "the threads workload to finish a round",
        WAIT_TIMEOUT,
        || rounds(&read_or_empty(&status)).filter(|&r| r >= 3),
    );

    let tids_before = proc_thread_ids(pid);
    let names_before = thread_names(pid);
    assert_eq!(
        tids_before.len(),
        6,
        "expected the main thread, 4 workers and a waiter: {tids_before:?}"
    );

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let at_dump = rounds(&read_or_empty(&status)).expect("status before the dump");
    assert!(at_dump >= at_start, "round count went back before the dump");

    let restored = env.restore_detached(&image, pid, &[]);
    assert_eq!(
        proc_thread_ids(restored),
        tids_before,
        "restored thread IDs differ"
    );
    assert_eq!(
        thread_names(restored),
        names_before,
        "restored thread names differ"
    );
    wait_until(
        "the restored workload to finish more rounds",
        WAIT_TIMEOUT,
        || rounds(&read_or_empty(&status)).filter(|&r| r >= at_dump + 5),
    );

    std::fs::write(&stop, b"").expect("create the stop file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    let output = env.stdout_of("threads");
    assert_eq!(
        exit,
        Exit::Code(0),
        "threads workload failed its checks:\n{output}"
    );
    assert!(
        output.starts_with("OK "),
        "unexpected threads workload output:\n{output}"
    );
}
