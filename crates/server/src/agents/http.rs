//! `/api/v1/agents/enroll`, `/api/v1/endpoints*`, `/api/v1/groups*` and
//! `/api/v1/enroll-tokens`.

use super::groups::{self, GroupError};
use super::listing;
use super::{EndpointRecord, EnrollError, MoveError};
use crate::api::{ApiError, ApiJson};
use crate::rbac::Action;
use crate::rbac::Caller;
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};
use crate::{identity, ids};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::{self as api, ErrorCode};

pub(crate) fn routes(api: Api) -> Api {
    use crate::api::Access::{Public, Site};
    api.post("/api/v1/agents/enroll", Public, enroll)
        .get("/api/v1/endpoints", Site(Action::ListEndpoints), list)
        .put(
            "/api/v1/endpoints/{name}/group",
            Site(Action::WriteEndpoints),
            set_group,
        )
        .delete(
            "/api/v1/endpoints/{name}",
            Site(Action::WriteEndpoints),
            revoke,
        )
        .post(
            "/api/v1/endpoints/{name}/reenroll",
            Site(Action::WriteEndpoints),
            reenroll_token,
        )
        .post(
            "/api/v1/enroll-tokens",
            Site(Action::WriteEndpoints),
            enroll_token,
        )
        .get("/api/v1/groups", Site(Action::ReadGroups), groups)
        .post("/api/v1/groups", Site(Action::WriteGroups), create_group)
        .get("/api/v1/groups/{name}", Site(Action::ReadGroups), group)
        .patch(
            "/api/v1/groups/{name}",
            Site(Action::WriteGroups),
            update_group,
        )
        .delete(
            "/api/v1/groups/{name}",
            Site(Action::WriteGroups),
            delete_group,
        )
}

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::UnknownToken | EnrollError::TokenSpent | EnrollError::TokenExpired => {
                Self::new(
                    StatusCode::UNAUTHORIZED,
                    ErrorCode::InvalidEnrollmentToken,
                    e.to_string(),
                )
            }
            EnrollError::NameTaken(_) => {
                Self::new(StatusCode::CONFLICT, ErrorCode::NameTaken, e.to_string())
            }
            EnrollError::InvalidName(_) | EnrollError::InvalidKey => {
                Self::bad_request(e.to_string())
            }
            EnrollError::EndpointGone => {
                Self::new(StatusCode::GONE, ErrorCode::UnknownEndpoint, e.to_string())
            }
            EnrollError::Db(e) => Self::internal(e),
        }
    }
}

impl From<MoveError> for ApiError {
    fn from(e: MoveError) -> Self {
        match e {
            MoveError::UnknownEndpoint(_) => {
                Self::not_found(ErrorCode::UnknownEndpoint, e.to_string())
            }
            MoveError::UnknownGroup(_) => Self::bad_request(e.to_string()),
            MoveError::Db(e) => Self::internal(e),
        }
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Invalid(_) => Self::bad_request(e.to_string()),
            GroupError::NotFound(_) => Self::not_found(ErrorCode::NotFound, e.to_string()),
            GroupError::Exists(_)
            | GroupError::HasEndpoints { .. }
            | GroupError::HasTargets { .. }
            | GroupError::HasMembers { .. } => Self::conflict(e.to_string()),
            GroupError::Db(e) => Self::internal(e),
        }
    }
}

async fn enroll(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<api::EnrollRequest>,
) -> Result<Json<api::EnrollResponse>, ApiError> {
    match super::enroll(&st.db, &req).await {
        Ok(super::Enrolled { response, rekeyed }) => {
            // Its audit entry committed with it.
            if let Some(id) = rekeyed {
                tracing::info!(endpoint = %response.endpoint, id = %response.agent_id, "endpoint re-enrolled with a new key");
                // A connection made with the old key (the clone, or the
                // agent before it re-enrolled) ends now; the old key is
                // refused from now on.
                st.agents.disconnect(
                    &id,
                    jumpgate_proto::control::go_away_code::REKEYED,
                    "this endpoint was re-enrolled with a new key",
                );
            } else {
                tracing::info!(endpoint = %response.endpoint, group = %response.group, id = %response.agent_id, "endpoint enrolled");
            }
            Ok(Json(response))
        }
        Err(e) => {
            // The requested name may be anything (this route is public):
            // kept cleaned and bounded, as everything an endpoint sends.
            let name = super::reported::text(&req.name, super::reported::NAME_MAX);
            let why = super::reported::text(&e.to_string(), super::reported::MESSAGE_MAX);
            tracing::info!(endpoint = %name, reason = %why, "enrollment refused");
            st.db
                .audit_now(
                    AuditEvent::new(&name, AuditAction::Enroll, &name)
                        .outcome("refused")
                        .detail(why),
                )
                .await?;
            Err(e.into())
        }
    }
}

