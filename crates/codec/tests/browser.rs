//! The packets decode in Debian's chromium: `js/desktop-decoder.js` (WebCodecs
//! for VP9/VP8, DecompressionStream for the lossless tiles) draws them on a
//! canvas whose pixels are read back and compared with the source frames.
//! The page is served over loopback (127.0.0.1 is a secure context, which
//! WebCodecs needs); playwright-core is the one installed for the console's
//! browser test (crates/jumpgate/tests/browser, `npm ci` by scripts/test).

#[path = "support/synth.rs"]
mod synth;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jumpgate_codec::{Canvas, Codec, Config, Encoder, Packet};
use synth::{Motion, Screen, Terminal};

const TICK: Duration = Duration::from_millis(33);

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Serves the page, the decoder and the packets to at most `max` requests.
fn serve(packets: Vec<u8>, max: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().take(max) {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Skip the headers.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (status, ctype, body) = match path.as_str() {
                "/index.html" => (
                    "200 OK",
                    "text/html; charset=utf-8",
                    std::fs::read(manifest().join("tests/browser/index.html")).unwrap(),
                ),
                "/desktop-decoder.js" => (
                    "200 OK",
                    "text/javascript",
                    std::fs::read(manifest().join("js/desktop-decoder.js")).unwrap(),
                ),
                "/packets.bin" => ("200 OK", "application/octet-stream", packets.clone()),
                _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    url
}

struct Recorder {
    bytes: Vec<u8>,
    canvas: Canvas,
    /// (step, Rust-decoded BGRA, source) after each step.
    expected: Vec<(u32, Vec<u8>, Screen)>,
}

impl Recorder {
    fn push(&mut self, step: u32, packets: &[Packet]) {
        for p in packets {
            let b = p.to_bytes();
            self.bytes.extend_from_slice(&step.to_le_bytes());
            self.bytes
                .extend_from_slice(&(b.len() as u32).to_le_bytes());
            self.bytes.extend_from_slice(&b);
            self.canvas.apply(p).unwrap();
        }
    }
    fn end_step(&mut self, step: u32, source: &Screen) {
        self.expected
            .push((step, self.canvas.pixels().to_vec(), source.clone()));
    }
}

fn scene(w: u32, h: u32, seed: u64) -> (Screen, Terminal) {
    let mut s = Screen::desktop(w, h);
    let mut t = Terminal::new(16, 16, (w - 32) / 8, (h - 56) / 16, seed);
    t.draw(&mut s);
    (s, t)
}

/// Mean absolute error per channel between RGBA (browser) and BGRx (source).
fn browser_error(rgba: &[u8], s: &Screen) -> (f64, usize) {
    let (mut sum, mut n, mut differing) = (0u64, 0u64, 0usize);
    for (a, b) in rgba.chunks_exact(4).zip(s.data.chunks_exact(4)) {
        let d = [
            a[0].abs_diff(b[2]),
            a[1].abs_diff(b[1]),
            a[2].abs_diff(b[0]),
        ];
        sum += d.iter().map(|&x| u64::from(x)).sum::<u64>();
        n += 3;
        differing += usize::from(d != [0, 0, 0]);
    }
    (sum as f64 / n as f64, differing)
}

#[test]
fn chromium_decodes_keyframes_deltas_and_lossless_tiles_to_the_source_pixels() {
    let mut rec = Recorder {
        bytes: Vec::new(),
        canvas: Canvas::new(),
        expected: Vec::new(),
    };
    let mut now = Instant::now();
    let idle = |enc: &mut Encoder, rec: &mut Recorder, s: &Screen, step: u32, now: &mut Instant| {
        let mut n = 0;
        while enc.refine_due().is_some() {
            *now += TICK;
            let ps = enc.encode(&s.frame(), Some(&[]), *now).unwrap();
            rec.push(step, &ps);
            n += 1;
            assert!(n < 60, "refinement does not end");
        }
    };

    // VP9: keyframe (step 0), scrolling deltas (1), typing tiles (2),
    // refinement (3); a resolution change (4) and its refinement (5).
    let mut enc = Encoder::new(Config::default());
    let (mut s, mut term) = scene(640, 360, 11);
    // A picture-like patch (more than 256 colours per tile): RGB tiles.
    for y in 300..340 {
        for x in 500..620 {
            s.put(
                x,
                y,
                [(x * 7 + y) as u8, ((y * 13) ^ x) as u8, (x * y) as u8],
            );
        }
    }
    rec.push(0, &enc.encode(&s.frame(), None, now).unwrap());
    rec.end_step(0, &s);
    for _ in 0..4 {
        now += TICK;
        term.scroll();
        term.draw(&mut s);
        let ps = enc.encode(&s.frame(), Some(&[term.rect()]), now).unwrap();
        assert!(ps.iter().any(|p| matches!(
            p,
            Packet::Video {
                keyframe: false,
                ..
            }
        )));
        rec.push(1, &ps);
    }
    rec.end_step(1, &s);
    now += TICK;
    let dirty = term.type_chars(2);
    term.draw(&mut s);
    let ps = enc.encode(&s.frame(), Some(&dirty), now).unwrap();
    assert!(ps.iter().all(|p| matches!(p, Packet::Tile { .. })));
    rec.push(2, &ps);
    rec.end_step(2, &s);
    idle(&mut enc, &mut rec, &s, 3, &mut now);
    rec.end_step(3, &s);
    let (s2, _) = scene(480, 272, 12);
    now += TICK;
    rec.push(4, &enc.encode(&s2.frame(), None, now).unwrap());
    rec.end_step(4, &s2);
    idle(&mut enc, &mut rec, &s2, 5, &mut now);
    rec.end_step(5, &s2);
    // VP8: a new stream (6) and its refinement (7).
    let mut enc8 = Encoder::new(Config {
        codec: Codec::Vp8,
        ..Config::default()
    });
    let (s3, _) = scene(640, 360, 13);
    now += TICK;
    rec.push(6, &enc8.encode(&s3.frame(), None, now).unwrap());
    rec.end_step(6, &s3);
    idle(&mut enc8, &mut rec, &s3, 7, &mut now);
    rec.end_step(7, &s3);
    // VP9 under heavy motion with no time to spare: frames coded at half
    // and a quarter of the size, scaled up to the screen (8); exact after
    // the refinement (9).
    let mut enc_r = Encoder::new(Config {
        video_budget: Duration::ZERO,
        ..Config::default()
    });
    let motion = Motion::new(640, 360);
    let mut s4 = Screen::new(640, 360);
    motion.draw(&mut s4, 0);
    now += TICK;
    rec.push(8, &enc_r.encode(&s4.frame(), None, now).unwrap());
    let mut shifts = Vec::new();
    for t in 1..=4 {
        now += TICK;
        motion.draw(&mut s4, t);
        let (ps, stats) = enc_r.encode_with_stats(&s4.frame(), None, now).unwrap();
        shifts.push(stats.video_shift);
        rec.push(8, &ps);
    }
    // The keyframe is the first cost estimate: half size from the first
    // frame after it.
    assert_eq!(shifts, [1, 2, 2, 2]);
    rec.end_step(8, &s4);
    idle(&mut enc_r, &mut rec, &s4, 9, &mut now);
    rec.end_step(9, &s4);

    // Every kind of packet is in the run: both tile formats, keyframes and deltas.
    let mut at = 0;
    let mut kinds = std::collections::BTreeSet::new();
    while at < rec.bytes.len() {
        let len = u32::from_le_bytes(rec.bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        kinds.insert(
            match Packet::parse(&rec.bytes[at + 8..at + 8 + len]).unwrap() {
                Packet::StreamStart { codec, .. } => format!("start {codec}"),
                Packet::Video { keyframe, .. } => format!("video key={keyframe}"),
                Packet::Tile { format, .. } => format!("tile {format:?}"),
            },
        );
        at += 8 + len;
    }
    let kinds: Vec<_> = kinds.into_iter().collect();
    assert_eq!(
        kinds,
        [
            "start vp09.00.41.08",
            "start vp8",
            "tile ZlibPalette",
            "tile ZlibRgb",
            "video key=false",
            "video key=true"
        ],
        "{kinds:?}"
    );
    let url = serve(std::mem::take(&mut rec.bytes), 20);
    let out = tempfile::tempdir().unwrap();
    let playwright = std::env::var_os("JG_PLAYWRIGHT")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest().join("../jumpgate/tests/browser"));
    let chromium = std::env::var("JG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let run = Command::new("node")
        .arg(manifest().join("tests/browser/decode.mjs"))
        .env("JG_URL", &url)
        .env("JG_OUT", out.path())
        .env("JG_CHROMIUM", &chromium)
        .env("JG_PLAYWRIGHT", &playwright)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run node: run ./scripts/test, which installs what the browser tests need");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let report = format!(
        "node exited {}\nstdout:\n{stdout}\nstderr:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success() && stdout.contains("DECODE-TEST DONE"),
        "{report}"
    );
    assert!(stdout.contains("ERRORS=[]"), "{report}");

    for (step, rust_bgra, source) in &rec.expected {
        let size = std::fs::read_to_string(out.path().join(format!("step-{step}.size"))).unwrap();
        assert_eq!(size, format!("{}x{}", source.w, source.h), "step {step}");
        let rgba = std::fs::read(out.path().join(format!("step-{step}.rgba"))).unwrap();
        let (mean, differing) = browser_error(&rgba, source);
        // The browser's picture against the Rust reference decoder's.
        let (mut vs_rust, mut n) = (0u64, 0u64);
        for (a, b) in rgba.chunks_exact(4).zip(rust_bgra.chunks_exact(4)) {
            vs_rust += u64::from(a[0].abs_diff(b[2]))
                + u64::from(a[1].abs_diff(b[1]))
                + u64::from(a[2].abs_diff(b[0]));
            n += 3;
        }
        let vs_rust = vs_rust as f64 / n as f64;
        println!(
            "step {step}: mean error {mean:.3}, {differing} pixels differ, mean vs Rust decoder {vs_rust:.3}"
        );
        match step {
            // Lossy stages: close to the source, and really decoded (an
            // undecoded canvas is black or stale: far off).
            0 | 1 | 2 | 4 | 6 => {
                // (min_quantizer 48: measured 4-8 on these small screens.)
                assert!(mean < 12.0, "step {step}: mean error {mean}");
                assert!(differing > 0, "step {step}: a lossy stage cannot be exact");
                // Chromium's VP9/VP8 decode and colour conversion agree with
                // libvpx + BT.601 limited range (measured: ~0.1).
                assert!(
                    vs_rust < 1.0,
                    "step {step}: {vs_rust} from the Rust decoder"
                );
            }
            // Scaled up from a quarter-size picture: the browser smooths,
            // the Rust decoder takes the nearest pixel (measured: ~4 and
            // ~1.5 on this smooth picture; a picture drawn at the wrong
            // scale is off by tens).
            8 => {
                assert!(mean < 8.0, "step {step}: mean error {mean}");
                assert!(differing > 0, "step {step}: a lossy stage cannot be exact");
                assert!(
                    vs_rust < 6.0,
                    "step {step}: {vs_rust} from the Rust decoder"
                );
            }
            // After the lossless refinement: every pixel exact.
            _ => assert_eq!(differing, 0, "step {step}: {differing} pixels differ"),
        }
    }
}
