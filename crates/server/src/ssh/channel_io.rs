//! An SSH session channel as the technician's side of a session: the
//! session's messages are read from and written to the channel itself, in
//! the session's own task. No in-memory pipe and no pump task stand
//! between them (they cost a copy of every byte and a task hop each way).
//!
//! | channel → session                     | session → channel                               |
//! |---------------------------------------|-------------------------------------------------|
//! | data → `Stdin`                        | `Stdout` → data                                 |
//! | EOF → `StdinEof`                      | `Stderr` → extended data (stderr)               |
//! | `window-change` → `Resize`            | `Exit` → `exit-status`                          |
//! | `signal` → `Signal`                   | `Closed` → why, on stderr                       |
//! | close, connection lost → a read error | `Refused` → why, on stderr, and `exit-status 1` |
//! |                                       | shutdown → EOF and close                        |
//!
//! EOF is SSH's half-close: the command runs on, its output still read.
//! A channel closed before the session ended, or a connection lost, is a
//! technician gone: the read error ends the session and stops its command,
//! as `jg` killed mid-session does (its TLS stream ends without a goodbye).
//!
//! Writes are taken whole and sent by `poll_flush` (and before the next
//! write): a flushed write has reached the SSH connection, within the
//! channel's window, as with russh's own writer. Dropped without a
//! shutdown (a relay that failed), it still sends EOF and close.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use jumpgate_proto::session::{self, SessionMsg, SignalKind};
use russh::server::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::channel::size;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One session channel, read and written as a session's message stream.
pub(super) struct ChannelIo {
    /// The channel's incoming side, while no read is under way.
    rd: Option<ChannelReadHalf>,
    /// The read under way (it owns the incoming side meanwhile).
    reading: Option<Boxed<(ChannelReadHalf, Option<ChannelMsg>)>>,
    /// Messages read from the channel, encoded, not yet handed out (of a
    /// `Stdin`, its header only: its payload is in `payload`).
    inbound: BytesMut,
    /// The payload of the `Stdin` whose header ends `inbound`, handed out
    /// from the channel's own buffer (no copy of it here).
    payload: Bytes,
    /// The client closed the channel, or its connection went: why. Not
    /// a half-close (that is SSH's EOF, read as `StdinEof`): the technician
    /// is gone, and reads fail with this from now on, so the session ends
    /// (its command stopped) instead of running on with nobody there.
    gone: Option<&'static str>,
    wr: Arc<ChannelWriteHalf<Msg>>,
    /// What the gateway wrote, not yet sent (may end inside a message).
    outbound: BytesMut,
    /// The send under way.
    sending: Option<Boxed<Result<(), russh::Error>>>,
    /// The channel's end (EOF, close) is under way or sent.
    ending: bool,
    /// The channel's end was sent.
    closed: bool,
    /// A send failed: the channel is gone.
    broken: bool,
}

/// What one session message becomes on the channel.
enum Out {
    Stdout(Bytes),
    Stderr(Bytes),
    Exit(u32),
    /// Why the session was refused (stderr), then exit status 1.
    Refused(Bytes),
    /// EOF, then close.
    End,
}

impl ChannelIo {
    pub(super) fn new(rd: ChannelReadHalf, wr: ChannelWriteHalf<Msg>) -> Self {
        Self {
            rd: Some(rd),
            reading: None,
            inbound: BytesMut::new(),
            payload: Bytes::new(),
            gone: None,
            wr: Arc::new(wr),
            outbound: BytesMut::new(),
            sending: None,
            ending: false,
            closed: false,
            broken: false,
        }
    }

    /// Hands out what was read and not yet handed out, as far as `buf`
    /// has room. `false`: nothing was left.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.inbound.is_empty() && self.payload.is_empty() {
            return false;
        }
        let n = self.inbound.len().min(buf.remaining());
        buf.put_slice(&self.inbound[..n]);
        self.inbound.advance(n);
        if self.inbound.is_empty() {
            let n = self.payload.len().min(buf.remaining());
            buf.put_slice(&self.payload[..n]);
            self.payload.advance(n);
        }
        true
    }

    /// Takes in one message from the client.
    fn take_in(&mut self, msg: ChannelMsg) {
        match msg {
            // The header here, the payload handed out from where it is.
            ChannelMsg::Data { data } => {
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                self.inbound.extend_from_slice(&session::stdin_header(len));
                self.payload = data;
            }
            m => {
                if let Some(m) = from_channel(m) {
                    m.encode(&mut self.inbound);
                }
            }
        }
    }

    /// Sends what was written, message by message, until every whole one
    /// is with the connection.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(f) = self.sending.as_mut() {
                let sent = ready!(f.as_mut().poll(cx));
                self.sending = None;
                if sent.is_err() {
                    self.broken = true;
                }
            }
            if self.broken {
                return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
            }
            let msg = SessionMsg::decode(&mut self.outbound)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let Some(msg) = msg else {
                return Poll::Ready(Ok(()));
            };
            if let Some(what) = to_channel(msg) {
                self.sending = Some(Box::pin(send(Arc::clone(&self.wr), what)));
            }
        }
    }
}

