use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use jumpgate_codec::{Config, Encoder};

use super::*;

/// Builds a desktop recording in the gateway's format from frames.
struct Rec {
    text: String,
    enc: Encoder,
    start: Instant,
}

impl Rec {
    fn new(w: u32, h: u32) -> Rec {
        let mut text = String::new();
        writeln!(
            text,
            r#"{{"jumpgate":"desktop","version":1,"width":{w},"height":{h},"timestamp":1764579600,"title":"alice@pc"}}"#
        )
        .unwrap();
        Rec {
            text,
            enc: Encoder::new(Config::default()),
            start: Instant::now(),
        }
    }

    fn event(&mut self, t: f64, code: &str, data: &str) {
        writeln!(self.text, "[{t:.6}, \"{code}\", {data}]").unwrap();
    }

    fn info(&mut self, t: f64, w: u32, h: u32) {
        self.event(
            t,
            "i",
            &format!(r#"{{"width":{w},"height":{h},"monitors":[],"codec":"jumpgate-1"}}"#),
        );
    }

    /// Encodes the screen at time `t` (the agent's packets, as recorded).
    fn frame(&mut self, t: f64, w: u32, h: u32, px: &[u8]) -> usize {
        let frame = Frame::new(w, h, w as usize * 4, px).unwrap();
        let now = self.start + Duration::from_secs_f64(t);
        let packets = self.enc.encode(&frame, None, now).unwrap();
        // The viewer drew everything at once (else the encoder holds back).
        self.enc.on_acked(now, self.enc.bytes_sent());
        for p in &packets {
            let b64 = BASE64.encode(p.to_bytes());
            self.event(t, "v", &format!("\"{b64}\""));
        }
        packets.len()
    }
}

/// BGRx: left half red, right half blue, with a green `s`-sized square at (x, y).
fn screen(w: u32, h: u32, sq: (u32, u32, u32)) -> Vec<u8> {
    let mut px = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let in_sq = (sq.0..sq.0 + sq.2).contains(&x) && (sq.1..sq.1 + sq.2).contains(&y);
            let bgr = if in_sq {
                [0, 200, 0]
            } else if x < w / 2 {
                [30, 30, 220]
            } else {
                [220, 40, 30]
            };
            px[i..i + 3].copy_from_slice(&bgr);
        }
    }
    px
}

fn tool(name: &str) -> Command {
    let found = Command::new(name).arg("-version").output().is_ok();
    assert!(
        found,
        "{name} is not installed: install Debian's ffmpeg (scripts/test does)"
    );
    Command::new(name)
}

