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
//! [`verify`] names the first broken entry.
//!
//! - **Retention** ([`expire`]) removes the oldest entries in one
//!   transaction with a checkpoint (the first kept id and the hash it chains
//!   to) and an `audit-expire` entry naming both, so the shortened chain
//!   still verifies, from a checkpoint the chain itself vouches for.
//! - **The head is anchored outside the database** ([`write_anchor`]): the
//!   gateway keeps the latest id and hash in `<data dir>/audit-head`, so
//!   removing entries from the end (which leaves a shorter, valid chain) is
//!   caught too.

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
    record_in_groups(db, &[], actor, action, target, outcome, detail).await
}

/// [`record`] for an entry about endpoints of `groups` (readers limited
/// to some groups see it if they hold one of them; see `rbac::ReadScope`).
/// An empty list is a site-wide entry.
///
/// # Errors
/// The database write failed.
pub(crate) async fn record_in_groups(
    db: &SqlitePool,
    groups: &[&str],
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let e = Fields {
        groups,
        actor,
        action,
        target,
        outcome,
        detail,
    };
    append(db, &e).await.inspect_err(|err| {
        tracing::error!(error = %err, actor, action, target, outcome, "could not record an audit event");
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

/// [`record_or_log`] for an entry about endpoints of `groups`.
pub(crate) async fn record_in_groups_or_log(
    db: &SqlitePool,
    groups: &[&str],
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) {
    let _ = record_in_groups(db, groups, actor, action, target, outcome, detail).await;
}

/// An entry to append: the chained fields, and the endpoint groups it
/// concerns (empty: site-wide).
struct Fields<'a> {
    groups: &'a [&'a str],
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    detail: &'a str,
}

async fn append(db: &SqlitePool, e: &Fields<'_>) -> Result<(), sqlx::Error> {
    // The write lock is taken first: the read of the chain's head and the
    // insert after it must not interleave with another writer's.
    let mut tx = crate::store::begin_write(db).await?;
    append_fields(&mut tx, e).await?;
    tx.commit().await
}

/// The audit entry of an action, handed to the code that performs it so
/// both commit in one transaction (outcome `ok`: a failed action rolls
/// back, and its entry with it).
#[derive(Debug)]
pub(crate) struct Audit<'a> {
    pub(crate) actor: &'a str,
    pub(crate) action: &'a str,
    pub(crate) target: &'a str,
    pub(crate) detail: String,
    /// The endpoint groups the entry concerns (empty: site-wide).
    pub(crate) groups: Vec<String>,
}

impl<'a> Audit<'a> {
    pub(crate) fn new(actor: &'a str, action: &'a str, target: &'a str) -> Self {
        Self {
            actor,
            action,
            target,
            detail: String::new(),
            groups: Vec::new(),
        }
    }

    /// Marks the entry as about endpoints of `group`.
    #[must_use]
    pub(crate) fn group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    #[must_use]
    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Writes the entry inside `tx`.
    pub(crate) async fn append(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    ) -> Result<(), sqlx::Error> {
        let groups: Vec<&str> = self.groups.iter().map(String::as_str).collect();
        let e = Fields {
            groups: &groups,
            actor: self.actor,
            action: self.action,
            target: self.target,
            outcome: "ok",
            detail: &self.detail,
        };
        append_fields(tx, &e).await
    }
}

/// Appends an entry inside a write transaction (`store::begin_write`), so
/// an action and its audit entry commit together or not at all.
pub(crate) async fn append_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    append_in_groups(tx, &[], actor, action, target, outcome, detail).await
}

/// [`append_in`] for an entry about endpoints of `groups`.
pub(crate) async fn append_in_groups(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    groups: &[&str],
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let e = Fields {
        groups,
        actor,
        action,
        target,
        outcome,
        detail,
    };
    append_fields(tx, &e).await
}

