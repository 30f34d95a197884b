use crate::frame::StreamId;

/// A violation of the wire protocol. The connection it happened on must be
/// closed; the reason is logged, and the gateway carries on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The frame type byte is not one this version knows.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A frame header or payload does not follow the format.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A frame or message announced more payload than allowed.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    /// The peer sent more than the stream's receive window allows.
    #[error("flow-control window exceeded on stream {0}")]
    FlowControl(StreamId),
    /// A frame that is invalid for the stream's state.
    #[error("stream {0}: {1}")]
    StreamViolation(StreamId, &'static str),
    /// The peer keeps sending frames that call for an answer (pings,
    /// streams to refuse) but does not read the answers: they would pile
    /// up without bound.
    #[error("the peer does not read its answers ({0} bytes wait to be sent)")]
    PeerNotReading(usize),
    /// A control or session message whose JSON does not parse.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
}
