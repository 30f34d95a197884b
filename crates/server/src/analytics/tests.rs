use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::reports::{self, Query};
use super::shipper::{self, Cursor};
use super::*;
use crate::keys::DataKey;
use crate::store::{AuditAction, AuditEvent, Store};

/// 2025-12-02T00:00:00Z.
const DAY0: i64 = 1_764_633_600_000;

fn event(id: &str, kind: &str, actor: &str, outcome: &str) -> Event {
    Event {
        id: id.into(),
        at: DAY0 + 3_600_000,
        kind: kind.into(),
        action: kind.into(),
        actor: actor.into(),
        target: "web-1".into(),
        grp: "web".into(),
        outcome: outcome.into(),
        rule: String::new(),
        program: String::new(),
        value: None,
        detail: String::new(),
    }
}

/// The rows of a report run without filters, as (dims, count).
async fn rows(r: &AnalyticsReader, name: &str) -> Vec<(Vec<String>, i64)> {
    let spec = reports::find(name).unwrap();
    let mut g = r.query(&Query::all(spec)).await.unwrap();
    reports::sort(spec, &mut g);
    g.into_iter().map(|g| (g.dims, g.count)).collect()
}

async fn embedded(dir: &Path) -> (AnalyticsWriter, AnalyticsReader) {
    let key = DataKey::for_tests(9);
    let path = dir.join("analytics.db");
    let w = embedded::Writer::open(&path, &key).await.unwrap();
    let r = embedded::Reader::open(&path, &key).await.unwrap();
    (AnalyticsWriter::Embedded(w), AnalyticsReader::Embedded(r))
}

#[tokio::test]
async fn the_embedded_store_keeps_each_id_once_and_answers_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (w, r) = embedded(dir.path()).await;
    let mut batch = vec![
        event("audit:1", "session", "alice", "ok"),
        event("audit:2", "session", "alice", "ok"),
        event("audit:3", "session", "bob", "ok"),
        event("audit:4", "login", "mallory", "failed"),
    ];
    w.insert(&batch).await.unwrap();
    // A resend (the cursor was not saved before a crash) changes nothing.
    w.insert(&batch).await.unwrap();
    batch[0].at += 86_400_000;
    w.insert(&batch[..1]).await.unwrap();
    assert_eq!(
        rows(&r, "sessions-per-technician").await,
        [(vec!["alice".into()], 2), (vec!["bob".into()], 1)]
    );
    assert_eq!(
        rows(&r, "sessions-per-day").await,
        [(vec!["2025-12-02".into()], 3)]
    );
    assert_eq!(
        rows(&r, "failed-logins").await,
        [(vec!["2025-12-02".into(), "mallory".into()], 1)]
    );
    // Filters: the group, the time window, a caller limited to groups.
    let spec = reports::find("sessions-per-technician").unwrap();
    let mut q = Query::all(spec);
    q.since = Some(DAY0 + 7_200_000);
    assert!(r.query(&q).await.unwrap().is_empty());
    let scope = vec!["db".to_owned()];
    let mut q = Query::all(spec);
    q.scope = Some(&scope);
    assert!(r.query(&q).await.unwrap().is_empty());
    let mut q = Query::all(spec);
    q.user = Some("bob");
    q.group = Some("web");
    assert_eq!(r.query(&q).await.unwrap()[0].count, 1);
    w.close().await;
    r.close().await;
}

/// Events over four days with values, actors, endpoints and outcomes
/// spread, some at the very edges of days.
fn spread_events() -> Vec<Event> {
    let kinds = [
        ("session", "shell", "ok"),
        ("login", "login", "failed"),
        ("elevation", "elevate", "denied"),
        ("elevation", "elevate", "allowed"),
        ("support", "accept", "ok"),
        ("support", "rated", "rated"),
    ];
    (0..600_i64)
        .map(|i| {
            let (kind, action, outcome) = kinds[(i % 6) as usize];
            let mut e = event(&format!("audit:{i}"), kind, &format!("u{}", i % 5), outcome);
            e.action = action.into();
            // Midnight itself, the last ms of a day, and in between.
            e.at = DAY0 + (i / 6) * 3_600_000 + [0, 1, 86_399_999, 7, 13, 59_999][(i % 6) as usize];
            e.target = format!("web-{}", i % 7);
            e.rule = format!("r{}", i % 3);
            e.program = format!("/bin/p{}", i % 4);
            e.value = match kind {
                "support" if i % 4 != 0 => Some(i * 10),
                _ => None,
            };
            e
        })
        .collect()
}

