//! The session indicator: while a desktop session is live the user sees
//!
//! - a coloured border around the screen (or the monitor being shown): four
//!   thin override-redirect windows, made input-transparent with an empty
//!   SHAPE input region so clicks reach the windows below; the capture side
//!   crops them out of the frames it sends;
//! - a small bar at the top (override-redirect, raised again whenever
//!   something covers it, draggable by its text) naming the technician and
//!   the state, with **Take back control** and **End session**;
//! - a global shortcut, Ctrl+Alt+Shift+Escape (grabbed with `XGrabKey` on
//!   the root window, whatever the Caps Lock / Num Lock state), which does
//!   what **Take back control** does.
//!
//! Events reach the owner through a callback, at once, from the indicator's
//! thread. Taking back control switches the bar to "You have control"
//! immediately, without waiting for the owner.

use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::Event;
use x11rb::protocol::shape::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    ClipOrdering, ConfigureWindowAux, ConnectionExt as _, CreateWindowAux, EventMask, Gcontext,
    GrabMode, KeyButMask, ModMask, StackMode, Visibility, Window, WindowClass,
};

use crate::paint::{Canvas, Fonts, Rect, Style};
use crate::text::{MAX_NAME_CHARS, plain_text};
use crate::xwin::{Display, Msg, spawn_pump, x_err};
use crate::{ConsentError, Technician};

/// The shortcut that takes back control, as shown to users.
pub const SHORTCUT: &str = "Ctrl+Alt+Shift+Escape";
/// The default border colour (a strong orange, `0xRRGGBB`).
pub const DEFAULT_BORDER_COLOR: u32 = 0xE8590C;
/// The default border thickness in pixels.
pub const DEFAULT_BORDER_WIDTH: u16 = 5;

/// What the technician may do right now, as the bar tells the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// "… is viewing your screen".
    Viewing,
    /// "… is controlling your screen".
    Controlling,
    /// "You have control": the user took back control; the technician
    /// still sees the screen.
    UserHasControl,
}

/// A rectangle of the screen, in root-window pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub x: i16,
    pub y: i16,
    pub width: u16,
    pub height: u16,
}

/// How the indicator looks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorConfig {
    /// Who is connected.
    pub technician: Technician,
    /// The state shown first.
    pub state: SessionState,
    /// The area to frame (the monitor being shown); None: the whole screen.
    #[serde(default)]
    pub area: Option<Area>,
    /// Border colour, `0xRRGGBB`.
    #[serde(default = "default_color")]
    pub border_color: u32,
    /// Border thickness in pixels (1 to 32).
    #[serde(default = "default_width")]
    pub border_width: u16,
    /// Grab the take-back-control shortcut ([`SHORTCUT`]).
    #[serde(default = "default_true")]
    pub shortcut: bool,
}

fn default_color() -> u32 {
    DEFAULT_BORDER_COLOR
}
fn default_width() -> u16 {
    DEFAULT_BORDER_WIDTH
}
fn default_true() -> bool {
    true
}

impl IndicatorConfig {
    /// The default look for `technician` in `state`.
    pub fn new(technician: Technician, state: SessionState) -> Self {
        Self {
            technician,
            state,
            area: None,
            border_color: DEFAULT_BORDER_COLOR,
            border_width: DEFAULT_BORDER_WIDTH,
            shortcut: true,
        }
    }
}

/// What set off a take-back-control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The bar's **Take back control** button.
    Button,
    /// The keyboard shortcut.
    Shortcut,
}

/// What the user did, reported as it happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum IndicatorEvent {
    /// Drop the technician's input now. The bar already says "You have
    /// control".
    TakeBackControl { trigger: Trigger },
    /// End the session.
    EndSession,
    /// The display went away: the indicator is gone, so the session must
    /// end too.
    Lost { error: String },
}

/// Commands to the indicator's thread.
#[derive(Debug)]
enum Cmd {
    SetState(SessionState),
    Close,
}

/// The indicator on screen; dropping it (or [`Indicator::close`]) takes it
/// down.
#[derive(Debug)]
pub struct Indicator {
    tx: Sender<Msg<Cmd>>,
    thread: Option<JoinHandle<()>>,
    shortcut: bool,
}

