//! Connection-level frames between an agent and the gateway.
//!
//! Every frame starts with a fixed 12-byte header:
//!
//! ```text
//!  0      1      2             4                 8                 12
//!  +------+------+-------------+-----------------+-----------------+------------
//!  | type | flags|  reserved   |   stream id     |     length      | payload...
//!  +------+------+-------------+-----------------+-----------------+------------
//! ```
//!
//! All integers are big-endian. `length` is the payload length for frames that
//! carry one (`Data`, `GoAway`, `Control`) and an argument otherwise (the window
//! increment of `Window`, the error code of `Reset`, the opaque value of `Ping`).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::ProtoError;

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 12;

/// Largest payload a peer may put in one `Data` frame. Larger frames close the
/// connection: they would let one stream monopolise the socket and the
/// receiver's reassembly buffer.
pub const MAX_DATA_PAYLOAD: usize = 32 * 1024;

/// Largest payload of a `Control` or `GoAway` frame.
pub const MAX_CONTROL_PAYLOAD: usize = 64 * 1024;

/// A stream identifier. Stream 0 is the connection itself; the gateway opens
/// even-numbered streams and the agent odd-numbered ones, so both can open
/// streams without coordination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Frame types. Values are part of the wire format and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Opens a new stream (the sender's side of it). No payload.
    Open = 1,
    /// Stream payload bytes.
    Data = 2,
    /// Grants the peer `length` more bytes of send window on the stream.
    Window = 3,
    /// The sender will send no more data on the stream (half-close).
    Fin = 4,
    /// Abrupt close of both directions; `length` carries an error code.
    Reset = 5,
    /// Liveness probe on stream 0; `length` is echoed back in `Pong`.
    Ping = 6,
    /// Answer to `Ping`.
    Pong = 7,
    /// The sender is closing the connection; payload: u32 code + UTF-8 reason.
    GoAway = 8,
    /// A control message on stream 0 (JSON payload, see [`crate::control`]).
    Control = 9,
}

impl FrameType {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Open,
            2 => Self::Data,
            3 => Self::Window,
            4 => Self::Fin,
            5 => Self::Reset,
            6 => Self::Ping,
            7 => Self::Pong,
            8 => Self::GoAway,
            9 => Self::Control,
            _ => return None,
        })
    }
}

/// A decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Open(StreamId),
    Data(StreamId, Bytes),
    Window(StreamId, u32),
    Fin(StreamId),
    Reset(StreamId, u32),
    Ping(u32),
    Pong(u32),
    GoAway { code: u32, reason: String },
    Control(Bytes),
}

impl Frame {
    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Self::Open(id) => put_header(out, FrameType::Open, id.0, 0),
            Self::Data(id, data) => encode_data(out, *id, data),
            Self::Window(id, inc) => put_header(out, FrameType::Window, id.0, *inc),
            Self::Fin(id) => put_header(out, FrameType::Fin, id.0, 0),
            Self::Reset(id, code) => put_header(out, FrameType::Reset, id.0, *code),
            Self::Ping(v) => put_header(out, FrameType::Ping, 0, *v),
            Self::Pong(v) => put_header(out, FrameType::Pong, 0, *v),
            Self::GoAway { code, reason } => {
                let reason = truncate_utf8(reason, MAX_CONTROL_PAYLOAD - 4);
                put_header(out, FrameType::GoAway, 0, (4 + reason.len()) as u32);
                out.put_u32(*code);
                out.put_slice(reason.as_bytes());
            }
            Self::Control(payload) => {
                put_header(out, FrameType::Control, 0, payload.len() as u32);
                out.put_slice(payload);
            }
        }
    }

    /// Decodes one frame from the front of `buf`, consuming it.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is
    /// consumed then).
    ///
    /// # Errors
    /// A malformed or oversized frame; the connection must be closed.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, ProtoError> {
        let Some(header) = peek_header(buf)? else {
            return Ok(None);
        };
        let payload_len = header.payload_len();
        if buf.len() < HEADER_LEN + payload_len {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(payload_len).freeze();
        Ok(Some(header.into_frame(payload)?))
    }
}

/// Appends a `Data` frame without building a [`Frame`] first (hot path).
pub fn encode_data(out: &mut BytesMut, id: StreamId, data: &[u8]) {
    debug_assert!(data.len() <= MAX_DATA_PAYLOAD);
    put_header(out, FrameType::Data, id.0, data.len() as u32);
    out.put_slice(data);
}

fn put_header(out: &mut BytesMut, ty: FrameType, stream: u32, length: u32) {
    out.reserve(HEADER_LEN);
    out.put_u8(ty as u8);
    out.put_u8(0);
    out.put_u16(0);
    out.put_u32(stream);
    out.put_u32(length);
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A validated frame header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) ty: FrameType,
    pub(crate) stream: u32,
    pub(crate) length: u32,
}

impl Header {
    /// How many payload bytes follow the header.
    pub(crate) fn payload_len(&self) -> usize {
        match self.ty {
            FrameType::Data | FrameType::GoAway | FrameType::Control => self.length as usize,
            _ => 0,
        }
    }

