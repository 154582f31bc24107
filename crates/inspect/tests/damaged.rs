//! Damaged images: each test breaks the fixed image in one way, then
//! checks that loading and every view, the HTML report and the DOT graph
//! run without panicking, and that the problem is named.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use stasis_image::{decode_record_file, encode_record_json, Manifest, RecordKind, MANIFEST_NAME};
use stasis_inspect::{
    dot, html, load, view, InspectError, LoadedImage, Options, RestoreCheck, View,
};

const VIEWS: [View; 9] = [
    View::Summary,
    View::Tree,
    View::Maps,
    View::Fds,
    View::Stats,
    View::Env,
    View::Cmdline,
    View::Auxv,
    View::Regs,
];

const PROCESS_FILE: &str = "process-4242";
const MM_FILE: &str = "mm-4242";
const FDS_FILE: &str = "fds-4242";
const PAGES_FILE: &str = "pages-4242";
const CONTENT_FILE: &str = "file-1";

/// Renders every view as text and JSON, the HTML report and the DOT
/// graph. Returns the summary text.
fn render_everything(image: &LoadedImage) -> String {
    let options = Options::default();
    for view_kind in VIEWS {
        let text = view::text(image, view_kind, &options);
        assert!(!text.is_empty(), "{view_kind:?} text is empty");
        let json = view::json(image, view_kind, &options);
        let value: serde_json::Value = serde_json::from_str(&json).expect("view JSON parses");
        assert_eq!(value["damaged"], image.is_damaged(), "{view_kind:?}");
    }
    assert!(html::report(image).contains("</html>"));
    assert!(dot::process_tree(image).ends_with("}\n"));
    view::text(image, View::Summary, &options)
}

