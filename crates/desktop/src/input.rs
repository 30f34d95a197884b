//! Input injection through XTEST.
//!
//! Pointer positions are in the coordinates of the area being shown to the
//! technician ([`Input::set_area`]: a monitor, or the whole screen).
//!
//! Keys are given as keysyms (what the key should produce), not keycodes,
//! so that what the technician types arrives as typed whatever the
//! endpoint's keyboard layout:
//! - a keysym in the current keymap is pressed on its keycode, with Shift
//!   (level 2), AltGr (`ISO_Level3_Shift`, levels 3–4) or `Mode_switch`
//!   (group 2) pressed or released around it as that level needs, Caps
//!   Lock taken into account for letters; modifiers the user or the
//!   technician holds are put back right after;
//! - a keysym missing from the keymap is bound to a spare keycode (one with
//!   no symbols) with `ChangeKeyboardMapping`, pressed, and the binding is
//!   restored when it has not been used for [`REBIND_AFTER`] (at the latest
//!   on [`Input::release_all`] or drop), the technique of `xdotool`.
//!
//! [`Input::release_all`] releases every key and button this side pressed
//! (no stuck modifiers when control is taken back).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::xproto::{self, ConnectionExt as _, KeyButMask};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use crate::capture::Rect;
use crate::display::DisplayTarget;
use crate::keysym::{self, equivalents, is_cased_letter, is_modifier};
use crate::{Error, Result};

/// A spare keycode bound to a missing keysym is restored once unused this long.
pub const REBIND_AFTER: Duration = Duration::from_secs(2);

const KEY_PRESS: u8 = 2;
const KEY_RELEASE: u8 = 3;
const BUTTON_PRESS: u8 = 4;
const BUTTON_RELEASE: u8 = 5;
const MOTION: u8 = 6;

/// A pointer button (X numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Button {
    Left,
    Middle,
    Right,
    /// "Back" side button (8).
    Back,
    /// "Forward" side button (9).
    Forward,
}

impl Button {
    fn code(self) -> u8 {
        match self {
            Self::Left => 1,
            Self::Middle => 2,
            Self::Right => 3,
            Self::Back => 8,
            Self::Forward => 9,
        }
    }
}

struct Keymap {
    min: u8,
    per: usize,
    syms: Vec<u32>,
    /// Keycodes of each of the 8 modifiers (Shift, Lock, Control, Mod1–5).
    modifiers: [Vec<u8>; 8],
}

impl Keymap {
    fn read(conn: &RustConnection) -> Result<Self> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let map = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        let mods = conn.get_modifier_mapping()?.reply()?;
        let per_mod = mods.keycodes.len() / 8;
        let mut modifiers: [Vec<u8>; 8] = Default::default();
        for (i, m) in modifiers.iter_mut().enumerate() {
            *m = mods.keycodes[i * per_mod..(i + 1) * per_mod]
                .iter()
                .copied()
                .filter(|k| *k != 0)
                .collect();
        }
        Ok(Self {
            min,
            per: usize::from(map.keysyms_per_keycode),
            syms: map.keysyms,
            modifiers,
        })
    }

    fn row(&self, keycode: u8) -> &[u32] {
        let i = usize::from(keycode - self.min) * self.per;
        &self.syms[i..i + self.per]
    }

    fn keycodes(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.syms.len() / self.per.max(1)).map(|i| self.min + i as u8)
    }

    /// The keycode and column producing `keysym`, the simplest column first
    /// (0: plain, 1: Shift, 2–3: Mode_switch, 4–5: AltGr).
    fn find(&self, keysym: u32) -> Option<(u8, usize)> {
        let wanted = equivalents(keysym);
        let usable = |col: usize| match col {
            0 | 1 => true,
            2 | 3 => self.keycode_of(keysym::MODE_SWITCH).is_some(),
            4 | 5 => self.keycode_of(keysym::ISO_LEVEL3_SHIFT).is_some(),
            _ => false,
        };
        (0..self.per.min(6)).filter(|c| usable(*c)).find_map(|col| {
            self.keycodes()
                .find(|k| wanted.contains(&self.row(*k)[col]))
                .map(|k| (k, col))
        })
    }

    /// A keycode whose column 0 is `keysym`.
    fn keycode_of(&self, keysym: u32) -> Option<u8> {
        self.keycodes().find(|k| self.row(*k)[0] == keysym)
    }

    /// Keycodes with no symbol at all (free for temporary bindings).
    fn spares(&self) -> Vec<u8> {
        self.keycodes()
            .filter(|k| self.row(*k).iter().all(|s| *s == 0))
            .collect()
    }

    /// The modifier index (0–7) a keycode belongs to.
    fn modifier_of(&self, keycode: u8) -> Option<usize> {
        self.modifiers.iter().position(|m| m.contains(&keycode))
    }
}

