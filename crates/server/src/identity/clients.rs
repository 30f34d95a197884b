//! OAuth2 API clients (RFC 6749 §4.4, client credentials).
//!
//! A client has a role, endpoint groups and scopes (`read`, `write`). Its
//! secret is shown once, at creation and rotation, and stored as SHA-256
//! (it is a 256-bit random value, so a slow hash adds nothing). Access
//! tokens (`jga_…`) last an hour and carry the scopes they were issued for.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};

use super::{IdentityError, check_groups, check_role, json_list, to_json};
use crate::api::{Access, Api, ApiError, ApiJson, Caller};
use crate::ids;
use crate::rbac::{Action, Restriction, Scopes, Subject, SubjectKind};
use crate::{events, state::AppState};

/// Lifetime of an access token.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

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
    let client_id = client_id
        .ok_or_else(|| ApiError::not_found("not_found", format!("no API client named `{name}`")))?;
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
            "not_found",
            format!("no API client named `{name}`"),
        ));
    }
    events::append_in(&mut tx, &who.name, "api-client-delete", &name, "ok", "").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An RFC 6749 §5.2 error answer.
struct OAuthFailure {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: answer with a challenge.
    basic: bool,
}

impl OAuthFailure {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic: false,
        }
    }
}

impl IntoResponse for OAuthFailure {
    fn into_response(self) -> Response {
        let body = api::OAuthError {
            error: self.error.to_owned(),
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

/// Decodes `application/x-www-form-urlencoded` (RFC 6749 §4.4.2).
fn form(body: &[u8]) -> Result<Vec<(String, String)>, OAuthFailure> {
    let bad = || {
        OAuthFailure::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    let decode = |s: &str| -> Result<String, OAuthFailure> {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).map_err(|_| bad())
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
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

async fn issue(
    db: &SqlitePool,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<api::TokenResponse, OAuthFailure> {
    let params = form(body)?;
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // Repeated parameters are an error (RFC 6749 §3.2).
    for k in ["grant_type", "scope", "client_id", "client_secret"] {
        if params.iter().filter(|(n, _)| n == k).count() > 1 {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("`{k}` given twice"),
            ));
        }
    }
    match param("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant type `{other}` is not supported; use client_credentials"),
            ));
        }
        None => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is required",
            ));
        }
    }
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok());
    let (client_id, secret, used_basic) = match (&basic, param("client_id"), param("client_secret"))
    {
        (Some(pair), None, None) => {
            let (id, secret) = pair.split_once(':').unwrap_or((pair, ""));
            (id.to_owned(), secret.to_owned(), true)
        }
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned(), false),
        (Some(_), _, _) => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "use one client authentication method, not both",
            ));
        }
        _ => {
            let mut f = OAuthFailure::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required",
            );
            f.basic = true;
            return Err(f);
        }
    };
    let invalid_client = || OAuthFailure {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        description: "unknown client or wrong secret".into(),
        basic: used_basic,
    };
    let row = sqlx::query("SELECT secret_hash, scopes FROM api_clients WHERE client_id = ?")
        .bind(&client_id)
        .fetch_optional(db)
        .await
        .map_err(|e| {
            OAuthFailure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                internal(e),
            )
        })?;
    // Hash and compare even for unknown clients: same work either way.
    let presented = ids::token_hash(&secret);
    let stored: Vec<u8> = row
        .as_ref()
        .map_or_else(|| vec![0u8; presented.len()], |r| r.get("secret_hash"));
    let matches = aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &stored).is_ok();
    let Some(row) = row.filter(|_| matches) else {
        return Err(invalid_client());
    };
    let allowed = Scopes::parse(&json_list(&row.get::<String, _>("scopes"))).unwrap_or(Scopes {
        read: false,
        write: false,
    });
    let granted = match param("scope") {
        None => allowed,
        Some(s) => {
            let wanted: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
            let wanted = Scopes::parse(&wanted)
                .map_err(|e| OAuthFailure::new(StatusCode::BAD_REQUEST, "invalid_scope", e))?;
            if (wanted.read && !allowed.read) || (wanted.write && !allowed.write) {
                return Err(OAuthFailure::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    "the requested scope exceeds the client's scopes",
                ));
            }
            wanted
        }
    };
    let token = ids::random_token("jga");
    let now = ids::now_ms();
    sqlx::query("INSERT INTO client_tokens (token_hash, client_id, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
        .bind(ids::token_hash(&token))
        .bind(&client_id)
        .bind(to_json(&granted.names()))
        .bind(now)
        .bind(now + TOKEN_TTL.as_millis() as i64)
        .execute(db)
        .await
        .map_err(|e| OAuthFailure::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", internal(e)))?;
    let _ = sqlx::query("DELETE FROM client_tokens WHERE expires_at <= ?")
        .bind(now)
        .execute(db)
        .await;
    Ok(api::TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: TOKEN_TTL.as_secs(),
        scope: granted.names().join(" "),
    })
}

fn internal(e: sqlx::Error) -> String {
    tracing::error!(error = %e, "token endpoint database error");
    "internal error".into()
}

/// Resolves an access token to its client.
pub(crate) async fn authenticate(
    db: &SqlitePool,
    token_hash: &[u8],
) -> Result<Subject, IdentityError> {
    let row = super::live_token_row(
        db,
        "SELECT c.client_id, c.name, c.role, c.groups, t.scopes FROM client_tokens t JOIN api_clients c ON c.client_id = t.client_id
         WHERE t.token_hash = ? AND t.expires_at > ?",
        token_hash,
    )
    .await?;
    // Scopes were validated when the token was issued; unreadable ones grant nothing.
    let scopes = Scopes::parse(&json_list(&row.get::<String, _>("scopes"))).unwrap_or(Scopes {
        read: false,
        write: false,
    });
    let kind = SubjectKind::ApiClient {
        client_id: row.get("client_id"),
    };
    super::subject(
        db,
        &row,
        row.get("name"),
        kind,
        row.get("role"),
        scopes,
        Restriction::None,
    )
    .await
}
