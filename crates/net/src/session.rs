//! Session messages over a byte stream: the one reader and writer of
//! [`SessionMsg`]s, used by the gateway, the agent and `jg` (the shape of
//! mini-redis's `Connection`).
//!
//! A [`MsgStream`] owns the stream and a read buffer. [`MsgStream::read_msg`]
//! is cancel-safe: bytes read before a cancellation stay in the buffer, so
//! it can be a `select!` branch. Writes go through a write buffer too:
//! [`MsgStream::queue`] + [`MsgStream::flush`] batch small messages into one
//! write, and a cancelled flush keeps what it did not write.
//! [`MsgStream::into_parts`] hands back the stream and whatever was read past
//! the last message (a `forward` switches to raw bytes after `Accepted`).

use bytes::BytesMut;
use jumpgate_proto::ProtoError;
use jumpgate_proto::session::{self, Accepted, Refusal, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// Read granularity. Large enough that a 32 KiB data message usually
/// arrives in one read.
const READ_SIZE: usize = 64 * 1024;

/// Why a message could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    /// Reading or writing the stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid session message.
    #[error("{0}")]
    Malformed(#[from] ProtoError),
    /// The stream ended in the middle of a message.
    #[error("stream ended in the middle of a message")]
    Truncated,
}

/// The answer to `Open`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted(Accepted),
    Refused(Refusal),
}

/// Why the `Open` → `Accepted`/`Refused` exchange did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Sending `Open` failed.
    #[error("sending the session request: {0}")]
    Send(#[source] std::io::Error),
    /// Reading the answer failed.
    #[error("{0}")]
    Read(#[source] MsgError),
    /// The stream ended cleanly before any answer.
    #[error("the stream ended before the answer")]
    Ended,
    /// Another message came instead of the answer (a `Closed` from the
    /// gateway, say).
    #[error("unexpected {} message instead of the answer", .0.name())]
    Unexpected(SessionMsg),
}

/// A byte stream carrying session messages.
#[derive(Debug)]
pub struct MsgStream<S> {
    io: S,
    /// Read and not yet decoded.
    rbuf: BytesMut,
    /// Queued and not yet written.
    wbuf: BytesMut,
}

impl<S> MsgStream<S> {
    pub fn new(io: S) -> Self {
        Self::with_buffer(io, BytesMut::new())
    }

    /// A stream whose first bytes were already read into `buffered`.
    pub fn with_buffer(io: S, buffered: BytesMut) -> Self {
        Self {
            io,
            rbuf: buffered,
            wbuf: BytesMut::new(),
        }
    }

    /// The stream, and the bytes read past the last decoded message.
    /// Queued, unflushed writes are dropped.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.io, self.rbuf)
    }

    pub fn get_ref(&self) -> &S {
        &self.io
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Bytes read and not yet decoded.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
    }

    /// Decodes the buffered message, if whole (after [`Self::fill`]).
    ///
    /// # Errors
    /// The message is malformed.
    pub fn decode(&mut self) -> Result<Option<SessionMsg>, ProtoError> {
        SessionMsg::decode(&mut self.rbuf)
    }

    /// Adds a message to the next [`Self::flush`], so that bursts of small
    /// messages go out in one write.
    pub fn queue(&mut self, msg: &SessionMsg) {
        msg.encode(&mut self.wbuf);
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.wbuf.len()
    }
}

impl<S: AsyncRead + Unpin> MsgStream<S> {
    /// Waits until a whole message is buffered; `Ok(false)` at a clean end
    /// of the stream (between two messages). Cancel-safe: bytes only ever
    /// move into the buffer.
    ///
    /// # Errors
    /// Reading failed, the buffered header is malformed, or the stream ended
    /// inside a message.
    pub async fn fill(&mut self) -> Result<bool, MsgError> {
        loop {
            if session::message_len(&self.rbuf)?.is_some() {
                return Ok(true);
            }
            self.rbuf.reserve(READ_SIZE);
            if self.io.read_buf(&mut self.rbuf).await? == 0 {
                return if self.rbuf.is_empty() {
                    Ok(false)
                } else {
                    Err(MsgError::Truncated)
                };
            }
        }
    }