fn to_api(st: &AppState, e: EndpointRecord, now: i64) -> api::Endpoint {
    let online = st.agents.locate(&e.id).is_online();
    let last_seen = if online { Some(now) } else { e.last_seen };
    api::Endpoint {
        id: e.id.0,
        name: e.name,
        group: e.group,
        online,
        last_seen: last_seen.map(ids::rfc3339),
        enrolled_at: ids::rfc3339(e.enrolled_at),
        hostname: e.details.hostname,
        os: e.details.os,
        arch: e.details.arch,
        agent_version: e.details.agent_version,
        conflict: e.conflict.map(|c| api::EndpointConflict {
            last_at: ids::rfc3339(c.last_at),
            count: c.count.max(0) as u64,
            newcomer: c.newcomer,
        }),
    }
}

/// `GET /api/v1/endpoints` query: all optional; without `limit` every
/// endpoint is listed (as before paging existed).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Names containing this text (any case).
    name: Option<String>,
    group: Option<String>,
    /// Only endpoints whose agent is connected (`true`) or not (`false`).
    online: Option<bool>,
    /// Paging: the name of the last endpoint of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

/// Most endpoints one page may hold.
const MAX_PAGE: i64 = 10_000;

/// Endpoints in the groups the caller may view, by name: filtered and paged
/// (`?name=&group=&online=&after=&limit=`) over the gateway's copy of the
/// list (`agents::listing`), written straight from it.
async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(limit) = q.limit
        && !(1..=MAX_PAGE).contains(&limit)
    {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let scope = who.read_scope();
    let f = listing::ListFilter {
        scope: &scope,
        name: q.name.as_deref().filter(|n| !n.is_empty()),
        group: q.group.as_deref(),
        after: q.after.as_deref(),
    };
    let rows = st.endpoint_list.rows(&st.db).await?;
    let now = serde_json::to_string(&ids::rfc3339(ids::now_ms())).map_err(ApiError::internal)?;
    let page = listing::page(&rows, &f)
        .filter(|e| who.can_view(&e.group))
        .map(|e| (e, st.agents.locate(&e.id).is_online()))
        .filter(|(_, online)| q.online.is_none_or(|o| *online == o))
        .take(q.limit.map_or(usize::MAX, |n| n as usize));
    // The JSON array of the rows' `Endpoint`s, each row's bytes copied
    // from the list (`Listed::write_json`).
    let most = q.limit.map_or(rows.len(), |n| rows.len().min(n as usize));
    let each = rows.first().map_or(0, listing::Listed::json_len);
    let mut body = Vec::with_capacity(most * (each + 32) + 2);
    body.push(b'[');
    for (i, (e, online)) in page.enumerate() {
        if i > 0 {
            body.push(b',');
        }
        e.write_json(online, &now, &mut body);
    }
    body.push(b']');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn set_group(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::SetEndpointGroup>,
) -> Result<Json<api::Endpoint>, ApiError> {
    let e = super::set_group(&st.db, &name, &req.group, &who.name).await?;
    Ok(Json(to_api(&st, e, ids::now_ms())))
}

async fn revoke(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let online = |id: &crate::ids::AgentId| {
        if st.agents.locate(id).is_online() {
            "live connection cut".to_owned()
        } else {
            "offline".to_owned()
        }
    };
    let id = super::revoke(&st.db, &name, &who.name, online)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::UnknownEndpoint,
                format!("no endpoint named `{name}`"),
            )
        })?;
    // Its sessions end with the reason before the connection goes.
    crate::sessions::recheck::recheck(&st).await;
    st.agents.cut_revoked(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// A one-time token bound to the endpoint: the agent that enrolls with it
/// (`jumpgate agent --reenroll --enroll-token …`) gives the endpoint a new
/// key; the old key, and every copy of it, stops working.
async fn reenroll_token(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::CreateReenrollToken>,
) -> Result<(StatusCode, Json<api::ReenrollToken>), ApiError> {
    let ttl = token_ttl(req.ttl.as_deref())?;
    let t = super::create_reenroll_token(&st.db, &name, ttl, &who.name)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                ErrorCode::UnknownEndpoint,
                format!("no endpoint named `{name}`"),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(api::ReenrollToken {
            token: t.token,
            endpoint: name,
            expires_at: ids::rfc3339(t.expires_at_ms),
        }),
    ))
}

