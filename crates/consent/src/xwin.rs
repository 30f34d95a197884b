//! X11 plumbing shared by the prompt and the indicator: the connection,
//! atoms, painting a [`Canvas`] into a window, key codes, and the event pump
//! (a thread that turns blocking `wait_for_event` into messages on the same
//! channel the UI's commands arrive on).

use std::sync::Arc;
use std::sync::mpsc::Sender;

use x11rb::connection::{Connection as _, RequestConnection as _};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateGCAux, EventMask, Gcontext, ImageFormat,
    ImageOrder, Keycode, PropMode, Window,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use crate::ConsentError;
use crate::paint::Canvas;

x11rb::atom_manager! {
    pub(crate) Atoms: AtomsCookie {
        WM_PROTOCOLS,
        WM_DELETE_WINDOW,
        UTF8_STRING,
        _NET_WM_NAME,
        _NET_WM_STATE,
        _NET_WM_STATE_ABOVE,
        _NET_WM_STATE_STICKY,
        _NET_WM_STATE_SKIP_TASKBAR,
        _NET_WM_STATE_SKIP_PAGER,
        _NET_WM_WINDOW_TYPE,
        _NET_WM_WINDOW_TYPE_DIALOG,
        _NET_WM_PID,
        _JUMPGATE_WAKE,
        _JUMPGATE_BUTTONS,
        _JUMPGATE_STATUS,
    }
}

/// The class every window of this crate carries (`WM_CLASS` instance and
/// class), so tests and users can find them (`xdotool search --class`).
pub const WM_CLASS_INSTANCE: &str = "jumpgate-consent";
/// See [`WM_CLASS_INSTANCE`].
pub const WM_CLASS_CLASS: &str = "Jumpgate";

/// An open display with what painting needs to know about it.
#[derive(Debug)]
pub(crate) struct Display {
    pub(crate) conn: Arc<RustConnection>,
    pub(crate) atoms: Atoms,
    pub(crate) root: Window,
    pub(crate) root_visual: u32,
    pub(crate) root_depth: u8,
    pub(crate) width: u16,
    pub(crate) height: u16,
    msb_first: bool,
}

