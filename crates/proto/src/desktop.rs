//! What a `desktop` session carries: the endpoint's screen one way, the
//! technician's input the other, in [`SessionMsg`](crate::session::SessionMsg)
//! variants like every other session kind.
//!
//! | technician → agent | agent → technician |
//! |--------------------|--------------------|
//! | `Pointer`, `Wheel`, `Key`, `InputReset` (input) | `DesktopInfo` (first, then on every change of size or monitors) |
//! | `Clipboard` (input, when the session allows it) | `Video` (encoded screen updates, numbered) |
//! | `DesktopCommand` (monitor choice, refresh) | `Cursor`, `CursorShape` |
//! | `FrameAck` (what was drawn: flow and quality) | `Clipboard` (when the session allows it) |
//! | `Ping` | `Pong`, `ControlState` (who has control) |
//!
//! Input is small and frequent, so it is binary (big-endian); the rare
//! descriptive messages are JSON. Coordinates are pixels of the shown area
//! (the chosen monitor, or the whole screen), origin top left.
//!
//! Input messages are what a view-only session must never deliver: the
//! gateway drops them ([`is_input`](crate::session::is_input)) and the agent
//! ignores them as well, so neither alone is trusted.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// Mouse buttons held, as a bit set in [`Pointer::buttons`].
pub mod button {
    pub const LEFT: u8 = 1;
    pub const MIDDLE: u8 = 2;
    pub const RIGHT: u8 = 4;
    pub const BACK: u8 = 8;
    pub const FORWARD: u8 = 16;
}

/// The pointer's position and the buttons held. Sent on every move and on
/// every press or release; the agent presses and releases what changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pointer {
    pub x: u16,
    pub y: u16,
    pub buttons: u8,
}

/// Wheel notches: positive `dy` scrolls down, positive `dx` right.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wheel {
    pub dx: i16,
    pub dy: i16,
}

/// A key by X keysym, so the character the technician typed arrives whatever
/// the endpoint's keyboard layout (Unicode characters use keysym
/// `0x0100_0000 + code point`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub keysym: u32,
    pub down: bool,
}

/// Where the pointer is on the endpoint, in the shown area's pixels (it can
/// be outside it); `shape` names the current [`CursorShape`], 0 = hidden.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    pub x: i32,
    pub y: i32,
    pub shape: u32,
}

/// The largest cursor image accepted, per side.
pub const MAX_CURSOR_SIDE: u16 = 256;

/// A cursor image: non-premultiplied RGBA rows, `width × height × 4` bytes;
/// the hot spot is the pixel that points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CursorShape {
    pub id: u32,
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    pub rgba: Bytes,
}

/// One encoded screen update, numbered so the technician's side can
/// acknowledge what it drew. The payload's format is the codec's (named in
/// [`DesktopInfo::codec`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Video {
    pub seq: u32,
    pub data: Bytes,
}

/// The technician's side has drawn every update up to `seq`; the agent
/// paces itself and chooses quality by what is still unacknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAck {
    pub seq: u32,
}

/// One monitor of the endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitor {
    pub id: u32,
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub primary: bool,
}

/// What is being shown: sent first, and again whenever the size or the
/// monitors change (the next `Video` then starts a new stream of that size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopInfo {
    /// Size of the shown area in pixels.
    pub width: u32,
    pub height: u32,
    pub monitors: Vec<Monitor>,
    /// The monitor shown; `None` = all of them (the whole screen).
    #[serde(default)]
    pub monitor: Option<u32>,
    /// How `Video` payloads are encoded: one of [`codec`]'s names, chosen
    /// by the agent from what the viewer offered.
    pub codec: String,
}

/// Whose input reaches the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputState {
    /// The technician's input is applied.
    Allowed,
    /// The session was opened to watch only.
    ViewOnly,
    /// The person at the endpoint took back control: input is dropped until
    /// they allow it again (the technician may ask with
    /// [`DesktopCommand::RequestControl`]).
    TakenBack,
    /// The person at the endpoint ended the session; the agent closes it
    /// next.
    Ended,
}

/// Sent by the agent when who has control changes (and once at the start).
/// The gateway follows it: while `input` is not `Allowed` it drops the
/// technician's input and clipboard itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    pub input: InputState,
    /// Words for the technician, e.g. "the user took back control".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// What this message is besides (or instead of) a change of who has
    /// control; `None`: a change, or the first state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<ControlNote>,
}

impl ControlState {
    /// A change of who has control (no note).
    pub fn new(input: InputState, message: impl Into<String>) -> Self {
        Self {
            input,
            message: message.into(),
            note: None,
        }
    }
}

/// Why a [`ControlState`] was sent when it is not only a change of control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlNote {
    /// With `Ended`: the session ends because something failed at the
    /// endpoint (its display went away, capturing the screen broke), not
    /// by anyone's choice. The gateway records the session's outcome as an
    /// endpoint-side error with `message`.
    Failed,
    /// A request of the technician could not be carried out (a monitor
    /// that does not exist): `message` says why. Who has control did not
    /// change: `input` repeats the current state.
    Refused,
}

