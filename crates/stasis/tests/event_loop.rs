//! Dump and restore of an event loop on epoll with a timerfd, an eventfd
//! and a signalfd.

mod common;

use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;

/// Reads one "key=value" number from the workload's status line.
fn status_value(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|field| field.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

#[test]
fn event_loop_restore_keeps_fds_working() {
    let Some(env) = TestEnv::new("event_loop_restore_keeps_fds_working") else {
        return;
    };
    let status = env.path("status");
    let stop = env.path("stop");
    let mut command = Command::new(workload_binary("eventloop"));
    command.arg(&status).arg(&stop).stdin(Stdio::null());
    let pid = env.spawn("eventloop", &mut command);
    wait_until("the event loop to tick", WAIT_TIMEOUT, || {
        status_value(&read_or_empty(&status), "ticks").filter(|&ticks| ticks >= 10)
    });
    send_signal(pid, Signal::SIGUSR1);
    wait_until("the event loop to read SIGUSR1", WAIT_TIMEOUT, || {
        status_value(&read_or_empty(&status), "signals").filter(|&count| count == 1)
    });

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let ticks_at_dump =
        status_value(&read_or_empty(&status), "ticks").expect("status before the dump");

    let restored = env.restore_detached(&image, pid, &[]);
    wait_until("the restored timerfd to tick", WAIT_TIMEOUT, || {
        status_value(&read_or_empty(&status), "ticks").filter(|&ticks| ticks >= ticks_at_dump + 20)
    });
    send_signal(restored, Signal::SIGUSR1);
    wait_until(
        "the restored signalfd to read SIGUSR1",
        WAIT_TIMEOUT,
        || status_value(&read_or_empty(&status), "signals").filter(|&count| count == 2),
    );

    std::fs::write(&stop, b"").expect("create the stop file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    let output = env.stdout_of("eventloop");
    assert_eq!(
        exit,
        Exit::Code(0),
        "event loop failed its checks:\n{output}"
    );
    assert!(
        output.starts_with("OK "),
        "unexpected event loop output:\n{output}"
    );
    assert_eq!(
        status_value(&output, "signals"),
        Some(2),
        "signal count in the final output:\n{output}"
    );
}

#[test]
fn inotify_restore_keeps_watch() {
    let Some(env) = TestEnv::new("inotify_restore_keeps_watch") else {
        return;
    };
    let watched = env.make_dir("watched");
    let status = env.path("status");
    let stop = env.path("stop");
    let mut command = Command::new(workload_binary("inotify"));
    command
        .arg(&watched)
        .arg(&status)
        .arg(&stop)
        .stdin(Stdio::null());
    let pid = env.spawn("inotify", &mut command);
    wait_until("the watch to start", WAIT_TIMEOUT, || {
        status_value(&read_or_empty(&status), "created")
    });
    for i in 0..3 {
        std::fs::write(watched.join(format!("file-before-{i}")), b"")
            .expect("create a watched file");
    }
    wait_until("the watch to see 3 files", WAIT_TIMEOUT, || {
        status_value(&read_or_empty(&status), "created").filter(|&count| count == 3)
    });

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let restored = env.restore_detached(&image, pid, &[]);
    for i in 0..4 {
        std::fs::write(watched.join(format!("file-after-{i}")), b"")
            .expect("create a watched file");
    }
    wait_until(
        "the restored watch to see 4 more files",
        WAIT_TIMEOUT,
        || status_value(&read_or_empty(&status), "created").filter(|&count| count == 7),
    );

    std::fs::write(&stop, b"").expect("create the stop file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    let output = env.stdout_of("inotify");
    assert_eq!(
        exit,
        Exit::Code(0),
        "the inotify workload failed:\n{output}"
    );
    assert!(
        output.contains("created=7 wd=2"),
        "unexpected inotify output:\n{output}"
    );
}
