//! Moves bytes between a technician's connection and an agent stream.
//!
//! Framed sessions (everything but `forward`) are relayed agent→technician
//! message by message, so the gateway can always end the technician's side
//! at a message boundary with a `Closed{reason}` message. Where a side may
//! not send everything (a view-only desktop sends no input; a desktop
//! without clipboard rights sends no clipboard text either way), what is
//! not allowed is dropped here: technician→agent before the endpoint (which
//! drops it as well), agent→technician before the technician (an endpoint
//! should not send it; the gateway does not rely on that). Dropped messages
//! are not shown to the taps, so they are neither recorded nor audited as
//! transfers.
//!
//! A desktop session with control also follows the agent's `ControlState`s
//! ([`DesktopGate`]): while the person at the endpoint holds control (took
//! it back, or the session ended) the technician's input and clipboard are
//! dropped here as well, and pass again once control is given back. An
//! `Ended` state noted as a failure at the endpoint (its display went away)
//! makes the session's end an endpoint-side error.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use jumpgate_proto::desktop::{ControlNote, InputState};
use jumpgate_proto::session::{self, Direction, Scanned, Scanner, SessionMsg};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::outcome::Side;
use super::tap::SessionTap;
use super::watch::Injector;

const BUF: usize = 64 * 1024;
/// How long a stopped session's last message may take to reach a
/// technician who is not reading.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Byte counters of one session, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
    /// Technician messages the session does not allow, dropped.
    pub(crate) dropped: AtomicU64,
    /// Endpoint messages the session does not allow, dropped.
    pub(crate) dropped_down: AtomicU64,
    /// Injected messages (participants' input) not allowed now, dropped.
    pub(crate) dropped_injected: AtomicU64,
}

/// How a session's bytes are relayed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Framing {
    /// Raw bytes both ways (`forward`).
    Raw,
    /// Session messages, everything the technician sends relayed.
    Messages,
    /// A desktop session: session messages; no input when view-only, no
    /// clipboard text either way without `clipboard`, and with `control`
    /// no input or clipboard while the person at the endpoint holds
    /// control ([`DesktopGate`]).
    Desktop { control: bool, clipboard: bool },
}

/// What the gateway follows of a desktop session, from the agent's
/// `ControlState`s.
#[derive(Debug)]
struct DesktopGate {
    /// The session was opened with control / with clipboard rights.
    control: bool,
    clipboard: bool,
    /// The technician's input and clipboard reach the endpoint: the session
    /// has control and the last state was `Allowed`.
    open: AtomicBool,
    /// The endpoint ended the session because something failed there (its
    /// words, cleaned).
    failure: Mutex<Option<String>>,
}

impl DesktopGate {
    fn new(control: bool, clipboard: bool) -> Self {
        Self {
            control,
            clipboard,
            open: AtomicBool::new(control),
            failure: Mutex::new(None),
        }
    }

    /// Follows one `ControlState` message (whole, as framed) from the
    /// endpoint, before it is relayed.
    fn follow(&self, msg: &[u8]) {
        let mut one = BytesMut::from(msg);
        let Ok(Some(SessionMsg::ControlState(c))) = SessionMsg::decode(&mut one) else {
            tracing::warn!("a malformed control state from the endpoint");
            return;
        };
        let open = self.control && c.input == InputState::Allowed;
        if self.open.swap(open, Ordering::SeqCst) != open {
            tracing::info!(
                input = ?c.input,
                "desktop control changed: technician input {}",
                if open { "passes" } else { "dropped at the gateway" }
            );
        }
        if c.input == InputState::Ended && c.note == Some(ControlNote::Failed) {
            let message =
                crate::agents::reported::text(&c.message, crate::agents::reported::MESSAGE_MAX);
            let message = if message.is_empty() {
                "the session failed at the endpoint".to_owned()
            } else {
                message
            };
            *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
        }
    }

    /// Whether a technician message of this type is dropped now.
    fn drops_up(&self, message_type: u8) -> bool {
        (session::is_input(message_type) && !self.open.load(Ordering::SeqCst))
            || (!self.clipboard && session::is_clipboard(message_type))
    }

    /// Whether an endpoint message of this type is dropped.
    fn drops_down(&self, message_type: u8) -> bool {
        !self.clipboard && session::is_clipboard(message_type)
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How a session whose endpoint side ended cleanly ended: completed, unless
/// it is a desktop the endpoint ended because something failed there (its
/// display went away), which failed on the endpoint's side.
fn ended_cleanly(gate: Option<&DesktopGate>) -> RelayEnd {
    match gate.and_then(DesktopGate::failure) {
        Some(why) => RelayEnd::Failed(Side::Endpoint, why),
        None => RelayEnd::Completed,
    }
}

/// One direction's view for the taps: a scanner over its bytes (which also
/// checks the technician's framing), and the taps to tell.
struct Watch<'a> {
    direction: Direction,
    scanner: Scanner,
    taps: &'a [Box<dyn SessionTap>],
}

impl<'a> Watch<'a> {
    fn new(direction: Direction, taps: &'a [Box<dyn SessionTap>]) -> Self {
        Self {
            direction,
            scanner: match direction {
                // Keystrokes are collected only for a tap that wants them.
                Direction::Up if !taps.iter().any(|t| t.wants_stdin()) => {
                    Scanner::new(direction).without_stdin()
                }
                _ => Scanner::new(direction),
            },
            taps,
        }
    }

