//! Screen capture: full frames, changed regions, cursor, monitors.
//!
//! [`Capturer::next_update`] is the loop's one call: the first update (and
//! the first after a resolution or monitor change) is a full frame; later
//! ones carry only the rectangles that changed, refreshed in the frame
//! buffer; an idle screen produces nothing until the timeout.
//!
//! - Pixels come through MIT-SHM when the display offers it (the server
//!   writes into a shared segment it created and handed over as a file
//!   descriptor, mapped read-only here), and through plain `GetImage`
//!   otherwise (remote displays, servers without SHM 1.2). With DAMAGE and
//!   MIT-SHM the frame *is* the segment: each change is read as whole rows
//!   of the captured area, which the server writes in place, and nothing
//!   is copied on this side.
//! - Changes come from a DAMAGE object on the root window (raw rectangles).
//!   Without DAMAGE, frames are compared in 64×64 tiles every
//!   [`CaptureOptions::poll_interval`].
//! - The cursor is not in captured frames (X leaves it out); its image and
//!   position come from XFIXES ([`Capturer::cursor`]), its position alone
//!   from `QueryPointer` ([`Capturer::pointer`]).
//! - Monitors come from RandR 1.5 (`GetMonitors`); a RandR screen change
//!   (or a root ConfigureNotify) re-reads the size and monitors and makes
//!   the next update a full frame of the new size, on the same connection.

use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    self, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat, ImageOrder,
};
use x11rb::rust_connection::RustConnection;

use crate::display::DisplayTarget;
use crate::shm_map::ShmMap;
use crate::wait::event_until;
use crate::{Error, Result};

/// Size of the tiles compared when DAMAGE is missing.
pub const TILE: u32 = 64;

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn new(x: i32, y: i32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    fn right(&self) -> i64 {
        i64::from(self.x) + i64::from(self.width)
    }

    fn bottom(&self) -> i64 {
        i64::from(self.y) + i64::from(self.height)
    }

    /// The part of `self` inside `other`, if any.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let x = self.x.max(other.x);
        let y = self.y.max(other.y);
        let r = self.right().min(other.right());
        let b = self.bottom().min(other.bottom());
        (r > i64::from(x) && b > i64::from(y))
            .then(|| Self::new(x, y, (r - i64::from(x)) as u32, (b - i64::from(y)) as u32))
    }

    /// The smallest rectangle holding both.
    pub fn union(&self, other: &Self) -> Self {
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        let r = self.right().max(other.right());
        let b = self.bottom().max(other.bottom());
        Self::new(x, y, (r - i64::from(x)) as u32, (b - i64::from(y)) as u32)
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Self) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }
}

/// A monitor of the display (RandR 1.5), in root-window coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub name: String,
    pub primary: bool,
    pub rect: Rect,
}

/// What to capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Selection {
    /// The whole screen (every monitor).
    #[default]
    All,
    /// One monitor, by its RandR name (e.g. `DVI-0`, or `screen` on a
    /// display without RandR monitors). An unknown name is refused
    /// ([`Error::NoSuchMonitor`]); a monitor that disappears mid-session
    /// leaves capture on the whole screen.
    Monitor(String),
}

/// Capture settings.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub selection: Selection,
    /// Do not use MIT-SHM even when available (tests, benchmarks).
    pub force_get_image: bool,
    /// Do not use DAMAGE even when available: compare tiles.
    pub force_tiles: bool,
    /// How often tiles are compared without DAMAGE.
    pub poll_interval: Duration,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            selection: Selection::All,
            force_get_image: false,
            force_tiles: false,
            poll_interval: Duration::from_millis(50),
        }
    }
}

/// A captured image: BGRx, 4 bytes per pixel, `stride` bytes per row.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    /// The pixels (`stride * height` bytes; a byte slice through `Deref`).
    pub data: FrameData,
}

/// A frame's pixels: its own buffer, or (capture through MIT-SHM with
/// DAMAGE) the shared segment the X server writes the screen into, where
/// the capturer keeps the current image with no copy of its own. A clone
/// is always its own buffer, so pixels seen through one never change.
pub struct FrameData(Pixelbuf);

enum Pixelbuf {
    Owned(Vec<u8>),
    Shared(Arc<ShmMap>, usize),
}

impl FrameData {
    fn owned(len: usize) -> Self {
        Self(Pixelbuf::Owned(vec![0; len]))
    }