/// Injects input into one display (one X connection of its own).
pub struct Input {
    conn: RustConnection,
    root: xproto::Window,
    area: Option<Rect>,
    keymap: Keymap,
    /// Keysym pressed by the technician → the keycode pressed for it.
    down: HashMap<u32, u8>,
    buttons: BTreeSet<u8>,
    spares: Vec<u8>,
    /// Temporary bindings: keycode → (keysym, last use).
    bound: HashMap<u8, (u32, Instant)>,
    /// Keycodes whose mapping this side changed, in order: their
    /// MappingNotify events are not a reason to re-read the keymap.
    own_changes: std::collections::VecDeque<u8>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("area", &self.area)
            .field("keys_down", &self.down.len())
            .field("bound", &self.bound.len())
            .finish_non_exhaustive()
    }
}

impl Input {
    /// Connects to `target`; fails when the display has no XTEST.
    pub fn new(target: &DisplayTarget) -> Result<Self> {
        let (conn, screen) = target.connect()?;
        if conn
            .extension_information(x11rb::protocol::xtest::X11_EXTENSION_NAME)?
            .is_none()
        {
            return Err(Error::Unsupported("no XTEST extension (input)".into()));
        }
        conn.xtest_get_version(2, 2)?.reply()?;
        let root = conn.setup().roots[screen].root;
        let keymap = Keymap::read(&conn)?;
        let spares = keymap.spares();
        Ok(Self {
            conn,
            root,
            area: None,
            keymap,
            down: HashMap::new(),
            buttons: BTreeSet::new(),
            spares,
            bound: HashMap::new(),
            own_changes: Default::default(),
        })
    }

    /// Pointer coordinates are relative to `area` (root coordinates) and
    /// kept inside it; `None`: the whole screen.
    pub fn set_area(&mut self, area: Option<Rect>) {
        self.area = area;
    }

    /// Moves the pointer to (x, y) in the area's coordinates.
    pub fn move_to(&mut self, x: i32, y: i32) -> Result<()> {
        self.follow_keymap()?;
        let (x, y) = match self.area {
            Some(a) => (
                a.x + x.clamp(0, a.width as i32 - 1),
                a.y + y.clamp(0, a.height as i32 - 1),
            ),
            None => (x.max(0), y.max(0)),
        };
        let (x, y) = (
            x.min(i32::from(i16::MAX)) as i16,
            y.min(i32::from(i16::MAX)) as i16,
        );
        self.conn
            .xtest_fake_input(MOTION, 0, 0, self.root, x, y, 0)?;
        self.conn.flush()?;
        Ok(())
    }

    /// Presses or releases a button.
    pub fn button(&mut self, button: Button, down: bool) -> Result<()> {
        self.follow_keymap()?;
        self.raw_button(button.code(), down)?;
        self.conn.flush()?;
        Ok(())
    }

    fn raw_button(&mut self, code: u8, down: bool) -> Result<()> {
        if down {
            self.buttons.insert(code);
        } else {
            self.buttons.remove(&code);
        }
        self.conn.xtest_fake_input(
            if down { BUTTON_PRESS } else { BUTTON_RELEASE },
            code,
            0,
            self.root,
            0,
            0,
            0,
        )?;
        Ok(())
    }

    /// Wheel steps: `dy > 0` scrolls down (button 5), `dy < 0` up (4),
    /// `dx < 0` left (6), `dx > 0` right (7); each step is a click.
    pub fn scroll(&mut self, dx: i32, dy: i32) -> Result<()> {
        self.follow_keymap()?;
        for (steps, neg, pos) in [(dy, 4, 5), (dx, 6, 7)] {
            let code = if steps < 0 { neg } else { pos };
            for _ in 0..steps.unsigned_abs().min(100) {
                self.raw_button(code, true)?;
                self.raw_button(code, false)?;
            }
        }
        self.conn.flush()?;
        Ok(())
    }

