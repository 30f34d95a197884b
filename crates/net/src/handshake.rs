//! The connection handshake's framing, for both ends: before the
//! multiplexer starts, the agent's `Hello` and the gateway's `Welcome` or
//! `Reject` travel as single `Control` frames on the raw TLS stream (see
//! `jumpgate_proto::control`).

use bytes::BytesMut;
use jumpgate_proto::ProtoError;
use jumpgate_proto::control::Control;
use jumpgate_proto::frame::{Frame, HEADER_LEN, MAX_CONTROL_PAYLOAD};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a handshake message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ControlReadError {
    /// Reading failed, or the stream ended first (`UnexpectedEof`).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid frame.
    #[error("{0}")]
    Frame(#[source] ProtoError),
    /// A valid frame, but not a `Control` one.
    #[error("the first frame is not a control frame")]
    NotControl,
    /// More bytes than a control frame may hold arrived without one.
    #[error("control message too large")]
    TooLarge,
    /// A `Control` frame whose payload is not a control message.
    #[error("{0}")]
    Message(#[source] ProtoError),
}

/// Reads one `Control` frame and decodes its message. Bytes read past it
/// stay in `buf` (the multiplexer's first bytes). Cancel-safe: read bytes
/// only ever move into `buf`.
///
/// # Errors
/// See [`ControlReadError`].
pub async fn read_control_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
) -> Result<Control, ControlReadError> {
    loop {
        if let Some(frame) = Frame::decode(buf).map_err(ControlReadError::Frame)? {
            let Frame::Control(payload) = frame else {
                return Err(ControlReadError::NotControl);
            };
            return Control::from_bytes(&payload).map_err(ControlReadError::Message);
        }
        if buf.len() > HEADER_LEN + MAX_CONTROL_PAYLOAD {
            return Err(ControlReadError::TooLarge);
        }
        if r.read_buf(buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
}

/// Writes one control message as a `Control` frame.
///
/// # Errors
/// Writing failed.
pub async fn write_control<W: AsyncWrite + Unpin>(w: &mut W, msg: &Control) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    Frame::Control(msg.to_bytes().into()).encode(&mut out);
    w.write_all(&out).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use jumpgate_proto::control::{Reject, RejectCode, Welcome};

    use super::*;

    #[tokio::test]
    async fn a_control_message_crosses_and_what_follows_it_stays_buffered() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let welcome = Control::Welcome(Welcome {
            version: 1,
            endpoint: "web-1".into(),
            heartbeat_secs: 30,
        });
        write_control(&mut a, &welcome).await.unwrap();
        a.write_all(b"next").await.unwrap();
        let mut buf = BytesMut::new();
        // The whole frame may arrive in pieces.
        assert_eq!(read_control_frame(&mut b, &mut buf).await.unwrap(), welcome);
        while buf.len() < 4 {
            b.read_buf(&mut buf).await.unwrap();
        }
        assert_eq!(&buf[..], b"next");
    }

    #[tokio::test]
    async fn wrong_frames_garbage_and_an_early_end_are_told_apart() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut out = BytesMut::new();
        Frame::Ping(7).encode(&mut out);
        a.write_all(&out).await.unwrap();
        let got = read_control_frame(&mut b, &mut BytesMut::new()).await;
        assert!(matches!(got, Err(ControlReadError::NotControl)), "{got:?}");

        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut out = BytesMut::new();
        Frame::Control(b"{not json".to_vec().into()).encode(&mut out);
        a.write_all(&out).await.unwrap();
        let got = read_control_frame(&mut b, &mut BytesMut::new()).await;
        assert!(matches!(got, Err(ControlReadError::Message(_))), "{got:?}");

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0xff; HEADER_LEN]).await.unwrap();
        let got = read_control_frame(&mut b, &mut BytesMut::new()).await;
        assert!(matches!(got, Err(ControlReadError::Frame(_))), "{got:?}");

        let (mut a, mut b) = tokio::io::duplex(1024);
        let reject = Control::Reject(Reject {
            code: RejectCode::Malformed,
            message: "x".into(),
        });
        let mut out = BytesMut::new();
        Frame::Control(reject.to_bytes().into()).encode(&mut out);
        a.write_all(&out[..out.len() - 1]).await.unwrap();
        drop(a);
        let got = read_control_frame(&mut b, &mut BytesMut::new()).await;
        assert!(
            matches!(&got, Err(ControlReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{got:?}"
        );
    }
}
