//! `/api/v1/auth/*`, `/api/v1/me/*`, `/api/v1/users/*` and
//! `/api/v1/settings/security`.

use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jumpgate_api_types::{self as api, ErrorCode};

use super::settings::{self, SecuritySettings};
use super::{Attempt, IdentityError, NewUser, UserRecord};
use crate::api::{ApiError, ApiJson, CookieSession, PeerAddr, csrf_token, session_token};
use crate::ids;
use crate::rbac::Caller;
use crate::rbac::{self, Action, Restriction, Subject};
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        use IdentityError as E;
        match e {
            E::InvalidCredentials | E::Unauthenticated => Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                e.to_string(),
            ),
            E::MfaRequired => Self::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::MfaRequired,
                e.to_string(),
            ),
            E::RateLimited(_) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                e.to_string(),
            ),
            E::UserExists(_) | E::Conflict(_) => Self::conflict(e.to_string()),
            E::UnknownUser(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            E::UnknownRole(_)
            | E::InvalidName(_)
            | E::WeakPassword(_)
            | E::Invalid(_)
            | E::WrongCode => Self::bad_request(e.to_string()),
            E::Hash | E::Db(_) | E::Keys(_) => Self::internal(e),
        }
    }
}

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::{Public, Site};
    let api = api
        .post("/api/v1/auth/login", Public, login)
        .post("/api/v1/auth/logout", Site(Action::Logout), logout)
        .get(
            "/api/v1/auth/session",
            Site(Action::ReadSelf),
            console_session,
        )
        .get("/api/v1/me", Site(Action::ReadSelf), me)
        .post(
            "/api/v1/me/password",
            Site(Action::ChangeOwnPassword),
            change_password,
        )
        .post(
            "/api/v1/me/mfa/totp",
            Site(Action::ManageOwnMfa),
            begin_totp,
        )
        .post(
            "/api/v1/me/mfa/totp/confirm",
            Site(Action::ManageOwnMfa),
            confirm_totp,
        )
        .delete("/api/v1/me/mfa", Site(Action::ManageOwnMfa), disable_mfa)
        .post(
            "/api/v1/me/mfa/recovery-codes",
            Site(Action::ManageOwnMfa),
            recovery_codes,
        )
        .get("/api/v1/users", Site(Action::ReadUsers), list_users)
        .post("/api/v1/users", Site(Action::WriteUsers), create_user)
        .get("/api/v1/users/{name}", Site(Action::ReadUsers), show_user)
        .patch(
            "/api/v1/users/{name}",
            Site(Action::WriteUsers),
            update_user,
        )
        .delete(
            "/api/v1/users/{name}",
            Site(Action::WriteUsers),
            delete_user,
        )
        .put(
            "/api/v1/users/{name}/password",
            Site(Action::WriteUsers),
            set_password,
        )
        .post(
            "/api/v1/users/{name}/revoke-sessions",
            Site(Action::WriteUsers),
            revoke_sessions,
        )
        .post(
            "/api/v1/users/{name}/unlock",
            Site(Action::WriteUsers),
            unlock,
        )
        .delete(
            "/api/v1/users/{name}/mfa",
            Site(Action::WriteUsers),
            reset_mfa,
        )
        .get(
            "/api/v1/settings/security",
            Site(Action::ReadSettings),
            get_settings,
        )
        .put(
            "/api/v1/settings/security",
            Site(Action::WriteSettings),
            put_settings,
        );
    super::clients_http::routes(api)
}

