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
#[cfg(test)]
mod desktop_tests;
pub(crate) mod http;
pub(crate) mod open;
pub(crate) mod outcome;
pub(crate) mod recheck;
mod relay;
pub(crate) mod schema;
pub(crate) mod tap;
pub(crate) mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use jumpgate_api_types as api;
use jumpgate_proto::session::SessionKind;
use tokio_util::sync::CancellationToken;

use crate::ids::{self, AgentId, SessionId};
use crate::rbac::{ReadScope, SubjectKind};
use crate::store::{Engine, Exec, Store, sql};

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
    /// A sub-session of attended support: its support session and the
    /// technician's user id (decided again by the support hub: still
    /// taking part, the right still granted, the client still there).
    pub(crate) support: Option<(String, String)>,
    /// A session on an agentless target (its name): decided on the
    /// target's group, and stopped when the target is removed.
    pub(crate) target: Option<String>,
    /// The access request whose grant allowed it (its group requires
    /// approval): when the grant ends, the re-check stops the session
    /// saying so ("access grant expired").
    pub(crate) access_request: Option<String>,
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
    /// Live terminal sessions' output, for supervisors watching.
    pub(crate) watches: watch::Watches,
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
    /// The support session of a sub-session on a customer's machine.
    pub(crate) support_id: Option<&'a str>,
}

/// Writes the event row of a session that never starts (a denial: it ends
/// when it starts).
pub(crate) async fn record_start(db: &Store, ev: &NewEvent<'_>) -> Result<SessionId, sqlx::Error> {
    let mut c = db.write_conn().await?;
    insert_event(&mut c, ev).await
}

/// Writes the event row inside `e` (a session's open commits it with its
/// `session-open` entry, durable before the session starts).
pub(crate) async fn insert_event(
    e: &mut dyn Exec,
    ev: &NewEvent<'_>,
) -> Result<SessionId, sqlx::Error> {
    let id = SessionId::generate();
    insert_event_as(e, &id, ev).await?;
    Ok(id)
}

