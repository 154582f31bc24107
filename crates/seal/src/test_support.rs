//! Helpers for the unit tests: a scratch directory and a small valid image.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use stasis_image::{
    decode_record_file, encode_record_json, FdTable, FileIdentity, Host, ImageWriter, Manifest,
    MemoryMap, RecordKind, MANIFEST_NAME,
};

use crate::key::{generate_key_pair, PrivateKey, PublicKey};
use crate::sign::{seal_image, SealOptions};

/// A scratch directory that is removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "stasis-seal-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create scratch directory");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Returns whether files created by this test process are owned by root,
/// which the policy requires of its files.
pub fn files_owned_by_root(temp: &TempDir) -> bool {
    let probe = temp.path().join("owner-probe");
    fs::write(&probe, b"").expect("create probe file");
    let uid = fs::metadata(&probe).expect("stat probe file").uid();
    fs::remove_file(&probe).expect("remove probe file");
    uid == 0
}

pub const PID: i32 = 100;
pub const MM: &str = "mm-100";
pub const FDS: &str = "fds-100";
pub const PAGES: &str = "pages-100";
pub const FILE_DATA: &str = "file-1";

/// Writes a small valid image into `dir`, which must not exist: a memory
/// map with one VMA and two saved pages, an fd table naming one file data
/// file, the pages file and the file data file. It has no process record,
/// which the image format does not require.
pub fn write_image(dir: &Path) {
    let mut writer = ImageWriter::create(dir).expect("create image");
    // The records are built from JSON, so that fields which later versions
    // add with defaults need no change here.
    let map: MemoryMap = serde_json::from_value(serde_json::json!({
        "pid": PID,
        "vmas": [{
            "start": 0x60_0000,
            "end": 0x60_4000,
            "prot": 3,
            "shared": false,
            "offset": 0,
            "kind": "Anonymous",
            "file": null,
            "vm_flags": ["rd", "wr"],
        }],
        "pages": [{"address": 0x60_1000, "pages": 2, "offset": 0}],
        "pages_file": PAGES,
    }))
    .expect("memory map from JSON");
    writer.write_record(MM, &map).expect("write memory map");
    let table: FdTable = serde_json::from_value(serde_json::json!({
        "pid": PID,
        "fds": [{
            "fd": 3,
            "cloexec": false,
            "file": {"Regular": {
                "identity": FileIdentity::default(),
                "flags": 2,
                "position": 0,
                "deleted": true,
                "content": FILE_DATA,
            }},
        }],
    }))
    .expect("fd table from JSON");
    writer.write_record(FDS, &table).expect("write fd table");

    let mut pages = writer
        .data_writer(PAGES, RecordKind::Pages)
        .expect("start pages");
    pages.write(&[0xa5; 8192]).expect("write pages");
    writer.finish_data(pages).expect("finish pages");
    let mut file = writer
        .data_writer(FILE_DATA, RecordKind::FileData)
        .expect("start file data");
    file.write(b"contents of a deleted file\n")
        .expect("write file data");
    writer.finish_data(file).expect("finish file data");

    let manifest: Manifest = serde_json::from_value(serde_json::json!({
        "format_version": 0,
        "stasis_version": "0.1.0",
        "created_unix": 1_700_000_000,
        "host": Host::default(),
        "root_pid": PID,
        "processes": [PID],
        "files": [],
    }))
    .expect("manifest from JSON");
    writer.commit(manifest).expect("commit image");
}

/// Generates a key pair in `temp` under `name` and loads both keys.
pub fn key_pair(temp: &TempDir, name: &str) -> (PrivateKey, PublicKey) {
    let generated = generate_key_pair(&temp.path().join(name)).expect("generate key");
    let private = PrivateKey::load(&generated.private_path).expect("load private key");
    (private, generated.public_key)
}

/// Options for sealing in tests: a fixed time, and every file verified.
pub fn seal_options() -> SealOptions {
    SealOptions {
        sealed_at_unix: 1_718_000_000,
        stasis_version: "0.1.0".to_string(),
        verify_files: true,
    }
}

/// Writes the test image into `temp/name` and seals it with `key`.
pub fn sealed_image(temp: &TempDir, name: &str, key: &PrivateKey) -> PathBuf {
    let dir = temp.path().join(name);
    write_image(&dir);
    seal_image(&dir, key, &seal_options()).expect("seal image");
    dir
}

/// Flips the bits of the byte at `offset` of the file `dir/name`.
pub fn flip_byte(dir: &Path, name: &str, offset: usize) {
    let path = dir.join(name);
    let mut bytes = fs::read(&path).expect("read file to flip");
    bytes[offset] ^= 0xff;
    fs::write(&path, bytes).expect("write flipped file");
}

/// Reads the manifest of `dir`, lets `change` edit it as JSON, and writes it
/// back as a well-formed manifest (with a correct header checksum).
pub fn edit_manifest(dir: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&path).expect("read manifest");
    let (_, mut value) = decode_record_file(&bytes, &path).expect("decode manifest");
    change(&mut value);
    let bytes = encode_record_json(RecordKind::Manifest, &value).expect("encode manifest");
    fs::write(&path, bytes).expect("write manifest");
}