    /// The next message; `Ok(None)` at a clean end of the stream.
    /// Cancel-safe, like [`Self::fill`].
    ///
    /// # Errors
    /// Reading failed, the message is malformed, or the stream ended inside
    /// it.
    pub async fn read_msg(&mut self) -> Result<Option<SessionMsg>, MsgError> {
        if !self.fill().await? {
            return Ok(None);
        }
        Ok(self.decode()?)
    }

    /// Discards input until the end of the stream or an error (bounded by
    /// the caller's timeout).
    pub async fn drain(&mut self) {
        loop {
            self.rbuf.clear();
            self.rbuf.reserve(READ_SIZE);
            match self.io.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> MsgStream<S> {
    /// Writes what is queued. If cancelled, what was not written yet stays
    /// queued.
    ///
    /// # Errors
    /// Writing failed.
    pub async fn flush(&mut self) -> Result<(), MsgError> {
        self.io.write_all_buf(&mut self.wbuf).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Writes one message (after anything queued).
    ///
    /// # Errors
    /// Writing failed.
    pub async fn write_msg(&mut self, msg: &SessionMsg) -> Result<(), MsgError> {
        self.queue(msg);
        self.flush().await
    }

    /// Writes what is queued, then half-closes the stream.
    ///
    /// # Errors
    /// Writing failed.
    pub async fn shutdown(&mut self) -> Result<(), MsgError> {
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite> MsgStream<S> {
    /// A reading and a writing half (each keeps its buffer), for sessions
    /// that read and write at the same time.
    pub fn split(self) -> (MsgStream<ReadHalf<S>>, MsgStream<WriteHalf<S>>) {
        let (r, w) = tokio::io::split(self.io);
        (
            MsgStream {
                io: r,
                rbuf: self.rbuf,
                wbuf: BytesMut::new(),
            },
            MsgStream {
                io: w,
                rbuf: BytesMut::new(),
                wbuf: self.wbuf,
            },
        )
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MsgStream<S> {
    /// The exchange every session starts with: sends `Open(request)` and
    /// reads the answer. Bytes read past the answer stay buffered.
    ///
    /// # Errors
    /// See [`OpenError`].
    pub async fn open(&mut self, request: SessionRequest) -> Result<Answer, OpenError> {
        self.open_with(SessionMsg::Open(request)).await
    }

    /// [`Self::open`] with another first message (`OpenTarget`, which the
    /// gateway sends a jump point).
    ///
    /// # Errors
    /// As [`Self::open`].
    pub async fn open_with(&mut self, first: SessionMsg) -> Result<Answer, OpenError> {
        match self.write_msg(&first).await {
            Ok(()) => {}
            Err(MsgError::Io(e)) => return Err(OpenError::Send(e)),
            Err(e) => return Err(OpenError::Send(std::io::Error::other(e))),
        }
        match self.read_msg().await {
            Ok(Some(SessionMsg::Accepted(a))) => Ok(Answer::Accepted(a)),
            Ok(Some(SessionMsg::Refused(r))) => Ok(Answer::Refused(r)),
            Ok(Some(other)) => Err(OpenError::Unexpected(other)),
            Ok(None) => Err(OpenError::Ended),
            Err(e) => Err(OpenError::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use jumpgate_proto::session::RefusalCode;

    use super::*;

    #[tokio::test]
    async fn messages_cross_a_stream_in_order() {
        let (a, b) = tokio::io::duplex(64);
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
            let mut a = MsgStream::new(a);
            // Queued messages go out in order with the next write.
            a.queue(&sent[0]);
            a.queue(&sent[1]);
            a.write_msg(&sent[2]).await.unwrap();
            a.shutdown().await.unwrap();
        });
        let mut b = MsgStream::new(b);
        let mut got = Vec::new();
        while let Some(m) = b.read_msg().await.unwrap() {
            got.push(m);
        }
        writer.await.unwrap();
        assert_eq!(got, msgs);
    }

    #[tokio::test]
    async fn a_cancelled_read_keeps_what_it_read() {
        let (mut a, b) = tokio::io::duplex(1 << 16);
        let mut b = MsgStream::new(b);
        let whole = SessionMsg::Stdout(Bytes::from(vec![1u8; 10_000])).to_bytes();
        a.write_all(&whole[..6_000]).await.unwrap();
        // Cancelled once the first part was read (a condition, not a pause):
        // the read cannot finish, the first bytes sit in the buffer.
        let mut polls = 0;
        while b.buffered().len() < 6_000 {
            polls += 1;
            assert!(polls < 1000, "the read never took the bytes");
            let cancelled = tokio::time::timeout(Duration::from_millis(1), b.read_msg()).await;
            assert!(cancelled.is_err(), "a half message must not be returned");
        }
        a.write_all(&whole[6_000..]).await.unwrap();
        assert_eq!(
            b.read_msg().await.unwrap(),
            Some(SessionMsg::Stdout(Bytes::from(vec![1u8; 10_000])))
        );
    }

    #[tokio::test]
    async fn truncated_and_garbage_streams_are_errors() {
        let (mut a, b) = tokio::io::duplex(64);
        let whole = SessionMsg::Stdout(Bytes::from_static(b"hello")).to_bytes();
        a.write_all(&whole[..whole.len() - 1]).await.unwrap();
        drop(a);
        let mut b = MsgStream::new(b);
        assert!(matches!(b.read_msg().await, Err(MsgError::Truncated)));

        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[200, 0, 0, 0, 0]).await.unwrap();
        let mut b = MsgStream::new(b);
        assert!(matches!(b.read_msg().await, Err(MsgError::Malformed(_))));
    }

    #[tokio::test]
    async fn open_answers_and_keeps_the_bytes_after_the_answer() {
        let req = SessionRequest::Download { path: "/x".into() };

        // Accepted, followed at once by raw bytes (a forward's target
        // speaking first).
        let (a, mut b) = tokio::io::duplex(1024);
        let mut reply = BytesMut::new();
        SessionMsg::Accepted(Accepted::default()).encode(&mut reply);
        reply.extend_from_slice(b"raw bytes");
        b.write_all(&reply).await.unwrap();
        let mut a = MsgStream::new(a);
        assert_eq!(
            a.open(req.clone()).await.unwrap(),
            Answer::Accepted(Accepted::default())
        );
        let (_, rest) = a.into_parts();
        assert_eq!(&rest[..], b"raw bytes");
        let mut peer = MsgStream::new(b);
        assert_eq!(
            peer.read_msg().await.unwrap(),
            Some(SessionMsg::Open(req.clone()))
        );

        let (a, b) = tokio::io::duplex(1024);
        let refusal = Refusal {
            code: RefusalCode::NotFound,
            message: "no such file".into(),
        };
        // The peer stays until the answer is read.
        let mut peer = MsgStream::new(b);
        peer.write_msg(&SessionMsg::Refused(refusal.clone()))
            .await
            .unwrap();
        let got = MsgStream::new(a).open(req.clone()).await.unwrap();
        drop(peer);
        assert_eq!(got, Answer::Refused(refusal));

        let (a, b) = tokio::io::duplex(1024);
        let closed = SessionMsg::Closed {
            reason: "shutdown".into(),
        };
        let mut peer = MsgStream::new(b);
        peer.write_msg(&closed).await.unwrap();
        let err = MsgStream::new(a).open(req.clone()).await.unwrap_err();
        assert!(matches!(err, OpenError::Unexpected(m) if m == closed));
        drop(peer);

        let (a, b) = tokio::io::duplex(1024);
        drop(b);
        let err = MsgStream::new(a).open(req).await.unwrap_err();
        assert!(
            matches!(err, OpenError::Send(_) | OpenError::Ended),
            "{err}"
        );
    }

    #[tokio::test]
    async fn split_halves_keep_their_buffers() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut pre = BytesMut::new();
        SessionMsg::StdinEof.encode(&mut pre);
        let mut s = MsgStream::with_buffer(a, pre);
        s.queue(&SessionMsg::Resize { cols: 1, rows: 2 });
        let (mut rx, mut tx) = s.split();
        assert_eq!(rx.read_msg().await.unwrap(), Some(SessionMsg::StdinEof));
        tx.shutdown().await.unwrap();
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(
            out,
            SessionMsg::Resize { cols: 1, rows: 2 }.to_bytes().to_vec()
        );
    }
}
