//! The desktop benchmark's own X clients, run as child processes of the
//! bench (`--desktop-client painter|clicker --desktop-display :N`) so they
//! are ordinary X applications to both capture paths:
//!
//! - **painter**: a full-screen override-redirect window repainted at
//!   `--desktop-paint-hz` (30 by default) through MIT-SHM (`ShmPutImage` from a memfd it writes with
//!   `pwrite`): a block-noise texture over a colour gradient moving
//!   diagonally, a few hundred fresh random blocks each frame, and the frame
//!   number as a [`MARKER_BITS`]-block black/white marker in the top-left
//!   corner so the viewer side can count the distinct frames it was shown.
//!   Prints `frames N` on stdout twice a second.
//! - **clicker**: a [`CLICKER_SIZE`]-pixel square at ([`CLICKER_X`],
//!   [`CLICKER_Y`]) whose colour steps through [`CLICKER_COLOURS`] on every
//!   button press: the input-to-pixel target.
//! - **stages** (run by hand, not by the bench): the agent's capture and
//!   encoding CPU time per painter frame, see [`stages`].

use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::shm::ConnectionExt as _;
use x11rb::protocol::xproto::{
    ChangeWindowAttributesAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask,
    ImageFormat, WindowClass,
};

/// Blocks of the frame marker (12 bits of frame number, 4 of check).
pub(crate) const MARKER_BITS: u32 = 16;
/// Side of one marker block.
pub(crate) const MARKER_BLOCK: u32 = 24;
/// The click target.
pub(crate) const CLICKER_X: i16 = 1500;
pub(crate) const CLICKER_Y: i16 = 60;
pub(crate) const CLICKER_SIZE: u16 = 96;
/// The click target's colours (0xRRGGBB), one step per button press.
pub(crate) const CLICKER_COLOURS: [u32; 6] =
    [0x2050e0, 0xe04020, 0x20c040, 0xe0c020, 0x8030c0, 0x20c0c0];

const W: usize = 1920;
const H: usize = 1080;
/// How far the texture moves before it repeats.
const TRAVEL: usize = 512;

/// xorshift: fast, deterministic noise (not a security RNG).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The marker value of frame `n`: 12 bits of `n` and a 4-bit check.
pub(crate) fn marker_value(n: u64) -> u16 {
    let c = (n & 0xfff) as u16;
    (c << 4) | marker_check(c)
}

fn marker_check(c: u16) -> u16 {
    (c ^ (c >> 4) ^ (c >> 8) ^ 0x9) & 0xf
}

/// Reads the marker from a BGRx picture (`stride` bytes per row): the
/// frame number modulo 4096, or `None` when it does not check out (a
/// picture half-way between two frames, or no painter on screen).
pub(crate) fn read_marker(pixels: &[u8], stride: usize) -> Option<u16> {
    let mut v = 0u16;
    for i in 0..MARKER_BITS {
        let x = (i * MARKER_BLOCK + MARKER_BLOCK / 2) as usize;
        let y = (MARKER_BLOCK / 2) as usize;
        let at = y * stride + x * 4;
        let p = pixels.get(at..at + 3)?;
        let lum = u32::from(p[0]) + u32::from(p[1]) * 2 + u32::from(p[2]);
        let bit = match lum {
            0..=200 => 0,
            824.. => 1,
            _ => return None,
        };
        v = (v << 1) | bit;
    }
    let c = v >> 4;
    (v & 0xf == marker_check(c)).then_some(c)
}

pub(crate) fn run(which: &str, display: &str, paint_hz: u32) -> Result<()> {
    match which {
        "painter" => painter(display, paint_hz),
        "clicker" => clicker(display),
        "stages" => stages(display, paint_hz),
        other => bail!("unknown desktop client {other:?}"),
    }
}

