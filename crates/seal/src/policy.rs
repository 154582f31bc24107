//! The system-wide seal policy: a TOML file that makes `stasis restore`
//! require a seal by one of a list of trusted keys.
//!
//! ```toml
//! require_seal = true
//! trusted_keys = ["/etc/stasis/keys/build.pub", "/etc/stasis/keys/ops.pub"]
//! ```
//!
//! Both fields are optional. `require_seal` defaults to false, and
//! `trusted_keys` (absolute paths of public key files) to none. Other
//! fields are rejected. The policy file and every trusted key file must be
//! owned by root and not writable by group or other users, because anyone
//! who can change them decides which images root restores.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::SealError;
use crate::files::{open_regular, read_opened, Symlinks};
use crate::key::{PublicKey, MAX_KEY_FILE_SIZE};

/// Path of the policy file when [`POLICY_PATH_ENV`] is not set.
pub const DEFAULT_POLICY_PATH: &str = "/etc/stasis/policy.toml";
/// Environment variable that replaces [`DEFAULT_POLICY_PATH`], for tests.
pub const POLICY_PATH_ENV: &str = "STASIS_POLICY";

/// Maximum size of a policy file that is accepted, in bytes.
const MAX_POLICY_SIZE: u64 = 64 << 10;
/// Permission bits that let group or other users write a file.
const GROUP_OTHER_WRITE: u32 = 0o022;

/// The policy file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    require_seal: Option<Spanned<bool>>,
    #[serde(default)]
    trusted_keys: Vec<Spanned<String>>,
}

/// A loaded policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file the policy was loaded from.
    pub path: PathBuf,
    /// Whether every restore requires a seal by one of `trusted_keys`.
    pub require_seal: bool,
    /// The trusted keys, in file order, without duplicates.
    pub trusted_keys: Vec<TrustedKey>,
}

/// A public key listed in the policy.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    pub path: PathBuf,
    pub key: PublicKey,
}

/// Location of the policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLocation {
    pub path: PathBuf,
    /// True when the path came from [`POLICY_PATH_ENV`]. Then the file must
    /// exist; the default file may be absent, which means no policy.
    pub from_env: bool,
}

/// Returns where the policy is read from: the path in [`POLICY_PATH_ENV`]
/// if that variable is set, else [`DEFAULT_POLICY_PATH`].
pub fn policy_location() -> PolicyLocation {
    location_from(std::env::var_os(POLICY_PATH_ENV))
}

fn location_from(env_value: Option<OsString>) -> PolicyLocation {
    match env_value {
        Some(value) => PolicyLocation {
            path: PathBuf::from(value),
            from_env: true,
        },
        None => PolicyLocation {
            path: PathBuf::from(DEFAULT_POLICY_PATH),
            from_env: false,
        },
    }
}

