//! System streams: exchanges the gateway starts with an agent on its own
//! behalf, not a technician's — agent facts today; policy and package
//! notifications, agent updates next. They are a stream purpose of their
//! own, not a [`SessionKind`](crate::session::SessionKind): no technician,
//! no access decision, no session row, no recording.
//!
//! ```text
//! gateway                                        agent
//!   | Open(stream 2,4,…)                           |
//!   | Request{topic, size} ----------------------> |  first byte ≥ 0x80: a system stream
//!   | Chunk… (size bytes in all, ≤ 64 KiB each) -> |
//!   | Fin ---------------------------------------> |  the topic's handler runs
//!   | <---------------------- Reply{status, size}  |
//!   | <----------------------------------- Chunk…  |
//!   | <--------------------------------------- Fin |
//! ```
//!
//! Messages are framed like session messages (`type u8, length u32,
//! payload`), with types from [`FIRST_TYPE`] (0x80) up, so the first byte of
//! a stream says what it is for ([`StreamPurpose::of_first_byte`]); session
//! message types stay below 0x80. A body may be up to [`MAX_BODY`] bytes,
//! far beyond a control frame's 64 KiB: it travels in [`Chunk`]s through the
//! stream's flow control, and the receiver learns its size from the head,
//! so it refuses an oversized body before any of it arrives.
//!
//! The topic travels as a string, so an agent answers a topic it does not
//! know (from a newer gateway) with [`Status::UnknownTopic`] instead of
//! failing to parse it.
//!
//! [`Chunk`]: SystemMsg::Chunk

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::ProtoError;

/// The lowest message type of a system stream; session message types are
/// all below it.
pub const FIRST_TYPE: u8 = 0x80;
/// Message header length (as for session messages).
pub const HEADER_LEN: usize = 5;
/// Largest body of a request or reply.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Largest payload of one [`SystemMsg::Chunk`].
pub const MAX_CHUNK: usize = 64 * 1024;
/// Size bodies are cut into by senders.
pub const CHUNK: usize = 32 * 1024;
/// Largest JSON head (a [`Request`] or [`Reply`]).
pub const MAX_HEAD: usize = 16 * 1024;

/// What a stream the gateway opened is for, told by its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamPurpose {
    /// A technician session (its first message is `SessionMsg::Open`).
    Session,
    /// A system stream (its first message is a [`Request`]).
    System,
}

impl StreamPurpose {
    pub fn of_first_byte(b: u8) -> Self {
        if b >= FIRST_TYPE {
            Self::System
        } else {
            Self::Session
        }
    }
}

/// The topics this build knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Fresh endpoint details (host name, OS, architecture, agent
    /// version). Request body: empty. Reply body: JSON
    /// [`AgentInfo`](crate::control::AgentInfo).
    Facts,
    /// The reply body is the request body. A diagnostic of the system
    /// channel: agents answer it only when started for it (tests).
    Echo,
    /// The current EPM policy bundle. Request body: JSON
    /// [`PolicyNotice`](crate::epm::PolicyNotice); reply body: JSON
    /// [`PolicyAck`](crate::epm::PolicyAck).
    EpmPolicy,
    /// A technician's answer to an approval request. Request body: JSON
    /// [`ApprovalDecision`](crate::epm::ApprovalDecision); reply body
    /// empty (`invalid` when no such request is waiting).
    EpmDecision,
    /// The desired state of the endpoint's assigned packages. Request
    /// body: JSON [`PackageNotice`](crate::packages::PackageNotice); reply
    /// body: JSON [`PackageAck`](crate::packages::PackageAck).
    Packages,
    /// The endpoint's installed packages. Request body: JSON
    /// [`InventoryRequest`](crate::packages::InventoryRequest); reply body:
    /// JSON [`InventoryReport`](crate::packages::InventoryReport).
    PackageInventory,
    /// The host key an SSH target offers (trust on first use), asked of a
    /// jump point. Request body: JSON
    /// [`HostKeyRequest`](crate::target::HostKeyRequest); reply body: JSON
    /// [`HostKeyReply`](crate::target::HostKeyReply).
    TargetHostKey,
    /// Set a new password on an SSH target's account (rotation after use).
    /// Request body: JSON [`RotateRequest`](crate::target::RotateRequest);
    /// reply body empty (`ok`, or `failed` with the reason).
    TargetRotate,
}