fn painter(display: &str, hz: u32) -> Result<()> {
    let (conn, screen) = x11rb::connect(Some(display)).context("connecting to the display")?;
    let screen = &conn.setup().roots[screen];
    if (
        usize::from(screen.width_in_pixels),
        usize::from(screen.height_in_pixels),
    ) != (W, H)
    {
        bail!("the painter needs a {W}x{H} screen");
    }
    let win = conn.generate_id()?;
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        0,
        0,
        W as u16,
        H as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new().override_redirect(1),
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, win, &CreateGCAux::new().graphics_exposures(0))?;
    conn.map_window(win)?;

    // Two shared-memory segments, used in turn: the next frame is made
    // while the X server copies the previous one (on the other core), so
    // the painter's rate is the slower of the two, not their sum.
    let size = W * H * 4;
    let mut segments = Vec::new();
    for _ in 0..2 {
        let fd =
            rustix::fs::memfd_create("jumpgate-bench-painter", rustix::fs::MemfdFlags::CLOEXEC)?;
        let file = std::fs::File::from(fd.try_clone()?);
        file.set_len(size as u64)?;
        let seg = conn.generate_id()?;
        conn.shm_attach_fd(seg, fd, true)?.check()?;
        segments.push((file, seg));
    }
    // Per segment: the request whose answer says the server has read it.
    let mut reading = [None, None];

    let (texture, mut noise) = texture();
    let mut frame = vec![0u8; size];
    let period = Duration::from_secs(1) / hz;
    let mut next = Instant::now();
    let mut stdout = std::io::stdout();
    for n in 0u64.. {
        paint(&mut frame, &texture, &mut noise, n);
        let turn = (n % 2) as usize;
        let (file, seg) = &segments[turn];
        let seg = *seg;
        if let Some(read) = reading[turn].take() {
            // The server has read this segment's previous frame.
            x11rb::cookie::Cookie::reply(read)?;
        }
        file.write_all_at(&frame, 0)?;
        conn.shm_put_image(
            win,
            gc,
            W as u16,
            H as u16,
            0,
            0,
            W as u16,
            H as u16,
            0,
            0,
            screen.root_depth,
            ImageFormat::Z_PIXMAP.into(),
            false,
            seg,
            0,
        )?;
        // The server has read the segment once it answers this.
        reading[turn] = Some(conn.get_input_focus()?);
        conn.flush()?;
        // Every frame: the bench reads the count at the start and the end
        // of a measurement (a count reported now and then would be off by
        // up to its interval at each end).
        writeln!(stdout, "frames {}", n + 1)?;
        stdout.flush()?;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > period {
            // More than a frame behind (a loaded machine, or the process
            // was stopped): no catching up in a burst.
            next = now;
        }
        // Less than a frame late: the next frame starts at once, so one
        // slow frame does not lower the rate for good.
    }
    Ok(())
}

/// The painter's texture: 8×8 blocks of noise over a gradient, wider and
/// taller than the screen by TRAVEL so a moving window over it never
/// wraps; and the noise that goes on making fresh blocks.
fn texture() -> (Vec<u8>, Noise) {
    let (tw, th) = (W + TRAVEL, H + TRAVEL);
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut texture = vec![0u8; tw * th * 4];
    let (bw, bh) = (tw / 8, th / 8);
    let blocks: Vec<u64> = (0..bw * bh).map(|_| noise.next()).collect();
    for y in 0..th {
        for x in 0..tw {
            let n = blocks[(y / 8) * bw + x / 8];
            let at = (y * tw + x) * 4;
            let g = [
                (x * 255 / tw) as u8,
                (y * 255 / th) as u8,
                ((x + y) * 255 / (tw + th)) as u8,
            ];
            for c in 0..3 {
                // Half gradient, half noise.
                texture[at + c] = (g[c] / 2).wrapping_add((n >> (c * 8)) as u8 / 2);
            }
        }
    }
    (texture, noise)
}

/// Paints frame `n` of the painter into `frame` (W×H BGRx).
fn paint(frame: &mut [u8], texture: &[u8], noise: &mut Noise, n: u64) {
    let tw = W + TRAVEL;
    let (ox, oy) = ((n as usize * 6) % TRAVEL, (n as usize * 3) % TRAVEL);
    for y in 0..H {
        let src = ((y + oy) * tw + ox) * 4;
        frame[y * W * 4..(y + 1) * W * 4].copy_from_slice(&texture[src..src + W * 4]);
    }
    // Fresh noise: 300 random 16×16 blocks.
    for _ in 0..300 {
        let r = noise.next();
        let (bx, by) = (
            (r as usize % (W / 16)) * 16,
            ((r >> 16) as usize % (H / 16)) * 16,
        );
        let colour = (r >> 32).to_le_bytes();
        for y in by..by + 16 {
            for x in bx..bx + 16 {
                frame[(y * W + x) * 4..(y * W + x) * 4 + 3].copy_from_slice(&colour[..3]);
            }
        }
    }
    draw_marker(frame, marker_value(n));
}

