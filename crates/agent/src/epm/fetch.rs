//! Downloading a bundle (design §0 "Download"): from the gateway this agent
//! is connected to (a relative `/epm/…` URL, or an absolute one naming the
//! gateway), with the connection's own trust (the pinned CA) and proxy; or
//! from blob storage (an S3 / Azure signed `https://` URL) with the system
//! roots plus `--blob-ca`. Plain `http://` only to loopback (tests). The
//! body is limited to the announced size and the whole exchange to a
//! timeout; what arrives is verified by the caller, never trusted.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use jumpgate_net::dial::{self, HttpProxy, ServerUrl};
use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};

/// Largest bundle the agent downloads, whatever a notice says.
pub const MAX_BUNDLE: u64 = 16 * 1024 * 1024;
/// Default limit on one download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("bad bundle URL `{0}`")]
    BadUrl(String),
    #[error("plain http:// is allowed only to loopback addresses, not `{0}`")]
    NotLoopback(String),
    #[error("a relative bundle URL needs a gateway connection")]
    NoGateway,
    #[error("the bundle is larger than {0} bytes")]
    TooLarge(u64),
    #[error("download failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("download failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("download failed: HTTP status {0}")]
    Status(u16),
    #[error("download timed out after {0:?}")]
    Timeout(Duration),
    #[error("--blob-ca {path}: {reason}")]
    BlobCa { path: String, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// The gateway connection's address, trust and proxy.
#[derive(Clone, Debug)]
pub struct Gateway {
    pub server: ServerUrl,
    /// The agent connection's trust (pinned CA or system roots), with ALPN
    /// `http/1.1` instead of the agent protocol.
    pub tls: Arc<ClientConfig>,
    pub proxy: Option<HttpProxy>,
}

/// Downloads bundles.
#[derive(Clone, Debug)]
pub struct Fetcher {
    pub gateway: Option<Gateway>,
    /// System roots plus `--blob-ca`.
    pub blob_tls: Arc<ClientConfig>,
    pub timeout: Duration,
}

/// The TLS configuration for blob storage: the system's roots and the
/// certificates in `ca_file` (PEM).
///
/// # Errors
/// The file is unreadable or holds no certificate.
pub fn blob_tls(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, FetchError> {
    let mut roots = RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(loaded.certs);
    if let Some(path) = ca_file {
        let err = |reason: String| FetchError::BlobCa {
            path: path.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no certificate in it".into()));
        }
        for c in certs {
            roots.add(c).map_err(|e| err(e.to_string()))?;
        }
    }
    let mut cfg = ClientConfig::builder_with_provider(jumpgate_net::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A URL taken apart.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query.
    path: String,
}

fn parse(url: &str) -> Result<Target, FetchError> {
    let bad = || FetchError::BadUrl(url.chars().take(80).collect());
    let (tls, rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (true, r, 443)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r, 80)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') || authority.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() || port == 0 || path.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad());
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(Target {
        tls,
        host,
        port,
        path,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Fetcher {
    /// Downloads `url`, at most `max` bytes (capped at [`MAX_BUNDLE`]).
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn get(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let max = max.min(MAX_BUNDLE);
        match tokio::time::timeout(self.timeout, self.get_inner(url, max)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    /// Downloads `url` into `file` (created or truncated, fsynced), at most
    /// `max` bytes, streamed (packages may be far larger than a bundle);
    /// answers the SHA-256 (lowercase hex) and size of what was written.
    /// What arrives is verified by the caller, never trusted.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn download_to(
        &self,
        url: &str,
        max: u64,
        file: &Path,
    ) -> Result<(String, u64), FetchError> {
        let mut out = tokio::fs::File::create(file).await?;
        let got = self.download_into(url, max, &mut out).await?;
        out.sync_all().await?;
        Ok(got)
    }

    /// [`Fetcher::download_to`] into any writer.
    ///
    /// # Errors
    /// See [`FetchError`].
    pub async fn download_into<W>(
        &self,
        url: &str,
        max: u64,
        sink: &mut W,
    ) -> Result<(String, u64), FetchError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let go = async {
            let (target, tls, proxy) = self.route(url)?;
            let tcp = dial::connect_tcp(&target.host, target.port, proxy.as_ref()).await?;
            match tls {
                None => request_into(tcp, &target, max, sink).await,
                Some(cfg) => {
                    let name = ServerName::try_from(target.host.clone())
                        .map_err(|_| FetchError::BadUrl(target.host.clone()))?;
                    let stream = tokio_rustls::TlsConnector::from(cfg)
                        .connect(name, tcp)
                        .await?;
                    request_into(stream, &target, max, sink).await
                }
            }
        };
        match tokio::time::timeout(self.timeout, go).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    /// Where `url` is, and the TLS trust and proxy to reach it with.
    #[allow(clippy::type_complexity, reason = "private plumbing")]
    fn route(
        &self,
        url: &str,
    ) -> Result<(Target, Option<Arc<ClientConfig>>, Option<HttpProxy>), FetchError> {
        Ok(if url.starts_with('/') {
            let gw = self.gateway.as_ref().ok_or(FetchError::NoGateway)?;
            let t = Target {
                tls: true,
                host: gw.server.host.clone(),
                port: gw.server.port,
                path: url.to_owned(),
            };
            (t, Some(Arc::clone(&gw.tls)), gw.proxy.clone())
        } else {
            let t = parse(url)?;
            if !t.tls {
                if !is_loopback(&t.host) {
                    return Err(FetchError::NotLoopback(t.host));
                }
                (t, None, None)
            } else {
                match &self.gateway {
                    Some(gw) if gw.server.host == t.host && gw.server.port == t.port => {
                        (t, Some(Arc::clone(&gw.tls)), gw.proxy.clone())
                    }
                    Some(gw) => (t, Some(Arc::clone(&self.blob_tls)), gw.proxy.clone()),
                    None => (t, Some(Arc::clone(&self.blob_tls)), None),
                }
            }
        })
    }

    async fn get_inner(&self, url: &str, max: u64) -> Result<Vec<u8>, FetchError> {
        let (target, tls, proxy) = self.route(url)?;
        let tcp = dial::connect_tcp(&target.host, target.port, proxy.as_ref()).await?;
        match tls {
            None => request(tcp, &target, max).await,
            Some(cfg) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|_| FetchError::BadUrl(target.host.clone()))?;
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, tcp)
                    .await?;
                request(stream, &target, max).await
            }
        }
    }
}

/// [`request`], the body streamed into `sink`: (SHA-256 hex, size).
async fn request_into<S, W>(
    io: S,
    target: &Target,
    max: u64,
    sink: &mut W,
) -> Result<(String, u64), FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get(target.path.as_str())
        .header(http::header::HOST, host_header(target))
        .header(http::header::USER_AGENT, "jumpgate-agent")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        conn.abort();
        return Err(FetchError::Status(res.status().as_u16()));
    }
    let mut body = res.into_body();
    let mut hash = jumpgate_net::digest::Sha256::new();
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > max {
            conn.abort();
            return Err(FetchError::TooLarge(max));
        }
        hash.update(&data);
        sink.write_all(&data).await?;
    }
    sink.flush().await?;
    conn.abort();
    Ok((hash.hex(), size))
}

fn host_header(target: &Target) -> String {
    if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    }
}