    /// Presses or releases the key producing `keysym` (see the module
    /// documentation). Releasing a keysym that was not pressed does nothing.
    pub fn key(&mut self, keysym: u32, down: bool) -> Result<()> {
        self.follow_keymap()?;
        self.expire_bindings()?;
        if !down {
            if let Some(code) = self.down.remove(&keysym) {
                self.conn
                    .xtest_fake_input(KEY_RELEASE, code, 0, self.root, 0, 0, 0)?;
                if let Some(b) = self.bound.get_mut(&code) {
                    b.1 = Instant::now();
                }
                self.conn.flush()?;
            }
            return Ok(());
        }
        if let Some(code) = self.down.get(&keysym).copied() {
            // Auto-repeat from the technician's side: press again.
            self.conn
                .xtest_fake_input(KEY_PRESS, code, 0, self.root, 0, 0, 0)?;
            self.conn.flush()?;
            return Ok(());
        }
        let (code, col) = match self.keymap.find(keysym) {
            Some(found) => found,
            None => (self.bind(keysym)?, usize::MAX),
        };
        if is_modifier(keysym) || col == usize::MAX {
            // Modifiers, and keys bound for the moment (same symbol at every
            // level), go down as they are.
            self.conn
                .xtest_fake_input(KEY_PRESS, code, 0, self.root, 0, 0, 0)?;
        } else {
            self.press_at_level(keysym, code, col)?;
        }
        self.down.insert(keysym, code);
        self.conn.flush()?;
        Ok(())
    }

    /// Types `text` (press and release per character).
    pub fn type_text(&mut self, text: &str) -> Result<()> {
        for c in text.chars() {
            let ks = keysym::from_char(c);
            self.key(ks, true)?;
            self.key(ks, false)?;
        }
        self.sync()
    }

    /// Releases every key and button pressed through this `Input`, and
    /// restores temporary key bindings.
    pub fn release_all(&mut self) -> Result<()> {
        let keys: BTreeSet<u8> = self.down.drain().map(|(_, c)| c).collect();
        for code in keys {
            self.conn
                .xtest_fake_input(KEY_RELEASE, code, 0, self.root, 0, 0, 0)?;
        }
        for code in std::mem::take(&mut self.buttons) {
            self.conn
                .xtest_fake_input(BUTTON_RELEASE, code, 0, self.root, 0, 0, 0)?;
        }
        let bound: Vec<u8> = self.bound.keys().copied().collect();
        for code in bound {
            self.unbind(code)?;
        }
        self.sync()
    }

