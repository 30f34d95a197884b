//! The audit chain on both engines (SQLite always, PostgreSQL when
//! `JUMPGATE_TEST_POSTGRES` is set): each test runs once per engine.

use super::*;
use crate::store::audit::{MAX_NAME_FIELD, MAX_TEXT_FIELD, bound};
use jumpgate_api_types as api;

/// A fresh store of each engine, its data directory (for the head anchor)
/// and what keeps its SQLite file alive.
struct Site {
    db: Store,
    dir: tempfile::TempDir,
    _file: Option<tempfile::TempDir>,
}

async fn sites(test: &str) -> Vec<Site> {
    crate::store::tests::engines(test)
        .await
        .into_iter()
        .map(|(db, file)| Site {
            db,
            dir: tempfile::tempdir().unwrap(),
            _file: file,
        })
        .collect()
}

/// Fresh stores of each engine with `n` entries each.
async fn sites_with_events(test: &str, n: usize) -> Vec<Site> {
    let sites = sites(test).await;
    for s in &sites {
        for i in 0..n {
            record(&s.db, "alice", "login", "alice", "ok", &format!("n={i}"))
                .await
                .unwrap();
        }
    }
    sites
}

/// One audit entry in its own transaction (the action by its stored name).
async fn record(
    db: &Store,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let event = AuditEvent::new(actor, AuditAction::Denied(action.to_owned()), target)
        .outcome(outcome)
        .detail(detail);
    db.audit_now(event).await
}

/// What an intruder with database access does.
async fn sql(db: &Store, q: &'static str) {
    db.execute_unchecked(q).await.unwrap();
}

async fn hash_of(db: &Store, id: i64) -> Vec<u8> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_scalar(
        "SELECT hash FROM events WHERE id = $1"
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await)
    .unwrap()
}

/// An entry's stored fields and previous hash.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
    prev_hash: Option<Vec<u8>>,
}

