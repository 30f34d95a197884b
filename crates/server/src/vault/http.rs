//! The vault's HTTP routes. Every value read and every change is audited
//! (name, version, outcome; never the value): successes by the domain in
//! the change's transaction (a read whose audit entry cannot be written is
//! refused), failures and denials here.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use jumpgate_api_types::{self as api, ErrorCode};
use zeroize::Zeroizing;

use super::{SecretInfo, VaultError};
use crate::api::{ApiError, ApiJson};
use crate::ids::rfc3339;
use crate::keys::now_ms;
use crate::rbac::Action;
use crate::rbac::{Access, Caller};
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    api.get(
        "/api/v1/vault/secrets",
        Access::Site(Action::ReadSecrets),
        list,
    )
    .get(
        "/api/v1/vault/secrets/{name}",
        Access::Site(Action::ReadSecretValue),
        get,
    )
    .put(
        "/api/v1/vault/secrets/{name}",
        Access::Site(Action::WriteSecrets),
        put,
    )
    .delete(
        "/api/v1/vault/secrets/{name}",
        Access::Site(Action::WriteSecrets),
        delete,
    )
    .get(
        "/api/v1/vault/secrets/{name}/versions",
        Access::Site(Action::ReadSecrets),
        versions,
    )
    .post(
        "/api/v1/vault/secrets/{name}/recover",
        Access::Site(Action::WriteSecrets),
        recover,
    )
    .post(
        "/api/v1/vault/secrets/{name}/purge",
        Access::Site(Action::PurgeSecrets),
        purge,
    )
    .get(
        "/api/v1/vault/settings",
        Access::Site(Action::ReadSecrets),
        settings,
    )
    .put(
        "/api/v1/vault/settings/purge-protection",
        Access::Site(Action::WriteSettings),
        set_purge_protection,
    )
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        use VaultError as E;
        match e {
            E::InvalidName(_) | E::Empty | E::TooLarge => Self::bad_request(e.to_string()),
            E::NotFound(_) | E::NoVersion { .. } => {
                Self::not_found(ErrorCode::NotFound, e.to_string())
            }
            E::Deleted(_) | E::NotDeleted(_) => Self::conflict(e.to_string()),
            E::PurgeProtected { .. } => Self::new(
                StatusCode::FORBIDDEN,
                ErrorCode::PurgeProtected,
                e.to_string(),
            ),
            E::ProtectionIrreversible => Self::conflict(e.to_string()),
            E::RetentionFixed { .. } | E::Keys(_) | E::Corrupt | E::Db(_) => Self::internal(e),
        }
    }
}

fn dto(s: SecretInfo) -> api::SecretInfo {
    api::SecretInfo {
        name: s.name,
        latest_version: s.latest_version,
        created_at: rfc3339(s.created_at_ms),
        updated_at: rfc3339(s.updated_at_ms),
        deleted_at: s.deleted_at_ms.map(rfc3339),
        purge_after: s.purge_after_ms.map(rfc3339),
    }
}

/// Audits the failure of a vault operation, then answers it.
async fn failed(
    st: &AppState,
    caller: &Caller,
    action: AuditAction,
    name: &str,
    e: VaultError,
) -> ApiError {
    let outcome = match &e {
        VaultError::PurgeProtected { .. } => "denied",
        _ => "failed",
    };
    let detail: String = e.to_string().chars().take(200).collect();
    // A name refused as invalid is recorded as shown in the error (its
    // start and length), never whole.
    let name = match &e {
        VaultError::InvalidName(shown) => shown.clone(),
        _ => name.to_owned(),
    };
    st.db
        .audit_or_log(
            AuditEvent::new(&caller.0.name, action, name)
                .outcome(outcome)
                .detail(detail),
        )
        .await;
    ApiError::from(e)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    deleted: Option<bool>,
}

async fn list(
    State(st): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<api::SecretInfo>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let list = super::list(&st.db, q.deleted.unwrap_or(false)).await?;
    Ok(Json(list.into_iter().map(dto).collect()))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    version: Option<u32>,
}

async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<api::SecretValue>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match super::get(&st.db, &st.keys, &name, q.version, &caller.0.name).await {
        Ok((version, value)) => Ok(Json(api::SecretValue {
            name,
            version,
            value: B64.encode(&value[..]),
        })),
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultRead, &name, e).await),
    }
}

async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<api::PutSecret>,
) -> Result<(StatusCode, Json<api::SecretVersionCreated>), ApiError> {
    let value = Zeroizing::new(
        B64.decode(body.value.as_bytes())
            .map_err(|_| ApiError::bad_request("value: not base64 (standard alphabet)"))?,
    );
    match super::put(&st.db, &st.keys, &name, &value, &caller.0.name).await {
        Ok(version) => Ok((
            StatusCode::CREATED,
            Json(api::SecretVersionCreated { name, version }),
        )),
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultPut, &name, e).await),
    }
}

async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<api::SecretInfo>, ApiError> {
    match super::delete(&st.db, &name, now_ms(), &caller.0.name).await {
        Ok(s) => Ok(Json(dto(s))),
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultDelete, &name, e).await),
    }
}

async fn versions(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<api::SecretVersion>>, ApiError> {
    let v = super::versions(&st.db, &name).await?;
    Ok(Json(
        v.into_iter()
            .map(|v| api::SecretVersion {
                version: v.version,
                created_at: rfc3339(v.created_at_ms),
                created_by: v.created_by,
            })
            .collect(),
    ))
}

async fn recover(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<api::SecretInfo>, ApiError> {
    match super::recover(&st.db, &name, &caller.0.name).await {
        Ok(s) => Ok(Json(dto(s))),
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultRecover, &name, e).await),
    }
}

async fn purge(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    match super::purge(&st.db, &name, now_ms(), &caller.0.name).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultPurge, &name, e).await),
    }
}

async fn settings(State(st): State<AppState>) -> Result<Json<api::VaultSettings>, ApiError> {
    let s = super::settings(&st.db).await?;
    Ok(Json(api::VaultSettings {
        retention_days: s.retention_days,
        purge_protection: s.purge_protection,
    }))
}

async fn set_purge_protection(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<api::SetPurgeProtection>,
) -> Result<Json<api::VaultSettings>, ApiError> {
    match super::set_purge_protection(&st.db, body.enabled, &caller.0.name).await {
        Ok(_changed) => settings(State(st)).await,
        Err(e) => Err(failed(&st, &caller, AuditAction::VaultPurgeProtection, "site", e).await),
    }
}