async fn append_fields(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    f: &Fields<'_>,
) -> Result<(), sqlx::Error> {
    // Free text is bounded at write time: an entry is evidence, not a
    // place to store whatever a caller sent (see `bound`).
    let actor = &bound(f.actor, MAX_NAME_FIELD);
    let action = &bound(f.action, MAX_NAME_FIELD);
    let target = &bound(f.target, MAX_NAME_FIELD);
    let outcome = &bound(f.outcome, MAX_TEXT_FIELD);
    let detail = &bound(f.detail, MAX_TEXT_FIELD);
    let groups = (!f.groups.is_empty())
        .then(|| serde_json::to_string(f.groups).unwrap_or_else(|_| "[]".into()));
    let head = sqlx::query("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
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
        "INSERT INTO events (id, at, actor, action, target, outcome, detail, prev_hash, hash, groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    .bind(groups)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Longest actor, action and target stored (names are at most 64
/// characters, vault names 128; denied request paths can be longer).
pub(crate) const MAX_NAME_FIELD: usize = 256;
/// Longest outcome and detail stored.
pub(crate) const MAX_TEXT_FIELD: usize = 4096;

/// `s` cut to at most `max` characters, the cut marked with how much was
/// left out, so an over-long field is visibly shortened, never silently.
pub(crate) fn bound(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(s),
        Some(_) => {
            let total = s.chars().count();
            let keep_chars = max - 48;
            let note = format!("… ({} more characters)", total - keep_chars);
            let keep: String = s.chars().take(keep_chars).collect();
            std::borrow::Cow::Owned(keep + &note)
        }
    }
}

/// Chains entries written before the log was a chain (schema 2), once.
pub(crate) async fn seal_legacy(db: &SqlitePool) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    // Only the entries written before the first chained one: an unsealed
    // entry after a sealed one is tampering, left for `verify` to report,
    // never "repaired" by re-hashing it.
    let rows = sqlx::query(
        "SELECT * FROM events WHERE hash IS NULL
           AND id < (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE hash IS NOT NULL)
         ORDER BY id",
    )
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
#[error(
    "audit log broken at entry #{id}{}: {reason}",
    describe(at, action, actor)
)]
pub struct Broken {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub reason: String,
}

/// The latest checkpoint left by [`expire`]: where the kept chain starts.
async fn checkpoint<'e>(
    db: impl sqlx::SqliteExecutor<'e>,
) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT first_id, anchor_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1")
        .fetch_optional(db)
        .await
}

fn expire_detail(removed: u64, first_kept: i64, anchor: &[u8]) -> String {
    format!(
        "removed={removed} first_kept={first_kept} anchor={}",
        hex(anchor)
    )
}

/// ` (time, action by actor)` when the entry is there to describe.
fn describe(at: &str, action: &str, actor: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!(" ({at}, {action} by {actor})")
    }
}

