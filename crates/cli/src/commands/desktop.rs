//! `jg desktop ENDPOINT --screenshot FILE.png [--monitor N] [--timeout SECS]`:
//! one exact picture of an endpoint's screen, for scripts.
//!
//! Opens a view-only desktop session (the same permission — `desktop-view`
//! — and the same consent rules as the console), draws the agent's packets
//! on a [`Canvas`] and acknowledges them (`FrameAck`), and writes the PNG
//! once the picture is complete and pixel-exact: after the stream's first
//! keyframe, as soon as no update has come for [`QUIET`] (the agent's
//! lossless refinement of what video drew is the last thing it sends for a
//! still screen). A screen that never stops changing is written as it is
//! when the timeout comes, with a warning.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use jumpgate_client::Client;
use jumpgate_codec::{Canvas, Packet};
use jumpgate_net::session::MsgStream;
use jumpgate_proto::desktop::{DesktopInfo, FrameAck, InputState, codec};
use jumpgate_proto::session::{RefusalCode, SessionKind, SessionMsg, SessionRequest};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::errors::{GatewayClosed, Refused};
use crate::session_io::{self, recv};

/// No update for this long after the first keyframe: the screen is complete.
pub(crate) const QUIET: Duration = Duration::from_secs(1);

/// What the screenshot state machine knows so far.
#[derive(Debug)]
pub(crate) struct Shot {
    canvas: Canvas,
    /// The monitor asked for, checked against the endpoint's.
    monitor: Option<u32>,
    info: Option<DesktopInfo>,
    /// The current stream's keyframe has been drawn.
    keyframe: bool,
    last_update: Option<Instant>,
    quiet: Duration,
}

impl Shot {
    pub(crate) fn new(monitor: Option<u32>, quiet: Duration) -> Shot {
        Shot {
            canvas: Canvas::new(),
            monitor,
            info: None,
            keyframe: false,
            last_update: None,
            quiet,
        }
    }

    /// Takes one message from the agent; answers the `Video` sequence
    /// number to acknowledge, if any.
    pub(crate) fn on_msg(&mut self, msg: SessionMsg, now: Instant) -> anyhow::Result<Option<u32>> {
        match msg {
            SessionMsg::ControlState(c) if c.input == InputState::Ended => {
                bail!(
                    "the session was ended at the endpoint: {}",
                    say(&c.message, "the user ended the session")
                );
            }
            SessionMsg::DesktopInfo(info) => {
                if !codec::ALL.contains(&info.codec.as_str()) {
                    bail!(
                        "the endpoint sends the screen in codec {:?}, which was not offered",
                        info.codec.chars().take(32).collect::<String>()
                    );
                }
                if let Some(want) = self.monitor
                    && !info.monitors.iter().any(|m| m.id == want)
                {
                    let list: Vec<String> = info
                        .monitors
                        .iter()
                        .map(|m| format!("{} ({}, {}x{})", m.id, m.name, m.width, m.height))
                        .collect();
                    bail!(
                        "the endpoint has no monitor {want}; its monitors: {}",
                        if list.is_empty() {
                            "none".to_owned()
                        } else {
                            list.join(", ")
                        }
                    );
                }
                if self.info.as_ref().is_none_or(|i| {
                    (i.width, i.height, i.monitor) != (info.width, info.height, info.monitor)
                }) {
                    // A new stream of the new size follows.
                    self.keyframe = false;
                }
                self.info = Some(info);
            }
            SessionMsg::Video(v) => {
                let packet = Packet::parse(&v.data).context("a malformed screen update")?;
                match &packet {
                    Packet::StreamStart { .. } => self.keyframe = false,
                    Packet::Video { keyframe: true, .. } => self.keyframe = true,
                    _ => {}
                }
                self.canvas
                    .apply(&packet)
                    .context("cannot draw a screen update")?;
                self.last_update = Some(now);
                return Ok(Some(v.seq));
            }
            SessionMsg::Closed { reason } => return Err(GatewayClosed { reason }.into()),
            // Pointer, cursor shapes, pongs: not part of the picture.
            _ => {}
        }
        Ok(None)
    }

