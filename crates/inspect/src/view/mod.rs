//! The views of `stasis inspect`: each builds a serializable body from a
//! [`LoadedImage`] and renders it as text. The JSON form of a view is the
//! body inside an [`Envelope`], documented in docs/INSPECT.md.

pub mod auxv;
pub mod fds;
pub mod maps;
pub mod regs;
pub mod stats;
pub mod strings;
pub mod summary;
pub mod tree;

use serde::Serialize;

use crate::load::{LoadedImage, Problem, ProcessRecords};
use crate::names::wait_status;
use crate::text::{clean, Paint, Style};

/// Version of the JSON schema of every view. It is raised when a field is
/// removed or changes meaning; new fields may appear without a raise.
pub const SCHEMA_VERSION: u32 = 1;

/// One way of looking at an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Summary,
    Tree,
    Maps,
    Fds,
    Stats,
    Env,
    Cmdline,
    Auxv,
    Regs,
}

impl View {
    /// Returns the name used in the JSON `view` field.
    pub fn name(self) -> &'static str {
        match self {
            View::Summary => "summary",
            View::Tree => "tree",
            View::Maps => "maps",
            View::Fds => "fds",
            View::Stats => "stats",
            View::Env => "env",
            View::Cmdline => "cmdline",
            View::Auxv => "auxv",
            View::Regs => "regs",
        }
    }
}

/// Options of a view: its styling and the process to show.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub style: Style,
    /// Show only this process.
    pub pid: Option<i32>,
}

/// The fields every JSON view starts with.
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub schema_version: u32,
    pub view: &'static str,
    pub image: String,
    /// True when a file failed a check; `problems` lists which.
    pub damaged: bool,
    pub problems: Vec<ProblemJson>,
    #[serde(flatten)]
    pub body: T,
}

/// A problem in the JSON views.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemJson {
    /// The file concerned, or null.
    pub file: Option<String>,
    pub message: String,
}

impl From<Problem> for ProblemJson {
    fn from(problem: Problem) -> ProblemJson {
        ProblemJson {
            file: problem.file,
            message: problem.message,
        }
    }
}

/// Returns the JSON form of `view` on one line, fields in the order the
/// structs declare them.
pub fn json(image: &LoadedImage, view: View, options: &Options) -> String {
    let pid = options.pid;
    match view {
        View::Summary => to_json(image, view, summary::build(image, pid)),
        View::Tree => to_json(image, view, tree::build(image, pid)),
        View::Maps => to_json(image, view, maps::build(image, pid)),
        View::Fds => to_json(image, view, fds::build(image, pid)),
        View::Stats => to_json(image, view, stats::build(image, pid)),
        View::Env => to_json(image, view, strings::build(image, pid, strings::Area::Env)),
        View::Cmdline => to_json(
            image,
            view,
            strings::build(image, pid, strings::Area::Cmdline),
        ),
        View::Auxv => to_json(image, view, auxv::build(image, pid)),
        View::Regs => to_json(image, view, regs::build(image, pid)),
    }
}

fn to_json<T: Serialize>(image: &LoadedImage, view: View, body: T) -> String {
    let envelope = Envelope {
        schema_version: SCHEMA_VERSION,
        view: view.name(),
        image: image.dir.display().to_string(),
        damaged: image.is_damaged(),
        problems: image.all_problems().into_iter().map(Into::into).collect(),
        body,
    };
    // The bodies hold only strings, integers, floats from integer ratios
    // and string-keyed maps, which serde_json always serializes.
    serde_json::to_string(&envelope).unwrap_or_else(|error| {
        serde_json::json!({ "schema_version": SCHEMA_VERSION, "error": error.to_string() })
            .to_string()
    })
}

/// Renders `view` as text.
pub fn text(image: &LoadedImage, view: View, options: &Options) -> String {
    let style = &options.style;
    let pid = options.pid;
    let body = match view {
        View::Summary => return summary::render(&summary::build(image, pid), image, style),
        View::Tree => tree::render(&tree::build(image, pid), style),
        View::Maps => maps::render(&maps::build(image, pid), image, style),
        View::Fds => fds::render(&fds::build(image, pid), image, style),
        View::Stats => stats::render(&stats::build(image, pid), style),
        View::Env => {
            let area = strings::Area::Env;
            strings::render(&strings::build(image, pid, area), image, area, style)
        }
        View::Cmdline => {
            let area = strings::Area::Cmdline;
            strings::render(&strings::build(image, pid, area), image, area, style)
        }
        View::Auxv => auxv::render(&auxv::build(image, pid), image, style),
        View::Regs => regs::render(&regs::build(image, pid), image, style),
    };
    let mut out = damage_banner(image, style);
    out.push_str(&body);
    out
}

