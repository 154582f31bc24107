//! Dump and restore of redis-server listening on 127.0.0.1 and on a Unix
//! socket, with a data set loaded: after restore every key reads back and
//! new writes work, over both sockets.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;

const KEYS: usize = 500;

/// Runs redis-cli with `args` and returns its trimmed output, or None if it
/// failed to connect or run.
fn redis_cli(args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.starts_with("Could not connect")).then_some(text)
}

/// Returns a TCP port on 127.0.0.1 that is free right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("find a free port on 127.0.0.1")
}

fn load_keys(port: &str) {
    let mut input = String::new();
    for i in 0..KEYS {
        input.push_str(&format!("SET key{i} value{i}\n"));
    }
    let mut child = Command::new("redis-cli")
        .args(["-p", port])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-cli");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("send keys");
    assert!(
        child.wait().expect("wait for redis-cli").success(),
        "loading keys failed"
    );
}

#[test]
fn redis_restore_serves_every_key() {
    let Some(env) = TestEnv::new("redis_restore_serves_every_key") else {
        return;
    };
    if !Path::new("/usr/bin/redis-server").exists() || !Path::new("/usr/bin/redis-cli").exists() {
        eprintln!("skipping redis_restore_serves_every_key: redis-server and redis-cli are not installed (apt-get install redis-server)");
        return;
    }
    let dir = env.make_dir("redis");
    let socket = dir.join("redis.sock");
    let socket_text = socket.to_str().expect("test paths are UTF-8").to_owned();
    let port = free_port().to_string();
    let mut command = Command::new("redis-server");
    command
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--unixsocket",
            &socket_text,
        ])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdin(Stdio::null());
    let pid = env.spawn("redis", &mut command);
    wait_until("redis to accept connections", WAIT_TIMEOUT, || {
        redis_cli(&["-p", &port, "PING"]).filter(|r| r == "PONG")
    });
    load_keys(&port);
    assert_eq!(
        redis_cli(&["-p", &port, "DBSIZE"]).as_deref(),
        Some(KEYS.to_string().as_str())
    );

    let image = env.path("image");
    let dump = env.dump_and_reap(pid, &image);
    assert!(
        dump.json_u64("pages_stored") > 0,
        "dump stored no memory:\n{dump}"
    );
    assert!(
        redis_cli(&["-p", &port, "PING"]).is_none(),
        "redis still answers after the dump killed it"
    );

    let restored = env.restore_detached(&image, pid, &[]);
    assert_eq!(
        redis_cli(&["-p", &port, "DBSIZE"]).as_deref(),
        Some(KEYS.to_string().as_str()),
        "restored redis has another number of keys"
    );
    for i in (0..KEYS).step_by(7) {
        let value = redis_cli(&["-p", &port, "GET", &format!("key{i}")]);
        assert_eq!(
            value,
            Some(format!("value{i}")),
            "key{i} reads back wrong over TCP"
        );
    }
    assert_eq!(
        redis_cli(&["-s", &socket_text, "SET", "after", "restore"]).as_deref(),
        Some("OK"),
        "write over the Unix socket failed"
    );
    assert_eq!(
        redis_cli(&["-p", &port, "GET", "after"]).as_deref(),
        Some("restore"),
        "write is not visible over TCP"
    );

    send_signal(restored, Signal::SIGKILL);
    wait_exit(restored, WAIT_TIMEOUT);
}
