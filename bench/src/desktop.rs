//! `--desktop`: remote desktop figures, Jumpgate and x11vnc side by side in
//! one run on the same Xvfb workloads (issue #12).
//!
//! One 1920×1080 Xvfb (display number claimed at run time, killed at the
//! end) holds every workload; for each workload x11vnc is measured, then
//! Jumpgate, one after the other (never at the same time, so neither takes
//! CPU from the other's figures):
//!
//! - **full screen**: [`xclients`]' painter repaints the whole screen at 30
//!   fps with content that does not compress trivially (a moving
//!   block-noise texture over a gradient, fresh random blocks every frame)
//!   and stamps the frame number into the corner, so the frames the viewer
//!   was shown can be counted;
//! - **scrolling**: an `xterm` (200×60) printing 400 lines a second;
//! - **typing**: `xdotool type` at 10 characters a second into another
//!   `xterm`;
//! - **click**: a click sent from the viewer side on [`xclients`]' clicker,
//!   a square that changes colour on every press, timed until the new colour
//!   arrives in the viewer's picture;
//! - **idle**: nothing changes.
//!
//! The viewers ([`viewer`]) decode everything they count: x11vnc through a
//! minimal RFB 3.8 client ([`rfb`], a measurement client only), Jumpgate
//! through a real desktop session (gateway and agent processes, `--display`
//! on the agent, the client crate's session path as `jg` takes it) whose
//! packets are drawn with `jumpgate_codec::Canvas`, a `FrameAck` sent for
//! every `Video`. "Pixel-exact" compares the viewer's picture with the
//! screen read back with `GetImage` (the cursor is not part of either:
//! both send it separately).
//!
//! Server CPU is user + system time of x11vnc / the agent (with their
//! children) from `/proc`; the gateway's CPU is divided by the megabits it
//! relayed (both directions at the viewer).

pub(crate) mod pipeline;
mod rfb;
mod takeback;
mod viewer;
pub(crate) mod xclients;

use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_net::dial::ServerUrl;
use jumpgate_net::tls::{self, Trust};
use jumpgate_test_support::xvfb::Xvfb;
use tokio::process::{Child, Command};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

use super::{Bins, LogCounts, PASSWORD, clock_ticks, free_port, machine_jiffies, tree_cpu};
use viewer::{Counts, Viewer};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
/// How long a viewer may take to show a static screen exactly.
const SETTLE: Duration = Duration::from_secs(30);
/// Scrolling: lines per chunk and chunks per second.
const SCROLL_LINES: u32 = 20;
const SCROLL_CHUNKS_PER_SEC: u32 = 20;
/// Typing: characters per second.
const TYPING_CPS: u32 = 10;
const TYPING_XTERM: (i32, i32) = (1240, 400);

/// The desktop benchmark's settings (from the command line).
#[derive(Debug, Clone)]
pub(crate) struct Opts {
    /// Seconds of each changing workload, per system.
    pub(crate) seconds: u64,
    /// Seconds of the idle measurement, per system.
    pub(crate) idle_seconds: u64,
    /// Clicks of the input-to-pixel measurement, per system.
    pub(crate) clicks: usize,
    /// Repetitions of the take-back-control measurement (Jumpgate).
    pub(crate) take_backs: usize,
    /// Frames per second of the full-screen painter.
    pub(crate) paint_hz: u32,
    /// Skip x11vnc / Jumpgate.
    pub(crate) no_x11vnc: bool,
    pub(crate) no_jumpgate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    FullScreen,
    Scrolling,
    Typing,
    Click,
    Idle,
}

impl Workload {
    const ALL: [Workload; 5] = [
        Workload::FullScreen,
        Workload::Scrolling,
        Workload::Typing,
        Workload::Click,
        Workload::Idle,
    ];
}

/// The figures of one workload on one system.
#[derive(Debug, Default, Clone)]
struct Figures {
    seconds: f64,
    counts: Counts,
    server_cpu: f64,
    relay_cpu: Option<f64>,
    busy_cores: f64,
    painted_fps: Option<f64>,
    /// Connect → the viewer shows the (static) screen exactly.
    first_exact: f64,
    /// The workload stopped → the viewer shows the screen exactly.
    exact_after: Option<f64>,
    rtts: Vec<f64>,
    clicks: Vec<f64>,
}

