//! Session messages over a byte stream: encode-and-write, read-and-decode, and
//! the `Open` → `Accepted`/`Refused` exchange every session starts with.

use anyhow::{Context, bail};
use bytes::BytesMut;
use jumpgate_proto::session::{Accepted, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::errors::{GatewayClosed, Refused};

/// How much the read buffer grows by when a message is incomplete.
const READ_RESERVE: usize = 64 * 1024;

/// Writes one message.
pub(crate) async fn send<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    msg: &SessionMsg,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    msg.encode(&mut out);
    w.write_all(&out).await?;
    w.flush().await
}

/// Reads the next message, buffering in `buf` what was read past it.
/// `Ok(None)`: the stream ended cleanly between two messages.
///
/// Cancel-safe: bytes read before a cancellation stay in `buf`, so it can be
/// used as a `select!` branch.
pub(crate) async fn recv<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<SessionMsg>> {
    loop {
        if let Some(msg) = SessionMsg::decode(buf).context("malformed session message")? {
            return Ok(Some(msg));
        }
        buf.reserve(READ_RESERVE);
        if r.read_buf(buf).await.context("reading from the gateway")? == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            bail!("the gateway connection ended in the middle of a message");
        }
    }
}

/// Like [`recv`], but the end of the stream is an error: the caller still
/// expects an answer.
pub(crate) async fn expect<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut BytesMut,
) -> anyhow::Result<SessionMsg> {
    match recv(r, buf).await? {
        Some(SessionMsg::Closed { reason }) => Err(GatewayClosed { reason }.into()),
        Some(msg) => Ok(msg),
        None => bail!("the connection to the gateway was lost"),
    }
}

/// Sends `Open(req)` and waits for the agent's answer. `Refused` becomes a
/// [`Refused`] error, `Closed` a [`GatewayClosed`] one. Bytes read past the
/// answer stay in `buf`.
pub(crate) async fn open<S: AsyncRead + AsyncWrite + Unpin + ?Sized>(
    io: &mut S,
    buf: &mut BytesMut,
    req: SessionRequest,
) -> anyhow::Result<Accepted> {
    send(io, &SessionMsg::Open(req))
        .await
        .context("sending the session request")?;
    match expect(io, buf).await {
        Ok(SessionMsg::Accepted(a)) => Ok(a),
        Ok(SessionMsg::Refused(r)) => Err(Refused(r).into()),
        Ok(other) => bail!(
            "unexpected {} message instead of the endpoint's answer",
            name(&other)
        ),
        Err(e) => Err(e.context("waiting for the endpoint to accept the session")),
    }
}

/// A message's name for error messages (never its payload: it may be file
/// contents or terminal output).
pub(crate) fn name(msg: &SessionMsg) -> &'static str {
    match msg {
        SessionMsg::Open(_) => "Open",
        SessionMsg::Accepted(_) => "Accepted",
        SessionMsg::Refused(_) => "Refused",
        SessionMsg::Stdin(_) => "Stdin",
        SessionMsg::Stdout(_) => "Stdout",
        SessionMsg::Stderr(_) => "Stderr",
        SessionMsg::Resize { .. } => "Resize",
        SessionMsg::Exit(_) => "Exit",
        SessionMsg::StdinEof => "StdinEof",
        SessionMsg::Signal(_) => "Signal",
        SessionMsg::FileData(_) => "FileData",
        SessionMsg::FileEnd(_) => "FileEnd",
        SessionMsg::FileResult(_) => "FileResult",
        SessionMsg::Closed { .. } => "Closed",
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use jumpgate_proto::session::{Refusal, RefusalCode, SessionRequest};

    use super::*;

    #[tokio::test]
    async fn messages_cross_a_stream_in_order() {
        let (mut a, mut b) = tokio::io::duplex(64);
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
                send(&mut a, m).await.unwrap();
            }
        });
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        while let Some(m) = recv(&mut b, &mut buf).await.unwrap() {
            got.push(m);
        }
        writer.await.unwrap();
        assert_eq!(got, msgs);
    }

    #[tokio::test]
    async fn truncated_and_garbage_streams_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let whole = SessionMsg::Stdout(Bytes::from_static(b"hello")).to_bytes();
        a.write_all(&whole[..whole.len() - 1]).await.unwrap();
        drop(a);
        assert!(recv(&mut b, &mut BytesMut::new()).await.is_err());

        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[200, 0, 0, 0, 0]).await.unwrap();
        assert!(recv(&mut b, &mut BytesMut::new()).await.is_err());
    }

    #[tokio::test]
    async fn open_reports_refusal_closure_and_keeps_extra_bytes() {
        let req = SessionRequest::Download { path: "/x".into() };

        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut reply = BytesMut::new();
        SessionMsg::Accepted(Accepted::default()).encode(&mut reply);
        reply.extend_from_slice(b"raw bytes");
        b.write_all(&reply).await.unwrap();
        let mut buf = BytesMut::new();
        open(&mut a, &mut buf, req.clone()).await.unwrap();
        assert_eq!(&buf[..], b"raw bytes");
        let mut peer_buf = BytesMut::new();
        assert_eq!(
            recv(&mut b, &mut peer_buf).await.unwrap(),
            Some(SessionMsg::Open(req.clone()))
        );

        let (mut a, mut b) = tokio::io::duplex(1024);
        let refusal = Refusal {
            code: RefusalCode::NotFound,
            message: "no such file".into(),
        };
        send(&mut b, &SessionMsg::Refused(refusal)).await.unwrap();
        let err = open(&mut a, &mut BytesMut::new(), req.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<Refused>().unwrap().0.message,
            "no such file"
        );

        let (mut a, mut b) = tokio::io::duplex(1024);
        let closed = SessionMsg::Closed {
            reason: "shutdown".into(),
        };
        send(&mut b, &closed).await.unwrap();
        let err = open(&mut a, &mut BytesMut::new(), req.clone())
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<GatewayClosed>().unwrap().reason,
            "shutdown"
        );

        let (mut a, b) = tokio::io::duplex(1024);
        drop(b);
        assert!(open(&mut a, &mut BytesMut::new(), req).await.is_err());
    }
}
