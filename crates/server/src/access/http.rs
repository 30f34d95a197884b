//! `/api/v1/access-requests*` and `/api/v1/groups/{name}/approval`.
//!
//! A request is visible to its requester, to the approvers of its group,
//! and to auditors (`view-audit`) of its group; to anyone else it does not
//! exist. An elevation request's approvers are the holders of
//! `epm-approve` on its group, and approving or denying one is
//! `epm::http::decide_checked` (the same code, checks and refusals as
//! `POST /api/v1/epm/requests/{id}/approve|deny`).

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::access as api;
use serde::Deserialize;

use super::{AccessError, Asked, Policy, Request, Verdict};
use crate::api::{ApiError, ApiJson};
use crate::rbac::{self, Action, Caller, Permission, Subject};
use crate::state::{Api, AppState};
use crate::store::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::Site;
    api.get(
        "/api/v1/access-requests",
        Site(Action::ReadAccessRequests),
        list,
    )
    .post(
        "/api/v1/access-requests",
        Site(Action::RequestAccess),
        create,
    )
    .get(
        "/api/v1/access-requests/{id}",
        Site(Action::ReadAccessRequests),
        show,
    )
    .post(
        "/api/v1/access-requests/{id}/approve",
        Site(Action::DecideAccess),
        approve,
    )
    .post(
        "/api/v1/access-requests/{id}/deny",
        Site(Action::DecideAccess),
        deny,
    )
    .post(
        "/api/v1/access-requests/{id}/cancel",
        Site(Action::DecideAccess),
        cancel,
    )
    .get(
        "/api/v1/groups/{name}/approval",
        Site(Action::ReadGroups),
        get_policy,
    )
    .put(
        "/api/v1/groups/{name}/approval",
        Site(Action::WriteGroups),
        set_policy,
    )
    .delete(
        "/api/v1/groups/{name}/approval",
        Site(Action::WriteGroups),
        remove_policy,
    )
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Invalid(_) => Self::bad_request(e.to_string()),
            AccessError::NotFound(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            AccessError::Forbidden(_) => Self::forbidden(e.to_string()),
            AccessError::Conflict(_) => Self::conflict(e.to_string()),
            AccessError::Db(e) => Self::internal(e),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    state: Option<String>,
}

const STATES: [&str; 6] = [
    "pending",
    "active",
    "approved",
    "expired",
    "denied",
    "cancelled",
];

/// What the caller may do with a request: see it, and decide it now.
async fn standing(st: &AppState, who: &Subject, req: &Request) -> Result<(bool, bool), ApiError> {
    let auditor = who.has(Permission::ViewAudit) && who.read_scope().allows(Some(&req.group_name));
    if req.is_elevation() {
        // `epm-approve` on the endpoint's group, as the EPM routes check.
        let approver = who.has(Permission::EpmApprove) && who.groups.contains(&req.group_name);
        let can_decide = approver && who.scopes.write && req.state == "pending";
        return Ok((approver || auditor, can_decide));
    }
    let mine = who.user_id().map(|u| u.as_str()) == Some(req.requester_id.as_str());
    let policy = super::policy(&mut st.db.conn().await?, &req.group_name).await?;
    let approver = policy.as_ref().is_some_and(|p| p.is_approver(who));
    let visible = mine || approver || auditor;
    let can_decide = approver && !mine && req.state == "pending";
    Ok((visible, can_decide))
}

async fn dto(
    st: &AppState,
    req: &Request,
    can_decide: bool,
) -> Result<api::AccessRequest, ApiError> {
    let decisions = super::decisions(&mut st.db.conn().await?, &req.id).await?;
    Ok(req.dto(&decisions, can_decide))
}

/// The caller's own requests, those they may decide, and (auditors) those
/// of their groups; newest first.
async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<api::AccessRequest>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(s) = &q.state
        && !STATES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "state must be pending, active, approved, expired, denied or cancelled",
        ));
    }
    // Elevations whose caller stopped waiting read as expired at once.
    super::expire_elevations(&st.db, crate::ids::now_ms()).await?;
    let mut out = Vec::new();
    for req in super::list(&st.db, q.state.as_deref()).await? {
        let (visible, can_decide) = standing(&st, &who, &req).await?;
        if visible {
            out.push(dto(&st, &req, can_decide).await?);
        }
    }
    Ok(Json(out))
}

async fn show(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let unknown = || ApiError::not_found(ErrorCode::NotFound, format!("no access request `{id}`"));
    super::expire_elevations(&st.db, crate::ids::now_ms()).await?;
    let Some(req) = super::get(&mut st.db.conn().await?, &id).await? else {
        return Err(unknown());
    };
    let (visible, can_decide) = standing(&st, &who, &req).await?;
    if !visible {
        return Err(unknown());
    }
    Ok(Json(dto(&st, &req, can_decide).await?))
}

async fn create(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<api::NewAccessRequest>,
) -> Result<(StatusCode, Json<api::AccessRequest>), ApiError> {
    let (group, endpoint) = super::resolve_target(&st.db, &body.target).await?;
    // A group the caller cannot see does not exist for them.
    if !who.can_view(&group) {
        return Err(AccessError::NotFound(format!(
            "no group or endpoint named `{}`",
            body.target.trim()
        ))
        .into());
    }
    let Some(policy) = super::policy(&mut st.db.conn().await?, &group).await? else {
        return Err(AccessError::Invalid(format!(
            "group `{group}` requires no approval: no access request is needed"
        ))
        .into());
    };
    let permissions = asked_permissions(&who, &policy, body.permissions.as_deref())?;
    let max = st.config.access_max_window;
    if body.window_secs == 0 {
        return Err(ApiError::bad_request("window_secs must be at least 1"));
    }
    if body.window_secs > max.as_secs() {
        return Err(ApiError::bad_request(format!(
            "window_secs: at most {} (the site's auth.access_max_window)",
            super::window_text(max.as_secs() as i64)
        )));
    }
    let reason = super::check_reason("reason", &body.reason, true)?;
    let asked = Asked {
        group,
        endpoint,
        permissions,
        window: Duration::from_secs(body.window_secs),
        reason,
    };
    let req = super::create(&st.db, &who, asked, &policy).await?;
    Ok((StatusCode::CREATED, Json(dto(&st, &req, false).await?)))
}

