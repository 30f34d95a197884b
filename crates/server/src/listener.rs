//! The TLS port and the optional redirect port.
//!
//! Every connection on the TLS port is handshaken in its own task (with a
//! timeout), then routed by ALPN: `jumpgate-agent/1` to the agent handler,
//! anything else to HTTP/1.1 (console, REST API, session upgrades).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jumpgate_proto::control::{AGENT_ALPN, AUTH_EXPORTER_LABEL, AUTH_EXPORTER_LEN};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::state::AppState;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts on the TLS port until shutdown.
pub(crate) async fn serve_tls(
    listener: TcpListener,
    st: AppState,
    tls: Arc<ServerConfig>,
    router: Router,
) {
    let acceptor = TlsAcceptor::from(tls);
    let limit = Arc::new(Semaphore::new(st.config.max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            () = st.shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; dropping connection");
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let st2 = st.clone();
        st.tasks.spawn(async move {
            handle_connection(st2, acceptor, router, tcp, peer).await;
            drop(permit);
        });
    }
}

async fn handle_connection(
    st: AppState,
    acceptor: TlsAcceptor,
    router: Router,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let _ = tcp.set_nodelay(true);
    // Memory per idle agent is what bounds a gateway's size, so: the
    // handshake's state is boxed (freed once done, instead of sizing this
    // task for its whole life), and so is the TLS stream (1.2 KB; every move
    // through the async functions below is then a pointer, not a copy kept
    // alive in each caller's state).
    let tls =
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, Box::pin(acceptor.accept(tcp))).await {
            Ok(Ok(tls)) => Box::new(tls),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    let conn = tls.get_ref().1;
    if conn.alpn_protocol() == Some(AGENT_ALPN) {
        let exporter = match conn.export_keying_material(
            [0u8; AUTH_EXPORTER_LEN],
            AUTH_EXPORTER_LABEL,
            None,
        ) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "TLS exporter unavailable");
                return;
            }
        };
        // Boxed too: this task's future is sized for its largest branch, and
        // the HTTP one (hyper's connection state) would make every idle
        // agent pay for it.
        Box::pin(crate::agents::serve_agent(st, tls, exporter, peer)).await;
        return;
    }
    Box::pin(serve_http(TokioIo::new(tls), router, peer, &st.shutdown)).await;
}

async fn serve_http<I>(io: I, router: Router, peer: SocketAddr, shutdown: &CancellationToken)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |mut req: Request<Incoming>| {
        // Login rate limits and logs key on the client's address.
        req.extensions_mut().insert(crate::api::PeerAddr(peer));
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEADER_TIMEOUT)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "HTTP connection ended") },
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// The plain-HTTP port: every request gets a permanent redirect to https on
/// the TLS port, and nothing else is served.
pub(crate) async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    hostname: String,
    shutdown: CancellationToken,
) {
    loop {
        let tcp = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed on the redirect port");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let hostname = hostname.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let res = redirect(&req, https_port, &hostname);
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

fn redirect<B>(req: &Request<B>, https_port: u16, hostname: &str) -> Response<String> {
    // Use the Host the browser asked for, when it is a plain host name: it
    // keeps bookmarks by IP or alias working, and cannot inject a path.
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| strip_port(h).to_owned())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        })
        .unwrap_or_else(|| hostname.to_owned());
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(http::header::LOCATION, &location)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(format!("Moved to {location}\n"))
        .unwrap_or_default()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..=h.len()]);
    }
    host.split(':').next().unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_path_and_use_the_tls_port() {
        let req = Request::builder()
            .uri("/console/x?y=1")
            .header("host", "support.example.com:80")
            .body(())
            .unwrap();
        let res = redirect(&req, 8443, "fallback");
        assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            res.headers()["location"],
            "https://support.example.com:8443/console/x?y=1"
        );
        let req = Request::builder()
            .uri("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(
            redirect(&req, 443, "f").headers()["location"],
            "https://[::1]/"
        );
        let req = Request::builder()
            .uri("/")
            .header("host", "evil.com/x")
            .body(())
            .unwrap();
        assert_eq!(
            redirect(&req, 443, "gw.example").headers()["location"],
            "https://gw.example/"
        );
    }
}