impl Indicator {
    /// Puts the border and the bar up on `display` (None: `$DISPLAY`) and
    /// grabs the shortcut; `on_event` is called from the indicator's thread
    /// for each [`IndicatorEvent`].
    ///
    /// # Errors
    /// [`ConsentError::NoDisplay`], [`ConsentError::NoFont`], or the display
    /// failing while the windows are created. A shortcut that another
    /// program already grabbed is not an error: see [`Indicator::shortcut`].
    pub fn show(
        display: Option<&str>,
        config: &IndicatorConfig,
        on_event: impl FnMut(IndicatorEvent) + Send + 'static,
    ) -> Result<Self, ConsentError> {
        let fonts = Fonts::load()?;
        let dpy = Display::open(display)?;
        let (tx, rx) = mpsc::channel();
        let ui = Ui::create(dpy, fonts, config)?;
        let shortcut = !ui.grabs.is_empty();
        let pump = spawn_pump(ui.dpy.conn.clone(), ui.dpy.atoms._JUMPGATE_WAKE, tx.clone())?;
        let mut on_event = on_event;
        let thread = std::thread::Builder::new()
            .name("consent-indicator".into())
            .spawn(move || ui.run(&rx, pump, &mut on_event))
            .map_err(|e| ConsentError::Unsupported(format!("thread: {e}")))?;
        Ok(Self {
            tx,
            thread: Some(thread),
            shortcut,
        })
    }

    /// The shortcut grabbed ([`SHORTCUT`]), or None when it was not asked
    /// for or another program holds it.
    pub fn shortcut(&self) -> Option<&'static str> {
        self.shortcut.then_some(SHORTCUT)
    }

    /// Changes the state the bar shows (e.g. control granted again).
    pub fn set_state(&self, state: SessionState) {
        let _ = self.tx.send(Msg::Cmd(Cmd::SetState(state)));
    }

    /// Takes the indicator down and waits until its windows are gone.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.tx.send(Msg::Cmd(Cmd::Close));
            let _ = thread.join();
        }
    }
}

impl Drop for Indicator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

// ---- the bar ----------------------------------------------------------------

const BAR_H: i32 = 44;
const BAR_PAD: i32 = 16;
const BTN_H: i32 = 30;
const BTN_GAP: i32 = 8;
const BAR_BG: u32 = 0x1F2328;
const BAR_TEXT: u32 = 0xFFFFFF;
const BAR_MUTED: u32 = 0xC9D1D9;
const TAKE_BG: u32 = 0xFFFFFF;
const TAKE_HOVER: u32 = 0xE3E7EB;
const TAKE_TEXT: u32 = 0x1F2328;
const END_BG: u32 = 0xD93025;
const END_HOVER: u32 = 0xB3261E;
const MAX_NAME_PX: f32 = 220.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BarButton {
    Take,
    End,
}

/// The bar's texts and geometry for one state.
#[derive(Debug)]
struct BarLayout {
    w: i32,
    lead: String,
    rest: String,
    take: Rect,
    end: Rect,
}

fn bar_layout(fonts: &Fonts, name: &str, state: SessionState) -> BarLayout {
    let bold = Style::new(&fonts.bold, 14.0, BAR_TEXT);
    let regular = Style::new(&fonts.regular, 14.0, BAR_MUTED);
    let name = bold.fit(name, MAX_NAME_PX);
    let (lead, rest) = match state {
        SessionState::Viewing => (name, " is viewing your screen".to_owned()),
        SessionState::Controlling => (name, " is controlling your screen".to_owned()),
        SessionState::UserHasControl => {
            let name = regular.fit(&name, MAX_NAME_PX);
            (
                "You have control".to_owned(),
                format!(" · {name} can still see your screen"),
            )
        }
    };
    let text_x = BAR_PAD + 10 + 10;
    let text_w = (bold.width(&lead) + regular.width(&rest)).ceil() as i32;
    let label = Style::new(&fonts.bold, 13.0, 0);
    let take_w = label.width("Take back control").ceil() as i32 + 28;
    let end_w = label.width("End session").ceil() as i32 + 28;
    let by = (BAR_H - BTN_H) / 2;
    let take = Rect::new(text_x + text_w + 24, by, take_w, BTN_H);
    let end = Rect::new(take.x + take_w + BTN_GAP, by, end_w, BTN_H);
    BarLayout {
        w: end.x + end_w + by,
        lead,
        rest,
        take,
        end,
    }
}

