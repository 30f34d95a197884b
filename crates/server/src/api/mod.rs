//! The HTTP toolkit the domains build their routes with: [`Api`] records
//! every route with its [`Access`] rule (so none can exist without one),
//! [`ApiError`] is the one mapping from errors to HTTP answers, and the
//! extractors ([`Authenticated`], [`PeerAddr`], [`ApiJson`]). Credentials
//! on requests are read in [`auth`].
//!
//! It imports no domain (a test checks: `crate::layers`): the gateway's
//! state and the site action a route needs are type parameters, bound by
//! the domains' aliases (`state::Api`, `rbac::Access`, `rbac::Caller`).
//! `routes` assembles the domains' routes and wraps each with its check.

mod auth;

use std::net::SocketAddr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::{Method, StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use jumpgate_api_types::{ErrorBody, ErrorCode};

pub(crate) use auth::{CookieSession, csrf_token, presented, session_token};
/// What a route may require on the whole site (`rbac::Action`): its name
/// is the route's access rule as text.
pub(crate) trait SiteAction: Copy {
    fn name(self) -> &'static str;
}

/// Who may call a route; `A` is the site action type (`rbac::Access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access<A> {
    /// No credentials: health, login, enrollment (token in the body), the
    /// OAuth2 token endpoint (client credentials).
    Public,
    /// Authenticated, and authorization allows this action on the site.
    Site(A),
    /// Authenticated; the handler asks about the endpoint concerned.
    PerEndpoint,
}

impl<A: SiteAction> Access<A> {
    /// `public`, `per-endpoint`, or the site action's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::PerEndpoint => "per-endpoint",
            Self::Site(a) => a.name(),
        }
    }
}

/// One route as a domain declares it: the access check is added when the
/// routes are assembled (`routes::router`). `S` is the handlers' state.
pub(crate) struct Route<S, A> {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) access: Access<A>,
    pub(crate) handler: MethodRouter<S>,
}

/// A route and its access rule, as text (see `route_table`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: String,
    pub path: String,
    /// `public`, `per-endpoint`, or the `rbac` action name.
    pub access: String,
}

/// Collects routes, each with its access rule (domains use the alias
/// `state::Api`).
pub(crate) struct Api<S, A> {
    routes: Vec<Route<S, A>>,
}

impl<S: Clone + Send + Sync + 'static, A> Api<S, A> {
    pub(crate) fn new() -> Self {
        Self { routes: Vec::new() }
    }

    /// Every route added, in order.
    pub(crate) fn into_routes(self) -> Vec<Route<S, A>> {
        self.routes
    }

    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access<A>,
        handler: MethodRouter<S>,
    ) -> Self {
        self.routes.push(Route {
            method,
            path,
            access,
            handler,
        });
        self
    }

    pub(crate) fn get<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access<A>,
        h: H,
    ) -> Self {
        self.add(Method::GET, path, access, get(h))
    }
    pub(crate) fn post<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access<A>,
        h: H,
    ) -> Self {
        self.add(Method::POST, path, access, post(h))
    }
    pub(crate) fn put<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access<A>,
        h: H,
    ) -> Self {
        self.add(Method::PUT, path, access, put(h))
    }
    pub(crate) fn patch<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access<A>,
        h: H,
    ) -> Self {
        self.add(Method::PATCH, path, access, patch(h))
    }
    pub(crate) fn delete<H: Handler<T, S>, T: 'static>(
        self,
        path: &'static str,
        access: Access<A>,
        h: H,
    ) -> Self {
        self.add(Method::DELETE, path, access, delete(h))
    }
}

/// Every error answer is a JSON [`ErrorBody`]. The framework's own
/// rejections (a path segment that is not valid UTF-8, a malformed query
/// string, an unreadable body, a method the route does not serve) are plain
/// text or empty; they are rewritten here, in one place, so that no route,
/// present or future, answers bad input with anything else.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
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
        ApiError::new(
            status,
            ErrorCode::Internal,
            "internal error; see the gateway log",
        )
    } else {
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            _ => ErrorCode::BadRequest,
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

/// The authenticated, authorized caller of a route registered with
/// [`Access::Site`] or [`Access::PerEndpoint`], as the access check put it
/// on the request (`T`: `rbac::Subject`; domains extract `rbac::Caller`).
#[derive(Debug)]
pub(crate) struct Authenticated<T>(pub(crate) T);

impl<S: Send + Sync, T: Clone + Send + Sync + 'static> FromRequestParts<S> for Authenticated<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<T>()
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
    code: ErrorCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, message)
    }
    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, ErrorCode::Conflict, message)
    }
    pub(crate) fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the gateway log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
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
    ApiError::new(r.status(), ErrorCode::BadRequest, r.body_text())
}
