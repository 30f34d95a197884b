//! `/api/v1/ssh-keys`: the caller's own SSH public keys (users only; an
//! API client is refused by the self-service rule).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::ssh::{AddSshKey, IssueSshCert, SshCert, SshHostKey, SshKey, SshUserCa};

use super::{SshError, user_keys};
use crate::api::{ApiError, ApiJson};
use crate::ids::UserId;
use crate::rbac::{Access, Action, Caller, Subject};
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    api.get(
        "/api/v1/ssh-keys",
        Access::Site(Action::ReadOwnSshKeys),
        list,
    )
    .post(
        "/api/v1/ssh-keys",
        Access::Site(Action::ManageOwnSshKeys),
        add,
    )
    .delete(
        "/api/v1/ssh-keys/{id}",
        Access::Site(Action::ManageOwnSshKeys),
        remove,
    )
    .get(
        "/api/v1/ssh/host-key",
        Access::Site(Action::ReadOwnSshKeys),
        host_key,
    )
    .get(
        "/api/v1/ssh/user-ca",
        Access::Site(Action::ReadOwnSshKeys),
        user_ca,
    )
    .post(
        "/api/v1/ssh/user-cert",
        Access::Site(Action::ManageOwnSshKeys),
        user_cert,
    )
}

/// The user CA's public key.
async fn user_ca(State(st): State<AppState>) -> Result<Json<SshUserCa>, ApiError> {
    let ca = super::user_ca::load_or_create(&st.db, &st.keys, None).await?;
    let public_key = ca.public_key().to_openssh().map_err(ApiError::internal)?;
    Ok(Json(SshUserCa {
        public_key,
        fingerprint: super::host_key::fingerprint(ca.public_key()),
    }))
}

/// A short-lived certificate for the caller's key, bound to the login the
/// request carries (a user's token: an API client is refused).
async fn user_cert(
    State(st): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<IssueSshCert>,
) -> Result<(StatusCode, Json<SshCert>), ApiError> {
    let user_id = user(&who)?;
    let token = crate::api::session_token(&headers)
        .ok_or_else(|| ApiError::forbidden("a certificate needs a login token"))?;
    let login = crate::identity::Credential::of(token);
    let expires = login
        .expires_at(&st.db)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::forbidden("a certificate needs a user's login"))?;
    let asked = super::certs::Asked::of(&req)?;
    let ca = super::user_ca::load_or_create(&st.db, &st.keys, None).await?;
    let cert = super::certs::issue(
        &st.db,
        &ca,
        user_id,
        &who.name,
        &login,
        expires,
        st.config.ssh_cert_lifetime,
        &req.public_key,
        &asked,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(cert)))
}

/// The gateway's SSH host key (public) and port, for `jg ssh-config`.
async fn host_key(State(st): State<AppState>) -> Result<Json<SshHostKey>, ApiError> {
    let path = super::host_key::public_file(&st.config.data_dir);
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(ApiError::internal)?;
    let key = russh::keys::PublicKey::from_openssh(text.trim()).map_err(ApiError::internal)?;
    Ok(Json(SshHostKey {
        public_key: text.trim().to_owned(),
        fingerprint: super::host_key::fingerprint(&key),
        port: st.config.ssh_listen.map(|a| a.port()),
    }))
}

impl From<SshError> for ApiError {
    fn from(e: SshError) -> Self {
        use SshError as E;
        match e {
            E::BadKey(_) | E::TooMany(_) => Self::bad_request(e.to_string()),
            E::Duplicate(_) => Self::conflict(e.to_string()),
            E::UnknownKey(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            E::Key(_) | E::Keys(_) | E::Db(_) => Self::internal(e),
        }
    }
}

/// The caller as a user (the self-service rule admits only users).
fn user(who: &Subject) -> Result<&UserId, ApiError> {
    who.user_id()
        .ok_or_else(|| ApiError::forbidden("SSH keys belong to users, not API clients"))
}

async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Vec<SshKey>>, ApiError> {
    Ok(Json(user_keys::list(&st.db, user(&who)?).await?))
}

async fn add(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<AddSshKey>,
) -> Result<(StatusCode, Json<SshKey>), ApiError> {
    let key = user_keys::add(&st.db, user(&who)?, &who.name, &req.public_key).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

async fn remove(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    user_keys::remove(&st.db, user(&who)?, &who.name, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
