//! Runs a [`jumpgate_proto::mux::Mux`] over a byte stream (TLS in production,
//! an in-memory duplex in tests).
//!
//! One [`Driver`] future reads the socket and writes what is left to write;
//! [`MuxStream`]s and the [`MuxHandle`] share the protocol state with it
//! behind a mutex. The lock is never held across an `.await`.
//!
//! Writes take a short cut: a task that queues output while none was pending
//! writes it to the socket itself when the socket is free (`try_lock`),
//! instead of waking the driver task to do it. On a loaded machine every
//! such hand-off costs a wake-up, often on another thread, per chunk and per
//! window grant. When the socket is busy (the driver is reading) or cannot
//! take everything, the driver is woken and finishes the job as before.
//!
//! Cancel safety: dropping a [`MuxStream`] resets the stream unless both sides
//! finished it; dropping the [`Driver`] closes the connection and fails every
//! stream with `ConnectionReset`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use jumpgate_proto::ProtoError;
use jumpgate_proto::StreamId;
use jumpgate_proto::control::{Control, go_away_code};
use jumpgate_proto::mux::{Event, Mux, MuxConfig, ReadOutcome, Role, StreamError, TRIM_INTERVAL};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// Connection-level settings of a driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    pub mux: MuxConfig,
    /// Send a ping this often (the agent side does; the gateway only listens).
    pub ping_interval: Option<Duration>,
    /// Close the connection when nothing arrived for this long.
    pub idle_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            mux: MuxConfig::default(),
            ping_interval: None,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// Something the peer did at connection level.
#[derive(Debug)]
pub enum MuxEvent {
    /// The peer opened a stream.
    Stream(MuxStream),
    /// A control message arrived.
    Control(Control),
    /// The peer is closing the connection.
    GoAway { code: u32, reason: String },
}

/// What travels from the driver to [`MuxEvents`]. Incoming streams travel as
/// ids: a `MuxStream` is only built on the receiving side, so one is never
/// dropped (which locks the state) while the driver holds the lock.
#[derive(Debug)]
enum RawEvent {
    Stream(StreamId),
    Control(Control),
    GoAway { code: u32, reason: String },
}

/// Events waiting for [`MuxEvents`]. A queue inside the shared state rather
/// than a channel: an idle connection then holds no event buffer at all
/// (a tokio channel preallocates a block of slots per connection, several
/// KB with thousands of idle agents).
#[derive(Default)]
struct EventQueue {
    queue: std::collections::VecDeque<RawEvent>,
    waker: Option<Waker>,
    /// The receiver was dropped: nobody will take events any more.
    receiver_gone: bool,
    /// The driver stopped: no more events will come.
    ended: bool,
}

impl EventQueue {
    /// Queues an event; `false` when nobody will receive it.
    fn push(&mut self, ev: RawEvent) -> bool {
        if self.receiver_gone || self.ended {
            return false;
        }
        self.queue.push_back(ev);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        true
    }

