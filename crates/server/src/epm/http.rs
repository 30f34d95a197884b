//! `/api/v1/epm/…` (the table is in `jumpgate_api_types::epm`) and the
//! gateway's signed bundle route `/epm/bundles/{version}` (no login: the
//! signature is the credential).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::epm as api;
use jumpgate_epm::engine::{Caller as EpmCaller, Engine, Program};
use jumpgate_epm::policy::{Policy, Problems};
use jumpgate_proto::epm::ApprovalDecision;
use jumpgate_proto::system::Topic;
use serde::Deserialize;
use tokio::sync::broadcast;

use super::{EpmError, notify, store};
use crate::agents::system;
use crate::api::{ApiError, PeerAddr};
use crate::ids::{AgentId, rfc3339};
use crate::keys::now_ms;
use crate::rbac::{Action, Caller, Decision, Permission, Resource, Subject, authorize};
use crate::state::{Api, AppState};
use crate::store::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::{PerEndpoint, Public, Site};
    api.get(
        "/api/v1/epm/policy",
        Site(Action::ReadEpmPolicy),
        get_policy,
    )
    .put(
        "/api/v1/epm/policy",
        Site(Action::WriteEpmPolicy),
        put_policy,
    )
    .post(
        "/api/v1/epm/policy/validate",
        Site(Action::ReadEpmPolicy),
        validate,
    )
    .post("/api/v1/epm/test", PerEndpoint, what_if)
    .post("/api/v1/epm/publish", Site(Action::WriteEpmPolicy), publish)
    .get("/api/v1/epm/bundles", Site(Action::ReadEpmPolicy), bundles)
    .get("/api/v1/epm/status", Site(Action::ReadEpmPolicy), status)
    .get("/api/v1/epm/events", PerEndpoint, events)
    .get(
        "/api/v1/epm/requests",
        Site(Action::ApproveElevation),
        requests,
    )
    .get(
        "/api/v1/epm/requests/events",
        Site(Action::ApproveElevation),
        request_events,
    )
    .post("/api/v1/epm/requests/{id}/approve", PerEndpoint, approve)
    .post("/api/v1/epm/requests/{id}/deny", PerEndpoint, deny)
    .post("/api/v1/epm/code", PerEndpoint, code)
    .get(
        "/api/v1/epm/signing-keys",
        Site(Action::ReadEpmPolicy),
        signing_keys,
    )
    .post(
        "/api/v1/epm/signing-keys/rotate",
        Site(Action::WriteEpmPolicy),
        rotate,
    )
    .get("/epm/bundles/{version}", Public, bundle_route)
}

/// An answer that failed: an [`ApiError`], or a policy that does not
/// validate (400 `invalid_policy`: the error body plus `problems`, each
/// `{field, message}`, as [`api::PolicyProblems`]).
#[derive(Debug)]
pub(crate) enum Failure {
    Api(ApiError),
    Invalid(Problems),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<EpmError> for Failure {
    fn from(e: EpmError) -> Self {
        match e {
            EpmError::Invalid(p) => Self::Invalid(p),
            e => Self::Api(e.into()),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Self::Api(e.into())
    }
}

fn problems_dto(p: &Problems) -> api::PolicyProblems {
    api::PolicyProblems {
        problems: p
            .0
            .iter()
            .map(|p| api::PolicyProblem {
                field: p.field.clone(),
                message: p.message.clone(),
            })
            .collect(),
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Invalid(p) => {
                let body = serde_json::json!({
                    "error": ErrorCode::InvalidPolicy,
                    "message": format!("the policy is not valid: {p}"),
                    "problems": problems_dto(&p).problems,
                });
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
        }
    }
}

impl From<EpmError> for ApiError {
    fn from(e: EpmError) -> Self {
        use EpmError as E;
        match e {
            E::Invalid(_) => Self::bad_request(e.to_string()),
            E::Stale { .. } | E::NotPending(_) => Self::conflict(e.to_string()),
            E::UnknownEndpoint(_) => Self::not_found(ErrorCode::UnknownEndpoint, e.to_string()),
            E::UnknownRequest(_) | E::NothingPublished => {
                Self::not_found(ErrorCode::NotFound, e.to_string())
            }
            E::Keys(_) | E::Blobs(_) | E::Bundle(_) | E::Corrupt(_) | E::Db(_) => Self::internal(e),
        }
    }
}

fn doc(policy: Policy, revision: i64, by: String, at: i64) -> api::PolicyDoc {
    api::PolicyDoc {
        revision: u64::try_from(revision).unwrap_or(0),
        policy,
        updated_by: by,
        updated_at: if at > 0 { rfc3339(at) } else { String::new() },
    }
}

#[derive(Debug, Deserialize)]
struct FormatQuery {
    #[serde(default)]
    format: Option<String>,
}

async fn get_policy(
    State(st): State<AppState>,
    q: Result<Query<FormatQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (policy, revision, by, at) = super::draft(&st).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(doc(policy, revision, by, at)).into_response()),
        Some("yaml") => {
            let mut r = policy.to_yaml().into_response();
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/yaml"));
            if let Ok(v) = HeaderValue::from_str(&revision.to_string()) {
                r.headers_mut().insert("etag", v);
            }
            Ok(r)
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be json or yaml, not `{}`",
            crate::ids::echo(other)
        ))
        .into()),
    }
}