/// Stores [`spread_events`] (in chunks, with resends alone and mixed
/// with new events) and compares every report, over windows with whole
/// and partial days and with user and endpoint filters, as read (through
/// the rollups where possible) with the same report over the events.
async fn rollups_match_events(w: &AnalyticsWriter, r: &AnalyticsReader) {
    let events = spread_events();
    for chunk in events.chunks(70) {
        w.insert(chunk).await.unwrap();
    }
    // Resends, alone and mixed with new events, are not counted again.
    w.insert(&events[..100]).await.unwrap();
    let mut moved = events[5].clone();
    moved.at += 86_400_000;
    w.insert(&[moved, events[6].clone()]).await.unwrap();
    let h = 3_600_000;
    let windows: [(Option<i64>, Option<i64>); 6] = [
        (None, None),
        (Some(DAY0), None),
        (Some(DAY0 + 5 * h), Some(DAY0 + 3 * 24 * h + 7 * h)),
        (None, Some(DAY0 + 2 * 24 * h)),
        (Some(DAY0 + 24 * h + 1), None),
        (Some(DAY0 + 2 * h), Some(DAY0 + 5 * h)),
    ];
    let mut through_rollups = 0;
    for spec in reports::REPORTS {
        for (since, until) in windows {
            for (user, endpoint) in [(None, None), (Some("u2"), None), (None, Some("web-3"))] {
                let q = Query {
                    since,
                    until,
                    user,
                    endpoint,
                    ..Query::all(spec)
                };
                if reports::rollup_sql(&q).is_some() {
                    through_rollups += 1;
                }
                let mut got = r.query(&q).await.unwrap();
                let mut want = match r {
                    AnalyticsReader::Embedded(er) => er.query_events_for_tests(&q).await,
                    AnalyticsReader::Postgres(pr) => pr.query_events_for_tests(&q).await,
                    AnalyticsReader::OpenSearch(_) => unreachable!(),
                }
                .unwrap();
                reports::sort(spec, &mut got);
                reports::sort(spec, &mut want);
                assert_eq!(
                    got, want,
                    "{} {since:?}..{until:?} {user:?} {endpoint:?}",
                    spec.name
                );
            }
        }
    }
    // Most of them did go through the rollups (and some answers are
    // non-empty: the comparison is not of two empty lists).
    assert!(
        through_rollups > reports::REPORTS.len() * 6,
        "{through_rollups}"
    );
    assert_eq!(
        rows(r, "sessions-per-day")
            .await
            .iter()
            .map(|r| r.1)
            .sum::<i64>(),
        100
    );
}

#[tokio::test]
async fn reports_from_the_day_rollups_answer_as_the_events_do() {
    let dir = tempfile::tempdir().unwrap();
    let (w, r) = embedded(dir.path()).await;
    rollups_match_events(&w, &r).await;
    w.close().await;
    r.close().await;
}

/// The same on PostgreSQL, where the trigger `init` installs keeps the
/// rollups.
#[tokio::test]
async fn postgres_rollups_kept_by_the_trigger_answer_as_the_events_do() {
    let Some(url) = crate::store::postgres::testdb::fresh("analytics_rollups").await else {
        return;
    };
    let tag: String = crate::ids::random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (wrole, rrole) = (format!("jg_aw_{tag}"), format!("jg_ar_{tag}"));
    let init = init_postgres(&url, &wrole, "w-pass", &rrole, "r-pass")
        .await
        .unwrap();
    let w = AnalyticsWriter::Postgres(pg::Writer::open(&init.write_url, Some("w-pass")).unwrap());
    let r = AnalyticsReader::Postgres(pg::Reader::open(&init.read_url, Some("r-pass")).unwrap());
    rollups_match_events(&w, &r).await;
    // `init` again (an upgraded gateway whose reports changed): the
    // rollups are rebuilt from the events, to the same answers.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE analytics_rollup SET n = n + 1000")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("UPDATE analytics_meta SET value = 'older'")
        .execute(&mut admin)
        .await
        .unwrap();
    init_postgres(&url, &wrole, "w-pass", &rrole, "r-pass")
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(n) AS BIGINT) FROM analytics_rollup WHERE report = 'sessions-per-day'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(n, 100);
    w.close().await;
    r.close().await;
}

#[tokio::test]
async fn the_day_rollups_are_rebuilt_when_the_reports_change() {
    let dir = tempfile::tempdir().unwrap();
    let (w, r) = embedded(dir.path()).await;
    w.insert(&spread_events()).await.unwrap();
    let AnalyticsWriter::Embedded(ew) = &w else {
        unreachable!()
    };
    // A file from a gateway with other reports: another fingerprint and
    // stale rollups. Until the writer opens again, reports read the events.
    ew.execute_for_tests("UPDATE analytics_rollup SET n = n + 1000")
        .await
        .unwrap();
    ew.execute_for_tests("UPDATE analytics_meta SET value = 'older' WHERE key = 'rollup'")
        .await
        .unwrap();
    assert_eq!(
        rows(&r, "sessions-per-day")
            .await
            .iter()
            .map(|r| r.1)
            .sum::<i64>(),
        100
    );
    w.close().await;
    let (w, r2) = embedded(dir.path()).await;
    // Current again, so read from the rollups, and rebuilt: the +1000 gone.
    ew_fingerprint_is_current(&w).await;
    assert_eq!(
        rows(&r2, "sessions-per-day")
            .await
            .iter()
            .map(|r| r.1)
            .sum::<i64>(),
        100
    );
    w.close().await;
    r.close().await;
    r2.close().await;
}

async fn ew_fingerprint_is_current(w: &AnalyticsWriter) {
    let AnalyticsWriter::Embedded(ew) = w else {
        unreachable!()
    };
    // The stored fingerprint is the current one: an UPDATE that only
    // matches the current value changes one row.
    let q: &'static str = Box::leak(
        format!(
            "UPDATE analytics_meta SET value = value WHERE key = 'rollup' AND value = '{}'",
            reports::rollup_fingerprint()
        )
        .into_boxed_str(),
    );
    assert_eq!(ew.execute_for_tests(q).await.unwrap(), 1);
}