fn draw_marker(frame: &mut [u8], value: u16) {
    let side = MARKER_BLOCK as usize;
    // A grey strip under the marker, one block taller and wider.
    for y in 0..side + side / 2 {
        for x in 0..(MARKER_BITS as usize * side + side / 2) {
            frame[(y * W + x) * 4..(y * W + x) * 4 + 3].copy_from_slice(&[128, 128, 128]);
        }
    }
    for i in 0..MARKER_BITS as usize {
        let on = value >> (MARKER_BITS as usize - 1 - i) & 1 == 1;
        let c = if on { 255 } else { 0 };
        for y in 0..side {
            for x in i * side..(i + 1) * side {
                frame[(y * W + x) * 4..(y * W + x) * 4 + 3].copy_from_slice(&[c, c, c]);
            }
        }
    }
}

/// CPU time (ns) the scheduler has run this process's threads for, all of
/// them (libvpx's own thread included), or only the calling thread.
fn cpu_ns(all: bool) -> u64 {
    // The kernel brings the running thread's count up to date when it
    // yields (schedstat is otherwise as of the last switch).
    std::thread::yield_now();
    let read = |p: &std::path::Path| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    if !all {
        return read(std::path::Path::new("/proc/thread-self/schedstat"));
    }
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| read(&e.path().join("schedstat")))
                .sum()
        })
        .unwrap_or(0)
}

/// The agent's capture → encode work per painted frame, in CPU time
/// (`--desktop-client stages --desktop-display :N --desktop-paint-hz
/// FRAMES`, a 1920×1080 display with nothing else on it): the painter's
/// frames are put on screen one at a time, each captured
/// (`Capturer::next_update`) and encoded with the agent's settings at
/// 30 fps as if 33 ms apart. CPU time, not wall clock, so other work on
/// the machine changes the figures little.
fn stages(display: &str, frames: u32) -> Result<()> {
    use jumpgate_codec::{Config, Encoder, Frame, Rect};
    use jumpgate_desktop::{CaptureOptions, Capturer, DisplayOptions};

    let (conn, screen) = x11rb::connect(Some(display)).context("connecting to the display")?;
    let screen = &conn.setup().roots[screen];
    if (
        usize::from(screen.width_in_pixels),
        usize::from(screen.height_in_pixels),
    ) != (W, H)
    {
        bail!("the stages measurement needs a {W}x{H} screen");
    }
    let win = conn.generate_id()?;
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        0,
        0,
        W as u16,
        H as u16,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new().override_redirect(1),
    )?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, win, &CreateGCAux::new().graphics_exposures(0))?;
    conn.map_window(win)?;
    let size = W * H * 4;
    let fd = rustix::fs::memfd_create("jumpgate-bench-stages", rustix::fs::MemfdFlags::CLOEXEC)?;
    let file = std::fs::File::from(fd.try_clone()?);
    file.set_len(size as u64)?;
    let seg = conn.generate_id()?;
    conn.shm_attach_fd(seg, fd, true)?.check()?;
    conn.get_input_focus()?.reply()?;

    let target = DisplayOptions {
        display: Some(display.into()),
        xauthority: None,
    }
    .resolve()?;
    let (texture, mut noise) = texture();
    let mut frame = vec![0u8; size];
    // The coded size forced (a zero budget: reduced as far as allowed;
    // none: full size), then as the agent chooses it (by libvpx's wall
    // clock time, so it varies with the machine's load).
    let agent = Duration::from_micros(500_000 / 30);
    for (name, budget, max_downscale) in [
        ("full size", Duration::MAX, 0),
        ("half size", Duration::ZERO, 1),
        ("quarter size", Duration::ZERO, 2),
        ("as the agent", agent, 2),
    ] {
        let mut cap = Capturer::new(&target, CaptureOptions::default())?;
        let mut enc = Encoder::new(Config {
            video_budget: budget,
            max_downscale,
            ..Config::default()
        });
        let start = Instant::now();
        let (mut capture_ns, mut encode_ns, mut bytes) = (0u64, 0u64, 0u64);
        let mut shifts = [0u32; 3];
        let warm = 10;
        for n in 0..u64::from(frames) + warm {
            paint(&mut frame, &texture, &mut noise, n);
            file.write_all_at(&frame, 0)?;
            conn.shm_put_image(
                win,
                gc,
                W as u16,
                H as u16,
                0,
                0,
                W as u16,
                H as u16,
                0,
                0,
                screen.root_depth,
                ImageFormat::Z_PIXMAP.into(),
                false,
                seg,
                0,
            )?;
            conn.get_input_focus()?.reply()?;
            let c0 = cpu_ns(false);
            let dirty: Option<Vec<Rect>> = loop {
                let Some(u) = cap.next_update(Duration::from_secs(2))? else {
                    bail!("no update for frame {n}");
                };
                if u.full {
                    break None;
                }
                if u.rects.is_empty() {
                    continue;
                }
                break Some(
                    u.rects
                        .iter()
                        .map(|r| Rect::new(r.x.max(0) as u32, r.y.max(0) as u32, r.width, r.height))
                        .collect(),
                );
            };
            let c1 = cpu_ns(false);
            let p0 = cpu_ns(true);
            let f = cap.frame();
            let picture = Frame::new(f.width, f.height, f.stride, &f.data)?;
            let now = start + Duration::from_micros(33_333 * n);
            let (packets, stats) = enc.encode_with_stats(&picture, dirty.as_deref(), now)?;
            let p1 = cpu_ns(true);
            if n >= warm {
                capture_ns += c1 - c0;
                encode_ns += p1 - p0;
                bytes += packets.iter().map(|p| p.len() as u64).sum::<u64>();
                shifts[stats.video_shift.min(2) as usize] += 1;
            }
        }
        let per = |ns: u64| ns as f64 / 1e6 / f64::from(frames);
        println!(
            "{name:<13} capture {:.2} ms + encode {:.2} ms = {:.2} ms CPU per frame; \
             {:.0} kbit/s at 30 fps; coded full/half/quarter {shifts:?}",
            per(capture_ns),
            per(encode_ns),
            per(capture_ns + encode_ns),
            bytes as f64 * 8.0 * 30.0 / 1000.0 / f64::from(frames),
        );
    }
    Ok(())
}

