//! Measurement harness for the desktop encoding (see docs/benchmarks.md).
//!
//! `cargo run --release -p jumpgate-codec --example codec-bench [-- FRAMES]`
//!
//! Synthetic 1920×1080 workloads at a simulated 30 frames per second:
//! full-screen motion (a smooth panning picture, and block noise like the
//! desktop benchmark's painter), a scrolling terminal, typing in a
//! terminal, idle.
//! For each encoder candidate it prints the encode time per frame (wall
//! and process CPU), the frame rate that allows, kbit/s while the screen
//! changes, and the time and bytes until the viewer's picture (decoded by
//! the crate's reference decoder) is pixel-exact after the changes stop.
//!
//! Candidates: the crate's encoder (lossless tiles for small changes,
//! VP9 or VP8 for large ones, lossless refinement) with VP9/2 threads
//! (always full size, and with the agent's time budget: reduced size under
//! heavy motion), VP9/1 thread and VP8/2 threads; and dirty rectangles as JPEG (the
//! bounding box of the changed tiles, pure-Rust `jpeg-encoder` q75) with the
//! same lossless tiles for small changes and refinement.

#[path = "../tests/support/synth.rs"]
mod synth;

use std::time::{Duration, Instant};

use jumpgate_codec::{Canvas, Codec, Config, Encoder, Packet, Rect, TILE, lossless_tile};
use rustix::time::{ClockId, clock_gettime};
use synth::{BlockNoise, Motion, Screen, Terminal};

const W: u32 = 1920;
const H: u32 = 1080;
const TICK: Duration = Duration::from_nanos(33_333_333);

fn cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Full,
    /// Harder full-screen motion: the desktop benchmark's painter content.
    Noise,
    Scroll,
    /// 3 characters per frame; a full line is cleared and typing goes on.
    Typing,
    /// The same, but a full line scrolls the whole terminal (an Enter).
    TypingScroll,
}

/// Produces the workload's frames; returns the damage of each step.
struct Scene {
    kind: Workload,
    screen: Screen,
    motion: Option<Motion>,
    noise: Option<BlockNoise>,
    term: Terminal,
    step: u32,
}

impl Scene {
    fn new(kind: Workload) -> Scene {
        let mut screen = Screen::desktop(W, H);
        let mut term = Terminal::new(120, 90, 160, 50, 7);
        let motion = (kind == Workload::Full).then(|| Motion::new(W, H));
        let mut noise = (kind == Workload::Noise).then(|| BlockNoise::new(W, H));
        match (&motion, &mut noise) {
            (Some(m), _) => m.draw(&mut screen, 0),
            (_, Some(n)) => n.draw(&mut screen, 0),
            _ => term.draw(&mut screen),
        }
        Scene {
            kind,
            screen,
            motion,
            noise,
            term,
            step: 0,
        }
    }

    fn advance(&mut self) -> Option<Vec<Rect>> {
        self.step += 1;
        match self.kind {
            Workload::Full => {
                self.motion
                    .as_ref()
                    .expect("motion")
                    .draw(&mut self.screen, self.step);
                None
            }
            Workload::Noise => {
                self.noise
                    .as_mut()
                    .expect("noise")
                    .draw(&mut self.screen, self.step);
                None
            }
            Workload::Scroll => {
                self.term.scroll();
                self.term.draw(&mut self.screen);
                Some(vec![self.term.rect()])
            }
            Workload::Typing | Workload::TypingScroll => {
                let dirty = self
                    .term
                    .type_chars_then(3, self.kind == Workload::TypingScroll);
                self.term.draw(&mut self.screen);
                Some(dirty)
            }
        }
    }
}

#[derive(Default)]
struct Figures {
    frames: u32,
    wall: Duration,
    cpu: Duration,
    worst: Duration,
    bytes_active: u64,
    exact_after: Option<Duration>,
    bytes_to_exact: u64,
    idle_bytes: u64,
    idle_full_compare_ms: f64,
    /// Sum over frames of the mean absolute error per channel of the
    /// viewer's picture while the screen changes.
    error_sum: f64,
}

fn mean_error(canvas: &Canvas, s: &Screen) -> f64 {
    let sum: u64 = canvas
        .pixels()
        .chunks_exact(4)
        .zip(s.data.chunks_exact(4))
        .map(|(a, b)| (0..3).map(|k| u64::from(a[k].abs_diff(b[k]))).sum::<u64>())
        .sum();
    sum as f64 / (s.data.len() / 4 * 3) as f64
}

fn exact(canvas: &Canvas, s: &Screen) -> bool {
    canvas.width() == s.w
        && canvas
            .pixels()
            .chunks_exact(4)
            .zip(s.data.chunks_exact(4))
            .all(|(a, b)| a[..3] == b[..3])
}