#[test]
fn every_report_is_a_plain_constant() {
    for s in reports::REPORTS {
        for text in std::iter::once(s.kind)
            .chain(std::iter::once(s.name))
            .chain(s.actions.iter().copied())
            .chain(s.outcomes.iter().copied())
        {
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{}: `{text}`",
                s.name
            );
        }
        assert!(s.dims.len() <= 3, "{}", s.name);
    }
}

#[tokio::test]
async fn the_embedded_read_identity_cannot_write_and_the_file_is_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let (w, r) = embedded(dir.path()).await;
    w.insert(&[event("audit:1", "login", "secret-user-name", "failed")])
        .await
        .unwrap();
    let AnalyticsReader::Embedded(er) = &r else {
        unreachable!()
    };
    for stmt in [
        "INSERT INTO analytics_events (id, at, day, kind, action, actor, target, grp, outcome, rule, program, detail)
             VALUES ('x', 1, 'd', 'k', 'a', 'u', 't', '', 'o', '', '', '')",
        "DELETE FROM analytics_events",
        "UPDATE analytics_events SET actor = 'someone'",
        "DROP TABLE analytics_events",
    ] {
        let err = er.execute_for_tests(stmt).await.unwrap_err();
        assert!(
            err.to_string().contains("readonly") || err.to_string().contains("read-only") || err.to_string().contains("query_only"),
            "{stmt}: {err}"
        );
    }
    assert_eq!(rows(&r, "failed-logins").await.len(), 1);
    w.close().await;
    r.close().await;
    let bytes = std::fs::read(dir.path().join("analytics.db")).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(
        !bytes
            .windows(b"secret-user-name".len())
            .any(|w| w == b"secret-user-name")
    );
    // Another key does not open it.
    let other =
        embedded::Reader::open(&dir.path().join("analytics.db"), &DataKey::for_tests(8)).await;
    if let Ok(r) = other {
        let spec = reports::find("failed-logins").unwrap();
        assert!(r.query(&Query::all(spec)).await.is_err());
    }
}

#[tokio::test]
async fn the_analytics_key_is_wrapped_in_the_keyring_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = crate::keys::Keyring::open(dir.path()).unwrap();
    let k1 = embedded::key(dir.path(), &keys).unwrap();
    let text = std::fs::read_to_string(embedded::key_path(dir.path())).unwrap();
    assert!(text.starts_with("database:v"), "{text}");
    let k2 = embedded::key(dir.path(), &keys).unwrap();
    assert_eq!(k1.as_bytes(), k2.as_bytes());
    // A lost key file with the analytics file still there is an error, not
    // a new key.
    std::fs::write(embedded::path(dir.path()), b"x").unwrap();
    let kept = std::fs::read(embedded::key_path(dir.path())).unwrap();
    std::fs::remove_file(embedded::key_path(dir.path())).unwrap();
    assert!(embedded::key(dir.path(), &keys).is_err());
    // A rotation of the `database` KEK retires its old version at once: a
    // key file still wrapped under it (the gateway stopped before
    // re-wrapping it) gives a new file and key, the old file set aside and
    // the cursor gone, so everything is shipped again.
    std::fs::write(embedded::key_path(dir.path()), &kept).unwrap();
    let cursor = shipper::cursor_path(dir.path());
    std::fs::write(&cursor, b"{}").unwrap();
    keys.rotate(&[crate::keys::Purpose::Database]).unwrap();
    let k3 = embedded::key(dir.path(), &keys).unwrap();
    assert_ne!(k1.as_bytes(), k3.as_bytes());
    assert!(!embedded::path(dir.path()).exists());
    assert!(!cursor.exists());
    let aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("analytics.db.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let k4 = embedded::key(dir.path(), &keys).unwrap();
    assert_eq!(k3.as_bytes(), k4.as_bytes());
}