// ------------------------------------------------------------- the screen

/// The bench's own connection to the display, to read the screen back.
struct ScreenReader {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

impl ScreenReader {
    fn new(display: &str) -> Result<Self> {
        let (conn, screen) = x11rb::connect(Some(display))?;
        let root = conn.setup().roots[screen].root;
        Ok(Self { conn, root })
    }

    /// The whole screen, BGRx.
    fn grab(&self) -> Result<Vec<u8>> {
        tokio::task::block_in_place(|| {
            let reply = self
                .conn
                .get_image(
                    ImageFormat::Z_PIXMAP,
                    self.root,
                    0,
                    0,
                    WIDTH as u16,
                    HEIGHT as u16,
                    !0,
                )?
                .reply()?;
            if reply.data.len() != (WIDTH * HEIGHT * 4) as usize {
                bail!("GetImage gave {} bytes", reply.data.len());
            }
            Ok(reply.data)
        })
    }

    /// The screen once it stopped changing (two reads 150 ms apart agree).
    async fn stable(&self) -> Result<Arc<Vec<u8>>> {
        let mut last = self.grab()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let now = self.grab()?;
            if viewer::same_rgb(&now, &last) {
                return Ok(Arc::new(now));
            }
            if Instant::now() > deadline {
                bail!("the screen kept changing");
            }
            last = now;
        }
    }
}

// ----------------------------------------------------------- the workloads

/// The X clients on the display.
struct Desk {
    xvfb: Xvfb,
    screen: ScreenReader,
    /// The scrolling xterm's writer (a shell loop, stopped between runs).
    scroll_pid: i32,
    clients: Vec<std::process::Child>,
    painter: Option<std::process::Child>,
    painted: Arc<AtomicU64>,
    /// Button presses the clicker has had.
    presses: usize,
    _dir: tempfile::TempDir,
}

