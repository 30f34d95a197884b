//! Two [`Mux`] ends wired together in memory (after quinn-proto's `Pair`).

use super::*;

pub(crate) struct Pair {
    pub(crate) gateway: Mux,
    pub(crate) agent: Mux,
    pub(crate) gateway_events: Vec<Event>,
    pub(crate) agent_events: Vec<Event>,
}

impl Pair {
    pub(crate) fn new() -> Self {
        Self::with_config(MuxConfig::default())
    }

    fn with_config(config: MuxConfig) -> Self {
        Self {
            gateway: Mux::new(Role::Gateway, config.clone()),
            agent: Mux::new(Role::Agent, config),
            gateway_events: Vec::new(),
            agent_events: Vec::new(),
        }
    }

    /// Moves bytes both ways until neither side has output left.
    pub(crate) fn drive(&mut self) {
        loop {
            let g = self.gateway.pending_output().to_vec();
            self.gateway.consume_output(g.len());
            let a = self.agent.pending_output().to_vec();
            self.agent.consume_output(a.len());
            if g.is_empty() && a.is_empty() {
                break;
            }
            // Deliver in awkward slices to exercise reassembly.
            for chunk in g.chunks(7777) {
                self.agent.handle_input(chunk).expect("agent input");
            }
            for chunk in a.chunks(5000) {
                self.gateway.handle_input(chunk).expect("gateway input");
            }
            while let Some(e) = self.gateway.poll_event() {
                self.gateway_events.push(e);
            }
            while let Some(e) = self.agent.poll_event() {
                self.agent_events.push(e);
            }
        }
    }
}

pub(crate) fn read_all(mux: &mut Mux, id: StreamId) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match mux.read(id, &mut buf).unwrap() {
            ReadOutcome::Data(n) => out.extend_from_slice(&buf[..n]),
            ReadOutcome::Fin => return (out, true),
            ReadOutcome::WouldBlock => return (out, false),
        }
    }
}

#[test]
fn open_write_finish_read() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    assert_eq!(id, StreamId(2));
    assert_eq!(p.gateway.write(id, b"hello agent").unwrap(), 11);
    p.gateway.finish(id).unwrap();
    p.drive();
    assert_eq!(p.agent_events[0], Event::Incoming(id));
    assert!(p.agent_events.contains(&Event::Readable(id)));
    let (data, fin) = read_all(&mut p.agent, id);
    assert_eq!(data, b"hello agent");
    assert!(fin);

    // Reply on the same stream, then both sides close cleanly.
    p.agent.write(id, b"hi").unwrap();
    p.agent.finish(id).unwrap();
    p.drive();
    let (data, fin) = read_all(&mut p.gateway, id);
    assert_eq!((data.as_slice(), fin), (&b"hi"[..], true));
    p.gateway.release(id);
    p.agent.release(id);
    p.drive();
    assert_eq!(p.gateway.stream_count(), 0);
    assert_eq!(p.agent.stream_count(), 0);
}

#[test]
fn agent_streams_are_odd_and_gateway_streams_even() {
    let mut p = Pair::new();
    let a = p.agent.open().unwrap();
    let g = p.gateway.open().unwrap();
    let a2 = p.agent.open().unwrap();
    assert_eq!((a.0, g.0, a2.0), (1, 2, 3));
    p.drive();
    assert!(p.gateway_events.contains(&Event::Incoming(a)));
    assert!(p.gateway_events.contains(&Event::Incoming(a2)));
    assert!(p.agent_events.contains(&Event::Incoming(g)));
}

#[test]
fn sender_stops_at_the_receive_window_and_resumes_when_read() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    let big = vec![7u8; 1024 * 1024];
    let mut sent = 0;
    loop {
        let n = p.gateway.write(id, &big[sent..]).unwrap();
        sent += n;
        p.drive();
        if n == 0 {
            break;
        }
    }
    assert_eq!(
        sent, INITIAL_WINDOW as usize,
        "exactly one window in flight"
    );
    assert_eq!(p.agent.readable_len(id), INITIAL_WINDOW as usize);

    let (got, _) = read_all(&mut p.agent, id);
    assert_eq!(got.len(), INITIAL_WINDOW as usize);
    p.drive();
    assert!(p.gateway_events.contains(&Event::Writable(id)));
    assert!(p.gateway.write(id, &big[sent..]).unwrap() > 0);
}

