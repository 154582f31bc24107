//! A software TPM (swtpm) for tests: [`Swtpm::start`] runs one on loopback
//! TCP ports with a fresh state directory, and dropping it kills that
//! process by its PID and removes the directory.
//!
//! Each instance is a new TPM with its own seeds, so two instances have
//! different signing keys.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long [`Swtpm::start`] waits for swtpm to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts with new ports when swtpm exits at start, as it does when
/// another process took a port between the probe and the start.
const START_ATTEMPTS: usize = 5;

/// A running swtpm. Dropping it kills the process and removes its state.
#[derive(Debug)]
pub struct Swtpm {
    child: Child,
    state_dir: PathBuf,
    port: u16,
}

impl Swtpm {
    /// Starts `swtpm socket --tpm2` on 127.0.0.1 with a command port and
    /// the control port after it, with `startup-clear` so that the TPM is
    /// ready for commands, and a new state directory under `parent`.
    ///
    /// When the `swtpm` program is missing, fails with a message that names
    /// the Debian packages to install.
    pub fn start(parent: &Path) -> Result<Swtpm, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let number = COUNTER.fetch_add(1, Ordering::Relaxed);
        let state_dir = parent.join(format!("swtpm-{}-{number}", std::process::id()));
        let _ = fs::remove_dir_all(&state_dir);
        fs::create_dir_all(&state_dir)
            .map_err(|error| format!("cannot create {}: {error}", state_dir.display()))?;

        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port_pair().map_err(|error| {
                let _ = fs::remove_dir_all(&state_dir);
                format!("cannot find two free loopback TCP ports: {error}")
            })?;
            match start_at(&state_dir, port) {
                Ok(child) => {
                    return Ok(Swtpm {
                        child,
                        state_dir,
                        port,
                    })
                }
                Err(StartError::Missing(message)) => {
                    let _ = fs::remove_dir_all(&state_dir);
                    return Err(message);
                }
                Err(StartError::Failed(message)) => last_error = message,
            }
        }
        let _ = fs::remove_dir_all(&state_dir);
        Err(last_error)
    }

    /// Returns the TCTI string that reaches this TPM.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Returns the PID of the swtpm process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.state_dir);
    }
}

enum StartError {
    /// swtpm is not installed.
    Missing(String),
    /// swtpm exited or did not listen in time.
    Failed(String),
}

/// Starts swtpm on `port` (commands) and `port + 1` (control) and waits
/// until it accepts connections on both.
fn start_at(state_dir: &Path, port: u16) -> Result<Child, StartError> {
    let log = state_dir.join("swtpm.log");
    let mut command = Command::new("swtpm");
    command
        .arg("socket")
        .arg("--tpm2")
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--tpmstate")
        .arg(format!("dir={}", state_dir.display()))
        .arg("--log")
        .arg(format!("file={}", log.display()))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(StartError::Missing(
                "swtpm not found: the TPM tests run against a software TPM; install the Debian \
                 packages swtpm and swtpm-tools (apt-get install swtpm swtpm-tools), as .ci/run \
                 does"
                    .to_string(),
            ))
        }
        Err(error) => return Err(StartError::Failed(format!("cannot start swtpm: {error}"))),
    };

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log_text = fs::read_to_string(&log).unwrap_or_default();
            return Err(StartError::Failed(format!(
                "swtpm on port {port} exited at start with {status}: {}",
                log_text.trim()
            )));
        }
        let listening = [port, port + 1]
            .iter()
            .all(|&port| TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
        if listening {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(StartError::Failed(format!(
                "swtpm did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}"
            )));
        }
        sleep(Duration::from_millis(20));
    }
}

/// Returns a port P such that P and P + 1 were both free on 127.0.0.1.
fn free_port_pair() -> io::Result<u16> {
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        if port == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no two adjacent free ports found in 100 tries",
    ))
}
