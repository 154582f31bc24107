//! Unix socket connections inside a dumped tree: a server with a listening
//! socket on a path and one on an abstract name, and clients that exchange
//! numbered messages with it, dumped while messages wait in the sockets;
//! the same after the server closed its listening sockets; a named
//! datagram socket pair; and a datagram server with two clients.
//! Also a connection waiting to be accepted, which restore connects again,
//! and the connections that dump rejects: one waiting to be accepted whose
//! client has sent data, and one whose peer is outside the tree.

mod common;

use std::os::unix::net::UnixListener;
use std::process::Command;

use common::*;
use nix::unistd::Pid;

/// Requests that the `unixconn exchange` server replies to in a full run: 4
/// clients with 3000 each, then 2 clients with 20 each.
const EXCHANGE_REQUESTS: u64 = 4 * 3000 + 2 * 20;

/// Returns the PIDs listed in /proc/PID/task/PID/children.
fn children_of(pid: Pid) -> Vec<Pid> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|child| child.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// Returns the socket records of every fd table in `image`, decoded with
/// `stasis image decode`.
fn socket_records(env: &TestEnv, image: &std::path::Path) -> Vec<serde_json::Value> {
    let mut sockets = Vec::new();
    for name in list_files(image) {
        if !name.to_string_lossy().starts_with("fds-") {
            continue;
        }
        let path = image.join(&name);
        let run = env.stasis(&["image", "decode", path.to_str().expect("UTF-8 path")]);
        assert!(run.success(), "decode of {} failed:\n{run}", path.display());
        let table: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|error| panic!("decode of {} is not JSON: {error}", path.display()));
        for fd in table["fds"].as_array().expect("fds is an array") {
            if let Some(socket) = fd["file"].get("Socket") {
                sockets.push(socket.clone());
            }
        }
    }
    sockets
}

#[test]
fn unix_connections_keep_names_and_messages() {
    let Some(env) = TestEnv::new("unix_connections_keep_names_and_messages") else {
        return;
    };
    let dir = env.make_dir("uc");
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(&dir).arg("exchange");
    let pid = env.spawn("unixconn", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the server to answer 1000 requests", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        progress().filter(|&answered| answered >= 1000)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        5,
        "expected the server and 4 clients:\n{dump}"
    );
    let at_dump = progress().expect("progress before the dump");
    assert!(
        at_dump < 4 * 3000,
        "the clients finished before the dump, so the test checks nothing"
    );

    let sockets = socket_records(&env, &image);
    let accepted = sockets
        .iter()
        .filter(|socket| socket["accepted"] == serde_json::json!(true))
        .count();
    assert_eq!(accepted, 4, "expected 4 accepted sockets: {sockets:?}");
    let listening = sockets
        .iter()
        .filter(|socket| socket["backlog"] == serde_json::json!(16))
        .count();
    assert_eq!(
        listening, 2,
        "expected 2 listening sockets with backlog 16: {sockets:?}"
    );
    let queues = sockets
        .iter()
        .filter(|socket| !socket["queued"].is_null())
        .count();
    assert!(
        queues >= 2,
        "fewer than 2 sockets had messages waiting at the dump, so the test checks little: {sockets:?}"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored server failed:\n{}",
        env.stderr_of("unixconn")
    );
    assert_eq!(
        env.stderr_of("unixconn"),
        "",
        "the server or a client reported an error"
    );
    let expected = format!("ok clients=6 requests={EXCHANGE_REQUESTS} replies={EXCHANGE_REQUESTS}");
    assert_eq!(
        read_or_empty(&dir.join("result")).trim(),
        expected,
        "the server's result differs from an uninterrupted run"
    );
}

