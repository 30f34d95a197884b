//! The fallback when the `jumpgate agent` at hand has no desktop sessions
//! yet: Jumpgate's capture and encoding pipeline alone (`jumpgate_desktop`
//! `Capturer` → `jumpgate_codec::Encoder`), run as a child process of the
//! bench (`--desktop-client pipeline`) that serves one viewer at a time over
//! a loopback socket with the desktop session messages of the contract
//! (`DesktopInfo`, `Video` numbered from 1, `FrameAck` → `Encoder::on_acked`,
//! `Pointer` through XTEST, `Ping` → `Pong`). No gateway, no TLS, no agent:
//! the figures it gives are the pipeline's, not the product's path.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jumpgate_codec::{Config, Encoder};
use jumpgate_desktop::{Button, CaptureOptions, Capturer, DisplayOptions, Input};
use jumpgate_net::session::MsgStream;
use jumpgate_proto::desktop::{DesktopInfo, Video};
use jumpgate_proto::session::SessionMsg;
use tokio::net::TcpListener;

/// Serves viewers one after the other; prints the port first.
pub(crate) async fn serve(display: &str) -> Result<()> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", l.local_addr()?.port());
    std::io::stdout().flush()?;
    loop {
        let (s, _) = l.accept().await?;
        s.set_nodelay(true)?;
        if let Err(e) = session(s, display).await {
            eprintln!("pipeline session: {e:#}");
        }
    }
}

async fn session(s: tokio::net::TcpStream, display: &str) -> Result<()> {
    let target = DisplayOptions {
        display: Some(display.to_owned()),
        xauthority: None,
    }
    .resolve()?;
    let mut input = Input::new(&target)?;
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Vec<u8>>>(2);
    let (size_tx, size_rx) = std::sync::mpsc::channel();
    let capture = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || encode_loop(&target, &acked, &stop, &tx, &size_tx))
    };
    let (width, height) = tokio::task::spawn_blocking(move || size_rx.recv())
        .await?
        .context("capture did not start")?;
    let (mut r, mut w) = MsgStream::new(s).split();
    w.write_msg(&SessionMsg::DesktopInfo(DesktopInfo {
        width,
        height,
        monitors: Vec::new(),
        monitor: None,
        codec: "jumpgate-1".into(),
    }))
    .await?;
    let (mut seq, mut total) = (0u32, 0u64);
    let mut sent: HashMap<u32, u64> = HashMap::new();
    let mut buttons = 0u8;
    let result: Result<()> = async {
        loop {
            tokio::select! {
                packets = rx.recv() => {
                    let Some(packets) = packets else { return Ok(()) };
                    for data in packets {
                        seq += 1;
                        total += data.len() as u64;
                        sent.insert(seq, total);
                        w.queue(&SessionMsg::Video(Video { seq, data: data.into() }));
                    }
                    w.flush().await?;
                }
                msg = r.read_msg() => {
                    let Some(msg) = msg? else { return Ok(()) };
                    match msg {
                        SessionMsg::FrameAck(a) => {
                            if let Some(&bytes) = sent.get(&a.seq) {
                                acked.store(bytes, Ordering::Relaxed);
                                sent.retain(|&s, _| s > a.seq);
                            }
                        }
                        SessionMsg::Pointer(p) => {
                            input.move_to(i32::from(p.x), i32::from(p.y))?;
                            let changed = p.buttons ^ buttons;
                            if changed & 1 != 0 {
                                input.button(Button::Left, p.buttons & 1 != 0)?;
                            }
                            buttons = p.buttons;
                        }
                        SessionMsg::Ping(n) => w.write_msg(&SessionMsg::Pong(n)).await?,
                        _ => {}
                    }
                }
            }
        }
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    let _ = input.release_all();
    let _ = tokio::task::spawn_blocking(move || capture.join()).await;
    result
}

/// Capture → encode until `stop`: the loop an agent runs for a session.
fn encode_loop(
    target: &jumpgate_desktop::DisplayTarget,
    acked: &AtomicU64,
    stop: &AtomicBool,
    tx: &tokio::sync::mpsc::Sender<Vec<Vec<u8>>>,
    size: &std::sync::mpsc::Sender<(u32, u32)>,
) -> Result<()> {
    let mut cap = Capturer::new(target, CaptureOptions::default())?;
    // The agent's settings at its default 30 fps.
    let mut enc = Encoder::new(Config {
        video_budget: Duration::from_micros(500_000 / 30),
        ..Config::default()
    });
    let mut deferred = false;
    let mut told = false;
    while !stop.load(Ordering::Relaxed) {
        enc.on_acked(Instant::now(), acked.load(Ordering::Relaxed));
        let now = Instant::now();
        let wait = if deferred {
            Duration::from_millis(5)
        } else {
            enc.refine_due().map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(now)
            })
        }
        .min(Duration::from_millis(100));
        let dirty: Option<Vec<jumpgate_codec::Rect>> = match cap.next_update(wait)? {
            Some(u) if u.full => None,
            Some(u) => Some(
                u.rects
                    .iter()
                    .map(|r| {
                        jumpgate_codec::Rect::new(
                            r.x.max(0) as u32,
                            r.y.max(0) as u32,
                            r.width,
                            r.height,
                        )
                    })
                    .collect(),
            ),
            None if deferred || enc.refine_due().is_some_and(|t| t <= Instant::now()) => {
                Some(Vec::new())
            }
            None => continue,
        };
        let f = cap.frame();
        if !told {
            told = true;
            let _ = size.send((f.width, f.height));
        }
        let frame = jumpgate_codec::Frame::new(f.width, f.height, f.stride, &f.data)?;
        let (packets, stats) = enc.encode_with_stats(&frame, dirty.as_deref(), Instant::now())?;
        deferred = stats.deferred;
        if !packets.is_empty()
            && tx
                .blocking_send(
                    packets
                        .iter()
                        .map(jumpgate_codec::Packet::to_bytes)
                        .collect(),
                )
                .is_err()
        {
            break;
        }
    }
    Ok(())
}
