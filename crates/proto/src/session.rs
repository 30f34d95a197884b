//! Session messages: what travels inside one stream, end to end between `jg`
//! (or the web console) and the agent, through the gateway.
//!
//! Each message is `type: u8, length: u32 (big-endian), payload`. Data
//! messages carry raw bytes; the others carry JSON. The first message on a
//! stream is always [`SessionMsg::Open`] from the technician's side; the agent
//! answers [`SessionMsg::Accepted`] or [`SessionMsg::Refused`]. After that:
//!
//! | kind       | technician → agent                 | agent → technician                   |
//! |------------|------------------------------------|--------------------------------------|
//! | `shell`    | `Stdin`, `Resize`, `StdinEof`, `Signal` | `Stdout`, `Exit`                |
//! | `exec`     | `Stdin`, `StdinEof`, `Signal`      | `Stdout`, `Stderr`, `Exit`           |
//! | `upload`   | `FileData`…, `FileEnd`             | `FileResult`                         |
//! | `download` | —                                  | `FileData`…, `FileEnd` (or `FileResult{ok:false}` on a read error) |
//! | `forward`  | raw bytes (no framing)             | raw bytes (no framing)               |
//! | `desktop`  | input, `Clipboard`, `DesktopCommand`, `FrameAck`, `Ping` | `DesktopInfo`, `Video`, `Cursor`…, `ControlState`, `Pong` (see [`desktop`](crate::desktop)) |
//!
//! The gateway may insert [`SessionMsg::Closed`] towards either side when it
//! ends a session (shutdown, termination by an administrator).
//!
//! Closing: a technician's half-close means end of input for `exec`, and a
//! hang-up (SIGHUP to the shell) for `shell`; a reset aborts any session.
//! After its last message (`Exit`, `FileEnd`, `FileResult`, `Refused`) each
//! side half-closes, and the agent waits briefly for the technician's
//! half-close, so the final messages are never overtaken by a reset.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::ProtoError;
use crate::desktop::{
    ControlState, Cursor, CursorShape, DesktopCommand, DesktopInfo, FrameAck, Key, Pointer, Video,
    Wheel,
};

/// Message header length.
pub const HEADER_LEN: usize = 5;
/// Largest payload of one session message.
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Size data is chunked into by senders.
pub const CHUNK: usize = 32 * 1024;

/// The kinds of session, each a separate right in access control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SessionKind {
    /// Interactive PTY.
    Shell,
    /// One command, no PTY, separate stdout/stderr, exit code.
    Exec,
    /// File from technician to endpoint.
    Upload,
    /// File from endpoint to technician.
    Download,
    /// TCP connection from the endpoint to a host:port it can reach.
    Forward,
    /// The endpoint's screen, watched or controlled.
    Desktop,
}

impl SessionKind {
    pub const ALL: [Self; 6] = [
        Self::Shell,
        Self::Exec,
        Self::Upload,
        Self::Download,
        Self::Forward,
        Self::Desktop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Exec => "exec",
            Self::Upload => "upload",
            Self::Download => "download",
            Self::Forward => "forward",
            Self::Desktop => "desktop",
        }
    }

    /// Whether the stream carries session messages after the open exchange
    /// (everything but `forward`, which carries raw bytes).
    pub fn is_framed(self) -> bool {
        self != Self::Forward
    }
}

impl std::fmt::Display for SessionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SessionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown session kind `{s}`"))
    }
}

/// What the technician asks the agent to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SessionRequest {
    Shell {
        term: String,
        cols: u16,
        rows: u16,
        /// A command line run by `sh -c` in the PTY instead of the login
        /// shell (`ssh -t host CMD`). An agent from before this field
        /// refuses the request (unknown field) rather than start a shell.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    Exec {
        command: Vec<String>,
    },
    /// `path` is the destination; when it names an existing directory the file
    /// is written inside it as `file_name`.
    Upload {
        path: String,
        mode: u32,
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
    },
    Download {
        path: String,
    },
    Forward {
        host: String,
        port: u16,
    },
    /// `control: false` watches only: the technician's input is dropped by
    /// the gateway and by the agent. `clipboard` lets text go both ways.
    Desktop {
        control: bool,
        #[serde(default)]
        clipboard: bool,
        /// The monitor to show first; `None` = all.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        monitor: Option<u32>,
        /// Set by the gateway from the endpoint group's setting, whatever the
        /// technician sent: how the person at the endpoint is asked.
        #[serde(default)]
        consent: ConsentMode,
        /// Set by the gateway: who is asking, as the person at the endpoint
        /// sees it.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        technician: String,
        /// The screen codecs the viewer decodes ([`crate::desktop::codec`]
        /// names); the agent picks the best it also has, and refuses the
        /// session when there is none. `None`: a viewer from before codecs
        /// were negotiated (`jumpgate-1` only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codecs: Option<Vec<String>>,
    },
}

impl SessionRequest {
    pub fn kind(&self) -> SessionKind {
        match self {
            Self::Shell { .. } => SessionKind::Shell,
            Self::Exec { .. } => SessionKind::Exec,
            Self::Upload { .. } => SessionKind::Upload,
            Self::Download { .. } => SessionKind::Download,
            Self::Forward { .. } => SessionKind::Forward,
            Self::Desktop { .. } => SessionKind::Desktop,
        }
    }

