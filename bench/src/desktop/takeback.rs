//! "Take back control" latency (Jumpgate only): how long technician input
//! still reaches the endpoint's X server after the person there took back
//! control with the indicator's shortcut (Ctrl+Alt+Shift+Escape).
//!
//! One desktop session with consent `notify` (the agent shows its real
//! indicator, `jumpgate agent consent-ui`, on the benchmark's display). Per
//! repetition: the viewer sends pointer motion every [`MOTION_EVERY`], each
//! to a new position; a thread of the bench polls the pointer position
//! (`QueryPointer` every millisecond) and notes when it changed; after
//! [`LEAD`] the bench presses the shortcut through XTEST on its own
//! connection (the time taken just before the press reaches the server);
//! the motion goes on until [`TAIL`] after the technician was told
//! (`ControlState{TakenBack}`). The figure is the last pointer change the
//! technician caused minus the press (0 when none came after it). Then the
//! viewer asks for control again (`RequestControl`) and the prompt's
//! "allow" is clicked with xdotool, ready for the next repetition.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_proto::desktop::{DesktopCommand, InputState};
use jumpgate_proto::session::SessionMsg;
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::Desk;
use super::viewer::Viewer;

/// Technician pointer motion: one event this often.
pub(crate) const MOTION_EVERY: Duration = Duration::from_millis(3);
/// Motion before the shortcut is pressed.
const LEAD: Duration = Duration::from_millis(300);
/// Motion after the technician was told control was taken back.
const TAIL: Duration = Duration::from_millis(300);
/// The technician's row of pointer positions (away from the indicator).
const MOTION_Y: u16 = 700;
const PROMPT_TITLE: &str = "^Jumpgate: remote access request$";
const BAR_TITLE: &str = "^Jumpgate: remote session$";

/// Figures of the repetitions, seconds.
#[derive(Debug, Default)]
pub(crate) struct TakeBack {
    /// Shortcut pressed → last technician input applied by the X server.
    pub(crate) last_input: Vec<f64>,
    /// Shortcut pressed → `ControlState{TakenBack}` at the viewer.
    pub(crate) told: Vec<f64>,
    /// Pointer changes seen before the press, fewest of any repetition
    /// (the positive control: motion did reach the server).
    pub(crate) fewest_before: usize,
}

/// X keycodes of the shortcut's keys: Control_L, Alt_L, Shift_L, Escape.
fn shortcut_codes(conn: &RustConnection) -> Result<[u8; 4]> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
    let per = usize::from(map.keysyms_per_keycode);
    let find = |sym: u32| -> Result<u8> {
        map.keysyms
            .chunks(per)
            .position(|c| c.first() == Some(&sym))
            .map(|i| min + i as u8)
            .with_context(|| format!("no keycode for keysym {sym:#x}"))
    };
    Ok([find(0xffe3)?, find(0xffe9)?, find(0xffe1)?, find(0xff1b)?])
}

/// Presses and releases the shortcut; returns the time just before the
/// press of Escape was sent (the modifiers are already down then).
fn press_shortcut(conn: &RustConnection, codes: [u8; 4]) -> Result<Instant> {
    const PRESS: u8 = 2;
    const RELEASE: u8 = 3;
    let root = conn.setup().roots[0].root;
    for c in &codes[..3] {
        conn.xtest_fake_input(PRESS, *c, 0, root, 0, 0, 0)?;
    }
    conn.get_input_focus()?.reply()?;
    let at = Instant::now();
    conn.xtest_fake_input(PRESS, codes[3], 0, root, 0, 0, 0)?;
    conn.get_input_focus()?.reply()?;
    for c in codes.iter().rev() {
        conn.xtest_fake_input(RELEASE, *c, 0, root, 0, 0, 0)?;
    }
    conn.get_input_focus()?.reply()?;
    Ok(at)
}