    fn end(&mut self) {
        self.ended = true;
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// Connection-level events from the peer, in order.
pub struct MuxEvents {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MuxEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxEvents").finish_non_exhaustive()
    }
}

impl MuxEvents {
    /// The next event; `None` once the connection has ended.
    pub async fn recv(&mut self) -> Option<MuxEvent> {
        let raw = std::future::poll_fn(|cx| {
            let mut st = self.shared.lock();
            let q = &mut st.events;
            if let Some(ev) = q.queue.pop_front() {
                if q.queue.is_empty() {
                    q.queue = std::collections::VecDeque::new();
                }
                return Poll::Ready(Some(ev));
            }
            if q.ended {
                return Poll::Ready(None);
            }
            q.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        Some(match raw? {
            RawEvent::Stream(id) => MuxEvent::Stream(MuxStream {
                id,
                shared: Arc::clone(&self.shared),
            }),
            RawEvent::Control(c) => MuxEvent::Control(c),
            RawEvent::GoAway { code, reason } => MuxEvent::GoAway { code, reason },
        })
    }
}

impl Drop for MuxEvents {
    fn drop(&mut self) {
        // Streams nobody will accept: refuse them (dropping a stream locks
        // the state, so collect them first).
        let pending: Vec<RawEvent> = {
            let mut st = self.shared.lock();
            st.events.receiver_gone = true;
            st.events.queue.drain(..).collect()
        };
        for ev in pending {
            if let RawEvent::Stream(id) = ev {
                drop(MuxStream {
                    id,
                    shared: Arc::clone(&self.shared),
                });
            }
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtoError),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("no traffic for {0:?}")]
    IdleTimeout(Duration),
    #[error("connection closed by peer")]
    PeerClosed,
}

struct State {
    mux: Mux,
    read_wakers: HashMap<StreamId, Waker>,
    write_wakers: HashMap<StreamId, Waker>,
    driver_waker: Option<Waker>,
    events: EventQueue,
    /// Set once the driver has stopped; streams fail with this.
    closed: Option<String>,
    /// Close once output is flushed.
    closing: bool,
    /// Liveness probes ([`MuxHandle::probe`]) waiting for their pong.
    probes: Vec<(u32, tokio::sync::oneshot::Sender<()>)>,
    probe_seq: u32,
}

/// Set in the opaque value of a [`MuxHandle::probe`] ping, clear in the
/// driver's heartbeats, so a heartbeat's pong never answers a probe.
const PROBE_BIT: u32 = 1 << 31;

impl State {
    fn wake_driver(&mut self) {
        if let Some(w) = &self.driver_waker {
            w.wake_by_ref();
        }
    }

    fn wake_all(&mut self) {
        for (_, w) in self.read_wakers.drain() {
            w.wake();
        }
        for (_, w) in self.write_wakers.drain() {
            w.wake();
        }
    }
}

/// The socket's write side as the streams see it (the driver keeps the typed
/// handle). `None` once the driver has stopped.
trait DirectWrite: Send {
    fn poll_write_io(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<T: AsyncWrite + Unpin + Send> DirectWrite for Option<T> {
    fn poll_write_io(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush_io(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

struct Shared {
    state: Mutex<State>,
    closed: Notify,
    /// The socket, shared with the driver for direct writes. Lock order:
    /// `io` before `state`; streams only ever `try_lock` it.
    io: Arc<Mutex<dyn DirectWrite>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent protocol state
        // (every mutation is a single call into `Mux`), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state; if `f` queued the first output (when output
    /// was already pending, the driver is waiting on the socket and will be
    /// woken by it), writes it to the socket from this task when the socket
    /// is free, else wakes the driver.
    fn with_output<R>(
        &self,
        cx: Option<&mut Context<'_>>,
        f: impl FnOnce(&mut State, Option<&Waker>) -> R,
    ) -> R {
        let mut st = self.lock();
        let had_output = !st.mux.pending_output().is_empty();
        let r = f(&mut st, cx.as_ref().map(|c| c.waker()));
        if had_output || st.mux.pending_output().is_empty() {
            return r;
        }
        let Some(cx) = cx else {
            st.wake_driver();
            return r;
        };
        drop(st);
        let Ok(mut io) = self.io.try_lock() else {
            // The driver is using the socket; it looks at the output next.
            self.lock().wake_driver();
            return r;
        };
        let mut st = self.lock();
        if st.closed.is_some() {
            return r;
        }
        let mut failed = false;
        while !st.mux.pending_output().is_empty() {
            match io.poll_write_io(cx, st.mux.pending_output()) {
                Poll::Ready(Ok(n)) if n > 0 => st.mux.consume_output(n),
                // Pending, or an error the driver will meet and report.
                _ => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed && !matches!(io.poll_flush_io(cx), Poll::Ready(Ok(()))) {
            failed = true;
        }
        if failed {
            // The socket registered this task's waker; the driver takes
            // over (and registers its own).
            st.wake_driver();
        }
        r
    }
}

/// Starts multiplexing over `io`. `initial` holds bytes already read from
/// `io` past the handshake. Spawn the returned [`Driver`]; it completes when
/// the connection ends.
///
/// # Errors
/// `initial` holds a protocol violation.
pub fn start<T>(
    io: T,
    role: Role,
    initial: &[u8],
    config: DriverConfig,
) -> Result<(MuxHandle, MuxEvents, Driver<T>), ProtoError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = Arc::new(Mutex::new(Some(io)));
    let direct: Arc<Mutex<dyn DirectWrite>> = io.clone();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            mux: Mux::new(role, config.mux.clone()),
            read_wakers: HashMap::new(),
            write_wakers: HashMap::new(),
            driver_waker: None,
            events: EventQueue::default(),
            closed: None,
            closing: false,
            probes: Vec::new(),
            probe_seq: 0,
        }),
        closed: Notify::new(),
        io: direct,
    });
    let now = Instant::now();
    let driver = Driver {
        io,
        shared: Arc::clone(&shared),
        timer: Box::pin(tokio::time::sleep_until(now + config.idle_timeout)),
        last_rx: now,
        next_ping: config.ping_interval.map(|i| now + i),
        next_trim: now + TRIM_INTERVAL,
        config,
        ping_seq: 0,
        shutdown_started: false,
        finished: false,
    };
    if !initial.is_empty() {
        let mut st = shared.lock();
        st.mux.handle_input(initial)?;
        dispatch(&mut st);
    }
    let events = MuxEvents {
        shared: Arc::clone(&shared),
    };
    Ok((MuxHandle { shared }, events, driver))
}

/// The future that performs a connection's I/O. See [`start`].
pub struct Driver<T> {
    io: Arc<Mutex<Option<T>>>,
    shared: Arc<Shared>,
    config: DriverConfig,
    timer: Pin<Box<Sleep>>,
    last_rx: Instant,
    next_ping: Option<Instant>,
    /// When idle streams next give back their buffers ([`Mux::trim_idle`]).
    next_trim: Instant,
    ping_seq: u32,
    shutdown_started: bool,
    finished: bool,
}

impl<T> std::fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// Turns protocol events into wake-ups and channel messages.
fn dispatch(st: &mut State) {
    while let Some(ev) = st.mux.poll_event() {
        match ev {
            Event::Readable(id) => {
                if let Some(w) = st.read_wakers.remove(&id) {
                    w.wake();
                }
            }
            Event::Writable(id) => {
                if let Some(w) = st.write_wakers.remove(&id) {
                    w.wake();
                }
            }
            Event::Incoming(id) => {
                if !st.events.push(RawEvent::Stream(id)) {
                    st.mux.reset(id, jumpgate_proto::mux::reset_code::REFUSED);
                }
            }
            Event::Control(payload) => match Control::from_bytes(&payload) {
                Ok(msg) => {
                    st.events.push(RawEvent::Control(msg));
                }
                Err(e) => tracing::debug!(error = %e, "ignoring unparseable control message"),
            },
            Event::Pong(v) => {
                if let Some(i) = st.probes.iter().position(|(o, _)| *o == v) {
                    let (_, tx) = st.probes.swap_remove(i);
                    let _ = tx.send(());
                }
            }
            Event::GoAway { code, reason } => {
                st.events.push(RawEvent::GoAway { code, reason });
            }
        }
    }
}

/// Reads per poll before yielding, so one busy connection cannot starve
/// others on the same worker thread.
const READS_PER_POLL: usize = 16;
const READ_CHUNK: usize = 32 * 1024;

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    fn finish(
        &mut self,
        io: &mut Option<T>,
        result: Result<(), DriverError>,
    ) -> Poll<Result<(), DriverError>> {
        self.finished = true;
        // Close the socket now, not when the last stream lets go of it.
        *io = None;
        let mut st = self.shared.lock();
        st.closed = Some(match &result {
            Ok(()) => "connection closed".to_owned(),
            Err(e) => e.to_string(),
        });
        st.events.end();
        st.probes.clear();
        st.wake_all();
        drop(st);
        self.shared.closed.notify_waiters();
        Poll::Ready(result)
    }

    fn poll_reads(&mut self, io: &mut T, cx: &mut Context<'_>) -> Poll<Result<(), DriverError>> {
        for _ in 0..READS_PER_POLL {
            // Not zeroed: filling 32 KiB with zeros before every read (two
            // reads per wake-up at least, the second finding nothing) cost
            // more than a small message's whole trip through the driver.
            let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut rb = ReadBuf::uninit(&mut chunk);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let data = rb.filled();
                    if data.is_empty() {
                        return Poll::Ready(Err(DriverError::PeerClosed));
                    }
                    self.last_rx = Instant::now();
                    let shared = Arc::clone(&self.shared);
                    let mut st = shared.lock();
                    if let Err(e) = st.mux.handle_input(data) {
                        st.mux.go_away(go_away_code::PROTOCOL_ERROR, &e.to_string());
                        return Poll::Ready(Err(e.into()));
                    }
                    dispatch(&mut st);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Budget used up with data still flowing: come back soon.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Writes queued output; `Ready` once everything is flushed.
    fn poll_writes(&mut self, io: &mut T, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = Arc::clone(&self.shared);
        loop {
            let mut st = shared.lock();
            let out = st.mux.pending_output();
            if out.is_empty() {
                break;
            }
            match Pin::new(&mut *io).poll_write(cx, out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    st.mux.consume_output(n);
                    // Space in the output buffer: blocked writers may retry.
                    for (_, w) in st.write_wakers.drain() {
                        w.wake();
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Push out what the TLS layer buffered, then wait.
                    drop(st);
                    return match Pin::new(&mut *io).poll_flush(cx) {
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        _ => Poll::Pending,
                    };
                }
            }
        }
        Pin::new(&mut *io).poll_flush(cx)
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Result<(), DriverError> {
        loop {
            let deadline = self.last_rx + self.config.idle_timeout;
            let now = Instant::now();
            if now >= deadline {
                return Err(DriverError::IdleTimeout(self.config.idle_timeout));
            }
            if let (Some(next), Some(interval)) = (self.next_ping, self.config.ping_interval)
                && now >= next
            {
                self.ping_seq = self.ping_seq.wrapping_add(1) & !PROBE_BIT;
                self.shared.lock().mux.ping(self.ping_seq);
                self.next_ping = Some(now + interval);
            }
            // Idle streams give back their buffers. Checked when the driver
            // runs anyway (traffic, a heartbeat): it never wakes for this.
            if now >= self.next_trim {
                self.shared.lock().mux.trim_idle();
                self.next_trim = now + TRIM_INTERVAL;
            }
            let wake_at = self.next_ping.map_or(deadline, |p| p.min(deadline));
            if self.timer.deadline() != wake_at {
                self.timer.as_mut().reset(wake_at);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Future for Driver<T> {
    type Output = Result<(), DriverError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(Ok(()));
        }
        {
            let mut st = this.shared.lock();
            if !st
                .driver_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                st.driver_waker = Some(cx.waker().clone());
            }
        }
        let io_arc = Arc::clone(&this.io);
        let mut guard = io_arc.lock().unwrap_or_else(|e| e.into_inner());
        let Some(io) = guard.as_mut() else {
            return this.finish(&mut guard, Ok(()));
        };
        let read_result = this.poll_reads(io, cx);
        if let Err(e) = this.poll_timer(cx) {
            let shared = Arc::clone(&this.shared);
            shared
                .lock()
                .mux
                .go_away(go_away_code::TIMEOUT, "idle timeout");
            let _ = this.poll_writes(io, cx);
            return this.finish(&mut guard, Err(e));
        }
        let write_result = this.poll_writes(io, cx);
        if let Poll::Ready(Err(e)) = read_result {
            // Best effort: the go-away explaining a protocol error was
            // attempted by poll_writes above.
            return this.finish(&mut guard, Err(e));
        }
        let flushed = match write_result {
            Poll::Ready(Ok(())) => true,
            Poll::Ready(Err(e)) => return this.finish(&mut guard, Err(e.into())),
            Poll::Pending => false,
        };
        let closing = this.shared.lock().closing;
        if closing && flushed {
            this.shutdown_started = true;
            return match Pin::new(io).poll_shutdown(cx) {
                Poll::Ready(_) => this.finish(&mut guard, Ok(())),
                Poll::Pending => Poll::Pending,
            };
        }
        Poll::Pending
    }
}

impl<T> Drop for Driver<T> {
    fn drop(&mut self) {
        if !self.finished {
            // Close the socket now, not when the last stream lets go of it.
            drop(self.io.lock().unwrap_or_else(|e| e.into_inner()).take());
            let mut st = self.shared.lock();
            st.closed = Some("connection dropped".to_owned());
            st.events.end();
            st.probes.clear();
            st.wake_all();
            drop(st);
            self.shared.closed.notify_waiters();
        }
    }
}

/// A cloneable handle to a multiplexed connection.
#[derive(Clone)]
pub struct MuxHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MuxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxHandle").finish_non_exhaustive()
    }
}

impl MuxHandle {
    /// Opens a stream to the peer.
    ///
    /// # Errors
    /// The connection is closed or going away, or the stream limit is reached.
    pub fn open(&self) -> io::Result<MuxStream> {
        self.shared.with_output(None, |st, _| {
            if let Some(reason) = &st.closed {
                return Err(io::Error::new(io::ErrorKind::NotConnected, reason.clone()));
            }
            let id = st.mux.open().map_err(stream_error)?;
            Ok(MuxStream {
                id,
                shared: Arc::clone(&self.shared),
            })
        })
    }

    /// Sends a control message.
    pub fn send_control(&self, msg: &Control) {
        self.shared.with_output(None, |st, _| {
            if let Err(e) = st.mux.send_control(&msg.to_bytes()) {
                tracing::warn!(error = %e, "control message not sent");
            }
        });
    }

    /// Announces the end of the connection, then closes it once queued output
    /// is flushed. Streams still open are cut.
    pub fn close(&self, code: u32, reason: &str) {
        self.shared.with_output(None, |st, _| {
            st.mux.go_away(code, reason);
            st.closing = true;
            st.wake_driver();
        });
    }

    /// Pings the peer and waits for its pong, at most `deadline`: `true`
    /// when the peer answered in time, i.e. the connection is alive and the
    /// peer is reading it. `false` at once if the connection is closed or
    /// closing.
    pub async fn probe(&self, deadline: Duration) -> bool {
        let waiting = self.shared.with_output(None, |st, _| {
            if st.closed.is_some() || st.closing {
                return None;
            }
            st.probe_seq = st.probe_seq.wrapping_add(1);
            let opaque = PROBE_BIT | st.probe_seq;
            let (tx, rx) = tokio::sync::oneshot::channel();
            st.probes.push((opaque, tx));
            st.mux.ping(opaque);
            Some((opaque, rx))
        });
        let Some((opaque, rx)) = waiting else {
            return false;
        };
        let answered = matches!(tokio::time::timeout(deadline, rx).await, Ok(Ok(())));
        if !answered {
            self.shared.lock().probes.retain(|(o, _)| *o != opaque);
        }
        answered
    }

    /// Whether the driver has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// Waits until the driver has stopped.
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Streams currently open.
    pub fn stream_count(&self) -> usize {
        self.shared.lock().mux.stream_count()
    }
}

fn stream_error(e: StreamError) -> io::Error {
    let kind = match e {
        StreamError::Reset(_) => io::ErrorKind::ConnectionReset,
        StreamError::Closed | StreamError::Finished => io::ErrorKind::BrokenPipe,
        StreamError::TooManyStreams | StreamError::GoingAway => io::ErrorKind::ConnectionRefused,
    };
    io::Error::new(kind, e)
}

/// One multiplexed stream: ordered, flow-controlled, full-duplex bytes.
pub struct MuxStream {
    id: StreamId,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MuxStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxStream").field("id", &self.id).finish()
    }
}

impl MuxStream {
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// Aborts the stream in both directions with a reset code.
    pub fn reset(&self, code: u32) {
        self.shared
            .with_output(None, |st, _| st.mux.reset(self.id, code));
    }

    /// Reads the next chunk without copying into a caller's buffer.
    pub async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        let mut buf = vec![0u8; max];
        let n = tokio::io::AsyncReadExt::read(self, &mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(Bytes::from(buf)))
    }
}

impl AsyncRead for MuxStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let id = self.id;
        let shared = Arc::clone(&self.shared);
        shared.with_output(Some(cx), |st, waker| {
            match st.mux.read(id, buf.initialize_unfilled()) {
                Ok(ReadOutcome::Data(n)) => {
                    buf.advance(n);
                    Poll::Ready(Ok(()))
                }
                Ok(ReadOutcome::Fin) => Poll::Ready(Ok(())),
                Ok(ReadOutcome::WouldBlock) => {
                    if let Some(reason) = &st.closed {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::ConnectionReset,
                            reason.clone(),
                        )));
                    }
                    if let Some(w) = waker {
                        st.read_wakers.insert(id, w.clone());
                    }
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(stream_error(e))),
            }
        })
    }
}

impl AsyncWrite for MuxStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let id = self.id;
        let shared = Arc::clone(&self.shared);
        shared.with_output(Some(cx), |st, waker| {
            if let Some(reason) = &st.closed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    reason.clone(),
                )));
            }
            match st.mux.write(id, data) {
                Ok(0) => {
                    if let Some(w) = waker {
                        st.write_wakers.insert(id, w.clone());
                    }
                    Poll::Pending
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) => Poll::Ready(Err(stream_error(e))),
            }
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data handed to the mux is queued for the driver; there is nothing
        // further to flush at this layer.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let id = self.id;
        let shared = Arc::clone(&self.shared);
        shared.with_output(Some(cx), |st, _| {
            if st.closed.is_some() {
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(st.mux.finish(id).map_err(stream_error))
        })
    }
}

impl Drop for MuxStream {
    fn drop(&mut self) {
        let id = self.id;
        self.shared.with_output(None, |st, _| {
            st.read_wakers.remove(&id);
            st.write_wakers.remove(&id);
            st.mux.release(id);
        });
    }
}

#[cfg(test)]
mod tests;
