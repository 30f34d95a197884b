//! Access requests with approval (issue #17, part 3).
//!
//! A group may require approval for some or all of its session permissions
//! (`approval` setting: which permissions, who approves — a role or named
//! users —, and how many approvals, 1 or 2). On such a group, holding the
//! permission through a role is no longer enough: an **active grant** is
//! needed too. A technician asks for one (`jg access request GROUP|ENDPOINT
//! --for 2h --reason …`); approvers approve or deny; the grant starts when
//! the last approval needed arrives and ends after its window.
//!
//! ```text
//!  request ─► pending ─(approvals reach the count)─► active ─(until)─► expired
//!                 │ any approver denies ─► denied          │ requester cancels ─► cancelled
//!                 └ requester cancels ─► cancelled          └ sessions under it are stopped
//! ```
//!
//! - The one authorization point stays `rbac::authorize`: the subject is
//!   loaded with the groups' requirements and its active grants on each
//!   request ([`load`]), so an expiry or a cancellation takes effect at once.
//! - Expiry ([`expiry::run`], under the `access-expiry` lease) marks grants
//!   whose window ended and pokes the sessions' re-check, which stops the
//!   sessions opened under them with "access grant expired".
//! - Every step is an audit entry (`access-request`, `access-approve`,
//!   `access-deny`, `access-expire`, `access-cancel`) filed under the
//!   target's group, whose target is the request id and whose detail
//!   carries what a notice needs ([`Request::detail`]).
//!
//! **Elevation requests** (kind `elevation`): an endpoint user's EPM
//! approval request is an access request too, with the same id as its
//! `epm_requests` row, so one list, one approve/deny path and one
//! notification path serve both.
//!
//! ```text
//!  agent's approval-requested ─► pending ─(epm::http::decide_as)─► approved | denied
//!   (epm::ingest, same tx:          └─(its expires_at: the caller stops waiting)─► expired
//!    create_elevation)
//! ```
//!
//! - Created by `epm::ingest` in the transaction that stores the EPM
//!   request, audited `access-request` by `USER@ENDPOINT` (no console user:
//!   `requester_id` is `endpoint:AGENT_ID`, which no user has).
//! - Deciding it (here or on `/api/v1/epm/requests/{id}/…`) is always
//!   `epm::http::decide_as`: `epm-approve` on the endpoint's group, the
//!   decision sent to the agent, `epm-decide` audited; it calls
//!   [`record_elevation_decision`] in its transaction, which moves this row
//!   in step and writes `access-approve`/`access-deny`.
//! - Its approvers are the users holding `epm-approve` on the group (not
//!   the group's approval setting), for the list and for mail alerts.
//! - It expires at `expires_at` ([`expire_elevations`], also run by the EPM
//!   routes before they read), with its `epm_requests` row.

pub(crate) mod expiry;
pub(crate) mod http;
pub(crate) mod schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use jumpgate_api_types::access as api;

use crate::ids::{self, UserId};
use crate::rbac::{self, ActiveGrant, Approvals, Permission, Subject};
use crate::store::{AuditAction, AuditEvent, Exec, Store, WriteTx, sql};

/// Who the audit log names for steps the gateway takes (expiry).
pub(crate) const GATEWAY: &str = "(gateway)";

/// The most characters a reason may have.
pub(crate) const MAX_REASON: usize = 200;

/// How long a request may wait for its approvals before it expires.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);

/// The permissions a group may require approval for: those that open
/// sessions on its endpoints. `all` means every one of them.
pub(crate) const GATEABLE: [Permission; 6] = [
    Permission::Shell,
    Permission::Exec,
    Permission::Files,
    Permission::Forward,
    Permission::DesktopView,
    Permission::DesktopControl,
];

/// Why an access request or an approval setting was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// Bad input, in words for the caller.
    #[error("{0}")]
    Invalid(String),
    /// No such request, group or endpoint (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),
    /// Not the caller's to do (not an approver, own request, not the
    /// requester).
    #[error("{0}")]
    Forbidden(String),
    /// The request is not in a state that allows this step.
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Who may approve a group's requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) group: String,
    pub(crate) permissions: BTreeSet<Permission>,
    /// `role:NAME` and `user:NAME` entries.
    pub(crate) approvers: Vec<String>,
    pub(crate) approvals: i64,
}

impl Policy {
    /// Whether `who` may approve or deny requests on this group (never
    /// their own: checked by the caller).
    pub(crate) fn is_approver(&self, who: &Subject) -> bool {
        if who.user_id().is_none() {
            return false;
        }
        self.approvers.iter().any(|a| match a.split_once(':') {
            Some(("role", r)) => r == who.role,
            Some(("user", u)) => u == who.name,
            _ => false,
        })
    }

