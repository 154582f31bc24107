//! Sealing and verification of real images: `stasis key generate`, `stasis
//! seal`, `stasis verify`, `stasis dump --seal`, `stasis restore
//! --require-seal` and the policy file. Each test dumps `sleep` processes
//! that it starts itself.

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::{setsid, Pid};
use stasis_image::{decode_record_file, encode_record_json, RecordKind, FORMAT_VERSION};
use stasis_seal::{read_seal, PrivateKey, Seal};

/// Starts `sleep 1000` in its own session with stdin, stdout and stderr on
/// /dev/null and every other inherited descriptor closed, tracks it for
/// cleanup and waits until it sleeps.
// The test reaps the process with `wait_exit`, and `TestEnv::drop` reaps it
// otherwise, both through waitpid by PID.
#[allow(clippy::zombie_processes)]
fn spawn_sleep(env: &TestEnv) -> Pid {
    let mut command = Command::new("sleep");
    command
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(&env.dir);
    // SAFETY: `detach_and_close_fds` runs between fork and exec and calls
    // only setsid and close_range, which are async-signal-safe.
    unsafe {
        command.pre_exec(detach_and_close_fds);
    }
    let child = command.spawn().expect("start sleep 1000");
    let pid = Pid::from_raw(child.id() as i32);
    env.track(pid);
    wait_until_sleeping(pid);
    pid
}

