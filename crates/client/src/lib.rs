//! Typed HTTPS client for the gateway's REST API, used by `jg`, the agent's
//! enrollment, the benchmarks and the end-to-end tests.
//!
//! Calls go over HTTP/1.1 on TLS; a connection whose exchange is over is
//! kept open for the client's next call (keep-alive, shared by its clones),
//! so a command making several calls pays for one TLS handshake. Sessions
//! are HTTP upgrades ([`Client::connect`]) that turn a connection into a
//! raw byte stream carrying `jumpgate_proto::session` messages.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::Request;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
pub use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use jumpgate_api_types as api;
use jumpgate_net::dial::{self, HttpProxy, ServerUrl};
use jumpgate_net::tls::{self, Trust};
use jumpgate_proto::session::SessionKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

mod access;
mod alerts;
mod epm;
mod identity;
mod packages;
mod recordings;
mod reports;
mod sse;
mod support;
mod targets;
mod webhooks;

pub use epm::EpmEventFilter;
pub use packages::InventoryFilter;
pub use recordings::{CastStream, RecordingFilter};
pub use reports::ReportFilter;
pub use sse::EventStream;
pub use support::SupportEvents;

/// Which session events to list (all filters optional).
#[derive(Clone, Debug, Default)]
pub struct SessionFilter<'a> {
    pub endpoint: Option<&'a str>,
    pub user: Option<&'a str>,
    /// `shell`, `exec`, `upload`, `download` or `forward`.
    pub kind: Option<&'a str>,
    /// RFC 3339: sessions started at or after it.
    pub since: Option<&'a str>,
    /// RFC 3339: sessions started before it.
    pub until: Option<&'a str>,
    /// Only running (`true`) or ended (`false`) sessions.
    pub active: Option<bool>,
    /// Paging: the id of the last session of the previous page.
    pub before: Option<&'a str>,
    /// 1..=1000 (the gateway's default: 1000).
    pub limit: Option<u32>,
}

/// Which endpoints to list (all filters optional), and paging.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter<'a> {
    /// Names containing this text (any case).
    pub name: Option<&'a str>,
    pub group: Option<&'a str>,
    /// Only endpoints whose agent is connected (`true`) or not (`false`).
    pub online: Option<bool>,
    /// Paging: the name of the last endpoint of the previous page.
    pub after: Option<&'a str>,
    /// 1..=10000 (the gateway's default: every endpoint).
    pub limit: Option<u32>,
}