    /// Tells the taps, in stream order, what `bytes` carry.
    async fn see(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut seen = Vec::new();
        self.scanner
            .feed(bytes, &mut |s| seen.push(s))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        for s in seen {
            match s {
                Scanned::FileBytes(b) => {
                    for t in self.taps {
                        t.on_file_data(self.direction, b);
                    }
                }
                Scanned::Msg(m) => {
                    for t in self.taps {
                        match self.direction {
                            Direction::Up => t.on_up(&m).await,
                            Direction::Down => t.on_down(&m).await,
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// Both sides finished.
    Completed,
    /// The gateway stopped it (shutdown, termination).
    Stopped,
    /// One side failed.
    Failed(Side, String),
}

/// Copies until EOF, then half-closes the writer.
async fn copy_raw<R, W>(
    mut r: R,
    mut w: W,
    prefix: &[u8],
    counter: &AtomicU64,
    mut watch: Option<Watch<'_>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !prefix.is_empty() {
        if let Some(w) = &mut watch {
            w.see(prefix).await?;
        }
        w.write_all(prefix).await?;
        counter.fetch_add(prefix.len() as u64, Ordering::Relaxed);
    }
    let mut buf = vec![0u8; BUF];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if let Some(w) = &mut watch {
            w.see(&buf[..n]).await?;
        }
        w.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
    w.shutdown().await
}

/// Technician → agent, message by message, leaving out the messages whose
/// type `drop` names; then half-closes the writer. What `inject` yields
/// (watchers' refreshes, participants' input) is merged in between whole
/// messages, under the same `drop` rule; the taps do not see it (nothing
/// of it is recorded: it is not the technician's).
async fn copy_up_dropping<R, W>(
    mut r: R,
    mut w: W,
    prefix: &[u8],
    counters: &Counters,
    mut watch: Watch<'_>,
    drop: &(dyn Fn(u8) -> bool + Sync),
    mut inject: Option<&mut Injector>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut buf = BytesMut::from(prefix);
    loop {
        let mut whole = 0;
        while let Some(len) = session::message_len(&buf[whole..]).map_err(invalid)? {
            whole += len;
        }
        if whole > 0 {
            let msgs = leave_out(buf.split_to(whole), drop, &counters.dropped, || {
                tracing::info!(
                    "technician input dropped: the session does not allow it, or the user at the endpoint holds control"
                );
            })
            .map_err(invalid)?;
            if !msgs.is_empty() {
                watch.see(&msgs).await?;
                w.write_all(&msgs).await?;
                counters.up.fetch_add(msgs.len() as u64, Ordering::Relaxed);
            }
        }
        buf.reserve(BUF);
        // Only whole messages were written: `w` is at a message boundary,
        // where an injected message may go.
        let n = tokio::select! {
            n = r.read_buf(&mut buf) => n?,
            m = injected(inject.as_deref_mut()) => {
                let m = m.to_bytes();
                if drop(m[0]) {
                    counters.dropped_injected.fetch_add(1, Ordering::Relaxed);
                } else {
                    w.write_all(&m).await?;
                    counters.up.fetch_add(m.len() as u64, Ordering::Relaxed);
                }
                continue;
            }
        };
        if n == 0 {
            if !buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "technician ended the stream inside a message",
                ));
            }
            return w.shutdown().await;
        }
    }
}

/// The next message `inject` yields; never without one.
async fn injected(inject: Option<&mut Injector>) -> SessionMsg {
    match inject {
        Some(i) => i.next().await,
        None => std::future::pending().await,
    }
}

/// The whole messages in `msgs` without those whose type `drop` names
/// (counted in `dropped`; `first_drop` is told of the session's first).
fn leave_out(
    mut msgs: BytesMut,
    drop: &dyn Fn(u8) -> bool,
    dropped: &AtomicU64,
    first_drop: impl Fn(),
) -> Result<BytesMut, jumpgate_proto::ProtoError> {
    let mut kept = BytesMut::with_capacity(msgs.len());
    while let Some(len) = session::message_len(&msgs)? {
        let msg = msgs.split_to(len);
        if drop(msg[0]) {
            if dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                first_drop();
            }
        } else {
            kept.extend_from_slice(&msg);
        }
    }
    Ok(kept)
}

enum DownEnd {
    Eof,
    Stopped,
}

/// Longest an endpoint's exit status is held back waiting for its end of
/// stream (an agent half-closes right after it).
const HOLD_EXIT: Duration = Duration::from_secs(1);

/// Where the first `Exit` message of `msgs` (whole messages) starts.
fn exit_at(msgs: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Ok(Some(len)) = session::message_len(&msgs[at..]) {
        if session::is_exit(msgs[at]) {
            return Some(at);
        }
        at += len;
    }
    None
}

/// Agent → technician for framed sessions: forwards whole messages only, and
/// checks `stop` only between them. `buf` holds bytes already read. The
/// endpoint's exit status (and anything after it) is kept in `held`, not
/// written, while the endpoint's end of stream follows it (at most
/// [`HOLD_EXIT`]): the caller tells it once the session's end is recorded.
#[allow(clippy::too_many_arguments)]
async fn copy_framed<R, W>(
    mut r: R,
    w: &mut W,
    mut buf: BytesMut,
    held: &mut BytesMut,
    counters: &Counters,
    stop: &CancellationToken,
    mut watch: Option<Watch<'_>>,
    gate: Option<&DesktopGate>,
) -> std::io::Result<DownEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut hold_until = tokio::time::Instant::now();
    loop {
        // Forward every whole message buffered so far (in one write).
        let mut whole = 0;
        let mut dropping = false;
        while let Some(len) = session::message_len(&buf[whole..]).map_err(invalid)? {
            dropping |= gate.is_some_and(|g| g.drops_down(buf[whole]));
            // Who has control changes before the technician hears of it.
            if let Some(gate) = gate
                && session::is_control_state(buf[whole])
            {
                gate.follow(&buf[whole..whole + len]);
            }
            whole += len;
        }
        if whole > 0 {
            let mut msgs = buf.split_to(whole);
            if let (true, Some(gate)) = (dropping, gate) {
                msgs = leave_out(msgs, &|t| gate.drops_down(t), &counters.dropped_down, || {
                    tracing::warn!(
                        "endpoint message dropped: the session does not allow it (the agent should not send it)"
                    );
                })
                .map_err(invalid)?;
            }
            if let Some(w) = &mut watch {
                w.see(&msgs).await?;
            }
            let len = msgs.len() as u64;
            // More after a held exit status: it was not the last word.
            if !held.is_empty() {
                w.write_all(held).await?;
                held.clear();
            }
            if let Some(at) = exit_at(&msgs) {
                *held = msgs.split_off(at);
                hold_until = tokio::time::Instant::now() + HOLD_EXIT;
            }
            if !msgs.is_empty() {
                w.write_all(&msgs).await?;
            }
            // A technician side may send only once flushed (an SSH
            // channel's does).
            w.flush().await?;
            counters.down.fetch_add(len, Ordering::Relaxed);
        }
        buf.reserve(BUF);
        let n = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(DownEnd::Stopped),
            // (A timer only while something is held.)
            () = async { tokio::time::sleep_until(hold_until).await }, if !held.is_empty() => {
                w.write_all(held).await?;
                w.flush().await?;
                held.clear();
                continue;
            }
            n = r.read_buf(&mut buf) => n?,
        };
        if n == 0 {
            if !buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "agent ended the stream inside a message",
                ));
            }
            return Ok(DownEnd::Eof);
        }
    }
}

