//! The consent prompt: a window on the endpoint's display that names the
//! technician and their site and the rights asked, with **Deny** and
//! **Allow** buttons and a countdown. No answer before the timeout is a
//! denial ([`Decision::TimedOut`]); closing the window is
//! [`ConsentError::Closed`]; Escape denies. No key allows: a prompt that
//! pops up while the user is typing must not be accepted by a stray Enter.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use x11rb::connection::Connection as _;
use x11rb::properties::{WmSizeHints, WmSizeHintsSpecification};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, Gcontext, PropMode, Window, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

use crate::paint::{Canvas, Fonts, Rect, Style};
use crate::text::{MAX_NAME_CHARS, MAX_SITE_CHARS, plain_text};
use crate::xwin::{Display, Msg, spawn_pump, x_err};
use crate::{ConsentError, Decision, Rights, Technician};

/// The default time the user has to answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the prompt asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    /// Who asks.
    pub technician: Technician,
    /// What they ask for.
    pub rights: Rights,
    /// How long the user has to answer, in milliseconds (30 000 by default).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT.as_millis() as u64
}

impl PromptRequest {
    /// A request with the default timeout.
    pub fn new(technician: Technician, rights: Rights) -> Self {
        Self {
            technician,
            rights,
            timeout_ms: default_timeout_ms(),
        }
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Shows `request` on `display` (None: `$DISPLAY`) and waits for the answer.
///
/// # Errors
/// Every error means "not allowed": see [`ConsentError`].
pub fn ask(display: Option<&str>, request: &PromptRequest) -> Result<Decision, ConsentError> {
    Prompt::show(display, request)?.wait()
}

/// A prompt on screen. Dropping it without [`Prompt::wait`] withdraws it.
#[derive(Debug)]
pub struct Prompt {
    tx: Sender<Msg<Cancel>>,
    thread: Mutex<Option<JoinHandle<Result<Decision, ConsentError>>>>,
}

/// The only command a prompt takes.
#[derive(Debug)]
struct Cancel;

impl Prompt {
    /// Opens the display, puts the prompt window up and starts its
    /// countdown; returns once the window is mapped.
    ///
    /// # Errors
    /// [`ConsentError::NoDisplay`], [`ConsentError::NoFont`], or the display
    /// failing while the window is created.
    pub fn show(display: Option<&str>, request: &PromptRequest) -> Result<Self, ConsentError> {
        let fonts = Fonts::load()?;
        let dpy = Display::open(display)?;
        let view = View::new(request, &fonts);
        let (tx, rx) = mpsc::channel();
        let ui = Ui::create(dpy, fonts, view, request.timeout())?;
        let pump = spawn_pump(ui.dpy.conn.clone(), ui.dpy.atoms._JUMPGATE_WAKE, tx.clone())?;
        let thread = std::thread::Builder::new()
            .name("consent-prompt".into())
            .spawn(move || ui.run(rx, pump))
            .map_err(|e| ConsentError::Unsupported(format!("thread: {e}")))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Waits for the user's answer (or the timeout).
    ///
    /// # Errors
    /// [`ConsentError::Closed`] when the user closed the window,
    /// [`ConsentError::Cancelled`] after [`Prompt::cancel`],
    /// [`ConsentError::ConnectionLost`] when the display went away (or
    /// when waited for a second time).
    pub fn wait(&self) -> Result<Decision, ConsentError> {
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        match thread.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(ConsentError::ConnectionLost(
                "the prompt's thread ended".into(),
            )),
        }
    }

    /// Withdraws the prompt (the technician gave up, the session ended): the
    /// window closes and [`Prompt::wait`] returns [`ConsentError::Cancelled`].
    pub fn cancel(&self) {
        let _ = self.tx.send(Msg::Cmd(Cancel));
    }
}

impl Drop for Prompt {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.get_mut().ok().and_then(Option::take) {
            self.cancel();
            let _ = thread.join();
        }
    }
}

// ---- layout ---------------------------------------------------------------

const WIDTH: i32 = 460;
const PAD: i32 = 24;
const BUTTON_W: i32 = 104;
const BUTTON_H: i32 = 36;
const BUTTON_GAP: i32 = 12;
const FOOTER_PAD: i32 = 16;
/// Baseline of the first listed right.
const FIRST_RIGHT: i32 = 166;

const BG: u32 = 0xFFFFFF;
const INK: u32 = 0x1F2328;
const MUTED: u32 = 0x59636E;
const ACCENT: u32 = 0x1A73E8;
const ACCENT_HOVER: u32 = 0x1558B0;
const WARN: u32 = 0xE8710A;
const FOOTER_BG: u32 = 0xF6F8FA;
const LINE: u32 = 0xD8DEE4;
const TRACK: u32 = 0xE3E7EB;
const DENY_BORDER: u32 = 0xB8BFC7;
const DENY_HOVER: u32 = 0xECEFF2;

/// The prompt's texts (sanitised) and where things go.
#[derive(Debug)]
struct View {
    name: String,
    site: String,
    rights: Vec<&'static str>,
    footer_y: i32,
    height: i32,
    allow: Rect,
    deny: Rect,
}

impl View {
    fn new(request: &PromptRequest, fonts: &Fonts) -> Self {
        let max_text = (WIDTH - 2 * PAD) as f32;
        let mut name = plain_text(&request.technician.name, MAX_NAME_CHARS);
        if name.is_empty() {
            name = "An unnamed technician".into();
        }
        let name = Style::new(&fonts.bold, 17.0, INK).fit(&name, max_text);
        let site = plain_text(&request.technician.site, MAX_SITE_CHARS);
        let site = if site.is_empty() {
            String::new()
        } else {
            format!("from {site}")
        };
        let site = Style::new(&fonts.regular, 13.0, MUTED).fit(&site, max_text);
        let r = request.rights;
        let mut rights = Vec::new();
        if r.view || !(r.control || r.clipboard) {
            rights.push("See your screen");
        }
        if r.control {
            rights.push("Control your keyboard and mouse");
        }
        if r.clipboard {
            rights.push("Read and change your clipboard");
        }
        let last_baseline = FIRST_RIGHT + 26 * (rights.len() as i32 - 1);
        let footer_y = last_baseline + 26;
        let button_y = footer_y + 3 + FOOTER_PAD;
        let height = button_y + BUTTON_H + FOOTER_PAD;
        let allow = Rect::new(WIDTH - PAD - BUTTON_W, button_y, BUTTON_W, BUTTON_H);
        let deny = Rect::new(
            allow.x - BUTTON_GAP - BUTTON_W,
            button_y,
            BUTTON_W,
            BUTTON_H,
        );
        Self {
            name,
            site,
            rights,
            footer_y,
            height,
            allow,
            deny,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Button {
    Allow,
    Deny,
}

/// The window and its state, owned by the prompt's thread.
#[derive(Debug)]
struct Ui {
    dpy: Display,
    fonts: Fonts,
    view: View,
    window: Window,
    gc: Gcontext,
    escape: Vec<u8>,
    started: Instant,
    timeout: Duration,
    hover: Option<Button>,
    pressed: Option<Button>,
}

impl Ui {
    fn create(
        dpy: Display,
        fonts: Fonts,
        view: View,
        timeout: Duration,
    ) -> Result<Self, ConsentError> {
        let conn = dpy.conn.clone();
        let window = conn.generate_id().map_err(x_err)?;
        let (w, h) = (WIDTH, view.height);
        let x = (i32::from(dpy.width) - w).max(0) / 2;
        let y = ((i32::from(dpy.height) - h) / 2 - 40).max(0);
        conn.create_window(
            dpy.root_depth,
            window,
            dpy.root,
            x as i16,
            y as i16,
            w as u16,
            h as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            dpy.root_visual,
            &CreateWindowAux::new().background_pixel(BG).event_mask(
                EventMask::EXPOSURE
                    | EventMask::BUTTON_PRESS
                    | EventMask::BUTTON_RELEASE
                    | EventMask::POINTER_MOTION
                    | EventMask::LEAVE_WINDOW
                    | EventMask::KEY_PRESS
                    | EventMask::STRUCTURE_NOTIFY,
            ),
        )
        .map_err(x_err)?;
        dpy.name_window(window, "Jumpgate: remote access request")?;
        let a = &dpy.atoms;
        conn.change_property32(
            PropMode::REPLACE,
            window,
            a.WM_PROTOCOLS,
            x11rb::protocol::xproto::AtomEnum::ATOM,
            &[a.WM_DELETE_WINDOW],
        )
        .map_err(x_err)?;
        conn.change_property32(
            PropMode::REPLACE,
            window,
            a._NET_WM_WINDOW_TYPE,
            x11rb::protocol::xproto::AtomEnum::ATOM,
            &[a._NET_WM_WINDOW_TYPE_DIALOG],
        )
        .map_err(x_err)?;
        conn.change_property32(
            PropMode::REPLACE,
            window,
            a._NET_WM_STATE,
            x11rb::protocol::xproto::AtomEnum::ATOM,
            &[a._NET_WM_STATE_ABOVE],
        )
        .map_err(x_err)?;
        let mut hints = WmSizeHints::new();
        hints.position = Some((WmSizeHintsSpecification::ProgramSpecified, x, y));
        hints.size = Some((WmSizeHintsSpecification::ProgramSpecified, w, h));
        hints.min_size = Some((w, h));
        hints.max_size = Some((w, h));
        hints.set_normal_hints(&*conn, window).map_err(x_err)?;
        dpy.publish_buttons(window, &[("allow", view.allow), ("deny", view.deny)])?;
        let gc = dpy.new_gc(window)?;
        let escape = dpy.keycodes(0xff1b)?;
        conn.map_window(window).map_err(x_err)?;
        conn.flush().map_err(x_err)?;
        dpy.request_above(window)?;
        Ok(Self {
            dpy,
            fonts,
            view,
            window,
            gc,
            escape,
            started: Instant::now(),
            timeout,
            hover: None,
            pressed: None,
        })
    }

    fn run(
        mut self,
        rx: mpsc::Receiver<Msg<Cancel>>,
        pump: JoinHandle<()>,
    ) -> Result<Decision, ConsentError> {
        let result = self.event_loop(&rx);
        // Stop the pump before the window goes (the wake-up needs the window).
        self.dpy.wake(self.window, true);
        let _ = self.dpy.conn.destroy_window(self.window);
        let _ = self.dpy.conn.flush();
        let _ = pump.join();
        result
    }

    fn event_loop(&mut self, rx: &mpsc::Receiver<Msg<Cancel>>) -> Result<Decision, ConsentError> {
        let deadline = self.started + self.timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Decision::TimedOut);
            }
            // Repaint a few times a second so the progress bar moves smoothly.
            let wait = (deadline - now).min(Duration::from_millis(250));
            match rx.recv_timeout(wait) {
                Ok(Msg::X(event)) => {
                    if let Some(outcome) = self.handle(event)? {
                        return outcome;
                    }
                }
                Ok(Msg::Cmd(Cancel)) => return Err(ConsentError::Cancelled),
                Ok(Msg::Lost(e)) => return Err(ConsentError::ConnectionLost(e)),
                // Only the footer (countdown, progress bar) changes with time.
                Err(RecvTimeoutError::Timeout) => self.paint_from(self.view.footer_y)?,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(ConsentError::ConnectionLost("event pump ended".into()));
                }
            }
        }
    }