/// `/api/v1/endpoints` with the filter's query parameters, percent-encoded.
fn endpoints_path(f: &EndpointFilter<'_>) -> String {
    let limit = f.limit.map(|n| n.to_string());
    let online = f.online.map(|o| o.to_string());
    let params: Vec<String> = [
        ("name", f.name),
        ("group", f.group),
        ("online", online.as_deref()),
        ("after", f.after),
        ("limit", limit.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
    .collect();
    if params.is_empty() {
        "/api/v1/endpoints".to_owned()
    } else {
        format!("/api/v1/endpoints?{}", params.join("&"))
    }
}

/// `/api/v1/sessions` with the filter's query parameters, percent-encoded.
fn sessions_path(f: &SessionFilter<'_>) -> String {
    let limit = f.limit.map(|n| n.to_string());
    let active = f.active.map(|a| a.to_string());
    let params: Vec<String> = [
        ("endpoint", f.endpoint),
        ("user", f.user),
        ("kind", f.kind),
        ("since", f.since),
        ("until", f.until),
        ("active", active.as_deref()),
        ("before", f.before),
        ("limit", limit.as_deref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", percent_encode(v))))
    .collect();
    if params.is_empty() {
        "/api/v1/sessions".to_owned()
    } else {
        format!("/api/v1/sessions?{}", params.join("&"))
    }
}
mod vault;
#[cfg(test)]
mod wire_tests;

/// A session connection after the upgrade: full-duplex bytes.
pub type SessionIo = TokioIo<Upgraded>;

/// Largest response body the client accepts.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Most idle connections a client keeps for its next calls.
const MAX_IDLE: usize = 4;

type Sender = SendRequest<Full<Bytes>>;

/// Connections to the gateway whose last exchange is over, kept open for
/// the next call (HTTP/1.1 keep-alive). One the gateway has closed
/// meanwhile (its idle timeout) is skipped.
#[derive(Clone, Default)]
struct Idle(Arc<Mutex<Vec<Sender>>>);

impl Idle {
    fn take(&self) -> Option<Sender> {
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::from_fn(|| idle.pop()).find(|s| !s.is_closed())
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP, proxy or TLS failure reaching the gateway.
    #[error("cannot reach the gateway at {server}: {cause}")]
    Connect {
        server: String,
        cause: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The HTTP exchange failed midway.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The gateway answered with an error.
    #[error("{message} ({status}, {code})")]
    Api {
        status: u16,
        /// The gateway's code; a code this client does not know (a newer
        /// gateway's, the token endpoint's RFC 6749 codes, or `http_error`
        /// for an answer that was no JSON error) is [`api::ErrorCode::Other`].
        code: api::ErrorCode,
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The API error code, if the gateway answered with one.
    pub fn api_code(&self) -> Option<&api::ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client bound to one gateway.
#[derive(Clone)]
pub struct Client {
    server: ServerUrl,
    tls: Arc<rustls::ClientConfig>,
    proxy: Option<HttpProxy>,
    token: Option<String>,
    idle: Idle,
    /// The local address connections are made from (`None`: the system's
    /// choice).
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("proxy", &self.proxy)
            .field("token", &self.token.as_ref().map(|_| "MASKED"))
            .finish_non_exhaustive()
    }
}

impl Client {
    /// # Errors
    /// The TLS configuration could not be built (no system roots, for instance).
    pub fn new(
        server: ServerUrl,
        trust: &Trust,
        proxy: Option<HttpProxy>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            server,
            tls: tls::client_config(trust, &[b"http/1.1"])?,
            proxy,
            token: None,
            idle: Idle::default(),
            source: None,
        })
    }

    /// The same client, connecting from local address `ip` (tests and
    /// benchmarks speak as several loopback addresses this way).
    #[must_use]
    pub fn bind_source(mut self, ip: std::net::IpAddr) -> Self {
        self.source = Some(ip);
        self.idle = Idle::default();
        self
    }

    /// The same client, authenticated with a bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn server(&self) -> &ServerUrl {
        &self.server
    }

    /// Logs in; `totp` is a TOTP or recovery code, for accounts with MFA
    /// (without one, such an account is answered `401 mfa_required`).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        totp: Option<&str>,
    ) -> Result<api::LoginResponse, ClientError> {
        let body = api::LoginRequest {
            username: username.to_owned(),
            password: password.to_owned(),
            totp: totp.map(str::to_owned),
            cookie: false,
        };
        self.post_json("/api/v1/auth/login", &body).await
    }

    pub async fn logout(&self) -> Result<(), ClientError> {
        self.request(Method::POST, "/api/v1/auth/logout", None)
            .await?;
        Ok(())
    }

    pub async fn enroll(
        &self,
        req: &api::EnrollRequest,
    ) -> Result<api::EnrollResponse, ClientError> {
        self.post_json("/api/v1/agents/enroll", req).await
    }

    /// Every endpoint the caller may see, by name.
    pub async fn endpoints(&self) -> Result<Vec<api::Endpoint>, ClientError> {
        self.get_json("/api/v1/endpoints").await
    }

    /// Endpoints the caller may see, by name, filtered and paged by `f`
    /// (a page is full when it has `limit` entries; the next one starts
    /// `after` its last name).
    ///
    /// # Errors
    /// The gateway refused (a bad filter is a 400) or could not be reached.
    pub async fn endpoints_page(
        &self,
        f: &EndpointFilter<'_>,
    ) -> Result<Vec<api::Endpoint>, ClientError> {
        self.get_json(&endpoints_path(f)).await
    }

    /// [`Client::endpoints_page`] as the gateway wrote it: a JSON array of
    /// [`api::Endpoint`], for a caller that reads only some fields of a
    /// page of thousands without copying every value.
    ///
    /// # Errors
    /// As [`Client::endpoints_page`], but the JSON is not checked.
    pub async fn endpoints_page_json(&self, f: &EndpointFilter<'_>) -> Result<Bytes, ClientError> {
        self.request(Method::GET, &endpoints_path(f), None).await
    }

    /// Session events, newest first (`view-audit`; only the caller's
    /// groups), filtered and paged by `f`.
    ///
    /// # Errors
    /// The gateway refused (a bad filter is a 400) or could not be reached.
    pub async fn sessions(
        &self,
        f: &SessionFilter<'_>,
    ) -> Result<Vec<api::SessionEvent>, ClientError> {
        self.get_json(&sessions_path(f)).await
    }

    /// `GET path`, decoding a JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.request(Method::GET, path, None).await?;
        decode(&body)
    }

    /// `POST path` with a JSON body, decoding a JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let answer = self
            .request(Method::POST, path, Some(encode(body)?))
            .await?;
        decode(&answer)
    }

    /// `POST path` without a body, decoding a JSON answer.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let answer = self.request(Method::POST, path, None).await?;
        decode(&answer)
    }

    /// `PUT path` with a JSON body, decoding a JSON answer.
    pub async fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let answer = self.request(Method::PUT, path, Some(encode(body)?)).await?;
        decode(&answer)
    }

    /// `PATCH path` with a JSON body, decoding a JSON answer.
    pub async fn patch_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let answer = self
            .request(Method::PATCH, path, Some(encode(body)?))
            .await?;
        decode(&answer)
    }

    /// `POST path` without a body, for routes answering `204 No Content`
    /// (any success status is accepted; a body is ignored).
    pub async fn post_no_content(&self, path: &str) -> Result<(), ClientError> {
        self.request(Method::POST, path, None).await.map(drop)
    }

    /// `POST path` with a JSON body, for routes answering `204 No Content`.
    pub async fn post_json_no_content<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        self.request(Method::POST, path, Some(encode(body)?))
            .await
            .map(drop)
    }

    /// `PUT path` with a JSON body, for routes answering `204 No Content`.
    pub async fn put_json_no_content<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        self.request(Method::PUT, path, Some(encode(body)?))
            .await
            .map(drop)
    }

    /// `DELETE path`, for routes answering `204 No Content`.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.request(Method::DELETE, path, None).await.map(drop)
    }

    /// `DELETE path` with a JSON body, for routes answering `204 No Content`.
    pub async fn delete_json<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        self.request(Method::DELETE, path, Some(encode(body)?))
            .await
            .map(drop)
    }

    /// Sends `req` on a kept connection, or a new one. The connection is
    /// returned with the answer: give it back ([`Idle::put`]) once the
    /// answer's body has been read to its end, or drop it (an upgrade, a
    /// streamed body).
    async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Sender), ClientError> {
        while let Some(mut sender) = self.idle.take() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(res) => return Ok((res, sender)),
                // Closed before the request was written: it goes on
                // another connection (it never reached the gateway).
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = self.handshake().await?;
        let res = sender.send_request(req).await?;
        Ok((res, sender))
    }

    /// A new connection to the gateway (TCP, the proxy if any, TLS, HTTP/1.1).
    async fn handshake(&self) -> Result<Sender, ClientError> {
        let tls = dial::connect_tls_from(
            &self.server,
            Arc::clone(&self.tls),
            self.proxy.as_ref(),
            self.source,
        )
        .await
        .map_err(|source| ClientError::Connect {
            server: self.server.to_string(),
            cause: source,
        })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "gateway connection ended");
            }
        });
        Ok(sender)
    }

    fn builder(&self, method: Method, path: &str) -> http::request::Builder {
        let host = match self.server.port {
            443 => self.server.host.clone(),
            p => format!("{}:{p}", self.server.host),
        };
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, host);
        if let Some(t) = &self.token {
            b = b.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    /// One exchange of any method; a success status (`204` included, with
    /// its empty body) yields the body, anything else an error.
    async fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let content_type = json.is_some().then_some("application/json");
        let (status, body) = self
            .raw(method, path, content_type, json.unwrap_or_default())
            .await?;
        if !status.is_success() {
            return Err(api_error(status, &body));
        }
        Ok(body)
    }

    /// One exchange, whatever the answer's status (for tests and tools that
    /// inspect statuses themselves).
    ///
    /// # Errors
    /// Connection or HTTP failure only.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let mut b = self.builder(method, path);
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        let req = b
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (res, sender) = self.send(req).await?;
        let status = res.status();
        let body = Limited::new(res.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("reading body: {e}")))?
            .to_bytes();
        // The exchange is over: the connection serves the next call.
        self.idle.put(sender);
        Ok((status, body))
    }

    /// OAuth2 client-credentials grant (RFC 6749 §4.4): an access token for
    /// an API client, optionally narrowed to `scope` (`read`, `write`, or
    /// both separated by a space). Use it with [`Client::with_token`].
    ///
    /// # Errors
    /// [`ClientError::Api`] with the RFC 6749 error code (`invalid_client`,
    /// `invalid_scope`, ...) as `code`.
    pub async fn oauth2_token(
        &self,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
    ) -> Result<api::TokenResponse, ClientError> {
        let mut form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            percent_encode(client_id),
            percent_encode(client_secret)
        );
        if let Some(s) = scope {
            form.push_str(&format!("&scope={}", percent_encode(s)));
        }
        let (status, body) = self
            .raw(
                Method::POST,
                "/oauth2/token",
                Some("application/x-www-form-urlencoded"),
                form.into_bytes(),
            )
            .await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<api::OAuthError>(&body) {
                Ok(e) => ClientError::Api {
                    status: status.as_u16(),
                    code: api::ErrorCode::from_wire(e.error.as_str()),
                    message: e.error_description,
                },
                Err(_) => api_error(status, &body),
            });
        }
        decode(&body)
    }

    /// Opens a session of `kind` on `endpoint`: authorizes it and upgrades
    /// the connection. The caller then speaks session messages over it.
    ///
    /// # Errors
    /// Not logged in, not allowed, unknown or offline endpoint (as
    /// [`ClientError::Api`]), or a connection failure.
    pub async fn connect(
        &self,
        endpoint: &str,
        kind: SessionKind,
    ) -> Result<SessionIo, ClientError> {
        let path = format!(
            "/api/v1/endpoints/{}/connect?kind={}",
            percent_encode(endpoint),
            kind.as_str()
        );
        self.upgrade(&path).await
    }

    /// Watches a live terminal session, read-only (`monitor-sessions`):
    /// the gateway sends `Accepted`, the recent output, then the live
    /// output until `Closed`.
    ///
    /// # Errors
    /// Not allowed, no such live session, or a connection failure.
    pub async fn watch_session(&self, id: &str) -> Result<SessionIo, ClientError> {
        self.upgrade(&format!("/api/v1/sessions/{}/watch", percent_encode(id)))
            .await
    }

    /// Opens a session on `path` (a `…/connect?kind=` route) by upgrading
    /// the connection.
    pub(crate) async fn upgrade(&self, path: &str) -> Result<SessionIo, ClientError> {
        let req = self
            .builder(Method::GET, path)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, api::SESSION_UPGRADE)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // The connection becomes the session's (an upgrade): never kept.
        let (res, _) = self.send(req).await?;
        let status = res.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let body = Limited::new(res.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(api_error(status, &body));
        }
        let upgraded = hyper::upgrade::on(res).await?;
        Ok(TokioIo::new(upgraded))
    }
}