impl Topic {
    pub const ALL: [Self; 8] = [
        Self::Facts,
        Self::Echo,
        Self::EpmPolicy,
        Self::EpmDecision,
        Self::Packages,
        Self::PackageInventory,
        Self::TargetHostKey,
        Self::TargetRotate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Facts => "facts",
            Self::Echo => "echo",
            Self::EpmPolicy => "epm-policy",
            Self::EpmDecision => "epm-decision",
            Self::Packages => "packages",
            Self::PackageInventory => "package-inventory",
            Self::TargetHostKey => "target-host-key",
            Self::TargetRotate => "target-rotate",
        }
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Topic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown topic `{s}`"))
    }
}

/// The gateway's request: the topic and the size of the body that follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub topic: String,
    pub size: u64,
}

/// How the agent answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    /// The agent does not serve this topic.
    UnknownTopic,
    /// The request body is not what the topic takes.
    Invalid,
    /// The handler failed (and any status a newer agent sends that this
    /// build does not know).
    #[serde(other)]
    Failed,
}

/// The agent's answer: a status, a message for logs when it is not `ok`,
/// and the size of the body that follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub status: Status,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub size: u64,
}

/// The head of a system message: what comes before its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    Request(Request),
    Reply(Reply),
}

impl Head {
    /// Size of the body that follows.
    pub fn size(&self) -> u64 {
        match self {
            Self::Request(r) => r.size,
            Self::Reply(r) => r.size,
        }
    }
}

/// Every system stream message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemMsg {
    Request(Request),
    Reply(Reply),
    /// Part of the body announced by the head before it.
    Chunk(Bytes),
}

mod ty {
    pub(super) const REQUEST: u8 = 0x80;
    pub(super) const REPLY: u8 = 0x81;
    pub(super) const CHUNK: u8 = 0x82;
}

impl SystemMsg {
    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        fn raw(out: &mut BytesMut, t: u8, body: &[u8]) {
            out.reserve(HEADER_LEN + body.len());
            out.put_u8(t);
            out.put_u32(body.len() as u32);
            out.put_slice(body);
        }
        match self {
            // Serializing these plain structs cannot fail.
            Self::Request(r) => raw(out, ty::REQUEST, &serde_json::to_vec(r).unwrap_or_default()),
            Self::Reply(r) => raw(out, ty::REPLY, &serde_json::to_vec(r).unwrap_or_default()),
            Self::Chunk(b) => raw(out, ty::CHUNK, b),
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
    /// An unknown type, a length beyond its type's limit (known from the
    /// header alone), or a head whose JSON does not parse.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, ProtoError> {
        let Some(total) = message_len(buf)? else {
            return Ok(None);
        };
        let t = buf[0];
        buf.advance(HEADER_LEN);
        let body = buf.split_to(total - HEADER_LEN).freeze();
        fn json<T: for<'a> Deserialize<'a>>(body: &[u8]) -> Result<T, ProtoError> {
            serde_json::from_slice(body).map_err(|e| ProtoError::InvalidMessage(e.to_string()))
        }
        Ok(Some(match t {
            ty::REQUEST => Self::Request(json(&body)?),
            ty::REPLY => Self::Reply(json(&body)?),
            _ => Self::Chunk(body),
        }))
    }

    /// The message's type, for logs (never its content).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::Reply(_) => "reply",
            Self::Chunk(_) => "chunk",
        }
    }
}

