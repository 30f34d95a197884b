use bytes::BytesMut;
use jumpgate_proto::session::{RefusalCode, SessionKind, SessionMsg, SessionRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{STEP, Tech, ended, pattern};
use crate::sessions::SessionError;

/// Echoes what it receives on one connection; once the client half-closes,
/// sends `trailer` and closes.
async fn echo_server(trailer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n]).await.unwrap();
        }
        conn.write_all(trailer).await.unwrap();
        conn.shutdown().await.unwrap();
    });
    port
}

fn forward(port: u16) -> SessionRequest {
    SessionRequest::Forward {
        host: "127.0.0.1".into(),
        port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_copies_both_ways_and_propagates_half_close() {
    let port = echo_server(b"bye").await;
    let (mut tech, served) = Tech::open(forward(port)).await;
    tech.accepted().await;
    // From here on the stream carries raw bytes.
    let early = std::mem::take(&mut tech.buf);
    assert!(early.is_empty());
    let data = pattern(1024 * 1024);
    let (mut r, mut w) = tokio::io::split(tech.io);
    let input = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in input.chunks(50_000) {
            w.write_all(chunk).await.unwrap();
        }
        // The echo server answers our half-close with its trailer: the other
        // direction must keep working after it.
        w.shutdown().await.unwrap();
        w
    });
    let mut got = Vec::new();
    tokio::time::timeout(STEP, r.read_to_end(&mut got))
        .await
        .expect("timed out reading the echo")
        .unwrap();
    let w = writer.await.unwrap();
    assert_eq!(got.len(), data.len() + 3);
    assert!(got[..data.len()] == data[..], "echo differs");
    assert_eq!(&got[data.len()..], b"bye");
    let summary = tokio::time::timeout(STEP, served)
        .await
        .expect("serve did not return once both directions ended")
        .unwrap()
        .unwrap();
    drop((r, w));
    assert_eq!(summary.kind, SessionKind::Forward);
    assert_eq!(summary.bytes_in, data.len() as u64);
    assert_eq!(summary.bytes_out, data.len() as u64 + 3);
}

#[tokio::test]
async fn forward_keeps_bytes_sent_along_with_open() {
    let port = echo_server(b"").await;
    let (mut tech, served) = Tech::connect(super::ctx());
    let mut first = BytesMut::new();
    SessionMsg::Open(forward(port)).encode(&mut first);
    first.extend_from_slice(b"ping");
    tech.send_raw(&first).await;
    tech.accepted().await;
    let mut got = std::mem::take(&mut tech.buf).to_vec();
    while got.len() < 4 {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(STEP, tech.io.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"ping");
    tech.io.shutdown().await.unwrap();
    let summary = ended(tech, served).await.unwrap();
    assert_eq!((summary.bytes_in, summary.bytes_out), (4, 4));
}

#[tokio::test]
async fn forward_to_a_closed_port_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (mut tech, served) = Tech::open(forward(port)).await;
    let refusal = tech.refused().await;
    assert_eq!(refusal.code, RefusalCode::ConnectFailed);
    assert!(refusal.message.contains("refused"), "{}", refusal.message);
    let err = ended(tech, served).await.unwrap_err();
    assert!(matches!(err, SessionError::Refused(_)), "{err:?}");
}

#[tokio::test]
async fn forward_to_an_unresolvable_host_is_refused() {
    let req = SessionRequest::Forward {
        host: "no-such-host.invalid".into(),
        port: 22,
    };
    // Resolution may hang without a resolver: the connect timeout covers it.
    let ctx = crate::sessions::SessionContext {
        connect_timeout: std::time::Duration::from_secs(2),
        ..super::ctx()
    };
    let (mut tech, served) = Tech::open_with(req, ctx).await;
    assert_eq!(tech.refused().await.code, RefusalCode::ConnectFailed);
    ended(tech, served).await.unwrap_err();
}