    /// A whole picture has been drawn (it may still be refined).
    pub(crate) fn has_picture(&self) -> bool {
        self.keyframe && self.canvas.width() > 0
    }

    /// When the picture is complete, if nothing else arrives.
    pub(crate) fn complete_at(&self) -> Option<Instant> {
        if !self.has_picture() {
            return None;
        }
        self.last_update.map(|t| t + self.quiet)
    }

    pub(crate) fn canvas(&self) -> &Canvas {
        &self.canvas
    }
}

fn say<'a>(message: &'a str, default: &'a str) -> &'a str {
    if message.is_empty() { default } else { message }
}

/// Options of `jg desktop`.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) screenshot: &'a Path,
    pub(crate) monitor: Option<u32>,
    pub(crate) timeout: Duration,
}

pub(crate) async fn screenshot(client: &Client, o: &Options<'_>) -> anyhow::Result<()> {
    let deadline = Instant::now() + o.timeout;
    let endpoint = o.endpoint;
    let timed_out = || {
        anyhow!(
            "no answer from {endpoint} within {} s (see --timeout)",
            o.timeout.as_secs()
        )
    };
    let mut io = MsgStream::new(
        tokio::time::timeout_at(deadline, client.connect(endpoint, SessionKind::Desktop))
            .await
            .map_err(|_| timed_out())?
            .with_context(|| format!("cannot open a desktop session on {endpoint}"))?,
    );
    let req = SessionRequest::Desktop {
        control: false,
        clipboard: false,
        monitor: o.monitor,
        consent: Default::default(),
        technician: String::new(),
        // `Canvas` draws every codec, reduced-size pictures included.
        codecs: Some(codec::ALL.iter().map(|c| (*c).to_owned()).collect()),
    };
    match tokio::time::timeout_at(deadline, session_io::open(&mut io, req)).await {
        Err(_) => return Err(timed_out()),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            if let Some(Refused(r)) = e.downcast_ref::<Refused>() {
                if r.code == RefusalCode::ConsentDenied {
                    bail!("no screenshot of {endpoint}: {}", r.message);
                }
                bail!("{endpoint} refused the desktop session: {}", r.message);
            }
            return Err(e.context(format!("cannot open a desktop session on {endpoint}")));
        }
    }
    let shot = capture(io, o.monitor, QUIET, deadline)
        .await
        .with_context(|| format!("screenshot of {endpoint}"))?;
    if !shot.complete {
        eprintln!(
            "jg: warning: the screen of {endpoint} kept changing for {} s; wrote the latest picture",
            o.timeout.as_secs()
        );
    }
    write_png(shot.shot.canvas(), o.screenshot)?;
    eprintln!(
        "screenshot of {endpoint} ({}x{}) written to {}",
        shot.shot.canvas().width(),
        shot.shot.canvas().height(),
        o.screenshot.display()
    );
    Ok(())
}