    fn button_at(&self, x: i16, y: i16) -> Option<Button> {
        let (x, y) = (i32::from(x), i32::from(y));
        if self.view.allow.contains(x, y) {
            Some(Button::Allow)
        } else if self.view.deny.contains(x, y) {
            Some(Button::Deny)
        } else {
            None
        }
    }

    /// Handles one event; `Some` ends the prompt.
    #[allow(clippy::type_complexity)]
    fn handle(
        &mut self,
        event: Event,
    ) -> Result<Option<Result<Decision, ConsentError>>, ConsentError> {
        match event {
            Event::Expose(e) if e.count == 0 => self.paint()?,
            Event::MotionNotify(e) => {
                let hover = self.button_at(e.event_x, e.event_y);
                if hover != self.hover {
                    self.hover = hover;
                    self.paint()?;
                }
            }
            Event::LeaveNotify(_) if self.hover.take().is_some() => self.paint()?,
            Event::ButtonPress(e) if e.detail == 1 => {
                self.pressed = self.button_at(e.event_x, e.event_y);
            }
            // A click is a press and a release on the same button.
            Event::ButtonRelease(e) if e.detail == 1 => {
                let released = self.button_at(e.event_x, e.event_y);
                if released.is_some() && released == self.pressed.take() {
                    return Ok(Some(Ok(match released {
                        Some(Button::Allow) => Decision::Allowed,
                        _ => Decision::Denied,
                    })));
                }
            }
            Event::KeyPress(e) if self.escape.contains(&e.detail) => {
                return Ok(Some(Ok(Decision::Denied)));
            }
            Event::ClientMessage(e)
                if e.type_ == self.dpy.atoms.WM_PROTOCOLS
                    && e.data.as_data32()[0] == self.dpy.atoms.WM_DELETE_WINDOW =>
            {
                return Ok(Some(Err(ConsentError::Closed)));
            }
            Event::DestroyNotify(e) if e.window == self.window => {
                return Ok(Some(Err(ConsentError::Closed)));
            }
            Event::Error(e) => return Err(ConsentError::ConnectionLost(format!("X error: {e:?}"))),
            _ => {}
        }
        Ok(None)
    }

