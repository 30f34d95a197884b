//! The encoder against the crate's reference decoder (libvpx decode +
//! lossless tiles): pixel-exact after the refinement, bounded error before,
//! nothing when idle, a new stream on a resize, less output on a slow link.

#[path = "support/synth.rs"]
mod synth;

use std::time::{Duration, Instant};

use jumpgate_codec::{Canvas, Codec, Config, Encoder, Error, Frame, Packet, Rect};
use synth::{Motion, Screen, Terminal};

const TICK: Duration = Duration::from_millis(33);

/// (mean absolute error per channel, share of channel values off by more than 24).
fn error(canvas: &Canvas, s: &Screen) -> (f64, f64) {
    assert_eq!((canvas.width(), canvas.height()), (s.w, s.h));
    let (mut sum, mut far, mut n) = (0u64, 0u64, 0u64);
    for (a, b) in canvas.pixels().chunks_exact(4).zip(s.data.chunks_exact(4)) {
        for k in 0..3 {
            let d = u64::from(a[k].abs_diff(b[k]));
            sum += d;
            far += u64::from(d > 24);
            n += 1;
        }
    }
    (sum as f64 / n as f64, far as f64 / n as f64)
}

fn exact(canvas: &Canvas, s: &Screen) -> bool {
    (canvas.width(), canvas.height()) == (s.w, s.h)
        && canvas
            .pixels()
            .chunks_exact(4)
            .zip(s.data.chunks_exact(4))
            .all(|(a, b)| a[..3] == b[..3])
}

fn apply(canvas: &mut Canvas, packets: &[Packet]) {
    for p in packets {
        // Through the wire form, as a viewer gets them.
        let p = Packet::parse(&p.to_bytes()).unwrap();
        canvas.apply(&p).unwrap();
    }
}

fn scene(w: u32, h: u32) -> (Screen, Terminal) {
    let mut s = Screen::desktop(w, h);
    let mut t = Terminal::new(24, 20, (w - 48) / 8, (h - 60) / 16, 3);
    t.draw(&mut s);
    (s, t)
}

/// Ticks with no damage until the canvas is exact; returns how many it took.
fn tick_until_exact(
    enc: &mut Encoder,
    canvas: &mut Canvas,
    s: &Screen,
    now: &mut Instant,
) -> usize {
    for n in 1..=60 {
        *now += TICK;
        let ps = enc.encode(&s.frame(), Some(&[]), *now).unwrap();
        apply(canvas, &ps);
        if exact(canvas, s) {
            return n;
        }
    }
    panic!("not pixel-exact after 60 ticks: {:?}", error(canvas, s));
}

fn text_is_exact_after_large_changes(codec: Codec) {
    let (mut s, mut term) = scene(800, 600);
    let mut enc = Encoder::new(Config {
        codec,
        ..Config::default()
    });
    let mut canvas = Canvas::new();
    let mut now = Instant::now();

    let first = enc.encode(&s.frame(), None, now).unwrap();
    assert!(matches!(
        &first[0],
        Packet::StreamStart {
            width: 800,
            height: 600,
            ..
        }
    ));
    assert!(
        matches!(&first[1], Packet::Video { keyframe: true, rects, .. } if rects == &[Rect::new(0, 0, 800, 600)])
    );
    apply(&mut canvas, &first);
    // Before the refinement: the codec's approximation, close but not exact.
    let (mean, far) = error(&canvas, &s);
    assert!(
        !exact(&canvas, &s),
        "a lossy keyframe cannot be exact on this content"
    );
    println!("keyframe error: mean {mean:.2}, far {far:.4}");
    assert!(
        mean < 12.0 && far < 0.2,
        "keyframe error: mean {mean:.2}, far {far:.4}"
    );

    // Scrolling: large changes go out as video deltas.
    let mut deltas = 0;
    for _ in 0..10 {
        now += TICK;
        term.scroll();
        term.draw(&mut s);
        let ps = enc.encode(&s.frame(), Some(&[term.rect()]), now).unwrap();
        deltas += ps
            .iter()
            .filter(|p| {
                matches!(
                    p,
                    Packet::Video {
                        keyframe: false,
                        ..
                    }
                )
            })
            .count();
        apply(&mut canvas, &ps);
        let (mean, far) = error(&canvas, &s);
        println!("scrolling error: mean {mean:.2}, far {far:.4}");
        assert!(
            mean < 12.0 && far < 0.2,
            "scrolling error: mean {mean:.2}, far {far:.4}"
        );
    }
    assert!(deltas >= 9, "{deltas} delta frames for 10 scrolls");
    assert!(!exact(&canvas, &s));
    // Typing into tiles the viewer holds from video: lossless, and those
    // tiles end exact too (not only the typed pixels).
    now += TICK;
    let dirty = term.type_chars(2);
    term.draw(&mut s);
    let ps = enc.encode(&s.frame(), Some(&dirty), now).unwrap();
    assert!(
        ps.iter().all(|p| matches!(p, Packet::Tile { .. })),
        "{ps:?}"
    );
    apply(&mut canvas, &ps);
    // The changes stop: lossless refinement makes it exact.
    let ticks = tick_until_exact(&mut enc, &mut canvas, &s, &mut now);
    assert!(ticks <= 15, "{ticks} ticks to exact");
    assert_eq!(enc.refine_due(), None);
}

