//! The gateway's outbound HTTP client: hyper over tokio-rustls, one
//! request per connection. Shared by the analytics OpenSearch writer and
//! reader (`analytics::opensearch`) and webhook deliveries
//! (`notify::webhooks`), so the gateway has one HTTP stack.
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
        tokio::time::timeout(timeout, self.call_inner(method, path, headers, body))
            .await
            .map_err(|_| format!("no answer within {}s", timeout.as_secs()))?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
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
        let req = req
            .body(axum::body::Body::from(body))
            .map_err(|e| e.to_string())?;
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
                send(s, req).await
            }
            None => send(tcp, req).await,
        }
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    req: http::Request<axum::body::Body>,
) -> Result<(u16, Vec<u8>), String> {
    use http_body::Body as _;
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let answer = async {
        let resp = tx.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
                if out.len() > MAX_ANSWER {
                    return Err("answer too large".to_owned());
                }
            }
        }
        Ok((status, out))
    }
    .await;
    driver.abort();
    answer
}

#[cfg(test)]
mod tests {
    use super::{Endpoint, PlainHttp, TrustSpec};

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