/// An enrollment token's lifetime: `ttl` (default 1h), between 1s and 30d.
fn token_ttl(ttl: Option<&str>) -> Result<std::time::Duration, ApiError> {
    let ttl = match ttl {
        None => std::time::Duration::from_secs(3600),
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| ApiError::bad_request(format!("ttl `{t}`: {e}")))?,
    };
    if ttl.is_zero() || ttl > std::time::Duration::from_secs(30 * 86400) {
        return Err(ApiError::bad_request("ttl must be between 1s and 30d"));
    }
    Ok(ttl)
}

async fn enroll_token(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateEnrollToken>,
) -> Result<(StatusCode, Json<api::EnrollToken>), ApiError> {
    let group = req.group.unwrap_or_else(|| "default".to_owned());
    let ttl = token_ttl(req.ttl.as_deref())?;
    let audit = crate::store::AuditEvent::new(
        &who.name,
        crate::store::AuditAction::EnrollTokenCreate,
        &group,
    )
    .detail("count=1")
    .group(&group);
    let t = identity::create_enroll_tokens(&st.db, &group, ttl, 1, audit)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no enrollment token was made"))?;
    Ok((
        StatusCode::CREATED,
        Json(api::EnrollToken {
            token: t.token,
            group,
            expires_at: ids::rfc3339(t.expires_at_ms),
        }),
    ))
}

/// The groups the caller can see, with how many live endpoints each holds.
async fn groups(
    State(st): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<Vec<api::Group>>, ApiError> {
    Ok(Json(
        groups::list(&st.db)
            .await?
            .into_iter()
            .filter(|g| who.can_view(&g.name))
            .map(to_api_group)
            .collect(),
    ))
}

fn to_api_group(g: groups::Group) -> api::Group {
    api::Group {
        name: g.name,
        description: g.description,
        endpoints: g.endpoints,
        consent: g.consent.as_str().to_owned(),
    }
}

/// One group the caller can see (another group does not exist for them).
async fn group(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<api::Group>, ApiError> {
    let unknown = || ApiError::not_found(ErrorCode::NotFound, format!("no group named `{name}`"));
    if !who.can_view(&name) {
        return Err(unknown());
    }
    groups::list(&st.db)
        .await?
        .into_iter()
        .find(|g| g.name == name)
        .map(|g| Json(to_api_group(g)))
        .ok_or_else(unknown)
}

async fn create_group(
    State(st): State<AppState>,
    Caller(who): Caller,
    ApiJson(req): ApiJson<api::CreateGroup>,
) -> Result<(StatusCode, Json<api::Group>), ApiError> {
    let consent = match req.consent.as_deref() {
        Some(c) => groups::parse_consent(c)?,
        None => jumpgate_proto::session::ConsentMode::default(),
    };
    let g = groups::create(&st.db, &req.name, &req.description, consent, &who.name).await?;
    Ok((StatusCode::CREATED, Json(to_api_group(g))))
}

/// Changes a group's description and/or consent mode (`group-update`).
async fn update_group(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<api::UpdateGroup>,
) -> Result<Json<api::Group>, ApiError> {
    let consent = req
        .consent
        .as_deref()
        .map(groups::parse_consent)
        .transpose()?;
    let g = groups::update(
        &st.db,
        &name,
        req.description.as_deref(),
        consent,
        &who.name,
    )
    .await?;
    Ok(Json(to_api_group(g)))
}

async fn delete_group(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    groups::delete(&st.db, &name, &who.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
