//! The attended-support window of the customer client: the site, the
//! status, who is connected, an ask with **Allow** / **Deny** (no answer in
//! time is a denial, decided by the client), a switch per right (on =
//! granted; clicking an on-switch revokes it; a switch never turns a right
//! on), the chat with a one-line entry, **End session**, and after the end
//! a rating screen (1–5 stars, a comment, **Skip**).
//!
//! Same toolkit as the consent prompt: `x11rb`, the software painter,
//! text sanitised with [`plain_text`]. Every button is published in
//! `_JUMPGATE_BUTTONS` and a summary of what is shown in
//! `_JUMPGATE_STATUS` (`screen=main; on=view,control; ask=1`), for tests
//! and screen readers. Keys go to the entry (keysyms through the keyboard
//! map, no input method); Return sends.

use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use x11rb::connection::Connection as _;
use x11rb::properties::{WmSizeHints, WmSizeHintsSpecification};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, Gcontext, KeyButMask, PropMode, Window,
    WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

use crate::ConsentError;
use crate::assist_child::{ChatKind, FromAssistUi, Switch, ToAssistUi};
use crate::paint::{Canvas, Fonts, Rect, Style};
use crate::text::{MAX_NAME_CHARS, MAX_SITE_CHARS, plain_text};
use crate::xwin::{Display, Msg, spawn_pump, x_err};

/// The window's title (tests find it by it).
pub const TITLE: &str = "Jumpgate: remote support";

/// Longest chat line the entry takes, in bytes (the protocol's limit).
pub const MAX_ENTRY_BYTES: usize = 4096;
/// Chat lines kept for showing.
const KEEP_LINES: usize = 200;

const WIDTH: i32 = 400;
const HEIGHT: i32 = 680;
const PAD: i32 = 20;

const BG: u32 = 0xFFFFFF;
const INK: u32 = 0x1F2328;
const MUTED: u32 = 0x59636E;
const ACCENT: u32 = 0x1A73E8;
const ACCENT_HOVER: u32 = 0x1558B0;
const OK: u32 = 0x1A7F37;
const WARN: u32 = 0xE8710A;
const DANGER: u32 = 0xCF222E;
const PANEL: u32 = 0xF6F8FA;
const ASK_BG: u32 = 0xFFF8E5;
const ASK_BORDER: u32 = 0xF0C36D;
const LINE: u32 = 0xD8DEE4;
const SWITCH_OFF: u32 = 0xC4CBD3;
const STAR_OFF: u32 = 0xD0D7DE;
const STAR_ON: u32 = 0xF2B01E;

// Main screen.
const ASK_PANEL: Rect = Rect::new(PAD, 126, WIDTH - 2 * PAD, 86);
const ALLOW: Rect = Rect::new(WIDTH - PAD - 12 - 80, 164, 80, 32);
const DENY: Rect = Rect::new(WIDTH - PAD - 12 - 80 - 8 - 80, 164, 80, 32);
const RIGHTS_TOP: i32 = 244;
const ROW_H: i32 = 30;
const CHAT_BOX: Rect = Rect::new(PAD, 420, WIDTH - 2 * PAD, 150);
const ENTRY: Rect = Rect::new(PAD, 578, WIDTH - 2 * PAD - 78, 32);
const SEND: Rect = Rect::new(WIDTH - PAD - 70, 578, 70, 32);
const END: Rect = Rect::new(WIDTH - PAD - 130, 632, 130, 34);
const CHAT_LINE_H: i32 = 17;
// The offer of permanent access covers the chat while it is asked.
const PIN_PANEL: Rect = Rect::new(PAD, 400, WIDTH - 2 * PAD, 212);
const PIN_ALLOW: Rect = Rect::new(WIDTH - PAD - 12 - 80, 568, 80, 32);
const PIN_DENY: Rect = Rect::new(WIDTH - PAD - 12 - 80 - 8 - 80, 568, 80, 32);

// Rating screen.
const STARS_Y: i32 = 206;
const STAR: i32 = 44;
const COMMENT: Rect = Rect::new(PAD, 290, WIDTH - 2 * PAD, 32);
const SUBMIT: Rect = Rect::new(WIDTH - PAD - 130, 340, 130, 34);
const SKIP: Rect = Rect::new(WIDTH - PAD - 130 - 10 - 90, 340, 90, 34);

fn switch_rect(i: usize) -> Rect {
    Rect::new(WIDTH - PAD - 44, RIGHTS_TOP + ROW_H * i as i32 + 4, 44, 22)
}

fn star_rect(i: usize) -> Rect {
    Rect::new(PAD + (STAR + 8) * i as i32, STARS_Y, STAR, STAR)
}

/// What the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Screen {
    Main,
    /// After the end: rate (`rating`) or only close.
    Ended {
        reason: String,
        rating: bool,
    },
}

#[derive(Debug, Clone)]
struct Ask {
    id: u64,
    label: String,
    technician: String,
    until: Instant,
}