fn is_yaml(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.starts_with("application/yaml")
                || v.starts_with("application/x-yaml")
                || v.starts_with("text/yaml")
        })
}

/// The policy (and revision, for JSON; `If-Match` for YAML) of a body.
fn read_body(headers: &HeaderMap, body: &Bytes) -> Result<(Policy, Option<i64>), Failure> {
    if is_yaml(headers) {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the YAML is not UTF-8"))?;
        let policy = Policy::from_yaml(text).map_err(Failure::Invalid)?;
        let revision = headers
            .get("if-match")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim().trim_matches('"').parse::<i64>().map_err(|_| {
                    ApiError::bad_request("If-Match must be the revision read (a number)")
                })
            })
            .transpose()?;
        return Ok((policy, revision));
    }
    let doc: api::PolicyDoc = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid policy document: {e}")))?;
    Ok((
        doc.policy,
        Some(i64::try_from(doc.revision).unwrap_or(i64::MAX)),
    ))
}

async fn put_policy(
    State(st): State<AppState>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<api::PolicyDoc>, Failure> {
    let (policy, revision) = read_body(&headers, &body)?;
    let Some(revision) = revision else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            ErrorCode::BadRequest,
            "send the revision you read (If-Match) so a concurrent change is not overwritten",
        )
        .into());
    };
    super::save_draft(&st, revision, &policy, &who.name).await?;
    let (policy, revision, by, at) = super::draft(&st).await?;
    Ok(Json(doc(policy, revision, by, at)))
}

async fn validate(headers: HeaderMap, body: Bytes) -> Result<Json<api::PolicyProblems>, Failure> {
    let policy = match read_body(&headers, &body) {
        Ok((p, _)) => p,
        Err(Failure::Invalid(p)) => return Ok(Json(problems_dto(&p))),
        Err(e) => return Err(e),
    };
    Ok(Json(match policy.validate() {
        Ok(()) => api::PolicyProblems::default(),
        Err(p) => problems_dto(&p),
    }))
}

/// The endpoint named `name`, and whether `who` may approve elevations on
/// it (a denial is recorded and answered).
async fn endpoint_for(
    st: &AppState,
    who: &Subject,
    name: &str,
    action: Action,
) -> Result<crate::agents::EndpointRecord, ApiError> {
    let Some(ep) = crate::agents::find_by_name(&st.db, name).await? else {
        return Err(EpmError::UnknownEndpoint(crate::ids::echo(name)).into());
    };
    check_group(st, who, action, &ep.name, &ep.group).await?;
    Ok(ep)
}

async fn check_group(
    st: &AppState,
    who: &Subject,
    action: Action,
    target: &str,
    group: &str,
) -> Result<(), ApiError> {
    match authorize(who, action, Resource::Endpoint { group }) {
        Decision::Allow => Ok(()),
        Decision::Forbid(why) => {
            Err(crate::rbac::denied(st, who, action, target, Some(group), why).await)
        }
    }
}

