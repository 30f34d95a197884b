//! The API clients' routes: `/oauth2/token` and `/api/v1/api-clients`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::{self as api, ErrorCode};
use sqlx::Row;

use super::clients::{OAuthFailure, issue};
use super::{check_groups, check_role, json_list, to_json};
use crate::api::{Access, Api, ApiError, ApiJson, Caller};
use crate::ids;
use crate::rbac::{Action, Scopes};
use crate::{events, state::AppState};

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

fn client(row: &sqlx::sqlite::SqliteRow) -> api::ApiClient {
    api::ApiClient {
        client_id: row.get("client_id"),
        name: row.get("name"),
        scopes: json_list(&row.get::<String, _>("scopes")),
        role: row.get("role"),
        groups: json_list(&row.get::<String, _>("groups")),
        created_at: ids::rfc3339(row.get("created_at")),
        secret_rotated_at: ids::rfc3339(row.get("secret_rotated_at")),
    }
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::ApiClient>>, ApiError> {
    let rows = sqlx::query("SELECT * FROM api_clients ORDER BY name")
        .fetch_all(&*st.db)
        .await?;
    Ok(Json(rows.iter().map(client).collect()))
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
    check_role(&st.db, &req.role).await?;
    check_groups(&st.db, &req.groups).await?;
    let client_id = ids::random_token("jgc")
        .chars()
        .take(28)
        .collect::<String>();
    let secret = ids::random_token("jgcs");
    let now = ids::now_ms();
    // The client and its audit entry commit together.
    let mut tx = crate::store::begin_write(&st.db).await?;
    let res = sqlx::query(
        "INSERT INTO api_clients (client_id, name, secret_hash, scopes, role, groups, created_at, secret_rotated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&client_id)
    .bind(&req.name)
    .bind(ids::token_hash(&secret))
    .bind(to_json(&scopes.names()))
    .bind(&req.role)
    .bind(to_json(&req.groups))
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await;
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
    events::append_in(
        &mut tx,
        &who.name,
        "api-client-create",
        &req.name,
        "ok",
        &scopes.names().join(","),
    )
    .await?;
    tx.commit().await?;
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
    let mut tx = crate::store::begin_write(&st.db).await?;
    let client_id: Option<String> =
        sqlx::query_scalar("UPDATE api_clients SET secret_hash = ?, secret_rotated_at = ? WHERE name = ? RETURNING client_id")
            .bind(ids::token_hash(&secret))
            .bind(ids::now_ms())
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
    let client_id = client_id.ok_or_else(|| {
        ApiError::not_found(ErrorCode::NotFound, format!("no API client named `{name}`"))
    })?;
    // Tokens issued under the old secret end with it.
    sqlx::query("DELETE FROM client_tokens WHERE client_id = ?")
        .bind(&client_id)
        .execute(&mut *tx)
        .await?;
    events::append_in(&mut tx, &who.name, "api-client-rotate", &name, "ok", "").await?;
    tx.commit().await?;
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
    let mut tx = crate::store::begin_write(&st.db).await?;
    let gone = sqlx::query("DELETE FROM api_clients WHERE name = ?")
        .bind(&name)
        .execute(&mut *tx)
        .await?;
    if gone.rows_affected() == 0 {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no API client named `{name}`"),
        ));
    }
    events::append_in(&mut tx, &who.name, "api-client-delete", &name, "ok", "").await?;
    tx.commit().await?;
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