/// The offer of permanent access (pin as unattended).
#[derive(Debug, Clone)]
struct PinAsk {
    technician: String,
    group: String,
    until: Instant,
    /// Allowed: the install runs (the system asks for the password).
    installing: bool,
}

#[derive(Debug, Clone)]
struct ChatEntry {
    from: String,
    text: String,
    kind: ChatKind,
}

/// Everything painted, as last told by the client.
#[derive(Debug)]
struct State {
    site: String,
    server: String,
    status: String,
    connected: bool,
    participants: Vec<String>,
    switches: Vec<Switch>,
    asks: Vec<Ask>,
    pin: Option<PinAsk>,
    chat: Vec<ChatEntry>,
    entry: String,
    screen: Screen,
    stars: u8,
    comment: String,
}

impl Default for State {
    fn default() -> Self {
        Self {
            site: String::new(),
            server: String::new(),
            status: "Connecting…".into(),
            connected: false,
            participants: Vec::new(),
            switches: Vec::new(),
            asks: Vec::new(),
            pin: None,
            chat: Vec::new(),
            entry: String::new(),
            screen: Screen::Main,
            stars: 0,
            comment: String::new(),
        }
    }
}

/// What a click or key is aimed at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Allow,
    Deny,
    Switch(usize),
    Send,
    End,
    Star(u8),
    Submit,
    Skip,
    PinAllow,
    PinDeny,
}

/// The window on screen. Dropping it takes it down.
pub struct AssistWindow {
    tx: Sender<Msg<Cmd>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for AssistWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssistWindow")
    }
}

#[derive(Debug)]
enum Cmd {
    Show(ToAssistUi),
    Quit,
}