/// The engineering requirement of issue #2: a reader that stops reading must
/// not slow the other streams on the same connection.
#[test]
fn a_stalled_stream_does_not_block_other_streams() {
    let mut p = Pair::new();
    let stalled = p.gateway.open().unwrap();
    let busy = p.gateway.open().unwrap();
    let payload = vec![1u8; 16 * 1024 * 1024];

    // Fill the stalled stream's window; its reader never reads.
    let mut stalled_sent = 0;
    loop {
        let n = p.gateway.write(stalled, &payload[stalled_sent..]).unwrap();
        stalled_sent += n;
        p.drive();
        if n == 0 {
            break;
        }
    }

    // 16 MiB — 64 windows' worth — still crosses on the other stream.
    let mut busy_sent = 0;
    let mut busy_received = 0;
    let mut rounds = 0;
    while busy_received < payload.len() {
        rounds += 1;
        assert!(rounds < 100_000, "no progress on the busy stream");
        if busy_sent < payload.len() {
            busy_sent += p.gateway.write(busy, &payload[busy_sent..]).unwrap();
        }
        p.drive();
        busy_received += read_all(&mut p.agent, busy).0.len();
    }
    assert_eq!(busy_received, payload.len());
    // The stalled stream is still exactly at its window, untouched.
    assert_eq!(stalled_sent, INITIAL_WINDOW as usize);
    assert_eq!(p.agent.readable_len(stalled), INITIAL_WINDOW as usize);
    assert_eq!(p.gateway.write(stalled, b"x").unwrap(), 0);
}

#[test]
fn output_buffer_is_bounded() {
    let mut p = Pair::with_config(MuxConfig {
        max_out_buffer: 100_000,
        ..MuxConfig::default()
    });
    let id = p.gateway.open().unwrap();
    let data = vec![0u8; 1_000_000];
    let n = p.gateway.write(id, &data).unwrap();
    assert!(n < 100_000);
    assert_eq!(p.gateway.write(id, &data).unwrap(), 0);
    p.drive();
    assert!(p.gateway.write(id, &data).unwrap() > 0);
}

#[test]
fn sending_beyond_the_window_is_a_protocol_error() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.drive();
    // A misbehaving peer ignores flow control.
    let mut out = BytesMut::new();
    let chunk = vec![0u8; MAX_DATA_PAYLOAD];
    for _ in 0..(INITIAL_WINDOW as usize / MAX_DATA_PAYLOAD + 1) {
        frame::encode_data(&mut out, id, &chunk);
    }
    assert_eq!(p.agent.handle_input(&out), Err(ProtoError::FlowControl(id)));
}

#[test]
fn frames_for_unopened_streams_are_protocol_errors() {
    let mut agent = Mux::new(Role::Agent, MuxConfig::default());
    let mut out = BytesMut::new();
    frame::encode_data(&mut out, StreamId(4), b"x");
    assert!(matches!(
        agent.handle_input(&out),
        Err(ProtoError::StreamViolation(StreamId(4), _))
    ));

    // Re-opening an old id, or opening with the wrong parity, too.
    let mut agent = Mux::new(Role::Agent, MuxConfig::default());
    let mut out = BytesMut::new();
    Frame::Open(StreamId(4)).encode(&mut out);
    Frame::Open(StreamId(2)).encode(&mut out);
    assert!(agent.handle_input(&out).is_err());
    let mut agent = Mux::new(Role::Agent, MuxConfig::default());
    let mut out = BytesMut::new();
    Frame::Open(StreamId(3)).encode(&mut out);
    assert!(agent.handle_input(&out).is_err());
}