async fn login(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    ApiJson(req): ApiJson<api::LoginRequest>,
) -> Result<Response, ApiError> {
    let attempt = Attempt {
        ip: peer.ip(),
        username: &req.username,
        password: &req.password,
        second_factor: req.totp.as_deref(),
    };
    let s = match super::login(
        &st.db,
        &st.keys,
        &st.login_limiter,
        &attempt,
        st.config.session_ttl,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            // The user name may be a mistyped password, and the client's
            // address is personal data: log neither.
            tracing::info!(reason = %e, "login failed");
            return Err(e.into());
        }
    };
    tracing::info!(user = %s.user.username, restriction = ?s.restriction, cookie = req.cookie, "login");
    let mut body = api::LoginResponse {
        token: String::new(),
        expires_at: ids::rfc3339(s.expires_at_ms),
        username: s.user.username,
        role: s.user.role,
        mfa_enrollment_required: s.restriction == Restriction::MfaEnrollment,
        password_change_required: s.restriction == Restriction::PasswordChange,
        csrf_token: None,
    };
    if !req.cookie {
        body.token = s.token;
        return Ok(Json(body).into_response());
    }
    // A console session: the token never reaches script (HttpOnly), is
    // never sent over plain HTTP (Secure, `__Host-` prefix) nor with a
    // request started by another site (SameSite=Strict).
    body.csrf_token = Some(csrf_token(&s.token));
    let max_age = st.config.session_ttl.as_secs();
    let cookie = format!(
        "{}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}",
        api::SESSION_COOKIE,
        s.token
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(ApiError::internal)?;
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

/// A `Set-Cookie` that removes the console's session cookie.
fn clear_cookie() -> Result<HeaderValue, ApiError> {
    let cookie = format!(
        "{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        api::SESSION_COOKIE
    );
    HeaderValue::from_str(&cookie).map_err(ApiError::internal)
}

async fn logout(
    State(st): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_token(&headers) {
        super::logout(&st.db, token).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear_cookie()?)]).into_response())
}

/// The CSRF token of the calling console session (a reloaded page lost it).
async fn console_session(
    session: Option<Extension<CookieSession>>,
) -> Result<Json<api::ConsoleSession>, ApiError> {
    let Some(Extension(session)) = session else {
        return Err(ApiError::bad_request(
            "only console (cookie) sessions have a CSRF token",
        ));
    };
    Ok(Json(api::ConsoleSession {
        csrf_token: session.csrf_token,
    }))
}

/// The user record behind a self-service call.
async fn myself(st: &AppState, who: &Subject) -> Result<UserRecord, ApiError> {
    let id = who
        .user_id()
        .ok_or_else(|| ApiError::forbidden("only users have an account here"))?;
    Ok(super::user_by_id(&st.db, id).await?)
}

async fn me(State(st): State<AppState>, Caller(who): Caller) -> Result<Json<api::Me>, ApiError> {
    let user = myself(&st, &who).await?;
    Ok(Json(api::Me {
        username: user.username.clone(),
        role: who.role.clone(),
        permissions: rbac::permission_names(&who.permissions),
        groups: who.groups.to_list(),
        mfa_enabled: user.mfa_enabled(),
        mfa_enrollment_required: who.restriction == Restriction::MfaEnrollment,
        password_change_required: who.restriction == Restriction::PasswordChange,
    }))
}