/// What a framed technician side is told last — the endpoint's exit
/// status, or the gateway's `Closed` — and the end of its stream, held
/// back by [`relay_with`] so that its caller can record the
/// session's end first: when a technician learns that a session ended, its
/// end is durable, and the gateway's closing writes are not still queued
/// ahead of the technician's next session.
pub(crate) struct LastWord<W> {
    w: W,
    bytes: BytesMut,
}

impl<W: AsyncWrite + Unpin> LastWord<W> {
    /// Writes it and ends the technician's stream (a technician who does
    /// not read gets [`STOP_GRACE`]).
    pub(crate) async fn tell(mut self) {
        let _ = tokio::time::timeout(STOP_GRACE, async {
            self.w.write_all(&self.bytes).await?;
            self.w.shutdown().await
        })
        .await;
    }
}

/// Bytes each side sent right behind its opening message, read while
/// waiting for the open exchange: they are relayed first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Technician → endpoint.
    pub(crate) up: BytesMut,
    /// Endpoint → technician (may end inside a message).
    pub(crate) down: BytesMut,
}

/// Relays until both directions finish, one fails, or `stop` fires.
/// `reason()` is what a framed technician side is told when stopped. The
/// `taps` see every framed message that passes; the `counters` count bytes.
/// The technician is told the end as it happens (the sessions use
/// [`relay_with`], which leaves that to its caller).
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay<C, A>(
    client: C,
    agent: A,
    pending: Pending,
    framing: Framing,
    stop: &CancellationToken,
    reason: impl Fn() -> String,
    counters: &Counters,
    taps: &[Box<dyn SessionTap>],
) -> RelayEnd
where
    C: AsyncRead + AsyncWrite + Unpin,
    A: AsyncRead + AsyncWrite + Unpin,
{
    let inject = None;
    let (end, last) = relay_with(
        client, agent, pending, framing, stop, reason, counters, taps, inject,
    )
    .await;
    if let Some(last) = last {
        last.tell().await;
    }
    end
}

