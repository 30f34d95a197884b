//! What the agent does with what the gateway sends it outside the
//! handshake: control messages on stream 0, and each stream the gateway
//! opens, routed by its purpose — told by the stream's first byte
//! ([`StreamPurpose::of_first_byte`]) — to a technician session
//! ([`crate::sessions`]) or a system stream ([`crate::system`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use jumpgate_net::mux::MuxStream;
use jumpgate_proto::control::Control;
use jumpgate_proto::system::StreamPurpose;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::Instrument;

use crate::sessions::{self, SessionContext};
use crate::system::{self, SystemOptions};

/// Routes one connection's control messages and streams.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    sessions: SessionContext,
    /// `None`: the customer client of attended support, which serves no
    /// system topics (they are for enrolled endpoints).
    system: Option<SystemOptions>,
    /// System streams served at once on this connection: each may hold a
    /// body of up to 16 MiB, so they wait for a slot.
    system_slots: Arc<tokio::sync::Semaphore>,
}

impl Dispatcher {
    pub(crate) fn new(sessions: SessionContext, system: SystemOptions) -> Self {
        Self {
            sessions,
            system: Some(system),
            system_slots: Arc::new(tokio::sync::Semaphore::new(system::CONCURRENT)),
        }
    }

    /// The customer client's dispatcher: sessions only (gated by
    /// `sessions.assist`), no system topics.
    pub(crate) fn for_assist(sessions: SessionContext) -> Self {
        Self {
            sessions,
            system: None,
            system_slots: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    /// A control message after the handshake: the gateway's
    /// acknowledgement of EPM events; others call for no action.
    pub(crate) fn control(&self, msg: Control) {
        match (msg, self.system.as_ref().and_then(|s| s.epm.as_ref())) {
            (Control::EpmAck { through }, Some(epm)) => epm.ack(through),
            (msg, _) => tracing::debug!(?msg, "ignoring control message"),
        }
    }

    /// Serves a stream the gateway opened, in a task of its own.
    pub(crate) fn stream(&self, stream: MuxStream) {
        let sessions = self.sessions.clone();
        let system = self.system.clone();
        let slots = Arc::clone(&self.system_slots);
        tokio::spawn(route(stream, sessions, system, slots).in_current_span());
    }
}

async fn route(
    mut stream: MuxStream,
    sessions: SessionContext,
    system: Option<SystemOptions>,
    slots: Arc<tokio::sync::Semaphore>,
) {
    let first = match tokio::time::timeout(
        sessions.open_timeout,
        stream.read_chunk(jumpgate_proto::system::CHUNK),
    )
    .await
    {
        Ok(Ok(Some(first))) if !first.is_empty() => first,
        Ok(Ok(_)) => {
            tracing::info!("stream closed before its first message");
            return;
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "stream failed before its first message");
            return;
        }
        Err(_) => {
            tracing::info!(timeout = ?sessions.open_timeout, "no first message on a new stream");
            return;
        }
    };
    match StreamPurpose::of_first_byte(first[0]) {
        StreamPurpose::Session => {
            match sessions::serve(Prefixed::new(first, stream), sessions).await {
                Ok(summary) => tracing::info!(?summary, "session ended"),
                Err(e) => tracing::info!(error = %e, "session failed"),
            }
        }
        StreamPurpose::System => {
            let Some(system) = system else {
                tracing::info!("system stream refused: this is a support client");
                stream.reset(jumpgate_proto::mux::reset_code::REFUSED);
                return;
            };
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            if let Err(e) = system::serve(stream, first, &system).await {
                tracing::info!(error = %e, "system request failed");
            }
        }
    }
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    head: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(head: Bytes, inner: S) -> Self {
        Self { head, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.remaining());
            buf.put_slice(&self.head[..n]);
            self.head.advance(n);
            if self.head.is_empty() {
                // Free the first read's buffer: a session may last hours.
                self.head = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_prefixed_stream_reads_its_head_then_the_rest_and_writes_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut p = Prefixed::new(Bytes::from_static(b"head-"), a);
        b.write_all(b"tail").await.unwrap();
        b.shutdown().await.unwrap();
        let mut got = Vec::new();
        p.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"head-tail");
        p.write_all(b"back").await.unwrap();
        p.shutdown().await.unwrap();
        let mut back = Vec::new();
        b.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"back");
    }
}
