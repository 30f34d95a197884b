//! `GET /api/v1/recordings`, `GET /api/v1/recordings/{id}/cast` and
//! `GET /api/v1/recordings/search` (all need `view-audit`, and only show
//! recordings of the caller's groups; every playback, export or search is
//! itself audited).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use jumpgate_api_types::{self as api, ErrorCode};

use super::{Filter, ReadError, RecordingError};
use crate::api::ApiError;
use crate::ids;
use crate::rbac::Action;
use crate::rbac::{Access, Caller};
use crate::state::Api;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent};

pub(crate) fn routes(api: Api) -> Api {
    api.get(
        "/api/v1/recordings",
        Access::Site(Action::ReadRecordings),
        list,
    )
    .get(
        "/api/v1/recordings/{id}/cast",
        Access::Site(Action::ReadRecordings),
        cast,
    )
    .get(
        "/api/v1/recordings/search",
        Access::Site(Action::ReadRecordings),
        search,
    )
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Finds the recordings (of the caller's groups) where a text was printed
/// or typed (`recordings::search`). The audit entry has the text's size
/// and the recordings found, never the text: what someone searches for in
/// sessions may be what was typed in them (a password, a token), and the
/// audit log is read, exported and shipped more widely than recordings.
async fn search(
    State(st): State<AppState>,
    Caller(who): Caller,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<api::recording_search::RecordingSearch>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let text =
        q.q.ok_or_else(|| ApiError::bad_request("give the text to search for as q"))?;
    let parsed =
        super::search::Query::parse(&text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let limit = q.limit.unwrap_or(20);
    let max = i64::from(api::recording_search::MAX_RESULTS);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let after = q
        .cursor
        .as_deref()
        .map(super::search::Cursor::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("cursor is not one a search answered with"))?;
    let scope = who.read_scope();
    let req = super::search::Request {
        query: &parsed,
        scope: &scope,
        limit: usize::try_from(limit).unwrap_or(20),
        after,
    };
    let src = super::search::Source {
        db: &st.db,
        keys: &st.keys,
        blobs: &st.blobs,
        data_dir: &st.config.data_dir,
    };
    let found = super::search::search(src, &req)
        .await
        .map_err(ApiError::internal)?;
    let ids: Vec<&str> = found
        .page
        .results
        .iter()
        .map(|h| h.recording.id.as_str())
        .collect();
    st.db
        .audit_now(
            AuditEvent::new(&who.name, AuditAction::RecordingSearch, "recordings")
                .groups(found.groups.iter().cloned())
                .detail(format!(
                    "query_chars={} words={} found={} recordings={}",
                    text.trim().chars().count(),
                    parsed.words.len(),
                    ids.len(),
                    ids.join(",")
                )),
        )
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(found.page))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    endpoint: Option<String>,
    user: Option<String>,
    since: Option<String>,
    limit: Option<i64>,
}

async fn list(
    State(st): State<AppState>,
    Caller(who): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<api::Recording>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since_ms = q
        .since
        .as_deref()
        .map(|s| {
            ids::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request(ids::bad_time("since", s)))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let scope = who.read_scope();
    let f = Filter {
        scope: Some(&scope),
        endpoint: q.endpoint.as_deref(),
        user: q.user.as_deref(),
        since_ms,
        limit,
    };
    Ok(Json(super::list(&st.db, &f).await?))
}

fn damaged(e: &ReadError) -> ApiError {
    tracing::warn!(error = %e, "a recording could not be read");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RecordingDamaged,
        format!("the recording cannot be played: {e}"),
    )
}

/// The recording as plain asciicast v2 (a desktop's: JSON lines,
/// `api::DESKTOP_RECORDING_CONTENT_TYPE`), streamed chunk by chunk. A chunk
/// that fails its integrity check ends the body with an error, so a
/// client never mistakes a damaged recording for a complete one.
async fn cast(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let unknown =
        || ApiError::not_found(ErrorCode::UnknownRecording, format!("no recording `{id}`"));
    // Recordings of groups outside the caller's do not exist for them
    // (404, like endpoints), decided before the file is touched.
    let group = super::group_of(&st.db, &id).await?.ok_or_else(unknown)?;
    if !who.read_scope().allows(group.as_deref()) {
        return Err(unknown());
    }
    let opened = super::open(&st.db, &st.keys, &st.blobs, &st.config.data_dir, &id)
        .await
        .map_err(|e| match e {
            RecordingError::Read(e) => damaged(&e),
            other => ApiError::internal(other),
        })?;
    let Some(mut opened) = opened else {
        return Err(unknown());
    };
    let content_type = opened.info.kind.content_type();
    // The header chunk is read first, so an unreadable recording gets a
    // clear error instead of an empty body.
    let first = opened.next().await.map_err(|e| damaged(&e))?;
    st.db
        .audit_now(
            AuditEvent::new(&who.name, AuditAction::RecordingView, &id)
                .groups(group.iter().cloned())
                .detail(format!(
                    "session={} endpoint={} user={}",
                    opened.info.session_id, opened.info.endpoint, opened.info.username
                )),
        )
        .await
        .map_err(ApiError::internal)?;
    let stream =
        futures_util::stream::unfold((first, Some(opened)), |(pending, opened)| async move {
            let mut opened = opened?;
            if let Some(chunk) = pending {
                return Some((Ok(chunk), (None, Some(opened))));
            }
            match opened.next().await {
                Ok(Some(chunk)) => Some((Ok(chunk), (None, Some(opened)))),
                Ok(None) => match opened.check_end() {
                    Ok(()) => None,
                    Err(e) => Some((Err(std::io::Error::other(e.to_string())), (None, None))),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "a recording is damaged");
                    Some((Err(std::io::Error::other(e.to_string())), (None, None)))
                }
            }
        });
    Response::builder()
        .header(CONTENT_TYPE, content_type)
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}
