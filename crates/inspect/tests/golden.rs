//! Golden tests: every view of the fixed image, as text and as JSON,
//! compared with the files in tests/golden. Run with UPDATE_GOLDEN=1 to
//! rewrite them after an intended change, and review the diff.

mod common;

use std::path::Path;

use common::{check_golden, fixed_image};
use stasis_inspect::text::Style;
use stasis_inspect::{dot, load, view, Options, View};

/// Renders `view` of the image in `dir` as text and JSON, with the image
/// path replaced by `<IMAGE>` so the output does not depend on it.
fn render(dir: &Path, view: View) -> (String, String) {
    let image = load(dir).expect("load the fixed image");
    let options = Options {
        style: Style { colour: false },
        pid: None,
    };
    let path = dir.display().to_string();
    let text = view::text(&image, view, &options).replace(&path, "<IMAGE>");
    let mut json = view::json(&image, view, &options).replace(&path, "<IMAGE>");
    json.push('\n');
    (text, json)
}

fn check_view(view: View) {
    let (_temp, dir) = fixed_image(view.name());
    let (text, json) = render(&dir, view);
    check_golden(&format!("{}.txt", view.name()), &text);
    check_golden(&format!("{}.json", view.name()), &json);
}

#[test]
fn summary_view() {
    check_view(View::Summary);
}

#[test]
fn tree_view() {
    check_view(View::Tree);
}

#[test]
fn maps_view() {
    check_view(View::Maps);
}

#[test]
fn fds_view() {
    check_view(View::Fds);
}

#[test]
fn stats_view() {
    check_view(View::Stats);
}

#[test]
fn env_view() {
    check_view(View::Env);
}

#[test]
fn cmdline_view() {
    check_view(View::Cmdline);
}

#[test]
fn auxv_view() {
    check_view(View::Auxv);
}

#[test]
fn regs_view() {
    check_view(View::Regs);
}

#[test]
fn dot_process_tree() {
    let (_temp, dir) = fixed_image("dot");
    let image = load(&dir).expect("load the fixed image");
    let text = dot::process_tree(&image).replace(&dir.display().to_string(), "<IMAGE>");
    check_golden("tree.dot", &text);
}

#[test]
fn colour_only_when_asked() {
    let (_temp, dir) = fixed_image("colour");
    let image = load(&dir).expect("load the fixed image");
    let plain = view::text(&image, View::Summary, &Options::default());
    assert!(!plain.contains('\x1b'), "plain output has escape codes");

    let options = Options {
        style: Style { colour: true },
        pid: None,
    };
    let coloured = view::text(&image, View::Summary, &options);
    assert!(coloured.contains("\x1b[1m"), "coloured output has no bold");
    assert!(
        coloured.contains("\x1b[32m"),
        "coloured output has no green"
    );
}
