//! The stream multiplexer state machine.
//!
//! One agent connection carries many independent, ordered, flow-controlled byte
//! streams. [`Mux`] holds all of the per-connection protocol state but performs
//! no I/O: the caller feeds it received bytes ([`Mux::handle_input`]), writes
//! out what it produces ([`Mux::pending_output`] / [`Mux::consume_output`]),
//! and reacts to the [`Event`]s it reports.
//!
//! # Flow control
//! Every stream has its own receive window ([`MuxConfig::initial_window`]
//! bytes). A sender may never have more unacknowledged bytes in flight on a
//! stream than the window the receiver granted; the receiver grants more
//! (`Window` frames) only as the application *reads*. Received data is queued
//! per stream, so a stream whose reader stops reading fills its own window and
//! stops — it never blocks the connection or the other streams. There is no
//! connection-level window: the bound on buffered memory is
//! `max_streams × initial_window + window_budget` per connection.
//!
//! ## Window auto-tuning
//! A fixed window caps a stream at `window / round trip`, and on a loaded
//! machine the "round trip" of a grant includes waiting to be scheduled. So a
//! receiver grows a stream's window (by granting more than was consumed)
//! when the stream is carrying bulk data and its reader keeps up: after the
//! application has read twice the current window since the last growth, with
//! less than a quarter of the window left queued, the window doubles, up to
//! [`MuxConfig::max_window`]. Growth comes out of a per-connection
//! [`MuxConfig::window_budget`] that is given back when the stream ends, so a
//! connection never promises more buffer than `max_streams × initial_window +
//! window_budget`, and an idle connection holds nothing for it (a window is
//! a number until data arrives). It needs no clock and no cooperation from
//! the sender: a sender simply uses the larger grants, so an older peer that
//! never grows its own windows still interoperates.
//!
//! The outgoing buffer is bounded too ([`MuxConfig::max_out_buffer`]): when
//! the socket is slower than the writers, [`Mux::write`] accepts nothing until
//! the caller drains output.
//!
//! A stream keeps its receive buffer while data flows, and gives it back
//! once it has been idle for a while ([`Mux::trim_idle`], which the
//! connection's driver calls about every [`TRIM_INTERVAL`]): a burst long
//! ago does not hold memory for the rest of a long session.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, Bytes, BytesMut};

use crate::ProtoError;
use crate::frame::{self, Frame, HEADER_LEN, MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD, StreamId};

/// Reset codes carried by `Reset` frames.
pub mod reset_code {
    /// The stream was abandoned by the application (handle dropped).
    pub const CANCEL: u32 = 0;
    /// The receiver refused to open the stream (limit reached, going away).
    pub const REFUSED: u32 = 1;
    /// An internal error ended the stream.
    pub const INTERNAL: u32 = 2;
    /// The gateway or an administrator terminated the session.
    pub const TERMINATED: u32 = 3;
}

/// Which end of the connection this is. It decides stream-id parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The gateway opens even-numbered streams.
    Gateway,
    /// The agent opens odd-numbered streams.
    Agent,
}

impl Role {
    fn first_stream_id(self) -> u32 {
        match self {
            Self::Gateway => 2,
            Self::Agent => 1,
        }
    }
}

/// Tunables of one multiplexed connection.
#[derive(Clone, Debug)]
pub struct MuxConfig {
    /// Receive window of every stream, in bytes. Part of protocol version 1:
    /// both ends must agree, so it is not negotiated.
    pub initial_window: u32,
    /// Largest receive window auto-tuning may grow a stream to (see the
    /// module documentation); `initial_window` or less disables growth.
    pub max_window: u32,
    /// Receive window beyond `initial_window`, summed over all streams of the
    /// connection, that auto-tuning may grant.
    pub window_budget: u32,
    /// Streams the peer may have open at once; more are refused.
    pub max_streams: usize,
    /// Bytes of encoded frames that may wait for the socket before
    /// [`Mux::write`] stops accepting data.
    pub max_out_buffer: usize,
}

/// How often a connection's driver should call [`Mux::trim_idle`]: a
/// stream idle this long (up to twice this) gives back its buffers.
pub const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The window size of protocol version 1.
pub const INITIAL_WINDOW: u32 = 256 * 1024;

