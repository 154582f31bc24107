//! TPM seals of real images: `stasis dump --seal-tpm`, `stasis seal --tpm`,
//! `stasis verify --tpm` and `stasis restore --require-seal --tpm`.
//!
//! Each test starts its own swtpm on loopback ports (see
//! `stasis_seal::swtpm`), which is killed and its state removed when the
//! test ends. A missing swtpm fails the test with a message saying to
//! install it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use stasis_seal::swtpm::Swtpm;
use stasis_seal::Tpm;

/// primes.py counts the primes up to this limit, in about a second.
const PRIMES_LIMIT: u64 = 1_000_000;
/// The number of primes up to 1,000,000.
const PRIMES_COUNT: u64 = 78_498;
const PRIMES_TIMEOUT: Duration = Duration::from_secs(180);
/// The PCR that the tests bind seals to and extend: PCR 16, the debug PCR,
/// which software may extend and reset.
const PCR: &str = "16";

fn start_swtpm(env: &TestEnv) -> Swtpm {
    Swtpm::start(&env.dir).unwrap_or_else(|message| panic!("{message}"))
}

fn text(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn verify_tpm(env: &TestEnv, image: &Path, swtpm: &Swtpm) -> StasisRun {
    env.stasis(&["verify", text(image), "--tpm", "--tcti", &swtpm.tcti()])
}

/// Runs `stasis restore --require-seal --tpm` on an image that must be
/// rejected, checks the message and that no process took `pid`.
fn assert_restore_rejected(
    env: &TestEnv,
    image: &Path,
    swtpm: &Swtpm,
    pid: Pid,
    expected: &[&str],
) {
    let tcti = swtpm.tcti();
    let run = env.stasis(&[
        "restore",
        "-D",
        text(image),
        "-d",
        "--require-seal",
        "--tpm",
        "--tcti",
        &tcti,
    ]);
    env.track_if_child(pid);
    assert_failed_with(&run, expected);
    assert!(
        wait_pid_free(pid, WAIT_TIMEOUT),
        "PID {pid} is in use after a rejected restore of {}",
        image.display()
    );
}

/// Dumps a fresh `sleep` into `DIR/name`, reaps it, and returns the image
/// and the PID the process had.
fn dump_sleep(env: &TestEnv, name: &str) -> (PathBuf, Pid) {
    let pid = start_sleep(env, name);
    let image = env.path(name);
    env.dump_and_reap(pid, &image);
    (image, pid)
}

fn parse_primes_checked(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let position = words.iter().position(|word| *word == "checked")?;
    words.get(position + 1)?.parse().ok()
}

#[test]
fn tpm_sealed_dump_restores() {
    let Some(env) = TestEnv::new("tpm_sealed_dump_restores") else {
        return;
    };
    let swtpm = start_swtpm(&env);
    let tcti = swtpm.tcti();
    let script = workload_script("primes.py");
    let progress = env.path("primes.progress");
    let result = env.path("primes.result");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(PRIMES_LIMIT.to_string())
        .arg(&progress)
        .arg(&result);
    let pid = env.spawn("primes", &mut command);
    wait_until("primes.py to report progress", WAIT_TIMEOUT, || {
        assert!(
            is_running(pid),
            "primes.py exited early:\n{}",
            env.stderr_of("primes")
        );
        parse_primes_checked(&read_or_empty(&progress)).filter(|checked| *checked > 0)
    });

    let image = env.path("image");
    let dump = env.dump(pid, &image, &["--seal-tpm", "--pcrs", PCR, "--tcti", &tcti]);
    let exit = wait_exit(pid, WAIT_TIMEOUT);
    assert!(
        matches!(exit, Exit::Signal(_)),
        "dump should kill {pid}: {exit}"
    );
    assert!(wait_pid_free(pid, WAIT_TIMEOUT), "PID {pid} still in use");
    let summary = dump.json();
    assert_eq!(summary["seal"]["key_type"], "tpm", "{dump}");
    assert_eq!(summary["seal"]["pcrs"], "sha256:16", "{dump}");
    assert!(
        !result.exists(),
        "primes.py finished before the dump, so the restore proves nothing"
    );

    let seal = fs::read_to_string(image.join("seal")).expect("read seal");
    assert!(
        seal.starts_with("stasis-seal 2\nkey_type tpm-ecdsa-p256\n"),
        "{seal}"
    );
    let run = verify_tpm(&env, &image, &swtpm);
    assert!(run.success(), "verify --tpm failed:\n{run}");
    assert!(run.stdout.contains("PCRs sha256:16 unchanged"), "{run}");
    let key_id = summary["seal"]["key_id"]
        .as_str()
        .expect("key ID")
        .to_string();
    let run = env.stasis(&[
        "verify",
        text(&image),
        "--tpm",
        "--tcti",
        &tcti,
        "--tpm-key-id",
        &key_id,
    ]);
    assert!(
        run.success(),
        "verify --tpm-key-id of the sealing key failed:\n{run}"
    );
    let run = env.stasis(&[
        "verify",
        text(&image),
        "--tpm",
        "--tcti",
        &tcti,
        "--tpm-key-id",
        "0123456789abcdef",
    ]);
    assert_failed_with(&run, &["not a trusted key", &key_id, "0123456789abcdef"]);

    let restore_args = [
        "--require-seal",
        "--tpm",
        "--tcti",
        &tcti,
        "--tpm-key-id",
        &key_id,
    ];
    let restored = env.restore_detached(&image, pid, &restore_args);
    let exit = wait_exit(restored, PRIMES_TIMEOUT);
    assert_eq!(
        exit,
        Exit::Code(0),
        "restored primes.py failed:\n{}",
        env.stderr_of("primes")
    );
    let line = read_or_empty(&result);
    assert!(
        line.contains(&format!("limit={PRIMES_LIMIT} count={PRIMES_COUNT} ")),
        "restored primes.py found another count than {PRIMES_COUNT}: {line}"
    );
}

#[test]
fn tpm_seal_rejects_pcr_change() {
    let Some(env) = TestEnv::new("tpm_seal_rejects_pcr_change") else {
        return;
    };
    let swtpm = start_swtpm(&env);
    let tcti = swtpm.tcti();
    let (image, pid) = dump_sleep(&env, "img");
    let run = env.stasis(&[
        "seal",
        text(&image),
        "--tpm",
        "--pcrs",
        PCR,
        "--tcti",
        &tcti,
    ]);
    assert!(run.success(), "seal --tpm failed:\n{run}");
    assert!(run.stdout.contains("(PCRs sha256:16)"), "{run}");
    let run = verify_tpm(&env, &image, &swtpm);
    assert!(run.success(), "verify --tpm failed:\n{run}");

    // A measurement into PCR 16 changes the measured state.
    let mut tpm = Tpm::open(Some(&tcti)).expect("connect to swtpm");
    tpm.extend_pcr(16, b"a measurement after sealing")
        .expect("extend PCR 16");
    drop(tpm);

    let run = verify_tpm(&env, &image, &swtpm);
    assert_failed_with(
        &run,
        &[
            "seal: INVALID",
            "measured state changed after sealing",
            "sha256 PCR 16 is ",
            &format!("was {} when sealed", "00".repeat(32)),
            "do not restore it",
        ],
    );
    assert_restore_rejected(
        &env,
        &image,
        &swtpm,
        pid,
        &["needs a valid seal by this host's TPM", "sha256 PCR 16"],
    );

    // Sealed again in the new state, the image verifies.
    let run = env.stasis(&[
        "seal",
        text(&image),
        "--tpm",
        "--pcrs",
        PCR,
        "--tcti",
        &tcti,
    ]);
    assert!(run.success(), "seal --tpm in the new state failed:\n{run}");
    let run = verify_tpm(&env, &image, &swtpm);
    assert!(
        run.success(),
        "verify --tpm in the new state failed:\n{run}"
    );
}

#[test]
fn tpm_seal_rejects_other_keys_and_tampering() {
    let Some(env) = TestEnv::new("tpm_seal_rejects_other_keys_and_tampering") else {
        return;
    };
    let swtpm = start_swtpm(&env);
    let other_swtpm = start_swtpm(&env);
    let tcti = swtpm.tcti();
    let (image, pid) = dump_sleep(&env, "img");
    let run = env.stasis(&["seal", text(&image), "--tpm", "--tcti", &tcti]);
    assert!(run.success(), "seal --tpm failed:\n{run}");
    assert!(run.stdout.contains("(bound to no PCRs)"), "{run}");

    // Another TPM derives another key.
    let run = verify_tpm(&env, &image, &other_swtpm);
    assert_failed_with(&run, &["seal: INVALID", "sealed with another TPM"]);
    assert_restore_rejected(
        &env,
        &image,
        &other_swtpm,
        pid,
        &["sealed with another TPM"],
    );

    // An Ed25519 key does not stand in for the TPM.
    let key = env.path("signer");
    let run = env.stasis(&["key", "generate", "--out", text(&key)]);
    assert!(run.success(), "key generation failed:\n{run}");
    let public = format!("{}.pub", text(&key));
    let run = env.stasis(&["verify", text(&image), "--pubkey", &public]);
    assert_failed_with(&run, &["seal: INVALID", "verify it with --tpm"]);

    // An Ed25519 seal is not a TPM seal.
    let key_sealed = env.path("key-sealed");
    copy_dir(&image, &key_sealed);
    let run = env.stasis(&["seal", text(&key_sealed), "--key", text(&key)]);
    assert!(run.success(), "seal --key failed:\n{run}");
    let run = verify_tpm(&env, &key_sealed, &swtpm);
    assert_failed_with(&run, &["seal: INVALID", "not by a TPM"]);

    // A changed pages file keeps a valid seal but fails its hash.
    let tampered = env.path("tampered");
    copy_dir(&image, &tampered);
    let pages = format!("pages-{pid}");
    flip_byte(&tampered, &pages, 4096 + 10);
    let run = verify_tpm(&env, &tampered, &swtpm);
    assert_failed_with(
        &run,
        &["seal: valid", &format!("CHANGED  {pages}"), "1 problem;"],
    );
    assert_restore_rejected(&env, &tampered, &swtpm, pid, &["do not match their hash"]);

    // A changed seal field breaks the signature.
    let edited = env.path("edited-seal");
    copy_dir(&image, &edited);
    let seal = fs::read_to_string(edited.join("seal")).unwrap();
    let changed = seal.replace("stasis_version ", "stasis_version 9");
    assert_ne!(changed, seal);
    fs::write(edited.join("seal"), changed).unwrap();
    let run = verify_tpm(&env, &edited, &swtpm);
    assert_failed_with(&run, &["seal: INVALID", "invalid signature"]);
    assert_restore_rejected(&env, &edited, &swtpm, pid, &["invalid signature"]);

    // With every check passed, the image restores.
    let restored = env.restore_detached(&image, pid, &["--require-seal", "--tpm", "--tcti", &tcti]);
    wait_until_sleeping(restored);
    send_signal(restored, Signal::SIGKILL);
    assert_eq!(
        wait_exit(restored, WAIT_TIMEOUT),
        Exit::Signal(Signal::SIGKILL)
    );
}

#[test]
fn missing_tpm_is_named() {
    let Some(env) = TestEnv::new("missing_tpm_is_named") else {
        return;
    };
    let image = env.make_dir("img");
    let run = env.stasis(&[
        "seal",
        text(&image),
        "--tpm",
        "--tcti",
        "device:/nonexistent/tpmrm0",
    ]);
    assert_failed_with(&run, &["cannot use a TPM", "device:/nonexistent/tpmrm0"]);

    let run = env.stasis(&[
        "verify",
        text(&image),
        "--pubkey",
        "key.pub",
        "--tcti",
        "swtpm:port=2321",
    ]);
    assert_failed_with(&run, &["--tcti and --tpm-key-id apply to --tpm only"]);

    // dump --seal-tpm opens the TPM before it touches the target.
    let pid = start_sleep(&env, "sleep");
    let dumped = env.path("dumped");
    let run = env.stasis(&[
        "dump",
        "-t",
        &pid.to_string(),
        "-D",
        text(&dumped),
        "--seal-tpm",
        "--tcti",
        "device:/nonexistent/tpmrm0",
    ]);
    assert_failed_with(&run, &["cannot use a TPM", "/nonexistent/tpmrm0"]);
    assert!(
        !dumped.exists(),
        "dump wrote {} without a TPM",
        dumped.display()
    );
    assert_eq!(
        proc_state(pid),
        Some('S'),
        "the target was stopped or killed"
    );
    assert_eq!(proc_status_value(pid, "TracerPid").as_deref(), Some("0"));
    send_signal(pid, Signal::SIGKILL);
    assert_eq!(wait_exit(pid, WAIT_TIMEOUT), Exit::Signal(Signal::SIGKILL));

    // Without --tcti and STASIS_TCTI, stasis looks for /dev/tpmrm0.
    if std::env::var_os("STASIS_TCTI").is_none() && !Path::new("/dev/tpmrm0").exists() {
        let run = env.stasis(&["verify", text(&image), "--tpm"]);
        assert_failed_with(
            &run,
            &["no TPM found", "/dev/tpmrm0", "--tcti", "STASIS_TCTI"],
        );
    } else {
        eprintln!(
            "missing_tpm_is_named: this host has /dev/tpmrm0 or sets STASIS_TCTI, so the \
             message for a host without a TPM is not checked here"
        );
    }
}

#[test]
fn tpm_image_key_needs_its_tpm() {
    let Some(env) = TestEnv::new("tpm_image_key_needs_its_tpm") else {
        return;
    };
    let swtpm = start_swtpm(&env);
    let other_dir = env.make_dir("other-tpm");
    let other = Swtpm::start(&other_dir).unwrap_or_else(|message| panic!("{message}"));
    let key = env.path("image.key");
    let run = env.stasis(&[
        "key",
        "generate",
        "--encryption",
        "--tpm",
        "--tcti",
        &swtpm.tcti(),
        "--out",
        text(&key),
        "--json",
    ]);
    assert!(run.success(), "TPM key generation failed:\n{run}");
    let key_id = run.json()["key_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let contents = fs::read_to_string(&key).expect("read the key file");
    assert!(
        contents.starts_with("stasis-aes256-image-key-tpm-v1\ntcti "),
        "{contents}"
    );

    let pid = start_sleep(&env, "sleep");
    let image = env.path("image");
    let dump = env.dump_and_reap_with(pid, &image, &["--encrypt", text(&key)]);
    assert!(dump.success(), "{dump}");
    let run = env.stasis(&["inspect", text(&image), "--json"]);
    assert!(run.success(), "{run}");
    assert_eq!(
        run.json()["encryption"]["key_id"].as_str(),
        Some(key_id.as_str()),
        "{run}"
    );

    // The same file on a host whose TPM is another one: the key file names
    // its TPM, so point it at the other swtpm by editing the recorded TCTI.
    let moved = env.path("moved.key");
    fs::write(&moved, contents.replace(&swtpm.tcti(), &other.tcti())).expect("write key copy");
    fs::set_permissions(&moved, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod key copy");
    let run = env.stasis(&["restore", "-D", text(&image), "-d", "--key", text(&moved)]);
    assert!(!run.success(), "restore with another TPM succeeded:\n{run}");
    assert!(run.stderr.contains("image key"), "{run}");
    assert!(
        wait_pid_free(pid, WAIT_TIMEOUT),
        "the rejected restore left process {pid}"
    );

    env.restore_detached(&image, pid, &["--key", text(&key)]);
    assert_eq!(proc_comm(pid).as_deref(), Some("sleep"));
    drop(other);
}