    /// A one-line description for the event log (no file contents, no env).
    pub fn target(&self) -> String {
        match self {
            Self::Shell { command, .. } => command.clone().unwrap_or_default(),
            Self::Exec { command } => command.join(" "),
            // An upload into a directory names the file it will create.
            Self::Upload {
                path,
                file_name: Some(name),
                ..
            } if path.ends_with('/') => format!("{path}{name}"),
            Self::Upload {
                path,
                file_name: Some(name),
                ..
            } => format!("{path} ({name})"),
            Self::Upload { path, .. } | Self::Download { path } => path.clone(),
            Self::Forward { host, port } => format!("{host}:{port}"),
            Self::Desktop {
                control, clipboard, ..
            } => {
                let mode = if *control { "control" } else { "view" };
                if *clipboard {
                    format!("{mode}, clipboard")
                } else {
                    mode.to_owned()
                }
            }
        }
    }
}

/// How the person at an endpoint takes part in a desktop session (an
/// endpoint group's setting).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentMode {
    /// A window asks them to allow or deny; no answer is a denial.
    #[default]
    Prompt,
    /// No question, but the session is shown while it lasts.
    Notify,
    /// Unattended machines: nothing is shown (the session is still audited
    /// and recorded).
    None,
    /// An attended-support customer's own client (`jumpgate assist`): the
    /// customer's rights switches decide, no prompt. Only the gateway sets
    /// it, for a support session's sub-sessions; it is not a group setting
    /// (not in [`ConsentMode::ALL`], so `FromStr` refuses it) and enrolled
    /// agents refuse it.
    Assist,
}

impl ConsentMode {
    pub const ALL: [Self; 3] = [Self::Prompt, Self::Notify, Self::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::Notify => "notify",
            Self::None => "none",
            Self::Assist => "assist",
        }
    }
}

impl std::str::FromStr for ConsentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown consent mode `{s}` (expected prompt, notify or none)"))
    }
}

/// The agent's positive answer to `Open`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Download: file size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Download: Unix permission bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Why a session could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    NotFound,
    PermissionDenied,
    InvalidRequest,
    ConnectFailed,
    Unsupported,
    Failed,
    /// The person at the endpoint denied a desktop session, or did not
    /// answer the consent prompt in time (the message says which).
    ConsentDenied,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    #[serde(default)]
    pub code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The exit code a shell would report (128 + signal for signalled processes).
    pub fn shell_code(self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            // Signal numbers come from the endpoint: only real ones map
            // to 128 + n (no overflow on a hostile value).
            (None, Some(s @ 1..=127)) => 128 + s,
            (None, _) => 255,
        }
    }
}

/// End of a file transfer: size and SHA-256 (lowercase hex) of what was sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEnd {
    pub size: u64,
    pub sha256: String,
}

/// The receiver's verdict on an upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    pub ok: bool,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub message: String,
}

/// Signals a technician may send to a non-PTY command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SignalKind {
    Interrupt = 2,
    Terminate = 15,
    Kill = 9,
}

/// Every session message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionMsg {
    Open(SessionRequest),
    Accepted(Accepted),
    Refused(Refusal),
    Stdin(Bytes),
    Stdout(Bytes),
    Stderr(Bytes),
    Resize {
        cols: u16,
        rows: u16,
    },
    Exit(ExitStatus),
    StdinEof,
    Signal(SignalKind),
    FileData(Bytes),
    FileEnd(FileEnd),
    FileResult(FileResult),
    Closed {
        reason: String,
    },
    // Desktop sessions (see `crate::desktop`).
    DesktopInfo(DesktopInfo),
    Video(Video),
    Cursor(Cursor),
    CursorShape(CursorShape),
    Pointer(Pointer),
    Wheel(Wheel),
    Key(Key),
    /// Release every key and button the technician holds.
    InputReset,
    /// Clipboard text, either way.
    Clipboard(String),
    DesktopCommand(DesktopCommand),
    FrameAck(FrameAck),
    ControlState(ControlState),
    Ping(u64),
    Pong(u64),
    /// Gateway → jump point only: a session on an agentless target
    /// ([`crate::target`]), in place of `Open`.
    OpenTarget(Box<crate::target::TargetOpen>),
}

#[derive(Serialize, Deserialize)]
struct ClosedBody {
    reason: String,
}

mod ty {
    pub(super) const OPEN: u8 = 1;
    pub(super) const ACCEPTED: u8 = 2;
    pub(super) const REFUSED: u8 = 3;
    pub(super) const STDIN: u8 = 4;
    pub(super) const STDOUT: u8 = 5;
    pub(super) const STDERR: u8 = 6;
    pub(super) const RESIZE: u8 = 7;
    pub(super) const EXIT: u8 = 8;
    pub(super) const STDIN_EOF: u8 = 9;
    pub(super) const SIGNAL: u8 = 10;
    pub(super) const FILE_DATA: u8 = 11;
    pub(super) const FILE_END: u8 = 12;
    pub(super) const FILE_RESULT: u8 = 13;
    pub(super) const CLOSED: u8 = 14;
    pub(super) const DESKTOP_INFO: u8 = 15;
    pub(super) const VIDEO: u8 = 16;
    pub(super) const CURSOR: u8 = 17;
    pub(super) const CURSOR_SHAPE: u8 = 18;
    pub(super) const POINTER: u8 = 19;
    pub(super) const WHEEL: u8 = 20;
    pub(super) const KEY: u8 = 21;
    pub(super) const INPUT_RESET: u8 = 22;
    pub(super) const CLIPBOARD: u8 = 23;
    pub(super) const DESKTOP_COMMAND: u8 = 24;
    pub(super) const FRAME_ACK: u8 = 25;
    pub(super) const CONTROL_STATE: u8 = 26;
    pub(super) const PING: u8 = 27;
    pub(super) const PONG: u8 = 28;
    pub(super) const OPEN_TARGET: u8 = 29;
    pub(super) const MAX: u8 = 29;
}