/// [`insert_event`] with the id chosen by the caller (rows written in the
/// same transaction refer to it).
pub(crate) async fn insert_event_as(
    e: &mut dyn Exec,
    id: &SessionId,
    ev: &NewEvent<'_>,
) -> Result<(), sqlx::Error> {
    let now = ids::now_ms();
    sql!(e, |c| {
        sqlx::query(
        "INSERT INTO session_events (id, user_id, username, endpoint_id, endpoint_name, endpoint_group, kind, target, started_at, ended_at, outcome, support_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
    .bind(ev.support_id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Writes a session's end (time, bytes, outcome) inside `e`.
pub(crate) async fn end_event(
    e: &mut dyn Exec,
    id: &SessionId,
    bytes_up: u64,
    bytes_down: u64,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sql!(e, |c| {
        sqlx::query(
        "UPDATE session_events SET ended_at = $1, bytes_up = $2, bytes_down = $3, outcome = $4 WHERE id = $5"
    )
    .bind(ids::now_ms())
    .bind(bytes_up as i64)
    .bind(bytes_down as i64)
    .bind(outcome)
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Writes a session's end on its own (no audit entry with it).
pub(crate) async fn record_end(
    db: &Store,
    id: &SessionId,
    bytes_up: u64,
    bytes_down: u64,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    let mut c = db.write_conn().await?;
    end_event(&mut c, id, bytes_up, bytes_down, outcome).await
}

/// Sessions left open by a crash are closed at start-up, so the table never
/// claims a session is still running. They end at their last recorded
/// activity (or their start), with the bytes last recorded: not at the
/// restart.
pub(crate) async fn close_orphans(db: &Store) -> Result<u64, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE session_events SET ended_at = COALESCE(last_active_at, started_at),
                outcome = 'interrupted: gateway restarted'
         WHERE ended_at IS NULL"
    )
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

/// How often a running session's progress is written (only when bytes
/// moved since the last write).
pub(crate) const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Records a running session's progress: its bytes so far, and now as its
/// last activity. Never touches a session that has ended.
pub(crate) async fn record_progress(
    db: &Store,
    id: &SessionId,
    bytes_up: u64,
    bytes_down: u64,
) -> Result<(), sqlx::Error> {
    let mut c = db.write_conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE session_events SET last_active_at = $1, bytes_up = $2, bytes_down = $3
         WHERE id = $4 AND ended_at IS NULL"
    )
    .bind(ids::now_ms())
    .bind(bytes_up as i64)
    .bind(bytes_down as i64)
    .bind(id.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
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

/// `endpoint_group` in the scope given as `$1` (`rbac::ReadScope::sql_param`:
/// NULL for every row, else a JSON array of group names), per engine.
macro_rules! in_scope {
    (sqlite) => {
        "($1 IS NULL OR endpoint_group IN (SELECT value FROM json_each($1)))"
    };
    (postgres) => {
        "($1::text IS NULL OR endpoint_group IN (SELECT json_array_elements_text($1::json)))"
    };
}

/// The position of session `id` in the list's order, for `before=` paging
/// (`None`: no such session in the caller's scope).
pub(crate) async fn cursor(
    db: &Store,
    scope: &ReadScope,
    id: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let q = match db.engine() {
        Engine::Sqlite => concat!(
            "SELECT started_at FROM session_events WHERE ",
            in_scope!(sqlite),
            " AND id = $2"
        ),
        Engine::Postgres => concat!(
            "SELECT started_at FROM session_events WHERE ",
            in_scope!(postgres),
            " AND id = $2"
        ),
    };
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(q)
        .bind(scope.sql_param())
        .bind(id)
        .fetch_optional(&mut *c)
        .await)
}

/// The endpoint group a session was recorded under (`None`: no such
/// session; `Some(None)`: a session whose group is unknown).
pub(crate) async fn group_of(db: &Store, id: &str) -> Result<Option<Option<String>>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(
        "SELECT endpoint_group FROM session_events WHERE id = $1"
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)
}

/// A `session_events` row as [`list`] reads it.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    username: String,
    endpoint_name: String,
    kind: String,
    target: String,
    started_at: i64,
    ended_at: Option<i64>,
    bytes_up: i64,
    bytes_down: i64,
    outcome: String,
    support_id: Option<String>,
}

/// [`list`]'s statement after the scope test (`$1`): the same on both
/// engines (PostgreSQL learns each parameter's type from its binding).
macro_rules! list_rest {
    () => {
        " AND ($2 IS NULL OR endpoint_name = $2)
          AND ($3 IS NULL OR username = $3)
          AND ($4 IS NULL OR kind = $4)
          AND ($5 IS NULL OR started_at >= $5)
          AND ($6 IS NULL OR started_at < $6)
          AND ($7 IS NULL OR (ended_at IS NULL) = $7)
          AND ($8 IS NULL OR started_at < $8 OR (started_at = $8 AND id > $9))
        ORDER BY started_at DESC, id LIMIT $10"
    };
}

/// Session rows newest first (then by id), in the caller's scope.
pub(crate) async fn list(
    db: &Store,
    f: &Filter<'_>,
) -> Result<Vec<api::SessionEvent>, sqlx::Error> {
    let q = match db.engine() {
        Engine::Sqlite => concat!(
            "SELECT id, username, endpoint_name, kind, target, started_at, ended_at, \
             bytes_up, bytes_down, outcome, support_id FROM session_events WHERE ",
            in_scope!(sqlite),
            list_rest!()
        ),
        Engine::Postgres => concat!(
            "SELECT id, username, endpoint_name, kind, target, started_at, ended_at, \
             bytes_up, bytes_down, outcome, support_id FROM session_events WHERE ",
            in_scope!(postgres),
            list_rest!()
        ),
    };
    let (before_at, before_id) = f
        .before
        .map_or((None, None), |(at, id)| (Some(at), Some(id)));
    let mut c = db.conn().await?;
    let rows: Vec<EventRow> = sql!(c, |c| sqlx::query_as(q)
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
        .fetch_all(&mut *c)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|r| api::SessionEvent {
            id: r.id,
            username: r.username,
            endpoint: r.endpoint_name,
            kind: r.kind,
            target: r.target,
            started_at: ids::rfc3339(r.started_at),
            ended_at: r.ended_at.map(ids::rfc3339),
            bytes_up: r.bytes_up.max(0) as u64,
            bytes_down: r.bytes_down.max(0) as u64,
            outcome: r.outcome,
            support_id: r.support_id,
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
            support: None,
            target: None,
            access_request: None,
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

    fn row<'a>(user: &'a str, endpoint: &'a str, group: &'a str, kind: &'a str) -> NewEvent<'a> {
        NewEvent {
            user_id: "usr_1",
            username: user,
            endpoint_id: Some("ep_1"),
            endpoint_name: endpoint,
            endpoint_group: group,
            kind,
            target: "",
            outcome: outcome::RUNNING,
            support_id: None,
        }
    }

    fn all<'a>(scope: &'a ReadScope) -> Filter<'a> {
        Filter {
            scope,
            endpoint: None,
            user: None,
            kind: None,
            since_ms: None,
            until_ms: None,
            active: None,
            before: None,
            limit: 100,
        }
    }

    /// The session event table on both engines: progress while bytes move
    /// (never after the end), the end, and the list's filters, scope and
    /// paging.
    #[tokio::test]
    async fn session_rows_record_progress_and_end_and_list_by_scope_and_page() {
        for (db, _dir) in crate::store::tests::engines("sessions_table").await {
            let e = db.engine();
            let a = record_start(&db, &row("bob", "web-1", "lab", "shell"))
                .await
                .unwrap();
            let mut c = db.conn().await.unwrap();
            let b = insert_event(&mut c, &row("eve", "db-1", "prod", "exec"))
                .await
                .unwrap();
            drop(c);
            let denied = NewEvent {
                outcome: "denied",
                ..row("eve", "web-1", "lab", "forward")
            };
            let d = record_start(&db, &denied).await.unwrap();

            record_progress(&db, &a, 10, 2000).await.unwrap();
            let scope = ReadScope::All;
            let rows = list(&db, &all(&scope)).await.unwrap();
            assert_eq!(rows.len(), 3, "{e}");
            let ra = rows.iter().find(|r| r.id == a.as_str()).unwrap();
            assert_eq!(
                (ra.bytes_up, ra.bytes_down, ra.ended_at.is_none()),
                (10, 2000, true),
                "{e}"
            );
            assert!(
                rows.iter()
                    .find(|r| r.id == d.as_str())
                    .unwrap()
                    .ended_at
                    .is_some()
            );

            record_end(&db, &a, 11, 2500, "ok").await.unwrap();
            // Progress after the end changes nothing.
            record_progress(&db, &a, 99, 99).await.unwrap();
            let rows = list(&db, &all(&scope)).await.unwrap();
            let ra = rows.iter().find(|r| r.id == a.as_str()).unwrap();
            assert_eq!(
                (ra.bytes_up, ra.bytes_down, ra.outcome.as_str()),
                (11, 2500, "ok"),
                "{e}"
            );

            // Filters.
            let running = Filter {
                active: Some(true),
                ..all(&scope)
            };
            let ids: Vec<_> = list(&db, &running)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert_eq!(ids, [b.as_str()], "{e}");
            let ended = Filter {
                active: Some(false),
                ..all(&scope)
            };
            assert_eq!(list(&db, &ended).await.unwrap().len(), 2, "{e}");
            let by = Filter {
                user: Some("eve"),
                kind: Some("exec"),
                endpoint: Some("db-1"),
                ..all(&scope)
            };
            assert_eq!(list(&db, &by).await.unwrap().len(), 1, "{e}");
            let future = Filter {
                since_ms: Some(ids::now_ms() + 60_000),
                ..all(&scope)
            };
            assert!(list(&db, &future).await.unwrap().is_empty(), "{e}");
            let past = Filter {
                until_ms: Some(1),
                ..all(&scope)
            };
            assert!(list(&db, &past).await.unwrap().is_empty(), "{e}");

            // Scope: a reader of `lab` sees lab's rows only.
            let lab = ReadScope::Groups(vec!["lab".into()]);
            let seen = list(&db, &all(&lab)).await.unwrap();
            assert_eq!(seen.len(), 2, "{e}");
            assert!(seen.iter().all(|r| r.endpoint == "web-1"));
            assert!(
                cursor(&db, &lab, b.as_str()).await.unwrap().is_none(),
                "{e}"
            );
            assert_eq!(
                group_of(&db, b.as_str()).await.unwrap(),
                Some(Some("prod".into()))
            );
            assert_eq!(group_of(&db, "nope").await.unwrap(), None);

            // Paging: page after page, newest first, each row once.
            let mut seen = Vec::new();
            let mut before: Option<String> = None;
            loop {
                let at = match &before {
                    Some(id) => {
                        Some((cursor(&db, &scope, id).await.unwrap().unwrap(), id.as_str()))
                    }
                    None => None,
                };
                let page = Filter {
                    before: at,
                    limit: 1,
                    ..all(&scope)
                };
                let rows = list(&db, &page).await.unwrap();
                let Some(last) = rows.last() else { break };
                before = Some(last.id.clone());
                seen.extend(rows.into_iter().map(|r| r.id));
            }
            seen.sort();
            let mut want = vec![a.0.clone(), b.0.clone(), d.0.clone()];
            want.sort();
            assert_eq!(seen, want, "{e}");

            // A crash: the running one ends at its last activity.
            assert_eq!(close_orphans(&db).await.unwrap(), 1, "{e}");
            assert!(list(&db, &running).await.unwrap().is_empty());
        }
    }
}
