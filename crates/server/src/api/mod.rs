//! HTTP plumbing shared by the domain routes: the route table (every route
//! is registered with the access rule `rbac` enforces for it), the one
//! mapping from errors to HTTP answers, authentication and JSON extractors,
//! and security headers.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::http::header::{
    ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, ORIGIN,
    STRICT_TRANSPORT_SECURITY, UPGRADE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use jumpgate_api_types::{CSRF_HEADER, ErrorBody, SESSION_COOKIE};

use crate::identity::{self, IdentityError};
use crate::rbac::{self, Action, Decision, Denial, Resource, Subject};
use crate::state::AppState;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// No credentials: health, login, enrollment (token in the body), the
    /// OAuth2 token endpoint (client credentials).
    Public,
    /// Authenticated, and `rbac` allows this action on the site.
    Site(Action),
    /// Authenticated; the handler asks `rbac` about the endpoint concerned.
    PerEndpoint,
}

/// One row of the route table.
#[derive(Clone, Debug)]
struct RouteSpec {
    method: Method,
    path: &'static str,
    access: Access,
}

/// A route and its access rule, as text (see [`route_table`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    /// `public`, `per-endpoint`, or the `rbac` action name.
    pub access: String,
}

/// Builds the router and the route table together, so that no route can
/// exist without an access rule.
pub(crate) struct Api {
    /// `None` when only describing the routes.
    state: Option<AppState>,
    router: Router<AppState>,
    table: Vec<RouteSpec>,
}

impl Api {
    fn new(state: Option<AppState>) -> Self {
        Self {
            state,
            router: Router::new(),
            table: Vec::new(),
        }
    }

    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        mr: MethodRouter<AppState>,
    ) -> Self {
        self.table.push(RouteSpec {
            method,
            path,
            access,
        });
        let Some(state) = self.state.clone() else {
            return self;
        };
        let mr = match access {
            Access::Public => mr,
            Access::Site(action) => mr.route_layer(middleware::from_fn_with_state(
                state,
                move |State(st): State<AppState>, req: Request, next: Next| async move {
                    authorize_site(st, action, req, next).await
                },
            )),
            Access::PerEndpoint => mr.route_layer(middleware::from_fn_with_state(
                state,
                |State(st): State<AppState>, req: Request, next: Next| async move {
                    authenticate_only(st, req, next).await
                },
            )),
        };
        self.router = self.router.route(path, mr);
        self
    }

    pub(crate) fn get<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::GET, path, access, get(h))
    }
    pub(crate) fn post<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::POST, path, access, post(h))
    }
    pub(crate) fn put<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::PUT, path, access, put(h))
    }
    pub(crate) fn patch<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::PATCH, path, access, patch(h))
    }
    pub(crate) fn delete<H: Handler<T, AppState>, T: 'static>(
        self,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self {
        self.add(Method::DELETE, path, access, delete(h))
    }
}

fn assemble(state: Option<AppState>) -> Api {
    let api = Api::new(state).get("/healthz", Access::Public, || async { "ok" });
    let api = identity::http::routes(api);
    let api = rbac::http::routes(api);
    let api = crate::agents::http::routes(api);
    let api = crate::events::routes(api);
    let api = crate::recordings::http::routes(api);
    let api = crate::sessions::http::routes(api);
    let api = crate::vault::http::routes(api);
    crate::web::routes(api)
}

/// The whole HTTP surface of the TLS port.
pub(crate) fn router(state: AppState) -> Router {
    let api = assemble(Some(state.clone()));
    api.router
        .fallback(|| async { ApiError::not_found("no_route", "no such route") })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::recheck::after_change,
        ))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// Every HTTP route with its access rule, built by the same code as the
/// router (for documentation and the access-matrix test).
pub fn route_table() -> Vec<RouteInfo> {
    assemble(None)
        .table
        .into_iter()
        .map(|r| RouteInfo {
            method: r.method.to_string(),
            path: r.path.to_owned(),
            access: match r.access {
                Access::Public => "public".to_owned(),
                Access::PerEndpoint => "per-endpoint".to_owned(),
                Access::Site(a) => a.name(),
            },
        })
        .collect()
}

/// Every error answer is a JSON [`ErrorBody`]. The framework's own
/// rejections (a path segment that is not valid UTF-8, a malformed query
/// string, an unreadable body, a method the route does not serve) are plain
/// text or empty; they are rewritten here, in one place, so that no route,
/// present or future, answers bad input with anything else.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let allow = res.headers().get(ALLOW).cloned();
    // These texts are short (a sentence); a larger one is cut, not buffered.
    let text = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let mut out = if status.is_server_error() {
        tracing::error!(%status, detail = %text, "internal error answering a request");
        ApiError::new(status, "internal", "internal error; see the gateway log")
    } else {
        let code = match status {
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            _ => "bad_request",
        };
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("bad request")
                .to_owned()
        } else {
            text
        };
        ApiError::new(status, code, message)
    }
    .into_response();
    if let Some(allow) = allow {
        out.headers_mut().insert(ALLOW, allow);
    }
    out
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::web::CONTENT_SECURITY_POLICY),
        );
    }
    res
}

