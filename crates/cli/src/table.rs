//! Plain-text tables and the value formats shown in them.
//!
//! Every cell and field value goes through [`printable`]: whatever its
//! source (an endpoint's reported OS, a user's email, a vault name typed by
//! anyone), nothing in a table can drive the terminal. Table cells are also
//! cut at [`MAX_COLUMN`] characters, so one long value cannot widen every
//! row; `--json` prints the full values.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Widest a table column gets, in characters; longer cells are cut with `…`.
pub(crate) const MAX_COLUMN: usize = 60;

/// `s` with every character a terminal would act on, or that hides or
/// reorders text ([`jumpgate_proto::text::is_unsafe_char`]), written as a
/// visible escape: `\n`, `\t`, `\r`, `\x1b`, `\u{202e}`.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    use std::fmt::Write;
    if !s.chars().any(jumpgate_proto::text::is_unsafe_char) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if jumpgate_proto::text::is_unsafe_char(c) && (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if jumpgate_proto::text::is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.into()
}

/// A table cell as shown: escaped, then cut to [`MAX_COLUMN`]; with its
/// width in characters. Printable ASCII that fits (most cells) is shown as
/// it is, without a copy.
fn cell(s: &str) -> (Cow<'_, str>, usize) {
    if s.len() <= MAX_COLUMN && s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return (Cow::Borrowed(s), s.len());
    }
    let shown = truncate(&printable(s), MAX_COLUMN);
    let width = shown.chars().count();
    (Cow::Owned(shown), width)
}

/// Left-aligned columns separated by two spaces; no trailing spaces. Cells
/// are escaped and cut (see the module).
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    Paged::new(headers).page(rows)
}

/// A table printed a page at a time (a long list shows as it arrives):
/// the header comes with the first page; a column is as wide as its widest
/// cell so far, so a later page's wider cell widens that column from there
/// on (`render` when every row is at hand).
#[derive(Debug)]
pub(crate) struct Paged {
    headers: Vec<String>,
    widths: Vec<usize>,
    started: bool,
}

impl Paged {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            widths: headers.iter().map(|h| h.chars().count()).collect(),
            started: false,
        }
    }

    /// The next rows as text (with the header, the first time).
    pub(crate) fn page<R: AsRef<[C]>, C: AsRef<str>>(&mut self, rows: &[R]) -> String {
        // Each cell is looked at twice (its width, then its text) rather
        // than kept: a page of thousands of rows then makes one string,
        // not a vector per row.
        for row in rows {
            for (w, c) in self.widths.iter_mut().zip(row.as_ref()) {
                *w = (*w).max(cell(c.as_ref()).1);
            }
        }
        let line_len: usize = self.widths.iter().map(|w| w + 2).sum::<usize>() + 1;
        let mut out = String::with_capacity(line_len * (rows.len() + 1));
        if !self.started {
            self.started = true;
            let headers = std::mem::take(&mut self.headers);
            line(
                &mut out,
                &self.widths,
                headers.iter().map(|h| (h.as_str(), h.chars().count())),
            );
        }
        for row in rows {
            line(
                &mut out,
                &self.widths,
                row.as_ref().iter().map(|c| cell(c.as_ref())),
            );
        }
        out
    }
}

/// One table line into `out`: cells (with their widths in characters)
/// padded to `widths`, two spaces apart, no trailing spaces.
fn line<S: AsRef<str>>(
    out: &mut String,
    widths: &[usize],
    cells: impl Iterator<Item = (S, usize)>,
) {
    const SPACES: &str = "                                                                ";
    let start = out.len();
    let mut cells = cells.enumerate().peekable();
    while let Some((i, (cell, width))) = cells.next() {
        if i > 0 {
            out.push_str("  ");
        }
        out.push_str(cell.as_ref());
        // (The last cell is not padded: it would be trimmed.)
        let mut pad = match cells.peek() {
            Some(_) => widths.get(i).copied().unwrap_or(0).saturating_sub(width),
            None => 0,
        };
        while pad > 0 {
            let n = pad.min(SPACES.len());
            out.push_str(&SPACES[..n]);
            pad -= n;
        }
    }
    let kept = out[start..].trim_end().len();
    out.truncate(start + kept);
    out.push('\n');
}