fn render_bar(fonts: &Fonts, l: &BarLayout, accent: u32, hover: Option<BarButton>) -> Canvas {
    let mut c = Canvas::new(l.w, BAR_H, BAR_BG);
    // A frame in the border's colour ties the bar to the border.
    c.fill(Rect::new(0, 0, l.w, 2), accent);
    c.fill(Rect::new(0, BAR_H - 2, l.w, 2), accent);
    c.fill(Rect::new(0, 0, 2, BAR_H), accent);
    c.fill(Rect::new(l.w - 2, 0, 2, BAR_H), accent);
    let mid = BAR_H as f32 / 2.0;
    c.circle(BAR_PAD as f32 + 5.0, mid, 5.0, accent);
    let bold = Style::new(&fonts.bold, 14.0, BAR_TEXT);
    let regular = Style::new(&fonts.regular, 14.0, BAR_MUTED);
    let baseline = (mid + bold.cap_height() / 2.0).round();
    let x = (BAR_PAD + 20) as f32;
    let w = c.text(bold, x, baseline, &l.lead);
    c.text(regular, x + w, baseline, &l.rest);
    let take_bg = if hover == Some(BarButton::Take) {
        TAKE_HOVER
    } else {
        TAKE_BG
    };
    c.round_rect(l.take, 6.0, take_bg);
    c.text_centered(
        Style::new(&fonts.bold, 13.0, TAKE_TEXT),
        l.take,
        "Take back control",
    );
    let end_bg = if hover == Some(BarButton::End) {
        END_HOVER
    } else {
        END_BG
    };
    c.round_rect(l.end, 6.0, end_bg);
    c.text_centered(
        Style::new(&fonts.bold, 13.0, 0xFFFFFF),
        l.end,
        "End session",
    );
    c
}

/// The indicator's windows and state, owned by its thread.
#[derive(Debug)]
struct Ui {
    dpy: Display,
    fonts: Fonts,
    name: String,
    state: SessionState,
    color: u32,
    /// The framed area and the border thickness: the bar stays inside.
    area: (i32, i32, i32, i32),
    thickness: i32,
    borders: [Window; 4],
    bar: Window,
    gc: Gcontext,
    layout: BarLayout,
    bar_pos: (i32, i32),
    hover: Option<BarButton>,
    pressed: Option<BarButton>,
    /// Pointer position (root) and bar position when a drag started.
    drag: Option<((i32, i32), (i32, i32))>,
    /// (modifiers, key code) pairs grabbed on the root window.
    grabs: Vec<(ModMask, u8)>,
    /// Raises in the current one-second window: another program that also
    /// keeps itself on top must not make us loop forever.
    raises: (Instant, u32),
}