fn audit_row(id: i64, action: &str, outcome: &str, detail: &str) -> shipper::AuditRow {
    shipper::AuditRow {
        id,
        at: DAY0 + id,
        actor: "alice".into(),
        action: action.into(),
        target: "web-1".into(),
        outcome: outcome.into(),
        detail: detail.into(),
        groups: Some(r#"["web"]"#.into()),
    }
}

#[test]
fn audit_entries_become_events_with_stable_ids() {
    let e = shipper::from_audit(&audit_row(7, "session-open:shell", "ok", ""), None);
    assert_eq!(
        (
            e.id.as_str(),
            e.kind.as_str(),
            e.action.as_str(),
            e.grp.as_str()
        ),
        ("audit:7", "session", "shell", "web")
    );
    let e = shipper::from_audit(&audit_row(8, "login", "failed", "bad password"), None);
    assert_eq!((e.kind.as_str(), e.outcome.as_str()), ("login", "failed"));
    let facts = (DAY0 - 60_000, Some("tech".to_owned()));
    let e = shipper::from_audit(
        &audit_row(9, "support-accept", "ok", "queue=q"),
        Some(&facts),
    );
    assert_eq!((e.kind.as_str(), e.action.as_str()), ("support", "accept"));
    assert_eq!(e.value, Some(60_009));
    let e = shipper::from_audit(
        &audit_row(10, "support-end", "rated", "rating=4 comment_bytes=0"),
        Some(&facts),
    );
    assert_eq!(
        (e.action.as_str(), e.value, e.actor.as_str()),
        ("rated", Some(4), "tech")
    );
    let e = shipper::from_audit(&audit_row(11, "user-create", "ok", ""), None);
    assert_eq!(
        (e.kind.as_str(), e.action.as_str()),
        ("audit", "user-create")
    );
}

#[test]
fn epm_decisions_become_elevation_events() {
    let body = json!({
        "seq": 3, "at": "2025-12-02T01:00:00Z", "kind": "decision",
        "user": "bob", "uid": 1000, "program": "/usr/bin/nc", "sha256": "00",
        "args": [], "action": "block", "rule": "no-nc", "outcome": "denied",
        "detail": "blocked by rule"
    })
    .to_string();
    let row = (
        42,
        "web-1".to_owned(),
        3,
        "2025-12-02T01:00:00Z".to_owned(),
        body,
        "web".to_owned(),
    );
    let e = shipper::from_epm(&row);
    assert_eq!(e.id, "epm:42");
    assert_eq!(e.at, DAY0 + 3_600_000);
    assert_eq!(
        (
            e.kind.as_str(),
            e.action.as_str(),
            e.outcome.as_str(),
            e.rule.as_str(),
            e.program.as_str(),
            e.actor.as_str()
        ),
        (
            "elevation",
            "block",
            "denied",
            "no-nc",
            "/usr/bin/nc",
            "bob"
        )
    );
}

async fn failed_login(db: &Store, who: &str) {
    db.audit_now(
        AuditEvent::new(who, AuditAction::Login, who)
            .outcome("failed")
            .detail("bad password"),
    )
    .await
    .unwrap();
}

async fn failed_logins(r: &AnalyticsReader, who: &str) -> i64 {
    let spec = reports::find("failed-logins").unwrap();
    let mut q = Query::all(spec);
    q.user = Some(who);
    r.query(&q).await.unwrap().iter().map(|g| g.count).sum()
}

/// The embedded file unavailable (its writer closed, as when the disk is
/// gone): the events written meanwhile wait in the main store, the cursor
/// stays; once a writer is back they arrive, once each, also when a batch
/// is sent twice (a crash before the cursor was saved).
#[tokio::test]
async fn events_written_while_the_store_is_unavailable_arrive_exactly_once() {
    for (db, _lite) in crate::store::tests::engines("analytics_exactly_once").await {
        let dir = tempfile::tempdir().unwrap();
        let cpath = shipper::cursor_path(dir.path());
        let (w, r) = embedded(dir.path()).await;
        for _ in 0..3 {
            failed_login(&db, "mallory").await;
        }
        let mut cursor = Cursor::load(&cpath, &w.describe()).unwrap();
        assert!(
            shipper::ship_once(&db, &w, &mut cursor, &cpath)
                .await
                .unwrap()
                >= 3
        );
        assert_eq!(failed_logins(&r, "mallory").await, 3);
        let saved = Cursor::load(&cpath, &w.describe()).unwrap();
        assert_eq!(saved, cursor);

        // The store goes away; two more attempts happen meanwhile.
        w.close().await;
        failed_login(&db, "mallory").await;
        failed_login(&db, "mallory").await;
        assert!(
            shipper::ship_once(&db, &w, &mut cursor, &cpath)
                .await
                .is_err()
        );
        assert_eq!(Cursor::load(&cpath, &w.describe()).unwrap(), saved);

        // It comes back (a restarted gateway: the cursor from its file).
        let key = DataKey::for_tests(9);
        let w = AnalyticsWriter::Embedded(
            embedded::Writer::open(&dir.path().join("analytics.db"), &key)
                .await
                .unwrap(),
        );
        let mut cursor = Cursor::load(&cpath, &w.describe()).unwrap();
        assert_eq!(
            shipper::ship_once(&db, &w, &mut cursor, &cpath)
                .await
                .unwrap(),
            2
        );
        assert_eq!(failed_logins(&r, "mallory").await, 5);
        // Everything sent again from the start: still once each.
        let mut stale = Cursor {
            store: w.describe(),
            ..Cursor::default()
        };
        shipper::ship_once(&db, &w, &mut stale, &cpath)
            .await
            .unwrap();
        assert_eq!(failed_logins(&r, "mallory").await, 5);
        // Another store starts from the beginning.
        assert_eq!(Cursor::load(&cpath, "elsewhere").unwrap().audit, 0);
        w.close().await;
        r.close().await;
    }
}

#[tokio::test]
async fn package_results_are_shipped_and_reported_as_compliance() {
    use jumpgate_proto::packages::{PackageTask, TaskAction, TaskOutcome, TaskResult};
    for (db, _lite) in crate::store::tests::engines("analytics_packages").await {
        let dir = tempfile::tempdir().unwrap();
        let cpath = shipper::cursor_path(dir.path());
        let (w, r) = embedded(dir.path()).await;
        let task = |name: &str| PackageTask {
            name: name.into(),
            action: TaskAction::Install,
            version: Some("1.0".into()),
            candidates: Vec::new(),
        };
        let result = |name: &str, outcome: TaskOutcome| TaskResult {
            name: name.into(),
            action: TaskAction::Install,
            version: (outcome == TaskOutcome::Installed).then(|| "1.0".to_owned()),
            outcome,
            message: String::new(),
            output: String::new(),
            attempts: 1,
        };
        use crate::packages::store::{record_pending, record_results};
        for agent in ["a1", "a2", "a3", "a4"] {
            record_pending(&db, agent, &[task("hello"), task("tool")])
                .await
                .unwrap();
        }
        record_results(&db, "a1", &[result("hello", TaskOutcome::Installed)])
            .await
            .unwrap();
        record_results(&db, "a2", &[result("hello", TaskOutcome::Failed)])
            .await
            .unwrap();
        record_results(&db, "a4", &[result("hello", TaskOutcome::Refused)])
            .await
            .unwrap();
        let mut cursor = Cursor::load(&cpath, &w.describe()).unwrap();
        assert_eq!(
            shipper::ship_once(&db, &w, &mut cursor, &cpath)
                .await
                .unwrap(),
            11
        );
        assert_eq!(cursor.packages, 11);
        // a4 tried again and succeeded: its latest result counts.
        tokio::time::sleep(Duration::from_millis(5)).await;
        record_results(&db, "a4", &[result("hello", TaskOutcome::Unchanged)])
            .await
            .unwrap();
        shipper::ship_once(&db, &w, &mut cursor, &cpath)
            .await
            .unwrap();
        // Everything shipped again: counted once.
        let mut stale = Cursor {
            store: w.describe(),
            ..Cursor::default()
        };
        shipper::ship_once(&db, &w, &mut stale, &cpath)
            .await
            .unwrap();
        let spec = reports::find("package-compliance").unwrap();
        let mut g = r.query(&Query::all(spec)).await.unwrap();
        reports::sort(spec, &mut g);
        let t = reports::table(spec, &g);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "package",
                "group",
                "endpoints",
                "compliant",
                "failed",
                "pending"
            ]
        );
        assert_eq!(
            t.rows,
            [
                vec![
                    json!("hello"),
                    json!(""),
                    json!(4),
                    json!(2),
                    json!(1),
                    json!(1)
                ],
                vec![
                    json!("tool"),
                    json!(""),
                    json!(4),
                    json!(0),
                    json!(0),
                    json!(4)
                ],
            ]
        );
        // A group scope the rows are not in: nothing.
        let scope = vec!["db".to_owned()];
        let mut q = Query::all(spec);
        q.scope = Some(&scope);
        assert!(r.query(&q).await.unwrap().is_empty());
        w.close().await;
        r.close().await;
    }
}