/// Default upper bound of an auto-tuned stream window.
pub const MAX_WINDOW: u32 = 4 * 1024 * 1024;

/// Default per-connection budget of window growth: two streams at
/// [`MAX_WINDOW`] at once.
pub const WINDOW_BUDGET: u32 = 2 * (MAX_WINDOW - INITIAL_WINDOW);

impl Default for MuxConfig {
    fn default() -> Self {
        Self {
            initial_window: INITIAL_WINDOW,
            max_window: MAX_WINDOW,
            window_budget: WINDOW_BUDGET,
            max_streams: 1024,
            max_out_buffer: 256 * 1024,
        }
    }
}

/// What happened while handling input; the driver turns these into wake-ups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer opened a stream.
    Incoming(StreamId),
    /// Data, end-of-stream or a reset arrived on a stream that had nothing to read.
    Readable(StreamId),
    /// The stream's send window grew (or the stream was reset): a blocked writer may retry.
    Writable(StreamId),
    /// A control message (JSON) arrived on stream 0.
    Control(Bytes),
    /// The peer answered a ping.
    Pong(u32),
    /// The peer is closing the connection.
    GoAway { code: u32, reason: String },
}

/// Outcome of [`Mux::read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// This many bytes were copied into the buffer.
    Data(usize),
    /// The peer finished its side; no more data will come.
    Fin,
    /// Nothing to read yet.
    WouldBlock,
}

/// Why a stream operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// The peer reset the stream with this code.
    #[error("stream reset by peer (code {0})")]
    Reset(u32),
    /// The stream is unknown here: never opened, or already released.
    #[error("stream is closed")]
    Closed,
    /// Write after [`Mux::finish`].
    #[error("stream already finished")]
    Finished,
    /// No new streams: the stream limit is reached.
    #[error("too many open streams")]
    TooManyStreams,
    /// No new streams: this connection is going away.
    #[error("connection is going away")]
    GoingAway,
}

#[derive(Debug)]
struct Stream {
    /// Received bytes the application has not read, in order. One buffer
    /// per stream, reused while data flows: payloads are copied here
    /// straight from the socket's chunks, so a busy stream allocates once
    /// rather than once per chunk (fresh memory per chunk cost the receiving
    /// side a page fault every few KiB, about a third of its CPU). An idle
    /// stream gives it back ([`Mux::trim_idle`]).
    recv: BytesMut,
    /// Data arrived since the last [`Mux::trim_idle`].
    delivered: bool,
    /// `recv` may hold memory: data went into it since it was last
    /// replaced. (Its `capacity()` cannot tell: once read out to the end
    /// of its allocation, it reads 0 while the allocation is still held.)
    recv_held: bool,
    /// Current receive window size (auto-tuned, see the module docs).
    window: u32,
    /// Bytes the application read since the window last grew.
    read_since_growth: u64,
    /// Bytes the peer may still send before it must wait for a `Window` frame.
    recv_window: u32,
    /// Bytes the application consumed that were not granted back yet.
    unacked: u32,
    send_window: u32,
    local_fin: bool,
    remote_fin: bool,
    reset: Option<u32>,
}

impl Stream {
    fn new(window: u32) -> Self {
        Self {
            recv: BytesMut::new(),
            delivered: false,
            recv_held: false,
            window,
            read_since_growth: 0,
            recv_window: window,
            unacked: 0,
            send_window: window,
            local_fin: false,
            remote_fin: false,
            reset: None,
        }
    }
}

/// Per-connection multiplexer state. See the module documentation.
#[derive(Debug)]
pub struct Mux {
    role: Role,
    config: MuxConfig,
    next_local_id: u32,
    highest_remote_id: u32,
    streams: HashMap<StreamId, Stream>,
    /// Window growth currently granted, summed over streams (≤ `window_budget`).
    window_grown: u32,
    /// The start of a frame that is not whole yet: a header, or a control
    /// frame. A `Data` frame's payload never waits here (see `in_data`).
    input: BytesMut,
    /// Inside a `Data` frame: its stream, or `None` when its bytes are
    /// dropped (a stream closed here, or reset), and how many payload bytes
    /// are still to come.
    in_data: Option<(Option<StreamId>, usize)>,
    out: BytesMut,
    /// Output was written out since the last [`Mux::trim_idle`].
    flushed: bool,
    events: VecDeque<Event>,
    local_going_away: bool,
    remote_going_away: bool,
}