impl SessionMsg {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        fn json(out: &mut BytesMut, t: u8, v: &impl Serialize) {
            // Serializing these plain structs cannot fail.
            let body = serde_json::to_vec(v).unwrap_or_default();
            raw(out, t, &body);
        }
        fn raw(out: &mut BytesMut, t: u8, body: &[u8]) {
            out.reserve(HEADER_LEN + body.len());
            out.put_u8(t);
            out.put_u32(body.len() as u32);
            out.put_slice(body);
        }
        /// A binary body of `len` bytes written in place by `put`.
        fn bin(out: &mut BytesMut, t: u8, len: usize, put: impl FnOnce(&mut BytesMut)) {
            out.reserve(HEADER_LEN + len);
            out.put_u8(t);
            out.put_u32(len as u32);
            put(out);
        }
        match self {
            Self::Open(r) => json(out, ty::OPEN, r),
            Self::Accepted(a) => json(out, ty::ACCEPTED, a),
            Self::Refused(r) => json(out, ty::REFUSED, r),
            Self::Stdin(b) => raw(out, ty::STDIN, b),
            Self::Stdout(b) => raw(out, ty::STDOUT, b),
            Self::Stderr(b) => raw(out, ty::STDERR, b),
            Self::Resize { cols, rows } => {
                let mut b = [0u8; 4];
                b[..2].copy_from_slice(&cols.to_be_bytes());
                b[2..].copy_from_slice(&rows.to_be_bytes());
                raw(out, ty::RESIZE, &b);
            }
            Self::Exit(s) => json(out, ty::EXIT, s),
            Self::StdinEof => raw(out, ty::STDIN_EOF, &[]),
            Self::Signal(s) => raw(out, ty::SIGNAL, &[*s as u8]),
            Self::FileData(b) => raw(out, ty::FILE_DATA, b),
            Self::FileEnd(e) => json(out, ty::FILE_END, e),
            Self::FileResult(r) => json(out, ty::FILE_RESULT, r),
            Self::Closed { reason } => json(
                out,
                ty::CLOSED,
                &ClosedBody {
                    reason: reason.clone(),
                },
            ),
            Self::DesktopInfo(i) => json(out, ty::DESKTOP_INFO, i),
            Self::Video(v) => bin(out, ty::VIDEO, 4 + v.data.len(), |o| v.put(o)),
            Self::Cursor(c) => bin(out, ty::CURSOR, 12, |o| c.put(o)),
            Self::CursorShape(c) => bin(out, ty::CURSOR_SHAPE, c.len(), |o| c.put(o)),
            Self::Pointer(p) => bin(out, ty::POINTER, 5, |o| p.put(o)),
            Self::Wheel(w) => bin(out, ty::WHEEL, 4, |o| w.put(o)),
            Self::Key(k) => bin(out, ty::KEY, 5, |o| k.put(o)),
            Self::InputReset => raw(out, ty::INPUT_RESET, &[]),
            Self::Clipboard(t) => raw(out, ty::CLIPBOARD, t.as_bytes()),
            Self::DesktopCommand(c) => json(out, ty::DESKTOP_COMMAND, c),
            Self::FrameAck(a) => bin(out, ty::FRAME_ACK, 4, |o| a.put(o)),
            Self::ControlState(c) => json(out, ty::CONTROL_STATE, c),
            Self::Ping(n) => raw(out, ty::PING, &n.to_be_bytes()),
            Self::Pong(n) => raw(out, ty::PONG, &n.to_be_bytes()),
            Self::OpenTarget(t) => json(out, ty::OPEN_TARGET, t),
        }
    }

    /// The encoded message as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes one message from the front of `buf`, consuming it. `Ok(None)`:
    /// not a whole message yet.
    ///
    /// # Errors
    /// A malformed message; the session must be closed.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, ProtoError> {
        let Some(total) = message_len(buf)? else {
            return Ok(None);
        };
        let t = buf[0];
        buf.advance(HEADER_LEN);
        let body = buf.split_to(total - HEADER_LEN).freeze();
        Self::from_parts(t, body).map(Some)
    }

    fn from_parts(t: u8, body: Bytes) -> Result<Self, ProtoError> {
        fn json<T: for<'a> Deserialize<'a>>(body: &[u8]) -> Result<T, ProtoError> {
            serde_json::from_slice(body).map_err(|e| ProtoError::InvalidMessage(e.to_string()))
        }
        Ok(match t {
            ty::OPEN => Self::Open(json(&body)?),
            ty::ACCEPTED => Self::Accepted(json(&body)?),
            ty::REFUSED => Self::Refused(json(&body)?),
            ty::STDIN => Self::Stdin(body),
            ty::STDOUT => Self::Stdout(body),
            ty::STDERR => Self::Stderr(body),
            ty::RESIZE => {
                if body.len() != 4 {
                    return Err(ProtoError::Malformed("resize message must be 4 bytes"));
                }
                Self::Resize {
                    cols: u16::from_be_bytes([body[0], body[1]]),
                    rows: u16::from_be_bytes([body[2], body[3]]),
                }
            }
            ty::EXIT => Self::Exit(json(&body)?),
            ty::STDIN_EOF => Self::StdinEof,
            ty::SIGNAL => Self::Signal(match body.first() {
                Some(2) => SignalKind::Interrupt,
                Some(15) => SignalKind::Terminate,
                Some(9) => SignalKind::Kill,
                _ => return Err(ProtoError::Malformed("unknown signal")),
            }),
            ty::FILE_DATA => Self::FileData(body),
            ty::FILE_END => Self::FileEnd(json(&body)?),
            ty::FILE_RESULT => Self::FileResult(json(&body)?),
            ty::CLOSED => Self::Closed {
                reason: json::<ClosedBody>(&body)?.reason,
            },
            ty::DESKTOP_INFO => Self::DesktopInfo(json(&body)?),
            ty::VIDEO => Self::Video(Video::parse(body)?),
            ty::CURSOR => Self::Cursor(Cursor::parse(&body)?),
            ty::CURSOR_SHAPE => Self::CursorShape(CursorShape::parse(body)?),
            ty::POINTER => Self::Pointer(Pointer::parse(&body)?),
            ty::WHEEL => Self::Wheel(Wheel::parse(&body)?),
            ty::KEY => Self::Key(Key::parse(&body)?),
            ty::INPUT_RESET => Self::InputReset,
            ty::CLIPBOARD => Self::Clipboard(crate::desktop::parse_text(&body)?),
            ty::DESKTOP_COMMAND => Self::DesktopCommand(json(&body)?),
            ty::FRAME_ACK => Self::FrameAck(FrameAck::parse(&body)?),
            ty::CONTROL_STATE => Self::ControlState(json(&body)?),
            ty::PING => Self::Ping(crate::desktop::parse_u64(&body)?),
            ty::PONG => Self::Pong(crate::desktop::parse_u64(&body)?),
            ty::OPEN_TARGET => Self::OpenTarget(Box::new(json(&body)?)),
            _ => return Err(ProtoError::Malformed("unknown session message type")),
        })
    }
}

