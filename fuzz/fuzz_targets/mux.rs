//! The stream multiplexer state machine (`jumpgate_proto::mux::Mux`) fed
//! arbitrary sequences of frames and raw bytes from a hostile peer,
//! interleaved with what the local application does (open, write, read,
//! finish, reset, release, drain the socket). Besides "no panic", the
//! memory it holds must stay bounded whatever the peer sends: received data
//! by the stream windows, queued output by twice the output buffer limit.
//!
//! A second mode connects two muxes (gateway and agent) and lets both
//! applications act at random, pumping bytes between them in arbitrary
//! pieces: honest peers must never see a protocol error.
#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use jumpgate_proto::StreamId;
use jumpgate_proto::frame::{Frame, HEADER_LEN, MAX_CONTROL_PAYLOAD, MAX_DATA_PAYLOAD};
use jumpgate_proto::mux::{Event, Mux, MuxConfig, Role};
use libfuzzer_sys::fuzz_target;

/// A frame from the peer, well-formed so the state machine is reached.
#[derive(Arbitrary, Debug)]
enum PeerFrame {
    Open(u8),
    Data(u8, u16),
    Window(u8, u32),
    Fin(u8),
    Reset(u8, u32),
    Ping(u32),
    Pong(u32),
    GoAway(u32, String),
    Control(Vec<u8>),
}

impl PeerFrame {
    fn encode(&self, out: &mut BytesMut) {
        let id = |v: &u8| StreamId(u32::from(*v));
        let frame = match self {
            Self::Open(s) => Frame::Open(id(s)),
            Self::Data(s, len) => Frame::Data(
                id(s),
                Bytes::from(vec![0x5a; usize::from(*len).min(MAX_DATA_PAYLOAD)]),
            ),
            Self::Window(s, n) => Frame::Window(id(s), *n),
            Self::Fin(s) => Frame::Fin(id(s)),
            Self::Reset(s, c) => Frame::Reset(id(s), *c),
            Self::Ping(v) => Frame::Ping(*v),
            Self::Pong(v) => Frame::Pong(*v),
            Self::GoAway(c, r) => Frame::GoAway {
                code: *c,
                reason: r.clone(),
            },
            Self::Control(p) => Frame::Control(Bytes::copy_from_slice(
                &p[..p.len().min(MAX_CONTROL_PAYLOAD)],
            )),
        };
        frame.encode(out);
    }
}