impl Display {
    /// Connects to `display` (None: `$DISPLAY`; authorisation from
    /// `$XAUTHORITY` or `~/.Xauthority`) and checks that its default visual
    /// is 24-bit true colour in 32-bit pixels (every X server of this
    /// century, Xvfb included).
    pub(crate) fn open(display: Option<&str>) -> Result<Self, ConsentError> {
        // x11rb panics (integer overflow) on some absurd display numbers:
        // any failure to connect is "no display".
        let connected = std::panic::catch_unwind(|| x11rb::connect(display))
            .map_err(|_| ConsentError::NoDisplay(format!("invalid display {display:?}")))?;
        let (conn, screen_num) = connected.map_err(|e| ConsentError::NoDisplay(e.to_string()))?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_num];
        let depth = screen.root_depth;
        let bpp32 = setup
            .pixmap_formats
            .iter()
            .any(|f| f.depth == depth && f.bits_per_pixel == 32);
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == screen.root_visual);
        let true_color = visual.is_some_and(|v| {
            v.red_mask == 0xff0000 && v.green_mask == 0x00ff00 && v.blue_mask == 0x0000ff
        });
        if depth != 24 || !bpp32 || !true_color {
            return Err(ConsentError::Unsupported(format!(
                "the display's default visual is not 24-bit true colour (depth {depth})"
            )));
        }
        let (root, root_visual, width, height) = (
            screen.root,
            screen.root_visual,
            screen.width_in_pixels,
            screen.height_in_pixels,
        );
        let msb_first = setup.image_byte_order == ImageOrder::MSB_FIRST;
        let atoms = Atoms::new(&conn).map_err(x_err)?.reply().map_err(x_err)?;
        Ok(Self {
            conn: Arc::new(conn),
            atoms,
            root,
            root_visual,
            root_depth: depth,
            width,
            height,
            msb_first,
        })
    }

    pub(crate) fn new_gc(&self, window: Window) -> Result<Gcontext, ConsentError> {
        let gc = self.conn.generate_id().map_err(x_err)?;
        self.conn
            .create_gc(gc, window, &CreateGCAux::new())
            .map_err(x_err)?;
        Ok(gc)
    }

    /// Window title, `_NET_WM_NAME` (UTF-8), `WM_CLASS` and `_NET_WM_PID`.
    pub(crate) fn name_window(&self, window: Window, title: &str) -> Result<(), ConsentError> {
        let c = &self.conn;
        c.change_property8(
            PropMode::REPLACE,
            window,
            x11rb::protocol::xproto::AtomEnum::WM_NAME,
            x11rb::protocol::xproto::AtomEnum::STRING,
            latin1_lossy(title).as_slice(),
        )
        .map_err(x_err)?;
        c.change_property8(
            PropMode::REPLACE,
            window,
            self.atoms._NET_WM_NAME,
            self.atoms.UTF8_STRING,
            title.as_bytes(),
        )
        .map_err(x_err)?;
        let class = format!("{WM_CLASS_INSTANCE}\0{WM_CLASS_CLASS}\0");
        c.change_property8(
            PropMode::REPLACE,
            window,
            x11rb::protocol::xproto::AtomEnum::WM_CLASS,
            x11rb::protocol::xproto::AtomEnum::STRING,
            class.as_bytes(),
        )
        .map_err(x_err)?;
        c.change_property32(
            PropMode::REPLACE,
            window,
            self.atoms._NET_WM_PID,
            x11rb::protocol::xproto::AtomEnum::CARDINAL,
            &[std::process::id()],
        )
        .map_err(x_err)?;
        Ok(())
    }

    /// Publishes where a window's buttons are, as `name x y w h;…` in the
    /// `_JUMPGATE_BUTTONS` property (window coordinates), so that tests and
    /// accessibility tools can find them without knowing the layout.
    pub(crate) fn publish_buttons(
        &self,
        window: Window,
        buttons: &[(&str, crate::paint::Rect)],
    ) -> Result<(), ConsentError> {
        let text: Vec<String> = buttons
            .iter()
            .map(|(name, r)| format!("{name} {} {} {} {}", r.x, r.y, r.w, r.h))
            .collect();
        self.conn
            .change_property8(
                PropMode::REPLACE,
                window,
                self.atoms._JUMPGATE_BUTTONS,
                self.atoms.UTF8_STRING,
                text.join(";").as_bytes(),
            )
            .map_err(x_err)?;
        Ok(())
    }

    /// Publishes the text a window shows as its status (UTF-8
    /// `_JUMPGATE_STATUS`), for tests and screen readers.
    pub(crate) fn publish_status(&self, window: Window, status: &str) -> Result<(), ConsentError> {
        self.conn
            .change_property8(
                PropMode::REPLACE,
                window,
                self.atoms._JUMPGATE_STATUS,
                self.atoms.UTF8_STRING,
                status.as_bytes(),
            )
            .map_err(x_err)?;
        Ok(())
    }

    /// Copies `canvas` into `window` at (0, 0), in strips that fit the
    /// server's maximum request size.
    pub(crate) fn put_canvas(
        &self,
        window: Window,
        gc: Gcontext,
        canvas: &Canvas,
    ) -> Result<(), ConsentError> {
        self.put_rows(window, gc, canvas, 0)
    }

    /// Copies the rows of `canvas` from `first_row` down into `window`.
    pub(crate) fn put_rows(
        &self,
        window: Window,
        gc: Gcontext,
        canvas: &Canvas,
        first_row: i32,
    ) -> Result<(), ConsentError> {
        let w = canvas.w.max(1) as usize;
        let first = (first_row.clamp(0, canvas.h) as usize) * w;
        let max_bytes = self
            .conn
            .maximum_request_bytes()
            .saturating_sub(64)
            .max(4 * w);
        let rows_per_strip = (max_bytes / (4 * w)).max(1);
        let mut bytes = Vec::with_capacity(rows_per_strip * w * 4);
        for (strip, rows) in canvas.px[first..].chunks(rows_per_strip * w).enumerate() {
            bytes.clear();
            for &p in rows {
                bytes.extend_from_slice(&if self.msb_first {
                    p.to_be_bytes()
                } else {
                    p.to_le_bytes()
                });
            }
            let h = (rows.len() / w) as u16;
            let y = (first / w + strip * rows_per_strip) as i16;
            self.conn
                .put_image(
                    ImageFormat::Z_PIXMAP,
                    window,
                    gc,
                    w as u16,
                    h,
                    0,
                    y,
                    0,
                    self.root_depth,
                    &bytes,
                )
                .map_err(x_err)?;
        }
        self.conn.flush().map_err(x_err)?;
        Ok(())
    }

    /// Asks the window manager (if any) to keep `window` above others. EWMH
    /// window managers honour this reliably only for a mapped window, so it
    /// is sent after mapping (and the state is also set before mapping).
    pub(crate) fn request_above(&self, window: Window) -> Result<(), ConsentError> {
        const NET_WM_STATE_ADD: u32 = 1;
        for state in [
            self.atoms._NET_WM_STATE_ABOVE,
            self.atoms._NET_WM_STATE_STICKY,
        ] {
            let event = ClientMessageEvent::new(
                32,
                window,
                self.atoms._NET_WM_STATE,
                [NET_WM_STATE_ADD, state, 0, 1, 0],
            );
            self.conn
                .send_event(
                    false,
                    self.root,
                    EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY,
                    event,
                )
                .map_err(x_err)?;
        }
        self.conn.flush().map_err(x_err)?;
        Ok(())
    }

    /// All key codes that produce `keysym` (first column of the keyboard map).
    pub(crate) fn keycodes(&self, keysym: u32) -> Result<Vec<Keycode>, ConsentError> {
        let setup = self.conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let reply = self
            .conn
            .get_keyboard_mapping(min, max - min + 1)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        let per = usize::from(reply.keysyms_per_keycode.max(1));
        Ok(reply
            .keysyms
            .chunks(per)
            .enumerate()
            .filter(|(_, syms)| syms.first() == Some(&keysym) || syms.get(1) == Some(&keysym))
            .map(|(i, _)| min + i as u8)
            .collect())
    }

    /// Wakes the event pump: an event only this client receives, on one of
    /// its windows. `quit` makes the pump thread end.
    pub(crate) fn wake(&self, window: Window, quit: bool) {
        let event = ClientMessageEvent::new(
            32,
            window,
            self.atoms._JUMPGATE_WAKE,
            [u32::from(quit), 0, 0, 0, 0],
        );
        // An empty event mask delivers to the window's creator: us.
        let _ = self
            .conn
            .send_event(false, window, EventMask::NO_EVENT, event);
        let _ = self.conn.flush();
    }
}

