//! The gateway's outbound HTTP client: hyper (HTTP/1.1) over tokio-rustls.
//! Shared by the analytics OpenSearch writer and reader
//! (`analytics::opensearch`, one request per connection: [`Endpoint::call`])
//! and webhook deliveries (`notify::webhooks`, each subscription's worker
//! keeps its connection open between deliveries: [`Endpoint::call_kept`]),
//! so the gateway has one HTTP stack.
//!
//! Trust is the system's roots, a pinned certificate fingerprint, or a CA
//! given as PEM (a webhook subscription's own CA).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, header};
use jumpgate_net::tls::{Fingerprint, Trust};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Largest answer read.
const MAX_ANSWER: usize = 64 << 20;
/// A kept connection unused this long is closed rather than used again
/// (receivers close idle connections after a while; most wait longer).
pub(crate) const KEEP_IDLE: Duration = Duration::from_secs(30);

/// An open HTTP/1.1 connection to one endpoint, kept between requests
/// (keep-alive). Dropping it closes it.
pub(crate) struct Conn {
    tx: hyper::client::conn::http1::SendRequest<axum::body::Body>,
    driver: tokio::task::JoinHandle<()>,
    used: std::time::Instant,
}

impl Conn {
    /// Whether it sat unused longer than [`KEEP_IDLE`] or the other side
    /// closed it.
    pub(crate) fn stale(&self) -> bool {
        self.used.elapsed() >= KEEP_IDLE || self.tx.is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("used", &self.used).finish()
    }
}

/// Whose certificates an `https` endpoint must present.
pub(crate) enum TrustSpec<'a> {
    /// The operating system's roots.
    System,
    /// A certificate with this fingerprint (hex SHA-256) in the chain.
    Pinned(&'a str),
    /// Chains up to one of these CA certificates (PEM), host name checked.
    CaPem(&'a str),
}

/// Whether plain `http://` is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PlainHttp {
    /// Anywhere (the analytics store's operators chose it).
    Allowed,
    /// Only to a loopback address (tests, a receiver on the same host).
    LoopbackOnly,
}

/// Where a service is and how to reach it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path prefix (no trailing `/`; with the query when there is one).
    pub(crate) base: String,
    /// `None`: plain HTTP.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The URL for messages (no credentials).
    pub(crate) url: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).finish()
    }
}

/// The roots of a CA given as PEM.
///
/// # Errors
/// No certificate in the text, or one rustls refuses as a root.
pub(crate) fn ca_roots(pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("unreadable PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        n += 1;
    }
    if n == 0 {
        return Err("no CERTIFICATE block in the PEM text".into());
    }
    Ok(roots)
}