    pub(crate) fn dto(&self) -> api::ApprovalPolicy {
        api::ApprovalPolicy {
            group: self.group.clone(),
            permissions: rbac::permission_names(&self.permissions),
            approvers: self.approvers.clone(),
            approvals: self.approvals as u8,
        }
    }
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    group_name: String,
    permissions: String,
    approvers: String,
    approvals: i64,
}

impl From<PolicyRow> for Policy {
    fn from(r: PolicyRow) -> Self {
        Self {
            group: r.group_name,
            permissions: rbac::store::stored_permissions(&r.permissions),
            approvers: serde_json::from_str(&r.approvers).unwrap_or_default(),
            approvals: r.approvals,
        }
    }
}

/// The approval setting of `group`, if it has one.
pub(crate) async fn policy(e: &mut dyn Exec, group: &str) -> Result<Option<Policy>, sqlx::Error> {
    let row: Option<PolicyRow> = sql!(e, |c| {
        sqlx::query_as(
        "SELECT group_name, permissions, approvers, approvals FROM access_policies WHERE group_name = $1"
    )
    .bind(group)
    .fetch_optional(&mut *c)
    .await
    })?;
    Ok(row.map(Into::into))
}

/// An active grant's row: id, group, endpoint id, permissions, end.
type GrantRow = (String, String, Option<String>, String, Option<i64>);

/// What `rbac::authorize` needs about approvals for `user` (`None`: an API
/// client, which holds no grants): every group's requirement and the
/// user's grants active at `now`.
pub(crate) async fn load(
    db: &Store,
    user: Option<&UserId>,
    now: i64,
) -> Result<Approvals, sqlx::Error> {
    let mut c = db.conn().await?;
    let policies: Vec<(String, String)> = sql!(c, |c| sqlx::query_as(
        "SELECT group_name, permissions FROM access_policies"
    )
    .fetch_all(&mut *c)
    .await)?;
    if policies.is_empty() {
        return Ok(Approvals::default());
    }
    let gated = policies
        .into_iter()
        .map(|(g, p)| (g, rbac::store::stored_permissions(&p)))
        .collect();
    let mut grants = Vec::new();
    if let Some(user) = user {
        let rows: Vec<GrantRow> = sql!(c, |c| sqlx::query_as(
            "SELECT id, group_name, endpoint_id, permissions, until_at FROM access_requests
                  WHERE requester_id = $1 AND state = 'active' AND until_at > $2"
        )
        .bind(user.as_str())
        .bind(now)
        .fetch_all(&mut *c)
        .await)?;
        grants = rows
            .into_iter()
            .map(|(request, group, endpoint, perms, until)| ActiveGrant {
                request,
                group,
                endpoint,
                permissions: rbac::store::stored_permissions(&perms),
                until: until.unwrap_or(0),
            })
            .collect();
    }
    Ok(Approvals { gated, grants })
}

/// Why a live session under grant `request` no longer has it, when its
/// grant ended: "access grant expired" or "access grant cancelled".
pub(crate) async fn ended(db: &Store, request: &str) -> Result<Option<String>, sqlx::Error> {
    let mut c = db.conn().await?;
    let row: Option<(String, Option<i64>)> = sql!(c, |c| sqlx::query_as(
        "SELECT state, until_at FROM access_requests WHERE id = $1"
    )
    .bind(request)
    .fetch_optional(&mut *c)
    .await)?;
    let now = ids::now_ms();
    Ok(match row {
        None => Some("access grant removed".into()),
        Some((s, _)) if s == "cancelled" => Some("access grant cancelled".into()),
        Some((s, _)) if s == "expired" => Some("access grant expired".into()),
        Some((_, Some(until))) if until <= now => Some("access grant expired".into()),
        Some(_) => None,
    })
}

/// A request as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Request {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) requester_id: String,
    pub(crate) requester: String,
    pub(crate) group_name: String,
    pub(crate) endpoint_name: Option<String>,
    pub(crate) permissions: String,
    pub(crate) window_secs: i64,
    pub(crate) reason: String,
    pub(crate) state: String,
    pub(crate) approvals_required: i64,
    pub(crate) created_at: i64,
    pub(crate) decided_at: Option<i64>,
    pub(crate) until_at: Option<i64>,
    pub(crate) ended_at: Option<i64>,
    /// When a pending request expires, if it has its own end (elevations).
    pub(crate) expires_at: Option<i64>,
    /// Kind `elevation`: an [`Elevation`] as JSON.
    pub(crate) elevation: Option<String>,
}

