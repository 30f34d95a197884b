//! Endpoint-offline reports: an endpoint that has not been connected for
//! `[agents] offline_after` (default 15 min) gets one `endpoint-offline`
//! audit entry for that spell, and one `endpoint-online` entry when it is
//! back. Alert rules and webhooks pick them up like any entry
//! (`notify`), so "tell me when a server is down for 15 minutes" is an
//! alert rule on `endpoint-offline`.
//!
//! A spell is known by the endpoint's `last_seen` when it went away; the
//! table `endpoint_offline_reports` holds the spells reported, so each is
//! reported once across restarts and gateways. Time offline counts from
//! the later of `last_seen` and this gateway's start, so agents that have
//! not yet reconnected after a gateway restart are not reported early.
//! Runs under the [`Job::EndpointWatch`](crate::lease::Job) lease.

use std::time::Duration;

use super::system::SYSTEM_ACTOR;
use crate::ids::{self, AgentId};
use crate::state::AppState;
use crate::store::audit::{AuditAction, AuditEvent};
use crate::store::{Store, sql};

/// How often the watch looks: every 30 s, or half the threshold when it
/// is shorter (at least every second).
#[must_use]
pub(crate) fn every(after: Duration) -> Duration {
    (after / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// What the watch does about one endpoint.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Its reported spell ended (it was connected since): `endpoint-online`.
    pub(crate) back: bool,
    /// It has been offline for the threshold, not yet reported:
    /// `endpoint-offline`.
    pub(crate) offline: bool,
}

/// Judges one endpoint as of `now` (all in ms): `last_seen` is when it was
/// last connected, `reported` the spell already reported (its
/// `last_seen`), `started` when this gateway started.
#[must_use]
pub(crate) fn judge(
    now: i64,
    started: i64,
    after_ms: i64,
    last_seen: i64,
    online: bool,
    reported: Option<i64>,
) -> Verdict {
    let back = reported.is_some_and(|r| online || last_seen > r);
    let still_reported = reported.is_some() && !back;
    let since = last_seen.max(started);
    Verdict {
        back,
        offline: !online && !still_reported && now - since >= after_ms,
    }
}

type Row = (String, String, String, i64, Option<i64>);

/// One pass: reports the endpoints offline for `after` and those back.
/// Returns the entries written (offline, online).
///
/// # Errors
/// The store failed; the next pass tries again (nothing is half done: each
/// endpoint's report and its entry commit together).
pub(crate) async fn pass(
    st: &AppState,
    started: i64,
    after: Duration,
) -> Result<(u32, u32), sqlx::Error> {
    let now = ids::now_ms();
    let after_ms = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
    let rows = candidates(&st.db, now - after_ms).await?;
    let (mut offline, mut online) = (0, 0);
    for (id, name, group, last_seen, reported) in rows {
        let is_online = st.agents.locate(&AgentId(id.clone())).is_online();
        let v = judge(now, started, after_ms, last_seen, is_online, reported);
        if v == Verdict::default() {
            continue;
        }
        let mut w = st.db.write().await?;
        if let Some(spell) = reported.filter(|_| v.back) {
            let gone = sql!(w, |c| sqlx::query(
                "DELETE FROM endpoint_offline_reports WHERE endpoint_id = $1 AND last_seen = $2"
            )
            .bind(&id)
            .bind(spell)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            if gone == 1 {
                let away = ids::rfc3339(spell);
                w.audit(
                    AuditEvent::new(SYSTEM_ACTOR, AuditAction::EndpointOnline, &name)
                        .outcome("online")
                        .detail(format!(
                            "back after an offline spell since {away} (about {})",
                            minutes(now - spell)
                        ))
                        .group(group.clone()),
                )
                .await?;
                online += 1;
            }
        }
        if v.offline {
            let added = sql!(w, |c| sqlx::query(
                "INSERT INTO endpoint_offline_reports (endpoint_id, last_seen, reported_at)
                 VALUES ($1, $2, $3) ON CONFLICT (endpoint_id) DO NOTHING"
            )
            .bind(&id)
            .bind(last_seen)
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            if added == 1 {
                w.audit(
                    AuditEvent::new(SYSTEM_ACTOR, AuditAction::EndpointOffline, &name)
                        .outcome("offline")
                        .detail(format!(
                            "last seen {}, offline about {} (reported after {})",
                            ids::rfc3339(last_seen),
                            minutes(now - last_seen.max(started)),
                            minutes(after_ms)
                        ))
                        .group(group),
                )
                .await?;
                offline += 1;
            }
        }
        w.commit().await?;
    }
    // Revoked endpoints' reports are of no more use.
    let mut c = st.db.write_conn().await?;
    sql!(c, |c| sqlx::query(
        "DELETE FROM endpoint_offline_reports
          WHERE endpoint_id IN (SELECT id FROM endpoints WHERE revoked_at IS NOT NULL)"
    )
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok((offline, online))
}

/// Endpoints that may need a verdict: reported ones, and those not seen
/// since `seen_before` (connected ones among them are skipped by `judge`).
async fn candidates(db: &Store, seen_before: i64) -> Result<Vec<Row>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT e.id, e.name, e.group_name, e.last_seen, r.last_seen
           FROM endpoints e LEFT JOIN endpoint_offline_reports r ON r.endpoint_id = e.id
          WHERE e.revoked_at IS NULL AND e.last_seen IS NOT NULL
            AND (r.endpoint_id IS NOT NULL OR e.last_seen <= $1)
          ORDER BY e.name"
    )
    .bind(seen_before)
    .fetch_all(&mut *c)
    .await)
}

/// `ms` as people read it: "45 s", "17 min", "3 h 5 min".
fn minutes(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn an_endpoint_is_reported_once_per_spell_and_once_back() {
        let after = 15 * MIN;
        // Gone 10 min ago: not yet.
        assert_eq!(
            judge(100 * MIN, 0, after, 90 * MIN, false, None),
            Verdict::default()
        );
        // Gone 15 min ago: reported.
        let v = judge(105 * MIN, 0, after, 90 * MIN, false, None);
        assert_eq!(
            v,
            Verdict {
                back: false,
                offline: true
            }
        );
        // Reported, still away: nothing more.
        assert_eq!(
            judge(200 * MIN, 0, after, 90 * MIN, false, Some(90 * MIN)),
            Verdict::default()
        );
        // Connected again: back.
        assert_eq!(
            judge(201 * MIN, 0, after, 200 * MIN, true, Some(90 * MIN)),
            Verdict {
                back: true,
                offline: false
            }
        );
        // Came and went between two passes, long enough ago: back, and a
        // new spell reported.
        assert_eq!(
            judge(300 * MIN, 0, after, 250 * MIN, false, Some(90 * MIN)),
            Verdict {
                back: true,
                offline: true
            }
        );
        // Connected and never reported: nothing, however old `last_seen` is.
        assert_eq!(
            judge(300 * MIN, 0, after, 1, true, None),
            Verdict::default()
        );
    }

    #[test]
    fn time_offline_counts_from_the_gateway_start() {
        let after = 15 * MIN;
        // Last seen long ago, but the gateway started 5 min ago: its agents
        // may not have reconnected yet.
        assert_eq!(
            judge(100 * MIN, 95 * MIN, after, MIN, false, None),
            Verdict::default()
        );
        assert!(judge(110 * MIN, 95 * MIN, after, MIN, false, None).offline);
    }

    #[test]
    fn passes_are_frequent_enough_for_short_thresholds() {
        assert_eq!(every(Duration::from_secs(900)), Duration::from_secs(30));
        assert_eq!(every(Duration::from_secs(10)), Duration::from_secs(5));
        assert_eq!(every(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(minutes(45_000), "45 s");
        assert_eq!(minutes(17 * MIN + 5_000), "17 min");
        assert_eq!(minutes(185 * MIN), "3 h 5 min");
    }
}