    /// Waits until the server has processed everything sent (and reports a
    /// display that went away).
    pub fn sync(&mut self) -> Result<()> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }

    /// Presses `code` with the modifiers column `col` needs, then puts the
    /// modifiers back as they were.
    fn press_at_level(&mut self, keysym: u32, code: u8, col: usize) -> Result<()> {
        let state = self.conn.query_pointer(self.root)?.reply()?.mask;
        let held = self.conn.query_keymap()?.reply()?.keys;
        let is_down = |k: u8| held[usize::from(k / 8)] & (1 << (k % 8)) != 0;
        let mut need_shift = col % 2 == 1;
        if state.contains(KeyButMask::LOCK) && is_cased_letter(keysym) {
            need_shift = !need_shift;
        }
        let mut pressed: Vec<u8> = Vec::new();
        let mut released: Vec<u8> = Vec::new();
        // (needed, the modifier index its keycodes are in, keysym to press)
        let l3 = self.keymap.keycode_of(keysym::ISO_LEVEL3_SHIFT);
        let ms = self.keymap.keycode_of(keysym::MODE_SWITCH);
        let mut plan = vec![(
            need_shift,
            Some(0usize),
            self.keymap
                .keycode_of(keysym::SHIFT_L)
                .or(self.keymap.keycode_of(keysym::SHIFT_R)),
        )];
        if let Some(k) = l3 {
            plan.push((matches!(col, 4 | 5), self.keymap.modifier_of(k), Some(k)));
        }
        if let Some(k) = ms
            && self.keymap.modifier_of(k) != l3.and_then(|k| self.keymap.modifier_of(k))
        {
            plan.push((matches!(col, 2 | 3), self.keymap.modifier_of(k), Some(k)));
        }
        for (needed, index, key) in plan {
            let Some(index) = index else { continue };
            let active = state.bits() & (1 << index) != 0;
            if needed && !active {
                if let Some(k) = key {
                    self.conn
                        .xtest_fake_input(KEY_PRESS, k, 0, self.root, 0, 0, 0)?;
                    pressed.push(k);
                }
            } else if !needed && active {
                for k in self.keymap.modifiers[index].clone() {
                    if is_down(k) {
                        self.conn
                            .xtest_fake_input(KEY_RELEASE, k, 0, self.root, 0, 0, 0)?;
                        released.push(k);
                    }
                }
            }
        }
        self.conn
            .xtest_fake_input(KEY_PRESS, code, 0, self.root, 0, 0, 0)?;
        for k in pressed {
            self.conn
                .xtest_fake_input(KEY_RELEASE, k, 0, self.root, 0, 0, 0)?;
        }
        for k in released {
            self.conn
                .xtest_fake_input(KEY_PRESS, k, 0, self.root, 0, 0, 0)?;
        }
        Ok(())
    }

    /// Binds `keysym` to a spare keycode (reusing the least recently used
    /// temporary binding when none is free).
    fn bind(&mut self, keysym: u32) -> Result<u8> {
        let code = match self
            .spares
            .iter()
            .copied()
            .find(|k| !self.bound.contains_key(k))
        {
            Some(k) => k,
            None => {
                let in_use: BTreeSet<u8> = self.down.values().copied().collect();
                self.bound
                    .iter()
                    .filter(|(k, _)| !in_use.contains(k))
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(k, _)| *k)
                    .ok_or(Error::NoKeycode(keysym))?
            }
        };
        self.set_mapping(code, keysym)?;
        self.bound.insert(code, (keysym, Instant::now()));
        // Clients must see the MappingNotify before the key event; the
        // server sends it first, the round trip makes sure it was sent.
        self.sync()?;
        Ok(code)
    }

    fn unbind(&mut self, code: u8) -> Result<()> {
        self.bound.remove(&code);
        self.set_mapping(code, 0)
    }

    fn set_mapping(&mut self, code: u8, keysym: u32) -> Result<()> {
        let syms = [keysym, keysym];
        self.conn.change_keyboard_mapping(1, code, 2, &syms)?;
        self.own_changes.push_back(code);
        let per = self.keymap.per;
        let i = usize::from(code - self.keymap.min) * per;
        for (j, s) in self.keymap.syms[i..i + per].iter_mut().enumerate() {
            *s = if j < 2 { keysym } else { 0 };
        }
        Ok(())
    }

    /// Reads the events this connection gets (it selects none, but every
    /// client gets MappingNotify): a keymap changed by someone else (the
    /// user switched layout) is read again, so keysyms keep arriving as
    /// typed. X errors caused by input requests are logged.
    fn follow_keymap(&mut self) -> Result<()> {
        let mut stale = false;
        while let Some(e) = self.conn.poll_for_event()? {
            match e {
                x11rb::protocol::Event::MappingNotify(m) => {
                    let ours = m.request == xproto::Mapping::KEYBOARD
                        && m.count == 1
                        && self.own_changes.front() == Some(&m.first_keycode);
                    if ours {
                        self.own_changes.pop_front();
                    } else if m.request != xproto::Mapping::POINTER {
                        stale = true;
                    }
                }
                x11rb::protocol::Event::Error(x) => {
                    tracing::debug!(error = ?x.error_kind, "input: X error")
                }
                _ => {}
            }
        }
        if stale {
            tracing::debug!("keymap changed: reading it again");
            self.keymap = Keymap::read(&self.conn)?;
            self.own_changes.clear();
            // Bindings of ours that survived stay ours; the new keymap's
            // empty keycodes are the spares.
            let survived: Vec<u8> = self
                .bound
                .iter()
                .filter(|(k, (ks, _))| self.keymap.row(**k)[0] == *ks)
                .map(|(k, _)| *k)
                .collect();
            self.bound.retain(|k, _| survived.contains(k));
            self.spares = self.keymap.spares();
            self.spares.extend(survived);
        }
        Ok(())
    }

    fn expire_bindings(&mut self) -> Result<()> {
        let in_use: BTreeSet<u8> = self.down.values().copied().collect();
        let old: Vec<u8> = self
            .bound
            .iter()
            .filter(|(k, (_, t))| !in_use.contains(k) && t.elapsed() >= REBIND_AFTER)
            .map(|(k, _)| *k)
            .collect();
        for code in old {
            self.unbind(code)?;
        }
        Ok(())
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        // Best effort: a display that is gone has nothing to release.
        let _ = self.release_all();
    }
}