/// Polls the pointer position every millisecond until `stop`; the times
/// it changed.
fn watch_pointer(display: String, stop: Arc<AtomicBool>) -> Result<Vec<Instant>> {
    let (conn, screen) = x11rb::connect(Some(&display))?;
    let root = conn.setup().roots[screen].root;
    let mut last = None;
    let mut changes = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let p = conn.query_pointer(root)?.reply()?;
        let now = Instant::now();
        let at = (p.root_x, p.root_y);
        if last.is_some_and(|l| l != at) {
            changes.push(now);
        }
        last = Some(at);
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(changes)
}

async fn control_after(viewer: &Viewer, want: InputState, after: Instant) -> Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((s, at)) = viewer.control()
            && s == want
            && at >= after
        {
            return Ok(at);
        }
        if let Some(why) = viewer.ended() {
            bail!("the session ended: {why}");
        }
        if Instant::now() > deadline {
            bail!("no ControlState {want:?} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A visible window titled like `title`, waited for.
async fn window(desk: &Desk, title: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = tokio::task::block_in_place(|| desk.xvfb.windows(title));
        if let [w] = found.as_slice() {
            return Ok(w.clone());
        }
        if Instant::now() > deadline {
            bail!("no window {title:?} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `reps` repetitions on a session already open with consent `notify`.
pub(crate) async fn measure(desk: &Desk, viewer: &Viewer, reps: usize) -> Result<TakeBack> {
    control_after(
        viewer,
        InputState::Allowed,
        Instant::now() - Duration::from_secs(3600),
    )
    .await?;
    window(desk, BAR_TITLE).await?;
    let (conn, _) = x11rb::connect(Some(desk.display()))?;
    let codes = shortcut_codes(&conn)?;
    let mut out = TakeBack {
        fewest_before: usize::MAX,
        ..TakeBack::default()
    };
    let mut k: u32 = 0;
    for rep in 0..reps {
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (display, stop) = (desk.display().to_owned(), Arc::clone(&stop));
            std::thread::spawn(move || watch_pointer(display, stop))
        };
        let mut tick = tokio::time::interval(MOTION_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let began = Instant::now();
        let mut pressed = None;
        let mut told = None;
        loop {
            tick.tick().await;
            k += 1;
            viewer
                .pointer(100 + (k % 800) as u16, MOTION_Y, false)
                .await?;
            if pressed.is_none() && began.elapsed() >= LEAD {
                pressed = Some(tokio::task::block_in_place(|| {
                    press_shortcut(&conn, codes)
                })?);
            }
            if let Some(p) = pressed {
                if told.is_none()
                    && let Some((InputState::TakenBack, at)) = viewer.control()
                    && at >= p
                {
                    told = Some(at);
                }
                if told.is_some_and(|t| t.elapsed() >= TAIL) {
                    break;
                }
                if p.elapsed() > Duration::from_secs(10) {
                    stop.store(true, Ordering::Relaxed);
                    bail!("repetition {rep}: control was not taken back within 10 s");
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let changes = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the pointer watcher panicked"))??;
        let (pressed, told) = (pressed.expect("pressed"), told.expect("told"));
        let before = changes.iter().filter(|t| **t < pressed).count();
        if before < 10 {
            bail!("repetition {rep}: only {before} pointer changes before the shortcut");
        }
        out.fewest_before = out.fewest_before.min(before);
        let last = changes.last().copied().unwrap_or(pressed);
        out.last_input
            .push(last.saturating_duration_since(pressed).as_secs_f64());
        out.told
            .push(told.saturating_duration_since(pressed).as_secs_f64());

        // Ask again; the user allows.
        let asked = Instant::now();
        viewer
            .send(&SessionMsg::DesktopCommand(DesktopCommand::RequestControl))
            .await?;
        let prompt = window(desk, PROMPT_TITLE).await?;
        tokio::task::block_in_place(|| desk.xvfb.click(&prompt, "allow"));
        control_after(viewer, InputState::Allowed, asked).await?;
        // The prompt gone before the next repetition.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !tokio::task::block_in_place(|| desk.xvfb.windows(PROMPT_TITLE)).is_empty() {
            if Instant::now() > deadline {
                bail!("the prompt stayed after allow");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(out)
}