/// Length of the whole message at the front of `buf` once all of it has
/// arrived, without decoding it: how the gateway relays framed sessions
/// message by message (so it can insert `Closed` at a boundary).
///
/// # Errors
/// An unknown type or an oversized length.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[0] == 0 || buf[0] > ty::MAX {
        return Err(ProtoError::Malformed("unknown session message type"));
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(ProtoError::FrameTooLarge {
            len,
            max: MAX_PAYLOAD,
        });
    }
    Ok((buf.len() >= HEADER_LEN + len).then_some(HEADER_LEN + len))
}

/// Which way a session's bytes travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Technician → endpoint.
    Up,
    /// Endpoint → technician.
    Down,
}

/// What a [`Scanner`] reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// A whole kept message.
    Msg(SessionMsg),
    /// Bytes of a `FileData` payload, as they pass (never buffered).
    FileBytes(&'a [u8]),
}

/// Watches one direction of a session byte stream and picks out what an
/// observer (the gateway's recorder and transfer audit) needs, without
/// holding payloads it does not keep: file data is handed over piece by
/// piece as it passes. Only the messages that side may legitimately send
/// are kept (`Stdout` from the technician is not terminal output), so one
/// side cannot write into the other's part of the record. Bytes may arrive
/// in any split.
#[derive(Debug)]
pub struct Scanner {
    keep_type: fn(u8) -> bool,
    /// The header of the message being read, while incomplete.
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes still to come of the current message.
    remaining: usize,
    /// The current message's bytes, when it is kept.
    kept: Option<BytesMut>,
    /// The current message is `FileData`.
    file_data: bool,
    /// `Stdin` is not kept ([`Self::without_stdin`]).
    skip_stdin: bool,
}

impl Scanner {
    /// A scanner for what `direction` carries: up, keystrokes (`Stdin`),
    /// `Resize`, an upload's `FileEnd` and clipboard text; down, terminal
    /// output (`Stdout`, `Stderr`), `Exit`, a download's `FileEnd`, an
    /// upload's `FileResult`, and a desktop's screen (`DesktopInfo`,
    /// `Video`, `Cursor`, `CursorShape`), clipboard and `ControlState`. File
    /// data both ways.
    pub fn new(direction: Direction) -> Self {
        fn up(t: u8) -> bool {
            matches!(t, ty::STDIN | ty::RESIZE | ty::FILE_END | ty::CLIPBOARD)
        }
        fn down(t: u8) -> bool {
            matches!(
                t,
                ty::STDOUT
                    | ty::STDERR
                    | ty::EXIT
                    | ty::FILE_END
                    | ty::FILE_RESULT
                    | ty::DESKTOP_INFO
                    | ty::VIDEO
                    | ty::CURSOR
                    | ty::CURSOR_SHAPE
                    | ty::CLIPBOARD
                    | ty::CONTROL_STATE
            )
        }
        Self {
            keep_type: match direction {
                Direction::Up => up,
                Direction::Down => down,
            },
            header: [0; HEADER_LEN],
            header_len: 0,
            remaining: 0,
            kept: None,
            file_data: false,
            skip_stdin: false,
        }
    }

    /// The same, but the technician's keystrokes (`Stdin`) are not kept:
    /// for an up-direction scanner whose session has nobody to show them
    /// to (bulk stdin, e.g. `scp`, is then neither copied nor buffered).
    #[must_use]
    pub fn without_stdin(mut self) -> Self {
        self.skip_stdin = true;
        self
    }