/// Returns a warning that lists the image's problems, or nothing for an
/// intact image. The summary view lists them itself.
fn damage_banner(image: &LoadedImage, style: &Style) -> String {
    let problems = image.all_problems();
    if problems.is_empty() {
        return String::new();
    }
    let mut out = style.paint(
        Paint::Bad,
        &format!(
            "DAMAGED IMAGE: {} problem(s); records marked UNVERIFIED failed a check \
             and are shown for information only",
            problems.len()
        ),
    );
    out.push('\n');
    for problem in problems {
        out.push_str(&format!("  {}\n", describe_problem(&problem)));
    }
    out.push('\n');
    out
}

/// Formats a problem as `file: message`.
pub fn describe_problem(problem: &Problem) -> String {
    match &problem.file {
        Some(file) => format!("{}: {}", clean(file), clean(&problem.message)),
        None => clean(&problem.message),
    }
}

/// Returns the processes to show: all, or the one with `pid`.
pub fn selected(image: &LoadedImage, pid: Option<i32>) -> Vec<&ProcessRecords> {
    image
        .processes
        .iter()
        .filter(|records| pid.map_or(true, |pid| records.pid == pid))
        .collect()
}

/// Returns the wait status of a zombie process, or `None` for a live
/// process or one whose process record is unreadable.
pub fn zombie_status(records: &ProcessRecords) -> Option<i32> {
    records.process.as_ref()?.record.zombie_exit_status
}

/// Returns whether the process record passed every check. A zombie has
/// only that record, so views of its absent records use this as their
/// `verified` value.
pub fn process_verified(records: &ProcessRecords) -> bool {
    records
        .process
        .as_ref()
        .is_some_and(|process| process.verified)
}

/// Returns the line a per-process view prints when it has nothing to show
/// for a process. A zombie has no memory, fds or threads, so the line
/// gives its exit. Otherwise the line reports that the record
/// `record_kind` is unreadable.
pub fn absent_line(records: Option<&ProcessRecords>, record_kind: &str) -> String {
    match records.and_then(zombie_status) {
        Some(status) => format!(
            "  zombie: it ended with {} and was not yet waited for, so it has no memory, \
             fds or threads\n",
            wait_status(status)
        ),
        None => format!("  the {record_kind} is unreadable\n"),
    }
}

/// Returns the text label of a record's trust: empty when verified.
pub fn trust_label(verified: bool, style: &Style) -> String {
    if verified {
        String::new()
    } else {
        format!("  {}", style.paint(Paint::Warn, "[UNVERIFIED]"))
    }
}

/// Renders `key value` lines with the values aligned, indented by
/// `indent` spaces.
pub fn key_values(lines: &[(&str, String)], indent: usize, style: &Style) -> String {
    let width = lines
        .iter()
        .map(|(key, _)| key.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in lines {
        let pad = width - key.chars().count();
        out.push_str(&format!(
            "{}{}{}  {}\n",
            " ".repeat(indent),
            style.paint(Paint::Bold, key),
            " ".repeat(pad),
            value
        ));
    }
    out
}

/// Formats an address in hex with at least 12 digits, as user-space
/// addresses on x86-64 have.
pub fn address(value: u64) -> String {
    format!("{value:012x}")
}

/// Returns the heading line of a process: `Process 1234 (sleep)` with an
/// UNVERIFIED mark when `verified` is false.
pub fn process_heading(records: &ProcessRecords, verified: bool, style: &Style) -> String {
    let comm = records
        .process
        .as_ref()
        .map(|process| format!(" ({})", clean(&process.record.comm)))
        .unwrap_or_default();
    format!(
        "{}{}\n",
        style.heading(&format!("Process {}{comm}", records.pid)),
        trust_label(verified, style)
    )
}

/// Formats a 64-bit value as 0x followed by 16 hex digits.
pub fn hex64(value: u64) -> String {
    format!("{value:#018x}")
}
