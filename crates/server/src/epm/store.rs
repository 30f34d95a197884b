//! The domain's rows: the draft policy, published bundles, what agents
//! acknowledged, their events and approval requests.

use jumpgate_proto::epm::{EpmEvent, EpmEventKind, PolicyAck};

use super::EpmError;
use crate::keys::now_ms;
use crate::store::{Exec, Store, WriteTx, sql};

/// A published bundle as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BundleRow {
    pub(crate) version: u64,
    pub(crate) sha256: String,
    pub(crate) size: u64,
    pub(crate) blob_key: String,
    pub(crate) key_id: String,
    pub(crate) published_by: String,
    pub(crate) published_at: i64,
}

type RawBundle = (i64, String, i64, String, String, String, i64);

fn bundle(r: RawBundle) -> BundleRow {
    BundleRow {
        version: u64::try_from(r.0).unwrap_or(0),
        sha256: r.1,
        size: u64::try_from(r.2).unwrap_or(0),
        blob_key: r.3,
        key_id: r.4,
        published_by: r.5,
        published_at: r.6,
    }
}

macro_rules! bundles {
    ($rest:literal) => {
        concat!(
            "SELECT version, sha256, size, blob_key, key_id, published_by, published_at FROM epm_bundles ",
            $rest
        )
    };
}

/// The latest published bundle.
pub(crate) async fn latest_bundle(db: &Store) -> Result<Option<BundleRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    let r: Option<RawBundle> = sql!(c, |c| sqlx::query_as(bundles!(
        "ORDER BY version DESC LIMIT 1"
    ))
    .fetch_optional(&mut *c)
    .await)?;
    Ok(r.map(bundle))
}

/// Bundle `version`.
pub(crate) async fn bundle_of(db: &Store, version: u64) -> Result<Option<BundleRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    let v = i64::try_from(version).unwrap_or(i64::MAX);
    let r: Option<RawBundle> = sql!(c, |c| sqlx::query_as(bundles!("WHERE version = $1"))
        .bind(v)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(r.map(bundle))
}