/// The first check of a per-endpoint EPM route, before its body is read:
/// `who` holds `epm-approve` (on some group; the endpoint's group is checked
/// once it is known) or `epm-manage` where `manage` allows it, and the
/// token's scope allows a `write`.
async fn may_approve(
    st: &AppState,
    who: &Subject,
    manage: bool,
    write: bool,
    target: &str,
) -> Result<(), ApiError> {
    use crate::rbac::Denial;
    let action = if write {
        Action::DecideElevation
    } else {
        Action::ApproveElevation
    };
    let why = if !(who.has(Permission::EpmApprove) || (manage && who.has(Permission::EpmManage))) {
        Denial::MissingPermission(Permission::EpmApprove)
    } else if !who.scopes.read || (write && !who.scopes.write) {
        Denial::InsufficientScope
    } else {
        return Ok(());
    };
    Err(crate::rbac::denied(st, who, action, target, None, why).await)
}

async fn what_if(
    State(st): State<AppState>,
    Caller(who): Caller,
    body: Bytes,
) -> Result<Json<api::WhatIfAnswer>, Failure> {
    may_approve(&st, &who, true, false, "epm what-if").await?;
    let q: api::WhatIf = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid what-if: {e}")))?;
    let Some(ep) = crate::agents::find_by_name(&st.db, &q.endpoint).await? else {
        return Err(
            ApiError::from(EpmError::UnknownEndpoint(crate::ids::echo(&q.endpoint))).into(),
        );
    };
    // `epm-manage` site-wide, or `epm-approve` on the endpoint's group.
    if !(who.has(Permission::EpmManage) && who.scopes.read) {
        check_group(&st, &who, Action::DecideElevation, &ep.name, &ep.group).await?;
    }
    let Some((path, args)) = q.command.split_first() else {
        return Err(
            ApiError::bad_request("command is empty: give the program and its arguments").into(),
        );
    };
    let (policy, which) = if q.published {
        let (p, v) = super::published_policy(&st).await?;
        (p, format!("v{v}"))
    } else {
        (super::draft(&st).await?.0, "draft".to_owned())
    };
    let groups = vec![ep.group.clone()];
    let engine = Engine::compile(&policy, &groups);
    let d = engine.decide(
        &EpmCaller {
            user: q.user.clone(),
            groups: q.groups.clone(),
        },
        &Program {
            path: path.clone(),
            sha256: q.sha256.clone(),
            args: args.to_vec(),
        },
    );
    Ok(Json(api::WhatIfAnswer {
        action: d.action.as_str().to_owned(),
        rule: d.rule,
        application: d.application,
        endpoint_groups: groups,
        policy: which,
    }))
}

fn bundle_dto(b: &store::BundleRow, notified: u64) -> api::PublishedBundle {
    api::PublishedBundle {
        version: b.version,
        sha256: b.sha256.clone(),
        size: b.size,
        key: b.key_id.clone(),
        published_by: b.published_by.clone(),
        published_at: rfc3339(b.published_at),
        notified,
    }
}

