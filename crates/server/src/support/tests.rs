//! Queues, session keys, the request form and the branding, on both
//! engines.

use std::time::Duration;

use jumpgate_api_types::support as api;

use super::crypto::{self, field_aad};
use super::{SupportError, keys, portal, queues};
use crate::identity::{self, NewUser};
use crate::keys::{Keyring, WrappedKey};
use crate::store::{AuditAction, AuditEvent, Store, sql};

struct Site {
    db: Store,
    keys: Keyring,
    _dirs: (Option<tempfile::TempDir>, tempfile::TempDir),
}

async fn sites(test: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (db, dir) in crate::store::tests::engines(test).await {
        let kdir = tempfile::tempdir().unwrap();
        let keys = Keyring::open(kdir.path()).unwrap();
        out.push(Site {
            db,
            keys,
            _dirs: (dir, kdir),
        });
    }
    out
}

/// A technician in group `default`; answers its user id.
async fn tech(db: &Store, name: &str) -> String {
    identity::create_user(
        db,
        &NewUser {
            username: name,
            password: "correct horse battery",
            role: "technician",
            groups: &["default".to_owned()],
            email: None,
        },
        AuditEvent::new("test", AuditAction::UserCreate, name),
    )
    .await
    .unwrap();
    identity::find_user(db, name).await.unwrap().unwrap().id.0
}

fn queue(name: &str, members: &[&str]) -> api::CreateQueue {
    api::CreateQueue {
        name: name.into(),
        description: "Help desk".into(),
        group: "default".into(),
        public: true,
        auto_assign: false,
        max_waiting: None,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
    }
}

async fn actions(db: &Store) -> Vec<(String, String, String, String)> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT actor, action, outcome, detail FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