    pub(crate) fn into_frame(self, payload: Bytes) -> Result<Frame, ProtoError> {
        let id = StreamId(self.stream);
        Ok(match self.ty {
            FrameType::Open => Frame::Open(id),
            FrameType::Data => Frame::Data(id, payload),
            FrameType::Window => Frame::Window(id, self.length),
            FrameType::Fin => Frame::Fin(id),
            FrameType::Reset => Frame::Reset(id, self.length),
            FrameType::Ping => Frame::Ping(self.length),
            FrameType::Pong => Frame::Pong(self.length),
            FrameType::GoAway => {
                let mut p = payload;
                let code = p.get_u32();
                let reason = String::from_utf8(p.to_vec())
                    .map_err(|_| ProtoError::Malformed("go-away reason is not UTF-8"))?;
                Frame::GoAway { code, reason }
            }
            FrameType::Control => Frame::Control(payload),
        })
    }
}

/// Reads and validates the header at the front of `buf` without consuming it.
pub(crate) fn peek_header(buf: &[u8]) -> Result<Option<Header>, ProtoError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let ty = FrameType::from_u8(buf[0]).ok_or(ProtoError::UnknownFrameType(buf[0]))?;
    if buf[1] != 0 || buf[2] != 0 || buf[3] != 0 {
        return Err(ProtoError::Malformed("reserved header bits are set"));
    }
    let stream = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let length = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
    let connection_level = matches!(
        ty,
        FrameType::Ping | FrameType::Pong | FrameType::GoAway | FrameType::Control
    );
    if connection_level != (stream == 0) {
        return Err(ProtoError::Malformed("frame sent on the wrong stream"));
    }
    let limit = match ty {
        FrameType::Data => MAX_DATA_PAYLOAD,
        FrameType::GoAway | FrameType::Control => MAX_CONTROL_PAYLOAD,
        _ => usize::MAX,
    };
    let header = Header { ty, stream, length };
    if header.payload_len() > limit {
        return Err(ProtoError::FrameTooLarge {
            len: header.payload_len(),
            max: limit,
        });
    }
    if ty == FrameType::GoAway && length < 4 {
        return Err(ProtoError::Malformed("go-away frame shorter than its code"));
    }
    Ok(Some(header))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        // Every strict prefix is incomplete, never an error.
        for cut in 0..buf.len() {
            let mut partial = BytesMut::from(&buf[..cut]);
            assert_eq!(Frame::decode(&mut partial).unwrap(), None, "cut at {cut}");
            assert_eq!(partial.len(), cut, "nothing consumed");
        }
        let decoded = Frame::decode(&mut buf).unwrap().unwrap();
        assert_eq!(decoded, frame);
        assert!(buf.is_empty());
    }

    #[test]
    fn every_frame_type_roundtrips() {
        roundtrip(Frame::Open(StreamId(2)));
        roundtrip(Frame::Data(StreamId(3), Bytes::from_static(b"hello")));
        roundtrip(Frame::Data(StreamId(3), Bytes::new()));
        roundtrip(Frame::Window(StreamId(4), 65536));
        roundtrip(Frame::Fin(StreamId(5)));
        roundtrip(Frame::Reset(StreamId(6), 7));
        roundtrip(Frame::Ping(42));
        roundtrip(Frame::Pong(42));
        roundtrip(Frame::GoAway {
            code: 3,
            reason: "shutting down ✓".into(),
        });
        roundtrip(Frame::Control(Bytes::from_static(br#"{"type":"x"}"#)));
    }

    #[test]
    fn oversized_data_frame_is_rejected_from_the_header_alone() {
        let mut buf = BytesMut::new();
        put_header(&mut buf, FrameType::Data, 1, (MAX_DATA_PAYLOAD + 1) as u32);
        // Only the header has arrived: the receiver must not wait for (or
        // buffer) a payload it will refuse anyway.
        assert!(matches!(
            Frame::decode(&mut buf),
            Err(ProtoError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let cases: [[u8; 12]; 4] = [
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // unknown type 0
            [2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // flags set
            [6, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], // ping on a stream
            [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // data on stream 0
        ];
        for case in cases {
            let mut buf = BytesMut::from(&case[..]);
            assert!(Frame::decode(&mut buf).is_err(), "{case:?}");
        }
        let mut short_goaway = BytesMut::new();
        put_header(&mut short_goaway, FrameType::GoAway, 0, 2);
        short_goaway.put_u16(0);
        assert!(Frame::decode(&mut short_goaway).is_err());
    }

    #[test]
    fn goaway_reason_is_truncated_on_a_char_boundary() {
        let reason = "é".repeat(MAX_CONTROL_PAYLOAD);
        let mut buf = BytesMut::new();
        Frame::GoAway { code: 1, reason }.encode(&mut buf);
        let Frame::GoAway { reason, .. } = Frame::decode(&mut buf).unwrap().unwrap() else {
            panic!("not a go-away");
        };
        assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 4);
        assert!(reason.chars().all(|c| c == 'é'));
    }
}
