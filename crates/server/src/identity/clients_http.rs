//! The API clients' routes: `/oauth2/token` and `/api/v1/api-clients`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::{self as api, ErrorCode};

use super::clients::{OAuthFailure, issue, secret_hash};
use super::{check_groups, check_role, json_list, to_json};
use crate::api::{ApiError, ApiJson};
use crate::ids;
use crate::rbac::{Access, Caller};
use crate::rbac::{Action, Scopes};
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, sql};

pub(crate) fn routes(api: Api) -> Api {
    api.post("/oauth2/token", Access::Public, token)
        .get(
            "/api/v1/api-clients",
            Access::Site(Action::ReadApiClients),
            list,
        )
        .post(
            "/api/v1/api-clients",
            Access::Site(Action::WriteApiClients),
            create,
        )
        .post(
            "/api/v1/api-clients/{name}/rotate",
            Access::Site(Action::WriteApiClients),
            rotate,
        )
        .delete(
            "/api/v1/api-clients/{name}",
            Access::Site(Action::WriteApiClients),
            delete,
        )
}

/// An `api_clients` row as both engines return it (the secret's hash aside).
#[derive(sqlx::FromRow)]
struct ClientRow {
    client_id: String,
    name: String,
    scopes: String,
    role: String,
    groups: String,
    created_at: i64,
    secret_rotated_at: i64,
}

impl From<ClientRow> for api::ApiClient {
    fn from(r: ClientRow) -> Self {
        Self {
            client_id: r.client_id,
            name: r.name,
            scopes: json_list(&r.scopes),
            role: r.role,
            groups: json_list(&r.groups),
            created_at: ids::rfc3339(r.created_at),
            secret_rotated_at: ids::rfc3339(r.secret_rotated_at),
        }
    }
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::ApiClient>>, ApiError> {
    let mut c = st.db.conn().await?;
    let rows: Vec<ClientRow> = sql!(c, |c| sqlx::query_as(
        "SELECT client_id, name, scopes, role, groups, created_at, secret_rotated_at
           FROM api_clients ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(Json(rows.into_iter().map(api::ApiClient::from).collect()))
}

async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateApiClient>,
) -> Result<(StatusCode, Json<api::ApiClientSecret>), ApiError> {
    ids::validate_name("API client", &req.name).map_err(ApiError::bad_request)?;
    let scopes = Scopes::parse(&req.scopes).map_err(ApiError::bad_request)?;
    if !scopes.read && !scopes.write {
        return Err(ApiError::bad_request(
            "an API client needs the read or write scope (or both)",
        ));
    }
    let client_id = ids::random_token("jgc")
        .chars()
        .take(28)
        .collect::<String>();
    let secret = ids::random_token("jgcs");
    let now = ids::now_ms();
    // The checks, the client and its audit entry in one transaction.
    let mut w = st.db.write().await?;
    check_role(&mut w, &req.role).await?;
    check_groups(&mut w, &req.groups).await?;
    let res = sql!(w, |c| {
        sqlx::query(
        "INSERT INTO api_clients (client_id, name, secret_hash, scopes, role, groups, created_at, secret_rotated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&client_id)
    .bind(&req.name)
    .bind(secret_hash(&secret))
    .bind(to_json(&scopes.names()))
    .bind(&req.role)
    .bind(to_json(&req.groups))
    .bind(now)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    });
    match res {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiError::conflict(format!(
                "an API client named `{}` exists",
                req.name
            )));
        }
        other => {
            other?;
        }
    }
    w.audit(
        AuditEvent::new(&who.name, AuditAction::ApiClientCreate, &req.name)
            .detail(scopes.names().join(",")),
    )
    .await?;
    w.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(api::ApiClientSecret {
            client_id,
            client_secret: secret,
        }),
    ))
}

async fn rotate(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::ApiClientSecret>, ApiError> {
    let secret = ids::random_token("jgcs");
    let mut w = st.db.write().await?;
    let client_id: Option<String> = sql!(w, |c| sqlx::query_scalar(
        "UPDATE api_clients SET secret_hash = $1, secret_rotated_at = $2 WHERE name = $3
         RETURNING client_id"
    )
    .bind(secret_hash(&secret))
    .bind(ids::now_ms())
    .bind(&name)
    .fetch_optional(&mut *c)
    .await)?;
    let client_id = client_id.ok_or_else(|| {
        ApiError::not_found(ErrorCode::NotFound, format!("no API client named `{name}`"))
    })?;
    // Tokens issued under the old secret end with it.
    sql!(w, |c| sqlx::query(
        "DELETE FROM client_tokens WHERE client_id = $1"
    )
    .bind(&client_id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(AuditEvent::new(
        &who.name,
        AuditAction::ApiClientRotate,
        &name,
    ))
    .await?;
    w.commit().await?;
    Ok(Json(api::ApiClientSecret {
        client_id,
        client_secret: secret,
    }))
}

async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut w = st.db.write().await?;
    let gone = sql!(w, |c| sqlx::query(
        "DELETE FROM api_clients WHERE name = $1"
    )
    .bind(&name)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if gone == 0 {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no API client named `{name}`"),
        ));
    }
    w.audit(AuditEvent::new(
        &who.name,
        AuditAction::ApiClientDelete,
        &name,
    ))
    .await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let body = api::OAuthError {
            error: self.error,
            error_description: self.description,
        };
        let mut res = (self.status, Json(body)).into_response();
        if self.basic && self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"jumpgate\""),
            );
        }
        res
    }
}

/// `POST /oauth2/token` with `grant_type=client_credentials`.
async fn token(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match issue(&st.db, &headers, &body).await {
        Ok(t) => Json(t).into_response(),
        Err(f) => f.into_response(),
    }
}