    fn paint(&mut self) -> Result<(), ConsentError> {
        self.paint_from(0)
    }

    fn paint_from(&mut self, first_row: i32) -> Result<(), ConsentError> {
        let elapsed = self.started.elapsed();
        let remaining = self.timeout.saturating_sub(elapsed);
        let canvas = render(
            &self.fonts,
            &self.view,
            remaining,
            self.timeout,
            self.hover,
            self.pressed,
        );
        self.dpy.put_rows(self.window, self.gc, &canvas, first_row)
    }
}

fn render(
    fonts: &Fonts,
    v: &View,
    remaining: Duration,
    total: Duration,
    hover: Option<Button>,
    pressed: Option<Button>,
) -> Canvas {
    let mut c = Canvas::new(WIDTH, v.height, BG);
    c.fill(Rect::new(0, 0, WIDTH, 4), ACCENT);
    let padf = PAD as f32;
    c.text(
        Style::new(&fonts.bold, 11.0, ACCENT),
        padf,
        30.0,
        "JUMPGATE",
    );
    c.text(
        Style::new(&fonts.bold, 19.0, INK),
        padf,
        56.0,
        "Remote access request",
    );
    c.text(Style::new(&fonts.bold, 17.0, INK), padf, 92.0, &v.name);
    if !v.site.is_empty() {
        c.text(
            Style::new(&fonts.regular, 13.0, MUTED),
            padf,
            112.0,
            &v.site,
        );
    }
    // "asks to" sits above the list, the list items get a bullet each.
    let body = Style::new(&fonts.regular, 14.0, INK);
    let mut baseline = (FIRST_RIGHT - 26) as f32;
    c.text(
        Style::new(&fonts.regular, 13.0, MUTED),
        padf,
        140.0,
        "asks to:",
    );
    for right in &v.rights {
        baseline += 26.0;
        c.circle(padf + 5.0, baseline - 5.0, 3.5, ACCENT);
        c.text(body, padf + 18.0, baseline, right);
    }

    // Footer: progress bar as its top edge, countdown, buttons.
    let fy = v.footer_y;
    c.fill(Rect::new(0, fy, WIDTH, v.height - fy), FOOTER_BG);
    c.fill(Rect::new(0, fy, WIDTH, 3), TRACK);
    let secs = remaining.as_secs_f64().ceil() as u64;
    let urgent = secs <= 10;
    let frac = if total.is_zero() {
        0.0
    } else {
        remaining.as_secs_f64() / total.as_secs_f64()
    };
    let bar_w = (f64::from(WIDTH) * frac.clamp(0.0, 1.0)).round() as i32;
    c.fill(
        Rect::new(0, fy, bar_w, 3),
        if urgent { WARN } else { ACCENT },
    );
    c.fill(Rect::new(0, fy + 3, WIDTH, 1), LINE);
    let countdown = format!("Denied automatically in {secs} s");
    let small = Style::new(&fonts.regular, 13.0, if urgent { WARN } else { MUTED });
    let mid = v.allow.y as f32 + (BUTTON_H as f32 + small.cap_height()) / 2.0;
    c.text(small, padf, mid.round(), &countdown);

    let label = |color| Style::new(&fonts.bold, 14.0, color);
    let deny_bg = if hover == Some(Button::Deny) || pressed == Some(Button::Deny) {
        DENY_HOVER
    } else {
        BG
    };
    c.round_rect(v.deny, 6.0, deny_bg);
    c.round_rect_outline(v.deny, 6.0, 1.0, DENY_BORDER);
    c.text_centered(label(INK), v.deny, "Deny");
    let allow_bg = if hover == Some(Button::Allow) || pressed == Some(Button::Allow) {
        ACCENT_HOVER
    } else {
        ACCENT
    };
    c.round_rect(v.allow, 6.0, allow_bg);
    c.text_centered(label(0xFFFFFF), v.allow, "Allow");
    c
}