impl AssistWindow {
    /// Opens `display` (None: `$DISPLAY`) and maps the window; `events`
    /// gets what the customer does.
    ///
    /// # Errors
    /// No display, no font, or the display failing while the window is
    /// created.
    pub fn show(
        display: Option<&str>,
        events: impl Fn(FromAssistUi) + Send + 'static,
    ) -> Result<Self, ConsentError> {
        let fonts = Fonts::load()?;
        let dpy = Display::open(display)?;
        let (tx, rx) = mpsc::channel();
        let ui = Ui::create(dpy, fonts, Box::new(events))?;
        let pump = spawn_pump(ui.dpy.conn.clone(), ui.dpy.atoms._JUMPGATE_WAKE, tx.clone())?;
        let thread = std::thread::Builder::new()
            .name("assist-window".into())
            .spawn(move || ui.run(&rx, pump))
            .map_err(|e| ConsentError::Unsupported(format!("thread: {e}")))?;
        Ok(Self {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Shows what the client says.
    pub fn send(&self, msg: ToAssistUi) {
        let _ = self.tx.send(Msg::Cmd(Cmd::Show(msg)));
    }
}

impl Drop for AssistWindow {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Cmd(Cmd::Quit));
        if let Some(t) = self.thread.get_mut().ok().and_then(Option::take) {
            let _ = t.join();
        }
    }
}

type Events = Box<dyn Fn(FromAssistUi) + Send>;

struct Ui {
    dpy: Display,
    fonts: Fonts,
    window: Window,
    gc: Gcontext,
    events: Events,
    state: State,
    /// Keysyms of each key code (`per` columns), from `min_keycode`.
    keymap: Vec<u32>,
    per: usize,
    min_keycode: u8,
    pressed: Option<Target>,
    hover: Option<Target>,
    focused: bool,
    /// The window is closed (rated, skipped or closed): only EOF is left.
    done: bool,
}

impl Ui {
    fn create(dpy: Display, fonts: Fonts, events: Events) -> Result<Self, ConsentError> {
        let conn = dpy.conn.clone();
        let window = conn.generate_id().map_err(x_err)?;
        // Top right, clear of what the customer works on.
        let x = (i32::from(dpy.width) - WIDTH - 24).max(0);
        let y = 24.min((i32::from(dpy.height) - HEIGHT).max(0));
        conn.create_window(
            dpy.root_depth,
            window,
            dpy.root,
            x as i16,
            y as i16,
            WIDTH as u16,
            HEIGHT as u16,
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
                    | EventMask::FOCUS_CHANGE
                    | EventMask::STRUCTURE_NOTIFY,
            ),
        )
        .map_err(x_err)?;
        dpy.name_window(window, TITLE)?;
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
            a._NET_WM_STATE,
            x11rb::protocol::xproto::AtomEnum::ATOM,
            &[a._NET_WM_STATE_ABOVE],
        )
        .map_err(x_err)?;
        let mut hints = WmSizeHints::new();
        hints.position = Some((WmSizeHintsSpecification::ProgramSpecified, x, y));
        hints.size = Some((WmSizeHintsSpecification::ProgramSpecified, WIDTH, HEIGHT));
        hints.min_size = Some((WIDTH, HEIGHT));
        hints.max_size = Some((WIDTH, HEIGHT));
        hints.set_normal_hints(&*conn, window).map_err(x_err)?;
        let gc = dpy.new_gc(window)?;
        let min_keycode = conn.setup().min_keycode;
        let mut ui = Self {
            dpy,
            fonts,
            window,
            gc,
            events,
            state: State::default(),
            keymap: Vec::new(),
            per: 1,
            min_keycode,
            pressed: None,
            hover: None,
            focused: false,
            done: false,
        };
        ui.load_keymap()?;
        ui.publish()?;
        conn.map_window(window).map_err(x_err)?;
        conn.flush().map_err(x_err)?;
        ui.dpy.request_above(window)?;
        Ok(ui)
    }

    fn load_keymap(&mut self) -> Result<(), ConsentError> {
        let setup = self.dpy.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = self
            .dpy
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        self.per = usize::from(reply.keysyms_per_keycode.max(1));
        self.keymap = reply.keysyms;
        self.min_keycode = min;
        Ok(())
    }

    fn keysym(&self, keycode: u8, shift: bool) -> u32 {
        let i = usize::from(keycode.saturating_sub(self.min_keycode)) * self.per;
        let col = |c: usize| self.keymap.get(i + c).copied().unwrap_or(0);
        let (lower, upper) = (col(0), col(1));
        if shift && upper != 0 { upper } else { lower }
    }

    fn run(mut self, rx: &mpsc::Receiver<Msg<Cmd>>, pump: JoinHandle<()>) {
        if let Err(e) = self.event_loop(rx) {
            (self.events)(FromAssistUi::Failed {
                message: e.to_string(),
            });
        }
        self.dpy.wake(self.window, true);
        let _ = self.dpy.conn.destroy_window(self.window);
        let _ = self.dpy.conn.flush();
        let _ = pump.join();
    }

    fn event_loop(&mut self, rx: &mpsc::Receiver<Msg<Cmd>>) -> Result<(), ConsentError> {
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Msg::X(event)) => self.handle(event)?,
                Ok(Msg::Cmd(Cmd::Show(msg))) => {
                    self.apply(msg);
                    self.refresh()?;
                }
                Ok(Msg::Cmd(Cmd::Quit)) => return Ok(()),
                Ok(Msg::Lost(e)) => return Err(ConsentError::ConnectionLost(e)),
                Err(RecvTimeoutError::Timeout) => {
                    // The ask's countdown.
                    if (!self.state.asks.is_empty() || self.state.pin.is_some()) && !self.done {
                        self.paint()?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    fn apply(&mut self, msg: ToAssistUi) {
        let s = &mut self.state;
        match msg {
            ToAssistUi::Setup { site, server } => {
                s.site = plain_text(&site, MAX_SITE_CHARS);
                s.server = plain_text(&server, MAX_SITE_CHARS);
            }
            ToAssistUi::Status { text, connected } => {
                s.status = plain_text(&text, 120);
                s.connected = connected;
            }
            ToAssistUi::Participants { list } => {
                s.participants = list
                    .iter()
                    .take(16)
                    .map(|p| plain_text(p, MAX_NAME_CHARS + 16))
                    .collect();
            }
            ToAssistUi::Chat { from, text, kind } => {
                s.chat.push(ChatEntry {
                    from: plain_text(&from, MAX_NAME_CHARS),
                    text: plain_text(&text, 4096),
                    kind,
                });
                if s.chat.len() > KEEP_LINES {
                    s.chat.remove(0);
                }
            }
            ToAssistUi::Switches { list } => {
                s.switches = list
                    .into_iter()
                    .take(8)
                    .map(|sw| Switch {
                        label: plain_text(&sw.label, 60),
                        ..sw
                    })
                    .collect();
            }
            ToAssistUi::Ask {
                id,
                label,
                technician,
                timeout_ms,
                ..
            } => {
                s.asks.retain(|a| a.id != id);
                s.asks.push(Ask {
                    id,
                    label: plain_text(&label, 60),
                    technician: plain_text(&technician, MAX_NAME_CHARS),
                    until: Instant::now() + Duration::from_millis(timeout_ms.min(3_600_000)),
                });
            }
            ToAssistUi::AskDone { id } => s.asks.retain(|a| a.id != id),
            ToAssistUi::AskPin {
                technician,
                group,
                timeout_ms,
            } => {
                s.pin = Some(PinAsk {
                    technician: plain_text(&technician, MAX_NAME_CHARS),
                    group: plain_text(&group, 64),
                    until: Instant::now() + Duration::from_millis(timeout_ms.min(3_600_000)),
                    installing: false,
                });
            }
            ToAssistUi::PinDone { .. } => s.pin = None,
            ToAssistUi::Ended { reason, rating } => {
                s.asks.clear();
                s.pin = None;
                s.screen = Screen::Ended {
                    reason: plain_text(&reason, 200),
                    rating,
                };
            }
        }
    }

    /// The targets of the current screen, by name.
    fn targets(&self) -> Vec<(String, Rect, Target)> {
        let mut t = Vec::new();
        match &self.state.screen {
            Screen::Main => {
                if !self.state.asks.is_empty() {
                    t.push(("allow".into(), ALLOW, Target::Allow));
                    t.push(("deny".into(), DENY, Target::Deny));
                }
                for (i, sw) in self.state.switches.iter().enumerate() {
                    t.push((
                        format!("switch-{}", sw.right),
                        switch_rect(i),
                        Target::Switch(i),
                    ));
                }
                match &self.state.pin {
                    Some(p) if !p.installing => {
                        t.push(("pin-allow".into(), PIN_ALLOW, Target::PinAllow));
                        t.push(("pin-deny".into(), PIN_DENY, Target::PinDeny));
                    }
                    Some(_) => {}
                    None => t.push(("send".into(), SEND, Target::Send)),
                }
                t.push(("end".into(), END, Target::End));
            }
            Screen::Ended { rating: true, .. } => {
                for i in 0..5 {
                    t.push((
                        format!("star-{}", i + 1),
                        star_rect(i),
                        Target::Star(i as u8 + 1),
                    ));
                }
                t.push(("skip".into(), SKIP, Target::Skip));
                t.push(("submit".into(), SUBMIT, Target::Submit));
            }
            Screen::Ended { rating: false, .. } => {
                t.push(("close".into(), SUBMIT, Target::Skip));
            }
        }
        t
    }

    fn target_at(&self, x: i16, y: i16) -> Option<Target> {
        let (x, y) = (i32::from(x), i32::from(y));
        self.targets()
            .into_iter()
            .find(|(_, r, _)| r.contains(x, y))
            .map(|(_, _, t)| t)
    }

    /// Publishes the buttons and the status summary.
    fn publish(&self) -> Result<(), ConsentError> {
        let targets = self.targets();
        let mut named: Vec<(&str, Rect)> =
            targets.iter().map(|(n, r, _)| (n.as_str(), *r)).collect();
        match self.state.screen {
            Screen::Main if self.state.pin.is_none() => named.push(("entry", ENTRY)),
            Screen::Main => {}
            Screen::Ended { rating: true, .. } => named.push(("comment", COMMENT)),
            Screen::Ended { .. } => {}
        }
        self.dpy.publish_buttons(self.window, &named)?;
        let s = &self.state;
        let on: Vec<&str> = s
            .switches
            .iter()
            .filter(|sw| sw.on)
            .map(|sw| sw.right.as_str())
            .collect();
        let screen = match s.screen {
            Screen::Main => "main",
            Screen::Ended { rating: true, .. } => "rating",
            Screen::Ended { .. } => "ended",
        };
        let asks: Vec<String> = s.asks.iter().map(|a| a.id.to_string()).collect();
        let pin = match &s.pin {
            Some(p) if p.installing => "installing",
            Some(_) => "asked",
            None => "",
        };
        let status = format!(
            "screen={screen}; status={}; on={}; ask={}; chat={}; stars={}; pin={pin}",
            s.status,
            on.join(","),
            asks.join(","),
            s.chat.len(),
            s.stars
        );
        self.dpy.publish_status(self.window, &status)
    }

    fn refresh(&mut self) -> Result<(), ConsentError> {
        self.publish()?;
        self.paint()
    }

    fn emit(&self, e: FromAssistUi) {
        (self.events)(e);
    }

    fn geometry(&self) {
        let at = self
            .dpy
            .conn
            .translate_coordinates(self.window, self.dpy.root, 0, 0)
            .ok()
            .and_then(|c| c.reply().ok());
        if let Some(at) = at {
            self.emit(FromAssistUi::Geometry {
                x: i32::from(at.dst_x),
                y: i32::from(at.dst_y),
                w: WIDTH,
                h: HEIGHT,
                focused: self.focused,
            });
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), ConsentError> {
        if self.done {
            return Ok(());
        }
        match event {
            Event::Expose(e) if e.count == 0 => self.paint()?,
            Event::MapNotify(_) | Event::ConfigureNotify(_) => self.geometry(),
            Event::FocusIn(_) => {
                self.focused = true;
                self.geometry();
            }
            Event::FocusOut(_) => {
                self.focused = false;
                self.geometry();
            }
            Event::MappingNotify(_) => self.load_keymap()?,
            Event::MotionNotify(e) => {
                let hover = self.target_at(e.event_x, e.event_y);
                if hover != self.hover {
                    self.hover = hover;
                    self.paint()?;
                }
            }
            Event::LeaveNotify(_) if self.hover.take().is_some() => self.paint()?,
            Event::ButtonPress(e) if e.detail == 1 => {
                self.pressed = self.target_at(e.event_x, e.event_y);
            }
            Event::ButtonRelease(e) if e.detail == 1 => {
                let released = self.target_at(e.event_x, e.event_y);
                if let Some(t) = released.filter(|t| Some(t) == self.pressed.as_ref()) {
                    self.pressed = None;
                    self.click(t)?;
                } else {
                    self.pressed = None;
                }
            }
            Event::KeyPress(e) => {
                let shift = u16::from(e.state) & u16::from(KeyButMask::SHIFT) != 0;
                let sym = self.keysym(e.detail, shift);
                self.key(sym)?;
            }
            Event::ClientMessage(e)
                if e.type_ == self.dpy.atoms.WM_PROTOCOLS
                    && e.data.as_data32()[0] == self.dpy.atoms.WM_DELETE_WINDOW =>
            {
                match self.state.screen {
                    Screen::Main => self.emit(FromAssistUi::End),
                    Screen::Ended { .. } => self.close(),
                }
            }
            Event::Error(e) => return Err(ConsentError::ConnectionLost(format!("X error: {e:?}"))),
            _ => {}
        }
        Ok(())
    }

    fn close(&mut self) {
        self.done = true;
        let _ = self.dpy.conn.unmap_window(self.window);
        let _ = self.dpy.conn.flush();
        self.emit(FromAssistUi::Closed);
    }

    fn click(&mut self, t: Target) -> Result<(), ConsentError> {
        match t {
            Target::Allow | Target::Deny => {
                // The oldest ask first.
                if let Some(ask) = self.state.asks.first().cloned() {
                    self.state.asks.remove(0);
                    self.emit(FromAssistUi::Answer {
                        id: ask.id,
                        allowed: t == Target::Allow,
                    });
                }
            }
            Target::Switch(i) => {
                // Switches only turn rights off: a right is only ever
                // given by answering an ask.
                if let Some(sw) = self.state.switches.get(i).filter(|sw| sw.on) {
                    self.emit(FromAssistUi::Revoke {
                        right: sw.right.clone(),
                    });
                }
            }
            Target::Send => self.send_entry(),
            Target::PinAllow | Target::PinDeny => {
                if let Some(p) = self.state.pin.as_mut().filter(|p| !p.installing) {
                    let allowed = t == Target::PinAllow;
                    if allowed {
                        p.installing = true;
                    } else {
                        self.state.pin = None;
                    }
                    self.emit(FromAssistUi::PinAnswer { allowed });
                }
            }
            Target::End => self.emit(FromAssistUi::End),
            Target::Star(n) => self.state.stars = n,
            Target::Submit => {
                let stars = self.state.stars;
                if (1..=5).contains(&stars) {
                    let comment = std::mem::take(&mut self.state.comment);
                    self.emit(FromAssistUi::Rating { stars, comment });
                }
                self.close();
                return Ok(());
            }
            Target::Skip => {
                self.close();
                return Ok(());
            }
        }
        self.refresh()
    }

    fn send_entry(&mut self) {
        let text = std::mem::take(&mut self.state.entry);
        let text = text.trim();
        if !text.is_empty() {
            self.emit(FromAssistUi::Chat {
                text: text.to_owned(),
            });
        }
    }

    fn key(&mut self, sym: u32) -> Result<(), ConsentError> {
        let rating = matches!(self.state.screen, Screen::Ended { rating: true, .. });
        let main = self.state.screen == Screen::Main;
        // The entry is hidden under the offer of permanent access.
        if (!rating && !main) || (main && self.state.pin.is_some()) {
            return Ok(());
        }
        let field = if main {
            &mut self.state.entry
        } else {
            &mut self.state.comment
        };
        match sym {
            0xff08 => {
                field.pop();
            }
            0xff0d | 0xff8d => {
                if main {
                    self.send_entry();
                }
            }
            _ => {
                let Some(c) = keysym_char(sym) else {
                    return Ok(());
                };
                if field.len() + c.len_utf8() <= MAX_ENTRY_BYTES {
                    field.push(c);
                }
            }
        }
        self.refresh()
    }

    fn paint(&mut self) -> Result<(), ConsentError> {
        let canvas = render(&self.fonts, &self.state, self.hover.as_ref());
        self.dpy.put_canvas(self.window, self.gc, &canvas)
    }
}

/// The character a keysym types (Latin-1 and Unicode keysyms).
fn keysym_char(sym: u32) -> Option<char> {
    let c = match sym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(sym)?,
        0x0100_0100..=0x0110_ffff => char::from_u32(sym - 0x0100_0000)?,
        _ => return None,
    };
    (!c.is_control()).then_some(c)
}

/// Greedy word wrap of `text` into lines at most `max` pixels wide.
fn wrap(style: Style<'_>, text: &str, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if style.width(&candidate) <= max {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // A word longer than a line is cut.
        let mut piece = String::new();
        for c in word.chars() {
            piece.push(c);
            if style.width(&piece) > max {
                piece.pop();
                lines.push(std::mem::take(&mut piece));
                piece.push(c);
            }
        }
        line = piece;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn button(c: &mut Canvas, fonts: &Fonts, r: Rect, label: &str, primary: bool, hover: bool) {
    if primary {
        c.round_rect(r, 6.0, if hover { ACCENT_HOVER } else { ACCENT });
        c.text_centered(Style::new(&fonts.bold, 14.0, 0xFFFFFF), r, label);
    } else {
        c.round_rect(r, 6.0, if hover { 0xECEFF2 } else { BG });
        c.round_rect_outline(r, 6.0, 1.0, 0xB8BFC7);
        c.text_centered(Style::new(&fonts.bold, 14.0, INK), r, label);
    }
}

fn entry_box(c: &mut Canvas, fonts: &Fonts, r: Rect, text: &str, placeholder: &str) {
    c.round_rect(r, 5.0, BG);
    c.round_rect_outline(r, 5.0, 1.0, 0x8C959F);
    let style = Style::new(&fonts.regular, 14.0, INK);
    let max = (r.w - 20) as f32;
    let baseline = (r.y as f32 + (r.h as f32 + style.cap_height()) / 2.0).round();
    if text.is_empty() {
        c.text(
            Style::new(&fonts.regular, 14.0, 0x8C959F),
            (r.x + 10) as f32,
            baseline,
            placeholder,
        );
        c.fill(Rect::new(r.x + 9, r.y + 7, 1, r.h - 14), INK);
        return;
    }
    // The end of what was typed stays in view.
    let mut shown: Vec<char> = text.chars().collect();
    while style.width(&shown.iter().collect::<String>()) > max && !shown.is_empty() {
        shown.remove(0);
    }
    let shown: String = shown.into_iter().collect();
    let w = c.text(style, (r.x + 10) as f32, baseline, &shown);
    c.fill(Rect::new(r.x + 11 + w as i32, r.y + 7, 1, r.h - 14), INK);
}

/// The offer of permanent access, over the chat: the question, what it
/// means, the countdown, Allow / Deny; once allowed, that it installs.
fn pin_panel(c: &mut Canvas, fonts: &Fonts, pin: &PinAsk, hover: Option<&Target>) {
    c.round_rect(PIN_PANEL, 8.0, ASK_BG);
    c.round_rect_outline(PIN_PANEL, 8.0, 1.0, ASK_BORDER);
    let x = (PIN_PANEL.x + 12) as f32;
    let w = (PIN_PANEL.w - 24) as f32;
    let question = Style::new(&fonts.bold, 14.0, INK);
    let text = format!(
        "Install permanent remote access for {} into group {}? This needs an administrator password.",
        pin.technician, pin.group
    );
    for (i, line) in wrap(question, &text, w).iter().take(4).enumerate() {
        c.text(question, x, 424.0 + 18.0 * i as f32, line);
    }
    let note = Style::new(&fonts.regular, 12.0, MUTED);
    let means = "A service stays on this computer after the session: the technicians of this \
                 site can connect to it without asking you again.";
    for (i, line) in wrap(note, means, w).iter().take(3).enumerate() {
        c.text(note, x, 502.0 + 16.0 * i as f32, line);
    }
    if pin.installing {
        c.text(
            Style::new(&fonts.bold, 13.0, WARN),
            x,
            590.0,
            "Installing… enter the administrator password if asked.",
        );
        return;
    }
    let left = pin.until.saturating_duration_since(Instant::now());
    let secs = format!("Denied in {} s", left.as_secs_f64().ceil() as u64);
    c.text(Style::new(&fonts.regular, 12.0, WARN), x, 590.0, &secs);
    button(
        c,
        fonts,
        PIN_DENY,
        "Deny",
        false,
        hover == Some(&Target::PinDeny),
    );
    button(
        c,
        fonts,
        PIN_ALLOW,
        "Allow",
        true,
        hover == Some(&Target::PinAllow),
    );
}

fn render(fonts: &Fonts, s: &State, hover: Option<&Target>) -> Canvas {
    let mut c = Canvas::new(WIDTH, HEIGHT, BG);
    let padf = PAD as f32;
    let max = (WIDTH - 2 * PAD) as f32;
    c.fill(Rect::new(0, 0, WIDTH, 4), ACCENT);
    c.text(
        Style::new(&fonts.bold, 11.0, ACCENT),
        padf,
        26.0,
        "JUMPGATE REMOTE SUPPORT",
    );
    let site = if s.site.is_empty() {
        "Remote support"
    } else {
        &s.site
    };
    let site = Style::new(&fonts.bold, 18.0, INK).fit(site, max);
    c.text(Style::new(&fonts.bold, 18.0, INK), padf, 50.0, &site);
    let muted12 = Style::new(&fonts.regular, 12.0, MUTED);
    c.text(muted12, padf, 68.0, &muted12.fit(&s.server, max));
    let hovering = |t: &Target| hover == Some(t);

    match &s.screen {
        Screen::Main => {
            c.fill(Rect::new(0, 78, WIDTH, 1), LINE);
            c.circle(padf + 5.0, 92.0, 5.0, if s.connected { OK } else { WARN });
            let status = Style::new(&fonts.bold, 14.0, INK);
            c.text(
                status,
                padf + 18.0,
                97.0,
                &status.fit(&s.status, max - 18.0),
            );
            let with = if s.participants.is_empty() {
                "No technician connected yet".to_owned()
            } else {
                format!("With: {}", s.participants.join(", "))
            };
            c.text(muted12, padf + 18.0, 115.0, &muted12.fit(&with, max - 18.0));

            // The ask, or what the customer should know.
            if let Some(ask) = s.asks.first() {
                c.round_rect(ASK_PANEL, 8.0, ASK_BG);
                c.round_rect_outline(ASK_PANEL, 8.0, 1.0, ASK_BORDER);
                let x = (ASK_PANEL.x + 12) as f32;
                let w = (DENY.x - ASK_PANEL.x - 20) as f32;
                let who = Style::new(&fonts.regular, 13.0, INK);
                c.text(
                    who,
                    x,
                    146.0,
                    &who.fit(&format!("{} asks to:", ask.technician), max - 24.0),
                );
                let what = Style::new(&fonts.bold, 14.0, INK);
                for (i, line) in wrap(what, &ask.label, w).iter().take(2).enumerate() {
                    c.text(what, x, 168.0 + 17.0 * i as f32, line);
                }
                let left = ask.until.saturating_duration_since(Instant::now());
                let mut more = String::new();
                if s.asks.len() > 1 {
                    more = format!(" · {} more waiting", s.asks.len() - 1);
                }
                let secs = format!("Denied in {} s{more}", left.as_secs_f64().ceil() as u64);
                c.text(Style::new(&fonts.regular, 12.0, WARN), x, 204.0, &secs);
                button(&mut c, fonts, DENY, "Deny", false, hovering(&Target::Deny));
                button(
                    &mut c,
                    fonts,
                    ALLOW,
                    "Allow",
                    true,
                    hovering(&Target::Allow),
                );
            } else {
                c.round_rect(ASK_PANEL, 8.0, PANEL);
                let x = (ASK_PANEL.x + 12) as f32;
                let note = Style::new(&fonts.regular, 13.0, MUTED);
                c.text(note, x, 152.0, "Nothing is shared until you allow it.");
                c.text(note, x, 172.0, "Turn anything off below at any time,");
                c.text(note, x, 192.0, "or end the session.");
            }

            c.text(
                Style::new(&fonts.bold, 12.0, MUTED),
                padf,
                (RIGHTS_TOP - 6) as f32,
                "WHAT THE TECHNICIAN MAY DO",
            );
            let label = Style::new(&fonts.regular, 14.0, INK);
            for (i, sw) in s.switches.iter().enumerate() {
                let r = switch_rect(i);
                let baseline = (RIGHTS_TOP + ROW_H * i as i32 + 20) as f32;
                c.text(label, padf, baseline, &label.fit(&sw.label, max - 110.0));
                let state = Style::new(&fonts.regular, 12.0, if sw.on { OK } else { MUTED });
                let word = if sw.on { "allowed" } else { "off" };
                c.text(state, (r.x - 8) as f32 - state.width(word), baseline, word);
                c.round_rect(r, 11.0, if sw.on { OK } else { SWITCH_OFF });
                let knob_x = if sw.on { r.x + r.w - 11 } else { r.x + 11 };
                c.circle(knob_x as f32, (r.y + 11) as f32, 8.0, BG);
            }

            if let Some(pin) = &s.pin {
                pin_panel(&mut c, fonts, pin, hover);
            } else {
                c.text(
                    Style::new(&fonts.bold, 12.0, MUTED),
                    padf,
                    (CHAT_BOX.y - 8) as f32,
                    "CHAT",
                );
                c.round_rect(CHAT_BOX, 6.0, PANEL);
                let body = Style::new(&fonts.regular, 13.0, INK);
                let width = (CHAT_BOX.w - 20) as f32;
                let mut lines: Vec<(String, u32, bool)> = Vec::new();
                for e in &s.chat {
                    let (who, color) = match e.kind {
                        ChatKind::Customer => ("You".to_owned(), INK),
                        ChatKind::Technician => (e.from.clone(), ACCENT),
                        ChatKind::System => (String::new(), MUTED),
                    };
                    let text = if who.is_empty() {
                        e.text.clone()
                    } else {
                        format!("{who}: {}", e.text)
                    };
                    for (i, l) in wrap(body, &text, width).into_iter().enumerate() {
                        lines.push((l, color, i == 0 && !who.is_empty()));
                    }
                }
                let fit = ((CHAT_BOX.h - 12) / CHAT_LINE_H) as usize;
                let start = lines.len().saturating_sub(fit);
                for (i, (line, color, first)) in lines[start..].iter().enumerate() {
                    let baseline = (CHAT_BOX.y + 20 + CHAT_LINE_H * i as i32) as f32;
                    let x = (CHAT_BOX.x + 10) as f32;
                    if *first && let Some((who, rest)) = line.split_once(": ") {
                        let w = c.text(
                            Style::new(&fonts.bold, 13.0, *color),
                            x,
                            baseline,
                            &format!("{who}:"),
                        );
                        c.text(body, x + w + 4.0, baseline, rest);
                    } else {
                        let style = Style::new(
                            &fonts.regular,
                            13.0,
                            if *color == MUTED { MUTED } else { INK },
                        );
                        c.text(style, x, baseline, line);
                    }
                }
                if lines.is_empty() {
                    c.text(
                        Style::new(&fonts.regular, 13.0, MUTED),
                        (CHAT_BOX.x + 10) as f32,
                        (CHAT_BOX.y + 20) as f32,
                        "Messages with the technician appear here.",
                    );
                }
                entry_box(&mut c, fonts, ENTRY, &s.entry, "Type a message…");
                button(&mut c, fonts, SEND, "Send", true, hovering(&Target::Send));
            }

            c.fill(Rect::new(0, END.y - 10, WIDTH, 1), LINE);
            let end_bg = if hovering(&Target::End) {
                0xA40E26
            } else {
                DANGER
            };
            c.round_rect(END, 6.0, end_bg);
            c.text_centered(Style::new(&fonts.bold, 14.0, 0xFFFFFF), END, "End session");
        }
        Screen::Ended { reason, rating } => {
            c.fill(Rect::new(0, 78, WIDTH, 1), LINE);
            c.text(
                Style::new(&fonts.bold, 18.0, INK),
                padf,
                112.0,
                "The session has ended",
            );
            let why = Style::new(&fonts.regular, 13.0, MUTED);
            for (i, line) in wrap(why, reason, max).iter().take(2).enumerate() {
                c.text(why, padf, 136.0 + 18.0 * i as f32, line);
            }
            if *rating {
                c.text(
                    Style::new(&fonts.regular, 14.0, INK),
                    padf,
                    (STARS_Y - 12) as f32,
                    "How was your support?",
                );
                for i in 0..5u8 {
                    let r = star_rect(usize::from(i));
                    let on = i < s.stars || hover == Some(&Target::Star(i + 1));
                    c.text_centered(
                        Style::new(&fonts.regular, 36.0, if on { STAR_ON } else { STAR_OFF }),
                        r,
                        "★",
                    );
                }
                c.text(
                    Style::new(&fonts.regular, 12.0, MUTED),
                    padf,
                    (COMMENT.y - 8) as f32,
                    "Comment (optional)",
                );
                entry_box(&mut c, fonts, COMMENT, &s.comment, "");
                button(&mut c, fonts, SKIP, "Skip", false, hovering(&Target::Skip));
                button(
                    &mut c,
                    fonts,
                    SUBMIT,
                    "Send rating",
                    true,
                    hovering(&Target::Submit),
                );
            } else {
                button(
                    &mut c,
                    fonts,
                    SUBMIT,
                    "Close",
                    true,
                    hovering(&Target::Skip),
                );
            }
            let note = Style::new(&fonts.regular, 12.0, MUTED);
            c.text(
                note,
                padf,
                420.0,
                "Nothing is shared any more. Closing this window",
            );
            c.text(
                note,
                padf,
                438.0,
                "removes the support program from this computer.",
            );
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keysyms_type_their_characters() {
        assert_eq!(keysym_char(0x61), Some('a'));
        assert_eq!(keysym_char(0xe9), Some('é'));
        assert_eq!(keysym_char(0x0100_20ac), Some('€'));
        assert_eq!(keysym_char(0xff0d), None);
    }

    #[test]
    fn buttons_do_not_overlap() {
        let mut all = vec![ALLOW, DENY, CHAT_BOX, ENTRY, SEND, END];
        // The offer's buttons only share the chat's place, never a switch's.
        for pin in [PIN_ALLOW, PIN_DENY] {
            assert!(pin.y >= PIN_PANEL.y && pin.y + pin.h <= PIN_PANEL.y + PIN_PANEL.h);
        }
        const { assert!(PIN_PANEL.y + PIN_PANEL.h < END.y) };
        assert!(switch_rect(4).y + 22 < PIN_PANEL.y);
        const { assert!(PIN_DENY.x + PIN_DENY.w <= PIN_ALLOW.x) };
        all.extend((0..5).map(switch_rect));
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                let apart =
                    a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
        assert!(switch_rect(4).y + 22 < CHAT_BOX.y - 20);
        const { assert!(END.y + END.h <= HEIGHT) };
    }
}