/// What `msg` becomes on the channel (`None`: nothing; e.g. `Accepted`).
fn to_channel(msg: SessionMsg) -> Option<Out> {
    match msg {
        SessionMsg::Stdout(b) if !b.is_empty() => Some(Out::Stdout(b)),
        SessionMsg::Stderr(b) if !b.is_empty() => Some(Out::Stderr(b)),
        SessionMsg::Exit(status) => {
            Some(Out::Exit(u32::try_from(status.shell_code()).unwrap_or(255)))
        }
        SessionMsg::Closed { reason } => Some(Out::Stderr(Bytes::from(format!(
            "\r\njumpgate: {reason}\r\n"
        )))),
        SessionMsg::Refused(r) => Some(Out::Refused(refusal(&r.message))),
        _ => None,
    }
}

/// Why a session's technician side failed: the client closed the channel
/// before the session ended (the client quit, `~.`).
const CHANNEL_CLOSED: &str = "the SSH client closed the channel";
/// Why a session's technician side failed: the SSH connection ended
/// (a client killed, a network gone, a removed key's cut).
const CONNECTION_ENDED: &str = "the SSH connection ended";

/// Why nothing runs, as the client's stderr shows it.
pub(super) fn refusal(message: &str) -> Bytes {
    Bytes::from(format!("jumpgate: {message}\r\n"))
}

async fn send(wr: Arc<ChannelWriteHalf<Msg>>, what: Out) -> Result<(), russh::Error> {
    match what {
        Out::Stdout(b) => wr.data_bytes(b).await,
        Out::Stderr(b) => wr.extended_data_bytes(1, b).await,
        Out::Exit(code) => wr.exit_status(code).await,
        Out::Refused(why) => {
            wr.extended_data_bytes(1, why).await?;
            wr.exit_status(1).await
        }
        Out::End => {
            wr.eof().await?;
            wr.close().await
        }
    }
}

/// What the client's channel message other than data is for the session
/// (`None`: nothing it needs, e.g. a late `env`).
fn from_channel(msg: ChannelMsg) -> Option<SessionMsg> {
    Some(match msg {
        ChannelMsg::Eof => SessionMsg::StdinEof,
        ChannelMsg::WindowChange {
            col_width,
            row_height,
            ..
        } => SessionMsg::Resize {
            cols: size(col_width, 80),
            rows: size(row_height, 24),
        },
        ChannelMsg::Signal { signal } => SessionMsg::Signal(match signal {
            Sig::INT => SignalKind::Interrupt,
            Sig::TERM | Sig::HUP => SignalKind::Terminate,
            Sig::KILL => SignalKind::Kill,
            _ => return None,
        }),
        _ => return None,
    })
}

impl AsyncRead for ChannelIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.hand_out(buf) {
                return Poll::Ready(Ok(()));
            }
            if let Some(why) = this.gone {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)));
            }
            let reading = match this.reading.as_mut() {
                Some(r) => r,
                None => {
                    let Some(mut rd) = this.rd.take() else {
                        // Unreachable: a read not under way left it here.
                        this.gone = Some(CONNECTION_ENDED);
                        continue;
                    };
                    this.reading.insert(Box::pin(async move {
                        let msg = rd.wait().await;
                        (rd, msg)
                    }))
                }
            };
            let (rd, msg) = ready!(reading.as_mut().poll(cx));
            this.reading = None;
            this.rd = Some(rd);
            match msg {
                Some(ChannelMsg::Close) => this.gone = Some(CHANNEL_CLOSED),
                None => this.gone = Some(CONNECTION_ENDED),
                Some(m) => this.take_in(m),
            }
        }
    }
}

impl AsyncWrite for ChannelIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if this.ending {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        this.outbound.extend_from_slice(buf);
        // Start sending now; the next write or a flush finishes it.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if !this.ending {
            this.ending = true;
            this.sending = Some(Box::pin(send(Arc::clone(&this.wr), Out::End)));
        }
        ready!(this.poll_send(cx))?;
        this.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// How long a send under way when the session lets go of its channel may
/// still take (a client that stopped reading never opens its window).
const LAST_SEND: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for ChannelIo {
    /// A session that lets go of its channel without shutting it down (its
    /// relay failed, or a client that stopped reading was given up on)
    /// still ends it: the send under way (bounded), then EOF and close, so
    /// the client is not left waiting on an open channel.
    fn drop(&mut self) {
        if self.closed || self.broken {
            return;
        }
        let under_way = self.sending.take();
        let end = (!self.ending).then(|| Arc::clone(&self.wr));
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            if let Some(f) = under_way {
                let _ = tokio::time::timeout(LAST_SEND, f).await;
            }
            if let Some(wr) = end {
                let _ = send(wr, Out::End).await;
            }
        });
    }
}
