//! `/api/v1/webhooks*`: subscriptions and their deliveries, all
//! `manage-webhooks` (site-wide), every change audited.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::webhooks as api;

use super::WebhookError;
use crate::api::{ApiError, ApiJson};
use crate::rbac::{Action, Caller};
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::Site;
    api.get("/api/v1/webhooks", Site(Action::ReadWebhooks), list)
        .post("/api/v1/webhooks", Site(Action::WriteWebhooks), add)
        .delete(
            "/api/v1/webhooks/{name}",
            Site(Action::WriteWebhooks),
            remove,
        )
        .post(
            "/api/v1/webhooks/{name}/rotate-secret",
            Site(Action::WriteWebhooks),
            rotate_secret,
        )
        .put(
            "/api/v1/webhooks/{name}/auth-header",
            Site(Action::WriteWebhooks),
            set_auth,
        )
        .delete(
            "/api/v1/webhooks/{name}/auth-header",
            Site(Action::WriteWebhooks),
            remove_auth,
        )
        .get(
            "/api/v1/webhooks/deliveries",
            Site(Action::ReadWebhooks),
            deliveries,
        )
        .post(
            "/api/v1/webhooks/deliveries/replay",
            Site(Action::WriteWebhooks),
            replay,
        )
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        use WebhookError as E;
        match e {
            E::Invalid(_) => Self::bad_request(e.to_string()),
            E::NameTaken(_) => Self::new(StatusCode::CONFLICT, ErrorCode::NameTaken, e.to_string()),
            E::NotFound(_) | E::NoDelivery(_) => {
                Self::not_found(ErrorCode::NotFound, e.to_string())
            }
            E::Key(e) => Self::internal(e),
            E::Db(e) => Self::internal(e),
        }
    }
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::Webhook>>, ApiError> {
    Ok(Json(super::list(&st.db).await.map_err(WebhookError::Db)?))
}

async fn add(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::NewWebhook>,
) -> Result<(StatusCode, Json<api::WebhookSecret>), ApiError> {
    let s = super::add(&st, &req, &who.name).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

async fn remove(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::remove(&st, &name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::WebhookSecret>, ApiError> {
    Ok(Json(super::rotate_secret(&st, &name, &who.name).await?))
}

async fn set_auth(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::WebhookAuth>,
) -> Result<Json<api::Webhook>, ApiError> {
    let w = super::set_auth_header(&st, &name, Some(&req.auth_header), &who.name).await?;
    Ok(Json(w))
}

async fn remove_auth(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::Webhook>, ApiError> {
    Ok(Json(
        super::set_auth_header(&st, &name, None, &who.name).await?,
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    subscription: Option<String>,
    #[serde(default)]
    dead: bool,
}

async fn deliveries(
    State(st): State<AppState>,
    query: Result<Query<DeliveriesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<api::Delivery>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(Json(
        super::deliveries(&st.db, q.subscription.as_deref(), q.dead).await?,
    ))
}

async fn replay(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::Replay>,
) -> Result<Json<api::Replayed>, ApiError> {
    let count = super::replay(&st, &req, &who.name).await?;
    Ok(Json(api::Replayed { count }))
}
