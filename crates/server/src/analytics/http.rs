//! `GET /api/v1/reports` and `GET /api/v1/reports/{name}`: the reports,
//! run by the analytics store's read identity, as JSON or CSV
//! (`reports-read`; a caller limited to some groups sees only their rows).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jumpgate_api_types::ErrorCode;
use jumpgate_api_types::reports as api;

use super::reports;
use crate::api::ApiError;
use crate::ids;
use crate::rbac::{Access, Action, ReadScope};
use crate::state::{Api, AppState};

pub(crate) fn routes(api: Api) -> Api {
    api.get("/api/v1/reports", Access::Site(Action::ReadReports), list)
        .get(
            "/api/v1/reports/{name}",
            Access::Site(Action::ReadReports),
            run,
        )
}

async fn list() -> axum::Json<Vec<api::ReportInfo>> {
    axum::Json(reports::catalogue())
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    since: Option<String>,
    until: Option<String>,
    group: Option<String>,
    user: Option<String>,
    endpoint: Option<String>,
    format: Option<String>,
}

/// An RFC 3339 time, or a day `YYYY-MM-DD` (its midnight, UTC), in ms.
pub(crate) fn parse_time(key: &str, s: &str) -> Result<i64, ApiError> {
    if let Some(ms) = ids::parse_rfc3339(s) {
        return Ok(ms);
    }
    let day = || -> Option<i64> {
        let mut parts = s.splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
        let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
        Some(date.midnight().assume_utc().unix_timestamp() * 1000)
    };
    day().ok_or_else(|| {
        ApiError::bad_request(format!(
            "{key}: `{s}` is neither an RFC 3339 time (2026-11-23T10:00:00Z) nor a day (2026-11-23)"
        ))
    })
}

async fn run(
    axum::extract::State(st): axum::extract::State<AppState>,
    crate::rbac::Caller(who): crate::rbac::Caller,
    axum::extract::Path(name): axum::extract::Path<String>,
    query: Result<axum::extract::Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(f) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let spec = reports::find(&name).ok_or_else(|| {
        ApiError::not_found(
            ErrorCode::UnknownReport,
            format!(
                "no report `{}` (GET /api/v1/reports lists them)",
                name.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let csv = match f.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format: `{other}` is not json or csv"
            )));
        }
    };
    let since = f
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?;
    let until = f
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?;
    if let (Some(s), Some(u)) = (since, until)
        && u <= s
    {
        return Err(ApiError::bad_request("until must be after since"));
    }
    for (key, v) in [
        ("group", &f.group),
        ("user", &f.user),
        ("endpoint", &f.endpoint),
    ] {
        if v.as_ref().is_some_and(|v| v.is_empty() || v.len() > 256) {
            return Err(ApiError::bad_request(format!(
                "{key}: give 1 to 256 characters"
            )));
        }
    }
    let scope = match who.read_scope() {
        ReadScope::All => None,
        ReadScope::Groups(gs) => Some(gs),
    };
    let q = reports::Query {
        spec,
        since,
        until,
        group: f.group.as_deref(),
        user: f.user.as_deref(),
        endpoint: f.endpoint.as_deref(),
        scope: scope.as_deref(),
    };
    let Some(reader) = st.analytics.reader() else {
        return Err(unavailable("the analytics store is not open"));
    };
    let mut groups = reader.query(&q).await.map_err(|e| {
        tracing::warn!(error = %e, report = spec.name, "cannot read the analytics store");
        unavailable("the analytics store cannot be read right now; see the gateway log")
    })?;
    reports::sort(spec, &mut groups);
    let report = reports::table(spec, &groups);
    if csv {
        let mut resp = (StatusCode::OK, reports::csv(&report)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.csv\"", spec.name))
        {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        Ok(resp)
    } else {
        Ok(axum::Json(report).into_response())
    }
}

fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::AnalyticsUnavailable,
        message,
    )
}
