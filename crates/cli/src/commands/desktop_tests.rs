use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use jumpgate_codec::{Config, Encoder, Frame};
use jumpgate_proto::desktop::{ControlState, Monitor, Video};

use super::*;

/// A desktop with text-like detail: every pixel differs from its
/// neighbours, so video alone cannot be exact (BGRx).
fn pattern(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut px = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let i = ((y * w + x) * 4) as usize;
            let v = x.wrapping_mul(7) ^ y.wrapping_mul(13) ^ seed;
            px[i] = (v * 3) as u8;
            px[i + 1] = if (x / 8 + y / 8) % 2 == 0 { 250 } else { 20 };
            px[i + 2] = (x * 255 / w) as u8;
            px[i + 3] = 0;
        }
    }
    px
}

fn info(w: u32, h: u32) -> DesktopInfo {
    DesktopInfo {
        width: w,
        height: h,
        monitors: vec![Monitor {
            id: 0,
            name: "screen".into(),
            x: 0,
            y: 0,
            width: w,
            height: h,
            primary: true,
        }],
        monitor: None,
        codec: "jumpgate-1".into(),
    }
}

/// The encoder's packets for a still screen: the keyframe, then ticks
/// until the lossless refinement has nothing left (as the agent sends).
fn still_screen_packets(w: u32, h: u32, px: &[u8]) -> Vec<Vec<u8>> {
    let mut enc = Encoder::new(Config::default());
    let frame = Frame::new(w, h, w as usize * 4, px).unwrap();
    let mut now = StdInstant::now();
    let mut out: Vec<Vec<u8>> = enc
        .encode(&frame, None, now)
        .unwrap()
        .iter()
        .map(|p| p.to_bytes())
        .collect();
    for _ in 0..50 {
        now += Duration::from_millis(50);
        out.extend(
            enc.encode(&frame, Some(&[]), now)
                .unwrap()
                .iter()
                .map(|p| p.to_bytes()),
        );
        if enc.refine_due().is_none() {
            break;
        }
    }
    assert!(enc.refine_due().is_none(), "the refinement finished");
    out
}

fn rgb_of(px: &[u8]) -> Vec<u8> {
    px.chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}

