//! The endpoint user's side of a remote desktop session: the person at the
//! endpoint is in charge.
//!
//! # Layout
//! - [`prompt`]: the consent prompt. A window names the technician and their
//!   site and the rights asked, with **Allow** / **Deny** and a countdown;
//!   no answer in time is a denial. [`Prompt::show`] / [`Prompt::wait`] /
//!   [`Prompt::cancel`], or [`ask`] for show-and-wait.
//! - [`indicator`]: what shows while a session is live: a coloured border
//!   around the screen (four thin override-redirect windows made
//!   input-transparent with the SHAPE extension, so clicks go through to the
//!   user's windows) and a small always-on-top bar with the technician's
//!   name, the session state and the buttons **Take back control** and
//!   **End session**, plus the global shortcut Ctrl+Alt+Shift+Escape (take
//!   back control).
//! - [`child`]: the agent runs as root, the UI must run as the logged-in
//!   user on their display; [`child::run_child`] is the body of a child
//!   process speaking JSON lines on stdin/stdout. If the child dies, the
//!   parent reads EOF: treat it as a denial / the end of the indication.
//! - [`assist`] / [`assist_child`]: the attended-support window of the
//!   customer client (`jumpgate assist`): status, technicians, the
//!   technician's asks (Allow / Deny), a switch per granted right, chat,
//!   End session and the rating screen; run as a child process speaking
//!   JSON lines like the consent child.
//! - `paint`, `text`, `xwin`: a small software painter (anti-aliased shapes,
//!   text from a system TrueType font through `ab_glyph`), the sanitising of
//!   network text, and the X11 plumbing (pure-Rust `x11rb`, no GL, no
//!   toolkit). Works on Xvfb without a GPU or a window manager.
//!
//! All windows carry `WM_CLASS` `jumpgate-consent` / `Jumpgate`, and publish
//! their buttons' positions in the `_JUMPGATE_BUTTONS` property
//! (`name x y w h;…`), which the tests use to click them with `xdotool`.

pub mod assist;
pub mod assist_child;
pub mod child;
pub mod indicator;
mod paint;
pub mod prompt;
pub mod text;
mod xwin;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use indicator::{Indicator, IndicatorConfig, IndicatorEvent, SessionState, Trigger};
pub use prompt::{Prompt, PromptRequest, ask};
pub use xwin::{WM_CLASS_CLASS, WM_CLASS_INSTANCE};

/// Who asks: shown on the prompt and the indicator as plain text (see
/// [`text::plain_text`]); both come from the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Technician {
    /// The technician's display name (or user name).
    pub name: String,
    /// The Jumpgate site (organisation / gateway) they connect from.
    pub site: String,
}

/// The rights a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    /// See the screen.
    pub view: bool,
    /// Send keyboard and mouse input.
    pub control: bool,
    /// Read and write the text clipboard.
    pub clipboard: bool,
}

/// The user's answer to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The user clicked **Allow**.
    Allowed,
    /// The user clicked **Deny** (or pressed Escape).
    Denied,
    /// Nobody answered before the timeout: a denial.
    TimedOut,
}

/// Why a prompt or an indicator could not do its job. For a prompt, every
/// error means "not allowed".
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// No X display could be opened (unset `DISPLAY`, no server, refused
    /// authorisation).
    #[error("no display: {0}")]
    NoDisplay(String),
    /// The user closed the prompt window without answering (a denial).
    #[error("the window was closed without an answer")]
    Closed,
    /// The prompt was withdrawn by its owner ([`Prompt::cancel`]).
    #[error("the prompt was cancelled")]
    Cancelled,
    /// The connection to the display broke (X server gone, X error).
    #[error("display connection lost: {0}")]
    ConnectionLost(String),
    /// None of the known TrueType fonts is installed.
    #[error("no font found (looked for {0:?}); install fonts-dejavu-core")]
    NoFont(Vec<PathBuf>),
    /// A font file could not be read or parsed.
    #[error("font: {0}")]
    Font(String),
    /// The display lacks something needed (visual, SHAPE extension).
    #[error("unsupported display: {0}")]
    Unsupported(String),
}