fn encode<B: Serialize>(body: &B) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Protocol(format!("invalid JSON: {e}")))
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<api::ErrorBody>(body) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            code: e.error,
            message: e.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: api::ErrorCode::Other("http_error".into()),
            message: format!("the gateway answered {status}"),
        },
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoint_names_are_percent_encoded() {
        assert_eq!(super::percent_encode("web-01.prod_a"), "web-01.prod_a");
        assert_eq!(super::percent_encode("a b/c?"), "a%20b%2Fc%3F");
    }

    #[test]
    fn session_query_is_built_from_the_given_filters() {
        use super::{SessionFilter, sessions_path};
        assert_eq!(sessions_path(&SessionFilter::default()), "/api/v1/sessions");
        let f = SessionFilter {
            endpoint: Some("web 1"),
            kind: Some("exec"),
            since: Some("2026-11-23T10:00:00+02:00"),
            active: Some(false),
            before: Some("ses_x"),
            limit: Some(50),
            ..SessionFilter::default()
        };
        assert_eq!(
            sessions_path(&f),
            "/api/v1/sessions?endpoint=web%201&kind=exec&since=2026-11-23T10%3A00%3A00%2B02%3A00&active=false&before=ses_x&limit=50"
        );
    }

    #[test]
    fn endpoint_query_is_built_from_the_given_filters() {
        use super::{EndpointFilter, endpoints_path};
        assert_eq!(
            endpoints_path(&EndpointFilter::default()),
            "/api/v1/endpoints"
        );
        let f = EndpointFilter {
            name: Some("web&1"),
            online: Some(true),
            after: Some("db-9"),
            limit: Some(500),
            ..EndpointFilter::default()
        };
        assert_eq!(
            endpoints_path(&f),
            "/api/v1/endpoints?name=web%261&online=true&after=db-9&limit=500"
        );
    }
}
