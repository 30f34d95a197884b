//! The list of support sessions technicians and reports read: queue, state,
//! customer, wait, duration, technicians, rights used, rating.

use jumpgate_api_types::support as api;

use super::SupportError;
use super::crypto;
use crate::ids;
use crate::keys::Keyring;
use crate::rbac::ReadScope;
use crate::store::{Engine, Store, sql};

/// Most rows one answer holds.
pub(crate) const LIMIT_MAX: u32 = 1000;

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    queue: String,
    state: String,
    origin: String,
    requested_at: i64,
    joined_at: Option<i64>,
    accepted_at: Option<i64>,
    ended_at: Option<i64>,
    wrapped_key: String,
    customer_sealed: Vec<u8>,
    rating: Option<i64>,
    rights_used: String,
    end_reason: Option<String>,
}

macro_rules! columns {
    () => {
        "id, queue, state, origin, requested_at, joined_at, accepted_at, ended_at,
         wrapped_key, customer_sealed, rating, rights_used, end_reason"
    };
}

/// Support sessions in `scope`, newest first, requested before `before`
/// (ms; `None`: now), at most `limit`.
///
/// # Errors
/// The store failed.
pub(crate) async fn list(
    db: &Store,
    keys: &Keyring,
    scope: &ReadScope,
    queue: Option<&str>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<api::SupportSessionRow>, SupportError> {
    let mut c = db.conn().await?;
    let q = match db.engine() {
        Engine::Sqlite => concat!(
            "SELECT ",
            columns!(),
            " FROM support_sessions
              WHERE ($1 IS NULL OR group_name IN (SELECT value FROM json_each($1)))
                AND ($2 IS NULL OR queue = $2) AND requested_at < $3
              ORDER BY requested_at DESC, id DESC LIMIT $4"
        ),
        Engine::Postgres => concat!(
            "SELECT ",
            columns!(),
            " FROM support_sessions
              WHERE ($1::text IS NULL OR group_name IN (SELECT json_array_elements_text($1::json)))
                AND ($2::text IS NULL OR queue = $2) AND requested_at < $3
              ORDER BY requested_at DESC, id DESC LIMIT $4"
        ),
    };
    let rows: Vec<Row> = sql!(c, |c| sqlx::query_as(q)
        .bind(scope.sql_param())
        .bind(queue)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, LIMIT_MAX)))
        .fetch_all(&mut *c)
        .await)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let techs: Vec<String> = sql!(c, |c| sqlx::query_scalar(
            "SELECT DISTINCT username FROM support_participants
              WHERE support_id = $1 AND role <> 'supervisor' ORDER BY username"
        )
        .bind(&r.id)
        .fetch_all(&mut *c)
        .await)?;
        let secs = |from: Option<i64>, to: Option<i64>| match (from, to) {
            (Some(a), Some(b)) if b >= a => Some(((b - a) / 1000) as u64),
            _ => None,
        };
        out.push(api::SupportSessionRow {
            customer: crypto::shown_field(
                keys,
                &r.id,
                &r.wrapped_key,
                "customer",
                &r.customer_sealed,
            ),
            wait_secs: secs(r.joined_at, r.accepted_at),
            duration_secs: secs(r.accepted_at, r.ended_at),
            rights_used: serde_json::from_str(&r.rights_used).unwrap_or_default(),
            rating: r.rating.and_then(|n| u8::try_from(n).ok()),
            id: r.id,
            queue: r.queue,
            state: r.state,
            origin: r.origin,
            requested_at: ids::rfc3339(r.requested_at),
            technicians: techs,
            end_reason: r.end_reason,
        });
    }
    Ok(out)
}