impl Endpoint {
    /// Parses `url` (`https://`, or `http://` as `plain` allows).
    ///
    /// # Errors
    /// A message naming what is wrong (the caller prefixes the key).
    pub(crate) fn parse(
        url: &str,
        trust: &TrustSpec<'_>,
        plain: PlainHttp,
    ) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|e| format!("`{url}`: {e}"))?;
        if !u.username().is_empty() || u.password().is_some() {
            return Err("credentials in the URL are not accepted".into());
        }
        let host = u
            .host_str()
            .ok_or_else(|| "no host".to_owned())?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match u.scheme() {
            "https" => Some(match trust {
                TrustSpec::System => {
                    jumpgate_net::tls::client_config(&Trust::SystemRoots, &[b"http/1.1"])
                        .map_err(|e| e.to_string())?
                }
                TrustSpec::Pinned(p) => jumpgate_net::tls::client_config(
                    &Trust::Pinned(
                        p.parse::<Fingerprint>()
                            .map_err(|_| format!("bad ca_fingerprint `{p}`"))?,
                    ),
                    &[b"http/1.1"],
                )
                .map_err(|e| e.to_string())?,
                TrustSpec::CaPem(pem) => {
                    let roots = ca_roots(pem)?;
                    let mut cfg =
                        rustls::ClientConfig::builder_with_provider(jumpgate_net::tls::provider())
                            .with_protocol_versions(jumpgate_net::tls::VERSIONS)
                            .map_err(|e| e.to_string())?
                            .with_root_certificates(roots)
                            .with_no_client_auth();
                    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Arc::new(cfg)
                }
            }),
            "http" => {
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if plain == PlainHttp::LoopbackOnly && !loopback {
                    return Err(format!(
                        "plain http:// is accepted only to a loopback address (not `{host}`): use https://"
                    ));
                }
                None
            }
            s => return Err(format!("scheme `{s}`: use https://")),
        };
        let port = u.port_or_known_default().unwrap_or(443);
        let mut base = u.path().trim_end_matches('/').to_owned();
        if let Some(q) = u.query() {
            base = format!("{}?{q}", u.path());
        }
        Ok(Self {
            host,
            port,
            base,
            tls,
            url: format!(
                "{}://{}:{port}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.path()
            ),
        })
    }

    /// One request to `base` + `path` on a fresh connection, within
    /// `timeout`: (status, body).
    ///
    /// # Errors
    /// Unreachable, TLS refused, no answer in time (a message for people).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        self.call_kept(&mut None, method, path, headers, body, timeout)
            .await
    }

    /// One request like [`Self::call`], on the connection `kept` holds when
    /// it is still open (and not stale), else on a new one; the connection
    /// is left in `kept` for the next request when the exchange completed
    /// (whatever its status), and closed on any error or timeout. A kept
    /// connection that fails before an answer came (the receiver closed it
    /// meanwhile) is replaced by a new one for this request, once.
    ///
    /// # Errors
    /// Unreachable, TLS refused, no answer in time (a message for people).
    pub(crate) async fn call_kept(
        &self,
        kept: &mut Option<Conn>,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let reuse = kept.take().filter(|c| !c.stale());
        let work = async {
            if let Some(mut c) = reuse {
                let req = self.request(method.clone(), path, headers, body.clone())?;
                if c.tx.ready().await.is_ok() {
                    match exchange(&mut c.tx, req).await {
                        Ok(answer) => {
                            c.used = std::time::Instant::now();
                            return Ok((answer, Some(c)));
                        }
                        // An answer that came and was bad: no second try.
                        Err((e, true)) => return Err(e),
                        // Closed before answering: a new connection.
                        Err((_, false)) => {}
                    }
                }
            }
            let mut c = self.connect().await?;
            let req = self.request(method, path, headers, body)?;
            let answer = exchange(&mut c.tx, req).await.map_err(|(e, _)| e)?;
            c.used = std::time::Instant::now();
            Ok((answer, Some(c)))
        };
        let (answer, conn) = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| format!("no answer within {}s", timeout.as_secs()))??;
        *kept = conn;
        Ok(answer)
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<http::Request<axum::body::Body>, String> {
        let host = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut uri = format!("{}{path}", self.base);
        if uri.is_empty() {
            uri.push('/');
        }
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, host)
            .header(header::CONTENT_LENGTH, body.len());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(axum::body::Body::from(body))
            .map_err(|e| e.to_string())
    }

    /// A new connection (TCP, TLS when `https`, the HTTP/1.1 handshake).
    async fn connect(&self) -> Result<Conn, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(cfg) => {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| e.to_string())?;
                let s = tokio_rustls::TlsConnector::from(Arc::clone(cfg))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        jumpgate_net::tls::explain(&e).unwrap_or_else(|| format!("TLS: {e}"))
                    })?;
                handshake(s).await
            }
            None => handshake(tcp).await,
        }
    }
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
) -> Result<Conn, String> {
    let (tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Conn {
        tx,
        driver,
        used: std::time::Instant::now(),
    })
}

