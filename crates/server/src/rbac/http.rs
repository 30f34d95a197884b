//! `/api/v1/roles`, the answer to a denied request ([`denied`]), and what
//! the `api` toolkit's routes are bound to here: their access rule
//! ([`Access`], naming an [`Action`]) and their caller ([`Caller`]).

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use jumpgate_api_types::{self as api, ErrorCode};

use super::store::{self, RoleError};
use super::{Action, Denial, Subject};
use crate::api::{ApiError, ApiJson, Authenticated, SiteAction};
use crate::state::{Api, AppState};
use crate::store::{AuditAction, AuditEvent, Store};

/// Who may call a route: public, an [`Action`] on the site, or per
/// endpoint (the handler asks `rbac`).
pub(crate) type Access = crate::api::Access<Action>;

impl SiteAction for Action {
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// The authenticated, authorized caller of a route registered with
/// [`Access::Site`] or [`Access::PerEndpoint`] (the access check put the
/// subject on the request).
#[derive(Debug)]
pub(crate) struct Caller(pub(crate) Subject);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, Self::Rejection> {
        Authenticated::<Subject>::from_request_parts(parts, st)
            .await
            .map(|Authenticated(s)| Self(s))
    }
}

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
            RoleError::Unknown(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            RoleError::Exists(_)
            | RoleError::Builtin(_)
            | RoleError::InUse(..)
            | RoleError::InPolicy(_) => Self::conflict(e.to_string()),
            RoleError::Invalid(_) => Self::bad_request(e.to_string()),
            RoleError::Db(e) => Self::internal(e),
        }
    }
}

/// Records a denial as a security event (about an endpoint of `group`, or
/// site-wide) and builds its answer.
pub(crate) async fn denied(
    st: &AppState,
    subject: &Subject,
    action: Action,
    target: &str,
    group: Option<&str>,
    why: Denial,
) -> ApiError {
    record_denial(&st.db, subject, action, target, group, why).await;
    let code = match why {
        Denial::InsufficientScope => ErrorCode::InsufficientScope,
        Denial::MfaEnrollmentRequired => ErrorCode::MfaEnrollmentRequired,
        Denial::PasswordChangeRequired => ErrorCode::PasswordChangeRequired,
        Denial::MissingPermission(_)
        | Denial::OutsideGroups
        | Denial::UsersOnly
        | Denial::ApprovalRequired(_) => ErrorCode::Forbidden,
    };
    ApiError::new(StatusCode::FORBIDDEN, code, why.to_string())
}

/// The security event (and log line) of a denial, for refusals that are
/// not HTTP answers (a session's later checks); [`denied`] writes it too.
pub(crate) async fn record_denial(
    db: &Store,
    subject: &Subject,
    action: Action,
    target: &str,
    group: Option<&str>,
    why: Denial,
) {
    db.audit_or_log(
        AuditEvent::new(
            &subject.name,
            AuditAction::Denied(action.as_str().to_owned()),
            target,
        )
        .outcome("denied")
        .detail(why.to_string())
        .groups(group),
    )
    .await;
    tracing::info!(subject = %subject.name, action = %action.as_str(), %target, reason = %why, "access denied");
}

async fn list(State(st): State<AppState>) -> Result<Json<Vec<api::Role>>, ApiError> {
    Ok(Json(store::list(&st.db).await?))
}

async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateRole>,
) -> Result<(StatusCode, Json<api::Role>), ApiError> {
    let mut w = st.db.write().await?;
    let role = store::create(&mut w, &req).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::RoleCreate, &role.name)
            .detail(role.permissions.join(",")),
    )
    .await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(role)))
}

async fn update(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::UpdateRole>,
) -> Result<Json<api::Role>, ApiError> {
    let mut w = st.db.write().await?;
    let role = store::update(&mut w, &name, &req).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::RoleUpdate, &name)
            .detail(role.permissions.join(",")),
    )
    .await?;
    w.commit().await?;
    Ok(Json(role))
}

async fn delete(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut w = st.db.write().await?;
    store::delete(&mut w, &name).await?;
    w.audit(AuditEvent::new(&who.name, AuditAction::RoleDelete, &name))
        .await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
