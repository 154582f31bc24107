//! The cmdline and env views: the argument and environment strings, read
//! from the process's saved pages between mm.arg_start and mm.arg_end (or
//! mm.env_start and mm.env_end).

use serde::Serialize;

use super::{absent_line, address, process_heading, process_verified, selected, zombie_status};
use crate::load::{LoadedImage, ProcessRecords};
use crate::pages::PageReader;
use crate::strings::{read_area, MissingRange, Piece};
use crate::text::{clean, Paint, Style};

/// The area of saved memory a view reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Cmdline,
    Env,
}

#[derive(Debug, Serialize)]
pub struct Strings {
    pub processes: Vec<ProcessStrings>,
}

#[derive(Debug, Serialize)]
pub struct ProcessStrings {
    pub pid: i32,
    /// True when the process record, memory map and pages file all passed
    /// every check.
    pub verified: bool,
    /// False when there is no process record or no memory map to read
    /// the area with; the other fields are then empty.
    pub readable: bool,
    pub start: u64,
    pub end: u64,
    /// The strings, without bytes that are not in the image.
    pub strings: Vec<String>,
    /// True when every byte of the area was read.
    pub complete: bool,
    /// Address ranges of the area that the image does not hold.
    pub missing: Vec<MissingRange>,
    /// Text form of each string, with `<N bytes at ADDRESS not stored>`
    /// where bytes are missing. Not in the JSON.
    #[serde(skip)]
    pub display: Vec<String>,
}

pub fn build(image: &LoadedImage, pid: Option<i32>, area: Area) -> Strings {
    Strings {
        processes: selected(image, pid)
            .into_iter()
            .map(|records| process_strings(image, records, area))
            .collect(),
    }
}

fn process_strings(image: &LoadedImage, records: &ProcessRecords, area: Area) -> ProcessStrings {
    let mut result = ProcessStrings {
        pid: records.pid,
        verified: false,
        readable: false,
        start: 0,
        end: 0,
        strings: Vec::new(),
        complete: false,
        missing: Vec::new(),
        display: Vec::new(),
    };
    let (Some(process), Some(reader)) = (&records.process, PageReader::open(image, records.pid))
    else {
        result.verified = zombie_status(records).is_some() && process_verified(records);
        return result;
    };
    let mm = &process.record.mm;
    let (start, end) = match area {
        Area::Cmdline => (mm.arg_start, mm.arg_end),
        Area::Env => (mm.env_start, mm.env_end),
    };
    let read = read_area(&reader, start, end);

    result.verified = process.verified && reader.verified;
    result.readable = true;
    result.start = start;
    result.end = end;
    result.strings = read.plain();
    result.complete = read.is_complete();
    result.missing = read.missing();
    result.display = read.strings.iter().map(|pieces| display(pieces)).collect();
    result
}

fn display(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => clean(text),
            Piece::Missing {
                address: at,
                len,
                reason,
            } => format!("<{len} bytes at {} {}>", address(*at), reason.describe()),
        })
        .collect()
}

pub fn render(strings: &Strings, image: &LoadedImage, area: Area, style: &Style) -> String {
    let mut out = String::new();
    for process in &strings.processes {
        if !out.is_empty() {
            out.push('\n');
        }
        if let Some(records) = image.process(process.pid) {
            out.push_str(&process_heading(records, process.verified, style));
        }
        if process.readable {
            out.push_str(&render_process(process, area, style));
        } else {
            out.push_str(&absent_line(
                image.process(process.pid),
                "process record or memory map",
            ));
        }
    }
    out
}

fn render_process(process: &ProcessStrings, area: Area, style: &Style) -> String {
    let noun = match area {
        Area::Cmdline => "arguments",
        Area::Env => "environment variables",
    };
    let mut out = format!(
        "  {} {noun} at {}-{}\n",
        process.strings.len(),
        address(process.start),
        address(process.end)
    );
    if !process.complete {
        out.push_str(&format!(
            "  {}\n",
            style.paint(
                Paint::Warn,
                "incomplete: part of the area is not in the image (marked <... not stored> or \
                 <... unreadable>)"
            )
        ));
    }
    let width = process.display.len().saturating_sub(1).to_string().len();
    for (index, text) in process.display.iter().enumerate() {
        match area {
            Area::Cmdline => out.push_str(&format!("  [{index:>width$}] {text}\n")),
            Area::Env => out.push_str(&format!("  {text}\n")),
        }
    }
    out
}
