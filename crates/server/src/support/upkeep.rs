//! Upkeep of support sessions, once a minute under the retention lease:
//!
//! - **abandoned**: a request whose download link and ticket both expired
//!   without the customer's client ever connecting ends ("the customer never
//!   connected"), so it leaves the queue's count and the technicians' views;
//! - **orphaned**: a session waiting or active whose client is not connected
//!   to this gateway and did not come back within the reconnect grace after
//!   the gateway started ends (a restart loses the timer each disconnection
//!   starts; this is its stand-in);
//! - **retention**: ended sessions older than `[retention] support_days`
//!   (by default the recordings' retention, forever when neither is set)
//!   are removed with their chat, grants and participants; used and expired
//!   session keys go a day after they stopped working. One `support-expire`
//!   entry per pass says how many.
//!
//! Each end is the ordinary [`session::end`]: audited, published, its
//! sub-sessions closed.

use std::time::Duration;

use super::{SupportError, assist, session};
use crate::ids;
use crate::state::AppState;
use crate::store::{AuditAction, AuditEvent, Store, sql};

/// How often the upkeep runs.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// Session keys are kept this long after they expired (their failures in
/// the log still make sense to an administrator who looks the same day).
const KEYS_KEPT: Duration = Duration::from_secs(86_400);

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    pub(crate) abandoned: u64,
    pub(crate) orphaned: u64,
    pub(crate) removed: u64,
}

/// Requests nobody's client will ever join: the link and the ticket
/// expired (a fresh download makes a fresh ticket, so both must be past).
pub(crate) async fn abandoned(db: &Store, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(
        "SELECT id FROM support_sessions
          WHERE state = 'pending'
            AND COALESCE(download_expires_at, 0) <= $1
            AND COALESCE(ticket_expires_at, 0) <= $1
          ORDER BY requested_at"
    )
    .bind(now_ms)
    .fetch_all(&mut *c)
    .await)
}

/// Sessions a client joined more than `grace` ago, not over.
async fn joined_before(db: &Store, cutoff_ms: i64) -> Result<Vec<String>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_scalar(
        "SELECT id FROM support_sessions
          WHERE state IN ('waiting', 'active') AND COALESCE(joined_at, 0) <= $1
          ORDER BY joined_at"
    )
    .bind(cutoff_ms)
    .fetch_all(&mut *c)
    .await)
}

/// Removes ended sessions that ended before `cutoff_ms` (their chat,
/// grants and participants go with them) and session keys that stopped
/// working a day before `now_ms`; audited when anything went.
pub(crate) async fn remove_ended(
    db: &Store,
    cutoff_ms: Option<i64>,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    let mut w = db.write().await?;
    // Their chat, grants and participants go with them (`ON DELETE
    // CASCADE` on both engines).
    let removed = match cutoff_ms {
        Some(cutoff) => sql!(w, |c| sqlx::query(
            "DELETE FROM support_sessions WHERE state = 'ended' AND ended_at < $1"
        )
        .bind(cutoff)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?,
        None => 0,
    };
    let keys_before = now_ms - KEYS_KEPT.as_millis() as i64;
    let keys = sql!(w, |c| sqlx::query(
        "DELETE FROM support_keys WHERE expires_at < $1"
    )
    .bind(keys_before)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if removed == 0 && keys == 0 {
        return Ok(0);
    }
    w.audit(
        AuditEvent::new("(retention)", AuditAction::SupportExpire, "support")
            .detail(format!("sessions={removed} keys={keys}")),
    )
    .await?;
    w.commit().await?;
    Ok(removed)
}

/// One pass; `since_start` is how long this gateway has run.
pub(crate) async fn sweep(
    st: &AppState,
    now_ms: i64,
    since_start: Duration,
) -> Result<Swept, SupportError> {
    let mut out = Swept::default();
    for id in abandoned(&st.db, now_ms).await? {
        if session::end(st, &id, "(gateway)", "the customer never connected").await? {
            out.abandoned += 1;
        }
    }
    if since_start >= assist::RECONNECT_GRACE {
        let grace = assist::RECONNECT_GRACE.as_millis() as i64;
        for id in joined_before(&st.db, now_ms - grace).await? {
            // Live here (connected, or within its own grace): not ours.
            if st.support_hub.live.with(&id, |_| ()).is_some() {
                continue;
            }
            if session::end(
                st,
                &id,
                "(gateway)",
                "the customer's client did not come back",
            )
            .await?
            {
                out.orphaned += 1;
            }
        }
    }
    let keep = st
        .config
        .support_retention
        .or(st.config.recording_retention);
    let cutoff = keep.map(|k| now_ms - k.as_millis() as i64);
    out.removed = remove_ended(&st.db, cutoff, now_ms).await?;
    Ok(out)
}

/// Runs [`sweep`] and logs what it did.
pub(crate) async fn run(st: &AppState, since_start: Duration) {
    match sweep(st, ids::now_ms(), since_start).await {
        Ok(x) if x != Swept::default() => tracing::info!(
            abandoned = x.abandoned,
            orphaned = x.orphaned,
            removed = x.removed,
            "support upkeep"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "support upkeep failed"),
    }
}