/// What the local application (or socket) does.
#[derive(Arbitrary, Debug)]
enum Local {
    Open,
    Write(u8, u16),
    Read(u8, u16),
    Finish(u8),
    Reset(u8, u32),
    Release(u8),
    /// The socket takes this many bytes of output.
    Drain(u16),
    Ping(u32),
    GoAway(u32),
    Control(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum PeerOp {
    Frames(Vec<PeerFrame>),
    Raw(Vec<u8>),
    Local(Local),
}

#[derive(Arbitrary, Debug)]
struct PairOp {
    agent: bool,
    /// `Err(n)`: pump this many bytes of this side's output to the other side.
    op: Result<Local, u16>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Hostile { gateway: bool, ops: Vec<PeerOp> },
    Pair(Vec<PairOp>),
}

fn config() -> MuxConfig {
    // Small limits, so a short input reaches them.
    // Windows start small and may grow (auto-tuning) to 4x within a budget
    // smaller than all streams growing at once.
    MuxConfig {
        initial_window: 4096,
        max_window: 16384,
        window_budget: 16384,
        max_streams: 4,
        max_out_buffer: 2048,
    }
}

/// A mux and the streams its application holds.
struct Side {
    mux: Mux,
    streams: Vec<StreamId>,
}

impl Side {
    fn new(role: Role) -> Self {
        Self {
            mux: Mux::new(role, config()),
            streams: Vec::new(),
        }
    }

    fn pick(&self, i: u8) -> Option<StreamId> {
        (!self.streams.is_empty()).then(|| self.streams[usize::from(i) % self.streams.len()])
    }

    fn forget(&mut self, id: StreamId) {
        self.streams.retain(|s| *s != id);
    }

    fn events(&mut self) {
        while let Some(ev) = self.mux.poll_event() {
            if let Event::Incoming(id) = ev {
                self.streams.push(id);
            }
        }
    }

    fn act(&mut self, op: &Local) {
        match op {
            Local::Open => {
                if let Ok(id) = self.mux.open() {
                    self.streams.push(id);
                }
            }
            Local::Write(i, len) => {
                if let Some(id) = self.pick(*i) {
                    let cap = self.mux.write_capacity(id);
                    let data = vec![0xa5; usize::from(*len)];
                    if let Ok(n) = self.mux.write(id, &data) {
                        assert!(n <= cap, "wrote {n} > {cap}");
                    }
                }
            }
            Local::Read(i, len) => {
                if let Some(id) = self.pick(*i) {
                    let mut buf = vec![0; usize::from(*len)];
                    let _ = self.mux.read(id, &mut buf);
                }
            }
            Local::Finish(i) => {
                if let Some(id) = self.pick(*i) {
                    let _ = self.mux.finish(id);
                }
            }
            Local::Reset(i, code) => {
                if let Some(id) = self.pick(*i) {
                    self.mux.reset(id, *code);
                    self.forget(id);
                }
            }
            Local::Release(i) => {
                if let Some(id) = self.pick(*i) {
                    self.mux.release(id);
                    self.forget(id);
                }
            }
            Local::Drain(n) => {
                let n = usize::from(*n).min(self.mux.pending_output().len());
                self.mux.consume_output(n);
            }
            Local::Ping(v) => self.mux.ping(*v),
            Local::GoAway(code) => self.mux.go_away(*code, "fuzz"),
            Local::Control(p) => {
                let _ = self.mux.send_control(p);
            }
        }
        self.check();
    }

    /// Received data is bounded by the stream windows and the stream limit.
    fn check(&self) {
        let c = config();
        let buffered: usize = self.streams.iter().map(|s| self.mux.readable_len(*s)).sum();
        assert!(
            buffered <= c.max_streams * c.initial_window as usize + c.window_budget as usize
        );
        assert!(self.mux.stream_count() <= c.max_streams);
    }

    /// Feeds peer bytes. Whatever the peer sends, what it makes this side
    /// queue for it (pongs, refusals) stops at twice the output buffer
    /// limit (then the peer is cut off): a peer that does not read cannot
    /// grow it.
    fn input(&mut self, bytes: &[u8]) -> Result<(), jumpgate_proto::ProtoError> {
        let before = self.mux.pending_output().len();
        let r = self.mux.handle_input(bytes);
        let after = self.mux.pending_output().len();
        let limit = 2 * config().max_out_buffer + HEADER_LEN;
        assert!(
            after <= before.max(limit),
            "peer input grew the output buffer from {before} to {after}"
        );
        self.events();
        self.check();
        r
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Hostile { gateway, ops } => {
            let mut side = Side::new(if gateway { Role::Gateway } else { Role::Agent });
            for op in ops {
                let result = match op {
                    PeerOp::Frames(frames) => {
                        let mut buf = BytesMut::new();
                        for f in &frames {
                            f.encode(&mut buf);
                        }
                        side.input(&buf)
                    }
                    PeerOp::Raw(bytes) => side.input(&bytes),
                    PeerOp::Local(l) => {
                        side.act(&l);
                        Ok(())
                    }
                };
                if result.is_err() {
                    // The driver closes the connection here.
                    return;
                }
            }
        }
        Input::Pair(ops) => {
            let mut sides = [Side::new(Role::Gateway), Side::new(Role::Agent)];
            let pump = |sides: &mut [Side; 2], from: usize, n: usize| {
                let out = sides[from].mux.pending_output();
                let n = n.min(out.len());
                let bytes = out[..n].to_vec();
                sides[from].mux.consume_output(n);
                sides[1 - from]
                    .input(&bytes)
                    .expect("an honest peer never breaks the protocol");
            };
            for PairOp { agent, op } in ops {
                let me = usize::from(agent);
                match op {
                    // Here the socket delivers what it takes to the peer.
                    Ok(Local::Drain(n)) | Err(n) => pump(&mut sides, me, usize::from(n)),
                    Ok(l) => sides[me].act(&l),
                }
                // Honest peers read their sockets: a backlog of half the
                // output limit drains (answers to it stay under the cut-off).
                for from in [0, 1] {
                    while sides[from].mux.pending_output().len() > config().max_out_buffer / 2 {
                        pump(&mut sides, from, usize::MAX);
                    }
                }
            }
        }
    }
});
