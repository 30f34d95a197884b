use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::timeout;

use super::*;

struct Ends {
    gateway: MuxHandle,
    gateway_events: MuxEvents,
    agent: MuxHandle,
    agent_events: MuxEvents,
}

fn pair_with(gw_cfg: DriverConfig, agent_cfg: DriverConfig) -> Ends {
    let (a, b): (DuplexStream, DuplexStream) = tokio::io::duplex(64 * 1024);
    let (gateway, gateway_events, gd) = start(a, Role::Gateway, &[], gw_cfg).unwrap();
    let (agent, agent_events, ad) = start(b, Role::Agent, &[], agent_cfg).unwrap();
    tokio::spawn(gd);
    tokio::spawn(ad);
    Ends {
        gateway,
        gateway_events,
        agent,
        agent_events,
    }
}

fn pair() -> Ends {
    pair_with(DriverConfig::default(), DriverConfig::default())
}

async fn accept(events: &mut MuxEvents) -> MuxStream {
    loop {
        match timeout(Duration::from_secs(10), events.recv())
            .await
            .unwrap()
        {
            Some(MuxEvent::Stream(s)) => return s,
            Some(_) => continue,
            None => panic!("connection ended"),
        }
    }
}

#[tokio::test]
async fn echo_over_a_stream() {
    let mut e = pair();
    let mut out = e.gateway.open().unwrap();
    out.write_all(b"ping").await.unwrap();
    out.shutdown().await.unwrap();
    let mut inc = accept(&mut e.agent_events).await;
    let mut got = Vec::new();
    inc.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"ping");
    inc.write_all(b"pong").await.unwrap();
    inc.shutdown().await.unwrap();
    let mut back = Vec::new();
    out.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"pong");
}

#[tokio::test]
async fn bulk_transfer_is_intact() {
    let mut e = pair();
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let expected = data.clone();
    let mut out = e.gateway.open().unwrap();
    let writer = tokio::spawn(async move {
        out.write_all(&data).await.unwrap();
        out.shutdown().await.unwrap();
        out
    });
    let mut inc = accept(&mut e.agent_events).await;
    let mut got = Vec::new();
    timeout(Duration::from_secs(30), inc.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == expected, "payload corrupted");
    drop(writer.await.unwrap());
}

