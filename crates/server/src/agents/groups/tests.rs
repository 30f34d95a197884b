//! Groups on both engines.

use std::time::Duration;

use super::*;
use crate::agents::tests::{audit, request, token};
use crate::store::tests::engines;

/// A user (or, with `client`, an API client) holding `groups`, written
/// straight into identity's tables as `identity` stores them.
async fn holder(db: &Store, name: &str, groups: &[&str], client: bool) {
    let list = serde_json::to_string(groups).unwrap();
    let mut c = db.conn().await.unwrap();
    if client {
        sql!(c, |c| sqlx::query(
            "INSERT INTO api_clients (client_id, name, secret_hash, scopes, role, groups, created_at, secret_rotated_at)
             VALUES ($1, $2, 'x', '[\"read\"]', 'technician', $3, 0, 0)"
        )
        .bind(format!("cli_{name}"))
        .bind(name)
        .bind(&list)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    } else {
        sql!(c, |c| sqlx::query(
            "INSERT INTO users (id, username, password_hash, role, created_at, groups)
             VALUES ($1, $2, 'x', 'technician', 0, $3)"
        )
        .bind(format!("usr_{name}"))
        .bind(name)
        .bind(&list)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
}

async fn set_groups(db: &Store, table_is_users: bool, name: &str, groups: &[&str]) {
    let list = serde_json::to_string(groups).unwrap();
    let mut c = db.conn().await.unwrap();
    let q = if table_is_users {
        "UPDATE users SET groups = $1 WHERE username = $2"
    } else {
        "UPDATE api_clients SET groups = $1 WHERE name = $2"
    };
    sql!(c, |c| sqlx::query(q)
        .bind(&list)
        .bind(name)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
}

#[tokio::test]
async fn groups_are_created_listed_and_deleted_with_their_audit_entries() {
    for (db, _dir) in engines("groups_crud").await {
        let e = db.engine();
        let lab = create(&db, "lab", "the lab", ConsentMode::Prompt, "alice")
            .await
            .unwrap();
        assert_eq!(lab.endpoints, 0);
        assert!(matches!(
            create(&db, "lab", "", ConsentMode::Prompt, "alice").await,
            Err(GroupError::Exists(_))
        ));
        assert!(matches!(
            create(&db, "no spaces", "", ConsentMode::Prompt, "alice").await,
            Err(GroupError::Invalid(_))
        ));
        let t = token(&db, "lab", Duration::from_secs(60)).await;
        crate::agents::enroll(&db, &request(&t, "web-1", 1))
            .await
            .unwrap();
        let listed = list(&db).await.unwrap();
        let names: Vec<_> = listed
            .iter()
            .map(|g| (g.name.as_str(), g.endpoints))
            .collect();
        assert_eq!(names, [("default", 0), ("lab", 1)], "{e}");
        assert_eq!(listed[1].description, "the lab");

        // Refused while an endpoint is in it; the refusal is audited.
        let refused = delete(&db, "lab", "alice").await.unwrap_err();
        assert!(
            matches!(refused, GroupError::HasEndpoints { count: 1, .. }),
            "{e}"
        );
        crate::agents::revoke(&db, "web-1", "alice", |_| String::new())
            .await
            .unwrap()
            .unwrap();
        delete(&db, "lab", "alice").await.unwrap();
        assert!(matches!(
            delete(&db, "lab", "alice").await,
            Err(GroupError::NotFound(_))
        ));
        let mut c = db.conn().await.unwrap();
        assert!(!exists(&mut c, "lab").await.unwrap());
        // `ensure` brings a group back (an enrollment token that outlived it)
        // and leaves an existing one as it is.
        ensure(&mut c, "lab", 1).await.unwrap();
        ensure(&mut c, "lab", 2).await.unwrap();
        assert!(exists(&mut c, "lab").await.unwrap());
        drop(c);

        let entries: Vec<_> = audit(&db)
            .await
            .into_iter()
            .filter(|a| a.1.starts_with("group-"))
            .map(|a| (a.1, a.3, a.4))
            .collect();
        let lab = Some(r#"["lab"]"#.to_owned());
        assert_eq!(
            entries,
            [
                ("group-create".into(), "ok".into(), lab.clone()),
                ("group-delete".into(), "refused".into(), lab.clone()),
                ("group-delete".into(), "ok".into(), lab),
            ],
            "{e}"
        );
        assert!(crate::events::verify(&db, None).await.unwrap().is_ok());
    }
}

/// Deleting a group used to leave the users and API clients that held it
/// holding its name: a group created later under that name gave them
/// access again, silently. A held group is now refused deletion, naming
/// who holds it, until nobody does.
#[tokio::test]
async fn a_group_still_held_by_users_or_api_clients_is_not_deleted() {
    for (db, _dir) in engines("groups_held").await {
        let e = db.engine();
        create(&db, "lab", "", ConsentMode::Prompt, "alice")
            .await
            .unwrap();
        holder(&db, "bob", &["lab", "web"], false).await;
        holder(&db, "root", &["*"], false).await;
        holder(&db, "ci", &["lab"], true).await;

        let refused = delete(&db, "lab", "alice").await.unwrap_err();
        match &refused {
            GroupError::HasMembers { holders, .. } => {
                assert_eq!(holders, &["user bob", "API client ci"], "{e}");
            }
            other => panic!("{e}: {other:?}"),
        }
        assert!(
            refused.to_string().contains("user bob, API client ci"),
            "{refused}"
        );
        let mut c = db.conn().await.unwrap();
        assert!(exists(&mut c, "lab").await.unwrap(), "{e}");
        drop(c);

        // Once nobody holds it (`*` holds every group by no name), it goes.
        set_groups(&db, true, "bob", &["web"]).await;
        assert!(matches!(
            delete(&db, "lab", "alice").await,
            Err(GroupError::HasMembers { .. })
        ));
        set_groups(&db, false, "ci", &[]).await;
        delete(&db, "lab", "alice").await.unwrap();

        let outcomes: Vec<_> = audit(&db)
            .await
            .into_iter()
            .filter(|a| a.1 == "group-delete")
            .map(|a| a.3)
            .collect();
        assert_eq!(outcomes, ["refused", "refused", "ok"], "{e}");
    }
}

/// A group's consent mode (how the person at its endpoints takes part in
/// a desktop session): `prompt` unless set, set at creation or changed
/// later, each change audited from → to; what a session opens with.
#[tokio::test]
async fn a_groups_consent_mode_is_set_changed_and_audited() {
    for (db, _dir) in engines("groups_consent").await {
        let e = db.engine();
        let lab = create(&db, "lab", "", ConsentMode::Prompt, "alice")
            .await
            .unwrap();
        assert_eq!(lab.consent, ConsentMode::Prompt, "{e}");
        create(&db, "servers", "racks", ConsentMode::None, "alice")
            .await
            .unwrap();
        assert_eq!(consent_of(&db, "servers").await.unwrap(), ConsentMode::None);
        // An unknown group asks (the strictest mode).
        assert_eq!(consent_of(&db, "nope").await.unwrap(), ConsentMode::Prompt);

        let g = update(&db, "lab", None, Some(ConsentMode::Notify), "alice")
            .await
            .unwrap();
        assert_eq!(
            (g.consent, g.description.as_str()),
            (ConsentMode::Notify, "")
        );
        assert_eq!(consent_of(&db, "lab").await.unwrap(), ConsentMode::Notify);
        // Nothing changed: no entry.
        update(&db, "lab", None, Some(ConsentMode::Notify), "alice")
            .await
            .unwrap();
        let g = update(&db, "servers", Some("the racks"), None, "alice")
            .await
            .unwrap();
        assert_eq!(
            (g.consent, g.description.as_str()),
            (ConsentMode::None, "the racks")
        );
        assert!(matches!(
            update(&db, "gone", None, Some(ConsentMode::None), "alice").await,
            Err(GroupError::NotFound(_))
        ));
        assert!(
            matches!(parse_consent("ask"), Err(GroupError::Invalid(m)) if m.contains("prompt, notify or none"))
        );
        let listed: Vec<_> = list(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.name, g.consent))
            .collect();
        assert_eq!(
            listed,
            [
                ("default".to_owned(), ConsentMode::Prompt),
                ("lab".to_owned(), ConsentMode::Notify),
                ("servers".to_owned(), ConsentMode::None)
            ],
            "{e}"
        );

        let mut c = db.conn().await.unwrap();
        let entries: Vec<(String, String, String)> = sql!(c, |c| sqlx::query_as(
            "SELECT action, target, detail FROM events WHERE action LIKE 'group-%' ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        let entries: Vec<_> = entries
            .iter()
            .map(|(a, t, d)| (a.as_str(), t.as_str(), d.as_str()))
            .collect();
        assert_eq!(
            entries,
            [
                ("group-create", "lab", "consent=prompt"),
                ("group-create", "servers", "consent=none"),
                ("group-update", "lab", "consent=prompt->notify"),
                ("group-update", "servers", "description"),
            ],
            "{e}"
        );
    }
}