async fn publish(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<(StatusCode, Json<api::PublishedBundle>), Failure> {
    let (row, notified) = super::publish_and_notify(&st, &who.name).await?;
    Ok((StatusCode::CREATED, Json(bundle_dto(&row, notified as u64))))
}

async fn bundles(State(st): State<AppState>) -> Result<Json<Vec<api::PublishedBundle>>, ApiError> {
    let rows = store::bundles(&st.db, 1000).await?;
    Ok(Json(rows.iter().map(|b| bundle_dto(b, 0)).collect()))
}

async fn status(
    State(st): State<AppState>,
) -> Result<Json<Vec<api::EndpointPolicyStatus>>, ApiError> {
    let rows = store::status(&st.db).await?;
    Ok(Json(
        rows.into_iter()
            .map(
                |(id, name, _group, accepted, refusal, dropped, _)| api::EndpointPolicyStatus {
                    online: st.agents.locate(&AgentId(id)).is_online(),
                    endpoint: name,
                    accepted_version: accepted.and_then(|v| u64::try_from(v).ok()),
                    last_refusal: refusal,
                    dropped_events: u64::try_from(dropped).unwrap_or(0),
                },
            )
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    after: Option<u64>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn events(
    State(st): State<AppState>,
    Caller(who): Caller,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<api::EpmEventRow>>, ApiError> {
    // `epm-manage` or `view-audit` (then only endpoints of the caller's
    // groups, unless it holds all).
    let all = who.has(Permission::EpmManage);
    if !all && !who.has(Permission::ViewAudit) {
        let why = crate::rbac::Denial::MissingPermission(Permission::EpmManage);
        return Err(
            crate::rbac::denied(&st, &who, Action::ReadEpmEvents, "epm events", None, why).await,
        );
    }
    if !who.scopes.read {
        let why = crate::rbac::Denial::InsufficientScope;
        return Err(
            crate::rbac::denied(&st, &who, Action::ReadEpmEvents, "epm events", None, why).await,
        );
    }
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let agent = match &q.endpoint {
        Some(name) => match crate::agents::find_by_name(&st.db, name).await? {
            Some(ep) => Some(ep),
            None => return Err(EpmError::UnknownEndpoint(crate::ids::echo(name)).into()),
        },
        None => None,
    };
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let after = i64::try_from(q.after.unwrap_or(0)).unwrap_or(i64::MAX);
    let rows = store::events(&st.db, agent.as_ref().map(|a| a.id.as_str()), after, limit).await?;
    let scope = who.read_scope();
    Ok(Json(
        rows.into_iter()
            .filter(|r| all || scope.allows(Some(&r.5)))
            .map(|(id, endpoint, seq, at, body, _group)| api::EpmEventRow {
                id: u64::try_from(id).unwrap_or(0),
                endpoint,
                seq: u64::try_from(seq).unwrap_or(0),
                at,
                event: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    ))
}

/// Every endpoint: agent id → (name, group).
async fn endpoints(st: &AppState) -> Result<HashMap<String, (String, String)>, sqlx::Error> {
    let mut c = st.db.conn().await?;
    let rows: Vec<(String, String, String)> = crate::store::sql!(c, |c| sqlx::query_as(
        "SELECT id, name, group_name FROM endpoints"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(|(i, n, g)| (i, (n, g))).collect())
}

#[derive(Debug, Deserialize)]
struct RequestsQuery {
    #[serde(default)]
    state: Option<String>,
}

async fn requests(
    State(st): State<AppState>,
    Caller(who): Caller,
    q: Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Json<Vec<api::ElevationRequest>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(s) = &q.state
        && !["pending", "approved", "denied", "expired"].contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "state must be pending, approved, denied or expired",
        ));
    }
    store::expire_requests(&st.db, now_ms()).await?;
    let rows = store::requests(&st.db, q.state.as_deref(), 1000).await?;
    let eps = endpoints(&st).await?;
    Ok(Json(
        rows.iter()
            .filter_map(|r| {
                let (name, group) = eps.get(&r.agent_id)?;
                who.groups
                    .contains(group)
                    .then(|| super::request_dto(r, name))
            })
            .collect(),
    ))
}

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/epm/requests/events`: each request of the caller's groups
/// as it appears or changes (server-sent events, `request`).
async fn request_events(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = st.epm.subscribe();
    let stream = futures_util::stream::unfold((rx, st, who), |(mut rx, st, who)| async move {
        loop {
            match rx.recv().await {
                Ok(r) => {
                    let ep = crate::agents::find_by_id(&st.db, &AgentId(r.agent_id.clone()))
                        .await
                        .ok()
                        .flatten();
                    let Some(ep) = ep else { continue };
                    if !who.groups.contains(&ep.group) {
                        continue;
                    }
                    let dto = super::request_dto(&r, &ep.name);
                    let ev = Event::default()
                        .event("request")
                        .data(serde_json::to_string(&dto).unwrap_or_default());
                    return Some((Ok(ev), (rx, st, who)));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::info!(missed = n, "EPM request stream fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

async fn approve(
    st: State<AppState>,
    who: Caller,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<api::ElevationRequest>, ApiError> {
    decide(st, who, id, body, true).await
}

async fn deny(
    st: State<AppState>,
    who: Caller,
    id: Path<String>,
    body: Bytes,
) -> Result<Json<api::ElevationRequest>, ApiError> {
    decide(st, who, id, body, false).await
}

/// How long the gateway waits for the agent to take a decision.
const DECISION_TIMEOUT: Duration = Duration::from_secs(30);

async fn decide(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    body: Bytes,
    approved: bool,
) -> Result<Json<api::ElevationRequest>, ApiError> {
    may_approve(&st, &who, false, true, "epm request").await?;
    // The body is optional (`{}` or nothing: no comment).
    let req: api::DecideRequest = if body.iter().all(u8::is_ascii_whitespace) {
        api::DecideRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?
    };
    let comment: String = req.comment.chars().take(1000).collect();
    decide_checked(&st, &who, &id, approved, comment)
        .await
        .map(Json)
}

/// A technician's decision on elevation request `id`, from either route
/// (`/api/v1/epm/requests/{id}/…` or `/api/v1/access-requests/{id}/…`):
/// `who` holds `epm-approve` and a token allowing writes (else the same
/// refusal, audited), then [`decide_as`].
pub(crate) async fn decide_checked(
    st: &AppState,
    who: &Subject,
    id: &str,
    approved: bool,
    comment: String,
) -> Result<api::ElevationRequest, ApiError> {
    may_approve(st, who, false, true, "epm request").await?;
    decide_as(st, who, id, approved, comment).await
}

/// Approves or denies request `id` as `who` (`epm-approve` on the
/// endpoint's group), audited, then tells the agent (`epm-decision`). Its
/// access request (kind `elevation`, the same id) moves in step in the
/// same transaction (`access::record_elevation_decision`: `access-approve`
/// or `access-deny` audited too, for alert rules and webhooks).
pub(crate) async fn decide_as(
    st: &AppState,
    who: &Subject,
    id: &str,
    approved: bool,
    comment: String,
) -> Result<api::ElevationRequest, ApiError> {
    let Some(r) = store::request(&st.db, id).await? else {
        return Err(EpmError::UnknownRequest(crate::ids::echo(id)).into());
    };
    let Some(ep) = crate::agents::find_by_id(&st.db, &AgentId(r.agent_id.clone())).await? else {
        return Err(EpmError::UnknownRequest(crate::ids::echo(id)).into());
    };
    check_group(st, who, Action::DecideElevation, &ep.name, &ep.group).await?;
    let now = now_ms();
    store::expire_requests(&st.db, now).await?;
    let mut w = st.db.write().await?;
    if !store::decide(&mut w, &r.id, approved, &who.name, &comment, now).await? {
        drop(w);
        let state = store::request(&st.db, id)
            .await?
            .map_or_else(|| "gone".to_owned(), |r| r.state);
        return Err(EpmError::NotPending(state).into());
    }
    crate::access::record_elevation_decision(&mut w, &r.id, who, approved, &comment, now).await?;
    w.audit(
        AuditEvent::new(&who.name, AuditAction::EpmDecide, &r.id)
            .outcome(if approved { "approved" } else { "denied" })
            .detail(format!(
                "{} on {}: {}",
                r.username,
                ep.name,
                crate::store::audit::bound(&r.program, 200)
            ))
            .group(ep.group.clone()),
    )
    .await?;
    w.commit().await?;
    let row = store::request(&st.db, id)
        .await?
        .ok_or_else(|| ApiError::internal("a decided request vanished"))?;
    st.epm.publish(row.clone());
    let decision = ApprovalDecision {
        request: r.id.clone(),
        approved,
        by: who.name.clone(),
        comment,
    };
    let payload = serde_json::to_vec(&decision).map_err(ApiError::internal)?;
    if let Err(e) = system::send(
        st.agents.as_ref(),
        &ep.id,
        Topic::EpmDecision,
        payload.into(),
        DECISION_TIMEOUT,
    )
    .await
    .and_then(system::SystemReply::ok)
    {
        // Stored and audited: the agent's own wait ends the request there.
        tracing::info!(request = %r.id, endpoint = %ep.name, error = %e, "the decision did not reach the agent");
    }
    Ok(super::request_dto(&row, &ep.name))
}

async fn code(
    State(st): State<AppState>,
    Caller(who): Caller,
    body: Bytes,
) -> Result<Json<api::CodeResponse>, ApiError> {
    may_approve(&st, &who, false, true, "epm code").await?;
    let q: api::CodeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid code request: {e}")))?;
    let ep = endpoint_for(&st, &who, &q.endpoint, Action::DecideElevation).await?;
    let challenge = jumpgate_epm::code::normalize_challenge(&q.challenge)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = super::keys::code_key(&st.db, &st.keys).await?;
    let secret = jumpgate_epm::code::endpoint_secret(key.as_bytes(), ep.id.as_str());
    let response = jumpgate_epm::code::response(&secret, &challenge)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Audited before it is given; the response itself is never recorded.
    st.db
        .audit_now(
            AuditEvent::new(&who.name, AuditAction::EpmCode, &ep.name)
                .detail(format!("challenge {challenge}"))
                .group(ep.group.clone()),
        )
        .await?;
    Ok(Json(api::CodeResponse {
        response: jumpgate_epm::code::format_response(&response),
    }))
}

async fn signing_keys(
    State(st): State<AppState>,
) -> Result<Json<Vec<api::SigningKeyInfo>>, ApiError> {
    let mut c = st.db.conn().await?;
    let rows = super::keys::list(&mut c).await?;
    let mut live = 0;
    Ok(Json(
        rows.into_iter()
            .map(|(id, public_key, created, retired)| {
                let state = if retired.is_some() {
                    "retired"
                } else {
                    live += 1;
                    if live == 1 { "current" } else { "previous" }
                };
                api::SigningKeyInfo {
                    id,
                    public_key,
                    created_at: rfc3339(created),
                    state: state.to_owned(),
                }
            })
            .collect(),
    ))
}

async fn rotate(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<api::SigningKeyInfo>, ApiError> {
    let id = super::rotate_signing_key(&st, &who.name).await?;
    let Json(all) = signing_keys(State(st)).await?;
    all.into_iter()
        .find(|k| k.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::internal("the new signing key vanished"))
}

#[derive(Debug, Deserialize)]
struct Signed {
    expires: u64,
    sig: String,
}

/// `GET /epm/bundles/{version}?expires=&sig=`: the bundle file, for a URL
/// the gateway signed (local blob store). Wrong or expired signatures are
/// refused alike, and limited per address.
async fn bundle_route(
    State(st): State<AppState>,
    PeerAddr(peer): PeerAddr,
    Path(version): Path<String>,
    q: Result<Query<Signed>, QueryRejection>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::forbidden("the link is not valid or has expired");
    let ok = match (version.parse::<u64>(), q) {
        (Ok(v), Ok(Query(q))) => {
            let mut c = st.db.conn().await?;
            let key = super::keys::site_key(&mut c, &st.keys, super::keys::URL_KEY)
                .await
                .map_err(ApiError::from)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            notify::route_ok(&key, v, q.expires, &q.sig, now).then_some(v)
        }
        _ => None,
    };
    let Some(version) = ok else {
        if st
            .epm
            .bad_signatures
            .check(peer.ip(), tokio::time::Instant::now())
            .is_err()
        {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many invalid links; wait a little",
            ));
        }
        return Err(refused());
    };
    let Some(row) = store::bundle_of(&st.db, version).await? else {
        return Err(ApiError::not_found(ErrorCode::NotFound, "no such bundle"));
    };
    let key = crate::blobs::BlobKey::new(row.blob_key.clone()).map_err(ApiError::internal)?;
    let Some(reader) = st.blobs.get(&key).await.map_err(ApiError::internal)? else {
        return Err(ApiError::internal(format!(
            "bundle v{version} is missing from the blob store"
        )));
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&row.size.to_string()) {
        h.insert(axum::http::header::CONTENT_LENGTH, v);
    }
    Ok(r)
}