#[test]
fn closed_listener_connections_keep_names() {
    let Some(env) = TestEnv::new("closed_listener_connections_keep_names") else {
        return;
    };
    let dir = env.make_dir("uc");
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(&dir).arg("closed");
    let pid = env.spawn("unixconn", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the server to answer 1000 requests", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        progress().filter(|&answered| answered >= 1000)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        5,
        "expected the server and 4 clients:\n{dump}"
    );
    let sockets = socket_records(&env, &image);
    let listening = sockets
        .iter()
        .filter(|socket| !socket["backlog"].is_null())
        .count();
    assert_eq!(
        listening, 0,
        "the server should have closed its listening sockets: {sockets:?}"
    );
    let accepted = sockets
        .iter()
        .filter(|socket| socket["accepted"] == serde_json::json!(true))
        .count();
    assert_eq!(accepted, 4, "expected 4 accepted sockets: {sockets:?}");

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored server failed:\n{}",
        env.stderr_of("unixconn")
    );
    assert_eq!(
        read_or_empty(&dir.join("result")).trim(),
        "ok closed clients=4 requests=12000 replies=12000",
        "the server's result differs from an uninterrupted run"
    );
}

#[test]
fn named_datagram_pair_keeps_messages() {
    let Some(env) = TestEnv::new("named_datagram_pair_keeps_messages") else {
        return;
    };
    let dir = env.make_dir("uc");
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(&dir).arg("dgram");
    let pid = env.spawn("unixconn", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the parent to get 300 replies", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        progress().filter(|&received| received >= 300)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        2,
        "expected the parent and the child:\n{dump}"
    );
    let sockets = socket_records(&env, &image);
    let named_pair_ends = sockets
        .iter()
        .filter(|socket| !socket["peer"].is_null())
        .filter(|socket| socket["address"].as_str().is_some_and(|hex| hex.len() > 4))
        .count();
    assert_eq!(
        named_pair_ends, 2,
        "expected two named, connected datagram sockets: {sockets:?}"
    );
    let queues = sockets
        .iter()
        .filter(|socket| !socket["queued"].is_null())
        .count();
    assert!(
        queues >= 1,
        "no datagram waited at the dump, so the test checks little: {sockets:?}"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored parent failed:\n{}",
        env.stderr_of("unixconn")
    );
    assert_eq!(
        read_or_empty(&dir.join("result")).trim(),
        "ok dgram 2000",
        "the datagram exchange differs from an uninterrupted run"
    );
}

#[test]
fn datagram_server_keeps_senders() {
    let Some(env) = TestEnv::new("datagram_server_keeps_senders") else {
        return;
    };
    let dir = env.make_dir("uc");
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(&dir).arg("dgram-server");
    let pid = env.spawn("unixconn", &mut command);
    let progress = || {
        read_or_empty(&dir.join("progress"))
            .trim()
            .parse::<u64>()
            .ok()
    };
    wait_until("the server to answer 500 requests", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        progress().filter(|&answered| answered >= 500)
    });

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        3,
        "expected the server and 2 clients:\n{dump}"
    );
    let sockets = socket_records(&env, &image);
    let with_senders = sockets
        .iter()
        .filter(|socket| {
            socket["senders"]
                .as_array()
                .is_some_and(|senders| !senders.is_empty())
        })
        .count();
    assert!(
        with_senders >= 1,
        "no datagram queue with its senders was saved, so the test checks little: {sockets:?}"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored server failed:\n{}",
        env.stderr_of("unixconn")
    );
    assert_eq!(
        read_or_empty(&dir.join("result")).trim(),
        "ok dgram-server clients=2 requests=4000",
        "the datagram exchange differs from an uninterrupted run"
    );
}

/// Starts `unixconn DIR MODE` for a pending mode, waits until its client
/// has connected, and returns the server and the client.
fn start_pending(env: &TestEnv, dir: &std::path::Path, mode: &str) -> (Pid, Pid) {
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(dir).arg(mode);
    let pid = env.spawn("unixconn", &mut command);
    wait_until("the client to connect", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        dir.join("ready").exists().then_some(())
    });
    let children = children_of(pid);
    for &child in &children {
        env.track(child);
    }
    assert_eq!(children.len(), 1, "expected one client process");
    (pid, children[0])
}

/// Runs `stasis dump` of `pid` into `image`, which must fail, and checks
/// that the processes keep running untraced. Returns the error output.
fn failed_dump(env: &TestEnv, pid: Pid, image: &std::path::Path, processes: &[Pid]) -> String {
    let pid_text = pid.to_string();
    let run = env.stasis(&[
        "dump",
        "-t",
        &pid_text,
        "-D",
        image.to_str().expect("UTF-8 path"),
    ]);
    assert!(!run.success(), "dump of {pid} succeeded:\n{run}");
    assert!(
        !image.join("manifest").exists(),
        "failed dump left a manifest"
    );
    for &process in processes {
        assert!(
            is_running(process),
            "{process} is not running after the failed dump"
        );
        assert_eq!(
            proc_status_value(process, "TracerPid").as_deref(),
            Some("0"),
            "{process} is still traced after the failed dump"
        );
    }
    run.stderr
}

