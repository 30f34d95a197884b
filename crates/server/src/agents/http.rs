//! `/api/v1/agents/enroll` and `/api/v1/endpoints`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use jumpgate_api_types as api;

use super::EnrollError;
use crate::api::{ApiError, ApiJson, Auth};
use crate::ids;
use crate::rbac::{self, Action, Decision, Resource};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents/enroll", post(enroll))
        .route("/api/v1/endpoints", get(list))
}

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::UnknownToken | EnrollError::TokenSpent | EnrollError::TokenExpired => {
                Self::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_enrollment_token",
                    e.to_string(),
                )
            }
            EnrollError::NameTaken(_) => {
                Self::new(StatusCode::CONFLICT, "name_taken", e.to_string())
            }
            EnrollError::InvalidName(_) | EnrollError::InvalidKey => {
                Self::bad_request(e.to_string())
            }
            EnrollError::Db(e) => Self::internal(e),
        }
    }
}

async fn enroll(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<api::EnrollRequest>,
) -> Result<Json<api::EnrollResponse>, ApiError> {
    match super::enroll(&st.db, &req).await {
        Ok(res) => {
            tracing::info!(endpoint = %res.endpoint, group = %res.group, id = %res.agent_id, "endpoint enrolled");
            Ok(Json(res))
        }
        Err(e) => {
            tracing::info!(endpoint = %req.name, reason = %e, "enrollment refused");
            Err(e.into())
        }
    }
}

async fn list(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<api::Endpoint>>, ApiError> {
    if rbac::authorize(&auth.principal, Action::ListEndpoints, Resource::Site) == Decision::Forbid {
        return Err(ApiError::forbidden("your role may not list endpoints"));
    }
    let now = ids::now_ms();
    let endpoints = super::list(&st.db)
        .await?
        .into_iter()
        .map(|e| {
            let online = st.agents.is_online(&e.id);
            let last_seen = if online { Some(now) } else { e.last_seen };
            api::Endpoint {
                id: e.id.0,
                name: e.name,
                group: e.group,
                online,
                last_seen: last_seen.map(ids::rfc3339),
                enrolled_at: ids::rfc3339(e.enrolled_at),
                hostname: e.details.hostname,
                os: e.details.os,
                arch: e.details.arch,
                agent_version: e.details.agent_version,
            }
        })
        .collect();
    Ok(Json(endpoints))
}