#[test]
fn vp9_static_text_ends_pixel_exact_and_is_close_before() {
    text_is_exact_after_large_changes(Codec::Vp9);
}

#[test]
fn vp8_static_text_ends_pixel_exact_and_is_close_before() {
    text_is_exact_after_large_changes(Codec::Vp8);
}

#[test]
fn typing_goes_out_as_lossless_tiles_exact_at_once() {
    let (mut s, mut term) = scene(640, 360);
    let mut enc = Encoder::new(Config::default());
    let mut canvas = Canvas::new();
    let mut now = Instant::now();
    apply(&mut canvas, &enc.encode(&s.frame(), None, now).unwrap());
    tick_until_exact(&mut enc, &mut canvas, &s, &mut now);
    for _ in 0..20 {
        now += TICK;
        let dirty = term.type_chars(2);
        term.draw(&mut s);
        let ps = enc.encode(&s.frame(), Some(&dirty), now).unwrap();
        assert!(!ps.is_empty());
        assert!(
            ps.iter().all(|p| matches!(p, Packet::Tile { .. })),
            "{ps:?}"
        );
        let bytes: usize = ps.iter().map(Packet::len).sum();
        assert!(bytes < 4000, "{bytes} bytes for two characters");
        apply(&mut canvas, &ps);
        assert!(exact(&canvas, &s));
    }
}

#[test]
fn an_idle_screen_sends_nothing() {
    let (mut s, _) = scene(640, 360);
    let mut enc = Encoder::new(Config::default());
    let mut canvas = Canvas::new();
    let mut now = Instant::now();
    apply(&mut canvas, &enc.encode(&s.frame(), None, now).unwrap());
    tick_until_exact(&mut enc, &mut canvas, &s, &mut now);
    let sent = enc.bytes_sent();
    for n in 0..200 {
        now += TICK;
        // With damage saying nothing changed, and without damage (full compare).
        let dirty: Option<&[Rect]> = if n % 2 == 0 { Some(&[]) } else { None };
        let ps = enc.encode(&s.frame(), dirty, now).unwrap();
        assert!(ps.is_empty(), "idle tick {n} sent {ps:?}");
    }
    assert_eq!(enc.bytes_sent(), sent);
    assert_eq!(enc.refine_due(), None);
    // Positive control: one changed pixel is seen, even without damage.
    s.put(5, 5, [255, 0, 0]);
    now += TICK;
    let ps = enc.encode(&s.frame(), None, now).unwrap();
    assert_eq!(ps.len(), 1, "{ps:?}");
    apply(&mut canvas, &ps);
    assert!(exact(&canvas, &s));
}