fn decode_png(png_data: &[u8]) -> (u32, u32, Vec<u8>) {
    let dec = png::Decoder::new(std::io::Cursor::new(png_data));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn packets_become_an_exact_png_once_the_screen_is_quiet() {
    let (w, h) = (200, 120);
    let px = pattern(w, h, 1);
    let packets = still_screen_packets(w, h, &px);
    assert!(packets.len() >= 3, "stream start, keyframe and refinement");

    let quiet = Duration::from_secs(1);
    let mut shot = Shot::new(None, quiet);
    let t0 = Instant::now();
    shot.on_msg(
        SessionMsg::ControlState(ControlState {
            input: InputState::ViewOnly,
            message: "the user was notified".into(),
            note: None,
        }),
        t0,
    )
    .unwrap();
    shot.on_msg(SessionMsg::DesktopInfo(info(w, h)), t0)
        .unwrap();
    assert!(shot.complete_at().is_none());
    let mut acks = Vec::new();
    let mut now = t0;
    for (n, data) in packets.iter().enumerate() {
        now += Duration::from_millis(50);
        let seq = n as u32 + 1;
        let ack = shot
            .on_msg(
                SessionMsg::Video(Video {
                    seq,
                    data: Bytes::from(data.clone()),
                }),
                now,
            )
            .unwrap();
        acks.push(ack);
        if n == 0 {
            // Stream start alone: no picture yet.
            assert!(!shot.has_picture());
        }
    }
    assert_eq!(
        acks,
        (1..=packets.len() as u32).map(Some).collect::<Vec<_>>()
    );
    // Complete one quiet second after the last update, not before.
    assert_eq!(shot.complete_at(), Some(now + quiet));

    let png_data = png_bytes(shot.canvas()).unwrap();
    let (pw, ph, rgb) = decode_png(&png_data);
    assert_eq!((pw, ph), (w, h));
    assert!(rgb == rgb_of(&px), "the PNG is pixel-exact");
}

#[test]
fn a_new_stream_needs_its_own_keyframe_and_bad_input_is_named() {
    let (w, h) = (64, 64);
    let packets = still_screen_packets(w, h, &pattern(w, h, 2));
    let mut shot = Shot::new(None, Duration::from_secs(1));
    let now = Instant::now();
    let video = |seq: u32, d: &[u8]| {
        SessionMsg::Video(Video {
            seq,
            data: Bytes::copy_from_slice(d),
        })
    };
    shot.on_msg(video(1, &packets[0]), now).unwrap();
    shot.on_msg(video(2, &packets[1]), now).unwrap();
    assert!(shot.has_picture());
    // A new size is announced: the old picture no longer counts.
    shot.on_msg(SessionMsg::DesktopInfo(info(32, 32)), now)
        .unwrap();
    assert!(!shot.has_picture());
    assert!(shot.complete_at().is_none());

    // Monitor choice checked against the endpoint's list.
    let mut shot = Shot::new(Some(3), Duration::from_secs(1));
    let err = shot
        .on_msg(SessionMsg::DesktopInfo(info(10, 10)), now)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the endpoint has no monitor 3; its monitors: 0 (screen, 10x10)"
    );

    // The codec must be one that was offered (reduced-size pictures are).
    let mut shot = Shot::new(None, Duration::from_secs(1));
    let mut reduced = info(10, 10);
    reduced.codec = "jumpgate-2".into();
    shot.on_msg(SessionMsg::DesktopInfo(reduced), now).unwrap();
    let mut odd = info(10, 10);
    odd.codec = "jumpgate-9".into();
    let err = shot.on_msg(SessionMsg::DesktopInfo(odd), now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the endpoint sends the screen in codec \"jumpgate-9\", which was not offered"
    );

    let mut shot = Shot::new(None, Duration::from_secs(1));
    let err = shot.on_msg(video(1, &[9, 9]), now).unwrap_err();
    assert!(err.to_string().contains("malformed screen update"), "{err}");
    let err = shot
        .on_msg(
            SessionMsg::ControlState(ControlState {
                input: InputState::Ended,
                message: "the user ended the session".into(),
                note: None,
            }),
            now,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the session was ended at the endpoint: the user ended the session"
    );
}

/// The capture loop against a fake agent on an in-memory stream: updates
/// are acknowledged, and the picture is taken once the screen is quiet.
#[tokio::test]
async fn capture_acknowledges_updates_and_stops_when_quiet() {
    let (w, h) = (96, 64);
    let px = pattern(w, h, 3);
    let packets = still_screen_packets(w, h, &px);
    let n = packets.len() as u32;
    let (a, b) = tokio::io::duplex(1 << 20);
    let agent = tokio::spawn(async move {
        let (mut rd, mut wr) = MsgStream::new(b).split();
        wr.write_msg(&SessionMsg::ControlState(ControlState {
            input: InputState::ViewOnly,
            message: String::new(),
            note: None,
        }))
        .await
        .unwrap();
        wr.write_msg(&SessionMsg::DesktopInfo(info(w, h)))
            .await
            .unwrap();
        for (i, d) in packets.into_iter().enumerate() {
            wr.write_msg(&SessionMsg::Video(Video {
                seq: i as u32 + 1,
                data: Bytes::from(d),
            }))
            .await
            .unwrap();
        }
        // Acknowledgements until the last update's.
        let mut last = 0;
        while last < n {
            match recv(&mut rd).await.unwrap() {
                Some(SessionMsg::FrameAck(FrameAck { seq })) => {
                    assert!(seq > last, "acknowledgements only go forward");
                    last = seq;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Keep the session open: the viewer must stop by itself.
        (rd, wr)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = capture(
        MsgStream::new(a),
        None,
        Duration::from_millis(200),
        deadline,
    )
    .await
    .unwrap();
    assert!(got.complete);
    let _session = agent.await.unwrap();
    let (_, _, rgb) = decode_png(&png_bytes(got.shot.canvas()).unwrap());
    assert!(rgb == rgb_of(&px), "pixel-exact");

    // An agent that ends the stream before any picture: a clear error.
    let (a, b) = tokio::io::duplex(1024);
    drop(b);
    let err = capture(
        MsgStream::new(a),
        None,
        Duration::from_millis(200),
        deadline,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("before the screen arrived"),
        "{err}"
    );
}
