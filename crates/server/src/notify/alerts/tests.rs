use jumpgate_api_types::alerts::NewAlertRule;

use super::rules::AlertError;
use super::*;
use crate::store::audit::{AuditAction, AuditEvent};
use jumpgate_proto::session::SessionKind;

async fn lockout(db: &Store, who: &str) {
    db.audit_now(
        AuditEvent::new(who, AuditAction::Lockout, who)
            .outcome("locked")
            .detail("locked for 900 s"),
    )
    .await
    .unwrap();
}

/// Takes the new entries once and returns the subjects of every queued mail.
async fn take_subjects(db: &Store, alerts: &Alerts) -> Vec<String> {
    crate::notify::take_once(db, alerts).await.unwrap();
    let q = queued(&mut db.conn().await.unwrap()).await.unwrap();
    q.into_iter().map(|r| r.2).collect()
}

/// Entries become mail under the rules: one mail per entry while the
/// bucket has tokens, `limited` after; a digest rule's entries wait for
/// their window and are folded into one mail; other actions queue nothing.
#[tokio::test]
async fn entries_are_queued_per_rule_limited_and_digested() {
    for (db, _lite) in crate::store::tests::engines("alerts_take").await {
        let alerts = Alerts::default();
        // Placed at the head before the rules exist.
        assert_eq!(crate::notify::take_once(&db, &alerts).await.unwrap(), 0);
        let rule = |name: &str, digest: Option<&str>, max: u32| NewAlertRule {
            name: name.into(),
            events: vec!["lockout".into()],
            addresses: vec![format!("{name}@example.com")],
            digest_every: digest.map(str::to_owned),
            max_per_hour: Some(max),
            ..Default::default()
        };
        rules::add(&db, &rule("each", None, 1), "admin")
            .await
            .unwrap();
        rules::add(&db, &rule("digest", Some("10m"), 100), "admin")
            .await
            .unwrap();
        let dup = rules::add(&db, &rule("each", None, 1), "admin").await;
        assert!(matches!(dup, Err(AlertError::NameTaken(_))), "{dup:?}");
        lockout(&db, "lucy").await;
        lockout(&db, "mark").await;
        db.audit_now(AuditEvent::new("x", AuditAction::Login, "x"))
            .await
            .unwrap();
        crate::notify::take_once(&db, &alerts).await.unwrap();
        let q = queued(&mut db.conn().await.unwrap()).await.unwrap();
        let got: Vec<(&str, &str, &str)> = q
            .iter()
            .map(|(r, s, subj)| (r.as_str(), s.as_str(), subj.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("digest", "digest", "[Jumpgate] lockout: lucy (locked)"),
                ("each", "pending", "[Jumpgate] lockout: lucy (locked)"),
                ("digest", "digest", "[Jumpgate] lockout: mark (locked)"),
                ("each", "limited", "[Jumpgate] lockout: mark (locked)"),
            ],
            "{}",
            db.engine()
        );
        // Not due yet: nothing folded.
        fold_digests(&db, crate::ids::now_ms()).await.unwrap();
        assert_eq!(
            queued(&mut db.conn().await.unwrap()).await.unwrap().len(),
            4
        );
        fold_digests(&db, crate::ids::now_ms() + 3_600_000)
            .await
            .unwrap();
        let q = queued(&mut db.conn().await.unwrap()).await.unwrap();
        let last = q.last().unwrap();
        assert_eq!(
            (last.0.as_str(), last.1.as_str(), last.2.as_str()),
            ("digest", "pending", "[Jumpgate] digest: 2 alert(s)")
        );
        assert_eq!(q.iter().filter(|r| r.1 == "digested").count(), 2);
        let listed = rules::list(&db).await.unwrap();
        let each = listed.iter().find(|(r, _)| r.name == "each").unwrap().1;
        assert_eq!((each.waiting, each.limited), (1, 1));
        rules::remove(&db, "each", "admin").await.unwrap();
        assert!(matches!(
            rules::remove(&db, "each", "admin").await,
            Err(AlertError::NotFound(_))
        ));
    }
}

/// A rule naming groups (stored, listed, and matched after a reload):
/// only entries about one of them become mail; a group that does not
/// exist is refused, naming the field.
#[tokio::test]
async fn a_rule_with_groups_queues_only_entries_about_them() {
    for (db, _lite) in crate::store::tests::engines("alerts_groups").await {
        let alerts = Alerts::default();
        assert_eq!(crate::notify::take_once(&db, &alerts).await.unwrap(), 0);
        {
            let mut w = db.write().await.unwrap();
            for g in ["pci", "web"] {
                crate::agents::groups::ensure(&mut w, g, 0).await.unwrap();
            }
            w.commit().await.unwrap();
        }
        let req = NewAlertRule {
            name: "sensitive".into(),
            events: vec!["session-open:*".into()],
            groups: vec!["pci".into()],
            addresses: vec!["sec@example.com".into()],
            ..Default::default()
        };
        let missing = rules::add(
            &db,
            &NewAlertRule {
                groups: vec!["nope".into()],
                ..req.clone()
            },
            "admin",
        )
        .await;
        assert!(
            matches!(&missing, Err(AlertError::Invalid(m)) if m == "groups: no group `nope`"),
            "{missing:?}"
        );
        rules::add(&db, &req, "admin").await.unwrap();
        let listed = rules::list(&db).await.unwrap();
        assert_eq!(listed[0].0.dto(listed[0].1).groups, ["pci"]);
        for (target, groups) in [("db-1", vec!["pci"]), ("www-1", vec!["web"]), ("x", vec![])] {
            db.audit_now(
                AuditEvent::new("lucy", AuditAction::SessionOpen(SessionKind::Shell), target)
                    .groups(groups),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            take_subjects(&db, &alerts).await,
            ["[Jumpgate] session-open:shell: db-1 (ok)"],
            "{}",
            db.engine()
        );
    }
}

/// The mailer's own vault read (the SMTP password, actor `(alerts)`) is
/// never mail, even under a rule on every vault action: it would read the
/// password again and feed itself. Someone else's read under the same
/// rule is (the positive control).
#[tokio::test]
async fn the_mailers_own_vault_reads_are_not_mailed() {
    for (db, _lite) in crate::store::tests::engines("alerts_own_reads").await {
        let alerts = Alerts::default();
        assert_eq!(crate::notify::take_once(&db, &alerts).await.unwrap(), 0);
        let req = NewAlertRule {
            name: "everything".into(),
            events: vec!["vault-*".into()],
            addresses: vec!["sec@example.com".into()],
            max_per_hour: Some(100),
            ..Default::default()
        };
        rules::add(&db, &req, "admin").await.unwrap();
        for actor in [smtp::ACTOR, "lucy"] {
            db.audit_now(AuditEvent::new(
                actor,
                AuditAction::VaultRead,
                "smtp-password",
            ))
            .await
            .unwrap();
        }
        assert_eq!(
            take_subjects(&db, &alerts).await,
            ["[Jumpgate] vault-read: smtp-password (ok)"],
            "{}",
            db.engine()
        );
    }
}