/// Sends `req` and reads the whole answer: (status, body). An error says
/// whether an answer had begun (`true`: not worth sending again).
async fn exchange(
    tx: &mut hyper::client::conn::http1::SendRequest<axum::body::Body>,
    req: http::Request<axum::body::Body>,
) -> Result<(u16, Vec<u8>), (String, bool)> {
    use http_body::Body as _;
    let resp = tx
        .send_request(req)
        .await
        .map_err(|e| (e.to_string(), false))?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| (e.to_string(), true))?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if out.len() > MAX_ANSWER {
                return Err(("answer too large".to_owned(), true));
            }
        }
    }
    Ok((status, out))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use http::Method;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::{Endpoint, PlainHttp, TrustSpec};

    /// How a test server ends each exchange.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Then {
        /// Keeps the connection for the next request.
        Keep,
        /// Answers `Connection: close` and closes.
        SaysClose,
        /// Closes without saying so (an idle timeout on its side).
        Drops,
    }

    /// An HTTP/1.1 server on loopback answering 200 `n` (the request's
    /// number) to POSTs with a body; counts connections.
    async fn server(then: Then) -> (String, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let conns = Arc::new(AtomicUsize::new(0));
        let (n, served) = (Arc::clone(&conns), Arc::new(AtomicUsize::new(0)));
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                n.fetch_add(1, Ordering::SeqCst);
                let served = Arc::clone(&served);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        while buf.len() < end + 4 + len {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        buf.drain(..end + 4 + len);
                        let body = (served.fetch_add(1, Ordering::SeqCst) + 1).to_string();
                        let close = if then == Then::SaysClose {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\n{close}Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() || then != Then::Keep {
                            return;
                        }
                    }
                });
            }
        });
        (url, conns)
    }

    /// Requests in a row share one connection while the server keeps it;
    /// a server that closes (saying so or not) gets a new one each time,
    /// and no request fails for it.
    #[tokio::test]
    async fn a_kept_connection_is_reused_and_replaced_when_closed() {
        for (then, want) in [(Then::Keep, 1), (Then::SaysClose, 3), (Then::Drops, 3)] {
            let (url, conns) = server(then).await;
            let ep = Endpoint::parse(&url, &TrustSpec::System, PlainHttp::LoopbackOnly).unwrap();
            let mut kept = None;
            for i in 1..=3 {
                if then == Then::Drops {
                    // Let the server's close arrive, or not: both are fine.
                    tokio::time::sleep(Duration::from_millis(20 * (i % 2))).await;
                }
                let (status, body) = ep
                    .call_kept(
                        &mut kept,
                        Method::POST,
                        "",
                        &[],
                        b"{}".to_vec(),
                        Duration::from_secs(5),
                    )
                    .await
                    .unwrap();
                assert_eq!((status, body), (200, i.to_string().into_bytes()));
            }
            assert_eq!(conns.load(Ordering::SeqCst), want);
            // The one-shot call never keeps one.
            ep.call(
                Method::POST,
                "",
                &[],
                b"{}".to_vec(),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
            assert_eq!(conns.load(Ordering::SeqCst), want + 1);
        }
    }

    #[test]
    fn plain_http_only_to_loopback_when_asked() {
        let only = PlainHttp::LoopbackOnly;
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://[::1]:1/",
            "http://localhost:9/",
        ] {
            Endpoint::parse(ok, &TrustSpec::System, only).unwrap();
        }
        let e = Endpoint::parse("http://example.com/hook", &TrustSpec::System, only).unwrap_err();
        assert!(e.contains("loopback") && e.contains("https://"), "{e}");
        Endpoint::parse(
            "http://example.com/",
            &TrustSpec::System,
            PlainHttp::Allowed,
        )
        .unwrap();
        let e = Endpoint::parse("ftp://x/", &TrustSpec::System, only).unwrap_err();
        assert!(e.contains("scheme"), "{e}");
        let e = Endpoint::parse("https://u:p@x/", &TrustSpec::System, only).unwrap_err();
        assert!(e.contains("credentials"), "{e}");
        let e = Endpoint::parse("https://x/", &TrustSpec::CaPem("junk"), only).unwrap_err();
        assert!(e.contains("CERTIFICATE"), "{e}");
    }
}