async fn change_password(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::ChangePassword>,
) -> Result<StatusCode, ApiError> {
    let user = myself(&st, &who).await?;
    // A stolen session alone must not be enough to take over the account.
    match super::check_current_password(
        &st.db,
        &st.login_limiter,
        peer.ip(),
        &user,
        &req.current_password,
    )
    .await
    {
        Ok(()) => {}
        Err(IdentityError::InvalidCredentials) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "the current password is wrong",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let audit = AuditEvent::new(&user.username, AuditAction::PasswordChange, &user.username);
    super::set_password(&st.db, &user, &req.new_password, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn begin_totp(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<api::TotpEnrollment>, ApiError> {
    let user = myself(&st, &who).await?;
    let secret = super::begin_totp(&st.db, &st.keys, &user).await?;
    let url = secret.otpauth_url(&format!("Jumpgate {}", st.config.hostname), &user.username);
    Ok(Json(api::TotpEnrollment {
        secret: secret.base32(),
        qr_svg: super::mfa::qr_svg(&url),
        otpauth_url: url,
    }))
}

async fn confirm_totp(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::TotpCode>,
) -> Result<Json<api::RecoveryCodes>, ApiError> {
    let user = myself(&st, &who).await?;
    let audit = AuditEvent::new(&user.username, AuditAction::MfaEnable, &user.username);
    let codes = super::confirm_totp(&st.db, &st.keys, &user, &req.code, audit).await?;
    Ok(Json(api::RecoveryCodes { codes }))
}

async fn disable_mfa(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::TotpCode>,
) -> Result<StatusCode, ApiError> {
    let user = myself(&st, &who).await?;
    let policy = settings::load(&st.db).await?;
    if policy.mfa_required(&user.role) {
        return Err(ApiError::conflict(format!(
            "the site requires MFA for the `{}` role",
            user.role
        )));
    }
    super::require_second_factor(&st.db, &st.keys, &user, &req.code).await?;
    let audit = AuditEvent::new(&user.username, AuditAction::MfaDisable, &user.username);
    super::disable_mfa(&st.db, &user.id, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn recovery_codes(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::TotpCode>,
) -> Result<Json<api::RecoveryCodes>, ApiError> {
    let user = myself(&st, &who).await?;
    super::require_second_factor(&st.db, &st.keys, &user, &req.code).await?;
    let audit = AuditEvent::new(
        &user.username,
        AuditAction::MfaRecoveryCodes,
        &user.username,
    );
    let codes = super::new_recovery_codes(&st.db, &user, audit).await?;
    Ok(Json(api::RecoveryCodes { codes }))
}

async fn list_users(State(st): State<AppState>) -> Result<Json<Vec<api::User>>, ApiError> {
    Ok(Json(
        super::list_users(&st.db)
            .await?
            .iter()
            .map(UserRecord::to_api)
            .collect(),
    ))
}

async fn show_user(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<api::User>, ApiError> {
    Ok(Json(super::get_user(&st.db, &name).await?.to_api()))
}

async fn create_user(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateUser>,
) -> Result<(StatusCode, Json<api::User>), ApiError> {
    let detail = format!("role={} groups={}", req.role, req.groups.join(","));
    super::create_user(
        &st.db,
        &NewUser {
            username: &req.username,
            password: &req.password,
            role: &req.role,
            groups: &req.groups,
            email: req.email.as_deref(),
        },
        AuditEvent::new(&who.name, AuditAction::UserCreate, &req.username).detail(detail),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(super::get_user(&st.db, &req.username).await?.to_api()),
    ))
}

async fn update_user(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::UpdateUser>,
) -> Result<Json<api::User>, ApiError> {
    let user = super::update_user(&st.db, &name, &req, &who.name).await?;
    Ok(Json(user.to_api()))
}

async fn delete_user(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    super::delete_user(
        &st.db,
        &name,
        AuditEvent::new(&who.name, AuditAction::UserDelete, &name),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_password(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::SetPassword>,
) -> Result<StatusCode, ApiError> {
    let user = super::get_user(&st.db, &name).await?;
    let audit = AuditEvent::new(&who.name, AuditAction::PasswordReset, &name);
    super::set_password(&st.db, &user, &req.password, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_sessions(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = super::get_user(&st.db, &name).await?;
    let audit = AuditEvent::new(&who.name, AuditAction::SessionsRevoke, &name);
    super::revoke_sessions(&st.db, &user.id, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unlock(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = super::get_user(&st.db, &name).await?;
    super::unlock(
        &st.db,
        &user.id,
        AuditEvent::new(&who.name, AuditAction::UserUnlock, &name),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_mfa(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = super::get_user(&st.db, &name).await?;
    super::disable_mfa(
        &st.db,
        &user.id,
        AuditEvent::new(&who.name, AuditAction::MfaReset, &name),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_settings(State(st): State<AppState>) -> Result<Json<api::SecuritySettings>, ApiError> {
    Ok(Json(settings::load(&st.db).await?.to_api()))
}

async fn put_settings(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::SecuritySettings>,
) -> Result<Json<api::SecuritySettings>, ApiError> {
    let new = SecuritySettings::from_api(&req).map_err(ApiError::bad_request)?;
    for role in &new.mfa_required_roles {
        if rbac::role_permissions(&st.db, role).await?.is_none() {
            return Err(ApiError::bad_request(format!(
                "unknown role {} in mfa_required_roles",
                ids::echo(role)
            )));
        }
    }
    let detail = serde_json::to_string(&new.to_api()).unwrap_or_default();
    let audit = AuditEvent::new(&who.name, AuditAction::SettingsChange, "security").detail(detail);
    settings::save(&st.db, &new, audit).await?;
    Ok(Json(new.to_api()))
}
