//! The summary view: what the image is, whether it is intact, which
//! processes it contains, and where its memory and bytes are.

use serde::Serialize;
use stasis_image::{OpenFile, RecordKind, PAGE_SIZE};

use super::{
    describe_problem, key_values, process_heading, process_verified, selected, zombie_status,
    ProblemJson,
};
use crate::load::{EncryptionState, LoadedImage, ProcessRecords, RestoreCheck};
use crate::memory::MemoryCounts;
use crate::names::{wait_status, WaitStatus};
use crate::pages::PageReader;
use crate::strings::read_area;
use crate::text::{
    clean, command_line, count, human_bytes, percent, rfc3339_utc, share, Align, Cell, Paint,
    Style, Table,
};

/// Summary text for an image directory that has a seal file. Checking the
/// seal needs a trusted public key, which `stasis inspect` does not take.
pub const SEAL_PRESENT: &str =
    "seal file present, not checked here; check it with stasis verify DIR --pubkey PUBFILE";

#[derive(Debug, Serialize)]
pub struct Summary {
    pub format_version: u32,
    pub stasis_version: String,
    pub created_unix: u64,
    pub created_utc: String,
    pub host: HostSummary,
    pub root_pid: i32,
    pub integrity: Integrity,
    pub processes: Vec<ProcessSummary>,
    pub memory: MemoryTotals,
    pub fds: FdCounts,
    /// System V objects of the tree's own IPC namespace; null when the
    /// tree shared the IPC namespace of stasis, or the record is
    /// unreadable.
    pub ipc: Option<IpcSummary>,
    pub image_size: ImageSize,
    /// Encryption of the image; absent for an image in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSummary>,
}

/// Summary text for an encrypted image inspected without its key.
pub const LOCKED: &str = "without the key only the manifest is shown: PIDs, host, file names, \
     sizes and hashes, dump statistics; pass --key KEYFILE to see the processes";

#[derive(Debug, Serialize)]
pub struct EncryptionSummary {
    pub cipher: String,
    pub key_id: String,
    /// True when the key was given and the records were decrypted.
    pub decrypted: bool,
}

/// The System V objects of the tree's IPC namespace.
#[derive(Debug, Serialize)]
pub struct IpcSummary {
    /// True when the IPC namespace record passed every check.
    pub verified: bool,
    pub shm: Vec<ShmSummary>,
    pub semaphores: Vec<SemaphoreSummary>,
    pub queues: Vec<QueueSummary>,
}

#[derive(Debug, Serialize)]
pub struct ShmSummary {
    pub id: i32,
    pub key: i32,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Removed with IPC_RMID while still attached.
    pub removed: bool,
    /// Locked in memory with SHM_LOCK.
    pub locked: bool,
}

#[derive(Debug, Serialize)]
pub struct SemaphoreSummary {
    pub id: i32,
    pub key: i32,
    pub mode: u32,
    pub values: Vec<u16>,
}

