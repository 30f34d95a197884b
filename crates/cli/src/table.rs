//! Plain-text tables and the value formats shown in them.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

/// Left-aligned columns separated by two spaces; no trailing spaces.
pub(crate) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            let pad = widths
                .get(i)
                .copied()
                .unwrap_or(0)
                .saturating_sub(cell.chars().count());
            l.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// One object as `Label:  value` lines, values aligned; no trailing spaces.
pub(crate) fn fields(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count() + 1)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        let line = format!("{:<width$}  {v}", format!("{k}:"));
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

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// An API timestamp as `YYYY-MM-DD HH:MM:SS` (UTC); unparsable ones as is.
pub(crate) fn timestamp(s: &str) -> String {
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