#[test]
fn a_resolution_change_starts_a_new_stream_with_a_keyframe() {
    let (s, _) = scene(640, 360);
    let mut enc = Encoder::new(Config::default());
    let mut canvas = Canvas::new();
    let mut now = Instant::now();
    apply(&mut canvas, &enc.encode(&s.frame(), None, now).unwrap());
    tick_until_exact(&mut enc, &mut canvas, &s, &mut now);
    // Odd sizes too (chroma planes round up).
    for (w, h) in [(1024, 768), (801, 603)] {
        let (big, _) = scene(w, h);
        now += TICK;
        let ps = enc.encode(&big.frame(), None, now).unwrap();
        assert_eq!(
            ps[0],
            Packet::StreamStart {
                width: w as u16,
                height: h as u16,
                codec: "vp09.00.41.08".into()
            }
        );
        assert!(
            matches!(&ps[1], Packet::Video { keyframe: true, rects, .. } if rects == &[Rect::new(0, 0, w, h)])
        );
        apply(&mut canvas, &ps);
        assert_eq!((canvas.width(), canvas.height()), (w, h));
        let (mean, _) = error(&canvas, &big);
        assert!(mean < 12.0, "{mean}");
        tick_until_exact(&mut enc, &mut canvas, &big, &mut now);
    }
    // A forced keyframe restarts the stream at the same size.
    enc.force_keyframe();
    let (big, _) = scene(801, 603);
    now += TICK;
    let ps = enc.encode(&big.frame(), Some(&[]), now).unwrap();
    assert!(matches!(ps[0], Packet::StreamStart { .. }));
    assert!(matches!(ps[1], Packet::Video { keyframe: true, .. }));
}

#[test]
fn heavy_motion_is_coded_smaller_drawn_at_screen_size_and_ends_exact() {
    // A budget no frame meets: every large change is coded reduced, one
    // halving per frame down to a quarter (the keyframe and the first
    // delta, before any cost is known, are full size).
    let (w, h) = (640, 360);
    let mut s = Screen::desktop(w, h);
    let motion = Motion::new(w, h);
    let paint = |s: &mut Screen, t: u32| {
        motion.draw(s, t);
        // A white square at a fixed place: drawn scaled wrongly, it would
        // land elsewhere.
        s.fill(400, 200, 96, 64, [255, 255, 255]);
    };
    paint(&mut s, 0);
    let mut enc = Encoder::new(Config {
        video_budget: Duration::ZERO,
        ..Config::default()
    });
    let mut canvas = Canvas::new();
    let mut now = Instant::now();
    apply(&mut canvas, &enc.encode(&s.frame(), None, now).unwrap());
    let mut shifts = Vec::new();
    for t in 1..=8 {
        now += TICK;
        paint(&mut s, t);
        let (ps, stats) = enc.encode_with_stats(&s.frame(), None, now).unwrap();
        assert_eq!(stats.video_frames, 1, "{stats:?}");
        assert!(
            !ps.iter().any(|p| matches!(
                p,
                Packet::StreamStart { .. } | Packet::Video { keyframe: true, .. }
            )),
            "no keyframe, no new stream for a size change: {ps:?}"
        );
        shifts.push(stats.video_shift);
        apply(&mut canvas, &ps);
        assert_eq!((canvas.width(), canvas.height()), (w, h));
        let (mean, far) = error(&canvas, &s);
        println!(
            "t {t}: coded at 1/{}, mean error {mean:.2}, far {far:.4}",
            1 << stats.video_shift
        );
        assert!(
            mean < 16.0 && far < 0.3,
            "t {t}: mean {mean:.2}, far {far:.4}"
        );
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 4) as usize;
            canvas.pixels()[i..i + 3].to_vec()
        };
        assert!(px(448, 232).iter().all(|&c| c > 200), "{:?}", px(448, 232));
        assert!(px(448, 120).iter().any(|&c| c < 200), "{:?}", px(448, 120));
    }
    // The keyframe's encode time is the first cost estimate: motion is
    // coded smaller from its first frame after it, a quarter from the next.
    assert_eq!(shifts, [1, 2, 2, 2, 2, 2, 2, 2]);
    // The motion stops: the refinement makes every pixel exact, at the
    // screen's full size.
    tick_until_exact(&mut enc, &mut canvas, &s, &mut now);
}

