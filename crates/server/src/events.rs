//! Security events: logins, lockouts, denials, account, role, group and
//! settings changes. Written best-effort here; the audit work makes this log
//! hash-chained and durable before the action is acknowledged.

use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};

use crate::api::{Access, Api, ApiError};
use crate::ids;
use crate::rbac::Action;
use crate::state::AppState;

/// Appends an event. A failure is logged, never hidden, and does not fail
/// the request (the audit work will make it do so).
pub(crate) async fn record(
    db: &SqlitePool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) {
    let res = sqlx::query(
        "INSERT INTO events (at, actor, action, target, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(ids::now_ms())
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(outcome)
    .bind(detail)
    .execute(db)
    .await;
    if let Err(e) = res {
        tracing::error!(error = %e, actor, action, target, outcome, "could not record a security event");
    }
}

pub(crate) fn routes(api: Api) -> Api {
    api.get("/api/v1/events", Access::Site(Action::ReadSessionLog), list)
}

async fn list(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> Result<axum::Json<Vec<api::SecurityEvent>>, ApiError> {
    let rows = sqlx::query("SELECT * FROM events ORDER BY id DESC LIMIT 1000")
        .fetch_all(&st.db)
        .await?;
    Ok(axum::Json(
        rows.iter()
            .map(|r| api::SecurityEvent {
                at: ids::rfc3339(r.get("at")),
                actor: r.get("actor"),
                action: r.get("action"),
                target: r.get("target"),
                outcome: r.get("outcome"),
                detail: r.get("detail"),
            })
            .collect(),
    ))
}
