//! State that a restore must reproduce exactly: the address space as
//! /proc/PID/maps shows it, the fd table, and the process attributes that
//! /proc/PID/status reports.

mod common;

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Lines of /proc/PID/maps, each with its columns split on whitespace.
fn maps(pid: Pid) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("read /proc/PID/maps")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Fd numbers of `pid` with their link targets and fdinfo flags and position.
fn fd_table(pid: Pid) -> Vec<String> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list /proc/PID/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds.iter()
        .map(|fd| {
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            let pos_flags: Vec<&str> = info
                .lines()
                .filter(|line| line.starts_with("pos:") || line.starts_with("flags:"))
                .collect();
            format!(
                "{fd} -> {} {}",
                proc_fd_target(pid, *fd).unwrap_or_default(),
                pos_flags.join(" ")
            )
        })
        .collect()
}

/// /proc/PID/status fields that a restore must keep.
const STATUS_FIELDS: &[&str] = &[
    "Umask",
    "Uid",
    "Gid",
    "Groups",
    "SigBlk",
    "SigIgn",
    "SigCgt",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
];

fn status_fields(pid: Pid) -> Vec<String> {
    STATUS_FIELDS
        .iter()
        .map(|key| format!("{key}: {}", proc_status_value(pid, key).unwrap_or_default()))
        .collect()
}

#[test]
fn restore_reproduces_maps_fds_and_status() {
    let Some(env) = TestEnv::new("restore_reproduces_maps_fds_and_status") else {
        return;
    };
    let pid = start_sleep(&env, "sleep");
    wait_until_sleeping(pid);
    let maps_before = maps(pid);
    let fds_before = fd_table(pid);
    let status_before = status_fields(pid);
    let cmdline_before = std::fs::read(format!("/proc/{pid}/cmdline")).expect("read cmdline");
    let exe_before = std::fs::read_link(format!("/proc/{pid}/exe")).expect("read exe link");

    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    let restored = env.restore_detached(&image, pid, &[]);
    wait_until_sleeping(restored);

    let maps_after = maps(restored);
    assert_eq!(
        maps_after.len(),
        maps_before.len(),
        "mapping count differs:\nbefore {maps_before:#?}\nafter {maps_after:#?}"
    );
    for (before, after) in maps_before.iter().zip(&maps_after) {
        assert_eq!(before, after, "a /proc/PID/maps line differs after restore");
    }
    assert_eq!(
        fd_table(restored),
        fds_before,
        "fd table differs after restore"
    );
    assert_eq!(
        status_fields(restored),
        status_before,
        "status fields differ after restore"
    );
    let cmdline_after = std::fs::read(format!("/proc/{restored}/cmdline")).expect("read cmdline");
    assert_eq!(
        cmdline_after, cmdline_before,
        "command line differs after restore"
    );
    let exe_after = std::fs::read_link(format!("/proc/{restored}/exe")).expect("read exe link");
    assert_eq!(exe_after, exe_before, "exe link differs after restore");

    send_signal(restored, Signal::SIGKILL);
    wait_exit(restored, WAIT_TIMEOUT);
}