/// Kind `elevation`.
pub(crate) const ELEVATION: &str = "elevation";

/// What an elevation request asks to run (stored as JSON in
/// `access_requests.elevation`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Elevation {
    pub(crate) user: String,
    pub(crate) program: String,
    #[serde(default)]
    pub(crate) args: Vec<String>,
    #[serde(default)]
    pub(crate) sha256: String,
    pub(crate) rule: String,
}

/// One approver's decision.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Decision {
    pub(crate) approver: String,
    pub(crate) decision: String,
    pub(crate) reason: String,
    pub(crate) at: i64,
}

impl Request {
    pub(crate) fn is_elevation(&self) -> bool {
        self.kind == ELEVATION
    }

    /// What an elevation asks to run (`None` for other kinds).
    pub(crate) fn elevation(&self) -> Option<Elevation> {
        self.elevation
            .as_deref()
            .map(|j| serde_json::from_str(j).unwrap_or_default())
    }

    /// `group:NAME` or `endpoint:NAME`.
    pub(crate) fn target(&self) -> String {
        match &self.endpoint_name {
            Some(e) => format!("endpoint:{e}"),
            None => format!("group:{}", self.group_name),
        }
    }

    /// The audit detail every step carries, for notices: `key=value`
    /// fields, the reason (bounded, plain text) last.
    pub(crate) fn detail(&self, approvals: usize) -> String {
        if let Some(e) = self.elevation() {
            // The program last but one: it may hold spaces; the reason,
            // plain text, last as always.
            let mut s = format!(
                "request={} kind=elevation requester={} target={} group={} rule={} approvals={}/{}",
                self.id,
                self.requester,
                self.target(),
                self.group_name,
                if e.rule.is_empty() {
                    "(default)"
                } else {
                    &e.rule
                },
                approvals,
                self.approvals_required,
            );
            if let Some(at) = self.expires_at {
                s.push_str(&format!(" expires={}", ids::rfc3339(at)));
            }
            s.push_str(&format!(
                " program={} reason={}",
                crate::store::audit::bound(&e.program, 200),
                self.reason
            ));
            return s;
        }
        let mut s = format!(
            "request={} requester={} target={} group={} permissions={} window={} approvals={}/{}",
            self.id,
            self.requester,
            self.target(),
            self.group_name,
            self.permission_list().join(","),
            window_text(self.window_secs),
            approvals,
            self.approvals_required,
        );
        if let Some(until) = self.until_at {
            s.push_str(&format!(" until={}", ids::rfc3339(until)));
        }
        s.push_str(&format!(" reason={}", self.reason));
        s
    }

    fn permission_list(&self) -> Vec<String> {
        serde_json::from_str(&self.permissions).unwrap_or_default()
    }

    pub(crate) fn dto(&self, decisions: &[Decision], can_decide: bool) -> api::AccessRequest {
        api::AccessRequest {
            id: self.id.clone(),
            kind: self.kind.clone(),
            requester: self.requester.clone(),
            group: self.group_name.clone(),
            endpoint: self.endpoint_name.clone(),
            permissions: self.permission_list(),
            window_secs: self.window_secs.max(0) as u64,
            reason: self.reason.clone(),
            state: self.state.clone(),
            approvals_required: self.approvals_required.max(0) as u8,
            decisions: decisions
                .iter()
                .map(|d| api::AccessDecision {
                    approver: d.approver.clone(),
                    decision: d.decision.clone(),
                    reason: d.reason.clone(),
                    at: ids::rfc3339(d.at),
                })
                .collect(),
            created_at: ids::rfc3339(self.created_at),
            until: self.until_at.map(ids::rfc3339),
            decided_at: self.decided_at.map(ids::rfc3339),
            ended_at: self.ended_at.map(ids::rfc3339),
            can_decide,
            expires_at: self.expires_at.map(ids::rfc3339),
            elevation: self.elevation().map(|e| api::ElevationAsked {
                user: e.user,
                program: e.program,
                args: e.args,
                sha256: e.sha256,
                rule: e.rule,
            }),
        }
    }
}

/// `7200` → `2h`, `90` → `1m30s`.
pub(crate) fn window_text(secs: i64) -> String {
    humantime::format_duration(Duration::from_secs(secs.max(0) as u64))
        .to_string()
        .replace(' ', "")
}