/// One object as `Label:  value` lines, values aligned and escaped (see
/// [`printable`]; not cut: one object, one value per line); no trailing
/// spaces.
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let line = format!("{:<width$}  {}", format!("{k}:"), printable(v));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `1536` → `1.5 KiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `YYYY-MM-DDTHH:MM:SSZ` (fields in range) as `YYYY-MM-DD HH:MM:SS`.
fn utc_seconds(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<u32> {
        let digits = b.get(at..at + len)?;
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (month, day) = (num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    num(0, 4)?;
    let fits = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    fits.then(|| format!("{} {}", &s[..10], &s[11..19]))
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// An API timestamp as `YYYY-MM-DD HH:MM:SS` (UTC); unparsable ones as is.
pub(crate) fn timestamp(s: &str) -> String {
    // The gateway's own form, `YYYY-MM-DDTHH:MM:SSZ`, needs no parsing: the
    // same text with a space (a list of thousands shows thousands).
    utc_seconds(s).unwrap_or_else(|| timestamp_parsed(s))
}

/// [`timestamp`] of any RFC 3339 time.
fn timestamp_parsed(s: &str) -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    parse_time(s)
        .and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_else(|| s.to_owned())
}

/// Time between two API timestamps, `1h02m03s` style; `None` if either does
/// not parse.
pub(crate) fn duration_between(start: &str, end: &str) -> Option<String> {
    let secs = (parse_time(end)? - parse_time(start)?)
        .whole_seconds()
        .max(0);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Some(if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    })
}

/// Cuts `s` to `max` characters, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_timestamps_show_the_same_without_parsing() {
        for t in [
            "2025-05-01T10:00:00Z",
            "1999-12-31T23:59:59Z",
            "2026-02-28T00:00:00Z",
        ] {
            assert_eq!(
                utc_seconds(t).as_deref(),
                Some(timestamp_parsed(t).as_str())
            );
            assert_eq!(timestamp(t), timestamp_parsed(t));
        }
        for t in [
            "2025-13-01T10:00:00Z",
            "2025-05-01T24:00:00Z",
            "2025-05-01T10:00:00+02:00",
            "2025-05-01T10:00:00.5Z",
            "2025-05-01 10:00:00Z",
            "x",
        ] {
            assert!(utc_seconds(t).is_none(), "{t}");
        }
        assert_eq!(
            timestamp("2025-05-01T12:00:00+02:00"),
            "2025-05-01 10:00:00"
        );
        assert_eq!(timestamp("2025-05-01T10:00:00.5Z"), "2025-05-01 10:00:00");
        assert_eq!(timestamp("not a time"), "not a time");
    }

    #[test]
    fn ascii_cells_are_shown_as_they_are_and_others_escaped_and_cut() {
        assert_eq!(cell("web-01"), (Cow::Borrowed("web-01"), 6));
        assert_eq!(cell("a\x1bb").0, "a\\x1bb");
        assert_eq!(cell("Grüße").1, 5);
        let long = "x".repeat(MAX_COLUMN + 5);
        let (shown, width) = cell(&long);
        assert_eq!(width, MAX_COLUMN);
        assert!(shown.ends_with('…'));
    }

    #[test]
    fn a_paged_table_has_one_header_and_columns_widen_from_the_page_that_needs_it() {
        let mut t = Paged::new(&["NAME", "OS"]);
        let row = |a: &str, b: &str| vec![a.to_owned(), b.to_owned()];
        let first = t.page(&[row("a", "linux"), row("bb", "bsd")]);
        assert_eq!(first, "NAME  OS\na     linux\nbb    bsd\n");
        let second = t.page(&[row("longer-name", "x"), row("c", "y")]);
        assert_eq!(second, "longer-name  x\nc            y\n");
        assert_eq!(t.page::<Vec<String>, String>(&[]), "");
        // The whole table at once is the same as its single page.
        assert_eq!(
            render(&["NAME", "OS"], &[row("a", "linux"), row("bb", "bsd")]),
            first
        );
    }

    #[test]
    fn columns_align_on_the_widest_cell() {
        let out = render(
            &["NAME", "STATUS"],
            &[
                vec!["web-01".into(), "online".into()],
                vec!["a".into(), "offline".into()],
            ],
        );
        assert_eq!(out, "NAME    STATUS\nweb-01  online\na       offline\n");
    }

    #[test]
    fn cells_and_fields_cannot_drive_the_terminal() {
        // Clear the screen, set the window title, a C1 CSI, a bidi override.
        let hostile = "\x1b[2J\x1b]0;pwned\x07x\u{9b}1m\u{202e}cba\n";
        let out = render(&["OS"], &[vec![hostile.into()]]);
        assert!(!out.chars().any(|c| c != '\n' && c.is_control()), "{out:?}");
        assert!(
            !out.contains('\u{202e}') && !out.contains('\u{9b}'),
            "{out:?}"
        );
        assert_eq!(
            out,
            "OS\n\\x1b[2J\\x1b]0;pwned\\x07x\\x9b1m\\u{202e}cba\\n\n"
        );
        let f = fields(&[("Email", "a\x1b[31mb".into())]);
        assert_eq!(f, "Email:  a\\x1b[31mb\n");
        // Ordinary text is untouched, without a copy.
        assert!(matches!(
            printable("Debian 12 é東京"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_long_cell_is_cut_and_does_not_widen_the_other_rows() {
        let long = "v".repeat(5000);
        let out = render(
            &["NAME", "ACTION"],
            &[
                vec![long, "vault-put".into()],
                vec!["a".into(), "login".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        // MAX_COLUMN - 1 of the long value, plus the one of `vault-put`.
        assert_eq!(lines[1].chars().filter(|&c| c == 'v').count(), MAX_COLUMN);
        assert!(lines[1].contains('…'), "{out}");
        for l in &lines {
            assert!(
                l.chars().count() <= MAX_COLUMN + 2 + "vault-put".len(),
                "{l}"
            );
        }
    }

    #[test]
    fn fields_align_their_values() {
        let out = fields(&[("User", "alice".into()), ("Groups", String::new())]);
        assert_eq!(out, "User:    alice\nGroups:\n");
    }

    #[test]
    fn values_are_humanized() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(timestamp("2025-03-01T10:20:30.123Z"), "2025-03-01 10:20:30");
        assert_eq!(
            timestamp("2025-03-01T12:20:30+02:00"),
            "2025-03-01 10:20:30"
        );
        assert_eq!(timestamp("garbage"), "garbage");
        assert_eq!(
            duration_between("2025-03-01T10:00:00Z", "2025-03-01T11:02:03Z").as_deref(),
            Some("1h02m03s")
        );
        assert_eq!(
            duration_between("2025-03-01T10:00:00Z", "2025-03-01T10:00:09.9Z").as_deref(),
            Some("9s")
        );
        assert_eq!(duration_between("x", "2025-03-01T10:00:00Z"), None);
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