/// What the UI loop of a window receives.
#[derive(Debug)]
pub(crate) enum Msg<C> {
    /// An event from the X server.
    X(Event),
    /// The connection to the display is gone.
    Lost(String),
    /// A command from the owner of the UI.
    Cmd(C),
}

/// Starts the thread that forwards X events to `tx` until the connection
/// breaks or a quit wake-up (see [`Display::wake`]) arrives.
pub(crate) fn spawn_pump<C: Send + 'static>(
    conn: Arc<RustConnection>,
    wake_atom: u32,
    tx: Sender<Msg<C>>,
) -> Result<std::thread::JoinHandle<()>, ConsentError> {
    std::thread::Builder::new()
        .name("consent-x11".into())
        .spawn(move || {
            loop {
                match conn.wait_for_event() {
                    Ok(Event::ClientMessage(ev)) if ev.type_ == wake_atom => {
                        if ev.data.as_data32()[0] == 1 {
                            return;
                        }
                    }
                    Ok(ev) => {
                        if tx.send(Msg::X(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Lost(e.to_string()));
                        return;
                    }
                }
            }
        })
        .map_err(|e| ConsentError::Unsupported(format!("thread: {e}")))
}

/// X errors of every kind, as the crate's error.
pub(crate) fn x_err(e: impl std::fmt::Display) -> ConsentError {
    ConsentError::ConnectionLost(e.to_string())
}

/// `WM_NAME` is Latin-1: other characters become '?'.
fn latin1_lossy(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}