/// The HTTP answer an error becomes: status and body.
async fn answer(e: SupportError) -> (u16, String) {
    use axum::response::IntoResponse;
    let r = crate::api::ApiError::from(e).into_response();
    let status = r.status().as_u16();
    let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn in_default(g: &str) -> bool {
    g == "default"
}

#[tokio::test]
async fn queues_are_created_changed_and_deleted_with_their_members() {
    for s in sites("support_queues").await {
        let db = &s.db;
        tech(db, "alice").await;
        tech(db, "bob").await;
        let q = queues::create(db, &queue("helpdesk", &["alice", "Bob"]), "admin")
            .await
            .unwrap();
        assert_eq!(q.to_api().members, ["alice", "bob"], "{}", db.engine());
        assert_eq!(q.max_waiting, queues::DEFAULT_MAX_WAITING);
        let again = queues::create(db, &queue("helpdesk", &[]), "admin").await;
        assert!(matches!(again, Err(SupportError::Exists(_))), "{again:?}");
        let ghost = queues::create(db, &queue("other", &["nobody"]), "admin").await;
        assert!(
            matches!(&ghost, Err(SupportError::Invalid(m)) if m.contains("nobody")),
            "{ghost:?}"
        );
        let mut bad_group = queue("other", &[]);
        bad_group.group = "nowhere".into();
        let e = queues::create(db, &bad_group, "admin").await.unwrap_err();
        assert!(e.to_string().contains("nowhere"), "{e}");

        let q = queues::update(
            db,
            "helpdesk",
            &api::UpdateQueue {
                members: Some(vec!["bob".into()]),
                auto_assign: Some(true),
                ..Default::default()
            },
            "admin",
        )
        .await
        .unwrap();
        assert_eq!(q.to_api().members, ["bob"]);
        assert!(q.auto_assign);
        // A deleted user leaves the queue with their account.
        identity::delete_user(
            db,
            "bob",
            AuditEvent::new("admin", AuditAction::UserDelete, "bob"),
        )
        .await
        .unwrap();
        let q = queues::get(db, "helpdesk").await.unwrap().unwrap();
        assert!(q.members.is_empty(), "{q:?}");
        queues::delete(db, "helpdesk", "admin").await.unwrap();
        assert!(queues::list(db).await.unwrap().is_empty());
        let log = actions(db).await;
        let names: Vec<&str> = log
            .iter()
            .map(|e| e.1.as_str())
            .filter(|a| a.starts_with("queue-"))
            .collect();
        assert_eq!(names, ["queue-create", "queue-update", "queue-delete"]);
        let update = log.iter().find(|e| e.1 == "queue-update").unwrap();
        assert_eq!(update.3, "auto_assign=true members=bob");
    }
}

#[tokio::test]
async fn a_key_is_single_use_and_unknown_used_and_expired_keys_answer_alike() {
    for s in sites("support_keys").await {
        let (db, keys) = (&s.db, &s.keys);
        let alice = tech(db, "alice").await;
        let creator = keys::Creator {
            user_id: &alice,
            name: "alice",
            in_group: &in_default,
        };
        // Not a member of any queue yet.
        let e = keys::create_key(db, keys, &creator, None, keys::DEFAULT_TTL)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("member of no support queue"), "{e}");
        queues::create(db, &queue("helpdesk", &["alice"]), "admin")
            .await
            .unwrap();
        let k = keys::create_key(db, keys, &creator, None, keys::DEFAULT_TTL)
            .await
            .unwrap();
        assert_eq!(k.queue, "helpdesk");
        assert_eq!(k.key.len(), 12, "{}", k.key);
        let p = keys::redeem(db, keys, &k.key, "127.0.0.1").await.unwrap();
        assert!(p.download.starts_with("jgd_"), "{}", p.download);

        let answers = [
            keys::redeem(db, keys, &k.key, "127.0.0.1").await,
            keys::redeem(db, keys, "000 000 0000", "127.0.0.1").await,
            keys::redeem(db, keys, "not a key", "127.0.0.1").await,
        ];
        let short = keys::create_key(db, keys, &creator, None, Duration::from_secs(5))
            .await
            .unwrap();
        // Expire it without waiting: its expiry moves into the past.
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE support_keys SET expires_at = 0 WHERE used_at IS NULL"
        )
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        let expired = keys::redeem(db, keys, &short.key, "127.0.0.1").await;
        for a in answers.into_iter().chain([expired]) {
            let e = a.unwrap_err();
            assert!(matches!(e, SupportError::InvalidKey), "{e:?}");
            assert_eq!(
                answer(e).await,
                (
                    404,
                    r#"{"error":"invalid_session_key","message":"This key is not valid. Ask your technician for a new one."}"#.to_owned()
                )
            );
        }
        // The session waits for its download, bound to the key's creator;
        // the customer's name is sealed, never stored in clear.
        let mut c = db.conn().await.unwrap();
        let (state, origin, bound, wrapped, sealed): (String, String, String, String, Vec<u8>) =
            sql!(c, |c| sqlx::query_as(
                "SELECT state, origin, bound_to, wrapped_key, customer_sealed
                   FROM support_sessions WHERE id = $1"
            )
            .bind(p.id.as_str())
            .fetch_one(&mut *c)
            .await)
            .unwrap();
        assert_eq!((state.as_str(), origin.as_str()), ("pending", "key"));
        assert_eq!(bound, alice);
        let key = keys
            .unwrap(crypto::SESSION_KEY_PURPOSE, &WrappedKey::from(wrapped))
            .unwrap();
        let aad = field_aad(p.id.as_str(), "customer");
        assert_eq!(crypto::open(&key, &aad, &sealed).unwrap(), b"Customer");
        assert!(crypto::open(&key, &field_aad("sup_other", "customer"), &sealed).is_err());
        let log = actions(db).await;
        let created: Vec<_> = log.iter().filter(|e| e.1 == "support-key-create").collect();
        assert_eq!(created.len(), 2);
        assert_eq!(created[0].3, "queue=helpdesk ttl=900s");
        assert!(
            log.iter().all(|e| !e.3.contains(&k.key.replace(' ', ""))),
            "a key in the log"
        );
        assert!(
            log.iter()
                .any(|e| e.1 == "support-request" && e.0 == "customer:Customer")
        );
    }
}