/// Length of the whole message at the front of `buf` once all of it has
/// arrived.
///
/// # Errors
/// An unknown type or a length beyond its type's limit.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let max = match buf[0] {
        ty::REQUEST | ty::REPLY => MAX_HEAD,
        ty::CHUNK => MAX_CHUNK,
        _ => return Err(ProtoError::Malformed("unknown system message type")),
    };
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > max {
        return Err(ProtoError::FrameTooLarge { len, max });
    }
    Ok((buf.len() >= HEADER_LEN + len).then_some(HEADER_LEN + len))
}

/// The messages that carry `body` after its head, [`CHUNK`] bytes each
/// (none for an empty body). The chunks share `body`'s memory.
pub fn chunks(body: &Bytes) -> impl Iterator<Item = SystemMsg> + '_ {
    (0..body.len())
        .step_by(CHUNK)
        .map(move |at| SystemMsg::Chunk(body.slice(at..(at + CHUNK).min(body.len()))))
}

/// Reassembles one head and its body from the bytes of a system stream,
/// in whatever pieces they arrive. A body larger than the receiver allows
/// is refused from the head alone, before any of it is buffered.
#[derive(Debug)]
pub struct Assembler {
    max_body: usize,
    buf: BytesMut,
    head: Option<Head>,
    body: BytesMut,
    done: bool,
}

impl Assembler {
    /// An assembler accepting bodies up to `max_body` bytes (at most
    /// [`MAX_BODY`]).
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body: max_body.min(MAX_BODY),
            buf: BytesMut::new(),
            head: None,
            body: BytesMut::new(),
            done: false,
        }
    }

    /// Feeds the next bytes of the stream; answers the head and the whole
    /// body once the last byte of the body arrived.
    ///
    /// # Errors
    /// A malformed stream: a chunk before the head, a second head, a body
    /// over the limit or longer than announced, bytes after the end.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(Head, Bytes)>, ProtoError> {
        if self.done && !data.is_empty() {
            return Err(ProtoError::Malformed(
                "bytes after the end of a system message",
            ));
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.head.is_some()
                && self.remaining() == 0
                && let Some(head) = self.head.take()
            {
                self.done = true;
                if !self.buf.is_empty() {
                    return Err(ProtoError::Malformed(
                        "bytes after the end of a system message",
                    ));
                }
                return Ok(Some((head, std::mem::take(&mut self.body).freeze())));
            }
            let Some(msg) = SystemMsg::decode(&mut self.buf)? else {
                return Ok(None);
            };
            match (msg, &self.head) {
                (SystemMsg::Request(r), None) => self.set_head(Head::Request(r))?,
                (SystemMsg::Reply(r), None) => self.set_head(Head::Reply(r))?,
                (SystemMsg::Chunk(_), None) => {
                    return Err(ProtoError::Malformed(
                        "a system stream must start with a request or reply",
                    ));
                }
                (SystemMsg::Chunk(c), Some(_)) => {
                    if c.len() > self.remaining() {
                        return Err(ProtoError::Malformed("more body than the head announced"));
                    }
                    self.body.extend_from_slice(&c);
                }
                (_, Some(_)) => {
                    return Err(ProtoError::Malformed("a second head in one system message"));
                }
            }
        }
    }

    fn set_head(&mut self, head: Head) -> Result<(), ProtoError> {
        let size = usize::try_from(head.size()).unwrap_or(usize::MAX);
        if size > self.max_body {
            return Err(ProtoError::FrameTooLarge {
                len: size,
                max: self.max_body,
            });
        }
        // Room for the body as announced, but never more than a chunk's
        // worth ahead of what has arrived (the head is the peer's word).
        self.body.reserve(size.min(MAX_CHUNK));
        self.head = Some(head);
        Ok(())
    }

    /// Body bytes still to come.
    fn remaining(&self) -> usize {
        self.head.as_ref().map_or(0, |h| {
            usize::try_from(h.size())
                .unwrap_or(usize::MAX)
                .saturating_sub(self.body.len())
        })
    }

    /// Whether a whole message was assembled.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes received so far (head, body and partial messages), for limits
    /// and logs.
    pub fn received(&self) -> usize {
        self.body.len() + self.buf.len()
    }
}

#[cfg(test)]
mod tests;
