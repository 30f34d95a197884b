//! The audit log: security events (logins, lockouts, denials, sessions,
//! account, role, group and settings changes) in a hash chain.
//!
//! Each entry carries the hash of the previous one; its own hash covers its
//! id, time and fields and that previous hash:
//!
//! ```text
//! hash(n) = SHA-256("jumpgate audit v1" ‖ hash(n-1) ‖ id ‖ at ‖ len‖actor ‖ len‖action ‖ …)
//! ```
//!
//! so altering or removing an entry breaks every hash after it, and
//! [`verify`] names the first broken entry. (Removing entries from the end
//! leaves a shorter valid chain; anchoring the latest hash outside the
//! database is part of the audit work still to come.)

use jumpgate_api_types as api;
use sqlx::{Row, SqlitePool};

use crate::api::{Access, Api, ApiError};
use crate::ids;
use crate::rbac::Action;
use crate::state::AppState;

const GENESIS: [u8; 32] = [0; 32];

/// The fields an entry's hash covers.
struct Entry<'a> {
    id: i64,
    at: i64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    detail: &'a str,
}

fn entry_hash(prev: &[u8], e: &Entry<'_>) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"jumpgate audit v1\0");
    ctx.update(prev);
    ctx.update(&e.id.to_be_bytes());
    ctx.update(&e.at.to_be_bytes());
    // Length-prefixed, so no field can bleed into the next.
    for field in [e.actor, e.action, e.target, e.outcome, e.detail] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish().as_ref().to_vec()
}

/// Appends an event to the chain, durably (the write is committed with
/// `synchronous=FULL`) before the caller acknowledges the action: a failure
/// is an error the request fails with.
///
/// # Errors
/// The database write failed.
pub(crate) async fn record(
    db: &SqlitePool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    append(db, actor, action, target, outcome, detail)
        .await
        .inspect_err(|e| {
            tracing::error!(error = %e, actor, action, target, outcome, "could not record an audit event");
        })
}

/// For paths that end the same way whether or not the write succeeds (a
/// denial is refused anyway; a closed session is closed): the failure is
/// logged.
pub(crate) async fn record_or_log(
    db: &SqlitePool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) {
    let _ = record(db, actor, action, target, outcome, detail).await;
}

