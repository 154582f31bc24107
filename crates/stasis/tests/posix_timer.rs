//! Dump and restore of a process with a periodic POSIX timer: the timer
//! keeps its ID, signal and value, and keeps firing after restore.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn fired(text: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|field| field.strip_prefix("fired="))
        .and_then(|value| value.parse().ok())
}

#[test]
fn posix_timer_restore_keeps_firing() {
    let Some(env) = TestEnv::new("posix_timer_restore_keeps_firing") else {
        return;
    };
    let status = env.path("status");
    let stop = env.path("stop");
    let mut command = Command::new(workload_binary("posixtimer"));
    command.arg(&status).arg(&stop).stdin(Stdio::null());
    let pid = env.spawn("posixtimer", &mut command);
    wait_until("the timer to fire", WAIT_TIMEOUT, || {
        fired(&read_or_empty(&status)).filter(|&n| n >= 10)
    });

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let at_dump = fired(&read_or_empty(&status)).expect("status before the dump");

    let restored = env.restore_detached(&image, pid, &[]);
    wait_until("the restored timer to fire", WAIT_TIMEOUT, || {
        fired(&read_or_empty(&status)).filter(|&n| n >= at_dump + 20)
    });
    std::fs::write(&stop, b"").expect("create the stop file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    let output = env.stdout_of("posixtimer");
    assert_eq!(
        exit,
        Exit::Code(0),
        "the timer workload failed its checks:\n{output}"
    );
    assert!(
        output.contains(" id=1"),
        "the restored timer has another ID:\n{output}"
    );
}
