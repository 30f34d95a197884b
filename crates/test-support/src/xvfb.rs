//! A real X display for the tests: Xvfb on a free display number claimed
//! with a lock file, no TCP, optionally with openbox as the window manager;
//! driven with xdotool, read back with xprop, photographed with xwd +
//! ImageMagick. Everything is killed on drop. Used by the consent UI's
//! tests, the agent's desktop sessions and the end-to-end desktop tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug)]
pub struct Xvfb {
    server: Child,
    /// The server was stopped ([`Xvfb::stop_server`]): not signalled again
    /// (its pid may belong to another process by now).
    stopped: bool,
    wm: Option<Child>,
    pub display: String,
    lock: PathBuf,
    probe: Option<x11rb::rust_connection::RustConnection>,
}

/// Claims display `n` for this test run: a lock file created exclusively
/// (a lock left by a dead process is taken over), and no X socket present.
fn claim_display(n: u32) -> Option<PathBuf> {
    let lock = std::env::temp_dir().join(format!("jumpgate-test-display-{n}.lock"));
    if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
        || std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
    {
        return None;
    }
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
    };
    let file = match create() {
        Ok(f) => f,
        Err(_) => {
            let owner: Option<u32> = std::fs::read_to_string(&lock)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            // Unreadable (being written) counts as alive; a dead owner's lock is stale.
            let stale =
                owner.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
            if !stale {
                return None;
            }
            let _ = std::fs::remove_file(&lock);
            create().ok()?
        }
    };
    use std::io::Write as _;
    let _ = writeln!(&file, "{}", std::process::id());
    Some(lock)
}