fn clicker(display: &str) -> Result<()> {
    let (conn, screen) = x11rb::connect(Some(display)).context("connecting to the display")?;
    let screen = &conn.setup().roots[screen];
    let win = conn.generate_id()?;
    conn.create_window(
        screen.root_depth,
        win,
        screen.root,
        CLICKER_X,
        CLICKER_Y,
        CLICKER_SIZE,
        CLICKER_SIZE,
        0,
        WindowClass::INPUT_OUTPUT,
        screen.root_visual,
        &CreateWindowAux::new()
            .background_pixel(CLICKER_COLOURS[0])
            .override_redirect(1)
            .event_mask(EventMask::BUTTON_PRESS),
    )?;
    conn.map_window(win)?;
    conn.flush()?;
    let mut step = 0usize;
    loop {
        if let Event::ButtonPress(_) = conn.wait_for_event()? {
            step += 1;
            let colour = CLICKER_COLOURS[step % CLICKER_COLOURS.len()];
            conn.change_window_attributes(
                win,
                &ChangeWindowAttributesAux::new().background_pixel(colour),
            )?;
            conn.clear_area(false, win, 0, 0, 0, 0)?;
            conn.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_reads_back_and_rejects_a_torn_picture() {
        let mut frame = vec![0u8; W * H * 4];
        for n in [0u64, 1, 77, 4095, 4096 + 5] {
            draw_marker(&mut frame, marker_value(n));
            assert_eq!(read_marker(&frame, W * 4), Some((n & 0xfff) as u16));
        }
        // Half of one frame's blocks over another's: the check fails.
        draw_marker(&mut frame, marker_value(0x123));
        let left = frame[..W * 4 * 30].to_vec();
        draw_marker(&mut frame, marker_value(0x456));
        let half = 8 * MARKER_BLOCK as usize * 4;
        for y in 0..MARKER_BLOCK as usize {
            frame[y * W * 4..y * W * 4 + half].copy_from_slice(&left[y * W * 4..y * W * 4 + half]);
        }
        let torn = read_marker(&frame, W * 4);
        assert_ne!(torn, Some(0x123));
        assert_ne!(torn, Some(0x456));
    }
}