/// Runs in the forked workload before exec: a new session, and every
/// descriptor above 2 closed, because dump rejects pipes and sockets.
fn detach_and_close_fds() -> io::Result<()> {
    setsid()?;
    // SAFETY: close_range closes descriptors of this forked child only, and
    // no Rust code runs in it after exec.
    let result = unsafe { libc::close_range(3, u32::MAX, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs in a forked `stasis` before exec: close-on-exec for every
/// descriptor above 2.
fn mark_fds_cloexec() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets descriptor
    // flags of this forked child.
    let result =
        unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs `stasis ARGS` with STASIS_POLICY set to `policy`, and returns its
/// exit and output. The common harness has no way to set the environment.
// The process is reaped by `try_wait_exit` below, and by `TestEnv::drop`
// if that panics.
#[allow(clippy::zombie_processes)]
fn stasis_with_policy(env: &TestEnv, policy: &Path, args: &[&str]) -> StasisRun {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let stdout = env.path(&format!("policy-run-{number}.stdout"));
    let stderr = env.path(&format!("policy-run-{number}.stderr"));
    let command_line = format!(
        "STASIS_POLICY={} stasis {}",
        policy.display(),
        args.join(" ")
    );

    let mut command = Command::new(STASIS);
    command
        .args(args)
        .env("STASIS_POLICY", policy)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout).expect("create stdout file"))
        .stderr(fs::File::create(&stderr).expect("create stderr file"))
        .current_dir(&env.dir);
    // SAFETY: `mark_fds_cloexec` runs between fork and exec and calls only
    // close_range, which is async-signal-safe.
    unsafe {
        command.pre_exec(mark_fds_cloexec);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start `{command_line}`: {error}"));
    let pid = Pid::from_raw(child.id() as i32);
    env.track(pid);
    let exit = try_wait_exit(pid, STASIS_TIMEOUT)
        .unwrap_or_else(|| panic!("`{command_line}` did not finish within {STASIS_TIMEOUT:?}"));
    StasisRun {
        command: command_line,
        exit,
        stdout: read_or_empty(&stdout),
        stderr: read_or_empty(&stderr),
    }
}

/// Returns the path as a `&str` for command arguments.
fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Runs `stasis key generate --out DIR/NAME` and returns the private key
/// path; the public key is at the same path plus ".pub".
fn generate_key(env: &TestEnv, name: &str) -> PathBuf {
    let path = env.path(name);
    let run = env.stasis(&["key", "generate", "--out", text(&path)]);
    assert!(run.success(), "key generation failed:\n{run}");
    path
}

fn public_key(private: &Path) -> PathBuf {
    stasis_seal::key::public_key_path(private)
}

/// Dumps a fresh `sleep` into `DIR/name`, reaps it, and returns the image
/// directory and the PID the process had.
fn dump_sleep(env: &TestEnv, name: &str) -> (PathBuf, Pid) {
    let pid = spawn_sleep(env);
    let image = env.path(name);
    env.dump_and_reap(pid, &image);
    (image, pid)
}

fn seal(env: &TestEnv, image: &Path, key: &Path) {
    let run = env.stasis(&["seal", text(image), "--key", text(key)]);
    assert!(run.success(), "seal of {} failed:\n{run}", image.display());
}

fn verify(env: &TestEnv, image: &Path, public: &Path) -> StasisRun {
    env.stasis(&["verify", text(image), "--pubkey", text(public)])
}

/// Rewrites the manifest of `image` as a well-formed manifest with a
/// different `created_unix`, as someone editing an image would.
fn edit_manifest(image: &Path) {
    let path = image.join("manifest");
    let bytes = fs::read(&path).expect("read manifest");
    let (_, mut value) = decode_record_file(&bytes, &path).expect("decode manifest");
    value["created_unix"] = serde_json::json!(1_000_000_000u64);
    let bytes = encode_record_json(RecordKind::Manifest, &value).expect("encode manifest");
    fs::write(&path, bytes).expect("write manifest");
}

/// Copies `image` to `DIR/name` and returns the copy.
fn copy_image(env: &TestEnv, image: &Path, name: &str) -> PathBuf {
    let copy = env.path(name);
    copy_dir(image, &copy);
    copy
}

/// Runs `stasis restore --require-seal --pubkey PUBLIC` on an image that
/// must be rejected, checks the message and that no process took `pid`.
fn assert_restore_rejected(
    env: &TestEnv,
    image: &Path,
    public: &Path,
    pid: Pid,
    expected: &[&str],
) {
    let run = env.stasis(&[
        "restore",
        "-D",
        text(image),
        "-d",
        "--require-seal",
        "--pubkey",
        text(public),
    ]);
    env.track_if_child(pid);
    assert_failed_with(&run, expected);
    assert!(
        wait_pid_free(pid, WAIT_TIMEOUT),
        "PID {pid} is in use after a rejected restore of {}",
        image.display()
    );
}

/// Restores `image` detached through `stasis_with_policy`, checks that the
/// process runs as `pid` in `sleep`, then kills and reaps it.
fn restore_runs_then_kill(env: &TestEnv, policy: &Path, image: &Path, pid: Pid, extra: &[&str]) {
    let mut args = vec!["restore", "-D", text(image), "-d", "--json"];
    args.extend_from_slice(extra);
    let run = stasis_with_policy(env, policy, &args);
    env.track_if_child(pid);
    assert!(run.success(), "restore failed:\n{run}");
    assert_eq!(run.json_u64("pid"), pid.as_raw() as u64, "{run}");
    wait_until_sleeping(pid);
    kill_and_reap(pid);
}

fn kill_and_reap(pid: Pid) {
    send_signal(pid, Signal::SIGKILL);
    assert_eq!(wait_exit(pid, WAIT_TIMEOUT), Exit::Signal(Signal::SIGKILL));
    assert!(wait_pid_free(pid, WAIT_TIMEOUT), "PID {pid} still in use");
}

/// Writes a policy file with mode 0644 and returns its path.
fn write_policy(env: &TestEnv, name: &str, contents: &str) -> PathBuf {
    let path = env.path(name);
    fs::write(&path, contents).expect("write policy");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod policy");
    path
}

#[test]
fn key_generate_writes_0600_key() {
    let Some(env) = TestEnv::new("key_generate_writes_0600_key") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);

    let private_mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(private_mode, 0o600);
    let public_mode = fs::metadata(&public).unwrap().permissions().mode() & 0o777;
    assert_eq!(public_mode & 0o022, 0, "public key mode {public_mode:o}");
    let public_text = fs::read_to_string(&public).unwrap();
    assert!(
        public_text.starts_with("stasis-ed25519-public-v1\n"),
        "{public_text}"
    );

    let before = fs::read(&private).unwrap();
    let again = env.stasis(&["key", "generate", "--out", text(&private)]);
    assert_failed_with(&again, &["already exists", "signer"]);
    assert_eq!(
        fs::read(&private).unwrap(),
        before,
        "the key was overwritten"
    );

    let json = env.stasis(&[
        "key",
        "generate",
        "--out",
        text(&env.path("other")),
        "--json",
    ]);
    assert!(json.success(), "{json}");
    let summary = json.json();
    assert_eq!(summary["key_id"].as_str().map(str::len), Some(16), "{json}");
}

#[test]
fn group_readable_key_is_rejected() {
    let Some(env) = TestEnv::new("group_readable_key_is_rejected") else {
        return;
    };
    let private = generate_key(&env, "signer");
    fs::set_permissions(&private, fs::Permissions::from_mode(0o640)).unwrap();

    let run = env.stasis(&["seal", text(&env.path("no-image")), "--key", text(&private)]);
    assert_failed_with(&run, &["signer", "mode 0640", "chmod 600"]);

    // The public key file (mode 0644) passed as the private key is named as
    // the wrong file, not as a private key with a bad mode.
    let public = public_key(&private);
    let run = env.stasis(&["seal", text(&env.path("no-image")), "--key", text(&public)]);
    assert_failed_with(
        &run,
        &["signer.pub", "is a public key file", "pass the private key"],
    );
    assert!(!run.stderr.contains("chmod"), "{run}");

    // dump --seal checks the key before it touches the target.
    let pid = spawn_sleep(&env);
    let image = env.path("img");
    let run = env.stasis(&[
        "dump",
        "-t",
        &pid.to_string(),
        "-D",
        text(&image),
        "--seal",
        text(&private),
    ]);
    assert_failed_with(&run, &["mode 0640", "chmod 600"]);
    assert!(
        !image.exists(),
        "dump wrote {} with a bad key",
        image.display()
    );
    assert_eq!(
        proc_state(pid),
        Some('S'),
        "the target was stopped or killed"
    );
    assert_eq!(proc_status_value(pid, "TracerPid").as_deref(), Some("0"));
    kill_and_reap(pid);
}

#[test]
fn sealed_image_verifies() {
    let Some(env) = TestEnv::new("sealed_image_verifies") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let (image, pid) = dump_sleep(&env, "img");
    seal(&env, &image, &private);

    let run = verify(&env, &image, &public);
    assert!(run.success(), "verify failed:\n{run}");
    assert!(run.stdout.contains("seal: valid"), "{run}");
    assert!(run.stdout.contains("all 4 files match"), "{run}");
    assert!(
        run.stdout.contains(&format!("ok       pages-{pid}")),
        "{run}"
    );

    let json = env.stasis(&["verify", text(&image), "--pubkey", text(&public), "--json"]);
    assert!(json.success(), "{json}");
    let report = json.json();
    assert_eq!(report["ok"], true, "{json}");
    assert_eq!(report["seal"]["status"], "valid", "{json}");
    assert_eq!(report["files"].as_array().map(Vec::len), Some(4), "{json}");
    assert_eq!(report["problems"], serde_json::json!([]), "{json}");

    // inspect expects the seal file and points to verify for checking it.
    let inspected = env.stasis(&["inspect", text(&image)]);
    assert!(inspected.success(), "{inspected}");
    assert!(
        inspected.stdout.contains("seal file present"),
        "{inspected}"
    );
    assert!(
        !inspected.stdout.contains("not in the manifest"),
        "{inspected}"
    );
}

#[test]
fn every_change_is_named() {
    let Some(env) = TestEnv::new("every_change_is_named") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let (image, pid) = dump_sleep(&env, "img");
    seal(&env, &image, &private);

    let cases: [(&str, usize); 4] = [
        ("process", 100),
        ("mm", 100),
        ("fds", 40),
        ("pages", 4096 + 10),
    ];
    for (prefix, offset) in cases {
        let name = format!("{prefix}-{pid}");
        let copy = copy_image(&env, &image, &format!("flip-{prefix}"));
        flip_byte(&copy, &name, offset);

        let run = verify(&env, &copy, &public);
        let hash_text = if prefix == "pages" {
            "BLAKE3 hash of the data (from byte 4096) is"
        } else {
            "BLAKE3 hash is"
        };
        assert_failed_with(
            &run,
            &[
                &format!("CHANGED  {name}"),
                hash_text,
                "seal: valid",
                "1 problem;",
            ],
        );
        let json = env.stasis(&["verify", text(&copy), "--pubkey", text(&public), "--json"]);
        let report = json.json();
        assert_eq!(report["ok"], false, "{json}");
        let changed: Vec<&serde_json::Value> = report["files"]
            .as_array()
            .expect("files array")
            .iter()
            .filter(|file| file["status"] != "ok")
            .collect();
        assert_eq!(changed.len(), 1, "{json}");
        assert_eq!(changed[0]["name"], name.as_str(), "{json}");
        assert_eq!(changed[0]["status"], "changed", "{json}");
    }

    let copy = copy_image(&env, &image, "flip-manifest");
    flip_byte(&copy, "manifest", 60);
    let run = verify(&env, &copy, &public);
    assert_failed_with(
        &run,
        &[
            "seal: INVALID",
            "changed after sealing",
            "manifest: INVALID",
        ],
    );

    let copy = copy_image(&env, &image, "removed");
    fs::remove_file(copy.join(format!("fds-{pid}"))).unwrap();
    let run = verify(&env, &copy, &public);
    assert_failed_with(
        &run,
        &[
            &format!("MISSING  fds-{pid}"),
            "listed in the manifest but missing",
        ],
    );

    let copy = copy_image(&env, &image, "added");
    fs::write(copy.join("payload.so"), b"\x7fELF").unwrap();
    let run = verify(&env, &copy, &public);
    assert_failed_with(&run, &["EXTRA    payload.so: not listed in the manifest"]);

    let copy = copy_image(&env, &image, "several");
    fs::remove_file(copy.join(format!("process-{pid}"))).unwrap();
    fs::write(copy.join("payload.so"), b"\x7fELF").unwrap();
    flip_byte(&copy, &format!("pages-{pid}"), 4096 + 10);
    let run = verify(&env, &copy, &public);
    assert_failed_with(
        &run,
        &[
            &format!("MISSING  process-{pid}"),
            "EXTRA    payload.so",
            &format!("CHANGED  pages-{pid}"),
            "3 problems",
        ],
    );
}

#[test]
fn tampered_seal_and_manifest_are_rejected() {
    let Some(env) = TestEnv::new("tampered_seal_and_manifest_are_rejected") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let other_private = generate_key(&env, "other");
    let other_public = public_key(&other_private);
    let (image, pid) = dump_sleep(&env, "img");
    seal(&env, &image, &private);
    let (second, _) = dump_sleep(&env, "second");
    seal(&env, &second, &private);

    // An unsealed image.
    let copy = copy_image(&env, &image, "unsealed");
    fs::remove_file(copy.join("seal")).unwrap();
    let run = verify(&env, &copy, &public);
    assert_failed_with(&run, &["seal: MISSING", "is not sealed"]);
    assert_restore_rejected(&env, &copy, &public, pid, &["is not sealed", "stasis seal"]);

    // A manifest edited into another valid manifest.
    let copy = copy_image(&env, &image, "edited-manifest");
    edit_manifest(&copy);
    let run = verify(&env, &copy, &public);
    assert_failed_with(
        &run,
        &["seal: INVALID", "changed after sealing", "manifest: ok"],
    );
    assert_restore_rejected(&env, &copy, &public, pid, &["changed after sealing"]);

    // The seal of another image.
    let copy = copy_image(&env, &image, "swapped-seal");
    fs::copy(second.join("seal"), copy.join("seal")).unwrap();
    let run = verify(&env, &copy, &public);
    assert_failed_with(&run, &["seal: INVALID", "belongs to another image"]);
    assert_restore_rejected(&env, &copy, &public, pid, &["belongs to another image"]);

    // A key that did not make the seal.
    let run = verify(&env, &image, &other_public);
    assert_failed_with(&run, &["seal: INVALID", "not a trusted key"]);
    assert_restore_rejected(&env, &image, &other_public, pid, &["not a trusted key"]);

    // A field of the seal changed after signing.
    let copy = copy_image(&env, &image, "edited-seal");
    let seal_text = fs::read_to_string(copy.join("seal")).unwrap();
    let edited = seal_text.replace("stasis_version ", "stasis_version 9");
    assert_ne!(edited, seal_text);
    fs::write(copy.join("seal"), edited).unwrap();
    let run = verify(&env, &copy, &public);
    assert_failed_with(&run, &["seal: INVALID", "invalid signature"]);
    assert_restore_rejected(&env, &copy, &public, pid, &["invalid signature"]);

    // A validly signed seal for a newer image format.
    let copy = copy_image(&env, &image, "newer-format");
    let mut info = read_seal(&copy).expect("read seal").info;
    info.image_format_version = FORMAT_VERSION + 1;
    let key = PrivateKey::load(&private).expect("load key");
    fs::write(copy.join("seal"), Seal::sign(info, &key).to_file_bytes()).unwrap();
    let newer = format!("image format version {}", FORMAT_VERSION + 1);
    let run = verify(&env, &copy, &public);
    assert_failed_with(&run, &["seal: INVALID", &newer, "use a newer stasis"]);
    assert_restore_rejected(&env, &copy, &public, pid, &[&newer]);

    // Changed records and pages pass the seal check; the restore's own hash
    // checks reject them before the process runs.
    let copy = copy_image(&env, &image, "restore-flip-process");
    flip_byte(&copy, &format!("process-{pid}"), 100);
    assert_restore_rejected(&env, &copy, &public, pid, &["BLAKE3 hash"]);
    let copy = copy_image(&env, &image, "restore-flip-pages");
    flip_byte(&copy, &format!("pages-{pid}"), 4096 + 10);
    assert_restore_rejected(
        &env,
        &copy,
        &public,
        pid,
        &["chunk 0 of 1", "do not match their hash"],
    );
}

#[test]
fn sealed_dump_restores_and_runs() {
    let Some(env) = TestEnv::new("sealed_dump_restores_and_runs") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let pid = spawn_sleep(&env);
    let image = env.path("img");
    let run = env.dump(pid, &image, &["--seal", text(&private)]);
    let exit = wait_exit(pid, WAIT_TIMEOUT);
    assert!(
        matches!(exit, Exit::Signal(_)),
        "dump should kill {pid}: {exit}"
    );
    assert!(wait_pid_free(pid, WAIT_TIMEOUT));
    let summary = run.json();
    assert_eq!(
        summary["seal"]["key_id"].as_str().map(str::len),
        Some(16),
        "{run}"
    );
    assert!(image.join("seal").is_file());

    let restored =
        env.restore_detached(&image, pid, &["--require-seal", "--pubkey", text(&public)]);
    wait_until_sleeping(restored);
    kill_and_reap(restored);
}

#[test]
fn policy_requires_seal_by_default() {
    let Some(env) = TestEnv::new("policy_requires_seal_by_default") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let other_private = generate_key(&env, "other");
    let other_public = public_key(&other_private);
    let policy = write_policy(
        &env,
        "policy.toml",
        &format!(
            "# restores need a seal by the signer key\nrequire_seal = true\ntrusted_keys = [{:?}]\n",
            text(&public)
        ),
    );
    let (image, pid) = dump_sleep(&env, "img");

    let run = stasis_with_policy(&env, &policy, &["restore", "-D", text(&image), "-d"]);
    env.track_if_child(pid);
    assert_failed_with(&run, &["is not sealed", text(&policy)]);
    assert!(wait_pid_free(pid, WAIT_TIMEOUT));

    seal(&env, &image, &other_private);
    let run = stasis_with_policy(&env, &policy, &["restore", "-D", text(&image), "-d"]);
    env.track_if_child(pid);
    assert_failed_with(&run, &["not a trusted key"]);
    assert!(wait_pid_free(pid, WAIT_TIMEOUT));

    seal(&env, &image, &private);
    // --pubkey narrows what the policy accepts but cannot widen it.
    let run = stasis_with_policy(
        &env,
        &policy,
        &[
            "restore",
            "-D",
            text(&image),
            "-d",
            "--require-seal",
            "--pubkey",
            text(&other_public),
        ],
    );
    env.track_if_child(pid);
    assert_failed_with(&run, &["--pubkey does not trust"]);
    assert!(wait_pid_free(pid, WAIT_TIMEOUT));

    restore_runs_then_kill(&env, &policy, &image, pid, &[]);
}

#[test]
fn policy_trusted_keys_serve_require_seal() {
    let Some(env) = TestEnv::new("policy_trusted_keys_serve_require_seal") else {
        return;
    };
    let private = generate_key(&env, "signer");
    let public = public_key(&private);
    let policy = write_policy(
        &env,
        "policy.toml",
        &format!("trusted_keys = [{:?}]\n", text(&public)),
    );
    let (image, pid) = dump_sleep(&env, "img");

    // Without require_seal in the policy, an unsealed image restores.
    restore_runs_then_kill(&env, &policy, &image, pid, &[]);

    let run = stasis_with_policy(
        &env,
        &policy,
        &["restore", "-D", text(&image), "-d", "--require-seal"],
    );
    env.track_if_child(pid);
    assert_failed_with(&run, &["is not sealed"]);
    assert!(wait_pid_free(pid, WAIT_TIMEOUT));

    seal(&env, &image, &private);
    restore_runs_then_kill(&env, &policy, &image, pid, &["--require-seal"]);
}

#[test]
fn policy_and_flag_errors() {
    let Some(env) = TestEnv::new("policy_and_flag_errors") else {
        return;
    };
    let image = env.make_dir("not-restored");

    let malformed = write_policy(&env, "bad.toml", "# policy\nrequire_seal = maybe\n");
    let run = stasis_with_policy(&env, &malformed, &["restore", "-D", text(&image)]);
    assert_failed_with(&run, &[text(&malformed), "line 2"]);

    let unknown = write_policy(&env, "unknown.toml", "require_seal = false\ntrust = []\n");
    let run = stasis_with_policy(&env, &unknown, &["restore", "-D", text(&image)]);
    assert_failed_with(&run, &[text(&unknown), "line 2", "trust"]);

    let writable = write_policy(&env, "writable.toml", "require_seal = false\n");
    fs::set_permissions(&writable, fs::Permissions::from_mode(0o666)).unwrap();
    let run = stasis_with_policy(&env, &writable, &["restore", "-D", text(&image)]);
    assert_failed_with(&run, &[text(&writable), "writable by group or other users"]);

    let missing = env.path("absent.toml");
    let run = stasis_with_policy(&env, &missing, &["restore", "-D", text(&image)]);
    assert_failed_with(&run, &["absent.toml not found"]);

    let empty = write_policy(&env, "empty.toml", "");
    let run = stasis_with_policy(
        &env,
        &empty,
        &["restore", "-D", text(&image), "--require-seal"],
    );
    assert_failed_with(&run, &["--require-seal needs a trusted key", "--pubkey"]);

    let run = stasis_with_policy(
        &env,
        &empty,
        &["restore", "-D", text(&image), "--pubkey", "/k.pub"],
    );
    assert_failed_with(&run, &["--require-seal"]);
}
