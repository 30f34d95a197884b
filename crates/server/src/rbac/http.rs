//! `/api/v1/roles`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jumpgate_api_types as api;

use super::Action;
use super::store::{self, RoleError};
use crate::api::{Access, Api, ApiError, ApiJson, Caller};
use crate::events;
use crate::state::AppState;

pub(crate) fn routes(api: Api) -> Api {
    api.get("/api/v1/roles", Access::Site(Action::ReadRoles), list)
        .post("/api/v1/roles", Access::Site(Action::WriteRoles), create)
        .patch(
            "/api/v1/roles/{name}",
            Access::Site(Action::WriteRoles),
            update,
        )
        .delete(
            "/api/v1/roles/{name}",
            Access::Site(Action::WriteRoles),
            delete,
        )
}

impl From<RoleError> for ApiError {
    fn from(e: RoleError) -> Self {
        match e {
            RoleError::Unknown(_) => Self::not_found("not_found", e.to_string()),
            RoleError::Exists(_)
            | RoleError::Builtin(_)
            | RoleError::InUse(..)
            | RoleError::InPolicy(_) => Self::conflict(e.to_string()),
            RoleError::Invalid(_) => Self::bad_request(e.to_string()),
            RoleError::Db(e) => Self::internal(e),
        }
    }
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::Role>>, ApiError> {
    Ok(Json(store::list(&st.db).await?))
}

async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateRole>,
) -> Result<(StatusCode, Json<api::Role>), ApiError> {
    let mut tx = crate::store::begin_write(&st.db).await?;
    let role = store::create(&mut tx, &req).await?;
    events::append_in(
        &mut tx,
        &who.name,
        "role-create",
        &role.name,
        "ok",
        &role.permissions.join(","),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

async fn update(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::UpdateRole>,
) -> Result<Json<api::Role>, ApiError> {
    let mut tx = crate::store::begin_write(&st.db).await?;
    let role = store::update(&mut tx, &name, &req).await?;
    events::append_in(
        &mut tx,
        &who.name,
        "role-update",
        &name,
        "ok",
        &role.permissions.join(","),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(role))
}

async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut tx = crate::store::begin_write(&st.db).await?;
    store::delete(&mut tx, &name).await?;
    events::append_in(&mut tx, &who.name, "role-delete", &name, "ok", "").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