/// [`relay`], with a desktop session's [`Injector`] merged into the
/// technician → endpoint direction (watchers' refreshes, participants'
/// input; see `watch.rs`). What a framed technician side is told last (the
/// endpoint's exit status, the gateway's `Closed{reason}`) and the end of
/// its stream are handed back, for the caller to tell once the session's
/// end is recorded. `None`: nothing is left to tell (a raw relay, a
/// technician who is gone or stopped reading, or a framed session whose
/// endpoint ended without an exit status: its end was passed on, and the
/// technician given a moment to finish its side).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn relay_with<C, A>(
    client: C,
    agent: A,
    pending: Pending,
    framing: Framing,
    stop: &CancellationToken,
    reason: impl Fn() -> String,
    counters: &Counters,
    taps: &[Box<dyn SessionTap>],
    mut inject: Option<Injector>,
) -> (RelayEnd, Option<LastWord<tokio::io::WriteHalf<C>>>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    A: AsyncRead + AsyncWrite + Unpin,
{
    let (cr, mut cw) = tokio::io::split(client);
    let (ar, aw) = tokio::io::split(agent);
    let watch = |direction| Watch::new(direction, taps);
    let gate = match framing {
        Framing::Desktop { control, clipboard } => Some(DesktopGate::new(control, clipboard)),
        _ => None,
    };
    let gate = gate.as_ref();
    let up = async {
        match framing {
            Framing::Raw => copy_raw(cr, aw, &pending.up, &counters.up, None).await,
            Framing::Messages => {
                let w = Some(watch(Direction::Up));
                copy_raw(cr, aw, &pending.up, &counters.up, w).await
            }
            Framing::Desktop { .. } => {
                let w = watch(Direction::Up);
                let drop = |t: u8| gate.is_some_and(|g| g.drops_up(t));
                let inject = inject.as_mut();
                copy_up_dropping(cr, aw, &pending.up, counters, w, &drop, inject).await
            }
        }
    };
    tokio::pin!(up);
    let mut up_done = false;

    if matches!(framing, Framing::Raw) {
        let down = copy_raw(ar, cw, &pending.down, &counters.down, None);
        tokio::pin!(down);
        let mut down_done = false;
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r {
                    Ok(()) => up_done = true,
                    Err(e) => return (RelayEnd::Failed(Side::Technician, e.to_string()), None),
                },
                r = &mut down, if !down_done => match r {
                    Ok(()) => down_done = true,
                    Err(e) => return (RelayEnd::Failed(Side::Endpoint, e.to_string()), None),
                },
                () = stop.cancelled() => return (RelayEnd::Stopped, None),
            }
            if up_done && down_done {
                return (RelayEnd::Completed, None);
            }
        }
    }

    let mut held = BytesMut::new();
    let end = {
        let down = copy_framed(
            ar,
            &mut cw,
            pending.down,
            &mut held,
            counters,
            stop,
            Some(watch(Direction::Down)),
            gate,
        );
        tokio::pin!(down);
        loop {
            tokio::select! {
                r = &mut up, if !up_done => match r {
                    Ok(()) => up_done = true,
                    // The technician is gone: nobody to tell anything. It
                    // may leave as soon as it has the exit status, before
                    // the endpoint's end of stream reaches the gateway: a
                    // session whose endpoint then ends cleanly completed.
                    Err(e) => {
                        let end = match tokio::time::timeout(STOP_GRACE, &mut down).await {
                            Ok(Ok(DownEnd::Eof)) => ended_cleanly(gate),
                            _ => RelayEnd::Failed(Side::Technician, e.to_string()),
                        };
                        return (end, None);
                    }
                },
                r = &mut down => break r,
                // `down` checks `stop` between messages; a technician who
                // stops reading keeps it inside a write. Give that write a
                // moment, then end the session without a goodbye.
                () = stop.cancelled() => {
                    match tokio::time::timeout(STOP_GRACE, &mut down).await {
                        Ok(r) => break r,
                        Err(_) => return (RelayEnd::Stopped, None),
                    }
                }
            }
        }
    };
    match end {
        Ok(DownEnd::Eof) if held.is_empty() => {
            // Every message was written; a technician who already left
            // (it may, once it has what it waited for) cannot take the close.
            if let Err(e) = cw.shutdown().await {
                tracing::debug!(error = %e, "technician side already closed");
            }
            // The endpoint finished. Give the technician a moment to finish
            // its side, then end anyway.
            if !up_done {
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut up).await;
            }
            (ended_cleanly(gate), None)
        }
        // The endpoint finished with an exit status (e.g. the shell
        // exited), which the technician waits for: it is told once the
        // session's end is recorded.
        Ok(DownEnd::Eof) => (ended_cleanly(gate), Some(LastWord { w: cw, bytes: held })),
        Ok(DownEnd::Stopped) => {
            SessionMsg::Closed { reason: reason() }.encode(&mut held);
            (RelayEnd::Stopped, Some(LastWord { w: cw, bytes: held }))
        }
        Err(e) => {
            SessionMsg::Closed {
                reason: format!("connection to the endpoint failed: {e}"),
            }
            .encode(&mut held);
            let end = RelayEnd::Failed(Side::Endpoint, e.to_string());
            (end, Some(LastWord { w: cw, bytes: held }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jumpgate_proto::session::{ExitStatus, FileEnd, FileResult};

    #[tokio::test]
    async fn framed_relay_stops_at_a_message_boundary_with_a_reason() {
        let (client, mut tech) = tokio::io::duplex(1 << 20);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 20);
        let stop = CancellationToken::new();
        let relay_stop = stop.clone();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            relay(
                client,
                agent,
                Pending::default(),
                Framing::Messages,
                &relay_stop,
                || "gateway shutting down".into(),
                &counters,
                &[],
            )
            .await
        });
        // One whole message and half of another.
        let whole = SessionMsg::Stdout("hello".into()).to_bytes();
        let next = SessionMsg::Stdout("world".into()).to_bytes();
        endpoint.write_all(&whole).await.unwrap();
        endpoint.write_all(&next[..3]).await.unwrap();
        let mut buf = BytesMut::new();
        while buf.len() < whole.len() {
            tech.read_buf(&mut buf).await.unwrap();
        }
        stop.cancel();
        assert!(matches!(task.await.unwrap(), RelayEnd::Stopped));
        let mut rest = Vec::new();
        tech.read_to_end(&mut rest).await.unwrap();
        buf.extend_from_slice(&rest);
        assert_eq!(
            SessionMsg::decode(&mut buf).unwrap(),
            Some(SessionMsg::Stdout("hello".into()))
        );
        assert_eq!(
            SessionMsg::decode(&mut buf).unwrap(),
            Some(SessionMsg::Closed {
                reason: "gateway shutting down".into()
            })
        );
        assert!(buf.is_empty(), "the half message must not be forwarded");
    }

    #[tokio::test]
    async fn raw_relay_counts_bytes_and_propagates_half_close() {
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            let end = relay(
                client,
                agent,
                Pending::default(),
                Framing::Raw,
                &stop,
                String::new,
                &counters,
                &[],
            )
            .await;
            (end, counters.up.into_inner(), counters.down.into_inner())
        });
        tech.write_all(&[1u8; 100_000]).await.unwrap();
        tech.shutdown().await.unwrap();
        let mut got = Vec::new();
        endpoint.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 100_000);
        endpoint.write_all(&[2u8; 777]).await.unwrap();
        endpoint.shutdown().await.unwrap();
        let mut back = Vec::new();
        tech.read_to_end(&mut back).await.unwrap();
        assert_eq!(back.len(), 777);
        let (end, up, down) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Completed));
        assert_eq!((up, down), (100_000, 777));
    }

    #[tokio::test]
    async fn a_view_only_desktop_relays_no_input_in_any_split() {
        use jumpgate_proto::desktop::{FrameAck, Key, Pointer};
        let input = [
            SessionMsg::Pointer(Pointer {
                x: 10,
                y: 20,
                buttons: 1,
            }),
            SessionMsg::Key(Key {
                keysym: 0x61,
                down: true,
            }),
            SessionMsg::Clipboard("secret".into()),
        ];
        let allowed = [
            SessionMsg::FrameAck(FrameAck { seq: 3 }),
            SessionMsg::Ping(9),
        ];
        let mut stream = BytesMut::new();
        for (i, a) in allowed.iter().enumerate() {
            input[i].encode(&mut stream);
            a.encode(&mut stream);
        }
        input[2].encode(&mut stream);
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            let framing = Framing::Desktop {
                control: false,
                clipboard: true,
            };
            let end = relay(
                client,
                agent,
                Pending::default(),
                framing,
                &stop,
                String::new,
                &counters,
                &[],
            )
            .await;
            (end, counters.dropped.into_inner())
        });
        // Three bytes at a time: messages arrive split anywhere.
        for chunk in stream.chunks(3) {
            tech.write_all(chunk).await.unwrap();
        }
        tech.shutdown().await.unwrap();
        let mut got = BytesMut::new();
        endpoint.read_buf(&mut got).await.unwrap();
        while endpoint.read_buf(&mut got).await.unwrap() > 0 {}
        let mut seen = Vec::new();
        while let Some(m) = SessionMsg::decode(&mut got).unwrap() {
            seen.push(m);
        }
        assert_eq!(seen, allowed);
        endpoint.shutdown().await.unwrap();
        let (end, dropped) = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
        assert_eq!(dropped, 3);
    }

    /// A desktop session without clipboard rights: clipboard text from the
    /// endpoint is dropped whatever the split, also when it came with the
    /// acceptance; the taps never see it (not recorded, not audited); the
    /// rest passes in order (the positive control).
    #[tokio::test]
    async fn a_desktop_without_clipboard_rights_relays_no_endpoint_clipboard_in_any_split() {
        use jumpgate_proto::desktop::{Cursor, Video};
        let allowed = [
            SessionMsg::Video(Video {
                seq: 1,
                data: bytes::Bytes::from_static(b"packet"),
            }),
            SessionMsg::Pong(4),
            SessionMsg::Cursor(Cursor {
                x: 1,
                y: 2,
                shape: 0,
            }),
        ];
        let clip = SessionMsg::Clipboard("endpoint secret".into());
        let mut pending = BytesMut::new();
        clip.encode(&mut pending);
        let mut stream = BytesMut::new();
        for a in &allowed {
            a.encode(&mut stream);
            clip.encode(&mut stream);
        }
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let notes = std::sync::Arc::new(Notes::default());
        let taps: Vec<Box<dyn SessionTap>> = vec![Box::new(std::sync::Arc::clone(&notes))];
        let counters = Counters::default();
        let stop = CancellationToken::new();
        let framing = Framing::Desktop {
            control: true,
            clipboard: false,
        };
        let relay_task = relay(
            client,
            agent,
            Pending {
                up: BytesMut::new(),
                // Half of a clipboard message came with the acceptance.
                down: pending.split_to(5),
            },
            framing,
            &stop,
            String::new,
            &counters,
            &taps,
        );
        let agent_side = async {
            endpoint.write_all(&pending).await.unwrap();
            for chunk in stream.chunks(3) {
                endpoint.write_all(chunk).await.unwrap();
            }
            endpoint.shutdown().await.unwrap();
            let mut rest = Vec::new();
            endpoint.read_to_end(&mut rest).await.unwrap();
        };
        let technician = async {
            tech.shutdown().await.unwrap();
            let mut got = BytesMut::new();
            while tech.read_buf(&mut got).await.unwrap() > 0 {}
            let mut seen = Vec::new();
            while let Some(m) = SessionMsg::decode(&mut got).unwrap() {
                seen.push(m);
            }
            seen
        };
        let (end, (), seen) = tokio::join!(relay_task, agent_side, technician);
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
        assert_eq!(seen, allowed);
        assert_eq!(counters.dropped_down.load(Ordering::Relaxed), 4);
        let down_bytes: usize = allowed.iter().map(|m| m.to_bytes().len()).sum();
        assert_eq!(counters.down.load(Ordering::Relaxed), down_bytes as u64);
        let noted = notes.0.lock().unwrap().clone();
        // (Pongs are nothing the taps look at; clipboard text would be.)
        assert_eq!(noted, ["down video", "down cursor"]);
    }

    /// Injected messages reach the endpoint between the technician's, never
    /// inside one: a message the technician has half sent is completed
    /// after the injected one. Input injected into a view-only desktop is
    /// dropped (counted); a refresh passes.
    #[tokio::test]
    async fn injected_messages_go_between_the_technicians_whole_messages() {
        use jumpgate_proto::desktop::{DesktopCommand, Pointer};
        for control in [true, false] {
            let (client, mut tech) = tokio::io::duplex(1 << 16);
            let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
            let (tx, rx) = tokio::sync::mpsc::channel(8);
            let counters = Counters::default();
            let stop = CancellationToken::new();
            let framing = Framing::Desktop {
                control,
                clipboard: true,
            };
            let inject = Some(Injector::new(rx));
            let relay_task = async {
                let (end, last) = relay_with(
                    client,
                    agent,
                    Pending::default(),
                    framing,
                    &stop,
                    String::new,
                    &counters,
                    &[],
                    inject,
                )
                .await;
                if let Some(last) = last {
                    last.tell().await;
                }
                end
            };
            // The technician's own, sent in two halves (allowed either way).
            let own = SessionMsg::DesktopCommand(DesktopCommand::Monitor { monitor: Some(0) });
            let pointer = SessionMsg::Pointer(Pointer {
                x: 7,
                y: 8,
                buttons: 1,
            });
            let refresh = SessionMsg::DesktopCommand(DesktopCommand::Refresh);
            let sides = async {
                let bytes = own.to_bytes();
                tech.write_all(&bytes[..9]).await.unwrap();
                // Injected while the technician's message is half sent:
                // it arrives whole, first.
                tx.send(pointer.clone()).await.unwrap();
                tx.send(refresh.clone()).await.unwrap();
                let mut got = BytesMut::new();
                let want =
                    refresh.to_bytes().len() + if control { pointer.to_bytes().len() } else { 0 };
                while got.len() < want {
                    assert!(endpoint.read_buf(&mut got).await.unwrap() > 0);
                }
                tech.write_all(&bytes[9..]).await.unwrap();
                tech.shutdown().await.unwrap();
                while endpoint.read_buf(&mut got).await.unwrap() > 0 {}
                endpoint.shutdown().await.unwrap();
                let mut seen = Vec::new();
                while let Some(m) = SessionMsg::decode(&mut got).unwrap() {
                    seen.push(m);
                }
                assert!(got.is_empty(), "whole messages only");
                let mut rest = Vec::new();
                tech.read_to_end(&mut rest).await.unwrap();
                seen
            };
            let (end, seen) = tokio::join!(relay_task, sides);
            assert!(matches!(end, RelayEnd::Completed), "{end:?}");
            let want = if control {
                vec![pointer.clone(), refresh.clone(), own.clone()]
            } else {
                vec![refresh.clone(), own.clone()]
            };
            assert_eq!(seen, want, "control={control}");
            let dropped = counters.dropped_injected.load(Ordering::Relaxed);
            assert_eq!(dropped, u64::from(!control), "control={control}");
        }
    }

    fn exit_bytes() -> bytes::Bytes {
        SessionMsg::Exit(ExitStatus {
            code: Some(3),
            signal: None,
        })
        .to_bytes()
    }

    #[tokio::test]
    async fn framed_relay_completes_a_message_begun_before_it_started() {
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            // The endpoint's first bytes arrived with its acceptance and
            // stop inside a message: the relay must complete it, not cut it.
            let pending = Pending {
                up: BytesMut::new(),
                down: BytesMut::from(&exit_bytes()[..4]),
            };
            relay(
                client,
                agent,
                pending,
                Framing::Messages,
                &stop,
                String::new,
                &counters,
                &[],
            )
            .await
        });
        let exit = exit_bytes();
        endpoint.write_all(&exit[4..]).await.unwrap();
        endpoint.shutdown().await.unwrap();
        let mut got = Vec::new();
        tech.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, exit.to_vec());
        tech.shutdown().await.unwrap();
        assert!(matches!(task.await.unwrap(), RelayEnd::Completed));
    }

    /// The endpoint's exit status reaches the technician only when the
    /// caller tells it (after recording the session's end); what came
    /// before it is relayed at once.
    #[tokio::test]
    async fn the_exit_status_waits_for_the_caller_to_tell_it() {
        use futures_util::FutureExt as _;
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let output = SessionMsg::Stdout("done".into()).to_bytes();
        endpoint.write_all(&output).await.unwrap();
        endpoint.write_all(&exit_bytes()).await.unwrap();
        endpoint.shutdown().await.unwrap();
        let stop = CancellationToken::new();
        let counters = Counters::default();
        let (end, last) = relay_with(
            client,
            agent,
            Pending::default(),
            Framing::Messages,
            &stop,
            String::new,
            &counters,
            &[],
            None,
        )
        .await;
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
        let mut got = vec![0; output.len()];
        tech.read_exact(&mut got).await.unwrap();
        assert_eq!(got, output.to_vec());
        // The relay has returned: whatever it wrote is readable now, and
        // it wrote neither the exit status nor the end of the stream.
        let mut more = [0u8; 1];
        assert!(tech.read(&mut more).now_or_never().is_none());
        last.expect("the exit status is held").tell().await;
        let mut rest = Vec::new();
        tech.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, exit_bytes().to_vec());
    }

    /// An endpoint that sends its exit status but never ends its stream:
    /// the status is not held back for good.
    #[tokio::test]
    async fn an_exit_status_without_an_end_of_stream_is_passed_on() {
        let (client, mut tech) = tokio::io::duplex(1 << 16);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let relay_stop = stop.clone();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            relay_with(
                client,
                agent,
                Pending::default(),
                Framing::Messages,
                &relay_stop,
                String::new,
                &counters,
                &[],
                None,
            )
            .await
            .0
        });
        endpoint.write_all(&exit_bytes()).await.unwrap();
        let exit = exit_bytes();
        let mut got = vec![0; exit.len()];
        tokio::time::timeout(Duration::from_secs(30), tech.read_exact(&mut got))
            .await
            .expect("the exit status was held for good")
            .unwrap();
        assert_eq!(got, exit.to_vec());
        stop.cancel();
        assert!(matches!(task.await.unwrap(), RelayEnd::Stopped));
    }

    /// A tap that writes down what it is shown (and may ask for the
    /// technician's keystrokes).
    #[derive(Default)]
    struct Notes(std::sync::Mutex<Vec<String>>, bool);

    impl Notes {
        fn note(&self, s: String) {
            self.0.lock().unwrap().push(s);
        }
    }

    impl SessionTap for std::sync::Arc<Notes> {
        fn on_up<'a>(&'a self, msg: &'a SessionMsg) -> super::super::tap::TapFuture<'a> {
            self.note(format!("up {}", msg.name()));
            Box::pin(async {})
        }
        fn on_down<'a>(&'a self, msg: &'a SessionMsg) -> super::super::tap::TapFuture<'a> {
            self.note(format!("down {}", msg.name()));
            Box::pin(async {})
        }
        fn on_file_data(&self, from: Direction, bytes: &[u8]) {
            self.note(format!("{from:?} data {}", bytes.len()));
        }
        fn wants_stdin(&self) -> bool {
            self.1
        }
        fn finish(self: Box<Self>) -> String {
            " noted".into()
        }
    }

    /// A framed relay with `taps`: the technician sends `up` and ends its
    /// side; the endpoint reads everything, answers `down(what it got)` and
    /// ends. How the relay ended, and what the endpoint got.
    async fn relay_through(
        taps: &[Box<dyn SessionTap>],
        up: BytesMut,
        down: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> (RelayEnd, Vec<u8>) {
        let (client, mut tech) = tokio::io::duplex(1 << 20);
        let (agent, mut endpoint) = tokio::io::duplex(1 << 20);
        let counters = Counters::default();
        let stop = CancellationToken::new();
        let relay_task = relay(
            client,
            agent,
            Pending::default(),
            Framing::Messages,
            &stop,
            String::new,
            &counters,
            taps,
        );
        let technician = async {
            tech.write_all(&up).await.unwrap();
            tech.shutdown().await.unwrap();
            let mut rest = Vec::new();
            tech.read_to_end(&mut rest).await.unwrap();
        };
        let agent_side = async {
            let mut got = Vec::new();
            endpoint.read_to_end(&mut got).await.unwrap();
            endpoint.write_all(&down(&got)).await.unwrap();
            endpoint.shutdown().await.unwrap();
            got
        };
        let (end, (), got) = tokio::join!(relay_task, technician, agent_side);
        (end, got)
    }

    /// What the taps are shown going up, with taps that want keystrokes
    /// or not (`wants`, one tap each).
    async fn shown_up(wants: &[bool]) -> Vec<Vec<String>> {
        let notes: Vec<_> = wants
            .iter()
            .map(|w| std::sync::Arc::new(Notes(std::sync::Mutex::default(), *w)))
            .collect();
        let taps: Vec<Box<dyn SessionTap>> = notes
            .iter()
            .map(|n| Box::new(std::sync::Arc::clone(n)) as Box<dyn SessionTap>)
            .collect();
        let mut up = BytesMut::new();
        SessionMsg::Stdin(vec![5u8; 50_000].into()).encode(&mut up);
        SessionMsg::Resize { cols: 90, rows: 20 }.encode(&mut up);
        SessionMsg::StdinEof.encode(&mut up);
        let (end, got) = relay_through(&taps, up, |_| Vec::new()).await;
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
        // Every byte reached the endpoint, whoever was shown what.
        assert_eq!(
            got.len(),
            50_000 + 4 + 3 * jumpgate_proto::session::HEADER_LEN
        );
        notes.iter().map(|n| n.0.lock().unwrap().clone()).collect()
    }

    #[tokio::test]
    async fn keystrokes_are_collected_only_when_a_tap_wants_them() {
        assert_eq!(shown_up(&[false]).await, [["up resize"]]);
        // The positive control: one tap wants them, so every tap is shown them.
        assert_eq!(
            shown_up(&[false, true]).await,
            [["up stdin", "up resize"], ["up stdin", "up resize"]]
        );
    }

    #[tokio::test]
    async fn taps_see_each_sides_messages_in_order_and_only_what_that_side_may_send() {
        let notes = std::sync::Arc::new(Notes::default());
        let taps: Vec<Box<dyn SessionTap>> = vec![
            Box::new(std::sync::Arc::clone(&notes)),
            Box::new(super::super::tap::TransferTap::new(Direction::Up)),
        ];
        let data = vec![9u8; 70_000];
        let mut up = BytesMut::new();
        SessionMsg::FileData(data[..40_000].to_vec().into()).encode(&mut up);
        SessionMsg::FileData(data[40_000..].to_vec().into()).encode(&mut up);
        SessionMsg::FileEnd(FileEnd {
            size: 70_000,
            sha256: "00".repeat(32),
        })
        .encode(&mut up);
        // What only the endpoint may say: not shown to the taps.
        SessionMsg::FileResult(FileResult {
            ok: false,
            sha256: String::new(),
            message: "forged".into(),
        })
        .encode(&mut up);
        let verdict = |_: &[u8]| {
            SessionMsg::FileResult(FileResult {
                ok: true,
                sha256: jumpgate_net::digest::sha256_hex(&[9u8; 70_000]),
                message: String::new(),
            })
            .to_bytes()
            .to_vec()
        };
        let (end, _) = relay_through(&taps, up, verdict).await;
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
        let seen = notes.0.lock().unwrap().clone();
        let data_bytes: usize = seen
            .iter()
            .filter_map(|n| n.strip_prefix("Up data "))
            .map(|n| n.parse::<usize>().unwrap())
            .sum();
        assert_eq!(data_bytes, 70_000);
        let msgs: Vec<_> = seen.iter().filter(|n| !n.contains(" data ")).collect();
        assert_eq!(msgs, ["up file-end", "down file-result"]);
        let mut taps = taps.into_iter();
        assert_eq!(taps.next().unwrap().finish(), " noted");
        // The gateway's own digest, confirmed by the endpoint (not the
        // technician's forged verdict).
        assert_eq!(
            taps.next().unwrap().finish(),
            format!(
                " size=70000 sha256={} sender_claimed_size=70000 sender_claimed_sha256={} mismatch verified=yes",
                jumpgate_net::digest::sha256_hex(&[9u8; 70_000]),
                "00".repeat(32)
            )
        );
    }

    #[tokio::test]
    async fn a_session_stops_even_when_the_technician_stopped_reading() {
        // A tiny pipe the technician never reads: the relay gets stuck
        // writing output to it.
        const PIPE: usize = 64 * 1024;
        let (client, _tech) = tokio::io::duplex(64);
        let (agent, mut endpoint) = tokio::io::duplex(PIPE);
        let counters = Counters::default();
        let stop = CancellationToken::new();
        let stopper = stop.clone();
        let task = tokio::spawn(async move {
            relay(
                client,
                agent,
                Pending::default(),
                Framing::Messages,
                &stop,
                String::new,
                &counters,
                &[],
            )
            .await
        });
        let flood = SessionMsg::Stdout(vec![b'y'; 32 * 1024].into()).to_bytes();
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let w2 = std::sync::Arc::clone(&written);
        let flooder = tokio::spawn(async move {
            for _ in 0..8 {
                endpoint.write_all(&flood).await.unwrap();
                w2.fetch_add(flood.len(), std::sync::atomic::Ordering::Relaxed);
            }
            endpoint
        });
        // More written than the pipe holds: the relay has taken output it
        // cannot hand to the technician, so it is stuck writing. (A
        // condition, not a guessed pause.)
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while written.load(std::sync::atomic::Ordering::Relaxed) <= PIPE {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the relay never read"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stopper.cancel();
        let end = tokio::time::timeout(STOP_GRACE * 3, task)
            .await
            .expect("the relay ignored the stop")
            .unwrap();
        assert!(matches!(end, RelayEnd::Stopped), "{end:?}");
        flooder.abort();
    }

    /// A technician connection that has already dropped: reads fail,
    /// writes vanish.
    struct Gone;

    impl AsyncRead for Gone {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::ErrorKind::UnexpectedEof.into()))
        }
    }

    impl AsyncWrite for Gone {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            b: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::task::Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
        }
    }

    #[tokio::test]
    async fn a_technician_leaving_before_the_endpoints_end_of_stream_completes_the_session() {
        let (agent, mut endpoint) = tokio::io::duplex(1 << 16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(async move {
            let counters = Counters::default();
            relay(
                Gone,
                agent,
                Pending::default(),
                Framing::Messages,
                &stop,
                String::new,
                &counters,
                &[],
            )
            .await
        });
        // The exit status goes out; the endpoint's end of stream follows
        // only after the technician has already dropped.
        endpoint.write_all(&exit_bytes()).await.unwrap();
        tokio::task::yield_now().await;
        endpoint.shutdown().await.unwrap();
        let end = task.await.unwrap();
        assert!(matches!(end, RelayEnd::Completed), "{end:?}");
    }
}
