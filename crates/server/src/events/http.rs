//! `GET /api/v1/events`: the audit log, newest first, in the caller's scope.

use jumpgate_api_types as api;

use super::hex;
use crate::api::ApiError;
use crate::ids;
use crate::rbac::Access;
use crate::rbac::Action;
use crate::state::Api;
use crate::state::AppState;

pub(crate) fn routes(api: Api) -> Api {
    api.get("/api/v1/events", Access::Site(Action::ReadSessionLog), list)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    since: Option<String>,
    user: Option<String>,
    limit: Option<i64>,
}

/// Entries newest first, filtered by `since`, `user` and `limit`, and
/// limited to the caller's groups: a reader limited to some groups sees the
/// entries about endpoints of those groups, never site-wide ones.
async fn list(
    axum::extract::State(st): axum::extract::State<AppState>,
    crate::rbac::Caller(who): crate::rbac::Caller,
    query: Result<axum::extract::Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<api::SecurityEvent>>, ApiError> {
    let axum::extract::Query(f) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since_ms = match f.since.as_deref() {
        None => i64::MIN,
        Some(s) => {
            ids::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request(ids::bad_time("since", s)))?
        }
    };
    let limit = f.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let rows = super::list(
        &st.db,
        since_ms,
        f.user.as_deref(),
        &who.read_scope(),
        limit,
    )
    .await?;
    Ok(axum::Json(
        rows.into_iter()
            .map(|r| api::SecurityEvent {
                id: r.id,
                at: ids::rfc3339(r.at),
                actor: r.actor,
                action: r.action,
                target: r.target,
                outcome: r.outcome,
                detail: r.detail,
                hash: hex(&r.hash.unwrap_or_default()),
            })
            .collect(),
    ))
}