async fn append(
    db: &SqlitePool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    // The write lock is taken first: the read of the chain's head and the
    // insert after it must not interleave with another writer's.
    let mut tx = crate::store::begin_write(db).await?;
    let head = sqlx::query("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    let (last_id, prev) = head.map_or((0, GENESIS.to_vec()), |r| {
        (
            r.get::<i64, _>("id"),
            r.get::<Option<Vec<u8>>, _>("hash").unwrap_or_default(),
        )
    });
    let entry = Entry {
        id: last_id + 1,
        at: ids::now_ms(),
        actor,
        action,
        target,
        outcome,
        detail,
    };
    let hash = entry_hash(&prev, &entry);
    sqlx::query(
        "INSERT INTO events (id, at, actor, action, target, outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.id)
    .bind(entry.at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(outcome)
    .bind(detail)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Chains entries written before the log was a chain (schema 2), once.
pub(crate) async fn seal_legacy(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let rows = sqlx::query("SELECT * FROM events WHERE hash IS NULL ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    let mut sealed = 0;
    for r in &rows {
        let id: i64 = r.get("id");
        let prev: Vec<u8> = sqlx::query_scalar(
            "SELECT hash FROM events WHERE id < ? AND hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or_else(|| GENESIS.to_vec());
        let entry = Entry {
            id,
            at: r.get("at"),
            actor: r.get("actor"),
            action: r.get("action"),
            target: r.get("target"),
            outcome: r.get("outcome"),
            detail: r.get("detail"),
        };
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?")
            .bind(&prev)
            .bind(entry_hash(&prev, &entry))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sealed += 1;
    }
    tx.commit().await?;
    Ok(sealed)
}

/// An intact chain.
#[derive(Debug, PartialEq, Eq)]
pub struct Intact {
    pub entries: u64,
    /// Hex SHA-256 of the last entry (empty for an empty log).
    pub head: String,
}

/// The first entry that does not check out.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at entry #{id} ({at}, {action} by {actor}): {reason}")]
pub struct Broken {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub reason: String,
}

/// Walks the whole chain.
pub(crate) async fn verify(db: &SqlitePool) -> Result<Result<Intact, Broken>, sqlx::Error> {
    let rows = sqlx::query("SELECT * FROM events ORDER BY id")
        .fetch_all(db)
        .await?;
    let mut prev = GENESIS.to_vec();
    for (i, r) in rows.iter().enumerate() {
        let expected_id = i as i64 + 1;
        let entry = Entry {
            id: r.get("id"),
            at: r.get("at"),
            actor: r.get("actor"),
            action: r.get("action"),
            target: r.get("target"),
            outcome: r.get("outcome"),
            detail: r.get("detail"),
        };
        let broken = |reason: String| Broken {
            id: entry.id,
            at: ids::rfc3339(entry.at),
            actor: entry.actor.to_owned(),
            action: entry.action.to_owned(),
            reason,
        };
        if entry.id != expected_id {
            return Ok(Err(broken(format!(
                "entries #{expected_id}..#{} are missing",
                entry.id - 1
            ))));
        }
        let stored_prev: Option<Vec<u8>> = r.get("prev_hash");
        let stored: Option<Vec<u8>> = r.get("hash");
        if stored_prev.as_deref() != Some(prev.as_slice()) {
            return Ok(Err(broken(
                "it does not follow the entry before it (an entry was removed or altered)".into(),
            )));
        }
        let hash = entry_hash(&prev, &entry);
        if stored.as_deref() != Some(hash.as_slice()) {
            return Ok(Err(broken(
                "its content does not match its hash (the entry was altered)".into(),
            )));
        }
        prev = hash;
    }
    let head = if rows.is_empty() {
        String::new()
    } else {
        hex(&prev)
    };
    Ok(Ok(Intact {
        entries: rows.len() as u64,
        head,
    }))
}

pub(crate) fn routes(api: Api) -> Api {
    api.get("/api/v1/events", Access::Site(Action::ReadSessionLog), list)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    since: Option<String>,
    user: Option<String>,
    limit: Option<i64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Entries newest first, filtered by `since`, `user` and `limit`.
async fn list(
    axum::extract::State(st): axum::extract::State<AppState>,
    query: Result<axum::extract::Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<api::SecurityEvent>>, ApiError> {
    let axum::extract::Query(f) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since_ms = match f.since.as_deref() {
        None => i64::MIN,
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "since: `{s}` is not an RFC 3339 time such as 2026-11-23T10:00:00Z"
                    ))
                })?;
            (t.unix_timestamp_nanos() / 1_000_000) as i64
        }
    };
    let limit = f.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let rows = sqlx::query(
        "SELECT * FROM events WHERE at >= ? AND (? IS NULL OR actor = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(since_ms)
    .bind(f.user.as_deref())
    .bind(f.user.as_deref())
    .bind(limit)
    .fetch_all(&st.db)
    .await?;
    Ok(axum::Json(
        rows.iter()
            .map(|r| api::SecurityEvent {
                id: r.get("id"),
                at: ids::rfc3339(r.get("at")),
                actor: r.get("actor"),
                action: r.get("action"),
                target: r.get("target"),
                outcome: r.get("outcome"),
                detail: r.get("detail"),
                hash: hex(&r.get::<Option<Vec<u8>>, _>("hash").unwrap_or_default()),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db_with_events(n: usize) -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(&dir.path().join("a.db")).await.unwrap();
        for i in 0..n {
            record(&db, "alice", "login", "alice", "ok", &format!("n={i}"))
                .await
                .unwrap();
        }
        (dir, db)
    }

    #[tokio::test]
    async fn an_intact_chain_verifies() {
        let (_d, db) = db_with_events(5).await;
        let ok = verify(&db).await.unwrap().unwrap();
        assert_eq!(ok.entries, 5);
        assert_eq!(ok.head.len(), 64);
    }

    #[tokio::test]
    async fn an_altered_entry_is_named() {
        let (_d, db) = db_with_events(5).await;
        sqlx::query("UPDATE events SET detail = 'n=forged' WHERE id = 3")
            .execute(&db)
            .await
            .unwrap();
        let broken = verify(&db).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("altered"), "{broken}");
    }

    #[tokio::test]
    async fn a_removed_entry_is_named() {
        let (_d, db) = db_with_events(5).await;
        sqlx::query("DELETE FROM events WHERE id = 2")
            .execute(&db)
            .await
            .unwrap();
        let broken = verify(&db).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("missing"), "{broken}");
    }

    #[tokio::test]
    async fn a_forger_who_rehashes_the_altered_entry_is_caught_at_the_next() {
        let (_d, db) = db_with_events(4).await;
        let row = sqlx::query("SELECT * FROM events WHERE id = 2")
            .fetch_one(&db)
            .await
            .unwrap();
        let prev: Vec<u8> = row.get("prev_hash");
        let forged = Entry {
            id: 2,
            at: row.get("at"),
            actor: row.get("actor"),
            action: row.get("action"),
            target: row.get("target"),
            outcome: row.get("outcome"),
            detail: "nothing happened",
        };
        sqlx::query("UPDATE events SET detail = ?, hash = ? WHERE id = 2")
            .bind(forged.detail)
            .bind(entry_hash(&prev, &forged))
            .execute(&db)
            .await
            .unwrap();
        // Entry 2 is self-consistent now; entry 3 no longer follows it.
        let broken = verify(&db).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("does not follow"), "{broken}");
    }

    #[tokio::test]
    async fn entries_from_before_the_chain_are_sealed_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(&dir.path().join("a.db")).await.unwrap();
        for i in 0..3 {
            sqlx::query("INSERT INTO events (at, actor, action, target, outcome, detail) VALUES (?, 'x', 'login', 'x', 'ok', '')")
                .bind(i)
                .execute(&db)
                .await
                .unwrap();
        }
        assert!(verify(&db).await.unwrap().is_err());
        assert_eq!(seal_legacy(&db).await.unwrap(), 3);
        record(&db, "y", "login", "y", "ok", "").await.unwrap();
        assert_eq!(verify(&db).await.unwrap().unwrap().entries, 4);
        assert_eq!(seal_legacy(&db).await.unwrap(), 0);
    }
}
