//! `/api/v1/targets*`, `/api/v1/endpoints/{name}/jump-point` and
//! `/api/v1/jump-points`.
//!
//! Targets are listed and shown like endpoints (the caller's groups only;
//! one outside them does not exist for the caller); adding and removing
//! them, and marking jump points, is `manage-endpoints`' (audited).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::targets as api;

use super::TargetError;
use crate::api::{ApiError, ApiJson};
use crate::rbac::{Action, Caller};
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::Site;
    api.get("/api/v1/targets", Site(Action::ListEndpoints), list)
        .post("/api/v1/targets", Site(Action::WriteEndpoints), add)
        .get("/api/v1/targets/{name}", Site(Action::ListEndpoints), show)
        .delete(
            "/api/v1/targets/{name}",
            Site(Action::WriteEndpoints),
            remove,
        )
        .put(
            "/api/v1/targets/{name}/host-key",
            Site(Action::WriteEndpoints),
            set_host_key,
        )
        .put(
            "/api/v1/endpoints/{name}/jump-point",
            Site(Action::WriteEndpoints),
            jump_point,
        )
        .get(
            "/api/v1/jump-points",
            Site(Action::ListEndpoints),
            jump_points,
        )
}

impl From<TargetError> for ApiError {
    fn from(e: TargetError) -> Self {
        use TargetError as E;
        match e {
            E::Invalid(_) | E::UnknownGroup(_) | E::NotJumpPoint(_) | E::Outside { .. } => {
                Self::bad_request(e.to_string())
            }
            E::NameTaken(_) => Self::new(StatusCode::CONFLICT, ErrorCode::NameTaken, e.to_string()),
            E::NotFound(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            E::UnknownEndpoint(_) => Self::not_found(ErrorCode::UnknownEndpoint, e.to_string()),
            E::Db(e) => Self::internal(e),
        }
    }
}

async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Vec<api::Target>>, ApiError> {
    let all = super::list(&st.db).await?;
    Ok(Json(
        all.iter()
            .filter(|t| who.can_view(&t.group))
            .map(super::Target::dto)
            .collect(),
    ))
}

async fn show(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::Target>, ApiError> {
    match super::find(&st.db, &name).await? {
        Some(t) if who.can_view(&t.group) => Ok(Json(t.dto())),
        _ => Err(TargetError::NotFound(name).into()),
    }
}

async fn add(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::NewTarget>,
) -> Result<(StatusCode, Json<api::Target>), ApiError> {
    let t = super::add(&st.db, &req, &who.name).await?;
    Ok((StatusCode::CREATED, Json(t.dto())))
}

async fn remove(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::remove(&st.db, &name, &who.name).await?;
    // Live sessions on it end at the re-check (the target is gone).
    Ok(StatusCode::NO_CONTENT)
}

async fn set_host_key(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::SetHostKey>,
) -> Result<Json<api::Target>, ApiError> {
    let t = super::set_host_key(&st.db, &name, &req, &who.name).await?;
    Ok(Json(t.dto()))
}

async fn jump_point(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::JumpPoint>,
) -> Result<Json<api::JumpPointState>, ApiError> {
    let set = super::set_jump_point(&st.db, &name, req.on, req.allow.as_deref(), &who.name).await?;
    Ok(Json(api::JumpPointState {
        endpoint: name,
        on: req.on,
        allow: set.allow.rules(),
        outside: set.outside,
    }))
}

/// The jump points of the caller's groups, with what each may reach.
async fn jump_points(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Vec<api::JumpPointState>>, ApiError> {
    let all = super::jump_points(&st.db).await?;
    Ok(Json(
        all.into_iter()
            .filter(|(_, group, _)| who.can_view(group))
            .map(|(endpoint, _, allow)| api::JumpPointState {
                endpoint,
                on: true,
                allow: allow.rules(),
                outside: Vec::new(),
            })
            .collect(),
    ))
}