impl Ui {
    fn create(dpy: Display, fonts: Fonts, config: &IndicatorConfig) -> Result<Self, ConsentError> {
        let conn = dpy.conn.clone();
        let area = match config.area {
            Some(a) => (
                i32::from(a.x),
                i32::from(a.y),
                i32::from(a.width),
                i32::from(a.height),
            ),
            None => (0, 0, i32::from(dpy.width), i32::from(dpy.height)),
        };
        let t = i32::from(config.border_width.clamp(1, 32));
        let (ax, ay, aw, ah) = area;
        let strips = [
            Rect::new(ax, ay, aw, t),
            Rect::new(ax, ay + ah - t, aw, t),
            Rect::new(ax, ay + t, t, ah - 2 * t),
            Rect::new(ax + aw - t, ay + t, t, ah - 2 * t),
        ];
        let shape = conn
            .extension_information(shape::X11_EXTENSION_NAME)
            .map_err(x_err)?
            .is_some();
        let mut borders = [0; 4];
        for (slot, r) in borders.iter_mut().zip(strips) {
            let w = conn.generate_id().map_err(x_err)?;
            conn.create_window(
                dpy.root_depth,
                w,
                dpy.root,
                r.x as i16,
                r.y as i16,
                r.w.max(1) as u16,
                r.h.max(1) as u16,
                0,
                WindowClass::INPUT_OUTPUT,
                dpy.root_visual,
                &CreateWindowAux::new()
                    .background_pixel(config.border_color)
                    .override_redirect(1)
                    .event_mask(EventMask::VISIBILITY_CHANGE),
            )
            .map_err(x_err)?;
            dpy.name_window(w, "Jumpgate: session border")?;
            if shape {
                // An empty input region: the pointer passes through.
                conn.shape_rectangles(
                    shape::SO::SET,
                    shape::SK::INPUT,
                    ClipOrdering::UNSORTED,
                    w,
                    0,
                    0,
                    &[],
                )
                .map_err(x_err)?;
            }
            conn.map_window(w).map_err(x_err)?;
            *slot = w;
        }

        let name = {
            let n = plain_text(&config.technician.name, MAX_NAME_CHARS);
            if n.is_empty() {
                "A technician".to_owned()
            } else {
                n
            }
        };
        let layout = bar_layout(&fonts, &name, config.state);
        let bar_pos = (ax + (aw - layout.w) / 2, ay + t);
        let bar = conn.generate_id().map_err(x_err)?;
        conn.create_window(
            dpy.root_depth,
            bar,
            dpy.root,
            bar_pos.0 as i16,
            bar_pos.1 as i16,
            layout.w as u16,
            BAR_H as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            dpy.root_visual,
            &CreateWindowAux::new()
                .background_pixel(BAR_BG)
                .override_redirect(1)
                .event_mask(
                    EventMask::EXPOSURE
                        | EventMask::VISIBILITY_CHANGE
                        | EventMask::BUTTON_PRESS
                        | EventMask::BUTTON_RELEASE
                        | EventMask::POINTER_MOTION
                        | EventMask::LEAVE_WINDOW,
                ),
        )
        .map_err(x_err)?;
        dpy.name_window(bar, "Jumpgate: remote session")?;
        dpy.publish_buttons(
            bar,
            &[
                ("take-back-control", layout.take),
                ("end-session", layout.end),
            ],
        )?;
        dpy.publish_status(bar, &format!("{}{}", layout.lead, layout.rest))?;
        let gc = dpy.new_gc(bar)?;
        conn.map_window(bar).map_err(x_err)?;

        let mut grabs = Vec::new();
        if config.shortcut {
            let base = ModMask::CONTROL | ModMask::SHIFT | ModMask::M1;
            'codes: for code in dpy.keycodes(0xff1b)? {
                // Caps Lock (Lock) and Num Lock (usually Mod2) must not
                // defeat the shortcut: grab every combination.
                for extra in [
                    ModMask::from(0u16),
                    ModMask::LOCK,
                    ModMask::M2,
                    ModMask::LOCK | ModMask::M2,
                ] {
                    let mods = base | extra;
                    let grabbed = conn
                        .grab_key(
                            false,
                            dpy.root,
                            mods,
                            code,
                            GrabMode::ASYNC,
                            GrabMode::ASYNC,
                        )
                        .map_err(x_err)?
                        .check();
                    if grabbed.is_err() {
                        // Held by someone else: release ours, go without.
                        for (m, c) in grabs.drain(..) {
                            let _ = conn.ungrab_key(c, dpy.root, m);
                        }
                        break 'codes;
                    }
                    grabs.push((mods, code));
                }
            }
        }
        conn.flush().map_err(x_err)?;
        Ok(Self {
            dpy,
            fonts,
            name,
            state: config.state,
            color: config.border_color,
            area,
            thickness: t,
            borders,
            bar,
            gc,
            layout,
            bar_pos,
            hover: None,
            pressed: None,
            drag: None,
            grabs,
            raises: (Instant::now(), 0),
        })
    }

    fn run(
        mut self,
        rx: &mpsc::Receiver<Msg<Cmd>>,
        pump: JoinHandle<()>,
        on_event: &mut dyn FnMut(IndicatorEvent),
    ) {
        let mut failure = None;
        while let Ok(msg) = rx.recv() {
            let outcome = match msg {
                Msg::Cmd(Cmd::Close) => break,
                Msg::Cmd(Cmd::SetState(state)) => self.set_state(state),
                Msg::X(event) => self.handle(event, on_event),
                Msg::Lost(e) => Err(ConsentError::ConnectionLost(e)),
            };
            if let Err(e) = outcome {
                failure = Some(e);
                break;
            }
        }
        let conn = &self.dpy.conn;
        self.dpy.wake(self.bar, true);
        for (mods, code) in self.grabs.drain(..) {
            let _ = conn.ungrab_key(code, self.dpy.root, mods);
        }
        for w in self.borders.iter().chain([&self.bar]) {
            let _ = conn.destroy_window(*w);
        }
        let _ = conn.flush();
        let _ = pump.join();
        // Make sure the windows are gone before `close` returns.
        let _ = conn.get_input_focus().map(|c| c.reply());
        // After the clean-up: a failed indicator must not stay on screen
        // (on a dead connection the server has already removed it).
        if let Some(e) = failure {
            on_event(IndicatorEvent::Lost {
                error: e.to_string(),
            });
        }
    }

    fn set_state(&mut self, state: SessionState) -> Result<(), ConsentError> {
        if state == self.state {
            return Ok(());
        }
        self.state = state;
        let old_w = self.layout.w;
        self.layout = bar_layout(&self.fonts, &self.name, state);
        self.dpy.publish_buttons(
            self.bar,
            &[
                ("take-back-control", self.layout.take),
                ("end-session", self.layout.end),
            ],
        )?;
        self.dpy.publish_status(
            self.bar,
            &format!("{}{}", self.layout.lead, self.layout.rest),
        )?;
        // Keep the bar's centre where it was.
        let x = self.bar_pos.0 + (old_w - self.layout.w) / 2;
        self.move_bar(x, self.bar_pos.1, true)?;
        self.paint()
    }

    /// Moves the bar, kept inside the border.
    fn move_bar(&mut self, x: i32, y: i32, resize: bool) -> Result<(), ConsentError> {
        let (ax, ay, aw, ah) = self.area;
        let t = self.thickness;
        let x = x.min(ax + aw - t - self.layout.w).max(ax + t);
        let y = y.min(ay + ah - t - BAR_H).max(ay + t);
        self.bar_pos = (x, y);
        let mut aux = ConfigureWindowAux::new().x(x).y(y);
        if resize {
            aux = aux.width(self.layout.w as u32);
        }
        self.dpy
            .conn
            .configure_window(self.bar, &aux)
            .map_err(x_err)?;
        self.dpy.conn.flush().map_err(x_err)?;
        Ok(())
    }

    fn button_at(&self, x: i16, y: i16) -> Option<BarButton> {
        let (x, y) = (i32::from(x), i32::from(y));
        if self.layout.take.contains(x, y) {
            Some(BarButton::Take)
        } else if self.layout.end.contains(x, y) {
            Some(BarButton::End)
        } else {
            None
        }
    }

    fn handle(
        &mut self,
        event: Event,
        on_event: &mut dyn FnMut(IndicatorEvent),
    ) -> Result<(), ConsentError> {
        match event {
            Event::Expose(e) if e.window == self.bar && e.count == 0 => self.paint()?,
            // Something covers one of our windows: back on top.
            Event::VisibilityNotify(e) if e.state != Visibility::UNOBSCURED && self.may_raise() => {
                self.dpy
                    .conn
                    .configure_window(
                        e.window,
                        &ConfigureWindowAux::new().stack_mode(StackMode::ABOVE),
                    )
                    .map_err(x_err)?;
                self.dpy.conn.flush().map_err(x_err)?;
            }
            Event::KeyPress(e) if e.event == self.dpy.root => {
                let wanted = KeyButMask::CONTROL | KeyButMask::SHIFT | KeyButMask::MOD1;
                if self.grabs.iter().any(|(_, c)| *c == e.detail) && e.state.contains(wanted) {
                    self.take_back(Trigger::Shortcut, on_event)?;
                }
            }
            Event::MotionNotify(e) if e.event == self.bar => {
                if let Some(((px, py), (bx, by))) = self.drag {
                    let (rx, ry) = (i32::from(e.root_x), i32::from(e.root_y));
                    self.move_bar(bx + rx - px, by + ry - py, false)?;
                } else {
                    let hover = self.button_at(e.event_x, e.event_y);
                    if hover != self.hover {
                        self.hover = hover;
                        self.paint()?;
                    }
                }
            }
            Event::LeaveNotify(e) if e.event == self.bar && self.hover.take().is_some() => {
                self.paint()?
            }
            Event::ButtonPress(e) if e.event == self.bar && e.detail == 1 => {
                self.pressed = self.button_at(e.event_x, e.event_y);
                if self.pressed.is_none() {
                    self.drag = Some(((i32::from(e.root_x), i32::from(e.root_y)), self.bar_pos));
                }
            }
            Event::ButtonRelease(e) if e.event == self.bar && e.detail == 1 => {
                self.drag = None;
                let released = self.button_at(e.event_x, e.event_y);
                if released.is_some() && released == self.pressed.take() {
                    match released {
                        Some(BarButton::Take) => self.take_back(Trigger::Button, on_event)?,
                        _ => on_event(IndicatorEvent::EndSession),
                    }
                }
            }
            Event::Error(e) => return Err(ConsentError::ConnectionLost(format!("X error: {e:?}"))),
            _ => {}
        }
        Ok(())
    }

    /// At most 20 raises a second.
    fn may_raise(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.raises.0) >= Duration::from_secs(1) {
            self.raises = (now, 0);
        }
        self.raises.1 += 1;
        self.raises.1 <= 20
    }

    fn take_back(
        &mut self,
        trigger: Trigger,
        on_event: &mut dyn FnMut(IndicatorEvent),
    ) -> Result<(), ConsentError> {
        // Report first: dropping the technician's input is what matters.
        on_event(IndicatorEvent::TakeBackControl { trigger });
        self.set_state(SessionState::UserHasControl)
    }

    fn paint(&mut self) -> Result<(), ConsentError> {
        let canvas = render_bar(&self.fonts, &self.layout, self.color, self.hover);
        self.dpy.put_canvas(self.bar, self.gc, &canvas)
    }
}