/// One stalled reader must not slow the other streams (issue #2), with the
/// real driver, wakers and a bounded pipe in between.
#[tokio::test]
async fn stalled_reader_does_not_block_other_streams() {
    let mut e = pair();
    let mut stalled = e.gateway.open().unwrap();
    let stalled_writer = tokio::spawn(async move {
        // Blocks forever once the window is full: nobody reads the other end.
        let _ = stalled.write_all(&vec![0u8; 4 * 1024 * 1024]).await;
    });
    let _stalled_reader = accept(&mut e.agent_events).await;

    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut s = e.gateway.open().unwrap();
        streams.push(tokio::spawn(async move {
            s.write_all(&vec![9u8; 2 * 1024 * 1024]).await.unwrap();
            s.shutdown().await.unwrap();
            s
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..4 {
        let mut r = accept(&mut e.agent_events).await;
        readers.push(tokio::spawn(async move {
            let mut n = 0usize;
            let mut buf = vec![0u8; 65536];
            loop {
                let k = r.read(&mut buf).await.unwrap();
                if k == 0 {
                    return n;
                }
                n += k;
            }
        }));
    }
    for r in readers {
        let n = timeout(Duration::from_secs(30), r)
            .await
            .expect("stream stalled")
            .unwrap();
        assert_eq!(n, 2 * 1024 * 1024);
    }
    for s in streams {
        drop(s.await.unwrap());
    }
    assert!(
        !stalled_writer.is_finished(),
        "stalled stream must still be blocked"
    );
    stalled_writer.abort();
}

#[tokio::test]
async fn dropping_a_stream_resets_the_peer() {
    let mut e = pair();
    let out = e.gateway.open().unwrap();
    let mut inc = accept(&mut e.agent_events).await;
    drop(out);
    let mut buf = [0u8; 8];
    let err = timeout(Duration::from_secs(5), inc.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn closing_the_connection_fails_open_streams_and_reports_goaway() {
    let mut e = pair();
    let mut out = e.gateway.open().unwrap();
    let _inc = accept(&mut e.agent_events).await;
    e.gateway.close(go_away_code::REVOKED, "endpoint revoked");
    match timeout(Duration::from_secs(5), e.agent_events.recv())
        .await
        .unwrap()
    {
        Some(MuxEvent::GoAway { code, reason }) => {
            assert_eq!(code, go_away_code::REVOKED);
            assert_eq!(reason, "endpoint revoked");
        }
        other => panic!("expected go-away, got {other:?}"),
    }
    timeout(Duration::from_secs(5), e.gateway.closed())
        .await
        .unwrap();
    assert!(out.write_all(b"x").await.is_err());
    assert!(e.gateway.open().is_err());
    timeout(Duration::from_secs(5), e.agent.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn control_messages_arrive() {
    let mut e = pair();
    let info = Control::AgentInfo(jumpgate_proto::control::AgentInfo {
        hostname: "h".into(),
        ..Default::default()
    });
    e.agent.send_control(&info);
    match timeout(Duration::from_secs(5), e.gateway_events.recv())
        .await
        .unwrap()
    {
        Some(MuxEvent::Control(c)) => assert_eq!(c, info),
        other => panic!("expected control, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_keep_an_idle_connection_alive_and_silence_kills_it() {
    let cfg = |ping| DriverConfig {
        ping_interval: ping,
        idle_timeout: Duration::from_secs(30),
        ..DriverConfig::default()
    };
    // Agent pings every 10 s: the gateway (30 s idle timeout) keeps it.
    let e = pair_with(cfg(None), cfg(Some(Duration::from_secs(10))));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(!e.gateway.is_closed());
    assert!(!e.agent.is_closed());

    // Nobody pings: both ends time out.
    let e = pair_with(cfg(None), cfg(None));
    tokio::time::sleep(Duration::from_secs(31)).await;
    timeout(Duration::from_secs(5), e.gateway.closed())
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn idle_streams_give_back_their_buffers_on_the_heartbeats() {
    let cfg = |ping| DriverConfig {
        ping_interval: ping,
        idle_timeout: Duration::from_secs(3 * TRIM_INTERVAL.as_secs()),
        ..DriverConfig::default()
    };
    // The agent pings every 10 s; the gateway only listens (as in production).
    let mut e = pair_with(cfg(None), cfg(Some(Duration::from_secs(10))));
    // A burst from the agent, read out at the gateway: its stream keeps the
    // buffer while the burst lasts.
    let burst = async |e: &mut Ends| {
        let mut out = e.agent.open().unwrap();
        out.write_all(&vec![5u8; 200_000]).await.unwrap();
        let mut inc = accept(&mut e.gateway_events).await;
        let mut got = vec![0u8; 200_000];
        inc.read_exact(&mut got).await.unwrap();
        (out, inc)
    };
    // Whether the gateway's side of the stream still held a buffer: the
    // first trim only forgets that data came, the second gives it back.
    let still_held = |e: &Ends| {
        let mut st = e.gateway.shared.lock();
        st.mux.trim_idle() + st.mux.trim_idle() > 0
    };
    // The control, with no time passing: the buffer is held.
    let _first = burst(&mut e).await;
    assert!(still_held(&e));
    // Then idle for two intervals, heartbeats arriving: the driver gave it
    // back by itself.
    let _second = burst(&mut e).await;
    tokio::time::sleep(TRIM_INTERVAL * 2 + Duration::from_secs(10)).await;
    assert!(!e.gateway.is_closed());
    assert!(!still_held(&e));
}

#[tokio::test]
async fn garbage_input_ends_the_connection_with_a_protocol_error() {
    let (a, mut b) = tokio::io::duplex(1024);
    let (handle, _events, driver) = start(a, Role::Gateway, &[], DriverConfig::default()).unwrap();
    let task = tokio::spawn(driver);
    b.write_all(&[0xff; 12]).await.unwrap();
    let result = timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(DriverError::Protocol(_))),
        "{result:?}"
    );
    assert!(handle.is_closed());
    // The peer was told why.
    let mut buf = vec![0u8; 256];
    let n = b.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("unknown frame type"));
}

#[tokio::test(start_paused = true)]
async fn probe_tells_a_live_peer_from_a_silent_or_closed_one() {
    // A peer whose driver runs answers at once, also while it sends
    // heartbeats of its own (their pongs must not be mistaken for ours).
    let cfg = |ping| DriverConfig {
        ping_interval: ping,
        ..DriverConfig::default()
    };
    let e = pair_with(cfg(Some(Duration::from_millis(100))), cfg(None));
    for _ in 0..3 {
        assert!(e.gateway.probe(Duration::from_secs(2)).await);
        assert!(e.agent.probe(Duration::from_secs(2)).await);
    }
    assert!(e.gateway.shared.lock().probes.is_empty());

    // A peer that does not read (its driver is not running): no answer
    // within the deadline, and the waiting probe is forgotten.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (gateway, _events, gd) = start(a, Role::Gateway, &[], cfg(None)).unwrap();
    let (_agent, _agent_events, _stalled_driver) = start(b, Role::Agent, &[], cfg(None)).unwrap();
    tokio::spawn(gd);
    assert!(!gateway.probe(Duration::from_secs(2)).await);
    assert!(gateway.shared.lock().probes.is_empty());

    // A closed connection answers nothing, at once.
    e.gateway.close(go_away_code::SHUTDOWN, "bye");
    timeout(Duration::from_secs(5), e.gateway.closed())
        .await
        .unwrap();
    assert!(!e.gateway.probe(Duration::from_secs(3600)).await);
}
