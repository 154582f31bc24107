//! `stasis restore`: start a process again from an image directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use stasis_engine::restore::{
    restore, InitCommand, PidNamespaceMode, RestoreOptions, RestoreSummary,
};
use stasis_seal::policy::policy_location;
use stasis_seal::{load_policy, verify_seal, verify_seal_tpm, Policy, PublicKey};
use tracing::info;

use crate::cmd::seal::{TctiArgs, TpmKeyIdArgs};
use crate::cmd::verify::load_public_keys;
use crate::output;

/// Restore a process from an image directory, with its original PID.
///
/// When a saved PID is taken by another process, the tree is restored into
/// a new PID namespace, where it keeps its PIDs, and a message on stderr
/// names the taken PID.
#[derive(clap::Args)]
pub struct Args {
    /// Image directory written by `stasis dump`.
    #[arg(short = 'D', long = "images-dir")]
    dir: PathBuf,

    /// Return once the process runs and print its PID (in a new PID
    /// namespace, the PID outside it), instead of waiting for it and
    /// exiting with its status.
    #[arg(short = 'd', long)]
    restore_detached: bool,

    /// Accept files whose size or modification time changed since the dump.
    #[arg(long)]
    skip_file_checks: bool,

    /// Reject the image unless it is sealed by a trusted key: one given with
    /// --pubkey, or else one listed in the policy file. The seal is checked
    /// before any record of the image is read.
    #[arg(long)]
    require_seal: bool,

    /// Public key file whose seals are accepted; repeat for several keys.
    #[arg(long = "pubkey", value_name = "PUBFILE", requires = "require_seal")]
    pubkeys: Vec<PathBuf>,

    /// Restore into a new PID namespace even when the saved PIDs are free.
    /// The processes have their saved PIDs inside it and other PIDs
    /// outside, which `-d` and --json report.
    #[arg(long, conflicts_with = "no_pid_ns")]
    pid_ns: bool,

    /// Never restore into a new PID namespace: fail when a saved PID is
    /// taken.
    #[arg(long)]
    no_pid_ns: bool,

    /// Image key file of an encrypted image (`stasis dump --encrypt`).
    #[arg(long, value_name = "KEYFILE")]
    key: Option<PathBuf>,

    /// With --require-seal, accept only a seal made by this host's TPM
    /// (`stasis seal --tpm`) whose PCRs still hold the recorded values.
    #[arg(long, requires = "require_seal", conflicts_with = "pubkeys")]
    tpm: bool,

    #[command(flatten)]
    tcti: TctiArgs,

