//! Technician sessions: authorization at open, the relay between the
//! technician's upgraded connection and a stream to the agent, and the
//! session event table (who, endpoint, kind, start, end, bytes, outcome).

pub(crate) mod http;
mod relay;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};
use tokio_util::sync::CancellationToken;

use crate::ids::{self, SessionId};
use crate::rbac::ReadScope;

/// A session being relayed, as seen by whoever may stop it.
#[derive(Clone, Debug)]
pub(crate) struct StopHandle {
    token: CancellationToken,
    reason: Arc<OnceLock<String>>,
}

impl StopHandle {
    pub(crate) fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: Arc::new(OnceLock::new()),
        }
    }

    pub(crate) fn stop(&self, reason: &str) {
        let _ = self.reason.set(reason.to_owned());
        self.token.cancel();
    }

    pub(crate) fn reason(&self) -> &str {
        self.reason
            .get()
            .map_or("session ended by the gateway", String::as_str)
    }
}

/// Sessions being relayed right now.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveSessions {
    inner: Arc<Mutex<HashMap<SessionId, StopHandle>>>,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, StopHandle>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: SessionId) -> StopHandle {
        let h = StopHandle::new();
        self.lock().insert(id, h.clone());
        h
    }

    fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    /// The stop handle of one live session (`None`: not being relayed).
    pub(crate) fn get(&self, id: &str) -> Option<StopHandle> {
        self.lock()
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, h)| h.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks every live session to close, telling each technician why.
    pub(crate) fn stop_all(&self, reason: &str) {
        for h in self.lock().values() {
            h.stop(reason);
        }
    }
}

/// One row of the session event table, at open.
pub(crate) struct NewEvent<'a> {
    pub(crate) user_id: &'a str,
    pub(crate) username: &'a str,
    pub(crate) endpoint_id: Option<&'a str>,
    pub(crate) endpoint_name: &'a str,
    /// The endpoint's group now: the row stays with it (`rbac::ReadScope`).
    pub(crate) endpoint_group: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) target: &'a str,
    pub(crate) outcome: &'a str,
}

/// Writes the event row; it is committed (durable) before the session starts.
pub(crate) async fn record_start(
    db: &SqlitePool,
    ev: &NewEvent<'_>,
) -> Result<SessionId, sqlx::Error> {
    let id = SessionId::generate();
    let now = ids::now_ms();
    sqlx::query(
        "INSERT INTO session_events (id, user_id, username, endpoint_id, endpoint_name, endpoint_group, kind, target, started_at, ended_at, outcome)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.as_str())
    .bind(ev.user_id)
    .bind(ev.username)
    .bind(ev.endpoint_id)
    .bind(ev.endpoint_name)
    .bind(ev.endpoint_group)
    .bind(ev.kind)
    .bind(ev.target)
    .bind(now)
    // Events that never become sessions (denials) end when they start.
    .bind((ev.outcome != "open").then_some(now))
    .bind(ev.outcome)
    .execute(db)
    .await?;
    Ok(id)
}

pub(crate) async fn record_end(
    db: &SqlitePool,
    id: &SessionId,
    bytes_up: u64,
    bytes_down: u64,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE session_events SET ended_at = ?, bytes_up = ?, bytes_down = ?, outcome = ? WHERE id = ?")
        .bind(ids::now_ms())
        .bind(bytes_up as i64)
        .bind(bytes_down as i64)
        .bind(outcome)
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(())
}

/// Sessions left open by a crash are closed at start-up, so the table never
/// claims a session is still running.
pub(crate) async fn close_orphans(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE session_events SET ended_at = ?, outcome = 'interrupted: gateway restarted' WHERE ended_at IS NULL")
        .bind(ids::now_ms())
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Filters and paging of [`list`].
#[derive(Debug)]
pub(crate) struct Filter<'a> {
    pub(crate) scope: &'a ReadScope,
    pub(crate) endpoint: Option<&'a str>,
    pub(crate) user: Option<&'a str>,
    pub(crate) kind: Option<&'a str>,
    pub(crate) since_ms: Option<i64>,
    pub(crate) until_ms: Option<i64>,
    /// Only sessions still running (`Some(true)`) or ended (`Some(false)`).
    pub(crate) active: Option<bool>,
    /// Paging: only rows after this one in the list's order (newest first).
    pub(crate) before: Option<(i64, &'a str)>,
    pub(crate) limit: i64,
}

/// The position of session `id` in the list's order, for `before=` paging
/// (`None`: no such session in the caller's scope).
pub(crate) async fn cursor(
    db: &SqlitePool,
    scope: &ReadScope,
    id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT started_at FROM session_events WHERE id = ?1
           AND (?2 IS NULL OR endpoint_group IN (SELECT value FROM json_each(?2)))",
    )
    .bind(id)
    .bind(scope.sql_param())
    .fetch_optional(db)
    .await
}

/// The endpoint group a session was recorded under (`None`: no such
/// session; `Some(None)`: a session whose group is unknown).
pub(crate) async fn group_of(
    db: &SqlitePool,
    id: &str,
) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar("SELECT endpoint_group FROM session_events WHERE id = ?")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// Session rows newest first (then by id), in the caller's scope.
pub(crate) async fn list(
    db: &SqlitePool,
    f: &Filter<'_>,
) -> Result<Vec<api::SessionEvent>, sqlx::Error> {
    let (before_at, before_id) = f
        .before
        .map_or((None, None), |(at, id)| (Some(at), Some(id)));
    let rows = sqlx::query(
        "SELECT * FROM session_events
         WHERE (?1 IS NULL OR endpoint_group IN (SELECT value FROM json_each(?1)))
           AND (?2 IS NULL OR endpoint_name = ?2)
           AND (?3 IS NULL OR username = ?3)
           AND (?4 IS NULL OR kind = ?4)
           AND (?5 IS NULL OR started_at >= ?5)
           AND (?6 IS NULL OR started_at < ?6)
           AND (?7 IS NULL OR (ended_at IS NULL) = ?7)
           AND (?8 IS NULL OR started_at < ?8 OR (started_at = ?8 AND id > ?9))
         ORDER BY started_at DESC, id LIMIT ?10",
    )
    .bind(f.scope.sql_param())
    .bind(f.endpoint)
    .bind(f.user)
    .bind(f.kind)
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(f.active)
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| api::SessionEvent {
            id: r.get("id"),
            username: r.get("username"),
            endpoint: r.get("endpoint_name"),
            kind: r.get("kind"),
            target: r.get("target"),
            started_at: ids::rfc3339(r.get("started_at")),
            ended_at: r.get::<Option<i64>, _>("ended_at").map(ids::rfc3339),
            bytes_up: r.get::<i64, _>("bytes_up") as u64,
            bytes_down: r.get::<i64, _>("bytes_down") as u64,
            outcome: r.get("outcome"),
        })
        .collect())
}