#[test]
fn reset_reaches_both_reader_and_writer() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.gateway.write(id, b"data").unwrap();
    p.drive();
    p.agent.reset(id, reset_code::TERMINATED);
    p.drive();
    assert!(p.gateway_events.contains(&Event::Readable(id)));
    assert!(p.gateway_events.contains(&Event::Writable(id)));
    let mut buf = [0u8; 8];
    assert_eq!(
        p.gateway.read(id, &mut buf),
        Err(StreamError::Reset(reset_code::TERMINATED))
    );
    assert_eq!(
        p.gateway.write(id, b"more"),
        Err(StreamError::Reset(reset_code::TERMINATED))
    );
    // Late frames for the forgotten stream are ignored, not errors.
    p.gateway.release(id);
    assert_eq!(p.gateway.stream_count(), 0);
    assert_eq!(p.agent.stream_count(), 0);
}

#[test]
fn dropping_an_unfinished_stream_resets_it() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.drive();
    p.agent.release(id);
    p.drive();
    let mut buf = [0u8; 8];
    assert_eq!(
        p.gateway.read(id, &mut buf),
        Err(StreamError::Reset(reset_code::CANCEL))
    );
}

#[test]
fn stream_limit_refuses_extra_streams() {
    let mut p = Pair::with_config(MuxConfig {
        max_streams: 2,
        ..MuxConfig::default()
    });
    let ids: Vec<_> = (0..2).map(|_| p.gateway.open().unwrap()).collect();
    assert_eq!(p.gateway.open(), Err(StreamError::TooManyStreams));
    p.drive();
    // The agent is at its limit too: a stream it did not expect is refused.
    let mut out = BytesMut::new();
    Frame::Open(StreamId(ids[1].0 + 2)).encode(&mut out);
    p.agent.handle_input(&out).unwrap();
    let mut refused = BytesMut::from(p.agent.pending_output());
    assert_eq!(
        Frame::decode(&mut refused).unwrap(),
        Some(Frame::Reset(StreamId(ids[1].0 + 2), reset_code::REFUSED))
    );
}

#[test]
fn ping_is_answered_and_control_and_goaway_are_reported() {
    let mut p = Pair::new();
    p.gateway.ping(99);
    p.agent.send_control(br#"{"type":"agent_info"}"#).unwrap();
    p.drive();
    assert!(p.gateway_events.contains(&Event::Pong(99)));
    assert!(
        p.gateway_events
            .contains(&Event::Control(Bytes::from_static(
                br#"{"type":"agent_info"}"#
            )))
    );
    p.gateway.go_away(7, "revoked");
    p.drive();
    assert!(p.agent_events.contains(&Event::GoAway {
        code: 7,
        reason: "revoked".into()
    }));
    assert_eq!(p.agent.open(), Err(StreamError::GoingAway));
    assert!(p.agent.peer_going_away());
}

#[test]
fn idle_connection_holds_no_buffers() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.gateway.write(id, &[0u8; 100_000]).unwrap();
    p.drive();
    read_all(&mut p.agent, id);
    p.gateway.release(id);
    p.agent.release(id);
    p.drive();
    assert_eq!(p.agent.input.capacity(), 0);
    assert_eq!(p.gateway.input.capacity(), 0);
}

/// Bytes this thread holds in live allocations (the test binary's
/// allocator counts them per thread, so parallel tests do not disturb it).
/// Test builds only: the one unsafe code of this crate, as `GlobalAlloc`
/// is an unsafe trait.
#[allow(unsafe_code)]
mod held {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        // Not during this thread's teardown: nothing to count then.
        let _ = LIVE.try_with(|l| l.set(l.get() + n));
    }

    pub(super) fn now() -> isize {
        LIVE.with(Cell::get)
    }

    struct Counting;

    // SAFETY: every call is passed on to `System` unchanged; only sizes are
    // counted.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            add(-(layout.size() as isize));
            // SAFETY: the caller's contract, passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            add(layout.size() as isize);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            add(new_size as isize - layout.size() as isize);
            // SAFETY: the caller's contract, passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;
}