/// Walks the whole chain, from the genesis or from the latest retention
/// checkpoint, and compares its head with the anchor kept outside the
/// database (`anchor`: the id and hex hash of `<data dir>/audit-head`).
pub(crate) async fn verify(
    db: &SqlitePool,
    anchor: Option<(i64, String)>,
) -> Result<Result<Intact, Broken>, sqlx::Error> {
    use futures_util::TryStreamExt;
    // One snapshot for the checkpoint and the entries (retention may run);
    // the entries are streamed, so the log's length costs no memory.
    let mut snap = db.begin().await?;
    let (first_id, mut prev) = checkpoint(&mut *snap)
        .await?
        .unwrap_or((1, GENESIS.to_vec()));
    // A checkpoint is only believed if the chain itself records it.
    let mut checkpoint_vouched = first_id == 1;
    let checkpoint_detail_suffix = format!("first_kept={first_id} anchor={}", hex(&prev));
    let mut count: u64 = 0;
    let mut last: Option<i64> = None;
    // The anchored entry as found: (at, actor, action, hash).
    let mut anchored: Option<(i64, String, String, Vec<u8>)> = None;
    {
        let mut rows = sqlx::query("SELECT * FROM events ORDER BY id").fetch(&mut *snap);
        while let Some(r) = rows.try_next().await? {
            let expected_id = first_id + count as i64;
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
                return Ok(Err(broken(if entry.id > expected_id {
                    format!("entries #{expected_id}..#{} are missing", entry.id - 1)
                } else {
                    format!("the chain should start at #{expected_id} (retention checkpoint)")
                })));
            }
            let stored_prev: Option<Vec<u8>> = r.get("prev_hash");
            let stored: Option<Vec<u8>> = r.get("hash");
            if stored_prev.as_deref() != Some(prev.as_slice()) {
                return Ok(Err(broken(
                    "it does not follow the entry before it (an entry was removed or altered)"
                        .into(),
                )));
            }
            let hash = entry_hash(&prev, &entry);
            if stored.as_deref() != Some(hash.as_slice()) {
                return Ok(Err(broken(
                    "its content does not match its hash (the entry was altered)".into(),
                )));
            }
            if entry.action == "audit-expire" && entry.detail.ends_with(&checkpoint_detail_suffix) {
                checkpoint_vouched = true;
            }
            if anchor.as_ref().is_some_and(|(id, _)| *id == entry.id) {
                anchored = Some((
                    entry.at,
                    entry.actor.to_owned(),
                    entry.action.to_owned(),
                    hash.clone(),
                ));
            }
            prev = hash;
            count += 1;
            last = Some(entry.id);
        }
    }
    snap.rollback().await?;
    if !checkpoint_vouched {
        return Ok(Err(Broken {
            id: first_id,
            at: String::new(),
            actor: String::new(),
            action: String::new(),
            reason:
                "the chain starts at a retention checkpoint that no `audit-expire` entry records"
                    .into(),
        }));
    }
    if let Some((anchored_id, anchored_hash)) = anchor {
        match anchored {
            Some((at, actor, action, hash)) => {
                if hex(&hash) != anchored_hash {
                    return Ok(Err(Broken {
                        id: anchored_id,
                        at: ids::rfc3339(at),
                        actor,
                        action,
                        reason: "its hash differs from the one anchored outside the database"
                            .into(),
                    }));
                }
            }
            // Retention never removes the anchored entry.
            None => {
                return Ok(Err(Broken {
                    id: anchored_id,
                    at: String::new(),
                    actor: String::new(),
                    action: String::new(),
                    reason: format!(
                        "the entry the gateway anchored outside the database is gone \
                         (the log now ends at #{}; entries were removed)",
                        last.unwrap_or(0)
                    ),
                }));
            }
        }
    }
    Ok(Ok(Intact {
        entries: count,
        head: if count == 0 {
            String::new()
        } else {
            hex(&prev)
        },
    }))
}

/// Removes entries older than `cutoff_ms` (never the newest), leaving a
/// checkpoint and an `audit-expire` entry, all in one transaction. Returns
/// how many entries were removed.
pub(crate) async fn expire(
    db: &SqlitePool,
    cutoff_ms: i64,
    anchored: Option<i64>,
) -> Result<u64, sqlx::Error> {
    let mut tx = crate::store::begin_write(db).await?;
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
        .fetch_one(&mut *tx)
        .await?;
    let last_old: Option<(i64, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT id, hash FROM events WHERE at < ? AND id < ? ORDER BY id DESC LIMIT 1",
    )
    .bind(cutoff_ms)
    // Never the newest entry, nor the one anchored outside the database.
    .bind(newest.unwrap_or(0).min(anchored.unwrap_or(i64::MAX)))
    .fetch_optional(&mut *tx)
    .await?;
    let Some((last_old, Some(anchor))) = last_old else {
        return Ok(0);
    };
    let removed = sqlx::query("DELETE FROM events WHERE id <= ?")
        .bind(last_old)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("INSERT INTO audit_checkpoints (at, first_id, anchor_hash) VALUES (?, ?, ?)")
        .bind(ids::now_ms())
        .bind(last_old + 1)
        .bind(&anchor)
        .execute(&mut *tx)
        .await?;
    append_in(
        &mut tx,
        "jumpgate",
        "audit-expire",
        "audit",
        "ok",
        &expire_detail(removed, last_old + 1, &anchor),
    )
    .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Where the chain's head is anchored outside the database.
pub(crate) fn anchor_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("audit-head")
}

/// Reads the anchor: `(id, hex hash)`, `None` if none was written yet.
///
/// # Errors
/// The file exists but cannot be read or parsed.
pub(crate) fn read_anchor(data_dir: &std::path::Path) -> std::io::Result<Option<(i64, String)>> {
    let text = match std::fs::read_to_string(anchor_path(data_dir)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "audit-head is malformed");
    let (id, hash) = text.trim().split_once(' ').ok_or_else(bad)?;
    Ok(Some((id.parse().map_err(|_| bad())?, hash.to_owned())))
}