#[test]
fn report_sql_binds_every_value() {
    let spec = reports::find("blocked-programs").unwrap();
    let scope = vec!["web".to_owned(), "db'; DROP TABLE x; --".to_owned()];
    let q = Query {
        since: Some(1),
        until: Some(2),
        group: Some("g"),
        user: Some("u"),
        endpoint: Some("e"),
        scope: Some(&scope),
        ..Query::all(spec)
    };
    let (sql, binds) = reports::sql(&q);
    assert!(!sql.contains("DROP"), "{sql}");
    assert!(sql.contains("outcome IN ($2)"), "{sql}");
    assert!(sql.contains("grp IN ($3, $4)"), "{sql}");
    assert_eq!(binds.len(), 9);
    assert_eq!(binds[0], reports::Bind::Text("elevation".into()));
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    let spec = reports::find("support-wait-times").unwrap();
    let g = reports::Group {
        dims: vec!["=cmd|' /C calc'!A0, \"x\"".into()],
        count: 2,
        sum: Some(3000),
        values: 2,
        max: Some(2500),
    };
    let t = reports::table(spec, &[g]);
    let csv = reports::csv(&t);
    assert_eq!(
        csv,
        "technician,accepted,mean_wait_s,max_wait_s\r\n\"'=cmd|' /C calc'!A0, \"\"x\"\"\",2,1.5,2.5\r\n"
    );
}