    /// Feeds the next bytes of the stream; `seen` gets each kept message
    /// and every piece of file data.
    ///
    /// # Errors
    /// A malformed message: the stream cannot be followed any further.
    pub fn feed<'a>(
        &mut self,
        mut bytes: &'a [u8],
        seen: &mut impl FnMut(Scanned<'a>),
    ) -> Result<(), ProtoError> {
        while !bytes.is_empty() {
            if self.header_len < HEADER_LEN {
                let n = (HEADER_LEN - self.header_len).min(bytes.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
                self.header_len += n;
                bytes = &bytes[n..];
                if self.header_len < HEADER_LEN {
                    return Ok(());
                }
                // Validates the type and length (the payload is not needed).
                message_len(&self.header)?;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                self.remaining = len;
                self.file_data = self.header[0] == ty::FILE_DATA;
                let t = self.header[0];
                let keep = (self.keep_type)(t) && !(self.skip_stdin && t == ty::STDIN);
                self.kept = keep.then(|| {
                    let mut b = BytesMut::with_capacity(HEADER_LEN + len);
                    b.extend_from_slice(&self.header);
                    b
                });
            }
            let n = self.remaining.min(bytes.len());
            if let Some(k) = &mut self.kept {
                k.extend_from_slice(&bytes[..n]);
            } else if self.file_data && n > 0 {
                seen(Scanned::FileBytes(&bytes[..n]));
            }
            self.remaining -= n;
            bytes = &bytes[n..];
            if self.remaining == 0 {
                self.header_len = 0;
                if let Some(mut k) = self.kept.take()
                    && let Some(msg) = SessionMsg::decode(&mut k)?
                {
                    seen(Scanned::Msg(msg));
                }
            }
        }
        Ok(())
    }
}

impl SessionMsg {
    /// The message's type, for logs (never its content).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open(_) => "open",
            Self::Accepted(_) => "accepted",
            Self::Refused(_) => "refused",
            Self::Stdin(_) => "stdin",
            Self::Stdout(_) => "stdout",
            Self::Stderr(_) => "stderr",
            Self::Resize { .. } => "resize",
            Self::Exit(_) => "exit",
            Self::StdinEof => "stdin-eof",
            Self::Signal(_) => "signal",
            Self::FileData(_) => "file-data",
            Self::FileEnd(_) => "file-end",
            Self::FileResult(_) => "file-result",
            Self::Closed { .. } => "closed",
            Self::DesktopInfo(_) => "desktop-info",
            Self::Video(_) => "video",
            Self::Cursor(_) => "cursor",
            Self::CursorShape(_) => "cursor-shape",
            Self::Pointer(_) => "pointer",
            Self::Wheel(_) => "wheel",
            Self::Key(_) => "key",
            Self::InputReset => "input-reset",
            Self::Clipboard(_) => "clipboard",
            Self::DesktopCommand(_) => "desktop-command",
            Self::FrameAck(_) => "frame-ack",
            Self::ControlState(_) => "control-state",
            Self::Ping(_) => "ping",
            Self::Pong(_) => "pong",
            Self::OpenTarget(_) => "open-target",
        }
    }
}

/// Whether a message type (the first byte of a message) is technician
/// input to a desktop — what a view-only session must not deliver. Clipboard
/// text counts when it comes from the technician (it changes the endpoint).
pub fn is_input(message_type: u8) -> bool {
    matches!(
        message_type,
        ty::POINTER | ty::WHEEL | ty::KEY | ty::CLIPBOARD
    )
}

/// Whether a message type is `ControlState` (the gateway follows who has
/// control of a desktop session).
pub fn is_control_state(message_type: u8) -> bool {
    message_type == ty::CONTROL_STATE
}

/// Whether a message type is the endpoint's `Exit`.
pub fn is_exit(message_type: u8) -> bool {
    message_type == ty::EXIT
}

/// The header of a `Stdin` message whose payload is `len` bytes: for a
/// relay that hands the payload out from where it already is.
pub fn stdin_header(len: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = len.to_be_bytes();
    [ty::STDIN, a, b, c, d]
}

