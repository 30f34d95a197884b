//! `jg recordings [--endpoint E] [--user U] [--since T] [--limit N] [--json]`,
//! `jg recordings export ID [-o FILE] [--fps N]`, `jg recordings search TEXT
//! [--limit N] [--json]` and `jg play ID [--speed N] [--idle-limit SECS]`:
//! session recordings (needs `view-audit`).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use jumpgate_api_types::Recording;
use jumpgate_api_types::recording_search::{MAX_RESULTS, RecordingHit, SearchStream};
use jumpgate_client::{CastStream, Client, RecordingFilter};

use crate::desktop_export::{Exporter, Header};
use crate::table;

pub(crate) async fn list(
    client: &Client,
    f: &RecordingFilter<'_>,
    json: bool,
) -> anyhow::Result<()> {
    let recs = client.recordings(f).await.context("listing recordings")?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&recs)?)?;
    } else {
        out!("{}", render(&recs))?;
    }
    Ok(())
}

fn render(recs: &[Recording]) -> String {
    let rows: Vec<Vec<String>> = recs
        .iter()
        .map(|r| {
            let mut notes = Vec::new();
            if r.ended_at.is_none() {
                notes.push("live");
            }
            if r.interrupted {
                notes.push("interrupted");
            }
            if r.input_recorded {
                notes.push("keystrokes");
            }
            vec![
                r.id.clone(),
                table::timestamp(&r.started_at),
                format_duration(r.duration_secs),
                r.username.clone(),
                r.endpoint.clone(),
                format!("{}x{}", r.width, r.height),
                notes.join(","),
            ]
        })
        .collect();
    table::render(
        &[
            "ID", "STARTED", "LENGTH", "USER", "ENDPOINT", "SIZE", "NOTES",
        ],
        &rows,
    )
}

/// `jg recordings search TEXT`: the recordings where TEXT was printed or
/// typed, newest first, one line per match with its moment (pages are
/// followed until `limit` recordings are found or none is left).
pub(crate) async fn search(
    client: &Client,
    text: &str,
    limit: u32,
    json: bool,
) -> anyhow::Result<()> {
    let mut hits = Vec::new();
    let mut cursor: Option<String> = None;
    let not_indexed = loop {
        let want = limit.saturating_sub(hits.len() as u32).max(1);
        let page = client
            .search_recordings(text, Some(want.min(MAX_RESULTS)), cursor.as_deref())
            .await
            .context("searching recordings")?;
        hits.extend(page.results);
        match page.next_cursor {
            Some(c) if (hits.len() as u32) < limit => cursor = Some(c),
            _ => break page.not_indexed,
        }
    };
    hits.truncate(limit as usize);
    if json {
        outln!("{}", serde_json::to_string_pretty(&hits)?)?;
    } else if hits.is_empty() {
        eprintln!("no recording has `{text}`");
    } else {
        out!("{}", render_hits(&hits))?;
    }
    if not_indexed > 0 {
        eprintln!(
            "{not_indexed} recording(s) not searched yet (still running, or just ended and being indexed)"
        );
    }
    Ok(())
}

fn render_hits(hits: &[RecordingHit]) -> String {
    let mut rows = Vec::new();
    for h in hits {
        let r = &h.recording;
        for m in &h.matches {
            rows.push(vec![
                r.id.clone(),
                r.session_id.clone(),
                r.username.clone(),
                r.endpoint.clone(),
                table::timestamp(&r.started_at),
                format_offset(m.offset_secs),
                match m.stream {
                    SearchStream::Output => "output".to_owned(),
                    SearchStream::Input => "typed".to_owned(),
                },
                middle(&m.snippet, table::MAX_COLUMN - 2),
            ]);
        }
        if h.more {
            rows.push(vec![
                r.id.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "(more matches)".to_owned(),
            ]);
        }
    }
    table::render(
        &[
            "RECORDING",
            "SESSION",
            "USER",
            "ENDPOINT",
            "STARTED",
            "AT",
            "IN",
            "MATCH",
        ],
        &rows,
    )
}

/// The middle `max` characters of a snippet (the gateway centres the
/// match in it), so a table's cut keeps the match in view.
fn middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let skip = (n - max).div_ceil(2);
    let inner: String = s.chars().skip(skip).take(max.saturating_sub(2)).collect();
    format!("…{inner}…")
}

/// Seconds into a recording as `m:ss.s` (`jg play` and the console's
/// player count the same way).
fn format_offset(secs: f64) -> String {
    let tenths = (secs * 10.0).round() as u64;
    format!("{}:{:02}.{}", tenths / 600, tenths / 10 % 60, tenths % 10)
}