/// Whether the X tools are installed (scripts/test installs them).
pub fn have_tools() -> bool {
    [
        "Xvfb", "xdotool", "openbox", "xprop", "xwininfo", "xsetroot", "xwd", "convert",
    ]
    .iter()
    .all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Xvfb {
    /// Xvfb (1280×800, 24 bit) with openbox running on it.
    pub fn start() -> Self {
        let mut x = Self::bare();
        x.start_wm();
        x
    }

    /// Xvfb (1280×800, 24 bit) alone, no window manager.
    pub fn bare() -> Self {
        Self::sized(1280, 800)
    }

    /// Xvfb of `width`×`height` (24 bit) with openbox running on it.
    pub fn start_sized(width: u32, height: u32) -> Self {
        let mut x = Self::sized(width, height);
        x.start_wm();
        x
    }

    /// Xvfb of `width`×`height` (24 bit) alone, no window manager.
    ///
    /// Xvfb's own `-displayfd` choice is not safe when several start at
    /// once (seen here: two servers both reporting `:0`), so display numbers
    /// are claimed with a lock file of our own (`create_new`), and Xvfb is
    /// started on the claimed number, `-displayfd` only telling when it is
    /// ready (it exits instead when the number is taken by someone else).
    pub fn sized(width: u32, height: u32) -> Self {
        let size = format!("{width}x{height}x24");
        // One start at a time within this test binary.
        static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = STARTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (server, display, lock) = (100..400)
            .find_map(|n| {
                let lock = claim_display(n)?;
                let mut server = Command::new("Xvfb")
                    .args([&format!(":{n}"), "-displayfd", "1", "-screen", "0", &size])
                    .args(["-nolisten", "tcp", "-nolisten", "local", "-noreset"])
                    .args(["+extension", "RANDR"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting Xvfb");
                let mut line = String::new();
                let _ = BufReader::new(server.stdout.take().expect("piped")).read_line(&mut line);
                if line.trim() == n.to_string() {
                    Some((server, format!(":{n}"), lock))
                } else {
                    let _ = server.kill();
                    let _ = server.wait();
                    let _ = std::fs::remove_file(&lock);
                    None
                }
            })
            .expect("a free display number");
        drop(guard);
        let x = Self {
            server,
            stopped: false,
            wm: None,
            display,
            lock,
            probe: None,
        };
        // The number Xvfb reports must lead to it, not to another server.
        let info = x.output("xwininfo", &["-root"]);
        assert!(
            info.contains(&format!("Width: {width}"))
                && info.contains(&format!("Height: {height}")),
            "{} is not our Xvfb: {info}",
            x.display
        );
        // A calm grey desktop instead of black, so screenshots read well.
        let _ = x.cmd("xsetroot", &["-solid", "#5b6775"]).status();
        x
    }

    fn start_wm(&mut self) {
        let wm = Command::new("openbox")
            .args(["--sm-disable"])
            .env("DISPLAY", &self.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting openbox");
        self.wm = Some(wm);
        // Ready once it manages a new window: openbox announces itself on
        // the root window before it handles map requests, and a window
        // mapped in between stays unmapped for good.
        use x11rb::connection::Connection as _;
        use x11rb::protocol::xproto::{ConnectionExt as _, CreateWindowAux, WindowClass};
        let (conn, screen) = x11rb::connect(Some(&self.display)).expect("connecting to Xvfb");
        let root = conn.setup().roots[screen].root;
        let probe = conn.generate_id().expect("id");
        conn.create_window(
            0,
            probe,
            root,
            0,
            0,
            10,
            10,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new(),
        )
        .expect("probe window");
        self.poll("openbox managing windows", || {
            conn.map_window(probe).ok()?;
            conn.flush().ok()?;
            let tree = conn.query_tree(probe).ok()?.reply().ok()?;
            (tree.parent != root).then_some(())
        });
        let _ = conn.destroy_window(probe);
        let _ = conn.flush();
        // The probe's connection stays open as long as the server runs: on
        // disconnecting, its id range would go to the next client while
        // openbox may still act on the destroyed probe's id (seen here: it
        // resized the indicator's first border window to the probe's 10×10).
        self.probe = Some(conn);
    }

    pub fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("DISPLAY", &self.display)
            .env_remove("XAUTHORITY");
        c
    }

    /// Runs a tool, returns its stdout (empty on failure).
    pub fn output(&self, program: &str, args: &[&str]) -> String {
        match self.cmd(program, args).stderr(Stdio::null()).output() {
            Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
            Err(e) => panic!("running {program}: {e}"),
        }
    }

    /// Starts an X client on this display (killed by the caller).
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        self.cmd(program, args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// The display's clipboard text as an X application reads it (`xclip
    /// -o`; empty when nobody owns the clipboard).
    pub fn clipboard(&self) -> String {
        self.output("xclip", &["-o", "-selection", "clipboard"])
    }

    /// Copies `text` to the display's clipboard as an X application does:
    /// the returned `xclip` owns the selection until another owner takes it
    /// or it is dropped (killed).
    pub fn copy_to_clipboard(&self, text: &str) -> ClipboardOwner {
        use std::io::Write as _;
        let mut xclip = self
            .cmd("xclip", &["-quiet", "-i", "-selection", "clipboard"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("xclip: {e}"));
        // Closing its input makes xclip take the selection.
        let mut stdin = xclip.stdin.take().expect("piped");
        stdin.write_all(text.as_bytes()).expect("writing to xclip");
        ClipboardOwner(xclip)
    }

    /// Runs a tool and requires success.
    pub fn run(&self, program: &str, args: &[&str]) {
        let status = self
            .cmd(program, args)
            .status()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(status.success(), "{program} {args:?} failed: {status}");
    }

    /// Polls `f` until it gives a value, failing after [`WAIT`].
    pub fn poll<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {}; windows: {}",
                self.display,
                self.output("xwininfo", &["-root", "-children"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Ids of the visible windows whose title matches the regex `name`.
    pub fn windows(&self, name: &str) -> Vec<String> {
        self.output("xdotool", &["search", "--onlyvisible", "--name", name])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits for exactly one visible window titled like `name`.
    pub fn window(&self, name: &str) -> String {
        self.poll(&format!("window {name:?}"), || {
            let w = self.windows(name);
            (w.len() == 1).then(|| w[0].clone())
        })
    }

    /// A UTF-8 text property of a window (xprop's quoted value).
    pub fn prop(&self, window: &str, name: &str) -> Option<String> {
        let out = self.output("xprop", &["-id", window, name]);
        let start = out.find('"')?;
        let end = out.rfind('"')?;
        (end > start).then(|| out[start + 1..end].to_owned())
    }

    /// The rectangle (x, y, w, h in window coordinates) of button `name`
    /// from the window's `_JUMPGATE_BUTTONS` property.
    pub fn button(&self, window: &str, name: &str) -> (i32, i32, i32, i32) {
        let prop = self
            .prop(window, "_JUMPGATE_BUTTONS")
            .expect("_JUMPGATE_BUTTONS set");
        for entry in prop.split(';') {
            let parts: Vec<&str> = entry.split(' ').collect();
            if parts[0] == name {
                let n: Vec<i32> = parts[1..]
                    .iter()
                    .map(|p| p.parse().expect("number"))
                    .collect();
                return (n[0], n[1], n[2], n[3]);
            }
        }
        panic!("no button {name} in {prop:?}");
    }

    /// Clicks the middle of button `name` of `window` with xdotool (real
    /// pointer motion and button events through XTEST).
    pub fn click(&self, window: &str, name: &str) {
        let (x, y, w, h) = self.button(window, name);
        let (cx, cy) = ((x + w / 2).to_string(), (y + h / 2).to_string());
        self.run("xdotool", &["mousemove", "--window", window, &cx, &cy]);
        self.run("xdotool", &["click", "1"]);
    }

    /// Screen position of a window's top-left corner (and its size).
    pub fn geometry(&self, window: &str) -> (i32, i32, i32, i32) {
        let out = self.output("xwininfo", &["-id", window]);
        let field = |label: &str| -> i32 {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("{label} in {out}"))
        };
        (
            field("Absolute upper-left X:"),
            field("Absolute upper-left Y:"),
            field("Width:"),
            field("Height:"),
        )
    }

    /// The window id under the pointer at screen (x, y), as xdotool sees it.
    pub fn window_at(&self, x: i32, y: i32) -> String {
        self.run("xdotool", &["mousemove", &x.to_string(), &y.to_string()]);
        let out = self.output("xdotool", &["getmouselocation", "--shell"]);
        out.lines()
            .find_map(|l| l.strip_prefix("WINDOW="))
            .expect("WINDOW= in getmouselocation")
            .to_owned()
    }

    /// The colour (0xRRGGBB) of the screen pixel (x, y).
    pub fn pixel(&self, x: i32, y: i32) -> u32 {
        let path = artifacts().join(format!(
            "pixel-{}.xwd",
            self.display.trim_start_matches(':')
        ));
        self.run(
            "sh",
            &["-c", &format!("xwd -root -silent > {}", path.display())],
        );
        let out = Command::new("convert")
            .args([
                &format!("{}[1x1+{x}+{y}]", path.display()),
                "-depth",
                "8",
                "txt:-",
            ])
            .output()
            .expect("convert");
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout);
        // "0,0: (26,115,232)  #1A73E8  srgb(26,115,232)" after a "# ..." header.
        text.split('#')
            .skip(1)
            .find_map(|h| h.get(..6).and_then(|h| u32::from_str_radix(h, 16).ok()))
            .unwrap_or_else(|| panic!("no #RRGGBB in {text:?}"))
    }

    /// Saves the screen, optionally cropped to (x, y, w, h), as a PNG in
    /// target/browser-artifacts/.
    pub fn screenshot(&self, file: &str, crop: Option<(i32, i32, i32, i32)>) -> PathBuf {
        let path = artifacts().join(file);
        let crop = crop
            .map(|(x, y, w, h)| format!("-crop {w}x{h}+{x}+{y} +repage"))
            .unwrap_or_default();
        self.run(
            "sh",
            &[
                "-c",
                &format!(
                    "xwd -root -silent | convert xwd:- {crop} png:{}",
                    path.display()
                ),
            ],
        );
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
            "screenshot written"
        );
        path
    }
}

impl Xvfb {
    /// Stops the X server now (SIGTERM, as at shutdown or logout): the
    /// display goes away under its clients. Returns once it has exited.
    pub fn stop_server(&mut self) {
        self.probe = None;
        if !std::mem::replace(&mut self.stopped, true) {
            stop(&mut self.server);
        }
    }
}

/// An `xclip` holding a display's clipboard ([`Xvfb::copy_to_clipboard`]);
/// killed when dropped.
#[derive(Debug)]
pub struct ClipboardOwner(Child);

impl Drop for ClipboardOwner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.probe = None;
        if let Some(wm) = &mut self.wm {
            stop(wm);
        }
        if !self.stopped {
            stop(&mut self.server);
        }
        let _ = std::fs::remove_file(&self.lock);
    }
}

/// SIGTERM (Xvfb then removes its socket and lock file), SIGKILL after 3 s.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// target/browser-artifacts, where the screenshots go.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-artifacts");
    std::fs::create_dir_all(&dir).expect("creating target/browser-artifacts");
    dir
}