/// Whether a message type is clipboard text (audited by size, allowed only
/// when the session asked for it).
pub fn is_clipboard(message_type: u8) -> bool {
    message_type == ty::CLIPBOARD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<SessionMsg> {
        vec![
            SessionMsg::Open(SessionRequest::Shell {
                term: "xterm-256color".into(),
                cols: 120,
                rows: 40,
                command: None,
            }),
            SessionMsg::Open(SessionRequest::Exec {
                command: vec!["ls".into(), "-la".into()],
            }),
            SessionMsg::Open(SessionRequest::Upload {
                path: "/tmp/x".into(),
                mode: 0o640,
                size: 12,
                file_name: Some("x".into()),
            }),
            SessionMsg::Open(SessionRequest::Download {
                path: "/etc/hostname".into(),
            }),
            SessionMsg::Open(SessionRequest::Forward {
                host: "127.0.0.1".into(),
                port: 22,
            }),
            SessionMsg::Accepted(Accepted {
                size: Some(5),
                mode: Some(0o644),
            }),
            SessionMsg::Accepted(Accepted::default()),
            SessionMsg::OpenTarget(Box::new(crate::target::TargetOpen {
                name: "db-01".into(),
                address: crate::target::TargetAddress::Ssh(crate::target::SshLogin {
                    host: "10.0.0.5".into(),
                    port: 22,
                    user: "ops".into(),
                    host_key: "ssh-ed25519 AAAA".into(),
                    credential: crate::target::TargetCredential::Password("pw".into()),
                    allowed: Some(vec!["10.0.0.0/8".into()]),
                }),
                request: SessionRequest::Exec {
                    command: vec!["id".into()],
                },
            })),
            SessionMsg::Refused(Refusal {
                code: RefusalCode::NotFound,
                message: "no such file".into(),
            }),
            SessionMsg::Stdin(Bytes::from_static(b"ls\r")),
            SessionMsg::Stdout(Bytes::from_static(b"\x1b[1mhi")),
            SessionMsg::Stderr(Bytes::from_static(b"oops")),
            SessionMsg::Resize { cols: 80, rows: 24 },
            SessionMsg::Exit(ExitStatus {
                code: Some(3),
                signal: None,
            }),
            SessionMsg::StdinEof,
            SessionMsg::Signal(SignalKind::Interrupt),
            SessionMsg::FileData(Bytes::from(vec![0u8; CHUNK])),
            SessionMsg::FileEnd(FileEnd {
                size: 5,
                sha256: "ab".into(),
            }),
            SessionMsg::FileResult(FileResult {
                ok: false,
                sha256: String::new(),
                message: "mismatch".into(),
            }),
            SessionMsg::Closed {
                reason: "gateway shutting down".into(),
            },
            SessionMsg::Open(SessionRequest::Desktop {
                control: true,
                clipboard: true,
                monitor: Some(1),
                consent: ConsentMode::Notify,
                technician: "Tess Tech".into(),
                codecs: Some(vec!["jumpgate-2".into(), "jumpgate-1".into()]),
            }),
            SessionMsg::DesktopInfo(DesktopInfo {
                width: 1920,
                height: 1080,
                monitors: vec![crate::desktop::Monitor {
                    id: 1,
                    name: "HDMI-1".into(),
                    x: 0,
                    y: 0,
                    width: 1920,
                    height: 1080,
                    primary: true,
                }],
                monitor: None,
                codec: "vp8".into(),
            }),
            SessionMsg::Video(Video {
                seq: 7,
                data: Bytes::from_static(b"\x9d\x01\x2a"),
            }),
            SessionMsg::Cursor(Cursor {
                x: -3,
                y: 1079,
                shape: 2,
            }),
            SessionMsg::CursorShape(CursorShape {
                id: 2,
                width: 2,
                height: 1,
                hot_x: 1,
                hot_y: 0,
                rgba: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
            }),
            SessionMsg::Pointer(Pointer {
                x: 640,
                y: 65535,
                buttons: crate::desktop::button::LEFT | crate::desktop::button::RIGHT,
            }),
            SessionMsg::Wheel(Wheel { dx: -1, dy: 3 }),
            SessionMsg::Key(Key {
                keysym: 0x0100_20ac,
                down: true,
            }),
            SessionMsg::InputReset,
            SessionMsg::Clipboard("Grüße ½ €".into()),
            SessionMsg::DesktopCommand(DesktopCommand::Monitor { monitor: None }),
            SessionMsg::DesktopCommand(DesktopCommand::Refresh),
            SessionMsg::FrameAck(FrameAck { seq: u32::MAX }),
            SessionMsg::ControlState(ControlState::new(
                crate::desktop::InputState::TakenBack,
                "the user took back control",
            )),
            SessionMsg::ControlState(ControlState {
                input: crate::desktop::InputState::Ended,
                message: "the endpoint's display went away".into(),
                note: Some(crate::desktop::ControlNote::Failed),
            }),
            SessionMsg::Ping(u64::MAX - 1),
            SessionMsg::Pong(42),
        ]
    }

    #[test]
    fn every_message_roundtrips_through_a_byte_stream() {
        let msgs = all_messages();
        let mut stream = BytesMut::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        // Feed one byte at a time: decoding must wait, never fail.
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for b in stream.iter() {
            buf.put_u8(*b);
            while let Some(m) = SessionMsg::decode(&mut buf).unwrap() {
                decoded.push(m);
            }
        }
        assert_eq!(decoded, msgs);
    }

    #[test]
    fn message_len_matches_encoding() {
        for m in all_messages() {
            let bytes = m.to_bytes();
            assert_eq!(message_len(&bytes).unwrap(), Some(bytes.len()));
            assert_eq!(message_len(&bytes[..bytes.len() - 1]).unwrap(), None);
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut oversized = BytesMut::new();
        oversized.put_u8(ty::STDOUT);
        oversized.put_u32(MAX_PAYLOAD as u32 + 1);
        assert!(SessionMsg::decode(&mut oversized).is_err());

        for bad in [&[0u8, 0, 0, 0, 0][..], &[99, 0, 0, 0, 0]] {
            assert!(SessionMsg::decode(&mut BytesMut::from(bad)).is_err());
        }
        let mut bad_json = BytesMut::new();
        bad_json.put_u8(ty::OPEN);
        bad_json.put_u32(2);
        bad_json.put_slice(b"{]");
        assert!(SessionMsg::decode(&mut bad_json).is_err());

        let unknown_kind = br#"{"kind":"teleport"}"#;
        let mut m = BytesMut::new();
        m.put_u8(ty::OPEN);
        m.put_u32(unknown_kind.len() as u32);
        m.put_slice(unknown_kind);
        assert!(SessionMsg::decode(&mut m).is_err());
    }

    #[test]
    fn kinds_parse_and_print() {
        for k in SessionKind::ALL {
            assert_eq!(k.as_str().parse::<SessionKind>().unwrap(), k);
        }
        assert!("ssh".parse::<SessionKind>().is_err());
        assert!(!SessionKind::Forward.is_framed());
        assert!(SessionKind::Shell.is_framed());
    }

    #[test]
    fn exit_status_maps_to_shell_codes() {
        let s = |code, signal| ExitStatus { code, signal }.shell_code();
        // Found while writing the session fuzz target: a signal number
        // near i32::MAX from a hostile endpoint overflowed `128 + n`.
        assert_eq!(s(None, Some(i32::MAX)), 255);
        assert_eq!(s(None, Some(-9)), 255);
        assert_eq!(s(Some(0), None), 0);
        assert_eq!(s(Some(42), None), 42);
        assert_eq!(s(None, Some(9)), 137);
    }

    fn scan(dir: Direction, stream: &[u8], split: usize) -> (Vec<SessionMsg>, Vec<u8>) {
        let mut sc = Scanner::new(dir);
        let mut msgs = Vec::new();
        let mut file = Vec::new();
        for chunk in stream.chunks(split) {
            sc.feed(chunk, &mut |s| match s {
                Scanned::Msg(m) => msgs.push(m),
                Scanned::FileBytes(b) => file.extend_from_slice(b),
            })
            .unwrap();
        }
        (msgs, file)
    }

    #[test]
    fn scanner_keeps_what_each_side_may_send_across_any_split() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let end = FileEnd {
            size: 100_000,
            sha256: "ab".repeat(32),
        };
        let msgs = [
            SessionMsg::Stdin(Bytes::from_static(b"ls\r")),
            SessionMsg::Stdout(Bytes::from_static(b"file-a  file-b\r\n")),
            SessionMsg::FileData(Bytes::from(data.clone())),
            SessionMsg::Resize {
                cols: 100,
                rows: 30,
            },
            SessionMsg::FileEnd(end.clone()),
            SessionMsg::StdinEof,
            SessionMsg::Stderr(Bytes::from_static(b"oops")),
            SessionMsg::Exit(ExitStatus {
                code: Some(3),
                signal: None,
            }),
            SessionMsg::FileData(Bytes::new()),
        ];
        let mut stream = BytesMut::new();
        for m in &msgs {
            m.encode(&mut stream);
        }
        for split in [1, 2, 3, 5, 7, 4096, stream.len()] {
            let (up, file) = scan(Direction::Up, &stream, split);
            assert_eq!(
                up,
                [
                    SessionMsg::Stdin(Bytes::from_static(b"ls\r")),
                    SessionMsg::Resize {
                        cols: 100,
                        rows: 30
                    },
                    SessionMsg::FileEnd(end.clone()),
                ],
                "split {split}"
            );
            assert_eq!(file, data, "split {split}");
            let (down, _) = scan(Direction::Down, &stream, split);
            let names: Vec<&str> = down.iter().map(SessionMsg::name).collect();
            assert_eq!(
                names,
                ["stdout", "file-end", "stderr", "exit"],
                "split {split}"
            );
        }
    }

    #[test]
    fn a_stdin_header_is_the_start_of_its_encoded_message_and_exit_is_known_by_type() {
        let body = Bytes::from_static(b"typed");
        let whole = SessionMsg::Stdin(body.clone()).to_bytes();
        assert_eq!(&whole[..HEADER_LEN], &stdin_header(5));
        assert_eq!(&whole[HEADER_LEN..], &body[..]);
        let exit = SessionMsg::Exit(ExitStatus::default()).to_bytes();
        assert!(is_exit(exit[0]));
        assert!(!is_exit(whole[0]));
    }

    #[test]
    fn a_scanner_without_stdin_keeps_the_rest_and_holds_no_keystrokes() {
        let mut stream = BytesMut::new();
        SessionMsg::Stdin(Bytes::from(vec![1u8; 40_000])).encode(&mut stream);
        SessionMsg::Resize { cols: 9, rows: 4 }.encode(&mut stream);
        SessionMsg::StdinEof.encode(&mut stream);
        let mut sc = Scanner::new(Direction::Up).without_stdin();
        // Half a Stdin message in: nothing of it is held.
        sc.feed(&stream[..20_000], &mut |_| panic!("nothing whole yet"))
            .unwrap();
        assert!(sc.kept.is_none());
        let mut seen = Vec::new();
        sc.feed(&stream[20_000..], &mut |s| {
            if let Scanned::Msg(m) = s {
                seen.push(m);
            }
        })
        .unwrap();
        assert_eq!(seen, [SessionMsg::Resize { cols: 9, rows: 4 }]);
        // The positive control: without the option the keystrokes are seen.
        let (up, _) = scan(Direction::Up, &stream, 4096);
        assert_eq!(up.len(), 2, "{up:?}");
        assert!(matches!(&up[0], SessionMsg::Stdin(b) if b.len() == 40_000));
        // A down scanner is not changed by it.
        let mut down = BytesMut::new();
        SessionMsg::Stdout(Bytes::from_static(b"out")).encode(&mut down);
        let mut sc = Scanner::new(Direction::Down).without_stdin();
        let mut n = 0;
        sc.feed(&down, &mut |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn scanner_never_buffers_file_data() {
        let mut stream = BytesMut::new();
        SessionMsg::FileData(Bytes::from(vec![7u8; 50_000])).encode(&mut stream);
        let mut sc = Scanner::new(Direction::Up);
        // Half the payload is in: nothing of it is held.
        sc.feed(&stream[..25_000], &mut |_| {}).unwrap();
        assert!(sc.kept.is_none());
        assert_eq!(sc.remaining, 50_000 + HEADER_LEN - 25_000);
    }

    #[test]
    fn scanner_rejects_a_malformed_stream() {
        let mut sc = Scanner::new(Direction::Up);
        let err = sc.feed(&[99, 0, 0, 0, 1, 0], &mut |_| {});
        assert!(err.is_err());
        let mut sc = Scanner::new(Direction::Down);
        let huge = (MAX_PAYLOAD as u32 + 1).to_be_bytes();
        let err = sc.feed(
            &[ty::STDOUT, huge[0], huge[1], huge[2], huge[3]],
            &mut |_| {},
        );
        assert!(err.is_err());
    }

    #[test]
    fn an_upload_target_names_the_file_it_creates() {
        let up = |path: &str, name: Option<&str>| SessionRequest::Upload {
            path: path.into(),
            mode: 0o644,
            size: 1,
            file_name: name.map(Into::into),
        };
        assert_eq!(up("/tmp/", Some("notes.txt")).target(), "/tmp/notes.txt");
        assert_eq!(up("/tmp", Some("notes.txt")).target(), "/tmp (notes.txt)");
        assert_eq!(up("/tmp/x.txt", None).target(), "/tmp/x.txt");
    }

    fn raw_msg(t: u8, body: &[u8]) -> BytesMut {
        let mut m = BytesMut::new();
        m.put_u8(t);
        m.put_u32(body.len() as u32);
        m.put_slice(body);
        m
    }

    #[test]
    fn malformed_desktop_messages_are_errors() {
        let bad: [(u8, &[u8]); 11] = [
            (ty::POINTER, &[0, 1, 0, 2]),
            (ty::WHEEL, &[0, 1, 0]),
            (ty::KEY, &[0, 0, 0, 0x41, 2]),
            (ty::CURSOR, &[0; 11]),
            (ty::FRAME_ACK, &[0; 5]),
            (ty::VIDEO, &[0, 0, 1]),
            (ty::PING, &[0; 7]),
            (ty::CLIPBOARD, &[0xff, 0xfe]),
            // 1×1 image with 3 bytes of pixels; a 300-pixel-wide one; a hot
            // spot outside the image.
            (
                ty::CURSOR_SHAPE,
                &[0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 2, 3],
            ),
            (ty::CURSOR_SHAPE, &[0, 0, 0, 1, 1, 44, 0, 0, 0, 0, 0, 0]),
            (
                ty::CURSOR_SHAPE,
                &[0, 0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 2, 3, 4],
            ),
        ];
        for (t, body) in bad {
            let err = SessionMsg::decode(&mut raw_msg(t, body));
            assert!(err.is_err(), "type {t} with {body:?} decoded as {err:?}");
        }
        let unknown_command = br#"{"command":"reboot"}"#;
        assert!(SessionMsg::decode(&mut raw_msg(ty::DESKTOP_COMMAND, unknown_command)).is_err());
        // Positive control: the same shapes, well formed, decode.
        let mut good = raw_msg(
            ty::CURSOR_SHAPE,
            &[0, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4],
        );
        assert!(matches!(
            SessionMsg::decode(&mut good),
            Ok(Some(SessionMsg::CursorShape(_)))
        ));
    }

    #[test]
    fn input_is_told_apart_from_everything_else() {
        let input: Vec<&str> = all_messages()
            .iter()
            .filter(|m| is_input(m.to_bytes()[0]))
            .map(SessionMsg::name)
            .collect();
        assert_eq!(input, ["pointer", "wheel", "key", "clipboard"]);
        assert!(is_clipboard(
            SessionMsg::Clipboard(String::new()).to_bytes()[0]
        ));
        assert!(!is_clipboard(SessionMsg::Stdin(Bytes::new()).to_bytes()[0]));
    }

    #[test]
    fn scanner_keeps_the_screen_going_down_and_not_coming_up() {
        let video = SessionMsg::Video(Video {
            seq: 1,
            data: Bytes::from_static(b"frame"),
        });
        let info = SessionMsg::DesktopInfo(DesktopInfo {
            width: 8,
            height: 8,
            monitors: Vec::new(),
            monitor: None,
            codec: "vp8".into(),
        });
        let key = SessionMsg::Key(Key {
            keysym: 0x61,
            down: true,
        });
        let mut stream = BytesMut::new();
        for m in [&info, &video, &key] {
            m.encode(&mut stream);
        }
        let (down, _) = scan(Direction::Down, &stream, 3);
        assert_eq!(down, [info.clone(), video.clone()]);
        // A technician cannot put screen updates into the record.
        let (up, _) = scan(Direction::Up, &stream, 3);
        assert!(up.is_empty(), "{up:?}");
    }

    #[test]
    fn a_desktop_target_says_what_was_asked() {
        let d = |control, clipboard| SessionRequest::Desktop {
            control,
            clipboard,
            monitor: None,
            consent: ConsentMode::default(),
            technician: String::new(),
            codecs: None,
        };
        assert_eq!(d(false, false).target(), "view");
        assert_eq!(d(true, true).target(), "control, clipboard");
        assert_eq!(d(true, false).kind(), SessionKind::Desktop);
        assert_eq!("desktop".parse::<SessionKind>(), Ok(SessionKind::Desktop));
        for m in ConsentMode::ALL {
            assert_eq!(m.as_str().parse::<ConsentMode>(), Ok(m));
        }
        assert!("ask".parse::<ConsentMode>().is_err());
        // A technician's request without the gateway's fields asks.
        let bare: SessionRequest =
            serde_json::from_str(r#"{"kind":"desktop","control":false}"#).unwrap();
        assert!(matches!(
            bare,
            SessionRequest::Desktop {
                consent: ConsentMode::Prompt,
                codecs: None,
                ..
            }
        ));
    }

    /// The agent picks the best codec both sides have; a viewer from
    /// before the negotiation gets full-size pictures only; a viewer
    /// offering nothing the agent knows gets none.
    #[test]
    fn the_best_common_codec_is_chosen() {
        use crate::desktop::codec::{ALL, FULL_SIZE, REDUCED_SIZE, choose};
        let offer = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(choose(Some(&offer(&ALL)), &ALL), Some(REDUCED_SIZE));
        assert_eq!(
            choose(Some(&offer(&[FULL_SIZE, REDUCED_SIZE])), &ALL),
            Some(REDUCED_SIZE)
        );
        assert_eq!(choose(Some(&offer(&[FULL_SIZE])), &ALL), Some(FULL_SIZE));
        assert_eq!(choose(None, &ALL), Some(FULL_SIZE));
        assert_eq!(choose(Some(&offer(&["vp8", "jumpgate-9"])), &ALL), None);
        assert_eq!(choose(Some(&[]), &ALL), None);
        // An agent that has full size only never answers with reduced.
        assert_eq!(choose(Some(&offer(&ALL)), &[FULL_SIZE]), Some(FULL_SIZE));
        // Absent on the wire when not offered (older agents read it).
        let req = SessionRequest::Desktop {
            control: false,
            clipboard: false,
            monitor: None,
            consent: ConsentMode::Prompt,
            technician: String::new(),
            codecs: None,
        };
        assert!(!serde_json::to_string(&req).unwrap().contains("codecs"));
    }
}