/// Checks a reason: 1 to [`MAX_REASON`] characters of plain text (no
/// control characters: it goes into mails and webhooks as it is).
pub(crate) fn check_reason(what: &str, s: &str, required: bool) -> Result<String, AccessError> {
    let s = s.trim();
    if s.is_empty() {
        return if required {
            Err(AccessError::Invalid(format!(
                "{what} is required (e.g. the ticket: INC-123)"
            )))
        } else {
            Ok(String::new())
        };
    }
    if s.chars().count() > MAX_REASON {
        return Err(AccessError::Invalid(format!(
            "{what} is too long (at most {MAX_REASON} characters)"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(AccessError::Invalid(format!(
            "{what} must be plain text on one line (no control characters)"
        )));
    }
    Ok(s.to_owned())
}

const REQUEST_COLUMNS: &str = "id, kind, requester_id, requester, group_name, endpoint_id, endpoint_name, permissions, window_secs, reason, state, approvals_required, created_at, decided_at, until_at, ended_at, expires_at, elevation";

macro_rules! select_requests {
    ($rest:literal) => {
        concat!(
            "SELECT id, kind, requester_id, requester, group_name, endpoint_id, endpoint_name, permissions, window_secs, reason, state, approvals_required, created_at, decided_at, until_at, ended_at, expires_at, elevation FROM access_requests ",
            $rest
        )
    };
}

pub(crate) async fn get(e: &mut dyn Exec, id: &str) -> Result<Option<Request>, sqlx::Error> {
    debug_assert!(select_requests!("").contains(REQUEST_COLUMNS));
    sql!(e, |c| sqlx::query_as(select_requests!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)
}

pub(crate) async fn decisions(e: &mut dyn Exec, id: &str) -> Result<Vec<Decision>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT approver_id, approver, decision, reason, at FROM access_approvals
          WHERE request_id = $1 ORDER BY at, approver"
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)
}

/// The newest requests (at most 500), of one state if given.
pub(crate) async fn list(db: &Store, state: Option<&str>) -> Result<Vec<Request>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(select_requests!(
        "WHERE ($1 IS NULL OR state = $1) ORDER BY created_at DESC, id LIMIT 500"
    ))
    .bind(state)
    .fetch_all(&mut *c)
    .await)
}

/// What a request asks for, resolved.
pub(crate) struct Asked {
    pub(crate) group: String,
    pub(crate) endpoint: Option<(String, String)>,
    pub(crate) permissions: BTreeSet<Permission>,
    pub(crate) window: Duration,
    pub(crate) reason: String,
}

/// Resolves `target` (`group:NAME`, `endpoint:NAME`, or a bare name: a
/// group if one has it, else an endpoint) to (group, endpoint id and
/// name).
pub(crate) async fn resolve_target(
    db: &Store,
    target: &str,
) -> Result<(String, Option<(String, String)>), AccessError> {
    let target = target.trim();
    let (kind, name) = match target.split_once(':') {
        Some(("group", n)) => (Some("group"), n),
        Some(("endpoint", n)) => (Some("endpoint"), n),
        _ => (None, target),
    };
    if name.is_empty() {
        return Err(AccessError::Invalid(
            "target is required: a group or an endpoint".into(),
        ));
    }
    let group = if kind == Some("endpoint") {
        false
    } else {
        crate::agents::groups::exists(&mut db.conn().await?, name).await?
    };
    let endpoint = if kind == Some("group") {
        None
    } else {
        crate::agents::find_by_name(db, name).await?
    };
    match (group, endpoint) {
        (true, Some(_)) => Err(AccessError::Invalid(format!(
            "`{name}` is both a group and an endpoint: say group:{name} or endpoint:{name}"
        ))),
        (true, None) => Ok((name.to_owned(), None)),
        (false, Some(e)) => Ok((e.group, Some((e.id.0, e.name)))),
        (false, None) => Err(AccessError::NotFound(format!(
            "no group or endpoint named `{name}`"
        ))),
    }
}