#[tokio::test]
async fn the_request_form_fills_a_public_queue_up_to_its_limit() {
    for s in sites("support_requests").await {
        let (db, keys) = (&s.db, &s.keys);
        let mut q = queue("helpdesk", &[]);
        q.max_waiting = Some(2);
        queues::create(db, &q, "admin").await.unwrap();
        let mut private = queue("vip", &[]);
        private.public = false;
        queues::create(db, &private, "admin").await.unwrap();
        for i in 0..2 {
            keys::request_help(db, keys, &format!("Jo {i}"), "Printer", "helpdesk", "::1")
                .await
                .unwrap();
        }
        let full = keys::request_help(db, keys, "Jo", "Printer", "helpdesk", "::1").await;
        assert!(matches!(full, Err(SupportError::QueueFull)), "{full:?}");
        for q in ["vip", "nope"] {
            let e = keys::request_help(db, keys, "Jo", "Printer", q, "::1")
                .await
                .unwrap_err();
            assert!(matches!(e, SupportError::UnknownQueue(_)), "{e:?}");
        }
        let e = keys::request_help(db, keys, " ", "Printer", "helpdesk", "::1")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("name"), "{e}");
        // Technicians see who asked, newest first, in their groups only.
        let scope = crate::rbac::ReadScope::Groups(vec!["default".into()]);
        let rows = super::history::list(db, keys, &scope, None, None, 10)
            .await
            .unwrap();
        let who: Vec<&str> = rows.iter().map(|r| r.customer.as_str()).collect();
        assert_eq!(who, ["Jo 1", "Jo 0"], "{}", db.engine());
        assert!(
            rows.iter()
                .all(|r| r.state == "pending" && r.origin == "form")
        );
        let elsewhere = crate::rbac::ReadScope::Groups(vec!["servers".into()]);
        let none = super::history::list(db, keys, &elsewhere, None, None, 10)
            .await
            .unwrap();
        assert!(none.is_empty());
        // Only public queues show, and nothing about who waits.
        let info = portal::info(db).await.unwrap();
        let names: Vec<&str> = info.queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["helpdesk"]);
    }
}

#[tokio::test]
async fn branding_is_checked_and_kept_and_the_logo_is_png_or_jpeg_only() {
    for s in sites("support_branding").await {
        let db = &s.db;
        let mut b = portal::load(db).await.unwrap();
        assert_eq!(b.site_name, "Remote support");
        b.site_name = "Example Support".into();
        b.colors.primary = "#aa0000".into();
        b.logo = Some(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b"\x89PNG\r\n\x1a\nrest",
        ));
        portal::save(db, b.clone(), "admin").await.unwrap();
        let info = portal::info(db).await.unwrap();
        assert_eq!(info.site_name, "Example Support");
        assert!(info.has_logo);
        assert_eq!(portal::logo(db).await.unwrap().unwrap().1, "image/png");
        // Absent keeps the logo; "" removes it.
        let mut keep = b.clone();
        keep.logo = None;
        assert!(
            portal::save(db, keep, "admin")
                .await
                .unwrap()
                .logo
                .is_some()
        );
        for (field, bad) in [
            ("colors.primary", {
                let mut x = b.clone();
                x.colors.primary = "red".into();
                x
            }),
            ("logo", {
                let mut x = b.clone();
                x.logo = Some(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    b"<svg onload=alert(1)>",
                ));
                x
            }),
            ("site_name", {
                let mut x = b.clone();
                x.site_name = "  ".into();
                x
            }),
        ] {
            let e = portal::save(db, bad, "admin").await.unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        let mut gone = b.clone();
        gone.logo = Some(String::new());
        portal::save(db, gone, "admin").await.unwrap();
        assert!(portal::logo(db).await.unwrap().is_none());
        assert_eq!(portal::load(db).await.unwrap().colors.primary, "#aa0000");
    }
}

