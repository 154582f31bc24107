//! The regs view: the general registers and signal state of each thread.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{absent_line, hex64, process_heading, selected, zombie_status};
use crate::load::{LoadedImage, ProcessRecords};
use crate::names::{registers, signal_set};
use crate::text::{clean, Style};

/// Registers shown per line in the text view.
const PER_LINE: usize = 3;

#[derive(Debug, Serialize)]
pub struct Regs {
    pub processes: Vec<ProcessRegs>,
}

#[derive(Debug, Serialize)]
pub struct ProcessRegs {
    pub pid: i32,
    pub verified: bool,
    /// False when the process record is unreadable (`threads` is then
    /// empty).
    pub readable: bool,
    pub threads: Vec<ThreadRegs>,
}

#[derive(Debug, Serialize)]
pub struct ThreadRegs {
    pub tid: i32,
    pub comm: String,
    /// Register name to value as `0x` and 16 hex digits, in struct
    /// user_regs_struct order.
    pub registers: RegisterMap,
    /// Blocked signals as a hex bit mask; bit N-1 is signal N.
    pub sigmask: String,
    /// Size of the saved XSAVE area in bytes.
    pub xstate_bytes: usize,
    /// The signal mask as a number, for the text view.
    #[serde(skip)]
    pub sigmask_bits: u64,
}

/// Registers in a fixed order, serialized as a JSON object.
#[derive(Debug)]
pub struct RegisterMap(pub Vec<(&'static str, u64)>);

impl Serialize for RegisterMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, &hex64(*value))?;
        }
        map.end()
    }
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Regs {
    Regs {
        processes: selected(image, pid).into_iter().map(process_regs).collect(),
    }
}

fn process_regs(records: &ProcessRecords) -> ProcessRegs {
    let Some(process) = &records.process else {
        return ProcessRegs {
            pid: records.pid,
            verified: false,
            readable: false,
            threads: Vec::new(),
        };
    };
    let threads = process
        .record
        .threads
        .iter()
        .map(|thread| ThreadRegs {
            tid: thread.tid,
            comm: thread.comm.clone(),
            registers: RegisterMap(registers(&thread.regs).to_vec()),
            sigmask: hex64(thread.sigmask),
            xstate_bytes: thread.xstate.0.len(),
            sigmask_bits: thread.sigmask,
        })
        .collect();
    ProcessRegs {
        pid: records.pid,
        verified: process.verified,
        readable: true,
        threads,
    }
}

pub fn render(regs: &Regs, image: &LoadedImage, style: &Style) -> String {
    let mut out = String::new();
    for process in &regs.processes {
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
        for thread in &process.threads {
            out.push_str(&render_thread(thread, style));
        }
    }
    out
}

fn render_thread(thread: &ThreadRegs, style: &Style) -> String {
    let mut out = format!(
        "  {}\n",
        style.heading(&format!("Thread {} ({})", thread.tid, clean(&thread.comm)))
    );
    let width = thread
        .registers
        .0
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for line in thread.registers.0.chunks(PER_LINE) {
        let cells: Vec<String> = line
            .iter()
            .map(|(name, value)| format!("{name:>width$} {}", hex64(*value)))
            .collect();
        out.push_str(&format!("    {}\n", cells.join("   ")));
    }
    out.push_str(&format!(
        "    {:>width$} {} ({})   xstate {} bytes\n",
        "sigmask",
        thread.sigmask,
        signal_set(thread.sigmask_bits),
        thread.xstate_bytes
    ));
    out
}