fn format_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Writes recording `id` to `out` (a file, written whole or not at all)
/// or to stdout: a terminal recording as the plain asciicast, a desktop
/// recording as a WebM video (see [`crate::desktop_export`]). The first
/// line tells which.
pub(crate) async fn export(
    client: &Client,
    id: &str,
    out: Option<&Path>,
    fps: u32,
) -> anyhow::Result<()> {
    let mut stream = client
        .recording_cast(id)
        .await
        .with_context(|| format!("fetching recording {id}"))?;
    let mut first = Vec::new();
    while !first.contains(&b'\n') {
        match stream.next().await? {
            Some(chunk) => first.extend_from_slice(&chunk),
            None => break,
        }
    }
    let header_end = first
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(first.len());
    let header = match std::str::from_utf8(&first[..header_end]) {
        Ok(line) => Header::parse(line)?,
        Err(_) => None,
    };
    match header {
        Some(h) => export_desktop(id, &h, first, stream, out, fps).await,
        None => export_cast(id, first, stream, out).await,
    }
}

/// The asciicast as it comes (`first`: what was read of it already).
async fn export_cast(
    id: &str,
    first: Vec<u8>,
    mut stream: CastStream,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    match out {
        None => {
            crate::out::bytes(&first)?;
            while let Some(chunk) = stream.next().await? {
                crate::out::bytes(&chunk)?;
            }
        }
        Some(path) => {
            let mut tmp = temp_beside(path)?;
            tmp.write_all(&first)?;
            while let Some(chunk) = stream.next().await? {
                tmp.write_all(&chunk)?;
            }
            persist(tmp, path)?;
            eprintln!("recording {id} written to {}", path.display());
        }
    }
    Ok(())
}

/// A desktop recording replayed and encoded as WebM into `out`.
async fn export_desktop(
    id: &str,
    header: &Header,
    mut pending: Vec<u8>,
    mut stream: CastStream,
    out: Option<&Path>,
    fps: u32,
) -> anyhow::Result<()> {
    let Some(path) = out else {
        bail!("recording {id} is a desktop session: give the video file with -o FILE.webm");
    };
    let tmp = temp_beside(path)?;
    let mut exporter = Exporter::new(BufWriter::new(tmp.as_file()), fps);
    let mut header_seen = false;
    let mut ended = false;
    while !ended {
        match stream.next().await? {
            Some(chunk) => pending.extend_from_slice(&chunk),
            None => ended = true,
        }
        let mut used = 0;
        while let Some(nl) = pending[used..].iter().position(|&b| b == b'\n') {
            let line = &pending[used..used + nl];
            used += nl + 1;
            if std::mem::replace(&mut header_seen, true) {
                exporter.line(std::str::from_utf8(line).context("the recording is not UTF-8")?)?;
            }
        }
        pending.drain(..used);
        if ended && !pending.is_empty() && header_seen {
            exporter.line(std::str::from_utf8(&pending).context("the recording is not UTF-8")?)?;
        }
    }
    let (file, summary) = exporter.finish()?;
    file.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", path.display()))?;
    persist(tmp, path)?;
    eprintln!(
        "recording {id} ({}, desktop) written to {} as WebM/VP9: {}x{}, {:.1} s, {} frames",
        if header.title.is_empty() {
            "untitled"
        } else {
            &header.title
        },
        path.display(),
        summary.width,
        summary.height,
        summary.duration_secs,
        summary.frames
    );
    Ok(())
}

/// A temporary file in `path`'s directory, renamed over it when complete.
pub(crate) fn temp_beside(path: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))
}

pub(crate) fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// When each event is shown: recorded time divided by the speed, with
/// pauses longer than the idle limit shortened to it.
#[derive(Debug)]
pub(crate) struct Schedule {
    speed: f64,
    idle_limit: Option<f64>,
    last_recorded: f64,
    at: f64,
}

impl Schedule {
    pub(crate) fn new(speed: f64, idle_limit: Option<f64>) -> Self {
        Self {
            speed,
            idle_limit,
            last_recorded: 0.0,
            at: 0.0,
        }
    }

    /// Seconds after the start of playback to show an event recorded at `t`.
    pub(crate) fn place(&mut self, t: f64) -> f64 {
        let mut gap = (t - self.last_recorded).max(0.0);
        if let Some(limit) = self.idle_limit {
            gap = gap.min(limit);
        }
        self.last_recorded = t.max(self.last_recorded);
        self.at += gap / self.speed;
        self.at
    }
}

/// One asciicast event line: `[time, code, data]`.
fn parse_event(line: &str) -> anyhow::Result<(f64, String, String)> {
    let (t, code, data): (f64, String, String) =
        serde_json::from_str(line).with_context(|| format!("not an asciicast event: {line}"))?;
    Ok((t, code, data))
}