#[test]
fn an_idle_stream_gives_back_its_receive_buffer_and_a_busy_one_keeps_it() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.drive();
    let before = held::now();
    assert_eq!(p.gateway.write(id, &[7u8; 200_000]).unwrap(), 200_000);
    p.drive();
    // Data just arrived: kept. Then nothing new, but data not read yet:
    // kept.
    assert_eq!(p.agent.trim_idle(), 0);
    assert_eq!(p.agent.trim_idle(), 0);
    assert_eq!(read_all(&mut p.agent, id).0.len(), 200_000);
    // Read out, and more data since the last trim: kept, as between two
    // chunks of a bulk transfer.
    p.gateway.write(id, b"x").unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.agent, id).0, b"x");
    assert_eq!(p.agent.trim_idle(), 0);
    // The control: the receive buffer is still held (and the sender's
    // output buffer, whatever its size, is the same before and after).
    let busy = held::now();
    assert!(busy - before >= 200_000, "{} bytes held", busy - before);
    // Idle for a whole interval: given back (perhaps with the receiver's
    // output buffer, which held its window grants).
    assert!(p.agent.trim_idle() >= 1);
    assert_eq!(p.agent.streams[&id].recv.capacity(), 0);
    let idle = held::now();
    assert!(busy - idle >= 200_000, "{} bytes given back", busy - idle);
    assert_eq!(p.agent.trim_idle(), 0);
    // And the stream still carries data to its end.
    carries_data_to_its_end(&mut p, id);
}

/// `id` still carries data from the gateway to the agent, and its end.
fn carries_data_to_its_end(p: &mut Pair, id: StreamId) {
    p.gateway.write(id, b"again").unwrap();
    p.gateway.finish(id).unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.agent, id), (b"again".to_vec(), true));
}

#[test]
fn a_receive_buffer_read_to_the_end_of_its_allocation_is_given_back_too() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.drive();
    p.gateway.write(id, b"x").unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.agent, id).0, b"x");
    // A buffer filled exactly to its allocation, then read out: its
    // `capacity()` reads 0, but the memory is still held.
    let before = held::now();
    let s = p.agent.streams.get_mut(&id).unwrap();
    s.recv = BytesMut::with_capacity(200_000);
    s.recv.extend_from_slice(&[3u8; 200_000]);
    assert_eq!(s.recv.capacity(), 200_000);
    let mut buf = vec![0u8; 200_000];
    assert_eq!(
        p.agent.read(id, &mut buf).unwrap(),
        ReadOutcome::Data(200_000)
    );
    assert_eq!(p.agent.streams[&id].recv.capacity(), 0);
    let busy = held::now();
    assert!(busy - before >= 200_000, "{} bytes held", busy - before);
    // Idle for a whole interval: given back all the same.
    assert_eq!(p.agent.trim_idle(), 0);
    assert!(p.agent.trim_idle() >= 1);
    let idle = held::now();
    assert!(busy - idle >= 200_000, "{} bytes given back", busy - idle);
    carries_data_to_its_end(&mut p, id);
}

#[test]
fn the_output_buffer_is_kept_while_data_flows_and_given_back_when_idle() {
    let mut p = Pair::new();
    let id = p.gateway.open().unwrap();
    p.drive();
    // The receiving side gives its buffers back first, so that what this
    // thread holds is the sender's.
    let settle = |p: &mut Pair| {
        p.agent.trim_idle();
        p.agent.trim_idle();
    };
    settle(&mut p);
    let before = held::now();
    assert_eq!(p.gateway.write(id, &[9u8; 200_000]).unwrap(), 200_000);
    p.drive();
    assert_eq!(read_all(&mut p.agent, id).0.len(), 200_000);
    p.drive();
    settle(&mut p);
    // Written out, but just now: kept (the control: still held).
    assert_eq!(p.gateway.trim_idle(), 0);
    let busy = held::now();
    assert!(busy - before >= 200_000, "{} bytes held", busy - before);
    // Nothing written out for a whole interval: given back.
    assert_eq!(p.gateway.trim_idle(), 1);
    let idle = held::now();
    assert!(busy - idle >= 200_000, "{} bytes given back", busy - idle);
    // And the connection still carries data.
    carries_data_to_its_end(&mut p, id);
}

