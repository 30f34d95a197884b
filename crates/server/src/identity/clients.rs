//! OAuth2 API clients (RFC 6749 §4.4, client credentials).
//!
//! A client has a role, endpoint groups and scopes (`read`, `write`). Its
//! secret is shown once, at creation and rotation, and stored as SHA-256
//! (it is a 256-bit random value, so a slow hash adds nothing). Access
//! tokens (`jga_…`) last an hour and carry the scopes they were issued for.
//! Its routes are in `clients_http.rs`.

use std::time::Duration;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use jumpgate_api_types::{self as api, OAuthErrorCode};

use super::{IdentityError, json_list, to_json};
use crate::ids;
use crate::rbac::{Restriction, Scopes, Subject, SubjectKind};
use crate::store::{Store, sql};

/// Lifetime of an access token.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// An RFC 6749 §5.2 error answer.
pub(super) struct OAuthFailure {
    pub(super) status: StatusCode,
    pub(super) error: OAuthErrorCode,
    pub(super) description: String,
    /// The client authenticated with HTTP Basic: answer with a challenge.
    pub(super) basic: bool,
}

impl OAuthFailure {
    fn new(status: StatusCode, error: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic: false,
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` (RFC 6749 §4.4.2).
fn form(body: &[u8]) -> Result<Vec<(String, String)>, OAuthFailure> {
    let bad = || {
        OAuthFailure::new(
            StatusCode::BAD_REQUEST,
            OAuthErrorCode::InvalidRequest,
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

pub(super) async fn issue(
    db: &Store,
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
                OAuthErrorCode::InvalidRequest,
                format!("`{k}` given twice"),
            ));
        }
    }
    match param("grant_type") {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                OAuthErrorCode::UnsupportedGrantType,
                format!("grant type `{other}` is not supported; use client_credentials"),
            ));
        }
        None => {
            return Err(OAuthFailure::new(
                StatusCode::BAD_REQUEST,
                OAuthErrorCode::InvalidRequest,
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
                OAuthErrorCode::InvalidRequest,
                "use one client authentication method, not both",
            ));
        }
        _ => {
            let mut f = OAuthFailure::new(
                StatusCode::UNAUTHORIZED,
                OAuthErrorCode::InvalidClient,
                "client authentication is required",
            );
            f.basic = true;
            return Err(f);
        }
    };
    let invalid_client = || OAuthFailure {
        status: StatusCode::UNAUTHORIZED,
        error: OAuthErrorCode::InvalidClient,
        description: "unknown client or wrong secret".into(),
        basic: used_basic,
    };
    let server_error = |e: sqlx::Error| {
        OAuthFailure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            OAuthErrorCode::ServerError,
            internal(e),
        )
    };
    let mut c = db.conn().await.map_err(server_error)?;
    // Stored as lowercase hex text ([`secret_hash`]) on both engines.
    let q = "SELECT secret_hash, scopes FROM api_clients WHERE client_id = $1";
    let row: Option<(String, String)> = sql!(c, |c| sqlx::query_as(q)
        .bind(&client_id)
        .fetch_optional(&mut *c)
        .await)
    .map_err(server_error)?;
    // Hash and compare even for unknown clients: same work either way.
    let presented = secret_hash(&secret);
    let stored = row
        .as_ref()
        .map_or_else(|| "0".repeat(presented.len()), |(hash, _)| hash.clone());
    let matches =
        aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), stored.as_bytes())
            .is_ok();
    let Some((_, scopes)) = row.filter(|_| matches) else {
        return Err(invalid_client());
    };
    let allowed = Scopes::parse(&json_list(&scopes)).unwrap_or(Scopes {
        read: false,
        write: false,
    });
    let granted = match param("scope") {
        None => allowed,
        Some(s) => {
            let wanted: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
            let wanted = Scopes::parse(&wanted).map_err(|e| {
                OAuthFailure::new(StatusCode::BAD_REQUEST, OAuthErrorCode::InvalidScope, e)
            })?;
            if (wanted.read && !allowed.read) || (wanted.write && !allowed.write) {
                return Err(OAuthFailure::new(
                    StatusCode::BAD_REQUEST,
                    OAuthErrorCode::InvalidScope,
                    "the requested scope exceeds the client's scopes",
                ));
            }
            wanted
        }
    };
    let token = ids::random_token("jga");
    let now = ids::now_ms();
    sql!(c, |c| sqlx::query(
        "INSERT INTO client_tokens (token_hash, client_id, scopes, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(ids::token_hash(&token))
    .bind(&client_id)
    .bind(to_json(&granted.names()))
    .bind(now)
    .bind(now + TOKEN_TTL.as_millis() as i64)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .map_err(server_error)?;
    let _ = sql!(c, |c| sqlx::query(
        "DELETE FROM client_tokens WHERE expires_at <= $1"
    )
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()));
    Ok(api::TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: TOKEN_TTL.as_secs(),
        scope: granted.names().join(" "),
    })
}

/// How a client secret is stored: its SHA-256 (a 256-bit random secret
/// needs no slow hash), as lowercase hex text.
pub(super) fn secret_hash(secret: &str) -> String {
    ids::token_hash(secret)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn internal(e: sqlx::Error) -> String {
    tracing::error!(error = %e, "token endpoint database error");
    "internal error".into()
}

/// A live access token's client, as [`authenticate`] reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    client_id: String,
    name: String,
    role: String,
    groups: String,
    scopes: String,
}

/// Resolves an access token to its client.
pub(crate) async fn authenticate(db: &Store, token_hash: &[u8]) -> Result<Subject, IdentityError> {
    let row: Option<TokenRow> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(
            "SELECT c.client_id, c.name, c.role, c.groups, t.scopes
               FROM client_tokens t JOIN api_clients c ON c.client_id = t.client_id
              WHERE t.token_hash = $1 AND t.expires_at > $2"
        )
        .bind(token_hash)
        .bind(ids::now_ms())
        .fetch_optional(&mut *c)
        .await)?
    };
    let row = row.ok_or(IdentityError::Unauthenticated)?;
    // Scopes were validated when the token was issued; unreadable ones grant nothing.
    let scopes = Scopes::parse(&json_list(&row.scopes)).unwrap_or(Scopes {
        read: false,
        write: false,
    });
    let kind = SubjectKind::ApiClient {
        client_id: row.client_id,
    };
    super::subject(
        db,
        row.name,
        kind,
        row.role,
        &row.groups,
        scopes,
        Restriction::None,
    )
    .await
}