/// `jg watch SESSION --screenshot FILE`: one picture of someone's live
/// desktop session, as a watcher gets it (from the next stream start on;
/// the gateway ignores a watcher's acknowledgements).
pub(crate) async fn watch_screenshot(
    client: &Client,
    id: &str,
    file: &Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let timed_out = || {
        anyhow!(
            "no picture of session {id} within {} s (see --timeout)",
            timeout.as_secs()
        )
    };
    let mut io = MsgStream::new(
        tokio::time::timeout_at(deadline, client.watch_session(id))
            .await
            .map_err(|_| timed_out())?
            .with_context(|| format!("cannot watch session {id}"))?,
    );
    match tokio::time::timeout_at(deadline, recv(&mut io)).await {
        Err(_) => return Err(timed_out()),
        Ok(Ok(Some(SessionMsg::Accepted(_)))) => {}
        Ok(Ok(other)) => bail!(
            "the gateway answered the watch with {}",
            other
                .as_ref()
                .map_or("the end of the stream", SessionMsg::name)
        ),
        Ok(Err(e)) => return Err(e.context(format!("cannot watch session {id}"))),
    }
    let shot = capture(io, None, QUIET, deadline)
        .await
        .with_context(|| format!("screenshot of session {id} (is it a desktop session?)"))?;
    if !shot.complete {
        eprintln!(
            "jg: warning: the screen of session {id} kept changing for {} s; wrote the latest picture",
            timeout.as_secs()
        );
    }
    write_png(shot.shot.canvas(), file)?;
    eprintln!(
        "screenshot of session {id} ({}x{}) written to {}",
        shot.shot.canvas().width(),
        shot.shot.canvas().height(),
        file.display()
    );
    Ok(())
}

/// The outcome of [`capture`].
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) shot: Shot,
    /// `false`: the deadline came while the screen still changed.
    pub(crate) complete: bool,
}

/// Reads an accepted desktop session until the picture is complete (or
/// the deadline, with a picture), acknowledging every update.
pub(crate) async fn capture<S>(
    io: MsgStream<S>,
    monitor: Option<u32>,
    quiet: Duration,
    deadline: Instant,
) -> anyhow::Result<Captured>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = io.split();
    let (ack_tx, ack_rx) = watch::channel(0u32);
    let writer = tokio::spawn(send_acks(wr, ack_rx));
    let _stop = AbortOnDrop(writer);
    let mut shot = Shot::new(monitor, quiet);
    loop {
        let wake = shot.complete_at().map_or(deadline, |t| t.min(deadline));
        tokio::select! {
            m = recv(&mut rd) => match m? {
                Some(msg) => {
                    if let Some(seq) = shot.on_msg(msg, Instant::now())? {
                        ack_tx.send_replace(seq);
                    }
                }
                None => bail!("the endpoint ended the session before the screen arrived"),
            },
            () = tokio::time::sleep_until(wake) => {}
        }
        let now = Instant::now();
        if shot.complete_at().is_some_and(|t| t <= now) {
            return Ok(Captured {
                shot,
                complete: true,
            });
        }
        if now >= deadline {
            if shot.has_picture() {
                return Ok(Captured {
                    shot,
                    complete: false,
                });
            }
            bail!("no picture of the screen arrived in time (see --timeout)");
        }
    }
}

/// Acknowledges the latest drawn update whenever it changes.
async fn send_acks<W: AsyncWrite + Unpin>(mut wr: MsgStream<W>, mut latest: watch::Receiver<u32>) {
    while latest.changed().await.is_ok() {
        let seq = *latest.borrow_and_update();
        if let Err(e) = wr.write_msg(&SessionMsg::FrameAck(FrameAck { seq })).await {
            tracing::debug!(error = %e, "sending an acknowledgement failed");
            return;
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The canvas as an 8-bit RGB PNG.
pub(crate) fn png_bytes(canvas: &Canvas) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (canvas.width(), canvas.height());
    let rgb: Vec<u8> = canvas
        .pixels()
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().context("encoding the PNG")?;
    wr.write_image_data(&rgb).context("encoding the PNG")?;
    wr.finish().context("encoding the PNG")?;
    Ok(out)
}

/// Writes the PNG whole or not at all.
fn write_png(canvas: &Canvas, path: &Path) -> anyhow::Result<()> {
    let png = png_bytes(canvas)?;
    let mut tmp = super::recordings::temp_beside(path)?;
    std::io::Write::write_all(&mut tmp, &png)
        .with_context(|| format!("cannot write {}", path.display()))?;
    super::recordings::persist(tmp, path)
}

#[cfg(test)]
#[path = "desktop_tests.rs"]
mod tests;