#[test]
fn many_streams_interleave_in_order() {
    let mut p = Pair::new();
    let ids: Vec<_> = (0..50).map(|_| p.gateway.open().unwrap()).collect();
    for round in 0..20u8 {
        for (i, id) in ids.iter().enumerate() {
            let msg = [round, i as u8];
            assert_eq!(p.gateway.write(*id, &msg).unwrap(), 2);
        }
        p.drive();
    }
    for (i, id) in ids.iter().enumerate() {
        let (data, _) = read_all(&mut p.agent, *id);
        let expected: Vec<u8> = (0..20u8).flat_map(|r| [r, i as u8]).collect();
        assert_eq!(data, expected);
    }
}

/// Found by the `mux` fuzz target (docs/fuzzing.md): a peer that sends
/// pings (or streams to refuse) and never reads made the output buffer grow
/// by one answer per request, without bound.
#[test]
fn a_peer_that_does_not_read_its_answers_is_cut_off() {
    let config = MuxConfig {
        max_out_buffer: 2048,
        max_streams: 1,
        ..MuxConfig::default()
    };
    let mut flood = BytesMut::new();
    for v in 0..1000 {
        Frame::Ping(v).encode(&mut flood);
    }
    let mut mux = Mux::new(Role::Gateway, config.clone());
    // A few pings are answered as usual.
    mux.handle_input(&flood[..12 * 10]).unwrap();
    assert_eq!(mux.pending_output().len(), 12 * 10);
    // A flood nobody reads is refused once the answers reach twice the
    // output limit, and the output stops there.
    assert!(matches!(
        mux.handle_input(&flood[12 * 10..]),
        Err(ProtoError::PeerNotReading(_))
    ));
    assert!(mux.pending_output().len() <= 2 * 2048 + 12);

    // Refusals of streams over the limit are answers too.
    let mut mux = Mux::new(Role::Gateway, config);
    let mut opens = BytesMut::new();
    for id in (1..2001).step_by(2) {
        Frame::Open(StreamId(id)).encode(&mut opens);
    }
    assert!(matches!(
        mux.handle_input(&opens),
        Err(ProtoError::PeerNotReading(_))
    ));
    assert!(mux.pending_output().len() <= 2 * 2048 + 12);

    // A peer that reads keeps being answered, however many pings it sends.
    let mut mux = Mux::new(
        Role::Gateway,
        MuxConfig {
            max_out_buffer: 2048,
            ..MuxConfig::default()
        },
    );
    for chunk in flood.chunks(12 * 100) {
        mux.handle_input(chunk).unwrap();
        let n = mux.pending_output().len();
        mux.consume_output(n);
    }
}
/// Sends `total` bytes gateway → agent on `id`, delivering after every write
/// and letting the agent read at most `read_per_round` bytes per round
/// (`usize::MAX`: everything queued). Returns the bytes the agent read.
fn transfer(p: &mut Pair, id: StreamId, total: usize, read_per_round: usize) -> usize {
    let data = vec![3u8; 1024 * 1024];
    let (mut sent, mut read) = (0, 0);
    let mut buf = vec![0u8; 64 * 1024];
    let mut rounds = 0;
    while read < total {
        rounds += 1;
        assert!(rounds < 1_000_000, "no progress");
        if sent < total {
            let end = (total - sent).min(data.len());
            sent += p.gateway.write(id, &data[..end]).unwrap();
        }
        p.drive();
        let mut budget = read_per_round;
        while budget > 0 {
            let want = budget.min(buf.len());
            match p.agent.read(id, &mut buf[..want]).unwrap() {
                ReadOutcome::Data(n) => {
                    read += n;
                    budget -= n;
                }
                ReadOutcome::Fin | ReadOutcome::WouldBlock => break,
            }
        }
    }
    read
}