/// The key rotation sweep re-wraps support sessions' keys and the pepper,
/// and a key made before still redeems after the old KEK is retired.
#[tokio::test]
async fn rotation_rewraps_session_keys_and_the_pepper() {
    use crate::keys::Purpose;
    for s in sites("support_rotation").await {
        let (db, keys) = (&s.db, &s.keys);
        let alice = tech(db, "alice").await;
        queues::create(db, &queue("helpdesk", &["alice"]), "admin")
            .await
            .unwrap();
        let creator = keys::Creator {
            user_id: &alice,
            name: "alice",
            in_group: &in_default,
        };
        keys::request_help(db, keys, "Jo", "Printer", "helpdesk", "::1")
            .await
            .unwrap();
        let k = keys::create_key(db, keys, &creator, None, keys::DEFAULT_TTL)
            .await
            .unwrap();
        let ps = [Purpose::Recordings, Purpose::Vault];
        crate::keys::sweep::rotate(db, keys, &ps, "test")
            .await
            .unwrap();
        let n = crate::keys::sweep::sweep_all(
            db,
            keys,
            crate::keys::sweep::Pace {
                batch: 10,
                pause: Duration::ZERO,
            },
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(n, 2, "the request's session key and the pepper");
        for p in ps {
            assert!(keys.old_live_versions(p).is_empty(), "{p:?} retired");
        }
        keys::redeem(db, keys, &k.key, "::1").await.unwrap();
    }
}

#[tokio::test]
async fn abandoned_requests_are_found_once_their_link_expired_and_old_ended_sessions_go() {
    for s in sites("support_upkeep").await {
        let (db, keys) = (&s.db, &s.keys);
        queues::create(db, &queue("helpdesk", &[]), "admin")
            .await
            .unwrap();
        let a = keys::request_help(db, keys, "Jo", "Printer", "helpdesk", "::1")
            .await
            .unwrap();
        let b = keys::request_help(db, keys, "Al", "Mail", "helpdesk", "::1")
            .await
            .unwrap();
        let now = crate::ids::now_ms();
        // While the links work, nothing is abandoned; after, both are,
        // oldest first.
        assert!(super::upkeep::abandoned(db, now).await.unwrap().is_empty());
        let later = a.expires_at_ms.max(b.expires_at_ms) + 1;
        assert_eq!(
            super::upkeep::abandoned(db, later).await.unwrap(),
            [a.id.as_str().to_owned(), b.id.as_str().to_owned()]
        );

        // `a` ended long ago with a chat line; `b` just now.
        let mut w = db.write().await.unwrap();
        for (id, ended) in [(a.id.as_str(), 1_000), (b.id.as_str(), now)] {
            sql!(w, |c| sqlx::query(
                "UPDATE support_sessions SET state = 'ended', ended_at = $1 WHERE id = $2"
            )
            .bind(ended)
            .bind(id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
            sql!(w, |c| sqlx::query(
                "INSERT INTO support_messages (support_id, seq, at, sender_kind, sender, sealed)
                 VALUES ($1, 1, $2, 'customer', 'Jo', $3)"
            )
            .bind(id)
            .bind(ended)
            .bind(vec![1u8, 2, 3])
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
        }
        w.commit().await.unwrap();
        // No retention: nothing goes.
        assert_eq!(super::upkeep::remove_ended(db, None, now).await.unwrap(), 0);
        // A day's retention: `a` and its chat go, `b` stays.
        let removed = super::upkeep::remove_ended(db, Some(now - 86_400_000), now)
            .await
            .unwrap();
        assert_eq!(removed, 1, "{}", db.engine());
        let mut c = db.conn().await.unwrap();
        let left: Vec<(String, i64)> = sql!(c, |c| sqlx::query_as(
            "SELECT s.id, (SELECT COUNT(*) FROM support_messages m WHERE m.support_id = s.id)
               FROM support_sessions s ORDER BY s.id"
        )
        .fetch_all(&mut *c)
        .await)
        .unwrap();
        assert_eq!(left, [(b.id.as_str().to_owned(), 1)]);
        let orphans: i64 = sql!(c, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM support_messages WHERE support_id = $1"
        )
        .bind(a.id.as_str())
        .fetch_one(&mut *c)
        .await)
        .unwrap();
        assert_eq!(orphans, 0);
        drop(c);
        let log = actions(db).await;
        let expired: Vec<_> = log
            .iter()
            .filter(|(_, action, _, _)| action == "support-expire")
            .map(|(actor, _, _, detail)| (actor.as_str(), detail.as_str()))
            .collect();
        assert_eq!(expired, [("(retention)", "sessions=1 keys=0")]);
    }
}