/// Writes the current head to the anchor file (atomically) if it moved;
/// returns the head written.
///
/// # Errors
/// The database or the file could not be used.
pub(crate) async fn write_anchor(
    db: &SqlitePool,
    data_dir: &std::path::Path,
    last: Option<i64>,
) -> Result<Option<i64>, Box<dyn std::error::Error + Send + Sync>> {
    let head: Option<(i64, Option<Vec<u8>>)> =
        sqlx::query_as("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1")
            .fetch_optional(db)
            .await?;
    let Some((id, Some(hash))) = head else {
        return Ok(last);
    };
    if last == Some(id) {
        return Ok(last);
    }
    // The anchor only moves forward along the same chain: if the entry it
    // names is gone or changed, the log was tampered with, and moving the
    // anchor would hide it.
    if let Some((aid, ahash)) = read_anchor(data_dir)? {
        let stored: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT hash FROM events WHERE id = ?")
                .bind(aid)
                .fetch_optional(db)
                .await?;
        if stored.flatten().map(|h| hex(&h)) != Some(ahash) {
            return Err(format!(
                "the audit log no longer holds entry #{aid} as anchored; the anchor is \
                 kept as it is (run `jumpgate admin verify-audit`)"
            )
            .into());
        }
    }
    let path = anchor_path(data_dir);
    let tmp = path.with_extension("tmp");
    // The owner's only, whatever the data directory's permissions.
    let _ = tokio::fs::remove_file(&tmp).await;
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    tokio::io::AsyncWriteExt::write_all(&mut f, format!("{id} {}\n", hex(&hash)).as_bytes())
        .await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, &path).await?;
    Ok(Some(id))
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

