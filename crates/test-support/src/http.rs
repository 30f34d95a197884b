//! Raw HTTP exchanges with a gateway, and small network peers (an echo
//! server, the proxy side of `CONNECT`).

use std::net::SocketAddr;

use crate::{Site, WAIT};

/// One HTTP exchange whatever the status: `(status, body)`.
pub async fn raw_call(
    client: &jumpgate_client::Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, body) = tokio::time::timeout(
        WAIT,
        client.raw(method.parse().unwrap(), path, content_type, body.to_vec()),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {path} hung"))
    .unwrap();
    (status.as_u16(), body.to_vec())
}

/// A hand-written HTTP/1.1 request over TLS to the gateway (what `curl -v`
/// would send, headers included): `(status, head, body)`. `request` is the
/// request line and headers without `Host`, `Connection` and the blank line.
pub async fn http_exchange(site: &Site, request: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let trust = jumpgate_net::tls::Trust::Pinned(site.gateway.fingerprint.parse().unwrap());
    let cfg = jumpgate_net::tls::client_config(&trust, &[b"http/1.1"]).unwrap();
    let url: jumpgate_net::dial::ServerUrl = site.gateway.url().parse().unwrap();
    let exchange = async {
        let mut tls = jumpgate_net::dial::connect_tls(&url, cfg, None)
            .await
            .unwrap();
        let head = format!(
            "{}\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            request.trim_end(),
            site.gateway.addr,
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(body).await.unwrap();
        let mut raw = Vec::new();
        // The gateway closes after answering (`Connection: close`); a TLS
        // close without close_notify still leaves the answer readable.
        let _ = tls.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{request} hung"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, head, raw[split + 4..].to_vec())
}

/// A TCP server on a loopback port that echoes every connection back.
pub async fn echo_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// The proxy side of an HTTP `CONNECT` on an accepted connection: reads
/// the request head, connects to its target and answers `200` (or `502`
/// when the target cannot be reached). Returns the connection to the
/// target, or `None` when the tunnel did not open.
pub async fn open_connect_tunnel(s: &mut tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.ok()?;
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .to_owned();
    let Ok(up) = tokio::net::TcpStream::connect(&target).await else {
        let _ = s.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return None;
    };
    s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .ok()?;
    Some(up)
}
