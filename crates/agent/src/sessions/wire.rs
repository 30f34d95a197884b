//! Session messages over the two halves of a stream.

use std::time::Duration;

use bytes::BytesMut;
use jumpgate_proto::session::{self, SessionMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::SessionError;

/// Read granularity of the stream. Large enough that a 32 KiB data message
/// usually arrives in one read.
const READ_SIZE: usize = 64 * 1024;

/// Decodes session messages from the technician.
pub(super) struct MsgReader<R> {
    inner: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> MsgReader<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// Waits until a whole message is buffered; `Ok(false)` at a clean end
    /// of stream. Cancel-safe: bytes only ever move into the buffer.
    pub(super) async fn fill(&mut self) -> Result<bool, SessionError> {
        loop {
            if session::message_len(&self.buf)?.is_some() {
                return Ok(true);
            }
            self.buf.reserve(READ_SIZE);
            let n = self
                .inner
                .read_buf(&mut self.buf)
                .await
                .map_err(SessionError::Stream)?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(false)
                } else {
                    Err(SessionError::Truncated("in the middle of a message"))
                };
            }
        }
    }

    /// Decodes the buffered message, if whole.
    pub(super) fn decode(&mut self) -> Result<Option<SessionMsg>, jumpgate_proto::ProtoError> {
        SessionMsg::decode(&mut self.buf)
    }

    /// The next message; `Ok(None)` at a clean end of stream. Cancel-safe.
    pub(super) async fn next(&mut self) -> Result<Option<SessionMsg>, SessionError> {
        if !self.fill().await? {
            return Ok(None);
        }
        Ok(self.decode()?)
    }

    /// The read half and whatever was read past the last message (raw bytes
    /// a technician pipelined after `Open`, for a forward).
    pub(super) fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }

    /// Discards input until the technician's end of the stream, an error, or
    /// `limit`.
    async fn drain(&mut self, limit: Duration) {
        let discard = async {
            loop {
                self.buf.clear();
                self.buf.reserve(READ_SIZE);
                match self.inner.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        let _ = tokio::time::timeout(limit, discard).await;
    }
}

/// Encodes session messages to the technician.
pub(super) struct MsgWriter<W> {
    inner: W,
    buf: BytesMut,
}

impl<W: AsyncWrite + Unpin> MsgWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// Adds a message to the next [`Self::flush`], so that bursts of small
    /// outputs go out in one write.
    pub(super) fn queue(&mut self, msg: &SessionMsg) {
        msg.encode(&mut self.buf);
    }

    /// Bytes queued and not yet written.
    pub(super) fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Writes what is queued. If cancelled, what was not written yet stays
    /// queued.
    pub(super) async fn flush(&mut self) -> Result<(), SessionError> {
        self.inner
            .write_all_buf(&mut self.buf)
            .await
            .map_err(SessionError::Stream)?;
        self.inner.flush().await.map_err(SessionError::Stream)
    }

    pub(super) async fn send(&mut self, msg: &SessionMsg) -> Result<(), SessionError> {
        self.queue(msg);
        self.flush().await
    }

    pub(super) fn into_inner(self) -> W {
        self.inner
    }
}

/// Ends the agent's side of the stream, then waits for the technician's so
/// that dropping the stream does not reset it.
pub(super) async fn finish<R, W>(rx: &mut MsgReader<R>, tx: &mut MsgWriter<W>, linger: Duration)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if tx.inner.shutdown().await.is_ok() {
        rx.drain(linger).await;
    }
}