/// Each role may do its own job only: the write role inserts (and its
/// `ON CONFLICT DO NOTHING` resend is accepted) but cannot read, change or
/// delete; the read role reads but cannot write. PostgreSQL refuses them,
/// not the gateway.
#[tokio::test]
async fn postgres_roles_are_refused_each_others_statements() {
    let Some(url) = crate::store::postgres::testdb::fresh("analytics_roles").await else {
        return;
    };
    let tag: String = crate::ids::random_bytes::<4>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (wrole, rrole) = (format!("jg_aw_{tag}"), format!("jg_ar_{tag}"));
    let init = init_postgres(&url, &wrole, "w-pass", &rrole, "r-pass")
        .await
        .unwrap();
    assert!(init.write_url.contains(&wrole), "{}", init.write_url);
    // Twice: idempotent.
    let init = init_postgres(&url, &wrole, "w-pass", &rrole, "r-pass")
        .await
        .unwrap();
    let w = AnalyticsWriter::Postgres(pg::Writer::open(&init.write_url, Some("w-pass")).unwrap());
    let r = AnalyticsReader::Postgres(pg::Reader::open(&init.read_url, Some("r-pass")).unwrap());
    let batch = [
        event("audit:1", "session", "alice", "ok"),
        event("audit:2", "login", "mallory", "failed"),
    ];
    w.insert(&batch).await.unwrap();
    w.insert(&batch).await.unwrap();
    assert_eq!(
        rows(&r, "sessions-per-endpoint").await,
        [(vec!["web-1".into()], 1)]
    );
    assert_eq!(failed_logins(&r, "mallory").await, 1);

    let connect = async |u: &str, pw: &str| {
        let o: sqlx::postgres::PgConnectOptions = u
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .password(pw);
        sqlx::ConnectOptions::connect(&o).await.unwrap()
    };
    let denied = |res: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, what: &str| match res {
        Err(sqlx::Error::Database(e)) => {
            assert_eq!(e.code().as_deref(), Some("42501"), "{what}: {e}");
        }
        other => panic!("{what}: not refused: {other:?}"),
    };
    let mut wc = connect(&init.write_url, "w-pass").await;
    for stmt in [
        "SELECT * FROM analytics_events",
        "UPDATE analytics_events SET actor = 'x'",
        "DELETE FROM analytics_events",
        "TRUNCATE analytics_events",
        "CREATE TABLE stolen (x int)",
        // The day rollups are the trigger's (as the owner), not the
        // writer's.
        "SELECT * FROM analytics_rollup",
        "INSERT INTO analytics_rollup (report, day, k1, k2, k3, n, vn) VALUES ('x', 'd', '', '', '', 1, 0)",
        "UPDATE analytics_rollup SET n = 0",
        "DELETE FROM analytics_rollup",
        "UPDATE analytics_meta SET value = 'x'",
        "SELECT analytics_rollup_add()",
    ] {
        denied(
            sqlx::query(stmt).execute(&mut wc).await,
            &format!("writer: {stmt}"),
        );
    }
    let mut rc = connect(&init.read_url, "r-pass").await;
    for stmt in [
        "INSERT INTO analytics_events (id, at, day, kind, action, actor, target, grp, outcome, rule, program, detail)
             VALUES ('x', 1, 'd', 'k', 'a', 'u', 't', '', 'o', '', '', '')",
        "UPDATE analytics_events SET actor = 'x'",
        "DELETE FROM analytics_events",
        "TRUNCATE analytics_events",
        "CREATE TABLE stolen (x int)",
        "INSERT INTO analytics_rollup (report, day, k1, k2, k3, n, vn) VALUES ('x', 'd', '', '', '', 1, 0)",
        "UPDATE analytics_rollup SET n = 0",
        "DELETE FROM analytics_rollup",
        "UPDATE analytics_meta SET value = 'x'",
    ] {
        denied(sqlx::query(stmt).execute(&mut rc).await, &format!("reader: {stmt}"));
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM analytics_events")
        .fetch_one(&mut rc)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // The trigger counted each stored event once (the resend skipped).
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(n) AS BIGINT) FROM analytics_rollup WHERE report = 'sessions-per-endpoint'",
    )
    .fetch_one(&mut rc)
    .await
    .unwrap();
    assert_eq!(n, 1);
    w.close().await;
    r.close().await;
}

// --- OpenSearch ------------------------------------------------------------

/// One recorded exchange with a cluster: what the gateway must send and
/// what the cluster answered.
struct Exchange {
    path: &'static str,
    /// The basic-auth user the request must carry.
    user: &'static str,
    /// The body: NDJSON lines or one JSON document, compared as JSON.
    body: &'static str,
    status: u16,
    answer: &'static str,
}

const BULK: &str = r#"{"create":{"_index":"jumpgate-events","_id":"audit:1"}}
{"at":1764637200000,"day":"2025-12-02","kind":"login","action":"login","actor":"mallory","target":"web-1","grp":"web","outcome":"failed","rule":"","program":"","value":null,"detail":""}
{"create":{"_index":"jumpgate-events","_id":"epm:7"}}
{"at":1764637200000,"day":"2025-12-02","kind":"elevation","action":"elevation","actor":"bob","target":"web-1","grp":"web","outcome":"denied","rule":"no-nc","program":"/usr/bin/nc","value":null,"detail":""}
"#;

/// Recorded from OpenSearch 2.x's `_bulk` (first delivery).
const BULK_CREATED: &str = r#"{"took":12,"errors":false,"items":[
 {"create":{"_index":"jumpgate-events","_id":"audit:1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
 {"create":{"_index":"jumpgate-events","_id":"epm:7","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":201}}]}"#;

/// The same batch again: each id exists (409), which is a success for
/// at-least-once delivery.
const BULK_CONFLICT: &str = r#"{"took":3,"errors":true,"items":[
 {"create":{"_index":"jumpgate-events","_id":"audit:1","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[audit:1]: version conflict, document already exists (current version [1])","index":"jumpgate-events","shard":"0"}}},
 {"create":{"_index":"jumpgate-events","_id":"epm:7","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[epm:7]: version conflict, document already exists (current version [1])","index":"jumpgate-events","shard":"0"}}}]}"#;

/// A write user without the right on the index.
const BULK_FORBIDDEN: &str = r#"{"took":1,"errors":true,"items":[
 {"create":{"_index":"jumpgate-events","_id":"audit:1","status":403,"error":{"type":"security_exception","reason":"no permissions for [indices:data/write/bulk[s]] and User [name=jg-writer]"}}}]}"#;

const SEARCH: &str = r#"{"size":0,"track_total_hits":false,
 "query":{"bool":{"filter":[{"term":{"kind":"elevation"}},{"terms":{"outcome":["denied"]}},{"range":{"at":{"gte":1764633600000}}}]}},
 "aggs":{"r":{"composite":{"size":1000,"sources":[{"d0":{"terms":{"field":"program"}}}]},
   "aggs":{"sum":{"sum":{"field":"value"}},"n":{"value_count":{"field":"value"}},"max":{"max":{"field":"value"}}}}}}"#;