fn probe(path: &Path) -> serde_json::Value {
    let out = tool("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The frame shown at `at` seconds, as BGRA.
fn frame_at(path: &Path, at: f64, w: u32, h: u32) -> Vec<u8> {
    let out = tool("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at:.3}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "bgra", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), (w * h * 4) as usize, "one {w}x{h} frame");
    out.stdout
}

fn near(px: &[u8], w: u32, x: u32, y: u32, bgr: [u8; 3]) -> bool {
    let i = ((y * w + x) * 4) as usize;
    let ok = px[i..i + 3]
        .iter()
        .zip(bgr)
        .all(|(a, b)| a.abs_diff(b) <= 20);
    assert!(
        ok,
        "pixel ({x},{y}) is {:?}, expected about {bgr:?}",
        &px[i..i + 3]
    );
    ok
}

#[test]
fn a_desktop_recording_exports_as_webm_that_ffmpeg_plays() {
    let (w, h) = (320, 240);
    let mut rec = Rec::new(w, h);
    rec.event(
        0.0,
        "x",
        r#"{"input":"view-only","message":"unattended: no consent asked"}"#,
    );
    rec.info(0.0, w, h);
    // The first picture (stream start + keyframe), then the lossless
    // refinement of what video drew, as the agent sends it.
    assert!(rec.frame(0.05, w, h, &screen(w, h, (40, 40, 32))) >= 2);
    let mut t = 0.05;
    while rec.enc.refine_due().is_some() {
        t += 0.1;
        rec.frame(t, w, h, &screen(w, h, (40, 40, 32)));
    }
    // The square moves (a small change: lossless tiles), then stays.
    rec.frame(1.5, w, h, &screen(w, h, (200, 150, 32)));
    // A pointer shape (16×16 opaque white) shown at the top right.
    let shape = BASE64.encode(vec![255u8; 16 * 16 * 4]);
    rec.event(
        1.6,
        "s",
        &format!(r#"{{"id":7,"width":16,"height":16,"hot_x":0,"hot_y":0,"rgba":"{shape}"}}"#),
    );
    rec.event(1.6, "c", "[280, 10, 7]");
    // The endpoint's screen shrinks to 160×120 at 3 s: centred in the
    // video, black around; the pointer hides.
    rec.event(2.9, "c", "[0, 0, 0]");
    rec.info(3.0, 160, 120);
    rec.frame(3.0, 160, 120, &screen(160, 120, (0, 0, 0)));
    let mut t = 3.0;
    while rec.enc.refine_due().is_some() {
        t += 0.1;
        rec.frame(t, 160, 120, &screen(160, 120, (0, 0, 0)));
    }
    rec.event(4.0, "b", r#"{"from":"technician","bytes":12}"#);
    // Idle until the last event at 9.3 s.
    rec.event(
        9.3,
        "x",
        r#"{"input":"ended","message":"the user ended the session"}"#,
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.webm");
    let mut lines = rec.text.lines();
    let header = Header::parse(lines.next().unwrap()).unwrap().unwrap();
    assert_eq!(header.title, "alice@pc");
    let mut ex = Exporter::new(std::fs::File::create(&path).unwrap(), 10);
    for line in lines {
        ex.line(line).unwrap();
    }
    let (_, summary) = ex.finish().unwrap();
    assert_eq!((summary.width, summary.height), (w, h));
    assert_eq!(summary.bad_packets, 0);
    // 10 fps while things change, one frame a second while idle.
    assert!(summary.frames < 60, "{summary:?}");
    assert!((summary.duration_secs - 9.4).abs() < 0.05, "{summary:?}");

    std::fs::copy(&path, artifacts().join("desktop-export.webm")).unwrap();
    let p = probe(&path);
    let format = &p["format"];
    assert!(
        format["format_name"].as_str().unwrap().contains("webm"),
        "{format}"
    );
    let duration: f64 = format["duration"].as_str().unwrap().parse().unwrap();
    assert!((duration - 9.3).abs() <= 0.1 + 1e-6, "duration {duration}");
    let streams = p["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["codec_type"], "video");
    assert_eq!(streams[0]["codec_name"], "vp9");
    assert_eq!(
        (streams[0]["width"].as_u64(), streams[0]["height"].as_u64()),
        (Some(320), Some(240))
    );

    // ffmpeg decodes every frame without a word.
    let out = tool("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the frames show.
    let f = frame_at(&path, 1.0, w, h);
    near(&f, w, 56, 56, [0, 200, 0]); // the square
    near(&f, w, 100, 200, [30, 30, 220]); // red half
    near(&f, w, 300, 200, [220, 40, 30]); // blue half
    let f = frame_at(&path, 2.5, w, h);
    near(&f, w, 216, 166, [0, 200, 0]); // moved
    near(&f, w, 56, 56, [30, 30, 220]);
    near(&f, w, 288, 18, [255, 255, 255]); // the pointer
    let f = frame_at(&path, 8.0, w, h);
    near(&f, w, 10, 10, [0, 0, 0]); // letterbox
    near(&f, w, 80 + 40, 60 + 90, [30, 30, 220]); // the small screen, centred
    near(&f, w, 80 + 120, 60 + 90, [220, 40, 30]);
}

fn artifacts() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_long_idle_recording_stays_small() {
    let (w, h) = (64, 48);
    let mut rec = Rec::new(w, h);
    rec.frame(0.0, w, h, &screen(w, h, (8, 8, 8)));
    // An hour with nothing on the screen.
    rec.event(3600.0, "x", r#"{"input":"ended"}"#);
    let mut lines = rec.text.lines().skip(1);
    let mut ex = Exporter::new(Cursor::new(Vec::new()), 10);
    for line in lines.by_ref() {
        ex.line(line).unwrap();
    }
    let (file, s) = ex.finish().unwrap();
    // One frame a second, one keyframe in all.
    assert_eq!(s.keyframes, 1, "{s:?}");
    assert!((3600..=3602).contains(&s.frames), "{s:?}");
    assert!((s.duration_secs - 3600.1).abs() < 0.01, "{s:?}");
    assert!(file.into_inner().len() < 200_000);
}

#[test]
fn headers_tell_desktop_recordings_from_asciicast() {
    let h = Header::parse(
        r#"{"jumpgate":"desktop","version":1,"width":8,"height":6,"timestamp":1,"title":"a@b"}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!((h.version, h.title.as_str()), (1, "a@b"));
    assert!(
        Header::parse(r#"{"version":2,"width":80,"height":24}"#)
            .unwrap()
            .is_none()
    );
    assert!(Header::parse("not json").unwrap().is_none());
    let err = Header::parse(r#"{"jumpgate":"desktop","version":2}"#).unwrap_err();
    assert!(
        err.to_string().contains("version 2 is not supported"),
        "{err}"
    );
}

#[test]
fn a_recording_without_a_picture_or_with_garbage_is_an_error() {
    let mut ex = Exporter::new(Cursor::new(Vec::new()), 10);
    ex.line(r#"[0.5, "x", {"input":"view-only"}]"#).unwrap();
    let err = ex.finish().unwrap_err();
    assert!(err.to_string().contains("no picture"), "{err}");

    let mut ex = Exporter::new(Cursor::new(Vec::new()), 10);
    let err = ex.line("[1.0, \"v\"").unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn smaller_pictures_are_centred_and_larger_ones_scaled_down() {
    // 2×2 white into 4×4: centred, black around.
    let src = vec![255u8; 2 * 2 * 4];
    let mut dst = vec![7u8; 4 * 4 * 4];
    fit(&src, 2, 2, &mut dst, 4, 4);
    let at = |d: &[u8], w: u32, x: u32, y: u32| d[((y * w + x) * 4) as usize];
    assert_eq!(at(&dst, 4, 0, 0), 0);
    assert_eq!(at(&dst, 4, 1, 1), 255);
    assert_eq!(at(&dst, 4, 2, 2), 255);
    assert_eq!(at(&dst, 4, 3, 3), 0);
    // 8×2 (left half 0, right half 200) into 4×4: scaled to 4×1, averaged, centred vertically.
    let mut src = vec![0u8; 8 * 2 * 4];
    for y in 0..2 {
        for x in 4..8 {
            src[((y * 8 + x) * 4) as usize] = 200;
        }
    }
    let mut dst = vec![7u8; 4 * 4 * 4];
    fit(&src, 8, 2, &mut dst, 4, 4);
    let row: Vec<u8> = (0..4).map(|x| at(&dst, 4, x, 1)).collect();
    assert_eq!(row, [0, 0, 200, 200]);
    assert_eq!(at(&dst, 4, 0, 0), 0);
    assert_eq!(at(&dst, 4, 3, 2), 0);
}

#[test]
fn the_pointer_is_blended_at_its_hot_spot() {
    let mut px = vec![100u8; 4 * 4 * 4];
    // 2×1 cursor: opaque red, half-transparent white; hot spot (1, 0).
    let img = CursorImage {
        width: 2,
        height: 1,
        hot_x: 1,
        hot_y: 0,
        rgba: vec![255, 0, 0, 255, 255, 255, 255, 128],
    };
    draw_cursor(&mut px, 4, 4, 2, 3, &img);
    let p = |px: &[u8], x: u32, y: u32| px[((y * 4 + x) * 4) as usize..][..3].to_vec();
    assert_eq!(p(&px, 1, 3), [0, 0, 255]); // BGR of red
    assert_eq!(p(&px, 2, 3), [178, 178, 178]);
    assert_eq!(p(&px, 3, 3), [100, 100, 100]);
    // Partly off screen: clipped, no panic.
    draw_cursor(&mut px, 4, 4, -1, -5, &img);
    draw_cursor(&mut px, 4, 4, 4, 3, &img);
    assert_eq!(p(&px, 3, 3), [0, 0, 255]);
}

/// The codec the recording names: an old recording's `jumpgate-1` and a
/// new one's `jumpgate-2` both export; one this jg does not know is an
/// error that names it (not a garbled video).
#[test]
fn a_recording_is_exported_by_the_codec_it_names() {
    let (w, h) = (64, 48);
    for codec in ["jumpgate-1", "jumpgate-2", "jumpgate-9"] {
        let mut rec = Rec::new(w, h);
        rec.event(
            0.0,
            "i",
            &format!(r#"{{"width":{w},"height":{h},"monitors":[],"codec":"{codec}"}}"#),
        );
        rec.frame(0.1, w, h, &screen(w, h, (8, 8, 8)));
        let mut ex = Exporter::new(Cursor::new(Vec::new()), 10);
        let fed: anyhow::Result<()> = rec.text.lines().skip(1).try_for_each(|l| ex.line(l));
        if codec == "jumpgate-9" {
            let err = fed.unwrap_err().to_string();
            assert_eq!(
                err,
                "line 2: the recording's screen codec \"jumpgate-9\" is not one this jg draws (jumpgate-2, jumpgate-1)"
            );
        } else {
            fed.unwrap();
            let (_, s) = ex.finish().unwrap();
            assert!(s.frames > 0, "{codec}: {s:?}");
        }
    }
}
