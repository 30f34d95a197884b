//! Technician sessions: authorization at open, the relay between the
//! technician's upgraded connection and a stream to the agent, and the
//! session event table (who, endpoint, kind, start, end, bytes, outcome).
//!
//! # Layout
//! - `http.rs`: the routes, the HTTP upgrade and the console's WebSocket
//!   pump (no session logic);
//! - `open.rs`: [`open::SessionService`], the lifecycle (authorize → event
//!   row → audit → taps → agent stream → relay → close), callable from any
//!   entry point;
//! - `relay.rs`: bytes between the two sides, message by message for
//!   framed kinds;
//! - `tap.rs`: [`tap::SessionTap`], what is kept of a session as it passes
//!   (the recording, the transfer audit), chosen by session kind;
//! - `outcome.rs`: [`outcome::Outcome`], how a session ended, as stored;
//! - `control.rs`: [`control::SessionControl`], stopping a session wherever
//!   it runs;
//! - `recheck.rs`: live sessions decided again when access may change.

pub(crate) mod control;
pub(crate) mod http;
pub(crate) mod open;
pub(crate) mod outcome;
pub(crate) mod recheck;
mod relay;
pub(crate) mod tap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jumpgate_api_types as api;
use jumpgate_proto::session::SessionKind;
use sqlx::{Row, SqlitePool};
use tokio_util::sync::CancellationToken;

use crate::ids::{self, AgentId, SessionId};
use crate::rbac::{ReadScope, SubjectKind};

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

/// What a live session was allowed with, kept so that it can be decided
/// again whenever access may have changed (see [`recheck`]).
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// The credential it was opened with (its hash, never the token).
    pub(crate) credential: crate::identity::Credential,
    /// The subject as it was at open (its kind and id name the account).
    pub(crate) subject: SubjectKind,
    pub(crate) subject_name: String,
    pub(crate) endpoint_id: AgentId,
    pub(crate) endpoint_name: String,
    pub(crate) kind: SessionKind,
    /// When the credential expires (ms since the epoch), if known.
    pub(crate) expires_at: Option<i64>,
}

#[derive(Debug)]
struct Live {
    stop: StopHandle,
    grant: Grant,
}

/// Sessions being relayed right now.
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveSessions {
    inner: Arc<Mutex<HashMap<SessionId, Live>>>,
    /// Poked after anything that may withdraw access; wakes [`recheck::run`].
    changed: Arc<tokio::sync::Notify>,
    /// One re-check at a time (each ends a session once, audited once).
    rechecking: Arc<tokio::sync::Mutex<()>>,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Live>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self, id: SessionId, grant: Grant) -> StopHandle {
        let stop = StopHandle::new();
        self.lock().insert(
            id,
            Live {
                stop: stop.clone(),
                grant,
            },
        );
        // Decided again once registered: access withdrawn between the
        // request's check and now is not missed.
        self.changed();
        stop
    }

    fn remove(&self, id: &SessionId) {
        self.lock().remove(id);
    }

    /// Says that access may have changed: every live session is decided
    /// again, at once (in the background).
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// The stop handle of one live session (`None`: not being relayed).
    pub(crate) fn get(&self, id: &str) -> Option<StopHandle> {
        self.lock()
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, l)| l.stop.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Every live session not already stopping, copied out of the lock.
    fn snapshot(&self) -> Vec<(SessionId, Grant)> {
        self.lock()
            .iter()
            .filter(|(_, l)| !l.stop.token.is_cancelled())
            .map(|(id, l)| (id.clone(), l.grant.clone()))
            .collect()
    }

    /// The earliest credential expiry among live sessions.
    fn earliest_expiry(&self) -> Option<i64> {
        self.lock()
            .values()
            .filter_map(|l| l.grant.expires_at)
            .min()
    }

    /// Asks every live session to close, telling each technician why.
    pub(crate) fn stop_all(&self, reason: &str) {
        for l in self.lock().values() {
            l.stop.stop(reason);
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
/// Sessions left open by a crash end at their last recorded activity (or
/// their start), with the bytes last recorded: not at the restart.
pub(crate) async fn close_orphans(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    let r = sqlx::query("UPDATE session_events SET ended_at = COALESCE(last_active_at, started_at), outcome = 'interrupted: gateway restarted' WHERE ended_at IS NULL")
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// How often a running session's progress is written (only when bytes
/// moved since the last write).
pub(crate) const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Records a running session's progress: its bytes so far, and now as its
/// last activity. Never touches a session that has ended.
pub(crate) async fn record_progress(
    db: &SqlitePool,
    id: &SessionId,
    bytes_up: u64,
    bytes_down: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE session_events SET last_active_at = ?, bytes_up = ?, bytes_down = ? WHERE id = ? AND ended_at IS NULL")
        .bind(ids::now_ms())
        .bind(bytes_up as i64)
        .bind(bytes_down as i64)
        .bind(id.as_str())
        .execute(db)
        .await?;
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at: Option<i64>) -> Grant {
        Grant {
            credential: crate::identity::Credential::of("jgs_test"),
            subject: SubjectKind::User(crate::ids::UserId("usr_1".into())),
            subject_name: "bob".into(),
            endpoint_id: AgentId("ep_1".into()),
            endpoint_name: "srv".into(),
            kind: SessionKind::Shell,
            expires_at,
        }
    }

    #[test]
    fn stopping_sessions_are_not_rechecked_and_the_earliest_expiry_wakes_the_sweep() {
        let live = LiveSessions::default();
        let (a, b, c) = (
            SessionId::generate(),
            SessionId::generate(),
            SessionId::generate(),
        );
        let stop_a = live.register(a.clone(), grant(Some(3_000)));
        live.register(b.clone(), grant(Some(2_000)));
        live.register(c, grant(None));
        assert_eq!(live.earliest_expiry(), Some(2_000));
        stop_a.stop("access revoked: test");
        let ids: Vec<_> = live.snapshot().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 2);
        assert!(!ids.contains(&a), "a stopping session is not decided again");
        assert_eq!(
            live.get(a.as_str()).unwrap().reason(),
            "access revoked: test"
        );
        live.remove(&b);
        assert_eq!(live.earliest_expiry(), Some(3_000));
    }

    #[test]
    fn a_credential_never_shows_its_hash() {
        let shown = format!("{:?}", crate::identity::Credential::of("jgs_secret"));
        assert!(
            !shown.contains("hash") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