/// The bearer token of a request, if any.
pub(crate) fn bearer(parts_headers: &axum::http::HeaderMap) -> Option<&str> {
    parts_headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The caller behind a session or API token. Takes the token, not the
/// request: a request (its body) must not be borrowed across an await.
async fn authenticate(st: &AppState, token: Option<String>) -> Result<Subject, ApiError> {
    let token = token.ok_or(IdentityError::Unauthenticated)?;
    Ok(identity::authenticate(&st.db, &token).await?)
}

/// The credential a request presents, read before any await.
struct Presented {
    token: Option<String>,
    /// Cookie sessions only: the session's CSRF token and whether the
    /// request passed the cross-site checks (`Err` names the failure).
    cookie: Option<(String, Result<(), &'static str>)>,
}

/// A request authenticated by the console's session cookie (inserted next
/// to the [`Subject`]); carries the session's CSRF token.
#[derive(Clone, Debug)]
pub(crate) struct CookieSession {
    pub(crate) csrf_token: String,
}

/// The session token in the console's cookie, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|t| !t.is_empty())
}

/// The session token of a request: a bearer token, else the cookie.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| session_cookie(headers))
}

/// The CSRF token of a cookie session: derived from the (secret, `HttpOnly`)
/// session token, so it needs no storage and dies with the session. A page
/// on another site can neither read the cookie nor this value.
pub(crate) fn csrf_token(session_token: &str) -> String {
    let mut input = b"jumpgate-csrf/1:".to_vec();
    input.extend_from_slice(session_token.as_bytes());
    jumpgate_net::digest::sha256_hex(&input)
}

/// Cross-site request checks for a cookie-authenticated request:
/// - state-changing methods must send the session's CSRF token in
///   [`CSRF_HEADER`] (compared in constant time);
/// - a WebSocket upgrade (a `GET` that opens a session, and cannot carry
///   custom headers from a browser) must come from the gateway's own
///   origin: one of the site's configured origins (`Config::origins`), never
///   whatever the request's own Host header says.
fn cross_site_check(req: &Request, csrf: &str, origins: &[String]) -> Result<(), &'static str> {
    let h = req.headers();
    let websocket = h
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if websocket {
        let origin = h.get(ORIGIN).and_then(|v| v.to_str().ok());
        return match origin {
            Some(o)
                if origins
                    .iter()
                    .any(|allowed| allowed.eq_ignore_ascii_case(o)) =>
            {
                Ok(())
            }
            _ => Err("a console WebSocket must come from the gateway's own origin"),
        };
    }
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = h
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if aws_lc_rs::constant_time::verify_slices_are_equal(sent, csrf.as_bytes()).is_ok() {
        Ok(())
    } else {
        Err("missing or wrong CSRF token (x-csrf-token) on a cookie-authenticated request")
    }
}

fn presented(req: &Request, origins: &[String]) -> Presented {
    if let Some(t) = bearer(req.headers()) {
        // Browsers never attach bearer tokens on their own: no CSRF risk.
        return Presented {
            token: Some(t.to_owned()),
            cookie: None,
        };
    }
    match session_cookie(req.headers()) {
        Some(t) => {
            let csrf = csrf_token(t);
            let check = cross_site_check(req, &csrf, origins);
            Presented {
                token: Some(t.to_owned()),
                cookie: Some((csrf, check)),
            }
        }
        None => Presented {
            token: None,
            cookie: None,
        },
    }
}

/// Authenticates a request (bearer token or console cookie) and, for
/// cookies, applies the cross-site checks: the one entry point of every
/// non-public route.
async fn authenticate_request(st: &AppState, req: &mut Request) -> Result<Subject, ApiError> {
    let p = presented(req, &st.origins);
    let subject = authenticate(st, p.token).await?;
    if let Some((csrf_token, check)) = p.cookie {
        if let Err(why) = check {
            tracing::info!(subject = %subject.name, path = %req.uri().path(), reason = why, "cross-site check failed");
            return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf", why));
        }
        req.extensions_mut().insert(CookieSession { csrf_token });
    }
    // The connection leaves the unauthenticated connections' limits.
    crate::listener::authenticated();
    Ok(subject)
}