/// Writes until the sender may send no more (the agent reads nothing).
fn fill(p: &mut Pair, id: StreamId) -> usize {
    let data = vec![4u8; 1024 * 1024];
    let mut sent = 0;
    // Deliver grants still waiting in the receiver's output first.
    p.drive();
    loop {
        let n = p.gateway.write(id, &data).unwrap();
        sent += n;
        p.drive();
        if n == 0 {
            return sent;
        }
    }
}

fn roomy() -> MuxConfig {
    // The output buffer must not be what stops the sender here.
    MuxConfig {
        max_out_buffer: 64 * 1024 * 1024,
        ..MuxConfig::default()
    }
}

#[test]
fn a_bulk_stream_whose_reader_keeps_up_grows_its_window() {
    let mut p = Pair::with_config(roomy());
    let id = p.gateway.open().unwrap();
    assert_eq!(p.agent.recv_window_size(id), None);
    p.drive();
    assert_eq!(p.agent.recv_window_size(id), Some(INITIAL_WINDOW));

    transfer(&mut p, id, 32 * 1024 * 1024, usize::MAX);
    assert_eq!(p.agent.recv_window_size(id), Some(MAX_WINDOW));
    assert_eq!(p.agent.window_growth(), MAX_WINDOW - INITIAL_WINDOW);

    // The sender uses the larger grants: far more than the initial window is
    // in flight once the reader pauses, and never more than the grown one.
    let in_flight = fill(&mut p, id);
    assert!(
        in_flight > 2 * INITIAL_WINDOW as usize,
        "only {in_flight} bytes in flight"
    );
    assert!(in_flight <= MAX_WINDOW as usize);
    assert_eq!(p.agent.readable_len(id), in_flight);
}