#[test]
fn pending_unix_connection_restored() {
    let Some(env) = TestEnv::new("pending_unix_connection_restored") else {
        return;
    };
    let dir = env.make_dir("uc");
    let (pid, client) = start_pending(&env, &dir, "pending");
    let image = env.path("image");

    // Dumped alone, the client has a connection in the queue of a
    // listening socket that a process outside the tree holds.
    let error = failed_dump(&env, client, &image, &[pid, client]);
    assert!(
        error.contains(&format!("process {pid} (")) && error.contains("outside the dumped tree"),
        "error does not name the server outside the tree:\n{error}"
    );

    let dump = env.dump_and_reap(pid, &image);
    assert_eq!(
        dump.json_u64("processes"),
        2,
        "expected the server and the client:\n{dump}"
    );
    let sockets = socket_records(&env, &image);
    let pending: Vec<&serde_json::Value> = sockets
        .iter()
        .filter_map(|socket| socket["pending"].as_array())
        .flatten()
        .collect();
    assert_eq!(
        pending.len(),
        1,
        "expected one pending connection in the image: {sockets:?}"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    std::fs::write(dir.join("go"), "").expect("create the go file");
    let exit = wait_exit(restored, WAIT_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored server failed:\n{}",
        env.stderr_of("unixconn")
    );
    assert_eq!(
        read_or_empty(&dir.join("result")).trim(),
        "ok pending",
        "the accepted connection did not work"
    );
}

#[test]
fn dump_rejects_data_before_accept() {
    let Some(env) = TestEnv::new("dump_rejects_data_before_accept") else {
        return;
    };
    let dir = env.make_dir("uc");
    let (pid, client) = start_pending(&env, &dir, "pending-data");
    let error = failed_dump(&env, pid, &env.path("image"), &[pid, client]);
    assert!(
        error.contains("with data sent on a connection"),
        "error does not say that data was sent before accept:\n{error}"
    );
    assert!(
        error.contains("has not accepted yet") && error.contains("pending.sock"),
        "error does not name the listening socket:\n{error}"
    );
}

#[test]
fn dump_rejects_unix_peer_outside() {
    let Some(env) = TestEnv::new("dump_rejects_unix_peer_outside") else {
        return;
    };
    let dir = env.make_dir("uc");
    let path = dir.join("outside.sock");
    let listener = UnixListener::bind(&path)
        .unwrap_or_else(|error| panic!("cannot bind {}: {error}", path.display()));
    let mut command = Command::new(workload_binary("unixconn"));
    command.arg(&dir).arg("client").arg(&path);
    let pid = env.spawn("unixconn", &mut command);
    let (connection, _) = listener
        .accept()
        .unwrap_or_else(|error| panic!("accept on {} failed: {error}", path.display()));
    wait_until("the client to connect", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "unixconn exited early:\n{}",
            env.stderr_of("unixconn")
        );
        dir.join("ready").exists().then_some(())
    });

    let image = env.path("image");
    let pid_text = pid.to_string();
    let run = env.stasis(&[
        "dump",
        "-t",
        &pid_text,
        "-D",
        image.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        !run.success(),
        "dump of a client connected outside the tree succeeded:\n{run}"
    );
    let holder = format!("process {} (", std::process::id());
    assert!(
        run.stderr.contains(&holder),
        "error does not name the test process that holds the peer:\n{run}"
    );
    assert!(
        run.stderr.contains("outside the dumped tree"),
        "error does not say the peer is outside the tree:\n{run}"
    );
    assert!(
        !image.join("manifest").exists(),
        "failed dump left a manifest"
    );
    assert!(
        is_running(pid),
        "the client is not running after the failed dump"
    );
    assert_eq!(
        proc_status_value(pid, "TracerPid").as_deref(),
        Some("0"),
        "the client is still traced after the failed dump"
    );
    drop(connection);
}