/// The names of the screen codecs, in [`DesktopInfo::codec`] and in the
/// `codecs` a viewer offers when it opens a desktop session. Both are
/// `jumpgate_codec` packets; they differ in what the viewer must draw.
pub mod codec {
    /// Full-size pictures only: the agent never codes a frame at a reduced
    /// size. What a viewer that offers no list (one from before the
    /// negotiation) gets.
    pub const FULL_SIZE: &str = "jumpgate-1";
    /// As `jumpgate-1`, plus VP9 pictures coded at half or a quarter of the
    /// stream's size under heavy motion, which the viewer scales up.
    pub const REDUCED_SIZE: &str = "jumpgate-2";
    /// Every codec, best first: what a viewer that decodes all of them
    /// offers, and the order in which an agent prefers them.
    pub const ALL: [&str; 2] = [REDUCED_SIZE, FULL_SIZE];

    /// The best codec of `supported` (best first) that the viewer offers.
    /// `None` as the offer: a viewer from before codecs were negotiated,
    /// which decodes [`FULL_SIZE`] only.
    pub fn choose<'a>(offered: Option<&[String]>, supported: &[&'a str]) -> Option<&'a str> {
        match offered {
            None => supported.iter().copied().find(|c| *c == FULL_SIZE),
            Some(list) => supported
                .iter()
                .copied()
                .find(|c| list.iter().any(|o| o == c)),
        }
    }
}

/// The technician's requests about what is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DesktopCommand {
    /// Show one monitor, or all (`None`).
    Monitor { monitor: Option<u32> },
    /// Send the whole screen again (e.g. after a decoder error).
    Refresh,
    /// Ask the person at the endpoint for control again after they took it
    /// back (they are prompted again; ignored by view-only sessions).
    RequestControl,
}

fn need(body: &[u8], len: usize, what: &'static str) -> Result<(), ProtoError> {
    if body.len() == len {
        Ok(())
    } else {
        Err(ProtoError::Malformed(what))
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Pointer {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u16(self.x);
        out.put_u16(self.y);
        out.put_u8(self.buttons);
    }
    pub(crate) fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        need(b, 5, "pointer message must be 5 bytes")?;
        Ok(Self {
            x: be16(b, 0),
            y: be16(b, 2),
            buttons: b[4],
        })
    }
}

impl Wheel {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_i16(self.dx);
        out.put_i16(self.dy);
    }
    pub(crate) fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        need(b, 4, "wheel message must be 4 bytes")?;
        Ok(Self {
            dx: be16(b, 0) as i16,
            dy: be16(b, 2) as i16,
        })
    }
}

impl Key {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u32(self.keysym);
        out.put_u8(u8::from(self.down));
    }
    pub(crate) fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        need(b, 5, "key message must be 5 bytes")?;
        let down = match b[4] {
            0 => false,
            1 => true,
            _ => return Err(ProtoError::Malformed("key state must be 0 or 1")),
        };
        Ok(Self {
            keysym: be32(b, 0),
            down,
        })
    }
}

impl Cursor {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_i32(self.x);
        out.put_i32(self.y);
        out.put_u32(self.shape);
    }
    pub(crate) fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        need(b, 12, "cursor message must be 12 bytes")?;
        Ok(Self {
            x: be32(b, 0) as i32,
            y: be32(b, 4) as i32,
            shape: be32(b, 8),
        })
    }
}

impl CursorShape {
    const HEAD: usize = 12;

    pub(crate) fn len(&self) -> usize {
        Self::HEAD + self.rgba.len()
    }
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u32(self.id);
        out.put_u16(self.width);
        out.put_u16(self.height);
        out.put_u16(self.hot_x);
        out.put_u16(self.hot_y);
        out.put_slice(&self.rgba);
    }
    pub(crate) fn parse(b: Bytes) -> Result<Self, ProtoError> {
        if b.len() < Self::HEAD {
            return Err(ProtoError::Malformed("cursor shape message too short"));
        }
        let (width, height) = (be16(&b, 4), be16(&b, 6));
        let (hot_x, hot_y) = (be16(&b, 8), be16(&b, 10));
        if width > MAX_CURSOR_SIDE || height > MAX_CURSOR_SIDE {
            return Err(ProtoError::Malformed("cursor shape larger than 256×256"));
        }
        if (width > 0 && hot_x >= width) || (height > 0 && hot_y >= height) {
            return Err(ProtoError::Malformed("cursor hot spot outside the image"));
        }
        if b.len() != Self::HEAD + usize::from(width) * usize::from(height) * 4 {
            return Err(ProtoError::Malformed(
                "cursor shape size does not match its pixels",
            ));
        }
        Ok(Self {
            id: be32(&b, 0),
            width,
            height,
            hot_x,
            hot_y,
            rgba: b.slice(Self::HEAD..),
        })
    }
}

impl Video {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u32(self.seq);
        out.put_slice(&self.data);
    }
    pub(crate) fn parse(b: Bytes) -> Result<Self, ProtoError> {
        if b.len() < 4 {
            return Err(ProtoError::Malformed("video message too short"));
        }
        Ok(Self {
            seq: be32(&b, 0),
            data: b.slice(4..),
        })
    }
}

impl FrameAck {
    pub(crate) fn put(&self, out: &mut BytesMut) {
        out.put_u32(self.seq);
    }
    pub(crate) fn parse(b: &[u8]) -> Result<Self, ProtoError> {
        need(b, 4, "frame acknowledgement must be 4 bytes")?;
        Ok(Self { seq: be32(b, 0) })
    }
}

pub(crate) fn parse_u64(b: &[u8]) -> Result<u64, ProtoError> {
    need(b, 8, "ping and pong carry 8 bytes")?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(u64::from_be_bytes(a))
}

pub(crate) fn parse_text(b: &[u8]) -> Result<String, ProtoError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| ProtoError::Malformed("clipboard text is not UTF-8"))
}