    fn as_mut_vec(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.0 {
            Pixelbuf::Owned(v) => Some(v),
            Pixelbuf::Shared(..) => None,
        }
    }
}

impl std::ops::Deref for FrameData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Pixelbuf::Owned(v) => v,
            Pixelbuf::Shared(map, len) => map.bytes(*len),
        }
    }
}

impl Clone for FrameData {
    fn clone(&self) -> Self {
        Self(Pixelbuf::Owned(self.to_vec()))
    }
}

impl Default for FrameData {
    fn default() -> Self {
        Self(Pixelbuf::Owned(Vec::new()))
    }
}

impl std::fmt::Debug for FrameData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameData")
            .field("len", &self.len())
            .field("shared", &matches!(self.0, Pixelbuf::Shared(..)))
            .finish()
    }
}

impl Frame {
    fn new(width: u32, height: u32) -> Self {
        let stride = width as usize * 4;
        Self {
            width,
            height,
            stride,
            data: FrameData::owned(stride * height as usize),
        }
    }

    /// A frame kept in the capture segment `map` (at its start).
    fn shared(width: u32, height: u32, map: Arc<ShmMap>) -> Self {
        let stride = width as usize * 4;
        Self {
            width,
            height,
            stride,
            data: FrameData(Pixelbuf::Shared(map, stride * height as usize)),
        }
    }

    /// The pixel at (x, y) as `[b, g, r, x]` (panics outside the frame).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = y as usize * self.stride + x as usize * 4;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }

    /// The pixel at (x, y) as `0xRRGGBB`.
    pub fn rgb(&self, x: u32, y: u32) -> u32 {
        let [b, g, r, _] = self.pixel(x, y);
        u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b)
    }
}

/// What changed since the previous update.
#[derive(Debug)]
pub struct Update<'a> {
    /// The whole frame is new: the first update, or the size or monitor
    /// changed (then `frame` has the new size).
    pub full: bool,
    /// Changed rectangles in frame coordinates, already refreshed in
    /// `frame` (the whole frame when `full`; empty when only the cursor
    /// shape changed).
    pub rects: Vec<Rect>,
    /// The cursor image changed (read it with [`Capturer::cursor`]).
    pub cursor_changed: bool,
    /// The current image of the captured area.
    pub frame: &'a Frame,
}

/// The cursor as XFIXES reports it.
#[derive(Debug, Clone)]
pub struct CursorImage {
    /// Position of the hot spot, relative to the captured area.
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub xhot: u32,
    pub yhot: u32,
    /// Changes whenever the image does.
    pub serial: u32,
    /// `width * height` pixels, ARGB with premultiplied alpha, one `u32`
    /// each (`0xAARRGGBB`).
    pub pixels: Vec<u32>,
}

enum Pixels {
    Shm {
        seg: shm::Seg,
        map: Arc<ShmMap>,
        size: usize,
    },
    GetImage,
}

enum Changes {
    Damage(damage::Damage),
    Tiles,
}

/// Captures one display (one X connection of its own).
pub struct Capturer {
    conn: RustConnection,
    root: xproto::Window,
    opts: CaptureOptions,
    pixels: Pixels,
    changes: Changes,
    has_xfixes: bool,
    has_randr: bool,
    screen: (u32, u32),
    monitors: Vec<Monitor>,
    /// The captured area in root coordinates.
    region: Rect,
    frame: Frame,
    /// Tile comparison's copy of the previous frame (kept to reuse its memory).
    previous: Frame,
    scratch: Vec<u8>,
    full_pending: bool,
    cursor_changed: bool,
    last_poll: Option<Instant>,
}

