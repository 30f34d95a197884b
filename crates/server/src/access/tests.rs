//! The access domain's schema 24 on both engines: EPM approval requests
//! stored before it become access requests of kind `elevation`, with their
//! state, program and decision.

use crate::schema::SCHEMA;
use crate::store::{Store, sql};

/// Users, an endpoint and three EPM requests (pending, approved by alice,
/// expired), as a version 23 database holds them.
const ROWS: &str = "
    INSERT INTO users (id, username, password_hash, role, created_at, groups)
        VALUES ('usr_alice', 'alice', 'h', 'technician', 5, '[\"web\"]');
    INSERT INTO epm_requests (id, agent_id, seq, username, program, sha256, args, reason, rule,
            state, decided_by, decided_at, comment, created_at, expires_at) VALUES
        ('er_p', 'e1', 1, 'bob', '/usr/bin/apt', 'ab', '[\"upgrade\"]', 'patch', 'apt-ok',
         'pending', NULL, NULL, NULL, 100, 999999999999999),
        ('er_a', 'e1', 2, 'bob', '/usr/bin/date', 'cd', '[]', '', 'date-ok',
         'approved', 'alice', 150, 'fine', 110, 200),
        ('er_x', 'e1', 3, 'carl', '/usr/bin/id', 'ef', '[\"-u\"]', 'why', 'id-ok',
         'expired', NULL, NULL, NULL, 120, 130);
";

async fn check(db: &Store, engine: &str) {
    let mut c = db.conn().await.unwrap();
    let p = super::get(&mut c, "er_p")
        .await
        .unwrap()
        .expect("er_p copied");
    assert_eq!(
        (
            p.kind.as_str(),
            p.requester.as_str(),
            p.group_name.as_str(),
            p.endpoint_name.as_deref(),
            p.state.as_str(),
            p.reason.as_str(),
            p.approvals_required,
            p.expires_at
        ),
        (
            "elevation",
            "bob@web-1",
            "web",
            Some("web-1"),
            "pending",
            "patch",
            1,
            Some(999_999_999_999_999)
        ),
        "{engine}"
    );
    let e = p.elevation().unwrap();
    assert_eq!(
        (e.user.as_str(), e.program.as_str(), e.args, e.rule.as_str()),
        ("bob", "/usr/bin/apt", vec!["upgrade".to_owned()], "apt-ok"),
        "{engine}"
    );
    let a = super::get(&mut c, "er_a").await.unwrap().unwrap();
    assert_eq!((a.state.as_str(), a.decided_at), ("approved", Some(150)));
    let d = super::decisions(&mut c, "er_a").await.unwrap();
    assert_eq!(d.len(), 1, "{engine}");
    assert_eq!(
        (
            d[0].approver.as_str(),
            d[0].decision.as_str(),
            d[0].reason.as_str()
        ),
        ("alice", "approve", "fine")
    );
    let approver_id: String = sql!(c, |c| sqlx::query_scalar(
        "SELECT approver_id FROM access_approvals WHERE request_id = 'er_a'"
    )
    .fetch_one(&mut *c)
    .await)
    .unwrap();
    assert_eq!(approver_id, "usr_alice");
    let x = super::get(&mut c, "er_x").await.unwrap().unwrap();
    assert_eq!((x.state.as_str(), x.ended_at), ("expired", Some(130)));
    assert!(super::decisions(&mut c, "er_x").await.unwrap().is_empty());
}

#[tokio::test]
async fn schema_24_copies_existing_epm_requests_in_as_elevation_requests() {
    use crate::keys::DataKey;
    use crate::store::sqlite::open_with_key;
    let key = DataKey::for_tests(5);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v23.db");
    let pool = open_with_key(&path, &key, SCHEMA.until(23)).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
             VALUES ('e1', 'web-1', 'web', x'00', '', '', '', '', 1);
         {ROWS}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let pool = open_with_key(&path, &key, SCHEMA).await.unwrap();
    check(&Store::sqlite(pool), "sqlite").await;

    let Some(url) = crate::store::postgres::testdb::fresh("access_schema_24").await else {
        return;
    };
    let pool = crate::store::postgres::open(&url, 4, SCHEMA.until(23))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO endpoints (id, name, group_name, public_key, hostname, os, arch, agent_version, enrolled_at)
             VALUES ('e1', 'web-1', 'web', '\\x00'::bytea, '', '', '', '', 1);
         {ROWS}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let pool = crate::store::postgres::open(&url, 4, SCHEMA).await.unwrap();
    check(&Store::postgres(pool), "postgres").await;
}
