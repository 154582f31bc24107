//! The HTML report: its structure, that it is self-contained and escapes
//! strings from the image, and, when /usr/bin/chromium exists, that a
//! browser renders it with the expected elements.

mod common;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;
use stasis_inspect::{html, load};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

/// Elements the report must contain, as markup fragments.
const EXPECTED: &[&str] = &[
    "id=\"process-tree\"",
    "class=\"process-node root\"",
    "class=\"tree\"",
    "class=\"address-space\"",
    "id=\"address-space-4242\"",
    "class=\"vma\"",
    "class=\"stored\"",
    "class=\"overview\"",
    "id=\"chart-image-bytes\"",
    "id=\"chart-pages\"",
    "id=\"chart-largest-mappings\"",
    "id=\"chart-top-stored\"",
    "id=\"chart-timings\"",
    "class=\"maps-table\"",
    "class=\"fds-table\"",
];

fn report_of_fixed_image(tag: &str) -> (TempDir, String) {
    let (temp, dir) = fixed_image(tag);
    let image = load(&dir).expect("load");
    (temp, html::report(&image))
}

#[test]
fn report_has_every_part() {
    let (_temp, report) = report_of_fixed_image("html-parts");
    assert!(report.starts_with("<!DOCTYPE html>"));
    assert!(report.ends_with("</html>\n"));
    for fragment in EXPECTED {
        assert!(report.contains(fragment), "no {fragment} in the report");
    }
}

#[test]
fn report_is_self_contained() {
    let (_temp, report) = report_of_fixed_image("html-offline");
    for reference in ["http:", "https:", "src=", "<link", "@import", "url("] {
        assert!(
            !report.contains(reference),
            "the report refers to something outside it: {reference}"
        );
    }
}

#[test]
fn report_escapes_image_strings() {
    let temp = TempDir::new("html-escape");
    let dir = temp.path().join("image");
    let mut parts = parts();
    parts.process.comm = "<script>alert(1)</script>".to_string();
    parts.memory.vmas[0].file.as_mut().expect("file").path = "/tmp/\"><img>".to_string();
    write_image(&dir, &parts);

    let report = html::report(&load(&dir).expect("load"));
    assert!(!report.contains("<script>alert"), "comm not escaped");
    assert!(report.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!report.contains("\"><img>"), "path not escaped");
    assert_eq!(
        report.matches("<script>").count(),
        1,
        "only the report's own script"
    );
}

#[test]
fn report_of_damaged_image_lists_problems() {
    let (_temp, dir) = fixed_image("html-damaged");
    edit_file(&dir, "pages-4242", |bytes| bytes[5000] ^= 0xff);
    let report = html::report(&load(&dir).expect("load"));
    assert!(report.contains("DAMAGED"), "no damage badge");
    assert!(report.contains("class=\"problems\""));
    assert!(report.contains("pages-4242: corrupted"));
}

/// Runs `command` with stdout to `stdout`, killing it after the timeout.
fn run_with_timeout(mut command: Command, stdout: &Path) {
    let output = File::create(stdout).expect("create output file");
    let mut child = command
        .stdout(Stdio::from(output))
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + CHROMIUM_TIMEOUT;
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => {
                assert!(status.success(), "chromium failed: {status}");
                return;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish in {CHROMIUM_TIMEOUT:?}");
            }
            None => sleep(Duration::from_millis(50)),
        }
    }
}

/// Returns a chromium command with the flags for a headless run that
/// makes no network requests, using a fresh profile in `profile`.
fn chromium(profile: &Path) -> Command {
    let mut command = Command::new(CHROMIUM);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--hide-scrollbars",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

#[test]
fn report_renders_in_chromium() {
    if !Path::new(CHROMIUM).exists() {
        println!("skipped: {CHROMIUM} is missing (apt-get install -y chromium)");
        return;
    }
    let (temp, report) = report_of_fixed_image("html-chromium");
    let page = temp.path().join("report.html");
    fs::write(&page, &report).expect("write report");
    let url = format!("file://{}", page.display());

    let dom_file = temp.path().join("dom.html");
    let mut dump = chromium(&temp.path().join("profile-dom"));
    dump.arg("--dump-dom").arg(&url);
    run_with_timeout(dump, &dom_file);
    let dom = fs::read_to_string(&dom_file).expect("read DOM");
    for fragment in EXPECTED {
        assert!(dom.contains(fragment), "no {fragment} in the rendered DOM");
    }

    let screenshot: PathBuf =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspect-report-fixed-image.png");
    let _ = fs::remove_file(&screenshot);
    let mut shot = chromium(&temp.path().join("profile-shot"));
    shot.arg("--window-size=1280,2000")
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url);
    run_with_timeout(shot, &temp.path().join("shot.log"));
    let png = fs::read(&screenshot).expect("read screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "screenshot of {} bytes is blank",
        png.len()
    );
    println!("screenshot: {}", screenshot.display());
}