fn run_hybrid(
    kind: Workload,
    codec: Codec,
    threads: u32,
    budget: Duration,
    frames: u32,
) -> Figures {
    let mut scene = Scene::new(kind);
    let mut enc = Encoder::new(Config {
        codec,
        threads,
        video_budget: budget,
        ..Config::default()
    });
    let mut canvas = Canvas::new();
    let t0 = Instant::now();
    let mut now = t0;
    let apply = |canvas: &mut Canvas, ps: &[Packet]| {
        for p in ps {
            canvas
                .apply(p)
                .expect("the reference decoder takes every packet");
        }
    };
    // The first frame (stream start) is not part of the figures; settle it.
    let ps = enc.encode(&scene.screen.frame(), None, now).unwrap();
    apply(&mut canvas, &ps);
    for _ in 0..100 {
        now += TICK;
        let ps = enc.encode(&scene.screen.frame(), Some(&[]), now).unwrap();
        apply(&mut canvas, &ps);
    }
    assert!(exact(&canvas, &scene.screen), "settled before the workload");
    let mut f = Figures::default();
    for _ in 0..frames {
        now += TICK;
        let dirty = scene.advance();
        let (w0, c0) = (Instant::now(), cpu());
        let ps = enc
            .encode(&scene.screen.frame(), dirty.as_deref(), now)
            .unwrap();
        let (dw, dc) = (w0.elapsed(), cpu() - c0);
        f.wall += dw;
        f.cpu += dc;
        f.worst = f.worst.max(dw);
        f.frames += 1;
        f.bytes_active += ps.iter().map(|p| p.len() as u64).sum::<u64>();
        apply(&mut canvas, &ps);
        f.error_sum += mean_error(&canvas, &scene.screen);
    }
    // Changes stop: tick until the viewer's picture is exact.
    let stop = now;
    for _ in 0..600 {
        now += TICK;
        let ps = enc.encode(&scene.screen.frame(), Some(&[]), now).unwrap();
        f.bytes_to_exact += ps.iter().map(|p| p.len() as u64).sum::<u64>();
        apply(&mut canvas, &ps);
        if exact(&canvas, &scene.screen) {
            f.exact_after = Some(now - stop);
            break;
        }
    }
    // Idle: 10 s with damage saying nothing changed, then 10 s of full compares.
    let before = enc.bytes_sent();
    for _ in 0..300 {
        now += TICK;
        let _ = enc.encode(&scene.screen.frame(), Some(&[]), now).unwrap();
    }
    let w0 = Instant::now();
    for _ in 0..300 {
        now += TICK;
        let _ = enc.encode(&scene.screen.frame(), None, now).unwrap();
    }
    f.idle_full_compare_ms = w0.elapsed().as_secs_f64() * 1000.0 / 300.0;
    f.idle_bytes = enc.bytes_sent() - before;
    f
}

/// Dirty rectangles as JPEG: the bounding box of the changed tiles, or
/// lossless tiles when the change is small; lossless refinement after.
fn run_jpeg(kind: Workload, frames: u32) -> Figures {
    let mut scene = Scene::new(kind);
    let (cols, rows) = (W.div_ceil(TILE), H.div_ceil(TILE));
    let mut prev = scene.screen.data.clone();
    let mut lossy = vec![false; (cols * rows) as usize];
    let small = Config::default().lossless_max_area;
    let mut f = Figures::default();
    let tile_rect = |i: usize| {
        let (c, r) = (i as u32 % cols, i as u32 / cols);
        Rect::new(
            c * TILE,
            r * TILE,
            TILE.min(W - c * TILE),
            TILE.min(H - r * TILE),
        )
    };
    for _ in 0..frames {
        let _ = scene.advance();
        let (w0, c0) = (Instant::now(), cpu());
        let frame = scene.screen.frame();
        let mut changed = Vec::new();
        for i in 0..(cols * rows) as usize {
            let r = tile_rect(i);
            let differs = (r.y..r.y + r.h).any(|y| {
                let s = ((y * W + r.x) * 4) as usize;
                let e = s + (r.w * 4) as usize;
                frame.data[s..e] != prev[s..e]
            });
            if differs {
                changed.push(i);
            }
        }
        let mut bytes = 0u64;
        let area: u32 = changed
            .iter()
            .map(|&i| tile_rect(i).w * tile_rect(i).h)
            .sum();
        if area > 0 && area <= small {
            for &i in &changed {
                bytes += lossless_tile(&frame, tile_rect(i), 6).unwrap().len() as u64;
                lossy[i] = false;
            }
        } else if area > 0 {
            let (mut x0, mut y0, mut x1, mut y1) = (W, H, 0, 0);
            for &i in &changed {
                let r = tile_rect(i);
                x0 = x0.min(r.x);
                y0 = y0.min(r.y);
                x1 = x1.max(r.x + r.w);
                y1 = y1.max(r.y + r.h);
            }
            let (bw, bh) = (x1 - x0, y1 - y0);
            let mut bgra = Vec::with_capacity((bw * bh * 4) as usize);
            for y in y0..y1 {
                let s = ((y * W + x0) * 4) as usize;
                bgra.extend_from_slice(&frame.data[s..s + (bw * 4) as usize]);
            }
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, 75)
                .encode(&bgra, bw as u16, bh as u16, jpeg_encoder::ColorType::Bgra)
                .unwrap();
            bytes += out.len() as u64 + 10;
            for &i in &changed {
                lossy[i] = true;
            }
        }
        prev.copy_from_slice(frame.data);
        let (dw, dc) = (w0.elapsed(), cpu() - c0);
        f.wall += dw;
        f.cpu += dc;
        f.worst = f.worst.max(dw);
        f.frames += 1;
        f.bytes_active += bytes;
    }
    // Refinement: every tile last sent as JPEG, once, after refine_after.
    let frame = scene.screen.frame();
    let runs = runs(&lossy, cols, rows, &tile_rect);
    for r in runs {
        f.bytes_to_exact += lossless_tile(&frame, r, 6).unwrap().len() as u64;
    }
    f.exact_after = Some(Config::default().refine_after);
    f
}