impl Mux {
    pub fn new(role: Role, config: MuxConfig) -> Self {
        Self {
            role,
            next_local_id: role.first_stream_id(),
            highest_remote_id: 0,
            config,
            streams: HashMap::new(),
            window_grown: 0,
            input: BytesMut::new(),
            in_data: None,
            out: BytesMut::new(),
            flushed: false,
            events: VecDeque::new(),
            local_going_away: false,
            remote_going_away: false,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Number of streams with state held here.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Feeds bytes received from the peer.
    ///
    /// A `Data` frame's payload goes straight from `data` to its stream's
    /// queue (one copy, whatever the chunk boundaries); only the start of a
    /// frame cut by the end of `data` waits in `input`.
    ///
    /// # Errors
    /// A protocol violation; the connection must be closed (the error says why).
    pub fn handle_input(&mut self, mut data: &[u8]) -> Result<(), ProtoError> {
        loop {
            if let Some((id, left)) = self.in_data {
                if data.is_empty() {
                    return Ok(());
                }
                let take = left.min(data.len());
                if let Some(id) = id {
                    self.deliver(id, &data[..take]);
                }
                data = &data[take..];
                self.in_data = (left > take).then_some((id, left - take));
                continue;
            }
            if self.input.is_empty() {
                // A frame starting in `data`: parsed in place when whole.
                let Some(header) = frame::peek_header(data)? else {
                    self.input.extend_from_slice(data);
                    return Ok(());
                };
                if header.ty == frame::FrameType::Data {
                    data = &data[HEADER_LEN..];
                    self.begin_data(header)?;
                    continue;
                }
                let total = HEADER_LEN + header.payload_len();
                if data.len() < total {
                    self.input.extend_from_slice(data);
                    return Ok(());
                }
                let payload = Bytes::copy_from_slice(&data[HEADER_LEN..total]);
                data = &data[total..];
                self.handle_frame(header.into_frame(payload)?)?;
                continue;
            }
            // The rest of a frame whose start is in `input`: first its
            // header, then (not for `Data`) its payload.
            let want = match frame::peek_header(&self.input)? {
                None => HEADER_LEN,
                Some(h) => HEADER_LEN + h.payload_len(),
            };
            let take = (want - self.input.len()).min(data.len());
            self.input.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.input.len() < want {
                return Ok(());
            }
            let Some(header) = frame::peek_header(&self.input)? else {
                unreachable!("a whole header is in `input`");
            };
            if header.ty == frame::FrameType::Data {
                // Idle connections hold no buffer memory.
                self.input = BytesMut::new();
                self.begin_data(header)?;
                continue;
            }
            if self.input.len() < HEADER_LEN + header.payload_len() {
                continue;
            }
            let mut whole = std::mem::take(&mut self.input);
            whole.advance(HEADER_LEN);
            self.handle_frame(header.into_frame(whole.freeze())?)?;
        }
    }

    /// A `Data` frame's header: checks it against the stream's window and
    /// says where its payload goes.
    fn begin_data(&mut self, header: frame::Header) -> Result<(), ProtoError> {
        let id = StreamId(header.stream);
        let len = header.payload_len();
        let to = match self.known_stream(id)? {
            None => None,
            Some(s) => {
                if s.remote_fin {
                    return Err(ProtoError::StreamViolation(id, "DATA after FIN"));
                }
                let len = len as u32;
                if len > s.recv_window {
                    return Err(ProtoError::FlowControl(id));
                }
                s.recv_window -= len;
                s.reset.is_none().then_some(id)
            }
        };
        if len > 0 {
            self.in_data = Some((to, len));
        }
        Ok(())
    }

    /// Payload bytes of a `Data` frame for stream `id`, queued for its
    /// reader. The stream may be gone since the frame began (released or
    /// reset by the application): the bytes are dropped then.
    fn deliver(&mut self, id: StreamId, bytes: &[u8]) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.reset.is_some() {
            return;
        }
        let was_empty = s.recv.is_empty();
        s.recv.extend_from_slice(bytes);
        s.delivered = true;
        s.recv_held = true;
        if was_empty {
            self.events.push_back(Event::Readable(id));
        }
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), ProtoError> {
        match frame {
            Frame::Open(id) => self.on_open(id)?,
            Frame::Data(..) => unreachable!("data payloads are delivered as they arrive"),
            Frame::Window(id, inc) => {
                if let Some(s) = self.known_stream(id)? {
                    let was_blocked = s.send_window == 0;
                    s.send_window = s
                        .send_window
                        .checked_add(inc)
                        .ok_or(ProtoError::FlowControl(id))?;
                    if was_blocked && inc > 0 {
                        self.events.push_back(Event::Writable(id));
                    }
                }
            }
            Frame::Fin(id) => {
                if let Some(s) = self.known_stream(id)? {
                    if s.remote_fin {
                        return Err(ProtoError::StreamViolation(id, "second FIN"));
                    }
                    s.remote_fin = true;
                    if s.recv.is_empty() {
                        self.events.push_back(Event::Readable(id));
                    }
                }
            }
            Frame::Reset(id, code) => {
                if let Some(s) = self.known_stream(id)? {
                    s.reset = Some(code);
                    s.recv.clear();
                    self.events.push_back(Event::Readable(id));
                    self.events.push_back(Event::Writable(id));
                }
            }
            Frame::Ping(v) => self.answer(Frame::Pong(v))?,
            Frame::Pong(v) => self.events.push_back(Event::Pong(v)),
            Frame::GoAway { code, reason } => {
                self.remote_going_away = true;
                self.events.push_back(Event::GoAway { code, reason });
            }
            Frame::Control(payload) => self.events.push_back(Event::Control(payload)),
        }
        Ok(())
    }

    /// Queues a frame the peer's input calls for. A peer that does not read
    /// its socket could otherwise make the output grow without bound (one
    /// pong per ping): past twice the output limit, such a peer is cut off
    /// (as HTTP/2 servers do against ping and reset floods). Honest peers
    /// never get near it.
    fn answer(&mut self, frame: Frame) -> Result<(), ProtoError> {
        if self.out.len() >= self.config.max_out_buffer.saturating_mul(2) {
            return Err(ProtoError::PeerNotReading(self.out.len()));
        }
        frame.encode(&mut self.out);
        Ok(())
    }

    fn is_local_id(&self, id: StreamId) -> bool {
        id.0 % 2 == self.role.first_stream_id() % 2
    }

    /// Looks up a stream named by an incoming frame. `Ok(None)` means the
    /// stream existed once and was closed here: frames still in flight for it
    /// are dropped. A stream that never existed is a protocol violation.
    fn known_stream(&mut self, id: StreamId) -> Result<Option<&mut Stream>, ProtoError> {
        let was_opened = if self.is_local_id(id) {
            id.0 < self.next_local_id
        } else {
            id.0 <= self.highest_remote_id
        };
        if !was_opened {
            return Err(ProtoError::StreamViolation(
                id,
                "frame for a stream never opened",
            ));
        }
        Ok(self.streams.get_mut(&id))
    }

    fn on_open(&mut self, id: StreamId) -> Result<(), ProtoError> {
        if self.is_local_id(id) || id.0 <= self.highest_remote_id {
            return Err(ProtoError::StreamViolation(id, "invalid stream id in OPEN"));
        }
        self.highest_remote_id = id.0;
        if self.local_going_away || self.streams.len() >= self.config.max_streams {
            return self.answer(Frame::Reset(id, reset_code::REFUSED));
        }
        self.streams
            .insert(id, Stream::new(self.config.initial_window));
        self.events.push_back(Event::Incoming(id));
        Ok(())
    }

    /// Next event to act upon.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Encoded frames waiting for the socket.
    pub fn pending_output(&self) -> &[u8] {
        &self.out
    }

    /// Marks `n` bytes of [`Self::pending_output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        self.out.advance(n);
        self.flushed = true;
        // Keep the buffer while data flows (reallocating a large buffer per
        // flush would cost), but not a small one left by control traffic.
        // (`capacity()` is the room left behind what was written, not the
        // allocation.) One kept after a burst is given back once the
        // connection is idle ([`Self::trim_idle`]).
        if self.out.is_empty()
            && (self.out.capacity() <= 4096 || self.out.capacity() > self.config.max_out_buffer)
        {
            self.out = BytesMut::new();
        }
    }