/// Records a new request by `who` and its `access-request` entry.
pub(crate) async fn create(
    db: &Store,
    who: &Subject,
    asked: Asked,
    policy: &Policy,
) -> Result<Request, AccessError> {
    let Some(user) = who.user_id() else {
        return Err(AccessError::Forbidden(
            "only users can request access, not API clients".into(),
        ));
    };
    let now = ids::now_ms();
    let id = ids::random_id("acc");
    let perms = serde_json::to_string(&rbac::permission_names(&asked.permissions))
        .unwrap_or_else(|_| "[]".into());
    let (endpoint_id, endpoint_name) = match &asked.endpoint {
        Some((id, name)) => (Some(id.clone()), Some(name.clone())),
        None => (None, None),
    };
    let mut w = db.write().await?;
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO access_requests (id, kind, requester_id, requester, group_name, endpoint_id,
                endpoint_name, permissions, window_secs, reason, state, approvals_required, created_at)
         VALUES ($1, 'access', $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)"
    )
    .bind(&id)
    .bind(user.as_str())
    .bind(&who.name)
    .bind(&asked.group)
    .bind(endpoint_id.as_deref())
    .bind(endpoint_name.as_deref())
    .bind(&perms)
    .bind(asked.window.as_secs() as i64)
    .bind(&asked.reason)
    .bind(policy.approvals)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    let req = get(&mut w, &id)
        .await?
        .ok_or_else(|| AccessError::NotFound(id.clone()))?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::AccessRequest, &id)
            .outcome("pending")
            .detail(req.detail(0))
            .group(&req.group_name),
    )
    .await?;
    w.commit().await?;
    Ok(req)
}

/// An approver's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Approve,
    Deny,
}

