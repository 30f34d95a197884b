//! The endpoint side of Jumpgate's remote desktop, for X11: finding and
//! connecting to the display, capturing it, injecting input and sharing the
//! text clipboard. Network-free: the agent wires it to sessions.
//!
//! - [`display`]: which display to use ([`DisplayOptions`]: `--display` /
//!   `--xauthority`, or found from the logged-in session) and connecting
//!   to it with the right Xauthority cookie.
//! - [`capture`]: [`Capturer`], full frames through MIT-SHM (GetImage when
//!   the display has no SHM, e.g. a remote one), changed regions through
//!   DAMAGE (64×64 tile comparison when DAMAGE is missing), the cursor
//!   through XFIXES, monitors through RandR; a resolution change is picked
//!   up without reconnecting.
//! - [`input`]: [`Input`], XTEST pointer, buttons, wheel and keys by keysym
//!   (keysyms missing from the keymap are bound to a spare keycode for the
//!   time they are used).
//! - [`clipboard`]: [`Clipboard`], the CLIPBOARD/PRIMARY text both ways and
//!   notice of changes.
//!
//! Each part opens its own X connection, so one part's events never reach
//! another. Calls block (they wait for the X server, `next_update` for a
//! change): async callers run them on a thread of their own
//! (`spawn_blocking`); every type is `Send`. A display that goes away is an [`Error::Connection`] (or
//! [`Error::Protocol`]) from the next call, never a panic.
//!
//! # Pixel format
//! Frames are 32 bits per pixel, **BGRx** in memory order (blue at byte 0,
//! then green, red, and one unused byte that is not guaranteed to be 0 or
//! 255), rows top to bottom, `stride` bytes apart (`stride >= width * 4`).
//! Displays of another depth or byte order are refused with
//! [`Error::Unsupported`].

pub mod capture;
pub mod clipboard;
pub mod display;
pub mod input;
pub mod keysym;
mod shm_map;
mod wait;

pub use capture::{
    CaptureOptions, Capturer, CursorImage, Frame, FrameData, Monitor, Rect, Selection, Update,
};
pub use clipboard::{Clipboard, ClipboardChange, SelectionKind};
pub use display::{DisplayOptions, DisplayTarget, TargetSource};
pub use input::{Button, Input};

use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};

/// Everything this crate reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No display was given and none could be found; `tried` names every
    /// candidate looked at and why it was not used.
    #[error("no X display found (tried: {})", if .tried.is_empty() { "nothing: no X socket and no process with DISPLAY".to_owned() } else { .tried.join("; ") })]
    NoDisplay { tried: Vec<String> },
    /// Connecting to a named display failed.
    #[error("cannot connect to X display {display}: {reason}")]
    Connect { display: String, reason: String },
    /// The Xauthority file could not be read.
    #[error("cannot read Xauthority file {path}: {source}")]
    Xauthority {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The connection to the X server broke (the display went away).
    #[error("X connection lost: {0}")]
    Connection(#[from] ConnectionError),
    /// The X server answered a request with an error.
    #[error("X request failed: {0}")]
    Protocol(String),
    /// The display lacks something this crate needs.
    #[error("unsupported display: {0}")]
    Unsupported(String),
    /// A monitor name that is not (or no longer) on the display.
    #[error("no monitor named {0:?}")]
    NoSuchMonitor(String),
    /// Clipboard text above the limit.
    #[error("clipboard text of {size} bytes is above the limit of {limit} bytes")]
    ClipboardTooLarge { size: usize, limit: usize },
    /// No answer in time (e.g. a clipboard owner that does not answer).
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// No keycode can produce this keysym (no spare keycode left to bind).
    #[error("cannot type keysym {0:#x}: no keycode free to bind it")]
    NoKeycode(u32),
    /// The clipboard's worker thread ended (its connection broke).
    #[error("clipboard worker stopped: {0}")]
    Worker(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::ConnectionError(c) => Self::Connection(c),
            ReplyError::X11Error(x) => Self::Protocol(format!(
                "{:?} (request {}.{})",
                x.error_kind, x.major_opcode, x.minor_opcode
            )),
        }
    }
}

impl From<ReplyOrIdError> for Error {
    fn from(e: ReplyOrIdError) -> Self {
        match e {
            ReplyOrIdError::ConnectionError(c) => Self::Connection(c),
            ReplyOrIdError::X11Error(x) => Self::Protocol(format!(
                "{:?} (request {}.{})",
                x.error_kind, x.major_opcode, x.minor_opcode
            )),
            ReplyOrIdError::IdsExhausted => Self::Protocol("X resource ids exhausted".into()),
        }
    }
}

impl Error {
    fn connect(display: &str, e: ConnectError) -> Self {
        Self::Connect {
            display: display.to_owned(),
            reason: e.to_string(),
        }
    }
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    /// The agent moves each part to a thread of its own.
    #[test]
    fn parts_are_send() {
        fn send<T: Send>() {}
        send::<crate::Capturer>();
        send::<crate::Input>();
        send::<crate::Clipboard>();
    }
}
