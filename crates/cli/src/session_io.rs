//! Session messages to and from the gateway: `jumpgate-net`'s
//! [`MsgStream`] with `jg`'s error messages, and the `Open` →
//! `Accepted`/`Refused` exchange every session starts with.

use anyhow::{anyhow, bail};
use jumpgate_net::session::{Answer, MsgError, MsgStream, OpenError};
use jumpgate_proto::session::{Accepted, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::errors::{GatewayClosed, Refused};

/// What a failed read says.
fn read_error(e: MsgError) -> anyhow::Error {
    match e {
        MsgError::Io(e) => anyhow::Error::new(e).context("reading from the gateway"),
        MsgError::Malformed(e) => anyhow::Error::new(e).context("malformed session message"),
        MsgError::Truncated => anyhow!("the gateway connection ended in the middle of a message"),
    }
}

/// Reads the next message. `Ok(None)`: the stream ended cleanly between
/// two messages. Cancel-safe (a `select!` branch loses nothing).
pub(crate) async fn recv<R: AsyncRead + Unpin>(
    rx: &mut MsgStream<R>,
) -> anyhow::Result<Option<SessionMsg>> {
    rx.read_msg().await.map_err(read_error)
}

/// Like [`recv`], but the end of the stream is an error: the caller still
/// expects an answer.
pub(crate) async fn expect<R: AsyncRead + Unpin>(
    rx: &mut MsgStream<R>,
) -> anyhow::Result<SessionMsg> {
    match recv(rx).await? {
        Some(SessionMsg::Closed { reason }) => Err(GatewayClosed { reason }.into()),
        Some(msg) => Ok(msg),
        None => bail!("the connection to the gateway was lost"),
    }
}

/// Sends `Open(req)` and waits for the agent's answer. `Refused` becomes a
/// [`Refused`] error, `Closed` a [`GatewayClosed`] one. Bytes read past the
/// answer stay buffered in `io`.
pub(crate) async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut MsgStream<S>,
    req: SessionRequest,
) -> anyhow::Result<Accepted> {
    const WAITING: &str = "waiting for the endpoint to accept the session";
    match io.open(req).await {
        Ok(Answer::Accepted(a)) => Ok(a),
        Ok(Answer::Refused(r)) => Err(Refused(r).into()),
        Err(OpenError::Send(e)) => {
            Err(anyhow::Error::new(e).context("sending the session request"))
        }
        Err(OpenError::Unexpected(SessionMsg::Closed { reason })) => {
            Err(anyhow::Error::new(GatewayClosed { reason }).context(WAITING))
        }
        Err(OpenError::Unexpected(other)) => bail!(
            "unexpected {} message instead of the endpoint's answer",
            other.name()
        ),
        Err(OpenError::Ended) => {
            Err(anyhow!("the connection to the gateway was lost").context(WAITING))
        }
        Err(OpenError::Read(e)) => Err(read_error(e).context(WAITING)),
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use jumpgate_proto::session::{Refusal, RefusalCode, SessionRequest};
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn messages_cross_a_stream_in_order() {
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (MsgStream::new(a), MsgStream::new(b));
        let msgs = vec![
            SessionMsg::Stdout(Bytes::from(vec![7u8; 1000])),
            SessionMsg::Resize {
                cols: 100,
                rows: 30,
            },
            SessionMsg::StdinEof,
        ];
        let sent = msgs.clone();
        let writer = tokio::spawn(async move {
            for m in &sent {
                a.write_msg(m).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(m) = recv(&mut b).await.unwrap() {
            got.push(m);
        }
        writer.await.unwrap();
        assert_eq!(got, msgs);
    }

    #[tokio::test]
    async fn truncated_and_garbage_streams_are_errors() {
        let (mut a, b) = tokio::io::duplex(64);
        let whole = SessionMsg::Stdout(Bytes::from_static(b"hello")).to_bytes();
        a.write_all(&whole[..whole.len() - 1]).await.unwrap();
        drop(a);
        let err = recv(&mut MsgStream::new(b)).await.unwrap_err();
        assert!(
            err.to_string().contains("in the middle of a message"),
            "{err}"
        );

        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[200, 0, 0, 0, 0]).await.unwrap();
        let err = recv(&mut MsgStream::new(b)).await.unwrap_err();
        assert_eq!(err.to_string(), "malformed session message");
    }

    #[tokio::test]
    async fn open_reports_refusal_closure_and_keeps_extra_bytes() {
        let req = SessionRequest::Download { path: "/x".into() };

        let (a, mut b) = tokio::io::duplex(1024);
        let mut reply = BytesMut::new();
        SessionMsg::Accepted(Accepted::default()).encode(&mut reply);
        reply.extend_from_slice(b"raw bytes");
        b.write_all(&reply).await.unwrap();
        let mut a = MsgStream::new(a);
        open(&mut a, req.clone()).await.unwrap();
        assert_eq!(a.buffered(), b"raw bytes");
        let mut peer = MsgStream::new(b);
        assert_eq!(
            recv(&mut peer).await.unwrap(),
            Some(SessionMsg::Open(req.clone()))
        );

        let (a, b) = tokio::io::duplex(1024);
        let refusal = Refusal {
            code: RefusalCode::NotFound,
            message: "no such file".into(),
        };
        let mut peer = MsgStream::new(b);
        peer.write_msg(&SessionMsg::Refused(refusal)).await.unwrap();
        let err = open(&mut MsgStream::new(a), req.clone()).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<Refused>().unwrap().0.message,
            "no such file"
        );

        let (a, b) = tokio::io::duplex(1024);
        let closed = SessionMsg::Closed {
            reason: "shutdown".into(),
        };
        let mut peer = MsgStream::new(b);
        peer.write_msg(&closed).await.unwrap();
        let err = open(&mut MsgStream::new(a), req.clone()).await.unwrap_err();
        assert_eq!(
            err.downcast_ref::<GatewayClosed>().unwrap().reason,
            "shutdown"
        );

        let (a, b) = tokio::io::duplex(1024);
        drop(b);
        assert!(open(&mut MsgStream::new(a), req).await.is_err());
    }
}
