//! A real Xvfb per test, on a display number it picks itself (`-displayfd`),
//! no TCP, killed on drop; and an x11rb connection for drawing.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jumpgate_desktop::{DisplayOptions, DisplayTarget};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, Rectangle, WindowClass,
};
use x11rb::rust_connection::RustConnection;

pub struct Xvfb {
    child: Child,
    pub display: String,
    pub dir: tempfile::TempDir,
}

impl Xvfb {
    /// `None` (with a clear line) when Xvfb is not installed.
    pub fn start(size: &str) -> Option<Self> {
        Self::start_with(size, &[])
    }

    pub fn start_with(size: &str, extra: &[&str]) -> Option<Self> {
        if !Path::new("/usr/bin/Xvfb").exists() && which("Xvfb").is_none() {
            println!("skipped: Xvfb is not installed (scripts/test installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                size,
                "+extension",
                "RANDR",
                "-noreset",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb printed {line:?} for its display number"));
        Some(Self {
            child,
            display: format!(":{n}"),
            dir,
        })
    }

    pub fn target(&self) -> DisplayTarget {
        DisplayOptions {
            display: Some(self.display.clone()),
            xauthority: None,
        }
        .resolve()
        .expect("connect to Xvfb")
    }

    pub fn conn(&self) -> RustConnection {
        RustConnection::connect(Some(&self.display)).unwrap().0
    }

    /// Runs an X client command against this display; its stdout.
    pub fn run(&self, cmd: &str, args: &[&str]) -> String {
        let out = Command::new(cmd)
            .args(args)
            .env("DISPLAY", &self.display)
            .env_remove("XAUTHORITY")
            .output()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn spawn(&self, cmd: &str, args: &[&str]) -> Child {
        Command::new(cmd)
            .args(args)
            .env("DISPLAY", &self.display)
            .env_remove("XAUTHORITY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.exists())
}

/// An override-redirect window at (x, y) (no window manager moves it),
/// mapped and synced; returns its id.
pub fn window(
    conn: &RustConnection,
    x: i16,
    y: i16,
    w: u16,
    h: u16,
    rgb: u32,
    events: EventMask,
) -> u32 {
    let screen = &conn.setup().roots[0];
    let id = conn.generate_id().unwrap();
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        id,
        screen.root,
        x,
        y,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .background_pixel(rgb)
            .override_redirect(1)
            .event_mask(events),
    )
    .unwrap();
    conn.map_window(id).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
    id
}

/// Fills a rectangle of `win` with `rgb` (24-bit TrueColor: the pixel is the colour).
pub fn fill(conn: &RustConnection, win: u32, x: i16, y: i16, w: u16, h: u16, rgb: u32) {
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, win, &CreateGCAux::new().foreground(rgb))
        .unwrap();
    conn.poly_fill_rectangle(
        win,
        gc,
        &[Rectangle {
            x,
            y,
            width: w,
            height: h,
        }],
    )
    .unwrap();
    conn.free_gc(gc).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
