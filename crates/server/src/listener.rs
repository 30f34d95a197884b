//! The TLS port and the optional redirect port.
//!
//! Every connection on the TLS port is handshaken in its own task (with a
//! timeout), then routed by ALPN: `jumpgate-agent/1` to the agent handler,
//! anything else to HTTP/1.1 (console, REST API, session upgrades).
//!
//! Admission (`gate`): connections not yet authenticated have their own
//! site-wide and per-address limits, and the oldest of them give way to
//! newcomers. Time bounds: the TLS handshake, the request headers, the
//! request body (whole time and a minimum rate, `body`), and idle HTTP
//! connections. Upgraded sessions and agent connections, once past their
//! handshake, are bounded by their own protocols (heartbeats, session ends).

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
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Limits;
use crate::state::AppState;

mod body;
pub(crate) mod gate;

use body::{Activity, BodyBounds, Guarded, TimedBody};
use gate::{Gate, Refused, Ticket};

tokio::task_local! {
    /// The admission ticket of the connection this task serves.
    static TICKET: Arc<Ticket>;
}

/// Marks the connection the current task serves as authenticated (a valid
/// token on an HTTP request, a verified agent hello): it leaves the
/// unauthenticated connections' limits. Does nothing elsewhere.
pub(crate) fn authenticated() {
    let _ = TICKET.try_with(|t| t.authenticated());
}

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// The site's admission gate from `[limits]`: one for every port that
/// takes connections (the TLS port and the SSH front door), so the limits
/// bound the site, not each port.
pub(crate) fn site_gate(st: &AppState) -> Arc<Gate> {
    let limits = &st.config.limits;
    Arc::new(Gate::new(
        st.config.max_connections,
        limits.max_unauthenticated,
        limits.max_unauthenticated_per_address,
    ))
}

/// The next connection `gate` admits on `listener`, or `None` once the
/// gateway shuts down. Refused connections are dropped (and said at debug
/// or warn level, naming `port`); a failing accept (typically EMFILE)
/// backs off instead of spinning.
pub(crate) async fn accept_admitted(
    listener: &TcpListener,
    gate: &Arc<Gate>,
    shutdown: &tokio_util::sync::CancellationToken,
    port: &'static str,
) -> Option<(TcpStream, SocketAddr, Arc<Ticket>)> {
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return None,
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, port, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match gate.admit(peer.ip()) {
            Ok(t) => return Some((tcp, peer, Arc::new(t))),
            Err(Refused::PerAddress) => {
                tracing::debug!(%peer, port, "too many unauthenticated connections from this address; refused");
            }
            Err(Refused::Full) => {
                tracing::warn!(%peer, port, "connection limit reached; dropping connection");
            }
        }
    }
}

/// Accepts on the TLS port until shutdown, admitted by the site's `gate`.
pub(crate) async fn serve_tls(
    listener: TcpListener,
    st: AppState,
    gate: Arc<Gate>,
    tls: Arc<ServerConfig>,
    router: Router,
) {
    let acceptor = TlsAcceptor::from(tls);
    while let Some((tcp, peer, ticket)) =
        accept_admitted(&listener, &gate, &st.shutdown, "tls").await
    {
        let acceptor = acceptor.clone();
        let router = router.clone();
        let st2 = st.clone();
        st.tasks.spawn(TICKET.scope(Arc::clone(&ticket), async move {
            tokio::select! {
                () = handle_connection(st2, acceptor, router, tcp, peer) => {}
                () = ticket.evicted() => {
                    tracing::debug!(%peer, "unauthenticated connection closed to admit a newer one");
                }
            }
        }));
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
    Box::pin(serve_http(
        TokioIo::new(tls),
        router,
        peer,
        &st.config.limits,
        &st.shutdown,
    ))
    .await;
}

async fn serve_http<I>(
    io: I,
    router: Router,
    peer: SocketAddr,
    limits: &Limits,
    shutdown: &CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let bounds = BodyBounds {
        timeout: limits.request_body_timeout,
        grace: Limits::BODY_GRACE,
        min_rate: limits.request_body_min_rate,
    };
    let act = Arc::clone(&activity);
    let svc = service_fn(move |req: Request<Incoming>| {
        let request = act.begin();
        let close = act.close.clone();
        let mut req = req.map(|b| axum::body::Body::new(TimedBody::new(b, bounds, close)));
        // Login rate limits and logs key on the client's address.
        req.extensions_mut().insert(crate::api::PeerAddr(peer));
        let answer = router.clone().oneshot(req);
        async move {
            let res = answer.await?;
            // The request lasts until its answer is written (a download may
            // take a while): the connection is not idle meanwhile.
            Ok::<_, std::convert::Infallible>(
                res.map(|b| axum::body::Body::new(Guarded::new(b, request))),
            )
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEADER_TIMEOUT)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    let idle = limits.idle_timeout;
    let mut check = tokio::time::Instant::now() + idle;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                return;
            }
            () = shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                return;
            }
            // A request body broke its bounds (logged where it was cut).
            () = activity.close.cancelled() => return,
            () = tokio::time::sleep_until(check) => {
                match activity.idle_deadline(idle) {
                    Some(at) if at <= tokio::time::Instant::now() => {
                        tracing::debug!(%peer, "closing an idle HTTP connection");
                        return;
                    }
                    Some(at) => check = at,
                    None => check = tokio::time::Instant::now() + idle,
                }
            }
        }
    }
}

/// The plain-HTTP port: every request gets a permanent redirect to the same
/// path on the site's public origin (never to the Host the request names),
/// and nothing else is served.
pub(crate) async fn serve_redirect(
    listener: TcpListener,
    origin: String,
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
        let origin = origin.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let res = redirect(&req, &origin);
                async move { Ok::<_, std::convert::Infallible>(res) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {}
                () = shutdown.cancelled() => {}
                // Nothing here takes long: a connection lingering is a
                // client holding it open.
                () = tokio::time::sleep(HTTP_HEADER_TIMEOUT) => {}
            }
        });
    }
}

fn redirect<B>(req: &Request<B>, origin: &str) -> Response<String> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if path.starts_with('/') { path } else { "/" };
    let location = format!("{origin}{path}");
    Response::builder()
        .status(StatusCode::PERMANENT_REDIRECT)
        .header(http::header::LOCATION, &location)
        .header(http::header::CONTENT_TYPE, "text/plain")
        .body(format!("Moved to {location}\n"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_path_and_go_to_the_sites_origin_whatever_the_host_says() {
        for host in [
            "support.example.com:80",
            "evil.example",
            "[::1]:80",
            "evil.com/x",
        ] {
            let req = Request::builder()
                .uri("/console/x?y=1")
                .header("host", host)
                .body(())
                .unwrap();
            let res = redirect(&req, "https://support.example.com:8443");
            assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
            assert_eq!(
                res.headers()["location"],
                "https://support.example.com:8443/console/x?y=1",
                "{host}"
            );
        }
        // An absolute-form request target cannot name another host either.
        let req = Request::builder()
            .uri("http://evil.example/a")
            .body(())
            .unwrap();
        assert_eq!(
            redirect(&req, "https://gw.example").headers()["location"],
            "https://gw.example/a"
        );
    }
}