const SEARCH_ANSWER: &str = r#"{"took":4,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
 "hits":{"max_score":null,"hits":[]},
 "aggregations":{"r":{"after_key":{"d0":"/usr/bin/nc"},"buckets":[
   {"key":{"d0":"/usr/bin/nc"},"doc_count":3,"sum":{"value":0.0},"n":{"value":0},"max":{"value":null}},
   {"key":{"d0":"/usr/bin/curl"},"doc_count":1,"sum":{"value":0.0},"n":{"value":0},"max":{"value":null}}]}}}"#;

/// The JSON value of a body, or of each of its lines (NDJSON).
fn json_lines(text: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return vec![v];
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
        .collect()
}

/// Stands in for a real OpenSearch cluster (none can be installed here):
/// a TLS server on loopback that checks each request against the recorded
/// contract (path, the identity's credentials, the body) and returns the
/// recorded answer. `opensearch_against_a_real_cluster` runs against a real
/// one when `JUMPGATE_TEST_OPENSEARCH_URL` is set.
struct FakeCluster {
    addr: std::net::SocketAddr,
    fingerprint: String,
    problems: Arc<Mutex<Vec<String>>>,
    left: Arc<Mutex<std::collections::VecDeque<Exchange>>>,
}

impl FakeCluster {
    async fn start(script: Vec<Exchange>) -> Self {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let fingerprint = jumpgate_net::tls::Fingerprint::of(cert.der()).to_string();
        let tls = jumpgate_net::tls::server_config(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            &[b"http/1.1"],
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let left = Arc::new(Mutex::new(
            script
                .into_iter()
                .collect::<std::collections::VecDeque<_>>(),
        ));
        let (p, l) = (Arc::clone(&problems), Arc::clone(&left));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&tls));
                let (p, l) = (Arc::clone(&p), Arc::clone(&l));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        move |req: ::http::Request<hyper::body::Incoming>| {
                            let (p, l) = (Arc::clone(&p), Arc::clone(&l));
                            async move {
                                use http_body::Body as _;
                                let (parts, mut body) = req.into_parts();
                                let mut bytes = Vec::new();
                                while let Some(Ok(f)) = std::future::poll_fn(|cx| {
                                    std::pin::Pin::new(&mut body).poll_frame(cx)
                                })
                                .await
                                {
                                    if let Ok(d) = f.into_data() {
                                        bytes.extend_from_slice(&d);
                                    }
                                }
                                let Some(x) = l.lock().unwrap().pop_front() else {
                                    p.lock()
                                        .unwrap()
                                        .push(format!("unexpected request {}", parts.uri));
                                    return Ok::<_, std::convert::Infallible>(
                                        ::http::Response::builder()
                                            .status(500)
                                            .body(axum::body::Body::empty())
                                            .unwrap(),
                                    );
                                };
                                let auth = parts
                                    .headers
                                    .get(::http::header::AUTHORIZATION)
                                    .and_then(|v| v.to_str().ok())
                                    .and_then(|v| v.strip_prefix("Basic "))
                                    .and_then(|v| {
                                        base64::Engine::decode(
                                            &base64::engine::general_purpose::STANDARD,
                                            v,
                                        )
                                        .ok()
                                    })
                                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                                    .unwrap_or_default();
                                let mut bad = Vec::new();
                                if parts.method != ::http::Method::POST
                                    || parts.uri.path() != x.path
                                {
                                    bad.push(format!(
                                        "{} {} (expected POST {})",
                                        parts.method, parts.uri, x.path
                                    ));
                                }
                                if auth != format!("{}:{}-pass", x.user, x.user) {
                                    bad.push(format!(
                                        "{}: credentials `{auth}`, expected {}'s",
                                        x.path, x.user
                                    ));
                                }
                                let got = String::from_utf8_lossy(&bytes);
                                if json_lines(&got) != json_lines(x.body) {
                                    bad.push(format!(
                                        "{}: body\n{got}\nexpected\n{}",
                                        x.path, x.body
                                    ));
                                }
                                p.lock().unwrap().extend(bad);
                                Ok(::http::Response::builder()
                                    .status(x.status)
                                    .header(::http::header::CONTENT_TYPE, "application/json")
                                    .body(axum::body::Body::from(x.answer))
                                    .unwrap())
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            fingerprint,
            problems,
            left,
        }
    }

    fn config(&self) -> crate::config::OpenSearchConfig {
        crate::config::OpenSearchConfig {
            url: format!("https://localhost:{}", self.addr.port()),
            index: "jumpgate-events".into(),
            write_user: "jg-writer".into(),
            write_password_file: "/nonexistent".into(),
            read_user: "jg-reader".into(),
            read_password_file: "/nonexistent".into(),
            ca_fingerprint: Some(self.fingerprint.clone()),
        }
    }

    fn check(&self) {
        let p = self.problems.lock().unwrap();
        assert!(p.is_empty(), "contract broken:\n{}", p.join("\n"));
        assert!(self.left.lock().unwrap().is_empty(), "requests missing");
    }
}