/// Loads the policy from [`policy_location`]. Returns `None` when no
/// policy file is configured: [`POLICY_PATH_ENV`] is not set and
/// [`DEFAULT_POLICY_PATH`] does not exist.
pub fn load_policy() -> Result<Option<Policy>, SealError> {
    let location = policy_location();
    match Policy::load(&location.path) {
        Ok(policy) => Ok(Some(policy)),
        Err(SealError::NotFound { path }) if !location.from_env && path == location.path => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

impl Policy {
    /// Loads and checks the policy file `path` and the key files it lists.
    ///
    /// Errors name the file and, for problems in it, the line.
    pub fn load(path: &Path) -> Result<Policy, SealError> {
        let bytes = read_trusted_file(path, MAX_POLICY_SIZE)?;
        let text = std::str::from_utf8(&bytes).map_err(|error| SealError::Policy {
            path: path.to_path_buf(),
            message: format!(
                "the file is not UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            ),
        })?;
        Policy::parse(text, path)
    }

    /// Parses the policy `text` read from `path`, and loads the key files it
    /// lists.
    fn parse(text: &str, path: &Path) -> Result<Policy, SealError> {
        let policy_error = |message: String| SealError::Policy {
            path: path.to_path_buf(),
            message,
        };
        let file: PolicyFile = toml::from_str(text)
            .map_err(|error| policy_error(error.to_string().trim_end().to_string()))?;

        let mut trusted_keys: Vec<TrustedKey> = Vec::new();
        for entry in &file.trusted_keys {
            let line = line_of(text, entry.span().start);
            let key_path = PathBuf::from(entry.get_ref());
            if !key_path.is_absolute() {
                return Err(policy_error(format!(
                    "line {line}: trusted key path {:?} is not absolute",
                    entry.get_ref()
                )));
            }
            let key = load_trusted_key(&key_path)
                .map_err(|error| policy_error(format!("line {line}: {error}")))?;
            if !trusted_keys.iter().any(|known| known.key == key) {
                trusted_keys.push(TrustedKey {
                    path: key_path,
                    key,
                });
            }
        }

        let require_seal = match &file.require_seal {
            Some(value) if *value.get_ref() && trusted_keys.is_empty() => {
                return Err(policy_error(format!(
                    "line {}: require_seal is true but trusted_keys lists no key, so no image \
                     could be restored; list the public key files of the keys that seal images",
                    line_of(text, value.span().start)
                )));
            }
            Some(value) => *value.get_ref(),
            None => false,
        };

        Ok(Policy {
            path: path.to_path_buf(),
            require_seal,
            trusted_keys,
        })
    }

    /// Returns the trusted public keys.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.trusted_keys
            .iter()
            .map(|trusted| trusted.key)
            .collect()
    }
}

/// Loads a public key file listed in the policy, which must be as protected
/// as the policy file itself.
fn load_trusted_key(path: &Path) -> Result<PublicKey, SealError> {
    let bytes = read_trusted_file(path, MAX_KEY_FILE_SIZE)?;
    PublicKey::from_file_bytes(&bytes, path)
}

/// Reads a file that decides what root trusts. It must be a regular file
/// owned by root that group and other users cannot write; the checks run
/// on the opened file.
fn read_trusted_file(path: &Path, limit: u64) -> Result<Vec<u8>, SealError> {
    let (file, metadata) = open_regular(path, Symlinks::Follow)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if metadata.uid() != 0 || mode & GROUP_OTHER_WRITE != 0 {
        return Err(SealError::UntrustedFile {
            path: path.to_path_buf(),
            mode,
            uid: metadata.uid(),
        });
    }
    read_opened(file, &metadata, path, limit)
}

/// Returns the 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::key::generate_key_pair;
    use crate::test_support::{files_owned_by_root, TempDir};

    /// Writes `text` as a policy file with mode 0644 and returns its path.
    fn write_policy(temp: &TempDir, text: &str) -> PathBuf {
        let path = temp.path().join("policy.toml");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// Generates a key pair in `temp` and returns the public key path.
    fn public_key_file(temp: &TempDir, name: &str) -> (PathBuf, PublicKey) {
        let generated = generate_key_pair(&temp.path().join(name)).unwrap();
        (generated.public_path, generated.public_key)
    }

    #[test]
    fn location_uses_env_when_set() {
        assert_eq!(
            location_from(None),
            PolicyLocation {
                path: PathBuf::from("/etc/stasis/policy.toml"),
                from_env: false
            }
        );
        assert_eq!(
            location_from(Some("/tmp/p.toml".into())),
            PolicyLocation {
                path: PathBuf::from("/tmp/p.toml"),
                from_env: true
            }
        );
    }

    #[test]
    fn valid_policy_loads() {
        let temp = TempDir::new();
        if !files_owned_by_root(&temp) {
            eprintln!("skipping: policy files must be owned by root, and this test is not root");
            return;
        }
        let (first, first_key) = public_key_file(&temp, "first");
        let (second, second_key) = public_key_file(&temp, "second");
        let path = write_policy(
            &temp,
            &format!(
                "require_seal = true\ntrusted_keys = [\n  {first:?},\n  {second:?},\n  {first:?},\n]\n"
            ),
        );

        let policy = Policy::load(&path).expect("load policy");
        assert!(policy.require_seal);
        assert_eq!(policy.public_keys(), vec![first_key, second_key]);
        assert_eq!(policy.trusted_keys[1].path, second);
    }

    #[test]
    fn empty_policy_requires_nothing() {
        let temp = TempDir::new();
        if !files_owned_by_root(&temp) {
            eprintln!("skipping: policy files must be owned by root, and this test is not root");
            return;
        }
        let policy = Policy::load(&write_policy(&temp, "# no settings\n")).unwrap();
        assert!(!policy.require_seal);
        assert!(policy.trusted_keys.is_empty());
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let temp = TempDir::new();
        let path = write_policy(&temp, "# policy\nrequire_seal = yes\n");
        let error = Policy::parse("# policy\nrequire_seal = yes\n", &path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn unknown_field_names_line() {
        let path = Path::new("/etc/stasis/policy.toml");
        let error =
            Policy::parse("require_seal = false\nrequire_seals = true\n", path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("require_seals"), "{message}");
    }

    #[test]
    fn wrong_type_names_line() {
        let path = Path::new("/etc/stasis/policy.toml");
        let error = Policy::parse("\n\ntrusted_keys = \"/k.pub\"\n", path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn relative_key_path_names_line() {
        let path = Path::new("/etc/stasis/policy.toml");
        let error = Policy::parse(
            "require_seal = true\ntrusted_keys = [\"keys/a.pub\"]\n",
            path,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("not absolute"), "{message}");
    }

    #[test]
    fn missing_key_file_names_line_and_file() {
        let path = Path::new("/etc/stasis/policy.toml");
        let error = Policy::parse(
            "require_seal = true\ntrusted_keys = [\n\"/nonexistent/stasis-test.pub\"]\n",
            path,
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(
            message.contains("/nonexistent/stasis-test.pub not found"),
            "{message}"
        );
    }

    #[test]
    fn require_seal_without_keys_is_rejected() {
        let path = Path::new("/etc/stasis/policy.toml");
        let error = Policy::parse("\nrequire_seal = true\n", path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("lists no key"), "{message}");
    }

    #[test]
    fn writable_policy_file_is_rejected() {
        let temp = TempDir::new();
        let path = write_policy(&temp, "require_seal = false\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        let error = Policy::load(&path).unwrap_err();
        assert!(matches!(error, SealError::UntrustedFile { .. }), "{error}");
        assert!(error.to_string().contains("0664"), "{error}");
    }

    #[test]
    fn writable_trusted_key_is_rejected() {
        let temp = TempDir::new();
        if !files_owned_by_root(&temp) {
            eprintln!("skipping: policy files must be owned by root, and this test is not root");
            return;
        }
        let (key_path, _) = public_key_file(&temp, "signer");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o666)).unwrap();
        let path = write_policy(
            &temp,
            &format!("require_seal = true\ntrusted_keys = [{key_path:?}]\n"),
        );
        let error = Policy::load(&path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(
            message.contains("writable by group or other users"),
            "{message}"
        );
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
        assert_eq!(line_of("a", 100), 1);
    }
}