/// Records `who`'s decision on request `id`: a denial ends it, the
/// approval that reaches the count activates it for its window. The same
/// approver twice counts once; an approver never decides their own
/// request.
pub(crate) async fn decide(
    db: &Store,
    who: &Subject,
    id: &str,
    verdict: Verdict,
    reason: &str,
) -> Result<Request, AccessError> {
    let Some(user) = who.user_id() else {
        return Err(AccessError::Forbidden(
            "only users can approve access, not API clients".into(),
        ));
    };
    let mut w = db.write().await?;
    let req = get(&mut w, id)
        .await?
        .ok_or_else(|| AccessError::NotFound(format!("no access request `{id}`")))?;
    if req.is_elevation() {
        // Decided by `epm::http::decide_as` (the HTTP layer routes there).
        return Err(AccessError::Conflict(format!(
            "{id} is an elevation request: it is decided by epm-approve holders (jg access approve or jg epm approve)"
        )));
    }
    let policy = policy(&mut w, &req.group_name).await?;
    let Some(policy) = policy.filter(|p| p.is_approver(who)) else {
        return Err(AccessError::Forbidden(format!(
            "you are not an approver of group `{}`",
            req.group_name
        )));
    };
    if req.requester_id == user.as_str() {
        return Err(AccessError::Forbidden(
            "you cannot approve or deny your own request".into(),
        ));
    }
    if req.state != "pending" {
        return Err(AccessError::Conflict(format!(
            "access request {id} is {}, not pending",
            req.state
        )));
    }
    let now = ids::now_ms();
    let word = match verdict {
        Verdict::Approve => "approve",
        Verdict::Deny => "deny",
    };
    // The same approver twice counts once (the first decision stays).
    let added = sql!(w, |c| sqlx::query(
        "INSERT INTO access_approvals (request_id, approver_id, approver, decision, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, approver_id) DO NOTHING"
    )
    .bind(id)
    .bind(user.as_str())
    .bind(&who.name)
    .bind(word)
    .bind(reason)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if added == 0 {
        return Err(AccessError::Conflict(format!(
            "you already decided on access request {id}; it needs another approver"
        )));
    }
    let approvals = decisions(&mut w, id)
        .await?
        .iter()
        .filter(|d| d.decision == "approve")
        .count();
    let (state, action) = match verdict {
        Verdict::Deny => ("denied", AuditAction::AccessDeny),
        Verdict::Approve if approvals as i64 >= req.approvals_required.max(policy.approvals) => {
            ("active", AuditAction::AccessApprove)
        }
        Verdict::Approve => ("pending", AuditAction::AccessApprove),
    };
    if state != "pending" {
        let until = (state == "active").then(|| now + req.window_secs * 1000);
        sql!(w, |c| sqlx::query(
            "UPDATE access_requests SET state = $1, decided_at = $2, until_at = $3,
                    ended_at = CASE WHEN $1 = 'denied' THEN $2 ELSE NULL END
              WHERE id = $4"
        )
        .bind(state)
        .bind(now)
        .bind(until)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    let req = get(&mut w, id)
        .await?
        .ok_or_else(|| AccessError::NotFound(id.to_owned()))?;
    let mut detail = req.detail(approvals);
    if !reason.is_empty() {
        detail.push_str(&format!(" decision-reason={reason}"));
    }
    w.audit(
        AuditEvent::new(&who.name, action, id)
            .outcome(state)
            .detail(detail)
            .group(&req.group_name),
    )
    .await?;
    w.commit().await?;
    Ok(req)
}

/// The requester withdraws a pending request or ends an active grant
/// early (its sessions stop at the next re-check, which every write
/// request triggers).
pub(crate) async fn cancel(db: &Store, who: &Subject, id: &str) -> Result<Request, AccessError> {
    let mut w = db.write().await?;
    let req = get(&mut w, id)
        .await?
        .ok_or_else(|| AccessError::NotFound(format!("no access request `{id}`")))?;
    if req.is_elevation() {
        return Err(AccessError::Conflict(format!(
            "{id} is an elevation request: it ends when the user on the endpoint stops waiting, or is denied"
        )));
    }
    if who.user_id().map(UserId::as_str) != Some(req.requester_id.as_str()) {
        return Err(AccessError::Forbidden(
            "only the requester can cancel an access request".into(),
        ));
    }
    if req.state != "pending" && req.state != "active" {
        return Err(AccessError::Conflict(format!(
            "access request {id} is {}; only a pending or active one can be cancelled",
            req.state
        )));
    }
    let now = ids::now_ms();
    sql!(w, |c| sqlx::query(
        "UPDATE access_requests SET state = 'cancelled', ended_at = $1 WHERE id = $2"
    )
    .bind(now)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let approvals = count_approvals(&mut w, id).await?;
    let req = get(&mut w, id)
        .await?
        .ok_or_else(|| AccessError::NotFound(id.to_owned()))?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::AccessCancel, id)
            .outcome("cancelled")
            .detail(req.detail(approvals))
            .group(&req.group_name),
    )
    .await?;
    w.commit().await?;
    Ok(req)
}

async fn count_approvals(w: &mut WriteTx, id: &str) -> Result<usize, sqlx::Error> {
    Ok(decisions(w, id)
        .await?
        .iter()
        .filter(|d| d.decision == "approve")
        .count())
}

/// Marks active grants whose window ended, and pending requests older
/// than [`PENDING_TTL`], expired (each audited `access-expire`); returns
/// how many.
pub(crate) async fn expire_due(db: &Store, now: i64) -> Result<usize, sqlx::Error> {
    let due: Vec<Request> = {
        let mut c = db.conn().await?;
        sql!(c, |c| {
            sqlx::query_as(select_requests!(
            "WHERE (state = 'active' AND until_at <= $1) OR (state = 'pending' AND created_at <= $2)
                OR (state = 'pending' AND expires_at <= $1)"
        ))
            .bind(now)
            .bind(now - PENDING_TTL.as_millis() as i64)
            .fetch_all(&mut *c)
            .await
        })?
    };
    expire(db, now, due).await
}

/// Marks pending elevation requests whose caller stopped waiting expired,
/// with their `epm_requests` rows (each audited `access-expire`); returns
/// how many. Grants are left to [`expire_due`] (its timer also stops their
/// sessions).
pub(crate) async fn expire_elevations(db: &Store, now: i64) -> Result<usize, sqlx::Error> {
    let due: Vec<Request> = {
        let mut c = db.conn().await?;
        sql!(c, |c| sqlx::query_as(select_requests!(
            "WHERE kind = 'elevation' AND state = 'pending' AND expires_at <= $1"
        ))
        .bind(now)
        .fetch_all(&mut *c)
        .await)?
    };
    expire(db, now, due).await
}

async fn expire(db: &Store, now: i64, due: Vec<Request>) -> Result<usize, sqlx::Error> {
    let mut n = 0;
    for req in due {
        let mut w = db.write().await?;
        let changed = sql!(w, |c| sqlx::query(
            "UPDATE access_requests SET state = 'expired', ended_at = $1
              WHERE id = $2 AND state = $3"
        )
        .bind(now)
        .bind(&req.id)
        .bind(&req.state)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        if changed == 0 {
            // Decided or cancelled meanwhile.
            continue;
        }
        if req.is_elevation() {
            // Its EPM twin, in step.
            sql!(w, |c| sqlx::query(
                "UPDATE epm_requests SET state = 'expired' WHERE id = $1 AND state = 'pending'"
            )
            .bind(&req.id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        let approvals = count_approvals(&mut w, &req.id).await?;
        let outcome = if req.state == "active" {
            "expired"
        } else {
            "expired-pending"
        };
        w.audit(
            AuditEvent::new(GATEWAY, AuditAction::AccessExpire, &req.id)
                .outcome(outcome)
                .detail(req.detail(approvals))
                .group(&req.group_name),
        )
        .await?;
        w.commit().await?;
        n += 1;
    }
    Ok(n)
}

/// The kind of request `id` (`None`: no such request).
pub(crate) async fn kind_of(e: &mut dyn Exec, id: &str) -> Result<Option<String>, sqlx::Error> {
    sql!(e, |c| sqlx::query_scalar(
        "SELECT kind FROM access_requests WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// A new elevation request, as `epm::ingest` stores it.
pub(crate) struct NewElevation<'a> {
    /// The EPM request's id (`er_…`).
    pub(crate) id: &'a str,
    pub(crate) agent_id: &'a str,
    pub(crate) endpoint: &'a str,
    pub(crate) group: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) asked: Elevation,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

/// Records an endpoint user's elevation request as an access request of
/// kind `elevation` in `w` (the transaction storing its `epm_requests`
/// row), audited `access-request` by `USER@ENDPOINT`, so alert rules and
/// webhooks see it as any access request. Answers the request (`None`: one
/// with that id existed).
pub(crate) async fn create_elevation(
    w: &mut WriteTx,
    new: NewElevation<'_>,
) -> Result<Option<Request>, sqlx::Error> {
    let requester = format!("{}@{}", new.asked.user, new.endpoint);
    let reason = plain(new.reason, MAX_REASON);
    let asked = serde_json::to_string(&new.asked).unwrap_or_else(|_| "{}".into());
    let n = sql!(w, |c| {
        sqlx::query(
        "INSERT INTO access_requests (id, kind, requester_id, requester, group_name, endpoint_id,
                endpoint_name, permissions, window_secs, reason, state, approvals_required,
                created_at, expires_at, elevation)
         VALUES ($1, 'elevation', $2, $3, $4, $5, $6, '[]', 0, $7, 'pending', 1, $8, $9, $10)
         ON CONFLICT (id) DO NOTHING"
    )
    .bind(new.id)
    .bind(format!("endpoint:{}", new.agent_id))
    .bind(&requester)
    .bind(new.group)
    .bind(new.agent_id)
    .bind(new.endpoint)
    .bind(&reason)
    .bind(new.created_at)
    .bind(new.expires_at)
    .bind(&asked)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    if n == 0 {
        return Ok(None);
    }
    let Some(req) = get(w, new.id).await? else {
        return Ok(None);
    };
    w.audit(
        AuditEvent::new(&requester, AuditAction::AccessRequest, new.id)
            .outcome("pending")
            .detail(req.detail(0))
            .group(new.group),
    )
    .await?;
    Ok(Some(req))
}

/// Moves elevation request `id` in step with its EPM decision, in `w`
/// (`epm::http::decide_as`'s transaction): `approved` or `denied`, the
/// decision recorded as an approver's, audited `access-approve` or
/// `access-deny`. Nothing when no elevation request has that id (an EPM
/// request stored before schema 24 and not copied) or it is not pending.
pub(crate) async fn record_elevation_decision(
    w: &mut WriteTx,
    id: &str,
    who: &Subject,
    approved: bool,
    comment: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let Some(req) = get(w, id).await? else {
        return Ok(());
    };
    if !req.is_elevation() || req.state != "pending" {
        return Ok(());
    }
    let state = if approved { "approved" } else { "denied" };
    sql!(w, |c| sqlx::query(
        "UPDATE access_requests SET state = $1, decided_at = $2,
                ended_at = CASE WHEN $1 = 'denied' THEN $2 ELSE NULL END
          WHERE id = $3 AND state = 'pending'"
    )
    .bind(state)
    .bind(now)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let approver_id = match who.user_id() {
        Some(u) => u.as_str().to_owned(),
        None => format!("client:{}", who.name),
    };
    let reason = plain(comment, MAX_REASON);
    sql!(w, |c| sqlx::query(
        "INSERT INTO access_approvals (request_id, approver_id, approver, decision, reason, at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, approver_id) DO NOTHING"
    )
    .bind(id)
    .bind(&approver_id)
    .bind(&who.name)
    .bind(if approved { "approve" } else { "deny" })
    .bind(&reason)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    let req = get(w, id).await?.unwrap_or(req);
    let mut detail = req.detail(usize::from(approved));
    if !reason.is_empty() {
        detail.push_str(&format!(" decision-reason={reason}"));
    }
    let action = if approved {
        AuditAction::AccessApprove
    } else {
        AuditAction::AccessDeny
    };
    w.audit(
        AuditEvent::new(&who.name, action, id)
            .outcome(state)
            .detail(detail)
            .group(&req.group_name),
    )
    .await?;
    Ok(())
}

/// `s` as one line of plain text of at most `max` characters (control
/// characters become spaces): reported text going into an audit detail.
fn plain(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::store::audit::bound(s.trim(), max).into_owned()
}

/// The earliest end of an active grant, if any.
pub(crate) async fn next_until(db: &Store) -> Result<Option<i64>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(
        "SELECT MIN(until_at) FROM access_requests WHERE state = 'active'"
    )
    .fetch_one(&mut *c)
    .await)
}

/// Sets (or replaces) `group`'s approval setting.
pub(crate) async fn set_policy(
    w: &mut WriteTx,
    group: &str,
    req: &api::SetApprovalPolicy,
) -> Result<Policy, AccessError> {
    if !crate::agents::groups::exists(w, group).await? {
        return Err(AccessError::NotFound(format!("no group named `{group}`")));
    }
    let permissions: BTreeSet<Permission> = if req.permissions.iter().any(|p| p == "all") {
        if req.permissions.len() > 1 {
            return Err(AccessError::Invalid(
                "permissions: `all` stands alone".into(),
            ));
        }
        GATEABLE.into_iter().collect()
    } else {
        let set = rbac::parse_permissions(&req.permissions)
            .map_err(|e| AccessError::Invalid(format!("permissions: {e}")))?;
        if let Some(p) = set.iter().find(|p| !GATEABLE.contains(p)) {
            let names: Vec<_> = GATEABLE.iter().map(|p| p.as_str()).collect();
            return Err(AccessError::Invalid(format!(
                "permissions: `{}` cannot require approval (only {}, or all)",
                p.as_str(),
                names.join(", ")
            )));
        }
        set
    };
    if permissions.is_empty() {
        return Err(AccessError::Invalid(
            "permissions: name at least one, or all".into(),
        ));
    }
    if !(1..=2).contains(&req.approvals) {
        return Err(AccessError::Invalid("approvals: must be 1 or 2".into()));
    }
    if req.approvers.is_empty() {
        return Err(AccessError::Invalid(
            "approvers: name a role (role:NAME) or users (user:NAME,…)".into(),
        ));
    }
    let mut approvers: Vec<String> = Vec::new();
    let mut users = 0;
    let mut role = false;
    for a in &req.approvers {
        let a = a.trim();
        match a.split_once(':') {
            Some(("role", r)) => {
                if crate::rbac::store::role_permissions_in(w, r)
                    .await?
                    .is_none()
                {
                    return Err(AccessError::Invalid(format!(
                        "approvers: no role named `{r}`"
                    )));
                }
                role = true;
            }
            Some(("user", u)) => {
                let found: Option<String> = sql!(w, |c| sqlx::query_scalar(
                    "SELECT id FROM users WHERE username = $1"
                )
                .bind(u)
                .fetch_optional(&mut *c)
                .await)?;
                if found.is_none() {
                    return Err(AccessError::Invalid(format!(
                        "approvers: no user named `{u}`"
                    )));
                }
                users += 1;
            }
            _ => {
                return Err(AccessError::Invalid(format!(
                    "approvers: `{a}` is neither role:NAME nor user:NAME"
                )));
            }
        }
        if !approvers.iter().any(|x| x == a) {
            approvers.push(a.to_owned());
        }
    }
    if !role && users < req.approvals {
        return Err(AccessError::Invalid(format!(
            "approvers: {} approvals are required but only {users} user(s) are named",
            req.approvals
        )));
    }
    let perms = serde_json::to_string(&rbac::permission_names(&permissions))
        .unwrap_or_else(|_| "[]".into());
    let approvers_json = serde_json::to_string(&approvers).unwrap_or_else(|_| "[]".into());
    sql!(w, |c| sqlx::query(
        "INSERT INTO access_policies (group_name, permissions, approvers, approvals, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (group_name) DO UPDATE SET permissions = excluded.permissions,
             approvers = excluded.approvers, approvals = excluded.approvals,
             updated_at = excluded.updated_at"
    )
    .bind(group)
    .bind(&perms)
    .bind(&approvers_json)
    .bind(i64::from(req.approvals))
    .bind(ids::now_ms())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(Policy {
        group: group.to_owned(),
        permissions,
        approvers,
        approvals: i64::from(req.approvals),
    })
}

/// Removes `group`'s approval setting; `false` if it had none.
pub(crate) async fn remove_policy(e: &mut dyn Exec, group: &str) -> Result<bool, sqlx::Error> {
    let n = sql!(e, |c| sqlx::query(
        "DELETE FROM access_policies WHERE group_name = $1"
    )
    .bind(group)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}
