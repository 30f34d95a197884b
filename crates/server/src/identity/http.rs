//! `/api/v1/auth/*`.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use jumpgate_api_types as api;

use crate::api::{ApiError, ApiJson, Auth};
use crate::ids;
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
}

async fn login(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<api::LoginRequest>,
) -> Result<axum::Json<api::LoginResponse>, ApiError> {
    let s = super::login(&st.db, &req.username, &req.password, st.config.session_ttl).await;
    let s = match s {
        Ok(s) => s,
        Err(e) => {
            // The username may be a typo'd password: log neither.
            tracing::info!("login failed");
            return Err(e.into());
        }
    };
    tracing::info!(user = %s.principal.username, "login");
    Ok(axum::Json(api::LoginResponse {
        token: s.token,
        expires_at: ids::rfc3339(s.expires_at_ms),
        username: s.principal.username,
        role: s.principal.role.as_str().to_owned(),
    }))
}

async fn logout(State(st): State<AppState>, auth: Auth) -> Result<StatusCode, ApiError> {
    super::logout(&st.db, &auth.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
