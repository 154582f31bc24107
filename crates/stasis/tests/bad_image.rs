//! Restore of damaged or missing images. Each damaged copy of a valid image
//! must be rejected with an error that names the damaged file, and must leave
//! no process with the image's PID behind.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use nix::unistd::Pid;

/// Maximum time for a process created by a failed restore to disappear.
const LEFTOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Offset and size of the format version in the manifest: a little-endian
/// u32 after the 8-byte magic.
const VERSION_OFFSET: usize = 8;
const VERSION_SIZE: usize = 4;

/// Dumps a `sleep 1000` into "image" and returns its PID, which is free again,
/// and the image directory.
fn dump_sleep_image(env: &TestEnv) -> (Pid, PathBuf) {
    let pid = start_sleep(env, "sleep");
    let image = env.path("image");
    env.dump_and_reap(pid, &image);
    (pid, image)
}

/// Runs `stasis restore -d` on `image` and checks that it fails with an error
/// that contains `expected`, and that no process has `pid` afterwards.
fn assert_restore_rejects(env: &TestEnv, image: &Path, pid: Pid, case: &str, expected: &str) {
    let image_text = image.to_str().expect("test paths are UTF-8");
    let run = env.stasis(&["restore", "-D", image_text, "-d"]);
    env.track_if_child(pid);

    assert!(!run.success(), "{case}: restore succeeded:\n{run}");
    assert!(
        run.stderr.contains(expected),
        "{case}: restore error does not contain {expected:?}:\n{run}"
    );
    let leftover = proc_comm(pid);
    assert!(
        wait_pid_free(pid, LEFTOVER_TIMEOUT),
        "{case}: process {pid} ({leftover:?}) still exists after the failed restore"
    );
}

/// Returns the file name of `relative` as text, which the error must contain.
fn file_name(relative: &Path) -> &str {
    relative
        .file_name()
        .and_then(|name| name.to_str())
        .expect("image file names are UTF-8")
}

/// Returns the sorted, distinct values of `candidates` that are below `length`.
fn positions_below(length: u64, candidates: &[u64]) -> Vec<u64> {
    let mut positions: Vec<u64> = candidates
        .iter()
        .copied()
        .filter(|&position| position < length)
        .collect();
    positions.sort_unstable();
    positions.dedup();
    positions
}

#[test]
fn restore_rejects_missing_manifest() {
    let Some(env) = TestEnv::new("restore_rejects_missing_manifest") else {
        return;
    };
    let (pid, image) = dump_sleep_image(&env);
    fs::remove_file(image.join("manifest")).expect("remove manifest");

    assert_restore_rejects(&env, &image, pid, "missing manifest", "manifest");
}

#[test]
fn restore_rejects_missing_record_file() {
    let Some(env) = TestEnv::new("restore_rejects_missing_record_file") else {
        return;
    };
    let (pid, image) = dump_sleep_image(&env);
    let files = list_files(&image);
    let record_files: Vec<&PathBuf> = files
        .iter()
        .filter(|path| path.as_os_str() != "manifest")
        .collect();
    assert!(
        !record_files.is_empty(),
        "image {} has no file besides the manifest: {files:?}",
        image.display()
    );

    for (index, relative) in record_files.into_iter().enumerate() {
        let copy = env.path(&format!("missing-{index}"));
        copy_dir(&image, &copy);
        fs::remove_file(copy.join(relative)).expect("remove record file");

        let case = format!("missing {}", relative.display());
        assert_restore_rejects(&env, &copy, pid, &case, file_name(relative));
        fs::remove_dir_all(&copy).expect("remove image copy");
    }
}

#[test]
fn restore_rejects_truncated_file() {
    let Some(env) = TestEnv::new("restore_rejects_truncated_file") else {
        return;
    };
    let (pid, image) = dump_sleep_image(&env);

    for relative in list_files(&image) {
        let length = fs::metadata(image.join(&relative))
            .expect("image file metadata")
            .len();
        // Half the file, and the file without its last byte.
        for new_length in positions_below(length, &[length / 2, length.saturating_sub(1)]) {
            let copy = env.path("truncated");
            copy_dir(&image, &copy);
            let file = OpenOptions::new()
                .write(true)
                .open(copy.join(&relative))
                .expect("open image file");
            file.set_len(new_length).expect("truncate image file");
            drop(file);

            let case = format!(
                "{} truncated from {length} to {new_length} bytes",
                relative.display()
            );
            assert_restore_rejects(&env, &copy, pid, &case, file_name(&relative));
            fs::remove_dir_all(&copy).expect("remove image copy");
        }
    }
}

#[test]
fn restore_rejects_flipped_byte() {
    let Some(env) = TestEnv::new("restore_rejects_flipped_byte") else {
        return;
    };
    let (pid, image) = dump_sleep_image(&env);

    for relative in list_files(&image) {
        let original = fs::read(image.join(&relative)).expect("read image file");
        let length = original.len() as u64;
        // The first, middle and last byte.
        for position in positions_below(length, &[0, length / 2, length.saturating_sub(1)]) {
            let copy = env.path("flipped");
            copy_dir(&image, &copy);
            let mut damaged = original.clone();
            damaged[position as usize] ^= 0x01;
            fs::write(copy.join(&relative), &damaged).expect("write damaged image file");

            let case = format!(
                "{} with the low bit of byte {position} flipped",
                relative.display()
            );
            assert_restore_rejects(&env, &copy, pid, &case, file_name(&relative));
            fs::remove_dir_all(&copy).expect("remove image copy");
        }
    }
}

#[test]
fn restore_rejects_newer_format_version() {
    let Some(env) = TestEnv::new("restore_rejects_newer_format_version") else {
        return;
    };
    let (pid, image) = dump_sleep_image(&env);
    let manifest_path = image.join("manifest");
    let mut manifest = fs::read(&manifest_path).expect("read manifest");
    assert!(
        manifest.len() >= VERSION_OFFSET + VERSION_SIZE,
        "manifest has {} bytes, too short for a magic and a format version",
        manifest.len()
    );
    manifest[VERSION_OFFSET..VERSION_OFFSET + VERSION_SIZE].copy_from_slice(&999u32.to_le_bytes());
    fs::write(&manifest_path, &manifest).expect("write manifest");

    let image_text = image.to_str().expect("test paths are UTF-8");
    let run = env.stasis(&["restore", "-D", image_text, "-d"]);
    env.track_if_child(pid);
    assert!(
        !run.success(),
        "restore of a format version 999 image succeeded:\n{run}"
    );
    assert!(
        run.stderr.to_lowercase().contains("version"),
        "restore error does not mention the format version:\n{run}"
    );
    assert!(
        contains_number(&run.stderr, 999),
        "restore error does not show the version 999 that the manifest claims:\n{run}"
    );
    assert!(
        wait_pid_free(pid, LEFTOVER_TIMEOUT),
        "process {pid} still exists after the failed restore"
    );
}

#[test]
fn restore_rejects_nonexistent_directory() {
    let Some(env) = TestEnv::new("restore_rejects_nonexistent_directory") else {
        return;
    };
    let missing = env.path("no-such-image");
    let missing_text = missing.to_str().expect("test paths are UTF-8");

    let run = env.stasis(&["restore", "-D", missing_text, "-d"]);
    assert!(
        !run.success(),
        "restore of a nonexistent directory succeeded:\n{run}"
    );
    assert!(
        run.stderr.contains(missing_text),
        "restore error does not name the directory {missing_text}:\n{run}"
    );
}