    /// Gives back the buffers of traffic that stopped: the receive buffer
    /// of every stream with nothing queued and nothing received since the
    /// previous call, and the output buffer when it is empty and nothing
    /// was written out since then. Buffers are kept while data flows
    /// (reallocating per chunk would cost); without this, a stream that
    /// once carried a burst (a file copied in a shell that then stays open
    /// for hours) would hold its high-water size, up to its window, for as
    /// long as it lives, and a connection its output buffer. Call it every
    /// so often: the driver does, every [`TRIM_INTERVAL`] or so. Returns how
    /// many buffers were given back.
    pub fn trim_idle(&mut self) -> usize {
        let mut trimmed = 0;
        for s in self.streams.values_mut() {
            if !s.delivered && s.recv.is_empty() && s.recv_held {
                s.recv = BytesMut::new();
                s.recv_held = false;
                trimmed += 1;
            }
            s.delivered = false;
        }
        // `consume_output` keeps an emptied output buffer only with more
        // than 4 KiB of room left, so `capacity() > 0` tells one held here.
        if !self.flushed && self.out.is_empty() && self.out.capacity() > 0 {
            self.out = BytesMut::new();
            trimmed += 1;
        }
        self.flushed = false;
        trimmed
    }

    /// Opens a new stream towards the peer.
    ///
    /// # Errors
    /// [`StreamError::TooManyStreams`] or [`StreamError::GoingAway`].
    pub fn open(&mut self) -> Result<StreamId, StreamError> {
        if self.local_going_away || self.remote_going_away {
            return Err(StreamError::GoingAway);
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(StreamError::TooManyStreams);
        }
        let id = StreamId(self.next_local_id);
        self.next_local_id += 2;
        self.streams
            .insert(id, Stream::new(self.config.initial_window));
        Frame::Open(id).encode(&mut self.out);
        Ok(id)
    }

