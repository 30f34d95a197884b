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
//! - **Writes** go through the store: `WriteTx::audit` inside the action's
//!   transaction, `Store::audit_now` for entries that must exist even when
//!   the action fails (`store::audit` holds the entry types and the append).
//! - **The head is anchored outside the database** ([`write_anchor`]): the
//!   gateway keeps the latest id and hash in `<data dir>/audit-head`, so
//!   removing entries from the end (which leaves a shorter, valid chain) is
//!   caught too.

use crate::ids;
use crate::store::audit::{Entry, GENESIS, entry_hash};
use crate::store::{AuditAction, AuditEvent, Engine, Exec, Store, sql};

mod http;
pub(crate) mod schema;
pub(crate) use http::routes;

/// Whether the audit log holds any entry: every site writes some as it is
/// set up, so a database with none holds no site yet.
pub(crate) async fn has_entries(store: &Store) -> Result<bool, sqlx::Error> {
    let mut c = store.conn().await?;
    let any: Option<i64> = sql!(c, |c| sqlx::query_scalar("SELECT id FROM events LIMIT 1")
        .fetch_optional(&mut *c)
        .await)?;
    Ok(any.is_some())
}

/// Chains entries written before the log was a chain (schema 2), once.
pub(crate) async fn seal_legacy(store: &Store) -> Result<u64, sqlx::Error> {
    let mut w = store.write().await?;
    // Only the entries written before the first chained one: an unsealed
    // entry after a sealed one is tampering, left for `verify` to report,
    // never "repaired" by re-hashing it.
    let rows: Vec<Stored> = sql!(w, |c| {
        sqlx::query_as(
        "SELECT id, at, actor, action, target, outcome, detail, prev_hash, hash FROM events WHERE hash IS NULL
           AND id < (SELECT COALESCE(MIN(id), 9223372036854775807) FROM events WHERE hash IS NOT NULL)
         ORDER BY id",
    )
    .fetch_all(&mut *c)
    .await
    })?;
    let mut sealed = 0;
    for r in &rows {
        let prev: Vec<u8> = sql!(w, |c| {
            sqlx::query_scalar(
            "SELECT hash FROM events WHERE id < $1 AND hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(r.id)
        .fetch_optional(&mut *c)
        .await
        })?
        .unwrap_or_else(|| GENESIS.to_vec());
        let hash = entry_hash(&prev, &r.entry());
        sql!(w, |c| sqlx::query(
            "UPDATE events SET prev_hash = $1, hash = $2 WHERE id = $3"
        )
        .bind(&prev)
        .bind(&hash)
        .bind(r.id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
        sealed += 1;
    }
    w.commit().await?;
    Ok(sealed)
}

/// An entry as stored.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Stored {
    pub(crate) id: i64,
    pub(crate) at: i64,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) outcome: String,
    pub(crate) detail: String,
    pub(crate) prev_hash: Option<Vec<u8>>,
    pub(crate) hash: Option<Vec<u8>>,
}

impl Stored {
    fn entry(&self) -> Entry<'_> {
        Entry {
            id: self.id,
            at: self.at,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            outcome: &self.outcome,
            detail: &self.detail,
        }
    }
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
async fn checkpoint(c: &mut dyn Exec) -> Result<Option<(i64, Vec<u8>)>, sqlx::Error> {
    sql!(c, |c| sqlx::query_as(
        "SELECT first_id, anchor_hash FROM audit_checkpoints ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(&mut *c)
    .await)
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
    store: &Store,
    anchor: Option<(i64, String)>,
) -> Result<Result<Intact, Broken>, sqlx::Error> {
    // One snapshot for the checkpoint and the entries (retention may run);
    // the entries are read in pages, so the log's length costs no memory.
    let mut snap = store.snapshot().await?;
    let (first_id, mut prev) = checkpoint(&mut snap)
        .await?
        .unwrap_or((1, GENESIS.to_vec()));
    // A checkpoint is only believed if the chain itself records it.
    let mut checkpoint_vouched = first_id == 1;
    let checkpoint_detail_suffix = format!("first_kept={first_id} anchor={}", hex(&prev));
    let mut count: u64 = 0;
    let mut last: Option<i64> = None;
    // The anchored entry as found: (at, actor, action, hash).
    let mut anchored: Option<(i64, String, String, Vec<u8>)> = None;
    let mut after = i64::MIN;
    loop {
        let page: Vec<Stored> = sql!(snap, |c| sqlx::query_as(
            "SELECT id, at, actor, action, target, outcome, detail, prev_hash, hash
               FROM events WHERE id > $1 ORDER BY id LIMIT 2000",
        )
        .bind(after)
        .fetch_all(&mut *c)
        .await)?;
        let Some(last_row) = page.last() else { break };
        after = last_row.id;
        for r in &page {
            let expected_id = first_id + count as i64;
            let entry = r.entry();
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
            let stored_prev = r.prev_hash.as_ref();
            let stored = r.hash.as_ref();
            if stored_prev.map(Vec::as_slice) != Some(prev.as_slice()) {
                return Ok(Err(broken(
                    "it does not follow the entry before it (an entry was removed or altered)"
                        .into(),
                )));
            }
            let hash = entry_hash(&prev, &entry);
            if stored.map(Vec::as_slice) != Some(hash.as_slice()) {
                return Ok(Err(broken(
                    "its content does not match its hash (the entry was altered)".into(),
                )));
            }
            if entry.action == AuditAction::AuditExpire.as_str()
                && entry.detail.ends_with(&checkpoint_detail_suffix)
            {
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
    snap.end().await?;
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
    store: &Store,
    cutoff_ms: i64,
    anchored: Option<i64>,
) -> Result<u64, sqlx::Error> {
    let mut w = store.write().await?;
    let newest: Option<i64> = sql!(w, |c| sqlx::query_scalar("SELECT MAX(id) FROM events")
        .fetch_one(&mut *c)
        .await)?;
    // Never the newest entry, nor the one anchored outside the database.
    let below = newest.unwrap_or(0).min(anchored.unwrap_or(i64::MAX));
    let last_old: Option<(i64, Option<Vec<u8>>)> = sql!(w, |c| sqlx::query_as(
        "SELECT id, hash FROM events WHERE at < $1 AND id < $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(cutoff_ms)
    .bind(below)
    .fetch_optional(&mut *c)
    .await)?;
    let Some((last_old, Some(anchor))) = last_old else {
        return Ok(0);
    };
    let removed = sql!(w, |c| sqlx::query("DELETE FROM events WHERE id <= $1")
        .bind(last_old)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    sql!(w, |c| sqlx::query(
        "INSERT INTO audit_checkpoints (at, first_id, anchor_hash) VALUES ($1, $2, $3)"
    )
    .bind(ids::now_ms())
    .bind(last_old + 1)
    .bind(&anchor)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    w.audit(
        AuditEvent::new("jumpgate", AuditAction::AuditExpire, "audit").detail(expire_detail(
            removed,
            last_old + 1,
            &anchor,
        )),
    )
    .await?;
    w.commit().await?;
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
    store: &Store,
    data_dir: &std::path::Path,
    last: Option<i64>,
) -> Result<Option<i64>, Box<dyn std::error::Error + Send + Sync>> {
    let mut c = store.conn().await?;
    let head: Option<(i64, Option<Vec<u8>>)> = sql!(c, |c| sqlx::query_as(
        "SELECT id, hash FROM events ORDER BY id DESC LIMIT 1"
    )
    .fetch_optional(&mut *c)
    .await)?;
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
        let stored: Option<Option<Vec<u8>>> = sql!(c, |c| sqlx::query_scalar(
            "SELECT hash FROM events WHERE id = $1"
        )
        .bind(aid)
        .fetch_optional(&mut *c)
        .await)?;
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

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Entries newest first: from `since_ms`, by `actor` if given, at most
/// `limit`, and limited to `scope`: a reader limited to some groups sees
/// the entries about endpoints of those groups, never site-wide ones.
pub(crate) async fn list(
    store: &Store,
    since_ms: i64,
    actor: Option<&str>,
    scope: &crate::rbac::ReadScope,
    limit: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let q = match store.engine() {
        Engine::Sqlite => {
            "SELECT id, at, actor, action, target, outcome, detail, prev_hash, hash FROM events
              WHERE at >= $1 AND ($2 IS NULL OR actor = $2)
                AND ($3 IS NULL OR EXISTS (SELECT 1 FROM json_each(events.groups) g
                                           WHERE g.value IN (SELECT value FROM json_each($3))))
              ORDER BY id DESC LIMIT $4"
        }
        Engine::Postgres => {
            "SELECT id, at, actor, action, target, outcome, detail, prev_hash, hash FROM events
              WHERE at >= $1 AND ($2::text IS NULL OR actor = $2)
                AND ($3::text IS NULL OR EXISTS (
                      SELECT 1 FROM json_array_elements_text(events.groups::json) g
                       WHERE g IN (SELECT json_array_elements_text($3::json))))
              ORDER BY id DESC LIMIT $4"
        }
    };
    let mut c = store.conn().await?;
    sql!(c, |c| sqlx::query_as(q)
        .bind(since_ms)
        .bind(actor)
        .bind(scope.sql_param())
        .bind(limit)
        .fetch_all(&mut *c)
        .await)
}

#[cfg(test)]
mod tests;
