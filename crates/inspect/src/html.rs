//! The HTML report: one self-contained file with inline CSS, SVG and a
//! little JavaScript, and no reference to anything outside it. It shows
//! the summary, the process tree, each address space, bar charts of the
//! statistics, and the mapping and fd tables.

use std::fmt::Write;

use stasis_image::PAGE_SIZE;

use crate::load::LoadedImage;
use crate::svg::{address_space, bar_chart, escape, process_tree, shorten_path, Bar};
use crate::text::{count, human_bytes, percent};
use crate::view::{address, describe_problem, fds, maps, stats, summary, tree};

const STYLE: &str = r#"
:root { --ink: #1f2937; --muted: #6b7280; --line: #e5e7eb; --card: #ffffff;
  --stored: #16a34a; --untouched: #e5e7eb; --file: #bfdbfe; --kernel: #ddd6fe;
  --bad: #b91c1c; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; background: #f3f4f6; color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 12px; }
h3 { font-size: 14px; margin: 16px 0 8px; color: var(--muted); font-weight: 600; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; margin: 0 0 18px; overflow-x: auto; }
.path, code, .mono, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
.path { color: var(--muted); }
.note { color: var(--muted); margin: 0 0 10px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 12px 0 0; }
.facts dt { font-weight: 600; } .facts dd { margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-weight: 600; }
.badge.ok { background: #dcfce7; color: #166534; }
.badge.damaged { background: #fee2e2; color: var(--bad); }
.problems li { color: var(--bad); }
.unverified-note { color: var(--warn); font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 3px 10px 3px 0; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; }
tr.hl td { background: #fef9c3; }
.legend { display: flex; gap: 18px; margin: 0 0 10px; color: var(--muted); flex-wrap: wrap; }
.legend span::before { content: ""; display: inline-block; width: 12px; height: 12px;
  margin-right: 6px; vertical-align: -2px; border-radius: 2px; background: var(--c); }
svg text { font-size: 12px; fill: var(--ink); }
svg .stored { fill: var(--stored); }
svg .untouched { fill: var(--untouched); }
svg .from-file { fill: var(--file); }
svg .kernel { fill: var(--kernel); }
svg .vma text.vma-address { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 11px; }
svg .vma-detail { fill: var(--muted); }
svg .vma.hl rect { stroke: #ca8a04; stroke-width: 2; }
svg .gap line { stroke: var(--muted); stroke-dasharray: 2 4; }
svg .gap text { fill: var(--muted); font-style: italic; font-size: 11px; }
svg .overview-gap { stroke: var(--muted); fill: none; }
svg .tree-edge { fill: none; stroke: #94a3b8; stroke-width: 1.5; }
svg .process-node rect { fill: #dbeafe; stroke: #3b82f6; }
svg .process-node.root rect { stroke-width: 2.5; }
svg .process-node.unverified rect { fill: #ffedd5; stroke: var(--warn); }
svg .process-node.zombie rect { fill: #f3f4f6; stroke: #9ca3af; stroke-dasharray: 4 3; }
svg .node-title { font-weight: 700; }
svg .node-command { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 11px; fill: #374151; }
svg .node-flag { text-anchor: end; fill: var(--warn); font-size: 10px; font-weight: 700; }
svg .bar-label { text-anchor: end; }
svg .bar-value { fill: var(--muted); }
svg .bar-bytes { fill: #2563eb; } svg .bar-pages { fill: var(--stored); }
svg .bar-skipped { fill: #9ca3af; } svg .bar-mapping { fill: #7c3aed; }
svg .bar-time { fill: #d97706; }
.charts { display: grid; gap: 8px; }
footer { color: var(--muted); font-size: 12px; }
"#;

const SCRIPT: &str = r#"
(function () {
  function mark(id, on) {
    document.querySelectorAll('[data-vma="' + id + '"]').forEach(function (element) {
      element.classList.toggle('hl', on);
    });
  }
  document.querySelectorAll('[data-vma]').forEach(function (element) {
    var id = element.getAttribute('data-vma');
    element.addEventListener('mouseenter', function () { mark(id, true); });
    element.addEventListener('mouseleave', function () { mark(id, false); });
    if (element.tagName.toLowerCase() === 'g') {
      element.addEventListener('click', function () {
        var row = document.querySelector('tr[data-vma="' + id + '"]');
        if (row) { row.scrollIntoView({ block: 'center' }); }
      });
    }
  });
})();
"#;

/// Returns the whole HTML report of `image`.
pub fn report(image: &LoadedImage) -> String {
    let summary = summary::build(image, None);
    let stats = stats::build(image, None);
    let title = format!("stasis image {}", image.dir.display());

    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    out.push_str(&overview_section(image, &summary));
    out.push_str(&tree_section(image));
    out.push_str(&memory_sections(image));
    out.push_str(&chart_section(&summary, &stats));
    out.push_str(&maps_section(image));
    out.push_str(&fds_section(image));
    let _ = write!(
        out,
        "<footer>Written by stasis inspect. Image format version {}; the same data is \
         available as JSON with <code>stasis inspect --json</code>.</footer>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        image.manifest.format_version
    );
    out
}

fn overview_section(image: &LoadedImage, summary: &summary::Summary) -> String {
    let host = &summary.host;
    let badge = if summary.integrity.intact {
        format!(
            "<span class=\"badge ok\">all {} files verified</span>",
            summary.integrity.files_listed
        )
    } else {
        format!(
            "<span class=\"badge damaged\">DAMAGED: {} problem(s)</span>",
            summary.integrity.failures.len()
        )
    };
    let mut out = format!(
        "<section id=\"overview\">\n<h1>stasis image</h1>\n<div class=\"path\">{}</div>\n\
         <dl class=\"facts\">\n",
        escape(&image.dir.display().to_string())
    );
    let mut facts = vec![("Integrity", badge)];
    if summary.integrity.seal_file_present {
        facts.push(("Seal", escape(summary::SEAL_PRESENT)));
    }
    facts.extend([
        (
            "Format",
            format!(
                "version {}, written by stasis {}",
                summary.format_version,
                escape(&summary.stasis_version)
            ),
        ),
        ("Dumped", escape(&summary.created_utc)),
        (
            "Host",
            escape(&format!(
                "{} (Linux {} {}, {}-byte pages)",
                host.hostname, host.kernel_release, host.machine, host.page_size
            )),
        ),
        (
            "Memory",
            format!(
                "{} mappings, {} mapped, {} stored",
                summary.memory.counts.mappings,
                human_bytes(summary.memory.counts.bytes_mapped),
                human_bytes(summary.memory.counts.bytes_stored)
            ),
        ),
        (
            "Image size",
            format!(
                "{} in {} files",
                human_bytes(summary.image_size.total_bytes),
                summary.image_size.files.len()
            ),
        ),
    ]);
    for (name, value) in facts {
        let _ = writeln!(out, "<dt>{name}</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n");
    out.push_str(&problem_list(image));
    out.push_str("</section>\n");
    out
}

fn problem_list(image: &LoadedImage) -> String {
    let problems = image.all_problems();
    if problems.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h3>Problems</h3>\n<p class=\"unverified-note\">Records from files that failed a check \
         are shown marked UNVERIFIED, for information only.</p>\n<ul class=\"problems\">\n",
    );
    for problem in problems {
        let _ = writeln!(out, "<li>{}</li>", escape(&describe_problem(&problem)));
    }
    out.push_str("</ul>\n");
    out
}

fn tree_section(image: &LoadedImage) -> String {
    let tree = tree::build(image, None);
    format!(
        "<section id=\"tree\">\n<h2>Process tree</h2>\n{}</section>\n",
        process_tree(&tree)
    )
}

fn memory_sections(image: &LoadedImage) -> String {
    let mut out = String::new();
    for records in &image.processes {
        let Some(memory) = &records.memory else {
            continue;
        };
        let comm = records
            .process
            .as_ref()
            .map(|process| format!(" ({})", process.record.comm))
            .unwrap_or_default();
        let note = if memory.verified {
            ""
        } else {
            " <span class=\"unverified-note\">UNVERIFIED</span>"
        };
        let _ = write!(
            out,
            "<section class=\"memory\" id=\"memory-{pid}\">\n\
             <h2>Address space of process {pid}{}{note}</h2>\n\
             <div class=\"legend\"><span style=\"--c: var(--stored)\">stored in the image</span>\
             <span style=\"--c: var(--untouched)\">anonymous, never written (not stored)</span>\
             <span style=\"--c: var(--file)\">file pages, read from the file at restore</span>\
             <span style=\"--c: var(--kernel)\">provided by the kernel or shared (not saved)</span>\
             </div>\n<p class=\"note\">Each mapping is drawn to scale within its row; row height \
             grows with the logarithm of the size, and unmapped gaps are shortened. The strip at \
             the top shows all mappings in address order.</p>\n{}</section>\n",
            escape(&comm),
            address_space(records.pid, &memory.record),
            pid = records.pid,
        );
    }
    out
}

fn chart_section(summary: &summary::Summary, stats: &stats::Stats) -> String {
    let bytes: Vec<Bar> = stats
        .bytes
        .parts
        .iter()
        .map(|part| Bar {
            label: part.part.clone(),
            value: part.bytes as f64,
            text: format!(
                "{} ({})",
                human_bytes(part.bytes),
                percent(part.bytes, stats.bytes.total)
            ),
            class: "bar-bytes",
        })
        .collect();

    let memory = &summary.memory;
    let page_bar = |label: &str, pages: u64, class: &'static str| Bar {
        label: label.to_string(),
        value: pages as f64,
        text: format!(
            "{} ({})",
            count(pages, "page"),
            human_bytes(pages.saturating_mul(PAGE_SIZE))
        ),
        class,
    };
    let pages = vec![
        page_bar(
            "anonymous stored",
            memory.counts.pages_anonymous_stored,
            "bar-pages",
        ),
        page_bar(
            "written file pages stored",
            memory.counts.pages_file_stored,
            "bar-pages",
        ),
        page_bar(
            "skipped, never written",
            memory.pages_skipped_untouched,
            "bar-skipped",
        ),
        page_bar(
            "skipped, equal to file",
            memory.pages_skipped_equal_to_file,
            "bar-skipped",
        ),
    ];

    let mapping_bars = |mappings: &[stats::MappingSize], stored: bool| -> Vec<Bar> {
        mappings
            .iter()
            .map(|mapping| {
                let value = if stored {
                    mapping.bytes_stored
                } else {
                    mapping.size
                };
                let name = if mapping.name.is_empty() {
                    "anonymous".to_string()
                } else {
                    shorten_path(&mapping.name, 26)
                };
                Bar {
                    label: format!("{} {name}", address(mapping.start)),
                    value: value as f64,
                    text: human_bytes(value),
                    class: if stored { "bar-pages" } else { "bar-mapping" },
                }
            })
            .collect()
    };

    let dump = &stats.dump;
    let time_bar = |label: &str, micros: u64| Bar {
        label: label.to_string(),
        value: micros as f64,
        text: format!("{:.1} ms", micros as f64 / 1000.0),
        class: "bar-time",
    };
    let timings = vec![
        time_bar("process stopped", dump.frozen_us),
        time_bar("writing memory", dump.memory_us),
        time_bar("whole dump", dump.total_us),
    ];

    let charts = [
        ("Where the image's bytes go", "chart-image-bytes", bytes),
        ("Pages", "chart-pages", pages),
        (
            "Largest mappings",
            "chart-largest-mappings",
            mapping_bars(&stats.largest_mappings, false),
        ),
        (
            "Mappings with the most stored bytes",
            "chart-top-stored",
            mapping_bars(&stats.top_stored_mappings, true),
        ),
        ("Dump timings", "chart-timings", timings),
    ];
    let mut out =
        String::from("<section id=\"statistics\">\n<h2>Statistics</h2>\n<div class=\"charts\">\n");
    for (title, id, bars) in charts {
        let _ = write!(out, "<h3>{}</h3>\n{}", escape(title), bar_chart(id, &bars));
    }
    out.push_str("</div>\n</section>\n");
    out
}

fn maps_section(image: &LoadedImage) -> String {
    let maps = maps::build(image, None);
    let mut out = String::from("<section id=\"maps\">\n<h2>Mappings</h2>\n");
    for process in &maps.processes {
        let _ = write!(
            out,
            "<h3>Process {}</h3>\n<table class=\"maps-table\">\n<tr><th>start-end</th><th>perms</th>\
             <th class=\"num\">offset</th><th>dev</th><th class=\"num\">inode</th>\
             <th class=\"num\">size</th><th class=\"num\">stored</th><th>name</th></tr>\n",
            process.pid
        );
        for mapping in &process.mappings {
            let stored = if mapping.saves_pages {
                human_bytes(mapping.bytes_stored)
            } else {
                "-".to_string()
            };
            let _ = writeln!(
                out,
                "<tr data-vma=\"{}-{:x}\"><td class=\"mono\">{}-{}</td><td class=\"mono\">{}</td>\
                 <td class=\"num mono\">{:08x}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                process.pid,
                mapping.start,
                address(mapping.start),
                address(mapping.end),
                mapping.perms,
                mapping.offset,
                escape(&mapping.dev),
                mapping.inode,
                human_bytes(mapping.size),
                stored,
                escape(&mapping.name)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
    out
}

fn fds_section(image: &LoadedImage) -> String {
    let fds = fds::build(image, None);
    let mut out = String::from("<section id=\"fds\">\n<h2>File descriptors</h2>\n");
    for process in &fds.processes {
        let _ = write!(
            out,
            "<h3>Process {}</h3>\n<table class=\"fds-table\">\n<tr><th class=\"num\">fd</th>\
             <th>kind</th><th>flags</th><th class=\"num\">offset</th><th>target</th></tr>\n",
            process.pid
        );
        for fd in &process.fds {
            let mut target = fd.path.clone();
            if fd.deleted {
                target.push_str(" (deleted)");
            }
            let _ = writeln!(
                out,
                "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"mono\">{}</td>\
                 <td class=\"num\">{}</td><td>{}</td></tr>",
                fd.fd,
                fd.kind,
                fd.flags_decoded,
                fd.position.map_or("-".to_string(), |p| p.to_string()),
                escape(&target)
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
    out
}
