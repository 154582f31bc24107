//! Building blocks of the text views: colour, aligned tables, escaping of
//! untrusted strings, byte counts and times.

use std::fmt::Write;

/// Styling of text output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Use ANSI colour codes. Set it only when stdout is a terminal.
    pub colour: bool,
}

/// A colour or weight for a piece of text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Plain,
    Bold,
    Dim,
    Good,
    Warn,
    Bad,
}

impl Style {
    /// Returns `text` wrapped in the ANSI codes of `paint`, or unchanged
    /// without colour.
    pub fn paint(&self, paint: Paint, text: &str) -> String {
        let code = match paint {
            Paint::Plain => return text.to_string(),
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Good => "32",
            Paint::Warn => "33",
            Paint::Bad => "1;31",
        };
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn heading(&self, text: &str) -> String {
        self.paint(Paint::Bold, text)
    }
}

/// Column alignment in a [`Table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table cell: text and how to paint it.
#[derive(Clone, Debug)]
pub struct Cell {
    text: String,
    paint: Paint,
}

impl Cell {
    pub fn new(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            paint: Paint::Plain,
        }
    }

    pub fn painted(text: impl Into<String>, paint: Paint) -> Cell {
        Cell {
            text: text.into(),
            paint,
        }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::new(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::new(text)
    }
}

/// A table whose columns are padded to their widest cell. Cells are
/// padded before they are painted, so colour codes do not shift columns.
#[derive(Debug)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<Cell>>,
    indent: usize,
}

impl Table {
    /// Creates a table with the given column headers and alignments.
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table {
            headers: headers
                .iter()
                .map(|(name, align)| (name.to_string(), *align))
                .collect(),
            rows: Vec::new(),
            indent: 0,
        }
    }

    /// Sets the number of spaces before each line.
    pub fn indent(mut self, spaces: usize) -> Table {
        self.indent = spaces;
        self
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the table, one line per row after the header line. The
    /// last column is not padded, so lines carry no trailing spaces.
    pub fn render(&self, style: &Style) -> String {
        let widths = self.widths();
        let mut out = String::new();
        let header: Vec<Cell> = self
            .headers
            .iter()
            .map(|(name, _)| Cell::painted(name.clone(), Paint::Bold))
            .collect();
        self.render_line(&mut out, &header, &widths, style);
        for row in &self.rows {
            self.render_line(&mut out, row, &widths, style);
        }
        out
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|(name, _)| name.chars().count())
            .collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(index) {
                    *width = (*width).max(cell.text.chars().count());
                }
            }
        }
        widths
    }

    fn render_line(&self, out: &mut String, cells: &[Cell], widths: &[usize], style: &Style) {
        let mut line = " ".repeat(self.indent);
        let last = cells.len().min(widths.len()).saturating_sub(1);
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = width.saturating_sub(cell.text.chars().count());
            let align = self
                .headers
                .get(index)
                .map_or(Align::Left, |(_, align)| *align);
            if align == Align::Right {
                line.push_str(&" ".repeat(pad));
            }
            line.push_str(&style.paint(cell.paint, &cell.text));
            if align == Align::Left && index != last {
                line.push_str(&" ".repeat(pad));
            }
            if index != last {
                line.push_str("  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// Returns `text` with control characters escaped (`\n`, `\x1b` …), so
/// that strings from an image cannot move the cursor or change colours
/// of the terminal that shows them.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        push_escaped(&mut out, character);
    }
    out
}

fn push_escaped(out: &mut String, character: char) {
    match character {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\\' => out.push_str("\\\\"),
        c if c.is_control() && (c as u32) < 0x100 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Quotes one argument the way a POSIX shell would read it back: bare
/// when it has only safe characters, in single quotes otherwise, and as
/// `$'…'` when it contains control characters.
pub fn shell_quote(argument: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./=:,@%+".contains(c);
    if !argument.is_empty() && argument.chars().all(safe) {
        return argument.to_string();
    }
    if argument.chars().any(char::is_control) {
        let mut out = String::from("$'");
        for character in argument.chars() {
            match character {
                '\'' => out.push_str("\\'"),
                c => push_escaped(&mut out, c),
            }
        }
        out.push('\'');
        return out;
    }
    format!("'{}'", argument.replace('\'', "'\\''"))
}

/// Returns at most `max` characters of `text`, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// Joins arguments into one shell-quoted command line.
pub fn command_line(arguments: &[String]) -> String {
    arguments
        .iter()
        .map(|argument| shell_quote(argument))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Formats a byte count with a binary unit: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Formats a count with a noun in the singular or plural: `1 page`,
/// `3 pages`.
pub fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// Formats `part` as a percentage of `whole` with one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// Returns `part / whole` rounded to 4 decimals, 0 when `whole` is 0.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC time,
/// `2024-05-01T12:00:00Z`.
pub fn rfc3339_utc(unix_seconds: u64) -> String {
    let (year, month, day, hour, minute, second) = stasis_image::time::utc_fields(unix_seconds);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Formats microseconds as milliseconds with one decimal.
pub fn millis(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn shell_quote_cases() {
        assert_eq!(shell_quote("sleep"), "sleep");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("a\x1bb'"), "$'a\\x1bb\\''");
    }

    #[test]
    fn clean_escapes_control_characters() {
        assert_eq!(clean("a\x1b[31mb\n"), "a\\x1b[31mb\\n");
        assert_eq!(clean("tab\there"), "tab\\there");
        assert_eq!(clean("\u{85}"), "\\x85");
    }

    #[test]
    fn table_aligns_columns_without_trailing_spaces() {
        let mut table = Table::new(&[("A", Align::Right), ("NAME", Align::Left)]);
        table.row(vec![Cell::new("1"), Cell::new("x")]);
        table.row(vec![Cell::new("100"), Cell::new("longer")]);
        let text = table.render(&Style::default());
        assert_eq!(text, "  A  NAME\n  1  x\n100  longer\n");
    }

    #[test]
    fn colour_codes_do_not_shift_columns() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        table.row(vec![Cell::painted("red", Paint::Bad), Cell::new("x")]);
        let text = table.render(&Style { colour: true });
        assert!(text.contains("\x1b[1;31mred\x1b[0m  x"), "{text:?}");
    }
}