    /// Queues as much of `data` as the stream's send window and the output
    /// buffer allow, returning how many bytes were taken (0: retry after a
    /// `Writable` event or after output was drained).
    ///
    /// # Errors
    /// The stream was reset, finished or released.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<usize, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        if let Some(code) = s.reset {
            return Err(StreamError::Reset(code));
        }
        if s.local_fin {
            return Err(StreamError::Finished);
        }
        let space = self.config.max_out_buffer.saturating_sub(self.out.len());
        let n = data.len().min(s.send_window as usize).min(space);
        s.send_window -= n as u32;
        for chunk in data[..n].chunks(MAX_DATA_PAYLOAD) {
            frame::encode_data(&mut self.out, id, chunk);
        }
        Ok(n)
    }

    /// Bytes a write on this stream could take right now.
    pub fn write_capacity(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |s| {
            let space = self.config.max_out_buffer.saturating_sub(self.out.len());
            space.min(s.send_window as usize)
        })
    }

    /// Copies received data into `buf`, granting the peer more window as the
    /// application consumes it.
    ///
    /// # Errors
    /// The stream was reset by the peer or is unknown.
    pub fn read(&mut self, id: StreamId, buf: &mut [u8]) -> Result<ReadOutcome, StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        if let Some(code) = s.reset {
            return Err(StreamError::Reset(code));
        }
        let n = s.recv.len().min(buf.len());
        s.recv.copy_to_slice(&mut buf[..n]);
        if n > 0 {
            s.unacked += n as u32;
            s.read_since_growth += n as u64;
            // Grant window back in batches, not per read, so small reads do
            // not flood the connection with `Window` frames.
            if !s.remote_fin && s.unacked >= s.window / 4 {
                let mut grant = s.unacked;
                let queued = s.recv.len();
                if s.read_since_growth >= 2 * u64::from(s.window) && queued < s.window as usize / 4
                {
                    let budget = self.config.window_budget.saturating_sub(self.window_grown);
                    let growth = s
                        .window
                        .min(self.config.max_window.saturating_sub(s.window))
                        .min(budget);
                    if growth > 0 {
                        s.window += growth;
                        self.window_grown += growth;
                        grant += growth;
                    }
                    s.read_since_growth = 0;
                }
                Frame::Window(id, grant).encode(&mut self.out);
                s.recv_window += grant;
                s.unacked = 0;
            }
            return Ok(ReadOutcome::Data(n));
        }
        if buf.is_empty() {
            return Ok(ReadOutcome::Data(0));
        }
        Ok(if s.remote_fin {
            ReadOutcome::Fin
        } else {
            ReadOutcome::WouldBlock
        })
    }

    /// Bytes buffered for the application on this stream.
    pub fn readable_len(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |s| s.recv.len())
    }

    /// Ends the local sending side (half-close). Idempotent.
    ///
    /// # Errors
    /// The stream was reset or is unknown.
    pub fn finish(&mut self, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Closed)?;
        if let Some(code) = s.reset {
            return Err(StreamError::Reset(code));
        }
        if !s.local_fin {
            s.local_fin = true;
            Frame::Fin(id).encode(&mut self.out);
        }
        Ok(())
    }

    /// Aborts the stream in both directions and forgets it.
    pub fn reset(&mut self, id: StreamId, code: u32) {
        if let Some(s) = self.remove_stream(id)
            && s.reset.is_none()
        {
            Frame::Reset(id, code).encode(&mut self.out);
        }
    }

    /// Forgets a stream, giving its window growth back to the connection.
    fn remove_stream(&mut self, id: StreamId) -> Option<Stream> {
        let s = self.streams.remove(&id)?;
        self.window_grown = self
            .window_grown
            .saturating_sub(s.window.saturating_sub(self.config.initial_window));
        Some(s)
    }

    /// The stream's current receive window (grows by auto-tuning).
    pub fn recv_window_size(&self, id: StreamId) -> Option<u32> {
        self.streams.get(&id).map(|s| s.window)
    }

    /// Window growth granted on this connection, summed over its streams.
    pub fn window_growth(&self) -> u32 {
        self.window_grown
    }

    /// The application dropped its handle: forget the stream, resetting it
    /// unless both sides had finished cleanly.
    pub fn release(&mut self, id: StreamId) {
        let clean = self
            .streams
            .get(&id)
            .is_some_and(|s| s.local_fin && s.remote_fin && s.recv.is_empty());
        if clean {
            self.remove_stream(id);
        } else {
            self.reset(id, reset_code::CANCEL);
        }
    }

    /// Sends a liveness probe; the peer answers with a `Pong` event here.
    pub fn ping(&mut self, opaque: u32) {
        Frame::Ping(opaque).encode(&mut self.out);
    }

    /// Sends a control message (JSON) on stream 0.
    ///
    /// # Errors
    /// The message is larger than a control frame may carry.
    pub fn send_control(&mut self, payload: &[u8]) -> Result<(), ProtoError> {
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(ProtoError::FrameTooLarge {
                len: payload.len(),
                max: MAX_CONTROL_PAYLOAD,
            });
        }
        Frame::Control(Bytes::copy_from_slice(payload)).encode(&mut self.out);
        Ok(())
    }

    /// Announces that this end is closing the connection. New streams from the
    /// peer are refused from now on; existing ones may finish.
    pub fn go_away(&mut self, code: u32, reason: &str) {
        if !self.local_going_away {
            self.local_going_away = true;
            Frame::GoAway {
                code,
                reason: reason.to_owned(),
            }
            .encode(&mut self.out);
        }
    }

    /// Whether the peer announced it is going away.
    pub fn peer_going_away(&self) -> bool {
        self.remote_going_away
    }
}

#[cfg(test)]
pub(crate) mod tests;