fn runs(sel: &[bool], cols: u32, rows: u32, tile_rect: &dyn Fn(usize) -> Rect) -> Vec<Rect> {
    let mut out = Vec::new();
    for r in 0..rows {
        let mut c = 0;
        while c < cols {
            if !sel[(r * cols + c) as usize] {
                c += 1;
                continue;
            }
            let start = c;
            while c < cols && sel[(r * cols + c) as usize] {
                c += 1;
            }
            let a = tile_rect((r * cols + start) as usize);
            let b = tile_rect((r * cols + c - 1) as usize);
            out.push(Rect::new(a.x, a.y, b.x + b.w - a.x, a.h));
        }
    }
    out
}

/// A name and (codec, threads, video budget), or `None` for JPEG.
type Candidate = (&'static str, Option<(Codec, u32, Duration)>);

fn main() {
    let frames: u32 = std::env::args()
        .nth(1)
        .map_or(90, |a| a.parse().expect("FRAMES is a number"));
    println!(
        "# codec-bench: 1920x1080, {frames} frames per workload at a simulated 30 fps, {} CPUs\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| workload | candidate | encode ms/frame (wall) | CPU ms/frame | worst ms (wall) | fps by CPU time | kbit/s while changing | pixel-exact after stop | bytes to exact | idle bytes / 10 s | idle full compare ms | mean error while changing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    // The agent's budget at 30 fps (libvpx time per frame before large
    // changes are coded at half or a quarter of the size).
    let agent = Duration::from_micros(500_000 / 30);
    let candidates: [Candidate; 5] = [
        (
            "tiles + VP9, 2 threads",
            Some((Codec::Vp9, 2, Duration::MAX)),
        ),
        (
            "tiles + VP9, 2 threads, 16.7 ms budget (the agent)",
            Some((Codec::Vp9, 2, agent)),
        ),
        (
            "tiles + VP9, 1 thread",
            Some((Codec::Vp9, 1, Duration::MAX)),
        ),
        (
            "tiles + VP8, 2 threads",
            Some((Codec::Vp8, 2, Duration::MAX)),
        ),
        ("tiles + JPEG q75 (jpeg-encoder)", None),
    ];
    let filter = std::env::args().nth(2).unwrap_or_default();
    for kind in [
        Workload::Full,
        Workload::Noise,
        Workload::Scroll,
        Workload::Typing,
        Workload::TypingScroll,
    ] {
        for (name, cand) in candidates {
            if !format!("{kind:?} {name}").contains(&filter) {
                continue;
            }
            let f = match cand {
                Some((codec, threads, budget)) => run_hybrid(kind, codec, threads, budget, frames),
                None => run_jpeg(kind, frames),
            };
            let n = f64::from(f.frames.max(1));
            let wall_ms = f.wall.as_secs_f64() * 1000.0 / n;
            let secs = n * TICK.as_secs_f64();
            println!(
                "| {kind:?} | {name} | {wall_ms:.2} | {:.2} | {:.1} | {:.0} | {:.0} | {} | {} | {} | {} | {} |",
                f.cpu.as_secs_f64() * 1000.0 / n,
                f.worst.as_secs_f64() * 1000.0,
                1000.0 / (f.cpu.as_secs_f64() * 1000.0 / n),
                f.bytes_active as f64 * 8.0 / secs / 1000.0,
                f.exact_after
                    .map_or("never (10 s)".into(), |d| format!("{} ms", d.as_millis())),
                f.bytes_to_exact,
                if cand.is_some() {
                    f.idle_bytes.to_string()
                } else {
                    "-".into()
                },
                if cand.is_some() {
                    format!("{:.2}", f.idle_full_compare_ms)
                } else {
                    "-".into()
                },
                if cand.is_some() {
                    format!("{:.2}", f.error_sum / n)
                } else {
                    "-".into()
                },
            );
        }
    }
}
