//! HTTP plumbing shared by the domain routes: router assembly, the one
//! mapping from errors to HTTP answers, authentication and JSON extractors,
//! and security headers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, StatusCode, request::Parts};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use jumpgate_api_types::ErrorBody;

use crate::identity::{self, IdentityError, Principal};
use crate::state::AppState;

/// The whole HTTP surface of the TLS port.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .merge(identity::http::routes())
        .merge(crate::agents::http::routes())
        .merge(crate::sessions::http::routes())
        .fallback(|| async { ApiError::not_found("not_found", "no such route") })
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
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
    res
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
            E::UserExists(_) => Self::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            E::UnknownRole(_) | E::InvalidName(_) | E::WeakPassword(_) => {
                Self::bad_request(e.to_string())
            }
            E::Hash | E::Db(_) => Self::internal(e),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Debug)]
pub(crate) struct Auth {
    pub(crate) principal: Principal,
    pub(crate) token: String,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(IdentityError::Unauthenticated)?
            .to_owned();
        let principal = identity::authenticate(&state.db, &token).await?;
        Ok(Self { principal, token })
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