impl std::fmt::Debug for Capturer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capturer")
            .field("shm", &self.uses_shm())
            .field("damage", &self.uses_damage())
            .field("screen", &self.screen)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Capturer {
    /// Connects to `target` and prepares capture (nothing is read yet).
    pub fn new(target: &DisplayTarget, opts: CaptureOptions) -> Result<Self> {
        let (conn, screen_num) = target.connect()?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_num];
        let root = screen.root;
        let format = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == screen.root_depth);
        if !matches!(format, Some(f) if f.bits_per_pixel == 32)
            || !(screen.root_depth == 24 || screen.root_depth == 32)
        {
            return Err(Error::Unsupported(format!(
                "root depth {} is not 24/32 bits in 32-bit pixels",
                screen.root_depth
            )));
        }
        if setup.image_byte_order != ImageOrder::LSB_FIRST {
            return Err(Error::Unsupported(
                "most-significant-byte-first images".into(),
            ));
        }
        let has = |name: &'static str| -> Result<bool> {
            Ok(conn.extension_information(name)?.is_some())
        };
        let has_shm = !opts.force_get_image && has(shm::X11_EXTENSION_NAME)?;
        let has_damage = !opts.force_tiles && has(damage::X11_EXTENSION_NAME)?;
        let has_xfixes = has(xfixes::X11_EXTENSION_NAME)?;
        let has_randr = has(randr::X11_EXTENSION_NAME)?;
        if has_xfixes {
            // XFIXES must be told the client's version before any other request.
            conn.xfixes_query_version(5, 0)?.reply()?;
            conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)?
                .check()?;
        }
        if has_randr {
            conn.randr_query_version(1, 5)?.reply()?;
            // Screen size, and CRTC/output changes (a monitor switched,
            // moved or added without the screen size changing).
            conn.randr_select_input(
                root,
                randr::NotifyMask::SCREEN_CHANGE
                    | randr::NotifyMask::CRTC_CHANGE
                    | randr::NotifyMask::OUTPUT_CHANGE,
            )?
            .check()?;
        }
        conn.change_window_attributes(
            root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )?
        .check()?;
        let changes = if has_damage {
            conn.damage_query_version(1, 1)?.reply()?;
            let id = conn.generate_id()?;
            conn.damage_create(id, root, damage::ReportLevel::RAW_RECTANGLES)?
                .check()?;
            Changes::Damage(id)
        } else {
            Changes::Tiles
        };
        let screen_size = (
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        );
        let shm_ok = has_shm && {
            let v = conn.shm_query_version()?.reply()?;
            (v.major_version, v.minor_version) >= (1, 2)
        };
        let mut me = Self {
            conn,
            root,
            opts,
            pixels: Pixels::GetImage,
            changes,
            has_xfixes,
            has_randr,
            screen: screen_size,
            monitors: Vec::new(),
            region: Rect::new(0, 0, screen_size.0, screen_size.1),
            frame: Frame::default(),
            previous: Frame::default(),
            scratch: Vec::new(),
            full_pending: true,
            cursor_changed: false,
            last_poll: None,
        };
        if shm_ok {
            me.pixels = me.new_segment()?;
        }
        me.monitors = me.read_monitors()?;
        if let Selection::Monitor(name) = &me.opts.selection
            && !me.monitors.iter().any(|m| &m.name == name)
        {
            return Err(Error::NoSuchMonitor(name.clone()));
        }
        me.reconfigure()?;
        Ok(me)
    }

    /// Whether pixels come through MIT-SHM.
    pub fn uses_shm(&self) -> bool {
        matches!(self.pixels, Pixels::Shm { .. })
    }

    /// Whether changes come from DAMAGE (rather than tile comparison).
    pub fn uses_damage(&self) -> bool {
        matches!(self.changes, Changes::Damage(_))
    }

    /// The screen's size (all monitors).
    pub fn screen_size(&self) -> (u32, u32) {
        self.screen
    }

    /// The monitors, as of the last update.
    pub fn monitors(&self) -> &[Monitor] {
        &self.monitors
    }

    /// The captured area, in root coordinates.
    pub fn region(&self) -> Rect {
        self.region
    }

    /// The current frame (as of the last update).
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Reads the whole captured area now (a screenshot), whatever changed.
    /// After a resolution change the frame has the new size (and the next
    /// update is still a full frame).
    pub fn snapshot(&mut self) -> Result<&Frame> {
        // A size change that raced the read reconfigures: read again.
        for _ in 0..3 {
            if self.try_grab(self.region)? {
                return Ok(&self.frame);
            }
        }
        Err(Error::Protocol("the display kept changing size".into()))
    }

    /// Capture another monitor (or all); the next update is a full frame.
    pub fn select(&mut self, selection: Selection) -> Result<()> {
        if let Selection::Monitor(name) = &selection
            && !self.monitors.iter().any(|m| &m.name == name)
        {
            return Err(Error::NoSuchMonitor(name.clone()));
        }
        self.opts.selection = selection;
        self.reconfigure()
    }

    /// Waits up to `timeout` for something to change. `None`: nothing did
    /// (an idle screen). The first update, and the first after a size or
    /// monitor change, is a full frame.
    pub fn next_update(&mut self, timeout: Duration) -> Result<Option<Update<'_>>> {
        let deadline = Instant::now() + timeout;
        let mut dirty: Vec<Rect> = Vec::new();
        // Events first: a resize that happened while the caller was busy
        // must not be answered with a frame of the old size.
        while let Some(e) = self.conn.poll_for_event()? {
            self.handle(e, &mut dirty)?;
        }
        loop {
            if self.full_pending {
                self.full_pending = false;
                self.cursor_changed = false;
                let all = Rect::new(0, 0, self.region.width, self.region.height);
                if !self.try_grab(self.region)? {
                    continue;
                }
                // Damage already queued is covered by this frame.
                while let Some(e) = self.conn.poll_for_event()? {
                    self.handle(e, &mut Vec::new())?;
                }
                if self.full_pending {
                    // Reconfigured again while reading: read the new size.
                    continue;
                }
                return Ok(Some(Update {
                    full: true,
                    rects: vec![all],
                    cursor_changed: true,
                    frame: &self.frame,
                }));
            }
            if !dirty.is_empty() {
                let Some(rects) = self.refresh(std::mem::take(&mut dirty))? else {
                    continue; // Reconfigured: a full frame follows.
                };
                let cursor_changed = std::mem::take(&mut self.cursor_changed);
                return Ok(Some(Update {
                    full: false,
                    rects,
                    cursor_changed,
                    frame: &self.frame,
                }));
            }
            if matches!(self.changes, Changes::Tiles) {
                let due = self
                    .last_poll
                    .map_or(Instant::now(), |t| t + self.opts.poll_interval);
                if Instant::now() >= due {
                    self.last_poll = Some(Instant::now());
                    let Some(rects) = self.compare_tiles()? else {
                        continue; // Reconfigured: a full frame follows.
                    };
                    let cursor_changed = std::mem::take(&mut self.cursor_changed);
                    if !rects.is_empty() || cursor_changed {
                        return Ok(Some(Update {
                            full: false,
                            rects,
                            cursor_changed,
                            frame: &self.frame,
                        }));
                    }
                }
            }
            if self.cursor_changed {
                self.cursor_changed = false;
                return Ok(Some(Update {
                    full: false,
                    rects: Vec::new(),
                    cursor_changed: true,
                    frame: &self.frame,
                }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let until = match (&self.changes, self.last_poll) {
                (Changes::Tiles, Some(t)) => deadline.min(t + self.opts.poll_interval),
                _ => deadline,
            };
            let Some(e) = event_until(&self.conn, until)? else {
                continue;
            };
            self.handle(e, &mut dirty)?;
            // Take every event already here, so one update covers a burst.
            while let Some(e) = self.conn.poll_for_event()? {
                self.handle(e, &mut dirty)?;
            }
        }
    }

    /// The cursor image and position (XFIXES).
    pub fn cursor(&self) -> Result<CursorImage> {
        if !self.has_xfixes {
            return Err(Error::Unsupported(
                "no XFIXES extension (cursor image)".into(),
            ));
        }
        let c = self.conn.xfixes_get_cursor_image()?.reply()?;
        Ok(CursorImage {
            x: i32::from(c.x) - self.region.x,
            y: i32::from(c.y) - self.region.y,
            width: u32::from(c.width),
            height: u32::from(c.height),
            xhot: u32::from(c.xhot),
            yhot: u32::from(c.yhot),
            serial: c.cursor_serial,
            pixels: c.cursor_image,
        })
    }

    /// The pointer position relative to the captured area (may be outside
    /// it when another monitor holds the pointer).
    pub fn pointer(&self) -> Result<(i32, i32)> {
        let p = self.conn.query_pointer(self.root)?.reply()?;
        Ok((
            i32::from(p.root_x) - self.region.x,
            i32::from(p.root_y) - self.region.y,
        ))
    }

    fn handle(&mut self, e: Event, dirty: &mut Vec<Rect>) -> Result<()> {
        match e {
            Event::DamageNotify(n) => {
                let a = n.area;
                let r = Rect::new(
                    i32::from(a.x),
                    i32::from(a.y),
                    u32::from(a.width),
                    u32::from(a.height),
                );
                if let Some(r) = r.intersect(&self.region) {
                    dirty.push(r);
                }
            }
            Event::XfixesCursorNotify(_) => self.cursor_changed = true,
            Event::RandrScreenChangeNotify(_)
            | Event::RandrNotify(_)
            | Event::ConfigureNotify(_) => {
                let g = self.conn.get_geometry(self.root)?.reply()?;
                let size = (u32::from(g.width), u32::from(g.height));
                let before = (self.screen, self.monitors.clone());
                self.screen = size;
                self.monitors = self.read_monitors()?;
                if before != (self.screen, self.monitors.clone()) {
                    tracing::debug!(width = size.0, height = size.1, "display reconfigured");
                    self.reconfigure()?;
                }
            }
            Event::Error(x) => {
                return Err(Error::Protocol(format!(
                    "{:?} (request {}.{})",
                    x.error_kind, x.major_opcode, x.minor_opcode
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Recomputes the captured area after a size, monitor or selection
    /// change; the next update is a full frame.
    fn reconfigure(&mut self) -> Result<()> {
        if self.monitors.is_empty() {
            self.monitors = self.read_monitors()?;
        }
        let whole = Rect::new(0, 0, self.screen.0, self.screen.1);
        self.region = match &self.opts.selection {
            Selection::All => whole,
            Selection::Monitor(name) => match self.monitors.iter().find(|m| &m.name == name) {
                Some(m) => m.rect.intersect(&whole).unwrap_or(whole),
                None => {
                    tracing::warn!(monitor = %name, "monitor gone: capturing the whole screen");
                    whole
                }
            },
        };
        if let Pixels::Shm { size, .. } = &self.pixels
            && *size < self.screen.0 as usize * self.screen.1 as usize * 4
        {
            let old = std::mem::replace(&mut self.pixels, Pixels::GetImage);
            if let Pixels::Shm { seg, .. } = old {
                self.conn.shm_detach(seg)?;
            }
            self.pixels = self.new_segment()?;
        }
        self.frame = match &self.pixels {
            // With DAMAGE the current image lives in the segment: the
            // server writes each change in place (whole rows of the
            // captured area, see `grab`), nothing is copied out of it.
            // Tile comparison keeps two frames of its own.
            Pixels::Shm { map, .. } if self.uses_damage() => {
                Frame::shared(self.region.width, self.region.height, Arc::clone(map))
            }
            _ => Frame::new(self.region.width, self.region.height),
        };
        self.full_pending = true;
        Ok(())
    }

    fn read_monitors(&self) -> Result<Vec<Monitor>> {
        let whole = vec![Monitor {
            name: "screen".into(),
            primary: true,
            rect: Rect::new(0, 0, self.screen.0, self.screen.1),
        }];
        if !self.has_randr {
            return Ok(whole);
        }
        let reply = match self.conn.randr_get_monitors(self.root, true)?.reply() {
            Ok(r) => r,
            // RandR older than 1.5: one monitor, the screen.
            Err(x11rb::errors::ReplyError::X11Error(_)) => return Ok(whole),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for m in reply.monitors {
            let name = self.conn.get_atom_name(m.name)?.reply()?;
            out.push(Monitor {
                name: String::from_utf8_lossy(&name.name).into_owned(),
                primary: m.primary,
                rect: Rect::new(
                    i32::from(m.x),
                    i32::from(m.y),
                    u32::from(m.width),
                    u32::from(m.height),
                ),
            });
        }
        Ok(if out.is_empty() { whole } else { out })
    }

    /// A shared segment the size of the whole screen, made by the server.
    fn new_segment(&self) -> Result<Pixels> {
        let size = self.screen.0 as usize * self.screen.1 as usize * 4;
        let seg = self.conn.generate_id()?;
        let reply = self
            .conn
            .shm_create_segment(seg, size as u32, false)?
            .reply()?;
        let map = Arc::new(ShmMap::new(&File::from(reply.shm_fd), size)?);
        Ok(Pixels::Shm { seg, map, size })
    }

    /// Reads `r` (root coordinates, inside the region) into the frame.
    fn grab(&mut self, r: Rect) -> Result<()> {
        let Some(r) = r.intersect(&self.region) else {
            return Ok(());
        };
        let row = r.width as usize * 4;
        let (fx, fy) = (
            (r.x - self.region.x) as usize,
            (r.y - self.region.y) as usize,
        );
        let stride = self.frame.stride;
        let direct = fx == 0 && r.width == self.frame.width && stride == row;
        let in_place = matches!(self.frame.data.0, Pixelbuf::Shared(..));
        match &self.pixels {
            Pixels::Shm { seg, .. } if in_place => {
                // The frame is the segment: the server writes the rows of
                // `r` across the whole captured area in place (its rows
                // are the frame's rows), so nothing is copied here.
                self.conn
                    .shm_get_image(
                        self.root,
                        self.region.x as i16,
                        r.y as i16,
                        self.region.width as u16,
                        r.height as u16,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        *seg,
                        (fy * stride) as u32,
                    )?
                    .reply()?;
                return Ok(());
            }
            _ => {}
        }
        let Some(frame) = self.frame.data.as_mut_vec() else {
            return Err(Error::Protocol("a shared frame without a segment".into()));
        };
        match &self.pixels {
            Pixels::Shm { seg, map, .. } => {
                self.conn
                    .shm_get_image(
                        self.root,
                        r.x as i16,
                        r.y as i16,
                        r.width as u16,
                        r.height as u16,
                        !0,
                        ImageFormat::Z_PIXMAP.into(),
                        *seg,
                        0,
                    )?
                    .reply()?;
                // The reply came: the server has written the segment.
                let src = map.bytes(row * r.height as usize);
                if direct {
                    let start = fy * stride;
                    frame[start..start + src.len()].copy_from_slice(src);
                    return Ok(());
                }
                for (y, line) in src.chunks_exact(row).enumerate() {
                    let dst = (fy + y) * stride + fx * 4;
                    frame[dst..dst + row].copy_from_slice(line);
                }
                return Ok(());
            }
            Pixels::GetImage => {
                let reply = self
                    .conn
                    .get_image(
                        ImageFormat::Z_PIXMAP,
                        self.root,
                        r.x as i16,
                        r.y as i16,
                        r.width as u16,
                        r.height as u16,
                        !0,
                    )?
                    .reply()?;
                self.scratch = reply.data;
                if self.scratch.len() < row * r.height as usize {
                    return Err(Error::Protocol(format!(
                        "GetImage returned {} bytes for {}x{}",
                        self.scratch.len(),
                        r.width,
                        r.height
                    )));
                }
            }
        }
        for y in 0..r.height as usize {
            let dst = (fy + y) * stride + fx * 4;
            frame[dst..dst + row].copy_from_slice(&self.scratch[y * row..(y + 1) * row]);
        }
        Ok(())
    }

    /// Reads `r`. An X error from a size change that raced the read (the
    /// rectangle is no longer on screen) reconfigures instead: `false`.
    fn try_grab(&mut self, r: Rect) -> Result<bool> {
        match self.grab(r) {
            Ok(()) => Ok(true),
            Err(Error::Protocol(e)) => {
                // The change's event came before the error: handle it.
                while let Some(ev) = self.conn.poll_for_event()? {
                    self.handle(ev, &mut Vec::new())?;
                }
                if self.full_pending {
                    Ok(false)
                } else {
                    Err(Error::Protocol(e))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Refreshes `rects` and returns them in frame coordinates (`None`:
    /// reconfigured meanwhile). One request for their bounding box, or one
    /// per rectangle when there are few and they are scattered (two small
    /// changes in opposite corners must not read the screen between them).
    fn refresh(&mut self, rects: Vec<Rect>) -> Result<Option<Vec<Rect>>> {
        let rects = merge(rects);
        let Some(bbox) = rects.iter().copied().reduce(|a, b| a.union(&b)) else {
            return Ok(Some(Vec::new()));
        };
        let area = |r: &Rect| u64::from(r.width) * u64::from(r.height);
        let sum: u64 = rects.iter().map(area).sum();
        if matches!(self.frame.data.0, Pixelbuf::Shared(..)) {
            // Read in place, whole rows at a time: one read per run of
            // rows that some rectangle covers.
            let mut rows: Vec<(i32, i32)> =
                rects.iter().map(|r| (r.y, r.y + r.height as i32)).collect();
            rows.sort_unstable();
            let mut bands: Vec<(i32, i32)> = Vec::new();
            for (a, b) in rows {
                match bands.last_mut() {
                    Some(last) if a <= last.1 => last.1 = last.1.max(b),
                    _ => bands.push((a, b)),
                }
            }
            for (a, b) in bands {
                if !self.try_grab(Rect::new(
                    self.region.x,
                    a,
                    self.region.width,
                    (b - a) as u32,
                ))? {
                    return Ok(None);
                }
            }
        } else if rects.len() <= 16 && sum * 2 < area(&bbox) {
            for r in &rects {
                if !self.try_grab(*r)? {
                    return Ok(None);
                }
            }
        } else if !self.try_grab(bbox)? {
            return Ok(None);
        }
        let (ox, oy) = (self.region.x, self.region.y);
        Ok(Some(
            rects
                .into_iter()
                .map(|r| Rect::new(r.x - ox, r.y - oy, r.width, r.height))
                .collect(),
        ))
    }

    /// Without DAMAGE: reads the whole area and reports the 64×64 tiles that
    /// differ from the previous frame.
    fn compare_tiles(&mut self) -> Result<Option<Vec<Rect>>> {
        // The frame becomes the previous one; the read overwrites all of
        // the other buffer (same size), so no copy is made.
        if (self.previous.width, self.previous.height) != (self.frame.width, self.frame.height) {
            self.previous = self.frame.clone();
        }
        std::mem::swap(&mut self.frame, &mut self.previous);
        if !self.try_grab(self.region)? {
            return Ok(None);
        }
        let old = &self.previous;
        let f = &self.frame;
        let mut out = Vec::new();
        for ty in (0..f.height).step_by(TILE as usize) {
            for tx in (0..f.width).step_by(TILE as usize) {
                let w = TILE.min(f.width - tx);
                let h = TILE.min(f.height - ty);
                let changed = (ty..ty + h).any(|y| {
                    let s = y as usize * f.stride + tx as usize * 4;
                    f.data[s..s + w as usize * 4] != old.data[s..s + w as usize * 4]
                });
                if changed {
                    out.push(Rect::new(tx as i32, ty as i32, w, h));
                }
            }
        }
        Ok(Some(out))
    }
}

/// Drops rectangles inside others and caps the list (raw DAMAGE reports one
/// per drawing operation): above 64, their bounding box.
fn merge(mut rects: Vec<Rect>) -> Vec<Rect> {
    // Containment checks are quadratic: a flood is its bounding box at once.
    if rects.len() > 512 {
        return rects
            .iter()
            .copied()
            .reduce(|a, b| a.union(&b))
            .into_iter()
            .collect();
    }
    rects.sort_by_key(|r| std::cmp::Reverse(u64::from(r.width) * u64::from(r.height)));
    let mut out: Vec<Rect> = Vec::new();
    for r in rects {
        if !out.iter().any(|o| o.contains(&r)) {
            out.push(r);
        }
    }
    if out.len() > 64 {
        let bbox = out.iter().copied().reduce(|a, b| a.union(&b));
        return bbox.into_iter().collect();
    }
    out
}

impl Drop for Capturer {
    fn drop(&mut self) {
        // Best effort: the server frees both when the connection closes anyway.
        if let Changes::Damage(d) = self.changes {
            let _ = self.conn.damage_destroy(d);
        }
        if let Pixels::Shm { seg, .. } = self.pixels {
            let _ = self.conn.shm_detach(seg);
        }
        let _ = self.conn.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_arithmetic() {
        let a = Rect::new(0, 0, 10, 10);
        let b = Rect::new(5, 5, 10, 10);
        assert_eq!(a.intersect(&b), Some(Rect::new(5, 5, 5, 5)));
        assert_eq!(a.union(&b), Rect::new(0, 0, 15, 15));
        assert_eq!(a.intersect(&Rect::new(10, 0, 5, 5)), None);
        assert!(a.contains(&Rect::new(2, 2, 3, 3)) && !a.contains(&b));
        let m = merge(vec![Rect::new(1, 1, 2, 2), a, Rect::new(20, 20, 1, 1)]);
        assert_eq!(m, vec![a, Rect::new(20, 20, 1, 1)]);
        let many: Vec<Rect> = (0..100).map(|i| Rect::new(i * 2, 0, 1, 1)).collect();
        assert_eq!(merge(many), vec![Rect::new(0, 0, 199, 1)]);
    }
}