impl Drop for Desk {
    fn drop(&mut self) {
        for c in self.clients.iter_mut().chain(self.painter.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        signal(self.scroll_pid, rustix::process::Signal::KILL);
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

impl Desk {
    async fn start() -> Result<Desk> {
        if !jumpgate_test_support::xvfb::have_tools() {
            bail!("the desktop benchmark needs Xvfb, xdotool, xterm and x11-apps");
        }
        let xvfb = tokio::task::block_in_place(|| Xvfb::sized(WIDTH, HEIGHT));
        let screen = ScreenReader::new(&xvfb.display)?;
        let dir = tempfile::tempdir()?;
        let pidfile = dir.path().join("scroll.pid");
        let script = format!(
            "echo $$ > {pid}; kill -STOP $$; i=1; while :; do \
             seq -f '%06g the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ' $i $((i+{n}-1)); \
             i=$((i+{n})); sleep {pause}; done",
            pid = pidfile.display(),
            n = SCROLL_LINES,
            pause = 1.0 / f64::from(SCROLL_CHUNKS_PER_SEC),
        );
        let mut clients = vec![
            xvfb.spawn(
                "xterm",
                &["-geometry", "200x60+0+0", "-e", "sh", "-c", &script],
            ),
            xvfb.spawn(
                "xterm",
                &[
                    "-geometry",
                    &format!("80x20+{}+{}", TYPING_XTERM.0, TYPING_XTERM.1),
                    "-e",
                    "cat",
                ],
            ),
        ];
        let exe = std::env::current_exe()?;
        clients.push(
            std::process::Command::new(&exe)
                .args(["--desktop-client", "clicker", "--desktop-display"])
                .arg(&xvfb.display)
                .stdout(Stdio::null())
                .spawn()?,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let scroll_pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break pid;
            }
            if Instant::now() > deadline {
                bail!("the scrolling xterm did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let desk = Desk {
            xvfb,
            screen,
            scroll_pid,
            clients,
            painter: None,
            painted: Arc::default(),
            presses: 0,
            _dir: dir,
        };
        // Everything drawn: xterm windows and the clicker's colour.
        let (x, y) = clicker_centre();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let px = desk.screen.grab()?;
            let at = (y as usize * WIDTH as usize + x as usize) * 4;
            let want = xclients::CLICKER_COLOURS[0];
            if px[at..at + 3] == [want as u8, (want >> 8) as u8, (want >> 16) as u8] {
                break;
            }
            if Instant::now() > deadline {
                bail!("the clicker window did not appear");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        desk.screen.stable().await?;
        Ok(desk)
    }

    fn display(&self) -> &str {
        &self.xvfb.display
    }

    /// Starts the painter and stops it (SIGSTOP) once it has drawn.
    async fn start_painter(&mut self, hz: u32) -> Result<()> {
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args(["--desktop-client", "painter", "--desktop-display"])
            .arg(self.display())
            .arg("--desktop-paint-hz")
            .arg(hz.to_string())
            .stdout(Stdio::piped())
            .spawn()?;
        let out = child.stdout.take().context("painter stdout")?;
        let painted = Arc::clone(&self.painted);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("frames ").and_then(|n| n.parse().ok()) {
                    painted.store(n, Ordering::Relaxed);
                }
            }
        });
        let pid = child.id() as i32;
        self.painter = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.painted.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                bail!("the painter did not draw");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        signal(pid, rustix::process::Signal::STOP);
        Ok(())
    }

    fn painter_pid(&self) -> Option<i32> {
        self.painter.as_ref().map(|c| c.id() as i32)
    }

    fn stop_painter(&mut self) {
        if let Some(mut c) = self.painter.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Types `n` characters into the typing xterm at [`TYPING_CPS`]: all but
    /// the last with one `xdotool type`, the last with its own `xdotool key`
    /// after the usual pause. Returns when the last key was about to be
    /// sent (the start of that `xdotool`, a few ms early for both systems).
    async fn type_text(&self, n: usize) -> Result<Instant> {
        let text: String = "the quick brown fox jumps over the lazy dog. "
            .chars()
            .cycle()
            .take(n.saturating_sub(1))
            .collect();
        let (x, y) = (TYPING_XTERM.0 + 200, TYPING_XTERM.1 + 100);
        let status = Command::new("xdotool")
            .env("DISPLAY", self.display())
            .env_remove("XAUTHORITY")
            .args(["mousemove", &x.to_string(), &y.to_string()])
            .args(["type", "--delay", &(1000 / TYPING_CPS).to_string(), &text])
            .status()
            .await?;
        if !status.success() {
            bail!("xdotool type failed: {status}");
        }
        tokio::time::sleep(Duration::from_millis(u64::from(1000 / TYPING_CPS))).await;
        let last = Instant::now();
        let status = Command::new("xdotool")
            .env("DISPLAY", self.display())
            .env_remove("XAUTHORITY")
            .args(["key", "x"])
            .status()
            .await?;
        if !status.success() {
            bail!("xdotool key failed: {status}");
        }
        Ok(last)
    }
}

fn clicker_centre() -> (u32, u32) {
    let half = u32::from(xclients::CLICKER_SIZE) / 2;
    (
        xclients::CLICKER_X as u32 + half,
        xclients::CLICKER_Y as u32 + half,
    )
}

// -------------------------------------------------------------- the systems

// One or two per run: the size of a variant costs nothing here.
#[allow(clippy::large_enum_variant)]
enum System {
    X11vnc {
        port: u16,
        child: Child,
    },
    Jumpgate {
        client: jumpgate_client::Client,
        gateway: Child,
        agent: Child,
        _dir: tempfile::TempDir,
    },
    /// The fallback: capture → encode alone ([`pipeline`]).
    Pipeline {
        port: u16,
        child: Child,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::X11vnc { .. } => "x11vnc",
            System::Jumpgate { .. } => "Jumpgate",
            System::Pipeline { .. } => "JG pipeline*",
        }
    }

    async fn x11vnc(display: &str) -> Result<System> {
        let port = free_port()?;
        let mut child = Command::new("x11vnc")
            .args([
                "-localhost",
                "-rfbport",
                &port.to_string(),
                "-display",
                display,
            ])
            .args(["-nopw", "-forever", "-shared"])
            .env_remove("XAUTHORITY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("x11vnc (Debian: x11vnc)")?;
        super::wait_for_port(port, "x11vnc", &mut child).await?;
        Ok(System::X11vnc { port, child })
    }

    async fn pipeline(display: &str) -> Result<System> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--desktop-client", "pipeline", "--desktop-display", display])
            .env_remove("XAUTHORITY")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = child.stdout.take().context("pipeline stdout")?;
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(out));
        let port = lines
            .next_line()
            .await?
            .context("the pipeline printed no port")?
            .parse()?;
        Ok(System::Pipeline { port, child })
    }

    async fn jumpgate(display: &str) -> Result<System> {
        let bins = Bins::here()?;
        let help = Command::new(&bins.jumpgate)
            .args(["agent", "--help"])
            .output()
            .await?;
        if !String::from_utf8_lossy(&help.stdout).contains("--display") {
            bail!(
                "this `jumpgate agent` has no --display (no desktop sessions yet): {}",
                bins.jumpgate.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let log = LogCounts::default();
        let (gateway, url, fingerprint) =
            super::start_gateway(&bins, dir.path(), "127.0.0.1:0", &log, None).await?;
        let admin = |args: &[&str]| {
            let mut c = std::process::Command::new(&bins.jumpgate);
            c.args(["admin", "--data-dir"])
                .arg(dir.path().join("data"))
                .args(args);
            c
        };
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD)?;
        let out = admin(&[
            "create-user",
            "operator",
            "--role",
            "admin",
            "--password-file",
        ])
        .arg(&pw)
        .output()?;
        if !out.status.success() {
            bail!("create-user: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = admin(&["enroll-token"]).output()?;
        if !out.status.success() {
            bail!("enroll-token: {}", String::from_utf8_lossy(&out.stderr));
        }
        let token = String::from_utf8(out.stdout)?;
        let agent = Command::new(&bins.jumpgate)
            .args(["agent", "--server", &url, "--ca-fingerprint", &fingerprint])
            .args([
                "--name",
                "bench",
                "--enroll-token",
                token.trim(),
                "--state-dir",
            ])
            .arg(dir.path().join("agent"))
            .args(["--display", display])
            .env_remove("XAUTHORITY")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()?;
        let server: ServerUrl = url.parse()?;
        let fp: tls::Fingerprint = fingerprint.parse()?;
        let anon = jumpgate_client::Client::new(server, &Trust::Pinned(fp), None)?;
        let login = anon.login("operator", PASSWORD, None).await?;
        let client = anon.with_token(login.token);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let online = client
                .endpoints()
                .await?
                .iter()
                .any(|e| e.name == "bench" && e.online);
            if online {
                break;
            }
            if Instant::now() > deadline {
                bail!("the benchmark agent never came online");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Unattended: no consent prompt on the benchmark's screen.
        let _: serde_json::Value = client
            .post_json(
                "/api/v1/groups",
                &serde_json::json!({"name": "bench-desktop", "consent": "none"}),
            )
            .await
            .context("creating a group with consent none")?;
        client.set_endpoint_group("bench", "bench-desktop").await?;
        Ok(System::Jumpgate {
            client,
            gateway,
            agent,
            _dir: dir,
        })
    }

    async fn connect(&self) -> Result<Viewer> {
        match self {
            System::X11vnc { port, .. } => Viewer::rfb(*port).await,
            System::Jumpgate { client, .. } => Viewer::jumpgate(client, "bench").await,
            System::Pipeline { port, .. } => Viewer::pipeline(*port).await,
        }
    }

    /// The process doing the capture and encoding.
    fn server_pid(&self) -> Option<u32> {
        match self {
            System::X11vnc { child, .. } => child.id(),
            System::Jumpgate { agent, .. } => agent.id(),
            System::Pipeline { child, .. } => child.id(),
        }
    }

    /// The process relaying (the gateway), if any.
    fn relay_pid(&self) -> Option<u32> {
        match self {
            System::X11vnc { .. } | System::Pipeline { .. } => None,
            System::Jumpgate { gateway, .. } => gateway.id(),
        }
    }
}

// ------------------------------------------------------------ measurement

/// CPU seconds of a process tree so far.
fn cpu(pid: Option<u32>, ticks: f64) -> f64 {
    pid.map_or(0.0, |p| tree_cpu(&[p], ticks))
}

async fn measure(
    desk: &mut Desk,
    system: &System,
    workload: Workload,
    opts: &Opts,
    ticks: f64,
) -> Result<Figures> {
    let mut fig = Figures::default();
    let start = Instant::now();
    let mut viewer = system.connect().await?;
    let reference = desk.screen.stable().await?;
    let at = viewer
        .expect(viewer::equals(reference, WIDTH, HEIGHT))
        .wait(SETTLE)
        .await
        .context("the first screen")?;
    fig.first_exact = at.saturating_duration_since(start).as_secs_f64();
    // Let the lossless refinement of the first screen finish.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let c0 = viewer.counts();
    let (server0, relay0) = (
        cpu(system.server_pid(), ticks),
        cpu(system.relay_pid(), ticks),
    );
    let (busy0, total0) = machine_jiffies();
    let painted0 = desk.painted.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let run = Duration::from_secs(opts.seconds);
    let mut last_change = None;
    match workload {
        Workload::FullScreen => {
            let pid = desk.painter_pid().context("no painter")?;
            signal(pid, rustix::process::Signal::CONT);
            pings_for(&mut viewer, run).await?;
            signal(pid, rustix::process::Signal::STOP);
        }
        Workload::Scrolling => {
            signal(desk.scroll_pid, rustix::process::Signal::CONT);
            pings_for(&mut viewer, run).await?;
            signal(desk.scroll_pid, rustix::process::Signal::STOP);
        }
        Workload::Typing => {
            last_change = Some(
                desk.type_text(opts.seconds as usize * TYPING_CPS as usize)
                    .await?,
            );
        }
        Workload::Click => {
            let (x, y) = clicker_centre();
            viewer.pointer(x as u16, y as u16, false).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            for i in 0..opts.clicks {
                desk.presses += 1;
                let colour =
                    xclients::CLICKER_COLOURS[desk.presses % xclients::CLICKER_COLOURS.len()];
                let expect = viewer.expect(viewer::pixel_near(x, y, colour, 40));
                let sent = Instant::now();
                viewer.pointer(x as u16, y as u16, true).await?;
                let at = expect
                    .wait(Duration::from_secs(10))
                    .await
                    .with_context(|| format!("click {i}: the new colour never arrived"))?;
                fig.clicks
                    .push(at.saturating_duration_since(sent).as_secs_f64());
                viewer.pointer(x as u16, y as u16, false).await?;
                // Irregular gaps, 30–90 ms.
                tokio::time::sleep(Duration::from_millis(30 + (i as u64 * 37) % 61)).await;
            }
        }
        Workload::Idle => {
            tokio::time::sleep(Duration::from_secs(opts.idle_seconds)).await;
        }
    }
    let stopped = Instant::now();
    fig.seconds = stopped.duration_since(t0).as_secs_f64();
    let c1 = viewer.counts();
    fig.server_cpu = cpu(system.server_pid(), ticks) - server0;
    fig.relay_cpu = system.relay_pid().map(|p| cpu(Some(p), ticks) - relay0);
    let (busy1, total1) = machine_jiffies();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    fig.busy_cores = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores;
    if workload == Workload::FullScreen {
        let painted = desk.painted.load(Ordering::Relaxed) - painted0;
        fig.painted_fps = Some(painted as f64 / fig.seconds);
    }
    fig.counts = Counts {
        bytes_in: c1.bytes_in - c0.bytes_in,
        bytes_out: c1.bytes_out - c0.bytes_out,
        updates: c1.updates - c0.updates,
        area: c1.area - c0.area,
        frames: c1.frames - c0.frames,
        skipped: c1.skipped - c0.skipped,
        unreadable: c1.unreadable - c0.unreadable,
        video: c1.video - c0.video,
        tiles: c1.tiles - c0.tiles,
    };
    fig.rtts = viewer.take_rtts();
    if matches!(workload, Workload::Scrolling | Workload::Typing) {
        let reference = desk.screen.stable().await?;
        let expect = viewer.expect(viewer::equals(Arc::clone(&reference), WIDTH, HEIGHT));
        match expect.wait(SETTLE).await {
            Ok(at) => {
                let from = last_change.unwrap_or(stopped);
                fig.exact_after = Some(at.saturating_duration_since(from).as_secs_f64());
            }
            Err(e) => {
                let off = viewer
                    .picture()
                    .map_or(0, |(px, _, _)| viewer::differing(&px, &reference));
                eprintln!(
                    "  {} {workload:?}: not pixel-exact ({off} pixels differ): {e:#}",
                    system.name()
                );
            }
        }
    }
    if let Some(why) = viewer.ended() {
        eprintln!(
            "  {} {workload:?}: the viewer stopped: {why}",
            system.name()
        );
    }
    viewer.close().await;
    Ok(fig)
}

/// The take-back-control figures (see [`takeback`]): the endpoint moved
/// to a group with consent `notify` for one session (so the agent shows its
/// indicator), then back.
async fn measure_take_back(
    desk: &Desk,
    system: &System,
    client: &jumpgate_client::Client,
    reps: usize,
) -> Result<takeback::TakeBack> {
    let _: serde_json::Value = client
        .post_json(
            "/api/v1/groups",
            &serde_json::json!({"name": "bench-notify", "consent": "notify"}),
        )
        .await
        .context("creating a group with consent notify")?;
    client.set_endpoint_group("bench", "bench-notify").await?;
    let viewer = system.connect().await?;
    let figures = takeback::measure(desk, &viewer, reps).await;
    viewer.close().await;
    client.set_endpoint_group("bench", "bench-desktop").await?;
    figures
}

/// Waits `run`, sending a `Ping` every 250 ms (Jumpgate; a no-op for RFB).
async fn pings_for(viewer: &mut Viewer, run: Duration) -> Result<()> {
    let end = Instant::now() + run;
    while Instant::now() < end {
        viewer.ping().await?;
        tokio::time::sleep(Duration::from_millis(250).min(end - Instant::now())).await;
    }
    Ok(())
}

// ---------------------------------------------------------------- printing

fn pct(v: &[f64], p: f64) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

struct Table {
    names: Vec<&'static str>,
}

impl Table {
    fn header(&self) {
        print!("  {:<46}", "");
        for n in &self.names {
            print!("{n:>14}");
        }
        println!();
    }

    fn row(&self, label: &str, values: &[Option<f64>], decimals: usize) {
        print!("  {label:<46}");
        for v in values {
            match v {
                Some(v) if v.is_finite() => print!("{:>14.*}", decimals, v),
                _ => print!("{:>14}", "—"),
            }
        }
        println!();
    }
}

fn print_workload(table: &Table, workload: Workload, figs: &[Figures], opts: &Opts) {
    let title = match workload {
        Workload::FullScreen => format!(
            "full-screen change, {} fps painter ({} s)",
            opts.paint_hz, opts.seconds
        ),
        Workload::Scrolling => format!(
            "scrolling text: xterm 200x60, {} lines/s ({} s)",
            SCROLL_LINES * SCROLL_CHUNKS_PER_SEC,
            opts.seconds
        ),
        Workload::Typing => format!(
            "typing: xdotool into an xterm, {TYPING_CPS} characters/s ({} s)",
            opts.seconds
        ),
        Workload::Click => format!(
            "input to pixel: click at the viewer → new colour at the viewer ({} clicks)",
            opts.clicks
        ),
        Workload::Idle => format!("idle ({} s)", opts.idle_seconds),
    };
    println!("\n{title}");
    let col = |f: &dyn Fn(&Figures) -> Option<f64>| figs.iter().map(f).collect::<Vec<_>>();
    let per_s = |f: &Figures, v: u64| Some(v as f64 / f.seconds);
    let kbps = |f: &Figures| Some(f.counts.bytes_in as f64 * 8.0 / f.seconds / 1000.0);
    match workload {
        Workload::Idle => {
            table.row(
                "bytes per minute to the viewer",
                &col(&|f| Some(f.counts.bytes_in as f64 * 60.0 / f.seconds)),
                0,
            );
            table.row(
                "bytes per minute from the viewer",
                &col(&|f| Some(f.counts.bytes_out as f64 * 60.0 / f.seconds)),
                0,
            );
            table.row(
                "server CPU, % of a core",
                &col(&|f| Some(f.server_cpu / f.seconds * 100.0)),
                2,
            );
            return;
        }
        Workload::Click => {
            table.row(
                "p50, ms",
                &col(&|f| pct(&f.clicks, 50.0).map(|v| v * 1e3)),
                1,
            );
            table.row(
                "p99, ms",
                &col(&|f| pct(&f.clicks, 99.0).map(|v| v * 1e3)),
                1,
            );
            table.row(
                "max, ms",
                &col(&|f| pct(&f.clicks, 100.0).map(|v| v * 1e3)),
                1,
            );
            return;
        }
        _ => {}
    }
    if workload == Workload::FullScreen {
        table.row(
            "frames painted per second (the painter)",
            &col(&|f| f.painted_fps),
            1,
        );
        table.row(
            "distinct frames shown per second (viewer)",
            &col(&|f| per_s(f, f.counts.frames)),
            1,
        );
        table.row(
            "painted frames never shown, per second",
            &col(&|f| per_s(f, f.counts.skipped)),
            1,
        );
        table.row(
            "updates with an unreadable frame number, per s",
            &col(&|f| per_s(f, f.counts.unreadable)),
            1,
        );
    }
    table.row(
        "updates per second (viewer)",
        &col(&|f| per_s(f, f.counts.updates)),
        1,
    );
    table.row(
        "screens of pixels drawn per second",
        &col(&|f| Some(f.counts.area as f64 / f64::from(WIDTH * HEIGHT) / f.seconds)),
        2,
    );
    table.row("kbit/s to the viewer", &col(&kbps), 0);
    table.row(
        "kbit/s from the viewer",
        &col(&|f| Some(f.counts.bytes_out as f64 * 8.0 / f.seconds / 1000.0)),
        1,
    );
    if matches!(workload, Workload::Scrolling | Workload::Typing) {
        table.row(
            "pixel-exact after it stops changing, ms",
            &col(&|f| f.exact_after.map(|v| v * 1e3)),
            0,
        );
    }
    table.row(
        "server CPU, % of a core",
        &col(&|f| Some(f.server_cpu / f.seconds * 100.0)),
        1,
    );
    table.row(
        "server CPU per update, ms",
        &col(&|f| (f.counts.updates > 0).then(|| f.server_cpu / f.counts.updates as f64 * 1e3)),
        2,
    );
    table.row(
        "gateway CPU per Mbit relayed, ms",
        &col(&|f| {
            let mbit = (f.counts.bytes_in + f.counts.bytes_out) as f64 * 8.0 / 1e6;
            f.relay_cpu.filter(|_| mbit > 0.01).map(|c| c / mbit * 1e3)
        }),
        2,
    );
    table.row(
        "round trip Ping → Pong during it, p50 ms",
        &col(&|f| pct(&f.rtts, 50.0).map(|v| v * 1e3)),
        1,
    );
    table.row(
        "machine busy during it, cores",
        &col(&|f| Some(f.busy_cores)),
        2,
    );
}

// --------------------------------------------------------------------- run

pub(crate) async fn run(opts: &Opts) -> Result<()> {
    let ticks = clock_ticks();
    let mut desk = Desk::start().await?;
    let mut systems = Vec::new();
    if !opts.no_x11vnc {
        systems.push(System::x11vnc(desk.display()).await?);
    }
    if !opts.no_jumpgate {
        match System::jumpgate(desk.display()).await {
            Ok(s) => systems.push(s),
            Err(e) => {
                println!("Jumpgate through gateway and agent not measured: {e:#}");
                println!(
                    "  * JG pipeline: Jumpgate's capture → encode pipeline alone instead (a child process of the bench, \
                     packets over a loopback socket: no gateway, no agent, no TLS)"
                );
                systems.push(System::pipeline(desk.display()).await?);
            }
        }
    }
    if systems.is_empty() {
        bail!("nothing to measure");
    }
    let x11vnc_version = std::process::Command::new("x11vnc")
        .arg("-version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_default();
    let (busy0, total0) = machine_jiffies();
    let began = Instant::now();
    println!(
        "Jumpgate desktop benchmark — {} cores, Xvfb {WIDTH}x{HEIGHT} on {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        desk.display()
    );
    println!(
        "  x11vnc {x11vnc_version}: -localhost -nopw -forever -shared, watched by an RFB 3.8 client in this process (ZRLE, CopyRect, Raw; cursor apart)"
    );
    if systems.iter().any(|s| matches!(s, System::Jumpgate { .. })) {
        println!(
            "  Jumpgate: gateway + agent (--display) processes, a desktop session through the client crate, drawn with jumpgate_codec::Canvas here"
        );
    }
    let mut all = Vec::new();
    for workload in Workload::ALL {
        if workload == Workload::FullScreen {
            desk.start_painter(opts.paint_hz).await?;
        }
        let mut figs = Vec::new();
        for system in &systems {
            eprintln!("  measuring {workload:?} on {}", system.name());
            figs.push(measure(&mut desk, system, workload, opts, ticks).await?);
        }
        if workload == Workload::FullScreen {
            desk.stop_painter();
        }
        all.push((workload, figs));
    }
    let mut take_back = Vec::new();
    for system in &systems {
        take_back.push(match system {
            System::Jumpgate { client, .. } if opts.take_backs > 0 => {
                eprintln!("  measuring take back control on {}", system.name());
                Some(measure_take_back(&desk, system, client, opts.take_backs).await?)
            }
            _ => None,
        });
    }
    let table = Table {
        names: systems.iter().map(System::name).collect(),
    };
    println!();
    table.header();
    for (workload, figs) in &all {
        print_workload(&table, *workload, figs, opts);
    }
    if take_back.iter().any(Option::is_some) {
        println!(
            "\ntake back control: the shortcut pressed at the endpoint while the viewer moves the pointer every {} ms ({} times)",
            takeback::MOTION_EVERY.as_millis(),
            opts.take_backs
        );
        let col = |f: &dyn Fn(&takeback::TakeBack) -> Option<f64>| {
            take_back
                .iter()
                .map(|t| t.as_ref().and_then(f))
                .collect::<Vec<_>>()
        };
        for (label, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
            table.row(
                &format!("last technician input applied after it, {label} ms"),
                &col(&|t| pct(&t.last_input, p).map(|v| v * 1e3)),
                1,
            );
        }
        table.row(
            "technician told (ControlState), p50 ms",
            &col(&|t| pct(&t.told, 50.0).map(|v| v * 1e3)),
            1,
        );
        table.row(
            "pointer moves seen before the press, fewest",
            &col(&|t| Some(t.fewest_before as f64)),
            0,
        );
    }
    let first: Vec<Option<f64>> = (0..systems.len())
        .map(|i| {
            let v: Vec<f64> = all.iter().map(|(_, f)| f[i].first_exact).collect();
            pct(&v, 50.0).map(|s| s * 1e3)
        })
        .collect();
    println!();
    table.row(
        "session start → first pixel-exact screen, p50 ms",
        &first,
        0,
    );
    let (busy1, total1) = machine_jiffies();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "\n  the machine was busy {:.2} of {cores} cores on average over the {:.0} s of measurement",
        (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64 * cores,
        began.elapsed().as_secs_f64()
    );
    drop(systems);
    drop(desk);
    Ok(())
}