/// Entries newest first, filtered by `since`, `user` and `limit`, and
/// limited to the caller's groups: a reader limited to some groups sees the
/// entries about endpoints of those groups, never site-wide ones.
async fn list(
    axum::extract::State(st): axum::extract::State<AppState>,
    crate::api::Caller(who): crate::api::Caller,
    query: Result<axum::extract::Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Vec<api::SecurityEvent>>, ApiError> {
    let axum::extract::Query(f) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let since_ms = match f.since.as_deref() {
        None => i64::MIN,
        Some(s) => {
            ids::parse_rfc3339(s).ok_or_else(|| ApiError::bad_request(ids::bad_time("since", s)))?
        }
    };
    let limit = f.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let rows = sqlx::query(
        "SELECT * FROM events WHERE at >= ?1 AND (?2 IS NULL OR actor = ?2)
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(events.groups) g
                                      WHERE g.value IN (SELECT value FROM json_each(?3))))
         ORDER BY id DESC LIMIT ?4",
    )
    .bind(since_ms)
    .bind(f.user.as_deref())
    .bind(who.read_scope().sql_param())
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

    async fn sql(db: &SqlitePool, q: &'static str) {
        sqlx::query(q).execute(db).await.unwrap();
    }

    async fn hash_of(db: &SqlitePool, id: i64) -> Vec<u8> {
        sqlx::query_scalar("SELECT hash FROM events WHERE id = ?")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap()
    }

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
    async fn over_long_fields_are_bounded_at_write_and_still_chain() {
        let (_d, db) = db_with_events(1).await;
        let huge = "n".repeat(5000);
        let detail = "d".repeat(50_000);
        record(&db, "alice", "vault-put", &huge, "failed", &detail)
            .await
            .unwrap();
        let (target, stored): (String, String) =
            sqlx::query_as("SELECT target, detail FROM events ORDER BY id DESC LIMIT 1")
                .fetch_one(&db)
                .await
                .unwrap();
        assert!(target.chars().count() <= MAX_NAME_FIELD, "{}", target.len());
        assert!(target.ends_with("more characters)"), "{target}");
        assert!(target.contains(&format!("({} more", 5000 - (MAX_NAME_FIELD - 48))));
        assert!(stored.chars().count() <= MAX_TEXT_FIELD);
        assert!(stored.ends_with("more characters)"));
        // Short fields are kept exactly.
        assert_eq!(bound("alice", MAX_NAME_FIELD), "alice");
        assert_eq!(verify(&db, None).await.unwrap().unwrap().entries, 2);
    }

    #[tokio::test]
    async fn an_intact_chain_verifies() {
        let (_d, db) = db_with_events(5).await;
        let ok = verify(&db, None).await.unwrap().unwrap();
        assert_eq!(ok.entries, 5);
        assert_eq!(ok.head.len(), 64);
    }

    #[tokio::test]
    async fn an_altered_entry_is_named() {
        let (_d, db) = db_with_events(5).await;
        sql(&db, "UPDATE events SET detail = 'n=forged' WHERE id = 3").await;
        let broken = verify(&db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3);
        assert!(broken.reason.contains("altered"), "{broken}");
    }

    #[tokio::test]
    async fn a_removed_entry_is_named() {
        let (_d, db) = db_with_events(5).await;
        sql(&db, "DELETE FROM events WHERE id = 2").await;
        let broken = verify(&db, None).await.unwrap().unwrap_err();
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
        let broken = verify(&db, None).await.unwrap().unwrap_err();
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
        assert!(verify(&db, None).await.unwrap().is_err());
        assert_eq!(seal_legacy(&db).await.unwrap(), 3);
        record(&db, "y", "login", "y", "ok", "").await.unwrap();
        assert_eq!(verify(&db, None).await.unwrap().unwrap().entries, 4);
        assert_eq!(seal_legacy(&db).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn retention_keeps_the_shortened_chain_verifiable() {
        let (_d, db) = db_with_events(6).await;
        // Entries 1..=3 are "old".
        sql(&db, "UPDATE events SET at = 10 WHERE id <= 3").await;
        // Re-seal, since `at` is hashed.
        let mut prev = GENESIS.to_vec();
        for r in sqlx::query("SELECT * FROM events ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap()
        {
            let e = Entry {
                id: r.get("id"),
                at: r.get("at"),
                actor: r.get("actor"),
                action: r.get("action"),
                target: r.get("target"),
                outcome: r.get("outcome"),
                detail: r.get("detail"),
            };
            let h = entry_hash(&prev, &e);
            sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?")
                .bind(&prev)
                .bind(&h)
                .bind(e.id)
                .execute(&db)
                .await
                .unwrap();
            prev = h;
        }
        assert_eq!(expire(&db, 100, None).await.unwrap(), 3);
        let ok = verify(&db, None).await.unwrap().unwrap();
        // 4, 5, 6 and the expiry's own entry.
        assert_eq!(ok.entries, 4);
        let last: (String, String) =
            sqlx::query_as("SELECT action, detail FROM events ORDER BY id DESC LIMIT 1")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!(last.0, "audit-expire");
        assert!(
            last.1.starts_with("removed=3 first_kept=4 anchor="),
            "{}",
            last.1
        );
        // Nothing more to expire; the newest entry is never removed.
        assert_eq!(expire(&db, 100, None).await.unwrap(), 0);

        // Removing a kept entry right after the checkpoint is still caught.
        sql(&db, "DELETE FROM events WHERE id = 4").await;
        let broken = verify(&db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 5);
    }

    #[tokio::test]
    async fn a_forged_checkpoint_is_not_believed() {
        let (_d, db) = db_with_events(4).await;
        // An intruder removes the first two entries and invents a
        // checkpoint that makes the rest look complete.
        let h2 = hash_of(&db, 2).await;
        sql(&db, "DELETE FROM events WHERE id <= 2").await;
        sqlx::query("INSERT INTO audit_checkpoints (at, first_id, anchor_hash) VALUES (0, 3, ?)")
            .bind(&h2)
            .execute(&db)
            .await
            .unwrap();
        let broken = verify(&db, None).await.unwrap().unwrap_err();
        assert!(
            broken.reason.contains("no `audit-expire` entry"),
            "{broken}"
        );
    }

    #[tokio::test]
    async fn removing_entries_from_the_end_is_caught_by_the_anchor() {
        let (dir, db) = db_with_events(5).await;
        let written = write_anchor(&db, dir.path(), None).await.unwrap();
        assert_eq!(written, Some(5));
        let anchor = read_anchor(dir.path()).unwrap();
        assert!(verify(&db, anchor.clone()).await.unwrap().is_ok());
        // A valid but shorter chain: only the anchor shows the loss.
        sql(&db, "DELETE FROM events WHERE id >= 4").await;
        assert!(verify(&db, None).await.unwrap().is_ok());
        let broken = verify(&db, anchor).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 5);
        assert!(broken.reason.contains("entries were removed"), "{broken}");
    }

    #[tokio::test]
    async fn an_action_whose_audit_entry_cannot_be_written_does_not_happen() {
        let (_d, db) = db_with_events(1).await;
        let role = api::CreateRole {
            name: "night-shift".into(),
            description: String::new(),
            permissions: vec!["view".into()],
        };
        // The audit log becomes unwritable (here: its table is gone).
        sql(&db, "ALTER TABLE events RENAME TO events_gone").await;
        let mut tx = crate::store::begin_write(&db).await.unwrap();
        crate::rbac::store::create(&mut tx, &role).await.unwrap();
        assert!(
            append_in(&mut tx, "alice", "role-create", "night-shift", "ok", "")
                .await
                .is_err()
        );
        drop(tx);
        let roles = crate::rbac::store::list(&db).await.unwrap();
        assert!(roles.iter().all(|r| r.name != "night-shift"), "{roles:?}");
    }

    #[tokio::test]
    async fn unsealing_entries_does_not_get_them_resealed() {
        let (dir, db) = db_with_events(5).await;
        write_anchor(&db, dir.path(), None).await.unwrap();
        // An intruder alters entry 3 and clears the hashes from there on,
        // hoping the next start re-hashes them.
        sqlx::query(
            "UPDATE events SET detail = 'nothing', hash = NULL, prev_hash = NULL WHERE id >= 3",
        )
        .execute(&db)
        .await
        .unwrap();
        assert_eq!(seal_legacy(&db).await.unwrap(), 0);
        let broken = verify(&db, read_anchor(dir.path()).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 3);
        // Even re-hashing the whole log by hand does not move the anchor.
        sql(&db, "UPDATE events SET hash = NULL, prev_hash = NULL").await;
        assert_eq!(seal_legacy(&db).await.unwrap(), 5);
        assert!(write_anchor(&db, dir.path(), None).await.is_err());
        let broken = verify(&db, read_anchor(dir.path()).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 5);
        assert!(broken.reason.contains("anchored"), "{broken}");
    }

    #[tokio::test]
    async fn a_faked_retention_run_cannot_drop_the_anchored_entry() {
        let (dir, db) = db_with_events(6).await;
        write_anchor(&db, dir.path(), None).await.unwrap();
        // Real retention stops below the anchored entry (#6, the newest).
        sql(&db, "UPDATE events SET at = 0").await;
        // (hashes now stale, but `expire` only reads ids and hashes)
        let anchored = read_anchor(dir.path()).unwrap().map(|(id, _)| id);
        expire(&db, 100, anchored).await.unwrap();
        let kept: Vec<i64> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
        assert!(kept.contains(&6), "{kept:?}");
        // An intruder deletes everything up to and including the anchored
        // entry and forges a checkpoint plus its `audit-expire` entry.
        let h7 = hash_of(&db, 7).await;
        sql(&db, "DELETE FROM events").await;
        sql(&db, "DELETE FROM audit_checkpoints").await;
        sqlx::query("INSERT INTO audit_checkpoints (at, first_id, anchor_hash) VALUES (0, 8, ?)")
            .bind(&h7)
            .execute(&db)
            .await
            .unwrap();
        let forged = Entry {
            id: 8,
            at: 1,
            actor: "jumpgate",
            action: "audit-expire",
            target: "audit",
            outcome: "ok",
            detail: &expire_detail(7, 8, &h7),
        };
        sqlx::query("INSERT INTO events (id, at, actor, action, target, outcome, detail, prev_hash, hash) VALUES (8, 1, 'jumpgate', 'audit-expire', 'audit', 'ok', ?, ?, ?)")
            .bind(forged.detail)
            .bind(&h7)
            .bind(entry_hash(&h7, &forged))
            .execute(&db)
            .await
            .unwrap();
        assert!(
            verify(&db, None).await.unwrap().is_ok(),
            "consistent without the anchor"
        );
        let broken = verify(&db, read_anchor(dir.path()).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 6);
    }
}