/// Returns the error's message followed by the messages of its sources.
fn full_message(error: &InspectError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Returns the problem reported for the listed file `name`.
fn file_problem(image: &LoadedImage, name: &str) -> String {
    let report = image
        .file(name)
        .unwrap_or_else(|| panic!("{name} is not listed"));
    report
        .problem
        .clone()
        .unwrap_or_else(|| panic!("{name} has no problem reported"))
}

fn load_damaged(dir: &Path) -> LoadedImage {
    let image = load(dir).expect("a damaged image with a good manifest loads");
    assert!(image.is_damaged(), "the damage was not noticed");
    assert_eq!(image.restore_check, RestoreCheck::Skipped);
    image
}

fn read_manifest(dir: &Path) -> Manifest {
    let path = dir.join(MANIFEST_NAME);
    let bytes = fs::read(&path).expect("read manifest");
    let (_, value) = decode_record_file(&bytes, &path).expect("decode manifest");
    serde_json::from_value(value).expect("manifest from JSON")
}

/// Lists file `name` in the manifest with its current size and hash, so
/// that a test reaches the checks after the hash.
fn relist(dir: &Path, name: &str) {
    let bytes = fs::read(dir.join(name)).expect("read file");
    let mut manifest = read_manifest(dir);
    let entry = manifest
        .files
        .iter_mut()
        .find(|entry| entry.name == name)
        .expect("file is listed");
    let hashed = if entry.kind.is_data() {
        &bytes[4096..]
    } else {
        &bytes[..]
    };
    entry.size = bytes.len() as u64;
    entry.blake3 = blake3::hash(hashed).to_hex().to_string();
    let value = serde_json::to_value(&manifest).expect("manifest to JSON");
    let encoded = encode_record_json(RecordKind::Manifest, &value).expect("encode manifest");
    fs::write(dir.join(MANIFEST_NAME), encoded).expect("write manifest");
}

#[test]
fn truncated_record_file() {
    let (_temp, dir) = fixed_image("truncated-record");
    edit_file(&dir, MM_FILE, |bytes| bytes.truncate(bytes.len() / 2));

    let image = load_damaged(&dir);
    let problem = file_problem(&image, MM_FILE);
    assert!(problem.starts_with("truncated"), "{problem}");
    assert!(image.processes[0].memory.is_none());

    let summary = render_everything(&image);
    assert!(summary.contains("DAMAGED"), "{summary}");
    assert!(summary.contains("mm-4242: truncated"), "{summary}");
    let maps = view::text(&image, View::Maps, &Options::default());
    assert!(maps.contains("the memory map is unreadable"), "{maps}");
}

#[test]
fn truncated_pages_file() {
    let (_temp, dir) = fixed_image("truncated-pages");
    edit_file(&dir, PAGES_FILE, |bytes| bytes.truncate(bytes.len() - 4096));

    let image = load_damaged(&dir);
    assert!(file_problem(&image, PAGES_FILE).starts_with("truncated"));
    render_everything(&image);

    // The strings page was the last one, so it is now past the end.
    let cmdline = view::text(&image, View::Cmdline, &Options::default());
    assert!(cmdline.contains("unreadable"), "{cmdline}");
    assert!(cmdline.contains("[UNVERIFIED]"), "{cmdline}");
}

#[test]
fn flipped_byte_in_record_shown_unverified() {
    let (_temp, dir) = fixed_image("flipped-record");
    edit_file(&dir, PROCESS_FILE, |bytes| {
        let at = bytes
            .windows(7)
            .position(|window| window == b"sleeper")
            .expect("comm in the record");
        bytes[at] = b'S';
    });

    let image = load_damaged(&dir);
    let problem = file_problem(&image, PROCESS_FILE);
    assert!(problem.contains("BLAKE3 hash differs"), "{problem}");
    let process = image.processes[0].process.as_ref().expect("still decoded");
    assert!(!process.verified);
    assert_eq!(process.record.comm, "Sleeper");

    let summary = render_everything(&image);
    assert!(
        summary.contains("Process 4242 (Sleeper)  [UNVERIFIED]"),
        "{summary}"
    );
}

#[test]
fn flipped_byte_that_breaks_cbor() {
    let (_temp, dir) = fixed_image("broken-cbor");
    edit_file(&dir, FDS_FILE, |bytes| bytes[32] = 0xff);

    let image = load_damaged(&dir);
    let problem = file_problem(&image, FDS_FILE);
    assert!(problem.contains("cannot be decoded"), "{problem}");
    assert!(image.processes[0].fds.is_none());
    render_everything(&image);
}

#[test]
fn flipped_byte_in_pages_file() {
    let (_temp, dir) = fixed_image("flipped-pages");
    edit_file(&dir, PAGES_FILE, |bytes| bytes[4096 + 100] ^= 0x01);

    let image = load_damaged(&dir);
    let problem = file_problem(&image, PAGES_FILE);
    assert!(problem.contains("hash of its data differs"), "{problem}");
    render_everything(&image);

    let cmdline: serde_json::Value =
        serde_json::from_str(&view::json(&image, View::Cmdline, &Options::default()))
            .expect("JSON");
    assert_eq!(cmdline["processes"][0]["verified"], false);
    assert_eq!(cmdline["processes"][0]["strings"], serde_json::json!(ARGS));
}

#[test]
fn missing_record_file() {
    let (_temp, dir) = fixed_image("missing-record");
    fs::remove_file(dir.join(FDS_FILE)).expect("remove fd table");

    let image = load_damaged(&dir);
    assert_eq!(file_problem(&image, FDS_FILE), "missing");
    assert!(image
        .problems
        .iter()
        .any(|problem| problem.message == "no readable fd table record for PID 4242"));

    let summary = render_everything(&image);
    assert!(summary.contains("fds-4242: missing"), "{summary}");
    assert!(summary.contains("missing"), "{summary}");
    let fds = view::text(&image, View::Fds, &Options::default());
    assert!(fds.contains("the fd table is unreadable"), "{fds}");
}

#[test]
fn missing_content_file() {
    let (_temp, dir) = fixed_image("missing-content");
    fs::remove_file(dir.join(CONTENT_FILE)).expect("remove file data");

    let image = load_damaged(&dir);
    assert_eq!(file_problem(&image, CONTENT_FILE), "missing");
    render_everything(&image);
}

#[test]
fn missing_pages_file() {
    let (_temp, dir) = fixed_image("missing-pages");
    fs::remove_file(dir.join(PAGES_FILE)).expect("remove pages");

    let image = load_damaged(&dir);
    assert_eq!(file_problem(&image, PAGES_FILE), "missing");
    render_everything(&image);
    let env = view::text(&image, View::Env, &Options::default());
    assert!(env.contains("unreadable"), "{env}");
}

#[test]
fn newer_version_manifest_is_rejected() {
    let (_temp, dir) = fixed_image("newer-manifest");
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes[8] = 2);

    let error = load(&dir).expect_err("a newer manifest is rejected");
    assert!(
        matches!(error, InspectError::BadManifest { .. }),
        "{error:?}"
    );
    let message = full_message(&error);
    assert!(message.contains("format version 2"), "{message}");
    assert!(message.contains("versions up to 1"), "{message}");
}

#[test]
fn newer_version_record_is_named() {
    let (_temp, dir) = fixed_image("newer-record");
    edit_file(&dir, MM_FILE, |bytes| bytes[8] = 2);
    relist(&dir, MM_FILE);

    let image = load_damaged(&dir);
    let problem = file_problem(&image, MM_FILE);
    assert!(problem.contains("format version 2"), "{problem}");
    render_everything(&image);
}

