use super::*;
use crate::store::audit::{MAX_NAME_FIELD, MAX_TEXT_FIELD, bound};
use jumpgate_api_types as api;
use sqlx::Row;
use sqlx::SqlitePool;

fn st(db: &SqlitePool) -> Store {
    Store::sqlite(db.clone())
}

/// One audit entry in its own transaction (the action by its stored name).
async fn record(
    db: &SqlitePool,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let event = AuditEvent::new(actor, AuditAction::Denied(action.to_owned()), target)
        .outcome(outcome)
        .detail(detail);
    st(db).audit_now(event).await
}

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
    assert_eq!(verify(&st(&db), None).await.unwrap().unwrap().entries, 2);
}

#[tokio::test]
async fn an_intact_chain_verifies() {
    let (_d, db) = db_with_events(5).await;
    let ok = verify(&st(&db), None).await.unwrap().unwrap();
    assert_eq!(ok.entries, 5);
    assert_eq!(ok.head.len(), 64);
}

#[tokio::test]
async fn an_altered_entry_is_named() {
    let (_d, db) = db_with_events(5).await;
    sql(&db, "UPDATE events SET detail = 'n=forged' WHERE id = 3").await;
    let broken = verify(&st(&db), None).await.unwrap().unwrap_err();
    assert_eq!(broken.id, 3);
    assert!(broken.reason.contains("altered"), "{broken}");
}

#[tokio::test]
async fn a_removed_entry_is_named() {
    let (_d, db) = db_with_events(5).await;
    sql(&db, "DELETE FROM events WHERE id = 2").await;
    let broken = verify(&st(&db), None).await.unwrap().unwrap_err();
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
    let broken = verify(&st(&db), None).await.unwrap().unwrap_err();
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
    assert!(verify(&st(&db), None).await.unwrap().is_err());
    assert_eq!(seal_legacy(&st(&db)).await.unwrap(), 3);
    record(&db, "y", "login", "y", "ok", "").await.unwrap();
    assert_eq!(verify(&st(&db), None).await.unwrap().unwrap().entries, 4);
    assert_eq!(seal_legacy(&st(&db)).await.unwrap(), 0);
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
    assert_eq!(expire(&st(&db), 100, None).await.unwrap(), 3);
    let ok = verify(&st(&db), None).await.unwrap().unwrap();
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
    assert_eq!(expire(&st(&db), 100, None).await.unwrap(), 0);

    // Removing a kept entry right after the checkpoint is still caught.
    sql(&db, "DELETE FROM events WHERE id = 4").await;
    let broken = verify(&st(&db), None).await.unwrap().unwrap_err();
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
    let broken = verify(&st(&db), None).await.unwrap().unwrap_err();
    assert!(
        broken.reason.contains("no `audit-expire` entry"),
        "{broken}"
    );
}

#[tokio::test]
async fn removing_entries_from_the_end_is_caught_by_the_anchor() {
    let (dir, db) = db_with_events(5).await;
    let written = write_anchor(&st(&db), dir.path(), None).await.unwrap();
    assert_eq!(written, Some(5));
    let anchor = read_anchor(dir.path()).unwrap();
    assert!(verify(&st(&db), anchor.clone()).await.unwrap().is_ok());
    // A valid but shorter chain: only the anchor shows the loss.
    sql(&db, "DELETE FROM events WHERE id >= 4").await;
    assert!(verify(&st(&db), None).await.unwrap().is_ok());
    let broken = verify(&st(&db), anchor).await.unwrap().unwrap_err();
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
    let store = st(&db);
    let mut w = store.write().await.unwrap();
    crate::rbac::store::create(&mut w, &role).await.unwrap();
    let entry = AuditEvent::new("alice", AuditAction::RoleCreate, "night-shift");
    assert!(w.audit(entry).await.is_err());
    drop(w);
    let roles = crate::rbac::store::list(&st(&db)).await.unwrap();
    assert!(roles.iter().all(|r| r.name != "night-shift"), "{roles:?}");
}

#[tokio::test]
async fn unsealing_entries_does_not_get_them_resealed() {
    let (dir, db) = db_with_events(5).await;
    write_anchor(&st(&db), dir.path(), None).await.unwrap();
    // An intruder alters entry 3 and clears the hashes from there on,
    // hoping the next start re-hashes them.
    sqlx::query(
        "UPDATE events SET detail = 'nothing', hash = NULL, prev_hash = NULL WHERE id >= 3",
    )
    .execute(&db)
    .await
    .unwrap();
    assert_eq!(seal_legacy(&st(&db)).await.unwrap(), 0);
    let broken = verify(&st(&db), read_anchor(dir.path()).unwrap())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.id, 3);
    // Even re-hashing the whole log by hand does not move the anchor.
    sql(&db, "UPDATE events SET hash = NULL, prev_hash = NULL").await;
    assert_eq!(seal_legacy(&st(&db)).await.unwrap(), 5);
    assert!(write_anchor(&st(&db), dir.path(), None).await.is_err());
    let broken = verify(&st(&db), read_anchor(dir.path()).unwrap())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.id, 5);
    assert!(broken.reason.contains("anchored"), "{broken}");
}

#[tokio::test]
async fn a_faked_retention_run_cannot_drop_the_anchored_entry() {
    let (dir, db) = db_with_events(6).await;
    write_anchor(&st(&db), dir.path(), None).await.unwrap();
    // Real retention stops below the anchored entry (#6, the newest).
    sql(&db, "UPDATE events SET at = 0").await;
    // (hashes now stale, but `expire` only reads ids and hashes)
    let anchored = read_anchor(dir.path()).unwrap().map(|(id, _)| id);
    expire(&st(&db), 100, anchored).await.unwrap();
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
        verify(&st(&db), None).await.unwrap().is_ok(),
        "consistent without the anchor"
    );
    let broken = verify(&st(&db), read_anchor(dir.path()).unwrap())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.id, 6);
}