async fn request<S>(io: S, target: &Target, max: u64) -> Result<Vec<u8>, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let req = http::Request::get(target.path.as_str())
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "jumpgate-agent")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::BadUrl(e.to_string()))?;
    let res = sender.send_request(req).await?;
    if !res.status().is_success() {
        conn.abort();
        return Err(FetchError::Status(res.status().as_u16()));
    }
    let announced = res
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max) {
        conn.abort();
        return Err(FetchError::TooLarge(max));
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let body = Limited::new(res.into_body(), limit)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(h) => FetchError::Http(*h),
            Err(_) => FetchError::TooLarge(max),
        })?;
    conn.abort();
    Ok(body.to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let t = parse("https://bucket.s3.amazonaws.com/epm/v1.jgpol?X-Amz-Signature=ab").unwrap();
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "bucket.s3.amazonaws.com".into(),
                port: 443,
                path: "/epm/v1.jgpol?X-Amz-Signature=ab".into()
            }
        );
        let t = parse("http://[::1]:8080/x").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 8080, false));
        assert!(parse("ftp://x/").is_err());
        assert!(parse("https://user@x/").is_err());
        assert!(parse("https://x/a b").is_err());
        assert!(is_loopback("127.0.0.1") && is_loopback("::1") && !is_loopback("10.0.0.1"));
    }

    /// Serves one HTTP response of `body` on loopback; its URL.
    async fn serve_once(body: Vec<u8>) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let _ = s.read(&mut req).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&body).await.unwrap();
        });
        format!("http://{addr}/epm/bundles/1")
    }

    fn fetcher() -> Fetcher {
        Fetcher {
            gateway: None,
            blob_tls: blob_tls(None).unwrap(),
            timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn loopback_downloads_are_limited_to_the_announced_size() {
        let url = serve_once(b"bundle bytes".to_vec()).await;
        assert_eq!(fetcher().get(&url, 100).await.unwrap(), b"bundle bytes");
        let url = serve_once(vec![1u8; 1000]).await;
        assert!(matches!(
            fetcher().get(&url, 999).await,
            Err(FetchError::TooLarge(999))
        ));
        assert!(matches!(
            fetcher().get("http://10.1.2.3/x", 10).await,
            Err(FetchError::NotLoopback(_))
        ));
        assert!(matches!(
            fetcher().get("/epm/bundles/1", 10).await,
            Err(FetchError::NoGateway)
        ));
    }
}