    #[command(flatten)]
    key_ids: TpmKeyIdArgs,

    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs this program again as the init of a new PID namespace, through the
/// hidden `pid-ns-init` subcommand.
fn init_command() -> InitCommand {
    InitCommand {
        program: "/proc/self/exe".into(),
        args: vec!["pid-ns-init".into()],
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let manifest_hash = check_seal(&args)?;
    let key = args
        .key
        .as_deref()
        .map(crate::cmd::key::load_encryption_key)
        .transpose()?;
    let options = RestoreOptions {
        dir: args.dir.clone(),
        skip_file_checks: args.skip_file_checks,
        manifest_hash,
        pid_namespace: if args.pid_ns {
            PidNamespaceMode::Always(init_command())
        } else if args.no_pid_ns {
            PidNamespaceMode::Never
        } else {
            PidNamespaceMode::WhenPidsTaken(init_command())
        },
        key,
    };
    let summary =
        restore(&options).with_context(|| format!("restore from {} failed", args.dir.display()))?;

    if let Some(reason) = summary
        .pid_namespace
        .as_ref()
        .and_then(|namespace| namespace.reason.as_ref())
    {
        eprintln!(
            "stasis: {reason}, so the tree was restored into a new PID namespace; pass --no-pid-ns to fail instead"
        );
    }
    if args.json {
        output::print_json(&summary)?;
    } else if args.restore_detached {
        println!("{}", summary.pid);
    } else {
        eprintln!(
            "restored {} ({} mappings, {} pages) in {:.1} ms",
            describe_root(&summary),
            summary.vmas,
            summary.pages_restored,
            summary.total_ms
        );
    }
    if args.restore_detached {
        return Ok(ExitCode::SUCCESS);
    }
    wait_for_exit(summary.pid)
}

/// Names the restored root for the human output: its PID, and for a new PID
/// namespace also its PID outside, the namespace and its init.
fn describe_root(summary: &RestoreSummary) -> String {
    match &summary.pid_namespace {
        None => format!("pid {}", summary.pid),
        Some(namespace) => format!(
            "pid {} in PID namespace pid:[{}] (pid {} outside it; init pid {})",
            namespace.root_pid, namespace.inode, summary.pid, namespace.init_pid
        ),
    }
}

/// A party that requires a seal (the policy file or --pubkey), and the keys
/// whose seals it accepts.
struct SealRequirement {
    source: String,
    keys: Vec<PublicKey>,
}

/// Checks the seal that --require-seal or the policy file requires, and
/// returns the hash of the manifest it signs, which the restore must then
/// read. Returns `None` when no seal is required.
///
/// The signer must be trusted by every requirement: with a policy that sets
/// `require_seal` and with --pubkey, it must be in both lists.
fn check_seal(args: &Args) -> anyhow::Result<Option<[u8; 32]>> {
    if args.tpm {
        return check_tpm_seal(args).map(Some);
    }
    if args.tcti.tcti.is_some() || !args.key_ids.key_ids.is_empty() {
        bail!("--tcti and --tpm-key-id apply to --tpm only; add --tpm");
    }
    let requirements = seal_requirements(args)?;
    let Some((first, others)) = requirements.split_first() else {
        return Ok(None);
    };

    let dir = args.dir.display();
    let verified = verify_seal(&args.dir, &first.keys).with_context(|| {
        format!(
            "restore from {dir} rejected: it needs a valid seal by a key that {} trusts",
            first.source
        )
    })?;
    let key_id = verified.signer.key_id();
    for requirement in others {
        if !requirement.keys.contains(&verified.signer) {
            bail!(
                "restore from {dir} rejected: it is sealed by key {key_id}, which {} does not \
                 trust",
                requirement.source
            );
        }
    }
    info!(key_id, dir = %dir, "seal verified");
    Ok(Some(*verified.manifest_hash.as_bytes()))
}

/// Checks that the image is sealed by this host's TPM, for `--require-seal
/// --tpm`, and returns the hash of the manifest that the seal signs.
fn check_tpm_seal(args: &Args) -> anyhow::Result<[u8; 32]> {
    let dir = args.dir.display();
    // A policy that requires a seal trusts only its Ed25519 keys, and a
    // TPM seal is not made by one of them.
    if let Some(policy) = load_policy()
        .context("cannot load the seal policy")?
        .filter(|policy| policy.require_seal)
    {
        bail!(
            "restore from {dir} rejected: the policy file {} requires a seal by one of its \
             trusted_keys, and --tpm accepts only TPM seals; remove --tpm and --require-seal \
             to apply the policy alone",
            policy.path.display()
        );
    }
    let mut tpm = args.tcti.open()?;
    let verified =
        verify_seal_tpm(&args.dir, &mut tpm, &args.key_ids.key_ids).with_context(|| {
            format!("restore from {dir} rejected: it needs a valid seal by this host's TPM")
        })?;
    info!(key_id = verified.info.key_id, dir = %dir, "TPM seal verified");
    Ok(*verified.manifest_hash.as_bytes())
}

/// Loads the policy and the --pubkey keys, and returns who requires a seal.
fn seal_requirements(args: &Args) -> anyhow::Result<Vec<SealRequirement>> {
    let location = policy_location();
    let policy = load_policy().context("cannot load the seal policy")?;
    let from_policy = |policy: &Policy| SealRequirement {
        source: format!("the policy file {}", policy.path.display()),
        keys: policy.public_keys(),
    };

    let mut requirements = Vec::new();
    if let Some(policy) = policy.as_ref().filter(|policy| policy.require_seal) {
        requirements.push(from_policy(policy));
    }
    if !args.require_seal {
        return Ok(requirements);
    }
    if !args.pubkeys.is_empty() {
        requirements.push(SealRequirement {
            source: "--pubkey".to_string(),
            keys: load_public_keys(&args.pubkeys)?,
        });
        return Ok(requirements);
    }
    match policy {
        // Already required above.
        Some(policy) if policy.require_seal => {}
        Some(policy) if !policy.trusted_keys.is_empty() => requirements.push(from_policy(&policy)),
        _ => bail!(
            "--require-seal needs a trusted key: give --pubkey PUBFILE, or list trusted_keys in \
             the policy file {}",
            location.path.display()
        ),
    }
    Ok(requirements)
}

/// Waits for the restored child and returns its exit status, or 128 plus
/// the signal number that killed it, as shells report it.
fn wait_for_exit(pid: i32) -> anyhow::Result<ExitCode> {
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::Pid;

    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(ExitCode::from(code as u8)),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                return Ok(ExitCode::from(128 + signal as u8))
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("waiting for restored pid {pid} failed"))
            }
        }
    }
}
