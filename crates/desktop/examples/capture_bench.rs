//! Capture figures at 1920×1080 (docs/benchmarks.md): full-frame capture
//! through MIT-SHM and GetImage, damage-to-update latency, tile comparison.
//!
//! `cargo run --release -p jumpgate-desktop --example capture_bench [-- FRAMES]`
//! starts its own Xvfb (`-displayfd`, no TCP) and kills it at the end.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jumpgate_desktop::{CaptureOptions, Capturer, DisplayOptions};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, Rectangle, WindowClass,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: usize = std::env::args().nth(1).map_or(Ok(200), |a| a.parse())?;
    let mut xvfb = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            "1920x1080x24",
            "-noreset",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(xvfb.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let display = format!(":{}", line.trim());
    let result = run(&display, frames);
    let _ = xvfb.kill();
    let _ = xvfb.wait();
    result
}

fn run(display: &str, frames: usize) -> Result<(), Box<dyn std::error::Error>> {
    let target = DisplayOptions {
        display: Some(display.into()),
        xauthority: None,
    }
    .resolve()?;
    println!("capture at 1920x1080 on Xvfb {display}, {frames} frames each, one thread");
    for (name, opts) in [
        ("MIT-SHM full frame", CaptureOptions::default()),
        (
            "GetImage full frame",
            CaptureOptions {
                force_get_image: true,
                ..Default::default()
            },
        ),
    ] {
        let mut cap = Capturer::new(&target, opts)?;
        cap.snapshot()?;
        let t = Instant::now();
        for _ in 0..frames {
            cap.snapshot()?;
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / frames as f64;
        println!("{name:<28} {ms:>7.2} ms/frame  ({:.0} fps)", 1000.0 / ms);
    }

    // Where the SHM time goes: the server writing the image into the
    // segment (the request's round trip) and this side's pread copy.
    {
        use std::os::unix::fs::FileExt;
        use x11rb::protocol::shm::ConnectionExt as _;
        let (conn, screen) = x11rb::rust_connection::RustConnection::connect(Some(display))?;
        let root = conn.setup().roots[screen].root;
        let seg = conn.generate_id()?;
        let size = 1920 * 1080 * 4;
        let file = std::fs::File::from(
            conn.shm_create_segment(seg, size as u32, false)?
                .reply()?
                .shm_fd,
        );
        let mut buf = vec![0u8; size];
        let (mut server, mut copy) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..frames {
            let t = Instant::now();
            conn.shm_get_image(root, 0, 0, 1920, 1080, !0, 2, seg, 0)?
                .reply()?;
            let t2 = Instant::now();
            file.read_exact_at(&mut buf, 0)?;
            server += t2 - t;
            copy += t2.elapsed();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / frames as f64;
        println!(
            "  of which ShmGetImage round trip {:.2} ms, pread copy {:.2} ms",
            ms(server),
            ms(copy)
        );
    }

    // Damage to update: from another client sending a 64×32 rectangle until
    // next_update returns a frame holding its pixels.
    let (conn, screen) = x11rb::rust_connection::RustConnection::connect(Some(display))?;
    let root = conn.setup().roots[screen].root;
    let win = conn.generate_id()?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        win,
        root,
        0,
        0,
        1920,
        1080,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .background_pixel(0x202020)
            .override_redirect(1),
    )?;
    conn.map_window(win)?;
    let gc = conn.generate_id()?;
    conn.create_gc(gc, win, &CreateGCAux::new().foreground(0xffffff))?;
    conn.get_input_focus()?.reply()?;
    for (name, opts) in [
        ("damage -> update (SHM)", CaptureOptions::default()),
        (
            "tiles -> update (SHM, 10 ms poll)",
            CaptureOptions {
                force_tiles: true,
                poll_interval: Duration::from_millis(10),
                ..Default::default()
            },
        ),
    ] {
        let mut cap = Capturer::new(&target, opts)?;
        while cap.next_update(Duration::from_millis(200))?.is_some() {}
        let mut lat = Vec::new();
        for i in 0..frames.min(300) {
            let colour = if i % 2 == 0 { 0xffffff } else { 0x000080 };
            // From sending the drawing until the update holds its pixels.
            let t = Instant::now();
            conn.change_gc(
                gc,
                &x11rb::protocol::xproto::ChangeGCAux::new().foreground(colour),
            )?;
            let x = (i as i16 * 37) % 1800;
            conn.poly_fill_rectangle(
                win,
                gc,
                &[Rectangle {
                    x,
                    y: 500,
                    width: 64,
                    height: 32,
                }],
            )?;
            conn.flush()?;
            loop {
                let Some(u) = cap.next_update(Duration::from_secs(2))? else {
                    return Err("no update".into());
                };
                if u.frame.rgb(x as u32 + 1, 501) == colour {
                    break;
                }
            }
            lat.push(t.elapsed());
        }
        lat.sort();
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "{name:<34} p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            p(0.5),
            p(0.99),
            p(1.0)
        );
    }
    Ok(())
}