#[tokio::test]
async fn opensearch_bulk_and_search_follow_the_recorded_contract() {
    let cluster = FakeCluster::start(vec![
        Exchange {
            path: "/_bulk",
            user: "jg-writer",
            body: BULK,
            status: 200,
            answer: BULK_CREATED,
        },
        Exchange {
            path: "/_bulk",
            user: "jg-writer",
            body: BULK,
            status: 200,
            answer: BULK_CONFLICT,
        },
        Exchange {
            path: "/_bulk",
            user: "jg-writer",
            body: BULK,
            status: 200,
            answer: BULK_FORBIDDEN,
        },
        Exchange {
            path: "/jumpgate-events/_search",
            user: "jg-reader",
            body: SEARCH,
            status: 200,
            answer: SEARCH_ANSWER,
        },
    ])
    .await;
    let c = cluster.config();
    let w = AnalyticsWriter::OpenSearch(opensearch::Writer::new(&c, "jg-writer-pass").unwrap());
    let r = AnalyticsReader::OpenSearch(opensearch::Reader::new(&c, "jg-reader-pass").unwrap());
    let mut login = event("audit:1", "login", "mallory", "failed");
    login.action = "login".into();
    let mut denied = event("epm:7", "elevation", "bob", "denied");
    denied.rule = "no-nc".into();
    denied.program = "/usr/bin/nc".into();
    let batch = [login, denied];
    w.insert(&batch).await.unwrap();
    // The resend: every item exists already, which is delivered.
    w.insert(&batch).await.unwrap();
    // A refused item fails the batch: the shipper keeps its cursor.
    let err = w.insert(&batch).await.unwrap_err();
    assert!(err.to_string().contains("security_exception"), "{err}");
    let spec = reports::find("blocked-programs").unwrap();
    let mut q = Query::all(spec);
    q.since = Some(DAY0);
    let groups = r.query(&q).await.unwrap();
    let t = reports::table(spec, &groups);
    assert_eq!(
        t.rows,
        [
            vec![json!("/usr/bin/nc"), json!(3)],
            vec![json!("/usr/bin/curl"), json!(1)]
        ]
    );
    cluster.check();
}

#[tokio::test]
async fn opensearch_refuses_a_cluster_whose_certificate_is_not_pinned() {
    let cluster = FakeCluster::start(vec![]).await;
    let mut c = cluster.config();
    c.ca_fingerprint = Some("00".repeat(32));
    let w = opensearch::Writer::new(&c, "jg-writer-pass").unwrap();
    let err = w
        .insert(&[event("audit:1", "login", "m", "failed")])
        .await
        .unwrap_err();
    assert!(matches!(err, AnalyticsError::Http { .. }), "{err}");
    cluster.check();
}

/// Against a real cluster, when one is given: `JUMPGATE_TEST_OPENSEARCH_URL`
/// (`https://HOST:9200`), `…_WRITE_USER`/`…_WRITE_PASSWORD` (a user allowed
/// `_bulk` on the index), `…_READ_USER`/`…_READ_PASSWORD` (allowed
/// `_search`), optionally `…_INDEX` and `…_CA_FINGERPRINT`.
#[tokio::test]
async fn opensearch_against_a_real_cluster() {
    let env = |k: &str| std::env::var(format!("JUMPGATE_TEST_OPENSEARCH_{k}")).ok();
    let Some(url) = env("URL") else {
        eprintln!(
            "skipped: JUMPGATE_TEST_OPENSEARCH_URL unset (no OpenSearch cluster to test against)"
        );
        return;
    };
    let c = crate::config::OpenSearchConfig {
        url,
        index: env("INDEX").unwrap_or_else(|| "jumpgate-events".into()),
        write_user: env("WRITE_USER").expect("JUMPGATE_TEST_OPENSEARCH_WRITE_USER"),
        write_password_file: "/unused".into(),
        read_user: env("READ_USER").expect("JUMPGATE_TEST_OPENSEARCH_READ_USER"),
        read_password_file: "/unused".into(),
        ca_fingerprint: env("CA_FINGERPRINT"),
    };
    let w = opensearch::Writer::new(&c, &env("WRITE_PASSWORD").unwrap_or_default()).unwrap();
    let r = AnalyticsReader::OpenSearch(
        opensearch::Reader::new(&c, &env("READ_PASSWORD").unwrap_or_default()).unwrap(),
    );
    let tag: String = crate::ids::random_bytes::<6>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let who = format!("user-{tag}");
    let batch = [
        event(&format!("test:{tag}:1"), "login", &who, "failed"),
        event(&format!("test:{tag}:2"), "login", &who, "failed"),
    ];
    w.insert(&batch).await.unwrap();
    w.insert(&batch).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = failed_logins(&r, &who).await;
        if n == 2 {
            break;
        }
        assert!(n < 2, "duplicates: {n}");
        assert!(
            std::time::Instant::now() < deadline,
            "events not searchable after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn every_report_has_columns_for_its_metric() {
    for s in reports::REPORTS {
        let want = match s.metric {
            reports::Metric::Count => 1,
            reports::Metric::Value { .. } => 3,
            reports::Metric::Compliance => 4,
        };
        assert_eq!(s.metric_names.len(), want, "{}", s.name);
        assert!(!s.dims.is_empty(), "{}", s.name);
    }
}

use std::time::Duration;