impl Row {
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

async fn rows(db: &Store) -> Vec<Row> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as::<_, Row>(
        "SELECT id, at, actor, action, target, outcome, detail, prev_hash FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

/// Sets an entry's detail, previous hash and hash (a forger at work).
async fn set_entry(db: &Store, id: i64, detail: &str, prev: &[u8], hash: &[u8]) {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query(
        "UPDATE events SET detail = $1, prev_hash = $2, hash = $3 WHERE id = $4"
    )
    .bind(detail)
    .bind(prev)
    .bind(hash)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
}

async fn forge_checkpoint(db: &Store, first_id: i64, anchor: &[u8]) {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query(
        "INSERT INTO audit_checkpoints (at, first_id, anchor_hash) VALUES (0, $1, $2)"
    )
    .bind(first_id)
    .bind(anchor)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
}

#[tokio::test]
async fn over_long_fields_are_bounded_at_write_and_still_chain() {
    for s in sites_with_events("events_bounded", 1).await {
        let db = &s.db;
        let huge = "n".repeat(5000);
        let detail = "d".repeat(50_000);
        record(db, "alice", "vault-put", &huge, "failed", &detail)
            .await
            .unwrap();
        let last = rows(db).await.pop().unwrap();
        let (target, stored) = (last.target, last.detail);
        assert!(target.chars().count() <= MAX_NAME_FIELD, "{}", target.len());
        assert!(target.ends_with("more characters)"), "{target}");
        assert!(target.contains(&format!("({} more", 5000 - (MAX_NAME_FIELD - 48))));
        assert!(stored.chars().count() <= MAX_TEXT_FIELD);
        assert!(stored.ends_with("more characters)"));
        // Short fields are kept exactly.
        assert_eq!(bound("alice", MAX_NAME_FIELD), "alice");
        assert_eq!(verify(db, None).await.unwrap().unwrap().entries, 2);
    }
}

#[tokio::test]
async fn an_intact_chain_verifies() {
    for s in sites_with_events("events_intact", 5).await {
        let ok = verify(&s.db, None).await.unwrap().unwrap();
        assert_eq!(ok.entries, 5, "{}", s.db.engine());
        assert_eq!(ok.head.len(), 64);
    }
}

#[tokio::test]
async fn an_altered_entry_is_named() {
    for s in sites_with_events("events_altered", 5).await {
        sql(&s.db, "UPDATE events SET detail = 'n=forged' WHERE id = 3").await;
        let broken = verify(&s.db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3, "{}", s.db.engine());
        assert!(broken.reason.contains("altered"), "{broken}");
    }
}

#[tokio::test]
async fn a_removed_entry_is_named() {
    for s in sites_with_events("events_removed", 5).await {
        sql(&s.db, "DELETE FROM events WHERE id = 2").await;
        let broken = verify(&s.db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3, "{}", s.db.engine());
        assert!(broken.reason.contains("missing"), "{broken}");
    }
}

#[tokio::test]
async fn a_forger_who_rehashes_the_altered_entry_is_caught_at_the_next() {
    for s in sites_with_events("events_rehashed", 4).await {
        let db = &s.db;
        let row = rows(db).await.into_iter().find(|r| r.id == 2).unwrap();
        let prev = row.prev_hash.clone().unwrap();
        let forged = Entry {
            detail: "nothing happened",
            ..row.entry()
        };
        set_entry(db, 2, forged.detail, &prev, &entry_hash(&prev, &forged)).await;
        // Entry 2 is self-consistent now; entry 3 no longer follows it.
        let broken = verify(db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 3, "{}", db.engine());
        assert!(broken.reason.contains("does not follow"), "{broken}");
    }
}

#[tokio::test]
async fn entries_from_before_the_chain_are_sealed_once() {
    for s in sites("events_legacy").await {
        let db = &s.db;
        sql(
            db,
            "INSERT INTO events (id, at, actor, action, target, outcome, detail) VALUES
                (1, 0, 'x', 'login', 'x', 'ok', ''),
                (2, 1, 'x', 'login', 'x', 'ok', ''),
                (3, 2, 'x', 'login', 'x', 'ok', '')",
        )
        .await;
        assert!(verify(db, None).await.unwrap().is_err());
        assert_eq!(seal_legacy(db).await.unwrap(), 3, "{}", db.engine());
        record(db, "y", "login", "y", "ok", "").await.unwrap();
        assert_eq!(verify(db, None).await.unwrap().unwrap().entries, 4);
        assert_eq!(seal_legacy(db).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn retention_keeps_the_shortened_chain_verifiable() {
    for s in sites_with_events("events_retention", 6).await {
        let db = &s.db;
        // Entries 1..=3 are "old".
        sql(db, "UPDATE events SET at = 10 WHERE id <= 3").await;
        // Re-seal, since `at` is hashed.
        let mut prev = GENESIS.to_vec();
        for r in rows(db).await {
            let h = entry_hash(&prev, &r.entry());
            set_entry(db, r.id, &r.detail, &prev, &h).await;
            prev = h;
        }
        assert_eq!(expire(db, 100, None).await.unwrap(), 3, "{}", db.engine());
        let ok = verify(db, None).await.unwrap().unwrap();
        // 4, 5, 6 and the expiry's own entry.
        assert_eq!(ok.entries, 4);
        let last = rows(db).await.pop().unwrap();
        assert_eq!(last.action, "audit-expire");
        assert!(
            last.detail.starts_with("removed=3 first_kept=4 anchor="),
            "{}",
            last.detail
        );
        // Nothing more to expire; the newest entry is never removed.
        assert_eq!(expire(db, 100, None).await.unwrap(), 0);

        // Removing a kept entry right after the checkpoint is still caught.
        sql(db, "DELETE FROM events WHERE id = 4").await;
        let broken = verify(db, None).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 5);
    }
}

#[tokio::test]
async fn a_forged_checkpoint_is_not_believed() {
    for s in sites_with_events("events_forged_checkpoint", 4).await {
        let db = &s.db;
        // An intruder removes the first two entries and invents a
        // checkpoint that makes the rest look complete.
        let h2 = hash_of(db, 2).await;
        sql(db, "DELETE FROM events WHERE id <= 2").await;
        forge_checkpoint(db, 3, &h2).await;
        let broken = verify(db, None).await.unwrap().unwrap_err();
        assert!(
            broken.reason.contains("no `audit-expire` entry"),
            "{}: {broken}",
            db.engine()
        );
    }
}

#[tokio::test]
async fn removing_entries_from_the_end_is_caught_by_the_anchor() {
    for s in sites_with_events("events_anchor_end", 5).await {
        let (db, dir) = (&s.db, s.dir.path());
        let written = write_anchor(db, dir, None).await.unwrap();
        assert_eq!(written, Some(5), "{}", db.engine());
        let anchor = read_anchor(dir).unwrap();
        assert!(verify(db, anchor.clone()).await.unwrap().is_ok());
        // A valid but shorter chain: only the anchor shows the loss.
        sql(db, "DELETE FROM events WHERE id >= 4").await;
        assert!(verify(db, None).await.unwrap().is_ok());
        let broken = verify(db, anchor).await.unwrap().unwrap_err();
        assert_eq!(broken.id, 5);
        assert!(broken.reason.contains("entries were removed"), "{broken}");
    }
}

#[tokio::test]
async fn an_action_whose_audit_entry_cannot_be_written_does_not_happen() {
    for s in sites_with_events("events_unwritable", 1).await {
        let db = &s.db;
        let role = api::CreateRole {
            name: "night-shift".into(),
            description: String::new(),
            permissions: vec!["view".into()],
        };
        // The audit log becomes unwritable (here: its table is gone).
        sql(db, "ALTER TABLE events RENAME TO events_gone").await;
        let mut w = db.write().await.unwrap();
        crate::rbac::store::create(&mut w, &role).await.unwrap();
        let entry = AuditEvent::new("alice", AuditAction::RoleCreate, "night-shift");
        assert!(w.audit(entry).await.is_err(), "{}", db.engine());
        drop(w);
        let roles = crate::rbac::store::list(db).await.unwrap();
        assert!(roles.iter().all(|r| r.name != "night-shift"), "{roles:?}");
        // A positive control: the role is written when the audit log is.
        sql(db, "ALTER TABLE events_gone RENAME TO events").await;
        let mut w = db.write().await.unwrap();
        crate::rbac::store::create(&mut w, &role).await.unwrap();
        let entry = AuditEvent::new("alice", AuditAction::RoleCreate, "night-shift");
        w.audit(entry).await.unwrap();
        w.commit().await.unwrap();
        let roles = crate::rbac::store::list(db).await.unwrap();
        assert!(roles.iter().any(|r| r.name == "night-shift"), "{roles:?}");
    }
}

#[tokio::test]
async fn unsealing_entries_does_not_get_them_resealed() {
    for s in sites_with_events("events_unsealed", 5).await {
        let (db, dir) = (&s.db, s.dir.path());
        write_anchor(db, dir, None).await.unwrap();
        // An intruder alters entry 3 and clears the hashes from there on,
        // hoping the next start re-hashes them.
        sql(
            db,
            "UPDATE events SET detail = 'nothing', hash = NULL, prev_hash = NULL WHERE id >= 3",
        )
        .await;
        assert_eq!(seal_legacy(db).await.unwrap(), 0, "{}", db.engine());
        let broken = verify(db, read_anchor(dir).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 3);
        // Even re-hashing the whole log by hand does not move the anchor.
        sql(db, "UPDATE events SET hash = NULL, prev_hash = NULL").await;
        assert_eq!(seal_legacy(db).await.unwrap(), 5);
        assert!(write_anchor(db, dir, None).await.is_err());
        let broken = verify(db, read_anchor(dir).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 5);
        assert!(broken.reason.contains("anchored"), "{broken}");
    }
}

#[tokio::test]
async fn a_faked_retention_run_cannot_drop_the_anchored_entry() {
    for s in sites_with_events("events_faked_retention", 6).await {
        let (db, dir) = (&s.db, s.dir.path());
        write_anchor(db, dir, None).await.unwrap();
        // Real retention stops below the anchored entry (#6, the newest).
        sql(db, "UPDATE events SET at = 0").await;
        // (hashes now stale, but `expire` only reads ids and hashes)
        let anchored = read_anchor(dir).unwrap().map(|(id, _)| id);
        expire(db, 100, anchored).await.unwrap();
        let kept: Vec<i64> = rows(db).await.iter().map(|r| r.id).collect();
        assert!(kept.contains(&6), "{}: {kept:?}", db.engine());
        // An intruder deletes everything up to and including the anchored
        // entry and forges a checkpoint plus its `audit-expire` entry.
        let h7 = hash_of(db, 7).await;
        sql(db, "DELETE FROM events").await;
        sql(db, "DELETE FROM audit_checkpoints").await;
        forge_checkpoint(db, 8, &h7).await;
        let detail = expire_detail(7, 8, &h7);
        let forged = Entry {
            id: 8,
            at: 1,
            actor: "jumpgate",
            action: "audit-expire",
            target: "audit",
            outcome: "ok",
            detail: &detail,
        };
        sql(
            db,
            "INSERT INTO events (id, at, actor, action, target, outcome, detail) VALUES (8, 1, 'jumpgate', 'audit-expire', 'audit', 'ok', '')",
        )
        .await;
        set_entry(db, 8, forged.detail, &h7, &entry_hash(&h7, &forged)).await;
        assert!(
            verify(db, None).await.unwrap().is_ok(),
            "consistent without the anchor"
        );
        let broken = verify(db, read_anchor(dir).unwrap())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.id, 6);
    }
}