#[test]
fn garbled_manifest_is_rejected() {
    let (_temp, dir) = fixed_image("garbled-manifest");
    fs::write(
        dir.join(MANIFEST_NAME),
        b"this is not a manifest, only text long enough for a header",
    )
    .expect("write");

    let error = load(&dir).expect_err("a garbled manifest is rejected");
    let message = full_message(&error);
    assert!(message.contains("manifest"), "{message}");
    assert!(message.contains("invalid magic number"), "{message}");
}

#[test]
fn flipped_byte_in_manifest_is_rejected() {
    let (_temp, dir) = fixed_image("flipped-manifest");
    edit_file(&dir, MANIFEST_NAME, |bytes| {
        let at = bytes
            .windows(8)
            .position(|window| window == b"testhost")
            .expect("hostname in the manifest");
        bytes[at] = b'T';
    });

    let error = load(&dir).expect_err("a damaged manifest is rejected");
    let message = full_message(&error);
    assert!(message.contains("checksum"), "{message}");
}

#[test]
fn truncated_manifest_is_rejected() {
    let (_temp, dir) = fixed_image("truncated-manifest");
    edit_file(&dir, MANIFEST_NAME, |bytes| bytes.truncate(20));

    let error = load(&dir).expect_err("a truncated manifest is rejected");
    let message = full_message(&error);
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn missing_manifest_is_rejected() {
    let (_temp, dir) = fixed_image("missing-manifest");
    fs::remove_file(dir.join(MANIFEST_NAME)).expect("remove manifest");

    let error = load(&dir).expect_err("an image without manifest is rejected");
    assert!(
        matches!(error, InspectError::MissingManifest(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("has no manifest"), "{error}");
}

#[test]
fn missing_directory_is_rejected() {
    let temp = TempDir::new("no-dir");
    let error = load(&temp.path().join("absent")).expect_err("no directory");
    assert!(matches!(error, InspectError::NotFound(_)), "{error:?}");
}

#[test]
fn unlisted_file_is_noted_not_damage() {
    let (_temp, dir) = fixed_image("unlisted");
    fs::write(dir.join("notes.txt"), b"left here by hand").expect("write");

    let image = load(&dir).expect("load");
    assert!(!image.is_damaged());
    assert_eq!(image.unlisted, vec!["notes.txt".to_string()]);
    let summary = view::text(&image, View::Summary, &Options::default());
    assert!(
        summary.contains("not in the manifest (ignored): notes.txt"),
        "{summary}"
    );
}

#[test]
fn page_run_past_pages_file_end() {
    let temp = TempDir::new("run-past-end");
    let dir = temp.path().join("image");
    let mut parts = parts();
    if let Some(run) = parts.memory.pages.last_mut() {
        run.offset = 100 * PAGE;
    }
    write_image(&dir, &parts);

    let image = load_damaged(&dir);
    let memory = image.processes[0].memory.as_ref().expect("map decoded");
    assert!(!memory.verified);
    assert!(image
        .problems
        .iter()
        .any(|problem| problem.file.as_deref() == Some(MM_FILE)));

    render_everything(&image);
    let cmdline = view::text(&image, View::Cmdline, &Options::default());
    assert!(cmdline.contains("unreadable"), "{cmdline}");
}

#[test]
fn unsorted_overlapping_runs() {
    let temp = TempDir::new("unsorted-runs");
    let dir = temp.path().join("image");
    let mut parts = parts();
    parts.memory.pages.reverse();
    parts.memory.pages.push(stasis_image::PageRun {
        address: HEAP,
        pages: u64::MAX / 2,
        offset: 0,
    });
    write_image(&dir, &parts);

    let image = load_damaged(&dir);
    let problem = file_problem(&image, MM_FILE);
    assert!(problem.contains("page run"), "{problem}");
    render_everything(&image);
    // Hashing reads only the pages inside the pages file, so the huge run
    // ends quickly.
    let result = stasis_inspect::diff::diff(&image, &image);
    assert_eq!(result.processes[0].pages.changed, 0);
}

#[test]
fn huge_argument_area_is_capped() {
    let temp = TempDir::new("huge-area");
    let dir = temp.path().join("image");
    let mut parts = parts();
    parts.process.mm.arg_end = u64::MAX;
    write_image(&dir, &parts);

    let image = load(&dir).expect("load");
    let cmdline: serde_json::Value =
        serde_json::from_str(&view::json(&image, View::Cmdline, &Options::default()))
            .expect("JSON");
    assert_eq!(cmdline["processes"][0]["complete"], false);
}
