//! The two viewers the desktop benchmark drives the same way: an RFB client
//! of x11vnc ([`super::rfb`]) and a Jumpgate desktop session (the client
//! crate's session path, as `jg` opens it). Each runs a reader task that
//! applies every update to its picture as it arrives (the RFB framebuffer,
//! or `jumpgate_codec::Canvas` for Jumpgate) and answers like a real viewer
//! (an incremental update request / a `FrameAck` per `Video`); the bench
//! asks it for counts and waits for the picture to meet a condition
//! ("equals this screen", "this pixel turned blue"), timed at the moment
//! the update that met it was drawn.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use jumpgate_codec::{Canvas, Packet};
use jumpgate_net::session::{Answer, MsgStream};
use jumpgate_proto::desktop::{FrameAck, InputState, Pointer};
use jumpgate_proto::session::{SessionKind, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::rfb;
use super::xclients;

/// Counts the bytes crossing a stream each way.
#[derive(Debug)]
pub(crate) struct Counting<S> {
    inner: S,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The viewer's picture.
#[derive(Debug)]
enum Picture {
    Rfb(rfb::Framebuffer),
    Canvas(Canvas),
}

impl Picture {
    /// BGRx pixels (`width * 4` bytes per row), width, height.
    fn view(&self) -> (&[u8], u32, u32) {
        match self {
            Picture::Rfb(fb) => (&fb.pixels, fb.width, fb.height),
            Picture::Canvas(c) => (c.pixels(), c.width(), c.height()),
        }
    }
}

/// A condition on the picture: pixels, width, height.
pub(crate) type Check = Box<dyn FnMut(&[u8], u32, u32) -> bool + Send>;

/// What a viewer counted so far.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    /// RFB: `FramebufferUpdate` messages; Jumpgate: `Video` messages.
    pub(crate) updates: u64,
    /// Pixels drawn by updates (rectangles, summed).
    pub(crate) area: u64,
    /// Distinct painter frames seen (marker changes).
    pub(crate) frames: u64,
    /// Painter frames never shown: gaps in the marker numbers between
    /// two frames seen.
    pub(crate) skipped: u64,
    /// Updates after which the marker did not read back (a torn or
    /// blurred picture, or no painter on screen).
    pub(crate) unreadable: u64,
    /// Jumpgate: video frames and lossless tiles among the updates.
    pub(crate) video: u64,
    pub(crate) tiles: u64,
}

#[derive(Default)]
struct State {
    picture: Option<Picture>,
    counts: Counts,
    last_update: Option<Instant>,
    marker: Option<u16>,
    probe: Option<(Check, oneshot::Sender<Instant>)>,
    pings: HashMap<u64, Instant>,
    rtts: Vec<f64>,
    /// The last `ControlState` (Jumpgate) and when it arrived.
    control: Option<(InputState, Instant)>,
    ended: Option<String>,
}

impl State {
    /// After an update was drawn at `at`.
    fn drawn(&mut self, at: Instant) {
        self.last_update = Some(at);
        let Some(picture) = &self.picture else {
            return;
        };
        let (px, w, h) = picture.view();
        if w > 0 {
            match xclients::read_marker(px, w as usize * 4) {
                Some(m) if self.marker != Some(m) => {
                    if let Some(p) = self.marker {
                        // Frame numbers are modulo 4096 and only grow.
                        self.counts.skipped += u64::from(m.wrapping_sub(p).wrapping_sub(1) & 0xfff);
                    }
                    self.marker = Some(m);
                    self.counts.frames += 1;
                }
                Some(_) => {}
                None => self.counts.unreadable += 1,
            }
        }
        if let Some((check, _)) = &mut self.probe
            && check(px, w, h)
            && let Some((_, tx)) = self.probe.take()
        {
            let _ = tx.send(at);
        }
    }
}

/// A session's byte stream: through the gateway, or straight to the
/// pipeline child ([`super::pipeline`]).
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}
type SessionIo = Counting<Box<dyn Io>>;

enum Writer {
    Rfb(tokio::sync::Mutex<Counting<tokio::net::tcp::OwnedWriteHalf>>),
    Jumpgate(tokio::sync::Mutex<MsgStream<WriteHalf<SessionIo>>>),
}

