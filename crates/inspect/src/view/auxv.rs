//! The auxv view: the auxiliary vector from the process record, with AT_*
//! names, and the strings and bytes that some entries point to, read from
//! the saved pages.

use serde::Serialize;

use super::{absent_line, hex64, process_heading, selected, zombie_status};
use crate::load::{LoadedImage, ProcessRecords};
use crate::names::{auxv_type, AuxvFormat};
use crate::pages::PageReader;
use crate::strings::{read_bytes, read_c_string};
use crate::text::{clean, Align, Cell, Paint, Style, Table};

#[derive(Debug, Serialize)]
pub struct Auxv {
    pub processes: Vec<ProcessAuxv>,
}

#[derive(Debug, Serialize)]
pub struct ProcessAuxv {
    pub pid: i32,
    pub verified: bool,
    /// False when the process record is unreadable (`entries` is then
    /// empty).
    pub readable: bool,
    pub entries: Vec<AuxvEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuxvEntry {
    /// The AT_* type number.
    #[serde(rename = "type")]
    pub key: u64,
    /// `AT_PAGESZ` …, or null for a type without a known name.
    pub name: Option<&'static str>,
    pub value: u64,
    /// The string at the address for AT_EXECFN, AT_PLATFORM and
    /// AT_BASE_PLATFORM, and the 16 bytes in hex for AT_RANDOM. Null for
    /// other types, or when the pages are not in the image.
    pub points_to: Option<String>,
    /// True when the value is an address whose target is not in the image.
    pub target_missing: bool,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Auxv {
    Auxv {
        processes: selected(image, pid)
            .into_iter()
            .map(|records| process_auxv(image, records))
            .collect(),
    }
}

fn process_auxv(image: &LoadedImage, records: &ProcessRecords) -> ProcessAuxv {
    let Some(process) = &records.process else {
        return ProcessAuxv {
            pid: records.pid,
            verified: false,
            readable: false,
            entries: Vec::new(),
        };
    };
    let reader = PageReader::open(image, records.pid);
    let entries = process
        .record
        .mm
        .auxv
        .chunks_exact(2)
        .map(|pair| entry(pair[0], pair[1], reader.as_ref()))
        .collect();
    ProcessAuxv {
        pid: records.pid,
        verified: process.verified,
        readable: true,
        entries,
    }
}

fn entry(key: u64, value: u64, reader: Option<&PageReader>) -> AuxvEntry {
    let (name, format) = auxv_type(key);
    let points_to = match format {
        AuxvFormat::StringAddress => reader.and_then(|reader| read_c_string(reader, value)),
        AuxvFormat::RandomAddress => reader
            .and_then(|reader| read_bytes(reader, value, 16))
            .map(|bytes| bytes.iter().map(|byte| format!("{byte:02x}")).collect()),
        AuxvFormat::Decimal | AuxvFormat::Hex => None,
    };
    let is_address = matches!(
        format,
        AuxvFormat::StringAddress | AuxvFormat::RandomAddress
    );
    AuxvEntry {
        key,
        name,
        value,
        target_missing: is_address && points_to.is_none(),
        points_to,
    }
}

pub fn render(auxv: &Auxv, image: &LoadedImage, style: &Style) -> String {
    let mut out = String::new();
    for process in &auxv.processes {
        if !out.is_empty() {
            out.push('\n');
        }
        if let Some(records) = image.process(process.pid) {
            out.push_str(&process_heading(records, process.verified, style));
        }
        let records = image.process(process.pid);
        if !process.readable || records.and_then(zombie_status).is_some() {
            out.push_str(&absent_line(records, "process record"));
            continue;
        }
        out.push_str(&render_table(&process.entries, style));
    }
    out
}

fn render_table(entries: &[AuxvEntry], style: &Style) -> String {
    let mut table = Table::new(&[
        ("TYPE", Align::Left),
        ("VALUE", Align::Right),
        ("POINTS TO", Align::Left),
    ])
    .indent(2);
    for entry in entries {
        let (_, format) = auxv_type(entry.key);
        let name = entry
            .name
            .map_or_else(|| format!("type {}", entry.key), str::to_string);
        let value = match format {
            AuxvFormat::Decimal => entry.value.to_string(),
            _ => hex64(entry.value),
        };
        let target = match (&entry.points_to, entry.target_missing) {
            (Some(text), _) => Cell::new(clean(text)),
            (None, true) => Cell::painted("<not stored in the image>", Paint::Dim),
            (None, false) => Cell::new(""),
        };
        table.row(vec![Cell::new(name), Cell::new(value), target]);
    }
    table.render(style)
}