/// The permissions asked: those named (each one the group requires
/// approval for, and held through the caller's role: a grant never adds a
/// permission), else every gated one the caller's role holds.
fn asked_permissions(
    who: &Subject,
    policy: &Policy,
    named: Option<&[String]>,
) -> Result<BTreeSet<Permission>, ApiError> {
    let set: BTreeSet<Permission> = match named {
        Some(names) if !names.is_empty() => {
            let set = rbac::parse_permissions(names)
                .map_err(|e| ApiError::bad_request(format!("permissions: {e}")))?;
            if let Some(p) = set.iter().find(|p| !policy.permissions.contains(p)) {
                return Err(ApiError::bad_request(format!(
                    "permissions: group `{}` requires no approval for `{}`",
                    policy.group,
                    p.as_str()
                )));
            }
            if let Some(p) = set.iter().find(|p| !who.has(**p)) {
                return Err(ApiError::forbidden(format!(
                    "your role lacks the `{}` permission: an access request cannot add it",
                    p.as_str()
                )));
            }
            set
        }
        _ => policy
            .permissions
            .iter()
            .copied()
            .filter(|p| who.has(*p))
            .collect(),
    };
    if set.is_empty() {
        return Err(ApiError::forbidden(format!(
            "your role holds none of the permissions group `{}` requires approval for",
            policy.group
        )));
    }
    Ok(set)
}

/// Approves or denies request `id` as `who` (an elevation request: the EPM
/// decision, `epm::http::decide_checked`).
pub(crate) async fn decide(
    st: &AppState,
    who: &Subject,
    id: &str,
    verdict: Verdict,
    body: api::DecideAccess,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let reason = body.reason.unwrap_or_default();
    let reason = super::check_reason("reason", &reason, false)?;
    // Someone who may not see the request learns nothing about it.
    let Some(req) = super::get(&mut st.db.conn().await?, id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no access request `{id}`"),
        ));
    };
    if req.is_elevation() {
        // The EPM decision: `epm-approve` on the group (the same refusal
        // as the EPM route's), sent to the agent, `epm-decide` audited;
        // the access row moves in step in its transaction.
        crate::epm::http::decide_checked(st, who, id, verdict == Verdict::Approve, reason).await?;
        let req = super::get(&mut st.db.conn().await?, id)
            .await?
            .ok_or_else(|| ApiError::internal("a decided elevation request vanished"))?;
        let (_, can_decide) = standing(st, who, &req).await?;
        return Ok(Json(dto(st, &req, can_decide).await?));
    }
    let (visible, _) = standing(st, who, &req).await?;
    if !visible {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no access request `{id}`"),
        ));
    }
    let req = super::decide(&st.db, who, id, verdict, &reason).await?;
    if req.state == "active" {
        st.access_wake.notify_one();
    }
    let (_, can_decide) = standing(st, who, &req).await?;
    Ok(Json(dto(st, &req, can_decide).await?))
}

async fn approve(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<api::DecideAccess>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    decide(&st, &who, &id, Verdict::Approve, body).await
}

async fn deny(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<api::DecideAccess>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    decide(&st, &who, &id, Verdict::Deny, body).await
}

async fn cancel(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Json<api::AccessRequest>, ApiError> {
    let Some(req) = super::get(&mut st.db.conn().await?, &id).await? else {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no access request `{id}`"),
        ));
    };
    let (visible, _) = standing(&st, &who, &req).await?;
    if !visible {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("no access request `{id}`"),
        ));
    }
    let req = super::cancel(&st.db, &who, &id).await?;
    Ok(Json(dto(&st, &req, false).await?))
}

async fn get_policy(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::ApprovalPolicy>, ApiError> {
    let none = || {
        ApiError::not_found(
            ErrorCode::NotFound,
            format!("group `{name}` has no approval setting"),
        )
    };
    if !who.can_view(&name) {
        return Err(none());
    }
    super::policy(&mut st.db.conn().await?, &name)
        .await?
        .map(|p| Json(p.dto()))
        .ok_or_else(none)
}

async fn set_policy(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<api::SetApprovalPolicy>,
) -> Result<Json<api::ApprovalPolicy>, ApiError> {
    let mut w = st.db.write().await?;
    let p = super::set_policy(&mut w, &name, &body).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::GroupUpdate, &name)
            .detail(format!(
                "approval permissions={} approvers={} approvals={}",
                rbac::permission_names(&p.permissions).join(","),
                p.approvers.join(","),
                p.approvals
            ))
            .group(&name),
    )
    .await?;
    w.commit().await?;
    Ok(Json(p.dto()))
}

async fn remove_policy(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut w = st.db.write().await?;
    if !super::remove_policy(&mut w, &name).await? {
        return Err(ApiError::not_found(
            ErrorCode::NotFound,
            format!("group `{name}` has no approval setting"),
        ));
    }
    w.audit(
        AuditEvent::new(&who.name, AuditAction::GroupUpdate, &name)
            .detail("approval removed")
            .group(&name),
    )
    .await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