/// A connected viewer (see the module documentation).
pub(crate) struct Viewer {
    state: Arc<Mutex<State>>,
    writer: Arc<Writer>,
    read: Arc<AtomicU64>,
    written: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    next_ping: u64,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").finish_non_exhaustive()
    }
}

/// A pending [`Viewer::expect`].
pub(crate) struct Expect {
    ready: Option<Instant>,
    rx: Option<oneshot::Receiver<Instant>>,
    state: Arc<Mutex<State>>,
}

impl Expect {
    /// When the update that met the condition was drawn (the last update
    /// before the wait began, if the condition held already).
    pub(crate) async fn wait(self, limit: Duration) -> Result<Instant> {
        if let Some(at) = self.ready {
            return Ok(at);
        }
        let Some(rx) = self.rx else {
            bail!("nothing to wait for");
        };
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(at)) => Ok(at),
            _ => {
                let mut st = lock(&self.state);
                st.probe = None;
                match &st.ended {
                    Some(why) => bail!("the viewer stopped: {why}"),
                    None => bail!("not met within {limit:?}"),
                }
            }
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Viewer {
    /// An RFB viewer of the VNC server on `port` (loopback).
    pub(crate) async fn rfb(port: u16) -> Result<Viewer> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, written) = (Arc::default(), Arc::default());
        let (r, w) = stream.into_split();
        let mut r = Counting {
            inner: tokio::io::BufReader::with_capacity(256 * 1024, r),
            read: Arc::clone(&read),
            written: Arc::new(AtomicU64::new(0)),
        };
        let mut w = Counting {
            inner: w,
            read: Arc::new(AtomicU64::new(0)),
            written: Arc::clone(&written),
        };
        let mut both = tokio::io::join(&mut r, &mut w);
        let init = rfb::handshake(&mut both).await?;
        let (width, height) = (init.width, init.height);
        w.write_all(&rfb::update_request(false, width, height))
            .await?;
        let state = Arc::new(Mutex::new(State {
            picture: Some(Picture::Rfb(rfb::Framebuffer::new(
                u32::from(width),
                u32::from(height),
            ))),
            ..State::default()
        }));
        let writer = Arc::new(Writer::Rfb(tokio::sync::Mutex::new(w)));
        let task = tokio::spawn(rfb_reader(
            rfb::Reader::new(r),
            Arc::clone(&state),
            Arc::clone(&writer),
        ));
        Ok(Viewer {
            state,
            writer,
            read,
            written,
            task,
            next_ping: 1,
        })
    }

    /// A Jumpgate desktop session on `endpoint` with control (the path
    /// `jg` takes: the client crate's `connect`, `Open(Desktop)`).
    pub(crate) async fn jumpgate(
        client: &jumpgate_client::Client,
        endpoint: &str,
    ) -> Result<Viewer> {
        let io = client.connect(endpoint, SessionKind::Desktop).await?;
        let (read, written) = (Arc::default(), Arc::default());
        let io = Counting {
            inner: Box::new(io) as Box<dyn Io>,
            read: Arc::clone(&read),
            written: Arc::clone(&written),
        };
        let mut s = MsgStream::new(io);
        let answer = s
            .open(SessionRequest::Desktop {
                control: true,
                clipboard: false,
                monitor: None,
                consent: Default::default(),
                technician: String::new(),
                codecs: Some(
                    jumpgate_proto::desktop::codec::ALL
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect(),
                ),
            })
            .await
            .map_err(|e| anyhow::anyhow!("desktop session: {e}"))?;
        if let Answer::Refused(r) = answer {
            bail!("desktop session refused: {}", r.message);
        }
        Ok(Self::session(s, read, written))
    }

    /// A viewer of the pipeline child on `port` (no gateway, no `Open`).
    pub(crate) async fn pipeline(port: u16) -> Result<Viewer> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (read, written) = (Arc::default(), Arc::default());
        let io = Counting {
            inner: Box::new(stream) as Box<dyn Io>,
            read: Arc::clone(&read),
            written: Arc::clone(&written),
        };
        Ok(Self::session(MsgStream::new(io), read, written))
    }

    fn session(s: MsgStream<SessionIo>, read: Arc<AtomicU64>, written: Arc<AtomicU64>) -> Viewer {
        let (r, w) = s.split();
        let state = Arc::new(Mutex::new(State {
            picture: Some(Picture::Canvas(Canvas::new())),
            ..State::default()
        }));
        let writer = Arc::new(Writer::Jumpgate(tokio::sync::Mutex::new(w)));
        let task = tokio::spawn(jumpgate_reader(r, Arc::clone(&state), Arc::clone(&writer)));
        Viewer {
            state,
            writer,
            read,
            written,
            task,
            next_ping: 1,
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut c = lock(&self.state).counts;
        c.bytes_in = self.read.load(Ordering::Relaxed);
        c.bytes_out = self.written.load(Ordering::Relaxed);
        c
    }

    /// Why the reader stopped, if it did.
    pub(crate) fn ended(&self) -> Option<String> {
        lock(&self.state).ended.clone()
    }

    /// Starts waiting until `check` holds for the picture (checked now and
    /// after every update drawn from now on; one at a time).
    pub(crate) fn expect(&self, mut check: Check) -> Expect {
        let mut st = lock(&self.state);
        if let Some(p) = &st.picture {
            let (px, w, h) = p.view();
            if w > 0 && check(px, w, h) {
                return Expect {
                    ready: Some(st.last_update.unwrap_or_else(Instant::now)),
                    rx: None,
                    state: Arc::clone(&self.state),
                };
            }
        }
        let (tx, rx) = oneshot::channel();
        st.probe = Some((check, tx));
        Expect {
            ready: None,
            rx: Some(rx),
            state: Arc::clone(&self.state),
        }
    }

    /// A copy of the picture (pixels, width, height).
    pub(crate) fn picture(&self) -> Option<(Vec<u8>, u32, u32)> {
        let st = lock(&self.state);
        st.picture.as_ref().map(|p| {
            let (px, w, h) = p.view();
            (px.to_vec(), w, h)
        })
    }

    /// The pointer at (x, y) with the left button down or up.
    pub(crate) async fn pointer(&self, x: u16, y: u16, down: bool) -> Result<()> {
        match &*self.writer {
            Writer::Rfb(w) => {
                let mut w = w.lock().await;
                w.write_all(&rfb::pointer_event(u8::from(down), x, y))
                    .await?;
                w.flush().await?;
            }
            Writer::Jumpgate(w) => {
                let msg = SessionMsg::Pointer(Pointer {
                    x,
                    y,
                    buttons: u8::from(down),
                });
                w.lock().await.write_msg(&msg).await?;
            }
        }
        Ok(())
    }

    /// The last `ControlState` and when it arrived (Jumpgate).
    pub(crate) fn control(&self) -> Option<(InputState, Instant)> {
        lock(&self.state).control
    }

    /// Sends `msg` on a Jumpgate session (RFB: nothing).
    pub(crate) async fn send(&self, msg: &SessionMsg) -> Result<()> {
        if let Writer::Jumpgate(w) = &*self.writer {
            w.lock().await.write_msg(msg).await?;
        }
        Ok(())
    }

    /// Sends a `Ping` (Jumpgate only; RFB has no such message).
    pub(crate) async fn ping(&mut self) -> Result<()> {
        if let Writer::Jumpgate(w) = &*self.writer {
            let n = self.next_ping;
            self.next_ping += 1;
            lock(&self.state).pings.insert(n, Instant::now());
            w.lock().await.write_msg(&SessionMsg::Ping(n)).await?;
        }
        Ok(())
    }

    /// Round trips (seconds) measured since the last call.
    pub(crate) fn take_rtts(&self) -> Vec<f64> {
        std::mem::take(&mut lock(&self.state).rtts)
    }

    /// Closes the connection.
    pub(crate) async fn close(self) {
        match &*self.writer {
            Writer::Rfb(w) => {
                let _ = w.lock().await.shutdown().await;
            }
            Writer::Jumpgate(w) => {
                let _ = w.lock().await.shutdown().await;
            }
        }
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn rfb_reader(
    mut r: rfb::Reader<Counting<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>>,
    state: Arc<Mutex<State>>,
    writer: Arc<Writer>,
) {
    let why = async {
        loop {
            let rfb::ServerMsg::Update(rects) = r.next().await? else {
                continue;
            };
            let size = {
                let mut st = lock(&state);
                let Some(Picture::Rfb(fb)) = &mut st.picture else {
                    bail!("no framebuffer");
                };
                for (h, data) in &rects {
                    r.apply(fb, h, data)?;
                }
                let size = (fb.width as u16, fb.height as u16);
                st.counts.updates += 1;
                st.counts.area += rects
                    .iter()
                    .filter(|(h, _)| h.encoding >= 0)
                    .map(|(h, _)| h.area())
                    .sum::<u64>();
                st.drawn(Instant::now());
                size
            };
            // Like any viewer: the next incremental request once this
            // update is drawn.
            if let Writer::Rfb(w) = &*writer {
                let mut w = w.lock().await;
                w.write_all(&rfb::update_request(true, size.0, size.1))
                    .await?;
                w.flush().await?;
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    }
    .await;
    if let Err(e) = why {
        lock(&state).ended = Some(format!("{e:#}"));
    }
}

async fn jumpgate_reader(
    mut r: MsgStream<tokio::io::ReadHalf<SessionIo>>,
    state: Arc<Mutex<State>>,
    writer: Arc<Writer>,
) {
    let why: Result<String> = async {
        loop {
            let Some(msg) = r.read_msg().await? else {
                return Ok("the session ended".to_owned());
            };
            match msg {
                SessionMsg::Video(v) => {
                    let packet = Packet::parse(&v.data)?;
                    {
                        let mut st = lock(&state);
                        let Some(Picture::Canvas(canvas)) = &mut st.picture else {
                            bail!("no canvas");
                        };
                        canvas.apply(&packet)?;
                        st.counts.updates += 1;
                        match &packet {
                            Packet::Video { rects, .. } => {
                                st.counts.video += 1;
                                st.counts.area += rects
                                    .iter()
                                    .map(|r| u64::from(r.w) * u64::from(r.h))
                                    .sum::<u64>();
                            }
                            Packet::Tile { rect, .. } => {
                                st.counts.tiles += 1;
                                st.counts.area += u64::from(rect.w) * u64::from(rect.h);
                            }
                            Packet::StreamStart { .. } => {}
                        }
                        st.drawn(Instant::now());
                    }
                    if let Writer::Jumpgate(w) = &*writer {
                        w.lock()
                            .await
                            .write_msg(&SessionMsg::FrameAck(FrameAck { seq: v.seq }))
                            .await?;
                    }
                }
                SessionMsg::Pong(n) => {
                    let mut st = lock(&state);
                    if let Some(t) = st.pings.remove(&n) {
                        st.rtts.push(t.elapsed().as_secs_f64());
                    }
                }
                SessionMsg::Closed { reason } => return Ok(format!("closed: {reason}")),
                SessionMsg::ControlState(c) => {
                    lock(&state).control = Some((c.input, Instant::now()));
                    if c.input == InputState::Ended {
                        return Ok(format!("control state {:?}: {}", c.input, c.message));
                    }
                }
                _ => {}
            }
        }
    }
    .await;
    lock(&state).ended = Some(match why {
        Ok(s) => s,
        Err(e) => format!("{e:#}"),
    });
}

/// Whether two BGRx pictures show the same colours (the fourth byte is
/// padding on both sides and not compared).
pub(crate) fn same_rgb(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.chunks_exact(4)
            .zip(b.chunks_exact(4))
            .all(|(p, q)| p[..3] == q[..3])
}

/// Pixels whose colours differ (diagnostics).
pub(crate) fn differing(a: &[u8], b: &[u8]) -> usize {
    a.chunks_exact(4)
        .zip(b.chunks_exact(4))
        .filter(|(p, q)| p[..3] != q[..3])
        .count()
}

/// A check: the picture equals `reference` (same size, same colours).
pub(crate) fn equals(reference: Arc<Vec<u8>>, width: u32, height: u32) -> Check {
    Box::new(move |px, w, h| (w, h) == (width, height) && same_rgb(px, &reference))
}

/// A check: pixel (x, y) is within `tolerance` of `rgb` (0xRRGGBB) on
/// every channel.
pub(crate) fn pixel_near(x: u32, y: u32, rgb: u32, tolerance: u8) -> Check {
    Box::new(move |px, w, h| {
        if x >= w || y >= h {
            return false;
        }
        let at = (y as usize * w as usize + x as usize) * 4;
        let want = [rgb as u8, (rgb >> 8) as u8, (rgb >> 16) as u8];
        px[at..at + 3]
            .iter()
            .zip(want)
            .all(|(&a, b)| a.abs_diff(b) <= tolerance)
    })
}
