//! System streams ([`jumpgate_proto::system`]) over an async byte stream:
//! one message (a head and its body) written in chunks, or read whole.
//! The gateway's sender and the agent's handlers both use these.

use std::io;

use bytes::{Bytes, BytesMut};
use jumpgate_proto::ProtoError;
use jumpgate_proto::system::{self, Assembler, Head, SystemMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a system message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("system stream failed: {0}")]
    Io(#[from] io::Error),
    #[error("system stream broke the protocol: {0}")]
    Proto(#[from] ProtoError),
    /// The stream ended before the whole message (`received` bytes) arrived.
    #[error("system stream ended after {received} bytes, inside a message")]
    Truncated { received: usize },
}

/// Writes `head` and then `body` in chunks of [`system::CHUNK`] bytes, through
/// the stream's flow control. The head's size is set from `body`.
///
/// # Errors
/// The stream failed (reset, connection lost), or `body` is larger than
/// [`system::MAX_BODY`] (`InvalidInput`, nothing written).
pub async fn write_message<W>(w: &mut W, head: Head, body: &Bytes) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if body.len() > system::MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a system message body of {} bytes exceeds the limit of {}",
                body.len(),
                system::MAX_BODY
            ),
        ));
    }
    let size = body.len() as u64;
    let head = match head {
        Head::Request(mut r) => {
            r.size = size;
            SystemMsg::Request(r)
        }
        Head::Reply(mut r) => {
            r.size = size;
            SystemMsg::Reply(r)
        }
    };
    let mut out = BytesMut::with_capacity(system::HEADER_LEN + system::CHUNK);
    head.encode(&mut out);
    for chunk in system::chunks(body) {
        chunk.encode(&mut out);
        w.write_all(&out).await?;
        out.clear();
    }
    if !out.is_empty() {
        w.write_all(&out).await?;
    }
    w.flush().await
}

/// Reads one whole message (head and body, the body at most `max_body`
/// bytes), starting with `already` (bytes of it read before). Returns as
/// soon as the body is complete, without waiting for the end of the stream.
///
/// # Errors
/// The stream failed or ended early, or its bytes are not a valid message
/// within the limit.
pub async fn read_message<R>(
    r: &mut R,
    already: &[u8],
    max_body: usize,
) -> Result<(Head, Bytes), ReadError>
where
    R: AsyncRead + Unpin,
{
    let mut asm = Assembler::new(max_body);
    if let Some(m) = asm.feed(already)? {
        return Ok(m);
    }
    let mut buf = vec![0u8; system::CHUNK + system::HEADER_LEN];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Err(ReadError::Truncated {
                received: already.len().max(asm.received()),
            });
        }
        if let Some(m) = asm.feed(&buf[..n])? {
            return Ok(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jumpgate_proto::mux::Role;
    use jumpgate_proto::system::{Reply, Request, Status};

    use super::*;
    use crate::mux::{self, DriverConfig, MuxEvent};

    fn body(n: usize) -> Bytes {
        (0..n).map(|i| (i % 253) as u8).collect::<Vec<u8>>().into()
    }

    #[tokio::test]
    async fn a_large_request_and_reply_cross_a_real_mux_connection() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (gateway, _gev, gd) =
            mux::start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
        let (_agent, mut aev, ad) =
            mux::start(b, Role::Agent, &[], DriverConfig::default()).unwrap();
        tokio::spawn(gd);
        tokio::spawn(ad);
        let sent = body(3 * 1024 * 1024 + 5);
        let agent = tokio::spawn(async move {
            let Some(MuxEvent::Stream(mut s)) = aev.recv().await else {
                panic!("no stream");
            };
            let (head, got) = read_message(&mut s, &[], system::MAX_BODY).await.unwrap();
            assert!(matches!(head, Head::Request(ref r) if r.topic == "echo"));
            let reply = Head::Reply(Reply {
                status: Status::Ok,
                message: String::new(),
                size: 0,
            });
            write_message(&mut s, reply, &got).await.unwrap();
            s.shutdown().await.unwrap();
            // Wait for the gateway's end so the stream closes cleanly.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        });
        let mut s = gateway.open().unwrap();
        let req = Head::Request(Request {
            topic: "echo".into(),
            size: 0,
        });
        write_message(&mut s, req, &sent).await.unwrap();
        s.shutdown().await.unwrap();
        let (head, echoed) = tokio::time::timeout(
            Duration::from_secs(60),
            read_message(&mut s, &[], system::MAX_BODY),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(head.size(), sent.len() as u64);
        assert_eq!(echoed, sent);
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        agent.await.unwrap();
    }

    #[tokio::test]
    async fn limits_and_truncation_are_errors() {
        let mut sink = tokio::io::sink();
        let too_big = Bytes::from(vec![0u8; system::MAX_BODY + 1]);
        let head = Head::Request(Request {
            topic: "echo".into(),
            size: 0,
        });
        let err = write_message(&mut sink, head.clone(), &too_big)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        // A whole message of 1000 bytes, then one cut short.
        let mut full = Vec::new();
        write_message(&mut full, head, &body(1000)).await.unwrap();
        let (_, got) = read_message(&mut &full[..], &[], 1000).await.unwrap();
        assert_eq!(got.len(), 1000);
        // The first bytes may come from the caller (read before).
        let (_, got) = read_message(&mut &full[9..], &full[..9], 1000)
            .await
            .unwrap();
        assert_eq!(got, body(1000));
        let cut = &full[..full.len() - 1];
        assert!(matches!(
            read_message(&mut &cut[..], &[], 1000).await,
            Err(ReadError::Truncated { .. })
        ));
        // Over the receiver's limit: refused from the head.
        assert!(matches!(
            read_message(&mut &full[..], &[], 999).await,
            Err(ReadError::Proto(ProtoError::FrameTooLarge { .. }))
        ));
    }
}