#[derive(Debug, Serialize)]
pub struct QueueSummary {
    pub id: i32,
    pub key: i32,
    pub mode: u32,
    pub messages: usize,
    /// Bytes of message text in the queue.
    pub bytes: u64,
    /// Maximum bytes in the queue (msg_qbytes).
    pub max_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct HostSummary {
    pub kernel_release: String,
    pub machine: String,
    pub hostname: String,
    pub page_size: u64,
    pub xsave_size: u32,
    pub cpu_features: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Integrity {
    /// Files listed in the manifest.
    pub files_listed: usize,
    /// Listed files that passed every check, hash included.
    pub files_verified: usize,
    /// True when every file passed and the restore checks passed.
    pub intact: bool,
    /// Every problem, in the order of [`LoadedImage::all_problems`].
    pub failures: Vec<ProblemJson>,
    /// `passed`, `failed` or `skipped` (not run because files failed).
    pub restore_check: &'static str,
    /// Files in the directory that the manifest does not list, other than
    /// the seal.
    pub unlisted_files: Vec<String>,
    /// The directory has a seal file, which inspection does not check.
    pub seal_file_present: bool,
}

#[derive(Debug, Serialize)]
pub struct ProcessSummary {
    pub pid: i32,
    /// True when every record of the process passed every check.
    pub verified: bool,
    /// Identity fields; absent when the process record is unreadable.
    #[serde(flatten)]
    pub identity: Option<Identity>,
    pub memory: Option<MemoryCounts>,
    pub fds: Option<FdCounts>,
}

#[derive(Debug, Serialize)]
pub struct Identity {
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    pub comm: String,
    pub exe: String,
    pub cwd: String,
    /// Arguments read from the saved argument area; null when no pages are
    /// readable for the process.
    pub cmdline: Option<Vec<String>>,
    /// False when part of the argument area is not in the image.
    pub cmdline_complete: bool,
    /// Real, effective, saved and filesystem UIDs.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub threads: Vec<ThreadSummary>,
    /// Wait status of a zombie (exited, not yet waited for), as waitpid(2)
    /// returns it; null for a live process.
    pub zombie_exit_status: Option<i32>,
    /// The same status decoded; null for a live process.
    pub zombie_exit: Option<WaitStatus>,
    /// PID of the process whose fd table this one shares and whose fd
    /// table record lists the fds; null for a table of its own.
    pub files_shared_with: Option<i32>,
    /// PID of the process whose root, cwd and umask this one shares; null
    /// for fs state of its own.
    pub fs_shared_with: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct ThreadSummary {
    pub tid: i32,
    pub comm: String,
}

/// Memory counts of every selected process together, with the image-wide
/// counters of pages the dump skipped.
#[derive(Debug, Serialize)]
pub struct MemoryTotals {
    #[serde(flatten)]
    pub counts: MemoryCounts,
    /// Anonymous pages never written (absent or the shared zero page),
    /// from the dump's counters.
    pub pages_skipped_untouched: u64,
    /// Pages of private file mappings equal to the file, from the dump's
    /// counters.
    pub pages_skipped_equal_to_file: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FdCounts {
    pub total: u64,
    pub regular: u64,
    pub directory: u64,
    pub char_device: u64,
    pub terminal: u64,
    pub pipe: u64,
    pub eventfd: u64,
    pub socket: u64,
    pub inotify: u64,
    pub timerfd: u64,
    pub signalfd: u64,
    pub epoll: u64,
    /// Regular files that were deleted while open.
    pub deleted: u64,
}

impl FdCounts {
    fn add(&mut self, other: &FdCounts) {
        self.total += other.total;
        self.regular += other.regular;
        self.directory += other.directory;
        self.char_device += other.char_device;
        self.terminal += other.terminal;
        self.pipe += other.pipe;
        self.eventfd += other.eventfd;
        self.socket += other.socket;
        self.inotify += other.inotify;
        self.timerfd += other.timerfd;
        self.signalfd += other.signalfd;
        self.epoll += other.epoll;
        self.deleted += other.deleted;
    }
}

#[derive(Debug, Serialize)]
pub struct ImageSize {
    pub total_bytes: u64,
    /// The manifest first, then every listed file in manifest order.
    pub files: Vec<ImageFile>,
}

#[derive(Debug, Serialize)]
pub struct ImageFile {
    pub name: String,
    /// Record kind as in the manifest JSON: `Manifest`, `Pages` …
    pub kind: RecordKind,
    /// Size on disk; 0 for a missing file.
    pub bytes: u64,
    pub present: bool,
    /// Fraction of the image's total bytes, rounded to 4 decimals.
    pub share: f64,
}

pub fn build(image: &LoadedImage, pid: Option<i32>) -> Summary {
    let manifest = &image.manifest;
    let processes: Vec<ProcessSummary> = selected(image, pid)
        .into_iter()
        .map(|records| process_summary(image, records))
        .collect();

    let mut memory = MemoryCounts::default();
    let mut fds = FdCounts::default();
    for process in &processes {
        memory.add(process.memory.as_ref().unwrap_or(&MemoryCounts::default()));
        fds.add(process.fds.as_ref().unwrap_or(&FdCounts::default()));
    }

    Summary {
        format_version: manifest.format_version,
        stasis_version: manifest.stasis_version.clone(),
        created_unix: manifest.created_unix,
        created_utc: rfc3339_utc(manifest.created_unix),
        host: HostSummary {
            kernel_release: manifest.host.kernel_release.clone(),
            machine: manifest.host.machine.clone(),
            hostname: manifest.host.hostname.clone(),
            page_size: manifest.host.page_size,
            xsave_size: manifest.host.xsave_size,
            cpu_features: manifest.host.cpu_features.clone(),
        },
        root_pid: manifest.root_pid,
        integrity: integrity(image),
        processes,
        memory: MemoryTotals {
            counts: memory,
            pages_skipped_untouched: manifest.stats.pages_skipped_zero,
            pages_skipped_equal_to_file: manifest.stats.pages_skipped_file,
        },
        fds,
        ipc: ipc_summary(image),
        image_size: image_size(image),
        encryption: manifest
            .encryption
            .as_ref()
            .map(|encryption| EncryptionSummary {
                cipher: encryption.cipher.clone(),
                key_id: encryption.key_id.clone(),
                decrypted: matches!(image.encryption, EncryptionState::Unlocked { .. }),
            }),
    }
}

fn ipc_summary(image: &LoadedImage) -> Option<IpcSummary> {
    let checked = image.ipc.as_ref()?;
    let ipc = &checked.record;
    Some(IpcSummary {
        verified: checked.verified,
        shm: ipc
            .shm
            .iter()
            .map(|segment| ShmSummary {
                id: segment.perms.id,
                key: segment.perms.key,
                size: segment.size,
                mode: segment.perms.mode,
                uid: segment.perms.uid,
                gid: segment.perms.gid,
                removed: segment.removed,
                locked: segment.locked,
            })
            .collect(),
        semaphores: ipc
            .semaphores
            .iter()
            .map(|set| SemaphoreSummary {
                id: set.perms.id,
                key: set.perms.key,
                mode: set.perms.mode,
                values: set.values.clone(),
            })
            .collect(),
        queues: ipc
            .queues
            .iter()
            .map(|queue| QueueSummary {
                id: queue.perms.id,
                key: queue.perms.key,
                mode: queue.perms.mode,
                messages: queue.messages.len(),
                bytes: queue
                    .messages
                    .iter()
                    .map(|message| message.data.0.len() as u64)
                    .sum(),
                max_bytes: queue.max_bytes,
            })
            .collect(),
    })
}

fn integrity(image: &LoadedImage) -> Integrity {
    let files_verified = image
        .files
        .iter()
        .filter(|file| file.problem.is_none())
        .count();
    Integrity {
        files_listed: image.files.len(),
        files_verified,
        intact: !image.is_damaged(),
        failures: image.all_problems().into_iter().map(Into::into).collect(),
        restore_check: match image.restore_check {
            RestoreCheck::Passed => "passed",
            RestoreCheck::Failed(_) => "failed",
            RestoreCheck::Skipped => "skipped",
        },
        unlisted_files: image.unlisted.clone(),
        seal_file_present: image.seal_file_present,
    }
}

fn process_summary(image: &LoadedImage, records: &ProcessRecords) -> ProcessSummary {
    // A zombie has only its process record.
    let verified = if zombie_status(records).is_some() {
        process_verified(records)
    } else {
        records.process.as_ref().is_some_and(|c| c.verified)
            && records.memory.as_ref().is_some_and(|c| c.verified)
            && records.fds.as_ref().is_some_and(|c| c.verified)
    };
    ProcessSummary {
        pid: records.pid,
        verified,
        identity: identity(image, records),
        memory: records
            .memory
            .as_ref()
            .map(|memory| MemoryCounts::of(&memory.record)),
        fds: records.fds.as_ref().map(|fds| fd_counts(&fds.record.fds)),
    }
}

fn identity(image: &LoadedImage, records: &ProcessRecords) -> Option<Identity> {
    let process = &records.process.as_ref()?.record;
    let area = PageReader::open(image, records.pid)
        .map(|reader| read_area(&reader, process.mm.arg_start, process.mm.arg_end));
    Some(Identity {
        ppid: process.ppid,
        pgid: process.pgid,
        sid: process.sid,
        comm: process.comm.clone(),
        exe: process.exe.path.clone(),
        cwd: process.cwd.clone(),
        cmdline_complete: area.as_ref().is_some_and(|area| area.is_complete()),
        cmdline: area.map(|area| area.plain()),
        uids: process.credentials.uids,
        gids: process.credentials.gids,
        groups: process.credentials.groups.clone(),
        threads: process
            .threads
            .iter()
            .map(|thread| ThreadSummary {
                tid: thread.tid,
                comm: thread.comm.clone(),
            })
            .collect(),
        zombie_exit_status: process.zombie_exit_status,
        zombie_exit: process.zombie_exit_status.map(WaitStatus::decode),
        files_shared_with: process.files_shared_with,
        fs_shared_with: process.fs_shared_with,
    })
}

/// Counts descriptors by kind.
pub fn fd_counts(fds: &[stasis_image::Fd]) -> FdCounts {
    let mut counts = FdCounts::default();
    for fd in fds {
        counts.total += 1;
        match &fd.file {
            OpenFile::Regular { deleted, .. } => {
                counts.regular += 1;
                counts.deleted += u64::from(*deleted);
            }
            OpenFile::Directory { .. } => counts.directory += 1,
            OpenFile::CharDevice { .. } => counts.char_device += 1,
            OpenFile::Terminal { .. } => counts.terminal += 1,
            OpenFile::Pipe { .. } => counts.pipe += 1,
            OpenFile::EventFd { .. } => counts.eventfd += 1,
            OpenFile::Socket(_) => counts.socket += 1,
            OpenFile::Inotify { .. } => counts.inotify += 1,
            OpenFile::TimerFd { .. } => counts.timerfd += 1,
            OpenFile::SignalFd { .. } => counts.signalfd += 1,
            OpenFile::Epoll { .. } => counts.epoll += 1,
        }
    }
    counts
}

fn image_size(image: &LoadedImage) -> ImageSize {
    let mut files = vec![(
        stasis_image::MANIFEST_NAME.to_string(),
        RecordKind::Manifest,
        Some(image.manifest_size),
    )];
    files.extend(
        image
            .files
            .iter()
            .map(|file| (file.name.clone(), file.kind, file.actual_size)),
    );
    let total: u64 = files.iter().map(|(_, _, size)| size.unwrap_or(0)).sum();
    ImageSize {
        total_bytes: total,
        files: files
            .into_iter()
            .map(|(name, kind, size)| ImageFile {
                name,
                kind,
                bytes: size.unwrap_or(0),
                present: size.is_some(),
                share: share(size.unwrap_or(0), total),
            })
            .collect(),
    }
}

pub fn render(summary: &Summary, image: &LoadedImage, style: &Style) -> String {
    let mut out = render_header(summary, image, style);
    if matches!(image.encryption, EncryptionState::Locked { .. }) {
        let pids: Vec<String> = summary
            .processes
            .iter()
            .map(|process| process.pid.to_string())
            .collect();
        out.push('\n');
        out.push_str(&key_values(
            &[(
                "Processes",
                format!("{} (records encrypted)", pids.join(", ")),
            )],
            0,
            style,
        ));
        out.push('\n');
        out.push_str(&render_image_size(&summary.image_size, style));
        return out;
    }
    for process in &summary.processes {
        out.push('\n');
        out.push_str(&render_process(process, image, style));
    }
    out.push('\n');
    out.push_str(&render_memory(
        &summary.memory,
        image.processes.len() > 1,
        style,
    ));
    out.push_str(&unreadable_note(
        summary,
        |p| p.memory.is_none(),
        "memory map",
    ));
    out.push('\n');
    out.push_str(&render_fds(&summary.fds, style));
    out.push_str(&unreadable_note(summary, |p| p.fds.is_none(), "fd table"));
    if let Some(ipc) = &summary.ipc {
        out.push('\n');
        out.push_str(&render_ipc(ipc, style));
    }
    out.push('\n');
    out.push_str(&render_image_size(&summary.image_size, style));
    out
}

/// Returns a note that the totals above leave out the processes whose
/// record of kind `record_kind` is unreadable, or nothing when every one
/// was read. Zombies have no memory map or fd table and are not counted.
fn unreadable_note(
    summary: &Summary,
    missing: impl Fn(&ProcessSummary) -> bool,
    record_kind: &str,
) -> String {
    let pids: Vec<String> = summary
        .processes
        .iter()
        .filter(|process| missing(process))
        .filter(|process| {
            process
                .identity
                .as_ref()
                .map_or(true, |identity| identity.zombie_exit_status.is_none())
        })
        .map(|process| process.pid.to_string())
        .collect();
    if pids.is_empty() {
        return String::new();
    }
    format!(
        "  (incomplete: the {record_kind} of process {} is unreadable)\n",
        pids.join(", ")
    )
}

fn render_header(summary: &Summary, image: &LoadedImage, style: &Style) -> String {
    let host = &summary.host;
    let mut lines = vec![
        ("Image", clean(&image.dir.display().to_string())),
        (
            "Format",
            format!(
                "version {}, written by stasis {}",
                summary.format_version,
                clean(&summary.stasis_version)
            ),
        ),
        (
            "Dumped",
            format!(
                "{} on {} (Linux {} {}, {}-byte pages)",
                summary.created_utc,
                clean(&host.hostname),
                clean(&host.kernel_release),
                clean(&host.machine),
                host.page_size
            ),
        ),
        (
            "Integrity",
            if summary.encryption.as_ref().is_some_and(|e| !e.decrypted) && summary.integrity.intact
            {
                style.paint(
                    Paint::Good,
                    &format!(
                        "all {} files match their hashes; the records cannot be checked \
                         without the key",
                        summary.integrity.files_listed
                    ),
                )
            } else {
                render_integrity_line(&summary.integrity, style)
            },
        ),
    ];
    if summary.integrity.seal_file_present {
        lines.push(("Seal", SEAL_PRESENT.to_string()));
    }
    if let Some(encryption) = &summary.encryption {
        let state = if encryption.decrypted {
            "decrypted with the key given".to_string()
        } else {
            LOCKED.to_string()
        };
        lines.push((
            "Encrypted",
            format!(
                "{}, key ID {}; {state}",
                clean(&encryption.cipher),
                clean(&encryption.key_id)
            ),
        ));
    }
    let mut out = key_values(&lines, 0, style);
    for failure in &summary.integrity.failures {
        let problem = crate::load::Problem {
            file: failure.file.clone(),
            message: failure.message.clone(),
        };
        out.push_str(&format!(
            "  {} {}\n",
            style.paint(Paint::Bad, "FAILED"),
            describe_problem(&problem)
        ));
    }
    if !summary.integrity.unlisted_files.is_empty() {
        let names: Vec<String> = summary
            .integrity
            .unlisted_files
            .iter()
            .map(|n| clean(n))
            .collect();
        out.push_str(&format!(
            "  not in the manifest (ignored): {}\n",
            names.join(", ")
        ));
    }
    out
}

fn render_integrity_line(integrity: &Integrity, style: &Style) -> String {
    if integrity.intact {
        return style.paint(
            Paint::Good,
            &format!(
                "all {} files verified; the image passes the checks restore runs",
                integrity.files_listed
            ),
        );
    }
    style.paint(
        Paint::Bad,
        &format!(
            "DAMAGED: {} of {} files verified, {} problem(s); records from failed files are \
             shown marked UNVERIFIED",
            integrity.files_verified,
            integrity.files_listed,
            integrity.failures.len()
        ),
    )
}

fn render_process(process: &ProcessSummary, image: &LoadedImage, style: &Style) -> String {
    let Some(records) = image.process(process.pid) else {
        return String::new();
    };
    let mut out = process_heading(records, process.verified, style);
    let Some(identity) = &process.identity else {
        out.push_str("  the process record is unreadable\n");
        return out;
    };
    let ids = (
        "ids",
        format!(
            "parent {}  session {}  group {}",
            identity.ppid, identity.sid, identity.pgid
        ),
    );
    if let Some(status) = identity.zombie_exit_status {
        let state = format!(
            "zombie: ended with {} and not yet waited for",
            wait_status(status)
        );
        let lines = [("state", state), ids, ("uids", join_ids(&identity.uids))];
        out.push_str(&key_values(&lines, 2, style));
        return out;
    }
    let mut lines = vec![
        ("command", render_cmdline(identity)),
        ids,
        ("uids", join_ids(&identity.uids)),
        ("gids", join_ids(&identity.gids)),
        ("groups", join_ids(&identity.groups)),
        ("exe", clean(&identity.exe)),
        ("cwd", render_cwd(identity)),
        ("threads", render_threads(&identity.threads)),
    ];
    if let Some(memory) = &process.memory {
        lines.push((
            "memory",
            format!(
                "{} mappings, {} mapped, {} stored",
                memory.mappings,
                human_bytes(memory.bytes_mapped),
                human_bytes(memory.bytes_stored)
            ),
        ));
    }
    match (identity.files_shared_with, &process.fds) {
        (Some(owner), _) => lines.push((
            "fds",
            format!("the fd table of process {owner}, listed there"),
        )),
        (None, Some(fds)) => lines.push(("fds", render_fd_counts(fds))),
        (None, None) => {}
    }
    out.push_str(&key_values(&lines, 2, style));
    out
}

fn render_cwd(identity: &Identity) -> String {
    match identity.fs_shared_with {
        Some(owner) => format!(
            "{}  (root, cwd and umask shared with process {owner})",
            clean(&identity.cwd)
        ),
        None => clean(&identity.cwd),
    }
}

fn render_cmdline(identity: &Identity) -> String {
    match &identity.cmdline {
        None => "(no saved pages to read it from)".to_string(),
        Some(arguments) if identity.cmdline_complete => command_line(arguments),
        Some(arguments) => format!(
            "{}  (incomplete: part of the argument area is not in the image; see --cmdline)",
            command_line(arguments)
        ),
    }
}

fn join_ids(ids: &[u32]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

fn render_threads(threads: &[ThreadSummary]) -> String {
    let list: Vec<String> = threads
        .iter()
        .map(|thread| format!("{} ({})", thread.tid, clean(&thread.comm)))
        .collect();
    format!("{}: {}", threads.len(), list.join(", "))
}

fn render_fd_counts(fds: &FdCounts) -> String {
    let kinds = [
        ("regular", fds.regular),
        ("directory", fds.directory),
        ("char_device", fds.char_device),
        ("terminal", fds.terminal),
        ("pipe", fds.pipe),
        ("eventfd", fds.eventfd),
        ("socket", fds.socket),
        ("inotify", fds.inotify),
        ("timerfd", fds.timerfd),
        ("signalfd", fds.signalfd),
        ("epoll", fds.epoll),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{count} {name}"))
        .collect();
    let mut text = format!("{} total", fds.total);
    if !parts.is_empty() {
        text.push_str(&format!(": {}", parts.join(", ")));
    }
    if fds.deleted > 0 {
        text.push_str(&format!(" ({} deleted while open)", fds.deleted));
    }
    text
}

/// Renders the memory totals. The dump keeps the skipped counters only
/// for the whole image, so with several processes their labels note it.
fn render_memory(memory: &MemoryTotals, several_processes: bool, style: &Style) -> String {
    let counts = &memory.counts;
    let pages = |number: u64| {
        format!(
            "{} ({})",
            count(number, "page"),
            human_bytes(number.saturating_mul(PAGE_SIZE))
        )
    };
    let skipped_labels = if several_processes {
        [
            "skipped, never written (whole image)",
            "skipped, equal to file (whole image)",
        ]
    } else {
        ["skipped, never written", "skipped, equal to file"]
    };
    let lines = [
        ("mappings", counts.mappings.to_string()),
        ("mapped", human_bytes(counts.bytes_mapped)),
        (
            "stored",
            format!(
                "{} in {}",
                human_bytes(counts.bytes_stored),
                count(counts.page_runs, "page run")
            ),
        ),
        ("anonymous stored", pages(counts.pages_anonymous_stored)),
        ("written file pages stored", pages(counts.pages_file_stored)),
        (skipped_labels[0], pages(memory.pages_skipped_untouched)),
        (skipped_labels[1], pages(memory.pages_skipped_equal_to_file)),
    ];
    let mut out = style.heading("Memory");
    out.push('\n');
    out.push_str(&key_values(&lines, 2, style));
    out
}

fn render_fds(fds: &FdCounts, style: &Style) -> String {
    format!(
        "{}\n  {}\n",
        style.heading("File descriptors"),
        render_fd_counts(fds)
    )
}

fn render_ipc(ipc: &IpcSummary, style: &Style) -> String {
    let mut heading = style.heading("System V IPC (own IPC namespace)");
    if !ipc.verified {
        heading.push_str(&format!("  {}", style.paint(Paint::Warn, "[UNVERIFIED]")));
    }
    let mut out = heading;
    out.push('\n');
    if ipc.shm.is_empty() && ipc.semaphores.is_empty() && ipc.queues.is_empty() {
        out.push_str("  no objects\n");
        return out;
    }
    for segment in &ipc.shm {
        out.push_str(&format!(
            "  shm {}  key {:#010x}  {}  mode {:03o}  owner {}:{}{}{}\n",
            segment.id,
            segment.key as u32,
            human_bytes(segment.size),
            segment.mode,
            segment.uid,
            segment.gid,
            if segment.locked { "  locked" } else { "" },
            if segment.removed {
                "  (removed, still attached)"
            } else {
                ""
            }
        ));
    }
    for set in &ipc.semaphores {
        let values: Vec<String> = set.values.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "  semaphores {}  key {:#010x}  mode {:03o}  values {}\n",
            set.id,
            set.key as u32,
            set.mode,
            values.join(" ")
        ));
    }
    for queue in &ipc.queues {
        out.push_str(&format!(
            "  queue {}  key {:#010x}  mode {:03o}  {}, {} of at most {}\n",
            queue.id,
            queue.key as u32,
            queue.mode,
            count(queue.messages as u64, "message"),
            human_bytes(queue.bytes),
            human_bytes(queue.max_bytes)
        ));
    }
    out
}

fn render_image_size(size: &ImageSize, style: &Style) -> String {
    let mut out = style.heading(&format!(
        "Image size: {} in {} files",
        human_bytes(size.total_bytes),
        size.files.len()
    ));
    out.push('\n');
    let mut table = Table::new(&[
        ("FILE", Align::Left),
        ("KIND", Align::Left),
        ("SIZE", Align::Right),
        ("SHARE", Align::Right),
    ])
    .indent(2);
    for file in &size.files {
        let bytes = if file.present {
            Cell::new(human_bytes(file.bytes))
        } else {
            Cell::painted("missing", Paint::Bad)
        };
        table.row(vec![
            Cell::new(clean(&file.name)),
            Cell::new(file.kind.name()),
            bytes,
            Cell::new(percent(file.bytes, size.total_bytes)),
        ]);
    }
    out.push_str(&table.render(style));
    out
}