/// Every published bundle, newest first.
pub(crate) async fn bundles(db: &Store, limit: u32) -> Result<Vec<BundleRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    let r: Vec<RawBundle> = sql!(c, |c| sqlx::query_as(bundles!(
        "ORDER BY version DESC LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await)?;
    Ok(r.into_iter().map(bundle).collect())
}

/// The next bundle version (inside the publishing transaction: writers
/// are serialised, so two publishes never get the same one).
pub(crate) async fn next_version(w: &mut WriteTx) -> Result<u64, sqlx::Error> {
    let max: Option<i64> = sql!(w, |c| sqlx::query_scalar(
        "SELECT MAX(version) FROM epm_bundles"
    )
    .fetch_one(&mut *c)
    .await)?;
    Ok(u64::try_from(max.unwrap_or(0)).unwrap_or(0) + 1)
}

pub(crate) async fn insert_bundle(w: &mut WriteTx, b: &BundleRow) -> Result<(), sqlx::Error> {
    sql!(w, |c| {
        sqlx::query(
        "INSERT INTO epm_bundles (version, sha256, size, blob_key, key_id, published_by, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(i64::try_from(b.version).unwrap_or(i64::MAX))
    .bind(&b.sha256)
    .bind(i64::try_from(b.size).unwrap_or(i64::MAX))
    .bind(&b.blob_key)
    .bind(&b.key_id)
    .bind(&b.published_by)
    .bind(b.published_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// The stored draft: (policy JSON, revision, updated_by, updated_at).
pub(crate) async fn draft(
    e: &mut dyn Exec,
) -> Result<Option<(String, i64, String, i64)>, sqlx::Error> {
    sql!(e, |c| sqlx::query_as(
        "SELECT policy, revision, updated_by, updated_at FROM epm_policy WHERE id = 1"
    )
    .fetch_optional(&mut *c)
    .await)
}

/// Stores a new draft if the stored one is still at `revision` (0: none
/// yet). Answers the new revision.
pub(crate) async fn put_draft(
    w: &mut WriteTx,
    revision: i64,
    json: &str,
    by: &str,
) -> Result<i64, EpmError> {
    let current = draft(w).await?.map_or(0, |d| d.1);
    if current != revision {
        return Err(EpmError::Stale {
            given: revision,
            current,
        });
    }
    let next = current + 1;
    sql!(w, |c| sqlx::query(
        "INSERT INTO epm_policy (id, policy, revision, updated_by, updated_at)
         VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO UPDATE SET policy = excluded.policy, revision = excluded.revision,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at"
    )
    .bind(json)
    .bind(next)
    .bind(by)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(next)
}

/// Records what an agent answered to a notice.
pub(crate) async fn record_ack(
    db: &Store,
    agent: &str,
    ack: &PolicyAck,
) -> Result<(), sqlx::Error> {
    let mut c = db.write_conn().await?;
    let accepted = ack.accepted.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let refusal = ack
        .refused
        .as_deref()
        .map(|r| crate::agents::reported::text(r, crate::agents::reported::MESSAGE_MAX));
    sql!(c, |c| sqlx::query(
        "INSERT INTO epm_agents (agent_id, accepted_version, last_refusal, dropped, updated_at)
         VALUES ($1, $2, $3, 0, $4)
         ON CONFLICT (agent_id) DO UPDATE SET
             accepted_version = COALESCE(excluded.accepted_version, epm_agents.accepted_version),
             last_refusal = excluded.last_refusal,
             updated_at = excluded.updated_at"
    )
    .bind(agent)
    .bind(accepted)
    .bind(refusal)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// One agent's status: (agent id, endpoint name, group, accepted version,
/// last refusal, dropped events, updated at).
pub(crate) type StatusRow = (
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
);

/// Every live endpoint with its EPM status.
pub(crate) async fn status(db: &Store) -> Result<Vec<StatusRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT e.id, e.name, e.group_name, a.accepted_version, a.last_refusal,
                COALESCE(a.dropped, 0), a.updated_at
         FROM endpoints e LEFT JOIN epm_agents a ON a.agent_id = e.id
         WHERE e.revoked_at IS NULL ORDER BY e.name"
    )
    .fetch_all(&mut *c)
    .await)
}

/// The event's kind name as stored (`decision`, `approval-requested`, …).
pub(crate) fn kind_name(k: &EpmEventKind) -> &'static str {
    match k {
        EpmEventKind::Decision { .. } => "decision",
        EpmEventKind::Exited { .. } => "exited",
        EpmEventKind::ApprovalRequested { .. } => "approval-requested",
        EpmEventKind::BundleAccepted { .. } => "bundle-accepted",
        EpmEventKind::BundleRefused { .. } => "bundle-refused",
        EpmEventKind::AdminSession { .. } => "admin-session",
    }
}

/// Stores `e` for `agent` unless it is there already; answers whether it
/// was new.
pub(crate) async fn insert_event(
    w: &mut WriteTx,
    agent: &str,
    e: &EpmEvent,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let body = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
    let n = sql!(w, |c| sqlx::query(
        "INSERT INTO epm_events (agent_id, seq, at, kind, body, stored_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agent_id, seq) DO NOTHING"
    )
    .bind(agent)
    .bind(i64::try_from(e.seq).unwrap_or(i64::MAX))
    .bind(crate::agents::reported::text(&e.at, 64))
    .bind(kind_name(&e.kind))
    .bind(&body)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// A stored event row: (id, endpoint name, seq, at, body JSON, group).
pub(crate) type EventRow = (i64, String, i64, String, String, String);

/// Events after the cursor `after` (an event id), oldest first, of one
/// agent or all.
pub(crate) async fn events(
    db: &Store,
    agent: Option<&str>,
    after: i64,
    limit: u32,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(
        "SELECT v.id, COALESCE(e.name, v.agent_id), v.seq, v.at, v.body, COALESCE(e.group_name, '')
         FROM epm_events v LEFT JOIN endpoints e ON e.id = v.agent_id
         WHERE ($1 IS NULL OR v.agent_id = $1) AND v.id > $2
         ORDER BY v.id LIMIT $3"
    )
    .bind(agent)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await)
}

/// An approval request row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct RequestRow {
    pub(crate) id: String,
    pub(crate) agent_id: String,
    pub(crate) seq: i64,
    pub(crate) username: String,
    pub(crate) program: String,
    pub(crate) sha256: String,
    /// JSON array.
    pub(crate) args: String,
    pub(crate) reason: String,
    pub(crate) rule: String,
    pub(crate) state: String,
    pub(crate) decided_by: Option<String>,
    pub(crate) decided_at: Option<i64>,
    pub(crate) comment: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

macro_rules! requests {
    ($rest:literal) => {
        concat!(
            "SELECT id, agent_id, seq, username, program, sha256, args, reason, rule, state,
                decided_by, decided_at, comment, created_at, expires_at FROM epm_requests ",
            $rest
        )
    };
}

/// Stores a new pending request (once per id).
pub(crate) async fn insert_request(w: &mut WriteTx, r: &RequestRow) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query(
        "INSERT INTO epm_requests (id, agent_id, seq, username, program, sha256, args, reason,
             rule, state, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)
         ON CONFLICT (id) DO NOTHING"
    )
    .bind(&r.id)
    .bind(&r.agent_id)
    .bind(r.seq)
    .bind(&r.username)
    .bind(&r.program)
    .bind(&r.sha256)
    .bind(&r.args)
    .bind(&r.reason)
    .bind(&r.rule)
    .bind(r.created_at)
    .bind(r.expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Pending requests past their time become `expired`: through their
/// access requests (`access::expire_elevations`: both rows, audited
/// `access-expire`), then any without one (stored before schema 24).
pub(crate) async fn expire_requests(db: &Store, now: i64) -> Result<u64, sqlx::Error> {
    crate::access::expire_elevations(db, now).await?;
    let mut c = db.write_conn().await?;
    sql!(c, |c| sqlx::query(
        "UPDATE epm_requests SET state = 'expired' WHERE state = 'pending' AND expires_at <= $1"
    )
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
}

pub(crate) async fn request(db: &Store, id: &str) -> Result<Option<RequestRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(requests!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)
}

/// Requests (of `state`, or all), newest first.
pub(crate) async fn requests(
    db: &Store,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<RequestRow>, sqlx::Error> {
    let mut c = db.conn().await?;
    sql!(c, |c| sqlx::query_as(requests!(
        "WHERE ($1 IS NULL OR state = $1) ORDER BY created_at DESC, id LIMIT $2"
    ))
    .bind(state)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await)
}

/// Decides a pending request; `false` if it was not pending (any more).
pub(crate) async fn decide(
    w: &mut WriteTx,
    id: &str,
    approved: bool,
    by: &str,
    comment: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let n = sql!(w, |c| sqlx::query(
        "UPDATE epm_requests SET state = $1, decided_by = $2, decided_at = $3, comment = $4
         WHERE id = $5 AND state = 'pending' AND expires_at > $3"
    )
    .bind(if approved { "approved" } else { "denied" })
    .bind(by)
    .bind(now)
    .bind(comment)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