#[test]
fn a_reader_that_falls_behind_does_not_grow_its_window() {
    let mut p = Pair::with_config(roomy());
    let id = p.gateway.open().unwrap();
    p.drive();
    // The reader takes 16 KiB per round while the sender keeps its window
    // full: the queue stays long, so a larger window would only buffer more.
    let data = vec![5u8; 1024 * 1024];
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0;
    while read < 8 * 1024 * 1024 {
        p.gateway.write(id, &data).unwrap();
        p.drive();
        match p.agent.read(id, &mut buf).unwrap() {
            ReadOutcome::Data(n) => read += n,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(p.agent.recv_window_size(id), Some(INITIAL_WINDOW));
    assert_eq!(p.agent.window_growth(), 0);
    assert!(p.agent.readable_len(id) <= INITIAL_WINDOW as usize);
}

#[test]
fn window_growth_is_bounded_per_connection_and_given_back_when_a_stream_ends() {
    let budget = 3 * INITIAL_WINDOW;
    let mut p = Pair::with_config(MuxConfig {
        max_window: 4 * INITIAL_WINDOW,
        window_budget: budget,
        ..roomy()
    });
    let a = p.gateway.open().unwrap();
    let b = p.gateway.open().unwrap();
    p.drive();
    transfer(&mut p, a, 16 * 1024 * 1024, usize::MAX);
    transfer(&mut p, b, 16 * 1024 * 1024, usize::MAX);
    let grown = |p: &Pair, id| p.agent.recv_window_size(id).unwrap() - INITIAL_WINDOW;
    // `a` took what it could (up to its maximum); `b` got the rest.
    assert_eq!(grown(&p, a), 3 * INITIAL_WINDOW);
    assert_eq!(grown(&p, b), 0);
    assert_eq!(p.agent.window_growth(), budget);

    // `a` ends: its growth returns to the connection and `b` can grow.
    p.agent.release(a);
    p.drive();
    assert_eq!(p.agent.window_growth(), 0);
    transfer(&mut p, b, 16 * 1024 * 1024, usize::MAX);
    assert_eq!(grown(&p, b), 3 * INITIAL_WINDOW);
    assert_eq!(p.agent.window_growth(), budget);
}

#[test]
fn a_grown_window_is_still_enforced() {
    let mut p = Pair::with_config(roomy());
    let id = p.gateway.open().unwrap();
    p.drive();
    transfer(&mut p, id, 32 * 1024 * 1024, usize::MAX);
    assert_eq!(p.agent.recv_window_size(id), Some(MAX_WINDOW));
    fill(&mut p, id);
    // One byte beyond what the receiver granted.
    let mut out = BytesMut::new();
    frame::encode_data(&mut out, id, b"x");
    assert_eq!(p.agent.handle_input(&out), Err(ProtoError::FlowControl(id)));
}

#[test]
fn growth_can_be_disabled() {
    let mut p = Pair::with_config(MuxConfig {
        max_window: INITIAL_WINDOW,
        ..roomy()
    });
    let id = p.gateway.open().unwrap();
    p.drive();
    transfer(&mut p, id, 8 * 1024 * 1024, usize::MAX);
    assert_eq!(p.agent.recv_window_size(id), Some(INITIAL_WINDOW));
    assert_eq!(fill(&mut p, id), INITIAL_WINDOW as usize);
}

/// What a receiver made of `wire` fed in chunks of `cut` bytes: its events
/// and, per stream, the bytes read and whether it finished.
fn receive_in_chunks(wire: &[u8], cut: usize) -> (Vec<Event>, Vec<(Vec<u8>, bool)>) {
    let mut agent = Mux::new(Role::Agent, MuxConfig::default());
    for chunk in wire.chunks(cut) {
        agent.handle_input(chunk).expect("agent input");
    }
    let mut events = Vec::new();
    while let Some(e) = agent.poll_event() {
        events.push(e);
    }
    let streams = [StreamId(2), StreamId(4)]
        .into_iter()
        .map(|id| read_all(&mut agent, id))
        .collect();
    (events, streams)
}

#[test]
fn input_cut_anywhere_gives_the_same_streams_and_events() {
    let mut gateway = Mux::new(Role::Gateway, MuxConfig::default());
    let (a, b) = (gateway.open().unwrap(), gateway.open().unwrap());
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert_eq!(gateway.write(a, &big).unwrap(), big.len());
    gateway.send_control(br#"{"hello":1}"#).unwrap();
    assert_eq!(gateway.write(b, b"small").unwrap(), 5);
    gateway.ping(9);
    gateway.finish(b).unwrap();
    assert_eq!(gateway.write(a, b"tail").unwrap(), 4);
    let wire = gateway.pending_output().to_vec();

    let whole = receive_in_chunks(&wire, wire.len());
    let mut expected_a = big.clone();
    expected_a.extend_from_slice(b"tail");
    assert_eq!(whole.1[0], (expected_a, false));
    assert_eq!(whole.1[1], (b"small".to_vec(), true));
    assert!(
        whole
            .0
            .contains(&Event::Control(Bytes::from_static(br#"{"hello":1}"#)))
    );
    // Cut inside headers, inside payloads, across frames: the same result.
    for cut in [1, 5, 11, 12, 13, 4096, 32 * 1024 + 12, 32 * 1024 + 13] {
        assert_eq!(
            receive_in_chunks(&wire, cut),
            whole,
            "cut every {cut} bytes"
        );
    }
}

#[test]
fn a_frame_for_a_stream_released_halfway_is_dropped_and_the_next_frames_still_arrive() {
    let mut gateway = Mux::new(Role::Gateway, MuxConfig::default());
    let (a, b) = (gateway.open().unwrap(), gateway.open().unwrap());
    gateway.write(a, &[7u8; 20_000]).unwrap();
    gateway.write(b, b"after").unwrap();
    let wire = gateway.pending_output().to_vec();
    let mut agent = Mux::new(Role::Agent, MuxConfig::default());
    // Both opens and half of a's first data frame arrive.
    let half = 2 * HEADER_LEN + HEADER_LEN + 10_000;
    agent.handle_input(&wire[..half]).unwrap();
    assert_eq!(agent.readable_len(a), 10_000);
    agent.release(a);
    agent.handle_input(&wire[half..]).unwrap();
    assert_eq!(agent.readable_len(a), 0);
    assert_eq!(read_all(&mut agent, b), (b"after".to_vec(), false));
}