/// Plays the recording's output in this terminal.
pub(crate) async fn play(
    client: &Client,
    id: &str,
    speed: f64,
    idle_limit: Option<f64>,
) -> anyhow::Result<()> {
    let mut stream = client
        .recording_cast(id)
        .await
        .with_context(|| format!("fetching recording {id}"))?;
    let start = tokio::time::Instant::now();
    let mut schedule = Schedule::new(speed, idle_limit);
    let mut pending = Vec::new();
    let mut header_seen = false;
    while let Some(chunk) = stream.next().await? {
        pending.extend_from_slice(&chunk);
        while let Some(nl) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=nl).collect();
            let line = std::str::from_utf8(&line)
                .context("the recording is not UTF-8")?
                .trim_end();
            if line.is_empty() {
                continue;
            }
            if !header_seen {
                header_seen = true;
                if Header::parse(line)?.is_some() {
                    bail!(
                        "recording {id} is a desktop session: play it in the web console, or \
                         export it as a video with jg recordings export {id} -o FILE.webm"
                    );
                }
                let h: serde_json::Value =
                    serde_json::from_str(line).context("the recording has no asciicast header")?;
                if h["version"] != 2 {
                    bail!("unsupported asciicast version {}", h["version"]);
                }
                if let (Some(w), Some(hh)) = (h["width"].as_u64(), h["height"].as_u64()) {
                    eprintln!("playing {id} ({w}x{hh}) at {speed}x; Ctrl-C to stop");
                }
                continue;
            }
            let (t, code, data) = parse_event(line)?;
            let at = start + Duration::from_secs_f64(schedule.place(t));
            if code == "o" {
                tokio::time::sleep_until(at).await;
                crate::out::bytes(data.as_bytes())?;
            }
        }
    }
    if !header_seen {
        bail!("recording {id} is empty");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_scales_by_speed_and_caps_idle_time() {
        let mut s = Schedule::new(2.0, None);
        assert_eq!(s.place(1.0), 0.5);
        assert_eq!(s.place(3.0), 1.5);
        let mut s = Schedule::new(1.0, Some(2.0));
        assert_eq!(s.place(0.5), 0.5);
        // A 100 s pause plays as 2 s.
        assert_eq!(s.place(100.5), 2.5);
        assert_eq!(s.place(101.0), 3.0);
        // Out-of-order times never move playback backwards.
        assert_eq!(s.place(100.0), 3.0);
    }

    #[test]
    fn events_parse_and_garbage_is_named() {
        let (t, c, d) = parse_event(r#"[1.5, "o", "hi\r\n"]"#).unwrap();
        assert_eq!((t, c.as_str(), d.as_str()), (1.5, "o", "hi\r\n"));
        let err = parse_event("{\"x\":1}").unwrap_err();
        assert!(format!("{err:#}").contains("not an asciicast event"));
    }

    #[test]
    fn the_table_shows_length_and_notes() {
        let r = Recording {
            id: "rec_1".into(),
            session_id: "ses_1".into(),
            username: "alice".into(),
            endpoint: "web-1".into(),
            started_at: "2026-11-23T10:00:00Z".into(),
            ended_at: None,
            duration_secs: 3725.4,
            width: 120,
            height: 40,
            input_recorded: true,
            interrupted: false,
            kind: Default::default(),
        };
        let out = render(&[r]);
        let row = out.lines().nth(1).unwrap();
        assert!(row.contains("1h02m05s"), "{out}");
        assert!(row.contains("live,keystrokes"), "{out}");
        assert!(row.contains("120x40"), "{out}");
    }

    #[test]
    fn search_hits_show_session_user_endpoint_and_moment() {
        use jumpgate_api_types::recording_search::SearchMatch;
        let r = Recording {
            id: "rec_1".into(),
            session_id: "ses_1".into(),
            username: "alice".into(),
            endpoint: "web-1".into(),
            started_at: "2026-11-23T10:00:00Z".into(),
            ended_at: Some("2026-11-23T10:05:00Z".into()),
            duration_secs: 300.0,
            width: 80,
            height: 24,
            input_recorded: false,
            interrupted: false,
            kind: Default::default(),
        };
        let hit = RecordingHit {
            recording: r,
            matches: vec![SearchMatch {
                offset_secs: 75.26,
                stream: SearchStream::Output,
                snippet: "$ rm -rf /var/lib/x".into(),
            }],
            more: true,
        };
        let out = render_hits(&[hit]);
        let row = out.lines().nth(1).unwrap();
        for want in [
            "rec_1",
            "ses_1",
            "alice",
            "web-1",
            "1:15.3",
            "output",
            "rm -rf /var/lib/x",
        ] {
            assert!(row.contains(want), "{want}: {out}");
        }
        assert!(out.contains("(more matches)"), "{out}");
        let long = format!("{}rm -rf /var/lib{}", "a".repeat(40), "b".repeat(40));
        let mid = middle(&long, 58);
        assert!(
            mid.contains("rm -rf /var/lib") && mid.chars().count() <= 58,
            "{mid}"
        );
        assert_eq!(format_offset(0.04), "0:00.0");
        assert_eq!(format_offset(3600.0), "60:00.0");
    }
}