/// Scrolls for `secs` at 30 fps; the link delivers `link_kbps` when given
/// (acknowledgements fed back), otherwise everything at once. Returns
/// (bytes produced while scrolling, video frames, final target, bytes
/// queued at the end, whether the picture ended exact).
fn scroll_over_link(link_kbps: Option<u64>, secs: u32) -> (u64, u32, u32, u64, bool) {
    let (mut s, mut term) = scene(800, 600);
    let mut enc = Encoder::new(Config::default());
    let mut canvas = Canvas::new();
    let start = Instant::now();
    let mut now = start;
    apply(&mut canvas, &enc.encode(&s.frame(), None, now).unwrap());
    let first = enc.bytes_sent();
    let mut frames = 0;
    let delivered = |enc: &Encoder, now: Instant| match link_kbps {
        Some(kbps) => {
            let d = (now - start).as_secs_f64() * kbps as f64 * 1000.0 / 8.0;
            (d as u64).min(enc.bytes_sent())
        }
        None => enc.bytes_sent(),
    };
    for _ in 0..secs * 30 {
        now += TICK;
        if link_kbps.is_some() {
            let d = delivered(&enc, now);
            enc.on_acked(now, d);
        }
        term.scroll();
        term.draw(&mut s);
        let (ps, st) = enc
            .encode_with_stats(&s.frame(), Some(&[term.rect()]), now)
            .unwrap();
        frames += st.video_frames;
        apply(&mut canvas, &ps);
    }
    let bytes = enc.bytes_sent() - first;
    let queued = enc.bytes_sent() - delivered(&enc, now);
    let target = enc.target_kbps();
    // The changes stop: nothing skipped is lost, the picture ends exact.
    let mut ended_exact = false;
    for _ in 0..600 {
        now += TICK;
        if link_kbps.is_some() {
            let d = delivered(&enc, now);
            enc.on_acked(now, d);
        }
        let ps = enc.encode(&s.frame(), Some(&[]), now).unwrap();
        apply(&mut canvas, &ps);
        if exact(&canvas, &s) {
            ended_exact = true;
            break;
        }
    }
    (bytes, frames, target, queued, ended_exact)
}

#[test]
fn a_slow_link_lowers_bitrate_and_frame_rate_without_losing_changes() {
    let (fast_bytes, fast_frames, fast_target, _, fast_exact) = scroll_over_link(None, 4);
    // 120 kbit/s: well below what this scrolling takes unconstrained.
    let (slow_bytes, slow_frames, slow_target, queued, slow_exact) = scroll_over_link(Some(120), 4);
    println!(
        "fast: {fast_bytes} B, {fast_frames} frames; slow: {slow_bytes} B, {slow_frames} frames, target {slow_target}, {queued} B queued"
    );
    assert!(fast_exact && slow_exact);
    assert_eq!(fast_target, Config::default().max_bitrate_kbps);
    assert!(
        slow_target <= 200,
        "target {slow_target} kbit/s on a 120 kbit/s link"
    );
    assert!(
        slow_frames * 2 < fast_frames,
        "{slow_frames} frames on the slow link, {fast_frames} on the fast one"
    );
    assert!(
        slow_bytes * 10 < fast_bytes * 7,
        "{slow_bytes} vs {fast_bytes}"
    );
    // The queue stays bounded (the encoder stops at ~2 × 48 kB in flight
    // plus the frame that crossed it) instead of growing with time.
    assert!(queued < 160_000, "{queued} bytes queued");
}

#[test]
fn a_frame_that_does_not_fit_its_buffer_is_an_error() {
    let data = vec![0u8; 100];
    assert!(matches!(
        Frame::new(10, 10, 40, &data),
        Err(Error::BadFrame(_))
    ));
    assert!(matches!(
        Frame::new(10, 2, 39, &data),
        Err(Error::BadFrame(_))
    ));
    assert!(matches!(
        Frame::new(0, 2, 40, &data),
        Err(Error::BadSize { .. })
    ));
    let f = Frame {
        width: 10,
        height: 10,
        stride: 40,
        data: &data,
    };
    let mut enc = Encoder::new(Config::default());
    assert!(matches!(
        enc.encode(&f, None, Instant::now()),
        Err(Error::BadFrame(_))
    ));
}
