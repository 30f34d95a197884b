//! Outbound connections to the gateway, directly or through an HTTP proxy
//! (`CONNECT`), then TLS.

use std::fmt;
use std::io;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// `https://host[:port]` of a gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "https://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "https://{}:{}", self.host, self.port)
        }
    }
}

/// Error parsing a URL.
#[derive(Debug, thiserror::Error)]
#[error("invalid URL `{url}`: {reason}")]
pub struct UrlError {
    url: String,
    reason: &'static str,
}

/// Splits `host[:port]` (IPv6 in brackets) after the scheme.
fn host_port(url: &str, rest: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let err = |reason| UrlError {
        url: url.to_owned(),
        reason,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(err("missing host"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(err("junk after `]`")),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() {
        return Err(err("missing host"));
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| err("port is not a number 1-65535"))?,
        None => default_port,
    };
    if port == 0 {
        return Err(err("port is not a number 1-65535"));
    }
    Ok((host, port))
}

impl FromStr for ServerUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("https://").ok_or(UrlError {
            url: s.to_owned(),
            reason: "must start with https://",
        })?;
        let (host, port) = host_port(s, rest, 443)?;
        Ok(Self { host, port })
    }
}

/// An HTTP proxy that supports `CONNECT`: `http://[user:password@]host[:port]`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpProxy {
    pub host: String,
    pub port: u16,
    auth: Option<String>,
}

impl fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print proxy credentials.
        f.debug_struct("HttpProxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("auth", &self.auth.as_ref().map(|_| "MASKED"))
            .finish()
    }
}

impl FromStr for HttpProxy {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("http://").ok_or(UrlError {
            url: "(proxy)".to_owned(),
            reason: "proxy must start with http://",
        })?;
        let (auth, hostpart) = match rest.rsplit_once('@') {
            Some((a, h)) => (
                Some(base64::engine::general_purpose::STANDARD.encode(a.as_bytes())),
                h,
            ),
            None => (None, rest),
        };
        let (host, port) = host_port("(proxy)", hostpart, 3128)?;
        Ok(Self { host, port, auth })
    }
}

/// Time allowed for TCP connect + proxy exchange + TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a TCP connection to `host:port`, through `proxy` if given.
///
/// # Errors
/// Connection failure, or the proxy refused (its status line is in the error).
pub async fn connect_tcp(
    host: &str,
    port: u16,
    proxy: Option<&HttpProxy>,
) -> io::Result<TcpStream> {
    connect_tcp_from(host, port, proxy, None).await
}

/// [`connect_tcp`] from a chosen local address (a multi-homed machine,
/// or tests and benchmarks speaking as several loopback addresses).
///
/// # Errors
/// As [`connect_tcp`], or the local address cannot be bound.
pub async fn connect_tcp_from(
    host: &str,
    port: u16,
    proxy: Option<&HttpProxy>,
    source: Option<std::net::IpAddr>,
) -> io::Result<TcpStream> {
    let stream = match (proxy, source) {
        (None, Some(ip)) => {
            let target = tokio::net::lookup_host((host, port))
                .await?
                .find(|a| a.is_ipv4() == ip.is_ipv4())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"))
                })?;
            let sock = if ip.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            sock.bind(std::net::SocketAddr::new(ip, 0))?;
            sock.connect(target).await?
        }
        (None, None) => TcpStream::connect((host, port)).await?,
        (Some(p), _) => {
            let mut s = TcpStream::connect((p.host.as_str(), p.port)).await?;
            let target = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
            if let Some(auth) = &p.auth {
                req.push_str(&format!("Proxy-Authorization: Basic {auth}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes()).await?;
            read_connect_response(&mut s).await?;
            s
        }
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads the proxy's response head byte by byte: whatever follows belongs to
/// the tunnelled TLS session and must stay in the socket.
async fn read_connect_response(s: &mut TcpStream) -> io::Result<()> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "proxy response header too long",
            ));
        }
        let b = s.read_u8().await?;
        head.push(b);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if !status.starts_with('2') {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("proxy refused CONNECT: {status_line}"),
        ));
    }
    Ok(())
}

/// Connects and performs the TLS handshake with the gateway.
///
/// # Errors
/// Connection, proxy or TLS failure, or the overall timeout.
pub async fn connect_tls(
    server: &ServerUrl,
    tls: Arc<ClientConfig>,
    proxy: Option<&HttpProxy>,
) -> io::Result<TlsStream<TcpStream>> {
    connect_tls_from(server, tls, proxy, None).await
}

/// [`connect_tls`] from a chosen local address ([`connect_tcp_from`]).
///
/// # Errors
/// As [`connect_tls`].
pub async fn connect_tls_from(
    server: &ServerUrl,
    tls: Arc<ClientConfig>,
    proxy: Option<&HttpProxy>,
    source: Option<std::net::IpAddr>,
) -> io::Result<TlsStream<TcpStream>> {
    let fut = async {
        let tcp = connect_tcp_from(&server.host, server.port, proxy, source).await?;
        let name = ServerName::try_from(server.host.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Certificate problems are told in words, with what to do.
        TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| match crate::tls::explain(&e) {
                Some(text) => io::Error::new(e.kind(), text),
                None => e,
            })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out connecting to the gateway",
            )
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_parse() {
        let u: ServerUrl = "https://gw.example.com".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("gw.example.com", 443));
        let u: ServerUrl = "https://127.0.0.1:8443/".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8443));
        let u: ServerUrl = "https://[::1]:9".parse().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 9));
        assert_eq!(u.to_string(), "https://[::1]:9");
        for bad in [
            "http://x",
            "https://",
            "https://h:0",
            "https://h:99999",
            "https://[::1",
        ] {
            assert!(bad.parse::<ServerUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_urls_parse_and_hide_credentials() {
        let p: HttpProxy = "http://user:secret@proxy.local:3128".parse().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.local", 3128));
        let dbg = format!("{p:?}");
        assert!(dbg.contains("proxy.local"), "{dbg}");
        assert!(!dbg.contains("secret"), "{dbg}");
        let p: HttpProxy = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(p.port, 8080);
        assert!("socks5://x".parse::<HttpProxy>().is_err());
    }
}