async fn authenticate_only(st: AppState, mut req: Request, next: Next) -> Response {
    let found = authenticate_request(&st, &mut req).await;
    match found {
        Ok(subject) => {
            req.extensions_mut().insert(subject);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn authorize_site(st: AppState, action: Action, mut req: Request, next: Next) -> Response {
    let subject = match authenticate_request(&st, &mut req).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    if let Decision::Forbid(why) = rbac::authorize(&subject, action, Resource::Site) {
        let target = req.uri().path().to_owned();
        return denied(&st, &subject, action, &target, None, why)
            .await
            .into_response();
    }
    req.extensions_mut().insert(subject);
    next.run(req).await
}

/// Records a denial as a security event (about an endpoint of `group`, or
/// site-wide) and builds its answer.
pub(crate) async fn denied(
    st: &AppState,
    subject: &Subject,
    action: Action,
    target: &str,
    group: Option<&str>,
    why: Denial,
) -> ApiError {
    let groups: Vec<&str> = group.into_iter().collect();
    crate::events::record_in_groups_or_log(
        &st.db,
        &groups,
        &subject.name,
        &action.name(),
        target,
        "denied",
        &why.to_string(),
    )
    .await;
    tracing::info!(subject = %subject.name, action = %action.name(), %target, reason = %why, "access denied");
    let code = match why {
        Denial::InsufficientScope => "insufficient_scope",
        Denial::MfaEnrollmentRequired => "mfa_enrollment_required",
        Denial::PasswordChangeRequired => "password_change_required",
        Denial::MissingPermission(_) | Denial::OutsideGroups | Denial::UsersOnly => "forbidden",
    };
    ApiError::new(StatusCode::FORBIDDEN, code, why.to_string())
}

/// The authenticated, authorized caller of a route registered with
/// [`Access::Site`] or [`Access::PerEndpoint`].
#[derive(Debug)]
pub(crate) struct Caller(pub(crate) Subject);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Subject>()
            .cloned()
            .map(Self)
            // A handler that wants a caller on a public route is a bug.
            .ok_or_else(|| ApiError::internal("route registered as public extracts a caller"))
    }
}

/// The peer's address (inserted by the listener).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for PeerAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .copied()
            .ok_or_else(|| ApiError::internal("no peer address on the request"))
    }
}

/// An error answer. 5xx details go to the log, never to the client.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the gateway log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::internal(e)
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        use IdentityError as E;
        match e {
            E::InvalidCredentials | E::Unauthenticated => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            E::MfaRequired => Self::new(StatusCode::UNAUTHORIZED, "mfa_required", e.to_string()),
            E::RateLimited(_) => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            }
            E::UserExists(_) | E::Conflict(_) => Self::conflict(e.to_string()),
            E::UnknownUser(_) => Self::not_found("not_found", e.to_string()),
            E::UnknownRole(_)
            | E::InvalidName(_)
            | E::WeakPassword(_)
            | E::Invalid(_)
            | E::WrongCode => Self::bad_request(e.to_string()),
            E::Hash | E::Db(_) => Self::internal(e),
        }
    }
}

/// `Json` whose rejections are JSON [`ErrorBody`]s naming the problem.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> ApiError {
    ApiError::new(r.status(), "bad_request", r.body_text())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri("/api/v1/groups");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap_or_default()
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-jg_session=jgs_x ; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("jgs_x"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("jg_session=jgs_y"));
        assert_eq!(session_cookie(&h), None, "only the __Host- cookie counts");
        h.append(COOKIE, HeaderValue::from_static("__Host-jg_session="));
        assert_eq!(session_cookie(&h), None, "an empty value is no session");
    }

    #[test]
    fn the_csrf_token_is_bound_to_the_session() {
        let a = csrf_token("jgs_a");
        assert_eq!(a.len(), 64);
        assert_eq!(a, csrf_token("jgs_a"));
        assert_ne!(a, csrf_token("jgs_b"));
        assert!(!a.contains("jgs_a"));
    }

    #[test]
    fn cookie_requests_are_checked_for_cross_site_use() {
        let csrf = csrf_token("jgs_a");
        let origins = ["https://gw.example:8443".to_owned()];
        let check = |req: &Request| cross_site_check(req, &csrf, &origins);
        let get = request(Method::GET, &[]);
        assert!(check(&get).is_ok());
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(check(&request(m.clone(), &[])).is_err());
            let wrong = request(m.clone(), &[(CSRF_HEADER, "00")]);
            assert!(check(&wrong).is_err());
            let right = request(m, &[(CSRF_HEADER, csrf.as_str())]);
            assert!(check(&right).is_ok());
        }
        let ws = |origin: Option<&str>, host: &str| {
            let mut h = vec![("upgrade", "websocket"), ("host", host)];
            if let Some(o) = origin {
                h.push(("origin", o));
            }
            request(Method::GET, &h)
        };
        assert!(check(&ws(Some("https://gw.example:8443"), "gw.example:8443")).is_ok());
        // The configured origin decides, not the Host the request names.
        assert!(check(&ws(Some("https://gw.example:8443"), "other.example")).is_ok());
        assert!(check(&ws(Some("https://evil.example"), "evil.example")).is_err());
        for bad in [
            None,
            Some("https://evil.example"),
            Some("http://gw.example:8443"),
            Some("https://gw.example:8443.evil.example"),
            Some("https://gw.example"),
            Some("null"),
        ] {
            assert!(check(&ws(bad, "gw.example:8443")).is_err(), "{bad:?}");
        }
    }
}
