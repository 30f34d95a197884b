//! Endpoint records on both engines: enrollment (and its refusals),
//! re-enrollment, conflicts, moves between groups, revocation, each with
//! its audit entry.

use std::time::Duration;

use base64::Engine as _;
use jumpgate_api_types as api;

use super::listing::{EndpointList, ListFilter, Listed, list_page, revision};
use super::*;
use crate::store::tests::engines;

/// A one-time enrollment token for `group` (bound to `endpoint`: a
/// re-enrollment token), written straight into the table: what
/// `identity::create_enroll_tokens` and [`create_reenroll_token`] store.
pub(crate) async fn token(db: &Store, group: &str, ttl: Duration) -> String {
    let token = ids::random_token("jge");
    let now = ids::now_ms();
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query(
        "INSERT INTO enroll_tokens (token_hash, group_name, created_at, expires_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(ids::token_hash(&token))
    .bind(group)
    .bind(now)
    .bind(now + ttl.as_millis() as i64)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    token
}

pub(crate) fn request(token: &str, name: &str, key: u8) -> api::EnrollRequest {
    api::EnrollRequest {
        token: token.to_owned(),
        name: name.to_owned(),
        public_key: base64::engine::general_purpose::STANDARD.encode([key; 32]),
        details: api::EndpointDetails {
            hostname: name.to_owned(),
            os: "Debian 12".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
        },
    }
}

/// `(actor, action, target, outcome, groups)` of every audit entry, oldest first.
pub(crate) async fn audit(db: &Store) -> Vec<(String, String, String, String, Option<String>)> {
    let mut c = db.conn().await.unwrap();
    sql!(c, |c| sqlx::query_as(
        "SELECT actor, action, target, outcome, groups FROM events ORDER BY id"
    )
    .fetch_all(&mut *c)
    .await)
    .unwrap()
}

#[tokio::test]
async fn enrollment_spends_its_token_once_and_is_audited_with_the_endpoint() {
    for (db, _dir) in engines("agents_enroll").await {
        let e = db.engine();
        let t = token(&db, "lab", Duration::from_secs(600)).await;
        let done = enroll(&db, &request(&t, "web-1", 1)).await.unwrap();
        assert_eq!(done.response.endpoint, "web-1", "{e}");
        assert_eq!(done.response.group, "lab", "{e}");
        assert!(done.rekeyed.is_none());
        // The token's group came into being with the enrollment.
        let mut c = db.conn().await.unwrap();
        assert!(groups::exists(&mut c, "lab").await.unwrap(), "{e}");
        drop(c);
        let ep = find_by_name(&db, "web-1").await.unwrap().unwrap();
        assert_eq!(ep.group, "lab");
        assert_eq!(ep.public_key, vec![1u8; 32]);
        assert_eq!(ep.details.os, "Debian 12");
        assert!(!ep.revoked && ep.conflict.is_none() && ep.last_seen.is_none());
        let by_id = find_by_id(&db, &ep.id).await.unwrap().unwrap();
        assert_eq!(by_id.name, "web-1");
        let all = crate::rbac::ReadScope::All;
        assert_eq!(
            list_page(&db, &filter(&all), None).await.unwrap().len(),
            1,
            "{e}"
        );

        // Spent: a second use is refused and leaves nothing.
        assert!(matches!(
            enroll(&db, &request(&t, "web-2", 2)).await,
            Err(EnrollError::TokenSpent)
        ));
        // A taken name is refused (PostgreSQL: without aborting into an
        // unusable transaction), and the token stays unspent.
        let t2 = token(&db, "lab", Duration::from_secs(600)).await;
        assert!(matches!(
            enroll(&db, &request(&t2, "web-1", 3)).await,
            Err(EnrollError::NameTaken(_))
        ));
        enroll(&db, &request(&t2, "web-2", 3)).await.unwrap();
        // Unknown, expired, bad key, bad name.
        assert!(matches!(
            enroll(&db, &request("jge_nope", "web-3", 4)).await,
            Err(EnrollError::UnknownToken)
        ));
        let old = token(&db, "lab", Duration::from_millis(1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            enroll(&db, &request(&old, "web-3", 4)).await,
            Err(EnrollError::TokenExpired)
        ));
        let t3 = token(&db, "lab", Duration::from_secs(600)).await;
        let mut bad_key = request(&t3, "web-3", 4);
        bad_key.public_key = "AAAA".into();
        assert!(matches!(
            enroll(&db, &bad_key).await,
            Err(EnrollError::InvalidKey)
        ));
        assert!(matches!(
            enroll(&db, &request(&t3, "-bad", 4)).await,
            Err(EnrollError::InvalidName(_))
        ));

        let entries = audit(&db).await;
        let enrolls: Vec<_> = entries.iter().filter(|a| a.1 == "enroll").collect();
        assert_eq!(enrolls.len(), 2, "{e}: {entries:?}");
        assert_eq!(enrolls[0].0, "web-1");
        assert_eq!(enrolls[0].4.as_deref(), Some(r#"["lab"]"#));
        assert!(crate::events::verify(&db, None).await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn reenrollment_gives_the_endpoint_a_new_key_and_clears_its_conflict() {
    for (db, _dir) in engines("agents_reenroll").await {
        let e = db.engine();
        let t = token(&db, "lab", Duration::from_secs(600)).await;
        enroll(&db, &request(&t, "web-1", 1)).await.unwrap();
        let ep = find_by_name(&db, "web-1").await.unwrap().unwrap();
        let a: std::net::SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: std::net::SocketAddr = "127.0.0.2:2000".parse().unwrap();
        assert_eq!(record_conflict(&db, &ep, a, b).await.unwrap(), 1, "{e}");
        assert_eq!(record_conflict(&db, &ep, a, b).await.unwrap(), 2, "{e}");
        let marked = find_by_name(&db, "web-1").await.unwrap().unwrap();
        let conflict = marked.conflict.unwrap();
        assert_eq!(
            (conflict.count, conflict.newcomer.as_str()),
            (2, "127.0.0.2:2000")
        );

        assert!(
            create_reenroll_token(&db, "nobody", Duration::from_secs(60), "alice")
                .await
                .unwrap()
                .is_none()
        );
        let first = create_reenroll_token(&db, "web-1", Duration::from_secs(60), "alice")
            .await
            .unwrap()
            .unwrap();
        let second = create_reenroll_token(&db, "web-1", Duration::from_secs(60), "alice")
            .await
            .unwrap()
            .unwrap();
        // A newer token ends the unused older one.
        assert!(matches!(
            enroll(&db, &request(&first.token, "ignored", 9)).await,
            Err(EnrollError::TokenExpired)
        ));
        let done = enroll(&db, &request(&second.token, "ignored", 9))
            .await
            .unwrap();
        assert_eq!(done.rekeyed.as_ref(), Some(&ep.id), "{e}");
        assert_eq!(done.response.endpoint, "web-1");
        let rekeyed = find_by_name(&db, "web-1").await.unwrap().unwrap();
        assert_eq!(rekeyed.public_key, vec![9u8; 32]);
        assert!(rekeyed.conflict.is_none(), "{e}");

        let actions: Vec<_> = audit(&db).await.into_iter().map(|a| (a.1, a.3)).collect();
        for want in [
            ("endpoint-conflict", "refused"),
            ("endpoint-reenroll-token", "ok"),
            ("endpoint-reenroll", "ok"),
        ] {
            assert!(
                actions.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{e}: {actions:?}"
            );
        }
        assert!(crate::events::verify(&db, None).await.unwrap().is_ok());
    }
}

#[tokio::test]
async fn moving_and_revoking_an_endpoint_are_audited_under_its_groups() {
    for (db, _dir) in engines("agents_move_revoke").await {
        let e = db.engine();
        let t = token(&db, "lab", Duration::from_secs(600)).await;
        enroll(&db, &request(&t, "web-1", 1)).await.unwrap();
        assert!(matches!(
            set_group(&db, "web-1", "prod", "alice").await,
            Err(MoveError::UnknownGroup(_))
        ));
        groups::create(
            &db,
            "prod",
            "",
            jumpgate_proto::session::ConsentMode::Prompt,
            "alice",
        )
        .await
        .unwrap();
        assert!(matches!(
            set_group(&db, "web-9", "prod", "alice").await,
            Err(MoveError::UnknownEndpoint(_))
        ));
        let moved = set_group(&db, "web-1", "prod", "alice").await.unwrap();
        assert_eq!(moved.group, "prod", "{e}");
        touch(&db, &moved.id, None).await.unwrap();
        assert!(
            find_by_id(&db, &moved.id)
                .await
                .unwrap()
                .unwrap()
                .last_seen
                .is_some()
        );

        let id = revoke(&db, "web-1", "alice", |_| "offline".into())
            .await
            .unwrap();
        assert_eq!(id.as_ref(), Some(&moved.id), "{e}");
        assert!(
            revoke(&db, "web-1", "alice", |_| String::new())
                .await
                .unwrap()
                .is_none()
        );
        assert!(find_by_name(&db, "web-1").await.unwrap().is_none());
        assert!(find_by_id(&db, &moved.id).await.unwrap().unwrap().revoked);
        // The name is free again.
        let t2 = token(&db, "lab", Duration::from_secs(600)).await;
        enroll(&db, &request(&t2, "web-1", 2)).await.unwrap();

        let entries = audit(&db).await;
        let moved = entries.iter().find(|a| a.1 == "endpoint-group").unwrap();
        assert_eq!(moved.4.as_deref(), Some(r#"["lab","prod"]"#), "{e}");
        let revoked = entries.iter().find(|a| a.1 == "endpoint-revoke").unwrap();
        assert_eq!(revoked.4.as_deref(), Some(r#"["prod"]"#), "{e}");
        assert!(crate::events::verify(&db, None).await.unwrap().is_ok());
    }
}

/// Every live endpoint in `scope`, no other filter.
fn filter(scope: &crate::rbac::ReadScope) -> ListFilter<'_> {
    ListFilter {
        scope,
        name: None,
        group: None,
        after: None,
    }
}

/// The list's filters and paging: scope, name (any case, anywhere in it),
/// group, the cursor and the limit, on both engines; revoked endpoints
/// never show.
#[tokio::test]
async fn the_endpoint_list_is_filtered_and_paged() {
    for (db, _dir) in engines("agents_list_page").await {
        let e = db.engine();
        for (i, (name, group)) in [
            ("web-1", "web"),
            ("web-2", "web"),
            ("db-1", "db"),
            ("Web-Admin", "ops"),
            ("gone-web", "web"),
        ]
        .into_iter()
        .enumerate()
        {
            let t = token(&db, group, Duration::from_secs(600)).await;
            enroll(&db, &request(&t, name, i as u8 + 1)).await.unwrap();
        }
        revoke(&db, "gone-web", "admin", |_| "offline".into())
            .await
            .unwrap()
            .unwrap();
        let names = |rows: Vec<Listed>| rows.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let all = crate::rbac::ReadScope::All;
        let every = names(list_page(&db, &filter(&all), None).await.unwrap());
        // Byte order on both engines (upper case first).
        assert_eq!(every, ["Web-Admin", "db-1", "web-1", "web-2"], "{e}");

        let web_db = crate::rbac::ReadScope::Groups(vec!["web".into(), "db".into()]);
        let mut got = names(list_page(&db, &filter(&web_db), None).await.unwrap());
        got.sort();
        assert_eq!(got, ["db-1", "web-1", "web-2"], "{e}");
        let none = crate::rbac::ReadScope::Groups(vec![]);
        assert!(
            list_page(&db, &filter(&none), None)
                .await
                .unwrap()
                .is_empty(),
            "{e}"
        );

        let mut got = names(
            list_page(
                &db,
                &ListFilter {
                    name: Some("WEB"),
                    ..filter(&all)
                },
                None,
            )
            .await
            .unwrap(),
        );
        got.sort();
        assert_eq!(got, ["Web-Admin", "web-1", "web-2"], "{e}");
        let got = names(
            list_page(
                &db,
                &ListFilter {
                    group: Some("db"),
                    ..filter(&all)
                },
                None,
            )
            .await
            .unwrap(),
        );
        assert_eq!(got, ["db-1"], "{e}");

        // Pages of one, each after the previous page's last name, give the
        // whole list in order, once.
        let mut paged = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = names(
                list_page(
                    &db,
                    &ListFilter {
                        after: after.as_deref(),
                        ..filter(&all)
                    },
                    Some(1),
                )
                .await
                .unwrap(),
            );
            assert!(page.len() <= 1, "{e}");
            let Some(last) = page.last().cloned() else {
                break;
            };
            paged.extend(page);
            after = Some(last);
        }
        assert_eq!(paged, every, "{e}");
    }
}

/// The gateway's copy of the list follows every change to `endpoints` —
/// enrollment, a new group, a connection's `last_seen`, revocation, a
/// plain SQL update — and is reused while nothing changed.
#[tokio::test]
async fn the_endpoint_list_copy_follows_every_change() {
    for (db, _dir) in engines("agents_list_copy").await {
        let e = db.engine();
        let list = EndpointList::default();
        let all = crate::rbac::ReadScope::All;
        let names = |rows: &[Listed]| rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        assert!(list.rows(&db).await.unwrap().is_empty(), "{e}");

        let t = token(&db, "web", Duration::from_secs(600)).await;
        let a = enroll(&db, &request(&t, "alpha", 1)).await.unwrap();
        let rows = list.rows(&db).await.unwrap();
        assert_eq!(names(&rows), ["alpha"], "{e}");
        assert_eq!(rows[0].group, "web", "{e}");
        assert!(rows[0].last_seen.is_none(), "{e}");
        // Nothing changed: the same copy (no read).
        let again = list.rows(&db).await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&rows, &again), "{e}");

        let before = revision(&db).await.unwrap();
        touch(&db, &AgentId(a.response.agent_id.clone()), None)
            .await
            .unwrap();
        assert_ne!(revision(&db).await.unwrap(), before, "{e}");
        let rows = list.rows(&db).await.unwrap();
        assert!(rows[0].last_seen.is_some(), "{e}");

        groups::create(
            &db,
            "db",
            "",
            jumpgate_proto::session::ConsentMode::Prompt,
            "admin",
        )
        .await
        .unwrap();
        set_group(&db, "alpha", "db", "admin").await.unwrap();
        let rows = list.rows(&db).await.unwrap();
        assert_eq!(rows[0].group, "db", "{e}");
        let db_only = crate::rbac::ReadScope::Groups(vec!["db".into()]);
        assert_eq!(
            listing_names(&rows, &db_only),
            ["alpha"],
            "{e}: the scope filters the copy"
        );

        // Any write to the table counts, not only this domain's functions
        // (another gateway's, an admin's by hand).
        let mut c = db.conn().await.unwrap();
        sql!(c, |c| sqlx::query(
            "UPDATE endpoints SET hostname = 'renamed'"
        )
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        drop(c);
        assert_eq!(list.rows(&db).await.unwrap()[0].hostname, "renamed", "{e}");

        let t = token(&db, "web", Duration::from_secs(600)).await;
        enroll(&db, &request(&t, "beta", 2)).await.unwrap();
        assert_eq!(
            names(&list.rows(&db).await.unwrap()),
            ["alpha", "beta"],
            "{e}"
        );

        revoke(&db, "alpha", "admin", |_| "offline".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(names(&list.rows(&db).await.unwrap()), ["beta"], "{e}");
        assert_eq!(
            listing_names(&list.rows(&db).await.unwrap(), &all),
            ["beta"],
            "{e}"
        );
    }
}

fn listing_names(rows: &[Listed], scope: &crate::rbac::ReadScope) -> Vec<String> {
    super::listing::page(rows, &filter(scope))
        .map(|r| r.name.clone())
        .collect()
}

/// The list's JSON, written from the copy, is the API's `Endpoint`.
#[tokio::test]
async fn the_listed_json_is_the_api_endpoint() {
    for (db, _dir) in engines("agents_list_json").await {
        let e = db.engine();
        let t = token(&db, "web", Duration::from_secs(600)).await;
        let a = enroll(&db, &request(&t, "alpha", 1)).await.unwrap();
        touch(&db, &AgentId(a.response.agent_id.clone()), None)
            .await
            .unwrap();
        let rows = EndpointList::default().rows(&db).await.unwrap();
        let record = find_by_name(&db, "alpha").await.unwrap().unwrap();
        for online in [false, true] {
            let now = ids::rfc3339(ids::now_ms());
            let view = super::listing::View::new(&rows[0], online, &now);
            let api = api::Endpoint {
                id: record.id.0.clone(),
                name: record.name.clone(),
                group: record.group.clone(),
                online,
                last_seen: Some(if online {
                    now.clone()
                } else {
                    ids::rfc3339(record.last_seen.unwrap())
                }),
                enrolled_at: ids::rfc3339(record.enrolled_at),
                hostname: record.details.hostname.clone(),
                os: record.details.os.clone(),
                arch: record.details.arch.clone(),
                agent_version: record.details.agent_version.clone(),
                conflict: None,
            };
            assert_eq!(
                serde_json::to_value(&view).unwrap(),
                serde_json::to_value(&api).unwrap(),
                "{e}"
            );
        }
    }
}

/// The list's body, written from each row's JSON pieces, is byte for byte
/// what `serde_json` makes of the rows' views: online or not, never seen
/// or seen, with a conflict, and with reported details that need escaping.
#[tokio::test]
async fn the_written_list_is_the_views_json_byte_for_byte() {
    for (db, _dir) in engines("agents_list_bytes").await {
        let e = db.engine();
        let t = token(&db, "web", Duration::from_secs(600)).await;
        let mut odd = request(&t, "alpha", 1);
        odd.details.hostname = "a \"quoted\" host,\"online\":true\\".into();
        odd.details.os = "Debian\t12 ünïcödé".into();
        let a = enroll(&db, &odd).await.unwrap();
        touch(&db, &AgentId(a.response.agent_id.clone()), None)
            .await
            .unwrap();
        let t = token(&db, "db", Duration::from_secs(600)).await;
        enroll(&db, &request(&t, "beta", 2)).await.unwrap();
        let beta = find_by_name(&db, "beta").await.unwrap().unwrap();
        let (x, y): (std::net::SocketAddr, std::net::SocketAddr) = (
            "127.0.0.1:1000".parse().unwrap(),
            "127.0.0.2:2000".parse().unwrap(),
        );
        record_conflict(&db, &beta, x, y).await.unwrap();
        let rows = EndpointList::default().rows(&db).await.unwrap();
        assert_eq!(rows.len(), 2, "{e}");
        let now = ids::rfc3339(ids::now_ms());
        let now_json = serde_json::to_string(&now).unwrap();
        for online in [[false, false], [true, false], [false, true], [true, true]] {
            let views: Vec<_> = rows
                .iter()
                .zip(online)
                .map(|(r, o)| super::listing::View::new(r, o, &now))
                .collect();
            let mut written = vec![b'['];
            for (i, (r, o)) in rows.iter().zip(online).enumerate() {
                if i > 0 {
                    written.push(b',');
                }
                r.write_json(o, &now_json, &mut written);
            }
            written.push(b']');
            assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&views).unwrap(),
                "{e} {online:?}"
            );
        }
    }
}
